//! The requests and answers of ABI.md as Rust types.
//!
//! Requests serialise to exactly the JSON ABI.md documents (absent options
//! are left out). Answers ignore fields they do not know, as ABI.md asks of
//! hosts, so a module of a later minor version still parses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Detection, Tier};

/// The marker file the built-in default policy reads.
pub const DEFAULT_MARKER_FILE: &str = "/etc/prodguard/environment";

/// The longest fact value (a variable's name or value, a file) the module
/// reads, in bytes; [`Facts::gather`] keeps the facts it takes within it.
pub const MAX_FACT_BYTES: usize = 64 * 1024;

/// The `prev` of a log's first record: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The current time from the system clock, as the RFC 3339 text ABI.md's
/// `now` and audit `ts` fields take (UTC, microseconds).
///
/// ```
/// let now = prodguard_wasmtime::now_rfc3339();
/// assert!(now.ends_with('Z'));
/// ```
pub fn now_rfc3339() -> String {
    prodguard::facts::now().to_rfc3339()
}

/// What detection looks at: the request's `facts`.
///
/// Build it by hand (tests, a host that knows better) or take the real
/// process's with [`Facts::gather`].
///
/// ```
/// use prodguard_wasmtime::Facts;
///
/// let mut facts = Facts::default();
/// facts.env.insert("APP_ENV".into(), "production".into());
/// assert_eq!(serde_json::to_value(&facts).unwrap()["env"]["APP_ENV"], "production");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Facts {
    /// Environment variables (name → value); a name not listed is unset.
    pub env: BTreeMap<String, String>,
    /// File contents by path; only the policy's marker file is looked at.
    pub files: BTreeMap<String, String>,
    /// The host's name.
    pub hostname: Option<String>,
    /// An environment the program names itself (the strongest signal).
    pub explicit: Option<String>,
}

impl Facts {
    /// The facts of this process, as the Rust runtime reads them: every
    /// environment variable (names and values that are not UTF-8 are kept
    /// lossily, which can only make the answer more cautious), the content
    /// of `marker_file` if it exists (at most 4 KiB; an unreadable marker
    /// counts as an unknown environment), and the host name.
    ///
    /// Facts over [`MAX_FACT_BYTES`] (which the module refuses) are kept
    /// failing closed: a variable with such a name is left out (no
    /// convention has one), and such a value is replaced by a short note
    /// that names no environment, so it can only make the answer more
    /// cautious, never less.
    ///
    /// The request carries the whole environment: a host that logs
    /// requests should filter it.
    ///
    /// ```
    /// let facts = prodguard_wasmtime::Facts::gather("/nonexistent/marker");
    /// assert!(facts.files.is_empty());
    /// assert!(facts.explicit.is_none());
    /// ```
    pub fn gather(marker_file: &str) -> Facts {
        let facts = prodguard::facts::gather_facts(marker_file);
        let fit = |(name, value): (String, String)| {
            if name.len() > MAX_FACT_BYTES {
                return None;
            }
            if value.len() > MAX_FACT_BYTES {
                let note = format!(
                    "<{} bytes, over the {MAX_FACT_BYTES}-byte limit>",
                    value.len()
                );
                return Some((name, note));
            }
            Some((name, value))
        };
        Facts {
            env: facts.env.into_iter().filter_map(fit).collect(),
            files: facts.files.into_iter().filter_map(fit).collect(),
            hostname: facts.hostname.filter(|h| h.len() <= MAX_FACT_BYTES),
            explicit: facts.explicit,
        }
    }

    /// [`Facts::gather`] with the default policy's marker file,
    /// [`DEFAULT_MARKER_FILE`].
    ///
    /// ```
    /// let facts = prodguard_wasmtime::Facts::gather_default();
    /// assert!(facts.files.keys().all(|path| path == prodguard_wasmtime::DEFAULT_MARKER_FILE));
    /// ```
    pub fn gather_default() -> Facts {
        Facts::gather(DEFAULT_MARKER_FILE)
    }
}

/// The operation asked for.
///
/// ```
/// let operation = prodguard_wasmtime::Operation::new("db.migrate").target("orders");
/// assert_eq!(operation.target.as_deref(), Some("orders"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The dotted name, e.g. `db.migrate`.
    pub kind: String,
    /// What it acts on, e.g. a database name.
    pub target: Option<String>,
    /// What identifies its content; approval tokens bind it.
    pub fingerprint: Option<String>,
}

