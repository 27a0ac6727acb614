//! The guard: drives the core's session against the real world.

use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use prodguard_core::Timestamp;
use prodguard_core::approval::{Expected, Here};
use prodguard_core::audit::{Actor, BatchItem, EventKind, OutcomeRecord};
use prodguard_core::confirm::{self, Route, Unconfirmable};
use prodguard_core::promotion::Attempt;
use prodguard_core::session::{
    self, ApprovalUnusable, AuditFailure, ConfirmationAnswer, Decision, Denial, Operation, Session,
    SessionInput, Stamp, StampVerdict, Step, TrailUnavailable, Verdict,
};
use prodguard_core::{Detection, Facts, Policy, classify};

use crate::audit::{AuditSink, FileSink, SpendError, TeeSink};
use crate::backup::{BackupProvider, CommandBackup};
use crate::confirm::{Confirmer, TerminalConfirmer};
use crate::stamp::{StampError, StampReader};
use crate::{GuardError, RunError, config, facts, fleet};

#[cfg(feature = "tokio")]
mod run_async;
mod sql;
pub use sql::{GuardedSql, SqlRan};

/// Reads the stamps of the targets this build can open: SQLite files
/// (feature `sqlite`) and PostgreSQL databases (feature `postgres`).
struct DefaultStamps;

impl StampReader for DefaultStamps {
    fn read(&self, target: &str) -> Result<Option<Stamp>, StampError> {
        #[cfg(feature = "postgres")]
        if crate::pg::is_postgres_url(target) {
            return crate::pg::PgStamps.read(target);
        }
        #[cfg(feature = "sqlite")]
        return crate::stamp::SqliteStamps.read(target);
        #[cfg(not(feature = "sqlite"))]
        crate::stamp::NoStamps.read(target)
    }
}

/// Guards dangerous operations: detection, policy, confirmation, backup, audit.
///
/// Build one per process (it is cheap to share: `Guard` is `Send + Sync`)
/// and wrap each dangerous operation:
///
/// ```no_run
/// let guard = prodguard::Guard::from_env()?;
/// let rows = guard
///     .operation("db.delete.users")
///     .target("orders")
///     .run_infallible(|| 42 /* delete … */)?;
/// # Ok::<(), prodguard::GuardError>(())
/// ```
#[derive(Clone)]
pub struct Guard {
    policy: Arc<Policy>,
    detection: Detection,
    actor: Actor,
    confirmer: Arc<dyn Confirmer>,
    backup: Arc<dyn BackupProvider>,
    sink: Arc<dyn AuditSink>,
    /// The file the sink appends to, when it is the file sink.
    audit_path: Option<PathBuf>,
    stamps: Arc<dyn StampReader>,
    approval: Option<String>,
    /// `[fleet] lock`, when the policy names one.
    locks: Option<Arc<fleet::Locks>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("policy", &self.policy.source())
            .field("environment", &self.detection.environment)
            .field("tier", &self.detection.tier)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Guard`] in code. Anything not set comes from the process,
/// as in [`Guard::from_env`].
///
/// ```
/// use prodguard::Guard;
/// use prodguard_core::Policy;
///
/// let guard = Guard::builder()
///     .policy(Policy::builtin_default())
///     .environment("development")
///     .audit_log(std::env::temp_dir().join("prodguard-doc-audit.jsonl"))
///     .build()?;
/// assert!(!guard.detection().protected);
/// # Ok::<(), prodguard::GuardError>(())
/// ```
#[derive(Default)]
pub struct GuardBuilder {
    policy: Option<Policy>,
    environment: Option<String>,
    facts: Option<Facts>,
    actor: Option<Actor>,
    confirmer: Option<Arc<dyn Confirmer>>,
    backup: Option<Arc<dyn BackupProvider>>,
    sink: Option<Arc<dyn AuditSink>>,
    audit_log: Option<PathBuf>,
    approval: Option<String>,
    stamps: Option<Arc<dyn StampReader>>,
    /// Reads nothing of the process that was not given (`testing`).
    hermetic: bool,
}

impl GuardBuilder {
    /// Reads nothing of the process beyond what is given: no
    /// `PRODGUARD_APPROVAL` (the rest is given by `testing`).
    pub(crate) fn hermetic(mut self) -> Self {
        self.hermetic = true;
        self
    }

    /// Uses this policy instead of discovering one.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Declares the environment from the program (the strongest signal;
    /// a conflicting declaration elsewhere still wins if it is more sensitive).
    pub fn environment(mut self, name: impl Into<String>) -> Self {
        self.environment = Some(name.into());
        self
    }

    /// Uses these facts instead of reading the process (tests, hosts).
    pub fn facts(mut self, facts: Facts) -> Self {
        self.facts = Some(facts);
        self
    }

    /// Re-stamping a target: its current stamp counts as a declaration of
    /// the environment, so re-stamping a production database from a laptop
    /// is guarded like production (a conflicting declaration that is more
    /// sensitive still wins).
    pub fn restamping(self, current: Option<&Stamp>) -> Self {
        match current {
            Some(stamp) => self.environment(stamp.environment.clone()),
            None => self,
        }
    }

    /// Acts as this actor (its label and kind) instead of the detected one;
    /// its `account` is always the real uid's.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Asks for confirmation with this confirmer (default: the terminal).
    pub fn confirmer(mut self, confirmer: impl Confirmer + 'static) -> Self {
        self.confirmer = Some(Arc::new(confirmer));
        self
    }

