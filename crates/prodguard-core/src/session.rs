//! The guard session: one guarded attempt as a state machine.
//!
//! The driver (the runtime, the C ABI, a Wasm host) calls [`Session::next_step`]
//! and performs what it asks — take a backup, ask for a confirmation, append
//! an audit record — then reports the answer back. The session never touches
//! the world itself, so every face makes the same decision from the same
//! answers.
//!
//! ```
//! use prodguard_core::session::{Session, SessionInput, Step, Operation, ConfirmationAnswer};
//! use prodguard_core::audit::{Actor, ConfirmEvidence};
//! use prodguard_core::policy::ActorKind;
//! use prodguard_core::{classify, Facts, Policy, Timestamp};
//!
//! let policy = Policy::builtin_default();
//! let mut facts = Facts::default();
//! facts.env.insert("APP_ENV".into(), "production".into());
//! let detection = classify(&facts, policy.environment());
//! let mut session = Session::begin(SessionInput {
//!     policy: &policy,
//!     detection: &detection,
//!     operation: Operation::new("db.migrate").with_target("orders"),
//!     actor: Actor { user: "ana".into(), kind: ActorKind::Human, account: None },
//!     attempt_id: "a1".into(),
//!     now: Timestamp(0),
//! });
//! assert_eq!(session.next_step(), Step::CheckAudit);
//! session.audit_checked(Ok(()))?;
//! assert!(matches!(session.next_step(), Step::CheckStamp { .. }));
//! session.stamp_checked(Ok(None))?; // the target carries no environment stamp
//! assert!(matches!(session.next_step(), Step::NeedConfirmation(_)));
//! // Answering a step that was not asked is an error; the session keeps asking.
//! assert!(session.answer_backup(Err("no backup".into())).is_err());
//! session.answer_confirmation(ConfirmationAnswer::Declined("typed `order`".into()))?;
//! assert!(matches!(session.next_step(), Step::Append(_)));
//! session.appended(Ok(()))?;
//! let Step::Deny(denial) = session.next_step() else { unreachable!() };
//! assert_eq!(denial.exit_code, 121);
//! # Ok::<(), prodguard_core::session::SessionError>(())
//! ```

use std::borrow::Cow;

use serde::Serialize;

use crate::ExitCode;
use crate::audit::{
    Actor, AuditEvent, BackupEvidence, BatchItem, ConfirmEvidence, DecisionRecord, EventKind,
    OperationRecord, OutcomeRecord,
};
use crate::detect::Detection;
use crate::policy::{self, ActorKind, BackupSpec, ConfirmMode, Policy, Requirement};
use crate::text::{escape, shell_word};
use crate::{Tier, Timestamp};

mod sql_run;
use sql_run::{Counted, SqlRun};

/// What a confirmation of a batch shows: each step, in order.
fn batch_steps(batch: &[BatchItem]) -> Vec<String> {
    batch
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let short: String = item.fingerprint.chars().take(16).collect();
            format!(
                "{} of {}: {} (checksum {})",
                i + 1,
                batch.len(),
                escape(&item.name),
                escape(&short)
            )
        })
        .collect()
}

/// How to get an approval token for `operation` on `target`, in words
/// every face can say: the command an approver runs, with the real
/// operation and target; how the token reaches the run is the face's to say.
fn how_to_approve(operation: &str, target: &str, fingerprint: Option<&str>) -> String {
    // A fingerprinted operation (a SQL script) is approved only with it.
    let fingerprint = fingerprint
        .map(|f| format!(" --fingerprint {}", shell_word(f)))
        .unwrap_or_default();
    format!(
        "an approval token from someone who may approve (they run `prodguard approve --key FILE \
         --op {} --target {}{fingerprint}`), given to this run",
        shell_word(operation),
        shell_word(target)
    )
}

/// An approval token for `operation`, when it names a target; tokens bind
/// one target, so without one there is no token to get.
fn token_for(operation: &Operation) -> Option<String> {
    operation
        .target
        .as_deref()
        .map(|target| how_to_approve(&operation.kind, target, operation.fingerprint.as_deref()))
}

/// What to do when a token is the only way and the operation names no target.
const TOKEN_NEEDS_TARGET: &str =
    "name the operation's target, then get an approval token for it (tokens bind one target)";

/// The operation a program wants to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operation {
    /// Dotted name, e.g. `db.migrate`.
    pub kind: String,
    /// What it acts on, e.g. a database name.
    pub target: Option<String>,
    /// What identifies its content (e.g. a migration checksum); approvals bind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Break-glass: the reason this one run may skip confirmation and backup
    /// where the policy allows it (`break_glass = true`) for the actor's OS
    /// account (`[approval] break_glass_users`; never an AI agent). Always
    /// audited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
    /// The steps it runs as one (see [`with_batch`](Self::with_batch)).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<BatchItem>,
    /// Its way back: a command that undoes it (a down-migration, a
    /// restore), recorded in the intent for `prodguard rollback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
    /// The attempt it rolls back (`prodguard rollback ATTEMPT_ID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolls_back: Option<String>,
}

impl Operation {
    /// An operation of `kind` with no target.
    pub fn new(kind: impl Into<String>) -> Self {
        Operation {
            kind: kind.into(),
            target: None,
            fingerprint: None,
            break_glass: None,
            batch: Vec::new(),
            rollback: None,
            rolls_back: None,
        }
    }

    /// The same operation on `target`.
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// The same operation as a batch of `items` (pending migrations, in
    /// order) run as one: one decision, one confirmation that lists every
    /// step, one backup, one intent that records each step's fingerprint.
    /// Its fingerprint is the batch's ([`batch_fingerprint`](crate::audit::batch_fingerprint)),
    /// so an approval binds exactly these steps in this order.
    pub fn with_batch(mut self, items: Vec<BatchItem>) -> Self {
        self.fingerprint = Some(crate::audit::batch_fingerprint(&items));
        self.batch = items;
        self
    }
}

/// The policy's verdict before any evidence is gathered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Verdict {
    /// Runs without further input.
    Allow,
    /// Never runs here.
    Deny,
    /// Runs once the requirements are met.
    Require,
}

/// One requirement and the rule that asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RequirementView {
    /// `confirm`, `backup` or `audit`.
    pub kind: Requirement,
    /// The rule that requires it.
    pub rule: String,
    /// What satisfies it, for people.
    pub how: String,
}

/// What the policy says about an operation here (a dry run: `prodguard check`).
///
/// Its JSON (`prodguard check --json`, the JSON API's `decision`) carries
/// the fields up to `reasons`; the rest are for the session, and a decision
/// read back from JSON has their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Decision {
    /// Allow, deny or require.
    pub result: Verdict,
    /// The deciding rule: the deny rule, or the rule behind the first
    /// requirement in the order confirm, backup, audit, staged, rollback.
    pub rule: Option<String>,
    /// What must be satisfied.
    pub requirements: Vec<RequirementView>,
    /// What a run without a terminal and without evidence would exit with:
    /// 0, 120 (denied) or 121 (needs confirmation).
    pub exit_code: i32,
    /// Why, for people.
    pub reasons: Vec<String>,
    /// How a confirmation may be given.
    #[serde(skip)]
    pub confirm_mode: ConfirmMode,
    /// The backup the policy asks for.
    #[serde(skip)]
    pub backup: Option<BackupSpec>,
    /// Who may act (empty: anyone).
    #[serde(skip)]
    pub actors: Vec<ActorKind>,
    /// Whether break-glass may skip confirmation and backup here.
    #[serde(skip)]
    pub break_glass_allowed: bool,
}

impl Decision {
    /// Whether `requirement` applies.
    pub fn requires(&self, requirement: Requirement) -> bool {
        self.requirements.iter().any(|r| r.kind == requirement)
    }
}

fn why_protected(detection: &Detection) -> String {
    // Concatenated rather than formatted: this is on every decision's path.
    if detection.decided_by == "default" {
        concat(&[
            "the environment is unknown (",
            detection.hint.as_deref().unwrap_or("nothing declares it"),
            "), so it is guarded like production",
        ])
    } else {
        concat(&[
            "the environment is ",
            &escape(&detection.environment),
            " (tier ",
            detection.tier.as_str(),
            "), decided by ",
            &escape(&detection.decided_by),
        ])
    }
}

/// The pieces one after another, in one allocation.
fn concat(pieces: &[&str]) -> String {
    let mut out = String::with_capacity(pieces.iter().map(|p| p.len()).sum());
    for piece in pieces {
        out.push_str(piece);
    }
    out
}

/// How far in the future backup evidence may be dated (clock skew between
/// the host that made it and this one).
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 60;

/// The operation `prodguard stamp` runs: it is not itself refused by the
/// stamp it corrects.
pub const STAMP_OPERATION: &str = "prodguard.stamp";

/// The operation `prodguard audit prune` runs, its target the log: dropping
/// audit records is guarded like any other destructive operation (the
/// built-in default asks a person in protected tiers; an agent cannot).
pub const PRUNE_OPERATION: &str = "audit.prune";

/// What a target says about the environment it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Stamp {
    /// The environment's name.
    pub environment: String,
    /// Its tier.
    pub tier: Tier,
    /// When it was stamped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamped_at: Option<String>,
    /// Who stamped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamped_by: Option<String>,
}

/// Whether two environment names mean the same environment: equal after
/// case folding, or built-in aliases of one tier (`prod` and `production`).
pub fn same_environment(a: &str, b: &str) -> bool {
    let canonical = |name: &str| match Tier::from_name(name) {
        Some(tier) => tier.as_str().to_owned(),
        None => name.trim().to_ascii_lowercase(),
    };
    canonical(a) == canonical(b)
}

/// Whether a guarded `operation` reads its target's stamp first
/// ([`Step::CheckStamp`]): when it names a target, unless it is the
/// stamping operation itself (which exists to correct a stamp).
pub fn reads_stamp(operation: &Operation) -> bool {
    operation.target.is_some() && operation.kind != STAMP_OPERATION
}

/// What a target's stamp says about running here.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StampVerdict {
    /// The target carries no stamp (or was not read: see [`reads_stamp`]).
    None,
    /// It is stamped for this environment.
    Agrees,
    /// It is stamped for another environment: a guarded run refuses with 124.
    Disagrees,
    /// The stamp cannot be read: a guarded run refuses with 124.
    Unreadable,
}

impl StampVerdict {
    /// Whether a guarded run refuses with 124 for it.
    pub fn refuses(self) -> bool {
        matches!(self, StampVerdict::Disagrees | StampVerdict::Unreadable)
    }
}

/// The verdict of a stamp read for a target, in the environment named `here`.
pub fn stamp_verdict(stamp: &Result<Option<Stamp>, StampError>, here: &str) -> StampVerdict {
    match stamp {
        Ok(None) => StampVerdict::None,
        Ok(Some(stamp)) if same_environment(&stamp.environment, here) => StampVerdict::Agrees,
        Ok(Some(_)) => StampVerdict::Disagrees,
        Err(_) => StampVerdict::Unreadable,
    }
}

/// What `prodguard check` exits with: the decision's code, or 124 when the
/// target's stamp would refuse the run — unless the request itself is
/// invalid (125), which no stamp changes.
pub fn check_exit_code(decision: &Decision, stamp: StampVerdict) -> i32 {
    if stamp.refuses() && decision.exit_code != ExitCode::PolicyError {
        ExitCode::EnvMismatch.code()
    } else {
        decision.exit_code
    }
}

/// The shortest break-glass reason accepted, in characters.
const MIN_BREAK_GLASS_REASON: usize = 10;

/// The longest target name accepted, in bytes.
pub const MAX_TARGET_BYTES: usize = 256;

/// Why a target cannot be confirmed by typing its name.
///
/// An empty name would be confirmed by pressing Enter; surrounding spaces
/// cannot be typed back reliably; control characters could forge lines of
/// the prompt; bidirectional and zero-width characters make the name a
/// person sees differ from the one they type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetProblem {
    Empty,
    Whitespace,
    Control,
    Invisible,
    TooLong,
}

impl std::fmt::Display for TargetProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetProblem::Empty => {
                "it is empty; name what the operation acts on, or name no target"
            }
            TargetProblem::Whitespace => "it has leading or trailing whitespace",
            TargetProblem::Control => "it contains control characters",
            TargetProblem::Invisible => {
                "it contains bidirectional, zero-width or other invisible characters, which \
                 make the name shown differ from the name typed"
            }
            TargetProblem::TooLong => "it is longer than 256 bytes",
        })
    }
}

/// Why `target` cannot be confirmed by typing its name, if it cannot.
pub(crate) fn target_problem(target: &str) -> Option<TargetProblem> {
    if target.is_empty() {
        Some(TargetProblem::Empty)
    } else if target.trim() != target {
        Some(TargetProblem::Whitespace)
    } else if target.chars().any(char::is_control) {
        Some(TargetProblem::Control)
    } else if target.chars().any(crate::text::is_invisible) {
        Some(TargetProblem::Invisible)
    } else if target.len() > MAX_TARGET_BYTES {
        Some(TargetProblem::TooLong)
    } else {
        None
    }
}

/// Whether `target_problem(target)` is `None`, without decoding the text
/// when it is ASCII (the allow path asks this on every call).
fn target_is_valid(target: &str) -> bool {
    let bytes = target.as_bytes();
    if !bytes.is_ascii() {
        return target_problem(target).is_none();
    }
    // In ASCII, every whitespace character but the space is a control.
    !bytes.is_empty()
        && bytes.len() <= MAX_TARGET_BYTES
        && bytes.first() != Some(&b' ')
        && bytes.last() != Some(&b' ')
        && !bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
}

/// An invalid name as quoted back in a reason: at most 80 characters, so
/// a huge one is not echoed whole.
pub(crate) fn shorten(name: &str) -> std::borrow::Cow<'_, str> {
    match name.char_indices().nth(80) {
        None => name.into(),
        Some((end, _)) => format!("{}… ({} bytes)", &name[..end], name.len()).into(),
    }
}

/// The verdict of [`decide`] alone: the same `result`, without the
/// explanation, and without allocating. For hot paths that only need to know
/// whether an operation runs freely here (a program asking before every
/// statement); anything but [`Verdict::Allow`] deserves the full [`decide`].
///
/// ```
/// use prodguard_core::session::{Verdict, verdict};
/// use prodguard_core::{Policy, Tier};
///
/// let policy = Policy::builtin_default_ref();
/// assert_eq!(verdict(policy, Tier::Development, "db.migrate", Some("orders")), Verdict::Allow);
/// assert_eq!(verdict(policy, Tier::Production, "db.migrate", Some("orders")), Verdict::Require);
/// assert_eq!(verdict(policy, Tier::Development, "DB.Migrate", None), Verdict::Deny);
/// ```
pub fn verdict(policy: &Policy, tier: Tier, operation: &str, target: Option<&str>) -> Verdict {
    if !policy::is_valid_operation_name(operation) || target.is_some_and(|t| !target_is_valid(t)) {
        return Verdict::Deny;
    }
    let mut requires = false;
    // The actor kinds every restricting rule allows, as a bit set; `None`
    // until a rule restricts actors (as in `Policy::evaluate`).
    let mut actors: Option<u8> = None;
    for rule in policy.rules.iter().filter(|r| r.matches(tier, operation)) {
        if rule.deny.is_some() {
            return Verdict::Deny;
        }
        requires |= !rule.require.is_empty();
        if !rule.actors.is_empty() {
            let allowed = rule.actors.iter().fold(0u8, |set, a| set | (1 << *a as u8));
            actors = Some(actors.map_or(allowed, |set| set & allowed));
        }
    }
    if actors == Some(0) {
        Verdict::Deny
    } else if requires {
        Verdict::Require
    } else {
        Verdict::Allow
    }
}

