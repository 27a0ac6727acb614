//! The Rust API end to end: real files, real shell commands, real audit log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use prodguard::backup::sha256_file;
use prodguard::{Guard, GuardError, Policy, RunError};
// Only `prodguard`: an embedder needs no other dependency.
use prodguard::backup::{BackupEvidence, BackupRequest};
use prodguard::confirm::{Challenge, ConfirmEvidence, ConfirmationAnswer};
use prodguard::{Actor, ActorKind, Facts, Timestamp};

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-guard-{name}-"))
        .tempdir()
        .unwrap()
}

fn facts(vars: &[(&str, &str)]) -> Facts {
    let mut facts = Facts::default();
    for (k, v) in vars {
        facts.env.insert((*k).into(), (*v).into());
    }
    facts
}

fn records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Writes `contents` to `path` and dates it `date` (YYYY-MM-DD) with touch(1).
fn write_dated(path: &Path, contents: impl AsRef<[u8]>, date: &str) {
    std::fs::write(path, contents).unwrap();
    let status = std::process::Command::new("touch")
        .args(["-d", date, path.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn ana() -> Actor {
    Actor {
        user: "ana".into(),
        kind: ActorKind::Human,
        account: None,
    }
}

fn typed(_: &Challenge) -> ConfirmationAnswer {
    ConfirmationAnswer::Confirmed(ConfirmEvidence {
        method: "typed".into(),
        approver: None,
        token_id: None,
        exp: None,
        max_rows: None,
    })
}

fn production_guard(dir: &Path, policy: Policy) -> prodguard::GuardBuilder {
    Guard::builder()
        .policy(policy)
        .facts(facts(&[("APP_ENV", "production")]))
        .actor(ana())
        .audit_log(dir.join("audit.jsonl"))
}

#[test]
fn a_confirmed_operation_runs_and_returns_its_value() {
    let dir = temp_dir("confirmed");
    let guard = production_guard(dir.path(), Policy::builtin_default())
        .confirmer(typed)
        .build()
        .unwrap();
    let value = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| 42)
        .unwrap();
    assert_eq!(value, 42);
    let records = records(&dir.path().join("audit.jsonl"));
    assert_eq!(records[0]["kind"], "intent");
    // The account that confirmed, not the label it goes by (`ana`).
    assert_eq!(
        records[0]["confirm"]["approver"],
        prodguard::facts::real_account().as_str(),
        "the actor confirmed"
    );
    assert_eq!(records[0]["actor"]["user"], "ana");
    assert_eq!(records[1]["outcome"]["status"], "ok");
}

#[test]
fn a_declined_confirmation_never_runs_the_operation() {
    let dir = temp_dir("declined");
    let guard = production_guard(dir.path(), Policy::builtin_default())
        .confirmer(|c: &Challenge| {
            ConfirmationAnswer::Declined(format!("typed `x`, expected `{}`", c.expected))
        })
        .build()
        .unwrap();
    let ran = AtomicBool::new(false);
    let err = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ran.store(true, Ordering::SeqCst))
        .unwrap_err();
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(err.exit_code(), 121);
    assert!(matches!(err, GuardError::NotConfirmed(_)));
    assert!(err.to_string().contains("expected `orders`"), "{err}");
    // Whoever answered had a terminal (or a prompt): told to answer again.
    let next = &err.denial().unwrap().next_step;
    assert!(
        next.starts_with("run it again and type `orders` when asked"),
        "{next}"
    );
    assert!(!next.contains("from a terminal"), "{next}");
    assert_eq!(
        records(&dir.path().join("audit.jsonl"))[0]["kind"],
        "refusal"
    );
}

#[test]
fn library_refusals_name_the_real_operation_and_no_cli_flag() {
    let dir = temp_dir("library-hints");
    let refuse = |guard: &Guard, target: Option<&str>| {
        let mut operation = guard.operation("db.delete.users");
        if let Some(target) = target {
            operation = operation.target(target);
        }
        operation
            .run_infallible(|| panic!("must not run"))
            .unwrap_err()
            .to_string()
    };
    let nobody = |_: &Challenge| ConfirmationAnswer::Unavailable("nobody to ask".into());
    let guard = production_guard(dir.path(), Policy::builtin_default())
        .confirmer(nobody)
        .build()
        .unwrap();
    // The approver's command with the real, quoted operation and target.
    let said = refuse(&guard, Some("my orders"));
    assert!(
        said.contains("`prodguard approve --key FILE --op db.delete.users --target 'my orders'`"),
        "{said}"
    );
    // Without a target there is no token to get.
    let said = refuse(&guard, None);
    assert!(!said.contains("approval token"), "{said}");
    assert!(said.contains("type `production` when asked"), "{said}");
    // Outside the approver's command, no option of any command.
    let approve = "`prodguard approve --key FILE --op db.delete.users --target orders`";
    for said in [refuse(&guard, Some("orders")), refuse(&guard, None)] {
        let rest = said.replace(approve, "");
        assert!(!rest.contains("--") && !rest.contains('…'), "{said}");
    }
    // Break-glass without a target: the library's words, not the CLI's.
    let err = guard
        .operation("db.delete.users")
        .break_glass("INC-1234: orders table locked")
        .run_infallible(|| panic!("must not run"))
        .unwrap_err();
    assert!(!err.to_string().contains("--"), "{err}");

    // Nothing declares the environment: how to declare it comes first.
    let guard = Guard::builder()
        .policy(Policy::builtin_default())
        .facts(Facts::default())
        .actor(ana())
        .audit_log(dir.path().join("audit.jsonl"))
        .confirmer(nobody)
        .build()
        .unwrap();
    let err = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| panic!("must not run"))
        .unwrap_err();
    let next = &err.denial().unwrap().next_step;
    assert!(
        next.starts_with(
            "nothing declares the environment: set PRODGUARD_ENV (e.g. PRODGUARD_ENV=development)"
        ),
        "{next}"
    );
}

