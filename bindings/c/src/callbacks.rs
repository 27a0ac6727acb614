//! The host's callbacks: the C types a host fills in for
//! [`prodguard_guard_new_with`], how the guard calls them, and
//! [`prodguard_confirm_consequences`] for a confirmation callback to read.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_void};

#[cfg(doc)]
use crate::guard::prodguard_guard_new_with;
#[cfg(doc)]
use crate::sql::prodguard_sql_run_sqlite;
#[cfg(doc)]
use crate::status::prodguard_last_error;
use crate::strings::{c_string, optional_str};

/// Asks a person to confirm `operation` on `target` (NULL when it has none)
/// in `environment`: write what they typed, NUL-terminated, into `answer`
/// (`answer_len` bytes) and return 0; return anything else when nobody could
/// be asked. The library compares the answer with `expected` (the target's
/// name, or the environment's) itself: only an exact match confirms, so a
/// callback that fails or returns garbage never confirms.
///
/// Called on the thread that runs the guarded operation, possibly on several
/// threads at once; it must not unwind (C++ exceptions) or longjmp out.
/// For a SQL script, [`prodguard_confirm_consequences`] says during the
/// call what the script will do.
pub type prodguard_confirm_fn = Option<
    unsafe extern "C-unwind" fn(
        user_data: *mut c_void,
        operation: *const c_char,
        target: *const c_char,
        environment: *const c_char,
        expected: *const c_char,
        answer: *mut c_char,
        answer_len: usize,
    ) -> i32,
>;

/// The size of the answer buffer given to a confirmation callback.
pub const PRODGUARD_ANSWER_LEN: usize = 256;

/// What a backup callback reports; the strings are the callback's and only
/// need to live until it returns (the library copies them).
#[repr(C)]
pub struct prodguard_backup_evidence {
    /// Where the backup is (a path or URL). Required.
    pub location: *const c_char,
    /// Lowercase hex SHA-256 of its bytes. Required.
    pub sha256: *const c_char,
    /// Its size in bytes; 0 is refused.
    pub bytes: u64,
    /// When it was made, microseconds since the Unix epoch.
    pub created_unix_micros: i64,
    /// 1 when a verification step passed; anything else is unverified and refused.
    pub verified: u8,
    /// What verified it (may be NULL).
    pub verification: *const c_char,
}

/// Makes a backup of `target` and fills `*evidence`; return 0 on success,
/// anything else when it failed (the operation then does not run, 122).
pub type prodguard_backup_fn = Option<
    unsafe extern "C-unwind" fn(
        user_data: *mut c_void,
        target: *const c_char,
        evidence: *mut prodguard_backup_evidence,
    ) -> i32,
>;

/// The host's callbacks for [`prodguard_guard_new_with`]; either may be NULL
/// (the terminal prompt and the policy's backup providers are used then).
/// The backup callback serves rules with `backup = { provider = "program" }`.
/// Both may be called on any thread that uses the guard, several at once:
/// they and `user_data` must be thread-safe, must not unwind (C++
/// exceptions) or longjmp out, and must not free the handles in use.
#[repr(C)]
pub struct prodguard_callbacks {
    /// Confirmation.
    pub confirm: prodguard_confirm_fn,
    /// Backups (for rules with `backup = { provider = "program" }`, or any).
    pub backup: prodguard_backup_fn,
    /// Passed to both, untouched.
    pub user_data: *mut c_void,
}

thread_local! {
    /// The consequences of the confirmation the host's callback is being
    /// asked for on this thread, while it runs.
    static CONSEQUENCES: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// While alive, [`prodguard_confirm_consequences`] answers its lines on this
/// thread; dropped (the callback returned or unwound), the answer is what it
/// was before (NULL, or an outer confirmation's when a callback itself ran
/// a guarded script).
struct Shown {
    previous: Option<CString>,
}

impl Shown {
    fn consequences(lines: &[String]) -> Shown {
        let text = (!lines.is_empty()).then(|| c_string(&lines.join("\n")));
        // During teardown the slot may be gone: the callback then reads NULL.
        let previous = CONSEQUENCES
            .try_with(|slot| match slot.try_borrow_mut() {
                Ok(mut slot) => std::mem::replace(&mut *slot, text),
                Err(_) => None,
            })
            .ok()
            .flatten();
        Shown { previous }
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CONSEQUENCES.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                *slot = previous;
            }
        });
    }
}

