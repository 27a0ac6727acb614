//! What an AI agent's hook answers for the commands it is about to run:
//! silence, ask a person, deny, or block what cannot be analysed.
//!
//! The faces (`prodguard hook claude-code`, …) read the agent's protocol,
//! recognise the commands (see `shell`), read target stamps, and translate
//! the [`HookDecision`] back; every rule lives here. A command's tier is
//! the most sensitive of the process's own (an agent on a production host
//! protects everything), its targets' stamps and the policy's `[targets]`
//! entries; its kind is then decided by the policy's rules in that tier, as
//! any guarded operation is.

use serde::Serialize;

mod agents;
pub use agents::{Agent, HookReply, HookSettings, ShellCall};

use crate::Tier;
use crate::audit::{Actor, AuditEvent, DecisionRecord, EventKind, OperationRecord};
use crate::detect::Detection;
use crate::policy::{Policy, Requirement};
use crate::session::{Stamp, StampError};
use crate::text::{escape, shell_word};

/// One recognised command, as the hook decides it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookCommand {
    /// Its operation kind (`db.delete.all`, `infra.destroy`, …).
    pub kind: String,
    /// The command as written, for messages.
    pub part: String,
    /// The normalised targets it acts on.
    pub targets: Vec<String>,
}

/// What the hook answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HookVerdict {
    /// Nothing to say: the agent's own permission flow goes on.
    Silent,
    /// A person confirms it in the agent's UI.
    Ask,
    /// Refused.
    Deny,
    /// The command could not be analysed: it is blocked (fail closed).
    Block,
}

/// The hook's answer, with the reason for people and each command's part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HookDecision {
    /// The answer for the whole tool call: the strongest of its commands'.
    pub verdict: HookVerdict,
    /// Why, for the person (ask) or the agent (deny, block); empty when silent.
    pub reason: String,
    /// Each command that asks or denies, decided.
    pub commands: Vec<DecidedCommand>,
}

/// One command's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DecidedCommand {
    /// The command.
    pub command: HookCommand,
    /// Ask or deny (silent commands are not listed).
    pub verdict: HookVerdict,
    /// The tier it was decided in.
    pub tier: Tier,
    /// What made it that tier.
    pub because: String,
    /// The rule that decided.
    pub rule: Option<String>,
    /// What that tier's rules require of it.
    pub requirements: Vec<Requirement>,
    /// Why, for people.
    pub reason: String,
}

/// The most of an agent's command a record keeps.
const RECORDED_COMMAND_CHARS: usize = 4096;

impl HookDecision {
    /// The audit records of this answer, each under `attempt_id`: a
    /// refusal per denied command, a note per command a person is asked
    /// about, a refusal for a blocked call (with the start of `command`);
    /// none when silent.
    pub fn records(
        &self,
        policy: &Policy,
        actor: &Actor,
        attempt_id: &str,
        command: &str,
    ) -> Vec<AuditEvent> {
        let base = |kind: EventKind| AuditEvent {
            attempt_id: Some(attempt_id.to_owned()),
            actor: Some(actor.clone()),
            ..AuditEvent::new(kind)
        };
        if self.verdict == HookVerdict::Block {
            let mut event = base(EventKind::Refusal);
            event.decision = Some(DecisionRecord {
                result: "blocked".into(),
                rule: None,
                requirements: Vec::new(),
                reasons: vec![self.reason.clone()],
                exit_code: Some(2),
                policy: policy.provenance().to_vec(),
            });
            event.message = Some(command.chars().take(RECORDED_COMMAND_CHARS).collect());
            return vec![event];
        }
        self.commands
            .iter()
            .map(|decided| {
                let deny = decided.verdict == HookVerdict::Deny;
                let mut event = base(if deny {
                    EventKind::Refusal
                } else {
                    EventKind::Note
                });
                event.op = Some(OperationRecord {
                    kind: decided.command.kind.clone(),
                    target: decided.command.targets.first().cloned(),
                    env: decided.tier.as_str().to_owned(),
                    tier: decided.tier,
                    decided_by: decided.because.clone(),
                    fingerprint: None,
                    batch: Vec::new(),
                });
                event.decision = Some(DecisionRecord {
                    result: if deny { "denied" } else { "asked" }.into(),
                    rule: decided.rule.clone(),
                    requirements: decided.requirements.clone(),
                    reasons: vec![decided.reason.clone()],
                    exit_code: deny.then_some(crate::ExitCode::Denied.code()),
                    policy: policy.provenance().to_vec(),
                });
                event.message = Some(
                    decided
                        .command
                        .part
                        .chars()
                        .take(RECORDED_COMMAND_CHARS)
                        .collect(),
                );
                event
            })
            .collect()
    }
}

