//! Guarded SQL on a real PostgreSQL server: the dry run a person sees, row
//! bounds at commit, approvals bound to the script and its rows, and a
//! statement that can only run outside a transaction.
//!
//! Needs `eval $(scripts/pg-cluster start)` first (PRODGUARD_TEST_PG).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use prodguard::confirm::{Challenge, ConfirmEvidence, ConfirmationAnswer};
use prodguard::sql::{self, Dialect};
use prodguard::sql_exec::Postgres;
use prodguard::{Guard, GuardError, Policy, RunError, SqlRan, Tier};
use prodguard_core::policy::ActorKind;

/// A database of its own with 500 carts, half of them stale; its URL.
fn shop(name: &str) -> String {
    let url = pg_common::fresh_db(name);
    pg_common::connect(&url)
        .batch_execute(
            "CREATE TABLE carts (id int PRIMARY KEY, stale bool);
             INSERT INTO carts SELECT i, i % 2 = 1 FROM generate_series(1, 500) i;",
        )
        .unwrap();
    url
}

fn carts(url: &str) -> i64 {
    pg_common::connect(url)
        .query_one("SELECT count(*) FROM carts", &[])
        .unwrap()
        .get(0)
}

fn records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const POLICY: &str = r#"
[[rule]]
name = "bulk"
operations = ["db.delete.*", "db.update.*"]
tiers = ["production"]
require = ["confirm", "audit"]
confirm_above_rows = 10
max_rows = 300
"#;

/// A production guard under `policy` whose person types the target, and
/// remembers what they were shown.
fn guard(dir: &Path, policy: &str, seen: &Arc<Mutex<Vec<Challenge>>>) -> Guard {
    let seen = seen.clone();
    pg_common::confirmed_guard(
        Policy::parse_toml(policy, "p.toml").unwrap(),
        "production",
        "ana",
    )
    .confirmer(move |challenge: &Challenge| {
        seen.lock().unwrap().push(challenge.clone());
        ConfirmationAnswer::Confirmed(ConfirmEvidence {
            method: "typed".into(),
            approver: None,
            token_id: None,
            exp: None,
            max_rows: None,
        })
    })
    .audit_log(dir.join("audit.jsonl"))
    .build()
    .unwrap()
}

fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-pg-sql-{name}-"))
        .tempdir()
        .unwrap()
}

