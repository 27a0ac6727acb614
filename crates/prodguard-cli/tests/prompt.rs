//! The typed confirmation, through a real pseudo-terminal made by script(1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_prodguard");

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn sandbox(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-pty-{name}-"))
        .tempdir()
        .unwrap()
}

/// The end of the prompt: what is typed after it answers it.
const PROMPT_END: &[u8] = b"anything else cancels.";

/// `prodguard exec` of a migration in production on a fresh pseudo-terminal
/// (setsid: no terminal of ours leaks in; script: a new pty becomes the
/// controlling terminal), run by `sh -c` once `go` exists in `dir`, with
/// only `vars` set besides those it needs.
fn spawn_on_a_terminal(dir: &Path, vars: &[(&str, &str)]) -> (Child, PathBuf) {
    let marker = dir.join("ran");
    let inner = format!(
        "while [ ! -e go ]; do sleep 0.02; done; exec {BIN} exec --op db.migrate --target orders -- touch {}",
        marker.display()
    );
    let mut cmd = Command::new("setsid");
    cmd.args(["-w", "script", "-qec", &inner, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("APP_ENV", "production")
        .env("PRODGUARD_ACTOR", "ana")
        .env("PRODGUARD_AUDIT_LOG", dir.join("audit.jsonl"))
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    (cmd.spawn().unwrap(), marker)
}

/// Reads the screen until it shows `needle` (true) or the program ends (false).
fn read_until(out: &mut impl Read, screen: &mut Vec<u8>, needle: &[u8]) -> bool {
    let mut buf = [0u8; 4096];
    while !screen.windows(needle.len()).any(|w| w == needle) {
        match out.read(&mut buf).unwrap() {
            0 => return false,
            n => screen.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Types `answer` the way a person does: once the prompt is on the screen.
/// With `typeahead`, also types it before prodguard even starts, and makes
/// sure the terminal holds it (its echo is on the screen) before letting
/// prodguard run. Returns the exit status and everything on the screen.
fn answer_on_a_terminal(
    dir: &Path,
    vars: &[(&str, &str)],
    answer: &str,
    typeahead: Option<&str>,
) -> (Option<i32>, String, PathBuf) {
    let (mut child, marker) = spawn_on_a_terminal(dir, vars);
    let mut input = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut screen = Vec::new();
    if let Some(early) = typeahead {
        input.write_all(format!("{early}\n").as_bytes()).unwrap();
        assert!(
            read_until(&mut out, &mut screen, early.as_bytes()),
            "no echo"
        );
    }
    std::fs::write(dir.join("go"), "").unwrap();
    if read_until(&mut out, &mut screen, PROMPT_END) {
        input.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    drop(input);
    out.read_to_end(&mut screen).unwrap();
    let status = child.wait().unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&screen).into_owned(),
        marker,
    )
}

/// Runs `prodguard exec` in production on a fresh pseudo-terminal and types
/// `answer` when asked, as a person with no CI or agent variables set.
fn exec_on_a_terminal(dir: &Path, answer: &str) -> (Option<i32>, String, PathBuf) {
    answer_on_a_terminal(dir, &[], answer, None)
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
    let (code, screen, marker) = exec_on_a_terminal(dir.path(), "orders");
    assert_eq!(code, Some(0), "{screen}");
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
    // Who typed is the account at the terminal; `ana` is only its label.
    assert_eq!(records[0]["actor"]["user"], "ana");
    assert_eq!(
        records[0]["confirm"]["approver"],
        records[0]["actor"]["account"]
    );
    assert!(records[0]["confirm"]["approver"].is_string());
    assert_eq!(records[0]["actor"]["kind"], "human");
    assert_eq!(records[1]["outcome"]["status"], "ok");
}

#[test]
fn typing_anything_else_refuses() {
    for (i, wrong) in ["order", "y", "ORDERS", ""].iter().enumerate() {
        let dir = sandbox(&format!("wrong{i}"));
        let (code, screen, marker) = exec_on_a_terminal(dir.path(), wrong);
        assert_eq!(code, Some(121), "{wrong:?}: {screen}");
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
        // Whoever typed is at a terminal: told to answer again, not to find one.
        assert!(
            screen.contains("next step: run it again and type `orders` when asked"),
            "{wrong:?}: {screen}"
        );
        assert!(!screen.contains("from a terminal"), "{wrong:?}: {screen}");
    }
}

#[test]
fn the_prompt_shows_an_environments_name_escaped() {
    let dir = sandbox("escaped");
    let name = "\u{1b}[2J\u{1b}[31mprod\r\nx\u{202e}";
    let (code, screen, marker) = answer_on_a_terminal(
        dir.path(),
        &[("APP_ENV", ""), ("PRODGUARD_ENV", name)],
        "orders",
        None,
    );
    assert_eq!(code, Some(0), "{screen}");
    assert!(marker.exists(), "the command ran");
    assert!(
        screen.contains(
            "`db.migrate` on `orders` in \\u{1b}[2j\\u{1b}[31mprod\\r\\nx\\u{202e} (tier unknown)"
        ),
        "{screen}"
    );
    assert!(!screen.contains('\u{1b}'), "{screen:?}");
    assert!(!screen.contains('\u{202e}'), "{screen:?}");
}

#[test]
fn an_agent_typing_the_right_name_is_refused() {
    let dir = sandbox("agent");
    // It types the name ahead, and again if it is asked.
    let (code, screen, marker) =
        answer_on_a_terminal(dir.path(), &[("CLAUDECODE", "1")], "orders", Some("orders"));
    assert_eq!(code, Some(121), "{screen}");
    assert!(!marker.exists(), "the command must not run");
    assert!(
        !screen.contains("anything else cancels"),
        "never asked: {screen}"
    );
    assert!(screen.contains("AI agent"), "{screen}");
    assert!(
        screen.contains("prodguard approve") && screen.contains("PRODGUARD_APPROVAL"),
        "says how a person approves: {screen}"
    );
    let records = records(dir.path());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["kind"], "refusal");
    assert_eq!(records[0]["actor"]["kind"], "agent");
    assert!(
        records[0]["confirm"].is_null(),
        "no typed confirmation: {}",
        records[0]
    );
    let why = records[0]["decision"]["reasons"][0].as_str().unwrap();
    assert!(why.contains("AI agent cannot confirm by typing"), "{why}");
}

#[test]
fn typeahead_is_not_an_answer() {
    let dir = sandbox("typeahead");
    // "orders" sits in the terminal before prodguard starts; once the prompt
    // shows, "nope" is typed. The answer read must be "nope".
    let (code, screen, marker) = answer_on_a_terminal(dir.path(), &[], "nope", Some("orders"));
    assert_eq!(code, Some(121), "{screen}");
    assert!(!marker.exists(), "typeahead must not run the command");
    let records = records(dir.path());
    assert_eq!(records.len(), 1);
    let why = records[0]["decision"]["reasons"][0].as_str().unwrap();
    assert!(why.contains("typed `nope`"), "{why}");
}

/// Exec at a terminal where the intent cannot be recorded for a reason
/// known in advance: refused with 123 and what to do, never asked first.
fn refused_before_asking(dir: &Path, vars: &[(&str, &str)], what_to_do: &str) {
    let (code, screen, marker) = answer_on_a_terminal(dir, vars, "orders", None);
    assert_eq!(code, Some(123), "{screen}");
    assert!(!marker.exists(), "the command must not run");
    assert!(!screen.contains("anything else cancels"), "asked: {screen}");
    assert!(screen.contains(what_to_do), "says what to do: {screen}");
}

#[test]
fn a_missing_seal_key_refuses_before_asking() {
    let dir = sandbox("nosealkey");
    std::fs::write(
        dir.path().join("prodguard.toml"),
        "[audit]\nseal_key_file = \"missing.key\"\n\n[[rule]]\noperations = [\"*\"]\n\
         tiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\n",
    )
    .unwrap();
    refused_before_asking(dir.path(), &[], "prodguard audit seal-init --key-file");
}

#[test]
fn no_audit_log_anywhere_refuses_before_asking() {
    let dir = sandbox("nolog");
    // No PRODGUARD_AUDIT_LOG, HOME or XDG_STATE_HOME, no [audit] log.
    refused_before_asking(
        dir.path(),
        &[("PRODGUARD_AUDIT_LOG", "")],
        "set PRODGUARD_AUDIT_LOG",
    );
    assert!(!dir.path().join("audit.jsonl").exists());
}
