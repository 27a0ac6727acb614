// guard.run() on Node (@prodguard/wasm/node createGuard): the module decides,
// the host appends durably under the log's flock, and the real CLI
// verifies what it wrote.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { GuardRefusal, ProdguardError, createGuard, nodeActor } from '../node.mjs';
import { assertVerifies, baseOptions, cli, findCli, records, tempDir } from '../test-support/guard.mjs';
import { loadProdguard, repoRoot } from '../test-support/wasm.mjs';

const MIGRATE = { kind: 'db.migrate', target: 'orders' };
const refusal = (code, message) => (error) => {
  assert.ok(error instanceof GuardRefusal, String(error));
  assert.ok(error instanceof ProdguardError);
  assert.equal(error.code, code, error.message);
  if (message) assert.match(error.message, message);
  return true;
};

test('development: the work runs, its value is returned, intent and outcome are appended and verify', async (t) => {
  const dir = tempDir(t);
  const guard = await createGuard(baseOptions(dir, { APP_ENV: 'development' }));
  assert.equal(guard.detection.tier, 'development');
  assert.equal(guard.auditLog, join(dir, 'audit.jsonl'));
  assert.match(guard.ledger, /^file:\/\/.*\/audit\.jsonl$/);
  const value = await guard.run(MIGRATE, async () => ({ applied: 3 }));
  assert.deepEqual(value, { applied: 3 });
  const [intent, outcome] = assertVerifies(t, guard.auditLog);
  assert.equal(intent.kind, 'intent');
  assert.equal(intent.op.kind, 'db.migrate');
  assert.equal(intent.op.target, 'orders');
  assert.equal(intent.op.tier, 'development');
  assert.equal(intent.pid, process.pid);
  assert.equal(outcome.kind, 'outcome');
  assert.equal(outcome.attempt_id, intent.attempt_id);
  assert.equal(outcome.outcome.status, 'ok');
  // A second run continues the same chain.
  await guard.run({ kind: 'cache.flush' }, () => undefined);
  const all = assertVerifies(t, guard.auditLog);
  assert.equal(all.length, 4);
  assert.ok(all.every((r) => r.log_id === intent.log_id));
});

test('production without a terminal: refused 121, the work is not called, the refusal is appended and verifies', async (t) => {
  const dir = tempDir(t);
  const guard = await createGuard(baseOptions(dir, { APP_ENV: 'production' }));
  let called = false;
  await assert.rejects(guard.run(MIGRATE, () => { called = true; }), (error) => {
    refusal(121, /confirmation required/)(error);
    assert.match(error.message, /not asked: no terminal to ask on/);
    assert.equal(error.recorded, true);
    assert.equal(error.denial.exit_code, 121);
    return true;
  });
  assert.equal(called, false);
  const [record] = assertVerifies(t, guard.auditLog);
  assert.equal(record.kind, 'refusal');
  assert.equal(record.decision.exit_code, 121);
});

test('work that throws: outcome `failed` with its message, and the error is re-thrown as it was', async (t) => {
  const dir = tempDir(t);
  const guard = await createGuard(baseOptions(dir, { APP_ENV: 'development' }));
  const boom = new Error('relation "orders" does not exist');
  await assert.rejects(guard.run(MIGRATE, async () => { throw boom; }), (error) => error === boom);
  const [, outcome] = assertVerifies(t, guard.auditLog);
  assert.equal(outcome.outcome.status, 'failed');
  assert.equal(outcome.outcome.error, 'relation "orders" does not exist');
});

/** An audit log nobody can create: under a directory this process cannot write (as root: under a regular file). */
function unwritableLog(dir) {
  const blocked = join(dir, 'blocked');
  if (process.getuid?.() === 0) {
    writeFileSync(blocked, 'a file, not a directory\n');
  } else {
    mkdirSync(blocked);
    chmodSync(blocked, 0o500);
  }
  return join(blocked, 'logs', 'audit.jsonl');
}

