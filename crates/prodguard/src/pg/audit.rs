//! The audit trail in PostgreSQL: one hash chain shared by every host.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use postgres::types::Type;
use postgres::{Client, IsolationLevel, SimpleQueryMessage, SimpleQueryRow};
use prodguard_core::Timestamp;
use prodguard_core::audit::{
    AuditEvent, ChainVerifier, Envelope, GENESIS_PREV, Record, encode_record,
};
use prodguard_core::policy::Durability;

use super::{PgError, PgServer, describe};
use crate::audit::{
    Anchor, AppendReceipt, AuditError, AuditSink, Damage, SpendError, VerifyReport,
};
use crate::facts;

/// The advisory lock (transaction-scoped) that serialises appends to
/// `prodguard_audit` across every host.
pub(crate) const AUDIT_LOCK_KEY: i64 = 0x7067_6400_0000_0002;

/// How long an append waits for the audit lock before giving up (another
/// host's append holds it for milliseconds; minutes mean something is stuck).
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// The audit sink of fleet mode: records go to the table `prodguard_audit`
/// of one PostgreSQL server, chained exactly as in a file.
///
/// Each append is one transaction: take `pg_advisory_xact_lock` (so appends
/// from every host are serialised), read and check the last row, build the
/// record chained to it with [`encode_record`], insert it, commit. The
/// commit does not wait for its WAL flush, so the lock passes to the next
/// appender at once; then a second transaction, writing only a logical
/// decoding message (prefix `prodguard`), commits with `synchronous_commit
/// = on`: it waits until the WAL is flushed past it, which
/// makes this record durable (WAL is flushed in order, so a crash loses
/// only a suffix of the chain, never a record before a kept one), and the
/// flushes of many appenders are shared (PostgreSQL's group commit). The
/// receipt is returned only after that flush. A flush that fails after
/// the commit is tried once more on a new connection (once it sees the
/// record committed); if that fails too, the error says that the record is
/// committed as seq N but its durability is unconfirmed.
/// The first record of an empty table starts a new log (a fresh `log_id`,
/// `prev` = [`GENESIS_PREV`]).
///
/// An intent that spends an approval token inserts the token's nonce into
/// `prodguard_spent` in the same transaction; a nonce already there means the
/// token was used (on any host) and nothing is appended.
///
/// The server is connected on first use (creating the tables if needed) and
/// reconnected after a broken connection; an append that fails is never
/// retried (only its flush, as above), and every failure is an
/// [`AuditError`], so a guard that requires audit refuses (exit 123).
/// Messages name the server, never its password.
///
/// ```no_run
/// use prodguard::audit::AuditSink;
/// use prodguard::pg::PgAuditSink;
/// use prodguard_core::audit::AuditEvent;
/// let sink = PgAuditSink::new("postgresql://prodguard@db.internal/fleet")?;
/// let receipt = sink.append(&AuditEvent::note("maintenance window opened"))?;
/// println!("committed as seq {}", receipt.seq);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PgAuditSink {
    server: PgServer,
    host: String,
    durability: Durability,
    lock_timeout: Duration,
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PgAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAuditSink")
            .field("server", &self.server.name())
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

/// A transaction that writes WAL (a logical decoding message, which any
/// role may emit) committed synchronously: it waits until the WAL is
/// flushed up to its commit record, past every record committed before.
const FLUSH: &str = "BEGIN; SELECT set_config('synchronous_commit', 'on', true), \
     pg_logical_emit_message(true, 'prodguard', 'flush'); COMMIT;";

/// A failure inside an append's transaction.
enum Fail {
    Pg(&'static str, postgres::Error),
    Corrupt(String),
    /// The record is committed as `seq`, but no flush past it succeeded.
    Unflushed {
        seq: u64,
        why: String,
    },
}

/// What an append did.
enum Appended {
    Done(AppendReceipt),
    AlreadySpent { seq: u64, by: String },
}

/// The chain's head as the last row says.
struct Head {
    seq: u64,
    hash: String,
    log_id: String,
}

impl PgAuditSink {
    /// A sink for the server at `url`; nothing is connected until the first
    /// append or check.
    pub fn new(url: &str) -> Result<Self, PgError> {
        PgServer::parse(url).map(Self::for_server)
    }

