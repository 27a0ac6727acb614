#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// A test harness, not the core: it reads the vector files, which the
// core's clippy.toml forbids in the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
//! Runs the shared vectors in `tests/vectors/` (see its README) through the
//! core's public API, the way every other face (C, Wasm) runs them.
//!
//! Each runner collects every failing case and reports them all, by name,
//! in one panic message.

use prodguard_core::session::{Operation, decide, verdict};
use prodguard_core::sql::{self, Dialect};
use prodguard_core::{Facts, Policy, Tier, classify};
use serde::Deserialize;
use serde_json::Value;

const DECISIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/vectors/decisions.json"
);
const DETECTION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/vectors/detection.json"
);

fn load<T: for<'de> Deserialize<'de>>(path: &str) -> Vec<T> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Panics with every failure, one per line, when there are any.
fn report(file: &str, total: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {total} vectors in {file} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
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

// ---------------------------------------------------------------- decisions

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionVector {
    name: String,
    facts: Facts,
    /// TOML policy text; `null` for the built-in default.
    policy: Option<String>,
    /// Without `sql`, `kind` is required.
    #[serde(default)]
    operation: OperationSpec,
    /// An SQL script that is the operation.
    #[serde(default)]
    sql: Option<SqlSpec>,
    expect: DecisionExpect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationSpec {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    target: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlSpec {
    script: String,
    dialect: Dialect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionExpect {
    environment: String,
    tier: Tier,
    protected: bool,
    result: String,
    rule: Option<String>,
    requirements: Vec<String>,
    exit_code: i64,
}

impl DecisionVector {
    fn policy(&self) -> Result<Policy, String> {
        match &self.policy {
            None => Ok(Policy::builtin_default()),
            Some(text) => Policy::parse_toml(text, &format!("<vector {:?}>", self.name))
                .map_err(|e| e.to_string()),
        }
    }

    /// Every way the core's answer differs from the expectation (empty: it passes).
    fn mismatches(&self) -> Vec<String> {
        let policy = match self.policy() {
            Ok(policy) => policy,
            Err(e) => return vec![format!("policy does not parse: {e}")],
        };
        let detection = classify(&self.facts, policy.environment());
        let mut out = Vec::new();
        let target = self.operation.target.as_deref();
        let decided = match (&self.sql, &self.operation.kind) {
            (Some(spec), None) => {
                let script = sql::classify(&spec.script, spec.dialect);
                sql::decide(&policy, &detection, &script, target).decision
            }
            (None, Some(kind)) => {
                let mut operation = Operation::new(kind.clone());
                operation.target = target.map(str::to_owned);
                let decided = decide(&policy, &detection, &operation);
                let quick = verdict(&policy, detection.tier, kind, target);
                if quick != decided.result {
                    out.push(format!(
                        "verdict() says {quick:?}, decide() says {:?}",
                        decided.result
                    ));
                }
                decided
            }
            _ => return vec!["a case gives either `operation.kind` or `sql`".into()],
        };
        // Compare the decision as the faces see it: its JSON.
        let decision = serde_json::to_value(&decided)
            .unwrap_or_else(|e| panic!("decision does not serialise: {e}"));

        let want = &self.expect;
        let mut check = |field: &str, got: String, expected: String| {
            if got != expected {
                out.push(format!("{field}: got {got}, expected {expected}"));
            }
        };
        check(
            "environment",
            format!("{:?}", detection.environment),
            format!("{:?}", want.environment),
        );
        check("tier", detection.tier.to_string(), want.tier.to_string());
        check(
            "protected",
            detection.protected.to_string(),
            want.protected.to_string(),
        );
        check(
            "result",
            decision["result"].to_string(),
            Value::from(want.result.as_str()).to_string(),
        );
        check(
            "rule",
            decision["rule"].to_string(),
            want.rule
                .as_deref()
                .map_or(Value::Null, Value::from)
                .to_string(),
        );
        let kinds: Vec<Value> = decision["requirements"]
            .as_array()
            .map(|list| list.iter().map(|r| r["kind"].clone()).collect())
            .unwrap_or_default();
        check(
            "requirements",
            Value::from(kinds).to_string(),
            Value::from(want.requirements.clone()).to_string(),
        );
        check(
            "exit_code",
            decision["exit_code"].to_string(),
            want.exit_code.to_string(),
        );

        // Shape the faces rely on, whatever the case.
        let requirements = decision["requirements"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for r in &requirements {
            let named = r["rule"].as_str().is_some_and(|s| !s.is_empty());
            let how = r["how"].as_str().is_some_and(|s| !s.is_empty());
            if !(named && how) {
                out.push(format!("requirement without a rule or a `how`: {r}"));
            }
        }
        let reasons = decision["reasons"].as_array().cloned().unwrap_or_default();
        if reasons.is_empty()
            || !reasons
                .iter()
                .all(|r| r.as_str().is_some_and(|s| !s.is_empty()))
        {
            out.push(format!(
                "`reasons` must be a non-empty array of sentences, got {}",
                decision["reasons"]
            ));
        }
        out
    }
}

#[test]
fn decision_vectors() {
    let vectors: Vec<DecisionVector> = load(DECISIONS);
    assert!(
        vectors.len() >= 20,
        "only {} decision vectors",
        vectors.len()
    );
    assert_unique_names(DECISIONS, vectors.iter().map(|v| v.name.as_str()));
    let failures: Vec<String> = vectors
        .iter()
        .filter_map(|v| {
            let problems = v.mismatches();
            (!problems.is_empty())
                .then(|| format!("  vector {:?}:\n    {}", v.name, problems.join("\n    ")))
        })
        .collect();
    report(DECISIONS, vectors.len(), &failures);
}

#[test]
fn every_decision_vector_policy_parses() {
    let vectors: Vec<DecisionVector> = load(DECISIONS);
    let failures: Vec<String> = vectors
        .iter()
        .filter_map(|v| {
            v.policy()
                .err()
                .map(|e| format!("  vector {:?}: {e}", v.name))
        })
        .collect();
    report(DECISIONS, vectors.len(), &failures);
    assert!(
        vectors.iter().any(|v| v.policy.is_none()) && vectors.iter().any(|v| v.policy.is_some()),
        "the vectors should exercise both the built-in default and custom policies"
    );
}

// ---------------------------------------------------------------- detection

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectionVector {
    name: String,
    facts: Facts,
    expect: DetectionExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectionExpect {
    environment: String,
    tier: Tier,
    protected: bool,
    decided_by: String,
    conflicts: usize,
}

#[test]
fn detection_vectors() {
    let vectors: Vec<DetectionVector> = load(DETECTION);
    assert!(
        vectors.len() >= 20,
        "only {} detection vectors",
        vectors.len()
    );
    assert_unique_names(DETECTION, vectors.iter().map(|v| v.name.as_str()));
    // Detection vectors run under the built-in default policy's [environment].
    let config = Policy::builtin_default().environment().clone();
    let failures: Vec<String> = vectors
        .iter()
        .filter_map(|v| {
            let d = classify(&v.facts, &config);
            let got = (
                d.environment.as_str(),
                d.tier,
                d.protected,
                d.decided_by.as_str(),
                d.conflicts.len(),
            );
            let e = &v.expect;
            let want = (
                e.environment.as_str(),
                e.tier,
                e.protected,
                e.decided_by.as_str(),
                e.conflicts,
            );
            (got != want).then(|| {
                format!(
                    "  vector {:?}:\n    got      (environment, tier, protected, decided_by, conflicts) = {got:?}\n    expected (environment, tier, protected, decided_by, conflicts) = {want:?}",
                    v.name
                )
            })
        })
        .collect();
    report(DETECTION, vectors.len(), &failures);
}
