//! `prodguard audit …`: verify, repair, show, head, seal, prune, record.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use prodguard::audit::{
    Anchor, AnchorCheck, AuditSink, FileSink, PruneError, PruneOutcome, RepairError, RepairOutcome,
    VerifyOptions, VerifyReport, init_key_file, key_to_text, prune_log, read_key_file, repair_log,
    verify_log,
};
use prodguard::{Guard, GuardError, Operation, RunError, config};
use prodguard_core::ExitCode as Refusal;
use prodguard_core::audit::{AuditEvent, Record};
use prodguard_core::session::PRUNE_OPERATION;

use prodguard::Policy;

use serde_json::json;

use super::{load_policy, to_json, token_hint};
use crate::cli::{AuditCommand, LogArg};
use crate::envelope::{self, Envelope};

fn log_path(log: &LogArg, policy: Option<&PathBuf>) -> Result<PathBuf, GuardError> {
    match &log.log {
        Some(path) => Ok(path.clone()),
        None => policy_log_path(&load_policy(policy)?),
    }
}

fn policy_log_path(policy: &Policy) -> Result<PathBuf, GuardError> {
    config::audit_log_path(policy).ok_or_else(|| {
        let why = if policy.audit().sink.is_some() {
            "the policy keeps the audit trail in PostgreSQL ([audit] sink) and names no file"
        } else {
            "no audit log is configured"
        };
        GuardError::Policy(format!("{why}; pass --log PATH"))
    })
}

fn verify(path: &Path, options: VerifyOptions<'_>) -> Result<VerifyReport, Envelope> {
    verify_log(path, options).map_err(|e| {
        envelope::error(
            Refusal::AuditUnavailable.code(),
            format!("cannot read audit log {}: {e}", path.display()),
        )
        .told()
    })
}

