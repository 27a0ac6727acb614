//! A JSON API over the core, for faces that speak JSON (the C ABI's
//! `prodguard_evaluate_json`, the Wasm module's `prodguard_evaluate`): facts,
//! a policy and an operation in, the detection and the decision out. The
//! faces only move bytes; this is where the answer is made.
//!
//! ```
//! let response = prodguard_core::json_api::evaluate_json(
//!     r#"{"facts": {"env": {"APP_ENV": "production"}}, "operation": {"kind": "db.migrate", "target": "orders"}}"#,
//! );
//! let value: serde_json::Value = serde_json::from_str(&response.body).unwrap();
//! assert_eq!(response.status, 0);
//! assert_eq!(value["decision"]["exit_code"], 121);
//! ```
//!
//! A face that answers many requests keeps a [`JsonApi`]: it remembers the
//! last policy it parsed (a plugin host sends the same policy with every
//! request). The core holds no global state; the cache is the caller's.

use serde::{Deserialize, Serialize};

use crate::approval::{self, Claims, Expected};
use crate::audit::{Actor, AuditEvent, BackupEvidence, Envelope, EventKind, encode_record};
use crate::confirm::{self, Route, Unconfirmable};
use crate::detect::classify_with;
use crate::policy::{ActorKind, AuditConfig, ConfirmMode, PromotionConfig};
use crate::promotion;
use crate::session::{
    AuditFailure, BackupError, Challenge, ConfirmationAnswer, Decision, Denial, LockRefusal,
    Operation, Session, SessionInput, Stamp, StampError, Step, TrailUnavailable, decide, shorten,
};
use crate::sql::{self, Dialect, RowBounds, Script, SqlKind};
use crate::text::escape;
use crate::{Detection, ExitCode, Facts, Policy, Tier, Timestamp, trust};

mod builders;

/// What `evaluate` takes. It serialises to the same JSON (absent options
/// left out), so a host written in Rust can build one (see its builder
/// methods).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The facts detection looks at.
    #[serde(default)]
    pub facts: Facts,
    /// The policy as TOML text; absent or null: the built-in default (or,
    /// with `system_policy`, that alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The system policy's text (`/etc/prodguard/policy.toml`), which the
    /// host vouches for: read from a root-owned file nobody else can write.
    /// `policy` is layered over it and can only tighten it (a policy that
    /// would loosen it is refused with 125); see [`crate::trust`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_policy: Option<String>,
    /// What is asked for. With [`sql`](Self::sql) it may be left out, or
    /// give only the target: the script is the operation.
    #[serde(default)]
    pub operation: RequestOperation,
    /// An SQL script to classify: its operation is the operation asked
    /// for (see [`RequestSql`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<RequestSql>,
    /// What the host gathered (answers, backup, stamp): when present, the
    /// whole guard session runs and the answer says whether to proceed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The current time (RFC 3339); required with `evidence` (backup age,
    /// approval expiry), unused without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
    /// List every signal detection looked at, unset ones included (as
    /// `prodguard detect --json --explain`); by default the answer lists only the
    /// signals that were set, which keeps it small and fast.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
    /// Whether the host process has a terminal (2.3): with `facts.env`, it
    /// decides the answer's `actor_kind`, so a host never keeps its own
    /// lists of agent and CI variables.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminal: bool,
}

/// The operation in a [`Request`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestOperation {
    /// Dotted name. Required, except in a request with `sql`, where it is
    /// the script's operation: absent, or equal to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Target, if any.
    #[serde(default)]
    pub target: Option<String>,
    /// What identifies its content (approvals bind it).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Its way back (2.4): a command that undoes it, recorded in the intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
}

/// The SQL script of a [`Request`]. With it, the request's operation is
/// the script: its kind is the script's most dangerous statement's
/// ([`crate::sql::Script::operation`]) and its fingerprint the script's, so
/// an approval binds the exact script. `operation.kind` and
/// `operation.fingerprint` must then be absent or equal to the script's
/// (anything else is refused with 125: the host and the script disagree on
/// what runs); `operation.target` is the database it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSql {
    /// The script, as it will be sent to the database.
    pub script: String,
    /// The dialect it is written in: `postgres`, `sqlite`, `mysql` or
    /// `generic`. Required: read in another dialect (quotes and escapes
    /// differ) a statement can hide inside what looks like a string.
    pub dialect: Dialect,
}

/// What a host gathered for one attempt. Anything missing counts as not
/// given, and a requirement it would satisfy refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Who acts.
    pub actor: Actor,
    /// A unique id the host made for this attempt (ties intent and outcome).
    pub attempt_id: String,
    /// Set when the host's audit log cannot take records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_error: Option<String>,
    /// The target's environment stamp, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<Stamp>,
    /// Set when the target's stamp could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp_error: Option<String>,
    /// What the person typed when asked to confirm (never counts for an agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed: Option<String>,
    /// An approval token, and the ledger the host spends it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalEvidence>,
    /// The backup the host made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupEvidence>,
    /// Set when the host's backup failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_error: Option<String>,
    /// A break-glass reason; only for an `actor.account` the policy lists in
    /// `[approval] break_glass_users`, never for an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
    /// The host honours the policy's fleet keys: it holds the `[fleet]
    /// lock` of (operation, target) until the outcome is appended, appends
    /// records to the `[audit] sink` and spends approvals in the
    /// `[approval] ledger`. A policy with fleet keys refuses (125) without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fleet: bool,
    /// With `sql`: the rows each statement affected (by index) when the
    /// host ran the script in a transaction it rolled back. They are shown
    /// in the challenge's `consequences`; a statement over its `max_rows`
    /// refuses (120), and rows within `confirm_above_rows` waive the
    /// confirmation. Without them every rule asking for one applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_rows: Option<Vec<u64>>,
    /// Where a rule requires `staged`: the text of the trail the answer's
    /// `promotion_trail` names, from its first record (a rotated set's
    /// files in order). The core verifies its chain before
    /// it believes a record of it, then looks for the success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_trail: Option<String>,
    /// Set when the host could not read that trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_error: Option<String>,
}

/// An approval token offered as confirmation. It is checked with the
/// public keys the policy lists in `[approval] approvers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalEvidence {
    /// The `pga2.…` token.
    pub token: String,
    /// The identity of the ledger the host spends the token's nonce in
    /// (what `prodguard check --json` shows as `ok.ledger`): the `[approval]
    /// ledger` or `[audit] sink` URL without its password, else
    /// `file://HOST/ABS/PATH` of the host's audit log. A token minted for
    /// another ledger is refused (121), and so is one offered without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<String>,
}

/// What `evaluate` answers. A host reads it back with serde; it ignores
/// fields it does not know, as ABI.md asks of hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// As `prodguard detect --json` prints it in `ok`.
    pub detection: Detection,
    /// As `prodguard check --json`'s decision.
    pub decision: Decision,
    /// The guard session's verdict, when the request carried evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionVerdict>,
    /// The script's classification, when the request carried `sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlAnswer>,
    /// What kind of actor a process with `facts.env` and the request's
    /// `terminal` is (2.3): [`crate::detect::actor_kind`].
    pub actor_kind: ActorKind,
    /// The policy's `[audit]` settings, layered (2.3): where the trail
    /// goes and what it asks of a writer (seals, rotation, a sink), so a
    /// host honours them or refuses, and never guesses from the text.
    pub audit: AuditConfig,
    /// The policy's `[promotion]` settings, layered (2.4).
    pub promotion: PromotionConfig,
    /// The trail a `staged` requirement reads (2.4): `promotion.staging_log`,
    /// else `audit.sink` ([`PromotionConfig::trail`]); what a host hands
    /// over as `evidence.promotion_trail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_trail: Option<String>,
}

/// A classified script, in an [`Evaluation`]: what [`crate::sql::classify`]
/// found and the row bounds [`crate::sql::decide`] set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlAnswer {
    /// The dialect it was read in.
    pub dialect: Dialect,
    /// Its statements, in order.
    pub statements: Vec<SqlStatement>,
    /// Its most dangerous statement's kind (`db.unknown` when it has none):
    /// the operation decided.
    pub operation: SqlKind,
    /// Whether that kind is destructive.
    pub destructive: bool,
    /// The lowercase hex SHA-256 of its statements' tokens (layout, comments
    /// and keyword case left out): the operation's fingerprint.
    pub fingerprint: String,
    /// Each statement's row bounds, in order. The module counts no rows:
    /// the host's dry run gives them (`evidence.dry_run_rows`), and the host
    /// holds the bounds at its commit (ABI.md, "SQL scripts").
    pub bounds: Vec<RowBounds>,
}

