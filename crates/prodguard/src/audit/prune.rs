//! Retention (prune): whole rotated files dropped from the start of a log,
//! after a `prune` record that names them and carries, for each, the anchor
//! the kept chain is verified from.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use prodguard_core::audit::{
    AuditEvent, EventKind, MAX_RECORD_BYTES, PruneInfo, PrunedFile, PrunedSeal, Record,
};

use super::repair::lock_current;
use super::verify::{VerifyOptions, next_line, verify_set};
use super::{AuditError, AuditSink, Damage, FileSink, rotated_files};
use crate::facts;
use prodguard_core::Timestamp;
use prodguard_core::approval::SPENT_MARGIN_SECONDS;

/// What `prune_log` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneOutcome {
    /// No rotated file holds only records before the seq asked for.
    Nothing {
        /// The first record the log holds.
        start_seq: u64,
    },
    /// Files were dropped.
    Pruned {
        /// The dropped files, oldest first.
        files: Vec<PathBuf>,
        /// The first dropped record.
        first_seq: u64,
        /// The last dropped record: the log now starts after it.
        last_seq: u64,
        /// The prune record's seq.
        record_seq: u64,
    },
}

/// Why a prune was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PruneError {
    /// The log does not verify: a tampered log is evidence, never pruned.
    #[error("line {} of {} (byte {}) does not verify: {}; a log that does not verify is never pruned (it is evidence) — see `prodguard audit verify`", .0.line, .0.file.display(), .0.offset, .0.problem)]
    Damaged(Damage),
    /// The log ends with an incomplete record.
    #[error(
        "the log ends with an incomplete record; run `prodguard audit repair` first, then prune"
    )]
    TornTail,
    /// The seq falls inside a rotated file: only whole files are dropped.
    #[error(
        "record {before} is inside {} (records {first_seq}..{last_seq}); only whole files are pruned: use --before {first_seq} to keep it or --before {} to drop it", .file.display(), last_seq + 1
    )]
    InsideFile {
        /// The seq asked for.
        before: u64,
        /// The file it falls in.
        file: PathBuf,
        /// The file's first record.
        first_seq: u64,
        /// Its last record.
        last_seq: u64,
    },
    /// The seq is past the start of the live file, which is never pruned.
    #[error(
        "record {before} is past the start of the live file (record {live_start}), which is never pruned; use --before {live_start} or less"
    )]
    LiveFile {
        /// The seq asked for.
        before: u64,
        /// The live file's first record.
        live_start: u64,
    },
    /// The file records the spending of an approval token that has not
    /// expired: the log is what refuses a second spend, so it stays.
    #[error(
        "{} records the spending of an approval token valid until {until}; the log is what refuses it a second time, so the file is kept until then: prune after {until}", .file.display()
    )]
    TokenUnexpired {
        /// The file.
        file: PathBuf,
        /// Until when the token is valid (with the clock skew allowed).
        until: String,
    },
    /// Reading, locking or removing failed.
    #[error("{0}")]
    Io(String),
    /// The prune record could not be appended (nothing was removed).
    #[error("the prune record could not be appended, so nothing was removed: {0}")]
    Audit(#[from] AuditError),
}

/// A rotated file as prune sees it.
struct Span {
    path: PathBuf,
    first_seq: u64,
    last_seq: u64,
    last_hash: String,
    /// The latest expiry of an approval token an intent in it spent (the
    /// far future for a token recorded without one).
    spent_until: Option<Timestamp>,
    bytes: u64,
    last_seal: Option<PrunedSeal>,
}

