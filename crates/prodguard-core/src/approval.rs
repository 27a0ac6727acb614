//! Approval tokens: a confirmation given beforehand by a named approver,
//! bound to one operation on one target in one environment, expiring, spent
//! once in one ledger, and signed with the approver's own Ed25519 key.
//!
//! A token is `pga2.<base64url(JSON claims)>.<base64url(signature)>`. The
//! signature covers a domain tag and the payload text exactly as it stands
//! in the token. Runs verify with the public keys the policy lists in
//! `[approval] approvers`, so whoever can verify a token cannot mint one
//! (the `pga1` tokens of 0.1 were MACed with one shared key, and were
//! replaced in 0.2 for that reason). Whether a token's nonce was already
//! spent is for the ledger to say (under its lock), not for this module.
//!
//! ```
//! use prodguard_core::approval::{ApproverKey, Claims, Expected, issue, verify};
//! use prodguard_core::audit::Actor;
//! use prodguard_core::policy::ActorKind;
//! use prodguard_core::{Policy, Tier, Timestamp};
//!
//! // Ana's key pair (`prodguard keygen --approver ana` makes one from 32 random bytes).
//! let ana = ApproverKey::from_secret("ana", [9u8; 32]).unwrap();
//! let policy = Policy::parse_toml(
//!     &format!(
//!         "[approval]\nfour_eyes = true\napprovers = {{ ana = {{ key = \"{}\", user = \"ana\" }} }}\n\
//!          [[rule]]\noperations = [\"*\"]\nrequire = [\"confirm\"]\n",
//!         ana.public_key_text()
//!     ),
//!     "policy.toml",
//! )
//! .unwrap();
//! let now = Timestamp::parse_rfc3339("2026-11-27T03:00:00Z").unwrap();
//! let ledger = "file://db-1/var/log/prodguard/audit.jsonl";
//! let claims = Claims {
//!     v: 2,
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
//!     ledger: ledger.into(),
//!     max_rows: None,
//! };
//! let token = issue(&ana, &claims);
//! let expected = Expected { op: "db.migrate", target: "orders", env: "production", tier: Tier::Production, fingerprint: None };
//! // Bob's run: another OS account than ana's.
//! let bob = Actor { user: "bob".into(), kind: ActorKind::Human, account: Some("bob".into()) };
//! let here = prodguard_core::approval::Here { requester: &bob, ledger, now: now.plus_seconds(60) };
//! assert!(verify(policy.approval(), &token, &expected, &here).is_ok());
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::audit::{Actor, ConfirmEvidence};
use crate::detect::{Detection, UnknownEnvironmentName, canonical_environment};
use crate::policy::{ActorKind, ApprovalConfig, Policy, format_duration};
use crate::session::{Operation, TargetProblem, target_problem};
use crate::{Tier, Timestamp};

const PREFIX: &str = "pga2.";
/// 0.1's HMAC tokens: refused with a message saying what replaced them.
const OLD_PREFIX: &str = "pga1.";
const DOMAIN: &[u8] = b"prodguard.approval.v2\0";
/// How a public key is written in the policy: `ed25519:<base64 of 32 bytes>`.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";
/// The first line of an approver's key file.
pub const KEY_FILE_HEADER: &str = "prodguard approver key v1";

/// What a token binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Format version (2).
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
    /// The most rows any one statement of the approved SQL script may
    /// affect; a run that would affect more is rolled back and refused.
    /// A run whose rows nobody counts cannot use a token that sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// Who approved: a name in the policy's `[approval] approvers`, whose
    /// key signed the token.
    pub approver: String,
    /// What kind of actor approved (an agent's approval is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_kind: Option<crate::policy::ActorKind>,
    /// Issued at.
    pub iat: Timestamp,
    /// Expires at.
    pub exp: Timestamp,
    /// Spent once: the token's id in the ledger.
    pub nonce: String,
    /// The ledger its nonce is spent in ([`ledger_id`]): a run that spends
    /// elsewhere refuses it, so a fresh audit log cannot replay it.
    pub ledger: String,
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

