//! What the policy asks of a classified script: one decision for the
//! script, and the row bounds of each statement.

use serde::{Deserialize, Serialize};

use super::Script;
use crate::Tier;
use crate::detect::Detection;
use crate::policy::{Policy, Requirement};
use crate::session::{Decision, Operation, decide_also};

/// What the policy asks of a script here: see [`decide`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SqlDecision {
    /// The decision for the script as one operation, named after its most
    /// dangerous statement's kind: every rule matching any statement's
    /// kind applies, each once.
    pub decision: Decision,
    /// Each statement's row bounds, in order.
    pub bounds: Vec<RowBounds>,
}

/// What the policy says of the rows one statement may affect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RowBounds {
    /// The statement's index in the script.
    pub index: usize,
    /// The most rows it may affect (the smallest `max_rows` of the rules
    /// matching its kind), and that rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// The rule that sets `max_rows`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows_rule: Option<String>,
    /// Whether a rule matching its kind requires a confirmation.
    pub confirm: bool,
    /// With `confirm`: needed only above this many rows (every such rule
    /// gives a threshold; the smallest). `None`: whatever the rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_above_rows: Option<u64>,
    /// Whether it may run alone outside a transaction when it cannot run
    /// inside one (`outside_transaction = true`; see [`run_plan`](super::run_plan)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outside_transaction: bool,
}

/// The first statement whose rows exceed its `max_rows`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverBound {
    /// The statement's index.
    pub index: usize,
    /// The rows it affected.
    pub rows: u64,
    /// Its bound.
    pub max_rows: u64,
    /// The rule that sets the bound.
    pub rule: String,
}

/// What the policy asks of `script` here, on `target` (what a person types
/// to confirm, and what an approval names). The script's operation is its
/// most dangerous statement's kind and its fingerprint is the script's, so
/// an approval binds the exact script.
///
/// ```
/// use prodguard_core::sql::{self, Dialect};
/// use prodguard_core::{Facts, Policy};
///
/// let policy = Policy::parse_toml(
///     "[[rule]]\noperations = [\"db.delete.*\"]\ntiers = [\"production\"]\n\
///      require = [\"confirm\"]\nconfirm_above_rows = 100\nmax_rows = 10000\n",
///     "p.toml",
/// )?;
/// let script = sql::classify("DELETE FROM carts WHERE stale; SELECT 1", Dialect::Postgres);
/// let facts = Facts { explicit: Some("production".into()), ..Facts::default() };
/// let here = prodguard_core::classify(&facts, policy.environment());
/// let decided = sql::decide(&policy, &here, &script, Some("shop"));
/// assert_eq!(decided.decision.exit_code, 121);
/// // The delete may remove 10,000 rows; up to 100 need nobody's confirmation.
/// assert_eq!(decided.over_bound(&[10_001, 1]).map(|o| o.index), Some(0));
/// assert!(!decided.needs_confirmation(&[100, 1]));
/// assert!(decided.needs_confirmation(&[101, 1]));
/// # Ok::<(), prodguard_core::PolicyError>(())
/// ```
pub fn decide(
    policy: &Policy,
    detection: &Detection,
    script: &Script,
    target: Option<&str>,
) -> SqlDecision {
    let mut operation = Operation::new(script.operation.as_str());
    operation.target = target.map(str::to_owned);
    operation.fingerprint = Some(script.fingerprint.clone());
    let decision = decide_also(policy, detection, &operation, &script.kinds());
    let bounds = bounds(policy, detection.tier, script);
    SqlDecision { decision, bounds }
}

/// Each statement's row bounds in `tier`.
pub(crate) fn bounds(policy: &Policy, tier: Tier, script: &Script) -> Vec<RowBounds> {
    script
        .statements
        .iter()
        .map(|statement| {
            let evaluation = policy.evaluate(tier, statement.kind.as_str());
            let confirm = evaluation.requires(Requirement::Confirm);
            let (max_rows, max_rows_rule) = evaluation.max_rows.unzip();
            RowBounds {
                index: statement.index,
                max_rows,
                max_rows_rule,
                confirm,
                // Rows waive nothing for a statement they do not measure.
                confirm_above_rows: evaluation
                    .confirm_above_rows
                    .filter(|_| statement.kind.counts_rows()),
                outside_transaction: evaluation.outside_transaction,
            }
        })
        .collect()
}

impl SqlDecision {
    /// The first statement that affected more rows than its `max_rows`
    /// (`rows[i]` for statement `i`): the script must be rolled back and
    /// refused (120).
    pub fn over_bound(&self, rows: &[u64]) -> Option<OverBound> {
        over_bound(&self.bounds, rows)
    }

    /// Whether the rows the statements affected (`rows[i]` for statement
    /// `i`) need the confirmation: some statement whose rules ask for one
    /// gives no threshold (rows do not measure a `DROP` or a `TRUNCATE`:
    /// it never has one), or the rows of all such statements add up to
    /// more than the smallest threshold, so a delete split into small ones
    /// waives nothing. A statement without a count (`rows` shorter than
    /// the script) counts as above.
    pub fn needs_confirmation(&self, rows: &[u64]) -> bool {
        needs_confirmation(&self.bounds, rows)
    }
}

pub(crate) fn over_bound(bounds: &[RowBounds], rows: &[u64]) -> Option<OverBound> {
    bounds.iter().zip(rows).find_map(|(bound, &rows)| {
        let max_rows = bound.max_rows?;
        (rows > max_rows).then(|| OverBound {
            index: bound.index,
            rows,
            max_rows,
            rule: bound.max_rows_rule.clone().unwrap_or_default(),
        })
    })
}

