// createGuard: a Node host for prodguard.wasm, doing what ABI.md asks of a
// host so a program writes no protocol code. Every decision is the
// module's (`evaluate`'s session); this file gathers the facts, finds the
// policy and the audit log as the Rust runtime does (crates/prodguard/src/
// config.rs, system.rs, facts.rs), asks on the terminal when the session
// says a typed answer would confirm, appends the records durably under the
// log's lock, spends approval tokens once, and records the outcome.

import * as fs from 'node:fs';
import { hostname as osHostname, userInfo } from 'node:os';
import { isAbsolute, join, resolve, sep } from 'node:path';

import { AuditLog, AuditLogError, nowRfc3339, randomHex, readTrail } from './audit-log.mjs';
import { nodeFacts, readMarker } from './facts.mjs';
import { ProdguardError, load } from './prodguard.mjs';

/** The system layer (prodguard_core::trust::SYSTEM_DIR) and its files. */
const SYSTEM_DIR = '/etc/prodguard';
const SYSTEM_POLICY_NAME = 'policy.toml';
const SYSTEM_MARKER_NAME = 'environment';
/** Under a system policy, the trail (prodguard_core::trust::SYSTEM_AUDIT_LOG). */
const SYSTEM_AUDIT_LOG = '/var/log/prodguard/audit.jsonl';
/** The policy file looked for in the working directory when PRODGUARD_POLICY is unset. */
const LOCAL_POLICY_FILE = 'prodguard.toml';
/** A policy file is at most this long (crates/prodguard/src/small_file.rs). */
const POLICY_MAX_BYTES = 4 << 20;
/** The longest answer read from the terminal. */
const MAX_ANSWER_BYTES = 1024;

/**
 * A refusal: the operation did not run. `code` is the exit code a CLI run
 * would give (120 denied, 121 not confirmed, 122 backup, 123 audit, 124
 * environment mismatch, 125 policy or usage); `denial` is the session's,
 * when the module refused; `recorded` whether the refusal reached the log.
 */
export class GuardRefusal extends ProdguardError {
  constructor(code, message, { denial = null, recorded = false, cause } = {}) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.name = 'GuardRefusal';
    this.denial = denial;
    this.recorded = recorded;
  }
}

const nonEmpty = (value) => (typeof value === 'string' && value.trim() !== '' ? value : null);

/**
 * Who is acting, as the Rust runtime says it (crates/prodguard/src/facts.rs,
 * `current_actor`): the label `PRODGUARD_ACTOR`, else `SUDO_USER`, `USER`,
 * `LOGNAME`, else the account; the OS account of this process; and the
 * kind, which the module decides (ABI 2.3 `actor_kind`: agent beats ci
 * beats human, a terminal, beats service) from `env` and whether this
 * process has a terminal.
 */
export function nodeActor({ pg, env = process.env, terminal = '/dev/tty' } = {}) {
  if (pg === undefined || typeof pg.evaluate !== 'function') {
    throw new TypeError('nodeActor needs the loaded module: nodeActor({ pg })');
  }
  let account;
  try {
    account = userInfo().username;
  } catch {
    account = `uid:${process.getuid?.() ?? 'unknown'}`;
  }
  const user = nonEmpty(env.PRODGUARD_ACTOR) ?? nonEmpty(env.SUDO_USER) ?? nonEmpty(env.USER) ?? nonEmpty(env.LOGNAME) ?? account;
  const vars = Object.fromEntries(Object.entries(env).filter(([, value]) => typeof value === 'string'));
  const hasTerminal = Boolean(process.stdin.isTTY) || (terminal !== null && canOpen(terminal));
  const { actor_kind: kind } = pg.evaluate({
    facts: { env: vars },
    terminal: hasTerminal,
    operation: { kind: 'prodguard.detect' },
  });
  return { user, kind, account };
}

function canOpen(path) {
  try {
    fs.closeSync(fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK));
    return true;
  } catch {
    return false;
  }
}

const policyError = (message, cause) => new GuardRefusal(125, message, cause === undefined ? {} : { cause });

