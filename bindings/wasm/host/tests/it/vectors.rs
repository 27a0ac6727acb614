#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shared vectors (tests/vectors, see its README) through
//! `prodguard_evaluate` in wasmtime: each case gives the expected answer,
//! and the same detection and decision JSON as the Rust core.

use prodguard_wasmtime::{Export, Facts, ProdguardInstance};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::{instance, json as parse, workspace_root};

fn load<T: for<'de> Deserialize<'de>>(file: &str) -> Vec<T> {
    let path = workspace_root().join("tests/vectors").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_unique_names<'a>(file: &str, names: impl Iterator<Item = &'a str>) {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        assert!(
            !name.trim().is_empty(),
            "{file}: a vector has an empty name"
        );
        assert!(
            seen.insert(name),
            "{file}: vector name {name:?} is used twice"
        );
    }
}

/// Panics with every failure, by case name, when there are any.
fn report(file: &str, total: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {total} vectors in {file} failed in wasmtime:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs `request` through the module and through the Rust core; returns
/// the module's `ok` answer, or every way they differ.
fn both(instance: &mut ProdguardInstance, request: &Value) -> Result<Value, Vec<String>> {
    let text = request.to_string();
    let (status, answer) = instance
        .call_json(Export::Evaluate, &text)
        .map_err(|e| vec![format!("the call failed: {e}")])?;
    let core = prodguard_core::json_api::evaluate_json(&text);
    let mut problems = Vec::new();
    if i64::from(status) != i64::from(core.status) {
        problems.push(format!(
            "status {status} in wasm, {} in the core",
            core.status
        ));
    }
    if status != 0 {
        problems.push(format!("status {status}: {answer}"));
        return Err(problems);
    }
    let mut wasm = parse(&answer);
    let core = parse(&core.body);
    for part in ["detection", "decision"] {
        if wasm["ok"][part] != core[part] {
            problems.push(format!(
                "{part} differs from the Rust core:\n      wasm: {}\n      core: {}",
                wasm["ok"][part], core[part]
            ));
        }
    }
    if problems.is_empty() {
        Ok(wasm["ok"].take())
    } else {
        Err(problems)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectionVector {
    name: String,
    facts: Facts,
    expect: DetectionExpect,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DetectionExpect {
    environment: String,
    tier: String,
    protected: bool,
    decided_by: String,
    conflicts: usize,
}

#[test]
fn detection_vectors_pass_in_wasmtime_and_match_the_core() {
    let vectors: Vec<DetectionVector> = load("detection.json");
    assert!(
        vectors.len() >= 20,
        "only {} detection vectors",
        vectors.len()
    );
    assert_unique_names("detection.json", vectors.iter().map(|v| v.name.as_str()));
    let mut instance = instance();
    let mut failures = Vec::new();
    for v in &vectors {
        let request = json!({"facts": v.facts, "operation": {"kind": "noop"}});
        let mut problems = Vec::new();
        match both(&mut instance, &request) {
            Err(found) => problems = found,
            Ok(answer) => {
                let d = &answer["detection"];
                let got = json!({
                    "environment": d["environment"], "tier": d["tier"], "protected": d["protected"],
                    "decided_by": d["decided_by"],
                    "conflicts": d["conflicts"].as_array().map_or(usize::MAX, Vec::len),
                });
                let want = serde_json::to_value(&v.expect).unwrap();
                if got != want {
                    problems.push(format!("got {got}, expected {want}"));
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "  vector {:?}:\n    {}",
                v.name,
                problems.join("\n    ")
            ));
        }
    }
    report("detection.json", vectors.len(), &failures);
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionVector {
    name: String,
    facts: Facts,
    policy: Option<String>,
    /// Without `sql`, `kind` is required.
    #[serde(default)]
    operation: OperationSpec,
    /// An SQL script that is the operation: passed as the request's `sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sql: Option<SqlSpec>,
    expect: DecisionExpect,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct OperationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default)]
    target: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SqlSpec {
    script: String,
    dialect: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DecisionExpect {
    environment: String,
    tier: String,
    protected: bool,
    result: String,
    rule: Option<String>,
    requirements: Vec<String>,
    exit_code: i64,
}

#[test]
fn decision_vectors_pass_in_wasmtime_and_match_the_core() {
    let vectors: Vec<DecisionVector> = load("decisions.json");
    assert!(
        vectors.len() >= 20,
        "only {} decision vectors",
        vectors.len()
    );
    assert_unique_names("decisions.json", vectors.iter().map(|v| v.name.as_str()));
    let mut instance = instance();
    let mut failures = Vec::new();
    for v in &vectors {
        let mut request = json!({"facts": v.facts, "policy": v.policy, "operation": v.operation});
        if let Some(sql) = &v.sql {
            request["sql"] = json!(sql);
        }
        let mut problems = Vec::new();
        match both(&mut instance, &request) {
            Err(found) => problems = found,
            Ok(answer) => {
                let (d, decision) = (&answer["detection"], &answer["decision"]);
                let kinds: Vec<Value> = decision["requirements"]
                    .as_array()
                    .map(|list| list.iter().map(|r| r["kind"].clone()).collect())
                    .unwrap_or_default();
                let got = json!({
                    "environment": d["environment"], "tier": d["tier"], "protected": d["protected"],
                    "result": decision["result"], "rule": decision["rule"],
                    "requirements": kinds, "exit_code": decision["exit_code"],
                });
                let want = serde_json::to_value(&v.expect).unwrap();
                if got != want {
                    problems.push(format!("got {got}, expected {want}"));
                }
                // The shape hosts rely on (README: not the wording).
                let shaped = decision["requirements"].as_array().is_some_and(|list| {
                    list.iter().all(|r| {
                        r["rule"].as_str().is_some_and(|s| !s.is_empty())
                            && r["how"].as_str().is_some_and(|s| !s.is_empty())
                    })
                }) && decision["reasons"].as_array().is_some_and(|list| {
                    !list.is_empty()
                        && list
                            .iter()
                            .all(|r| r.as_str().is_some_and(|s| !s.is_empty()))
                });
                if !shaped {
                    problems.push(format!("requirements or reasons malformed: {decision}"));
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "  vector {:?}:\n    {}",
                v.name,
                problems.join("\n    ")
            ));
        }
    }
    report("decisions.json", vectors.len(), &failures);
}

#[test]
fn the_typed_answer_reads_what_the_vectors_check() {
    // The typed API agrees with the raw JSON on a vector-like case.
    let mut instance = instance();
    let mut facts = Facts::default();
    facts.env.insert("APP_ENV".into(), "production".into());
    let evaluation = instance
        .evaluate(
            &prodguard_wasmtime::EvaluateRequest::new("db.migrate")
                .target("orders")
                .facts(facts),
        )
        .unwrap();
    assert_eq!(evaluation.detection.environment, "production");
    assert_eq!(
        evaluation.detection.tier,
        prodguard_wasmtime::Tier::Production
    );
    assert!(evaluation.detection.protected);
    assert_eq!(
        evaluation.decision.result,
        prodguard_wasmtime::Verdict::Require
    );
    assert_eq!(
        evaluation.decision.rule.as_deref(),
        Some("default: protected tiers")
    );
    let kinds: Vec<_> = evaluation
        .decision
        .requirements
        .iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            prodguard_wasmtime::RequirementKind::Confirm,
            prodguard_wasmtime::RequirementKind::Audit
        ]
    );
    assert_eq!(evaluation.decision.exit_code, 121);
    assert!(evaluation.session.is_none());
    // By default only the signals that were set; `explain` lists them all.
    assert!(
        evaluation
            .detection
            .evidence
            .iter()
            .all(|signal| signal.value.is_some())
    );
    let request = prodguard_wasmtime::EvaluateRequest::new("db.migrate").target("orders");
    let explained = instance.evaluate(&request.explain()).unwrap();
    assert!(
        explained.detection.evidence.len() > 10,
        "{:?}",
        explained.detection.evidence
    );
}
