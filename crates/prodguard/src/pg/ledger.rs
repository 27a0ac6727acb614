//! The approval ledger in PostgreSQL: spent approval nonces, shared by every
//! host, for an audit log kept elsewhere.

use std::path::PathBuf;

use postgres::types::Type;
use prodguard_core::Timestamp;
use prodguard_core::audit::AuditEvent;

use super::audit::pg_to_audit;
use super::{PgError, PgServer};
use crate::audit::{AppendReceipt, AuditError, AuditSink, SpendError};
use crate::facts;

/// Spent approval tokens in the table `prodguard_spent` (`[approval] ledger`):
/// its primary key is the token's nonce, so of any number of hosts spending
/// one token at once exactly one succeeds.
///
/// Use it when the audit log is not in PostgreSQL (wrap that sink in a
/// [`LedgerSink`]); with a [`super::PgAuditSink`] the sink spends the token
/// itself, in the same transaction as the intent record.
///
/// Each call opens its own connection (spending is rare); a server that
/// cannot be reached is an error, never a pass.
#[derive(Debug, Clone)]
pub struct PgLedger {
    server: PgServer,
    host: String,
}

impl PgLedger {
    /// A ledger on the server at `url`.
    pub fn new(url: &str) -> Result<Self, PgError> {
        PgServer::parse(url).map(Self::for_server)
    }

    /// A ledger on `server`.
    pub fn for_server(server: PgServer) -> Self {
        PgLedger {
            server,
            host: facts::hostname().unwrap_or_else(|| "unknown".into()),
        }
    }

    /// The server, as messages name it.
    pub fn server(&self) -> &PgServer {
        &self.server
    }

    /// Marks `token_id` (issued at `issued`) spent, or says who spent it.
    pub fn spend(&self, token_id: &str, issued: Timestamp) -> Result<(), SpendError> {
        let audit =
            |e: PgError| SpendError::Audit(pg_to_audit(&self.server, e, "[approval] ledger"));
        let query = |op, e| audit(self.server.query_error(op, e));
        let mut client = self.server.connect_initialized().map_err(audit)?;
        let issued_secs = issued.unix_micros() as f64 / 1e6;
        let inserted = client
            .execute_typed(
                "INSERT INTO prodguard_spent (token_id, host, issued) \
                 VALUES ($1, $2, to_timestamp($3)) ON CONFLICT (token_id) DO NOTHING",
                &[
                    (&token_id, Type::TEXT),
                    (&self.host, Type::TEXT),
                    (&issued_secs, Type::FLOAT8),
                ],
            )
            .map_err(|e| query("record the approval as spent", e))?;
        if inserted == 1 {
            return Ok(());
        }
        let row = client
            .query_typed_one(
                "SELECT seq, coalesce(host, ''), \
                 to_char(spent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                 FROM prodguard_spent WHERE token_id = $1",
                &[(&token_id, Type::TEXT)],
            )
            .map_err(|e| query("read the spent approval", e))?;
        let read = |e| query("read the spent approval", e);
        let seq: Option<i64> = row.try_get(0).map_err(read)?;
        let host: String = row.try_get(1).map_err(read)?;
        let at: String = row.try_get(2).map_err(read)?;
        Err(SpendError::Spent {
            seq: seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            file: PathBuf::from(format!(
                "{} (spent by host {host} at {at})",
                self.server.name()
            )),
        })
    }

    /// Whether `token_id` is spent.
    pub fn is_spent(&self, token_id: &str) -> Result<bool, PgError> {
        let mut client = self.server.connect_initialized()?;
        client
            .query_typed_one(
                "SELECT EXISTS (SELECT 1 FROM prodguard_spent WHERE token_id = $1)",
                &[(&token_id, Type::TEXT)],
            )
            .and_then(|row| row.try_get(0))
            .map_err(|e| self.server.query_error("look up the approval", e))
    }

    /// Checks that the ledger can be used now (the server answers and the
    /// table exists).
    pub fn check(&self) -> Result<(), AuditError> {
        self.server
            .connect_initialized()
            .map(drop)
            .map_err(|e| pg_to_audit(&self.server, e, "[approval] ledger"))
    }
}

/// An audit sink whose approvals are spent in a [`PgLedger`]: the ledger
/// first (a token spent anywhere refuses here), then the intent record in
/// `inner`. If the append fails after the spend, the token stays spent and
/// the operation does not run: fail closed, the approver issues a new one.
#[derive(Debug)]
pub struct LedgerSink<S> {
    ledger: PgLedger,
    inner: S,
}

impl<S: AuditSink> LedgerSink<S> {
    /// `inner`, with approvals spent in `ledger`.
    pub fn new(ledger: PgLedger, inner: S) -> Self {
        LedgerSink { ledger, inner }
    }

    /// The sink records go to.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The ledger approvals are spent in.
    pub fn ledger(&self) -> &PgLedger {
        &self.ledger
    }
}

impl<S: AuditSink> AuditSink for LedgerSink<S> {
    fn append(&self, event: &AuditEvent) -> Result<AppendReceipt, AuditError> {
        self.inner.append(event)
    }

    fn check(&self) -> Result<(), AuditError> {
        self.inner.check()?;
        self.ledger.check()
    }

    fn append_spending(
        &self,
        event: &AuditEvent,
        token_id: &str,
        issued: Timestamp,
    ) -> Result<AppendReceipt, SpendError> {
        self.ledger.spend(token_id, issued)?;
        self.inner.append(event).map_err(|e| {
            SpendError::Audit(match e {
                AuditError::Io { path, op, source } => AuditError::Io {
                    path,
                    op,
                    source: std::io::Error::other(format!(
                        "{source} (the approval was spent in {} and cannot be used again)",
                        self.ledger.server.name()
                    )),
                },
                other => other,
            })
        })
    }
}