pub(crate) fn needs_confirmation(bounds: &[RowBounds], rows: &[u64]) -> bool {
    // The rows of every statement a confirmation is asked for add up, so
    // splitting a delete into small ones waives nothing.
    let mut total: u64 = 0;
    let mut threshold = u64::MAX;
    for bound in bounds.iter().filter(|b| b.confirm) {
        match (bound.confirm_above_rows, rows.get(bound.index)) {
            (Some(above), Some(&rows)) => {
                total = total.saturating_add(rows);
                threshold = threshold.min(above);
            }
            _ => return true,
        }
    }
    total > threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Dialect, classify};
    use crate::{Facts, Tier};

    const POLICY: &str = r#"
[[rule]]
name = "bulk"
operations = ["db.delete.*", "db.update.*"]
tiers = ["production"]
require = ["confirm", "audit"]
confirm_above_rows = 100
max_rows = 10000

[[rule]]
name = "schema"
operations = ["db.alter.destructive"]
tiers = ["production"]
require = ["backup", "audit"]
backup = { path = "/backups/db.dump", max_age = "1h" }

[[rule]]
name = "no truncate"
operations = ["db.truncate"]
tiers = ["production"]
deny = "truncate is never done by hand"
"#;

    fn here(tier: &str) -> Detection {
        let facts = Facts {
            explicit: Some(tier.into()),
            ..Facts::default()
        };
        crate::classify(&facts, Policy::builtin_default_ref().environment())
    }

    fn decided(sql: &str) -> SqlDecision {
        let policy = Policy::parse_toml(POLICY, "p.toml").unwrap();
        decide(
            &policy,
            &here("production"),
            &classify(sql, Dialect::Postgres),
            Some("shop"),
        )
    }

    #[test]
    fn every_statement_kind_brings_its_rules() {
        // The destructive ALTER is not the script's operation (the delete
        // of all rows is more dangerous), but its rule applies all the same.
        let d = decided("ALTER TABLE orders DROP COLUMN note; DELETE FROM carts");
        let kinds: Vec<_> = d.decision.requirements.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                Requirement::Confirm,
                Requirement::Backup,
                Requirement::Audit
            ]
        );
        assert!(
            d.decision.reasons[0].starts_with("db.delete.all requires"),
            "{:?}",
            d.decision.reasons
        );
        assert_eq!(d.bounds.len(), 2);
        assert_eq!((d.bounds[0].max_rows, d.bounds[0].confirm), (None, false));
        assert_eq!(d.bounds[1].max_rows, Some(10_000));
        assert_eq!(d.bounds[1].max_rows_rule.as_deref(), Some("bulk"));
        assert_eq!(d.bounds[1].confirm_above_rows, Some(100));
    }

    #[test]
    fn a_denied_statement_refuses_the_script_and_is_named() {
        let d = decided("SELECT 1; TRUNCATE audit_copy; DELETE FROM carts WHERE id = 1");
        assert_eq!(d.decision.exit_code, 120);
        assert!(
            d.decision.reasons[0].starts_with("db.truncate is denied here by rule `no truncate`"),
            "{:?}",
            d.decision.reasons
        );
        // In development nothing is asked.
        let policy = Policy::parse_toml(POLICY, "p.toml").unwrap();
        let script = classify("TRUNCATE audit_copy", Dialect::Postgres);
        let dev = decide(&policy, &here("development"), &script, None);
        assert_eq!(dev.decision.exit_code, 0);
        assert_eq!(here("development").tier, Tier::Development);
    }

    #[test]
    fn rows_decide_the_bound_and_the_confirmation() {
        let d = decided(
            "DELETE FROM carts WHERE stale; UPDATE orders SET x = 1 WHERE id = 2; SELECT 1",
        );
        assert_eq!(d.over_bound(&[10_000, 10_000, 0]), None);
        assert_eq!(
            d.over_bound(&[5, 10_001, 0]),
            Some(OverBound {
                index: 1,
                rows: 10_001,
                max_rows: 10_000,
                rule: "bulk".into()
            })
        );
        assert!(
            !d.needs_confirmation(&[100, 0, 1_000_000]),
            "reads need nobody"
        );
        assert!(d.needs_confirmation(&[100, 101, 0]));
        assert!(
            d.needs_confirmation(&[60, 60, 0]),
            "the statements' rows add up: a split delete waives nothing"
        );
        assert!(
            d.needs_confirmation(&[100]),
            "a statement without a count counts as above"
        );
        // A statement whose rules confirm whatever the rows.
        let policy = Policy::builtin_default();
        let script = classify("DELETE FROM carts WHERE stale", Dialect::Postgres);
        let d = decide(&policy, &here("production"), &script, Some("shop"));
        assert!(d.needs_confirmation(&[0]));
        // Rows do not measure a DROP or a TRUNCATE: nothing waives theirs.
        let policy = Policy::parse_toml(
            "[[rule]]\noperations = [\"db.*\"]\nrequire = [\"confirm\"]\nconfirm_above_rows = 100\n",
            "p.toml",
        )
        .unwrap();
        for sql in ["DROP TABLE carts", "TRUNCATE carts", "DELETE FROM carts"] {
            let d = decide(
                &policy,
                &here("production"),
                &classify(sql, Dialect::Postgres),
                None,
            );
            assert_eq!(
                d.needs_confirmation(&[0]),
                !sql.starts_with("DELETE"),
                "{sql}"
            );
        }
    }

    #[test]
    fn an_empty_script_is_unknown_and_guarded() {
        let d = decide(
            &Policy::builtin_default(),
            &here("production"),
            &classify("-- nothing\n;", Dialect::Sqlite),
            Some("app.db"),
        );
        assert_eq!(d.decision.exit_code, 121);
        assert!(
            d.decision.reasons[0].starts_with("db.unknown requires"),
            "{:?}",
            d.decision.reasons
        );
        assert!(d.bounds.is_empty());
    }
}
