//! Reading the small files prodguard trusts (policies, keys, markers):
//! regular files only, never more than a limit.
//!
//! A policy path may come from whoever runs the program
//! (`PRODGUARD_POLICY=/dev/zero`, a FIFO): reading it must neither block
//! forever nor fill memory.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest policy file prodguard reads.
pub const POLICY_MAX_BYTES: u64 = 4 << 20;
/// The largest key file (seal key, approver key) prodguard reads.
pub const KEY_MAX_BYTES: u64 = 64 << 10;
/// The largest SQL script prodguard reads (`prodguard sql check`): a big
/// migration is a few megabytes; a data dump is not a script to guard.
pub const SQL_SCRIPT_MAX_BYTES: u64 = 64 << 20;

fn not_regular() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file")
}

fn too_large(limit: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!("larger than {limit} bytes"),
    )
}

/// The bytes of the regular file at `path` (links followed), refused when it
/// is anything else (`InvalidInput`) or longer than `limit` bytes
/// (`FileTooLarge`).
pub fn read(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    // Look before opening: opening a device or a FIFO can block or act.
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    // Non-blocking and no controlling terminal, in case the path was
    // swapped for something else since the look; then check what was opened.
    let file = File::options()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte past the limit tells a file that grew since the look.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// Opens the regular file at `path` with `options` (links followed),
/// without blocking and without acquiring a controlling terminal, and
/// refuses anything else (`InvalidInput`): an audit log or one of its
/// rotated files replaced by a FIFO or a device must be reported, not
/// waited on or written into.
pub fn open_regular(options: &std::fs::OpenOptions, path: &Path) -> std::io::Result<File> {
    let file = options
        .clone()
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    Ok(file)
}

/// [`open_regular`] for reading.
pub fn open_regular_read(path: &Path) -> std::io::Result<File> {
    open_regular(File::options().read(true), path)
}

/// Like [`read`], as UTF-8 text.
pub fn read_to_string(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, b"12345678").unwrap();
        assert_eq!(read(&path, 8).unwrap(), b"12345678");
        let err = read(&path, 7).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
        assert_eq!(err.to_string(), "larger than 7 bytes");
    }

    #[test]
    fn refuses_devices_directories_and_fifos_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for path in [Path::new("/dev/zero"), dir.path(), &fifo] {
            let err = read(path, POLICY_MAX_BYTES).unwrap_err();
            assert_eq!(err.to_string(), "not a regular file", "{}", path.display());
        }
    }
}
