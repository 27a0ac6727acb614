// Bad input of every kind is an error status with a message, never a trap:
// a trap would surface as WebAssembly.RuntimeError and fail these tests.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { ProdguardError, Status } from '../prodguard.mjs';
import { loadProdguard } from '../test-support/wasm.mjs';

const NOW = '2026-11-27T10:00:00Z';
const ZEROS = '0'.repeat(64);

// One valid request per call, with a non-ASCII character so that byte
// prefixes cut a UTF-8 sequence in two.
const VALID = {
  prodguard_evaluate: {
    facts: { env: { APP_ENV: 'production' }, files: {}, hostname: 'db-eu-1', explicit: null },
    policy: null,
    operation: { kind: 'db.migrate', target: 'bücher', fingerprint: 'sha256:ab' },
    evidence: { actor: { user: 'zoë', kind: 'human' }, attempt_id: 'a-1', typed: 'bücher' },
    now: NOW,
  },
  prodguard_audit_record: {
    log_id: 'log-1', seq: 1, ts: NOW, host: 'web-1', pid: 4242, prev: ZEROS,
    event: { kind: 'note', message: 'grüße' },
  },
  prodguard_verify_approval: {
    token: 'pga2.e30.00', ledger: 'file://web-1/var/log/prodguard/bücher.jsonl',
    operation: { kind: 'db.migrate', target: 'bücher' },
    environment: 'production', tier: 'production', requester: { user: 'zoë', kind: 'human', account: 'zoë' }, now: NOW,
  },
};
const CALLS = Object.keys(VALID);
const METHOD = {
  prodguard_evaluate: 'evaluate',
  prodguard_audit_record: 'auditRecord',
  prodguard_verify_approval: 'verifyApproval',
};

let pg;
before(async () => {
  pg = await loadProdguard();
});

/** Asserts a raw call answers `codes` with a well-formed error answer. */
function assertRawError(pg, name, request, codes, label) {
  const { status, text } = pg.callJson(name, request);
  assert.ok(codes.includes(status), `${label}: status ${status}, expected ${codes.join(' or ')}: ${text.slice(0, 200)}`);
  const { error } = JSON.parse(text);
  assert.equal(error.code, status, label);
  assert.ok(typeof error.message === 'string' && error.message.length > 0, `${label}: no message`);
  return error.message;
}

/** Asserts a typed call throws a ProdguardError with `code` (not a trap, not another error). */
function assertTypedError(pg, name, request, code, label) {
  try {
    pg[METHOD[name]](request);
  } catch (error) {
    assert.ok(error instanceof ProdguardError, `${label}: ${error.name}: ${error.message}`);
    assert.equal(error.code, code, `${label}: ${error.message}`);
    assert.ok(error.message.length > 0);
    return error.message;
  }
  assert.fail(`${label}: no error`);
}

test('the valid requests these tests break are valid (status 0 or, for the made-up token, 121)', () => {
  assert.equal(pg.evaluate(VALID.prodguard_evaluate).session.step, 'proceed');
  assert.match(pg.auditRecord(VALID.prodguard_audit_record).hash, /^[0-9a-f]{64}$/);
  assertTypedError(pg, 'prodguard_verify_approval', VALID.prodguard_verify_approval, 121, 'made-up token');
});

test('an empty request is 125, through the raw and the typed calls', () => {
  for (const name of CALLS) {
    assertRawError(pg, name, '', [125], `${name} ''`);
    assertRawError(pg, name, new Uint8Array(0), [125], `${name} empty bytes`);
    assertTypedError(pg, name, '', 125, `${name} ''`);
  }
});

test('every prefix of a valid request is 125 (2 where a UTF-8 sequence is cut)', () => {
  for (const name of CALLS) {
    const bytes = new TextEncoder().encode(JSON.stringify(VALID[name]));
    for (let end = 0; end < bytes.length; end++) {
      const prefix = bytes.subarray(0, end);
      let whole = true;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(prefix);
      } catch {
        whole = false;
      }
      assertRawError(pg, name, prefix, whole ? [125] : [2], `${name} prefix of ${end} bytes`);
    }
  }
});

