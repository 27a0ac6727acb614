//! Fleet mode's TLS against a real server: a cluster of its own (its own
//! `PRODGUARD_PG_STATE`) started by `scripts/pg-cluster` with
//! `PRODGUARD_PG_TLS_DIR`, so `ssl = on` and TCP connections must use TLS
//! (`hostssl`): every connection that succeeds here is encrypted. The
//! certificates are made here with rcgen: a CA, a server certificate for
//! `db.prodguard.test` (and `localhost`, 127.0.0.1) it signed, and an
//! unrelated CA. Tests connect as `host=db.prodguard.test&hostaddr=127.0.0.1`:
//! to the loopback, checking the name.
//!
//! Needs PostgreSQL's server binaries (like every `pg_*` test) and
//! `eval $(scripts/pg-cluster start)` (PRODGUARD_TEST_PG) for the one test
//! that needs a server without TLS. Run it without PGSSLMODE and
//! PGSSLROOTCERT in the environment.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use pg_common::confirmed_production_guard;
use prodguard::GuardError;
use prodguard::pg::{PgAuditSink, PgError, PgServer, TlsError, verify};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The name in the server's certificate.
const NAME: &str = "db.prodguard.test";

/// The TLS cluster and its certificates. Dropping the last handle stops
/// the cluster and deletes its files and the certificates.
struct TlsCluster {
    port: u16,
    /// The CA that signed the server's certificate.
    ca: PathBuf,
    /// A CA that signed nothing the server has.
    other_ca: PathBuf,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-cluster")
}

impl Drop for TlsCluster {
    // A failed stop is worth a line on stderr, not a panic in a drop.
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        let stopped = Command::new(script())
            .arg("stop")
            .env("PRODGUARD_PG_STATE", &self.state)
            .status();
        if !matches!(stopped, Ok(status) if status.success()) {
            eprintln!(
                "pg-cluster stop failed ({stopped:?}); state {}",
                self.state.display()
            );
        }
    }
}

/// A self-signed CA named `name`.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

