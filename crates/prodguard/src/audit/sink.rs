//! The JSON Lines file sink: appends under `flock`, `O_APPEND`, one write
//! and one `fdatasync` per batch; a failure poisons the writer.

mod abandoned;
mod group;
mod rotation;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Condvar, Mutex};

use prodguard_core::Timestamp;
use prodguard_core::approval::SPENT_MARGIN_SECONDS;
use prodguard_core::audit::{
    AuditEvent, ChainVerifier, Envelope, EventKind, GENESIS_PREV, Record, SealKey,
    encode_record_into,
};
use prodguard_core::policy::Durability;

use super::seal::{self, SealKeyError};
use super::{AppendReceipt, AuditError, AuditSink, SpendError, rotated_files};
use crate::facts;
use group::Group;
#[derive(Debug, Clone)]
struct Head {
    seq: u64,
    hash: String,
    log_id: String,
}

#[derive(Debug)]
struct Writer {
    file: File,
    /// The file's length after this writer's last append; another writer
    /// has appended when the length differs.
    known_len: u64,
    /// The file's length as read when its lock was taken (one `statx`
    /// saved per append); consumed by the next `refresh_head`.
    locked_len: Option<u64>,
    head: Option<Head>,
    /// The file was created by us and its directory entry is not yet synced.
    sync_directory: bool,
    /// The open file's device and inode (they never change for a
    /// descriptor), so one `statx` of the path tells whether it is still the
    /// file there; `None` if unknown (then the descriptor is asked too).
    identity: Option<(u64, u64)>,
    /// The last append's buffer, kept for its capacity.
    buf: Vec<u8>,
}

struct State {
    writer: Option<Writer>,
    poisoned: Option<String>,
    ops: Box<dyn FileOps>,
}

/// The file operations an append performs, overridable to inject faults
/// (short writes, `EIO`, `ENOSPC`) in tests. The defaults are the real calls.
pub trait FileOps: Send {
    /// One `write(2)` on the log's `O_APPEND` descriptor; may write fewer
    /// bytes than given.
    fn write(&mut self, file: &File, buf: &[u8]) -> std::io::Result<usize> {
        let mut file = file;
        file.write(buf)
    }

    /// `fdatasync(2)` on the log.
    fn sync_data(&mut self, file: &File) -> std::io::Result<()> {
        file.sync_data()
    }
}

/// The real file operations.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFileOps;

impl FileOps for RealFileOps {}

/// The JSON Lines file sink (format v1).
///
/// Each append takes an exclusive `flock` on the file, re-reads the tail
/// only if another writer appended since, writes whole lines with one
/// `write_all` on an `O_APPEND` descriptor, and `fdatasync`s before
/// returning. Threads appending at the same time share one write and one
/// flush (group commit); each is acknowledged only after that flush. A
/// failed write or sync poisons the sink: fsync errors are never retried,
/// because the kernel may already have dropped the dirty pages.
///
/// ```no_run
/// use prodguard::audit::{AuditSink, FileSink};
/// use prodguard_core::audit::AuditEvent;
/// let sink = FileSink::new("/var/log/prodguard/audit.jsonl");
/// let receipt = sink.append(&AuditEvent::note("maintenance window opened"))?;
/// println!("durable as seq {}", receipt.seq);
/// # Ok::<(), prodguard::audit::AuditError>(())
/// ```
pub struct FileSink {
    path: PathBuf,
    durability: Durability,
    seal: Option<SealConfig>,
    rotate_bytes: Option<u64>,
    host: String,
    state: Mutex<State>,
    /// Whether this sink looked for abandoned attempts ([`FileSink::note_abandoned`]).
    swept: AtomicBool,
    group: Mutex<Group>,
    turn: Condvar,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl FileSink {
    /// A sink appending to `path` with fdatasync durability. Nothing is
    /// opened until the first append.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_durability(path, Durability::Fdatasync)
    }

