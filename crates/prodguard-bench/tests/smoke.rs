#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every measurement runs in the smoke budget and the summary has the
//! promised shape. No timing is asserted: `holds` only has to agree with
//! the numbers and the goal.
//!
//! Needs the C library, the CLI and the Wasm module; with the default
//! budget they are built (`cargo build -p prodguard-ffi -p prodguard-cli`,
//! `scripts/build-wasm`) when missing or stale, and a measurement whose
//! prerequisite cannot be had fails with the command to run. The `pg_*`
//! rows use `PRODGUARD_TEST_PG` (scripts/test sets it), else a throwaway
//! cluster of `scripts/pg-cluster` that they delete when done.

use std::collections::BTreeMap;

use prodguard_bench::{Budget, Goal, Measurement, Mode, NAMES};
use serde_json::Value;

#[global_allocator]
static ALLOC: prodguard_bench::alloc::CountingAlloc = prodguard_bench::alloc::CountingAlloc;

fn expected_unit(name: &str) -> &'static str {
    match name {
        "is_production_vs_env_var" | "allow_decision_ns" | "protected_decision_100_rules_ns" => {
            "ns"
        }
        "durable_append_vs_fdatasync"
        | "concurrent_append_8_vs_1"
        | "pg_append_vs_raw_insert"
        | "pg_append_64_vs_1" => "appends/s",
        "verify_vs_sha256" => "MB/s",
        "c_call_vs_rust" => "ns",
        "wasm_decision_us" => "us",
        "exec_overhead_ms"
        | "sql_classify_vs_parse"
        | "sql_guarded_delete_vs_raw"
        | "hook_decision_ms"
        | "pg_lock_handover_ms" => "ms",
        "pg_verify_vs_raw_read" => "rows/s",
        other => panic!("unexpected measurement {other}"),
    }
}

/// The goal each measurement must state (the table).
fn expected_goal(name: &str) -> &'static str {
    match name {
        "is_production_vs_env_var" => "ratio >= 20",
        "allow_decision_ns" => "value <= 100 and allocations_per_call <= 0",
        "protected_decision_100_rules_ns" => "value <= 2000",
        "durable_append_vs_fdatasync" => "ratio >= 0.9",
        "concurrent_append_8_vs_1" => "ratio >= 2",
        "verify_vs_sha256" => "ratio >= 0.25",
        "c_call_vs_rust" => "ratio <= 1.5",
        "wasm_decision_us" => "value <= 10",
        "exec_overhead_ms" => "value <= 3",
        "sql_classify_vs_parse" => "ratio >= 0.8",
        "sql_guarded_delete_vs_raw" => "ratio <= 1.5",
        "hook_decision_ms" => "value <= 5",
        "pg_append_vs_raw_insert" => "ratio >= 0.7",
        "pg_append_64_vs_1" => "ratio >= 1",
        "pg_lock_handover_ms" => "value <= 50",
        "pg_verify_vs_raw_read" => "ratio >= 0.3",
        other => panic!("unexpected measurement {other}"),
    }
}

