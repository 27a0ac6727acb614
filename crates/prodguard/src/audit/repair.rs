//! Cutting a torn tail (repair): only an incomplete final record is ever
//! cut, a copy of it is kept, and a `recovery` record says so.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use prodguard_core::audit::{AuditEvent, EventKind};

use super::verify::{VerifyOptions, verify_set};
use super::{AuditError, AuditSink, Damage, FileSink};
use crate::facts;

/// What `repair_file` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairOutcome {
    /// Nothing to repair.
    Intact,
    /// The final record was whole but had lost its newline; the newline was
    /// restored and a `recovery` record appended.
    NewlineRestored {
        /// The recovery record's seq.
        recovery_seq: u64,
    },
    /// An incomplete final record was cut, saved aside, and a `recovery`
    /// record appended.
    Cut {
        /// How many bytes were cut.
        bytes: u64,
        /// Where they were saved.
        saved_to: PathBuf,
        /// The recovery record's seq.
        recovery_seq: u64,
    },
}

/// Why a repair was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepairError {
    /// Damage that is not an incomplete final record: evidence, never "fixed".
    #[error("line {} (byte {}) does not verify: {}; only an incomplete final record can be repaired, so this log is left as it is (it is evidence)", .0.line, .0.offset, .0.problem)]
    Damaged(Damage),
    /// Reading, saving, truncating or appending failed.
    #[error("{0}")]
    Io(String),
    /// The recovery record could not be appended.
    #[error("the torn tail was cut but the recovery record failed: {0}")]
    Audit(#[from] AuditError),
}

/// Cuts an incomplete final record from the log at `path`, keeping a copy of
/// the cut bytes beside the log, then appends a `recovery` record.
///
/// Refuses when any complete record fails to verify: only a crash's torn
/// write is ever cut (the etcd WAL rule).
pub fn repair_file(path: &Path) -> Result<RepairOutcome, RepairError> {
    repair_log(&FileSink::new(path))
}

/// [`repair_file`] on `sink`'s log, the `recovery` record appended through
/// `sink` — so a sink made from the policy seals as the log's other writers
/// do, and the recovery record defers no seal.
pub fn repair_log(sink: &FileSink) -> Result<RepairOutcome, RepairError> {
    let path = sink.path();
    let io =
        |what: &str, e: std::io::Error| RepairError::Io(format!("{what} {}: {e}", path.display()));
    // Hold the writers' lock on the file at the path for the whole repair, so
    // no append or rotation interleaves; reopen if it was rotated meanwhile.
    let file = lock_current(path).map_err(|e| io("cannot open and lock", e))?;
    let reader = file.try_clone().map_err(|e| io("cannot read", e))?;
    // The whole set must verify: damage anywhere is evidence, never repaired.
    let report =
        verify_set(path, reader, VerifyOptions::default()).map_err(|e| io("cannot read", e))?;
    if let Some(damage) = report.damage {
        return Err(RepairError::Damaged(damage));
    }
    if report.torn_tail_bytes == 0 {
        return Ok(RepairOutcome::Intact);
    }
    if report.torn_tail_is_record {
        let mut append = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io("cannot open", e))?;
        append
            .write_all(b"\n")
            .and_then(|()| append.sync_data())
            .map_err(|e| io("cannot restore the final newline of", e))?;
        file.unlock().map_err(|e| io("cannot unlock", e))?;
        drop(file);
        let mut event = AuditEvent::new(EventKind::Recovery);
        event.actor = Some(facts::current_actor());
        event.message = Some("restored the newline after the final record; nothing was cut".into());
        let receipt = sink.append(&event)?;
        return Ok(RepairOutcome::NewlineRestored {
            recovery_seq: receipt.seq,
        });
    }
    let mut tail = vec![0u8; usize::try_from(report.torn_tail_bytes).unwrap_or(0)];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut tail, report.good_bytes)
        .map_err(|e| io("cannot read the tail of", e))?;
    let saved_to = PathBuf::from(format!(
        "{}.torn-{}",
        path.display(),
        facts::now().to_compact()
    ));
    let mut saved = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&saved_to)
        .map_err(|e| io("cannot save the torn tail beside", e))?;
    saved
        .write_all(&tail)
        .and_then(|()| saved.sync_all())
        .map_err(|e| io("cannot save the torn tail beside", e))?;
    file.set_len(report.good_bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io("cannot cut the torn tail of", e))?;
    file.unlock().map_err(|e| io("cannot unlock", e))?;
    drop(file);
    let mut event = AuditEvent::new(EventKind::Recovery);
    event.actor = Some(facts::current_actor());
    event.message = Some(format!(
        "cut an incomplete final record of {} bytes at byte {}; saved at {}",
        tail.len(),
        report.good_bytes,
        saved_to.display()
    ));
    let receipt = sink.append(&event)?;
    Ok(RepairOutcome::Cut {
        bytes: tail.len() as u64,
        saved_to,
        recovery_seq: receipt.seq,
    })
}

/// Opens and exclusively locks the file at `path`, reopening until the
/// locked file is still the one at the path (it may be rotated meanwhile).
pub(super) fn lock_current(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..4 {
        let file =
            crate::small_file::open_regular(OpenOptions::new().read(true).write(true), path)?;
        file.lock()?;
        let (open, named) = (file.metadata()?, std::fs::metadata(path)?);
        if open.dev() == named.dev() && open.ino() == named.ino() {
            return Ok(file);
        }
    }
    Err(std::io::Error::other("the log keeps being replaced; retry"))
}
