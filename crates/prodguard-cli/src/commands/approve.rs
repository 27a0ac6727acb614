//! `prodguard approve --key FILE`: issue an approval token signed with an
//! approver's key.

use std::path::{Path, PathBuf};

use prodguard::{Guard, GuardError, approval, facts};
use prodguard_core::approval::{Claims, IssueError, IssueRequest, claims_for, issue as sign};
use prodguard_core::policy::{format_duration, parse_duration};

use super::{guard, to_json};
use crate::envelope::{self, Envelope};

/// The flags that say what is approved.
pub(crate) struct Flags<'a> {
    /// Required without `sql`; with it, the script's (checked if given).
    pub(crate) kind: Option<&'a str>,
    pub(crate) target: &'a str,
    pub(crate) env: Option<String>,
    pub(crate) ttl: Option<&'a str>,
    pub(crate) fingerprint: Option<String>,
    /// A SQL script whose operation and fingerprint the token binds.
    pub(crate) sql: Option<&'a Path>,
    pub(crate) dialect: Option<&'a str>,
    pub(crate) max_rows: Option<u64>,
    pub(crate) ledger: Option<String>,
}

/// Issues the token and prints it (under `--json`, with what it binds).
pub(crate) fn run(
    policy: Option<&PathBuf>,
    key: &Path,
    flags: Flags<'_>,
    json: bool,
) -> Result<Envelope, GuardError> {
    let guard = guard(policy)?;
    let (token, claims) = issue(&guard, key, flags)?;
    if !json {
        say!("{token}");
    }
    Ok(envelope::ok(serde_json::json!({
        "token": token,
        "claims": to_json(&claims)?,
    })))
}

/// Builds and signs a token for what `flags` say, approved by the key's
/// approver.
///
/// The rules (what may be approved, by whom, for how long) are the core's
/// [`claims_for`]; this reads the flags and the key, and signs.
fn issue(guard: &Guard, key_file: &Path, flags: Flags<'_>) -> Result<(String, Claims), GuardError> {
    let usage = |message: String| GuardError::Policy(message);
    let ttl_seconds = match flags.ttl {
        Some(text) => Some(parse_duration(text).map_err(|e| usage(format!("--ttl {text}: {e}")))?),
        None => None,
    };
    let key = approval::read_key(key_file).map_err(|e| usage(e.to_string()))?;
    let policy = guard.policy();
    // A key listed under its name with another public key is a sure
    // mistake (an old or a colleague's key file): say so now, not at the run.
    if let Some(listed) = policy.approval().approvers.get(key.name())
        && listed.key != key.public_key()
    {
        return Err(usage(format!(
            "{} is {}'s key {}, but the policy ({}) lists another key for {}; use the key it lists",
            key_file.display(),
            key.name(),
            key.public_key_text(),
            policy.source(),
            key.name()
        )));
    }
    let mut kind = flags.kind.map(str::to_owned);
    let mut fingerprint = flags.fingerprint;
    let mut target = flags.target.to_owned();
    if let Some(file) = flags.sql {
        let (script, database) = super::sql::read_classified(file, flags.dialect, flags.target)?;
        let operation = script.operation.as_str();
        if let Some(given) = kind.as_deref().filter(|given| *given != operation) {
            return Err(usage(format!(
                "--op {} is not the script's operation `{operation}` (its most dangerous \
                 statement): leave --op out with --sql",
                prodguard_core::text::escape(given)
            )));
        }
        kind = Some(operation.to_owned());
        fingerprint = Some(script.fingerprint);
        target = database;
    }
    let Some(kind) = kind else {
        return Err(usage(
            "say what is approved: --op KIND, or --sql FILE".into(),
        ));
    };
    let request = IssueRequest {
        op: &kind,
        target: &target,
        env: flags.env.as_deref(),
        ttl_seconds,
        fingerprint,
        max_rows: flags.max_rows,
        nonce: facts::random_id(),
        approver: key.name(),
        ledger: flags.ledger.unwrap_or_else(|| guard.ledger_id()),
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
    tracing::info!(op = %claims.op, target = %claims.target, approver = %claims.approver, ledger = %claims.ledger, exp = %claims.exp, "approval issued");
    Ok((sign(&key, &claims), claims))
}
