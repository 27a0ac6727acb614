// A host's whole flow: evaluate with evidence (deny, then proceed once the
// person typed the target), then append the intent, the outcome and a note
// with auditRecord: a log that `prodguard audit verify` accepts, and that
// fails verification once a byte changes.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';

import { loadProdguard, repoRoot } from '../test-support/wasm.mjs';

const NOW = '2026-11-27T10:00:00Z';
const ZEROS = '0'.repeat(64);

let pg;
before(async () => {
  pg = await loadProdguard();
});

function migrate(evidence, target = 'orders') {
  return pg.evaluate({
    facts: { env: { APP_ENV: 'production' } },
    operation: { kind: 'db.migrate', target },
    evidence: { actor: { user: 'alice', kind: 'human' }, attempt_id: 'attempt-1', ...evidence },
    now: NOW,
  });
}

test('production, default policy, nothing typed: deny 121, with the challenge to show and a refusal to record', () => {
  const { decision, session } = migrate({});
  assert.equal(decision.exit_code, 121);
  assert.equal(session.step, 'deny');
  assert.equal(session.exit_code, 121);
  assert.equal(session.denial.exit_code, 121);
  assert.equal(session.challenge.expected, 'orders');
  assert.equal(session.challenge.target, 'orders');
  assert.equal(session.record.kind, 'refusal');
  assert.equal(session.record.attempt_id, 'attempt-1');
});

test('typing the target proceeds, with the intent to append first', () => {
  const { session } = migrate({ typed: 'orders' });
  assert.equal(session.step, 'proceed');
  assert.equal(session.exit_code, 0);
  assert.equal(session.challenge.expected, 'orders');
  assert.equal(session.record.kind, 'intent');
  assert.equal(session.record.attempt_id, 'attempt-1');
  assert.deepEqual(session.record.actor, { user: 'alice', kind: 'human' });
  assert.equal(session.record.op.kind, 'db.migrate');
  assert.equal(session.record.op.target, 'orders');
  assert.equal(session.record.confirm.method, 'typed');
});

test('typing something else is refused (121)', () => {
  const { session } = migrate({ typed: 'order' });
  assert.equal(session.step, 'deny');
  assert.equal(session.exit_code, 121);
});

test('without a target, the environment\'s name is what to type', () => {
  const { session } = migrate({}, null);
  assert.equal(session.challenge.expected, 'production');
  assert.equal(migrate({ typed: 'production' }, null).session.step, 'proceed');
});

/** Three records, chained: the intent, its outcome, a note. */
function chain() {
  const events = [
    migrate({ typed: 'orders' }).session.record,
    { kind: 'outcome', attempt_id: 'attempt-1', outcome: { status: 'ok', duration_ms: 5 } },
    { kind: 'note', message: 'hi' },
  ];
  let prev = ZEROS;
  return events.map((event, i) => {
    const record = pg.auditRecord({
      log_id: 'js-loader-test', seq: i + 1, ts: `2026-11-27T10:00:0${i}.000001Z`,
      host: 'web-1', pid: 4242, prev, event,
    });
    const result = { ...record, prev };
    prev = record.hash;
    return result;
  });
}

test('auditRecord chains records: seq from 1, each prev the previous hash, one line each', () => {
  const records = chain();
  records.forEach(({ line, hash, prev }, i) => {
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.ok(line.endsWith('\n') && line.indexOf('\n') === line.length - 1, `record ${i + 1} is not one line`);
    const parsed = JSON.parse(line);
    assert.equal(parsed.seq, i + 1);
    assert.equal(parsed.log_id, 'js-loader-test');
    assert.equal(parsed.prev, prev);
    assert.equal(parsed.hash, hash);
  });
  assert.equal(records[0].prev, ZEROS);
  assert.equal(JSON.parse(records[0].line).kind, 'intent');
  assert.equal(JSON.parse(records[1].line).outcome.duration_ms, 5);
  assert.equal(JSON.parse(records[2].line).message, 'hi');
  // The same input gives the same line: hosts can rely on the hash.
  assert.deepEqual(chain(), records);
});

function findCli() {
  if (process.env.PRODGUARD_CLI) return process.env.PRODGUARD_CLI;
  const built = join(repoRoot, 'target', 'debug', 'prodguard');
  return existsSync(built) ? built : null;
}

test('prodguard audit verify accepts the log, and refuses it once a byte of the middle record flips', (t) => {
  const cli = findCli();
  if (cli === null) {
    t.skip('no prodguard CLI: set PRODGUARD_CLI, or run `cargo build -p prodguard-cli`');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'prodguard-js-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'audit.log');
  const records = chain();
  writeFileSync(log, records.map((r) => r.line).join(''));
  // Only --log decides which log: no PRODGUARD_* variable, no ./prodguard.toml.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PRODGUARD_')));
  const verify = () => spawnSync(cli, ['audit', 'verify', '--log', log], { cwd: dir, env, encoding: 'utf8' });

  const intact = verify();
  assert.equal(intact.status, 0, `exit ${intact.status}: ${intact.stdout}${intact.stderr}`);
  assert.match(intact.stdout, new RegExp(`intact, 3 records, head ${records[2].hash}`));

  const bytes = readFileSync(log);
  const middle = bytes.indexOf('"duration_ms":5');
  assert.ok(middle > 0);
  bytes[middle + '"duration_ms":'.length] ^= 0x01; // 5 → 4
  writeFileSync(log, bytes);
  const tampered = verify();
  assert.equal(tampered.status, 1, `exit ${tampered.status}: ${tampered.stdout}${tampered.stderr}`);
  assert.match(tampered.stdout + tampered.stderr, /TAMPERED: .* line 2 /);
});
