//! Verify, anchors and repair on real files: tampering of every kind, and
//! truncation at every byte offset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use prodguard::audit::AuditEvent;
use prodguard::audit::{
    AnchorCheck, AuditSink, FileSink, RepairError, RepairOutcome, repair_file, verify_file,
};

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-repair-{name}-"))
        .tempdir()
        .unwrap()
}

fn log_with(dir: &Path, name: &str, n: u64) -> PathBuf {
    let path = dir.join(name);
    let sink = FileSink::new(&path);
    for i in 1..=n {
        sink.append(&AuditEvent::note(format!("record {i}")))
            .unwrap();
    }
    path
}

fn line_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1),
    );
    starts
}

#[test]
fn every_single_bit_flip_is_detected() {
    let dir = temp_dir("flips");
    let path = log_with(dir.path(), "audit.jsonl", 3);
    let original = std::fs::read(&path).unwrap();
    let flipped = dir.path().join("flipped.jsonl");
    // PRODGUARD_FULL_FLIPS=1 flips every bit; by default every 3rd byte (a few thousand flips).
    let step = if std::env::var_os("PRODGUARD_FULL_FLIPS").is_some() {
        1
    } else {
        3
    };
    let mut tried = 0;
    for byte in (0..original.len()).step_by(step) {
        for bit in 0..8 {
            let mut bytes = original.clone();
            bytes[byte] ^= 1 << bit;
            std::fs::write(&flipped, &bytes).unwrap();
            let report = verify_file(&flipped, None).unwrap();
            assert!(
                !report.intact(),
                "flip of bit {bit} at byte {byte} went unnoticed"
            );
            tried += 1;
        }
    }
    assert!(tried > 1000, "{tried}");
}

#[test]
fn deletion_duplication_reordering_and_splicing_are_detected() {
    let dir = temp_dir("edits");
    let path = log_with(dir.path(), "audit.jsonl", 4);
    let other = log_with(dir.path(), "other.jsonl", 4);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let other_text = std::fs::read_to_string(&other).unwrap();
    let other_lines: Vec<&str> = other_text.lines().collect();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("deleted middle", vec![lines[0], lines[1], lines[3]]),
        ("deleted first", vec![lines[1], lines[2], lines[3]]),
        (
            "duplicated",
            vec![lines[0], lines[1], lines[1], lines[2], lines[3]],
        ),
        ("reordered", vec![lines[0], lines[2], lines[1], lines[3]]),
        (
            "spliced",
            vec![lines[0], lines[1], other_lines[2], other_lines[3]],
        ),
    ];
    for (name, kept) in cases {
        let edited = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&edited, kept.join("\n") + "\n").unwrap();
        let report = verify_file(&edited, None).unwrap();
        assert_eq!(report.exit_code(), 1, "{name}: {report:?}");
    }
    // A naive edit of a field.
    let edited = dir.path().join("naive.jsonl");
    std::fs::write(&edited, text.replace("record 2", "record X")).unwrap();
    let report = verify_file(&edited, None).unwrap();
    assert_eq!(report.damage.unwrap().line, 2);
}

