//! `prodguard hook AGENT`, run for real as each agent runs it: the tool
//! call on stdin, the answer on stdout, exit 2 to block.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;

use serde_json::{Value, json};

mod common;

use common::{Sandbox, code, stderr, stdout};

const CORPUS: &str = include_str!("../../../tests/hook/commands.json");

/// The hook's answer to a Bash call of `command` in `cwd`, with `vars`.
fn hook(sb: &Sandbox, vars: &[(&str, &str)], command: &str, cwd: &str) -> Output {
    let input = json!({
        "session_id": "s1",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command},
        "cwd": cwd,
    });
    sb.run_with(vars, &["hook", "claude-code"], input.to_string().as_bytes())
}

/// `ask`, `deny`, `silent` or `block`, checking the protocol on the way.
fn decision(out: &Output) -> String {
    match code(out) {
        2 => {
            assert!(stdout(out).is_empty(), "{}", stdout(out));
            assert!(!stderr(out).trim().is_empty(), "a block says why");
            "block".into()
        }
        0 if stdout(out).trim().is_empty() => "silent".into(),
        0 => {
            let answer: Value = serde_json::from_str(stdout(out).trim())
                .unwrap_or_else(|e| panic!("{e}: {}", stdout(out)));
            let specific = &answer["hookSpecificOutput"];
            assert_eq!(specific["hookEventName"], "PreToolUse");
            assert!(
                specific["permissionDecisionReason"]
                    .as_str()
                    .unwrap()
                    .contains("prodguard")
            );
            specific["permissionDecision"].as_str().unwrap().to_owned()
        }
        other => panic!("exit {other}: {}{}", stdout(out), stderr(out)),
    }
}

const PROD: &[(&str, &str)] = &[("PRODGUARD_ENV", "production")];
const DEV: &[(&str, &str)] = &[("PRODGUARD_ENV", "development")];

