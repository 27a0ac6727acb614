#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Mutated requests (a fixed seed, so failures reproduce) never trap the
//! module: each gets a documented status and a JSON answer.

use prodguard_core::approval::{self, Claims};
use prodguard_core::{Tier, Timestamp};
use prodguard_wasmtime::Export;
use serde_json::json;

use crate::common::{instance, json};

/// xorshift64*: deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const INTERESTING: [&str; 16] = [
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "null",
    "[",
    "{",
    "}",
    "]",
    ",",
    ":",
    "1e999",
    "-1",
    "18446744073709551616",
    "\"\\n[[rule]]\\n\"",
    "\u{feff}",
];

fn seeds() -> Vec<(Export, String)> {
    let now = Timestamp::parse_rfc3339("2026-11-27T10:00:00Z").unwrap();
    let key = approval::ApproverKey::from_secret("bob", [7u8; 32]).unwrap();
    let token = approval::issue(
        &key,
        &Claims {
            v: 2,
            op: "db.migrate".into(),
            target: "orders".into(),
            env: "production".into(),
            tier: Tier::Production,
            fingerprint: Some("sha256:1".into()),
            approver: "bob".into(),
            approver_kind: None,
            iat: now,
            exp: now.plus_seconds(600),
            nonce: "n".into(),
            ledger: "file://h/audit.jsonl".into(),
            max_rows: None,
        },
    );
    let approvers = format!(
        "approvers = {{ bob = {{ key = \"{}\", user = \"bob\" }} }}\n",
        key.public_key_text()
    );
    let policy = "[environment]\nunknown = \"protected\"\nmarker_file = \"/etc/pg\"\naliases = { \"prod-eu\" = \"production\" }\n\n[approval]\n{approvers}max_ttl = \"15m\"\nfour_eyes = true\n\n[[rule]]\nname = \"migrations\"\noperations = [\"db.migrate\", \"db.delete.*\"]\ntiers = [\"production\", \"unknown\"]\nrequire = [\"confirm\", \"backup\", \"audit\"]\nconfirm = { mode = \"either\" }\nbackup = { provider = \"program\", max_age = \"1h\" }\nbreak_glass = true\n\n[[rule]]\noperations = [\"db.drop\"]\ntiers = [\"production\"]\ndeny = \"never\"\n".replace("{approvers}", &approvers);
    vec![
        (Export::Evaluate, json!({
            "facts": {"env": {"APP_ENV": "prod-eu", "CI": "true", "PRODGUARD_ENV": "production"},
                      "files": {"/etc/pg": "production\n"}, "hostname": "db-eu-1", "explicit": null},
            "policy": policy,
            "operation": {"kind": "db.migrate", "target": "orders", "fingerprint": "sha256:1"},
            "evidence": {"actor": {"user": "alice", "kind": "human"}, "attempt_id": "a-1",
                         "typed": "orders", "approval": {"token": token, "ledger": "file://h/audit.jsonl"},
                         "stamp": {"environment": "production", "tier": "production", "stamped_at": "2026-01-01T00:00:00Z"},
                         "backup": {"location": "/b", "sha256": "ab", "bytes": 1, "created": "2026-11-27T09:59:00Z", "verified": true},
                         "break_glass": "the database is on fire, restoring"},
            "now": "2026-11-27T10:00:00Z", "explain": true
        }).to_string()),
        (Export::AuditRecord, json!({
            "log_id": "L", "seq": 1, "ts": "2026-11-27T10:00:00.000001Z", "host": "h", "pid": 1,
            "prev": "0".repeat(64),
            "event": {"kind": "intent", "attempt_id": "a", "actor": {"user": "a", "kind": "ci"},
                      "op": {"kind": "db.migrate", "target": "t", "env": "production", "tier": "production", "decided_by": "x"},
                      "decision": {"result": "proceed", "requirements": ["confirm"], "reasons": ["r"]},
                      "confirm": {"method": "typed"}}
        }).to_string()),
        (Export::VerifyApproval, json!({
            "token": token, "policy": policy, "ledger": "file://h/audit.jsonl",
            "operation": {"kind": "db.migrate", "target": "orders", "fingerprint": "sha256:1"},
            "environment": "production", "tier": "production",
            "requester": {"user": "alice", "kind": "human", "account": "alice"},
            "now": "2026-11-27T10:00:00Z"
        }).to_string()),
    ]
}

fn mutate(rng: &mut Rng, text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let at = at.min(bytes.len() - 1);
                bytes[at] = (rng.next() & 0xff) as u8;
            }
            1 => bytes
                .splice(at..at, INTERESTING[rng.below(INTERESTING.len())].bytes())
                .for_each(drop),
            2 if at < bytes.len() => {
                let end = (at + rng.below(16)).min(bytes.len());
                bytes.drain(at..end);
            }
            3 if at < bytes.len() => {
                let end = (at + rng.below(32)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = rng.below(bytes.len());
                bytes.splice(to..to, copy).for_each(drop);
            }
            4 => {
                let digit = b'0' + (rng.below(10) as u8);
                bytes
                    .splice(at..at, std::iter::repeat_n(digit, rng.below(40)))
                    .for_each(drop);
            }
            _ => {}
        }
    }
    bytes
}

#[test]
#[allow(clippy::print_stderr)]
fn mutated_requests_never_trap() {
    let mut instance = instance();
    let seeds = seeds();
    for (export, seed) in &seeds {
        let (status, answer) = instance.call_json(*export, seed).unwrap();
        assert_eq!(status, 0, "{}: {answer}", export.name());
    }
    let iterations: usize = std::env::var("PRODGUARD_FUZZ_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1500);
    // PRODGUARD_FUZZ_ITERATIONS and PRODGUARD_FUZZ_SEED run a longer or another search.
    let seed = std::env::var("PRODGUARD_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15_u64);
    let mut rng = Rng(seed | 1);
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..iterations {
        let (export, seed) = &seeds[i % seeds.len()];
        let request = mutate(&mut rng, seed);
        match instance.call_json(*export, &request) {
            Ok((status, answer)) => {
                assert!(
                    matches!(status, 0 | 2 | 121 | 125),
                    "status {status} for {:?}",
                    String::from_utf8_lossy(&request)
                );
                let answer = json(&answer);
                assert!(answer.get("ok").is_some() == (status == 0), "{answer}");
                *seen.entry(status).or_insert(0) += 1;
            }
            Err(e) => panic!(
                "iteration {i}: {} with {:?}: {e}",
                export.name(),
                String::from_utf8_lossy(&request)
            ),
        }
    }
    assert_eq!(instance.replacements(), 0);
    assert!(
        seen.len() >= 2,
        "the mutations hardly vary the answers: {seen:?}"
    );
    eprintln!("{iterations} mutated requests (seed {seed}), statuses: {seen:?}");
}
