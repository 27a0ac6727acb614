//! A schema migration on a real SQLite database, run through prodguard.
//!
//! ```text
//! APP_ENV=development cargo run --example guarded_migration    # runs, audited
//! APP_ENV=production  cargo run --example guarded_migration    # backup + typed confirmation
//! ```
//!
//! The database, its backups and the audit log live in `./prodguard-demo/`
//! (or the directory given as the first argument). In a protected
//! environment the guard asks you to type the database's path at the
//! terminal, takes an online backup of it with the built-in SQLite provider
//! (checked with `PRAGMA integrity_check`), and writes the evidence to the
//! audit log before migrating. Without a terminal it refuses with exit code
//! 121 and changes nothing.
#![allow(clippy::print_stdout, clippy::print_stderr)] // an example talks to its user

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use prodguard::{Guard, Policy, RunError};
use rusqlite::Connection;

/// Migrations and deletes in protected tiers need a backup, a typed
/// confirmation and the audit log; drops are never done by this program.
const POLICY: &str = r#"
[[rule]]
name = "migrations need a verified backup"
operations = ["db.migrate", "db.delete.*"]
tiers = ["production", "unknown"]
require = ["confirm", "backup", "audit"]
confirm = { mode = "typed" }
backup = { provider = "sqlite" }             # SQLite's online backup, then PRAGMA integrity_check

[[rule]]
name = "no drops from an application"
operations = ["db.drop", "db.drop.*"]
tiers = ["production"]
deny = "dropping a production database is never done by an application"
"#;

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
    let db_path = dir.join("orders.db");
    let audit_log = std::env::var_os("PRODGUARD_AUDIT_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("audit.jsonl"));

    let db = Connection::open(&db_path)?;
    seed(&db)?;

    let policy = Policy::parse_toml(POLICY, "guarded_migration policy")
        .map_err(|e| Failure::Other(e.to_string()))?;
    // Backups go beside the audit log, in `backups/`.
    let guard = Guard::builder()
        .policy(policy)
        .audit_log(&audit_log)
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
        .target(db_path.display().to_string())
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