/// The answer for a tool call whose command could not be analysed.
pub fn blocked(problem: &str) -> HookDecision {
    HookDecision {
        verdict: HookVerdict::Block,
        reason: format!(
            "prodguard cannot tell what this command does ({}), so it is blocked; run it \
             yourself, or split it into simpler commands",
            escape(problem)
        ),
        commands: Vec::new(),
    }
}

/// Decides `commands` here for `agent` (one that does not ask people gets
/// a deny where a person would be asked): `stamp` gives a target's environment stamp
/// (`Ok(None)` when it has none or the face does not read its kind of
/// target); one that cannot be read counts as an unknown environment,
/// which is protected.
///
/// ```
/// use prodguard_core::hook::{decide, Agent, HookCommand, HookVerdict};
/// use prodguard_core::{classify, Facts, Policy};
///
/// let policy = Policy::parse_toml(
///     "[targets]\n\"terraform:prod\" = \"production\"\n\
///      [[rule]]\nname = \"infra\"\noperations = [\"infra.*\"]\ntiers = [\"production\"]\n\
///      require = [\"confirm\", \"audit\"]\n",
///     "p.toml",
/// )?;
/// let laptop = classify(&Facts { explicit: Some("development".into()), ..Facts::default() }, policy.environment());
/// let destroy = |workspace: &str| HookCommand {
///     kind: "infra.destroy".into(),
///     part: "terraform destroy".into(),
///     targets: vec![format!("terraform:{workspace}")],
/// };
/// // From a developer's laptop, production's workspace is still production.
/// let claude = Agent::ClaudeCode;
/// assert_eq!(decide(&policy, &laptop, claude, &[destroy("prod")], |_| Ok(None)).verdict, HookVerdict::Ask);
/// assert_eq!(decide(&policy, &laptop, claude, &[destroy("dev")], |_| Ok(None)).verdict, HookVerdict::Silent);
/// // Codex cannot put a question to a person: what needs one is denied.
/// assert_eq!(decide(&policy, &laptop, Agent::Codex, &[destroy("prod")], |_| Ok(None)).verdict, HookVerdict::Deny);
/// # Ok::<(), prodguard_core::PolicyError>(())
/// ```
pub fn decide(
    policy: &Policy,
    detection: &Detection,
    agent: Agent,
    commands: &[HookCommand],
    stamp: impl Fn(&str) -> Result<Option<Stamp>, StampError>,
) -> HookDecision {
    let mut decided = Vec::new();
    for command in commands {
        let (tier, because) = tier_of(policy, detection, command, &stamp);
        let evaluation = policy.evaluate(tier, &command.kind);
        let (verdict, rule) = if let Some((rule, _)) = &evaluation.denied_by {
            (HookVerdict::Deny, Some(rule.clone()))
        } else if is_everyday_sql(&command.kind) {
            continue;
        } else if let Some((_, rule)) = evaluation.requirements.first() {
            let verdict = if evaluation.agent_deny || !agent.asks_people() {
                HookVerdict::Deny
            } else {
                HookVerdict::Ask
            };
            (verdict, Some(rule.clone()))
        } else {
            continue;
        };
        let mut one = DecidedCommand {
            command: command.clone(),
            verdict,
            tier,
            because,
            rule,
            requirements: evaluation.requirements.iter().map(|(r, _)| *r).collect(),
            reason: String::new(),
        };
        one.reason = reason(policy, agent, &one);
        decided.push(one);
    }
    let verdict = if decided.iter().any(|d| d.verdict == HookVerdict::Deny) {
        HookVerdict::Deny
    } else if decided.is_empty() {
        HookVerdict::Silent
    } else {
        HookVerdict::Ask
    };
    let reason = decided
        .iter()
        .map(|d| d.reason.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    HookDecision {
        verdict,
        reason,
        commands: decided,
    }
}

/// SQL that neither changes nor takes away anything already there — a
/// read, an insert, a new table, a session setting — is an agent's everyday
/// work: the hook asks nothing about it (a `deny` rule still denies it).
/// Grants, alters and maintenance are not in it: `REVOKE`, `ALTER ROLE`,
/// `CREATE OR REPLACE FUNCTION` and `VACUUM FULL` ask like the rest.
fn is_everyday_sql(kind: &str) -> bool {
    use crate::sql::SqlKind;
    matches!(
        kind.parse::<SqlKind>(),
        Ok(SqlKind::Read | SqlKind::Session | SqlKind::Insert | SqlKind::Create)
    )
}

/// The most sensitive tier among the process's own, each target's stamp
/// and each target's `[targets]` entry, and what decided it.
fn tier_of(
    policy: &Policy,
    detection: &Detection,
    command: &HookCommand,
    stamp: &impl Fn(&str) -> Result<Option<Stamp>, StampError>,
) -> (Tier, String) {
    let mut tier = detection.tier;
    let mut because = format!(
        "this host is {} (tier {}), decided by {}",
        escape(&detection.environment),
        detection.tier,
        escape(&detection.decided_by)
    );
    for target in &command.targets {
        let stamped = stamp(target).unwrap_or_else(|e| {
            Some(Stamp {
                environment: format!("unreadable ({e})"),
                tier: Tier::Unknown,
                stamped_at: None,
                stamped_by: None,
            })
        });
        if let Some(stamped) = stamped
            && stamped.tier.sensitivity() > tier.sensitivity()
        {
            tier = stamped.tier;
            because = format!(
                "`{}` is stamped {} (tier {})",
                escape(target),
                escape(&stamped.environment),
                stamped.tier
            );
        }
        if let Some(entry) = policy.target_tier(target)
            && entry.tier.sensitivity() > tier.sensitivity()
        {
            tier = entry.tier;
            because = format!(
                "`{}` matches [targets] \"{}\" = \"{}\"",
                escape(target),
                escape(&entry.pattern),
                entry.tier
            );
        }
    }
    (tier, because)
}

fn reason(policy: &Policy, agent: Agent, decided: &DecidedCommand) -> String {
    let command = &decided.command;
    let target = command.targets.first();
    let on = target
        .map(|t| format!(" on `{}`", escape(t)))
        .unwrap_or_default();
    let evaluation = policy.evaluate(decided.tier, &command.kind);
    let rule = decided.rule.as_deref().map(escape).unwrap_or_default();
    let what = match &evaluation.denied_by {
        Some((_, why)) => format!("denied by rule `{rule}`: {}", escape(why)),
        None => {
            let needs: Vec<&str> = evaluation
                .requirements
                .iter()
                .map(|(r, _)| r.as_str())
                .collect();
            let denied = if decided.verdict == HookVerdict::Ask {
                String::new()
            } else if evaluation.agent_deny {
                " and says agent = \"deny\"".into()
            } else {
                format!(
                    ", and {} cannot put a question to a person from its hook, so it is denied",
                    agent.title()
                )
            };
            format!("rule `{rule}` requires {}{denied}", needs.join(" + "))
        }
    };
    // No approval gets past a deny rule: say nothing of one there.
    let approve = match target.filter(|_| evaluation.denied_by.is_none()) {
        Some(t) => format!(
            "; to run it outside the agent, a person runs it under prodguard, or approves it: \
             prodguard approve --key FILE --op {} --target {}",
            shell_word(&command.kind),
            shell_word(t)
        ),
        None => String::new(),
    };
    format!(
        "prodguard: `{}` is {}{on}, in {} ({}): {what}{approve}",
        escape(&command.part),
        command.kind,
        decided.tier,
        decided.because,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Facts, classify};

    const CLAUDE: Agent = Agent::ClaudeCode;

    const POLICY: &str = "[targets]\n\"postgresql://*.prod.internal/*\" = \"production\"\n\
        [[rule]]\nname = \"data\"\noperations = [\"db.delete.*\", \"db.drop.*\"]\n\
        tiers = [\"production\", \"unknown\"]\nrequire = [\"confirm\", \"audit\"]\n\
        [[rule]]\nname = \"no resets\"\noperations = [\"db.reset\"]\ntiers = [\"production\"]\n\
        deny = \"resets are never run in production\"\n\
        [[rule]]\nname = \"infra\"\noperations = [\"infra.*\"]\ntiers = [\"production\"]\n\
        require = [\"confirm\"]\nagent = \"deny\"\n";

    fn here(env: &str) -> (Policy, Detection) {
        let policy = Policy::parse_toml(POLICY, "p.toml").unwrap();
        let facts = Facts {
            explicit: Some(env.into()),
            ..Facts::default()
        };
        let detection = classify(&facts, policy.environment());
        (policy, detection)
    }

    fn command(kind: &str, target: &str) -> HookCommand {
        HookCommand {
            kind: kind.into(),
            part: format!("{kind} {target}"),
            targets: vec![target.into()],
        }
    }

    #[test]
    fn a_target_is_as_protected_as_its_host_its_stamp_or_its_targets_entry() {
        let (policy, laptop) = here("development");
        let none = |_: &str| Ok(None);
        let prod_db = command("db.delete.all", "postgresql://app@db1.prod.internal/shop");
        let local_db = command("db.delete.all", "postgresql://localhost/shop");
        assert_eq!(
            decide(
                &policy,
                &laptop,
                CLAUDE,
                std::slice::from_ref(&prod_db),
                none
            )
            .verdict,
            HookVerdict::Ask
        );
        assert_eq!(
            decide(
                &policy,
                &laptop,
                CLAUDE,
                std::slice::from_ref(&local_db),
                none
            )
            .verdict,
            HookVerdict::Silent
        );
        // A stamp raises it; nothing lowers it.
        let stamped = |_: &str| {
            Ok(Some(Stamp {
                environment: "production".into(),
                tier: Tier::Production,
                stamped_at: None,
                stamped_by: None,
            }))
        };
        let answer = decide(
            &policy,
            &laptop,
            CLAUDE,
            std::slice::from_ref(&local_db),
            stamped,
        );
        assert_eq!(answer.verdict, HookVerdict::Ask);
        assert!(
            answer.reason.contains("is stamped production"),
            "{}",
            answer.reason
        );
        let unreadable = |_: &str| Err(StampError::new("database is locked"));
        let answer = decide(
            &policy,
            &laptop,
            CLAUDE,
            std::slice::from_ref(&local_db),
            unreadable,
        );
        assert_eq!(
            answer.verdict,
            HookVerdict::Ask,
            "an unreadable stamp is unknown: protected"
        );
        assert!(
            answer.reason.contains("database is locked"),
            "{}",
            answer.reason
        );
        let (policy, prod) = here("production");
        let dev_stamp = |_: &str| {
            Ok(Some(Stamp {
                environment: "development".into(),
                tier: Tier::Development,
                stamped_at: None,
                stamped_by: None,
            }))
        };
        assert_eq!(
            decide(&policy, &prod, CLAUDE, &[local_db], dev_stamp).verdict,
            HookVerdict::Ask
        );
    }

    #[test]
    fn deny_rules_and_agent_deny_deny_and_the_strongest_answer_wins() {
        let (policy, prod) = here("production");
        let none = |_: &str| Ok(None);
        let reset = command("db.reset", "postgresql://localhost/shop");
        let destroy = command("infra.destroy", "terraform:prod");
        let delete = command("db.delete.where", "postgresql://localhost/shop");
        let read = command("db.read", "postgresql://localhost/shop");
        let answer = decide(
            &policy,
            &prod,
            CLAUDE,
            &[read.clone(), delete.clone()],
            none,
        );
        assert_eq!(answer.verdict, HookVerdict::Ask);
        assert_eq!(answer.commands.len(), 1, "the read says nothing");
        assert!(
            answer
                .reason
                .contains("rule `data` requires confirm + audit")
                && answer
                    .reason
                    .contains("prodguard approve --key FILE --op db.delete.where"),
            "{}",
            answer.reason
        );
        let answer = decide(&policy, &prod, CLAUDE, &[delete, reset.clone()], none);
        assert_eq!(answer.verdict, HookVerdict::Deny);
        assert!(
            answer.reason.contains("resets are never run in production"),
            "{}",
            answer.reason
        );
        let denied = decide(&policy, &prod, CLAUDE, &[reset], none);
        assert!(
            !denied.reason.contains("prodguard approve"),
            "no approval gets past a deny rule: {}",
            denied.reason
        );
        let answer = decide(&policy, &prod, CLAUDE, &[destroy], none);
        assert_eq!(answer.verdict, HookVerdict::Deny);
        assert!(
            answer.reason.contains("agent = \"deny\""),
            "{}",
            answer.reason
        );
        assert_eq!(
            decide(&policy, &prod, CLAUDE, &[read], none).verdict,
            HookVerdict::Silent
        );
        assert_eq!(blocked("an unterminated quote").verdict, HookVerdict::Block);
    }

    #[test]
    fn sql_that_destroys_nothing_is_silent_even_on_a_production_host() {
        let policy = Policy::builtin_default();
        let facts = Facts {
            explicit: Some("production".into()),
            ..Facts::default()
        };
        let prod = classify(&facts, policy.environment());
        let verdict = |kind: &str| {
            decide(
                &policy,
                &prod,
                CLAUDE,
                &[command(kind, "sqlite:/srv/app.db")],
                |_| Ok(None),
            )
            .verdict
        };
        for everyday in ["db.read", "db.insert", "db.create", "db.session"] {
            assert_eq!(verdict(everyday), HookVerdict::Silent, "{everyday}");
        }
        for destructive in [
            "db.delete.where",
            "db.unknown",
            "db.drop.table",
            "fs.remove.recursive",
            "shell.unknown",
        ] {
            assert_eq!(verdict(destructive), HookVerdict::Ask, "{destructive}");
        }
    }

    #[test]
    fn an_agent_that_cannot_ask_a_person_is_denied_and_told_why() {
        let (policy, prod) = here("production");
        let delete = command("db.delete.where", "postgresql://localhost/shop");
        for agent in [Agent::Codex, Agent::Gemini, Agent::Cursor] {
            let answer = decide(&policy, &prod, agent, std::slice::from_ref(&delete), |_| {
                Ok(None)
            });
            assert_eq!(answer.verdict, HookVerdict::Deny);
            assert!(
                answer.reason.contains(&format!(
                    "{} cannot put a question to a person",
                    agent.title()
                )) && answer.reason.contains("prodguard approve"),
                "{}",
                answer.reason
            );
        }
    }

    #[test]
    fn every_ask_deny_and_block_is_a_record_and_silence_is_none() {
        let (policy, prod) = here("production");
        let agent = Actor {
            user: "claude".into(),
            kind: crate::policy::ActorKind::Agent,
            account: Some("dev".into()),
        };
        let none = |_: &str| Ok(None);
        let delete = command("db.delete.where", "postgresql://localhost/shop");
        let reset = command("db.reset", "postgresql://localhost/shop");
        let records = decide(&policy, &prod, CLAUDE, &[delete, reset], none)
            .records(&policy, &agent, "a1", "…");
        let kinds: Vec<_> = records
            .iter()
            .map(|r| (r.kind, r.decision.as_ref().unwrap().result.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [(EventKind::Note, "asked"), (EventKind::Refusal, "denied")]
        );
        assert_eq!(records[1].decision.as_ref().unwrap().exit_code, Some(120));
        assert_eq!(
            records[1].op.as_ref().unwrap().target.as_deref(),
            Some("postgresql://localhost/shop")
        );
        let block = blocked("too long").records(&policy, &agent, "a2", &"x".repeat(10_000));
        assert_eq!(block[0].decision.as_ref().unwrap().result, "blocked");
        assert_eq!(
            block[0].message.as_ref().unwrap().len(),
            RECORDED_COMMAND_CHARS
        );
        let read = command("db.read", "postgresql://localhost/shop");
        assert!(
            decide(&policy, &prod, CLAUDE, &[read], none)
                .records(&policy, &agent, "a3", "")
                .is_empty()
        );
    }
}
