#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Junk never traps the module: every bad request gets an error status and
//! an `{"error": …}` answer, and the instance keeps working.

use prodguard_wasmtime::{Export, ProdguardInstance};
use serde_json::json;

use crate::common::{Raw, instance, json};

const EXPORTS: [Export; 3] = [
    Export::Evaluate,
    Export::AuditRecord,
    Export::VerifyApproval,
];

/// Checks the error envelope: `{"error": {"code": status, "message": "…"}}`.
fn assert_error(status: u32, answer: &str, expected: u32, context: &str) {
    assert_eq!(status, expected, "{context}: {answer}");
    let answer = json(answer);
    assert_eq!(answer["error"]["code"], expected, "{context}: {answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{context}: {answer}"
    );
}

/// The instance still answers a good request correctly.
fn still_works(instance: &mut ProdguardInstance) {
    let evaluation = instance
        .evaluate(&json!({"facts": {"env": {"APP_ENV": "production"}}, "operation": {"kind": "db.migrate"}}))
        .unwrap();
    assert_eq!(evaluation.decision.exit_code, 121);
    assert_eq!(
        instance.replacements(),
        0,
        "the instance trapped and was replaced"
    );
}

fn valid_request() -> String {
    json!({
        "facts": {"env": {"APP_ENV": "production"}, "files": {}, "hostname": "db-1", "explicit": null},
        "policy": "[[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\"]\n",
        "operation": {"kind": "db.migrate", "target": "orders", "fingerprint": "sha256:00"},
        "evidence": {"actor": {"user": "alice", "kind": "human"}, "attempt_id": "a-1", "typed": "orders"},
        "now": "2026-11-27T10:00:00Z"
    })
    .to_string()
}

#[test]
fn empty_input_is_125_for_every_export() {
    let mut instance = instance();
    for export in EXPORTS {
        let (status, answer) = instance.call_json(export, "").unwrap();
        assert_error(status, &answer, 125, export.name());
    }
    // Also with a real pointer and length 0.
    let mut raw = Raw::new();
    let req = raw.alloc(16);
    let out = raw.alloc(8);
    let status = raw.call("prodguard_evaluate", req, 0, out);
    let (ptr, len) = raw.read_out(out);
    assert_error(
        status,
        &String::from_utf8(raw.read(ptr, len)).unwrap(),
        125,
        "len 0",
    );
    still_works(&mut instance);
}

#[test]
fn every_prefix_of_a_valid_request_is_125() {
    let mut instance = instance();
    let request = valid_request();
    let (status, answer) = instance.call_json(Export::Evaluate, &request).unwrap();
    assert_eq!(status, 0, "{answer}");
    for end in 0..request.len() {
        let prefix = &request[..end];
        let (status, answer) = instance.call_json(Export::Evaluate, prefix).unwrap();
        assert_error(status, &answer, 125, prefix);
    }
    still_works(&mut instance);
}

