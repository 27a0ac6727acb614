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
//! let detection = classify(&facts, policy.environment());
//! assert!(detection.protected);
//! ```
#![forbid(unsafe_code)]

pub mod approval;
pub mod audit;
pub mod confirm;
pub mod detect;
pub mod hook;
pub mod json_api;
pub mod policy;
pub mod promotion;
pub mod rollback;
pub mod secret;
pub mod session;
pub mod shell;
pub mod sql;
#[cfg(test)]
mod test_rng;
pub mod text;
mod tier;
mod time;
pub mod trust;

pub use detect::{Detection, Facts, classify};
pub use policy::{Policy, PolicyError};
pub use sql::{SqlKind, classify as classify_sql};
pub use tier::Tier;
pub use time::Timestamp;

/// The exit codes (CLI) and status codes (C, Wasm) every face shares: the
/// one table of what a refusal means.
///
/// It crosses every boundary as its number (`"exit_code": 121` in JSON).
///
/// ```
/// use prodguard_core::ExitCode;
///
/// assert_eq!(ExitCode::NotConfirmed.code(), 121);
/// assert_eq!(ExitCode::from_code(124), Some(ExitCode::EnvMismatch));
/// assert_eq!(serde_json::to_string(&ExitCode::Denied).unwrap(), "120");
/// ```
#[repr(i32)]
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "i32", try_from = "i32")]
pub enum ExitCode {
    /// 75 (EX_TEMPFAIL): another host holds the fleet lock of this
    /// operation and target; nothing ran, and running again later may work.
    LockHeld = 75,
    /// 120: denied by a policy rule.
    Denied = 120,
    /// 121: confirmation missing or declined.
    NotConfirmed = 121,
    /// 122: backup requirement not met.
    BackupFailed = 122,
    /// 123: audit log unavailable.
    AuditUnavailable = 123,
    /// 124: the target's environment stamp disagrees with the detected environment.
    EnvMismatch = 124,
    /// 125: usage or policy error.
    PolicyError = 125,
    /// 126: the wrapped command exists but could not be executed.
    NotExecutable = 126,
    /// 127: the wrapped command was not found.
    NotFound = 127,
}

impl ExitCode {
    /// Every code, in numeric order.
    pub const ALL: [ExitCode; 9] = [
        ExitCode::LockHeld,
        ExitCode::Denied,
        ExitCode::NotConfirmed,
        ExitCode::BackupFailed,
        ExitCode::AuditUnavailable,
        ExitCode::EnvMismatch,
        ExitCode::PolicyError,
        ExitCode::NotExecutable,
        ExitCode::NotFound,
    ];

    /// Its number.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The code with this number, if there is one.
    pub fn from_code(code: i32) -> Option<ExitCode> {
        ExitCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl From<ExitCode> for i32 {
    fn from(code: ExitCode) -> i32 {
        code.code()
    }
}

impl TryFrom<i32> for ExitCode {
    type Error = String;

    fn try_from(code: i32) -> Result<ExitCode, String> {
        ExitCode::from_code(code)
            .ok_or_else(|| format!("{code} is not a prodguard exit code (75, 120-127)"))
    }
}

impl PartialEq<i32> for ExitCode {
    fn eq(&self, other: &i32) -> bool {
        self.code() == *other
    }
}

impl PartialEq<ExitCode> for i32 {
    fn eq(&self, other: &ExitCode) -> bool {
        *self == other.code()
    }
}

impl std::fmt::Display for ExitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}
