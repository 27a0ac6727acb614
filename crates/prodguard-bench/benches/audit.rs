//! Criterion benches of the audit log: durable appends (1 and 8 writers)
//! beside raw `write` + `fdatasync`, and verify beside SHA-256.
//!
//! ```text
//! cargo bench -p prodguard-bench --bench audit
//! ```
//!
//! Scratch files go under the target directory (`target/prodguard-bench/`):
//! keep it on the disk you care about, not a tmpfs.
#![allow(
    missing_docs,
    reason = "criterion_group! generates undocumented functions"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a bench harness: a failed setup should stop the bench loudly"
)]

use std::fs::OpenOptions;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prodguard::audit::FileSink;
use prodguard_bench::audit::{
    baseline_sha256, baseline_write_fdatasync, build_log, ours_durable_append, ours_eight_writers,
    ours_verify, record_lines, sample_event,
};
use prodguard_bench::{Budget, Mode};

#[global_allocator]
static ALLOC: prodguard_bench::alloc::CountingAlloc = prodguard_bench::alloc::CountingAlloc;

fn durable_append(c: &mut Criterion) {
    let budget = Budget::new(Mode::Quick);
    let scratch = budget.scratch("criterion-durable").unwrap();
    let events: Vec<_> = (0..1000).map(sample_event).collect();
    let lines = record_lines(&events).unwrap();
    let sink = FileSink::new(scratch.path().join("ours.jsonl"));
    let raw = OpenOptions::new()
        .create(true)
        .append(true)
        .open(scratch.path().join("raw.jsonl"))
        .unwrap();
    ours_durable_append(&sink, &events[0]).unwrap();
    baseline_write_fdatasync(&raw, &lines[0]).unwrap();

    let mut group = c.benchmark_group("durable_append_vs_fdatasync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let mut i = 0;
    group.bench_function("ours: FileSink::append (fdatasync)", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            ours_durable_append(&sink, &events[i]).unwrap()
        })
    });
    let mut j = 0;
    group.bench_function("baseline: write_all + sync_data", |b| {
        b.iter(|| {
            j = (j + 1) % lines.len();
            baseline_write_fdatasync(&raw, &lines[j]).unwrap()
        })
    });
    group.finish();
}

fn concurrent_append(c: &mut Criterion) {
    let budget = Budget::new(Mode::Quick);
    let scratch = budget.scratch("criterion-concurrent").unwrap();
    let events = Arc::new((0..800).map(sample_event).collect::<Vec<_>>());
    let one = FileSink::new(scratch.path().join("one.jsonl"));
    let eight = Arc::new(FileSink::new(scratch.path().join("eight.jsonl")));
    ours_durable_append(&one, &events[0]).unwrap();
    ours_durable_append(&eight, &events[0]).unwrap();

    let mut group = c.benchmark_group("concurrent_append_8_vs_1");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    // One element = one durable append, so the report reads appends/s.
    group.throughput(Throughput::Elements(8));
    group.bench_function("8 writers, one shared sink (8 appends)", |b| {
        b.iter_custom(|iters| {
            let per_writer = usize::try_from(iters).unwrap_or(usize::MAX);
            ours_eight_writers(&eight, &events, per_writer).unwrap()
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("1 writer (1 append)", |b| {
        b.iter(|| ours_durable_append(&one, &events[1]).unwrap())
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    let budget = Budget::new(Mode::Quick);
    let scratch = budget.scratch("criterion-verify").unwrap();
    let path = scratch.path().join("log.jsonl");
    build_log(&path, budget.verify_bytes).unwrap();
    let bytes = std::fs::metadata(&path).unwrap().len();

    let mut group = c.benchmark_group("verify_vs_sha256");
    group.sample_size(10).throughput(Throughput::Bytes(bytes));
    group.bench_function("ours: verify_file", |b| {
        b.iter(|| black_box(ours_verify(&path).unwrap()))
    });
    group.bench_function("baseline: read + SHA-256", |b| {
        b.iter(|| black_box(baseline_sha256(&path).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, durable_append, concurrent_append, verify);
criterion_main!(benches);
