//! Guarded SQL on a real SQLite database: row bounds, the dry run a person
//! sees before confirming, approvals bound to the script and its rows, and
//! what the audit log says of each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use prodguard::confirm::{Challenge, ConfirmEvidence, ConfirmationAnswer};
use prodguard::sql::{self, Dialect};
use prodguard::sql_exec::SqlConnection;
use prodguard::{Actor, ActorKind, Facts, Guard, GuardError, Policy, RunError, Tier};
use prodguard_core::approval::{ApproverKey, Claims, issue};
use rusqlite::Connection;

fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-sql-guard-{name}-"))
        .tempdir()
        .unwrap()
}

/// A shop with 500 carts, half of them stale.
fn shop(dir: &Path) -> Connection {
    let conn = Connection::open(dir.join("shop.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE carts (id INTEGER PRIMARY KEY, stale INTEGER);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, cart INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
         INSERT INTO carts SELECT i, i % 2 FROM n;",
    )
    .unwrap();
    conn
}

fn carts(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM carts", [], |r| r.get(0))
        .unwrap()
}

fn records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Deletes in production: confirmed above 100 rows, never more than 300 per
/// statement; everything audited.
const POLICY: &str = r#"
[[rule]]
name = "bulk-delete"
operations = ["db.delete.*"]
tiers = ["production"]
require = ["confirm", "audit"]
confirm_above_rows = 100
max_rows = 300
"#;

fn guard(dir: &Path, policy: &str) -> prodguard::GuardBuilder {
    let facts = Facts {
        explicit: Some("production".into()),
        ..Facts::default()
    };
    Guard::builder()
        .policy(Policy::parse_toml(policy, "policy.toml").unwrap())
        .facts(facts)
        .actor(Actor {
            user: "ana".into(),
            kind: ActorKind::Human,
            account: None,
        })
        .audit_log(dir.join("audit.jsonl"))
}

/// A person who types the target's name, and remembers what they were shown.
fn person(seen: Arc<Mutex<Vec<Challenge>>>) -> impl Fn(&Challenge) -> ConfirmationAnswer {
    move |challenge: &Challenge| {
        seen.lock().unwrap().push(challenge.clone());
        ConfirmationAnswer::Confirmed(ConfirmEvidence {
            method: "typed".into(),
            approver: None,
            token_id: None,
            exp: None,
            max_rows: None,
        })
    }
}

/// A shop database, and a production guard under `policy` whose person
/// confirms and remembers what they were shown.
fn asked_shop(
    name: &str,
    policy: &str,
) -> (
    tempfile::TempDir,
    Connection,
    Arc<Mutex<Vec<Challenge>>>,
    Guard,
) {
    let dir = temp_dir(name);
    let conn = shop(dir.path());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let guard = guard(dir.path(), policy)
        .confirmer(person(seen.clone()))
        .build()
        .unwrap();
    (dir, conn, seen, guard)
}

fn refused_code<T: std::fmt::Debug>(result: Result<T, RunError<impl std::fmt::Debug>>) -> i32 {
    match result {
        Err(RunError::Refused(e)) => e.exit_code().code(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_delete_over_max_rows_changes_nothing_and_is_refused_before_anyone_is_asked() {
    let (dir, mut conn, seen, guard) = asked_shop("over", POLICY);
    // 500 rows: the dry run finds it over 300 before anyone is asked.
    let result = guard
        .sql("DELETE FROM carts WHERE id > 0")
        .target("shop")
        .run(&mut conn);
    let Err(RunError::Refused(GuardError::Denied(denial))) = result else {
        panic!("{result:?}")
    };
    assert!(denial.missing.contains("500 rows"), "{denial}");
    assert!(denial.missing.contains("bulk-delete"), "{denial}");
    assert!(denial.missing.contains("nothing was changed"), "{denial}");
    assert!(denial.recorded);
    assert_eq!(denial.rows, Some(vec![500]), "the dry run's rows");
    assert!(seen.lock().unwrap().is_empty(), "nobody is asked");
    assert_eq!(carts(&conn), 500);
    let log = records(&dir.path().join("audit.jsonl"));
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["kind"], "refusal");
    assert_eq!(log[0]["decision"]["exit_code"], 120);
}

#[test]
fn a_person_sees_the_rows_before_confirming_and_the_outcome_records_them() {
    let (dir, mut conn, seen, guard) = asked_shop("within", POLICY);
    let script =
        "BEGIN;\nDELETE FROM carts WHERE stale = 1;\nINSERT INTO orders VALUES (1, 2);\nCOMMIT;";
    let ran = guard.sql(script).target("shop").run(&mut conn).unwrap();
    assert_eq!(ran.rows, vec![0, 250, 1, 0]);
    assert!(ran.committed);
    assert_eq!(carts(&conn), 250);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].consequences,
        vec![
            "statement 1 (line 2, db.delete.where on carts): 250 rows",
            "statement 2 (line 3, db.insert on orders): 1 row",
        ]
    );
    let prompt = prodguard::confirm::TerminalConfirmer::prompt(&seen[0]);
    assert!(
        prompt.contains("db.delete.where on carts): 250 rows"),
        "{prompt}"
    );

    let log = records(&dir.path().join("audit.jsonl"));
    assert_eq!(log.len(), 2);
    let (intent, outcome) = (&log[0], &log[1]);
    let classified = sql::classify(script, Dialect::Sqlite);
    assert_eq!(intent["op"]["kind"], "db.delete.where");
    assert_eq!(intent["op"]["fingerprint"], classified.fingerprint.as_str());
    assert_eq!(intent["sql"]["dialect"], "sqlite");
    assert_eq!(intent["sql"]["statements"], 4);
    assert_eq!(intent["sql"]["destructive"][0]["kind"], "db.delete.where");
    assert_eq!(intent["sql"]["destructive"][0]["tables"][0], "carts");
    assert_eq!(
        intent["sql"]["dry_run_rows"],
        serde_json::json!([0, 250, 1, 0])
    );
    assert_eq!(intent["confirm"]["method"], "typed");
    assert_eq!(outcome["outcome"]["status"], "ok");
    assert_eq!(
        outcome["outcome"]["rows"],
        serde_json::json!([0, 250, 1, 0])
    );
}

#[test]
fn rows_within_confirm_above_rows_need_nobody_and_a_dry_run_changes_nothing() {
    let (dir, mut conn, seen, guard) = asked_shop("small", POLICY);
    let ran = guard
        .sql("DELETE FROM carts WHERE id <= 100")
        .target("shop")
        .run(&mut conn)
        .unwrap();
    assert_eq!(ran.rows, vec![100]);
    assert!(
        seen.lock().unwrap().is_empty(),
        "100 rows need no confirmation"
    );
    assert_eq!(carts(&conn), 400);
    let log = records(&dir.path().join("audit.jsonl"));
    assert!(log[0].get("confirm").is_none(), "{}", log[0]);

    // A dry run of a delete over every bound: rolled back, recorded, nobody asked.
    let ran = guard
        .sql("DELETE FROM carts")
        .target("shop")
        .dry_run()
        .run(&mut conn)
        .unwrap();
    assert_eq!((ran.rows, ran.committed), (vec![400], false));
    assert_eq!(carts(&conn), 400);
    assert!(seen.lock().unwrap().is_empty());
    let log = records(&dir.path().join("audit.jsonl"));
    assert_eq!(log.len(), 4);
    assert_eq!(log[2]["decision"]["result"], "dry-run");
    assert_eq!(log[2]["op"]["kind"], "db.delete.all");
    assert_eq!(log[3]["outcome"]["status"], "dry_run");
    assert_eq!(log[3]["outcome"]["rows"], serde_json::json!([400]));
}

#[test]
fn a_failing_second_statement_rolls_back_the_first() {
    let dir = temp_dir("fails");
    let mut conn = shop(dir.path());
    let guard = guard(dir.path(), POLICY)
        .confirmer(person(Arc::default()))
        .build()
        .unwrap();
    let result = guard
        .sql("DELETE FROM carts WHERE id <= 10; INSERT INTO nowhere VALUES (1)")
        .target("shop")
        .run(&mut conn);
    let Err(RunError::Failed(failed)) = result else {
        panic!("{result:?}")
    };
    assert!(failed.to_string().contains("nowhere"), "{failed}");
    assert!(
        failed.to_string().contains("nothing was changed"),
        "{failed}"
    );
    assert_eq!(carts(&conn), 500);
    // It failed in its dry run: nobody was asked, and the attempt is
    // recorded as such.
    let log = records(&dir.path().join("audit.jsonl"));
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["kind"], "refusal");
    assert_eq!(log[0]["decision"]["result"], "failed");
    let reason = log[0]["decision"]["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("the dry run failed, nothing was changed: statement 1"),
        "{reason}"
    );
    assert_eq!(log[0]["op"]["kind"], "db.delete.where");

    // Where no dry run is needed, the failure is the outcome.
    let audited =
        "[[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\nrequire = [\"audit\"]\n";
    let guard = self::guard(dir.path(), audited).build().unwrap();
    let result = guard
        .sql("DELETE FROM carts WHERE id <= 10; INSERT INTO nowhere VALUES (1)")
        .target("shop")
        .run(&mut conn);
    assert!(matches!(result, Err(RunError::Failed(_))), "{result:?}");
    assert_eq!(carts(&conn), 500);
    let log = records(&dir.path().join("audit.jsonl"));
    assert_eq!(log[2]["outcome"]["status"], "failed");
    assert!(
        log[2]["outcome"]["error"]
            .as_str()
            .unwrap()
            .contains("statement 1"),
        "{}",
        log[1]
    );
}

