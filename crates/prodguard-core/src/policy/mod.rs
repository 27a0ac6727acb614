//! The policy model: what each operation requires in each tier.
//!
//! Policies are TOML (or JSON) files parsed into one spanned tree and checked
//! by one validator, so every error names file, line and column and what was
//! expected; unknown keys suggest the nearest valid key. Rules match dotted
//! operation names by glob and tiers; every matching rule applies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Tier;

mod duration;
mod evaluate;
mod glob;
mod json;
mod render;
mod toml_src;
mod tree;
mod validate;

/// Whether `text` names a PostgreSQL server by URL (`postgresql://` or
/// `postgres://`, any case), as the fleet keys (`[audit] sink`,
/// `[approval] ledger`, `[fleet] lock`), stamp targets and audit trails do.
///
/// ```
/// use prodguard_core::policy::is_postgres_url;
/// assert!(is_postgres_url("POSTGRES://db/fleet"));
/// assert!(!is_postgres_url("/var/log/prodguard/audit.jsonl"));
/// ```
pub fn is_postgres_url(text: &str) -> bool {
    let lower = text
        .trim_start()
        .get(..13)
        .unwrap_or("")
        .to_ascii_lowercase();
    lower.starts_with("postgresql://") || lower.starts_with("postgres://")
}

#[cfg(test)]
mod tests;

pub use duration::{DURATION_FORM, format_duration, parse_duration};
pub use evaluate::Evaluation;
pub(crate) use glob::is_valid_operation_name;
pub use glob::{MAX_OPERATION_LEN, glob_matches, validate_operation_name};

/// The URL schemes fleet mode's PostgreSQL keys accept.
pub const POSTGRES_URL_SCHEMES: [&str; 2] = ["postgresql://", "postgres://"];

/// The marker file's default path.
pub const DEFAULT_MARKER_FILE: &str = "/etc/prodguard/environment";

/// How long an approval token may live when `[approval] max_ttl` is not set: 15 minutes.
pub const DEFAULT_MAX_TTL_SECONDS: u64 = 900;

/// The built-in default policy, as TOML (what `prodguard policy show --default`
/// prints, and what [`Policy::builtin_default`] parses).
///
/// It guards every operation in the protected tiers (production, and an
/// environment nobody declared) with a confirmation and the audit log.
pub const DEFAULT_POLICY_TOML: &str = r#"# prodguard built-in default policy.
#
# Used when neither PRODGUARD_POLICY nor ./prodguard.toml names a policy file.
# Copy it to prodguard.toml and edit it to make your own policy.

[environment]
# An environment that no signal declares is guarded like production (fail closed).
# Set a tier name instead (e.g. "development") to treat it as that tier.
unknown = "protected"
# The system marker /etc/prodguard/environment (owned by root) is always
# read; a file named here whose content names the environment is read too.
# marker_file = "/srv/app/ENVIRONMENT"
# Names of your own environments, mapped to tiers:
# aliases = { "prod-eu" = "production" }

[audit]
# Each audit record is on disk (fdatasync) before the operation may run.
# log = "/var/log/prodguard/audit.jsonl"
durability = "fdatasync"
# Fleet mode: every host appends to one trail in PostgreSQL (the password
# comes from PGPASSWORD or ~/.pgpass, never from here).
# sink = "postgresql://prodguard@db.internal/fleet"

[approval]
# Approval tokens (confirmation without a terminal, `prodguard approve`) are
# signed by an approver's own key; list who may approve, with their public
# key (`prodguard keygen --approver NAME --out FILE` prints it) and OS account:
# approvers = { alice = { key = "ed25519:…", user = "alice" } }
# Tokens live at most 15 minutes.
max_ttl = "15m"
# Set to true to require that the approver's OS account is not the requester's.
four_eyes = false
# Fleet mode: a token spent on one host is spent on all of them.
# ledger = "postgresql://prodguard@db.internal/fleet"
# The OS accounts that may break glass (`exec --break-glass "reason"`) where a
# rule says break_glass = true; never an AI agent. Empty or absent: nobody.
# break_glass_users = ["alice"]

# Fleet mode: one run of an operation on a target at a time, across hosts;
# another host refuses at once (naming the holder) or waits up to `wait`.
# [fleet]
# lock = "postgresql://prodguard@db.internal/fleet"
# wait = "0"

