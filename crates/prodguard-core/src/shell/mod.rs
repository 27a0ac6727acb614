//! Shell command analysis: which dangerous commands a command line would
//! run, and on what.
//!
//! An AI agent's hook hands prodguard each shell command before it runs;
//! [`analyze`] reads it the way a POSIX shell (bash) would and lists every
//! command it recognises as dangerous — a database client and what its SQL
//! does, a migration tool resetting a database, `terraform destroy`,
//! `kubectl delete`, `rm -r`, a forced `git push` — with the normalised
//! targets each acts on. The policy then decides whether to ask, deny or
//! let it be. Nothing is run, read or looked up: the working directory and
//! the environment come in as a [`Context`].
//!
//! ```
//! use std::collections::BTreeMap;
//! use prodguard_core::shell::{analyze, Context, SqlSource};
//!
//! let mut env = BTreeMap::new();
//! env.insert("PGHOST".to_owned(), "prod-db".to_owned());
//! let context = Context::new(Some("/home/dev/app"), &env);
//! let analysis = analyze(
//!     r#"cd /srv && bash -c "psql -d orders -c 'DELETE FROM orders'" && rm -rf target"#,
//!     &context,
//! );
//! assert_eq!(analysis.problem, None);
//! assert_eq!(analysis.commands.len(), 1);
//! let psql = &analysis.commands[0];
//! assert_eq!(psql.kind, "db.delete.all");
//! assert_eq!(psql.targets, ["postgresql://prod-db/orders"]);
//! assert!(matches!(psql.sql, Some(SqlSource::Inline { .. })));
//! ```
//!
//! # How a command line is read
//!
//! Three stages, each one pass over its input, none with backtracking:
//! a tokenizer (quotes, escapes, `$'…'`, expansions, comments, operators,
//! redirections and heredoc bodies), a parser (simple commands with their
//! assignments, words, redirections, pipes and nested substitutions, in
//! order of appearance; compound commands are flattened, since a command in
//! a branch or loop may run), and a recogniser (one simple command → what
//! it does). Command substitutions (`$(…)`, backquotes, `<(…)`), `sh -c`,
//! `eval`, a shell's heredoc or piped script are analysed as commands too,
//! at most [`MAX_DEPTH`] levels deep.
//!
//! Before the program is recognised, `VAR=value` assignments (which are
//! that command's environment) and the wrappers `env`, `sudo`, `doas`,
//! `nohup`, `time`, `nice`, `command`, `exec`, `xargs`, `timeout`,
//! `stdbuf`, `ionice`, `setsid`, `bundle exec`, `npx`, `bunx`, `pnpm`,
//! `yarn`, `npm exec`, `uv run`, `poetry run`, `pipenv run`, `cargo sqlx`
//! `python -m`, `busybox` and `watch` are taken off, and so is `eval` of
//! plain words (`eval` of anything else, `su -c` and `watch`'s command are
//! analysed as a nested script). A program word whose expansions are known
//! (`r=rm; $r`, `$NOT_SET rm`, `$(which psql)`), or an unquoted `$VAR`
//! whose known value has blanks (`rm${IFS}-rf${IFS}/srv`), is split into
//! fields as bash splits it and analysed again; a program word that cannot
//! be told (`$(printf rm)`, `"$@"`, a variable set to an unknown value) is
//! a `shell.unknown` command with no target, for the policy to decide.
//!
//! `find … -delete` and `find … -exec rm …` remove their roots
//! (`fs.remove.recursive`, with `rm -r`'s exemptions); another `-exec`
//! command is analysed as a command, `{}` standing for the only root.
//!
//! What runs on another machine — `ssh HOST COMMAND…` (or a
//! script on ssh's standard input), `docker`/`podman exec`, `docker
//! compose exec`, `kubectl exec … --` — is analysed in an opaque scope
//! (variables unknown, not unset; the directory unknown), and each command
//! recognised there gets the machine as one more target.
//!
//! Paths under a build or temporary directory (`target`, `node_modules`,
//! `dist`, `build`, `.cache`, `tmp`, … below the working directory, or
//! anything under `/tmp/`) are not recognised as targets of `rm -r`; a
//! path with a variable, a `~` or a glob that could leave its directory is
//! a target as written (`file:$DIR`).
//!
//! What a command line shows (`part`) never shows a password: those of
//! URLs, `password=…`, SQL's `PASSWORD '…'`, `PGPASSWORD=…` and the like,
//! and the values of `-p`/`--password`-style options, are shown as `***`.
//!
//! The line's own effects are followed in order: `cd` and `pushd` change
//! the directory relative paths resolve against, `export` and `unset`
//! change the environment later commands see, each within its subshell or
//! substitution.
//!
//! # When it gives up
//!
//! [`Analysis::problem`] says why the text could not be analysed with
//! confidence — longer than [`MAX_COMMAND_BYTES`], an unterminated quote or
//! heredoc, unbalanced parentheses, nesting deeper than [`MAX_DEPTH`], more
//! than 512 KiB of nested shell text in all (`sh -c`, `eval`) — and the
//! hook then blocks. The commands recognised before the trouble are still
//! listed; the one being read when the text broke off is not.
//!
//! # Targets
//!
//! | target | from |
//! |---|---|
//! | `postgresql://[user@]host[:port][/db]` | psql, pg_restore, dropdb, `DATABASE_URL` (no password, no query; a missing host is `localhost`) |
//! | `mysql://[user@]host[:port][/db]` | mysql, mariadb |
//! | `sqlite:/abs/path` | sqlite3, a `sqlite:` `DATABASE_URL` |
//! | `mongodb://[user@]hosts[/db]` | mongosh, mongo |
//! | `redis://host[:port][/n]` | redis-cli |
//! | `terraform:WORKSPACE` | terraform, tofu |
//! | `kube:CONTEXT[/NAMESPACE]` | kubectl, oc, helm |
//! | `s3://bucket/prefix`, `aws-rds:ID`, `gcp-sql:ID` | aws, gcloud |
//! | `file:/abs/path` | rm, shred, dd, mkfs, git clean, a redirection to a device |
//! | `git:BRANCH` | git push, git reset |
//! | `ssh:HOST`, `docker:CONTAINER`, `compose:SERVICE`, `kube:CONTEXT[/NAMESPACE]` | added to what runs there: `ssh`, `docker exec`, `docker compose exec`, `kubectl exec` |
//!
//! A target that depends on something unknown (a variable the context does
//! not hold, a substitution) is left out rather than guessed: `targets` is
//! then empty.

