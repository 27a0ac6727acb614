//! Approval keys on disk and the check of a token against the operation at hand.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use prodguard_core::audit::{hex, unhex32};

/// Why an approval key cannot be read. Each says what to do.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error(
        "cannot read the approval key {}: {source}; create one with `prodguard keygen --out {}` \
         and set [approval] key_file",
        path.display(),
        path.display()
    )]
    Unreadable {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds something other than a key.
    #[error("{} is not an approval key (64 lowercase hex digits)", path.display())]
    NotAKey {
        /// The key file.
        path: PathBuf,
    },
}

/// Reads an approval key: 64 hex digits (whitespace around them ignored).
pub fn read_key(path: &Path) -> Result<[u8; 32], KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    unhex32(text.trim()).ok_or_else(|| KeyError::NotAKey {
        path: path.to_owned(),
    })
}

/// Writes a new random key (from the kernel's CSPRNG) to `path`, readable
/// by its owner only; refuses to overwrite an existing file.
pub fn generate_key(path: &Path) -> Result<(), String> {
    let mut key = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(format!("{}\n", hex(&key)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
