//! `prodguard hook AGENT`: a coding agent's hook before each shell command
//! (Claude Code, Codex CLI, Gemini CLI, Cursor). It reads the tool call on
//! stdin, and for a destructive command aimed at something protected
//! answers "ask" or "deny" in the agent's protocol; otherwise it prints
//! nothing (the agent's own permission flow goes on). What it cannot read
//! or analyse in time is blocked: exit 2 with the reason on stderr. The
//! decision and each protocol's shape live in `prodguard_core::hook`.
//!
//! `prodguard hook install AGENT`: merges the hook into the project's or
//! the user's settings of that agent.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prodguard::{Actor, ActorKind, Guard, GuardError, facts};
use prodguard_core::hook::{self, Agent, HookCommand, HookReply, HookVerdict};
use prodguard_core::session::{Stamp, StampError};
use prodguard_core::shell::{self, Context, SqlSource};
use prodguard_core::sql;
use prodguard_core::text::escape;
use serde_json::{Value, json};

use super::load_policy;
use crate::cli::HookCommand as Command;
use crate::envelope::{self, Envelope};

/// Past this, the tool call is blocked: an agent waits for the hook, and a
/// hook that fails open when slow is no guard.
const DEADLINE: Duration = Duration::from_secs(5);

/// The most of a tool call read: the command's limit, with room for JSON
/// escaping and the other fields.
const MAX_INPUT_BYTES: u64 = 4 * shell::MAX_COMMAND_BYTES as u64;

/// The most of an SQL file a hook reads to classify it; larger is unknown.
const MAX_SQL_FILE_BYTES: u64 = 1 << 20;

/// Runs `prodguard hook …`. The agents' hooks answer in their agent's
/// protocol (only their exit code goes back); `install` answers as every
/// command does.
pub(crate) fn run(command: Command, policy: Option<&PathBuf>) -> Result<Envelope, GuardError> {
    let agent = |name: &str| {
        Agent::from_name(name).ok_or_else(|| GuardError::Policy(format!("no agent {name}")))
    };
    match command {
        Command::ClaudeCode => Ok(envelope::exit(answer_call(Agent::ClaudeCode, policy))),
        Command::Codex => Ok(envelope::exit(answer_call(Agent::Codex, policy))),
        Command::Gemini => Ok(envelope::exit(answer_call(Agent::Gemini, policy))),
        Command::Cursor => Ok(envelope::exit(answer_call(Agent::Cursor, policy))),
        Command::Install {
            agent: name,
            user,
            system,
            json,
            ..
        } => {
            let scope = if system {
                Scope::System
            } else if user {
                Scope::User
            } else {
                Scope::Project
            };
            install(agent(&name)?, &scope, json)
        }
    }
}

/// Answers one tool call of `agent`; returns the exit code.
fn answer_call(agent: Agent, policy: Option<&PathBuf>) -> i32 {
    // A watchdog, not a timeout on each step: whatever is slow (a stdin
    // never closed, a stamp on a slow disk), the call is blocked in time.
    std::thread::spawn(|| {
        std::thread::sleep(DEADLINE);
        let reply = HookReply::block(&format!(
            "prodguard: no answer within {}s, so the command is blocked (fail closed)",
            DEADLINE.as_secs()
        ));
        std::process::exit(write(&reply));
    });
    let reply = answer(agent, policy).unwrap_or_else(|reason| {
        HookReply::block(&format!(
            "prodguard: {reason}; the command is blocked (fail closed)"
        ))
    });
    write(&reply)
}

/// Writes `reply`; returns its exit code.
fn write(reply: &HookReply) -> i32 {
    if let Some(stderr) = &reply.stderr {
        tell!("{stderr}");
    }
    if let Some(stdout) = &reply.stdout {
        say!("{stdout}");
    }
    reply.exit_code
}

fn answer(agent: Agent, policy: Option<&PathBuf>) -> Result<HookReply, String> {
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
    let Some(call) = agent.shell_call(&bytes)? else {
        return Ok(HookReply::silent());
    };

    let guard = Guard::builder()
        .policy(load_policy(policy).map_err(|e| e.to_string())?)
        .actor(Actor {
            user: agent.name().into(),
            kind: ActorKind::Agent,
            account: Some(facts::real_account()),
        })
        .build()
        .map_err(|e| e.to_string())?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let analysis = shell::analyze(&call.command, &Context::new(call.cwd.as_deref(), &env));
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
            hook::decide(
                guard.policy(),
                guard.detection(),
                agent,
                &commands,
                stamp_of,
            )
        }
    };
    if decision.verdict == HookVerdict::Silent {
        return Ok(HookReply::silent());
    }
    // Every ask, deny and block is a record; one that cannot be written
    // blocks the call.
    let attempt = facts::random_id();
    for event in decision.records(guard.policy(), guard.actor(), &attempt, &call.command) {
        guard.audit_sink().append(&event).map_err(|e| {
            format!(
                "the audit log cannot take the record of this decision ({e}): {}",
                decision.reason
            )
        })?;
    }
    Ok(agent.reply(&decision))
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

