//! A JSON API over the core, for faces that speak JSON (the C ABI's
//! `prodguard_evaluate_json`, the Wasm module's `prodguard_evaluate`): facts,
//! a policy and an operation in, the detection and the decision out. The
//! faces only move bytes; this is where the answer is made.
//!
//! ```
//! let response = prodguard_core::api::evaluate_json(
//!     r#"{"facts": {"env": {"APP_ENV": "production"}}, "operation": {"kind": "db.migrate", "target": "orders"}}"#,
//! );
//! let value: serde_json::Value = serde_json::from_str(&response.body).unwrap();
//! assert_eq!(response.status, 0);
//! assert_eq!(value["decision"]["exit_code"], 121);
//! ```

use serde::{Deserialize, Serialize};

use crate::session::{Decision, Operation, decide};
use crate::{Detection, Facts, Policy, classify, exit};

/// What `evaluate` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The facts detection looks at.
    #[serde(default)]
    pub facts: Facts,
    /// The policy as TOML text; absent or null: the built-in default.
    #[serde(default)]
    pub policy: Option<String>,
    /// What is asked for.
    pub operation: RequestOperation,
    /// The current time (RFC 3339); accepted for the faces' sake, unused by
    /// a decision without evidence.
    #[serde(default)]
    pub now: Option<String>,
}

/// The operation in a [`Request`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestOperation {
    /// Dotted name.
    pub kind: String,
    /// Target, if any.
    #[serde(default)]
    pub target: Option<String>,
}

/// What `evaluate` answers.
#[derive(Debug, Serialize)]
pub struct Evaluation {
    /// As `prodguard detect --json`.
    pub detection: Detection,
    /// As `prodguard check --json`'s decision.
    pub decision: Decision,
}

/// A status (0 evaluated, 125 bad request or policy) and a JSON body:
/// `{"detection", "decision"}` on 0, `{"error": {"code", "message"}}` otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// 0 or 125.
    pub status: i32,
    /// The JSON body.
    pub body: String,
}

fn error(message: String) -> Response {
    let body = serde_json::json!({ "error": { "code": exit::POLICY_ERROR, "message": message } });
    Response {
        status: exit::POLICY_ERROR,
        body: body.to_string(),
    }
}

/// Evaluates a JSON [`Request`].
pub fn evaluate_json(request: &str) -> Response {
    let request: Request = match serde_json::from_str(request) {
        Ok(request) => request,
        Err(e) => return error(format!("invalid request: {e}")),
    };
    let policy = match &request.policy {
        Some(text) => match Policy::parse_toml(text, "<request policy>") {
            Ok(policy) => policy,
            Err(e) => return error(e.to_string()),
        },
        None => Policy::builtin_default(),
    };
    let detection = classify(&request.facts, &policy.environment);
    let mut operation = Operation::new(request.operation.kind);
    operation.target = request.operation.target;
    let decision = decide(&policy, &detection, &operation);
    match serde_json::to_string(&Evaluation {
        detection,
        decision,
    }) {
        Ok(body) => Response { status: 0, body },
        Err(e) => error(format!("cannot render the answer: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_and_policies_are_125_with_a_message() {
        for (request, needle) in [
            ("", "invalid request"),
            ("{\"operation\": {\"kind\": 3}}", "invalid request"),
            (
                "{\"operation\": {\"kind\": \"db.migrate\"}, \"extra\": 1}",
                "unknown field",
            ),
            (
                "{\"operation\": {\"kind\": \"db.migrate\"}, \"policy\": \"[[rule]]\\nrequre = 1\"}",
                "2:1",
            ),
        ] {
            let response = evaluate_json(request);
            assert_eq!(response.status, 125, "{request}");
            let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
            assert!(
                body["error"]["message"].as_str().unwrap().contains(needle),
                "{request}: {body}"
            );
        }
    }
}
