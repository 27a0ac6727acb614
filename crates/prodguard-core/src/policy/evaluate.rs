//! What a policy asks of one operation in one tier.

use serde::Serialize;

use super::{ActorKind, BackupSpec, ConfirmMode, Policy, Requirement, Rule, glob_matches};
use crate::Tier;

/// What the policy asks of one operation in one tier: the combined effect of
/// **every** matching rule (not the first match).
///
/// - any matching `deny` rule denies (the first one in file order is named);
/// - requirements are the union over the matching rules, each named with the
///   first rule that asked for it;
/// - the confirmation mode is the most restrictive one asked for;
/// - the allowed actors are the intersection of every restricting rule's list;
/// - the row bound is the smallest `max_rows`, and confirmation depends on
///   rows only when every rule asking for it says above how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// `(rule name, reason)` when a rule refuses the operation here.
    ///
    /// Also set when matching rules restrict `actors` to lists with nothing
    /// in common: nobody could ever act, so the operation is refused.
    pub denied_by: Option<(String, String)>,
    /// Each requirement once, with the first rule (in file order) that asks
    /// for it; sorted confirm, backup, audit.
    pub requirements: Vec<(Requirement, String)>,
    /// How a confirmation may be given, when one is required: `Typed` if any
    /// matching rule asks for typed; else `Approval` if any asks for an
    /// approval token; else `Either`. `Typed` wins over `Approval` because a
    /// person present at a terminal is the stronger evidence. `Either` when no
    /// confirmation is required.
    pub confirm_mode: ConfirmMode,
    /// The backup specification of the first matching rule that requires a backup.
    pub backup: Option<BackupSpec>,
    /// Who may act: the intersection of the non-empty `actors` lists of the
    /// matching rules, in the order human, ci, agent, service; empty when no
    /// matching rule restricts actors (anyone may act).
    pub actors: Vec<ActorKind>,
    /// The names of every matching rule, in file order.
    pub matched_rules: Vec<String>,
    /// Whether break-glass may skip the confirmation and backup here: every
    /// matching rule that requires either says `break_glass = true`.
    pub break_glass_allowed: bool,
    /// The smallest `max_rows` of the matching rules, with the first rule
    /// that set it: a SQL statement affecting more rows is refused.
    pub max_rows: Option<(u64, String)>,
    /// When every matching rule that requires a confirmation says
    /// `confirm_above_rows`, the smallest of them: the confirmation is
    /// needed only when a SQL statement affects more rows. `None`: needed
    /// whatever the rows (or not required at all).
    pub confirm_above_rows: Option<u64>,
    /// Whether a SQL statement that cannot run inside a transaction may run
    /// alone in its script: a matching rule says `outside_transaction =
    /// true`, and so does every matching rule with requirements (so a
    /// layered rule cannot lift a system rule's refusal).
    pub outside_transaction: bool,
    /// Whether a matching rule with requirements says `agent = "deny"`:
    /// the hook denies an AI agent's command rather than asking a person.
    pub agent_deny: bool,
}

impl Evaluation {
    /// Whether a rule refuses the operation.
    pub fn is_denied(&self) -> bool {
        self.denied_by.is_some()
    }

    /// Whether `requirement` applies.
    pub fn requires(&self, requirement: Requirement) -> bool {
        self.requirements.iter().any(|(r, _)| *r == requirement)
    }

    /// The rule that asked for `requirement`, if it applies.
    pub fn rule_for(&self, requirement: Requirement) -> Option<&str> {
        self.requirements
            .iter()
            .find(|(r, _)| *r == requirement)
            .map(|(_, name)| name.as_str())
    }

    /// Whether `actor` may act (always true when no rule restricts actors).
    pub fn allows_actor(&self, actor: ActorKind) -> bool {
        self.actors.is_empty() || self.actors.contains(&actor)
    }

    /// Whether no rule matched: the operation is not guarded here.
    pub fn is_unguarded(&self) -> bool {
        self.matched_rules.is_empty()
    }
}

