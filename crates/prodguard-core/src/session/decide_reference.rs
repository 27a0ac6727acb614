//! `decide` against the way it built its explanation before (kept here
//! verbatim as the reference): the same decision, every string included,
//! over a grid of policies, tiers, detections, operations and targets.

use super::*;

fn decide_before(policy: &Policy, detection: &Detection, operation: &Operation) -> Decision {
    if let Err(problem) = policy::validate_operation_name(&operation.kind) {
        return Decision {
            result: Verdict::Deny,
            rule: None,
            requirements: Vec::new(),
            exit_code: exit::POLICY_ERROR,
            reasons: vec![format!(
                "invalid operation name `{}`: {problem}",
                shorten(&operation.kind)
            )],
            confirm_mode: ConfirmMode::Either,
            backup: None,
            actors: Vec::new(),
            break_glass_allowed: false,
        };
    }
    if let Some(problem) = operation.target.as_deref().and_then(target_problem) {
        return Decision {
            result: Verdict::Deny,
            rule: None,
            requirements: Vec::new(),
            exit_code: exit::POLICY_ERROR,
            reasons: vec![format!(
                "invalid target {:?}: {problem}",
                shorten(operation.target.as_deref().unwrap_or(""))
            )],
            confirm_mode: ConfirmMode::Either,
            backup: None,
            actors: Vec::new(),
            break_glass_allowed: false,
        };
    }
    let evaluation = policy.evaluate(detection.tier, &operation.kind);
    if let Some((rule, reason)) = evaluation.denied_by {
        return Decision {
            result: Verdict::Deny,
            reasons: vec![
                format!(
                    "{} is denied here by rule `{rule}`: {reason}",
                    operation.kind
                ),
                why_protected(detection),
            ],
            rule: Some(rule),
            requirements: Vec::new(),
            exit_code: exit::DENIED,
            confirm_mode: evaluation.confirm_mode,
            backup: None,
            actors: evaluation.actors,
            break_glass_allowed: evaluation.break_glass_allowed,
        };
    }
    let confirm_object = || match &operation.target {
        Some(target) => format!("the target's name `{target}`"),
        None => format!("the environment's name `{}`", detection.environment),
    };
    let requirements: Vec<RequirementView> = evaluation
        .requirements
        .into_iter()
        .map(|(kind, rule)| {
            let how = match kind {
                Requirement::Confirm => match evaluation.confirm_mode {
                    ConfirmMode::Typed => format!("type {} at a terminal", confirm_object()),
                    ConfirmMode::Either => {
                        format!(
                            "type {} at a terminal, or {HOW_TO_APPROVE}",
                            confirm_object()
                        )
                    }
                    ConfirmMode::Approval => HOW_TO_APPROVE.to_owned(),
                },
                Requirement::Backup => {
                    "a fresh, verified backup (the guard takes it with the rule's backup command)"
                        .to_owned()
                }
                Requirement::Audit => {
                    "intent and outcome durably recorded in the audit log".to_owned()
                }
            };
            RequirementView { kind, rule, how }
        })
        .collect();
    let (result, exit_code) = if requirements.is_empty() {
        (Verdict::Allow, 0)
    } else if requirements.iter().any(|r| r.kind == Requirement::Confirm) {
        (Verdict::Require, exit::NOT_CONFIRMED)
    } else {
        (Verdict::Require, 0)
    };
    let mut reasons = Vec::new();
    if requirements.is_empty() {
        reasons.push(format!(
            "no rule guards {} in tier {}",
            operation.kind, detection.tier
        ));
    } else {
        let names: Vec<&str> = requirements.iter().map(|r| r.kind.as_str()).collect();
        reasons.push(format!(
            "{} requires {} here (rule `{}`)",
            operation.kind,
            names.join(" + "),
            requirements[0].rule
        ));
    }
    reasons.push(why_protected(detection));
    Decision {
        result,
        rule: requirements.first().map(|r| r.rule.clone()),
        requirements,
        exit_code,
        reasons,
        confirm_mode: evaluation.confirm_mode,
        backup: evaluation.backup,
        actors: evaluation.actors,
        break_glass_allowed: evaluation.break_glass_allowed,
    }
}

