//! The verifier as it was before the batch reader, the scanner and the
//! runs (one thread, `read_until`, the strict parser), kept as the
//! reference the tests compare the verifier with.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use prodguard_core::audit::{ChainVerifier, GENESIS_PREV, MAX_RECORD_BYTES, SealChecker, SealKey};

use super::{Anchor, AnchorCheck, Damage, VerifyReport, check_anchor};

pub(super) fn verify_files_reference(
    files: Vec<(PathBuf, File)>,
    anchor: Option<&Anchor>,
    seal_key: Option<&SealKey>,
    verifier: Option<ChainVerifier>,
) -> std::io::Result<VerifyReport> {
    let mut seals = seal_key.map(|k| SealChecker::new(k.clone()));
    let mut verifier = verifier.unwrap_or_default();
    let mut report = VerifyReport {
        records: 0,
        head_seq: 0,
        total_bytes: 0,
        log_id: None,
        head_hash: GENESIS_PREV.to_owned(),
        good_bytes: 0,
        damage: None,
        torn_tail_bytes: 0,
        torn_tail_is_record: false,
        anchor: anchor.map(|_| AnchorCheck::NotReached),
        seals: 0,
        unsealed_tail: None,
    };
    let mut offset = 0u64;
    let count = files.len();
    let mut batch = Vec::new();
    let mut lines: Vec<(usize, usize)> = Vec::new();
    'files: for (index, (path, file)) in files.into_iter().enumerate() {
        let last_file = index + 1 == count;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let mut line_no = 0u64;
        let mut file_offset = 0u64;
        loop {
            let end_of_file = read_batch(&mut reader, &mut batch, &mut lines)?;
            // Each line is parsed and hashed on its own, spread over the
            // cores; the chain itself is then checked in order.
            let mut prechecked = if report.damage.is_none() {
                lines
                    .iter()
                    .map(|&(begin, n)| &batch[begin..begin + n])
                    .filter(|line| line.last() == Some(&b'\n'))
                    .map(ChainVerifier::precheck_strict)
                    .collect()
            } else {
                Vec::new()
            }
            .into_iter();
            for &(begin, n) in &lines {
                let line = &batch[begin..begin + n];
                line_no += 1;
                let start = file_offset;
                file_offset += n as u64;
                if line.last() != Some(&b'\n') {
                    if n > MAX_RECORD_BYTES {
                        if report.damage.is_none() {
                            report.damage = Some(Damage {
                                file: path.clone(),
                                line: line_no,
                                offset: start,
                                expected_seq: verifier.next_seq(),
                                problem: format!(
                                    "a line longer than any record ({MAX_RECORD_BYTES} bytes)"
                                ),
                            });
                        }
                    } else if last_file {
                        report.torn_tail_bytes = n as u64;
                        // A record that lost only its newline is whole: repair
                        // restores the newline instead of cutting it.
                        report.torn_tail_is_record =
                            report.damage.is_none() && verifier.clone().push(line).is_ok();
                    } else if report.damage.is_none() {
                        report.damage = Some(Damage {
                            file: path.clone(),
                            line: line_no,
                            offset: start,
                            expected_seq: verifier.next_seq(),
                            problem: "a rotated file ends with an incomplete record".into(),
                        });
                    }
                    break 'files;
                }
                offset += n as u64;
                if report.damage.is_some() {
                    continue;
                }
                let Some(line) = prechecked.next() else {
                    continue;
                };
                let checked = verifier
                    .advance(line)
                    .map_err(|e| e.to_string())
                    .and_then(|link| match (&mut seals, &link.seal) {
                        (Some(checker), Some(seal)) => checker
                            .check(&link.log_id, link.seq, &link.prev, seal)
                            .map(|()| link),
                        _ => Ok(link),
                    });
                match checked {
                    Ok(link) => {
                        if link.seal.is_some() && seals.is_some() {
                            report.seals += 1;
                        }
                        report.records += 1;
                        report.head_seq = link.seq;
                        report.good_bytes = if last_file { file_offset } else { 0 };
                        report.total_bytes = offset;
                        if let Some(anchor) = anchor
                            && link.seq == anchor.seq
                        {
                            report.anchor = Some(check_anchor(
                                anchor,
                                &link.log_id,
                                verifier.head_hash(),
                                offset,
                            ));
                        }
                    }
                    Err(problem) => {
                        report.damage = Some(Damage {
                            file: path.clone(),
                            line: line_no,
                            offset: start,
                            expected_seq: verifier.next_seq(),
                            problem,
                        })
                    }
                }
            }
            if end_of_file {
                break;
            }
        }
    }
    report.head_hash = verifier.head_hash().to_owned();
    report.log_id = verifier.log_id().map(str::to_owned);
    if let Some(checker) = &seals {
        let sealed = checker.last_sealed_seq();
        report.unsealed_tail = Some(report.head_seq.saturating_sub(sealed));
    }
    Ok(report)
}

/// How much of a file is read and prechecked at once.
const BATCH_BYTES: usize = 64 << 10;

/// Reads whole lines into `batch` (their starts and lengths into `lines`)
/// until it holds about [`BATCH_BYTES`]; returns whether the file ended. A
/// line without its newline is always the batch's last.
fn read_batch(
    reader: &mut impl BufRead,
    batch: &mut Vec<u8>,
    lines: &mut Vec<(usize, usize)>,
) -> std::io::Result<bool> {
    batch.clear();
    lines.clear();
    while batch.len() < BATCH_BYTES {
        let begin = batch.len();
        // No line is longer than a record may be: a huge one is damage,
        // not a reason to read the whole file into memory.
        let n = reader
            .take(MAX_RECORD_BYTES as u64 + 1)
            .read_until(b'\n', batch)?;
        if n == 0 {
            return Ok(true);
        }
        lines.push((begin, n));
        if batch.last() != Some(&b'\n') {
            return Ok(true);
        }
    }
    Ok(false)
}
