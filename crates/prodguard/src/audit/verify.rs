//! Checking a whole log (verify): one streaming read, line by line, each
//! line pushed into the core's [`ChainVerifier`].

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use prodguard_core::audit::{
    ChainVerifier, EventKind, GENESIS_PREV, MAX_RECORD_BYTES, PrunedFile, Record, SealChecker,
    SealKey, is_whole_record,
};
use serde::Deserialize;

use super::anchor::check_anchor;
use super::{Anchor, AnchorCheck};
use crate::small_file::open_regular_read;

/// The first record that does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// The file it is in.
    pub file: PathBuf,
    /// 1-based line number in that file.
    pub line: u64,
    /// Byte offset where the line starts.
    pub offset: u64,
    /// The seq the chain expected there.
    pub expected_seq: u64,
    /// What is wrong with it.
    pub problem: String,
}

/// The result of checking a whole log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Complete records that verified, from the first.
    pub records: u64,
    /// The last good record's seq.
    pub head_seq: u64,
    /// Bytes of the whole set (rotated files included) up to the last good record.
    pub total_bytes: u64,
    /// The log's identity (from its first record).
    pub log_id: Option<String>,
    /// The last good record's hash ([`GENESIS_PREV`] for an empty log).
    pub head_hash: String,
    /// Bytes of the current (last) file up to the end of its last good record.
    pub good_bytes: u64,
    /// The first bad record, if any.
    pub damage: Option<Damage>,
    /// Bytes after the last newline (an incomplete final record).
    pub torn_tail_bytes: u64,
    /// Those bytes are a whole record that lost only its newline.
    pub torn_tail_is_record: bool,
    /// How the log relates to the anchor given, if one was.
    pub anchor: Option<AnchorCheck>,
    /// Seal records that verified (only counted with a seal key).
    pub seals: u64,
    /// With a seal key: records after the last valid seal.
    pub unsealed_tail: Option<u64>,
    /// The log's start was pruned, and a prune record explains it.
    pub pruned: Option<PrunedStart>,
}

/// A pruned start and the prune record that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrunedStart {
    /// The first record the log still holds.
    pub start_seq: u64,
    /// The prune record's seq.
    pub by_seq: u64,
    /// The dropped file the kept chain starts after (its anchor).
    pub after: PrunedFile,
}

/// What `verify` checks besides the chain.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// An anchor from `prodguard audit head` the log must still reach.
    pub anchor: Option<&'a Anchor>,
    /// The verification key: every seal is checked with it.
    pub seal_key: Option<&'a SealKey>,
    /// How often the log's writers seal (`[audit] seal_every`), when
    /// known: with a seal key, a longer stretch without a seal than the
    /// writer allows ([`max_unsealed`](prodguard_core::audit::max_unsealed))
    /// is tampering, not an unsealed tail.
    pub seal_every: Option<u64>,
}

impl VerifyReport {
    /// The report before any record: with an anchor, not reached yet.
    pub(crate) fn start(anchor: Option<&Anchor>) -> Self {
        VerifyReport {
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
            pruned: None,
        }
    }

    /// Counts record `seq` of log `log_id` as verified; the chain's head is
    /// now `head_hash`, `total_bytes` into the set (`good_bytes` into its
    /// last file). Checks the anchor when this is its record.
    pub(crate) fn accept(
        &mut self,
        (seq, log_id, head_hash): (u64, &str, &str),
        total_bytes: u64,
        good_bytes: u64,
        anchor: Option<&Anchor>,
    ) {
        self.records += 1;
        self.head_seq = seq;
        self.total_bytes = total_bytes;
        self.good_bytes = good_bytes;
        if let Some(anchor) = anchor
            && seq == anchor.seq
        {
            self.anchor = Some(check_anchor(anchor, log_id, head_hash, total_bytes));
        }
    }

    /// Records where the chain ended: its head and the log's identity.
    pub(crate) fn finish(&mut self, verifier: &ChainVerifier) {
        self.head_hash = verifier.head_hash().to_owned();
        self.log_id = verifier.log_id().map(str::to_owned);
    }

    /// Whether every record verified, nothing trails, and any anchor was reached.
    pub fn intact(&self) -> bool {
        self.damage.is_none()
            && self.torn_tail_bytes == 0
            && matches!(self.anchor, None | Some(AnchorCheck::Reached))
            && self.unsealed_tail.unwrap_or(0) == 0
    }

    /// The head as an anchor, once at least one record verified.
    pub fn head_anchor(&self) -> Option<Anchor> {
        Some(Anchor {
            log_id: self.log_id.clone()?,
            seq: self.head_seq,
            hash: self.head_hash.clone(),
            bytes: self.total_bytes,
        })
    }

