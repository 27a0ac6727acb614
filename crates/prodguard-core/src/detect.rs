//! Environment classification from a snapshot of facts.
//!
//! [`classify`] looks at every signal in precedence order and records what
//! each one meant, then decides:
//!
//! 1. **Declarations** decide when there are any: an explicit value from the
//!    program, `PRODGUARD_ENV`, the marker file, then the ecosystem
//!    conventions ([`conventions`]). When they agree, the one with the highest
//!    precedence names the environment. When they disagree, the most sensitive
//!    tier wins and the conflict is reported: a `development` `PRODGUARD_ENV`
//!    never overrides `APP_ENV=production`.
//! 2. **Hints** (`NODE_ENV`, CI variables, Kubernetes, hostname patterns from
//!    the policy) decide only when nothing is declared, the same way.
//! 3. When nothing speaks at all, the policy's `[environment] unknown` decides
//!    (default: guarded like production), and [`Detection::hint`] says exactly
//!    what would declare the environment.
//!
//! Values are trimmed and ASCII case-folded; an empty value counts as unset.
//! A name maps to a tier through the policy's `[environment] aliases` first,
//! then the built-in names ([`Tier::from_name`]); a declared name that maps to
//! nothing is kept as the environment's name with the tier `unknown`.
//!
//! ```
//! use prodguard_core::{classify, Facts, Policy, Tier};
//!
//! let mut facts = Facts::default();
//! facts.env.insert("PRODGUARD_ENV".into(), "development".into());
//! facts.env.insert("APP_ENV".into(), "production".into());
//! let detection = classify(&facts, Policy::builtin_default().environment());
//! assert_eq!(detection.tier, Tier::Production); // conflicts fail safe
//! assert_eq!(detection.conflicts.len(), 1);
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Tier;
use crate::policy::{ActorKind, EnvironmentConfig, UnknownEnvironment};
use crate::text::escape;

/// Everything detection may look at, captured by the caller.
///
/// The runtime fills this from the real process; the Wasm host and tests
/// build it by hand. `files` maps a path to its content (only the marker
/// file is read today).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Facts {
    /// An environment named by the program itself (strongest signal).
    pub explicit: Option<String>,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// File contents by path.
    pub files: BTreeMap<String, String>,
    /// The host's name.
    pub hostname: Option<String>,
}

/// How strongly a signal speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Strength {
    /// Named by the program.
    Explicit,
    /// A declaration: `PRODGUARD_ENV`, the marker file, an ecosystem variable.
    Declared,
    /// A hint (`NODE_ENV`, CI, Kubernetes, hostname): decides only when nothing is declared.
    Hint,
}

/// One signal that was looked at, and what it meant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Where it came from, e.g. `env:APP_ENV`, `file:/etc/prodguard/environment`, `hostname`.
    pub source: Cow<'static, str>,
    /// The raw value seen (`None` when unset or missing).
    pub value: Option<String>,
    /// The environment name it declares, after trimming and case folding.
    pub environment: Option<String>,
    /// The tier that name maps to.
    pub tier: Option<Tier>,
    /// How strongly it speaks.
    pub strength: Strength,
    /// Whether it took part in the decision.
    pub used: bool,
    /// A sentence for people: what this signal meant.
    pub meaning: Cow<'static, str>,
}

/// Two signals that disagreed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The sources that disagreed, most sensitive first.
    pub sources: Vec<String>,
    /// The tiers they meant, in the same order.
    pub tiers: Vec<Tier>,
    /// The tier that won (the most sensitive).
    pub resolved: Tier,
}

/// The answer to "where am I?", with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    /// The environment's own name (e.g. `prod-eu`), or `unknown`.
    pub environment: String,
    /// What that name means for safety.
    pub tier: Tier,
    /// Whether guards apply: production and unknown (unless the policy maps unknown to a tier).
    pub protected: bool,
    /// The source that decided, e.g. `env:APP_ENV`, or `default` when nothing did.
    pub decided_by: String,
    /// Every signal looked at.
    pub evidence: Vec<Evidence>,
    /// Disagreements between signals.
    pub conflicts: Vec<Conflict>,
    /// When nothing decided: which variable or file would declare the environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The variable that declares the environment for prodguard itself.
pub const PRODGUARD_ENV: &str = "PRODGUARD_ENV";

/// One signal detection looks at.
#[derive(Debug, Clone, Copy)]
enum Signal {
    /// The environment named by the program itself.
    Explicit,
    /// The marker file (`[environment] marker_file`).
    Marker,
    /// An environment variable.
    Env(EnvSignal),
    /// The host name, against the policy's patterns.
    Hostname,
}

/// An environment variable detection reads, and how.
#[derive(Debug, Clone, Copy)]
struct EnvSignal {
    var: &'static str,
    /// `env:` + `var`, built at compile time so that classifying allocates no source names.
    source: &'static str,
    read: Read,
}

/// How a variable's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// The value names an environment, as a declaration.
    Declares,
    /// The value names an environment, as a hint (`NODE_ENV`).
    Hints,
    /// `SPRING_PROFILES_ACTIVE=a,b,c`: the most sensitive profile that names a tier.
    SpringProfiles,
    /// `OTEL_RESOURCE_ATTRIBUTES`: its `deployment.environment(.name)` attribute.
    OtelAttributes,
    /// A truthy value says "this is a CI run".
    CiFlag,
    /// Set in every Kubernetes pod.
    Kubernetes,
}

macro_rules! env_signal {
    ($var:literal, $read:ident) => {
        Signal::Env(EnvSignal {
            var: $var,
            source: concat!("env:", $var),
            read: Read::$read,
        })
    };
}

/// Every signal, in precedence order: this table is the whole list.
const SIGNALS: [Signal; 28] = [
    Signal::Explicit,
    env_signal!("PRODGUARD_ENV", Declares),
    Signal::Marker,
    // The ecosystems' conventions.
    env_signal!("APP_ENV", Declares),
    env_signal!("RAILS_ENV", Declares),
    env_signal!("RACK_ENV", Declares),
    env_signal!("WP_ENVIRONMENT_TYPE", Declares),
    env_signal!("ASPNETCORE_ENVIRONMENT", Declares),
    env_signal!("DOTNET_ENVIRONMENT", Declares),
    env_signal!("MIX_ENV", Declares),
    env_signal!("SPRING_PROFILES_ACTIVE", SpringProfiles),
    env_signal!("DEPLOYMENT_ENVIRONMENT", Declares),
    env_signal!("OTEL_RESOURCE_ATTRIBUTES", OtelAttributes),
    env_signal!("ENVIRONMENT", Declares),
    // Hints.
    env_signal!("NODE_ENV", Hints),
    env_signal!("CI", CiFlag),
    env_signal!("GITHUB_ACTIONS", CiFlag),
    env_signal!("GITLAB_CI", CiFlag),
    env_signal!("BUILDKITE", CiFlag),
    env_signal!("CIRCLECI", CiFlag),
    env_signal!("JENKINS_URL", CiFlag),
    env_signal!("TF_BUILD", CiFlag),
    env_signal!("TRAVIS", CiFlag),
    env_signal!("TEAMCITY_VERSION", CiFlag),
    env_signal!("BITBUCKET_BUILD_NUMBER", CiFlag),
    env_signal!("CODEBUILD_BUILD_ID", CiFlag),
    env_signal!("KUBERNETES_SERVICE_HOST", Kubernetes),
    Signal::Hostname,
];

fn env_signals(read: impl Fn(Read) -> bool) -> impl Iterator<Item = &'static str> {
    SIGNALS.iter().filter_map(move |signal| match signal {
        Signal::Env(s) if read(s.read) => Some(s.var),
        _ => None,
    })
}

/// The ecosystem variables that declare an environment, in precedence order.
pub fn conventions() -> impl Iterator<Item = &'static str> {
    env_signals(|read| {
        matches!(
            read,
            Read::Declares | Read::SpringProfiles | Read::OtelAttributes
        )
    })
    .filter(|&var| var != PRODGUARD_ENV)
}

/// The variables whose (truthy) presence says "this is a CI run".
pub fn ci_variables() -> impl Iterator<Item = &'static str> {
    env_signals(|read| read == Read::CiFlag)
}

/// Variables set by AI coding agents (the ones Prisma and std-env look
/// at); any of them, truthy, makes the actor an agent.
pub const AGENT_VARIABLES: &[&str] = &[
    "AI_AGENT",
    "CLAUDECODE",
    "CLAUDE_CODE",
    "CURSOR_AGENT",
    "CURSOR_TRACE_ID",
    "GEMINI_CLI",
    "CODEX_SANDBOX",
    "CODEX_CI",
    "AUGMENT_AGENT",
    "OPENCODE",
    "REPLIT_AGENT",
    "GOOSE_TERMINAL",
    "AMP_AGENT",
];

