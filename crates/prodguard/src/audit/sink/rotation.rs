//! Rotation: a full log moves aside as `PATH.N` and a new file, chained to
//! its last record, takes its place.

use std::fs::OpenOptions;
use std::path::PathBuf;

use super::{Failure, FileOps, FileSink, Writer, identity, sync_parent, write_all};
use crate::audit::rotated_files;

impl FileSink {
    /// Moves the full log aside as `PATH.N` and puts a new file holding
    /// `buf` (the next records, chained to the old head) in its place. The
    /// path always names a complete log: the new file is written and synced
    /// under a temporary name, the old one hard-linked to `PATH.N`, then the
    /// new one renamed over the path.
    pub(super) fn rotate(
        &self,
        writer: &mut Writer,
        ops: &mut dyn FileOps,
        buf: &[u8],
    ) -> Result<(), Failure> {
        let rotated = rotated_files(&self.path)
            .map_err(|e| Failure::Clean(self.io("list rotated files", e)))?;
        let next = rotated
            .last()
            .and_then(|p| p.extension())
            .and_then(|e| e.to_string_lossy().parse::<u64>().ok())
            .map_or(1, |n| n + 1);
        let aside = PathBuf::from(format!("{}.{next}", self.path.display()));
        let fresh = PathBuf::from(format!("{}.rotating", self.path.display()));
        // A leftover from a rotation that failed half-way holds nothing acknowledged.
        let _ = std::fs::remove_file(&fresh);
        let new_file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&fresh)
            .map_err(|e| Failure::Clean(self.io("create the next log file", e)))?;
        // A crash after an earlier link but before its rename left the full
        // log already linked aside: do not give it a second name.
        let already_aside = {
            use std::os::unix::fs::MetadataExt;
            let current = writer.file.metadata();
            rotated
                .iter()
                .any(|p| match (std::fs::metadata(p), &current) {
                    (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                    _ => false,
                })
        };
        let staged = write_all(ops, &new_file, buf)
            .and_then(|()| ops.sync_data(&new_file))
            .and_then(|()| {
                if already_aside {
                    Ok(())
                } else {
                    std::fs::hard_link(&self.path, &aside)
                }
            });
        if let Err(e) = staged {
            let _ = std::fs::remove_file(&fresh);
            return Err(Failure::Clean(self.io("stage the next log file", e)));
        }
        // Lock the new file before it appears at the path, so no other
        // writer appends to it before we are done.
        let _ = new_file.lock();
        if let Err(e) = std::fs::rename(&fresh, &self.path) {
            let _ = std::fs::remove_file(&aside);
            let _ = std::fs::remove_file(&fresh);
            return Err(Failure::Clean(self.io("rotate", e)));
        }
        sync_parent(&self.path).map_err(|e| Failure::Poison(self.io("fsync directory", e)))?;
        // Other writers hold the old file: they see it is no longer at the
        // path and reopen. The old file's lock goes with its descriptor.
        let old = std::mem::replace(
            writer,
            Writer {
                identity: new_file.metadata().ok().map(|m| identity(&m)),
                file: new_file,
                known_len: buf.len() as u64,
                locked_len: None,
                head: None,
                sync_directory: false,
                buf: Vec::new(),
            },
        );
        let _ = old.file.unlock();
        tracing::info!(target: "prodguard::audit", rotated_to = %aside.display(), "audit log rotated");
        Ok(())
    }
}
