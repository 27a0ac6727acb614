//! Environment stamps on a real SQLite database, through the CLI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

#[path = "../../../tests/support/prompt.rs"]
mod prompt;

use prompt::type_when_asked;

const BIN: &str = env!("CARGO_BIN_EXE_prodguard");

/// A fresh directory holding `app.db`, removed with everything in it when
/// the returned guard drops (keep it alive until the test ends).
fn sandbox() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("prodguard-stamps-")
        .tempdir()
        .unwrap();
    let status = Command::new("sqlite3")
        .arg(dir.path().join("app.db"))
        .arg("CREATE TABLE t (x INTEGER);")
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

fn prodguard(dir: &Path, env: &str, args: &[&str], typed: Option<&str>) -> Output {
    let mut cmd = Command::new("setsid");
    cmd.arg("-w");
    match typed {
        Some(_) => {
            let line = std::iter::once(BIN.to_owned())
                .chain(args.iter().map(|a| (*a).to_owned()))
                .collect::<Vec<_>>()
                .join(" ");
            cmd.args(["script", "-qec", &line, "/dev/null"]);
        }
        None => {
            cmd.arg(BIN).args(args);
        }
    }
    let mut child = cmd
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("PRODGUARD_ENV", env)
        .env("PRODGUARD_ACTOR", "ana")
        .env("PRODGUARD_AUDIT_LOG", dir.join("audit.jsonl"))
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(answer) = typed {
        return type_when_asked(child, answer);
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn stamps_refuse_the_wrong_environment_and_restamping_is_guarded() {
    let dir = sandbox();
    let migrate = [
        "exec",
        "--op",
        "db.migrate",
        "--target",
        "app.db",
        "--",
        "true",
    ];

    let out = prodguard(
        dir.path(),
        "development",
        &["stamp", "--target", "app.db", "--env", "development"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("stamped development"));
    assert_eq!(
        prodguard(dir.path(), "development", &migrate, None)
            .status
            .code(),
        Some(0)
    );

    // Run against it from production: refused before anyone is asked, and check agrees.
    let out = prodguard(dir.path(), "production", &migrate, None);
    assert_eq!(out.status.code(), Some(124), "{}", text(&out));
    let check = prodguard(
        dir.path(),
        "production",
        &["check", "--op", "db.migrate", "--target", "app.db"],
        None,
    );
    assert_eq!(check.status.code(), Some(124), "{}", text(&check));
    assert!(
        text(&check).contains("stamped `development`"),
        "{}",
        text(&check)
    );
    assert!(
        text(&out).contains("stamped `development`"),
        "{}",
        text(&out)
    );

    // A production dump restored on a laptop.
    let status = Command::new("sqlite3")
        .arg(dir.path().join("app.db"))
        .arg(
            "UPDATE prodguard_stamp SET value = 'production' WHERE key IN ('environment', 'tier');",
        )
        .status()
        .unwrap();
    assert!(status.success());
    let out = prodguard(dir.path(), "development", &migrate, None);
    assert_eq!(out.status.code(), Some(124), "{}", text(&out));
    // check agrees, and never says "allowed" beside its 124.
    let check = ["check", "--op", "db.migrate", "--target", "app.db"];
    let out = prodguard(dir.path(), "development", &check, None);
    assert_eq!(out.status.code(), Some(124), "{}", text(&out));
    assert!(!text(&out).contains("allowed"), "{}", text(&out));
    assert!(text(&out).contains("REFUSED with 124"), "{}", text(&out));
    assert!(
        text(&out).contains("stamped `production`"),
        "{}",
        text(&out)
    );
    let json = [&check[..], &["--json"]].concat();
    let out = prodguard(dir.path(), "development", &json, None);
    assert_eq!(out.status.code(), Some(124), "{}", text(&out));
    let json = common::answer(&out);
    assert_eq!(json["exit_code"], 124);
    assert_eq!(json["refusal"]["exit_code"], 124);
    assert_eq!(json["decision"]["result"], "allow");
    assert!(
        text(&out).contains("prodguard stamp --target app.db --env development"),
        "{}",
        text(&out)
    );

    // Re-stamping it is guarded like production: no terminal, no re-stamp.
    let restamp = ["stamp", "--target", "app.db", "--env", "development"];
    let out = prodguard(dir.path(), "development", &restamp, None);
    assert_eq!(out.status.code(), Some(121), "{}", text(&out));
    // Its hint names what `stamp` takes: the variable, not an --approval it has not.
    assert!(
        text(&out).contains("--op prodguard.stamp --target app.db")
            && text(&out).contains("passed to this command in PRODGUARD_APPROVAL"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("--approval"), "{}", text(&out));
    // At a terminal, typing the database's name re-stamps it.
    let out = prodguard(dir.path(), "development", &restamp, Some("app.db"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("(was production)"), "{}", text(&out));
    assert_eq!(
        prodguard(dir.path(), "development", &migrate, None)
            .status
            .code(),
        Some(0)
    );

    let verify = prodguard(dir.path(), "development", &["audit", "verify"], None);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
}

#[test]
fn a_fifo_named_as_the_target_blocks_nothing() {
    // Looking for a stamp must not open a FIFO for reading (that waits for
    // a writer for ever): a target that is not a regular file carries none.
    let dir = sandbox();
    let fifo = dir.path().join("orders");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for args in [
        &["check", "--op", "db.migrate", "--target", "orders"][..],
        &[
            "exec",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--",
            "true",
        ][..],
    ] {
        let mut child = Command::new(BIN)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("PRODGUARD_ENV", "development")
            .env("PRODGUARD_AUDIT_LOG", dir.path().join("audit.jsonl"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?} blocked on a FIFO target");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "{args:?}");
    }
}
