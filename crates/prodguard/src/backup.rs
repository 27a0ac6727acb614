//! Backup evidence: the provider trait, the command provider, file hashing.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use prodguard_core::Timestamp;
use prodguard_core::audit::hex;
use prodguard_core::policy::BackupSpec;
use sha2::{Digest, Sha256};

use crate::facts;

pub use prodguard_core::audit::BackupEvidence;
pub use prodguard_core::session::{BackupError, BackupRequest};

/// Produces backup evidence for a guarded operation.
///
/// Return a [`BackupError`] with a sentence saying what went wrong and what
/// to do; the guard refuses with exit code 122 and the operation does not run.
pub trait BackupProvider: Send + Sync {
    /// Makes (or finds) a backup for `request` and returns its evidence.
    fn backup(&self, request: &BackupRequest) -> Result<BackupEvidence, BackupError>;
}

/// A closure is a provider (`Err("…".into())` makes a [`BackupError`]).
impl<F> BackupProvider for F
where
    F: Fn(&BackupRequest) -> Result<BackupEvidence, BackupError> + Send + Sync,
{
    fn backup(&self, request: &BackupRequest) -> Result<BackupEvidence, BackupError> {
        self(request)
    }
}

/// The default provider: runs the rule's backup command (`sh -c`), or finds
/// the recent file the rule names, then checks and hashes the result.
///
/// `{target}` and `{path}` in `command` and `verify` are replaced by the
/// shell-quoted target and backup path (write them unquoted in the policy).
/// The command must exit 0 and leave a non-empty file at `{path}`; the
/// verify command (which a `command` rule always has, and a `recent` one
/// may have) must exit 0 for the backup to count as verified.
/// Without a command, the file at the rule's `path` must already exist
/// (checked against `max_age` by the guard).
#[derive(Debug, Clone)]
pub struct CommandBackup {
    backup_dir: PathBuf,
}

impl CommandBackup {
    /// Backups without an explicit `path` go to `backup_dir`.
    pub fn new(backup_dir: impl Into<PathBuf>) -> Self {
        CommandBackup {
            backup_dir: backup_dir.into(),
        }
    }

    fn backup_path(&self, request: &BackupRequest, now: Timestamp) -> PathBuf {
        let target_name = request
            .target
            .as_deref()
            .and_then(|t| Path::new(t).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "backup".into());
        let stamp = now.to_compact();
        match request.spec.path() {
            Some(template) => PathBuf::from(
                template
                    .replace("{target}", &target_name)
                    .replace("{ts}", &stamp),
            ),
            None => self
                .backup_dir
                .join(format!("{target_name}.{stamp}.backup")),
        }
    }
}

/// File systems with coarse timestamps may date a fresh file up to this
/// much before the clock reading taken when the command started.
const MTIME_SLACK_SECONDS: i64 = 2;

/// Quotes `s` for `sh`: one single-quoted word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn substitute(template: &str, target: &str, path: &Path) -> String {
    template
        .replace("{target}", &shell_quote(target))
        .replace("{path}", &shell_quote(&path.to_string_lossy()))
}

fn run_shell(command: &str) -> Result<(), String> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start `sh -c {command}`: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = stderr
        .trim()
        .chars()
        .rev()
        .take(400)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(format!(
        "`{command}` failed ({}){}",
        output.status,
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        }
    ))
}

impl BackupProvider for CommandBackup {
    fn backup(&self, request: &BackupRequest) -> Result<BackupEvidence, BackupError> {
        self.make(request).map_err(BackupError::from)
    }
}

impl CommandBackup {
    /// Makes (or finds) the backup `request` asks for; `Err` says why not.
    fn make(&self, request: &BackupRequest) -> Result<BackupEvidence, String> {
        let now = facts::now();
        let mut path = self.backup_path(request, now);
        let target = request.target.as_deref().unwrap_or("");
        let command = match &request.spec {
            BackupSpec::Sqlite { .. } => return sqlite_backup(Path::new(target), &path, now),
            BackupSpec::Recent { .. } => {
                path = newest_match(&path)?;
                None
            }
            BackupSpec::Command { command, .. } => Some(command),
            BackupSpec::Program { .. } => {
                return Err(
                    "the rule expects this program to supply its own backup (provider = \"program\"), \
                     but it registered no backup provider"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "this build cannot make a `{}` backup; upgrade prodguard or change the rule's backup provider",
                    other.source().as_str()
                ));
            }
        };
        let created = match command {
            Some(template) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                run_shell(&substitute(template, target, &path))?;
                // Evidence of a backup the kernel could still lose is no evidence.
                File::open(&path).and_then(|f| f.sync_all()).map_err(|e| {
                    format!("no backup at {} after the command: {e}", path.display())
                })?;
                // The command must have written the file now: an old file
                // left at the path by an earlier run is no evidence.
                let written = modified_time(&path)?;
                if written.seconds_since(now) < -MTIME_SLACK_SECONDS {
                    return Err(format!(
                        "the backup command succeeded but {} was last written at {written}, \
                         before the command ran; make the command write a new file there \
                         (or put {{ts}} in the path)",
                        path.display()
                    ));
                }
                written
            }
            None => modified_time(&path)?,
        };
        let (sha256, bytes) = sha256_file(&path)
            .map_err(|e| format!("no backup at {} after the command: {e}", path.display()))?;
        if bytes == 0 {
            return Err(format!("the backup at {} is empty", path.display()));
        }
        let (verified, verification) = match request.spec.verify() {
            Some(template) => {
                let command = substitute(template, target, &path);
                match run_shell(&command) {
                    Ok(()) => (true, Some(command)),
                    Err(e) => return Err(format!("the backup did not verify: {e}")),
                }
            }
            None => (false, None),
        };
        Ok(BackupEvidence {
            location: path.to_string_lossy().into_owned(),
            sha256,
            bytes,
            created,
            verified,
            verification,
        })
    }
}

