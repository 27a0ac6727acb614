//! PostgreSQL targets against a real server: the environment stamp inside
//! the database (and the 124 refusal on a mismatch), and the documented
//! backup command, `pg_dump -Fc` verified by `pg_restore --list`.
//!
//! Needs `eval $(scripts/pg-cluster start)` first (PRODGUARD_TEST_PG), and
//! pg_dump/pg_restore (Debian: postgresql-client, pulled in by postgresql).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use std::path::PathBuf;
use std::process::Command;

use pg_common::*;
use prodguard::audit::{AuditSink, FileSink};
use prodguard::backup::{BackupProvider, CommandBackup, sha256_file};
use prodguard::pg::{PgAuditSink, PgStamps, read_stamp, write_stamp};
use prodguard::stamp::StampReader;
use prodguard::{Guard, Policy, Tier};
use prodguard_core::Facts;
use prodguard_core::audit::{Actor, AuditEvent};
use prodguard_core::policy::{ActorKind, BackupSpec};
use prodguard_core::session::{BackupRequest, Stamp};

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-pg-{name}-"))
        .tempdir()
        .unwrap()
}

fn production() -> Stamp {
    Stamp {
        environment: "production".into(),
        tier: Tier::Production,
        stamped_at: Some("2026-01-02T03:04:05Z".into()),
        stamped_by: Some("ana".into()),
    }
}

#[test]
fn a_stamp_is_written_read_back_and_replaced() {
    let url = fresh_db("stamp_roundtrip");
    assert_eq!(read_stamp(&url).unwrap(), None, "an unstamped database");
    assert_eq!(
        PgStamps.read("orders.db").unwrap(),
        None,
        "not a PostgreSQL target"
    );
    write_stamp(&url, &production()).unwrap();
    assert_eq!(read_stamp(&url).unwrap(), Some(production()));
    assert_eq!(PgStamps.read(&url).unwrap(), Some(production()));
    let staging = Stamp {
        environment: "stage-eu".into(),
        tier: Tier::Staging,
        stamped_at: None,
        stamped_by: None,
    };
    write_stamp(&url, &staging).unwrap();
    assert_eq!(read_stamp(&url).unwrap(), Some(staging));
    let rows: i64 = connect(&url)
        .query_one("SELECT count(*) FROM prodguard_stamp", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}

#[test]
fn a_production_stamp_refuses_a_development_run_with_124() {
    let url = fresh_db("stamp_mismatch");
    write_stamp(&url, &production()).unwrap();
    let dir = temp_dir("stamp-mismatch");
    let mut facts = Facts::default();
    facts.env.insert("APP_ENV".into(), "development".into());
    // Guard development too, so the stamp is checked.
    let policy = Policy::parse_toml(
        "[[rule]]\noperations = [\"db.*\"]\ntiers = [\"development\"]\nrequire = [\"audit\"]\n",
        "t.toml",
    )
    .unwrap();
    let guard = Guard::builder()
        .policy(policy)
        .facts(facts)
        .actor(Actor {
            user: "ana".into(),
            kind: ActorKind::Human,
            account: None,
        })
        .audit_sink(FileSink::new(dir.path().join("audit.jsonl")))
        .stamp_reader(PgStamps)
        .build()
        .unwrap();
    let mut ran = false;
    let err = guard
        .operation("db.reset")
        .target(url.clone())
        .run_infallible(|| ran = true)
        .unwrap_err();
    assert!(!ran);
    assert_eq!(err.exit_code(), 124, "{err}");
    assert!(err.to_string().contains("stamped `production`"), "{err}");
}

#[test]
fn pg_dump_custom_format_is_a_verified_backup() {
    let url = fresh_db("backup_dump");
    // Something to back up: a trail, a stamp and a table of the application.
    let sink = PgAuditSink::new(&url).unwrap();
    sink.append(&AuditEvent::note("before the backup")).unwrap();
    write_stamp(&url, &production()).unwrap();
    connect(&url)
        .batch_execute(
            "CREATE TABLE orders (id serial PRIMARY KEY, item text);
             INSERT INTO orders (item) VALUES ('tea'), ('cake');",
        )
        .unwrap();
    let dir = temp_dir("backup-dump");
    // The documented provider: exactly what a policy's rule would say.
    let spec = BackupSpec::Command {
        command: "pg_dump -Fc -f {path} {target}".into(),
        verify: "pg_restore --list {path}".into(),
        path: None,
        max_age_seconds: None,
    };
    let evidence = CommandBackup::new(dir.path())
        .backup(&BackupRequest {
            target: Some(url.clone()),
            spec: spec.clone(),
        })
        .unwrap();
    assert!(evidence.verified, "{evidence:?}");
    assert!(evidence.bytes > 0);
    let dump = PathBuf::from(&evidence.location);
    assert!(dump.starts_with(dir.path()), "{}", dump.display());
    assert_eq!(sha256_file(&dump).unwrap().0, evidence.sha256);
    // The custom-format archive lists the tables, the trail and the stamp included.
    let listed = Command::new("pg_restore")
        .arg("--list")
        .arg(&dump)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let listing = String::from_utf8_lossy(&listed.stdout);
    for table in ["prodguard_audit", "prodguard_stamp", "orders"] {
        assert!(
            listing.contains(&format!("TABLE DATA public {table}")),
            "{listing}"
        );
    }
    // A damaged archive does not verify.
    let bytes = std::fs::read(&dump).unwrap();
    let broken = dir.path().join("broken.dump");
    std::fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    let status = Command::new("pg_restore")
        .arg("--list")
        .arg(&broken)
        .output()
        .unwrap()
        .status;
    assert!(!status.success(), "a truncated archive must not list");
    // A dump from an unreachable server is no backup.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = CommandBackup::new(dir.path())
        .backup(&BackupRequest {
            target: Some(format!("postgresql://postgres@127.0.0.1:{port}/nothing")),
            spec,
        })
        .unwrap_err();
    assert!(!err.message.is_empty());
}

#[test]
fn a_database_stamped_like_the_environment_runs() {
    // A database stamped production, and a guard in production: the stamp
    // agrees, so the run goes on to the confirmation and runs.
    let url = fresh_db("stamp_agrees");
    write_stamp(&url, &production()).unwrap();
    let dir = temp_dir("stamp-agrees");
    let guard = confirmed_production_guard()
        .audit_sink(FileSink::new(dir.path().join("audit.jsonl")))
        .stamp_reader(PgStamps)
        .build()
        .unwrap();
    assert_eq!(
        guard
            .operation("db.migrate")
            .target(url)
            .run_infallible(|| 7)
            .unwrap(),
        7
    );
    assert!(
        FileSink::new(dir.path().join("audit.jsonl"))
            .check()
            .is_ok()
    );
}