/// One statement of an [`SqlAnswer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlStatement {
    /// Its position in the script, from 0.
    pub index: usize,
    /// What it does.
    pub kind: SqlKind,
    /// Whether its kind is destructive.
    pub destructive: bool,
    /// The tables (and other objects) it names, as written.
    pub tables: Vec<String>,
    /// Whether it says `CASCADE`.
    pub cascades: bool,
    /// The line it starts on, from 1.
    pub line: u64,
    /// Byte offset (in the script's UTF-8) of its first character.
    pub start: usize,
    /// Byte offset just past its last character (its `;` excluded).
    pub end: usize,
    /// For `db.unknown`: what was not understood, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl SqlAnswer {
    /// The answer for `script`, with the `bounds` [`sql::decide`] gave it.
    pub fn new(script: &Script, bounds: Vec<RowBounds>) -> SqlAnswer {
        SqlAnswer {
            dialect: script.dialect,
            statements: script
                .statements
                .iter()
                .map(|s| SqlStatement {
                    index: s.index,
                    kind: s.kind,
                    destructive: s.destructive,
                    tables: s.tables.clone(),
                    cascades: s.cascades,
                    line: s.line,
                    start: s.start,
                    end: s.end,
                    problem: s.problem.clone(),
                })
                .collect(),
            operation: script.operation,
            destructive: script.destructive,
            fingerprint: script.fingerprint.clone(),
            bounds,
        }
    }
}

/// Whether to run the operation, given the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionVerdict {
    /// `proceed` or `deny`.
    pub step: SessionStep,
    /// 0 to proceed, otherwise 120–125.
    pub exit_code: i32,
    /// Why not, and what to do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<Denial>,
    /// What to confirm, when a confirmation was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<Challenge>,
    /// The event to append to the audit log (the intent before proceeding,
    /// or the refusal); proceed only once it is durable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<AuditEvent>,
}

/// The session's last step, as a [`SessionVerdict`] says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SessionStep {
    /// Run the operation (once the record is durable).
    Proceed,
    /// Do not run it.
    Deny,
}

/// A status (0 done, otherwise the table's code) and a JSON body: the answer
/// on 0, `{"error": {"code", "message"}}` otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// 0, 121 (an approval that does not verify) or 125 (bad request or policy).
    pub status: i32,
    /// The JSON body.
    pub body: String,
}

impl Response {
    /// An error response with `status` and `message`.
    pub fn error(status: impl Into<i32>, message: impl std::fmt::Display) -> Response {
        let status = status.into();
        let body =
            serde_json::json!({ "error": { "code": status, "message": message.to_string() } });
        Response {
            status,
            body: body.to_string(),
        }
    }

    fn ok(value: &impl Serialize) -> Response {
        match serde_json::to_string(value) {
            Ok(body) => Response { status: 0, body },
            Err(e) => Response::error(
                ExitCode::PolicyError,
                format!("cannot render the answer: {e}"),
            ),
        }
    }
}

fn bad_request(message: impl std::fmt::Display) -> Response {
    Response::error(ExitCode::PolicyError, format!("invalid request: {message}"))
}

fn parse_now(now: Option<&str>) -> Result<Timestamp, Response> {
    let text = now.ok_or_else(|| bad_request("`now` (RFC 3339) is required here"))?;
    Timestamp::parse_rfc3339(text)
        .ok_or_else(|| bad_request(format!("`now` is not an RFC 3339 time: {text:?}")))
}

/// The longest fact value read (a variable, a file, a host name). Real
/// ones are short; a huge one would be echoed in the answer several times.
pub const MAX_FACT_BYTES: usize = 64 * 1024;

fn oversized_fact(facts: &Facts) -> Option<String> {
    let values = facts
        .env
        .iter()
        .chain(facts.files.iter())
        .map(|(name, value)| (name.as_str(), value.len().max(name.len())))
        .chain(facts.hostname.as_deref().map(|h| ("hostname", h.len())))
        .chain(facts.explicit.as_deref().map(|e| ("explicit", e.len())));
    for (name, len) in values {
        if len > MAX_FACT_BYTES {
            let name: String = name.chars().take(64).collect();
            return Some(format!(
                "the fact {name:?} is {len} bytes; facts are at most {MAX_FACT_BYTES} bytes"
            ));
        }
    }
    None
}

/// Evaluates a JSON [`Request`], parsing its policy afresh; a caller with
/// many requests keeps a [`JsonApi`] instead.
pub fn evaluate_json(request: &str) -> Response {
    JsonApi::new().evaluate_json(request)
}

/// The JSON API with the state it keeps between requests: the last policy
/// it parsed. Each face owns one (the C library one per thread, the Wasm
/// module one per instance); it is `Send`, and its methods take `&mut self`,
/// so it needs no lock.
///
/// ```
/// let mut api = prodguard_core::json_api::JsonApi::new();
/// let request = r#"{"policy": "[[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\"]\n",
///                   "facts": {"env": {"APP_ENV": "production"}}, "operation": {"kind": "db.migrate"}}"#;
/// let first = api.evaluate_json(request);
/// let again = api.evaluate_json(request); // the policy is parsed once
/// assert_eq!(first, again);
/// assert_eq!(first, prodguard_core::json_api::evaluate_json(request));
///
/// // Another policy, or one that does not parse, is answered as it would
/// // be afresh; the cache never changes an answer.
/// let other = request.replace("confirm", "audit");
/// let broken = request.replace("[[rule]]", "[[rule]");
/// for request in [&other, &broken, request, &other] {
///     assert_eq!(api.evaluate_json(request), prodguard_core::json_api::evaluate_json(request));
/// }
/// assert_eq!(api.evaluate_json(&broken).status, 125);
/// ```
#[derive(Debug, Clone, Default)]
pub struct JsonApi {
    /// The texts of the last system and request policies parsed, and what
    /// they made.
    last_policy: Option<(PolicyTexts, Policy)>,
}

impl JsonApi {
    /// An API that has parsed no policy yet.
    pub fn new() -> JsonApi {
        JsonApi::default()
    }

    /// Evaluates a JSON [`Request`], reusing the last policy parsed when the
    /// request's policy text is the same.
    pub fn evaluate_json(&mut self, request: &str) -> Response {
        match evaluate(request, self) {
            Ok(evaluation) => Response::ok(&evaluation),
            Err(response) => response,
        }
    }

    /// [`audit_record_json`], which keeps no state.
    pub fn audit_record_json(&self, request: &str) -> Response {
        audit_record_json(request)
    }

    /// [`verify_approval_json`], reusing the last policy parsed when the
    /// request's policy text is the same.
    pub fn verify_approval_json(&mut self, request: &str) -> Response {
        match verify_approval(request, self) {
            Ok(claims) => Response::ok(&claims),
            Err(response) => response,
        }
    }

    /// The policy a request names: its `policy` layered over its
    /// `system_policy`, reusing the last parse when the texts are the same
    /// (parsing costs more than the decision itself).
    fn policy(&mut self, texts: PolicyTexts) -> Result<&Policy, Response> {
        if texts == (None, None) {
            return Ok(Policy::builtin_default_ref());
        }
        let entry = match self.last_policy.take() {
            Some(entry) if entry.0 == texts => entry,
            previous => match layered_policy(&texts) {
                Ok(policy) => (texts, policy),
                Err(e) => {
                    self.last_policy = previous;
                    return Err(Response::error(ExitCode::PolicyError, e));
                }
            },
        };
        Ok(&self.last_policy.insert(entry).1)
    }
}

/// A request's system policy and policy texts.
type PolicyTexts = (Option<String>, Option<String>);

/// `texts`' policy parsed, over its system policy parsed and anchored.
fn layered_policy(texts: &PolicyTexts) -> Result<Policy, String> {
    let parse = |text: &str, file: &str| Policy::parse_toml(text, file).map_err(|e| e.to_string());
    let local = match &texts.1 {
        Some(text) => Some(parse(text, "<request policy>")?),
        None => None,
    };
    let system = match &texts.0 {
        Some(text) => Some(parse(text, &trust::system_path(trust::SYSTEM_POLICY_NAME))?),
        None => None,
    };
    trust::combine(system, local).map_err(|e| e.to_string())
}

