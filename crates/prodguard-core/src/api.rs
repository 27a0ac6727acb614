//! A JSON API over the core, for faces that speak JSON (the C ABI's
//! `prodguard_evaluate_json`, the Wasm module's `prodguard_evaluate`): facts,
//! a policy and an operation in, the detection and the decision out. The
//! faces only move bytes; this is where the answer is made.
//!
//! ```
//! let response = prodguard_core::api::evaluate_json(
//!     r#"{"facts": {"env": {"APP_ENV": "production"}}, "operation": {"kind": "db.migrate", "target": "orders"}}"#,
//! );
//! let value: serde_json::Value = serde_json::from_str(&response.body).unwrap();
//! assert_eq!(response.status, 0);
//! assert_eq!(value["decision"]["exit_code"], 121);
//! ```

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::approval::{self, Claims, Expected};
use crate::audit::{
    Actor, AuditEvent, BackupEvidence, ConfirmEvidence, Envelope, EventKind, encode_record, unhex32,
};
use crate::detect::classify_with;
use crate::policy::ConfirmMode;
use crate::session::{
    Challenge, ConfirmationAnswer, Decision, Denial, Operation, Session, SessionInput, Stamp, Step,
    Verdict, decide,
};
use crate::{Detection, Facts, Policy, PolicyError, Tier, Timestamp, exit};

/// What `evaluate` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The facts detection looks at.
    #[serde(default)]
    pub facts: Facts,
    /// The policy as TOML text; absent or null: the built-in default.
    #[serde(default)]
    pub policy: Option<String>,
    /// What is asked for.
    pub operation: RequestOperation,
    /// What the host gathered (answers, backup, stamp): when present, the
    /// whole guard session runs and the answer says whether to proceed.
    #[serde(default)]
    pub evidence: Option<Evidence>,
    /// The current time (RFC 3339); required with `evidence` (backup age,
    /// approval expiry), unused without it.
    #[serde(default)]
    pub now: Option<String>,
    /// List every signal detection looked at, unset ones included (as
    /// `prodguard detect --json`); by default the answer lists only the
    /// signals that were set, which keeps it small and fast.
    #[serde(default)]
    pub explain: bool,
}

/// The operation in a [`Request`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestOperation {
    /// Dotted name.
    pub kind: String,
    /// Target, if any.
    #[serde(default)]
    pub target: Option<String>,
    /// What identifies its content (approvals bind it).
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// What a host gathered for one attempt. Anything missing counts as not
/// given, and a requirement it would satisfy refuses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Who acts.
    pub actor: Actor,
    /// A unique id the host made for this attempt (ties intent and outcome).
    pub attempt_id: String,
    /// Set when the host's audit log cannot take records.
    #[serde(default)]
    pub audit_error: Option<String>,
    /// The target's environment stamp, when it has one.
    #[serde(default)]
    pub stamp: Option<Stamp>,
    /// Set when the target's stamp could not be read.
    #[serde(default)]
    pub stamp_error: Option<String>,
    /// What the person typed when asked to confirm.
    #[serde(default)]
    pub typed: Option<String>,
    /// An approval token and the key (64 hex digits) to check it with.
    #[serde(default)]
    pub approval: Option<ApprovalEvidence>,
    /// The backup the host made.
    #[serde(default)]
    pub backup: Option<BackupEvidence>,
    /// Set when the host's backup failed.
    #[serde(default)]
    pub backup_error: Option<String>,
    /// A break-glass reason.
    #[serde(default)]
    pub break_glass: Option<String>,
    /// The host honours the policy's fleet keys: it holds the `[fleet]
    /// lock` of (operation, target) until the outcome is appended, appends
    /// records to the `[audit] sink` and spends approvals in the
    /// `[approval] ledger`. A policy with fleet keys refuses (125) without it.
    #[serde(default)]
    pub fleet: bool,
}

/// An approval token offered as confirmation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalEvidence {
    /// The `pga1.…` token.
    pub token: String,
    /// The approval key, 64 hex digits.
    pub key: String,
}

/// What `evaluate` answers.
#[derive(Debug, Serialize)]
pub struct Evaluation {
    /// As `prodguard detect --json`.
    pub detection: Detection,
    /// As `prodguard check --json`'s decision.
    pub decision: Decision,
    /// The guard session's verdict, when the request carried evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionVerdict>,
}

/// Whether to run the operation, given the evidence.
#[derive(Debug, Serialize)]
pub struct SessionVerdict {
    /// `proceed` or `deny`.
    pub step: &'static str,
    /// 0 to proceed, otherwise 120–125.
    pub exit_code: i32,
    /// Why not, and what to do next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial: Option<Denial>,
    /// What to confirm, when a confirmation was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge: Option<Challenge>,
    /// The event to append to the audit log (the intent before proceeding,
    /// or the refusal); proceed only once it is durable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<AuditEvent>,
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
    pub fn error(status: i32, message: impl std::fmt::Display) -> Response {
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
            Err(e) => Response::error(exit::POLICY_ERROR, format!("cannot render the answer: {e}")),
        }
    }
}