    /// A sink with the given durability (`None` is only for tests).
    pub fn with_durability(path: impl Into<PathBuf>, durability: Durability) -> Self {
        Self::with_file_ops(path, durability, RealFileOps)
    }

    /// A sink whose writes and syncs go through `ops` (fault injection).
    pub fn with_file_ops(
        path: impl Into<PathBuf>,
        durability: Durability,
        ops: impl FileOps + 'static,
    ) -> Self {
        FileSink {
            path: path.into(),
            durability,
            seal: None,
            rotate_bytes: None,
            host: facts::hostname().unwrap_or_else(|| "unknown".into()),
            state: Mutex::new(State {
                writer: None,
                poisoned: None,
                ops: Box::new(ops),
            }),
            swept: AtomicBool::new(false),
            group: Mutex::new(Group::default()),
            turn: Condvar::new(),
        }
    }

    /// A sink for `path` with the policy's `[audit]` durability and sealing
    /// (`seal_key_file`, every `seal_every` records, default 1000).
    pub fn from_policy(path: impl Into<PathBuf>, policy: &prodguard_core::Policy) -> Self {
        let mut sink = Self::with_durability(path, policy.audit().durability);
        sink.rotate_bytes = policy.audit().rotate_bytes;
        match (&policy.audit().seal_key_file, policy.audit().sealed_every()) {
            (Some(key_file), Some(every)) => sink.sealed(key_file, every),
            _ => sink,
        }
    }

    /// Seals the log every `every` records with the key in `key_file`
    /// (`[audit] seal_every`, `seal_key_file`).
    pub fn sealed(mut self, key_file: impl Into<PathBuf>, every: u64) -> Self {
        self.seal = Some(SealConfig {
            key_file: key_file.into(),
            every,
        });
        self
    }

    /// Starts a new file once the log reaches `bytes` (`[audit] rotate_bytes`):
    /// the old file becomes `PATH.N` and the new file's first record chains
    /// to its last.
    pub fn rotating(mut self, bytes: u64) -> Self {
        self.rotate_bytes = Some(bytes);
        self
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a seal record now (`prodguard audit seal`); returns its seq.
    pub fn seal_now(&self) -> Result<u64, AuditError> {
        if self.seal.is_none() {
            return Err(AuditError::Seal(SealKeyError {
                path: self.path.clone(),
                problem: "this log has no seal key: set [audit] seal_key_file (create it with `prodguard audit seal-init`)".into(),
            }));
        }
        let (_, seq) = self
            .with_locked_writer(|writer, ops| self.append_batch_locked(writer, ops, &[], true))?;
        Ok(seq)
    }

    /// The key for the next seal: the key file's, moved past the last seal
    /// in the log (a crash after a seal but before the key evolved leaves
    /// the file one epoch behind).
    fn next_seal_key(
        &self,
        config: &SealConfig,
        file: &File,
        len: u64,
        log_id: &str,
    ) -> Result<SealKey, Failure> {
        let key = usable_seal_key(config, Some(log_id)).map_err(Failure::Clean)?;
        let last = last_seal_epoch(file, len)
            .map_err(|e| Failure::Clean(self.io("read the last seal", e)))?;
        Ok(match last {
            Some(epoch) if epoch >= key.epoch => key.at_epoch(epoch + 1).unwrap_or(key),
            _ => key,
        })
    }

    fn io(&self, op: &'static str, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            op,
            source,
        }
    }