/// The run a token is offered to: who asks, where it spends tokens, when.
#[derive(Debug, Clone, Copy)]
pub struct Here<'a> {
    /// Who requests the operation; four eyes compares its `account`.
    pub requester: &'a Actor,
    /// The ledger this run spends tokens in ([`ledger_id`]).
    pub ledger: &'a str,
    /// Now.
    pub now: Timestamp,
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
            max_rows: self.max_rows,
        }
    }
}

/// A fingerprint as an [`ApprovalError`] quotes it: escaped, or `none`.
fn shown_fingerprint(fingerprint: Option<&str>) -> String {
    match fingerprint {
        Some(f) => format!("`{}`", crate::text::escape(f)),
        None => "none".into(),
    }
}

/// Why a token does not approve this operation. Each says which binding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// Not a prodguard approval token.
    #[error("the approval token is malformed ({0}); get a new one with `prodguard approve`")]
    Malformed(String),
    /// A `pga1` token: 0.1's shared-key tokens, no longer accepted.
    #[error(
        "the approval token is a pga1 token, MACed with a shared key; prodguard 0.2 replaced \
         those with approver keys (whoever could verify a pga1 token could also mint one): \
         get a new token from an approver (`prodguard approve --key FILE`)"
    )]
    Obsolete,
    /// Signed in the name of someone the policy does not list.
    #[error(
        "the approval token is signed by `{}`, who is not in the policy's [approval] \
         approvers; the system policy must list an approver's public key \
         (`prodguard keygen --approver {} --out FILE` prints the line to add)",
        crate::text::escape(approver),
        crate::text::shell_word(approver)
    )]
    UnknownApprover {
        /// The name in the token.
        approver: String,
    },
    /// The signature does not verify with the approver's listed key: made
    /// with another key, or edited.
    #[error(
        "the approval token is forged: its signature does not verify with the key the policy lists for its approver (made with another key, or edited)"
    )]
    Forged,
    /// For another operation.
    #[error(
        "the approval token is for operation `{}`, not `{}`",
        crate::text::escape(token),
        crate::text::escape(actual)
    )]
    WrongOperation {
        /// In the token.
        token: String,
        /// Here.
        actual: String,
    },
    /// For another target.
    #[error(
        "the approval token is for target `{}`, not `{}`",
        crate::text::escape(token),
        crate::text::escape(actual)
    )]
    WrongTarget {
        /// In the token.
        token: String,
        /// Here.
        actual: String,
    },
    /// For another environment.
    #[error(
        "the approval token is for environment `{}` ({token_tier}), but this is `{}` ({actual_tier})",
        crate::text::escape(token),
        crate::text::escape(actual)
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
        "the approval token is for fingerprint {}, but this operation's is {} (what was approved has changed)",
        shown_fingerprint(token.as_deref()),
        shown_fingerprint(actual.as_deref())
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
    /// The token lives longer than the policy lets any token live (issued
    /// under another policy).
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
    /// Minted for another ledger: its nonce would be spent where this run
    /// cannot see it (a fresh audit log, another policy's log).
    #[error(
        "the approval token is spent in ledger `{}`, but this run spends approvals in \
         `{}`; a token is spent in one ledger only, so run where it was meant to be spent \
         or get a token for this ledger (`prodguard approve --ledger {}`)",
        crate::text::escape(token),
        crate::text::escape(here),
        crate::text::shell_word(here)
    )]
    WrongLedger {
        /// In the token.
        token: String,
        /// This run's.
        here: String,
    },
    /// An AI agent approved: an agent cannot confirm a dangerous action.
    #[error(
        "the approval token was issued by {}, an AI agent; a person must approve",
        crate::text::escape(approver)
    )]
    AgentApproved {
        /// Who.
        approver: String,
    },
    /// Four eyes: the approver's OS account is the requester's.
    #[error(
        "the approval token was signed by {}, whose OS account `{}` is the one \
         requesting the operation; four_eyes requires an approver with another account",
        crate::text::escape(approver),
        crate::text::escape(account)
    )]
    SelfApproved {
        /// The approver's name.
        approver: String,
        /// The OS account both share.
        account: String,
    },
    /// Four eyes with a requester whose OS account nobody stated.
    #[error(
        "four_eyes compares the approver's OS account with the requester's, and the \
         requester's is unknown (no actor.account, or a uid with no name in the password \
         database), so the approval by {} cannot be shown to come from someone else; \
         run it as an account with a name",
        crate::text::escape(approver)
    )]
    UnknownRequester {
        /// The approver's name.
        approver: String,
    },
}

