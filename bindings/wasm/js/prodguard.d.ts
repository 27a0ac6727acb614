// Types of @prodguard/wasm (prodguard.mjs). The JSON shapes are those of
// bindings/wasm/ABI.md, version 2.x. Answers may carry fields added by a
// later minor version; these types name the ones ABI 2.2 defines.

/** The ABI major this loader speaks. */
export declare const ABI_MAJOR: 2;

/** The status codes of ABI.md (the CLI's exit codes, the C `prodguard_status`). */
export declare const Status: {
  /** Done: the answer is `{"ok": …}`. */
  readonly OK: 0;
  /** `out` or the request lies outside memory, or the request is not UTF-8. */
  readonly INVALID_ARGUMENT: 2;
  /** The module could not allocate (its answer, or the request). */
  readonly OUT_OF_MEMORY: 4;
  /** `verifyApproval`: the token does not approve this operation. */
  readonly NOT_CONFIRMED: 121;
  /** The request or the policy is invalid (malformed JSON, wrong types, unknown fields, a policy error, over 8 MiB). */
  readonly INVALID_REQUEST: 125;
};
export type StatusCode = (typeof Status)[keyof typeof Status];
/** A status that is not OK: the `code` of a ProdguardError. */
export type ErrorCode = Exclude<StatusCode, 0>;

/** The exports of prodguard.wasm. */
export interface ProdguardExports {
  readonly memory: WebAssembly.Memory;
  prodguard_abi_version(): number;
  prodguard_alloc(len: number): number;
  prodguard_dealloc(ptr: number, len: number): void;
  prodguard_evaluate(reqPtr: number, reqLen: number, out: number): number;
  prodguard_audit_record(reqPtr: number, reqLen: number, out: number): number;
  prodguard_verify_approval(reqPtr: number, reqLen: number, out: number): number;
}
export type ExportName = keyof ProdguardExports;
/** The exports that take a JSON request. */
export type CallName = 'prodguard_evaluate' | 'prodguard_audit_record' | 'prodguard_verify_approval';

/** The exports of ABI 2.0 and their kinds. */
export declare const EXPORTS: Readonly<{ memory: 'memory' } & Record<Exclude<ExportName, 'memory'>, 'function'>>;
/** The names `callJson` accepts. */
export declare const CALLS: readonly CallName[];

/**
 * A non-zero status from prodguard.wasm (`Code` 2, 4, 121 or 125), or, as
 * `GuardRefusal` of `@prodguard/wasm/node`, a guard's refusal (120–125).
 */
export declare class ProdguardError<Code extends ErrorCode | DenialExitCode = ErrorCode> extends Error {
  constructor(code: Code, message: string, options?: ErrorOptions);
  readonly name: 'ProdguardError' | 'GuardRefusal';
  /** The status (2, 4, 121 or 125), or a refusal's exit code. */
  readonly code: Code;
}

/** What `load` takes: bytes, a compiled module, a Response (or a promise of one), or a path / URL. */
export type LoadSource =
  | ArrayBuffer
  | ArrayBufferView
  | WebAssembly.Module
  | Response
  | PromiseLike<Response>
  | string
  | URL;

/**
 * Loads prodguard.wasm and checks it: no imports, the ABI 2.0 exports, ABI
 * major 2. A string or URL is a file in Node (a path or a `file:` URL) and
 * is fetched elsewhere. Without a source: the `prodguard.wasm` the package
 * ships next to its loader (`defaultWasmUrl()`).
 */
export declare function load(source?: LoadSource): Promise<Prodguard>;

/** `new URL('./prodguard.wasm', import.meta.url)` of the loader: where the package keeps its module. */
export declare function defaultWasmUrl(): URL;

/** The raw answer of `callJson`. */
export interface RawAnswer {
  status: StatusCode;
  /** The answer's JSON text; '' when the module wrote none (status 4). */
  text: string;
}

