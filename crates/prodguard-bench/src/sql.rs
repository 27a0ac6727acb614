//! SQL: `sql::classify` over a generated 5 MB migration vs sqlparser's
//! bare parse of the same text, and a guarded SQLite delete vs the same
//! delete by hand between two fdatasyncs.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prodguard::SqlRan;
use prodguard::sql_exec::SqlExecError;
use prodguard::{Actor, ActorKind, Facts, Guard, Policy, RunError};
use prodguard_core::sql::{Dialect, Script, SqlKind, classify};
use rusqlite::Connection;
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};

use crate::audit::baseline_write_fdatasync;
use crate::timing::keep;
use crate::{
    BenchError, Budget, Goal, Measurement, SQL_CLASSIFY_VS_PARSE, SQL_GUARDED_DELETE_VS_RAW, extra,
};

/// Ours: split, parse, classify and fingerprint the whole script.
#[inline]
pub fn ours_classify(script: &str) -> Script {
    classify(script, Dialect::Postgres)
}

/// The baseline: sqlparser's own `parse_sql` of the same text, what a
/// program would call to look at a migration itself.
#[inline]
pub fn baseline_parse(script: &str) -> Result<Vec<Statement>, ParserError> {
    Parser::parse_sql(&PostgreSqlDialect {}, script)
}

/// A PostgreSQL migration of about `bytes` bytes, the same on every run:
/// tables created and altered, indexes, multi-row inserts, updates and
/// deletes with `WHERE`s, comments, a dollar-quoted function, a transaction.
pub fn migration(bytes: usize) -> String {
    let mut sql = String::with_capacity(bytes + 4096);
    let mut n = 0usize;
    sql.push_str("-- generated migration\nBEGIN;\n");
    while sql.len() < bytes {
        let t = format!("app_{}.orders_{n}", n % 7);
        // `write!` to a String cannot fail.
        let _ = match n % 10 {
            0 => write!(
                sql,
                "CREATE TABLE IF NOT EXISTS {t} (\n  id bigserial PRIMARY KEY,\n  customer_id \
                 bigint NOT NULL REFERENCES app.customers (id) ON DELETE CASCADE,\n  total \
                 numeric(12, 2) NOT NULL DEFAULT 0,\n  note text,\n  created_at timestamptz NOT \
                 NULL DEFAULT now()\n);\n"
            ),
            1 => write!(
                sql,
                "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS status varchar(20) DEFAULT 'new';\n\
                 CREATE INDEX IF NOT EXISTS orders_{n}_created_idx ON {t} (created_at, status);\n"
            ),
            2..=4 => {
                let _ = writeln!(sql, "INSERT INTO {t} (customer_id, total, note) VALUES");
                for row in 0..20 {
                    let sep = if row == 19 { ";\n" } else { ",\n" };
                    let _ = write!(
                        sql,
                        "  ({}, {}.{:02}, 'order {n}-{row}; it''s fine'){sep}",
                        n * 31 + row,
                        (n * 7 + row) % 1000,
                        row
                    );
                }
                Ok(())
            }
            5 => writeln!(
                sql,
                "UPDATE {t} SET status = 'paid', total = total * 1.2 WHERE id IN (SELECT \
                 order_id FROM app.payments WHERE paid_at > '2024-01-01') AND status <> \
                 'void';"
            ),
            6 => write!(
                sql,
                "/* clean up test rows */\nDELETE FROM {t} WHERE note LIKE 'test%' AND \
                 created_at < now() - interval '30 days';\n"
            ),
            7 => writeln!(
                sql,
                "INSERT INTO {t} (id, customer_id, total) VALUES ({n}, 1, 0) ON CONFLICT (id) \
                 DO UPDATE SET total = excluded.total;"
            ),
            8 => write!(
                sql,
                "CREATE OR REPLACE FUNCTION app.touch_{n}() RETURNS trigger AS $$\nBEGIN\n  \
                 NEW.created_at := now(); -- keep ; inside\n  RETURN NEW;\nEND;\n$$ LANGUAGE \
                 plpgsql;\n"
            ),
            _ => write!(
                sql,
                "ALTER TABLE {t} ALTER COLUMN note SET DEFAULT '';\nCOMMENT ON TABLE {t} IS \
                 'orders, part {n}';\n"
            ),
        };
        n += 1;
    }
    sql.push_str("COMMIT;\n");
    sql
}

