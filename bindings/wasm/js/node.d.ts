// Types of @prodguard/wasm/node (node.mjs): everything from prodguard.d.ts,
// plus the facts of the running Node process.

import type { Actor, DenialExitCode, Denial, Detection, Evaluation, Facts, LoadSource, Prodguard } from './prodguard.js';
import { ProdguardError } from './prodguard.js';

export * from './prodguard.js';

/** Where the built-in default policy looks for the marker file. */
export declare const DEFAULT_MARKER_FILE: '/etc/prodguard/environment';

export interface NodeFactsOptions {
  /** Default: `process.env`. Entries that are not strings are left out. */
  env?: Record<string, string | undefined>;
  /** Default: `os.hostname()`; '' or null: none. */
  hostname?: string | null;
  /** The marker file to read (first 4 KiB); default DEFAULT_MARKER_FILE; null: none. */
  markerFile?: string | null;
  /** An environment the program names itself. */
  explicit?: string | null;
}

/** The `facts` of an evaluate request for this process, as the Rust runtime gathers them. */
export declare function nodeFacts(options?: NodeFactsOptions): Required<Facts>;

// ---- createGuard: guard.run() for Node ---------------------------------------

/** A refusal from `guard.run`: the work did not run. */
export declare class GuardRefusal extends ProdguardError<DenialExitCode> {
  constructor(code: DenialExitCode, message: string, options?: { denial?: Denial | null; recorded?: boolean; cause?: unknown });
  readonly name: 'GuardRefusal';
  /** The module's denial (what is missing, the next step), when the session refused; null for a refusal of this host (123 when the intent could not be appended, 125 for the policy). */
  readonly denial: Denial | null;
  /** Whether the refusal reached the audit log. */
  readonly recorded: boolean;
}

export interface NodeActorOptions {
  /** The loaded module: it decides the kind (ABI 2.3 `actor_kind`). */
  pg: Prodguard;
  /** Default: `process.env`. */
  env?: Record<string, string | undefined>;
  /** The terminal whose presence makes the actor `human`; default `/dev/tty`. */
  terminal?: string | null;
}

/** Who is acting, as the Rust runtime says it: label, OS account, and kind (agent > ci > human > service). */
export declare function nodeActor(options: NodeActorOptions): Required<Actor>;

/** Something `output` can write the prompt to instead of the terminal (tests). */
export interface PromptOutput {
  write(text: string): unknown;
}

export interface CreateGuardOptions {
  /** A loaded module, or what `load` takes; default: the prodguard.wasm shipped with the package. */
  module?: Prodguard | LoadSource;
  /** The policy's TOML text; null: the built-in default; absent: `policyFile`, else `PRODGUARD_POLICY`, else `./prodguard.toml`, else the default. */
  policy?: string | null;
  /** A policy file to read instead of the discovery. */
  policyFile?: string | null;
  /** The system layer; default `/etc/prodguard` (its policy counts only when root-owned and writable by nobody else); null: none (tests). */
  systemDir?: string | null;
  /** The audit log; default `PRODGUARD_AUDIT_LOG`, else `$XDG_STATE_HOME/prodguard/audit.jsonl` (or `~/.local/state/…`); under a system policy always `/var/log/prodguard/audit.jsonl`. */
  auditLog?: string | null;
  /** Default: `process.env` (the policy and log discovery, the facts, the actor, `PRODGUARD_APPROVAL`). */
  env?: Record<string, string | undefined>;
  /** Where `./prodguard.toml` and relative paths are looked for; default `process.cwd()`. */
  cwd?: string;
  /** The facts to decide on; default `nodeFacts()` plus the marker files the policy names. */
  facts?: Facts;
  /** An environment the program names itself. */
  explicit?: string | null;
  /** Who is acting; default `nodeActor({ pg })`. */
  actor?: Actor;
  /** The terminal asked for a typed confirmation; default `/dev/tty`; null: nobody is ever asked. */
  terminal?: string | null;
  /** The host's name; default `os.hostname()`. */
  hostname?: string;
  /** The flock(1) command that holds the log's lock; default `flock` (util-linux). */
  flock?: string;
  /** Writes the prompt here instead of on the terminal (tests); the answer is still read from `terminal`. */
  output?: PromptOutput | null;
}

/** What `guard.run` guards. */
export interface GuardedOperation {
  /** The dotted name, e.g. `db.migrate`. */
  kind: string;
  /** What it acts on: what a person types to confirm. */
  target?: string | null;
  /** What identifies its content; approval tokens bind it. */
  fingerprint?: string | null;
  /** Its way back: a command that undoes it, recorded in the intent for `prodguard rollback`. */
  rollback?: string | null;
  /** An approval token (`pga2.…`); default `PRODGUARD_APPROVAL`. Spent once, in this guard's ledger. */
  approval?: string | null;
  /** A break-glass reason (at least 10 characters), where the policy allows it. */
  breakGlass?: string | null;
}

export interface Guard {
  /** What detection found. */
  readonly detection: Detection;
  readonly actor: Readonly<Required<Actor>>;
  /** The audit log's path; null when there is none (then runs that need a record refuse with 123). */
  readonly auditLog: string | null;
  /** The ledger approval tokens are spent in: `file://HOST/ABS/PATH` of the log. */
  readonly ledger: string | null;
  /** The module's dry run: detection and decision, nothing asked or recorded. */
  check(operation: Pick<GuardedOperation, 'kind' | 'target' | 'fingerprint' | 'rollback'>): Evaluation;
  /**
   * Runs `work` when the module's session says it may, with its intent
   * appended durably first and its outcome after; answers its value. A
   * refusal rejects with a GuardRefusal (work not called); work that throws
   * is recorded as `failed` and its error rethrown.
   */
  run<T>(operation: GuardedOperation, work: () => T | PromiseLike<T>): Promise<Awaited<T>>;
}

/** A guard for this process: the policy found, the facts and the actor gathered, the module loaded. */
export declare function createGuard(options?: CreateGuardOptions): Promise<Guard>;
