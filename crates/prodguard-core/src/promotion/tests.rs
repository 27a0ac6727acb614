//! Each rule of promotion evidence on trails made of real records (each
//! encoded by the one encoder and read back as [`Record`]s).

use super::*;
use crate::Tier;
use crate::audit::{
    AuditEvent, BatchItem, Envelope, GENESIS_PREV, OutcomeRecord, batch_fingerprint, encode_record,
};

const DAY: i64 = 86_400;

/// A day as a time: day 0 is 2026-01-01T00:00:00Z.
fn day(n: f64) -> Timestamp {
    let start = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    start.plus_seconds((n * DAY as f64) as i64)
}

/// A chain being written, as a writer would.
struct Trail {
    log_id: String,
    prev: String,
    records: Vec<Record>,
}

/// An operation record.
fn op(kind: &str, fingerprint: Option<&str>, env: &str, tier: Tier) -> OperationRecord {
    OperationRecord {
        kind: kind.into(),
        target: Some("orders.db".into()),
        env: env.into(),
        tier,
        decided_by: "env:APP_ENV".into(),
        fingerprint: fingerprint.map(str::to_owned),
        batch: Vec::new(),
    }
}

fn staging(fingerprint: &str) -> OperationRecord {
    op("db.migrate", Some(fingerprint), "staging", Tier::Staging)
}

fn production(fingerprint: &str) -> OperationRecord {
    op(
        "db.migrate",
        Some(fingerprint),
        "production",
        Tier::Production,
    )
}

impl Trail {
    fn new(log_id: &str) -> Self {
        Trail {
            log_id: log_id.into(),
            prev: GENESIS_PREV.into(),
            records: Vec::new(),
        }
    }

    fn append(&mut self, event: &AuditEvent, at: Timestamp) -> u64 {
        let seq = self.records.len() as u64 + 1;
        let envelope = Envelope {
            log_id: self.log_id.clone(),
            seq,
            ts: at,
            host: "h".into(),
            pid: 1,
        };
        let (line, hash) = encode_record(&envelope, event, &self.prev).unwrap();
        self.records.push(serde_json::from_slice(&line).unwrap());
        self.prev = hash;
        seq
    }

    fn intent(&mut self, id: &str, op: &OperationRecord, at: Timestamp) -> u64 {
        let mut event = AuditEvent::new(EventKind::Intent);
        event.attempt_id = Some(id.into());
        event.op = Some(op.clone());
        self.append(&event, at)
    }

    fn outcome_of(
        &mut self,
        id: &str,
        op: Option<&OperationRecord>,
        status: &str,
        at: Timestamp,
    ) -> u64 {
        let mut event = AuditEvent::new(EventKind::Outcome);
        event.attempt_id = Some(id.into());
        event.op = op.cloned();
        event.outcome = Some(OutcomeRecord {
            status: status.into(),
            duration_ms: 5,
            error: None,
            exit_code: Some(if status == "ok" { 0 } else { 1 }),
            rows: None,
            lock_lost: None,
        });
        self.append(&event, at)
    }

    fn outcome(&mut self, id: &str, status: &str, at: Timestamp) -> u64 {
        let op = self
            .records
            .iter()
            .find(|r| r.event.attempt_id.as_deref() == Some(id))
            .and_then(|r| r.event.op.clone());
        self.outcome_of(id, op.as_ref(), status, at)
    }

    /// An attempt that ran from `at` to `at` + 1 minute and ended `status`.
    fn run(&mut self, id: &str, op: &OperationRecord, status: &str, at: Timestamp) -> u64 {
        self.intent(id, op, at);
        self.outcome(id, status, at.plus_seconds(60))
    }

    fn attempts(&self) -> Vec<Attempt> {
        attempts(&self.records)
    }
}

fn query(fingerprint: &str, from: &str, now: Timestamp) -> PromotionQuery {
    PromotionQuery::new("db.migrate", fingerprint, from, 14 * DAY as u64, now)
}