/// Runs `sql` guarded on the database at `url` (its own connection).
fn run(
    guard: &Guard,
    url: &str,
    sql: &str,
    tweak: impl FnOnce(prodguard::GuardedSql<'_>) -> prodguard::GuardedSql<'_>,
) -> Result<SqlRan, RunError<prodguard::sql_exec::SqlExecError>> {
    let mut client = pg_common::connect(url);
    let mut conn = Postgres::new(&mut client, guard.policy().sql());
    tweak(guard.sql(sql).target(url)).run(&mut conn)
}

fn refused(result: Result<SqlRan, RunError<impl std::fmt::Debug>>) -> GuardError {
    match result {
        Err(RunError::Refused(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn bounds_hold_on_postgresql_and_a_person_sees_the_rows_first() {
    let dir = temp_dir("bounds");
    let url = shop("sqlguard_bounds");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let guard = guard(dir.path(), POLICY, &seen);

    // 500 rows > 300: refused after the dry run, before anyone is asked.
    let err = refused(run(&guard, &url, "DELETE FROM carts", |s| s));
    assert_eq!(err.exit_code().code(), 120, "{err}");
    assert!(err.to_string().contains("affected 500 rows"), "{err}");
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(carts(&url), 500);

    // 250 stale carts: shown, confirmed, committed, recorded.
    let ran = run(
        &guard,
        &url,
        "BEGIN;\nDELETE FROM carts WHERE stale;\nCOMMIT;",
        |s| s,
    )
    .unwrap();
    assert_eq!(ran.rows, vec![0, 250, 0]);
    assert_eq!(carts(&url), 250);
    assert_eq!(
        seen.lock().unwrap()[0].consequences,
        ["statement 1 (line 2, db.delete.where on carts): 250 rows"]
    );
    let log = records(&dir.path().join("audit.jsonl"));
    let outcome = log.last().unwrap();
    assert_eq!(outcome["outcome"]["rows"], serde_json::json!([0, 250, 0]));
    // The target is recorded without the URL's password (it has none here,
    // but the op names the server as the stamp reader does).
    assert_eq!(log[log.len() - 2]["sql"]["dialect"], "postgres");

    // A failing second statement rolls back the first.
    let result = run(
        &guard,
        &url,
        "UPDATE carts SET stale = true WHERE id <= 5;\nDELETE FROM nowhere;",
        |s| s,
    );
    assert!(matches!(result, Err(RunError::Failed(_))), "{result:?}");
    let stale: i64 = pg_common::connect(&url)
        .query_one("SELECT count(*) FROM carts WHERE stale", &[])
        .unwrap()
        .get(0);
    assert_eq!(stale, 0);

    // A dry run changes nothing and asks nobody.
    let asked = seen.lock().unwrap().len();
    let ran = run(&guard, &url, "DELETE FROM carts", |s| s.dry_run()).unwrap();
    assert_eq!((ran.rows, ran.committed), (vec![250], false));
    assert_eq!(carts(&url), 250);
    assert_eq!(seen.lock().unwrap().len(), asked);
}

#[test]
fn an_approval_runs_its_own_script_within_its_rows_on_postgresql() {
    let dir = temp_dir("approval");
    let url = shop("sqlguard_approval");
    let (approvers, key_file) = pg_common::approver_bob(dir.path());
    let policy = format!(
        "[approval]\n{approvers}[[rule]]\nname = \"deletes\"\noperations = [\"db.delete.*\"]\n\
         tiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\nconfirm = {{ mode = \"approval\" }}\n"
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let guard = guard(dir.path(), &policy, &seen);
    let ledger = guard.ledger_id();
    let key = prodguard::approval::read_key(&key_file).unwrap();
    let token = |script: &str, max_rows: u64| {
        let classified = sql::classify(script, Dialect::Postgres);
        let now = prodguard::facts::now();
        prodguard_core::approval::issue(
            &key,
            &prodguard_core::approval::Claims {
                v: 2,
                op: classified.operation.as_str().into(),
                target: url.clone(),
                env: "production".into(),
                tier: Tier::Production,
                fingerprint: Some(classified.fingerprint),
                approver: "bob".into(),
                approver_kind: Some(ActorKind::Human),
                iat: now,
                exp: now.plus_seconds(600),
                nonce: prodguard::facts::random_id(),
                ledger: ledger.clone(),
                max_rows: Some(max_rows),
            },
        )
    };
    let stale = "DELETE FROM carts WHERE stale";
    let other = token("DELETE FROM carts WHERE NOT stale", 500);
    let err = refused(run(&guard, &url, stale, |s| s.approval(other)));
    assert_eq!(err.exit_code().code(), 121, "{err}");
    let err = refused(run(&guard, &url, stale, |s| s.approval(token(stale, 249))));
    assert_eq!(err.exit_code().code(), 121, "{err}");
    assert!(err.to_string().contains("at most 249"), "{err}");
    assert_eq!(carts(&url), 500);
    let ran = run(&guard, &url, stale, |s| s.approval(token(stale, 250))).unwrap();
    assert_eq!(ran.rows, vec![250]);
    assert_eq!(carts(&url), 250);
    assert!(seen.lock().unwrap().is_empty(), "a token, nobody typing");
}

#[test]
fn create_index_concurrently_runs_alone_where_the_policy_allows_it() {
    let dir = temp_dir("concurrently");
    let url = shop("sqlguard_concurrently");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let index = "CREATE INDEX CONCURRENTLY carts_stale ON carts (stale)";
    let err = refused(run(&guard(dir.path(), POLICY, &seen), &url, index, |s| s));
    assert_eq!(err.exit_code().code(), 125, "{err}");
    let allowing = format!(
        "{POLICY}\n[[rule]]\nname = \"indexes\"\noperations = [\"db.create\"]\ntiers = [\"production\"]\n\
         require = [\"audit\"]\noutside_transaction = true\n"
    );
    let guard = guard(dir.path(), &allowing, &seen);
    let ran = run(&guard, &url, index, |s| s).unwrap();
    assert!(ran.committed);
    let exists: bool = pg_common::connect(&url)
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'carts_stale')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(exists);
    let log = records(&dir.path().join("audit.jsonl"));
    assert_eq!(log.last().unwrap()["outcome"]["status"], "ok");
    // Beside another statement it is still refused.
    let err = refused(run(
        &guard,
        &url,
        "DELETE FROM carts WHERE id = 1; CREATE INDEX CONCURRENTLY c2 ON carts (id)",
        |s| s,
    ));
    assert_eq!(err.exit_code().code(), 125, "{err}");
    assert_eq!(carts(&url), 500);
}

#[test]
fn rows_changed_out_of_the_servers_count_are_counted() {
    let url = shop("sqlguard_counted");
    let mut client = pg_common::connect(&url);
    client
        .batch_execute(
            "CREATE TABLE removed (id int);
             CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO removed VALUES (OLD.id); RETURN OLD; END $$;
             CREATE TRIGGER keep BEFORE DELETE ON carts FOR EACH ROW EXECUTE FUNCTION keep();",
        )
        .unwrap();
    let config = prodguard_core::policy::SqlConfig::default();
    let count = |client: &mut postgres::Client, sql: &str| {
        let script = sql::classify(sql, Dialect::Postgres);
        let mut conn = Postgres::new(client, &config);
        prodguard::sql_exec::run_in_transaction(&mut conn, sql, &script, |_| false)
            .unwrap()
            .rows
    };
    // The server reports the CTE's SELECT (1 row) and the DO block's nothing;
    // the transaction deleted 10 carts and the trigger inserted 10 rows.
    assert_eq!(
        count(
            &mut client,
            "WITH d AS (DELETE FROM carts WHERE id <= 10 RETURNING 1) SELECT 1"
        ),
        [20]
    );
    assert_eq!(
        count(
            &mut client,
            "DO $$ BEGIN DELETE FROM carts WHERE id <= 10; END $$"
        ),
        [20]
    );
    assert_eq!(count(&mut client, "DELETE FROM carts WHERE id <= 10"), [20]);
    assert_eq!(carts(&url), 500, "all rolled back");
}