fn backup_policy(backup: &str) -> Policy {
    Policy::parse_toml(
        &format!(
            "[[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\nrequire = [\"backup\", \"audit\"]\nbackup = {backup}\n"
        ),
        "test.toml",
    )
    .unwrap()
}

#[test]
fn a_command_backup_is_hashed_verified_and_recorded_before_the_operation() {
    let dir = temp_dir("backup");
    let db = dir.path().join("orders.db");
    std::fs::write(&db, b"precious rows").unwrap();
    let backup_path = dir.path().join("copy.bak");
    let policy = backup_policy(&format!(
        "{{ command = \"cp {{target}} {{path}}\", verify = \"test -s {{path}}\", path = \"{}\" }}",
        backup_path.display()
    ));
    let guard = production_guard(dir.path(), policy).build().unwrap();
    let seen_backup = guard
        .operation("db.delete.rows")
        .target(db.to_str().unwrap())
        .run_infallible(|| backup_path.exists())
        .unwrap();
    assert!(seen_backup, "the backup existed before the operation ran");
    let (sha, bytes) = sha256_file(&backup_path).unwrap();
    let intent = &records(&dir.path().join("audit.jsonl"))[0];
    assert_eq!(intent["backup"]["sha256"], sha.as_str());
    assert_eq!(intent["backup"]["bytes"], bytes);
    assert_eq!(intent["backup"]["verified"], true);
    assert_eq!(intent["backup"]["location"], backup_path.to_str().unwrap());
}

#[test]
fn failed_or_unverified_backups_refuse_with_122() {
    let dir = temp_dir("badbackup");
    let db = dir.path().join("orders.db");
    std::fs::write(&db, b"rows").unwrap();
    for (spec, needle) in [
        (
            "{ command = \"echo disk on fire >&2; exit 3\", verify = \"true\" }",
            "disk on fire",
        ),
        ("{ command = \"true\", verify = \"true\" }", "no backup at"),
        (
            "{ command = \"cp {target} {path}\", verify = \"false\" }",
            "did not verify",
        ),
        (
            "{ provider = \"program\" }",
            "registered no backup provider",
        ),
        (
            "{ path = \"/nonexistent/backup.dump\", max_age = \"1h\" }",
            "no backup at",
        ),
    ] {
        let guard = production_guard(dir.path(), backup_policy(spec))
            .build()
            .unwrap();
        let ran = AtomicBool::new(false);
        let err = guard
            .operation("db.migrate")
            .target(db.to_str().unwrap())
            .run_infallible(|| ran.store(true, Ordering::SeqCst))
            .unwrap_err();
        assert_eq!(err.exit_code(), 122, "{spec}: {err}");
        assert!(err.to_string().contains(needle), "{spec}: {err}");
        assert!(
            !ran.load(Ordering::SeqCst),
            "{spec}: the operation must not run"
        );
    }
}