fn number(entry: &Value, key: &str) -> f64 {
    let x = entry[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {entry}"));
    assert!(x.is_finite(), "{key} is not finite in {entry}");
    x
}

/// Evaluates a goal string (`metric op bound [and …]`) against a summary
/// entry, independently of the library's own `Goal`.
fn goal_holds(entry: &Value) -> bool {
    let goal = entry["goal"].as_str().unwrap();
    goal.split(" and ").all(|term| {
        let parts: Vec<&str> = term.split_whitespace().collect();
        let [metric, op, bound] = parts[..] else {
            panic!("malformed goal term {term:?}");
        };
        let bound: f64 = bound.parse().unwrap();
        let x = match metric {
            "value" | "ratio" => entry[metric].as_f64(),
            other => entry["extra"][other].as_f64(),
        };
        let Some(x) = x else { return false };
        match op {
            ">=" => x >= bound,
            "<=" => x <= bound,
            other => panic!("unknown comparison {other}"),
        }
    })
}

fn check_summary(json: &str) {
    let list: Vec<Value> = serde_json::from_str(json).unwrap();
    assert_eq!(list.len(), NAMES.len(), "{json}");
    let mut seen = BTreeMap::new();
    for entry in &list {
        for key in [
            "name", "value", "unit", "baseline", "ratio", "goal", "holds",
        ] {
            assert!(entry.get(key).is_some(), "{key} missing in {entry}");
        }
        let name = entry["name"].as_str().unwrap();
        *seen.entry(name.to_owned()).or_insert(0) += 1;
        assert_eq!(entry["unit"], expected_unit(name), "{entry}");
        assert_eq!(entry["goal"], expected_goal(name), "{entry}");
        let value = number(entry, "value");
        let baseline = number(entry, "baseline");
        number(entry, "ratio");
        assert!(value >= 0.0 || name == "exec_overhead_ms", "{entry}");
        assert!(baseline > 0.0, "{entry}");
        for (key, x) in entry["extra"].as_object().unwrap() {
            assert!(
                x.as_f64().is_some_and(f64::is_finite),
                "extra {key} in {entry}"
            );
        }
        assert_eq!(
            entry["holds"].as_bool().unwrap(),
            goal_holds(entry),
            "holds disagrees with the goal: {entry}"
        );
    }
    for name in NAMES {
        assert_eq!(seen.get(name), Some(&1), "{name} is not there exactly once");
    }
}

#[test]
fn every_measurement_runs_in_the_smoke_budget_and_the_summary_has_its_shape() {
    let budget = Budget::new(Mode::Smoke);
    let mut measurements = Vec::new();
    let mut failures = Vec::new();
    for (name, result) in prodguard_bench::run_all(&budget) {
        match result {
            Ok(m) => {
                assert_eq!(m.name, name);
                measurements.push(m);
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let allow = measurements
        .iter()
        .find(|m| m.name == "allow_decision_ns")
        .unwrap();
    assert!(
        allow.extra.contains_key("allocations_per_call"),
        "allocations are counted under CountingAlloc: {allow:?}"
    );
    check_summary(&prodguard_bench::summary_json(&measurements).unwrap());
}

#[test]
fn the_binary_writes_the_summary_where_it_is_told() {
    let dir = tempfile::Builder::new()
        .prefix("prodguard-bench-out-")
        .tempdir()
        .unwrap();
    let out = dir.path().join("nested/summary.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_prodguard-bench"))
        .args([
            "--smoke",
            "--only",
            "is_production_vs_env_var,allow_decision_ns",
            "--out",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let list: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let names: Vec<&str> = list.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["is_production_vs_env_var", "allow_decision_ns"]);
    // The binary installs the counting allocator too.
    assert!(
        list[1]["extra"]["allocations_per_call"].is_number(),
        "{}",
        list[1]
    );
    drop(dir);

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_prodguard-bench"))
        .args(["--only", "no_such_measurement"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is_production_vs_env_var"));
}

#[test]
fn the_generated_policy_has_100_valid_rules_and_three_match() {
    let text = prodguard_bench::decisions::policy_with_rules(100);
    let policy = prodguard_core::Policy::parse_toml(&text, "gen.toml").unwrap();
    assert_eq!(policy.rules().len(), 100);
    let evaluation = policy.evaluate(prodguard_core::Tier::Production, "db.migrate");
    assert_eq!(evaluation.matched_rules.len(), 3, "{evaluation:?}");
    assert!(!evaluation.is_denied());
    // Every shape is there.
    assert!(policy.rules().iter().any(|r| r.deny().is_some()));
    assert!(policy.rules().iter().any(|r| !r.actors().is_empty()));
    assert!(policy.rules().iter().any(|r| r.backup().is_some()));
    assert!(policy.rules().iter().any(|r| r.tiers().is_empty()));
    let (_, detection, operation) = prodguard_bench::decisions::protected_inputs().unwrap();
    assert!(detection.protected);
    assert_eq!(operation.kind, "db.migrate");
}

#[test]
fn goals_hold_only_when_every_term_does() {
    let goal = Goal::at_most("value", 100.0).and_at_most("allocations_per_call", 0.0);
    assert_eq!(
        goal.to_string(),
        "value <= 100 and allocations_per_call <= 0"
    );
    let make = |value: f64, extra: &[(&str, f64)]| {
        Measurement::new(
            "allow_decision_ns",
            value,
            "ns",
            10.0,
            value / 10.0,
            &goal,
            extra.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            String::new(),
        )
    };
    assert!(make(50.0, &[("allocations_per_call", 0.0)]).holds);
    assert!(!make(50.0, &[("allocations_per_call", 1.0)]).holds);
    assert!(!make(150.0, &[("allocations_per_call", 0.0)]).holds);
    // Not counted is not zero.
    assert!(!make(50.0, &[]).holds);
    // A non-finite number never holds and still serialises.
    let m = make(f64::NAN, &[("allocations_per_call", 0.0)]);
    assert!(!m.holds);
    assert!(prodguard_bench::summary_json(&[m]).is_ok());
    let ratio = Goal::at_least("ratio", 20.0);
    assert_eq!(ratio.to_string(), "ratio >= 20");
}

#[test]
fn unknown_names_are_refused_with_the_list() {
    let e = prodguard_bench::run("nope", &Budget::new(Mode::Smoke)).unwrap_err();
    assert!(e.to_string().contains("exec_overhead_ms"), "{e}");
}