/// A connection whose data changes between the dry run and the real run:
/// more stale carts appear when the second transaction begins.
struct Growing {
    conn: Connection,
    begun: usize,
}

impl SqlConnection for Growing {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn begin(&mut self) -> Result<(), String> {
        self.begun += 1;
        if self.begun == 2 {
            self.conn
                .execute_batch("INSERT INTO carts (stale) VALUES (1), (1), (1)")
                .map_err(|e| e.to_string())?;
        }
        self.conn.begin()
    }
    fn execute(&mut self, statement: &str) -> Result<u64, String> {
        SqlConnection::execute(&mut self.conn, statement)
    }
    fn in_transaction(&mut self) -> Result<bool, String> {
        self.conn.in_transaction()
    }
    fn commit(&mut self) -> Result<(), String> {
        self.conn.commit()
    }
    fn rollback(&mut self) -> Result<(), String> {
        self.conn.rollback()
    }
    fn stamp(&mut self) -> Result<Option<prodguard::Stamp>, String> {
        self.conn.stamp()
    }
}

#[test]
fn more_rows_than_were_confirmed_or_than_may_run_unconfirmed_roll_back() {
    let dir = temp_dir("grows");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let guard = guard(dir.path(), POLICY)
        .confirmer(person(seen.clone()))
        .build()
        .unwrap();
    // Confirmed 250; 253 by the time it runs.
    let mut conn = Growing {
        conn: shop(dir.path()),
        begun: 0,
    };
    let result = guard
        .sql("DELETE FROM carts WHERE stale = 1")
        .target("shop")
        .run(&mut conn);
    let Err(RunError::Refused(GuardError::NotConfirmed(denial))) = result else {
        panic!("{result:?}")
    };
    assert!(
        denial.missing.contains("253 rows, but 250 were shown"),
        "{denial}"
    );
    assert!(denial.missing.contains("rolled back"), "{denial}");
    assert!(denial.recorded);
    assert_eq!(carts(&conn.conn), 503, "only the other writer's rows");
    let log = records(&dir.path().join("audit.jsonl"));
    let outcome = log.last().unwrap();
    assert_eq!(outcome["outcome"]["status"], "rolled_back");
    assert_eq!(outcome["outcome"]["exit_code"], 121);
    assert_eq!(outcome["outcome"]["rows"], serde_json::json!([253]));

    // 99 when nobody was asked; 102 by the time it runs: above 100.
    conn.begun = 0;
    conn.conn
        .execute_batch(
            "DELETE FROM carts WHERE stale = 1 AND id NOT IN \
             (SELECT id FROM carts WHERE stale = 1 ORDER BY id LIMIT 99)",
        )
        .unwrap();
    let asked = seen.lock().unwrap().len();
    let result = guard
        .sql("DELETE FROM carts WHERE stale = 1")
        .target("shop")
        .run(&mut conn);
    assert_eq!(refused_code(result), 121);
    assert_eq!(seen.lock().unwrap().len(), asked, "nobody was asked");
    let log = records(&dir.path().join("audit.jsonl"));
    let outcome = log.last().unwrap();
    assert_eq!(outcome["outcome"]["status"], "rolled_back");
    assert_eq!(outcome["outcome"]["rows"], serde_json::json!([102]));
}

