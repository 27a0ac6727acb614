#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The guard session with the host's evidence: each unmet requirement
//! refuses with its code, and what satisfies it lets the operation proceed.

use prodguard_core::approval::{self, Claims};
use prodguard_core::{Tier as CoreTier, Timestamp};
use prodguard_wasmtime::{
    Actor, ActorKind, ApprovalEvidence, ApprovalRequest, Backup, Error, EvaluateRequest, Evidence,
    Facts, Operation, ProdguardInstance, SessionVerdict, Stamp, Step, Tier,
};

use crate::common::instance;

const NOW: &str = "2026-11-27T10:00:00Z";
const ATTEMPT: &str = "attempt-7";

const BACKUP_POLICY: &str = "[[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\n\
    require = [\"confirm\", \"backup\", \"audit\"]\nbackup = { provider = \"program\" }\n";

fn evidence() -> Evidence {
    Evidence::new(
        Actor {
            user: "alice".into(),
            kind: ActorKind::Human,
            account: None,
        },
        ATTEMPT,
    )
}

fn production() -> Facts {
    let mut facts = Facts::default();
    facts.env.insert("APP_ENV".into(), "production".into());
    facts
}

fn attempt(
    instance: &mut ProdguardInstance,
    policy: Option<&str>,
    evidence: Evidence,
) -> SessionVerdict {
    let mut request = EvaluateRequest::new("db.migrate")
        .target("orders")
        .facts(production())
        .evidence(evidence, NOW);
    request.policy = policy.map(str::to_owned);
    let evaluation = instance.evaluate(&request).unwrap();
    evaluation.session.expect("evidence gives a session")
}

#[test]
fn without_a_typed_answer_production_denies_121_with_the_challenge() {
    let mut instance = instance();
    let session = attempt(&mut instance, None, evidence());
    assert_eq!(session.step, Step::Deny);
    assert!(!session.proceeds());
    assert_eq!(session.exit_code, 121);
    let denial = session.denial.as_ref().unwrap();
    assert_eq!(denial.exit_code, 121);
    assert!(!denial.next_step.is_empty());
    let challenge = session.challenge.as_ref().unwrap();
    assert_eq!(challenge.expected, "orders");
    assert_eq!(challenge.environment, "production");
    assert_eq!(challenge.tier, Tier::Production);
    assert!(!challenge.why.is_empty());
    assert_eq!(
        session.record.as_ref().unwrap().kind,
        prodguard_core::audit::EventKind::Refusal
    );

    let mut wrong = evidence();
    wrong.typed = Some("order".into());
    let session = attempt(&mut instance, None, wrong);
    assert_eq!((session.step, session.exit_code), (Step::Deny, 121));
}

#[test]
fn the_typed_target_proceeds_with_an_intent_record() {
    let mut instance = instance();
    let mut typed = evidence();
    typed.typed = Some("orders".into());
    let session = attempt(&mut instance, None, typed);
    assert_eq!(session.step, Step::Proceed, "{session:?}");
    assert_eq!(session.exit_code, 0);
    assert!(session.denial.is_none());
    assert_eq!(session.challenge.as_ref().unwrap().expected, "orders");
    let record = serde_json::to_value(session.record.unwrap()).unwrap();
    assert_eq!(record["kind"], "intent");
    assert_eq!(record["attempt_id"], ATTEMPT);
    assert_eq!(record["actor"]["user"], "alice");
    assert_eq!(record["op"]["target"], "orders");
    assert_eq!(record["confirm"]["method"], "typed");
}