mod args;
mod db;
mod files;
mod git;
mod infra;
mod lex;
mod migrate;
mod parse;
mod recognize;
mod remote;
mod target;
#[cfg(test)]
mod tests;
mod wrappers;

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::sql::Dialect;
use parse::{Item, Simple};

/// The longest command [`analyze`] reads; a longer one is a
/// [`problem`](Analysis::problem).
pub const MAX_COMMAND_BYTES: usize = 256 * 1024;

/// How deep commands may nest — substitutions, `sh -c`, `eval`,
/// subshells and groups together — before the analysis gives up.
pub const MAX_DEPTH: usize = 16;

/// A working directory longer than this is treated as unknown (no system
/// allows one; refusing it keeps every path join short).
const MAX_PATH_BYTES: usize = 4096;

/// What the analyser may know beyond the text: values, not I/O.
///
/// ```
/// use std::collections::BTreeMap;
/// use prodguard_core::shell::Context;
///
/// let env = BTreeMap::from([("TF_WORKSPACE".to_owned(), "prod".to_owned())]);
/// let context = Context::new(Some("/home/dev/infra"), &env);
/// assert_eq!(context.cwd, Some("/home/dev/infra"));
/// assert!(Context::default().env.is_empty());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The directory the command runs in (absolute), when known.
    pub cwd: Option<&'a str>,
    /// The environment the command runs with (the agent's): `PGHOST`,
    /// `PGDATABASE`, `DATABASE_URL`, `KUBECONTEXT`, `TF_WORKSPACE`, …
    pub env: &'a BTreeMap<String, String>,
}

