//! Checking a whole log (verify), anchoring its head, and cutting a torn tail (repair).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use prodguard_core::audit::{
    AuditEvent, ChainVerifier, EventKind, GENESIS_PREV, MAX_RECORD_BYTES, Prechecked, SealChecker,
    SealKey, Span,
};
use serde::{Deserialize, Serialize};

use super::{AuditError, AuditSink, FileSink};
use crate::facts;

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
pub enum AnchorCheck {
    /// The record at the anchor's seq has its hash and ends at its byte length.
    Reached,
    /// The log ends before the anchor: truncated or rolled back.
    NotReached,
    /// The record at the anchor's seq differs from the anchor: rewritten.
    Mismatch(String),
}

/// The first record that does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// Counts the records of `span` as verified, like [`VerifyReport::accept`]
    /// for each; `marked` is the anchor and the set's bytes up to the end of
    /// the span's record at its seq, when the span holds it.
    fn accept_span(
        &mut self,
        span: &Span,
        total_bytes: u64,
        good_bytes: u64,
        marked: Option<(&Anchor, u64)>,
    ) {
        self.records += span.records();
        self.head_seq = span.last_seq();
        self.total_bytes = total_bytes;
        self.good_bytes = good_bytes;
        if let (Some((anchor, bytes)), Some((_, hash))) = (marked, span.marked()) {
            self.anchor = Some(check_anchor(anchor, span.log_id(), hash, bytes));
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
    /// edit, deletion, reorder, splice, bad seal), 2 torn tail that repair
    /// can cut, 3 records after the last seal or the anchor not reached.
    pub fn exit_code(&self) -> i32 {
        if self.damage.is_some() || matches!(self.anchor, Some(AnchorCheck::Mismatch(_))) {
            1
        } else if self.torn_tail_bytes > 0 {
            2
        } else if matches!(self.anchor, Some(AnchorCheck::NotReached))
            || self.unsealed_tail.unwrap_or(0) > 0
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
    // Open the current file before listing the rotated ones: a rotation in
    // between then only adds a name for the file already open (skipped below).
    let current = File::open(path)?;
    verify_set(path, current, anchor, seal_key)
}

/// Verifies the rotated files of `path` and then `current`, the file open at `path`.
fn verify_set(
    path: &Path,
    current: File,
    anchor: Option<&Anchor>,
    seal_key: Option<&SealKey>,
) -> std::io::Result<VerifyReport> {
    use std::os::unix::fs::MetadataExt;
    let here = current.metadata()?;
    let mut files = Vec::new();
    for rotated in rotated_files(path)? {
        let file = File::open(&rotated)?;
        let meta = file.metadata()?;
        // A crash between linking the full log aside and renaming its
        // successor into place leaves two names for one file: read it once.
        if meta.dev() == here.dev() && meta.ino() == here.ino() {
            continue;
        }
        files.push((rotated, file));
    }
    files.push((path.to_owned(), current));
    verify_files(files, anchor, seal_key, None)
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
        BufReader::new(File::open(path)?)
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
        vec![(path.to_owned(), File::open(path)?)],
        None,
        None,
        Some(verifier),
    )
}

fn verify_files(
    files: Vec<(PathBuf, File)>,
    anchor: Option<&Anchor>,
    seal_key: Option<&SealKey>,
    verifier: Option<ChainVerifier>,
) -> std::io::Result<VerifyReport> {
    let mut walk = Walk {
        verifier: verifier.unwrap_or_default(),
        report: VerifyReport::start(anchor),
        seals: seal_key.map(|k| SealChecker::new(k.clone())),
        anchor,
        offset: 0,
    };
    let mut buffer = Vec::new();
    let mut lines = Vec::new();
    let count = files.len();
    for (index, (path, mut file)) in files.into_iter().enumerate() {
        let mut place = Place {
            path,
            last_file: index + 1 == count,
            line_no: 0,
            bytes: 0,
        };
        if walk.report.damage.is_none() {
            walk.spans(&file, &mut place);
        }
        if place.bytes > 0 {
            file.seek(SeekFrom::Start(place.bytes))?;
        }
        if !walk.lines(&mut place, file, &mut buffer, &mut lines)? {
            break;
        }
    }
    let Walk {
        verifier,
        mut report,
        seals,
        ..
    } = walk;
    report.finish(&verifier);
    if let Some(checker) = &seals {
        let sealed = checker.last_sealed_seq();
        report.unsealed_tail = Some(report.head_seq.saturating_sub(sealed));
    }
    Ok(report)
}

/// Where checking a set of files stands.
struct Walk<'a> {
    verifier: ChainVerifier,
    report: VerifyReport,
    seals: Option<SealChecker>,
    anchor: Option<&'a Anchor>,
    /// Bytes of the set up to the end of the last complete line read.
    offset: u64,
}

