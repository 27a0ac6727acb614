//! Fleet mode's policy keys, wired into the guard: `[audit] sink` (the
//! shared audit trail), `[approval] ledger` (spent approvals) and
//! `[fleet] lock` (one operation per target at a time), all on PostgreSQL.
//!
//! A build without the `postgres` feature refuses a policy that names any
//! of them: a key that is accepted but not honoured would let operations
//! through that the policy meant to coordinate.

use std::sync::Arc;

use prodguard_core::Policy;
use prodguard_core::audit::AuditEvent;
use prodguard_core::session::LockRefusal;

use crate::GuardError;
use crate::audit::{AppendReceipt, AuditError, AuditSink};

/// A sink for when no audit log can be located: every append fails, so
/// operations that require audit refuse.
pub(crate) struct NoAuditLog;

impl NoAuditLog {
    fn error() -> AuditError {
        AuditError::Unlocatable
    }
}

impl AuditSink for NoAuditLog {
    fn append(&self, _: &AuditEvent) -> Result<AppendReceipt, AuditError> {
        Err(Self::error())
    }

    /// Known before anyone is asked anything: no append can succeed.
    fn check(&self) -> Result<(), AuditError> {
        Err(Self::error())
    }
}

/// `local` (the file log or the program's own sink, if any), with the
/// policy's `[audit] sink` and `[approval] ledger` around it: every record
/// goes to the shared trail first and `local` gets a copy; approvals are
/// spent in the ledger when one is named. Without any of them, a sink that
/// refuses every append ([`NoAuditLog`]).
pub(crate) fn audit_sink(
    policy: &Policy,
    local: Option<Arc<dyn AuditSink>>,
) -> Result<Arc<dyn AuditSink>, GuardError> {
    // Fleet mode starts where approvals are spent in PostgreSQL.
    if prodguard_core::approval::ledger_url(policy).is_none() {
        return Ok(local.unwrap_or_else(|| Arc::new(NoAuditLog)));
    }
    postgres_sink(policy, local)
}

#[cfg(feature = "postgres")]
fn postgres_sink(
    policy: &Policy,
    local: Option<Arc<dyn AuditSink>>,
) -> Result<Arc<dyn AuditSink>, GuardError> {
    use crate::audit::TeeSink;
    use crate::pg::{LedgerSink, PgAuditSink, PgLedger};

    let mut sink = local;
    let mut trail_server = None;
    if let Some(url) = &policy.audit().sink {
        let server = parse_server("[audit] sink", url)?;
        trail_server = Some(server.name().to_owned());
        let trail = PgAuditSink::for_server(server).with_durability(policy.audit().durability);
        sink = Some(match sink {
            Some(copy) => Arc::new(TeeSink::new(trail, copy)),
            None => Arc::new(trail),
        });
    }
    // Without a sink so far there is no log to record anything in: the
    // sink refuses every append, so audited operations refuse.
    let sink = sink.unwrap_or_else(|| Arc::new(NoAuditLog));
    match &policy.approval().ledger {
        Some(url) => {
            let server = parse_server("[approval] ledger", url)?;
            // The trail's own table spends approvals in the same
            // transaction as the intent: no second server to consult.
            if trail_server.as_deref() == Some(server.name()) {
                return Ok(sink);
            }
            Ok(Arc::new(LedgerSink::new(
                PgLedger::for_server(server),
                sink,
            )))
        }
        None => Ok(sink),
    }
}

#[cfg(not(feature = "postgres"))]
fn postgres_sink(
    policy: &Policy,
    _: Option<Arc<dyn AuditSink>>,
) -> Result<Arc<dyn AuditSink>, GuardError> {
    Err(without_postgres(policy))
}

#[cfg(not(feature = "postgres"))]
fn without_postgres(policy: &Policy) -> GuardError {
    GuardError::Policy(format!(
        "{}: the policy sets {}, which keeps fleet state in PostgreSQL, but this build of \
         prodguard has no PostgreSQL support; build it with the `postgres` feature (the \
         prodguard CLI has it), or remove the key",
        policy.source(),
        policy.fleet_keys().join(", ")
    ))
}