/// Evaluates the policy for `operation` in the detected environment.
///
/// An invalid operation name yields a deny with exit code 125.
pub fn decide(policy: &Policy, detection: &Detection, operation: &Operation) -> Decision {
    decide_also(policy, detection, operation, &[])
}

/// [`decide`] for an operation that also does the operations `also` (the
/// kinds of a SQL script's statements): every rule matching any of them
/// applies, and a refusal names the kind its rule matched.
pub(crate) fn decide_also(
    policy: &Policy,
    detection: &Detection,
    operation: &Operation,
    also: &[&str],
) -> Decision {
    if !policy::is_valid_operation_name(&operation.kind)
        && let Err(problem) = policy::validate_operation_name(&operation.kind)
    {
        return Decision {
            result: Verdict::Deny,
            rule: None,
            requirements: Vec::new(),
            exit_code: ExitCode::PolicyError.code(),
            reasons: vec![format!("invalid operation name: {problem}")],
            confirm_mode: ConfirmMode::Either,
            backup: None,
            actors: Vec::new(),
            break_glass_allowed: false,
        };
    }
    if let Some(problem) = operation
        .target
        .as_deref()
        .filter(|t| !target_is_valid(t))
        .and_then(target_problem)
    {
        return Decision {
            result: Verdict::Deny,
            rule: None,
            requirements: Vec::new(),
            exit_code: ExitCode::PolicyError.code(),
            reasons: vec![format!(
                "invalid target `{}`: {problem}",
                escape(&shorten(operation.target.as_deref().unwrap_or("")))
            )],
            confirm_mode: ConfirmMode::Either,
            backup: None,
            actors: Vec::new(),
            break_glass_allowed: false,
        };
    }
    // A batch's fingerprint is its steps': an approval binds them, and the
    // record lists them, so the two must not tell different stories.
    if !operation.batch.is_empty()
        && operation.fingerprint.as_deref()
            != Some(crate::audit::batch_fingerprint(&operation.batch).as_str())
    {
        return Decision {
            result: Verdict::Deny,
            rule: None,
            requirements: Vec::new(),
            exit_code: ExitCode::PolicyError.code(),
            reasons: vec![
                "the fingerprint is not the batch's: give the steps with `batch` and no \
                 fingerprint of your own"
                    .into(),
            ],
            confirm_mode: ConfirmMode::Either,
            backup: None,
            actors: Vec::new(),
            break_glass_allowed: false,
        };
    }
    // `matched_rules` is not part of a decision: not collected.
    let evaluation = policy.evaluate_with(detection.tier, &operation.kind, also, false);
    if let Some((rule, reason)) = evaluation.denied_by {
        // The operation the deny rule matched: this one, or one it also does.
        let denied = policy
            .rules()
            .iter()
            .find(|r| r.name() == rule)
            .and_then(|r| {
                std::iter::once(operation.kind.as_str())
                    .chain(also.iter().copied())
                    .find(|op| r.matches(detection.tier, op))
            })
            .unwrap_or(&operation.kind);
        return Decision {
            result: Verdict::Deny,
            reasons: vec![
                // A policy below the system's is written by whoever runs
                // the program: its names and reasons are outside text.
                format!(
                    "{denied} is denied here by rule `{}`: {}",
                    escape(&rule),
                    escape(&reason)
                ),
                why_protected(detection),
            ],
            rule: Some(rule),
            requirements: Vec::new(),
            exit_code: ExitCode::Denied.code(),
            confirm_mode: evaluation.confirm_mode,
            backup: None,
            actors: evaluation.actors,
            break_glass_allowed: evaluation.break_glass_allowed,
        };
    }
    // What to type: "the target's name `…`" or "the environment's name `…`".
    let (object, name) = match &operation.target {
        Some(target) => ("target", target.as_str()),
        None => ("environment", detection.environment.as_str()),
    };
    let shown = escape(name);
    let typed = || concat(&["type the ", object, "'s name `", &shown, "` at a terminal"]);
    let typing = || {
        concat(&[
            "typing the ",
            object,
            "'s name `",
            &shown,
            "` at a terminal",
        ])
    };
    let token = token_for(operation);
    let requirements: Vec<RequirementView> = evaluation
        .requirements
        .into_iter()
        .map(|(kind, rule)| {
            let how = match kind {
                Requirement::Confirm => match (evaluation.confirm_mode, &token) {
                    (ConfirmMode::Typed, _) | (ConfirmMode::Either, None) => typed(),
                    (ConfirmMode::Either, Some(token)) => concat(&[&typed(), ", or ", token]),
                    (ConfirmMode::Approval, Some(token)) => token.clone(),
                    (ConfirmMode::Approval, None) => TOKEN_NEEDS_TARGET.to_owned(),
                    (_, Some(token)) => concat(&[token, ", and ", &typing()]),
                    (_, None) => concat(&[TOKEN_NEEDS_TARGET, "; and ", &typing()]),
                },
                Requirement::Backup => {
                    "a fresh, verified backup (the guard takes it with the rule's backup command)"
                        .to_owned()
                }
                Requirement::Audit => {
                    "intent and outcome durably recorded in the audit log".to_owned()
                }
                Requirement::Rollback => {
                    "a way back recorded before it runs: its own rollback command, or the rule's \
                     backup, restored"
                        .to_owned()
                }
                Requirement::Staged => match &policy.promotion().from {
                    Some(from) => concat(&[
                        "a successful run of it with the same fingerprint in ",
                        &escape(from),
                        " within ",
                        &crate::promotion::exact_span(policy.promotion().within_seconds),
                        ", in a trail that verifies",
                    ]),
                    None => "a successful run of it in [promotion] from, which the policy does \
                             not name"
                        .to_owned(),
                },
            };
            RequirementView { kind, rule, how }
        })
        .collect();
    let (result, exit_code) = if requirements.is_empty() {
        (Verdict::Allow, 0)
    } else if requirements.iter().any(|r| r.kind == Requirement::Confirm) {
        (Verdict::Require, ExitCode::NotConfirmed.code())
    } else {
        (Verdict::Require, 0)
    };
    let mut reasons = Vec::with_capacity(2);
    match requirements.first() {
        None => reasons.push(format!(
            "no rule guards {} in tier {}",
            operation.kind, detection.tier
        )),
        Some(first) => {
            // "{op} requires {a + b + c} here (rule `{first rule}`)", built in place.
            let mut reason = String::with_capacity(operation.kind.len() + first.rule.len() + 64);
            reason.push_str(&operation.kind);
            reason.push_str(" requires ");
            for (i, r) in requirements.iter().enumerate() {
                if i > 0 {
                    reason.push_str(" + ");
                }
                reason.push_str(r.kind.as_str());
            }
            reason.push_str(" here (rule `");
            reason.push_str(&escape(&first.rule));
            reason.push_str("`)");
            reasons.push(reason);
        }
    }
    reasons.push(why_protected(detection));
    Decision {
        result,
        rule: requirements.first().map(|r| r.rule.clone()),
        requirements,
        exit_code,
        reasons,
        confirm_mode: evaluation.confirm_mode,
        backup: evaluation.backup,
        actors: evaluation.actors,
        break_glass_allowed: evaluation.break_glass_allowed,
    }
}

/// What a person must confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    /// What must be typed: the target's name, or the environment's when there is no target.
    pub expected: String,
    /// Typed, approval or either.
    pub mode: ConfirmMode,
    /// What it will do, shown before the question: a SQL script's
    /// destructive statements with the rows its dry run counted
    /// ("statement 0 (line 1, db.delete.where on carts): 500 rows").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consequences: Vec<String>,
}

/// The driver's answer to a [`Challenge`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfirmationAnswer {
    /// Confirmed, with evidence of how.
    Confirmed(ConfirmEvidence),
    /// The person declined or typed something else.
    Declined(String),
    /// Nobody could be asked (no terminal, no token).
    Unavailable(String),
}

/// A backup the session needs before the operation may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupRequest {
    /// The operation's target.
    pub target: Option<String>,
    /// What the policy says about it.
    pub spec: BackupSpec,
}

/// Why the session refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Denial {
    /// 120–125.
    pub exit_code: ExitCode,
    /// The rule that refused, when one did.
    pub rule: Option<String>,
    /// What is missing.
    pub missing: String,
    /// The next step that would satisfy it.
    pub next_step: String,
    /// Whether the refusal itself reached the audit log.
    pub recorded: bool,
    /// Said beside the refusal: that no system policy protects these
    /// rules ([`crate::trust::UNPROTECTED`]), in a protected tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A SQL script's rows by statement index, when they were counted
    /// before the refusal (by its dry run, or by the run rolled back at
    /// [`Session::commit_check`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<u64>>,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The rule is named once: a deny rule's reason names it already.
        match self.rule.as_deref().map(escape) {
            Some(rule) if !self.missing.contains(&format!("rule `{rule}`")) => {
                write!(f, "refused by rule `{rule}`: {}", self.missing)?;
            }
            _ => write!(f, "refused: {}", self.missing)?,
        }
        write!(f, "\n  next step: {}", self.next_step)?;
        if let Some(note) = &self.note {
            write!(f, "\n  note: {note}")?;
        }
        // Usage errors are not attempts, so they are never recorded.
        if !self.recorded && self.exit_code != ExitCode::PolicyError {
            write!(
                f,
                "\n  (this refusal could not be written to the audit log)"
            )?;
        }
        Ok(())
    }
}

/// A failure a driver reports while performing a step: what went wrong,
/// in words that say what to do (the session quotes it in its refusal).
macro_rules! driver_failure {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("{message}")]
        pub struct $name {
            /// What went wrong and what to do about it, for people.
            pub message: String,
        }

        impl $name {
            /// A failure that says `message`.
            pub fn new(message: impl Into<String>) -> Self {
                $name {
                    message: message.into(),
                }
            }
        }

        impl From<String> for $name {
            fn from(message: String) -> Self {
                $name { message }
            }
        }

        impl From<&str> for $name {
            fn from(message: &str) -> Self {
                $name::new(message)
            }
        }
    };
}

driver_failure!(
    /// The audit log (or approval ledger) cannot take a record: the answer
    /// to a failed [`Step::CheckAudit`] or [`Step::Append`]. Where audit is
    /// required, the session refuses with 123.
    AuditFailure
);
driver_failure!(
    /// The target's environment stamp cannot be read: the answer to a
    /// failed [`Step::CheckStamp`]. The session refuses with 124.
    StampError
);
driver_failure!(
    /// No backup could be made or found: the answer to a failed
    /// [`Step::NeedBackup`]. The session refuses with 122.
    BackupError
);
driver_failure!(
    /// The trail promotion evidence is read from cannot be believed: it
    /// cannot be read or does not verify (the answer to a failed
    /// [`Step::CheckPromotion`]). The session refuses with 123.
    TrailUnavailable
);
driver_failure!(
    /// The approval token confirming this attempt cannot be spent (another
    /// run spent it first). The session refuses with 121.
    ApprovalUnusable
);

/// Why a fleet lock was not taken ([`Step::AcquireLock`]) or is no longer
/// held ([`Step::LockStillHeld`]): the refusal the session records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{missing}")]
pub struct LockRefusal {
    /// 75 (another host holds it) or 123 (the lock's server is unreachable,
    /// or the lock was lost), or 125 (this driver cannot honour the fleet).
    pub exit_code: ExitCode,
    /// What is missing, for people.
    pub missing: String,
    /// What to do about it.
    pub next_step: String,
}

/// The session was answered out of order: the driver answered a step it
/// was not asked, or asked nothing of it. A bug in the driver; the session
/// is left as it was, still asking its step.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// An answer that does not answer the pending step.
    #[error(
        "the guard session got {answer} while it {awaiting}; answer the step `next_step` returns (this is a bug in the driver)"
    )]
    OutOfOrder {
        /// The answer given (the method called).
        answer: &'static str,
        /// What the session was waiting for.
        awaiting: &'static str,
    },
}

/// What the session asks of its driver.
// A step is made a handful of times per guarded operation; boxing the large
// variants would cost an allocation each for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// The operation has requirements here and the policy runs in fleet
    /// mode (`[audit] sink`, `[approval] ledger`, `[fleet] lock`): take the
    /// `[fleet] lock` of (`operation`, `target`) when the policy names one,
    /// waiting as `[fleet] wait` says, and hold it until the outcome is
    /// appended; then call [`Session::lock_acquired`]. A driver that cannot
    /// honour the policy's fleet keys refuses here (125). Operations that
    /// run freely here, or are denied, take no lock.
    AcquireLock {
        /// The operation's name.
        operation: String,
        /// Its target (without a database URL's password), if any.
        target: Option<String>,
    },
    /// Check that the fleet lock taken at [`Step::AcquireLock`] is still
    /// held (its connection may have closed while a person typed or a
    /// backup ran), just before the intent is appended; then call
    /// [`Session::lock_checked`].
    LockStillHeld,
    /// Check that the audit log can take records (open, lock, tail intact)
    /// before anyone is asked anything, then call [`Session::audit_checked`].
    CheckAudit,
    /// Read the target's environment stamp (e.g. the `prodguard_stamp` table
    /// of a SQLite database), then call [`Session::stamp_checked`].
    CheckStamp {
        /// The target to read.
        target: String,
    },
    /// Run the SQL script in a transaction that is always rolled back,
    /// counting the rows each statement affects, then call
    /// [`Session::dry_ran`]. Asked before anyone is asked to confirm, so
    /// the prompt shows the consequences and a `confirm_above_rows` rule
    /// can waive it.
    DryRun,
    /// A rule requires `staged`: read the trail, verify it as `prodguard
    /// audit verify` does, and hand its attempts (the records up to the head
    /// that verified) to [`Session::promotion_read`], which judges them. A
    /// trail that cannot be read or does not verify is no evidence.
    CheckPromotion {
        /// `[promotion] staging_log`, or else `[audit] sink`: a file log
        /// (with its rotated set) or a `postgresql://` URL.
        trail: String,
    },
    /// Obtain backup evidence, then call [`Session::answer_backup`].
    NeedBackup(BackupRequest),
    /// Ask for confirmation, then call [`Session::answer_confirmation`].
    NeedConfirmation(Challenge),
    /// Durably append this event, then call [`Session::appended`].
    Append(AuditEvent),
    /// Run the operation, then call [`Session::finish`]. A SQL script
    /// runs in one transaction that commits only when
    /// [`Session::commit_check`] passes on its rows; a `--dry-run` session
    /// ([`Session::begin_sql_dry_run`]) always rolls it back.
    Proceed,
    /// Do not run the operation.
    Deny(Denial),
    /// The attempt is over (after the outcome was recorded).
    Done,
}

/// The inputs of one guarded attempt.
#[derive(Debug, Clone)]
pub struct SessionInput<'a> {
    /// The policy in force.
    pub policy: &'a Policy,
    /// Where we are.
    pub detection: &'a Detection,
    /// What is asked for.
    pub operation: Operation,
    /// Who asks.
    pub actor: Actor,
    /// A unique id tying intent and outcome records together.
    pub attempt_id: String,
    /// The current time.
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Start,
    AwaitLock,
    AwaitLockCheck,
    AwaitAuditCheck,
    AwaitStamp,
    AwaitPromotion,
    AwaitDryRun,
    AwaitConfirmation,
    AwaitBackup,
    AwaitRefusalAppend(Denial),
    AwaitFailureAppend,
    AwaitIntentAppend,
    Proceeding,
    AwaitOutcomeAppend,
    Denied(Denial),
    Finished,
}

