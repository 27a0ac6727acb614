// Approval tokens: verifyApproval answers the claims of a token that
// approves the operation and 121 naming the binding that does not; an
// evaluate session accepts a token as the confirmation. The tokens are
// made here as the ABI's token format says (pga2.<base64url claims>.
// <base64url Ed25519 signature over a domain tag and the payload>), with
// node:crypto's Ed25519.

import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { before, test } from 'node:test';

import { ProdguardError } from '../prodguard.mjs';
import { loadProdguard } from '../test-support/wasm.mjs';

// An Ed25519 private key is its 32-byte seed behind this PKCS#8 prefix.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const keyOf = (byte) => createPrivateKey({
  key: Buffer.concat([PKCS8_PREFIX, Buffer.alloc(32, byte)]), format: 'der', type: 'pkcs8',
});
const publicText = (key) => `ed25519:${createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64')}`;

const KEY = keyOf(0xa1);
const OTHER_KEY = keyOf(0xb2);
const NOW = '2026-11-27T10:00:00Z';
const LEDGER = 'file://db-1/var/log/prodguard/audit.jsonl';
// ana (OS account `ana`) may approve, under four eyes.
const POLICY = `[approval]\nfour_eyes = true\napprovers = { ana = { key = "${publicText(KEY)}", user = "ana" } }\n`
  + '[[rule]]\noperations = ["db.*"]\ntiers = ["production"]\nrequire = ["confirm"]\n';
const CLAIMS = {
  v: 2, op: 'db.migrate', target: 'orders', env: 'production', tier: 'production',
  approver: 'ana', iat: '2026-11-27T09:55:00Z', exp: '2026-11-27T10:10:00Z', nonce: '00112233445566778899aabbccddeeff',
  ledger: LEDGER,
};
const BOB = { user: 'bob', kind: 'human', account: 'bob' };

function token(claims, key = KEY) {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const signature = sign(null, Buffer.concat([Buffer.from('prodguard.approval.v2\0'), Buffer.from(payload)]), key);
  return `pga2.${payload}.${signature.toString('base64url')}`;
}

let pg;
before(async () => {
  pg = await loadProdguard();
});

function verify(patch = {}, claims = CLAIMS, key = KEY) {
  return pg.verifyApproval({
    token: token(claims, key), policy: POLICY, ledger: LEDGER, operation: { kind: 'db.migrate', target: 'orders' },
    environment: 'production', tier: 'production', requester: BOB, now: NOW, ...patch,
  });
}

test('a token that approves the operation answers its claims, nonce included', () => {
  const claims = verify();
  assert.equal(claims.v, 2);
  assert.equal(claims.op, 'db.migrate');
  assert.equal(claims.target, 'orders');
  assert.equal(claims.approver, 'ana');
  assert.equal(claims.nonce, CLAIMS.nonce);
  assert.equal(claims.ledger, LEDGER);
  assert.equal(Date.parse(claims.exp), Date.parse(CLAIMS.exp));
});

test('a token that does not approve the operation is 121, naming the binding', () => {
  const cases = [
    ['another key', () => verify({}, CLAIMS, OTHER_KEY), /forged/],
    ['an approver the policy does not list', () => verify({}, { ...CLAIMS, approver: 'eve' }, OTHER_KEY), /`eve`/],
    ['no approvers listed', () => verify({ policy: null }), /approvers/],
    ['another ledger', () => verify({ ledger: 'file://db-1/tmp/fresh.jsonl' }), /ledger/],
    ['no ledger', () => verify({ ledger: null }), /ledger/],
    ['another target', () => verify({ operation: { kind: 'db.migrate', target: 'users' } }), /target/],
    ['another operation', () => verify({ operation: { kind: 'db.drop', target: 'orders' } }), /operation/],
    ['another environment', () => verify({ environment: 'staging', tier: 'staging' }), /environment/],
    ['expired', () => verify({ now: '2026-11-27T10:10:00Z' }), /expired/],
    ['self-approved under four-eyes', () => verify({ requester: { user: 'not-ana', kind: 'human', account: 'ana' } }), /OS account `ana`/],
    ['a requester without an account under four-eyes', () => verify({ requester: { user: 'bob', kind: 'human' } }), /account/],
    ['a fingerprint it does not bind', () => verify({ operation: { kind: 'db.migrate', target: 'orders', fingerprint: 'sha256:ab' } }), /fingerprint/],
    ['no target', () => verify({ operation: { kind: 'db.migrate' } }), /target/],
    ['a pga1 token', () => verify({ token: 'pga1.e30.00' }), /replaced/],
    ['malformed', () => verify({ token: 'not-a-token' }), /pga2/],
  ];
  for (const [label, call, message] of cases) {
    assert.throws(call, (error) => {
      assert.ok(error instanceof ProdguardError, `${label}: ${error}`);
      assert.equal(error.code, 121, `${label}: ${error.message}`);
      assert.match(error.message, message, label);
      return true;
    }, label);
  }
  // Without four-eyes, the approver may run it themselves.
  const lax = POLICY.replace('four_eyes = true', 'four_eyes = false');
  assert.equal(verify({ policy: lax, requester: { user: 'ana', kind: 'human', account: 'ana' } }).approver, 'ana');
});

test('an evaluate session takes a token as the confirmation, and records its nonce to spend', () => {
  const evaluate = (approval) => pg.evaluate({
    facts: { env: { APP_ENV: 'production' } },
    policy: POLICY,
    operation: { kind: 'db.migrate', target: 'orders' },
    evidence: { actor: BOB, attempt_id: 'attempt-2', approval },
    now: NOW,
  }).session;
  const approved = evaluate({ token: token(CLAIMS), ledger: LEDGER });
  assert.equal(approved.step, 'proceed');
  assert.equal(approved.record.confirm.method, 'approval');
  assert.equal(approved.record.confirm.approver, 'ana');
  assert.equal(approved.record.confirm.token_id, CLAIMS.nonce);
  for (const refused of [{ token: token(CLAIMS, OTHER_KEY), ledger: LEDGER }, { token: token(CLAIMS) }]) {
    const session = evaluate(refused);
    assert.equal(session.step, 'deny');
    assert.equal(session.exit_code, 121);
  }
});