    /// Makes backups with this provider (default: the rule's command).
    pub fn backup_provider(mut self, provider: impl BackupProvider + 'static) -> Self {
        self.backup = Some(Arc::new(provider));
        self
    }

    /// Sends audit records to this sink.
    pub fn audit_sink(mut self, sink: impl AuditSink + 'static) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Reads target stamps with this reader (default: SQLite files' `prodguard_stamp` table).
    pub fn stamp_reader(mut self, reader: impl StampReader + 'static) -> Self {
        self.stamps = Some(Arc::new(reader));
        self
    }

    /// Uses this approval token for guarded operations that need a
    /// confirmation (default: `PRODGUARD_APPROVAL`).
    pub fn approval(mut self, token: impl Into<String>) -> Self {
        self.approval = Some(token.into());
        self
    }

    /// Appends audit records to the JSON Lines file at `path`.
    pub fn audit_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.audit_log = Some(path.into());
        self
    }

    /// Builds the guard; fails when the policy is invalid, tries to loosen
    /// the system policy, or the system layer is not secure (125).
    ///
    /// A policy given with [`policy`](Self::policy) is layered over the
    /// system policy like any other (see [`prodguard_core::trust`]); under
    /// one, the system marker is read whatever facts are given, and the
    /// system's audit log is written whatever log or sink is given (they
    /// get a copy).
    pub fn build(self) -> Result<Guard, GuardError> {
        let policy = match self.policy {
            Some(policy) => config::with_system_layer(Some(policy))?,
            None => config::discover_policy()?,
        };
        let mut facts = match self.facts {
            Some(mut given) if policy.is_anchored() => {
                // Under a system policy the markers come from the disk,
                // never from the program, whether or not they exist.
                let markers = policy.environment().marker_paths();
                given.files.retain(|path, _| !markers.contains(path));
                given
                    .files
                    .extend(facts::read_markers(policy.environment()));
                given
            }
            Some(given) => given,
            None => facts::gather_facts(policy.environment()),
        };
        if self.environment.is_some() {
            facts.explicit = self.environment;
        }
        let detection = classify(&facts, policy.environment());
        let audit = audit_setup(&policy, self.audit_log, self.sink)?;
        // The identity is the real uid's account, whatever actor the program
        // names: a program cannot claim to be someone else to break glass
        // or to run on its own approver's token.
        let actor = Actor {
            account: Some(facts::real_account()),
            ..self.actor.unwrap_or_else(facts::current_actor)
        };
        let holder = format!(
            "{}@{} pid {}",
            actor.user,
            facts::hostname().unwrap_or_else(|| "unknown".into()),
            std::process::id()
        );
        let locks = fleet::Locks::from_policy(&policy, &holder)?.map(Arc::new);
        tracing::debug!(
            environment = %detection.environment,
            tier = %detection.tier,
            protected = detection.protected,
            decided_by = %detection.decided_by,
            policy = %policy.source(),
            "guard built"
        );
        Ok(Guard {
            policy: Arc::new(policy),
            detection,
            actor,
            confirmer: self
                .confirmer
                .unwrap_or_else(|| Arc::new(TerminalConfirmer::new())),
            backup: self
                .backup
                .unwrap_or_else(|| Arc::new(CommandBackup::new(audit.backup_dir))),
            sink: audit.sink,
            audit_path: audit.path,
            stamps: self.stamps.unwrap_or_else(|| Arc::new(DefaultStamps)),
            approval: self.approval.or_else(|| {
                std::env::var("PRODGUARD_APPROVAL")
                    .ok()
                    .filter(|t| !self.hermetic && !t.trim().is_empty())
            }),
            locks,
        })
    }
}

/// Where a guard's records go.
struct AuditSetup {
    /// The trail (and its copies).
    sink: Arc<dyn AuditSink>,
    /// The file the trail appends to, when it is a file (the ledger id names it).
    path: Option<PathBuf>,
    /// Where backups without a `path` go: beside that file.
    backup_dir: PathBuf,
}

/// The audit trail under `policy` for a program that names `log` or
/// `sink`: under a system policy the system's log stays the trail and what
/// the program names gets a copy; without one, it replaces the policy's.
fn audit_setup(
    policy: &Policy,
    log: Option<PathBuf>,
    sink: Option<Arc<dyn AuditSink>>,
) -> Result<AuditSetup, GuardError> {
    let logs = config::audit_logs(policy);
    let anchored = policy.is_anchored();
    let (primary, copies) = if anchored {
        let mut copies = logs.copies;
        copies.extend(log);
        (logs.primary, copies)
    } else {
        (log.or(logs.primary), logs.copies)
    };
    let copies = config::distinct_copies(primary.as_deref(), copies);
    let (program_sink, program_copy) = match sink {
        Some(sink) if anchored => (None, Some(sink)),
        sink => (sink, None),
    };
    let file =
        |path: PathBuf| -> Arc<dyn AuditSink> { Arc::new(FileSink::from_policy(path, policy)) };
    let path = if program_sink.is_none() {
        primary.clone()
    } else {
        None
    };
    let backup_dir = config::backup_dir(primary.as_deref());
    let mut trail = program_sink.or_else(|| primary.map(file));
    for copy in copies.into_iter().map(file).chain(program_copy) {
        trail = Some(match trail {
            Some(trail) => Arc::new(TeeSink::new(trail, copy)),
            None => copy,
        });
    }
    Ok(AuditSetup {
        // Fleet mode: the shared trail first, the local one a copy.
        sink: fleet::audit_sink(policy, trail)?,
        path,
        backup_dir,
    })
}

