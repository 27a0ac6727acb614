//! Promotion evidence: what an audit trail says ran successfully, and
//! where.
//!
//! A trail's records are read into [`Attempt`]s — each intent paired by
//! `attempt_id` with its outcome — by an [`AttemptCollector`] (or
//! [`attempts`]). From them:
//!
//! - [`find_evidence`] answers "did this operation, with this fingerprint,
//!   succeed in staging within 14 days?": the newest such success, cited by
//!   its records' log id, seq and hash, or a [`NoEvidence`] that says what
//!   would satisfy the question and what the trail did have;
//! - [`parity`] lists the (operation, fingerprint) pairs that succeeded in
//!   one trail and never in the other (`prodguard parity`).
//!
//! Like the rest of the core this reads nothing: the driver verifies the
//! trail first (the chain, and its seals or anchor when it has them) and
//! hands over only the records that verified, in order. A trail that does
//! not verify is no evidence.
//!
//! **What counts as a success.** An intent record followed, anywhere later
//! in the trail, by an outcome record with the same `attempt_id` and status
//! `ok`. A `failed`, `panicked`, `abandoned`, `rolled_back` or `dry_run`
//! outcome is not a success, and neither is an intent without an outcome
//! (it may still be running, or died unrecorded). An attempt whose records
//! disagree — a second intent or a second outcome with its id, an outcome
//! that names another operation than its intent — counts as no success
//! either ([`Attempt::conflict`]); an outcome that cannot be cited (no hash,
//! a time that does not read) is passed over, leaving its intent without one.
//!
//! **Where it ran** is the intent's `op`: its environment name and tier.
//! A `from` of [`PromotionQuery`] matches an attempt whose environment's
//! name is `from`, or whose tier's canonical name (`production`,
//! `staging`, `development`, `test`, `local`, `unknown`) is `from`; both
//! compared trimmed and case-folded, as environment names are. Aliases are
//! not expanded: `from = "uat"` means the environment named `uat`.
//!
//! **Fingerprints.** An attempt vouches for its operation's `fingerprint`
//! and, when it ran a batch (pending migrations run as one), for each batch
//! item's fingerprint too: a migration that succeeded within a batch in
//! staging was tested there, whatever it was grouped with. So
//! [`find_evidence`] matches either; a caller checking a batch asks for each
//! of its items (or for the batch's own fingerprint, which only the same
//! batch has). [`parity`] compares what was tested: a batch's items, one by
//! one, not the batch's own fingerprint (which differs whenever the same
//! migrations are grouped differently); an attempt without a batch by its
//! operation's fingerprint. An empty fingerprint is no fingerprint:
//! successes without one cannot be compared and are only counted.
//!
//! ```
//! use prodguard_core::audit::{AuditEvent, Envelope, EventKind, OperationRecord, OutcomeRecord, Record, encode_record, GENESIS_PREV};
//! use prodguard_core::promotion::{PromotionQuery, attempts, find_evidence};
//! use prodguard_core::{Tier, Timestamp};
//!
//! // Two records as a staging run writes them: the intent, then its outcome.
//! let op = OperationRecord {
//!     kind: "db.migrate".into(), target: Some("orders".into()), env: "staging".into(),
//!     tier: Tier::Staging, decided_by: "env:APP_ENV".into(),
//!     fingerprint: Some("3f2a9c".into()), batch: vec![],
//! };
//! let mut intent = AuditEvent::new(EventKind::Intent);
//! intent.attempt_id = Some("a1".into());
//! intent.op = Some(op);
//! let mut outcome = intent.clone();
//! outcome.kind = EventKind::Outcome;
//! outcome.outcome = Some(OutcomeRecord { status: "ok".into(), duration_ms: 40, error: None, exit_code: Some(0), rows: None, lock_lost: None });
//! let day = 86_400_000_000;
//! let (mut prev, mut records) = (GENESIS_PREV.to_owned(), Vec::new());
//! for (seq, event) in [(1, intent), (2, outcome)] {
//!     let envelope = Envelope { log_id: "staging-log".into(), seq, ts: Timestamp(100 * day), host: "st-1".into(), pid: 7 };
//!     let (line, hash) = encode_record(&envelope, &event, &prev).unwrap();
//!     records.push(serde_json::from_slice::<Record>(&line).unwrap());
//!     prev = hash;
//! }
//!
//! let staging = attempts(&records);
//! let query = PromotionQuery::new("db.migrate", "3f2a9c", "staging", 14 * 86_400, Timestamp(103 * day));
//! let evidence = find_evidence(&staging, &query).unwrap();
//! assert_eq!((evidence.cited().log_id.as_str(), evidence.cited().seq), ("staging-log", 2));
//!
//! // Twenty days later the same run is too old to count, and the refusal says so.
//! let late = PromotionQuery::new("db.migrate", "3f2a9c", "staging", 14 * 86_400, Timestamp(120 * day));
//! let missing = find_evidence(&staging, &late).unwrap_err();
//! assert!(missing.to_string().starts_with(
//!     "run it in staging first: no successful `db.migrate` with fingerprint 3f2a9c in staging within 14 days"
//! ));
//! assert!(missing.to_string().contains("the last success there is 20 days old"));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::audit::{EventKind, OperationRecord, Record};
use crate::text::escape;

