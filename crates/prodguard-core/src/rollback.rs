//! The way back: what `prodguard rollback ATTEMPT_ID` runs, and what must
//! hold before it does.
//!
//! An operation under a rule that requires `rollback` carries its way back
//! before it runs, and its intent records it ([`RollbackPlan`]): its own
//! command, or its backup, restored. [`plan`] finds that plan in a verified
//! trail's attempts and makes the guarded operation that runs it —
//! `<operation>.rollback` on the same target, linked to the attempt it
//! undoes — so it is confirmed and recorded like any protected operation.
//! A backup is restored only while its bytes are still those the intent
//! recorded ([`backup_unchanged`]): one changed after the fact is not the
//! backup that was taken.
//!
//! ```
//! use prodguard_core::audit::{BackupEvidence, RollbackPlan};
//! use prodguard_core::rollback::backup_unchanged;
//! use prodguard_core::Timestamp;
//!
//! let recorded = BackupEvidence {
//!     location: "/backups/orders.db".into(), sha256: "ab".repeat(32), bytes: 4096,
//!     created: Timestamp::from_unix_micros(0), verified: true, verification: None,
//! };
//! assert!(backup_unchanged(&recorded, &"ab".repeat(32), 4096).is_ok());
//! let changed = backup_unchanged(&recorded, &"cd".repeat(32), 4096).unwrap_err();
//! assert!(changed.contains("changed after the intent recorded it"));
//! ```

use crate::audit::{BackupEvidence, RollbackPlan};
use crate::promotion::{Attempt, short_fingerprint};
use crate::session::Operation;
use crate::text::escape;

/// What rolling an attempt back runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RollbackRun {
    /// The guarded operation: `<operation>.rollback` on the same target,
    /// with the same fingerprint, rolling back the attempt.
    pub operation: Operation,
    /// The way back its intent recorded.
    pub plan: RollbackPlan,
    /// The backup to restore, when the plan restores one.
    pub backup: Option<BackupEvidence>,
    /// The attempt it undoes.
    pub original: Attempt,
}

/// The suffix of a rollback's operation name.
pub const ROLLBACK_SUFFIX: &str = ".rollback";

/// The rollback of attempt `attempt_id` of a verified trail's `attempts`:
/// its plan, and the operation that runs it. An attempt the trail does not
/// hold, one whose records disagree, or one whose intent recorded no way
/// back (or a restore without a backup) is an error that says so.
pub fn plan(attempts: &[Attempt], attempt_id: &str) -> Result<RollbackRun, String> {
    let shown = escape(attempt_id);
    let attempt = attempts
        .iter()
        .find(|a| a.attempt_id == attempt_id)
        .ok_or_else(|| {
            format!("the trail holds no attempt `{shown}`: copy its id from the intent record")
        })?;
    if let Some(why) = &attempt.conflict {
        return Err(format!(
            "the trail's records of attempt `{shown}` disagree ({}), so its plan cannot be trusted",
            escape(why)
        ));
    }
    if let Some(by) = &attempt.rolled_back_by {
        return Err(format!(
            "attempt `{shown}` was already rolled back (attempt {}); nothing is left to undo",
            escape(by)
        ));
    }
    let plan = attempt.rollback.clone().ok_or_else(|| {
        format!(
            "the intent of attempt `{shown}` ({}) recorded no way back; undo it by hand",
            escape(&attempt.op.kind)
        )
    })?;
    let target = attempt.op.target.as_deref().unwrap_or_default();
    let path = target.strip_prefix("sqlite:").unwrap_or(target);
    if plan.restore_backup && !(crate::policy::is_postgres_url(target) || path.starts_with('/')) {
        return Err(format!(
            "the intent of attempt `{shown}` plans to restore its backup over `{}`, which is not \
             an absolute path or a postgresql:// URL, so where it would land would depend on \
             where the rollback runs; restore it by hand",
            escape(target)
        ));
    }
    let backup = match (plan.restore_backup, &attempt.backup) {
        (true, None) => {
            return Err(format!(
                "the intent of attempt `{shown}` plans to restore its backup but recorded none"
            ));
        }
        (true, Some(backup)) => Some(backup.clone()),
        (false, _) => None,
    };
    let mut operation = Operation::new(format!("{}{ROLLBACK_SUFFIX}", attempt.op.kind));
    operation.target.clone_from(&attempt.op.target);
    operation.fingerprint.clone_from(&attempt.op.fingerprint);
    operation.rolls_back = Some(attempt.attempt_id.clone());
    Ok(RollbackRun {
        operation,
        plan,
        backup,
        original: attempt.clone(),
    })
}

