//! Audit events, records and the SHA-256 hash chain.
//!
//! A record is one JSON line. Its `hash` is
//! `SHA-256(CHAIN_DOMAIN ‖ prev ‖ body)` where `body` is the record's bytes
//! exactly as written, minus the trailing `,"hash":"…"` member. Verification
//! hashes the bytes as they are on disk and never re-serialises, so any change
//! to a record — a flipped bit, a reordered key — breaks the chain.
//!
//! ```
//! use prodguard_core::audit::{AuditEvent, ChainVerifier, Envelope, EventKind, encode_record, GENESIS_PREV};
//! use prodguard_core::Timestamp;
//!
//! let envelope = Envelope { log_id: "demo".into(), seq: 1, ts: Timestamp(0), host: "h".into(), pid: 7 };
//! let event = AuditEvent::note("deploy started");
//! let (line, hash) = encode_record(&envelope, &event, GENESIS_PREV).unwrap();
//! let mut verifier = ChainVerifier::new();
//! let link = verifier.push(&line).unwrap();
//! assert_eq!(link.hash, hash);
//! ```

mod chain;
mod event;
mod seal;

pub use chain::{
    ChainError, ChainVerifier, Link, chain_hash, encode_record, encode_record_into, is_whole_record,
};
pub use event::{
    Actor, AuditEvent, BackupEvidence, BatchItem, ConfirmEvidence, DecisionRecord, Envelope,
    EventKind, OperationRecord, OutcomeRecord, PromotedRun, PromotionRecord, PruneInfo, PrunedFile,
    PrunedSeal, Record, RollbackPlan, SqlRecord, SqlStatementRecord, batch_fingerprint,
};
pub use seal::{SEAL_DOMAIN, SealChecker, SealInfo, SealKey, max_unsealed};

/// The domain tag mixed into every record hash, so a prodguard chain hash
/// can never be confused with a hash of the same bytes made for another purpose.
pub const CHAIN_DOMAIN: &[u8] = b"prodguard.audit.chain.v1\0";

/// The `prev` of the first record of a log.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The longest record line (newline included) a writer produces; readers
/// may rely on it when scanning for the last record.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The record format version written in `v`.
pub const RECORD_VERSION: u32 = 1;

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Decodes 64 hex digits.
pub fn unhex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}