/** One instance of prodguard.wasm. Calls are synchronous, so they run one at a time. */
export interface Prodguard {
  readonly abiVersion: Readonly<{ major: 2; minor: number }>;
  /** The raw exports, for hosts that manage memory themselves. */
  readonly exports: ProdguardExports;
  /** The module's linear memory. */
  readonly memory: WebAssembly.Memory;
  /** Detection, decision and (with `evidence`) the session's verdict. A request may also be its JSON text. */
  evaluate(request: EvaluateRequest | string): Evaluation;
  /** An audit event chained to `prev` → the exact line to append and its hash. */
  auditRecord(request: AuditRecordRequest | string): RecordLine;
  /** An approval token's claims; throws a ProdguardError with code 121 when it does not approve. */
  verifyApproval(request: VerifyApprovalRequest | string): Claims;
  /**
   * Calls an export with a request (JSON text, or UTF-8 bytes sent as they
   * are) and answers the status and the answer's text. Frees everything it
   * allocated. A trap (WebAssembly.RuntimeError) is rethrown, and the
   * instance refuses further calls.
   */
  callJson(name: CallName, request: string | Uint8Array): RawAnswer;
}

// ---- requests -------------------------------------------------------------

export type Tier = 'production' | 'staging' | 'development' | 'test' | 'local' | 'unknown';
export type ActorKind = 'human' | 'ci' | 'agent' | 'service';
export type RequirementKind = 'confirm' | 'backup' | 'audit' | 'staged' | 'rollback';
/** `both`: an approval token and the person typing (what rules asking for `typed` and for `approval` add up to). */
export type ConfirmMode = 'typed' | 'approval' | 'either' | 'both';

/** The snapshot detection looks at; the host gathers it (see `nodeFacts` in `@prodguard/wasm/node`). */
export interface Facts {
  /** Environment variables; a name not listed is unset. */
  env?: Record<string, string>;
  /** File contents by path; only the policy's marker file is looked at. */
  files?: Record<string, string>;
  hostname?: string | null;
  /** An environment the program names itself. */
  explicit?: string | null;
}

export interface Operation {
  /** The dotted name, e.g. `db.migrate`. */
  kind: string;
  /** What it acts on, e.g. a database name. */
  target?: string | null;
  /** What identifies its content; approval tokens bind it. */
  fingerprint?: string | null;
  /** Its way back (ABI 2.4): a command that undoes it, recorded in the intent. */
  rollback?: string | null;
}

/**
 * The operation of a request with `sql` (ABI 2.1): the script decides the
 * kind and the fingerprint, so both may be left out; given, they must be
 * the script's (125 otherwise).
 */
export interface SqlOperation {
  kind?: string;
  /** The database the script runs on: confirmation asks for this name. */
  target?: string | null;
  fingerprint?: string | null;
  rollback?: string | null;
}

/** An SQL dialect: a script read in another one can hide a statement in what looks like a string. */
export type Dialect = 'postgres' | 'sqlite' | 'mysql' | 'generic';

/** An SQL script to classify and decide (ABI 2.1). */
export interface SqlRequest {
  /** The script, as it will be sent to the database. */
  script: string;
  /** Required; `postgresql` is read as `postgres`. */
  dialect: Dialect | 'postgresql';
}

/** What an SQL statement does (README, "SQL classification"); danger rises down the list. */
export type SqlKind =
  | 'db.read'
  | 'db.session'
  | 'db.insert'
  | 'db.maintenance'
  | 'db.create'
  | 'db.alter'
  | 'db.grant'
  | 'db.update.where'
  | 'db.update.upsert'
  | 'db.delete.where'
  | 'db.alter.destructive'
  | 'db.update.all'
  | 'db.delete.all'
  | 'db.truncate'
  | 'db.unknown'
  | 'db.drop.database'
  | 'db.drop.schema'
  | 'db.drop.table'
  | 'db.drop.materialized_view'
  | 'db.drop.view'
  | 'db.drop.function'
  | 'db.drop.procedure'
  | 'db.drop.trigger'
  | 'db.drop.type'
  | 'db.drop.domain'
  | 'db.drop.sequence'
  | 'db.drop.extension'
  | 'db.drop.policy'
  | 'db.drop.role'
  | 'db.drop.index'
  | 'db.drop.other';

/** One statement of a classified script. */
export interface SqlStatement {
  /** From 0. */
  index: number;
  kind: SqlKind;
  destructive: boolean;
  /** The tables (and other objects) it names, as written (quotes kept). */
  tables: string[];
  /** Whether it says `CASCADE`. */
  cascades: boolean;
  /** The line it starts on, from 1. */
  line: number;
  /** Byte offsets in the script's UTF-8 (not JavaScript string indexes): its first character, and just past its last (its `;` excluded). */
  start: number;
  end: number;
  /** For `db.unknown`: what was not understood. */
  problem?: string;
}