#[test]
fn an_outcome_is_paired_with_its_intent_by_attempt_id() {
    // Two attempts overlap (two hosts of a fleet): the first to start
    // fails, the second succeeds; their outcomes come in the other order.
    let mut trail = Trail::new("st");
    trail.intent("a", &staging("fp-a"), day(1.0));
    trail.intent("b", &staging("fp-b"), day(1.0));
    let b_ok = trail.outcome("b", "ok", day(1.1));
    trail.outcome("a", "failed", day(1.2));
    let attempts = trail.attempts();
    assert_eq!(attempts.len(), 2);
    let (a, b) = (&attempts[0], &attempts[1]);
    assert_eq!((a.attempt_id.as_str(), a.succeeded()), ("a", false));
    assert_eq!((b.attempt_id.as_str(), b.succeeded()), ("b", true));
    assert_eq!(b.outcome.as_ref().unwrap().record.seq, b_ok);
    assert_eq!(b.intent.seq, 2);

    let evidence = find_evidence(&attempts, &query("fp-b", "staging", day(2.0))).unwrap();
    assert_eq!(evidence.attempt.attempt_id, "b");
    assert_eq!(evidence.cited().seq, b_ok);
    assert_eq!(evidence.cited().log_id, "st");
    assert_eq!(
        &evidence.cited().hash,
        trail.records[2].hash.as_ref().unwrap()
    );
    assert_eq!(
        evidence.attempt.intent.hash,
        trail.records[1].hash.clone().unwrap()
    );
    assert_eq!(evidence.matched, Matched::Operation);
    assert_eq!(evidence.age_seconds, day(2.0).seconds_since(day(1.1)));
    let failed = find_evidence(&attempts, &query("fp-a", "staging", day(2.0))).unwrap_err();
    assert!(
        failed
            .to_string()
            .contains("the last attempt there failed (exit 1) at 2026-01-02T04:48:00Z"),
        "{failed}"
    );
}

#[test]
fn only_an_ok_outcome_is_a_success() {
    for status in [
        "failed",
        "panicked",
        "abandoned",
        "rolled_back",
        "dry_run",
        "OK",
        "",
    ] {
        let mut trail = Trail::new("st");
        trail.run("a", &staging("fp"), status, day(1.0));
        let attempts = trail.attempts();
        assert!(!attempts[0].succeeded(), "{status}");
        let missing = find_evidence(&attempts, &query("fp", "staging", day(2.0))).unwrap_err();
        assert_eq!(missing.last_attempt.as_ref().unwrap().attempt_id, "a");
        assert!(missing.last_success.is_none());
    }
    let mut trail = Trail::new("st");
    trail.run("a", &staging("fp"), "ok", day(1.0));
    assert!(find_evidence(&trail.attempts(), &query("fp", "staging", day(2.0))).is_ok());
}

#[test]
fn an_intent_without_an_outcome_is_no_success() {
    let mut trail = Trail::new("st");
    trail.intent("a", &staging("fp"), day(1.0));
    let missing = find_evidence(&trail.attempts(), &query("fp", "staging", day(2.0))).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "run it in staging first: no successful `db.migrate` with fingerprint fp in staging within \
         14 days; the last attempt there has no outcome recorded (its intent is from \
         2026-01-02T00:00:00Z: still running, or it died unrecorded)"
    );
}

#[test]
fn a_success_older_than_within_does_not_count() {
    let mut trail = Trail::new("st");
    trail.run("a", &staging("fp"), "ok", day(1.0));
    let done = day(1.0).plus_seconds(60);
    let attempts = trail.attempts();
    // Exactly `within` old still counts; a second more does not.
    let edge = done.plus_seconds(14 * DAY);
    assert!(find_evidence(&attempts, &query("fp", "staging", edge)).is_ok());
    let missing =
        find_evidence(&attempts, &query("fp", "staging", edge.plus_seconds(1))).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "run it in staging first: no successful `db.migrate` with fingerprint fp in staging within \
         14 days; the last success there is 14 days old (2026-01-02T00:01:00Z)"
    );
    let later = find_evidence(&attempts, &query("fp", "staging", day(21.5))).unwrap_err();
    assert!(
        later
            .to_string()
            .ends_with("the last success there is 20 days old (2026-01-02T00:01:00Z)"),
        "{later}"
    );
    // A writer whose clock ran ahead counts within the skew allowed, and
    // not beyond it: it would count for longer than `within`.
    let ran = day(1.0).plus_seconds(60);
    assert!(find_evidence(&attempts, &query("fp", "staging", ran.plus_seconds(-60))).is_ok());
    let ahead = find_evidence(&attempts, &query("fp", "staging", day(0.5))).unwrap_err();
    assert!(
        ahead
            .to_string()
            .ends_with("the last success there is dated 2026-01-02T00:01:00Z, 43260 s ahead of this clock; check the clocks"),
        "{ahead}"
    );
}

