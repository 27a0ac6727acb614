//! `prodguard check`: what the guard would require for an operation here;
//! runs nothing.

use std::path::PathBuf;

use prodguard::{Check, Guard, GuardError};
use prodguard_core::detect::Detection;
use prodguard_core::text::escape;

use super::{guard, policy_summary, print_policy_summary};
use crate::cli::OpArgs;
use crate::envelope::{self, Envelope};

pub(crate) fn run(
    policy: Option<&PathBuf>,
    op: &OpArgs,
    json: bool,
) -> Result<Envelope, GuardError> {
    let guard = guard(policy)?;
    // The checks exec makes before asking anyone, in its order.
    let check = guard.check(&op.operation());
    if !json {
        print_decision(&check, guard.detection());
        print_policy_summary(&guard);
    }
    Ok(answer(&check, check_json(&guard, &check)))
}

/// `check`'s answer (and `sql check`'s): the decision `value` is "ok"
/// when a run would go ahead, and otherwise the error's data, beside the
/// refusal's words.
pub(crate) fn answer(check: &Check, value: serde_json::Map<String, serde_json::Value>) -> Envelope {
    let value = serde_json::Value::Object(value);
    if check.exit_code == 0 {
        return envelope::ok(value);
    }
    let message = match &check.refusal {
        Some(refusal) => format!("{}; next step: {}", refusal.missing, refusal.next_step),
        // Nothing refuses before anyone is asked: what it requires is the answer.
        None => {
            let how: Vec<&str> = check
                .decision
                .requirements
                .iter()
                .map(|r| r.how.as_str())
                .collect();
            format!(
                "{}; to go ahead: {}",
                check.decision.reasons.join("; "),
                how.join("; ")
            )
        }
    };
    envelope::error(check.exit_code, message).with_data(value)
}

/// What `check --json` prints (and `sql check --json` adds to).
pub(crate) fn check_json(
    guard: &Guard,
    check: &Check,
) -> serde_json::Map<String, serde_json::Value> {
    let json = serde_json::json!({
        "operation": check.operation,
        "environment": guard.detection().environment,
        "tier": guard.detection().tier,
        "protected": guard.detection().protected,
        "decision": check.decision,
        "stamp": check.stamp.as_ref().ok(),
        // The first refusal exec would give, with what to do.
        "refusal": check.refusal,
        // What `prodguard approve --ledger` must name for a run here.
        "ledger": guard.ledger_id(),
        "exit_code": check.exit_code,
        "policy": policy_summary(guard),
    });
    match json {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

pub(crate) fn print_decision(check: &Check, detection: &Detection) {
    let (operation, decision) = (&check.operation, &check.decision);
    let target = operation
        .target
        .as_deref()
        .map(|t| format!(" on {}", escape(t)))
        .unwrap_or_default();
    let verdict = match (&check.refusal, decision.result) {
        (_, prodguard_core::session::Verdict::Deny) => "DENIED".to_owned(),
        // Allowed, or what it requires, never stands beside a refusal.
        (Some(refusal), _) => format!("REFUSED with {}", refusal.exit_code.code()),
        (None, prodguard_core::session::Verdict::Allow) => "allowed".to_owned(),
        (None, prodguard_core::session::Verdict::Require) => {
            let names: Vec<&str> = decision
                .requirements
                .iter()
                .map(|r| r.kind.as_str())
                .collect();
            format!("requires {}", names.join(" + "))
        }
        (None, other) => format!("{other:?}"),
    };
    say!(
        "{}{target} in {} (tier {}): {verdict}",
        escape(&operation.kind),
        escape(&detection.environment),
        detection.tier
    );
    for requirement in &decision.requirements {
        say!(
            "  - {}: {} (rule `{}`)",
            requirement.kind.as_str(),
            requirement.how,
            escape(&requirement.rule)
        );
    }
    for reason in &decision.reasons {
        say!("  why: {reason}");
    }
    if let Some(refusal) = &check.refusal
        && decision.result != prodguard_core::session::Verdict::Deny
    {
        say!("  refused: {}", refusal.missing);
        say!("  next step: {}", refusal.next_step);
    }
    say!(
        "  exit code without a terminal or evidence: {}",
        check.exit_code
    );
}