impl RollbackRun {
    /// The plan for people: what it undoes and how.
    pub fn describe(&self) -> String {
        let original = &self.original;
        let op = &original.op;
        let mut text = format!(
            "attempt {}: `{}`{}{} in {} {}",
            escape(&original.attempt_id),
            escape(&op.kind),
            op.target
                .as_deref()
                .map(|t| format!(" on `{}`", escape(t)))
                .unwrap_or_default(),
            op.fingerprint
                .as_deref()
                .map(|f| format!(" (fingerprint {})", short_fingerprint(f)))
                .unwrap_or_default(),
            escape(&op.env),
            original.ending(),
        );
        if let Some(command) = &self.plan.command {
            text.push_str(&format!("; its way back: run `{}`", escape(command)));
        }
        if let Some(backup) = &self.backup {
            text.push_str(&format!(
                "; its way back: restore the backup {} ({} bytes, sha256 {}) over the target",
                escape(&backup.location),
                backup.bytes,
                short_fingerprint(&backup.sha256)
            ));
        }
        text
    }
}

/// `Ok` when a backup's bytes now (`sha256`, `bytes`) are those `recorded`
/// by the intent; otherwise why it must not be restored.
pub fn backup_unchanged(recorded: &BackupEvidence, sha256: &str, bytes: u64) -> Result<(), String> {
    if recorded.sha256.eq_ignore_ascii_case(sha256) && recorded.bytes == bytes {
        return Ok(());
    }
    Err(format!(
        "the backup {} changed after the intent recorded it (sha256 {}, {} bytes; now sha256 {}, \
         {bytes} bytes), so it is not the backup that was taken and restoring it would not bring \
         back what was there; find the original, or restore by hand after checking it",
        escape(&recorded.location),
        short_fingerprint(&recorded.sha256),
        recorded.bytes,
        short_fingerprint(sha256),
    ))
}

/// The `rollback` requirement through a session, and [`plan`] on a trail.
#[cfg(test)]
mod tests {
    use crate::Timestamp;
    use crate::audit::{BackupEvidence, RollbackPlan};
    use crate::policy::Policy;
    use crate::session::{Operation, Step, in_production};

    const BOTH: &str = "[approval]\nbreak_glass_users = [\"ana\"]\n\
        [[rule]]\nname = \"way back\"\noperations = [\"db.*\"]\ntiers = [\"production\"]\n\
        require = [\"audit\", \"backup\", \"rollback\"]\nbreak_glass = true\n\
        backup = { command = \"cp {target} {path}\", verify = \"test -s {path}\" }\n";
    const ONLY: &str = "[[rule]]\nname = \"way back\"\noperations = [\"db.*\"]\n\
        tiers = [\"production\"]\nrequire = [\"audit\", \"rollback\"]\n";

    /// The intent's plan, or the refusal's code and message.
    fn run(policy: &str, operation: Operation) -> Result<RollbackPlan, (i32, String)> {
        intent(policy, operation)
            .map(|event| event.rollback.expect("the intent records the way back"))
    }

    /// The intent, or the refusal's code and message (121 "asked" when a
    /// person would be asked).
    fn intent(
        policy: &str,
        operation: Operation,
    ) -> Result<crate::audit::AuditEvent, (i32, String)> {
        let policy = Policy::parse_toml(policy, "p.toml").unwrap();
        let now = Timestamp::from_unix_micros(1_000_000_000_000_000);
        let mut session = in_production(&policy, operation, now);
        loop {
            match session.next_step() {
                Step::CheckAudit => session.audit_checked(Ok(())).unwrap(),
                Step::CheckStamp { .. } => session.stamp_checked(Ok(None)).unwrap(),
                Step::NeedBackup(_) => session
                    .answer_backup(Ok(BackupEvidence {
                        location: "/b/shop.db.backup".into(),
                        sha256: "ab".repeat(32),
                        bytes: 8192,
                        created: Timestamp::from_unix_micros(1_000_000_000_000_000),
                        verified: true,
                        verification: Some("test -s".into()),
                    }))
                    .unwrap(),
                Step::Append(event) if event.kind == crate::audit::EventKind::Intent => {
                    return Ok(event);
                }
                Step::NeedConfirmation(_) => return Err((121, "asked".into())),
                Step::Append(_) => session.appended(Ok(())).unwrap(),
                Step::Deny(denial) => return Err((denial.exit_code.code(), denial.missing)),
                other => panic!("unexpected step {other:?}"),
            }
        }
    }

