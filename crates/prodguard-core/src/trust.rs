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
//! let policy = trust::layer(system, mine)?;
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
//! let policy = trust::layer(system, elsewhere)?;
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

/// A policy layered over the system policy tried to loosen it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{local}: {what}; only the system policy ({system}) may set it. Remove it from {local}, or ask an administrator to change the system policy"
)]
pub struct LayerError {
    /// The policy that tried.
    pub local: String,
    /// The system policy.
    pub system: String,
    /// What it tried, naming the key.
    pub what: String,
}

/// Marks `policy` as the system policy: the anchor every other source is
/// layered over.
pub fn anchor(mut policy: Policy) -> Policy {
    for source in &mut policy.provenance {
        source.system = true;
    }
    policy.anchored = true;
    policy
}

/// `local` layered over `system`: the system policy with everything
/// `local` adds, or a [`LayerError`] naming the first thing `local` would
/// loosen. See the module docs for what may be added.
///
/// A `local` that is already this system policy layered with something is
/// returned as it is (layering twice changes nothing).
pub fn layer(system: Policy, local: Policy) -> Result<Policy, LayerError> {
    let system = anchor(system);
    if local.anchored && local.provenance.first() == system.provenance.first() {
        return Ok(local);
    }
    let refuse = |what: String| LayerError {
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
        let now = resolve_name(name, sys_env).unwrap_or(floor);
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
    if audit.durability == Durability::None && sys_audit.durability != Durability::None {
        return Err(refuse(
            "`[audit] durability = \"none\"` would stop syncing the system's audit trail".into(),
        ));
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

    merged.rules.extend(local.rules.iter().cloned());
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
        Policy::parse_toml(SYSTEM, "/etc/prodguard/policy.toml").unwrap()
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
    fn a_longer_max_ttl_or_defaults_left_unset_change_nothing() {
        let merged = layer(system(), local("[approval]\nmax_ttl = \"1h\"\n")).unwrap();
        assert_eq!(merged.approval().max_ttl_seconds, 600);
        // Not naming `unknown`, `durability` or `max_ttl` is not setting them.
        let loose = Policy::parse_toml(
            "[environment]\nunknown = \"staging\"\n\n[approval]\nmax_ttl = \"1h\"\n[[rule]]\noperations = [\"*\"]\ntiers = [\"production\"]\nrequire = [\"audit\"]\n",
            "/etc/prodguard/policy.toml",
        )
        .unwrap();
        let merged = layer(loose, local("")).unwrap();
        assert_eq!(
            merged.environment().unknown,
            UnknownEnvironment::Tier(Tier::Staging)
        );
        assert_eq!(merged.approval().max_ttl_seconds, 3600);
    }

    #[test]
    fn an_unprotected_policy_says_so_only_in_a_protected_tier() {
        let plain = Policy::builtin_default();
        assert_eq!(unprotected_notice(&plain, true), Some(UNPROTECTED));
        assert_eq!(unprotected_notice(&plain, false), None);
        assert_eq!(unprotected_notice(&anchor(system()), true), None);
    }
}
