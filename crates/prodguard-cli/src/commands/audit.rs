//! `prodguard audit …`: verify, repair, show, head, record.

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

use super::{load_policy, token_hint};
use crate::cli::{AuditCommand, LogArg};

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

fn verify(path: &Path, options: VerifyOptions<'_>) -> Result<VerifyReport, i32> {
    verify_log(path, options).map_err(|e| {
        tell!("prodguard: cannot read audit log {}: {e}", path.display());
        Refusal::AuditUnavailable.code()
    })
}

fn read_anchor(path: &Path) -> Result<Anchor, GuardError> {
    let text = prodguard::small_file::read_to_string(path, prodguard::small_file::KEY_MAX_BYTES)
        .map_err(|e| GuardError::Policy(format!("cannot read anchor {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        GuardError::Policy(format!(
            "{}: not an anchor from `prodguard audit head`: {e}",
            path.display()
        ))
    })
}

pub(crate) fn run(command: AuditCommand, policy: Option<&PathBuf>) -> Result<i32, GuardError> {
    match command {
        AuditCommand::Verify {
            log,
            anchor,
            seal_key,
            seal_every,
            postgres,
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
                let report = match prodguard::pg::verify(&server, anchor.as_ref()) {
                    Ok(report) => report,
                    Err(e) => {
                        tell!("prodguard: cannot read the audit trail: {e}");
                        return Ok(Refusal::AuditUnavailable.code());
                    }
                };
                print_report(Path::new(server.name()), &report);
                return Ok(report.exit_code());
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
            let report = match verify(&path, options) {
                Ok(report) => report,
                Err(code) => return Ok(code),
            };
            print_report(&path, &report);
            Ok(report.exit_code())
        }
        AuditCommand::Repair { log } => {
            let path = log_path(&log, policy)?;
            // The recovery record is sealed as the policy's writers seal.
            let sink = FileSink::from_policy(&path, &load_policy(policy)?);
            match repair_log(&sink) {
                Ok(RepairOutcome::Intact) => {
                    say!("{}: nothing to repair", path.display());
                    Ok(0)
                }
                Ok(RepairOutcome::NewlineRestored { recovery_seq }) => {
                    say!(
                        "{}: the final record was whole but had lost its newline; restored it, nothing cut; recovery recorded as seq {recovery_seq}",
                        path.display()
                    );
                    Ok(0)
                }
                Ok(RepairOutcome::Cut {
                    bytes,
                    saved_to,
                    recovery_seq,
                }) => {
                    say!(
                        "{}: cut an incomplete final record of {bytes} bytes (saved at {}); recovery recorded as seq {recovery_seq}",
                        path.display(),
                        saved_to.display()
                    );
                    Ok(0)
                }
                Err(e @ RepairError::Damaged(_)) => {
                    tell!("prodguard: {}: {e}", path.display());
                    Ok(1)
                }
                Err(e) => {
                    tell!("prodguard: {}: {e}", path.display());
                    Ok(Refusal::AuditUnavailable.code())
                }
            }
        }
        AuditCommand::Show { log, json } => {
            let path = log_path(&log, policy)?;
            let file = match prodguard::small_file::open_regular_read(&path) {
                Ok(file) => file,
                Err(e) => {
                    tell!("prodguard: cannot read audit log {}: {e}", path.display());
                    return Ok(Refusal::AuditUnavailable.code());
                }
            };
            for line in BufReader::new(file).split(b'\n') {
                if crate::output::lost() {
                    break;
                }
                let line = line
                    .map_err(|e| GuardError::Policy(format!("reading {}: {e}", path.display())))?;
                if json {
                    say!("{}", String::from_utf8_lossy(&line));
                } else {
                    say!("{}", summarize(&line));
                }
            }
            Ok(0)
        }
        AuditCommand::Head { log } => {
            let path = log_path(&log, policy)?;
            let report = match verify(&path, VerifyOptions::default()) {
                Ok(report) => report,
                Err(code) => return Ok(code),
            };
            if !report.intact() {
                print_report(&path, &report);
                tell!("prodguard: no anchor for a log that does not verify");
                return Ok(report.exit_code());
            }
            match report.head_anchor() {
                Some(anchor) => {
                    let text = serde_json::to_string(&anchor)
                        .map_err(|e| GuardError::Policy(e.to_string()))?;
                    say!("{text}");
                    Ok(0)
                }
                None => {
                    tell!("prodguard: {} has no records yet", path.display());
                    Ok(Refusal::AuditUnavailable.code())
                }
            }
        }
        AuditCommand::SealInit { key_file } => {
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
                    say_raw!("{}", key_to_text(&key));
                    tell!(
                        "prodguard: seal key created at {}; the line above is the verification key: \
                         store it off this host and check seals with `prodguard audit verify --seal-key FILE`",
                        key_file.display()
                    );
                    Ok(0)
                }
                Err(e) => {
                    tell!("prodguard: {e}");
                    Ok(Refusal::AuditUnavailable.code())
                }
            }
        }
        AuditCommand::Seal { log } => {
            let path = log_path(&log, policy)?;
            let policy = load_policy(policy)?;
            match FileSink::from_policy(&path, &policy).seal_now() {
                Ok(seq) => {
                    say!("{seq}");
                    Ok(0)
                }
                Err(e) => {
                    tell!("prodguard: {e}");
                    Ok(Refusal::AuditUnavailable.code())
                }
            }
        }
        AuditCommand::Prune { log, before } => {
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
            match pruned {
                Ok(PruneOutcome::Nothing { start_seq }) => {
                    say!(
                        "{}: nothing to prune: no rotated file holds only records before {before} (the log starts at record {start_seq})",
                        path.display()
                    );
                    Ok(0)
                }
                Ok(PruneOutcome::Pruned {
                    files,
                    first_seq,
                    last_seq,
                    record_seq,
                }) => {
                    say!(
                        "{}: pruned {} rotated file(s), records {first_seq}..{last_seq}; recorded as seq {record_seq}, from which `prodguard audit verify` checks the log from record {}",
                        path.display(),
                        files.len(),
                        last_seq + 1
                    );
                    Ok(0)
                }
                Err(RunError::Refused(e)) => {
                    tell!("prodguard: {e}");
                    let operation = Operation::new(PRUNE_OPERATION).with_target(&target);
                    if let Some(hint) = token_hint(&guard, &operation, &e, "in PRODGUARD_APPROVAL")
                    {
                        tell!("  {hint}");
                    }
                    Ok(e.exit_code().code())
                }
                Err(RunError::Failed(e)) => {
                    tell!("prodguard: {}: {e}", path.display());
                    Ok(match e {
                        PruneError::Damaged(_) => 1,
                        PruneError::TornTail => 2,
                        PruneError::InsideFile { .. }
                        | PruneError::LiveFile { .. }
                        | PruneError::TokenUnexpired { .. } => Refusal::PolicyError.code(),
                        _ => Refusal::AuditUnavailable.code(),
                    })
                }
            }
        }
        AuditCommand::Record { log, message } => {
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
                    say!("{}", receipt.seq);
                    Ok(0)
                }
                Err(e) => {
                    tell!("prodguard: {e}");
                    Ok(Refusal::AuditUnavailable.code())
                }
            }
        }
    }
}

