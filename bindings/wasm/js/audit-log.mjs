// The audit log file, appended to as the Rust file sink does
// (crates/prodguard/src/audit/sink.rs): under an exclusive flock(2) of the
// log file itself, on an O_APPEND descriptor, with one write of whole
// lines and an fdatasync before the append counts. The lines and their
// hashes come from prodguard.wasm (`prodguard_audit_record`); this file
// only keeps the chain's place (log_id, seq, prev) and the lock.
//
// Node has no flock(2). The lock is held by util-linux's flock(1), run for
// the length of one append: `flock --exclusive LOG cat` takes the very lock
// a Rust writer takes (flock locks belong to the open file, and the Rust
// FileSink locks the log file itself, not a side file), so a Node writer
// and a Rust writer can append to one log at the same time. Without
// flock(1) on PATH nothing is appended (the guard refuses, 123): a lock
// file of our own would not keep a Rust writer out.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { basename, dirname } from 'node:path';

const GENESIS_PREV = '0'.repeat(64);
/** A record is at most 1 MiB (ABI.md); the last line is looked for within this. */
const LAST_LINE_LIMIT = 1 << 20;

/** An append that failed: nothing (or a torn tail) reached the log. */
export class AuditLogError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'AuditLogError';
  }
}

/** Appends serialised per log path within this process; flock(1) serialises across processes. */
const queues = new Map();

function serialised(path, task) {
  const previous = queues.get(path) ?? Promise.resolve();
  const run = previous.then(task, task);
  const tail = run.catch(() => {});
  queues.set(path, tail);
  tail.then(() => {
    if (queues.get(path) === tail) queues.delete(path);
  });
  return run;
}

export class AuditLog {
  #path;
  #pg;
  #host;
  #flock;

  /**
   * @param path the log (absolute)
   * @param pg a Prodguard instance (for `auditRecord`)
   * @param options.host the `host` of its records
   * @param options.flock the flock(1) command
   */
  constructor(path, pg, { host, flock = 'flock' }) {
    this.#path = path;
    this.#pg = pg;
    this.#host = host;
    this.#flock = flock;
  }

  get path() {
    return this.#path;
  }

  /** Whether the log can take records: its directory and the file open for appending. A message when not. */
  check() {
    try {
      const { fd } = this.#open();
      fs.closeSync(fd);
      return null;
    } catch (error) {
      return `cannot open the audit log ${this.#path}: ${error.message}`;
    }
  }