# In production, and wherever the environment is unknown, every guarded
# operation needs a confirmation (typed at a terminal, or an approval token)
# and is recorded in the audit log.
[[rule]]
name = "default: protected tiers"
operations = ["*"]
tiers = ["production", "unknown"]
require = ["confirm", "audit"]
confirm = { mode = "either" }
"#;

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
    /// What is wrong and what was expected, e.g. "unknown key `requre` in \[\[rule\]\]; did you mean `require`?".
    pub message: String,
}

/// What to do when no signal declares the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
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

/// `[targets]`: a pattern over normalised targets and the tier of what it
/// names (`"postgresql://*.prod.internal/*" = "production"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetTier {
    /// A glob over the target (`*` any run of characters, `?` one),
    /// matched as the policy's operation globs are.
    pub pattern: String,
    /// The tier of a target it matches.
    pub tier: Tier,
}

/// `[environment]`: how detection maps signals to tiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentConfig {
    /// `unknown = "protected" | <tier>`.
    pub unknown: UnknownEnvironment,
    /// `marker_file`: a marker file read in addition to the system marker
    /// (`/etc/prodguard/environment`, always read); empty: none.
    pub marker_file: String,
    /// Markers added by the layers below the system policy (see
    /// [`crate::trust::combine`]); not a policy key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub more_markers: Vec<String>,
    /// Extra names for tiers (keys case-folded), e.g. `prod-eu = "production"`.
    pub aliases: BTreeMap<String, Tier>,
    /// `hostnames = { "*-prod-*" = "production" }`: hints from the host name.
    pub hostnames: Vec<HostnameHint>,
}

/// How an audit append reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Durability {
    /// fdatasync before the operation may proceed (the default).
    Fdatasync,
    /// No sync: only for tests.
    None,
}

impl Durability {
    /// The policy's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Fdatasync => "fdatasync",
            Durability::None => "none",
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditConfig {
    /// The log's path; `None` means the runtime's default.
    pub log: Option<String>,
    /// How appends reach the disk.
    pub durability: Durability,
    /// Every N-th record is a seal (default 1000 when `seal_key_file` is set).
    pub seal_every: Option<u64>,
    /// The seal key's path (`prodguard audit seal-init` creates it); sealing is on when set.
    pub seal_key_file: Option<String>,
    /// Start a new file once the log reaches this many bytes; the new
    /// file's first record chains to the old file's last.
    pub rotate_bytes: Option<u64>,
    /// `sink = "postgresql://…"`: fleet mode's shared audit trail. Every
    /// record goes there (and also to `log` when one is set or
    /// `PRODGUARD_AUDIT_LOG` names a file).
    pub sink: Option<String>,
    /// Logs a policy layered over the system policy asked for: copies of
    /// the system's trail, never instead of it (see
    /// [`crate::trust::combine`]); not a policy key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<String>,
}

/// `[approval]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalConfig {
    /// Who may sign approval tokens: each approver's name, public key and
    /// OS account (`approvers = { alice = { key = "ed25519:…", user = "alice" } }`).
    pub approvers: BTreeMap<String, Approver>,
    /// The longest a token may live, in seconds (default 900).
    pub max_ttl_seconds: u64,
    /// Whether the approver must differ from the requester.
    pub four_eyes: bool,
    /// `ledger = "postgresql://…"`: spent approval tokens are recorded on
    /// this server, so a token spent on one host is spent on every host.
    pub ledger: Option<String>,
    /// `break_glass_users = ["alice", …]`: the OS accounts (of the real uid,
    /// never a name from the environment) that may break glass; empty:
    /// nobody may.
    pub break_glass_users: Vec<String>,
}

/// An approver listed in `[approval] approvers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approver {
    /// The public key their tokens must verify with.
    #[serde(serialize_with = "serialize_public_key")]
    pub key: ed25519_dalek::VerifyingKey,
    /// Their OS account: four eyes refuses their token in a run by the
    /// same account.
    pub user: String,
}

fn serialize_public_key<S: serde::Serializer>(
    key: &ed25519_dalek::VerifyingKey,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::approval::public_key_text(key))
}

/// `[sql]`: how prodguard runs a guarded SQL script on PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqlConfig {
    /// `statement_timeout = "15m"` (the default): no statement of a guarded
    /// script runs longer.
    pub statement_timeout_seconds: u64,
    /// `lock_timeout = "10s"` (the default): no statement waits longer for
    /// a lock, so a guarded script never queues production traffic behind
    /// it for long.
    pub lock_timeout_seconds: u64,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            statement_timeout_seconds: 15 * 60,
            lock_timeout_seconds: 10,
        }
    }
}

