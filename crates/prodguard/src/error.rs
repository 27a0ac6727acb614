//! The errors a guarded operation can end with, one per exit code.

use prodguard_core::ExitCode;
use prodguard_core::session::Denial;

/// Why a guarded operation did not run.
///
/// Each variant maps to one exit code of the CLI (and status code of the C
/// and Wasm faces); its message says what is missing and what to do.
///
/// ```
/// use prodguard::GuardError;
/// let err = GuardError::Policy("prodguard.toml:3:1: unknown key `requre`".into());
/// assert_eq!(err.exit_code(), 125);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// 120: a policy rule forbids this operation here.
    #[error("{0}")]
    Denied(Denial),
    /// 121: confirmation missing or declined.
    #[error("{0}")]
    NotConfirmed(Denial),
    /// 122: the backup requirement is not met.
    #[error("{0}")]
    BackupFailed(Denial),
    /// 123: the audit log is unavailable, so nothing may run.
    #[error("{0}")]
    AuditUnavailable(Denial),
    /// 124: the target's environment stamp disagrees with the detected environment.
    #[error("{0}")]
    EnvironmentMismatch(Denial),
    /// 125: the policy or the request is invalid.
    #[error("{0}")]
    Policy(String),
    /// 75: another host holds the fleet lock of this operation and target
    /// (fleet mode); nothing ran, and running again later may work.
    #[error("{0}")]
    LockHeld(Denial),
}

impl GuardError {
    /// The exit code (120–125, or 75 for a fleet lock another host holds)
    /// shared by every face.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            GuardError::Denied(_) => ExitCode::Denied,
            GuardError::NotConfirmed(_) => ExitCode::NotConfirmed,
            GuardError::BackupFailed(_) => ExitCode::BackupFailed,
            GuardError::AuditUnavailable(_) => ExitCode::AuditUnavailable,
            GuardError::EnvironmentMismatch(_) => ExitCode::EnvMismatch,
            GuardError::Policy(_) => ExitCode::PolicyError,
            GuardError::LockHeld(_) => ExitCode::LockHeld,
        }
    }

    /// The session's refusal, when there was one.
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            GuardError::Denied(d)
            | GuardError::NotConfirmed(d)
            | GuardError::BackupFailed(d)
            | GuardError::AuditUnavailable(d)
            | GuardError::EnvironmentMismatch(d)
            | GuardError::LockHeld(d) => Some(d),
            GuardError::Policy(_) => None,
        }
    }

    pub(crate) fn from_denial(denial: Denial) -> GuardError {
        match denial.exit_code {
            ExitCode::Denied => GuardError::Denied(denial),
            ExitCode::NotConfirmed => GuardError::NotConfirmed(denial),
            ExitCode::BackupFailed => GuardError::BackupFailed(denial),
            ExitCode::EnvMismatch => GuardError::EnvironmentMismatch(denial),
            ExitCode::PolicyError => GuardError::Policy(format!("{denial}")),
            ExitCode::LockHeld => GuardError::LockHeld(denial),
            // Anything unexpected is treated as the audit being unavailable:
            // the operation must not run.
            _ => GuardError::AuditUnavailable(denial),
        }
    }
}

/// How [`GuardedOperation::run`](crate::GuardedOperation::run) ends without
/// a value.
///
/// ```
/// use prodguard::{GuardError, RunError};
/// let refused: RunError<std::io::Error> = GuardError::Policy("bad".into()).into();
/// assert!(matches!(refused, RunError::Refused(_)));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum RunError<E> {
    /// The guard refused: the operation did not run.
    #[error(transparent)]
    Refused(#[from] GuardError),
    /// The operation ran and returned this error, recorded as `failed`.
    #[error(transparent)]
    Failed(E),
}
