//! The hash chain: the one encoder of record lines and the one verifier
//! that walks them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    AuditEvent, CHAIN_DOMAIN, Envelope, GENESIS_PREV, MAX_RECORD_BYTES, RECORD_VERSION, SealInfo,
    hex,
};
use crate::Timestamp;

const HASH_SUFFIX_PREFIX: &[u8] = b",\"hash\":\"";
// `,"hash":"` + 64 hex digits + `"}`
const HASH_SUFFIX_LEN: usize = HASH_SUFFIX_PREFIX.len() + 64 + 2;

/// Why a record does not continue the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// Not a JSON record of the expected shape.
    #[error("record is malformed: {0}")]
    Malformed(String),
    /// The stored hash is not the hash of the bytes.
    #[error("hash mismatch: the record's bytes were changed after it was written")]
    HashMismatch,
    /// `prev` does not name the previous record.
    #[error(
        "chain broken: prev is {found}, expected {expected} (a record was removed, reordered or spliced in)"
    )]
    PrevMismatch {
        /// What the previous record's hash was.
        expected: String,
        /// What this record names.
        found: String,
    },
    /// `seq` is not the next number.
    #[error("sequence broken: seq is {found}, expected {expected}")]
    SeqMismatch {
        /// The next number.
        expected: u64,
        /// What the record says.
        found: u64,
    },
    /// A record from another log.
    #[error("log_id is {found}, expected {expected} (records from another log were spliced in)")]
    LogIdMismatch {
        /// The log's id.
        expected: String,
        /// What the record says.
        found: String,
    },
}

/// The chain hash of a record body (its bytes without the hash member).
pub fn chain_hash(prev: &str, body: &[u8]) -> String {
    hex(&digest_parts(prev, &[body]))
}

/// The chain digest of a body given in consecutive parts (no copy needed).
fn digest_parts(prev: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(CHAIN_DOMAIN);
    hasher.update(prev.as_bytes());
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Whether `stored` (hex) is the chain hash of the line whose body before
/// the hash member is `head`, chained to `prev` (without allocating).
fn hash_matches(prev: &str, head: &[u8], stored: &str) -> bool {
    /// Each byte's two lowercase hex digits.
    const PAIRS: [[u8; 2]; 256] = {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut pairs = [[0u8; 2]; 256];
        let mut i = 0;
        while i < 256 {
            pairs[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
            i += 1;
        }
        pairs
    };
    let digest = digest_parts(prev, &[head, b"}"]);
    let stored = stored.as_bytes();
    stored.len() == 64
        && digest
            .iter()
            .zip(stored.chunks_exact(2))
            .fold(true, |same, (&byte, pair)| {
                same & (PAIRS[usize::from(byte)] == pair)
            })
}

/// The bytes of a record before its hash: the envelope's fields and the
/// event's, borrowed, in the order they are written (serde writes a
/// struct's fields in declaration order, the event's flattened in place).
#[derive(Serialize)]
struct RecordBody<'a> {
    v: u32,
    log_id: &'a str,
    seq: u64,
    ts: Timestamp,
    host: &'a str,
    pid: u32,
    #[serde(flatten)]
    event: &'a AuditEvent,
    prev: &'a str,
}

/// Builds the exact line (with its trailing newline) for `event`, chained to `prev`.
///
/// Returns the line and its hash. Fails when the line would be longer than
/// [`MAX_RECORD_BYTES`], or if the event cannot be serialised, which does
/// not happen for events built from these types.
pub fn encode_record(
    envelope: &Envelope,
    event: &AuditEvent,
    prev: &str,
) -> Result<(Vec<u8>, String), ChainError> {
    let mut line = Vec::new();
    let hash = encode_record_into(envelope, event, prev, &mut line)?;
    Ok((line, hash))
}

/// [`encode_record`], appending the line to `out` (a writer reuses one
/// buffer for a batch of records); returns its hash. On an error nothing
/// is appended.
///
/// ```
/// use prodguard_core::audit::{AuditEvent, Envelope, encode_record, encode_record_into, GENESIS_PREV};
/// use prodguard_core::Timestamp;
///
/// let envelope = Envelope { log_id: "demo".into(), seq: 1, ts: Timestamp(0), host: "h".into(), pid: 7 };
/// let event = AuditEvent::note("deploy started");
/// let mut out = Vec::new();
/// let hash = encode_record_into(&envelope, &event, GENESIS_PREV, &mut out).unwrap();
/// assert_eq!((out, hash), encode_record(&envelope, &event, GENESIS_PREV).unwrap());
/// ```
pub fn encode_record_into(
    envelope: &Envelope,
    event: &AuditEvent,
    prev: &str,
    out: &mut Vec<u8>,
) -> Result<String, ChainError> {
    let at = out.len();
    let body = RecordBody {
        v: RECORD_VERSION,
        log_id: &envelope.log_id,
        seq: envelope.seq,
        ts: envelope.ts,
        host: &envelope.host,
        pid: envelope.pid,
        event,
        prev,
    };
    if let Err(e) = serde_json::to_writer(&mut *out, &body) {
        out.truncate(at);
        return Err(ChainError::Malformed(e.to_string()));
    }
    let body_len = out.len() - at;
    if body_len + HASH_SUFFIX_LEN + 1 > MAX_RECORD_BYTES {
        out.truncate(at);
        return Err(ChainError::Malformed(format!(
            "the record would be {body_len} bytes; records are at most {MAX_RECORD_BYTES}"
        )));
    }
    let hash = chain_hash(prev, out.get(at..).unwrap_or_default());
    // Replace the closing brace with the hash member: the body hashed is
    // exactly the line minus that member.
    out.pop();
    out.extend_from_slice(HASH_SUFFIX_PREFIX);
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\"}\n");
    Ok(hash)
}

