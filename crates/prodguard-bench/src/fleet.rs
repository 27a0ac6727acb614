//! Fleet mode on a real PostgreSQL server: the shared audit trail (one
//! writer against a raw INSERT, 64 writers against one), the fleet lock's
//! handover and verify of a large trail.
//!
//! Each row runs in a database of its own on the server
//! [`crate::prereq::postgres`] gives (`PRODGUARD_TEST_PG`, else a throwaway
//! cluster), created at its start and dropped at its end, with the server's
//! durability settings as they are: the detail of each row names them.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::config::Host;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use postgres::{Client, Config, Statement};
use prodguard::audit::{AppendReceipt, AuditError, AuditSink, VerifyReport};
use prodguard::pg::{FleetGuard, FleetLock, LockError, PgAuditSink, PgError, PgServer, describe};
use prodguard_core::audit::{AuditEvent, Envelope, GENESIS_PREV, encode_record};

use crate::audit::sample_event;
use crate::prereq::PgCluster;
use crate::timing::median;
use crate::{
    BenchError, Budget, Goal, Measurement, PG_APPEND_64_VS_1, PG_APPEND_VS_RAW_INSERT,
    PG_LOCK_HANDOVER_MS, PG_VERIFY_VS_RAW_READ, extra,
};

/// The plain table of the raw side: the same columns the sink fills, no
/// key, no index, no default.
const RAW_TABLE: &str = concat!(
    "CREATE TABLE raw_trail ",
    "(log_id text NOT NULL, seq bigint NOT NULL, hash text NOT NULL, record text NOT NULL)"
);
const RAW_INSERT: &str =
    "INSERT INTO raw_trail (log_id, seq, hash, record) VALUES ($1, $2, $3, $4)";

/// Ours: one durable append to the shared trail, as a guard makes it.
#[inline(never)]
pub fn ours_pg_append(sink: &PgAuditSink, event: &AuditEvent) -> Result<AppendReceipt, AuditError> {
    sink.append(event)
}

/// The baseline: the same row's values by a prepared INSERT in autocommit,
/// which is the INSERT and its COMMIT in one round trip.
#[inline(never)]
pub fn baseline_raw_insert(
    client: &mut Client,
    insert: &Statement,
    row: &ChainRow,
) -> Result<u64, postgres::Error> {
    client.execute(insert, &[&row.log_id, &row.seq, &row.hash, &row.record])
}

/// Ours: `prodguard audit verify --postgres URL` (connect, read every row
/// in one snapshot, re-hash and chain).
#[inline(never)]
pub fn ours_pg_verify(server: &PgServer) -> Result<VerifyReport, PgError> {
    prodguard::pg::verify(server, None)
}

/// The baseline: every row's `record`, in chain order, through one plain
/// query on a new connection; returns (rows, bytes).
#[inline(never)]
pub fn baseline_raw_read(server: &PgServer) -> Result<(u64, u64), BenchError> {
    let mut client = server.connect()?;
    let none: [&str; 0] = [];
    let mut rows = client
        .query_raw("SELECT record FROM prodguard_audit ORDER BY id", none)
        .map_err(pg("read the records"))?;
    let (mut count, mut bytes) = (0u64, 0u64);
    while let Some(row) = rows.next().map_err(pg("read the records"))? {
        let record: &str = row.try_get(0).map_err(pg("read the records"))?;
        count += 1;
        bytes += record.len() as u64;
    }
    Ok((count, bytes))
}

/// Not a side of the ratio: the rows read exactly as `pg::verify` reads
/// them (one read-only repeatable-read snapshot, a portal fetched 1,000
/// rows at a time, all five columns) with nothing verified, so the time
/// verify spends reading and the time it spends checking can be told apart.
pub fn read_as_verify_does(server: &PgServer) -> Result<u64, BenchError> {
    let mut client = server.connect()?;
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(pg("begin the snapshot"))?;
    let portal = tx
        .bind(
            "SELECT id, seq, hash, log_id, record FROM prodguard_audit ORDER BY id",
            &[],
        )
        .map_err(pg("bind the portal"))?;
    let mut count = 0u64;
    loop {
        let rows = tx
            .query_portal(&portal, 1000)
            .map_err(pg("read the portal"))?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let get = pg("read a row");
            // Decoded into owned values as verify does (kept, so the
            // allocations are not optimised away).
            let columns: (i64, i64, String, String, String) = (
                row.try_get(0).map_err(&get)?,
                row.try_get(1).map_err(&get)?,
                row.try_get(2).map_err(&get)?,
                row.try_get(3).map_err(&get)?,
                row.try_get(4).map_err(&get)?,
            );
            crate::timing::keep(columns);
            count += 1;
        }
    }
    Ok(count)
}

/// Ours: take the fleet lock of (`op`, `target`), waiting up to `wait`.
#[inline(never)]
pub fn ours_lock_acquire(
    locks: &FleetLock,
    op: &str,
    target: &str,
    wait: Option<Duration>,
) -> Result<FleetGuard, LockError> {
    locks.acquire(op, target, wait)
}

/// Ours: give the fleet lock back.
#[inline(never)]
pub fn ours_lock_release(guard: FleetGuard) -> Result<(), PgError> {
    guard.release()
}

/// The baseline of the handover: a session advisory lock on a plain connection.
#[inline(never)]
pub fn baseline_advisory(client: &mut Client, sql: &Statement, key: i64) -> Result<(), BenchError> {
    client
        .execute(sql, &[&key])
        .map(drop)
        .map_err(pg("take or give back an advisory lock"))
}

fn pg(what: &'static str) -> impl Fn(postgres::Error) -> BenchError {
    move |e| BenchError::new(format!("PostgreSQL: {what} failed: {}", describe(&e)))
}

impl From<PgError> for BenchError {
    fn from(e: PgError) -> BenchError {
        BenchError::new(e.to_string())
    }
}

fn audit_err(e: AuditError) -> BenchError {
    BenchError::new(format!("PgAuditSink append failed: {e}"))
}