/// The status of an outcome that is a success.
pub const OK_STATUS: &str = "ok";

/// Where a record stands in its trail: enough for anyone to find it and
/// check it (`prodguard audit verify` the trail, then look the seq up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Citation {
    /// The log's identity (its first record's `log_id`).
    pub log_id: String,
    /// The record's seq in that log.
    pub seq: u64,
    /// The record's chain hash.
    pub hash: String,
    /// When it was written (its `ts`).
    pub at: Timestamp,
}

impl Citation {
    /// The citation of `record`, when it has what a citation needs (a hash,
    /// and a time that reads as RFC 3339).
    pub fn of(record: &Record) -> Option<Citation> {
        Some(Citation {
            log_id: record.log_id.clone(),
            seq: record.seq,
            hash: record.hash.clone()?,
            at: Timestamp::parse_rfc3339(&record.ts)?,
        })
    }
}

/// How an attempt ended: its outcome record's status and where that
/// record is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Ended {
    /// `ok`, `failed`, `panicked`, `abandoned`, `rolled_back`, `dry_run`, …
    pub status: String,
    /// A wrapped command's exit code, when the outcome has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<i32>,
    /// The outcome record.
    pub record: Citation,
}

/// One guarded attempt of a trail: its intent and, once it ended, its
/// outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Attempt {
    /// The id that ties the intent to its outcome.
    pub attempt_id: String,
    /// The operation, its target, fingerprint, batch, environment and tier,
    /// as the intent recorded them.
    pub op: OperationRecord,
    /// The intent record.
    pub intent: Citation,
    /// The outcome, when one was recorded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outcome: Option<Ended>,
    /// Why the trail's records of this attempt disagree, when they do (a
    /// second intent or outcome with its id, an outcome naming another
    /// operation): such an attempt is never a success.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conflict: Option<String>,
    /// The way back its intent recorded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rollback: Option<crate::audit::RollbackPlan>,
    /// The backup its intent recorded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub backup: Option<crate::audit::BackupEvidence>,
    /// The attempt it undoes, when it is a rollback (`rolls_back`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rolls_back: Option<String>,
    /// The rollback that undid it, when one succeeded: it is then no
    /// success any more.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rolled_back_by: Option<String>,
}

impl Attempt {
    /// Whether it is a success: an `ok` outcome, records that agree, and
    /// no rollback that undid it.
    pub fn succeeded(&self) -> bool {
        self.conflict.is_none()
            && self.rolled_back_by.is_none()
            && self
                .outcome
                .as_ref()
                .is_some_and(|ended| ended.status == OK_STATUS)
    }

    /// When it last did something: its outcome's time, else its intent's.
    pub fn at(&self) -> Timestamp {
        self.outcome
            .as_ref()
            .map_or(self.intent.at, |ended| ended.record.at)
    }

