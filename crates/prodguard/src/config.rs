//! Finding the policy and the audit log, as the design's interface says:
//! the system layer first (see [`crate::system`]), then whatever the
//! program or its environment names, layered over it.

use std::path::{Path, PathBuf};

use prodguard_core::Policy;

use crate::{GuardError, small_file};

/// The policy file used when `PRODGUARD_POLICY` is unset and it exists.
pub const LOCAL_POLICY_FILE: &str = "prodguard.toml";

/// A path from the environment, byte for byte (paths need not be UTF-8).
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.to_string_lossy().trim().is_empty())
        .map(PathBuf::from)
}

/// Reads and parses the policy file at `path`.
///
/// Errors name the file, and for bad content its line and column.
pub fn load_policy_file(path: &Path) -> Result<Policy, GuardError> {
    let bytes = small_file::read(path, small_file::POLICY_MAX_BYTES).map_err(|e| {
        GuardError::Policy(format!(
            "cannot read policy file {}: {e}; fix the path (PRODGUARD_POLICY) or create the file",
            path.display()
        ))
    })?;
    policy_from_bytes(&bytes, path)
}

/// Parses the bytes of the policy file at `path`: an error names the
/// file, and for bad content its line and column.
pub(crate) fn policy_from_bytes(bytes: &[u8], path: &Path) -> Result<Policy, GuardError> {
    let name = path.to_string_lossy();
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let column = String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count()
                + 1;
            return Err(GuardError::Policy(format!(
                "{name}:{line}:{column}: the policy is not valid UTF-8; save it as UTF-8"
            )));
        }
    };
    Policy::parse(text, &name).map_err(|e| GuardError::Policy(e.to_string()))
}

/// The policy in force for a program pointed at `explicit` (`--policy`, a
/// C caller's path), or, when it names none, at what [`discover_policy`]
/// finds. Every face loads its policy through here.
pub fn load_policy(explicit: Option<&Path>) -> Result<Policy, GuardError> {
    let local = match explicit {
        Some(path) => Some(load_policy_file(path)?),
        None => discover_local()?,
    };
    with_system_layer(local)
}

/// The policy in force: the system policy (`/etc/prodguard/policy.toml`)
/// with `PRODGUARD_POLICY`, else `./prodguard.toml` if present, layered
/// over it (they can only tighten it); without a system policy, that file
/// alone, else the built-in default. A named file that cannot be read or
/// parsed is an error, never a silent fallback.
pub fn discover_policy() -> Result<Policy, GuardError> {
    load_policy(None)
}

/// `PRODGUARD_POLICY`, else `./prodguard.toml` if present.
fn discover_local() -> Result<Option<Policy>, GuardError> {
    if let Some(path) = env_path("PRODGUARD_POLICY") {
        return load_policy_file(&path).map(Some);
    }
    let local = Path::new(LOCAL_POLICY_FILE);
    if local.exists() {
        return load_policy_file(local).map(Some);
    }
    Ok(None)
}

/// `local` (a file, a policy built in code or passed by a host) layered
/// over the system policy when there is one: what every guard runs under.
pub fn with_system_layer(local: Option<Policy>) -> Result<Policy, GuardError> {
    prodguard_core::trust::combine(crate::system::policy()?, local)
        .map_err(|e| GuardError::Policy(e.to_string()))
}

/// The audit log's path: see [`audit_logs`].
pub fn audit_log_path(policy: &Policy) -> Option<PathBuf> {
    audit_logs(policy).primary
}

/// Where a guard's audit records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLogs {
    /// The log every record must reach (where approvals are spent), when a
    /// file holds the trail.
    pub primary: Option<PathBuf>,
    /// Copies asked for below the system policy.
    pub copies: Vec<PathBuf>,
}

/// Where audit records go under `policy`.
///
/// Under a system policy: its `[audit] log` (else, without a `sink`,
/// [`prodguard_core::trust::SYSTEM_AUDIT_LOG`]) always, and
/// `PRODGUARD_AUDIT_LOG` and the layered policies' logs as copies: nobody
/// below root moves the trail. Without one: `PRODGUARD_AUDIT_LOG`, else
/// the policy's `[audit] log`, else `$XDG_STATE_HOME/prodguard/audit.jsonl`
/// (or `~/.local/state/prodguard/audit.jsonl`); no file when the policy's
/// `[audit] sink` keeps the trail in PostgreSQL and none is named.
pub fn audit_logs(policy: &Policy) -> AuditLogs {
    let audit = policy.audit();
    let named = audit.log.as_ref().map(PathBuf::from);
    let from_env = env_path("PRODGUARD_AUDIT_LOG");
    if policy.is_anchored() {
        let primary = named.or_else(|| {
            audit
                .sink
                .is_none()
                .then(|| PathBuf::from(prodguard_core::trust::SYSTEM_AUDIT_LOG))
        });
        let mut copies: Vec<PathBuf> = audit.copies.iter().map(PathBuf::from).collect();
        copies.extend(from_env);
        let copies = distinct_copies(primary.as_deref(), copies);
        return AuditLogs { primary, copies };
    }
    let primary = from_env.or(named).or_else(|| {
        if audit.sink.is_some() {
            return None;
        }
        Some(state_dir()?.join("audit.jsonl"))
    });
    AuditLogs {
        primary,
        copies: Vec::new(),
    }
}

/// Whether `a` and `b` name one file however they are spelled (`..`, a
/// link): a copy of the audit trail that is the trail itself would write
/// every record twice.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => resolved(a) == resolved(b),
    }
}

/// `path` absolute, its links followed (a dangling one too: it names the
/// file its target will be) and its directory resolved when it exists.
fn resolved(path: &Path) -> PathBuf {
    let mut path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(&path) else {
            break;
        };
        path = match path.parent() {
            Some(dir) => dir.join(target),
            None => target,
        };
    }
    match (path.parent().map(std::fs::canonicalize), path.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => path,
    }
}

/// `copies` without the trail at `primary` and without repeats, however
/// each is spelled: every record is written once to each file.
pub(crate) fn distinct_copies(primary: Option<&Path>, copies: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut distinct: Vec<PathBuf> = Vec::new();
    for copy in copies {
        let seen = primary.is_some_and(|p| same_file(&copy, p))
            || distinct.iter().any(|d| same_file(&copy, d));
        if !seen {
            distinct.push(copy);
        }
    }
    distinct
}

/// prodguard's state directory: `$XDG_STATE_HOME/prodguard`, else
/// `~/.local/state/prodguard`. A relative value is ignored, as the XDG
/// specification says: it would follow whichever directory the program
/// runs in.
fn state_dir() -> Option<PathBuf> {
    let absolute = |name| env_path(name).filter(|p| p.is_absolute());
    let state =
        absolute("XDG_STATE_HOME").or_else(|| absolute("HOME").map(|h| h.join(".local/state")))?;
    Some(state.join("prodguard"))
}

/// Where backups go when a rule names no `path`: `backups/` beside the
/// audit log at `log`, else in the state directory, else
/// `./prodguard-backups`.
pub fn backup_dir(log: Option<&Path>) -> PathBuf {
    log.and_then(Path::parent)
        .map(Path::to_path_buf)
        .or_else(state_dir)
        .map(|dir| dir.join("backups"))
        .unwrap_or_else(|| PathBuf::from("prodguard-backups"))
}
