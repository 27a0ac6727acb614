//! `guard.sql(text).run(&mut conn)`: a SQL script run under the guards,
//! in one transaction that commits only when every bound holds.

use prodguard_core::session::Operation;
use prodguard_core::sql::{self, Plan, Script};

use prodguard_core::session::Stamp;

use super::{Guard, SqlDatabase};
use crate::sql_exec::{SqlConnection, SqlExecError, run_alone, run_in_transaction};
use crate::stamp::StampError;
use crate::{GuardError, RunError};

/// What a guarded SQL run did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqlRan {
    /// The script as classified (in the connection's dialect).
    pub script: Script,
    /// Rows affected, by statement index (0 for a script's own `BEGIN` and
    /// `COMMIT`, which are not run).
    pub rows: Vec<u64>,
    /// Whether it was committed: always, but for a dry run.
    pub committed: bool,
}

/// The database a script runs on, as its session asks of it.
struct Database<'a> {
    conn: &'a mut dyn SqlConnection,
    text: &'a str,
    script: &'a Script,
    plan: &'a Plan,
}

impl SqlDatabase<SqlExecError> for Database<'_> {
    fn dry_run(&mut self) -> Result<Option<Vec<u64>>, SqlExecError> {
        match self.plan {
            Plan::Transaction(_) => {
                run_in_transaction(self.conn, self.text, self.script, |_| false)
                    .map(|ran| Some(ran.rows))
            }
            // The session asks no dry run of a statement run alone.
            _ => Ok(None),
        }
    }

    fn stamp(&mut self) -> Result<Option<Stamp>, StampError> {
        self.conn.stamp().map_err(StampError::from)
    }
}

/// A guarded SQL run being described; see [`Guard::sql`].
#[derive(Debug)]
#[must_use = "a guarded SQL run does nothing until `run` is called"]
pub struct GuardedSql<'g> {
    pub(super) guard: &'g Guard,
    pub(super) text: &'g str,
    pub(super) operation: Operation,
    pub(super) approval: Option<String>,
    pub(super) dry_run: bool,
}