#[test]
fn a_failure_after_an_old_success_is_named_with_it() {
    let mut trail = Trail::new("st");
    trail.run("a", &staging("fp"), "ok", day(1.0));
    trail.run("b", &staging("fp"), "abandoned", day(30.0));
    let missing = find_evidence(&trail.attempts(), &query("fp", "staging", day(31.0))).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "run it in staging first: no successful `db.migrate` with fingerprint fp in staging within \
         14 days; the last attempt there was abandoned (exit 1) at 2026-01-31T00:01:00Z; the last \
         success there is 29 days old (2026-01-02T00:01:00Z)"
    );
    // A failure before the (old) success is not "the last attempt".
    let mut trail = Trail::new("st");
    trail.run("b", &staging("fp"), "failed", day(0.0));
    trail.run("a", &staging("fp"), "ok", day(1.0));
    let missing = find_evidence(&trail.attempts(), &query("fp", "staging", day(31.0))).unwrap_err();
    assert!(missing.last_attempt.is_none());
    assert!(!missing.to_string().contains("last attempt"), "{missing}");
}

#[test]
fn the_newest_success_is_the_evidence() {
    let mut trail = Trail::new("st");
    trail.run("old", &staging("fp"), "ok", day(1.0));
    let newest = trail.run("new", &staging("fp"), "ok", day(3.0));
    trail.run("failed", &staging("fp"), "failed", day(4.0));
    trail.run("other", &staging("fp2"), "ok", day(5.0));
    let evidence = find_evidence(&trail.attempts(), &query("fp", "staging", day(6.0))).unwrap();
    assert_eq!(
        (evidence.attempt.attempt_id.as_str(), evidence.cited().seq),
        ("new", newest)
    );
}

#[test]
fn from_names_an_environment_or_a_tier() {
    let mut trail = Trail::new("st");
    let eu = op("db.migrate", Some("fp"), "staging-eu", Tier::Staging);
    trail.run("a", &eu, "ok", day(1.0));
    let attempts = trail.attempts();
    for from in ["staging", "staging-eu", " Staging-EU "] {
        let evidence = find_evidence(&attempts, &query("fp", from, day(2.0)));
        assert!(evidence.is_ok(), "{from}");
    }
    for from in ["stage", "staging-us", "production", ""] {
        let missing = find_evidence(&attempts, &query("fp", from, day(2.0))).unwrap_err();
        assert!(!missing.ran_there, "{from}");
        assert_eq!(missing.elsewhere.len(), 1, "{from}");
    }
    // A name recorded as a host gave it is compared case-folded too.
    let mut trail = Trail::new("st");
    let shouted = op("db.migrate", Some("fp"), "Staging-EU", Tier::Staging);
    trail.run("a", &shouted, "ok", day(1.0));
    assert!(find_evidence(&trail.attempts(), &query("fp", "staging-eu", day(2.0))).is_ok());
    // A production run is no staging evidence, whatever its fingerprint.
    let mut trail = Trail::new("fleet");
    trail.run("p", &production("fp"), "ok", day(1.0));
    let missing = find_evidence(&trail.attempts(), &query("fp", "staging", day(2.0))).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "run it in staging first: no successful `db.migrate` with fingerprint fp in staging within \
         14 days; with this fingerprint it succeeded only elsewhere: production at \
         2026-01-02T00:01:00Z; the trail holds no `db.migrate` in staging"
    );
}