/// `base` (a `postgresql://` URL or `key=value` pairs) with its database
/// replaced by `db`.
pub fn url_with_db(base: &str, db: &str) -> String {
    if let Some(scheme_end) = base.find("://") {
        let rest = base.get(scheme_end + 3..).unwrap_or_default();
        let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
        let authority = before_query.split('/').next().unwrap_or("");
        format!(
            "{}{authority}/{db}{query}",
            base.get(..scheme_end + 3).unwrap_or_default()
        )
    } else {
        format!("{base} dbname={db}")
    }
}

/// A `postgresql://` URL with its host and port replaced by `addr` (the
/// round-trip counter); `None` for the `key=value` form.
fn url_with_addr(url: &str, addr: SocketAddr) -> Option<String> {
    let scheme_end = url.find("://")?;
    let rest = url.get(scheme_end + 3..)?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
    Some(format!(
        "{}{}{addr}{tail}",
        url.get(..scheme_end + 3)?,
        userinfo.unwrap_or_default()
    ))
}

/// A database of one row's own on the cluster, dropped at the end.
pub struct BenchDb {
    cluster: Arc<PgCluster>,
    name: String,
    url: String,
    server: PgServer,
}

impl BenchDb {
    /// Creates `prodguard_bench_<row>_<pid>` (dropping a leftover of that
    /// name first).
    pub fn create(budget: &Budget, row: &str) -> Result<BenchDb, BenchError> {
        let cluster = crate::prereq::postgres(budget)?;
        let name = format!("prodguard_bench_{row}_{}", std::process::id());
        let mut admin = PgServer::parse(cluster.url())?.connect()?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .map_err(pg("drop a leftover database"))?;
        // template0: creating from template1 fails while anyone is connected to it.
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
            .map_err(pg("create the row's database"))?;
        let url = url_with_db(cluster.url(), &name);
        let server = PgServer::parse(&url)?;
        Ok(BenchDb {
            cluster,
            name,
            url,
            server,
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its server, as prodguard names it.
    pub fn server(&self) -> &PgServer {
        &self.server
    }

    /// A new plain connection (the same connection settings prodguard uses).
    pub fn connect(&self) -> Result<Client, BenchError> {
        Ok(self.server.connect()?)
    }

    /// Drops the database now, reporting a failure (dropping the value
    /// also drops it, silently).
    pub fn drop_now(mut self) -> Result<(), BenchError> {
        let result = self.drop_database();
        self.name.clear();
        result
    }

    fn drop_database(&self) -> Result<(), BenchError> {
        if self.name.is_empty() {
            return Ok(());
        }
        let mut admin = PgServer::parse(self.cluster.url())?.connect()?;
        // FORCE: a sink or lock connection still open must not keep it.
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .map_err(pg("drop the row's database"))
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        let _ = self.drop_database();
    }
}

/// The server's version and the settings an append's durability rests on,
/// for the row's detail.
pub fn durability(client: &mut Client) -> Result<String, BenchError> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('fsync'), \
             current_setting('synchronous_commit'), current_setting('wal_sync_method'), \
             current_setting('full_page_writes'), current_setting('commit_delay')",
            &[],
        )
        .map_err(pg("read the server's settings"))?;
    let get = |i: usize| {
        row.try_get::<_, String>(i)
            .map_err(pg("read the server's settings"))
    };
    Ok(format!(
        "PostgreSQL {}, fsync={} synchronous_commit={} wal_sync_method={} full_page_writes={} \
         commit_delay={}",
        get(0)?,
        get(1)?,
        get(2)?,
        get(3)?,
        get(4)?,
        get(5)?
    ))
}

/// The cluster's WAL flushes so far (`pg_stat_wal.wal_sync`, PostgreSQL
/// 14+); `None` where the server does not count them.
fn wal_syncs(client: &mut Client) -> Option<i64> {
    client
        .query_one("SELECT wal_sync FROM pg_stat_wal", &[])
        .and_then(|row| row.try_get(0))
        .ok()
}

/// Waits (up to 10 s) until at most `keep` backends other than `client`'s
/// own are connected to its database: a backend publishes its last
/// statistics (`pg_stat_wal`) as it exits.
fn wait_for_backends(client: &mut Client, keep: i64) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let others: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .map_err(pg("count the database's connections"))?;
        if others <= keep || Instant::now() > deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the client backends of one database were doing, on average, over
/// the samples a [`Sampler`] took.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    samples: u64,
    /// Waiting for a heavyweight lock (the audit trail's advisory lock).
    lock: u64,
    /// Writing or flushing WAL, or waiting for another backend's flush.
    wal: u64,
    /// Inside a transaction, waiting for the client's next statement.
    client_in_transaction: u64,
    /// Between transactions, waiting for the client.
    idle: u64,
    /// Running, no wait event.
    cpu: u64,
    /// Anything else.
    other: u64,
}

impl Tally {
    fn mean(&self, count: u64) -> f64 {
        count as f64 / self.samples.max(1) as f64
    }
}

/// Samples `pg_stat_activity` of a database every 2 ms on a connection of
/// its own until stopped (a diagnostic: the run it watches is not timed).
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Tally, BenchError>>,
}