/** What the policy says of the rows one statement may affect. The module counts no rows: a host that runs the script itself enforces `max_rows`. */
export interface RowBounds {
  index: number;
  /** The most rows it may affect (the smallest of the matching rules'), and that rule. */
  max_rows?: number;
  max_rows_rule?: string;
  /** Whether a rule matching its kind requires a confirmation. */
  confirm: boolean;
  /** With `confirm`: needed only above this many rows (counted by a dry run). */
  confirm_above_rows?: number;
  /** It cannot run in a transaction and the policy lets it run alone in its script (`outside_transaction = true`). */
  outside_transaction?: boolean;
}

/** The classification of a request's `sql` (ABI 2.1). */
export interface SqlAnswer {
  dialect: Dialect;
  statements: SqlStatement[];
  /** The most dangerous statement's kind (`db.unknown` for an empty script): the operation decided. */
  operation: SqlKind;
  destructive: boolean;
  /** Hex SHA-256 of the statements' tokens: the operation's fingerprint, which approvals bind. */
  fingerprint: string;
  /** Each statement's row bounds, in order. */
  bounds: RowBounds[];
}

export interface Actor {
  /** A display label (`PRODGUARD_ACTOR`, `USER`); it never decides who may do what. */
  user: string;
  /** An `agent` never confirms by typing and never breaks glass. */
  kind: ActorKind;
  /**
   * The OS account of the real uid, as the host vouches for it: the identity
   * four eyes and `[approval] break_glass_users` are checked against (none
   * stated: no break-glass).
   */
  account?: string | null;
}

/** A target's environment stamp. */
export interface Stamp {
  environment: string;
  tier: Tier;
  stamped_at?: string;
  stamped_by?: string;
}

/** The backup the host made. */
export interface BackupEvidence {
  location: string;
  /** Hex SHA-256 of its bytes. */
  sha256: string;
  bytes: number;
  /** RFC 3339. */
  created: string;
  verified: boolean;
  verification?: string | null;
}

/** What the host gathered for one attempt; anything missing counts as not given. */
export interface Evidence {
  actor: Actor;
  /** A unique id for this attempt; it ties the intent to the outcome. */
  attempt_id: string;
  audit_error?: string | null;
  stamp?: Stamp | null;
  stamp_error?: string | null;
  /** What the person typed when asked to confirm. */
  typed?: string | null;
  /**
   * A `pga2.…` token, checked with the public keys the policy lists in
   * `[approval] approvers`, and the identity of the ledger the host spends
   * it in (`file://HOST/ABS/PATH` of its audit log, or the `[approval]
   * ledger` / `[audit] sink` URL without a password). A token minted for
   * another ledger, or offered without one, is refused (121).
   */
  approval?: { token: string; ledger?: string | null } | null;
  backup?: BackupEvidence | null;
  backup_error?: string | null;
  /** At least 10 characters, where the policy allows break-glass. */
  break_glass?: string | null;
  /**
   * The host honours the policy's fleet keys (ABI 1.1): it holds the
   * `[fleet] lock` until the outcome is appended, appends records to the
   * `[audit] sink` and spends approvals in the `[approval] ledger`. A policy
   * with fleet keys refuses (125) without it.
   */
  fleet?: boolean;
  /**
   * With `sql` (ABI 2.2): the rows each statement affected, by index, when
   * the host ran the script in a transaction it rolled back. Shown in the
   * challenge's `consequences`; a statement over its rule's `max_rows`
   * refuses (120); rows within `confirm_above_rows` waive the confirmation.
   */
  dry_run_rows?: number[] | null;
  /**
   * Where a rule requires `staged` (ABI 2.4): the text of the trail the
   * answer's `promotion_trail` names, from its
   * first record (a rotated set's files oldest first). The module verifies
   * its chain before it believes a record of it; one that does not verify
   * refuses (123).
   */
  promotion_trail?: string | null;
  /** Set when the host could not read that trail (123). */
  promotion_error?: string | null;
}