    /// The `prodguard audit verify` exit code: 0 intact, 1 tampered (an
    /// edit, deletion, reorder, splice, bad or missing seal), 2 torn tail
    /// that repair can cut, 3 records after the last seal, the anchor not
    /// reached or pruned.
    pub fn exit_code(&self) -> i32 {
        if self.damage.is_some() || matches!(self.anchor, Some(AnchorCheck::Mismatch(_))) {
            1
        } else if self.torn_tail_bytes > 0 {
            2
        } else if matches!(
            self.anchor,
            Some(AnchorCheck::NotReached | AnchorCheck::Pruned { .. })
        ) || self.unsealed_tail.unwrap_or(0) > 0
        {
            3
        } else {
            0
        }
    }
}

/// Verifies the chain of the log at `path` — its rotated files first
/// (`path.1`, `path.2`, …), then `path` — streaming, against `anchor` if given.
pub fn verify_file(path: &Path, anchor: Option<&Anchor>) -> std::io::Result<VerifyReport> {
    verify_file_sealed(path, anchor, None)
}

/// Like [`verify_file`], also checking every seal with `seal_key` (an
/// epoch's key kept off the host): epochs must be continuous and each MAC
/// valid; records after the last seal are reported as an unsealed tail.
pub fn verify_file_sealed(
    path: &Path,
    anchor: Option<&Anchor>,
    seal_key: Option<&SealKey>,
) -> std::io::Result<VerifyReport> {
    verify_log(
        path,
        VerifyOptions {
            anchor,
            seal_key,
            seal_every: None,
        },
    )
}

/// Verifies the log at `path` — its rotated files first, then `path` —
/// with everything `options` asks for. A set whose oldest files were
/// pruned verifies from the anchor its prune record carries.
pub fn verify_log(path: &Path, options: VerifyOptions<'_>) -> std::io::Result<VerifyReport> {
    // Open the current file before listing the rotated ones: a rotation in
    // between then only adds a name for the file already open (skipped below).
    let current = open_regular_read(path)?;
    verify_set(path, current, options)
}

/// Verifies the rotated files of `path` and then `current`, the file open at `path`.
pub(super) fn verify_set(
    path: &Path,
    current: File,
    options: VerifyOptions<'_>,
) -> std::io::Result<VerifyReport> {
    use std::os::unix::fs::MetadataExt;
    let here = current.metadata()?;
    let mut files = Vec::new();
    for rotated in rotated_files(path)? {
        let file = open_regular_read(&rotated)?;
        let meta = file.metadata()?;
        // A crash between linking the full log aside and renaming its
        // successor into place leaves two names for one file: read it once.
        if meta.dev() == here.dev() && meta.ino() == here.ino() {
            continue;
        }
        files.push((rotated, file));
    }
    files.push((path.to_owned(), current));
    let start = pruned_start(&files)?;
    verify_files(
        files,
        options,
        start.map(Start::Pruned).unwrap_or(Start::Set),
    )
}

/// The set's first record when it is not the log's first (its start was
/// pruned, or deleted), with the prune record that explains it, if one does.
fn pruned_start(files: &[(PathBuf, File)]) -> std::io::Result<Option<PrunedAt>> {
    use std::io::{Seek, SeekFrom};
    #[derive(Deserialize)]
    struct First {
        seq: u64,
        prev: String,
        log_id: String,
    }
    let Some((_, first_file)) = files.first() else {
        return Ok(None);
    };
    let mut first = Vec::new();
    let mut reader = BufReader::new(first_file);
    (&mut reader)
        .take(MAX_RECORD_BYTES as u64)
        .read_until(b'\n', &mut first)?;
    drop(reader);
    // The walk reads the files from their start again.
    (&*first_file).seek(SeekFrom::Start(0))?;
    let Ok(first) = serde_json::from_slice::<First>(first.strip_suffix(b"\n").unwrap_or(&first))
    else {
        return Ok(None);
    };
    if first.seq == 1 && first.prev == GENESIS_PREV {
        return Ok(None);
    }
    // Look for the prune records that name this start; the walk that
    // follows checks that the one used is a record of the chain.
    const NEEDLE: &[u8] = b",\"kind\":\"prune\",";
    let mut explained = None;
    let mut line = Vec::new();
    for (_, file) in files {
        let mut reader = BufReader::with_capacity(READ_BYTES, file);
        loop {
            let n = next_line(&mut reader, &mut line)?;
            if n == 0 {
                break;
            }
            if !line.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
                continue;
            }
            let Ok(record) = serde_json::from_slice::<Record>(line.trim_ascii_end()) else {
                continue;
            };
            let (Some(prune), Some(hash)) = (&record.event.prune, &record.hash) else {
                continue;
            };
            if record.event.kind != EventKind::Prune || record.log_id != first.log_id {
                continue;
            }
            if let Some(after) = prune
                .files
                .iter()
                .find(|f| f.last_seq.checked_add(1) == Some(first.seq) && f.last_hash == first.prev)
            {
                explained = Some((record.seq, hash.clone(), after.clone()));
            }
        }
        drop(reader);
        (&*file).seek(SeekFrom::Start(0))?;
    }
    Ok(Some(PrunedAt {
        seq: first.seq,
        prev: first.prev,
        log_id: first.log_id,
        explained,
    }))
}