    /// Whether it ran in `place`: an environment's name or a tier's
    /// canonical name (trimmed, case-folded).
    ///
    /// ```
    /// use prodguard_core::promotion::Attempt;
    ///
    /// // An attempt in the environment `staging-eu`, of tier staging:
    /// let attempt: Attempt = serde_json::from_value(serde_json::json!({
    ///     "attempt_id": "a1",
    ///     "op": {"kind": "db.migrate", "env": "staging-eu", "tier": "staging", "decided_by": "env:APP_ENV"},
    ///     "intent": {"log_id": "l", "seq": 1, "hash": "ab", "at": "2026-01-01T00:00:00Z"},
    /// }))?;
    /// assert!(attempt.ran_in("staging-eu") && attempt.ran_in("Staging"));
    /// assert!(!attempt.ran_in("stage") && !attempt.ran_in("staging-us"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn ran_in(&self, place: &str) -> bool {
        let place = fold(place);
        !place.is_empty() && (fold(&self.op.env) == place || self.op.tier.as_str() == place)
    }

    /// How `fingerprint` matches this attempt's: the operation's own, or
    /// one of its batch's items; `None` when neither (or `fingerprint` is
    /// empty).
    pub fn vouches_for(&self, fingerprint: &str) -> Option<Matched> {
        if fingerprint.is_empty() {
            return None;
        }
        if self.op.fingerprint.as_deref() == Some(fingerprint) {
            return Some(Matched::Operation);
        }
        self.op
            .batch
            .iter()
            .find(|item| item.fingerprint == fingerprint)
            .map(|item| Matched::BatchItem {
                name: item.name.clone(),
            })
    }

    /// Where it ran, for people, escaped: `staging`, or
    /// `eu-stage (tier staging)` when the name is not the tier's.
    pub fn place(&self) -> String {
        let env = escape(&self.op.env);
        if fold(&self.op.env) == self.op.tier.as_str() {
            env.into_owned()
        } else {
            format!("{env} (tier {})", self.op.tier.as_str())
        }
    }

    /// How it ended, for people, escaped: `succeeded at …`,
    /// `failed (exit 1) at …`, `was abandoned at …`, `has no outcome
    /// recorded (…)`, `cannot count: … (…)`.
    pub fn ending(&self) -> String {
        if let Some(why) = &self.conflict {
            return format!(
                "cannot count: {} (intent at {})",
                escape(why),
                when(self.intent.at)
            );
        }
        let Some(ended) = &self.outcome else {
            return format!(
                "has no outcome recorded (its intent is from {}: still running, or it died unrecorded)",
                when(self.intent.at)
            );
        };
        let exit = ended
            .exit_code
            .filter(|_| ended.status != OK_STATUS)
            .map(|code| format!(" (exit {code})"))
            .unwrap_or_default();
        let what = match ended.status.as_str() {
            OK_STATUS => "succeeded".to_owned(),
            "failed" => "failed".to_owned(),
            "panicked" => "panicked".to_owned(),
            "abandoned" => "was abandoned".to_owned(),
            "rolled_back" => "was rolled back".to_owned(),
            "dry_run" => "was only a dry run".to_owned(),
            other => format!("ended `{}`", escape(other)),
        };
        let undone = self
            .rolled_back_by
            .as_deref()
            .map(|by| format!(", then was rolled back (attempt {})", escape(by)))
            .unwrap_or_default();
        format!("{what}{exit} at {}{undone}", when(ended.record.at))
    }

    /// What it tested, for [`parity`]: each batch item's fingerprint (with
    /// its name) when it ran a batch, else its operation's fingerprint;
    /// empty fingerprints left out, each once.
    pub fn tested(&self) -> Vec<(&str, Option<&str>)> {
        let mut out: Vec<(&str, Option<&str>)> = Vec::new();
        if self.op.batch.is_empty() {
            if let Some(fingerprint) = self.op.fingerprint.as_deref().filter(|f| !f.is_empty()) {
                out.push((fingerprint, None));
            }
        } else {
            for item in &self.op.batch {
                if !item.fingerprint.is_empty()
                    && !out.iter().any(|(seen, _)| *seen == item.fingerprint)
                {
                    out.push((&item.fingerprint, Some(&item.name)));
                }
            }
        }
        out
    }
}

/// How an attempt's fingerprint matched the one asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by")]
#[non_exhaustive]
pub enum Matched {
    /// The operation's own fingerprint.
    Operation,
    /// The fingerprint of one item of the batch it ran.
    BatchItem {
        /// The item's name (e.g. the migration's).
        name: String,
    },
}

/// Reads a trail's records, in order, into [`Attempt`]s.
///
/// Push every record that verified, in the trail's order (a driver reads
/// a large trail line by line and keeps only this); [`finish`](Self::finish)
/// gives the attempts in the order of their intents. Records that are not
/// intents or outcomes are passed over, and so is an outcome whose intent
/// is not in what was pushed (e.g. it was pruned), and a record without a
/// hash or a readable time (it cannot be cited).
///
/// ```
/// use prodguard_core::promotion::AttemptCollector;
/// let collector = AttemptCollector::new();
/// assert!(collector.finish().is_empty());
/// ```
#[derive(Debug, Default, Clone)]
pub struct AttemptCollector {
    attempts: Vec<Attempt>,
    by_id: BTreeMap<String, usize>,
    passed_over: u64,
}

