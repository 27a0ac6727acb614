//! The `rollback` requirement and `prodguard rollback ATTEMPT_ID` through
//! the real CLI on a real SQLite database: the way back is recorded before
//! the operation runs, and running it brings the database back — unless
//! its backup changed after the fact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Sandbox, code, envelope, stderr};
use rusqlite::Connection;

/// Production: deletes are backed up (a checked copy) and carry their way
/// back; migrations must bring their own.
const POLICY: &str = r#"[[rule]]
name = "deletes can be undone"
operations = ["db.delete.*"]
tiers = ["production"]
require = ["audit", "backup", "rollback"]
backup = { command = "cp {target} {path}", verify = "test \"$(sqlite3 {path} 'PRAGMA integrity_check')\" = ok" }

[[rule]]
name = "migrations bring their way back"
operations = ["db.migrate"]
tiers = ["production"]
require = ["audit", "rollback"]
"#;

fn shop(sandbox: &Sandbox) -> String {
    let path = sandbox.path("shop.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT);
         INSERT INTO orders (item) VALUES ('tea'), ('cake'), ('jam');",
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

fn items(db: &str) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut statement = conn.prepare("SELECT item FROM orders ORDER BY id").unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn prod(sandbox: &Sandbox, policy: &str, args: &[&str]) -> std::process::Output {
    sandbox.run(
        &[("APP_ENV", "production"), ("PRODGUARD_POLICY", policy)],
        args,
    )
}

/// The intents of the sandbox's log, newest last.
fn intents(sandbox: &Sandbox) -> Vec<serde_json::Value> {
    sandbox
        .records()
        .into_iter()
        .filter(|r| r["kind"] == "intent")
        .collect()
}

/// The newest intent's attempt id.
fn last_attempt(sandbox: &Sandbox) -> String {
    intents(sandbox).pop().unwrap()["attempt_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A migration of `db` in production that does nothing, with the way back
/// `true`; its attempt id.
fn migrated(sandbox: &Sandbox, policy: &str, db: &str) -> String {
    let migrate = [
        "exec",
        "--op",
        "db.migrate",
        "--target",
        db,
        "--rollback",
        "true",
        "--",
        "true",
    ];
    let out = prod(sandbox, policy, &migrate);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    last_attempt(sandbox)
}

/// `DELETE FROM orders` on `db` in production, guarded; its intent.
fn delete_all(sandbox: &Sandbox, policy: &str, db: &str) -> serde_json::Value {
    let delete = [
        "exec",
        "--op",
        "db.delete.all",
        "--target",
        db,
        "--",
        "sqlite3",
        db,
        "DELETE FROM orders",
    ];
    let out = prod(sandbox, policy, &delete);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(items(db).is_empty());
    intents(sandbox).pop().unwrap()
}

#[test]
fn rolling_back_restores_the_backup_and_the_database_has_its_earlier_content() {
    let sandbox = Sandbox::new("rollback-restore");
    let policy = sandbox.write("prodguard.toml", POLICY.as_bytes());
    let db = shop(&sandbox);
    let intent = delete_all(&sandbox, &policy, &db);
    assert_eq!(intent["rollback"]["restore_backup"], true, "{intent}");
    let attempt = intent["attempt_id"].as_str().unwrap().to_owned();

    // --show runs nothing.
    let out = prod(
        &sandbox,
        &policy,
        &["rollback", &attempt, "--show", "--json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let shown = envelope(&out);
    assert_eq!(shown["ok"]["operation"], "db.delete.all.rollback");
    assert!(items(&db).is_empty());

    let out = prod(&sandbox, &policy, &["rollback", &attempt]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("its way back: restore the backup"),
        "{}",
        stderr(&out)
    );
    assert_eq!(items(&db), ["tea", "cake", "jam"]);
    // Recorded as its own guarded operation, linked to the attempt it undid.
    let records = sandbox.records();
    let undo = records
        .iter()
        .find(|r| r["kind"] == "intent" && r["rolls_back"] == attempt.as_str())
        .expect("the rollback's intent");
    assert_eq!(undo["op"]["kind"], "db.delete.all.rollback");
    let outcome = records
        .iter()
        .find(|r| r["kind"] == "outcome" && r["attempt_id"] == undo["attempt_id"])
        .expect("the rollback's outcome");
    assert_eq!(outcome["outcome"]["status"], "ok");
    let out = sandbox.run(&[], &["audit", "verify"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_backup_changed_after_the_fact_is_not_restored() {
    let sandbox = Sandbox::new("rollback-changed");
    let policy = sandbox.write("prodguard.toml", POLICY.as_bytes());
    let db = shop(&sandbox);
    let intent = delete_all(&sandbox, &policy, &db);
    let backup = intent["backup"]["location"].as_str().unwrap().to_owned();
    let attempt = intent["attempt_id"].as_str().unwrap().to_owned();
    // Someone slips a row into the backup.
    Connection::open(&backup)
        .unwrap()
        .execute("INSERT INTO orders (item) VALUES ('forged')", [])
        .unwrap();
    let before = sandbox.records().len();
    let out = prod(&sandbox, &policy, &["rollback", &attempt]);
    assert_eq!(code(&out), 122, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("changed after the intent recorded it"),
        "{}",
        stderr(&out)
    );
    assert!(items(&db).is_empty(), "nothing was restored");
    // Nobody was asked and nothing ran, and the trail keeps the refusal.
    let records = sandbox.records();
    assert_eq!(records.len(), before + 1);
    let note = records.last().unwrap();
    assert_eq!(note["kind"], "note", "{note}");
    let said = note["message"].as_str().unwrap();
    assert!(
        said.contains(&format!(
            "the rollback of attempt {attempt} was refused (122)"
        )) && said.contains("changed after the intent recorded it"),
        "{said}"
    );
}

#[test]
fn a_migration_without_its_way_back_is_refused_and_one_with_it_is_undone_by_its_command() {
    let sandbox = Sandbox::new("rollback-command");
    let policy = sandbox.write("prodguard.toml", POLICY.as_bytes());
    let db = shop(&sandbox);
    let migrate = ["exec", "--op", "db.migrate", "--target", &db];
    let up = [
        "--",
        "sqlite3",
        &db,
        "ALTER TABLE orders ADD COLUMN price INTEGER",
    ];
    let out = prod(&sandbox, &policy, &[&migrate[..], &up[..]].concat());
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(stderr(&out).contains("--rollback CMD"), "{}", stderr(&out));
    assert!(intents(&sandbox).is_empty(), "it did not run");

    let down = format!("sqlite3 '{db}' 'ALTER TABLE orders DROP COLUMN price'");
    let out = prod(
        &sandbox,
        &policy,
        &[&migrate[..], &["--rollback", &down], &up[..]].concat(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let intent = intents(&sandbox).pop().unwrap();
    assert_eq!(intent["rollback"]["command"], down.as_str(), "{intent}");
    let columns = |db: &str| {
        let conn = Connection::open(db).unwrap();
        let mut statement = conn
            .prepare("SELECT name FROM pragma_table_info('orders')")
            .unwrap();
        statement
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    assert!(columns(&db).contains(&"price".to_owned()));

    let attempt = intent["attempt_id"].as_str().unwrap();
    let out = prod(&sandbox, &policy, &["rollback", attempt]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(columns(&db), ["id", "item"]);
    assert_eq!(items(&db), ["tea", "cake", "jam"]);
    let undo = intents(&sandbox).pop().unwrap();
    assert_eq!(undo["rolls_back"], attempt, "{undo}");
    assert_eq!(undo["op"]["kind"], "db.migrate.rollback");
    // Undone once is undone.
    let out = prod(&sandbox, &policy, &["rollback", attempt]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already rolled back"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_rollback_is_guarded_by_the_rules_of_what_it_undoes() {
    let sandbox = Sandbox::new("rollback-rules");
    let db = shop(&sandbox);
    // In development nothing is asked; the way back is recorded anyway.
    let out = sandbox.run(
        &[("APP_ENV", "development")],
        &[
            "exec",
            "--op",
            "db.migrate",
            "--target",
            &db,
            "--rollback",
            "true",
            "--",
            "true",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let attempt = last_attempt(&sandbox);
    // A rule naming only `db.migrate` also guards `db.migrate.rollback`:
    // without a terminal to confirm on, it is not run.
    let confirm = sandbox.write(
        "confirm.toml",
        b"[[rule]]\noperations = [\"db.migrate\"]\ntiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\n",
    );
    let out = prod(&sandbox, &confirm, &["rollback", &attempt]);
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    assert!(intents(&sandbox).iter().all(|r| r["rolls_back"].is_null()));
}

#[test]
fn a_plan_from_a_trail_another_account_can_write_does_not_run_and_a_relative_target_is_not_restored()
 {
    let sandbox = Sandbox::new("rollback-foreign");
    let policy = sandbox.write("prodguard.toml", POLICY.as_bytes());
    let db = shop(&sandbox);
    let attempt = migrated(&sandbox, &policy, &db);
    if nix::unistd::geteuid().is_root() {
        // Written by another account (the application's): its plans would
        // run with this one's privileges.
        std::os::unix::fs::chown(sandbox.audit_log(), Some(65534), None).unwrap();
        let out = prod(&sandbox, &policy, &["rollback", &attempt]);
        assert_eq!(code(&out), 125, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("owned by uid 65534")
                && stderr(&out).contains("as the account that owns the trail"),
            "{}",
            stderr(&out)
        );
        std::os::unix::fs::chown(sandbox.audit_log(), Some(0), None).unwrap();
    }
    // Group-writable is someone else's too.
    let log = sandbox.audit_log();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o664)).unwrap();
    let out = prod(&sandbox, &policy, &["rollback", &attempt]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("writable by its group"),
        "{}",
        stderr(&out)
    );
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();

    // A backup restored over a relative path would land wherever the
    // rollback runs: the plan is refused.
    let out = prod(
        &sandbox,
        &policy,
        &[
            "exec",
            "--op",
            "db.delete.all",
            "--target",
            "shop.db",
            "--",
            "true",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let relative = last_attempt(&sandbox);
    let out = prod(&sandbox, &policy, &["rollback", &relative]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not an absolute path"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_attempt_the_trail_does_not_hold_or_a_trail_that_does_not_verify_is_refused() {
    let sandbox = Sandbox::new("rollback-unknown");
    let policy = sandbox.write("prodguard.toml", POLICY.as_bytes());
    // No log at all: nothing to read a plan from.
    let out = prod(&sandbox, &policy, &["rollback", "no-such-attempt"]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    // An empty log holds nothing to roll back.
    std::fs::write(sandbox.audit_log(), b"").unwrap();
    let out = prod(&sandbox, &policy, &["rollback", "no-such-attempt"]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no attempt `no-such-attempt`"),
        "{}",
        stderr(&out)
    );
    // A plan edited into the log does not verify.
    let db = shop(&sandbox);
    let attempt = migrated(&sandbox, &policy, &db);
    let log = std::fs::read_to_string(sandbox.audit_log()).unwrap();
    std::fs::write(
        sandbox.audit_log(),
        log.replace("\"command\":\"true\"", "\"command\":\"rm -rf ~\""),
    )
    .unwrap();
    let out = prod(&sandbox, &policy, &["rollback", &attempt]);
    assert_eq!(code(&out), 123, "{}", stderr(&out));
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
}
