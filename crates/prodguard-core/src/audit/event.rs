//! What a record says: the event a guard or a script writes, and the
//! envelope the writer adds around it.

use serde::{Deserialize, Serialize};

use super::SealInfo;
use crate::policy::{ActorKind, Requirement};
use crate::{Tier, Timestamp};

/// What kind of record this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EventKind {
    /// Before a guarded operation runs: the decision and its evidence.
    Intent,
    /// After it ran: status and duration.
    Outcome,
    /// A guarded operation that was refused.
    Refusal,
    /// A free-form event added by a script (`prodguard audit record`).
    Note,
    /// A repair cut a torn tail.
    Recovery,
    /// A MAC over the chain's head with the current epoch's seal key.
    Seal,
    /// Rotated files were dropped (`prodguard audit prune`): the anchors
    /// from which the kept chain is verified.
    Prune,
}

/// Who acted.
///
/// `account` is the identity: the OS account of the process's real uid, as
/// the password database names it (the runtime reads it; a host states it).
/// `user` is a display label (`PRODGUARD_ACTOR`, `SUDO_USER`, `USER`) that
/// anyone who sets the environment chooses, recorded beside the account and
/// never used to decide who may approve or break glass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Who the actor says it is (a display label).
    pub user: String,
    /// Human, CI, agent or service.
    pub kind: ActorKind,
    /// The OS account of the real uid; `None` where nobody vouched for one
    /// (records written before 0.2, a host that states no uid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// The operation and where it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// Dotted operation name, e.g. `db.migrate`.
    pub kind: String,
    /// The target's name, e.g. a database.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
    /// The environment's own name.
    pub env: String,
    /// Its tier.
    pub tier: Tier,
    /// The signal that decided the environment.
    pub decided_by: String,
    /// What the caller says identifies the operation's content (e.g. a
    /// migration checksum); approvals bind it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fingerprint: Option<String>,
    /// The steps of a batch run as one (pending migrations, in order),
    /// each with its own fingerprint; the operation's is the batch's.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub batch: Vec<BatchItem>,
}

/// One step of a batch: a migration's name and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BatchItem {
    /// Its name, e.g. `20260101120000_add_carts`.
    pub name: String,
    /// What identifies its content, e.g. the migration's checksum.
    pub fingerprint: String,
}

impl BatchItem {
    /// A step called `name` whose content `fingerprint` identifies.
    pub fn new(name: impl Into<String>, fingerprint: impl Into<String>) -> Self {
        BatchItem {
            name: name.into(),
            fingerprint: fingerprint.into(),
        }
    }
}

/// The fingerprint of a batch: `batch:` and the SHA-256 of its steps'
/// names and fingerprints, in order. An approval for one batch does not
/// approve another, a reordered one or one with a step more or less.
///
/// ```
/// use prodguard_core::audit::{batch_fingerprint, BatchItem};
///
/// let one = [BatchItem::new("1_users", "ab12"), BatchItem::new("2_carts", "cd34")];
/// let fp = batch_fingerprint(&one);
/// assert!(fp.starts_with("batch:") && fp.len() == 6 + 64);
/// let reordered = [one[1].clone(), one[0].clone()];
/// assert_ne!(batch_fingerprint(&reordered), fp);
/// ```
pub fn batch_fingerprint(items: &[BatchItem]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for item in items {
        for text in [&item.name, &item.fingerprint] {
            hash.update((text.len() as u64).to_le_bytes());
            hash.update(text.as_bytes());
        }
    }
    format!("batch:{}", super::hex(&hash.finalize()))
}

/// The guard's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// `allow`, `deny` or `require` (as decided by the policy), or the
    /// final `refused`/`proceed` for refusal and intent records.
    pub result: String,
    /// The rule that decided, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rule: Option<String>,
    /// What was required.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub requirements: Vec<Requirement>,
    /// Why, for people.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub reasons: Vec<String>,
    /// The exit code of a refusal.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<i32>,
    /// The policy in force: each source's path and the SHA-256 of its
    /// text, the system policy first (intent and refusal records).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub policy: Vec<crate::trust::PolicySource>,
}

/// Evidence that a backup exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupEvidence {
    /// Where the backup is (a path or URL).
    pub location: String,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it was made.
    pub created: Timestamp,
    /// Whether a verification step passed (`false` when none ran).
    pub verified: bool,
    /// What verified it, e.g. the verify command.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verification: Option<String>,
}

impl BackupEvidence {
    /// What makes this evidence unusable whatever the rule says — no
    /// location, a SHA-256 that is not 64 hex digits, no creation time —
    /// or `None` when it is well-formed. Every face's backups meet this
    /// one check (the session makes it before anything else).
    ///
    /// ```
    /// use prodguard_core::Timestamp;
    /// use prodguard_core::audit::BackupEvidence;
    ///
    /// let mut evidence = BackupEvidence {
    ///     location: "/backups/orders.db".into(),
    ///     sha256: "ab".repeat(32),
    ///     bytes: 4096,
    ///     created: Timestamp::from_unix_micros(1_700_000_000_000_000),
    ///     verified: true,
    ///     verification: None,
    /// };
    /// assert_eq!(evidence.malformed(), None);
    /// evidence.sha256 = "not-a-hash".into();
    /// assert!(evidence.malformed().unwrap().contains("SHA-256"));
    /// ```
    pub fn malformed(&self) -> Option<String> {
        if self.location.trim().is_empty() {
            Some("the backup evidence names no location".into())
        } else if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            Some(format!(
                "the backup at {} has no SHA-256 (64 hex digits)",
                self.location
            ))
        } else if self.created.unix_micros() <= 0 {
            Some(format!(
                "the backup at {} has no creation time",
                self.location
            ))
        } else {
            None
        }
    }
}