/// Splits a line (without its newline) into the body before the hash
/// member (the hashed body is this plus a closing `}`) and the stored hash.
fn split_hash(line: &[u8]) -> Result<(&[u8], &str), ChainError> {
    if line.len() < HASH_SUFFIX_LEN + 2 {
        return Err(ChainError::Malformed("too short to be a record".into()));
    }
    let (head, suffix) = line.split_at(line.len() - HASH_SUFFIX_LEN);
    let Some(rest) = suffix.strip_prefix(HASH_SUFFIX_PREFIX) else {
        return Err(ChainError::Malformed(
            "the line does not end with its \"hash\" member".into(),
        ));
    };
    let (digits, close) = rest.split_at(64);
    // Every digit looked at (no early exit), which vectorises.
    let hex = digits.iter().fold(true, |ok, &c| {
        ok & (c.is_ascii_digit() | (c.wrapping_sub(b'a') < 6))
    });
    if close != b"\"}" || !hex {
        return Err(ChainError::Malformed(
            "the \"hash\" member is not 64 lowercase hex digits".into(),
        ));
    }
    let stored = std::str::from_utf8(digits)
        .map_err(|_| ChainError::Malformed("hash is not UTF-8".into()))?;
    Ok((head, stored))
}

/// Whether `line` (with or without its newline) is a whole record: JSON that
/// ends with its `"hash"` member. A write cut short by a crash cannot look
/// like this (an escaped string never holds `,"hash":"…"}`), so such a line
/// that does not verify was changed, not torn.
///
/// ```
/// use prodguard_core::audit::{AuditEvent, Envelope, encode_record, is_whole_record, GENESIS_PREV};
/// use prodguard_core::Timestamp;
///
/// let envelope = Envelope { log_id: "demo".into(), seq: 1, ts: Timestamp(0), host: "h".into(), pid: 7 };
/// let (line, _) = encode_record(&envelope, &AuditEvent::note("hi"), GENESIS_PREV).unwrap();
/// assert!(is_whole_record(&line));
/// assert!(!is_whole_record(&line[..line.len() - 3]));
/// ```
pub fn is_whole_record(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    split_hash(line).is_ok() && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// Checks records one after another: each must hash correctly and continue the chain.
///
/// Feed it lines in file order (with or without their trailing newline).
/// Each line is read once, by `serde_json` (the fields the chain needs,
/// every other member checked to be JSON and skipped), and its hash is
/// taken over its bytes exactly as they stand, never over a re-serialisation.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev: String,
    next_seq: u64,
    log_id: Option<String>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A verifier for a log from its first record.
    pub fn new() -> Self {
        ChainVerifier {
            prev: GENESIS_PREV.to_owned(),
            next_seq: 1,
            log_id: None,
        }
    }

    /// A verifier that continues after a known head (e.g. a previous file).
    pub fn resume(prev: String, next_seq: u64, log_id: Option<String>) -> Self {
        ChainVerifier {
            prev,
            next_seq,
            log_id,
        }
    }

    /// The hash of the last accepted record.
    pub fn head_hash(&self) -> &str {
        &self.prev
    }

    /// The seq the next record must carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The log id fixed by the first record, once seen.
    pub fn log_id(&self) -> Option<&str> {
        self.log_id.as_deref()
    }

    /// Verifies `line` as the next record and advances.
    ///
    /// ```
    /// use prodguard_core::audit::{AuditEvent, ChainVerifier, Envelope, encode_record, GENESIS_PREV};
    /// use prodguard_core::Timestamp;
    ///
    /// let envelope = Envelope { log_id: "demo".into(), seq: 1, ts: Timestamp(0), host: "h".into(), pid: 7 };
    /// let (line, hash) = encode_record(&envelope, &AuditEvent::note("hi"), GENESIS_PREV).unwrap();
    /// let mut verifier = ChainVerifier::new();
    /// let link = verifier.push(&line).unwrap();
    /// assert_eq!((link.seq, link.hash), (1, hash));
    /// assert!(verifier.push(&line).is_err(), "a record cannot follow itself");
    /// ```
    pub fn push(&mut self, line: &[u8]) -> Result<Link, ChainError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let (head, stored) = split_hash(line)?;
        let fields = match serde_json::from_slice::<LinkFields<'_>>(line) {
            Ok(fields) => fields,
            // Tell edited bytes apart from a record that hashes right but
            // does not parse.
            Err(error) => {
                return Err(if hash_matches(&self.prev, head, stored) {
                    ChainError::Malformed(error.to_string())
                } else {
                    ChainError::HashMismatch
                });
            }
        };
        // A broken link, rather than edited bytes, when the record names
        // another predecessor.
        if fields.prev != self.prev {
            return Err(ChainError::PrevMismatch {
                expected: self.prev.clone(),
                found: fields.prev.into_owned(),
            });
        }
        if !hash_matches(&self.prev, head, stored) {
            return Err(ChainError::HashMismatch);
        }
        if let Some(problem) = fields.seal_shape_problem() {
            return Err(ChainError::Malformed(problem.into()));
        }
        if fields.seq != self.next_seq {
            return Err(ChainError::SeqMismatch {
                expected: self.next_seq,
                found: fields.seq,
            });
        }
        match &self.log_id {
            Some(id) if *id != fields.log_id => {
                return Err(ChainError::LogIdMismatch {
                    expected: id.clone(),
                    found: fields.log_id.into_owned(),
                });
            }
            Some(_) => {}
            None => self.log_id = Some(fields.log_id.clone().into_owned()),
        }
        // The head is kept in place: no allocation per record. (It moves
        // even when seq cannot, as it always has: that record is the head.)
        self.prev.clear();
        self.prev.push_str(stored);
        self.next_seq = self.next_seq.checked_add(1).ok_or_else(|| {
            ChainError::Malformed("seq is at its maximum; the log cannot continue".into())
        })?;
        Ok(Link {
            seq: fields.seq,
            log_id: fields.log_id.into_owned(),
            prev: fields.prev.into_owned(),
            hash: stored.to_owned(),
            seal: fields.seal,
        })
    }
}