impl AttemptCollector {
    /// A collector that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next record of the trail.
    pub fn push(&mut self, record: &Record) {
        let event = &record.event;
        let (Some(attempt_id), Some(citation)) = (&event.attempt_id, Citation::of(record)) else {
            self.pass_over(record);
            return;
        };
        match event.kind {
            EventKind::Intent => {
                let Some(op) = &event.op else {
                    self.passed_over += 1;
                    return;
                };
                if let Some(&index) = self.by_id.get(attempt_id) {
                    self.conflict(index, || {
                        format!("a second intent (seq {}) has its id", citation.seq)
                    });
                    return;
                }
                self.by_id.insert(attempt_id.clone(), self.attempts.len());
                self.attempts.push(Attempt {
                    attempt_id: attempt_id.clone(),
                    op: op.clone(),
                    intent: citation,
                    outcome: None,
                    conflict: None,
                    rollback: event.rollback.clone(),
                    backup: event.backup.clone(),
                    rolls_back: event.rolls_back.clone(),
                    rolled_back_by: None,
                });
            }
            EventKind::Outcome => {
                let (Some(&index), Some(outcome)) = (self.by_id.get(attempt_id), &event.outcome)
                else {
                    self.passed_over += 1;
                    return;
                };
                let Some(attempt) = self.attempts.get_mut(index) else {
                    return;
                };
                if let Some(earlier) = &attempt.outcome {
                    let seq = earlier.record.seq;
                    self.conflict(index, || {
                        format!(
                            "two outcomes have its id (seq {seq} and seq {})",
                            citation.seq
                        )
                    });
                    return;
                }
                if event.op.as_ref().is_some_and(|op| *op != attempt.op) {
                    let seq = citation.seq;
                    self.conflict(index, || {
                        format!("its outcome (seq {seq}) names another operation than its intent")
                    });
                }
                if let Some(attempt) = self.attempts.get_mut(index) {
                    attempt.outcome = Some(Ended {
                        status: outcome.status.clone(),
                        exit_code: outcome.exit_code,
                        record: citation,
                    });
                }
            }
            _ => {}
        }
    }

    /// Counts a record of a kind that matters that could not be used.
    fn pass_over(&mut self, record: &Record) {
        if matches!(record.event.kind, EventKind::Intent | EventKind::Outcome) {
            self.passed_over += 1;
        }
    }

    /// Marks attempt `index` as conflicting (keeping the first reason).
    fn conflict(&mut self, index: usize, why: impl FnOnce() -> String) {
        if let Some(attempt) = self.attempts.get_mut(index) {
            attempt.conflict.get_or_insert_with(why);
        }
    }

    /// Intent and outcome records that could not be used: no attempt id, no
    /// operation (intents), no hash or readable time, or an outcome whose
    /// intent was not pushed.
    pub fn passed_over(&self) -> u64 {
        self.passed_over
    }

    /// The attempts, in the order of their intents; one undone by a
    /// rollback that succeeded names it in `rolled_back_by`.
    pub fn finish(mut self) -> Vec<Attempt> {
        let undone: Vec<(usize, String)> = self
            .attempts
            .iter()
            .filter(|a| a.succeeded())
            .filter_map(|a| {
                let undone = a.rolls_back.as_ref()?;
                Some((*self.by_id.get(undone)?, a.attempt_id.clone()))
            })
            .collect();
        for (index, by) in undone {
            if let Some(attempt) = self.attempts.get_mut(index) {
                attempt.rolled_back_by.get_or_insert(by);
            }
        }
        self.attempts
    }
}

/// The attempts of `records` (a whole verified trail, in order): an
/// [`AttemptCollector`] fed each.
pub fn attempts<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<Attempt> {
    let mut collector = AttemptCollector::new();
    for record in records {
        collector.push(record);
    }
    collector.finish()
}

