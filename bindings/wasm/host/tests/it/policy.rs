#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A broken policy is a 125 whose message says where.

use prodguard_wasmtime::{Error, EvaluateRequest};

use crate::common::instance;

fn refused(policy: &str) -> (u32, String) {
    let mut instance = instance();
    match instance.evaluate(&EvaluateRequest::new("db.migrate").policy(policy)) {
        Err(Error::Status { code, message }) => (code, message),
        other => panic!("policy {policy:?} gave {other:?}"),
    }
}

#[test]
fn a_broken_policy_is_125_naming_line_and_column() {
    let (code, message) = refused("[[rule]]\nrequre = 1");
    assert_eq!(code, 125);
    assert!(message.contains("2:1"), "{message}");
    assert!(message.contains("requre"), "{message}");

    // A TOML syntax error, and a rule that names an unknown requirement.
    for (policy, place) in [
        ("[environment]\nunknown = \"protected\"\n[[rule]\n", "3:"),
        (
            "[[rule]]\noperations = [\"db.*\"]\nrequire = [\"confirm\", \"prayer\"]\n",
            "3:",
        ),
    ] {
        let (code, message) = refused(policy);
        assert_eq!(code, 125, "{policy}");
        assert!(message.contains(place), "{policy:?}: {message}");
    }
}

#[test]
fn the_error_answer_is_the_documented_envelope() {
    let mut instance = instance();
    let (status, answer) = instance
        .call_json(
            prodguard_wasmtime::Export::Evaluate,
            r#"{"operation": {"kind": "db.migrate"}, "policy": "[[rule]]\nrequre = 1"}"#,
        )
        .unwrap();
    assert_eq!(status, 125);
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["error"]["code"], 125);
    assert!(answer["error"]["message"].as_str().unwrap().contains("2:1"));
}