/// Where in one file of the set.
struct Place {
    path: PathBuf,
    last_file: bool,
    /// Lines read so far.
    line_no: u64,
    /// Bytes read so far: the end of the last complete line.
    bytes: u64,
}

impl Place {
    /// The line just read (starting at byte `start`) does not verify.
    fn damage(&self, start: u64, verifier: &ChainVerifier, problem: String) -> Damage {
        Damage {
            file: self.path.clone(),
            line: self.line_no,
            offset: start,
            expected_seq: verifier.next_seq(),
            problem,
        }
    }
}

impl Walk<'_> {
    /// Checks as much of `file` from its start as splits into clean
    /// [`Span`]s: its chunks are read and prechecked on all cores, then
    /// accepted in order. Stops before the first chunk that does not go
    /// through whole (damage, a torn tail, a seal that does not verify):
    /// from there [`Walk::lines`] checks line by line and says what is
    /// wrong, so the report is the one the lines alone give.
    fn spans(&mut self, file: &File, place: &mut Place) {
        let Ok(len) = file.metadata().map(|m| m.len()) else {
            return;
        };
        if len < SPANS_MIN_BYTES {
            return;
        }
        let Ok(chunks) = usize::try_from(len.div_ceil(CHUNK_BYTES)) else {
            return;
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let mark = self.anchor.map(|a| a.seq);
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let (sender, results) = std::sync::mpsc::channel();
            let mut workers = 0;
            for _ in 0..threads {
                let sender = sender.clone();
                let (next, stop) = (&next, &stop);
                let worker = move || {
                    let mut scratch = ChunkScratch::default();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= chunks || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let chunk = precheck_chunk(file, len, index as u64, mark, &mut scratch);
                        if sender.send((index, chunk)).is_err() {
                            break;
                        }
                    }
                };
                // A thread that cannot be started (process limits, a
                // sandbox) leaves its chunks to the others, or to `lines`.
                if std::thread::Builder::new()
                    .spawn_scoped(scope, worker)
                    .is_ok()
                {
                    workers += 1;
                }
            }
            drop(sender);
            if workers == 0 {
                return;
            }
            let mut waiting: Vec<Option<Chunk>> = (0..chunks).map(|_| None).collect();
            let mut wanted = 0;
            for (index, chunk) in results {
                if let Some(slot) = waiting.get_mut(index) {
                    *slot = Some(chunk);
                }
                while let Some(chunk) = waiting.get_mut(wanted).and_then(Option::take) {
                    if !self.accept_chunk(chunk, place) {
                        // The rest is checked line by line: stop the workers.
                        stop.store(true, Ordering::Relaxed);
                        return;
                    }
                    wanted += 1;
                }
            }
        });
    }

    /// Accepts a prechecked chunk that continues exactly where the file's
    /// checked part ends; `false` (and nothing changed) otherwise.
    fn accept_chunk(&mut self, chunk: Chunk, place: &mut Place) -> bool {
        let Chunk::Span {
            start,
            end,
            span,
            marked_end,
        } = chunk
        else {
            return matches!(chunk, Chunk::NoLineStarts);
        };
        if start != place.bytes || !self.verifier.advance_span(&span, self.seals.as_mut()) {
            return false;
        }
        if self.seals.is_some() {
            self.report.seals += span.seals();
        }
        let set_start = self.offset - place.bytes;
        self.offset = set_start + end;
        place.line_no += span.records();
        place.bytes = end;
        self.report.accept_span(
            &span,
            self.offset,
            if place.last_file { end } else { 0 },
            self.anchor.zip(marked_end.map(|end| set_start + end)),
        );
        true
    }

    /// Checks the rest of `file` (from where it is read) line by line;
    /// returns `false` when no later file should be read.
    fn lines(
        &mut self,
        place: &mut Place,
        file: File,
        buffer: &mut Vec<u8>,
        lines: &mut Vec<(usize, usize)>,
    ) -> std::io::Result<bool> {
        let Walk {
            verifier,
            report,
            seals,
            anchor,
            offset,
        } = self;
        let mut reader = BatchReader::new(file, buffer);
        loop {
            let end_of_file = reader.read_batch(lines)?;
            let batch = reader.batch();
            // Each line is parsed and hashed on its own, spread over the
            // cores; the chain itself is then checked in order.
            let mut prechecked = if report.damage.is_none() {
                precheck_all(batch, lines)
            } else {
                Vec::new()
            }
            .into_iter()
            .flatten();
            for &(begin, n) in lines.iter() {
                let line = &batch[begin..begin + n];
                place.line_no += 1;
                let start = place.bytes;
                place.bytes += n as u64;
                if line.last() != Some(&b'\n') {
                    if n > MAX_RECORD_BYTES {
                        if report.damage.is_none() {
                            report.damage = Some(place.damage(
                                start,
                                verifier,
                                format!("a line longer than any record ({MAX_RECORD_BYTES} bytes)"),
                            ));
                        }
                    } else if place.last_file {
                        report.torn_tail_bytes = n as u64;
                        // A record that lost only its newline is whole: repair
                        // restores the newline instead of cutting it.
                        report.torn_tail_is_record =
                            report.damage.is_none() && verifier.clone().push(line).is_ok();
                    } else if report.damage.is_none() {
                        report.damage = Some(place.damage(
                            start,
                            verifier,
                            "a rotated file ends with an incomplete record".into(),
                        ));
                    }
                    return Ok(false);
                }
                *offset += n as u64;
                if report.damage.is_some() {
                    continue;
                }
                let Some(line) = prechecked.next() else {
                    continue;
                };
                let checked = verifier
                    .advance_borrowed(line)
                    .map_err(|e| e.to_string())
                    .and_then(|link| match (&mut *seals, &link.seal) {
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
                        report.accept(
                            (link.seq, &link.log_id, verifier.head_hash()),
                            *offset,
                            if place.last_file { place.bytes } else { 0 },
                            *anchor,
                        );
                    }
                    Err(problem) => report.damage = Some(place.damage(start, verifier, problem)),
                }
            }
            if end_of_file {
                return Ok(true);
            }
        }
    }
}

