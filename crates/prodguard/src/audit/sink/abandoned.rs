//! Attempts whose process died between intent and outcome (`kill -9`, a
//! power cut): the first append of a later run on this host records them
//! as `abandoned`, so no intent stays open for ever.

use std::borrow::Cow;
use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use prodguard_core::audit::{AuditEvent, EventKind, OutcomeRecord, Record};
use serde::Deserialize;

use super::{Failure, FileSink, Writer};

/// How far back from the log's end a later run looks for open intents
/// (about 80 records). Every writer looks when it first appends, so an
/// attempt left open is noted by the next run on its host unless this much
/// was written in between. Every `prodguard exec` reads it: keep it small.
const LOOK_BACK: u64 = 64 << 10;

impl FileSink {
    /// Once per sink, before its first append: appends an outcome
    /// `abandoned` for each intent near the log's end that has no outcome
    /// and whose process, on this host and in this PID namespace, no longer
    /// exists. Done under the log's lock, so two runs never note the same
    /// attempt twice. A failure is logged; the append that follows reports
    /// its own.
    pub(super) fn note_abandoned(&self) {
        if self.swept.swap(true, Ordering::Relaxed) {
            return;
        }
        let noted = self.with_locked_writer(|writer, ops| {
            let events = self.abandoned(writer).map_err(Failure::Clean)?;
            if events.is_empty() {
                return Ok(0);
            }
            self.append_batch_locked(writer, ops, &events, false)
                .map(|_| events.len())
        });
        match noted {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(attempts = n, log = %self.path.display(), "recorded attempts abandoned by processes that are gone")
            }
            Err(e) => tracing::warn!(error = %e, "could not look for abandoned attempts"),
        }
    }

    /// The outcomes to record for the open intents of dead processes in
    /// the log's last [`LOOK_BACK`] bytes. Called under the log's lock.
    fn abandoned(&self, writer: &mut Writer) -> Result<Vec<AuditEvent>, super::AuditError> {
        let len = self.refresh_head(writer)?;
        let start = len.saturating_sub(LOOK_BACK);
        let mut tail = vec![0u8; usize::try_from(len - start).unwrap_or(0)];
        writer
            .file
            .read_exact_at(&mut tail, start)
            .map_err(|e| self.io("read the log's end", e))?;
        let mut lines = tail.split(|&b| b == b'\n');
        if start > 0 {
            // Begins inside a record.
            lines.next();
        }
        // Newest first: an attempt with any later record is not open. Only
        // the few fields this needs are read from each line; the rare open
        // intent is then read whole.
        let mut closed = HashSet::new();
        let mut open = Vec::new();
        for line in lines.collect::<Vec<_>>().into_iter().rev() {
            let Ok(seen) = serde_json::from_slice::<Seen>(line) else {
                continue;
            };
            let Some(attempt) = seen.attempt_id else {
                continue;
            };
            if seen.kind == EventKind::Intent
                && !closed.contains(&attempt)
                && seen.host == self.host
                && seen.pid_ns.is_some()
                && seen.pid_ns == own_pid_ns()
                && gone(seen.pid)
                && let Ok(record) = serde_json::from_slice::<Record>(line)
            {
                open.push(record);
            }
            closed.insert(attempt);
        }
        Ok(open
            .into_iter()
            .rev()
            .map(|r| self.outcome_for(r))
            .collect())
    }

    fn outcome_for(&self, intent: Record) -> AuditEvent {
        let mut event = AuditEvent::new(EventKind::Outcome);
        event.attempt_id = intent.event.attempt_id;
        event.actor = intent.event.actor;
        event.op = intent.event.op;
        event.outcome = Some(OutcomeRecord {
            status: "abandoned".into(),
            // Nobody saw it end.
            duration_ms: 0,
            error: Some(format!(
                "found by a later run (pid {}): process {} on {}, which recorded the intent \
                 (seq {}), no longer exists and recorded no outcome; how it ended and how \
                 long it ran are unknown",
                std::process::id(),
                intent.pid,
                intent.host,
                intent.seq
            )),
            exit_code: None,
            rows: None,
            lock_lost: None,
        });
        event
    }
}

/// What the sweep reads of every record near the end: which attempt, which
/// process, and whether it is an intent.
#[derive(Deserialize)]
struct Seen<'a> {
    #[serde(borrow)]
    host: Cow<'a, str>,
    pid: u32,
    kind: EventKind,
    #[serde(borrow)]
    attempt_id: Option<Cow<'a, str>>,
    pid_ns: Option<u64>,
}

/// This process's PID namespace (the inode of `/proc/self/ns/pid`), which
/// the file sink writes into every intent: a pid names a process only in
/// its namespace, and a run in another one (a container sharing the host
/// name, `unshare -p`) cannot see whether it is alive. `None` where Linux
/// does not tell, and then nothing is ever marked.
pub(super) fn own_pid_ns() -> Option<u64> {
    static PID_NS: OnceLock<Option<u64>> = OnceLock::new();
    *PID_NS.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
    })
}

/// Whether process `pid` of this host no longer exists. Anything but a
/// clear "no such process" counts as alive (it exists, another user's, or
/// unknown): a live attempt is never marked. A reused pid hides a dead one.
fn gone(pid: u32) -> bool {
    match i32::try_from(pid) {
        Ok(pid) if pid > 0 => kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH),
        _ => false,
    }
}