impl Guard {
    /// A guard configured from the process: the policy from
    /// `PRODGUARD_POLICY` or `./prodguard.toml` (else the built-in default),
    /// the environment from its variables and marker file, the audit log from
    /// `PRODGUARD_AUDIT_LOG` or the policy.
    pub fn from_env() -> Result<Guard, GuardError> {
        GuardBuilder::default().build()
    }

    /// Configure a guard in code.
    pub fn builder() -> GuardBuilder {
        GuardBuilder::default()
    }

    /// Where this guard believes it runs, with the evidence.
    pub fn detection(&self) -> &Detection {
        &self.detection
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Who acts through this guard.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Whether the policy lets `operation` on `target` run freely here
    /// (`Allow`), refuses it (`Deny`) or has requirements (`Require`): the
    /// policy's verdict alone, without allocating, for a program that asks
    /// before every statement. It reads no target, so it does not include
    /// the target's environment stamp (124): running the operation still
    /// goes through [`Guard::operation`].
    ///
    /// ```
    /// use prodguard::{Guard, Verdict};
    ///
    /// let guard = Guard::builder().environment("development").build()?;
    /// assert_eq!(guard.verdict("db.migrate", Some("orders")), Verdict::Allow);
    /// # Ok::<(), prodguard::GuardError>(())
    /// ```
    pub fn verdict(&self, operation: &str, target: Option<&str>) -> Verdict {
        session::verdict(&self.policy, self.detection.tier, operation, target)
    }

    /// The identity of the ledger this guard spends approval tokens in
    /// ([`prodguard_core::approval::ledger_id`]): the policy's `[approval]
    /// ledger` or `[audit] sink`, else `file://HOST/ABS/PATH` of the audit
    /// log it writes. A token is accepted only by runs that spend in the
    /// ledger it names (`prodguard check --json` shows this one).
    ///
    /// ```
    /// let guard = prodguard::Guard::builder()
    ///     .audit_log("/var/log/prodguard/audit.jsonl")
    ///     .build()?;
    /// assert!(guard.ledger_id().starts_with("file://"));
    /// assert!(guard.ledger_id().ends_with("/var/log/prodguard/audit.jsonl"));
    /// # Ok::<(), prodguard::GuardError>(())
    /// ```
    pub fn ledger_id(&self) -> String {
        // Absolute, so a relative PRODGUARD_AUDIT_LOG names one file
        // wherever the run starts.
        let path = self
            .audit_path
            .as_deref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_owned()));
        prodguard_core::approval::ledger_id(
            &self.policy,
            path.as_deref().and_then(Path::to_str),
            facts::hostname().as_deref(),
        )
    }

    /// The audit sink (to add notes to the same chain).
    pub fn audit_sink(&self) -> &dyn AuditSink {
        &*self.sink
    }

    /// The environment stamp `target` carries, read as a guarded operation would.
    pub fn stamp_of(&self, target: &str) -> Result<Option<Stamp>, StampError> {
        self.stamps.read(target)
    }

    /// What a guarded run of `operation` would do here, as a dry run: the
    /// policy's decision and the first refusal the run would give, checked
    /// in the order the run checks (the fleet lock's server answers, the
    /// audit log can take the intent, the target's stamp agrees, the actor
    /// may do it). Nobody is asked, no backup is taken, no lock is held and
    /// nothing is recorded. [`Check::exit_code`] is what `prodguard check`
    /// exits with.
    pub fn check(&self, operation: &Operation) -> Check {
        self.check_with(operation, None)
    }

    /// [`Guard::check`] for running the classified SQL `script` on
    /// `target`: the operation is the script's (its most dangerous
    /// statement's kind, with the script's fingerprint), and the decision is
    /// [`sql::decide`](prodguard_core::sql::decide)'s — every rule matching
    /// any statement's kind applies. The row bounds are in `sql::decide`'s
    /// answer; a dry run counts no rows, so a confirmation that
    /// `confirm_above_rows` could waive is reported as needed.
    ///
    /// ```
    /// use prodguard::{Guard, Policy, Facts};
    /// use prodguard::sql::{self, Dialect};
    ///
    /// let facts = Facts { explicit: Some("production".into()), ..Facts::default() };
    /// let dir = std::env::temp_dir().join(format!("prodguard-doc-{}", std::process::id()));
    /// let guard = Guard::builder()
    ///     .policy(Policy::builtin_default())
    ///     .facts(facts)
    ///     .audit_log(dir.join("audit.jsonl"))
    ///     .build()?;
    /// let script = sql::classify("BEGIN; DELETE FROM carts WHERE 1 = 1; COMMIT;", Dialect::Postgres);
    /// let check = guard.check_sql(&script, Some("shop"));
    /// assert_eq!(check.operation.kind, "db.delete.all");
    /// assert_eq!(check.operation.fingerprint.as_deref(), Some(script.fingerprint.as_str()));
    /// assert_eq!(check.exit_code, 121); // a confirmation is needed
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), prodguard::GuardError>(())
    /// ```
    pub fn check_sql(&self, script: &prodguard_core::sql::Script, target: Option<&str>) -> Check {
        let mut operation = Operation::new(script.operation.as_str());
        operation.target = target.map(str::to_owned);
        operation.fingerprint = Some(script.fingerprint.clone());
        self.check_with(&operation, Some(script))
    }

    fn check_with(
        &self,
        operation: &Operation,
        script: Option<&prodguard_core::sql::Script>,
    ) -> Check {
        // The stamp is read with a database URL's password; nothing
        // decided or shown carries it.
        let mut shown = operation.clone();
        if let Some(redacted) = operation.target.as_deref().and_then(crate::redact_password) {
            shown.target = Some(redacted);
        }
        let input = SessionInput {
            policy: &self.policy,
            detection: &self.detection,
            operation: shown.clone(),
            actor: self.actor.clone(),
            attempt_id: facts::random_id(),
            now: facts::now(),
        };
        let mut session = match script {
            Some(script) => Session::begin_sql(input, script),
            None => Session::begin(input),
        };
        let mut stamp = Ok(None);
        let refusal = loop {
            let answered = match session.next_step() {
                // A dry run takes nothing, so no fence.
                Step::AcquireLock { .. } => session.lock_acquired(match &self.locks {
                    Some(locks) => locks.reachable().map(|()| None),
                    None => Ok(None),
                }),
                Step::LockStillHeld => session.lock_checked(Ok(())),
                Step::CheckAudit => session.audit_checked(self.audit_check()),
                // Read-only, so a check tells whether a run would be staged.
                Step::CheckPromotion { trail } => {
                    match promotion_trail(&trail, self.policy.is_anchored()) {
                        Ok(attempts) => session.promotion_read(Ok(&attempts)),
                        Err(e) => session.promotion_read(Err(e)),
                    }
                }
                Step::CheckStamp { .. } => {
                    stamp = match &operation.target {
                        Some(target) => self.stamps.read(target),
                        None => Ok(None),
                    };
                    session.stamp_checked(stamp.clone())
                }
                // The refusal a run would record; a dry run records nothing.
                Step::Append(event) if event.kind == EventKind::Refusal => session.appended(Ok(())),
                Step::Deny(denial) => {
                    break Some(Denial {
                        recorded: false,
                        ..denial
                    });
                }
                // A run would now ask someone, take a backup or record its
                // intent: every check that needs none of them has passed.
                _ => break None,
            };
            if let Err(e) = answered {
                break Some(Denial {
                    exit_code: prodguard_core::ExitCode::PolicyError,
                    rule: None,
                    missing: e.to_string(),
                    next_step: "this is a bug in prodguard's check; report it".into(),
                    recorded: false,
                    note: None,
                    rows: None,
                });
            }
        };
        let decision = session.decision().clone();
        Check {
            exit_code: refusal
                .as_ref()
                .map_or(decision.exit_code, |d| d.exit_code.code()),
            stamp_verdict: session::stamp_verdict(&stamp, &self.detection.environment),
            operation: shown,
            decision,
            stamp,
            refusal,
        }
    }

    /// Whether the audit trail can take an intent now, for a reason known
    /// before anyone is asked anything: the one check a run makes before
    /// its first prompt ([`Step::CheckAudit`]) and `check` reports.
    fn audit_check(&self) -> Result<(), AuditFailure> {
        self.sink
            .check()
            .map_err(|e| AuditFailure::new(e.to_string()))
    }

    /// Starts describing a guarded operation of `kind` (a dotted name such as `db.migrate`).
    pub fn operation(&self, kind: impl Into<String>) -> GuardedOperation<'_> {
        GuardedOperation {
            guard: self,
            operation: Operation::new(kind),
            approval: None,
        }
    }

    /// Passes every guard for `operation`, or returns why not; see [`GuardedOperation::begin`].
    pub fn begin(&self, operation: Operation) -> Result<Permit, GuardError> {
        self.begin_with(operation, self.approval.as_deref())
    }

    /// Starts describing a guarded run of the SQL script `text` (its
    /// dialect is the connection's): see [`GuardedSql::run`].
    pub fn sql<'g>(&'g self, text: &'g str) -> GuardedSql<'g> {
        GuardedSql {
            guard: self,
            text,
            operation: Operation::new("db.unknown"),
            approval: None,
            dry_run: false,
        }
    }

    /// Checks `token` for `operation`: the answer to its confirmation
    /// challenge, with the time the token was issued (for spending it).
    fn check_approval(
        &self,
        token: &str,
        operation: &Operation,
    ) -> (ConfirmationAnswer, Option<Timestamp>) {
        let refuse = |why: String| {
            (
                ConfirmationAnswer::Declined(format!("approval token rejected: {why}")),
                None,
            )
        };
        let expected = match Expected::of(operation, &self.detection) {
            Ok(expected) => expected,
            Err(no_target) => return refuse(no_target.to_string()),
        };
        let ledger = self.ledger_id();
        let here = Here {
            requester: &self.actor,
            ledger: &ledger,
            now: facts::now(),
        };
        match prodguard_core::approval::verify(self.policy.approval(), token, &expected, &here) {
            Ok(claims) => (
                ConfirmationAnswer::Confirmed(claims.confirm_evidence()),
                Some(claims.iat),
            ),
            Err(e) => refuse(e.to_string()),
        }
    }

    fn begin_with(
        &self,
        operation: Operation,
        approval: Option<&str>,
    ) -> Result<Permit, GuardError> {
        self.drive::<Infallible>(operation, approval, None)
            .map_err(|e| match e {
                RunError::Refused(refusal) => refusal,
                RunError::Failed(never) => match never {},
            })
    }

    /// Drives a session to its permit, or its refusal. `sql` makes it a
    /// SQL run of the script (only its dry run, with `true`) on a database
    /// that answers the session's dry run and stamp; a failed dry run ends
    /// the attempt, recorded, as [`RunError::Failed`] (nothing was changed).
    fn drive<E: std::fmt::Display>(
        &self,
        mut operation: Operation,
        approval: Option<&str>,
        mut sql: Option<(&prodguard_core::sql::Script, bool, &mut dyn SqlDatabase<E>)>,
    ) -> Result<Permit, RunError<E>> {
        // A database URL's password never reaches records, prompts, tokens
        // or lock keys; only the stamp reader connects with it.
        let mut stamp_target = None;
        if let Some(redacted) = operation.target.as_deref().and_then(crate::redact_password) {
            stamp_target = operation.target.replace(redacted);
        }
        let mut approval_issued = None;
        let span = tracing::info_span!(
            "prodguard.guard",
            op = %operation.kind,
            target = operation.target.as_deref().unwrap_or(""),
            env = %self.detection.environment,
            tier = %self.detection.tier,
        );
        let entered = span.clone();
        let _enter = entered.enter();
        let input = SessionInput {
            policy: &self.policy,
            detection: &self.detection,
            operation: operation.clone(),
            actor: self.actor.clone(),
            attempt_id: facts::random_id(),
            now: facts::now(),
        };
        let mut session = match &sql {
            Some((script, false, _)) => Session::begin_sql(input, script),
            Some((script, true, _)) => Session::begin_sql_dry_run(input, script),
            None => Session::begin(input),
        };
        if let Some((script, ..)) = &sql {
            // The approval binds the script's operation and fingerprint.
            operation.kind = script.operation.as_str().to_owned();
            operation.fingerprint = Some(script.fingerprint.clone());
        }
        // The fleet lock, held from the session's first step until the
        // outcome is recorded (the session asks only where it applies).
        let mut lock = None;
        loop {
            let answered = match session.next_step() {
                Step::AcquireLock { operation, target } => match &self.locks {
                    Some(locks) => {
                        match locks.acquire(&operation, target.as_deref().unwrap_or("")) {
                            Ok(hold) => {
                                let fence = fleet::fence(&hold);
                                lock = Some(hold);
                                session.lock_acquired(Ok(Some(fence)))
                            }
                            Err(refusal) => session.lock_acquired(Err(refusal)),
                        }
                    }
                    // Fleet mode without `[fleet] lock`: nothing to take.
                    None => session.lock_acquired(Ok(None)),
                },
                // The lock may have gone with its connection while a
                // person typed or a backup ran: checked before the intent.
                Step::LockStillHeld => match lock.as_mut() {
                    Some(hold) => session.lock_checked(fleet::still_held(hold)),
                    None => session.lock_checked(Ok(())),
                },
                // A script's database says its own stamp, whatever the
                // target calls it.
                Step::CheckStamp { target } => match &mut sql {
                    Some((.., database)) => session.stamp_checked(database.stamp()),
                    None => {
                        let target = stamp_target.as_deref().unwrap_or(&target);
                        session.stamp_checked(self.stamps.read(target))
                    }
                },
                Step::CheckAudit => session.audit_checked(self.audit_check()),
                Step::CheckPromotion { trail } => {
                    match promotion_trail(&trail, self.policy.is_anchored()) {
                        Ok(attempts) => session.promotion_read(Ok(&attempts)),
                        Err(e) => session.promotion_read(Err(e)),
                    }
                }
                Step::DryRun => {
                    let counted = match &mut sql {
                        Some((.., database)) => database.dry_run(),
                        None => Ok(None),
                    };
                    match counted {
                        Ok(rows) => {
                            tracing::info!(?rows, "dry run rolled back");
                            session.dry_ran(rows)
                        }
                        Err(failed) => {
                            tracing::info!(error = %failed, "dry run failed");
                            if session.dry_run_failed(&failed.to_string()).is_ok() {
                                while let Step::Append(event) = session.next_step() {
                                    let appended = self.sink.append(&event).map(|_| ());
                                    let appended =
                                        appended.map_err(|e| AuditFailure::new(e.to_string()));
                                    if session.appended(appended).is_err() {
                                        break;
                                    }
                                }
                            }
                            return Err(RunError::Failed(failed));
                        }
                    }
                }
                Step::NeedConfirmation(challenge) => {
                    let route = confirm::route(
                        challenge.mode,
                        self.actor.kind,
                        self.policy.approval().four_eyes,
                        approval.is_some(),
                    );
                    let answer = match (route, approval) {
                        (Route::CheckToken, Some(token)) => {
                            let (answer, issued) = self.check_approval(token, &operation);
                            approval_issued = issued;
                            answer
                        }
                        (Route::CheckTokenThenAskPerson, Some(token)) => {
                            let (answer, issued) = self.check_approval(token, &operation);
                            approval_issued = issued;
                            confirm::both_answer(answer, || {
                                confirm::from_person(
                                    self.confirmer.confirm(&challenge),
                                    &self.actor,
                                )
                            })
                        }
                        (Route::Unavailable(Unconfirmable::FourEyesTypedOnly), _) => {
                            ConfirmationAnswer::Unavailable(
                                "four_eyes needs an approval token from someone else, but this \
                                 rule accepts only typed confirmation (confirm.mode = \"typed\")"
                                    .into(),
                            )
                        }
                        (Route::Unavailable(Unconfirmable::FourEyesNeedsToken), _) => {
                            ConfirmationAnswer::Unavailable(
                                "four_eyes needs an approval token from someone else \
                                 (`prodguard approve`)"
                                    .into(),
                            )
                        }
                        (Route::Unavailable(Unconfirmable::AgentNeedsToken), _) => {
                            ConfirmationAnswer::Unavailable(
                                "an AI agent cannot confirm by typing: a person must approve it \
                                 with `prodguard approve`"
                                    .into(),
                            )
                        }
                        (Route::Unavailable(Unconfirmable::AgentTypedOnly), _) => {
                            ConfirmationAnswer::Unavailable(
                                "an AI agent cannot confirm by typing, and this rule accepts only \
                                 typed confirmation (confirm.mode = \"typed\"): a person must run \
                                 it from a terminal"
                                    .into(),
                            )
                        }
                        (Route::AskPerson, _) => {
                            confirm::from_person(self.confirmer.confirm(&challenge), &self.actor)
                        }
                        // Unconfirmable::TokenRequired (and no way this build knows of).
                        _ => ConfirmationAnswer::Unavailable(
                            "this rule accepts only an approval token, and none was given".into(),
                        ),
                    };
                    tracing::info!(answer = ?answer, "confirmation answered");
                    session.answer_confirmation(answer)
                }
                Step::NeedBackup(request) => {
                    let result = self.backup.backup(&request);
                    match &result {
                        Ok(evidence) => tracing::info!(
                            location = %evidence.location,
                            sha256 = %evidence.sha256,
                            bytes = evidence.bytes,
                            "backup taken"
                        ),
                        Err(e) => tracing::warn!(error = %e, "backup failed"),
                    }
                    session.answer_backup(result)
                }
                Step::Append(event) => {
                    let spending = event
                        .confirm
                        .as_ref()
                        .filter(|_| event.kind == EventKind::Intent)
                        .and_then(|c| c.token_id.clone());
                    match (spending, approval_issued) {
                        (Some(token_id), Some(issued)) => {
                            match self.sink.append_spending(&event, &token_id, issued) {
                                Ok(_) => session.appended(Ok(())),
                                Err(SpendError::Audit(e)) => {
                                    session.spending_unavailable(AuditFailure::new(e.to_string()))
                                }
                                Err(e) => {
                                    session.approval_refused(ApprovalUnusable::new(e.to_string()))
                                }
                            }
                        }
                        _ => {
                            let result = self
                                .sink
                                .append(&event)
                                .map(|_| ())
                                .map_err(|e| AuditFailure::new(e.to_string()));
                            session.appended(result)
                        }
                    }
                }
                Step::Proceed => {
                    if let Some(problem) = session.audit_failure() {
                        tracing::warn!(error = %problem, "audit not required here and unavailable; proceeding");
                    }
                    tracing::info!(decision = ?session.decision().result, "guarded operation proceeds");
                    return Ok(Permit {
                        guard: self.clone(),
                        session,
                        span,
                        started: Instant::now(),
                        finished: false,
                        settled: None,
                        lock,
                    });
                }
                Step::Deny(denial) => {
                    tracing::info!(exit_code = denial.exit_code.code(), reason = %denial.missing, "guarded operation refused");
                    return Err(GuardError::from_denial(denial).into());
                }
                Step::Done => {
                    // Unreachable for a well-driven session; refuse rather than run.
                    return Err(GuardError::Policy(
                        "the guard session ended before the operation was admitted".into(),
                    )
                    .into());
                }
                // A step this runtime does not know (a newer core): refuse rather than run.
                other => {
                    return Err(GuardError::Policy(format!(
                        "the guard session asked for a step this runtime cannot perform: {other:?}"
                    ))
                    .into());
                }
            };
            // A driver bug: refuse rather than run.
            if let Err(e) = answered {
                tracing::error!(error = %e, "the guard session was driven out of order");
                return Err(GuardError::Policy(e.to_string()).into());
            }
        }
    }
}