/// `[fleet]`: coordination between hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct FleetConfig {
    /// `lock = "postgresql://…"`: a guarded operation holds a lock on
    /// (operation, target) on this server for its whole run.
    pub lock: Option<String>,
    /// `wait = "30s"`: how long to wait for a lock another host holds
    /// before refusing; 0 (the default) refuses at once.
    pub wait_seconds: u64,
}

/// `[promotion]`: where an operation must have succeeded before a rule
/// that requires `staged` lets it run here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PromotionConfig {
    /// `from = "staging"`: the environment's or tier's name the same
    /// operation, with the same fingerprint, must have succeeded in.
    pub from: Option<String>,
    /// `within = "14d"` (the default): how old that success may be.
    pub within_seconds: u64,
    /// `staging_log = PATH`: the trail to look in (an audit log file with
    /// its rotated set, or a `postgresql://` trail) when it is not this
    /// policy's own `[audit] sink`.
    pub staging_log: Option<String>,
}

/// How old promotion evidence may be when `[promotion] within` is not set.
pub const DEFAULT_PROMOTION_WITHIN_SECONDS: u64 = 14 * 86_400;

impl Default for PromotionConfig {
    fn default() -> Self {
        PromotionConfig {
            from: None,
            within_seconds: DEFAULT_PROMOTION_WITHIN_SECONDS,
            staging_log: None,
        }
    }
}

impl PromotionConfig {
    /// The trail promotion evidence is read from: `staging_log`, else the
    /// fleet trail (`[audit] sink`).
    pub fn trail<'a>(&'a self, audit: &'a AuditConfig) -> Option<&'a str> {
        self.staging_log.as_deref().or(audit.sink.as_deref())
    }
}

/// A requirement a rule can name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Requirement {
    /// A person confirms this operation on this target here.
    Confirm,
    /// Fresh, verified backup evidence.
    Backup,
    /// Intent and outcome durably recorded; an unavailable log refuses.
    Audit,
    /// The same operation, with the same fingerprint, succeeded in
    /// `[promotion] from` within `[promotion] within`, as a verified trail
    /// shows; the intent cites that record.
    Staged,
    /// A way back before it runs: the operation's own plan (`--rollback
    /// CMD`, `.rollback(…)`), else the rule's backup, restored; the intent
    /// records it and `prodguard rollback ATTEMPT_ID` runs it.
    Rollback,
}

impl Requirement {
    /// The policy's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::Confirm => "confirm",
            Requirement::Backup => "backup",
            Requirement::Audit => "audit",
            Requirement::Staged => "staged",
            Requirement::Rollback => "rollback",
        }
    }
}

/// How a confirmation may be given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ConfirmMode {
    /// Typed at a terminal.
    Typed,
    /// A pre-issued approval token.
    Approval,
    /// Either (the default).
    #[default]
    Either,
    /// Both: an approval token, and the person typing at a terminal. What
    /// matching rules that ask for `typed` and for `approval` add up to —
    /// neither lowers the other.
    Both,
}

impl ConfirmMode {
    /// The policy's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfirmMode::Typed => "typed",
            ConfirmMode::Approval => "approval",
            ConfirmMode::Either => "either",
            ConfirmMode::Both => "both",
        }
    }
}

/// Who may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
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

impl ActorKind {
    /// The policy's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Human => "human",
            ActorKind::Ci => "ci",
            ActorKind::Agent => "agent",
            ActorKind::Service => "service",
        }
    }
}