/// A set that does not start at the log's first record.
struct PrunedAt {
    seq: u64,
    prev: String,
    log_id: String,
    /// The prune record that explains it: its seq, its hash, and the
    /// dropped file the set starts after.
    explained: Option<(u64, String, PrunedFile)>,
}

/// Where a walk starts.
enum Start {
    /// At the log's first record.
    Set,
    /// After pruned (or deleted) files.
    Pruned(PrunedAt),
    /// A single file taken on its own terms.
    Given(ChainVerifier),
}

/// Reads the next line of a log into `line` (cleared first), with its
/// newline; 0 at the end. No line is read past one byte more than a record
/// may be: a huge one is damage, not a reason to read a file into memory.
pub(super) fn next_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<usize> {
    line.clear();
    reader
        .take(MAX_RECORD_BYTES as u64 + 1)
        .read_until(b'\n', line)
}

/// The rotated files of the log at `path` (`path.N`), oldest first.
pub fn rotated_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(Vec::new());
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!("{name}.");
    let mut numbered: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = file_name
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<u64>().ok())
        {
            numbered.push((n, entry.path()));
        }
    }
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, p)| p).collect())
}

/// Verifies one file on its own terms: its first record's `prev` and `seq`
/// are taken as given (it may continue a rotated file), the rest must chain.
pub fn verify_single_file(path: &Path) -> std::io::Result<VerifyReport> {
    let start = {
        let mut first = Vec::new();
        BufReader::new(open_regular_read(path)?)
            .take(MAX_RECORD_BYTES as u64)
            .read_until(b'\n', &mut first)?;
        #[derive(Deserialize)]
        struct Start {
            seq: u64,
            prev: String,
        }
        serde_json::from_slice::<Start>(first.strip_suffix(b"\n").unwrap_or(&first)).ok()
    };
    let verifier = match start {
        Some(start) => ChainVerifier::resume(start.prev, start.seq, None),
        None => ChainVerifier::new(),
    };
    verify_files(
        vec![(path.to_owned(), open_regular_read(path)?)],
        VerifyOptions::default(),
        Start::Given(verifier),
    )
}