/// Every case of the shared corpus, on a production host (under the
/// built-in default, whatever is recognised as destructive asks) and a development one
/// (nothing is protected, so the hook is silent); what cannot be analysed
/// is blocked in both.
#[test]
fn corpus_commands_ask_in_production_and_pass_in_development() {
    let sb = Sandbox::new("hook-corpus");
    let cases: Vec<Value> = serde_json::from_str(CORPUS).unwrap();
    assert!(cases.len() >= 150, "{}", cases.len());
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        // A long command is written as a prefix repeated, then the command.
        let prefix = case["prefix"]["text"]
            .as_str()
            .unwrap_or_default()
            .repeat(case["prefix"]["times"].as_u64().unwrap_or(0) as usize);
        let command = format!("{prefix}{}", case["command"].as_str().unwrap());
        let command = command.as_str();
        let cwd = case["cwd"].as_str().unwrap_or("/home/dev/app");
        let env: Vec<(String, String)> = case["env"]
            .as_object()
            .map(|env| {
                env.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let problem = case["problem"].as_bool().unwrap_or(false);
        // Everyday SQL (a SELECT, an INSERT, a new table) is recognised but
        // never asks; everything else the analyser recognises does.
        let recognised = case["expect"].as_array().unwrap().iter().any(|c| {
            !matches!(
                c["kind"].as_str().unwrap(),
                "db.read" | "db.session" | "db.insert" | "db.create"
            )
        });
        for (vars, expected) in [
            (
                PROD,
                match (problem, recognised) {
                    (true, _) => "block",
                    (false, true) => "ask",
                    (false, false) => "silent",
                },
            ),
            (DEV, if problem { "block" } else { "silent" }),
        ] {
            let vars: Vec<(&str, &str)> = vars
                .iter()
                .copied()
                .chain(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .collect();
            let out = hook(&sb, &vars, command, cwd);
            assert_eq!(
                decision(&out),
                expected,
                "{name} ({vars:?}): {}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn input_it_cannot_read_is_blocked_and_other_tools_pass() {
    let sb = Sandbox::new("hook-input");
    for input in [
        "not json".to_owned(),
        "{}".to_owned(),
        json!({"tool_name": "Bash"}).to_string(),
        json!({"tool_name": "Bash", "tool_input": {"command": 7}}).to_string(),
        "{\"tool_name\": \"Bash\", \"tool_input\": {\"command\": \"rm -rf /".to_owned(),
    ] {
        let out = sb.run_with(PROD, &["hook", "claude-code"], input.as_bytes());
        assert_eq!(decision(&out), "block", "{input}");
    }
    let read = json!({"tool_name": "Read", "tool_input": {"file_path": "/etc/passwd"}});
    let out = sb.run_with(PROD, &["hook", "claude-code"], read.to_string().as_bytes());
    assert_eq!(decision(&out), "silent");
    // Invalid UTF-8 in the command: not JSON, blocked.
    let mut bytes = br#"{"tool_name": "Bash", "tool_input": {"command": "psql -c '"#.to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(br#"'"}}"#);
    let out = sb.run_with(PROD, &["hook", "claude-code"], &bytes);
    assert_eq!(decision(&out), "block");
}

#[test]
fn a_production_stamped_sqlite_file_is_protected_from_a_development_host() {
    let sb = Sandbox::new("hook-stamp");
    let app = sb.path("app");
    std::fs::create_dir_all(&app).unwrap();
    for (name, env) in [("prod.db", Some("production")), ("dev.db", None)] {
        let db = app.join(name);
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        drop(conn);
        if let Some(env) = env {
            // Stamped from a development host (no confirmation needed there).
            let out = sb.run(
                DEV,
                &["stamp", "--target", db.to_str().unwrap(), "--env", env],
            );
            assert_eq!(code(&out), 0, "{}", stderr(&out));
        }
    }
    // The stamp's own record is not the hook's.
    std::fs::remove_file(sb.audit_log()).ok();
    let cwd = app.to_str().unwrap();
    let out = hook(&sb, DEV, "sqlite3 prod.db 'DELETE FROM t'", cwd);
    assert_eq!(decision(&out), "ask", "{}", stderr(&out));
    let reason = stdout(&out);
    assert!(reason.contains("is stamped production"), "{reason}");
    let out = hook(&sb, DEV, "sqlite3 dev.db 'DELETE FROM t'", cwd);
    assert_eq!(decision(&out), "silent");
    // The ask is recorded; the silence is not.
    let records = sb.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["decision"]["result"], "asked");
    assert_eq!(records[0]["actor"]["kind"], "agent");
}

#[test]
fn targets_and_rules_decide_ask_deny_or_nothing_and_sql_files_are_read() {
    let sb = Sandbox::new("hook-policy");
    let policy = sb.write(
        "p.toml",
        b"[targets]\n\"postgresql://*.prod.internal/*\" = \"production\"\n\
          [[rule]]\nname = \"drops\"\noperations = [\"db.drop.*\", \"db.unknown\"]\ntiers = [\"production\"]\n\
          require = [\"confirm\", \"audit\"]\n\
          [[rule]]\nname = \"infra\"\noperations = [\"infra.*\"]\ntiers = [\"production\"]\n\
          require = [\"confirm\"]\nagent = \"deny\"\n",
    );
    let vars = [
        ("PRODGUARD_ENV", "development"),
        ("PRODGUARD_POLICY", policy.as_str()),
    ];
    let cwd = sb.path("").to_string_lossy().into_owned();
    let prod = "psql postgresql://app@db1.prod.internal/shop";
    let cases = [
        (format!("{prod} -c 'DROP TABLE carts'"), "ask"),
        (format!("{prod} -c 'SELECT 1'"), "silent"),
        (
            "psql postgresql://localhost/shop -c 'DROP TABLE carts'".to_owned(),
            "silent",
        ),
        (format!("cd /tmp && {prod} -f drop.sql"), "ask"),
        (format!("{prod} -f select.sql"), "silent"),
        (format!("{prod} -f missing.sql"), "ask"),
        (format!("{prod} < drop.sql"), "ask"),
        (
            format!("grep 'DROP TABLE' drop.sql && {prod} -c 'SELECT 1'"),
            "silent",
        ),
    ];
    sb.write("drop.sql", b"BEGIN; DROP TABLE carts; COMMIT;");
    sb.write("select.sql", b"SELECT count(*) FROM carts;");
    for (command, expected) in cases {
        let out = hook(&sb, &vars, &command, &cwd);
        assert_eq!(decision(&out), expected, "{command}: {}", stderr(&out));
    }
    // terraform on a production host: the infra rule denies agents.
    let prod_vars = [
        ("PRODGUARD_ENV", "production"),
        ("PRODGUARD_POLICY", policy.as_str()),
    ];
    let out = hook(&sb, &prod_vars, "terraform destroy -auto-approve", &cwd);
    assert_eq!(decision(&out), "deny");
    assert!(
        stdout(&out).contains("agent = \\\"deny\\\""),
        "{}",
        stdout(&out)
    );
    let records = sb.records();
    assert_eq!(records.last().unwrap()["kind"], "refusal");
}

#[test]
fn install_merges_the_hook_into_the_settings_once_and_keeps_the_rest() {
    let sb = Sandbox::new("hook-install");
    let settings = sb.path(".claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(
        &settings,
        r#"{"permissions": {"allow": ["Bash(ls:*)"]}, "hooks": {"PreToolUse": [{"matcher": "Edit", "hooks": [{"type": "command", "command": "lint"}]}]}}"#,
    )
    .unwrap();
    let out = sb.run(DEV, &["hook", "install", "claude-code", "--project"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("added a PreToolUse hook on Bash"),
        "{}",
        stdout(&out)
    );
    let merged: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(merged["permissions"]["allow"][0], "Bash(ls:*)");
    let groups = merged["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["matcher"], "Edit");
    assert_eq!(groups[1]["matcher"], "Bash");
    let command = groups[1]["hooks"][0]["command"].as_str().unwrap();
    assert!(
        command.starts_with('/') || command.starts_with('\''),
        "{command}"
    );
    assert!(command.ends_with(" hook claude-code"), "{command}");
    // Again: nothing changes.
    let before = std::fs::read(&settings).unwrap();
    let out = sb.run(DEV, &["hook", "install", "claude-code"]);
    assert!(
        stdout(&out).contains("already installed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(std::fs::read(&settings).unwrap(), before);
    // Settings that are not JSON are left alone.
    std::fs::write(&settings, "{ not json").unwrap();
    let out = sb.run(DEV, &["hook", "install", "claude-code"]);
    assert_eq!(code(&out), 125);
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), "{ not json");
}

/// Codex CLI, Gemini CLI and Cursor, each in its own protocol: none of them
/// reliably asks a person from a hook, so what needs one is denied.
#[test]
fn the_other_agents_get_their_own_protocol_and_a_deny_where_a_person_is_needed() {
    let sb = Sandbox::new("hook-agents");
    let cwd = sb.path("").to_string_lossy().into_owned();
    let call = |agent: &str, command: &str, tool: &str| -> Value {
        match agent {
            "cursor" => json!({"hook_event_name": "beforeShellExecution", "command": command,
                "cwd": cwd, "workspace_roots": [cwd]}),
            "gemini" => json!({"hook_event_name": "BeforeTool", "tool_name": tool,
                "tool_input": {"command": command}, "cwd": cwd}),
            _ => json!({"hook_event_name": "PreToolUse", "tool_name": tool,
                "tool_input": {"command": command}, "cwd": cwd}),
        }
    };
    let destructive = "psql -h db1 -d shop -c 'DROP TABLE carts'";
    for (agent, shell_tool) in [
        ("codex", "Bash"),
        ("gemini", "run_shell_command"),
        ("cursor", ""),
    ] {
        let run = |command: &str, tool: &str| {
            let input = call(agent, command, tool).to_string();
            sb.run_with(PROD, &["hook", agent], input.as_bytes())
        };
        let out = run(destructive, shell_tool);
        assert_eq!(code(&out), 0, "{agent}: {}", stderr(&out));
        let answer: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        let (permission, reason) = match agent {
            "codex" => (
                &answer["hookSpecificOutput"]["permissionDecision"],
                &answer["hookSpecificOutput"]["permissionDecisionReason"],
            ),
            "gemini" => (&answer["decision"], &answer["reason"]),
            _ => (&answer["permission"], &answer["user_message"]),
        };
        assert_eq!(permission, "deny", "{agent}: {answer}");
        let reason = reason.as_str().unwrap();
        assert!(
            reason.contains("cannot put a question to a person")
                && reason.contains("prodguard approve"),
            "{agent}: {reason}"
        );
        let last = sb.records().pop().unwrap();
        assert_eq!(last["decision"]["result"], "denied", "{agent}");
        assert_eq!(last["actor"]["user"], agent);
        // A harmless command: nothing said, nothing recorded.
        let before = sb.records().len();
        let out = run("ls -la && cargo test", shell_tool);
        assert_eq!((code(&out), stdout(&out).trim()), (0, ""), "{agent}");
        assert_eq!(sb.records().len(), before);
        // An unterminated quote: blocked.
        let out = run("psql -c 'DROP TABLE carts", shell_tool);
        assert_eq!(code(&out), 2, "{agent}: {}", stdout(&out));
        assert!(stderr(&out).contains("blocked"), "{agent}");
        let out = sb.run_with(PROD, &["hook", agent], b"[1, 2]");
        assert_eq!(code(&out), 2, "{agent}");
    }
    // Tools other than the shell pass, for the agents whose hook sees them.
    for (agent, tool) in [("codex", "apply_patch"), ("gemini", "read_file")] {
        let input = call(agent, destructive, tool).to_string();
        let out = sb.run_with(PROD, &["hook", agent], input.as_bytes());
        assert_eq!((code(&out), stdout(&out).trim()), (0, ""), "{agent}");
    }
}

#[test]
fn install_writes_each_agents_own_settings_file_in_its_own_shape() {
    let sb = Sandbox::new("hook-install-agents");
    let read = |file: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(sb.path(file)).unwrap()).unwrap()
    };
    // A prodguard hook of another binary (moved, or an old install) is not
    // this one: it would exit 127, which the agent takes as "go on".
    std::fs::create_dir_all(sb.path(".codex")).unwrap();
    std::fs::write(
        sb.path(".codex/hooks.json"),
        r#"{"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "/opt/old/prodguard hook codex"}]}]}}"#,
    )
    .unwrap();
    for agent in ["codex", "gemini", "cursor"] {
        let out = sb.run(DEV, &["hook", "install", agent]);
        assert_eq!(code(&out), 0, "{agent}: {}", stderr(&out));
        if agent == "codex" {
            assert!(stdout(&out).contains("added"), "{}", stdout(&out));
            assert!(
                stderr(&out).contains("/opt/old/prodguard hook codex"),
                "{}",
                stderr(&out)
            );
        }
        let out = sb.run(DEV, &["hook", "install", agent]);
        assert!(stdout(&out).contains("already installed"), "{agent}");
    }
    let codex = read(".codex/hooks.json");
    assert_eq!(codex["hooks"]["PreToolUse"].as_array().unwrap().len(), 2);
    let handler = &codex["hooks"]["PreToolUse"][1];
    assert_eq!(handler["matcher"], "Bash");
    assert!(
        handler["hooks"][0]["command"]
            .as_str()
            .unwrap()
            .ends_with(" hook codex")
    );
    let gemini = read(".gemini/settings.json");
    let handler = &gemini["hooks"]["BeforeTool"][0];
    assert_eq!(handler["matcher"], "run_shell_command");
    assert_eq!(handler["hooks"][0]["timeout"], 10_000, "milliseconds");
    let cursor = read(".cursor/hooks.json");
    assert_eq!(cursor["version"], 1);
    assert!(
        cursor["hooks"]["beforeShellExecution"][0]["command"]
            .as_str()
            .unwrap()
            .ends_with(" hook cursor")
    );
    // Settings kept elsewhere behind a symbolic link are written through it.
    std::fs::create_dir_all(sb.path(".claude")).unwrap();
    std::fs::write(sb.path("shared-settings.json"), "{}").unwrap();
    std::os::unix::fs::symlink(
        sb.path("shared-settings.json"),
        sb.path(".claude/settings.json"),
    )
    .unwrap();
    let out = sb.run(DEV, &["hook", "install", "claude-code"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(sb.path(".claude/settings.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(read("shared-settings.json")["hooks"]["PreToolUse"][0]["matcher"] == "Bash");
    let out = sb.run(DEV, &["hook", "install", "copilot"]);
    assert_eq!(
        code(&out),
        125,
        "an agent it does not know is a usage error"
    );
}

/// `--system` writes the file only root can change. As root (CI), it is
/// written and removed again (only when none was there); as anyone else,
/// it refuses and says to run it as root.
#[test]
fn install_system_writes_the_root_owned_settings_or_says_to_be_root() {
    const FILE: &str = "/etc/cursor/hooks.json";
    let sb = Sandbox::new("hook-install-system");
    let dir = std::path::Path::new(FILE).parent().unwrap();
    if std::path::Path::new(FILE).exists() {
        return; // a real installation: not ours to touch
    }
    let created_dir = !dir.exists();
    struct Cleanup(bool);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(FILE);
            if self.0 {
                let _ = std::fs::remove_dir("/etc/cursor");
            }
        }
    }
    let _cleanup = Cleanup(created_dir);
    let probe = "/etc/.prodguard-hook-test-probe";
    let root = std::fs::write(probe, b"").is_ok();
    let _ = std::fs::remove_file(probe);
    let out = sb.run(DEV, &["hook", "install", "cursor", "--system"]);
    if root {
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        // Readable by every user's agent, whatever root's umask.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(FILE), 0o644);
        if created_dir {
            assert_eq!(mode("/etc/cursor"), 0o755);
        }
        let written: Value = serde_json::from_str(&std::fs::read_to_string(FILE).unwrap()).unwrap();
        assert!(
            written["hooks"]["beforeShellExecution"][0]["command"]
                .as_str()
                .unwrap()
                .ends_with(" hook cursor")
        );
        // Nothing was written in the project.
        assert!(!sb.path(".cursor").exists());
    } else {
        assert_eq!(code(&out), 125);
        assert!(stderr(&out).contains("run it as root"), "{}", stderr(&out));
    }
}
