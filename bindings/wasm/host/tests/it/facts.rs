#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real process's facts, gathered as the Rust runtime reads them, give
//! the module the same answer the runtime would.
//!
//! The variables are set on a child process (this test binary run again),
//! since setting them in this one would race the other tests.

use prodguard_wasmtime::{EvaluateRequest, Facts, MAX_FACT_BYTES, Tier};

use crate::common::instance;

const CHILD: &str = "PRODGUARD_WASMTIME_FACTS_CHILD";
const BEGIN: &str = "--- facts ---";

/// In the child: prints what `gather_facts` sees. In a normal run: nothing.
#[test]
#[allow(clippy::print_stdout)]
fn gather_in_a_child() {
    if let Some(marker) = std::env::var_os(CHILD) {
        let facts = prodguard_wasmtime::gather_facts(marker.to_str().unwrap());
        println!("{BEGIN}\n{}", serde_json::to_string(&facts).unwrap());
    }
}

fn gathered(env: &[(&str, String)], marker: &std::path::Path) -> Facts {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "facts::gather_in_a_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env_clear()
        .env(CHILD, marker)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json = stdout
        .split(BEGIN)
        .nth(1)
        .and_then(|rest| rest.lines().nth(1))
        .unwrap_or_else(|| panic!("no facts in the child's output:\n{stdout}"));
    serde_json::from_str(json).unwrap()
}

#[test]
fn the_process_facts_decide_like_the_runtime() {
    let dir = tempfile::Builder::new()
        .prefix("prodguard-wasmtime-marker-")
        .tempdir()
        .unwrap();
    let marker = dir.path().join("marker");
    std::fs::write(&marker, "# managed by ansible\nstaging\n").unwrap();
    let huge = "x".repeat(MAX_FACT_BYTES + 1);
    let facts = gathered(
        &[("APP_ENV", "production".into()), ("SOME_BLOB", huge)],
        &marker,
    );
    drop(dir);

    assert_eq!(
        facts.env.get("APP_ENV").map(String::as_str),
        Some("production")
    );
    let marker_key = marker.to_str().unwrap();
    assert_eq!(
        facts.files.get(marker_key).map(String::as_str),
        Some("# managed by ansible\nstaging\n")
    );
    let blob = &facts.env["SOME_BLOB"];
    assert!(
        blob.len() <= MAX_FACT_BYTES && blob.contains("bytes"),
        "{blob}"
    );

    // The module answers for these facts (the blob does not make it refuse),
    // as the runtime does: APP_ENV says production; the marker, read under
    // the default policy's path only, is not this one.
    let mut instance = instance();
    let evaluation = instance
        .evaluate(
            &EvaluateRequest::new("db.migrate")
                .target("orders")
                .facts(facts.clone()),
        )
        .unwrap();
    let runtime = prodguard_core::classify(
        &serde_json::from_value(serde_json::to_value(&facts).unwrap()).unwrap(),
        prodguard_core::Policy::builtin_default().environment(),
    );
    assert_eq!(evaluation.detection.environment, runtime.environment);
    assert_eq!(evaluation.detection.tier, Tier::Production);
    assert_eq!(evaluation.detection.decided_by, "env:APP_ENV");
    assert_eq!(evaluation.decision.exit_code, 121);
}

#[test]
fn an_oversized_fact_fails_closed() {
    // PRODGUARD_ENV too big to read: never "development", whatever else says so.
    let marker = std::env::temp_dir().join("prodguard-wasmtime-no-marker");
    let facts = gathered(
        &[
            ("PRODGUARD_ENV", "d".repeat(MAX_FACT_BYTES + 10)),
            ("APP_ENV", "development".into()),
        ],
        &marker,
    );
    let mut instance = instance();
    let evaluation = instance
        .evaluate(&EvaluateRequest::new("db.migrate").facts(facts))
        .unwrap();
    assert!(evaluation.detection.protected, "{:?}", evaluation.detection);
}