static NO_ENV: BTreeMap<String, String> = BTreeMap::new();

impl<'a> Context<'a> {
    /// A context with this working directory and environment.
    pub fn new(cwd: Option<&'a str>, env: &'a BTreeMap<String, String>) -> Context<'a> {
        Context { cwd, env }
    }
}

impl Default for Context<'_> {
    /// No working directory, an empty environment.
    fn default() -> Self {
        Context {
            cwd: None,
            env: &NO_ENV,
        }
    }
}

/// What [`analyze`] found.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Analysis {
    /// Every recognised dangerous command, in order of appearance (nested
    /// ones included, after the command they are nested in).
    pub commands: Vec<Recognized>,
    /// Set when the text cannot be analysed with confidence: over
    /// [`MAX_COMMAND_BYTES`], unbalanced quotes or parentheses, an
    /// unterminated heredoc, nesting deeper than [`MAX_DEPTH`]. The hook
    /// then blocks (fails closed).
    pub problem: Option<String>,
}

/// One recognised command.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recognized {
    /// Dotted operation kind, the policy's naming (`db.drop.table`,
    /// `infra.destroy`, `fs.remove.recursive`, …).
    pub kind: String,
    /// The program as written (`psql`, `/usr/bin/psql`, `terraform`).
    pub program: String,
    /// The simple command's text as written (for messages), trimmed; at
    /// most 200 characters (cut with `…`).
    pub part: String,
    /// The normalised targets it acts on; empty when none can be told.
    pub targets: Vec<String>,
    /// For database clients: where its SQL is, and which dialect.
    pub sql: Option<SqlSource>,
}

/// Where a database client's SQL is.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum SqlSource {
    /// SQL seen in the command (`-c`, `-e`, `--command`, a heredoc, a
    /// here-string, `echo … |`): already classified;
    /// [`Recognized::kind`] is its script's operation.
    Inline {
        /// The dialect it was classified in.
        dialect: Dialect,
        /// [`Script::fingerprint`](crate::sql::Script::fingerprint) of it.
        fingerprint: String,
    },
    /// SQL read from a file (`-f FILE`, `< FILE`, `cat FILE |`): the
    /// runtime reads it (bounded) and classifies it with `dialect`; until
    /// then [`Recognized::kind`] is `db.unknown`.
    File {
        /// The dialect to classify it in.
        dialect: Dialect,
        /// The file, absolute when the working directory is known.
        path: String,
    },
    /// SQL it cannot see (standard input from an unknown program, an
    /// interactive client): [`Recognized::kind`] is `db.unknown`.
    Unseen {
        /// The client's dialect.
        dialect: Dialect,
    },
}

/// Analyses `command` (a shell command line, as an agent would run it with
/// `bash -c`) in `context`.
///
/// Linear in the length of `command`; never fails and never panics: what
/// it cannot read with confidence is a [`problem`](Analysis::problem).
///
/// ```
/// use prodguard_core::shell::{analyze, Context};
///
/// let env = Default::default();
/// let context = Context::new(Some("/home/dev/app"), &env);
///
/// let analysis = analyze("rm -rf target/ && rm -rf /srv/app", &context);
/// let found: Vec<(&str, &[String])> = analysis
///     .commands
///     .iter()
///     .map(|c| (c.kind.as_str(), c.targets.as_slice()))
///     .collect();
/// assert_eq!(found, [("fs.remove.recursive", &["file:/srv/app".to_owned()][..])]);
///
/// assert!(analyze("grep 'DROP TABLE' schema.sql", &context).commands.is_empty());
/// assert!(analyze("echo 'unbalanced", &context).problem.is_some());
/// ```
pub fn analyze(command: &str, context: &Context<'_>) -> Analysis {
    if command.len() > MAX_COMMAND_BYTES {
        return Analysis {
            commands: Vec::new(),
            problem: Some(format!(
                "the command is {} bytes long, over the {} KiB prodguard analyses",
                command.len(),
                MAX_COMMAND_BYTES / 1024
            )),
        };
    }
    let cwd = context
        .cwd
        .filter(|cwd| cwd.starts_with('/') && cwd.len() <= MAX_PATH_BYTES)
        .map(|cwd| Rc::from(target::normalize_path(cwd)));
    let mut run = Run {
        env: Env::new(context.env, cwd),
        found: Vec::new(),
        problem: None,
        budget: NESTED_BUDGET,
    };
    run.text(command, 0);
    Analysis {
        commands: run.found,
        problem: run.problem,
    }
}

