//! A schema migration on a real SQLite database, run through prodguard.
//!
//! ```text
//! APP_ENV=development cargo run --example guarded_migration    # runs, audited
//! APP_ENV=production  cargo run --example guarded_migration    # backup + typed confirmation
//! ```
//!
//! The database, its backups and the audit log live in `./prodguard-demo/`
//! (or the directory given as the first argument). In a protected
//! environment the guard takes an online backup of the database, checks it
//! with `PRAGMA integrity_check`, asks you to type the database's name at the
//! terminal, and writes the evidence to the audit log before migrating.
//! Without a terminal it refuses with exit code 121 and changes nothing.
#![allow(clippy::print_stdout, clippy::print_stderr)] // an example talks to its user

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use prodguard::backup::{BackupError, BackupEvidence, BackupRequest, sha256_file};
use prodguard::{Guard, Policy, RunError};
use rusqlite::{Connection, backup::Backup};

/// Migrations and deletes in protected tiers need a backup, a typed
/// confirmation and the audit log; drops are never done by this program.
const POLICY: &str = r#"
[[rule]]
name = "migrations need a verified backup"
operations = ["db.migrate", "db.delete.*"]
tiers = ["production", "unknown"]
require = ["confirm", "backup", "audit"]
confirm = { mode = "typed" }
backup = { provider = "program" }            # the online backup below

[[rule]]
name = "no drops from an application"
operations = ["db.drop", "db.drop.*"]
tiers = ["production"]
deny = "dropping a production database is never done by an application"
"#;

const TARGET: &str = "orders";

fn main() -> ExitCode {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "prodguard-demo".into()),
    );
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Guard(e)) => {
            eprintln!("guarded_migration: {e}");
            ExitCode::from(u8::try_from(e.exit_code().code()).unwrap_or(1))
        }
        Err(Failure::Other(e)) => {
            eprintln!("guarded_migration: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Guard(prodguard::GuardError),
    Other(String),
}

impl From<prodguard::GuardError> for Failure {
    fn from(e: prodguard::GuardError) -> Self {
        Failure::Guard(e)
    }
}

impl From<RunError<rusqlite::Error>> for Failure {
    fn from(e: RunError<rusqlite::Error>) -> Self {
        match e {
            RunError::Refused(e) => Failure::Guard(e),
            RunError::Failed(e) => e.into(),
        }
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Other(format!("sqlite: {e}"))
    }
}

fn run(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::Other(format!("{}: {e}", dir.display())))?;
    let db_path = dir.join(format!("{TARGET}.db"));
    let backups = dir.join("backups");
    let audit_log = std::env::var_os("PRODGUARD_AUDIT_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("audit.jsonl"));

    let db = Connection::open(&db_path)?;
    seed(&db)?;

    let policy = Policy::parse_toml(POLICY, "guarded_migration policy")
        .map_err(|e| Failure::Other(e.to_string()))?;
    let guard = Guard::builder()
        .policy(policy)
        .audit_log(&audit_log)
        .backup_provider(move |_: &BackupRequest| {
            online_backup(&db_path, &backups).map_err(BackupError::from)
        })
        .build()?;

    let d = guard.detection();
    println!(
        "environment: {} (tier {}, {}), decided by {}",
        d.environment,
        d.tier,
        if d.protected {
            "protected"
        } else {
            "not protected"
        },
        d.decided_by
    );

    let added = guard
        .operation("db.migrate")
        .target(TARGET)
        .run(|| migrate(&db))?;
    println!(
        "migration {}; audit log: {}",
        if added {
            "applied: orders.shipped_at added"
        } else {
            "already applied"
        },
        audit_log.display()
    );
    Ok(())
}

/// A small orders table with a few rows, created once.
fn seed(db: &Connection) -> rusqlite::Result<()> {
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, qty INTEGER NOT NULL);
         INSERT INTO orders (item, qty) SELECT 'widget', 3 WHERE NOT EXISTS (SELECT 1 FROM orders);
         INSERT INTO orders (item, qty) SELECT 'gadget', 1 WHERE (SELECT count(*) FROM orders) = 1;",
    )
}

/// Migration 1: orders gain a `shipped_at` column. Idempotent.
fn migrate(db: &Connection) -> rusqlite::Result<bool> {
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= 1 {
        return Ok(false);
    }
    db.execute_batch(
        "BEGIN;
         ALTER TABLE orders ADD COLUMN shipped_at TEXT;
         PRAGMA user_version = 1;
         COMMIT;",
    )?;
    Ok(true)
}

/// SQLite's online backup API into `backups/`, then `PRAGMA integrity_check`
/// on the copy; the evidence goes into the audit log's intent record.
fn online_backup(db_path: &Path, backups: &Path) -> Result<BackupEvidence, String> {
    std::fs::create_dir_all(backups).map_err(|e| format!("{}: {e}", backups.display()))?;
    let now = prodguard::facts::now();
    let copy_path = backups.join(format!("{TARGET}.{}.db", now.to_compact()));
    let source = Connection::open(db_path).map_err(|e| e.to_string())?;
    let mut copy = Connection::open(&copy_path).map_err(|e| e.to_string())?;
    Backup::new(&source, &mut copy)
        .and_then(|b| b.run_to_completion(64, std::time::Duration::ZERO, None))
        .map_err(|e| format!("online backup failed: {e}"))?;
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("integrity_check failed: {e}"))?;
    drop(copy);
    let (sha256, bytes) = sha256_file(&copy_path).map_err(|e| e.to_string())?;
    Ok(BackupEvidence {
        location: copy_path.to_string_lossy().into_owned(),
        sha256,
        bytes,
        created: now,
        verified: check == "ok",
        verification: Some(format!("PRAGMA integrity_check = {check}")),
    })
}