/// One guarded attempt. See the module docs.
#[derive(Debug, Clone)]
pub struct Session {
    decision: Decision,
    operation: Operation,
    op_record: OperationRecord,
    challenge: Challenge,
    actor: Actor,
    attempt_id: String,
    now: Timestamp,
    state: State,
    confirm: Option<ConfirmEvidence>,
    backup: Option<BackupEvidence>,
    pending: Option<Step>,
    audit_failed: Option<String>,
    broke_glass: Option<String>,
    /// `[approval] break_glass_users`, kept only when break-glass is asked for.
    break_glass_users: Vec<String>,
    /// The policy runs in fleet mode: an operation with requirements asks
    /// for [`Step::AcquireLock`].
    fleet: bool,
    /// The policy names a `[fleet] lock`: once taken, it is checked before
    /// the intent ([`Step::LockStillHeld`]).
    fleet_lock: bool,
    /// A lock was taken and not yet checked again.
    lock_to_check: bool,
    /// The fencing token of the fleet lock held, for the intent.
    fence: Option<u64>,
    /// The policy's sources, named by the intent or refusal record.
    policy_sources: Vec<crate::trust::PolicySource>,
    /// [`crate::trust::UNPROTECTED`], where it applies.
    unprotected: Option<&'static str>,
    /// When nothing declares the environment: how to declare it, said
    /// first in a refusal that declaring it could lift.
    declare_first: Option<String>,
    /// A SQL script's bounds and dry run ([`Session::begin_sql`]).
    sql: Option<SqlRun>,
    /// `[promotion]` and the trail it reads, where a rule requires `staged`.
    promotion: Option<(policy::PromotionConfig, Option<String>)>,
    /// The system policy is part of the policy in force.
    anchored: bool,
    /// The evidence a `staged` requirement was met with, for the intent.
    promoted: Option<crate::audit::PromotionRecord>,
}

impl Session {
    /// Starts an attempt: the policy is evaluated now.
    pub fn begin(input: SessionInput<'_>) -> Session {
        // A rollback answers to the rules of what it undoes as well as its
        // own: `db.migrate`'s confirmation also guards `db.migrate.rollback`.
        let undone = input
            .operation
            .rolls_back
            .as_ref()
            .and(
                input
                    .operation
                    .kind
                    .strip_suffix(crate::rollback::ROLLBACK_SUFFIX),
            )
            .map(str::to_owned);
        match undone {
            Some(kind) => Session::begin_also(input, &[&kind]),
            None => Session::begin_also(input, &[]),
        }
    }

    /// Starts an attempt at running a classified SQL script: the
    /// operation's kind and fingerprint are the script's (its most
    /// dangerous statement's kind, and [`Script::fingerprint`](crate::sql::Script::fingerprint),
    /// so an approval binds this exact script); `input.operation`'s target
    /// and break-glass reason are kept. The decision is
    /// [`sql::decide`](crate::sql::decide)'s: every rule matching any
    /// statement's kind applies.
    ///
    /// ```
    /// use prodguard_core::session::{Operation, Session, SessionInput};
    /// use prodguard_core::audit::Actor;
    /// use prodguard_core::policy::ActorKind;
    /// use prodguard_core::sql::{self, Dialect};
    /// use prodguard_core::{classify, Facts, Policy, Timestamp};
    ///
    /// let policy = Policy::parse_toml(
    ///     "[[rule]]\noperations = [\"db.alter.destructive\"]\ntiers = [\"production\"]\n\
    ///      deny = \"schema changes go through review\"\n",
    ///     "p.toml",
    /// )?;
    /// let facts = Facts { explicit: Some("production".into()), ..Facts::default() };
    /// let detection = classify(&facts, policy.environment());
    /// // The delete of every row is the script's operation; the ALTER's rule applies too.
    /// let script = sql::classify("ALTER TABLE t DROP COLUMN c; DELETE FROM t", Dialect::Postgres);
    /// let session = Session::begin_sql(
    ///     SessionInput {
    ///         policy: &policy,
    ///         detection: &detection,
    ///         operation: Operation::new("ignored").with_target("shop"),
    ///         actor: Actor { user: "ana".into(), kind: ActorKind::Human, account: None },
    ///         attempt_id: "a1".into(),
    ///         now: Timestamp(0),
    ///     },
    ///     &script,
    /// );
    /// assert_eq!(session.decision().exit_code, 120);
    /// assert_eq!(session.decision(), &sql::decide(&policy, &detection, &script, Some("shop")).decision);
    /// # Ok::<(), prodguard_core::PolicyError>(())
    /// ```
    pub fn begin_sql(input: SessionInput<'_>, script: &crate::sql::Script) -> Session {
        Session::begin_script(input, script, false)
    }

    /// [`Session::begin_sql`] for a dry run: the script runs in a
    /// transaction that is always rolled back, and the attempt is recorded
    /// (an intent whose decision is `dry-run`, an outcome `dry_run` with the
    /// rows). Nothing changes, so nobody is asked, no backup is taken, no
    /// approval is spent, no fleet lock is held and any actor may; a deny
    /// rule still refuses, and the stamp must agree.
    pub fn begin_sql_dry_run(input: SessionInput<'_>, script: &crate::sql::Script) -> Session {
        Session::begin_script(input, script, true)
    }

    fn begin_script(
        mut input: SessionInput<'_>,
        script: &crate::sql::Script,
        only_dry_run: bool,
    ) -> Session {
        input.operation.kind = script.operation.as_str().to_owned();
        input.operation.fingerprint = Some(script.fingerprint.clone());
        let bounds = crate::sql::decide::bounds(input.policy, input.detection.tier, script);
        let kinds = script.kinds();
        let mut session = Session::begin_also(input, &kinds);
        session.sql = Some(SqlRun::new(script, bounds, only_dry_run));
        session
    }

    /// A dry run is the whole attempt.
    fn only_dry_run(&self) -> bool {
        self.sql.as_ref().is_some_and(|sql| sql.only_dry_run)
    }

    /// [`Session::begin`] for an operation that also does `also`.
    fn begin_also(mut input: SessionInput<'_>, also: &[&str]) -> Session {
        // A database URL's password reaches no record, prompt or reason.
        if let Some(redacted) = input
            .operation
            .target
            .as_deref()
            .and_then(crate::secret::redact_password)
        {
            input.operation.target = Some(redacted);
        }
        let decision = decide_also(input.policy, input.detection, &input.operation, also);
        let decision_requires_staged = decision.requires(Requirement::Staged);
        let detection = input.detection;
        let challenge = Challenge {
            operation: input.operation.kind.clone(),
            target: input.operation.target.clone(),
            environment: detection.environment.clone(),
            tier: detection.tier,
            why: why_protected(detection),
            expected: input
                .operation
                .target
                .clone()
                .unwrap_or_else(|| detection.environment.clone()),
            mode: decision.confirm_mode,
            consequences: batch_steps(&input.operation.batch),
        };
        let break_glass_users = match input.operation.break_glass {
            Some(_) => input.policy.approval.break_glass_users.clone(),
            None => Vec::new(),
        };
        Session {
            op_record: OperationRecord {
                kind: input.operation.kind.clone(),
                target: input.operation.target.clone(),
                env: detection.environment.clone(),
                tier: detection.tier,
                decided_by: detection.decided_by.clone(),
                fingerprint: input.operation.fingerprint.clone(),
                batch: input.operation.batch.clone(),
            },
            operation: input.operation,
            decision,
            challenge,
            actor: input.actor,
            attempt_id: input.attempt_id,
            now: input.now,
            state: State::Start,
            confirm: None,
            backup: None,
            pending: None,
            audit_failed: None,
            broke_glass: None,
            break_glass_users,
            fleet: !input.policy.fleet_keys().is_empty(),
            fleet_lock: input.policy.fleet.lock.is_some(),
            lock_to_check: false,
            fence: None,
            policy_sources: input.policy.provenance().to_vec(),
            unprotected: crate::trust::unprotected_notice(input.policy, detection.protected),
            declare_first: detection
                .hint
                .clone()
                .filter(|_| detection.decided_by == "default"),
            sql: None,
            promotion: decision_requires_staged.then(|| {
                let promotion = input.policy.promotion().clone();
                let trail = promotion.trail(input.policy.audit()).map(str::to_owned);
                (promotion, trail)
            }),
            promoted: None,
            anchored: input.policy.is_anchored(),
        }
    }

    /// The policy's verdict for this attempt.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Set when an audit append failed where audit was not required
    /// (the attempt went on; the driver should warn).
    pub fn audit_failure(&self) -> Option<&str> {
        self.audit_failed.as_deref()
    }