interface EvaluateRequestBase {
  facts?: Facts;
  /** The policy as TOML text; absent or null: the built-in default policy (or, with `system_policy`, that alone). */
  policy?: string | null;
  /**
   * The system policy's text (`/etc/prodguard/policy.toml`), which the host
   * vouches for: read from a root-owned file nobody else can write. `policy`
   * is layered over it and can only tighten it (125 when it would loosen it).
   */
  system_policy?: string | null;
  /**
   * `true`: `detection.evidence` lists every signal looked at, unset ones
   * included (as `prodguard detect --json --explain`); by default only those that were set.
   */
  explain?: boolean;
  /** Whether the host process has a terminal (ABI 2.3): with `facts.env` it decides the answer's `actor_kind`. */
  terminal?: boolean;
}

/** A dry run (no evidence), or a whole guard session (evidence and `now`, RFC 3339). */
export type EvaluateRequest = EvaluateRequestBase &
  ({ evidence?: null; now?: string | null } | { evidence: Evidence; now: string }) &
  /** An operation, or an SQL script that is the operation (ABI 2.1). */
  ({ operation: Operation; sql?: null } | { sql: SqlRequest; operation?: SqlOperation });

export interface AuditRecordRequest {
  /** The log's identity, chosen by its first record. */
  log_id: string;
  /** 1 for the first record, then +1. */
  seq: number;
  /** RFC 3339. */
  ts: string;
  host: string;
  pid: number;
  /** The previous record's hash, or 64 zeros for the first record. */
  prev: string;
  event: AuditEvent;
}

export interface VerifyApprovalRequest {
  /** `pga2.…` */
  token: string;
  /** The policy (TOML) whose `[approval]` judges the token; absent or null: the built-in default, which lists no approvers. */
  policy?: string | null;
  /** The system policy's text, which the host vouches for (as in `evaluate`); `policy` is layered over it, and its approvers are the ones that count. */
  system_policy?: string | null;
  /** The ledger the host spends the token in; absent or null: refused (121). */
  ledger?: string | null;
  operation: Operation;
  environment: string;
  tier: Tier;
  /** Four eyes compares `requester.account` with the approver's OS account. */
  requester: Actor;
  /** RFC 3339. */
  now: string;
}

// ---- answers --------------------------------------------------------------

/** One signal detection looked at. */
export interface Signal {
  /** e.g. `env:APP_ENV`, `file:/etc/prodguard/environment`, `hostname`. */
  source: string;
  value: string | null;
  environment: string | null;
  tier: Tier | null;
  strength: 'explicit' | 'declared' | 'hint';
  used: boolean;
  meaning: string;
}

export interface Conflict {
  sources: string[];
  tiers: Tier[];
  resolved: Tier;
}

/** What `prodguard detect --json` prints as `ok`. */
export interface Detection {
  environment: string;
  tier: Tier;
  protected: boolean;
  /** e.g. `explicit`, `env:APP_ENV`, `file:…`, `hostname`, `default`, `policy:environment.unknown`. */
  decided_by: string;
  evidence: Signal[];
  conflicts: Conflict[];
  hint?: string | null;
}

export interface RequirementView {
  kind: RequirementKind;
  rule: string;
  /** For people. */
  how: string;
}

/** What `prodguard check --json` prints as `ok.decision`. */
export interface Decision {
  result: 'allow' | 'deny' | 'require';
  /** null when no rule decided (allow, or an invalid operation name). */
  rule: string | null;
  /** In the order confirm, backup, audit, staged, rollback. */
  requirements: RequirementView[];
  /** What a run without a terminal and without evidence would exit with. */
  exit_code: 0 | 120 | 121 | 125;
  /** For people. */
  reasons: string[];
}

/** What a person must confirm. */
export interface Challenge {
  operation: string;
  target: string | null;
  environment: string;
  tier: Tier;
  /** Why it is protected, for the prompt. */
  why: string;
  /** What they must type: the target's name, or the environment's. */
  expected: string;
  mode: ConfirmMode;
  /** A SQL script's destructive statements with the rows its dry run counted, to show before the question. */
  consequences?: string[];
}

