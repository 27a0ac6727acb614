//! `prodguard`: detect the environment, check and run guarded operations.
// Printing is this binary's job; the libraries never print.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// `println!` that survives a closed pipe (`prodguard detect | head -1`):
/// the reader left, so stop quietly instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => { $crate::emit(&format!("{}\n", format_args!($($arg)*))) };
}

/// `print!` with the same care.
macro_rules! say_raw {
    ($($arg:tt)*) => { $crate::emit(&format!($($arg)*)) };
}

mod approve;
mod audit;
mod exec;
mod stamp;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use prodguard::{Guard, GuardError, Operation, config};
use prodguard_core::ExitCode as Refusal;
use prodguard_core::Policy;
use prodguard_core::detect::Detection;

const AFTER_HELP: &str = "\
Exit codes (exec passes the command's own code through when it ran):
  120  denied by a policy rule           123  audit log unavailable
  121  confirmation missing or declined  124  environment mismatch with the target's stamp
  122  backup requirement not met        125  usage or policy error
  126  command not executable            127  command not found

Environment:
  PRODGUARD_ENV        declare the environment (e.g. production, staging, development)
  PRODGUARD_POLICY     policy file (default: ./prodguard.toml if present, else built-in)
  PRODGUARD_AUDIT_LOG  audit log path (overrides the policy)
  PRODGUARD_ACTOR      who is acting (default: SUDO_USER, USER, LOGNAME, the uid's name)
  PRODGUARD_APPROVAL   an approval token for the next guarded operation (as exec --approval)
  PRODGUARD_LOG        diagnostics level for stderr (e.g. info, debug; default warn)

Examples:
  prodguard detect --explain
  prodguard check --op db.migrate --target orders.db
  prodguard exec --op db.migrate --target orders.db -- ./migrate.sh";

/// prodguard — know when you are in production, and guard what could hurt it.
///
/// Wraps dangerous commands (migrations, bulk deletes, drops, resets) in the
/// policy's guards: typed confirmation, verified backup, durable audit log.
/// Anything undetermined is treated like production.
#[derive(Debug, Parser)]
#[command(name = "prodguard", version, after_help = AFTER_HELP)]
struct Cli {
    /// Policy file to use (overrides PRODGUARD_POLICY and ./prodguard.toml).
    #[arg(long, global = true, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Say which environment this is, why, and whether guards apply.
    Detect {
        /// Print the detection as JSON (always includes the evidence).
        #[arg(long)]
        json: bool,
        /// List every signal looked at and what it meant.
        #[arg(long)]
        explain: bool,
    },
    /// Show what the guard would require for an operation here; runs nothing.
    ///
    /// Exits 0 when the operation would run without further input, 120 when
    /// a rule denies it, 121 when it needs a confirmation, 124 when the
    /// target's stamp names another environment.
    Check {
        #[command(flatten)]
        op: OpArgs,
        /// Print the decision as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command under the guards; exits with the command's own code.
    Exec {
        #[command(flatten)]
        op: OpArgs,
        /// An approval token from `prodguard approve` (default: PRODGUARD_APPROVAL).
        #[arg(long, value_name = "TOKEN")]
        approval: Option<String>,
        /// Emergency: skip confirmation and backup for this one run where the
        /// policy allows it (break_glass = true); the reason is recorded.
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },
    /// Issue an approval token for one operation on one target; prints it.
    ///
    /// The token binds the operation, target, environment, an optional
    /// fingerprint, you as the approver, an expiry (at most [approval] max_ttl)
    /// and a nonce that is spent by the first run that uses it.
    Approve {
        /// The operation's dotted name.
        #[arg(long = "op", value_name = "KIND")]
        kind: String,
        /// The target it may act on.
        #[arg(long, value_name = "NAME")]
        target: String,
        /// The environment it may run in (default: the one detected here).
        #[arg(long, value_name = "NAME")]
        env: Option<String>,
        /// How long it is valid, e.g. 10m (default and maximum: [approval] max_ttl).
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// What exactly is approved, e.g. a migration's checksum.
        #[arg(long, value_name = "TEXT")]
        fingerprint: Option<String>,
    },
    /// Write the environment into a SQLite database or a PostgreSQL database
    /// (a guarded, audited operation); guarded operations on it then refuse
    /// with 124 anywhere else.
    ///
    /// Re-stamping a database stamped for a more sensitive environment is
    /// guarded as that environment.
    Stamp {
        /// The SQLite database file, or a postgresql:// URL.
        #[arg(long, value_name = "DB")]
        target: String,
        /// The environment it belongs to.
        #[arg(long, value_name = "NAME")]
        env: String,
    },
    /// Create a key file: 32 random bytes as hex, readable by its owner only
    /// (for [approval] key_file).
    Keygen {
        /// Where to write it (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check or show policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Fleet mode: prepare the PostgreSQL database that hosts share.
    #[command(subcommand)]
    Fleet(FleetCommand),
}

#[derive(Debug, Args)]
struct OpArgs {
    /// The operation's dotted name, e.g. db.migrate, db.delete.users.
    #[arg(long = "op", value_name = "KIND")]
    kind: String,
    /// What it acts on (a database, a table); confirmation asks for this name.
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// What exactly is done, e.g. a migration's checksum; an approval must name the same.
    #[arg(long, value_name = "TEXT")]
    fingerprint: Option<String>,
}

impl OpArgs {
    fn operation(&self) -> Operation {
        let mut op = Operation::new(self.kind.clone());
        op.target.clone_from(&self.target);
        op.fingerprint.clone_from(&self.fingerprint);
        op
    }
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy file; errors name the line and column.
    Check {
        /// The policy file (TOML, or JSON by its .json extension).
        file: PathBuf,
    },
    /// Print the policy in force (or the built-in default) as TOML.
    Show {
        /// Print the built-in default policy.
        #[arg(long)]
        default: bool,
    },
}

/// `prodguard fleet …`: the PostgreSQL tables fleet mode shares.
#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// Create prodguard's tables (audit trail, spent approvals, locks,
    /// stamps) with their version row; does nothing when they exist.
    Init {
        /// The server: a postgresql:// URL (keep passwords in ~/.pgpass).
        #[arg(value_name = "URL")]
        url: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the hash chain (rotated files included): exit 0 intact, 1 tampered,
    /// 2 torn tail that `repair` can cut, 3 records after the last seal (with
    /// --seal-key) or the anchor not reached (truncated or rolled back).
    Verify {
        #[command(flatten)]
        log: LogArg,
        /// An anchor from `prodguard audit head`, kept off the host.
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
        /// The verification key from `prodguard audit seal-init`: checks every seal.
        #[arg(long, value_name = "FILE")]
        seal_key: Option<PathBuf>,
        /// Verify the trail in PostgreSQL (table prodguard_audit) instead of a file
        /// (the default when the policy sets [audit] sink and no --log is given).
        #[arg(long, value_name = "URL", conflicts_with_all = ["log", "seal_key"])]
        postgres: Option<String>,
    },
    /// Cut an incomplete final record (saved beside the log) and record the recovery;
    /// refuses (exit 1) when any complete record is damaged.
    Repair {
        #[command(flatten)]
        log: LogArg,
    },
    /// Print the records (as JSON Lines with --json).
    Show {
        #[command(flatten)]
        log: LogArg,
        /// Print the records exactly as stored.
        #[arg(long)]
        json: bool,
    },
    /// Print the head as a JSON anchor to store off the host.
    Head {
        #[command(flatten)]
        log: LogArg,
    },
    /// Create the seal key ([audit] seal_key_file) and print the verification
    /// key, which belongs off the host.
    SealInit {
        /// Where the key goes (default: the policy's [audit] seal_key_file).
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Append a seal record now (the policy also seals every seal_every records).
    Seal {
        #[command(flatten)]
        log: LogArg,
    },
    /// Append a note to the chain; prints its seq once it is durable. With the
    /// policy's [audit] sink, the note goes to the PostgreSQL trail (and to --log).
    Record {
        #[command(flatten)]
        log: LogArg,
        /// The note.
        #[arg(long, value_name = "TEXT")]
        message: String,
    },
}

#[derive(Debug, Args)]
struct LogArg {
    /// The log (default: PRODGUARD_AUDIT_LOG, the policy's [audit] log, or the state directory's).
    #[arg(long, value_name = "PATH")]
    log: Option<PathBuf>,
}

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
    match run(cli) {
        Ok(status) => code(status),
        Err(e) => {
            eprintln!("prodguard: {e}");
            code(e.exit_code().code())
        }
    }
}

fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // 128 + SIGPIPE, as if the signal had ended us.
            std::process::exit(141);
        }
        eprintln!("prodguard: cannot write to standard output: {e}");
        std::process::exit(1);
    }
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
        .with_target(false)
        .init();
}