/// The attempts of the trail a `staged` requirement reads, once it has
/// verified as `prodguard audit verify` verifies it. Under a system policy
/// a file trail must be root's alone, as the system layer is: whoever can
/// write it can append a staging success that verifies.
fn promotion_trail(trail: &str, anchored: bool) -> Result<Vec<Attempt>, TrailUnavailable> {
    let source = crate::trail::TrailSource::parse(trail);
    if let (crate::trail::TrailSource::File(path), true) = (&source, anchored) {
        let what = "the staging trail of [promotion] staging_log (whoever can write it can forge a staging success)";
        let rotated = crate::audit::rotated_files(path).map_err(|e| {
            TrailUnavailable::new(format!(
                "cannot list the rotated files of {}: {e}",
                path.display()
            ))
        })?;
        for file in rotated.iter().chain(std::iter::once(path)) {
            crate::system::trail_only_writable_by(file, 0, what).map_err(TrailUnavailable::new)?;
        }
    }
    match crate::trail::read_verified(&source, crate::audit::VerifyOptions::default()) {
        Ok(verified) => {
            tracing::info!(trail = %verified.name, attempts = verified.attempts.len(), "promotion trail verified");
            Ok(verified.attempts)
        }
        Err(e) => {
            tracing::warn!(error = %e, "promotion trail unavailable");
            Err(TrailUnavailable::new(e.to_string()))
        }
    }
}