#[test]
fn each_unmet_requirement_refuses_with_its_code() {
    let mut instance = instance();
    let typed = || {
        let mut e = evidence();
        e.typed = Some("orders".into());
        e
    };

    // Backup required, none given → 122; a failed backup → 122 naming why.
    let session = attempt(&mut instance, Some(BACKUP_POLICY), typed());
    assert_eq!(
        (session.step, session.exit_code),
        (Step::Deny, 122),
        "{session:?}"
    );
    let mut failed = typed();
    failed.backup_error = Some("disk full".into());
    let session = attempt(&mut instance, Some(BACKUP_POLICY), failed);
    assert_eq!(session.exit_code, 122);
    assert!(session.denial.unwrap().missing.contains("disk full"));
    // With the backup the host made → proceed, and the intent carries it.
    let mut backed_up = typed();
    backed_up.backup = Some(Backup {
        location: "/backups/orders.bak".into(),
        sha256: "ab".repeat(32),
        bytes: 4096,
        created: Timestamp::parse_rfc3339("2026-11-27T09:59:00Z").unwrap(),
        verified: true,
        verification: None,
    });
    let session = attempt(&mut instance, Some(BACKUP_POLICY), backed_up);
    assert_eq!(session.step, Step::Proceed, "{session:?}");
    assert_eq!(
        session.record.unwrap().backup.unwrap().location,
        "/backups/orders.bak"
    );

    // The audit log cannot take records → 123.
    let mut no_audit = typed();
    no_audit.audit_error = Some("read-only file system".into());
    let session = attempt(&mut instance, None, no_audit);
    assert_eq!(
        (session.step, session.exit_code),
        (Step::Deny, 123),
        "{session:?}"
    );

    // The target is stamped for another environment → 124.
    let mut stamped = typed();
    stamped.stamp = Some(Stamp {
        environment: "staging".into(),
        tier: Tier::Staging,
        stamped_at: None,
        stamped_by: None,
    });
    let session = attempt(&mut instance, None, stamped);
    assert_eq!(
        (session.step, session.exit_code),
        (Step::Deny, 124),
        "{session:?}"
    );
    // … and one stamped for this environment proceeds.
    let mut same = typed();
    same.stamp = Some(Stamp {
        environment: "production".into(),
        tier: Tier::Production,
        stamped_at: Some("2026-01-01T00:00:00Z".into()),
        stamped_by: Some("ops".into()),
    });
    assert_eq!(attempt(&mut instance, None, same).step, Step::Proceed);
}

const LEDGER: &str = "file://host-1/var/log/prodguard/audit.jsonl";

/// The approver key with secret `[seed; 32]` in `name`'s name.
fn key(name: &str, seed: u8) -> approval::ApproverKey {
    approval::ApproverKey::from_secret(name, [seed; 32]).unwrap()
}

/// Confirmation in production by approval; bob (seed 7, OS account `bob`)
/// and alice (seed 9, OS account `alice`) may approve; four eyes.
fn approval_policy() -> String {
    format!(
        "[approval]\nfour_eyes = true\napprovers = {{ bob = {{ key = \"{}\", user = \"bob\" }}, \
         alice = {{ key = \"{}\", user = \"alice\" }} }}\n\
         [[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\"]\n",
        key("bob", 7).public_key_text(),
        key("alice", 9).public_key_text()
    )
}

fn token(seed: u8, approver: &str) -> String {
    let now = Timestamp::parse_rfc3339(NOW).unwrap();
    approval::issue(
        &key(approver, seed),
        &Claims {
            v: 2,
            op: "db.migrate".into(),
            target: "orders".into(),
            env: "production".into(),
            tier: CoreTier::Production,
            fingerprint: None,
            approver: approver.into(),
            approver_kind: None,
            iat: now.plus_seconds(-60),
            exp: now.plus_seconds(600),
            nonce: "nonce-1".into(),
            ledger: LEDGER.into(),
            max_rows: None,
        },
    )
}

/// Alice's evidence, with her OS account.
fn alice() -> Evidence {
    let mut evidence = evidence();
    evidence.actor.account = Some("alice".into());
    evidence
}

fn offered(token: String, ledger: Option<&str>) -> Option<ApprovalEvidence> {
    Some(ApprovalEvidence {
        token,
        ledger: ledger.map(str::to_owned),
    })
}

