//! The JSON API (`evaluate`, `audit_record`, `verify_approval`) on
//! arbitrary requests: a JSON answer, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prodguard_core::json_api::{audit_record_json, evaluate_json, verify_approval_json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for answer in [
        evaluate_json(text),
        audit_record_json(text),
        verify_approval_json(text),
    ] {
        assert!(serde_json_is_object(&answer.body), "{}", answer.body);
    }
});

fn serde_json_is_object(body: &str) -> bool {
    body.starts_with('{') && body.ends_with('}')
}
