//! Criterion benches of SQL: `sql_classify_vs_parse`, the same
//! `ours_classify` and `baseline_parse` the `prodguard-bench` binary times,
//! over a 1 MB migration (criterion runs each many times); and
//! `sql_guarded_delete_vs_raw`, the same `ours_guarded_delete` and
//! `baseline_raw_delete` on a fresh database each time (built untimed).
//!
//! ```text
//! cargo bench -p prodguard-bench --bench sql
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
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use prodguard_bench::sql::{
    RAW_RECORD_BYTES, baseline_parse, baseline_raw_delete, delete_guard, delete_sql, migration,
    ours_classify, ours_guarded_delete, sessions_db,
};
use prodguard_bench::{Budget, Mode};

fn sql_classify_vs_parse(c: &mut Criterion) {
    let script = migration(1_000_000);
    let mut group = c.benchmark_group("sql_classify_vs_parse");
    group.sample_size(10);
    group.bench_function("ours: sql::classify (1 MB migration)", |b| {
        b.iter(|| black_box(ours_classify(&script)))
    });
    group.bench_function("baseline: sqlparser::Parser::parse_sql", |b| {
        b.iter(|| black_box(baseline_parse(&script)))
    });
    group.finish();
}

fn sql_guarded_delete_vs_raw(c: &mut Criterion) {
    let budget = Budget::new(Mode::Quick);
    let scratch = budget.scratch("criterion-sql-delete").unwrap();
    let rows = budget.sql_delete_rows;
    let sql = delete_sql(rows);
    let guard = delete_guard(&scratch.path().join("audit.jsonl"), 2 * rows).unwrap();
    let raw_log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(scratch.path().join("raw.jsonl"))
        .unwrap();
    let mut record = vec![b'.'; RAW_RECORD_BYTES - 1];
    record.push(b'\n');
    let db = scratch.path().join("sessions.db");
    let target = db.display().to_string();

    let mut group = c.benchmark_group("sql_guarded_delete_vs_raw");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("ours: guard.sql(DELETE …).run (10,000 rows)", |b| {
        b.iter_batched(
            || sessions_db(&db, rows).unwrap(),
            |mut conn| {
                let ran = ours_guarded_delete(&guard, &sql, &target, &mut conn).unwrap();
                assert_eq!(ran.rows, [rows as u64]);
                conn
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function(
        "baseline: BEGIN IMMEDIATE; DELETE; COMMIT + 2 fdatasync",
        |b| {
            b.iter_batched(
                || sessions_db(&db, rows).unwrap(),
                |conn| {
                    let deleted = baseline_raw_delete(&conn, &sql, &raw_log, &record).unwrap();
                    assert_eq!(deleted, rows);
                    conn
                },
                BatchSize::PerIteration,
            )
        },
    );
    group.finish();
}

criterion_group!(benches, sql_classify_vs_parse, sql_guarded_delete_vs_raw);
criterion_main!(benches);