/// Clock skew allowed for `iat`.
const MAX_SKEW_SECONDS: i64 = 60;

/// How far around a token's lifetime its spending is looked for, and kept:
/// the log whose records a token's issue and expiry are compared with may
/// run on another host, whose clock is allowed to be off by the skew, both
/// ways.
pub const SPENT_MARGIN_SECONDS: i64 = 2 * MAX_SKEW_SECONDS;

/// An approver's signing key, with the name the policy lists it under.
///
/// The key file (`prodguard keygen --approver NAME --out FILE`) is text:
///
/// ```text
/// prodguard approver key v1
/// approver = alice
/// secret = <base64 of the 32-byte Ed25519 secret key>
/// ```
///
/// ```
/// use prodguard_core::approval::ApproverKey;
/// let key = ApproverKey::from_secret("alice", [7u8; 32]).unwrap();
/// let again = ApproverKey::parse(&key.to_text()).unwrap();
/// assert_eq!(again.name(), "alice");
/// assert_eq!(again.public_key_text(), key.public_key_text());
/// assert!(key.public_key_text().starts_with("ed25519:"));
/// ```
pub struct ApproverKey {
    name: String,
    signing: SigningKey,
}

impl std::fmt::Debug for ApproverKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("ApproverKey")
            .field("name", &self.name)
            .field("public", &self.public_key_text())
            .finish_non_exhaustive()
    }
}

/// Why an approver's key file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyFileError(String);

impl ApproverKey {
    /// The key pair whose secret is `secret` (32 random bytes), for the
    /// approver `name`.
    pub fn from_secret(name: &str, secret: [u8; 32]) -> Result<ApproverKey, KeyFileError> {
        validate_approver_name(name).map_err(KeyFileError)?;
        Ok(ApproverKey {
            name: name.to_owned(),
            signing: SigningKey::from_bytes(&secret),
        })
    }

    /// Reads a key file's text (see the type's documentation).
    pub fn parse(text: &str) -> Result<ApproverKey, KeyFileError> {
        let bad = |why: &str| {
            KeyFileError(format!(
                "not a prodguard approver key ({why}); make one with `prodguard keygen --approver NAME --out FILE`"
            ))
        };
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(bad(&format!("its first line is not `{KEY_FILE_HEADER}`")));
        }
        let (mut name, mut secret) = (None, None);
        for line in lines {
            match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("approver", v)) => name = Some(v),
                Some(("secret", v)) => secret = Some(v),
                _ => return Err(bad(&format!("unexpected line {line:?}"))),
            }
        }
        let name = name.ok_or_else(|| bad("no `approver = NAME` line"))?;
        let secret = secret
            .and_then(|s| STANDARD.decode(s).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| bad("no `secret =` line with the base64 of 32 bytes"))?;
        ApproverKey::from_secret(name, secret)
    }

    /// The key file's text.
    pub fn to_text(&self) -> String {
        format!(
            "{KEY_FILE_HEADER}\napprover = {}\nsecret = {}\n",
            self.name,
            STANDARD.encode(self.signing.to_bytes())
        )
    }

    /// The approver's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public key as the policy lists it: `ed25519:<base64>`.
    pub fn public_key_text(&self) -> String {
        public_key_text(&self.public_key())
    }
}

/// A public key as the policy lists it: `ed25519:<base64 of 32 bytes>`.
pub fn public_key_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_KEY_PREFIX}{}", STANDARD.encode(key.as_bytes()))
}

