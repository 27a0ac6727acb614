//! The audit log: durable appends (1 and 8 writers) and verify.
//!
//! Scratch files live under the target directory, on the same filesystem
//! for ours and the baseline. Put the target directory on the disk you care
//! about: on a tmpfs fdatasync is free and the append numbers mean nothing.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use prodguard::audit::{AppendReceipt, AuditError, AuditSink, FileOps, FileSink, VerifyReport};
use prodguard_core::Tier;
use prodguard_core::audit::{
    Actor, AuditEvent, DecisionRecord, Envelope, EventKind, GENESIS_PREV, OperationRecord,
    encode_record,
};
use prodguard_core::policy::{ActorKind, Durability, Requirement};
use sha2::{Digest, Sha256};

use crate::{
    BenchError, Budget, CONCURRENT_APPEND_8_VS_1, DURABLE_APPEND_VS_FDATASYNC, Goal, Measurement,
    VERIFY_VS_SHA256, extra,
};

/// Ours: one durable append (encode, chain, write, fdatasync) through the file sink.
#[inline(never)]
pub fn ours_durable_append(
    sink: &FileSink,
    event: &AuditEvent,
) -> Result<AppendReceipt, AuditError> {
    sink.append(event)
}

/// The baseline: the same record's bytes, `write_all` then `fdatasync`.
#[inline(never)]
pub fn baseline_write_fdatasync(mut file: &File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.sync_data()
}

/// Ours: verify a whole log (every record parsed, re-hashed and chained).
#[inline(never)]
pub fn ours_verify(path: &Path) -> std::io::Result<VerifyReport> {
    prodguard::audit::verify_file(path, None)
}

/// The baseline: read the file and SHA-256 its bytes.
#[inline(never)]
pub fn baseline_sha256(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hasher.finalize().to_vec())
}

/// The event appended: an intent record as a guard writes it in production.
pub fn sample_event(i: usize) -> AuditEvent {
    let mut event = AuditEvent::new(EventKind::Intent);
    event.attempt_id = Some(format!("{i:032x}"));
    event.actor = Some(Actor {
        user: "bench".into(),
        kind: ActorKind::Service,
        account: None,
    });
    event.op = Some(OperationRecord {
        kind: "db.migrate".into(),
        target: Some("orders".into()),
        env: "production".into(),
        tier: Tier::Production,
        decided_by: "env:APP_ENV".into(),
        fingerprint: None,
        batch: Vec::new(),
    });
    event.decision = Some(DecisionRecord {
        result: "proceed".into(),
        rule: Some("default: protected tiers".into()),
        requirements: vec![Requirement::Confirm, Requirement::Audit],
        reasons: vec![
            "db.migrate requires confirm + audit here (rule `default: protected tiers`)".into(),
            "the environment is production (tier production), decided by env:APP_ENV".into(),
        ],
        exit_code: None,
        policy: Vec::new(),
    });
    event
}

/// The record lines the sink would write for `events` (a new log), as the
/// raw baseline writes them: same encoder, same envelope fields.
pub fn record_lines(events: &[AuditEvent]) -> Result<Vec<Vec<u8>>, BenchError> {
    let host = prodguard::facts::hostname().unwrap_or_else(|| "unknown".into());
    let log_id = prodguard::facts::random_id();
    let mut prev = GENESIS_PREV.to_owned();
    let mut lines = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let envelope = Envelope {
            log_id: log_id.clone(),
            seq: i as u64 + 1,
            ts: prodguard::facts::now(),
            host: host.clone(),
            pid: std::process::id(),
        };
        let (line, hash) = encode_record(&envelope, event, &prev)
            .map_err(|e| BenchError::new(format!("cannot encode a record: {e}")))?;
        prev = hash;
        lines.push(line);
    }
    Ok(lines)
}

fn audit_err(e: AuditError) -> BenchError {
    BenchError::new(format!("audit append failed: {e}"))
}

pub(crate) fn check_intact(path: &Path, expected_records: u64) -> Result<VerifyReport, BenchError> {
    let report =
        ours_verify(path).map_err(|e| BenchError::io(format!("verify {}", path.display()), e))?;
    if !report.intact() || report.records != expected_records {
        return Err(BenchError::new(format!(
            "{} does not verify as {expected_records} intact records: {report:?}",
            path.display()
        )));
    }
    Ok(report)
}