#[test]
fn wrong_types_and_unknown_fields_are_125() {
    let mut instance = instance();
    let evidence = json!({"actor": {"user": "alice", "kind": "human"}, "attempt_id": "a"});
    let bad_evaluate = [
        json!(null),
        json!([]),
        json!("db.migrate"),
        json!({"operation": "db.migrate"}),
        json!({"operation": {"kind": 3}}),
        json!({"operation": {"kind": "db.migrate", "target": ["orders"]}}),
        json!({"operation": {"kind": "db.migrate"}, "facts": {"env": ["APP_ENV"]}}),
        json!({"operation": {"kind": "db.migrate"}, "facts": {"env": {"APP_ENV": 1}}}),
        json!({"operation": {"kind": "db.migrate"}, "facts": {"hostname": 7}}),
        json!({"operation": {"kind": "db.migrate"}, "policy": 1}),
        json!({"operation": {"kind": "db.migrate"}, "evidence": evidence}),
        json!({"operation": {"kind": "db.migrate"}, "evidence": evidence, "now": "yesterday"}),
        json!({"operation": {"kind": "db.migrate"}, "evidence": {"actor": {"user": "a", "kind": "robot"}, "attempt_id": "a"}, "now": "2026-11-27T10:00:00Z"}),
        json!({"operation": {"kind": "db.migrate"}, "evidence": {"attempt_id": "a"}, "now": "2026-11-27T10:00:00Z"}),
        json!({"operation": {"kind": "db.migrate"}, "evidence": {"actor": {"user": "a", "kind": "human"}, "attempt_id": "a", "approval": {"token": "pga2.x.y", "ledger": 7}}, "now": "2026-11-27T10:00:00Z"}),
        json!({"operation": {"kind": "db.migrate"}, "evidence": {"actor": {"user": "a", "kind": "human"}, "attempt_id": "a", "backup": {"location": "x"}}, "now": "2026-11-27T10:00:00Z"}),
    ];
    for request in &bad_evaluate {
        let (status, answer) = instance
            .call_json(Export::Evaluate, request.to_string())
            .unwrap();
        assert_error(status, &answer, 125, &request.to_string());
    }
    let unknown = [
        json!({"operation": {"kind": "db.migrate"}, "polcy": "x"}),
        json!({"operation": {"kind": "db.migrate", "taget": "orders"}}),
        json!({"operation": {"kind": "db.migrate"}, "facts": {"environment": {}}}),
        json!({"operation": {"kind": "db.migrate"}, "evidence": {"actor": {"user": "a", "kind": "human"}, "attempt_id": "a", "typd": "orders"}, "now": "2026-11-27T10:00:00Z"}),
    ];
    for request in &unknown {
        let (status, answer) = instance
            .call_json(Export::Evaluate, request.to_string())
            .unwrap();
        assert_error(status, &answer, 125, &request.to_string());
        assert!(answer.contains("unknown field"), "{request}: {answer}");
    }
    let bad_record = [
        json!({"log_id": "l", "seq": "1", "ts": "2026-11-27T10:00:00Z", "host": "h", "pid": 1, "prev": "0".repeat(64), "event": {"kind": "note", "message": "m"}}),
        json!({"log_id": "l", "seq": 0, "ts": "2026-11-27T10:00:00Z", "host": "h", "pid": 1, "prev": "0".repeat(64), "event": {"kind": "note", "message": "m"}}),
        json!({"log_id": "l", "seq": 1, "ts": "2026-11-27T10:00:00Z", "host": "h", "pid": -1, "prev": "0".repeat(64), "event": {"kind": "note", "message": "m"}}),
        json!({"log_id": "l", "seq": 1, "ts": "now", "host": "h", "pid": 1, "prev": "0".repeat(64), "event": {"kind": "note", "message": "m"}}),
        json!({"log_id": "l", "seq": 1, "ts": "2026-11-27T10:00:00Z", "host": "h", "pid": 1, "prev": "0".repeat(63), "event": {"kind": "note", "message": "m"}}),
        json!({"log_id": "l", "seq": 1, "ts": "2026-11-27T10:00:00Z", "host": "h", "pid": 1, "prev": "A".repeat(64), "event": {"kind": "note", "message": "m"}}),
        json!({"log_id": "l", "seq": 1, "ts": "2026-11-27T10:00:00Z", "host": "h", "pid": 1, "prev": "0".repeat(64), "event": {"kind": "party"}}),
        json!({"log_id": "", "seq": 1, "ts": "2026-11-27T10:00:00Z", "host": "h", "pid": 1, "prev": "0".repeat(64), "event": {"kind": "note", "message": "m"}}),
        json!({"log_id": "l", "seq": 1, "ts": "2026-11-27T10:00:00Z", "host": "h", "pid": 1, "prev": "0".repeat(64), "event": {"kind": "note", "message": "m"}, "extra": 1}),
    ];
    for request in &bad_record {
        let (status, answer) = instance
            .call_json(Export::AuditRecord, request.to_string())
            .unwrap();
        assert_error(status, &answer, 125, &request.to_string());
    }
    let approval = json!({"token": "pga2.x.y", "ledger": "file://h/a.jsonl",
        "operation": {"kind": "db.migrate", "target": "orders"}, "environment": "production",
        "tier": "production", "requester": {"user": "alice", "kind": "human", "account": "alice"},
        "now": "2026-11-27T10:00:00Z"});
    for (field, value) in [
        ("ledger", json!(7)),
        ("policy", json!("[[rule]")),
        ("tier", json!("galaxy")),
        ("now", json!("soon")),
        ("requester", json!("alice")),
        ("key", json!("00")),
        ("four_eyes", json!(true)),
        ("nonsense", json!(1)),
    ] {
        let mut request = approval.clone();
        request[field] = value;
        let (status, answer) = instance
            .call_json(Export::VerifyApproval, request.to_string())
            .unwrap();
        assert_error(status, &answer, 125, &request.to_string());
    }
    still_works(&mut instance);
}