/** A policy file's text: at most 4 MiB of UTF-8 (errors say what to fix). */
function readPolicyFile(path, hint) {
  let bytes;
  try {
    const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
    try {
      if (!fs.fstatSync(fd).isFile()) throw new Error('not a regular file');
      bytes = Buffer.alloc(POLICY_MAX_BYTES + 1);
      let length = 0;
      for (;;) {
        const n = fs.readSync(fd, bytes, length, bytes.length - length, null);
        if (n === 0) break;
        length += n;
        if (length > POLICY_MAX_BYTES) throw new Error(`larger than ${POLICY_MAX_BYTES} bytes`);
      }
      bytes = bytes.subarray(0, length);
    } finally {
      fs.closeSync(fd);
    }
  } catch (error) {
    throw policyError(`cannot read policy file ${path}: ${error.message}; ${hint}`, error);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw policyError(`${path}: the policy is not valid UTF-8; save it as UTF-8`, error);
  }
}

/**
 * The local policy as the CLI finds it (crates/prodguard/src/config.rs):
 * the `policy` option (text; null: the built-in default), else the
 * `policyFile` option, else `PRODGUARD_POLICY`, else `./prodguard.toml`
 * when it exists, else none (the built-in default).
 */
function discoverPolicy({ policy, policyFile, env, cwd }) {
  if (policy !== undefined) return policy === null ? null : { text: String(policy), path: '<the policy option>' };
  if (policyFile !== undefined && policyFile !== null) {
    const path = resolve(cwd, policyFile);
    return { text: readPolicyFile(path, 'fix the path (policyFile) or create the file'), path };
  }
  const named = nonEmpty(env.PRODGUARD_POLICY);
  if (named !== null) {
    const path = resolve(cwd, named);
    return { text: readPolicyFile(path, 'fix the path (PRODGUARD_POLICY) or create the file'), path };
  }
  const local = join(cwd, LOCAL_POLICY_FILE);
  if (fs.existsSync(local)) return { text: readPolicyFile(local, 'fix its permissions or remove it'), path: local };
  return null;
}

/**
 * The system policy's text, when `DIR/policy.toml` exists, once the layer
 * is found secure as prodguard::system::policy_text finds it: the policy,
 * the marker (when it exists) and every directory above them are real
 * files and directories (no symbolic link), owned by root and writable by
 * nobody else (a directory above may be world-writable when it is sticky,
 * as /tmp is). Anything else refuses (125) naming the fix: a layer anyone
 * can rewrite anchors nothing, and ignoring it would silently loosen.
 */
export function systemPolicyText(dir = SYSTEM_DIR) {
  const policyPath = join(dir, SYSTEM_POLICY_NAME);
  const markerPath = join(dir, SYSTEM_MARKER_NAME);
  let found = false;
  for (const path of [policyPath, markerPath]) {
    let exists;
    try {
      fs.lstatSync(path);
      exists = true;
    } catch (error) {
      if (error.code !== 'ENOENT' && error.code !== 'ENOTDIR') {
        throw policyError(`cannot read the system layer's ${path}: ${error.message}; fix its permissions (it must be readable, owned by root and writable only by root)`, error);
      }
      exists = false;
    }
    if (!exists) continue;
    checkSecure(path, dir);
    if (path === policyPath) found = true;
  }
  if (!found) return null;
  const text = readPolicyFile(policyPath, `it must be readable by every account that runs prodguard (\`chmod 644 ${policyPath}\`)`);
  return text;
}

/** checkSecure for the system layer's files: a failure is a policy error (125). */
function checkSecure(path, dir) {
  const problem = rootOnly(path, `the system layer (${dir})`);
  if (problem !== null) throw policyError(problem);
}

/**
 * Why `path` is not root's alone — it, or a directory above it, is a
 * symbolic link, owned by another account, or writable by its group or
 * others (a sticky directory such as /tmp excepted) — so that `what`, which
 * relies on it, is not secure; null when it is (prodguard::system::root_only).
 */