/// Durable appends per second through `FileSink::new` (fdatasync), one
/// writer, vs raw `write_all` + `sync_data` of the same record bytes to a
/// file in the same directory; the two alternate append by append. Ratio = our
/// rate / raw rate. Goal: ≥ 0.9.
pub fn durable_append_vs_fdatasync(budget: &Budget) -> Result<Measurement, BenchError> {
    let scratch = budget.scratch("durable")?;
    let n = budget.durable_appends.max(1);
    let rounds = budget.durable_rounds.max(1);
    let events: Vec<AuditEvent> = (0..=n * rounds).map(sample_event).collect();
    let lines = record_lines(&events)?;

    let ours_path = scratch.path().join("ours.jsonl");
    let sink = FileSink::new(&ours_path);
    let raw_path = scratch.path().join("raw.jsonl");
    let raw = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&raw_path)
        .map_err(|e| BenchError::io(format!("open {}", raw_path.display()), e))?;
    let raw_err = |e| BenchError::io(format!("write + fdatasync {}", raw_path.display()), e);
    // Warm-up: the first append creates the file and syncs its directory.
    ours_durable_append(&sink, &events[0]).map_err(audit_err)?;
    baseline_write_fdatasync(&raw, &lines[0]).map_err(raw_err)?;

    // Ours and the raw loop alternate append by append, so both meet the
    // same disk (fdatasync latency drifts with whatever else is writing).
    let total_n = n * rounds;
    let mut ours_each = Vec::with_capacity(total_n);
    let mut raw_each = Vec::with_capacity(total_n);
    for i in 1..=total_n {
        let mut run_ours = || -> Result<(), BenchError> {
            let start = Instant::now();
            ours_durable_append(&sink, &events[i]).map_err(audit_err)?;
            ours_each.push(start.elapsed());
            Ok(())
        };
        let mut run_raw = || -> Result<(), BenchError> {
            let start = Instant::now();
            baseline_write_fdatasync(&raw, &lines[i]).map_err(raw_err)?;
            raw_each.push(start.elapsed());
            Ok(())
        };
        crate::timing::alternately(i, &mut run_ours, &mut run_raw)?;
    }
    let ours_time: Duration = ours_each.iter().sum();
    let raw_time: Duration = raw_each.iter().sum();
    let ms = |d: &[Duration]| {
        let mut v: Vec<f64> = d.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        crate::timing::median(&mut v)
    };
    let (ours_median, raw_median) = (ms(&ours_each), ms(&raw_each));
    let total = (n * rounds) as f64;
    check_intact(&ours_path, total as u64 + 1)?;
    let ours_rate = total / ours_time.as_secs_f64();
    let raw_rate = total / raw_time.as_secs_f64();
    let record_bytes = lines.iter().map(Vec::len).sum::<usize>() as f64 / lines.len() as f64;
    Ok(Measurement::new(
        DURABLE_APPEND_VS_FDATASYNC,
        ours_rate,
        "appends/s",
        raw_rate,
        ours_rate / raw_rate,
        &Goal::at_least("ratio", 0.9),
        extra([
            ("appends_per_side", total),
            ("record_bytes", record_bytes),
            ("ours_ms_per_append", 1e3 / ours_rate),
            ("raw_ms_per_append", 1e3 / raw_rate),
            ("ours_median_ms", ours_median),
            ("raw_median_ms", raw_median),
        ]),
        format!(
            "FileSink::new (fdatasync) append of an intent record vs write_all + sync_data of \
             the same bytes, 1 writer, {total_n} appends each, alternating one by one, in {}",
            budget.target_dir.display()
        ),
    ))
}

/// The real file operations, counting fdatasync calls (to report how many
/// records each shared flush carried). Both methods are the trait's
/// defaults: the same `write(2)` and `fdatasync(2)` as `RealFileOps`.
struct CountingSyncs(Arc<AtomicU64>);

impl FileOps for CountingSyncs {
    fn sync_data(&mut self, file: &File) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::Relaxed);
        file.sync_data()
    }
}