/// Reads `ed25519:<base64 of 32 bytes>`; says what is wrong otherwise.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let encoded = text
        .strip_prefix(PUBLIC_KEY_PREFIX)
        .ok_or_else(|| format!("it does not start with `{PUBLIC_KEY_PREFIX}`"))?;
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| "what follows `ed25519:` is not base64".to_owned())?;
    let bytes = <[u8; 32]>::try_from(bytes).map_err(|b| {
        format!(
            "it holds {} bytes, not the 32 of an Ed25519 public key",
            b.len()
        )
    })?;
    match VerifyingKey::from_bytes(&bytes) {
        Ok(key) if !key.is_weak() => Ok(key),
        _ => Err("those 32 bytes are not a usable Ed25519 public key".into()),
    }
}

/// An approver's name: 1 to 64 ASCII letters, digits, `.`, `_` or `-`,
/// starting with a letter or digit (it is a TOML key and a token claim).
pub fn validate_approver_name(name: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid approver name {name:?}: use 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
        ))
    }
}

/// The identity of the ledger a run spends approval tokens in: the
/// `[approval] ledger` URL, else the `[audit] sink` URL (fleet mode spends
/// in the trail's own table), without a password; else the audit log file
/// the run writes to, as `file://HOST/ABS/PATH` (`audit_log` should be
/// absolute); else `sink://HOST` (a program's own audit sink).
///
/// ```
/// use prodguard_core::{Policy, approval::ledger_id};
/// let policy = Policy::builtin_default();
/// assert_eq!(
///     ledger_id(&policy, Some("/var/log/prodguard/audit.jsonl"), Some("db-1")),
///     "file://db-1/var/log/prodguard/audit.jsonl"
/// );
/// ```
pub fn ledger_id(policy: &Policy, audit_log: Option<&str>, host: Option<&str>) -> String {
    if let Some(url) = ledger_url(policy) {
        return crate::secret::redact_password(url).unwrap_or_else(|| url.to_owned());
    }
    let host = host.unwrap_or("");
    match audit_log {
        Some(path) => format!("file://{host}{path}"),
        None => format!("sink://{host}"),
    }
}

/// Where fleet mode spends approvals: the `[approval] ledger`, else the
/// `[audit] sink` (the trail's own table); `None`: in the local audit log.
pub fn ledger_url(policy: &Policy) -> Option<&str> {
    policy
        .approval
        .ledger
        .as_deref()
        .or(policy.audit.sink.as_deref())
}

/// Signs `claims` with the approver's key.
pub fn issue(key: &ApproverKey, claims: &Claims) -> String {
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(json);
    let signature = key.signing.sign(&signed_bytes(&payload));
    format!(
        "{PREFIX}{payload}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    )
}

fn signed_bytes(payload: &str) -> Vec<u8> {
    [DOMAIN, payload.as_bytes()].concat()
}

/// Decodes a token without checking its signature (for display only).
pub fn decode_unverified(token: &str) -> Result<Claims, ApprovalError> {
    let (payload, _) = split(token)?;
    parse_claims(payload)
}

fn split(token: &str) -> Result<(&str, &str), ApprovalError> {
    let token = token.trim();
    if token.starts_with(OLD_PREFIX) {
        return Err(ApprovalError::Obsolete);
    }
    let body = token
        .strip_prefix(PREFIX)
        .ok_or_else(|| ApprovalError::Malformed(format!("it does not start with {PREFIX}")))?;
    body.rsplit_once('.')
        .ok_or_else(|| ApprovalError::Malformed("it has no signature".into()))
}

fn parse_claims(payload: &str) -> Result<Claims, ApprovalError> {
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| ApprovalError::Malformed("its payload is not base64url".into()))?;
    serde_json::from_slice(&json).map_err(|e| ApprovalError::Malformed(e.to_string()))
}

