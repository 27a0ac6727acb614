//! The C ABI of prodguard: `libprodguard` and `include/prodguard.h`.
//!
//! Conventions (in the style of rustls-ffi): opaque handles made by `_new`
//! and released by `_free` (`_free(NULL)` does nothing); fallible functions
//! return a [`prodguard_status`] and write results through out-pointers
//! only on success; strings are NUL-terminated UTF-8, and strings the
//! library returns are freed with [`prodguard_string_free`]; after a
//! failure, [`prodguard_last_error`] describes it on the calling thread.
//! Every export runs inside one boundary that turns panics into
//! `PRODGUARD_PANIC` and NULL or invalid UTF-8 into
//! `PRODGUARD_INVALID_ARGUMENT`: nothing unwinds into C.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use runtime::{Guard, GuardError, config};

/// The outcome of a call; the same numbers as the CLI's exit codes for 120–125.
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

/// A guard: the policy, the detected environment, and the audit log. Made
/// by [`prodguard_guard_new`], released by [`prodguard_guard_free`]. One
/// guard may be used from many threads at once.
pub struct prodguard_guard {
    inner: Guard,
}

/// A guarded operation: returns 0 on success, anything else on failure.
/// (The "C-unwind" ABI is the C ABI; it also lets a Rust callback that
/// panics be caught at the boundary instead of aborting the host.)
pub type prodguard_operation_fn =
    Option<unsafe extern "C-unwind" fn(user_data: *mut c_void) -> i32>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());

    /// `prodguard_evaluate_json`'s JSON API, one per calling thread: it
    /// keeps the last policy parsed (a host sends the same one with every
    /// request). The function takes no handle, so the thread is its owner;
    /// threads never wait on each other for it.
    static JSON_API: RefCell<prodguard_core::api::JsonApi> =
        RefCell::new(prodguard_core::api::JsonApi::new());
}

struct Failure {
    status: prodguard_status,
    message: String,
}

impl Failure {
    fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            status: prodguard_status::PRODGUARD_INVALID_ARGUMENT,
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
            _ => PRODGUARD_POLICY_ERROR,
        };
        Failure {
            status,
            message: e.to_string(),
        }
    }
}

fn set_last_error(message: &str) {
    // Interior NULs cannot cross into C; show them as spaces.
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // During thread or process teardown the slot may be gone: drop the
    // message rather than panic inside an extern "C" function.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

/// Runs `f`, turning its failure or panic into a status and the thread's last error.
fn boundary(f: impl FnOnce() -> Result<(), Failure>) -> prodguard_status {
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

/// Reads a required C string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid for `'a`.
unsafe fn required_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{name} is NULL")));
    }
    // SAFETY: not NULL, and the caller promises a NUL-terminated string
    // that outlives this call (the header documents it).
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes
        .to_str()
        .map_err(|_| Failure::invalid(format!("{name} is not valid UTF-8")))
}

/// Reads an optional C string argument (NULL = absent).
///
/// # Safety
/// As [`required_str`].
unsafe fn optional_str<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded; the same promise holds.
    unsafe { required_str(ptr, name) }.map(Some)
}

/// The library's version, e.g. `"0.1.0"`. Static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn prodguard_version() -> *const c_char {
    static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
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
        let policy = match path {
            Some(path) => config::load_policy_file(Path::new(path))?,
            None => config::discover_policy()?,
        };
        let guard = Guard::builder().policy(policy).build()?;
        let handle = Box::into_raw(Box::new(prodguard_guard { inner: guard }));
        // SAFETY: `out` is not NULL and the caller promises it is writable.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Asks a person to confirm `operation` on `target` (NULL when it has none)
/// in `environment`: write what they typed, NUL-terminated, into `answer`
/// (`answer_len` bytes) and return 0; return anything else when nobody could
/// be asked. The library compares the answer with `expected` (the target's
/// name, or the environment's) itself: only an exact match confirms, so a
/// callback that fails or returns garbage never confirms.
///
/// Called on the thread that runs the guarded operation, possibly on several
/// threads at once; it must not unwind (C++ exceptions) or longjmp out.
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

/// A C callback and its user data, shared with the guard's threads.
#[derive(Clone, Copy)]
struct HostCallbacks {
    confirm: prodguard_confirm_fn,
    backup: prodguard_backup_fn,
    user_data: *mut c_void,
}