/// A variable's value as far as the analysis knows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    Unset,
    /// Set, to something the command line does not show (`$(…)`, an unknown
    /// variable).
    Unknown,
    Known(String),
}

/// A variable set by the command line.
#[derive(Debug)]
struct Entry {
    val: Val,
    exported: bool,
    /// Its position in [`Env::log`]: an `env -i` scope hides older ones.
    seq: usize,
}

/// One scope (the line, a subshell, a substitution, a nested shell).
#[derive(Debug)]
struct Scope {
    /// [`Env::log`]'s length when it began: what to undo at its end.
    mark: usize,
    /// Entries older than this are invisible (`env -i`); 0 sees all and
    /// the context's environment.
    barrier: usize,
    cwd: Option<Rc<str>>,
    /// Another host's or container's environment (`ssh`, `docker exec`):
    /// what the line does not set is unknown, not unset.
    opaque: bool,
}

/// The environment and working directory along the command line, scope by
/// scope. Setting, entering and leaving are amortised constant time, so a
/// line with many `export`s and substitutions stays linear.
#[derive(Debug)]
struct Env<'c> {
    base: &'c BTreeMap<String, String>,
    vars: BTreeMap<String, Vec<Entry>>,
    log: Vec<String>,
    scopes: Vec<Scope>,
}

