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

/// Evaluates a JSON request for the facts it gives: `{"facts": {"env",
/// "files", "hostname", "explicit"}, "policy": "<TOML>" | null,
/// "operation": {"kind", "target"}}` (the Wasm module's `prodguard_evaluate`
/// request). With `"sql": {"script", "dialect"}` instead of
/// `operation.kind`, the script is the operation: the answer also carries
/// `"sql"` (each statement's kind, tables and line; the script's operation,
/// fingerprint and row bounds) and the decision is the script's (see
/// `bindings/wasm/ABI.md`, "SQL scripts"). The facts are the caller's (a dry run of them; guarded runs
/// go through `prodguard_run`, which reads the process), but the policy is
/// layered over this machine's system policy (`/etc/prodguard/policy.toml`),
/// read here whatever the request says of it, as every guard in this
/// process is. On success writes `{"detection",
/// "decision"}` (and `"sql"`) to `*out_json` (free it with [`prodguard_string_free`]); a
/// bad request or policy, one that would loosen the system policy, or a
/// system layer that is not root's alone is `PRODGUARD_POLICY_ERROR` with
/// the reason in [`prodguard_last_error`].
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
        let request = with_system_policy(request)?;
        let response = JSON_API.with(|api| match api.try_borrow_mut() {
            Ok(mut api) => api.evaluate_json(&request),
            // Never: nothing re-enters. Uncached is still right.
            Err(_) => prodguard_core::json_api::evaluate_json(&request),
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

/// `request` stating this machine's system policy as its `system_policy`
/// (none when there is none): a caller in this process cannot leave it out
/// or state another.
fn with_system_policy(request: &str) -> Result<String, Failure> {
    let policy_error = |message: String| Failure {
        status: prodguard_status::PRODGUARD_POLICY_ERROR,
        message,
    };
    let mut value: serde_json::Value =
        serde_json::from_str(request).map_err(|e| policy_error(format!("invalid request: {e}")))?;
    let system = runtime::system::policy_text().map_err(|e| policy_error(e.to_string()))?;
    if let Some(object) = value.as_object_mut() {
        match system {
            Some(text) => object.insert("system_policy".into(), text.into()),
            None => object.remove("system_policy"),
        };
    }
    Ok(value.to_string())
}