    fn delete() -> Operation {
        Operation::new("db.delete").with_target("shop.db")
    }

    #[test]
    fn the_way_back_is_the_operations_own_command_else_its_backup_restored() {
        let mut own = delete();
        own.rollback = Some("./migrate down 0042".into());
        let plan = run(BOTH, own.clone()).unwrap();
        assert_eq!(plan.command.as_deref(), Some("./migrate down 0042"));
        assert!(!plan.restore_backup);
        assert_eq!(
            run(ONLY, own).unwrap().command.as_deref(),
            Some("./migrate down 0042")
        );
        let plan = run(BOTH, delete()).unwrap();
        assert!(plan.restore_backup && plan.command.is_none());
    }

    #[test]
    fn without_a_way_back_it_is_refused_before_anyone_is_asked_even_under_break_glass() {
        let (code, why) = run(ONLY, delete()).unwrap_err();
        assert_eq!(code, 125);
        assert!(why.contains("requires a way back"), "{why}");
        // Break glass skips the backup that was to be the plan.
        let mut glass = delete();
        glass.break_glass = Some("INC-1: the shop is down".into());
        let (code, why) = run(BOTH, glass.clone()).unwrap_err();
        assert_eq!(code, 125, "{why}");
        glass.rollback = Some("./restore-yesterday".into());
        assert_eq!(
            run(BOTH, glass).unwrap().command.as_deref(),
            Some("./restore-yesterday")
        );
    }

    fn attempt(rollback: Option<RollbackPlan>, backup: bool) -> crate::promotion::Attempt {
        let at = Timestamp::from_unix_micros(1_000_000_000_000_000);
        let cite = |seq| crate::promotion::Citation {
            log_id: "L".into(),
            seq,
            hash: "ab".repeat(32),
            at,
        };
        crate::promotion::Attempt {
            attempt_id: "a1".into(),
            op: crate::audit::OperationRecord {
                kind: "db.delete".into(),
                target: Some("/srv/shop.db".into()),
                env: "production".into(),
                tier: crate::Tier::Production,
                decided_by: "env:APP_ENV".into(),
                fingerprint: Some("fp".into()),
                batch: Vec::new(),
            },
            intent: cite(1),
            outcome: None,
            conflict: None,
            rollback,
            rolls_back: None,
            rolled_back_by: None,
            backup: backup.then(|| BackupEvidence {
                location: "/b/shop.db.backup".into(),
                sha256: "ab".repeat(32),
                bytes: 8192,
                created: at,
                verified: true,
                verification: None,
            }),
        }
    }

    #[test]
    fn a_plan_is_run_as_the_operations_rollback_on_its_target_linked_to_it() {
        let run =
            super::plan(&[attempt(Some(RollbackPlan::restore_backup()), true)], "a1").unwrap();
        assert_eq!(run.operation.kind, "db.delete.rollback");
        assert_eq!(run.operation.target.as_deref(), Some("/srv/shop.db"));
        assert_eq!(run.operation.fingerprint.as_deref(), Some("fp"));
        assert_eq!(run.operation.rolls_back.as_deref(), Some("a1"));
        assert_eq!(run.backup.as_ref().unwrap().location, "/b/shop.db.backup");
        assert!(
            run.describe()
                .contains("restore the backup /b/shop.db.backup")
        );
        for (attempts, id, says) in [
            (vec![attempt(None, true)], "a1", "recorded no way back"),
            (
                vec![attempt(Some(RollbackPlan::restore_backup()), false)],
                "a1",
                "recorded none",
            ),
            (
                vec![attempt(Some(RollbackPlan::command("x")), false)],
                "a2",
                "no attempt `a2`",
            ),
        ] {
            let why = super::plan(&attempts, id).unwrap_err();
            assert!(why.contains(says), "{why}");
        }
        let mut disputed = attempt(Some(RollbackPlan::command("x")), false);
        disputed.conflict = Some("a second intent has its id".into());
        assert!(
            super::plan(&[disputed], "a1")
                .unwrap_err()
                .contains("disagree")
        );
    }