    fn open(&self) -> Result<Writer, AuditError> {
        let open_err = |source| AuditError::Open {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(open_err)?;
        }
        let mut options = OpenOptions::new();
        options.read(true).append(true);
        let (file, created) = match options.clone().create_new(true).open(&self.path) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (
                crate::small_file::open_regular(&options, &self.path).map_err(open_err)?,
                false,
            ),
            Err(e) => return Err(open_err(e)),
        };
        // Whoever first writes to an empty log syncs its directory entry:
        // the creator may not have got that far before another process did.
        let meta = file.metadata();
        let empty = meta.as_ref().map(|m| m.len() == 0).unwrap_or(true);
        Ok(Writer {
            file,
            known_len: u64::MAX,
            locked_len: None,
            head: None,
            sync_directory: created || empty,
            identity: meta.ok().map(|m| identity(&m)),
            buf: Vec::new(),
        })
    }

    /// Reads the last record to learn the chain's head; `None` for an empty log.
    fn read_head(&self, file: &File, len: u64) -> Result<Option<Head>, AuditError> {
        if len == 0 {
            return Ok(None);
        }
        let line = last_line(file, len).map_err(|e| self.io("read the last record", e))?;
        let Some(line) = line else {
            return Err(AuditError::TornTail {
                path: self.path.clone(),
            });
        };
        let corrupt = |detail: String| AuditError::Corrupt {
            path: self.path.clone(),
            detail,
        };
        let record: Record = serde_json::from_slice(&line).map_err(|e| corrupt(e.to_string()))?;
        let mut verifier = ChainVerifier::resume(record.prev.clone(), record.seq, None);
        let record = verifier.push(&line).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(Head {
            seq: record.seq,
            hash: verifier.head_hash().to_owned(),
            log_id: record.log_id,
        }))
    }

    /// Writes `events` as consecutive records with one write and one sync,
    /// with seal records where they are due (and at the end when `seal_now`).
    fn append_batch_locked(
        &self,
        writer: &mut Writer,
        ops: &mut dyn FileOps,
        events: &[AuditEvent],
        seal_now: bool,
    ) -> Result<(Vec<AppendReceipt>, u64), Failure> {
        let len = self.refresh_head(writer).map_err(Failure::Clean)?;
        let (mut seq, mut prev, log_id) = match &writer.head {
            Some(head) => (head.seq, head.hash.clone(), head.log_id.clone()),
            None => (0, GENESIS_PREV.to_owned(), facts::random_id()),
        };
        let corrupt = |e: prodguard_core::audit::ChainError| {
            Failure::Clean(AuditError::Corrupt {
                path: self.path.clone(),
                detail: e.to_string(),
            })
        };
        // One envelope for the batch, its seq set per record. The pid is
        // asked each time (a forked child writes its own).
        let mut envelope = Envelope {
            log_id: log_id.clone(),
            seq: 0,
            ts: facts::now(),
            host: self.host.clone(),
            pid: std::process::id(),
        };
        let mut buf = std::mem::take(&mut writer.buf);
        buf.clear();
        let mut receipts = Vec::with_capacity(events.len());
        let mut seal_key: Option<SealKey> = None;
        let mut push = |event: &AuditEvent,
                        seq: &mut u64,
                        prev: &mut String|
         -> Result<AppendReceipt, Failure> {
            *seq = seq.checked_add(1).ok_or_else(|| {
                Failure::Clean(AuditError::Corrupt {
                    path: self.path.clone(),
                    detail: "seq is at its maximum".into(),
                })
            })?;
            envelope.seq = *seq;
            let hash = encode_record_into(&envelope, event, prev, &mut buf).map_err(corrupt)?;
            prev.clone_from(&hash);
            Ok(AppendReceipt { seq: *seq, hash })
        };
        let mut seal = |seq: &mut u64,
                        prev: &mut String,
                        push: &mut dyn FnMut(
            &AuditEvent,
            &mut u64,
            &mut String,
        ) -> Result<AppendReceipt, Failure>|
         -> Result<(), Failure> {
            let Some(config) = &self.seal else {
                return Ok(());
            };
            let key = match seal_key.take() {
                Some(key) => key,
                None => self.next_seal_key(config, &writer.file, len, &log_id)?,
            };
            let mut event = AuditEvent::new(EventKind::Seal);
            event.seal = Some(key.seal(&log_id, *seq + 1, prev));
            // A seal's receipt is nobody's: only the events' are returned.
            push(&event, seq, prev)?;
            seal_key = Some(key.evolve());
            Ok(())
        };
        let every = self.seal.as_ref().map_or(0, |c| c.every);
        for event in events {
            receipts.push(push(event, &mut seq, &mut prev)?);
            // Every `every`-th record of the log is a seal.
            if every > 0 && (seq + 1) % every == 0 {
                seal(&mut seq, &mut prev, &mut push)?;
            }
        }
        if seal_now {
            seal(&mut seq, &mut prev, &mut push)?;
        }
        if self
            .rotate_bytes
            .is_some_and(|limit| len > 0 && len >= limit)
        {
            self.rotate(writer, ops, &buf)?;
        } else {
            self.write_and_sync(writer, ops, &buf)?;
            writer.known_len = len + buf.len() as u64;
        }
        if let (Some(config), Some(next)) = (&self.seal, &seal_key) {
            // The seal is durable; now erase the key that made it.
            // The seal is on disk, but a used key still on the host would
            // let a later intruder forge it: stop here (fail closed).
            seal::write_bound_key_file(&config.key_file, next, Some(&log_id))
                .map_err(|e| Failure::Poison(e.into()))?;
        }
        writer.head = Some(Head {
            seq,
            hash: prev,
            log_id,
        });
        // Cut into records only for a subscriber that listens.
        if tracing::enabled!(target: "prodguard::audit", tracing::Level::INFO) {
            for line in buf.split_inclusive(|&b| b == b'\n') {
                tracing::info!(
                    target: "prodguard::audit",
                    record = %String::from_utf8_lossy(line.trim_ascii_end()),
                    "audit record appended"
                );
            }
        }
        // Kept for the next append, unless a large batch made it big.
        if buf.capacity() <= 64 << 10 {
            writer.buf = buf;
        }
        Ok((receipts, seq))
    }

    fn write_and_sync(
        &self,
        writer: &mut Writer,
        ops: &mut dyn FileOps,
        buf: &[u8],
    ) -> Result<(), Failure> {
        write_all(ops, &writer.file, buf).map_err(|e| Failure::Poison(self.io("write", e)))?;
        if self.durability == Durability::Fdatasync {
            ops.sync_data(&writer.file)
                .map_err(|e| Failure::Poison(self.io("fdatasync", e)))?;
            if writer.sync_directory {
                sync_parent(&self.path)
                    .map_err(|e| Failure::Poison(self.io("fsync directory", e)))?;
                writer.sync_directory = false;
            }
        }
        Ok(())
    }
}