/// For `recent` backups: `path` itself, or the newest file whose name
/// matches it when its file name has `*` or `?` (e.g. `/backups/orders-*.dump`).
fn newest_match(path: &Path) -> Result<PathBuf, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return Ok(path.to_owned());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !prodguard_core::policy::glob_matches(&name, &file_name) {
            continue;
        }
        let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        if newest.as_ref().is_none_or(|(t, _)| modified > *t) {
            newest = Some((modified, entry.path()));
        }
    }
    newest
        .map(|(_, p)| p)
        .ok_or_else(|| format!("no backup matches {}", path.display()))
}

/// SQLite's online backup API from the database at `source` to `dest`, then
/// `PRAGMA integrity_check` on the copy (evidence `verified` only if "ok").
#[cfg(feature = "sqlite")]
fn sqlite_backup(source: &Path, dest: &Path, now: Timestamp) -> Result<BackupEvidence, String> {
    use rusqlite::{Connection, OpenFlags, backup::Backup};
    if !crate::stamp::is_sqlite(source) {
        return Err(format!(
            "provider = \"sqlite\" needs the target to be a SQLite database file; {} is not",
            source.display()
        ));
    }
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if same_file(source, dest) {
        return Err(format!(
            "the backup path {} is the database itself; put backups elsewhere",
            dest.display()
        ));
    }
    let from = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", source.display()))?;
    let mut to =
        Connection::open(dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    // Copy in steps, giving up after a deadline: a database kept busy by
    // writers must not hang the guard (and the operation does not run).
    {
        use rusqlite::backup::StepResult;
        let backup = Backup::new(&from, &mut to)
            .map_err(|e| format!("the online backup of {} failed: {e}", source.display()))?;
        let deadline = std::time::Instant::now() + SQLITE_BACKUP_DEADLINE;
        loop {
            match backup.step(256) {
                Ok(StepResult::Done) => break,
                Ok(StepResult::More) => {}
                Ok(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Ok(_) => {
                    return Err(format!(
                        "the online backup of {} did not finish within {}s (the database stayed busy)",
                        source.display(),
                        SQLITE_BACKUP_DEADLINE.as_secs()
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "the online backup of {} failed: {e}",
                        source.display()
                    ));
                }
            }
        }
    }
    let check: String = to
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("integrity_check on {} failed: {e}", dest.display()))?;
    drop(to);
    File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dest.display()))?;
    if check != "ok" {
        return Err(format!(
            "the copy at {} fails PRAGMA integrity_check: {check}",
            dest.display()
        ));
    }
    let (sha256, bytes) = sha256_file(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(BackupEvidence {
        location: dest.to_string_lossy().into_owned(),
        sha256,
        bytes,
        created: now,
        verified: true,
        verification: Some("PRAGMA integrity_check = ok".into()),
    })
}

/// How long the SQLite online backup may wait for a busy database.
#[cfg(feature = "sqlite")]
const SQLITE_BACKUP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether `a` and `b` name the same file (`b` may not exist yet).
#[cfg(feature = "sqlite")]
fn same_file(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| {
        std::fs::canonicalize(p).ok().or_else(|| {
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            Some(std::fs::canonicalize(dir).ok()?.join(p.file_name()?))
        })
    };
    matches!((canonical(a), canonical(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_backup(_: &Path, _: &Path, _: Timestamp) -> Result<BackupEvidence, String> {
    Err("provider = \"sqlite\" needs prodguard built with its `sqlite` feature".into())
}

fn modified_time(path: &Path) -> Result<Timestamp, String> {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| format!("no backup at {}: {e}", path.display()))?;
    let micros = modified
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Ok(Timestamp::from_unix_micros(micros))
}

/// The hex SHA-256 and the size of the file at `path`, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_hostile_names() {
        let cmd = substitute(
            "printf %s {target}",
            "a'; rm -rf /tmp/x; echo '",
            Path::new("p"),
        );
        let out = Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "a'; rm -rf /tmp/x; echo '"
        );
    }
}