/// How much of a file one worker prechecks as a span (small in unit tests,
/// so that small logs span many chunks).
const CHUNK_BYTES: u64 = if cfg!(test) { 16 << 10 } else { 1 << 20 };

/// Smaller files are checked line by line only.
const SPANS_MIN_BYTES: u64 = 2 * CHUNK_BYTES;

/// A chunk of a file, prechecked.
enum Chunk {
    /// The lines that start in the chunk form a [`Span`]; `start` and
    /// `end` are the file offsets of its first byte and of the byte after
    /// its last line's newline; `marked_end` where the marked record ends.
    Span {
        start: u64,
        end: u64,
        span: Box<Span>,
        marked_end: Option<u64>,
    },
    /// No line starts in it (a long line crosses it).
    NoLineStarts,
    /// Its lines must be checked one by one (or it could not be read).
    Irregular,
}

/// A worker's buffers, reused from chunk to chunk.
#[derive(Default)]
struct ChunkScratch {
    bytes: Vec<u8>,
    lines: Vec<(usize, usize)>,
}

/// Reads and prechecks chunk `index` of a file `len` bytes long: the lines
/// that start in it (a line starts at 0 and after each newline), the last
/// one read on past the chunk's end up to its newline. Lines are cut as
/// [`BatchReader`] cuts them; the chunk is irregular when one has no
/// newline within `MAX_RECORD_BYTES + 1` bytes or before `len`.
fn precheck_chunk(
    file: &File,
    len: u64,
    index: u64,
    mark: Option<u64>,
    scratch: &mut ChunkScratch,
) -> Chunk {
    let ChunkScratch { bytes, lines } = scratch;
    let begin = index * CHUNK_BYTES;
    let end = (begin + CHUNK_BYTES).min(len);
    // From the byte before the chunk: whether a line starts at `begin`.
    let from = begin.saturating_sub(1);
    bytes.clear();
    lines.clear();
    if !read_range(file, from, end, bytes) {
        return Chunk::Irregular;
    }
    let chunk_end = bytes.len();
    let mut pos = if begin == 0 {
        0
    } else {
        match memchr::memchr(b'\n', bytes) {
            Some(newline) if newline + 1 < chunk_end => newline + 1,
            _ => return Chunk::NoLineStarts,
        }
    };
    let first = pos;
    while pos < chunk_end {
        loop {
            let window_end = bytes.len().min(pos + MAX_RECORD_BYTES + 1);
            if let Some(newline) = memchr::memchr(b'\n', &bytes[pos..window_end]) {
                lines.push((pos, newline + 1));
                pos += newline + 1;
                break;
            }
            let read_to = from + bytes.len() as u64;
            if window_end == pos + MAX_RECORD_BYTES + 1
                || read_to >= len
                || !read_range(file, read_to, len.min(read_to + (64 << 10)), bytes)
            {
                return Chunk::Irregular;
            }
        }
    }
    let Some(span) = ChainVerifier::precheck_span(
        lines.iter().map(|&(start, n)| &bytes[start..start + n]),
        mark,
    ) else {
        return Chunk::Irregular;
    };
    let marked_end = span
        .marked()
        .and_then(|(i, _)| lines.get(usize::try_from(i).ok()?))
        .map(|&(start, n)| from + (start + n) as u64);
    Chunk::Span {
        start: from + first as u64,
        end: from + pos as u64,
        span: Box::new(span),
        marked_end,
    }
}