function rootOnly(path, what, stickyParent = true) {
  const absolute = resolve(path);
  const entries = [];
  for (let entry = absolute; ; entry = resolve(entry, '..')) {
    entries.push(entry);
    if (entry === sep || entry === resolve(entry, '..')) break;
  }
  for (const [depth, entry] of entries.entries()) {
    let meta;
    try {
      meta = fs.lstatSync(entry);
    } catch (error) {
      return `cannot inspect ${entry}: ${error.message}`;
    }
    const shown = depth === 0 ? path : `the directory ${entry}`;
    if (meta.isSymbolicLink()) {
      return `${shown} is a symbolic link, so ${what} is not secure: a link can lead through a directory someone else can change; replace it with the real file or directory`;
    }
    if (meta.uid !== 0) {
      return `${shown} is owned by uid ${meta.uid}, not root, so ${what} is not secure; run \`chown root ${entry}\``;
    }
    // A trail's own directory may not be sticky: in /tmp anyone could add
    // a rotated file (LOG.1) beside it after it was checked.
    const stickyDir = depth > 0 && (depth > 1 || stickyParent) && meta.isDirectory() && (meta.mode & 0o1000) !== 0;
    if ((meta.mode & 0o022) !== 0 && !stickyDir) {
      const who = (meta.mode & 0o002) !== 0 ? 'others' : 'its group';
      return `${shown} is writable by ${who} (mode ${(meta.mode & 0o7777).toString(8)}), so ${what} is not secure; run \`chmod go-w ${entry}\``;
    }
  }
  return null;
}


/**
 * The audit log, as crates/prodguard/src/config.rs `audit_logs` finds it:
 * under a system policy, the system's trail (its `[audit] log`, else
 * /var/log/prodguard/audit.jsonl; copies are not written here, and said
 * so); else the `auditLog` option or `PRODGUARD_AUDIT_LOG`, else the
 * policy's `[audit] log`, else `$XDG_STATE_HOME/prodguard/audit.jsonl` (or
 * `~/.local/state/…`).
 */
function auditLogPath({ auditLog, env, cwd, anchored, audit }) {
  const named = nonEmpty(auditLog ?? undefined) ?? nonEmpty(env.PRODGUARD_AUDIT_LOG);
  if (anchored) {
    const trail = audit.log ?? SYSTEM_AUDIT_LOG;
    const copies = [...(audit.copies ?? []), ...(named === null ? [] : [resolve(cwd, named)])].filter((c) => c !== trail);
    for (const copy of copies) {
      process.emitWarning(
        `prodguard: under the system policy the audit trail is ${trail}; ${copy} would be a copy, ` +
          'which this Node host does not write',
        { code: 'PRODGUARD_AUDIT_COPY' },
      );
    }
    return trail;
  }
  if (named !== null) return resolve(cwd, named);
  if (audit.log !== null) return resolve(cwd, audit.log);
  const absolute = (name) => {
    const value = nonEmpty(env[name]);
    return value !== null && isAbsolute(value) ? value : null;
  };
  const state = absolute('XDG_STATE_HOME') ?? (absolute('HOME') === null ? null : join(absolute('HOME'), '.local', 'state'));
  return state === null ? null : join(state, 'prodguard', 'audit.jsonl');
}

/**
 * Creates a guard for this process: finds the policy, gathers the facts
 * and the actor once (as the Rust `Guard` does when it is built), and
 * loads prodguard.wasm (the package's own, unless `module` says otherwise).
 */
