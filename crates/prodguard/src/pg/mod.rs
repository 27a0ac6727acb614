//! Fleet mode on PostgreSQL: guards on many hosts agree through one server.
//!
//! When an application runs on many hosts, its guards share:
//!
//! - **one audit trail** ([`PgAuditSink`]): the table `prodguard_audit`, whose
//!   `record` column holds each record's exact bytes, so the same hash chain
//!   and the same verifier ([`verify`]) apply as for a file. Appends are
//!   serialised by a transaction-scoped advisory lock and each continues the
//!   chain from the last row; a record is acknowledged only once committed.
//! - **single-use approvals** (the table `prodguard_spent`, whose primary key
//!   is the token's nonce): [`PgAuditSink`] spends a token in the same
//!   transaction as the intent record that uses it, and [`PgLedger`] spends
//!   it on its own (for an audit log kept elsewhere). A replay on any host
//!   is refused.
//! - **one operation at a time** ([`FleetLock`]): a lease row per
//!   (operation, target) in `prodguard_lease`, naming its holder, renewed
//!   while the operation runs, with a fencing token the intent records.
//! - **target stamps** ([`PgStamps`], [`read_stamp`], [`write_stamp`]): the
//!   table `prodguard_stamp` inside the guarded database itself, so a
//!   production dump restored elsewhere still says it is production.
//!
//! The tables are created on first use (or by [`init`]); `prodguard_schema`
//! records the schema version for later migrations.
//!
//! Servers are named by URL (`postgresql://user@host:port/dbname`, or the
//! key-value form `host=… dbname=…`). Every error names the server as
//! [`PgServer::name`] shows it: host, port, database and user, never the
//! password. A server that cannot be reached is an error, never a pass: the
//! guard refuses (exit 123). So is one that does not finish connecting (TCP,
//! TLS and the startup together) within the URL's `connect_timeout` per host
//! it names ([`DEFAULT_CONNECT_TIMEOUT`], 10 s, without one): a hung server
//! whose kernel still accepts connections fails the guard in seconds. (The
//! attempt given up on keeps a thread until that server answers or the
//! connection breaks.)
//!
//! Backups of a PostgreSQL target (the target named by its URL) use the
//! command provider with PostgreSQL's own tools: a custom-format dump,
//! verified by listing its table of contents.
//!
//! ```toml
//! [[rule]]
//! operations = ["db.migrate", "db.delete.*"]
//! tiers = ["production", "unknown"]
//! require = ["confirm", "backup", "audit"]
//! backup = { command = "pg_dump -Fc -f {path} {target}", verify = "pg_restore --list {path}" }
//! ```
//!
//! Keep passwords out of policies and URLs: a URL without one takes it from
//! `PGPASSWORD` or the password file (`PGPASSFILE`, default `~/.pgpass`,
//! mode 600), as libpq does. A password in a target URL is removed before
//! the target reaches a record, a prompt or a lock key.
//!
//! # TLS
//!
//! Connections use TLS (rustls) as libpq's `sslmode` says, from the URL
//! (`?sslmode=verify-full`, or `sslmode=…` in the key-value form):
//!
//! - `disable`: none. `prefer`: TLS when the server offers it, unchecked.
//!   `require`: TLS, the certificate unchecked. `verify-ca`: the certificate
//!   must chain to a trusted CA. `verify-full`: and name the host (an IP
//!   address host needs it among the certificate's IP addresses). As in
//!   libpq, `prefer` and `require` check the chain when a root certificate
//!   is named. `allow` is not supported.
//! - **The default is `verify-full` for a host off the loopback**, `prefer`
//!   on it (`localhost`, 127.0.0.0/8, ::1). Not libpq's `prefer`
//!   everywhere: an attacker on the network could answer that the server
//!   has no TLS, and read or rewrite the audit trail, approvals and locks
//!   on the way. A host named beside an address (`host=NAME&hostaddr=IP`)
//!   is connected to at the address and its certificate checked against
//!   the name; it is on the loopback only if both are. Unix sockets never
//!   use TLS, whatever the mode (as libpq). The client has one mode for a
//!   whole list of hosts, so a list mixing socket directories and TCP
//!   hosts is refused where TLS is required (a socket never offers it).
//! - `sslrootcert` names the CAs to trust: a PEM file of one or more CA
//!   certificates, or `system`, the public web PKI's roots built into
//!   prodguard (Mozilla's, from webpki-roots). Without one in the URL it is
//!   `system`. A file that cannot be read or holds no certificate refuses
//!   the connection, naming the file. With `system`, only `verify-full`
//!   means anything (public CAs vouch for names, not for your server), so
//!   `verify-ca`, or `prefer`/`require` naming `system`, is refused.
//! - **The environment cannot loosen what the policy's URL leaves to the
//!   default.** `PGSSLMODE` counts only when the URL names no `sslmode`, and
//!   only if it is at least as strict as the default for the host (`disable`
//!   < `prefer` < `require` < `verify-ca` < `verify-full`); a weaker or
//!   unknown one refuses every connection, saying to put `sslmode=` in the
//!   policy's URL if that is really meant. Nothing in the environment
//!   chooses the trust anchors: `PGSSLROOTCERT` set while the URL names no
//!   `sslrootcert` refuses every connection (an attacker on the network who
//!   could also set it would otherwise be trusted), and `SSL_CERT_FILE`,
//!   `SSL_CERT_DIR` and `~/.postgresql/root.crt` are not read.
//!
//! A TLS failure (an untrusted certificate, a wrong name, a server without
//! TLS under `require` or stricter) is a [`PgError::Connect`] whose
//! [`PgError::tls`] says what and what to do; like any connection failure,
//! a guard refuses with 123 and nothing runs. Client certificates
//! (`sslcert`, `sslkey`) are not supported.
//!
//! Limits worth knowing:
//! - Poolers: every statement prodguard sends outside a transaction stands
//!   alone (unnamed, in one round trip) and no session state is relied on,
//!   so fleet mode works through PgBouncer in transaction mode too.
//! - The client is synchronous (rust-postgres runs a small runtime of its
//!   own): from async code call the guard in a blocking context, e.g.
//!   `tokio::task::spawn_blocking`.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use postgres::config::Host;
use postgres::{Client, Config};

