//! Rotation by size: each new file chains to the previous file's head and
//! verify follows the whole set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use prodguard::audit::{AuditSink, FileSink, rotated_files, verify_file};
use prodguard_core::audit::AuditEvent;

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-rotate-{name}-"))
        .tempdir()
        .unwrap()
}

#[test]
fn rotated_files_chain_and_verify_as_one_log() {
    let dir = temp_dir("chain");
    let log = dir.path().join("audit.jsonl");
    let sink = FileSink::new(&log).rotating(1500);
    for i in 0..30 {
        sink.append(&AuditEvent::note(format!("n{i}"))).unwrap();
    }
    let rotated = rotated_files(&log).unwrap();
    assert!(rotated.len() >= 3, "{rotated:?}");
    assert!(
        rotated
            .iter()
            .all(|p| std::fs::metadata(p).unwrap().len() >= 1500)
    );
    let report = verify_file(&log, None).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!((report.records, report.head_seq), (30, 30));
    // The current file starts where the last rotated one ended.
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let last_rotated = std::fs::read_to_string(rotated.last().unwrap()).unwrap();
    let tail: serde_json::Value =
        serde_json::from_str(last_rotated.lines().last().unwrap()).unwrap();
    assert_eq!(first["prev"], tail["hash"]);
    assert_eq!(first["seq"].as_u64(), tail["seq"].as_u64().map(|s| s + 1));

    // Removing a rotated file in the middle, or editing one, is detected.
    let middle = &rotated[1];
    let kept = std::fs::read(middle).unwrap();
    std::fs::remove_file(middle).unwrap();
    assert_eq!(verify_file(&log, None).unwrap().exit_code(), 1);
    std::fs::write(
        middle,
        String::from_utf8(kept).unwrap().replace("\"n", "\"m"),
    )
    .unwrap();
    let report = verify_file(&log, None).unwrap();
    assert_eq!(report.exit_code(), 1);
    assert_eq!(&report.damage.unwrap().file, middle);
}

#[test]
fn concurrent_writers_across_rotations_lose_nothing() {
    let dir = temp_dir("concurrent");
    let log = dir.path().join("audit.jsonl");
    // Two sinks stand for two processes; each has four threads.
    let sinks = [
        Arc::new(FileSink::new(&log).rotating(4000)),
        Arc::new(FileSink::new(&log).rotating(4000)),
    ];
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let sink = Arc::clone(&sinks[t % 2]);
            std::thread::spawn(move || {
                for i in 0..25 {
                    sink.append(&AuditEvent::note(format!("t{t}-{i}"))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = verify_file(&log, None).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.records, 200);
    assert!(rotated_files(&log).unwrap().len() >= 5);
}

#[test]
fn a_crash_mid_rotation_does_not_read_the_live_file_twice() {
    let dir = temp_dir("midrotation");
    let log = dir.path().join("audit.jsonl");
    let sink = FileSink::new(&log).rotating(1000);
    for i in 0..10 {
        sink.append(&AuditEvent::note(format!("n{i}"))).unwrap();
    }
    let next = rotated_files(&log).unwrap().len() + 1;
    // As if a rotation died after linking the full log aside, before the rename.
    std::fs::hard_link(&log, dir.path().join(format!("audit.jsonl.{next}"))).unwrap();
    assert!(verify_file(&log, None).unwrap().intact());
    // The next rotation does not link it a second time.
    for i in 10..20 {
        sink.append(&AuditEvent::note(format!("n{i}"))).unwrap();
    }
    let report = verify_file(&log, None).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.records, 20);
}

#[test]
fn repair_refuses_when_a_rotated_file_is_damaged() {
    let dir = temp_dir("repairset");
    let log = dir.path().join("audit.jsonl");
    let sink = FileSink::new(&log).rotating(800);
    for i in 0..12 {
        sink.append(&AuditEvent::note(format!("n{i}"))).unwrap();
    }
    let first = &rotated_files(&log).unwrap()[0];
    let text = std::fs::read_to_string(first).unwrap();
    std::fs::write(first, text.replacen("\"n0\"", "\"x0\"", 1)).unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"{\"torn");
    std::fs::write(&log, &bytes).unwrap();
    let before = std::fs::read(&log).unwrap();
    assert!(prodguard::audit::repair_file(&log).is_err());
    assert_eq!(std::fs::read(&log).unwrap(), before, "nothing cut");
}

#[test]
fn prune_keeps_a_file_that_spent_an_unexpired_approval_token() {
    use prodguard::audit::{PruneError, PruneOutcome, prune_log};
    use prodguard_core::audit::{ConfirmEvidence, EventKind};

    for (exp_in, kept) in [(3600, true), (-3600, false)] {
        let dir = temp_dir("prune-token");
        let log = dir.path().join("audit.jsonl");
        let sink = FileSink::new(&log).rotating(1500);
        let mut intent = AuditEvent::new(EventKind::Intent);
        intent.confirm = Some(ConfirmEvidence {
            method: "approval".into(),
            approver: Some("alice".into()),
            token_id: Some("tok-1".into()),
            exp: Some(prodguard::facts::now().plus_seconds(exp_in)),
            max_rows: None,
        });
        sink.append(&intent).unwrap();
        for i in 0..20 {
            sink.append(&AuditEvent::note(format!("n{i}"))).unwrap();
        }
        let rotated = rotated_files(&log).unwrap();
        let first_of_second: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(&rotated[1])
                .unwrap()
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        let before = first_of_second["seq"].as_u64().unwrap();
        let result = prune_log(&sink, before);
        if kept {
            let err = result.unwrap_err();
            assert!(matches!(err, PruneError::TokenUnexpired { .. }), "{err}");
            assert!(err.to_string().contains("prune after"), "{err}");
            assert!(rotated[0].exists());
        } else {
            assert!(
                matches!(result, Ok(PruneOutcome::Pruned { record_seq, .. }) if record_seq > before),
                "{result:?}"
            );
            assert!(!rotated[0].exists());
            let report = verify_file(&log, None).unwrap();
            assert!(report.intact(), "{report:?}");
            assert_eq!(report.pruned.unwrap().start_seq, before);
        }
    }
}
