//! Seals: forward-secure MACs over the chain's head, checked with a key kept off the host.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use prodguard::audit::{
    AuditSink, FileSink, init_key_file, read_key_file, verify_file, verify_file_sealed,
    write_key_file,
};
use prodguard_core::Timestamp;
use prodguard_core::audit::{AuditEvent, Envelope, GENESIS_PREV, Record, encode_record};

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-seal-{name}-"))
        .tempdir()
        .unwrap()
}

fn kinds(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn seals_every_n_records_evolve_the_key_and_verify_off_host() {
    let dir = temp_dir("every");
    let key_file = dir.path().join("seal.key");
    let verification_key = init_key_file(&key_file).unwrap();
    assert!(init_key_file(&key_file).is_err(), "a key is created once");
    let log = dir.path().join("audit.jsonl");
    let sink = FileSink::new(&log).sealed(&key_file, 3);
    for i in 0..7 {
        sink.append(&AuditEvent::note(format!("n{i}"))).unwrap();
    }
    // Every third record is a seal: notes 1-2, seal 3, notes 4-5, seal 6, notes 7-8, seal 9, note 10.
    let kinds = kinds(&log);
    assert_eq!(kinds.len(), 10);
    let seals: Vec<usize> = (0..kinds.len())
        .filter(|&i| kinds[i] == "seal")
        .map(|i| i + 1)
        .collect();
    assert_eq!(seals, [3, 6, 9]);
    // The key file moved on: epoch 0's key is gone from the host.
    let on_host = read_key_file(&key_file).unwrap();
    assert_eq!(on_host.epoch, 3);
    assert_ne!(on_host.key, verification_key.key);

    let report = verify_file_sealed(&log, None, Some(&verification_key)).unwrap();
    assert_eq!((report.seals, report.unsealed_tail), (3, Some(1)));
    assert_eq!(report.exit_code(), 3, "the last record is not sealed yet");
    sink.seal_now().unwrap();
    let report = verify_file_sealed(&log, None, Some(&verification_key)).unwrap();
    assert_eq!((report.seals, report.exit_code()), (4, 0), "{report:?}");
}

/// Rewrites record `seq`'s message and recomputes every hash after it: a
/// forger who knows the format but not the seal key.
fn forge(log: &Path, seq: usize, message: &str) {
    let text = std::fs::read_to_string(log).unwrap();
    let mut prev = GENESIS_PREV.to_owned();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut record: Record = serde_json::from_str(line).unwrap();
        if seq > 0 && i + 1 == seq {
            record.event.message = Some(message.into());
        }
        let envelope = Envelope {
            log_id: record.log_id.clone(),
            seq: record.seq,
            ts: Timestamp::parse_rfc3339(&record.ts).unwrap(),
            host: record.host.clone(),
            pid: record.pid,
        };
        let (bytes, hash) = encode_record(&envelope, &record.event, &prev).unwrap();
        out.extend_from_slice(&bytes);
        prev = hash;
    }
    std::fs::write(log, out).unwrap();
}

#[test]
fn an_edit_with_recomputed_hashes_fails_its_seal() {
    let dir = temp_dir("forge");
    let key_file = dir.path().join("seal.key");
    let verification_key = init_key_file(&key_file).unwrap();
    let log = dir.path().join("audit.jsonl");
    let sink = FileSink::new(&log).sealed(&key_file, 4);
    for i in 0..3 {
        sink.append(&AuditEvent::note(format!("n{i}"))).unwrap();
    }
    assert_eq!(
        verify_file_sealed(&log, None, Some(&verification_key))
            .unwrap()
            .exit_code(),
        0
    );
    forge(&log, 2, "nothing happened here");
    assert!(
        verify_file(&log, None).unwrap().intact(),
        "the chain alone is fooled"
    );
    let report = verify_file_sealed(&log, None, Some(&verification_key)).unwrap();
    assert_eq!(report.exit_code(), 1, "{report:?}");
    assert!(report.damage.unwrap().problem.contains("seal"));
}

