//! The boundary across every export: NULLs and bad UTF-8 become status
//! codes, panics become `PRODGUARD_PANIC`, a guard serves many threads.

use super::*;
use std::ffi::{CStr, CString, c_void};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};

fn last_error() -> String {
    // SAFETY: prodguard_last_error never returns NULL and the string
    // lives until the next call on this thread.
    unsafe { CStr::from_ptr(prodguard_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A guard in development whose policy and audit log live in a fresh
/// directory, removed when the returned `TempDir` drops: keep it alive
/// until the guard is freed.
fn development_guard() -> (tempfile::TempDir, *mut prodguard_guard) {
    let tmp = tempfile::Builder::new()
        .prefix("prodguard-ffi-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
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
    (tmp, guard)
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
    let (_dir, guard) = development_guard();
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
    let (_dir, guard) = development_guard();
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
            (
                "sql_run_sqlite guard",
                prodguard_sql_run_sqlite(
                    null_mut(),
                    op_name.as_ptr(),
                    op_name.as_ptr(),
                    null(),
                    null(),
                    false,
                    &mut text,
                ),
            ),
            (
                "sql_run_sqlite db_path",
                prodguard_sql_run_sqlite(
                    guard,
                    null(),
                    op_name.as_ptr(),
                    null(),
                    null(),
                    false,
                    &mut text,
                ),
            ),
            (
                "sql_run_sqlite script",
                prodguard_sql_run_sqlite(
                    guard,
                    op_name.as_ptr(),
                    null(),
                    null(),
                    null(),
                    false,
                    null_mut(),
                ),
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
    let (_dir, guard) = development_guard();
    let guard = guard as usize;
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

#[test]
fn evaluate_json_takes_the_machines_system_policy_not_the_callers() {
    if std::path::Path::new(prodguard_core::trust::SYSTEM_DIR)
        .join("policy.toml")
        .exists()
    {
        return; // A machine with a real system layer: another answer.
    }
    // A caller stating a system policy of its own (one that anchors a
    // policy nobody protects) is not believed: this machine has none.
    let request = serde_json::json!({
        "facts": {"env": {"APP_ENV": "production"}},
        "system_policy": "[[rule]]\noperations = [\"nothing\"]\ntiers = [\"local\"]\nrequire = [\"audit\"]\n",
        "operation": {"kind": "db.migrate", "target": "orders"},
    })
    .to_string();
    let request = CString::new(request).unwrap();
    let mut text = null_mut();
    // SAFETY: valid string and out-pointer.
    let status = unsafe { prodguard_evaluate_json(request.as_ptr(), &mut text) };
    assert_eq!(status, prodguard_status::PRODGUARD_OK, "{}", last_error());
    // SAFETY: written on success, NUL-terminated, freed once below.
    let answer: serde_json::Value =
        serde_json::from_str(&unsafe { CStr::from_ptr(text) }.to_string_lossy()).unwrap();
    // SAFETY: made by prodguard_evaluate_json.
    unsafe { prodguard_string_free(text) };
    assert_eq!(answer["decision"]["exit_code"], 121, "{answer}");
}

#[test]
fn sql_run_sqlite_refuses_bad_input_before_it_opens_or_creates_anything() {
    let (dir, guard) = development_guard();
    let missing = dir.path().join("shop.db");
    let db = CString::new(missing.to_str().unwrap()).unwrap();
    let script = CString::new("DELETE FROM carts WHERE id = 1").unwrap();
    let bad = [0x44u8 as c_char, 0xff_u8 as c_char, 0];
    let run = |db: *const c_char, script: *const c_char, target: *const c_char| {
        // Not a string the library makes: still there means not written.
        let mut sentinel = 0 as c_char;
        let mut rows: *mut c_char = &mut sentinel;
        // SAFETY: a live guard; NUL-terminated strings; a writable out-pointer.
        let status = unsafe {
            prodguard_sql_run_sqlite(guard, db, script, target, null(), false, &mut rows)
        };
        assert!(
            rows.is_null(),
            "out_rows_json is written NULL: no rows counted"
        );
        status
    };
    use prodguard_status::{PRODGUARD_INVALID_ARGUMENT, PRODGUARD_POLICY_ERROR};
    for (what, args) in [
        ("script", [db.as_ptr(), bad.as_ptr(), null()]),
        ("db_path", [bad.as_ptr(), script.as_ptr(), null()]),
        ("target", [db.as_ptr(), script.as_ptr(), bad.as_ptr()]),
    ] {
        assert_eq!(
            run(args[0], args[1], args[2]),
            PRODGUARD_INVALID_ARGUMENT,
            "{what}"
        );
        assert!(
            last_error().contains(&format!("{what} is not valid UTF-8")),
            "{what}: {}",
            last_error()
        );
    }
    assert_eq!(
        run(db.as_ptr(), script.as_ptr(), null()),
        PRODGUARD_POLICY_ERROR
    );
    assert!(
        last_error().contains("not a SQLite database"),
        "{}",
        last_error()
    );
    assert!(!missing.exists(), "no database is created");
    // The CLI's cap on scripts, checked before the database is looked at.
    let huge = CString::new(vec![b' '; (64 << 20) + 1]).unwrap();
    assert_eq!(
        run(db.as_ptr(), huge.as_ptr(), null()),
        PRODGUARD_POLICY_ERROR
    );
    assert!(
        last_error().contains("larger than 64 MiB"),
        "{}",
        last_error()
    );
    assert!(
        prodguard_confirm_consequences().is_null(),
        "no consequences outside a confirmation callback"
    );
    // SAFETY: made by prodguard_guard_new, freed once.
    unsafe { prodguard_guard_free(guard) };
}