fn bad_request(message: impl std::fmt::Display) -> Response {
    Response::error(exit::POLICY_ERROR, format!("invalid request: {message}"))
}

fn parse_now(now: Option<&str>) -> Result<Timestamp, Response> {
    let text = now.ok_or_else(|| bad_request("`now` (RFC 3339) is required here"))?;
    Timestamp::parse_rfc3339(text)
        .ok_or_else(|| bad_request(format!("`now` is not an RFC 3339 time: {text:?}")))
}

fn parse_key(hex: &str) -> Result<[u8; 32], Response> {
    unhex32(hex).ok_or_else(|| bad_request("the approval key must be 64 hex digits"))
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

/// Evaluates a JSON [`Request`].
pub fn evaluate_json(request: &str) -> Response {
    match evaluate(request) {
        Ok(evaluation) => Response::ok(&evaluation),
        Err(response) => response,
    }
}

fn evaluate(request: &str) -> Result<Evaluation, Response> {
    let request: Request = serde_json::from_str(request).map_err(bad_request)?;
    if let Some(problem) = oversized_fact(&request.facts) {
        return Err(bad_request(problem));
    }
    let parsed;
    let policy = match &request.policy {
        Some(text) => {
            parsed = parse_policy(text).map_err(|e| Response::error(exit::POLICY_ERROR, e))?;
            &*parsed
        }
        None => Policy::builtin_default_ref(),
    };
    let detection = classify_with(&request.facts, &policy.environment, request.explain);
    let mut operation = Operation::new(request.operation.kind);
    operation.target = request.operation.target;
    operation.fingerprint = request.operation.fingerprint;
    let decision = decide(policy, &detection, &operation);
    let session = match request.evidence {
        None => None,
        Some(evidence) => {
            let now = parse_now(request.now.as_deref())?;
            Some(run_session(policy, &detection, operation, evidence, now)?)
        }
    };
    Ok(Evaluation {
        detection,
        decision,
        session,
    })
}

/// Parses a request's policy text, reusing the last parse when the text is
/// the same: a plugin host sends one policy with every request, and parsing
/// it costs more than the decision itself.
fn parse_policy(text: &str) -> Result<Arc<Policy>, PolicyError> {
    static LAST: Mutex<Option<(String, Arc<Policy>)>> = Mutex::new(None);
    if let Ok(last) = LAST.lock()
        && let Some((cached_text, policy)) = last.as_ref()
        && cached_text == text
    {
        return Ok(Arc::clone(policy));
    }
    let policy = Arc::new(Policy::parse_toml(text, "<request policy>")?);
    if let Ok(mut last) = LAST.lock() {
        *last = Some((text.to_owned(), Arc::clone(&policy)));
    }
    Ok(policy)
}

/// Drives a [`Session`] to proceed or deny with the host's evidence.
fn run_session(
    policy: &Policy,
    detection: &Detection,
    mut operation: Operation,
    evidence: Evidence,
    now: Timestamp,
) -> Result<SessionVerdict, Response> {
    operation.break_glass = evidence.break_glass.clone();
    let fleet_keys = policy.fleet_keys();
    // As in the Rust guard, only operations with requirements here need
    // the fleet (the lock, the shared trail of what is guarded).
    let guarded = || {
        crate::session::verdict(
            policy,
            detection.tier,
            &operation.kind,
            operation.target.as_deref(),
        ) == Verdict::Require
    };
    if !evidence.fleet && !fleet_keys.is_empty() && guarded() {
        // The module takes no locks and writes nothing: running without
        // the fleet's coordination would be running unguarded.
        let denial = Denial {
            exit_code: exit::POLICY_ERROR,
            rule: None,
            missing: format!(
                "the policy uses fleet mode ({}), which only the host can provide",
                fleet_keys.join(", ")
            ),
            next_step: "take the fleet lock, append to the sink and spend approvals in the \
                        ledger in the host, and say so with evidence.fleet = true"
                .into(),
            recorded: false,
        };
        return Ok(SessionVerdict {
            step: "deny",
            exit_code: denial.exit_code,
            denial: Some(denial),
            challenge: None,
            record: None,
        });
    }
    let mut session = Session::begin(SessionInput {
        policy,
        detection,
        operation: operation.clone(),
        actor: evidence.actor.clone(),
        attempt_id: evidence.attempt_id.clone(),
        now,
    });
    let mut challenge = None;
    let mut record = None;
    // Each step is answered once, so a session ends within a handful of
    // steps; the bound only turns a state-machine bug into a refusal.
    for _ in 0..16 {
        match session.next_step() {
            Step::CheckAudit => {
                session.audit_checked(evidence.audit_error.clone().map_or(Ok(()), Err));
            }
            Step::CheckStamp { .. } => session.stamp_checked(match &evidence.stamp_error {
                Some(e) => Err(e.clone()),
                None => Ok(evidence.stamp.clone()),
            }),
            Step::NeedConfirmation(asked) => {
                let answer = confirmation(&asked, &operation, detection, &evidence, policy, now)?;
                challenge = Some(asked);
                session.answer_confirmation(answer);
            }
            Step::NeedBackup(_) => {
                session.answer_backup(match (&evidence.backup, &evidence.backup_error) {
                    (_, Some(e)) => Err(e.clone()),
                    (Some(backup), None) => Ok(backup.clone()),
                    (None, None) => {
                        Err("the host gave no backup evidence (evidence.backup)".into())
                    }
                })
            }
            Step::Append(event) => {
                // The host appends it. An intent must be durable before the
                // operation runs (ABI.md says so); a refusal stays marked as
                // not recorded, since nothing is written yet.
                let refusal = event.kind == EventKind::Refusal;
                record = Some(event);
                session.appended(if refusal {
                    Err("the host appends it".into())
                } else {
                    Ok(())
                });
            }
            Step::Proceed => {
                return Ok(SessionVerdict {
                    step: "proceed",
                    exit_code: 0,
                    denial: None,
                    challenge,
                    record,
                });
            }
            Step::Deny(denial) => {
                return Ok(SessionVerdict {
                    step: "deny",
                    exit_code: denial.exit_code,
                    denial: Some(denial),
                    challenge,
                    record,
                });
            }
            Step::Done => break,
        }
    }
    Err(Response::error(
        exit::POLICY_ERROR,
        "the guard session did not reach a verdict; nothing may run (please report this)",
    ))
}
/// The answer to a confirmation challenge from the host's evidence: a typed
/// name or an approval token, as the policy's mode allows.
fn confirmation(
    asked: &Challenge,
    operation: &Operation,
    detection: &Detection,
    evidence: &Evidence,
    policy: &Policy,
    now: Timestamp,
) -> Result<ConfirmationAnswer, Response> {
    // Four eyes, as the Rust guard has it: the requester typing the name is
    // one pair of eyes, so only someone else's approval token confirms.
    if policy.approval.four_eyes
        && (asked.mode == ConfirmMode::Typed
            || (asked.mode == ConfirmMode::Either && evidence.approval.is_none()))
    {
        return Ok(ConfirmationAnswer::Unavailable(
            "four_eyes needs an approval token from someone else (evidence.approval); a typed \
             answer from the requester does not count"
                .into(),
        ));
    }
    if let Some(offered) = &evidence.approval
        && asked.mode != ConfirmMode::Typed
    {
        let key = parse_key(&offered.key)?;
        let Some(target) = operation.target.as_deref() else {
            return Ok(ConfirmationAnswer::Declined(
                "approval tokens bind a target, and this operation names none".into(),
            ));
        };
        let expected = Expected {
            op: &operation.kind,
            target,
            env: &detection.environment,
            tier: detection.tier,
            fingerprint: operation.fingerprint.as_deref(),
        };
        return Ok(
            match approval::verify(
                &key,
                &offered.token,
                &expected,
                now,
                &evidence.actor.user,
                policy.approval.four_eyes,
            ) {
                Ok(claims) => ConfirmationAnswer::Confirmed(ConfirmEvidence {
                    method: "approval".into(),
                    approver: Some(claims.approver),
                    token_id: Some(claims.nonce),
                    exp: Some(claims.exp),
                }),
                Err(e) => ConfirmationAnswer::Declined(format!("approval token rejected: {e}")),
            },
        );
    }
    Ok(match &evidence.typed {
        Some(typed) if asked.mode != ConfirmMode::Approval => {
            if typed.trim() == asked.expected {
                ConfirmationAnswer::Confirmed(ConfirmEvidence {
                    method: "typed".into(),
                    approver: Some(evidence.actor.user.clone()),
                    token_id: None,
                    exp: None,
                })
            } else {
                ConfirmationAnswer::Declined(format!(
                    "typed `{}`, expected `{}`",
                    typed.trim(),
                    asked.expected
                ))
            }
        }
        _ => ConfirmationAnswer::Unavailable(format!(
            "the host gave no {} (evidence.{})",
            match asked.mode {
                ConfirmMode::Typed => "typed answer",
                ConfirmMode::Approval => "approval token",
                ConfirmMode::Either => "typed answer or approval token",
            },
            match asked.mode {
                ConfirmMode::Typed => "typed",
                ConfirmMode::Approval => "approval",
                ConfirmMode::Either => "typed or evidence.approval",
            }
        )),
    })
}

/// What `audit_record_json` takes: the envelope, the chain's previous hash
/// and the event.
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Serialize)]
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