/// The attempts of a whole audit log given as its text (JSON lines, from
/// its first record; a rotated set's files one after another), once every
/// line has verified as the next link of its chain
/// ([`ChainVerifier`](crate::audit::ChainVerifier)): how a host that reads
/// the trail itself hands it to the core (the JSON API's
/// `evidence.promotion_trail`). Anything that does not verify — a changed,
/// missing or reordered record, a final line without its newline — is an
/// error naming the line: such a trail is no evidence. Seals and anchors
/// are not checked here; `prodguard audit verify` checks them.
///
/// ```
/// use prodguard_core::promotion::attempts_from_log;
/// assert_eq!(attempts_from_log("").unwrap().len(), 0);
/// assert!(attempts_from_log("{\"not\":\"a record\"}\n").unwrap_err().contains("line 1"));
/// ```
pub fn attempts_from_log(text: &str) -> Result<Vec<Attempt>, String> {
    let mut verifier = crate::audit::ChainVerifier::new();
    let mut collector = AttemptCollector::new();
    let mut rest = text;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let Some((line, after)) = rest.split_once('\n') else {
            return Err(format!(
                "line {number} does not end with a newline (a torn or cut record)"
            ));
        };
        rest = after;
        verifier
            .push(line.as_bytes())
            .map_err(|e| format!("line {number} does not verify: {e}"))?;
        let record: Record = serde_json::from_str(line)
            .map_err(|e| format!("line {number} verifies but does not read as a record: {e}"))?;
        collector.push(&record);
    }
    Ok(collector.finish())
}

/// What promotion evidence is asked for: a success of `operation` with
/// `fingerprint` in `from` (an environment's name or a tier's), no older
/// than `within_seconds` before `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PromotionQuery {
    /// The operation's dotted name, e.g. `db.migrate`.
    pub operation: String,
    /// What identifies its content (a migration's checksum, a script's
    /// fingerprint). An empty one matches nothing.
    pub fingerprint: String,
    /// Where it must have succeeded: an environment's name or a tier's.
    pub from: String,
    /// How old the success may be, in seconds.
    pub within_seconds: u64,
    /// Now, as the caller's clock says.
    pub now: Timestamp,
}

impl PromotionQuery {
    /// The question for `operation` with `fingerprint`, run in `from`
    /// within `within_seconds` before `now`.
    pub fn new(
        operation: impl Into<String>,
        fingerprint: impl Into<String>,
        from: impl Into<String>,
        within_seconds: u64,
        now: Timestamp,
    ) -> Self {
        PromotionQuery {
            operation: operation.into(),
            fingerprint: fingerprint.into(),
            from: from.into(),
            within_seconds,
            now,
        }
    }

    /// The oldest time a success may have.
    fn oldest(&self) -> Timestamp {
        let within = i64::try_from(self.within_seconds).unwrap_or(i64::MAX);
        self.now.plus_seconds(within.saturating_neg())
    }
}

/// The success that answers a [`PromotionQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Evidence {
    /// The attempt that succeeded (its intent and outcome are cited in it).
    pub attempt: Attempt,
    /// How its fingerprint matched.
    pub matched: Matched,
    /// How old its outcome was at the query's `now`, in seconds (negative
    /// when its writer's clock was ahead).
    pub age_seconds: i64,
}

impl Evidence {
    /// The outcome record that proves the success: what an intent cites.
    pub fn cited(&self) -> &Citation {
        // Evidence is only made of attempts with an `ok` outcome.
        self.attempt
            .outcome
            .as_ref()
            .map_or(&self.attempt.intent, |ended| &ended.record)
    }
}

/// Why a trail holds no evidence for a [`PromotionQuery`], with what it
/// does hold; its message says what would satisfy the query.
///
/// The fields are what the trail had of the operation in `from` (and,
/// with this fingerprint, elsewhere), so a face can show them as it likes;
/// `Display` is the sentence for people, every record field in it escaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NoEvidence {
    /// What was asked.
    pub query: PromotionQuery,
    /// The newest attempt with this fingerprint in `from` when it is not a
    /// success (failed, abandoned, still without an outcome, …) and is
    /// newer than any success there.
    pub last_attempt: Option<Box<Attempt>>,
    /// The newest success with this fingerprint in `from`: older than
    /// `within` (or it would be the evidence).
    pub last_success: Option<Box<Attempt>>,
    /// The other fingerprints this operation ran with in `from` (any
    /// status), newest first.
    pub other_fingerprints: Vec<String>,
    /// With no success in `from` at all: the newest success with this
    /// fingerprint in each other environment, newest first.
    pub elsewhere: Vec<Attempt>,
    /// Whether the trail holds any attempt of this operation in `from`.
    pub ran_there: bool,
}

impl std::error::Error for NoEvidence {}