mod audit;
mod ledger;
mod lock;
mod password;
mod schema;
mod stamp;
mod tls;

pub use audit::{PgAuditSink, verify, verify_client};
pub use ledger::{LedgerSink, PgLedger};
pub use lock::{DEFAULT_LEASE, FleetGuard, FleetLock, Holder, LockError, lock_key};
pub use prodguard_core::policy::is_postgres_url;
pub use schema::{SCHEMA_VERSION, SchemaError, init, schema_version};
pub use stamp::{DATABASE_STAMP, PgStamps, read_stamp, read_stamp_on, write_stamp};
pub use tls::TlsError;

/// How long connecting may take unless the URL says otherwise
/// (`connect_timeout`, in seconds): the TCP connect, the TLS handshake and
/// the startup together, per host the URL names (as libpq counts it). An
/// unreachable or hung server must fail the guard promptly.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long data sent may stay unacknowledged before the connection is
/// given up (`tcp_user_timeout`, unless the URL says otherwise); keepalives
/// (every 2 s after 4 s idle, 2 missed) find a silent peer as fast.
const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(8);

/// Why a PostgreSQL server could not be used. Each names the server without
/// its password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The URL does not parse.
    #[error(
        "not a valid PostgreSQL URL ({detail}); write postgresql://USER@HOST:PORT/DBNAME (the password in ~/.pgpass or the URL)"
    )]
    BadUrl {
        /// What is wrong with it.
        detail: String,
    },
    /// The server could not be reached or refused the connection, or TLS
    /// failed: then [`PgError::tls`] says why (an untrusted certificate, a
    /// server without TLS, a `PGSSLMODE` weaker than the default…).
    #[error("cannot connect to PostgreSQL at {server}: {}", connect_failure(.server, .source))]
    Connect {
        /// The server, without password.
        server: String,
        /// The client's error (for a TLS failure, a [`TlsError`] is in its
        /// chain of sources).
        source: postgres::Error,
    },
    /// The connection (TCP, the TLS handshake and the startup) was not
    /// made within its deadline: typically a server, or something in front
    /// of it, that accepts connections and does not answer.
    #[error("cannot connect to PostgreSQL at {server}: {}", unanswered(*.within))]
    Timeout {
        /// The server, without password.
        server: String,
        /// The deadline that passed.
        within: Duration,
    },
    /// No thread could be started to connect on.
    #[error(
        "cannot connect to PostgreSQL at {server}: cannot start a thread to connect on \
         ({source}); the process is out of threads or memory"
    )]
    NoThread {
        /// The server, without password.
        server: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A statement failed (or the connection broke during it).
    #[error("PostgreSQL at {server}: {op} failed: {}", describe(.source))]
    Query {
        /// The server, without password.
        server: String,
        /// What was being done.
        op: &'static str,
        /// The client's error.
        source: postgres::Error,
    },
    /// The prodguard tables could not be created or are of another version.
    #[error("PostgreSQL at {server}: {source}")]
    Schema {
        /// The server, without password.
        server: String,
        /// What went wrong.
        source: SchemaError,
    },
}

