//! One module per command family; each `run` returns the exit code to leave
//! with (an `Err` is printed by `main` and leaves with its own code).

pub(crate) mod approve;
pub(crate) mod audit;
pub(crate) mod check;
pub(crate) mod detect;
pub(crate) mod exec;
pub(crate) mod fleet;
pub(crate) mod keygen;
pub(crate) mod policy;
pub(crate) mod stamp;

use std::path::PathBuf;

use prodguard::{Guard, GuardError, Policy, config};

/// The policy named by `--policy`, or the one discovered
/// (PRODGUARD_POLICY, ./prodguard.toml, the built-in default).
pub(crate) fn load_policy(explicit: Option<&PathBuf>) -> Result<Policy, GuardError> {
    match explicit {
        Some(path) => config::load_policy_file(path),
        None => config::discover_policy(),
    }
}

/// A guard under that policy.
pub(crate) fn guard(explicit_policy: Option<&PathBuf>) -> Result<Guard, GuardError> {
    Guard::builder()
        .policy(load_policy(explicit_policy)?)
        .build()
}