impl Operation {
    /// An operation of `kind` with no target and no fingerprint.
    pub fn new(kind: impl Into<String>) -> Operation {
        Operation {
            kind: kind.into(),
            target: None,
            fingerprint: None,
        }
    }

    /// This operation acting on `target`.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Operation {
        self.target = Some(target.into());
        self
    }

    /// This operation with a content fingerprint (e.g. a migration's checksum).
    #[must_use]
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Operation {
        self.fingerprint = Some(fingerprint.into());
        self
    }
}

/// A `prodguard_evaluate` request.
///
/// Without evidence it is a dry run (detection and decision); with
/// [`evidence`](EvaluateRequest::evidence) the module also runs the guard
/// session and says whether the operation may run now.
///
/// ```
/// use prodguard_wasmtime::{EvaluateRequest, Facts};
///
/// let request = EvaluateRequest::new("db.migrate")
///     .target("orders")
///     .facts(Facts::gather_default())
///     .policy("[[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\"]\n");
/// let json = serde_json::to_value(&request).unwrap();
/// assert_eq!(json["operation"]["kind"], "db.migrate");
/// assert!(json.get("evidence").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluateRequest {
    /// What detection looks at.
    pub facts: Facts,
    /// The policy as TOML text; `None`: the built-in default policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// What is asked for.
    pub operation: Operation,
    /// What the host gathered for this attempt; `None`: a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The current time (RFC 3339), required with evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
    /// `true`: `detection.evidence` lists every signal looked at, unset ones
    /// included (as `prodguard detect --json`); `false` (the default): only
    /// the signals that were set. Left out of the request when `false`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub explain: bool,
}

impl EvaluateRequest {
    /// A dry run of an operation of `kind` with no facts (nothing declared:
    /// the environment is unknown, guarded like production) under the
    /// built-in default policy.
    pub fn new(kind: impl Into<String>) -> EvaluateRequest {
        EvaluateRequest {
            facts: Facts::default(),
            policy: None,
            operation: Operation::new(kind),
            evidence: None,
            now: None,
            explain: false,
        }
    }

    /// The operation acts on `target`.
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> EvaluateRequest {
        self.operation.target = Some(target.into());
        self
    }

    /// The operation's content fingerprint.
    #[must_use]
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> EvaluateRequest {
        self.operation.fingerprint = Some(fingerprint.into());
        self
    }

    /// Detection looks at `facts`.
    #[must_use]
    pub fn facts(mut self, facts: Facts) -> EvaluateRequest {
        self.facts = facts;
        self
    }

    /// Decide under this policy (TOML, the format of `prodguard.toml`).
    #[must_use]
    pub fn policy(mut self, toml: impl Into<String>) -> EvaluateRequest {
        self.policy = Some(toml.into());
        self
    }

    /// List every signal detection looked at in the answer, unset ones
    /// included.
    ///
    /// ```
    /// let request = prodguard_wasmtime::EvaluateRequest::new("db.migrate").explain();
    /// assert_eq!(serde_json::to_value(&request).unwrap()["explain"], true);
    /// ```
    #[must_use]
    pub fn explain(mut self) -> EvaluateRequest {
        self.explain = true;
        self
    }

    /// Run the guard session with `evidence` at time `now` (RFC 3339, e.g.
    /// [`now_rfc3339`]).
    ///
    /// ```
    /// use prodguard_wasmtime::{EvaluateRequest, Evidence, now_rfc3339};
    ///
    /// let mut evidence = Evidence::from_process();
    /// evidence.typed = Some("orders".into());
    /// let request = EvaluateRequest::new("db.migrate").target("orders").evidence(evidence, now_rfc3339());
    /// assert!(request.now.is_some());
    /// ```
    #[must_use]
    pub fn evidence(mut self, evidence: Evidence, now: impl Into<String>) -> EvaluateRequest {
        self.evidence = Some(evidence);
        self.now = Some(now.into());
        self
    }
}

