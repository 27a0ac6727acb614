//! Fleet locks: one guarded operation on a target at a time, across hosts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::error::SqlState;
use postgres::types::Type;
use sha2::{Digest, Sha256};

use super::{PgError, PgServer};
use crate::facts;

/// The domain tag of fleet lock keys.
const LOCK_DOMAIN: &[u8] = b"prodguard.fleet.lock.v1\0";

/// How long a lease lasts without a heartbeat unless [`FleetLock::lease`]
/// says otherwise: how long a holder that died (or lost its network) keeps
/// everyone else waiting.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The shortest lease [`FleetLock::lease`] takes.
const MIN_LEASE: Duration = Duration::from_millis(300);

/// The longest pause between two tries of a waiter: a released lease is
/// taken within about this long.
const MAX_POLL: Duration = Duration::from_millis(20);

/// Renders a timestamp column as UTC RFC 3339.
macro_rules! utc {
    ($column:literal) => {
        concat!(
            "to_char(",
            $column,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        )
    };
}

/// The key of (`operation`, `target`): the first 8 bytes of
/// `SHA-256(domain ‖ operation ‖ 0 ‖ target)`, the same on every host and
/// every version of prodguard.
pub fn lock_key(operation: &str, target: &str) -> i64 {
    let mut hasher = Sha256::new();
    hasher.update(LOCK_DOMAIN);
    hasher.update(operation.as_bytes());
    hasher.update(b"\0");
    hasher.update(target.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Who holds a fleet lock, from its lease row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Holder {
    /// What the holder said of itself (`user@host pid N` by default).
    pub holder: Option<String>,
    /// Since when (UTC, RFC 3339).
    pub since: Option<String>,
    /// Until when the lease lasts unless its holder renews it (UTC, RFC 3339).
    pub until: Option<String>,
    /// The lease's fencing token.
    pub fence: Option<u64>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(holder) = &self.holder else {
            return f.write_str("another process (it may have released the lock just now)");
        };
        write!(f, "{holder}")?;
        if let Some(since) = &self.since {
            write!(f, " since {since}")?;
        }
        if let Some(until) = &self.until {
            write!(f, " (lease renewed until {until})")?;
        }
        Ok(())
    }
}

/// Why a fleet lock was not acquired.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds it (on this host or another).
    #[error(
        "`{operation}` on `{target}` is already running: the fleet lock is held by {holder}{}; wait until it finishes, then run again",
        waited_text(*waited)
    )]
    Held {
        /// The operation.
        operation: String,
        /// The target.
        target: String,
        /// Who holds it.
        holder: Box<Holder>,
        /// How long this process waited.
        waited: Duration,
    },
    /// The server could not be used: nothing may run (fail closed).
    #[error("{0}")]
    Unavailable(#[from] PgError),
    /// The thread that renews the lease could not start (the lock was given
    /// back: without renewals it would run out mid-operation).
    #[error(
        "cannot start the thread that renews the fleet lock's lease ({0}); the process is out of threads or memory"
    )]
    Heartbeat(std::io::Error),
}

fn waited_text(waited: Duration) -> String {
    if waited == Duration::ZERO {
        String::new()
    } else {
        format!(" (waited {:.1} s)", waited.as_secs_f64())
    }
}

