//! Guarded operations: [`prodguard_run`], and the [`prodguard_operation`]
//! handle for one with a fingerprint or an approval token.

use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::guard::prodguard_guard;
use crate::status::{Failure, boundary, prodguard_status};
use crate::strings::{optional_str, required_str};

/// A guarded operation: returns 0 on success, anything else on failure.
/// (The "C-unwind" ABI is the C ABI; it also lets a Rust callback that
/// panics be caught at the boundary instead of aborting the host.)
pub type prodguard_operation_fn =
    Option<unsafe extern "C-unwind" fn(user_data: *mut c_void) -> i32>;

/// Runs `operation_fn(user_data)` as the guarded operation `operation` on
/// `target` (NULL: none) once every guard passes, and records its outcome.
/// Returns `PRODGUARD_OK` when it ran and returned 0,
/// `PRODGUARD_OPERATION_FAILED` when it ran and returned non-zero, or the
/// refusal (120–125) when it did not run.
///
/// # Safety
/// `guard` is NULL or a live guard; `operation` and `target` are NULL or
/// NUL-terminated strings; `operation_fn` may be called once with `user_data`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_run(
    guard: *mut prodguard_guard,
    operation: *const c_char,
    target: *const c_char,
    operation_fn: prodguard_operation_fn,
    user_data: *mut c_void,
) -> prodguard_status {
    boundary(|| {
        // SAFETY: NULL or a live guard, by the caller's promise.
        let guard = unsafe { guard.as_ref() }.ok_or_else(|| Failure::invalid("guard is NULL"))?;
        // SAFETY: NULL or NUL-terminated, by the caller's promise.
        let operation = unsafe { required_str(operation, "operation") }?;
        // SAFETY: as above.
        let target = unsafe { optional_str(target, "target") }?;
        let callback = operation_fn.ok_or_else(|| Failure::invalid("operation_fn is NULL"))?;
        let mut guarded = guard.inner.operation(operation);
        if let Some(target) = target {
            guarded = guarded.target(target);
        }
        run_permit(guarded.begin()?, operation, callback, user_data)
    })
}

/// A guarded operation being described: kind, target, fingerprint,
/// approval token and way back. Made by [`prodguard_operation_new`], released by
/// [`prodguard_operation_free`]; run with [`prodguard_operation_run`].
pub struct prodguard_operation {
    kind: String,
    target: Option<String>,
    fingerprint: Option<String>,
    approval: Option<String>,
    rollback: Option<String>,
}

/// Starts describing a guarded operation of `kind` (a dotted name such as
/// `db.migrate`), written to `*out` on success.
///
/// # Safety
/// `kind` is NULL or NUL-terminated; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_operation_new(
    kind: *const c_char,
    out: *mut *mut prodguard_operation,
) -> prodguard_status {
    boundary(|| {
        if out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        // SAFETY: NULL or NUL-terminated, by the caller's promise.
        let kind = unsafe { required_str(kind, "kind") }?.to_owned();
        let op = Box::new(prodguard_operation {
            kind,
            target: None,
            fingerprint: None,
            approval: None,
            rollback: None,
        });
        // SAFETY: not NULL and writable, by the caller's promise.
        unsafe { out.write(Box::into_raw(op)) };
        Ok(())
    })
}

/// Which field [`prodguard_operation_set`] sets.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum prodguard_operation_field {
    /// What it acts on; confirmations ask for this name.
    PRODGUARD_FIELD_TARGET = 0,
    /// What exactly is done (e.g. a migration's checksum); approvals bind it.
    PRODGUARD_FIELD_FINGERPRINT = 1,
    /// An approval token from `prodguard approve`.
    PRODGUARD_FIELD_APPROVAL = 2,
    /// Its way back: a command that undoes it (a down-migration, a
    /// restore), recorded in the intent; `prodguard rollback ATTEMPT_ID`
    /// runs it. A rule that requires `rollback` needs it, or a backup.
    PRODGUARD_FIELD_ROLLBACK = 3,
}