    /// A sink for `server`.
    pub fn for_server(server: PgServer) -> Self {
        PgAuditSink {
            server,
            host: facts::hostname().unwrap_or_else(|| "unknown".into()),
            durability: Durability::Fdatasync,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            client: Mutex::new(None),
        }
    }

    /// A sink with the policy's `[audit] durability`: `fdatasync` commits
    /// with `synchronous_commit = on` (the default), `none` (tests only)
    /// with it off.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long an append waits for another host's append (default 30 s).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The server, as messages name it.
    pub fn server(&self) -> &PgServer {
        &self.server
    }

    fn unavailable(&self, op: &'static str, detail: String) -> AuditError {
        unavailable(&self.server, op, detail)
    }

    fn pg_error(&self, e: PgError) -> AuditError {
        pg_to_audit(&self.server, e, "[audit] sink")
    }

    fn fail(&self, fail: Fail) -> AuditError {
        match fail {
            Fail::Pg(op, source) if source.is_closed() => self.unavailable(
                op,
                format!(
                    "{}; the connection to the server was lost, so the record may not have been written",
                    describe(&source)
                ),
            ),
            Fail::Pg(op, source) => self.unavailable(op, describe(&source)),
            Fail::Unflushed { seq, why } => self.unavailable(
                "flush the record",
                format!(
                    "the record is committed as seq {seq}, but its durability is unconfirmed \
                     ({why}): a crash of the server now could still lose it; check the server, \
                     then `prodguard audit verify --postgres {}` shows whether seq {seq} survived",
                    self.server.name()
                ),
            ),
            Fail::Corrupt(detail) => AuditError::Corrupt {
                path: PathBuf::from(format!("{} (table prodguard_audit)", self.server.name())),
                detail,
            },
        }
    }

