//! `prodguard exec`: run a command under the guards.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use prodguard::{Guard, GuardError, Operation};
use prodguard_core::ExitCode as Refusal;
use prodguard_core::text::{escape, shell_word};
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::low_level::siginfo::{Cause, Origin};

use serde_json::json;

use super::{load_policy, token_hint};
use crate::cli::OpArgs;
use crate::envelope::{self, Envelope};

const FORWARDED: [i32; 6] = [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2];

/// Builds the guard (with the approval token, if one is given) and runs
/// `command` under it. Under `--json` the command's standard output is
/// our standard error, so ours carries the envelope alone.
pub(crate) fn run(
    policy: Option<&PathBuf>,
    op: &OpArgs,
    approval: Option<String>,
    break_glass: Option<String>,
    json: bool,
    command: &[OsString],
) -> Result<Envelope, GuardError> {
    let mut operation = op.operation();
    operation.break_glass = break_glass;
    let mut builder = Guard::builder().policy(load_policy(policy)?);
    if let Some(token) = approval {
        builder = builder.approval(token);
    }
    admit_and_run(&builder.build()?, operation, command, command_stdout(json)?)
}

/// The wrapped command's standard output: ours, or under `--json` our
/// standard error, so ours carries the envelope alone.
pub(crate) fn command_stdout(json: bool) -> Result<Stdio, GuardError> {
    if !json {
        return Ok(Stdio::inherit());
    }
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| GuardError::Policy(format!("cannot pass standard error on: {e}")))?;
    Ok(Stdio::from(stderr))
}

/// Whether the command ran, for the envelope's `data`.
fn ran(ran: bool, code: i32) -> serde_json::Value {
    json!({ "ran": ran, "exit_code": code })
}

/// Admits the operation, runs the command with `stdout`, records its
/// outcome, and returns the answer: its code is the one to leave with.
pub(crate) fn admit_and_run(
    guard: &Guard,
    operation: Operation,
    command: &[OsString],
    stdout: Stdio,
) -> Result<Envelope, GuardError> {
    let Some((program, args)) = command.split_first() else {
        return Err(GuardError::Policy("exec needs a command after `--`".into()));
    };
    let permit = match guard.begin(operation.clone()) {
        Ok(permit) => permit,
        Err(e) => return Ok(refusal(guard, &operation, &e)),
    };

    // Register before spawning so no signal meant for the child is lost;
    // pending signals wait in the iterator until the child's pid is known.
    let mut signals = SignalsInfo::<WithOrigin>::new(FORWARDED)
        .map_err(|e| GuardError::Policy(format!("cannot install signal handlers: {e}")))?;
    let handle = signals.handle();
    let (pid_tx, pid_rx) = mpsc::channel::<Pid>();
    let forwarder = std::thread::spawn(move || {
        let Ok(child) = pid_rx.recv() else { return };
        for origin in signals.forever() {
            if typed_at_the_terminal(&origin) {
                continue;
            }
            if let Ok(signal) = Signal::try_from(origin.signal) {
                let _ = kill(child, signal);
            }
        }
    });

    let mut command = Command::new(program);
    command.args(args).stdout(stdout);
    dies_with_us(&mut command);
    // std gives the command SIGPIPE's default disposition back (we ignore
    // it, as Rust programs do): `prodguard exec -- yes | head` ends as
    // `yes | head` does.
    let spawned = command.spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            handle.close();
            drop(pid_tx);
            let _ = forwarder.join();
            let code = match e.kind() {
                ErrorKind::NotFound => Refusal::NotFound.code(),
                _ => Refusal::NotExecutable.code(),
            };
            let message = format!("cannot run {}: {e}", escape(&program.to_string_lossy()));
            // Recorded first: the record does not depend on anyone reading.
            permit.finish_exit_code(code, Some(message.clone()));
            return Ok(envelope::error(code, message)
                .with_data(ran(false, code))
                .told());
        }
    };
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = pid_tx.send(Pid::from_raw(pid));
    }
    let status = child.wait();
    handle.close();
    let _ = forwarder.join();
    let code = match status {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1),
        Err(e) => {
            tell!("prodguard: lost track of the command: {e}");
            1
        }
    };
    permit.finish_exit_code(code, None);
    if code == 0 {
        return Ok(envelope::ok(ran(true, code)));
    }
    // The command's own failure, passed through as its code: not told
    // (the command said what it had to), but the envelope must say it.
    Ok(envelope::error(code, format!("the command exited with {code}")).with_data(ran(true, code)))
}

/// The answer to a refusal of `operation`: told on standard error, with
/// how to pass an approval, where the environment was decided and the
/// `check` that shows what is required.
pub(crate) fn refusal(guard: &Guard, operation: &Operation, e: &GuardError) -> Envelope {
    let d = guard.detection();
    let code = e.exit_code().code();
    let refused = envelope::error(code, e.to_string())
        .with_data(ran(false, code))
        .told();
    if let Some(hint) = token_hint(
        guard,
        operation,
        e,
        "with --approval TOKEN or in PRODGUARD_APPROVAL",
    ) {
        tell!("  {hint}");
    }
    if e.denial().is_some() {
        tell!(
            "  environment: {} (tier {}), decided by {}",
            escape(&d.environment),
            d.tier,
            escape(&d.decided_by)
        );
        let target = operation
            .target
            .as_deref()
            .map(|t| {
                let t = prodguard::redact_password(t).unwrap_or_else(|| t.to_owned());
                format!(" --target {}", shell_word(&t))
            })
            .unwrap_or_default();
        // Approvals and promotion evidence are matched by it.
        let fingerprint = operation
            .fingerprint
            .as_deref()
            .map(|f| format!(" --fingerprint {}", shell_word(f)))
            .unwrap_or_default();
        tell!(
            "  exit code {code}; `prodguard check --op {}{target}{fingerprint}` shows what is required",
            shell_word(&operation.kind)
        );
    }
    refused
}

/// The command is killed if prodguard dies first: a `kill -9` of prodguard
/// cannot be forwarded, and a command left running would run unguarded,
/// with an intent no outcome will ever follow (the next run on the log
/// records that attempt as abandoned, which is then true).
///
/// SIGKILL rather than SIGTERM: a command that ignores or delays SIGTERM
/// would outlive the record saying it was abandoned. Whoever wants the
/// command to stop gracefully sends prodguard SIGTERM, which it forwards.
/// Linux only (`PR_SET_PDEATHSIG`). The signal is sent when the thread that
/// spawned the command ends: this is the main thread, which lives as long
/// as prodguard does.
#[cfg(target_os = "linux")]
#[expect(
    unsafe_code,
    reason = "std's pre_exec is unsafe, and it is the only way to set PR_SET_PDEATHSIG in the child"
)]
fn dies_with_us(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: it makes two system calls
    // (prctl, getppid), allocates nothing and touches no lock.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // prodguard died before prctl: no signal will come.
            if nix::unistd::getppid() != parent {
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn dies_with_us(_: &mut Command) {}

/// Ctrl-C and Ctrl-\\ at the terminal reach the whole foreground process
/// group, the child included (the kernel sends them); forwarding them would
/// deliver them twice. Signals sent by a process (`kill`) reach only us.
fn typed_at_the_terminal(origin: &Origin) -> bool {
    (origin.signal == SIGINT || origin.signal == SIGQUIT) && matches!(origin.cause, Cause::Kernel)
}