impl<'c> Env<'c> {
    fn new(base: &'c BTreeMap<String, String>, cwd: Option<Rc<str>>) -> Env<'c> {
        Env {
            base,
            vars: BTreeMap::new(),
            log: Vec::new(),
            scopes: vec![Scope {
                mark: 0,
                barrier: 0,
                cwd,
                opaque: false,
            }],
        }
    }

    fn barrier(&self) -> usize {
        self.scopes.last().map_or(0, |s| s.barrier)
    }

    fn opaque(&self) -> bool {
        self.scopes.last().is_some_and(|s| s.opaque)
    }

    fn cwd(&self) -> Option<&str> {
        self.scopes.last().and_then(|s| s.cwd.as_deref())
    }

    fn set_cwd(&mut self, cwd: Option<String>) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.cwd = cwd
                .filter(|c| c.len() <= MAX_PATH_BYTES)
                .map(|c| Rc::from(c.as_str()));
        }
    }

    fn enter(&mut self, cleared: bool) {
        self.enter_opaque(cleared, false);
    }

    /// A new scope; `opaque`: another machine's (see [`Scope::opaque`]).
    fn enter_opaque(&mut self, cleared: bool, opaque: bool) {
        let mark = self.log.len();
        let barrier = if cleared || opaque {
            mark.max(1)
        } else {
            self.barrier()
        };
        let cwd = self.scopes.last().and_then(|s| s.cwd.clone());
        let opaque = opaque || self.opaque();
        self.scopes.push(Scope {
            mark,
            barrier,
            cwd,
            opaque,
        });
    }

    fn leave(&mut self) {
        // The outermost scope is never left (the parser balances them).
        if self.scopes.len() <= 1 {
            return;
        }
        let mark = self.scopes.pop().map_or(0, |s| s.mark);
        while self.log.len() > mark {
            let Some(name) = self.log.pop() else { break };
            if let Some(stack) = self.vars.get_mut(&name) {
                stack.pop();
                if stack.is_empty() {
                    self.vars.remove(&name);
                }
            }
        }
    }

    fn set(&mut self, name: &str, val: Val, exported: bool) {
        let seq = self.log.len() + 1;
        self.log.push(name.to_owned());
        self.vars
            .entry(name.to_owned())
            .or_default()
            .push(Entry { val, exported, seq });
    }

    fn export(&mut self, name: &str) {
        let val = self.shell_var(name);
        self.set(name, val, true);
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.vars
            .get(name)
            .and_then(|stack| stack.last())
            .filter(|e| e.seq >= self.barrier())
    }

    /// What a child process sees.
    fn get(&self, name: &str) -> Val {
        let in_base = self.barrier() == 0 && self.base.contains_key(name);
        match self.entry(name) {
            Some(e) if e.exported || in_base => e.val.clone(),
            Some(_) => Val::Unset,
            None if self.opaque() => Val::Unknown,
            None if in_base => self
                .base
                .get(name)
                .map_or(Val::Unset, |v| Val::Known(v.clone())),
            None => Val::Unset,
        }
    }

    /// What the shell itself sees (`$NAME` on the line).
    fn shell_var(&self, name: &str) -> Val {
        match self.entry(name) {
            Some(e) => e.val.clone(),
            // bash sets IFS itself, whatever the environment says.
            None if name == "IFS" => Val::Known(" \t\n".to_owned()),
            None if self.opaque() => Val::Unknown,
            None if self.barrier() == 0 => self
                .base
                .get(name)
                .map_or(Val::Unset, |v| Val::Known(v.clone())),
            None => Val::Unset,
        }
    }
}

/// A command's own assignments (`A=1 cmd`, `env A=1 cmd`): the last one
/// of a name wins.
type Assigns = BTreeMap<String, Val>;

/// One command's view of the environment: its own assignments (and
/// `env`'s), then the line's.
pub(super) struct View<'e> {
    env: &'e Env<'e>,
    assigns: &'e Assigns,
    cleared: bool,
    /// Run on another machine (`docker exec`): what is not set here is
    /// unknown.
    opaque: bool,
}

impl View<'_> {
    /// What the program sees for `name`.
    fn get(&self, name: &str) -> Val {
        if let Some(val) = self.assigns.get(name) {
            return val.clone();
        }
        if self.opaque {
            return Val::Unknown;
        }
        if self.cleared {
            return Val::Unset;
        }
        self.env.get(name)
    }

    /// [`word_lookup`](Self::word_lookup), with a variable known to be
    /// unset expanding to nothing.
    fn split_lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name: &str| match self.env.shell_var(name) {
            Val::Known(v) => Some(v),
            Val::Unset => Some(String::new()),
            Val::Unknown => None,
        }
    }

    /// How the shell expands `$NAME` in the command's words: its own
    /// assignments do not count (`A=1 echo $A` prints the old value).
    fn word_lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name: &str| match self.env.shell_var(name) {
            Val::Known(v) => Some(v),
            _ => None,
        }
    }
}

/// How many bytes of nested shell text (`sh -c`, `eval`, a script on a
/// shell's standard input) one analysis reads in all: with [`MAX_DEPTH`]
/// levels, `eval eval … eval` could otherwise make it read the line
/// sixteen times.
const NESTED_BUDGET: usize = 2 * MAX_COMMAND_BYTES;

/// One analysis in progress.
struct Run<'c> {
    env: Env<'c>,
    found: Vec<Recognized>,
    problem: Option<String>,
    /// What is left of [`NESTED_BUDGET`].
    budget: usize,
}

/// A text for a nested shell to analyse.
#[derive(Debug)]
pub(super) struct NestedText {
    pub(super) text: String,
    /// Whether it runs in a child process (`sh -c`) rather than in the
    /// current shell (`eval`).
    pub(super) child: bool,
}

