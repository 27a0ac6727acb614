// Approval tokens: verifyApproval answers the claims of a token that
// approves the operation and 121 naming the binding that does not; an
// evaluate session accepts a token as the confirmation. The tokens are
// made here as the ABI's token format says (pga1.<base64url claims>.<hex
// HMAC-SHA256 over a domain tag and the payload>).

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { before, test } from 'node:test';

import { ProdguardError } from '../prodguard.mjs';
import { loadProdguard } from '../test-support/wasm.mjs';

const KEY = 'a1'.repeat(32);
const OTHER_KEY = 'b2'.repeat(32);
const NOW = '2026-11-27T10:00:00Z';
const CLAIMS = {
  v: 1, op: 'db.migrate', target: 'orders', env: 'production', tier: 'production',
  approver: 'ana', iat: '2026-11-27T09:55:00Z', exp: '2026-11-27T10:10:00Z', nonce: '00112233445566778899aabbccddeeff',
};

function token(claims, key = KEY) {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const mac = createHmac('sha256', Buffer.from(key, 'hex'))
    .update('prodguard.approval.v1\0')
    .update(payload)
    .digest('hex');
  return `pga1.${payload}.${mac}`;
}

let pg;
before(async () => {
  pg = await loadProdguard();
});

function verify(patch = {}, claims = CLAIMS, key = KEY) {
  return pg.verifyApproval({
    token: token(claims, key), key: KEY, operation: { kind: 'db.migrate', target: 'orders' },
    environment: 'production', tier: 'production', requester: 'bob', four_eyes: true, now: NOW, ...patch,
  });
}

test('a token that approves the operation answers its claims, nonce included', () => {
  const claims = verify();
  assert.equal(claims.v, 1);
  assert.equal(claims.op, 'db.migrate');
  assert.equal(claims.target, 'orders');
  assert.equal(claims.approver, 'ana');
  assert.equal(claims.nonce, CLAIMS.nonce);
  assert.equal(Date.parse(claims.exp), Date.parse(CLAIMS.exp));
});

test('a token that does not approve the operation is 121, naming the binding', () => {
  const cases = [
    ['another key', () => verify({}, CLAIMS, OTHER_KEY), /forged|another key/],
    ['another target', () => verify({ operation: { kind: 'db.migrate', target: 'users' } }), /target/],
    ['another operation', () => verify({ operation: { kind: 'db.drop', target: 'orders' } }), /operation/],
    ['another environment', () => verify({ environment: 'staging', tier: 'staging' }), /environment/],
    ['expired', () => verify({ now: '2026-11-27T10:10:00Z' }), /expired/],
    ['self-approved under four-eyes', () => verify({ requester: 'ana' }), /ana/],
    ['a fingerprint it does not bind', () => verify({ operation: { kind: 'db.migrate', target: 'orders', fingerprint: 'sha256:ab' } }), /fingerprint/],
    ['no target', () => verify({ operation: { kind: 'db.migrate' } }), /target/],
    ['malformed', () => pg.verifyApproval({
      token: 'not-a-token', key: KEY, operation: { kind: 'db.migrate', target: 'orders' },
      environment: 'production', tier: 'production', requester: 'bob', now: NOW,
    }), /pga1/],
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
  assert.equal(verify({ requester: 'ana', four_eyes: false }).approver, 'ana');
});

test('an evaluate session takes a token as the confirmation, and records its nonce to spend', () => {
  const evaluate = (approval) => pg.evaluate({
    facts: { env: { APP_ENV: 'production' } },
    operation: { kind: 'db.migrate', target: 'orders' },
    evidence: { actor: { user: 'bob', kind: 'human' }, attempt_id: 'attempt-2', approval },
    now: NOW,
  }).session;
  const approved = evaluate({ token: token(CLAIMS), key: KEY });
  assert.equal(approved.step, 'proceed');
  assert.equal(approved.record.confirm.method, 'approval');
  assert.equal(approved.record.confirm.approver, 'ana');
  assert.equal(approved.record.confirm.token_id, CLAIMS.nonce);
  const forged = evaluate({ token: token(CLAIMS, OTHER_KEY), key: KEY });
  assert.equal(forged.step, 'deny');
  assert.equal(forged.exit_code, 121);
});
