//! A PostgreSQL server that is down or unreachable: every fleet block fails
//! closed, names the server (never its password), and a guard that requires
//! audit refuses with 123 without running anything.
//!
//! Needs `eval $(scripts/pg-cluster start)` first (PRODGUARD_TEST_PG) like
//! the other PostgreSQL tests, though it talks only to a closed port.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use pg_common::confirmed_production_guard;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prodguard::GuardError;
use prodguard::audit::{AuditError, AuditSink, SpendError};
use prodguard::pg::{FleetLock, LockError, PgAuditSink, PgError, PgLedger, PgServer, PgStamps};
use prodguard::stamp::StampReader;
use prodguard_core::Timestamp;
use prodguard_core::audit::AuditEvent;

/// A URL (with a password) of a port on the loopback where nothing listens.
fn closed_url() -> (String, String) {
    // Keep the helper's contract: the suite runs against a configured cluster.
    let _ = pg_common::base_url();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    (
        format!("postgresql://fleet:hunter2@127.0.0.1:{port}/fleet?connect_timeout=5"),
        format!("127.0.0.1:{port}"),
    )
}

#[test]
fn the_audit_sink_fails_closed_and_names_the_server() {
    let (url, server) = closed_url();
    let sink = PgAuditSink::new(&url).unwrap();
    let started = Instant::now();
    for err in [
        sink.append(&AuditEvent::note("x")).unwrap_err(),
        sink.check().unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(
            matches!(err, AuditError::Io { op: "connect", .. }),
            "{text}"
        );
        assert!(
            text.contains(&format!("postgresql://fleet@{server}/fleet")),
            "{text}"
        );
        assert!(
            text.contains("check that the PostgreSQL server is running"),
            "{text}"
        );
        assert!(text.contains("Connection refused"), "says why: {text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    let err = sink
        .append_spending(&AuditEvent::note("x"), "n", Timestamp(0))
        .unwrap_err();
    assert!(matches!(err, SpendError::Audit(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused promptly"
    );
}

#[test]
fn a_guard_auditing_to_an_unreachable_server_refuses_with_123_and_runs_nothing() {
    let (url, server) = closed_url();
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
    assert!(err.to_string().contains(&server), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn the_ledger_the_fleet_lock_and_the_stamp_fail_closed_too() {
    let (url, server) = closed_url();
    let err = PgLedger::new(&url)
        .unwrap()
        .spend("n", Timestamp(0))
        .unwrap_err();
    assert!(matches!(err, SpendError::Audit(_)), "{err}");
    assert!(err.to_string().contains(&server), "{err}");

    let err = FleetLock::new(&url)
        .unwrap()
        .acquire("db.migrate", "orders", Some(Duration::from_secs(1)))
        .unwrap_err();
    assert!(
        matches!(err, LockError::Unavailable(PgError::Connect { .. })),
        "{err}"
    );
    assert!(err.to_string().contains(&server), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    let err = PgStamps.read(&url).unwrap_err().to_string();
    assert!(err.contains(&server) && !err.contains("hunter2"), "{err}");

    let err = PgServer::parse(&url).unwrap().init_schema().unwrap_err();
    assert_eq!(err.server(), format!("postgresql://fleet@{server}/fleet"));
}

/// A port on the loopback that accepts connections and never answers (a
/// stopped or hung server whose kernel still accepts): what it accepted
/// stays open, unanswered, until the test process ends.
fn silent_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming() {
            open.push(stream);
        }
    });
    port
}

#[test]
fn a_server_that_accepts_and_never_answers_is_given_up_at_the_deadline() {
    let _ = pg_common::base_url();
    let port = silent_port();
    let server = format!("postgresql://fleet@127.0.0.1:{port}/fleet");
    // The TLS handshake (require), the answer to the TLS request (prefer)
    // and the startup without TLS (disable) all wait on the server.
    for mode in ["require", "prefer", "disable"] {
        let url = format!(
            "postgresql://fleet:hunter2@127.0.0.1:{port}/fleet?sslmode={mode}&connect_timeout=1"
        );
        let started = Instant::now();
        let Err(err) = PgServer::parse(&url).unwrap().connect() else {
            panic!("{mode}: connected to a server that never answers");
        };
        let took = started.elapsed();
        let text = err.to_string();
        assert!(matches!(err, PgError::Timeout { .. }), "{mode}: {text}");
        assert!(took < Duration::from_secs(3), "{mode}: took {took:?}");
        assert!(text.contains(&server), "{text}");
        assert!(text.contains("did not answer within 1 s"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    // Through a guard: refused with 123 like any unreachable server.
    let url = format!("postgresql://fleet@127.0.0.1:{port}/fleet?connect_timeout=1");
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
    assert!(
        err.to_string().contains("did not answer within 1 s"),
        "{err}"
    );
}
