//! Running a classified script in one transaction, statement by statement,
//! counting the rows each one affected; whether to commit is the caller's
//! decision (the core's row bounds, a person's confirmation).
//!
//! This is the I/O half of guarded SQL execution: which statements run is
//! [`transaction_plan`]'s answer, and a failure anywhere rolls everything
//! back, so a script that fails halfway changes nothing.

use prodguard_core::sql::{Dialect, NotRunnable, Script, transaction_plan};

/// A database connection a script can run on, one statement at a time,
/// inside one transaction.
pub trait SqlConnection {
    /// The SQL dialect it speaks, which scripts are classified in.
    fn dialect(&self) -> Dialect;
    /// Begins the transaction.
    fn begin(&mut self) -> Result<(), String>;
    /// Runs one statement in it and returns the rows it inserted, updated
    /// or deleted (triggers and cascades included where the database counts
    /// them).
    fn execute(&mut self, statement: &str) -> Result<u64, String>;
    /// Whether the transaction [`begin`](Self::begin) started is still open.
    fn in_transaction(&mut self) -> Result<bool, String>;
    /// Commits it.
    fn commit(&mut self) -> Result<(), String>;
    /// Rolls it back.
    fn rollback(&mut self) -> Result<(), String>;
    /// Runs one statement that cannot run inside a transaction, outside
    /// any, and returns its rows.
    fn execute_alone(&mut self, statement: &str) -> Result<u64, String> {
        self.execute(statement)
    }
    /// The environment stamp of the database it is connected to (`None`
    /// when it has none): a guarded run checks this one, whatever name its
    /// target gives the database.
    fn stamp(&mut self) -> Result<Option<prodguard_core::session::Stamp>, String>;
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ran {
    /// Rows affected, by statement index (0 for the script's own `BEGIN`
    /// and `COMMIT`, which are not run).
    pub rows: Vec<u64>,
    /// Whether it was committed (else rolled back).
    pub committed: bool,
}

/// Why a script did not run to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlExecError {
    /// The script cannot run in one transaction; nothing ran.
    #[error(transparent)]
    NotRunnable(#[from] NotRunnable),
    /// A statement failed; everything was rolled back.
    #[error("statement {index} (line {line}) failed: {message}; nothing was changed (rolled back)")]
    Statement {
        /// The statement's index.
        index: usize,
        /// The line it starts on.
        line: u64,
        /// The database's error.
        message: String,
    },
    /// A statement run alone, outside any transaction, failed: what it did
    /// before failing (if anything) stays.
    #[error(
        "statement {index} (line {line}) failed: {message}; it ran outside a transaction, so check \
         what it left behind (e.g. an INVALID index after CREATE INDEX CONCURRENTLY)"
    )]
    Alone {
        /// The statement's index.
        index: usize,
        /// The line it starts on.
        line: u64,
        /// The database's error.
        message: String,
    },
    /// A statement ended the transaction on its own: what ran before it
    /// may be committed and cannot be undone.
    #[error(
        "statement {index} (line {line}) ended the transaction: what ran before it may be committed; \
         check the database against the audit record"
    )]
    TransactionEnded {
        /// The statement's index.
        index: usize,
        /// The line it starts on.
        line: u64,
    },
    /// The database refused to begin, commit or roll back.
    #[error("the database could not {what} the transaction: {message}")]
    Transaction {
        /// `begin`, `commit` or `roll back`.
        what: &'static str,
        /// The database's error.
        message: String,
    },
}