impl GuardedSql<'_> {
    /// What it runs on (a database's name or URL, a SQLite file): what a
    /// person types to confirm, what an approval names, whose stamp is read.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.operation.target = Some(target.into());
        self
    }

    /// Confirms with this approval token (instead of the guard's, or
    /// `PRODGUARD_APPROVAL`); it must bind this script's fingerprint.
    pub fn approval(mut self, token: impl Into<String>) -> Self {
        self.approval = Some(token.into());
        self
    }

    /// Break-glass, as [`GuardedOperation::break_glass`](super::GuardedOperation::break_glass):
    /// no confirmation and no backup; row bounds still hold.
    pub fn break_glass(mut self, reason: impl Into<String>) -> Self {
        self.operation.break_glass = Some(reason.into());
        self
    }

    /// Only the dry run: the script runs in a transaction that is always
    /// rolled back, and the rows are recorded. Nobody is asked and no
    /// approval is spent.
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// Classifies the script in the connection's dialect and runs it under
    /// the guards: a deny rule refuses; where a confirmation is required, a
    /// dry run (rolled back) counts each statement's rows first, so a
    /// statement over its rule's `max_rows` is refused before anyone is
    /// asked, the person sees the rows, and `confirm_above_rows` can waive
    /// the question; then the backup, the intent, and the real run in one
    /// transaction that commits only if every statement stays within its
    /// `max_rows`, the approval's `--max-rows` and what was confirmed.
    /// Otherwise it is rolled back and refused (120, 121), recorded as
    /// `rolled_back` with the rows.
    ///
    /// Returns the rows by statement index. A refusal (nothing changed) is
    /// [`RunError::Refused`]; a statement that failed is
    /// [`RunError::Failed`] (rolled back, unless the error says otherwise).
    ///
    /// ```
    /// use prodguard::{Facts, Guard, Policy};
    ///
    /// let policy = Policy::parse_toml(
    ///     "[[rule]]\noperations = [\"db.delete.*\"]\ntiers = [\"production\"]\n\
    ///      require = [\"audit\"]\nmax_rows = 100\n",
    ///     "p.toml",
    /// )?;
    /// let dir = std::env::temp_dir().join(format!("prodguard-doc-sql-{}", std::process::id()));
    /// let guard = Guard::builder()
    ///     .policy(policy)
    ///     .facts(Facts { explicit: Some("production".into()), ..Facts::default() })
    ///     .audit_log(dir.join("audit.jsonl"))
    ///     .build()?;
    /// let mut conn = rusqlite::Connection::open_in_memory()?;
    /// conn.execute_batch(
    ///     "CREATE TABLE carts (id INTEGER PRIMARY KEY, stale INTEGER);
    ///      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
    ///      INSERT INTO carts SELECT i, i % 2 FROM n;",
    /// )?;
    /// // 250 stale carts: over the rule's 100, so nothing is deleted.
    /// let refused = guard.sql("DELETE FROM carts WHERE stale = 1").target("shop").run(&mut conn);
    /// assert!(matches!(refused, Err(prodguard::RunError::Refused(ref e)) if e.exit_code() == 120));
    /// let ran = guard.sql("DELETE FROM carts WHERE id <= 10").target("shop").run(&mut conn)?;
    /// assert_eq!(ran.rows, vec![10]);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(self, conn: &mut dyn SqlConnection) -> Result<SqlRan, RunError<SqlExecError>> {
        let script = sql::classify(self.text, conn.dialect());
        // A script that cannot run in one transaction (unless the policy
        // lets its one statement run alone) is refused before anything is
        // decided or recorded: it is a usage error.
        let bounds = sql::decide(
            &self.guard.policy,
            &self.guard.detection,
            &script,
            self.operation.target.as_deref(),
        )
        .bounds;
        let plan = sql::run_plan(&script, &bounds)
            .map_err(|not_runnable| GuardError::Policy(not_runnable.to_string()))?;
        let (text, only_dry_run) = (self.text, self.dry_run);
        let approval = self.approval.as_deref().or(self.guard.approval.as_deref());
        let mut database = Database {
            conn: &mut *conn,
            text,
            script: &script,
            plan: &plan,
        };
        let mut permit = self.guard.drive(
            self.operation,
            approval,
            Some((&script, only_dry_run, &mut database)),
        )?;
        let _enter = permit.span.clone().entered();
        if let Plan::Alone(index) = plan {
            return match run_alone(conn, text, &script, index) {
                Ok(ran) => {
                    permit.record("ok", None, None, Some(ran.rows.clone()));
                    Ok(SqlRan {
                        script,
                        rows: ran.rows,
                        committed: true,
                    })
                }
                Err(failed) => {
                    permit.record("failed", Some(failed.to_string()), None, None);
                    Err(RunError::Failed(failed))
                }
            };
        }
        let mut refusal = None;
        let result = run_in_transaction(conn, text, &script, |rows| {
            if only_dry_run {
                return false;
            }
            match permit.session.commit_check(rows) {
                Ok(()) => true,
                Err(denial) => {
                    refusal = Some(denial);
                    false
                }
            }
        });
        // No refusal: a dry run, or the commit closure said yes and the
        // commit went through (a failed commit is an error).
        match (result, refusal) {
            (Ok(ran), None) => {
                let status = if only_dry_run { "dry_run" } else { "ok" };
                permit.record(status, None, None, Some(ran.rows.clone()));
                Ok(SqlRan {
                    script,
                    rows: ran.rows,
                    committed: ran.committed,
                })
            }
            (Ok(ran), Some(mut denial)) => {
                let code = denial.exit_code.code();
                denial.recorded = permit.record(
                    "rolled_back",
                    Some(denial.missing.clone()),
                    Some(code),
                    Some(ran.rows),
                );
                Err(GuardError::from_denial(denial).into())
            }
            (Err(failed), _) => {
                permit.record("failed", Some(failed.to_string()), None, None);
                Err(RunError::Failed(failed))
            }
        }
    }
}