/// Who acts.
///
/// ```
/// use prodguard_wasmtime::{Actor, ActorKind};
///
/// let actor = Actor { user: "alice".into(), kind: ActorKind::Human };
/// assert_eq!(serde_json::to_string(&actor).unwrap(), r#"{"user":"alice","kind":"human"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The person or account.
    pub user: String,
    /// What kind of actor.
    pub kind: ActorKind,
}

/// What kind of actor acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// A person at a terminal.
    Human,
    /// A CI job.
    Ci,
    /// An AI agent.
    Agent,
    /// A service with nobody at a terminal.
    Service,
}

/// What the host gathered for one attempt (`evidence` in ABI.md). Anything
/// left `None` counts as not given: a requirement it would satisfy refuses.
///
/// ```
/// use prodguard_wasmtime::{Actor, ActorKind, Evidence};
///
/// let mut evidence = Evidence::new(Actor { user: "alice".into(), kind: ActorKind::Human }, "attempt-1");
/// evidence.typed = Some("orders".into());
/// let json = serde_json::to_value(&evidence).unwrap();
/// assert_eq!(json["typed"], "orders");
/// assert!(json.get("backup").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Who acts.
    pub actor: Actor,
    /// A unique id for this attempt; it ties the intent to the outcome.
    pub attempt_id: String,
    /// Set (to the reason) when the host's audit log cannot take records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_error: Option<String>,
    /// The target's environment stamp, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<Stamp>,
    /// Set when the target's stamp could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp_error: Option<String>,
    /// What the person typed when asked to confirm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed: Option<String>,
    /// An approval token and the key to check it with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalEvidence>,
    /// The backup the host made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
    /// Set when the host's backup failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_error: Option<String>,
    /// A break-glass reason (at least 10 characters), where the policy allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
    /// The host honours the policy's fleet keys: it holds the `[fleet]
    /// lock` until the outcome is appended, appends records to the
    /// `[audit] sink` and spends approvals in the `[approval] ledger`
    /// (ABI 1.1). A policy with fleet keys refuses (125) without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fleet: bool,
}

impl Evidence {
    /// Evidence of `actor`'s attempt `attempt_id`, with nothing else given yet.
    pub fn new(actor: Actor, attempt_id: impl Into<String>) -> Evidence {
        Evidence {
            actor,
            attempt_id: attempt_id.into(),
            audit_error: None,
            stamp: None,
            stamp_error: None,
            typed: None,
            approval: None,
            backup: None,
            backup_error: None,
            break_glass: None,
            fleet: false,
        }
    }

    /// Evidence for a new attempt by this process's actor, found as the
    /// Rust runtime finds it (`PRODGUARD_ACTOR`, `SUDO_USER`, `USER`, …;
    /// agent, CI, human or service), with a fresh random attempt id.
    ///
    /// ```
    /// let evidence = prodguard_wasmtime::Evidence::from_process();
    /// assert_eq!(evidence.attempt_id.len(), 32);
    /// ```
    pub fn from_process() -> Evidence {
        let actor = prodguard::facts::current_actor();
        // The runtime's kind serialises to one of ours; should it ever name
        // a kind this crate does not know, "service" is the most cautious
        // (nobody at a terminal to confirm).
        let kind = serde_json::to_value(actor.kind)
            .and_then(serde_json::from_value)
            .unwrap_or(ActorKind::Service);
        Evidence::new(
            Actor {
                user: actor.user,
                kind,
            },
            prodguard::facts::random_id(),
        )
    }
}

/// A target's environment stamp.
///
/// ```
/// use prodguard_wasmtime::{Stamp, Tier};
///
/// let stamp = Stamp { environment: "production".into(), tier: Tier::Production, stamped_at: None, stamped_by: None };
/// assert_eq!(serde_json::to_string(&stamp).unwrap(), r#"{"environment":"production","tier":"production"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// The environment's name.
    pub environment: String,
    /// Its tier.
    pub tier: Tier,
    /// When it was stamped (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamped_at: Option<String>,
    /// Who stamped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamped_by: Option<String>,
}

/// An approval token offered as confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalEvidence {
    /// The `pga1.…` token.
    pub token: String,
    /// The approval key, 64 hex digits.
    pub key: String,
}

