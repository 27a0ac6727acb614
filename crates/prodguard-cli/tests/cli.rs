//! The `prodguard` binary, run for real with a clean environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

use common::{BIN, Sandbox, answer, code, stderr, stdout};

fn touch_cmd(path: &Path) -> Vec<String> {
    vec!["touch".into(), path.to_string_lossy().into_owned()]
}

fn exec_args<'a>(op: &'a str, target: &'a str, cmd: &'a [String]) -> Vec<&'a str> {
    let mut args = vec!["exec", "--op", op, "--target", target, "--"];
    args.extend(cmd.iter().map(String::as_str));
    args
}

#[test]
fn development_runs_the_command_and_passes_its_exit_code_through() {
    let sb = Sandbox::new("dev");
    let cmd = vec!["sh".to_owned(), "-c".into(), "echo ran; exit 7".into()];
    let out = sb.run(
        &[("PRODGUARD_ENV", "development")],
        &exec_args("db.migrate", "orders", &cmd),
    );
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert_eq!(stdout(&out), "ran\n");
    let records = sb.records();
    assert_eq!(records.len(), 2, "intent and outcome");
    assert_eq!(records[0]["kind"], "intent");
    assert_eq!(records[0]["op"]["env"], "development");
    assert_eq!(records[1]["kind"], "outcome");
    assert_eq!(records[1]["outcome"]["exit_code"], 7);
    assert_eq!(records[1]["outcome"]["status"], "failed");
    assert_eq!(records[0]["attempt_id"], records[1]["attempt_id"]);
    assert_eq!(records[0]["actor"]["user"], "tester");
}

#[test]
fn production_without_a_terminal_refuses_with_121_and_records_it() {
    let sb = Sandbox::new("prod-notty");
    let marker = sb.path("ran");
    let out = sb.run(
        &[("APP_ENV", "production")],
        &exec_args("db.migrate", "orders", &touch_cmd(&marker)),
    );
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    assert!(!marker.exists(), "the command must not run");
    let err = stderr(&out);
    assert!(err.contains("no terminal"), "{err}");
    assert!(
        err.contains("default: protected tiers"),
        "names the rule: {err}"
    );
    assert!(err.contains("type `orders`"), "says what to do: {err}");
    assert!(err.contains("env:APP_ENV"), "says why: {err}");
    let records = sb.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["kind"], "refusal");
    assert_eq!(records[0]["decision"]["exit_code"], 121);
}

#[test]
fn an_undeclared_environment_is_guarded_like_production() {
    let sb = Sandbox::new("unknown");
    let marker = sb.path("ran");
    let out = sb.run(&[], &exec_args("cache.flush", "redis", &touch_cmd(&marker)));
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    assert!(!marker.exists());
    let detect = sb.run(&[], &["detect"]);
    assert!(
        stdout(&detect).contains("PRODGUARD_ENV"),
        "names what would declare it: {}",
        stdout(&detect)
    );
}

/// Whether `text` holds a character that could steer a terminal: a
/// control (ESC, CR, LF within a line…), a bidirectional or zero-width one.
fn steers_a_terminal(line: &str) -> bool {
    line.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}')
    })
}

#[test]
fn outside_text_reaches_stderr_escaped() {
    let sb = Sandbox::new("escaped");
    let marker = sb.path("ran");
    let touch = touch_cmd(&marker);
    // An environment's name from PRODGUARD_ENV, and from OTEL percent-encoded.
    for (var, value) in [
        ("PRODGUARD_ENV", "\u{1b}[31mprod\r\nX\u{202e}"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=%1b[31mprod%0d%0aX%E2%80%AE",
        ),
    ] {
        let out = sb.run(&[(var, value)], &exec_args("db.migrate", "orders", &touch));
        assert_eq!(code(&out), 121, "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("environment: \\u{1b}[31mprod\\r\\nx\\u{202e} (tier unknown)"),
            "{var}: {err}"
        );
        for line in err.lines() {
            assert!(!steers_a_terminal(line), "{var}: {line:?}");
        }
    }
    // An operation's name and a target that cannot be typed back.
    for args in [
        exec_args("db.\u{1b}]0;owned\u{7}migrate", "orders", &touch),
        exec_args("db.migrate", "sredro\u{202e}.db", &touch),
        exec_args("db.migrate", "or\u{200b}ders", &touch),
    ] {
        let out = sb.run(&[("PRODGUARD_ENV", "production")], &args);
        assert_eq!(code(&out), 125, "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("\\u{"), "shows what it refused: {err}");
        for line in err.lines() {
            assert!(!steers_a_terminal(line), "{line:?}");
        }
    }
    assert!(!marker.exists());
    // The two refusals above; usage errors are not attempts.
    assert_eq!(sb.records().len(), 2);
}

#[test]
fn cli_refusals_suggest_the_real_commands() {
    let sb = Sandbox::new("hints");
    let marker = sb.path("ran");
    let out = sb.run(
        &[("PRODGUARD_ENV", "production")],
        &exec_args("db.migrate", "my orders", &touch_cmd(&marker)),
    );
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`prodguard approve --key FILE --op db.migrate --target 'my orders'`"),
        "{err}"
    );
    assert!(
        err.contains("with --approval TOKEN or in PRODGUARD_APPROVAL"),
        "{err}"
    );
    assert!(
        err.contains("`prodguard check --op db.migrate --target 'my orders'`"),
        "{err}"
    );
    assert!(!err.contains('…'), "{err}");
    // Without a target there is no token to get: no token advice.
    let out = sb.run(
        &[("PRODGUARD_ENV", "production")],
        &["exec", "--op", "cache.flush", "--", "true"],
    );
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("approv"), "{err}");
    assert!(err.contains("type `production` when asked"), "{err}");
    // Nothing declares the environment: declaring it is said first.
    let out = sb.run(&[], &exec_args("db.migrate", "orders", &touch_cmd(&marker)));
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "next step: nothing declares the environment: set PRODGUARD_ENV (e.g. PRODGUARD_ENV=development)"
        ),
        "{err}"
    );
    assert!(!marker.exists());
}

#[test]
fn a_dev_declaration_does_not_override_a_production_one() {
    let sb = Sandbox::new("conflict");
    let marker = sb.path("ran");
    let vars = [("PRODGUARD_ENV", "development"), ("APP_ENV", "production")];
    let out = sb.run(
        &vars,
        &exec_args("db.migrate", "orders", &touch_cmd(&marker)),
    );
    assert_eq!(code(&out), 121);
    assert!(!marker.exists());
    let json = answer(&sb.run(&vars, &["detect", "--json"]));
    assert_eq!(json["tier"], "production");
    assert_eq!(json["protected"], true);
    assert_eq!(json["conflicts"].as_array().unwrap().len(), 1);
}