/// What kind of actor a process with environment `env` is, `terminal`
/// saying whether it has one: an AI agent (an agent variable) beats CI (a
/// CI variable) beats a person (a terminal) beats a service. An agent
/// inside a terminal is still an agent.
///
/// ```
/// use std::collections::BTreeMap;
/// use prodguard_core::detect::actor_kind;
/// use prodguard_core::policy::ActorKind;
///
/// let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
///     pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
/// };
/// assert_eq!(actor_kind(&env(&[("CLAUDECODE", "1"), ("CI", "true")]), true), ActorKind::Agent);
/// assert_eq!(actor_kind(&env(&[("CI", "true")]), true), ActorKind::Ci);
/// assert_eq!(actor_kind(&env(&[("CI", "false")]), true), ActorKind::Human);
/// assert_eq!(actor_kind(&env(&[]), false), ActorKind::Service);
/// ```
pub fn actor_kind(env: &BTreeMap<String, String>, terminal: bool) -> ActorKind {
    let set = |name: &str| env.get(name).is_some_and(|value| is_truthy(value));
    if AGENT_VARIABLES.iter().any(|name| set(name)) {
        ActorKind::Agent
    } else if ci_variables().any(set) {
        ActorKind::Ci
    } else if terminal {
        ActorKind::Human
    } else {
        ActorKind::Service
    }
}

const OTEL_KEY: &str = "deployment.environment.name";
const OTEL_KEY_OLD: &str = "deployment.environment";

const NOT_SET: &str = "not set";
const EMPTY: &str = "empty: treated as unset";
const IGNORED: &str = "ignored: a declaration decides";

/// Whether a flag-like variable's value means "yes": anything but empty, `0` or `false`.
pub fn is_truthy(value: &str) -> bool {
    let folded = value.trim().to_ascii_lowercase();
    !(folded.is_empty() || folded == "0" || folded == "false")
}

/// Maps an environment name to its tier: the policy's aliases first, then the built-in names.
///
/// The name is trimmed and case-folded; `None` when nothing maps it.
pub fn resolve_name(name: &str, config: &EnvironmentConfig) -> Option<Tier> {
    let folded = name.trim().to_ascii_lowercase();
    config
        .aliases
        .get(&folded)
        .copied()
        .or_else(|| Tier::from_name(&folded))
}

/// An environment name that is neither a built-in one nor a policy alias.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown environment `{}`: use production, staging, development, test or local, or a name from the policy's [environment] aliases",
    crate::text::escape(name)
)]
pub struct UnknownEnvironmentName {
    /// As given.
    pub name: String,
}

/// An environment name as a person typed it, checked and in canonical
/// form: built-in names and aliases become the tier's name (`prod` →
/// `production`), policy aliases stay as they are (trimmed and case-folded),
/// anything else is refused — a typo would make a token or stamp that never
/// matches, or worse, an unknown one.
///
/// ```
/// use prodguard_core::detect::canonical_environment;
/// use prodguard_core::{Policy, Tier};
///
/// let config = Policy::builtin_default_ref().environment();
/// assert_eq!(canonical_environment(" Prod ", config).unwrap(), ("production".to_owned(), Tier::Production));
/// assert!(canonical_environment("prodution", config).is_err());
/// ```
pub fn canonical_environment(
    name: &str,
    config: &EnvironmentConfig,
) -> Result<(String, Tier), UnknownEnvironmentName> {
    let folded = name.trim().to_ascii_lowercase();
    if let Some(tier) = Tier::from_name(&folded) {
        return Ok((tier.as_str().to_owned(), tier));
    }
    match resolve_name(&folded, config) {
        Some(tier) => Ok((folded, tier)),
        None => Err(UnknownEnvironmentName {
            name: name.to_owned(),
        }),
    }
}

/// Classifies the environment described by `facts` under `config`.
pub fn classify(facts: &Facts, config: &EnvironmentConfig) -> Detection {
    classify_with(facts, config, true)
}

/// [`classify`], listing in `evidence` only the signals that were set
/// (a value, even an empty one) unless `every_signal`: the same detection,
/// without building the list of everything that was looked at.
pub(crate) fn classify_with(
    facts: &Facts,
    config: &EnvironmentConfig,
    every_signal: bool,
) -> Detection {
    let mut evidence = Vec::with_capacity(if every_signal { SIGNALS.len() } else { 4 });
    for signal in SIGNALS {
        if let Signal::Marker = signal {
            // The system marker, always; then any a policy adds.
            for path in config.marker_paths() {
                let seen = marker_signal(facts, &path, config);
                if every_signal || seen.value.is_some() {
                    evidence.push(seen);
                }
            }
            continue;
        }
        let seen = match signal {
            Signal::Explicit => explicit_signal(facts, config),
            Signal::Marker => continue,
            // A variable's signal has a value exactly when it is set: an
            // unset one need not be built only to be dropped.
            Signal::Env(s) if !every_signal && !facts.env.contains_key(s.var) => continue,
            // One variable, as many declarations as it holds.
            Signal::Env(s) if s.read == Read::OtelAttributes => {
                evidence.extend(otel_signals(facts, s, config));
                continue;
            }
            Signal::Env(s) => env_signal(facts, s, config),
            Signal::Hostname => hostname_signal(facts, config),
        };
        if every_signal || seen.value.is_some() {
            evidence.push(seen);
        }
    }

    let declared: Vec<(usize, Tier)> = evidence
        .iter()
        .enumerate()
        .filter(|(_, e)| e.strength != Strength::Hint)
        .filter_map(|(i, e)| e.tier.map(|t| (i, t)))
        .collect();
    let hints: Vec<(usize, Tier)> = evidence
        .iter()
        .enumerate()
        .filter(|(_, e)| e.strength == Strength::Hint)
        .filter_map(|(i, e)| e.tier.map(|t| (i, t)))
        .collect();

    let group = if declared.is_empty() {
        hints
    } else {
        for &(i, _) in &hints {
            if let Some(e) = evidence.get_mut(i) {
                e.meaning = if e.source == "env:KUBERNETES_SERVICE_HOST" {
                    format!("running in a Kubernetes cluster; {IGNORED}").into()
                } else {
                    format!("{}; {IGNORED}", e.meaning).into()
                };
            }
        }
        declared
    };

    match decide(&mut evidence, &group) {
        Some(decided) => Detection {
            protected: is_protected(decided.tier),
            environment: decided.environment,
            tier: decided.tier,
            decided_by: decided.decided_by,
            evidence,
            conflicts: decided.conflict.into_iter().collect(),
            hint: None,
        },
        None => {
            let (environment, tier, decided_by) = match config.unknown {
                UnknownEnvironment::Protected => ("unknown".to_string(), Tier::Unknown, "default"),
                UnknownEnvironment::Tier(t) => {
                    (t.as_str().to_string(), t, "policy:environment.unknown")
                }
            };
            Detection {
                environment,
                tier,
                protected: is_protected(tier),
                decided_by: decided_by.to_string(),
                evidence,
                conflicts: Vec::new(),
                hint: Some(undetermined_hint()),
            }
        }
    }
}

fn is_protected(tier: Tier) -> bool {
    matches!(tier, Tier::Production | Tier::Unknown)
}

fn undetermined_hint() -> String {
    let marker = crate::trust::system_path(crate::trust::SYSTEM_MARKER_NAME);
    format!(
        "nothing declares the environment: set {PRODGUARD_ENV} (e.g. {PRODGUARD_ENV}=development) or write the name to {marker}"
    )
}

/// The outcome of one group of signals (declarations, or hints).
struct Decided {
    environment: String,
    tier: Tier,
    decided_by: String,
    conflict: Option<Conflict>,
}