export async function createGuard(options = {}) {
  const {
    module,
    policy,
    policyFile,
    systemDir = SYSTEM_DIR,
    auditLog,
    env = process.env,
    cwd = process.cwd(),
    facts,
    explicit = null,
    actor,
    terminal = '/dev/tty',
    hostname = osHostname(),
    flock = 'flock',
    output = null,
  } = options;
  const pg = module !== undefined && typeof module?.evaluate === 'function' ? module : await load(module);
  const local = discoverPolicy({ policy, policyFile, env, cwd });
  const systemPolicy = systemDir === null ? null : systemPolicyText(systemDir);
  const request = { policy: local?.text ?? null, ...(systemPolicy === null ? {} : { system_policy: systemPolicy }) };
  // The policy's [audit] settings, layered, as the module reads them (ABI
  // 2.3): this host writes one fdatasync'ed log, so it refuses what it would
  // otherwise leave undone.
  const { audit } = pg.evaluate({ ...request, operation: { kind: 'prodguard.detect' } });
  const unmet = [
    audit.seal_key_file !== null && 'seal_key_file (seals)',
    audit.rotate_bytes !== null && 'rotate_bytes (rotation)',
    audit.sink !== null && 'sink (fleet mode)',
  ].filter(Boolean);
  if (unmet.length > 0) {
    throw policyError(
      `the policy sets [audit] ${unmet.join(' and ')}, which this Node host does not do; it refuses rather ` +
        'than write a trail the policy says is otherwise. Run the operation through the prodguard CLI ' +
        '(`prodguard exec`), or leave those keys out',
    );
  }
  let gathered = facts ?? nodeFacts({ env, hostname, explicit });
  if (facts === undefined) {
    // The markers the policy names (`marker_file`), which only the module
    // knows: every `file:` signal detection looks at, read as Rust reads it.
    const { detection } = pg.evaluate({ ...request, facts: gathered, operation: { kind: 'prodguard.detect' }, explain: true });
    const files = { ...gathered.files };
    for (const { source } of detection.evidence) {
      if (!source.startsWith('file:')) continue;
      const path = source.slice('file:'.length);
      if (Object.hasOwn(files, path)) continue;
      const content = readMarker(path);
      if (content !== null) files[path] = content;
    }
    gathered = { ...gathered, files };
  } else {
    // A policy error surfaces now, not at the first run.
    pg.evaluate({ ...request, facts: gathered, operation: { kind: 'prodguard.detect' } });
  }
  const logPath = auditLogPath({ auditLog, env, cwd, anchored: systemPolicy !== null, audit });
  const host = nonEmpty(hostname) ?? 'unknown';
  const log = logPath === null ? null : new AuditLog(logPath, pg, { host, flock });
  return new Guard({
    pg, request, facts: gathered, actor: actor ?? nodeActor({ pg, env, terminal }), log,
    ledger: logPath === null ? null : `file://${nonEmpty(hostname) ?? ''}${logPath}`,
    terminal, env, output,
  });
}

class Guard {
  #pg;
  #request;
  #facts;
  #actor;
  #log;
  #ledger;
  #terminal;
  #env;
  #output;

  constructor({ pg, request, facts, actor, log, ledger, terminal, env, output }) {
    this.#pg = pg;
    this.#request = request;
    this.#facts = facts;
    this.#actor = Object.freeze({ ...actor });
    this.#log = log;
    this.#ledger = ledger;
    this.#terminal = terminal;
    this.#env = env;
    this.#output = output;
  }

  /** What detection found (the module's `detection`). */
  get detection() {
    return this.#pg.evaluate({ ...this.#request, facts: this.#facts, operation: { kind: 'prodguard.detect' } }).detection;
  }

  get actor() {
    return this.#actor;
  }

  /** The audit log's path (null when there is none). */
  get auditLog() {
    return this.#log?.path ?? null;
  }

  /** The ledger approval tokens are spent in (`file://HOST/ABS/PATH` of the log). */
  get ledger() {
    return this.#ledger;
  }

  /** The module's dry run for an operation: detection and decision, nothing asked or recorded. */
  check(operation) {
    const { kind, target = null, fingerprint = null, rollback = null } = operation;
    return this.#pg.evaluate({ ...this.#request, facts: this.#facts, operation: { kind, target, fingerprint, rollback } });
  }