export interface Denial {
  exit_code: DenialExitCode;
  rule: string | null;
  missing: string;
  next_step: string;
  /** Whether the refusal reached the audit log: always false from the module (the host appends `record`). */
  recorded: boolean;
  /** In a protected tier with no system policy: that anyone who sets the policy decides these rules. */
  note?: string;
  /** With `sql` (2.2): the rows by statement index the refusal was decided on (`evidence.dry_run_rows`). */
  rows?: number[];
}
export type DenialExitCode = 120 | 121 | 122 | 123 | 124 | 125;

/** Whether the operation may run now. Append `record` durably before running it. */
export type SessionVerdict =
  | { step: 'proceed'; exit_code: 0; challenge?: Challenge; record?: AuditEvent }
  | { step: 'deny'; exit_code: DenialExitCode; denial: Denial; challenge?: Challenge; record?: AuditEvent };

/** The answer of `evaluate`. */
export interface Evaluation {
  detection: Detection;
  decision: Decision;
  /** Present when the request carried evidence. */
  session?: SessionVerdict;
  /** Present when the request carried `sql` (ABI 2.1). */
  sql?: SqlAnswer;
  /** What kind of actor a process with `facts.env` and `terminal` is (ABI 2.3): an agent variable beats a CI variable beats a terminal (human) beats none (service). */
  actor_kind: ActorKind;
  /** The policy's `[audit]` settings, layered (ABI 2.3): a host honours them or refuses. */
  audit: AuditSettings;
  /** The policy's `[promotion]` settings, layered (ABI 2.4). */
  promotion: PromotionSettings;
  /** The trail a `staged` requirement reads (ABI 2.4): `promotion.staging_log`, else `audit.sink`; absent when neither. */
  promotion_trail?: string;
}

/** A policy's `[promotion]` settings, as `evaluate` answers them (ABI 2.4). */
export interface PromotionSettings {
  /** The environment's or tier's name the operation must have succeeded in first. */
  from: string | null;
  /** How old that success may be, in seconds (default 14 days). */
  within_seconds: number;
  /** The trail to read (a file log, or a `postgresql://` URL); null: `audit.sink`. */
  staging_log: string | null;
}

/** What an intent cites for a `staged` requirement (ABI 2.4). */
export interface PromotionRecord {
  from: string;
  within_seconds: number;
  /** The trail read (a path, or a URL without a password). */
  trail: string;
  /** One per fingerprint vouched for: the operation's, or each batch step's. */
  runs: PromotedRun[];
}

/** One success cited as promotion evidence. */
export interface PromotedRun {
  fingerprint: string;
  attempt_id: string;
  env: string;
  /** Its `ok` outcome record. */
  outcome: Citation;
}

/** Where a record stands in its trail. */
export interface Citation {
  log_id: string;
  seq: number;
  hash: string;
  /** RFC 3339. */
  at: string;
}

/** A policy's `[audit]` settings, as `evaluate` answers them (ABI 2.3). */
export interface AuditSettings {
  /** The log's path; null: the host's default. */
  log: string | null;
  durability: 'fdatasync' | 'none';
  seal_every: number | null;
  /** Sealing is on when set. */
  seal_key_file: string | null;
  rotate_bytes: number | null;
  /** Fleet mode's PostgreSQL trail. */
  sink: string | null;
  /** Copies a policy layered over the system's asked for (never instead of the system's trail); absent when none. */
  copies?: string[];
}

export type EventKind = 'intent' | 'outcome' | 'refusal' | 'note' | 'recovery' | 'seal' | 'prune';

