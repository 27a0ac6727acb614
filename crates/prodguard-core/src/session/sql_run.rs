//! What a session running a classified SQL script adds to the guard: a
//! dry run whose rows a person sees before confirming, and the bounds the
//! real run's rows must keep for its transaction to commit.

use crate::audit::{ConfirmEvidence, SqlRecord};
use crate::sql::decide::{RowBounds, needs_confirmation, over_bound};
use crate::sql::{Plan, Script, SqlKind, run_plan};
use crate::text::escape;

/// The most statements a confirmation prompt lists one by one.
const MAX_SHOWN: usize = 12;

/// What a dry run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Counted {
    /// None ran (yet).
    NotRun,
    /// One ran but its driver could not count rows (a host without the
    /// database): every rule asking for a confirmation applies.
    Uncounted,
    /// Rows by statement index, rolled back.
    Rows(Vec<u64>),
}

/// A session's script: its bounds, and what its dry run counted.
#[derive(Debug, Clone)]
pub(super) struct SqlRun {
    pub(super) bounds: Vec<RowBounds>,
    /// Each statement's kind, line and tables, for messages.
    statements: Vec<(SqlKind, u64, Vec<String>)>,
    pub(super) record: SqlRecord,
    pub(super) counted: Counted,
    /// `--dry-run`: the dry run is the whole attempt.
    pub(super) only_dry_run: bool,
    /// Why no dry run may count its rows, when none may: a statement the
    /// classifier did not understand (it could commit, or do what a
    /// rollback cannot undo), or one that runs alone outside a transaction.
    pub(super) not_dry_runnable: Option<String>,
    /// Its one statement runs alone, outside a transaction: nothing counts
    /// its rows before it commits.
    pub(super) alone: bool,
}

impl SqlRun {
    pub(super) fn new(script: &Script, bounds: Vec<RowBounds>, only_dry_run: bool) -> Self {
        let alone = matches!(run_plan(script, &bounds), Ok(Plan::Alone(_)));
        let not_dry_runnable = match script.first_unknown() {
            Some(unknown) => Some(format!(
                "statement {} (line {}) is not understood, so no dry run runs it: it could \
                 commit, or do what a rollback cannot undo",
                unknown.index, unknown.line
            )),
            None if alone => Some(
                "its statement cannot run inside a transaction, so no dry run can count it".into(),
            ),
            None => None,
        };
        SqlRun {
            not_dry_runnable,
            alone,
            bounds,
            statements: script
                .statements
                .iter()
                .map(|s| (s.kind, s.line, s.tables.clone()))
                .collect(),
            record: SqlRecord::of(script),
            counted: Counted::NotRun,
            only_dry_run,
        }
    }

    /// The dry run counted rows that need no confirmation (each statement
    /// a rule asks a confirmation for stayed within `confirm_above_rows`).
    pub(super) fn confirmation_waived(&self) -> bool {
        match &self.counted {
            Counted::Rows(rows) => !needs_confirmation(&self.bounds, rows),
            _ => false,
        }
    }

    /// "statement 2 (line 7, db.delete.where on carts)", escaped.
    pub(super) fn describe(&self, index: usize) -> String {
        match self.statements.get(index) {
            Some((kind, line, tables)) if tables.is_empty() => {
                format!("statement {index} (line {line}, {kind})")
            }
            Some((kind, line, tables)) => format!(
                "statement {index} (line {line}, {kind} on {})",
                escape(&tables.join(", "))
            ),
            None => format!("statement {index}"),
        }
    }

    /// What the script will do, for the person asked to confirm: each
    /// destructive statement, or one that changed rows, with its rows.
    pub(super) fn consequences(&self) -> Vec<String> {
        let rows = match &self.counted {
            Counted::Rows(rows) => Some(rows),
            _ => None,
        };
        let mut shown: Vec<String> = Vec::new();
        let mut more = 0usize;
        for (index, (kind, ..)) in self.statements.iter().enumerate() {
            let affected = rows.and_then(|rows| rows.get(index)).copied();
            if !kind.is_destructive() && affected.unwrap_or(0) == 0 {
                continue;
            }
            if shown.len() == MAX_SHOWN {
                more += 1;
                continue;
            }
            let count = match affected {
                Some(1) => "1 row".to_owned(),
                Some(n) => format!("{n} rows"),
                None => "rows not counted".to_owned(),
            };
            shown.push(format!("{}: {count}", self.describe(index)));
        }
        if more > 0 {
            shown.push(format!("and {more} more statements"));
        }
        shown
    }

    /// Why the rows a run counted (`rows[i]` for statement `i`) may not be
    /// committed, as (exit code, what is wrong, what to do); `None` when
    /// every bound holds. `confirmed` is how the run was confirmed.
    pub(super) fn commit_refusal(
        &self,
        rows: &[u64],
        confirmed: Option<&ConfirmEvidence>,
        confirm_required: bool,
    ) -> Option<(crate::ExitCode, String, String)> {
        use crate::ExitCode::{Denied, NotConfirmed};
        if let Some(over) = over_bound(&self.bounds, rows) {
            return Some((
                Denied,
                format!(
                    "{} affected {} rows; rule `{}` allows at most {}",
                    self.describe(over.index),
                    over.rows,
                    escape(&over.rule),
                    over.max_rows
                ),
                format!(
                    "narrow its WHERE, or do it in batches of at most {} rows",
                    over.max_rows
                ),
            ));
        }
        if let Some(max) = confirmed.and_then(|c| c.max_rows)
            && let Some((index, &n)) = rows.iter().enumerate().find(|(_, n)| **n > max)
        {
            return Some((
                NotConfirmed,
                format!(
                    "{} affected {n} rows; the approval allows at most {max} per statement",
                    self.describe(index)
                ),
                "ask for an approval with a --max-rows that covers it, or narrow the statement"
                    .into(),
            ));
        }
        match confirmed {
            // A person confirmed the rows the dry run showed them, not more.
            Some(c) if matches!(c.method.as_str(), "typed" | "callback" | "approval+typed") => {
                if let Counted::Rows(seen) = &self.counted
                    && let Some((index, (&n, &was))) = rows
                        .iter()
                        .zip(seen)
                        .enumerate()
                        .find(|(_, (n, was))| n > was)
                {
                    return Some((
                        NotConfirmed,
                        format!(
                            "{} affected {n} rows, but {was} were shown and confirmed (the \
                             data changed since the dry run)",
                            self.describe(index)
                        ),
                        "run it again and confirm the new count".into(),
                    ));
                }
                None
            }
            // Nobody was asked: the dry run's rows waived the confirmation.
            None if confirm_required && needs_confirmation(&self.bounds, rows) => {
                let total: u64 = self
                    .bounds
                    .iter()
                    .filter(|b| b.confirm)
                    .filter_map(|b| rows.get(b.index))
                    .sum();
                Some((
                    NotConfirmed,
                    format!(
                        "the statements a confirmation is asked for affected {total} rows in \
                         all, more than may run unconfirmed, and nobody confirmed them (the data \
                         changed since the dry run)"
                    ),
                    "run it again and confirm it".into(),
                ))
            }
            _ => None,
        }
    }
}