/// What `verify_approval_json` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The `pga1.…` token.
    pub token: String,
    /// The approval key, 64 hex digits.
    pub key: String,
    /// The operation at hand.
    pub operation: RequestOperation,
    /// The detected environment's name.
    pub environment: String,
    /// Its tier.
    pub tier: Tier,
    /// Who asks (four-eyes refuses a token they approved themselves).
    pub requester: String,
    /// Whether the requester may not be the approver.
    #[serde(default)]
    pub four_eyes: bool,
    /// The current time (RFC 3339).
    pub now: String,
}

/// Checks an approval token for an operation: 0 with its claims, 121 with
/// the binding that failed, 125 for a malformed request. The host still
/// spends the token's `nonce` (once, in its audit log or ledger).
pub fn verify_approval_json(request: &str) -> Response {
    let request: ApprovalRequest = match serde_json::from_str(request) {
        Ok(request) => request,
        Err(e) => return bad_request(e),
    };
    let key = match parse_key(&request.key) {
        Ok(key) => key,
        Err(response) => return response,
    };
    let now = match parse_now(Some(&request.now)) {
        Ok(now) => now,
        Err(response) => return response,
    };
    let Some(target) = request.operation.target.as_deref() else {
        return Response::error(
            exit::NOT_CONFIRMED,
            "approval tokens bind a target, and this operation names none",
        );
    };
    let expected = Expected {
        op: &request.operation.kind,
        target,
        env: &request.environment,
        tier: request.tier,
        fingerprint: request.operation.fingerprint.as_deref(),
    };
    let verified: Result<Claims, _> = approval::verify(
        &key,
        &request.token,
        &expected,
        now,
        &request.requester,
        request.four_eyes,
    );
    match verified {
        Ok(claims) => Response::ok(&claims),
        Err(e) => Response::error(exit::NOT_CONFIRMED, e),
    }
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
        let evaluation = super::evaluate(&text).unwrap();
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
        evidence["actor"] = json!({"user": "alice", "kind": "human"});
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

    fn token(key: &[u8; 32], approver: &str) -> String {
        let now = Timestamp::parse_rfc3339(NOW).unwrap();
        approval::issue(
            key,
            &Claims {
                v: 1,
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
            },
        )
    }

    #[test]
    fn approval_tokens_confirm_only_with_their_key() {
        let key = [7u8; 32];
        let good =
            json!({"approval": {"token": token(&key, "bob"), "key": crate::audit::hex(&key)}});
        let session = attempt(None, good);
        assert_eq!(session["step"], "proceed", "{session}");
        assert_eq!(session["record"]["confirm"]["token_id"], "n-1");

        let other = json!({"approval": {"token": token(&[8u8; 32], "bob"), "key": crate::audit::hex(&key)}});
        let refused = attempt(None, other);
        assert_eq!(refused["exit_code"], 121);
        assert!(
            refused["denial"]["missing"]
                .as_str()
                .unwrap()
                .contains("forged"),
            "{refused}"
        );

        let request = |token: String, four_eyes: bool| {
            json!({"token": token, "key": crate::audit::hex(&key),
                   "operation": {"kind": "db.migrate", "target": "orders"},
                   "environment": "production", "tier": "production",
                   "requester": "alice", "four_eyes": four_eyes, "now": NOW})
            .to_string()
        };
        let ok = verify_approval_json(&request(token(&key, "bob"), true));
        assert_eq!(ok.status, 0, "{}", ok.body);
        assert!(ok.body.contains("\"nonce\":\"n-1\""));
        assert_eq!(
            verify_approval_json(&request(token(&key, "alice"), true)).status,
            121
        );
        assert_eq!(
            verify_approval_json(&request("pga1.x.y".into(), false)).status,
            121
        );
        assert_eq!(verify_approval_json("{}").status, 125);
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
        // Someone else's token still confirms under four eyes.
        let key = [7u8; 32];
        let policy = "[approval]\nfour_eyes = true\n[[rule]]\noperations = [\"db.*\"]\n\
                      tiers = [\"production\"]\nrequire = [\"confirm\"]\n";
        let session = attempt(
            Some(policy),
            json!({"approval": {"token": token(&key, "bob"), "key": crate::audit::hex(&key)}}),
        );
        assert_eq!(session["step"], "proceed", "{session}");
        assert_eq!(session["record"]["confirm"]["approver"], "bob");
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
}
