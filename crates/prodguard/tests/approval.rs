//! Approval tokens through the Rust API: the runtime verifies with the
//! policy's approvers, in the ledger its audit log is, and four eyes
//! compares the real uid's account whatever actor the program states.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prodguard::{Actor, ActorKind, Facts, Guard, GuardError, Policy};
use prodguard_core::Tier;
use prodguard_core::approval::{ApproverKey, Claims, issue};

fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-approval-{name}-"))
        .tempdir()
        .unwrap()
}

/// Confirmation by approval in production, four eyes; bob (another OS
/// account) and `me` (this process's account) may approve.
fn policy(bob: &ApproverKey, me: &ApproverKey) -> Policy {
    Policy::parse_toml(
        &format!(
            "[approval]\nfour_eyes = true\napprovers = {{ bob = {{ key = \"{}\", user = \"bob-{}\" }}, \
             me = {{ key = \"{}\", user = \"{}\" }} }}\n[[rule]]\noperations = [\"db.*\"]\n\
             tiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\nconfirm = {{ mode = \"approval\" }}\n",
            bob.public_key_text(),
            prodguard::facts::real_account(),
            me.public_key_text(),
            prodguard::facts::real_account(),
        ),
        "policy.toml",
    )
    .unwrap()
}

fn token(key: &ApproverKey, ledger: &str) -> String {
    let now = prodguard::facts::now();
    issue(
        key,
        &Claims {
            v: 2,
            op: "db.migrate".into(),
            target: "orders".into(),
            env: "production".into(),
            tier: Tier::Production,
            fingerprint: None,
            approver: key.name().into(),
            approver_kind: None,
            iat: now,
            exp: now.plus_seconds(300),
            nonce: prodguard::facts::random_id(),
            ledger: ledger.into(),
            max_rows: None,
        },
    )
}

#[test]
fn four_eyes_is_the_real_uids_account_and_tokens_stay_in_their_ledger() {
    let dir = temp_dir("runtime");
    let bob = ApproverKey::from_secret("bob", [1; 32]).unwrap();
    let me = ApproverKey::from_secret("me", [2; 32]).unwrap();
    let mut facts = Facts::default();
    facts.env.insert("APP_ENV".into(), "production".into());
    // The program says it is someone else, with another account.
    let claimed = Actor {
        user: "someone-else".into(),
        kind: ActorKind::Service,
        account: Some("someone-else".into()),
    };
    let guard = |log: &str, token: String| {
        Guard::builder()
            .policy(policy(&bob, &me))
            .facts(facts.clone())
            .actor(claimed.clone())
            .audit_log(dir.path().join(log))
            .approval(token)
            .build()
            .unwrap()
    };
    let ledger = guard("audit.jsonl", String::new()).ledger_id();
    assert!(
        ledger.starts_with("file://") && ledger.ends_with("/audit.jsonl"),
        "{ledger}"
    );
    let run = |guard: &Guard| {
        guard
            .operation("db.migrate")
            .target("orders")
            .run_infallible(|| ())
    };

    // My own token: refused, whatever account the program states.
    let err = run(&guard("audit.jsonl", token(&me, &ledger))).unwrap_err();
    assert!(matches!(err, GuardError::NotConfirmed(_)), "{err}");
    assert!(err.to_string().contains("four_eyes"), "{err}");
    // bob's token for this ledger runs once; in another log, it is refused.
    let bobs = token(&bob, &ledger);
    let err = run(&guard("other.jsonl", bobs.clone())).unwrap_err();
    assert!(err.to_string().contains("ledger"), "{err}");
    run(&guard("audit.jsonl", bobs.clone())).unwrap();
    let err = run(&guard("audit.jsonl", bobs)).unwrap_err();
    assert!(err.to_string().contains("spent"), "{err}");
}

#[test]
fn rules_asking_for_a_token_and_for_typing_need_both() {
    use prodguard::confirm::{Challenge, ConfirmEvidence, ConfirmationAnswer};

    let dir = temp_dir("both");
    let bob = ApproverKey::from_secret("bob", [1; 32]).unwrap();
    let me = ApproverKey::from_secret("me", [2; 32]).unwrap();
    // The approval rule above, and another asking for typing: neither
    // lowers the other.
    let text = format!(
        "{}[[rule]]\nname = \"typed\"\noperations = [\"db.*\"]\ntiers = [\"production\"]\n\
         require = [\"confirm\"]\nconfirm = {{ mode = \"typed\" }}\n",
        policy(&bob, &me).to_toml_string()
    );
    let policy = Policy::parse_toml(&text, "policy.toml").unwrap();
    let mut facts = Facts::default();
    facts.env.insert("APP_ENV".into(), "production".into());
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let guard = |token: Option<String>, types: bool| {
        let asked = asked.clone();
        let mut builder = Guard::builder()
            .policy(policy.clone())
            .facts(facts.clone())
            .audit_log(dir.path().join("audit.jsonl"))
            .confirmer(move |_: &Challenge| {
                asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if types {
                    ConfirmationAnswer::Confirmed(ConfirmEvidence {
                        method: "typed".into(),
                        approver: None,
                        token_id: None,
                        exp: None,
                        max_rows: None,
                    })
                } else {
                    ConfirmationAnswer::Declined("typed `nope`".into())
                }
            });
        if let Some(token) = token {
            builder = builder.approval(token);
        }
        builder.build().unwrap()
    };
    let ledger = guard(None, true).ledger_id();
    let run = |guard: &Guard| {
        guard
            .operation("db.migrate")
            .target("orders")
            .run_infallible(|| ())
    };
    // Typing alone is not enough, and nobody is asked.
    let err = run(&guard(None, true)).unwrap_err();
    assert!(matches!(err, GuardError::NotConfirmed(_)), "{err}");
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0);
    // A token with the person declining is not enough either.
    let err = run(&guard(Some(token(&bob, &ledger)), false)).unwrap_err();
    assert!(matches!(err, GuardError::NotConfirmed(_)), "{err}");
    // Both: it runs, recorded as both, and the token is spent.
    let both = token(&bob, &ledger);
    run(&guard(Some(both.clone()), true)).unwrap();
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let intent: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["kind"] == "intent")
        .unwrap();
    assert_eq!(intent["confirm"]["method"], "approval+typed");
    assert_eq!(intent["confirm"]["approver"], "bob");
    let err = run(&guard(Some(both), true)).unwrap_err();
    assert!(err.to_string().contains("spent"), "{err}");
}