/// Drops the rotated files of `sink`'s log whose records are all before
/// `before`, oldest first, after appending through `sink` a `prune` record
/// that names them with their seq ranges and the anchors verify needs.
///
/// Refuses a log that does not verify, a `before` inside a rotated file,
/// and a `before` past the live file's start (the live file is never pruned).
/// A file that records the spending of an approval token still valid
/// (`exp` within the clock skew allowed of now) is kept: the log is what
/// refuses the token a second time.
pub fn prune_log(sink: &FileSink, before: u64) -> Result<PruneOutcome, PruneError> {
    let path = sink.path();
    let io =
        |what: &str, e: std::io::Error| PruneError::Io(format!("{what} {}: {e}", path.display()));
    // The writers' lock, held while the set is checked and measured: no
    // append or rotation interleaves. (It is released before the prune
    // record is appended through the sink, which takes it itself.)
    let live = lock_current(path).map_err(|e| io("cannot open and lock", e))?;
    let reader = live.try_clone().map_err(|e| io("cannot read", e))?;
    let report =
        verify_set(path, reader, VerifyOptions::default()).map_err(|e| io("cannot read", e))?;
    if let Some(damage) = report.damage {
        return Err(PruneError::Damaged(damage));
    }
    if report.torn_tail_bytes > 0 {
        return Err(PruneError::TornTail);
    }
    let (mut bytes, mut last_seal) = match &report.pruned {
        Some(pruned) => (pruned.after.bytes, pruned.after.last_seal.clone()),
        None => (0, None),
    };
    let live_id = identity(&live.metadata().map_err(|e| io("cannot stat", e))?);
    let mut dropped = Vec::new();
    // Whether every rotated file goes: then `before` must not pass the live file's start.
    let mut all_rotated = true;
    for rotated in rotated_files(path).map_err(|e| io("cannot list the rotated files of", e))? {
        let file = crate::small_file::open_regular_read(&rotated)
            .map_err(|e| io("cannot open a rotated file of", e))?;
        let meta = file.metadata().map_err(|e| io("cannot stat", e))?;
        // A crash mid-rotation can leave a second name for the live file.
        if identity(&meta) == live_id {
            continue;
        }
        let span = span(rotated, file, bytes, last_seal.clone())
            .map_err(|e| io("cannot read a rotated file of", e))?;
        if span.last_seq >= before {
            if span.first_seq < before {
                return Err(PruneError::InsideFile {
                    before,
                    file: span.path,
                    first_seq: span.first_seq,
                    last_seq: span.last_seq,
                });
            }
            all_rotated = false;
            break;
        }
        if let Some(exp) = span.spent_until {
            let until = exp.plus_seconds(SPENT_MARGIN_SECONDS);
            if until >= facts::now() {
                return Err(PruneError::TokenUnexpired {
                    file: span.path,
                    until: until.to_string(),
                });
            }
        }
        bytes = span.bytes;
        last_seal.clone_from(&span.last_seal);
        dropped.push(span);
    }
    if all_rotated {
        let live_start = live_first_seq(&live)
            .map_err(|e| io("cannot read", e))?
            .unwrap_or(report.head_seq + 1);
        if before > live_start {
            return Err(PruneError::LiveFile { before, live_start });
        }
    }
    let (Some(first), Some(last)) = (dropped.first(), dropped.last()) else {
        let start_seq = report.pruned.as_ref().map_or(1, |p| p.start_seq);
        return Ok(PruneOutcome::Nothing { start_seq });
    };
    let (first_seq, last_seq) = (first.first_seq, last.last_seq);
    drop(live);

    let names: Vec<String> = dropped
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    let mut event = AuditEvent::new(EventKind::Prune);
    event.actor = Some(facts::current_actor());
    event.message = Some(format!(
        "pruned records {first_seq}..{last_seq} (before record {before}): {}",
        names.join(", ")
    ));
    event.prune = Some(PruneInfo {
        before,
        files: dropped
            .iter()
            .map(|s| PrunedFile {
                file: s.path.display().to_string(),
                first_seq: s.first_seq,
                last_seq: s.last_seq,
                last_hash: s.last_hash.clone(),
                bytes: s.bytes,
                last_seal: s.last_seal.clone(),
            })
            .collect(),
    });
    // The record first: a prune cut short then leaves a set that starts
    // after one of the files it names, which it explains.
    let receipt = sink.append(&event)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    for span in &dropped {
        match std::fs::remove_file(&span.path) {
            Ok(()) => {}
            // Another prune got there first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("cannot remove a pruned file of", e)),
        }
        // Oldest first, each removal durable before the next.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("cannot sync the directory of", e))?;
    }
    Ok(PruneOutcome::Pruned {
        files: dropped.into_iter().map(|s| s.path).collect(),
        first_seq,
        last_seq,
        record_seq: receipt.seq,
    })
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// The seq of the live file's first record (`None` when it is empty), read
/// with `pread` so the locked descriptor's offset is left alone.
fn live_first_seq(live: &File) -> std::io::Result<Option<u64>> {
    let mut first = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = std::os::unix::fs::FileExt::read_at(live, &mut buf, first.len() as u64)?;
        let chunk = buf.get(..n).unwrap_or_default();
        if let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            first.extend_from_slice(chunk.get(..end).unwrap_or_default());
            break;
        }
        first.extend_from_slice(chunk);
        if n == 0 || first.len() > MAX_RECORD_BYTES {
            break;
        }
    }
    Ok(serde_json::from_slice::<Record>(&first).ok().map(|r| r.seq))
}

/// A rotated file's seq range, last hash and last seal (the one before it
/// when it has none), and the log's length up to its end (`bytes_before` +
/// its length). The set verified, so its records parse.
fn span(
    path: PathBuf,
    file: File,
    bytes_before: u64,
    mut last_seal: Option<PrunedSeal>,
) -> std::io::Result<Span> {
    const SEAL: &[u8] = b",\"kind\":\"seal\",";
    const TOKEN: &[u8] = b"\"token_id\":";
    let mut spent_until: Option<Timestamp> = None;
    let bad = |what: &str| std::io::Error::other(format!("{}: {what}", path.display()));
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let (mut first, mut last): (Option<Record>, Option<Vec<u8>>) = (None, None);
    let mut len = 0u64;
    loop {
        let n = next_line(&mut reader, &mut line)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        let text = line.trim_ascii_end();
        if first.is_none() {
            first = Some(serde_json::from_slice(text).map_err(|e| bad(&e.to_string()))?);
        }
        if line.windows(SEAL.len()).any(|w| w == SEAL) {
            let record: Record = serde_json::from_slice(text).map_err(|e| bad(&e.to_string()))?;
            if let Some(seal) = record.event.seal {
                last_seal = Some(PrunedSeal {
                    seq: record.seq,
                    prev: record.prev,
                    seal,
                });
            }
        }
        if line.windows(TOKEN.len()).any(|w| w == TOKEN) {
            let record: Record = serde_json::from_slice(text).map_err(|e| bad(&e.to_string()))?;
            if record.event.kind == EventKind::Intent
                && let Some(confirm) = &record.event.confirm
                && confirm.token_id.is_some()
            {
                let exp = confirm.exp.unwrap_or(Timestamp::from_unix_micros(i64::MAX));
                spent_until = Some(spent_until.map_or(exp, |t: Timestamp| t.max(exp)));
            }
        }
        last = Some(text.to_vec());
    }
    let (Some(first), Some(last)) = (first, last) else {
        return Err(bad("an empty rotated file"));
    };
    let last: Record = serde_json::from_slice(&last).map_err(|e| bad(&e.to_string()))?;
    let last_hash = last
        .hash
        .ok_or_else(|| bad("its last record has no hash"))?;
    Ok(Span {
        path,
        first_seq: first.seq,
        last_seq: last.seq,
        last_hash,
        spent_until,
        bytes: bytes_before + len,
        last_seal,
    })
}