test('an audit log in an unwritable directory: 123 and the work is not called (production and development)', async (t) => {
  const dir = tempDir(t);
  const auditLog = unwritableLog(dir);
  for (const APP_ENV of ['production', 'development']) {
    const guard = await createGuard(baseOptions(dir, { APP_ENV }, { auditLog }));
    let called = false;
    await assert.rejects(guard.run(MIGRATE, () => { called = true; }), refusal(123, /audit/));
    assert.equal(called, false, APP_ENV);
  }
});

test('concurrent runs in one process keep the chain valid (seq strictly increasing)', async (t) => {
  const dir = tempDir(t);
  const guard = await createGuard(baseOptions(dir, { APP_ENV: 'development' }));
  const values = await Promise.all(Array.from({ length: 8 }, (_, i) => guard.run({ kind: 'db.migrate', target: `db${i}` }, async () => {
    await new Promise((done) => setTimeout(done, 5 * (i % 3)));
    return i;
  })));
  assert.deepEqual(values, [0, 1, 2, 3, 4, 5, 6, 7]);
  const all = assertVerifies(t, guard.auditLog);
  assert.equal(all.length, 16);
  assert.equal(new Set(all.map((r) => r.attempt_id)).size, 8);
});

const child = fileURLToPath(new URL('../test-support/guard-child.mjs', import.meta.url));

/** Runs test-support/guard-child.mjs: `runs` guarded runs appending to `log`. */
function nodeWriter(log, runs, env = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, log, String(runs)], {
      env: { PATH: process.env.PATH, APP_ENV: 'development', ...env, PRODGUARD_WASM_UNDER_TEST: baseOptions('.', {}).module },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stdout.on('data', (d) => { output += d; });
    proc.stderr.on('data', (d) => { output += d; });
    proc.on('error', reject);
    proc.on('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`guard-child exited ${code}: ${output}`))));
  });
}

/** The Rust file sink appending notes to the same log (`prodguard audit record`). */
function rustWriter(log, notes) {
  const bin = findCli();
  return (async () => {
    for (let i = 0; i < notes; i += 1) {
      await new Promise((resolve, reject) => {
        const proc = spawn(bin, ['audit', 'record', '--log', log, '--message', `rust note ${i}`], { env: { PATH: process.env.PATH }, stdio: 'ignore' });
        proc.on('error', reject);
        proc.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`prodguard audit record exited ${code}`))));
      });
    }
  })();
}

test('two Node processes and a Rust writer appending to one log at once: the chain stays valid', async (t) => {
  const dir = tempDir(t);
  const log = join(dir, 'audit.jsonl');
  const writers = [nodeWriter(log, 6), nodeWriter(log, 6)];
  if (findCli() !== null) writers.push(rustWriter(log, 6));
  await Promise.all(writers);
  const all = assertVerifies(t, log);
  assert.equal(all.length, 2 * 12 + (findCli() !== null ? 6 : 0));
  assert.equal(new Set(all.map((r) => r.pid)).size, findCli() !== null ? 2 + 6 : 2);
});

test('a torn tail (a cut-short write) is not appended to: 123 naming `prodguard audit repair`', async (t) => {
  const dir = tempDir(t);
  const guard = await createGuard(baseOptions(dir, { APP_ENV: 'development' }));
  await guard.run(MIGRATE, () => 1);
  writeFileSync(guard.auditLog, readFileSync(guard.auditLog, 'utf8') + '{"v":1,"log_id":"x","se');
  let called = false;
  await assert.rejects(guard.run(MIGRATE, () => { called = true; }), refusal(123, /torn record.*audit repair/s));
  assert.equal(called, false);
});

test('an AI agent is never asked: 121 without a prompt, even with a terminal to ask on', async (t) => {
  const dir = tempDir(t);
  // A "terminal" that would answer `orders` if anyone read it.
  const terminal = join(dir, 'fake-tty');
  writeFileSync(terminal, 'orders\n');
  const shown = [];
  const guard = await createGuard(baseOptions(dir, { APP_ENV: 'production', CLAUDECODE: '1' }, { terminal, output: { write: (text) => shown.push(text) } }));
  assert.equal(guard.actor.kind, 'agent');
  await assert.rejects(guard.run(MIGRATE, () => assert.fail('ran')), refusal(121, /AI agent cannot confirm by typing/));
  assert.deepEqual(shown, []);
});

