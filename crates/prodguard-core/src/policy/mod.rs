//! The policy model: what each operation requires in each tier.
//!
//! OWNED BY HELPER (policy): parsing (TOML, JSON), validation with line and
//! column, glob matching, durations, the built-in default.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::Tier;

/// A policy error: where it is and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct PolicyError {
    /// The file's name as given (e.g. `prodguard.toml`, `<default>`).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
    /// What is wrong and what was expected, e.g. "unknown key `requre` in [[rule]]; did you mean `require`?".
    pub message: String,
}

/// What to do when no signal declares the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownEnvironment {
    /// Guard it like production (the default: fail closed).
    Protected,
    /// Treat it as this tier.
    #[serde(untagged)]
    Tier(Tier),
}

/// A hostname pattern that hints at a tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostnameHint {
    /// A glob over the host name (`*` any run of characters, `?` one).
    pub pattern: String,
    /// The tier it hints at.
    pub tier: Tier,
}

/// `[environment]`: how detection maps signals to tiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentConfig {
    /// `unknown = "protected" | <tier>`.
    pub unknown: UnknownEnvironment,
    /// The marker file's path; default `/etc/prodguard/environment`.
    pub marker_file: String,
    /// Extra names for tiers (keys case-folded), e.g. `prod-eu = "production"`.
    pub aliases: BTreeMap<String, Tier>,
    /// `hostnames = { "*-prod-*" = "production" }`: hints from the host name.
    pub hostnames: Vec<HostnameHint>,
}

/// How an audit append reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fdatasync before the operation may proceed (the default).
    Fdatasync,
    /// No sync: only for tests.
    None,
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditConfig {
    /// The log's path; `None` means the runtime's default.
    pub log: Option<String>,
    /// How appends reach the disk.
    pub durability: Durability,
    /// A seal every N records (used by later versions).
    pub seal_every: Option<u64>,
    /// The seal key's path (used by later versions).
    pub seal_key_file: Option<String>,
}

/// `[approval]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalConfig {
    /// The HMAC key's path.
    pub key_file: Option<String>,
    /// The longest a token may live, in seconds (default 900).
    pub max_ttl_seconds: u64,
    /// Whether the approver must differ from the requester.
    pub four_eyes: bool,
}

/// A requirement a rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    /// A person confirms this operation on this target here.
    Confirm,
    /// Fresh, verified backup evidence.
    Backup,
    /// Intent and outcome durably recorded; an unavailable log refuses.
    Audit,
}

impl Requirement {
    /// The policy's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::Confirm => "confirm",
            Requirement::Backup => "backup",
            Requirement::Audit => "audit",
        }
    }
}

/// How a confirmation may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfirmMode {
    /// Typed at a terminal.
    Typed,
    /// A pre-issued approval token.
    Approval,
    /// Either (the default).
    Either,
}

/// Who may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// A person at a terminal.
    Human,
    /// A CI job.
    Ci,
    /// An AI agent.
    Agent,
    /// A service with nobody at a terminal.
    Service,
}

/// `backup = { … }` in a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupSpec {
    /// A shell command; `{target}` and `{path}` are substituted.
    pub command: Option<String>,
    /// A command run on the copy; non-zero exit = not verified.
    pub verify: Option<String>,
    /// Where the backup goes; `{target}`, `{ts}` substituted. Default chosen by the runtime.
    pub path: Option<String>,
    /// Existing evidence older than this does not count, in seconds.
    pub max_age_seconds: Option<u64>,
}

/// One `[[rule]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// A name for messages: `name = "…"`, else `rule #N (line L)`.
    pub name: String,
    /// Globs over dotted operation names.
    pub operations: Vec<String>,
    /// Tiers it applies to; empty = every tier.
    pub tiers: Vec<Tier>,
    /// What it requires.
    pub require: Vec<Requirement>,
    /// `confirm = { mode = … }`.
    pub confirm_mode: ConfirmMode,
    /// `backup = { … }`.
    pub backup: Option<BackupSpec>,
    /// `deny = "why"`: the operation never runs here.
    pub deny: Option<String>,
    /// `actors = ["human"]`: who may act; empty = anyone.
    pub actors: Vec<ActorKind>,
}

/// A whole policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Where it came from: a path, or `<default>`.
    pub source: String,
    /// `[environment]`.
    pub environment: EnvironmentConfig,
    /// `[audit]`.
    pub audit: AuditConfig,
    /// `[approval]`.
    pub approval: ApprovalConfig,
    /// `[[rule]]`, in file order.
    pub rules: Vec<Rule>,
}

impl Policy {
    /// The built-in default policy (what `policy show --default` prints).
    pub fn builtin_default() -> Policy {
        Policy {
            source: "<default>".into(),
            environment: EnvironmentConfig {
                unknown: UnknownEnvironment::Protected,
                marker_file: "/etc/prodguard/environment".into(),
                aliases: BTreeMap::new(),
                hostnames: Vec::new(),
            },
            audit: AuditConfig {
                log: None,
                durability: Durability::Fdatasync,
                seal_every: None,
                seal_key_file: None,
            },
            approval: ApprovalConfig {
                key_file: None,
                max_ttl_seconds: 900,
                four_eyes: false,
            },
            rules: vec![Rule {
                name: "default: protected tiers".into(),
                operations: vec!["*".into()],
                tiers: vec![Tier::Production, Tier::Unknown],
                require: vec![Requirement::Confirm, Requirement::Audit],
                confirm_mode: ConfirmMode::Either,
                backup: None,
                deny: None,
                actors: Vec::new(),
            }],
        }
    }
}

/// Whether a dotted operation name matches a glob (`*` any run of characters, dots included; `?` one character).
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    pattern == name || pattern == "*"
}
