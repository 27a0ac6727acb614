#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Record lines made by the module chain into a log the Rust verifier
//! accepts, byte for byte what the Rust file sink writes.

use std::path::PathBuf;

use prodguard_core::Timestamp;
use prodguard_core::audit::{AuditEvent, Envelope, encode_record};
use prodguard_wasmtime::{
    Actor, ActorKind, AuditRecordRequest, EvaluateRequest, Evidence, Facts, GENESIS_PREV,
    RecordLine,
};
use serde_json::{Value, json};

use crate::common::instance;

const NOW: &str = "2026-11-27T10:00:00Z";

/// A file in the temp dir, removed on drop.
struct TempLog(PathBuf);

impl TempLog {
    fn new(name: &str) -> TempLog {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        TempLog(std::env::temp_dir().join(format!(
            "prodguard-wasmtime-{name}-{}-{nanos}.jsonl",
            std::process::id()
        )))
    }
}

impl Drop for TempLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The intent of a session that proceeds, as the module makes it.
fn intent_event() -> Value {
    let mut instance = instance();
    let mut facts = Facts::default();
    facts.env.insert("APP_ENV".into(), "production".into());
    let mut evidence = Evidence::new(
        Actor {
            user: "alice".into(),
            kind: ActorKind::Human,
            account: None,
        },
        "attempt-1",
    );
    evidence.typed = Some("orders".into());
    let request = EvaluateRequest::new("db.migrate")
        .target("orders")
        .facts(facts)
        .evidence(evidence, NOW);
    let session = instance.evaluate(&request).unwrap().session.unwrap();
    assert!(session.proceeds(), "{session:?}");
    serde_json::to_value(session.record.unwrap()).unwrap()
}

#[test]
fn records_chain_into_a_log_that_verifies_and_match_the_rust_sink() {
    let mut instance = instance();
    let events = [
        intent_event(),
        json!({"kind": "outcome", "attempt_id": "attempt-1", "outcome": {"status": "ok", "duration_ms": 12}}),
        json!({"kind": "note", "message": "plugin host: migration window closed"}),
        json!({"kind": "outcome", "attempt_id": "attempt-2", "outcome": {"status": "error", "duration_ms": 3, "error": "boom", "exit_code": 1}}),
    ];
    let mut prev = GENESIS_PREV.to_owned();
    let mut log = String::new();
    for (i, event) in events.iter().enumerate() {
        let seq = i as u64 + 1;
        let ts = format!("2026-11-27T10:00:0{seq}.000001Z");
        let request = AuditRecordRequest {
            log_id: "6b1f0c2d9e8a4f3b".into(),
            seq,
            ts: ts.clone(),
            host: "plugin-host-1".into(),
            pid: 4242,
            prev: prev.clone(),
            event: serde_json::from_value(event.clone()).unwrap(),
        };
        let RecordLine { line, hash, .. } = instance.audit_record(&request).unwrap();
        assert!(line.ends_with('\n'));
        assert_eq!(hash.len(), 64);

        // Byte-identical to the Rust file sink's encoding of the same record.
        let envelope = Envelope {
            log_id: request.log_id.clone(),
            seq,
            ts: Timestamp::parse_rfc3339(&ts).unwrap(),
            host: request.host.clone(),
            pid: request.pid,
        };
        let event: AuditEvent = serde_json::from_value(event.clone()).unwrap();
        let (rust_line, rust_hash) = encode_record(&envelope, &event, &prev).unwrap();
        assert_eq!(line.as_bytes(), rust_line.as_slice(), "record {seq}");
        assert_eq!(hash, rust_hash, "record {seq}");

        log.push_str(&line);
        prev = hash;
    }

    let file = TempLog::new("audit");
    std::fs::write(&file.0, &log).unwrap();
    let report = prodguard::audit::verify_file(&file.0, None).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.records, events.len() as u64);
    assert_eq!(report.head_hash, prev);
    assert_eq!(report.log_id.as_deref(), Some("6b1f0c2d9e8a4f3b"));

    // One flipped byte anywhere in a record breaks it.
    let first_len = log.find('\n').unwrap() + 1;
    for offset in [10, first_len + 30, log.len() - 20] {
        let mut bytes = log.clone().into_bytes();
        bytes[offset] ^= 0x01;
        std::fs::write(&file.0, &bytes).unwrap();
        let report = prodguard::audit::verify_file(&file.0, None).unwrap();
        assert!(
            !report.intact(),
            "flipping byte {offset} went unnoticed: {report:?}"
        );
        assert!(report.damage.is_some(), "{report:?}");
    }
}

#[test]
fn bad_chain_links_are_refused() {
    let mut instance = instance();
    let base = AuditRecordRequest {
        log_id: "L".into(),
        seq: 1,
        ts: NOW.into(),
        host: "h".into(),
        pid: 1,
        prev: GENESIS_PREV.into(),
        event: serde_json::from_value(json!({"kind": "note", "message": "m"})).unwrap(),
    };
    let mut zero = base.clone();
    zero.seq = 0;
    let mut bad_prev = base.clone();
    bad_prev.prev = "xyz".into();
    let mut huge = base;
    huge.event =
        serde_json::from_value(json!({"kind": "note", "message": "m".repeat(1 << 20)})).unwrap();
    for request in [zero, bad_prev, huge] {
        let error = instance.audit_record(&request).unwrap_err();
        assert_eq!(error.status(), Some(125), "{error}");
    }
}
