//! `prodguard check`: what the guard would require for an operation here;
//! runs nothing.

use std::path::PathBuf;

use prodguard::{GuardError, Operation};
use prodguard_core::detect::Detection;
use prodguard_core::text::escape;

use super::{guard, policy_summary, print_policy_summary};
use crate::cli::OpArgs;
use crate::output::print_json;

pub(crate) fn run(policy: Option<&PathBuf>, op: &OpArgs, json: bool) -> Result<i32, GuardError> {
    let guard = guard(policy)?;
    // exec reads the target's stamp before anything else; so does check.
    let check = guard.check(&op.operation());
    let (operation, decision, stamp, exit_code) = (
        &check.operation,
        &check.decision,
        &check.stamp,
        check.exit_code,
    );
    let mismatch = check.stamp_verdict.refuses();
    if json {
        print_json(&serde_json::json!({
            "operation": operation,
            "environment": guard.detection().environment,
            "tier": guard.detection().tier,
            "protected": guard.detection().protected,
            "decision": decision,
            "stamp": stamp.as_ref().ok(),
            // What `prodguard approve --ledger` must name for a run here.
            "ledger": guard.ledger_id(),
            "exit_code": exit_code,
            "policy": policy_summary(&guard),
        }))?;
    } else {
        print_decision(operation, guard.detection(), decision);
        print_policy_summary(&guard);
        match stamp {
            Ok(Some(s)) if mismatch => say!(
                "  stamp: the target is stamped `{}` (tier {}); exec would refuse with 124",
                escape(&s.environment),
                s.tier
            ),
            Err(e) => say!("  stamp: cannot be read ({e}); exec would refuse with 124"),
            _ => {}
        }
    }
    Ok(exit_code)
}

fn print_decision(operation: &Operation, detection: &Detection, decision: &prodguard::Decision) {
    let target = operation
        .target
        .as_deref()
        .map(|t| format!(" on {}", escape(t)))
        .unwrap_or_default();
    let verdict = match decision.result {
        prodguard_core::session::Verdict::Allow => "allowed".to_owned(),
        prodguard_core::session::Verdict::Deny => "DENIED".to_owned(),
        prodguard_core::session::Verdict::Require => {
            let names: Vec<&str> = decision
                .requirements
                .iter()
                .map(|r| r.kind.as_str())
                .collect();
            format!("requires {}", names.join(" + "))
        }
        other => format!("{other:?}"),
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
            requirement.rule
        );
    }
    for reason in &decision.reasons {
        say!("  why: {reason}");
    }
    say!(
        "  exit code without a terminal or evidence: {}",
        decision.exit_code
    );
}
