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
//! A plan runs with the privileges of whoever runs the rollback, so it is
//! read only from a file trail no other account can write: a plan the
//! application's account appended must not run as root. A backup is
//! copied and checked against its recorded SHA-256 before anyone is asked
//! (a backup the rollback's own rule takes cannot overwrite it then), and
//! what is restored is that checked copy.
//!
//! ```no_run
//! use prodguard::{Guard, rollback};
//!
//! let guard = Guard::from_env()?;
//! let run = rollback::find(&guard, "4f1c0e…")?;
//! tracing::info!("{}", run.describe());
//! let staged = rollback::stage(&run)?; // checked before anyone is asked
//! let permit = guard.begin(run.operation.clone())?;
//! let restored = match staged {
//!     Some(staged) => staged.restore(),
//!     None => Ok(()), // a command plan: run it under the permit
//! };
//! permit.finish(restored.as_ref().map(|_| ()).map_err(|e| e.to_string()));
//! restored?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use prodguard_core::ExitCode;
use prodguard_core::rollback::backup_unchanged;
pub use prodguard_core::rollback::{ROLLBACK_SUFFIX, RollbackRun};
use prodguard_core::text::escape;

use crate::audit::VerifyOptions;
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

/// The rollback of `attempt_id`, found in the file trail `guard` writes
/// (its audit log and rotated set), read after it verified. The trail must
/// be writable by no account but the one running this (or root): a plan
/// runs with this process's privileges. A fleet's shared PostgreSQL trail,
/// which every host's account can append to, is never read for a plan.
pub fn find(guard: &Guard, attempt_id: &str) -> Result<RollbackRun, RollbackError> {
    let policy = guard.policy();
    let path = match (&policy.audit().sink, config::audit_log_path(policy)) {
        (_, Some(path)) => path,
        (Some(_), None) => {
            return Err(RollbackError::NoPlan(
                "plans in the fleet's shared PostgreSQL trail can be written by any host of the \
                 fleet, so none runs from there; keep a file copy of this host's trail \
                 (PRODGUARD_AUDIT_LOG or [audit] log) and roll back from it, or undo it by hand"
                    .into(),
            ));
        }
        (None, None) => {
            return Err(RollbackError::NoPlan(
                "the policy names no audit trail to find the attempt in".into(),
            ));
        }
    };
    let runner = nix::unistd::getuid().as_raw();
    let what = format!(
        "a plan read from it, which would run as uid {runner} (run `prodguard rollback` as the \
         account that owns the trail, or undo it by hand)"
    );
    let rotated = crate::audit::rotated_files(&path)
        .map_err(|e| RollbackError::NoPlan(format!("cannot list {}: {e}", path.display())))?;
    for file in rotated.iter().chain(std::iter::once(&path)) {
        crate::system::trail_only_writable_by(file, runner, &what)
            .map_err(RollbackError::NoPlan)?;
    }
    let trail = read_verified(&TrailSource::File(path), VerifyOptions::default())?;
    prodguard_core::rollback::plan(&trail.attempts, attempt_id).map_err(RollbackError::NoPlan)
}

