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

use crate::audit::{hex, unhex32};
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

/// Why a token does not approve this operation. Each says which binding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

/// Checks `token` against the operation at hand, at `now`, requested by
/// `requester`; returns its claims when every binding holds.
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