/// Where `hook install` writes.
pub(crate) enum Scope {
    /// The agent's settings in the current directory (the project's).
    Project,
    /// The agent's settings in the home directory.
    User,
    /// The agent's system-wide settings, which only root can change.
    System,
}

/// Merges `agent`'s hook into the scope's settings, keeping everything
/// else; does nothing when a prodguard hook is there already.
pub(crate) fn install(agent: Agent, scope: &Scope, json: bool) -> Result<Envelope, GuardError> {
    let usage = GuardError::Policy;
    let file = match scope {
        Scope::Project => PathBuf::from(agent.settings_file()),
        Scope::User => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(agent.settings_file()))
            .ok_or_else(|| usage("HOME is not set: say --project, or set HOME".into()))?,
        Scope::System => PathBuf::from(agent.system_settings_file()),
    };
    let shown = escape(&file.to_string_lossy()).into_owned();
    let mut doc: Value = match std::fs::read(&file) {
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
    // every agent takes as "go on".
    let suffix = format!(" hook {}", agent.name());
    let command = format!(
        "{}{suffix}",
        prodguard_core::text::shell_word(&exe.to_string_lossy())
    );
    let settings = agent.settings(&command);
    let Some(root) = doc.as_object_mut() else {
        return Err(usage(format!(
            "{shown} is not a JSON object; fix it by hand, nothing was changed"
        )));
    };
    for (key, value) in settings.root {
        root.entry(key).or_insert(value);
    }
    let hooks = root.entry("hooks").or_insert_with(|| json!({}));
    let entries = hooks
        .as_object_mut()
        .ok_or_else(|| {
            usage(format!(
                "`hooks` in {shown} is not an object; nothing was changed"
            ))
        })?
        .entry(settings.event)
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| {
            usage(format!(
                "`hooks.{}` in {shown} is not an array; nothing was changed",
                settings.event
            ))
        })?;
    // An entry runs the command itself (Cursor) or lists handlers that do.
    // Installed means this very command, on the shell tool: an entry with
    // another binary or matcher would never run this one, so it is added,
    // and such entries are named (not removed: they are the user's).
    let commands_of = |entry: &Value| -> Vec<String> {
        let handlers = entry["hooks"].as_array().cloned().unwrap_or_default();
        std::iter::once(entry)
            .chain(handlers.iter())
            .filter_map(|h| h["command"].as_str().map(str::to_owned))
            .collect()
    };
    let matcher = settings.entry.get("matcher");
    let installed = entries
        .iter()
        .any(|e| e.get("matcher") == matcher && commands_of(e).contains(&command));
    let stale: Vec<String> = entries
        .iter()
        .flat_map(commands_of)
        .filter(|c| c.ends_with(&suffix))
        .filter(|_| !installed)
        .collect();
    let answer = |added: bool| {
        envelope::ok(json!({
            "file": file.to_string_lossy(),
            "command": command,
            "added": added,
            "other_prodguard_entries": stale,
        }))
    };
    if installed {
        if !json {
            say!("{shown}: the prodguard hook is already installed; nothing changed");
        }
        return Ok(answer(false));
    }
    if !json {
        for other in &stale {
            tell!(
                "prodguard: {shown} also has `{}`, which is not this binary's hook on the \
                 shell tool; remove it by hand if it is stale",
                escape(other)
            );
        }
    }
    entries.push(settings.entry);
    let text = serde_json::to_string_pretty(&doc)
        .map_err(|e| usage(format!("cannot write {shown}: {e}")))?;
    write_atomically(&file, &format!("{text}\n")).map_err(|e| {
        let root = if matches!(scope, Scope::System) {
            " (system settings: run it as root)"
        } else {
            ""
        };
        usage(format!("cannot write {shown}{root}: {e}"))
    })?;
    if !json {
        say!("{shown}: added {}: {command}", settings.described);
    }
    Ok(answer(true))
}

/// Writes `text` to `file` through a temporary file in the same directory,
/// so a reader sees the old settings or the new, never half. A symbolic
/// link is written through (its target gets the settings), an existing
/// file keeps its mode, and a new one is 0644 in a directory made 0755:
/// every user's agent must read system settings, whatever root's umask.
fn write_atomically(file: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let file = match std::fs::symlink_metadata(file) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(file)?,
        _ => file.to_path_buf(),
    };
    let mode = std::fs::metadata(&file).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let temp = file.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&temp, text)?;
    let placed = std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode))
        .and_then(|()| std::fs::rename(&temp, &file));
    placed.inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}
