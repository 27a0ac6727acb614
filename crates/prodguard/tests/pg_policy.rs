//! Fleet mode configured by the policy alone — `[audit] sink`, `[approval]
//! ledger`, `[fleet] lock` — driven through whole guarded operations against
//! a real PostgreSQL server.
//!
//! Needs `eval $(scripts/pg-cluster start)` first (PRODGUARD_TEST_PG).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pg_common::*;
use prodguard::audit::verify_file;
use prodguard::pg::{PgServer, verify};
use prodguard::{Guard, GuardBuilder, GuardError, Policy};
use prodguard_core::Tier;
use prodguard_core::audit::ConfirmEvidence;
use prodguard_core::session::{Challenge, ConfirmationAnswer, Stamp};

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-pgpol-{name}-"))
        .tempdir()
        .unwrap()
}

/// `text` plus a rule guarding every operation in production with a
/// confirmation and the audit log.
fn policy(text: &str) -> Policy {
    let text = format!(
        "{text}\n[[rule]]\noperations = [\"*\"]\ntiers = [\"production\", \"unknown\"]\n\
         require = [\"confirm\", \"audit\"]\n"
    );
    Policy::parse_toml(&text, "prodguard.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A guard in `env` under `policy`, acting as `user`, whose typed
/// confirmations are given.
fn guard(policy: Policy, env: &str, user: &str) -> GuardBuilder {
    confirmed_guard(policy, env, user)
}

/// Runs `db.migrate` on `orders` through `guard`, expecting a refusal with
/// `code`; asserts the operation did not run and returns the message.
#[track_caller]
fn refused(guard: &Guard, code: i32) -> String {
    let ran = AtomicBool::new(false);
    let err = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ran.store(true, Ordering::SeqCst))
        .unwrap_err();
    assert_eq!(err.exit_code(), code, "{err}");
    assert!(!ran.load(Ordering::SeqCst), "the operation ran: {err}");
    err.to_string()
}

/// The records of the trail at `url`, parsed, in order.
fn trail(url: &str) -> Vec<serde_json::Value> {
    connect(url)
        .query("SELECT record FROM prodguard_audit ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|row| serde_json::from_str(&row.get::<_, String>(0)).unwrap())
        .collect()
}

fn file_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn kinds(records: &[serde_json::Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect()
}

/// A URL of a loopback port where nothing listens (policies refuse
/// passwords in URLs; the ledger test sets one directly, as code could).
fn closed_url(password: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("postgresql://fleet{password}@127.0.0.1:{port}/fleet?connect_timeout=5")
}

/// `url` with `password` inserted for its user (the test cluster trusts
/// local connections, so any password connects).
fn with_password(url: &str, password: &str) -> String {
    let at = url.find('@').unwrap();
    format!("{}:{password}{}", &url[..at], &url[at..])
}

#[test]
fn the_policy_sink_takes_every_record_and_the_log_keeps_a_copy() {
    let url = fresh_db("policy_sink");
    let dir = temp_dir("sink");
    let log = dir.path().join("audit.jsonl");
    let policy = policy(&format!(
        "[audit]\nsink = {url:?}\nlog = {:?}\n",
        log.display().to_string()
    ));
    let guard = guard(policy, "production", "ana").build().unwrap();
    let ran = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| 7);
    assert_eq!(ran, Ok(7));

    let shared = trail(&url);
    assert_eq!(kinds(&shared), ["intent", "outcome"]);
    assert_eq!(shared[0]["op"]["target"], "orders");
    assert!(
        verify(&PgServer::parse(&url).unwrap(), None)
            .unwrap()
            .intact()
    );
    // The local copy holds the same events, in its own chain.
    let local = file_records(&log);
    assert_eq!(kinds(&local), ["intent", "outcome"]);
    assert_eq!(local[0]["attempt_id"], shared[0]["attempt_id"]);
    assert_eq!(local[1]["outcome"]["status"], "ok");
    assert!(verify_file(&log, None).unwrap().intact());
}

#[test]
fn the_policy_sink_alone_is_the_trail() {
    let url = fresh_db("policy_sink_alone");
    let policy = policy(&format!("[audit]\nsink = {url:?}\n"));
    assert_eq!(prodguard::config::audit_log_path(&policy), None);
    let guard = guard(policy, "production", "ana").build().unwrap();
    guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
        .unwrap();
    guard
        .operation("db.seed")
        .target("orders")
        .run_infallible(|| ())
        .unwrap();
    assert_eq!(
        kinds(&trail(&url)),
        ["intent", "outcome", "intent", "outcome"]
    );
}

#[test]
fn an_unreachable_policy_sink_refuses_with_123_naming_the_server() {
    let url = closed_url("");
    let dir = temp_dir("sink-down");
    let log = dir.path().join("audit.jsonl");
    let guard = guard(
        policy(&format!("[audit]\nsink = {url:?}\n")),
        "production",
        "ana",
    )
    .audit_log(&log)
    .build()
    .unwrap();
    let text = refused(&guard, 123);
    assert!(text.contains("postgresql://fleet@127.0.0.1:"), "{text}");
    // The local copy still learns of the refusal; no intent claims a run.
    let local = file_records(&log);
    assert_eq!(kinds(&local), ["refusal"]);
    assert_eq!(local[0]["decision"]["exit_code"], 123);
}

/// A policy whose `db.*` rule in production requires `require` with an
/// approval token as the confirmation, spending tokens in the ledger at
/// `ledger`, and approver bob's fresh key file.
fn approval_policy(dir: &Path, require: &str, ledger: &str) -> (Policy, PathBuf) {
    let (approvers, key_file) = approver_bob(dir);
    let text = format!(
        "[approval]\n{approvers}ledger = {ledger:?}\n\n[[rule]]\noperations = [\"db.*\"]\n\
         tiers = [\"production\"]\nrequire = {require}\nconfirm = {{ mode = \"approval\" }}\n"
    );
    (
        Policy::parse_toml(&text, "prodguard.toml").unwrap(),
        key_file,
    )
}

#[test]
fn the_policy_ledger_makes_a_token_single_use_across_hosts_with_their_own_logs() {
    let url = fresh_db("policy_ledger");
    let dir = temp_dir("ledger");
    let (policy, key_file) = approval_policy(dir.path(), "[\"confirm\", \"audit\"]", &url);
    let token = issue_token(&key_file, "db.migrate", "orders", &url);
    let host = |log: &str| {
        guard(policy.clone(), "production", "ana")
            .audit_log(dir.path().join(log))
            .approval(token.clone())
            .build()
            .unwrap()
    };
    let (host_a, host_b) = (host("a.jsonl"), host("b.jsonl"));
    host_a
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
        .unwrap();
    let err = refused(&host_b, 121);
    assert!(err.contains("spent by host"), "{err}");
    // Host B's own log records the refusal, not an intent.
    assert_eq!(
        kinds(&file_records(&dir.path().join("b.jsonl"))),
        ["refusal"]
    );
    let spent: i64 = connect(&url)
        .query_one("SELECT count(*) FROM prodguard_spent", &[])
        .unwrap()
        .get(0);
    assert_eq!(spent, 1);
}

#[test]
fn an_approval_whose_ledger_is_down_never_runs_even_without_an_audit_requirement() {
    let dir = temp_dir("ledger-down");
    // Only a confirmation is required: a plain append failure would not
    // stop this operation, but an approval must never be used unrecorded.
    // A policy cannot hold a password (validation refuses one), so the
    // URL has none; pg_unreachable.rs checks that a password given to the
    // runtime never shows in its errors.
    let ledger = closed_url("");
    let (policy, key_file) = approval_policy(dir.path(), "[\"confirm\"]", &ledger);
    let token = issue_token(&key_file, "db.migrate", "orders", &ledger);
    let guard = guard(policy, "production", "ana")
        .audit_log(dir.path().join("audit.jsonl"))
        .approval(token)
        .build()
        .unwrap();
    let err = refused(&guard, 123);
    assert!(err.contains("127.0.0.1"), "{err}");
}

#[test]
fn the_policy_lock_refuses_a_second_run_naming_the_holder() {
    let url = fresh_db("policy_lock");
    let dir = temp_dir("lock");
    let policy = policy(&format!("[fleet]\nlock = {url:?}\n"));
    let ana = guard(policy.clone(), "production", "ana")
        .audit_log(dir.path().join("ana.jsonl"))
        .build()
        .unwrap();
    let bob = guard(policy, "production", "bob")
        .audit_log(dir.path().join("bob.jsonl"))
        .build()
        .unwrap();
    let permit = ana
        .operation("db.migrate")
        .target("orders")
        .begin()
        .unwrap();
    let text = refused(&bob, 75);
    assert!(text.contains("already running"), "{text}");
    assert!(text.contains("ana@"), "names the holder: {text}");
    // The refusal is in bob's log like any other.
    let refused = file_records(&dir.path().join("bob.jsonl"));
    assert_eq!(kinds(&refused), ["refusal"]);
    assert_eq!(refused[0]["decision"]["exit_code"], 75);
    // Another target, or the same one once ana is done, runs.
    bob.operation("db.migrate")
        .target("users")
        .run_infallible(|| ())
        .unwrap();
    permit.finish(Ok(()));
    bob.operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
        .unwrap();
}

#[test]
fn with_wait_the_second_run_queues_and_the_lock_covers_intent_to_outcome() {
    let url = fresh_db("policy_lock_wait");
    let policy = policy(&format!(
        "[audit]\nsink = {url:?}\n\n[fleet]\nlock = {url:?}\nwait = \"30s\"\n"
    ));
    let ana = guard(policy.clone(), "production", "ana").build().unwrap();
    let bob = guard(policy, "production", "bob").build().unwrap();
    let permit = ana
        .operation("db.migrate")
        .target("orders")
        .begin()
        .unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let started = Instant::now();
            bob.operation("db.migrate")
                .target("orders")
                .run_infallible(|| ())
                .unwrap();
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(700));
        permit.finish(Ok(()));
        let waited = waiter.join().unwrap();
        assert!(
            waited >= Duration::from_millis(600),
            "bob waited {waited:?}"
        );
    });
    // ana's outcome is in the trail before bob's intent: the lock was held
    // from before the intent until after the outcome.
    let records = trail(&url);
    let order: Vec<(String, &str)> = records
        .iter()
        .map(|r| {
            (
                r["actor"]["user"].as_str().unwrap().to_owned(),
                r["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("ana".to_owned(), "intent"),
            ("ana".to_owned(), "outcome"),
            ("bob".to_owned(), "intent"),
            ("bob".to_owned(), "outcome"),
        ]
    );
}

#[test]
fn one_database_is_one_lock_however_its_url_is_spelled() {
    let url = fresh_db("policy_lock_spelling");
    let policy = policy(&format!("[fleet]\nlock = {url:?}\n"));
    let target = fresh_db("policy_lock_target");
    // The same database: another scheme, an explicit port, a parameter.
    let (_, rest) = target.split_once("://").unwrap();
    let respelled = format!("postgres://{rest}?application_name=other");
    let ana = guard(policy.clone(), "production", "ana").build().unwrap();
    let bob = guard(policy, "production", "bob").build().unwrap();
    let permit = ana.operation("db.migrate").target(&target).begin().unwrap();
    let err = bob
        .operation("db.migrate")
        .target(&respelled)
        .run_infallible(|| ())
        .unwrap_err();
    assert_eq!(err.exit_code(), 75, "{err}");
    assert!(matches!(err, prodguard::GuardError::LockHeld(_)), "{err}");
    permit.finish(Ok(()));
}

#[test]
fn a_lock_lost_while_confirming_refuses_before_the_intent() {
    let url = fresh_db("policy_lock_lost");
    let dir = temp_dir("lock-lost");
    let log = dir.path().join("audit.jsonl");
    let policy = policy(&format!("[fleet]\nlock = {url:?}\n"));
    let lock_url = url.clone();
    let guard = guard(policy, "production", "ana")
        .audit_log(&log)
        // While the person types, the lease runs out (the host was cut off
        // from the server, or paused) and another host takes the lock.
        .confirmer(move |_: &Challenge| {
            connect(&lock_url)
                .execute("UPDATE prodguard_lease SET until = now()", &[])
                .unwrap();
            // Done by now or not, the lease is no longer ana's.
            drop(
                prodguard::pg::FleetLock::new(&lock_url)
                    .unwrap()
                    .acquire("db.migrate", "orders", None)
                    .unwrap(),
            );
            ConfirmationAnswer::Confirmed(ConfirmEvidence {
                method: "typed".into(),
                approver: None,
                token_id: None,
                exp: None,
                max_rows: None,
            })
        })
        .build()
        .unwrap();
    let err = refused(&guard, 123);
    assert!(err.contains("was lost"), "{err}");
    assert_eq!(kinds(&file_records(&log)), ["refusal"]);
}

#[test]
fn a_lease_lost_during_the_run_is_recorded_in_the_outcome() {
    let url = fresh_db("policy_lock_lost_mid_run");
    let policy = policy(&format!(
        "[audit]\nsink = {url:?}\n\n[fleet]\nlock = {url:?}\n"
    ));
    let ana = guard(policy, "production", "ana").build().unwrap();
    let bob = prodguard::pg::FleetLock::new(&url).unwrap().holder("bob");
    let mut bobs = ana
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| {
            // Mid-run the lease runs out (ana's host was paused, or cut off
            // from the server) and bob takes the lock.
            connect(&url)
                .execute("UPDATE prodguard_lease SET until = now()", &[])
                .unwrap();
            bob.acquire("db.migrate", "orders", None).unwrap()
        })
        .unwrap();
    let records = trail(&url);
    assert_eq!(kinds(&records), ["intent", "outcome"]);
    let fence = records[0]["fence"].as_u64().unwrap();
    let outcome = &records[1]["outcome"];
    // It ran: the status is its own; the lock's loss is beside it.
    assert_eq!(outcome["status"], "ok");
    let lost = outcome["lock_lost"].as_str().unwrap();
    assert!(
        lost.contains(&format!(
            "lease on `db.migrate` on `orders` (fence {fence}) was lost during the run"
        )),
        "{lost}"
    );
    assert!(lost.contains("another host may have run it"), "{lost}");
    // Ana's release left bob's lease alone.
    assert_eq!(bobs.fence(), fence + 1);
    assert!(bobs.still_held().unwrap());
    bobs.release().unwrap();
    // A run whose lease held says nothing of it.
    ana.operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
        .unwrap();
    let records = trail(&url);
    assert_eq!(records.len(), 4);
    assert!(
        records[3]["outcome"].get("lock_lost").is_none(),
        "{}",
        records[3]
    );
}