pub(crate) fn load_policy(explicit: Option<&PathBuf>) -> Result<Policy, GuardError> {
    match explicit {
        Some(path) => config::load_policy_file(path),
        None => config::discover_policy(),
    }
}

fn guard(explicit_policy: Option<&PathBuf>) -> Result<Guard, GuardError> {
    Guard::builder()
        .policy(load_policy(explicit_policy)?)
        .build()
}

fn print_json(value: &impl serde::Serialize) -> Result<(), GuardError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| GuardError::Policy(format!("cannot render JSON: {e}")))?;
    say!("{text}");
    Ok(())
}

fn run(cli: Cli) -> Result<i32, GuardError> {
    match cli.command {
        Command::Detect { json, explain } => {
            let guard = guard(cli.policy.as_ref())?;
            let detection = guard.detection();
            if json {
                print_json(detection)?;
            } else {
                print_detection(detection, explain);
            }
            Ok(0)
        }
        Command::Check { op, json } => {
            let guard = guard(cli.policy.as_ref())?;
            // exec reads the target's stamp before anything else; so does check.
            let check = guard.check(&op.operation());
            let (operation, decision, stamp, exit_code) = (
                &check.operation,
                &check.decision,
                &check.stamp,
                check.exit_code,
            );
            let mismatch = check.stamp_verdict.refuses();
            if json {
                print_json(&serde_json::json!({
                    "operation": operation,
                    "environment": guard.detection().environment,
                    "tier": guard.detection().tier,
                    "protected": guard.detection().protected,
                    "decision": decision,
                    "stamp": stamp.as_ref().ok(),
                    "exit_code": exit_code,
                }))?;
            } else {
                print_decision(operation, guard.detection(), decision);
                match stamp {
                    Ok(Some(s)) if mismatch => say!(
                        "  stamp: the target is stamped `{}` (tier {}); exec would refuse with 124",
                        s.environment,
                        s.tier
                    ),
                    Err(e) => say!("  stamp: cannot be read ({e}); exec would refuse with 124"),
                    _ => {}
                }
            }
            Ok(exit_code)
        }
        Command::Exec {
            op,
            approval,
            break_glass,
            command,
        } => {
            let mut operation = op.operation();
            operation.break_glass = break_glass;
            let mut builder = Guard::builder().policy(load_policy(cli.policy.as_ref())?);
            if let Some(token) = approval {
                builder = builder.approval(token);
            }
            exec::run(&builder.build()?, operation, &command)
        }
        Command::Approve {
            kind,
            target,
            env,
            ttl,
            fingerprint,
        } => {
            let guard = guard(cli.policy.as_ref())?;
            let token = approve::issue(&guard, &kind, &target, env, ttl.as_deref(), fingerprint)?;
            say!("{token}");
            Ok(0)
        }
        Command::Stamp { target, env } => {
            stamp::run(load_policy(cli.policy.as_ref())?, &target, &env)
        }
        Command::Keygen { out } => match prodguard::approval::generate_key(&out) {
            Ok(()) => {
                eprintln!("prodguard: wrote a new key to {}", out.display());
                Ok(0)
            }
            Err(e) => {
                eprintln!("prodguard: {e}");
                Ok(Refusal::PolicyError.code())
            }
        },
        Command::Policy(PolicyCommand::Check { file }) => {
            let policy = config::load_policy_file(&file)?;
            say!(
                "{}: ok ({} rule{})",
                file.display(),
                policy.rules.len(),
                if policy.rules.len() == 1 { "" } else { "s" }
            );
            Ok(0)
        }
        Command::Policy(PolicyCommand::Show { default }) => {
            if default {
                say_raw!("{}", prodguard_core::policy::DEFAULT_POLICY_TOML);
            } else {
                let policy = load_policy(cli.policy.as_ref())?;
                say!("# effective policy, from {}", policy.source);
                say_raw!("{}", policy.to_toml_string());
            }
            Ok(0)
        }
        Command::Audit(command) => audit::run(command, cli.policy.as_ref()),
        Command::Fleet(FleetCommand::Init { url }) => {
            let server = prodguard::pg::PgServer::parse(&url)
                .map_err(|e| GuardError::Policy(e.to_string()))?;
            match server.init_schema() {
                Ok(version) => {
                    say!(
                        "{}: prodguard tables ready (schema version {version})",
                        server.name()
                    );
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("prodguard: {e}");
                    Ok(Refusal::AuditUnavailable.code())
                }
            }
        }
    }
}

