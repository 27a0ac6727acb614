//! Finding the policy and the audit log, as the design's interface says.

use std::path::{Path, PathBuf};

use prodguard_core::Policy;

use crate::GuardError;

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
    let name = path.to_string_lossy();
    let bytes = std::fs::read(path).map_err(|e| {
        GuardError::Policy(format!(
            "cannot read policy file {name}: {e}; fix the path (PRODGUARD_POLICY) or create the file"
        ))
    })?;
    let text = match std::str::from_utf8(&bytes) {
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

/// The policy a program was pointed at (`--policy`, a C caller's path), or,
/// when it names none, the one [`discover_policy`] finds. Every face loads
/// its policy through here.
pub fn load_policy(explicit: Option<&Path>) -> Result<Policy, GuardError> {
    match explicit {
        Some(path) => load_policy_file(path),
        None => discover_policy(),
    }
}

/// The policy in force: `PRODGUARD_POLICY`, else `./prodguard.toml` if
/// present, else the built-in default. A named file that cannot be read or
/// parsed is an error, never a silent fallback.
pub fn discover_policy() -> Result<Policy, GuardError> {
    if let Some(path) = env_path("PRODGUARD_POLICY") {
        return load_policy_file(&path);
    }
    let local = Path::new(LOCAL_POLICY_FILE);
    if local.exists() {
        return load_policy_file(local);
    }
    Ok(Policy::builtin_default())
}

/// The audit log's path: `PRODGUARD_AUDIT_LOG`, else the policy's
/// `[audit] log`, else `$XDG_STATE_HOME/prodguard/audit.jsonl` (or
/// `~/.local/state/prodguard/audit.jsonl`). `None` when none of these exist,
/// and when the policy's `[audit] sink` keeps the trail in PostgreSQL and no
/// file is named (the file is then a local copy, only when asked for).
pub fn audit_log_path(policy: &Policy) -> Option<PathBuf> {
    if let Some(path) = env_path("PRODGUARD_AUDIT_LOG") {
        return Some(path);
    }
    if let Some(path) = &policy.audit().log {
        return Some(PathBuf::from(path));
    }
    if policy.audit().sink.is_some() {
        return None;
    }
    Some(state_dir()?.join("audit.jsonl"))
}

/// prodguard's state directory: `$XDG_STATE_HOME/prodguard`, else
/// `~/.local/state/prodguard`.
fn state_dir() -> Option<PathBuf> {
    let state =
        env_path("XDG_STATE_HOME").or_else(|| env_path("HOME").map(|h| h.join(".local/state")))?;
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
