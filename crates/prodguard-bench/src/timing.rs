//! Timing loops: calibrated samples, ours and the baseline alternating.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::Budget;

/// Nanoseconds per call of `f`, over `iters` back-to-back calls.
pub fn ns_per_call(iters: u64, f: &mut impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / iters.max(1) as f64
}

/// How many calls of `f` take about `sample` (at least 1).
pub fn calibrate(sample: Duration, f: &mut impl FnMut()) -> u64 {
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let took = start.elapsed();
        if took >= sample / 4 || iters >= 1 << 30 {
            let per = took.as_secs_f64() / iters as f64;
            return ((sample.as_secs_f64() / per.max(1e-12)) as u64).clamp(1, 1 << 32);
        }
        iters *= 4;
    }
}

/// The median of `values` (0 when empty).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Median nanoseconds per call of `ours` and of `baseline`, each calibrated
/// to [`Budget::sample`] and sampled [`Budget::samples`] times, the two
/// sides alternating (so drift in clock speed or load hits both alike).
pub fn compare_ns(
    budget: &Budget,
    mut ours: impl FnMut(),
    mut baseline: impl FnMut(),
) -> (f64, f64) {
    let ours_iters = calibrate(budget.sample, &mut ours);
    let base_iters = calibrate(budget.sample, &mut baseline);
    let mut ours_ns = Vec::with_capacity(budget.samples);
    let mut base_ns = Vec::with_capacity(budget.samples);
    for i in 0..budget.samples.max(1) {
        if i % 2 == 0 {
            ours_ns.push(ns_per_call(ours_iters, &mut ours));
            base_ns.push(ns_per_call(base_iters, &mut baseline));
        } else {
            base_ns.push(ns_per_call(base_iters, &mut baseline));
            ours_ns.push(ns_per_call(ours_iters, &mut ours));
        }
    }
    (median(&mut ours_ns), median(&mut base_ns))
}

/// Median nanoseconds per call of `f` alone, as [`compare_ns`] samples it.
pub fn measure_ns(budget: &Budget, mut f: impl FnMut()) -> f64 {
    let iters = calibrate(budget.sample, &mut f);
    let mut ns: Vec<f64> = (0..budget.samples.max(1))
        .map(|_| ns_per_call(iters, &mut f))
        .collect();
    median(&mut ns)
}

/// Keeps `value` from being optimised away.
#[inline]
pub fn keep<T>(value: T) {
    drop(black_box(value));
}

/// Runs `ours` and `base` once each, the first round ours first, the next
/// the baseline first, and so on: neither always runs on the cache the
/// other warmed.
pub(crate) fn alternately<E>(
    round: usize,
    ours: &mut impl FnMut() -> Result<(), E>,
    base: &mut impl FnMut() -> Result<(), E>,
) -> Result<(), E> {
    if round.is_multiple_of(2) {
        ours()?;
        base()
    } else {
        base()?;
        ours()
    }
}