fn verify_files(
    files: Vec<(PathBuf, File)>,
    options: VerifyOptions<'_>,
    start: Start,
) -> std::io::Result<VerifyReport> {
    let VerifyOptions {
        anchor,
        seal_key,
        seal_every,
    } = options;
    let mut seals = seal_key.map(|k| SealChecker::new(k.clone()));
    let mut report = VerifyReport::start(anchor);
    // Bytes of the set up to the end of the last complete line read.
    let mut offset = 0u64;
    // A problem found before the walk, reported at the first line.
    let mut at_start: Option<String> = None;
    // The prune record that explains a pruned start: (seq, hash), until
    // the walk has verified it.
    let mut unconfirmed_prune: Option<(u64, String)> = None;
    let mut verifier = match start {
        Start::Set => ChainVerifier::new(),
        Start::Given(verifier) => verifier,
        Start::Pruned(PrunedAt {
            seq,
            prev,
            log_id,
            explained: None,
        }) => {
            at_start = Some(format!(
                "the log starts at record {seq}: the records before it are missing and no prune record explains them (were rotated files deleted instead of pruned with `prodguard audit prune`?)"
            ));
            ChainVerifier::resume(prev, seq, Some(log_id))
        }
        Start::Pruned(PrunedAt {
            seq,
            prev,
            log_id,
            explained: Some((by_seq, hash, after)),
        }) => {
            offset = after.bytes;
            if let (Some(key), Some(last)) = (seal_key, &after.last_seal) {
                match SealChecker::resume(key.clone(), &log_id, last.seq, &last.prev, &last.seal) {
                    Ok(checker) => seals = Some(checker),
                    Err(problem) => at_start = Some(problem),
                }
            }
            if let Some(anchor) = anchor
                && anchor.seq <= after.last_seq
            {
                report.anchor = Some(if anchor.seq == after.last_seq {
                    check_anchor(anchor, &log_id, &after.last_hash, after.bytes)
                } else {
                    AnchorCheck::Pruned { start_seq: seq }
                });
            }
            unconfirmed_prune = Some((by_seq, hash));
            report.pruned = Some(PrunedStart {
                start_seq: seq,
                by_seq,
                after,
            });
            ChainVerifier::resume(prev, seq, Some(log_id))
        }
    };
    // With seal_every known: the first record that came too long after
    // the last seal, until a seal follows it.
    let mut overdue: Option<Damage> = None;
    let mut line = Vec::new();
    let count = files.len();
    'files: for (index, (path, file)) in files.into_iter().enumerate() {
        let last_file = index + 1 == count;
        let mut reader = BufReader::with_capacity(READ_BYTES, file);
        let mut line_no = 0u64;
        // Bytes of this file read so far: the end of the last line.
        let mut file_offset = 0u64;
        loop {
            let n = next_line(&mut reader, &mut line)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let start = file_offset;
            file_offset += n as u64;
            let damage = |verifier: &ChainVerifier, problem: String| Damage {
                file: path.clone(),
                line: line_no,
                offset: start,
                expected_seq: verifier.next_seq(),
                problem,
            };
            if line.last() != Some(&b'\n') {
                if n > MAX_RECORD_BYTES {
                    if report.damage.is_none() {
                        report.damage = Some(damage(
                            &verifier,
                            format!("a line longer than any record ({MAX_RECORD_BYTES} bytes)"),
                        ));
                    }
                } else if last_file {
                    let pushed = verifier.clone().push(&line);
                    if report.damage.is_none()
                        && let Err(problem) = &pushed
                        && is_whole_record(&line)
                    {
                        // A whole record that does not verify was changed,
                        // not torn by a crash: evidence, never cut.
                        report.damage = Some(damage(&verifier, problem.to_string()));
                    } else {
                        report.torn_tail_bytes = n as u64;
                        // A record that lost only its newline is whole: repair
                        // restores the newline instead of cutting it.
                        report.torn_tail_is_record = report.damage.is_none() && pushed.is_ok();
                    }
                } else if report.damage.is_none() {
                    report.damage = Some(damage(
                        &verifier,
                        "a rotated file ends with an incomplete record".into(),
                    ));
                }
                break 'files;
            }
            offset += n as u64;
            if let Some(problem) = at_start.take() {
                report.damage = Some(damage(&verifier, problem));
            }
            // After the first damage nothing can verify; the rest is only
            // read to the end, for a torn tail.
            if report.damage.is_some() {
                continue;
            }
            let checked = verifier
                .push(&line)
                .map_err(|e| e.to_string())
                .and_then(|link| match (&mut seals, &link.seal) {
                    (Some(checker), Some(seal)) => checker
                        .check(&link.log_id, link.seq, &link.prev, seal)
                        .map(|()| link),
                    _ => Ok(link),
                });
            match checked {
                Ok(link) => {
                    if let Some(checker) = &seals {
                        if link.seal.is_some() {
                            report.seals += 1;
                            // A seal after a long stretch: its epoch
                            // follows the last, so no seal was removed.
                            overdue = None;
                        } else if let Some(every) = seal_every
                            && overdue.is_none()
                            && checker.overdue(link.seq, every)
                        {
                            let last = checker.last_sealed_seq();
                            let after = if last == 0 {
                                "the log's start".to_owned()
                            } else {
                                format!("the seal at record {last}")
                            };
                            overdue = Some(Damage {
                                expected_seq: link.seq,
                                ..damage(
                                    &verifier,
                                    format!(
                                        "a seal is missing: none follows {after}, though this log is sealed every {every} records, so a seal should have followed record {} (record {} at the latest, had a writer that does not seal deferred it); the seals after it were removed — unless sealing was turned on or seal_every lowered since, in which case `prodguard audit seal` seals the log now (a log whose seals were removed still fails)",
                                        last.saturating_add(every),
                                        last.saturating_add(prodguard_core::audit::max_unsealed(
                                            every
                                        )),
                                    ),
                                )
                            });
                        }
                    }
                    if unconfirmed_prune
                        .as_ref()
                        .is_some_and(|(seq, hash)| *seq == link.seq && *hash == link.hash)
                    {
                        unconfirmed_prune = None;
                    }
                    report.accept(
                        (link.seq, &link.log_id, verifier.head_hash()),
                        offset,
                        if last_file { file_offset } else { 0 },
                        anchor,
                    );
                }
                Err(problem) => report.damage = Some(damage(&verifier, problem)),
            }
        }
    }
    if let Some(problem) = at_start {
        // Nothing was read: an empty first file.
        report.damage.get_or_insert(Damage {
            file: PathBuf::new(),
            line: 0,
            offset: 0,
            expected_seq: verifier.next_seq(),
            problem,
        });
    }
    if report.damage.is_none() {
        report.damage = overdue;
    }
    if report.damage.is_none()
        && let Some((seq, _)) = unconfirmed_prune
    {
        report.damage = Some(Damage {
            file: PathBuf::new(),
            line: 0,
            offset: 0,
            expected_seq: seq,
            problem: format!(
                "the prune record at seq {seq}, which explains where the log starts, is not a record of its chain"
            ),
        });
    }
    report.finish(&verifier);
    if let Some(checker) = &seals {
        let sealed = checker.last_sealed_seq();
        report.unsealed_tail = Some(report.head_seq.saturating_sub(sealed));
    }
    Ok(report)
}