/// `backup = { … }` in a rule: where the evidence comes from, with exactly
/// the settings that provider uses.
///
/// The policy file names the provider with `provider = "…"`; without it, a
/// rule with `command` is [`BackupSpec::Command`] and one without is
/// [`BackupSpec::Recent`]. A key the chosen provider does not use is a policy
/// error, and so is a `command` without a `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "lowercase")]
#[non_exhaustive]
pub enum BackupSpec {
    /// `command` makes a fresh backup, `verify` checks it.
    Command {
        /// A shell command; `{target}` and `{path}` are substituted.
        command: String,
        /// A command run on the copy; non-zero exit = not verified. A copy
        /// nobody checked is not evidence, so it is required.
        verify: String,
        /// Where the backup goes; `{target}`, `{ts}` substituted. Default chosen by the runtime.
        path: Option<String>,
        /// Evidence older than this does not count, in seconds.
        max_age_seconds: Option<u64>,
    },
    /// An existing file at `path` (`*` or `?` in the file name picks the
    /// newest match), no older than `max_age`.
    Recent {
        /// The file, or a glob over file names in one directory; `{target}` substituted.
        path: String,
        /// The file must be younger than this, in seconds.
        max_age_seconds: u64,
        /// An optional command run on the file; without it the evidence is
        /// not verified and the guard refuses.
        verify: Option<String>,
    },
    /// SQLite's online backup API from the target database to `path`, then
    /// `PRAGMA integrity_check` on the copy.
    Sqlite {
        /// Where the copy goes; `{target}`, `{ts}` substituted. Default chosen by the runtime.
        path: Option<String>,
    },
    /// The program embedding prodguard registers its own backup provider
    /// (a Rust closure, a C callback); without one the guard refuses.
    Program {
        /// Evidence the program returns older than this does not count, in seconds.
        max_age_seconds: Option<u64>,
    },
}

impl BackupSpec {
    /// Which provider this is (its name is [`BackupSource::as_str`]).
    pub fn source(&self) -> BackupSource {
        match self {
            BackupSpec::Command { .. } => BackupSource::Command,
            BackupSpec::Recent { .. } => BackupSource::Recent,
            BackupSpec::Sqlite { .. } => BackupSource::Sqlite,
            BackupSpec::Program { .. } => BackupSource::Program,
        }
    }

    /// The backup command, for [`BackupSpec::Command`].
    pub fn command(&self) -> Option<&str> {
        match self {
            BackupSpec::Command { command, .. } => Some(command),
            _ => None,
        }
    }

    /// The command run on the copy, when the provider has one.
    pub fn verify(&self) -> Option<&str> {
        match self {
            BackupSpec::Command { verify, .. } => Some(verify),
            BackupSpec::Recent { verify, .. } => verify.as_deref(),
            BackupSpec::Sqlite { .. } | BackupSpec::Program { .. } => None,
        }
    }

    /// Where the backup goes (or, for [`BackupSpec::Recent`], where it is).
    pub fn path(&self) -> Option<&str> {
        match self {
            BackupSpec::Command { path, .. } | BackupSpec::Sqlite { path } => path.as_deref(),
            BackupSpec::Recent { path, .. } => Some(path),
            BackupSpec::Program { .. } => None,
        }
    }

    /// The oldest evidence that still counts, in seconds, when the rule limits it.
    pub fn max_age_seconds(&self) -> Option<u64> {
        match self {
            BackupSpec::Command {
                max_age_seconds, ..
            }
            | BackupSpec::Program { max_age_seconds } => *max_age_seconds,
            BackupSpec::Recent {
                max_age_seconds, ..
            } => Some(*max_age_seconds),
            BackupSpec::Sqlite { .. } => None,
        }
    }

    /// The policy keys this provider takes inside `backup = { … }`.
    pub fn keys(source: BackupSource) -> &'static [&'static str] {
        match source {
            BackupSource::Command => &["provider", "command", "verify", "path", "max_age"],
            BackupSource::Recent => &["provider", "path", "max_age", "verify"],
            BackupSource::Sqlite => &["provider", "path"],
            BackupSource::Program => &["provider", "max_age"],
        }
    }
}

/// Where a rule's backup evidence comes from (`backup.provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BackupSource {
    /// `command` makes a fresh backup (the default when `command` is set).
    Command,
    /// An existing file at `path`, no older than `max_age` (the default otherwise).
    Recent,
    /// The program embedding prodguard registers its own backup provider
    /// (a Rust closure, a C callback); without one the guard refuses.
    Program,
    /// SQLite's online backup API from the target database to `path`, then
    /// `PRAGMA integrity_check` on the copy.
    Sqlite,
}

impl BackupSource {
    /// The policy's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupSource::Command => "command",
            BackupSource::Recent => "recent",
            BackupSource::Program => "program",
            BackupSource::Sqlite => "sqlite",
        }
    }
}