#[test]
fn decisions_are_those_of_the_previous_decide() {
    let policies = [
        Policy::builtin_default(),
        Policy::parse_toml(
            "[[rule]]\nname = \"audit-db\"\noperations = [\"db.*\"]\ntiers = [\"production\", \"staging\"]\n\
             require = [\"audit\"]\nactors = [\"human\", \"ci\"]\n\
             [[rule]]\noperations = [\"db.drop\"]\ndeny = \"never\"\n\
             [[rule]]\noperations = [\"db.delete.?\"]\nactors = [\"agent\"]\nrequire = [\"confirm\"]\n\
             [[rule]]\noperations = [\"*.migrate\"]\nrequire = [\"confirm\", \"backup\"]\nconfirm = { mode = \"typed\" }\n\
             backup = { command = \"pg_dump -f {path}\" }\nbreak_glass = true\n\
             [[rule]]\noperations = [\"cache.*\", \"db.mig*\"]\ntiers = [\"development\", \"unknown\"]\n\
             require = [\"audit\", \"confirm\"]\nconfirm = { mode = \"approval\" }\n\
             [[rule]]\noperations = [\"app.?x*\"]\nrequire = [\"confirm\"]\nconfirm = { mode = \"either\" }\n",
            "grid.toml",
        )
        .unwrap(),
    ];
    let tiers = [
        Tier::Production,
        Tier::Staging,
        Tier::Development,
        Tier::Test,
        Tier::Local,
        Tier::Unknown,
    ];
    let operations = [
        "db.migrate",
        "db.drop",
        "db.delete.x",
        "cache.flush",
        "cache.migrate",
        "app.xx",
        "app.ax.y",
        "other",
        "DB.Migrate",
        "",
    ];
    let targets = [None, Some("orders"), Some("ü `x`"), Some("")];
    for policy in &policies {
        for tier in tiers {
            for (decided_by, hint) in [
                ("explicit", None),
                ("default", Some("no signal")),
                ("default", None),
            ] {
                let detection = Detection {
                    environment: format!("{tier}-eu"),
                    tier,
                    protected: matches!(tier, Tier::Production | Tier::Unknown),
                    decided_by: decided_by.into(),
                    evidence: Vec::new(),
                    conflicts: Vec::new(),
                    hint: hint.map(str::to_owned),
                };
                for kind in operations {
                    for target in targets {
                        let mut operation = Operation::new(kind);
                        operation.target = target.map(str::to_owned);
                        assert_eq!(
                            decide(policy, &detection, &operation),
                            decide_before(policy, &detection, &operation),
                            "{kind} {target:?} in {tier} ({decided_by}) under {}",
                            policy.source
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn evaluation_without_names_differs_only_in_the_names() {
    let policy = Policy::parse_toml(
        "[[rule]]\noperations = [\"db.*\"]\nrequire = [\"audit\"]\n\
         [[rule]]\noperations = [\"*.migrate\"]\nrequire = [\"confirm\"]\nactors = [\"human\"]\n\
         [[rule]]\noperations = [\"db.drop\"]\ndeny = \"no\"\n",
        "names.toml",
    )
    .unwrap();
    for tier in [Tier::Production, Tier::Development] {
        for op in ["db.migrate", "db.drop", "x.migrate", "none"] {
            let full = policy.evaluate(tier, op);
            let quiet = policy.evaluate_with(tier, op, false);
            assert!(quiet.matched_rules.is_empty());
            assert_eq!(
                quiet,
                policy::Evaluation {
                    matched_rules: Vec::new(),
                    ..full
                }
            );
        }
    }
}
