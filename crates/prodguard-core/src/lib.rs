//! The sans-IO engine of prodguard.
//!
//! This crate never reads the process environment, the clock, a file or a
//! terminal. Everything it needs comes in as values — a [`Facts`] snapshot,
//! `now` as a [`Timestamp`], answers and evidence — and everything it wants
//! done goes out as values: [`session::Step`]s to perform and audit records
//! to append. It compiles unchanged to `wasm32-unknown-unknown`, so every face
//! of prodguard (the Rust runtime, the CLI, the C ABI, the Wasm module) makes
//! exactly the same decisions.
//!
//! ```
//! use prodguard_core::{classify, Facts, Policy};
//!
//! let policy = Policy::builtin_default();
//! let mut facts = Facts::default();
//! facts.env.insert("APP_ENV".into(), "production".into());
//! let detection = classify(&facts, &policy.environment);
//! assert!(detection.protected);
//! ```
#![forbid(unsafe_code)]

pub mod api;
pub mod approval;
pub mod audit;
pub mod detect;
pub mod policy;
pub mod secret;
pub mod session;
#[cfg(test)]
mod test_rng;
mod tier;
mod time;

pub use detect::{Detection, Facts, classify};
pub use policy::{Policy, PolicyError};
pub use tier::Tier;
pub use time::Timestamp;

/// The exit codes (CLI) and status codes (C, Wasm) every face shares.
pub mod exit {
    /// Denied by a policy rule.
    pub const DENIED: i32 = 120;
    /// Confirmation missing or declined.
    pub const NOT_CONFIRMED: i32 = 121;
    /// Backup requirement not met.
    pub const BACKUP_FAILED: i32 = 122;
    /// Audit log unavailable.
    pub const AUDIT_UNAVAILABLE: i32 = 123;
    /// The target's environment stamp disagrees with the detected environment.
    pub const ENV_MISMATCH: i32 = 124;
    /// Usage or policy error.
    pub const POLICY_ERROR: i32 = 125;
    /// The wrapped command exists but could not be executed.
    pub const NOT_EXECUTABLE: i32 = 126;
    /// The wrapped command was not found.
    pub const NOT_FOUND: i32 = 127;
}