impl Sampler {
    /// Starts sampling every client backend of `db` except `ignore_pid`'s.
    fn start(db: &BenchDb, ignore_pid: i32) -> Result<Sampler, BenchError> {
        let mut client = db.connect()?;
        let query = client
            .prepare(
                "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), \
                        count(*) FILTER (WHERE wait_event IN ('WALSync', 'WALWrite', \
                            'WALInitSync', 'WALInitWrite', 'WALInsert')), \
                        count(*) FILTER (WHERE wait_event_type = 'Client' \
                            AND state LIKE 'idle in transaction%'), \
                        count(*) FILTER (WHERE state = 'idle'), \
                        count(*) FILTER (WHERE state = 'active' AND wait_event IS NULL), \
                        count(*) \
                 FROM pg_stat_activity \
                 WHERE datname = current_database() AND backend_type = 'client backend' \
                   AND pid <> pg_backend_pid() AND pid <> $1",
            )
            .map_err(pg("prepare the pg_stat_activity sample"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut tally = Tally::default();
            while !stop2.load(Ordering::Relaxed) {
                let row = client
                    .query_one(&query, &[&ignore_pid])
                    .map_err(pg("sample pg_stat_activity"))?;
                let get = |i: usize| -> Result<u64, BenchError> {
                    let n: i64 = row.try_get(i).map_err(pg("sample pg_stat_activity"))?;
                    Ok(u64::try_from(n).unwrap_or(0))
                };
                let (lock, wal, in_tx, idle, cpu, all) =
                    (get(0)?, get(1)?, get(2)?, get(3)?, get(4)?, get(5)?);
                tally.samples += 1;
                tally.lock += lock;
                tally.wal += wal;
                tally.client_in_transaction += in_tx;
                tally.idle += idle;
                tally.cpu += cpu;
                tally.other += all.saturating_sub(lock + wal + in_tx + idle + cpu);
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(tally)
        });
        Ok(Sampler { stop, thread })
    }

    fn finish(self) -> Result<Tally, BenchError> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| BenchError::new("the sampler thread panicked"))?
    }
}

/// `writers` threads, each on its own connection, inserting `per_writer`
/// of `rows` into the plain table by the raw INSERT, from a common start:
/// the rate PostgreSQL itself reaches (its group commit shares a WAL flush
/// among concurrent commits). Returns inserts per second.
fn raw_insert_rate(
    db: &BenchDb,
    writers: usize,
    per_writer: usize,
    rows: &Arc<Vec<ChainRow>>,
) -> Result<f64, BenchError> {
    let barrier = Arc::new(Barrier::new(writers + 1));
    let mut threads = Vec::with_capacity(writers);
    for t in 0..writers {
        let mut client = db.connect()?;
        let insert = client
            .prepare(RAW_INSERT)
            .map_err(pg("prepare the INSERT"))?;
        let (rows, barrier) = (Arc::clone(rows), Arc::clone(&barrier));
        threads.push(std::thread::spawn(move || -> Result<(), BenchError> {
            barrier.wait();
            for i in 0..per_writer {
                let row = &rows[(t * per_writer + i) % rows.len()];
                baseline_raw_insert(&mut client, &insert, row).map_err(pg("INSERT"))?;
            }
            Ok(())
        }));
    }
    barrier.wait();
    let start = Instant::now();
    let mut failure = None;
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(BenchError::new("a writer thread panicked")),
        }
    }
    let took = start.elapsed();
    failure.map_or(Ok((writers * per_writer) as f64 / took.as_secs_f64()), Err)
}

/// One row of a trail as `prodguard_audit` holds it.
#[derive(Debug, Clone)]
pub struct ChainRow {
    /// The log's id.
    pub log_id: String,
    /// Its seq (from 1).
    pub seq: i64,
    /// Its hash.
    pub hash: String,
    /// The record's exact bytes, without the newline a file adds.
    pub record: String,
}

/// Encodes the trail `PgAuditSink` would write for `events` from an empty
/// table, with the same encoder and chaining, handing rows to `each` in
/// order: a valid chain that `pg::verify` accepts.
pub fn encode_chain(
    events: impl IntoIterator<Item = AuditEvent>,
    mut each: impl FnMut(ChainRow) -> Result<(), BenchError>,
) -> Result<(), BenchError> {
    let host = prodguard::facts::hostname().unwrap_or_else(|| "unknown".into());
    let log_id = prodguard::facts::random_id();
    let mut prev = GENESIS_PREV.to_owned();
    for (i, event) in events.into_iter().enumerate() {
        let envelope = Envelope {
            log_id: log_id.clone(),
            seq: i as u64 + 1,
            ts: prodguard::facts::now(),
            host: host.clone(),
            pid: std::process::id(),
        };
        let (mut line, hash) = encode_record(&envelope, &event, &prev)
            .map_err(|e| BenchError::new(format!("cannot encode a record: {e}")))?;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let record = String::from_utf8(line)
            .map_err(|e| BenchError::new(format!("a record is not UTF-8: {e}")))?;
        prev.clone_from(&hash);
        each(ChainRow {
            log_id: log_id.clone(),
            seq: i as i64 + 1,
            hash,
            record,
        })?;
    }
    Ok(())
}

/// A TCP proxy in front of the server that counts round trips: each time
/// the server speaks after the client did is one wait for the network.
/// Statements a client pipelines (sends before the answer to the last one)
/// are not counted apart, which is the point.
struct RoundTrips {
    addr: SocketAddr,
    turns: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    listener: Option<JoinHandle<()>>,
}

const CLIENT_SPOKE: u8 = 1;
const SERVER_SPOKE: u8 = 2;