/// Runs `script` (classified from `text`) on `conn` in one transaction,
/// then commits only if `commit` says so given the rows each statement
/// affected; any failure rolls back.
pub fn run_in_transaction(
    conn: &mut dyn SqlConnection,
    text: &str,
    script: &Script,
    commit: impl FnOnce(&[u64]) -> bool,
) -> Result<Ran, SqlExecError> {
    let plan = transaction_plan(script)?;
    conn.begin().map_err(|message| SqlExecError::Transaction {
        what: "begin",
        message,
    })?;
    let mut rows = vec![0; script.statements.len()];
    for index in plan {
        let statement = &script.statements[index];
        let line = statement.line;
        let sql = text.get(statement.start..statement.end).unwrap_or_default();
        let affected = match conn.execute(sql) {
            Ok(affected) => affected,
            Err(message) => {
                return Err(match conn.rollback() {
                    Ok(()) => SqlExecError::Statement {
                        index,
                        line,
                        message,
                    },
                    // Not "nothing was changed": the rollback itself failed.
                    Err(rollback) => SqlExecError::Transaction {
                        what: "roll back",
                        message: format!(
                            "{rollback} (after statement {index}, line {line}, failed: {message})"
                        ),
                    },
                });
            }
        };
        if !conn.in_transaction().unwrap_or(false) {
            return Err(SqlExecError::TransactionEnded { index, line });
        }
        rows[index] = affected;
    }
    let committed = commit(&rows);
    let (what, done) = if committed {
        ("commit", conn.commit())
    } else {
        ("roll back", conn.rollback())
    };
    done.map_err(|message| SqlExecError::Transaction { what, message })?;
    Ok(Ran { rows, committed })
}

/// Opens the existing SQLite database at `path` to run a script on: never
/// creates one (a mistyped path must not become an empty database that a
/// script then "succeeds" on), and refuses a file that is not SQLite.
#[cfg(feature = "sqlite")]
pub fn open_sqlite(path: &std::path::Path) -> Result<rusqlite::Connection, String> {
    use rusqlite::OpenFlags;
    if !crate::stamp::is_sqlite(path) {
        return Err(format!(
            "{} is not a SQLite database; scripts run on existing databases only",
            prodguard_core::text::escape(&path.to_string_lossy())
        ));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    rusqlite::Connection::open_with_flags(path, flags).map_err(|e| {
        format!(
            "cannot open {}: {e}",
            prodguard_core::text::escape(&path.to_string_lossy())
        )
    })
}

/// Runs statement `index` of `script` (from `text`) on its own, outside
/// any transaction: a [`Plan::Alone`](prodguard_core::sql::Plan::Alone)
/// the policy allowed. Nothing can roll it back.
pub fn run_alone(
    conn: &mut dyn SqlConnection,
    text: &str,
    script: &Script,
    index: usize,
) -> Result<Ran, SqlExecError> {
    let statement = script.statements.get(index);
    let line = statement.map_or(0, |s| s.line);
    let sql = statement
        .and_then(|s| text.get(s.start..s.end))
        .unwrap_or_default();
    let affected = conn
        .execute_alone(sql)
        .map_err(|message| SqlExecError::Alone {
            index,
            line,
            message,
        })?;
    let mut rows = vec![0; script.statements.len()];
    if let Some(slot) = rows.get_mut(index) {
        *slot = affected;
    }
    Ok(Ran {
        rows,
        committed: true,
    })
}

/// SQLite: `BEGIN IMMEDIATE` (the write lock up front, so no statement
/// waits to upgrade it), rows counted as the change in `total_changes()`.
#[cfg(feature = "sqlite")]
impl SqlConnection for rusqlite::Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn begin(&mut self) -> Result<(), String> {
        self.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| e.to_string())
    }

    fn execute(&mut self, statement: &str) -> Result<u64, String> {
        let before = self.total_changes();
        // `prepare` refuses a text holding more than one statement.
        let mut prepared = self.prepare(statement).map_err(|e| e.to_string())?;
        let mut rows = prepared.raw_query();
        while rows.next().map_err(|e| e.to_string())?.is_some() {}
        drop(rows);
        drop(prepared);
        Ok(self.total_changes().saturating_sub(before))
    }

    fn in_transaction(&mut self) -> Result<bool, String> {
        Ok(!self.is_autocommit())
    }

    fn stamp(&mut self) -> Result<Option<prodguard_core::session::Stamp>, String> {
        crate::stamp::read_sqlite_stamp_on(self)
    }

    fn commit(&mut self) -> Result<(), String> {
        self.execute_batch("COMMIT").map_err(|e| e.to_string())
    }

    fn rollback(&mut self) -> Result<(), String> {
        self.execute_batch("ROLLBACK").map_err(|e| e.to_string())
    }
}