impl fmt::Display for NoEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let query = &self.query;
        let from = escape(&query.from);
        let operation = escape(&query.operation);
        write!(
            f,
            "run it in {from} first: no successful `{operation}` with fingerprint {} in {from} within {}",
            short_fingerprint(&query.fingerprint),
            exact_span(query.within_seconds),
        )?;
        let mut notes = Vec::new();
        if let Some(attempt) = &self.last_attempt {
            notes.push(format!("the last attempt there {}", attempt.ending()));
        }
        if let Some(success) = &self.last_success {
            let age = query.now.seconds_since(success.at());
            notes.push(if age < -crate::session::MAX_CLOCK_SKEW_SECONDS {
                format!(
                    "the last success there is dated {}, {} s ahead of this clock; check the clocks",
                    when(success.at()),
                    -age
                )
            } else {
                format!(
                    "the last success there is {} old ({})",
                    human_span(age.max(0).unsigned_abs()),
                    when(success.at())
                )
            });
        }
        if !self.other_fingerprints.is_empty() {
            notes.push(format!(
                "{from} ran other fingerprints of it ({})",
                listed(self.other_fingerprints.iter().map(|f| short_fingerprint(f)))
            ));
        }
        if !self.elsewhere.is_empty() {
            notes.push(format!(
                "with this fingerprint it succeeded only elsewhere: {}",
                listed(
                    self.elsewhere
                        .iter()
                        .map(|a| format!("{} at {}", a.place(), when(a.at())))
                )
            ));
        }
        if !self.ran_there {
            notes.push(format!("the trail holds no `{operation}` in {from}"));
        }
        for note in notes {
            write!(f, "; {note}")?;
        }
        Ok(())
    }
}

/// The newest success of `query.operation` with `query.fingerprint` (the
/// operation's own or a batch item's) in `query.from`, no older than
/// `query.within_seconds` before `query.now`; ties go to the later attempt.
///
/// `attempts` are a verified trail's ([`attempts`], [`AttemptCollector`]).
/// Without such a success, [`NoEvidence`] says what would satisfy the
/// query and what the trail had: the last attempt there and how it ended,
/// the last success there and its age, the other fingerprints that ran
/// there, and where else this fingerprint succeeded.
///
/// ```
/// use prodguard_core::promotion::{PromotionQuery, find_evidence};
/// use prodguard_core::Timestamp;
///
/// let query = PromotionQuery::new("db.migrate", "3f2a9c", "staging", 14 * 86_400, Timestamp(0));
/// let missing = find_evidence(&[], &query).unwrap_err();
/// assert_eq!(
///     missing.to_string(),
///     "run it in staging first: no successful `db.migrate` with fingerprint 3f2a9c in staging \
///      within 14 days; the trail holds no `db.migrate` in staging"
/// );
/// ```
pub fn find_evidence(attempts: &[Attempt], query: &PromotionQuery) -> Result<Evidence, NoEvidence> {
    let oldest = query.oldest();
    let same_op = || attempts.iter().filter(|a| a.op.kind == query.operation);
    let there = || same_op().filter(|a| a.ran_in(&query.from));
    let matching = || {
        there().filter_map(|a| {
            a.vouches_for(&query.fingerprint)
                .map(|matched| (a, matched))
        })
    };
    // A success dated ahead of now (a fast clock, a forged time) would
    // count for longer than `within`: beyond the clock skew allowed, none.
    let latest = query
        .now
        .plus_seconds(crate::session::MAX_CLOCK_SKEW_SECONDS);
    let best = newest(
        matching().filter(|(a, _)| a.succeeded() && a.at() >= oldest && a.at() <= latest),
        |(a, _)| a.at(),
    );
    if let Some((attempt, matched)) = best {
        return Ok(Evidence {
            attempt: attempt.clone(),
            matched,
            age_seconds: query.now.seconds_since(attempt.at()),
        });
    }
    let last_success = newest(matching().filter(|(a, _)| a.succeeded()), |(a, _)| a.at());
    let last_attempt = newest(matching().filter(|(a, _)| !a.succeeded()), |(a, _)| a.at())
        .filter(|(a, _)| last_success.as_ref().is_none_or(|(s, _)| a.at() > s.at()));
    let mut others: Vec<&Attempt> = there()
        .filter(|a| a.vouches_for(&query.fingerprint).is_none())
        .collect();
    sort_newest_first(&mut others);
    let mut other_fingerprints: Vec<String> = Vec::new();
    for attempt in others {
        let shown = attempt.op.fingerprint.as_deref().unwrap_or_default();
        if !shown.is_empty() && !other_fingerprints.iter().any(|f| f == shown) {
            other_fingerprints.push(shown.to_owned());
        }
    }
    let mut elsewhere: Vec<Attempt> = Vec::new();
    if last_success.is_none() {
        // None of these ran in `from`: nothing succeeded there.
        let mut found: Vec<&Attempt> = same_op()
            .filter(|a| a.succeeded() && a.vouches_for(&query.fingerprint).is_some())
            .collect();
        sort_newest_first(&mut found);
        for attempt in found {
            if !elsewhere
                .iter()
                .any(|seen| fold(&seen.op.env) == fold(&attempt.op.env))
            {
                elsewhere.push(attempt.clone());
            }
        }
    }
    Err(NoEvidence {
        query: query.clone(),
        last_attempt: last_attempt.map(|(a, _)| Box::new(a.clone())),
        last_success: last_success.map(|(a, _)| Box::new(a.clone())),
        other_fingerprints,
        elsewhere,
        ran_there: there().next().is_some(),
    })
}