#[test]
fn a_huge_target_name_is_answered_not_trapped() {
    let mut instance = instance();
    let target = "t".repeat(4 << 20);
    for evidence in [false, true] {
        let mut request = json!({"facts": {"env": {"APP_ENV": "production"}},
            "operation": {"kind": "db.migrate", "target": target}});
        if evidence {
            request["evidence"] = json!({"actor": {"user": "a", "kind": "human"}, "attempt_id": "a", "typed": target});
            request["now"] = json!("2026-11-27T10:00:00Z");
        }
        let (status, answer) = instance
            .call_json(Export::Evaluate, request.to_string())
            .unwrap();
        let answer = json(&answer);
        match status {
            0 => assert!(answer["ok"]["decision"].is_object(), "{status}"),
            125 => assert!(answer["error"]["message"].is_string()),
            other => panic!("status {other} for a 4 MiB target"),
        }
    }
    still_works(&mut instance);
}

#[test]
fn a_request_over_8_mib_is_125() {
    let mut instance = instance();
    let request = format!(
        "{{\"operation\": {{\"kind\": \"db.migrate\"}}, \"policy\": \"#{}\"}}",
        "x".repeat(8 << 20)
    );
    assert!(request.len() > 8 << 20);
    for export in EXPORTS {
        let (status, answer) = instance.call_json(export, &request).unwrap();
        assert_error(status, &answer, 125, export.name());
        assert!(answer.contains("8388608"), "{answer}");
    }
    // Exactly 8 MiB is read.
    let fitting = json!({"operation": {"kind": "db.migrate"},
        "policy": "[[rule]]\noperations = [\"db.*\"]\nrequire = [\"confirm\"]\n"})
    .to_string();
    let padded = format!("{fitting}{}", " ".repeat((8 << 20) - fitting.len()));
    assert_eq!(padded.len(), 8 << 20);
    let (status, answer) = instance.call_json(Export::Evaluate, &padded).unwrap();
    assert_eq!(status, 0, "{}", &answer[..answer.len().min(300)]);
    still_works(&mut instance);
}

#[test]
fn invalid_utf8_is_2() {
    let mut instance = instance();
    for bytes in [
        &b"\xff"[..],
        b"{\"operation\": {\"kind\": \"db.\xc3\"}}",
        b"\xed\xa0\x80",
    ] {
        for export in EXPORTS {
            let (status, answer) = instance.call_json(export, bytes).unwrap();
            assert_error(status, &answer, 2, export.name());
            assert!(answer.contains("UTF-8"), "{answer}");
        }
    }
    still_works(&mut instance);
}

#[test]
fn a_request_outside_memory_is_2() {
    let mut raw = Raw::new();
    let out = raw.alloc(8);
    for export in EXPORTS {
        // Memory may grow with every call: take its size afresh.
        let size = || u32::try_from(raw.memory_bytes()).unwrap();
        let cases = [
            (size() - 4, 100),
            (size(), 1),
            (u32::MAX, 10),
            (u32::MAX - 3, 8),
            (0, 5),
            (8, 4 << 20),
        ];
        for (ptr, len) in cases {
            let status = raw.call(export.name(), ptr, len, out);
            let (answer_ptr, answer_len) = raw.read_out(out);
            let answer = String::from_utf8(raw.read(answer_ptr, answer_len)).unwrap();
            assert_error(
                status,
                &answer,
                2,
                &format!("{}({ptr:#x}, {len})", export.name()),
            );
            raw.dealloc(answer_ptr, answer_len);
        }
    }
    let (status, answer) = raw.request(
        "prodguard_evaluate",
        br#"{"operation": {"kind": "db.migrate"}}"#,
    );
    assert_eq!(status, 0, "{answer}");
}

