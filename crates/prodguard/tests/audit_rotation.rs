//! Rotation by size: each new file chains to the previous file's head and
//! verify follows the whole set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use prodguard::audit::{AuditSink, FileSink, rotated_files, verify_file};
use prodguard_core::audit::AuditEvent;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prodguard-rotate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn rotated_files_chain_and_verify_as_one_log() {
    let dir = temp_dir("chain");
    let log = dir.join("audit.jsonl");
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
    let log = dir.join("audit.jsonl");
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
