//! Writing one trail and a copy of it.

use std::sync::Arc;

use prodguard_core::Timestamp;
use prodguard_core::audit::{AuditEvent, EventKind};

use super::{AppendReceipt, AuditError, AuditSink, SpendError};

/// Every record to `primary` (the trail that spends approvals: the system
/// log, or fleet mode's shared trail) and a copy to `copy` (a log asked for
/// below the system policy, or the local log beside a shared trail). Either failing fails
/// the append: an audited operation runs only once both hold its intent.
/// Outcomes, refusals and notes are written to both whatever happens to
/// the other, so a server outage loses none of them; an intent is copied
/// only once the trail holds it (the copy never claims an attempt the
/// trail lacks; the refusal that follows is written to both).
pub(crate) struct TeeSink<P> {
    primary: P,
    copy: Arc<dyn AuditSink>,
}

impl<P> TeeSink<P> {
    pub(crate) fn new(primary: P, copy: Arc<dyn AuditSink>) -> Self {
        TeeSink { primary, copy }
    }
}

impl<P: AuditSink> AuditSink for TeeSink<P> {
    fn append(&self, event: &AuditEvent) -> Result<AppendReceipt, AuditError> {
        let primary = self.primary.append(event);
        if primary.is_err() && event.kind == EventKind::Intent {
            return primary;
        }
        let copy = self.copy.append(event);
        let receipt = primary?;
        match copy {
            // An operation runs only once the copy holds its intent too.
            Err(e) if event.kind == EventKind::Intent => Err(e),
            // Anything else is recorded once the trail holds it: saying it
            // was not would be false.
            Err(e) => {
                tracing::error!(error = %e, kind = ?event.kind, "the audit copy could not be written; the trail holds the record");
                Ok(receipt)
            }
            Ok(_) => Ok(receipt),
        }
    }

    fn check(&self) -> Result<(), AuditError> {
        self.primary.check()?;
        self.copy.check()
    }

    fn append_spending(
        &self,
        event: &AuditEvent,
        token_id: &str,
        issued: Timestamp,
    ) -> Result<AppendReceipt, SpendError> {
        let receipt = self.primary.append_spending(event, token_id, issued)?;
        self.copy.append(event)?;
        Ok(receipt)
    }
}
