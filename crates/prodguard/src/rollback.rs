//! Rolling a guarded attempt back (`prodguard rollback ATTEMPT_ID`): its
//! way back, from the guard's own trail once that trail verifies, and the
//! restore of its backup while the backup is still the one recorded.
//!
//! The judgement — which plan, which operation runs it, whether a backup
//! changed — is the core's ([`prodguard_core::rollback`]); this module reads
//! and writes. The rollback itself runs under the guard like any protected
//! operation: `<operation>.rollback` on the same target, its intent
//! naming the attempt it undoes (`rolls_back`).
//!
//! ```no_run
//! use prodguard::{Guard, rollback};
//!
//! let guard = Guard::from_env()?;
//! let run = rollback::find(&guard, "4f1c0e…")?;
//! tracing::info!("{}", run.describe());
//! if run.backup.is_some() {
//!     rollback::check_backup(&run)?; // before anyone is asked
//!     let permit = guard.begin(run.operation.clone())?;
//!     let restored = rollback::restore(&run);
//!     permit.finish(restored.as_ref().map(|_| ()).map_err(|e| e.to_string()));
//!     restored?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use prodguard_core::ExitCode;
use prodguard_core::rollback::backup_unchanged;
pub use prodguard_core::rollback::{ROLLBACK_SUFFIX, RollbackRun};
use prodguard_core::text::escape;

use crate::audit::VerifyOptions;
use crate::backup::sha256_file;
use crate::trail::{TrailError, TrailSource, read_verified};
use crate::{Guard, config};

/// Why an attempt cannot be rolled back. Each says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackError {
    /// The guard's trail cannot be believed (123), or names nothing to
    /// read (125).
    #[error(transparent)]
    Trail(#[from] TrailError),
    /// The attempt, or its way back, is not in the trail (125).
    #[error("{0}")]
    NoPlan(String),
    /// The backup to restore is not the one the intent recorded (122).
    #[error("{0}")]
    BackupChanged(String),
    /// The restore itself failed (recorded as the rollback's failure).
    #[error("the restore failed: {0}")]
    Restore(String),
}

impl RollbackError {
    /// The exit code a face leaves with: 123 or 125 for the trail, 125
    /// without a plan, 122 for a changed backup, 1 for a failed restore
    /// (the operation's own failure, as a command's).
    pub fn exit_code(&self) -> i32 {
        match self {
            RollbackError::Trail(e) => e.exit_code().code(),
            RollbackError::NoPlan(_) => ExitCode::PolicyError.code(),
            RollbackError::BackupChanged(_) => ExitCode::BackupFailed.code(),
            RollbackError::Restore(_) => 1,
        }
    }
}

/// The rollback of `attempt_id`, found in the trail `guard` writes (its
/// policy's `[audit] sink`, else its audit log), read after it verified.
pub fn find(guard: &Guard, attempt_id: &str) -> Result<RollbackRun, RollbackError> {
    let policy = guard.policy();
    let source = match (&policy.audit().sink, config::audit_log_path(policy)) {
        (Some(url), _) => TrailSource::Postgres(url.clone()),
        (None, Some(path)) => TrailSource::File(path),
        (None, None) => {
            return Err(RollbackError::NoPlan(
                "the policy names no audit trail to find the attempt in".into(),
            ));
        }
    };
    let trail = read_verified(&source, VerifyOptions::default())?;
    prodguard_core::rollback::plan(&trail.attempts, attempt_id).map_err(RollbackError::NoPlan)
}

/// Checks that the backup `run` would restore is still the one its intent
/// recorded: the same SHA-256 and size.
pub fn check_backup(run: &RollbackRun) -> Result<(), RollbackError> {
    let Some(backup) = &run.backup else {
        return Ok(());
    };
    let (sha256, bytes) = sha256_file(Path::new(&backup.location)).map_err(|e| {
        RollbackError::BackupChanged(format!(
            "cannot read the backup {} the intent recorded: {e}",
            escape(&backup.location)
        ))
    })?;
    backup_unchanged(backup, &sha256, bytes).map_err(RollbackError::BackupChanged)
}