fn evaluate(request: &str, api: &mut JsonApi) -> Result<Evaluation, Response> {
    let request: Request = serde_json::from_str(request).map_err(bad_request)?;
    if let Some(problem) = oversized_fact(&request.facts) {
        return Err(bad_request(problem));
    }
    let policy = api.policy((request.system_policy, request.policy))?;
    let detection = classify_with(&request.facts, &policy.environment, request.explain);
    let script = match &request.sql {
        Some(asked) => Some(script_operation(asked, &request.operation)?),
        None => None,
    };
    let (operation, decision, sql) = match script {
        Some(script) => {
            let decided = sql::decide(
                policy,
                &detection,
                &script,
                request.operation.target.as_deref(),
            );
            let mut operation = Operation::new(script.operation.as_str());
            operation.target = request.operation.target;
            operation.fingerprint = Some(script.fingerprint.clone());
            operation.rollback = request.operation.rollback;
            let answer = SqlAnswer::new(&script, decided.bounds);
            (operation, decided.decision, Some((script, answer)))
        }
        None => {
            let kind = request.operation.kind.ok_or_else(|| {
                bad_request(
                    "`operation.kind` is required (the operation's dotted name, e.g. \
                     \"db.migrate\"), unless the request gives `sql`",
                )
            })?;
            let mut operation = Operation::new(kind);
            operation.target = request.operation.target;
            operation.fingerprint = request.operation.fingerprint;
            operation.rollback = request.operation.rollback;
            let decision = decide(policy, &detection, &operation);
            (operation, decision, None)
        }
    };
    let session = match request.evidence {
        None => None,
        Some(evidence) => {
            let now = parse_now(request.now.as_deref())?;
            let script = sql.as_ref().map(|(script, _)| script);
            Some(run_session(
                policy, &detection, operation, script, evidence, now,
            )?)
        }
    };
    Ok(Evaluation {
        detection,
        decision,
        session,
        sql: sql.map(|(_, answer)| answer),
        actor_kind: crate::detect::actor_kind(&request.facts.env, request.terminal),
        audit: policy.audit().clone(),
        promotion: policy.promotion().clone(),
        promotion_trail: policy.promotion().trail(policy.audit()).map(str::to_owned),
    })
}

/// Classifies a request's script, refusing an `operation` that says
/// something else than the script does.
fn script_operation(asked: &RequestSql, operation: &RequestOperation) -> Result<Script, Response> {
    let script = sql::classify(&asked.script, asked.dialect);
    if let Some(kind) = operation.kind.as_deref()
        && kind != script.operation.as_str()
    {
        return Err(bad_request(format!(
            "`operation.kind` is `{}` but the script's operation is `{}` (its most dangerous \
             statement): leave `operation.kind` out with `sql`, the script decides it",
            escape(&shorten(kind)),
            script.operation
        )));
    }
    if let Some(fingerprint) = operation.fingerprint.as_deref()
        && fingerprint != script.fingerprint
    {
        return Err(bad_request(format!(
            "`operation.fingerprint` is `{}` but the script's is `{}`: leave \
             `operation.fingerprint` out with `sql`, the script's is used",
            escape(&shorten(fingerprint)),
            script.fingerprint
        )));
    }
    Ok(script)
}

/// Drives a [`Session`] to proceed or deny with the host's evidence.
fn run_session(
    policy: &Policy,
    detection: &Detection,
    mut operation: Operation,
    script: Option<&Script>,
    evidence: Evidence,
    now: Timestamp,
) -> Result<SessionVerdict, Response> {
    operation.break_glass = evidence.break_glass.clone();
    let input = SessionInput {
        policy,
        detection,
        operation: operation.clone(),
        actor: evidence.actor.clone(),
        attempt_id: evidence.attempt_id.clone(),
        now,
    };
    let mut session = match script {
        Some(script) => Session::begin_sql(input, script),
        None => Session::begin(input),
    };
    let mut challenge = None;
    let mut record = None;
    // Each step is answered once, so a session ends within a handful of
    // steps; the bound only turns a state-machine bug into a refusal.
    for _ in 0..16 {
        let answered = match session.next_step() {
            Step::AcquireLock { .. } if evidence.fleet => session.lock_acquired(Ok(None)),
            Step::AcquireLock { .. } => {
                // The module takes no locks and writes nothing: running
                // without the fleet's coordination would be running unguarded.
                session.lock_acquired(Err(LockRefusal {
                    exit_code: ExitCode::PolicyError,
                    missing: format!(
                        "the policy uses fleet mode ({}), which only the host can provide",
                        policy.fleet_keys().join(", ")
                    ),
                    next_step: "take the fleet lock, append to the sink and spend approvals in \
                                the ledger in the host, and say so with evidence.fleet = true"
                        .into(),
                }))
            }
            // The host holds the lock until the outcome is appended.
            Step::LockStillHeld => session.lock_checked(Ok(())),
            Step::CheckAudit => session.audit_checked(match &evidence.audit_error {
                Some(e) => Err(AuditFailure::new(e.clone())),
                None => Ok(()),
            }),
            Step::CheckStamp { .. } => session.stamp_checked(match &evidence.stamp_error {
                Some(e) => Err(StampError::new(e.clone())),
                None => Ok(evidence.stamp.clone()),
            }),
            Step::NeedConfirmation(asked) => {
                let answer = confirmation(&asked, &operation, detection, &evidence, policy, now)?;
                challenge = Some(asked);
                session.answer_confirmation(answer)
            }
            Step::DryRun => session.dry_ran(evidence.dry_run_rows.clone()),
            Step::CheckPromotion { trail } => {
                let attempts = match (&evidence.promotion_error, &evidence.promotion_trail) {
                    (Some(e), _) => Err(e.clone()),
                    (None, Some(text)) => promotion::attempts_from_log(text),
                    (None, None) => Err("the host gave no trail (evidence.promotion_trail)".into()),
                };
                match attempts {
                    Ok(attempts) => session.promotion_read(Ok(&attempts)),
                    Err(why) => session.promotion_read(Err(TrailUnavailable::new(format!(
                        "the trail {}: {why}",
                        escape(&trail)
                    )))),
                }
            }
            Step::NeedBackup(_) => {
                session.answer_backup(match (&evidence.backup, &evidence.backup_error) {
                    (_, Some(e)) => Err(BackupError::new(e.clone())),
                    (Some(backup), None) => Ok(backup.clone()),
                    (None, None) => Err(BackupError::new(
                        "the host gave no backup evidence (evidence.backup)",
                    )),
                })
            }
            Step::Append(event) => {
                // The host appends it. An intent must be durable before the
                // operation runs (ABI.md says so); a refusal stays marked as
                // not recorded, since nothing is written yet.
                let refusal = event.kind == EventKind::Refusal;
                record = Some(event);
                session.appended(if refusal {
                    Err(AuditFailure::new("the host appends it"))
                } else {
                    Ok(())
                })
            }
            Step::Proceed => {
                return Ok(SessionVerdict {
                    step: SessionStep::Proceed,
                    exit_code: 0,
                    denial: None,
                    challenge,
                    record,
                });
            }
            Step::Deny(denial) => {
                return Ok(SessionVerdict {
                    step: SessionStep::Deny,
                    exit_code: denial.exit_code.code(),
                    denial: Some(denial),
                    challenge,
                    record,
                });
            }
            Step::Done => break,
        };
        if answered.is_err() {
            break;
        }
    }
    Err(Response::error(
        ExitCode::PolicyError,
        "the guard session did not reach a verdict; nothing may run (please report this)",
    ))
}
/// The answer to a confirmation challenge from the host's evidence: a typed
/// name or an approval token, as [`crate::confirm::route`] allows.
fn confirmation(
    asked: &Challenge,
    operation: &Operation,
    detection: &Detection,
    evidence: &Evidence,
    policy: &Policy,
    now: Timestamp,
) -> Result<ConfirmationAnswer, Response> {
    // What the host did not give, in the words of its request.
    let not_given = |mode: ConfirmMode| {
        ConfirmationAnswer::Unavailable(format!(
            "the host gave no {} (evidence.{})",
            match mode {
                ConfirmMode::Typed => "typed answer",
                ConfirmMode::Approval => "approval token",
                ConfirmMode::Either => "typed answer or approval token",
                _ => "approval token and typed answer",
            },
            match mode {
                ConfirmMode::Typed => "typed",
                ConfirmMode::Approval => "approval",
                ConfirmMode::Either => "typed or evidence.approval",
                _ => "approval and evidence.typed",
            }
        ))
    };
    let route = confirm::route(
        asked.mode,
        evidence.actor.kind,
        policy.approval.four_eyes,
        evidence.approval.is_some(),
    );
    let check_token = |offered: &ApprovalEvidence| {
        let expected = match Expected::of(operation, detection) {
            Ok(expected) => expected,
            Err(no_target) => return ConfirmationAnswer::Declined(no_target.to_string()),
        };
        let Some(ledger) = offered.ledger.as_deref() else {
            return ConfirmationAnswer::Declined(NO_LEDGER.into());
        };
        let here = approval::Here {
            requester: &evidence.actor,
            ledger,
            now,
        };
        match approval::verify(&policy.approval, &offered.token, &expected, &here) {
            Ok(claims) => ConfirmationAnswer::Confirmed(claims.confirm_evidence()),
            Err(e) => ConfirmationAnswer::Declined(format!("approval token rejected: {e}")),
        }
    };
    let person = |typed: &str| {
        confirm::from_person(confirm::typed_answer(asked, typed, None), &evidence.actor)
    };
    Ok(match (route, &evidence.approval, &evidence.typed) {
        (Route::CheckToken, Some(offered), _) => check_token(offered),
        (Route::AskPerson, _, Some(typed)) => person(typed),
        (Route::CheckTokenThenAskPerson, Some(offered), Some(typed)) => {
            confirm::both_answer(check_token(offered), || person(typed))
        }
        (
            Route::Unavailable(
                Unconfirmable::FourEyesTypedOnly | Unconfirmable::FourEyesNeedsToken,
            ),
            _,
            _,
        ) => ConfirmationAnswer::Unavailable(
            // The requester typing the name is one pair of eyes.
            "four_eyes needs an approval token from someone else (evidence.approval); a typed \
             answer from the requester does not count"
                .into(),
        ),
        (Route::Unavailable(Unconfirmable::AgentNeedsToken), _, _) => {
            ConfirmationAnswer::Unavailable(
                // An agent can type into a terminal as well as a person can.
                "an AI agent cannot confirm by typing (evidence.typed does not count): a person \
                 must approve it with `prodguard approve`, and the host pass the token as \
                 evidence.approval"
                    .into(),
            )
        }
        (Route::Unavailable(Unconfirmable::AgentTypedOnly), _, _) => {
            ConfirmationAnswer::Unavailable(
                "an AI agent cannot confirm by typing (evidence.typed does not count), and this \
                 rule accepts only typed confirmation (confirm.mode = \"typed\"): a person must \
                 run it"
                    .into(),
            )
        }
        _ => not_given(asked.mode),
    })
}

