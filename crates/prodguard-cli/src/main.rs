//! `prodguard`: detect the environment, check and run guarded operations.
//!
//! The house: [`cli`] is the command line's shape (clap definitions only),
//! [`commands`] holds one module per command family, [`envelope`] is the
//! one shape of every answer (`--json`), [`output`] writes to standard
//! output; this file sets up diagnostics, parses and dispatches.
//!
//! Printing is this binary's job (the libraries never print), and it never
//! panics: std's print macros do when the stream is closed, so they are not
//! used here (the workspace lints deny them).

/// `eprintln!` that never panics: with standard error closed
/// (`prodguard exec … 2>&1 | head -1`) the message is lost, but the exit
/// code stays the decision's and the outcome is still recorded.
macro_rules! tell {
    ($($arg:tt)*) => { $crate::output::tell(&format!("{}\n", format_args!($($arg)*))) };
}

/// `println!` that survives a closed pipe (`prodguard detect | head -1`):
/// the reader left, so stop quietly instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => { $crate::output::emit(&format!("{}\n", format_args!($($arg)*))) };
}

/// `print!` with the same care.
macro_rules! say_raw {
    ($($arg:tt)*) => { $crate::output::emit(&format!($($arg)*)) };
}

mod cli;
mod commands;
mod envelope;
mod output;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use prodguard::GuardError;
use prodguard_core::ExitCode as Refusal;

use cli::{Cli, Command};
use commands::{
    approve, audit, check, detect, exec, fleet, generate, hook, keygen, load_policy, parity,
    policy, rollback, sql, stamp,
};
use envelope::Envelope;

fn main() -> ExitCode {
    init_tracing();
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => return code(usage_error(&e, json_in(std::env::args_os()))),
    };
    let json = leaf_json(&matches);
    let answer = match Cli::from_arg_matches(&matches) {
        Ok(cli) => run(cli),
        Err(e) => return code(usage_error(&e, json)),
    };
    let answer =
        answer.unwrap_or_else(|e| envelope::error(e.exit_code().code(), e.to_string()).told());
    if json {
        answer.print();
    }
    code(output::exit_code(answer.code()))
}

/// Prints clap's help, version or error, and returns the exit code: 0 for
/// help and version asked for, 125 for a usage error — a missing command
/// too (its help goes to stderr), so a script that lost its arguments
/// does not read as a success. Under `--json` a usage error is also the
/// error envelope on stdout, and the version is `{"ok": {"version"}}`.
fn usage_error(e: &clap::Error, json: bool) -> i32 {
    match e.kind() {
        ErrorKind::DisplayVersion if json => {
            envelope::ok(serde_json::json!({
                "name": "prodguard",
                "version": env!("CARGO_PKG_VERSION"),
            }))
            .print();
            output::exit_code(0)
        }
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            0
        }
        kind => {
            let _ = e.print();
            let status = Refusal::PolicyError.code();
            if json {
                let message = if kind == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    "a command is required (`prodguard --help` lists them)".to_owned()
                } else {
                    first_line(e)
                };
                envelope::error(status, message).print();
            }
            status
        }
    }
}

/// Clap's message without its `error: ` prefix, usage and hints.
fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

/// Whether `--json` is among the arguments before `--` (what follows it
/// is `exec`'s command's): read raw when clap could not parse them.
fn json_in(args: impl Iterator<Item = OsString>) -> bool {
    args.skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json")
}

/// Whether the command that runs was given `--json` (commands without the
/// flag have no such argument).
fn leaf_json(matches: &ArgMatches) -> bool {
    let mut leaf = matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    matches!(leaf.try_get_one::<bool>("json"), Ok(Some(true)))
}

fn code(status: i32) -> ExitCode {
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PRODGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Its fallback for a failed write is std's `eprintln!`, which
        // panics on a closed stderr.
        .log_internal_errors(false)
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> Result<Envelope, GuardError> {
    let policy_file = cli.policy.as_ref();
    match cli.command {
        Command::Detect { json, explain } => detect::run(policy_file, json, explain),
        Command::Check { op, json } => check::run(policy_file, &op, json),
        Command::Exec {
            op,
            approval,
            break_glass,
            json,
            command,
        } => exec::run(policy_file, &op, approval, break_glass, json, &command),
        Command::Approve {
            key,
            kind,
            target,
            env,
            ttl,
            fingerprint,
            sql,
            dialect,
            max_rows,
            ledger,
            json,
        } => approve::run(
            policy_file,
            &key,
            approve::Flags {
                kind: kind.as_deref(),
                target: &target,
                env,
                ttl: ttl.as_deref(),
                fingerprint,
                sql: sql.as_deref(),
                dialect: dialect.as_deref(),
                max_rows,
                ledger,
            },
            json,
        ),
        Command::Stamp { target, env, json } => {
            stamp::run(load_policy(policy_file)?, &target, &env, json)
        }
        Command::Keygen {
            approver,
            out,
            json,
        } => keygen::run(&approver, &out, json),
        Command::Policy(command) => policy::run(command, policy_file),
        Command::Audit(command) => audit::run(command, policy_file),
        Command::Fleet(command) => fleet::run(command),
        Command::Parity {
            from,
            to,
            from_env,
            to_env,
            json,
        } => parity::run(
            parity::Side {
                trail: &from,
                env: from_env.as_deref(),
            },
            parity::Side {
                trail: &to,
                env: to_env.as_deref(),
            },
            json,
        ),
        Command::Rollback {
            attempt_id,
            show,
            approval,
            json,
        } => rollback::run(policy_file, &attempt_id, show, approval, json),
        Command::Sql(command) => sql::run(command, policy_file),
        Command::Hook(command) => hook::run(command, policy_file),
        Command::Completions { shell } => Ok(generate::completions(shell)),
        Command::Man => generate::man(),
    }
}