/// Fleet locks on one PostgreSQL server (`[fleet] lock`): a guarded
/// operation holds the lock of its (operation, target) for its whole run,
/// so two hosts never run it on the same target at once.
///
/// The lock is a **lease**: a row of `prodguard_lease` naming its holder,
/// a fencing token and an expiry. Taking it is one statement that claims
/// the row only if its lease has expired; a thread of the holder renews it
/// every third of the lease; releasing it ends the lease at once. Every
/// statement stands alone, so the lock stays exclusive through a pooler in
/// transaction mode (PgBouncer), where a session advisory lock would be
/// shared by whoever gets the same server connection. A holder that dies
/// or loses the server keeps others waiting for at most one lease
/// ([`DEFAULT_LEASE`]); one that was paused past its lease finds it gone
/// ([`FleetGuard::still_held`]) and stops.
///
/// Each grant of a key's lease gets a larger **fencing token**
/// ([`FleetGuard::fence`]), recorded in the intent: two runs on one target
/// that overlapped anyway (a holder that lost its lease mid-run) show in
/// the trail as an intent with a larger fence before the outcome of the
/// one with the smaller fence.
///
/// What the lease and its fences rest on:
/// - Fences are unique per key only while the server's data survives: a
///   failover to an asynchronous replica that had not received the last
///   grants, a restore from a backup, or a deleted row hands out fences
///   again.
/// - Leases run on the server's clock (`now()`): a step of that clock
///   lengthens or shortens the leases held at the time (a step forward can
///   end one early, and another host may then take it).
/// - Hosts still running a prodguard of schema version 1 (whose lock was a
///   session advisory lock) take no lease: during a rolling upgrade, a run
///   on such a host and one on an upgraded host can overlap (a version 1
///   host refuses once it sees version 2, but not a run it already
///   started). Upgrade every host before relying on the lease.
///
/// ```no_run
/// use std::time::Duration;
/// use prodguard::pg::FleetLock;
/// let locks = FleetLock::new("postgresql://prodguard@db.internal/fleet")?;
/// let held = locks.acquire("db.migrate", "orders", Some(Duration::from_secs(60)))?;
/// // … run the migration …
/// held.release()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FleetLock {
    server: PgServer,
    holder: String,
    lease: Duration,
}

impl FleetLock {
    /// Locks on the server at `url`, held as `user@host pid N`.
    pub fn new(url: &str) -> Result<Self, PgError> {
        PgServer::parse(url).map(Self::for_server)
    }

    /// Locks on `server`, held as `user@host pid N`.
    pub fn for_server(server: PgServer) -> Self {
        let holder = format!(
            "{}@{} pid {}",
            facts::current_actor().user,
            facts::hostname().unwrap_or_else(|| "unknown".into()),
            std::process::id()
        );
        FleetLock {
            server,
            holder,
            lease: DEFAULT_LEASE,
        }
    }

    /// Says who holds the locks taken through this value (shown to whoever
    /// waits or is refused), e.g. `deploy 42 on web-3`.
    pub fn holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = holder.into();
        self
    }

    /// How long a lease lasts unless renewed (default [`DEFAULT_LEASE`],
    /// at least 300 ms): shorter frees a dead holder's lock sooner, at the
    /// cost of a renewal every third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(MIN_LEASE);
        self
    }

    /// The server, as messages name it.
    pub fn server(&self) -> &PgServer {
        &self.server
    }

    /// Takes the lock of (`operation`, `target`).
    ///
    /// `wait`: `None` (or zero) refuses at once when another holds it;
    /// `Some(d)` tries again (every 20 ms at most) for up to `d`;
    /// `Some(Duration::MAX)` waits as long as it takes.
    pub fn acquire(
        &self,
        operation: &str,
        target: &str,
        wait: Option<Duration>,
    ) -> Result<FleetGuard, LockError> {
        let mut client = self.server.connect_initialized()?;
        let key = lock_key(operation, target);
        let started = Instant::now();
        let wait = wait.unwrap_or(Duration::ZERO);
        let deadline = started.checked_add(wait);
        let mut pause = Duration::from_millis(2);
        let mut told = false;
        let fence = loop {
            match take(
                &mut client,
                key,
                operation,
                target,
                &self.holder,
                self.lease,
            ) {
                Ok(Some(fence)) => break fence,
                Ok(None) => {}
                // Under a serializable default, a concurrent claim of the
                // same row is a serialization failure: try again.
                Err(e) if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE) => {}
                Err(e) => {
                    return Err(self.server.query_error("take the fleet lock", e).into());
                }
            }
            let now = Instant::now();
            let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
            if left.is_zero() {
                let holder = who_holds(&mut client, key)
                    .map_err(|e| self.server.query_error("find the fleet lock's holder", e))?;
                return Err(LockError::Held {
                    operation: operation.into(),
                    target: target.into(),
                    holder: Box::new(holder),
                    waited: now - started,
                });
            }
            if !told {
                told = true;
                tracing::info!(
                    target: "prodguard::fleet",
                    operation, target, wait_s = wait.as_secs_f64(),
                    "waiting for the fleet lock"
                );
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(MAX_POLL);
        };
        tracing::info!(
            target: "prodguard::fleet",
            operation, target, fence, holder = %self.holder, server = %self.server,
            waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "fleet lock acquired"
        );
        let lease = Arc::new(Lease {
            server: self.server.clone(),
            key,
            fence,
            duration: self.lease,
            operation: operation.into(),
            target: target.into(),
            client: Mutex::new(Some(client)),
            lost: AtomicBool::new(false),
            stop: (Mutex::new(false), Condvar::new()),
        });
        let heartbeat = {
            let lease = Arc::clone(&lease);
            std::thread::Builder::new()
                .name("prodguard-lease".into())
                .spawn(move || lease.heartbeat())
        };
        let heartbeat = match heartbeat {
            Ok(handle) => handle,
            Err(e) => {
                // Without renewals the lease would run out mid-operation.
                let _ = lease.end();
                return Err(LockError::Heartbeat(e));
            }
        };
        Ok(FleetGuard {
            lease,
            heartbeat: Some(heartbeat),
        })
    }
}