// SAFETY: the header documents that a guard made with callbacks may call
// them from any thread that uses the guard; the host promises its
// callbacks and user_data are safe to call that way.
unsafe impl Send for HostCallbacks {}
// SAFETY: as above; the library never mutates user_data itself.
unsafe impl Sync for HostCallbacks {}

fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

impl HostCallbacks {
    fn confirm(
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
        if code != 0 {
            return ConfirmationAnswer::Unavailable(format!(
                "the host's confirmation callback returned {code}"
            ));
        }
        let typed = CStr::from_bytes_until_nul(&answer)
            .ok()
            .and_then(|t| t.to_str().ok())
            .map(str::trim);
        if typed == Some(challenge.expected.as_str()) {
            ConfirmationAnswer::Confirmed(prodguard_core::audit::ConfirmEvidence {
                method: "callback".into(),
                approver: None,
                token_id: None,
                exp: None,
            })
        } else {
            ConfirmationAnswer::Declined(format!(
                "the answer given does not match `{}`",
                challenge.expected
            ))
        }
    }

    fn backup(
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
        let location = text(evidence.location, "evidence.location")?
            .ok_or("the backup callback gave no location")?;
        let sha256 = text(evidence.sha256, "evidence.sha256")?
            .filter(|h| prodguard_core::audit::unhex32(h).is_some())
            .ok_or("the backup callback gave no SHA-256 (64 lowercase hex digits)")?;
        if evidence.created_unix_micros <= 0 {
            return Err("the backup callback gave no creation time".into());
        }
        Ok(prodguard_core::audit::BackupEvidence {
            location,
            sha256,
            bytes: evidence.bytes,
            created: prodguard_core::Timestamp::from_unix_micros(evidence.created_unix_micros),
            verified: evidence.verified == 1,
            verification: text(evidence.verification, "evidence.verification")?,
        })
    }
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
        let policy = match path {
            Some(path) => config::load_policy_file(Path::new(path))?,
            None => config::discover_policy()?,
        };
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

/// The detected environment as JSON (`environment`, `tier`, `protected`,
/// `decided_by`, `evidence`, `conflicts`), written to `*out_json` on
/// success; free it with [`prodguard_string_free`].
///
/// # Safety
/// `guard` is NULL or a live guard; `out_json` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_detect_json(
    guard: *const prodguard_guard,
    out_json: *mut *mut c_char,
) -> prodguard_status {
    boundary(|| {
        if out_json.is_null() {
            return Err(Failure::invalid("out_json is NULL"));
        }
        // SAFETY: NULL or a live guard, by the caller's promise.
        let guard = unsafe { guard.as_ref() }.ok_or_else(|| Failure::invalid("guard is NULL"))?;
        let json = serde_json::to_string(guard.inner.detection()).map_err(|e| Failure {
            status: prodguard_status::PRODGUARD_PANIC,
            message: e.to_string(),
        })?;
        let text = CString::new(json).map_err(|e| Failure::invalid(e.to_string()))?;
        // SAFETY: not NULL and writable, by the caller's promise.
        unsafe { out_json.write(text.into_raw()) };
        Ok(())
    })
}

/// An environment tier.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum prodguard_tier {
    /// Real users, live data.
    PRODGUARD_TIER_PRODUCTION = 0,
    /// Production-like, for final checks.
    PRODGUARD_TIER_STAGING = 1,
    /// Shared development.
    PRODGUARD_TIER_DEVELOPMENT = 2,
    /// Automated tests.
    PRODGUARD_TIER_TEST = 3,
    /// A developer's machine.
    PRODGUARD_TIER_LOCAL = 4,
    /// Not determined: guarded like production by default.
    PRODGUARD_TIER_UNKNOWN = 5,
}

