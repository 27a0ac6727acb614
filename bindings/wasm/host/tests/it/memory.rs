#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A host that frees every request and answer keeps memory bounded.

use prodguard_wasmtime::{EvaluateRequest, Export};

use crate::common::instance;

#[test]
#[allow(clippy::print_stderr)]
fn a_hundred_thousand_evaluations_do_not_grow_memory() {
    let mut instance = instance();
    // Cheap (no policy, so the built-in default), but a real evaluation.
    let request = serde_json::to_vec(&EvaluateRequest::new("db.migrate").target("orders")).unwrap();
    let started = std::time::Instant::now();
    let mut after_1000 = 0;
    for call in 1..=100_000 {
        let (status, answer) = instance.call_json(Export::Evaluate, &request).unwrap();
        assert_eq!(status, 0, "call {call}: {answer}");
        if call == 1_000 {
            after_1000 = instance.memory_bytes();
        }
    }
    let after_100_000 = instance.memory_bytes();
    eprintln!(
        "100,000 evaluations took {:?} ({:?} per call); memory {after_1000} bytes after 1,000 calls, {after_100_000} after 100,000",
        started.elapsed(),
        started.elapsed() / 100_000
    );
    assert_eq!(
        after_1000, after_100_000,
        "memory grew between call 1,000 and call 100,000"
    );
    assert_eq!(instance.replacements(), 0);
}