/// Checks `token` against the operation at hand, in the run `here`, under
/// the policy's `[approval]` rules; returns its claims when it approves.
/// The one verifier every face calls.
///
/// In order: the approver is listed in `rules.approvers`
/// ([`ApprovalError::UnknownApprover`]); the signature verifies with their
/// key ([`ApprovalError::Forged`]); the operation, target, environment and
/// fingerprint are the ones at hand; it has not expired, was not issued in
/// the future, and lives no longer than `max_ttl`; it is spent in this
/// run's ledger ([`ApprovalError::WrongLedger`]); no agent approved; and
/// with `four_eyes`, the approver's OS account is not the requester's
/// (a requester without an account cannot be compared, and is refused).
pub fn verify(
    rules: &ApprovalConfig,
    token: &str,
    expected: &Expected<'_>,
    here: &Here<'_>,
) -> Result<Claims, ApprovalError> {
    let (payload, signature) = split(token)?;
    // The claims are read before the signature is checked only to find
    // whose key to check it with; nothing else is believed until it holds.
    let unverified = parse_claims(payload)?;
    let approver = rules.approvers.get(&unverified.approver).ok_or_else(|| {
        ApprovalError::UnknownApprover {
            approver: unverified.approver.clone(),
        }
    })?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or(ApprovalError::Forged)?;
    approver
        .key
        .verify_strict(&signed_bytes(payload), &signature)
        .map_err(|_| ApprovalError::Forged)?;
    let claims = unverified;
    if claims.v != 2 {
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
    if here.now >= claims.exp {
        return Err(ApprovalError::Expired { exp: claims.exp });
    }
    if claims.iat.seconds_since(here.now) > MAX_SKEW_SECONDS {
        return Err(ApprovalError::NotYetValid { iat: claims.iat });
    }
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
    if claims.ledger != here.ledger {
        return Err(ApprovalError::WrongLedger {
            token: claims.ledger,
            here: here.ledger.into(),
        });
    }
    if claims.approver_kind == Some(ActorKind::Agent) {
        return Err(ApprovalError::AgentApproved {
            approver: claims.approver,
        });
    }
    if rules.four_eyes {
        // Identity is the OS account, never the label the environment gives.
        // A uid with no name in the password database (`uid:N`) cannot
        // be compared with an approver's account name either.
        match here.requester.account.as_deref() {
            None => {
                return Err(ApprovalError::UnknownRequester {
                    approver: claims.approver,
                });
            }
            Some(account) if account.starts_with("uid:") => {
                return Err(ApprovalError::UnknownRequester {
                    approver: claims.approver,
                });
            }
            Some(account) if account == approver.user => {
                return Err(ApprovalError::SelfApproved {
                    approver: claims.approver,
                    account: account.to_owned(),
                });
            }
            Some(_) => {}
        }
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
    /// The most rows any one statement may affect (SQL scripts).
    pub max_rows: Option<u64>,
    /// A fresh random id (the core has no randomness): spent by the first run.
    pub nonce: String,
    /// The approver's name (from their key file).
    pub approver: &'a str,
    /// The ledger the token is spent in ([`ledger_id`] of the run it is for).
    pub ledger: String,
}

/// Why an approval token cannot be issued. Each says what to change.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The operation's name is not a valid dotted name.
    #[error("invalid operation: {problem}")]
    InvalidOperation {
        /// As given.
        op: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The target is empty, padded with whitespace or holds control characters.
    #[error(
        "invalid target `{}`: name it exactly as the operation will",
        crate::text::escape(target)
    )]
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
    #[error(
        "{} acts as an AI agent; an approval is a person's decision",
        crate::text::escape(user)
    )]
    AgentApprover {
        /// Who tried.
        user: String,
    },
}

