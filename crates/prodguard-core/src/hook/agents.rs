//! The coding agents whose hook protocol prodguard speaks: how each hands
//! over a shell command, and how each takes an answer.
//!
//! | agent | event | shell tool | ask | deny | block |
//! |---|---|---|---|---|---|
//! | Claude Code | `PreToolUse` | `Bash` | `permissionDecision: "ask"` | `permissionDecision: "deny"` | exit 2 |
//! | Codex CLI | `PreToolUse` | `Bash` | — (denied) | `permissionDecision: "deny"` | exit 2 |
//! | Gemini CLI | `BeforeTool` | `run_shell_command` | — (denied) | `decision: "deny"` | exit 2 |
//! | Cursor | `beforeShellExecution` | every call | — (denied) | `permission: "deny"` | exit 2 |
//!
//! Only Claude Code reliably puts a hook's "ask" in front of a person.
//! Codex takes an `ask` as a broken hook and runs the command; Gemini CLI
//! documents no ask for tools; Cursor runs the command without a prompt in
//! its auto-review mode. A command that needs a person is therefore denied
//! for those agents, with the way to run it outside the agent.
//! Silence is always no output and exit 0: the hook never answers "allow",
//! so the agent's own permission flow goes on.

use serde_json::{Value, json};

use super::{HookDecision, HookVerdict};

/// A coding agent whose hook protocol prodguard speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Agent {
    /// Claude Code's `PreToolUse` hook on `Bash`.
    ClaudeCode,
    /// OpenAI Codex CLI's `PreToolUse` hook on `Bash`.
    Codex,
    /// Gemini CLI's `BeforeTool` hook on `run_shell_command`.
    Gemini,
    /// Cursor's `beforeShellExecution` hook.
    Cursor,
}

/// The shell command an agent's tool call would run, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellCall {
    /// The command line.
    pub command: String,
    /// The directory it runs in, when the agent says.
    pub cwd: Option<String>,
}

/// What the hook process writes and exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HookReply {
    /// For stdout (one JSON object), or nothing.
    pub stdout: Option<String>,
    /// For stderr: the reason of a block.
    pub stderr: Option<String>,
    /// 0, or 2: the call is blocked.
    pub exit_code: i32,
}

/// Every agent blocks a tool call whose hook exits with this, with stderr
/// as the reason.
const BLOCK: i32 = 2;

impl HookReply {
    /// The reply that blocks the call: `reason` on stderr, exit 2.
    pub fn block(reason: &str) -> Self {
        Self {
            stdout: None,
            stderr: Some(reason.to_owned()),
            exit_code: BLOCK,
        }
    }

    fn answer(stdout: Value) -> Self {
        Self {
            stdout: Some(stdout.to_string()),
            stderr: None,
            exit_code: 0,
        }
    }

    /// The reply that says nothing: the agent's own permission flow goes on.
    pub fn silent() -> Self {
        Self {
            stdout: None,
            stderr: None,
            exit_code: 0,
        }
    }
}

/// The hook entry of an agent's settings that runs prodguard's hook.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HookSettings {
    /// The key under `hooks` that lists what runs before a shell command.
    pub event: &'static str,
    /// The entry, in the agent's own shape.
    pub entry: Value,
    /// Top-level keys the file must have, with the value to add if absent.
    pub root: Vec<(&'static str, Value)>,
    /// The entry, for people: "a PreToolUse hook on Bash".
    pub described: &'static str,
}

impl Agent {
    /// Every agent, in the order the README lists them.
    pub const ALL: [Agent; 4] = [
        Agent::ClaudeCode,
        Agent::Codex,
        Agent::Gemini,
        Agent::Cursor,
    ];