/// Decides among `group` (indices into `evidence`, in precedence order):
/// the most sensitive tier wins, named by the highest-precedence signal with it.
fn decide(evidence: &mut [Evidence], group: &[(usize, Tier)]) -> Option<Decided> {
    let mut winner: Option<(usize, Tier)> = None;
    for &(i, tier) in group {
        match winner {
            Some((_, best)) if best.sensitivity() >= tier.sensitivity() => {}
            _ => winner = Some((i, tier)),
        }
    }
    let (win_index, win_tier) = winner?;
    let winner_evidence = evidence.get(win_index)?;
    let decided_by = winner_evidence.source.clone();
    let environment = winner_evidence
        .environment
        .clone()
        .unwrap_or_else(|| win_tier.as_str().to_string());

    let disagree = group.iter().any(|&(_, t)| t != win_tier);
    for &(i, tier) in group {
        if let Some(e) = evidence.get_mut(i) {
            e.used = true;
            if disagree {
                if i == win_index {
                    e.meaning = format!(
                        "{}; it decides: the signals disagree and the most sensitive tier wins",
                        e.meaning
                    )
                    .into();
                } else if tier != win_tier {
                    e.meaning = format!(
                        "{}; overruled: {} says {win_tier}, and the most sensitive tier wins",
                        e.meaning,
                        escape(&decided_by)
                    )
                    .into();
                }
            }
        }
    }

    let conflict = if disagree {
        let mut ordered: Vec<(usize, Tier)> = group.to_vec();
        ordered.sort_by_key(|&(_, t)| std::cmp::Reverse(t.sensitivity()));
        Some(Conflict {
            sources: ordered
                .iter()
                .filter_map(|&(i, _)| evidence.get(i).map(|e| e.source.to_string()))
                .collect(),
            tiers: ordered.iter().map(|&(_, t)| t).collect(),
            resolved: win_tier,
        })
    } else {
        None
    };

    Some(Decided {
        environment,
        tier: win_tier,
        decided_by: decided_by.to_string(),
        conflict,
    })
}

/// How a name came to its tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mapping {
    /// The tier's own name.
    Canonical,
    /// A built-in alias such as `prd`.
    Builtin,
    /// The policy's `[environment] aliases`.
    Policy,
    /// Nothing maps it: unknown.
    Unmapped,
}

fn map_name(name: &str, config: &EnvironmentConfig) -> (Tier, Mapping) {
    if let Some(&tier) = config.aliases.get(name) {
        return (tier, Mapping::Policy);
    }
    match Tier::from_name(name) {
        Some(tier) if tier.as_str() == name => (tier, Mapping::Canonical),
        Some(tier) => (tier, Mapping::Builtin),
        None => (Tier::Unknown, Mapping::Unmapped),
    }
}

/// What a (folded) name means, as a phrase: "production", "prd, a built-in name for production", …
fn describe(name: &str, tier: Tier, mapping: Mapping) -> String {
    match mapping {
        Mapping::Canonical => tier.as_str().to_string(),
        Mapping::Builtin => format!("{name}, a built-in name for {tier}"),
        Mapping::Policy if name == tier.as_str() => tier.as_str().to_string(),
        Mapping::Policy => {
            format!(
                "{}, which the policy's [environment] aliases map to {tier}",
                escape(name)
            )
        }
        Mapping::Unmapped => {
            let name = escape(name);
            format!(
                "\"{name}\", a name that no alias maps to a tier: treated as unknown and guarded like production; \
                 add an alias in [environment] aliases of the policy (e.g. aliases = {{ \"{name}\" = \"<tier>\" }})"
            )
        }
    }
}

fn normalise(value: &str) -> String {
    value.trim().to_ascii_lowercase()
}

fn verb(strength: Strength) -> &'static str {
    match strength {
        Strength::Explicit | Strength::Declared => "declares",
        Strength::Hint => "hints at",
    }
}

fn unset(
    source: impl Into<Cow<'static, str>>,
    value: Option<String>,
    strength: Strength,
    meaning: impl Into<Cow<'static, str>>,
) -> Evidence {
    Evidence {
        source: source.into(),
        value,
        environment: None,
        tier: None,
        strength,
        used: false,
        meaning: meaning.into(),
    }
}

/// A signal that names an environment: `subject` is the start of its sentence,
/// e.g. `APP_ENV=prod`, and `name` the folded, non-empty name.
fn named(
    source: impl Into<Cow<'static, str>>,
    raw: String,
    subject: &str,
    name: String,
    strength: Strength,
    config: &EnvironmentConfig,
) -> Evidence {
    let (tier, mapping) = map_name(&name, config);
    let meaning = format!(
        "{subject} {} {}",
        verb(strength),
        describe(&name, tier, mapping)
    );
    Evidence {
        source: source.into(),
        value: Some(raw),
        environment: Some(name),
        tier: Some(tier),
        strength,
        used: false,
        meaning: meaning.into(),
    }
}

fn explicit_signal(facts: &Facts, config: &EnvironmentConfig) -> Evidence {
    let source = "explicit";
    match &facts.explicit {
        None => unset(source, None, Strength::Explicit, NOT_SET),
        Some(raw) => {
            let name = normalise(raw);
            if name.is_empty() {
                unset(source, Some(raw.clone()), Strength::Explicit, EMPTY)
            } else {
                named(
                    source,
                    raw.clone(),
                    "the program explicitly",
                    name,
                    Strength::Explicit,
                    config,
                )
            }
        }
    }
}

fn env_signal(facts: &Facts, signal: EnvSignal, config: &EnvironmentConfig) -> Evidence {
    let EnvSignal { var, source, read } = signal;
    match read {
        Read::Declares => named_env_signal(facts, var, source, Strength::Declared, config),
        Read::Hints => named_env_signal(facts, var, source, Strength::Hint, config),
        Read::SpringProfiles => spring_signal(facts, signal, config),
        // Read by `otel_signals`: it may hold several declarations.
        Read::OtelAttributes => unset(signal.source, None, Strength::Declared, NOT_SET),
        Read::CiFlag => ci_signal(facts, var, source),
        Read::Kubernetes => kubernetes_signal(facts, signal),
    }
}

fn named_env_signal(
    facts: &Facts,
    var: &str,
    source: &'static str,
    strength: Strength,
    config: &EnvironmentConfig,
) -> Evidence {
    match facts.env.get(var) {
        None => unset(source, None, strength, NOT_SET),
        Some(raw) => {
            let name = normalise(raw);
            if name.is_empty() {
                unset(source, Some(raw.clone()), strength, EMPTY)
            } else {
                let subject = format!("{var}={}", escape(&name));
                named(source, raw.clone(), &subject, name, strength, config)
            }
        }
    }
}

fn marker_signal(facts: &Facts, path: &str, config: &EnvironmentConfig) -> Evidence {
    let source = format!("file:{path}");
    let Some(content) = facts.files.get(path) else {
        return unset(source, None, Strength::Declared, "not present");
    };
    let line = content
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'));
    match line {
        None => unset(
            source,
            Some(String::new()),
            Strength::Declared,
            "empty: treated as unset (the marker file holds only blank lines and comments)",
        ),
        Some(line) => {
            let subject = format!("the marker file {}", escape(path));
            named(
                source,
                line.to_string(),
                &subject,
                normalise(line),
                Strength::Declared,
                config,
            )
        }
    }
}

