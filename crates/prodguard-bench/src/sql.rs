//! SQL classification: `sql::classify` over a generated 5 MB migration vs
//! sqlparser's bare parse of the same text.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use prodguard_core::sql::{Dialect, Script, SqlKind, classify};
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};

use crate::timing::keep;
use crate::{BenchError, Budget, Goal, Measurement, SQL_CLASSIFY_VS_PARSE, extra};

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
