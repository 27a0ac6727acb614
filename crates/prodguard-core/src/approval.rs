//! Approval tokens: a confirmation given beforehand, bound to one operation
//! on one target in one environment, expiring, single-use, and MACed with a
//! key the operator holds.
//!
//! A token is `pga1.<base64url(JSON claims)>.<hex HMAC-SHA256>`. The MAC
//! covers the domain tag and the encoded claims; it is compared in constant
//! time. Whether a token's nonce was already spent is for the audit log to
//! say (under its lock), not for this module.
//!
//! ```
//! use prodguard_core::approval::{Claims, Expected, issue, verify};
//! use prodguard_core::{Tier, Timestamp};
//!
//! let key = [9u8; 32];
//! let now = Timestamp::parse_rfc3339("2026-11-27T03:00:00Z").unwrap();
//! let claims = Claims {
//!     v: 1,
//!     op: "db.migrate".into(),
//!     target: "orders".into(),
//!     env: "production".into(),
//!     tier: Tier::Production,
//!     fingerprint: None,
//!     approver: "ana".into(),
//!     approver_kind: None,
//!     iat: now,
//!     exp: now.plus_seconds(900),
//!     nonce: "00112233445566778899aabbccddeeff".into(),
//! };
//! let token = issue(&key, &claims);
//! let expected = Expected { op: "db.migrate", target: "orders", env: "production", tier: Tier::Production, fingerprint: None };
//! assert!(verify(&key, &token, &expected, now.plus_seconds(60), "bob", true).is_ok());
//! ```

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::audit::{Actor, ConfirmEvidence, hex, unhex32};
use crate::detect::{Detection, UnknownEnvironmentName, canonical_environment};
use crate::policy::{ActorKind, ApprovalConfig, Policy, format_duration};
use crate::session::{Operation, TargetProblem, target_problem};
use crate::{Tier, Timestamp};

const PREFIX: &str = "pga1.";
const DOMAIN: &[u8] = b"prodguard.approval.v1\0";

/// What a token binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Format version (1).
    pub v: u32,
    /// The operation's dotted name.
    pub op: String,
    /// The target's name.
    pub target: String,
    /// The environment's name.
    pub env: String,
    /// Its tier.
    pub tier: Tier,
    /// Whatever the caller adds, e.g. a migration checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Who approved.
    pub approver: String,
    /// What kind of actor approved (an agent's approval is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_kind: Option<crate::policy::ActorKind>,
    /// Issued at.
    pub iat: Timestamp,
    /// Expires at.
    pub exp: Timestamp,
    /// Spent once: the token's id in the audit log.
    pub nonce: String,
}

/// What the operation at hand is, to compare with a token's claims.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The operation.
    pub op: &'a str,
    /// The target.
    pub target: &'a str,
    /// The detected environment's name.
    pub env: &'a str,
    /// Its tier.
    pub tier: Tier,
    /// The caller's fingerprint, if it gives one.
    pub fingerprint: Option<&'a str>,
}

/// An approval token was offered for an operation that names no target:
/// tokens bind one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("approval tokens bind a target, and this operation names none")]
pub struct NoTarget;

impl<'a> Expected<'a> {
    /// What a token must bind to approve `operation` in `detection`'s
    /// environment; [`NoTarget`] when the operation names none.
    pub fn of(operation: &'a Operation, detection: &'a Detection) -> Result<Self, NoTarget> {
        Ok(Expected {
            op: &operation.kind,
            target: operation.target.as_deref().ok_or(NoTarget)?,
            env: &detection.environment,
            tier: detection.tier,
            fingerprint: operation.fingerprint.as_deref(),
        })
    }
}

impl Claims {
    /// The confirmation evidence a verified token gives: method `approval`,
    /// its approver, its nonce as the token id and its expiry.
    pub fn confirm_evidence(&self) -> ConfirmEvidence {
        ConfirmEvidence {
            method: "approval".into(),
            approver: Some(self.approver.clone()),
            token_id: Some(self.nonce.clone()),
            exp: Some(self.exp),
        }
    }
}