#[test]
fn an_approval_token_confirms_in_the_session_and_verifies_on_its_own() {
    let mut instance = instance();
    let policy = approval_policy();
    let mut approved = alice();
    approved.approval = offered(token(7, "bob"), Some(LEDGER));
    let session = attempt(&mut instance, Some(&policy), approved);
    assert_eq!(session.step, Step::Proceed, "{session:?}");
    let record = serde_json::to_value(session.record.unwrap()).unwrap();
    assert_eq!(record["confirm"]["method"], "approval");
    assert_eq!(record["confirm"]["approver"], "bob");
    assert_eq!(record["confirm"]["token_id"], "nonce-1");

    let request = |token: String| ApprovalRequest {
        token,
        policy: Some(approval_policy()),
        system_policy: None,
        ledger: Some(LEDGER.into()),
        operation: Operation::new("db.migrate").target("orders"),
        environment: "production".into(),
        tier: Tier::Production,
        requester: Actor {
            user: "alice".into(),
            kind: ActorKind::Human,
            account: Some("alice".into()),
        },
        now: NOW.into(),
    };
    let claims = instance.verify_approval(&request(token(7, "bob"))).unwrap();
    assert_eq!(claims.nonce, "nonce-1");
    assert_eq!(claims.approver, "bob");
    assert_eq!(claims.ledger, LEDGER);
    assert_eq!(
        (claims.op.as_str(), claims.target.as_str()),
        ("db.migrate", "orders")
    );
    assert_eq!(claims.tier, Tier::Production);

    // Every refusal is 121 naming what failed, in the session and in
    // verify_approval alike.
    let refusals: [(Option<ApprovalEvidence>, &str); 5] = [
        // Signed in bob's name with another key.
        (offered(token(8, "bob"), Some(LEDGER)), "forged"),
        // Signed by a key the policy does not list.
        (offered(token(8, "eve"), Some(LEDGER)), "`eve`"),
        // The host spends in another ledger, or does not say which.
        (
            offered(token(7, "bob"), Some("file://host-1/tmp/fresh.jsonl")),
            "ledger",
        ),
        (offered(token(7, "bob"), None), "evidence.approval.ledger"),
        // Alice's own token, whatever her run calls itself.
        (offered(token(9, "alice"), Some(LEDGER)), "four_eyes"),
    ];
    for (approval, needle) in refusals {
        let mut refused = alice();
        refused.actor.user = "someone-else".into();
        refused.approval = approval.clone();
        let session = attempt(&mut instance, Some(&policy), refused);
        assert_eq!(
            (session.step, session.exit_code),
            (Step::Deny, 121),
            "{needle}: {session:?}"
        );
        let missing = session.denial.unwrap().missing;
        assert!(missing.contains(needle), "{needle}: {missing}");
        let offered = approval.unwrap();
        let mut alone = request(offered.token);
        alone.ledger = offered.ledger;
        match instance.verify_approval(&alone) {
            Err(Error::Status { code: 121, message }) => {
                assert!(
                    message.contains(needle.trim_start_matches("evidence.approval.")),
                    "{needle}: {message}"
                )
            }
            other => panic!("{needle}: {other:?}"),
        }
    }
    let mut elsewhere = request(token(7, "bob"));
    elsewhere.operation = Operation::new("db.migrate").target("users");
    match instance.verify_approval(&elsewhere) {
        Err(Error::Status { code: 121, message }) => {
            assert!(message.contains("users"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_fleet_policy_proceeds_only_when_the_host_provides_the_fleet() {
    let fleet = "[fleet]\nlock = \"postgresql://prodguard@db.internal/fleet\"\n\n\
                 [[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\n";
    let mut instance = instance();
    let mut typed = evidence();
    typed.typed = Some("orders".into());
    let session = attempt(&mut instance, Some(fleet), typed.clone());
    assert_eq!((session.step, session.exit_code), (Step::Deny, 125));
    let denial = session.denial.as_ref().unwrap();
    assert!(
        denial.missing.contains("[fleet] lock"),
        "{}",
        denial.missing
    );
    assert!(
        session.record.is_none(),
        "nothing to append: no attempt was made"
    );
    typed.fleet = true;
    let session = attempt(&mut instance, Some(fleet), typed);
    assert_eq!(session.step, Step::Proceed, "{session:?}");
}

#[test]
fn an_agents_typed_answer_does_not_confirm_and_it_cannot_break_glass() {
    let mut instance = instance();
    let policy = "[approval]\nbreak_glass_users = [\"alice\"]\n[[rule]]\noperations = [\"db.*\"]\n\
                  tiers = [\"production\"]\nrequire = [\"confirm\"]\nbreak_glass = true\n";
    let agent = || {
        let mut e = evidence();
        e.actor.kind = ActorKind::Agent;
        e.actor.account = Some("alice".into());
        e
    };
    let mut typed = agent();
    typed.typed = Some("orders".into());
    let session = attempt(&mut instance, Some(policy), typed);
    assert_eq!(session.exit_code, 121, "{session:?}");
    let record = serde_json::to_value(session.record.as_ref().unwrap()).unwrap();
    assert_eq!(record["kind"], "refusal");
    assert!(record["confirm"].is_null(), "{record}");
    let missing = &session.denial.as_ref().unwrap().missing;
    assert!(
        missing.contains("AI agent cannot confirm by typing")
            && missing.contains("prodguard approve"),
        "{missing}"
    );

    let reason = "INC-7: orders locked, restoring service";
    let mut broke = agent();
    broke.break_glass = Some(reason.into());
    let session = attempt(&mut instance, Some(policy), broke.clone());
    assert_eq!(session.exit_code, 121, "{session:?}");
    // The same account as a person may; the intent names it.
    broke.actor.kind = ActorKind::Human;
    let session = attempt(&mut instance, Some(policy), broke);
    assert_eq!(session.step, Step::Proceed, "{session:?}");
    let record = serde_json::to_value(session.record.as_ref().unwrap()).unwrap();
    assert_eq!(record["confirm"]["approver"], "alice");
    assert!(
        record["message"].as_str().unwrap().contains(reason),
        "{record}"
    );
}
