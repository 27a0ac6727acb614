//! The README's main job: `examples/guarded_migration.rs` on a real SQLite database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use prodguard::backup::sha256_file;
use rusqlite::Connection;

#[path = "../../../tests/support/prompt.rs"]
mod prompt;

use prompt::type_when_asked;

fn example_binary() -> PathBuf {
    // target/<profile>/deps/example-<hash> → target/<profile>/examples/guarded_migration
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/guarded_migration");
    assert!(
        path.exists(),
        "build the example first: cargo test (or cargo build --examples) ({})",
        path.display()
    );
    path
}

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-example-{name}-"))
        .tempdir()
        .unwrap()
}

/// Runs the example in a new session (no controlling terminal), optionally
/// through script(1) so it gets a fresh pseudo-terminal, typing `answer`.
fn run_example(dir: &Path, app_env: &str, answer: Option<&str>) -> Output {
    let example = example_binary();
    let demo = dir.join("demo");
    let mut cmd = Command::new("setsid");
    cmd.arg("-w");
    match answer {
        Some(_) => cmd
            .args(["script", "-qec"])
            .arg(format!("{} {}", example.display(), demo.display()))
            .arg("/dev/null"),
        None => cmd.arg(&example).arg(&demo),
    };
    let child = cmd
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("APP_ENV", app_env)
        .env("PRODGUARD_ACTOR", "ana")
        .stdin(if answer.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(answer) = answer {
        return type_when_asked(child, answer);
    }
    child.wait_with_output().unwrap()
}

fn has_shipped_at(db: &Path) -> bool {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info('orders')")
        .unwrap();
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    columns.iter().any(|c| c == "shipped_at")
}

fn records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("demo/audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn in_development_it_migrates_and_audits() {
    let dir = temp_dir("dev");
    let out = run_example(dir.path(), "development", None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(has_shipped_at(&dir.path().join("demo/orders.db")));
    let records = records(dir.path());
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["op"]["tier"], "development");
    assert!(
        records[0].get("backup").is_none(),
        "no backup needed in development"
    );
    // Idempotent: a second run finds it applied.
    let again = run_example(dir.path(), "development", None);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already applied"));
}

#[test]
fn in_production_without_a_terminal_it_refuses_and_changes_nothing() {
    let dir = temp_dir("prod-notty");
    let out = run_example(dir.path(), "production", None);
    assert_eq!(
        out.status.code(),
        Some(121),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!has_shipped_at(&dir.path().join("demo/orders.db")));
    assert!(
        !dir.path().join("demo/backups").exists(),
        "no backup before a confirmation"
    );
    let records = records(dir.path());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["kind"], "refusal");
}

#[test]
fn in_production_a_typed_confirmation_backs_up_first_and_records_the_evidence() {
    let dir = temp_dir("prod-typed");
    let db = dir.path().join("demo/orders.db");
    let out = run_example(dir.path(), "production", Some(db.to_str().unwrap()));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains(&format!("type the target's name `{}`", db.display())),
        "{screen}"
    );
    assert!(has_shipped_at(&dir.path().join("demo/orders.db")));

    let intent = &records(dir.path())[0];
    assert_eq!(intent["kind"], "intent");
    assert_eq!(intent["confirm"]["method"], "typed");
    let backup = &intent["backup"];
    let location = PathBuf::from(backup["location"].as_str().unwrap());
    let location = if location.is_absolute() {
        location
    } else {
        dir.path().join(location)
    };
    let (sha, bytes) = sha256_file(&location).unwrap();
    assert_eq!(
        backup["sha256"],
        sha.as_str(),
        "the record names the real backup"
    );
    assert_eq!(backup["bytes"], bytes);
    assert_eq!(backup["verified"], true);
    assert!(
        !has_shipped_at(&location),
        "the backup holds the state before the migration"
    );
    // The built-in SQLite provider made it, beside the audit log.
    assert!(
        location.starts_with(dir.path().join("demo/backups")),
        "{location:?}"
    );
    assert!(
        backup["verification"]
            .as_str()
            .unwrap()
            .contains("integrity_check")
    );
}

#[test]
fn in_production_a_wrong_name_refuses() {
    let dir = temp_dir("prod-wrong");
    let out = run_example(dir.path(), "production", Some("customers"));
    assert_eq!(out.status.code(), Some(121));
    assert!(!has_shipped_at(&dir.path().join("demo/orders.db")));
}