/// Appends the bytes of `file` from `from` to `to` to `bytes`; `false` if
/// they cannot all be read (the file shrank, or an error that the line by
/// line check then meets and reports).
fn read_range(file: &File, from: u64, to: u64, bytes: &mut Vec<u8>) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(want) = usize::try_from(to.saturating_sub(from)) else {
        return false;
    };
    let start = bytes.len();
    bytes.resize(start + want, 0);
    let read = file.read_exact_at(&mut bytes[start..], from).is_ok();
    if !read {
        bytes.truncate(start);
    }
    read
}

/// How much of a file is read and prechecked at once (small in unit tests,
/// so that small logs span batches).
const BATCH_BYTES: usize = if cfg!(test) { 64 << 10 } else { 4 << 20 };

/// Fewer complete lines than this in a batch are prechecked on one thread.
const PARALLEL_MIN_LINES: usize = if cfg!(test) { 16 } else { 256 };

/// Reads a file in batches of whole lines, straight into one buffer (no
/// copy through a `BufReader`).
struct BatchReader<'b> {
    file: File,
    buf: &'b mut Vec<u8>,
    /// The end of the last batch handed out: the bytes from here to `end`
    /// belong to the next one.
    start: usize,
    /// The end of the bytes read.
    end: usize,
    eof: bool,
}