/// What `audit_record_json` takes: the envelope, the chain's previous hash
/// and the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRequest {
    /// The log's identity (the first record's choice, kept by every later one).
    pub log_id: String,
    /// This record's position, from 1.
    pub seq: u64,
    /// When it is written (RFC 3339).
    pub ts: String,
    /// The writing host.
    pub host: String,
    /// The writing process.
    pub pid: u32,
    /// The previous record's hash, or 64 zeros for the first record.
    pub prev: String,
    /// The event (as in the `record` of an evaluation's session).
    pub event: AuditEvent,
}

/// The record line `audit_record_json` made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordLine {
    /// The exact line to append, with its trailing newline.
    pub line: String,
    /// Its hash: the next record's `prev`.
    pub hash: String,
}

/// Turns an audit event into the exact line the Rust file sink writes,
/// chained to `prev`, so a host keeps the same tamper-evident log (and
/// `prodguard audit verify` checks it).
pub fn audit_record_json(request: &str) -> Response {
    let request: RecordRequest = match serde_json::from_str(request) {
        Ok(request) => request,
        Err(e) => return bad_request(e),
    };
    if request.seq == 0 {
        return bad_request("`seq` starts at 1");
    }
    if request.log_id.is_empty() {
        return bad_request("`log_id` is empty");
    }
    let lower_hex = |b: u8| matches!(b, b'0'..=b'9' | b'a'..=b'f');
    if request.prev.len() != 64 || !request.prev.bytes().all(lower_hex) {
        return bad_request(
            "`prev` must be 64 lowercase hex digits (64 zeros for the first record)",
        );
    }
    let ts = match Timestamp::parse_rfc3339(&request.ts) {
        Some(ts) => ts,
        None => return bad_request(format!("`ts` is not an RFC 3339 time: {:?}", request.ts)),
    };
    let envelope = Envelope {
        log_id: request.log_id,
        seq: request.seq,
        ts,
        host: request.host,
        pid: request.pid,
    };
    match encode_record(&envelope, &request.event, &request.prev) {
        Ok((line, hash)) => match String::from_utf8(line) {
            Ok(line) => Response::ok(&RecordLine { line, hash }),
            Err(e) => bad_request(e),
        },
        Err(e) => bad_request(e),
    }
}

/// A token offered without the ledger it would be spent in.
const NO_LEDGER: &str = "approval token rejected: the host did not say which ledger it spends \
     the token in (evidence.approval.ledger); tokens are bound to one ledger";

/// What `verify_approval_json` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The `pga2.…` token.
    pub token: String,
    /// The policy as TOML text, whose `[approval]` (approvers, `max_ttl`,
    /// `four_eyes`) judges the token; absent: the built-in default, which
    /// lists no approvers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The system policy's text, which the host vouches for (as in
    /// [`Request::system_policy`]): its approvers are the ones that count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_policy: Option<String>,
    /// The ledger the host spends the token in (as in
    /// [`ApprovalEvidence::ledger`]); absent: refused (121).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<String>,
    /// The operation at hand.
    pub operation: RequestOperation,
    /// The detected environment's name.
    pub environment: String,
    /// Its tier.
    pub tier: Tier,
    /// Who asks: four eyes refuses a token whose approver's OS account is
    /// the requester's `account`.
    pub requester: Actor,
    /// The current time (RFC 3339).
    pub now: String,
}

/// Checks an approval token for an operation with [`approval::verify`]:
/// 0 with its claims, 121 with the binding that failed, 125 for a malformed
/// request or policy. The host still spends the token's `nonce` (once, in
/// the ledger it named).
pub fn verify_approval_json(request: &str) -> Response {
    JsonApi::new().verify_approval_json(request)
}

