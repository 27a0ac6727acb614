//! The typed confirmation, through a real pseudo-terminal made by script(1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_prodguard");

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn sandbox(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-pty-{name}-"))
        .tempdir()
        .unwrap()
}

/// Runs `prodguard exec` in production on a fresh pseudo-terminal and types `answer`.
fn exec_on_a_terminal(dir: &Path, answer: &str) -> (Output, PathBuf) {
    let marker = dir.join("ran");
    let inner = format!(
        "{BIN} exec --op db.migrate --target orders -- touch {}",
        marker.display()
    );
    // setsid: no terminal of ours leaks in; script: a new pty becomes the controlling terminal.
    let mut child = Command::new("setsid")
        .args(["-w", "script", "-qec", &inner, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("APP_ENV", "production")
        .env("PRODGUARD_ACTOR", "ana")
        .env("PRODGUARD_AUDIT_LOG", dir.join("audit.jsonl"))
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    (child.wait_with_output().unwrap(), marker)
}

fn records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn typing_the_targets_name_proceeds() {
    let dir = sandbox("right");
    let (out, marker) = exec_on_a_terminal(dir.path(), "orders");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(marker.exists(), "the command ran");
    assert!(
        screen.contains("`db.migrate` on `orders` in production"),
        "{screen}"
    );
    assert!(
        screen.contains("type the target's name `orders`"),
        "{screen}"
    );
    let records = records(dir.path());
    assert_eq!(records[0]["kind"], "intent");
    assert_eq!(records[0]["confirm"]["method"], "typed");
    assert_eq!(records[0]["confirm"]["approver"], "ana");
    assert_eq!(records[0]["actor"]["kind"], "human");
    assert_eq!(records[1]["outcome"]["status"], "ok");
}

#[test]
fn typing_anything_else_refuses() {
    for (i, wrong) in ["order", "y", "ORDERS", ""].iter().enumerate() {
        let dir = sandbox(&format!("wrong{i}"));
        let (out, marker) = exec_on_a_terminal(dir.path(), wrong);
        let screen = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(121), "{wrong:?}: {screen}");
        assert!(!marker.exists(), "{wrong:?} must not run the command");
        let records = records(dir.path());
        assert_eq!(records.len(), 1);
        assert_eq!(records[0]["kind"], "refusal");
        assert!(
            records[0]["decision"]["reasons"][0]
                .as_str()
                .unwrap()
                .contains("declined"),
            "{}",
            records[0]
        );
    }
}
