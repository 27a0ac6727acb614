//! The trust model: which policy source may say what.
//!
//! The **system layer** — the policy and the marker in [`SYSTEM_DIR`]
//! (`/etc/prodguard` unless a packager set `PRODGUARD_SYSTEM_DIR` when
//! compiling), owned by root and writable by nobody else — is the anchor.
//! Every other source (`PRODGUARD_POLICY`, `./prodguard.toml`, `--policy`,
//! a policy built in code, a C or Wasm host's policy text) is written by
//! whoever runs the program, so layered over the system policy it can only
//! **tighten** it: add rules (every matching rule applies, so a rule can
//! only add requirements or a deny), alias a name toward a more sensitive
//! tier, add a marker or a copy of the audit trail, shorten `max_ttl`, turn
//! on `four_eyes`. Anything else it sets — how an undeclared environment is
//! treated, the system's audit trail, seals, rotation, approvers, the
//! ledger, who may break glass, fleet locks — is refused with what to do,
//! never silently ignored.
//!
//! ```
//! use prodguard_core::{Policy, trust};
//!
//! let system = Policy::parse_toml(
//!     "[audit]\nlog = \"/var/log/prodguard/audit.jsonl\"\n\n\
//!      [[rule]]\noperations = [\"*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\n",
//!     "/etc/prodguard/policy.toml",
//! )?;
//! // A rule that matches nothing adds nothing, and takes nothing away.
//! let mine = Policy::parse_toml(
//!     "[[rule]]\noperations = [\"nothing.at.all\"]\ntiers = [\"local\"]\nrequire = [\"audit\"]\n",
//!     "mine.toml",
//! )?;
//! let policy = trust::combine(Some(system), Some(mine))?;
//! assert!(policy.is_anchored());
//! assert_eq!(policy.rules().len(), 2);
//!
//! // Moving the audit log is not tightening: it becomes a copy.
//! let elsewhere = Policy::parse_toml(
//!     "[audit]\nlog = \"/tmp/mine.jsonl\"\n\n[[rule]]\noperations = [\"*\"]\ntiers = [\"local\"]\nrequire = [\"audit\"]\n",
//!     "mine.toml",
//! )?;
//! let system = Policy::parse_toml(
//!     "[audit]\nlog = \"/var/log/prodguard/audit.jsonl\"\n\n[[rule]]\noperations = [\"*\"]\ntiers = [\"production\"]\nrequire = [\"audit\"]\n",
//!     "/etc/prodguard/policy.toml",
//! )?;
//! let policy = trust::combine(Some(system), Some(elsewhere))?;
//! assert_eq!(policy.audit().log.as_deref(), Some("/var/log/prodguard/audit.jsonl"));
//! assert_eq!(policy.audit().copies, ["/tmp/mine.jsonl"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Tier;
use crate::detect::resolve_name;
use crate::policy::{Durability, Policy, UnknownEnvironment};

/// The system layer's directory, fixed when prodguard is compiled
/// (`PRODGUARD_SYSTEM_DIR` at build time; `/etc/prodguard` otherwise). No
/// variable, argument or file of the running program moves it.
pub const SYSTEM_DIR: &str = match option_env!("PRODGUARD_SYSTEM_DIR") {
    Some(dir) => dir,
    None => "/etc/prodguard",
};

// A relative directory would follow the working directory of whoever runs
// the program.
const _: () = assert!(
    !SYSTEM_DIR.is_empty() && SYSTEM_DIR.as_bytes()[0] == b'/',
    "PRODGUARD_SYSTEM_DIR must be an absolute path"
);

/// The system policy's file name in [`SYSTEM_DIR`].
pub const SYSTEM_POLICY_NAME: &str = "policy.toml";

/// The system marker's file name in [`SYSTEM_DIR`]: always read.
pub const SYSTEM_MARKER_NAME: &str = "environment";

/// The system audit log when the system policy names no `[audit] log` (nor
/// a `sink`): never a path the acting user's environment chooses.
pub const SYSTEM_AUDIT_LOG: &str = "/var/log/prodguard/audit.jsonl";

/// The path of `name` in the system layer's directory.
pub fn system_path(name: &str) -> String {
    format!("{}/{name}", SYSTEM_DIR.trim_end_matches('/'))
}