#[test]
fn a_lease_the_server_cannot_confirm_is_called_unconfirmed_not_lost() {
    let url = fresh_db("policy_lock_unconfirmed");
    PgServer::parse(&url).unwrap().init_schema().unwrap();
    // The lock is taken as a role of its own, whose right to update the
    // lease is then taken away: every check of the lease fails.
    let role = format!("pgtest_unconfirmed_{}", std::process::id());
    let _cleanup = DropWithRole {
        url: url.clone(),
        role: role.clone(),
    };
    let mut admin = connect(&url);
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;
             GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role};"
        ))
        .unwrap();
    let role_url = url.replacen("postgres@", &format!("{role}@"), 1);
    let dir = temp_dir("lock-unconfirmed");
    let log = dir.path().join("audit.jsonl");
    let policy = policy(&format!("[fleet]\nlock = {role_url:?}\n"));
    let revoke = format!("REVOKE UPDATE ON prodguard_lease FROM {role}");
    let revoke_url = url.clone();
    let confirming = guard(policy.clone(), "production", "ana")
        .audit_log(&log)
        .confirmer(move |_: &Challenge| {
            connect(&revoke_url).batch_execute(&revoke).unwrap();
            ConfirmationAnswer::Confirmed(ConfirmEvidence {
                method: "typed".into(),
                approver: None,
                token_id: None,
                exp: None,
                max_rows: None,
            })
        })
        .build()
        .unwrap();
    let err = refused(&confirming, 123);
    assert!(
        err.contains("could not be confirmed as still held before the operation started"),
        "{err}"
    );
    assert!(err.contains("permission denied"), "{err}");
    assert!(!err.contains("was lost"), "{err}");
    // The same during the run: the outcome says the lease is unconfirmed.
    // (The refused run could not end its lease either: ended here.)
    admin
        .batch_execute(&format!(
            "GRANT UPDATE ON prodguard_lease TO {role}; UPDATE prodguard_lease SET until = now()"
        ))
        .unwrap();
    let running = guard(policy, "production", "ana")
        .audit_log(&log)
        .build()
        .unwrap();
    running
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| {
            admin
                .batch_execute(&format!("REVOKE UPDATE ON prodguard_lease FROM {role}"))
                .unwrap();
        })
        .unwrap();
    let outcome = file_records(&log).pop().unwrap();
    let unconfirmed = outcome["outcome"]["lock_lost"].as_str().unwrap();
    assert!(
        unconfirmed.contains("could not be confirmed as held through the run"),
        "{unconfirmed}"
    );
    assert!(unconfirmed.contains("permission denied"), "{unconfirmed}");
}