/// During a confirmation callback ([`prodguard_confirm_fn`]) asked for a
/// SQL script ([`prodguard_sql_run_sqlite`]): what the script will do, one
/// line per statement that is destructive or changed rows, with the rows
/// its dry run counted, e.g. `statement 1 (line 2, db.delete.where on
/// carts): 250 rows` (at most 12 such lines, then `and N more statements`;
/// control characters escaped). NULL at any other time, and for an
/// operation that is not a SQL script. Per thread, like
/// [`prodguard_last_error`]: valid until the callback returns. Do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn prodguard_confirm_consequences() -> *const c_char {
    CONSEQUENCES
        .try_with(|slot| {
            slot.try_borrow()
                .ok()
                .and_then(|text| text.as_ref().map(|t| t.as_ptr()))
        })
        .ok()
        .flatten()
        .unwrap_or(std::ptr::null())
}

/// A C callback and its user data, shared with the guard's threads.
#[derive(Clone, Copy)]
pub(crate) struct HostCallbacks {
    pub(crate) confirm: prodguard_confirm_fn,
    pub(crate) backup: prodguard_backup_fn,
    pub(crate) user_data: *mut c_void,
}

// SAFETY: the header documents that a guard made with callbacks may call
// them from any thread that uses the guard; the host promises its
// callbacks and user_data are safe to call that way.
unsafe impl Send for HostCallbacks {}
// SAFETY: as above; the library never mutates user_data itself.
unsafe impl Sync for HostCallbacks {}

impl HostCallbacks {
    pub(crate) fn confirm(
        &self,
        challenge: &prodguard_core::session::Challenge,
    ) -> prodguard_core::session::ConfirmationAnswer {
        use prodguard_core::session::ConfirmationAnswer;
        let Some(confirm) = self.confirm else {
            return ConfirmationAnswer::Unavailable("no confirmation callback".into());
        };
        let operation = c_string(&challenge.operation);
        let target = challenge.target.as_deref().map(c_string);
        let environment = c_string(&challenge.environment);
        let expected = c_string(&challenge.expected);
        let mut answer = [0u8; PRODGUARD_ANSWER_LEN];
        let shown = Shown::consequences(&challenge.consequences);
        // SAFETY: every pointer is a live NUL-terminated string (or NULL for
        // no target) for the duration of the call; `answer` is a live buffer
        // of PRODGUARD_ANSWER_LEN bytes; user_data is the host's.
        let code = unsafe {
            confirm(
                self.user_data,
                operation.as_ptr(),
                target.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()),
                environment.as_ptr(),
                expected.as_ptr(),
                answer.as_mut_ptr().cast(),
                answer.len(),
            )
        };
        drop(shown);
        if code != 0 {
            return ConfirmationAnswer::Unavailable(format!(
                "the host's confirmation callback returned {code}"
            ));
        }
        let typed = CStr::from_bytes_until_nul(&answer)
            .ok()
            .and_then(|t| t.to_str().ok());
        let Some(typed) = typed else {
            return ConfirmationAnswer::Declined(
                "the confirmation callback's answer is not a NUL-terminated UTF-8 string".into(),
            );
        };
        // The core's rule decides; the record says the host's callback asked.
        match prodguard_core::confirm::typed_answer(challenge, typed, None) {
            ConfirmationAnswer::Confirmed(mut evidence) => {
                evidence.method = "callback".into();
                ConfirmationAnswer::Confirmed(evidence)
            }
            other => other,
        }
    }

    pub(crate) fn backup(
        &self,
        request: &prodguard_core::session::BackupRequest,
    ) -> Result<prodguard_core::audit::BackupEvidence, String> {
        let Some(backup) = self.backup else {
            return Err("no backup callback".into());
        };
        let target = c_string(request.target.as_deref().unwrap_or(""));
        let mut evidence = prodguard_backup_evidence {
            location: std::ptr::null(),
            sha256: std::ptr::null(),
            bytes: 0,
            created_unix_micros: 0,
            verified: 0,
            verification: std::ptr::null(),
        };
        // SAFETY: target is a live NUL-terminated string, evidence a live
        // struct the callback may fill; user_data is the host's.
        let code = unsafe { backup(self.user_data, target.as_ptr(), &mut evidence) };
        if code != 0 {
            return Err(format!("the host's backup callback returned {code}"));
        }
        let text = |ptr: *const c_char, name: &str| {
            // SAFETY: the callback promises these are NULL or NUL-terminated
            // strings that live until now (it has just returned).
            unsafe { optional_str(ptr, name) }
                .map_err(|f| f.message)
                .map(|s| s.map(str::to_owned))
        };
        // A NULL field is an empty one: the session refuses evidence
        // without a location, a SHA-256 or a creation time.
        Ok(prodguard_core::audit::BackupEvidence {
            location: text(evidence.location, "evidence.location")?.unwrap_or_default(),
            sha256: text(evidence.sha256, "evidence.sha256")?.unwrap_or_default(),
            bytes: evidence.bytes,
            created: prodguard_core::Timestamp::from_unix_micros(evidence.created_unix_micros),
            verified: evidence.verified == 1,
            verification: text(evidence.verification, "evidence.verification")?,
        })
    }
}