const ACTOR_ORDER: [ActorKind; 4] = [
    ActorKind::Human,
    ActorKind::Ci,
    ActorKind::Agent,
    ActorKind::Service,
];

impl Rule {
    /// Whether this rule applies to `operation` in `tier`: any of its
    /// operation globs matches and its tier list is empty or names `tier`.
    ///
    /// An `unknown` environment is guarded like production: rules naming
    /// `production` apply to it too (a policy that wants otherwise maps
    /// unknown to a tier with `[environment] unknown`).
    pub fn matches(&self, tier: Tier, operation: &str) -> bool {
        let tier_applies = self.tiers.is_empty()
            || self.tiers.contains(&tier)
            || (tier == Tier::Unknown && self.tiers.contains(&Tier::Production));
        // Most globs of a large policy start with another literal byte:
        // settle those here, without the call.
        let first = operation.as_bytes().first();
        tier_applies
            && self.operations.iter().any(|g| {
                matches!(g.as_bytes().first(), Some(b'*' | b'?') | None)
                    || g.as_bytes().first() == first
            } && glob_matches(g, operation))
    }
}

impl Policy {
    /// What this policy asks of `operation` in `tier`. Every matching rule
    /// applies; see [`Evaluation`] for how they combine.
    ///
    /// The operation name is matched as given: check it first with
    /// [`validate_operation_name`](super::validate_operation_name).
    ///
    /// ```
    /// use prodguard_core::{Policy, Tier};
    /// use prodguard_core::policy::Requirement;
    ///
    /// let policy = Policy::builtin_default();
    /// let production = policy.evaluate(Tier::Production, "db.migrate");
    /// assert!(production.requires(Requirement::Confirm));
    /// assert!(policy.evaluate(Tier::Development, "db.migrate").is_unguarded());
    /// ```
    pub fn evaluate(&self, tier: Tier, operation: &str) -> Evaluation {
        self.evaluate_with(tier, operation, &[], true)
    }

