//! `prodguard approve`: issue an approval token.

use std::path::Path;

use prodguard::{Guard, GuardError, Policy, approval, facts};
use prodguard_core::Tier;
use prodguard_core::approval::{Claims, issue as sign};
use prodguard_core::detect::resolve_name;
use prodguard_core::policy::{ActorKind, format_duration, parse_duration, validate_operation_name};

/// Builds and signs a token for `kind` on `target`, approved by this actor.
pub(crate) fn issue(
    guard: &Guard,
    kind: &str,
    target: &str,
    env: Option<String>,
    ttl: Option<&str>,
    fingerprint: Option<String>,
) -> Result<String, GuardError> {
    let usage = |message: String| GuardError::Policy(message);
    // Tokens are readable and bind the target as guards see it: without a
    // database URL's password.
    let redacted = prodguard::redact_password(target);
    let target = redacted.as_deref().unwrap_or(target);
    validate_operation_name(kind).map_err(|e| usage(format!("invalid operation `{kind}`: {e}")))?;
    if target.is_empty() || target.trim() != target || target.chars().any(char::is_control) {
        return Err(usage(format!(
            "invalid target {target:?}: name it exactly as the operation will"
        )));
    }
    let policy = guard.policy();
    let key_file = policy.approval.key_file.as_deref().ok_or_else(|| {
        usage("the policy names no approval key: set [approval] key_file (create one with `prodguard keygen --out FILE`)".into())
    })?;
    let key = approval::read_key(Path::new(key_file)).map_err(usage)?;
    let max = policy.approval.max_ttl_seconds;
    let seconds = match ttl {
        Some(text) => parse_duration(text).map_err(|e| usage(format!("--ttl {text}: {e}")))?,
        None => max,
    };
    if seconds > max {
        return Err(usage(format!(
            "--ttl {} is longer than the policy allows ([approval] max_ttl = {})",
            format_duration(seconds),
            format_duration(max)
        )));
    }
    let (env, tier) = match env {
        Some(name) => resolve_environment(&name, policy)?,
        None => (
            guard.detection().environment.clone(),
            guard.detection().tier,
        ),
    };
    if guard.actor().kind == ActorKind::Agent {
        return Err(usage(format!(
            "{} acts as an AI agent; an approval is a person's decision",
            guard.actor().user
        )));
    }
    let now = facts::now();
    let claims = Claims {
        v: 1,
        op: kind.to_owned(),
        target: target.to_owned(),
        env,
        tier,
        fingerprint,
        approver: guard.actor().user.clone(),
        approver_kind: Some(guard.actor().kind),
        iat: now,
        exp: now.plus_seconds(i64::try_from(seconds).unwrap_or(i64::MAX)),
        nonce: facts::random_id(),
    };
    tracing::info!(op = kind, target, approver = %claims.approver, exp = %claims.exp, "approval issued");
    Ok(sign(&key, &claims))
}

/// An environment name as the user typed it, checked and in canonical form:
/// built-in aliases become the tier's name (`prod` → `production`), policy
/// aliases stay as they are, anything else is refused (a typo would make a
/// token or stamp that never matches, or worse, an unknown one).
pub(crate) fn resolve_environment(
    name: &str,
    policy: &Policy,
) -> Result<(String, Tier), GuardError> {
    let folded = name.trim().to_ascii_lowercase();
    if let Some(tier) = Tier::from_name(&folded) {
        return Ok((tier.as_str().to_owned(), tier));
    }
    match resolve_name(&folded, &policy.environment) {
        Some(tier) => Ok((folded, tier)),
        None => Err(GuardError::Policy(format!(
            "unknown environment `{name}`: use production, staging, development, test or local, \
             or a name from the policy's [environment] aliases"
        ))),
    }
}
