//! `prodguard sql check`: what each statement of a script does, and what
//! the guard would require to run the script here; runs nothing.
//! `prodguard sql exec`: run it under the guards, in one transaction.

use std::io::Read;
use std::path::{Path, PathBuf};

use prodguard::small_file::{self, SQL_SCRIPT_MAX_BYTES};
use prodguard::sql::{self, Dialect, RowBounds, Script};
use prodguard::sql_exec::SqlExecError;
use prodguard::{Guard, GuardError, RunError, SqlRan};
use prodguard_core::json_api::SqlAnswer;
use prodguard_core::text::escape;

use super::check::{answer, check_json, print_decision};
use super::{guard, load_policy, print_policy_summary, token_hint};
use crate::cli::SqlCommand;
use crate::envelope::{self, Envelope};

pub(crate) fn run(command: SqlCommand, policy: Option<&PathBuf>) -> Result<Envelope, GuardError> {
    match command {
        SqlCommand::Check {
            dialect,
            target,
            json,
            file,
        } => check(policy, dialect.as_deref(), target.as_deref(), json, &file),
        SqlCommand::Exec {
            target,
            dialect,
            approval,
            break_glass,
            dry_run,
            json,
            file,
        } => exec(
            policy,
            &Database::parse(&target)?,
            dialect.as_deref(),
            Run {
                approval,
                break_glass,
                dry_run,
                json,
            },
            &file,
        ),
    }
}

/// The database `sql exec --target` names.
enum Database<'a> {
    /// A SQLite file (`sqlite:PATH`, or a path with a SQLite extension).
    Sqlite(&'a str),
    /// A `postgresql://` URL.
    Postgres(&'a str),
}

impl<'a> Database<'a> {
    fn parse(target: &'a str) -> Result<Self, GuardError> {
        if prodguard::pg::is_postgres_url(target) {
            return Ok(Database::Postgres(target));
        }
        let path = sqlite_path(target);
        if path != target || Dialect::from_target(target) == Some(Dialect::Sqlite) {
            return Ok(Database::Sqlite(path));
        }
        Err(GuardError::Policy(format!(
            "--target {}: name the database as sqlite:PATH (or a *.db, *.sqlite or *.sqlite3 \
             file) or a postgresql:// URL",
            escape(target)
        )))
    }

    /// What the guard calls it: what a person types, an approval names and
    /// the stamp is read from (a URL's password is dropped by the guard).
    fn name(&self) -> &'a str {
        match self {
            Database::Sqlite(path) | Database::Postgres(path) => path,
        }
    }

    fn dialect(&self) -> Dialect {
        match self {
            Database::Sqlite(_) => Dialect::Sqlite,
            Database::Postgres(_) => Dialect::Postgres,
        }
    }
}

/// A SQLite target as the guard names it: the path, without `sqlite:`.
fn sqlite_path(target: &str) -> &str {
    target.strip_prefix("sqlite:").unwrap_or(target)
}

/// The script in `file`, classified in `dialect` (default: the one
/// `target` names), and the target as a run of it names it: what `prodguard
/// approve --sql` binds.
pub(crate) fn read_classified(
    file: &Path,
    dialect: Option<&str>,
    target: &str,
) -> Result<(Script, String), GuardError> {
    let dialect = dialect_for(dialect, Some(target))?;
    // The run reads the script in the database's dialect: approving it in
    // another would bind another reading.
    if let Some(database) = Dialect::from_target(target).filter(|d| *d != dialect) {
        return Err(GuardError::Policy(format!(
            "--dialect {dialect}, but the target's database speaks {database}: the script is \
             read in the database's dialect"
        )));
    }
    let text = read_script(file)?;
    Ok((
        sql::classify(&text, dialect),
        sqlite_path(target).to_owned(),
    ))
}

/// How `sql exec` runs the script.
struct Run {
    approval: Option<String>,
    break_glass: Option<String>,
    dry_run: bool,
    /// Answer in the envelope only.
    json: bool,
}

fn exec(
    policy: Option<&PathBuf>,
    database: &Database<'_>,
    dialect: Option<&str>,
    run: Run,
    file: &Path,
) -> Result<Envelope, GuardError> {
    if let Some(asked) = dialect {
        let asked = dialect_for(Some(asked), None)?;
        if asked != database.dialect() {
            return Err(GuardError::Policy(format!(
                "--dialect {asked}, but the database speaks {}: the script is read in the \
                 database's dialect",
                database.dialect()
            )));
        }
    }
    let text = read_script(file)?;
    let mut builder = Guard::builder().policy(load_policy(policy)?);
    if let Some(token) = run.approval {
        builder = builder.approval(token);
    }
    let guard = builder.build()?;
    let mut guarded = guard.sql(&text).target(database.name());
    if let Some(reason) = run.break_glass {
        guarded = guarded.break_glass(reason);
    }
    if run.dry_run {
        guarded = guarded.dry_run();
    }
    let ran = match database {
        Database::Sqlite(path) => {
            let mut conn =
                prodguard::sql_exec::open_sqlite(Path::new(path)).map_err(GuardError::Policy)?;
            guarded.run(&mut conn)
        }
        Database::Postgres(url) => {
            let server = prodguard::pg::PgServer::parse(url)
                .map_err(|e| GuardError::Policy(e.to_string()))?;
            let mut client = server
                .connect()
                .map_err(|e| GuardError::Policy(e.to_string()))?;
            let mut conn = prodguard::sql_exec::Postgres::new(&mut client, guard.policy().sql());
            guarded.run(&mut conn)
        }
    };
    report(&guard, ran, run.json, || {
        let script = sql::classify(&text, database.dialect());
        let mut operation = prodguard::Operation::new(script.operation.as_str());
        operation.target = Some(database.name().to_owned());
        operation.fingerprint = Some(script.fingerprint);
        operation
    })
}

