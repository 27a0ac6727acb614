//! The JSON Lines audit log under concurrency, crashes and bad files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use prodguard::audit::{AuditError, AuditSink, Durability, FileOps, FileSink, verify_file};
use prodguard_core::audit::{AuditEvent, ChainVerifier};

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-test-{name}-"))
        .tempdir()
        .unwrap()
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
    let path = dir.path().join("audit.jsonl");
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
    let path = dir.path().join("audit.jsonl");
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
    let path = dir.path().join("audit.jsonl");
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
    let path = dir.path().join("audit.jsonl");
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
    assert!(err.to_string().contains("audit repair"), "{err}");
    let report = verify_file(&path, None).unwrap();
    assert_eq!(
        (report.records, report.torn_tail_bytes),
        (1, torn.len() as u64)
    );
}

#[test]
fn an_edited_last_record_refuses_further_appends() {
    let dir = temp_dir("edited");
    let path = dir.path().join("audit.jsonl");
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
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let err = FileSink::new(blocker.join("audit.jsonl"))
        .append(&AuditEvent::note("x"))
        .unwrap_err();
    assert!(matches!(err, AuditError::Open { .. }), "{err}");
    assert!(err.to_string().contains("PRODGUARD_AUDIT_LOG"), "{err}");
}

#[test]
fn a_write_error_poisons_the_writer() {
    // Every write fails with ENOSPC, as on a full disk.
    struct Full;
    impl FileOps for Full {
        fn write(&mut self, _: &std::fs::File, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(28))
        }
    }
    let dir = temp_dir("full");
    let sink = FileSink::with_file_ops(dir.path().join("audit.jsonl"), Durability::Fdatasync, Full);
    let first = sink.append(&AuditEvent::note("x")).unwrap_err();
    assert!(matches!(first, AuditError::Io { .. }), "{first}");
    let second = sink.append(&AuditEvent::note("y")).unwrap_err();
    assert!(matches!(second, AuditError::Poisoned { .. }), "{second}");
}