/// How much of a file is read at once.
const READ_BYTES: usize = 256 << 10;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use prodguard_core::Timestamp;
    use prodguard_core::audit::{AuditEvent, Envelope, EventKind, encode_record};

    /// `n` records from `first_seq` chained to `prev`, every fifth a seal
    /// (the key evolving as a writer's does); returns the bytes, the head
    /// and, for each record, its seq, hash and the end of its line.
    fn log(
        first_seq: u64,
        prev: &str,
        n: u64,
        key: &mut SealKey,
    ) -> (Vec<u8>, String, Vec<(u64, String, u64)>) {
        let mut prev = prev.to_owned();
        let mut bytes = Vec::new();
        let mut heads = Vec::new();
        for seq in first_seq..first_seq + n {
            let envelope = Envelope {
                log_id: "log-1".into(),
                seq,
                ts: Timestamp(1_700_000_000_000_000 + seq as i64),
                host: "host".into(),
                pid: 9,
            };
            let event = if seq % 5 == 0 {
                let mut seal = AuditEvent::new(EventKind::Seal);
                seal.seal = Some(key.seal("log-1", seq, &prev));
                *key = key.evolve();
                seal
            } else {
                AuditEvent::note(format!("note {seq}: tab\t \"quoted\" ünï"))
            };
            let (line, hash) = encode_record(&envelope, &event, &prev).unwrap();
            bytes.extend_from_slice(&line);
            heads.push((seq, hash.clone(), bytes.len() as u64));
            prev = hash;
        }
        (bytes, prev, heads)
    }

    #[test]
    fn a_rotated_sealed_set_verifies_to_its_anchor_and_its_last_seal() {
        let tmp = tempfile::Builder::new()
            .prefix("prodguard-verify-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        let first_key = SealKey {
            epoch: 0,
            key: [3; 32],
        };
        let mut key = first_key.clone();
        let (old, head, heads) = log(1, GENESIS_PREV, 300, &mut key);
        let (current, last, _) = log(301, &head, 102, &mut key);
        let paths = [dir.join("log.1"), dir.join("log")];
        std::fs::write(&paths[0], &old).unwrap();
        std::fs::write(&paths[1], &current).unwrap();
        let open = || -> Vec<(PathBuf, File)> {
            paths
                .iter()
                .map(|p| (p.clone(), File::open(p).unwrap()))
                .collect()
        };
        let (seq, hash, bytes) = heads[149].clone();
        let anchor = Anchor {
            log_id: "log-1".into(),
            seq,
            hash,
            bytes,
        };
        let options = |anchor, seal_key| VerifyOptions {
            anchor,
            seal_key,
            seal_every: None,
        };
        let report =
            verify_files(open(), options(Some(&anchor), Some(&first_key)), Start::Set).unwrap();
        assert_eq!((report.records, report.head_seq), (402, 402));
        assert_eq!(report.head_hash, last);
        assert_eq!(report.total_bytes, (old.len() + current.len()) as u64);
        assert_eq!(report.good_bytes, current.len() as u64);
        assert_eq!(report.anchor, Some(AnchorCheck::Reached));
        assert_eq!((report.seals, report.unsealed_tail), (80, Some(2)));
        assert_eq!(report.exit_code(), 3, "two records after the last seal");
        // A later epoch's key cannot vouch for the first seal.
        let later = first_key.evolve();
        let report = verify_files(open(), options(None, Some(&later)), Start::Set).unwrap();
        assert_eq!(report.exit_code(), 1);
        assert_eq!(report.damage.unwrap().line, 5);
    }
}