/// What one side of a [`ParityReport`] has that the other never had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParityEntry {
    /// The operation's dotted name.
    pub operation: String,
    /// The fingerprint that succeeded on this side only.
    pub fingerprint: String,
    /// The batch item it was, when the newest success ran it in a batch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub item: Option<String>,
    /// How many successes this side has of it.
    pub successes: u64,
    /// The newest of them: when, where and its records.
    pub last: Attempt,
    /// The newest attempt of it on the other side, which did not succeed
    /// (failed, abandoned, …), if there was one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub other_side: Option<Attempt>,
}

/// The (operation, fingerprint) pairs that succeeded in one trail and
/// never in the other, each side newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ParityReport {
    /// Succeeded in `to`, never in `from`: e.g. what production ran that
    /// staging never tested.
    pub only_in_to: Vec<ParityEntry>,
    /// Succeeded in `from`, never in `to`: e.g. what staging tested that
    /// production has not run (yet).
    pub only_in_from: Vec<ParityEntry>,
    /// How many pairs succeeded in both.
    pub in_both: u64,
    /// Successes in `from` without a fingerprint (not compared).
    pub unfingerprinted_from: u64,
    /// Successes in `to` without a fingerprint (not compared).
    pub unfingerprinted_to: u64,
}

/// What succeeded in `to` and never in `from`, and the reverse.
///
/// Pairs are (operation, fingerprint), a batch counting by its items (see
/// the [module docs](self)); environments do not matter here — filter the
/// attempts with [`Attempt::ran_in`] first when one trail holds several.
/// Each entry carries its side's newest success, cited, and the other
/// side's newest attempt of it that did not succeed, if any.
///
/// ```
/// use prodguard_core::promotion::parity;
/// let report = parity(&[], &[]);
/// assert!(report.only_in_to.is_empty() && report.only_in_from.is_empty());
/// ```
pub fn parity(from: &[Attempt], to: &[Attempt]) -> ParityReport {
    let (from_ok, unfingerprinted_from) = tested_by_key(from);
    let (to_ok, unfingerprinted_to) = tested_by_key(to);
    let in_both = to_ok.keys().filter(|k| from_ok.contains_key(*k)).count();
    ParityReport {
        only_in_to: one_sided(&to_ok, &from_ok, from),
        only_in_from: one_sided(&from_ok, &to_ok, to),
        in_both: in_both as u64,
        unfingerprinted_from,
        unfingerprinted_to,
    }
}

/// (operation, fingerprint).
type Key<'a> = (&'a str, &'a str);

/// One side's successes of a [`Key`]: how many, the newest, and the batch
/// item it was in that one.
type Tested<'a> = BTreeMap<Key<'a>, (u64, &'a Attempt, Option<&'a str>)>;

/// A side's successes by what they tested: how many, the newest and the
/// item name it had there; and how many successes tested nothing.
fn tested_by_key(attempts: &[Attempt]) -> (Tested<'_>, u64) {
    let mut by_key: Tested<'_> = BTreeMap::new();
    let mut unfingerprinted = 0;
    for attempt in attempts.iter().filter(|a| a.succeeded()) {
        let tested = attempt.tested();
        if tested.is_empty() {
            unfingerprinted += 1;
        }
        for (fingerprint, item) in tested {
            let entry = by_key
                .entry((&attempt.op.kind, fingerprint))
                .or_insert((0, attempt, item));
            entry.0 += 1;
            if attempt.at() >= entry.1.at() {
                (entry.1, entry.2) = (attempt, item);
            }
        }
    }
    (by_key, unfingerprinted)
}

