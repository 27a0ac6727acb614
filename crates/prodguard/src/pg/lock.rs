//! Fleet locks: one guarded operation on a target at a time, across hosts.

use std::time::{Duration, Instant};

use postgres::Client;
use postgres::error::SqlState;
use sha2::{Digest, Sha256};

use super::{PgError, PgServer};
use crate::facts;

/// The domain tag of fleet lock keys.
const LOCK_DOMAIN: &[u8] = b"prodguard.fleet.lock.v1\0";

/// The advisory lock key of (`operation`, `target`): the first 8 bytes of
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

/// Who holds a fleet lock, as far as the server can tell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holder {
    /// What the holder said of itself (`user@host pid N` by default).
    pub holder: Option<String>,
    /// Since when (UTC, RFC 3339), from the holder's row.
    pub since: Option<String>,
    /// The server process of the holder's connection.
    pub backend_pid: Option<i32>,
    /// The holder connection's client address, when the server shows it.
    pub client_addr: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.holder, self.backend_pid) {
            (Some(holder), _) => {
                write!(f, "{holder}")?;
                if let Some(since) = &self.since {
                    write!(f, " since {since}")?;
                }
                Ok(())
            }
            (None, Some(pid)) => {
                write!(f, "PostgreSQL backend pid {pid}")?;
                if let Some(addr) = &self.client_addr {
                    write!(f, " (client {addr})")?;
                }
                Ok(())
            }
            (None, None) => f.write_str("another session (it may have released the lock just now)"),
        }
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
/// The lock is a session advisory lock (`pg_advisory_lock`) on a connection
/// of its own, held by the returned [`FleetGuard`]: dropping the guard
/// releases it, and if the process dies the server releases it when the
/// connection closes. A row in `prodguard_lock_holders` says who holds it,
/// so a refusal names the holder.
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
        FleetLock { server, holder }
    }

    /// Says who holds the locks taken through this value (shown to whoever
    /// waits or is refused), e.g. `deploy 42 on web-3`.
    pub fn holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = holder.into();
        self
    }

    /// The server, as messages name it.
    pub fn server(&self) -> &PgServer {
        &self.server
    }

    /// Takes the lock of (`operation`, `target`) on a new connection.
    ///
    /// `wait`: `None` (or zero) refuses at once when another holds it;
    /// `Some(d)` waits up to `d` (queued on the server, no polling);
    /// `Some(Duration::MAX)` waits as long as it takes.
    pub fn acquire(
        &self,
        operation: &str,
        target: &str,
        wait: Option<Duration>,
    ) -> Result<FleetGuard, LockError> {
        let client = self.server.connect_initialized()?;
        self.acquire_on(client, operation, target, wait)
    }

    /// Like [`FleetLock::acquire`], on `client` (which the guard keeps: the
    /// lock lives as long as that session). The prodguard tables must exist.
    pub fn acquire_on(
        &self,
        mut client: Client,
        operation: &str,
        target: &str,
        wait: Option<Duration>,
    ) -> Result<FleetGuard, LockError> {
        let key = lock_key(operation, target);
        let started = Instant::now();
        let q = |op| {
            let server = &self.server;
            move |e| LockError::Unavailable(server.query_error(op, e))
        };
        // The session holds the lock while the operation runs, idle: a
        // server-wide idle_session_timeout (PostgreSQL 14+) must not end it.
        client
            .batch_execute(
                "SELECT set_config('idle_session_timeout', '0', false) \
                 WHERE current_setting('idle_session_timeout', true) IS NOT NULL",
            )
            .map_err(q("configure the lock's session"))?;
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .and_then(|r| r.try_get(0))
            .map_err(q("try the fleet lock"))?;
        if !got {
            let holder = who_holds(&mut client, key).map_err(q("find the fleet lock's holder"))?;
            let wait = wait.unwrap_or(Duration::ZERO);
            if wait == Duration::ZERO {
                return Err(LockError::Held {
                    operation: operation.into(),
                    target: target.into(),
                    holder: Box::new(holder),
                    waited: Duration::ZERO,
                });
            }
            tracing::info!(
                target: "prodguard::fleet",
                operation, target, holder = %holder, wait_s = wait.as_secs_f64(),
                "waiting for the fleet lock"
            );
            // lock_timeout 0 waits for ever; anything else is milliseconds.
            let timeout_ms = if wait >= Duration::from_millis(i32::MAX as u64) {
                0
            } else {
                wait.as_millis().max(1)
            };
            client
                .execute(
                    "SELECT set_config('lock_timeout', $1, false)",
                    &[&timeout_ms.to_string()],
                )
                .map_err(q("set lock_timeout"))?;
            let waited = client.execute("SELECT pg_advisory_lock($1)", &[&key]);
            let reset = client.batch_execute("RESET lock_timeout");
            match waited {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.code(),
                        Some(&SqlState::LOCK_NOT_AVAILABLE) | Some(&SqlState::QUERY_CANCELED)
                    ) =>
                {
                    let holder = who_holds(&mut client, key).unwrap_or_default();
                    return Err(LockError::Held {
                        operation: operation.into(),
                        target: target.into(),
                        holder: Box::new(holder),
                        waited: started.elapsed(),
                    });
                }
                Err(e) => return Err(q("wait for the fleet lock")(e)),
            }
            reset.map_err(q("reset lock_timeout"))?;
        }
        let recorded = client.execute(
            "INSERT INTO prodguard_lock_holders (key, operation, target, holder, backend_pid, since) \
             VALUES ($1, $2, $3, $4, pg_backend_pid(), now()) \
             ON CONFLICT (key) DO UPDATE SET operation = excluded.operation, \
             target = excluded.target, holder = excluded.holder, \
             backend_pid = excluded.backend_pid, since = excluded.since",
            &[&key, &operation, &target, &self.holder],
        );
        if let Err(e) = recorded {
            // Without the row a waiter could not be told who holds it: give the lock back.
            let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&key]);
            return Err(q("record the fleet lock's holder")(e));
        }
        tracing::info!(
            target: "prodguard::fleet",
            operation, target, holder = %self.holder, server = %self.server,
            waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "fleet lock acquired"
        );
        Ok(FleetGuard {
            client: Some(client),
            key,
            operation: operation.into(),
            target: target.into(),
            server: self.server.clone(),
        })
    }
}