/// What the chain needs of a record; everything else is skipped unparsed.
#[derive(Debug, Deserialize)]
struct LinkFields<'a> {
    seq: u64,
    #[serde(borrow)]
    log_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    prev: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    seal: Option<SealInfo>,
    // A seal's MAC covers the chain before it, not its own record: a seal
    // record may carry nothing else, so nothing in it can be forged.
    #[serde(default)]
    attempt_id: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    actor: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    op: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    decision: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    backup: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    confirm: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    outcome: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    message: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    prune: Option<serde::de::IgnoredAny>,
}

impl LinkFields<'_> {
    fn seal_shape_problem(&self) -> Option<&'static str> {
        let is_seal = self.kind == "seal";
        let carries_event = self.attempt_id.is_some()
            || self.actor.is_some()
            || self.op.is_some()
            || self.decision.is_some()
            || self.backup.is_some()
            || self.confirm.is_some()
            || self.outcome.is_some()
            || self.message.is_some();
        let is_prune = self.kind == "prune";
        match (is_seal, self.seal.is_some()) {
            (true, false) => Some("a seal record without its seal"),
            (false, true) => Some("a seal member on a record that is not a seal"),
            (true, true) if carries_event || self.prune.is_some() => {
                Some("a seal record carrying event fields")
            }
            // Only a prune record says what was pruned.
            _ => match (is_prune, self.prune.is_some()) {
                (true, false) => Some("a prune record without its prune member"),
                (false, true) => Some("a prune member on a record that is not a prune"),
                _ => None,
            },
        }
    }
}