/// Claims the lease of `key` if nobody holds it (no row, or its lease ran
/// out or was released): its fence, or `None` when another holds it. While
/// another holds it, nothing is written (no row lock, no WAL flush): a
/// waiter polls with reads.
fn take(
    client: &mut Client,
    key: i64,
    operation: &str,
    target: &str,
    holder: &str,
    lease: Duration,
) -> Result<Option<u64>, postgres::Error> {
    let row = client.query_typed_opt(
        "INSERT INTO prodguard_lease AS l (key, operation, target, holder, fence, since, until) \
         SELECT $1, $2, $3, $4, 1, now(), now() + make_interval(secs => $5) \
         WHERE NOT EXISTS (SELECT 1 FROM prodguard_lease WHERE key = $1 AND until > now()) \
         ON CONFLICT (key) DO UPDATE SET operation = excluded.operation, \
             target = excluded.target, holder = excluded.holder, fence = l.fence + 1, \
             since = excluded.since, until = excluded.until \
         WHERE l.until <= now() \
         RETURNING fence",
        &[
            (&key, Type::INT8),
            (&operation, Type::TEXT),
            (&target, Type::TEXT),
            (&holder, Type::TEXT),
            (&lease.as_secs_f64(), Type::FLOAT8),
        ],
    )?;
    row.map(|r| r.try_get::<_, i64>(0).map(|f| f.unsigned_abs()))
        .transpose()
}

/// Who holds the lease of `key`, if anyone does now.
fn who_holds(client: &mut Client, key: i64) -> Result<Holder, postgres::Error> {
    let row = client.query_typed_opt(
        concat!(
            "SELECT holder, ",
            utc!("since"),
            ", ",
            utc!("until"),
            ", fence FROM prodguard_lease WHERE key = $1 AND until > now()"
        ),
        &[(&key, Type::INT8)],
    )?;
    let Some(row) = row else {
        return Ok(Holder::default());
    };
    Ok(Holder {
        holder: row.try_get(0)?,
        since: row.try_get(1)?,
        until: row.try_get(2)?,
        fence: row.try_get::<_, Option<i64>>(3)?.map(i64::unsigned_abs),
    })
}

/// A held lease, shared by its [`FleetGuard`] and the thread renewing it.
struct Lease {
    server: PgServer,
    key: i64,
    fence: u64,
    duration: Duration,
    operation: String,
    target: String,
    /// The connection renewals and the release use, when none has it
    /// (`None` after one broke: the next use reconnects).
    client: Mutex<Option<Client>>,
    /// A renewal found the lease gone: another may hold it now.
    lost: AtomicBool,
    /// Set when the guard is done with the lease: the heartbeat stops.
    stop: (Mutex<bool>, Condvar),
}