/// The detected tier and whether guards apply (production, or unknown by
/// default), without parsing JSON. Either out-pointer may be NULL when the
/// caller does not want that field; they are written on success only.
///
/// # Safety
/// `guard` is NULL or a live guard; `out_tier` and `out_protected` are NULL
/// or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_detect_tier(
    guard: *const prodguard_guard,
    out_tier: *mut prodguard_tier,
    out_protected: *mut bool,
) -> prodguard_status {
    boundary(|| {
        // SAFETY: NULL or a live guard, by the caller's promise.
        let guard = unsafe { guard.as_ref() }.ok_or_else(|| Failure::invalid("guard is NULL"))?;
        let detection = guard.inner.detection();
        let tier = match detection.tier {
            prodguard_core::Tier::Production => prodguard_tier::PRODGUARD_TIER_PRODUCTION,
            prodguard_core::Tier::Staging => prodguard_tier::PRODGUARD_TIER_STAGING,
            prodguard_core::Tier::Development => prodguard_tier::PRODGUARD_TIER_DEVELOPMENT,
            prodguard_core::Tier::Test => prodguard_tier::PRODGUARD_TIER_TEST,
            prodguard_core::Tier::Local => prodguard_tier::PRODGUARD_TIER_LOCAL,
            prodguard_core::Tier::Unknown => prodguard_tier::PRODGUARD_TIER_UNKNOWN,
        };
        if !out_tier.is_null() {
            // SAFETY: not NULL and writable, by the caller's promise.
            unsafe { out_tier.write(tier) };
        }
        if !out_protected.is_null() {
            // SAFETY: as above.
            unsafe { out_protected.write(detection.protected) };
        }
        Ok(())
    })
}

/// The detected environment's own name (e.g. `prod-eu`), written to
/// `*out_name` on success; free it with [`prodguard_string_free`].
///
/// # Safety
/// `guard` is NULL or a live guard; `out_name` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_detect_environment(
    guard: *const prodguard_guard,
    out_name: *mut *mut c_char,
) -> prodguard_status {
    boundary(|| {
        if out_name.is_null() {
            return Err(Failure::invalid("out_name is NULL"));
        }
        // SAFETY: NULL or a live guard, by the caller's promise.
        let guard = unsafe { guard.as_ref() }.ok_or_else(|| Failure::invalid("guard is NULL"))?;
        let name = CString::new(guard.inner.detection().environment.clone())
            .map_err(|e| Failure::invalid(e.to_string()))?;
        // SAFETY: not NULL and writable, by the caller's promise.
        unsafe { out_name.write(name.into_raw()) };
        Ok(())
    })
}

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

/// A guarded operation being described: kind, target, fingerprint and
/// approval token. Made by [`prodguard_operation_new`], released by
/// [`prodguard_operation_free`]; run with [`prodguard_operation_run`].
pub struct prodguard_operation {
    kind: String,
    target: Option<String>,
    fingerprint: Option<String>,
    approval: Option<String>,
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
        run_permit(guarded.begin()?, &op.kind, callback, user_data)
    })
}