/// An anchor file: what `audit head` prints, or its `--json` envelope.
fn read_anchor(path: &Path) -> Result<Anchor, GuardError> {
    let text = prodguard::small_file::read_to_string(path, prodguard::small_file::KEY_MAX_BYTES)
        .map_err(|e| GuardError::Policy(format!("cannot read anchor {}: {e}", path.display())))?;
    let not_an_anchor = |e: serde_json::Error| {
        GuardError::Policy(format!(
            "{}: not an anchor from `prodguard audit head`: {e}",
            path.display()
        ))
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(not_an_anchor)?;
    let anchor = match value.pointer("/ok/anchor") {
        Some(inner) => inner.clone(),
        None => value,
    };
    serde_json::from_value(anchor).map_err(not_an_anchor)
}

/// `verify`'s answer: the report, "ok" when intact, else the error's data
/// beside the line people read.
fn verified(path: &Path, report: &VerifyReport, json: bool) -> Envelope {
    let line = report_line(path, report);
    if !json {
        say!("{line}");
    }
    let data = report_json(path, report);
    match report.exit_code() {
        0 => envelope::ok(data),
        code => envelope::error(code, line).with_data(data),
    }
}

pub(crate) fn run(command: AuditCommand, policy: Option<&PathBuf>) -> Result<Envelope, GuardError> {
    match command {
        AuditCommand::Verify {
            log,
            anchor,
            seal_key,
            seal_every,
            postgres,
            json,
        } => {
            let anchor = anchor.as_deref().map(read_anchor).transpose()?;
            // In fleet mode the policy's trail is what `verify` checks,
            // unless a file is named.
            let postgres = match (postgres, &log.log, &seal_key) {
                (Some(url), _, _) => Some(url),
                (None, None, None) => load_policy(policy)?.audit().sink.clone(),
                _ => None,
            };
            if let Some(url) = postgres {
                let server = prodguard::pg::PgServer::parse(&url)
                    .map_err(|e| GuardError::Policy(e.to_string()))?;
                return Ok(match prodguard::pg::verify(&server, anchor.as_ref()) {
                    Ok(report) => verified(Path::new(server.name()), &report, json),
                    Err(e) => envelope::error(
                        Refusal::AuditUnavailable.code(),
                        format!("cannot read the audit trail: {e}"),
                    )
                    .told(),
                });
            }
            let path = log_path(&log, policy)?;
            let seal_key = seal_key
                .as_deref()
                .map(read_key_file)
                .transpose()
                .map_err(|e| GuardError::Policy(e.to_string()))?;
            // How often the writers seal, as the policy that has them seal
            // says (only worth asking with a key to check seals with).
            let seal_every = match (seal_every, &seal_key) {
                (Some(every), _) => Some(every),
                (None, Some(_)) => load_policy(policy)?.audit().sealed_every(),
                (None, None) => None,
            };
            let options = VerifyOptions {
                anchor: anchor.as_ref(),
                seal_key: seal_key.as_ref(),
                seal_every,
            };
            Ok(match verify(&path, options) {
                Ok(report) => verified(&path, &report, json),
                Err(unavailable) => unavailable,
            })
        }
        AuditCommand::Repair { log, json } => {
            let path = log_path(&log, policy)?;
            // The recovery record is sealed as the policy's writers seal.
            let sink = FileSink::from_policy(&path, &load_policy(policy)?);
            let shown = path.display();
            let (line, value) = match repair_log(&sink) {
                Ok(RepairOutcome::Intact) => (
                    format!("{shown}: nothing to repair"),
                    json!({ "repaired": "nothing" }),
                ),
                Ok(RepairOutcome::NewlineRestored { recovery_seq }) => (
                    format!(
                        "{shown}: the final record was whole but had lost its newline; restored it, nothing cut; recovery recorded as seq {recovery_seq}"
                    ),
                    json!({ "repaired": "newline_restored", "recovery_seq": recovery_seq }),
                ),
                Ok(RepairOutcome::Cut {
                    bytes,
                    saved_to,
                    recovery_seq,
                }) => (
                    format!(
                        "{shown}: cut an incomplete final record of {bytes} bytes (saved at {}); recovery recorded as seq {recovery_seq}",
                        saved_to.display()
                    ),
                    json!({
                        "repaired": "cut",
                        "cut_bytes": bytes,
                        "saved_to": saved_to,
                        "recovery_seq": recovery_seq,
                    }),
                ),
                Err(e @ RepairError::Damaged(_)) => {
                    return Ok(envelope::error(1, format!("{shown}: {e}")).told());
                }
                Err(e) => {
                    return Ok(envelope::error(
                        Refusal::AuditUnavailable.code(),
                        format!("{shown}: {e}"),
                    )
                    .told());
                }
            };
            if !json {
                say!("{line}");
            }
            Ok(envelope::ok(with_log(&path, value)))
        }
        AuditCommand::Show { log, json, jsonl } => {
            let path = log_path(&log, policy)?;
            let file = match prodguard::small_file::open_regular_read(&path) {
                Ok(file) => file,
                Err(e) => {
                    return Ok(envelope::error(
                        Refusal::AuditUnavailable.code(),
                        format!("cannot read audit log {}: {e}", path.display()),
                    )
                    .told());
                }
            };
            // Under --json the records are gathered into the one document;
            // otherwise they stream, line by line.
            let mut records = Vec::new();
            for line in BufReader::new(file).split(b'\n') {
                if crate::output::lost() {
                    break;
                }
                let line = line
                    .map_err(|e| GuardError::Policy(format!("reading {}: {e}", path.display())))?;
                if json {
                    records.push(serde_json::from_slice(&line).unwrap_or_else(
                        |_| json!({ "unreadable": String::from_utf8_lossy(&line) }),
                    ));
                } else if jsonl {
                    say!("{}", String::from_utf8_lossy(&line));
                } else {
                    say!("{}", summarize(&line));
                }
            }
            Ok(envelope::ok(with_log(&path, json!({ "records": records }))))
        }
        AuditCommand::Head { log, json } => {
            let path = log_path(&log, policy)?;
            let report = match verify(&path, VerifyOptions::default()) {
                Ok(report) => report,
                Err(unavailable) => return Ok(unavailable),
            };
            if !report.intact() {
                let line = report_line(&path, &report);
                if !json {
                    say!("{line}");
                }
                return Ok(envelope::error(
                    report.exit_code(),
                    format!("no anchor for a log that does not verify: {line}"),
                )
                .with_data(report_json(&path, &report))
                .told());
            }
            match report.head_anchor() {
                Some(anchor) => {
                    if !json {
                        let text = serde_json::to_string(&anchor)
                            .map_err(|e| GuardError::Policy(e.to_string()))?;
                        say!("{text}");
                    }
                    Ok(envelope::ok(with_log(
                        &path,
                        json!({ "anchor": to_json(&anchor)? }),
                    )))
                }
                None => Ok(envelope::error(
                    Refusal::AuditUnavailable.code(),
                    format!("{} has no records yet", path.display()),
                )
                .told()),
            }
        }
        AuditCommand::SealInit { key_file, json } => {
            let key_file = match key_file {
                Some(path) => path,
                None => load_policy(policy)?
                    .audit()
                    .seal_key_file
                    .clone()
                    .map(PathBuf::from)
                    .ok_or_else(|| {
                        GuardError::Policy(
                            "no seal key file: pass --key-file or set [audit] seal_key_file".into(),
                        )
                    })?,
            };
            match init_key_file(&key_file) {
                Ok(key) => {
                    let text = key_to_text(&key);
                    if !json {
                        say_raw!("{text}");
                    }
                    let above = if json {
                        "\"verification_key\""
                    } else {
                        "the line above"
                    };
                    tell!(
                        "prodguard: seal key created at {}; {above} is the verification key: \
                         store it off this host and check seals with `prodguard audit verify --seal-key FILE`",
                        key_file.display()
                    );
                    Ok(envelope::ok(json!({
                        "key_file": key_file,
                        "verification_key": text.trim_end(),
                    })))
                }
                Err(e) => {
                    Ok(envelope::error(Refusal::AuditUnavailable.code(), e.to_string()).told())
                }
            }
        }
        AuditCommand::Seal { log, json } => {
            let path = log_path(&log, policy)?;
            let policy = load_policy(policy)?;
            match FileSink::from_policy(&path, &policy).seal_now() {
                Ok(seq) => {
                    if !json {
                        say!("{seq}");
                    }
                    Ok(envelope::ok(with_log(&path, json!({ "seq": seq }))))
                }
                Err(e) => {
                    Ok(envelope::error(Refusal::AuditUnavailable.code(), e.to_string()).told())
                }
            }
        }
        AuditCommand::Prune { log, before, json } => {
            let path = log_path(&log, policy)?;
            let policy = load_policy(policy)?;
            // The prune record is written (and sealed) as the policy's writers write.
            let sink = FileSink::from_policy(&path, &policy);
            // Dropping records is itself guarded: confirmed where the policy
            // says, and recorded in the policy's log.
            let guard = Guard::builder().policy(policy).build()?;
            let target = path.to_string_lossy().into_owned();
            let pruned = guard
                .operation(PRUNE_OPERATION)
                .target(&target)
                .run(|| prune_log(&sink, before));
            let shown = path.display();
            let (line, value) = match pruned {
                Ok(PruneOutcome::Nothing { start_seq }) => (
                    format!(
                        "{shown}: nothing to prune: no rotated file holds only records before {before} (the log starts at record {start_seq})"
                    ),
                    json!({ "pruned": [], "start_seq": start_seq }),
                ),
                Ok(PruneOutcome::Pruned {
                    files,
                    first_seq,
                    last_seq,
                    record_seq,
                }) => (
                    format!(
                        "{shown}: pruned {} rotated file(s), records {first_seq}..{last_seq}; recorded as seq {record_seq}, from which `prodguard audit verify` checks the log from record {}",
                        files.len(),
                        last_seq + 1
                    ),
                    json!({
                        "pruned": files,
                        "first_seq": first_seq,
                        "last_seq": last_seq,
                        "record_seq": record_seq,
                        "start_seq": last_seq + 1,
                    }),
                ),
                Err(RunError::Refused(e)) => {
                    let refused = envelope::error(e.exit_code().code(), e.to_string()).told();
                    let operation = Operation::new(PRUNE_OPERATION).with_target(&target);
                    if let Some(hint) = token_hint(&guard, &operation, &e, "in PRODGUARD_APPROVAL")
                    {
                        tell!("  {hint}");
                    }
                    return Ok(refused);
                }
                Err(RunError::Failed(e)) => {
                    let code = match e {
                        PruneError::Damaged(_) => 1,
                        PruneError::TornTail => 2,
                        PruneError::InsideFile { .. }
                        | PruneError::LiveFile { .. }
                        | PruneError::TokenUnexpired { .. } => Refusal::PolicyError.code(),
                        _ => Refusal::AuditUnavailable.code(),
                    };
                    return Ok(envelope::error(code, format!("{shown}: {e}")).told());
                }
            };
            if !json {
                say!("{line}");
            }
            Ok(envelope::ok(with_log(&path, value)))
        }
        AuditCommand::Record { log, message, json } => {
            let mut event = AuditEvent::note(message);
            event.actor = Some(prodguard::facts::current_actor());
            let policy = load_policy(policy)?;
            let appended = if policy.audit().sink.is_some() {
                // Fleet mode: the shared trail, and the file too if one is named.
                let mut builder = Guard::builder().policy(policy);
                if let Some(path) = log.log {
                    builder = builder.audit_log(path);
                }
                builder.build()?.audit_sink().append(&event)
            } else {
                let path = match log.log {
                    Some(path) => path,
                    None => policy_log_path(&policy)?,
                };
                FileSink::from_policy(&path, &policy).append(&event)
            };
            match appended {
                Ok(receipt) => {
                    if !json {
                        say!("{}", receipt.seq);
                    }
                    Ok(envelope::ok(json!({ "seq": receipt.seq })))
                }
                Err(e) => {
                    Ok(envelope::error(Refusal::AuditUnavailable.code(), e.to_string()).told())
                }
            }
        }
    }
}

/// `value` with `"log": path` added.
fn with_log(path: &Path, mut value: serde_json::Value) -> serde_json::Value {
    if let Some(object) = value.as_object_mut() {
        object.insert("log".into(), json!(path));
    }
    value
}

/// What `verify` found, for `--json`.
fn report_json(path: &Path, report: &VerifyReport) -> serde_json::Value {
    let anchor = report.anchor.as_ref().map(|check| match check {
        AnchorCheck::Reached => json!("reached"),
        AnchorCheck::NotReached => json!("not_reached"),
        AnchorCheck::Mismatch(why) => json!({ "mismatch": why }),
        AnchorCheck::Pruned { start_seq } => json!({ "pruned": { "start_seq": start_seq } }),
        // A kind this CLI does not know yet still says it is not reached.
        _ => json!("unknown"),
    });
    json!({
        "log": path,
        "intact": report.intact(),
        "records": report.records,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "log_id": report.log_id,
        "total_bytes": report.total_bytes,
        "damage": report.damage.as_ref().map(|d| json!({
            "file": d.file,
            "line": d.line,
            "offset": d.offset,
            "expected_seq": d.expected_seq,
            "problem": d.problem,
        })),
        "torn_tail_bytes": report.torn_tail_bytes,
        "torn_tail_is_record": report.torn_tail_is_record,
        "anchor": anchor,
        "seals": report.seals,
        "unsealed_tail": report.unsealed_tail,
        "pruned": report.pruned.as_ref().map(|p| json!({
            "start_seq": p.start_seq,
            "by_seq": p.by_seq,
        })),
    })
}

/// What `verify` found, in one line for people.
fn report_line(path: &Path, report: &VerifyReport) -> String {
    let path = path.display();
    if let Some(damage) = report.damage.as_ref().filter(|d| d.line == 0) {
        return format!(
            "{path}: TAMPERED: {}; {} records verified",
            damage.problem, report.records
        );
    }
    if let Some(damage) = &report.damage {
        return format!(
            "{path}: TAMPERED: {} line {} (byte {}, expected seq {}): {}; {} records verified before it",
            damage.file.display(),
            damage.line,
            damage.offset,
            damage.expected_seq,
            damage.problem,
            report.records
        );
    }
    if let Some(AnchorCheck::Mismatch(why)) = &report.anchor {
        return format!("{path}: TAMPERED: {why}");
    }
    if report.torn_tail_bytes > 0 && report.torn_tail_is_record {
        return format!(
            "{path}: {} records verified, then a whole final record that lacks only its newline \
             (a crash mid-write); `prodguard audit repair` restores the newline, cutting nothing",
            report.records
        );
    }
    if report.torn_tail_bytes > 0 {
        return format!(
            "{path}: {} records verified, then an incomplete final record of {} bytes (a crash mid-write); `prodguard audit repair` cuts it",
            report.records, report.torn_tail_bytes
        );
    }
    if let Some(unsealed) = report.unsealed_tail.filter(|&n| n > 0) {
        return format!(
            "{path}: {} records verify with {} seals, but the last {unsealed} are not sealed yet \
             (`prodguard audit seal` seals them)",
            report.records, report.seals
        );
    }
    if let Some(AnchorCheck::Pruned { start_seq }) = report.anchor {
        return format!(
            "{path}: {} records verify, but the anchor's record was pruned (the log now starts at record {start_seq}), so it cannot be checked; take a new anchor with `prodguard audit head`",
            report.records
        );
    }
    if report.anchor == Some(AnchorCheck::NotReached) {
        return format!(
            "{path}: {} records verify, but the log ends before the anchor: it was truncated or rolled back",
            report.records
        );
    }
    let seals = if report.unsealed_tail.is_some() {
        format!(", {} seals verified", report.seals)
    } else {
        String::new()
    };
    let anchor = if report.anchor.is_some() {
        ", anchor reached"
    } else {
        ""
    };
    let pruned = report
        .pruned
        .as_ref()
        .map(|p| {
            format!(
                " from record {} (those before it pruned, as record {} says)",
                p.start_seq, p.by_seq
            )
        })
        .unwrap_or_default();
    format!(
        "{path}: intact, {} records{pruned}, head {}{anchor}{seals}",
        report.records, report.head_hash
    )
}

/// One line per record for people: seq, time, kind, who, what, result.
/// Every text field is escaped: actor and environment names come from the
/// environment, and a log's bytes from whoever could write it.
fn summarize(line: &[u8]) -> String {
    let e = |text: &str| prodguard_core::text::escape(text).into_owned();
    let Ok(record) = serde_json::from_slice::<Record>(line) else {
        return format!("(unreadable) {}", e(&String::from_utf8_lossy(line)));
    };
    let event = &record.event;
    let mut parts = vec![
        format!("{:>6}", record.seq),
        e(&record.ts),
        format!("{:<8}", format!("{:?}", event.kind).to_lowercase()),
    ];
    if let Some(actor) = &event.actor {
        parts.push(format!("{} ({})", e(&actor.user), actor.kind.as_str()));
    }
    if let Some(op) = &event.op {
        let target = op
            .target
            .as_deref()
            .map(|t| format!(" on {}", e(t)))
            .unwrap_or_default();
        parts.push(format!("{}{target} in {}", e(&op.kind), e(&op.env)));
    }
    if let Some(decision) = &event.decision {
        let code = decision
            .exit_code
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        parts.push(format!("{}{code}", e(&decision.result)));
    }
    if let Some(outcome) = &event.outcome {
        let code = outcome
            .exit_code
            .map(|c| format!(" exit {c}"))
            .unwrap_or_default();
        parts.push(format!(
            "{}{code} in {} ms",
            e(&outcome.status),
            outcome.duration_ms
        ));
    }
    if let Some(confirm) = &event.confirm {
        let by = confirm.approver.as_deref().unwrap_or("?");
        parts.push(format!("confirmed by {} ({})", e(by), e(&confirm.method)));
    }
    if let Some(backup) = &event.backup {
        parts.push(format!(
            "backup {} sha256:{}",
            e(&backup.location),
            e(&backup.sha256)
        ));
    }
    if let Some(message) = &event.message {
        parts.push(format!("\"{}\"", e(message)));
    }
    parts.join("  ")
}
