//! Single-use approvals across hosts against a real PostgreSQL server: eight
//! processes race to use one approval token, exactly one wins.
//!
//! Needs `eval $(scripts/pg-cluster start)` first (PRODGUARD_TEST_PG).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use pg_common::*;
use prodguard::audit::{AuditSink, FileSink, SpendError};
use prodguard::pg::{LedgerSink, PgAuditSink, PgLedger, PgServer, verify};
use prodguard::{Guard, Policy};
use prodguard_core::audit::{Actor, AuditEvent, ConfirmEvidence, EventKind};
use prodguard_core::policy::ActorKind;
use prodguard_core::{Facts, Timestamp};

const TOKEN: &str = "PRODGUARD_PGTEST_TOKEN";
const POLICY: &str = "PRODGUARD_PGTEST_POLICY";

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-pg-{name}-"))
        .tempdir()
        .unwrap()
}

/// An intent record that uses approval `token_id`.
fn intent(token_id: &str) -> AuditEvent {
    let mut event = AuditEvent::new(EventKind::Intent);
    event.confirm = Some(ConfirmEvidence {
        method: "approval".into(),
        approver: Some("bob".into()),
        token_id: Some(token_id.into()),
        exp: None,
        max_rows: None,
    });
    event
}

#[test]
fn child() {
    let Some(role) = child_role() else {
        return;
    };
    let url = std::env::var(URL).unwrap();
    let token = std::env::var(TOKEN).unwrap();
    match role.as_str() {
        // Spends the token through the sink, as a guard's intent does.
        "spend" => {
            let sink = PgAuditSink::new(&url).unwrap();
            sink.check().unwrap();
            wait_for_start();
            match sink.append_spending(&intent(&token), &token, Timestamp(0)) {
                Ok(receipt) => println!("RESULT ok {}", receipt.seq),
                Err(SpendError::Spent { seq, file }) => {
                    println!("RESULT spent {seq} {}", file.display())
                }
                Err(e) => println!("RESULT error {e}"),
            }
        }
        // A whole guarded operation confirmed by the token; the operation
        // inserts a row, so the rows count the runs.
        "guard" => {
            let policy_path = std::env::var(POLICY).unwrap();
            let policy = Policy::parse_toml(
                &std::fs::read_to_string(&policy_path).unwrap(),
                &policy_path,
            )
            .unwrap();
            let mut facts = Facts::default();
            facts.env.insert("APP_ENV".into(), "production".into());
            // The policy's [audit] sink is the trail (and spends the token).
            assert_eq!(policy.audit().sink.as_deref(), Some(url.as_str()));
            let guard = Guard::builder()
                .policy(policy)
                .facts(facts)
                .actor(Actor {
                    user: "ana".into(),
                    kind: ActorKind::Ci,
                    account: None,
                })
                .approval(token)
                .build()
                .unwrap();
            let mut runs = connect(&url);
            wait_for_start();
            let result = guard
                .operation("db.migrate")
                .target("orders")
                .run_infallible(|| {
                    runs.execute(
                        "INSERT INTO ran (pid, at) VALUES ($1, clock_timestamp())",
                        &[&(std::process::id() as i32)],
                    )
                    .unwrap();
                });
            match result {
                Ok(()) => println!("RESULT ran"),
                Err(e) => println!("RESULT refused {} {e}", e.exit_code()),
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn eight_processes_racing_to_spend_one_token_exactly_one_succeeds() {
    let url = fresh_db("approval_race");
    let token = format!("nonce-{}", now_micros());
    let start_at = now_micros() + 2_000_000;
    let children: Vec<_> = (0..8)
        .map(|_| {
            spawn_child(
                "spend",
                &url,
                &[(TOKEN, token.clone()), (START_AT, start_at.to_string())],
            )
        })
        .collect();
    let outcomes: Vec<String> = children.into_iter().flat_map(results).collect();
    assert_eq!(outcomes.len(), 8, "{outcomes:?}");
    let winners: Vec<&String> = outcomes.iter().filter(|o| o.starts_with("ok ")).collect();
    assert_eq!(winners.len(), 1, "exactly one spends it: {outcomes:?}");
    let winning_seq = winners[0].split(' ').nth(1).unwrap();
    for loser in outcomes.iter().filter(|o| !o.starts_with("ok ")) {
        // Refused as spent, naming the record that spent it and the server.
        assert!(
            loser.starts_with(&format!("spent {winning_seq} postgresql://")),
            "{loser}"
        );
        assert!(
            loser.contains("127.0.0.1") || loser.contains('/'),
            "{loser}"
        );
    }
    let mut db = connect(&url);
    let spent: i64 = db
        .query_one(
            "SELECT count(*) FROM prodguard_spent WHERE token_id = $1",
            &[&token],
        )
        .unwrap()
        .get(0);
    assert_eq!(spent, 1);
    let records: i64 = db
        .query_one("SELECT count(*) FROM prodguard_audit", &[])
        .unwrap()
        .get(0);
    assert_eq!(records, 1, "the refused spends appended nothing");
    assert!(
        verify(&PgServer::parse(&url).unwrap(), None)
            .unwrap()
            .intact()
    );
}

#[test]
fn one_approval_token_eight_guarded_processes_exactly_one_operation_runs() {
    let url = fresh_db("approval_guard_race");
    connect(&url)
        .batch_execute("CREATE TABLE ran (pid integer, at timestamptz)")
        .unwrap();
    let dir = temp_dir("approval-guard-race");
    let (approvers, key_file) = approver_bob(dir.path());
    let policy_file = dir.path().join("prodguard.toml");
    std::fs::write(
        &policy_file,
        format!(
            "[audit]\nsink = {url:?}\n\n[approval]\n{approvers}\n[[rule]]\n\
             operations = [\"db.*\"]\ntiers = [\"production\", \"unknown\"]\n\
             require = [\"confirm\", \"audit\"]\nconfirm = {{ mode = \"approval\" }}\n"
        ),
    )
    .unwrap();
    // Spent in the trail's own table: the sink's URL is the ledger.
    let token = issue_token(&key_file, "db.migrate", "orders", &url);

    let start_at = now_micros() + 2_500_000;
    let children: Vec<_> = (0..8)
        .map(|_| {
            spawn_child(
                "guard",
                &url,
                &[
                    (TOKEN, token.clone()),
                    (POLICY, policy_file.display().to_string()),
                    (START_AT, start_at.to_string()),
                ],
            )
        })
        .collect();
    let outcomes: Vec<String> = children.into_iter().flat_map(results).collect();
    assert_eq!(outcomes.len(), 8, "{outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|o| *o == "ran").count(),
        1,
        "exactly one run: {outcomes:?}"
    );
    for refused in outcomes.iter().filter(|o| *o != "ran") {
        assert!(refused.starts_with("refused 121 "), "{refused}");
        assert!(refused.contains("spent"), "{refused}");
    }
    let mut db = connect(&url);
    let runs: i64 = db
        .query_one("SELECT count(*) FROM ran", &[])
        .unwrap()
        .get(0);
    assert_eq!(runs, 1, "the operation ran exactly once");
    // The trail: one intent and one outcome, seven refusals, all chained.
    let kinds: Vec<String> = db
        .query("SELECT record FROM prodguard_audit ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.get::<_, String>(0)).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "intent").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "outcome").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "refusal").count(),
        7,
        "{kinds:?}"
    );
    assert!(
        verify(&PgServer::parse(&url).unwrap(), None)
            .unwrap()
            .intact()
    );
}

#[test]
fn a_ledger_refuses_a_replay_on_any_host_for_an_audit_log_kept_elsewhere() {
    let url = fresh_db("approval_ledger");
    let dir = temp_dir("approval-ledger");
    // Two hosts, each with its own file log, sharing the ledger.
    let host_a = LedgerSink::new(
        PgLedger::new(&url).unwrap(),
        FileSink::new(dir.path().join("a.jsonl")),
    );
    let host_b = LedgerSink::new(
        PgLedger::new(&url).unwrap(),
        FileSink::new(dir.path().join("b.jsonl")),
    );
    host_a.check().unwrap();
    let issued = prodguard::facts::now();
    host_a
        .append_spending(&intent("n-1"), "n-1", issued)
        .unwrap();
    let err = host_b
        .append_spending(&intent("n-1"), "n-1", issued)
        .unwrap_err();
    assert!(matches!(err, SpendError::Spent { .. }), "{err}");
    assert!(err.to_string().contains("spent by host"), "{err}");
    assert!(
        !dir.path().join("b.jsonl").exists(),
        "the replay appended nothing"
    );
    assert!(host_b.ledger().is_spent("n-1").unwrap());
    assert!(!host_b.ledger().is_spent("n-2").unwrap());
    host_b
        .append_spending(&intent("n-2"), "n-2", issued)
        .unwrap();
    // A token spent by the PostgreSQL sink is spent for the ledger too.
    let sink = PgAuditSink::new(&url).unwrap();
    sink.append_spending(&intent("n-3"), "n-3", issued).unwrap();
    assert!(matches!(
        host_a.append_spending(&intent("n-3"), "n-3", issued),
        Err(SpendError::Spent { seq: 1, .. })
    ));
    assert!(matches!(
        sink.append_spending(&intent("n-1"), "n-1", issued),
        Err(SpendError::Spent { .. })
    ));
}