/// Why a token does not approve this operation. Each says which binding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// Not a prodguard approval token.
    #[error("the approval token is malformed ({0}); get a new one with `prodguard approve`")]
    Malformed(String),
    /// The MAC does not match: made with another key, or edited.
    #[error(
        "the approval token is forged or was made with another key (its signature does not verify)"
    )]
    Forged,
    /// For another operation.
    #[error("the approval token is for operation `{token}`, not `{actual}`")]
    WrongOperation {
        /// In the token.
        token: String,
        /// Here.
        actual: String,
    },
    /// For another target.
    #[error("the approval token is for target `{token}`, not `{actual}`")]
    WrongTarget {
        /// In the token.
        token: String,
        /// Here.
        actual: String,
    },
    /// For another environment.
    #[error(
        "the approval token is for environment `{token}` ({token_tier}), but this is `{actual}` ({actual_tier})"
    )]
    WrongEnvironment {
        /// In the token.
        token: String,
        /// Its tier.
        token_tier: Tier,
        /// Here.
        actual: String,
        /// Its tier.
        actual_tier: Tier,
    },
    /// The caller's fingerprint differs (e.g. the migration changed).
    #[error(
        "the approval token is for fingerprint {token:?}, but this operation's is {actual:?} (what was approved has changed)"
    )]
    WrongFingerprint {
        /// In the token.
        token: Option<String>,
        /// Here.
        actual: Option<String>,
    },
    /// Past its expiry.
    #[error("the approval token expired at {exp}")]
    Expired {
        /// When.
        exp: Timestamp,
    },
    /// Issued in the future (clock skew or forgery).
    #[error("the approval token was issued at {iat}, which is in the future; check the clocks")]
    NotYetValid {
        /// When.
        iat: Timestamp,
    },
    /// An AI agent approved: an agent cannot confirm a dangerous action.
    #[error("the approval token was issued by {approver}, an AI agent; a person must approve")]
    AgentApproved {
        /// Who.
        approver: String,
    },
    /// Four eyes: the approver is the requester.
    #[error(
        "the approval token was issued by {approver}, who is also requesting the operation; four_eyes requires someone else to approve"
    )]
    SelfApproved {
        /// Who.
        approver: String,
    },
    /// The token lives longer than the policy lets any token live (issued
    /// under another policy, or by hand with the key).
    #[error(
        "the approval token is valid for {}, longer than the policy allows ([approval] max_ttl = {}); get a new one with `prodguard approve`",
        format_duration(*lifetime_seconds),
        format_duration(*max_ttl_seconds)
    )]
    TooLong {
        /// From its `iat` to its `exp`, in whole seconds.
        lifetime_seconds: u64,
        /// The policy's `[approval] max_ttl`.
        max_ttl_seconds: u64,
    },
}

/// Clock skew allowed for `iat`.
const MAX_SKEW_SECONDS: i64 = 60;

fn mac(key: &[u8; 32], payload: &str) -> Option<hmac::Hmac<Sha256>> {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(DOMAIN);
    mac.update(payload.as_bytes());
    Some(mac)
}