fn verify_approval(request: &str, api: &mut JsonApi) -> Result<Claims, Response> {
    let request: ApprovalRequest = serde_json::from_str(request).map_err(bad_request)?;
    let now = parse_now(Some(&request.now))?;
    let policy = api.policy((request.system_policy, request.policy))?;
    let refuse = |message: &dyn std::fmt::Display| Response::error(ExitCode::NotConfirmed, message);
    let Some(kind) = request.operation.kind.as_deref() else {
        return Err(bad_request(
            "`operation.kind` is required (the operation the token must approve)",
        ));
    };
    let Some(target) = request.operation.target.as_deref() else {
        return Err(refuse(&approval::NoTarget));
    };
    let Some(ledger) = request.ledger.as_deref() else {
        return Err(refuse(
            &"the request does not say which ledger the host spends the token in (`ledger`); \
              tokens are bound to one ledger",
        ));
    };
    let expected = Expected {
        op: kind,
        target,
        env: &request.environment,
        tier: request.tier,
        fingerprint: request.operation.fingerprint.as_deref(),
    };
    let here = approval::Here {
        requester: &request.requester,
        ledger,
        now,
    };
    approval::verify(&policy.approval, &request.token, &expected, &here).map_err(|e| refuse(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::{Value, json};

    const NOW: &str = "2026-11-27T10:00:00Z";

    fn evaluate(request: Value) -> Value {
        let text = request.to_string();
        let response = evaluate_json(&text);
        assert_eq!(response.status, 0, "{}", response.body);
        // The answer's bytes are the ones serde_json writes.
        let evaluation = super::evaluate(&text, &mut JsonApi::new()).unwrap();
        assert_eq!(response.body, serde_json::to_string(&evaluation).unwrap());
        serde_json::from_str(&response.body).unwrap()
    }

    #[test]
    fn answers_with_any_text_in_them_are_written_as_serde_json_writes_them() {
        let odd = [
            "prod\"uction\\",
            "tab\tnew\nline\r\u{1}\u{1f}\u{7f}",
            "ünï 日本 \u{1F600}",
            "",
            " ",
        ];
        for (i, value) in odd.iter().enumerate() {
            for explain in [false, true] {
                let answer = evaluate(json!({
                    "facts": {
                        "env": {"APP_ENV": value, "NODE_ENV": "production", "CI": "true"},
                        "files": {"/etc/prodguard/environment": format!("{value}\n")},
                        "hostname": format!("db-{value}"),
                    },
                    "operation": {"kind": format!("db.{i}\"x"), "target": value},
                    "explain": explain,
                }));
                assert!(answer["decision"]["reasons"].is_array());
            }
        }
    }

    fn attempt(policy: Option<&str>, evidence: Value) -> Value {
        let mut evidence = evidence;
        if evidence.get("actor").is_none() {
            evidence["actor"] = json!({"user": "alice", "kind": "human"});
        }
        evidence["attempt_id"] = json!("a-1");
        let answer = evaluate(json!({
            "facts": {"env": {"APP_ENV": "production"}},
            "policy": policy,
            "operation": {"kind": "db.migrate", "target": "orders"},
            "evidence": evidence,
            "now": NOW,
        }));
        answer["session"].clone()
    }

    const BACKUP_POLICY: &str = "[[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\n\
        require = [\"confirm\", \"backup\", \"audit\"]\nbackup = { provider = \"program\" }\n";

    const SYSTEM_POLICY: &str = "[[rule]]\nname = \"system\"\noperations = [\"*\"]\n\
        tiers = [\"production\", \"unknown\"]\nrequire = [\"confirm\", \"audit\"]\n";

    #[test]
    fn a_hosts_policy_is_layered_over_the_system_policy_it_vouches_for() {
        let mine = "[[rule]]\nname = \"mine\"\noperations = [\"nothing\"]\ntiers = [\"local\"]\n\
            require = [\"audit\"]\n";
        let request = |policy: &str, evidence: Value| {
            json!({
                "facts": {"env": {"APP_ENV": "production"}},
                "system_policy": SYSTEM_POLICY,
                "policy": policy,
                "operation": {"kind": "db.migrate", "target": "orders"},
                "evidence": evidence,
                "now": NOW,
            })
        };
        // A rule that matches nothing takes nothing away from the system's.
        let mut api = JsonApi::new();
        let evidence = json!({"actor": {"user": "carol", "kind": "human"}, "attempt_id": "a-1"});
        let answer = api.evaluate_json(&request(mine, evidence).to_string());
        assert_eq!(answer.status, 0, "{}", answer.body);
        let answer: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(answer["decision"]["exit_code"], 121, "{answer}");
        let session = &answer["session"];
        assert_eq!(session["record"]["kind"], "refusal");
        let sources = session["record"]["decision"]["policy"].as_array().unwrap();
        assert_eq!(sources[0]["path"], "/etc/prodguard/policy.toml");
        assert_eq!(sources[0]["system"], true);
        assert_eq!(sources[1]["path"], "<request policy>");
        assert!(
            session["denial"].get("note").is_none(),
            "anchored: {session}"
        );

        // One that would loosen it is refused.
        let loose = format!("[environment]\nunknown = \"development\"\n\n{mine}");
        let answer = api.evaluate_json(&request(&loose, Value::Null).to_string());
        assert_eq!(answer.status, 125, "{}", answer.body);
        assert!(
            answer.body.contains("only the system policy"),
            "{}",
            answer.body
        );

        // Without a system policy, a refusal says the rules are unprotected.
        let plain = attempt(Some(mine), json!({}));
        assert_eq!(
            plain["exit_code"], 0,
            "the attack works without an anchor: {plain}"
        );
        let plain = attempt(None, json!({}));
        assert!(
            plain["denial"]["note"]
                .as_str()
                .unwrap()
                .contains("unprotected"),
            "{plain}"
        );
    }

    #[test]
    fn without_evidence_there_is_no_session() {
        let answer = evaluate(json!({"operation": {"kind": "db.migrate"}}));
        assert!(answer.get("session").is_none(), "{answer}");
        assert_eq!(answer["decision"]["exit_code"], 121);
    }

    #[test]
    fn evidence_needs_now() {
        let response = evaluate_json(
            &json!({"operation": {"kind": "db.migrate"},
                    "evidence": {"actor": {"user": "a", "kind": "human"}, "attempt_id": "x"}})
            .to_string(),
        );
        assert_eq!(response.status, 125);
        assert!(response.body.contains("now"), "{}", response.body);
    }

    #[test]
    fn a_typed_name_confirms_and_the_intent_is_to_be_recorded() {
        let denied = attempt(None, json!({}));
        assert_eq!(denied["step"], "deny");
        assert_eq!(denied["exit_code"], 121);
        assert_eq!(denied["challenge"]["expected"], "orders");
        assert_eq!(denied["record"]["kind"], "refusal");
        assert_eq!(
            denied["denial"]["recorded"], false,
            "the host has not written it yet"
        );

        let wrong = attempt(None, json!({"typed": "order"}));
        assert_eq!(wrong["exit_code"], 121, "{wrong}");

        let session = attempt(None, json!({"typed": " orders\n"}));
        assert_eq!(session["step"], "proceed", "{session}");
        assert_eq!(session["exit_code"], 0);
        assert_eq!(session["record"]["kind"], "intent");
        assert_eq!(session["record"]["attempt_id"], "a-1");
        assert_eq!(session["record"]["confirm"]["method"], "typed");
        assert_eq!(session["record"]["confirm"]["approver"], "alice");
    }

    #[test]
    fn a_fleet_policy_needs_a_host_that_provides_the_fleet() {
        let fleet = "[fleet]\nlock = \"postgresql://db/fleet\"\n\n[audit]\nsink = \"postgresql://db/fleet\"\n\
                     [[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\"]\n";
        let refused = attempt(Some(fleet), json!({"typed": "orders"}));
        assert_eq!(refused["step"], "deny", "{refused}");
        assert_eq!(refused["exit_code"], 125);
        let missing = refused["denial"]["missing"].as_str().unwrap();
        assert!(missing.contains("[audit] sink, [fleet] lock"), "{missing}");
        assert!(
            refused.get("record").is_none_or(|r| r.is_null()),
            "{refused}"
        );
        let declared = attempt(Some(fleet), json!({"typed": "orders", "fleet": true}));
        assert_eq!(declared["step"], "proceed", "{declared}");
        // Where the policy requires nothing, the module needs no fleet.
        let evaluation = evaluate(json!({
            "facts": {"env": {"APP_ENV": "development"}},
            "policy": fleet,
            "operation": {"kind": "db.migrate", "target": "orders"},
            "evidence": {"actor": {"user": "alice", "kind": "human"}, "attempt_id": "a-2"},
            "now": NOW,
        }));
        assert_eq!(evaluation["session"]["step"], "proceed", "{evaluation}");
        // Without fleet keys the flag changes nothing.
        assert_eq!(
            attempt(None, json!({"typed": "orders", "fleet": true}))["step"],
            "proceed"
        );
    }

    #[test]
    fn every_unmet_requirement_refuses_with_its_code() {
        let typed = json!({"typed": "orders"});
        let mut no_backup = typed.clone();
        assert_eq!(
            attempt(Some(BACKUP_POLICY), no_backup.clone())["exit_code"],
            122
        );
        no_backup["backup_error"] = json!("disk full");
        let failed = attempt(Some(BACKUP_POLICY), no_backup);
        assert_eq!(failed["exit_code"], 122);
        assert!(
            failed["denial"]["missing"]
                .as_str()
                .unwrap()
                .contains("disk full")
        );

        let mut with_backup = typed.clone();
        with_backup["backup"] = json!({"location": "/b/orders.bak", "sha256": "ab".repeat(32),
            "bytes": 4096, "created": "2026-11-27T09:59:00Z", "verified": true});
        let session = attempt(Some(BACKUP_POLICY), with_backup.clone());
        assert_eq!(session["step"], "proceed", "{session}");
        assert_eq!(session["record"]["backup"]["location"], "/b/orders.bak");

        let mut stale = with_backup;
        stale["backup"]["bytes"] = json!(0);
        assert_eq!(attempt(Some(BACKUP_POLICY), stale)["exit_code"], 122);

        let mut audit = typed.clone();
        audit["audit_error"] = json!("read-only file system");
        assert_eq!(attempt(None, audit)["exit_code"], 123);

        let mut stamp = typed.clone();
        stamp["stamp"] = json!({"environment": "staging", "tier": "staging"});
        assert_eq!(attempt(None, stamp)["exit_code"], 124);
        let mut unreadable = typed;
        unreadable["stamp_error"] = json!("permission denied");
        assert_ne!(attempt(None, unreadable)["step"], "proceed");
    }

    const LEDGER: &str = "file://host-1/var/log/prodguard/audit.jsonl";

    /// Bob (OS account `bob`) and alice (OS account `alice`) may approve.
    fn approvers() -> String {
        let listed = |name: &str, seed: u8| {
            format!(
                "{name} = {{ key = \"{}\", user = \"{name}\" }}",
                approval::ApproverKey::from_secret(name, [seed; 32])
                    .unwrap()
                    .public_key_text()
            )
        };
        format!(
            "approvers = {{ {}, {} }}\n",
            listed("bob", 7),
            listed("alice", 9)
        )
    }

    fn approval_policy(extra: &str) -> String {
        format!(
            "[approval]\n{}{extra}[[rule]]\noperations = [\"db.*\"]\n\
             tiers = [\"production\"]\nrequire = [\"confirm\"]\n",
            approvers()
        )
    }

    /// A token for db.migrate on orders, signed with key `seed` in `approver`'s name.
    fn token(seed: u8, approver: &str) -> String {
        let now = Timestamp::parse_rfc3339(NOW).unwrap();
        approval::issue(
            &approval::ApproverKey::from_secret(approver, [seed; 32]).unwrap(),
            &Claims {
                v: 2,
                op: "db.migrate".into(),
                target: "orders".into(),
                env: "production".into(),
                tier: Tier::Production,
                fingerprint: None,
                approver: approver.into(),
                approver_kind: None,
                iat: now.plus_seconds(-60),
                exp: now.plus_seconds(600),
                nonce: "n-1".into(),
                ledger: LEDGER.into(),
                max_rows: None,
            },
        )
    }

    /// An attempt by alice (OS account `alice`) under `policy`.
    fn attempt_as_alice(policy: &str, evidence: Value) -> Value {
        let mut evidence = evidence;
        evidence["actor"] = json!({"user": "alice", "kind": "human", "account": "alice"});
        evidence["attempt_id"] = json!("a-1");
        evaluate(json!({
            "facts": {"env": {"APP_ENV": "production"}},
            "policy": policy,
            "operation": {"kind": "db.migrate", "target": "orders"},
            "evidence": evidence,
            "now": NOW,
        }))["session"]
            .clone()
    }

    fn missing(session: &Value) -> String {
        session["denial"]["missing"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    #[test]
    fn approval_tokens_confirm_only_with_a_listed_key_and_the_hosts_ledger() {
        let policy = approval_policy("");
        let good = json!({"approval": {"token": token(7, "bob"), "ledger": LEDGER}});
        let session = attempt_as_alice(&policy, good);
        assert_eq!(session["step"], "proceed", "{session}");
        assert_eq!(session["record"]["confirm"]["token_id"], "n-1");
        assert_eq!(session["record"]["confirm"]["approver"], "bob");

        for (evidence, needle) in [
            // Signed in bob's name with another key.
            (
                json!({"token": token(8, "bob"), "ledger": LEDGER}),
                "forged",
            ),
            // Signed by someone the policy does not list.
            (
                json!({"token": token(8, "eve"), "ledger": LEDGER}),
                "not in the policy's [approval] approvers",
            ),
            // The host spends elsewhere, or does not say where.
            (
                json!({"token": token(7, "bob"), "ledger": "file://host-1/tmp/fresh.jsonl"}),
                "ledger",
            ),
            (
                json!({"token": token(7, "bob")}),
                "evidence.approval.ledger",
            ),
            // 0.1's tokens.
            (json!({"token": "pga1.e30.00", "ledger": LEDGER}), "pga1"),
        ] {
            let refused = attempt_as_alice(&policy, json!({"approval": evidence}));
            assert_eq!(refused["exit_code"], 121, "{refused}");
            assert!(missing(&refused).contains(needle), "{needle}: {refused}");
        }
        // The key that verified a token cannot be sent along to verify another.
        let old_form = evaluate_json(
            &json!({"policy": policy, "facts": {"env": {"APP_ENV": "production"}},
                    "operation": {"kind": "db.migrate", "target": "orders"}, "now": NOW,
                    "evidence": {"actor": {"user": "alice", "kind": "human"}, "attempt_id": "x",
                                 "approval": {"token": token(7, "bob"), "key": "00"}}})
            .to_string(),
        );
        assert_eq!(old_form.status, 125, "{}", old_form.body);

        let request = |token: String, ledger: Option<&str>, account: Option<&str>| {
            json!({"token": token, "policy": approval_policy("four_eyes = true\n"),
                   "ledger": ledger,
                   "operation": {"kind": "db.migrate", "target": "orders"},
                   "environment": "production", "tier": "production",
                   "requester": {"user": "someone", "kind": "human", "account": account},
                   "now": NOW})
            .to_string()
        };
        let ok = verify_approval_json(&request(token(7, "bob"), Some(LEDGER), Some("alice")));
        assert_eq!(ok.status, 0, "{}", ok.body);
        assert!(ok.body.contains("\"nonce\":\"n-1\""));
        for (token, ledger, account, needle) in [
            (token(9, "alice"), Some(LEDGER), Some("alice"), "four_eyes"),
            (token(7, "bob"), Some(LEDGER), None, "unknown"),
            (token(7, "bob"), None, Some("alice"), "ledger"),
            (
                token(7, "bob"),
                Some("postgresql://db/x"),
                Some("alice"),
                "ledger",
            ),
            ("pga1.x.y".into(), Some(LEDGER), Some("alice"), "pga1"),
        ] {
            let refused = verify_approval_json(&request(token, ledger, account));
            assert_eq!(refused.status, 121, "{needle}: {}", refused.body);
            assert!(refused.body.contains(needle), "{needle}: {}", refused.body);
        }
        assert_eq!(verify_approval_json("{}").status, 125);
    }

    #[test]
    fn a_token_living_longer_than_the_policys_max_ttl_does_not_confirm() {
        // The token lives 11 minutes; the policy lets tokens live 10.
        let offered = json!({"approval": {"token": token(7, "bob"), "ledger": LEDGER}});
        let policy = approval_policy("max_ttl = \"10m\"\n");
        let refused = attempt_as_alice(&policy, offered.clone());
        assert_eq!(refused["exit_code"], 121, "{refused}");
        assert!(missing(&refused).contains("max_ttl = 10m"), "{refused}");
        let lenient = policy.replace("10m", "11m");
        assert_eq!(attempt_as_alice(&lenient, offered)["step"], "proceed");
    }

    /// A staging trail as its writer wrote it: `db.migrate` with
    /// fingerprint `fp1`, intent then outcome `status`, on 2026-11-20.
    fn staging_trail(status: &str) -> String {
        let op = crate::audit::OperationRecord {
            kind: "db.migrate".into(),
            target: Some("orders".into()),
            env: "staging".into(),
            tier: Tier::Staging,
            decided_by: "env:APP_ENV".into(),
            fingerprint: Some("fp1".into()),
            batch: Vec::new(),
        };
        let mut intent = AuditEvent::new(EventKind::Intent);
        intent.attempt_id = Some("s1".into());
        intent.op = Some(op);
        let mut outcome = intent.clone();
        outcome.kind = EventKind::Outcome;
        outcome.outcome = Some(crate::audit::OutcomeRecord {
            status: status.into(),
            duration_ms: 5,
            error: None,
            exit_code: None,
            rows: None,
            lock_lost: None,
        });
        let (mut prev, mut text) = (crate::audit::GENESIS_PREV.to_owned(), String::new());
        for (seq, event) in [(1, intent), (2, outcome)] {
            let envelope = Envelope {
                log_id: "staging-log".into(),
                seq,
                ts: Timestamp::parse_rfc3339("2026-11-20T10:00:00Z").unwrap(),
                host: "st-1".into(),
                pid: 7,
            };
            let (line, hash) = encode_record(&envelope, &event, &prev).unwrap();
            text.push_str(std::str::from_utf8(&line).unwrap());
            prev = hash;
        }
        text
    }

    #[test]
    fn staged_evidence_is_the_hosts_trail_verified_by_the_core() {
        let policy = "[promotion]\nfrom = \"staging\"\nstaging_log = \"/srv/staging.jsonl\"\n\
            [[rule]]\nname = \"staged\"\noperations = [\"db.migrate\"]\ntiers = [\"production\"]\n\
            require = [\"staged\"]\n";
        let session = |fingerprint: Option<&str>, evidence: Value| {
            let mut evidence = evidence;
            evidence["actor"] = json!({"user": "alice", "kind": "human"});
            evidence["attempt_id"] = json!("p-1");
            evaluate(json!({
                "facts": {"env": {"APP_ENV": "production"}},
                "policy": policy,
                "operation": {"kind": "db.migrate", "target": "orders", "fingerprint": fingerprint},
                "evidence": evidence,
                "now": NOW,
            }))["session"]
                .clone()
        };
        // The answer names the trail to hand over: the core's rule, not the host's.
        let asked = evaluate(json!({"policy": policy, "operation": {"kind": "db.migrate"}}));
        assert_eq!(asked["promotion_trail"], "/srv/staging.jsonl", "{asked}");
        let ok = session(Some("fp1"), json!({"promotion_trail": staging_trail("ok")}));
        assert_eq!(ok["step"], "proceed", "{ok}");
        let run = &ok["record"]["promotion"]["runs"][0];
        assert_eq!(run["outcome"]["log_id"], "staging-log", "{ok}");
        assert_eq!(run["outcome"]["seq"], 2, "{ok}");
        // A failure edited into a success does not verify: no evidence (123).
        let forged = staging_trail("failed").replace("\"failed\"", "\"ok\"");
        let refused = session(Some("fp1"), json!({"promotion_trail": forged}));
        assert_eq!(refused["exit_code"], 123, "{refused}");
        assert!(
            missing(&refused).contains("/srv/staging.jsonl: line 2 does not verify"),
            "{refused}"
        );
        let failed = session(
            Some("fp1"),
            json!({"promotion_trail": staging_trail("failed")}),
        );
        assert_eq!(failed["exit_code"], 120, "{failed}");
        for (fingerprint, evidence, code) in [
            (Some("fp1"), json!({}), 123),
            (Some("fp1"), json!({"promotion_error": "gone"}), 123),
            (None, json!({"promotion_trail": staging_trail("ok")}), 125),
        ] {
            let refused = session(fingerprint, evidence);
            assert_eq!(refused["exit_code"], code, "{refused}");
        }
    }

    #[test]
    fn record_lines_chain_like_the_file_sink() {
        let mut prev = crate::audit::GENESIS_PREV.to_owned();
        let mut verifier = crate::audit::ChainVerifier::new();
        for (seq, event) in [
            json!({"kind": "note", "message": "one"}),
            json!({"kind": "outcome", "attempt_id": "a-1", "outcome": {"status": "ok", "duration_ms": 3}}),
        ]
        .into_iter()
        .enumerate()
        {
            let response = audit_record_json(
                &json!({"log_id": "L", "seq": seq + 1, "ts": NOW, "host": "h", "pid": 1,
                        "prev": prev, "event": event})
                .to_string(),
            );
            assert_eq!(response.status, 0, "{}", response.body);
            let answer: Value = serde_json::from_str(&response.body).unwrap();
            let line = answer["line"].as_str().unwrap();
            assert!(line.ends_with('\n'));
            let link = verifier.push(line.as_bytes()).unwrap();
            assert_eq!(link.hash, answer["hash"].as_str().unwrap());
            prev = link.hash;
        }
        for bad in [
            json!({"log_id": "L", "seq": 0, "ts": NOW, "host": "h", "pid": 1, "prev": prev, "event": {"kind": "note"}}),
            json!({"log_id": "L", "seq": 3, "ts": NOW, "host": "h", "pid": 1, "prev": "ABC", "event": {"kind": "note"}}),
            json!({"log_id": "L", "seq": 3, "ts": "yesterday", "host": "h", "pid": 1, "prev": prev, "event": {"kind": "note"}}),
            json!({"log_id": "L", "seq": 3, "ts": NOW, "host": "h", "pid": 1, "prev": prev, "event": {"kind": "gossip"}}),
        ] {
            assert_eq!(audit_record_json(&bad.to_string()).status, 125, "{bad}");
        }
    }

    #[test]
    fn oversized_facts_are_refused() {
        let big = "p".repeat(MAX_FACT_BYTES + 1);
        for facts in [
            json!({"env": {"APP_ENV": big}}),
            json!({"files": {"/etc/prodguard/environment": big}}),
            json!({"hostname": big}),
        ] {
            let response =
                evaluate_json(&json!({"facts": facts, "operation": {"kind": "x"}}).to_string());
            assert_eq!(response.status, 125);
            assert!(
                response.body.contains("at most 65536 bytes"),
                "{}",
                response.body
            );
        }
        let fits = "p".repeat(MAX_FACT_BYTES);
        let response = evaluate_json(
            &json!({"facts": {"env": {"APP_ENV": fits}}, "operation": {"kind": "x"}}).to_string(),
        );
        assert_eq!(response.status, 0);
    }

    #[test]
    fn four_eyes_refuses_a_typed_confirmation_as_the_guard_does() {
        for mode in ["typed", "either"] {
            let policy = format!(
                "[approval]\nfour_eyes = true\n[[rule]]\noperations = [\"db.*\"]\n\
                 tiers = [\"production\"]\nrequire = [\"confirm\"]\nconfirm = {{ mode = \"{mode}\" }}\n"
            );
            let session = attempt(Some(&policy), json!({"typed": "orders"}));
            assert_eq!(session["exit_code"], 121, "{mode}: {session}");
            assert!(
                session["denial"]["missing"]
                    .as_str()
                    .unwrap()
                    .contains("four_eyes"),
                "{session}"
            );
        }
        // Someone else's token still confirms under four eyes; alice's own
        // does not, whatever label her run gives itself.
        let policy = approval_policy("four_eyes = true\n");
        let session = attempt_as_alice(
            &policy,
            json!({"approval": {"token": token(7, "bob"), "ledger": LEDGER}}),
        );
        assert_eq!(session["step"], "proceed", "{session}");
        assert_eq!(session["record"]["confirm"]["approver"], "bob");
        let own = attempt_as_alice(
            &policy,
            json!({"approval": {"token": token(9, "alice"), "ledger": LEDGER}}),
        );
        assert_eq!(own["exit_code"], 121, "{own}");
        assert!(missing(&own).contains("OS account `alice`"), "{own}");
    }

    #[test]
    fn an_agents_typed_evidence_does_not_confirm_and_it_cannot_break_glass() {
        let agent = json!({"user": "alice", "kind": "agent", "account": "alice"});
        for mode in ["typed", "either"] {
            let policy = format!(
                "[approval]\nbreak_glass_users = [\"alice\"]\n[[rule]]\noperations = [\"db.*\"]\n\
                 tiers = [\"production\"]\nrequire = [\"confirm\"]\nconfirm = {{ mode = \"{mode}\" }}\n\
                 break_glass = true\n"
            );
            let session = attempt(Some(&policy), json!({"actor": agent, "typed": "orders"}));
            assert_eq!(session["exit_code"], 121, "{mode}: {session}");
            assert_eq!(session["record"]["kind"], "refusal", "{session}");
            assert!(session["record"]["confirm"].is_null(), "{session}");
            let missing = session["denial"]["missing"].as_str().unwrap();
            assert!(
                missing.contains("AI agent cannot confirm by typing"),
                "{missing}"
            );
            if mode == "either" {
                assert!(missing.contains("prodguard approve"), "{missing}");
            }
            let reason = "INC-7: orders locked, restoring service";
            let session = attempt(
                Some(&policy),
                json!({"actor": agent, "break_glass": reason}),
            );
            assert_eq!(session["exit_code"], 121, "{mode}: {session}");
            assert!(
                session["denial"]["missing"]
                    .as_str()
                    .unwrap()
                    .contains("AI agent"),
                "{session}"
            );
            // The same account as a person: it may.
            let person = json!({"user": "al", "kind": "human", "account": "alice"});
            let session = attempt(
                Some(&policy),
                json!({"actor": person, "break_glass": reason}),
            );
            assert_eq!(session["step"], "proceed", "{session}");
            assert_eq!(session["record"]["confirm"]["approver"], "alice");
        }
        // A person's approval token confirms an agent's run.
        let session = attempt(
            Some(&approval_policy("")),
            json!({"actor": agent, "approval": {"token": token(7, "bob"), "ledger": LEDGER}}),
        );
        assert_eq!(session["step"], "proceed", "{session}");
        assert_eq!(session["record"]["confirm"]["method"], "approval");
    }

    #[test]
    fn bad_requests_and_policies_are_125_with_a_message() {
        for (request, needle) in [
            ("", "invalid request"),
            ("{\"operation\": {\"kind\": 3}}", "invalid request"),
            (
                "{\"operation\": {\"kind\": \"db.migrate\"}, \"extra\": 1}",
                "unknown field",
            ),
            (
                "{\"operation\": {\"kind\": \"db.migrate\"}, \"policy\": \"[[rule]]\\nrequre = 1\"}",
                "2:1",
            ),
        ] {
            let response = evaluate_json(request);
            assert_eq!(response.status, 125, "{request}");
            let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
            assert!(
                body["error"]["message"].as_str().unwrap().contains(needle),
                "{request}: {body}"
            );
        }
    }

    const SQL_POLICY: &str = "[[rule]]\nname = \"bulk\"\noperations = [\"db.delete.*\"]\n\
        tiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\nmax_rows = 500\n\n\
        [[rule]]\nname = \"schema\"\noperations = [\"db.alter.destructive\"]\n\
        tiers = [\"production\"]\nrequire = [\"backup\", \"audit\"]\nbackup = { provider = \"program\" }\n";

    const SQL_SCRIPT: &str = "ALTER TABLE orders DROP COLUMN note;\n-- then\nDELETE FROM carts;";

    fn sql_request(operation: Value, evidence: Option<Value>) -> Value {
        let mut request = json!({
            "facts": {"env": {"APP_ENV": "production"}},
            "policy": SQL_POLICY,
            "sql": {"script": SQL_SCRIPT, "dialect": "postgres"},
            "operation": operation,
        });
        if let Some(evidence) = evidence {
            request["evidence"] = evidence;
            request["now"] = json!(NOW);
        }
        request
    }

    #[test]
    fn an_sql_script_is_the_operation_and_its_decision_is_the_scripts() {
        let answer = evaluate(sql_request(json!({"target": "shop"}), None));
        let sql = &answer["sql"];
        assert_eq!(sql["dialect"], "postgres");
        assert_eq!(sql["operation"], "db.delete.all");
        assert_eq!(sql["destructive"], true);
        let script = crate::sql::classify(SQL_SCRIPT, Dialect::Postgres);
        assert_eq!(sql["fingerprint"], script.fingerprint.as_str());
        let statements = sql["statements"].as_array().unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(
            statements[1],
            json!({"index": 1, "kind": "db.delete.all", "destructive": true, "tables": ["carts"],
                   "cascades": false, "line": 3, "start": 45, "end": 62})
        );
        assert_eq!(&SQL_SCRIPT[45..62], "DELETE FROM carts");
        assert_eq!(statements[0]["kind"], "db.alter.destructive");
        assert_eq!(
            sql["bounds"],
            json!([{"index": 0, "confirm": false},
                   {"index": 1, "max_rows": 500, "max_rows_rule": "bulk", "confirm": true}])
        );
        // Every statement's rules apply: the ALTER's backup too.
        let kinds: Vec<&str> = answer["decision"]["requirements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["confirm", "backup", "audit"]);
        assert_eq!(answer["decision"]["exit_code"], 121);
        // The kind and fingerprint may be given when they are the script's.
        let same = evaluate(sql_request(
            json!({"kind": "db.delete.all", "target": "shop", "fingerprint": script.fingerprint}),
            None,
        ));
        assert_eq!(same, answer);
        // Without a target, and without `operation` at all.
        let mut bare = sql_request(json!({}), None);
        bare.as_object_mut().unwrap().remove("operation");
        assert_eq!(evaluate(bare)["sql"], answer["sql"]);
    }

    #[test]
    fn an_sql_session_runs_for_the_script_and_binds_its_fingerprint() {
        let evidence = |typed: Option<&str>| {
            let mut evidence =
                json!({"actor": {"user": "alice", "kind": "human"}, "attempt_id": "a-1"});
            if let Some(typed) = typed {
                evidence["typed"] = json!(typed);
            }
            evidence
        };
        // Confirmed, but the ALTER's rule also asks for a backup.
        let answer = evaluate(sql_request(
            json!({"target": "shop"}),
            Some(evidence(Some("shop"))),
        ));
        let session = &answer["session"];
        assert_eq!(session["step"], "deny", "{session}");
        assert_eq!(session["exit_code"], 122, "{session}");
        let mut with_backup = evidence(Some("shop"));
        with_backup["backup"] = json!({"location": "/b/shop.dump", "sha256": "ab".repeat(32),
            "bytes": 10, "created": NOW, "verified": true, "verification": "pg_restore --list"});
        let answer = evaluate(sql_request(json!({"target": "shop"}), Some(with_backup)));
        let session = &answer["session"];
        assert_eq!(session["step"], "proceed", "{session}");
        let op = &session["record"]["op"];
        assert_eq!(op["kind"], "db.delete.all");
        assert_eq!(op["target"], "shop");
        assert_eq!(op["fingerprint"], answer["sql"]["fingerprint"]);
    }

    #[test]
    fn a_hosts_dry_run_rows_bound_the_script_and_are_shown_before_the_question() {
        let evidence = |rows: Option<Value>| {
            let mut evidence =
                json!({"actor": {"user": "alice", "kind": "human"}, "attempt_id": "a-1"});
            if let Some(rows) = rows {
                evidence["dry_run_rows"] = rows;
            }
            evidence
        };
        // Over the delete's max_rows (500): refused before anyone is asked.
        let answer = evaluate(sql_request(
            json!({"target": "shop"}),
            Some(evidence(Some(json!([0, 501])))),
        ));
        let session = &answer["session"];
        assert_eq!(session["exit_code"], 120, "{session}");
        assert_eq!(session["denial"]["rows"], json!([0, 501]));
        assert!(session["challenge"].is_null(), "{session}");
        let reason = session["record"]["decision"]["reasons"][0]
            .as_str()
            .unwrap();
        assert!(
            reason.contains(
                "db.delete.all on carts) affected 501 rows; rule `bulk` allows at most 500"
            ),
            "{reason}"
        );
        assert_eq!(session["record"]["sql"]["dry_run_rows"], json!([0, 501]));
        // Within it: the challenge lists what the person confirms.
        let answer = evaluate(sql_request(
            json!({"target": "shop"}),
            Some(evidence(Some(json!([0, 42])))),
        ));
        let session = &answer["session"];
        assert_eq!(session["exit_code"], 121, "{session}");
        assert_eq!(
            session["challenge"]["consequences"],
            json!([
                "statement 0 (line 1, db.alter.destructive on orders): 0 rows",
                "statement 1 (line 3, db.delete.all on carts): 42 rows"
            ])
        );
        // Without rows, the confirmation is asked with nothing counted.
        let answer = evaluate(sql_request(json!({"target": "shop"}), Some(evidence(None))));
        assert_eq!(
            answer["session"]["challenge"]["consequences"][1],
            "statement 1 (line 3, db.delete.all on carts): rows not counted"
        );
    }

    #[test]
    fn an_sql_request_that_disagrees_with_its_script_is_125() {
        for (request, needle) in [
            (
                sql_request(json!({"kind": "db.migrate", "target": "shop"}), None),
                "the script's operation is `db.delete.all`",
            ),
            (
                sql_request(json!({"fingerprint": "sha256:ab"}), None),
                "`operation.fingerprint` is `sha256:ab` but the script's is",
            ),
            (
                json!({"sql": {"script": "SELECT 1"}}),
                "missing field `dialect`",
            ),
            (
                json!({"sql": {"script": "SELECT 1", "dialect": "oracle"}}),
                "unknown variant `oracle`",
            ),
            (
                json!({"sql": {"script": "SELECT 1", "dialect": "sqlite", "limit": 1}}),
                "unknown field `limit`",
            ),
            (
                json!({"operation": {"target": "shop"}}),
                "`operation.kind` is required",
            ),
            (json!({}), "`operation.kind` is required"),
        ] {
            let response = evaluate_json(&request.to_string());
            assert_eq!(response.status, 125, "{request}");
            let body: Value = serde_json::from_str(&response.body).unwrap();
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{request}: {message}");
        }
        let approval = json!({"token": "pga2.x.y", "operation": {"target": "shop"},
            "environment": "production", "tier": "production",
            "requester": {"user": "alice", "kind": "human"}, "now": NOW});
        let response = verify_approval_json(&approval.to_string());
        assert_eq!(response.status, 125, "{}", response.body);
        assert!(response.body.contains("`operation.kind` is required"));
    }
}