fn print_report(path: &Path, report: &VerifyReport) {
    let path = path.display();
    if let Some(damage) = report.damage.as_ref().filter(|d| d.line == 0) {
        say!(
            "{path}: TAMPERED: {}; {} records verified",
            damage.problem,
            report.records
        );
        return;
    }
    if let Some(damage) = &report.damage {
        say!(
            "{path}: TAMPERED: {} line {} (byte {}, expected seq {}): {}; {} records verified before it",
            damage.file.display(),
            damage.line,
            damage.offset,
            damage.expected_seq,
            damage.problem,
            report.records
        );
        return;
    }
    if let Some(AnchorCheck::Mismatch(why)) = &report.anchor {
        say!("{path}: TAMPERED: {why}");
        return;
    }
    if report.torn_tail_bytes > 0 && report.torn_tail_is_record {
        say!(
            "{path}: {} records verified, then a whole final record that lacks only its newline \
             (a crash mid-write); `prodguard audit repair` restores the newline, cutting nothing",
            report.records
        );
        return;
    }
    if report.torn_tail_bytes > 0 {
        say!(
            "{path}: {} records verified, then an incomplete final record of {} bytes (a crash mid-write); `prodguard audit repair` cuts it",
            report.records,
            report.torn_tail_bytes
        );
        return;
    }
    if let Some(unsealed) = report.unsealed_tail.filter(|&n| n > 0) {
        say!(
            "{path}: {} records verify with {} seals, but the last {unsealed} are not sealed yet \
             (`prodguard audit seal` seals them)",
            report.records,
            report.seals
        );
        return;
    }
    if let Some(AnchorCheck::Pruned { start_seq }) = report.anchor {
        say!(
            "{path}: {} records verify, but the anchor's record was pruned (the log now starts at record {start_seq}), so it cannot be checked; take a new anchor with `prodguard audit head`",
            report.records
        );
        return;
    }
    if report.anchor == Some(AnchorCheck::NotReached) {
        say!(
            "{path}: {} records verify, but the log ends before the anchor: it was truncated or rolled back",
            report.records
        );
        return;
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
    say!(
        "{path}: intact, {} records{pruned}, head {}{anchor}{seals}",
        report.records,
        report.head_hash
    );
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