#[test]
fn another_fingerprint_or_operation_is_no_evidence() {
    let mut trail = Trail::new("st");
    trail.run("a", &staging("1111"), "ok", day(1.0));
    trail.run("b", &staging("2222"), "failed", day(2.0));
    trail.run("c", &staging("1111"), "ok", day(3.0));
    trail.run(
        "d",
        &op("db.seed", Some("3333"), "staging", Tier::Staging),
        "ok",
        day(3.0),
    );
    let attempts = trail.attempts();
    let missing = find_evidence(&attempts, &query("3333", "staging", day(4.0))).unwrap_err();
    assert_eq!(missing.other_fingerprints, ["1111", "2222"]);
    assert_eq!(
        missing.to_string(),
        "run it in staging first: no successful `db.migrate` with fingerprint 3333 in staging within \
         14 days; staging ran other fingerprints of it (1111, 2222)"
    );
    // An empty fingerprint matches nothing, not even an empty one.
    let mut trail = Trail::new("st");
    trail.run("a", &staging(""), "ok", day(1.0));
    assert!(find_evidence(&trail.attempts(), &query("", "staging", day(2.0))).is_err());
}

#[test]
fn other_fingerprints_are_listed_newest_first_up_to_three() {
    let mut trail = Trail::new("st");
    for (i, fp) in ["f1", "f2", "f3", "f4", "f5"].iter().enumerate() {
        trail.run(fp, &staging(fp), "ok", day(i as f64));
    }
    let long = "ab".repeat(32);
    trail.run("long", &staging(&long), "ok", day(6.0));
    let missing = find_evidence(&trail.attempts(), &query("zz", "staging", day(7.0))).unwrap_err();
    assert!(
        missing
            .to_string()
            .ends_with("staging ran other fingerprints of it (abababababab…, f5, f4 and 3 more)"),
        "{missing}"
    );
}

#[test]
fn a_batch_vouches_for_each_item_and_for_itself() {
    let items = vec![
        BatchItem::new("1_users", "u1"),
        BatchItem::new("2_carts", "c2"),
    ];
    let whole = batch_fingerprint(&items);
    let mut batch = staging(&whole);
    batch.batch = items.clone();
    let mut trail = Trail::new("st");
    trail.run("a", &batch, "ok", day(1.0));
    let attempts = trail.attempts();
    let item = find_evidence(&attempts, &query("c2", "staging", day(2.0))).unwrap();
    assert_eq!(
        item.matched,
        Matched::BatchItem {
            name: "2_carts".into()
        }
    );
    let itself = find_evidence(&attempts, &query(&whole, "staging", day(2.0))).unwrap();
    assert_eq!(itself.matched, Matched::Operation);
    assert!(find_evidence(&attempts, &query("x3", "staging", day(2.0))).is_err());
    // A batch that failed vouches for none of its items.
    let mut trail = Trail::new("st");
    trail.run("a", &batch, "failed", day(1.0));
    assert!(find_evidence(&trail.attempts(), &query("u1", "staging", day(2.0))).is_err());
}

#[test]
fn records_that_disagree_are_no_success() {
    // A second outcome for one attempt.
    let mut trail = Trail::new("st");
    trail.run("a", &staging("fp"), "ok", day(1.0));
    trail.outcome("a", "failed", day(1.1));
    let attempts = trail.attempts();
    assert!(!attempts[0].succeeded());
    assert_eq!(
        attempts[0].conflict.as_deref(),
        Some("two outcomes have its id (seq 2 and seq 3)")
    );
    let missing = find_evidence(&attempts, &query("fp", "staging", day(2.0))).unwrap_err();
    assert!(
        missing.to_string().contains(
            "the last attempt there cannot count: two outcomes have its id (seq 2 and seq 3)"
        ),
        "{missing}"
    );
    // An outcome that names another operation than its intent.
    let mut trail = Trail::new("st");
    trail.intent("a", &staging("fp"), day(1.0));
    trail.outcome_of("a", Some(&staging("other")), "ok", day(1.1));
    assert!(!trail.attempts()[0].succeeded());
    // An outcome without an operation still pairs (the intent has it).
    let mut trail = Trail::new("st");
    trail.intent("a", &staging("fp"), day(1.0));
    trail.outcome_of("a", None, "ok", day(1.1));
    assert!(trail.attempts()[0].succeeded());
    // A second intent with the same id.
    let mut trail = Trail::new("st");
    trail.run("a", &staging("fp"), "ok", day(1.0));
    trail.intent("a", &staging("fp"), day(1.2));
    let attempts = trail.attempts();
    assert_eq!(attempts.len(), 1);
    assert!(!attempts[0].succeeded());
}

