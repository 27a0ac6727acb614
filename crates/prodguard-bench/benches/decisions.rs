//! Criterion benches of the decision measurements: the same `ours_*` and
//! `baseline_*` functions the `prodguard-bench` binary times.
//!
//! ```text
//! cargo bench -p prodguard-bench --bench decisions
//! ```
#![allow(
    missing_docs,
    reason = "criterion_group! generates undocumented functions"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use prodguard_bench::decisions::{
    allow_inputs, baseline_default_policy_decision, baseline_env_var, detection_for,
    explained_allow_decision, ours_allow_decision, ours_is_production, ours_protected_decision,
    protected_inputs,
};
use prodguard_core::Policy;

#[global_allocator]
static ALLOC: prodguard_bench::alloc::CountingAlloc = prodguard_bench::alloc::CountingAlloc;

fn is_production(c: &mut Criterion) {
    let mut group = c.benchmark_group("is_production_vs_env_var");
    let _ = ours_is_production();
    group.bench_function("ours: prodguard::is_production (cached)", |b| {
        b.iter(|| black_box(ours_is_production()))
    });
    group.bench_function("baseline: env::var(APP_ENV) == production", |b| {
        b.iter(|| black_box(baseline_env_var()))
    });
    group.finish();
}

fn allow_decision(c: &mut Criterion) {
    let (policy, detection, operation) = allow_inputs();
    let mut group = c.benchmark_group("allow_decision_ns");
    group.bench_function("ours: Guard::verdict (development, default policy)", |b| {
        b.iter(|| black_box(ours_allow_decision(&policy, &detection, &operation)))
    });
    group.bench_function("for comparison: decide (with the explanation)", |b| {
        b.iter(|| black_box(explained_allow_decision(&policy, &detection, &operation)))
    });
    group.bench_function("baseline: env::var(APP_ENV) == production", |b| {
        b.iter(|| black_box(baseline_env_var()))
    });
    group.finish();
}

fn protected_decision(c: &mut Criterion) {
    let Ok((policy, detection, operation)) = protected_inputs() else {
        return;
    };
    let default = Policy::builtin_default();
    let default_detection = detection_for("production", &default);
    let mut group = c.benchmark_group("protected_decision_100_rules_ns");
    group.bench_function("ours: decide (production, 100 rules)", |b| {
        b.iter(|| black_box(ours_protected_decision(&policy, &detection, &operation)))
    });
    group.bench_function("baseline: decide (production, default policy)", |b| {
        b.iter(|| {
            black_box(baseline_default_policy_decision(
                &default,
                &default_detection,
                &operation,
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, is_production, allow_decision, protected_decision);
criterion_main!(benches);
