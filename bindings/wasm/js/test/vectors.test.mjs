// The shared vectors (tests/vectors, see its README): the same answers as
// the Rust core, the C ABI and the CLI.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { loadProdguard, readVectors } from '../test-support/wasm.mjs';

const FACTS_FIELDS = ['env', 'files', 'hostname', 'explicit'];
const OPERATION_FIELDS = ['kind', 'target'];

let pg;
before(async () => {
  pg = await loadProdguard();
});

/** Problems with a case's shape: unknown or missing fields fail loudly, so a typo in a vector cannot pass. */
function shapeProblems(c, fields, expectFields) {
  const problems = [];
  const check = (where, value, allowed, required = allowed) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      problems.push(`${where} is not an object`);
      return;
    }
    for (const key of Object.keys(value)) if (!allowed.includes(key)) problems.push(`unknown field ${where}.${key}`);
    for (const key of required) if (!(key in value)) problems.push(`missing field ${where}.${key}`);
  };
  check('case', c, fields, fields.filter((f) => f !== 'sql' && !(f === 'operation' && 'sql' in c)));
  check('facts', c.facts ?? {}, FACTS_FIELDS, []);
  check('expect', c.expect ?? {}, expectFields);
  // A case gives operation.kind, or `sql` (the script is the operation).
  if ('operation' in c) check('operation', c.operation, OPERATION_FIELDS, 'sql' in c ? [] : ['kind']);
  if ('sql' in c) check('sql', c.sql, ['script', 'dialect']);
  return problems;
}

/** Runs every case and fails once, listing every failing case by name. */
function runVectors(file, fields, expectFields, requestOf, actualOf) {
  const cases = readVectors(file);
  assert.ok(Array.isArray(cases) && cases.length > 0, `${file} has no cases`);
  const failures = [];
  const names = new Set();
  for (const c of cases) {
    const name = c.name ?? '<unnamed>';
    if (names.has(name)) failures.push(`${name}: the name is not unique`);
    names.add(name);
    const problems = shapeProblems(c, fields, expectFields);
    if (problems.length > 0) {
      failures.push(`${name}: ${problems.join(', ')}`);
      continue;
    }
    let actual;
    try {
      actual = actualOf(pg.evaluate(requestOf(c)));
    } catch (error) {
      failures.push(`${name}: ${error.name} ${error.code ?? ''}: ${error.message}`);
      continue;
    }
    try {
      assert.deepStrictEqual(actual, c.expect);
    } catch {
      failures.push(`${name}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(c.expect)}`);
    }
  }
  assert.equal(failures.length, 0, `${failures.length} of ${cases.length} cases in ${file} fail:\n${failures.join('\n')}`);
}

test('detection.json: every case, under the built-in default policy', () => {
  runVectors(
    'detection.json',
    ['name', 'facts', 'expect'],
    ['environment', 'tier', 'protected', 'decided_by', 'conflicts'],
    (c) => ({ facts: c.facts, operation: { kind: 'app.check' } }),
    ({ detection: d }) => ({
      environment: d.environment,
      tier: d.tier,
      protected: d.protected,
      decided_by: d.decided_by,
      conflicts: d.conflicts.length,
    }),
  );
});

test('decisions.json: every case, with its policy (null: the built-in default)', () => {
  runVectors(
    'decisions.json',
    ['name', 'facts', 'policy', 'operation', 'sql', 'expect'],
    ['environment', 'tier', 'protected', 'result', 'rule', 'requirements', 'exit_code'],
    (c) => ({ facts: c.facts, policy: c.policy, ...('operation' in c && { operation: c.operation }), ...('sql' in c && { sql: c.sql }) }),
    ({ detection: d, decision }) => {
      // The shape the Rust runner checks too: each requirement says which
      // rule asks for it and how to meet it, and the reasons are not empty.
      for (const r of decision.requirements) {
        assert.ok(r.rule.length > 0 && r.how.length > 0, `requirement ${r.kind} has an empty rule or how`);
      }
      assert.ok(decision.reasons.length > 0 && decision.reasons.every((r) => typeof r === 'string'), 'no reasons');
      return {
        environment: d.environment,
        tier: d.tier,
        protected: d.protected,
        result: decision.result,
        rule: decision.rule,
        requirements: decision.requirements.map((r) => r.kind),
        exit_code: decision.exit_code,
      };
    },
  );
});