/// Sets field `field` (a [`prodguard_operation_field`]) of `op` to `value`
/// (NULL clears it). Operations are not thread-safe: use one per thread.
///
/// # Safety
/// `op` is NULL or a live operation; `value` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_operation_set(
    op: *mut prodguard_operation,
    field: u32,
    value: *const c_char,
) -> prodguard_status {
    boundary(|| {
        // SAFETY: NULL or a live operation, by the caller's promise.
        let op = unsafe { op.as_mut() }.ok_or_else(|| Failure::invalid("op is NULL"))?;
        // SAFETY: NULL or NUL-terminated, by the caller's promise.
        let value = unsafe { optional_str(value, "value") }?.map(str::to_owned);
        // A plain integer, checked: an out-of-range enum from C would be UB.
        match field {
            0 => op.target = value,
            1 => op.fingerprint = value,
            2 => op.approval = value,
            3 => op.rollback = value,
            other => {
                return Err(Failure::invalid(format!(
                    "field {other} is not a prodguard_operation_field"
                )));
            }
        }
        Ok(())
    })
}

/// Releases an operation. `prodguard_operation_free(NULL)` does nothing.
///
/// # Safety
/// `op` is NULL or came from [`prodguard_operation_new`] and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_operation_free(op: *mut prodguard_operation) {
    let _ = boundary(|| {
        if !op.is_null() {
            // SAFETY: made by Box::into_raw in prodguard_operation_new, freed once.
            drop(unsafe { Box::from_raw(op) });
        }
        Ok(())
    });
}

/// Runs `operation_fn(user_data)` as `op` under `guard`: as [`prodguard_run`],
/// with the operation's fingerprint and approval token.
///
/// # Safety
/// `guard` and `op` are NULL or live handles; `operation_fn` may be called
/// once with `user_data`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_operation_run(
    guard: *mut prodguard_guard,
    op: *const prodguard_operation,
    operation_fn: prodguard_operation_fn,
    user_data: *mut c_void,
) -> prodguard_status {
    boundary(|| {
        // SAFETY: NULL or live handles, by the caller's promise.
        let guard = unsafe { guard.as_ref() }.ok_or_else(|| Failure::invalid("guard is NULL"))?;
        // SAFETY: as above.
        let op = unsafe { op.as_ref() }.ok_or_else(|| Failure::invalid("op is NULL"))?;
        let callback = operation_fn.ok_or_else(|| Failure::invalid("operation_fn is NULL"))?;
        let mut guarded = guard.inner.operation(op.kind.clone());
        if let Some(target) = &op.target {
            guarded = guarded.target(target.clone());
        }
        if let Some(fingerprint) = &op.fingerprint {
            guarded = guarded.fingerprint(fingerprint.clone());
        }
        if let Some(token) = &op.approval {
            guarded = guarded.approval(token.clone());
        }
        if let Some(command) = &op.rollback {
            guarded = guarded.rollback(command.clone());
        }
        run_permit(guarded.begin()?, &op.kind, callback, user_data)
    })
}

/// Runs the callback under a permit and records its outcome.
fn run_permit(
    permit: runtime::Permit,
    kind: &str,
    callback: unsafe extern "C-unwind" fn(*mut c_void) -> i32,
    user_data: *mut c_void,
) -> Result<(), Failure> {
    let called = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller supplied this function for exactly this call,
        // with the user_data it expects.
        unsafe { callback(user_data) }
    }));
    let code = match called {
        Ok(code) => code,
        Err(panic) => {
            // Recorded as the Rust API records it; the boundary reports it.
            permit.finish_panicked();
            std::panic::resume_unwind(panic);
        }
    };
    if code == 0 {
        permit.finish(Ok(()));
        Ok(())
    } else {
        let message = format!("the guarded operation `{kind}` returned {code}");
        permit.finish(Err(message.clone()));
        Err(Failure {
            status: prodguard_status::PRODGUARD_OPERATION_FAILED,
            message,
        })
    }
}