impl<'b> BatchReader<'b> {
    fn new(file: File, buf: &'b mut Vec<u8>) -> Self {
        // Room for a batch plus the longest line that may straddle its end.
        buf.resize(BATCH_BYTES + MAX_RECORD_BYTES + 1, 0);
        BatchReader {
            file,
            buf,
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The bytes of the last batch (the positions in `lines` index them).
    fn batch(&self) -> &[u8] {
        self.buf.get(..self.start).unwrap_or_default()
    }

    /// Cuts the next batch into lines (their starts and lengths into
    /// `lines`) until it holds about [`BATCH_BYTES`]; returns whether the
    /// file ended. Lines are cut exactly as `read_until(b'\n')` over a
    /// reader limited to `MAX_RECORD_BYTES + 1` bytes a line would: a line
    /// without its newline (the file's end, or a line longer than any
    /// record, cut after `MAX_RECORD_BYTES + 1` bytes) is always the
    /// batch's last.
    fn read_batch(&mut self, lines: &mut Vec<(usize, usize)>) -> std::io::Result<bool> {
        lines.clear();
        // What the last batch left (part of a line) moves to the front.
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let mut pos = 0;
        loop {
            let window_end = self.end.min(pos + MAX_RECORD_BYTES + 1);
            let window = self.buf.get(pos..window_end).unwrap_or_default();
            if let Some(newline) = memchr::memchr(b'\n', window) {
                lines.push((pos, newline + 1));
                pos += newline + 1;
                if pos >= BATCH_BYTES {
                    self.start = pos;
                    return Ok(false);
                }
                continue;
            }
            if window.len() == MAX_RECORD_BYTES + 1 || (self.eof && !window.is_empty()) {
                lines.push((pos, window.len()));
                self.start = pos + window.len();
                return Ok(true);
            }
            if self.eof {
                self.start = pos;
                return Ok(true);
            }
            // The line is incomplete and shorter than a record may be: there
            // is room after it (`pos` < BATCH_BYTES), so read on.
            match self
                .file
                .read(self.buf.get_mut(self.end..).unwrap_or_default())
            {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Prechecks the complete lines of a batch on up to four threads; the
/// parts, in order, hold the lines in order.
fn precheck_all<'a>(batch: &'a [u8], lines: &[(usize, usize)]) -> Vec<Vec<Prechecked<'a>>> {
    let complete: Vec<&[u8]> = lines
        .iter()
        .map(|&(begin, n)| &batch[begin..begin + n])
        .filter(|line| line.last() == Some(&b'\n'))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    // Each part is a run: its lines are also checked against each other
    // while they are at hand, which leaves little to the ordered pass.
    let precheck = ChainVerifier::precheck_run;
    if threads < 2 || complete.len() < PARALLEL_MIN_LINES {
        return vec![precheck(&complete)];
    }
    let chunk = complete.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = complete.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        // A thread that cannot be started (process limits, a sandbox) only
        // means its chunk is checked here, later.
        let others: Vec<Result<_, &[&[u8]]>> = chunks
            .map(|lines| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || precheck(lines))
                    .map_err(|_| lines)
            })
            .collect();
        let mut parts = vec![precheck(first)];
        for other in others {
            match other {
                Ok(handle) => match handle.join() {
                    Ok(part) => parts.push(part),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                Err(lines) => parts.push(precheck(lines)),
            }
        }
        parts
    })
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
    let io =
        |what: &str, e: std::io::Error| RepairError::Io(format!("{what} {}: {e}", path.display()));
    // Hold the writers' lock on the file at the path for the whole repair, so
    // no append or rotation interleaves; reopen if it was rotated meanwhile.
    let file = lock_current(path).map_err(|e| io("cannot open and lock", e))?;
    let reader = file.try_clone().map_err(|e| io("cannot read", e))?;
    // The whole set must verify: damage anywhere is evidence, never repaired.
    let report = verify_set(path, reader, None, None).map_err(|e| io("cannot read", e))?;
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
        let receipt = FileSink::new(path).append(&event)?;
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
    let receipt = FileSink::new(path).append(&event)?;
    Ok(RepairOutcome::Cut {
        bytes: tail.len() as u64,
        saved_to,
        recovery_seq: receipt.seq,
    })
}

/// Opens and exclusively locks the file at `path`, reopening until the
/// locked file is still the one at the path (it may be rotated meanwhile).
fn lock_current(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..4 {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        file.lock()?;
        let (open, named) = (file.metadata()?, std::fs::metadata(path)?);
        if open.dev() == named.dev() && open.ino() == named.ino() {
            return Ok(file);
        }
    }
    Err(std::io::Error::other("the log keeps being replaced; retry"))
}

#[cfg(test)]
mod reference;

#[cfg(test)]
mod tests {
    //! The verifier against the one it replaced (`reference`): the same
    //! report for randomly damaged logs and sets of rotated files.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use prodguard_core::Timestamp;
    use prodguard_core::audit::{Envelope, encode_record};

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// The head after each record: its seq, hash and the end of its line.
    type Heads = Vec<(u64, String, u64)>;

