//! What a call returns: [`prodguard_status`], the failures behind it, the
//! thread's last error, and the [`boundary`] every export runs inside.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use runtime::GuardError;

/// The outcome of a call; the same numbers as the CLI's exit codes for
/// 75 and 120–125.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum prodguard_status {
    /// Success.
    PRODGUARD_OK = 0,
    /// The guarded operation ran and its callback returned non-zero.
    PRODGUARD_OPERATION_FAILED = 1,
    /// A required pointer was NULL or a string was not UTF-8.
    PRODGUARD_INVALID_ARGUMENT = 2,
    /// prodguard failed internally (a bug); the host is unharmed.
    PRODGUARD_PANIC = 3,
    /// An I/O error outside the guard's own refusals.
    PRODGUARD_IO_ERROR = 4,
    /// 75: another host holds the fleet lock of this operation and target;
    /// nothing ran, and running again later may work.
    PRODGUARD_LOCK_HELD = 75,
    /// 120: denied by a policy rule.
    PRODGUARD_DENIED = 120,
    /// 121: confirmation missing or declined.
    PRODGUARD_NOT_CONFIRMED = 121,
    /// 122: backup requirement not met.
    PRODGUARD_BACKUP_FAILED = 122,
    /// 123: audit log unavailable.
    PRODGUARD_AUDIT_UNAVAILABLE = 123,
    /// 124: the target's stamp names another environment.
    PRODGUARD_ENV_MISMATCH = 124,
    /// 125: usage or policy error.
    PRODGUARD_POLICY_ERROR = 125,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) struct Failure {
    pub(crate) status: prodguard_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            status: prodguard_status::PRODGUARD_INVALID_ARGUMENT,
            message: message.into(),
        }
    }

    /// A usage error (125), as the CLI would exit with.
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            status: prodguard_status::PRODGUARD_POLICY_ERROR,
            message: message.into(),
        }
    }
}

impl From<GuardError> for Failure {
    fn from(e: GuardError) -> Failure {
        use prodguard_core::ExitCode;
        use prodguard_status::*;
        let status = match e.exit_code() {
            ExitCode::Denied => PRODGUARD_DENIED,
            ExitCode::NotConfirmed => PRODGUARD_NOT_CONFIRMED,
            ExitCode::BackupFailed => PRODGUARD_BACKUP_FAILED,
            ExitCode::AuditUnavailable => PRODGUARD_AUDIT_UNAVAILABLE,
            ExitCode::EnvMismatch => PRODGUARD_ENV_MISMATCH,
            ExitCode::LockHeld => PRODGUARD_LOCK_HELD,
            _ => PRODGUARD_POLICY_ERROR,
        };
        Failure {
            status,
            message: e.to_string(),
        }
    }
}

pub(crate) fn set_last_error(message: &str) {
    // Interior NULs cannot cross into C; show them as spaces.
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // During thread or process teardown the slot may be gone: drop the
    // message rather than panic inside an extern "C" function.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

/// Runs `f`, turning its failure or panic into a status and the thread's last error.
pub(crate) fn boundary(f: impl FnOnce() -> Result<(), Failure>) -> prodguard_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => prodguard_status::PRODGUARD_OK,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            set_last_error(&format!(
                "prodguard panicked (a bug; please report it): {what}"
            ));
            prodguard_status::PRODGUARD_PANIC
        }
    }
}

/// This thread's last error message: valid until the next prodguard call on
/// this thread; never NULL (empty when there was none). Do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn prodguard_last_error() -> *const c_char {
    static EMPTY: &[u8] = b"\0";
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(EMPTY.as_ptr().cast())
}
