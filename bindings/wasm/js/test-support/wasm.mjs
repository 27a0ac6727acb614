// Shared by the tests (kept out of test/, where `node --test` would run it).

import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { load } from '../prodguard.mjs';

export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));

/** PRODGUARD_WASM, or the one scripts/build-wasm makes. */
export const wasmPath = process.env.PRODGUARD_WASM
  ? resolve(process.env.PRODGUARD_WASM)
  : join(repoRoot, 'target', 'prodguard.wasm');

export function wasmBytes() {
  if (!existsSync(wasmPath)) {
    throw new Error(`${wasmPath} does not exist: run scripts/build-wasm first (or set PRODGUARD_WASM)`);
  }
  return readFileSync(wasmPath);
}

/** A fresh instance of the module under test. */
export function loadProdguard() {
  return load(wasmBytes());
}

/** Reads a shared vector file from tests/vectors. */
export function readVectors(name) {
  return JSON.parse(readFileSync(join(repoRoot, 'tests', 'vectors', name), 'utf8'));
}

/**
 * A hand-assembled stand-in for prodguard.wasm, to test what the loader
 * refuses: `abi` is what prodguard_abi_version returns, `exports` the names
 * to export, `imports` adds an import, `alloc` is what every prodguard_alloc
 * returns, and `trap` makes the three calls trap.
 */
export function fakeModule({
  abi = 0x00020000,
  exports = ['memory', 'prodguard_abi_version', 'prodguard_alloc', 'prodguard_dealloc',
    'prodguard_evaluate', 'prodguard_audit_record', 'prodguard_verify_approval'],
  imports = false,
  alloc = 1024,
  trap = false,
} = {}) {
  const I32 = 0x7f;
  const types = [
    [0x60, 0, 1, I32], // () -> i32
    [0x60, 1, I32, 1, I32], // (i32) -> i32
    [0x60, 2, I32, I32, 0], // (i32, i32) -> ()
    [0x60, 3, I32, I32, I32, 1, I32], // (i32, i32, i32) -> i32
  ];
  const call = trap ? [0x00, 0x0b] : [0x41, 0x00, 0x0b]; // unreachable | i32.const 0
  // [name, type, body]; functions are numbered after the imported one.
  const functions = [
    ['prodguard_abi_version', 0, [0x41, ...sleb(abi), 0x0b]],
    ['prodguard_alloc', 1, [0x41, ...sleb(alloc), 0x0b]],
    ['prodguard_dealloc', 2, [0x0b]],
    ['prodguard_evaluate', 3, call],
    ['prodguard_audit_record', 3, call],
    ['prodguard_verify_approval', 3, call],
    ['prodguard_extra', 0, [0x41, 0x00, 0x0b]],
  ];
  const base = imports ? 1 : 0;
  const exported = exports.map((name) => {
    if (name === 'memory') return [...str(name), 0x02, 0x00];
    const index = functions.findIndex(([n]) => n === name);
    if (index < 0) throw new Error(`fakeModule: no function ${name}`);
    return [...str(name), 0x00, ...uleb(base + index)];
  });
  const sections = [
    section(1, vec(types)),
    imports ? section(2, vec([[...str('env'), ...str('host_call'), 0x00, 0x00]])) : [],
    section(3, vec(functions.map(([, type]) => [type]))),
    section(5, vec([[0x00, 0x01]])), // one memory, at least one page
    section(7, vec(exported)),
    section(10, vec(functions.map(([, , body]) => {
      const code = [0x00, ...body]; // no locals
      return [...uleb(code.length), ...code];
    }))),
  ];
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...sections.flat()]);
}

function uleb(n) {
  const out = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n) {
  const out = [];
  n |= 0;
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function str(text) {
  const bytes = new TextEncoder().encode(text);
  return [...uleb(bytes.length), ...bytes];
}

function vec(items) {
  return [...uleb(items.length), ...items.flat()];
}

function section(id, content) {
  return [id, ...uleb(content.length), ...content];
}