/// The claims of a token approving `request`, by `actor` (who holds the
/// approver's key), issued at
/// `now` under `policy`, in the environment `detection` found unless the
/// request names one; sign them with [`issue`].
///
/// The rules every issuer follows: the operation is a valid dotted name;
/// the target is one a guarded operation accepts (not empty, not padded,
/// no control characters, at most 256 bytes) and carries no database
/// password; the lifetime is at most the policy's `max_ttl` (the default);
/// the environment is canonical (`prod` → `production`, policy aliases as
/// they are, anything else refused); and an AI agent may not approve. The
/// approver's name is the key's; [`verify`] checks that the policy lists it.
pub fn claims_for(
    request: IssueRequest<'_>,
    policy: &Policy,
    detection: &Detection,
    actor: &Actor,
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
    if actor.kind == ActorKind::Agent {
        return Err(IssueError::AgentApprover {
            user: actor.user.clone(),
        });
    }
    Ok(Claims {
        v: 2,
        op: op.to_owned(),
        target: target.to_owned(),
        env,
        tier,
        fingerprint: request.fingerprint,
        max_rows: request.max_rows,
        approver: request.approver.to_owned(),
        approver_kind: Some(actor.kind),
        iat: now,
        exp: now.plus_seconds(i64::try_from(seconds).unwrap_or(i64::MAX)),
        nonce: request.nonce,
        ledger: request.ledger,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::MAX_TARGET_BYTES;

    const LEDGER: &str = "file://db-1/var/log/prodguard/audit.jsonl";

    fn key(name: &str, seed: u8) -> ApproverKey {
        ApproverKey::from_secret(name, [seed; 32]).unwrap()
    }

    fn claims(now: Timestamp) -> Claims {
        Claims {
            v: 2,
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
            ledger: LEDGER.into(),
            max_rows: None,
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

    /// `[approval]` listing ana (OS account `ana`) with key seed 1.
    fn rules(max_ttl_seconds: u64) -> ApprovalConfig {
        let mut rules = ApprovalConfig {
            max_ttl_seconds,
            four_eyes: true,
            ..Policy::builtin_default().approval
        };
        rules.approvers.insert(
            "ana".into(),
            crate::policy::Approver {
                key: key("ana", 1).public_key(),
                user: "ana".into(),
            },
        );
        rules
    }

    fn person(account: Option<&str>) -> Actor {
        Actor {
            user: "someone".into(),
            kind: ActorKind::Human,
            account: account.map(str::to_owned),
        }
    }

    fn check(
        rules: &ApprovalConfig,
        token: &str,
        expected: &Expected<'_>,
        now: Timestamp,
        account: Option<&str>,
        ledger: &str,
    ) -> Result<Claims, ApprovalError> {
        let requester = person(account);
        let here = Here {
            requester: &requester,
            ledger,
            now,
        };
        verify(rules, token, expected, &here)
    }

    #[test]
    fn every_binding_is_checked_and_named() {
        let rules = rules(900);
        let now = Timestamp(1_800_000_000_000_000);
        let token = issue(&key("ana", 1), &claims(now));
        assert!(token.starts_with("pga2."));
        let ok = check(&rules, &token, &expected(), now, Some("bob"), LEDGER).unwrap();
        assert_eq!(ok.approver, "ana");

        let e = |exp: Expected<'_>, at: Timestamp, who: &str| {
            check(&rules, &token, &exp, at, Some(who), LEDGER).unwrap_err()
        };
        let op = Expected {
            op: "db.drop",
            ..expected()
        };
        assert!(matches!(
            e(op, now, "bob"),
            ApprovalError::WrongOperation { .. }
        ));
        let target = Expected {
            target: "users",
            ..expected()
        };
        assert!(matches!(
            e(target, now, "bob"),
            ApprovalError::WrongTarget { .. }
        ));
        let env = Expected {
            env: "staging",
            tier: Tier::Staging,
            ..expected()
        };
        assert!(matches!(
            e(env, now, "bob"),
            ApprovalError::WrongEnvironment { .. }
        ));
        let fingerprint = Expected {
            fingerprint: None,
            ..expected()
        };
        assert!(matches!(
            e(fingerprint, now, "bob"),
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
    }

    #[test]
    fn only_a_listed_approvers_key_signs() {
        let rules = rules(900);
        let now = Timestamp(1_800_000_000_000_000);
        // Signed in ana's name with another key.
        let forged = issue(&key("ana", 2), &claims(now));
        assert_eq!(
            check(&rules, &forged, &expected(), now, Some("bob"), LEDGER),
            Err(ApprovalError::Forged)
        );
        // Signed by someone the policy does not list, with their own key.
        let mut eve = claims(now);
        eve.approver = "eve".into();
        let token = issue(&key("eve", 3), &eve);
        let refused = check(&rules, &token, &expected(), now, Some("bob"), LEDGER).unwrap_err();
        assert_eq!(
            refused,
            ApprovalError::UnknownApprover {
                approver: "eve".into()
            }
        );
        assert!(
            refused.to_string().contains("[approval] approvers"),
            "{refused}"
        );
        // No approvers at all (the default policy): nobody can approve.
        let none = ApprovalConfig::default();
        let token = issue(&key("ana", 1), &claims(now));
        assert!(matches!(
            check(&none, &token, &expected(), now, Some("bob"), LEDGER),
            Err(ApprovalError::UnknownApprover { .. })
        ));
    }

    #[test]
    fn four_eyes_compares_os_accounts() {
        let now = Timestamp(1_800_000_000_000_000);
        let token = issue(&key("ana", 1), &claims(now));
        let strict = rules(900);
        // The requester's label says nothing: its account is ana's.
        let refused = check(&strict, &token, &expected(), now, Some("ana"), LEDGER).unwrap_err();
        assert_eq!(
            refused,
            ApprovalError::SelfApproved {
                approver: "ana".into(),
                account: "ana".into()
            }
        );
        // An account nobody stated cannot be compared.
        assert!(matches!(
            check(&strict, &token, &expected(), now, None, LEDGER),
            Err(ApprovalError::UnknownRequester { .. })
        ));
        // Nor can a uid without a name (`uid:N`), which could be the approver's.
        assert!(matches!(
            check(&strict, &token, &expected(), now, Some("uid:1000"), LEDGER),
            Err(ApprovalError::UnknownRequester { .. })
        ));
        let mut lax = strict.clone();
        lax.four_eyes = false;
        assert!(check(&lax, &token, &expected(), now, Some("ana"), LEDGER).is_ok());
        assert!(check(&lax, &token, &expected(), now, None, LEDGER).is_ok());
    }

    #[test]
    fn a_token_is_spent_in_its_own_ledger_only() {
        let now = Timestamp(1_800_000_000_000_000);
        let token = issue(&key("ana", 1), &claims(now));
        let elsewhere = "file://db-1/tmp/fresh.jsonl";
        assert_eq!(
            check(
                &rules(900),
                &token,
                &expected(),
                now,
                Some("bob"),
                elsewhere
            ),
            Err(ApprovalError::WrongLedger {
                token: LEDGER.into(),
                here: elsewhere.into()
            })
        );
    }

    #[test]
    fn ledger_ids_follow_where_tokens_are_spent() {
        let parse = |text: &str| {
            Policy::parse_toml(
                &format!("{text}\n[[rule]]\noperations = [\"*\"]\nrequire = [\"audit\"]\n"),
                "p.toml",
            )
            .unwrap()
        };
        let local = parse("");
        assert_eq!(
            ledger_id(&local, Some("/var/log/a.jsonl"), Some("h")),
            "file://h/var/log/a.jsonl"
        );
        assert_eq!(ledger_id(&local, Some("/a.jsonl"), None), "file:///a.jsonl");
        assert_eq!(ledger_id(&local, None, Some("h")), "sink://h");
        let sink = parse("[audit]\nsink = \"postgresql://pg@db/fleet\"");
        assert_eq!(
            ledger_id(&sink, Some("/var/log/a.jsonl"), Some("h")),
            "postgresql://pg@db/fleet",
            "the trail spends"
        );
        let ledger = parse(
            "[audit]\nsink = \"postgresql://db/trail\"\n[approval]\nledger = \"postgresql://db/ledger\"",
        );
        assert_eq!(
            ledger_id(&ledger, None, Some("h")),
            "postgresql://db/ledger"
        );
    }

    #[test]
    fn a_token_living_longer_than_the_policys_max_ttl_is_refused() {
        let now = Timestamp(1_800_000_000_000_000);
        let ana = key("ana", 1);
        // Lives 600s (claims()); a policy allowing 600s or more accepts it.
        let token = issue(&ana, &claims(now));
        for max in [600, 900] {
            assert!(check(&rules(max), &token, &expected(), now, Some("bob"), LEDGER).is_ok());
        }
        let refused =
            check(&rules(599), &token, &expected(), now, Some("bob"), LEDGER).unwrap_err();
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
        let token = issue(&ana, &long);
        assert!(matches!(
            check(&rules(600), &token, &expected(), now, Some("bob"), LEDGER),
            Err(ApprovalError::TooLong { .. })
        ));
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
            approver: "ana",
            ledger: LEDGER.into(),
            max_rows: None,
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
                claims.env.as_str(),
                claims.ledger.as_str(),
                claims.approver.as_str(),
            ),
            ("db.migrate", "orders", "production", LEDGER, "ana")
        );
        assert_eq!(claims.approver_kind, Some(ActorKind::Human));
        let max = policy.approval.max_ttl_seconds;
        assert_eq!(
            claims.exp,
            now.plus_seconds(i64::try_from(max).unwrap()),
            "the default lifetime is max_ttl"
        );
        // What was issued verifies under a policy listing its approver.
        let expected = Expected {
            op: "db.migrate",
            target: "orders",
            env: "production",
            tier: Tier::Production,
            fingerprint: None,
        };
        let token = issue(&key("ana", 1), &claims);
        assert!(check(&rules(max), &token, &expected, now, Some("bob"), LEDGER).is_ok());
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
        let rules = rules(900);
        let now = Timestamp(1_800_000_000_000_000);
        let token = issue(&key("ana", 1), &claims(now));
        // Re-sign nothing, just swap the target inside the payload.
        let (payload, sig) = token
            .strip_prefix(PREFIX)
            .unwrap()
            .rsplit_once('.')
            .unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap())
            .unwrap()
            .replace("orders", "users");
        let edited = format!("{PREFIX}{}.{sig}", URL_SAFE_NO_PAD.encode(json.as_bytes()));
        let exp = Expected {
            target: "users",
            ..expected()
        };
        assert_eq!(
            check(&rules, &edited, &exp, now, Some("bob"), LEDGER),
            Err(ApprovalError::Forged)
        );
        for junk in [
            "",
            "pga2.",
            "pga2.x",
            "xyz.abc.def",
            "pga2.!!!.00",
            "pga2.e30.zz",
        ] {
            assert!(
                check(&rules, junk, &expected(), now, Some("bob"), LEDGER).is_err(),
                "{junk:?}"
            );
        }
        // 0.1's HMAC tokens are refused, saying what replaced them.
        let old = check(&rules, "pga1.e30.00", &expected(), now, Some("bob"), LEDGER).unwrap_err();
        assert_eq!(old, ApprovalError::Obsolete);
        assert!(old.to_string().contains("replaced"), "{old}");
    }

    #[test]
    fn key_files_round_trip_and_refuse_junk() {
        let ana = key("ana", 5);
        let again = ApproverKey::parse(&ana.to_text()).unwrap();
        assert_eq!(again.name(), "ana");
        assert_eq!(again.public_key(), ana.public_key());
        assert!(
            !format!("{ana:?}").contains(&STANDARD.encode([5u8; 32])),
            "no secret in Debug"
        );
        for junk in [
            "",
            "0101010101010101010101010101010101010101010101010101010101010101\n",
            "prodguard approver key v1\nsecret = AAAA\napprover = ana\n",
            "prodguard approver key v1\napprover = a b\nsecret = BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=\n",
        ] {
            assert!(ApproverKey::parse(junk).is_err(), "{junk:?}");
        }
        assert_eq!(
            parse_public_key(&ana.public_key_text()),
            Ok(ana.public_key())
        );
        for bad in ["ed25519:", "ed25519:AAAA", "rsa:AAAA", "ed25519:!!"] {
            assert!(parse_public_key(bad).is_err(), "{bad}");
        }
        for name in ["", "-x", "a b", "é"] {
            assert!(validate_approver_name(name).is_err(), "{name:?}");
        }
        let long = "a".repeat(65);
        assert!(validate_approver_name(&long).is_err());
        assert!(validate_approver_name("ana.b_c-1").is_ok());
    }
}
