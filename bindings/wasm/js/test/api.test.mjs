// The typed surface: what a call answers, what it throws, what it refuses.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { CALLS, ProdguardError, Status } from '../prodguard.mjs';
import { loadProdguard } from '../test-support/wasm.mjs';

const REQUEST = { facts: { env: { APP_ENV: 'production' } }, operation: { kind: 'db.migrate', target: 'orders' } };

let pg;
before(async () => {
  pg = await loadProdguard();
});

test('evaluate answers the ok payload: detection and decision, no session without evidence', () => {
  const answer = pg.evaluate(REQUEST);
  assert.deepEqual(Object.keys(answer).sort(), ['actor_kind', 'audit', 'decision', 'detection', 'promotion']);
  assert.equal(answer.actor_kind, 'service', 'no agent or CI variable, no terminal');
  assert.equal(answer.detection.environment, 'production');
  assert.equal(answer.detection.decided_by, 'env:APP_ENV');
  assert.deepEqual(answer.decision.requirements.map((r) => r.kind), ['confirm', 'audit']);
});

test('a request may be JSON text, and answers the same', () => {
  assert.deepEqual(pg.evaluate(JSON.stringify(REQUEST)), pg.evaluate(REQUEST));
});

test('callJson answers the raw status and text, for text and for bytes', () => {
  const text = JSON.stringify(REQUEST);
  const raw = pg.callJson('prodguard_evaluate', text);
  assert.equal(raw.status, Status.OK);
  assert.deepEqual(JSON.parse(raw.text).ok, pg.evaluate(REQUEST));
  assert.deepEqual(pg.callJson('prodguard_evaluate', new TextEncoder().encode(text)), raw);
  const error = pg.callJson('prodguard_evaluate', '{');
  assert.equal(error.status, Status.INVALID_REQUEST);
  assert.equal(JSON.parse(error.text).error.code, 125);
});

test('a non-zero status throws a ProdguardError carrying the status as code', () => {
  assert.throws(() => pg.evaluate('{'), (error) => {
    assert.ok(error instanceof ProdguardError && error instanceof Error);
    assert.equal(error.name, 'ProdguardError');
    assert.equal(error.code, Status.INVALID_REQUEST);
    assert.match(error.message, /^invalid request: /);
    return true;
  });
});

test('a decision to deny or to confirm is an answer, not an error', () => {
  const answer = pg.evaluate({
    ...REQUEST,
    policy: '[[rule]]\nname = "no drops"\noperations = ["db.drop"]\ndeny = "never"\n',
    operation: { kind: 'db.drop' },
  });
  assert.equal(answer.decision.result, 'deny');
  assert.equal(answer.decision.exit_code, 120);
});

test('misuse is a TypeError before anything reaches the module', () => {
  assert.deepEqual(CALLS, ['prodguard_evaluate', 'prodguard_audit_record', 'prodguard_verify_approval']);
  assert.throws(() => pg.callJson('prodguard_alloc', '{}'), TypeError);
  assert.throws(() => pg.callJson('evaluate', '{}'), TypeError);
  assert.throws(() => pg.callJson('prodguard_evaluate', { operation: { kind: 'x' } }), TypeError);
  assert.throws(() => pg.callJson('prodguard_evaluate', [1, 2]), TypeError);
  assert.throws(() => pg.evaluate(undefined), TypeError);
  assert.throws(() => pg.evaluate(() => {}), TypeError);
});
