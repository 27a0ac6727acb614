//! Environment classification from a snapshot of facts.
//!
//! OWNED BY HELPER (detection): implement `classify` per the module docs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Tier;
use crate::policy::EnvironmentConfig;

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
    pub source: String,
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
    pub meaning: String,
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

/// Classifies the environment described by `facts` under `config`.
pub fn classify(facts: &Facts, config: &EnvironmentConfig) -> Detection {
    let _ = (facts, config);
    Detection {
        environment: "unknown".into(),
        tier: Tier::Unknown,
        protected: true,
        decided_by: "default".into(),
        evidence: Vec::new(),
        conflicts: Vec::new(),
        hint: None,
    }
}
