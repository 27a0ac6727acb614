//! The system layer: the policy and the marker in `/etc/prodguard`, the
//! trust anchor (see [`prodguard_core::trust`]).
//!
//! Like OpenSSH's `StrictModes`, they count only when nobody but root can
//! change them: the files, the directory and every directory above them
//! must be owned by root and not writable by group or others (a directory
//! above may be world-writable when it is sticky, as `/tmp` is: nobody
//! else can then rename root's entries in it). Anything else refuses (125)
//! naming the file and the command that fixes it — a layer that anyone can
//! rewrite would anchor nothing, and ignoring it would silently loosen.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use prodguard_core::Policy;
use prodguard_core::trust::{self, SYSTEM_MARKER_NAME, SYSTEM_POLICY_NAME};

use crate::{GuardError, small_file};

/// The system policy as read, when `/etc/prodguard/policy.toml` exists;
/// an error when the layer is not secure (its marker included) or the
/// policy is unreadable or invalid. [`crate::config::with_system_layer`]
/// anchors it and layers the rest over it.
pub fn policy() -> Result<Option<Policy>, GuardError> {
    policy_in(Path::new(trust::SYSTEM_DIR))
}

/// The system policy's text, for a host that states it to the Wasm
/// module or the JSON API (`system_policy`): only once the layer is found
/// secure, as [`policy`] checks it.
pub fn policy_text() -> Result<Option<String>, GuardError> {
    let Some((path, bytes)) = read_secure(Path::new(trust::SYSTEM_DIR))? else {
        return Ok(None);
    };
    String::from_utf8(bytes).map(Some).map_err(|_| {
        GuardError::Policy(format!(
            "the system policy {} is not valid UTF-8; save it as UTF-8",
            path.display()
        ))
    })
}

/// [`policy`] for the system layer in `dir` (tests; everything else uses
/// the directory fixed at build time).
pub(crate) fn policy_in(dir: &Path) -> Result<Option<Policy>, GuardError> {
    match read_secure(dir)? {
        Some((path, bytes)) => crate::config::policy_from_bytes(&bytes, &path).map(Some),
        None => Ok(None),
    }
}

/// The system policy's path and bytes in `dir` when it exists, once it
/// and the marker are found secure.
fn read_secure(dir: &Path) -> Result<Option<(PathBuf, Vec<u8>)>, GuardError> {
    let policy_path = dir.join(SYSTEM_POLICY_NAME);
    let marker_path = dir.join(SYSTEM_MARKER_NAME);
    let mut policy = None;
    for path in [policy_path, marker_path] {
        if exists(&path)? {
            check_secure(&path)?;
            if path.ends_with(SYSTEM_POLICY_NAME) {
                policy = Some(path);
            }
        }
    }
    let Some(path) = policy else {
        return Ok(None);
    };
    // Secure means nobody but root can change it between the check and
    // this read: every directory on the way is root's, and none is a link.
    let bytes = small_file::read(&path, small_file::POLICY_MAX_BYTES).map_err(|e| {
        GuardError::Policy(format!(
            "cannot read the system policy {}: {e}; it must be readable by every account that runs prodguard (`chmod 644 {}`)",
            path.display(),
            path.display()
        ))
    })?;
    Ok(Some((path, bytes)))
}

fn exists(path: &Path) -> Result<bool, GuardError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(GuardError::Policy(format!(
            "cannot read the system layer's {}: {e}; fix its permissions (it must be readable, owned by root and writable only by root)",
            path.display()
        ))),
    }
}

/// Refuses unless `path` and every directory above it are real files and
/// directories (no symbolic link anywhere: a link could lead through a
/// directory someone else can change), owned by root and writable by
/// nobody else.
fn check_secure(path: &Path) -> Result<(), GuardError> {
    let layer = format!("the system layer ({})", trust::SYSTEM_DIR);
    root_only(path, &layer).map_err(GuardError::Policy)
}

/// Why `path` is not root's alone — it, or a directory above it, is a
/// symbolic link, is owned by another account, or is writable by its group
/// or others (a sticky directory such as /tmp excepted) — so that `what`,
/// which relies on it, is not secure; `Ok` when it is.
pub(crate) fn root_only(path: &Path, what: &str) -> Result<(), String> {
    only_writable_by(path, 0, true, what)
}

/// [`root_only`], where `uid` may own what root may, and a trail's own
/// directory must not be sticky either: in /tmp anyone could add a
/// rotated file beside it (`LOG.1`) after it was checked.
pub(crate) fn trail_only_writable_by(path: &Path, uid: u32, what: &str) -> Result<(), String> {
    only_writable_by(path, uid, false, what)
}

