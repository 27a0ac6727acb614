//! `prodguard rollback ATTEMPT_ID`: run the way back an attempt's intent
//! recorded, guarded as `<operation>.rollback`. The plan comes from
//! `prodguard::rollback` (the guard's own trail, verified) and the core's
//! `rollback` module judges it; this prints it and runs it.

use std::ffi::OsString;
use std::path::PathBuf;

use prodguard::rollback::{self, RollbackError, RollbackRun};
use prodguard::{Guard, GuardError};
use prodguard_core::audit::AuditEvent;
use prodguard_core::text::escape;
use serde_json::json;

use super::exec::{admit_and_run, command_stdout, refusal};
use super::load_policy;
use crate::envelope::{self, Envelope};

pub(crate) fn run(
    policy: Option<&PathBuf>,
    attempt_id: &str,
    show: bool,
    approval: Option<String>,
    json: bool,
) -> Result<Envelope, GuardError> {
    let mut builder = Guard::builder().policy(load_policy(policy)?);
    if let Some(token) = approval {
        builder = builder.approval(token);
    }
    let guard = builder.build()?;
    let run = match rollback::find(&guard, attempt_id) {
        Ok(run) => run,
        Err(e) => return Ok(refused(&e)),
    };
    let plan = describe(&run);
    if show {
        if !json {
            say!("{}", run.describe());
        }
        return Ok(envelope::ok(plan));
    }
    // Checked, and copied aside, before anyone is asked: a backup the
    // rollback's own rule takes must not overwrite the one it restores.
    let staged = match rollback::stage(&run) {
        Ok(staged) => staged,
        Err(e) => {
            if matches!(e, RollbackError::BackupChanged(_)) {
                record_refusal(&guard, attempt_id, &e);
            }
            return Ok(refused(&e));
        }
    };
    // Said before anyone is asked: what is about to be undone, and how.
    tell!("prodguard: rolling back {}", run.describe());
    if let Some(command) = &run.plan.command {
        let argv: Vec<OsString> = ["sh", "-c", command.as_str()]
            .into_iter()
            .map(OsString::from)
            .collect();
        return admit_and_run(&guard, run.operation, &argv, command_stdout(json)?);
    }
    let permit = match guard.begin(run.operation.clone()) {
        Ok(permit) => permit,
        Err(e) => return Ok(refusal(&guard, &run.operation, &e)),
    };
    let restored = match staged {
        Some(staged) => staged.restore(),
        None => Err(RollbackError::NoPlan(
            "the plan restores a backup, and there is none to restore".into(),
        )),
    };
    permit.finish(restored.as_ref().map(|_| ()).map_err(ToString::to_string));
    Ok(match restored {
        Ok(()) => envelope::ok(plan),
        Err(e) => refused(&e),
    })
}

/// A backup changed after the fact is tampering the trail should keep,
/// though nobody was asked and nothing ran: a note says so.
fn record_refusal(guard: &Guard, attempt_id: &str, e: &RollbackError) {
    let mut note = AuditEvent::note(format!(
        "the rollback of attempt {} was refused ({}): {e}",
        escape(attempt_id),
        e.exit_code()
    ));
    note.actor = Some(guard.actor().clone());
    if let Err(failed) = guard.audit_sink().append(&note) {
        tell!("prodguard: the refusal could not be recorded: {failed}");
    }
}

fn refused(e: &RollbackError) -> Envelope {
    let message = match e {
        // It ran: what it changed before failing stays changed.
        RollbackError::Restore(_) => format!("the rollback ran and failed: {e}"),
        _ => format!("rollback refused: {e}"),
    };
    envelope::error(e.exit_code(), message).told()
}

/// The plan, for `--json`.
fn describe(run: &RollbackRun) -> serde_json::Value {
    json!({
        "attempt_id": run.original.attempt_id,
        "operation": run.operation.kind,
        "target": run.operation.target,
        "rollback": run.plan,
        "backup": run.backup,
        "original": run.original,
        "description": run.describe(),
    })
}