/// How the operation was confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmEvidence {
    /// `typed`, `approval` or `break-glass`.
    pub method: String,
    /// Who confirmed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub approver: Option<String>,
    /// The approval token's id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token_id: Option<String>,
    /// When the approval expires.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exp: Option<Timestamp>,
    /// The most rows any one statement of a SQL script may affect under
    /// this confirmation: the approval's `--max-rows`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_rows: Option<u64>,
}

/// How the operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// `ok`, `failed`, `panicked`, `abandoned`; for SQL scripts also
    /// `rolled_back` (a bound did not hold) and `dry_run`.
    pub status: String,
    /// How long it ran.
    pub duration_ms: u64,
    /// The error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// A wrapped command's exit code (or 128 + signal), or the guard's
    /// code when a SQL script was rolled back (`rolled_back`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<i32>,
    /// A SQL script's rows affected, by statement index (0 for statements
    /// not run); rolled back unless the status is `ok`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rows: Option<Vec<u64>>,
    /// Why the `[fleet] lock` lease the attempt ran under was not confirmed
    /// as still held when it ended (lost, or the server could not say):
    /// another host may have run the same operation on the same target
    /// meanwhile. Absent when the lease held, or no lock was taken.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lock_lost: Option<String>,
}

/// What a guarded SQL run's intent says of its script: how it was
/// classified (the fingerprint is the operation's), and the rows its dry
/// run counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqlRecord {
    /// The dialect it was read in.
    pub dialect: String,
    /// How many statements it has.
    pub statements: usize,
    /// Its destructive statements, in order, the first
    /// [`SqlRecord::MAX_LISTED`] of them.
    pub destructive: Vec<SqlStatementRecord>,
    /// How many more destructive statements it has than are listed.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub not_listed: usize,
    /// Rows by statement index as a rolled-back dry run counted them, when
    /// one ran.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dry_run_rows: Option<Vec<u64>>,
}

/// One destructive statement in a [`SqlRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlStatementRecord {
    /// Its index in the script.
    pub index: usize,
    /// Its kind (`db.delete.all`, …).
    pub kind: String,
    /// The tables it names.
    pub tables: Vec<String>,
    /// Whether it says `CASCADE`.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub cascades: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl SqlRecord {
    /// The most destructive statements an intent lists one by one: a long
    /// migration's record stays well under the record size limit.
    pub const MAX_LISTED: usize = 256;

    /// The record of `script`'s classification.
    pub fn of(script: &crate::sql::Script) -> Self {
        let mut destructive = script.statements.iter().filter(|s| s.destructive);
        let listed = destructive
            .by_ref()
            .take(Self::MAX_LISTED)
            .map(|s| SqlStatementRecord {
                index: s.index,
                kind: s.kind.as_str().to_owned(),
                tables: s.tables.clone(),
                cascades: s.cascades,
            })
            .collect();
        SqlRecord {
            dialect: script.dialect.as_str().to_owned(),
            statements: script.statements.len(),
            destructive: listed,
            not_listed: destructive.count(),
            dry_run_rows: None,
        }
    }
}

/// The content of a record, before the writer adds the envelope and the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// What kind of record.
    pub kind: EventKind,
    /// Ties an intent to its outcome.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempt_id: Option<String>,
    /// Who acted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub actor: Option<Actor>,
    /// What and where.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub op: Option<OperationRecord>,
    /// The decision.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub decision: Option<DecisionRecord>,
    /// Backup evidence.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub backup: Option<BackupEvidence>,
    /// Confirmation evidence.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confirm: Option<ConfirmEvidence>,
    /// The outcome.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outcome: Option<OutcomeRecord>,
    /// Free text (notes, recovery details).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
    /// A seal's epoch and MAC.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seal: Option<SealInfo>,
    /// What a prune dropped (prune records only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prune: Option<PruneInfo>,
    /// The PID namespace of the process that wrote an intent (file logs):
    /// its `pid` means that process only there, so only a later run in the
    /// same namespace may judge it gone.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pid_ns: Option<u64>,
    /// A guarded SQL run's script (intent records).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sql: Option<SqlRecord>,
    /// The fencing token of the `[fleet] lock` lease the attempt runs
    /// under (intent records): each grant of an (operation, target)'s lease
    /// gets a larger one, so two runs that overlapped anyway (a holder that
    /// lost its lease mid-run) show as an intent with a larger fence before
    /// the outcome of the one with the smaller fence. Unique per (operation,
    /// target) only while the lock server keeps its data: a failover to an
    /// asynchronous replica that missed the last grants, or a restore, can
    /// hand one out again.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fence: Option<u64>,
    /// The promotion evidence a `staged` requirement was met with (intent
    /// records): where the same operation, with the same fingerprint,
    /// succeeded first.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub promotion: Option<PromotionRecord>,
    /// The way back an intent carries (a `rollback` requirement, or a plan
    /// given anyway): what `prodguard rollback ATTEMPT_ID` runs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rollback: Option<RollbackPlan>,
    /// The attempt this one rolls back (intents of `prodguard rollback`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rolls_back: Option<String>,
}