#[test]
fn truncation_and_rollback_are_caught_by_an_anchor() {
    let dir = temp_dir("anchor");
    let path = log_with(dir.path(), "audit.jsonl", 5);
    let anchor = verify_file(&path, None).unwrap().head_anchor().unwrap();
    assert_eq!(anchor.seq, 5);
    assert_eq!(
        verify_file(&path, Some(&anchor)).unwrap().anchor,
        Some(AnchorCheck::Reached)
    );

    // Drop the last record at a line boundary: the chain alone still verifies.
    let bytes = std::fs::read(&path).unwrap();
    let starts = line_starts(&bytes);
    std::fs::write(&path, &bytes[..starts[4]]).unwrap();
    let chain_only = verify_file(&path, None).unwrap();
    assert!(
        chain_only.intact(),
        "a clean truncation passes the chain alone"
    );
    let report = verify_file(&path, Some(&anchor)).unwrap();
    assert_eq!(
        (report.anchor.clone(), report.exit_code()),
        (Some(AnchorCheck::NotReached), 3)
    );

    // Roll back and write a different fifth record: the anchor sees the rewrite.
    FileSink::new(&path)
        .append(&AuditEvent::note("a different fifth"))
        .unwrap();
    let report = verify_file(&path, Some(&anchor)).unwrap();
    assert!(
        matches!(report.anchor, Some(AnchorCheck::Mismatch(_))),
        "{report:?}"
    );
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn repair_at_every_truncation_offset_keeps_exactly_the_complete_records() {
    let dir = temp_dir("truncate");
    let path = log_with(dir.path(), "audit.jsonl", 4);
    let bytes = std::fs::read(&path).unwrap();
    let starts = line_starts(&bytes);
    // Every offset through the last two records.
    for cut in starts[2]..bytes.len() {
        let copy = dir.path().join("cut.jsonl");
        let _ = std::fs::remove_file(&copy);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let p = entry.unwrap().path();
            if p.to_string_lossy().contains("cut.jsonl.torn-") {
                std::fs::remove_file(p).unwrap();
            }
        }
        std::fs::write(&copy, &bytes[..cut]).unwrap();
        let complete = starts.iter().filter(|&&s| s > 0 && s <= cut).count() as u64;
        let torn = (cut - starts[usize::try_from(complete).unwrap()]) as u64;
        let before = verify_file(&copy, None).unwrap();
        assert_eq!(
            (before.records, before.torn_tail_bytes),
            (complete, torn),
            "cut at {cut}"
        );
        let outcome = repair_file(&copy).unwrap();
        // A tail that lacks only its newline is a whole record: kept, not cut.
        let whole = torn > 0 && bytes[cut] == b'\n';
        let expected_records = if whole {
            let RepairOutcome::NewlineRestored { recovery_seq } = outcome else {
                panic!("cut at {cut}: expected the newline restored, got {outcome:?}")
            };
            assert_eq!(recovery_seq, complete + 2);
            complete + 2
        } else if torn > 0 {
            let RepairOutcome::Cut {
                bytes: cut_bytes,
                saved_to,
                recovery_seq,
            } = outcome
            else {
                panic!("cut at {cut}: expected a repair")
            };
            assert_eq!(cut_bytes, torn);
            assert_eq!(
                std::fs::read(&saved_to).unwrap(),
                &bytes[cut - torn as usize..cut],
                "saved bytes"
            );
            assert_eq!(recovery_seq, complete + 1);
            complete + 1
        } else {
            assert_eq!(outcome, RepairOutcome::Intact);
            complete
        };
        // The next append chains to what is there.
        let receipt = FileSink::new(&copy)
            .append(&AuditEvent::note("after"))
            .unwrap();
        assert_eq!(receipt.seq, expected_records + 1, "cut at {cut}");
        let after = verify_file(&copy, None).unwrap();
        assert!(after.intact(), "cut at {cut}: {after:?}");
        assert_eq!(after.records, expected_records + 1);
    }
}

#[test]
fn repair_refuses_damage_followed_by_valid_records() {
    let dir = temp_dir("refuse");
    let path = log_with(dir.path(), "audit.jsonl", 3);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("record 2", "record Z")).unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = repair_file(&path).unwrap_err();
    assert!(
        matches!(err, RepairError::Damaged(ref d) if d.line == 2),
        "{err}"
    );
    assert!(err.to_string().contains("evidence"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "a refused repair changes nothing"
    );
}

#[test]
fn the_verifier_and_repairer_never_panic_on_arbitrary_bytes() {
    // A small deterministic property test: random bytes, random splices of
    // real records, random truncations.
    let dir = temp_dir("fuzz");
    let real = std::fs::read(log_with(dir.path(), "real.jsonl", 3)).unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let path = dir.path().join("junk.jsonl");
    for round in 0..300 {
        let mut bytes = match round % 3 {
            0 => (0..next() % 600).map(|_| next() as u8).collect::<Vec<u8>>(),
            1 => {
                let mut b = real.clone();
                for _ in 0..(1 + next() % 8) {
                    let i = (next() as usize) % b.len();
                    b[i] = next() as u8;
                }
                b
            }
            _ => real[..(next() as usize) % real.len()].to_vec(),
        };
        if round % 5 == 0 {
            bytes.extend_from_slice(b"\n{\"v\":1}\n");
        }
        std::fs::write(&path, &bytes).unwrap();
        let report = verify_file(&path, None).unwrap();
        let _ = report.exit_code();
        let _ = repair_file(&path);
        assert!(verify_file(&path, None).is_ok());
    }
}