impl TlsCluster {
    fn start() -> TlsCluster {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = ca("prodguard test CA");
        let (other_pem, _) = ca("prodguard unrelated CA");
        let mut params =
            CertificateParams::new(vec![NAME.to_owned(), "localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, NAME);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();

        let tls = dir.path().join("tls");
        std::fs::create_dir(&tls).unwrap();
        std::fs::write(tls.join("server.crt"), cert.pem()).unwrap();
        std::fs::write(tls.join("server.key"), key.serialize_pem()).unwrap();
        let ca = dir.path().join("ca.pem");
        let other_ca = dir.path().join("other-ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        std::fs::write(&other_ca, other_pem).unwrap();

        let state = dir.path().join("cluster.env");
        let out = Command::new(script())
            .arg("start")
            .env("PRODGUARD_PG_STATE", &state)
            .env("PRODGUARD_PG_TLS_DIR", &tls)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/pg-cluster start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The key is the server's now; ours goes with the directory.
        std::fs::remove_dir_all(&tls).unwrap();
        // export PRODGUARD_TEST_PG='postgresql://postgres@127.0.0.1:PORT/postgres'
        let stdout = String::from_utf8_lossy(&out.stdout);
        let port = stdout
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {stdout}"));
        TlsCluster {
            port,
            ca,
            other_ca,
            state,
            _dir: dir,
        }
    }

    /// A URL of the cluster as `host` at 127.0.0.1, with `params`.
    fn url(&self, host: &str, params: &str) -> String {
        let sep = if params.is_empty() { "" } else { "&" };
        format!(
            "postgresql://postgres@{host}:{}/postgres?hostaddr=127.0.0.1{sep}{params}",
            self.port
        )
    }

    /// `host:port` as TLS errors name the server.
    fn server(&self, host: &str) -> String {
        format!("{host}:{}", self.port)
    }

    fn ca(&self) -> String {
        format!("sslrootcert={}", self.ca.display())
    }

    fn other_ca(&self) -> String {
        format!("sslrootcert={}", self.other_ca.display())
    }
}

/// The TLS cluster, shared by the tests that run at the same time; it is
/// stopped when the last of them is done (and started again by a later
/// one, if any).
fn cluster() -> Arc<TlsCluster> {
    static SHARED: Mutex<Weak<TlsCluster>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(cluster) = shared.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(TlsCluster::start());
    *shared = Arc::downgrade(&cluster);
    cluster
}

fn connect(url: &str) -> Result<postgres::Client, PgError> {
    PgServer::parse(url).unwrap().connect()
}

/// Whether the connection is encrypted, as the server sees it.
fn encrypted(client: &mut postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0)
}

/// The TLS failure of a connection that must fail.
fn refused(url: &str) -> (TlsError, String) {
    let err = match connect(url) {
        Ok(_) => panic!("{url} connected"),
        Err(err) => err,
    };
    let text = err.to_string();
    assert!(matches!(err, PgError::Connect { .. }), "{text}");
    let tls = err
        .tls()
        .unwrap_or_else(|| panic!("not a TLS failure: {text}"));
    (tls, text)
}

#[test]
fn verify_full_with_the_right_ca_connects_encrypted() {
    let c = cluster();
    let mut client = connect(&c.url(NAME, &format!("sslmode=verify-full&{}", c.ca()))).unwrap();
    assert!(encrypted(&mut client));
    // The key-value form says the same.
    let mut client = connect(&format!(
        "host={NAME} hostaddr=127.0.0.1 port={} user=postgres dbname=postgres \
         sslmode='verify-full' sslrootcert='{}'",
        c.port,
        c.ca.display()
    ))
    .unwrap();
    assert!(encrypted(&mut client));
}

#[test]
fn a_certificate_from_another_ca_is_refused_naming_the_server() {
    let c = cluster();
    // require with a named root checks the chain too, as libpq.
    for mode in ["verify-full", "verify-ca", "require", "prefer"] {
        let (tls, text) = refused(&c.url(NAME, &format!("sslmode={mode}&{}", c.other_ca())));
        assert!(matches!(tls, TlsError::Untrusted { .. }), "{mode}: {text}");
        assert!(
            text.contains(&format!(
                "the certificate of {} is not trusted (unknown issuer)",
                c.server(NAME)
            )),
            "{mode}: {text}"
        );
        assert!(text.contains("set sslrootcert="), "{text}");
        assert!(
            !text.contains("check that the server is running"),
            "no misleading advice: {text}"
        );
    }
}

#[test]
fn a_wrong_name_is_refused_by_verify_full_and_accepted_by_verify_ca() {
    let c = cluster();
    let other = "other.prodguard.test";
    let (tls, text) = refused(&c.url(other, &format!("sslmode=verify-full&{}", c.ca())));
    assert!(matches!(tls, TlsError::WrongName { .. }), "{text}");
    assert!(
        text.contains(&format!(
            "the certificate of {} is not valid for the name {other}",
            c.server(other)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("(it names {NAME}, localhost, 127.0.0.1)")),
        "names what it lists: {text}"
    );

    let mut client = connect(&c.url(other, &format!("sslmode=verify-ca&{}", c.ca()))).unwrap();
    assert!(encrypted(&mut client));
    // An IP address is checked against the certificate's IP addresses.
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&{}",
        c.port,
        c.ca()
    );
    assert!(encrypted(&mut connect(&url).unwrap()));
}

#[test]
fn sslmode_disable_is_refused_by_a_server_that_requires_tls() {
    let c = cluster();
    let err = connect(&c.url(NAME, "sslmode=disable")).err().unwrap();
    let text = err.to_string();
    assert!(err.tls().is_none(), "{text}");
    assert!(text.contains("no encryption"), "the server refused: {text}");
}

#[test]
fn without_sslmode_a_host_off_the_loopback_is_verified_against_the_system_store() {
    let c = cluster();
    // No sslmode, no sslrootcert: verify-full against the platform's store,
    // which does not know the test CA.
    let (tls, text) = refused(&c.url(NAME, ""));
    assert!(
        matches!(tls, TlsError::Untrusted { .. } | TlsError::RootCert { .. }),
        "{text}"
    );
    assert!(
        text.contains(&c.server(NAME)) || text.contains("system"),
        "{text}"
    );
    // With the CA named, the same URL connects.
    let mut client = connect(&c.url(NAME, &c.ca())).unwrap();
    assert!(encrypted(&mut client));
    // …and still checks the name (the default is verify-full, not verify-ca).
    let (tls, text) = refused(&c.url("other.prodguard.test", &c.ca()));
    assert!(matches!(tls, TlsError::WrongName { .. }), "{text}");
}

#[test]
fn on_the_loopback_the_default_prefer_uses_tls_without_checking() {
    let c = cluster();
    let url = format!("postgresql://postgres@127.0.0.1:{}/postgres", c.port);
    assert!(encrypted(&mut connect(&url).unwrap()));
}

#[test]
fn require_without_a_ca_connects_encrypted() {
    let c = cluster();
    let mut client = connect(&c.url("other.prodguard.test", "sslmode=require")).unwrap();
    assert!(encrypted(&mut client));
}

#[test]
fn require_is_refused_by_a_server_without_tls() {
    // The shared cluster of the other tests has no TLS.
    let base = pg_common::base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let (tls, text) = refused(&format!("{base}{sep}sslmode=require"));
    assert!(matches!(tls, TlsError::NotOffered { .. }), "{text}");
    assert!(text.contains("does not offer TLS"), "{text}");
}

#[test]
fn a_guard_auditing_over_tls_records_its_trail() {
    let c = cluster();
    let url = c.url(NAME, &format!("sslmode=verify-full&{}", c.ca()));
    let guard = confirmed_production_guard()
        .audit_sink(PgAuditSink::new(&url).unwrap())
        .build()
        .unwrap();
    let ran = AtomicBool::new(false);
    guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ran.store(true, Ordering::SeqCst))
        .unwrap();
    assert!(ran.load(Ordering::SeqCst));
    // The trail (intent and outcome) is in the TLS server, and verifies.
    let report = verify(&PgServer::parse(&url).unwrap(), None).unwrap();
    assert_eq!(report.exit_code(), 0);
    assert!(report.records >= 2, "{report:?}");
    let ops: Vec<String> = connect(&url)
        .unwrap()
        .query("SELECT record FROM prodguard_audit ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        ops.iter()
            .any(|r| r.contains("db.migrate") && r.contains("orders")),
        "{ops:?}"
    );
}

#[test]
fn a_guard_whose_sink_has_the_wrong_ca_refuses_with_123_and_runs_nothing() {
    let c = cluster();
    let url = c.url(NAME, &format!("sslmode=verify-full&{}", c.other_ca()));
    let guard = confirmed_production_guard()
        .audit_sink(PgAuditSink::new(&url).unwrap())
        .build()
        .unwrap();
    let ran = AtomicBool::new(false);
    let err = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ran.store(true, Ordering::SeqCst))
        .unwrap_err();
    assert!(!ran.load(Ordering::SeqCst), "nothing ran");
    assert_eq!(err.exit_code(), 123, "{err}");
    assert!(matches!(err, GuardError::AuditUnavailable(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains(&c.server(NAME)), "{text}");
    assert!(text.contains("not trusted (unknown issuer)"), "{text}");
    // The advice is about the certificate, not about a server that is down.
    assert!(!text.contains("is running"), "{text}");
}

/// The child of the test below: a guard whose sink's URL names no sslmode,
/// under the `PGSSLMODE` or `PGSSLROOTCERT` its parent set.
#[test]
fn child() {
    let Some(role) = pg_common::child_role() else {
        return;
    };
    assert_eq!(role, "guard");
    let url = std::env::var(pg_common::URL).unwrap();
    let guard = confirmed_production_guard()
        .audit_sink(PgAuditSink::new(&url).unwrap())
        .build()
        .unwrap();
    let ran = AtomicBool::new(false);
    let result = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ran.store(true, Ordering::SeqCst));
    let code = result.as_ref().map_or_else(|e| e.exit_code().code(), |_| 0);
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    println!(
        "RESULT exit={code} ran={} {}",
        ran.load(Ordering::SeqCst),
        message.replace('\n', " ")
    );
}

#[test]
fn pgsslmode_may_tighten_but_not_loosen_and_a_looser_one_refuses_with_123() {
    let c = cluster();
    // Without PGSSLMODE this URL is verify-full and connects.
    let url = c.url(NAME, &c.ca());
    let run = |mode: &str| {
        let child = pg_common::spawn_child("guard", &url, &[("PGSSLMODE", mode.to_owned())]);
        pg_common::results(child).join("\n")
    };
    for weaker in ["disable", "prefer", "require", "verify-ca"] {
        let out = run(weaker);
        assert!(out.starts_with("exit=123 ran=false"), "{weaker}: {out}");
        assert!(out.contains(&format!("PGSSLMODE={weaker}")), "{out}");
        assert!(
            out.contains(&format!("sslmode={weaker} in the policy's URL")),
            "{out}"
        );
    }
    assert!(run("verify-full").starts_with("exit=0 ran=true"));
}

/// The environment never chooses which CAs are trusted: with the right CA
/// in `PGSSLROOTCERT` and none in the URL, nothing runs (an attacker who
/// sets the environment and sits on the network could name their own).
#[test]
fn pgsslrootcert_never_chooses_the_cas_and_refuses_with_123() {
    let c = cluster();
    let run = |url: &str, root: &std::path::Path| {
        let child = pg_common::spawn_child(
            "guard",
            url,
            &[("PGSSLROOTCERT", root.display().to_string())],
        );
        pg_common::results(child).join("\n")
    };
    let out = run(&c.url(NAME, ""), &c.ca);
    assert!(out.starts_with("exit=123 ran=false"), "{out}");
    assert!(out.contains("PGSSLROOTCERT is set"), "{out}");
    // Named in the URL, the CA is used and the environment is not read.
    let out = run(&c.url(NAME, &c.ca()), &c.other_ca);
    assert!(out.starts_with("exit=0 ran=true"), "{out}");
}
