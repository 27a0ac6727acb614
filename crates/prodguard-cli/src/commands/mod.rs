//! One module per command family; each `run` returns the exit code to leave
//! with (an `Err` is printed by `main` and leaves with its own code).

pub(crate) mod approve;
pub(crate) mod audit;
pub(crate) mod check;
pub(crate) mod detect;
pub(crate) mod exec;
pub(crate) mod fleet;
pub(crate) mod generate;
pub(crate) mod hook;
pub(crate) mod keygen;
pub(crate) mod parity;
pub(crate) mod policy;
pub(crate) mod rollback;
pub(crate) mod sql;
pub(crate) mod stamp;

use std::path::PathBuf;

use prodguard::{Guard, GuardError, Operation, Policy, config};
use prodguard_core::ExitCode as Refusal;
use prodguard_core::confirm::{Route, route};
use prodguard_core::policy::Requirement;
use prodguard_core::text::escape;

/// The policy named by `--policy`, or the one discovered
/// (PRODGUARD_POLICY, ./prodguard.toml, the built-in default), layered over
/// the system policy when there is one.
pub(crate) fn load_policy(explicit: Option<&PathBuf>) -> Result<Policy, GuardError> {
    config::load_policy(explicit.map(PathBuf::as_path))
}

/// What `detect` and `check` say of the policy in force: its sources, and
/// whether anything protects it.
pub(crate) fn policy_summary(guard: &Guard) -> serde_json::Value {
    let policy = guard.policy();
    serde_json::json!({
        "anchored": policy.is_anchored(),
        "sources": policy.provenance(),
        "unprotected": prodguard_core::trust::unprotected_notice(policy, guard.detection().protected),
    })
}

/// [`policy_summary`] for people.
pub(crate) fn print_policy_summary(guard: &Guard) {
    let sources: Vec<String> = guard
        .policy()
        .provenance()
        .iter()
        .map(|s| {
            let system = if s.system { "system, " } else { "" };
            let short = s.sha256.get(..12).unwrap_or(&s.sha256);
            format!("{} ({system}sha256 {short}…)", escape(&s.path))
        })
        .collect();
    say!("policy:      {}", sources.join(" + "));
    if let Some(notice) =
        prodguard_core::trust::unprotected_notice(guard.policy(), guard.detection().protected)
    {
        say!("warning:     {notice}");
    }
}

/// `value` as JSON, for an envelope.
pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<serde_json::Value, GuardError> {
    serde_json::to_value(value).map_err(|e| GuardError::Policy(format!("cannot render JSON: {e}")))
}

/// A guard under that policy.
pub(crate) fn guard(explicit_policy: Option<&PathBuf>) -> Result<Guard, GuardError> {
    Guard::builder()
        .policy(load_policy(explicit_policy)?)
        .build()
}

/// The CLI's words for how an approval token reaches this command (`how`,
/// e.g. "with --approval TOKEN or in PRODGUARD_APPROVAL"), when `error`
/// refused `operation` for want of a confirmation that a token could give
/// here. The core's next step says what token to get; how it is passed is
/// each face's to say.
pub(crate) fn token_hint(
    guard: &Guard,
    operation: &Operation,
    error: &GuardError,
    how: &str,
) -> Option<String> {
    if error.exit_code() != Refusal::NotConfirmed || operation.target.is_none() {
        return None;
    }
    let decision = prodguard_core::session::decide(guard.policy(), guard.detection(), operation);
    let routed = route(
        decision.confirm_mode,
        guard.actor().kind,
        guard.policy().approval().four_eyes,
        true,
    );
    (decision.requires(Requirement::Confirm)
        && matches!(routed, Route::CheckToken | Route::CheckTokenThenAskPerson))
    .then(|| format!("an approval token is passed to this command {how}"))
}