impl Lease {
    /// Runs `f` on the lease's connection, taken out of its slot meanwhile
    /// (connecting first if there is none), and puts it back unless `f`
    /// failed. No lock is held across the I/O: a reconnect or a slow
    /// statement of one caller (the heartbeat, [`FleetGuard::still_held`],
    /// the release) never blocks another, which connects its own.
    fn with_client<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, PgError> {
        let taken = self.client.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut client = match taken {
            Some(client) if !client.is_closed() => client,
            _ => self.server.connect()?,
        };
        // A connection that failed once is not trusted again.
        let result = f(&mut client).map_err(|e| self.server.query_error(op, e))?;
        // Another caller's connection may be back first: one is kept.
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(client);
        Ok(result)
    }

    /// Extends the lease by its duration from now, if it is still ours:
    /// `Ok(false)` when it ran out (or was ended) meanwhile.
    fn renew(&self) -> Result<bool, PgError> {
        if self.lost.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let renewed = self.with_client("renew the fleet lock", |client| {
            client
                .query_typed_opt(
                    // The clock, not the transaction's start: a renewal that
                    // waited on the row must not revive a lease that ran out
                    // while it waited.
                    "UPDATE prodguard_lease SET until = clock_timestamp() + make_interval(secs => $3) \
                     WHERE key = $1 AND fence = $2 AND until > clock_timestamp() RETURNING 1",
                    &[
                        (&self.key, Type::INT8),
                        (&self.fence_db(), Type::INT8),
                        (&self.duration.as_secs_f64(), Type::FLOAT8),
                    ],
                )
                .map(|row| row.is_some())
        })?;
        if !renewed {
            self.lost.store(true, Ordering::SeqCst);
        }
        Ok(renewed)
    }

    fn fence_db(&self) -> i64 {
        i64::try_from(self.fence).unwrap_or(i64::MAX)
    }

    /// Renews the lease every third of its duration until told to stop or
    /// until it is lost.
    fn heartbeat(&self) {
        let (stopped, wake) = &self.stop;
        let beat = self.duration / 3;
        // After a failed renewal, try again soon: the lease runs on.
        let retry = (self.duration / 10).min(Duration::from_secs(1));
        let mut pause = beat;
        loop {
            // Checks the flag before waiting: a stop set before this thread
            // first waits is not missed.
            let stop = stopped.lock().unwrap_or_else(|p| p.into_inner());
            let (stop, _) = wake
                .wait_timeout_while(stop, pause, |stop| !*stop)
                .unwrap_or_else(|p| p.into_inner());
            if *stop {
                return;
            }
            drop(stop);
            match self.renew() {
                Ok(true) => pause = beat,
                Ok(false) => {
                    tracing::warn!(
                        target: "prodguard::fleet",
                        operation = %self.operation, target = %self.target, fence = self.fence,
                        "the fleet lock's lease ran out before it was renewed; another host may take it"
                    );
                    return;
                }
                // The next try reconnects; the lease lasts until it runs out.
                Err(e) => {
                    tracing::warn!(
                        target: "prodguard::fleet",
                        error = %e, "renewing the fleet lock failed; trying again"
                    );
                    pause = retry;
                }
            }
        }
    }

    /// Ends the lease now if it is still ours; when another holder took it
    /// meanwhile, there is nothing to end, and a warning says so.
    fn end(&self) -> Result<(), PgError> {
        let taken_by = self.with_client("release the fleet lock", |client| {
            let ended = client.execute_typed(
                "UPDATE prodguard_lease SET until = '-infinity' WHERE key = $1 AND fence = $2",
                &[(&self.key, Type::INT8), (&self.fence_db(), Type::INT8)],
            )?;
            if ended > 0 {
                return Ok(None);
            }
            let row = client.query_typed_opt(
                "SELECT fence, holder FROM prodguard_lease WHERE key = $1",
                &[(&self.key, Type::INT8)],
            )?;
            Ok(Some(match row {
                Some(row) => format!(
                    "fence {} ({})",
                    row.try_get::<_, i64>(0)?,
                    row.try_get::<_, String>(1)?
                ),
                None => "nobody: its row is gone".to_owned(),
            }))
        })?;
        if let Some(taken_by) = taken_by {
            tracing::warn!(
                target: "prodguard::fleet",
                operation = %self.operation, target = %self.target, fence = self.fence,
                "the fleet lock's lease (fence {}) was already taken by {taken_by} when it was \
                 released: another host may have run `{}` on `{}` at the same time",
                self.fence, self.operation, self.target
            );
        }
        Ok(())
    }
}

