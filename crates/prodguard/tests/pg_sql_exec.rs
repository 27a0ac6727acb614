//! A script run on a real PostgreSQL server in one transaction: rows are
//! counted per statement, and nothing changes unless the caller commits.
//!
//! Needs `eval $(scripts/pg-cluster start)` first (PRODGUARD_TEST_PG).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use prodguard::sql::{Dialect, classify};
use prodguard::sql_exec::{Postgres, Ran, SqlExecError, run_in_transaction};
use prodguard_core::policy::SqlConfig;

fn shop(name: &str) -> postgres::Client {
    let url = pg_common::fresh_db(name);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "CREATE TABLE carts (id int PRIMARY KEY, stale bool);
             INSERT INTO carts SELECT i, i % 2 = 1 FROM generate_series(1, 500) i;",
        )
        .unwrap();
    client
}

/// Runs `sql` on `client` under `timeouts`, committing when `commit` says so.
fn run(
    client: &mut postgres::Client,
    timeouts: &SqlConfig,
    sql: &str,
    commit: impl FnOnce(&[u64]) -> bool,
) -> Result<Ran, SqlExecError> {
    let script = classify(sql, Dialect::Postgres);
    run_in_transaction(&mut Postgres::new(client, timeouts), sql, &script, commit)
}

fn count(client: &mut postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM carts", &[])
        .unwrap()
        .get(0)
}

#[test]
fn rows_are_counted_and_only_a_commit_changes_anything() {
    let mut client = shop("sqlexec_rows");
    let sql = "BEGIN;\nDELETE FROM carts WHERE stale;\nUPDATE carts SET stale = true WHERE id <= 10;\nCOMMIT;";
    let mut seen = Vec::new();
    let ran = run(&mut client, &SqlConfig::default(), sql, |rows| {
        seen = rows.to_vec();
        false
    })
    .unwrap();
    assert_eq!(seen, [0, 250, 5, 0]);
    assert!(!ran.committed);
    assert_eq!(count(&mut client), 500, "rolled back");
    let ran = run(&mut client, &SqlConfig::default(), sql, |_| true).unwrap();
    assert!(ran.committed);
    assert_eq!(count(&mut client), 250);
}

#[test]
fn a_failing_statement_rolls_back_the_ones_before_it() {
    let mut client = shop("sqlexec_fail");
    let sql = "DELETE FROM carts WHERE stale;\nDELETE FROM nowhere;";
    let err = run(&mut client, &SqlConfig::default(), sql, |_| true).unwrap_err();
    assert!(
        matches!(&err, SqlExecError::Statement { index: 1, line: 2, message } if message.contains("nowhere")),
        "{err}"
    );
    assert_eq!(count(&mut client), 500);
    // A statement that cannot run in a transaction runs nothing at all.
    let sql = "DELETE FROM carts WHERE stale; CREATE INDEX CONCURRENTLY c ON carts (stale);";
    let err = run(&mut client, &SqlConfig::default(), sql, |_| true).unwrap_err();
    assert!(matches!(err, SqlExecError::NotRunnable(_)), "{err}");
    assert_eq!(count(&mut client), 500);
}

#[test]
fn a_statement_waiting_for_a_lock_gives_up_after_lock_timeout_and_changes_nothing() {
    let url = pg_common::fresh_db("sqlexec_lock");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "CREATE TABLE carts (id int PRIMARY KEY, stale bool);
             INSERT INTO carts SELECT i, i % 2 = 1 FROM generate_series(1, 500) i;",
        )
        .unwrap();
    // Production traffic holding a row the script wants.
    let mut traffic = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut holding = traffic.transaction().unwrap();
    holding
        .execute("UPDATE carts SET stale = false WHERE id = 1", &[])
        .unwrap();
    let timeouts = SqlConfig {
        lock_timeout_seconds: 1,
        ..SqlConfig::default()
    };
    let sql = "DELETE FROM carts WHERE stale;";
    let started = std::time::Instant::now();
    let err = run(&mut client, &timeouts, sql, |_| true).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        matches!(&err, SqlExecError::Statement { message, .. } if message.contains("lock timeout")),
        "{err}"
    );
    holding.rollback().unwrap();
    assert_eq!(count(&mut client), 500);
}
