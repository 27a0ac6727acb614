//! Criterion bench of `sql_classify_vs_parse`: the same `ours_classify` and
//! `baseline_parse` the `prodguard-bench` binary times, over a 1 MB
//! migration (criterion runs each many times).
//!
//! ```text
//! cargo bench -p prodguard-bench --bench sql
//! ```
#![allow(
    missing_docs,
    reason = "criterion_group! generates undocumented functions"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use prodguard_bench::sql::{baseline_parse, migration, ours_classify};

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

criterion_group!(benches, sql_classify_vs_parse);
criterion_main!(benches);