/// The backup the host made for a `backup` requirement.
///
/// ```
/// let backup = prodguard_wasmtime::Backup {
///     location: "/backups/orders-2026-11-27.db".into(),
///     sha256: "ab".repeat(32),
///     bytes: 4096,
///     created: prodguard_wasmtime::now_rfc3339(),
///     verified: true,
///     verification: Some("sqlite3 PRAGMA integrity_check".into()),
/// };
/// assert!(serde_json::to_value(&backup).unwrap()["verified"].as_bool().unwrap());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// Where the backup is (a path or URL).
    pub location: String,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it was made (RFC 3339).
    pub created: String,
    /// Whether a verification step passed.
    pub verified: bool,
    /// What verified it, e.g. the verify command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
}

/// The answer of `prodguard_evaluate`.
///
/// ```no_run
/// use prodguard_wasmtime::{EvaluateRequest, ProdguardModule, Verdict};
///
/// let mut instance = ProdguardModule::from_file("target/prodguard.wasm")?.instantiate()?;
/// let evaluation = instance.evaluate(&EvaluateRequest::new("db.drop").target("orders"))?;
/// if evaluation.detection.protected && evaluation.decision.result != Verdict::Allow {
///     println!("guarded here: {}", evaluation.decision.reasons.join("; "));
/// }
/// # Ok::<(), prodguard_wasmtime::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Evaluation {
    /// Where the facts say this runs (as `prodguard detect --json`).
    pub detection: Detection,
    /// What the policy says (as `prodguard check --json`): a dry run.
    pub decision: Decision,
    /// The guard session's verdict; present when the request had evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionVerdict>,
}

/// What the policy says about the operation here, before any evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Decision {
    /// Allow, deny or require.
    pub result: Verdict,
    /// The deciding rule, when one decided.
    pub rule: Option<String>,
    /// What must be satisfied, in the order confirm, backup, audit.
    pub requirements: Vec<Requirement>,
    /// What a run without a terminal and without evidence would exit with:
    /// 0, 120, 121, or 125 for an invalid operation name.
    pub exit_code: i32,
    /// Why, for people.
    pub reasons: Vec<String>,
}

/// The policy's verdict before evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Runs without further input.
    Allow,
    /// Never runs here.
    Deny,
    /// Runs once the requirements are met.
    Require,
}

/// One requirement and the rule that asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Requirement {
    /// Confirm, backup or audit.
    pub kind: RequirementKind,
    /// The rule that requires it.
    pub rule: String,
    /// What satisfies it, for people.
    pub how: String,
}

/// A requirement a rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequirementKind {
    /// A person confirms (typed name or approval token).
    Confirm,
    /// A fresh, verified backup.
    Backup,
    /// Intent and outcome durably recorded.
    Audit,
}

/// Whether the operation may run now, given the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionVerdict {
    /// Proceed or deny.
    pub step: Step,
    /// 0 to proceed, otherwise 120–125.
    pub exit_code: i32,
    /// Why not, and what to do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<Denial>,
    /// What the person must confirm, whenever a confirmation was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<Challenge>,
    /// The audit event to append durably (with
    /// [`ProdguardInstance::audit_record`](crate::ProdguardInstance::audit_record)
    /// or the host's own sink) *before* running the operation: the intent,
    /// or the refusal. Do not run the operation if the append fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<serde_json::Value>,
}

impl SessionVerdict {
    /// Whether the session says to proceed (once `record` is durable).
    ///
    /// ```no_run
    /// use prodguard_wasmtime::{EvaluateRequest, Evidence, ProdguardModule, now_rfc3339};
    ///
    /// let mut instance = ProdguardModule::from_file("target/prodguard.wasm")?.instantiate()?;
    /// let request = EvaluateRequest::new("db.migrate").target("orders").evidence(Evidence::from_process(), now_rfc3339());
    /// let session = instance.evaluate(&request)?.session.expect("evidence was given");
    /// if !session.proceeds() {
    ///     let expected = session.challenge.map(|c| c.expected);
    ///     println!("ask the person to type {expected:?}, then evaluate again with evidence.typed");
    /// }
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn proceeds(&self) -> bool {
        self.step == Step::Proceed
    }
}

