//! The command line's shape: every command, flag and help text (clap).
//!
//! Only definitions live here; `commands/` does the work and `main.rs`
//! dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use prodguard::Operation;

const AFTER_HELP: &str = "\
Exit codes (exec passes the command's own code through when it ran):
  120  denied by a policy rule           123  audit log unavailable
  121  confirmation missing or declined  124  environment mismatch with the target's stamp
  122  backup requirement not met        125  usage or policy error (no command given too)
  126  command not executable            127  command not found
  141  stdout's reader left (e.g. | head) before a success was printed; 74: another write error
   75  fleet mode: another host holds the lock of this operation and target (nothing ran; retry)

--json (every command but `hook …`, completions and man): one JSON document
on stdout, {\"v\":1,\"ok\":{…}} when the exit code is 0, else
{\"v\":1,\"error\":{\"code\":N,\"message\":\"…\",\"data\"?:{…}}} with N the exit code.

Environment:
  PRODGUARD_ENV        declare the environment (e.g. production, staging, development)
  PRODGUARD_POLICY     policy file (default: ./prodguard.toml if present, else built-in)
  PRODGUARD_AUDIT_LOG  audit log path (overrides the policy)
  PRODGUARD_ACTOR      who is acting (default: SUDO_USER, USER, LOGNAME, the uid's name)
  PRODGUARD_APPROVAL   an approval token for the next guarded operation (as exec --approval)
  PRODGUARD_LOG        diagnostics level for stderr (e.g. info, debug; default warn)

Examples:
  prodguard detect --explain
  prodguard check --op db.migrate --target orders.db
  prodguard exec --op db.migrate --target orders.db -- ./migrate.sh
  prodguard parity --from staging-audit.jsonl --to audit.jsonl";

/// prodguard — know when you are in production, and guard what could hurt it.
///
/// Wraps dangerous commands (migrations, bulk deletes, drops, resets) in the
/// policy's guards: typed confirmation, verified backup, durable audit log.
/// Anything undetermined is treated like production.
#[derive(Debug, Parser)]
#[command(name = "prodguard", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// Policy file to use (overrides PRODGUARD_POLICY and ./prodguard.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Say which environment this is, why, and whether guards apply.
    #[command(after_help = "Examples:
  prodguard detect --explain
  PRODGUARD_ENV=staging prodguard detect
  prodguard detect --json | jq -r .ok.environment")]
    Detect {
        /// Answer with one JSON document on stdout, {"v":1,"ok":{…}} (the
        /// detection, always with its evidence), or {"v":1,"error":{"code":N,"message":"…"}}
        /// where N is the exit code.
        #[arg(long)]
        json: bool,
        /// List every signal looked at and what it meant.
        #[arg(long)]
        explain: bool,
    },
    /// Show what the guard would require for an operation here; runs nothing.
    ///
    /// Exits 0 when the operation would run without further input, 120 when
    /// a rule denies it, 121 when it needs a confirmation, 124 when the
    /// target's stamp names another environment.
    ///
    /// With --json the decision is "ok" when it exits 0, else the error's
    /// "data" (with "ledger", what `approve --ledger` names for a run here).
    #[command(after_help = "Examples:
  prodguard check --op db.migrate --target orders.db
  APP_ENV=production prodguard check --op db.delete.users --target users
  prodguard check --op db.migrate --target orders --json | jq '.ok // .error.data | .ledger'")]
    Check {
        #[command(flatten)]
        op: OpArgs,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Run a command under the guards; exits with the command's own code.
    ///
    /// With --json, the command's own standard output goes to standard
    /// error, so standard output holds only the envelope: "ok" with
    /// {"ran": true, "exit_code": 0}, else an error whose code is the exit
    /// code (the guard's refusal, 126/127, or the command's own) and whose
    /// "data" says whether the command ran.
    #[command(after_help = "Examples:
  prodguard exec --op db.migrate --target orders.db -- ./migrate.sh
  prodguard exec --op db.delete.users --target users --approval \"$TOKEN\" -- psql -f purge.sql
  prodguard exec --op db.migrate --target orders --json -- ./migrate.sh 2>migrate.log")]
    Exec {
        #[command(flatten)]
        op: OpArgs,
        /// An approval token from `prodguard approve` (default: PRODGUARD_APPROVAL).
        #[arg(long, value_name = "TOKEN")]
        approval: Option<String>,
        /// Emergency: skip confirmation and backup for this one run where the
        /// policy allows it (break_glass = true) and lists your OS account in
        /// [approval] break_glass_users; the reason is recorded.
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
        #[arg(long, help = JSON)]
        json: bool,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },
    /// Issue an approval token for one operation on one target, signed with
    /// your approver key; prints it.
    ///
    /// The token binds the operation, target, environment, an optional
    /// fingerprint, you as the approver (the name in your key file), an
    /// expiry (at most [approval] max_ttl), the ledger it is spent in and a
    /// nonce that is spent by the first run that uses it.
    #[command(after_help = "Examples:
  prodguard approve --key ~/.config/prodguard/alice.key --op db.migrate --target orders --env production --ttl 10m
  prodguard approve --key alice.key --sql cleanup.sql --target sqlite:shop.db --max-rows 300
  prodguard approve --key alice.key --op db.migrate --target orders --json | jq -r .ok.token")]
    Approve {
        /// Your approver key (`prodguard keygen --approver NAME --out FILE`);
        /// it must be readable by you alone.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The operation's dotted name (with --sql: the script's, and this
        /// must name the same if given).
        #[arg(long = "op", value_name = "KIND", required_unless_present = "sql")]
        kind: Option<String>,
        /// The target it may act on (for `prodguard sql exec`: its --target,
        /// `sqlite:PATH` and PATH naming the same file).
        #[arg(long, value_name = "NAME")]
        target: String,
        /// The environment it may run in (default: the one detected here).
        #[arg(long, value_name = "NAME")]
        env: Option<String>,
        /// How long it is valid, e.g. 10m (default and maximum: [approval] max_ttl).
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// What exactly is approved, e.g. a migration's checksum.
        #[arg(long, value_name = "TEXT", conflicts_with = "sql")]
        fingerprint: Option<String>,
        /// Approve this SQL script (at most 64 MiB, `-` for standard input):
        /// the operation is its most dangerous statement's kind and the
        /// token binds its fingerprint, so it runs this script only.
        #[arg(long, value_name = "FILE")]
        sql: Option<PathBuf>,
        /// With --sql: the script's dialect (default: the one --target names).
        #[arg(long, value_name = "DIALECT", requires = "sql")]
        dialect: Option<String>,
        /// With --sql: the most rows any one statement may affect; a run
        /// that would affect more is rolled back and refused.
        #[arg(long, value_name = "N", requires = "sql")]
        max_rows: Option<u64>,
        /// The ledger the run spends the token in (default: this host's, as
        /// a run here would spend it). Approving on another machine needs
        /// it: `prodguard check --json` on the host shows it as `ledger`.
        #[arg(long, value_name = "ID")]
        ledger: Option<String>,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Write the environment into a SQLite database or a PostgreSQL database
    /// (a guarded, audited operation); guarded operations on it then refuse
    /// with 124 anywhere else.
    ///
    /// Re-stamping a database stamped for a more sensitive environment is
    /// guarded as that environment.
    #[command(after_help = "Examples:
  prodguard stamp --target app.db --env production
  prodguard stamp --target postgresql://app@db.internal/orders --env production
  prodguard stamp --target dump-copy.db --env development")]
    Stamp {
        /// The SQLite database file, or a postgresql:// URL.
        #[arg(long, value_name = "DB")]
        target: String,
        /// The environment it belongs to.
        #[arg(long, value_name = "NAME")]
        env: String,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Make an approver's Ed25519 key pair: writes the private key file
    /// (readable by its owner only) and prints the public key, with the
    /// line that lists the approver in the system policy's [approval].
    #[command(after_help = "Examples:
  prodguard keygen --approver alice --out ~/.config/prodguard/alice.key
  prodguard keygen --approver alice --out alice.key --json | jq -r .ok.public_key")]
    Keygen {
        /// The approver's name, as the policy lists it (letters, digits, `.`, `_`, `-`).
        #[arg(long, value_name = "NAME")]
        approver: String,
        /// Where to write the private key (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Check or show policies.
    #[command(
        subcommand,
        after_help = "Examples:
  prodguard policy check prodguard.toml
  prodguard policy show --default"
    )]
    Policy(PolicyCommand),
    /// Inspect the audit log: verify, repair, show, head, seal, record, and prune
    /// old rotated files (retention).
    #[command(
        subcommand,
        after_help = "Examples:
  prodguard audit verify
  prodguard audit show | tail
  prodguard audit head > anchor.json"
    )]
    Audit(AuditCommand),
    /// Compare two audit trails: the guarded operations (by fingerprint)
    /// that succeeded in one and never in the other, newest first.
    ///
    /// Each TRAIL is a file log (its rotated files PATH.1, PATH.2, … are
    /// read too, as `audit verify --log` reads them) or a postgresql:// URL
    /// (the fleet trail). Each is verified first with `audit verify`'s
    /// verifier; one that does not verify is no evidence: exit 123, naming
    /// it. A success is an intent whose outcome (same attempt_id) is `ok`;
    /// failed, abandoned, rolled-back, dry runs and intents without an
    /// outcome are not. A batch counts by its items' fingerprints; successes
    /// without a fingerprint are counted, not compared. When one trail holds
    /// several environments (a fleet trail), --from-env and --to-env keep one
    /// side's (an environment's name or a tier's).
    ///
    /// It is a report: it exits 0 whatever the differences. With --json:
    /// {"v":1,"ok":{"from":{…},"to":{…},"only_in_to":[…],"only_in_from":[…],
    /// "in_both":N,"unfingerprinted_from":N,"unfingerprinted_to":N}}, each
    /// entry with its newest success and the records that prove it.
    #[command(after_help = "Examples:
  prodguard parity --from staging-audit.jsonl --to /var/log/prodguard/audit.jsonl
  prodguard parity --from postgresql://prodguard@db.internal/fleet --from-env staging \\
                   --to postgresql://prodguard@db.internal/fleet --to-env production
  prodguard parity --from staging.jsonl --to prod.jsonl --json | jq '.ok.only_in_to[].fingerprint'")]
    Parity {
        /// The trail the operations should have succeeded in first (e.g. staging's).
        #[arg(long, value_name = "TRAIL")]
        from: String,
        /// The trail to compare with it (e.g. production's).
        #[arg(long, value_name = "TRAIL")]
        to: String,
        /// Keep only the FROM trail's attempts in this environment (a name or a tier).
        #[arg(long, value_name = "NAME")]
        from_env: Option<String>,
        /// Keep only the TO trail's attempts in this environment (a name or a tier).
        #[arg(long, value_name = "NAME")]
        to_env: Option<String>,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Roll a guarded attempt back: run the way back its intent recorded,
    /// guarded as `<operation>.rollback` on the same target.
    ///
    /// The attempt is found in this host's own audit trail (the policy's
    /// [audit] sink, else its audit log), read only after it verifies (123
    /// otherwise). Its plan is what the intent recorded: a command (`exec
    /// --rollback CMD`, run with `sh -c`), or the restore of its backup — a
    /// SQLite database with SQLite's backup API, a postgresql:// database
    /// with `pg_restore --clean --if-exists`, another file by an atomic
    /// rename — refused with 122, before anyone is asked, when the backup's
    /// SHA-256 or size is no longer what the intent recorded. The rollback
    /// is confirmed, backed up and recorded as the policy says for
    /// `<operation>.rollback`; its intent names the attempt it undoes
    /// (`rolls_back`). An attempt with no plan is 125. --show prints the
    /// plan and runs nothing.
    #[command(after_help = "Examples:
  prodguard rollback 4f1c0e9a… --show
  prodguard rollback 4f1c0e9a…
  prodguard audit show --json | jq -r '.ok.records[] | select(.kind == \"intent\" and .rollback) | .attempt_id'")]
    Rollback {
        /// The attempt to undo: its intent record's `attempt_id`.
        #[arg(value_name = "ATTEMPT_ID")]
        attempt_id: String,
        /// Print the plan; run nothing.
        #[arg(long)]
        show: bool,
        /// An approval token for `<operation>.rollback` (default: PRODGUARD_APPROVAL).
        #[arg(long, value_name = "TOKEN")]
        approval: Option<String>,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Fleet mode: prepare the PostgreSQL database that hosts share.
    #[command(
        subcommand,
        after_help = "Examples:
  prodguard fleet init postgresql://prodguard@db.internal/fleet"
    )]
    Fleet(FleetCommand),
    /// SQL scripts: what each statement does, and what the policy requires
    /// for the script here.
    #[command(
        subcommand,
        after_help = "Examples:
  prodguard sql check --target orders.db migrate.sql
  prodguard sql exec --target sqlite:orders.db cleanup.sql"
    )]
    Sql(SqlCommand),
    /// Coding agents' hooks: ask a person, or deny, before an agent runs a
    /// destructive command against something protected.
    #[command(
        subcommand,
        after_help = "The hooks take no --json: they answer in each agent's protocol.

Examples:
  prodguard hook install claude-code
  prodguard hook install codex --system"
    )]
    Hook(HookCommand),
    /// Print a shell completion script (bash, zsh, fish, powershell).
    #[command(after_help = "Examples:
  prodguard completions bash > ~/.local/share/bash-completion/completions/prodguard
  prodguard completions zsh > ~/.zfunc/_prodguard
  prodguard completions fish > ~/.config/fish/completions/prodguard.fish")]
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: Shell,
    },
    /// Print the man page (roff).
    #[command(after_help = "Examples:
  prodguard man | man -l -
  prodguard man > /usr/local/share/man/man1/prodguard.1")]
    Man,
}

