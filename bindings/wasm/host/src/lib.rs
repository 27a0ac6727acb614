//! Load `prodguard.wasm` in wasmtime: production-safety decisions for Rust
//! plugin hosts.
//!
//! `prodguard.wasm` is the prodguard core as a plain WebAssembly module (see
//! `bindings/wasm/ABI.md`): it performs no I/O, so the host passes in the
//! facts (environment variables, marker file, host name), the time and what
//! a person typed, and performs every side effect (prompting, backing up,
//! appending audit records). This crate is that host for wasmtime:
//!
//! - [`ProdguardModule`] compiles the module once, refuses it unless its
//!   ABI major is 1, its exports are exactly the documented set and it
//!   imports nothing, and is `Send + Sync` and cheap to clone.
//! - [`ProdguardInstance`] is one instance with its own `Store`, used one
//!   call at a time, under [`Limits`]: a fuel budget per call (a looping
//!   module returns [`Error::FuelExhausted`] instead of hanging) and a
//!   memory cap. After a trap it replaces itself with a fresh instance.
//! - [`evaluate`](ProdguardInstance::evaluate),
//!   [`audit_record`](ProdguardInstance::audit_record) and
//!   [`verify_approval`](ProdguardInstance::verify_approval) are typed;
//!   [`call_json`](ProdguardInstance::call_json) is byte-exact.
//! - [`gather_facts`] reads the real process's facts as the Rust runtime
//!   does.
//! - The requests and answers are the core's own types
//!   (`prodguard_core::json_api` and the types it uses), so this crate, the
//!   module and `prodguard.d.ts` share one schema.
//!
//! ```no_run
//! use prodguard_wasmtime::{EvaluateRequest, ProdguardModule, evidence_from_process, gather_default_facts, now_rfc3339};
//!
//! let module = ProdguardModule::from_file("target/prodguard.wasm")?;
//! let mut instance = module.instantiate()?;
//!
//! // A dry run: what would the policy ask for here?
//! let request = EvaluateRequest::new("db.migrate").target("orders").facts(gather_default_facts());
//! let evaluation = instance.evaluate(&request)?;
//! println!("{} → {:?}", evaluation.detection.environment, evaluation.decision.result);
//!
//! // The guard session: may it run now, with what the person typed?
//! let mut evidence = evidence_from_process();
//! evidence.typed = Some("orders".into());
//! let session = instance.evaluate(&request.evidence(evidence, now_rfc3339()))?.session;
//! if let Some(session) = session {
//!     if session.proceeds() {
//!         // append `session.record` to the audit log durably, then run the operation
//!     }
//! }
//! # Ok::<(), prodguard_wasmtime::Error>(())
//! ```
//!
//! Only this crate's safe wasmtime API is used; it contains no `unsafe`.

#![forbid(unsafe_code)]

mod error;
mod instance;
mod module;
mod types;

pub use error::Error;
pub use instance::{Export, ProdguardInstance};
pub use module::{
    AbiVersion, DEFAULT_FUEL_PER_CALL, DEFAULT_MAX_MEMORY_BYTES, EXPORTS, Limits, ProdguardModule,
    SUPPORTED_ABI_MAJOR,
};
pub use types::{
    Actor, ActorKind, ApprovalClaims, ApprovalEvidence, ApprovalRequest, AuditEvent,
    AuditRecordRequest, Backup, Challenge, ConfirmMode, DEFAULT_MARKER_FILE, Decision, Denial,
    Detection, Dialect, EvaluateRequest, Evaluation, Evidence, Facts, GENESIS_PREV, MAX_FACT_BYTES,
    Operation, RecordLine, RequestSql, Requirement, RequirementKind, RowBounds, SessionVerdict,
    SqlAnswer, SqlKind, SqlStatement, Stamp, Step, Tier, Timestamp, Verdict, evidence_from_process,
    gather_default_facts, gather_facts, now, now_rfc3339, system_policy_text,
};
