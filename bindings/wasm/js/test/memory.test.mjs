// A host that follows ABI.md's memory rules (as this loader does) keeps the
// module's memory bounded: it reaches its size early and stays there.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ProdguardError } from '../prodguard.mjs';
import { loadProdguard } from '../test-support/wasm.mjs';

const NOW = '2026-11-27T10:00:00Z';

// Every call is a dry run under the built-in default policy (about 25 µs
// once V8 has optimised the module); every 100th iteration also runs the
// other paths: a whole session, an error answer, an audit record and a
// refused approval.
const DRY_RUN = {
  facts: { env: { APP_ENV: 'production' } },
  operation: { kind: 'db.migrate', target: 'orders' },
};
const SESSION = {
  facts: { env: { APP_ENV: 'production' } },
  operation: { kind: 'db.migrate', target: 'orders' },
  evidence: { actor: { user: 'alice', kind: 'human' }, attempt_id: 'a-1', typed: 'orders' },
  now: NOW,
};
const RECORD = {
  log_id: 'log-1', seq: 1, ts: NOW, host: 'web-1', pid: 1, prev: '0'.repeat(64),
  event: { kind: 'note', message: 'memory test' },
};
const APPROVAL = {
  token: 'pga2.e30.00', ledger: 'file://h/audit.jsonl', operation: { kind: 'db.migrate', target: 'orders' },
  environment: 'production', tier: 'production', requester: { user: 'alice', kind: 'human', account: 'alice' }, now: NOW,
};

function expectError(fn, code) {
  assert.throws(fn, (error) => error instanceof ProdguardError && error.code === code);
}

test('100,000 calls do not grow the memory: its size after 1,000 is its size after 100,000', async (t) => {
  const pg = await loadProdguard();
  const started = performance.now();
  let after1000 = 0;
  for (let i = 1; i <= 100_000; i++) {
    assert.equal(pg.evaluate(DRY_RUN).decision.exit_code, 121);
    if (i % 100 === 0) {
      assert.equal(pg.evaluate(SESSION).session.step, 'proceed');
      expectError(() => pg.evaluate({ ...DRY_RUN, extra: 1 }), 125);
      assert.equal(pg.auditRecord(RECORD).hash.length, 64);
      expectError(() => pg.verifyApproval(APPROVAL), 121);
    }
    if (i === 1_000) after1000 = pg.memory.buffer.byteLength;
  }
  const after100000 = pg.memory.buffer.byteLength;
  t.diagnostic(`memory ${after1000} bytes after 1,000 calls, ${after100000} after 100,000; ${Math.round(performance.now() - started)} ms`);
  assert.equal(after100000, after1000);
});