/** An audit event: the `record` of a session, an outcome, a note, …. */
export interface AuditEvent {
  kind: EventKind;
  attempt_id?: string;
  actor?: Actor;
  op?: {
    kind: string; target?: string; env: string; tier: Tier; decided_by: string; fingerprint?: string;
    /** The steps of a batch run as one (pending migrations), each with its checksum; `fingerprint` is the batch's. */
    batch?: { name: string; fingerprint: string }[];
  };
  decision?: {
    /** `allow`, `deny`, `require`, or the final `refused` / `proceed`. */
    result: string;
    rule?: string;
    requirements?: RequirementKind[];
    reasons?: string[];
    exit_code?: number;
    /** The policy in force (intent and refusal records): each source's path and SHA-256, the system policy first. */
    policy?: PolicySource[];
  };
  backup?: BackupEvidence;
  /** `approval+typed`: a token, and the person typed too (mode `both`); `callback`: a host's own prompt. The host spends `token_id` when present. */
  /** `max_rows`: the approval's bound on each statement's rows (SQL scripts). */
  confirm?: { method: 'typed' | 'approval' | 'approval+typed' | 'callback' | 'scripted' | 'break-glass'; approver?: string; token_id?: string; exp?: string; max_rows?: number };
  /** `rolled_back`: a SQL script went over a bound (`exit_code` is the refusal's); `dry_run`: it was only counted. `rows`: by statement index. `lock_lost`: why the `[fleet] lock` lease was not confirmed as held through the run (another host may have run it too). */
  outcome?: {
    status: 'ok' | 'failed' | 'panicked' | 'abandoned' | 'rolled_back' | 'dry_run';
    duration_ms: number;
    error?: string;
    exit_code?: number;
    rows?: number[];
    lock_lost?: string;
  };
  message?: string;
  seal?: { epoch: number; mac: string };
  /** Prune records only: the rotated files `prodguard audit prune` dropped. */
  prune?: PruneInfo;
  /** Intents in file logs: the writing process's PID namespace (its `pid` means that process only there). */
  pid_ns?: number;
  /** Intents of guarded SQL runs: the script's classification and its dry run's rows. */
  sql?: SqlRecord;
  /** Intents under a `[fleet] lock`: the lease's fencing token (larger with each grant of the same operation and target). */
  fence?: number;
  /** Intents that met a `staged` requirement (ABI 2.4): the staging successes they cite. */
  promotion?: PromotionRecord;
  /** Intents (ABI 2.4): the way back `prodguard rollback ATTEMPT_ID` runs. */
  rollback?: RollbackPlan;
  /** Intents of `prodguard rollback` (ABI 2.4): the attempt it undoes. */
  rolls_back?: string;
}

/** An operation's way back, as its intent records it (ABI 2.4). */
export interface RollbackPlan {
  /** A command that undoes it, run with `sh -c`. */
  command?: string;
  /** Restore the intent's backup (`backup.location`, still with `backup.sha256`) over the target. */
  restore_backup?: boolean;
}

/** What a guarded SQL run's intent says of its script (the fingerprint is `op.fingerprint`). */
export interface SqlRecord {
  dialect: Dialect;
  /** How many statements the script has. */
  statements: number;
  /** Its destructive statements, the first 256. */
  destructive: { index: number; kind: SqlKind; tables: string[]; cascades?: boolean }[];
  /** How many more destructive statements it has than are listed. */
  not_listed?: number;
  /** Rows by statement index, counted by a dry run that was rolled back. */
  dry_run_rows?: number[];
}

/** What a prune record says: the dropped files, oldest first, each with the anchor the kept chain is verified from. */
export interface PruneInfo {
  /** The `--before` seq: every dropped record is before it. */
  before: number;
  files: PrunedFile[];
}

/** One dropped file and the anchor after it. */
export interface PrunedFile {
  file: string;
  first_seq: number;
  last_seq: number;
  /** The `prev` of the record after it. */
  last_hash: string;
  /** The log's length in bytes up to this file's end. */
  bytes: number;
  /** The last seal at or before this file's end. */
  last_seal?: PrunedSeal;
}

/** A dropped seal record: what its MAC covered, and the MAC. */
export interface PrunedSeal {
  seq: number;
  prev: string;
  epoch: number;
  mac: string;
}

/** One source of the policy in force. */
export interface PolicySource {
  path: string;
  /** SHA-256 of its text, lowercase hex. */
  sha256: string;
  /** Present (true) for the system policy. */
  system?: boolean;
}

/** The answer of `auditRecord`. */
export interface RecordLine {
  /** The exact record to append, ending in a newline. */
  line: string;
  /** 64 hex digits: the next record's `prev`. */
  hash: string;
}

/** The claims of a token that approves the operation. Spend `nonce` once. */
export interface Claims {
  v: 2;
  op: string;
  target: string;
  env: string;
  tier: Tier;
  fingerprint?: string;
  /** The most rows any one statement of the approved SQL script may affect. */
  max_rows?: number;
  approver: string;
  approver_kind?: ActorKind;
  /** RFC 3339. */
  iat: string;
  /** RFC 3339. */
  exp: string;
  nonce: string;
  /** The ledger the nonce is spent in. */
  ledger: string;
}