test('the policy comes from PRODGUARD_POLICY, else ./prodguard.toml; one that is invalid or unreadable is 125', async (t) => {
  const dir = tempDir(t);
  const deny = '[[rule]]\nname = "no drops"\noperations = ["db.drop"]\ndeny = "never from here"\n';
  writeFileSync(join(dir, 'prodguard.toml'), deny);
  const local = await createGuard(baseOptions(dir, { APP_ENV: 'development' }));
  await assert.rejects(local.run({ kind: 'db.drop', target: 'orders' }, () => assert.fail('ran')), refusal(120, /no drops/));
  writeFileSync(join(dir, 'other.toml'), '[[rule]]\noperations = ["db.*"]\ntiers = ["development"]\nrequire = ["confirm"]\n');
  const named = await createGuard(baseOptions(dir, { APP_ENV: 'development', PRODGUARD_POLICY: 'other.toml' }));
  assert.equal(named.check({ kind: 'db.drop', target: 'orders' }).decision.exit_code, 121);
  await assert.rejects(createGuard(baseOptions(dir, { PRODGUARD_POLICY: 'missing.toml' })), refusal(125, /cannot read policy file .*missing\.toml/));
  writeFileSync(join(dir, 'bad.toml'), '[[rule]]\nrequre = 1\n');
  await assert.rejects(createGuard(baseOptions(dir, { PRODGUARD_POLICY: 'bad.toml' })), (error) => error instanceof ProdguardError && error.code === 125);
  // The `policy` option (text) wins; null is the built-in default.
  const given = await createGuard(baseOptions(dir, { APP_ENV: 'development' }, { policy: null }));
  assert.equal(given.check({ kind: 'db.drop', target: 'orders' }).decision.exit_code, 0);
});

test('[audit] as the module reads it: the policy\'s log is used, the default\'s durability is fine, seals, rotation and a sink are refused (125)', async (t) => {
  const dir = tempDir(t);
  const rule = '[[rule]]\noperations = ["db.*"]\ntiers = ["production"]\nrequire = ["confirm"]\n';
  // The policy names the log: written there (no auditLog option, no variable).
  const named = join(dir, 'policy-named.jsonl');
  const withLog = await createGuard(baseOptions(dir, { APP_ENV: 'development' }, {
    auditLog: undefined,
    policy: `[audit]\nlog = ${JSON.stringify(named)}\ndurability = "fdatasync"\n${rule}`,
  }));
  assert.equal(withLog.auditLog, named);
  await withLog.run(MIGRATE, () => 1);
  assertVerifies(t, named);
  // Seals, rotation and fleet's sink: this host does none of them.
  for (const text of ['[audit]\nseal_key_file = "/etc/prodguard/seal.key"\n', '[audit]\nrotate_bytes = 1048576\n']) {
    await assert.rejects(createGuard(baseOptions(dir, {}, { policy: `${text}${rule}` })), refusal(125, /does not do/), text);
  }
});

test('the system policy counts only when root-owned and writable by nobody else, and is layered under the local one', async (t) => {
  const dir = tempDir(t);
  const system = join(dir, 'etc-prodguard');
  mkdirSync(system, { mode: 0o755 });
  chmodSync(dir, 0o755);
  writeFileSync(join(system, 'policy.toml'), '[[rule]]\nname = "system: no drops"\noperations = ["db.drop"]\ndeny = "never from here"\n', { mode: 0o644 });
  const options = baseOptions(dir, { APP_ENV: 'development' }, { systemDir: system, auditLog: undefined, env: { PATH: process.env.PATH, APP_ENV: 'development', PRODGUARD_AUDIT_LOG: join(dir, 'audit.jsonl') } });
  if (process.getuid?.() !== 0) {
    await assert.rejects(createGuard(options), refusal(125, /not root/));
    return;
  }
  const guard = await createGuard({ ...options, policy: '[[rule]]\noperations = ["db.migrate"]\ntiers = ["production"]\nrequire = ["confirm"]\n' });
  assert.equal(guard.check({ kind: 'db.drop', target: 'x' }).decision.exit_code, 120);
  // Under a system policy the trail is the system's, whatever PRODGUARD_AUDIT_LOG says.
  assert.equal(guard.auditLog, '/var/log/prodguard/audit.jsonl');
  chmodSync(join(system, 'policy.toml'), 0o666);
  await assert.rejects(createGuard(options), refusal(125, /writable by others \(mode 666\).*chmod go-w/));
  chmodSync(join(system, 'policy.toml'), 0o644);
  chmodSync(system, 0o775);
  await assert.rejects(createGuard(options), refusal(125, /the directory .* is writable by its group/));
});