/// A PostgreSQL connection for [`run_in_transaction`], under the policy's
/// `[sql]` timeouts. The transaction's id, taken at `begin`, tells whether a
/// statement ended it: in autocommit every statement gets a new one.
///
/// A statement's rows are the larger of what the server reports and the
/// rows the transaction changed in user tables meanwhile
/// (`pg_stat_xact_user_tables`): a data-modifying CTE, a `DO` block, a
/// trigger or a cascade changes rows the reported count leaves out.
#[cfg(feature = "postgres")]
pub struct Postgres<'a> {
    client: &'a mut postgres::Client,
    timeouts: prodguard_core::policy::SqlConfig,
    transaction: Option<i64>,
    /// Rows the open transaction had changed after the last statement.
    changed: i64,
}

#[cfg(feature = "postgres")]
impl<'a> Postgres<'a> {
    /// Runs scripts on `client`, each statement under `timeouts`
    /// (`statement_timeout`, `lock_timeout`, set for the transaction only).
    pub fn new(
        client: &'a mut postgres::Client,
        timeouts: &prodguard_core::policy::SqlConfig,
    ) -> Self {
        Postgres {
            client,
            timeouts: timeouts.clone(),
            transaction: None,
            changed: 0,
        }
    }

    /// Rows inserted, updated or deleted in user tables so far in this
    /// transaction (triggers, cascades and CTEs included).
    fn changed_so_far(&mut self) -> Result<i64, String> {
        self.client
            .query_one(
                "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint \
                 FROM pg_catalog.pg_stat_xact_user_tables",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .map_err(|e| crate::pg::describe(&e))
    }

    fn transaction_id(&mut self) -> Result<i64, String> {
        self.client
            .query_one("SELECT txid_current()", &[])
            .and_then(|row| row.try_get(0))
            .map_err(|e| crate::pg::describe(&e))
    }
}

#[cfg(feature = "postgres")]
impl SqlConnection for Postgres<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn begin(&mut self) -> Result<(), String> {
        let begin = format!(
            "BEGIN; SET LOCAL statement_timeout = '{}s'; SET LOCAL lock_timeout = '{}s'",
            self.timeouts.statement_timeout_seconds, self.timeouts.lock_timeout_seconds
        );
        self.client
            .batch_execute(&begin)
            .map_err(|e| crate::pg::describe(&e))?;
        self.transaction = Some(self.transaction_id()?);
        self.changed = self.changed_so_far()?;
        Ok(())
    }

    /// The extended protocol: one statement per call (a text holding two
    /// is refused); its rows, the larger of the server's count and the
    /// change in the transaction's counts (see [`Postgres`]).
    fn execute(&mut self, statement: &str) -> Result<u64, String> {
        let reported = self
            .client
            .execute(statement, &[])
            .map_err(|e| crate::pg::describe(&e))?;
        let changed = self.changed_so_far()?;
        let counted = u64::try_from(changed.saturating_sub(self.changed)).unwrap_or(0);
        self.changed = changed;
        Ok(reported.max(counted))
    }

    fn in_transaction(&mut self) -> Result<bool, String> {
        Ok(self.transaction.is_some() && Some(self.transaction_id()?) == self.transaction)
    }

    fn stamp(&mut self) -> Result<Option<prodguard_core::session::Stamp>, String> {
        crate::pg::read_stamp_on(self.client)
    }

    fn commit(&mut self) -> Result<(), String> {
        self.transaction = None;
        self.client
            .batch_execute("COMMIT")
            .map_err(|e| crate::pg::describe(&e))
    }

    fn rollback(&mut self) -> Result<(), String> {
        self.transaction = None;
        self.client
            .batch_execute("ROLLBACK")
            .map_err(|e| crate::pg::describe(&e))
    }

    /// Under the same timeouts, set for the session and reset after.
    fn execute_alone(&mut self, statement: &str) -> Result<u64, String> {
        let set = format!(
            "SET statement_timeout = '{}s'; SET lock_timeout = '{}s'",
            self.timeouts.statement_timeout_seconds, self.timeouts.lock_timeout_seconds
        );
        self.client
            .batch_execute(&set)
            .map_err(|e| crate::pg::describe(&e))?;
        let result = self
            .client
            .execute(statement, &[])
            .map_err(|e| crate::pg::describe(&e));
        let reset = self
            .client
            .batch_execute("RESET statement_timeout; RESET lock_timeout")
            .map_err(|e| crate::pg::describe(&e));
        let rows = result?;
        reset?;
        Ok(rows)
    }
}

#[cfg(test)]
#[cfg(feature = "sqlite")]
mod tests {
    use prodguard_core::sql::{Dialect, classify};
    use rusqlite::Connection;