#[test]
fn missing_and_unexecutable_commands_exit_127_and_126() {
    let sb = Sandbox::new("127");
    let vars = [("PRODGUARD_ENV", "development")];
    let missing = vec!["/nonexistent/definitely-not-here".to_owned()];
    let out = sb.run(&vars, &exec_args("db.migrate", "t", &missing));
    assert_eq!(code(&out), 127, "{}", stderr(&out));
    let script = sb.path("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let cmd = vec![script.to_string_lossy().into_owned()];
    let out = sb.run(&vars, &exec_args("db.migrate", "t", &cmd));
    assert_eq!(code(&out), 126, "{}", stderr(&out));
    let records = sb.records();
    assert_eq!(records.last().unwrap()["outcome"]["exit_code"], 126);
}

/// Runs `prodguard ARGS` with its standard output and error on a pipe
/// whose reader has gone (`prodguard exec … 2>&1 | head -1` once `head`
/// has left), and returns its exit code.
fn code_with_output_closed(sb: &Sandbox, vars: &[(&str, &str)], args: &[&str]) -> i32 {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = sb
        .command(vars, args)
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .status()
        .unwrap();
    status.code().expect("exited normally")
}

/// Runs `prodguard ARGS` with its standard output on `/dev/full` (every
/// write fails with ENOSPC) and returns its exit code.
fn code_with_stdout_full(sb: &Sandbox, vars: &[(&str, &str)], args: &[&str]) -> i32 {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let status = sb
        .command(vars, args)
        .stdout(full)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    status.code().expect("exited normally")
}

#[test]
fn a_lost_output_never_turns_into_another_answer() {
    let sb = Sandbox::new("lost-output");
    let dev = [("PRODGUARD_ENV", "development")];
    let prod = [("PRODGUARD_ENV", "production")];
    for i in 1..=3 {
        let out = sb.run(&dev, &["audit", "record", "--message", &format!("n{i}")]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    // A check's code is its answer, printed or not.
    let check = ["check", "--op", "db.migrate", "--target", "orders"];
    assert_eq!(code_with_output_closed(&sb, &prod, &check), 121);
    assert_eq!(code_with_stdout_full(&sb, &prod, &check), 121);
    // An intact log's verify on a full disk is not "tampered" (1): its
    // success could not be reported.
    assert_eq!(code_with_stdout_full(&sb, &dev, &["audit", "verify"]), 74);
    assert_eq!(
        code_with_output_closed(&sb, &dev, &["audit", "verify"]),
        141
    );
    assert_eq!(code_with_output_closed(&sb, &dev, &check), 141);
    assert_eq!(code_with_output_closed(&sb, &dev, &["audit", "show"]), 141);
    let text = std::fs::read_to_string(sb.audit_log()).unwrap();
    std::fs::write(sb.audit_log(), text.replacen("n2", "n9", 1)).unwrap();
    assert_eq!(code_with_stdout_full(&sb, &dev, &["audit", "verify"]), 1);
    assert_eq!(code_with_output_closed(&sb, &dev, &["audit", "verify"]), 1);
}

#[test]
fn a_closed_stderr_changes_no_exit_code_and_no_record() {
    let sb = Sandbox::new("closed-stderr");
    let marker = sb.path("ran");
    let touch = touch_cmd(&marker);
    let prod = [("APP_ENV", "production")];
    assert_eq!(
        code_with_output_closed(&sb, &prod, &exec_args("db.migrate", "orders", &touch)),
        121,
        "not confirmed"
    );
    let blocked = sb.path("blocker").join("audit.jsonl");
    std::fs::write(sb.path("blocker"), b"x").unwrap();
    let no_log = [
        ("APP_ENV", "production"),
        ("PRODGUARD_AUDIT_LOG", blocked.to_str().unwrap()),
    ];
    assert_eq!(
        code_with_output_closed(&sb, &no_log, &exec_args("db.migrate", "orders", &touch)),
        123,
        "audit unavailable"
    );
    let dev = [("PRODGUARD_ENV", "development")];
    assert_eq!(
        code_with_output_closed(&sb, &dev, &exec_args("DROP TABLE", "orders", &touch)),
        125,
        "invalid operation"
    );
    assert_eq!(
        code_with_output_closed(&sb, &dev, &["exec", "--op", "x"]),
        125
    );
    assert!(!marker.exists());

    let missing = vec!["/nonexistent/definitely-not-here".to_owned()];
    assert_eq!(
        code_with_output_closed(&sb, &dev, &exec_args("db.migrate", "t", &missing)),
        127
    );
    let last = sb.records().pop().unwrap();
    assert_eq!(last["kind"], "outcome");
    assert_eq!(last["outcome"]["status"], "failed", "{last}");
    assert_eq!(last["outcome"]["exit_code"], 127, "{last}");

    let seven = vec!["sh".to_owned(), "-c".into(), "exit 7".into()];
    assert_eq!(
        code_with_output_closed(&sb, &dev, &exec_args("db.migrate", "t", &seven)),
        7
    );
    assert_eq!(sb.records().pop().unwrap()["outcome"]["exit_code"], 7);
}

#[test]
fn the_command_gets_the_default_sigpipe_back() {
    // `prodguard exec -- yes | head -1`: prodguard ignores SIGPIPE (as Rust
    // programs do); `yes` must not, or it would fail with EPIPE instead
    // of ending quietly as it does without prodguard.
    use std::io::BufRead;
    let sb = Sandbox::new("sigpipe");
    let yes = vec!["yes".to_owned()];
    let mut child = sb
        .command(
            &[("PRODGUARD_ENV", "development")],
            &exec_args("db.migrate", "t", &yes),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "y\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("`yes` kept running after its reader left");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    // 128 + SIGPIPE, as a shell reports a command the signal ended.
    assert_eq!(status.code(), Some(141), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    let last = sb.records().pop().unwrap();
    assert_eq!(last["outcome"]["exit_code"], 141, "{last}");
}

#[test]
fn a_broken_policy_is_a_125_naming_line_and_column() {
    let sb = Sandbox::new("badpolicy");
    std::fs::write(
        sb.path("prodguard.toml"),
        "[[rule]]\noperations = [\"db.migrate\"]\nrequre = [\"confirm\"]\n",
    )
    .unwrap();
    let marker = sb.path("ran");
    let out = sb.run(
        &[("PRODGUARD_ENV", "development")],
        &exec_args("db.migrate", "t", &touch_cmd(&marker)),
    );
    assert_eq!(code(&out), 125);
    assert!(!marker.exists());
    let err = stderr(&out);
    assert!(err.contains("prodguard.toml:3:1"), "{err}");
    assert!(err.contains("require"), "suggests the key: {err}");

    let check = sb.run(&[], &["policy", "check", "prodguard.toml"]);
    assert_eq!(code(&check), 125);
    std::fs::write(
        sb.path("bad.toml"),
        b"[environment]\nunknown = \"prot\xffected\"\n",
    )
    .unwrap();
    let out = sb.run(&[], &["policy", "check", "bad.toml"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("bad.toml:2:16"), "{}", stderr(&out));
}

#[test]
fn a_backup_command_without_verify_is_a_policy_error_before_anything_runs() {
    // Once refused at run time (122) after the backup command had run; now
    // the policy itself is refused (125) and neither command runs.
    let sb = Sandbox::new("noverify");
    let backup_ran = sb.path("backup-ran");
    std::fs::write(
        sb.path("prodguard.toml"),
        format!(
            "[[rule]]\noperations = [\"db.migrate\"]\nrequire = [\"backup\"]\nbackup = {{ command = \"touch {}\" }}\n",
            backup_ran.display()
        ),
    )
    .unwrap();
    let marker = sb.path("ran");
    let out = sb.run(
        &[("PRODGUARD_ENV", "development")],
        &exec_args("db.migrate", "t", &touch_cmd(&marker)),
    );
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(!marker.exists() && !backup_ran.exists());
    let err = stderr(&out);
    assert!(err.contains("prodguard.toml:4:12"), "{err}");
    assert!(err.contains("add verify = "), "{err}");
    assert_eq!(
        code(&sb.run(&[], &["policy", "check", "prodguard.toml"])),
        125
    );
}

#[test]
fn a_deny_rule_refuses_with_120() {
    let sb = Sandbox::new("deny");
    std::fs::write(
        sb.path("prodguard.toml"),
        "[[rule]]\noperations = [\"db.drop\"]\ntiers = [\"production\"]\ndeny = \"never from an app\"\n",
    )
    .unwrap();
    let marker = sb.path("ran");
    let out = sb.run(
        &[("APP_ENV", "prod")],
        &exec_args("db.drop", "orders", &touch_cmd(&marker)),
    );
    assert_eq!(code(&out), 120, "{}", stderr(&out));
    assert!(stderr(&out).contains("never from an app"));
    assert!(!marker.exists());
    assert_eq!(sb.records()[0]["decision"]["exit_code"], 120);
}

#[test]
fn an_unwritable_audit_log_refuses_with_123_where_audit_is_required() {
    let sb = Sandbox::new("noaudit");
    std::fs::write(sb.path("blocker"), b"x").unwrap();
    let log = sb.path("blocker").join("audit.jsonl");
    std::fs::write(
        sb.path("prodguard.toml"),
        "[[rule]]\noperations = [\"*\"]\ntiers = [\"development\"]\nrequire = [\"audit\"]\n",
    )
    .unwrap();
    let marker = sb.path("ran");
    let vars = [
        ("PRODGUARD_ENV", "development"),
        ("PRODGUARD_AUDIT_LOG", log.to_str().unwrap()),
    ];
    let out = sb.run(&vars, &exec_args("db.migrate", "t", &touch_cmd(&marker)));
    assert_eq!(code(&out), 123, "{}", stderr(&out));
    assert!(!marker.exists());
    assert!(stderr(&out).contains("audit"), "{}", stderr(&out));
}

#[test]
fn check_is_a_dry_run_with_script_friendly_codes() {
    let sb = Sandbox::new("check");
    let prod = sb.run(
        &[("APP_ENV", "production")],
        &["check", "--op", "db.migrate", "--target", "orders"],
    );
    assert_eq!(code(&prod), 121);
    assert!(
        stdout(&prod).contains("requires confirm + audit"),
        "{}",
        stdout(&prod)
    );
    let dev = sb.run(
        &[("APP_ENV", "development")],
        &["check", "--op", "db.migrate", "--json"],
    );
    assert_eq!(code(&dev), 0);
    let json = answer(&dev);
    assert_eq!(json["decision"]["result"], "allow");
    assert!(sb.records().is_empty(), "check records nothing");
    let bad = sb.run(&[], &["check", "--op", "DROP TABLE"]);
    assert_eq!(code(&bad), 125);
}

/// `check` and `exec` of `db.migrate` on `orders` under `vars`: check's
/// code, its text and its JSON must give the refusal exec gives.
fn check_agrees_with_exec(sb: &Sandbox, vars: &[(&str, &str)], expected: i32, why: &str) {
    let marker = sb.path("ran");
    let check = sb.run(vars, &["check", "--op", "db.migrate", "--target", "orders"]);
    let text = stdout(&check);
    assert_eq!(code(&check), expected, "{text}{}", stderr(&check));
    let verdict = text.lines().next().unwrap_or_default();
    assert!(
        verdict.ends_with(&format!(": REFUSED with {expected}")),
        "{text}"
    );
    assert!(text.contains(why), "{text}");
    let json = sb.run(
        vars,
        &[
            "check",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--json",
        ],
    );
    assert_eq!(code(&json), expected);
    let json = answer(&json);
    assert_eq!(json["exit_code"], expected, "{json}");
    assert_eq!(json["refusal"]["exit_code"], expected, "{json}");
    assert_eq!(json["refusal"]["recorded"], false, "{json}");
    let exec = sb.run(
        vars,
        &exec_args("db.migrate", "orders", &touch_cmd(&marker)),
    );
    assert_eq!(code(&exec), expected, "{}", stderr(&exec));
    assert!(stderr(&exec).contains(why), "{}", stderr(&exec));
    assert!(!marker.exists());
}

#[test]
fn check_gives_the_refusal_exec_gives_for_the_audit_log_and_the_fleet_lock() {
    let sb = Sandbox::new("check-agrees");
    std::fs::write(sb.path("blocker"), b"x").unwrap();
    let blocked = sb.path("blocker").join("audit.jsonl");
    let blocked = blocked.to_str().unwrap();
    std::fs::write(
        sb.path("prodguard.toml"),
        "[[rule]]\noperations = [\"*\"]\ntiers = [\"development\"]\nrequire = [\"audit\"]\n",
    )
    .unwrap();
    // Exited 0 ("allowed") although exec refuses with 123.
    let dev = [
        ("PRODGUARD_ENV", "development"),
        ("PRODGUARD_AUDIT_LOG", blocked),
    ];
    check_agrees_with_exec(&sb, &dev, 123, "the audit log is unavailable");
    // Exited 121 ("requires confirm + audit"): exec checks the log first.
    std::fs::remove_file(sb.path("prodguard.toml")).unwrap();
    let prod = [("APP_ENV", "production"), ("PRODGUARD_AUDIT_LOG", blocked)];
    check_agrees_with_exec(&sb, &prod, 123, "the audit log is unavailable");

    // A fleet lock whose server does not answer (nothing listens on port 1).
    std::fs::write(
        sb.path("prodguard.toml"),
        "[fleet]\nlock = \"postgresql://prodguard@127.0.0.1:1/fleet\"\n\n[[rule]]\n\
         operations = [\"*\"]\ntiers = [\"development\"]\nrequire = [\"audit\"]\n",
    )
    .unwrap();
    let fleet = [("PRODGUARD_ENV", "development")];
    let check = sb.run(
        &fleet,
        &["check", "--op", "db.migrate", "--target", "orders"],
    );
    assert!(sb.records().is_empty(), "check records nothing");
    assert_eq!(code(&check), 123, "{}", stdout(&check));
    check_agrees_with_exec(&sb, &fleet, 123, "the fleet lock cannot be taken");
}

#[test]
fn usage_errors_exit_125_and_help_exits_0() {
    let sb = Sandbox::new("usage");
    assert_eq!(code(&sb.run(&[], &["exec", "--op", "x"])), 125);
    assert_eq!(code(&sb.run(&[], &["frobnicate"])), 125);
    let help = sb.run(&[], &["--help"]);
    assert_eq!(code(&help), 0);
    assert!(stdout(&help).contains("121  confirmation missing or declined"));
}

#[test]
fn detect_explain_lists_every_signal() {
    let sb = Sandbox::new("explain");
    let out = sb.run(&[("RAILS_ENV", "staging")], &["detect", "--explain"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    assert!(
        text.contains("environment: staging (tier staging)"),
        "{text}"
    );
    for signal in [
        "env:PRODGUARD_ENV",
        "env:APP_ENV",
        "env:RAILS_ENV",
        "env:NODE_ENV",
        "/etc/prodguard/environment",
    ] {
        assert!(text.contains(signal), "{signal} missing from:\n{text}");
    }
    let json = answer(&sb.run(&[("RAILS_ENV", "staging")], &["detect", "--json"]));
    for key in [
        "environment",
        "tier",
        "protected",
        "decided_by",
        "evidence",
        "conflicts",
    ] {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
}

#[test]
fn signals_reach_the_child_and_its_code_comes_back() {
    let sb = Sandbox::new("signals");
    let ready = sb.path("ready");
    let script = format!(
        "trap 'exit 42' TERM; touch {}; while true; do sleep 0.05; done",
        ready.display()
    );
    let cmd = vec!["sh".to_owned(), "-c".into(), script];
    let mut child = sb
        .command(
            &[("PRODGUARD_ENV", "development")],
            &exec_args("svc.restart", "t", &cmd),
        )
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready.exists() {
        assert!(std::time::Instant::now() < deadline, "child never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // `setsid -w` forks: signal the prodguard process, its child.
    let pgrep = Command::new("pgrep")
        .args(["-P", &child.id().to_string()])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pgrep.stdout).trim().to_owned();
    assert!(!pid.is_empty(), "prodguard process not found");
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));
    assert_eq!(sb.records().last().unwrap()["outcome"]["exit_code"], 42);
}

/// Waits up to 20 s for `done`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A prodguard process, killed (with its command) if the test fails first.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn ended(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .trim_start()
            .starts_with('Z'),
        Err(_) => true,
    }
}

#[test]
fn kill_9_of_prodguard_kills_its_command_and_the_next_run_records_it_abandoned() {
    let sb = Sandbox::new("kill9");
    let dev = [("PRODGUARD_ENV", "development")];
    // Two long commands, each writing its pid once it runs.
    let start = |name: &str| {
        let pid_file = sb.path(name);
        let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
        let cmd = vec!["sh".to_owned(), "-c".into(), script];
        let child = sb
            .command(&dev, &exec_args("db.migrate", name, &cmd))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the command never started", || {
            std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))
        });
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .to_owned();
        (Reaped(child), pid)
    };
    let (mut killed, killed_command) = start("killed");
    let (mut alive, alive_command) = start("alive");
    let intent_of = |target: &str| {
        sb.records()
            .into_iter()
            .find(|r| r["kind"] == "intent" && r["op"]["target"] == target)
            .unwrap()["attempt_id"]
            .clone()
    };
    let (killed_attempt, alive_attempt) = (intent_of("killed"), intent_of("alive"));

    // A run in another PID namespace (same host name) sees neither process;
    // it must not call them gone.
    let other_ns = Command::new("unshare")
        .args(["-p", "-f", "--mount-proc", BIN])
        .args(["audit", "record", "--message", "from another pid namespace"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", sb.path(""))
        .env("PRODGUARD_AUDIT_LOG", sb.audit_log())
        .env("PRODGUARD_ENV", "development")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if other_ns.status.success() {
        let records = sb.records();
        assert!(
            records.iter().all(|r| r["kind"] != "outcome"),
            "a run in another PID namespace marked a live attempt: {records:?}"
        );
    } else {
        eprintln!("skipped: unshare -p: {}", stderr(&other_ns));
    }

    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    wait_for("the command outlived prodguard", || ended(&killed_command));

    let out = sb.run(&dev, &exec_args("db.migrate", "next", &["true".to_owned()]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let records = sb.records();
    let outcomes = |attempt: &serde_json::Value| {
        records
            .iter()
            .filter(|r| r["kind"] == "outcome" && &r["attempt_id"] == attempt)
            .cloned()
            .collect::<Vec<_>>()
    };
    let noted = outcomes(&killed_attempt);
    assert_eq!(noted.len(), 1, "{records:?}");
    assert_eq!(noted[0]["outcome"]["status"], "abandoned");
    assert_eq!(noted[0]["op"]["target"], "killed");
    let why = noted[0]["outcome"]["error"].as_str().unwrap();
    assert!(why.contains("found by a later run"), "{why}");
    assert!(
        outcomes(&alive_attempt).is_empty(),
        "a live attempt is never marked: {records:?}"
    );

    // It ends normally, and is recorded as it ended.
    let term = ["-TERM", &alive.0.id().to_string()];
    assert!(Command::new("kill").args(term).status().unwrap().success());
    alive.0.wait().unwrap();
    assert!(ended(&alive_command));
    let records = sb.records();
    let ended_alive: Vec<_> = records
        .iter()
        .filter(|r| r["kind"] == "outcome" && r["attempt_id"] == alive_attempt)
        .collect();
    assert_eq!(ended_alive.len(), 1, "{records:?}");
    assert_eq!(ended_alive[0]["outcome"]["exit_code"], 143);
    let verify = sb.run(&[], &["audit", "verify"]);
    assert_eq!(code(&verify), 0, "{}", stdout(&verify));
}

#[test]
fn concurrent_processes_share_one_intact_chain() {
    let sb = Sandbox::new("procs");
    let cmd = vec!["true".to_owned()];
    let children: Vec<_> = (0..4)
        .map(|_| {
            let args: Vec<String> = exec_args("db.migrate", "t", &cmd)
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            let mut c = Command::new("sh");
            let mut script = String::new();
            for _ in 0..10 {
                script.push_str(&format!("{BIN} {} || exit 1\n", args.join(" ")));
            }
            c.arg("-c")
                .arg(script)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap())
                .env("PRODGUARD_ENV", "development")
                .env("PRODGUARD_AUDIT_LOG", sb.audit_log())
                .current_dir(sb.path(""))
                .stdin(Stdio::null());
            c.spawn().unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(sb.records().len(), 80, "40 intents + 40 outcomes");
    let verify = sb.run(
        &[],
        &["audit", "verify", "--log", sb.audit_log().to_str().unwrap()],
    );
    assert_eq!(code(&verify), 0, "{}", stdout(&verify));
    assert!(stdout(&verify).contains("intact, 80 records"));
}

#[test]
fn policy_show_prints_policies_that_parse_back() {
    let sb = Sandbox::new("show");
    let default = sb.run(&[], &["policy", "show", "--default"]);
    assert_eq!(code(&default), 0);
    std::fs::write(sb.path("default.toml"), default.stdout).unwrap();
    let check = sb.run(&[], &["policy", "check", "default.toml"]);
    assert_eq!(code(&check), 0, "{}", stderr(&check));
    assert!(stdout(&check).contains("ok (1 rule)"), "{}", stdout(&check));

    std::fs::write(
        sb.path("prodguard.toml"),
        "[environment]\naliases = { \"prod-eu\" = \"production\" }\n[[rule]]\noperations = [\"db.*\"]\nrequire = [\"audit\"]\n",
    )
    .unwrap();
    let shown = sb.run(&[], &["policy", "show"]);
    assert_eq!(code(&shown), 0);
    let text = stdout(&shown);
    assert!(text.contains("prod-eu"), "{text}");
    std::fs::write(sb.path("shown.toml"), &text).unwrap();
    assert_eq!(code(&sb.run(&[], &["policy", "check", "shown.toml"])), 0);
    // The local policy's alias is what detection uses.
    let json = answer(&sb.run(&[("APP_ENV", "prod-eu")], &["detect", "--json"]));
    assert_eq!(json["tier"], "production");
    assert_eq!(json["environment"], "prod-eu");
}

#[test]
fn the_readme_policy_is_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("## A policy")
        .expect("README has a policy section");
    let block = &readme[start..];
    let toml_start = block.find("```toml\n").unwrap() + "```toml\n".len();
    let toml_end = toml_start + block[toml_start..].find("```").unwrap();
    let sb = Sandbox::new("readme");
    std::fs::write(sb.path("readme.toml"), &block[toml_start..toml_end]).unwrap();
    let out = sb.run(&[], &["policy", "check", "readme.toml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn ci_alone_does_not_turn_the_guards_off() {
    let sb = Sandbox::new("ci");
    let marker = sb.path("ran");
    let out = sb.run(
        &[("CI", "true"), ("GITHUB_ACTIONS", "true")],
        &exec_args("db.drop", "orders", &touch_cmd(&marker)),
    );
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    assert!(!marker.exists());
    assert_eq!(sb.records()[0]["actor"]["kind"], "ci");
    // A test suite says what it is.
    let out = sb.run(
        &[("CI", "true"), ("PRODGUARD_ENV", "test")],
        &exec_args("db.drop", "orders", &touch_cmd(&marker)),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(marker.exists());
}

#[test]
fn targets_that_cannot_be_typed_are_refused_with_125() {
    let sb = Sandbox::new("badtarget");
    let marker = sb.path("ran");
    for target in ["", " orders", "orders\u{1b}[1A"] {
        let out = sb.run(
            &[("APP_ENV", "production")],
            &exec_args("db.migrate", target, &touch_cmd(&marker)),
        );
        assert_eq!(code(&out), 125, "{target:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("could not be written"),
            "{}",
            stderr(&out)
        );
    }
    assert!(!marker.exists());
}

#[test]
fn a_policy_without_rules_is_refused() {
    let sb = Sandbox::new("norules");
    std::fs::write(sb.path("prodguard.toml"), "").unwrap();
    let marker = sb.path("ran");
    let out = sb.run(
        &[("APP_ENV", "production")],
        &exec_args("db.drop", "orders", &touch_cmd(&marker)),
    );
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing would be guarded"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists());
}

#[test]
fn an_unwritable_log_in_production_refuses_with_123_before_asking() {
    let sb = Sandbox::new("prod-noaudit");
    std::fs::write(sb.path("blocker"), b"x").unwrap();
    let log = sb.path("blocker").join("audit.jsonl");
    let marker = sb.path("ran");
    let vars = [
        ("APP_ENV", "production"),
        ("PRODGUARD_AUDIT_LOG", log.to_str().unwrap()),
    ];
    let out = sb.run(
        &vars,
        &exec_args("db.migrate", "orders", &touch_cmd(&marker)),
    );
    assert_eq!(
        code(&out),
        123,
        "not 121: the log is checked first: {}",
        stderr(&out)
    );
    assert!(!marker.exists());
}

#[test]
fn a_signal_sent_to_prodguard_is_forwarded_even_at_a_terminal() {
    // Under script(1) prodguard is in the terminal's foreground group; a
    // `kill` from another process must still reach the child.
    let sb = Sandbox::new("sigpty");
    let ready = sb.path("ready");
    let inner = format!(
        "{BIN} exec --op svc.restart -- sh -c 'trap \"exit 42\" INT; touch {}; while true; do sleep 0.05; done'",
        ready.display()
    );
    let mut child = Command::new("setsid")
        .args(["-w", "script", "-qec", &inner, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("PRODGUARD_ENV", "development")
        .env("PRODGUARD_AUDIT_LOG", sb.audit_log())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready.exists() {
        assert!(std::time::Instant::now() < deadline, "child never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pgrep = Command::new("pgrep")
        .args(["-f", "-x", &format!("{BIN} exec --op svc.restart.*")])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pgrep.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(!pid.is_empty(), "prodguard process not found");
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));
    drop(child.stdin.take());
}

#[test]
fn audit_commands_cover_record_show_head_verify_and_repair() {
    let sb = Sandbox::new("auditcmds");
    let log = sb.audit_log();
    let log_arg = log.to_str().unwrap();
    for i in 1..=3 {
        let out = sb.run(
            &[],
            &["audit", "record", "--message", &format!("deploy step {i}")],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), i.to_string(), "prints the durable seq");
    }
    let show = sb.run(&[], &["audit", "show", "--log", log_arg]);
    assert!(
        stdout(&show).contains("\"deploy step 2\""),
        "{}",
        stdout(&show)
    );
    assert!(
        stdout(&show).contains("tester (service)"),
        "{}",
        stdout(&show)
    );
    let jsonl = sb.run(&[], &["audit", "show", "--jsonl"]);
    assert_eq!(
        stdout(&jsonl),
        std::fs::read_to_string(&log).unwrap(),
        "records exactly as stored"
    );
    let records = answer(&sb.run(&[], &["audit", "show", "--json"]))["records"].clone();
    assert_eq!(records.as_array().unwrap().len(), 3, "{records:#}");
    assert_eq!(records[1]["message"], "deploy step 2", "{records:#}");

    let head = sb.run(&[], &["audit", "head"]);
    assert_eq!(code(&head), 0);
    let anchor: serde_json::Value = serde_json::from_str(&stdout(&head)).unwrap();
    assert_eq!(anchor["seq"], 3);
    std::fs::write(sb.path("anchor.json"), stdout(&head)).unwrap();
    let verify = sb.run(&[], &["audit", "verify", "--anchor", "anchor.json"]);
    assert_eq!(code(&verify), 0, "{}", stdout(&verify));
    assert!(stdout(&verify).contains("anchor reached"));

    // A torn tail: exit 2, repair cuts it, verify passes again.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"{\"v\":1,\"log_id\":\"");
    std::fs::write(&log, &bytes).unwrap();
    assert_eq!(code(&sb.run(&[], &["audit", "verify"])), 2);
    let repair = sb.run(&[], &["audit", "repair"]);
    assert_eq!(code(&repair), 0, "{}", stderr(&repair));
    assert!(
        stdout(&repair).contains("recovery recorded as seq 4"),
        "{}",
        stdout(&repair)
    );
    assert_eq!(
        code(&sb.run(&[], &["audit", "verify", "--anchor", "anchor.json"])),
        0
    );

    // Rolled back to two records: the anchor is not reached.
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: Vec<&str> = text.lines().take(2).collect();
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    assert_eq!(
        code(&sb.run(&[], &["audit", "verify"])),
        0,
        "the chain alone cannot tell"
    );
    assert_eq!(
        code(&sb.run(&[], &["audit", "verify", "--anchor", "anchor.json"])),
        3
    );

    // An edit: exit 1, and repair refuses.
    std::fs::write(
        &log,
        std::fs::read_to_string(&log)
            .unwrap()
            .replace("step 1", "step 9"),
    )
    .unwrap();
    let verify = sb.run(&[], &["audit", "verify"]);
    assert_eq!(code(&verify), 1);
    assert!(stdout(&verify).contains("line 1"), "{}", stdout(&verify));
    let repair = sb.run(&[], &["audit", "repair"]);
    assert_eq!(code(&repair), 1);
    assert!(stderr(&repair).contains("evidence"), "{}", stderr(&repair));

    let missing = sb.run(
        &[],
        &["audit", "verify", "--log", "/nonexistent/audit.jsonl"],
    );
    assert_eq!(code(&missing), 123);
}

#[test]
fn audit_show_escapes_control_and_bidi_characters_in_every_field() {
    let sb = Sandbox::new("showescape");
    // Both names come from the environment: whoever sets it chooses them.
    let actor = "ev\u{1b}[2Jil\r\n     9  forged\u{202e}line";
    let env = "prod\u{1b}]0;title\u{7}\nuction\u{2066}";
    let out = sb.run(
        &[("PRODGUARD_ACTOR", actor), ("PRODGUARD_ENV", env)],
        &["exec", "--op", "db.migrate", "--", "true"],
    );
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    assert_eq!(sb.records()[0]["op"]["env"], env, "recorded as given");
    let show = stdout(&sb.run(&[], &["audit", "show"]));
    assert_eq!(show.lines().count(), 1, "one record, one line: {show:?}");
    assert!(
        !show.contains(['\u{1b}', '\r', '\u{7}', '\u{202e}', '\u{2066}']),
        "{show:?}"
    );
    assert!(
        show.contains("ev\\u{1b}[2Jil\\r\\n     9  forged\\u{202e}line (service)"),
        "{show}"
    );
    assert!(
        show.contains("db.migrate in prod\\u{1b}]0;title\\u{7}\\nuction\\u{2066}"),
        "{show}"
    );
    // JSON Lines stay the bytes as stored (JSON escapes what it must),
    // and the envelope holds the values as recorded.
    let jsonl = stdout(&sb.run(&[], &["audit", "show", "--jsonl"]));
    assert_eq!(jsonl, std::fs::read_to_string(sb.audit_log()).unwrap());
    let records = answer(&sb.run(&[], &["audit", "show", "--json"]))["records"].clone();
    assert_eq!(records[0]["op"]["env"], env, "{records:#}");
}

#[test]
fn a_changed_final_record_without_its_newline_is_tampering_not_a_torn_tail() {
    let sb = Sandbox::new("lastedit");
    let log = sb.audit_log();
    for i in 1..=3 {
        let out = sb.run(&[], &["audit", "record", "--message", &format!("step {i}")]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let intact = std::fs::read(&log).unwrap();

    // The last record edited and its newline dropped: tampering, and repair
    // refuses it and changes nothing.
    let text = String::from_utf8(intact.clone()).unwrap();
    let edited = text.trim_end().replace("step 3", "step 8");
    std::fs::write(&log, &edited).unwrap();
    let verify = sb.run(&[], &["audit", "verify"]);
    assert_eq!(code(&verify), 1, "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("TAMPERED") && stdout(&verify).contains("line 3"),
        "{}",
        stdout(&verify)
    );
    let repair = sb.run(&[], &["audit", "repair"]);
    assert_eq!(code(&repair), 1, "{}", stdout(&repair));
    assert!(stderr(&repair).contains("evidence"), "{}", stderr(&repair));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        edited,
        "left as it was"
    );
    assert_eq!(code(&sb.run(&[], &["audit", "verify"])), 1);
    // A writer refuses to append to it, without calling it a crash or
    // sending the reader straight to repair.
    let append = sb.run(&[], &["audit", "record", "--message", "step 9"]);
    assert_eq!(code(&append), 123, "{}", stderr(&append));
    assert!(
        stderr(&append).contains("or the record was changed")
            && stderr(&append).contains("prodguard audit verify --log"),
        "{}",
        stderr(&append)
    );

    // The same record unchanged but without its newline is whole: verify
    // says so, and repair restores the newline instead of cutting it.
    std::fs::write(&log, &intact[..intact.len() - 1]).unwrap();
    let verify = sb.run(&[], &["audit", "verify"]);
    assert_eq!(code(&verify), 2, "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("lacks only its newline"),
        "{}",
        stdout(&verify)
    );
    let repair = sb.run(&[], &["audit", "repair"]);
    assert_eq!(code(&repair), 0, "{}", stderr(&repair));
    assert!(
        stdout(&repair).contains("nothing cut"),
        "{}",
        stdout(&repair)
    );
    assert!(std::fs::read(&log).unwrap().starts_with(&intact));
    assert_eq!(code(&sb.run(&[], &["audit", "verify"])), 0);
    assert_eq!(sb.records()[2]["message"], "step 3");
}

/// A sandbox whose policy seals its log (`[audit]` keys `audit` plus the
/// seal key file; every operation requires audit, in `tiers`), after
/// `audit seal-init` (the verification key is in `verify.key`) and `notes`
/// notes `n1`, `n2`…. Returns the sandbox and seal-init's output.
fn sealed_sandbox(name: &str, audit: &str, tiers: &str, notes: usize) -> (Sandbox, Output) {
    let sb = Sandbox::new(name);
    std::fs::write(
        sb.path("prodguard.toml"),
        format!(
            "[audit]\n{audit}\nseal_key_file = \"{}\"\n[[rule]]\noperations = [\"*\"]\n{tiers}require = [\"audit\"]\n",
            sb.path("seal.key").display()
        ),
    )
    .unwrap();
    let init = sb.run(&[], &["audit", "seal-init"]);
    assert_eq!(code(&init), 0, "{}", stderr(&init));
    std::fs::write(sb.path("verify.key"), stdout(&init)).unwrap();
    for i in 1..=notes {
        let out = sb.run(&[], &["audit", "record", "--message", &format!("n{i}")]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    (sb, init)
}

#[test]
fn seal_init_seal_and_verify_with_the_off_host_key() {
    let (sb, init) = sealed_sandbox("seals", "seal_every = 2", "tiers = [\"production\"]\n", 0);
    assert!(stderr(&init).contains("off this host"), "{}", stderr(&init));
    assert_eq!(
        code(&sb.run(&[], &["audit", "seal-init"])),
        123,
        "created once"
    );

    let out = sb.run(
        &[("APP_ENV", "production")],
        &["exec", "--op", "db.migrate", "--", "true"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Every second record is a seal: intent 1, seal 2, outcome 3, seal 4.
    let verify = sb.run(&[], &["audit", "verify", "--seal-key", "verify.key"]);
    assert_eq!(code(&verify), 0, "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("2 seals verified"),
        "{}",
        stdout(&verify)
    );
    // A note written without sealing (another policy) leaves an unsealed tail.
    std::fs::write(
        sb.path("plain.toml"),
        "[[rule]]\noperations = [\"*\"]\nrequire = [\"audit\"]\n",
    )
    .unwrap();
    let note = sb.run(
        &[],
        &[
            "--policy",
            "plain.toml",
            "audit",
            "record",
            "--message",
            "unsealed",
        ],
    );
    assert_eq!(stdout(&note).trim(), "5");
    let verify = sb.run(&[], &["audit", "verify", "--seal-key", "verify.key"]);
    assert_eq!(code(&verify), 3, "{}", stdout(&verify));
    assert_eq!(stdout(&sb.run(&[], &["audit", "seal"])).trim(), "6");
    let verify = sb.run(&[], &["audit", "verify", "--seal-key", "verify.key"]);
    assert_eq!(code(&verify), 0, "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("3 seals verified"),
        "{}",
        stdout(&verify)
    );
    // The key now on the host cannot verify the first seal.
    let verify = sb.run(&[], &["audit", "verify", "--seal-key", "seal.key"]);
    assert_eq!(code(&verify), 1, "{}", stdout(&verify));
}

/// `lines` re-chained as a forger who knows the format but not the seal key
/// would: renumbered from `first_seq`, every hash recomputed.
fn rechain(lines: &[&str], first_seq: u64, prev: &str) -> String {
    use prodguard_core::Timestamp;
    use prodguard_core::audit::{Envelope, Record, encode_record};
    let mut prev = prev.to_owned();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let record: Record = serde_json::from_str(line).unwrap();
        let envelope = Envelope {
            log_id: record.log_id.clone(),
            seq: first_seq + i as u64,
            ts: Timestamp::parse_rfc3339(&record.ts).unwrap(),
            host: record.host.clone(),
            pid: record.pid,
        };
        let (bytes, hash) = encode_record(&envelope, &record.event, &prev).unwrap();
        out.extend_from_slice(&bytes);
        prev = hash;
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn stripped_seals_are_tampering_and_a_short_unsealed_tail_is_not() {
    let (sb, _) = sealed_sandbox("stripped", "seal_every = 2", "", 10);
    // Notes at odd seqs, seals at even ones: 20 records, the last a seal.
    let log = sb.audit_log();
    let healthy = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = healthy.lines().collect();
    assert_eq!(lines.len(), 20);
    let verify = || sb.run(&[], &["audit", "verify", "--seal-key", "verify.key"]);
    assert_eq!(code(&verify()), 0, "{}", stdout(&verify()));

    // A healthy tail shorter than seal_every (plus the margin) is only unsealed:
    // three notes from a process whose policy does not seal.
    std::fs::write(
        sb.path("plain.toml"),
        "[[rule]]\noperations = [\"*\"]\nrequire = [\"audit\"]\n",
    )
    .unwrap();
    for i in 1..=3 {
        let out = sb.run(
            &[],
            &[
                "--policy",
                "plain.toml",
                "audit",
                "record",
                "--message",
                &format!("u{i}"),
            ],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let out = verify();
    assert_eq!(code(&out), 3, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("the last 3 are not sealed yet"),
        "{}",
        stdout(&out)
    );
    std::fs::write(&log, &healthy).unwrap();

    let is_seal = |l: &&&str| l.contains("\"kind\":\"seal\"");
    // Every seal stripped and the chain recomputed: the chain alone is fooled,
    // the seal check is not.
    let notes: Vec<&str> = lines.iter().filter(|l| !is_seal(l)).copied().collect();
    std::fs::write(
        &log,
        rechain(&notes, 1, prodguard_core::audit::GENESIS_PREV),
    )
    .unwrap();
    assert_eq!(code(&sb.run(&[], &["audit", "verify"])), 0);
    let out = verify();
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("TAMPERED")
            && stdout(&out).contains("a seal is missing: none follows the log's start")
            && stdout(&out).contains("should have followed record 2 (record 4 at the latest"),
        "{}",
        stdout(&out)
    );
    // `--seal-every` says the same without the policy.
    let out = sb.run(
        &[],
        &[
            "--policy",
            "plain.toml",
            "audit",
            "verify",
            "--seal-key",
            "verify.key",
            "--seal-every",
            "2",
        ],
    );
    assert_eq!(code(&out), 1, "{}", stdout(&out));

    // The seals after record 4 stripped: the missing seal is named, and a seal
    // made now with the host's key cannot cover it up.
    let mut kept: Vec<&str> = lines[..4].to_vec();
    kept.extend(lines[4..].iter().filter(|l| !is_seal(l)));
    let head: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
    let tail = rechain(&kept[4..], 5, head["hash"].as_str().unwrap());
    std::fs::write(&log, lines[..4].join("\n") + "\n" + &tail).unwrap();
    let out = verify();
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("none follows the seal at record 4")
            && stdout(&out).contains("should have followed record 6"),
        "{}",
        stdout(&out)
    );
    assert_eq!(code(&sb.run(&[], &["audit", "seal"])), 0);
    assert_eq!(code(&verify()), 1, "{}", stdout(&verify()));

    // Seals stripped from the middle only: the later seals no longer verify.
    let middle: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| !(is_seal(l) && (5..=11).contains(i)))
        .map(|(_, l)| *l)
        .collect();
    std::fs::write(
        &log,
        rechain(&middle, 1, prodguard_core::audit::GENESIS_PREV),
    )
    .unwrap();
    assert_eq!(code(&sb.run(&[], &["audit", "verify"])), 0);
    let out = verify();
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("seal"), "{}", stdout(&out));
}

#[test]
fn prune_drops_whole_rotated_files_and_the_rest_still_verifies() {
    let (sb, _) = sealed_sandbox("prune", "rotate_bytes = 1500\nseal_every = 3", "", 30);
    let log = sb.audit_log();
    let rotated = prodguard::audit::rotated_files(&log).unwrap();
    assert!(rotated.len() >= 4, "{rotated:?}");
    let seqs = |path: &Path| -> (u64, u64) {
        let text = std::fs::read_to_string(path).unwrap();
        let seq = |line: &str| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"]
                .as_u64()
                .unwrap()
        };
        (
            seq(text.lines().next().unwrap()),
            seq(text.lines().last().unwrap()),
        )
    };
    let verify = |args: &[&str]| {
        let mut all = vec!["audit", "verify"];
        all.extend_from_slice(args);
        sb.run(&[], &all)
    };
    let sealed = ["--seal-key", "verify.key"];
    assert_eq!(code(&sb.run(&[], &["audit", "seal"])), 0);
    assert_eq!(code(&verify(&sealed)), 0, "{}", stdout(&verify(&sealed)));
    let head = sb.run(&[], &["audit", "head"]);
    std::fs::write(sb.path("anchor.json"), stdout(&head)).unwrap();

    // Deleting the oldest file by hand is still tampering.
    let oldest = std::fs::read(&rotated[0]).unwrap();
    std::fs::remove_file(&rotated[0]).unwrap();
    let out = verify(&[]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("no prune record explains them"),
        "{}",
        stdout(&out)
    );
    std::fs::write(&rotated[0], &oldest).unwrap();

    // Only whole rotated files, never the live one.
    let (third_first, third_last) = seqs(&rotated[2]);
    let inside = (third_first + 1).to_string();
    let out = sb.run(&[], &["audit", "prune", "--before", &inside]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "use --before {third_first} to keep it or --before {} to drop it",
            third_last + 1
        )),
        "{}",
        stderr(&out)
    );
    let (live_first, _) = seqs(&log);
    let out = sb.run(
        &[],
        &["audit", "prune", "--before", &(live_first + 1).to_string()],
    );
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(stderr(&out).contains("never pruned"), "{}", stderr(&out));
    // (The refused attempts are recorded, and may rotate the live file.)
    assert!(rotated.iter().all(|f| f.exists()), "nothing dropped");

    // A prune cut short after its record and first removal, then a prune
    // that finishes: the set verifies at every step, seals included.
    let second = std::fs::read(&rotated[1]).unwrap();
    let before = third_first.to_string();
    let out = sb.run(&[], &["audit", "prune", "--before", &before]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "pruned 2 rotated file(s), records 1..{}",
            third_first - 1
        )),
        "{}",
        stdout(&out)
    );
    assert!(!rotated[0].exists() && !rotated[1].exists() && rotated[2].exists());
    std::fs::write(&rotated[1], &second).unwrap();
    assert_eq!(code(&sb.run(&[], &["audit", "seal"])), 0);
    assert_eq!(code(&verify(&sealed)), 0, "{}", stdout(&verify(&sealed)));
    std::fs::remove_file(&rotated[1]).unwrap();
    let out = verify(&sealed);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!(
            "from record {third_first} (those before it pruned"
        )),
        "{}",
        stdout(&out)
    );
    // An anchor taken before the prune is still reached (byte counts kept);
    // one whose record was pruned cannot be checked any more.
    assert_eq!(code(&verify(&["--anchor", "anchor.json"])), 0);
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("anchor.json")).unwrap()).unwrap();
    old["seq"] = 2.into();
    std::fs::write(sb.path("old.json"), old.to_string()).unwrap();
    let out = verify(&["--anchor", "old.json"]);
    assert_eq!(code(&out), 3, "{}", stdout(&out));
    assert!(stdout(&out).contains("was pruned"), "{}", stdout(&out));
    let mut files = prodguard::audit::rotated_files(&log).unwrap();
    files.push(log.clone());
    let prune: Vec<serde_json::Value> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .filter(|r| r["kind"] == "prune")
        .collect();
    assert_eq!(prune.len(), 1);
    assert_eq!(prune[0]["actor"]["user"], "tester");
    assert_eq!(prune[0]["prune"]["files"][1]["last_seq"], third_first - 1);

    // Pruning again continues from the anchor; the next oldest file deleted
    // by hand instead is tampering again.
    let (fourth_first, _) = seqs(&rotated[3]);
    let kept = std::fs::read(&rotated[2]).unwrap();
    std::fs::remove_file(&rotated[2]).unwrap();
    assert_eq!(code(&verify(&[])), 1);
    std::fs::write(&rotated[2], &kept).unwrap();
    let out = sb.run(
        &[],
        &["audit", "prune", "--before", &fourth_first.to_string()],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(code(&sb.run(&[], &["audit", "seal"])), 0);
    assert_eq!(code(&verify(&sealed)), 0, "{}", stdout(&verify(&sealed)));

    // A log that does not verify is never pruned (an edit in a file the
    // writers no longer read, so only prune's own check can see it).
    let kept = std::fs::read_to_string(&rotated[5]).unwrap();
    std::fs::write(&rotated[5], kept.replacen("\"v\":1,", "\"v\":2,", 1)).unwrap();
    let (fifth_first, _) = seqs(&rotated[4]);
    let out = sb.run(
        &[],
        &["audit", "prune", "--before", &fifth_first.to_string()],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("never pruned"), "{}", stderr(&out));
    assert!(rotated[3].exists());
}

#[test]
fn pruning_is_guarded_like_any_destructive_operation() {
    let sb = Sandbox::new("prune-guarded");
    std::fs::write(
        sb.path("prodguard.toml"),
        "[audit]\nrotate_bytes = 1500\n[[rule]]\noperations = [\"*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\n",
    )
    .unwrap();
    for i in 1..=12 {
        let out = sb.run(
            &[("PRODGUARD_ENV", "development")],
            &["audit", "record", "--message", &format!("n{i}")],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let log = sb.audit_log();
    let rotated = prodguard::audit::rotated_files(&log).unwrap();
    assert!(rotated.len() >= 2, "{rotated:?}");
    // In production, with nobody at a terminal (a script, an agent's
    // shell): refused like any destructive operation, nothing dropped.
    let out = sb.run(
        &[("PRODGUARD_ENV", "production")],
        &["audit", "prune", "--before", "2"],
    );
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    assert!(rotated.iter().all(|f| f.exists()));
    let refusal = sb.records().into_iter().last().unwrap();
    assert_eq!(refusal["kind"], "refusal", "{refusal:#}");
    assert_eq!(refusal["op"]["kind"], "audit.prune", "{refusal:#}");
    // In development it runs, recorded as an attempt.
    let live: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let before = live["seq"].to_string();
    let out = sb.run(
        &[("PRODGUARD_ENV", "development")],
        &["audit", "prune", "--before", &before],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(rotated.iter().all(|f| !f.exists()));
    let outcome = sb.records().into_iter().last().unwrap();
    assert_eq!(outcome["op"]["kind"], "audit.prune", "{outcome:#}");
    assert_eq!(outcome["outcome"]["status"], "ok", "{outcome:#}");
    let verify = sb.run(&[], &["audit", "verify"]);
    assert_eq!(code(&verify), 0, "{}", stdout(&verify));
}

#[test]
fn policy_text_from_outside_reaches_the_terminal_escaped() {
    // `./prodguard.toml` and PRODGUARD_POLICY are written by whoever runs
    // the program: a rule's name and a deny reason are outside text too.
    let sb = Sandbox::new("policy-text");
    std::fs::write(
        sb.path("prodguard.toml"),
        r#"
[[rule]]
name = "x\u001b[2K\rTYPE staging TO CONFIRM\u001b[8m\u202e"
operations = ["db.migrate"]
tiers = ["production"]
require = ["confirm", "audit"]

[[rule]]
name = "drops\u001b]52;c;cm0gLXJmIH4K\u0007"
operations = ["db.drop"]
tiers = ["production"]
deny = "never\r\n\u001b[32mallowed\u001b[0m\u2066"
"#,
    )
    .unwrap();
    let marker = sb.path("ran");
    let touch = touch_cmd(&marker);
    let prod = [("PRODGUARD_ENV", "production")];
    for (args, want) in [
        (exec_args("db.migrate", "orders", &touch), 121),
        (exec_args("db.drop", "orders", &touch), 120),
        (
            vec!["check", "--op", "db.migrate", "--target", "orders"],
            121,
        ),
        (vec!["check", "--op", "db.drop", "--target", "orders"], 120),
    ] {
        let out = sb.run(&prod, &args);
        assert_eq!(code(&out), want, "{args:?}: {}", stderr(&out));
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(text.contains("\\u{1b}"), "shows the rule escaped: {text}");
        for line in text.lines() {
            assert!(!steers_a_terminal(line), "{args:?}: {line:?}");
        }
    }
    assert!(!marker.exists());
}

/// Runs `prodguard ARGS` and returns its exit code, failing the test if it
/// has not ended within ten seconds.
fn code_within_seconds(sb: &Sandbox, vars: &[(&str, &str)], args: &[&str]) -> i32 {
    let mut child = sb
        .command(vars, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().expect("exited normally");
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} {vars:?} did not end");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn an_audit_log_that_is_not_a_regular_file_is_refused_not_waited_on() {
    // Whoever can write the log's directory can put a FIFO or a link to a
    // device where a log file belongs: a check that waits for ever reports
    // nothing, and /dev/null keeps nothing.
    let sb = Sandbox::new("log-fifo");
    let fifo = sb.path("fifo.jsonl");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let fifo = fifo.to_str().unwrap();
    for args in [
        &["audit", "verify", "--log", fifo][..],
        &["audit", "show", "--log", fifo][..],
        &["audit", "head", "--log", fifo][..],
        &["audit", "repair", "--log", fifo][..],
        &["audit", "prune", "--before", "2", "--log", fifo][..],
    ] {
        assert_ne!(code_within_seconds(&sb, &[], args), 0, "{args:?}");
    }
    let marker = sb.path("ran");
    let touch = touch_cmd(&marker);
    for log in [fifo, "/dev/null"] {
        let vars = [
            ("PRODGUARD_ENV", "production"),
            ("PRODGUARD_AUDIT_LOG", log),
        ];
        let check = ["check", "--op", "db.migrate", "--target", "orders"];
        assert_eq!(code_within_seconds(&sb, &vars, &check), 123, "{log}");
        let exec = exec_args("db.migrate", "orders", &touch);
        assert_eq!(code_within_seconds(&sb, &vars, &exec), 123, "{log}");
    }
    // A rotated file that is a FIFO: verify says what it is, at once.
    let dev = [("PRODGUARD_ENV", "development")];
    assert_eq!(
        code_within_seconds(&sb, &dev, &["audit", "record", "--message", "x"]),
        0
    );
    let rotated = sb.path("audit.jsonl.1");
    assert!(
        Command::new("mkfifo")
            .arg(&rotated)
            .status()
            .unwrap()
            .success()
    );
    assert_ne!(code_within_seconds(&sb, &dev, &["audit", "verify"]), 0);
    assert_ne!(
        code_within_seconds(&sb, &dev, &["audit", "prune", "--before", "2"]),
        0
    );
    assert!(!marker.exists());
}

#[test]
fn no_locatable_audit_log_is_said_plainly_and_a_relative_state_dir_is_ignored() {
    let sb = Sandbox::new("no-log");
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = sb.command(vars, &exec_args("db.migrate", "x", &["true".to_owned()]));
        cmd.env_remove("HOME").env_remove("PRODGUARD_AUDIT_LOG");
        cmd.output().unwrap()
    };
    let out = run(&[("APP_ENV", "production")]);
    assert_eq!(code(&out), 123, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no audit log can be located"), "{err}");
    assert!(!err.contains("<none>"), "{err}");
    assert_eq!(err.matches("set PRODGUARD_AUDIT_LOG").count(), 1, "{err}");
    // XDG says a relative XDG_STATE_HOME is invalid: it would put the log
    // wherever the program happens to run.
    let out = run(&[("APP_ENV", "production"), ("XDG_STATE_HOME", "rel")]);
    assert_eq!(code(&out), 123, "{}", stderr(&out));
    assert!(!sb.path("rel").exists());
}
