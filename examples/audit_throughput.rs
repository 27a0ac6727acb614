//! Audit log throughput beside its baselines, measured in the same run:
//! durable appends per second (1 and 8 writers) vs a raw `write` +
//! `fdatasync` loop of the same bytes, and verify throughput vs raw SHA-256
//! over the same file.
//!
//! ```text
//! cargo run --release --example audit_throughput [DIR]
//! ```
//!
//! DIR (default: the system temp directory) should be on the disk you care
//! about; a tmpfs makes fdatasync free and the numbers meaningless.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)] // a measurement tool

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prodguard::audit::{AuditEvent, AuditSink, Durability, FileSink, verify_file};
use sha2::{Digest, Sha256};

const APPENDS: usize = 2000;

fn event(i: usize) -> AuditEvent {
    AuditEvent::note(format!(
        "db.migrate on orders: step {i:06} of the nightly maintenance"
    ))
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("prodguard-throughput"));
    std::fs::create_dir_all(&dir).unwrap();

    // Our durable appends, one writer.
    let path = fresh(&dir, "one.jsonl");
    let sink = FileSink::new(&path);
    let start = Instant::now();
    for i in 0..APPENDS {
        sink.append(&event(i)).unwrap();
    }
    let ours_1 = rate(APPENDS, start.elapsed());
    let line_len = std::fs::metadata(&path).unwrap().len() as usize / APPENDS;

    // The baseline: the same bytes, write + fdatasync each.
    let raw_path = fresh(&dir, "raw.jsonl");
    let mut raw = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&raw_path)
        .unwrap();
    let line = vec![b'x'; line_len];
    let start = Instant::now();
    for _ in 0..APPENDS {
        raw.write_all(&line).unwrap();
        raw.sync_data().unwrap();
    }
    let raw_1 = rate(APPENDS, start.elapsed());

    // Eight writers in one process (group commit).
    let path = fresh(&dir, "eight.jsonl");
    let sink = Arc::new(FileSink::new(&path));
    let start = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || {
                for i in 0..APPENDS / 8 {
                    sink.append(&event(t * APPENDS + i)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let ours_8 = rate(APPENDS / 8 * 8, start.elapsed());

    // Verify vs raw SHA-256 over a ~32 MiB log.
    let big = fresh(&dir, "big.jsonl");
    let sink = FileSink::with_durability(&big, Durability::None);
    let mut i = 0;
    while std::fs::metadata(&big).map(|m| m.len()).unwrap_or(0) < 32 << 20 {
        for _ in 0..1000 {
            sink.append(&event(i)).unwrap();
            i += 1;
        }
    }
    let bytes = std::fs::metadata(&big).unwrap().len() as f64;
    let start = Instant::now();
    let report = verify_file(&big, None).unwrap();
    let verify_mb_s = bytes / start.elapsed().as_secs_f64() / 1e6;
    assert!(report.intact());
    let start = Instant::now();
    let mut file = std::fs::File::open(&big).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let _ = hasher.finalize();
    let sha_mb_s = bytes / start.elapsed().as_secs_f64() / 1e6;

    println!(
        "record size: {line_len} bytes; {APPENDS} appends per run; dir {}",
        dir.display()
    );
    println!("raw write+fdatasync, 1 writer : {raw_1:>10.0} appends/s");
    println!(
        "prodguard durable, 1 writer   : {ours_1:>10.0} appends/s  ({:.2}x raw)",
        ours_1 / raw_1
    );
    println!(
        "prodguard durable, 8 writers  : {ours_8:>10.0} appends/s  ({:.2}x one writer)",
        ours_8 / ours_1
    );
    println!("raw SHA-256 over the log      : {sha_mb_s:>10.0} MB/s");
    println!(
        "prodguard verify              : {verify_mb_s:>10.0} MB/s  ({:.2}x SHA-256)",
        verify_mb_s / sha_mb_s
    );
    std::fs::remove_dir_all(&dir).ok();
}