/// Encodes and signs `claims`.
pub fn issue(key: &[u8; 32], claims: &Claims) -> String {
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let payload = base64url_encode(&json);
    let signature = mac(key, &payload)
        .map(|m| hex(&m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{PREFIX}{payload}.{signature}")
}

/// Decodes a token without checking its signature (for display only).
pub fn decode_unverified(token: &str) -> Result<Claims, ApprovalError> {
    let (payload, _) = split(token)?;
    parse_claims(payload)
}

fn split(token: &str) -> Result<(&str, &str), ApprovalError> {
    let body = token
        .trim()
        .strip_prefix(PREFIX)
        .ok_or_else(|| ApprovalError::Malformed("it does not start with pga1.".into()))?;
    body.rsplit_once('.')
        .ok_or_else(|| ApprovalError::Malformed("it has no signature".into()))
}

fn parse_claims(payload: &str) -> Result<Claims, ApprovalError> {
    let json = base64url_decode(payload)
        .ok_or_else(|| ApprovalError::Malformed("its payload is not base64url".into()))?;
    serde_json::from_slice(&json).map_err(|e| ApprovalError::Malformed(e.to_string()))
}

/// [`verify`] under the policy's `[approval]` rules: its `four_eyes`, and
/// its `max_ttl` — a token whose lifetime (`exp` − `iat`) is longer than the
/// policy lets any token live is refused ([`ApprovalError::TooLong`]), as
/// it would have been refused at issuance. What the guarded faces call.
pub fn verify_for(
    key: &[u8; 32],
    token: &str,
    expected: &Expected<'_>,
    now: Timestamp,
    requester: &str,
    rules: &ApprovalConfig,
) -> Result<Claims, ApprovalError> {
    let claims = verify(key, token, expected, now, requester, rules.four_eyes)?;
    let max = rules.max_ttl_seconds;
    if claims.exp
        > claims
            .iat
            .plus_seconds(i64::try_from(max).unwrap_or(i64::MAX))
    {
        let lifetime = claims.exp.seconds_since(claims.iat);
        return Err(ApprovalError::TooLong {
            lifetime_seconds: u64::try_from(lifetime).unwrap_or(0),
            max_ttl_seconds: max,
        });
    }
    Ok(claims)
}

/// Checks `token` against the operation at hand, at `now`, requested by
/// `requester`; returns its claims when every binding holds.
///
/// This checks the token alone; [`verify_for`] also applies the policy's
/// `max_ttl`.
pub fn verify(
    key: &[u8; 32],
    token: &str,
    expected: &Expected<'_>,
    now: Timestamp,
    requester: &str,
    four_eyes: bool,
) -> Result<Claims, ApprovalError> {
    let (payload, signature) = split(token)?;
    let signature = unhex32(signature).ok_or(ApprovalError::Forged)?;
    let valid = mac(key, payload).is_some_and(|m| m.verify_slice(&signature).is_ok());
    if !valid {
        return Err(ApprovalError::Forged);
    }
    let claims = parse_claims(payload)?;
    if claims.v != 1 {
        return Err(ApprovalError::Malformed(format!(
            "version {} is not supported",
            claims.v
        )));
    }
    if claims.op != expected.op {
        return Err(ApprovalError::WrongOperation {
            token: claims.op,
            actual: expected.op.into(),
        });
    }
    if claims.target != expected.target {
        return Err(ApprovalError::WrongTarget {
            token: claims.target,
            actual: expected.target.into(),
        });
    }
    if !crate::session::same_environment(&claims.env, expected.env) || claims.tier != expected.tier
    {
        return Err(ApprovalError::WrongEnvironment {
            token: claims.env,
            token_tier: claims.tier,
            actual: expected.env.into(),
            actual_tier: expected.tier,
        });
    }
    if claims.fingerprint.as_deref() != expected.fingerprint {
        return Err(ApprovalError::WrongFingerprint {
            token: claims.fingerprint,
            actual: expected.fingerprint.map(str::to_owned),
        });
    }
    if now >= claims.exp {
        return Err(ApprovalError::Expired { exp: claims.exp });
    }
    if claims.iat.seconds_since(now) > MAX_SKEW_SECONDS {
        return Err(ApprovalError::NotYetValid { iat: claims.iat });
    }
    if claims.approver_kind == Some(crate::policy::ActorKind::Agent) {
        return Err(ApprovalError::AgentApproved {
            approver: claims.approver,
        });
    }
    if four_eyes && claims.approver == requester {
        return Err(ApprovalError::SelfApproved {
            approver: claims.approver,
        });
    }
    Ok(claims)
}

/// What an approver asks to approve (`prodguard approve`): one operation
/// on one target, in one environment, for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest<'a> {
    /// The operation's dotted name.
    pub op: &'a str,
    /// The target it may act on, named as the operation will name it (a
    /// database URL's password is left out of the token).
    pub target: &'a str,
    /// The environment it may run in, as typed (canonicalised: `prod` →
    /// `production`); `None`: the detected one.
    pub env: Option<&'a str>,
    /// How long it is valid, in seconds; `None`: the policy's `max_ttl`.
    pub ttl_seconds: Option<u64>,
    /// What exactly is approved, e.g. a migration's checksum.
    pub fingerprint: Option<String>,
    /// A fresh random id (the core has no randomness): spent by the first run.
    pub nonce: String,
}

/// Why an approval token cannot be issued. Each says what to change.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The operation's name is not a valid dotted name.
    #[error("invalid operation `{op}`: {problem}")]
    InvalidOperation {
        /// As given.
        op: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The target is empty, padded with whitespace or holds control characters.
    #[error("invalid target {target:?}: name it exactly as the operation will")]
    InvalidTarget {
        /// As given (without a database URL's password).
        target: String,
    },
    /// The target is longer than any guarded operation accepts.
    #[error(
        "invalid target ({bytes} bytes): it is longer than 256 bytes, which no guarded operation accepts; name it exactly as the operation will"
    )]
    TargetTooLong {
        /// Its length.
        bytes: usize,
    },
    /// The lifetime asked for is longer than the policy's `max_ttl`.
    #[error(
        "a lifetime of {} is longer than the policy allows ([approval] max_ttl = {})",
        format_duration(*ttl_seconds),
        format_duration(*max_ttl_seconds)
    )]
    TtlTooLong {
        /// Asked for.
        ttl_seconds: u64,
        /// The policy's `[approval] max_ttl`.
        max_ttl_seconds: u64,
    },
    /// The environment named is neither a built-in one nor a policy alias.
    #[error(transparent)]
    UnknownEnvironment(#[from] UnknownEnvironmentName),
    /// The approver is an AI agent: an approval is a person's decision.
    #[error("{user} acts as an AI agent; an approval is a person's decision")]
    AgentApprover {
        /// Who tried.
        user: String,
    },
}

