//! Hermetic guards for the tests of code that uses a [`Guard`].
//!
//! [`guard()`] builds a real guard — the same policy, session and records —
//! that reads nothing of the process running the tests: no `PRODGUARD_*`
//! or agent variables, no `./prodguard.toml`, no marker files, no terminal,
//! no `PRODGUARD_APPROVAL`. The environment is what the test says (an
//! unknown one, which the default policy protects, when it says nothing),
//! the actor is a person called `test`, records go to memory, confirmations
//! come from a script (recorded as `scripted`), backups succeed in memory
//! and no target's stamp is read. So
//! `APP_ENV=production cargo test` tests the same thing as `cargo test`.
//!
//! A system policy (`/etc/prodguard`) still applies on a host that has one:
//! nothing a program does can step around it (and its log then records
//! the test's runs, `scripted` as they were). The real uid's account and
//! the hostname are read, as every guard reads them for its records.
//!
//! ```
//! use prodguard::testing::{self, yes};
//!
//! let guard = testing::guard().environment("production").answer(yes()).build()?;
//! guard.operation("db.migrate").target("orders").run_infallible(|| ())?;
//! let kinds: Vec<_> = guard.records().iter().map(|r| r.kind).collect();
//! assert_eq!(kinds.len(), 2, "the intent and the outcome");
//! assert_eq!(guard.challenges()[0].target.as_deref(), Some("orders"));
//!
//! // Nobody left to ask: refused, and the work never runs.
//! let refused = guard.operation("db.migrate").target("orders").run_infallible(|| unreachable!());
//! assert_eq!(refused.unwrap_err().exit_code().code(), 121);
//! # Ok::<(), prodguard::GuardError>(())
//! ```

use std::collections::{HashSet, VecDeque};
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use prodguard_core::audit::{AuditEvent, BackupEvidence, ConfirmEvidence};
use prodguard_core::session::{BackupRequest, Challenge, ConfirmationAnswer};
use prodguard_core::{Facts, Policy, Timestamp};
use sha2::{Digest, Sha256};

use crate::audit::{AppendReceipt, AuditError, AuditSink, SpendError};
use crate::backup::{BackupError, BackupProvider};
use crate::confirm::Confirmer;
use crate::stamp::{NoStamps, StampReader};
use crate::{Actor, ActorKind, Guard, GuardBuilder, GuardError};

/// A hermetic guard's builder; see the [module](self).
pub fn guard() -> TestGuardBuilder {
    TestGuardBuilder {
        inner: Guard::builder()
            .hermetic()
            .stamp_reader(NoStamps)
            .policy(Policy::builtin_default())
            .actor(Actor {
                user: "test".into(),
                kind: ActorKind::Human,
                account: None,
            }),
        facts: Facts::default(),
        answers: VecDeque::new(),
        backup: false,
    }
}

/// Confirmed, by the test's script: the records say `scripted`, never
/// that a person typed.
pub fn yes() -> ConfirmationAnswer {
    ConfirmationAnswer::Confirmed(ConfirmEvidence {
        method: "scripted".into(),
        approver: None,
        token_id: None,
        exp: None,
        max_rows: None,
    })
}

/// A person who typed something else.
pub fn no() -> ConfirmationAnswer {
    ConfirmationAnswer::Declined("the test answered no".into())
}

/// Configures a hermetic guard; see the [module](self).
#[must_use]
pub struct TestGuardBuilder {
    inner: GuardBuilder,
    facts: Facts,
    answers: VecDeque<ConfirmationAnswer>,
    /// Whether the test gave a backup provider.
    backup: bool,
}

impl TestGuardBuilder {
    /// Declares the environment (`production`, `staging`, `development`…).
    pub fn environment(mut self, name: impl Into<String>) -> Self {
        self.facts.explicit = Some(name.into());
        self
    }

    /// Detects from these facts (variables, hostname, marker files…)
    /// instead of none.
    pub fn facts(mut self, facts: Facts) -> Self {
        self.facts = facts;
        self
    }