/// What a protected tier's messages say when no system policy is in force.
pub const UNPROTECTED: &str = "the policy is unprotected: anyone who can set PRODGUARD_POLICY \
     decides these rules; install /etc/prodguard/policy.toml (owned by root)";

/// [`UNPROTECTED`], when it applies: a protected tier, no system policy.
pub fn unprotected_notice(policy: &Policy, protected: bool) -> Option<&'static str> {
    (protected && !policy.is_anchored()).then_some(UNPROTECTED)
}

/// One source of the policy in force, as intent and refusal records name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicySource {
    /// Its path as read (`<default>` for the built-in policy).
    pub path: String,
    /// The SHA-256 of its text, lowercase hex.
    pub sha256: String,
    /// Whether it is the system policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
}

impl PolicySource {
    /// The source `path` whose text is `text`.
    pub fn of(path: &str, text: &str) -> PolicySource {
        PolicySource {
            path: path.to_owned(),
            sha256: crate::audit::hex(&Sha256::digest(text.as_bytes())),
            system: false,
        }
    }
}

/// Why the policies in hand cannot be put together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// A policy layered over the system policy tried to loosen it.
    #[error(
        "{local}: {what}; only the system policy ({system}) may set it. Remove it from {local}, or ask an administrator to change the system policy"
    )]
    Loosens {
        /// The policy that tried.
        local: String,
        /// The system policy.
        system: String,
        /// What it tried, naming the key.
        what: String,
    },
    /// The system policy names a relative path, which would follow the
    /// working directory of whoever runs the program.
    #[error(
        "{system}: `{key} = \"{path}\"` is a relative path, so whoever runs the program would choose it by their working directory; the system policy must name absolute paths"
    )]
    RelativePath {
        /// The system policy.
        system: String,
        /// The key, e.g. `[audit] log`.
        key: &'static str,
        /// The path as written.
        path: String,
    },
}

/// The policy in force, from the system policy (when there is one; the
/// face read it from [`SYSTEM_DIR`] and found it secure, or a host vouches
/// for its text) and the policy the program or its environment names
/// (`local`): `local` layered over the system policy ([`LayerError`] when
/// it would loosen it), the system policy alone, `local` alone — then
/// unprotected, whatever it claims — or the built-in default.
pub fn combine(system: Option<Policy>, local: Option<Policy>) -> Result<Policy, LayerError> {
    match (system, local) {
        (Some(system), Some(local)) => layer(anchor(system)?, local),
        (Some(system), None) => anchor(system),
        (None, Some(local)) => Ok(unanchor(local)),
        (None, None) => Ok(Policy::builtin_default()),
    }
}

/// Marks `policy` as the system policy: the anchor every other source is
/// layered over. Its paths must be absolute.
fn anchor(mut policy: Policy) -> Result<Policy, LayerError> {
    let paths = [
        ("[audit] log", policy.audit.log.as_deref()),
        (
            "[audit] seal_key_file",
            policy.audit.seal_key_file.as_deref(),
        ),
        (
            "[environment] marker_file",
            Some(policy.environment.marker_file.as_str()).filter(|m| !m.is_empty()),
        ),
        (
            "[promotion] staging_log",
            policy
                .promotion
                .staging_log
                .as_deref()
                .filter(|log| !crate::policy::is_postgres_url(log)),
        ),
    ];
    if let Some((key, Some(path))) = paths
        .into_iter()
        .find(|(_, path)| path.is_some_and(|p| !p.starts_with('/')))
    {
        return Err(LayerError::RelativePath {
            system: policy.source.clone(),
            key,
            path: path.to_owned(),
        });
    }
    for source in &mut policy.provenance {
        source.system = true;
    }
    policy.anchored = true;
    Ok(policy)
}

/// `policy` with no claim to a system policy: without one in force, a
/// policy that was layered elsewhere is just a policy.
fn unanchor(mut policy: Policy) -> Policy {
    for source in &mut policy.provenance {
        source.system = false;
    }
    policy.anchored = false;
    policy
}

