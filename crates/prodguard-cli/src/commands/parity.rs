//! `prodguard parity`: what succeeded in one audit trail and never in the
//! other. The trails are read by `prodguard::trail` (verified first) and
//! compared by the core's `promotion::parity`; this prints the report.

use prodguard::GuardError;
use prodguard::audit::VerifyOptions;
use prodguard::trail::{TrailSource, VerifiedTrail, read_verified};
use prodguard_core::promotion::{Attempt, ParityEntry, parity, show_time};
use prodguard_core::text::escape;
use serde_json::json;

use super::to_json;
use crate::envelope::{self, Envelope};

/// One side of the comparison: a trail, and the environment kept of it.
pub(crate) struct Side<'a> {
    pub(crate) trail: &'a str,
    pub(crate) env: Option<&'a str>,
}

/// A side read: the trail, and its attempts (those of `env` when given).
struct Read {
    trail: VerifiedTrail,
    env: Option<String>,
    attempts: Vec<Attempt>,
}

fn read(side: &Side<'_>) -> Result<Read, Envelope> {
    let trail = read_verified(&TrailSource::parse(side.trail), VerifyOptions::default())
        .map_err(|e| envelope::error(e.exit_code().code(), e.to_string()).told())?;
    let attempts = trail
        .attempts
        .iter()
        .filter(|a| side.env.is_none_or(|env| a.ran_in(env)))
        .cloned()
        .collect();
    Ok(Read {
        trail,
        env: side.env.map(str::to_owned),
        attempts,
    })
}

pub(crate) fn run(from: Side<'_>, to: Side<'_>, json: bool) -> Result<Envelope, GuardError> {
    let from = match read(&from) {
        Ok(read) => read,
        Err(refused) => return Ok(refused),
    };
    let to = match read(&to) {
        Ok(read) => read,
        Err(refused) => return Ok(refused),
    };
    let report = parity(&from.attempts, &to.attempts);
    if !json {
        say!("from: {}", heading(&from));
        say!("to:   {}", heading(&to));
        section("In TO, never succeeded in FROM", &report.only_in_to, "FROM");
        section("In FROM, never succeeded in TO", &report.only_in_from, "TO");
        say!(
            "\nSucceeded in both: {} (operation, fingerprint) pair{}. Not compared, without a fingerprint: {} success{} in FROM, {} in TO.",
            report.in_both,
            if report.in_both == 1 { "" } else { "s" },
            report.unfingerprinted_from,
            if report.unfingerprinted_from == 1 {
                ""
            } else {
                "es"
            },
            report.unfingerprinted_to,
        );
    }
    let mut value = to_json(&report)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("from".into(), side_json(&from));
        object.insert("to".into(), side_json(&to));
    }
    Ok(envelope::ok(value))
}

/// A side for `--json`: the trail, what verified, the environment kept.
fn side_json(side: &Read) -> serde_json::Value {
    let report = &side.trail.report;
    json!({
        "trail": side.trail.name,
        "env": side.env,
        "log_id": report.log_id,
        "records": report.records,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "attempts": side.attempts.len(),
        "passed_over": side.trail.passed_over,
    })
}

/// `TRAIL: intact, N records (log ID, head seq S), A attempts [in ENV]`.
fn heading(side: &Read) -> String {
    let report = &side.trail.report;
    let env = side
        .env
        .as_deref()
        .map(|env| format!(" in {}", escape(env)))
        .unwrap_or_default();
    let log = report
        .log_id
        .as_deref()
        .map(|id| format!(" of log {}", escape(id)))
        .unwrap_or_default();
    format!(
        "{}: intact, {} records{log} to seq {}; {} guarded attempt{}{env}",
        side.trail.name,
        report.records,
        report.head_seq,
        side.attempts.len(),
        if side.attempts.len() == 1 { "" } else { "s" },
    )
}

/// One section of the report, newest first; `other` names the other side.
fn section(title: &str, entries: &[ParityEntry], other: &str) {
    say!("\n{title}: {}", entries.len());
    for entry in entries {
        let last = &entry.last;
        let item = entry
            .item
            .as_deref()
            .map(|name| format!(" (batch item {})", escape(name)))
            .unwrap_or_default();
        let target = last
            .op
            .target
            .as_deref()
            .map(|t| format!(" on {}", escape(t)))
            .unwrap_or_default();
        say!(
            "  {}  {}  {}{item}{target} in {}  ({} success{})",
            show_time(last.at()),
            escape(&entry.operation),
            escape(&entry.fingerprint),
            last.place(),
            entry.successes,
            if entry.successes == 1 { "" } else { "es" },
        );
        if let Some(outcome) = &last.outcome {
            let hash = &outcome.record.hash;
            say!(
                "      proof: log {} outcome seq {} hash {}…, intent seq {}",
                escape(&outcome.record.log_id),
                outcome.record.seq,
                escape(hash.get(..16).unwrap_or(hash)),
                last.intent.seq,
            );
        }
        if let Some(tried) = &entry.other_side {
            say!("      in {other}: {} in {}", tried.ending(), tried.place());
        }
    }
}