#[cfg(feature = "postgres")]
fn parse_server(key: &str, url: &str) -> Result<crate::pg::PgServer, GuardError> {
    crate::pg::PgServer::parse(url).map_err(|e| {
        GuardError::Policy(format!(
            "{key} is not a usable PostgreSQL URL: {e}; fix it in the policy"
        ))
    })
}

/// The policy's `[fleet] lock`, ready to take.
#[cfg(feature = "postgres")]
pub(crate) struct Locks {
    locks: crate::pg::FleetLock,
    wait: std::time::Duration,
}

/// Without PostgreSQL there are no fleet locks (a policy naming one is refused).
#[cfg(not(feature = "postgres"))]
pub(crate) enum Locks {}

/// A fleet lock held for one guarded operation; dropping it releases it.
#[cfg(feature = "postgres")]
pub(crate) type LockHold = crate::pg::FleetGuard;

/// Without PostgreSQL no lock is ever held.
#[cfg(not(feature = "postgres"))]
pub(crate) enum LockHold {}

impl Locks {
    /// The policy's fleet locks, held as `holder`; `None` without `[fleet] lock`.
    pub(crate) fn from_policy(policy: &Policy, holder: &str) -> Result<Option<Locks>, GuardError> {
        let Some(url) = &policy.fleet().lock else {
            return Ok(None);
        };
        #[cfg(feature = "postgres")]
        {
            let server = parse_server("[fleet] lock", url)?;
            Ok(Some(Locks {
                locks: crate::pg::FleetLock::for_server(server).holder(holder),
                wait: std::time::Duration::from_secs(policy.fleet().wait_seconds),
            }))
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = (url, holder);
            Err(without_postgres(policy))
        }
    }

    /// Takes the lock of (`operation`, `target`), waiting as the policy says.
    /// The hold's [`fence`](crate::pg::FleetGuard::fence) goes into the intent.
    pub(crate) fn acquire(&self, operation: &str, target: &str) -> Result<LockHold, LockRefusal> {
        #[cfg(feature = "postgres")]
        {
            use crate::pg::LockError;

            // One database, one lock, however each host spells its URL.
            let database = crate::pg::database_of(target);
            let target = database.as_deref().unwrap_or(target);
            tracing::debug!(operation, target, wait = ?self.wait, "taking the fleet lock");
            self.locks
                .acquire(operation, target, Some(self.wait))
                .map_err(|e| match e {
                    LockError::Held { .. } => LockRefusal {
                        exit_code: prodguard_core::ExitCode::LockHeld,
                        missing: e.to_string(),
                        next_step: "wait until it finishes and run again, or set [fleet] wait \
                                    to queue behind it"
                            .to_owned(),
                    },
                    LockError::Unavailable(pg) => unavailable(&pg),
                    LockError::Heartbeat(_) => LockRefusal {
                        exit_code: prodguard_core::ExitCode::AuditUnavailable,
                        missing: e.to_string(),
                        next_step: "run it again once the host has resources to spare".to_owned(),
                    },
                })
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = (operation, target);
            match *self {}
        }
    }

    /// Whether the lock's server answers, as a dry run (`prodguard check`)
    /// asks: nothing is taken.
    pub(crate) fn reachable(&self) -> Result<(), LockRefusal> {
        #[cfg(feature = "postgres")]
        {
            self.locks
                .server()
                .connect()
                .map(drop)
                .map_err(|e| unavailable(&e))
        }
        #[cfg(not(feature = "postgres"))]
        match *self {}
    }
}

/// The refusal when the fleet lock's server does not answer.
#[cfg(feature = "postgres")]
fn unavailable(pg: &crate::pg::PgError) -> LockRefusal {
    LockRefusal {
        exit_code: prodguard_core::ExitCode::AuditUnavailable,
        missing: format!("the fleet lock cannot be taken: {pg}"),
        next_step: "make the server named in [fleet] lock reachable \
                    (`prodguard fleet init URL` checks it); nothing guarded \
                    runs until it answers"
            .to_owned(),
    }
}

