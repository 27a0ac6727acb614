//! Many processes and threads appending to one log, and processes killed
//! with SIGKILL mid-append: nothing acknowledged is ever lost or doubled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use prodguard::audit::AuditEvent;
use prodguard::audit::{AuditSink, FileSink, repair_file, verify_file};

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-crash-{name}-"))
        .tempdir()
        .unwrap()
}

/// Starts this test binary as an appender: `threads` threads, each appending
/// `per_thread` notes (0 = until killed) and printing `ACK seq message`.
fn spawn_appender(log: &Path, id: usize, threads: usize, per_thread: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_appender",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PRODGUARD_APPENDER_LOG", log)
        .env("PRODGUARD_APPENDER_ID", id.to_string())
        .env("PRODGUARD_APPENDER_THREADS", threads.to_string())
        .env("PRODGUARD_APPENDER_COUNT", per_thread.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn child_appender() {
    let Some(log) = std::env::var_os("PRODGUARD_APPENDER_LOG") else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap().parse::<usize>().unwrap();
    let (id, threads, count) = (
        var("PRODGUARD_APPENDER_ID"),
        var("PRODGUARD_APPENDER_THREADS"),
        var("PRODGUARD_APPENDER_COUNT"),
    );
    let sink = Arc::new(FileSink::new(PathBuf::from(log)));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || {
                let mut i = 0;
                while count == 0 || i < count {
                    let message = format!("p{id}-t{t}-{i}");
                    let receipt = sink.append(&AuditEvent::note(message.clone())).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {} {message}", receipt.seq).unwrap();
                    out.flush().unwrap();
                    i += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

fn acks(child: &mut Child) -> std::thread::JoinHandle<Vec<(u64, String)>> {
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| {
                // libtest may print its own text on the same line first.
                let rest = &line[line.find("ACK ")? + 4..];
                let (seq, message) = rest.split_once(' ')?;
                Some((seq.parse().ok()?, message.to_owned()))
            })
            .collect()
    })
}

fn messages_by_seq(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message"].as_str().unwrap_or("").to_owned()
        })
        .collect()
}

#[test]
fn processes_times_threads_lose_nothing_and_interleave_nothing() {
    let dir = temp_dir("procs");
    let log = dir.path().join("audit.jsonl");
    let mut children: Vec<Child> = (0..3).map(|id| spawn_appender(&log, id, 4, 25)).collect();
    let readers: Vec<_> = children.iter_mut().map(acks).collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let acked: Vec<(u64, String)> = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    assert_eq!(acked.len(), 300);
    let report = verify_file(&log, None).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.records, 300);
    let messages = messages_by_seq(&log);
    for (seq, message) in &acked {
        assert_eq!(&messages[usize::try_from(*seq - 1).unwrap()], message);
    }
}

#[test]
fn sigkill_never_loses_an_acknowledged_record() {
    let dir = temp_dir("kill");
    let log = dir.path().join("audit.jsonl");
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..20 {
        let mut children: Vec<Child> = (0..2)
            .map(|p| spawn_appender(&log, round * 2 + p, 3, 0))
            .collect();
        let readers: Vec<_> = children.iter_mut().map(acks).collect();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::thread::sleep(std::time::Duration::from_millis(30 + state % 120));
        for c in &mut children {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
        for r in readers {
            acked.extend(r.join().unwrap());
        }
        // A crash may leave a torn tail; repair cuts only that.
        repair_file(&log).unwrap();
    }
    assert!(
        acked.len() > 20,
        "the appenders made progress: {}",
        acked.len()
    );
    let report = verify_file(&log, None).unwrap();
    assert!(report.intact(), "{report:?}");
    let messages = messages_by_seq(&log);
    for (seq, message) in &acked {
        assert_eq!(
            &messages[usize::try_from(*seq - 1).unwrap()],
            message,
            "seq {seq}"
        );
    }
    let mut unique = messages
        .iter()
        .filter(|m| m.starts_with('p'))
        .collect::<Vec<_>>();
    let total = unique.len();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), total, "no record appears twice");
}
