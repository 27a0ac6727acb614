#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The guard session with the host's evidence: each unmet requirement
//! refuses with its code, and what satisfies it lets the operation proceed.

use prodguard_core::approval::{self, Claims};
use prodguard_core::audit::hex;
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

const KEY: [u8; 32] = [7; 32];

fn token(key: &[u8; 32], approver: &str) -> String {
    let now = Timestamp::parse_rfc3339(NOW).unwrap();
    approval::issue(
        key,
        &Claims {
            v: 1,
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
        },
    )
}

#[test]
fn an_approval_token_confirms_in_the_session_and_verifies_on_its_own() {
    let mut instance = instance();
    let mut approved = evidence();
    approved.approval = Some(ApprovalEvidence {
        token: token(&KEY, "bob"),
        key: hex(&KEY),
    });
    let session = attempt(&mut instance, None, approved);
    assert_eq!(session.step, Step::Proceed, "{session:?}");
    let record = serde_json::to_value(session.record.unwrap()).unwrap();
    assert_eq!(record["confirm"]["method"], "approval");
    assert_eq!(record["confirm"]["approver"], "bob");
    assert_eq!(record["confirm"]["token_id"], "nonce-1");

    let request = |token: String, key: &[u8; 32]| ApprovalRequest {
        token,
        key: hex(key),
        operation: Operation::new("db.migrate").target("orders"),
        environment: "production".into(),
        tier: Tier::Production,
        requester: "alice".into(),
        four_eyes: true,
        now: NOW.into(),
    };
    let claims = instance
        .verify_approval(&request(token(&KEY, "bob"), &KEY))
        .unwrap();
    assert_eq!(claims.nonce, "nonce-1");
    assert_eq!(claims.approver, "bob");
    assert_eq!(
        (claims.op.as_str(), claims.target.as_str()),
        ("db.migrate", "orders")
    );
    assert_eq!(claims.tier, Tier::Production);

    // Another key: refused in the session (121) and by verify_approval (121).
    let mut forged = evidence();
    forged.approval = Some(ApprovalEvidence {
        token: token(&[8; 32], "bob"),
        key: hex(&KEY),
    });
    let session = attempt(&mut instance, None, forged);
    assert_eq!(
        (session.step, session.exit_code),
        (Step::Deny, 121),
        "{session:?}"
    );
    assert!(session.denial.unwrap().missing.contains("forged"));
    match instance.verify_approval(&request(token(&[8; 32], "bob"), &KEY)) {
        Err(Error::Status { code: 121, message }) => {
            assert!(message.contains("forged"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // Self-approval under four-eyes, and another target: 121 naming the binding.
    match instance.verify_approval(&request(token(&KEY, "alice"), &KEY)) {
        Err(Error::Status { code: 121, message }) => {
            assert!(message.contains("four_eyes"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let mut elsewhere = request(token(&KEY, "bob"), &KEY);
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
