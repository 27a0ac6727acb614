//! `prodguard approve`: issue an approval token.

use std::path::{Path, PathBuf};

use prodguard::{Guard, GuardError, approval, facts};
use prodguard_core::approval::{IssueError, IssueRequest, claims_for, issue as sign};
use prodguard_core::policy::{format_duration, parse_duration};

use super::guard;

/// Issues the token and prints it.
pub(crate) fn run(
    policy: Option<&PathBuf>,
    kind: &str,
    target: &str,
    env: Option<String>,
    ttl: Option<&str>,
    fingerprint: Option<String>,
) -> Result<i32, GuardError> {
    let guard = guard(policy)?;
    let token = issue(&guard, kind, target, env, ttl, fingerprint)?;
    say!("{token}");
    Ok(0)
}

/// Builds and signs a token for `kind` on `target`, approved by this actor.
///
/// The rules (what may be approved, by whom, for how long) are the core's
/// [`claims_for`]; this reads the flags and the key, and signs.
fn issue(
    guard: &Guard,
    kind: &str,
    target: &str,
    env: Option<String>,
    ttl: Option<&str>,
    fingerprint: Option<String>,
) -> Result<String, GuardError> {
    let usage = |message: String| GuardError::Policy(message);
    let ttl_seconds = match ttl {
        Some(text) => Some(parse_duration(text).map_err(|e| usage(format!("--ttl {text}: {e}")))?),
        None => None,
    };
    let policy = guard.policy();
    let request = IssueRequest {
        op: kind,
        target,
        env: env.as_deref(),
        ttl_seconds,
        fingerprint,
        nonce: facts::random_id(),
    };
    let claims = claims_for(
        request,
        policy,
        guard.detection(),
        guard.actor(),
        facts::now(),
    )
    .map_err(|e| match e {
        // The lifetime came from the --ttl flag: say so.
        IssueError::TtlTooLong {
            ttl_seconds,
            max_ttl_seconds,
        } => usage(format!(
            "--ttl {} is longer than the policy allows ([approval] max_ttl = {})",
            format_duration(ttl_seconds),
            format_duration(max_ttl_seconds)
        )),
        other => usage(other.to_string()),
    })?;
    let key_file = policy.approval().key_file.as_deref().ok_or_else(|| {
        usage("the policy names no approval key: set [approval] key_file (create one with `prodguard keygen --out FILE`)".into())
    })?;
    let key = approval::read_key(Path::new(key_file)).map_err(|e| usage(e.to_string()))?;
    tracing::info!(op = kind, target = %claims.target, approver = %claims.approver, exp = %claims.exp, "approval issued");
    Ok(sign(&key, &claims))
}
