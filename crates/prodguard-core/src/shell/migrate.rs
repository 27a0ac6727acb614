//! Migration tools that drop, reset or roll back a database: Rails and
//! rake, Laravel's artisan, Prisma, Alembic, Flyway, sqlx, Diesel.

use super::Recognized;
use super::args::{Spec, head, literals, operands};
use super::lex::Word;
use super::recognize::Cmd;
use super::target::{self, Field};
use super::wrappers::program_name;

/// The database a migration tool works on: `DATABASE_URL` (from `extra`,
/// the command's environment, or the line's), normalised; empty when
/// unknown.
fn migration_target(cmd: &Cmd<'_>, extra: &[(String, String)], names: &[&str]) -> Vec<String> {
    url_target(cmd, extra, names, target::database_url)
}

/// [`migration_target`] with the URL read by `read`.
fn url_target(
    cmd: &Cmd<'_>,
    extra: &[(String, String)],
    names: &[&str],
    read: fn(&str, Option<&str>) -> Option<String>,
) -> Vec<String> {
    for name in names {
        let value = match extra.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Field::Known(v.clone()),
            None => cmd.env(name),
        };
        match value {
            Field::Known(url) => {
                return read(&url, cmd.cwd()).into_iter().collect();
            }
            Field::Unknown => return Vec::new(),
            Field::Unset => {}
        }
    }
    Vec::new()
}

/// Rails and rake tasks.
pub(super) fn rails(cmd: &Cmd<'_>) -> Option<Recognized> {
    let mut worst: Option<(u8, &str)> = None;
    let mut extra = Vec::new();
    let mut words = cmd.args().iter();
    while let Some(w) = words.next() {
        let t = head(w);
        if matches!(
            t,
            "-e" | "--environment" | "-f" | "--rakefile" | "-C" | "--directory"
        ) {
            words.next();
            continue;
        }
        if t.starts_with('-') {
            continue;
        }
        if let Some(len) = w.assignment {
            // `rake task NAME=value` sets NAME for the task.
            let full = w.value();
            let name = full.get(..len).unwrap_or_default().trim_end_matches('=');
            if let Some(value) = w.suffix(len).and_then(|v| cmd.value(&v)) {
                extra.push((name.to_owned(), value));
            }
            continue;
        }
        let Some(task) = cmd.value(w) else { continue };
        let task = task.split('[').next().unwrap_or_default();
        let is = |base: &str| {
            task == base
                || task
                    .strip_prefix(base)
                    .is_some_and(|rest| rest.starts_with(':'))
        };
        let kind = if is("db:drop") {
            Some((4, "db.drop.database"))
        } else if is("db:reset")
            || is("db:schema:load")
            || is("db:structure:load")
            || is("db:setup")
            || is("db:purge")
            || is("db:migrate:reset")
        {
            Some((3, "db.reset"))
        } else if is("db:truncate_all") || is("db:seed:replant") {
            Some((2, "db.truncate"))
        } else if is("db:rollback") || is("db:migrate:down") || is("db:migrate:redo") {
            Some((1, "db.migrate.down"))
        } else {
            None
        };
        if let Some(kind) = kind
            && worst.is_none_or(|w| kind.0 > w.0)
        {
            worst = Some(kind);
        }
    }
    let (_, kind) = worst?;
    let targets = migration_target(cmd, &extra, &["DATABASE_URL"]);
    Some(cmd.found(kind, targets, None))
}

/// Laravel's `php artisan …` (also `./artisan`, `sail artisan`).
pub(super) fn artisan(cmd: &Cmd<'_>, name: &str) -> Option<Recognized> {
    let args = cmd.args();
    let rest = match name {
        "artisan" => args,
        _ => {
            let first = args.first()?.literal()?;
            let ok = match name {
                "php" => program_name(first) == "artisan",
                _ => matches!(first, "artisan" | "art"),
            };
            if !ok {
                return None;
            }
            args.get(1..).unwrap_or_default()
        }
    };
    if rest.iter().any(|w| head(w) == "--pretend") {
        return None;
    }
    let ops = operands(rest, &[]);
    let kind = match literals(&ops).first().copied()? {
        "migrate:fresh" | "migrate:reset" | "migrate:refresh" | "db:wipe" => "db.reset",
        "migrate:rollback" => "db.migrate.down",
        _ => return None,
    };
    let targets = migration_target(cmd, &[], &["DATABASE_URL", "DB_URL"]);
    Some(cmd.found(kind, targets, None))
}

pub(super) fn prisma(cmd: &Cmd<'_>) -> Option<Recognized> {
    let args = cmd.args();
    let ops = operands(args, &["--schema"]);
    let kind = match literals(&ops).as_slice() {
        ["migrate", "reset", ..] => "db.reset",
        ["db", "push", ..] if args.iter().any(|w| head(w) == "--force-reset") => "db.reset",
        _ => return None,
    };
    let targets = migration_target(cmd, &[], &["DATABASE_URL"]);
    Some(cmd.found(kind, targets, None))
}

pub(super) fn alembic(cmd: &Cmd<'_>) -> Option<Recognized> {
    let args = cmd.args();
    let ops = operands(args, &["-c", "--config", "-n", "--name", "-x"]);
    if literals(&ops).first().copied()? != "downgrade" || args.iter().any(|w| head(w) == "--sql") {
        return None;
    }
    // Alembic's `env.py` reads the URL; SQLAlchemy's rules apply to it.
    let targets = url_target(cmd, &[], &["DATABASE_URL"], target::sqlalchemy_url);
    Some(cmd.found("db.migrate.down", targets, None))
}

pub(super) fn flyway(cmd: &Cmd<'_>) -> Option<Recognized> {
    let args = cmd.args();
    let ops = operands(args, &[]);
    if !literals(&ops).contains(&"clean") {
        return None;
    }
    let url = args
        .iter()
        .rev()
        .find(|w| head(w).starts_with("-url="))
        .and_then(|w| w.suffix("-url=".len()));
    let targets = match url {
        Some(url) => cmd
            .value(&url)
            .and_then(|u| target::database_url(&u, cmd.cwd()))
            .into_iter()
            .collect(),
        None => migration_target(cmd, &[], &["FLYWAY_URL", "DATABASE_URL"]),
    };
    Some(cmd.found("db.reset", targets, None))
}

/// `sqlx database drop|reset`, `sqlx migrate revert`, `diesel database
/// reset`, `diesel migration revert|redo`.
pub(super) fn sqlx_diesel(cmd: &Cmd<'_>, name: &str) -> Option<Recognized> {
    const SPEC: Spec = Spec {
        short: "D",
        attached_short: "",
        long: &[
            "database-url",
            "source",
            "migration-dir",
            "config",
            "connect-timeout",
        ],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&SPEC);
    let ops: Vec<&Word> = opts.operands.iter().collect();
    let kind = match (name, literals(&ops).as_slice()) {
        ("sqlx", ["database", "drop", ..]) => "db.drop.database",
        ("sqlx" | "diesel", ["database", "reset", ..]) => "db.reset",
        ("diesel", ["database", "drop", ..]) => "db.drop.database",
        ("sqlx", ["migrate", "revert", ..]) => "db.migrate.down",
        ("diesel", ["migration", "revert" | "redo", ..]) => "db.migrate.down",
        _ => return None,
    };
    let targets = match opts.last(&["D", "database-url"]) {
        Some(url) => cmd
            .value(url)
            .and_then(|u| target::database_url(&u, cmd.cwd()))
            .into_iter()
            .collect(),
        None => migration_target(cmd, &[], &["DATABASE_URL"]),
    };
    Some(cmd.found(kind, targets, None))
}