/// Runs the callback under a permit and records its outcome.
fn run_permit(
    permit: runtime::Permit<'_>,
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

/// Evaluates a JSON request without touching the process: `{"facts":
/// {"env", "files", "hostname", "explicit"}, "policy": "<TOML>" | null,
/// "operation": {"kind", "target"}}` (the Wasm module's `prodguard_evaluate`
/// request). On success writes `{"detection", "decision"}` to `*out_json`
/// (free it with [`prodguard_string_free`]); a bad request or policy is
/// `PRODGUARD_POLICY_ERROR` with the reason in [`prodguard_last_error`].
///
/// # Safety
/// `request_json` is NULL or NUL-terminated; `out_json` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_evaluate_json(
    request_json: *const c_char,
    out_json: *mut *mut c_char,
) -> prodguard_status {
    boundary(|| {
        if out_json.is_null() {
            return Err(Failure::invalid("out_json is NULL"));
        }
        // SAFETY: NULL or NUL-terminated, by the caller's promise.
        let request = unsafe { required_str(request_json, "request_json") }?;
        let response = JSON_API.with(|api| match api.try_borrow_mut() {
            Ok(mut api) => api.evaluate_json(request),
            // Never: nothing re-enters. Uncached is still right.
            Err(_) => prodguard_core::api::evaluate_json(request),
        });
        if response.status != 0 {
            let message = serde_json::from_str::<serde_json::Value>(&response.body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(response.body);
            return Err(Failure {
                status: prodguard_status::PRODGUARD_POLICY_ERROR,
                message,
            });
        }
        let text = CString::new(response.body).map_err(|e| Failure::invalid(e.to_string()))?;
        // SAFETY: not NULL and writable, by the caller's promise.
        unsafe { out_json.write(text.into_raw()) };
        Ok(())
    })
}

/// Frees a string the library returned. `prodguard_string_free(NULL)` does nothing.
///
/// # Safety
/// `s` is NULL or a string from this library, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_string_free(s: *mut c_char) {
    let _ = boundary(|| {
        if !s.is_null() {
            // SAFETY: made by CString::into_raw here and freed once, by the
            // caller's promise.
            drop(unsafe { CString::from_raw(s) });
        }
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::{null, null_mut};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn last_error() -> String {
        // SAFETY: prodguard_last_error never returns NULL and the string
        // lives until the next call on this thread.
        unsafe { CStr::from_ptr(prodguard_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    fn development_guard() -> *mut prodguard_guard {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "prodguard-ffi-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let policy = dir.join("policy.toml");
        std::fs::write(
            &policy,
            format!(
                "[environment]\nunknown = \"development\"\n[audit]\nlog = \"{}\"\n[[rule]]\noperations = [\"*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\n",
                dir.join("audit.jsonl").display()
            ),
        )
        .unwrap();
        let path = CString::new(policy.to_str().unwrap()).unwrap();
        let mut guard = null_mut();
        // SAFETY: valid string and out-pointer.
        let status = unsafe { prodguard_guard_new(path.as_ptr(), &mut guard) };
        assert_eq!(status, prodguard_status::PRODGUARD_OK, "{}", last_error());
        guard
    }

    unsafe extern "C-unwind" fn count(user_data: *mut c_void) -> i32 {
        // SAFETY: the tests pass a pointer to a live AtomicUsize.
        let counter = unsafe { &*(user_data as *const AtomicUsize) };
        counter.fetch_add(1, Ordering::SeqCst);
        0
    }

    #[test]
    fn null_and_invalid_utf8_are_status_codes() {
        // SAFETY: every pointer is NULL or valid; that is the point.
        unsafe {
            assert_eq!(
                prodguard_guard_new(null(), null_mut()),
                prodguard_status::PRODGUARD_INVALID_ARGUMENT
            );
            let mut out = null_mut();
            assert_eq!(
                prodguard_detect_json(null(), &mut out),
                prodguard_status::PRODGUARD_INVALID_ARGUMENT
            );
            assert!(out.is_null());
            let bad = [0xffu8 as c_char, 0];
            let mut guard = null_mut();
            assert_eq!(
                prodguard_guard_new(bad.as_ptr(), &mut guard),
                prodguard_status::PRODGUARD_INVALID_ARGUMENT
            );
            assert!(guard.is_null());
            assert!(last_error().contains("UTF-8"), "{}", last_error());
            prodguard_guard_free(null_mut());
            prodguard_string_free(null_mut());
        }
    }

    unsafe extern "C-unwind" fn panics(_: *mut c_void) -> i32 {
        panic!("a Rust callback that panics");
    }

    #[test]
    fn a_panicking_callback_becomes_prodguard_panic() {
        let guard = development_guard();
        let op = CString::new("db.migrate").unwrap();
        // SAFETY: live guard and strings; the callback ignores user_data.
        let status = unsafe { prodguard_run(guard, op.as_ptr(), null(), Some(panics), null_mut()) };
        assert_eq!(status, prodguard_status::PRODGUARD_PANIC);
        assert!(
            last_error().contains("a Rust callback that panics"),
            "{}",
            last_error()
        );
        // The guard still works afterwards.
        let counter = AtomicUsize::new(0);
        // SAFETY: as above; the counter is live.
        let status = unsafe {
            prodguard_run(
                guard,
                op.as_ptr(),
                null(),
                Some(count),
                &counter as *const AtomicUsize as *mut c_void,
            )
        };
        assert_eq!(status, prodguard_status::PRODGUARD_OK);
        // SAFETY: made by prodguard_guard_new, freed once.
        unsafe { prodguard_guard_free(guard) };
    }

    #[test]
    fn every_pointer_argument_may_be_null_without_harm() {
        use prodguard_status::PRODGUARD_INVALID_ARGUMENT as INVALID;
        let guard = development_guard();
        let op_name = CString::new("db.migrate").unwrap();
        let mut op = null_mut();
        let mut text = null_mut();
        let mut code = -1i32;
        let callbacks = prodguard_callbacks {
            confirm: None,
            backup: None,
            user_data: null_mut(),
        };
        // SAFETY: every non-NULL pointer is valid; the NULLs are the point.
        unsafe {
            assert_eq!(
                prodguard_operation_new(op_name.as_ptr(), &mut op),
                prodguard_status::PRODGUARD_OK
            );
            let cases: Vec<(&str, prodguard_status)> = vec![
                ("guard_new out", prodguard_guard_new(null(), null_mut())),
                (
                    "guard_new_with callbacks",
                    prodguard_guard_new_with(null(), null(), &mut null_mut()),
                ),
                (
                    "guard_new_with out",
                    prodguard_guard_new_with(null(), &callbacks, null_mut()),
                ),
                (
                    "detect_json guard",
                    prodguard_detect_json(null(), &mut text),
                ),
                ("detect_json out", prodguard_detect_json(guard, null_mut())),
                (
                    "detect_tier guard",
                    prodguard_detect_tier(null(), null_mut(), null_mut()),
                ),
                (
                    "detect_environment guard",
                    prodguard_detect_environment(null(), &mut text),
                ),
                (
                    "detect_environment out",
                    prodguard_detect_environment(guard, null_mut()),
                ),
                (
                    "run guard",
                    prodguard_run(
                        null_mut(),
                        op_name.as_ptr(),
                        null(),
                        Some(count),
                        null_mut(),
                    ),
                ),
                (
                    "run operation",
                    prodguard_run(guard, null(), null(), Some(count), null_mut()),
                ),
                (
                    "run fn",
                    prodguard_run(guard, op_name.as_ptr(), null(), None, null_mut()),
                ),
                (
                    "operation_new kind",
                    prodguard_operation_new(null(), &mut null_mut()),
                ),
                (
                    "operation_new out",
                    prodguard_operation_new(op_name.as_ptr(), null_mut()),
                ),
                (
                    "operation_set op",
                    prodguard_operation_set(
                        null_mut(),
                        prodguard_operation_field::PRODGUARD_FIELD_TARGET as u32,
                        null(),
                    ),
                ),
                (
                    "operation_run guard",
                    prodguard_operation_run(null_mut(), op, Some(count), null_mut()),
                ),
                (
                    "operation_run op",
                    prodguard_operation_run(guard, null(), Some(count), null_mut()),
                ),
                (
                    "operation_run fn",
                    prodguard_operation_run(guard, op, None, null_mut()),
                ),
                (
                    "audit_verify path",
                    prodguard_audit_verify(null(), &mut code),
                ),
                (
                    "audit_verify out",
                    prodguard_audit_verify(op_name.as_ptr(), null_mut()),
                ),
                (
                    "evaluate_json request",
                    prodguard_evaluate_json(null(), &mut text),
                ),
                (
                    "evaluate_json out",
                    prodguard_evaluate_json(op_name.as_ptr(), null_mut()),
                ),
            ];
            for (what, status) in cases {
                assert_eq!(status, INVALID, "{what}");
                assert!(last_error().contains("NULL"), "{what}: {}", last_error());
            }
            assert!(text.is_null(), "no out-pointer written on failure");
            assert_eq!(code, -1);
            // A NULL value clears a field; freeing NULL does nothing.
            assert_eq!(
                prodguard_operation_set(op, 0, null()),
                prodguard_status::PRODGUARD_OK
            );
            prodguard_operation_free(op);
            prodguard_operation_free(null_mut());
            prodguard_guard_free(guard);
            prodguard_guard_free(null_mut());
            prodguard_string_free(null_mut());
        }
    }

    #[test]
    fn many_threads_share_one_guard() {
        let guard = development_guard() as usize;
        let counter = std::sync::Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let counter = std::sync::Arc::clone(&counter);
                std::thread::spawn(move || {
                    let op = CString::new("db.migrate").unwrap();
                    for _ in 0..10 {
                        // SAFETY: the guard outlives the threads; the counter is live.
                        let status = unsafe {
                            prodguard_run(
                                guard as *mut prodguard_guard,
                                op.as_ptr(),
                                null(),
                                Some(count),
                                std::sync::Arc::as_ptr(&counter) as *mut c_void,
                            )
                        };
                        assert_eq!(status, prodguard_status::PRODGUARD_OK, "{}", last_error());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::SeqCst), 80);
        // SAFETY: made by prodguard_guard_new, freed once.
        unsafe { prodguard_guard_free(guard as *mut prodguard_guard) };
    }
}