/// Drops the database of `url` and then `role`, which has rights in it,
/// when the test ends, even by a panic.
struct DropWithRole {
    url: String,
    role: String,
}

impl Drop for DropWithRole {
    fn drop(&mut self) {
        let mut admin = connect(&pg_common::base_url());
        let db = self.url.rsplit('/').next().unwrap_or_default();
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.role));
    }
}

#[test]
fn an_unreachable_lock_server_refuses_with_123_and_free_operations_take_no_lock() {
    let dir = temp_dir("lock-down");
    let policy = policy(&format!("[fleet]\nlock = {:?}\n", closed_url("")));
    let production = guard(policy.clone(), "production", "ana")
        .audit_log(dir.path().join("audit.jsonl"))
        .build()
        .unwrap();
    let err = refused(&production, 123);
    assert!(err.contains("[fleet] lock"), "{err}");
    assert!(err.contains("postgresql://fleet@127.0.0.1:"), "{err}");
    // In development the rule requires nothing, so no lock is taken.
    let development = guard(policy, "development", "ana")
        .audit_log(dir.path().join("audit.jsonl"))
        .build()
        .unwrap();
    assert_eq!(
        development
            .operation("db.migrate")
            .target("orders")
            .run_infallible(|| 1),
        Ok(1)
    );
}

