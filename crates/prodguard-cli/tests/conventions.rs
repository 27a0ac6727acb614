//! The CLI's conventions (Issue 19), held for every command at once: one
//! `--json` envelope on stdout whose error code is the exit code, shell
//! completions and a man page, a usage error without a command, and a
//! documented code for a standard output that is gone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Output, Stdio};

mod common;

use common::{Sandbox, code, envelope, stderr, stdout};

const DEV: &[(&str, &str)] = &[("PRODGUARD_ENV", "development")];
const PROD: &[(&str, &str)] = &[("PRODGUARD_ENV", "production")];

/// A sandbox with what the table's commands act on: a three-record audit
/// log, a tampered, a torn and a shortened copy of it, an anchor, an
/// approver's key and a policy listing it, a SQLite database, SQL scripts
/// and policy files good and bad.
fn prepared() -> Sandbox {
    let sb = Sandbox::new("conventions");
    for i in 1..=3 {
        let out = sb.run(DEV, &["audit", "record", "--message", &format!("n{i}")]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let log = std::fs::read_to_string(sb.audit_log()).unwrap();
    sb.write("tampered.jsonl", log.replacen("n2", "n9", 1).as_bytes());
    sb.write("torn.jsonl", format!("{log}{{\"seq\":4,").as_bytes());
    let two: String = log.lines().take(2).map(|l| format!("{l}\n")).collect();
    sb.write("short.jsonl", two.as_bytes());
    let head = sb.run(DEV, &["audit", "head"]);
    sb.write("anchor.json", &head.stdout);
    let head = sb.run(DEV, &["audit", "head", "--json"]);
    sb.write("anchor-envelope.json", &head.stdout);

    let keygen = sb.run(DEV, &["keygen", "--approver", "ana", "--out", "ana.key"]);
    assert_eq!(code(&keygen), 0, "{}", stderr(&keygen));
    let public = stdout(&keygen).trim().to_owned();
    sb.write(
        "approvers.toml",
        format!(
            "[approval]\napprovers = {{ ana = {{ key = \"{public}\", user = \"ana\" }} }}\n\n\
             [[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\n\
             require = [\"confirm\", \"audit\"]\n"
        )
        .as_bytes(),
    );
    sb.write("bad.toml", b"[[rule]]\noperations = 3\n");

    let db = rusqlite::Connection::open(sb.path("shop.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE carts (id INTEGER PRIMARY KEY, stale INTEGER);
         INSERT INTO carts (stale) VALUES (1), (0);",
    )
    .unwrap();
    sb.write("cleanup.sql", b"DELETE FROM carts WHERE stale = 1;\n");
    sb.write("read.sql", b"SELECT * FROM carts;\n");
    sb.write("notes.txt", b"not a database\n");
    sb
}

/// One invocation and the exit code it must answer with.
struct Case {
    vars: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    code: i32,
}

const fn case(
    vars: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    code: i32,
) -> Case {
    Case { vars, args, code }
}

/// Every command that answers, with `--json`: a success and a failure
/// each, the failures with the codes they have without `--json`.
const CASES: &[Case] = &[
    case(DEV, &["detect", "--json"], 0),
    case(DEV, &["detect", "--json", "--explain"], 0),
    case(
        &[("PRODGUARD_POLICY", "/nonexistent/prodguard.toml")],
        &["detect", "--json"],
        125,
    ),
    case(DEV, &["check", "--op", "db.migrate", "--json"], 0),
    case(
        PROD,
        &[
            "check",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--json",
        ],
        121,
    ),
    case(DEV, &["check", "--op", "DROP TABLE", "--json"], 125),
    case(
        DEV,
        &["exec", "--op", "db.migrate", "--json", "--", "true"],
        0,
    ),
    case(
        DEV,
        &[
            "exec",
            "--op",
            "db.migrate",
            "--json",
            "--",
            "sh",
            "-c",
            "echo the-child-speaks; exit 3",
        ],
        3,
    ),
    case(
        PROD,
        &[
            "exec",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--json",
            "--",
            "true",
        ],
        121,
    ),
    case(
        DEV,
        &[
            "exec",
            "--op",
            "db.migrate",
            "--json",
            "--",
            "/nonexistent/definitely-not-here",
        ],
        127,
    ),
    case(
        DEV,
        &[
            "--policy",
            "approvers.toml",
            "approve",
            "--key",
            "ana.key",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--env",
            "production",
            "--json",
        ],
        0,
    ),
    case(
        DEV,
        &[
            "approve",
            "--key",
            "nobody.key",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--json",
        ],
        125,
    ),
    case(
        DEV,
        &[
            "stamp",
            "--target",
            "shop.db",
            "--env",
            "development",
            "--json",
        ],
        0,
    ),
    case(
        DEV,
        &[
            "stamp",
            "--target",
            "notes.txt",
            "--env",
            "development",
            "--json",
        ],
        125,
    ),
    case(
        DEV,
        &["keygen", "--approver", "bo", "--out", "bo.key", "--json"],
        0,
    ),
    case(
        DEV,
        &["keygen", "--approver", "ana", "--out", "ana.key", "--json"],
        125,
    ),
    case(DEV, &["policy", "check", "approvers.toml", "--json"], 0),
    case(DEV, &["policy", "check", "bad.toml", "--json"], 125),
    case(DEV, &["policy", "show", "--json"], 0),
    case(DEV, &["policy", "show", "--default", "--json"], 0),
    case(
        &[("PRODGUARD_POLICY", "bad.toml")],
        &["policy", "show", "--json"],
        125,
    ),
    case(DEV, &["audit", "verify", "--json"], 0),
    case(
        DEV,
        &["audit", "verify", "--log", "tampered.jsonl", "--json"],
        1,
    ),
    case(
        DEV,
        &["audit", "verify", "--log", "torn.jsonl", "--json"],
        2,
    ),
    case(
        DEV,
        &[
            "audit",
            "verify",
            "--log",
            "short.jsonl",
            "--anchor",
            "anchor.json",
            "--json",
        ],
        3,
    ),
    case(
        DEV,
        &[
            "audit",
            "verify",
            "--anchor",
            "anchor-envelope.json",
            "--json",
        ],
        0,
    ),
    case(
        DEV,
        &["audit", "verify", "--log", "missing.jsonl", "--json"],
        123,
    ),
    case(DEV, &["audit", "show", "--json"], 0),
    case(
        DEV,
        &["audit", "show", "--log", "missing.jsonl", "--json"],
        123,
    ),
    case(DEV, &["audit", "head", "--json"], 0),
    case(
        DEV,
        &["audit", "head", "--log", "tampered.jsonl", "--json"],
        1,
    ),
    case(
        DEV,
        &["audit", "repair", "--log", "torn.jsonl", "--json"],
        0,
    ),
    case(
        DEV,
        &["audit", "repair", "--log", "tampered.jsonl", "--json"],
        1,
    ),
    case(DEV, &["audit", "record", "--message", "n4", "--json"], 0),
    case(
        DEV,
        &[
            "audit",
            "record",
            "--log",
            "notes.txt/audit.jsonl",
            "--message",
            "n5",
            "--json",
        ],
        123,
    ),
    case(
        DEV,
        &["audit", "seal-init", "--key-file", "seal.key", "--json"],
        0,
    ),
    case(
        DEV,
        &["audit", "seal-init", "--key-file", "seal.key", "--json"],
        123,
    ),
    case(DEV, &["audit", "seal", "--json"], 123),
    case(DEV, &["audit", "prune", "--before", "1", "--json"], 0),
    case(
        DEV,
        &[
            "audit",
            "prune",
            "--log",
            "tampered.jsonl",
            "--before",
            "2",
            "--json",
        ],
        1,
    ),
    case(
        DEV,
        &["fleet", "init", "mysql://nowhere/fleet", "--json"],
        125,
    ),
    case(
        DEV,
        &[
            "sql",
            "check",
            "--target",
            "shop.db",
            "--json",
            "cleanup.sql",
        ],
        0,
    ),
    // shop.db was stamped `development` above: production refuses it (124).
    case(
        PROD,
        &[
            "sql",
            "check",
            "--target",
            "shop.db",
            "--json",
            "cleanup.sql",
        ],
        124,
    ),
    case(DEV, &["sql", "check", "--json", "cleanup.sql"], 125),
    case(
        DEV,
        &[
            "sql",
            "exec",
            "--target",
            "sqlite:shop.db",
            "--json",
            "read.sql",
        ],
        0,
    ),
    case(
        DEV,
        &[
            "sql",
            "exec",
            "--target",
            "sqlite:shop.db",
            "--dry-run",
            "--json",
            "cleanup.sql",
        ],
        0,
    ),
    case(
        PROD,
        &[
            "sql",
            "exec",
            "--target",
            "sqlite:shop.db",
            "--json",
            "cleanup.sql",
        ],
        124,
    ),
    // A report: 0 whatever it finds; a trail that does not verify is no
    // evidence (123).
    case(
        DEV,
        &[
            "parity",
            "--from",
            "audit.jsonl",
            "--to",
            "audit.jsonl",
            "--json",
        ],
        0,
    ),
    case(
        DEV,
        &[
            "parity",
            "--from",
            "tampered.jsonl",
            "--to",
            "audit.jsonl",
            "--json",
        ],
        123,
    ),
    // Usage errors: the envelope too, with the usage code.
    case(DEV, &["detect", "--bogus", "--json"], 125),
    case(DEV, &["check", "--json"], 125),
    case(DEV, &["parity", "--from", "audit.jsonl", "--json"], 125),
    case(DEV, &["audit", "prune", "--before", "0", "--json"], 125),
    case(DEV, &["hook", "claude-code", "--json"], 125),
    case(DEV, &["hook", "install", "codex", "--json"], 0),
    case(
        DEV,
        &["hook", "install", "codex", "--user", "--system", "--json"],
        125,
    ),
    case(DEV, &["completions", "bash", "--json"], 125),
    case(DEV, &["--version", "--json"], 0),
];

#[test]
fn every_json_answer_is_one_envelope_whose_error_code_is_the_exit_code() {
    let sb = prepared();
    for case in CASES {
        let out = sb.run(case.vars, case.args);
        let shown = case.args.join(" ");
        assert_eq!(
            code(&out),
            case.code,
            "{shown}\nstdout:\n{}\nstderr:\n{}",
            stdout(&out),
            stderr(&out)
        );
        // Every rule of the envelope, in one place.
        let value = envelope(&out);
        assert_eq!(
            value.get("ok").is_some(),
            case.code == 0,
            "{shown}: {value:#}"
        );
    }
}

#[test]
fn without_json_the_same_commands_exit_with_the_same_codes() {
    let sb = prepared();
    for case in CASES {
        let args: Vec<&str> = case
            .args
            .iter()
            .copied()
            .filter(|a| *a != "--json")
            .collect();
        // Two rows name --json as the usage error itself, and `--version`
        // without it is plain text.
        if matches!(args.first(), Some(&"hook" | &"completions" | &"--version")) {
            continue;
        }
        let out = sb.run(case.vars, &args);
        assert_eq!(
            code(&out),
            case.code,
            "{}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            stdout(&out),
            stderr(&out)
        );
    }
}

#[test]
fn the_answers_say_what_each_command_did() {
    let sb = prepared();
    let ok = |args: &[&str]| {
        let out = sb.run(DEV, args);
        envelope(&out)["ok"].clone()
    };
    assert_eq!(ok(&["detect", "--json"])["environment"], "development");
    assert_eq!(
        ok(&["audit", "record", "--message", "x", "--json"])["seq"],
        4
    );
    let records = ok(&["audit", "show", "--json"])["records"].clone();
    assert_eq!(records.as_array().unwrap().len(), 4, "{records:#}");
    assert_eq!(records[3]["message"], "x", "{records:#}");
    let anchor = ok(&["audit", "head", "--json"])["anchor"].clone();
    assert_eq!(anchor["seq"], 4, "{anchor:#}");
    let verified = ok(&["audit", "verify", "--json"]);
    assert_eq!(verified["intact"], true, "{verified:#}");
    assert_eq!(verified["records"], 4, "{verified:#}");
    let shown = ok(&["policy", "show", "--default", "--json"]);
    assert!(shown["toml"].as_str().unwrap().contains("[[rule]]"));
    assert!(shown["policy"]["rule"].is_array(), "{shown:#}");
    let token = ok(&[
        "--policy",
        "approvers.toml",
        "approve",
        "--key",
        "ana.key",
        "--op",
        "db.migrate",
        "--target",
        "orders",
        "--env",
        "production",
        "--json",
    ]);
    assert!(token["token"].as_str().unwrap().len() > 40, "{token:#}");
    assert_eq!(token["claims"]["approver"], "ana", "{token:#}");

    // A tampered log: the report is the error's data.
    let out = sb.run(
        DEV,
        &["audit", "verify", "--log", "tampered.jsonl", "--json"],
    );
    let error = envelope(&out)["error"].clone();
    assert!(
        error["message"].as_str().unwrap().contains("TAMPERED"),
        "{error:#}"
    );
    assert_eq!(error["data"]["intact"], false, "{error:#}");
    assert_eq!(error["data"]["damage"]["line"], 2, "{error:#}");

    // check's refusal: its words, and the decision as data.
    let out = sb.run(
        PROD,
        &[
            "check",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--json",
        ],
    );
    let error = envelope(&out)["error"].clone();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("db.migrate requires confirm + audit here"),
        "{error:#}"
    );
    assert_eq!(error["data"]["exit_code"], 121, "{error:#}");
    assert!(error["data"]["ledger"].is_string(), "{error:#}");
}

#[test]
fn exec_json_keeps_stdout_for_the_envelope_and_passes_the_command_s_output_to_stderr() {
    let sb = prepared();
    let out = sb.run(
        DEV,
        &[
            "exec",
            "--op",
            "db.migrate",
            "--json",
            "--",
            "sh",
            "-c",
            "echo the-child-speaks",
        ],
    );
    let value = envelope(&out);
    assert_eq!(value["ok"]["ran"], true, "{value:#}");
    assert_eq!(value["ok"]["exit_code"], 0, "{value:#}");
    assert!(
        stderr(&out).contains("the-child-speaks"),
        "{}",
        stderr(&out)
    );
    // Refused: it never ran, and says so.
    let out = sb.run(
        PROD,
        &[
            "exec",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--json",
            "--",
            "true",
        ],
    );
    let value = envelope(&out);
    assert_eq!(value["error"]["data"]["ran"], false, "{value:#}");
    // Without --json the command's stdout is stdout.
    let out = sb.run(
        DEV,
        &[
            "exec",
            "--op",
            "db.migrate",
            "--",
            "sh",
            "-c",
            "echo the-child-speaks",
        ],
    );
    assert_eq!(stdout(&out), "the-child-speaks\n");
}

#[test]
fn completions_for_every_shell_name_the_commands() {
    let sb = Sandbox::new("completions");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = sb.run(&[], &["completions", shell]);
        assert_eq!(code(&out), 0, "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(!script.is_empty(), "{shell}");
        for command in ["detect", "audit", "seal-init"] {
            assert!(
                script.contains(command),
                "{shell} lacks {command}:\n{script}"
            );
        }
    }
    let out = sb.run(&[], &["completions", "tcsh"]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
}

#[test]
fn man_prints_a_roff_page() {
    let sb = Sandbox::new("man");
    let out = sb.run(&[], &["man"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.starts_with('.'), "{page}");
    assert!(page.contains("\n.TH prodguard 1"), "{page}");
    assert!(page.contains(".SH NAME"), "{page}");
    assert!(page.contains("detect"), "{page}");
}

#[test]
fn no_command_is_a_usage_error_with_help_on_stderr() {
    let sb = Sandbox::new("no-command");
    for args in [&[][..], &["audit"][..], &["--policy", "x.toml"][..]] {
        let out = sb.run(&[], args);
        assert_eq!(code(&out), 125, "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("Usage: prodguard"),
            "{}",
            stderr(&out)
        );
    }
    // Help asked for is an answer: stdout, 0.
    let out = sb.run(&[], &["--help"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("Usage: prodguard"));
}

#[test]
fn every_subcommand_s_help_shows_examples() {
    let sb = Sandbox::new("examples");
    let commands: &[&[&str]] = &[
        &["detect"],
        &["check"],
        &["exec"],
        &["approve"],
        &["stamp"],
        &["keygen"],
        &["policy", "check"],
        &["policy", "show"],
        &["audit", "verify"],
        &["audit", "repair"],
        &["audit", "show"],
        &["audit", "head"],
        &["audit", "seal-init"],
        &["audit", "seal"],
        &["audit", "prune"],
        &["audit", "record"],
        &["fleet", "init"],
        &["parity"],
        &["sql", "check"],
        &["sql", "exec"],
        &["hook", "claude-code"],
        &["hook", "codex"],
        &["hook", "gemini"],
        &["hook", "cursor"],
        &["hook", "install"],
        &["completions"],
        &["man"],
    ];
    for command in commands {
        let out = sb.run(&[], &[&command[..], &["--help"]].concat());
        assert_eq!(code(&out), 0, "{command:?}");
        let help = stdout(&out);
        let examples = help
            .split("Examples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{command:?} has no examples:\n{help}"));
        assert!(
            examples.contains(&format!("prodguard {}", command[0])),
            "{command:?}:\n{help}"
        );
        // The hooks say why they take no --json.
        if command[0] == "hook" && command[1] != "install" {
            assert!(help.contains("Takes no --json"), "{help}");
        }
    }
}

/// Runs `prodguard ARGS` with its standard output on a pipe whose reader
/// has already gone (`prodguard … | head -c0` once head has left).
fn run_with_stdout_closed(sb: &Sandbox, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    sb.command(vars, args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_quietly_with_141() {
    let sb = prepared();
    for args in [
        &["detect"][..],
        &["detect", "--json"][..],
        &["audit", "show"][..],
        &["audit", "show", "--json"][..],
        &["audit", "show", "--jsonl"][..],
        &["man"][..],
        &["completions", "bash"][..],
    ] {
        let out = run_with_stdout_closed(&sb, DEV, args);
        assert_eq!(code(&out), 141, "{args:?}: {}", stderr(&out));
        // Quietly: no panic, no complaint about the pipe.
        assert!(stderr(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }
    // An answer other than success stands, printed or not.
    let out = run_with_stdout_closed(
        &sb,
        DEV,
        &["audit", "verify", "--log", "tampered.jsonl", "--json"],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
}