/// Who holds the advisory lock `key` in this database: the backend holding
/// it, and its row in `prodguard_lock_holders` when that row is current.
fn who_holds(client: &mut Client, key: i64) -> Result<Holder, postgres::Error> {
    let row = client.query_opt(
        "SELECT l.pid, h.holder, \
                to_char(h.since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                host(a.client_addr) \
         FROM pg_locks l \
         LEFT JOIN prodguard_lock_holders h ON h.key = $1 AND h.backend_pid = l.pid \
         LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND l.classid = (($1::bigint >> 32) & 4294967295)::oid \
           AND l.objid = ($1::bigint & 4294967295)::oid \
         LIMIT 1",
        &[&key],
    )?;
    let Some(row) = row else {
        return Ok(Holder::default());
    };
    Ok(Holder {
        backend_pid: row.try_get(0)?,
        holder: row.try_get(1)?,
        since: row.try_get(2)?,
        client_addr: row.try_get(3)?,
    })
}

/// A held fleet lock; dropping it releases the lock.
///
/// The lock lives as long as its connection: if the connection to the
/// server is lost while the operation runs, the server releases the lock
/// and another host may start. [`FleetGuard::still_held`] tells.
pub struct FleetGuard {
    client: Option<Client>,
    key: i64,
    operation: String,
    target: String,
    server: PgServer,
}

impl std::fmt::Debug for FleetGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetGuard")
            .field("operation", &self.operation)
            .field("target", &self.target)
            .field("key", &self.key)
            .field("server", &self.server.name())
            .finish()
    }
}

impl FleetGuard {
    /// The operation the lock is held for.
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The target the lock is held for.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The advisory lock key ([`lock_key`]).
    pub fn key(&self) -> i64 {
        self.key
    }

    /// Whether this session still holds the lock (its connection is alive).
    pub fn still_held(&mut self) -> Result<bool, PgError> {
        let Some(client) = self.client.as_mut() else {
            return Ok(false);
        };
        client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND granted AND objsubid = 1 \
                 AND classid = (($1::bigint >> 32) & 4294967295)::oid \
                 AND objid = ($1::bigint & 4294967295)::oid)",
                &[&self.key],
            )
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.server.query_error("check the fleet lock", e))
    }

    /// Releases the lock now, reporting a failure (the server releases it
    /// anyway when the connection closes, which this also does).
    pub fn release(mut self) -> Result<(), PgError> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<(), PgError> {
        let Some(mut client) = self.client.take() else {
            return Ok(());
        };
        let result = client
            .execute(
                "DELETE FROM prodguard_lock_holders WHERE key = $1 AND backend_pid = pg_backend_pid()",
                &[&self.key],
            )
            .and_then(|_| client.execute("SELECT pg_advisory_unlock($1)", &[&self.key]))
            .map(drop)
            .map_err(|e| self.server.query_error("release the fleet lock", e));
        // Closing the session releases every lock it still holds.
        drop(client);
        tracing::info!(
            target: "prodguard::fleet",
            operation = %self.operation, target = %self.target,
            "fleet lock released"
        );
        result
    }
}

impl Drop for FleetGuard {
    fn drop(&mut self) {
        if let Err(e) = self.release_inner() {
            tracing::warn!(target: "prodguard::fleet", error = %e, "releasing the fleet lock failed; the server releases it as the connection closes");
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
                backend_pid: Some(77),
                client_addr: None,
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