/// What a SQL run's session asks of its database (see `Guard::drive`).
trait SqlDatabase<E> {
    /// Runs the script in a transaction that is rolled back and counts
    /// each statement's rows (`None`: they cannot be counted).
    fn dry_run(&mut self) -> Result<Option<Vec<u64>>, E>;
    /// The database's environment stamp.
    fn stamp(&mut self) -> Result<Option<Stamp>, StampError>;
}

/// What [`Guard::check`] found: the policy's decision, the target's stamp
/// and the first refusal a run would give.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Check {
    /// The operation as decided (a database URL's password left out).
    pub operation: Operation,
    /// What the policy requires.
    pub decision: Decision,
    /// The target's stamp as read (`Ok(None)` when none, or not read: a
    /// run refused before it reads the stamp).
    pub stamp: Result<Option<Stamp>, StampError>,
    /// What the stamp means here.
    pub stamp_verdict: StampVerdict,
    /// The first refusal a run would give before anyone is asked anything
    /// (the decision's own, the fleet lock's server, the audit log, the
    /// stamp, the actor), with what to do; `None` when it gets that far.
    pub refusal: Option<Denial>,
    /// What a run without a terminal and without evidence would exit
    /// with: the refusal's code, else the decision's.
    pub exit_code: i32,
}

