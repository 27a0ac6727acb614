//! The sandbox the CLI's integration tests run `prodguard` in: a temporary
//! directory as HOME and cwd, its own audit log, a clean environment and no
//! controlling terminal. Each test binary uses part of it.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_prodguard");

pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        // Removed with everything in it when the Sandbox drops.
        let dir = tempfile::Builder::new()
            .prefix(&format!("prodguard-cli-{name}-"))
            .tempdir()
            .unwrap();
        Sandbox { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn audit_log(&self) -> PathBuf {
        self.path("audit.jsonl")
    }

    /// Writes `text` to the file `name` in the sandbox; returns its path.
    pub fn write(&self, name: &str, text: &[u8]) -> String {
        std::fs::write(self.path(name), text).unwrap();
        self.path(name).to_string_lossy().into_owned()
    }

    /// `prodguard ARGS` in a new session (no controlling terminal), with
    /// only the given variables set, in the sandbox directory.
    pub fn command(&self, vars: &[(&str, &str)], args: &[&str]) -> Command {
        let mut cmd = Command::new("setsid");
        cmd.arg("-w")
            .arg(BIN)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", self.dir.path())
            .env("PRODGUARD_AUDIT_LOG", self.audit_log())
            .env("PRODGUARD_ACTOR", "tester")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, vars: &[(&str, &str)], args: &[&str]) -> Output {
        self.command(vars, args).output().unwrap()
    }

    /// [`run`](Self::run) with `stdin` on standard input.
    pub fn run_with(&self, vars: &[(&str, &str)], args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(vars, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn records(&self) -> Vec<serde_json::Value> {
        match std::fs::read_to_string(self.audit_log()) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

pub fn code(output: &Output) -> i32 {
    output.status.code().expect("exited normally")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `--json` envelope on stdout, held to its rules: one JSON document
/// and nothing else, `v` 1, exactly one of `ok` and `error`, `ok` only
/// with exit code 0, and `error.code` the exit code with a message.
pub fn envelope(output: &Output) -> serde_json::Value {
    let text = stdout(output);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{text}\nstderr:\n{}",
            stderr(output)
        )
    });
    assert_eq!(value["v"], 1, "{value:#}");
    let object = value.as_object().expect("an object");
    let (ok, error) = (object.get("ok"), object.get("error"));
    assert_eq!(object.len(), 2, "v and one of ok/error: {value:#}");
    match (ok, error) {
        (Some(ok), None) => {
            assert!(ok.is_object(), "{value:#}");
            assert_eq!(code(output), 0, "ok with a non-zero exit code: {value:#}");
        }
        (None, Some(error)) => {
            assert_eq!(error["code"], code(output), "{value:#}");
            assert_ne!(error["code"], 0, "{value:#}");
            let message = error["message"].as_str().expect("a message");
            assert!(!message.is_empty(), "{value:#}");
        }
        _ => panic!("exactly one of ok and error: {value:#}"),
    }
    value
}

/// A `--json` command's answer: [`envelope`]'s `ok`, or its error's
/// `data` (what `check`, `sql check`, `audit verify` and `exec` answer
/// when they exit non-zero).
pub fn answer(output: &Output) -> serde_json::Value {
    let mut value = envelope(output);
    match value.get_mut("ok") {
        Some(ok) => ok.take(),
        None => value["error"]["data"].take(),
    }
}