/// `local` layered over the anchored `system`: the system policy with
/// everything `local` adds, or a [`LayerError`] naming the first thing
/// `local` would loosen. See the module docs for what may be added.
///
/// A `local` that is already this system policy layered with something is
/// returned as it is (layering twice changes nothing).
fn layer(system: Policy, local: Policy) -> Result<Policy, LayerError> {
    if local.anchored && local.provenance.first() == system.provenance.first() {
        return Ok(local);
    }
    let refuse = |what: String| LayerError::Loosens {
        local: local.source.clone(),
        system: system.source.clone(),
        what,
    };
    let set = |key: &str| local.keys_set.contains(key);
    let mut merged = system.clone();

    // [environment]
    let (sys_env, env) = (&system.environment, &local.environment);
    let unknown_tier = |u: UnknownEnvironment| match u {
        UnknownEnvironment::Tier(tier) => tier,
        _ => Tier::Unknown,
    };
    let floor = unknown_tier(sys_env.unknown);
    if set("environment.unknown") && env.unknown != sys_env.unknown {
        let tier = unknown_tier(env.unknown);
        if tier.sensitivity() < floor.sensitivity() {
            return Err(refuse(format!(
                "`[environment] unknown = \"{tier}\"` would treat an undeclared environment as less sensitive than the system policy does"
            )));
        }
        merged.environment.unknown = env.unknown;
    }
    for (name, &tier) in &env.aliases {
        // A name the system does not map is declared but unknown (a marker
        // saying `prod-eu-3`), whatever `unknown` says of undeclared ones.
        let now = resolve_name(name, sys_env).unwrap_or(Tier::Unknown);
        if tier.sensitivity() < now.sensitivity() {
            return Err(refuse(format!(
                "`[environment] aliases` maps `{name}` to {tier}, which the system policy treats as {now}"
            )));
        }
        merged.environment.aliases.insert(name.clone(), tier);
    }
    for hint in &env.hostnames {
        if hint.tier.sensitivity() < floor.sensitivity() {
            return Err(refuse(format!(
                "`[environment] hostnames` hints `{}` at {}, less sensitive than an undeclared environment ({floor})",
                hint.pattern, hint.tier
            )));
        }
        merged.environment.hostnames.push(hint.clone());
    }
    let markers = std::iter::once(&env.marker_file).chain(&env.more_markers);
    for marker in markers.filter(|m| !m.trim().is_empty()) {
        if !merged.environment.marker_paths().contains(marker) {
            merged.environment.more_markers.push(marker.clone());
        }
    }

    // [audit]
    let (sys_audit, audit) = (&system.audit, &local.audit);
    let logs = audit.log.iter().chain(&audit.copies);
    for log in logs {
        if sys_audit.log.as_ref() != Some(log) && !merged.audit.copies.contains(log) {
            merged.audit.copies.push(log.clone());
        }
    }
    match (sys_audit.durability, audit.durability) {
        (Durability::None, Durability::Fdatasync) if set("audit.durability") => {
            merged.audit.durability = Durability::Fdatasync;
        }
        (sys, Durability::None) if sys != Durability::None => {
            return Err(refuse(
                "`[audit] durability = \"none\"` would stop syncing the system's audit trail"
                    .into(),
            ));
        }
        _ => {}
    }
    let system_only = [
        ("audit.seal_every", audit.seal_every != sys_audit.seal_every),
        (
            "audit.seal_key_file",
            audit.seal_key_file != sys_audit.seal_key_file,
        ),
        (
            "audit.rotate_bytes",
            audit.rotate_bytes != sys_audit.rotate_bytes,
        ),
        ("audit.sink", audit.sink != sys_audit.sink),
        (
            "approval.approvers",
            local.approval.approvers != system.approval.approvers,
        ),
        (
            "approval.ledger",
            local.approval.ledger != system.approval.ledger,
        ),
        (
            "approval.break_glass_users",
            local.approval.break_glass_users != system.approval.break_glass_users,
        ),
        ("fleet.lock", local.fleet.lock != system.fleet.lock),
        (
            "promotion.from",
            local.promotion.from != system.promotion.from,
        ),
        (
            "promotion.staging_log",
            local.promotion.staging_log != system.promotion.staging_log,
        ),
        (
            "fleet.wait",
            local.fleet.wait_seconds != system.fleet.wait_seconds,
        ),
    ];
    if let Some((key, _)) = system_only
        .iter()
        .find(|(key, differs)| *differs && set(key))
    {
        let (table, name) = key.split_once('.').unwrap_or((key, ""));
        return Err(refuse(format!("it sets `[{table}] {name}`")));
    }

    // [approval]
    if set("approval.max_ttl") {
        merged.approval.max_ttl_seconds = system
            .approval
            .max_ttl_seconds
            .min(local.approval.max_ttl_seconds);
    }
    merged.approval.four_eyes |= local.approval.four_eyes;

    // [promotion]: evidence may only be required to be more recent.
    if set("promotion.within") {
        merged.promotion.within_seconds = system
            .promotion
            .within_seconds
            .min(local.promotion.within_seconds);
    }

    // [sql]: timeouts only shorten.
    if set("sql.statement_timeout") {
        merged.sql.statement_timeout_seconds = system
            .sql
            .statement_timeout_seconds
            .min(local.sql.statement_timeout_seconds);
    }
    if set("sql.lock_timeout") {
        merged.sql.lock_timeout_seconds = system
            .sql
            .lock_timeout_seconds
            .min(local.sql.lock_timeout_seconds);
    }

    // [targets]: a target's tier is the most sensitive of every matching
    // pattern (and of the process's own), so an entry can only protect more.
    merged.targets.extend(local.targets.iter().cloned());

    // A record names the rule that decided: a layered rule never goes by a
    // system rule's name (an unnamed one's `rule #1 (line 4)` included).
    merged.rules.extend(local.rules.iter().map(|rule| {
        let mut rule = rule.clone();
        if system.rules.iter().any(|s| s.name == rule.name) {
            rule.name = format!("{} (in {})", rule.name, local.source);
        }
        rule
    }));
    merged.source = format!("{} + {}", system.source, local.source);
    merged.provenance.extend(local.provenance.iter().cloned());
    merged.keys_set.clear();
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM: &str = r#"
[environment]
aliases = { "prod-eu" = "production" }

[audit]
log = "/var/log/prodguard/audit.jsonl"

[approval]
max_ttl = "10m"

[[rule]]
name = "system: confirm in production"
operations = ["*"]
tiers = ["production", "unknown"]
require = ["confirm", "audit"]
"#;

    const RULE: &str =
        "\n[[rule]]\noperations = [\"x\"]\ntiers = [\"local\"]\nrequire = [\"audit\"]\n";

    fn system() -> Policy {
        anchor(Policy::parse_toml(SYSTEM, "/etc/prodguard/policy.toml").unwrap()).unwrap()
    }

    fn local(head: &str) -> Policy {
        Policy::parse_toml(&format!("{head}{RULE}"), "mine.toml").unwrap()
    }

    fn refused(head: &str) -> String {
        match layer(system(), local(head)) {
            Err(e) => e.to_string(),
            Ok(p) => panic!("{head:?} was layered: {p:?}"),
        }
    }

    #[test]
    fn a_local_policy_adds_rules_after_the_system_rules_and_both_sources_are_named() {
        let merged = layer(system(), local("")).unwrap();
        let names: Vec<&str> = merged.rules().iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), 2);
        assert_eq!(names[0], "system: confirm in production");
        let paths: Vec<(&str, bool)> = merged
            .provenance()
            .iter()
            .map(|s| (s.path.as_str(), s.system))
            .collect();
        assert_eq!(
            paths,
            [("/etc/prodguard/policy.toml", true), ("mine.toml", false)]
        );
        assert_eq!(merged.provenance()[0], {
            let mut s = PolicySource::of("/etc/prodguard/policy.toml", SYSTEM);
            s.system = true;
            s
        });
        assert!(merged.is_anchored());
    }

    #[test]
    fn a_layered_rule_never_goes_by_a_system_rules_name() {
        let mine = local(
            "[[rule]]\nname = \"system: confirm in production\"\noperations = [\"db.*\"]\ndeny = \"no\"\n",
        );
        let merged = layer(system(), mine).unwrap();
        let names: Vec<&str> = merged.rules().iter().map(|r| r.name()).collect();
        assert_eq!(names[0], "system: confirm in production");
        assert_eq!(names[1], "system: confirm in production (in mine.toml)");
    }

    #[test]
    fn layering_twice_changes_nothing() {
        let once = layer(system(), local("")).unwrap();
        assert_eq!(layer(system(), once.clone()).unwrap(), once);
    }

    #[test]
    fn every_loosening_is_refused_naming_the_key() {
        let cases = [
            ("[environment]\nunknown = \"development\"\n", "unknown"),
            (
                "[environment]\naliases = { \"prod-eu\" = \"development\" }\n",
                "prod-eu",
            ),
            (
                "[environment]\naliases = { \"shadow\" = \"development\" }\n",
                "shadow",
            ),
            (
                "[environment]\nhostnames = { \"*\" = \"development\" }\n",
                "hostnames",
            ),
            ("[audit]\ndurability = \"none\"\n", "durability"),
            ("[audit]\nseal_every = 5\n", "seal_every"),
            ("[audit]\nrotate_bytes = 4096\n", "rotate_bytes"),
            (
                "[audit]\nsink = \"postgresql://me@localhost/mine\"\n",
                "sink",
            ),
            (
                "[approval]\nledger = \"postgresql://me@localhost/mine\"\n",
                "ledger",
            ),
            (
                "[approval]\nbreak_glass_users = [\"carol\"]\n",
                "break_glass_users",
            ),
            (
                "[approval]\napprovers = { carol = { key = \"ed25519:iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=\", user = \"carol\" } }\n",
                "approvers",
            ),
            (
                "[fleet]\nlock = \"postgresql://me@localhost/mine\"\n",
                "lock",
            ),
            // Promotion evidence from a trail the guarded account wrote, or
            // from an environment of its choosing, would be no evidence.
            (
                "[promotion]\nstaging_log = \"/tmp/forged.jsonl\"\n",
                "staging_log",
            ),
            ("[promotion]\nfrom = \"development\"\n", "from"),
        ];
        for (head, key) in cases {
            let message = refused(head);
            assert!(message.contains(key), "{head}: {message}");
            assert!(message.starts_with("mine.toml: "), "{message}");
            assert!(message.contains("/etc/prodguard/policy.toml"), "{message}");
        }
    }

    #[test]
    fn tightening_is_taken() {
        let merged = layer(
            system(),
            local(
                "[environment]\nunknown = \"protected\"\naliases = { \"shadow\" = \"production\" }\n\
                 hostnames = { \"*-db-*\" = \"production\" }\nmarker_file = \"/srv/ENV\"\n\n\
                 [audit]\nlog = \"/tmp/copy.jsonl\"\n\n[approval]\nmax_ttl = \"5m\"\nfour_eyes = true\n",
            ),
        )
        .unwrap();
        let env = merged.environment();
        assert_eq!(env.aliases.get("shadow"), Some(&Tier::Production));
        assert_eq!(env.hostnames.len(), 1);
        assert_eq!(
            env.marker_paths(),
            [system_path("environment"), "/srv/ENV".into()]
        );
        assert_eq!(
            merged.audit().log.as_deref(),
            Some("/var/log/prodguard/audit.jsonl")
        );
        assert_eq!(merged.audit().copies, ["/tmp/copy.jsonl"]);
        assert_eq!(merged.approval().max_ttl_seconds, 300);
        assert!(merged.approval().four_eyes);
    }

    #[test]
    fn promotion_evidence_may_only_be_asked_to_be_more_recent() {
        let shorter = layer(system(), local("[promotion]\nwithin = \"1d\"\n")).unwrap();
        assert_eq!(shorter.promotion().within_seconds, 86_400);
        let longer = layer(system(), local("[promotion]\nwithin = \"90d\"\n")).unwrap();
        assert_eq!(
            longer.promotion().within_seconds,
            crate::policy::DEFAULT_PROMOTION_WITHIN_SECONDS
        );
    }

    #[test]
    fn a_longer_max_ttl_or_defaults_left_unset_change_nothing() {
        let merged = layer(system(), local("[approval]\nmax_ttl = \"1h\"\n")).unwrap();
        assert_eq!(merged.approval().max_ttl_seconds, 600);
        // Not naming `unknown`, `durability` or `max_ttl` is not setting them.
        let loose = Policy::parse_toml(
            "[environment]\nunknown = \"staging\"\n\n[approval]\nmax_ttl = \"1h\"\n[[rule]]\noperations = [\"*\"]\ntiers = [\"production\"]\nrequire = [\"audit\"]\n",
            "/etc/prodguard/policy.toml",
        )
        .unwrap();
        let merged = layer(anchor(loose).unwrap(), local("")).unwrap();
        assert_eq!(
            merged.environment().unknown,
            UnknownEnvironment::Tier(Tier::Staging)
        );
        assert_eq!(merged.approval().max_ttl_seconds, 3600);
    }

    #[test]
    fn sql_timeouts_only_shorten() {
        let merged = layer(
            system(),
            local("[sql]\nstatement_timeout = \"2m\"\nlock_timeout = \"1h\"\n"),
        )
        .unwrap();
        assert_eq!(merged.sql().statement_timeout_seconds, 120);
        assert_eq!(merged.sql().lock_timeout_seconds, 10, "the default stands");
        let unset = layer(system(), local("")).unwrap();
        assert_eq!(unset.sql(), &crate::policy::SqlConfig::default());
    }

    #[test]
    fn a_name_the_system_does_not_map_cannot_be_aliased_down_whatever_unknown_says() {
        // A marker saying `prod-eu-3` is declared and unknown (guarded like
        // production), even where undeclared environments are development.
        let system = anchor(
            Policy::parse_toml(
                "[environment]\nunknown = \"development\"\n[[rule]]\noperations = [\"*\"]\n\
                 tiers = [\"unknown\"]\nrequire = [\"confirm\"]\n",
                "/etc/prodguard/policy.toml",
            )
            .unwrap(),
        )
        .unwrap();
        let mine = local("[environment]\naliases = { \"prod-eu-3\" = \"development\" }\n");
        let message = layer(system, mine).unwrap_err().to_string();
        assert!(message.contains("prod-eu-3"), "{message}");
    }

    #[test]
    fn a_system_policy_names_absolute_paths_only() {
        for (text, key) in [
            ("[audit]\nlog = \"audit.jsonl\"\n", "[audit] log"),
            (
                "[audit]\nseal_key_file = \"seal.key\"\n",
                "[audit] seal_key_file",
            ),
            (
                "[environment]\nmarker_file = \"ENV\"\n",
                "[environment] marker_file",
            ),
            (
                "[promotion]\nstaging_log = \"staging/audit.jsonl\"\n",
                "[promotion] staging_log",
            ),
        ] {
            let policy =
                Policy::parse_toml(&format!("{text}{RULE}"), "/etc/prodguard/policy.toml").unwrap();
            let message = combine(Some(policy), None).unwrap_err().to_string();
            assert!(
                message.contains(key) && message.contains("relative"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_local_policy_may_turn_syncing_on_but_not_off() {
        let lax = anchor(
            Policy::parse_toml(
                &format!("[audit]\ndurability = \"none\"\n{RULE}"),
                "/etc/prodguard/policy.toml",
            )
            .unwrap(),
        )
        .unwrap();
        let merged = layer(lax, local("[audit]\ndurability = \"fdatasync\"\n")).unwrap();
        assert_eq!(merged.audit().durability, Durability::Fdatasync);
    }

    #[test]
    fn without_a_system_policy_nothing_is_anchored_whatever_it_claims() {
        let claimed = layer(system(), local("")).unwrap();
        let policy = combine(None, Some(claimed)).unwrap();
        assert!(!policy.is_anchored());
        assert!(policy.provenance().iter().all(|s| !s.system));
        assert_eq!(unprotected_notice(&policy, true), Some(UNPROTECTED));
    }

    #[test]
    fn an_unprotected_policy_says_so_only_in_a_protected_tier() {
        let plain = Policy::builtin_default();
        assert_eq!(unprotected_notice(&plain, true), Some(UNPROTECTED));
        assert_eq!(unprotected_notice(&plain, false), None);
        assert_eq!(unprotected_notice(&system(), true), None);
    }
}
