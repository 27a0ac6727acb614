//! `bindings/wasm/js/prodguard.d.ts` names exactly what the core writes
//! and reads: the request and answer types this crate re-exports are the
//! core's own, and this test keeps the TypeScript types in step with them.
//!
//! Every type is serialised from a value with every field set (so no
//! `skip_serializing_if` hides one), and its field names must be the keys
//! of the matching interface, both ways; every variant of every enum must
//! be a member of the matching string union, and every member must parse
//! as a variant. A field or variant added, renamed or removed on either
//! side fails here, naming it. (The field *types* are not compared: only
//! names.) The values are built with struct literals, so a field added to a
//! core type also stops this test compiling until it is given a value.

use std::collections::{BTreeMap, BTreeSet};

use prodguard_core::approval::Claims;
use prodguard_core::audit::{
    Actor, AuditEvent, BackupEvidence, BatchItem, ConfirmEvidence, DecisionRecord, EventKind,
    OperationRecord, OutcomeRecord, PromotedRun, PromotionRecord, PruneInfo, PrunedFile,
    PrunedSeal, RollbackPlan, SealInfo, SqlRecord, SqlStatementRecord,
};
use prodguard_core::detect::{Conflict, Evidence as Signal, Strength};
use prodguard_core::json_api::{
    ApprovalEvidence, ApprovalRequest, Evaluation, Evidence, RecordLine, RecordRequest, Request,
    RequestOperation, RequestSql, SessionStep, SessionVerdict, SqlAnswer, SqlStatement,
};
use prodguard_core::policy::{
    ActorKind, AuditConfig, ConfirmMode, Durability, PromotionConfig, Requirement,
};
use prodguard_core::promotion::Citation;
use prodguard_core::session::{Challenge, Decision, Denial, RequirementView, Stamp, Verdict};
use prodguard_core::sql::{Dialect, RowBounds, SqlKind};
use prodguard_core::{Detection, ExitCode, Facts, Tier, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const DTS: &str = include_str!("../../../js/prodguard.d.ts");

// ---- a reader for the few TypeScript forms prodguard.d.ts uses -------------

/// The declarations' text without comments.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |end| &after[end + 2..]);
        } else if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |end| &after[end..]);
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The text of `interface name { … }` (the braces' content) or of
/// `type name = …;` (up to the `;` outside any brackets).
fn declaration(dts: &str, name: &str) -> String {
    for keyword in ["interface", "type"] {
        let needle = format!("{keyword} {name} ");
        let Some(at) = dts.find(&needle) else {
            continue;
        };
        let body = &dts[at + needle.len()..];
        if keyword == "interface" {
            let open = body.find('{').unwrap();
            return balanced(&body[open..]).to_owned();
        }
        let body = body.trim_start().strip_prefix('=').unwrap();
        let mut depth = 0i32;
        for (i, c) in body.char_indices() {
            match c {
                '{' | '(' | '[' | '<' => depth += 1,
                '}' | ')' | ']' | '>' => depth -= 1,
                ';' if depth == 0 => return body[..i].to_owned(),
                _ => {}
            }
        }
        panic!("`type {name}` has no end");
    }
    panic!("prodguard.d.ts declares no `{name}`");
}

/// The content of the brace block `text` starts with.
fn balanced(text: &str) -> &str {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[1..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces in {text:?}");
}

/// The members (name → type text) of an object type's content.
fn members(body: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut depth = 0i32;
    let mut start = 0;
    let mut pieces = Vec::new();
    for (i, c) in body.char_indices() {
        match c {
            '{' | '(' | '[' | '<' => depth += 1,
            '}' | ')' | ']' | '>' => depth -= 1,
            ';' | '\n' if depth == 0 => {
                pieces.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&body[start..]);
    for piece in pieces {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let colon = piece
            .find(':')
            .unwrap_or_else(|| panic!("member {piece:?}"));
        let name = piece[..colon].trim();
        let name = name.strip_prefix("readonly ").unwrap_or(name);
        let name = name.trim_end_matches('?').trim();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "unexpected member {piece:?}"
        );
        out.insert(name.to_owned(), piece[colon + 1..].trim().to_owned());
    }
    out
}

/// The members of every object literal `{ … }` at the top of `text` (a
/// type alias's union or intersection of object types; named types in it
/// are not followed).
fn object_literals(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let body = balanced(&rest[open..]);
        out.push(members(body));
        rest = &rest[open + body.len() + 2..];
    }
    out
}

/// The members of the shape a path names: `Name` (an interface, or a type
/// alias of object literals, all of whose members count) or `Name.field`
/// (the object literal that is the field's type).
fn shape(dts: &str, path: &str) -> BTreeMap<String, String> {
    let mut parts = path.split('.');
    let name = parts.next().unwrap();
    let text = declaration(dts, name);
    let mut fields = if dts.contains(&format!("interface {name} ")) {
        members(&text)
    } else {
        object_literals(&text).into_iter().flatten().collect()
    };
    for field in parts {
        let ty = fields
            .get(field)
            .unwrap_or_else(|| panic!("{path}: no member `{field}`"))
            .clone();
        fields = object_literals(&ty).into_iter().flatten().collect();
    }
    fields
}

/// The string literals in a type's text (`'a' | 'b'`).
fn string_literals(text: &str) -> BTreeSet<String> {
    text.split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The number literals in a type's text (`120 | 121`).
fn number_literals(text: &str) -> BTreeSet<i32> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

// ---- the core's side -------------------------------------------------------

fn keys(value: &impl Serialize) -> BTreeSet<String> {
    match serde_json::to_value(value).unwrap() {
        Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("not an object: {other}"),
    }
}

fn ts(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn actor() -> Actor {
    Actor {
        user: "alice".into(),
        kind: ActorKind::Human,
        account: Some("alice".into()),
    }
}

fn operation() -> RequestOperation {
    RequestOperation {
        kind: Some("db.migrate".into()),
        target: Some("orders".into()),
        fingerprint: Some("sha256:ab".into()),
        rollback: Some("./migrate down 0042".into()),
    }
}

fn rollback_plan() -> RollbackPlan {
    RollbackPlan::command("./migrate down 0042")
}

fn facts() -> Facts {
    Facts {
        explicit: Some("production".into()),
        env: [("APP_ENV".to_owned(), "production".to_owned())].into(),
        files: [("/etc/prodguard/environment".to_owned(), "prod".to_owned())].into(),
        hostname: Some("db-1".into()),
    }
}

fn stamp() -> Stamp {
    Stamp {
        environment: "production".into(),
        tier: Tier::Production,
        stamped_at: Some("2026-11-27T09:00:00Z".into()),
        stamped_by: Some("alice".into()),
    }
}

fn backup() -> BackupEvidence {
    BackupEvidence {
        location: "/b/orders.bak".into(),
        sha256: "ab".repeat(32),
        bytes: 4096,
        created: ts("2026-11-27T09:59:00Z"),
        verified: true,
        verification: Some("sqlite3 PRAGMA integrity_check".into()),
    }
}

fn approval_evidence() -> ApprovalEvidence {
    ApprovalEvidence {
        token: "pga2.x.y".into(),
        ledger: Some("file://h/var/log/prodguard/audit.jsonl".into()),
    }
}

fn evidence() -> Evidence {
    Evidence {
        actor: actor(),
        attempt_id: "a-1".into(),
        audit_error: Some("read-only".into()),
        stamp: Some(stamp()),
        stamp_error: Some("unreadable".into()),
        typed: Some("orders".into()),
        approval: Some(approval_evidence()),
        backup: Some(backup()),
        backup_error: Some("disk full".into()),
        break_glass: Some("the incident of today".into()),
        fleet: true,
        dry_run_rows: Some(vec![250, 0]),
        promotion_trail: Some("{…}\n".into()),
        promotion_error: Some("unreadable".into()),
    }
}

fn request() -> Request {
    Request {
        facts: facts(),
        policy: Some("[[rule]]\n".into()),
        system_policy: Some("[[rule]]\n".into()),
        operation: operation(),
        sql: Some(request_sql()),
        evidence: Some(evidence()),
        now: Some("2026-11-27T10:00:00Z".into()),
        explain: true,
        terminal: true,
    }
}

fn request_sql() -> RequestSql {
    RequestSql {
        script: "DELETE FROM carts".into(),
        dialect: Dialect::Postgres,
    }
}

fn sql_statement() -> SqlStatement {
    SqlStatement {
        index: 0,
        kind: SqlKind::DeleteAll,
        destructive: true,
        tables: vec!["carts".into()],
        cascades: false,
        line: 1,
        start: 0,
        end: 17,
        problem: Some("not understood".into()),
    }
}

/// Every member set (RowBounds is non-exhaustive: read from JSON).
fn row_bounds() -> RowBounds {
    serde_json::from_value(serde_json::json!({"index": 0, "max_rows": 500,
        "max_rows_rule": "bulk", "confirm": true, "confirm_above_rows": 10,
        "outside_transaction": true}))
    .unwrap()
}

fn sql_answer() -> SqlAnswer {
    SqlAnswer {
        dialect: Dialect::Postgres,
        statements: vec![sql_statement()],
        operation: SqlKind::DeleteAll,
        destructive: true,
        fingerprint: "ab".repeat(32),
        bounds: vec![row_bounds()],
    }
}

fn operation_record() -> OperationRecord {
    OperationRecord {
        kind: "db.migrate".into(),
        target: Some("orders".into()),
        env: "production".into(),
        tier: Tier::Production,
        decided_by: "env:APP_ENV".into(),
        fingerprint: Some("sha256:ab".into()),
        batch: vec![BatchItem::new("1_users", "ab")],
    }
}

fn decision_record() -> DecisionRecord {
    DecisionRecord {
        result: "proceed".into(),
        rule: Some("migrations".into()),
        requirements: vec![Requirement::Confirm],
        reasons: vec!["because".into()],
        exit_code: Some(0),
        policy: vec![prodguard_core::trust::PolicySource {
            path: "/etc/prodguard/policy.toml".into(),
            sha256: "ab".repeat(32),
            system: true,
        }],
    }
}

fn confirm_evidence() -> ConfirmEvidence {
    ConfirmEvidence {
        method: "approval".into(),
        approver: Some("bob".into()),
        token_id: Some("n-1".into()),
        exp: Some(ts("2026-11-27T10:10:00Z")),
        max_rows: Some(500),
    }
}

fn outcome_record() -> OutcomeRecord {
    OutcomeRecord {
        status: "failed".into(),
        duration_ms: 12,
        error: Some("exit 1".into()),
        exit_code: Some(1),
        rows: Some(vec![3, 0]),
        lock_lost: Some("the fleet lock's lease was lost during the run".into()),
    }
}

fn seal() -> SealInfo {
    SealInfo {
        epoch: 1,
        mac: "ab".repeat(32),
    }
}

/// Every member set (AuditEvent is non-exhaustive: built field by field,
/// so a member added to the core is caught by the key comparison, not by
/// the compiler).
fn event() -> AuditEvent {
    let mut event = AuditEvent::new(EventKind::Intent);
    event.attempt_id = Some("a-1".into());
    event.actor = Some(actor());
    event.op = Some(operation_record());
    event.decision = Some(decision_record());
    event.backup = Some(backup());
    event.confirm = Some(confirm_evidence());
    event.outcome = Some(outcome_record());
    event.message = Some("m".into());
    event.seal = Some(seal());
    event.prune = Some(prune_info());
    event.pid_ns = Some(4026531836);
    event.sql = Some(sql_record());
    event.fence = Some(7);
    event.promotion = Some(promotion_record());
    event.rollback = Some(rollback_plan());
    event.rolls_back = Some("a-0".into());
    event
}

fn sql_record() -> SqlRecord {
    let mut record = SqlRecord::of(&prodguard_core::sql::classify(
        "DELETE FROM carts WHERE stale CASCADE",
        Dialect::Postgres,
    ));
    record.not_listed = 3;
    record.dry_run_rows = Some(vec![250]);
    record
}

fn sql_statement_record() -> SqlStatementRecord {
    SqlStatementRecord {
        index: 0,
        kind: "db.drop.table".into(),
        tables: vec!["carts".into()],
        cascades: true,
    }
}

fn pruned_seal() -> PrunedSeal {
    PrunedSeal {
        seq: 1000,
        prev: "cd".repeat(32),
        seal: seal(),
    }
}

fn pruned_file() -> PrunedFile {
    PrunedFile {
        file: "/var/log/prodguard/audit.jsonl.1".into(),
        first_seq: 1,
        last_seq: 1200,
        last_hash: "ef".repeat(32),
        bytes: 4096,
        last_seal: Some(pruned_seal()),
    }
}

fn prune_info() -> PruneInfo {
    PruneInfo {
        before: 1201,
        files: vec![pruned_file()],
    }
}

fn signal() -> Signal {
    Signal {
        source: "env:APP_ENV".into(),
        value: Some("production".into()),
        environment: Some("production".into()),
        tier: Some(Tier::Production),
        strength: Strength::Declared,
        used: true,
        meaning: "declares production".into(),
    }
}

fn conflict() -> Conflict {
    Conflict {
        sources: vec!["env:APP_ENV".into(), "env:NODE_ENV".into()],
        tiers: vec![Tier::Production, Tier::Development],
        resolved: Tier::Production,
    }
}

fn detection() -> Detection {
    Detection {
        environment: "production".into(),
        tier: Tier::Production,
        protected: true,
        decided_by: "env:APP_ENV".into(),
        evidence: vec![signal()],
        conflicts: vec![conflict()],
        hint: Some("set APP_ENV".into()),
    }
}

fn requirement() -> RequirementView {
    RequirementView {
        kind: Requirement::Confirm,
        rule: "migrations".into(),
        how: "type the target's name".into(),
    }
}

fn decision() -> Decision {
    Decision {
        result: Verdict::Require,
        rule: Some("migrations".into()),
        requirements: vec![requirement()],
        exit_code: 121,
        reasons: vec!["because".into()],
        // Not part of the JSON.
        confirm_mode: ConfirmMode::Either,
        backup: None,
        actors: Vec::new(),
        break_glass_allowed: false,
    }
}

fn challenge() -> Challenge {
    Challenge {
        operation: "db.migrate".into(),
        target: Some("orders".into()),
        environment: "production".into(),
        tier: Tier::Production,
        why: "production".into(),
        expected: "orders".into(),
        mode: ConfirmMode::Either,
        consequences: vec!["statement 0 (line 1, db.delete.where on carts): 250 rows".into()],
    }
}

fn denial() -> Denial {
    Denial {
        exit_code: ExitCode::NotConfirmed,
        rule: Some("migrations".into()),
        missing: "a confirmation".into(),
        next_step: "type it".into(),
        recorded: false,
        note: Some(prodguard_core::trust::UNPROTECTED.into()),
        rows: Some(vec![250]),
    }
}

fn session() -> SessionVerdict {
    SessionVerdict {
        step: SessionStep::Deny,
        exit_code: 121,
        denial: Some(denial()),
        challenge: Some(challenge()),
        record: Some(event()),
    }
}

fn evaluation() -> Evaluation {
    Evaluation {
        detection: detection(),
        decision: decision(),
        session: Some(session()),
        sql: Some(sql_answer()),
        actor_kind: ActorKind::Agent,
        audit: audit_config(),
        promotion: promotion_config(),
        promotion_trail: Some("/var/log/staging/audit.jsonl".into()),
    }
}

fn promotion_config() -> PromotionConfig {
    PromotionConfig {
        from: Some("staging".into()),
        within_seconds: 14 * 86_400,
        staging_log: Some("/var/log/staging/audit.jsonl".into()),
    }
}

fn promotion_record() -> PromotionRecord {
    let trail = "/var/log/staging/audit.jsonl".to_owned();
    let mut record: PromotionRecord = serde_json::from_value(serde_json::json!({
        "from": "staging", "within_seconds": 1_209_600, "trail": trail, "runs": [],
    }))
    .unwrap();
    record.runs.push(promoted_run());
    record
}

fn promoted_run() -> PromotedRun {
    serde_json::from_value(serde_json::json!({
        "fingerprint": "3f2a9c", "attempt_id": "s-1", "env": "staging",
        "outcome": {"log_id": "L", "seq": 2, "hash": "ab".repeat(32), "at": "2026-11-20T10:00:00Z"},
    }))
    .unwrap()
}

fn citation() -> Citation {
    promoted_run().outcome
}

fn audit_config() -> AuditConfig {
    AuditConfig {
        log: Some("/var/log/prodguard/audit.jsonl".into()),
        durability: Durability::Fdatasync,
        seal_every: Some(1000),
        seal_key_file: Some("/etc/prodguard/seal.key".into()),
        rotate_bytes: Some(1 << 26),
        sink: Some("postgresql://db/fleet".into()),
        copies: vec!["/srv/app/audit.jsonl".into()],
    }
}

fn record_request() -> RecordRequest {
    RecordRequest {
        log_id: "L".into(),
        seq: 1,
        ts: "2026-11-27T10:00:00Z".into(),
        host: "h".into(),
        pid: 1,
        prev: "0".repeat(64),
        event: event(),
    }
}

fn approval_request() -> ApprovalRequest {
    ApprovalRequest {
        token: "pga2.x.y".into(),
        policy: Some("[[rule]]\noperations = [\"*\"]\n".into()),
        system_policy: Some("[[rule]]\noperations = [\"*\"]\n".into()),
        ledger: Some("file://h/var/log/prodguard/audit.jsonl".into()),
        operation: operation(),
        environment: "production".into(),
        tier: Tier::Production,
        requester: actor(),
        now: "2026-11-27T10:00:00Z".into(),
    }
}

fn claims() -> Claims {
    Claims {
        v: 2,
        op: "db.migrate".into(),
        target: "orders".into(),
        env: "production".into(),
        tier: Tier::Production,
        fingerprint: Some("sha256:ab".into()),
        approver: "bob".into(),
        approver_kind: Some(ActorKind::Human),
        iat: ts("2026-11-27T09:59:00Z"),
        exp: ts("2026-11-27T10:10:00Z"),
        nonce: "n-1".into(),
        ledger: "file://h/var/log/prodguard/audit.jsonl".into(),
        max_rows: Some(500),
    }
}

fn record_line() -> RecordLine {
    RecordLine {
        line: "{}\n".into(),
        hash: "ab".repeat(32),
    }
}

/// Every (d.ts shape(s), the core type's field names). A shape list's
/// members are united (the request's members are split over an interface
/// and the alias that adds `evidence` and `now`).
fn structs() -> Vec<(&'static [&'static str], BTreeSet<String>)> {
    vec![
        (&["Facts"], keys(&facts())),
        (&["Operation"], keys(&operation())),
        (&["SqlOperation"], keys(&operation())),
        (&["SqlRequest"], keys(&request_sql())),
        (&["SqlStatement"], keys(&sql_statement())),
        (&["RowBounds"], keys(&row_bounds())),
        (&["SqlAnswer"], keys(&sql_answer())),
        (&["Actor"], keys(&actor())),
        (&["Stamp"], keys(&stamp())),
        (&["BackupEvidence"], keys(&backup())),
        (&["Evidence"], keys(&evidence())),
        (&["Evidence.approval"], keys(&approval_evidence())),
        (
            &["EvaluateRequestBase", "EvaluateRequest"],
            keys(&request()),
        ),
        (&["AuditRecordRequest"], keys(&record_request())),
        (&["VerifyApprovalRequest"], keys(&approval_request())),
        (&["Signal"], keys(&signal())),
        (&["Conflict"], keys(&conflict())),
        (&["Detection"], keys(&detection())),
        (&["RequirementView"], keys(&requirement())),
        (&["Decision"], keys(&decision())),
        (&["Challenge"], keys(&challenge())),
        (&["Denial"], keys(&denial())),
        (&["SessionVerdict"], keys(&session())),
        (&["Evaluation"], keys(&evaluation())),
        (&["AuditSettings"], keys(&audit_config())),
        (&["PromotionSettings"], keys(&promotion_config())),
        (&["PromotionRecord"], keys(&promotion_record())),
        (&["PromotedRun"], keys(&promoted_run())),
        (
            &["RollbackPlan"],
            keys(&{
                let mut both = rollback_plan();
                both.restore_backup = true;
                both
            }),
        ),
        (&["Citation"], keys(&citation())),
        (&["AuditEvent"], keys(&event())),
        (&["AuditEvent.op"], keys(&operation_record())),
        (&["AuditEvent.decision"], keys(&decision_record())),
        (&["AuditEvent.confirm"], keys(&confirm_evidence())),
        (&["AuditEvent.outcome"], keys(&outcome_record())),
        (&["AuditEvent.seal"], keys(&seal())),
        (&["PruneInfo"], keys(&prune_info())),
        (&["SqlRecord"], keys(&sql_record())),
        (&["SqlRecord.destructive"], keys(&sql_statement_record())),
        (&["PrunedFile"], keys(&pruned_file())),
        (&["PrunedSeal"], keys(&pruned_seal())),
        (&["RecordLine"], keys(&record_line())),
        (&["Claims"], keys(&claims())),
    ]
}

/// Every variant of a unit-variant enum as its JSON string, as the core
/// itself lists them: serde's error for an unknown variant names every one
/// (``expected one of `a`, `b`, `c` ``), so a variant added to the core
/// shows up here with nothing to update.
fn variants<T: DeserializeOwned>() -> BTreeSet<String> {
    let error = serde_json::from_value::<T>(Value::String("\u{1}".into()))
        .err()
        .expect("no enum has this variant")
        .to_string();
    let (_, expected) = error
        .split_once("expected")
        .unwrap_or_else(|| panic!("not an unknown-variant error: {error}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn parses_as<T: DeserializeOwned>(member: &str) -> bool {
    serde_json::from_value::<T>(Value::String(member.to_owned())).is_ok()
}

/// Every (d.ts path of a string union, the core's variants, whether a
/// member parses as a variant).
type Union = (&'static str, BTreeSet<String>, fn(&str) -> bool);

fn enums() -> Vec<Union> {
    vec![
        ("Tier", variants::<Tier>(), parses_as::<Tier>),
        ("ActorKind", variants::<ActorKind>(), parses_as::<ActorKind>),
        (
            "RequirementKind",
            variants::<Requirement>(),
            parses_as::<Requirement>,
        ),
        (
            "ConfirmMode",
            variants::<ConfirmMode>(),
            parses_as::<ConfirmMode>,
        ),
        ("EventKind", variants::<EventKind>(), parses_as::<EventKind>),
        (
            "Decision.result",
            variants::<Verdict>(),
            parses_as::<Verdict>,
        ),
        (
            "SessionVerdict.step",
            variants::<SessionStep>(),
            parses_as::<SessionStep>,
        ),
        (
            "Signal.strength",
            variants::<Strength>(),
            parses_as::<Strength>,
        ),
        // The names answers write (requests also take the alias `postgresql`).
        (
            "Dialect",
            Dialect::ALL.iter().map(|d| d.as_str().to_owned()).collect(),
            parses_as::<Dialect>,
        ),
        // Its serde reads a name (not a list of variants): every kind, as the core lists them.
        (
            "SqlKind",
            SqlKind::all().map(|k| k.as_str().to_owned()).collect(),
            parses_as::<SqlKind>,
        ),
    ]
}

/// The text of a string union: a type alias, or `Name.field`'s type (for
/// a type alias of object literals, every literal's `field`).
fn union_text(dts: &str, path: &str) -> String {
    match path.split_once('.') {
        None => declaration(dts, path),
        Some((name, field)) => {
            let text = declaration(dts, name);
            let shapes = if dts.contains(&format!("interface {name} ")) {
                vec![members(&text)]
            } else {
                object_literals(&text)
            };
            shapes
                .iter()
                .filter_map(|shape| shape.get(field).cloned())
                .collect::<Vec<_>>()
                .join(" | ")
        }
    }
}

/// Every way `dts` and the core's types disagree, one per line.
fn drift(dts: &str) -> Vec<String> {
    let dts = without_comments(dts);
    let mut problems = Vec::new();
    for (paths, core) in structs() {
        let ts: BTreeSet<String> = paths
            .iter()
            .flat_map(|path| shape(&dts, path).into_keys())
            .collect();
        let name = paths.join(" & ");
        for field in core.difference(&ts) {
            problems.push(format!(
                "{name}: the core writes `{field}`, prodguard.d.ts lacks it"
            ));
        }
        for field in ts.difference(&core) {
            problems.push(format!(
                "{name}: prodguard.d.ts has `{field}`, the core has no such field"
            ));
        }
    }
    for (path, core, parses) in enums() {
        let ts = string_literals(&union_text(&dts, path));
        for variant in core.difference(&ts) {
            problems.push(format!(
                "{path}: the core has '{variant}', prodguard.d.ts lacks it"
            ));
        }
        for member in &ts {
            if !parses(member) {
                problems.push(format!(
                    "{path}: prodguard.d.ts has '{member}', the core has no such variant"
                ));
            }
        }
    }
    // The exit codes a denial and a decision carry, and the error statuses.
    let denial_codes = number_literals(&declaration(&dts, "DenialExitCode"));
    let core_denials = BTreeSet::from([
        ExitCode::Denied.code(),
        ExitCode::NotConfirmed.code(),
        ExitCode::BackupFailed.code(),
        ExitCode::AuditUnavailable.code(),
        ExitCode::EnvMismatch.code(),
        ExitCode::PolicyError.code(),
    ]);
    if denial_codes != core_denials {
        problems.push(format!(
            "DenialExitCode: prodguard.d.ts has {denial_codes:?}, the core's denials exit with {core_denials:?}"
        ));
    }
    let decision_codes = number_literals(&shape(&dts, "Decision")["exit_code"]);
    let core_decisions = BTreeSet::from([
        0,
        ExitCode::Denied.code(),
        ExitCode::NotConfirmed.code(),
        ExitCode::PolicyError.code(),
    ]);
    if decision_codes != core_decisions {
        problems.push(format!(
            "Decision.exit_code: prodguard.d.ts has {decision_codes:?}, the core's decisions exit with {core_decisions:?}"
        ));
    }
    let status = members(balanced(&dts[dts.find("const Status: {").unwrap() + 14..]));
    for (name, code) in [
        ("NOT_CONFIRMED", ExitCode::NotConfirmed.code()),
        ("INVALID_REQUEST", ExitCode::PolicyError.code()),
    ] {
        let ts = status.get(name).map(|ty| number_literals(ty));
        if ts != Some(BTreeSet::from([code])) {
            problems.push(format!(
                "Status.{name}: prodguard.d.ts has {ts:?}, the core's code is {code}"
            ));
        }
    }
    problems
}

#[test]
fn prodguard_d_ts_names_what_the_core_writes() {
    let problems = drift(DTS);
    assert!(
        problems.is_empty(),
        "bindings/wasm/js/prodguard.d.ts has drifted from the core's types:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_drift_check_sees_a_field_or_variant_gone_or_added() {
    // Each edit of the real file must be caught (and the edit must apply).
    for (from, to, needle) in [
        (
            "  hint?: string | null;\n",
            "",
            "Detection: the core writes `hint`",
        ),
        (
            "  next_step: string;\n",
            "  next_step: string;\n  retry: boolean;\n",
            "`retry`",
        ),
        ("| 'unknown'", "", "Tier: the core has 'unknown'"),
        ("ConfirmMode = 'typed'", "ConfirmMode = 'typo'", "'typo'"),
        ("nonce: string;", "nonse: string;", "`nonce`"),
        (
            "seal?: { epoch: number; mac: string }",
            "seal?: { epoch: number }",
            "`mac`",
        ),
        ("120 | 121 | 122", "120 | 121", "DenialExitCode"),
        (
            "  | 'db.drop.other'",
            "",
            "SqlKind: the core has 'db.drop.other'",
        ),
        (
            "  cascades: boolean;\n",
            "",
            "SqlStatement: the core writes `cascades`",
        ),
        (
            "  confirm_above_rows?: number;\n",
            "  confirm_above_rows?: number;\n  rows?: number;\n",
            "`rows`",
        ),
        ("sql?: SqlAnswer;", "", "Evaluation: the core writes `sql`"),
    ] {
        assert_eq!(
            DTS.matches(from).count(),
            1,
            "{from:?} is in prodguard.d.ts once"
        );
        let problems = drift(&DTS.replacen(from, to, 1));
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "replacing {from:?} with {to:?} should report {needle:?}: {problems:?}"
        );
    }
}
