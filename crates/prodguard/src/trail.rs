//! An audit trail read as evidence: verified first, believed after.
//!
//! [`read_verified`] checks a trail with the verifier `prodguard audit
//! verify` uses — [`verify_log`] for a file and its rotated set,
//! `pg::verify` (the `postgres` feature) for a PostgreSQL trail — and refuses
//! one that does not verify ([`TrailError::Unverified`], exit 123). Then it
//! reads the records up to the head that verified, each pushed through the
//! core's [`ChainVerifier`] again and read as the core's [`Record`]: they
//! must chain to that very head (its seq and hash), so what is believed is
//! exactly what was verified, even if the trail grew, rotated or was
//! changed in between (that refuses: [`TrailError::Changed`]). The records
//! become the core's promotion [`Attempt`]s, which
//! [`prodguard_core::promotion`] judges.
//!
//! ```no_run
//! use prodguard::audit::VerifyOptions;
//! use prodguard::trail::{TrailSource, read_verified};
//! use prodguard_core::promotion::{PromotionQuery, find_evidence};
//! use prodguard_core::Timestamp;
//!
//! let staging = read_verified(&TrailSource::parse("/var/log/staging/audit.jsonl"), VerifyOptions::default())?;
//! let now = Timestamp::from_unix_micros(1_800_000_000_000_000);
//! let query = PromotionQuery::new("db.migrate", "3f2a9c", "staging", 14 * 86_400, now);
//! match find_evidence(&staging.attempts, &query) {
//!     // The outcome record to cite: its log id, seq and hash.
//!     Ok(evidence) => tracing::info!(log_id = %evidence.cited().log_id, seq = evidence.cited().seq, "staged"),
//!     // "run it in staging first: no successful `db.migrate` with fingerprint 3f2a9c in staging within 14 days; …"
//!     Err(missing) => tracing::warn!("{missing}"),
//! }
//! # Ok::<(), prodguard::trail::TrailError>(())
//! ```

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use prodguard_core::ExitCode;
use prodguard_core::audit::{ChainVerifier, MAX_RECORD_BYTES, Record};
use prodguard_core::promotion::{Attempt, AttemptCollector};
use prodguard_core::text::{escape, shell_word};
use serde::Deserialize;

use crate::audit::{AnchorCheck, VerifyOptions, VerifyReport, rotated_files, verify_log};
use crate::small_file::open_regular_read;

/// Where a trail is: a file log (with its rotated files beside it, as
/// `prodguard audit verify --log` reads them) or a PostgreSQL trail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrailSource {
    /// A file log: `PATH`, after `PATH.1`, `PATH.2`, … when it was rotated.
    File(PathBuf),
    /// The table `prodguard_audit` of the server a `postgresql://` URL names.
    Postgres(String),
}

impl TrailSource {
    /// A `postgresql://` or `postgres://` URL names a PostgreSQL trail;
    /// anything else is a file's path.
    ///
    /// ```
    /// use prodguard::trail::TrailSource;
    /// assert!(matches!(TrailSource::parse("postgresql://pg@db/fleet"), TrailSource::Postgres(_)));
    /// assert!(matches!(TrailSource::parse("staging/audit.jsonl"), TrailSource::File(_)));
    /// ```
    pub fn parse(text: &str) -> TrailSource {
        // Also without the `pg` module: such a URL is refused as
        // unsupported, never read as a file's path.
        if prodguard_core::policy::is_postgres_url(text) {
            TrailSource::Postgres(text.to_owned())
        } else {
            TrailSource::File(PathBuf::from(text))
        }
    }
}

/// A trail that verified, and its attempts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedTrail {
    /// The trail as messages name it: the path, or the server's URL without
    /// its password.
    pub name: String,
    /// What the verifier found (intact).
    pub report: VerifyReport,
    /// Its guarded attempts, in the order of their intents.
    pub attempts: Vec<Attempt>,
    /// Intent and outcome records that verified but could not be used (a
    /// record this version cannot read, an outcome whose intent was pruned).
    pub passed_over: u64,
}