    /// Runs `f` on this sink's connection, connecting (and creating the
    /// tables) first if there is none; a connection that broke is dropped,
    /// so the next call reconnects.
    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, Fail>,
    ) -> Result<T, AuditError> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(Client::is_closed) {
            *slot = None;
        }
        let client = match &mut *slot {
            Some(client) => client,
            None => {
                let client = self
                    .server
                    .connect_initialized()
                    .map_err(|e| self.pg_error(e))?;
                slot.insert(client)
            }
        };
        let result = f(client);
        // After a failure the connection's state is unknown (a transaction
        // still open, holding the audit lock, if its rollback failed): the
        // next call starts on a new one.
        if result.is_err() {
            *slot = None;
        }
        result.map_err(|e| self.fail(e))
    }

    /// Appends `event` in one transaction, in three round trips: begin,
    /// lock and read the head; insert (and spend the approval); commit and
    /// flush. On a failure the transaction is rolled back.
    fn append_tx(
        &self,
        client: &mut Client,
        event: &AuditEvent,
        spend: Option<(&str, Timestamp)>,
    ) -> Result<Appended, Fail> {
        let result = self.append_in_tx(client, event, spend);
        if !matches!(result, Ok(Appended::Done(_))) && !client.is_closed() {
            // Nothing of it may stay open on this connection (a failure, or
            // a spent approval: nothing written). A rollback that fails
            // leaves a broken connection, which is dropped anyway.
            let _ = client.batch_execute("ROLLBACK");
        }
        result
    }

    fn append_in_tx(
        &self,
        client: &mut Client,
        event: &AuditEvent,
        spend: Option<(&str, Timestamp)>,
    ) -> Result<Appended, Fail> {
        let pg = |op| move |e| Fail::Pg(op, e);
        // The audit lock is held across two client round trips: a client
        // that stalls inside it (paused, cut off) is ended by the server
        // after the lock timeout, so other hosts' appends go on.
        // Read committed whatever the server's default: the head is read
        // with a snapshot taken after the lock is granted. The commit does
        // not wait for its flush, so the lock passes on at once; the flush
        // comes after (see the type's docs).
        let timeout_ms = self.lock_timeout.as_millis().clamp(1, i32::MAX as u128);
        let head = client
            .simple_query(&format!(
                "START TRANSACTION ISOLATION LEVEL READ COMMITTED; \
                 SELECT set_config('lock_timeout', '{timeout_ms}', true), \
                     set_config('idle_in_transaction_session_timeout', '{timeout_ms}', true), \
                     set_config('synchronous_commit', 'off', true), \
                     pg_advisory_xact_lock({AUDIT_LOCK_KEY}); \
                 SELECT seq, hash, log_id, record FROM prodguard_audit ORDER BY id DESC LIMIT 1"
            ))
            .map_err(pg("take the audit lock and read the last record"))?;
        let head = match last_row(&head) {
            Some(row) => {
                let text = |i: usize| row.get(i).unwrap_or_default().to_owned();
                let seq = text(0).parse().map_err(|_| {
                    Fail::Corrupt(format!("the last row's seq `{}` is not a number", text(0)))
                })?;
                Some(check_head(seq, text(1), text(2), text(3))?)
            }
            None => None,
        };
        let (seq, prev, log_id) = match head {
            Some(head) => (head.seq, head.hash, head.log_id),
            None => (0, GENESIS_PREV.to_owned(), facts::random_id()),
        };
        let seq = seq
            .checked_add(1)
            .filter(|&s| i64::try_from(s).is_ok())
            .ok_or_else(|| Fail::Corrupt("seq is at its maximum".into()))?;
        let seq_db = i64::try_from(seq).map_err(|e| Fail::Corrupt(e.to_string()))?;
        if let Some((token_id, issued)) = spend {
            let issued_secs = issued.unix_micros() as f64 / 1e6;
            let inserted = client
                .execute_typed(
                    "INSERT INTO prodguard_spent (token_id, log_id, seq, host, issued) \
                     VALUES ($1, $2, $3, $4, to_timestamp($5)) ON CONFLICT (token_id) DO NOTHING",
                    &[
                        (&token_id, Type::TEXT),
                        (&log_id, Type::TEXT),
                        (&seq_db, Type::INT8),
                        (&self.host, Type::TEXT),
                        (&issued_secs, Type::FLOAT8),
                    ],
                )
                .map_err(pg("record the approval as spent"))?;
            if inserted == 0 {
                let row = client
                    .query_typed_one(
                        "SELECT seq, coalesce(host, ''), \
                         to_char(spent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                         FROM prodguard_spent WHERE token_id = $1",
                        &[(&token_id, Type::TEXT)],
                    )
                    .map_err(pg("read the spent approval"))?;
                let seq: Option<i64> = row.try_get(0).map_err(pg("read the spent approval"))?;
                let host: String = row.try_get(1).map_err(pg("read the spent approval"))?;
                let at: String = row.try_get(2).map_err(pg("read the spent approval"))?;
                // Nothing was written: the caller rolls the transaction back.
                return Ok(Appended::AlreadySpent {
                    seq: seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    by: format!("host {host} at {at}"),
                });
            }
        }
        let envelope = Envelope {
            log_id: log_id.clone(),
            seq,
            ts: facts::now(),
            host: self.host.clone(),
            pid: std::process::id(),
        };
        let (line, hash) =
            encode_record(&envelope, event, &prev).map_err(|e| Fail::Corrupt(e.to_string()))?;
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        let record = std::str::from_utf8(line).map_err(|e| Fail::Corrupt(e.to_string()))?;
        client
            .execute_typed(
                "INSERT INTO prodguard_audit (log_id, seq, hash, record) VALUES ($1, $2, $3, $4)",
                &[
                    (&log_id, Type::TEXT),
                    (&seq_db, Type::INT8),
                    (&hash, Type::TEXT),
                    (&record, Type::TEXT),
                ],
            )
            .map_err(pg("insert the record"))?;
        if self.durability == Durability::None {
            client
                .batch_execute("COMMIT")
                .map_err(pg("commit the record"))?;
        } else if let Err(e) = client.batch_execute(&format!("COMMIT; {FLUSH}")) {
            self.flush_again(client, (&log_id, seq, &hash), e)?;
        }
        tracing::info!(target: "prodguard::audit", %record, server = %self.server, "audit record appended");
        Ok(Appended::Done(AppendReceipt { seq, hash }))
    }

    /// After the commit and flush of record (`log_id`, `seq`, `hash`) failed
    /// with `failed`: if the commit went through (the record is in the
    /// table, as a new connection sees it), flushes once more on that new
    /// connection, which replaces `client` (the old one's state is
    /// unknown). `Err` is the first failure when the record is not there
    /// (or cannot be looked for), or [`Fail::Unflushed`] when it is there
    /// but the flush failed again.
    fn flush_again(
        &self,
        client: &mut Client,
        (log_id, seq, hash): (&str, u64, &str),
        failed: postgres::Error,
    ) -> Result<(), Fail> {
        let seq_db = i64::try_from(seq).unwrap_or(i64::MAX);
        let mut fresh = match self.server.connect() {
            Ok(fresh) => fresh,
            Err(_) => return Err(Fail::Pg("commit and flush the record", failed)),
        };
        let committed = fresh.query_typed_opt(
            "SELECT 1 FROM prodguard_audit WHERE log_id = $1 AND seq = $2 AND hash = $3",
            &[
                (&log_id, Type::TEXT),
                (&seq_db, Type::INT8),
                (&hash, Type::TEXT),
            ],
        );
        if !matches!(committed, Ok(Some(_))) {
            return Err(Fail::Pg("commit and flush the record", failed));
        }
        // Seen committed, so its commit record is in the WAL before this
        // flush's.
        let flushed = fresh.batch_execute(FLUSH);
        *client = fresh;
        match flushed {
            Ok(()) => {
                tracing::warn!(
                    target: "prodguard::audit", seq, server = %self.server,
                    error = %describe(&failed),
                    "flushing the audit record failed; it was flushed on a new connection"
                );
                Ok(())
            }
            Err(again) => Err(Fail::Unflushed {
                seq,
                why: format!(
                    "flushing failed: {}; again on a new connection: {}",
                    describe(&failed),
                    describe(&again)
                ),
            }),
        }
    }
}