/// The entries of `side` that `other` lacks, newest first; each with
/// `other_attempts`' newest attempt of it (which did not succeed).
fn one_sided(
    side: &Tested<'_>,
    other: &Tested<'_>,
    other_attempts: &[Attempt],
) -> Vec<ParityEntry> {
    let mut entries: Vec<ParityEntry> = side
        .iter()
        .filter(|(key, _)| !other.contains_key(*key))
        .map(
            |(&(operation, fingerprint), &(successes, last, item))| ParityEntry {
                operation: operation.to_owned(),
                fingerprint: fingerprint.to_owned(),
                item: item.map(str::to_owned),
                successes,
                last: last.clone(),
                other_side: newest(
                    other_attempts.iter().filter(|a| {
                        a.op.kind == operation && a.tested().iter().any(|(f, _)| *f == fingerprint)
                    }),
                    |a| a.at(),
                )
                .cloned(),
            },
        )
        .collect();
    entries.sort_by(|a, b| {
        b.last
            .at()
            .cmp(&a.last.at())
            .then_with(|| a.operation.cmp(&b.operation))
            .then_with(|| a.fingerprint.cmp(&b.fingerprint))
    });
    entries
}

/// The item with the largest time; ties go to the later item.
fn newest<T>(items: impl Iterator<Item = T>, at: impl Fn(&T) -> Timestamp) -> Option<T> {
    items.fold(None, |best, item| match best {
        Some(best) if at(&best) > at(&item) => Some(best),
        _ => Some(item),
    })
}

/// Newest first; ties keep the later attempt first.
fn sort_newest_first(attempts: &mut [&Attempt]) {
    attempts.reverse();
    attempts.sort_by_key(|a| std::cmp::Reverse(a.at()));
}

fn fold(text: &str) -> String {
    text.trim().to_ascii_lowercase()
}

/// A fingerprint as messages show it, escaped: one longer than 16
/// characters cut after 12 characters of its last `:`-separated part
/// (`3f2a9c0b1d2e…`, `batch:77aa01bb02cc…`).
///
/// ```
/// use prodguard_core::promotion::short_fingerprint;
/// assert_eq!(short_fingerprint("3f2a9c"), "3f2a9c");
/// assert_eq!(short_fingerprint(&"3f2a".repeat(16)), "3f2a3f2a3f2a…");
/// assert_eq!(short_fingerprint(&format!("batch:{}", "7a".repeat(32))), "batch:7a7a7a7a7a7a…");
/// ```
pub fn short_fingerprint(fingerprint: &str) -> String {
    let (prefix, body) = match fingerprint.rfind(':') {
        Some(at) => fingerprint.split_at(at + 1),
        None => ("", fingerprint),
    };
    if body.chars().count() > 16 {
        let cut: String = body.chars().take(12).collect();
        format!("{}{}…", escape(prefix), escape(&cut))
    } else {
        escape(fingerprint).into_owned()
    }
}

/// A time as messages show it: RFC 3339 to the second.
///
/// ```
/// use prodguard_core::{Timestamp, promotion::show_time};
/// assert_eq!(show_time(Timestamp::parse_rfc3339("2026-11-27T03:04:05.123456Z").unwrap()), "2026-11-27T03:04:05Z");
/// ```
pub fn show_time(at: Timestamp) -> String {
    let text = at.to_rfc3339();
    match text.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => text,
    }
}

fn when(at: Timestamp) -> String {
    show_time(at)
}

/// A span for people, exactly: `14 days`, `36 hours`, `1d2h3m4s`.
pub(crate) fn exact_span(seconds: u64) -> String {
    match seconds {
        0 => "0 seconds".to_owned(),
        s if s % 86_400 == 0 => human_span(s),
        s if s % 3_600 == 0 => plural(s / 3_600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s if s < 3_600 => plural(s, "second"),
        s => crate::policy::format_duration(s),
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// A span for people: `14 days`, `1 day`, `3 hours`, `90 seconds`; whole
/// units, rounded down.
fn human_span(seconds: u64) -> String {
    let (n, unit) = match seconds {
        s if s >= 86_400 => (s / 86_400, "day"),
        s if s >= 3_600 => (s / 3_600, "hour"),
        s if s >= 60 => (s / 60, "minute"),
        s => (s, "second"),
    };
    plural(n, unit)
}

/// At most three items and how many more.
fn listed(items: impl ExactSizeIterator<Item = String>) -> String {
    let total = items.len();
    let shown: Vec<String> = items.take(3).collect();
    match total.saturating_sub(shown.len()) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests;