    use super::*;

    fn shop() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE carts (id INTEGER PRIMARY KEY, stale INTEGER);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO carts SELECT i, i % 2 FROM n;",
        )
        .unwrap();
        conn
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM carts", [], |r| r.get(0))
            .unwrap()
    }

    fn run(conn: &mut Connection, sql: &str, commit: bool) -> Result<Ran, SqlExecError> {
        let script = classify(sql, Dialect::Sqlite);
        run_in_transaction(conn, sql, &script, |_| commit)
    }

    #[test]
    fn rows_are_counted_per_statement_and_committed_when_asked() {
        let mut conn = shop();
        let sql = "BEGIN; SELECT * FROM carts; DELETE FROM carts WHERE stale = 1; \
                   UPDATE carts SET stale = 1 WHERE id < 11; COMMIT;";
        let ran = run(&mut conn, sql, true).unwrap();
        assert_eq!(ran.rows, [0, 0, 250, 5, 0]);
        assert!(ran.committed);
        assert_eq!(count(&conn), 250);
    }

    #[test]
    fn a_refused_commit_or_a_failing_statement_changes_nothing() {
        let mut conn = shop();
        let ran = run(&mut conn, "DELETE FROM carts", false).unwrap();
        assert_eq!((ran.rows.as_slice(), ran.committed), (&[500][..], false));
        assert_eq!(count(&conn), 500);
        let err = run(
            &mut conn,
            "DELETE FROM carts WHERE stale = 1;\nDELETE FROM nowhere",
            true,
        )
        .unwrap_err();
        assert!(
            matches!(
                &err,
                SqlExecError::Statement {
                    index: 1,
                    line: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(count(&conn), 500, "the first delete was rolled back");
        assert!(conn.is_autocommit());
    }

    /// A connection whose transaction ends after `ends_after` statements
    /// (as an unparsed statement that commits would end it), and whose
    /// rollback may fail.
    struct Scripted {
        ran: usize,
        ends_after: usize,
        rollback_fails: bool,
    }

    impl SqlConnection for Scripted {
        fn dialect(&self) -> Dialect {
            Dialect::Sqlite
        }

        fn stamp(&mut self) -> Result<Option<prodguard_core::session::Stamp>, String> {
            Ok(None)
        }

        fn begin(&mut self) -> Result<(), String> {
            Ok(())
        }
        fn execute(&mut self, statement: &str) -> Result<u64, String> {
            self.ran += 1;
            if statement.contains("nowhere") {
                return Err("no such table: nowhere".into());
            }
            Ok(1)
        }
        fn in_transaction(&mut self) -> Result<bool, String> {
            Ok(self.ran < self.ends_after)
        }
        fn commit(&mut self) -> Result<(), String> {
            Ok(())
        }
        fn rollback(&mut self) -> Result<(), String> {
            if self.rollback_fails {
                Err("disk I/O error".into())
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn what_cannot_be_undone_is_never_called_undone() {
        let sql = "DELETE FROM a WHERE x; DELETE FROM b WHERE y; DELETE FROM nowhere";
        let script = classify(sql, Dialect::Sqlite);
        let mut ends = Scripted {
            ran: 0,
            ends_after: 2,
            rollback_fails: false,
        };
        let err = run_in_transaction(&mut ends, sql, &script, |_| true).unwrap_err();
        assert!(
            matches!(err, SqlExecError::TransactionEnded { index: 1, .. }),
            "{err}"
        );
        let mut stuck = Scripted {
            ran: 0,
            ends_after: usize::MAX,
            rollback_fails: true,
        };
        let err = run_in_transaction(&mut stuck, sql, &script, |_| true).unwrap_err();
        assert!(
            matches!(
                &err,
                SqlExecError::Transaction {
                    what: "roll back",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!err.to_string().contains("nothing was changed"), "{err}");
    }

    #[test]
    fn transaction_control_inside_the_script_runs_nothing() {
        let mut conn = shop();
        let err = run(
            &mut conn,
            "DELETE FROM carts WHERE stale = 1; COMMIT; DELETE FROM carts",
            true,
        )
        .unwrap_err();
        assert!(matches!(err, SqlExecError::NotRunnable(_)), "{err}");
        assert_eq!(count(&conn), 500);
        assert!(conn.is_autocommit());
    }
}