#[test]
fn a_device_is_not_an_audit_log() {
    // /dev/null would keep nothing and /dev/full nothing either: neither
    // is a log, and saying so at open refuses before anyone is asked.
    for device in ["/dev/null", "/dev/full"] {
        let err = FileSink::new(device)
            .append(&AuditEvent::note("x"))
            .unwrap_err();
        assert!(matches!(err, AuditError::Open { .. }), "{device}: {err}");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}

#[test]
fn lines_verify_with_the_core_verifier_byte_for_byte() {
    let dir = temp_dir("bytes");
    let path = dir.path().join("audit.jsonl");
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
    let path = dir.path().join("audit.jsonl");
    let sink = FileSink::new(&path);
    sink.append(&AuditEvent::note("before")).unwrap();
    std::fs::rename(&path, dir.path().join("audit.jsonl.1")).unwrap();
    let receipt = sink.append(&AuditEvent::note("after rotation")).unwrap();
    assert_eq!(receipt.seq, 1, "a new log starts");
    assert_eq!(records(&path)[0]["message"], "after rotation");
    std::fs::remove_file(&path).unwrap();
    sink.append(&AuditEvent::note("after deletion")).unwrap();
    assert_eq!(records(&path)[0]["message"], "after deletion");
}

mod faults {
    use super::*;
    use prodguard::audit::FileOps;
    use prodguard_core::policy::Durability;
    use std::fs::File;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Fails the `n`th write or sync (counting both, from 1), once or from then on.
    struct Faulty {
        calls: Arc<AtomicU64>,
        fail_at: u64,
        persistent: bool,
        fault: Fault,
        eio_next: bool,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Fault {
        /// The write stores half the bytes; the rest goes through.
        Short,
        /// The write stores half the bytes, then the next call fails with EIO.
        ShortThenEio,
        /// The write fails with EIO, nothing written.
        Eio,
        /// The sync fails with ENOSPC (the bytes are in the page cache).
        SyncEnospc,
    }

    impl Faulty {
        fn hit(&self) -> bool {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            n == self.fail_at || (self.persistent && n > self.fail_at)
        }
    }

    impl FileOps for Faulty {
        fn write(&mut self, file: &File, buf: &[u8]) -> std::io::Result<usize> {
            let mut f = file;
            if std::mem::take(&mut self.eio_next) {
                return Err(std::io::Error::from_raw_os_error(5));
            }
            if self.fault != Fault::SyncEnospc && self.hit() {
                return match self.fault {
                    Fault::Short | Fault::ShortThenEio => {
                        self.eio_next = self.fault == Fault::ShortThenEio;
                        f.write(&buf[..buf.len().div_ceil(2)])
                    }
                    _ => Err(std::io::Error::from_raw_os_error(5)),
                };
            }
            f.write(buf)
        }

        fn sync_data(&mut self, file: &File) -> std::io::Result<()> {
            if matches!(self.fault, Fault::SyncEnospc) && self.hit() {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            file.sync_data()
        }
    }

    fn run(name: &str, fault: Fault, fail_at: u64, persistent: bool) {
        let dir = temp_dir(&format!("fault-{name}-{fail_at}-{persistent}"));
        let path = dir.path().join("audit.jsonl");
        let ops = Faulty {
            calls: Arc::new(AtomicU64::new(0)),
            fail_at,
            persistent,
            fault,
            eio_next: false,
        };
        let sink = FileSink::with_file_ops(&path, Durability::Fdatasync, ops);
        let mut acknowledged = Vec::new();
        let mut failed = false;
        for i in 0..8 {
            match sink.append(&AuditEvent::note(format!("n{i}"))) {
                Ok(receipt) => {
                    assert!(
                        !failed,
                        "{name}: an append succeeded after the writer failed"
                    );
                    acknowledged.push((receipt.seq, format!("n{i}")));
                }
                Err(e) => {
                    if failed {
                        assert!(matches!(e, AuditError::Poisoned { .. }), "{name}: {e}");
                    }
                    failed = true;
                }
            }
        }
        if fault == Fault::Short {
            assert!(!failed, "{name}: a short write is finished, not a failure");
            assert_eq!(acknowledged.len(), 8);
        } else {
            assert!(failed, "{name}: the fault fired");
        }
        // The log stays repairable, and every acknowledged record is in it.
        let _ = prodguard::audit::repair_file(&path).unwrap();
        let report = verify_file(&path, None).unwrap();
        assert!(report.intact(), "{name}: {report:?}");
        let on_disk = records(&path);
        for (seq, message) in &acknowledged {
            let record = &on_disk[usize::try_from(*seq - 1).unwrap()];
            assert_eq!(record["message"], message.as_str(), "{name}: seq {seq}");
        }
        // A fresh writer (a restarted process) continues the chain.
        FileSink::new(&path)
            .append(&AuditEvent::note("after restart"))
            .unwrap();
        assert!(verify_file(&path, None).unwrap().intact());
    }

    #[test]
    fn short_writes_eio_and_enospc_never_acknowledge_what_is_not_durable() {
        for fail_at in [1, 2, 3, 5] {
            for persistent in [false, true] {
                run("short", Fault::Short, fail_at, persistent);
                run("short-eio", Fault::ShortThenEio, fail_at, persistent);
                run("eio", Fault::Eio, fail_at, persistent);
                run("enospc", Fault::SyncEnospc, fail_at, persistent);
            }
        }
    }
}

/// Logs larger than one read batch (4 MiB) are verified in parallel chunks:
/// damage anywhere is still found, at the right line and offset.
#[test]
fn large_logs_verify_across_batches_and_threads() {
    let dir = temp_dir("large");
    let path = dir.path().join("audit.jsonl");
    let sink = FileSink::with_durability(&path, prodguard_core::policy::Durability::None);
    let total = 15_000u64;
    for i in 1..=total {
        sink.append(&AuditEvent::note(format!("bulk delete step {i:06}")))
            .unwrap();
    }
    let report = verify_file(&path, None).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.records, total);
    assert_eq!(report.head_seq, total);
    let intact = std::fs::read(&path).unwrap();
    assert!(intact.len() > 4 << 20, "the log must span two batches");
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            intact
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    // In the first batch (a later thread's chunk) and in the second batch.
    for line in [1_500usize, 13_000] {
        let mut edited = intact.clone();
        let at = starts[line - 1] + 60;
        edited[at] ^= 0x01;
        std::fs::write(&path, &edited).unwrap();
        let report = verify_file(&path, None).unwrap();
        let damage = report.damage.expect("an edited record is damage");
        assert_eq!(damage.line, line as u64);
        assert_eq!(damage.offset, starts[line - 1] as u64);
        assert_eq!(damage.expected_seq, line as u64);
        assert_eq!(report.records, line as u64 - 1);

        let mut deleted = intact[..starts[line - 1]].to_vec();
        deleted.extend_from_slice(&intact[starts[line]..]);
        std::fs::write(&path, &deleted).unwrap();
        let report = verify_file(&path, None).unwrap();
        let damage = report.damage.expect("a deleted record breaks the chain");
        assert_eq!(damage.line, line as u64);
        assert!(damage.problem.contains("prev"), "{}", damage.problem);
    }
}