/// One `[[rule]]`.
///
/// Read-only outside the core: a rule comes from a parsed policy and is read
/// through its accessors ([`Rule::name`], [`Rule::require`], …), so no layer
/// can loosen a rule it was given.
///
/// ```compile_fail,E0616
/// let mut policy = prodguard_core::Policy::builtin_default();
/// let rule = &mut policy.rules[0];
/// rule.require.clear();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// A name for messages: `name = "…"`, else `rule #N (line L)`.
    pub(crate) name: String,
    /// Globs over dotted operation names.
    pub(crate) operations: Vec<String>,
    /// Tiers it applies to; empty = every tier.
    pub(crate) tiers: Vec<Tier>,
    /// What it requires.
    pub(crate) require: Vec<Requirement>,
    /// `confirm = { mode = … }`.
    pub(crate) confirm_mode: ConfirmMode,
    /// `backup = { … }`.
    pub(crate) backup: Option<BackupSpec>,
    /// `deny = "why"`: the operation never runs here.
    pub(crate) deny: Option<String>,
    /// `actors = ["human"]`: who may act; empty = anyone.
    pub(crate) actors: Vec<ActorKind>,
    /// `break_glass = true`: in an emergency, a named person may skip this
    /// rule's confirmation and backup with a mandatory reason, scoped to one
    /// operation on one target, recorded as its own decision. Never audit.
    pub(crate) break_glass: bool,
    /// `max_rows = N`: a SQL statement of a matching kind that affects more
    /// rows is refused (120) and its transaction rolled back.
    pub(crate) max_rows: Option<u64>,
    /// `confirm_above_rows = N`: this rule's confirmation is needed only
    /// when a SQL statement of a matching kind affects more than N rows.
    pub(crate) confirm_above_rows: Option<u64>,
    /// `agent = "deny"`: an AI agent's command of a matching kind is
    /// denied by the hook instead of asking a person in the agent's UI.
    pub(crate) agent_deny: bool,
    /// `outside_transaction = true`: a SQL statement of a matching kind
    /// that cannot run inside a transaction (`CREATE INDEX CONCURRENTLY`,
    /// `VACUUM`, …) may run, alone in its script, where every matching rule
    /// with requirements says so.
    pub(crate) outside_transaction: bool,
}

impl Rule {
    /// A name for messages: `name = "…"`, else `rule #N (line L)`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Globs over dotted operation names.
    pub fn operations(&self) -> &[String] {
        &self.operations
    }

    /// The tiers it applies to; empty = every tier.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// What it requires, in canonical order (confirm, backup, audit).
    pub fn require(&self) -> &[Requirement] {
        &self.require
    }

    /// How a confirmation may be given (`confirm = { mode = … }`).
    pub fn confirm_mode(&self) -> ConfirmMode {
        self.confirm_mode
    }

    /// Where its backup evidence comes from (`backup = { … }`).
    pub fn backup(&self) -> Option<&BackupSpec> {
        self.backup.as_ref()
    }

    /// `deny = "why"`: why the operation never runs here.
    pub fn deny(&self) -> Option<&str> {
        self.deny.as_deref()
    }

    /// Who may act (`actors = […]`); empty = anyone.
    pub fn actors(&self) -> &[ActorKind] {
        &self.actors
    }

    /// Whether a named person may break glass on this rule (`break_glass = true`).
    pub fn break_glass(&self) -> bool {
        self.break_glass
    }

    /// `max_rows = N`: the most rows one SQL statement of a matching kind
    /// may affect.
    pub fn max_rows(&self) -> Option<u64> {
        self.max_rows
    }

    /// `confirm_above_rows = N`: this rule's confirmation is needed only
    /// above N rows affected by one SQL statement of a matching kind.
    pub fn confirm_above_rows(&self) -> Option<u64> {
        self.confirm_above_rows
    }

    /// `outside_transaction = true`: a statement that cannot run inside a
    /// transaction may run alone in its script.
    pub fn outside_transaction(&self) -> bool {
        self.outside_transaction
    }

    /// `agent = "deny"`: the hook denies an AI agent's command of a
    /// matching kind rather than asking a person.
    pub fn agent_deny(&self) -> bool {
        self.agent_deny
    }
}

