//! The requests and answers of ABI.md: the core's own types, which the
//! module itself parses and writes, re-exported here under this crate's
//! names. Requests serialise to exactly the JSON ABI.md documents (absent
//! options are left out). Answers ignore fields they do not know, as ABI.md
//! asks of hosts, so a module of a later minor version still parses.
//!
//! What needs the real process (its environment, clock, actor) is here as
//! functions: [`gather_facts`], [`evidence_from_process`], [`now_rfc3339`].

pub use prodguard_core::approval::Claims as ApprovalClaims;
pub use prodguard_core::audit::{Actor, AuditEvent, BackupEvidence as Backup, GENESIS_PREV};
pub use prodguard_core::json_api::{
    ApprovalEvidence, ApprovalRequest, Evaluation, Evidence, MAX_FACT_BYTES, RecordLine,
    RecordRequest as AuditRecordRequest, Request as EvaluateRequest, RequestOperation as Operation,
    RequestSql, SessionStep as Step, SessionVerdict, SqlAnswer, SqlStatement,
};
pub use prodguard_core::policy::{
    ActorKind, ConfirmMode, DEFAULT_MARKER_FILE, Requirement as RequirementKind,
};
pub use prodguard_core::session::{
    Challenge, Decision, Denial, RequirementView as Requirement, Stamp, Verdict,
};
pub use prodguard_core::sql::{Dialect, RowBounds, SqlKind};
pub use prodguard_core::{Detection, Facts, Tier, Timestamp};

/// The system policy's text, for [`EvaluateRequest::system_policy`]: read
/// only once `/etc/prodguard` is found owned by root and writable by nobody
/// else (an error otherwise; `None` when there is no system policy). A host
/// that passes it vouches for it; the module layers the request's policy
/// over it.
pub use prodguard::system::policy_text as system_policy_text;

/// The current time from the system clock, as the RFC 3339 text ABI.md's
/// `now` and audit `ts` fields take (UTC, microseconds).
///
/// ```
/// let now = prodguard_wasmtime::now_rfc3339();
/// assert!(now.ends_with('Z'));
/// ```
pub fn now_rfc3339() -> String {
    now().to_rfc3339()
}

/// The current time from the system clock, e.g. for [`Backup::created`].
///
/// ```
/// let now = prodguard_wasmtime::now();
/// assert!(now.to_rfc3339().starts_with("20"));
/// ```
pub fn now() -> Timestamp {
    prodguard::facts::now()
}

/// The facts of this process, as the Rust runtime reads them: every
/// environment variable (names and values that are not UTF-8 are kept
/// lossily, which can only make the answer more cautious), the content of
/// the system marker (`/etc/prodguard/environment`, always) and of
/// `marker_file` if they exist (at most 4 KiB; an unreadable marker counts
/// as an unknown environment), and the host name.
///
/// Facts over [`MAX_FACT_BYTES`] (which the module refuses) are kept
/// failing closed: a variable with such a name is left out (no convention
/// has one), and such a value is replaced by a short note that names no
/// environment, so it can only make the answer more cautious, never less.
///
/// The request carries the whole environment: a host that logs requests
/// should filter it.
///
/// ```
/// let facts = prodguard_wasmtime::gather_facts("/nonexistent/marker");
/// assert!(!facts.files.contains_key("/nonexistent/marker"));
/// assert!(facts.explicit.is_none());
/// ```
pub fn gather_facts(marker_file: &str) -> Facts {
    let config = prodguard_core::policy::EnvironmentConfig {
        marker_file: marker_file.to_owned(),
        ..Default::default()
    };
    let facts = prodguard::facts::gather_facts(&config);
    let fit = |(name, value): (String, String)| {
        if name.len() > MAX_FACT_BYTES {
            return None;
        }
        if value.len() > MAX_FACT_BYTES {
            let note = format!(
                "<{} bytes, over the {MAX_FACT_BYTES}-byte limit>",
                value.len()
            );
            return Some((name, note));
        }
        Some((name, value))
    };
    Facts {
        env: facts.env.into_iter().filter_map(fit).collect(),
        files: facts.files.into_iter().filter_map(fit).collect(),
        hostname: facts.hostname.filter(|h| h.len() <= MAX_FACT_BYTES),
        explicit: facts.explicit,
    }
}

/// [`gather_facts`] with the default policy's marker file,
/// [`DEFAULT_MARKER_FILE`].
///
/// ```
/// let facts = prodguard_wasmtime::gather_default_facts();
/// assert!(facts.files.keys().all(|path| path == prodguard_wasmtime::DEFAULT_MARKER_FILE));
/// ```
pub fn gather_default_facts() -> Facts {
    gather_facts(DEFAULT_MARKER_FILE)
}

/// Evidence for a new attempt by this process's actor, found as the Rust
/// runtime finds it (`PRODGUARD_ACTOR`, `SUDO_USER`, `USER`, …; agent, CI,
/// human or service), with a fresh random attempt id and nothing else given
/// yet.
///
/// ```
/// let evidence = prodguard_wasmtime::evidence_from_process();
/// assert_eq!(evidence.attempt_id.len(), 32);
/// ```
pub fn evidence_from_process() -> Evidence {
    Evidence::new(
        prodguard::facts::current_actor(),
        prodguard::facts::random_id(),
    )
}