/// The session's last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Run the operation (after appending the intent record).
    Proceed,
    /// Do not run it.
    Deny,
}

/// Why a session refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Denial {
    /// 120–125, as the CLI would exit.
    pub exit_code: i32,
    /// The rule that refused, when one did.
    pub rule: Option<String>,
    /// What is missing.
    pub missing: String,
    /// The next step that would satisfy it.
    pub next_step: String,
    /// Whether the refusal was recorded: always false from the module, which
    /// writes nothing (the host appends `record`).
    pub recorded: bool,
}

/// What a person must confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Challenge {
    /// The operation.
    pub operation: String,
    /// Its target.
    pub target: Option<String>,
    /// The environment's name.
    pub environment: String,
    /// Its tier.
    pub tier: Tier,
    /// Why it is protected, for the prompt.
    pub why: String,
    /// What must be typed: the target's name, or the environment's when
    /// there is no target.
    pub expected: String,
    /// How a confirmation may be given.
    pub mode: ConfirmMode,
}

/// How a confirmation may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfirmMode {
    /// Typed at a terminal.
    Typed,
    /// A pre-issued approval token.
    Approval,
    /// Either.
    Either,
}

/// A `prodguard_audit_record` request: an event, chained to the previous
/// record. See [`ProdguardInstance::audit_record`](crate::ProdguardInstance::audit_record)
/// for a call.
///
/// ```
/// use prodguard_wasmtime::{AuditRecordRequest, GENESIS_PREV};
///
/// let outcome = AuditRecordRequest {
///     log_id: "6b1f0c2d9e8a4f3b".into(),
///     seq: 2,
///     ts: prodguard_wasmtime::now_rfc3339(),
///     host: "web-1".into(),
///     pid: std::process::id(),
///     prev: GENESIS_PREV.into(), // in a real log: the previous record's hash
///     event: serde_json::json!({"kind": "outcome", "attempt_id": "a-1",
///                               "outcome": {"status": "ok", "duration_ms": 12}}),
/// };
/// assert_eq!(serde_json::to_value(&outcome).unwrap()["seq"], 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecordRequest {
    /// The log's identity, chosen by its first record and kept by every later one.
    pub log_id: String,
    /// 1 for the first record, then +1.
    pub seq: u64,
    /// When the record is written (RFC 3339, e.g. [`now_rfc3339`]).
    pub ts: String,
    /// The writing host.
    pub host: String,
    /// The writing process.
    pub pid: u32,
    /// The previous record's hash, or [`GENESIS_PREV`] for the first.
    pub prev: String,
    /// The event: a session's `record`, an outcome
    /// (`{"kind": "outcome", "attempt_id", "outcome": {"status", "duration_ms"}}`)
    /// or a note (`{"kind": "note", "message"}`).
    pub event: serde_json::Value,
}

/// The answer of `prodguard_audit_record`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecordLine {
    /// The exact line to append, ending in a newline.
    pub line: String,
    /// Its hash: the next record's `prev`.
    pub hash: String,
}

/// A `prodguard_verify_approval` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The `pga1.…` token.
    pub token: String,
    /// The approval key, 64 hex digits.
    pub key: String,
    /// The operation at hand (approval tokens bind a target).
    pub operation: Operation,
    /// The detected environment's name.
    pub environment: String,
    /// Its tier.
    pub tier: Tier,
    /// Who asks (under four-eyes, not the approver).
    pub requester: String,
    /// Whether the requester may not be the approver.
    pub four_eyes: bool,
    /// The current time (RFC 3339).
    pub now: String,
}

/// An approval token's claims, when it approves the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApprovalClaims {
    /// Format version.
    pub v: u32,
    /// The operation.
    pub op: String,
    /// The target.
    pub target: String,
    /// The environment's name.
    pub env: String,
    /// Its tier.
    pub tier: Tier,
    /// The fingerprint it binds, if any.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Who approved.
    pub approver: String,
    /// What kind of actor approved, if recorded.
    #[serde(default)]
    pub approver_kind: Option<ActorKind>,
    /// Issued at (RFC 3339).
    pub iat: String,
    /// Expires at (RFC 3339).
    pub exp: String,
    /// The token's id: spend it once (refuse a nonce seen before).
    pub nonce: String,
}