/// An operation's way back, as its intent records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RollbackPlan {
    /// A command that undoes it (a down-migration, a restore script), run
    /// by `sh -c`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub command: Option<String>,
    /// Restore the intent's backup (`backup.location`, whose bytes must
    /// still have `backup.sha256`) over the target.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub restore_backup: bool,
}

impl RollbackPlan {
    /// Run `command` to go back.
    pub fn command(command: impl Into<String>) -> Self {
        RollbackPlan {
            command: Some(command.into()),
            restore_backup: false,
        }
    }

    /// Restore the intent's backup to go back.
    pub fn restore_backup() -> Self {
        RollbackPlan {
            command: None,
            restore_backup: true,
        }
    }
}

/// What an intent cites for a `staged` requirement, so anyone can check
/// the claim later: verify `trail`, then look each run's outcome up by its
/// seq and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PromotionRecord {
    /// `[promotion] from`: where it had to succeed.
    pub from: String,
    /// `[promotion] within`, in seconds.
    pub within_seconds: u64,
    /// The trail the evidence was read from (a path, or a URL without a
    /// password), after it verified.
    pub trail: String,
    /// The successes cited: one for the operation's fingerprint, or one per
    /// step of a batch whose steps succeeded in other runs.
    pub runs: Vec<PromotedRun>,
}

/// One success an intent cites as promotion evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PromotedRun {
    /// The fingerprint it vouches for.
    pub fingerprint: String,
    /// Its attempt's id in the evidence trail.
    pub attempt_id: String,
    /// The environment it ran in.
    pub env: String,
    /// Its `ok` outcome record.
    pub outcome: crate::promotion::Citation,
}

/// What a prune record says: the rotated files it dropped, oldest first,
/// each with the anchor a verifier needs to start the chain after it.
/// Files are removed oldest first, after this record is durable, so a
/// prune cut short leaves a set that starts after one of these files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneInfo {
    /// The `--before` seq asked for: every dropped record is before it.
    pub before: u64,
    /// The dropped files, oldest first.
    pub files: Vec<PrunedFile>,
}

/// One dropped file and the anchor after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedFile {
    /// Its path when it was dropped.
    pub file: String,
    /// Its first record's seq.
    pub first_seq: u64,
    /// Its last record's seq: the chain goes on at the next.
    pub last_seq: u64,
    /// Its last record's hash: the `prev` of the record after it.
    pub last_hash: String,
    /// The log's length in bytes (all its files, pruned ones included) up
    /// to the end of this file, so anchors keep their byte counts.
    pub bytes: u64,
    /// The last seal at or before this file's end, if any: a verifier
    /// checks its MAC and expects the next seal of the following epoch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_seal: Option<PrunedSeal>,
}

/// A seal record among the dropped ones: what its MAC covered, and the MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedSeal {
    /// The seal record's seq.
    pub seq: u64,
    /// Its `prev` (the head it sealed).
    pub prev: String,
    /// Its epoch and MAC.
    #[serde(flatten)]
    pub seal: SealInfo,
}

impl AuditEvent {
    /// An empty event of `kind`.
    pub fn new(kind: EventKind) -> Self {
        AuditEvent {
            kind,
            attempt_id: None,
            actor: None,
            op: None,
            decision: None,
            backup: None,
            confirm: None,
            outcome: None,
            message: None,
            seal: None,
            prune: None,
            pid_ns: None,
            sql: None,
            fence: None,
            promotion: None,
            rollback: None,
            rolls_back: None,
        }
    }

    /// A free-form note.
    pub fn note(message: impl Into<String>) -> Self {
        AuditEvent {
            message: Some(message.into()),
            ..AuditEvent::new(EventKind::Note)
        }
    }
}

/// What the writer adds around an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The log's identity, fixed by its first record.
    pub log_id: String,
    /// 1-based position in the log.
    pub seq: u64,
    /// When it was written.
    pub ts: Timestamp,
    /// The writing host.
    pub host: String,
    /// The writing process.
    pub pid: u32,
}

/// One record as it stands in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version.
    pub v: u32,
    /// The log's identity.
    pub log_id: String,
    /// Position in the log, from 1.
    pub seq: u64,
    /// RFC 3339 UTC with microseconds.
    pub ts: String,
    /// Writing host.
    pub host: String,
    /// Writing process.
    pub pid: u32,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The previous record's hash ([`GENESIS_PREV`](super::GENESIS_PREV) for the first).
    pub prev: String,
    /// This record's hash.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hash: Option<String>,
}