  /**
   * Where a rule requires `staged`: the trail the policy's `[promotion]`
   * names, for the module to verify and judge (ABI 2.4). A PostgreSQL
   * trail, or one that cannot be read, is given as the reason it is not
   * there: the module refuses (123).
   */
  #promotionEvidence(operation) {
    const answer = this.#pg.evaluate({ ...this.#request, facts: this.#facts, operation });
    if (!answer.decision.requirements.some((r) => r.kind === 'staged')) return {};
    const trail = answer.promotion_trail ?? null;
    if (trail === null) return {};
    if (/^postgres(ql)?:\/\//i.test(trail)) {
      return { promotion_error: 'this Node host cannot read a PostgreSQL trail; run it with the prodguard CLI, or export the staging trail to a file (staging_log)' };
    }
    // Under a system policy, a trail the guarded account could write could
    // hold a forged success: it must be root's alone, as the layer is.
    const anchored = this.#request.system_policy !== undefined && this.#request.system_policy !== null;
    const what = 'the staging trail of [promotion] staging_log (whoever can write it can forge a staging success)';
    try {
      return { promotion_trail: readTrail(trail, anchored ? (file) => rootOnly(file, what, false) : () => null) };
    } catch (error) {
      return { promotion_error: error.message };
    }
  }

  #session(operation, evidence) {
    return this.#pg.evaluate({ ...this.#request, facts: this.#facts, operation, evidence, now: nowRfc3339() }).session;
  }

  /**
   * Runs `work` under the guard and answers its value: the session's
   * verdict first (asking on the terminal when a typed answer would
   * confirm), the intent appended durably before `work` starts, the
   * outcome after. A refusal throws a GuardRefusal and `work` is not called.
   */
  async run(operation, work) {
    if (operation === null || typeof operation !== 'object' || typeof operation.kind !== 'string') {
      throw new TypeError('guard.run(operation, work): operation must be { kind, target?, fingerprint?, rollback?, approval?, breakGlass? }');
    }
    if (typeof work !== 'function') throw new TypeError('guard.run(operation, work): work must be a function');
    const op = {
      kind: operation.kind,
      target: operation.target ?? null,
      fingerprint: operation.fingerprint ?? null,
      rollback: operation.rollback ?? null,
    };
    const token = nonEmpty(operation.approval ?? undefined) ?? nonEmpty(this.#env.PRODGUARD_APPROVAL);
    const auditError = this.#log === null
      ? 'no audit log: name one with auditLog or PRODGUARD_AUDIT_LOG (or set HOME)'
      : this.#log.check();
    const evidence = {
      actor: { ...this.#actor },
      attempt_id: randomHex(16),
      ...(auditError === null ? {} : { audit_error: auditError }),
      ...(token === null ? {} : { approval: { token, ledger: this.#ledger } }),
      ...(operation.breakGlass ? { break_glass: String(operation.breakGlass) } : {}),
    };
    Object.assign(evidence, this.#promotionEvidence(op));
    let verdict = this.#session(op, evidence);
    let notAsked = null;
    if (verdict.step === 'deny' && verdict.exit_code === 121 && verdict.challenge) {
      // Ask only when the module says the right typed answer would confirm
      // (never an agent, never under four eyes or an approval-only rule).
      const probe = this.#session(op, { ...evidence, typed: verdict.challenge.expected });
      if (probe.exit_code !== 121) {
        const answer = await askOnTerminal(this.#terminal, verdict.challenge, this.#output);
        if (answer.typed === undefined) {
          notAsked = answer.unavailable;
        } else {
          verdict = this.#session(op, { ...evidence, typed: answer.typed });
          await answer.tell(verdict.exit_code === 121 ? 'prodguard: that does not match; cancelled.\n' : 'prodguard: confirmed.\n');
        }
      }
    }
    if (verdict.step !== 'proceed') return this.#refuse(verdict, notAsked);
    const intent = verdict.record;
    if (intent !== undefined && intent !== null) {
      if (this.#log === null) throw new GuardRefusal(123, `refused: ${auditError}`);
      const event = withPidNamespace(intent);
      const spend = intent.confirm?.token_id ?? null;
      let appended;
      try {
        appended = await this.#log.append([event], { spend });
      } catch (error) {
        throw new GuardRefusal(
          123,
          `refused: the intent record could not be appended (${error.message}), so the operation did not run\n` +
            '  next step: fix the audit log (or its lock) and run it again',
          { cause: error },
        );
      }
      if (appended.spent) {
        // The token was spent before: refuse as the module refuses an
        // attempt without a usable token, and say which record spent it.
        const refused = this.#session(op, { ...evidence, approval: undefined });
        const spent = `the approval token was already spent (its nonce ${spend} is in the intent at seq ${appended.spent.seq} of ${appended.spent.file}); ask for a new one (\`prodguard approve\`)`;
        return this.#refuse(refused.step === 'deny' ? refused : { ...verdict, step: 'deny', exit_code: 121, record: null }, null, spent);
      }
    }
    const started = performance.now();
    let value;
    try {
      value = await work();
    } catch (error) {
      await this.#outcome(evidence.attempt_id, started, 'failed', errorMessage(error));
      throw error;
    }
    await this.#outcome(evidence.attempt_id, started, 'ok');
    return value;
  }

  async #outcome(attemptId, started, status, error) {
    if (this.#log === null) return;
    const outcome = { status, duration_ms: Math.max(0, Math.round(performance.now() - started)) };
    if (error !== undefined) outcome.error = error;
    try {
      await this.#log.append([{ kind: 'outcome', attempt_id: attemptId, outcome }]);
    } catch (failure) {
      // The operation already ran: its result stands; the trail lacks its outcome.
      process.emitWarning(`prodguard: the outcome record could not be appended: ${failure.message}`, { code: 'PRODGUARD_OUTCOME_NOT_RECORDED' });
    }
  }

  async #refuse(verdict, notAsked, because = null) {
    const denial = verdict.denial ?? null;
    let recorded = false;
    let problem = null;
    if (verdict.record && this.#log !== null) {
      try {
        await this.#log.append([verdict.record]);
        recorded = true;
      } catch (error) {
        problem = error instanceof AuditLogError ? error.message : String(error);
      }
    }
    let message = because !== null
      ? `refused: ${because}`
      : denial === null
        ? `refused (exit ${verdict.exit_code})`
        : denial.rule && !denial.missing.includes(`rule \`${denial.rule}\``)
          ? `refused by rule \`${denial.rule}\`: ${denial.missing}`
          : `refused: ${denial.missing}`;
    if (notAsked !== null) message += `\n  not asked: ${notAsked}`;
    if (denial !== null) message += `\n  next step: ${denial.next_step}`;
    if (denial?.note) message += `\n  note: ${denial.note}`;
    if (!recorded && verdict.exit_code !== 125) {
      message += `\n  (this refusal could not be written to the audit log${problem === null ? '' : `: ${problem}`})`;
    }
    throw new GuardRefusal(verdict.exit_code, message, { denial: denial === null ? null : { ...denial, recorded }, recorded });
  }
}

function errorMessage(error) {
  if (error instanceof Error) return error.message || error.name;
  try {
    return String(error);
  } catch {
    return 'a value that is not an Error';
  }
}

/** An intent with the writer's PID namespace (as the Rust file sink adds it), for abandoned-attempt checks. */
function withPidNamespace(event) {
  if (event.kind !== 'intent' || event.pid_ns !== undefined) return event;
  try {
    const link = fs.readlinkSync('/proc/self/ns/pid');
    const match = /^pid:\[(\d+)\]$/.exec(link);
    if (match) return { ...event, pid_ns: Number(match[1]) };
  } catch {}
  return event;
}

// ---- the terminal prompt ----------------------------------------------------

/** prodguard_core::text::escape: controls, bidirectional and zero-width characters shown as escapes. */
function escape(text) {
  let out = '';
  for (const c of String(text)) {
    const code = c.codePointAt(0);
    if (c === '\\') out += '\\\\';
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\t') out += '\\t';
    else if (code < 0x20 || (code >= 0x7f && code <= 0x9f) || isInvisible(code)) out += `\\u{${code.toString(16)}}`;
    else out += c;
  }
  return out;
}

function isInvisible(c) {
  const ranges = [
    [0xad, 0xad], [0x34f, 0x34f], [0x61c, 0x61c], [0x115f, 0x1160], [0x17b4, 0x17b5], [0x180b, 0x180f],
    [0x200b, 0x200f], [0x202a, 0x202e], [0x2060, 0x206f], [0x3164, 0x3164], [0xfe00, 0xfe0f], [0xfeff, 0xfeff],
    [0xffa0, 0xffa0], [0xfff0, 0xfff8], [0x1bca0, 0x1bca3], [0x1d173, 0x1d17a], [0xe0000, 0xe0fff],
    [0x2028, 0x2029],
  ];
  return ranges.some(([lo, hi]) => c >= lo && c <= hi);
}

/** The prompt the Rust TerminalConfirmer shows (crates/prodguard/src/confirm.rs). */
export function promptText(challenge) {
  const target = challenge.target != null ? ` on \`${escape(challenge.target)}\`` : '';
  const what = challenge.target != null ? "the target's name" : "the environment's name";
  const lines = (challenge.consequences ?? []).map((line) => `\n    ${line}`).join('');
  const consequences = lines === '' ? '' : `\n  It will change (counted by a dry run, rolled back):${lines}`;
  return (
    `\nprodguard: \`${escape(challenge.operation)}\`${target} in ${escape(challenge.environment)} (tier ${challenge.tier}) needs your confirmation.\n` +
    `  Why: ${challenge.why}.${consequences}\n` +
    `  To go ahead, type ${what} \`${escape(challenge.expected)}\` and press Enter; anything else cancels.\n> `
  );
}

/**
 * Asks on the controlling terminal (never stdin): `{typed, tell}` with the
 * line typed (its line ending removed), or `{unavailable}` saying why
 * nothing was asked. `output`, when given, gets the prompt instead of the
 * terminal (tests).
 */
async function askOnTerminal(terminal, challenge, output) {
  if (terminal === null) return { unavailable: 'this guard takes no typed confirmation (terminal: null)' };
  let handle;
  try {
    handle = await fs.promises.open(terminal, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
  } catch (error) {
    return {
      unavailable: error.code === 'ENXIO'
        ? 'no terminal to ask on (this process has no controlling terminal)'
        : `no terminal to ask on (${terminal}: ${error.message})`,
    };
  }
  try {
    // Typeahead is not an answer: discard whole lines queued before the question.
    discardPending(terminal);
    if (output !== null) output.write(promptText(challenge));
    else await handle.write(promptText(challenge));
    const buffer = Buffer.alloc(MAX_ANSWER_BYTES);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (buffer.subarray(0, length).includes(0x0a)) break;
    }
    let typed = buffer.subarray(0, length).toString('utf8');
    const newline = typed.indexOf('\n');
    if (newline >= 0) typed = typed.slice(0, newline);
    if (typed.endsWith('\r')) typed = typed.slice(0, -1);
    const opened = handle;
    handle = null;
    return {
      typed,
      // What the person is told once the module judged the answer; closes the terminal.
      tell: async (text) => {
        try {
          if (output !== null) output.write(text);
          else await opened.write(text);
        } catch {}
        await opened.close().catch(() => {});
      },
    };
  } catch (error) {
    return { unavailable: `cannot use the terminal ${terminal}: ${error.message}` };
  } finally {
    if (handle !== null) await handle.close().catch(() => {});
  }
}

/** Reads and drops whatever complete lines wait on the terminal (a non-blocking read until EAGAIN). */
function discardPending(terminal) {
  let fd;
  try {
    fd = fs.openSync(terminal, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch {
    return;
  }
  try {
    const scratch = Buffer.alloc(4096);
    for (let i = 0; i < 256; i += 1) {
      if (fs.readSync(fd, scratch, 0, scratch.length, null) === 0) break;
    }
  } catch {
    // EAGAIN: nothing (more) waiting.
  } finally {
    fs.closeSync(fd);
  }
}
