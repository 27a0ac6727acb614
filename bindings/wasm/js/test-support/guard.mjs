// Shared by the guard tests: a temp directory, the CLI, and reading a log.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { repoRoot, wasmPath } from './wasm.mjs';

/** PRODGUARD_CLI, or the debug build; null when there is none. */
export function findCli() {
  if (process.env.PRODGUARD_CLI) return process.env.PRODGUARD_CLI;
  const built = join(process.env.CARGO_TARGET_DIR ?? join(repoRoot, 'target'), 'debug', 'prodguard');
  return existsSync(built) ? built : null;
}

/** A temp directory removed after the test. */
export function tempDir(t, prefix = 'prodguard-guard-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The options every test guard shares: the module under test, no system layer, never the real terminal. */
export function baseOptions(dir, env, extra = {}) {
  return {
    module: wasmPath,
    env: { PATH: process.env.PATH, ...env },
    cwd: dir,
    auditLog: join(dir, 'audit.jsonl'),
    systemDir: null,
    terminal: join(dir, 'no-terminal'),
    ...extra,
  };
}

/** The log's records, parsed. */
export function records(log) {
  return readFileSync(log, 'utf8').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line));
}

/** Runs the CLI with only PATH (no PRODGUARD_* variable, no ./prodguard.toml decides anything). */
export function cli(t, args, { cwd, env = {} } = {}) {
  const bin = findCli();
  if (bin === null) {
    t.skip('no prodguard CLI: set PRODGUARD_CLI, or run `cargo build -p prodguard-cli`');
    return null;
  }
  return spawnSync(bin, args, { cwd, env: { PATH: process.env.PATH, HOME: cwd, ...env }, encoding: 'utf8' });
}

/** `prodguard audit verify --log LOG` passes, and the seqs go 1, 2, 3, …; answers the records. */
export function assertVerifies(t, log) {
  const all = records(log);
  all.forEach((record, i) => assert.equal(record.seq, i + 1, `seq of line ${i + 1}`));
  const out = cli(t, ['audit', 'verify', '--log', log], { cwd: tmpdir() });
  if (out !== null) {
    assert.equal(out.status, 0, `audit verify exited ${out.status}: ${out.stdout}${out.stderr}`);
    assert.match(out.stdout, new RegExp(`intact, ${all.length} records`));
  }
  return all;
}