#[test]
fn an_outcome_without_its_intent_is_passed_over() {
    let mut trail = Trail::new("st");
    trail.outcome_of("gone", Some(&staging("fp")), "ok", day(1.0));
    let mut note = AuditEvent::new(EventKind::Note);
    note.message = Some("hi".into());
    trail.append(&note, day(1.0));
    // An outcome before its intent does not pair either.
    trail.outcome_of("late", Some(&staging("fp")), "ok", day(1.0));
    trail.intent("late", &staging("fp"), day(1.1));
    let mut collector = AttemptCollector::new();
    for record in &trail.records {
        collector.push(record);
    }
    assert_eq!(collector.passed_over(), 2);
    let attempts = collector.finish();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].outcome.is_none());
    assert!(find_evidence(&attempts, &query("fp", "staging", day(2.0))).is_err());
}

#[test]
fn record_text_in_messages_is_escaped() {
    let mut trail = Trail::new("st");
    let evil = op(
        "db.migrate",
        Some("fp\u{1b}[2J"),
        "prod\u{1b}[31m",
        Tier::Production,
    );
    trail.run("a", &evil, "ok", day(1.0));
    let missing = find_evidence(
        &trail.attempts(),
        &query("fp\u{1b}[2J", "staging\r", day(2.0)),
    )
    .unwrap_err();
    let text = missing.to_string();
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(text.contains("prod\\u{1b}[31m (tier production)"), "{text}");
    assert!(
        text.contains("fingerprint fp\\u{1b}[2J in staging\\r"),
        "{text}"
    );
}

#[test]
fn within_is_said_as_given() {
    for (seconds, shown) in [
        (14 * 86_400, "14 days"),
        (86_400, "1 day"),
        (36 * 3_600, "36 hours"),
        (90 * 60, "90 minutes"),
        (45, "45 seconds"),
        (86_400 + 61, "1d1m1s"),
    ] {
        let query = PromotionQuery::new("db.migrate", "fp", "staging", seconds, day(0.0));
        let text = find_evidence(&[], &query).unwrap_err().to_string();
        assert!(text.contains(&format!("within {shown};")), "{text}");
    }
}

#[test]
fn parity_lists_what_each_side_lacks_newest_first() {
    let mut st = Trail::new("st");
    st.run("s1", &staging("both"), "ok", day(1.0));
    st.run("s2", &staging("staging-only-old"), "ok", day(2.0));
    st.run("s3", &staging("staging-only-new"), "ok", day(3.0));
    st.run("s4", &staging("prod-only-a"), "failed", day(4.0));
    st.run("s5", &staging("prod-only-a"), "abandoned", day(5.0));
    st.run(
        "s6",
        &op("db.migrate", None, "staging", Tier::Staging),
        "ok",
        day(5.0),
    );
    let mut pr = Trail::new("pr");
    pr.run("p1", &production("both"), "ok", day(2.0));
    pr.run("p2", &production("prod-only-b"), "ok", day(6.0));
    pr.run("p3", &production("prod-only-a"), "ok", day(7.0));
    pr.run("p4", &production("prod-only-a"), "ok", day(8.0));
    pr.run("p5", &production("staging-only-old"), "failed", day(8.0));
    pr.run(
        "p6",
        &op("db.seed", Some("both"), "production", Tier::Production),
        "ok",
        day(9.0),
    );
    let report = parity(&st.attempts(), &pr.attempts());
    let keys = |entries: &[ParityEntry]| -> Vec<(String, String, String)> {
        entries
            .iter()
            .map(|e| {
                (
                    e.operation.clone(),
                    e.fingerprint.clone(),
                    e.last.attempt_id.clone(),
                )
            })
            .collect()
    };
    let owned = |rows: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
        rows.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    };
    assert_eq!(
        keys(&report.only_in_to),
        owned(&[
            ("db.seed", "both", "p6"),
            ("db.migrate", "prod-only-a", "p4"),
            ("db.migrate", "prod-only-b", "p2"),
        ])
    );
    assert_eq!(
        keys(&report.only_in_from),
        owned(&[
            ("db.migrate", "staging-only-new", "s3"),
            ("db.migrate", "staging-only-old", "s2"),
        ])
    );
    let a = &report.only_in_to[1];
    assert_eq!(a.successes, 2);
    assert_eq!(a.other_side.as_ref().unwrap().attempt_id, "s5");
    assert!(report.only_in_to[2].other_side.is_none());
    assert_eq!(
        report.only_in_from[1]
            .other_side
            .as_ref()
            .unwrap()
            .attempt_id,
        "p5"
    );
    assert_eq!(report.in_both, 1);
    assert_eq!(
        (report.unfingerprinted_from, report.unfingerprinted_to),
        (1, 0)
    );
    // Swapping the trails swaps the sides.
    let swapped = parity(&pr.attempts(), &st.attempts());
    assert_eq!(swapped.only_in_to, report.only_in_from);
    assert_eq!(swapped.only_in_from, report.only_in_to);
}