/// A guarded operation being described; see [`Guard::operation`].
#[derive(Debug)]
#[must_use = "a guarded operation does nothing until `run` or `begin` is called"]
pub struct GuardedOperation<'g> {
    guard: &'g Guard,
    operation: Operation,
    approval: Option<String>,
}

impl<'g> GuardedOperation<'g> {
    /// The operation's target (a database, a table, a bucket…): confirmations ask for it by name.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.operation.target = Some(target.into());
        self
    }

    /// Binds a fingerprint of what is being done (e.g. a migration's
    /// checksum): an approval token must name the same one.
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.operation.fingerprint = Some(fingerprint.into());
        self
    }

    /// Runs a batch of steps as one operation — the pending migrations of a
    /// migration tool, in order, each with its checksum: one decision, one
    /// confirmation listing every step, one backup, one intent recording
    /// each step. The operation's fingerprint becomes the batch's, so an
    /// approval binds exactly these steps in this order.
    ///
    /// ```
    /// use prodguard::BatchItem;
    ///
    /// let guard = prodguard::testing::guard().environment("development").build()?;
    /// let pending = [BatchItem::new("20260101_users", "9f2c…"), BatchItem::new("20260102_carts", "41aa…")];
    /// guard.operation("db.migrate").target("app.db").batch(pending).run_infallible(|| ())?;
    /// let intent = &guard.records()[0];
    /// assert_eq!(intent.op.as_ref().unwrap().batch.len(), 2);
    /// # Ok::<(), prodguard::GuardError>(())
    /// ```
    pub fn batch(mut self, steps: impl IntoIterator<Item = BatchItem>) -> Self {
        self.operation = self.operation.with_batch(steps.into_iter().collect());
        self
    }

    /// Its way back: a command that undoes it (a down-migration, a
    /// restore), recorded in the intent; `prodguard rollback ATTEMPT_ID`
    /// runs it, guarded as `<operation>.rollback`. A rule that requires
    /// `rollback` refuses (125) an operation without one, unless the rule
    /// also takes a backup, whose restore is then the plan.
    ///
    /// ```
    /// let guard = prodguard::testing::guard().environment("development").build()?;
    /// guard.operation("db.migrate").target("app.db").rollback("./migrate down 0042").run_infallible(|| ())?;
    /// let intent = &guard.records()[0];
    /// assert_eq!(intent.rollback.as_ref().unwrap().command.as_deref(), Some("./migrate down 0042"));
    /// # Ok::<(), prodguard::GuardError>(())
    /// ```
    pub fn rollback(mut self, command: impl Into<String>) -> Self {
        self.operation.rollback = Some(command.into());
        self
    }

    /// Break-glass: in an emergency, skip the confirmation and backup for
    /// this one run, where every matching rule says `break_glass = true`
    /// and `[approval] break_glass_users` lists the actor's OS account (never
    /// for an AI agent). The reason is mandatory and goes into the audit
    /// log, which must be writable.
    pub fn break_glass(mut self, reason: impl Into<String>) -> Self {
        self.operation.break_glass = Some(reason.into());
        self
    }

    /// Confirms with this approval token (instead of the guard's, or
    /// `PRODGUARD_APPROVAL`).
    pub fn approval(mut self, token: impl Into<String>) -> Self {
        self.approval = Some(token.into());
        self
    }

    /// Passes every guard, or returns why not; the operation is then yours
    /// to run, and [`Permit::finish`] records its outcome.
    pub fn begin(self) -> Result<Permit, GuardError> {
        let approval = self.approval.as_deref().or(self.guard.approval.as_deref());
        self.guard.begin_with(self.operation, approval)
    }

    /// Runs `f` once every guard passes, and records how it ended: `ok`,
    /// `failed` with the error's message, or `panicked` (the panic is then
    /// resumed).
    ///
    /// A refusal comes back as [`RunError::Refused`] (nothing ran), the
    /// operation's own error as [`RunError::Failed`]; both convert with `?`
    /// into `Box<dyn Error>` or `anyhow::Error`. Work that cannot fail has
    /// [`run_infallible`](Self::run_infallible).
    ///
    /// ```no_run
    /// # fn apply_migration() -> Result<(), std::io::Error> { Ok(()) }
    /// let guard = prodguard::Guard::from_env()?;
    /// guard
    ///     .operation("db.migrate")
    ///     .target("orders.db")
    ///     .run(|| apply_migration())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run<T, E: std::fmt::Display>(
        self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, RunError<E>> {
        let permit = self.begin()?;
        let _enter = permit.span.clone().entered();
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(result) => {
                permit.finish(result.as_ref().map(|_| ()).map_err(ToString::to_string));
                result.map_err(RunError::Failed)
            }
            Err(panic) => {
                permit.finish_with("panicked", Some("the operation panicked".into()), None);
                resume_unwind(panic)
            }
        }
    }

    /// Runs `f`, which cannot fail, once every guard passes, and records the
    /// outcome `ok` (or `panicked`). Work that returns a `Result` goes
    /// through [`run`](Self::run), so that its errors are recorded as
    /// `failed`.
    pub fn run_infallible<T>(self, f: impl FnOnce() -> T) -> Result<T, GuardError> {
        self.run(|| Ok::<T, Infallible>(f())).map_err(|e| match e {
            RunError::Refused(refusal) => refusal,
            RunError::Failed(never) => match never {},
        })
    }
}