test('JSON that is not an object, or has wrong types, is 125', () => {
  const evaluate = (patch) => ({ ...VALID.prodguard_evaluate, ...patch });
  const record = (patch) => ({ ...VALID.prodguard_audit_record, ...patch });
  const approval = (patch) => ({ ...VALID.prodguard_verify_approval, ...patch });
  const cases = {
    prodguard_evaluate: [
      'null', '42', '"text"', '[]', '{}', 'true',
      evaluate({ operation: { kind: 3 } }),
      evaluate({ operation: 'db.migrate' }),
      evaluate({ operation: { target: 'orders' } }),
      evaluate({ facts: 'production' }),
      evaluate({ facts: { env: { APP_ENV: 1 } } }),
      evaluate({ facts: { env: ['APP_ENV=production'] } }),
      evaluate({ facts: { hostname: 7 } }),
      evaluate({ policy: 1 }),
      evaluate({ policy: ['[[rule]]'] }),
      evaluate({ now: 1764237600 }),
      evaluate({ now: 'tomorrow' }),
      evaluate({ now: undefined }),
      evaluate({ evidence: { actor: { user: 'a', kind: 'robot' }, attempt_id: 'x' } }),
      evaluate({ evidence: { actor: 'alice', attempt_id: 'x' } }),
      evaluate({ evidence: { actor: { user: 'a', kind: 'human' } } }),
      evaluate({ evidence: { actor: { user: 'a', kind: 'human' }, attempt_id: 'x', typed: 5 } }),
      evaluate({ evidence: { actor: { user: 'a', kind: 'human' }, attempt_id: 'x', approval: { token: 'pga2.x.y', ledger: 7 } } }),
      evaluate({ evidence: { actor: { user: 'a', kind: 'human' }, attempt_id: 'x', backup: { location: 'x' } } }),
    ],
    prodguard_audit_record: [
      'null', '[]', '{}',
      record({ seq: 0 }), record({ seq: -1 }), record({ seq: '1' }), record({ seq: 1.5 }), record({ seq: 2 ** 64 }),
      record({ pid: -1 }), record({ pid: 2 ** 32 }), record({ pid: '4242' }),
      record({ prev: 'abc' }), record({ prev: 'A'.repeat(64) }), record({ prev: 'g'.repeat(64) }),
      record({ log_id: '' }), record({ ts: 'yesterday' }), record({ ts: 0 }),
      record({ event: { kind: 'nope' } }), record({ event: 'note' }), record({ event: null }),
      record({ event: { kind: 'outcome', outcome: { status: 'ok' } } }),
    ],
    prodguard_verify_approval: [
      'null', '[]', '{}',
      approval({ key: 'a1'.repeat(32) }), approval({ ledger: 7 }), approval({ tier: 'prod' }),
      approval({ requester: 'zoë' }), approval({ four_eyes: true }), approval({ now: 'soon' }), approval({ token: 1 }),
    ],
  };
  for (const [name, requests] of Object.entries(cases)) {
    for (const request of requests) {
      const label = `${name} ${typeof request === 'string' ? request : JSON.stringify(request)}`;
      assertTypedError(pg, name, request, 125, label);
    }
  }
});