#[test]
fn parity_compares_a_batch_by_its_items() {
    // Staging ran three migrations as one batch; production ran the first
    // two in one batch and the third alone, and a fourth staging never saw.
    let item = |n: &str| BatchItem::new(format!("m{n}"), format!("fp{n}"));
    let batch_of = |items: Vec<BatchItem>, base: OperationRecord| {
        let mut op = base;
        op.fingerprint = Some(batch_fingerprint(&items));
        op.batch = items;
        op
    };
    let mut st = Trail::new("st");
    st.run(
        "s",
        &batch_of(vec![item("1"), item("2"), item("3")], staging("")),
        "ok",
        day(1.0),
    );
    let mut pr = Trail::new("pr");
    pr.run(
        "p1",
        &batch_of(vec![item("1"), item("2")], production("")),
        "ok",
        day(2.0),
    );
    pr.run("p2", &production("fp3"), "ok", day(3.0));
    pr.run(
        "p3",
        &batch_of(vec![item("4")], production("")),
        "ok",
        day(4.0),
    );
    let report = parity(&st.attempts(), &pr.attempts());
    assert!(report.only_in_from.is_empty(), "{report:?}");
    assert_eq!(report.in_both, 3);
    assert_eq!(report.only_in_to.len(), 1);
    let only = &report.only_in_to[0];
    assert_eq!(
        (only.fingerprint.as_str(), only.item.as_deref()),
        ("fp4", Some("m4"))
    );
}

#[test]
fn a_report_serialises_for_json() {
    let mut st = Trail::new("st");
    st.run("s", &staging("fp"), "ok", day(1.0));
    let report = parity(&st.attempts(), &[]);
    let value = serde_json::to_value(&report).unwrap();
    let entry = &value["only_in_from"][0];
    assert_eq!(entry["operation"], "db.migrate");
    assert_eq!(entry["fingerprint"], "fp");
    assert_eq!(entry["successes"], 1);
    assert_eq!(entry["last"]["op"]["env"], "staging");
    assert_eq!(entry["last"]["outcome"]["status"], "ok");
    assert_eq!(entry["last"]["outcome"]["record"]["seq"], 2);
    assert_eq!(entry["last"]["outcome"]["record"]["log_id"], "st");
    assert_eq!(entry["last"]["intent"]["seq"], 1);
    assert_eq!(entry["last"]["intent"]["at"], "2026-01-02T00:00:00.000000Z");
    assert_eq!(value["in_both"], 0);
    let back: ParityReport = serde_json::from_value(value).unwrap();
    assert_eq!(back, report);
}

/// The staged requirement as a session meets it: the driver hands over a
/// verified trail's attempts, and the core judges them.
mod staged {
    use super::*;
    use crate::audit::PromotionRecord;
    use crate::policy::Policy;
    use crate::session::{Operation, Step, TrailUnavailable, in_production};

    const POLICY: &str = "[promotion]\nfrom = \"staging\"\nstaging_log = \"/srv/staging/audit.jsonl\"\n\
        [[rule]]\nname = \"staged first\"\noperations = [\"db.migrate\"]\ntiers = [\"production\"]\n\
        require = [\"audit\", \"staged\"]\n";

    /// What the session ended with: its intent's promotion record, or the
    /// refusal's exit code and message.
    fn run(
        policy: &str,
        operation: Operation,
        trail: Result<&[Attempt], &str>,
    ) -> Result<PromotionRecord, (i32, String)> {
        run_under(
            Policy::parse_toml(policy, "p.toml").unwrap(),
            operation,
            trail,
        )
    }