    /// What the session is waiting for, for [`SessionError::OutOfOrder`].
    fn awaiting(&self) -> &'static str {
        match self.state {
            State::Start => "has not been asked for its first step",
            State::AwaitLock => "waits for the fleet lock (Step::AcquireLock)",
            State::AwaitLockCheck => "waits for the fleet lock check (Step::LockStillHeld)",
            State::AwaitAuditCheck => "waits for the audit check (Step::CheckAudit)",
            State::AwaitStamp => "waits for the target's stamp (Step::CheckStamp)",
            State::AwaitPromotion => "waits for the promotion trail (Step::CheckPromotion)",
            State::AwaitDryRun => "waits for the script's dry run (Step::DryRun)",
            State::AwaitConfirmation => "waits for a confirmation (Step::NeedConfirmation)",
            State::AwaitBackup => "waits for a backup (Step::NeedBackup)",
            State::AwaitRefusalAppend(_) => "waits for its refusal to be appended (Step::Append)",
            State::AwaitFailureAppend => {
                "waits for its failed dry run's record to be appended (Step::Append)"
            }
            State::AwaitIntentAppend => "waits for its intent to be appended (Step::Append)",
            State::Proceeding => "waits for the operation to finish (Step::Proceed)",
            State::AwaitOutcomeAppend => "waits for its outcome to be appended (Step::Append)",
            State::Denied(_) => "has refused (Step::Deny)",
            State::Finished => "is done (Step::Done)",
        }
    }

    /// `Ok` when the session is in `state`, the out-of-order error naming
    /// `answer` otherwise.
    fn expect(&self, state: &State, answer: &'static str) -> Result<(), SessionError> {
        if self.state == *state {
            Ok(())
        } else {
            Err(self.out_of_order(answer))
        }
    }

    fn out_of_order(&self, answer: &'static str) -> SessionError {
        SessionError::OutOfOrder {
            answer,
            awaiting: self.awaiting(),
        }
    }

    fn event(&self, kind: EventKind) -> AuditEvent {
        AuditEvent {
            attempt_id: Some(self.attempt_id.clone()),
            actor: Some(self.actor.clone()),
            op: Some(self.op_record.clone()),
            confirm: self.confirm.clone(),
            backup: self.backup.clone(),
            ..AuditEvent::new(kind)
        }
    }

    fn decision_record(&self, result: &str, exit_code: Option<i32>) -> DecisionRecord {
        DecisionRecord {
            result: result.to_owned(),
            rule: self.decision.rule.clone(),
            requirements: self.decision.requirements.iter().map(|r| r.kind).collect(),
            reasons: self.decision.reasons.clone(),
            exit_code,
            policy: self.policy_sources.clone(),
        }
    }

    fn refuse(
        &mut self,
        exit_code: ExitCode,
        rule: Option<String>,
        missing: String,
        mut next_step: String,
    ) {
        // Guarded only because nothing says where this is: how to say so
        // comes first, before what it takes to run it in production.
        if let Some(declare) = self.declare_first.as_deref().filter(|_| {
            matches!(
                exit_code,
                ExitCode::Denied | ExitCode::NotConfirmed | ExitCode::BackupFailed
            )
        }) {
            next_step = format!("{declare}; if this is production, {next_step}");
        }
        let denial = Denial {
            exit_code,
            rule,
            missing,
            next_step,
            recorded: false,
            note: self.unprotected.map(str::to_owned),
            rows: match self.sql.as_ref().map(|sql| &sql.counted) {
                Some(Counted::Rows(rows)) => Some(rows.clone()),
                _ => None,
            },
        };
        // Usage errors are not attempts at an operation: nothing to record.
        if exit_code == ExitCode::PolicyError {
            self.state = State::Denied(denial);
            return;
        }
        let mut event = self.event(EventKind::Refusal);
        event.sql = self.sql.as_ref().map(|sql| sql.record.clone());
        let mut decision = self.decision_record("refused", Some(exit_code.code()));
        decision.rule.clone_from(&denial.rule);
        // A deny rule's refusal is the decision's first reason: listed once.
        if decision.reasons.first() != Some(&denial.missing) {
            decision.reasons.insert(0, denial.missing.clone());
        }
        event.decision = Some(decision);
        self.pending = Some(Step::Append(event));
        self.state = State::AwaitRefusalAppend(denial);
    }

    fn rule_for(&self, requirement: Requirement) -> Option<String> {
        self.decision
            .requirements
            .iter()
            .find(|r| r.kind == requirement)
            .map(|r| r.rule.clone())
    }

    /// Advances past `Start` through the checks that need no answer.
    fn start(&mut self) {
        if let Some(why) = self
            .sql
            .as_ref()
            .filter(|sql| sql.only_dry_run)
            .and_then(|sql| sql.not_dry_runnable.clone())
        {
            self.refuse(
                ExitCode::PolicyError,
                None,
                format!("the script cannot be dry-run: {why}"),
                "check it with `prodguard sql check`, and run it without --dry-run".into(),
            );
            return;
        }
        match self.decision.result {
            Verdict::Deny => {
                // A denying decision carries 120 or 125; anything else
                // would be a bug, and refuses as a policy error.
                let exit_code =
                    ExitCode::from_code(self.decision.exit_code).unwrap_or(ExitCode::PolicyError);
                let missing = self.decision.reasons.first().cloned().unwrap_or_default();
                let next = if exit_code == ExitCode::PolicyError
                    && !policy::is_valid_operation_name(&self.operation.kind)
                {
                    "use a dotted lowercase name such as `db.migrate`".to_owned()
                } else if exit_code == ExitCode::PolicyError {
                    "name the target exactly as a person would type it: not empty, at most 256 \
                     bytes, without surrounding spaces, control, bidirectional, zero-width or other \
                     invisible characters"
                        .to_owned()
                } else {
                    "this operation does not run in this environment; do it through the \
                     process your team set up for it, or change the policy"
                        .to_owned()
                };
                self.refuse(exit_code, self.decision.rule.clone(), missing, next);
            }
            // The fleet lock is held from before anyone is asked until the
            // outcome is recorded; operations that are free here take none.
            // A dry run changes nothing: it waits for no other host.
            Verdict::Require if self.fleet && !self.only_dry_run() => {
                self.state = State::AwaitLock;
                self.pending = Some(Step::AcquireLock {
                    operation: self.operation.kind.clone(),
                    target: self.operation.target.clone(),
                });
            }
            Verdict::Allow | Verdict::Require => self.after_lock(),
        }
    }

    /// Answers a [`Step::AcquireLock`]: `Ok` once the lock is held, with
    /// its fencing token (recorded in the intent), or `Ok(None)` where the
    /// policy names no `[fleet] lock` to take; or why it cannot be held.
    pub fn lock_acquired(
        &mut self,
        result: Result<Option<u64>, LockRefusal>,
    ) -> Result<(), SessionError> {
        self.expect(&State::AwaitLock, "lock_acquired")?;
        self.pending = None;
        match result {
            Ok(fence) => {
                self.fence = fence;
                self.lock_to_check = self.fleet_lock;
                self.after_lock();
            }
            Err(refusal) => {
                self.refuse(refusal.exit_code, None, refusal.missing, refusal.next_step);
            }
        }
        Ok(())
    }

    /// Answers a [`Step::LockStillHeld`]: `Ok` when the lock is still held,
    /// or why it is not (the attempt is then refused before its intent).
    pub fn lock_checked(&mut self, result: Result<(), LockRefusal>) -> Result<(), SessionError> {
        self.expect(&State::AwaitLockCheck, "lock_checked")?;
        self.pending = None;
        self.lock_to_check = false;
        match result {
            Ok(()) => self.append_intent(),
            Err(refusal) => {
                self.refuse(refusal.exit_code, None, refusal.missing, refusal.next_step);
            }
        }
        Ok(())
    }

    /// Past the fleet lock (or without one): the audit check first, where
    /// audit is required.
    fn after_lock(&mut self) {
        if self.audit_required() {
            // Nobody types a confirmation or waits for a backup only to
            // learn that the log cannot take the record.
            self.state = State::AwaitAuditCheck;
            self.pending = Some(Step::CheckAudit);
        } else {
            self.check_stamp();
        }
    }

    /// Answers a [`Step::CheckAudit`].
    pub fn audit_checked(&mut self, result: Result<(), AuditFailure>) -> Result<(), SessionError> {
        self.expect(&State::AwaitAuditCheck, "audit_checked")?;
        self.pending = None;
        match result {
            Ok(()) => self.check_stamp(),
            // Still offered to the log: a sink with a local copy may take it.
            Err(e) => {
                let denial = self.audit_unavailable(&e);
                self.refuse(
                    denial.exit_code,
                    denial.rule,
                    denial.missing,
                    denial.next_step,
                );
            }
        }
        Ok(())
    }

    fn audit_unavailable(&self, problem: &AuditFailure) -> Denial {
        Denial {
            exit_code: ExitCode::AuditUnavailable,
            rule: self.rule_for(Requirement::Audit),
            missing: format!("the audit log is unavailable: {problem}"),
            next_step: "make the audit log writable (PRODGUARD_AUDIT_LOG or [audit] log), or run \
                        `prodguard audit verify` to see what is wrong with it"
                .into(),
            recorded: false,
            note: None,
            rows: None,
        }
    }

    /// Asks for the target's stamp, unless there is no target or this is the
    /// stamping operation itself (which exists to correct a stamp).
    fn check_stamp(&mut self) {
        match &self.operation.target {
            Some(target) if reads_stamp(&self.operation) => {
                self.state = State::AwaitStamp;
                self.pending = Some(Step::CheckStamp {
                    target: target.clone(),
                });
            }
            _ => self.check_actor(),
        }
    }

    /// Answers a [`Step::CheckStamp`]: the target's stamp, `None` when it has
    /// none (or is not a stampable target), `Err` when it cannot be read.
    pub fn stamp_checked(
        &mut self,
        stamp: Result<Option<Stamp>, StampError>,
    ) -> Result<(), SessionError> {
        self.expect(&State::AwaitStamp, "stamp_checked")?;
        self.pending = None;
        let raw_target = self.operation.target.clone().unwrap_or_default();
        let target = escape(&raw_target);
        let here = format!(
            "this environment is `{}` (tier {}), decided by {}",
            escape(&self.challenge.environment),
            self.challenge.tier,
            escape(&self.op_record.decided_by)
        );
        // The environment to stamp it for: this one, when it has a name a
        // stamp can carry.
        let env = match self.challenge.tier {
            Tier::Unknown => Cow::Borrowed("NAME"),
            _ => shell_word(&self.challenge.environment),
        };
        match (stamp_verdict(&stamp, &self.challenge.environment), stamp) {
            (StampVerdict::None | StampVerdict::Agrees, _) => self.check_actor(),
            (_, Ok(Some(stamp))) => self.refuse(
                ExitCode::EnvMismatch,
                None,
                format!(
                    "target `{target}` is stamped `{}` (tier {}), but {here}",
                    escape(&stamp.environment),
                    stamp.tier
                ),
                format!(
                    "if this is the wrong machine, stop here; if `{target}` was copied here on \
                     purpose (say a production dump restored for development), re-stamp it: \
                     prodguard stamp --target {} --env {env}",
                    shell_word(&raw_target)
                ),
            ),
            (_, Ok(None)) => self.check_actor(),
            (_, Err(e)) => self.refuse(
                ExitCode::EnvMismatch,
                None,
                format!("cannot read the environment stamp of `{target}`: {e}"),
                "make the target readable, then retry".into(),
            ),
        }
        Ok(())
    }

    fn check_actor(&mut self) {
        let actors = &self.decision.actors;
        // Anyone may see what a script would do: the dry run changes nothing.
        if actors.is_empty() || actors.contains(&self.actor.kind) || self.only_dry_run() {
            self.after_actor_check();
            return;
        }
        let allowed: Vec<&str> = actors.iter().map(|a| a.as_str()).collect();
        let missing = format!(
            "this operation may only be done here by: {}; {} acts as {}",
            allowed.join(", "),
            escape(&self.actor.user),
            self.actor.kind.as_str()
        );
        let next_step = if actors.contains(&ActorKind::Human) {
            "ask a person to run it from a terminal".to_owned()
        } else {
            format!("run it as one of: {}", allowed.join(", "))
        };
        let rule = self.decision.rule.clone();
        self.refuse(ExitCode::NotConfirmed, rule, missing, next_step);
    }

    /// Audit is required by the policy, and always for break-glass: an
    /// emergency bypass that leaves no record is not allowed.
    fn audit_required(&self) -> bool {
        self.decision.requires(Requirement::Audit) || self.operation.break_glass.is_some()
    }

    fn after_actor_check(&mut self) {
        if self.only_dry_run() {
            self.append_intent();
            return;
        }
        // Before anyone is asked: a run with no way back, or that nobody
        // staged, stops here.
        if self.decision.requires(Requirement::Rollback)
            && self.own_rollback().is_none()
            && !self.decision.requires(Requirement::Backup)
            && !self.undoing()
        {
            self.refuse_without_rollback();
            return;
        }
        if self.promotion.is_some() && self.promoted.is_none() && !self.undoing() {
            self.ask_promotion();
            return;
        }
        self.after_promotion();
    }

    /// Whether this attempt undoes another (`prodguard rollback`): it
    /// answers to the rules of both, but the undone operation was staged
    /// and an undo cannot wait for staging, and the state it restores is
    /// its own way back, so `staged` and `rollback` do not hold it up.
    fn undoing(&self) -> bool {
        self.operation.rolls_back.is_some()
            && self
                .operation
                .kind
                .ends_with(crate::rollback::ROLLBACK_SUFFIX)
    }

    /// The operation's own rollback command (a blank one is none).
    fn own_rollback(&self) -> Option<&str> {
        self.operation
            .rollback
            .as_deref()
            .filter(|command| !command.trim().is_empty())
    }

    /// The way back the intent records: the operation's own command, else
    /// (where the policy requires one) its backup, restored.
    fn rollback_plan(&self) -> Option<crate::audit::RollbackPlan> {
        match (self.own_rollback(), &self.backup) {
            (Some(command), _) => Some(crate::audit::RollbackPlan::command(command)),
            (None, Some(_)) if self.decision.requires(Requirement::Rollback) => {
                Some(crate::audit::RollbackPlan::restore_backup())
            }
            _ => None,
        }
    }

    fn refuse_without_rollback(&mut self) {
        let rule = self.rule_for(Requirement::Rollback);
        let missing = format!(
            "rule `{}` requires a way back before {} runs (`rollback`), and it has none",
            escape(rule.as_deref().unwrap_or_default()),
            self.operation.kind
        );
        self.refuse(
            ExitCode::PolicyError,
            rule,
            missing,
            "give it one: --rollback CMD (a down-migration, a restore command), `.rollback(…)` \
             in Rust, or require a backup in the rule, whose restore becomes the plan"
                .into(),
        );
    }

    /// Asks for the promotion trail, once the operation can be looked up
    /// in it (a fingerprint) and the policy says where and in what.
    fn ask_promotion(&mut self) {
        let rule = self.rule_for(Requirement::Staged);
        let shown_rule = escape(rule.as_deref().unwrap_or_default()).into_owned();
        let Some((promotion, trail)) = &self.promotion else {
            return;
        };
        let from = escape(promotion.from.as_deref().unwrap_or("staging"));
        let problem = if self
            .operation
            .fingerprint
            .as_deref()
            .is_none_or(|f| f.trim().is_empty())
        {
            Some((
                format!(
                    "rule `{shown_rule}` requires {} to have succeeded in {from} first, and that \
                     is told by its fingerprint, but it has none",
                    self.operation.kind
                ),
                "give it one: --fingerprint (a migration's checksum, a script's hash), \
                 `.fingerprint(…)` in Rust, or run SQL as a script (`prodguard sql exec`), \
                 whose fingerprint is its own"
                    .to_owned(),
            ))
        } else if promotion.from.is_none() {
            Some((
                format!(
                    "rule `{shown_rule}` requires `staged`, but the policy does not say where \
                     from: it has no [promotion] from"
                ),
                "add [promotion] from = \"staging\" (an environment's or tier's name) to the \
                 policy"
                    .to_owned(),
            ))
        } else if trail.is_none() {
            Some((
                format!(
                    "rule `{shown_rule}` requires `staged`, but the policy names no trail to find \
                     the staging run in"
                ),
                "set [promotion] staging_log = PATH (an audit log exported from staging), or \
                 run in fleet mode ([audit] sink)"
                    .to_owned(),
            ))
        } else if self.anchored && trail.as_deref().is_some_and(policy::is_postgres_url) {
            // Every fleet host writes the shared trail with its own
            // credentials, and the chain has no key: the guarded account
            // could append a staging success that verifies.
            Some((
                format!(
                    "rule `{shown_rule}` requires `staged`, and its trail is a PostgreSQL trail, \
                     which the account of every host of the fleet can append to, so it is no \
                     evidence under a system policy"
                ),
                "export the staging trail to a file only root can write on this host and name \
                 it in [promotion] staging_log of the system policy"
                    .to_owned(),
            ))
        } else {
            None
        };
        match (problem, trail) {
            (Some((missing, next_step)), _) => {
                self.refuse(ExitCode::PolicyError, rule, missing, next_step);
            }
            (None, Some(trail)) => {
                self.pending = Some(Step::CheckPromotion {
                    trail: trail.clone(),
                });
                self.state = State::AwaitPromotion;
            }
            (None, None) => {}
        }
    }

    /// Answers a [`Step::CheckPromotion`] with the attempts of the trail
    /// (read after it verified), or why it cannot be believed (123). The
    /// operation must have succeeded in `[promotion] from` within
    /// `[promotion] within`, with its fingerprint; a batch with the batch's
    /// fingerprint, or else each step with its own. Without that, 120.
    pub fn promotion_read(
        &mut self,
        trail: Result<&[crate::promotion::Attempt], TrailUnavailable>,
    ) -> Result<(), SessionError> {
        use crate::promotion::{PromotionQuery, find_evidence};
        self.expect(&State::AwaitPromotion, "promotion_read")?;
        self.pending = None;
        let rule = self.rule_for(Requirement::Staged);
        let Some((promotion, Some(trail_name))) = self.promotion.clone() else {
            return Err(self.out_of_order("promotion_read"));
        };
        let from = promotion.from.clone().unwrap_or_default();
        let attempts = match trail {
            Ok(attempts) => attempts,
            Err(why) => {
                self.refuse(
                    ExitCode::AuditUnavailable,
                    rule,
                    format!("the promotion evidence cannot be checked: {why}"),
                    "repair or replace the trail ([promotion] staging_log, or [audit] sink), \
                     then retry"
                        .into(),
                );
                return Ok(());
            }
        };
        let query = |fingerprint: &str| {
            PromotionQuery::new(
                self.operation.kind.clone(),
                fingerprint,
                from.clone(),
                promotion.within_seconds,
                self.now,
            )
        };
        let own = self.operation.fingerprint.clone().unwrap_or_default();
        // A batch staged as the same batch, or else step by step.
        let found = match find_evidence(attempts, &query(&own)) {
            Ok(evidence) => Ok(vec![(own.clone(), evidence)]),
            Err(missing) if self.operation.batch.is_empty() => Err((None, missing)),
            Err(_) => self
                .operation
                .batch
                .iter()
                .map(|item| {
                    find_evidence(attempts, &query(&item.fingerprint))
                        .map(|evidence| (item.fingerprint.clone(), evidence))
                        .map_err(|missing| (Some(item.name.clone()), missing))
                })
                .collect(),
        };
        match found {
            Ok(found) => {
                self.promoted = Some(crate::audit::PromotionRecord {
                    from,
                    within_seconds: promotion.within_seconds,
                    trail: trail_name,
                    runs: found
                        .into_iter()
                        .map(|(fingerprint, evidence)| crate::audit::PromotedRun {
                            fingerprint,
                            env: evidence.attempt.op.env.clone(),
                            outcome: evidence.cited().clone(),
                            attempt_id: evidence.attempt.attempt_id,
                        })
                        .collect(),
                });
                self.after_promotion();
            }
            Err((step, missing)) => {
                let missing = match step {
                    Some(step) => format!("step `{}`: {missing}", escape(&step)),
                    None => missing.to_string(),
                };
                self.refuse(
                    ExitCode::Denied,
                    rule,
                    missing,
                    format!(
                        "run the same {} (same fingerprint) in {} and let it succeed there, then \
                         run it here; the trail read was {}",
                        self.operation.kind,
                        escape(&from),
                        escape(&trail_name)
                    ),
                );
            }
        }
        Ok(())
    }

    fn after_promotion(&mut self) {
        if let Some(reason) = self.operation.break_glass.clone() {
            self.break_glass(reason);
            return;
        }
        // A person is shown what the script will do before being asked,
        // and rows within `confirm_above_rows` need nobody; a script no dry
        // run may run goes uncounted, and every confirmation applies.
        if let Some(sql) = self
            .sql
            .as_mut()
            .filter(|sql| sql.counted == Counted::NotRun)
            && self.decision.requires(Requirement::Confirm)
        {
            if sql.not_dry_runnable.is_some() {
                sql.counted = Counted::Uncounted;
                self.challenge.consequences = sql.consequences();
            } else {
                self.state = State::AwaitDryRun;
                self.pending = Some(Step::DryRun);
                return;
            }
        }
        self.ask_confirmation();
    }

    /// Answers a [`Step::DryRun`] with the rows each statement affected
    /// (by index, rolled back), or `None` when they could not be counted
    /// (every rule asking for a confirmation then applies). A statement over
    /// its `max_rows` refuses now (120), before anyone is asked.
    pub fn dry_ran(&mut self, rows: Option<Vec<u64>>) -> Result<(), SessionError> {
        self.expect(&State::AwaitDryRun, "dry_ran")?;
        self.pending = None;
        let Some(sql) = self.sql.as_mut() else {
            return Err(self.out_of_order("dry_ran"));
        };
        sql.record.dry_run_rows.clone_from(&rows);
        sql.counted = match rows {
            Some(rows) => Counted::Rows(rows),
            None => Counted::Uncounted,
        };
        self.challenge.consequences = sql.consequences();
        let refusal = match &sql.counted {
            Counted::Rows(rows) => sql.commit_refusal(rows, None, false),
            _ => None,
        };
        match refusal {
            Some((exit_code, missing, next_step)) => {
                let missing = format!("{missing} (counted by a dry run; nothing was changed)");
                self.refuse(exit_code, None, missing, next_step);
            }
            None => self.ask_confirmation(),
        }
        Ok(())
    }

    /// Answers a [`Step::DryRun`] whose script failed (rolled back): the
    /// attempt ends, recorded as a refusal record whose decision is
    /// `failed` with `why`; then [`Step::Done`]. The driver reports the
    /// failure as the operation's own (nothing ran to its end, nothing
    /// was changed).
    pub fn dry_run_failed(&mut self, why: &str) -> Result<(), SessionError> {
        self.expect(&State::AwaitDryRun, "dry_run_failed")?;
        let mut event = self.event(EventKind::Refusal);
        let mut decision = self.decision_record("failed", None);
        decision
            .reasons
            .insert(0, format!("the dry run failed, nothing was changed: {why}"));
        event.decision = Some(decision);
        event.sql = self.sql.as_ref().map(|sql| sql.record.clone());
        self.pending = Some(Step::Append(event));
        self.state = State::AwaitFailureAppend;
        Ok(())
    }

    fn ask_confirmation(&mut self) {
        let waived = self.sql.as_ref().is_some_and(SqlRun::confirmation_waived);
        if self.decision.requires(Requirement::Confirm) && self.confirm.is_none() && !waived {
            self.state = State::AwaitConfirmation;
            self.pending = Some(Step::NeedConfirmation(self.challenge.clone()));
        } else {
            self.after_confirmation();
        }
    }

    fn after_confirmation(&mut self) {
        if self.decision.requires(Requirement::Backup) && self.backup.is_none() {
            match self.decision.backup.clone() {
                Some(spec) => {
                    self.state = State::AwaitBackup;
                    self.pending = Some(Step::NeedBackup(BackupRequest {
                        target: self.operation.target.clone(),
                        spec,
                    }));
                }
                None => {
                    let rule = self.rule_for(Requirement::Backup);
                    self.refuse(
                        ExitCode::BackupFailed,
                        rule,
                        "a backup is required but the rule names no way to make one".into(),
                        "add `backup = { command = \"…\", verify = \"…\" }` to the rule".into(),
                    );
                }
            }
        } else {
            self.write_intent();
        }
    }

    /// Skips confirmation and backup, where the policy allows it, for one
    /// operation on one target, with a reason recorded as its own decision.
    /// Only a person whose OS account `[approval] break_glass_users` lists
    /// may: never an AI agent, and never by a name from the environment.
    fn break_glass(&mut self, reason: String) {
        let rule = self
            .rule_for(Requirement::Confirm)
            .or_else(|| self.rule_for(Requirement::Backup));
        if self.actor.kind == ActorKind::Agent {
            self.refuse(
                ExitCode::NotConfirmed,
                rule,
                "an AI agent cannot break glass".into(),
                match token_for(&self.operation) {
                    Some(token) => {
                        format!(
                            "ask a person to approve it ({token}), or to break glass themselves"
                        )
                    }
                    None => "ask a person to break glass themselves".into(),
                },
            );
            return;
        }
        let users = &self.break_glass_users;
        let Some(account) = self
            .actor
            .account
            .clone()
            .filter(|account| users.contains(account))
        else {
            let who = match &self.actor.account {
                Some(account) => format!("the account `{}` is not listed", escape(account)),
                None => "no OS account was stated for this actor".into(),
            };
            let ask = if users.is_empty() {
                "nobody may break glass here: confirm it the usual way, or ask root to list the \
                 accounts that may in [approval] break_glass_users of the system policy"
                    .to_owned()
            } else {
                format!(
                    "ask one of {} to break glass, or confirm it the usual way",
                    users.join(", ")
                )
            };
            self.refuse(
                ExitCode::NotConfirmed,
                rule,
                format!(
                    "break-glass is only for the accounts in [approval] break_glass_users; {who}"
                ),
                ask,
            );
            return;
        };
        if reason.trim().chars().count() < MIN_BREAK_GLASS_REASON {
            self.refuse(
                ExitCode::PolicyError,
                None,
                "break-glass needs a reason of at least 10 characters (what is on fire)".into(),
                "give the reason, e.g. \"INC-1234: orders table locked, restoring service\"".into(),
            );
        } else if self.operation.target.is_none() {
            self.refuse(
                ExitCode::PolicyError,
                None,
                "break-glass is scoped to one target, and this operation names none".into(),
                "name the operation's target".into(),
            );
        } else if !self.decision.break_glass_allowed {
            self.refuse(
                ExitCode::NotConfirmed,
                rule,
                format!(
                    "break-glass is not allowed for {} here: a matching rule does not say break_glass = true",
                    self.operation.kind
                ),
                "confirm it the usual way, or ask for the policy to allow break-glass for it".into(),
            );
        } else {
            // The account, not the display label, is who broke glass.
            self.confirm = Some(ConfirmEvidence {
                method: "break-glass".into(),
                approver: Some(account),
                token_id: None,
                exp: None,
                max_rows: None,
            });
            self.broke_glass = Some(reason);
            self.write_intent();
        }
    }

    /// The intent comes next: once the fleet lock, if one was taken, is
    /// checked again.
    fn write_intent(&mut self) {
        if self.lock_to_check {
            self.state = State::AwaitLockCheck;
            self.pending = Some(Step::LockStillHeld);
        } else {
            self.append_intent();
        }
    }

    fn append_intent(&mut self) {
        // Break glass may have skipped the backup that was to be the plan.
        let rollback = self.rollback_plan();
        if rollback.is_none()
            && self.decision.requires(Requirement::Rollback)
            && !self.only_dry_run()
            && !self.undoing()
        {
            self.refuse_without_rollback();
            return;
        }
        let mut event = self.event(EventKind::Intent);
        event.rollback = rollback;
        event.rolls_back.clone_from(&self.operation.rolls_back);
        event.fence = self.fence;
        event.promotion.clone_from(&self.promoted);
        let mut decision = self.decision_record("proceed", None);
        if let Some(sql) = &self.sql {
            event.sql = Some(sql.record.clone());
            if sql.only_dry_run {
                decision.result = "dry-run".into();
            }
        }
        if let Some(reason) = &self.broke_glass {
            decision.result = "break-glass".into();
            decision.reasons.insert(0, format!("break-glass: {reason}"));
            event.message = Some(format!(
                "break-glass by {} (account {}): {reason}",
                self.actor.user,
                self.actor.account.as_deref().unwrap_or("none stated")
            ));
        }
        event.decision = Some(decision);
        self.state = State::AwaitIntentAppend;
        self.pending = Some(Step::Append(event));
    }

    /// The next thing to do. Repeats the same step until it is answered.
    pub fn next_step(&mut self) -> Step {
        if self.state == State::Start {
            self.start();
        }
        if let Some(step) = &self.pending {
            return step.clone();
        }
        match &self.state {
            State::Proceeding => Step::Proceed,
            State::Denied(denial) => Step::Deny(denial.clone()),
            State::Finished => Step::Done,
            // Every awaiting state sets `pending`; reaching here means the
            // driver skipped a step. Refuse rather than guess.
            _ => Step::Deny(Denial {
                exit_code: ExitCode::AuditUnavailable,
                rule: None,
                missing: "the guard session was driven out of order".into(),
                next_step: "this is a bug in the driver; report it".into(),
                recorded: false,
                note: None,
                rows: None,
            }),
        }
    }

    /// Answers a [`Step::NeedConfirmation`].
    pub fn answer_confirmation(&mut self, answer: ConfirmationAnswer) -> Result<(), SessionError> {
        self.expect(&State::AwaitConfirmation, "answer_confirmation")?;
        self.pending = None;
        let rule = self.rule_for(Requirement::Confirm);
        let agent = self.actor.kind == ActorKind::Agent;
        let expected = escape(&self.challenge.expected);
        // A person who answered was at a terminal (or a host's prompt): told
        // to answer again, not to find a terminal.
        let typing = match &answer {
            ConfirmationAnswer::Declined(_) => {
                format!("run it again and type `{expected}` when asked")
            }
            _ => format!("run it from a terminal and type `{expected}` when asked"),
        };
        let token = token_for(&self.operation);
        let how = match (self.decision.confirm_mode, &token) {
            (ConfirmMode::Typed | ConfirmMode::Both, _) if agent => format!(
                "an AI agent cannot confirm by typing: ask a person to run it from a terminal \
                 and type `{expected}` when asked"
            ),
            (ConfirmMode::Either | ConfirmMode::Approval, Some(token)) if agent => {
                format!("an AI agent cannot confirm by typing: ask a person for {token}")
            }
            (ConfirmMode::Either, None) if agent => format!(
                "an AI agent cannot confirm by typing: ask a person to run it from a terminal \
                 and type `{expected}` when asked"
            ),
            (ConfirmMode::Typed, _) | (ConfirmMode::Either, None) => typing,
            (ConfirmMode::Either, Some(token)) => format!("{typing}, or get {token}"),
            (ConfirmMode::Approval, Some(token)) => format!("get {token}"),
            (ConfirmMode::Approval, None) => TOKEN_NEEDS_TARGET.to_owned(),
            (_, Some(token)) => format!("get {token}, and {typing}"),
            (_, None) => format!("{TOKEN_NEEDS_TARGET}; and {typing}"),
        };
        match answer {
            // Whatever a face asked: an agent can type into a terminal (or
            // answer a host's prompt) as well as a person can, so for an
            // agent only a person's approval token confirms.
            ConfirmationAnswer::Confirmed(evidence) if agent && evidence.method != "approval" => {
                self.refuse(
                    ExitCode::NotConfirmed,
                    rule,
                    format!(
                        "an AI agent cannot confirm for itself (it answered by {}); a person \
                         must approve it",
                        evidence.method
                    ),
                    how,
                );
            }
            ConfirmationAnswer::Confirmed(evidence) => {
                match (evidence.max_rows, &self.sql) {
                    // A bound nobody would enforce is no bound: refuse.
                    (Some(max), None) => self.refuse(
                        ExitCode::NotConfirmed,
                        rule,
                        format!(
                            "the approval allows at most {max} rows per statement, and this                              operation's rows are not counted"
                        ),
                        "run the script through prodguard's SQL guard (`prodguard sql exec`),                          which counts them, or ask for an approval without --max-rows"
                            .into(),
                    ),
                    // Nothing counts a statement run alone before it commits.
                    (Some(max), Some(sql)) if sql.alone => self.refuse(
                        ExitCode::NotConfirmed,
                        rule,
                        format!(
                            "the approval allows at most {max} rows per statement, and this \
                             statement runs alone, outside a transaction: its rows cannot be \
                             counted before it commits"
                        ),
                        "ask for an approval without --max-rows".into(),
                    ),
                    (Some(max), Some(sql)) => match &sql.counted {
                        Counted::Rows(rows) if rows.iter().any(|&n| n > max) => {
                            let refusal = sql.commit_refusal(rows, Some(&evidence), false);
                            let (missing, next_step) = refusal
                                .map(|(_, missing, next)| (missing, next))
                                .unwrap_or_default();
                            self.refuse(
                                ExitCode::NotConfirmed,
                                rule,
                                format!(
                                    "{missing} (counted by a dry run; nothing was changed)"
                                ),
                                next_step,
                            );
                        }
                        _ => {
                            self.confirm = Some(evidence);
                            self.after_confirmation();
                        }
                    },
                    (None, _) => {
                        self.confirm = Some(evidence);
                        self.after_confirmation();
                    }
                }
            }
            ConfirmationAnswer::Declined(why) => self.refuse(
                ExitCode::NotConfirmed,
                rule,
                format!("confirmation declined: {why}"),
                how,
            ),
            ConfirmationAnswer::Unavailable(why) => self.refuse(
                ExitCode::NotConfirmed,
                rule,
                format!("confirmation required but none could be given: {why}"),
                how,
            ),
        }
        Ok(())
    }

    /// Answers a [`Step::NeedBackup`] with evidence or the reason it failed.
    pub fn answer_backup(
        &mut self,
        answer: Result<BackupEvidence, BackupError>,
    ) -> Result<(), SessionError> {
        self.expect(&State::AwaitBackup, "answer_backup")?;
        self.pending = None;
        let rule = self.rule_for(Requirement::Backup);
        let spec = self.decision.backup.clone();
        let problem = match answer {
            Err(why) => Some(format!("the backup failed: {why}")),
            Ok(evidence) => {
                let max_age = spec.as_ref().and_then(BackupSpec::max_age_seconds);
                let has_verify = spec.as_ref().is_some_and(|s| s.verify().is_some());
                let age = self.now.seconds_since(evidence.created);
                let problem = if let Some(malformed) = evidence.malformed() {
                    Some(malformed)
                } else if evidence.bytes == 0 {
                    Some(format!(
                        "the backup at {} is empty",
                        escape(&evidence.location)
                    ))
                } else if (has_verify || evidence.verification.is_some()) && !evidence.verified {
                    Some(format!(
                        "the backup at {} did not pass its verify command",
                        escape(&evidence.location)
                    ))
                } else if age < -MAX_CLOCK_SKEW_SECONDS {
                    // A future date would never go stale: refuse it.
                    Some(format!(
                        "the backup at {} is dated {}s in the future; check the clocks",
                        escape(&evidence.location),
                        -age
                    ))
                } else if let Some(max) =
                    max_age.filter(|m| age > i64::try_from(*m).unwrap_or(i64::MAX))
                {
                    Some(format!(
                        "the backup at {} is {age}s old; the rule accepts at most {max}s",
                        escape(&evidence.location)
                    ))
                } else if !evidence.verified {
                    // A copy nobody checked is not evidence that a restore would work.
                    Some(format!(
                        "the backup at {} was not verified; add a verify command to the rule's \
                         backup (e.g. verify = \"test \\\"$(sqlite3 {{path}} 'PRAGMA integrity_check')\\\" = ok\")",
                        escape(&evidence.location)
                    ))
                } else {
                    None
                };
                if problem.is_none() {
                    self.backup = Some(evidence);
                }
                problem
            }
        };
        match problem {
            None => self.write_intent(),
            Some(missing) => self.refuse(
                ExitCode::BackupFailed,
                rule,
                missing,
                "fix the backup command (run it by hand to see its error) or make a fresh \
                 backup, then retry"
                    .to_owned(),
            ),
        }
        Ok(())
    }

    /// Reports the result of a [`Step::Append`].
    pub fn appended(&mut self, result: Result<(), AuditFailure>) -> Result<(), SessionError> {
        if !matches!(
            self.state,
            State::AwaitRefusalAppend(_)
                | State::AwaitFailureAppend
                | State::AwaitIntentAppend
                | State::AwaitOutcomeAppend
        ) {
            return Err(self.out_of_order("appended"));
        }
        self.pending = None;
        match std::mem::replace(&mut self.state, State::Finished) {
            State::AwaitRefusalAppend(mut denial) => {
                match result {
                    Ok(()) => denial.recorded = true,
                    Err(e) => self.audit_failed = Some(e.message),
                }
                self.state = State::Denied(denial);
            }
            State::AwaitIntentAppend => match result {
                Ok(()) => self.state = State::Proceeding,
                Err(e) if self.audit_required() => {
                    // Recorded where it still can be (a sink with a local
                    // copy may have taken the intent in one place only).
                    let denial = self.audit_unavailable(&e);
                    self.refuse(
                        denial.exit_code,
                        denial.rule,
                        denial.missing,
                        denial.next_step,
                    );
                }
                Err(e) => {
                    self.audit_failed = Some(e.message);
                    self.state = State::Proceeding;
                }
            },
            State::AwaitOutcomeAppend | State::AwaitFailureAppend => {
                if let Err(e) = result {
                    self.audit_failed = Some(e.message);
                }
                self.state = State::Finished;
            }
            other => self.state = other,
        }
        Ok(())
    }

    /// Reports that the intent could not be appended because its approval
    /// token cannot be spent: another run spent it first, or the log cannot
    /// record the spending (an approval is never used without that record).
    pub fn approval_refused(&mut self, why: ApprovalUnusable) -> Result<(), SessionError> {
        self.expect(&State::AwaitIntentAppend, "approval_refused")?;
        self.pending = None;
        // The token was not ours to spend: the refusal carries no confirmation.
        self.confirm = None;
        let rule = self.rule_for(Requirement::Confirm);
        self.refuse(
            ExitCode::NotConfirmed,
            rule,
            format!("the approval token cannot be used: {why}"),
            match token_for(&self.operation) {
                Some(token) => {
                    format!("an approval token is good for one run; ask for a new one ({token})")
                }
                None => "an approval token is good for one run; ask for a new one".into(),
            },
        );
        Ok(())
    }

    /// Reports that the intent spending an approval token could not be
    /// appended because the log (or the approval ledger) is unavailable:
    /// 123, whether or not the rule requires audit — an approval is never
    /// used without the record that spends it.
    pub fn spending_unavailable(&mut self, why: AuditFailure) -> Result<(), SessionError> {
        self.expect(&State::AwaitIntentAppend, "spending_unavailable")?;
        self.pending = None;
        self.confirm = None;
        let rule = self.rule_for(Requirement::Confirm);
        self.refuse(
            ExitCode::AuditUnavailable,
            rule,
            format!("the approval cannot be recorded as spent: {why}"),
            "make the audit trail or approval ledger named above reachable, then run again \
             (if the token is then refused as spent, ask for a new one)"
                .into(),
        );
        Ok(())
    }

    /// Whether a SQL script's run may commit the rows it counted
    /// (`rows[i]` for statement `i`, in its still-open transaction): every
    /// statement within its rule's `max_rows` (else 120) and the
    /// approval's `--max-rows`, none above what the person who confirmed
    /// was shown, and none above `confirm_above_rows` when the dry run's
    /// rows waived the confirmation (else 121). On `Err` the driver rolls
    /// back and records the outcome `rolled_back` with the denial's code;
    /// a dry run never commits.
    pub fn commit_check(&self, rows: &[u64]) -> Result<(), Denial> {
        let denial = |exit_code, missing: String, next_step: String| Denial {
            exit_code,
            rule: None,
            missing: format!("{missing}; rolled back, nothing was changed"),
            next_step,
            recorded: false,
            note: None,
            rows: Some(rows.to_vec()),
        };
        let Some(sql) = self
            .sql
            .as_ref()
            .filter(|_| self.state == State::Proceeding)
        else {
            return Err(denial(
                ExitCode::PolicyError,
                format!(
                    "the script may not commit: the guard session {}",
                    self.awaiting()
                ),
                "this is a bug in the driver; report it".into(),
            ));
        };
        if sql.only_dry_run {
            return Err(denial(
                ExitCode::PolicyError,
                "a dry run never commits".into(),
                "run it without --dry-run".into(),
            ));
        }
        let confirm_required = self.decision.requires(Requirement::Confirm);
        match sql.commit_refusal(rows, self.confirm.as_ref(), confirm_required) {
            Some((exit_code, missing, next_step)) => Err(denial(exit_code, missing, next_step)),
            None => Ok(()),
        }
    }

    /// Reports how the operation ended (after [`Step::Proceed`]).
    pub fn finish(&mut self, outcome: OutcomeRecord) -> Result<(), SessionError> {
        self.expect(&State::Proceeding, "finish")?;
        let mut event = self.event(EventKind::Outcome);
        event.outcome = Some(outcome);
        // The outcome repeats neither evidence nor decision: the intent has them.
        event.backup = None;
        event.confirm = None;
        self.state = State::AwaitOutcomeAppend;
        self.pending = Some(Step::Append(event));
        Ok(())
    }
}

