//! prodguard: know when you are in production, and guard what could hurt it.
//!
//! Two things, both trustworthy:
//!
//! 1. **Where am I?** [`detect()`] classifies the environment once per process
//!    from `PRODGUARD_ENV`, the marker file and the conventions of every
//!    ecosystem (`APP_ENV`, `RAILS_ENV`, `NODE_ENV`, …), with the evidence.
//!    Anything undetermined is treated like production.
//! 2. **Guarded operations.** A [`Guard`] wraps dangerous operations in the
//!    policy's requirements — a typed confirmation, a verified backup, a
//!    durable audit record before and after — and refuses with a clear
//!    [`GuardError`] when one is not met.
//!
//! ```no_run
//! use prodguard::Guard;
//!
//! if prodguard::is_production() {
//!     // e.g. disable debug endpoints
//! }
//! let guard = Guard::from_env()?;
//! guard
//!     .operation("db.migrate")
//!     .target("orders.db")
//!     .run_infallible(|| { /* apply the migration */ })?;
//! # Ok::<(), prodguard::GuardError>(())
//! ```
//!
//! The decisions themselves come from [`prodguard_core`], which does no I/O;
//! this crate reads the real process and drives it.
//!
//! # Policies
//!
//! A policy says what each operation needs in each tier: a confirmation, a
//! verified backup, an audit record, or a refusal. The guard finds it as the
//! CLI does — `PRODGUARD_POLICY`, else `./prodguard.toml`, else the built-in
//! default — and layers it over the system policy
//! (`/etc/prodguard/policy.toml`, root's), which it can only tighten.
//! [`GuardBuilder::policy`] gives one in code; every key is in the
//! repository's `docs/POLICY.md`.
//!
//! ```
//! use prodguard::{Policy, Verdict};
//!
//! let policy = Policy::parse_toml(
//!     r#"
//! [[rule]]
//! name = "no drops in production"
//! operations = ["db.drop", "db.drop.*"]
//! tiers = ["production"]
//! deny = "dropping production data is never done by this service"
//!
//! [[rule]]
//! operations = ["db.migrate"]
//! tiers = ["production", "staging"]
//! require = ["confirm", "audit"]
//! "#,
//!     "inline policy",
//! )?;
//! let guard = prodguard::testing::guard().policy(policy).environment("production").build()?;
//! assert_eq!(guard.verdict("db.drop.table", Some("orders")), Verdict::Deny);
//! assert_eq!(guard.verdict("db.migrate", Some("orders")), Verdict::Require);
//! assert_eq!(guard.verdict("db.read", Some("orders")), Verdict::Allow);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sqlite` | yes | environment stamps on SQLite files, `backup = { provider = "sqlite" }`, guarded SQL on a `rusqlite::Connection` (a bundled SQLite) |
//! | `postgres` | no | fleet mode (the `pg` module): one audit trail, single-use approvals and fleet locks in PostgreSQL, stamps and guarded SQL on PostgreSQL |
//! | `tokio` | no | the async API: `GuardedOperation::run_async`, `begin_async`, `Permit::finish_async` |
//!
//! A policy that needs a feature this build lacks (a `postgresql://` sink
//! without `postgres`) is refused with 125, never ignored.
//!
//! # Testing code that uses a guard
//!
//! [`testing::guard()`] builds a real guard that reads nothing of the process
//! running the tests — no variables, no `./prodguard.toml`, no terminal —
//! with records in memory and scripted answers, so a test says which
//! environment it tests and `APP_ENV=production cargo test` changes nothing:
//!
//! ```
//! use prodguard::testing::{self, yes};
//!
//! fn reset_carts(guard: &prodguard::Guard) -> Result<u64, prodguard::GuardError> {
//!     guard.operation("db.delete.all").target("carts").run_infallible(|| 12)
//! }
//!
//! let guard = testing::guard().environment("production").answer(yes()).build()?;
//! assert_eq!(reset_carts(&guard)?, 12);
//! assert_eq!(guard.challenges()[0].target.as_deref(), Some("carts"));
//! assert_eq!(guard.records().len(), 2, "intent and outcome");
//! # Ok::<(), prodguard::GuardError>(())
//! ```

pub mod approval;
pub mod audit;
pub mod backup;
pub mod config;
pub mod confirm;
mod error;
pub mod facts;
mod fleet;
mod guard;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod rollback;
pub mod small_file;
pub mod sql_exec;
pub mod stamp;
pub mod system;
pub mod testing;
pub mod trail;

use std::sync::OnceLock;

pub use error::{GuardError, RunError};
pub use guard::{Check, Guard, GuardBuilder, GuardedOperation, GuardedSql, Permit, SqlRan};
// The core's types an embedder meets, so that `prodguard` is the one
// dependency a Rust program needs.
pub use prodguard_core::audit::{Actor, BatchItem};
pub use prodguard_core::policy::{ActorKind, Requirement};
pub use prodguard_core::secret::redact_password;
pub use prodguard_core::session::{Decision, Operation, Stamp, StampVerdict, Verdict};
/// SQL classification and its decision (`classify`, `decide`), from the core.
pub use prodguard_core::sql;
pub use prodguard_core::{Detection, ExitCode, Facts, Policy, PolicyError, Tier, Timestamp};

static DETECTION: OnceLock<Detection> = OnceLock::new();

/// Where this process runs, with the evidence; computed once and cached.
///
/// Uses the policy in force's `[environment]` settings. If that policy is
/// invalid, or the system layer is not secure, the answer is `unknown`
/// (protected) and the error is logged: its aliases and marker files cannot
/// be trusted, so nothing is assumed.
///
/// ```
/// let detection = prodguard::detect();
/// println!("{} (tier {}), decided by {}", detection.environment, detection.tier, detection.decided_by);
/// ```
pub fn detect() -> &'static Detection {
    DETECTION.get_or_init(|| match config::discover_policy() {
        Ok(policy) => {
            let facts = facts::gather_facts(policy.environment());
            prodguard_core::classify(&facts, policy.environment())
        }
        Err(e) => {
            tracing::error!(error = %e, "invalid policy: the environment counts as unknown");
            Detection {
                environment: "unknown".into(),
                tier: Tier::Unknown,
                protected: true,
                decided_by: "invalid policy".into(),
                evidence: Vec::new(),
                conflicts: Vec::new(),
                hint: Some(format!("fix the policy first: {e}")),
            }
        }
    })
}

/// Whether guards apply here: the environment is production, or nobody
/// declared it (unknown fails closed). Cached after the first call.
pub fn is_production() -> bool {
    detect().protected
}