test('unknown fields are refused (125, naming the field), so a typo never goes unnoticed', () => {
  const cases = [
    ['prodguard_evaluate', { ...VALID.prodguard_evaluate, polcy: 'x' }, 'polcy'],
    ['prodguard_evaluate', { ...VALID.prodguard_evaluate, operation: { kind: 'db.migrate', targte: 'x' } }, 'targte'],
    ['prodguard_evaluate', { ...VALID.prodguard_evaluate, facts: { envs: {} } }, 'envs'],
    ['prodguard_evaluate', { ...VALID.prodguard_evaluate, evidence: { ...VALID.prodguard_evaluate.evidence, type: 'x' } }, 'type'],
    ['prodguard_evaluate', {
      ...VALID.prodguard_evaluate,
      evidence: { ...VALID.prodguard_evaluate.evidence, approval: { token: 't', ledger: 'l', ledgr: 'l' } },
    }, 'ledgr'],
    ['prodguard_audit_record', { ...VALID.prodguard_audit_record, sequence: 2 }, 'sequence'],
    ['prodguard_verify_approval', { ...VALID.prodguard_verify_approval, ledgr: 'l' }, 'ledgr'],
    ['prodguard_verify_approval', { ...VALID.prodguard_verify_approval, operation: { kind: 'x', taget: 'y' } }, 'taget'],
  ];
  for (const [name, request, field] of cases) {
    const message = assertTypedError(pg, name, request, 125, `${name} ${field}`);
    assert.match(message, new RegExp(`unknown field \`${field}\``));
  }
});

test('huge strings (4 MiB) are answered, not trapped on', async () => {
  // Its own instance: these grow the memory by a few hundred MiB for good.
  const pg = await loadProdguard();
  const huge = 'x'.repeat(4 << 20);
  // Valid JSON with a huge operation name: a decision (invalid name: 125),
  // not an error, read correctly although the memory grew during the call.
  const before = pg.memory.buffer.byteLength;
  const answer = pg.evaluate({ operation: { kind: huge } });
  assert.ok(pg.memory.buffer.byteLength > before + (4 << 20), 'the memory did not grow');
  assert.equal(answer.decision.exit_code, 125);
  assert.equal(answer.decision.result, 'deny');
  // The name is quoted back shortened, not echoed whole.
  assert.ok(answer.decision.reasons.some((reason) => reason.includes(`(${4 << 20} bytes)`)));
  assert.ok(JSON.stringify(answer).length < 64 * 1024, 'the answer echoes the huge name');
  // Junk: an unterminated string, an unknown field, a policy that is not TOML.
  assertRawError(pg, 'prodguard_evaluate', `{"operation": {"kind": "${huge}`, [125], 'unterminated');
  assertTypedError(pg, 'prodguard_evaluate', { ...VALID.prodguard_evaluate, junk: huge }, 125, 'unknown field');
  assert.match(
    assertTypedError(pg, 'prodguard_evaluate', { operation: { kind: 'db.migrate' }, policy: huge }, 125, 'policy'),
    /:1:\d+: invalid TOML/,
  );
  assertTypedError(pg, 'prodguard_audit_record', { ...VALID.prodguard_audit_record, event: { kind: 'note', message: huge } }, 125, 'record over 1 MiB');
});

test('a request over 8 MiB is 125, however valid it is', async () => {
  const pg = await loadProdguard();
  const padded = JSON.stringify({ operation: { kind: 'db.migrate' } }).padEnd((8 << 20) + 1, ' ');
  for (const name of CALLS) {
    const message = assertRawError(pg, name, padded, [125], name);
    assert.match(message, /8388609 bytes; at most 8388608/);
  }
  // Exactly 8 MiB is still read.
  assert.equal(pg.callJson('prodguard_evaluate', padded.slice(0, 8 << 20)).status, 0);
});

test('a request that is not UTF-8 is 2, naming UTF-8', () => {
  const prefix = new TextEncoder().encode('{"operation": {"kind": "db.');
  const suffix = new TextEncoder().encode('"}}');
  for (const bad of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]]) {
    const request = new Uint8Array([...prefix, ...bad, ...suffix]);
    for (const name of CALLS) {
      assert.match(assertRawError(pg, name, request, [2], `${name} ${bad}`), /UTF-8/);
    }
  }
});

