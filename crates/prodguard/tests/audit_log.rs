//! The JSON Lines audit log under concurrency, crashes and bad files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prodguard::audit::{AuditError, AuditSink, FileSink, verify_file};
use prodguard_core::audit::{AuditEvent, ChainVerifier};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prodguard-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn appends_chain_and_verify() {
    let dir = temp_dir("chain");
    let path = dir.join("audit.jsonl");
    let sink = FileSink::new(&path);
    for i in 1..=5u64 {
        let receipt = sink.append(&AuditEvent::note(format!("note {i}"))).unwrap();
        assert_eq!(receipt.seq, i);
    }
    let report = verify_file(&path, None).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.records, 5);
    let all = records(&path);
    assert!(all.iter().all(|r| r["log_id"] == all[0]["log_id"]));
    assert_eq!(all[4]["message"], "note 5");
}

#[test]
fn a_second_writer_continues_the_same_chain() {
    let dir = temp_dir("two-writers");
    let path = dir.join("audit.jsonl");
    let a = FileSink::new(&path);
    let b = FileSink::new(&path);
    a.append(&AuditEvent::note("a1")).unwrap();
    b.append(&AuditEvent::note("b1")).unwrap();
    a.append(&AuditEvent::note("a2")).unwrap();
    assert_eq!(a.append(&AuditEvent::note("a3")).unwrap().seq, 4);
    assert!(verify_file(&path, None).unwrap().intact());
}

#[test]
fn many_threads_lose_nothing() {
    let dir = temp_dir("threads");
    let path = dir.join("audit.jsonl");
    let sink = Arc::new(FileSink::new(&path));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let sink = Arc::clone(&sink);
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
    let report = verify_file(&path, None).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.records, 200);
    let mut messages: Vec<String> = records(&path)
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_owned())
        .collect();
    messages.sort();
    messages.dedup();
    assert_eq!(messages.len(), 200, "every note exactly once");
}

#[test]
fn a_torn_tail_refuses_further_appends() {
    let dir = temp_dir("torn");
    let path = dir.join("audit.jsonl");
    FileSink::new(&path)
        .append(&AuditEvent::note("whole"))
        .unwrap();
    let torn = b"{\"v\":1,\"log_id\":\"x\",\"se";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(torn)
        .unwrap();
    let err = FileSink::new(&path)
        .append(&AuditEvent::note("after"))
        .unwrap_err();
    assert!(matches!(err, AuditError::TornTail { .. }), "{err}");
    assert!(err.to_string().contains("move the log aside"), "{err}");
    let report = verify_file(&path, None).unwrap();
    assert_eq!(
        (report.records, report.torn_tail_bytes),
        (1, torn.len() as u64)
    );
}

#[test]
fn an_edited_last_record_refuses_further_appends() {
    let dir = temp_dir("edited");
    let path = dir.join("audit.jsonl");
    FileSink::new(&path)
        .append(&AuditEvent::note("original"))
        .unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("original", "forged!!");
    std::fs::write(&path, text).unwrap();
    let err = FileSink::new(&path)
        .append(&AuditEvent::note("next"))
        .unwrap_err();
    assert!(matches!(err, AuditError::Corrupt { .. }), "{err}");
    assert!(verify_file(&path, None).unwrap().damage.is_some());
}

#[test]
fn an_unwritable_location_is_an_error_not_a_panic() {
    let dir = temp_dir("unwritable");
    // A regular file where a directory should be: no user, root included, can create under it.
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let err = FileSink::new(blocker.join("audit.jsonl"))
        .append(&AuditEvent::note("x"))
        .unwrap_err();
    assert!(matches!(err, AuditError::Open { .. }), "{err}");
    assert!(err.to_string().contains("PRODGUARD_AUDIT_LOG"), "{err}");
}

#[test]
fn a_write_error_poisons_the_writer() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let sink = FileSink::new("/dev/full");
    let first = sink.append(&AuditEvent::note("x")).unwrap_err();
    assert!(matches!(first, AuditError::Io { .. }), "{first}");
    let second = sink.append(&AuditEvent::note("y")).unwrap_err();
    assert!(matches!(second, AuditError::Poisoned { .. }), "{second}");
}

#[test]
fn lines_verify_with_the_core_verifier_byte_for_byte() {
    let dir = temp_dir("bytes");
    let path = dir.join("audit.jsonl");
    let sink = FileSink::new(&path);
    sink.append(&AuditEvent::note("ünïcödé \"quoted\" \\ back"))
        .unwrap();
    sink.append(&AuditEvent::note("second")).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let mut verifier = ChainVerifier::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        verifier.push(line).unwrap();
    }
    assert_eq!(verifier.next_seq(), 3);
}

#[test]
fn a_rotated_or_deleted_log_is_reopened_not_written_into_the_void() {
    let dir = temp_dir("rotated");
    let path = dir.join("audit.jsonl");
    let sink = FileSink::new(&path);
    sink.append(&AuditEvent::note("before")).unwrap();
    std::fs::rename(&path, dir.join("audit.jsonl.1")).unwrap();
    let receipt = sink.append(&AuditEvent::note("after rotation")).unwrap();
    assert_eq!(receipt.seq, 1, "a new log starts");
    assert_eq!(records(&path)[0]["message"], "after rotation");
    std::fs::remove_file(&path).unwrap();
    sink.append(&AuditEvent::note("after deletion")).unwrap();
    assert_eq!(records(&path)[0]["message"], "after deletion");
}