    /// The name on the command line and in records: `claude-code`, `codex`,
    /// `gemini`, `cursor`.
    pub fn name(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "claude-code",
            Agent::Codex => "codex",
            Agent::Gemini => "gemini",
            Agent::Cursor => "cursor",
        }
    }

    /// The agent called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|agent| agent.name() == name)
    }

    /// The agent as people know it.
    pub fn title(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "Claude Code",
            Agent::Codex => "Codex CLI",
            Agent::Gemini => "Gemini CLI",
            Agent::Cursor => "Cursor",
        }
    }

    /// Whether the agent reliably asks a person when its hook says "ask";
    /// where it does not, what needs a person is denied.
    pub fn asks_people(self) -> bool {
        self == Agent::ClaudeCode
    }

    /// The settings file that lists the agent's hooks, relative to the
    /// project or the home directory.
    pub fn settings_file(self) -> &'static str {
        match self {
            Agent::ClaudeCode => ".claude/settings.json",
            Agent::Codex => ".codex/hooks.json",
            Agent::Gemini => ".gemini/settings.json",
            Agent::Cursor => ".cursor/hooks.json",
        }
    }

    /// The system-wide settings file (Linux) that the agent reads for every
    /// user and that they cannot override: only root can change it, so
    /// neither the agent nor the account it runs as can take the hook out.
    pub fn system_settings_file(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "/etc/claude-code/managed-settings.json",
            Agent::Codex => "/etc/codex/hooks.json",
            Agent::Gemini => "/etc/gemini-cli/settings.json",
            Agent::Cursor => "/etc/cursor/hooks.json",
        }
    }

    /// The settings entry that runs `command` as this agent's hook. Its
    /// timeout is above the hook's own deadline (5 s), which blocks.
    pub fn settings(self, command: &str) -> HookSettings {
        let (event, entry, described) = match self {
            Agent::ClaudeCode | Agent::Codex => (
                "PreToolUse",
                json!({"matcher": "Bash",
                    "hooks": [{"type": "command", "command": command, "timeout": 10}]}),
                "a PreToolUse hook on Bash",
            ),
            // Gemini's timeout is in milliseconds.
            Agent::Gemini => (
                "BeforeTool",
                json!({"matcher": "run_shell_command",
                    "hooks": [{"type": "command", "command": command,
                        "name": "prodguard", "timeout": 10_000}]}),
                "a BeforeTool hook on run_shell_command",
            ),
            Agent::Cursor => (
                "beforeShellExecution",
                json!({"command": command}),
                "a beforeShellExecution hook",
            ),
        };
        let root = match self {
            Agent::Cursor => vec![("version", json!(1))],
            _ => Vec::new(),
        };
        HookSettings {
            event,
            entry,
            root,
            described,
        }
    }

    /// The shell command in the hook's `input`, or `None` for a call that is
    /// not a shell command (another tool); an error for input that is not
    /// this agent's (the hook then blocks).
    ///
    /// ```
    /// use prodguard_core::hook::Agent;
    ///
    /// let input = br#"{"tool_name": "run_shell_command",
    ///     "tool_input": {"command": "rm -rf build", "dir_path": "web"}, "cwd": "/src/app"}"#;
    /// let call = Agent::Gemini.shell_call(input).unwrap().unwrap();
    /// assert_eq!(call.command, "rm -rf build");
    /// assert_eq!(call.cwd.as_deref(), Some("/src/app/web"));
    /// assert_eq!(Agent::Gemini.shell_call(br#"{"tool_name": "read_file"}"#), Ok(None));
    /// assert!(Agent::Cursor.shell_call(b"not json").is_err());
    /// ```
    pub fn shell_call(self, input: &[u8]) -> Result<Option<ShellCall>, String> {
        let input: Value = serde_json::from_slice(input)
            .map_err(|e| format!("the hook's input is not JSON ({e})"))?;
        if !input.is_object() {
            return Err("the hook's input is not a JSON object".into());
        }
        let text = |pointer: &str| input.pointer(pointer).and_then(Value::as_str);
        let cwd = text("/cwd").map(str::to_owned);
        let (shell_tool, command) = match self {
            Agent::ClaudeCode | Agent::Codex => ("Bash", "/tool_input/command"),
            Agent::Gemini => ("run_shell_command", "/tool_input/command"),
            Agent::Cursor => {
                let command =
                    text("/command").ok_or("the beforeShellExecution call has no `command`")?;
                return Ok(Some(ShellCall {
                    command: command.to_owned(),
                    cwd,
                }));
            }
        };
        let tool = text("/tool_name").ok_or("the hook's input has no `tool_name`")?;
        if tool != shell_tool {
            return Ok(None);
        }
        let command = text(command)
            .ok_or_else(|| format!("the {shell_tool} call has no `tool_input.command`"))?;
        // Gemini runs the command in `dir_path` (once `directory`), relative
        // to the project: that is where its relative paths point.
        let dir = text("/tool_input/dir_path").or_else(|| text("/tool_input/directory"));
        let cwd = match (cwd, dir) {
            (_, Some(dir)) if dir.starts_with('/') => Some(dir.to_owned()),
            (Some(cwd), Some(dir)) if !dir.is_empty() => {
                Some(format!("{}/{dir}", cwd.trim_end_matches('/')))
            }
            (cwd, _) => cwd,
        };
        Ok(Some(ShellCall {
            command: command.to_owned(),
            cwd,
        }))
    }

    /// What the hook writes and exits with for `decision`.
    ///
    /// ```
    /// use prodguard_core::hook::{blocked, Agent};
    ///
    /// let reply = Agent::Cursor.reply(&blocked("an unterminated quote"));
    /// assert_eq!(reply.exit_code, 2);
    /// assert!(reply.stderr.unwrap().contains("unterminated quote"));
    /// ```
    pub fn reply(self, decision: &HookDecision) -> HookReply {
        let reason = decision.reason.as_str();
        let permission = match decision.verdict {
            HookVerdict::Silent => return HookReply::silent(),
            HookVerdict::Block => return HookReply::block(reason),
            // Only an agent that asks people is ever told to ask: `decide`
            // denies for the others.
            HookVerdict::Ask if self.asks_people() => "ask",
            HookVerdict::Ask | HookVerdict::Deny => "deny",
        };
        HookReply::answer(match self {
            Agent::ClaudeCode | Agent::Codex => json!({
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": permission,
                    "permissionDecisionReason": reason,
                }
            }),
            Agent::Gemini => json!({"decision": "deny", "reason": reason}),
            Agent::Cursor => json!({
                "permission": "deny",
                "user_message": reason,
                "agent_message": reason,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(agent: Agent, input: Value) -> Result<Option<ShellCall>, String> {
        agent.shell_call(input.to_string().as_bytes())
    }

    #[test]
    fn each_agent_hands_over_its_shell_command_and_nothing_else() {
        let claude = json!({"tool_name": "Bash", "tool_input": {"command": "ls"}, "cwd": "/a"});
        for agent in [Agent::ClaudeCode, Agent::Codex] {
            let got = call(agent, claude.clone()).unwrap().unwrap();
            assert_eq!(
                (got.command.as_str(), got.cwd.as_deref()),
                ("ls", Some("/a"))
            );
            assert_eq!(call(agent, json!({"tool_name": "Edit"})), Ok(None));
            assert!(call(agent, json!({"tool_name": "Bash"})).is_err());
            assert!(call(agent, json!({"tool_input": {"command": "ls"}})).is_err());
        }
        // Another agent's shell tool is not this one's.
        assert_eq!(call(Agent::Gemini, claude.clone()), Ok(None));
        let gemini = json!({"tool_name": "run_shell_command",
            "tool_input": {"command": "ls", "dir_path": "/srv"}, "cwd": "/a"});
        let got = call(Agent::Gemini, gemini).unwrap().unwrap();
        assert_eq!(got.cwd.as_deref(), Some("/srv"));
        let cursor =
            json!({"hook_event_name": "beforeShellExecution", "command": "ls", "cwd": "/c"});
        let got = call(Agent::Cursor, cursor).unwrap().unwrap();
        assert_eq!(
            (got.command.as_str(), got.cwd.as_deref()),
            ("ls", Some("/c"))
        );
        assert!(
            call(Agent::Cursor, claude).is_err(),
            "Cursor's call has a top-level command"
        );
        assert!(call(Agent::Cursor, json!(["ls"])).is_err());
        assert!(
            Agent::ClaudeCode
                .shell_call(b"{\"tool_name\": \"Bash\",")
                .is_err()
        );
    }

    #[test]
    fn each_agent_gets_the_answer_in_its_own_shape_and_only_claude_code_is_asked() {
        let decision = |verdict| HookDecision {
            verdict,
            reason: "why".into(),
            commands: Vec::new(),
        };
        let stdout = |agent: Agent, verdict| -> Value {
            let reply = agent.reply(&decision(verdict));
            assert_eq!((reply.exit_code, reply.stderr), (0, None));
            serde_json::from_str(&reply.stdout.unwrap()).unwrap()
        };
        let pre_tool_use = |permission: &str| {
            json!({"hookSpecificOutput": {"hookEventName": "PreToolUse",
                "permissionDecision": permission, "permissionDecisionReason": "why"}})
        };
        assert_eq!(
            stdout(Agent::ClaudeCode, HookVerdict::Ask),
            pre_tool_use("ask")
        );
        assert_eq!(
            stdout(Agent::ClaudeCode, HookVerdict::Deny),
            pre_tool_use("deny")
        );
        assert_eq!(
            stdout(Agent::Codex, HookVerdict::Deny),
            pre_tool_use("deny")
        );
        assert_eq!(stdout(Agent::Codex, HookVerdict::Ask), pre_tool_use("deny"));
        let gemini = json!({"decision": "deny", "reason": "why"});
        assert_eq!(stdout(Agent::Gemini, HookVerdict::Ask), gemini);
        let cursor = json!({"permission": "deny", "user_message": "why", "agent_message": "why"});
        assert_eq!(stdout(Agent::Cursor, HookVerdict::Ask), cursor);
        for agent in Agent::ALL {
            assert_eq!(
                agent.reply(&decision(HookVerdict::Silent)),
                HookReply::silent()
            );
            assert_eq!(
                agent.reply(&decision(HookVerdict::Block)),
                HookReply::block("why")
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for agent in Agent::ALL {
            assert_eq!(Agent::from_name(agent.name()), Some(agent));
        }
        assert_eq!(Agent::from_name("Claude Code"), None);
    }
}