/// Checks that `hold` is still held (its lease may have run out while a
/// person typed or a backup ran, if renewals could not reach the server).
pub(crate) fn still_held(hold: &mut LockHold) -> Result<(), LockRefusal> {
    match doubt(hold, false) {
        None => Ok(()),
        Some(doubt) => Err(LockRefusal {
            exit_code: prodguard_core::ExitCode::AuditUnavailable,
            missing: format!("{doubt}; another host may be running it now"),
            next_step: "check the connection to the server named in [fleet] lock, then run again"
                .to_owned(),
        }),
    }
}

/// Why the outcome must say that `hold` may not have held for the whole
/// run (its lease lost, or not confirmed), checked as the run ends; `None`
/// while the server confirms it.
pub(crate) fn lost_during_run(hold: &mut LockHold) -> Option<String> {
    doubt(hold, true).map(|doubt| format!("{doubt}; another host may have run it at the same time"))
}

/// What is wrong with `hold` now, before the operation starts or at the
/// end of its run (`ran`): `None` while the server confirms that its lease
/// is still this holder's.
fn doubt(hold: &mut LockHold, ran: bool) -> Option<String> {
    #[cfg(feature = "postgres")]
    {
        let lease = format!(
            "the fleet lock's lease on `{}` on `{}` (fence {})",
            hold.operation(),
            hold.target(),
            hold.fence()
        );
        let (lost, unconfirmed) = if ran {
            (
                "was lost during the run",
                "could not be confirmed as held through the run",
            )
        } else {
            (
                "was lost before the operation started",
                "could not be confirmed as still held before the operation started",
            )
        };
        match hold.still_held() {
            Ok(true) => None,
            Ok(false) => Some(format!(
                "{lease} {lost}: the server no longer shows it held"
            )),
            // A failed query says nothing of the lease itself.
            Err(e) => Some(format!("{lease} {unconfirmed} ({e})")),
        }
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = ran;
        match *hold {}
    }
}

/// The fencing token of `hold`, for the intent record.
pub(crate) fn fence(hold: &LockHold) -> u64 {
    #[cfg(feature = "postgres")]
    {
        hold.fence()
    }
    #[cfg(not(feature = "postgres"))]
    match *hold {}
}

/// Releases a fleet lock after the outcome is recorded.
pub(crate) fn release(hold: LockHold) {
    #[cfg(feature = "postgres")]
    if let Err(e) = hold.release() {
        // Its lease runs out on its own.
        tracing::warn!(error = %e, "the fleet lock could not be released cleanly");
    }
    #[cfg(not(feature = "postgres"))]
    match hold {}
}

#[cfg(test)]
mod tests {
    /// Run by `cargo test -p prodguard --lib` (scripts/test), which builds
    /// without the feature.
    #[cfg(not(feature = "postgres"))]
    #[test]
    fn without_postgres_a_policy_with_fleet_keys_is_refused() {
        for key in [
            "[audit]\nsink = \"postgresql://db/fleet\"",
            "[approval]\nledger = \"postgresql://db/fleet\"",
            "[fleet]\nlock = \"postgresql://db/fleet\"",
        ] {
            let text = format!("{key}\n[[rule]]\noperations = [\"*\"]\nrequire = [\"audit\"]\n");
            let policy = prodguard_core::Policy::parse_toml(&text, "p.toml").unwrap();
            let err = crate::Guard::builder()
                .policy(policy)
                .facts(prodguard_core::Facts::default())
                .audit_log(std::env::temp_dir().join("prodguard-unused.jsonl"))
                .build()
                .unwrap_err();
            assert_eq!(err.exit_code(), 125);
            let name = key.lines().next().unwrap();
            assert!(err.to_string().contains(name), "{err}");
            assert!(err.to_string().contains("`postgres` feature"), "{err}");
        }
    }
}
