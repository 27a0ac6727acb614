//! Approval keys on disk and the check of a token against the operation at hand.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use prodguard_core::audit::{hex, unhex32};

/// Reads an approval key: 64 hex digits (whitespace around them ignored).
pub fn read_key(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the approval key {}: {e}; create one with `prodguard keygen --out {}` \
             and set [approval] key_file",
            path.display(),
            path.display()
        )
    })?;
    unhex32(text.trim()).ok_or_else(|| {
        format!(
            "{} is not an approval key (64 lowercase hex digits)",
            path.display()
        )
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