#[test]
fn a_stale_existing_backup_refuses_and_a_program_provider_satisfies() {
    let dir = temp_dir("program");
    let guard = production_guard(dir.path(), backup_policy("{ provider = \"program\" }"))
        .backup_provider(|_: &BackupRequest| {
            Ok(BackupEvidence {
                location: "s3://backups/orders.dump".into(),
                sha256: "cd".repeat(32),
                bytes: 99,
                created: prodguard::facts::now(),
                verified: true,
                verification: Some("pg_restore --list".into()),
            })
        })
        .build()
        .unwrap();
    guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
        .unwrap();
    assert_eq!(
        records(&dir.path().join("audit.jsonl"))[0]["backup"]["location"],
        "s3://backups/orders.dump"
    );

    let old = dir.path().join("old.dump");
    std::fs::write(&old, b"x").unwrap();
    let guard = production_guard(
        dir.path(),
        backup_policy(&format!(
            "{{ path = \"{}\", max_age = \"1s\" }}",
            old.display()
        )),
    )
    .build()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let err = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
        .unwrap_err();
    assert_eq!(err.exit_code(), 122);
    assert!(err.to_string().contains("accepts at most 1s"), "{err}");
}

#[test]
fn a_failing_operation_is_recorded_with_its_error() {
    let dir = temp_dir("failing");
    let guard = production_guard(dir.path(), Policy::builtin_default())
        .confirmer(typed)
        .build()
        .unwrap();
    let result = guard
        .operation("db.migrate")
        .target("orders")
        .run(|| Err::<(), _>("duplicate column shipped_at"));
    assert!(matches!(
        result,
        Err(RunError::Failed("duplicate column shipped_at"))
    ));
    let outcome = &records(&dir.path().join("audit.jsonl"))[1]["outcome"];
    assert_eq!(outcome["status"], "failed");
    assert_eq!(outcome["error"], "duplicate column shipped_at");
}

#[test]
fn a_panicking_operation_is_recorded_and_the_panic_continues() {
    let dir = temp_dir("panic");
    let guard = production_guard(dir.path(), Policy::builtin_default())
        .confirmer(typed)
        .build()
        .unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        guard
            .operation("db.migrate")
            .target("orders")
            .run_infallible(|| panic!("boom"))
    }));
    assert!(caught.is_err(), "the panic reaches the caller");
    assert_eq!(
        records(&dir.path().join("audit.jsonl"))[1]["outcome"]["status"],
        "panicked"
    );
}

#[test]
fn a_dropped_permit_records_an_abandoned_outcome() {
    let dir = temp_dir("abandoned");
    let guard = production_guard(dir.path(), Policy::builtin_default())
        .confirmer(typed)
        .build()
        .unwrap();
    let permit = guard
        .operation("db.migrate")
        .target("orders")
        .begin()
        .unwrap();
    drop(permit);
    let records = records(&dir.path().join("audit.jsonl"));
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["outcome"]["status"], "abandoned");
}

