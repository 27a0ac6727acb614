//! The sqlx example on a real SQLite file: pending migrations run as one
//! guarded batch; refused, nothing is applied.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

#[path = "../../../tests/support/prompt.rs"]
mod prompt;

/// Runs the example on `db` in a new session (no controlling terminal), or
/// through script(1) on a fresh pseudo-terminal typing `answer`.
fn run(dir: &Path, db: &Path, app_env: &str, answer: Option<&str>) -> Output {
    let example = env!("CARGO_BIN_EXE_prodguard-example-sqlx");
    let mut cmd = Command::new("setsid");
    cmd.arg("-w");
    match answer {
        Some(_) => cmd
            .args(["script", "-qec"])
            .arg(format!("{example} {}", db.display()))
            .arg("/dev/null"),
        None => cmd.arg(example).arg(db),
    };
    let child = cmd
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("APP_ENV", app_env)
        .env("PRODGUARD_AUDIT_LOG", dir.join("audit.jsonl"))
        .stdin(if answer.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    match answer {
        Some(answer) => prompt::type_when_asked(child, answer),
        None => child.wait_with_output().unwrap(),
    }
}

fn tables(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn new_db(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE settings (k TEXT PRIMARY KEY, v TEXT)")
        .unwrap();
    db
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn in_development_the_pending_migrations_run_as_one_recorded_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let out = run(dir.path(), &db, "development", None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("applied 2 migration(s)"),
        "{}",
        text(&out)
    );
    assert_eq!(
        tables(&db),
        ["_sqlx_migrations", "carts", "settings", "users"]
    );
    let trail = records(dir.path());
    assert_eq!(trail.len(), 2, "one intent, one outcome");
    let batch = trail[0]["op"]["batch"].as_array().unwrap();
    assert_eq!(batch[0]["name"], "20260101000000_users");
    assert_eq!(batch[1]["name"], "20260102000000_carts");
    // sqlx's checksum (SHA-384) is each step's fingerprint.
    assert_eq!(batch[0]["fingerprint"].as_str().unwrap().len(), 96);
    assert!(
        trail[0]["op"]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("batch:")
    );
    assert_eq!(trail[1]["outcome"]["status"], "ok");
    let again = run(dir.path(), &db, "development", None);
    assert!(
        text(&again).contains("nothing to migrate"),
        "{}",
        text(&again)
    );
    assert_eq!(
        records(dir.path()).len(),
        2,
        "nothing to guard, nothing recorded"
    );
}

#[test]
fn in_production_nobody_to_ask_means_nothing_is_applied_not_even_sqlx_s_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let before = std::fs::read(&db).unwrap();
    let out = run(dir.path(), &db, "production", None);
    assert_eq!(out.status.code(), Some(121), "{}", text(&out));
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database is untouched"
    );
    assert_eq!(records(dir.path())[0]["kind"], "refusal");
}

#[test]
fn in_production_one_typed_confirmation_lists_every_step_and_backs_up_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let out = run(dir.path(), &db, "production", Some(db.to_str().unwrap()));
    let screen = text(&out);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("1 of 2: 20260101000000_users"), "{screen}");
    assert!(screen.contains("2 of 2: 20260102000000_carts"), "{screen}");
    assert!(tables(&db).contains(&"carts".to_owned()));
    let records = records(dir.path());
    let backup = &records[0]["backup"];
    assert_eq!(backup["verified"], true, "{records:?}");
    // The backup is the database as it was: no migration in it.
    let copy = Path::new(backup["location"].as_str().unwrap());
    assert_eq!(tables(copy), ["settings"]);
    std::fs::remove_file(copy).ok();
}