/// Permission to run one guarded operation: its intent is already durable.
/// Call [`finish`](Permit::finish) when it is done; a permit dropped
/// unfinished records the outcome `abandoned`.
///
/// A permit owns what it needs (a clone of its guard, which is a few
/// shared pointers), so it can move to another thread or task and outlive
/// the call that made it.
#[must_use = "record the outcome with `finish`"]
pub struct Permit {
    guard: Guard,
    session: Session,
    span: tracing::Span,
    started: Instant,
    finished: bool,
    /// How the operation ended, once known but not yet recorded (the async
    /// API records it on another thread): a permit dropped then records
    /// this, not `abandoned`.
    settled: Option<(&'static str, Option<String>)>,
    /// The fleet lock, checked and then released around recording the
    /// outcome.
    lock: Option<fleet::LockHold>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("decision", self.session.decision())
            .finish_non_exhaustive()
    }
}

impl Permit {
    /// The policy's decision that admitted this operation.
    pub fn decision(&self) -> &Decision {
        self.session.decision()
    }

    /// Records the outcome: `Ok(())` or the error's message.
    pub fn finish(self, result: Result<(), String>) {
        match result {
            Ok(()) => self.finish_with("ok", None, None),
            Err(e) => self.finish_with("failed", Some(e), None),
        }
    }

