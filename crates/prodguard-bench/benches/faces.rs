//! Criterion benches of the other faces: a guarded call through the C ABI
//! beside the same in Rust, one `prodguard_evaluate` in wasmtime beside the
//! native call, and `prodguard exec -- true` beside `true`.
//!
//! ```text
//! cargo build --release -p prodguard-ffi -p prodguard-cli && scripts/build-wasm
//! cargo bench -p prodguard-bench --bench faces
//! ```
//!
//! (The benches build those themselves when they are missing or stale.)
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

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use prodguard_bench::faces::{
    ChildEnv, WASM_REQUEST, WasmEvaluator, baseline_native_evaluate, baseline_true,
    compile_c_program, ours_c_calls, ours_exec, ours_hook, ours_rust_run, ours_wasm_evaluate,
    rust_guard,
};
use prodguard_bench::{Budget, Mode, prereq};
use prodguard_core::Policy;

#[global_allocator]
static ALLOC: prodguard_bench::alloc::CountingAlloc = prodguard_bench::alloc::CountingAlloc;

fn c_call(c: &mut Criterion) {
    let budget = Budget::new(Mode::Quick);
    let lib = prereq::libprodguard(&budget).unwrap();
    let scratch = budget.scratch("criterion-c-call").unwrap();
    let dir = scratch.path();
    let exe = compile_c_program(dir, lib.parent().unwrap_or(Path::new("."))).unwrap();
    let env = ChildEnv::development(dir).unwrap().with(
        "PRODGUARD_AUDIT_LOG",
        dir.join("c.jsonl").display().to_string(),
    );
    let guard = rust_guard(Policy::builtin_default(), &dir.join("rust.jsonl")).unwrap();

    let mut group = c.benchmark_group("c_call_vs_rust");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("ours: prodguard_run from C", |b| {
        // The C program times its own loop (clock_gettime), without the
        // process start; criterion gets iters × its ns/call.
        b.iter_custom(|iters| {
            let calls = usize::try_from(iters).unwrap_or(usize::MAX);
            let ns = ours_c_calls(&exe, &env, calls).unwrap();
            Duration::from_nanos((ns * iters as f64) as u64)
        })
    });
    group.bench_function("baseline: Guard::operation(..).run in Rust", |b| {
        b.iter(|| ours_rust_run(&guard).unwrap())
    });
    group.finish();
}

fn wasm(c: &mut Criterion) {
    let budget = Budget::new(Mode::Quick);
    let path = prereq::prodguard_wasm(&budget).unwrap();
    let (mut wasm, _) = WasmEvaluator::load(&path, true).unwrap();
    let mut group = c.benchmark_group("wasm_decision_us");
    group.bench_function("ours: prodguard_evaluate in wasmtime", |b| {
        b.iter(|| black_box(ours_wasm_evaluate(&mut wasm, WASM_REQUEST.as_bytes()).unwrap()))
    });
    group.bench_function("baseline: json_api::evaluate_json natively", |b| {
        b.iter(|| black_box(baseline_native_evaluate(WASM_REQUEST)))
    });
    group.finish();
}

fn exec(c: &mut Criterion) {
    let budget = Budget::new(Mode::Quick);
    let cli = prereq::prodguard_cli(&budget).unwrap();
    let scratch = budget.scratch("criterion-exec").unwrap();
    let env = ChildEnv::development(scratch.path()).unwrap();
    let mut group = c.benchmark_group("exec_overhead_ms");
    group.sample_size(20);
    group.bench_function("ours: prodguard exec --op app.noop -- true", |b| {
        b.iter(|| assert!(ours_exec(&cli, &env).unwrap().success()))
    });
    group.bench_function("baseline: true", |b| {
        b.iter(|| assert!(baseline_true(&env).unwrap().success()))
    });
    group.finish();
}

fn hook(c: &mut Criterion) {
    let budget = Budget::new(Mode::Quick);
    let cli = prereq::prodguard_cli(&budget).unwrap();
    let scratch = budget.scratch("criterion-hook").unwrap();
    let env = ChildEnv::development(scratch.path()).unwrap();
    let mut group = c.benchmark_group("hook_decision_ms");
    group.sample_size(20);
    group.bench_function("ours: prodguard hook claude-code", |b| {
        b.iter(|| assert!(ours_hook(&cli, &env).unwrap().success()))
    });
    group.bench_function("baseline: true", |b| {
        b.iter(|| assert!(baseline_true(&env).unwrap().success()))
    });
    group.finish();
}

criterion_group!(benches, c_call, wasm, exec, hook);
criterion_main!(benches);