impl RoundTrips {
    /// A proxy to the first (TCP) host of `url`; `None` when the URL names
    /// a Unix socket or cannot be resolved (the count is then left out).
    fn start(url: &str) -> Option<RoundTrips> {
        let config: Config = url.parse().ok()?;
        let Some(Host::Tcp(host)) = config.get_hosts().first() else {
            return None;
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let upstream = (host.as_str(), port).to_socket_addrs().ok()?.next()?;
        let listener = TcpListener::bind("127.0.0.1:0").ok()?;
        let addr = listener.local_addr().ok()?;
        let turns = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (turns2, stop2) = (Arc::clone(&turns), Arc::clone(&stop));
        let listener = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let last = Arc::new(AtomicU8::new(SERVER_SPOKE));
                let pipes = client
                    .try_clone()
                    .and_then(|c| Ok((c, server.try_clone()?)));
                let Ok((client2, server2)) = pipes else {
                    continue;
                };
                let (last2, turns3) = (Arc::clone(&last), Arc::clone(&turns2));
                std::thread::spawn(move || {
                    pump(client, server, |_| {
                        last.store(CLIENT_SPOKE, Ordering::SeqCst)
                    });
                });
                std::thread::spawn(move || {
                    pump(server2, client2, |_| {
                        if last2.swap(SERVER_SPOKE, Ordering::SeqCst) == CLIENT_SPOKE {
                            turns3.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                });
            }
        });
        Some(RoundTrips {
            addr,
            turns,
            stop,
            listener: Some(listener),
        })
    }

    /// Round trips since the last call.
    fn take(&self) -> u64 {
        self.turns.swap(0, Ordering::Relaxed)
    }
}

/// Copies `from` to `to` until either closes, calling `seen` before
/// forwarding each read (so the other direction's answer cannot be seen
/// before what it answers is noted).
fn pump(mut from: TcpStream, mut to: TcpStream, seen: impl Fn(usize)) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen(n);
                if to.write_all(buf.get(..n).unwrap_or_default()).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for RoundTrips {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}

fn check_trail(server: &PgServer, expected: u64) -> Result<VerifyReport, BenchError> {
    let report = ours_pg_verify(server)?;
    if !report.intact() || report.records != expected {
        return Err(BenchError::new(format!(
            "the trail in {server} does not verify as {expected} intact records: {report:?}"
        )));
    }
    Ok(report)
}

/// Durable appends per second to the shared trail from one writer
/// (`PgAuditSink`, `synchronous_commit = on`, as a guard appends an intent)
/// vs a prepared INSERT of the same row's values into a plain table in
/// autocommit, on the same server; the two alternate append by append.
/// Ratio = our rate / raw rate. Goal: ≥ 0.7.
pub fn pg_append_vs_raw_insert(budget: &Budget) -> Result<Measurement, BenchError> {
    let db = BenchDb::create(budget, PG_APPEND_VS_RAW_INSERT)?;
    let n = budget.pg_appends.max(1);
    let counted = 20;
    let mut rows = Vec::with_capacity(n + counted + 1);
    encode_chain((0..=n + counted).map(sample_event), |row| {
        rows.push(row);
        Ok(())
    })?;
    let events: Vec<AuditEvent> = (0..=n).map(sample_event).collect();
    let mut raw = db.connect()?;
    let settings = durability(&mut raw)?;
    raw.batch_execute(RAW_TABLE)
        .map_err(pg("create the plain table"))?;
    let insert = raw.prepare(RAW_INSERT).map_err(pg("prepare the INSERT"))?;
    let sink = PgAuditSink::new(db.url())?;
    // Warm-up: the sink connects and creates the prodguard tables.
    ours_pg_append(&sink, &events[0]).map_err(audit_err)?;
    baseline_raw_insert(&mut raw, &insert, &rows[0]).map_err(pg("INSERT"))?;
    let mut appended = 1u64;

    // Round trips, through a counting proxy, before the timed run (the
    // proxy's own hops would slow what it carries).
    let mut trips = Vec::new();
    if let Some(proxy) = RoundTrips::start(db.url())
        && let Some(url) = url_with_addr(db.url(), proxy.addr)
    {
        let counting_sink = PgAuditSink::new(&url)?;
        let mut counting_raw = PgServer::parse(&url)?.connect()?;
        let counting_insert = counting_raw
            .prepare(RAW_INSERT)
            .map_err(pg("prepare the INSERT"))?;
        ours_pg_append(&counting_sink, &events[0]).map_err(audit_err)?;
        appended += 1;
        proxy.take();
        for (row, event) in rows.iter().skip(1).take(counted).zip(events.iter().cycle()) {
            ours_pg_append(&counting_sink, event).map_err(audit_err)?;
            appended += 1;
            baseline_raw_insert(&mut counting_raw, &counting_insert, row).map_err(pg("INSERT"))?;
        }
        // Both sides ran one after the other: count the raw side alone too.
        let both = proxy.take() as f64 / counted as f64;
        for row in rows.iter().skip(1).take(counted) {
            baseline_raw_insert(&mut counting_raw, &counting_insert, row).map_err(pg("INSERT"))?;
        }
        let raw_only = proxy.take() as f64 / counted as f64;
        trips = vec![both - raw_only, raw_only];
    }
    // One round trip, timed beside each pair under the same load: on a busy
    // machine each is a wake-up of the server and of the client, and costs
    // far more than on an idle one.
    let select = raw.prepare("SELECT 1").map_err(pg("prepare SELECT 1"))?;
    let mut rtt_each = Vec::with_capacity(n);

    let mut ours_each = Vec::with_capacity(n);
    let mut raw_each = Vec::with_capacity(n);
    for i in 1..=n {
        let start = Instant::now();
        raw.query_one(&select, &[]).map_err(pg("SELECT 1"))?;
        rtt_each.push(start.elapsed());
        let mut run_ours = || -> Result<(), BenchError> {
            let start = Instant::now();
            ours_pg_append(&sink, &events[i]).map_err(audit_err)?;
            ours_each.push(start.elapsed());
            Ok(())
        };
        let mut run_raw = || -> Result<(), BenchError> {
            let start = Instant::now();
            baseline_raw_insert(&mut raw, &insert, &rows[i]).map_err(pg("INSERT"))?;
            raw_each.push(start.elapsed());
            Ok(())
        };
        crate::timing::alternately(i, &mut run_ours, &mut run_raw)?;
    }
    appended += n as u64;
    check_trail(db.server(), appended)?;
    let ms = |d: &[Duration]| {
        let mut v: Vec<f64> = d.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        median(&mut v)
    };
    let (ours_median, raw_median) = (ms(&ours_each), ms(&raw_each));
    let rtt_median = ms(&rtt_each);
    let rtt_mean = rtt_each.iter().sum::<Duration>().as_secs_f64() * 1e3 / n as f64;
    let total = n as f64;
    let ours_rate = total / ours_each.iter().sum::<Duration>().as_secs_f64();
    let raw_rate = total / raw_each.iter().sum::<Duration>().as_secs_f64();
    let record_bytes =
        rows.iter().map(|r| r.record.len()).sum::<usize>() as f64 / rows.len() as f64;
    let mut numbers = extra([
        ("appends_per_side", total),
        ("record_bytes", record_bytes),
        ("ours_ms_per_append", 1e3 / ours_rate),
        ("raw_ms_per_insert", 1e3 / raw_rate),
        ("ours_median_ms", ours_median),
        ("raw_median_ms", raw_median),
        ("round_trip_ms", rtt_mean),
        ("round_trip_median_ms", rtt_median),
    ]);
    if let [ours_trips, raw_trips] = trips[..] {
        numbers.insert("round_trips_per_append".into(), ours_trips);
        numbers.insert("raw_round_trips_per_insert".into(), raw_trips);
    }
    drop(sink);
    db.drop_now()?;
    Ok(Measurement::new(
        PG_APPEND_VS_RAW_INSERT,
        ours_rate,
        "appends/s",
        raw_rate,
        ours_rate / raw_rate,
        &Goal::at_least("ratio", 0.7),
        numbers,
        format!(
            "PgAuditSink::append of an intent record (synchronous_commit=on) vs a prepared \
             INSERT of the same row's values into a plain table (no key, no index) in \
             autocommit, 1 writer each, {n} appends each, alternating one by one; {settings}"
        ),
    ))
}

/// Runs `writers` threads, each appending `per_writer` events through its
/// own sink (own connection, already connected), from a common start;
/// returns the elapsed time.
#[inline(never)]
pub fn ours_many_writers(
    sinks: &[Arc<PgAuditSink>],
    events: &Arc<Vec<AuditEvent>>,
    per_writer: usize,
) -> Result<Duration, BenchError> {
    crate::audit::time_writers(sinks.to_vec(), events, per_writer)
}

/// `count` sinks on `url`, each connected (and the tables checked) before
/// any timing.
fn connected_sinks(url: &str, count: usize) -> Result<Vec<Arc<PgAuditSink>>, BenchError> {
    (0..count)
        .map(|_| {
            let sink = PgAuditSink::new(url)?;
            sink.check()
                .map_err(|e| BenchError::new(format!("PgAuditSink check failed: {e}")))?;
            Ok(Arc::new(sink))
        })
        .collect()
}

/// Durable appends per second to one trail from 64 writers (threads, each
/// with its own `PgAuditSink`, so its own connection, as 64 hosts would)
/// vs one writer appending as many records; alternating rounds, fresh
/// sinks each round (connected before the clock starts). Ratio = 64-writer
/// rate / 1-writer rate. Goal: ≥ 1 (contention must not collapse the chain).
pub fn pg_append_64_vs_1(budget: &Budget) -> Result<Measurement, BenchError> {
    const WRITERS: usize = 64;
    let db = BenchDb::create(budget, PG_APPEND_64_VS_1)?;
    let per_writer = budget.pg_concurrent_appends.max(1);
    let single = WRITERS * per_writer;
    let rounds = budget.pg_concurrent_rounds.max(1);
    let events = Arc::new((0..single).map(sample_event).collect::<Vec<_>>());
    let mut admin = db.connect()?;
    let settings = durability(&mut admin)?;
    // The tables, once, before any round.
    connected_sinks(db.url(), 1)?;

    let (mut one_time, mut many_time) = (Duration::ZERO, Duration::ZERO);
    let (mut one_syncs, mut many_syncs) = (Some(0i64), Some(0i64));
    // WAL flushes per run: a backend publishes its counts as it exits, so
    // each run's sinks are dropped and their backends waited for.
    let run = |writers: usize,
               admin: &mut Client,
               time: &mut Duration,
               syncs: &mut Option<i64>|
     -> Result<(), BenchError> {
        let sinks = connected_sinks(db.url(), writers)?;
        let before = wal_syncs(admin);
        *time += ours_many_writers(&sinks, &events, single / writers)?;
        drop(sinks);
        wait_for_backends(admin, 0)?;
        *syncs = match (*syncs, before, wal_syncs(admin)) {
            (Some(sum), Some(before), Some(after)) => Some(sum + after - before),
            _ => None,
        };
        Ok(())
    };
    for round in 0..rounds {
        if round % 2 == 0 {
            run(1, &mut admin, &mut one_time, &mut one_syncs)?;
            run(WRITERS, &mut admin, &mut many_time, &mut many_syncs)?;
        } else {
            run(WRITERS, &mut admin, &mut many_time, &mut many_syncs)?;
            run(1, &mut admin, &mut one_time, &mut one_syncs)?;
        }
    }
    let total = (single * rounds) as f64;
    check_trail(db.server(), 2 * single as u64 * rounds as u64)?;
    let one_rate = total / one_time.as_secs_f64();
    let many_rate = total / many_time.as_secs_f64();

    // Where the time goes, untimed: one more 64-writer run with
    // pg_stat_activity sampled (how many backends wait for the audit
    // lock, flush WAL, wait for their client inside the transaction, run),
    // then what the server reaches with the same rows and no lock: the raw
    // INSERT from 1 and from 64 connections.
    let admin_pid: i32 = admin
        .query_one("SELECT pg_backend_pid()", &[])
        .and_then(|r| r.try_get(0))
        .map_err(pg("read the backend pid"))?;
    let sinks = connected_sinks(db.url(), WRITERS)?;
    let sampler = Sampler::start(&db, admin_pid)?;
    ours_many_writers(&sinks, &events, per_writer)?;
    let tally = sampler.finish()?;
    drop(sinks);
    admin
        .batch_execute(RAW_TABLE)
        .map_err(pg("create the plain table"))?;
    let mut rows = Vec::with_capacity(single);
    encode_chain((0..single).map(sample_event), |row| {
        rows.push(row);
        Ok(())
    })?;
    let rows = Arc::new(rows);
    let raw_one = raw_insert_rate(&db, 1, single, &rows)?;
    let raw_many = raw_insert_rate(&db, WRITERS, per_writer, &rows)?;

    let mut numbers = extra([
        ("writers", WRITERS as f64),
        ("appends_per_side", total),
        ("ms_per_append_64_writers", 1e3 / many_rate),
        ("ms_per_append_1_writer", 1e3 / one_rate),
        // Each of 64 writers waits for the 63 others: its own append's latency.
        ("latency_ms_64_writers", WRITERS as f64 * 1e3 / many_rate),
        ("backends_waiting_for_audit_lock", tally.mean(tally.lock)),
        ("backends_in_wal_write_or_flush", tally.mean(tally.wal)),
        (
            "backends_waiting_for_client_in_transaction",
            tally.mean(tally.client_in_transaction),
        ),
        ("backends_idle_between_appends", tally.mean(tally.idle)),
        ("backends_on_cpu", tally.mean(tally.cpu)),
        ("backends_other", tally.mean(tally.other)),
        ("activity_samples", tally.samples as f64),
        ("raw_insert_rate_1_writer", raw_one),
        ("raw_insert_rate_64_writers", raw_many),
    ]);
    if let (Some(one), Some(many)) = (one_syncs, many_syncs) {
        numbers.insert("wal_flushes_per_append_1_writer".into(), one as f64 / total);
        numbers.insert(
            "wal_flushes_per_append_64_writers".into(),
            many as f64 / total,
        );
    }
    drop(admin);
    db.drop_now()?;
    Ok(Measurement::new(
        PG_APPEND_64_VS_1,
        many_rate,
        "appends/s",
        one_rate,
        many_rate / one_rate,
        &Goal::at_least("ratio", 1.0),
        numbers,
        format!(
            "64 threads, each with its own PgAuditSink (own connection), {per_writer} appends \
             each, vs 1 thread appending {single}, to one trail; {rounds} alternating rounds; \
             {settings}"
        ),
    ))
}

const LOCK_OP: &str = "db.migrate";
const LOCK_TARGET: &str = "postgresql://bench/orders";

/// One handover of the fleet lock: a waiter (started with a long wait) is
/// given `settle` to queue, then the holder releases. Returns (release
/// returned → acquire returned, release called → acquire returned) in ms.
fn ours_handover(locks: &FleetLock, settle: Duration) -> Result<(f64, f64), BenchError> {
    let holder = ours_lock_acquire(locks, LOCK_OP, LOCK_TARGET, None)
        .map_err(|e| BenchError::new(format!("the holder could not take the lock: {e}")))?;
    let waiter_locks = locks.clone();
    let waiter = std::thread::spawn(move || -> Result<(Instant, Instant), BenchError> {
        let started = Instant::now();
        let guard = ours_lock_acquire(
            &waiter_locks,
            LOCK_OP,
            LOCK_TARGET,
            Some(Duration::from_secs(60)),
        )
        .map_err(|e| BenchError::new(format!("the waiter did not get the lock: {e}")))?;
        let acquired = Instant::now();
        ours_lock_release(guard)?;
        Ok((started, acquired))
    });
    std::thread::sleep(settle);
    let releasing = Instant::now();
    ours_lock_release(holder)?;
    let released = Instant::now();
    let (started, acquired) = waiter
        .join()
        .map_err(|_| BenchError::new("the waiter thread panicked"))??;
    if acquired < releasing {
        return Err(BenchError::new(
            "the waiter got the fleet lock while its holder still held it",
        ));
    }
    if started + settle / 2 > releasing {
        return Err(BenchError::new("the waiter did not start in time"));
    }
    Ok((
        signed_ms(acquired, released),
        acquired.duration_since(releasing).as_secs_f64() * 1e3,
    ))
}

/// `later - earlier` in ms, negative when `later` came first.
fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(d) => d.as_secs_f64() * 1e3,
        None => -(earlier.duration_since(later).as_secs_f64() * 1e3),
    }
}