impl EnvironmentConfig {
    /// Every marker file detection reads, in order: the system marker
    /// (always), then `marker_file` and the markers layering added, each
    /// once.
    ///
    /// ```
    /// use prodguard_core::Policy;
    /// let config = Policy::builtin_default_ref().environment();
    /// assert_eq!(config.marker_paths(), ["/etc/prodguard/environment"]);
    /// ```
    pub fn marker_paths(&self) -> Vec<String> {
        let mut paths = vec![crate::trust::system_path(crate::trust::SYSTEM_MARKER_NAME)];
        for marker in std::iter::once(&self.marker_file).chain(&self.more_markers) {
            let marker = marker.trim();
            if !marker.is_empty() && !paths.iter().any(|p| p == marker) {
                paths.push(marker.to_owned());
            }
        }
        paths
    }
}

impl Default for EnvironmentConfig {
    /// Unknown is protected; the marker file is `/etc/prodguard/environment`.
    fn default() -> Self {
        EnvironmentConfig {
            unknown: UnknownEnvironment::Protected,
            marker_file: String::new(),
            more_markers: Vec::new(),
            aliases: BTreeMap::new(),
            hostnames: Vec::new(),
        }
    }
}

impl AuditConfig {
    /// How often the log's writers seal: `seal_every` (default 1000) when
    /// `seal_key_file` turns sealing on, `None` when nothing seals. The one
    /// answer for the writer and for `audit verify`.
    ///
    /// ```
    /// let mut audit = prodguard_core::policy::AuditConfig::default();
    /// assert_eq!(audit.sealed_every(), None);
    /// audit.seal_key_file = Some("/etc/prodguard/seal.key".into());
    /// assert_eq!(audit.sealed_every(), Some(1000));
    /// audit.seal_every = Some(50);
    /// assert_eq!(audit.sealed_every(), Some(50));
    /// ```
    pub fn sealed_every(&self) -> Option<u64> {
        self.seal_key_file
            .as_ref()
            .map(|_| self.seal_every.unwrap_or(1000))
    }
}

impl Default for AuditConfig {
    /// No log named (the runtime's default), fdatasync, no seals, no rotation.
    fn default() -> Self {
        AuditConfig {
            log: None,
            durability: Durability::Fdatasync,
            seal_every: None,
            seal_key_file: None,
            rotate_bytes: None,
            sink: None,
            copies: Vec::new(),
        }
    }
}

impl Default for ApprovalConfig {
    /// No approvers, tokens live at most 15 minutes, no four eyes, nobody
    /// may break glass.
    fn default() -> Self {
        ApprovalConfig {
            approvers: BTreeMap::new(),
            max_ttl_seconds: DEFAULT_MAX_TTL_SECONDS,
            four_eyes: false,
            ledger: None,
            break_glass_users: Vec::new(),
        }
    }
}

/// A whole policy.
///
/// Made only by parsing ([`Policy::parse`], [`Policy::parse_toml`],
/// [`Policy::parse_json`]) or [`Policy::builtin_default`], so every policy
/// passed validation; read through accessors ([`Policy::rules`],
/// [`Policy::approval`], …). Nothing outside the core can change a parsed
/// policy's rules or settings.
///
/// ```
/// use prodguard_core::{Policy, policy::Requirement};
/// let policy = Policy::builtin_default();
/// assert_eq!(policy.source(), "<default>");
/// let rule = &policy.rules()[0];
/// assert_eq!(rule.require(), [Requirement::Confirm, Requirement::Audit]);
/// assert_eq!(policy.approval().max_ttl_seconds, 900);
/// ```
///
/// A parsed policy cannot be loosened from outside:
///
/// ```compile_fail,E0616
/// let mut policy = prodguard_core::Policy::builtin_default();
/// policy.rules.clear();
/// ```
///
/// ```compile_fail,E0594
/// let policy = prodguard_core::Policy::builtin_default();
/// policy.approval().four_eyes = false;
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// Where it came from: a path, or `<default>`.
    pub(crate) source: String,
    /// Every source it was read from, with the SHA-256 of its text: the
    /// system policy first when it is layered (see [`crate::trust`]).
    #[serde(skip)]
    pub(crate) provenance: Vec<crate::trust::PolicySource>,
    /// The dotted keys the file set (`approval.max_ttl`, …), so layering
    /// can tell "left at its default" from "set to the default".
    #[serde(skip)]
    pub(crate) keys_set: std::collections::BTreeSet<String>,
    /// Whether the system policy is part of it.
    #[serde(skip)]
    pub(crate) anchored: bool,
    /// `[environment]`.
    pub(crate) environment: EnvironmentConfig,
    /// `[audit]`.
    pub(crate) audit: AuditConfig,
    /// `[approval]`.
    pub(crate) approval: ApprovalConfig,
    /// `[fleet]`.
    pub(crate) fleet: FleetConfig,
    /// `[promotion]`.
    pub(crate) promotion: PromotionConfig,
    /// `[sql]`.
    pub(crate) sql: SqlConfig,
    /// `[targets]`, in file order (the system policy's first).
    pub(crate) targets: Vec<TargetTier>,
    /// `[[rule]]`, in file order.
    pub(crate) rules: Vec<Rule>,
}