/// `prodguard hook …`.
///
/// Each agent's hook reads the tool call on stdin; for a destructive
/// command aimed at a protected target it answers "ask" (Claude Code) or
/// "deny" in the agent's protocol, and otherwise prints nothing. It exits 0,
/// or 2 (the call is blocked, the reason on stderr) for input it cannot
/// read or analyse in time. The hooks take no --json: their output is the
/// agent's protocol.
#[derive(Debug, Subcommand)]
pub(crate) enum HookCommand {
    /// Claude Code's PreToolUse hook on Bash: prints
    /// `{"hookSpecificOutput": {"permissionDecision": "ask" | "deny", …}}`.
    #[command(
        after_help = "Takes no --json: it reads the agent's tool call on stdin and answers in the agent's own protocol.

Examples:
  prodguard hook install claude-code            # sets the agent to run it
  prodguard hook claude-code < tool-call.json"
    )]
    ClaudeCode,
    /// Codex CLI's PreToolUse hook on Bash: prints
    /// `{"hookSpecificOutput": {"permissionDecision": "deny", …}}` (Codex
    /// cannot ask a person, so what needs one is denied).
    #[command(
        after_help = "Takes no --json: it reads the agent's tool call on stdin and answers in the agent's own protocol.

Examples:
  prodguard hook install codex            # sets the agent to run it
  prodguard hook codex < tool-call.json"
    )]
    Codex,
    /// Gemini CLI's BeforeTool hook on run_shell_command: prints
    /// `{"decision": "deny", "reason": …}` (what needs a person is denied).
    #[command(
        after_help = "Takes no --json: it reads the agent's tool call on stdin and answers in the agent's own protocol.

