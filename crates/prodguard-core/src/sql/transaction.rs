//! The one transaction guarded execution runs a script in: which
//! statements it runs, and which scripts cannot run that way.

use serde::{Deserialize, Serialize};

use super::{RowBounds, Script};

/// What a statement means to the transaction a guarded run wraps the
/// script in.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transaction {
    /// Runs inside it (every statement not named below).
    #[default]
    Inside,
    /// `BEGIN`, `START TRANSACTION`.
    Begins,
    /// `COMMIT`, `END`.
    Commits,
    /// `ROLLBACK`, a savepoint, `COMMIT AND CHAIN`: it would end or undo
    /// part of the wrapping transaction.
    Controls,
    /// Cannot run inside a transaction: `CREATE INDEX CONCURRENTLY`,
    /// `VACUUM`, `CREATE DATABASE`, `DROP DATABASE`.
    Outside,
}

/// What a statement the parser did not understand means to the
/// transaction, by its first word: one that ends or steps around it
/// (`COMMIT TRANSACTION x`, `END`, `PREPARE TRANSACTION`…) is transaction
/// control, and one that changes how the database writes or what it is
/// (`PRAGMA journal_mode = OFF`, `ATTACH`, `VACUUM INTO`) cannot run
/// inside it: a rollback would not undo it. Anything else runs inside
/// (its rows are not counted before it runs: see [`Script::first_unknown`]).
pub(crate) fn of_unknown(normalized: &str) -> Transaction {
    let first = normalized
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|word| !word.is_empty())
        .unwrap_or_default()
        .to_ascii_uppercase();
    match first.as_str() {
        "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "RELEASE" | "SAVEPOINT" | "BEGIN" | "START"
        | "PREPARE" => Transaction::Controls,
        "PRAGMA" | "ATTACH" | "DETACH" | "VACUUM" => Transaction::Outside,
        _ => Transaction::Inside,
    }
}

/// Why a script cannot run in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotRunnable {
    /// Transaction control other than a leading `BEGIN` and a trailing `COMMIT`.
    #[error(
        "statement {index} (line {line}) controls the transaction: it would commit or undo part of \
         the script; remove it (prodguard runs the whole script in one transaction, and drops only \
         a leading BEGIN and a trailing COMMIT)"
    )]
    TransactionControl {
        /// The statement's index.
        index: usize,
        /// The line it starts on.
        line: u64,
    },
    /// A statement that cannot run inside a transaction, which no rule
    /// allows to run on its own.
    #[error(
        "statement {index} (line {line}) cannot run inside a transaction, so the script could not be \
         undone if it failed or went over a bound; to run it anyway, put it in a script of its own \
         and have the policy allow it: `outside_transaction = true` on the rules matching its kind"
    )]
    OutsideTransaction {
        /// The statement's index.
        index: usize,
        /// The line it starts on.
        line: u64,
    },
    /// A statement allowed to run outside a transaction, in a script that
    /// has others: they could not be undone together.
    #[error(
        "statement {index} (line {line}) cannot run inside a transaction and the script has other \
         statements, which could not be undone with it; put it in a script of its own"
    )]
    NotAlone {
        /// The statement's index.
        index: usize,
        /// The line it starts on.
        line: u64,
    },
}

/// How a guarded run executes a script: see [`run_plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Plan {
    /// These statements (by index), in one transaction that commits only
    /// when every bound holds.
    Transaction(Vec<usize>),
    /// This statement, the script's only one, on its own outside any
    /// transaction: it cannot run inside one and the policy allows it
    /// (`outside_transaction = true`). No dry run counts it first and
    /// nothing can roll it back.
    Alone(usize),
}

