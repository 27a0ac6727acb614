//! The one transaction guarded execution runs a script in: which
//! statements it runs, and which scripts cannot run that way.

use serde::{Deserialize, Serialize};

use super::Script;

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
    /// A statement that cannot run inside a transaction.
    #[error(
        "statement {index} (line {line}) cannot run inside a transaction, so the script could not be \
         undone if it failed or went over a bound; run it on its own, outside prodguard's SQL guard"
    )]
    OutsideTransaction {
        /// The statement's index.
        index: usize,
        /// The line it starts on.
        line: u64,
    },
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
}
