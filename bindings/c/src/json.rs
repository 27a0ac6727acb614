//! The JSON API without a handle: [`prodguard_evaluate_json`].

use std::cell::RefCell;
use std::ffi::{CString, c_char};

#[cfg(doc)]
use crate::status::prodguard_last_error;
use crate::status::{Failure, boundary, prodguard_status};
#[cfg(doc)]
use crate::strings::prodguard_string_free;
use crate::strings::required_str;

thread_local! {
    /// `prodguard_evaluate_json`'s JSON API, one per calling thread: it
    /// keeps the last policy parsed (a host sends the same one with every
    /// request). The function takes no handle, so the thread is its owner;
    /// threads never wait on each other for it.
    static JSON_API: RefCell<prodguard_core::json_api::JsonApi> =
        RefCell::new(prodguard_core::json_api::JsonApi::new());
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
            Err(_) => prodguard_core::json_api::evaluate_json(request),
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