/// How a guarded run executes `script` under the policy's `bounds` (each
/// statement's, from [`decide`](super::decide)): [`transaction_plan`]'s
/// transaction, or a statement that cannot run in one alone when the
/// policy says `outside_transaction = true` for it.
///
/// ```
/// use prodguard_core::sql::{self, Dialect, Plan};
/// use prodguard_core::{Facts, Policy};
///
/// let policy = Policy::parse_toml(
///     "[[rule]]\noperations = [\"db.create\"]\nrequire = [\"audit\"]\noutside_transaction = true\n",
///     "p.toml",
/// )?;
/// let here = prodguard_core::classify(&Facts::default(), policy.environment());
/// let script = sql::classify("CREATE INDEX CONCURRENTLY i ON t (a)", Dialect::Postgres);
/// let bounds = sql::decide(&policy, &here, &script, None).bounds;
/// assert_eq!(sql::run_plan(&script, &bounds), Ok(Plan::Alone(0)));
/// # Ok::<(), prodguard_core::PolicyError>(())
/// ```
pub fn run_plan(script: &Script, bounds: &[RowBounds]) -> Result<Plan, NotRunnable> {
    match transaction_plan(script) {
        Ok(plan) => Ok(Plan::Transaction(plan)),
        Err(NotRunnable::OutsideTransaction { index, line })
            if bounds.get(index).is_some_and(|b| b.outside_transaction) =>
        {
            if script.statements.len() == 1 {
                Ok(Plan::Alone(index))
            } else {
                Err(NotRunnable::NotAlone { index, line })
            }
        }
        Err(refused) => Err(refused),
    }
}

