//! `prodguard hook claude-code`: Claude Code's PreToolUse hook. It reads the
//! tool call on stdin, and for a destructive command aimed at something
//! protected answers `ask` or `deny`; otherwise it prints nothing (the
//! agent's own permission flow goes on). What it cannot read or analyse in
//! time is blocked: exit 2 with the reason on stderr.
//!
//! `prodguard hook install claude-code`: merges the hook into the project's
//! or the user's `settings.json`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prodguard::{Actor, ActorKind, Guard, GuardError, facts};
use prodguard_core::hook::{self, HookCommand, HookDecision, HookVerdict};
use prodguard_core::session::{Stamp, StampError};
use prodguard_core::shell::{self, Context, SqlSource};
use prodguard_core::sql;
use prodguard_core::text::escape;
use serde_json::{Value, json};

use super::load_policy;

/// Past this, the tool call is blocked: an agent waits for the hook, and a
/// hook that fails open when slow is no guard.
const DEADLINE: Duration = Duration::from_secs(5);

/// The most of a tool call read: the command's limit, with room for JSON
/// escaping and the other fields.
const MAX_INPUT_BYTES: u64 = 4 * shell::MAX_COMMAND_BYTES as u64;

/// The most of an SQL file a hook reads to classify it; larger is unknown.
const MAX_SQL_FILE_BYTES: u64 = 1 << 20;

/// Claude Code blocks a tool call on this exit code, with stderr as the reason.
const BLOCK: i32 = 2;

/// Answers one PreToolUse call; returns the exit code.
pub(crate) fn claude_code(policy: Option<&PathBuf>) -> i32 {
    // A watchdog, not a timeout on each step: whatever is slow (a stdin
    // never closed, a stamp on a slow disk), the call is blocked in time.
    std::thread::spawn(|| {
        std::thread::sleep(DEADLINE);
        tell!(
            "prodguard: no answer within {}s, so the command is blocked (fail closed)",
            DEADLINE.as_secs()
        );
        std::process::exit(BLOCK);
    });
    match answer(policy) {
        Ok(Answer::Silent) => 0,
        Ok(Answer::Decided(decision)) => respond(&decision),
        Err(reason) => {
            tell!("prodguard: {reason}; the command is blocked (fail closed)");
            BLOCK
        }
    }
}

enum Answer {
    /// Not a Bash call, or nothing to say.
    Silent,
    Decided(HookDecision),
}

fn answer(policy: Option<&PathBuf>) -> Result<Answer, String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the hook's input: {e}"))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(format!(
            "the hook's input is larger than {} KiB",
            MAX_INPUT_BYTES >> 10
        ));
    }
    let input: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the hook's input is not JSON ({e})"))?;
    let tool = input
        .get("tool_name")
        .and_then(Value::as_str)
        .ok_or("the hook's input has no `tool_name`")?;
    if tool != "Bash" {
        return Ok(Answer::Silent);
    }
    let command = input
        .pointer("/tool_input/command")
        .and_then(Value::as_str)
        .ok_or("the Bash call has no `tool_input.command`")?;
    let cwd = input.get("cwd").and_then(Value::as_str);

    let guard = Guard::builder()
        .policy(load_policy(policy).map_err(|e| e.to_string())?)
        .actor(Actor {
            user: "claude-code".into(),
            kind: ActorKind::Agent,
            account: Some(facts::real_account()),
        })
        .build()
        .map_err(|e| e.to_string())?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let analysis = shell::analyze(command, &Context::new(cwd, &env));
    let decision = match &analysis.problem {
        Some(problem) => hook::blocked(problem),
        None => {
            let commands: Vec<HookCommand> = analysis
                .commands
                .iter()
                .map(|recognized| HookCommand {
                    kind: match &recognized.sql {
                        Some(SqlSource::File { dialect, path }) => sql_file_kind(path, *dialect),
                        _ => recognized.kind.clone(),
                    },
                    part: recognized.part.clone(),
                    targets: recognized.targets.clone(),
                })
                .collect();
            hook::decide(guard.policy(), guard.detection(), &commands, stamp_of)
        }
    };
    if decision.verdict == HookVerdict::Silent {
        return Ok(Answer::Silent);
    }
    // Every ask, deny and block is a record; one that cannot be written
    // blocks the call.
    let attempt = facts::random_id();
    for event in decision.records(guard.policy(), guard.actor(), &attempt, command) {
        guard.audit_sink().append(&event).map_err(|e| {
            format!(
                "the audit log cannot take the record of this decision ({e}): {}",
                decision.reason
            )
        })?;
    }
    Ok(Answer::Decided(decision))
}