    fn run_under(
        policy: Policy,
        operation: Operation,
        trail: Result<&[Attempt], &str>,
    ) -> Result<PromotionRecord, (i32, String)> {
        let mut session = in_production(&policy, operation, day(20.0));
        let mut intent = None;
        loop {
            match session.next_step() {
                Step::AcquireLock { .. } => session.lock_acquired(Ok(None)).unwrap(),
                Step::CheckAudit => session.audit_checked(Ok(())).unwrap(),
                Step::CheckStamp { .. } => session.stamp_checked(Ok(None)).unwrap(),
                Step::CheckPromotion { trail: name } => {
                    assert_eq!(name, "/srv/staging/audit.jsonl");
                    session
                        .promotion_read(trail.map_err(TrailUnavailable::new))
                        .unwrap();
                }
                Step::Append(event) => {
                    if event.kind == EventKind::Intent {
                        intent = event.promotion.clone();
                    }
                    session.appended(Ok(())).unwrap();
                }
                Step::Proceed => return Ok(intent.expect("the intent cites the evidence")),
                Step::Deny(denial) => return Err((denial.exit_code.code(), denial.missing)),
                other => panic!("unexpected step {other:?}"),
            }
        }
    }

    fn migrate(fingerprint: Option<&str>) -> Operation {
        let mut op = Operation::new("db.migrate").with_target("orders.db");
        op.fingerprint = fingerprint.map(str::to_owned);
        op
    }

    #[test]
    fn the_intent_cites_the_staging_success_by_log_seq_and_hash() {
        let mut st = Trail::new("st");
        st.run("s1", &staging("fp1"), "ok", day(10.0));
        let cited = run(POLICY, migrate(Some("fp1")), Ok(&st.attempts())).unwrap();
        assert_eq!(
            (cited.from.as_str(), cited.within_seconds),
            ("staging", 14 * 86_400)
        );
        assert_eq!(cited.trail, "/srv/staging/audit.jsonl");
        let run = &cited.runs[0];
        assert_eq!(
            (run.fingerprint.as_str(), run.attempt_id.as_str()),
            ("fp1", "s1")
        );
        assert_eq!((run.outcome.log_id.as_str(), run.outcome.seq), ("st", 2));
        assert_eq!(run.outcome.hash, st.records[1].hash.clone().unwrap());
    }

    #[test]
    fn without_a_success_of_this_fingerprint_it_is_denied_with_what_the_trail_had() {
        let mut st = Trail::new("st");
        st.run("s1", &staging("fp1"), "failed", day(10.0));
        st.run("s2", &production("fp2"), "ok", day(10.0));
        let (code, why) = run(POLICY, migrate(Some("fp1")), Ok(&st.attempts())).unwrap_err();
        assert_eq!(code, 120);
        assert!(
            why.contains("the last attempt there failed (exit 1)"),
            "{why}"
        );
        // A success in production is not a success in staging.
        let (code, why) = run(POLICY, migrate(Some("fp2")), Ok(&st.attempts())).unwrap_err();
        assert_eq!(code, 120);
        assert!(
            why.contains("succeeded only elsewhere: production"),
            "{why}"
        );
    }

    #[test]
    fn a_batch_is_staged_as_the_same_batch_or_step_by_step() {
        let steps = vec![BatchItem::new("m1", "fa"), BatchItem::new("m2", "fb")];
        let batch = migrate(None).with_batch(steps.clone());
        let mut st = Trail::new("st");
        st.run("s1", &staging("fa"), "ok", day(10.0));
        // Only m1 ran in staging: m2 is named.
        let (code, why) = run(POLICY, batch.clone(), Ok(&st.attempts())).unwrap_err();
        assert_eq!(code, 120);
        assert!(
            why.starts_with("step `m2`: run it in staging first"),
            "{why}"
        );
        st.run("s2", &staging("fb"), "ok", day(11.0));
        let cited = run(POLICY, batch.clone(), Ok(&st.attempts())).unwrap();
        let fingerprints: Vec<&str> = cited.runs.iter().map(|r| r.fingerprint.as_str()).collect();
        assert_eq!(fingerprints, ["fa", "fb"]);
        // The same batch staged as a batch is cited once, by its own fingerprint.
        let mut st = Trail::new("st");
        let mut as_batch = staging(&batch_fingerprint(&steps));
        as_batch.batch = steps;
        st.run("s3", &as_batch, "ok", day(12.0));
        let cited = run(POLICY, batch, Ok(&st.attempts())).unwrap();
        assert_eq!(cited.runs.len(), 1);
        assert_eq!(cited.runs[0].attempt_id, "s3");
    }

