//! Anchors: a log's head kept off the host, and whether a log still reaches it.

use serde::{Deserialize, Serialize};

/// A small record of a log's head, meant to be stored off the host: a later
/// `verify --anchor` proves the log still reaches it, which catches
/// truncation and rollback that the chain alone cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The log's identity.
    pub log_id: String,
    /// The head record's seq.
    pub seq: u64,
    /// The head record's hash.
    pub hash: String,
    /// The log's length in bytes up to and including the head record.
    pub bytes: u64,
}

/// How a log relates to an anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnchorCheck {
    /// The record at the anchor's seq has its hash and ends at its byte length.
    Reached,
    /// The log ends before the anchor: truncated or rolled back.
    NotReached,
    /// The record at the anchor's seq differs from the anchor: rewritten.
    Mismatch(String),
    /// The anchor's record was pruned (`prodguard audit prune`): it can no
    /// longer be checked; take a new anchor.
    Pruned {
        /// The first record the log still holds.
        start_seq: u64,
    },
}

/// Whether the log reaches `anchor` at record `anchor.seq` (shared with the
/// PostgreSQL trail's verifier).
pub(crate) fn check_anchor(anchor: &Anchor, log_id: &str, hash: &str, bytes: u64) -> AnchorCheck {
    if anchor.log_id != log_id {
        AnchorCheck::Mismatch(format!(
            "the anchor is for log {}, this log is {log_id}",
            anchor.log_id
        ))
    } else if anchor.hash != hash {
        AnchorCheck::Mismatch(format!(
            "record {} has hash {hash}, the anchor says {}: the log was rewritten",
            anchor.seq, anchor.hash
        ))
    } else if anchor.bytes != bytes {
        AnchorCheck::Mismatch(format!(
            "record {} ends at byte {bytes}, the anchor says {}",
            anchor.seq, anchor.bytes
        ))
    } else {
        AnchorCheck::Reached
    }
}
