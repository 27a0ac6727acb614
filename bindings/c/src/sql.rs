//! Guarded SQL on SQLite: [`prodguard_sql_run_sqlite`] runs a script in
//! one transaction under the guards, as the runtime's `Guard::sql` does.

use std::ffi::c_char;

use runtime::RunError;
use runtime::small_file::SQL_SCRIPT_MAX_BYTES;

#[cfg(doc)]
use crate::callbacks::{prodguard_confirm_consequences, prodguard_confirm_fn};
use crate::guard::prodguard_guard;
#[cfg(doc)]
use crate::status::prodguard_last_error;
use crate::status::{Failure, boundary, prodguard_status};
#[cfg(doc)]
use crate::strings::prodguard_string_free;
use crate::strings::{c_string, optional_str, required_str};

/// Runs the SQL `script` on the existing SQLite database at `db_path` under
/// the guards, in one transaction, as the Rust API's `guard.sql(script)`
/// does: the script's operation is its most dangerous statement's kind
/// (`db.delete.where`, `db.drop.table`, …) and every rule matching any
/// statement's kind applies. Where a confirmation is required, a dry run
/// (rolled back) counts each statement's rows first: a statement over its
/// rule's `max_rows` is refused before anyone is asked, the confirmation
/// callback can read the rows with [`prodguard_confirm_consequences`], and
/// `confirm_above_rows` can waive the question. The real run commits only
/// when every statement stays within its `max_rows`, the approval's
/// `--max-rows` and the rows that were confirmed; otherwise it is rolled
/// back and refused (120, 121). A script of its own may be wrapped in
/// `BEGIN; … COMMIT;`; other transaction control is refused (125).
///
/// `target` is what a person types to confirm and an approval names; NULL:
/// `db_path`. The environment stamp checked is the database file's,
/// whatever `target` says. `approval` is
/// an approval token for this script (NULL: the guard's own, from
/// `PRODGUARD_APPROVAL`, if any). With `dry_run`, the script only runs in a
/// transaction that is rolled back and its rows are recorded: nobody is
/// asked and no approval is spent.
///
/// Returns `PRODGUARD_OK` when it committed (or the dry run ran); a refusal
/// (120–125) when nothing was changed, a rollback because of a row bound
/// included; `PRODGUARD_OPERATION_FAILED` when a statement (or the
/// transaction) failed: everything was rolled back unless
/// [`prodguard_last_error`] says otherwise. `PRODGUARD_INVALID_ARGUMENT`
/// for a NULL `guard`, `db_path` or `script`, or a string that is not
/// UTF-8; `PRODGUARD_POLICY_ERROR` when `db_path` is not an SQLite database
/// (no database is ever created), cannot be opened, or the script is larger
/// than 64 MiB.
///
/// Unlike other out-pointers, `*out_rows_json` is written whenever
/// `out_rows_json` is not NULL, whatever the status: a JSON array of the
/// rows each statement affected, by statement index (0 for the script's
/// own `BEGIN` and `COMMIT`), e.g. `[0,250,0]`, when the script ran to its
/// end and its rows were counted — committed, a dry run, or refused after
/// the count (over a row bound; not confirmed after the dry run) and
/// rolled back; otherwise NULL. Free it with [`prodguard_string_free`].
///
/// # Safety
/// `guard` is NULL or a live guard; `db_path`, `script`, `target` and
/// `approval` are NULL or NUL-terminated strings; `out_rows_json` is NULL
/// or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prodguard_sql_run_sqlite(
    guard: *mut prodguard_guard,
    db_path: *const c_char,
    script: *const c_char,
    target: *const c_char,
    approval: *const c_char,
    dry_run: bool,
    out_rows_json: *mut *mut c_char,
) -> prodguard_status {
    boundary(|| {
        // NULL until rows are counted, so the caller always knows what to free.
        let write_rows = |rows: &[u64]| {
            if !out_rows_json.is_null() {
                let json = serde_json::Value::from(rows).to_string();
                // SAFETY: not NULL and writable, by the caller's promise.
                unsafe { out_rows_json.write(c_string(&json).into_raw()) };
            }
        };
        if !out_rows_json.is_null() {
            // SAFETY: not NULL and writable, by the caller's promise.
            unsafe { out_rows_json.write(std::ptr::null_mut()) };
        }
        // SAFETY: NULL or a live guard, by the caller's promise.
        let guard = unsafe { guard.as_ref() }.ok_or_else(|| Failure::invalid("guard is NULL"))?;
        // SAFETY: NULL or NUL-terminated, by the caller's promise.
        let db_path = unsafe { required_str(db_path, "db_path") }?;
        // SAFETY: as above.
        let script = unsafe { required_str(script, "script") }?;
        // SAFETY: as above.
        let target = unsafe { optional_str(target, "target") }?;
        // SAFETY: as above.
        let approval = unsafe { optional_str(approval, "approval") }?;
        if script.len() as u64 > SQL_SCRIPT_MAX_BYTES {
            return Err(Failure::usage(format!(
                "the script is larger than {} MiB: split it, and run each part",
                SQL_SCRIPT_MAX_BYTES >> 20
            )));
        }
        let mut conn = runtime::sql_exec::open_sqlite(std::path::Path::new(db_path))
            .map_err(Failure::usage)?;
        let mut run = guard.inner.sql(script).target(target.unwrap_or(db_path));
        if let Some(token) = approval {
            run = run.approval(token);
        }
        if dry_run {
            run = run.dry_run();
        }
        match run.run(&mut conn) {
            Ok(ran) => {
                write_rows(&ran.rows);
                Ok(())
            }
            Err(RunError::Refused(refusal)) => {
                if let Some(rows) = refusal.denial().and_then(|d| d.rows.as_deref()) {
                    write_rows(rows);
                }
                Err(refusal.into())
            }
            Err(RunError::Failed(failed)) => Err(Failure {
                status: prodguard_status::PRODGUARD_OPERATION_FAILED,
                message: failed.to_string(),
            }),
        }
    })
}