/// The first row the last statement of a simple query returned, if any.
fn last_row(messages: &[SimpleQueryMessage]) -> Option<&SimpleQueryRow> {
    // Each statement's answer ends with its CommandComplete: look after the
    // one before the last.
    let statement = messages
        .split(|m| matches!(m, SimpleQueryMessage::CommandComplete(_)))
        .rev()
        .find(|answer| !answer.is_empty())?;
    statement.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    })
}

/// An [`AuditError`] naming `server`: any of them makes a guard that
/// requires audit refuse (exit 123).
pub(super) fn unavailable(server: &PgServer, op: &'static str, detail: String) -> AuditError {
    AuditError::Io {
        path: PathBuf::from(server.name()),
        op,
        source: std::io::Error::other(detail),
    }
}

/// `e` as an [`AuditError`]; `key` names the policy key that gave the URL.
pub(super) fn pg_to_audit(server: &PgServer, e: PgError, key: &str) -> AuditError {
    if let Some(tls) = e.tls() {
        return unavailable(server, "connect", format!("{tls} ({key})"));
    }
    match e {
        PgError::Connect { source, .. } => unavailable(
            server,
            "connect",
            format!(
                "{}; check that the PostgreSQL server is running and reachable from this \
                 host, and the URL ({key})",
                describe(&source)
            ),
        ),
        PgError::Timeout { within, .. } => unavailable(
            server,
            "connect",
            format!("{} ({key})", super::unanswered(within)),
        ),
        PgError::NoThread { source, .. } => unavailable(
            server,
            "connect",
            format!(
                "cannot start a thread to connect on ({source}); the process is out of threads or memory"
            ),
        ),
        PgError::Query { op, source, .. } => unavailable(server, op, describe(&source)),
        PgError::Schema { source, .. } => {
            unavailable(server, "set up the prodguard tables", source.to_string())
        }
        PgError::BadUrl { detail } => unavailable(server, "parse the URL", detail),
    }
}

/// Checks the last row: its record must hash correctly, and its columns
/// must agree with it; the chain continues from the record's own hash.
fn check_head(seq: i64, hash: String, log_id: String, record: String) -> Result<Head, Fail> {
    let corrupt = |detail: String| {
        Fail::Corrupt(format!(
            "the last row (seq {seq}) does not verify: {detail}; run `prodguard audit verify --postgres URL` to find the damage"
        ))
    };
    let parsed: Record = serde_json::from_str(&record).map_err(|e| corrupt(e.to_string()))?;
    let mut verifier = ChainVerifier::resume(parsed.prev.clone(), parsed.seq, None);
    let link = verifier
        .push(record.as_bytes())
        .map_err(|e| corrupt(e.to_string()))?;
    if i64::try_from(link.seq).ok() != Some(seq) || link.hash != hash || link.log_id != log_id {
        return Err(corrupt(
            "its seq, hash or log_id column differs from its record".into(),
        ));
    }
    Ok(Head {
        seq: link.seq,
        hash: link.hash,
        log_id: link.log_id,
    })
}