fn print_detection(detection: &Detection, explain: bool) {
    let guarded = if detection.protected {
        "protected: guarded operations must meet the policy's rules here \
         (`prodguard check --op KIND` shows them)"
    } else {
        "not protected"
    };
    say!(
        "environment: {} (tier {})\n{guarded}\ndecided by:  {}",
        detection.environment,
        detection.tier,
        detection.decided_by
    );
    if let Some(hint) = &detection.hint {
        say!("hint:        {hint}");
    }
    for conflict in &detection.conflicts {
        let pairs: Vec<String> = conflict
            .sources
            .iter()
            .zip(&conflict.tiers)
            .map(|(s, t)| format!("{s} says {t}"))
            .collect();
        say!(
            "conflict:    {}; the most sensitive, {}, wins",
            pairs.join(", "),
            conflict.resolved
        );
    }
    if explain {
        say!("evidence:");
        for e in &detection.evidence {
            let mark = if e.used { "*" } else { " " };
            say!("  {mark} {:<38} {}", e.source, e.meaning);
        }
        say!("  (* = took part in the decision)");
    }
}

fn print_decision(operation: &Operation, detection: &Detection, decision: &prodguard::Decision) {
    let target = operation
        .target
        .as_deref()
        .map(|t| format!(" on {t}"))
        .unwrap_or_default();
    let verdict = match decision.result {
        prodguard_core::session::Verdict::Allow => "allowed".to_owned(),
        prodguard_core::session::Verdict::Deny => "DENIED".to_owned(),
        prodguard_core::session::Verdict::Require => {
            let names: Vec<&str> = decision
                .requirements
                .iter()
                .map(|r| r.kind.as_str())
                .collect();
            format!("requires {}", names.join(" + "))
        }
        other => format!("{other:?}"),
    };
    say!(
        "{}{target} in {} (tier {}): {verdict}",
        operation.kind,
        detection.environment,
        detection.tier
    );
    for requirement in &decision.requirements {
        say!(
            "  - {}: {} (rule `{}`)",
            requirement.kind.as_str(),
            requirement.how,
            requirement.rule
        );
    }
    for reason in &decision.reasons {
        say!("  why: {reason}");
    }
    say!(
        "  exit code without a terminal or evidence: {}",
        decision.exit_code
    );
}