  /**
   * Appends `events` as consecutive records, durable on return. With
   * `spend` (an approval's token id), first looks for an intent that spent
   * it, under the same lock, and appends nothing when one did: answers
   * `{spent: {seq, file}}` then, else `{receipts: [{seq, hash}]}`.
   */
  append(events, { spend = null } = {}) {
    return serialised(this.#path, () => this.#appendLocked(events, spend));
  }

  #open() {
    fs.mkdirSync(dirname(this.#path), { recursive: true });
    const flags = fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK;
    try {
      return { fd: fs.openSync(this.#path, flags | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o666), created: true };
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    const fd = fs.openSync(this.#path, flags);
    if (!fs.fstatSync(fd).isFile()) {
      fs.closeSync(fd);
      throw new Error('it is not a regular file');
    }
    return { fd, created: false };
  }

  async #appendLocked(events, spend) {
    let fd = null;
    let lock = null;
    try {
      let created = false;
      for (let attempt = 0; ; attempt += 1) {
        try {
          ({ fd, created } = this.#open());
        } catch (error) {
          throw new AuditLogError(`cannot open the audit log ${this.#path}: ${error.message}`, { cause: error });
        }
        lock = await this.#lock();
        // The file locked must still be the one at the path (a rotation
        // or a deletion in between would send records to an unlinked file).
        const open = fs.fstatSync(fd);
        let named = null;
        try {
          named = fs.statSync(this.#path);
        } catch {}
        if (named !== null && named.dev === open.dev && named.ino === open.ino) break;
        await lock.release();
        lock = null;
        fs.closeSync(fd);
        fd = null;
        if (attempt >= 3) throw new AuditLogError(`the audit log ${this.#path} keeps being replaced while it is opened`);
      }
      const length = fs.fstatSync(fd).size;
      const head = readHead(fd, length, this.#path);
      if (spend !== null) {
        const spent = findSpent(this.#path, spend);
        if (spent !== null) return { spent };
      }
      let seq = head?.seq ?? 0;
      let prev = head?.hash ?? GENESIS_PREV;
      const logId = head?.logId ?? randomHex(16);
      const ts = nowRfc3339();
      const lines = [];
      const receipts = [];
      for (const event of events) {
        seq += 1;
        const { line, hash } = this.#pg.auditRecord({ log_id: logId, seq, ts, host: this.#host, pid: process.pid, prev, event });
        lines.push(line);
        receipts.push({ seq, hash });
        prev = hash;
      }
      const bytes = Buffer.from(lines.join(''), 'utf8');
      try {
        let written = 0;
        while (written < bytes.length) {
          written += fs.writeSync(fd, bytes, written, bytes.length - written);
        }
        fs.fdatasyncSync(fd);
        // Whoever first writes to an empty log syncs its directory entry.
        if (created || length === 0) syncDirectory(dirname(this.#path));
      } catch (error) {
        throw new AuditLogError(`cannot append to the audit log ${this.#path}: ${error.message}`, { cause: error });
      }
      return { receipts };
    } finally {
      if (lock !== null) await lock.release();
      if (fd !== null) fs.closeSync(fd);
    }
  }

  /** Holds the log's flock until `release()`: flock(1) holds it while its `cat` waits for our ping's end. */
  #lock() {
    return new Promise((resolve, reject) => {
      let child;
      try {
        child = spawn(this.#flock, ['--exclusive', this.#path, 'cat'], { stdio: ['pipe', 'pipe', 'pipe'] });
      } catch (error) {
        reject(lockError(error, this.#flock));
        return;
      }
      let stderr = '';
      let echoed = '';
      let settled = false;
      const exited = new Promise((done) => child.once('close', done));
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (text) => { stderr += text; });
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (text) => {
        echoed += text;
        // cat runs only once flock holds the lock: the ping coming back means it is ours.
        if (!settled && echoed.includes('locked\n')) {
          settled = true;
          resolve({
            release: async () => {
              child.stdin.end();
              await exited;
            },
          });
        }
      });
      child.once('error', (error) => {
        if (settled) return;
        settled = true;
        reject(lockError(error, this.#flock));
      });
      child.once('close', (code, signal) => {
        if (settled) return;
        settled = true;
        reject(new AuditLogError(`cannot lock the audit log ${this.#path} (flock exited ${code ?? signal}): ${stderr.trim()}`));
      });
      child.stdin.on('error', () => {});
      child.stdin.write('locked\n');
    });
  }
}

function lockError(error, command) {
  if (error.code === 'ENOENT') {
    return new AuditLogError(
      `cannot lock the audit log: ${command} (util-linux's flock(1)) is not installed; ` +
        'the Node host takes the same flock as the Rust writer through it (Debian: apt-get install util-linux)',
      { cause: error },
    );
  }
  return new AuditLogError(`cannot lock the audit log: ${error.message}`, { cause: error });
}

/** The chain's head from the last record: null for an empty log. */
function readHead(fd, length, path) {
  if (length === 0) return null;
  const start = Math.max(0, length - LAST_LINE_LIMIT - 1);
  const tail = Buffer.alloc(length - start);
  let read = 0;
  while (read < tail.length) {
    const n = fs.readSync(fd, tail, read, tail.length - read, start + read);
    if (n === 0) break;
    read += n;
  }
  if (tail[tail.length - 1] !== 0x0a) {
    throw new AuditLogError(
      `the audit log ${path} ends in a torn record (a write was cut short); ` +
        `check it with \`prodguard audit verify --log ${path}\` and cut it with \`prodguard audit repair --log ${path}\``,
    );
  }
  const begin = tail.lastIndexOf(0x0a, tail.length - 2) + 1;
  if (begin === 0 && start > 0) throw new AuditLogError(`the last record of the audit log ${path} is longer than 1 MiB`);
  let record;
  try {
    record = JSON.parse(tail.subarray(begin, tail.length - 1).toString('utf8'));
  } catch (error) {
    throw new AuditLogError(`the last record of the audit log ${path} is not JSON (${error.message}); check it with \`prodguard audit verify --log ${path}\``);
  }
  const { seq, hash, log_id: logId } = record ?? {};
  if (!Number.isSafeInteger(seq) || seq < 1 || typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash) || typeof logId !== 'string' || logId === '') {
    throw new AuditLogError(`the last record of the audit log ${path} has no valid seq, hash and log_id; check it with \`prodguard audit verify --log ${path}\``);
  }
  return { seq, hash, logId };
}

/**
 * The intent that spent `tokenId`, in the log or its rotated files
 * (`LOG.1`, `LOG.2`, …): `{seq, file}`, or null. Called under the lock.
 */
function findSpent(path, tokenId) {
  const needle = Buffer.from(`"token_id":${JSON.stringify(tokenId)}`);
  const intent = Buffer.from('"kind":"intent"');
  for (const file of [path, ...rotatedFiles(path).reverse()]) {
    let text;
    try {
      text = fs.readFileSync(file);
    } catch (error) {
      if (error.code === 'ENOENT') continue;
      throw new AuditLogError(`cannot search ${file} for the approval's nonce: ${error.message}`, { cause: error });
    }
    let at = text.indexOf(needle);
    while (at >= 0) {
      const begin = text.lastIndexOf(0x0a, at) + 1;
      let end = text.indexOf(0x0a, at);
      if (end < 0) end = text.length;
      const line = text.subarray(begin, end);
      if (line.includes(intent)) {
        let seq = 0;
        try {
          seq = JSON.parse(line.toString('utf8')).seq ?? 0;
        } catch {}
        return { seq, file };
      }
      at = text.indexOf(needle, end);
    }
  }
  return null;
}

/**
 * The whole text of the file log at `path`, its rotated files first
 * (`LOG.1`, `LOG.2`, …, `LOG`), for the module to verify and judge
 * (`evidence.promotion_trail`). Throws an AuditLogError when a file
 * cannot be read, the log itself included (a missing trail is no
 * evidence), or when `distrust(file)` says why it cannot be believed.
 */
export function readTrail(path, distrust = () => null) {
  return [...rotatedFiles(path), path]
    .map((file) => {
      const problem = distrust(file);
      if (problem !== null) throw new AuditLogError(problem);
      try {
        return fs.readFileSync(file, 'utf8');
      } catch (error) {
        throw new AuditLogError(`cannot read ${file}: ${error.message}`, { cause: error });
      }
    })
    .join('');
}

/** `LOG.N` beside the log, oldest (smallest N) first. */
function rotatedFiles(path) {
  const prefix = `${basename(path)}.`;
  let names;
  try {
    names = fs.readdirSync(dirname(path));
  } catch {
    return [];
  }
  return names
    .filter((name) => name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)))
    .map((name) => [Number(name.slice(prefix.length)), `${dirname(path)}/${name}`])
    .sort(([a], [b]) => a - b)
    .map(([, file]) => file);
}

function syncDirectory(dir) {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function randomHex(bytes) {
  return globalThis.crypto.getRandomValues(new Uint8Array(bytes)).reduce((hex, b) => hex + b.toString(16).padStart(2, '0'), '');
}

/** The current time in RFC 3339 with microseconds, as the Rust runtime writes it. */
export function nowRfc3339() {
  const micros = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
  const millis = Number(micros / 1000n);
  const iso = new Date(millis).toISOString(); // …T10:00:00.123Z
  return `${iso.slice(0, 19)}.${String(micros % 1000000n).padStart(6, '0')}Z`;
}