impl AuditSink for PgAuditSink {
    fn append(&self, event: &AuditEvent) -> Result<AppendReceipt, AuditError> {
        match self.with_client(|client| self.append_tx(client, event, None))? {
            Appended::Done(receipt) => Ok(receipt),
            // Only spending appends can find a token spent.
            Appended::AlreadySpent { .. } => Err(self.unavailable(
                "append",
                "an append without an approval found one spent".into(),
            )),
        }
    }

    fn append_spending(
        &self,
        event: &AuditEvent,
        token_id: &str,
        issued: Timestamp,
    ) -> Result<AppendReceipt, SpendError> {
        match self.with_client(|client| self.append_tx(client, event, Some((token_id, issued))))? {
            Appended::Done(receipt) => Ok(receipt),
            Appended::AlreadySpent { seq, by } => Err(SpendError::Spent {
                seq,
                file: PathBuf::from(format!("{} ({by})", self.server.name())),
            }),
        }
    }

    fn check(&self) -> Result<(), AuditError> {
        self.with_client(|client| {
            let row = client
                .query_typed_opt(
                    "SELECT seq, hash, log_id, record FROM prodguard_audit ORDER BY id DESC LIMIT 1",
                    &[],
                )
                .map_err(|e| Fail::Pg("read the last record", e))?;
            if let Some(row) = row {
                let get = |e| Fail::Pg("read the last record", e);
                check_head(
                    row.try_get(0).map_err(get)?,
                    row.try_get(1).map_err(get)?,
                    row.try_get(2).map_err(get)?,
                    row.try_get(3).map_err(get)?,
                )?;
            }
            Ok(())
        })
    }
}

/// Verifies the whole audit trail in `prodguard_audit` of `server` (rows in
/// `id` order) with the same chain verifier as a file: an edited, deleted,
/// reordered or spliced row is damage; so is a row whose `seq`, `hash` or
/// `log_id` column disagrees with its record. Bytes count each record plus a
/// newline, as in a file, so [`Anchor`]s work the same way.
///
/// The report's [`VerifyReport::exit_code`] is `prodguard audit verify`'s:
/// 0 intact, 1 tampered, 3 the anchor not reached (a table has no torn tail).
pub fn verify(server: &PgServer, anchor: Option<&Anchor>) -> Result<VerifyReport, PgError> {
    let mut client = server.connect()?;
    verify_client(&mut client, server.name(), anchor)
        .map_err(|e| server.query_error("read the audit trail", e))
}

/// [`verify`] on an open connection; `name` names the server in the report.
pub fn verify_client(
    client: &mut Client,
    name: &str,
    anchor: Option<&Anchor>,
) -> Result<VerifyReport, postgres::Error> {
    let mut report = VerifyReport::start(anchor);
    let mut verifier = ChainVerifier::new();
    // One consistent snapshot, read in batches.
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let portal = tx.bind(
        "SELECT id, seq, hash, log_id, record FROM prodguard_audit ORDER BY id",
        &[],
    )?;
    let mut ordinal = 0u64;
    let mut offset = 0u64;
    'rows: loop {
        let rows = tx.query_portal(&portal, 1000)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let id: i64 = row.try_get(0)?;
            let seq: i64 = row.try_get(1)?;
            let hash: String = row.try_get(2)?;
            let log_id: String = row.try_get(3)?;
            let record: String = row.try_get(4)?;
            ordinal += 1;
            let start = offset;
            offset += record.len() as u64 + 1;
            let expected_seq = verifier.next_seq();
            let checked = verifier
                .push(record.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|link| {
                    if i64::try_from(link.seq).ok() != Some(seq)
                        || link.hash != hash
                        || link.log_id != log_id
                    {
                        Err(format!(
                            "the row's columns (seq {seq}, hash {hash}, log_id {log_id}) differ from its record: the row was edited"
                        ))
                    } else {
                        Ok(link)
                    }
                });
            match checked {
                Ok(link) => report.accept(
                    (link.seq, &link.log_id, verifier.head_hash()),
                    offset,
                    offset,
                    anchor,
                ),
                Err(problem) => {
                    // After the first damage nothing downstream can verify.
                    report.damage = Some(Damage {
                        file: PathBuf::from(format!("{name} prodguard_audit (row id {id})")),
                        line: ordinal,
                        offset: start,
                        expected_seq,
                        problem,
                    });
                    break 'rows;
                }
            }
        }
    }
    drop(tx);
    report.finish(&verifier);
    Ok(report)
}