    #[test]
    fn a_rollback_answers_to_the_rules_of_what_it_undoes_but_is_not_held_up_by_staged_or_rollback()
    {
        // The rule names only `db.migrate`; its rollback is confirmed too.
        let confirm = "[[rule]]\noperations = [\"db.migrate\"]\ntiers = [\"production\"]\n\
            require = [\"confirm\", \"audit\"]\n";
        let mut undo = Operation::new("db.migrate.rollback").with_target("shop.db");
        undo.rolls_back = Some("a1".into());
        assert_eq!(
            intent(confirm, undo.clone()).unwrap_err(),
            (121, "asked".into())
        );
        // Without `rolls_back` the name alone borrows nothing.
        let named = Operation::new("db.migrate.rollback").with_target("shop.db");
        assert!(intent(confirm, named).is_ok());
        // Staged and way back: what it undoes was staged, and it restores
        // the state before it.
        let strict = "[promotion]\nfrom = \"staging\"\nstaging_log = \"/s.jsonl\"\n\
            [[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\n\
            require = [\"audit\", \"staged\", \"rollback\"]\n";
        let event = intent(strict, undo).unwrap();
        assert_eq!(event.rolls_back.as_deref(), Some("a1"));
        assert!(event.promotion.is_none() && event.rollback.is_none());
        // Claiming to roll back under another name exempts nothing.
        let mut posing = Operation::new("db.migrate").with_target("shop.db");
        posing.rolls_back = Some("a1".into());
        let (code, why) = intent(strict, posing).unwrap_err();
        assert_eq!(code, 125, "{why}");
    }

    #[test]
    fn a_blank_rollback_command_is_no_way_back() {
        let mut blank = delete();
        blank.rollback = Some("  ".into());
        assert_eq!(run(ONLY, blank).unwrap_err().0, 125);
    }

    #[test]
    fn an_attempt_a_rollback_undid_is_no_success_and_is_not_rolled_back_twice() {
        use crate::audit::{
            AuditEvent, Envelope, EventKind, GENESIS_PREV, OutcomeRecord, encode_record,
        };
        let op = attempt(None, false).op;
        let mut records = Vec::new();
        let mut prev = GENESIS_PREV.to_owned();
        let mut push = |event: AuditEvent| {
            let envelope = Envelope {
                log_id: "L".into(),
                seq: records.len() as u64 + 1,
                ts: Timestamp::from_unix_micros(1_000_000_000_000_000),
                host: "h".into(),
                pid: 1,
            };
            let (line, hash) = encode_record(&envelope, &event, &prev).unwrap();
            records.push(serde_json::from_slice::<crate::audit::Record>(&line).unwrap());
            prev = hash;
        };
        for (id, kind, undoes) in [
            ("a1", "db.delete", None),
            ("r1", "db.delete.rollback", Some("a1")),
        ] {
            let mut intent = AuditEvent::new(EventKind::Intent);
            intent.attempt_id = Some(id.into());
            intent.op = Some(crate::audit::OperationRecord {
                kind: kind.into(),
                ..op.clone()
            });
            intent.rolls_back = undoes.map(str::to_owned);
            intent.rollback = Some(RollbackPlan::command("true"));
            let mut outcome = intent.clone();
            outcome.kind = EventKind::Outcome;
            outcome.outcome = Some(OutcomeRecord {
                status: "ok".into(),
                duration_ms: 1,
                error: None,
                exit_code: Some(0),
                rows: None,
                lock_lost: None,
            });
            push(intent);
            push(outcome);
        }
        let attempts = crate::promotion::attempts(&records);
        assert_eq!(attempts[0].rolled_back_by.as_deref(), Some("r1"));
        assert!(!attempts[0].succeeded());
        assert!(
            attempts[0]
                .ending()
                .contains("then was rolled back (attempt r1)")
        );
        assert!(
            super::plan(&attempts, "a1")
                .unwrap_err()
                .contains("already rolled back")
        );
    }
}