    /// Uses this policy instead of the built-in default.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.inner = self.inner.policy(policy);
        self
    }

    /// Acts as this actor (an agent, a script…) instead of a person.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.inner = self.inner.actor(actor);
        self
    }

    /// The next confirmation is answered with `answer` (answers are used in
    /// order; with none left, nobody can be asked).
    pub fn answer(mut self, answer: ConfirmationAnswer) -> Self {
        self.answers.push_back(answer);
        self
    }

    /// Makes backups with this provider instead of in memory.
    pub fn backup_provider(mut self, provider: impl BackupProvider + 'static) -> Self {
        self.inner = self.inner.backup_provider(provider);
        self.backup = true;
        self
    }

    /// Reads target stamps with this reader (default: none is read, so no
    /// test opens a real database to look for one).
    pub fn stamp_reader(mut self, reader: impl StampReader + 'static) -> Self {
        self.inner = self.inner.stamp_reader(reader);
        self
    }

    /// Uses this approval token for operations that need a confirmation.
    pub fn approval(mut self, token: impl Into<String>) -> Self {
        self.inner = self.inner.approval(token);
        self
    }

    /// Builds the guard; fails as [`GuardBuilder::build`](crate::GuardBuilder::build) does.
    pub fn build(self) -> Result<TestGuard, GuardError> {
        let audit = MemoryAudit::default();
        let confirmer = ScriptedConfirmer {
            answers: Arc::new(Mutex::new(self.answers)),
            asked: Arc::default(),
        };
        let mut builder = self
            .inner
            .facts(self.facts)
            .audit_sink(audit.clone())
            .confirmer(confirmer.clone());
        if !self.backup {
            builder = builder.backup_provider(memory_backup);
        }
        Ok(TestGuard {
            guard: builder.build()?,
            audit,
            confirmer,
        })
    }
}

/// A hermetic guard: a [`Guard`] (it derefs to one) whose records and
/// questions a test can read.
pub struct TestGuard {
    guard: Guard,
    audit: MemoryAudit,
    confirmer: ScriptedConfirmer,
}

impl Deref for TestGuard {
    type Target = Guard;

    fn deref(&self) -> &Guard {
        &self.guard
    }
}

impl TestGuard {
    /// The guard itself, to hand to the code under test.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Every audit record so far, in order.
    pub fn records(&self) -> Vec<AuditEvent> {
        lock(&self.audit.state).records.clone()
    }

    /// Every confirmation asked so far, in order.
    pub fn challenges(&self) -> Vec<Challenge> {
        lock(&self.confirmer.asked).clone()
    }
}

/// Audit records kept in memory (it also spends approval tokens, once).
#[derive(Clone, Default)]
pub struct MemoryAudit {
    state: Arc<Mutex<MemoryState>>,
}

#[derive(Default)]
struct MemoryState {
    records: Vec<AuditEvent>,
    spent: HashSet<String>,
}

impl MemoryAudit {
    /// Every record so far, in order.
    pub fn records(&self) -> Vec<AuditEvent> {
        lock(&self.state).records.clone()
    }
}

impl AuditSink for MemoryAudit {
    fn append(&self, event: &AuditEvent) -> Result<AppendReceipt, AuditError> {
        let mut state = lock(&self.state);
        state.records.push(event.clone());
        Ok(receipt(state.records.len()))
    }

    fn append_spending(
        &self,
        event: &AuditEvent,
        token_id: &str,
        _issued: Timestamp,
    ) -> Result<AppendReceipt, SpendError> {
        let mut state = lock(&self.state);
        if !state.spent.insert(token_id.to_owned()) {
            return Err(SpendError::Spent {
                seq: 0,
                file: "memory".into(),
            });
        }
        state.records.push(event.clone());
        Ok(receipt(state.records.len()))
    }
}

fn receipt(count: usize) -> AppendReceipt {
    AppendReceipt {
        seq: count as u64,
        hash: String::new(),
    }
}

/// Answers confirmations from a script, and remembers what was asked.
#[derive(Clone)]
struct ScriptedConfirmer {
    answers: Arc<Mutex<VecDeque<ConfirmationAnswer>>>,
    asked: Arc<Mutex<Vec<Challenge>>>,
}

impl Confirmer for ScriptedConfirmer {
    fn confirm(&self, challenge: &Challenge) -> ConfirmationAnswer {
        lock(&self.asked).push(challenge.clone());
        lock(&self.answers).pop_front().unwrap_or_else(|| {
            ConfirmationAnswer::Unavailable("the test scripted no more answers".into())
        })
    }
}

/// A backup that exists only as evidence: its bytes are its own location,
/// `memory:TARGET`.
fn memory_backup(request: &BackupRequest) -> Result<BackupEvidence, BackupError> {
    let location = format!("memory:{}", request.target.as_deref().unwrap_or(""));
    let sha256 = Sha256::digest(location.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(BackupEvidence {
        bytes: location.len() as u64,
        location,
        sha256,
        created: crate::facts::now(),
        verified: true,
        verification: Some("prodguard::testing".into()),
    })
}

/// A test's lock: a panic in another test thread leaves the data usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