/// Why a trail cannot be believed. Each names the trail and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrailError {
    /// The trail could not be read (missing, unreadable, a server that
    /// cannot be reached).
    #[error(
        "cannot read the audit trail {trail}: {detail}; it is no evidence until it can be read"
    )]
    Unreadable {
        /// The trail.
        trail: String,
        /// Why.
        detail: String,
    },
    /// The trail does not verify: it is no evidence.
    #[error(
        "the audit trail {trail} does not verify ({problem}), so it is no evidence; run `{command}` to see why"
    )]
    Unverified {
        /// The trail.
        trail: String,
        /// What the verifier found.
        problem: String,
        /// The command that shows the report.
        command: String,
        /// `prodguard audit verify`'s exit code for it (1, 2 or 3).
        verify_code: i32,
    },
    /// What was read after verifying does not lead to the head that
    /// verified.
    #[error(
        "the audit trail {trail} changed while it was read ({detail}): its records no longer lead to the head that verified; run it again, and if this persists run `{command}`"
    )]
    Changed {
        /// The trail.
        trail: String,
        /// What differed.
        detail: String,
        /// The command that verifies it.
        command: String,
    },
    /// The URL does not parse, or asks what a PostgreSQL trail cannot give.
    #[error("{0}")]
    Usage(String),
}

impl TrailError {
    /// The exit code every face refuses with: 123 (the trail is
    /// unavailable as evidence), 125 for a bad URL or a build without
    /// PostgreSQL support.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            TrailError::Usage(_) => ExitCode::PolicyError,
            _ => ExitCode::AuditUnavailable,
        }
    }
}

/// Verifies the trail at `source` as `prodguard audit verify` does (with
/// `options`: an anchor, and for a file a seal key), then reads its
/// attempts up to the head that verified.
///
/// A trail that does not verify — damage, a torn tail, an anchor not
/// reached, records after the last seal — is [`TrailError::Unverified`];
/// an empty one verifies and has no attempts.
pub fn read_verified(
    source: &TrailSource,
    options: VerifyOptions<'_>,
) -> Result<VerifiedTrail, TrailError> {
    match source {
        TrailSource::File(path) => read_file(path, options),
        TrailSource::Postgres(url) => read_postgres(url, options),
    }
}

fn read_file(path: &Path, options: VerifyOptions<'_>) -> Result<VerifiedTrail, TrailError> {
    let name = escape(&path.to_string_lossy()).into_owned();
    let command = format!(
        "prodguard audit verify --log {}",
        shell_word(&path.to_string_lossy())
    );
    let unreadable = |e: std::io::Error| TrailError::Unreadable {
        trail: name.clone(),
        detail: e.to_string(),
    };
    let report = verify_log(path, options).map_err(unreadable)?;
    refuse_unless_intact(&name, &command, &report)?;
    let mut reader = Bound::new(&name, &command, &report);
    if report.records > 0 {
        let mut files = rotated_files(path).map_err(unreadable)?;
        files.push(path.to_owned());
        let mut line = Vec::new();
        'files: for file in files {
            let file = open_regular_read(&file).map_err(unreadable)?;
            let mut file = BufReader::new(file);
            loop {
                line.clear();
                let n = (&mut file)
                    .take(MAX_RECORD_BYTES as u64 + 1)
                    .read_until(b'\n', &mut line)
                    .map_err(unreadable)?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                if reader.push(&line)? {
                    break 'files;
                }
            }
        }
    }
    reader.finish(name, report)
}