/// Two policies are equal when they say the same thing under the same
/// name, whichever bytes they were read from.
impl PartialEq for Policy {
    fn eq(&self, other: &Policy) -> bool {
        self.source == other.source
            && self.anchored == other.anchored
            && self.environment == other.environment
            && self.audit == other.audit
            && self.approval == other.approval
            && self.fleet == other.fleet
            && self.promotion == other.promotion
            && self.sql == other.sql
            && self.targets == other.targets
            && self.rules == other.rules
    }
}

impl Eq for Policy {}

impl Policy {
    /// Where it came from: a path as given, or `<default>`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `[environment]`: how detection maps signals to tiers.
    pub fn environment(&self) -> &EnvironmentConfig {
        &self.environment
    }

    /// `[audit]`.
    pub fn audit(&self) -> &AuditConfig {
        &self.audit
    }

    /// `[approval]`.
    pub fn approval(&self) -> &ApprovalConfig {
        &self.approval
    }

    /// `[fleet]`.
    pub fn fleet(&self) -> &FleetConfig {
        &self.fleet
    }

    /// `[promotion]`.
    pub fn promotion(&self) -> &PromotionConfig {
        &self.promotion
    }

    /// `[targets]`, in file order.
    pub fn targets(&self) -> &[TargetTier] {
        &self.targets
    }

    /// The most sensitive `[targets]` entry matching `target` (a
    /// normalised target: a URL without its password, `sqlite:/path`,
    /// `kube:context`…), if any.
    ///
    /// ```
    /// use prodguard_core::{Policy, Tier};
    ///
    /// let policy = Policy::parse_toml(
    ///     "[targets]\n\"postgresql://*.prod.internal/*\" = \"production\"\n\"kube:*\" = \"staging\"\n\
    ///      [[rule]]\noperations = [\"*\"]\nrequire = [\"audit\"]\n",
    ///     "p.toml",
    /// )?;
    /// let hit = policy.target_tier("postgresql://app@db1.prod.internal/shop").unwrap();
    /// assert_eq!(hit.tier, Tier::Production);
    /// assert!(policy.target_tier("postgresql://localhost/shop").is_none());
    /// # Ok::<(), prodguard_core::PolicyError>(())
    /// ```
    pub fn target_tier(&self, target: &str) -> Option<&TargetTier> {
        self.targets
            .iter()
            .filter(|t| glob_matches(&t.pattern, target))
            .max_by_key(|t| t.tier.sensitivity())
    }

    /// `[sql]`.
    pub fn sql(&self) -> &SqlConfig {
        &self.sql
    }

    /// `[[rule]]`, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every source this policy was read from, each with the SHA-256 of its
    /// text (the system policy first when one is in force). Intent and
    /// refusal records name them.
    pub fn provenance(&self) -> &[crate::trust::PolicySource] {
        &self.provenance
    }

    /// Whether the system policy (`/etc/prodguard/policy.toml`, owned by
    /// root) is in force: then nothing below it can loosen these rules.
    /// Without it, whoever sets `PRODGUARD_POLICY` decides them.
    pub fn is_anchored(&self) -> bool {
        self.anchored
    }

    /// Parses a policy file's text, choosing the format by its name: JSON
    /// when `file` ends in `.json`, or when the text starts with `{` and is
    /// not valid TOML; TOML otherwise.
    ///
    /// `file` is used for messages and as [`Policy::source`].
    pub fn parse(text: &str, file: &str) -> Result<Policy, PolicyError> {
        if file.to_ascii_lowercase().ends_with(".json") {
            return Policy::parse_json(text, file);
        }
        let starts_like_json = text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('{');
        match Policy::parse_toml(text, file) {
            Err(_) if starts_like_json => Policy::parse_json(text, file),
            result => result,
        }
    }