/// Restores the backup of `run` over its target: a SQLite database with
/// SQLite's own backup API (its journal and WAL stay consistent), a
/// `postgresql://` database with `pg_restore --clean --if-exists`, any
/// other file by an atomic rename. What is restored is a copy checked
/// against the recorded SHA-256 once more, so a backup changed meanwhile is
/// never restored.
pub fn restore(run: &RollbackRun) -> Result<(), RollbackError> {
    let (Some(backup), Some(target)) = (&run.backup, &run.operation.target) else {
        return Err(RollbackError::NoPlan(
            "this rollback restores no backup, or names no target to restore it over".into(),
        ));
    };
    let target_path = PathBuf::from(target.strip_prefix("sqlite:").unwrap_or(target));
    let postgres = prodguard_core::policy::is_postgres_url(target);
    // The copy lives beside the target, so a plain file can be renamed over it.
    let dir = match target_path.parent() {
        Some(d) if !postgres && !d.as_os_str().is_empty() => d.to_owned(),
        _ if postgres => std::env::temp_dir(),
        _ => PathBuf::from("."),
    };
    let staged = dir.join(format!(".prodguard-restore-{}", crate::facts::random_id()));
    let restored = restore_from(backup, target, &target_path, postgres, &staged);
    // Gone once renamed into place; otherwise ours to remove.
    let _ = std::fs::remove_file(&staged);
    restored
}

fn restore_from(
    backup: &prodguard_core::audit::BackupEvidence,
    target: &str,
    target_path: &Path,
    postgres: bool,
    staged: &Path,
) -> Result<(), RollbackError> {
    std::fs::copy(&backup.location, staged).map_err(|e| {
        RollbackError::Restore(format!(
            "cannot copy {} to {}: {e}",
            escape(&backup.location),
            staged.display()
        ))
    })?;
    let (sha256, bytes) = sha256_file(staged)
        .map_err(|e| RollbackError::Restore(format!("cannot read {}: {e}", staged.display())))?;
    backup_unchanged(backup, &sha256, bytes).map_err(RollbackError::BackupChanged)?;
    if postgres {
        pg_restore(target, staged)
    } else if crate::stamp::is_sqlite(target_path) || crate::stamp::is_sqlite(staged) {
        sqlite_restore(target_path, staged)
    } else {
        std::fs::rename(staged, target_path).map_err(|e| {
            RollbackError::Restore(format!("cannot replace {}: {e}", target_path.display()))
        })
    }
}

#[cfg(feature = "sqlite")]
fn sqlite_restore(target: &Path, from: &Path) -> Result<(), RollbackError> {
    let failed = |e: rusqlite::Error| {
        RollbackError::Restore(format!("cannot restore {}: {e}", target.display()))
    };
    let mut conn = rusqlite::Connection::open(target).map_err(failed)?;
    conn.restore(
        rusqlite::MAIN_DB,
        from,
        None::<fn(rusqlite::backup::Progress)>,
    )
    .map_err(failed)
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_restore(target: &Path, _: &Path) -> Result<(), RollbackError> {
    Err(RollbackError::Restore(format!(
        "{} is a SQLite database and this build has no SQLite support (feature `sqlite`)",
        target.display()
    )))
}

fn pg_restore(url: &str, dump: &Path) -> Result<(), RollbackError> {
    let out = std::process::Command::new("pg_restore")
        .args([
            "--clean",
            "--if-exists",
            "--no-owner",
            "--exit-on-error",
            "--dbname",
        ])
        .arg(url)
        .arg(dump)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| RollbackError::Restore(format!("cannot run pg_restore: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(RollbackError::Restore(format!(
        "pg_restore exited with {}: {}",
        out.status,
        escape(String::from_utf8_lossy(&out.stderr).trim())
    )))
}