#[test]
fn a_crash_between_seal_and_key_erasure_keeps_epochs_continuous() {
    let dir = temp_dir("crash");
    let key_file = dir.path().join("seal.key");
    let k0 = init_key_file(&key_file).unwrap();
    let log = dir.path().join("audit.jsonl");
    let sink = FileSink::new(&log).sealed(&key_file, 0);
    sink.append(&AuditEvent::note("a")).unwrap();
    sink.seal_now().unwrap();
    // The seal is on disk but the key file still holds epoch 0, as if the
    // process died before erasing it.
    write_key_file(&key_file, &k0).unwrap();
    let sink = FileSink::new(&log).sealed(&key_file, 0);
    sink.append(&AuditEvent::note("b")).unwrap();
    sink.seal_now().unwrap();
    let report = verify_file_sealed(&log, None, Some(&k0)).unwrap();
    assert_eq!((report.seals, report.exit_code()), (2, 0), "{report:?}");
}

#[test]
fn a_configured_but_missing_key_refuses_the_append() {
    let dir = temp_dir("missing");
    let log = dir.path().join("audit.jsonl");
    let sink = FileSink::new(&log).sealed(dir.path().join("nope.key"), 1);
    let err = sink.append(&AuditEvent::note("x")).unwrap_err();
    assert!(err.to_string().contains("seal-init"), "{err}");
    assert!(
        !log.exists() || std::fs::read(&log).unwrap().is_empty(),
        "nothing written"
    );
}

#[test]
fn receipts_name_their_own_records_when_seals_share_a_batch() {
    let dir = temp_dir("receipts");
    let key_file = dir.path().join("seal.key");
    init_key_file(&key_file).unwrap();
    let log = dir.path().join("audit.jsonl");
    let sink = std::sync::Arc::new(FileSink::new(&log).sealed(&key_file, 3));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let sink = std::sync::Arc::clone(&sink);
            std::thread::spawn(move || {
                (0..30)
                    .map(|i| {
                        let message = format!("t{t}-{i}");
                        (
                            sink.append(&AuditEvent::note(message.clone())).unwrap().seq,
                            message,
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acked: Vec<(u64, String)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (seq, message) in acked {
        assert_eq!(
            lines[seq as usize - 1]["message"],
            message.as_str(),
            "seq {seq}"
        );
    }
}

#[test]
fn a_forged_final_seal_record_does_not_verify() {
    let dir = temp_dir("lastseal");
    let key_file = dir.path().join("seal.key");
    let k0 = init_key_file(&key_file).unwrap();
    let log = dir.path().join("audit.jsonl");
    let sink = FileSink::new(&log).sealed(&key_file, 0);
    sink.append(&AuditEvent::note("a")).unwrap();
    sink.seal_now().unwrap();
    // Turn the final seal into an intent that never happened, keeping its seal member.
    let text = std::fs::read_to_string(&log).unwrap();
    let forged = text.replace(
        "\"kind\":\"seal\",",
        "\"kind\":\"intent\",\"message\":\"db.drop approved\",",
    );
    std::fs::write(&log, &forged).unwrap();
    forge(&log, 0, "");
    let report = verify_file_sealed(&log, None, Some(&k0)).unwrap();
    assert_eq!(report.exit_code(), 1, "{report:?}");
}

#[test]
fn one_seal_key_seals_one_log() {
    let dir = temp_dir("onekey");
    let key_file = dir.path().join("seal.key");
    init_key_file(&key_file).unwrap();
    let a = FileSink::new(dir.path().join("a.jsonl")).sealed(&key_file, 0);
    a.append(&AuditEvent::note("a")).unwrap();
    a.seal_now().unwrap();
    let b = FileSink::new(dir.path().join("b.jsonl")).sealed(&key_file, 0);
    b.append(&AuditEvent::note("b")).unwrap();
    let err = b.seal_now().unwrap_err();
    assert!(err.to_string().contains("its own seal key"), "{err}");
    // The first log keeps sealing.
    a.seal_now().unwrap();
}