/// Confirmation by approval token only, in production.
fn approval_policy(bob: &ApproverKey) -> String {
    format!(
        "[approval]\napprovers = {{ bob = {{ key = \"{}\", user = \"bob\" }} }}\n[[rule]]\nname = \"deletes\"\n\
         operations = [\"db.delete.*\"]\ntiers = [\"production\"]\n\
         require = [\"confirm\", \"audit\"]\nconfirm = {{ mode = \"approval\" }}\n",
        bob.public_key_text()
    )
}

fn token(key: &ApproverKey, ledger: &str, script: &str, max_rows: Option<u64>) -> String {
    let classified = sql::classify(script, Dialect::Sqlite);
    let now = prodguard::facts::now();
    issue(
        key,
        &Claims {
            v: 2,
            op: classified.operation.as_str().into(),
            target: "shop".into(),
            env: "production".into(),
            tier: Tier::Production,
            fingerprint: Some(classified.fingerprint),
            approver: key.name().into(),
            approver_kind: None,
            iat: now,
            exp: now.plus_seconds(300),
            nonce: prodguard::facts::random_id(),
            ledger: ledger.into(),
            max_rows,
        },
    )
}

#[test]
fn an_approval_binds_the_script_and_its_rows() {
    let dir = temp_dir("approval");
    let mut conn = shop(dir.path());
    let bob = ApproverKey::from_secret("bob", [7; 32]).unwrap();
    let guard = guard(dir.path(), &approval_policy(&bob)).build().unwrap();
    let ledger = guard.ledger_id();
    let stale = "DELETE FROM carts WHERE stale = 1";

    // A token for one script does not run another.
    let other = token(
        &bob,
        &ledger,
        "DELETE FROM carts WHERE stale = 0",
        Some(300),
    );
    let result = guard
        .sql(stale)
        .target("shop")
        .approval(other)
        .run(&mut conn);
    let Err(RunError::Refused(GuardError::NotConfirmed(denial))) = result else {
        panic!("{result:?}")
    };
    assert!(denial.missing.contains("fingerprint"), "{denial}");
    assert_eq!(carts(&conn), 500);

    // Approved for at most 200 rows: 250 is refused after the dry run.
    let small = token(&bob, &ledger, stale, Some(200));
    let result = guard
        .sql(stale)
        .target("shop")
        .approval(small.clone())
        .run(&mut conn);
    let Err(RunError::Refused(GuardError::NotConfirmed(denial))) = result else {
        panic!("{result:?}")
    };
    assert!(
        denial
            .missing
            .contains("250 rows; the approval allows at most 200"),
        "{denial}"
    );
    assert_eq!(carts(&conn), 500);

    // A bound the operation cannot count is no bound.
    let err = guard
        .operation("db.delete.where")
        .target("shop")
        .fingerprint(sql::classify(stale, Dialect::Sqlite).fingerprint)
        .approval(small)
        .run_infallible(|| ())
        .unwrap_err();
    assert!(err.to_string().contains("not counted"), "{err}");

    // Within it: committed, and the intent records the approval's bound.
    let enough = token(&bob, &ledger, stale, Some(250));
    let ran = guard
        .sql(stale)
        .target("shop")
        .approval(enough.clone())
        .run(&mut conn)
        .unwrap();
    assert_eq!(ran.rows, vec![250]);
    assert_eq!(carts(&conn), 250);
    let log = records(&dir.path().join("audit.jsonl"));
    let intent = &log[log.len() - 2];
    assert_eq!(intent["confirm"]["method"], "approval");
    assert_eq!(intent["confirm"]["max_rows"], 250);
    // Spent: the same token does not run the script twice.
    let again = guard
        .sql(stale)
        .target("shop")
        .approval(enough)
        .run(&mut conn);
    assert_eq!(refused_code(again), 121);
}