    /// Parses and validates a TOML policy.
    ///
    /// Errors give the file, the 1-based line and column (in characters) of
    /// the offending key or value, what is wrong and what was expected.
    ///
    /// ```
    /// use prodguard_core::Policy;
    /// let err = Policy::parse_toml("[[rule]]\noperations = [\"db.*\"]\nrequre = [\"audit\"]\n", "p.toml")
    ///     .unwrap_err();
    /// assert_eq!((err.line, err.column), (3, 1));
    /// assert!(err.message.contains("did you mean `require`?"));
    /// ```
    pub fn parse_toml(text: &str, file: &str) -> Result<Policy, PolicyError> {
        let locator = tree::Locator::new(text, file);
        let root = toml_src::parse(text, &locator)?;
        let policy = validate::policy_from_tree(&root, &locator, tree::Format::Toml, file)?;
        Ok(policy.read_from(file, text))
    }

    /// Parses and validates a JSON policy: the same keys as TOML, with
    /// `"rule"` an array of objects.
    ///
    /// Errors give positions just as [`Policy::parse_toml`] does.
    pub fn parse_json(text: &str, file: &str) -> Result<Policy, PolicyError> {
        let locator = tree::Locator::new(text, file);
        let root = json::parse(text, &locator)?;
        let policy = validate::policy_from_tree(&root, &locator, tree::Format::Json, file)?;
        Ok(policy.read_from(file, text))
    }

    /// Records that this policy was read from `text` at `file`.
    fn read_from(mut self, file: &str, text: &str) -> Policy {
        self.provenance = vec![crate::trust::PolicySource::of(file, text)];
        self
    }

    /// The fleet-mode keys this policy sets (`[audit] sink`, `[approval]
    /// ledger`, `[fleet] lock`), as their names: a driver that cannot honour
    /// them must refuse rather than run without them.
    ///
    /// ```
    /// use prodguard_core::Policy;
    /// assert!(Policy::builtin_default().fleet_keys().is_empty());
    /// ```
    pub fn fleet_keys(&self) -> Vec<&'static str> {
        [
            (self.audit.sink.is_some(), "[audit] sink"),
            (self.approval.ledger.is_some(), "[approval] ledger"),
            (self.fleet.lock.is_some(), "[fleet] lock"),
        ]
        .into_iter()
        .filter_map(|(set, key)| set.then_some(key))
        .collect()
    }

    /// The built-in default policy (what `policy show --default` prints):
    /// [`DEFAULT_POLICY_TOML`] parsed, with source `<default>`.
    pub fn builtin_default() -> Policy {
        Policy::builtin_default_ref().clone()
    }

    /// The built-in default policy, parsed once per process.
    pub fn builtin_default_ref() -> &'static Policy {
        static DEFAULT: std::sync::LazyLock<Policy> = std::sync::LazyLock::new(|| {
            // The text is a constant that a test proves parses to exactly
            // `hand_built_default()`; the fallback only avoids a panic path.
            Policy::parse_toml(DEFAULT_POLICY_TOML, "<default>")
                .unwrap_or_else(|_| Policy::hand_built_default())
        });
        &DEFAULT
    }

    /// The default policy built without parsing (the fallback of
    /// [`Policy::builtin_default`]; tests prove both are equal).
    fn hand_built_default() -> Policy {
        Policy {
            source: "<default>".into(),
            provenance: vec![crate::trust::PolicySource::of(
                "<default>",
                DEFAULT_POLICY_TOML,
            )],
            keys_set: Default::default(),
            anchored: false,
            environment: EnvironmentConfig::default(),
            audit: AuditConfig::default(),
            approval: ApprovalConfig::default(),
            fleet: FleetConfig::default(),
            promotion: PromotionConfig::default(),
            sql: SqlConfig::default(),
            rules: vec![Rule {
                name: "default: protected tiers".into(),
                operations: vec!["*".into()],
                tiers: vec![Tier::Production, Tier::Unknown],
                require: vec![Requirement::Confirm, Requirement::Audit],
                confirm_mode: ConfirmMode::Either,
                backup: None,
                deny: None,
                actors: Vec::new(),
                break_glass: false,
                max_rows: None,
                confirm_above_rows: None,
                outside_transaction: false,
                agent_deny: false,
            }],
            targets: Vec::new(),
        }
    }
}
