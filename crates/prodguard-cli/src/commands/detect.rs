//! `prodguard detect`: which environment this is, why, and whether guards apply.

use std::path::PathBuf;

use prodguard::GuardError;
use prodguard_core::detect::Detection;
use prodguard_core::text::escape;

use super::{guard, policy_summary, print_policy_summary, to_json};
use crate::envelope::{self, Envelope};

pub(crate) fn run(
    policy: Option<&PathBuf>,
    json: bool,
    explain: bool,
) -> Result<Envelope, GuardError> {
    let guard = guard(policy)?;
    let detection = guard.detection();
    let mut value = to_json(detection)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("policy".into(), policy_summary(&guard));
    }
    if !json {
        print_detection(detection, explain);
        print_policy_summary(&guard);
    }
    Ok(envelope::ok(value))
}

fn print_detection(detection: &Detection, explain: bool) {
    let guarded = if detection.protected {
        "protected: guarded operations must meet the policy's rules here \
         (`prodguard check --op KIND` shows them)"
    } else {
        "not protected"
    };
    say!(
        "environment: {} (tier {})\n{guarded}\ndecided by:  {}",
        escape(&detection.environment),
        detection.tier,
        escape(&detection.decided_by)
    );
    if let Some(hint) = &detection.hint {
        say!("hint:        {hint}");
    }
    for conflict in &detection.conflicts {
        let pairs: Vec<String> = conflict
            .sources
            .iter()
            .zip(&conflict.tiers)
            .map(|(s, t)| format!("{} says {t}", escape(s)))
            .collect();
        say!(
            "conflict:    {}; the most sensitive, {}, wins",
            pairs.join(", "),
            conflict.resolved
        );
    }
    if explain {
        say!("evidence:");
        for e in &detection.evidence {
            let mark = if e.used { "*" } else { " " };
            say!("  {mark} {:<38} {}", escape(&e.source), e.meaning);
        }
        say!("  (* = took part in the decision)");
    }
}