#[cfg(feature = "postgres")]
fn read_postgres(url: &str, options: VerifyOptions<'_>) -> Result<VerifiedTrail, TrailError> {
    use postgres::IsolationLevel;

    if options.seal_key.is_some() {
        return Err(TrailError::Usage(
            "a PostgreSQL trail has no seals to check; give a seal key only with a file trail"
                .into(),
        ));
    }
    let server = crate::pg::PgServer::parse(url).map_err(|e| TrailError::Usage(e.to_string()))?;
    let name = escape(server.name()).into_owned();
    let command = format!(
        "prodguard audit verify --postgres {}",
        shell_word(server.name())
    );
    let unreadable = |detail: String| TrailError::Unreadable {
        trail: name.clone(),
        detail,
    };
    let report =
        crate::pg::verify(&server, options.anchor).map_err(|e| unreadable(e.to_string()))?;
    refuse_unless_intact(&name, &command, &report)?;
    let mut reader = Bound::new(&name, &command, &report);
    if report.records > 0 {
        let failed = |e: postgres::Error| unreadable(crate::pg::describe(&e));
        let mut client = server.connect().map_err(|e| unreadable(e.to_string()))?;
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(failed)?;
        let portal = tx
            .bind("SELECT record FROM prodguard_audit ORDER BY id", &[])
            .map_err(failed)?;
        'rows: loop {
            let rows = tx.query_portal(&portal, 1000).map_err(failed)?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let record: String = row.try_get(0).map_err(failed)?;
                if reader.push(record.as_bytes())? {
                    break 'rows;
                }
            }
        }
    }
    reader.finish(name, report)
}

#[cfg(not(feature = "postgres"))]
fn read_postgres(_url: &str, _options: VerifyOptions<'_>) -> Result<VerifiedTrail, TrailError> {
    Err(TrailError::Usage(
        "this build of prodguard has no PostgreSQL support (the `postgres` feature), so it cannot \
         read a PostgreSQL trail; build it with that feature, or use the prodguard CLI"
            .into(),
    ))
}

/// Refuses a trail whose report is not intact, saying what was found.
fn refuse_unless_intact(
    name: &str,
    command: &str,
    report: &VerifyReport,
) -> Result<(), TrailError> {
    if report.intact() {
        return Ok(());
    }
    Err(TrailError::Unverified {
        trail: name.to_owned(),
        problem: problem(report),
        command: command.to_owned(),
        verify_code: report.exit_code(),
    })
}

/// What keeps a report from being intact, in a few words.
fn problem(report: &VerifyReport) -> String {
    if let Some(damage) = &report.damage {
        let at = if damage.line == 0 {
            String::new()
        } else {
            format!(
                " at {} line {}",
                escape(&damage.file.to_string_lossy()),
                damage.line
            )
        };
        return format!("tampered{at}: {}", escape(&damage.problem));
    }
    match &report.anchor {
        Some(AnchorCheck::Mismatch(why)) => {
            return format!("tampered: {}", escape(why));
        }
        Some(AnchorCheck::NotReached) => {
            return "it ends before its anchor: truncated or rolled back".into();
        }
        Some(AnchorCheck::Pruned { start_seq }) => {
            return format!(
                "the anchor's record was pruned (the log now starts at record {start_seq})"
            );
        }
        _ => {}
    }
    if report.torn_tail_bytes > 0 {
        return format!(
            "an incomplete final record of {} bytes",
            report.torn_tail_bytes
        );
    }
    if let Some(unsealed) = report.unsealed_tail.filter(|&n| n > 0) {
        return format!("the last {unsealed} records are not sealed");
    }
    format!("verify exits {}", report.exit_code())
}

/// Reads records after a verification, up to the head it reported: each
/// must continue the chain, and the last must be that head.
struct Bound {
    name: String,
    command: String,
    /// Where the verified set starts, and its head.
    start_seq: u64,
    head_seq: u64,
    head_hash: String,
    verifier: Option<ChainVerifier>,
    collector: AttemptCollector,
    unreadable: u64,
    reached: bool,
}

impl Bound {
    fn new(name: &str, command: &str, report: &VerifyReport) -> Self {
        Bound {
            name: name.to_owned(),
            command: command.to_owned(),
            start_seq: report.pruned.as_ref().map_or(1, |p| p.start_seq),
            head_seq: report.head_seq,
            head_hash: report.head_hash.clone(),
            verifier: None,
            collector: AttemptCollector::new(),
            unreadable: 0,
            reached: report.records == 0,
        }
    }

    fn changed(&self, detail: String) -> TrailError {
        TrailError::Changed {
            trail: self.name.clone(),
            detail,
            command: self.command.clone(),
        }
    }

