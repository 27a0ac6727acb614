// Policy errors name the line and column, so a person can fix the policy.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { ProdguardError } from '../prodguard.mjs';
import { loadProdguard } from '../test-support/wasm.mjs';

let pg;
before(async () => {
  pg = await loadProdguard();
});

function policyError(policy) {
  try {
    pg.evaluate({ policy, operation: { kind: 'db.migrate', target: 'orders' } });
  } catch (error) {
    assert.ok(error instanceof ProdguardError, `${error.name}: ${error.message}`);
    assert.equal(error.code, 125);
    return error.message;
  }
  assert.fail(`policy ${JSON.stringify(policy)} was accepted`);
}

test('a misspelt key is 125 with its line:column and a suggestion', () => {
  const message = policyError('[[rule]]\nrequre = 1');
  assert.match(message, /2:1/);
  assert.match(message, /requre/);
  assert.match(message, /did you mean `require`/);
});

test('TOML syntax errors and bad values are 125 with their line:column', () => {
  assert.match(policyError('[[rule]]\nname = "a"\noperations = ["db.*"\n'), /3:\d+: invalid TOML/);
  assert.match(policyError('[[rule]]\nname = "a"\noperations = ["db.*"]\nrequire = ["confrim"]\n'), /4:\d+: .*confrim/);
});

test('an empty policy is refused rather than guarding nothing', () => {
  assert.match(policyError(''), /no \[\[rule\]\]/);
});

test('a valid inline policy decides instead of the built-in default', () => {
  const answer = pg.evaluate({
    facts: { env: { APP_ENV: 'staging' } },
    policy: '[[rule]]\nname = "no drops"\noperations = ["db.drop"]\ndeny = "never here"\n',
    operation: { kind: 'db.drop', target: 'orders' },
  });
  assert.deepEqual(
    { result: answer.decision.result, rule: answer.decision.rule, exit_code: answer.decision.exit_code },
    { result: 'deny', rule: 'no drops', exit_code: 120 },
  );
});