#[test]
fn no_audit_log_where_audit_is_required_refuses_with_123() {
    let dir = temp_dir("noaudit");
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let guard = Guard::builder()
        .policy(Policy::builtin_default())
        .facts(facts(&[("APP_ENV", "production")]))
        .actor(ana())
        .confirmer(typed)
        .audit_log(dir.path().join("file").join("audit.jsonl"))
        .build()
        .unwrap();
    let ran = AtomicBool::new(false);
    let err = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ran.store(true, Ordering::SeqCst))
        .unwrap_err();
    assert_eq!(err.exit_code(), 123, "{err}");
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn a_missing_seal_key_refuses_with_123_before_anyone_is_asked_and_the_check_agrees() {
    let dir = temp_dir("nosealkey");
    let policy = Policy::parse_toml(
        &format!(
            "[audit]\nseal_key_file = \"{}\"\n\n[[rule]]\noperations = [\"*\"]\n\
             tiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\n",
            dir.path().join("missing.key").display()
        ),
        "t.toml",
    )
    .unwrap();
    let asked = std::sync::Arc::new(AtomicBool::new(false));
    let asked_too = asked.clone();
    let guard = production_guard(dir.path(), policy)
        .confirmer(move |c: &Challenge| {
            asked_too.store(true, Ordering::SeqCst);
            typed(c)
        })
        .build()
        .unwrap();
    let op = prodguard::Operation::new("db.migrate").with_target("orders");
    let check = guard.check(&op);
    assert_eq!(check.exit_code, 123);
    let refusal = check.refusal.unwrap();
    assert!(refusal.missing.contains("seal-init"), "{}", refusal.missing);
    assert!(records(&dir.path().join("audit.jsonl")).is_empty());
    let err = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
        .unwrap_err();
    assert_eq!(err.exit_code(), 123, "{err}");
    assert!(!asked.load(Ordering::SeqCst), "nobody is asked first");
}

#[test]
fn a_deny_rule_refuses_with_120_and_the_check_agrees() {
    let dir = temp_dir("deny");
    let policy = Policy::parse_toml(
        "[[rule]]\noperations = [\"db.drop\"]\ntiers = [\"production\"]\ndeny = \"not from an app\"\n",
        "t.toml",
    )
    .unwrap();
    let guard = production_guard(dir.path(), policy).build().unwrap();
    let op = prodguard::Operation::new("db.drop").with_target("orders");
    assert_eq!(guard.check(&op).exit_code, 120);
    let err = guard
        .operation("db.drop")
        .target("orders")
        .run_infallible(|| ())
        .unwrap_err();
    assert!(matches!(err, GuardError::Denied(_)), "{err}");
}

#[test]
fn development_runs_without_asking() {
    let dir = temp_dir("dev");
    let guard = Guard::builder()
        .policy(Policy::builtin_default())
        .facts(facts(&[("APP_ENV", "development")]))
        .confirmer(|_: &Challenge| -> ConfirmationAnswer {
            panic!("nobody is asked in development")
        })
        .audit_log(dir.path().join("audit.jsonl"))
        .build()
        .unwrap();
    assert!(!guard.detection().protected);
    guard.operation("db.migrate").run_infallible(|| ()).unwrap();
    assert_eq!(
        records(&dir.path().join("audit.jsonl")).len(),
        2,
        "still audited"
    );
}

#[test]
fn an_explicit_environment_cannot_downgrade_a_declared_production() {
    let guard = Guard::builder()
        .policy(Policy::builtin_default())
        .facts(facts(&[("APP_ENV", "production")]))
        .environment("development")
        .build()
        .unwrap();
    assert!(guard.detection().protected);
    assert_eq!(guard.detection().conflicts.len(), 1);
}