/// What a connection that timed out after `within` means, and what to do.
pub(crate) fn unanswered(within: Duration) -> String {
    format!(
        "it did not answer within {} s; check that the server is running and not overloaded \
         (a stopped or hung server may still accept connections), or give it longer with \
         connect_timeout=SECONDS in the URL",
        within.as_secs_f64()
    )
}

/// Why a connection failed, and what to do: the TLS failure's own words,
/// or the client's with the usual checks.
fn connect_failure(server: &str, source: &postgres::Error) -> String {
    match tls::tls_failure(source, server) {
        Some(tls) => tls.to_string(),
        None => format!(
            "{}; check that the server is running and reachable from this host, and the URL's \
             user, database and password",
            describe(source)
        ),
    }
}

impl PgError {
    /// Why TLS failed, when that is why the connection did: its message
    /// names the server and what to do.
    pub fn tls(&self) -> Option<TlsError> {
        match self {
            PgError::Connect { server, source } => tls::tls_failure(source, server),
            _ => None,
        }
    }

    /// The server this error is about, without password (empty for a bad URL).
    pub fn server(&self) -> &str {
        match self {
            PgError::BadUrl { .. } => "",
            PgError::Connect { server, .. }
            | PgError::Timeout { server, .. }
            | PgError::NoThread { server, .. }
            | PgError::Query { server, .. }
            | PgError::Schema { server, .. } => server,
        }
    }
}

