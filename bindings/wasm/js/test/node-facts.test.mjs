// nodeFacts (@prodguard/wasm/node): the facts of the running process, as
// the Rust runtime gathers them, ready for evaluate.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import * as browser from '../prodguard.mjs';
import * as node from '../node.mjs';
import { DEFAULT_MARKER_FILE, nodeFacts } from '../node.mjs';
import { wasmBytes } from '../test-support/wasm.mjs';

function tempDir(t) {
  const dir = mkdtempSync(join(tmpdir(), 'prodguard-js-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('node.mjs offers everything prodguard.mjs does', () => {
  for (const name of Object.keys(browser)) assert.equal(node[name], browser[name], name);
});

test('by default: every variable of process.env, os.hostname(), and the default marker file when it exists', () => {
  const facts = nodeFacts();
  assert.deepEqual(facts.env, { ...process.env });
  assert.equal(facts.hostname, hostname() || null);
  assert.equal(facts.explicit, null);
  assert.deepEqual(Object.keys(facts.files).filter((path) => path !== DEFAULT_MARKER_FILE), []);
  assert.equal(DEFAULT_MARKER_FILE, '/etc/prodguard/environment');
});

test('a process-like input: only string values, an empty hostname is none, no marker file', () => {
  const facts = nodeFacts({
    env: { APP_ENV: 'production', UNSET: undefined },
    hostname: '',
    markerFile: null,
    explicit: 'staging',
  });
  assert.deepEqual(facts, { env: { APP_ENV: 'production' }, files: {}, hostname: null, explicit: 'staging' });
});

test('the marker file: its first 4 KiB when it exists, nothing when it does not, a fail-closed value when unreadable', (t) => {
  const dir = tempDir(t);
  const marker = join(dir, 'environment');
  writeFileSync(marker, `production\n${'#'.repeat(5000)}`);
  assert.equal(nodeFacts({ env: {}, markerFile: marker }).files[marker], `production\n${'#'.repeat(4096 - 11)}`);
  assert.deepEqual(nodeFacts({ env: {}, markerFile: join(dir, 'missing') }).files, {});
  assert.match(nodeFacts({ env: {}, markerFile: dir }).files[dir], /^<unreadable: .*EISDIR/);
});

test('nodeFacts feeds evaluate: the marker file a policy names decides the environment', async (t) => {
  const dir = tempDir(t);
  const marker = join(dir, 'environment');
  writeFileSync(marker, 'production\n');
  const pg = await node.load(wasmBytes());
  const evaluate = (markerFile) => pg.evaluate({
    facts: nodeFacts({ env: {}, markerFile, hostname: 'web-1' }),
    policy: `[environment]\nmarker_file = ${JSON.stringify(markerFile)}\n\n` +
      '[[rule]]\nname = "migrations"\noperations = ["db.*"]\ntiers = ["production", "unknown"]\nrequire = ["confirm"]\n',
    operation: { kind: 'db.migrate', target: 'orders' },
  });

  const { detection, decision } = evaluate(marker);
  assert.equal(detection.tier, 'production');
  assert.equal(detection.decided_by, `file:${marker}`);
  assert.equal(decision.exit_code, 121);

  // A marker that cannot be read keeps the environment guarded.
  const unreadable = evaluate(dir);
  assert.equal(unreadable.detection.decided_by, `file:${dir}`);
  assert.equal(unreadable.detection.tier, 'unknown');
  assert.equal(unreadable.detection.protected, true);
  assert.equal(unreadable.decision.exit_code, 121);
});
