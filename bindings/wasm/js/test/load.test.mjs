// Loading: what the module exports and imports, every kind of source, and
// the modules the loader refuses.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { existsSync } from 'node:fs';
import { ABI_MAJOR, EXPORTS, defaultWasmUrl, load } from '../prodguard.mjs';
import { fakeModule, wasmBytes, wasmPath } from '../test-support/wasm.mjs';

const PROBE = { facts: { env: { APP_ENV: 'production' } }, operation: { kind: 'db.migrate', target: 'orders' } };

async function assertWorks(source) {
  const pg = await load(source);
  assert.deepEqual(pg.abiVersion, { major: 2, minor: 4 });
  assert.equal(pg.evaluate(PROBE).decision.exit_code, 121);
}

test('prodguard.wasm exports exactly the ABI 2.0 set and imports nothing', () => {
  const module = new WebAssembly.Module(wasmBytes());
  const exports = WebAssembly.Module.exports(module)
    .map(({ name, kind }) => [name, kind])
    .sort(([a], [b]) => a.localeCompare(b));
  assert.deepEqual(exports, Object.entries(EXPORTS).sort(([a], [b]) => a.localeCompare(b)));
  assert.deepEqual(WebAssembly.Module.imports(module), []);
});

test('prodguard_abi_version is 2.4 (0x00020004)', async () => {
  const pg = await load(wasmBytes());
  assert.equal(pg.exports.prodguard_abi_version(), 0x00020004);
  assert.equal(ABI_MAJOR, 2);
  assert.deepEqual(pg.abiVersion, { major: 2, minor: 4 });
  assert.ok(Object.isFrozen(pg.abiVersion));
});

test('load takes bytes in every form: Buffer, Uint8Array (with an offset), ArrayBuffer', async () => {
  const bytes = wasmBytes();
  await assertWorks(bytes);
  const padded = new Uint8Array(bytes.length + 7);
  padded.set(bytes, 3);
  await assertWorks(padded.subarray(3, 3 + bytes.length));
  await assertWorks(padded.slice(3, 3 + bytes.length).buffer);
});

test('load takes a compiled WebAssembly.Module, and instances do not share memory', async () => {
  const module = await WebAssembly.compile(wasmBytes());
  await assertWorks(module);
  const [a, b] = await Promise.all([load(module), load(module)]);
  assert.notEqual(a.memory, b.memory);
});

test('load takes a Response or a promise of one, streamed (application/wasm) or not', async () => {
  const bytes = wasmBytes();
  await assertWorks(new Response(bytes, { headers: { 'content-type': 'application/wasm' } }));
  await assertWorks(new Response(bytes, { headers: { 'content-type': 'application/octet-stream' } }));
  await assertWorks(Promise.resolve(new Response(bytes, { headers: { 'content-type': 'application/wasm' } })));
});

test('load refuses a failed HTTP response with its status', async () => {
  await assert.rejects(load(new Response('not found', { status: 404 })), /HTTP 404/);
});

test('load takes a file path, a file: URL, and a file: URL string in Node', async () => {
  await assertWorks(wasmPath);
  await assertWorks(pathToFileURL(wasmPath));
  await assertWorks(pathToFileURL(wasmPath).href);
});

test('load rejects what is not a module source', async () => {
  for (const source of [null, 42, {}, [1, 2, 3]]) {
    await assert.rejects(load(source), TypeError, String(source));
  }
  await assert.rejects(load(new Uint8Array([1, 2, 3, 4])), WebAssembly.CompileError);
});

test('load() without a source reads prodguard.wasm next to the loader (the package ships it there)', async () => {
  assert.equal(defaultWasmUrl().href, new URL('../prodguard.wasm', import.meta.url).href);
  if (existsSync(defaultWasmUrl())) {
    await assertWorks(undefined);
  } else {
    // In the repository the module is built into the target directory, not here.
    await assert.rejects(load(), (error) => {
      assert.match(error.message, /prodguard\.wasm is not next to the loader/);
      assert.match(error.message, /scripts\/build-wasm/);
      return true;
    });
  }
});

test('the stand-in module used below is accepted as ABI 2.0', async () => {
  const pg = await load(fakeModule());
  assert.deepEqual(pg.abiVersion, { major: 2, minor: 0 });
});

test('load refuses another ABI major, naming both versions', async () => {
  await assert.rejects(load(fakeModule({ abi: 0x00030000 })), /speaks ABI 3\.0, and this loader speaks ABI 2\.x/);
  await assert.rejects(load(fakeModule({ abi: 0x00000003 })), /speaks ABI 0\.3/);
});

test('load accepts a higher minor, and the exports it adds', async () => {
  const exports = [...Object.keys(EXPORTS), 'prodguard_extra'];
  const pg = await load(fakeModule({ abi: 0x00020002, exports }));
  assert.deepEqual(pg.abiVersion, { major: 2, minor: 2 });
});

test('load refuses a 2.0 module with an export ABI 2.0 does not have', async () => {
  const exports = [...Object.keys(EXPORTS), 'prodguard_extra'];
  await assert.rejects(load(fakeModule({ exports })), /also exports prodguard_extra/);
});

test('load refuses a module missing an export, naming it', async () => {
  for (const missing of Object.keys(EXPORTS)) {
    const exports = Object.keys(EXPORTS).filter((name) => name !== missing);
    await assert.rejects(load(fakeModule({ exports })), new RegExp(`export ${missing} is missing`));
  }
});

test('load refuses a module with imports, naming them', async () => {
  await assert.rejects(load(fakeModule({ imports: true })), /imports env\.host_call/);
});

test('a trap is rethrown as WebAssembly.RuntimeError, and the instance refuses further calls', async () => {
  const pg = await load(fakeModule({ trap: true }));
  assert.throws(() => pg.evaluate(PROBE), WebAssembly.RuntimeError);
  assert.throws(() => pg.evaluate(PROBE), /trapped earlier and must be discarded/);
  await assertWorks(wasmBytes());
});

test('prodguard_alloc answering 0 is an out-of-memory ProdguardError, not a write at address 0', async () => {
  const pg = await load(fakeModule({ alloc: 0 }));
  assert.throws(() => pg.evaluate(PROBE), { name: 'ProdguardError', code: 4, message: /could not allocate/ });
});
