//! sqlx migrations on a SQLite database, applied as one guarded batch.
//!
//! ```text
//! APP_ENV=development cargo run -p prodguard-example-sqlx -- app.db   # applies what is pending, audited
//! APP_ENV=production  cargo run -p prodguard-example-sqlx -- app.db   # backup + one typed confirmation
//! ```
//!
//! The pending migrations (those not in `_sqlx_migrations` yet) become one
//! batch, each named by its version and description and fingerprinted by
//! sqlx's own checksum: one confirmation that lists them all, one online
//! backup of the database (`provider = "sqlite"`), one intent recording
//! every checksum, then sqlx's migrator runs them. Refused — no terminal,
//! a declined prompt, a failed backup — nothing is applied. Nothing is
//! written to the database before the guard passes: the applied versions
//! are only read.
//!
//! refinery and diesel work the same way: list the pending migrations
//! (refinery's `Runner::get_migrations` against `get_applied_migrations`;
//! diesel's `MigrationHarness::pending_migrations`), make each a
//! `BatchItem` with its checksum or a hash of its SQL, and run the
//! migrator inside `run` (or `run_async`).
#![allow(clippy::print_stdout, clippy::print_stderr)] // an example talks to its user

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use prodguard::{BatchItem, Guard, GuardError, Policy, RunError};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

/// Migrations in protected tiers need a verified online backup, a typed
/// confirmation and the audit log.
const POLICY: &str = r#"
[[rule]]
name = "migrations need a verified backup"
operations = ["db.migrate"]
tiers = ["production", "unknown"]
require = ["confirm", "backup", "audit"]
confirm = { mode = "typed" }
backup = { provider = "sqlite" }
"#;

/// The migrations, read at run time (sqlx's `migrate!` macro embeds them
/// at build time instead; both give the same checksums).
const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");

fn main() -> ExitCode {
    let Some(db) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: prodguard-example-sqlx DATABASE.db");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sqlx-migrations: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(migrate(&db)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Guard(e)) => {
            eprintln!("sqlx-migrations: {e}");
            ExitCode::from(u8::try_from(e.exit_code().code()).unwrap_or(1))
        }
        Err(Failure::Other(e)) => {
            eprintln!("sqlx-migrations: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Guard(GuardError),
    Other(String),
}

impl From<GuardError> for Failure {
    fn from(e: GuardError) -> Self {
        Failure::Guard(e)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Other(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for Failure {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Failure::Other(e.to_string())
    }
}

async fn migrate(db: &Path) -> Result<(), Failure> {
    let policy = Policy::parse_toml(POLICY, "sqlx-migrations policy")
        .map_err(|e| Failure::Other(e.to_string()))?;
    let guard = Guard::builder().policy(policy).build()?;
    let migrator = Migrator::new(Path::new(MIGRATIONS)).await?;
    let options = SqliteConnectOptions::new().filename(db);
    let pool = SqlitePool::connect_with(options).await?;

    let applied = applied_versions(&pool).await?;
    let pending: Vec<BatchItem> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| BatchItem::new(format!("{}_{}", m.version, m.description), hex(&m.checksum)))
        .collect();
    if pending.is_empty() {
        println!("{}: nothing to migrate", db.display());
        return Ok(());
    }
    let count = pending.len();
    let outcome = guard
        .operation("db.migrate")
        .target(db.display().to_string())
        .batch(pending)
        .run_async(|| migrator.run(&pool))
        .await;
    pool.close().await;
    match outcome {
        Ok(()) => {
            println!("{}: applied {count} migration(s)", db.display());
            Ok(())
        }
        Err(RunError::Refused(e)) => Err(Failure::Guard(e)),
        Err(RunError::Failed(e)) => Err(e.into()),
    }
}

/// The versions sqlx has applied, read without creating its table.
async fn applied_versions(pool: &SqlitePool) -> Result<HashSet<i64>, sqlx::Error> {
    let exists: Option<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await?;
    if exists.is_none() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|(version,)| version).collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
