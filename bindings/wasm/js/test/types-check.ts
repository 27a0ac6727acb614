// Compiled, never run: `npm run typecheck` (tsc --strict) checks that the
// .d.ts files describe the API precisely. Each @ts-expect-error line must
// be an error, so a type that grew too loose fails the check.

import {
  ABI_MAJOR, CALLS, EXPORTS, ProdguardError, Status, load,
  type AuditEvent, type Claims, type ErrorCode, type EvaluateRequest, type Evaluation,
  type Prodguard, type RawAnswer, type RecordLine, type SessionVerdict, type SqlKind, type StatusCode,
} from '@prodguard/wasm';
import {
  DEFAULT_MARKER_FILE, GuardRefusal, createGuard, nodeActor, nodeFacts, load as loadFromNode,
  type Facts, type Guard, type GuardedOperation,
} from '@prodguard/wasm/node';

const major: 2 = ABI_MAJOR;
const invalid: 125 = Status.INVALID_REQUEST;
const code: StatusCode = Status.OK;
const exportKind: 'memory' = EXPORTS.memory;
const firstCall: string | undefined = CALLS[0];
// @ts-expect-error: there is no status 3
const notAStatus: StatusCode = 3;
// @ts-expect-error: OK is not an error code
const notAnError: ErrorCode = 0;

async function flow(bytes: Uint8Array, response: Promise<Response>): Promise<void> {
  const pg: Prodguard = await load(bytes);
  await load(response);
  await load(new URL('file:///prodguard.wasm'));
  await loadFromNode('target/prodguard.wasm');
  // @ts-expect-error: null is no module source (a number would pass: lib.dom's WebAssembly.Module is an empty interface)
  await load(null);

  const minor: number = pg.abiVersion.minor;
  const pages: number = pg.memory.buffer.byteLength;
  const version: number = pg.exports.prodguard_abi_version();

  const facts: Facts = nodeFacts({ env: { APP_ENV: 'production', UNSET: undefined }, markerFile: DEFAULT_MARKER_FILE });
  const dryRun: EvaluateRequest = { facts, operation: { kind: 'db.migrate', target: 'orders' } };
  const answer: Evaluation = pg.evaluate(dryRun);
  const tier: 'production' | 'staging' | 'development' | 'test' | 'local' | 'unknown' = answer.detection.tier;
  const result: 'allow' | 'deny' | 'require' = answer.decision.result;
  const kinds: ('confirm' | 'backup' | 'audit' | 'staged' | 'rollback')[] = answer.decision.requirements.map((r) => r.kind);

  const withEvidence = pg.evaluate({
    operation: { kind: 'db.migrate', target: 'orders' },
    evidence: { actor: { user: 'alice', kind: 'human' }, attempt_id: 'a-1', typed: 'orders' },
    now: '2026-11-27T10:00:00Z',
  });
  // @ts-expect-error: evidence needs `now`
  pg.evaluate({ operation: { kind: 'db.migrate' }, evidence: { actor: { user: 'a', kind: 'human' }, attempt_id: 'x' } });
  // @ts-expect-error: not an actor kind
  pg.evaluate({ operation: { kind: 'x' }, evidence: { actor: { user: 'a', kind: 'robot' }, attempt_id: 'x' }, now: 'x' });
  // @ts-expect-error: a misspelt field
  pg.evaluate({ operation: { kind: 'db.migrate', targte: 'orders' } });
  // @ts-expect-error: the operation is required
  pg.evaluate({ facts: {} });
  pg.evaluate('{"operation": {"kind": "db.migrate"}}');
  // An SQL script is the operation (ABI 2.1): the kind may be left out.
  const script = pg.evaluate({ sql: { script: 'DELETE FROM t', dialect: 'postgres' }, operation: { target: 'shop' } });
  const kind: SqlKind | undefined = script.sql?.statements[0]?.kind;
  const maxRows: number | undefined = script.sql?.bounds[0]?.max_rows;
  pg.evaluate({ sql: { script: 'SELECT 1', dialect: 'postgresql' } });
  // @ts-expect-error: the dialect is required
  pg.evaluate({ sql: { script: 'SELECT 1' } });
  // @ts-expect-error: not a dialect
  pg.evaluate({ sql: { script: 'SELECT 1', dialect: 'oracle' } });
  // @ts-expect-error: without `sql`, the operation needs its kind
  pg.evaluate({ operation: { target: 'shop' } });
  // @ts-expect-error: not an SQL kind
  const notAKind: SqlKind = 'db.delete.some';

  const session: SessionVerdict | undefined = withEvidence.session;
  if (session?.step === 'deny') {
    const missing: string = session.denial.missing;
    const exit: 120 | 121 | 122 | 123 | 124 | 125 = session.exit_code;
  } else if (session?.step === 'proceed') {
    const exit: 0 = session.exit_code;
    // @ts-expect-error: a verdict to proceed has no denial
    session.denial;
  }
  const expected: string | undefined = session?.challenge?.expected;

  const intent: AuditEvent | undefined = session?.record;
  const outcome: AuditEvent = { kind: 'outcome', attempt_id: 'a-1', outcome: { status: 'ok', duration_ms: 5 } };
  // @ts-expect-error: not an event kind
  const bad: AuditEvent = { kind: 'hello' };
  const record: RecordLine = pg.auditRecord({
    log_id: 'l', seq: 1, ts: '2026-11-27T10:00:00Z', host: 'h', pid: 1, prev: '0'.repeat(64), event: intent ?? outcome,
  });
  const next: string = record.hash + record.line;

  try {
    const claims: Claims = pg.verifyApproval({
      token: 'pga2.x.y', ledger: 'file://db-1/var/log/prodguard/audit.jsonl',
      operation: { kind: 'db.migrate', target: 'orders' },
      environment: 'production', tier: 'production',
      requester: { user: 'bob', kind: 'human', account: 'bob' }, now: '2026-11-27T10:00:00Z',
    });
    const nonce: string = claims.nonce;
    const ledger: string = claims.ledger;
  } catch (error) {
    if (error instanceof ProdguardError) {
      const why: ErrorCode = error.code;
      const message: string = error.message;
    }
  }

  const raw: RawAnswer = pg.callJson('prodguard_evaluate', new Uint8Array([0xff]));
  const status: StatusCode = raw.status;
  // @ts-expect-error: only the three calls take a request
  pg.callJson('prodguard_alloc', '{}');
}

async function guarded(): Promise<void> {
  const pg = await load(); // the package's own prodguard.wasm
  const guard: Guard = await createGuard({ auditLog: '/tmp/audit.jsonl', terminal: null, policy: null });
  const operation: GuardedOperation = { kind: 'db.migrate', target: 'orders', approval: null };
  const applied: number = await guard.run(operation, async () => 3);
  const text: string = await guard.run({ kind: 'cache.flush' }, () => 'flushed');
  const kind: 'human' | 'ci' | 'agent' | 'service' = nodeActor({ pg }).kind;
  const actorKind: 'human' | 'ci' | 'agent' | 'service' = pg.evaluate({ operation: { kind: 'db.read' }, terminal: true }).actor_kind;
  const ledger: string | null = guard.ledger;
  // @ts-expect-error: work is required
  await guard.run(operation);
  try {
    await guard.run(operation, () => undefined);
  } catch (error) {
    if (error instanceof GuardRefusal) {
      const exit: 120 | 121 | 122 | 123 | 124 | 125 = error.code;
      const recorded: boolean = error.recorded;
      const next: string | undefined = error.denial?.next_step;
    }
  }
}