#[test]
fn scripts_that_cannot_run_in_one_transaction_are_refused_before_anything_runs() {
    let dir = temp_dir("control");
    let mut conn = shop(dir.path());
    let guard = guard(dir.path(), POLICY).build().unwrap();
    for script in [
        "DELETE FROM carts WHERE id = 1; COMMIT; DELETE FROM carts",
        "VACUUM",
    ] {
        let result = guard.sql(script).target("shop").run(&mut conn);
        assert_eq!(refused_code(result), 125, "{script}");
    }
    assert_eq!(carts(&conn), 500);
    assert!(records(&dir.path().join("audit.jsonl")).is_empty());
}

#[test]
fn without_a_confirmation_there_is_no_dry_run_and_the_bound_holds_at_commit() {
    let dir = temp_dir("commit-bound");
    let mut conn = shop(dir.path());
    let audited = "[[rule]]\nname = \"audited\"\noperations = [\"db.*\"]\ntiers = [\"production\"]\n\
                   require = [\"audit\"]\nmax_rows = 100\n";
    let guard = guard(dir.path(), audited).build().unwrap();
    let result = guard
        .sql("DELETE FROM carts WHERE stale = 1")
        .target("shop")
        .run(&mut conn);
    let Err(RunError::Refused(GuardError::Denied(denial))) = result else {
        panic!("{result:?}")
    };
    assert!(
        denial
            .missing
            .contains("affected 250 rows; rule `audited` allows at most 100"),
        "{denial}"
    );
    assert!(denial.recorded);
    assert_eq!(carts(&conn), 500);
    let log = records(&dir.path().join("audit.jsonl"));
    assert_eq!(log.len(), 2, "an intent, then the rolled-back outcome");
    assert!(log[0]["sql"].get("dry_run_rows").is_none(), "{}", log[0]);
    assert_eq!(log[1]["outcome"]["status"], "rolled_back");
    assert_eq!(log[1]["outcome"]["exit_code"], 120);
    assert_eq!(log[1]["outcome"]["rows"], serde_json::json!([250]));
}

