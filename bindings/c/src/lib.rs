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
//!
//! One module per concept: `status` (the status codes, the last error and
//! the boundary), `guard` and its host `callbacks`, `detect`,
//! `operation`, `sql` (guarded SQL on SQLite), `audit`, `json` (the
//! handle-less JSON API), and `strings` (C strings in and out). cbindgen
//! reads this file's items first, then the modules in the order they are
//! declared here: that order is the header's, so keep it.
#![allow(non_camel_case_types)]

use std::ffi::c_char;

/// The library's version, e.g. `"0.1.0"`. Static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn prodguard_version() -> *const c_char {
    static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

mod status;

mod guard;

mod callbacks;

mod detect;

mod operation;

mod sql;

mod audit;

mod json;

mod strings;

#[cfg(test)]
mod tests;

pub use audit::*;
pub use callbacks::*;
pub use detect::*;
pub use guard::*;
pub use json::*;
pub use operation::*;
pub use sql::*;
pub use status::*;
pub use strings::*;