/// Times [`ours_classify`] against [`baseline_parse`] over one generated
/// migration, alternating which goes first each round.
pub fn sql_classify_vs_parse(budget: &Budget) -> Result<Measurement, BenchError> {
    let script = migration(budget.sql_bytes);
    // Check both once, untimed: every statement understood, the same count.
    let classified = ours_classify(&script);
    let parsed = baseline_parse(&script)
        .map_err(|e| BenchError::new(format!("sqlparser rejects the migration: {e}")))?;
    if let Some(s) = classified
        .statements
        .iter()
        .find(|s| s.kind == SqlKind::Unknown)
    {
        return Err(BenchError::new(format!(
            "statement {} of the migration is db.unknown: {:?}",
            s.index, s.problem
        )));
    }
    if classified.statements.len() != parsed.len() {
        return Err(BenchError::new(format!(
            "classify found {} statements, sqlparser {}",
            classified.statements.len(),
            parsed.len()
        )));
    }
    let statements = parsed.len();
    drop((classified, parsed));

    let rounds = budget.sql_rounds.max(1);
    let (mut ours_time, mut base_time) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        let mut run_ours = || {
            let start = Instant::now();
            let script = ours_classify(&script);
            ours_time += start.elapsed();
            keep(script);
        };
        let mut run_base = || {
            let start = Instant::now();
            let parsed = baseline_parse(&script);
            base_time += start.elapsed();
            keep(parsed);
        };
        if round % 2 == 0 {
            run_ours();
            run_base();
        } else {
            run_base();
            run_ours();
        }
    }
    let ours_ms = ours_time.as_secs_f64() * 1e3 / rounds as f64;
    let base_ms = base_time.as_secs_f64() * 1e3 / rounds as f64;
    let bytes = script.len() as f64;
    Ok(Measurement::new(
        SQL_CLASSIFY_VS_PARSE,
        ours_ms,
        "ms",
        base_ms,
        base_ms / ours_ms,
        &Goal::at_least("ratio", 0.8),
        extra([
            ("script_bytes", bytes),
            ("statements", statements as f64),
            ("ours_mb_per_s", bytes / 1e3 / ours_ms),
            ("parse_mb_per_s", bytes / 1e3 / base_ms),
        ]),
        format!(
            "prodguard_core::sql::classify (split, parse, classify, fingerprint) of a generated \
             {:.1} MB PostgreSQL migration ({statements} statements) vs \
             sqlparser::Parser::parse_sql of the same text, {rounds} alternating rounds; ratio = \
             parse time / classify time",
            bytes / 1e6
        ),
    ))
}

// ------------------------------------------------------- guarded delete

/// The bytes of each line the raw baseline makes durable, standing for an
/// intent and an outcome record (ours are longer; one fdatasync either way).
pub const RAW_RECORD_BYTES: usize = 300;

/// The delete both sides run: the `rows` oldest sessions of [`sessions_db`].
pub fn delete_sql(rows: usize) -> String {
    format!("DELETE FROM sessions WHERE expires_at <= {rows}")
}

/// Ours: the guarded delete. Classify, decide, read the target's stamp, a
/// durable intent, the delete in one `BEGIN IMMEDIATE` transaction with its
/// rows counted and checked against the rule's `max_rows`, commit, a
/// durable outcome. The bench names the database file as `target`, as an
/// application guarding a SQLite file would, so the stamp is really read.
#[inline(never)]
pub fn ours_guarded_delete(
    guard: &Guard,
    sql: &str,
    target: &str,
    conn: &mut Connection,
) -> Result<SqlRan, RunError<SqlExecError>> {
    guard.sql(sql).target(target).run(conn)
}

/// The baseline: the same delete by hand in one `BEGIN IMMEDIATE`
/// transaction, between two durable lines (`write` + `fdatasync`) of
/// `record` to `log`, where a careful program would note what it is about
/// to do and what it did. Returns the rows deleted.
#[inline(never)]
pub fn baseline_raw_delete(
    conn: &Connection,
    sql: &str,
    log: &File,
    record: &[u8],
) -> Result<usize, BenchError> {
    let sync = |e| BenchError::io("raw delete: write + fdatasync", e);
    let db = |e: rusqlite::Error| BenchError::new(format!("raw delete: {e}"));
    baseline_write_fdatasync(log, record).map_err(sync)?;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
    let rows = match conn.execute(sql, []) {
        Ok(rows) => rows,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(db(e));
        }
    };
    conn.execute_batch("COMMIT").map_err(db)?;
    baseline_write_fdatasync(log, record).map_err(sync)?;
    Ok(rows)
}

