// SQL scripts through `evaluate` (`sql` in the request): the shared corpus
// (tests/sql, see its README) classifies as it says, through the JS loader.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';

import { ProdguardError } from '../prodguard.mjs';
import { loadProdguard, repoRoot } from '../test-support/wasm.mjs';

const CASE_FIELDS = ['dialect', 'sql', 'kinds', 'operation', 'tables', 'cascades', 'note'];

let pg;
before(async () => {
  pg = await loadProdguard();
});

test('the SQL corpus classifies as it says', () => {
  const cases = JSON.parse(readFileSync(join(repoRoot, 'tests', 'sql', 'corpus.json'), 'utf8'));
  assert.ok(cases.length >= 350, `${cases.length} cases`);
  const failures = [];
  cases.forEach((c, i) => {
    const name = `case ${i} (${c.dialect}) ${JSON.stringify(c.sql)}`;
    const unknown = Object.keys(c).filter((k) => !CASE_FIELDS.includes(k));
    if (unknown.length) failures.push(`${name}: unknown fields ${unknown}`);
    let answer;
    try {
      answer = pg.evaluate({ facts: { explicit: 'development' }, sql: { script: c.sql, dialect: c.dialect } });
    } catch (e) {
      failures.push(`${name}: ${e.message}`);
      return;
    }
    const { sql } = answer;
    const got = {
      kinds: sql.statements.map((s) => s.kind),
      operation: sql.operation,
      tables: sql.statements.map((s) => s.tables),
      cascades: sql.statements.map((s) => s.cascades),
    };
    for (const field of ['kinds', 'operation', 'tables', 'cascades']) {
      if (field in c) {
        try {
          assert.deepEqual(got[field], c[field]);
        } catch {
          failures.push(`${name}: ${field} ${JSON.stringify(got[field])}, the corpus says ${JSON.stringify(c[field])}`);
        }
      }
    }
    if (!sql.statements.every((s, index) => s.index === index)) failures.push(`${name}: indexes out of order`);
    if (answer.decision.result !== 'allow') failures.push(`${name}: development decided ${answer.decision.result}`);
  });
  assert.deepEqual(failures, [], `${failures.length} of ${cases.length} corpus cases failed:\n${failures.join('\n')}`);
});

test('the script is the operation: its decision, fingerprint and row bounds', () => {
  const policy = '[[rule]]\nname = "bulk"\noperations = ["db.delete.*"]\ntiers = ["production"]\n'
    + 'require = ["confirm", "audit"]\nmax_rows = 500\n';
  const request = {
    facts: { env: { APP_ENV: 'production' } },
    policy,
    sql: { script: 'SELECT 1;\nDELETE FROM carts;', dialect: 'postgres' },
    operation: { target: 'shop' },
  };
  const { decision, sql } = pg.evaluate(request);
  assert.equal(sql.operation, 'db.delete.all');
  assert.equal(sql.destructive, true);
  assert.match(sql.fingerprint, /^[0-9a-f]{64}$/);
  assert.deepEqual(sql.statements[1], {
    index: 1, kind: 'db.delete.all', destructive: true, tables: ['carts'], cascades: false, line: 2, start: 10, end: 27,
  });
  assert.deepEqual(sql.bounds, [{ index: 0, confirm: false }, { index: 1, max_rows: 500, max_rows_rule: 'bulk', confirm: true }]);
  assert.equal(decision.exit_code, 121);
  assert.equal(decision.rule, 'bulk');
  // A kind that is not the script's is refused, and so is a script without its dialect.
  assert.throws(
    () => pg.evaluate({ ...request, operation: { kind: 'db.read', target: 'shop' } }),
    (e) => e instanceof ProdguardError && e.code === 125 && /the script's operation is `db.delete.all`/.test(e.message),
  );
  assert.throws(
    () => pg.evaluate({ sql: { script: 'SELECT 1' } }),
    (e) => e instanceof ProdguardError && e.code === 125 && /dialect/.test(e.message),
  );
});
