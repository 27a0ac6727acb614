//! Approvers' key files on disk: made by `prodguard keygen --approver NAME
//! --out FILE`, read by `prodguard approve --key FILE`. The format is the
//! core's [`ApproverKey`] text; runs never read a key file (they verify with
//! the public keys the policy lists).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use prodguard_core::approval::ApproverKey;

use crate::{facts, small_file};

/// Why an approver's key file cannot be read or made. Each says what to do.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error(
        "cannot read the approver key {}: {source}; an approver makes one with \
         `prodguard keygen --approver NAME --out FILE`",
        path.display()
    )]
    Unreadable {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Group or others may read it: the secret may have leaked, and a
    /// signing key must be its owner's alone (as ssh refuses such keys).
    #[error(
        "the approver key {} is readable by others (mode {mode:o}); run `chmod 600 {}`, \
         and make a new key if others may have read it",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds something other than an approver key.
    #[error("{}: {problem}", path.display())]
    NotAKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A new key cannot be made or written.
    #[error("cannot make the approver key {}: {problem}", path.display())]
    Create {
        /// The key file.
        path: PathBuf,
        /// Why.
        problem: String,
    },
}

/// Reads an approver's key file, refusing one that group or others may read.
pub fn read_key(path: &Path) -> Result<ApproverKey, KeyError> {
    let unreadable = |source| KeyError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(unreadable)?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let text = small_file::read_to_string(path, small_file::KEY_MAX_BYTES).map_err(unreadable)?;
    ApproverKey::parse(&text).map_err(|e| KeyError::NotAKey {
        path: path.to_owned(),
        problem: e.to_string(),
    })
}

/// Makes a new key pair for approver `name` from 32 bytes of the kernel's
/// CSPRNG and writes it to `path`, readable by its owner only; refuses to
/// overwrite an existing file.
pub fn generate_key(name: &str, path: &Path) -> Result<ApproverKey, KeyError> {
    let fail = |problem: String| KeyError::Create {
        path: path.to_owned(),
        problem,
    };
    let mut secret = [0u8; 32];
    facts::random_bytes(&mut secret).map_err(|e| fail(format!("cannot read /dev/urandom: {e}")))?;
    let key = ApproverKey::from_secret(name, secret).map_err(|e| fail(e.to_string()))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| fail(e.to_string()))?;
    file.write_all(key.to_text().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| fail(e.to_string()))?;
    Ok(key)
}
