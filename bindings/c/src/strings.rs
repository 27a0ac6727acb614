//! Strings across the boundary: reading the caller's C strings, making
//! ours, and [`prodguard_string_free`] for the ones the library returns.

use std::ffi::{CStr, CString, c_char};

use crate::status::{Failure, boundary};

/// Reads a required C string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn required_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
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
pub(crate) unsafe fn optional_str<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded; the same promise holds.
    unsafe { required_str(ptr, name) }.map(Some)
}

pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
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
