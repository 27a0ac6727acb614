// Run by scripts/test-npm in a fresh project where the packed tarball was
// installed with `npm install --offline`: the package as a user gets it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Status, load } from '@prodguard/wasm';
import { createGuard, load as loadFromNode } from '@prodguard/wasm/node';

const installed = fileURLToPath(new URL('./node_modules/@prodguard/wasm/', import.meta.url));

test('the package ships prodguard.wasm and no tests or node_modules', () => {
  const files = readdirSync(installed).sort();
  assert.ok(files.includes('prodguard.wasm'), files.join(' '));
  for (const file of ['test', 'test-support', 'test-package', 'node_modules', 'tsconfig.json', 'package-lock.json']) {
    assert.ok(!files.includes(file), `the package ships ${file}`);
  }
});

test('load() without a path finds prodguard.wasm next to the loader', async () => {
  for (const loader of [load, loadFromNode]) {
    const pg = await loader();
    assert.equal(pg.abiVersion.major, 2);
    const { decision } = pg.evaluate({ facts: { env: { APP_ENV: 'production' } }, operation: { kind: 'db.migrate', target: 'orders' } });
    assert.equal(decision.exit_code, 121);
  }
  assert.equal(Status.INVALID_REQUEST, 125);
});

test('createGuard().run() runs the work in development, and the CLI verifies the log', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prodguard-npm-guard-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'audit.jsonl');
  const guard = await createGuard({ env: { APP_ENV: 'development' }, cwd: dir, auditLog: log, systemDir: null, terminal: null });
  assert.equal(await guard.run({ kind: 'db.migrate', target: 'orders' }, async () => 'migrated'), 'migrated');
  const cli = process.env.PRODGUARD_CLI;
  if (!cli || !existsSync(cli)) {
    t.skip('no prodguard CLI (PRODGUARD_CLI)');
    return;
  }
  const verify = spawnSync(cli, ['audit', 'verify', '--log', log], { cwd: dir, env: { PATH: process.env.PATH }, encoding: 'utf8' });
  assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  assert.match(verify.stdout, /intact, 2 records/);
});