#[test]
fn timestamps_in_records_are_rfc3339() {
    let dir = temp_dir("ts");
    let guard = production_guard(dir.path(), Policy::builtin_default())
        .confirmer(typed)
        .build()
        .unwrap();
    guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
        .unwrap();
    let ts = records(&dir.path().join("audit.jsonl"))[0]["ts"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(Timestamp::parse_rfc3339(&ts).is_some(), "{ts}");
}

/// `is_production()` reads the real process once; run in a child process
/// with a known environment.
#[test]
fn is_production_reads_the_process_environment() {
    if std::env::var_os("PRODGUARD_TEST_CHILD").is_some() {
        return;
    }
    for (vars, expected) in [
        (vec![("APP_ENV", "production")], "true env:APP_ENV"),
        (
            vec![("PRODGUARD_ENV", "staging")],
            "false env:PRODGUARD_ENV",
        ),
        (vec![], "true default"),
    ] {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "child_reports_detection",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env("PRODGUARD_TEST_CHILD", "1")
        .current_dir(std::env::temp_dir());
        for (k, v) in &vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(
            stdout.contains(&format!("DETECTED {expected}")),
            "{vars:?}: {stdout}"
        );
    }
}

#[test]
fn child_reports_detection() {
    if std::env::var_os("PRODGUARD_TEST_CHILD").is_none() {
        return;
    }
    let first = prodguard::detect();
    let again = prodguard::detect();
    assert!(std::ptr::eq(first, again), "cached once per process");
    println!(
        "DETECTED {} {}",
        prodguard::is_production(),
        first.decided_by
    );
}

#[test]
fn a_backup_command_that_leaves_an_old_file_is_no_evidence() {
    let dir = temp_dir("stale-command");
    let old = dir.path().join("old.bak");
    write_dated(&old, b"last year's rows", "2020-01-01");
    let policy = backup_policy(&format!(
        "{{ command = \"true\", verify = \"test -s {{path}}\", path = \"{}\" }}",
        old.display()
    ));
    let guard = production_guard(dir.path(), policy).build().unwrap();
    let err = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
        .unwrap_err();
    assert_eq!(err.exit_code(), 122, "{err}");
    assert!(err.to_string().contains("before the command ran"), "{err}");
}

#[test]
fn an_existing_backup_dated_in_the_future_is_refused() {
    let dir = temp_dir("future");
    let file = dir.path().join("future.dump");
    write_dated(&file, b"rows", "2035-01-01");
    let policy = backup_policy(&format!(
        "{{ path = \"{}\", max_age = \"1h\" }}",
        file.display()
    ));
    let guard = production_guard(dir.path(), policy).build().unwrap();
    let err = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
        .unwrap_err();
    assert_eq!(err.exit_code(), 122, "{err}");
    assert!(err.to_string().contains("in the future"), "{err}");
}

#[test]
fn a_recent_backup_may_be_named_by_a_glob_and_the_newest_counts() {
    let dir = temp_dir("glob");
    for (name, date) in [
        ("orders-1.dump", "2020-01-01"),
        ("orders-2.dump", "2020-06-01"),
    ] {
        write_dated(&dir.path().join(name), name, date);
    }
    let spec = format!(
        "{{ path = \"{}/orders-*.dump\", max_age = \"1h\", verify = \"test -s {{path}}\" }}",
        dir.path().display()
    );
    let guard = production_guard(dir.path(), backup_policy(&spec))
        .build()
        .unwrap();
    let err = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
        .unwrap_err();
    assert_eq!(err.exit_code(), 122);
    assert!(
        err.to_string().contains("orders-2.dump"),
        "the newest is judged: {err}"
    );
    std::fs::write(dir.path().join("orders-3.dump"), b"fresh").unwrap();
    guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
        .unwrap();
    let intent = records(&dir.path().join("audit.jsonl"))
        .into_iter()
        .find(|r| r["kind"] == "intent")
        .unwrap();
    assert!(
        intent["backup"]["location"]
            .as_str()
            .unwrap()
            .ends_with("orders-3.dump")
    );
}

#[test]
fn an_agent_is_never_asked_to_confirm_and_says_a_person_must_approve() {
    let dir = temp_dir("agent");
    let asked = std::sync::Arc::new(AtomicBool::new(false));
    let seen = asked.clone();
    let guard = production_guard(dir.path(), Policy::builtin_default())
        .actor(Actor {
            kind: ActorKind::Agent,
            ..ana()
        })
        .confirmer(move |c: &Challenge| {
            seen.store(true, Ordering::SeqCst);
            typed(c)
        })
        .build()
        .unwrap();
    let err = guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| panic!("must not run"))
        .unwrap_err();
    let GuardError::NotConfirmed(denial) = &err else {
        panic!("{err}")
    };
    assert!(!asked.load(Ordering::SeqCst), "the confirmer was asked");
    assert!(
        denial.missing.contains("AI agent cannot confirm by typing")
            && denial.missing.contains("prodguard approve"),
        "{denial}"
    );
    // A library's refusal names the approver's real command, and no CLI flag
    // of the run's: how the token reaches this program is the program's.
    let said = err.to_string();
    assert!(
        said.contains("`prodguard approve --key FILE --op db.migrate --target orders`"),
        "{said}"
    );
    assert!(
        !said.contains("--approval") && !said.contains('…'),
        "{said}"
    );
    let records = records(&dir.path().join("audit.jsonl"));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["kind"], "refusal");
    assert!(records[0]["confirm"].is_null(), "{}", records[0]);
}