/// The claims of a token approving `request`, by `approver`, issued at
/// `now` under `policy`, in the environment `detection` found unless the
/// request names one; sign them with [`issue`].
///
/// The rules every issuer follows: the operation is a valid dotted name;
/// the target is one a guarded operation accepts (not empty, not padded,
/// no control characters, at most 256 bytes) and carries no database
/// password; the lifetime is at most the policy's `max_ttl` (the default);
/// the environment is canonical (`prod` → `production`, policy aliases as
/// they are, anything else refused); and an AI agent may not approve.
pub fn claims_for(
    request: IssueRequest<'_>,
    policy: &Policy,
    detection: &Detection,
    approver: &Actor,
    now: Timestamp,
) -> Result<Claims, IssueError> {
    let op = request.op;
    crate::policy::validate_operation_name(op).map_err(|problem| IssueError::InvalidOperation {
        op: op.to_owned(),
        problem,
    })?;
    // Tokens are readable and bind the target as guards see it: without a
    // database URL's password.
    let redacted = crate::secret::redact_password(request.target);
    let target = redacted.as_deref().unwrap_or(request.target);
    match target_problem(target) {
        None => {}
        Some(TargetProblem::TooLong) => {
            return Err(IssueError::TargetTooLong {
                bytes: target.len(),
            });
        }
        Some(_) => {
            return Err(IssueError::InvalidTarget {
                target: target.to_owned(),
            });
        }
    }
    let max = policy.approval.max_ttl_seconds;
    let seconds = request.ttl_seconds.unwrap_or(max);
    if seconds > max {
        return Err(IssueError::TtlTooLong {
            ttl_seconds: seconds,
            max_ttl_seconds: max,
        });
    }
    let (env, tier) = match request.env {
        Some(name) => canonical_environment(name, &policy.environment)?,
        None => (detection.environment.clone(), detection.tier),
    };
    if approver.kind == ActorKind::Agent {
        return Err(IssueError::AgentApprover {
            user: approver.user.clone(),
        });
    }
    Ok(Claims {
        v: 1,
        op: op.to_owned(),
        target: target.to_owned(),
        env,
        tier,
        fingerprint: request.fingerprint,
        approver: approver.user.clone(),
        approver_kind: Some(approver.kind),
        iat: now,
        exp: now.plus_seconds(i64::try_from(seconds).unwrap_or(i64::MAX)),
        nonce: request.nonce,
    })
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding.
fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero padding (4 or 2 bits at most).
    (bits < 6 && acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::MAX_TARGET_BYTES;

    fn claims(now: Timestamp) -> Claims {
        Claims {
            v: 1,
            op: "db.migrate".into(),
            target: "orders".into(),
            env: "production".into(),
            tier: Tier::Production,
            fingerprint: Some("sha256:abc".into()),
            approver: "ana".into(),
            approver_kind: None,
            iat: now,
            exp: now.plus_seconds(600),
            nonce: "ff".repeat(16),
        }
    }

    fn expected() -> Expected<'static> {
        Expected {
            op: "db.migrate",
            target: "orders",
            env: "production",
            tier: Tier::Production,
            fingerprint: Some("sha256:abc"),
        }
    }

    #[test]
    fn base64url_round_trips() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64url_decode(&base64url_encode(&bytes)).unwrap(), bytes);
        }
        assert_eq!(base64url_encode(b"\xfb\xff"), "-_8");
        assert!(base64url_decode("a+b").is_none());
    }

    #[test]
    fn every_binding_is_checked_and_named() {
        let key = [1u8; 32];
        let now = Timestamp(1_800_000_000_000_000);
        let token = issue(&key, &claims(now));
        let ok = verify(&key, &token, &expected(), now, "bob", true).unwrap();
        assert_eq!(ok.approver, "ana");

        let e = |exp: Expected<'_>, at: Timestamp, who: &str| {
            verify(&key, &token, &exp, at, who, true).unwrap_err()
        };
        assert!(matches!(
            e(
                Expected {
                    op: "db.drop",
                    ..expected()
                },
                now,
                "bob"
            ),
            ApprovalError::WrongOperation { .. }
        ));
        assert!(matches!(
            e(
                Expected {
                    target: "users",
                    ..expected()
                },
                now,
                "bob"
            ),
            ApprovalError::WrongTarget { .. }
        ));
        assert!(matches!(
            e(
                Expected {
                    env: "staging",
                    tier: Tier::Staging,
                    ..expected()
                },
                now,
                "bob"
            ),
            ApprovalError::WrongEnvironment { .. }
        ));
        assert!(matches!(
            e(
                Expected {
                    fingerprint: None,
                    ..expected()
                },
                now,
                "bob"
            ),
            ApprovalError::WrongFingerprint { .. }
        ));
        assert!(matches!(
            e(expected(), now.plus_seconds(600), "bob"),
            ApprovalError::Expired { .. }
        ));
        assert!(matches!(
            e(expected(), now.plus_seconds(-3600), "bob"),
            ApprovalError::NotYetValid { .. }
        ));
        assert!(matches!(
            e(expected(), now, "ana"),
            ApprovalError::SelfApproved { .. }
        ));
        assert!(
            verify(&key, &token, &expected(), now, "ana", false).is_ok(),
            "without four eyes"
        );
        assert!(matches!(
            verify(&[2u8; 32], &token, &expected(), now, "bob", true),
            Err(ApprovalError::Forged)
        ));
    }

    fn rules(max_ttl_seconds: u64) -> ApprovalConfig {
        ApprovalConfig {
            max_ttl_seconds,
            four_eyes: true,
            ..Policy::builtin_default().approval
        }
    }

    #[test]
    fn a_token_living_longer_than_the_policys_max_ttl_is_refused() {
        let key = [1u8; 32];
        let now = Timestamp(1_800_000_000_000_000);
        // Lives 600s (claims()); a policy allowing 600s or more accepts it.
        let token = issue(&key, &claims(now));
        for max in [600, 900] {
            assert!(verify_for(&key, &token, &expected(), now, "bob", &rules(max)).is_ok());
        }
        let refused = verify_for(&key, &token, &expected(), now, "bob", &rules(599)).unwrap_err();
        assert_eq!(
            refused,
            ApprovalError::TooLong {
                lifetime_seconds: 600,
                max_ttl_seconds: 599
            }
        );
        assert!(refused.to_string().contains("max_ttl"), "{refused}");
        // A fraction of a second too long is too long.
        let mut long = claims(now);
        long.exp.0 += 1;
        let token = issue(&key, &long);
        assert!(matches!(
            verify_for(&key, &token, &expected(), now, "bob", &rules(600)),
            Err(ApprovalError::TooLong { .. })
        ));
        // verify_for applies the policy's four eyes too.
        let token = issue(&key, &claims(now));
        assert!(matches!(
            verify_for(&key, &token, &expected(), now, "ana", &rules(600)),
            Err(ApprovalError::SelfApproved { .. })
        ));
        let mut lax = rules(600);
        lax.four_eyes = false;
        assert!(verify_for(&key, &token, &expected(), now, "ana", &lax).is_ok());
    }

    fn detection() -> Detection {
        Detection {
            environment: "production".into(),
            tier: Tier::Production,
            protected: true,
            decided_by: "env:APP_ENV".into(),
            evidence: Vec::new(),
            conflicts: Vec::new(),
            hint: None,
        }
    }

    fn request(target: &str) -> IssueRequest<'_> {
        IssueRequest {
            op: "db.migrate",
            target,
            env: None,
            ttl_seconds: None,
            fingerprint: None,
            nonce: "n1".into(),
        }
    }

    fn ana(kind: ActorKind) -> Actor {
        Actor {
            user: "ana".into(),
            kind,
            account: None,
        }
    }

    #[test]
    fn issued_claims_follow_the_policy() {
        let policy = Policy::builtin_default();
        let now = Timestamp(1_800_000_000_000_000);
        let human = ana(ActorKind::Human);
        let claims = claims_for(request("orders"), &policy, &detection(), &human, now).unwrap();
        assert_eq!(
            (
                claims.op.as_str(),
                claims.target.as_str(),
                claims.env.as_str()
            ),
            ("db.migrate", "orders", "production")
        );
        assert_eq!(claims.approver_kind, Some(ActorKind::Human));
        let max = policy.approval.max_ttl_seconds;
        assert_eq!(
            claims.exp,
            now.plus_seconds(i64::try_from(max).unwrap()),
            "the default lifetime is max_ttl"
        );
        // What was issued verifies under the same policy.
        let key = [3u8; 32];
        let expected = Expected {
            op: "db.migrate",
            target: "orders",
            env: "production",
            tier: Tier::Production,
            fingerprint: None,
        };
        let token = issue(&key, &claims);
        assert!(verify_for(&key, &token, &expected, now, "bob", &policy.approval).is_ok());
        // A database URL's password stays out of the token.
        let claims = claims_for(
            request("postgresql://app:hunter2@db/orders"),
            &policy,
            &detection(),
            &human,
            now,
        )
        .unwrap();
        assert_eq!(claims.target, "postgresql://app@db/orders");
        // The environment is canonical.
        let staging = IssueRequest {
            env: Some(" Stage "),
            ..request("orders")
        };
        let claims = claims_for(staging, &policy, &detection(), &human, now).unwrap();
        assert_eq!(
            (claims.env.as_str(), claims.tier),
            ("staging", Tier::Staging)
        );
    }

    #[test]
    fn issuance_refuses_what_no_guard_would_accept() {
        let policy = Policy::builtin_default();
        let now = Timestamp(0);
        let human = ana(ActorKind::Human);
        let refuse = |request: IssueRequest<'_>, who: &Actor| {
            claims_for(request, &policy, &detection(), who, now).unwrap_err()
        };
        // Longer than 256 bytes: a guarded operation would refuse the target.
        let long = "a".repeat(MAX_TARGET_BYTES + 1);
        assert_eq!(
            refuse(request(&long), &human),
            IssueError::TargetTooLong { bytes: 257 }
        );
        let longest = "a".repeat(MAX_TARGET_BYTES);
        assert!(claims_for(request(&longest), &policy, &detection(), &human, now).is_ok());
        for bad in ["", " orders", "orders\n", "a\u{7}b"] {
            assert!(
                matches!(
                    refuse(request(bad), &human),
                    IssueError::InvalidTarget { .. }
                ),
                "{bad:?}"
            );
        }
        // An agent may not approve.
        assert_eq!(
            refuse(request("orders"), &ana(ActorKind::Agent)),
            IssueError::AgentApprover { user: "ana".into() }
        );
        for kind in [ActorKind::Human, ActorKind::Ci, ActorKind::Service] {
            assert!(claims_for(request("orders"), &policy, &detection(), &ana(kind), now).is_ok());
        }
        // No longer than max_ttl.
        let max = policy.approval.max_ttl_seconds;
        let too_long = IssueRequest {
            ttl_seconds: Some(max + 1),
            ..request("orders")
        };
        assert!(matches!(
            refuse(too_long, &human),
            IssueError::TtlTooLong { .. }
        ));
        let exactly = IssueRequest {
            ttl_seconds: Some(max),
            ..request("orders")
        };
        assert!(claims_for(exactly, &policy, &detection(), &human, now).is_ok());
        // A valid name, a known environment.
        let bad_op = IssueRequest {
            op: "DB.Migrate",
            ..request("orders")
        };
        assert!(matches!(
            refuse(bad_op, &human),
            IssueError::InvalidOperation { .. }
        ));
        let typo = IssueRequest {
            env: Some("prodution"),
            ..request("orders")
        };
        assert!(matches!(
            refuse(typo, &human),
            IssueError::UnknownEnvironment(_)
        ));
    }

    #[test]
    fn an_edited_token_is_forged_and_junk_is_malformed() {
        let key = [1u8; 32];
        let now = Timestamp(1_800_000_000_000_000);
        let token = issue(&key, &claims(now));
        // Re-sign nothing, just swap the target inside the payload.
        let (payload, sig) = token
            .strip_prefix(PREFIX)
            .unwrap()
            .rsplit_once('.')
            .unwrap();
        let json = String::from_utf8(base64url_decode(payload).unwrap())
            .unwrap()
            .replace("orders", "users");
        let edited = format!("{PREFIX}{}.{sig}", base64url_encode(json.as_bytes()));
        let exp = Expected {
            target: "users",
            ..expected()
        };
        assert_eq!(
            verify(&key, &edited, &exp, now, "bob", true),
            Err(ApprovalError::Forged)
        );
        for junk in [
            "",
            "pga1.",
            "pga1.x",
            "xyz.abc.def",
            "pga1.!!!.00",
            "pga1.e30.zz",
        ] {
            assert!(
                verify(&key, junk, &expected(), now, "bob", true).is_err(),
                "{junk:?}"
            );
        }
    }
}
