//! `prodguard sql check`: what each statement of a script does, and what
//! the guard would require to run the script here; runs nothing.

use std::io::Read;
use std::path::{Path, PathBuf};

use prodguard::GuardError;
use prodguard::small_file::{self, SQL_SCRIPT_MAX_BYTES};
use prodguard::sql::{self, Dialect, RowBounds, Script};
use prodguard_core::json_api::SqlAnswer;
use prodguard_core::text::escape;

use super::check::{check_json, print_decision};
use super::{guard, print_policy_summary};
use crate::cli::SqlCommand;
use crate::output::print_json;

pub(crate) fn run(command: SqlCommand, policy: Option<&PathBuf>) -> Result<i32, GuardError> {
    match command {
        SqlCommand::Check {
            dialect,
            target,
            json,
            file,
        } => check(policy, dialect.as_deref(), target.as_deref(), json, &file),
    }
}

fn check(
    policy: Option<&PathBuf>,
    dialect: Option<&str>,
    target: Option<&str>,
    json: bool,
    file: &Path,
) -> Result<i32, GuardError> {
    let dialect = dialect_for(dialect, target)?;
    let text = read_script(file)?;
    let guard = guard(policy)?;
    let script = sql::classify(&text, dialect);
    // The checks a run makes before asking anyone, for the script's
    // operation; the row bounds are the core's too.
    let check = guard.check_sql(&script, target);
    let bounds = sql::decide(guard.policy(), guard.detection(), &script, target).bounds;
    if json {
        let answer = SqlAnswer::new(&script, bounds);
        let mut json = check_json(&guard, &check);
        // The script's answer in place of `check`'s operation.
        json.remove("operation");
        for (key, value) in [
            ("dialect", serde_json::json!(answer.dialect)),
            ("statements", serde_json::json!(answer.statements)),
            ("operation", serde_json::json!(answer.operation)),
            ("destructive", serde_json::json!(answer.destructive)),
            ("fingerprint", serde_json::json!(answer.fingerprint)),
            ("bounds", serde_json::json!(answer.bounds)),
            ("target", serde_json::json!(check.operation.target)),
        ] {
            json.insert(key.to_owned(), value);
        }
        print_json(&json)?;
    } else {
        print_script(file, &script, &bounds);
        print_decision(&check, guard.detection());
        print_policy_summary(&guard);
    }
    Ok(check.exit_code)
}

/// `--dialect`, else the one the target names; never a guess.
fn dialect_for(dialect: Option<&str>, target: Option<&str>) -> Result<Dialect, GuardError> {
    if let Some(name) = dialect {
        return name
            .parse()
            .map_err(|e: sql::UnknownDialect| GuardError::Policy(format!("--dialect: {e}")));
    }
    target.and_then(Dialect::from_target).ok_or_else(|| {
        GuardError::Policy(
            "say which SQL dialect the script is written in with --dialect postgres, sqlite, \
             mysql or generic (only a --target URL or SQLite file name says it): read in \
             another dialect, a statement can hide in what looks like a string"
                .into(),
        )
    })
}

/// The script's text from `file`, or standard input for `-`, at most
/// [`SQL_SCRIPT_MAX_BYTES`].
fn read_script(file: &Path) -> Result<String, GuardError> {
    let shown = escape(&file.to_string_lossy()).into_owned();
    let bytes = if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(SQL_SCRIPT_MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| GuardError::Policy(format!("cannot read the script from stdin: {e}")))?;
        if bytes.len() as u64 > SQL_SCRIPT_MAX_BYTES {
            return Err(too_large("standard input"));
        }
        bytes
    } else {
        small_file::read(file, SQL_SCRIPT_MAX_BYTES).map_err(|e| {
            if e.kind() == std::io::ErrorKind::FileTooLarge {
                too_large(&shown)
            } else {
                GuardError::Policy(format!(
                    "cannot read the script {shown}: {e} (give a regular file, or `-` for \
                     standard input)"
                ))
            }
        })?
    };
    String::from_utf8(bytes).map_err(|e| {
        GuardError::Policy(format!(
            "the script {shown} is not UTF-8 (byte {}): convert it, e.g. with iconv",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn too_large(what: &str) -> GuardError {
    GuardError::Policy(format!(
        "the script in {what} is larger than {} MiB: split it, and check each part",
        SQL_SCRIPT_MAX_BYTES >> 20
    ))
}

fn print_script(file: &Path, script: &Script, bounds: &[RowBounds]) {
    let count = script.statements.len();
    say!(
        "{} ({}): {count} statement{}",
        escape(&file.to_string_lossy()),
        script.dialect,
        if count == 1 { "" } else { "s" }
    );
    for statement in &script.statements {
        let mut line = format!(
            "  [{}] line {}: {}",
            statement.index, statement.line, statement.kind
        );
        if statement.destructive {
            line.push_str(" (destructive)");
        }
        if !statement.tables.is_empty() {
            let tables: Vec<String> = statement
                .tables
                .iter()
                .map(|t| escape(t).into_owned())
                .collect();
            line.push_str(&format!(" {}", tables.join(", ")));
        }
        if statement.cascades {
            line.push_str(" CASCADE");
        }
        if let Some(problem) = &statement.problem {
            line.push_str(&format!(" — {}", escape(problem)));
        }
        say!("{line}");
        if let Some(bound) = bounds.get(statement.index) {
            print_bound(bound);
        }
    }
    say!(
        "operation:   {}{}",
        script.operation,
        if script.destructive {
            " (destructive)"
        } else {
            ""
        }
    );
    say!("fingerprint: {}", script.fingerprint);
}

/// A statement's row bounds, when the policy sets any.
fn print_bound(bound: &RowBounds) {
    if let (Some(max), Some(rule)) = (bound.max_rows, &bound.max_rows_rule) {
        say!(
            "      at most {max} rows, else refused and rolled back (rule `{}`)",
            escape(rule)
        );
    }
    if let (true, Some(above)) = (bound.confirm, bound.confirm_above_rows) {
        say!("      a confirmation above {above} rows (when prodguard runs it)");
    }
}
