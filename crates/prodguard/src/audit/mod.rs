//! The audit log: a JSON Lines file, chained, appended durably by many
//! threads and processes at once.

use std::path::PathBuf;
use std::sync::Arc;

use prodguard_core::Timestamp;

pub use prodguard_core::audit::{AuditEvent, EventKind, OutcomeRecord};
pub use prodguard_core::policy::Durability;

mod anchor;
mod prune;
mod repair;
mod seal;
mod sink;
mod tee;
mod verify;
pub use anchor::{Anchor, AnchorCheck};
pub use prune::{PruneError, PruneOutcome, prune_log};
pub use repair::{RepairError, RepairOutcome, repair_file, repair_log};
pub use seal::{SealKeyError, init_key_file, key_to_text, read_key_file, write_key_file};
pub use sink::{FileOps, FileSink, RealFileOps};
pub(crate) use tee::TeeSink;
pub use verify::{
    Damage, PrunedStart, VerifyOptions, VerifyReport, rotated_files, verify_file,
    verify_file_sealed, verify_log, verify_single_file,
};

/// Where a durable append landed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendReceipt {
    /// The record's position in the log.
    pub seq: u64,
    /// The record's chain hash.
    pub hash: String,
}

/// Why the audit log could not take a record. Every guarded operation that
/// requires audit refuses (exit 123) on any of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// No audit log can be located: none is named, and there is no home
    /// or state directory to keep the default one in.
    #[error(
        "no audit log can be located: PRODGUARD_AUDIT_LOG is unset, the policy names no [audit] log, and neither HOME nor XDG_STATE_HOME is set (as an absolute path); set PRODGUARD_AUDIT_LOG=/path/to/audit.jsonl or [audit] log"
    )]
    Unlocatable,
    /// The log could not be opened or created.
    #[error(
        "cannot open audit log {path}: {source}; check that the directory exists and is writable, or set PRODGUARD_AUDIT_LOG"
    )]
    Open {
        /// The log's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A read, write, lock or sync failed.
    #[error("audit log {path}: {op} failed: {source}")]
    Io {
        /// The log's path.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// An earlier write or sync failed; this writer takes no more records.
    #[error(
        "audit log {path} is poisoned by an earlier failure ({cause}); nothing more is written by this process — check the disk, run `prodguard audit verify --log {path}`, then restart"
    )]
    Poisoned {
        /// The log's path.
        path: PathBuf,
        /// The first failure.
        cause: String,
    },
    /// The log does not end with a newline: its last record is incomplete
    /// (a crash mid-write) or was changed.
    #[error(
        "audit log {path} does not end with a whole record (a crash during a write, or the record was changed), so nothing more is appended to it; run `prodguard audit verify --log {path}`: when it reports an incomplete final record (exit 2), `prodguard audit repair --log {path}` cuts it (keeping a copy) and records the recovery"
    )]
    TornTail {
        /// The log's path.
        path: PathBuf,
    },
    /// The shared write this record was part of failed.
    #[error("audit log {path}: the append failed: {cause}")]
    Batch {
        /// The log's path.
        path: PathBuf,
        /// What failed.
        cause: String,
    },
    /// Sealing is configured but the key cannot be used.
    #[error("{0}")]
    Seal(#[from] SealKeyError),
    /// The last record does not verify.
    #[error(
        "audit log {path}: the last record does not verify ({detail}); run `prodguard audit verify --log {path}` to find the damage"
    )]
    Corrupt {
        /// The log's path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// Somewhere audit records go. Implement it to send records elsewhere; the
/// guard calls `append` and proceeds only on `Ok`.
pub trait AuditSink: Send + Sync {
    /// Appends `event` durably, returning only once it is on stable storage.
    fn append(&self, event: &AuditEvent) -> Result<AppendReceipt, AuditError>;

    /// Checks that an append could succeed now (the log opens, locks and its
    /// tail verifies), so a guard can refuse before asking anyone anything.
    fn check(&self) -> Result<(), AuditError> {
        Ok(())
    }

    /// Appends an intent that spends approval token `token_id` (issued at
    /// `issued`), atomically: if an earlier intent already spent it, nothing
    /// is appended. A sink that cannot tell refuses (the default).
    fn append_spending(
        &self,
        event: &AuditEvent,
        token_id: &str,
        issued: Timestamp,
    ) -> Result<AppendReceipt, SpendError> {
        let _ = (event, token_id, issued);
        Err(SpendError::Unsupported)
    }
}

/// A shared sink is a sink (so one can be wrapped, e.g. in a ledger).
impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    fn append(&self, event: &AuditEvent) -> Result<AppendReceipt, AuditError> {
        (**self).append(event)
    }

    fn check(&self) -> Result<(), AuditError> {
        (**self).check()
    }

    fn append_spending(
        &self,
        event: &AuditEvent,
        token_id: &str,
        issued: Timestamp,
    ) -> Result<AppendReceipt, SpendError> {
        (**self).append_spending(event, token_id, issued)
    }
}

/// Why an intent that spends an approval token was not appended.
#[derive(Debug, thiserror::Error)]
pub enum SpendError {
    /// An earlier intent spent the token.
    #[error("it was spent by audit record {seq} of {file}")]
    Spent {
        /// The record that spent it.
        seq: u64,
        /// The log file it is in.
        file: PathBuf,
    },
    /// This sink cannot record spent tokens.
    #[error(
        "no audit log can record the approval as spent (approval tokens need one); set PRODGUARD_AUDIT_LOG or [audit] log"
    )]
    Unsupported,
    /// The log is unavailable.
    #[error(transparent)]
    Audit(#[from] AuditError),
}