/// A held fleet lock; dropping it releases the lock.
///
/// A thread renews its lease while it is held. If the server cannot be
/// reached for longer than the lease, or the process was paused that long,
/// the lease runs out and another host may start:
/// [`FleetGuard::still_held`] tells.
pub struct FleetGuard {
    lease: Arc<Lease>,
    heartbeat: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FleetGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetGuard")
            .field("operation", &self.lease.operation)
            .field("target", &self.lease.target)
            .field("fence", &self.lease.fence)
            .field("server", &self.lease.server.name())
            .finish()
    }
}

impl FleetGuard {
    /// The operation the lock is held for.
    pub fn operation(&self) -> &str {
        &self.lease.operation
    }

    /// The target the lock is held for.
    pub fn target(&self) -> &str {
        &self.lease.target
    }

    /// The lock's key ([`lock_key`]).
    pub fn key(&self) -> i64 {
        self.lease.key
    }

    /// This grant's fencing token: larger than that of every earlier grant
    /// of the same (operation, target) on this server, as long as the
    /// server keeps its data (see [`FleetLock`] for what can reuse one).
    pub fn fence(&self) -> u64 {
        self.lease.fence
    }

    /// Whether the lease is still this holder's, renewing it if so.
    pub fn still_held(&mut self) -> Result<bool, PgError> {
        self.lease.renew()
    }

    /// Releases the lock now, reporting a failure (the lease then runs
    /// out on its own). A lease another holder took meanwhile is left to
    /// it, with a warning.
    pub fn release(mut self) -> Result<(), PgError> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<(), PgError> {
        let Some(heartbeat) = self.heartbeat.take() else {
            return Ok(());
        };
        {
            let (stopped, wake) = &self.lease.stop;
            *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
            wake.notify_all();
        }
        let _ = heartbeat.join();
        let result = self.lease.end();
        tracing::info!(
            target: "prodguard::fleet",
            operation = %self.lease.operation, target = %self.lease.target,
            fence = self.lease.fence, "fleet lock released"
        );
        result
    }
}

impl Drop for FleetGuard {
    fn drop(&mut self) {
        if let Err(e) = self.release_inner() {
            tracing::warn!(target: "prodguard::fleet", error = %e, "releasing the fleet lock failed; its lease runs out on its own");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(
            lock_key("db.migrate", "orders"),
            lock_key("db.migrate", "orders")
        );
        assert_ne!(
            lock_key("db.migrate", "orders"),
            lock_key("db.migrate", "users")
        );
        // The separator keeps ("a.b", "c") apart from ("a", "b\0c")-style splits.
        assert_ne!(
            lock_key("db.migrateo", "rders"),
            lock_key("db.migrate", "orders")
        );
    }

    #[test]
    fn a_refusal_names_the_holder() {
        let e = LockError::Held {
            operation: "db.migrate".into(),
            target: "orders".into(),
            holder: Box::new(Holder {
                holder: Some("ana@web-3 pid 12".into()),
                since: Some("2026-01-01T00:00:00Z".into()),
                until: Some("2026-01-01T00:00:30Z".into()),
                fence: Some(7),
            }),
            waited: Duration::ZERO,
        };
        let text = e.to_string();
        assert!(
            text.contains("ana@web-3 pid 12 since 2026-01-01T00:00:00Z"),
            "{text}"
        );
        assert!(text.contains("`db.migrate` on `orders`"), "{text}");
    }
}