/// `SPRING_PROFILES_ACTIVE=a,b,c`: the most sensitive profile that names a tier.
fn spring_signal(facts: &Facts, signal: EnvSignal, config: &EnvironmentConfig) -> Evidence {
    let EnvSignal { var, source, .. } = signal;
    let Some(raw) = facts.env.get(var) else {
        return unset(source, None, Strength::Declared, NOT_SET);
    };
    let profiles: Vec<String> = raw
        .split(',')
        .map(normalise)
        .filter(|p| !p.is_empty())
        .collect();
    if profiles.is_empty() {
        return unset(source, Some(raw.clone()), Strength::Declared, EMPTY);
    }
    let list = escape(&profiles.join(",")).into_owned();
    let mut best: Option<(&str, Tier, Mapping)> = None;
    let mut unmapped: Vec<&str> = Vec::new();
    for profile in &profiles {
        let (tier, mapping) = map_name(profile, config);
        if mapping == Mapping::Unmapped {
            unmapped.push(profile);
            continue;
        }
        match best {
            Some((_, t, _)) if t.sensitivity() >= tier.sensitivity() => {}
            _ => best = Some((profile, tier, mapping)),
        }
    }
    let (environment, tier, meaning) = match best {
        Some((name, tier, mapping)) => {
            let mut meaning = format!("{var}={list} declares {}", describe(name, tier, mapping));
            if profiles.len() > 1 {
                meaning.push_str(" (the most sensitive of its profiles that names a tier");
                if !unmapped.is_empty() {
                    meaning.push_str(&format!(
                        "; {} named no tier and {} ignored",
                        escape(&unmapped.join(", ")),
                        if unmapped.len() == 1 { "was" } else { "were" }
                    ));
                }
                meaning.push(')');
            }
            (name.to_string(), tier, meaning)
        }
        None => (
            list.clone(),
            Tier::Unknown,
            format!(
                "{var}={list} has no profile that maps to a tier: treated as unknown and guarded like production; \
                 add an alias in [environment] aliases of the policy for the profile that names the environment"
            ),
        ),
    };
    Evidence {
        source: source.into(),
        value: Some(raw.clone()),
        environment: Some(environment),
        tier: Some(tier),
        strength: Strength::Declared,
        used: false,
        meaning: meaning.into(),
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES=k=v,…`: every `deployment.environment.name`
/// and `deployment.environment` attribute in it is a declaration of its own,
/// so that one variable saying two things is a conflict like two variables
/// would be (the most sensitive wins, and it is reported). With one
/// declaration the signal is `env:OTEL_RESOURCE_ATTRIBUTES`; with more, each
/// is named by its key, and by its place among the attributes with that key
/// when the key repeats: `env:OTEL_RESOURCE_ATTRIBUTES[deployment.environment.name#2]`.
/// The current key's declarations come before the old key's: when they agree
/// on the tier, the current key names the environment.
fn otel_signals(facts: &Facts, signal: EnvSignal, config: &EnvironmentConfig) -> Vec<Evidence> {
    let EnvSignal { var, source, .. } = signal;
    let Some(raw) = facts.env.get(var) else {
        return vec![unset(source, None, Strength::Declared, NOT_SET)];
    };
    if raw.trim().is_empty() {
        return vec![unset(source, Some(raw.clone()), Strength::Declared, EMPTY)];
    }
    // (key, its place among the attributes with that key, the folded name)
    let mut found: Vec<(&'static str, usize, String)> = Vec::new();
    for pair in raw.split(',') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let key = match key.trim() {
            OTEL_KEY => OTEL_KEY,
            OTEL_KEY_OLD => OTEL_KEY_OLD,
            _ => continue,
        };
        let place = 1 + found.iter().filter(|(k, _, _)| *k == key).count();
        found.push((key, place, normalise(&percent_decode(value.trim()))));
    }
    // Stable: each key's declarations stay in the order they were written.
    found.sort_by_key(|&(key, _, _)| key != OTEL_KEY);
    let repeats = |key: &str| found.iter().filter(|(k, _, _)| *k == key).count() > 1;
    let declared: Vec<&(&'static str, usize, String)> = found
        .iter()
        .filter(|(_, _, name)| !name.is_empty())
        .collect();
    match declared.as_slice() {
        [] if !found.is_empty() => vec![unset(
            source,
            Some(raw.clone()),
            Strength::Declared,
            "empty: treated as unset (the deployment.environment attribute has no value)",
        )],
        [] => vec![unset(
            source,
            Some(raw.clone()),
            Strength::Declared,
            "has no deployment.environment.name or deployment.environment attribute: declares nothing",
        )],
        [(key, _, name)] => {
            let subject = format!("{var} {key}={}", escape(name));
            vec![named(
                source,
                raw.clone(),
                &subject,
                name.clone(),
                Strength::Declared,
                config,
            )]
        }
        several => several
            .iter()
            .map(|(key, place, name)| {
                let label = if repeats(key) {
                    format!("{key}#{place}")
                } else {
                    (*key).to_owned()
                };
                let subject = format!("{var} {label}={}", escape(name));
                named(
                    format!("{source}[{label}]"),
                    raw.clone(),
                    &subject,
                    name.clone(),
                    Strength::Declared,
                    config,
                )
            })
            .collect(),
    }
}

/// Decodes `%XX` escapes (as OpenTelemetry resource attribute values use); other bytes pass through.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes.get(i).copied().unwrap_or_default();
        if byte == b'%' {
            let hi = bytes.get(i + 1).and_then(|&b| hex_value(b));
            let lo = bytes.get(i + 2).and_then(|&b| hex_value(b));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(byte);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn ci_signal(facts: &Facts, var: &str, source: &'static str) -> Evidence {
    match facts.env.get(var) {
        None => unset(source, None, Strength::Hint, NOT_SET),
        Some(raw) if raw.trim().is_empty() => {
            unset(source, Some(raw.clone()), Strength::Hint, EMPTY)
        }
        Some(raw) if !is_truthy(raw) => {
            let meaning = format!(
                "{var}={} says this is not a CI run",
                escape(&normalise(raw))
            );
            unset(source, Some(raw.clone()), Strength::Hint, meaning)
        }
        // Deploys run from CI as often as test suites do: a CI variable is
        // evidence (and makes the actor `ci`), never a reason to lower
        // protection.
        Some(raw) => Evidence {
            source: source.into(),
            value: Some(raw.clone()),
            environment: None,
            tier: None,
            strength: Strength::Hint,
            used: false,
            meaning: format!(
                "{var} is set: a CI run; deploys run from CI too, so this does not lower \
                 protection (a test suite declares PRODGUARD_ENV=test)"
            )
            .into(),
        },
    }
}

fn kubernetes_signal(facts: &Facts, signal: EnvSignal) -> Evidence {
    let EnvSignal { var, source, .. } = signal;
    match facts.env.get(var) {
        None => unset(source, None, Strength::Hint, NOT_SET),
        Some(raw) if raw.trim().is_empty() => unset(source, Some(raw.clone()), Strength::Hint, EMPTY),
        Some(raw) => Evidence {
            source: source.into(),
            value: Some(raw.clone()),
            environment: Some("kubernetes".to_string()),
            tier: Some(Tier::Production),
            strength: Strength::Hint,
            used: false,
            meaning: "running in a Kubernetes cluster with no declared environment: treated as production"
                .into(),
        },
    }
}

fn hostname_signal(facts: &Facts, config: &EnvironmentConfig) -> Evidence {
    let source = "hostname";
    let Some(raw) = &facts.hostname else {
        return unset(source, None, Strength::Hint, NOT_SET);
    };
    let host = normalise(raw);
    if host.is_empty() {
        return unset(source, Some(raw.clone()), Strength::Hint, EMPTY);
    }
    if config.hostnames.is_empty() {
        return unset(
            source,
            Some(raw.clone()),
            Strength::Hint,
            "the policy has no hostname patterns ([environment] hostnames): hints at nothing",
        );
    }
    match config
        .hostnames
        .iter()
        .find(|hint| glob_matches_ci(&hint.pattern, &host))
    {
        Some(hint) => Evidence {
            source: source.into(),
            value: Some(raw.clone()),
            environment: Some(hint.tier.as_str().to_string()),
            tier: Some(hint.tier),
            strength: Strength::Hint,
            used: false,
            meaning: format!(
                "host name {} matches the policy's pattern \"{}\", which hints at {}",
                escape(&host),
                escape(&hint.pattern),
                hint.tier
            )
            .into(),
        },
        None => {
            let meaning = format!(
                "host name {} matches none of the policy's hostname patterns",
                escape(&host)
            );
            unset(source, Some(raw.clone()), Strength::Hint, meaning)
        }
    }
}

/// The policy's glob, case-insensitive: host names are.
fn glob_matches_ci(pattern: &str, text: &str) -> bool {
    crate::policy::glob_matches(&pattern.to_ascii_lowercase(), &text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OTEL: &str = "OTEL_RESOURCE_ATTRIBUTES";
    /// The conventions in the precedence order the design names.
    const CONVENTION_NAMES: [&str; 11] = [
        "APP_ENV",
        "RAILS_ENV",
        "RACK_ENV",
        "WP_ENVIRONMENT_TYPE",
        "ASPNETCORE_ENVIRONMENT",
        "DOTNET_ENVIRONMENT",
        "MIX_ENV",
        "SPRING_PROFILES_ACTIVE",
        "DEPLOYMENT_ENVIRONMENT",
        "OTEL_RESOURCE_ATTRIBUTES",
        "ENVIRONMENT",
    ];
    const CI_NAMES: [&str; 11] = [
        "CI",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "BUILDKITE",
        "CIRCLECI",
        "JENKINS_URL",
        "TF_BUILD",
        "TRAVIS",
        "TEAMCITY_VERSION",
        "BITBUCKET_BUILD_NUMBER",
        "CODEBUILD_BUILD_ID",
    ];

    #[test]
    fn only_the_set_signals_gives_the_same_detection_as_every_signal_filtered() {
        let names = [
            "",
            " ",
            "production",
            "prod",
            "staging",
            "dev",
            "nonsense",
            "PRODUCTION",
        ];
        let vars: Vec<&str> = [
            PRODGUARD_ENV,
            "NODE_ENV",
            "SPRING_PROFILES_ACTIVE",
            OTEL,
            "CI",
            "KUBERNETES_SERVICE_HOST",
        ]
        .into_iter()
        .chain(conventions())
        .chain(ci_variables())
        .collect();
        let mut config = EnvironmentConfig::default();
        config.aliases.insert("nonsense".into(), Tier::Staging);
        config.hostnames.push(HostnameHint {
            pattern: "db-*".into(),
            tier: Tier::Production,
        });
        let mut rng = crate::test_rng::Rng(0x853c_49e6_748f_ea9b);
        for _ in 0..3000 {
            let mut facts = Facts::default();
            for _ in 0..rng.below(4) {
                let value = match vars[rng.below(vars.len())] {
                    OTEL => format!("deployment.environment={}", names[rng.below(names.len())]),
                    _ => names[rng.below(names.len())].to_owned(),
                };
                facts.env.insert(vars[rng.below(vars.len())].into(), value);
            }
            if rng.below(4) == 0 {
                facts.explicit = Some(names[rng.below(names.len())].into());
            }
            if rng.below(4) == 0 {
                facts.hostname = Some(format!("db-{}", rng.below(3)));
            }
            if rng.below(4) == 0 {
                facts.files.insert(
                    crate::policy::DEFAULT_MARKER_FILE.into(),
                    format!("# marker\n{}\n", names[rng.below(names.len())]),
                );
            }
            let mut every = classify(&facts, &config);
            every.evidence.retain(|signal| signal.value.is_some());
            assert_eq!(classify_with(&facts, &config, false), every, "{facts:?}");
        }
    }
    use crate::Policy;
    use crate::policy::HostnameHint;

    fn default_config() -> EnvironmentConfig {
        Policy::builtin_default().environment
    }

    fn facts(env: &[(&str, &str)]) -> Facts {
        Facts {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Facts::default()
        }
    }

    fn detect(env: &[(&str, &str)]) -> Detection {
        classify(&facts(env), &default_config())
    }

    fn evidence<'a>(d: &'a Detection, source: &str) -> &'a Evidence {
        match d.evidence.iter().find(|e| e.source == source) {
            Some(e) => e,
            None => panic!("no evidence for {source} in {:#?}", d.evidence),
        }
    }

    #[test]
    fn every_convention_alone_decides() {
        // (variable, value, environment, tier)
        let table: &[(&str, &str, &str, Tier)] = &[
            ("PRODGUARD_ENV", "staging", "staging", Tier::Staging),
            ("APP_ENV", "production", "production", Tier::Production),
            ("RAILS_ENV", "development", "development", Tier::Development),
            ("RACK_ENV", "test", "test", Tier::Test),
            ("WP_ENVIRONMENT_TYPE", "local", "local", Tier::Local),
            (
                "ASPNETCORE_ENVIRONMENT",
                "Staging",
                "staging",
                Tier::Staging,
            ),
            (
                "DOTNET_ENVIRONMENT",
                "Production",
                "production",
                Tier::Production,
            ),
            ("MIX_ENV", "dev", "dev", Tier::Development),
            ("SPRING_PROFILES_ACTIVE", "prod", "prod", Tier::Production),
            ("DEPLOYMENT_ENVIRONMENT", "stg", "stg", Tier::Staging),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=api,deployment.environment=live",
                "live",
                Tier::Production,
            ),
            ("ENVIRONMENT", "uat", "uat", Tier::Staging),
            ("NODE_ENV", "production", "production", Tier::Production),
        ];
        for &(var, value, environment, tier) in table {
            let d = detect(&[(var, value)]);
            assert_eq!(d.environment, environment, "{var}={value}");
            assert_eq!(d.tier, tier, "{var}={value}");
            assert_eq!(d.decided_by, format!("env:{var}"), "{var}={value}");
            assert_eq!(d.protected, tier == Tier::Production, "{var}={value}");
            assert!(d.conflicts.is_empty(), "{var}={value}");
            assert!(d.hint.is_none(), "{var}={value}");
            let e = evidence(&d, &format!("env:{var}"));
            assert!(e.used, "{var}={value}");
            assert_eq!(e.value.as_deref(), Some(value));
            assert_eq!(e.tier, Some(tier));
            let expected_strength = if var == "NODE_ENV" {
                Strength::Hint
            } else {
                Strength::Declared
            };
            assert_eq!(e.strength, expected_strength, "{var}");
        }
    }

    #[test]
    fn every_convention_is_looked_at_in_precedence_order() {
        let d = detect(&[]);
        let sources: Vec<&str> = d.evidence.iter().map(|e| &*e.source).collect();
        let mut expected = vec![
            "explicit".to_string(),
            "env:PRODGUARD_ENV".to_string(),
            "file:/etc/prodguard/environment".to_string(),
        ];
        expected.extend(CONVENTION_NAMES.iter().map(|v| format!("env:{v}")));
        expected.push("env:NODE_ENV".to_string());
        expected.extend(CI_NAMES.iter().map(|v| format!("env:{v}")));
        expected.push("env:KUBERNETES_SERVICE_HOST".to_string());
        expected.push("hostname".to_string());
        assert_eq!(sources, expected);
    }

    #[test]
    fn built_in_aliases_map_to_their_tiers() {
        let table: &[(&str, Tier)] = &[
            ("production", Tier::Production),
            ("prod", Tier::Production),
            ("prd", Tier::Production),
            ("live", Tier::Production),
            ("staging", Tier::Staging),
            ("stage", Tier::Staging),
            ("stg", Tier::Staging),
            ("preprod", Tier::Staging),
            ("pre-prod", Tier::Staging),
            ("preproduction", Tier::Staging),
            ("uat", Tier::Staging),
            ("development", Tier::Development),
            ("dev", Tier::Development),
            ("develop", Tier::Development),
            ("test", Tier::Test),
            ("testing", Tier::Test),
            ("tests", Tier::Test),
            ("local", Tier::Local),
            ("localhost", Tier::Local),
        ];
        for &(name, tier) in table {
            let d = detect(&[("PRODGUARD_ENV", name)]);
            assert_eq!(d.tier, tier, "{name}");
            assert_eq!(d.environment, name, "the environment keeps its own name");
            let e = evidence(&d, "env:PRODGUARD_ENV");
            if name == tier.as_str() {
                assert_eq!(e.meaning, format!("PRODGUARD_ENV={name} declares {tier}"));
            } else {
                assert_eq!(
                    e.meaning,
                    format!("PRODGUARD_ENV={name} declares {name}, a built-in name for {tier}")
                );
            }
        }
    }

    #[test]
    fn meaning_reads_as_a_sentence() {
        let d = detect(&[("APP_ENV", "production")]);
        assert_eq!(
            evidence(&d, "env:APP_ENV").meaning,
            "APP_ENV=production declares production"
        );
        let d = detect(&[("NODE_ENV", "development")]);
        assert_eq!(
            evidence(&d, "env:NODE_ENV").meaning,
            "NODE_ENV=development hints at development"
        );
    }

    #[test]
    fn values_are_trimmed_and_case_folded() {
        let d = detect(&[("APP_ENV", "  PRODUCTION\n")]);
        assert_eq!(d.environment, "production");
        assert_eq!(d.tier, Tier::Production);
        let e = evidence(&d, "env:APP_ENV");
        assert_eq!(e.value.as_deref(), Some("  PRODUCTION\n"), "raw value kept");
        assert_eq!(e.environment.as_deref(), Some("production"));

        let d = detect(&[("RAILS_ENV", "\tStg ")]);
        assert_eq!((d.environment.as_str(), d.tier), ("stg", Tier::Staging));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let d = detect(&[("PRODGUARD_ENV", "   "), ("APP_ENV", "development")]);
        assert_eq!(d.decided_by, "env:APP_ENV");
        assert_eq!(d.tier, Tier::Development);
        let e = evidence(&d, "env:PRODGUARD_ENV");
        assert!(!e.used);
        assert_eq!(e.tier, None);
        assert_eq!(e.value.as_deref(), Some("   "));
        assert_eq!(e.meaning, "empty: treated as unset");

        let d = detect(&[("APP_ENV", ""), ("NODE_ENV", "")]);
        assert_eq!(d.decided_by, "default");
        assert_eq!(d.tier, Tier::Unknown);

        let f = Facts {
            explicit: Some(" ".into()),
            ..Facts::default()
        };
        let d = classify(&f, &default_config());
        assert_eq!(d.decided_by, "default");
        assert_eq!(evidence(&d, "explicit").meaning, "empty: treated as unset");
    }

    #[test]
    fn the_public_variable_lists_come_from_the_signal_table() {
        assert_eq!(conventions().collect::<Vec<_>>(), CONVENTION_NAMES);
        assert_eq!(ci_variables().collect::<Vec<_>>(), CI_NAMES);
        for signal in SIGNALS {
            if let Signal::Env(s) = signal {
                assert_eq!(s.source, format!("env:{}", s.var));
            }
        }
    }

    #[test]
    fn unset_signals_are_recorded_as_evidence() {
        let d = detect(&[("APP_ENV", "staging")]);
        let e = evidence(&d, "env:RAILS_ENV");
        assert_eq!(e.value, None);
        assert_eq!(e.meaning, "not set");
        assert!(!e.used);
        assert_eq!(evidence(&d, "explicit").meaning, "not set");
        assert_eq!(evidence(&d, "env:GITHUB_ACTIONS").meaning, "not set");
        assert_eq!(evidence(&d, "hostname").meaning, "not set");
        assert_eq!(
            evidence(&d, "file:/etc/prodguard/environment").meaning,
            "not present"
        );
        let used: Vec<&str> = d
            .evidence
            .iter()
            .filter(|e| e.used)
            .map(|e| &*e.source)
            .collect();
        assert_eq!(used, ["env:APP_ENV"]);
        assert_eq!(
            d.evidence.len(),
            3 + CONVENTION_NAMES.len() + 1 + CI_NAMES.len() + 2
        );
    }

    #[test]
    fn spring_profiles_use_the_most_sensitive_mapped_profile() {
        let table: &[(&str, &str, Tier)] = &[
            ("prod", "prod", Tier::Production),
            ("metrics, prod ,swagger", "prod", Tier::Production),
            ("dev,staging", "staging", Tier::Staging),
            ("staging,dev", "staging", Tier::Staging),
            ("local,test", "test", Tier::Test),
            ("LIVE,dev", "live", Tier::Production),
            ("metrics,swagger", "metrics,swagger", Tier::Unknown),
            ("kafka", "kafka", Tier::Unknown),
        ];
        for &(value, environment, tier) in table {
            let d = detect(&[("SPRING_PROFILES_ACTIVE", value)]);
            assert_eq!(d.environment, environment, "{value}");
            assert_eq!(d.tier, tier, "{value}");
            assert_eq!(d.decided_by, "env:SPRING_PROFILES_ACTIVE", "{value}");
            assert!(
                d.conflicts.is_empty(),
                "a profile list is one signal: {value}"
            );
        }
        let d = detect(&[("SPRING_PROFILES_ACTIVE", "metrics,swagger")]);
        assert!(d.protected);
        assert!(
            evidence(&d, "env:SPRING_PROFILES_ACTIVE")
                .meaning
                .contains("[environment] aliases")
        );
        let d = detect(&[("SPRING_PROFILES_ACTIVE", " , ,")]);
        assert_eq!(d.decided_by, "default");
        assert_eq!(
            evidence(&d, "env:SPRING_PROFILES_ACTIVE").meaning,
            "empty: treated as unset"
        );
    }

    #[test]
    fn otel_resource_attributes_are_parsed() {
        let table: &[(&str, Option<(&str, Tier)>)] = &[
            (
                "deployment.environment=production",
                Some(("production", Tier::Production)),
            ),
            (
                "service.name=api, deployment.environment.name = staging ,host.name=x",
                Some(("staging", Tier::Staging)),
            ),
            // Both keys agreeing: `.name` names it, wherever it stands.
            (
                "deployment.environment=production,deployment.environment.name=prod",
                Some(("prod", Tier::Production)),
            ),
            // Percent-encoded values are decoded.
            (
                "deployment.environment.name=pre%2Dprod",
                Some(("pre-prod", Tier::Staging)),
            ),
            (
                "deployment.environment=%20Live%20",
                Some(("live", Tier::Production)),
            ),
            // An empty `.name` falls back to the older key.
            (
                "deployment.environment.name=,deployment.environment=dev",
                Some(("dev", Tier::Development)),
            ),
            ("service.name=api,host.name=web-1", None),
            ("deployment.environment.name=", None),
            ("garbage", None),
        ];
        for &(value, expected) in table {
            let d = detect(&[("OTEL_RESOURCE_ATTRIBUTES", value)]);
            match expected {
                Some((environment, tier)) => {
                    assert_eq!(d.environment, environment, "{value}");
                    assert_eq!(d.tier, tier, "{value}");
                    assert!(
                        d.decided_by.starts_with("env:OTEL_RESOURCE_ATTRIBUTES"),
                        "{value}"
                    );
                    assert!(d.conflicts.is_empty(), "{value}");
                }
                None => {
                    assert_eq!(d.decided_by, "default", "{value}");
                    let e = evidence(&d, "env:OTEL_RESOURCE_ATTRIBUTES");
                    assert_eq!(e.value.as_deref(), Some(value));
                    assert_eq!(e.tier, None);
                    assert!(!e.used);
                }
            }
        }
    }

    #[test]
    fn every_otel_declaration_is_a_signal_and_the_most_sensitive_wins() {
        const NAME: &str = "env:OTEL_RESOURCE_ATTRIBUTES[deployment.environment.name]";
        const OLD: &str = "env:OTEL_RESOURCE_ATTRIBUTES[deployment.environment]";
        let table: &[(&str, &str, &[&str], &[Tier])] = &[
            // (value, decided by, conflict's sources, their tiers)
            (
                "deployment.environment.name=development,service.name=api,\
                 deployment.environment.name=production",
                "env:OTEL_RESOURCE_ATTRIBUTES[deployment.environment.name#2]",
                &[
                    "env:OTEL_RESOURCE_ATTRIBUTES[deployment.environment.name#2]",
                    "env:OTEL_RESOURCE_ATTRIBUTES[deployment.environment.name#1]",
                ],
                &[Tier::Production, Tier::Development],
            ),
            (
                "deployment.environment=production,deployment.environment.name=development",
                OLD,
                &[OLD, NAME],
                &[Tier::Production, Tier::Development],
            ),
            (
                "deployment.environment.name=test,deployment.environment=production",
                OLD,
                &[OLD, NAME],
                &[Tier::Production, Tier::Test],
            ),
            (
                "deployment.environment=development,deployment.environment.name=prod",
                NAME,
                &[NAME, OLD],
                &[Tier::Production, Tier::Development],
            ),
        ];
        for &(value, decided_by, sources, tiers) in table {
            let d = detect(&[("OTEL_RESOURCE_ATTRIBUTES", value)]);
            assert_eq!(d.tier, Tier::Production, "{value}");
            assert!(d.protected, "{value}");
            assert_eq!(d.decided_by, decided_by, "{value}");
            assert_eq!(
                d.conflicts,
                vec![Conflict {
                    sources: sources.iter().map(|s| (*s).to_owned()).collect(),
                    tiers: tiers.to_vec(),
                    resolved: Tier::Production,
                }],
                "{value}"
            );
            for source in sources {
                let e = evidence(&d, source);
                assert!(e.used, "{source}");
                assert_eq!(e.value.as_deref(), Some(value));
            }
        }
        // As with separate variables: a declaration elsewhere that is more
        // sensitive still wins, and one that agrees makes no conflict.
        let d = detect(&[
            ("APP_ENV", "production"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=dev,deployment.environment.name=staging",
            ),
        ]);
        assert_eq!(
            (d.tier, d.decided_by.as_str()),
            (Tier::Production, "env:APP_ENV")
        );
        assert_eq!(d.conflicts[0].sources.len(), 3);
        let d = detect(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=staging,deployment.environment=stg",
        )]);
        assert_eq!((d.environment.as_str(), d.tier), ("staging", Tier::Staging));
        assert!(d.conflicts.is_empty());
    }

    #[test]
    fn outside_text_in_meanings_is_escaped() {
        let d = detect(&[
            ("PRODGUARD_ENV", "\u{1b}[31mprod\r\nx"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=%1b%0d%0adev%E2%80%AE",
            ),
        ]);
        for e in d.evidence.iter().filter(|e| e.value.is_some()) {
            assert!(
                !e.meaning
                    .chars()
                    .any(|c| c.is_control() || crate::text::is_invisible(c)),
                "{:?}",
                e.meaning
            );
        }
        let e = evidence(&d, "env:PRODGUARD_ENV");
        assert!(
            e.meaning
                .starts_with("PRODGUARD_ENV=\\u{1b}[31mprod\\r\\nx declares"),
            "{}",
            e.meaning
        );
        // The name itself is kept as it was: it is data, shown escaped.
        assert_eq!(d.environment, "\u{1b}[31mprod\r\nx");
    }

    #[test]
    fn percent_decoding_handles_malformed_escapes() {
        assert_eq!(percent_decode("a%2Cb"), "a,b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9t%C3%A9"), "été");
    }

    #[test]
    fn marker_file_first_meaningful_line_declares() {
        let config = default_config();
        let path = crate::trust::system_path("environment");
        let source = format!("file:{path}");
        let table: &[(&str, Option<(&str, Tier)>)] = &[
            ("production\n", Some(("production", Tier::Production))),
            (
                "# managed by ansible\n\n   \n  Staging  \nproduction\n",
                Some(("staging", Tier::Staging)),
            ),
            (
                "\r\n# comment\r\nprod-eu\r\n",
                Some(("prod-eu", Tier::Unknown)),
            ),
            ("", None),
            ("# only a comment\n\n", None),
        ];
        for &(content, expected) in table {
            let mut f = Facts::default();
            f.files.insert(path.clone(), content.to_string());
            let d = classify(&f, &config);
            match expected {
                Some((environment, tier)) => {
                    assert_eq!(d.environment, environment, "{content:?}");
                    assert_eq!(d.tier, tier, "{content:?}");
                    assert_eq!(d.decided_by, source, "{content:?}");
                }
                None => {
                    assert_eq!(d.decided_by, "default", "{content:?}");
                    assert!(
                        evidence(&d, &source)
                            .meaning
                            .starts_with("empty: treated as unset"),
                        "{content:?}"
                    );
                }
            }
        }
        // A file elsewhere is not the marker file.
        let mut f = Facts::default();
        f.files
            .insert("/etc/other".to_string(), "production".to_string());
        let d = classify(&f, &config);
        assert_eq!(d.decided_by, "default");
        let e = evidence(&d, &source);
        assert_eq!(e.value, None);
        assert_eq!(e.meaning, "not present");
    }

    #[test]
    fn a_policy_marker_adds_to_the_system_marker_and_never_replaces_it() {
        let mut config = default_config();
        config.marker_file = "/srv/app/ENVIRONMENT".into();
        let mut f = Facts::default();
        f.files.insert("/srv/app/ENVIRONMENT".into(), "dev".into());
        let d = classify(&f, &config);
        assert_eq!(d.decided_by, "file:/srv/app/ENVIRONMENT");
        assert_eq!(d.tier, Tier::Development);

        // Moving `marker_file` does not stop the system marker counting.
        f.files
            .insert("/etc/prodguard/environment".into(), "production".into());
        let d = classify(&f, &config);
        assert_eq!(d.decided_by, "file:/etc/prodguard/environment");
        assert_eq!(d.tier, Tier::Production);
        assert_eq!(d.conflicts.len(), 1);

        let d = classify(&Facts::default(), &config);
        assert_eq!(
            d.hint.as_deref(),
            Some(
                "nothing declares the environment: set PRODGUARD_ENV (e.g. PRODGUARD_ENV=development) or write the name to /etc/prodguard/environment"
            )
        );
    }

    #[test]
    fn explicit_beats_all_when_agreeing() {
        let mut f = facts(&[
            ("PRODGUARD_ENV", "production"),
            ("APP_ENV", "prod"),
            ("RAILS_ENV", "live"),
        ]);
        f.explicit = Some("PRD".into());
        f.files
            .insert("/etc/prodguard/environment".into(), "production".into());
        let d = classify(&f, &default_config());
        assert_eq!(d.decided_by, "explicit");
        assert_eq!(d.environment, "prd");
        assert_eq!(d.tier, Tier::Production);
        assert!(d.conflicts.is_empty());
        assert_eq!(evidence(&d, "explicit").strength, Strength::Explicit);
        assert!(
            d.evidence
                .iter()
                .filter(|e| e.tier.is_some())
                .all(|e| e.used)
        );
    }

    #[test]
    fn precedence_picks_the_name_when_declarations_agree() {
        let d = detect(&[("PRODGUARD_ENV", "prod"), ("APP_ENV", "production")]);
        assert_eq!(d.decided_by, "env:PRODGUARD_ENV");
        assert_eq!(d.environment, "prod");
        assert!(d.conflicts.is_empty());

        let d = detect(&[("ENVIRONMENT", "dev"), ("RACK_ENV", "development")]);
        assert_eq!(d.decided_by, "env:RACK_ENV");
        assert_eq!(d.environment, "development");
        assert!(d.conflicts.is_empty());
    }

    #[test]
    fn conflicting_declarations_fail_safe() {
        let d = detect(&[("PRODGUARD_ENV", "development"), ("APP_ENV", "production")]);
        assert_eq!(d.tier, Tier::Production);
        assert_eq!(d.environment, "production");
        assert_eq!(d.decided_by, "env:APP_ENV");
        assert!(d.protected);
        assert_eq!(
            d.conflicts,
            vec![Conflict {
                sources: vec!["env:APP_ENV".into(), "env:PRODGUARD_ENV".into()],
                tiers: vec![Tier::Production, Tier::Development],
                resolved: Tier::Production,
            }]
        );
        assert!(evidence(&d, "env:PRODGUARD_ENV").used);
        assert!(
            evidence(&d, "env:PRODGUARD_ENV")
                .meaning
                .contains("overruled")
        );

        // Explicit is a declaration too: it cannot downgrade a production declaration.
        let mut f = facts(&[("RAILS_ENV", "production")]);
        f.explicit = Some("test".into());
        let d = classify(&f, &default_config());
        assert_eq!(d.tier, Tier::Production);
        assert_eq!(d.decided_by, "env:RAILS_ENV");
        assert_eq!(d.conflicts.len(), 1);

        // Three-way: listed most sensitive first; the winner's name is the highest-precedence one.
        let d = detect(&[
            ("PRODGUARD_ENV", "staging"),
            ("APP_ENV", "dev"),
            ("RAILS_ENV", "stg"),
            ("ENVIRONMENT", "local"),
        ]);
        assert_eq!(d.tier, Tier::Staging);
        assert_eq!(d.environment, "staging");
        assert_eq!(d.decided_by, "env:PRODGUARD_ENV");
        assert_eq!(
            d.conflicts.first().map(|c| c.tiers.clone()),
            Some(vec![
                Tier::Staging,
                Tier::Staging,
                Tier::Development,
                Tier::Local
            ])
        );
        assert_eq!(
            d.conflicts.first().map(|c| c.sources.clone()),
            Some(vec![
                "env:PRODGUARD_ENV".to_string(),
                "env:RAILS_ENV".to_string(),
                "env:APP_ENV".to_string(),
                "env:ENVIRONMENT".to_string(),
            ])
        );
    }

    #[test]
    fn hints_decide_only_when_nothing_is_declared() {
        let d = detect(&[("NODE_ENV", "production")]);
        assert_eq!(
            (d.environment.as_str(), d.tier, d.decided_by.as_str()),
            ("production", Tier::Production, "env:NODE_ENV")
        );
        assert!(d.hint.is_none());

        let d = detect(&[("NODE_ENV", "development"), ("APP_ENV", "production")]);
        assert_eq!(d.tier, Tier::Production);
        assert_eq!(d.decided_by, "env:APP_ENV");
        assert!(
            d.conflicts.is_empty(),
            "hints never conflict with declarations"
        );
        let node = evidence(&d, "env:NODE_ENV");
        assert!(!node.used);
        assert!(node.meaning.ends_with("ignored: a declaration decides"));

        // A declaration decides even when a hint is more sensitive.
        let d = detect(&[
            ("APP_ENV", "staging"),
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
        ]);
        assert_eq!(d.tier, Tier::Staging);
        assert!(!d.protected, "staging is not protected by default");
        let k8s = evidence(&d, "env:KUBERNETES_SERVICE_HOST");
        assert!(!k8s.used);
        assert!(k8s.meaning.ends_with("ignored: a declaration decides"));
    }

    #[test]
    fn ci_never_lowers_protection() {
        // A deploy job runs in CI: being in CI says nothing about the target.
        let d = detect(&[("CI", "true")]);
        assert_eq!((d.tier, d.decided_by.as_str()), (Tier::Unknown, "default"));
        assert!(d.protected);
        let ci = evidence(&d, "env:CI");
        assert_eq!((ci.tier, ci.used), (None, false));
        assert!(
            ci.meaning.contains("does not lower protection"),
            "{}",
            ci.meaning
        );
        for var in ci_variables() {
            let d = detect(&[(var, "1")]);
            assert!(d.protected, "{var}");
            assert_eq!(
                evidence(&d, &format!("env:{var}")).value.as_deref(),
                Some("1")
            );
        }
        // A test suite declares itself.
        let d = detect(&[("CI", "true"), ("PRODGUARD_ENV", "test")]);
        assert_eq!((d.tier, d.protected), (Tier::Test, false));
        for falsy in ["false", "0", "FALSE", " "] {
            let d = detect(&[("CI", falsy)]);
            assert_eq!(d.decided_by, "default", "CI={falsy:?}");
            assert_eq!(evidence(&d, "env:CI").tier, None);
        }
    }

    #[test]
    fn kubernetes_hints_at_production() {
        let d = detect(&[("KUBERNETES_SERVICE_HOST", "10.96.0.1")]);
        assert_eq!(
            (d.environment.as_str(), d.tier, d.decided_by.as_str()),
            (
                "kubernetes",
                Tier::Production,
                "env:KUBERNETES_SERVICE_HOST"
            )
        );
        assert!(d.protected);
        assert_eq!(
            evidence(&d, "env:KUBERNETES_SERVICE_HOST").meaning,
            "running in a Kubernetes cluster with no declared environment: treated as production"
        );
    }

    #[test]
    fn conflicting_hints_fail_safe() {
        let mut config = default_config();
        config.hostnames = vec![HostnameHint {
            pattern: "build-*".into(),
            tier: Tier::Test,
        }];
        let facts = Facts {
            env: [("KUBERNETES_SERVICE_HOST".to_owned(), "10.96.0.1".to_owned())].into(),
            hostname: Some("build-7".into()),
            ..Facts::default()
        };
        let d = classify(&facts, &config);
        assert_eq!(d.tier, Tier::Production);
        assert_eq!(d.environment, "kubernetes");
        assert_eq!(d.decided_by, "env:KUBERNETES_SERVICE_HOST");
        assert_eq!(
            d.conflicts,
            vec![Conflict {
                sources: vec!["env:KUBERNETES_SERVICE_HOST".into(), "hostname".into()],
                tiers: vec![Tier::Production, Tier::Test],
                resolved: Tier::Production,
            }]
        );
    }

    #[test]
    fn hostname_patterns_hint() {
        let mut config = default_config();
        config.hostnames = vec![
            HostnameHint {
                pattern: "*-prod-*".into(),
                tier: Tier::Production,
            },
            HostnameHint {
                pattern: "stg-??".into(),
                tier: Tier::Staging,
            },
        ];
        let table: &[(&str, Option<Tier>)] = &[
            ("web-prod-1", Some(Tier::Production)),
            ("WEB-PROD-EU-3", Some(Tier::Production)),
            ("stg-01", Some(Tier::Staging)),
            ("stg-001", None),
            ("web-dev-1", None),
            ("prod-1", None),
        ];
        for &(host, tier) in table {
            let f = Facts {
                hostname: Some(host.into()),
                ..Facts::default()
            };
            let d = classify(&f, &config);
            match tier {
                Some(tier) => {
                    assert_eq!(d.tier, tier, "{host}");
                    assert_eq!(d.decided_by, "hostname", "{host}");
                    assert_eq!(d.environment, tier.as_str(), "{host}");
                }
                None => {
                    assert_eq!(d.decided_by, "default", "{host}");
                    assert!(!evidence(&d, "hostname").used);
                }
            }
        }
        // Without patterns the host name hints at nothing.
        let f = Facts {
            hostname: Some("web-prod-1".into()),
            ..Facts::default()
        };
        assert_eq!(classify(&f, &default_config()).decided_by, "default");
    }

    #[test]
    fn glob_matching() {
        let table: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("a*b", "ab", true),
            ("a*b", "axxb", true),
            ("a*b", "axxbc", false),
            ("a*b*c", "abxbyc", true),
            ("?", "", false),
            ("??", "ab", true),
            ("*.example.com", "db.EXAMPLE.com", true),
            ("*.example.com", "example.com", false),
            ("**x", "aax", true),
            ("*prod*", "preprod", true),
            ("Web-*", "web-1", true),
        ];
        for &(pattern, text, expected) in table {
            assert_eq!(
                glob_matches_ci(pattern, text),
                expected,
                "{pattern} vs {text}"
            );
        }
    }

    #[test]
    fn policy_aliases_map_names() {
        let mut config = default_config();
        config.aliases.insert("prod-eu".into(), Tier::Production);
        config.aliases.insert("qa".into(), Tier::Test);
        let d = classify(&facts(&[("APP_ENV", "Prod-EU")]), &config);
        assert_eq!(d.environment, "prod-eu");
        assert_eq!(d.tier, Tier::Production);
        assert!(d.protected);
        assert!(
            evidence(&d, "env:APP_ENV")
                .meaning
                .contains("aliases map to production")
        );

        // Policy aliases come before the built-in names, in profile lists too.
        config.aliases.insert("live".into(), Tier::Staging);
        let d = classify(&facts(&[("PRODGUARD_ENV", "live")]), &config);
        assert_eq!(d.tier, Tier::Staging);
        let d = classify(&facts(&[("SPRING_PROFILES_ACTIVE", "qa,metrics")]), &config);
        assert_eq!((d.environment.as_str(), d.tier), ("qa", Tier::Test));

        assert_eq!(resolve_name(" PROD-EU ", &config), Some(Tier::Production));
        assert_eq!(resolve_name("prd", &config), Some(Tier::Production));
        assert_eq!(resolve_name("banana", &config), None);
    }

    #[test]
    fn nothing_at_all_is_unknown_and_protected() {
        let d = classify(&Facts::default(), &default_config());
        assert_eq!(d.environment, "unknown");
        assert_eq!(d.tier, Tier::Unknown);
        assert!(d.protected);
        assert_eq!(d.decided_by, "default");
        assert!(d.conflicts.is_empty());
        assert!(d.evidence.iter().all(|e| !e.used));
        assert_eq!(
            d.hint.as_deref(),
            Some(
                "nothing declares the environment: set PRODGUARD_ENV (e.g. PRODGUARD_ENV=development) or write the name to /etc/prodguard/environment"
            )
        );
    }

    #[test]
    fn policy_may_map_unknown_to_a_tier() {
        let mut config = default_config();
        config.unknown = UnknownEnvironment::Tier(Tier::Development);
        let d = classify(&Facts::default(), &config);
        assert_eq!(d.environment, "development");
        assert_eq!(d.tier, Tier::Development);
        assert!(!d.protected);
        assert_eq!(d.decided_by, "policy:environment.unknown");
        assert!(d.hint.is_some());

        // Only when nothing speaks: a declaration still decides.
        let d = classify(&facts(&[("APP_ENV", "production")]), &config);
        assert_eq!(d.tier, Tier::Production);
        assert!(d.hint.is_none());
    }

    #[test]
    fn unmapped_declared_name_is_unknown_and_protected() {
        let d = detect(&[("APP_ENV", "banana")]);
        assert_eq!(d.environment, "banana");
        assert_eq!(d.tier, Tier::Unknown);
        assert!(d.protected);
        assert_eq!(d.decided_by, "env:APP_ENV");
        assert!(d.hint.is_none());
        let e = evidence(&d, "env:APP_ENV");
        assert!(e.meaning.contains("[environment] aliases"), "{}", e.meaning);
        assert_eq!(e.tier, Some(Tier::Unknown));

        // An unmapped name outranks a non-production declaration…
        let d = detect(&[("PRODGUARD_ENV", "development"), ("APP_ENV", "banana")]);
        assert_eq!((d.environment.as_str(), d.tier), ("banana", Tier::Unknown));
        assert_eq!(d.conflicts.len(), 1);
        // …and yields to a production one.
        let d = detect(&[("PRODGUARD_ENV", "banana"), ("APP_ENV", "production")]);
        assert_eq!(d.tier, Tier::Production);
    }

    #[test]
    fn detection_serialises_for_the_faces() {
        let d = detect(&[("APP_ENV", "production")]);
        let json = serde_json::to_value(&d).unwrap_or_default();
        assert_eq!(json["environment"], "production");
        assert_eq!(json["tier"], "production");
        assert_eq!(json["protected"], true);
        assert_eq!(json["decided_by"], "env:APP_ENV");
        assert!(json["evidence"].is_array());
        assert!(json["conflicts"].is_array());
        assert!(json.get("hint").is_none());
        let back: Detection = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, d);
    }

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        facts: Facts,
        expect: Expect,
    }

    #[derive(Deserialize)]
    struct Expect {
        environment: String,
        tier: Tier,
        protected: bool,
        decided_by: String,
        conflicts: usize,
    }

    #[test]
    fn shared_vectors() {
        let vectors: Vec<Vector> =
            serde_json::from_str(include_str!("../../../tests/vectors/detection.json"))
                .unwrap_or_else(|e| panic!("tests/vectors/detection.json: {e}"));
        assert!(vectors.len() >= 20, "{} vectors", vectors.len());
        let config = Policy::builtin_default().environment;
        for v in &vectors {
            let d = classify(&v.facts, &config);
            let got = (
                d.environment.as_str(),
                d.tier,
                d.protected,
                d.decided_by.as_str(),
                d.conflicts.len(),
            );
            let want = (
                v.expect.environment.as_str(),
                v.expect.tier,
                v.expect.protected,
                v.expect.decided_by.as_str(),
                v.expect.conflicts,
            );
            assert_eq!(got, want, "vector {:?}", v.name);
        }
    }
}