    /// [`Policy::evaluate`] of an operation that also does the operations
    /// `also` (a SQL script's statements: every rule matching any of them
    /// applies, each once), with `matched_rules` left empty unless
    /// `name_matches` (a decision does not list them: no copies of the
    /// names it does not show).
    pub(crate) fn evaluate_with(
        &self,
        tier: Tier,
        operation: &str,
        also: &[&str],
        name_matches: bool,
    ) -> Evaluation {
        let mut evaluation = Evaluation {
            denied_by: None,
            requirements: Vec::new(),
            confirm_mode: ConfirmMode::Either,
            backup: None,
            actors: Vec::new(),
            matched_rules: Vec::new(),
            break_glass_allowed: true,
            max_rows: None,
            confirm_above_rows: None,
            outside_transaction: false,
            agent_deny: false,
        };
        // `Some` while every matching rule with requirements allows it.
        let mut outside: Option<bool> = Some(false);
        // `Some` while every rule asking for a confirmation gave a threshold.
        let mut thresholds: Option<Option<u64>> = Some(None);
        // `None` until a rule restricts actors.
        let mut allowed: Option<Vec<ActorKind>> = None;
        let mut restricting: Vec<&Rule> = Vec::new();
        let mut typed = false;
        let mut approval = false;
        let applies =
            |r: &Rule| r.matches(tier, operation) || also.iter().any(|op| r.matches(tier, op));
        for rule in self.rules.iter().filter(|r| applies(r)) {
            if name_matches {
                evaluation.matched_rules.push(rule.name.clone());
            }
            if let Some(reason) = &rule.deny
                && evaluation.denied_by.is_none()
            {
                evaluation.denied_by = Some((rule.name.clone(), reason.clone()));
            }
            for &requirement in &rule.require {
                if !evaluation.requires(requirement) {
                    evaluation
                        .requirements
                        .push((requirement, rule.name.clone()));
                }
            }
            let skippable = rule.require.contains(&Requirement::Confirm)
                || rule.require.contains(&Requirement::Backup);
            if skippable && !rule.break_glass {
                evaluation.break_glass_allowed = false;
            }
            if rule.require.contains(&Requirement::Confirm) {
                let mode = rule.confirm_mode;
                typed |= matches!(mode, ConfirmMode::Typed | ConfirmMode::Both);
                approval |= matches!(mode, ConfirmMode::Approval | ConfirmMode::Both);
                thresholds = match (thresholds, rule.confirm_above_rows) {
                    (Some(least), Some(rows)) => Some(Some(least.map_or(rows, |l| l.min(rows)))),
                    _ => None,
                };
            }
            if let Some(rows) = rule.max_rows
                && evaluation
                    .max_rows
                    .as_ref()
                    .is_none_or(|(least, _)| rows < *least)
            {
                evaluation.max_rows = Some((rows, rule.name.clone()));
            }
            evaluation.agent_deny |= rule.agent_deny && !rule.require.is_empty();
            outside = match outside {
                Some(_) if rule.outside_transaction => Some(true),
                Some(said) if rule.require.is_empty() => Some(said),
                _ => None,
            };
            if rule.require.contains(&Requirement::Backup) && evaluation.backup.is_none() {
                evaluation.backup = rule.backup.clone();
            }
            if !rule.actors.is_empty() {
                restricting.push(rule);
                allowed = Some(match allowed {
                    None => rule.actors.clone(),
                    Some(list) => list
                        .into_iter()
                        .filter(|a| rule.actors.contains(a))
                        .collect(),
                });
            }
        }
        evaluation.requirements.sort_by_key(|(r, _)| *r);
        evaluation.confirm_above_rows = thresholds.flatten();
        evaluation.outside_transaction = outside == Some(true);
        // What every matching rule asks for holds: a rule asking for a
        // token and one asking for a person typing add up to both, so no
        // rule (a layered one included) lowers another.
        evaluation.confirm_mode = if typed && approval {
            ConfirmMode::Both
        } else if approval {
            ConfirmMode::Approval
        } else if typed {
            ConfirmMode::Typed
        } else {
            ConfirmMode::Either
        };
        if let Some(allowed) = allowed {
            if allowed.is_empty() && evaluation.denied_by.is_none() {
                let lists: Vec<String> = restricting
                    .iter()
                    .map(|r| {
                        let names: Vec<String> = r
                            .actors
                            .iter()
                            .map(|a| format!("{a:?}").to_lowercase())
                            .collect();
                        format!("{} allows only {}", r.name, names.join(", "))
                    })
                    .collect();
                let name = restricting
                    .last()
                    .map_or_else(String::new, |r| r.name.clone());
                evaluation.denied_by = Some((
                    name,
                    format!(
                        "no kind of actor may run this operation: {}; make the matching rules' `actors` lists overlap",
                        lists.join("; ")
                    ),
                ));
            }
            evaluation.actors = ACTOR_ORDER
                .into_iter()
                .filter(|a| allowed.contains(a))
                .collect();
        }
        evaluation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ConfirmMode, Rule};

    #[test]
    fn a_rule_matches_exactly_the_names_its_globs_match() {
        const PIECES: &[&str] = &["", "d", "b", "db", ".", "*", "?", "db.*", "*.m", "m", "x?"];
        let mut rng = crate::test_rng::Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let globs: Vec<String> = (0..1 + rng.below(2)).map(|_| rng.text(PIECES, 3)).collect();
            let name = rng.text(PIECES, 3);
            let rule = Rule {
                name: "r".into(),
                operations: globs.clone(),
                tiers: Vec::new(),
                require: Vec::new(),
                confirm_mode: ConfirmMode::Either,
                backup: None,
                deny: None,
                actors: Vec::new(),
                break_glass: false,
                max_rows: None,
                confirm_above_rows: None,
                outside_transaction: false,
                agent_deny: false,
            };
            assert_eq!(
                rule.matches(Tier::Production, &name),
                globs.iter().any(|g| glob_matches(g, &name)),
                "{globs:?} {name:?}"
            );
        }
    }
}