/// Where and how often to seal.
#[derive(Debug, Clone)]
struct SealConfig {
    key_file: PathBuf,
    every: u64,
}

/// The key in `config`'s key file, if it can seal the log `log_id` (`None`:
/// a log not begun yet): the file reads, and it seals no other log.
fn usable_seal_key(config: &SealConfig, log_id: Option<&str>) -> Result<SealKey, AuditError> {
    let (key, bound_to) = seal::read_bound_key_file(&config.key_file)?;
    if let (Some(bound), Some(log_id)) = (&bound_to, log_id)
        && bound != log_id
    {
        return Err(AuditError::Seal(SealKeyError {
            path: config.key_file.clone(),
            problem: format!(
                "it seals log {bound}, not this log ({log_id}); give each log its own seal key"
            ),
        }));
    }
    Ok(key)
}

/// The epoch of the last seal record in the file, scanning back at most 16 MiB.
fn last_seal_epoch(file: &File, len: u64) -> std::io::Result<Option<u64>> {
    // The record's own kind follows `"pid":N,`; an operation named `seal`
    // would appear as `{"kind":"seal"` inside `op`.
    const NEEDLE: &[u8] = b",\"kind\":\"seal\",";
    const LIMIT: u64 = 16 << 20;
    let start = len.saturating_sub(LIMIT);
    let mut tail = vec![0u8; usize::try_from(len - start).unwrap_or(0)];
    file.read_exact_at(&mut tail, start)?;
    let Some(at) = tail.windows(NEEDLE.len()).rposition(|w| w == NEEDLE) else {
        return Ok(None);
    };
    let line_start = tail[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let line_end = tail[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(tail.len(), |p| at + p);
    #[derive(serde::Deserialize)]
    struct SealOnly {
        seal: Option<prodguard_core::audit::SealInfo>,
    }
    let parsed: Result<SealOnly, _> = serde_json::from_slice(&tail[line_start..line_end]);
    Ok(parsed.ok().and_then(|r| r.seal).map(|s| s.epoch))
}

/// `write_all` through `ops`: a short write continues with the rest; an
/// error leaves whatever was written (a torn tail that repair can cut).
fn write_all(ops: &mut dyn FileOps, file: &File, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match ops.write(file, buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = buf.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An append failure: `Clean` wrote nothing; `Poison` may have written part.
enum Failure {
    Clean(AuditError),
    Poison(AuditError),
}

impl FileSink {
    /// Runs `f` with this process's writer holding the file's exclusive
    /// lock, on the file that is at the path now: a log that was rotated or
    /// deleted since the last append is reopened, so no record goes to an
    /// unlinked file.
    fn with_locked_writer<T>(
        &self,
        f: impl FnOnce(&mut Writer, &mut dyn FileOps) -> Result<T, Failure>,
    ) -> Result<T, AuditError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cause) = &state.poisoned {
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
                cause: cause.clone(),
            });
        }
        let State {
            writer,
            poisoned,
            ops,
        } = &mut *state;
        let mut reopened = 0;
        let writer = loop {
            let current = match writer.take() {
                Some(open) => open,
                None => self.open()?,
            };
            let open = writer.insert(current);
            open.file.lock().map_err(|e| self.io("lock (flock)", e))?;
            if let Some(len) = self.current_len(open) {
                open.locked_len = Some(len);
                break open;
            }
            let _ = open.file.unlock();
            *writer = None;
            reopened += 1;
            if reopened > 3 {
                return Err(self.io(
                    "reopen",
                    std::io::Error::other("the log keeps being replaced while it is opened"),
                ));
            }
        };
        let result = f(writer, ops.as_mut());
        // A length read under this lock means nothing once it is released.
        writer.locked_len = None;
        // Unlocking cannot lose data; closing the descriptor would unlock too.
        let _ = writer.file.unlock();
        match result {
            Ok(value) => Ok(value),
            Err(Failure::Clean(e)) => Err(e),
            Err(Failure::Poison(e)) => {
                tracing::error!(target: "prodguard::audit", error = %e, "audit writer poisoned");
                *poisoned = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The intent record that spent `token_id`, searching the log's files
    /// newest first and stopping at a file that began before the token was
    /// issued (nothing older can hold it). Called under the log's lock.
    fn find_spent(
        &self,
        token_id: &str,
        issued: Timestamp,
    ) -> std::io::Result<Option<(u64, PathBuf)>> {
        let needle = format!("\"token_id\":\"{token_id}\"");
        let mut files = rotated_files(&self.path)?;
        files.push(self.path.clone());
        for file in files.iter().rev() {
            let text = match crate::small_file::open_regular_read(file).and_then(|mut f| {
                let mut text = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut text).map(|_| text)
            }) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut began_before = false;
            for (index, line) in text.split(|&b| b == b'\n').enumerate() {
                if index == 0 {
                    began_before = serde_json::from_slice::<Record>(line)
                        .ok()
                        .and_then(|r| Timestamp::parse_rfc3339(&r.ts))
                        .is_some_and(|ts| ts < issued.plus_seconds(-SPENT_MARGIN_SECONDS));
                }
                let has = line.windows(needle.len()).any(|w| w == needle.as_bytes());
                const INTENT: &[u8] = b"\"kind\":\"intent\"";
                if has && line.windows(INTENT.len()).any(|w| w == INTENT) {
                    let seq = serde_json::from_slice::<Record>(line)
                        .map(|r| r.seq)
                        .unwrap_or(0);
                    return Ok(Some((seq, file.clone())));
                }
            }
            if began_before {
                break;
            }
        }
        Ok(None)
    }

    /// The length of the writer's file if it is still the file at the log's
    /// path (then the path's `statx` describes that very inode).
    fn current_len(&self, writer: &Writer) -> Option<u64> {
        match (writer.identity, std::fs::metadata(&self.path)) {
            (Some(open), Ok(named)) if open == identity(&named) => Some(named.len()),
            (None, Ok(named)) => match writer.file.metadata() {
                Ok(open) if identity(&open) == identity(&named) => Some(open.len()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The file's length, with the chain's head re-read if another writer appended.
    fn refresh_head(&self, writer: &mut Writer) -> Result<u64, AuditError> {
        let len = match writer.locked_len.take() {
            Some(len) => len,
            None => writer
                .file
                .metadata()
                .map_err(|e| self.io("stat", e))?
                .len(),
        };
        if writer.known_len != len {
            writer.head = self.read_head(&writer.file, len)?;
            writer.known_len = len;
        }
        Ok(len)
    }
}

impl AuditSink for FileSink {
    fn append(&self, event: &AuditEvent) -> Result<AppendReceipt, AuditError> {
        self.note_abandoned();
        if event.kind == EventKind::Intent
            && event.pid_ns.is_none()
            && let Some(pid_ns) = abandoned::own_pid_ns()
        {
            // What a later run needs to judge this attempt abandoned.
            let mut event = event.clone();
            event.pid_ns = Some(pid_ns);
            return self.append_grouped(&event);
        }
        self.append_grouped(event)
    }

    fn append_spending(
        &self,
        event: &AuditEvent,
        token_id: &str,
        issued: Timestamp,
    ) -> Result<AppendReceipt, SpendError> {
        self.note_abandoned();
        let mut spent = None;
        let result = self.with_locked_writer(|writer, ops| {
            self.refresh_head(writer).map_err(Failure::Clean)?;
            spent = self
                .find_spent(token_id, issued)
                .map_err(|e| Failure::Clean(self.io("search for the approval's nonce", e)))?;
            if spent.is_some() {
                return Ok(None);
            }
            self.append_batch_locked(writer, ops, std::slice::from_ref(event), false)
                .map(|(receipts, _)| receipts.into_iter().next())
        })?;
        if let Some((seq, file)) = spent {
            return Err(SpendError::Spent { seq, file });
        }
        result.ok_or_else(|| {
            SpendError::Audit(self.io("append", std::io::Error::other("no receipt")))
        })
    }

    fn check(&self) -> Result<(), AuditError> {
        self.with_locked_writer(|writer, _| {
            self.refresh_head(writer).map_err(Failure::Clean)?;
            // A seal falls due on some append, maybe this one: a key that
            // cannot make it refuses now, before anyone is asked anything.
            if let Some(config) = &self.seal {
                let log_id = writer.head.as_ref().map(|h| h.log_id.as_str());
                usable_seal_key(config, log_id).map_err(Failure::Clean)?;
            }
            Ok(())
        })
    }
}

/// A file's device and inode.
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// The last complete line of the file (without its newline); `None` when
/// the file does not end with a newline (a torn tail).
fn last_line(file: &File, len: u64) -> std::io::Result<Option<Vec<u8>>> {
    const LIMIT: u64 = 1 << 20;
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] != b'\n' {
        return Ok(None);
    }
    let end = len - 1;
    let mut chunk = 4096u64;
    loop {
        let start = end.saturating_sub(chunk);
        let mut buf = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
        file.read_exact_at(&mut buf, start)?;
        if let Some(pos) = buf.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(buf.split_off(pos + 1)));
        }
        if start == 0 {
            return Ok(Some(buf));
        }
        if chunk >= LIMIT {
            return Err(std::io::Error::other(
                "the last record is longer than 1 MiB",
            ));
        }
        chunk *= 4;
    }
}