/// A backup copied aside and checked against what its intent recorded,
/// ready to restore; removed when dropped.
#[derive(Debug)]
pub struct Staged {
    /// The private directory holding the copy.
    dir: PathBuf,
    copy: PathBuf,
    target: String,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Copies the backup `run` restores (if it restores one) into a private
/// directory, checking on the way that its SHA-256 and size are those the
/// intent recorded (122 otherwise) and that its target can be restored
/// over: an existing regular file, not a symbolic link, or a
/// `postgresql://` database. Call it before anyone is asked.
pub fn stage(run: &RollbackRun) -> Result<Option<Staged>, RollbackError> {
    let (Some(backup), Some(target)) = (&run.backup, &run.operation.target) else {
        return Ok(None);
    };
    if !prodguard_core::policy::is_postgres_url(target) {
        let path = Path::new(target.strip_prefix("sqlite:").unwrap_or(target));
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_file() => {}
            Ok(_) => {
                return Err(RollbackError::NoPlan(format!(
                    "{} is not a regular file (a link, a directory…), so nothing is restored over \
                     it; restore it by hand",
                    path.display()
                )));
            }
            Err(e) => {
                return Err(RollbackError::NoPlan(format!(
                    "cannot restore over {}: {e}; restore it by hand",
                    path.display()
                )));
            }
        }
    }
    let dir =
        std::env::temp_dir().join(format!(".prodguard-rollback-{}", crate::facts::random_id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| RollbackError::Restore(format!("cannot make {}: {e}", dir.display())))?;
    let staged = Staged {
        copy: dir.join("backup"),
        dir,
        target: target.clone(),
    };
    let (sha256, bytes) = copy_hashing(Path::new(&backup.location), &staged.copy).map_err(|e| {
        RollbackError::BackupChanged(format!(
            "cannot read the backup {} the intent recorded: {e}",
            escape(&backup.location)
        ))
    })?;
    backup_unchanged(backup, &sha256, bytes).map_err(RollbackError::BackupChanged)?;
    Ok(Some(staged))
}

/// Copies `from` to a new file `to` (readable by this account alone),
/// returning the SHA-256 and size of what was copied.
fn copy_hashing(from: &Path, to: &Path) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Write};
    let mut source = std::fs::File::open(from)?;
    let mut copy = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    let (mut hasher, mut total, mut buf) = (Sha256::new(), 0u64, vec![0u8; 64 * 1024]);
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        copy.write_all(&buf[..n])?;
        total += n as u64;
    }
    copy.sync_all()?;
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hash, total))
}

impl Staged {
    /// Restores the checked copy over its target: a SQLite database with
    /// SQLite's own backup API (its journal and WAL stay consistent), a
    /// `postgresql://` database with `pg_restore --clean --if-exists
    /// --single-transaction` (all or nothing), any other file by an atomic
    /// rename that keeps the target's owner and mode.
    pub fn restore(self) -> Result<(), RollbackError> {
        if prodguard_core::policy::is_postgres_url(&self.target) {
            return pg_restore(&self.target, &self.copy);
        }
        let target = PathBuf::from(self.target.strip_prefix("sqlite:").unwrap_or(&self.target));
        if crate::stamp::is_sqlite(&target) || crate::stamp::is_sqlite(&self.copy) {
            return sqlite_restore(&target, &self.copy);
        }
        replace_file(&target, &self.copy)
    }
}

/// Moves `copy` over `target` atomically, with the target's owner and mode.
fn replace_file(target: &Path, copy: &Path) -> Result<(), RollbackError> {
    let failed = |e: std::io::Error| {
        RollbackError::Restore(format!("cannot replace {}: {e}", target.display()))
    };
    let meta = std::fs::symlink_metadata(target).map_err(failed)?;
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let beside = dir.join(format!(".prodguard-restore-{}", crate::facts::random_id()));
    std::fs::copy(copy, &beside).map_err(failed)?;
    let placed = std::os::unix::fs::lchown(&beside, Some(meta.uid()), Some(meta.gid()))
        .and_then(|()| std::fs::set_permissions(&beside, meta.permissions()))
        .and_then(|()| std::fs::rename(&beside, target));
    if placed.is_err() {
        let _ = std::fs::remove_file(&beside);
    }
    placed.map_err(failed)
}

#[cfg(feature = "sqlite")]
fn sqlite_restore(target: &Path, from: &Path) -> Result<(), RollbackError> {
    use rusqlite::OpenFlags;
    let failed = |e: rusqlite::Error| {
        RollbackError::Restore(format!("cannot restore {}: {e}", target.display()))
    };
    // The database that is there: never a new one, never a URI.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = rusqlite::Connection::open_with_flags(target, flags).map_err(failed)?;
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