impl Run<'_> {
    fn fail(&mut self, why: String) {
        if self.problem.is_none() {
            self.problem = Some(why);
        }
    }

    /// Analyses `text`, `depth` levels deep.
    fn text(&mut self, text: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.fail(format!("commands nested deeper than {MAX_DEPTH} levels"));
            return;
        }
        if depth > 0 {
            let Some(left) = self.budget.checked_sub(text.len()) else {
                self.fail(format!(
                    "more than {} KiB of nested shell text",
                    NESTED_BUDGET / 1024
                ));
                return;
            };
            self.budget = left;
        }
        let text: Rc<str> = Rc::from(text);
        let lexed = lex::lex(&text, depth);
        if let Some(why) = lexed.error.clone() {
            self.fail(why);
        }
        let (items, problem) = parse::parse(lexed, &text, depth, wrappers::is_recognised);
        if let Some(why) = problem {
            self.fail(why);
        }
        for item in &items {
            match item {
                Item::Enter => self.env.enter(false),
                Item::Leave => self.env.leave(),
                Item::Command(simple) => self.command(simple, &items),
            }
        }
    }

    fn command(&mut self, simple: &Simple, items: &[Item]) {
        // The command's own assignments, expanded left to right.
        if simple
            .words
            .first()
            .and_then(|w| w.literal())
            .is_some_and(|program| {
                !wrappers::is_recognised(program) && !simple.redirs.iter().any(|r| r.op.writes())
            })
        {
            // Nothing to recognise, no state to change: the common case.
            return;
        }
        let mut assigns = Assigns::new();
        for assign in &simple.assigns {
            let val = {
                let lookup = |name: &str| {
                    assigns
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| self.env.shell_var(name))
                };
                let lookup = |name: &str| match lookup(name) {
                    Val::Known(v) => Some(v),
                    _ => None,
                };
                assign
                    .value
                    .expand(&lookup)
                    .map_or(Val::Unknown, Val::Known)
            };
            assigns.insert(assign.name.clone(), val);
        }
        if simple.words.is_empty() {
            // Bare assignments set shell variables (exported ones stay so).
            for (name, val) in assigns {
                let exported = self.env.entry(&name).is_some_and(|e| e.exported);
                self.env.set(&name, val, exported);
            }
            return;
        }
        let effects = {
            let invocation = wrappers::invocation(&simple.words, &self.env, &mut assigns);
            let view = View {
                env: &self.env,
                assigns: &assigns,
                cleared: invocation.cleared,
                opaque: invocation.remote.is_some(),
            };
            recognize::recognize(simple, items, &invocation, &view, self.env.cwd())
        };
        let before = self.found.len();
        self.found.extend(effects.found);
        match effects.state {
            recognize::StateChange::None => {}
            recognize::StateChange::Cwd(cwd) => self.env.set_cwd(cwd),
            recognize::StateChange::Set(sets) => {
                for (name, val, exported) in sets {
                    match val {
                        Some(val) => self.env.set(&name, val, exported),
                        None => self.env.export(&name),
                    }
                }
            }
        }
        if let Some(nested) = effects.nested {
            if nested.child {
                self.env
                    .enter_opaque(effects.cleared, effects.remote.is_some());
                for (name, val) in assigns {
                    self.env.set(&name, val, true);
                }
                if let Some(cwd) = effects.chdir {
                    self.env.set_cwd(cwd);
                }
                self.text(&nested.text, simple.depth + 1);
                self.env.leave();
            } else {
                self.text(&nested.text, simple.depth + 1);
            }
        }
        // What runs on another machine acts on it too.
        if let Some(Some(tag)) = &effects.remote {
            for found in self.found.get_mut(before..).unwrap_or_default() {
                if !found.targets.contains(tag) {
                    found.targets.push(tag.clone());
                }
            }
        }
    }
}