/// A fresh SQLite file at `path` (any old one and its WAL removed) holding
/// `sessions` with `2 × rows` rows, `expires_at` 1…2×rows and an index on
/// it: the table a nightly "delete expired sessions" job cleans.
///
/// WAL, as production SQLite applications run it (readers do not block the
/// one writer), with SQLite's default `synchronous = FULL`, so the delete's
/// commit is durable like the records around it. The WAL is checkpointed
/// and truncated, so every run's delete starts from the same files.
pub fn sessions_db(path: &Path, rows: usize) -> Result<Connection, BenchError> {
    let db =
        |what: &str, e: rusqlite::Error| BenchError::new(format!("{what} {}: {e}", path.display()));
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(file));
    }
    let conn = Connection::open(path).map_err(|e| db("open", e))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| db("set WAL on", e))?;
    if mode != "wal" {
        return Err(BenchError::new(format!(
            "{} is in journal mode {mode}, not wal",
            path.display()
        )));
    }
    conn.execute_batch(&format!(
        "BEGIN;
         CREATE TABLE sessions (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL,
                                expires_at INTEGER NOT NULL, data TEXT NOT NULL);
         CREATE INDEX sessions_expires_at ON sessions (expires_at);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
         INSERT INTO sessions SELECT i, i % 997, i, printf('%064d', i * 7919) FROM n;
         COMMIT;",
        2 * rows
    ))
    .map_err(|e| db("fill", e))?;
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(|e| db("checkpoint", e))?;
    if busy != 0 {
        return Err(BenchError::new(format!(
            "the checkpoint of {} was blocked",
            path.display()
        )));
    }
    Ok(conn)
}

/// The guard ours runs under: production, where deletes require audit
/// (fdatasync, the default) and at most `max_rows` rows, and no
/// confirmation, so there is no dry run; the actor is a service.
pub fn delete_guard(audit_log: &Path, max_rows: usize) -> Result<Guard, BenchError> {
    let text = format!(
        "[[rule]]\nname = \"bulk-delete\"\noperations = [\"db.delete.*\"]\n\
         tiers = [\"production\"]\nrequire = [\"audit\"]\nmax_rows = {max_rows}\n"
    );
    let policy = Policy::parse_toml(&text, "bench-delete.toml")
        .map_err(|e| BenchError::new(format!("the delete policy is invalid: {e}")))?;
    Guard::builder()
        .policy(policy)
        .facts(Facts {
            explicit: Some("production".into()),
            ..Facts::default()
        })
        .actor(Actor {
            user: "bench".into(),
            kind: ActorKind::Service,
            account: None,
        })
        .audit_log(audit_log)
        .build()
        .map_err(|e| BenchError::new(format!("cannot build the guard: {e}")))
}

/// One side's database, built afresh (untimed) before each of its runs.
struct Side {
    path: PathBuf,
    target: String,
    conn: Option<Connection>,
}

impl Side {
    fn new(dir: &Path, name: &str) -> Side {
        let path = dir.join(format!("{name}.db"));
        Side {
            target: path.display().to_string(),
            path,
            conn: None,
        }
    }

    /// The database afresh, and the target that names it.
    fn rebuild(&mut self, rows: usize) -> Result<(&mut Connection, &str), BenchError> {
        // Closed before its files are removed.
        self.conn = None;
        let conn = self.conn.insert(sessions_db(&self.path, rows)?);
        Ok((conn, &self.target))
    }
}

fn time_ours(
    guard: &Guard,
    sql: &str,
    side: &mut Side,
    rows: usize,
) -> Result<Duration, BenchError> {
    let (conn, target) = side.rebuild(rows)?;
    let start = Instant::now();
    let ran = ours_guarded_delete(guard, sql, target, conn);
    let took = start.elapsed();
    let ran = ran.map_err(|e| BenchError::new(format!("guarded delete: {e}")))?;
    if ran.rows != [rows as u64] || !ran.committed {
        return Err(BenchError::new(format!(
            "the guarded delete should commit [{rows}] rows, not {:?} (committed: {})",
            ran.rows, ran.committed
        )));
    }
    Ok(took)
}