/// A PostgreSQL server named by a URL, ready to connect to.
///
/// ```
/// let server = prodguard::pg::PgServer::parse("postgresql://app:secret@db.internal:5433/fleet")?;
/// assert_eq!(server.name(), "postgresql://app@db.internal:5433/fleet");
/// # Ok::<(), prodguard::pg::PgError>(())
/// ```
#[derive(Clone)]
pub struct PgServer {
    config: Config,
    name: String,
    tls: tls::Plan,
    /// How long [`PgServer::connect`] may take in all.
    deadline: Duration,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password: show only the name.
        f.debug_struct("PgServer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl PgServer {
    /// Parses `url` (`postgresql://…`, `postgres://…` or `key=value …`).
    /// Connecting (TCP, TLS and the startup together) gives up after its
    /// `connect_timeout` per host it names, [`DEFAULT_CONNECT_TIMEOUT`]
    /// without one; without an `application_name`, the
    /// server shows connections as `prodguard`; without a password, it
    /// comes from `PGPASSWORD` or the password file (`PGPASSFILE`, default
    /// `~/.pgpass`, used only when no one else can read it).
    ///
    /// TLS follows the URL's `sslmode` and `sslrootcert`, else `PGSSLMODE`
    /// (only if at least as strict as the default), else the defaults:
    /// `verify-full` against the public web PKI's roots for a host off the
    /// loopback, `prefer` on it, none over a Unix socket (see the [module
    /// docs](self)). `PGSSLROOTCERT` never chooses the roots: set without
    /// `sslrootcert` in the URL, it refuses every connection.
    pub fn parse(url: &str) -> Result<PgServer, PgError> {
        Self::parse_with(url, &|name| std::env::var(name).ok())
    }

    /// [`PgServer::parse`] with the environment's TLS variables
    /// (`PGSSLMODE`, `PGSSLROOTCERT`) read through `env`.
    pub(crate) fn parse_with(
        url: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PgServer, PgError> {
        // postgres::Config knows neither verify-* nor sslrootcert.
        let (url, tls_params) =
            tls::split_params(url).map_err(|detail| PgError::BadUrl { detail })?;
        let mut config: Config = url.parse().map_err(|e: postgres::Error| PgError::BadUrl {
            // The client's parse errors never echo the password.
            detail: e.to_string(),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        // The client's connect_timeout bounds each TCP connect; the whole
        // connect is bounded by it per host, as libpq bounds each host.
        let per_host = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let hosts = config.get_hosts().len().max(config.get_hostaddrs().len());
        let deadline = per_host.saturating_mul(u32::try_from(hosts.max(1)).unwrap_or(u32::MAX));
        // A server that goes silent mid-statement (a half-open connection
        // after a failover) fails the call in seconds instead of after the
        // kernel's 2 hours: a fleet lock's lease (30 s) must be renewed, and
        // a guard must not hang.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(DEAD_PEER_TIMEOUT);
        }
        if config.get_keepalives_interval().is_none() {
            config
                .keepalives_idle(Duration::from_secs(4))
                .keepalives_interval(Duration::from_secs(2))
                .keepalives_retries(2);
        }
        if config.get_application_name().is_none() {
            config.application_name("prodguard");
        }
        if config.get_password().is_none()
            && let Some(password) = password::from_environment(&config)
        {
            config.password(password);
        }
        let name = display_name(&config);
        let tls = tls::Plan::new(&tls_params, &config, &name, env)
            .map_err(|detail| PgError::BadUrl { detail })?;
        config.ssl_mode(tls.client_mode(&config));
        Ok(PgServer {
            config,
            name,
            tls,
            deadline,
        })
    }

    /// The server as messages name it: `postgresql://USER@HOST:PORT/DBNAME`,
    /// never with the password.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens a new connection, with TLS as [`PgServer::parse`] decided (a
    /// failure is [`PgError::Connect`], with [`PgError::tls`] saying why),
    /// within the URL's `connect_timeout` per host ([`PgError::Timeout`]).
    /// Nothing is set on the session: a pooler in transaction mode may give
    /// each transaction another server connection, so each transaction says
    /// its own isolation level.
    pub fn connect(&self) -> Result<Client, PgError> {
        // The client bounds only the TCP connect: a server that accepts and
        // then never answers the TLS handshake or the startup (its kernel
        // still acknowledging, keepalives answered) would hang the call. So
        // the connect runs on a thread of its own, waited for until the
        // deadline. One given up on ends when the server answers (what it
        // got is then dropped, closing it) or the connection breaks.
        let (sent, received) = std::sync::mpsc::sync_channel(1);
        let (config, connector) = (self.config.clone(), self.tls.connector());
        let attempt = std::thread::Builder::new()
            .name("prodguard-pg-connect".into())
            .spawn(move || {
                let _ = sent.send(config.connect(connector));
            })
            .map_err(|source| PgError::NoThread {
                server: self.name.clone(),
                source,
            })?;
        match received.recv_timeout(self.deadline) {
            Ok(connected) => connected.map_err(|source| PgError::Connect {
                server: self.name.clone(),
                source,
            }),
            Err(RecvTimeoutError::Timeout) => Err(PgError::Timeout {
                server: self.name.clone(),
                within: self.deadline,
            }),
            // Only a panic in the client ends the thread without an answer:
            // resumed here, as if it had panicked on this thread.
            Err(RecvTimeoutError::Disconnected) => {
                let panic = attempt.join().err();
                std::panic::resume_unwind(panic.unwrap_or_else(|| Box::new("no answer")))
            }
        }
    }

    /// Opens a new connection and makes sure the prodguard tables exist.
    pub fn connect_initialized(&self) -> Result<Client, PgError> {
        let mut client = self.connect()?;
        init(&mut client).map_err(|e| self.schema_error(e))?;
        Ok(client)
    }

    /// Creates the prodguard tables if they are missing (`prodguard fleet
    /// init`); returns the schema version now in place.
    pub fn init_schema(&self) -> Result<i32, PgError> {
        let mut client = self.connect()?;
        init(&mut client).map_err(|e| self.schema_error(e))?;
        schema_version(&mut client)
            .map_err(|e| self.schema_error(e))
            .map(|v| v.unwrap_or(SCHEMA_VERSION))
    }

    pub(crate) fn query_error(&self, op: &'static str, source: postgres::Error) -> PgError {
        PgError::Query {
            server: self.name.clone(),
            op,
            source,
        }
    }

    pub(crate) fn schema_error(&self, source: SchemaError) -> PgError {
        match source {
            // A broken connection is a connection problem, whatever was being done.
            SchemaError::Sql(source) if source.is_closed() => PgError::Connect {
                server: self.name.clone(),
                source,
            },
            source => PgError::Schema {
                server: self.name.clone(),
                source,
            },
        }
    }
}

/// A client error with what the server or the OS said: the client's own
/// `Display` says only "db error" or "error connecting to server".
pub fn describe(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(detail) = db.detail() {
            text.push_str("; ");
            text.push_str(detail);
        }
        if let Some(hint) = db.hint() {
            text.push_str("; hint: ");
            text.push_str(hint);
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The database a PostgreSQL URL names, spelled one way whatever way the
/// URL spells it: `postgresql://HOST:PORT/DBNAME` (no user, password or
/// parameters). Fleet locks are keyed by it, so `postgres://app@db/orders`
/// and `postgresql://ops@db:5432/orders` share one lock. `None` when `url`
/// is not a PostgreSQL URL that parses.
///
/// ```
/// use prodguard::pg::database_of;
/// assert_eq!(
///     database_of("postgres://app:pw@db.internal/orders?sslmode=disable").as_deref(),
///     Some("postgresql://db.internal:5432/orders")
/// );
/// assert_eq!(database_of("orders.db"), None);
/// ```
pub fn database_of(url: &str) -> Option<String> {
    if !is_postgres_url(url) {
        return None;
    }
    let (url, _) = tls::split_params(url).ok()?;
    let config: Config = url.parse().ok()?;
    let name = display_name(&config);
    // Drop the `user@` that display_name puts after the scheme.
    let rest = name.strip_prefix("postgresql://")?;
    let rest = match (config.get_user(), rest.split_once('@')) {
        (Some(_), Some((_, after))) => after,
        _ => rest,
    };
    Some(format!("postgresql://{rest}"))
}

/// `postgresql://user@host:port/dbname` from a parsed config, without password.
fn display_name(config: &Config) -> String {
    let hosts: Vec<String> = if config.get_hosts().is_empty() {
        config
            .get_hostaddrs()
            .iter()
            .map(|a| match a {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                std::net::IpAddr::V4(v4) => v4.to_string(),
            })
            .collect()
    } else {
        config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]"),
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect()
    };
    let ports = config.get_ports();
    let with_ports: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    let hosts = if with_ports.is_empty() {
        "localhost".to_owned()
    } else {
        with_ports.join(",")
    };
    format!("postgresql://{user}{hosts}/{db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_show_the_password() {
        for (url, name) in [
            (
                "postgresql://app:s3cret@db.example:5433/fleet",
                "postgresql://app@db.example:5433/fleet",
            ),
            (
                "postgres://postgres@127.0.0.1/postgres",
                "postgresql://postgres@127.0.0.1:5432/postgres",
            ),
            (
                "host=/run/postgresql port=5999 user=u password=s3cret dbname=d",
                "postgresql://u@/run/postgresql:5999/d",
            ),
        ] {
            let server = PgServer::parse(url).unwrap_or_else(|e| unreachable!("{url}: {e}"));
            assert_eq!(server.name(), name);
            assert!(!format!("{server:?}").contains("s3cret"));
        }
        assert!(matches!(
            PgServer::parse("postgresql://h/d?sslmode=bogus"),
            Err(PgError::BadUrl { .. })
        ));
    }

    #[test]
    fn tls_parameters_are_understood_and_lock_keys_ignore_them() {
        let env = |name: &str| (name == "PGSSLMODE").then(|| "verify-ca".to_owned());
        let url = "postgresql://app:s3cret@localhost/fleet?sslrootcert=/etc/ca.pem";
        let server = PgServer::parse_with(url, &env).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(server.tls.mode(), tls::SslMode::VerifyCa);
        // The client is told only that TLS is required; the checks are ours.
        assert_eq!(
            server.config.get_ssl_mode(),
            postgres::config::SslMode::Require
        );
        assert_eq!(server.name(), "postgresql://app@localhost:5432/fleet");
        // Off the loopback verify-ca is less than the default: not taken.
        let url = "postgresql://app@db.internal/fleet";
        let server = PgServer::parse_with(url, &env).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(server.tls.mode(), tls::SslMode::VerifyFull);
        let server = PgServer::parse_with("host=localhost dbname=d", &|_| None)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            server.config.get_ssl_mode(),
            postgres::config::SslMode::Prefer
        );
        assert_eq!(
            database_of(
                "postgresql://app@db.internal/fleet?sslmode=verify-full&sslrootcert=/etc/ca.pem"
            ),
            database_of("postgres://ops@db.internal:5432/fleet"),
        );
        assert!(database_of("postgresql://db.internal/fleet?sslmode=verify-full").is_some());
    }

    #[test]
    fn a_silent_server_is_given_up_in_seconds_unless_the_url_says_otherwise() {
        let parse = |url: &str| PgServer::parse(url).unwrap_or_else(|e| unreachable!("{e}"));
        let default = parse("postgresql://db.internal/fleet");
        assert_eq!(
            default.config.get_tcp_user_timeout(),
            Some(&DEAD_PEER_TIMEOUT)
        );
        assert_eq!(default.config.get_keepalives_idle(), Duration::from_secs(4));
        let own = parse("postgresql://db.internal/fleet?tcp_user_timeout=3&keepalives_interval=7");
        assert_eq!(
            own.config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(3))
        );
        assert_eq!(
            own.config.get_keepalives_interval(),
            Some(Duration::from_secs(7))
        );
        // The whole connect is bounded: connect_timeout per host named.
        assert_eq!(default.deadline, DEFAULT_CONNECT_TIMEOUT);
        let two = parse("postgresql://db1.internal,db2.internal/fleet?connect_timeout=3");
        assert_eq!(two.deadline, Duration::from_secs(6));
    }

    #[test]
    fn postgres_urls_are_recognised() {
        assert!(is_postgres_url("postgresql://h/d"));
        assert!(is_postgres_url("POSTGRES://h/d"));
        assert!(!is_postgres_url("/var/log/prodguard/audit.jsonl"));
        assert!(!is_postgres_url("postgres"));
    }
}