/// A session of `operation` on a production host (declared), for `ana`, a
/// person with the OS account `ana`: how the core's tests start one.
#[cfg(test)]
pub(crate) fn in_production(policy: &Policy, operation: Operation, now: Timestamp) -> Session {
    let facts = crate::Facts {
        explicit: Some("production".into()),
        ..crate::Facts::default()
    };
    let detection = crate::classify(&facts, policy.environment());
    Session::begin(SessionInput {
        policy,
        detection: &detection,
        operation,
        actor: Actor {
            user: "ana".into(),
            kind: ActorKind::Human,
            account: Some("ana".into()),
        },
        attempt_id: "a-test".into(),
        now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_without_names_differs_only_in_the_names() {
        let policy = Policy::parse_toml(
            "[[rule]]\noperations = [\"db.*\"]\nrequire = [\"audit\"]\n\
             [[rule]]\noperations = [\"*.migrate\"]\nrequire = [\"confirm\"]\nactors = [\"human\"]\n\
             [[rule]]\noperations = [\"db.drop\"]\ndeny = \"no\"\n",
            "names.toml",
        )
        .unwrap();
        for tier in [Tier::Production, Tier::Development] {
            for op in ["db.migrate", "db.drop", "x.migrate", "none"] {
                let full = policy.evaluate(tier, op);
                let quiet = policy.evaluate_with(tier, op, &[], false);
                assert!(quiet.matched_rules.is_empty());
                assert_eq!(
                    quiet,
                    policy::Evaluation {
                        matched_rules: Vec::new(),
                        ..full
                    }
                );
            }
        }
    }

    #[test]
    fn the_quick_target_check_agrees_with_the_one_that_explains() {
        const PIECES: &[&str] = &[
            "a", " ", "\t", "\n", "\u{b}", "\u{7f}", "\u{0}", "é", "\u{85}", "\u{a0}", "\u{2028}",
            "\u{3000}", "日", "/", "orders", "\u{202e}", "\u{200b}", "\u{feff}",
        ];
        let mut rng = crate::test_rng::Rng(0x9e37_79b9_7f4a_7c15);
        let mut targets = vec![
            String::new(),
            "a".repeat(MAX_TARGET_BYTES),
            "a".repeat(MAX_TARGET_BYTES + 1),
            "é".repeat(MAX_TARGET_BYTES / 2 + 1),
        ];
        for _ in 0..20_000 {
            targets.push(rng.text(PIECES, 5));
        }
        for target in targets {
            assert_eq!(
                target_is_valid(&target),
                target_problem(&target).is_none(),
                "{target:?}"
            );
        }
    }

    #[test]
    fn verdict_agrees_with_decide_everywhere() {
        let policies = [
            Policy::builtin_default(),
            Policy::parse_toml(
                "[[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\", \"staging\"]\n\
                 require = [\"audit\"]\nactors = [\"human\", \"ci\"]\n\
                 [[rule]]\noperations = [\"db.drop\"]\ndeny = \"never\"\n\
                 [[rule]]\noperations = [\"db.delete.?\"]\nactors = [\"agent\"]\nrequire = [\"confirm\"]\n\
                 [[rule]]\noperations = [\"cache.*\", \"db.migrate\"]\ntiers = [\"development\"]\nrequire = [\"audit\"]\nactors = [\"service\"]\n",
                "grid.toml",
            )
            .unwrap(),
        ];
        let tiers = [
            Tier::Production,
            Tier::Staging,
            Tier::Development,
            Tier::Test,
            Tier::Local,
            Tier::Unknown,
        ];
        let operations = [
            "db.migrate",
            "db.drop",
            "db.delete.x",
            "db.delete.xy",
            "cache.flush",
            "app",
            "DB.Migrate",
            "",
            "db..x",
            "db.*",
        ];
        let targets = [
            None,
            Some("orders"),
            Some(""),
            Some(" padded"),
            Some("a\u{7}b"),
        ];
        for policy in &policies {
            for tier in tiers {
                let detection = Detection {
                    environment: tier.to_string(),
                    tier,
                    protected: matches!(tier, Tier::Production | Tier::Unknown),
                    decided_by: "explicit".into(),
                    evidence: Vec::new(),
                    conflicts: Vec::new(),
                    hint: None,
                };
                for kind in operations {
                    for target in targets {
                        let mut operation = Operation::new(kind);
                        operation.target = target.map(str::to_owned);
                        assert_eq!(
                            verdict(policy, tier, kind, target),
                            decide(policy, &detection, &operation).result,
                            "{kind} {target:?} in {tier} under {}",
                            policy.source
                        );
                    }
                }
            }
        }
    }
    use crate::policy::{BackupSpec, Rule};

    fn detection(tier: Tier) -> Detection {
        Detection {
            environment: tier.as_str().to_owned(),
            tier,
            protected: matches!(tier, Tier::Production | Tier::Unknown),
            decided_by: "env:APP_ENV".into(),
            evidence: Vec::new(),
            conflicts: Vec::new(),
            hint: None,
        }
    }

    fn rule(name: &str, ops: &[&str], require: &[Requirement]) -> Rule {
        Rule {
            name: name.into(),
            operations: ops.iter().map(|s| (*s).to_owned()).collect(),
            tiers: vec![Tier::Production],
            require: require.to_vec(),
            confirm_mode: ConfirmMode::Either,
            backup: None,
            deny: None,
            actors: Vec::new(),
            break_glass: false,
            max_rows: None,
            confirm_above_rows: None,
            outside_transaction: false,
            agent_deny: false,
        }
    }

    fn policy(rules: Vec<Rule>) -> Policy {
        Policy {
            rules,
            ..Policy::builtin_default()
        }
    }

    fn human() -> Actor {
        Actor {
            user: "ana".into(),
            kind: ActorKind::Human,
            account: None,
        }
    }

    /// A session past its audit check (when it has one).
    fn start(policy: &Policy, tier: Tier, actor: Actor) -> Session {
        let mut session = Session::begin(SessionInput {
            policy,
            detection: &detection(tier),
            operation: Operation::new("db.migrate").with_target("orders"),
            actor,
            attempt_id: "attempt-1".into(),
            now: Timestamp(10_000_000_000),
        });
        if session.next_step() == Step::CheckAudit {
            session.audit_checked(Ok(())).unwrap();
        }
        if matches!(session.next_step(), Step::CheckStamp { .. }) {
            session.stamp_checked(Ok(None)).unwrap();
        }
        session
    }

    #[test]
    fn an_unusable_audit_log_refuses_before_anyone_is_asked() {
        let p = policy(vec![rule(
            "r",
            &["db.migrate"],
            &[Requirement::Confirm, Requirement::Audit],
        )]);
        let mut s = Session::begin(SessionInput {
            policy: &p,
            detection: &detection(Tier::Production),
            operation: Operation::new("db.migrate").with_target("orders"),
            actor: human(),
            attempt_id: "a".into(),
            now: Timestamp(0),
        });
        assert_eq!(s.next_step(), Step::CheckAudit);
        // Other answers do not skip the check.
        s.answer_confirmation(typed()).unwrap_err();
        assert_eq!(s.next_step(), Step::CheckAudit);
        s.audit_checked(Err("torn tail".into())).unwrap();
        expect_append(&mut s, EventKind::Refusal, Err("torn tail".into()));
        let denial = expect_denial(&mut s, 123);
        assert!(denial.missing.contains("torn tail"));
    }

    #[test]
    fn targets_that_cannot_be_typed_back_are_usage_errors() {
        let p = Policy::builtin_default();
        for target in ["", " orders", "orders\n", "a\u{1b}[2Jb", &"x".repeat(300)] {
            let d = decide(
                &p,
                &detection(Tier::Production),
                &Operation::new("db.migrate").with_target(target),
            );
            assert_eq!((d.result, d.exit_code), (Verdict::Deny, 125), "{target:?}");
        }
    }

    #[test]
    fn targets_that_look_unlike_what_is_typed_are_usage_errors() {
        let p = Policy::builtin_default();
        // Shown as `orders.db`, typed as something else.
        for target in [
            "sredro\u{202e}.db",
            "a\u{202a}b",
            "a\u{202b}b",
            "a\u{202c}b",
            "a\u{202d}b",
            "a\u{2066}b",
            "a\u{2067}b",
            "a\u{2068}b",
            "a\u{2069}b",
            "or\u{200b}ders",
            "or\u{200c}ders",
            "or\u{200d}ders",
            "or\u{2060}ders",
            "\u{feff}orders",
            // The rest of Unicode's default-ignorables, and line breaks.
            "or\u{ad}ders",
            "orders\u{fe0f}",
            "orders\u{e0041}",
            "\u{3164}orders",
            "or\u{34f}ders",
            "or\u{180e}ders",
            "or\u{2028}ders",
        ] {
            let d = decide(
                &p,
                &detection(Tier::Production),
                &Operation::new("db.migrate").with_target(target),
            );
            assert_eq!((d.result, d.exit_code), (Verdict::Deny, 125), "{target:?}");
            assert_eq!(
                verdict(&p, Tier::Development, "db.migrate", Some(target)),
                Verdict::Deny
            );
            let reason = &d.reasons[0];
            assert!(reason.contains("bidirectional, zero-width"), "{reason}");
            assert!(
                !reason
                    .chars()
                    .any(|c| c.is_control() || crate::text::is_invisible(c)),
                "{reason:?}"
            );
            // The refusal says what is wrong with the target, not the operation.
            let mut s = Session::begin(SessionInput {
                policy: &p,
                detection: &detection(Tier::Production),
                operation: Operation::new("db.migrate").with_target(target),
                actor: human(),
                attempt_id: "a".into(),
                now: Timestamp(0),
            });
            let denial = expect_denial(&mut s, 125);
            assert!(denial.next_step.contains("bidirectional"), "{denial}");
        }
        let d = decide(
            &p,
            &detection(Tier::Production),
            &Operation::new("db.migrate").with_target("a\u{1b}[2Jb\r\nc"),
        );
        assert_eq!(
            d.reasons[0],
            "invalid target `a\\u{1b}[2Jb\\r\\nc`: it contains control characters"
        );
        // Letters of any script are names like any other.
        let d = decide(
            &p,
            &detection(Tier::Production),
            &Operation::new("db.migrate").with_target("commandes-été"),
        );
        assert_eq!(d.exit_code, 121);
    }

    fn typed() -> ConfirmationAnswer {
        ConfirmationAnswer::Confirmed(ConfirmEvidence {
            method: "typed".into(),
            approver: Some("ana".into()),
            token_id: None,
            exp: None,
            max_rows: None,
        })
    }

    fn evidence(created: Timestamp, verified: bool) -> BackupEvidence {
        BackupEvidence {
            location: "/b/orders.bak".into(),
            sha256: "ab".repeat(32),
            bytes: 10,
            created,
            verified,
            verification: verified.then(|| "integrity_check".to_owned()),
        }
    }

    /// Takes the next step, which must be an append, and acknowledges it.
    fn expect_append(
        session: &mut Session,
        kind: EventKind,
        result: Result<(), AuditFailure>,
    ) -> AuditEvent {
        match session.next_step() {
            Step::Append(event) => {
                assert_eq!(event.kind, kind);
                session.appended(result).unwrap();
                event
            }
            other => panic!("expected an append of {kind:?}, got {other:?}"),
        }
    }

    fn expect_denial(session: &mut Session, code: i32) -> Denial {
        match session.next_step() {
            Step::Deny(denial) => {
                assert_eq!(denial.exit_code, code, "{denial}");
                denial
            }
            other => panic!("expected a denial {code}, got {other:?}"),
        }
    }

    fn finish_ok(session: &mut Session) {
        assert_eq!(session.next_step(), Step::Proceed);
        session
            .finish(OutcomeRecord {
                status: "ok".into(),
                duration_ms: 1,
                error: None,
                exit_code: None,
                rows: None,
                lock_lost: None,
            })
            .unwrap();
        let outcome = expect_append(session, EventKind::Outcome, Ok(()));
        assert_eq!(outcome.attempt_id.as_deref(), Some("attempt-1"));
        assert_eq!(session.next_step(), Step::Done);
    }

    #[test]
    fn allow_path_records_intent_and_outcome() {
        let p = policy(vec![rule("r", &["db.*"], &[Requirement::Confirm])]);
        let mut s = start(&p, Tier::Development, human());
        assert_eq!(s.decision().result, Verdict::Allow);
        let intent = expect_append(&mut s, EventKind::Intent, Ok(()));
        assert_eq!(intent.decision.unwrap().result, "proceed");
        finish_ok(&mut s);
    }

    #[test]
    fn allow_path_proceeds_when_optional_audit_fails() {
        let p = policy(vec![]);
        let mut s = start(&p, Tier::Development, human());
        expect_append(&mut s, EventKind::Intent, Err("disk full".into()));
        assert_eq!(s.audit_failure(), Some("disk full"));
        assert_eq!(s.next_step(), Step::Proceed);
    }

    #[test]
    fn deny_rule_refuses_with_120_and_records_it() {
        let mut r = rule("no drops", &["db.migrate"], &[]);
        r.deny = Some("never here".into());
        let p = policy(vec![r]);
        let mut s = start(&p, Tier::Production, human());
        let event = expect_append(&mut s, EventKind::Refusal, Ok(()));
        let decision = event.decision.unwrap();
        assert_eq!(decision.exit_code, Some(120));
        let denial = expect_denial(&mut s, 120);
        assert_eq!(denial.rule.as_deref(), Some("no drops"));
        assert!(denial.recorded);
        assert!(denial.missing.contains("never here"), "{}", denial.missing);
        // The reason once in the record, and the rule once in the message.
        let said = decision.reasons.iter().filter(|r| r.contains("never here"));
        assert_eq!(said.count(), 1, "{:?}", decision.reasons);
        let shown = denial.to_string();
        assert_eq!(shown.matches("never here").count(), 1, "{shown}");
        assert_eq!(shown.matches("no drops").count(), 1, "{shown}");
    }

    #[test]
    fn unrecorded_refusal_still_refuses() {
        let mut r = rule("no drops", &["db.migrate"], &[]);
        r.deny = Some("never".into());
        let p = policy(vec![r]);
        let mut s = start(&p, Tier::Production, human());
        expect_append(&mut s, EventKind::Refusal, Err("log gone".into()));
        assert!(!expect_denial(&mut s, 120).recorded);
    }

    #[test]
    fn confirmation_satisfied_proceeds_with_evidence_in_intent() {
        let p = policy(vec![rule(
            "r",
            &["db.migrate"],
            &[Requirement::Confirm, Requirement::Audit],
        )]);
        let mut s = start(&p, Tier::Production, human());
        let Step::NeedConfirmation(challenge) = s.next_step() else {
            panic!("no challenge")
        };
        assert_eq!(challenge.expected, "orders");
        assert_eq!(challenge.tier, Tier::Production);
        s.answer_confirmation(typed()).unwrap();
        let intent = expect_append(&mut s, EventKind::Intent, Ok(()));
        assert_eq!(intent.confirm.unwrap().method, "typed");
        finish_ok(&mut s);
    }

    #[test]
    fn confirmation_declined_or_unavailable_refuses_with_121() {
        let p = policy(vec![rule("r", &["db.migrate"], &[Requirement::Confirm])]);
        for answer in [
            ConfirmationAnswer::Declined("typed `order`".into()),
            ConfirmationAnswer::Unavailable("no terminal".into()),
        ] {
            let mut s = start(&p, Tier::Production, human());
            assert!(matches!(s.next_step(), Step::NeedConfirmation(_)));
            s.answer_confirmation(answer).unwrap();
            expect_append(&mut s, EventKind::Refusal, Ok(()));
            let denial = expect_denial(&mut s, 121);
            assert!(denial.next_step.contains("orders"), "{}", denial.next_step);
        }
    }

    #[test]
    fn an_agents_typing_is_not_a_confirmation() {
        let p = policy(vec![rule(
            "r",
            &["db.migrate"],
            &[Requirement::Confirm, Requirement::Audit],
        )]);
        let agent = Actor {
            user: "ana".into(),
            kind: ActorKind::Agent,
            account: Some("ana".into()),
        };
        // Whatever a face asked, a typed answer for an agent refuses.
        let mut s = start(&p, Tier::Production, agent);
        assert!(matches!(s.next_step(), Step::NeedConfirmation(_)));
        s.answer_confirmation(typed()).unwrap();
        let refusal = expect_append(&mut s, EventKind::Refusal, Ok(()));
        assert_eq!(refusal.confirm, None, "the record must not say typed");
        let denial = expect_denial(&mut s, 121);
        assert!(
            denial.missing.contains("AI agent cannot confirm"),
            "{}",
            denial.missing
        );
        assert!(
            denial.next_step.contains("prodguard approve") && denial.next_step.contains("person"),
            "{}",
            denial.next_step
        );
    }

    #[test]
    fn missing_backup_spec_refuses_with_122() {
        let p = policy(vec![rule("r", &["db.migrate"], &[Requirement::Backup])]);
        let mut s = start(&p, Tier::Production, human());
        expect_append(&mut s, EventKind::Refusal, Ok(()));
        expect_denial(&mut s, 122);
    }

    fn backup_policy(verify: bool, max_age: Option<u64>) -> Policy {
        let mut r = rule(
            "b",
            &["db.migrate"],
            &[Requirement::Backup, Requirement::Audit],
        );
        // Only a program's backup may come without a verify step.
        r.backup = Some(if verify {
            BackupSpec::Command {
                command: "cp {target} {path}".into(),
                verify: "check {path}".into(),
                path: None,
                max_age_seconds: max_age,
            }
        } else {
            BackupSpec::Program {
                max_age_seconds: max_age,
            }
        });
        policy(vec![r])
    }

    #[test]
    fn backup_satisfied_puts_evidence_in_intent() {
        let p = backup_policy(true, Some(3600));
        let mut s = start(&p, Tier::Production, human());
        let Step::NeedBackup(request) = s.next_step() else {
            panic!("no backup step")
        };
        assert_eq!(request.target.as_deref(), Some("orders"));
        s.answer_backup(Ok(evidence(Timestamp(10_000_000_000), true)))
            .unwrap();
        let intent = expect_append(&mut s, EventKind::Intent, Ok(()));
        assert_eq!(intent.backup.unwrap().sha256, "ab".repeat(32));
        finish_ok(&mut s);
    }

    #[test]
    fn failed_unverified_stale_or_empty_backups_refuse_with_122() {
        let now = Timestamp(10_000_000_000);
        let cases: Vec<(Policy, Result<BackupEvidence, BackupError>, &str)> = vec![
            (
                backup_policy(false, None),
                Err("pg_dump: connection refused".into()),
                "connection refused",
            ),
            (
                backup_policy(true, None),
                Ok(evidence(now, false)),
                "did not pass",
            ),
            (
                backup_policy(false, Some(60)),
                Ok(evidence(now.plus_seconds(-120), false)),
                "120s old",
            ),
            (
                backup_policy(false, Some(60)),
                Ok(evidence(now.plus_seconds(3600), false)),
                "3600s in the future",
            ),
            (
                backup_policy(false, None),
                Ok(BackupEvidence {
                    bytes: 0,
                    ..evidence(now, false)
                }),
                "empty",
            ),
        ];
        for (p, answer, needle) in cases {
            let mut s = start(&p, Tier::Production, human());
            assert!(matches!(s.next_step(), Step::NeedBackup(_)));
            s.answer_backup(answer).unwrap();
            expect_append(&mut s, EventKind::Refusal, Ok(()));
            let denial = expect_denial(&mut s, 122);
            assert!(
                denial.missing.contains(needle),
                "{} lacks {needle}",
                denial.missing
            );
        }
    }

    #[test]
    fn malformed_backup_evidence_refuses_with_122_in_every_face() {
        let now = Timestamp(10_000_000_000);
        let good = evidence(now, true);
        let cases = [
            (
                BackupEvidence {
                    location: " ".into(),
                    ..good.clone()
                },
                "no location",
            ),
            (
                BackupEvidence {
                    sha256: String::new(),
                    ..good.clone()
                },
                "no SHA-256",
            ),
            (
                BackupEvidence {
                    sha256: "ab".repeat(31),
                    ..good.clone()
                },
                "no SHA-256",
            ),
            (
                BackupEvidence {
                    sha256: format!("{}xy", "ab".repeat(31)),
                    ..good.clone()
                },
                "no SHA-256",
            ),
            (
                BackupEvidence {
                    created: Timestamp(0),
                    ..good.clone()
                },
                "no creation time",
            ),
        ];
        for (bad, needle) in cases {
            let mut s = start(&backup_policy(false, None), Tier::Production, human());
            assert!(matches!(s.next_step(), Step::NeedBackup(_)));
            s.answer_backup(Ok(bad)).unwrap();
            expect_append(&mut s, EventKind::Refusal, Ok(()));
            let denial = expect_denial(&mut s, 122);
            assert!(denial.missing.contains(needle), "{}", denial.missing);
        }
        // Hex in capitals (as .NET and certutil write it) is a SHA-256 too.
        let upper = BackupEvidence {
            sha256: "AB".repeat(32),
            ..good
        };
        assert_eq!(upper.malformed(), None);
    }

    #[test]
    fn required_audit_unavailable_refuses_with_123() {
        let p = policy(vec![rule("r", &["db.migrate"], &[Requirement::Audit])]);
        let mut s = start(&p, Tier::Production, human());
        expect_append(&mut s, EventKind::Intent, Err("EIO".into()));
        // The refusal is still offered to the log (a sink with a local copy
        // may take it in one place); here it fails too.
        let refusal = expect_append(&mut s, EventKind::Refusal, Err("EIO".into()));
        assert_eq!(refusal.decision.unwrap().exit_code, Some(123));
        let denial = expect_denial(&mut s, 123);
        assert!(denial.missing.contains("EIO"));
        assert!(!denial.recorded);
    }

    #[test]
    fn a_rule_requiring_a_human_refuses_an_agent() {
        let mut r = rule("humans only", &["db.migrate"], &[Requirement::Confirm]);
        r.actors = vec![ActorKind::Human];
        let p = policy(vec![r]);
        let agent = Actor {
            user: "bot".into(),
            kind: ActorKind::Agent,
            account: None,
        };
        let mut s = start(&p, Tier::Production, agent);
        expect_append(&mut s, EventKind::Refusal, Ok(()));
        expect_denial(&mut s, 121);
        // The same rule lets a human through to the confirmation.
        let mut s = start(&p, Tier::Production, human());
        assert!(matches!(s.next_step(), Step::NeedConfirmation(_)));
    }

    #[test]
    fn invalid_operation_names_are_usage_errors_and_not_recorded() {
        let p = Policy::builtin_default();
        let mut s = Session::begin(SessionInput {
            policy: &p,
            detection: &detection(Tier::Production),
            operation: Operation::new("DROP TABLE"),
            actor: human(),
            attempt_id: "x".into(),
            now: Timestamp(0),
        });
        expect_denial(&mut s, 125);
    }

    #[test]
    fn confirmation_comes_before_backup_and_both_before_intent() {
        let mut p = backup_policy(false, None);
        p.rules[0].require.push(Requirement::Confirm);
        let mut s = start(&p, Tier::Production, human());
        assert!(matches!(s.next_step(), Step::NeedConfirmation(_)));
        // An answer of the wrong kind is an error: the session keeps asking.
        s.answer_backup(Ok(evidence(Timestamp(0), true)))
            .unwrap_err();
        assert!(matches!(s.next_step(), Step::NeedConfirmation(_)));
        s.answer_confirmation(typed()).unwrap();
        assert!(matches!(s.next_step(), Step::NeedBackup(_)));
        s.answer_backup(Ok(evidence(Timestamp(10_000_000_000), true)))
            .unwrap();
        let intent = expect_append(&mut s, EventKind::Intent, Ok(()));
        assert!(intent.confirm.is_some() && intent.backup.is_some());
    }

    #[test]
    fn nothing_proceeds_before_the_intent_is_acknowledged() {
        let p = policy(vec![rule("r", &["db.migrate"], &[Requirement::Audit])]);
        let mut s = start(&p, Tier::Production, human());
        let first = s.next_step();
        assert!(matches!(first, Step::Append(_)));
        // Asking again without answering repeats the step; it never skips to Proceed.
        assert_eq!(s.next_step(), first);
        s.finish(OutcomeRecord {
            status: "ok".into(),
            duration_ms: 0,
            error: None,
            exit_code: None,
            rows: None,
            lock_lost: None,
        })
        .unwrap_err();
        assert_eq!(s.next_step(), first);
    }

    #[test]
    fn a_spent_approval_refuses_with_121_and_is_not_recorded_as_confirmed() {
        let p = policy(vec![rule(
            "r",
            &["db.migrate"],
            &[Requirement::Confirm, Requirement::Audit],
        )]);
        let mut s = start(&p, Tier::Production, human());
        assert!(matches!(s.next_step(), Step::NeedConfirmation(_)));
        s.answer_confirmation(ConfirmationAnswer::Confirmed(ConfirmEvidence {
            method: "approval".into(),
            approver: Some("bob".into()),
            token_id: Some("n1".into()),
            exp: None,
            max_rows: None,
        }))
        .unwrap();
        let Step::Append(intent) = s.next_step() else {
            panic!("no intent")
        };
        assert_eq!(intent.confirm.unwrap().token_id.as_deref(), Some("n1"));
        s.approval_refused("it was spent by audit record 7".into())
            .unwrap();
        let refusal = expect_append(&mut s, EventKind::Refusal, Ok(()));
        assert!(refusal.confirm.is_none());
        let denial = expect_denial(&mut s, 121);
        assert!(
            denial.missing.contains("spent by audit record 7"),
            "{}",
            denial.missing
        );
    }

    #[test]
    fn an_approval_whose_spending_cannot_be_recorded_refuses_with_123() {
        // Confirmation only, no audit requirement: a failed plain append
        // would proceed, a failed spending must not.
        let p = policy(vec![rule("r", &["db.migrate"], &[Requirement::Confirm])]);
        let mut s = start(&p, Tier::Production, human());
        assert!(matches!(s.next_step(), Step::NeedConfirmation(_)));
        s.answer_confirmation(ConfirmationAnswer::Confirmed(ConfirmEvidence {
            method: "approval".into(),
            approver: Some("bob".into()),
            token_id: Some("n1".into()),
            exp: None,
            max_rows: None,
        }))
        .unwrap();
        assert!(matches!(s.next_step(), Step::Append(_)));
        s.spending_unavailable("postgresql://db/fleet: connection refused".into())
            .unwrap();
        let refusal = expect_append(&mut s, EventKind::Refusal, Ok(()));
        assert!(refusal.confirm.is_none(), "the token was not used");
        let denial = expect_denial(&mut s, 123);
        assert!(
            denial.missing.contains("connection refused"),
            "{}",
            denial.missing
        );
    }

    #[test]
    fn a_database_password_in_the_target_reaches_no_record_or_prompt() {
        let p = policy(vec![rule(
            "r",
            &["db.migrate"],
            &[Requirement::Confirm, Requirement::Audit],
        )]);
        let mut s = Session::begin(SessionInput {
            policy: &p,
            detection: &detection(Tier::Production),
            operation: Operation::new("db.migrate")
                .with_target("postgresql://app:hunter2@db/orders?password=x"),
            actor: human(),
            attempt_id: "a".into(),
            now: Timestamp(0),
        });
        assert_eq!(s.next_step(), Step::CheckAudit);
        s.audit_checked(Ok(())).unwrap();
        let Step::CheckStamp { target } = s.next_step() else {
            panic!("no stamp check")
        };
        assert_eq!(target, "postgresql://app@db/orders");
        s.stamp_checked(Ok(None)).unwrap();
        let Step::NeedConfirmation(challenge) = s.next_step() else {
            panic!("no confirmation")
        };
        assert_eq!(challenge.expected, "postgresql://app@db/orders");
        s.answer_confirmation(typed()).unwrap();
        let intent = expect_append(&mut s, EventKind::Intent, Ok(()));
        let text = serde_json::to_string(&intent).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("password"),
            "{text}"
        );
    }

    #[test]
    fn a_stamp_from_another_environment_refuses_with_124() {
        let p = policy(vec![]);
        let stamp = |env: &str, tier| Stamp {
            environment: env.into(),
            tier,
            stamped_at: None,
            stamped_by: None,
        };
        let begin = || {
            Session::begin(SessionInput {
                policy: &p,
                detection: &detection(Tier::Development),
                operation: Operation::new("db.migrate").with_target("orders.db"),
                actor: human(),
                attempt_id: "a".into(),
                now: Timestamp(0),
            })
        };
        // A production dump restored to development.
        let mut s = begin();
        assert_eq!(
            s.next_step(),
            Step::CheckStamp {
                target: "orders.db".into()
            }
        );
        s.stamp_checked(Ok(Some(stamp("production", Tier::Production))))
            .unwrap();
        expect_append(&mut s, EventKind::Refusal, Ok(()));
        let denial = expect_denial(&mut s, 124);
        assert!(
            denial.missing.contains("stamped `production`"),
            "{}",
            denial.missing
        );
        assert!(
            denial.missing.contains("this environment is `development`"),
            "{}",
            denial.missing
        );
        assert!(
            denial
                .next_step
                .contains("prodguard stamp --target orders.db --env development")
        );
        // A matching stamp (any case) proceeds; an unreadable one refuses.
        let mut s = begin();
        s.next_step();
        s.stamp_checked(Ok(Some(stamp("Development", Tier::Development))))
            .unwrap();
        assert!(matches!(s.next_step(), Step::Append(_)));
        let mut s = begin();
        s.next_step();
        s.stamp_checked(Err("database is locked".into())).unwrap();
        expect_append(&mut s, EventKind::Refusal, Ok(()));
        expect_denial(&mut s, 124);
        // The stamping operation itself is not refused by the stamp it corrects.
        let mut s = Session::begin(SessionInput {
            policy: &p,
            detection: &detection(Tier::Development),
            operation: Operation::new(STAMP_OPERATION).with_target("orders.db"),
            actor: human(),
            attempt_id: "a".into(),
            now: Timestamp(0),
        });
        assert!(matches!(s.next_step(), Step::Append(_)));
    }

    #[test]
    fn break_glass_skips_confirm_and_backup_only_where_allowed_and_is_always_audited() {
        let with = |allowed: bool| {
            let mut r = rule(
                "emergency",
                &["db.migrate"],
                &[Requirement::Confirm, Requirement::Backup],
            );
            r.break_glass = allowed;
            r.backup = Some(BackupSpec::Command {
                command: "false".into(),
                verify: "true".into(),
                path: None,
                max_age_seconds: None,
            });
            let mut p = policy(vec![r]);
            p.approval.break_glass_users = vec!["ana".into()];
            p
        };
        let begin = |p: &Policy, reason: &str, target: Option<&str>| {
            break_glass_session(p, reason, target, person(Some("ana")))
        };
        let reason = "INC-42: orders table locked, restoring service";
        // Allowed: audit is checked even though the rule does not require it,
        // then straight to the intent, which records the reason as its own decision.
        let p = with(true);
        let mut s = begin(&p, reason, Some("orders"));
        assert_eq!(s.next_step(), Step::CheckAudit);
        s.audit_checked(Ok(())).unwrap();
        s.next_step();
        s.stamp_checked(Ok(None)).unwrap();
        let Step::Append(intent) = s.next_step() else {
            panic!("no intent")
        };
        assert_eq!(intent.decision.as_ref().unwrap().result, "break-glass");
        assert_eq!(intent.confirm.as_ref().unwrap().method, "break-glass");
        assert_eq!(
            intent.confirm.as_ref().unwrap().approver.as_deref(),
            Some("ana")
        );
        assert_eq!(
            intent.actor.as_ref().unwrap().account.as_deref(),
            Some("ana")
        );
        let message = intent.message.unwrap();
        assert!(
            message.contains(reason) && message.contains("account ana"),
            "{message}"
        );
        s.appended(Err("disk full".into())).unwrap();
        expect_append(&mut s, EventKind::Refusal, Err("disk full".into()));
        expect_denial(&mut s, 123);
        // Not allowed by the rule: 121. No reason or no target: 125.
        for (p, why, target, code) in [
            (with(false), reason, Some("orders"), 121),
            (with(true), "because", Some("orders"), 125),
            (with(true), reason, None, 125),
        ] {
            let mut s = begin(&p, why, target);
            if s.next_step() == Step::CheckAudit {
                s.audit_checked(Ok(())).unwrap();
            }
            if matches!(s.next_step(), Step::CheckStamp { .. }) {
                s.stamp_checked(Ok(None)).unwrap();
            }
            if matches!(s.next_step(), Step::Append(_)) {
                s.appended(Ok(())).unwrap();
            }
            expect_denial(&mut s, code);
        }
    }

    fn person(account: Option<&str>) -> Actor {
        Actor {
            account: account.map(str::to_owned),
            ..human()
        }
    }

    fn break_glass_session(
        p: &Policy,
        reason: &str,
        target: Option<&str>,
        actor: Actor,
    ) -> Session {
        let mut op = Operation::new("db.migrate");
        op.target = target.map(str::to_owned);
        op.break_glass = Some(reason.into());
        Session::begin(SessionInput {
            policy: p,
            detection: &detection(Tier::Production),
            operation: op,
            actor,
            attempt_id: "a".into(),
            now: Timestamp(0),
        })
    }

    #[test]
    fn break_glass_is_only_for_listed_accounts_and_never_for_an_agent() {
        let with = |users: &[&str]| {
            let mut r = rule("emergency", &["db.migrate"], &[Requirement::Confirm]);
            r.break_glass = true;
            let mut p = policy(vec![r]);
            p.approval.break_glass_users = users.iter().map(|u| (*u).to_owned()).collect();
            p
        };
        let reason = "INC-42: orders table locked, restoring service";
        let agent = Actor {
            kind: ActorKind::Agent,
            ..person(Some("ana"))
        };
        // The label says "ana" but the account is "bob": the label never decides.
        let labelled = Actor {
            user: "ana".into(),
            ..person(Some("bob"))
        };
        for (users, actor, why) in [
            (&["ana"][..], agent, "AI agent cannot break glass"),
            (&["ana"], labelled, "the account `bob` is not listed"),
            (&["ana"], person(None), "no OS account"),
            (&[], person(Some("ana")), "break_glass_users"),
        ] {
            let p = with(users);
            let mut s = break_glass_session(&p, reason, Some("orders"), actor);
            assert_eq!(s.next_step(), Step::CheckAudit);
            s.audit_checked(Ok(())).unwrap();
            s.stamp_checked(Ok(None)).unwrap();
            let refusal = expect_append(&mut s, EventKind::Refusal, Ok(()));
            assert_eq!(refusal.confirm, None);
            let denial = expect_denial(&mut s, 121);
            assert!(denial.missing.contains(why), "{why}: {denial}");
            if users.is_empty() {
                assert!(denial.next_step.contains("nobody"), "{denial}");
            }
        }
    }

    fn fleet_policy(lock: bool, sink: bool) -> Policy {
        let mut p = policy(vec![rule(
            "r",
            &["db.migrate"],
            &[Requirement::Confirm, Requirement::Audit],
        )]);
        if lock {
            p.fleet.lock = Some("postgresql://db/fleet".into());
        }
        if sink {
            p.audit.sink = Some("postgresql://db/fleet".into());
        }
        p
    }

    fn lock_refusal(exit_code: ExitCode, missing: &str) -> LockRefusal {
        LockRefusal {
            exit_code,
            missing: missing.into(),
            next_step: "wait".into(),
        }
    }

    fn begin(p: &Policy, tier: Tier) -> Session {
        Session::begin(SessionInput {
            policy: p,
            detection: &detection(tier),
            operation: Operation::new("db.migrate").with_target("orders"),
            actor: human(),
            attempt_id: "attempt-1".into(),
            now: Timestamp(0),
        })
    }

    #[test]
    fn the_fleet_lock_is_taken_first_and_only_for_operations_with_requirements() {
        let p = fleet_policy(true, false);
        let mut s = begin(&p, Tier::Production);
        assert_eq!(
            s.next_step(),
            Step::AcquireLock {
                operation: "db.migrate".into(),
                target: Some("orders".into())
            }
        );
        // Nothing else answers it.
        s.audit_checked(Ok(())).unwrap_err();
        s.lock_checked(Ok(())).unwrap_err();
        assert!(matches!(s.next_step(), Step::AcquireLock { .. }));
        // Held elsewhere: refused and recorded, without a rule.
        s.lock_acquired(Err(lock_refusal(ExitCode::Denied, "held by bob@web-2")))
            .unwrap();
        let refusal = expect_append(&mut s, EventKind::Refusal, Ok(()));
        assert_eq!(refusal.decision.unwrap().reasons[0], "held by bob@web-2");
        let denial = expect_denial(&mut s, 120);
        assert!(denial.recorded && denial.rule.is_none());
        // Free here (development: no rule), or denied: no lock.
        let mut s = begin(&p, Tier::Development);
        assert!(matches!(s.next_step(), Step::CheckStamp { .. }));
        let mut denying = fleet_policy(true, false);
        denying.rules[0].deny = Some("never".into());
        let mut s = begin(&denying, Tier::Production);
        expect_append(&mut s, EventKind::Refusal, Ok(()));
        expect_denial(&mut s, 120);
        // Without fleet keys there is no lock step at all.
        let p = fleet_policy(false, false);
        assert_eq!(begin(&p, Tier::Production).next_step(), Step::CheckAudit);
    }

    #[test]
    fn a_lock_lost_before_the_intent_refuses_and_a_sink_alone_is_not_checked() {
        let p = fleet_policy(true, false);
        let mut s = begin(&p, Tier::Production);
        assert!(matches!(s.next_step(), Step::AcquireLock { .. }));
        s.lock_acquired(Ok(None)).unwrap();
        assert_eq!(s.next_step(), Step::CheckAudit);
        s.audit_checked(Ok(())).unwrap();
        s.next_step();
        s.stamp_checked(Ok(None)).unwrap();
        assert!(matches!(s.next_step(), Step::NeedConfirmation(_)));
        s.answer_confirmation(typed()).unwrap();
        assert_eq!(s.next_step(), Step::LockStillHeld);
        s.appended(Ok(())).unwrap_err();
        s.lock_checked(Err(lock_refusal(
            ExitCode::AuditUnavailable,
            "the fleet lock was lost",
        )))
        .unwrap();
        let refusal = expect_append(&mut s, EventKind::Refusal, Ok(()));
        assert!(refusal.confirm.is_some(), "the refusal keeps the evidence");
        assert_eq!(refusal.decision.unwrap().exit_code, Some(123));
        expect_denial(&mut s, 123);
        // Still held: the intent follows, naming the lease's fence.
        let mut s = begin(&p, Tier::Production);
        s.next_step();
        s.lock_acquired(Ok(Some(7))).unwrap();
        s.next_step();
        s.audit_checked(Ok(())).unwrap();
        s.next_step();
        s.stamp_checked(Ok(None)).unwrap();
        s.next_step();
        s.answer_confirmation(typed()).unwrap();
        assert_eq!(s.next_step(), Step::LockStillHeld);
        s.lock_checked(Ok(())).unwrap();
        let intent = expect_append(&mut s, EventKind::Intent, Ok(()));
        assert_eq!(intent.fence, Some(7));
        finish_ok(&mut s);
        // A shared trail without a lock: the step is asked (a driver that
        // cannot honour the fleet refuses there), but no lock is checked.
        let p = fleet_policy(false, true);
        let mut s = begin(&p, Tier::Production);
        assert!(matches!(s.next_step(), Step::AcquireLock { .. }));
        s.lock_acquired(Ok(None)).unwrap();
        s.next_step();
        s.audit_checked(Ok(())).unwrap();
        s.next_step();
        s.stamp_checked(Ok(None)).unwrap();
        s.next_step();
        s.answer_confirmation(typed()).unwrap();
        expect_append(&mut s, EventKind::Intent, Ok(()));
    }

    #[test]
    fn answers_out_of_order_are_errors_that_name_both_sides() {
        let p = policy(vec![rule("r", &["db.migrate"], &[Requirement::Confirm])]);
        let mut s = start(&p, Tier::Production, human());
        let err = s.answer_backup(Err("x".into())).unwrap_err();
        assert_eq!(
            err,
            SessionError::OutOfOrder {
                answer: "answer_backup",
                awaiting: "waits for a confirmation (Step::NeedConfirmation)"
            }
        );
        assert!(err.to_string().contains("bug in the driver"), "{err}");
        for result in [
            s.appended(Ok(())),
            s.stamp_checked(Ok(None)),
            s.approval_refused("x".into()),
            s.spending_unavailable("x".into()),
            s.lock_acquired(Ok(None)),
        ] {
            assert!(matches!(result, Err(SessionError::OutOfOrder { .. })));
        }
        assert!(matches!(s.next_step(), Step::NeedConfirmation(_)));
    }

    #[test]
    fn check_exits_124_where_the_stamp_would_refuse_the_run() {
        let stamp = |env: &str| -> Result<Option<Stamp>, StampError> {
            Ok(Some(Stamp {
                environment: env.into(),
                tier: Tier::from_name(env).unwrap_or(Tier::Unknown),
                stamped_at: None,
                stamped_by: None,
            }))
        };
        assert_eq!(stamp_verdict(&Ok(None), "production"), StampVerdict::None);
        assert_eq!(
            stamp_verdict(&stamp("prod"), "production"),
            StampVerdict::Agrees
        );
        assert_eq!(
            stamp_verdict(&stamp("development"), "production"),
            StampVerdict::Disagrees
        );
        assert_eq!(
            stamp_verdict(&Err("locked".into()), "production"),
            StampVerdict::Unreadable
        );
        let p = policy(vec![rule("r", &["db.migrate"], &[Requirement::Confirm])]);
        let op = Operation::new("db.migrate").with_target("orders");
        let decision = decide(&p, &detection(Tier::Production), &op);
        for (verdict, code) in [
            (StampVerdict::None, 121),
            (StampVerdict::Agrees, 121),
            (StampVerdict::Disagrees, 124),
            (StampVerdict::Unreadable, 124),
        ] {
            assert_eq!(check_exit_code(&decision, verdict), code, "{verdict:?}");
        }
        // An invalid request stays one, whatever the stamp says.
        let invalid = decide(&p, &detection(Tier::Production), &Operation::new("DB"));
        assert_eq!(check_exit_code(&invalid, StampVerdict::Disagrees), 125);
        // The stamp is read for a target, except by the stamping operation.
        assert!(reads_stamp(&op));
        assert!(!reads_stamp(&Operation::new("db.migrate")));
        assert!(!reads_stamp(
            &Operation::new(STAMP_OPERATION).with_target("orders")
        ));
    }

    #[test]
    fn check_reports_exit_codes_for_scripts() {
        let p = policy(vec![rule("r", &["db.migrate"], &[Requirement::Confirm])]);
        let op = Operation::new("db.migrate");
        assert_eq!(decide(&p, &detection(Tier::Production), &op).exit_code, 121);
        assert_eq!(decide(&p, &detection(Tier::Development), &op).exit_code, 0);
        let audit_only = policy(vec![rule("r", &["db.migrate"], &[Requirement::Audit])]);
        let d = decide(&audit_only, &detection(Tier::Production), &op);
        assert_eq!((d.result, d.exit_code), (Verdict::Require, 0));
    }
}