/// The operation of the SQL script in `path`: its most dangerous
/// statement's kind, or `db.unknown` when it cannot be read.
fn sql_file_kind(path: &str, dialect: sql::Dialect) -> String {
    match prodguard::small_file::read_to_string(Path::new(path), MAX_SQL_FILE_BYTES) {
        Ok(text) => sql::classify(&text, dialect).operation.as_str().to_owned(),
        Err(_) => sql::SqlKind::Unknown.as_str().to_owned(),
    }
}

/// A SQLite target's stamp. Servers are not asked: a hook must answer fast.
fn stamp_of(target: &str) -> Result<Option<Stamp>, StampError> {
    let Some(path) = target.strip_prefix("sqlite:").map(Path::new) else {
        return Ok(None);
    };
    if !prodguard::stamp::is_sqlite(path) {
        return Ok(None);
    }
    prodguard::stamp::read_sqlite_stamp(path).map_err(StampError::from)
}

/// Writes Claude Code's answer for `decision`; returns the exit code.
fn respond(decision: &HookDecision) -> i32 {
    let permission = match decision.verdict {
        HookVerdict::Ask => "ask",
        HookVerdict::Deny => "deny",
        HookVerdict::Block => {
            tell!("{}", decision.reason);
            return BLOCK;
        }
        _ => return 0,
    };
    let answer = json!({
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": permission,
            "permissionDecisionReason": decision.reason,
        }
    });
    say!("{answer}");
    0
}

/// Where `hook install` writes.
pub(crate) enum Scope {
    /// `.claude/settings.json` in the current directory.
    Project,
    /// `~/.claude/settings.json`.
    User,
}

/// Merges the PreToolUse hook into the scope's `settings.json`, keeping
/// everything else; does nothing when a prodguard hook is there already.
pub(crate) fn install(scope: &Scope) -> Result<i32, GuardError> {
    let usage = GuardError::Policy;
    let file = match scope {
        Scope::Project => PathBuf::from(".claude/settings.json"),
        Scope::User => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".claude/settings.json"))
            .ok_or_else(|| usage("HOME is not set: say --project, or set HOME".into()))?,
    };
    let shown = escape(&file.to_string_lossy()).into_owned();
    let mut settings: Value = match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            usage(format!(
                "{shown} is not JSON ({e}); fix it by hand, nothing was changed"
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(usage(format!("cannot read {shown}: {e}"))),
    };
    let exe = std::env::current_exe()
        .map_err(|e| usage(format!("cannot tell where this prodguard is: {e}")))?;
    // The absolute path: a hook command that is not found exits 127, which
    // Claude Code takes as "go on".
    let command = format!(
        "{} hook claude-code",
        prodguard_core::text::shell_word(&exe.to_string_lossy())
    );
    let Some(root) = settings.as_object_mut() else {
        return Err(usage(format!(
            "{shown} is not a JSON object; fix it by hand, nothing was changed"
        )));
    };
    let hooks = root.entry("hooks").or_insert_with(|| json!({}));
    let pre = hooks
        .as_object_mut()
        .ok_or_else(|| {
            usage(format!(
                "`hooks` in {shown} is not an object; nothing was changed"
            ))
        })?
        .entry("PreToolUse")
        .or_insert_with(|| json!([]));
    let groups = pre.as_array_mut().ok_or_else(|| {
        usage(format!(
            "`hooks.PreToolUse` in {shown} is not an array; nothing was changed"
        ))
    })?;
    let installed = groups.iter().any(|group| {
        group["hooks"].as_array().is_some_and(|handlers| {
            handlers.iter().any(|h| {
                h["command"]
                    .as_str()
                    .is_some_and(|c| c.ends_with(" hook claude-code"))
            })
        })
    });
    if installed {
        say!("{shown}: the prodguard hook is already installed; nothing changed");
        return Ok(0);
    }
    groups.push(json!({
        "matcher": "Bash",
        "hooks": [{"type": "command", "command": command, "timeout": 10}]
    }));
    let text = serde_json::to_string_pretty(&settings)
        .map_err(|e| usage(format!("cannot write {shown}: {e}")))?;
    write_atomically(&file, &format!("{text}\n"))
        .map_err(|e| usage(format!("cannot write {shown}: {e}")))?;
    say!("{shown}: added a PreToolUse hook on Bash: {command}");
    Ok(0)
}

/// Writes `text` to `file` through a temporary file in the same directory,
/// so a reader sees the old settings or the new, never half.
fn write_atomically(file: &Path, text: &str) -> std::io::Result<()> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let temp = file.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}