    /// `n` records from `first_seq` chained to `prev`; with a seal key,
    /// some of them seals (the key evolving as a writer's does).
    fn log(
        rng: &mut Rng,
        first_seq: u64,
        prev: &str,
        n: usize,
        seal_key: &mut Option<SealKey>,
    ) -> (Vec<u8>, String, Heads) {
        let mut prev = prev.to_owned();
        let mut bytes = Vec::new();
        let mut heads = Vec::new();
        for seq in first_seq..first_seq + n as u64 {
            let envelope = Envelope {
                log_id: "log-1".into(),
                seq,
                ts: Timestamp(1_700_000_000_000_000 + seq as i64),
                host: "host".into(),
                pid: 9,
            };
            let event = match (seal_key.as_mut(), rng.below(8)) {
                (Some(key), 0) => {
                    let mut seal = AuditEvent::new(EventKind::Seal);
                    seal.seal = Some(key.seal("log-1", seq, &prev));
                    *key = key.evolve();
                    seal
                }
                (_, 1 | 2) => AuditEvent::note("x".repeat(rng.below(3000))),
                (_, 3) => AuditEvent::note("tab\there \"quoted\" ünï"),
                _ => AuditEvent::note(format!("note {seq}")),
            };
            let (line, hash) = encode_record(&envelope, &event, &prev).unwrap();
            bytes.extend_from_slice(&line);
            heads.push((seq, hash.clone(), bytes.len() as u64));
            prev = hash;
        }
        (bytes, prev, heads)
    }

    fn damage(bytes: &mut Vec<u8>, rng: &mut Rng) {
        if bytes.is_empty() {
            return;
        }
        let at = rng.below(bytes.len());
        match rng.below(9) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes.truncate(at),
            2 => bytes.insert(at, b'\n'),
            3 => {
                // Two lines joined.
                if let Some(nl) = bytes[at..].iter().position(|&b| b == b'\n') {
                    bytes.remove(at + nl);
                }
            }
            4 => bytes.insert(at, b' '),
            5 => {
                // Lines (and a final line) around the longest a record may be.
                let start = bytes[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let mut long = vec![b'a'; MAX_RECORD_BYTES - 1 + rng.below(3)];
                if rng.below(3) == 0 {
                    bytes.truncate(start);
                } else {
                    long.push(b'\n');
                }
                bytes.splice(start..start, long);
            }
            6 => {
                // A record repeated.
                let start = bytes[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                if let Some(end) = bytes[at..].iter().position(|&b| b == b'\n') {
                    let line = bytes[start..at + end + 1].to_vec();
                    bytes.splice(start..start, line);
                }
            }
            7 => {
                // The final newline lost.
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                }
            }
            _ => bytes.truncate(at.max(bytes.len().saturating_sub(40))),
        }
    }