#[test]
fn an_out_pointer_outside_memory_is_2_and_nothing_is_written() {
    let mut raw = Raw::new();
    let request = br#"{"operation": {"kind": "db.migrate"}}"#;
    let req = raw.alloc(request.len() as u32);
    raw.write(req, request);
    for export in EXPORTS {
        let size = u32::try_from(raw.memory_bytes()).unwrap();
        for out in [0, size - 4, size - 7, size, u32::MAX, u32::MAX - 7] {
            let before = raw.snapshot();
            let status = raw.call(export.name(), req, request.len() as u32, out);
            assert_eq!(status, 2, "{}(out = {out:#x})", export.name());
            let after = raw.snapshot();
            assert_eq!(before.len(), after.len(), "memory grew");
            // Nothing at `out` (the part inside memory) and no answer on the
            // heap: at most the module's own shadow stack, which lies below
            // every heap block, moved.
            let changed: Vec<usize> = (0..before.len())
                .filter(|&i| before[i] != after[i])
                .collect();
            assert!(
                changed.iter().all(|&i| i < req as usize && i >= 8),
                "{}(out = {out:#x}) wrote at {changed:x?} (the heap starts at or below {req:#x})",
                export.name()
            );
        }
    }
    let (status, answer) = raw.request("prodguard_evaluate", request);
    assert_eq!(status, 0, "{answer}");
}

#[test]
fn bogus_deallocs_are_ignored() {
    let mut raw = Raw::new();
    let size = u32::try_from(raw.memory_bytes()).unwrap();
    for (ptr, len) in [
        (0, 0),
        (0, 8),
        (1, 1),
        (12345, 7),
        (size, 8),
        (u32::MAX, u32::MAX),
        (size - 1, 1),
    ] {
        raw.dealloc(ptr, len);
    }
    // A real block: a wrong length is ignored, then it is freed once, then again.
    let block = raw.alloc(64);
    assert_ne!(block, 0);
    raw.dealloc(block, 63);
    raw.dealloc(block + 1, 63);
    raw.dealloc(block, 64);
    raw.dealloc(block, 64);
    // An answer freed twice.
    let request = br#"{"operation": {"kind": "db.migrate"}}"#;
    let req = raw.alloc(request.len() as u32);
    raw.write(req, request);
    let out = raw.alloc(8);
    assert_eq!(
        raw.call("prodguard_evaluate", req, request.len() as u32, out),
        0
    );
    let (answer, answer_len) = raw.read_out(out);
    raw.dealloc(answer, answer_len);
    raw.dealloc(answer, answer_len);
    raw.dealloc(out, 8);
    raw.dealloc(req, request.len() as u32);
    raw.dealloc(req, request.len() as u32);
    // The heap is intact: live blocks do not overlap, and calls work.
    let blocks: Vec<u32> = (0..64).map(|_| raw.alloc(64)).collect();
    let mut sorted = blocks.clone();
    sorted.sort_unstable();
    assert!(
        sorted.windows(2).all(|w| w[0] != 0 && w[0] + 64 <= w[1]),
        "{sorted:?}"
    );
    for (i, block) in blocks.iter().enumerate() {
        raw.write(*block, &[i as u8; 64]);
    }
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(raw.read(*block, 64), vec![i as u8; 64]);
    }
    for block in blocks {
        raw.dealloc(block, 64);
    }
    let (status, answer) = raw.request("prodguard_evaluate", request);
    assert_eq!(status, 0, "{answer}");
    assert_eq!(raw.alloc(0), 0, "alloc(0) is 0");
    assert_eq!(raw.alloc(u32::MAX), 0, "an impossible alloc is 0");
    let (status, _) = raw.request("prodguard_evaluate", request);
    assert_eq!(status, 0);
}

#[test]
fn deep_nesting_is_refused_not_trapped() {
    let mut instance = instance();
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for export in EXPORTS {
        let (status, answer) = instance.call_json(export, &deep_json).unwrap();
        assert_error(status, &answer, 125, "deep JSON");
    }
    for policy in [
        format!("x = {}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("x = {}1{}", "{a = ".repeat(20_000), "}".repeat(20_000)),
        format!("[a.{}c]\n", "b.".repeat(50_000)),
    ] {
        let request = json!({"operation": {"kind": "db.migrate"}, "policy": policy});
        let result = instance.call_json(Export::Evaluate, request.to_string());
        let (status, answer) = result.unwrap_or_else(|e| panic!("policy {}…: {e}", &policy[..40]));
        assert_error(status, &answer, 125, &policy[..40]);
    }
    still_works(&mut instance);
}
