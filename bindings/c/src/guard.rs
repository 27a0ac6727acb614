//! The guard handle: [`prodguard_guard_new`], [`prodguard_guard_new_with`]
//! (with the host's callbacks), [`prodguard_guard_free`].

use std::ffi::c_char;
use std::path::Path;

use runtime::{Guard, config};

use crate::callbacks::{HostCallbacks, prodguard_callbacks};
use crate::status::{Failure, boundary, prodguard_status};
use crate::strings::optional_str;

/// A guard: the policy, the detected environment, and the audit log. Made
/// by [`prodguard_guard_new`], released by [`prodguard_guard_free`]. One
/// guard may be used from many threads at once.
pub struct prodguard_guard {
    pub(crate) inner: Guard,
}

/// Makes a guard from the policy at `policy_path`, or, when it is NULL, the
/// discovered one (`PRODGUARD_POLICY`, `./prodguard.toml`, the built-in
/// default). Writes the new guard to `*out` on success only.
///
/// # Safety
/// `policy_path` is NULL or a NUL-terminated string; `out` is NULL or valid
/// for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_guard_new(
    policy_path: *const c_char,
    out: *mut *mut prodguard_guard,
) -> prodguard_status {
    boundary(|| {
        if out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        // SAFETY: the caller promises a NUL-terminated string or NULL.
        let path = unsafe { optional_str(policy_path, "policy_path") }?;
        let policy = config::load_policy(path.map(Path::new))?;
        let guard = Guard::builder().policy(policy).build()?;
        let handle = Box::into_raw(Box::new(prodguard_guard { inner: guard }));
        // SAFETY: `out` is not NULL and the caller promises it is writable.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Like [`prodguard_guard_new`], with the host's confirmation and backup
/// callbacks. They may be called from any thread that uses the guard.
///
/// # Safety
/// As [`prodguard_guard_new`]; `callbacks` is NULL or points to a struct
/// whose functions and user_data stay valid while the guard lives.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_guard_new_with(
    policy_path: *const c_char,
    callbacks: *const prodguard_callbacks,
    out: *mut *mut prodguard_guard,
) -> prodguard_status {
    boundary(|| {
        if out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        // SAFETY: NULL or a live struct, by the caller's promise.
        let callbacks =
            unsafe { callbacks.as_ref() }.ok_or_else(|| Failure::invalid("callbacks is NULL"))?;
        // SAFETY: NULL or NUL-terminated, by the caller's promise.
        let path = unsafe { optional_str(policy_path, "policy_path") }?;
        let policy = config::load_policy(path.map(Path::new))?;
        let host = HostCallbacks {
            confirm: callbacks.confirm,
            backup: callbacks.backup,
            user_data: callbacks.user_data,
        };
        // The host's backup callback serves rules that ask the program for a
        // backup (provider = "program"); the others keep their command,
        // recent-file or SQLite provider and its verify step.
        let backup_dir = config::backup_dir(config::audit_log_path(&policy).as_deref());
        let fallback = runtime::backup::CommandBackup::new(backup_dir);
        let mut builder = Guard::builder().policy(policy);
        if host.confirm.is_some() {
            builder =
                builder.confirmer(move |c: &prodguard_core::session::Challenge| host.confirm(c));
        }
        if host.backup.is_some() {
            builder = builder.backup_provider(move |r: &prodguard_core::session::BackupRequest| {
                use runtime::backup::BackupProvider;
                if r.spec.source() == prodguard_core::policy::BackupSource::Program {
                    host.backup(r).map_err(runtime::backup::BackupError::from)
                } else {
                    fallback.backup(r)
                }
            });
        }
        let guard = builder.build()?;
        // SAFETY: not NULL and writable, by the caller's promise.
        unsafe { out.write(Box::into_raw(Box::new(prodguard_guard { inner: guard }))) };
        Ok(())
    })
}

/// Releases a guard. `prodguard_guard_free(NULL)` does nothing.
///
/// # Safety
/// `guard` is NULL or came from [`prodguard_guard_new`] and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_guard_free(guard: *mut prodguard_guard) {
    let _ = boundary(|| {
        if !guard.is_null() {
            // SAFETY: made by Box::into_raw in prodguard_guard_new and, by
            // the caller's promise, freed once.
            drop(unsafe { Box::from_raw(guard) });
        }
        Ok(())
    });
}