    #[test]
    fn what_cannot_be_looked_up_is_a_policy_error_and_an_unreadable_trail_is_123() {
        let (code, why) = run(POLICY, migrate(None), Ok(&[])).unwrap_err();
        assert_eq!(code, 125);
        assert!(why.contains("fingerprint"), "{why}");
        let no_from = POLICY.replace("from = \"staging\"\n", "");
        let (code, why) = run(&no_from, migrate(Some("fp1")), Ok(&[])).unwrap_err();
        assert_eq!(code, 125);
        assert!(why.contains("[promotion] from"), "{why}");
        let no_trail = POLICY.replace("staging_log = \"/srv/staging/audit.jsonl\"\n", "");
        let (code, why) = run(&no_trail, migrate(Some("fp1")), Ok(&[])).unwrap_err();
        assert_eq!(code, 125);
        assert!(why.contains("no trail"), "{why}");
        let (code, why) = run(POLICY, migrate(Some("fp1")), Err("it does not verify")).unwrap_err();
        assert_eq!(code, 123);
        assert!(why.contains("it does not verify"), "{why}");
    }

    #[test]
    fn under_a_system_policy_the_fleets_shared_trail_is_no_evidence() {
        let fleet = POLICY.replace("staging_log = \"/srv/staging/audit.jsonl\"\n", "")
            + "[audit]\nsink = \"postgresql://db/fleet\"\n";
        let mut st = Trail::new("st");
        st.run("s1", &staging("fp1"), "ok", day(10.0));
        let system = Policy::parse_toml(&fleet, "/etc/prodguard/policy.toml").unwrap();
        let anchored = crate::trust::combine(Some(system), None).unwrap();
        let (code, why) =
            run_under(anchored, migrate(Some("fp1")), Ok(&st.attempts())).unwrap_err();
        assert_eq!(code, 125);
        assert!(
            why.contains("every host of the fleet can append to"),
            "{why}"
        );
    }

    #[test]
    fn a_trail_given_as_text_is_believed_only_once_every_line_verifies() {
        let mut st = Trail::new("st");
        st.run("s1", &staging("fp1"), "failed", day(10.0));
        // The lines as the writer wrote them (a `Record` read back does not
        // keep its bytes).
        let mut prev = GENESIS_PREV.to_owned();
        let mut written = String::new();
        for record in &st.records {
            let envelope = Envelope {
                log_id: "st".into(),
                seq: record.seq,
                ts: Timestamp::parse_rfc3339(&record.ts).unwrap(),
                host: "h".into(),
                pid: 1,
            };
            let (line, hash) = encode_record(&envelope, &record.event, &prev).unwrap();
            written.push_str(std::str::from_utf8(&line).unwrap());
            prev = hash;
        }
        let attempts = attempts_from_log(&written).unwrap();
        assert_eq!(attempts.len(), 1);
        assert!(!attempts[0].succeeded());
        // Turning the failure into a success breaks the chain.
        let forged = written.replace("\"status\":\"failed\"", "\"status\":\"ok\"");
        assert_ne!(forged, written);
        assert!(
            attempts_from_log(&forged)
                .unwrap_err()
                .contains("line 2 does not verify")
        );
        // A cut final record is not read as whole.
        let torn = &written[..written.len() - 1];
        assert!(attempts_from_log(torn).unwrap_err().contains("newline"));
        // Dropping the failure's outcome breaks nothing a verifier can see
        // from the first record on, but leaves no success either.
        let first_only: String = written.lines().take(1).map(|l| format!("{l}\n")).collect();
        assert!(!attempts_from_log(&first_only).unwrap()[0].succeeded());
    }
}
