//! Seal keys on disk: created once, evolved after every seal, the old key
//! erased by an atomic replace.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use prodguard_core::audit::{SealKey, hex, unhex32};
use serde::{Deserialize, Serialize};

use crate::small_file;

/// Why a seal key could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("seal key {path}: {problem}")]
pub struct SealKeyError {
    /// The key file.
    pub path: PathBuf,
    /// What is wrong and what to do.
    pub problem: String,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    epoch: u64,
    key: String,
    /// The log this key seals, fixed by its first seal: one key, one log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_id: Option<String>,
}

fn error(path: &Path, problem: impl Into<String>) -> SealKeyError {
    SealKeyError {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Reads a key file (`{"epoch": N, "key": "<64 hex>"}`).
pub fn read_key_file(path: &Path) -> Result<SealKey, SealKeyError> {
    read_bound_key_file(path).map(|(key, _)| key)
}

/// Reads a key file and the log id it is bound to, if it has sealed one yet.
pub(crate) fn read_bound_key_file(path: &Path) -> Result<(SealKey, Option<String>), SealKeyError> {
    let text = small_file::read_to_string(path, small_file::KEY_MAX_BYTES).map_err(|e| {
        error(
            path,
            format!(
                "{e}; create one with `prodguard audit seal-init --key-file {}`",
                path.display()
            ),
        )
    })?;
    let file: KeyFile =
        serde_json::from_str(&text).map_err(|e| error(path, format!("not a seal key ({e})")))?;
    let key =
        unhex32(&file.key).ok_or_else(|| error(path, "the key is not 64 lowercase hex digits"))?;
    Ok((
        SealKey {
            epoch: file.epoch,
            key,
        },
        file.log_id,
    ))
}

fn render(key: &SealKey, log_id: Option<&str>) -> String {
    let file = KeyFile {
        epoch: key.epoch,
        key: hex(&key.key),
        log_id: log_id.map(str::to_owned),
    };
    serde_json::to_string(&file).unwrap_or_default() + "\n"
}

/// Replaces the key file with `key` atomically (temp file, fsync, rename,
/// fsync of the directory), so the previous epoch's key is gone.
pub fn write_key_file(path: &Path, key: &SealKey) -> Result<(), SealKeyError> {
    write_bound_key_file(path, key, None)
}

/// Like [`write_key_file`], binding the key to the log it seals.
pub(crate) fn write_bound_key_file(
    path: &Path,
    key: &SealKey,
    log_id: Option<&str>,
) -> Result<(), SealKeyError> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let io = |what: &str, e: std::io::Error| error(path, format!("cannot {what}: {e}"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("write the new key", e))?;
    file.write_all(render(key, log_id).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io("write the new key", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("replace the key", e))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync the key's directory", e))
}

/// Creates a new key file at epoch 0 and returns the key, which the caller
/// must also store off the host: it verifies every seal made with this file.
pub fn init_key_file(path: &Path) -> Result<SealKey, SealKeyError> {
    if path.exists() {
        return Err(error(path, "already exists; a seal key is created once"));
    }
    // A secret comes from the kernel's CSPRNG or not at all.
    let mut key = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
        .map_err(|e| error(path, format!("cannot read /dev/urandom for a new key: {e}")))?;
    let key = SealKey { epoch: 0, key };
    write_key_file(path, &key)?;
    Ok(key)
}

/// The key's file form, for printing the verification key.
pub fn key_to_text(key: &SealKey) -> String {
    render(key, None)
}