    #[test]
    fn reports_match_the_previous_verifier_on_damaged_logs() {
        let dir =
            std::env::temp_dir().join(format!("prodguard-verify-diff-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut rng = Rng(0x5151_7e57);
        for round in 0..200 {
            // A rotated file and the current one, or only the current one.
            let rotated = rng.below(3) == 0;
            let n = 1 + rng.below(if round % 5 == 0 { 400 } else { 60 });
            let first_key = SealKey {
                epoch: 2,
                key: [round as u8; 32],
            };
            let mut writer_key = (rng.below(3) == 0).then(|| first_key.clone());
            let (first, head, mut heads) = log(&mut rng, 1, GENESIS_PREV, n, &mut writer_key);
            let more = 1 + rng.below(40);
            let (second, _, more_heads) = log(&mut rng, n as u64 + 1, &head, more, &mut writer_key);
            let mut files = if rotated {
                let before = first.len() as u64;
                heads.extend(
                    more_heads
                        .into_iter()
                        .map(|(s, h, end)| (s, h, before + end)),
                );
                vec![first, second]
            } else {
                vec![first]
            };
            for _ in 0..rng.below(3) {
                let which = rng.below(files.len());
                damage(&mut files[which], &mut rng);
            }
            let paths: Vec<PathBuf> = files
                .iter()
                .enumerate()
                .map(|(i, bytes)| {
                    let path = dir.join(format!("log-{round}-{i}"));
                    std::fs::write(&path, bytes).unwrap();
                    path
                })
                .collect();
            let open = || -> Vec<(PathBuf, File)> {
                paths
                    .iter()
                    .map(|p| (p.clone(), File::open(p).unwrap()))
                    .collect()
            };
            // An anchor at a record as written (reached unless the damage
            // came before it), a little off, or made up.
            let (seq, hash, bytes) = heads[rng.below(heads.len())].clone();
            let anchor = match rng.below(4) {
                0 => None,
                1 => Some(Anchor {
                    log_id: "log-1".into(),
                    seq,
                    hash,
                    bytes,
                }),
                2 => Some(Anchor {
                    log_id: "log-1".into(),
                    seq,
                    hash,
                    bytes: bytes + 1,
                }),
                _ => Some(Anchor {
                    log_id: "log-1".into(),
                    seq,
                    hash: GENESIS_PREV.into(),
                    bytes: rng.below(10_000) as u64,
                }),
            };
            // The writer's first key, another epoch's, or none.
            let seal_key = match rng.below(4) {
                0 | 1 => Some(first_key.clone()),
                2 => Some(first_key.evolve()),
                _ => None,
            };
            let start =
                (rng.below(4) == 0).then(|| ChainVerifier::resume(GENESIS_PREV.into(), 1, None));
            let ours =
                verify_files(open(), anchor.as_ref(), seal_key.as_ref(), start.clone()).unwrap();
            let before = reference::verify_files_reference(
                open(),
                anchor.as_ref(),
                seal_key.as_ref(),
                start,
            )
            .unwrap();
            assert_eq!(ours, before, "round {round}");
            for path in &paths {
                std::fs::remove_file(path).unwrap();
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_log_cut_short_while_it_is_read_falls_back_to_the_line_by_line_walk() {
        let dir = std::env::temp_dir().join(format!("prodguard-shrunk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let mut rng = Rng(0x5eed_cafe);
        let (bytes, _, _) = log(&mut rng, 1, GENESIS_PREV, 300, &mut None);
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let len = bytes.len() as u64;
        // The log is cut (mid-record) after its length was read.
        let cut = len / 2 + 7;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let past_the_cut = cut / CHUNK_BYTES + 1;
        assert!(matches!(
            precheck_chunk(&file, len, past_the_cut, None, &mut ChunkScratch::default()),
            Chunk::Irregular
        ));
        // The chunk the cut runs through cannot be read whole either.
        assert!(matches!(
            precheck_chunk(
                &file,
                len,
                cut / CHUNK_BYTES,
                None,
                &mut ChunkScratch::default()
            ),
            Chunk::Irregular | Chunk::NoLineStarts
        ));
        let open = || vec![(path.clone(), File::open(&path).unwrap())];
        let ours = verify_files(open(), None, None, None).unwrap();
        assert!(ours.torn_tail_bytes > 0 && ours.damage.is_none());
        assert_eq!(
            ours,
            reference::verify_files_reference(open(), None, None, None).unwrap()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_clean_log_is_checked_in_spans_to_its_last_line() {
        let dir = std::env::temp_dir().join(format!("prodguard-spans-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let mut rng = Rng(0x0dd_5eed);
        let mut key = Some(SealKey {
            epoch: 0,
            key: [3; 32],
        });
        let (bytes, head, heads) = log(&mut rng, 1, GENESIS_PREV, 600, &mut key);
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            bytes.len() as u64 > 8 * CHUNK_BYTES,
            "the log spans many chunks"
        );
        let (seq, hash, end) = heads[heads.len() / 2].clone();
        let anchor = Anchor {
            log_id: "log-1".into(),
            seq,
            hash,
            bytes: end,
        };
        let mut walk = Walk {
            verifier: ChainVerifier::new(),
            report: VerifyReport::start(Some(&anchor)),
            seals: Some(SealChecker::new(SealKey {
                epoch: 0,
                key: [3; 32],
            })),
            anchor: Some(&anchor),
            offset: 0,
        };
        let mut place = Place {
            path: path.clone(),
            last_file: true,
            line_no: 0,
            bytes: 0,
        };
        walk.spans(&File::open(&path).unwrap(), &mut place);
        // Every line was accepted in spans: nothing was left to `lines`.
        assert_eq!(place.bytes, bytes.len() as u64);
        assert_eq!((place.line_no, walk.report.records), (600, 600));
        assert_eq!(walk.verifier.head_hash(), head);
        assert_eq!(walk.report.anchor, Some(AnchorCheck::Reached));
        assert!(walk.report.seals > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
