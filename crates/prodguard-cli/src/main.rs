//! `prodguard`: detect the environment, check and run guarded operations.
//!
//! The house: [`cli`] is the command line's shape (clap definitions only),
//! [`commands`] holds one module per command family, [`output`] writes to
//! standard output; this file sets up diagnostics, parses and dispatches.
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
mod output;

use std::process::ExitCode;

use clap::Parser;
use prodguard::GuardError;
use prodguard_core::ExitCode as Refusal;

use cli::{Cli, Command};
use commands::{
    approve, audit, check, detect, exec, fleet, hook, keygen, load_policy, policy, sql, stamp,
};

fn main() -> ExitCode {
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    ExitCode::SUCCESS
                }
                _ => code(Refusal::PolicyError.code()),
            };
        }
    };
    let status = match run(cli) {
        Ok(status) => status,
        Err(e) => {
            tell!("prodguard: {e}");
            e.exit_code().code()
        }
    };
    code(output::exit_code(status))
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

fn run(cli: Cli) -> Result<i32, GuardError> {
    let policy_file = cli.policy.as_ref();
    match cli.command {
        Command::Detect { json, explain } => detect::run(policy_file, json, explain),
        Command::Check { op, json } => check::run(policy_file, &op, json),
        Command::Exec {
            op,
            approval,
            break_glass,
            command,
        } => exec::run(policy_file, &op, approval, break_glass, &command),
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
        ),
        Command::Stamp { target, env } => stamp::run(load_policy(policy_file)?, &target, &env),
        Command::Keygen { approver, out } => keygen::run(&approver, &out),
        Command::Policy(command) => policy::run(command, policy_file),
        Command::Audit(command) => audit::run(command, policy_file),
        Command::Fleet(command) => fleet::run(command),
        Command::Sql(command) => sql::run(command, policy_file),
        Command::Hook(command) => hook::run(command, policy_file),
    }
}