#[test]
fn a_statement_that_cannot_run_in_a_transaction_runs_alone_only_where_the_policy_says() {
    let dir = temp_dir("vacuum");
    let mut conn = shop(dir.path());
    let refusing = guard(dir.path(), POLICY).build().unwrap();
    let result = refusing.sql("VACUUM").target("shop").run(&mut conn);
    let Err(RunError::Refused(GuardError::Policy(message))) = result else {
        panic!("{result:?}")
    };
    assert!(message.contains("outside_transaction = true"), "{message}");

    let allowing = format!(
        "{POLICY}\n[[rule]]\nname = \"maintenance\"\noperations = [\"db.maintenance\"]\n\
         tiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\noutside_transaction = true\n"
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let guard = guard(dir.path(), &allowing)
        .confirmer(person(seen.clone()))
        .build()
        .unwrap();
    // Alone, it runs: no dry run could count it, so the person is asked.
    let ran = guard.sql("VACUUM").target("shop").run(&mut conn).unwrap();
    assert_eq!((ran.rows, ran.committed), (vec![0], true));
    assert_eq!(seen.lock().unwrap().len(), 1);
    let log = records(&dir.path().join("audit.jsonl"));
    assert_eq!(log[0]["op"]["kind"], "db.maintenance");
    assert_eq!(log[1]["outcome"]["status"], "ok");
    // Beside other statements, or as a dry run, it is refused.
    for (script, dry_run) in [
        ("VACUUM; DELETE FROM carts WHERE id = 1", false),
        ("VACUUM", true),
    ] {
        let mut sql = guard.sql(script).target("shop");
        if dry_run {
            sql = sql.dry_run();
        }
        assert_eq!(refused_code(sql.run(&mut conn)), 125, "{script}");
    }
    assert_eq!(carts(&conn), 500);
}

#[test]
fn the_stamp_checked_is_the_databases_whatever_the_target_calls_it() {
    let dir = temp_dir("stamp");
    let mut conn = shop(dir.path());
    prodguard::stamp::write_sqlite_stamp(
        &dir.path().join("shop.db"),
        &prodguard::Stamp {
            environment: "staging".into(),
            tier: Tier::Staging,
            stamped_at: None,
            stamped_by: None,
        },
    )
    .unwrap();
    let guard = guard(dir.path(), POLICY)
        .confirmer(person(Arc::default()))
        .build()
        .unwrap();
    // "shop" names no file; the connection's database is stamped staging.
    let result = guard
        .sql("DELETE FROM carts WHERE id <= 5")
        .target("shop")
        .run(&mut conn);
    let Err(RunError::Refused(GuardError::EnvironmentMismatch(denial))) = result else {
        panic!("{result:?}")
    };
    assert!(denial.missing.contains("stamped `staging`"), "{denial}");
    assert_eq!(carts(&conn), 500);
}

#[test]
fn a_statement_not_understood_is_never_dry_run_and_control_hidden_in_one_is_refused() {
    let (_dir, mut conn, seen, guard) = asked_shop("unknown", POLICY);
    // Transaction control or a write-changing PRAGMA the parser did not
    // read: refused before anything runs, dry run or not.
    for script in [
        "DELETE FROM carts WHERE id > 0; COMMIT TRANSACTION x",
        "DELETE FROM carts WHERE id > 0; END TRANSACTION x",
        "PRAGMA journal_mode = OFF; DELETE FROM carts WHERE id > 0",
    ] {
        for dry_run in [false, true] {
            let mut sql = guard.sql(script).target("shop");
            if dry_run {
                sql = sql.dry_run();
            }
            assert_eq!(refused_code(sql.run(&mut conn)), 125, "{script}");
        }
    }
    assert_eq!(carts(&conn), 500);
    assert!(seen.lock().unwrap().is_empty());

    // Another statement not understood: no dry run runs it, so the person
    // is asked with the rows not counted, and a --dry-run is refused.
    let script = "DELETE FROM carts WHERE id <= 5; REINDEX carts";
    let dry = guard.sql(script).target("shop").dry_run().run(&mut conn);
    assert_eq!(refused_code(dry), 125);
    // (SQLite knows REINDEX; the parser does not.)
    let ran = guard.sql(script).target("shop").run(&mut conn).unwrap();
    assert_eq!(ran.rows, [5, 0]);
    let asked = seen.lock().unwrap();
    assert_eq!(asked.len(), 1, "asked, whatever confirm_above_rows says");
    assert_eq!(
        asked[0].consequences,
        [
            "statement 0 (line 1, db.delete.where on carts): rows not counted",
            "statement 1 (line 1, db.unknown): rows not counted",
        ]
    );
    assert_eq!(carts(&conn), 495);
}

#[test]
fn rows_waive_a_confirmation_only_in_all_and_only_where_they_measure_the_change() {
    let dir = temp_dir("waive");
    let mut conn = shop(dir.path());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let policy = "[[rule]]\nname = \"data\"\noperations = [\"db.delete.*\", \"db.drop.*\"]\n\
                  tiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\nconfirm_above_rows = 100\n";
    let guard = guard(dir.path(), policy)
        .confirmer(person(seen.clone()))
        .build()
        .unwrap();
    // Five deletes of 60: 300 rows in all, above 100.
    let split: String = (1..=5)
        .map(|k| {
            format!(
                "DELETE FROM carts WHERE id > {} AND id <= {};\n",
                (k - 1) * 60,
                k * 60
            )
        })
        .collect();
    guard.sql(&split).target("shop").run(&mut conn).unwrap();
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the split delete was confirmed"
    );
    // A DROP counts no rows, so its confirmation is never waived.
    guard
        .sql("DROP TABLE orders")
        .target("shop")
        .run(&mut conn)
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2, "the DROP was confirmed");
    // 60 rows in one statement: within the threshold, nobody is asked.
    guard
        .sql("DELETE FROM carts WHERE id <= 360")
        .target("shop")
        .run(&mut conn)
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn an_approval_that_bounds_rows_does_not_run_a_statement_nothing_counts() {
    let dir = temp_dir("alone-token");
    let mut conn = shop(dir.path());
    let bob = ApproverKey::from_secret("bob", [7; 32]).unwrap();
    let policy = format!(
        "{}\n[[rule]]\nname = \"maintenance\"\noperations = [\"db.maintenance\"]\n\
         tiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\nconfirm = {{ mode = \"approval\" }}\n\
         outside_transaction = true\n",
        approval_policy(&bob)
    );
    let guard = guard(dir.path(), &policy).build().unwrap();
    let bounded = token(&bob, &guard.ledger_id(), "VACUUM", Some(0));
    let result = guard
        .sql("VACUUM")
        .target("shop")
        .approval(bounded)
        .run(&mut conn);
    let Err(RunError::Refused(GuardError::NotConfirmed(denial))) = result else {
        panic!("{result:?}")
    };
    assert!(denial.missing.contains("runs alone"), "{denial}");
    let unbounded = token(&bob, &guard.ledger_id(), "VACUUM", None);
    guard
        .sql("VACUUM")
        .target("shop")
        .approval(unbounded)
        .run(&mut conn)
        .unwrap();
}