    /// Takes the next line (with or without its newline); `true` once the
    /// head is reached.
    fn push(&mut self, line: &[u8]) -> Result<bool, TrailError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if self.verifier.is_none() {
            #[derive(Deserialize)]
            struct First {
                seq: u64,
                prev: String,
            }
            let first: First = serde_json::from_slice(line)
                .map_err(|e| self.changed(format!("its first record does not read: {e}")))?;
            if first.seq != self.start_seq {
                return Err(self.changed(format!(
                    "it starts at record {}, not {}",
                    first.seq, self.start_seq
                )));
            }
            self.verifier = Some(ChainVerifier::resume(first.prev, first.seq, None));
        }
        let Some(verifier) = self.verifier.as_mut() else {
            return Ok(false);
        };
        let link = match verifier.push(line) {
            Ok(link) => link,
            Err(e) => {
                let seq = verifier.next_seq();
                return Err(self.changed(format!("record {seq}: {e}")));
            }
        };
        match serde_json::from_slice::<Record>(line) {
            Ok(record) => self.collector.push(&record),
            Err(e) => {
                // A record of a newer version, say: it verified, but this
                // version cannot tell what it says.
                tracing::warn!(
                    trail = %self.name,
                    seq = link.seq,
                    error = %e,
                    "an audit record verified but cannot be read; it is passed over as evidence"
                );
                self.unreadable += 1;
            }
        }
        if link.seq == self.head_seq {
            if link.hash != self.head_hash {
                return Err(self.changed(format!(
                    "record {} has hash {}, not the verified {}",
                    link.seq, link.hash, self.head_hash
                )));
            }
            self.reached = true;
            return Ok(true);
        }
        Ok(false)
    }

    fn finish(self, name: String, report: VerifyReport) -> Result<VerifiedTrail, TrailError> {
        if !self.reached {
            let got = self
                .verifier
                .as_ref()
                .map_or(0, |v| v.next_seq().saturating_sub(1));
            return Err(self.changed(format!(
                "it ends at record {got}; the verified head is record {}",
                self.head_seq
            )));
        }
        let passed_over = self.collector.passed_over() + self.unreadable;
        if passed_over > 0 {
            tracing::info!(trail = %name, passed_over, "records that could not be used as evidence");
        }
        Ok(VerifiedTrail {
            name,
            report,
            attempts: self.collector.finish(),
            passed_over,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prodguard_core::Timestamp;
    use prodguard_core::audit::{
        AuditEvent, Envelope, EventKind, GENESIS_PREV, OperationRecord, OutcomeRecord,
        encode_record,
    };
    use prodguard_core::{Tier, promotion};

    /// `runs` (fingerprint, status) as intent and outcome records, chained
    /// from `prev` at `first_seq`; returns the bytes and the head.
    fn records(first_seq: u64, prev: &str, runs: &[(&str, &str)]) -> (Vec<u8>, String) {
        let mut prev = prev.to_owned();
        let mut bytes = Vec::new();
        let mut seq = first_seq;
        for (i, (fingerprint, status)) in runs.iter().enumerate() {
            let mut intent = AuditEvent::new(EventKind::Intent);
            intent.attempt_id = Some(format!("{first_seq}-{i}"));
            intent.op = Some(OperationRecord {
                kind: "db.migrate".into(),
                target: None,
                env: "staging".into(),
                tier: Tier::Staging,
                decided_by: "test".into(),
                fingerprint: Some((*fingerprint).into()),
                batch: Vec::new(),
            });
            let mut outcome = intent.clone();
            outcome.kind = EventKind::Outcome;
            outcome.outcome = Some(OutcomeRecord {
                status: (*status).into(),
                duration_ms: 1,
                error: None,
                exit_code: None,
                rows: None,
                lock_lost: None,
            });
            for event in [intent, outcome] {
                let envelope = Envelope {
                    log_id: "log".into(),
                    seq,
                    ts: Timestamp::from_unix_micros(1_800_000_000_000_000 + seq as i64),
                    host: "h".into(),
                    pid: 1,
                };
                let (line, hash) = encode_record(&envelope, &event, &prev).unwrap();
                bytes.extend_from_slice(&line);
                prev = hash;
                seq += 1;
            }
        }
        (bytes, prev)
    }

    #[test]
    fn a_rotated_set_is_read_whole_and_only_when_it_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        let (old, head) = records(1, GENESIS_PREV, &[("a", "ok"), ("b", "failed")]);
        let (current, _) = records(5, &head, &[("c", "ok")]);
        std::fs::write(dir.path().join("audit.jsonl.1"), &old).unwrap();
        std::fs::write(&log, &current).unwrap();
        let trail =
            read_verified(&TrailSource::File(log.clone()), VerifyOptions::default()).unwrap();
        assert_eq!(trail.report.records, 6);
        let ok: Vec<_> = trail
            .attempts
            .iter()
            .filter(|a| a.succeeded())
            .map(|a| a.op.fingerprint.clone().unwrap())
            .collect();
        assert_eq!(ok, ["a", "c"]);
        assert_eq!(trail.attempts.len(), 3);

        // One byte changed in the rotated file: no evidence, and no attempts.
        let mut tampered = old.clone();
        let at = tampered.windows(4).position(|w| w == b"\"ok\"").unwrap();
        tampered[at + 1] = b'O';
        std::fs::write(dir.path().join("audit.jsonl.1"), &tampered).unwrap();
        let refused =
            read_verified(&TrailSource::File(log.clone()), VerifyOptions::default()).unwrap_err();
        assert_eq!(refused.exit_code(), ExitCode::AuditUnavailable);
        let text = refused.to_string();
        assert!(text.contains("does not verify (tampered at "), "{text}");
        assert!(
            text.contains("run `prodguard audit verify --log "),
            "{text}"
        );
        assert!(matches!(
            refused,
            TrailError::Unverified { verify_code: 1, .. }
        ));
    }

    #[test]
    fn records_are_bound_to_the_verified_head() {
        let (bytes, head) = records(1, GENESIS_PREV, &[("a", "ok"), ("b", "ok")]);
        let report_of = |records: u64, head_seq: u64, head_hash: &str| {
            let mut report = VerifyReport::start(None);
            report.records = records;
            report.head_seq = head_seq;
            report.head_hash = head_hash.to_owned();
            report
        };
        let read = |report: &VerifyReport, bytes: &[u8]| {
            let mut bound = Bound::new("t", "c", report);
            for line in bytes.split_inclusive(|b| *b == b'\n') {
                if bound.push(line)? {
                    break;
                }
            }
            bound.finish("t".into(), report.clone())
        };
        // Up to the head, and no further: a record appended since is not read.
        let at_two = {
            let (first, hash) = records(1, GENESIS_PREV, &[("a", "ok")]);
            assert!(bytes.starts_with(&first));
            report_of(2, 2, &hash)
        };
        let trail = read(&at_two, &bytes).unwrap();
        assert_eq!(trail.attempts.len(), 1);
        assert!(promotion::attempts(&[]).is_empty());
        // The whole log.
        assert_eq!(
            read(&report_of(4, 4, &head), &bytes)
                .unwrap()
                .attempts
                .len(),
            2
        );
        // Another head with the same seq: changed.
        let other = "0".repeat(63) + "1";
        let changed = read(&report_of(4, 4, &other), &bytes).unwrap_err();
        assert!(matches!(changed, TrailError::Changed { .. }), "{changed}");
        // Shorter than what verified: changed.
        let short = read(&report_of(6, 6, &head), &bytes).unwrap_err();
        assert!(
            short
                .to_string()
                .contains("it ends at record 4; the verified head is record 6"),
            "{short}"
        );
        // A set that now starts elsewhere than what verified: changed.
        let (later, _) = records(3, &head, &[("c", "ok")]);
        let moved = read(&report_of(2, 4, &head), &later).unwrap_err();
        assert!(
            moved.to_string().contains("it starts at record 3, not 1"),
            "{moved}"
        );
    }
}