test('nodeActor: the module decides the kind (agent beats ci beats human beats service); the account is this process\'s', async () => {
  const pg = await loadProdguard();
  const none = '/nonexistent/tty';
  assert.equal(nodeActor({ pg, env: { CLAUDECODE: '1', CI: 'true' }, terminal: none }).kind, 'agent');
  assert.equal(nodeActor({ pg, env: { CURSOR_AGENT: '1' }, terminal: none }).kind, 'agent');
  assert.equal(nodeActor({ pg, env: { CI: 'true' }, terminal: none }).kind, 'ci');
  assert.equal(nodeActor({ pg, env: { CI: 'false', CLAUDECODE: '0' }, terminal: none }).kind, process.stdin.isTTY ? 'human' : 'service');
  const actor = nodeActor({ pg, env: { PRODGUARD_ACTOR: 'deploy-bot', USER: 'x' }, terminal: none });
  assert.equal(actor.user, 'deploy-bot');
  assert.ok(actor.account.length > 0);
  assert.throws(() => nodeActor({ env: {} }), TypeError);
});

test('guard.run checks its arguments', async (t) => {
  const dir = tempDir(t);
  const guard = await createGuard(baseOptions(dir, { APP_ENV: 'development' }));
  await assert.rejects(guard.run({ target: 'x' }, () => 1), TypeError);
  await assert.rejects(guard.run(MIGRATE), TypeError);
});

test('an approval token is spent once: the second run with it is refused (121) and recorded', async (t) => {
  const dir = tempDir(t);
  const keygen = cli(t, ['keygen', '--approver', 'bob', '--out', join(dir, 'bob.key')], { cwd: dir });
  if (keygen === null) return;
  assert.equal(keygen.status, 0, keygen.stderr);
  const key = keygen.stdout.trim();
  const policy = `[approval]\napprovers = { bob = { key = "${key}", user = "bob-not-me" } }\nfour_eyes = true\n\n`
    + '[[rule]]\nname = "migrations"\noperations = ["db.*"]\ntiers = ["production"]\nrequire = ["confirm", "audit"]\nconfirm = { mode = "approval" }\n';
  writeFileSync(join(dir, 'prodguard.toml'), policy);
  const guard = await createGuard(baseOptions(dir, { APP_ENV: 'production' }));
  const approve = cli(t, ['approve', '--key', join(dir, 'bob.key'), '--op', 'db.migrate', '--target', 'orders', '--env', 'production', '--ttl', '5m', '--ledger', guard.ledger], { cwd: dir });
  assert.equal(approve.status, 0, approve.stderr);
  const token = approve.stdout.trim();
  assert.match(token, /^pga2\./);
  // Without it: refused, and an approval-only rule never asks anyone.
  await assert.rejects(guard.run(MIGRATE, () => assert.fail('ran')), refusal(121));
  let runs = 0;
  assert.equal(await guard.run({ ...MIGRATE, approval: token }, () => { runs += 1; return 'ok'; }), 'ok');
  await assert.rejects(guard.run({ ...MIGRATE, approval: token }, () => { runs += 1; }), refusal(121, /already spent.*seq 2/));
  assert.equal(runs, 1);
  const all = assertVerifies(t, guard.auditLog);
  assert.deepEqual(all.map((r) => r.kind), ['refusal', 'intent', 'outcome', 'refusal']);
  assert.equal(all[1].confirm.method, 'approval');
  assert.equal(all[1].confirm.approver, 'bob');
  assert.match(all[1].confirm.token_id, /^[0-9a-f]+$/);
  // PRODGUARD_APPROVAL is the token when the run names none (spent here too).
  const fromEnv = await createGuard(baseOptions(dir, { APP_ENV: 'production', PRODGUARD_APPROVAL: token }));
  await assert.rejects(fromEnv.run(MIGRATE, () => assert.fail('ran')), refusal(121, /already spent/));
});