Examples:
  prodguard hook install gemini            # sets the agent to run it
  prodguard hook gemini < tool-call.json"
    )]
    Gemini,
    /// Cursor's beforeShellExecution hook: prints `{"permission": "deny", …}`
    /// (what needs a person is denied).
    #[command(
        after_help = "Takes no --json: it reads the agent's tool call on stdin and answers in the agent's own protocol.

Examples:
  prodguard hook install cursor            # sets the agent to run it
  prodguard hook cursor < tool-call.json"
    )]
    Cursor,
    /// Add the hook to an agent's settings (keeping what is there).
    ///
    /// claude-code: .claude/settings.json; codex: .codex/hooks.json;
    /// gemini: .gemini/settings.json; cursor: .cursor/hooks.json; in the
    /// project, your home directory (--user) or /etc (--system).
    #[command(after_help = "Examples:
  prodguard hook install claude-code
  prodguard hook install codex --user
  sudo prodguard hook install gemini --system")]
    Install {
        /// The agent: claude-code, codex, gemini or cursor.
        #[arg(value_name = "AGENT", value_parser = ["claude-code", "codex", "gemini", "cursor"])]
        agent: String,
        /// The project's settings, in the current directory (the default).
        #[arg(long, conflicts_with_all = ["user", "system"])]
        project: bool,
        /// Your user settings, in your home directory.
        #[arg(long, conflicts_with = "system")]
        user: bool,
        /// The system-wide settings every user's agent reads and none can
        /// override (/etc/claude-code/managed-settings.json,
        /// /etc/codex/hooks.json, /etc/gemini-cli/settings.json,
        /// /etc/cursor/hooks.json): run as root. The only place an agent
        /// cannot take the hook out of.
        #[arg(long)]
        system: bool,
        /// Answer in the JSON envelope: `{"v": 1, "ok": {"file", "command",
        /// "added"}}`.
        #[arg(long)]
        json: bool,
    },
}