/// Prints what the run did (or why not) and returns the answer: 0, the
/// refusal's 120–125, or 1 when a statement failed.
fn report(
    guard: &Guard,
    ran: Result<SqlRan, RunError<SqlExecError>>,
    json: bool,
    operation: impl FnOnce() -> prodguard::Operation,
) -> Result<Envelope, GuardError> {
    match ran {
        Ok(ran) => {
            let mut statements = Vec::new();
            for statement in &ran.script.statements {
                let rows = ran.rows.get(statement.index).copied().unwrap_or(0);
                statements.push(serde_json::json!({
                    "index": statement.index,
                    "line": statement.line,
                    "kind": statement.kind,
                    "tables": statement.tables,
                    "rows": rows,
                }));
                if json {
                    continue;
                }
                let mut line = format!(
                    "[{}] line {}: {}",
                    statement.index, statement.line, statement.kind
                );
                line.push_str(&tables(statement));
                say!("{line}: {rows} row{}", if rows == 1 { "" } else { "s" });
            }
            if !json {
                if ran.committed {
                    say!("committed");
                } else {
                    say!("dry run: rolled back, nothing was changed");
                }
            }
            Ok(envelope::ok(serde_json::json!({
                "statements": statements,
                "committed": ran.committed,
                "operation": ran.script.operation.as_str(),
                "fingerprint": ran.script.fingerprint,
            })))
        }
        Err(RunError::Refused(e)) => {
            let refused = envelope::error(e.exit_code().code(), e.to_string()).told();
            // Classified again only for a missing confirmation, to say how
            // a token reaches this run.
            let hint = (e.exit_code() == prodguard::ExitCode::NotConfirmed)
                .then(|| {
                    token_hint(
                        guard,
                        &operation(),
                        &e,
                        "with --approval TOKEN or in PRODGUARD_APPROVAL",
                    )
                })
                .flatten();
            if let Some(hint) = hint {
                tell!("  {hint}");
            }
            Ok(refused)
        }
        Err(RunError::Failed(e)) => Ok(envelope::error(1, e.to_string()).told()),
    }
}

fn check(
    policy: Option<&PathBuf>,
    dialect: Option<&str>,
    target: Option<&str>,
    json: bool,
    file: &Path,
) -> Result<Envelope, GuardError> {
    let dialect = dialect_for(dialect, target)?;
    let text = read_script(file)?;
    let guard = guard(policy)?;
    let script = sql::classify(&text, dialect);
    // The checks a run makes before asking anyone, for the script's
    // operation; the row bounds are the core's too.
    let check = guard.check_sql(&script, target);
    let bounds = sql::decide(guard.policy(), guard.detection(), &script, target).bounds;
    if !json {
        print_script(file, &script, &bounds);
        print_decision(&check, guard.detection());
        print_policy_summary(&guard);
    }
    let classified = SqlAnswer::new(&script, bounds);
    let mut value = check_json(&guard, &check);
    // The script's answer in place of `check`'s operation.
    value.remove("operation");
    for (key, field) in [
        ("dialect", serde_json::json!(classified.dialect)),
        ("statements", serde_json::json!(classified.statements)),
        ("operation", serde_json::json!(classified.operation)),
        ("destructive", serde_json::json!(classified.destructive)),
        ("fingerprint", serde_json::json!(classified.fingerprint)),
        ("bounds", serde_json::json!(classified.bounds)),
        ("target", serde_json::json!(check.operation.target)),
    ] {
        value.insert(key.to_owned(), field);
    }
    Ok(answer(&check, value))
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
        line.push_str(&tables(statement));
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

/// " t1, t2": the tables a statement names, escaped; empty when none.
fn tables(statement: &sql::Statement) -> String {
    if statement.tables.is_empty() {
        return String::new();
    }
    let tables: Vec<String> = statement
        .tables
        .iter()
        .map(|t| escape(t).into_owned())
        .collect();
    format!(" {}", tables.join(", "))
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
        say!(
            "      a confirmation above {above} rows (the rows of every statement that asks \
             for one, together, counted by a dry run)"
        );
    }
}
