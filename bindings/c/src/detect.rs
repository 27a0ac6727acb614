//! The detected environment: as JSON, as a tier, as a name.

use std::ffi::{CString, c_char};

use crate::guard::prodguard_guard;
use crate::status::{Failure, boundary, prodguard_status};
#[cfg(doc)]
use crate::strings::prodguard_string_free;

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