/// `prodguard sql …`.
#[derive(Debug, Subcommand)]
pub(crate) enum SqlCommand {
    /// Classify a script statement by statement and show what the guard
    /// would require to run it here; runs nothing.
    ///
    /// The script's operation is its most dangerous statement's kind
    /// (db.delete.all, db.drop.table, …), its fingerprint binds approvals to
    /// this exact script, and every rule matching any statement's kind
    /// applies. Exits as `check` does for that operation: 0, 120, 121, 123,
    /// 124, or 125.
    #[command(after_help = "Examples:
  prodguard sql check --target orders.db migrate.sql
  pg_dump --schema-only … | prodguard sql check --dialect postgres -
  prodguard sql check --target postgresql://app@db/orders --json cleanup.sql | jq '.ok // .error.data | .fingerprint'")]
    Check {
        /// The dialect: postgres, sqlite, mysql or generic (default: the
        /// one --target names: postgres:// or postgresql://, mysql://,
        /// sqlite: or a *.db / *.sqlite / *.sqlite3 file; otherwise say it).
        #[arg(long, value_name = "DIALECT")]
        dialect: Option<String>,
        /// The database it would run on (a name, a SQLite file or a URL);
        /// confirmation asks for this name, and its stamp is checked.
        #[arg(long, value_name = "DB")]
        target: Option<String>,
        /// Answer with one JSON document on stdout: {"v":1,"ok":{…}} (the
        /// classification and the decision) when it exits 0, else
        /// {"v":1,"error":{"code":N,"message":"…","data":{…the same…}}}.
        #[arg(long)]
        json: bool,
        /// The script (at most 64 MiB), or `-` for standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Run a script under the guards, in one transaction that commits only
    /// if every statement stays within its bounds.
    ///
    /// Where a confirmation is required the script first runs in a
    /// transaction that is rolled back, to count each statement's rows: a
    /// statement over its rule's max_rows is refused before anyone is
    /// asked, the person asked sees the rows, and confirm_above_rows can
    /// waive the question. Then the backup, the intent record, and the real
    /// run, which commits only within max_rows, the approval's --max-rows
    /// and the rows confirmed; otherwise it is rolled back and refused
    /// (120, 121), and the outcome records the rows. Exits 0 when
    /// committed, 120–125 when refused (75: a fleet lock held elsewhere;
    /// nothing changed), 1 when a statement failed (rolled back).
    #[command(after_help = "Examples:
  prodguard sql exec --target sqlite:orders.db cleanup.sql
  prodguard sql exec --target orders.db --dry-run cleanup.sql
  prodguard sql exec --target postgresql://app@db/orders --approval \"$TOKEN\" --json cleanup.sql")]
    Exec {
        /// The database: sqlite:PATH (or a *.db / *.sqlite / *.sqlite3 file,
        /// which must exist), or a postgresql:// URL. A person confirms by
        /// typing it (PATH for SQLite; the URL without its password);
        /// its stamp is checked and the rule's backup is of it.
        #[arg(long, value_name = "DB")]
        target: String,
        /// The script's dialect; it must be the database's (default: it).
        #[arg(long, value_name = "DIALECT")]
        dialect: Option<String>,
        /// An approval token from `prodguard approve --sql` (default: PRODGUARD_APPROVAL).
        #[arg(long, value_name = "TOKEN")]
        approval: Option<String>,
        /// Emergency: as `exec --break-glass`; row bounds still hold.
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
        /// Run it in a transaction that is always rolled back, print the
        /// rows per statement and record it: nobody is asked, no approval
        /// is spent, nothing is changed.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, help = JSON)]
        json: bool,
        /// The script (at most 64 MiB), or `-` for standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub(crate) struct OpArgs {
    /// The operation's dotted name, e.g. db.migrate, db.delete.users.
    #[arg(long = "op", value_name = "KIND")]
    pub(crate) kind: String,
    /// What it acts on (a database, a table); confirmation asks for this name.
    #[arg(long, value_name = "NAME")]
    pub(crate) target: Option<String>,
    /// What exactly is done, e.g. a migration's checksum; an approval must name the same.
    #[arg(long, value_name = "TEXT")]
    pub(crate) fingerprint: Option<String>,
    /// Its way back (a down-migration, a restore command), recorded in the
    /// intent; `prodguard rollback ATTEMPT_ID` runs it with `sh -c`.
    #[arg(long, value_name = "CMD")]
    pub(crate) rollback: Option<String>,
}

impl OpArgs {
    pub(crate) fn operation(&self) -> Operation {
        let mut op = Operation::new(self.kind.clone());
        op.target.clone_from(&self.target);
        op.fingerprint.clone_from(&self.fingerprint);
        op.rollback.clone_from(&self.rollback);
        op
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Validate a policy file; errors name the line and column.
    #[command(after_help = "Examples:
  prodguard policy check prodguard.toml
  sudo prodguard policy check /etc/prodguard/policy.toml")]
    Check {
        /// The policy file (TOML, or JSON by its .json extension).
        file: PathBuf,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Print the policy in force (or the built-in default) as TOML.
    ///
    /// With --json: {"source", "sources", "toml", "policy"}, the policy as
    /// a JSON object besides its TOML text.
    #[command(after_help = "Examples:
  prodguard policy show
  prodguard policy show --default > prodguard.toml
  prodguard policy show --json | jq .ok.policy.audit")]
    Show {
        /// Print the built-in default policy.
        #[arg(long)]
        default: bool,
        #[arg(long, help = JSON)]
        json: bool,
    },
}

/// `prodguard fleet …`: the PostgreSQL tables fleet mode shares.
#[derive(Debug, Subcommand)]
pub(crate) enum FleetCommand {
    /// Create prodguard's tables (audit trail, spent approvals, locks,
    /// stamps) with their version row; does nothing when they exist.
    #[command(after_help = "Examples:
  prodguard fleet init postgresql://prodguard@db.internal/fleet")]
    Init {
        /// The server: a postgresql:// URL (keep passwords in ~/.pgpass).
        #[arg(value_name = "URL")]
        url: String,
        #[arg(long, help = JSON)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify the hash chain (rotated files included): exit 0 intact, 1 tampered
    /// (with --seal-key: a seal missing too), 2 torn tail that `repair` can cut,
    /// 3 records after the last seal (with --seal-key) or the anchor not reached
    /// (truncated or rolled back) or pruned.
    ///
    /// With --json the report is "ok" when intact, else the error's "data".
    #[command(after_help = "Examples:
  prodguard audit verify
  prodguard audit verify --anchor anchor.json --seal-key verify.key
  prodguard audit verify --postgres postgresql://prodguard@db.internal/fleet")]
    Verify {
        #[command(flatten)]
        log: LogArg,
        /// An anchor from `prodguard audit head`, kept off the host.
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
        /// The verification key from `prodguard audit seal-init`: checks every seal.
        #[arg(long, value_name = "FILE")]
        seal_key: Option<PathBuf>,
        /// How often the log is sealed (default: the policy's [audit] seal_every
        /// when it sets seal_key_file): more than twice as many records after the
        /// last seal is tampering (exit 1), not an unsealed tail.
        #[arg(long, value_name = "N", requires = "seal_key", value_parser = clap::value_parser!(u64).range(1..))]
        seal_every: Option<u64>,
        /// Verify the trail in PostgreSQL (table prodguard_audit) instead of a file
        /// (the default when the policy sets [audit] sink and no --log is given).
        #[arg(long, value_name = "URL", conflicts_with_all = ["log", "seal_key"])]
        postgres: Option<String>,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Cut an incomplete final record (saved beside the log) and record the recovery;
    /// refuses (exit 1) when any complete record is damaged.
    #[command(after_help = "Examples:
  prodguard audit repair
  prodguard audit repair --log /var/log/prodguard/audit.jsonl")]
    Repair {
        #[command(flatten)]
        log: LogArg,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Print the records, one line each for people (--json: in the
    /// envelope; --jsonl: the lines exactly as stored).
    #[command(after_help = "Examples:
  prodguard audit show | tail -20
  prodguard audit show --json | jq '.ok.records[] | select(.kind == \"intent\")'
  prodguard audit show --jsonl > copy.jsonl")]
    Show {
        #[command(flatten)]
        log: LogArg,
        /// Answer with one JSON document on stdout, {"v":1,"ok":{"log":…,
        /// "records":[…]}} (each record parsed; a line that is not JSON is
        /// {"unreadable": "…"}), or {"v":1,"error":{"code":N,"message":"…"}}.
        #[arg(long, conflicts_with = "jsonl")]
        json: bool,
        /// Print the records exactly as stored (JSON Lines: the bytes the
        /// hash chain covers), streamed.
        #[arg(long)]
        jsonl: bool,
    },
    /// Print the head as a JSON anchor to store off the host.
    ///
    /// Without --json the output is the anchor file itself; with --json
    /// the anchor is "ok"."anchor" (`verify --anchor` reads either).
    #[command(after_help = "Examples:
  prodguard audit head > anchor.json
  prodguard audit verify --anchor anchor.json")]
    Head {
        #[command(flatten)]
        log: LogArg,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Create the seal key ([audit] seal_key_file) and print the verification
    /// key, which belongs off the host.
    #[command(after_help = "Examples:
  sudo prodguard audit seal-init > verify.key
  prodguard audit seal-init --key-file /etc/prodguard/seal.key --json | jq -r .ok.verification_key")]
    SealInit {
        /// Where the key goes (default: the policy's [audit] seal_key_file).
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Append a seal record now (the policy also seals every seal_every records).
    #[command(after_help = "Examples:
  prodguard audit seal
  prodguard audit seal --json | jq .ok.seq")]
    Seal {
        #[command(flatten)]
        log: LogArg,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Retention: drop the rotated files (PATH.1, PATH.2, …) whose records are
    /// all before SEQ, after appending a prune record that names them and anchors
    /// the rest, so `verify` still says intact. Never the live file; refuses (125)
    /// a SEQ inside a file or a file that spent an approval token not yet expired,
    /// and a log that does not verify (1 tampered, 2 torn tail).
    #[command(after_help = "Examples:
  prodguard audit prune --before 120000
  prodguard audit prune --log /var/log/prodguard/audit.jsonl --before 5000 --json")]
    Prune {
        #[command(flatten)]
        log: LogArg,
        /// Drop the files whose records all come before this seq.
        #[arg(long, value_name = "SEQ", value_parser = clap::value_parser!(u64).range(1..))]
        before: u64,
        #[arg(long, help = JSON)]
        json: bool,
    },
    /// Append a note to the chain; prints its seq once it is durable. With the
    /// policy's [audit] sink, the note goes to the PostgreSQL trail (and to --log).
    #[command(after_help = "Examples:
  prodguard audit record --message \"deploy 42\"
  prodguard audit record --message \"INC-1234 opened\" --json | jq .ok.seq")]
    Record {
        #[command(flatten)]
        log: LogArg,
        /// The note.
        #[arg(long, value_name = "TEXT")]
        message: String,
        #[arg(long, help = JSON)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct LogArg {
    /// The log (default: PRODGUARD_AUDIT_LOG, the policy's [audit] log, or the state directory's).
    #[arg(long, value_name = "PATH")]
    pub(crate) log: Option<PathBuf>,
}

/// `--json`'s help, the same on every command that takes it.
const JSON: &str = "Answer with one JSON document on stdout: {\"v\":1,\"ok\":{…}}, or \
{\"v\":1,\"error\":{\"code\":N,\"message\":\"…\"}} where N is the exit code";