/// One handover of a plain session advisory lock between two open
/// connections, the waiter seen queued in `pg_locks` first. Returns
/// (unlock sent → lock returned, unlock returned → lock returned) in ms.
fn baseline_handover(
    db: &BenchDb,
    holder: &mut Client,
    waiter: Client,
    observer: &mut Client,
    key: i64,
) -> Result<(f64, f64, Client), BenchError> {
    let lock = holder
        .prepare("SELECT pg_advisory_lock($1)")
        .map_err(pg("prepare pg_advisory_lock"))?;
    let unlock = holder
        .prepare("SELECT pg_advisory_unlock($1)")
        .map_err(pg("prepare pg_advisory_unlock"))?;
    baseline_advisory(holder, &lock, key)?;
    let thread = std::thread::spawn(move || -> Result<(Instant, Client), BenchError> {
        let mut waiter = waiter;
        let lock = waiter
            .prepare("SELECT pg_advisory_lock($1)")
            .map_err(pg("prepare pg_advisory_lock"))?;
        let unlock = waiter
            .prepare("SELECT pg_advisory_unlock($1)")
            .map_err(pg("prepare pg_advisory_unlock"))?;
        baseline_advisory(&mut waiter, &lock, key)?;
        let acquired = Instant::now();
        baseline_advisory(&mut waiter, &unlock, key)?;
        Ok((acquired, waiter))
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let queued: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .and_then(|r| r.try_get(0))
            .map_err(pg("look for the queued waiter"))?;
        if queued > 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError::new(format!(
                "the advisory-lock waiter never queued in {}",
                db.server()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let unlocking = Instant::now();
    baseline_advisory(holder, &unlock, key)?;
    let unlocked = Instant::now();
    let (acquired, waiter) = thread
        .join()
        .map_err(|_| BenchError::new("the waiter thread panicked"))??;
    Ok((
        acquired.duration_since(unlocking).as_secs_f64() * 1e3,
        signed_ms(acquired, unlocked),
        waiter,
    ))
}

/// The fleet lock's handover: from the holder's `FleetGuard::release()`
/// returning to a waiter's `FleetLock::acquire` returning (the waiter
/// started `pg_handover_settle` before, with a 60 s wait), median over
/// `pg_handovers` handovers. Baseline: a plain session advisory lock
/// handed between two open connections, from `pg_advisory_unlock` being
/// sent to the waiter's `pg_advisory_lock` returning (measured from the
/// unlock's return it can come out negative: both answers race). Ratio =
/// ours from `release()` being called / the baseline. Goal: value ≤ 50 ms.
pub fn pg_lock_handover_ms(budget: &Budget) -> Result<Measurement, BenchError> {
    let db = BenchDb::create(budget, PG_LOCK_HANDOVER_MS)?;
    let handovers = budget.pg_handovers.max(1);
    let settle = budget.pg_handover_settle;
    let mut observer = db.connect()?;
    let settings = durability(&mut observer)?;
    db.server()
        .init_schema()
        .map_err(|e| BenchError::new(e.to_string()))?;
    let locks = FleetLock::new(db.url())?.holder("prodguard-bench");
    // Warm-up: one handover of each, untimed.
    ours_handover(&locks, settle)?;
    let key = prodguard::pg::lock_key("bench.raw", "orders");
    let mut holder = db.connect()?;
    let mut waiter = db.connect()?;
    (_, _, waiter) = baseline_handover(&db, &mut holder, waiter, &mut observer, key)?;

    // Round trips of one uncontended acquire (its new connection's start-up
    // included) and of one release, through the counting proxy, untimed.
    let mut trips = None;
    if let Some(proxy) = RoundTrips::start(db.url())
        && let Some(url) = url_with_addr(db.url(), proxy.addr)
    {
        let counting = FleetLock::new(&url)?.holder("prodguard-bench");
        proxy.take();
        let guard = ours_lock_acquire(&counting, LOCK_OP, LOCK_TARGET, None)
            .map_err(|e| BenchError::new(format!("the lock could not be taken: {e}")))?;
        let acquire = proxy.take();
        ours_lock_release(guard)?;
        trips = Some((acquire as f64, proxy.take() as f64));
    }

    // WAL flushes of the timed fleet-lock cycles (the raw advisory locks
    // write no WAL): each closed connection publishes its counts as its
    // backend exits, so wait for them (the raw holder and waiter stay).
    wait_for_backends(&mut observer, 2)?;
    let syncs_before = wal_syncs(&mut observer);

    let (mut ours, mut ours_from_call) = (Vec::new(), Vec::new());
    let (mut raw, mut raw_from_return) = (Vec::new(), Vec::new());
    for i in 0..handovers {
        let mut run_ours = || -> Result<(), BenchError> {
            let (from_return, from_call) = ours_handover(&locks, settle)?;
            ours.push(from_return);
            ours_from_call.push(from_call);
            Ok(())
        };
        if i % 2 == 0 {
            run_ours()?;
        }
        let (from_send, from_return, back) =
            baseline_handover(&db, &mut holder, waiter, &mut observer, key)?;
        waiter = back;
        raw.push(from_send);
        raw_from_return.push(from_return);
        if i % 2 == 1 {
            run_ours()?;
        }
    }
    wait_for_backends(&mut observer, 2)?;
    let syncs = match (syncs_before, wal_syncs(&mut observer)) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let max = ours.iter().copied().fold(f64::MIN, f64::max);
    let (value, from_call) = (median(&mut ours), median(&mut ours_from_call));
    let (base, base_from_return) = (median(&mut raw), median(&mut raw_from_return));
    drop((holder, waiter, observer));
    db.drop_now()?;
    let mut numbers = extra([
        ("handovers", handovers as f64),
        ("max_ms", max),
        ("from_release_call_ms", from_call),
        ("raw_from_unlock_return_ms", base_from_return),
        ("waiter_head_start_ms", settle.as_secs_f64() * 1e3),
    ]);
    if let Some((acquire, release)) = trips {
        numbers.insert("round_trips_acquire_uncontended".into(), acquire);
        numbers.insert("round_trips_release".into(), release);
    }
    if let Some(syncs) = syncs {
        // Each handover is two acquires and two releases (holder, waiter).
        numbers.insert(
            "wal_flushes_per_acquire_and_release".into(),
            syncs as f64 / (2 * handovers) as f64,
        );
    }
    Ok(Measurement::new(
        PG_LOCK_HANDOVER_MS,
        value,
        "ms",
        base,
        from_call / base,
        &Goal::at_most("value", 50.0),
        numbers,
        format!(
            "FleetGuard::release() returning → the waiting FleetLock::acquire (60 s wait, \
             started {} ms before) returning, median of {handovers}; baseline: \
             pg_advisory_unlock sent → the queued pg_advisory_lock returning on a second open \
             connection; ratio: ours from release() being called / baseline; {settings}",
            settle.as_millis()
        ),
    ))
}

/// Fills `prodguard_audit` with a valid chain of `rows` intent records,
/// fast: one thread encodes (the chain is sequential), this one streams the
/// rows in with one binary COPY. Returns the records' bytes.
pub fn fill_trail(db: &BenchDb, rows: u64) -> Result<u64, BenchError> {
    db.server().init_schema()?;
    let mut client = db.connect()?;
    let (send, receive) = mpsc::sync_channel::<Vec<ChainRow>>(8);
    let encoder = std::thread::spawn(move || -> Result<(), BenchError> {
        let mut batch = Vec::with_capacity(4096);
        encode_chain((0..rows as usize).map(sample_event), |row| {
            batch.push(row);
            if batch.len() == 4096 {
                send.send(std::mem::take(&mut batch))
                    .map_err(|_| BenchError::new("the COPY stopped early"))?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            send.send(batch)
                .map_err(|_| BenchError::new("the COPY stopped early"))?;
        }
        Ok(())
    });
    let mut bytes = 0u64;
    let copied = (|| -> Result<u64, BenchError> {
        let writer = client
            .copy_in("COPY prodguard_audit (log_id, seq, hash, record) FROM STDIN (FORMAT binary)")
            .map_err(pg("start the COPY"))?;
        let mut writer =
            BinaryCopyInWriter::new(writer, &[Type::TEXT, Type::INT8, Type::TEXT, Type::TEXT]);
        for batch in receive {
            for row in &batch {
                bytes += row.record.len() as u64;
                writer
                    .write(&[&row.log_id, &row.seq, &row.hash, &row.record])
                    .map_err(pg("COPY a row"))?;
            }
        }
        writer.finish().map_err(pg("finish the COPY"))
    })();
    encoder
        .join()
        .map_err(|_| BenchError::new("the encoder thread panicked"))??;
    let copied = copied?;
    if copied != rows {
        return Err(BenchError::new(format!(
            "the COPY wrote {copied} rows, not {rows}"
        )));
    }
    // Hint bits and statistics now, so the first timed read does not
    // write them (and both sides read the table as a settled trail is).
    client
        .batch_execute("VACUUM (ANALYZE) prodguard_audit")
        .map_err(pg("VACUUM the trail"))?;
    Ok(bytes)
}

/// `prodguard::pg::verify` over a trail of `pg_verify_rows` rows vs the
/// same rows' `record` column read (in `id` order) by one plain query,
/// each on a new connection, alternating in rounds, warm; rows/s. Ratio =
/// ours / baseline. Goal: ≥ 0.3.
pub fn pg_verify_vs_raw_read(budget: &Budget) -> Result<Measurement, BenchError> {
    let db = BenchDb::create(budget, PG_VERIFY_VS_RAW_READ)?;
    let rows = budget.pg_verify_rows.max(1);
    let settings = durability(&mut db.connect()?)?;
    let fill_started = Instant::now();
    let bytes = fill_trail(&db, rows)?;
    let fill_s = fill_started.elapsed().as_secs_f64();
    let table_bytes: i64 = db
        .connect()?
        .query_one("SELECT pg_total_relation_size('prodguard_audit')", &[])
        .and_then(|r| r.try_get(0))
        .map_err(pg("size the trail"))?;
    // Warm-up, untimed: verify must pass, and both read the table once.
    check_trail(db.server(), rows)?;
    baseline_raw_read(db.server())?;

    let rounds = budget.pg_verify_rounds.max(1);
    let (mut ours_time, mut base_time) = (Duration::ZERO, Duration::ZERO);
    let mut read_time = Duration::ZERO;
    for round in 0..rounds {
        let mut run_ours = || -> Result<(), BenchError> {
            let start = Instant::now();
            let report = ours_pg_verify(db.server())?;
            ours_time += start.elapsed();
            if !report.intact() || report.records != rows {
                return Err(BenchError::new(format!(
                    "verify did not pass {rows} records: {report:?}"
                )));
            }
            Ok(())
        };
        let mut run_base = || -> Result<(), BenchError> {
            let start = Instant::now();
            let (read, _) = baseline_raw_read(db.server())?;
            base_time += start.elapsed();
            if read != rows {
                return Err(BenchError::new(format!("the plain query read {read} rows")));
            }
            Ok(())
        };
        crate::timing::alternately(round, &mut run_ours, &mut run_base)?;
        let start = Instant::now();
        read_as_verify_does(db.server())?;
        read_time += start.elapsed();
    }
    let total = (rows * rounds as u64) as f64;
    let ours = total / ours_time.as_secs_f64();
    let base = total / base_time.as_secs_f64();
    let mb_per_row = (bytes as f64 / rows as f64) / 1e6;
    db.drop_now()?;
    Ok(Measurement::new(
        PG_VERIFY_VS_RAW_READ,
        ours,
        "rows/s",
        base,
        ours / base,
        &Goal::at_least("ratio", 0.3),
        extra([
            ("rows", rows as f64),
            ("record_bytes", bytes as f64 / rows as f64),
            ("table_mib", table_bytes as f64 / f64::from(1u32 << 20)),
            ("ours_ms", ours_time.as_secs_f64() * 1e3 / rounds as f64),
            ("raw_ms", base_time.as_secs_f64() * 1e3 / rounds as f64),
            (
                "read_as_verify_does_ms",
                read_time.as_secs_f64() * 1e3 / rounds as f64,
            ),
            ("ours_mb_per_s", ours * mb_per_row),
            ("raw_mb_per_s", base * mb_per_row),
            ("fill_s", fill_s),
        ]),
        format!(
            "prodguard::pg::verify over a trail of {rows} intent records ({:.0} MiB table) vs \
             SELECT record FROM prodguard_audit ORDER BY id on a new connection, streamed; \
             {rounds} alternating rounds, warm; {settings}",
            table_bytes as f64 / f64::from(1u32 << 20)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_rows_database_and_the_counting_proxy() {
        let base = "postgresql://postgres@127.0.0.1:5433/postgres?connect_timeout=5";
        assert_eq!(
            url_with_db(base, "prodguard_bench_x_1"),
            "postgresql://postgres@127.0.0.1:5433/prodguard_bench_x_1?connect_timeout=5"
        );
        assert_eq!(
            url_with_db("host=/run/postgresql user=u", "d"),
            "host=/run/postgresql user=u dbname=d"
        );
        let proxy: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        assert_eq!(
            url_with_addr("postgresql://app:pw@db.internal:5432/fleet?x=1", proxy).as_deref(),
            Some("postgresql://app:pw@127.0.0.1:40001/fleet?x=1")
        );
        assert_eq!(
            url_with_addr("postgres://db.internal/fleet", proxy).as_deref(),
            Some("postgres://127.0.0.1:40001/fleet")
        );
        assert_eq!(url_with_addr("host=db dbname=fleet", proxy), None);
    }

    #[test]
    fn the_chain_the_fill_writes_is_the_one_the_sink_would() {
        let mut rows = Vec::new();
        encode_chain((0..3).map(sample_event), |row| {
            rows.push(row);
            Ok(())
        })
        .unwrap();
        let mut verifier = prodguard_core::audit::ChainVerifier::new();
        for row in &rows {
            let link = verifier.push(row.record.as_bytes()).unwrap();
            assert_eq!(
                (link.seq as i64, &link.hash, &link.log_id),
                (row.seq, &row.hash, &row.log_id)
            );
        }
        assert_eq!(rows.len(), 3);
    }
}