fn only_writable_by(path: &Path, uid: u32, sticky_parent: bool, what: &str) -> Result<(), String> {
    let absolute = std::path::absolute(path)
        .map_err(|e| format!("cannot resolve {} for {what}: {e}", path.display()))?;
    for (depth, entry) in absolute.ancestors().enumerate() {
        let meta = std::fs::symlink_metadata(entry)
            .map_err(|e| format!("cannot inspect {}: {e}", entry.display()))?;
        let shown = if depth == 0 {
            path.display().to_string()
        } else {
            format!("the directory {}", entry.display())
        };
        if meta.file_type().is_symlink() {
            return Err(format!(
                "{shown} is a symbolic link, so {what} is not secure: a link can lead through a directory someone else can change; replace it with the real file or directory"
            ));
        }
        if meta.uid() != 0 && meta.uid() != uid {
            let allowed = if uid == 0 {
                "not root".to_owned()
            } else {
                format!("neither root nor uid {uid}")
            };
            return Err(format!(
                "{shown} is owned by uid {}, {allowed}, so {what} is not secure; run `chown root {}`",
                meta.uid(),
                entry.display()
            ));
        }
        let sticky_dir =
            depth > 0 && (depth > 1 || sticky_parent) && meta.is_dir() && meta.mode() & 0o1000 != 0;
        if meta.mode() & 0o022 != 0 && !sticky_dir {
            return Err(format!(
                "{shown} is writable by {} (mode {:o}), so {what} is not secure; run `chmod go-w {}`",
                if meta.mode() & 0o002 != 0 {
                    "others"
                } else {
                    "its group"
                },
                meta.mode() & 0o7777,
                entry.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const POLICY: &str =
        "[[rule]]\noperations = [\"*\"]\ntiers = [\"production\"]\nrequire = [\"audit\"]\n";

    fn layer(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        dir
    }

    fn running_as_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn no_layer_is_none_and_a_root_owned_one_is_anchored() {
        if !running_as_root() {
            return; // The layer must be root's; CI runs as root.
        }
        let empty = layer(&[]);
        assert_eq!(policy_in(empty.path()).unwrap(), None);
        let dir = layer(&[("policy.toml", POLICY), ("environment", "production\n")]);
        let policy = policy_in(dir.path()).unwrap().unwrap();
        let policy = trust::combine(Some(policy), None).unwrap();
        assert!(policy.is_anchored());
        assert!(policy.provenance()[0].system);
    }

    #[test]
    fn a_layer_anyone_else_can_change_is_refused_naming_the_fix() {
        if !running_as_root() {
            return;
        }
        for (name, mode, says) in [
            ("policy.toml", 0o664, "writable by its group (mode 664)"),
            ("policy.toml", 0o646, "writable by others (mode 646)"),
            ("environment", 0o666, "writable by others (mode 666)"),
        ] {
            let dir = layer(&[("policy.toml", POLICY), ("environment", "production\n")]);
            let path = dir.path().join(name);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let message = policy_in(dir.path()).unwrap_err().to_string();
            assert!(message.contains(says), "{message}");
            assert!(
                message.contains(&format!("chmod go-w {}", path.display())),
                "{message}"
            );
        }
        // The directory itself.
        let dir = layer(&[("policy.toml", POLICY)]);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let message = policy_in(dir.path()).unwrap_err().to_string();
        assert!(message.contains("the directory"), "{message}");
        // A file owned by someone else, and a symlink to one.
        let dir = layer(&[("policy.toml", POLICY), ("mine.toml", POLICY)]);
        std::os::unix::fs::chown(dir.path().join("policy.toml"), Some(65534), None).unwrap();
        let message = policy_in(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains("owned by uid 65534, not root"),
            "{message}"
        );
        // A symbolic link, even to a root-owned file: it could lead through
        // a directory someone else can change between the check and the read.
        std::fs::remove_file(dir.path().join("policy.toml")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("mine.toml"), dir.path().join("policy.toml"))
            .unwrap();
        let message = policy_in(dir.path()).unwrap_err().to_string();
        assert!(message.contains("is a symbolic link"), "{message}");
        // And a directory on the way that is one.
        let real = layer(&[("policy.toml", POLICY)]);
        let links = tempfile::tempdir().unwrap();
        let through = links.path().join("prodguard");
        std::os::unix::fs::symlink(real.path(), &through).unwrap();
        let message = policy_in(&through).unwrap_err().to_string();
        assert!(message.contains("is a symbolic link"), "{message}");
    }

    #[test]
    fn an_invalid_system_policy_is_an_error_not_a_missing_layer() {
        if !running_as_root() {
            return;
        }
        let dir = layer(&[("policy.toml", "[[rule]]\nrequre = []\n")]);
        let message = policy_in(dir.path()).unwrap_err().to_string();
        assert!(message.contains("policy.toml:2:1"), "{message}");
    }
}
