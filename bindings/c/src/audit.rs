//! The audit log: [`prodguard_audit_verify`].

use std::ffi::c_char;
use std::path::Path;

#[cfg(doc)]
use crate::status::prodguard_last_error;
use crate::status::{Failure, boundary, prodguard_status, set_last_error};
use crate::strings::required_str;

/// Verifies the audit log at `log_path` (rotated files included) and
/// writes `prodguard audit verify`'s exit code to `*out_code`: 0 intact,
/// 1 tampered, 2 torn tail, 3 anchor/seal gap. `PRODGUARD_IO_ERROR` when the
/// log cannot be read (see [`prodguard_last_error`]).
///
/// # Safety
/// `log_path` is NULL or NUL-terminated; `out_code` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_audit_verify(
    log_path: *const c_char,
    out_code: *mut i32,
) -> prodguard_status {
    boundary(|| {
        if out_code.is_null() {
            return Err(Failure::invalid("out_code is NULL"));
        }
        // SAFETY: NULL or NUL-terminated, by the caller's promise.
        let path = unsafe { required_str(log_path, "log_path") }?;
        let report = runtime::audit::verify_file(Path::new(path), None).map_err(|e| Failure {
            status: prodguard_status::PRODGUARD_IO_ERROR,
            message: format!("cannot read audit log {path}: {e}"),
        })?;
        if let Some(damage) = &report.damage {
            set_last_error(&format!("line {}: {}", damage.line, damage.problem));
        }
        // SAFETY: not NULL and writable, by the caller's promise.
        unsafe { out_code.write(report.exit_code()) };
        Ok(())
    })
}