test('out-of-bounds pointers through the raw exports are 2, and nothing is written', async () => {
  const pg = await loadProdguard();
  const x = pg.exports;
  const request = new TextEncoder().encode('{"operation": {"kind": "db.migrate"}}');
  for (const name of CALLS) {
    const size = () => x.memory.buffer.byteLength;
    const out = x.prodguard_alloc(8);
    const req = x.prodguard_alloc(request.length);
    new Uint8Array(x.memory.buffer, req, request.length).set(request);
    try {
      // A bad request pointer: an error answer is written at `out`.
      for (const [ptr, len] of [[0, 5], [size() - 4, 100], [size(), 1], [0xfffffff0, 100], [0xffffffff, 2], [req, 0xffffffff]]) {
        const label = `${name}(${ptr}, ${len})`;
        const status = x[name](ptr, len, out) >>> 0;
        const view = new DataView(x.memory.buffer);
        const [answer, answerLen] = [view.getUint32(out, true), view.getUint32(out + 4, true)];
        const text = new TextDecoder().decode(new Uint8Array(x.memory.buffer, answer, answerLen));
        x.prodguard_dealloc(answer, answerLen);
        // A length over 8 MiB is refused before the pointer is looked at.
        const expected = len > 8 << 20 ? 125 : Status.INVALID_ARGUMENT;
        assert.equal(status, expected, `${label}: ${text}`);
        assert.equal(JSON.parse(text).error.code, expected, label);
      }
      // A bad `out`: the status alone answers, and nothing is written
      // where `out` points (the module's own stack may change, as in any call).
      for (const badOut of [0, size() - 4, size(), 0xfffffff8, 0xffffffff]) {
        const at = () => new Uint8Array(x.memory.buffer).slice(badOut, badOut + 8);
        const before = at();
        const status = x[name](req, request.length, badOut) >>> 0;
        assert.equal(status, Status.INVALID_ARGUMENT, `${name} out=${badOut}`);
        assert.deepEqual(at(), before, `${name} out=${badOut}: written`);
      }
    } finally {
      x.prodguard_dealloc(req, request.length);
      x.prodguard_dealloc(out, 8);
    }
  }
  assert.equal(pg.evaluate(VALID.prodguard_evaluate).session.step, 'proceed');
});

test('bad frees are ignored, and odd allocation sizes answer 0', () => {
  const x = pg.exports;
  assert.equal(x.prodguard_alloc(0), 0);
  assert.equal(x.prodguard_alloc(0xffffffff), 0);
  assert.equal(x.prodguard_alloc(0x80000000), 0);
  const block = x.prodguard_alloc(16);
  assert.notEqual(block, 0);
  x.prodguard_dealloc(0, 0);
  x.prodguard_dealloc(0xffffffff, 1);
  x.prodguard_dealloc(block + 1, 15);
  x.prodguard_dealloc(block, 15); // wrong length: ignored, the block stays allocated
  x.prodguard_dealloc(block, 16);
  x.prodguard_dealloc(block, 16); // a second free: ignored
  assert.equal(pg.evaluate(VALID.prodguard_evaluate).session.step, 'proceed');
});

test('after all of this the instance still answers correctly', () => {
  assert.equal(pg.evaluate(VALID.prodguard_evaluate).session.record.kind, 'intent');
  assert.match(pg.auditRecord(VALID.prodguard_audit_record).line, /"message":"grüße"/);
});

test('a fact value over 64 KiB is refused (125), so answers stay small', () => {
  const big = 'p'.repeat(64 * 1024 + 1);
  const operation = { kind: 'db.migrate', target: 'orders' };
  assertAllRefused([
    ['prodguard_evaluate', { facts: { env: { APP_ENV: big } }, operation }],
    ['prodguard_evaluate', { facts: { files: { '/etc/prodguard/environment': big } }, operation }],
    ['prodguard_evaluate', { facts: { hostname: big }, operation }],
  ]);
});

/** Fails once, listing every request that was not refused with 125. */
function assertAllRefused(cases) {
  const accepted = [];
  for (const [name, request] of cases) {
    const text = typeof request === 'string' ? request : JSON.stringify(request);
    const { status } = pg.callJson(name, text);
    if (status !== 125) accepted.push(`${name} answered ${status} to ${text}`);
  }
  assert.deepEqual(accepted, []);
}