    /// Records that the operation panicked (the caller then resumes the panic).
    pub fn finish_panicked(self) {
        self.finish_with("panicked", Some("the operation panicked".into()), None);
    }

    /// Records the outcome of a wrapped command that exited with `code`
    /// (`128 + signal` when killed), with an error message if it could not run.
    pub fn finish_exit_code(self, code: i32, error: Option<String>) {
        let status = if code == 0 { "ok" } else { "failed" };
        self.finish_with(status, error, Some(code));
    }

    fn finish_with(mut self, status: &str, error: Option<String>, exit_code: Option<i32>) {
        self.record(status, error, exit_code, None);
    }

    /// Records the outcome; `false` when it did not reach the audit trail.
    fn record(
        &mut self,
        status: &str,
        error: Option<String>,
        exit_code: Option<i32>,
        rows: Option<Vec<u64>>,
    ) -> bool {
        if self.finished {
            return false;
        }
        self.finished = true;
        let _enter = self.span.enter();
        let duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        // A lease lost mid-run (this host paused or cut off, another host
        // then ran it too) must show in the outcome, not only in a log.
        let lock_lost = self.lock.as_mut().and_then(fleet::lost_during_run);
        if let Some(lost) = &lock_lost {
            tracing::error!(lock_lost = %lost, "the fleet lock did not hold for the whole run");
        }
        let finished = self.session.finish(OutcomeRecord {
            status: status.to_owned(),
            duration_ms,
            error,
            exit_code,
            rows,
            lock_lost,
        });
        let mut recorded = finished.is_ok();
        if let Err(e) = finished {
            tracing::error!(error = %e, "the outcome could not be recorded");
        }
        while let Step::Append(event) = self.session.next_step() {
            let result = self.guard.sink.append(&event).map(|_| ());
            if let Err(e) = &result {
                // The operation already ran; the writer is poisoned, so the
                // next guarded operation will refuse.
                tracing::error!(error = %e, "the outcome record could not be written");
                recorded = false;
            }
            let result = result.map_err(|e| AuditFailure::new(e.to_string()));
            if let Err(e) = self.session.appended(result) {
                tracing::error!(error = %e, "the outcome record was not taken");
                recorded = false;
                break;
            }
        }
        if let Some(lock) = self.lock.take() {
            fleet::release(lock);
        }
        tracing::info!(status, "guarded operation finished");
        recorded
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (status, error) = self.settled.take().unwrap_or((
            "abandoned",
            Some("the permit was dropped without an outcome".into()),
        ));
        self.record(status, error, None, None);
    }
}