/// The statements a guarded run executes, by index, in the one transaction
/// it wraps `script` in: all of them, less a leading `BEGIN` and a trailing
/// `COMMIT` (a migration file's own wrapping). Any other transaction
/// control, or a statement that cannot run in a transaction, refuses the
/// script: it could commit half of it.
///
/// ```
/// use prodguard_core::sql::{self, Dialect, NotRunnable};
///
/// let script = sql::classify("BEGIN; DELETE FROM t WHERE id = 1; COMMIT;", Dialect::Postgres);
/// assert_eq!(sql::transaction_plan(&script), Ok(vec![1]));
/// let script = sql::classify("DELETE FROM t; COMMIT; DELETE FROM u;", Dialect::Postgres);
/// assert!(matches!(
///     sql::transaction_plan(&script),
///     Err(NotRunnable::TransactionControl { index: 1, .. })
/// ));
/// ```
pub fn transaction_plan(script: &Script) -> Result<Vec<usize>, NotRunnable> {
    let statements = &script.statements;
    let last = statements.len().saturating_sub(1);
    let wrapped = statements.len() >= 2
        && statements[0].transaction == Transaction::Begins
        && statements[last].transaction == Transaction::Commits;
    let mut plan = Vec::with_capacity(statements.len());
    for (position, statement) in statements.iter().enumerate() {
        let (index, line) = (statement.index, statement.line);
        match statement.transaction {
            Transaction::Inside => plan.push(index),
            Transaction::Begins | Transaction::Commits
                if wrapped && (position == 0 || position == last) => {}
            Transaction::Outside => return Err(NotRunnable::OutsideTransaction { index, line }),
            _ => return Err(NotRunnable::TransactionControl { index, line }),
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Dialect, classify};

    fn plan(sql: &str, dialect: Dialect) -> Result<Vec<usize>, NotRunnable> {
        transaction_plan(&classify(sql, dialect))
    }

    #[test]
    fn a_wrapped_migration_runs_without_its_own_begin_and_commit() {
        for (sql, dialect) in [
            (
                "BEGIN; UPDATE t SET a = 1 WHERE id = 2; DELETE FROM u WHERE x; COMMIT;",
                Dialect::Postgres,
            ),
            (
                "START TRANSACTION; UPDATE t SET a = 1 WHERE id = 2; DELETE FROM u WHERE x; COMMIT",
                Dialect::MySql,
            ),
            (
                "BEGIN TRANSACTION; UPDATE t SET a = 1 WHERE id = 2; DELETE FROM u WHERE x; END TRANSACTION;",
                Dialect::Sqlite,
            ),
        ] {
            assert_eq!(plan(sql, dialect), Ok(vec![1, 2]), "{sql}");
        }
        assert_eq!(
            plan("DELETE FROM t WHERE x; SELECT 1", Dialect::Sqlite),
            Ok(vec![0, 1])
        );
        assert_eq!(plan("", Dialect::Sqlite), Ok(vec![]));
    }

    #[test]
    fn transaction_control_inside_refuses_the_script() {
        for (sql, index) in [
            ("DELETE FROM t WHERE x; COMMIT; DELETE FROM u", 1),
            (
                "BEGIN; DELETE FROM t WHERE x; COMMIT; BEGIN; DELETE FROM u; COMMIT",
                2,
            ),
            ("BEGIN; DELETE FROM t WHERE x", 0),
            ("DELETE FROM t WHERE x; COMMIT", 1),
            ("BEGIN; DELETE FROM t WHERE x; ROLLBACK", 0),
            (
                "SAVEPOINT s; DELETE FROM t WHERE x; ROLLBACK TO SAVEPOINT s",
                0,
            ),
            ("DELETE FROM t WHERE x; RELEASE SAVEPOINT s", 1),
            ("BEGIN; DELETE FROM t WHERE x; COMMIT AND CHAIN", 0),
            ("COMMIT", 0),
        ] {
            assert!(
                matches!(
                    plan(sql, Dialect::Postgres),
                    Err(NotRunnable::TransactionControl { index: i, .. }) if i == index
                ),
                "{sql}: {:?}",
                plan(sql, Dialect::Postgres)
            );
        }
    }

    #[test]
    fn statements_that_cannot_run_in_a_transaction_refuse_the_script() {
        for (sql, dialect) in [
            ("CREATE INDEX CONCURRENTLY i ON t (a)", Dialect::Postgres),
            (
                "BEGIN; CREATE UNIQUE INDEX CONCURRENTLY i ON t (a); COMMIT",
                Dialect::Postgres,
            ),
            ("VACUUM", Dialect::Sqlite),
            ("VACUUM FULL t", Dialect::Postgres),
            ("CREATE DATABASE shop", Dialect::Postgres),
            ("DROP DATABASE shop", Dialect::Postgres),
        ] {
            assert!(
                matches!(
                    plan(sql, dialect),
                    Err(NotRunnable::OutsideTransaction { .. })
                ),
                "{sql}: {:?}",
                plan(sql, dialect)
            );
        }
        assert_eq!(
            plan("CREATE INDEX i ON t (a)", Dialect::Postgres),
            Ok(vec![0])
        );
    }

    #[test]
    fn a_statement_the_policy_lets_run_outside_a_transaction_runs_alone_only() {
        let bounds = |script: &Script, allowed: bool| -> Vec<RowBounds> {
            script
                .statements
                .iter()
                .map(|s| RowBounds {
                    index: s.index,
                    max_rows: None,
                    max_rows_rule: None,
                    confirm: false,
                    confirm_above_rows: None,
                    outside_transaction: allowed,
                })
                .collect()
        };
        let alone = classify("CREATE INDEX CONCURRENTLY i ON t (a)", Dialect::Postgres);
        assert_eq!(run_plan(&alone, &bounds(&alone, true)), Ok(Plan::Alone(0)));
        assert!(matches!(
            run_plan(&alone, &bounds(&alone, false)),
            Err(NotRunnable::OutsideTransaction { index: 0, .. })
        ));
        let mixed = classify("VACUUM; DELETE FROM t WHERE x", Dialect::Sqlite);
        assert!(matches!(
            run_plan(&mixed, &bounds(&mixed, true)),
            Err(NotRunnable::NotAlone { index: 0, .. })
        ));
        // Allowed or not, transaction control still refuses.
        let control = classify("DELETE FROM t WHERE x; COMMIT; VACUUM", Dialect::Sqlite);
        assert!(matches!(
            run_plan(&control, &bounds(&control, true)),
            Err(NotRunnable::TransactionControl { index: 1, .. })
        ));
        let plain = classify("DELETE FROM t WHERE x", Dialect::Sqlite);
        assert_eq!(
            run_plan(&plain, &bounds(&plain, true)),
            Ok(Plan::Transaction(vec![0]))
        );
    }
}