test('staged: production runs only what staging ran with the same fingerprint; the intent cites it; a forged staging trail is no evidence', async (t) => {
  const dir = tempDir(t);
  const stagingLog = join(dir, 'staging.jsonl');
  const policy = `[promotion]\nfrom = "staging"\nstaging_log = ${JSON.stringify(stagingLog)}\n` +
    '[[rule]]\nname = "staged first"\noperations = ["db.migrate"]\ntiers = ["production"]\nrequire = ["audit", "staged"]\n';
  const staging = await createGuard(baseOptions(dir, { APP_ENV: 'staging' }, { policy, auditLog: stagingLog }));
  const production = await createGuard(baseOptions(dir, { APP_ENV: 'production' }, { policy }));
  const migrate = { ...MIGRATE, fingerprint: '3f2a9c' };

  // No staging trail yet: no evidence (123), the work is not called.
  await assert.rejects(production.run(migrate, () => assert.fail('ran')), refusal(123, /staging\.jsonl/));
  await staging.run({ ...migrate, fingerprint: 'other' }, () => undefined);
  await assert.rejects(production.run(migrate, () => assert.fail('ran')), refusal(120, /run it in staging first: no successful `db\.migrate` with fingerprint 3f2a9c/));
  await assert.rejects(production.run(MIGRATE, () => assert.fail('ran')), refusal(125, /fingerprint/));

  await staging.run(migrate, () => undefined);
  assert.equal(await production.run(migrate, () => 'migrated'), 'migrated');
  const stagingRecords = assertVerifies(t, stagingLog);
  const outcome = stagingRecords.at(-1);
  const intent = assertVerifies(t, production.auditLog).findLast((r) => r.kind === 'intent');
  assert.equal(intent.promotion.from, 'staging');
  assert.equal(intent.promotion.trail, stagingLog);
  assert.deepEqual(intent.promotion.runs[0].outcome, { log_id: outcome.log_id, seq: outcome.seq, hash: outcome.hash, at: intent.promotion.runs[0].outcome.at });

  // An edited staging record breaks the chain: no evidence (123), naming the line.
  writeFileSync(stagingLog, readFileSync(stagingLog, 'utf8').replace('"fingerprint":"other"', '"fingerprint":"3f2a9d"'));
  await assert.rejects(production.run(migrate, () => assert.fail('ran')), refusal(123, /line 1 does not verify/));
});

test('staged under a system policy: the staging trail counts only when root\'s alone, as the layer is', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root, to own the system layer');
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const system = join(dir, 'etc-prodguard');
  mkdirSync(system, { mode: 0o755 });
  const stagingDir = join(dir, 'staging');
  mkdirSync(stagingDir, { mode: 0o755 });
  const stagingLog = join(stagingDir, 'audit.jsonl');
  writeFileSync(join(system, 'policy.toml'),
    `[audit]\nlog = ${JSON.stringify(join(dir, 'system-audit.jsonl'))}\n` +
    `[promotion]\nfrom = "staging"\nstaging_log = ${JSON.stringify(stagingLog)}\n` +
    '[[rule]]\nname = "system: staged first"\noperations = ["db.migrate"]\ntiers = ["production"]\nrequire = ["audit", "staged"]\n',
    { mode: 0o644 });
  const migrate = { ...MIGRATE, fingerprint: '3f2a9c' };
  const staging = await createGuard(baseOptions(dir, { APP_ENV: 'staging' }, { auditLog: stagingLog, policy: '[[rule]]\noperations = ["*"]\nrequire = ["audit"]\n' }));
  await staging.run(migrate, () => undefined);
  chmodSync(stagingLog, 0o644);
  const production = await createGuard(baseOptions(dir, { APP_ENV: 'production' }, { systemDir: system, auditLog: undefined, policy: null }));
  assert.equal(await production.run(migrate, () => 'ran'), 'ran');
  chmodSync(stagingLog, 0o666);
  await assert.rejects(production.run(migrate, () => assert.fail('ran')), refusal(123, /writable by others .*\[promotion\] staging_log/));
});