/// A record that continued the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Link {
    /// Its seq.
    pub seq: u64,
    /// Its log's id.
    pub log_id: String,
    /// The hash it chains to.
    pub prev: String,
    /// Its hash.
    pub hash: String,
    /// Its seal, when it is a seal record.
    pub seal: Option<SealInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(seq: u64) -> Envelope {
        Envelope {
            log_id: "log-a".into(),
            seq,
            ts: Timestamp(1_700_000_000_000_000 + seq as i64),
            host: "host".into(),
            pid: 42,
        }
    }

    fn chain(n: u64) -> Vec<Vec<u8>> {
        let mut prev = GENESIS_PREV.to_owned();
        (1..=n)
            .map(|seq| {
                let (line, hash) =
                    encode_record(&envelope(seq), &AuditEvent::note(format!("n{seq}")), &prev)
                        .unwrap();
                prev = hash;
                line
            })
            .collect()
    }

    #[test]
    fn a_chain_verifies_and_its_hash_covers_the_bytes_as_written() {
        let lines = chain(5);
        let mut v = ChainVerifier::new();
        for (i, line) in lines.iter().enumerate() {
            let r = v.push(line).unwrap();
            assert_eq!(r.seq, i as u64 + 1);
            assert!(line.ends_with(b"\"}\n"));
        }
        assert_eq!(v.next_seq(), 6);
        assert_eq!(v.log_id(), Some("log-a"));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let lines = chain(3);
        for target in 0..lines.len() {
            for byte in 0..lines[target].len() - 1 {
                for bit in 0..8 {
                    let mut tampered = lines.clone();
                    tampered[target][byte] ^= 1 << bit;
                    let mut v = ChainVerifier::new();
                    let ok = tampered.iter().all(|l| v.push(l).is_ok());
                    assert!(
                        !ok,
                        "flip at record {target} byte {byte} bit {bit} undetected"
                    );
                }
            }
        }
    }

    #[test]
    fn deletion_reordering_and_splicing_are_detected() {
        let lines = chain(4);
        let mut v = ChainVerifier::new();
        v.push(&lines[0]).unwrap();
        assert!(matches!(
            v.push(&lines[2]),
            Err(ChainError::PrevMismatch { .. })
        ));

        let mut v = ChainVerifier::new();
        v.push(&lines[0]).unwrap();
        v.push(&lines[1]).unwrap();
        assert!(
            v.push(&lines[1]).is_err(),
            "a duplicated record must not verify"
        );

        // A record from another log with the same shape.
        let other = encode_record(
            &Envelope {
                log_id: "log-b".into(),
                ..envelope(2)
            },
            &AuditEvent::note("x"),
            &chain_hash(GENESIS_PREV, b"nothing"),
        )
        .unwrap()
        .0;
        let mut v = ChainVerifier::new();
        v.push(&lines[0]).unwrap();
        assert!(v.push(&other).is_err());
    }

    #[test]
    fn a_recomputed_hash_still_breaks_the_next_link() {
        let lines = chain(2);
        let first = String::from_utf8(lines[0].clone()).unwrap();
        let edited = first.replace("n1", "n9");
        let (head, _) = split_hash(edited.trim_end().as_bytes()).unwrap();
        let mut body = head.to_vec();
        body.push(b'}');
        let forged_hash = chain_hash(GENESIS_PREV, &body);
        let mut forged = body;
        forged.pop();
        forged.extend_from_slice(format!(",\"hash\":\"{forged_hash}\"}}").as_bytes());
        let mut v = ChainVerifier::new();
        v.push(&forged).unwrap();
        assert!(matches!(
            v.push(&lines[1]),
            Err(ChainError::PrevMismatch { .. })
        ));
    }

    #[test]
    fn oversized_records_are_refused_and_seq_cannot_overflow() {
        let huge = AuditEvent::note("x".repeat(MAX_RECORD_BYTES));
        assert!(encode_record(&envelope(1), &huge, GENESIS_PREV).is_err());
        let (line, _) =
            encode_record(&envelope(u64::MAX), &AuditEvent::note("last"), GENESIS_PREV).unwrap();
        let mut v = ChainVerifier::resume(GENESIS_PREV.to_owned(), u64::MAX, None);
        assert!(v.push(&line).is_err(), "no seq after u64::MAX");
    }

    #[test]
    fn a_record_is_appended_after_what_the_buffer_holds_and_nothing_on_an_error() {
        let mut out = b"before".to_vec();
        let event = AuditEvent::note("tab\t \"quote\" \\ ü \u{1}");
        let hash = encode_record_into(&envelope(3), &event, GENESIS_PREV, &mut out).unwrap();
        let (line, expected) = encode_record(&envelope(3), &event, GENESIS_PREV).unwrap();
        assert_eq!(
            (&out[..6], &out[6..], hash),
            (&b"before"[..], &line[..], expected)
        );
        let huge = AuditEvent::note("x".repeat(MAX_RECORD_BYTES));
        let mut out = b"before".to_vec();
        assert!(encode_record_into(&envelope(3), &huge, GENESIS_PREV, &mut out).is_err());
        assert_eq!(out, b"before");
    }

    #[test]
    fn malformed_lines_are_rejected_not_panicked_on() {
        for junk in [&b""[..], b"{}", b"not json at all", &[0xff; 200][..]] {
            assert!(ChainVerifier::new().push(junk).is_err());
        }
    }
}
