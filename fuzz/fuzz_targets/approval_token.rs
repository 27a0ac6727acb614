//! Approval tokens on arbitrary text: decoded or refused, never a panic,
//! and never verified without the approver's key (a fuzzer cannot forge
//! an Ed25519 signature).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use prodguard_core::approval::{Expected, Here, decode_unverified, verify};
use prodguard_core::audit::Actor;
use prodguard_core::policy::ActorKind;
use prodguard_core::{Policy, Tier, Timestamp};

/// A policy whose only approver's key was made for this target and thrown
/// away: no input can carry a valid signature.
static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    Policy::parse_toml(
        "[approval]\napprovers = { bob = { key = \"ed25519:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg\", user = \"bob\" } }\n\
         [[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\"]\n",
        "fuzz.toml",
    )
    .unwrap_or_else(|_| Policy::builtin_default())
});

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = decode_unverified(token);
    let expected = Expected {
        op: "db.migrate",
        target: "orders",
        env: "production",
        tier: Tier::Production,
        fingerprint: None,
    };
    let requester = Actor {
        user: "ana".into(),
        kind: ActorKind::Human,
        account: Some("ana".into()),
    };
    let here = Here {
        requester: &requester,
        ledger: "file://host/var/log/prodguard/audit.jsonl",
        now: Timestamp::from_unix_micros(1_800_000_000_000_000),
    };
    assert!(verify(POLICY.approval(), token, &expected, &here).is_err());
});