/// Ours with 8 writers: 8 threads appending `per_writer` events each to
/// one shared sink (group commit). Returns the elapsed time.
#[inline(never)]
pub fn ours_eight_writers(
    sink: &Arc<FileSink>,
    events: &Arc<Vec<AuditEvent>>,
    per_writer: usize,
) -> Result<Duration, BenchError> {
    time_writers(vec![Arc::clone(sink); 8], events, per_writer)
}

/// One thread per sink (thread `t` appends through `sinks[t]`), each
/// appending `per_writer` events, from a common start; returns the elapsed
/// time, or the first failure.
pub(crate) fn time_writers<S: AuditSink + Send + Sync + 'static>(
    sinks: Vec<Arc<S>>,
    events: &Arc<Vec<AuditEvent>>,
    per_writer: usize,
) -> Result<Duration, BenchError> {
    let barrier = Arc::new(Barrier::new(sinks.len() + 1));
    let threads: Vec<_> = sinks
        .into_iter()
        .enumerate()
        .map(|(t, sink)| {
            let (events, barrier) = (Arc::clone(events), Arc::clone(&barrier));
            std::thread::spawn(move || -> Result<(), AuditError> {
                barrier.wait();
                for i in 0..per_writer {
                    sink.append(&events[(t * per_writer + i) % events.len()])?;
                }
                Ok(())
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut failure = None;
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(audit_err(e)),
            Err(_) => failure = Some(BenchError::new("a writer thread panicked")),
        }
    }
    let took = start.elapsed();
    failure.map_or(Ok(took), Err)
}

/// Durable appends per second with 8 writers vs 1. The 8 writers are
/// threads sharing one `FileSink` (fdatasync): that is where group commit
/// happens — appends that arrive while a flush is in progress are written
/// and synced together by the next leader. (Separate sinks, like separate
/// processes, serialise on the file's `flock` and each pays its own
/// fdatasync.) The 1-writer run uses its own sink the same way; the two
/// alternate in rounds. Ratio = 8-writer rate / 1-writer rate. Goal: ≥ 2.
pub fn concurrent_append_8_vs_1(budget: &Budget) -> Result<Measurement, BenchError> {
    let scratch = budget.scratch("concurrent")?;
    let per_writer = budget.concurrent_appends.max(1);
    let single = per_writer * 2;
    let rounds = budget.concurrent_rounds.max(1);
    let events = Arc::new((0..8 * per_writer).map(sample_event).collect::<Vec<_>>());
    let syncs_one = Arc::new(AtomicU64::new(0));
    let syncs_eight = Arc::new(AtomicU64::new(0));
    let one_path = scratch.path().join("one.jsonl");
    let eight_path = scratch.path().join("eight.jsonl");
    let one = FileSink::with_file_ops(
        &one_path,
        Durability::Fdatasync,
        CountingSyncs(Arc::clone(&syncs_one)),
    );
    let eight = Arc::new(FileSink::with_file_ops(
        &eight_path,
        Durability::Fdatasync,
        CountingSyncs(Arc::clone(&syncs_eight)),
    ));
    ours_durable_append(&one, &events[0]).map_err(audit_err)?;
    ours_durable_append(&eight, &events[0]).map_err(audit_err)?;
    syncs_one.store(0, Ordering::Relaxed);
    syncs_eight.store(0, Ordering::Relaxed);

    let (mut one_time, mut eight_time) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        let mut run_one = || -> Result<(), BenchError> {
            let start = Instant::now();
            for i in 0..single {
                ours_durable_append(&one, &events[i % events.len()]).map_err(audit_err)?;
            }
            one_time += start.elapsed();
            Ok(())
        };
        let mut run_eight = || -> Result<(), BenchError> {
            eight_time += ours_eight_writers(&eight, &events, per_writer)?;
            Ok(())
        };
        if round % 2 == 0 {
            run_one()?;
            run_eight()?;
        } else {
            run_eight()?;
            run_one()?;
        }
    }
    let one_total = (single * rounds) as f64;
    let eight_total = (8 * per_writer * rounds) as f64;
    check_intact(&one_path, one_total as u64 + 1)?;
    check_intact(&eight_path, eight_total as u64 + 1)?;
    let one_rate = one_total / one_time.as_secs_f64();
    let eight_rate = eight_total / eight_time.as_secs_f64();
    let per_sync =
        |records: f64, syncs: &AtomicU64| records / (syncs.load(Ordering::Relaxed).max(1) as f64);
    Ok(Measurement::new(
        CONCURRENT_APPEND_8_VS_1,
        eight_rate,
        "appends/s",
        one_rate,
        eight_rate / one_rate,
        &Goal::at_least("ratio", 2.0),
        extra([
            ("writers", 8.0),
            ("appends_8_writers", eight_total),
            ("appends_1_writer", one_total),
            (
                "records_per_fdatasync_8_writers",
                per_sync(eight_total, &syncs_eight),
            ),
            (
                "records_per_fdatasync_1_writer",
                per_sync(one_total, &syncs_one),
            ),
        ]),
        format!(
            "8 threads sharing one FileSink (group commit), {per_writer} appends each, vs 1 \
             thread appending {single} to its own sink; fdatasync; {rounds} alternating rounds"
        ),
    ))
}

/// Builds a log of at least `bytes` bytes with durability `none`; returns
/// its record count.
pub fn build_log(path: &Path, bytes: u64) -> Result<u64, BenchError> {
    let sink = FileSink::with_durability(path, Durability::None);
    let mut records = 0u64;
    let check_every = if bytes > 4 << 20 { 1000 } else { 50 };
    loop {
        for _ in 0..check_every {
            ours_durable_append(&sink, &sample_event(records as usize)).map_err(audit_err)?;
            records += 1;
        }
        let len = std::fs::metadata(path)
            .map_err(|e| BenchError::io(format!("stat {}", path.display()), e))?
            .len();
        if len >= bytes {
            return Ok(records);
        }
    }
}

/// Verify throughput (`prodguard::audit::verify_file`) vs reading the same
/// file and SHA-256 over its bytes, both from the page cache, alternating
/// in rounds; MB/s (10⁶ bytes). Ratio = ours / baseline. Goal: ≥ 0.25
/// (issue 14: one single-threaded streaming verifier, serde_json per line).
pub fn verify_vs_sha256(budget: &Budget) -> Result<Measurement, BenchError> {
    let scratch = budget.scratch("verify")?;
    let path = scratch.path().join("log.jsonl");
    let records = build_log(&path, budget.verify_bytes)?;
    let bytes = std::fs::metadata(&path)
        .map_err(|e| BenchError::io(format!("stat {}", path.display()), e))?
        .len() as f64;
    let verify_err = |e| BenchError::io(format!("verify {}", path.display()), e);
    let hash_err = |e| BenchError::io(format!("read {}", path.display()), e);
    // Warm the page cache and check the log once, untimed.
    check_intact(&path, records)?;
    baseline_sha256(&path).map_err(hash_err)?;

    let rounds = budget.verify_rounds.max(1);
    let (mut ours_time, mut base_time) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        let mut run_ours = || -> Result<(), BenchError> {
            let start = Instant::now();
            let report = ours_verify(&path).map_err(verify_err)?;
            ours_time += start.elapsed();
            if report.records != records {
                return Err(BenchError::new(
                    "verify counted the wrong number of records",
                ));
            }
            Ok(())
        };
        let mut run_base = || -> Result<(), BenchError> {
            let start = Instant::now();
            crate::timing::keep(baseline_sha256(&path).map_err(hash_err)?);
            base_time += start.elapsed();
            Ok(())
        };
        crate::timing::alternately(round, &mut run_ours, &mut run_base)?;
    }
    let mb = bytes * rounds as f64 / 1e6;
    let ours = mb / ours_time.as_secs_f64();
    let base = mb / base_time.as_secs_f64();
    Ok(Measurement::new(
        VERIFY_VS_SHA256,
        ours,
        "MB/s",
        base,
        ours / base,
        &Goal::at_least("ratio", 0.25),
        extra([
            ("log_bytes", bytes),
            ("records", records as f64),
            ("ours_ms", ours_time.as_secs_f64() * 1e3 / rounds as f64),
            ("sha256_ms", base_time.as_secs_f64() * 1e3 / rounds as f64),
        ]),
        format!(
            "prodguard::audit::verify_file over a {:.1} MiB log of {records} records vs read + \
             SHA-256 of the same file (page cache warm), {rounds} alternating rounds",
            bytes / f64::from(1u32 << 20)
        ),
    ))
}
