//! Environment tiers and their sensitivity order.

use serde::{Deserialize, Serialize};

/// The kind of environment a program runs in.
///
/// Each environment keeps its own name (e.g. `prod-eu`); the tier is what that
/// name means for safety. `Unknown` is an environment nobody declared (or
/// declared with a name no alias maps), which is guarded like production
/// unless the policy says otherwise.
///
/// ```
/// use prodguard_core::Tier;
/// assert_eq!(Tier::from_name("PRD"), Some(Tier::Production));
/// assert!(Tier::Production.sensitivity() > Tier::Staging.sensitivity());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Real users, live data.
    Production,
    /// A production-like environment used for final checks.
    Staging,
    /// A shared development environment.
    Development,
    /// Automated tests, CI.
    Test,
    /// A developer's own machine.
    Local,
    /// Not determined: guarded like production by default.
    Unknown,
}

impl Tier {
    /// Every tier, most sensitive first.
    pub const ALL: [Tier; 6] = [
        Tier::Production,
        Tier::Unknown,
        Tier::Staging,
        Tier::Development,
        Tier::Test,
        Tier::Local,
    ];

    /// The tier's canonical lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Production => "production",
            Tier::Staging => "staging",
            Tier::Development => "development",
            Tier::Test => "test",
            Tier::Local => "local",
            Tier::Unknown => "unknown",
        }
    }

    /// How much harm a mistake here does; conflicts resolve to the highest.
    ///
    /// `Unknown` ranks just below `Production`: a declaration nobody can map is
    /// treated as more dangerous than any named non-production tier.
    pub fn sensitivity(self) -> u8 {
        match self {
            Tier::Production => 5,
            Tier::Unknown => 4,
            Tier::Staging => 3,
            Tier::Development => 2,
            Tier::Test => 1,
            Tier::Local => 0,
        }
    }

    /// Maps a canonical tier name or a built-in alias to its tier.
    ///
    /// The input is trimmed and case-folded; returns `None` for names that
    /// are neither (a policy may still map them with `[environment] aliases`).
    pub fn from_name(name: &str) -> Option<Tier> {
        let folded = name.trim().to_ascii_lowercase();
        let tier = match folded.as_str() {
            "production" | "prod" | "prd" | "live" => Tier::Production,
            "staging" | "stage" | "stg" | "preprod" | "pre-prod" | "preproduction" | "uat" => {
                Tier::Staging
            }
            "development" | "dev" | "develop" => Tier::Development,
            "test" | "testing" | "tests" => Tier::Test,
            "local" | "localhost" => Tier::Local,
            "unknown" => Tier::Unknown,
            _ => return None,
        };
        Some(tier)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases_fold() {
        for tier in Tier::ALL {
            assert_eq!(Tier::from_name(tier.as_str()), Some(tier));
        }
        assert_eq!(Tier::from_name("  Live "), Some(Tier::Production));
        assert_eq!(Tier::from_name("STG"), Some(Tier::Staging));
        assert_eq!(Tier::from_name("prod-eu"), None);
    }

    #[test]
    fn sensitivity_is_a_strict_order() {
        let ranks: Vec<u8> = Tier::ALL.iter().map(|t| t.sensitivity()).collect();
        assert!(ranks.windows(2).all(|w| w[0] > w[1]), "{ranks:?}");
    }
}