#[test]
fn a_database_url_password_never_reaches_a_record_or_a_message() {
    let url = fresh_db("policy_target");
    let dir = temp_dir("target");
    let log = dir.path().join("audit.jsonl");
    prodguard::pg::write_stamp(
        &url,
        &Stamp {
            environment: "production".into(),
            tier: Tier::Production,
            stamped_at: None,
            stamped_by: None,
        },
    )
    .unwrap();
    let secret = with_password(&url, "hunter2");
    let policy = policy(&format!("[audit]\nlog = {:?}\n", log.display().to_string()));
    // Production: the stamp (read with the password) agrees, so it runs.
    let production = guard(policy.clone(), "production", "ana").build().unwrap();
    production
        .operation("db.migrate")
        .target(&secret)
        .run_infallible(|| ())
        .unwrap();
    // Staging: the stamp says production, so 124 — the stamp was read.
    let staging = guard(policy, "staging", "ana").build().unwrap();
    let err = staging
        .operation("db.migrate")
        .target(&secret)
        .run_infallible(|| ())
        .unwrap_err();
    assert!(matches!(err, GuardError::EnvironmentMismatch(_)), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    let records = file_records(&log);
    assert_eq!(kinds(&records), ["intent", "outcome", "refusal"]);
    assert_eq!(records[0]["op"]["target"], url.as_str());
}