fn time_raw(
    sql: &str,
    side: &mut Side,
    rows: usize,
    log: &File,
    record: &[u8],
) -> Result<Duration, BenchError> {
    let (conn, _) = side.rebuild(rows)?;
    let start = Instant::now();
    let deleted = baseline_raw_delete(conn, sql, log, record);
    let took = start.elapsed();
    if deleted? != rows {
        return Err(BenchError::new(format!(
            "the raw delete should delete {rows} rows"
        )));
    }
    Ok(took)
}

/// A guarded delete of `rows` rows from a SQLite file of twice as many
/// ([`ours_guarded_delete`]) vs the same delete by hand between two
/// `write` + `fdatasync`s ([`baseline_raw_delete`]). Each run gets a fresh
/// database, built untimed; the two alternate run by run, the guard (built
/// once) appending to one growing log. Ratio = guarded time / raw time.
/// Goal: ≤ 1.5.
pub fn sql_guarded_delete_vs_raw(budget: &Budget) -> Result<Measurement, BenchError> {
    let scratch = budget.scratch("sql-delete")?;
    let dir = scratch.path();
    let rows = budget.sql_delete_rows.max(1);
    let runs = budget.sql_delete_runs.max(1);
    let sql = delete_sql(rows);
    let audit_log = dir.join("audit.jsonl");
    let guard = delete_guard(&audit_log, 2 * rows)?;
    let raw_path = dir.join("raw.jsonl");
    let raw_log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&raw_path)
        .map_err(|e| BenchError::io(format!("open {}", raw_path.display()), e))?;
    let mut record = vec![b'.'; RAW_RECORD_BYTES - 1];
    record.push(b'\n');
    let mut ours = Side::new(dir, "ours");
    let mut raw = Side::new(dir, "raw");

    // Warm-up: the first append creates each log and syncs its directory.
    time_ours(&guard, &sql, &mut ours, rows)?;
    time_raw(&sql, &mut raw, rows, &raw_log, &record)?;

    let mut ours_each = Vec::with_capacity(runs);
    let mut raw_each = Vec::with_capacity(runs);
    for i in 0..runs {
        if i % 2 == 0 {
            ours_each.push(time_ours(&guard, &sql, &mut ours, rows)?);
            raw_each.push(time_raw(&sql, &mut raw, rows, &raw_log, &record)?);
        } else {
            raw_each.push(time_raw(&sql, &mut raw, rows, &raw_log, &record)?);
            ours_each.push(time_ours(&guard, &sql, &mut ours, rows)?);
        }
    }
    let records = 2 * (runs as u64 + 1);
    crate::audit::check_intact(&audit_log, records)?;
    let log_bytes = std::fs::metadata(&audit_log)
        .map_err(|e| BenchError::io(format!("stat {}", audit_log.display()), e))?
        .len() as f64;

    let ms = |d: &[Duration]| d.iter().sum::<Duration>().as_secs_f64() * 1e3 / d.len() as f64;
    let median_ms = |d: &[Duration]| {
        let mut v: Vec<f64> = d.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        crate::timing::median(&mut v)
    };
    let (ours_ms, raw_ms) = (ms(&ours_each), ms(&raw_each));
    Ok(Measurement::new(
        SQL_GUARDED_DELETE_VS_RAW,
        ours_ms,
        "ms",
        raw_ms,
        ours_ms / raw_ms,
        &Goal::at_most("ratio", 1.5),
        extra([
            ("rows_deleted", rows as f64),
            ("table_rows", 2.0 * rows as f64),
            ("runs_per_side", runs as f64),
            ("ours_median_ms", median_ms(&ours_each)),
            ("raw_median_ms", median_ms(&raw_each)),
            ("overhead_ms", ours_ms - raw_ms),
            ("audit_record_bytes", log_bytes / records as f64),
            ("raw_record_bytes", RAW_RECORD_BYTES as f64),
        ]),
        format!(
            "guard.sql(\"{sql}\").target(<the db file, whose stamp is read>).run(&mut conn) in \
             production under a rule requiring audit (fdatasync) with max_rows = {} and no confirmation vs BEGIN \
             IMMEDIATE; the same DELETE; COMMIT through rusqlite between two write + sync_data \
             of a {RAW_RECORD_BYTES}-byte line; a fresh SQLite file per run (WAL, synchronous = \
             FULL, {} rows, index on expires_at), built untimed; {runs} runs each, alternating, \
             in {}; ratio = guarded time / raw time",
            2 * rows,
            2 * rows,
            budget.target_dir.display()
        ),
    ))
}
