//! The recogniser: one simple command → what it does. Wrappers (`sudo`,
//! `env`, `xargs`, …) are taken off first, then the program is matched by
//! name; each tool's options are read the way that tool reads them.

use std::borrow::Cow;

use super::args::{self, Opts, Spec, head};
use super::lex::Word;
use super::parse::{Item, Simple};
use super::target::{self, Field};
use super::{Env, NestedText, Recognized, SqlSource, Val, View, db};

/// What wrappers say about the command they run.
#[derive(Debug, Default)]
pub(super) struct Invocation {
    /// The program's index among the words (`None`: no program).
    pub(super) program: Option<usize>,
    /// `env -i`: the context's environment is not passed on.
    pub(super) cleared: bool,
    /// `env -C DIR`: the directory it runs in (`Some(None)`: unknown).
    pub(super) chdir: Option<Option<String>>,
    /// Run by `xargs`: more operands come from standard input.
    pub(super) xargs: bool,
    /// `env -S STRING`, `npx -c STRING`: the command is this text.
    pub(super) split: Option<String>,
    /// `command -v`, `sudo -e`: the program is looked up or edited, not run.
    pub(super) not_run: bool,
}

/// The name a program is matched by: its last path component, without an
/// `@version` (`npx prisma@5`).
fn program_name(word: &str) -> &str {
    let base = match word.rfind('/') {
        Some(slash) => word.get(slash + 1..).unwrap_or_default(),
        None => word,
    };
    match base.find('@') {
        Some(at) if at > 0 => base.get(..at).unwrap_or(base),
        _ => base,
    }
}

/// Whether a word reads the same when read again by `eval`: unquoted
/// literal text without a character the shell treats specially.
fn reads_the_same(word: &Word) -> bool {
    word.plain()
        .is_some_and(|t| !t.contains(|c: char| "\\'\"$`;&|<>()#{}~*?[\n\t ".contains(c)))
}

/// Whether `eval WORDS` runs exactly `WORDS` (given that every word from
/// `first_rereadable` on reads the same): the first is a program, not a
/// keyword or an assignment.
fn plain_eval(words: &[Word], at: usize, first_rereadable: usize) -> bool {
    let Some(first) = words.get(at) else {
        return false;
    };
    let keyword = matches!(
        first.plain(),
        Some(
            "!" | "{"
                | "}"
                | "if"
                | "then"
                | "else"
                | "elif"
                | "fi"
                | "for"
                | "while"
                | "until"
                | "do"
                | "done"
                | "case"
                | "esac"
                | "select"
                | "function"
                | "[["
                | "time"
        )
    );
    at >= first_rereadable && !keyword && first.assignment.is_none()
}

/// The programs [`recognize`] and [`invocation`] know (besides `mkfs*`):
/// wrappers, shells, the builtins that change the line's state, and the
/// tools recognised. Sorted, for a binary search.
const KNOWN_PROGRAMS: [&str; 81] = [
    "alembic",
    "artisan",
    "ash",
    "aws",
    "bash",
    "blkdiscard",
    "builtin",
    "bun",
    "bundle",
    "bunx",
    "cargo",
    "cd",
    "command",
    "dash",
    "dd",
    "declare",
    "diesel",
    "doas",
    "dropdb",
    "env",
    "eval",
    "exec",
    "export",
    "flyway",
    "gcloud",
    "git",
    "helm",
    "ionice",
    "ksh",
    "kubectl",
    "local",
    "mariadb",
    "mke2fs",
    "mksh",
    "mkswap",
    "mongo",
    "mongosh",
    "mysql",
    "nice",
    "nohup",
    "npm",
    "npx",
    "oc",
    "pdm",
    "pg_restore",
    "php",
    "pipenv",
    "pnpm",
    "pnpx",
    "poetry",
    "popd",
    "prisma",
    "psql",
    "pushd",
    "python",
    "python3",
    "rails",
    "rake",
    "readonly",
    "redis-cli",
    "rm",
    "sail",
    "setsid",
    "sh",
    "shred",
    "sqlite",
    "sqlite3",
    "sqlx",
    "stdbuf",
    "sudo",
    "terraform",
    "time",
    "timeout",
    "tofu",
    "typeset",
    "unset",
    "uv",
    "wipefs",
    "xargs",
    "yarn",
    "zsh",
];

/// Which bytes a name in [`KNOWN_PROGRAMS`] (or `mkfs*`) starts with.
const KNOWN_FIRST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < KNOWN_PROGRAMS.len() {
        table[KNOWN_PROGRAMS[i].as_bytes()[0] as usize] = true;
        i += 1;
    }
    table[b'm' as usize] = true;
    table
};

/// Whether anything is recognised, or changes the line's state, when
/// `program` (literal) runs.
pub(super) fn is_recognised(program: &str) -> bool {
    let name = program_name(program);
    // A cheap test first: most programs are none of these.
    let (Some(&first), 2..=10) = (name.as_bytes().first(), name.len()) else {
        return false;
    };
    if !KNOWN_FIRST_BYTES[usize::from(first)] {
        return false;
    }
    name.starts_with("mkfs") || KNOWN_PROGRAMS.binary_search(&name).is_ok()
}

/// The literal start of `words[at]` (empty past the end).
fn arg(words: &[Word], at: usize) -> &str {
    words.get(at).map(head).unwrap_or_default()
}

/// Takes the wrappers off `words`: the program's index, and the
/// assignments (`env A=1`, `sudo A=1`) added to `assigns`.
pub(super) fn invocation(
    words: &[Word],
    env: &Env<'_>,
    assigns: &mut super::Assigns,
) -> Invocation {
    let lookup = |name: &str| match env.shell_var(name) {
        Val::Known(v) => Some(v),
        _ => None,
    };
    let mut inv = Invocation::default();
    let assign = |w: &Word, assigns: &mut super::Assigns| -> bool {
        let Some(len) = w.assignment else {
            return false;
        };
        let name = w.value();
        let name = name.get(..len).unwrap_or_default();
        let name = name.trim_end_matches('=').trim_end_matches('+').to_owned();
        let val = w
            .suffix(len)
            .and_then(|v| v.expand(&lookup))
            .map_or(Val::Unknown, Val::Known);
        assigns.insert(name, val);
        true
    };
    let text_of = |rest: &[Word]| {
        rest.iter()
            .map(|w| w.shell_text(&lookup))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Every word from here on reads the same when `eval` reads it again
    // (computed once, at the first `eval`: `eval eval … eval` stays linear).
    let mut first_rereadable = None;
    let mut rereadable_from = |words: &[Word]| {
        *first_rereadable.get_or_insert_with(|| {
            words.len() - words.iter().rev().take_while(|w| reads_the_same(w)).count()
        })
    };
    let mut i = 0;
    loop {
        let Some(word) = words.get(i) else {
            return inv;
        };
        let Some(name) = word.literal() else {
            inv.program = Some(i);
            return inv;
        };
        match program_name(name) {
            "env" => {
                i += 1;
                while let Some(w) = words.get(i) {
                    if assign(w, assigns) {
                        i += 1;
                        continue;
                    }
                    let t = head(w);
                    match t {
                        "-i" | "-" | "--ignore-environment" => {
                            assigns.clear();
                            inv.cleared = true;
                        }
                        "-u" | "--unset" => {
                            assigns.insert(arg(words, i + 1).to_owned(), Val::Unset);
                            i += 1;
                        }
                        "-C" | "--chdir" => {
                            inv.chdir = Some(words.get(i + 1).and_then(|w| w.expand(&lookup)));
                            i += 1;
                        }
                        "-S" | "--split-string" => {
                            inv.split = Some(text_of(words.get(i + 1..).unwrap_or_default()));
                            return inv;
                        }
                        "--" => {
                            i += 1;
                            break;
                        }
                        t if t.starts_with("--unset=") => {
                            let name = t.trim_start_matches("--unset=");
                            assigns.insert(name.to_owned(), Val::Unset);
                        }
                        t if t.starts_with("--chdir=") => {
                            inv.chdir =
                                Some(w.suffix("--chdir=".len()).and_then(|w| w.expand(&lookup)));
                        }
                        t if t.starts_with("-S") || t.starts_with("--split-string=") => {
                            let skip = if t.starts_with("-S") {
                                2
                            } else {
                                "--split-string=".len()
                            };
                            let first = w.suffix(skip).map(|w| w.shell_text(&lookup));
                            let rest = text_of(words.get(i + 1..).unwrap_or_default());
                            inv.split = Some(format!("{} {rest}", first.unwrap_or_default()));
                            return inv;
                        }
                        t if t.starts_with('-') && t.len() > 1 => {}
                        _ => break,
                    }
                    i += 1;
                }
            }
            "sudo" | "doas" => {
                i += 1;
                while let Some(w) = words.get(i) {
                    if assign(w, assigns) {
                        i += 1;
                        continue;
                    }
                    let t = head(w);
                    if t == "--" {
                        i += 1;
                        break;
                    }
                    if let Some(long) = t.strip_prefix("--") {
                        const VALUE: [&str; 11] = [
                            "user",
                            "group",
                            "close-from",
                            "chdir",
                            "host",
                            "prompt",
                            "role",
                            "type",
                            "command-timeout",
                            "other-user",
                            "chroot",
                        ];
                        if matches!(long, "edit" | "list" | "validate" | "help" | "version") {
                            inv.not_run = true;
                        }
                        i += if VALUE.contains(&long) { 2 } else { 1 };
                        continue;
                    }
                    let Some(cluster) = t.strip_prefix('-').filter(|c| !c.is_empty()) else {
                        break;
                    };
                    i += 1;
                    for (k, c) in cluster.char_indices() {
                        if "ugCDhprtTUR".contains(c) {
                            // The value is the rest of the cluster, or the next word.
                            if k + c.len_utf8() == cluster.len() {
                                i += 1;
                            }
                            break;
                        }
                        if matches!(c, 'e' | 'l' | 'v' | 'k' | 'K' | 'V') {
                            inv.not_run = true;
                        }
                    }
                }
            }
            "nohup" => {
                i += 1;
                if arg(words, i) == "--" {
                    i += 1;
                }
            }
            "time" => {
                i += 1;
                loop {
                    match arg(words, i) {
                        "-p" | "-v" | "-a" | "-q" | "--portability" | "--verbose" | "--append"
                        | "--quiet" => i += 1,
                        "-f" | "-o" | "--format" | "--output" => i += 2,
                        t if t.starts_with("--format=") || t.starts_with("--output=") => i += 1,
                        "--" => {
                            i += 1;
                            break;
                        }
                        _ => break,
                    }
                }
            }
            "nice" => {
                i += 1;
                loop {
                    match arg(words, i) {
                        "-n" | "--adjustment" => i += 2,
                        "--" => {
                            i += 1;
                            break;
                        }
                        t if t.starts_with("--adjustment=")
                            || (t.starts_with('-')
                                && t.len() > 1
                                && t.get(1..).is_some_and(|n| {
                                    n.trim_start_matches('n').parse::<i32>().is_ok()
                                })) =>
                        {
                            i += 1;
                        }
                        _ => break,
                    }
                }
            }
            "command" | "builtin" => {
                i += 1;
                loop {
                    match arg(words, i) {
                        "-p" => i += 1,
                        "-v" | "-V" => {
                            inv.not_run = true;
                            return inv;
                        }
                        "--" => {
                            i += 1;
                            break;
                        }
                        _ => break,
                    }
                }
            }
            "exec" => {
                i += 1;
                loop {
                    match arg(words, i) {
                        "-c" | "-l" | "-cl" | "-lc" => i += 1,
                        "-a" => i += 2,
                        "--" => {
                            i += 1;
                            break;
                        }
                        _ => break,
                    }
                }
            }
            "xargs" => {
                inv.xargs = true;
                i += 1;
                // Options up to the command (`-I R`, `-n N`: a value).
                while let Some(w) = words.get(i) {
                    let t = head(w);
                    if t == "--" {
                        i += 1;
                        break;
                    }
                    if !t.starts_with('-') || t.len() < 2 {
                        break;
                    }
                    let takes_value = t.len() == 2 && "adEILnPs".contains(&t[1..]);
                    let long_value = matches!(
                        t,
                        "--arg-file"
                            | "--delimiter"
                            | "--max-args"
                            | "--max-lines"
                            | "--max-procs"
                            | "--max-chars"
                            | "--process-slot-var"
                    );
                    i += if takes_value || long_value { 2 } else { 1 };
                }
            }
            "timeout" => {
                i += 1;
                loop {
                    match arg(words, i) {
                        "-s" | "-k" | "--signal" | "--kill-after" => i += 2,
                        "--" => {
                            i += 1;
                            break;
                        }
                        t if t.starts_with('-') && t.len() > 1 => i += 1,
                        _ => break,
                    }
                }
                // The duration.
                i += 1;
            }
            "stdbuf" => {
                i += 1;
                loop {
                    match arg(words, i) {
                        "-i" | "-o" | "-e" => i += 2,
                        "--" => {
                            i += 1;
                            break;
                        }
                        t if t.starts_with('-') && t.len() > 1 => i += 1,
                        _ => break,
                    }
                }
            }
            "ionice" => {
                i += 1;
                loop {
                    match arg(words, i) {
                        "-c" | "-n" | "--class" | "--classdata" => i += 2,
                        "-p" | "-P" | "-u" | "--pid" | "--pgid" | "--uid" => {
                            inv.not_run = true;
                            return inv;
                        }
                        "--" => {
                            i += 1;
                            break;
                        }
                        t if t.starts_with('-') && t.len() > 1 => i += 1,
                        _ => break,
                    }
                }
            }
            "setsid" => {
                i += 1;
                while arg(words, i).starts_with('-') && arg(words, i).len() > 1 {
                    i += 1;
                }
            }
            "bundle" if arg(words, i + 1) == "exec" => i += 2,
            // `eval` of plain words reads them again as the same words: a
            // wrapper (so a chain of them costs nothing).
            "eval" if plain_eval(words, i + 1, rereadable_from(words)) => i += 1,
            "npx" | "bunx" | "pnpx" => {
                i += 1;
                loop {
                    match arg(words, i) {
                        "-p" | "--package" => i += 2,
                        "-c" | "--call" => {
                            inv.split = words.get(i + 1).map(|w| w.shell_text(&lookup));
                            return inv;
                        }
                        "--" => {
                            i += 1;
                            break;
                        }
                        t if t.starts_with('-') && t.len() > 1 => i += 1,
                        _ => break,
                    }
                }
            }
            "npm" if !matches!(arg(words, i + 1), "exec" | "x") => {
                inv.program = Some(i);
                return inv;
            }
            "pnpm" | "yarn" | "npm" | "bun" => {
                let runs: &[&str] = match program_name(name) {
                    "npm" => &["exec", "x"],
                    "bun" => &["x", "run", "exec"],
                    _ => &["exec", "dlx", "run"],
                };
                i += 1;
                while arg(words, i).starts_with('-') && arg(words, i).len() > 1 {
                    i += if matches!(arg(words, i), "--filter" | "-F" | "-C" | "--dir" | "--cwd") {
                        2
                    } else {
                        1
                    };
                }
                if runs.contains(&arg(words, i)) {
                    i += 1;
                }
                while arg(words, i).starts_with('-') && arg(words, i).len() > 1 {
                    i += if matches!(arg(words, i), "-p" | "--package") {
                        2
                    } else {
                        1
                    };
                }
                if arg(words, i) == "--" {
                    i += 1;
                }
            }
            "uv" | "poetry" | "pipenv" | "pdm" if arg(words, i + 1) == "run" => {
                i += 2;
                while arg(words, i).starts_with('-') && arg(words, i).len() > 1 {
                    i += 1;
                }
            }
            "cargo" if arg(words, i + 1) == "sqlx" => i += 1,
            "python" | "python3" if arg(words, i + 1) == "-m" => i += 2,
            _ => {
                inv.program = Some(i);
                return inv;
            }
        }
    }
}

/// How the command line changes the shell's own state.
#[derive(Debug, Default)]
pub(super) enum StateChange {
    #[default]
    None,
    /// `cd`, `pushd`, `popd` (`None`: a directory that cannot be told).
    Cwd(Option<String>),
    /// `export`, `unset`, `declare`, …: each name with its value (`None`:
    /// keep the value, export it) and whether it is exported.
    Set(Vec<(String, Option<Val>, bool)>),
}

/// What one command does.
#[derive(Debug, Default)]
pub(super) struct Effects {
    pub(super) found: Vec<Recognized>,
    pub(super) state: StateChange,
    pub(super) nested: Option<NestedText>,
    /// For the nested text: `env -i`.
    pub(super) cleared: bool,
    /// For the nested text: `env -C DIR`, resolved.
    pub(super) chdir: Option<Option<String>>,
}

/// A command with everything its recogniser needs.
pub(super) struct Cmd<'a> {
    pub(super) simple: &'a Simple,
    pub(super) items: &'a [Item],
    /// The program and its arguments.
    pub(super) words: &'a [Word],
    pub(super) view: &'a View<'a>,
    cwd: Option<Cow<'a, str>>,
    pub(super) xargs: bool,
}

impl<'a> Cmd<'a> {
    pub(super) fn args(&self) -> &'a [Word] {
        self.words.get(1..).unwrap_or_default()
    }

    pub(super) fn cwd(&self) -> Option<&str> {
        self.cwd.as_deref()
    }

    pub(super) fn opts(&self, spec: &Spec) -> Opts {
        args::parse(self.args(), spec)
    }

    /// The word's value once the shell expands it, when that can be told.
    pub(super) fn value(&self, word: &Word) -> Option<String> {
        word.expand(&self.view.word_lookup())
    }

    /// The word's value as a connection field.
    pub(super) fn field(&self, word: &Word) -> Field {
        self.value(word).map_or(Field::Unknown, Field::Known)
    }

    /// The word as text to classify: known variables replaced, other
    /// expansions as written.
    pub(super) fn render(&self, word: &Word) -> String {
        word.render(&self.view.word_lookup())
    }

    /// The word as a nested shell receives it.
    pub(super) fn shell_text(&self, word: &Word) -> String {
        word.shell_text(&self.view.word_lookup())
    }

    /// What the program sees in its environment for `name`.
    pub(super) fn env(&self, name: &str) -> Field {
        match self.view.get(name) {
            Val::Unset => Field::Unset,
            Val::Unknown => Field::Unknown,
            Val::Known(v) => Field::Known(v),
        }
    }

    pub(super) fn resolve(&self, path: &str) -> String {
        target::resolve(path, self.cwd())
    }

    pub(super) fn found(
        &self,
        kind: &str,
        targets: Vec<String>,
        sql: Option<SqlSource>,
    ) -> Recognized {
        Recognized {
            kind: kind.to_owned(),
            program: self.words.first().map(Word::value).unwrap_or_default(),
            part: self.simple.part(&self.secrets()),
            targets,
            sql,
        }
    }
}

impl Cmd<'_> {
    /// The spans of the command's words that hold a password or another
    /// secret, each with what to show instead: `part` never shows one.
    fn secrets(&self) -> Vec<(std::ops::Range<usize>, String)> {
        let text = &self.simple.text;
        let raw = |span: &std::ops::Range<usize>| text.get(span.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for assign in &self.simple.assigns {
            let shown = if secret_name(&assign.name) {
                Some(format!("{}=***", assign.name))
            } else {
                scrub(raw(&assign.span))
            };
            out.extend(shown.map(|s| (assign.span.clone(), s)));
        }
        let program = program_name(
            self.words
                .first()
                .and_then(Word::literal)
                .unwrap_or_default(),
        );
        let mysql = matches!(program, "mysql" | "mariadb");
        let next_secret = |t: &str| match program {
            "redis-cli" => t == "-a",
            "mongosh" | "mongo" => t == "-p",
            _ => false,
        };
        let mut secret_next = false;
        for w in &self.simple.words {
            let r = raw(&w.span);
            let t = head(w);
            // Most words hold no secret: nothing to look at without `=`,
            // `@`, or an option that takes one.
            if !secret_next && !t.starts_with('-') && !r.contains(['=', '@']) {
                continue;
            }
            let shown = if std::mem::take(&mut secret_next) {
                Some("***".to_owned())
            } else if let Some(len) = w.assignment
                && secret_name(
                    t.get(..len)
                        .unwrap_or_default()
                        .trim_end_matches(['=', '+']),
                )
            {
                r.split_once('=').map(|(name, _)| format!("{name}=***"))
            } else if let Some(long) = t.strip_prefix("--")
                && secret_option(long.split('=').next().unwrap_or_default())
            {
                match r.split_once('=') {
                    Some((name, _)) => Some(format!("{name}=***")),
                    None => {
                        secret_next = !mysql;
                        None
                    }
                }
            } else if mysql && t.starts_with("-p") && t.len() > 2 {
                Some("-p***".to_owned())
            } else if next_secret(t) {
                secret_next = true;
                None
            } else if r.contains(['=', '@']) {
                scrub(r)
            } else {
                None
            };
            out.extend(shown.map(|s| (w.span.clone(), s)));
        }
        out.sort_by_key(|(span, _)| span.start);
        out
    }
}

/// Whether a variable's name says it holds a secret.
fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL"]
        .iter()
        .any(|k| upper.contains(k))
        || ["_PWD", "_AUTH", "_KEY"].iter().any(|k| upper.ends_with(k))
}

/// Whether a long option's name says its value is a secret.
fn secret_option(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "pass"
        || ["password", "passwd", "secret", "token"]
            .iter()
            .any(|k| lower.contains(k))
}

/// `raw` with the passwords of URLs (`scheme://user:PASSWORD@host`) and
/// of `password=…` pairs shown as `***`; `None` when it holds none. One
/// pass: each match is looked for from where the last one ended.
fn scrub(raw: &str) -> Option<String> {
    const PAIR: &str = "password=";
    let lower = raw.to_ascii_lowercase();
    let ends_value = |c: char| c.is_whitespace() || "/'\"&".contains(c);
    let mut out = String::with_capacity(raw.len());
    let mut at = 0;
    let mut changed = false;
    // Where the next URL and the next `password=` start: a position found
    // stays valid until the scan passes it, and none found stays none.
    let find =
        |needle: &str, at: usize| lower.get(at..).and_then(|r| r.find(needle)).map(|i| i + at);
    let (mut next_url, mut next_pair) = (find("://", 0), find(PAIR, 0));
    loop {
        if next_url.is_some_and(|u| u < at) {
            next_url = find("://", at);
        }
        if next_pair.is_some_and(|p| p < at) {
            next_pair = find(PAIR, at);
        }
        let (start, url) = match (next_url, next_pair) {
            (Some(u), Some(p)) if u <= p => (u, true),
            (_, Some(p)) => (p, false),
            (Some(u), None) => (u, true),
            (None, None) => break,
        };
        let from = start + if url { 3 } else { PAIR.len() };
        out.push_str(raw.get(at..from).unwrap_or_default());
        let rest = raw.get(from..).unwrap_or_default();
        if url {
            // Up to the end of the word: a password may hold `/` or `@`.
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '\'' || c == '"')
                .unwrap_or(rest.len());
            let authority = rest.get(..end).unwrap_or_default();
            match (authority.rfind('@'), authority.find(':')) {
                (Some(user_end), Some(colon)) if colon < user_end => {
                    out.push_str(authority.get(..colon).unwrap_or_default());
                    out.push_str(":***");
                    changed = true;
                    // The host, path and query are scanned on.
                    at = from + user_end;
                }
                _ => at = from,
            }
        } else {
            let end = rest.find(ends_value).unwrap_or(rest.len());
            if end > 0 {
                out.push_str("***");
                changed = true;
            }
            at = from + end;
        }
    }
    out.push_str(raw.get(at..).unwrap_or_default());
    changed.then_some(out)
}

/// Recognises `simple` (whose program `inv` found), in `view`, run in
/// `cwd`.
pub(super) fn recognize(
    simple: &Simple,
    items: &[Item],
    inv: &Invocation,
    view: &View<'_>,
    cwd: Option<&str>,
) -> Effects {
    let mut effects = Effects {
        cleared: inv.cleared,
        ..Effects::default()
    };
    let cwd: Option<Cow<'_, str>> = match &inv.chdir {
        None => cwd.map(Cow::Borrowed),
        Some(Some(dir)) if dir.starts_with('/') || cwd.is_some() => {
            Some(Cow::Owned(target::resolve(dir, cwd)))
        }
        Some(_) => None,
    };
    if inv.chdir.is_some() {
        effects.chdir = Some(cwd.as_deref().map(str::to_owned));
    }
    if let Some(text) = &inv.split {
        effects.nested = Some(NestedText {
            text: text.clone(),
            child: true,
        });
    }
    let Some(index) = inv.program else {
        return effects;
    };
    let words = simple.words.get(index..).unwrap_or_default();
    let Some(program) = words.first() else {
        return effects;
    };
    let cmd = Cmd {
        simple,
        items,
        words,
        view,
        cwd,
        xargs: inv.xargs,
    };
    let devices = device_writes(&cmd);
    if inv.not_run {
        effects.found = devices;
        return effects;
    }
    let Some(literal) = program.literal() else {
        effects.found = devices;
        return effects;
    };
    let name = program_name(literal);
    let found = match name {
        "sh" | "bash" | "zsh" | "dash" | "ksh" | "ash" | "mksh" => {
            effects.nested = shell(&cmd);
            None
        }
        "eval" => {
            let text: Vec<String> = cmd.args().iter().map(|w| cmd.shell_text(w)).collect();
            effects.nested = Some(NestedText {
                text: text.join(" "),
                child: false,
            });
            None
        }
        "cd" | "pushd" | "popd" if index == 0 => {
            effects.state = StateChange::Cwd(cd(&cmd, name));
            None
        }
        "export" | "declare" | "typeset" | "local" | "readonly" | "unset" if index == 0 => {
            effects.state = StateChange::Set(set_vars(&cmd, name));
            None
        }
        "psql" => db::psql(&cmd),
        "mysql" | "mariadb" => db::mysql(&cmd),
        "sqlite3" | "sqlite" => db::sqlite(&cmd),
        "mongosh" | "mongo" => db::mongo(&cmd),
        "redis-cli" => db::redis(&cmd),
        "pg_restore" => db::pg_restore(&cmd),
        "dropdb" => db::dropdb(&cmd),
        "rails" | "rake" => rails(&cmd),
        "php" | "artisan" | "sail" => artisan(&cmd, name),
        "prisma" => prisma(&cmd),
        "alembic" => alembic(&cmd),
        "flyway" => flyway(&cmd),
        "sqlx" | "diesel" => sqlx_diesel(&cmd, name),
        "terraform" | "tofu" => terraform(&cmd),
        "kubectl" | "oc" => kubectl(&cmd),
        "helm" => helm(&cmd),
        "aws" => aws(&cmd),
        "gcloud" => gcloud(&cmd),
        "rm" => rm(&cmd),
        "shred" => shred(&cmd),
        "dd" => dd(&cmd),
        "git" => git(&cmd),
        name if name.starts_with("mkfs")
            || matches!(name, "mke2fs" | "mkswap" | "wipefs" | "blkdiscard") =>
        {
            mkfs(&cmd, name)
        }
        _ => None,
    };
    effects.found.extend(found);
    effects.found.extend(devices);
    effects
}

/// `sh -c STRING`, or a shell reading its script from standard input.
fn shell(cmd: &Cmd<'_>) -> Option<NestedText> {
    let mut command = false;
    let mut words = cmd.args().iter();
    while let Some(mut w) = words.next() {
        let t = head(w);
        if (t == "--" || t == "-") && w.parts.len() <= 1 {
            // The options end; the next word is the first operand.
            match words.next() {
                Some(next) => w = next,
                None => break,
            }
        } else if let Some(long) = t.strip_prefix("--") {
            if matches!(long, "rcfile" | "init-file") {
                words.next();
            }
            continue;
        } else if let Some(cluster) = t
            .strip_prefix('-')
            .or_else(|| t.strip_prefix('+'))
            .filter(|c| !c.is_empty())
        {
            for c in cluster.chars() {
                match c {
                    'c' => command = true,
                    'o' | 'O' => {
                        words.next();
                    }
                    _ => {}
                }
            }
            continue;
        }
        // The first operand: the command string, or a script file the
        // line does not show.
        return command.then(|| NestedText {
            text: cmd.shell_text(w),
            child: true,
        });
    }
    if command {
        return None;
    }
    match db::stdin(cmd, true) {
        db::Input::Text(text) => Some(NestedText { text, child: true }),
        _ => None,
    }
}

/// The directory `cd`/`pushd`/`popd` moves to, when it can be told.
fn cd(cmd: &Cmd<'_>, name: &str) -> Option<String> {
    if name == "popd" {
        return None;
    }
    let dir = cmd
        .args()
        .iter()
        .find(|w| !(head(w).starts_with('-') && head(w).len() > 1 && w.parts.len() <= 1));
    let dir = match dir {
        None => match cmd.view.get("HOME") {
            Val::Known(home) => home,
            _ => return None,
        },
        Some(w) if w.literal() == Some("-") => return None,
        Some(w) => cmd.value(w)?,
    };
    if !dir.starts_with('/') && cmd.cwd().is_none() {
        return None;
    }
    Some(cmd.resolve(&dir))
}

/// The variables `export`, `declare`, `unset` … set.
fn set_vars(cmd: &Cmd<'_>, name: &str) -> Vec<(String, Option<Val>, bool)> {
    let mut exported = name == "export";
    let mut sets = Vec::new();
    for w in cmd.args() {
        let t = head(w);
        if t.starts_with('-') && w.assignment.is_none() {
            if name == "unset" && t.contains('f') {
                return Vec::new();
            }
            if t.contains('x') && name != "export" {
                exported = true;
            }
            continue;
        }
        if name == "unset" {
            sets.push((w.value(), Some(Val::Unset), false));
            continue;
        }
        match w.assignment {
            Some(len) => {
                let full = w.value();
                let var = full
                    .get(..len)
                    .unwrap_or_default()
                    .trim_end_matches('=')
                    .trim_end_matches('+')
                    .to_owned();
                let val = w
                    .suffix(len)
                    .and_then(|v| cmd.value(&v))
                    .map_or(Val::Unknown, Val::Known);
                sets.push((var, Some(val), exported));
            }
            None if exported => sets.push((w.value(), None, true)),
            None => {}
        }
    }
    sets
}

/// Output redirected to a device (`> /dev/sda`).
fn device_writes(cmd: &Cmd<'_>) -> Vec<Recognized> {
    let mut found = Vec::new();
    for r in &cmd.simple.redirs {
        if !r.op.writes() {
            continue;
        }
        if let Some(path) = cmd.value(&r.target)
            && let Some(device) = device(&path)
        {
            found.push(cmd.found("fs.overwrite.device", vec![device], None));
        }
    }
    found
}

/// `file:/dev/…` for a path that writes to a device, `None` for any other
/// path and for devices that store nothing (`/dev/null`, terminals, …).
fn device(path: &str) -> Option<String> {
    let path = target::normalize_path(path);
    let name = path.strip_prefix("/dev/")?;
    let harmless = matches!(
        name,
        "null"
            | "zero"
            | "full"
            | "random"
            | "urandom"
            | "stdin"
            | "stdout"
            | "stderr"
            | "console"
            | "ptmx"
            | "tty"
            | "log"
    ) || ["fd/", "pts/", "shm/", "tcp/", "udp/", "tty", "mqueue/"]
        .iter()
        .any(|p| name.starts_with(p));
    (!harmless && !name.is_empty()).then(|| format!("file:{path}"))
}

/// Targets without repeats, in order.
fn dedup(mut targets: Vec<String>) -> Vec<String> {
    if targets.len() < 2 {
        return targets;
    }
    let mut seen = std::collections::BTreeSet::new();
    let first: Vec<bool> = targets.iter().map(|t| seen.insert(t.as_str())).collect();
    drop(seen);
    let mut first = first.into_iter();
    targets.retain(|_| first.next().unwrap_or(false));
    targets
}

/// A path operand of a removal: `Some(target)`, or `None` when it is
/// disposable (build output, temporary files).
fn removal_target(cmd: &Cmd<'_>, word: &Word) -> Option<String> {
    if let Some(path) = word.literal() {
        let resolved = cmd.resolve(path);
        return (!target::is_disposable(&resolved, cmd.cwd())).then(|| format!("file:{resolved}"));
    }
    let value = word.value();
    let only_globs = word.glob
        && !word.tilde
        && word
            .parts
            .iter()
            .all(|p| matches!(p, super::lex::Part::Lit(_)));
    if only_globs {
        // A glob in the last component only cannot climb out of its
        // directory (`..` is never a match there that `rm` would take).
        let first_glob = value.find(['*', '?', '[', '{']).unwrap_or(0);
        let last_slash = value.rfind('/');
        if last_slash.is_none_or(|s| s < first_glob)
            && target::is_disposable(&cmd.resolve(&value), cmd.cwd())
        {
            return None;
        }
    }
    Some(format!("file:{value}"))
}

/// `rm -r`.
fn rm(cmd: &Cmd<'_>) -> Option<Recognized> {
    let mut recursive = false;
    let mut operands = Vec::new();
    let mut options = true;
    for w in cmd.args() {
        let t = head(w);
        if options && w.parts.len() <= 1 && t.starts_with('-') && t.len() > 1 {
            if t == "--" {
                options = false;
            } else if let Some(long) = t.strip_prefix("--") {
                recursive |= "recursive".starts_with(long);
            } else {
                recursive |= t.contains(['r', 'R']);
            }
            continue;
        }
        operands.push(w);
    }
    if !recursive {
        return None;
    }
    let targets: Vec<String> = operands
        .iter()
        .filter_map(|w| removal_target(cmd, w))
        .collect();
    if targets.is_empty() && !(operands.is_empty() && cmd.xargs) {
        return None;
    }
    Some(cmd.found("fs.remove.recursive", dedup(targets), None))
}

/// `file:` targets for each operand (resolved when literal, as written
/// otherwise).
fn file_targets(cmd: &Cmd<'_>, operands: &[Word]) -> Vec<String> {
    operands
        .iter()
        .map(|w| match w.literal() {
            Some(path) => format!("file:{}", cmd.resolve(path)),
            None => format!("file:{}", w.value()),
        })
        .collect()
}

fn shred(cmd: &Cmd<'_>) -> Option<Recognized> {
    const SHRED: Spec = Spec {
        short: "ns",
        attached_short: "",
        long: &["iterations", "size", "random-source"],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&SHRED);
    if opts.operands.is_empty() && !cmd.xargs {
        return None;
    }
    let targets = file_targets(cmd, &opts.operands);
    Some(cmd.found("fs.shred", dedup(targets), None))
}

fn dd(cmd: &Cmd<'_>) -> Option<Recognized> {
    let of = cmd
        .args()
        .iter()
        .rev()
        .find(|w| head(w).starts_with("of="))?;
    let rest = of.suffix(3)?;
    let target = match cmd.value(&rest) {
        Some(path) => device(&path)?,
        None => format!("file:{}", rest.value()),
    };
    Some(cmd.found("fs.overwrite.device", vec![target], None))
}

fn mkfs(cmd: &Cmd<'_>, name: &str) -> Option<Recognized> {
    let args = cmd.args();
    if args
        .iter()
        .any(|w| matches!(head(w), "-V" | "--version" | "-h" | "--help"))
    {
        return None;
    }
    if name == "wipefs"
        && !args.iter().any(|w| {
            let t = head(w);
            t == "--all"
                || t.starts_with("--offset")
                || (t.starts_with('-') && !t.starts_with("--") && t.contains(['a', 'o']))
        })
    {
        return None;
    }
    let operands: Vec<Word> = args
        .iter()
        .filter(|w| !head(w).starts_with('-'))
        .cloned()
        .collect();
    let devices: Vec<Word> = operands
        .iter()
        .filter(|w| head(w).starts_with("/dev/"))
        .cloned()
        .collect();
    let chosen = if devices.is_empty() {
        operands.last().cloned().into_iter().collect()
    } else {
        devices
    };
    if chosen.is_empty() {
        return None;
    }
    let targets = file_targets(cmd, &chosen);
    Some(cmd.found("fs.overwrite.device", dedup(targets), None))
}

/// `git push --force`, `git reset --hard`, `git clean -fd`.
fn git(cmd: &Cmd<'_>) -> Option<Recognized> {
    let args = cmd.args();
    let mut i = 0;
    let mut dir: Option<Option<String>> = None;
    while let Some(w) = args.get(i) {
        match head(w) {
            "-C" => {
                let next = args.get(i + 1).and_then(|w| cmd.value(w));
                dir = Some(match (dir, next) {
                    (Some(Some(base)), Some(next)) => Some(target::resolve(&next, Some(&base))),
                    (None, Some(next)) if next.starts_with('/') || cmd.cwd().is_some() => {
                        Some(cmd.resolve(&next))
                    }
                    _ => None,
                });
                i += 2;
            }
            "-c" | "--git-dir" | "--work-tree" | "--namespace" | "--config-env"
            | "--super-prefix" => i += 2,
            t if t.starts_with('-') => i += 1,
            _ => break,
        }
    }
    let sub = args.get(i)?.literal()?;
    let rest = args.get(i + 1..).unwrap_or_default();
    match sub {
        "push" => git_push(cmd, rest),
        "reset" => {
            let mut hard = false;
            let mut commit = None;
            for w in rest {
                match head(w) {
                    "--hard" => hard = true,
                    "--" => break,
                    t if t.starts_with('-') => {}
                    _ if commit.is_none() => commit = Some(w),
                    _ => {}
                }
            }
            if !hard {
                return None;
            }
            let targets = commit
                .and_then(|w| cmd.value(w))
                .map(|c| format!("git:{c}"))
                .into_iter()
                .collect();
            Some(cmd.found("git.reset.hard", targets, None))
        }
        "clean" => {
            const CLEAN: Spec = Spec {
                short: "e",
                attached_short: "",
                long: &["exclude"],
                stop_at_operand: false,
            };
            let opts = args::parse(rest, &CLEAN);
            let force = opts.has(&["f", "force"]);
            let dirs = opts.has(&["d"]);
            if !force || !dirs || opts.has(&["n", "dry-run"]) {
                return None;
            }
            let base = match &dir {
                Some(dir) => dir.clone(),
                None => cmd.cwd().map(str::to_owned),
            };
            let targets = if opts.operands.is_empty() {
                base.map(|b| format!("file:{b}")).into_iter().collect()
            } else {
                opts.operands
                    .iter()
                    .map(|w| match (cmd.value(w), &base) {
                        (Some(p), base) => {
                            format!("file:{}", target::resolve(&p, base.as_deref()))
                        }
                        (None, _) => format!("file:{}", w.value()),
                    })
                    .collect()
            };
            Some(cmd.found("fs.remove.recursive", targets, None))
        }
        _ => None,
    }
}

fn git_push(cmd: &Cmd<'_>, rest: &[Word]) -> Option<Recognized> {
    let mut force = false;
    let mut operands: Vec<&Word> = Vec::new();
    let mut words = rest.iter();
    while let Some(w) = words.next() {
        let t = head(w);
        if t == "--" {
            operands.extend(words.by_ref());
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            match long {
                "force" => force = true,
                "dry-run" => return None,
                l if l.starts_with("force-with-lease") => force = true,
                "push-option" | "repo" | "receive-pack" | "exec" => {
                    words.next();
                }
                _ => {}
            }
            continue;
        }
        if let Some(cluster) = t.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (k, c) in cluster.char_indices() {
                match c {
                    'f' => force = true,
                    'n' => return None,
                    'o' => {
                        if k + 1 == cluster.len() {
                            words.next();
                        }
                        break;
                    }
                    _ => {}
                }
            }
            continue;
        }
        operands.push(w);
    }
    let mut forced = force;
    let mut targets = Vec::new();
    for refspec in operands.iter().skip(1) {
        let Some(spec) = cmd.value(refspec) else {
            continue;
        };
        let plus = spec.starts_with('+');
        forced |= plus;
        if !(force || plus) {
            continue;
        }
        let spec = spec.trim_start_matches('+');
        let dst = spec.rsplit_once(':').map_or(spec, |(_, d)| d);
        let dst = dst.strip_prefix("refs/heads/").unwrap_or(dst);
        if !dst.is_empty() {
            targets.push(format!("git:{dst}"));
        }
    }
    forced.then(|| cmd.found("git.push.force", dedup(targets), None))
}

/// The database a migration tool works on: `DATABASE_URL` (from `extra`,
/// the command's environment, or the line's), normalised; empty when
/// unknown.
fn migration_target(cmd: &Cmd<'_>, extra: &[(String, String)], names: &[&str]) -> Vec<String> {
    for name in names {
        let value = match extra.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Field::Known(v.clone()),
            None => cmd.env(name),
        };
        match value {
            Field::Known(url) => {
                return target::database_url(&url, cmd.cwd()).into_iter().collect();
            }
            Field::Unknown => return Vec::new(),
            Field::Unset => {}
        }
    }
    Vec::new()
}

/// Rails and rake tasks.
fn rails(cmd: &Cmd<'_>) -> Option<Recognized> {
    let mut worst: Option<(u8, &str)> = None;
    let mut extra = Vec::new();
    let mut words = cmd.args().iter();
    while let Some(w) = words.next() {
        let t = head(w);
        if matches!(
            t,
            "-e" | "--environment" | "-f" | "--rakefile" | "-C" | "--directory"
        ) {
            words.next();
            continue;
        }
        if t.starts_with('-') {
            continue;
        }
        if let Some(len) = w.assignment {
            // `rake task NAME=value` sets NAME for the task.
            let full = w.value();
            let name = full.get(..len).unwrap_or_default().trim_end_matches('=');
            if let Some(value) = w.suffix(len).and_then(|v| cmd.value(&v)) {
                extra.push((name.to_owned(), value));
            }
            continue;
        }
        let Some(task) = cmd.value(w) else { continue };
        let task = task.split('[').next().unwrap_or_default();
        let is = |base: &str| {
            task == base
                || task
                    .strip_prefix(base)
                    .is_some_and(|rest| rest.starts_with(':'))
        };
        let kind = if is("db:drop") {
            Some((4, "db.drop.database"))
        } else if is("db:reset")
            || is("db:schema:load")
            || is("db:structure:load")
            || is("db:setup")
            || is("db:purge")
            || is("db:migrate:reset")
        {
            Some((3, "db.reset"))
        } else if is("db:truncate_all") || is("db:seed:replant") {
            Some((2, "db.truncate"))
        } else if is("db:rollback") || is("db:migrate:down") || is("db:migrate:redo") {
            Some((1, "db.migrate.down"))
        } else {
            None
        };
        if let Some(kind) = kind
            && worst.is_none_or(|w| kind.0 > w.0)
        {
            worst = Some(kind);
        }
    }
    let (_, kind) = worst?;
    let targets = migration_target(cmd, &extra, &["DATABASE_URL"]);
    Some(cmd.found(kind, targets, None))
}

/// The operands of a command whose options are only partly known: words
/// not starting with `-`, skipping the values of `value_options`.
fn operands<'w>(words: &'w [Word], value_options: &[&str]) -> Vec<&'w Word> {
    let mut out = Vec::new();
    let mut iter = words.iter();
    while let Some(w) = iter.next() {
        let t = head(w);
        if t == "--" && w.parts.len() <= 1 {
            out.extend(iter.by_ref());
            break;
        }
        if t.starts_with('-') && t.len() > 1 {
            if value_options.contains(&t) {
                iter.next();
            }
            continue;
        }
        out.push(w);
    }
    out
}

/// The literal values of `words`.
fn literals<'w>(words: &[&'w Word]) -> Vec<&'w str> {
    words.iter().map(|w| w.literal().unwrap_or("")).collect()
}

/// Laravel's `php artisan …` (also `./artisan`, `sail artisan`).
fn artisan(cmd: &Cmd<'_>, name: &str) -> Option<Recognized> {
    let args = cmd.args();
    let rest = match name {
        "artisan" => args,
        _ => {
            let first = args.first()?.literal()?;
            let ok = match name {
                "php" => program_name(first) == "artisan",
                _ => matches!(first, "artisan" | "art"),
            };
            if !ok {
                return None;
            }
            args.get(1..).unwrap_or_default()
        }
    };
    if rest.iter().any(|w| head(w) == "--pretend") {
        return None;
    }
    let ops = operands(rest, &[]);
    let kind = match literals(&ops).first().copied()? {
        "migrate:fresh" | "migrate:reset" | "migrate:refresh" | "db:wipe" => "db.reset",
        "migrate:rollback" => "db.migrate.down",
        _ => return None,
    };
    let targets = migration_target(cmd, &[], &["DATABASE_URL", "DB_URL"]);
    Some(cmd.found(kind, targets, None))
}

fn prisma(cmd: &Cmd<'_>) -> Option<Recognized> {
    let args = cmd.args();
    let ops = operands(args, &["--schema"]);
    let kind = match literals(&ops).as_slice() {
        ["migrate", "reset", ..] => "db.reset",
        ["db", "push", ..] if args.iter().any(|w| head(w) == "--force-reset") => "db.reset",
        _ => return None,
    };
    let targets = migration_target(cmd, &[], &["DATABASE_URL"]);
    Some(cmd.found(kind, targets, None))
}

fn alembic(cmd: &Cmd<'_>) -> Option<Recognized> {
    let args = cmd.args();
    let ops = operands(args, &["-c", "--config", "-n", "--name", "-x"]);
    if literals(&ops).first().copied()? != "downgrade" || args.iter().any(|w| head(w) == "--sql") {
        return None;
    }
    let targets = migration_target(cmd, &[], &["DATABASE_URL"]);
    Some(cmd.found("db.migrate.down", targets, None))
}

fn flyway(cmd: &Cmd<'_>) -> Option<Recognized> {
    let args = cmd.args();
    let ops = operands(args, &[]);
    if !literals(&ops).contains(&"clean") {
        return None;
    }
    let url = args
        .iter()
        .rev()
        .find(|w| head(w).starts_with("-url="))
        .and_then(|w| w.suffix("-url=".len()));
    let targets = match url {
        Some(url) => cmd
            .value(&url)
            .and_then(|u| target::database_url(&u, cmd.cwd()))
            .into_iter()
            .collect(),
        None => migration_target(cmd, &[], &["FLYWAY_URL", "DATABASE_URL"]),
    };
    Some(cmd.found("db.reset", targets, None))
}

/// `sqlx database drop|reset`, `sqlx migrate revert`, `diesel database
/// reset`, `diesel migration revert|redo`.
fn sqlx_diesel(cmd: &Cmd<'_>, name: &str) -> Option<Recognized> {
    const SPEC: Spec = Spec {
        short: "D",
        attached_short: "",
        long: &[
            "database-url",
            "source",
            "migration-dir",
            "config",
            "connect-timeout",
        ],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&SPEC);
    let ops: Vec<&Word> = opts.operands.iter().collect();
    let kind = match (name, literals(&ops).as_slice()) {
        ("sqlx", ["database", "drop", ..]) => "db.drop.database",
        ("sqlx" | "diesel", ["database", "reset", ..]) => "db.reset",
        ("diesel", ["database", "drop", ..]) => "db.drop.database",
        ("sqlx", ["migrate", "revert", ..]) => "db.migrate.down",
        ("diesel", ["migration", "revert" | "redo", ..]) => "db.migrate.down",
        _ => return None,
    };
    let targets = match opts.last(&["D", "database-url"]) {
        Some(url) => cmd
            .value(url)
            .and_then(|u| target::database_url(&u, cmd.cwd()))
            .into_iter()
            .collect(),
        None => migration_target(cmd, &[], &["DATABASE_URL"]),
    };
    Some(cmd.found(kind, targets, None))
}

fn terraform(cmd: &Cmd<'_>) -> Option<Recognized> {
    let args = cmd.args();
    let at = args.iter().position(|w| !head(w).starts_with('-'))?;
    let sub = args.get(at)?.literal()?;
    let rest = args.get(at + 1..).unwrap_or_default();
    let flag = |names: &[&str]| {
        rest.iter().any(|w| {
            let t = head(w);
            names.iter().any(|n| {
                t == *n
                    || t == format!("-{n}")
                    || t == format!("{n}=true")
                    || t == format!("-{n}=true")
            })
        })
    };
    if flag(&["-help", "-h"]) {
        return None;
    }
    let destroys = match sub {
        "destroy" => true,
        "apply" => flag(&["-destroy"]),
        _ => false,
    };
    if !destroys {
        return None;
    }
    let targets = match cmd.env("TF_WORKSPACE") {
        Field::Known(ws) if !ws.is_empty() => vec![format!("terraform:{ws}")],
        Field::Unknown => Vec::new(),
        _ => vec!["terraform:default".to_owned()],
    };
    Some(cmd.found("infra.destroy", targets, None))
}

/// `kube:CONTEXT[/NAMESPACE]`, or nothing when the context is unknown.
fn kube_target(
    cmd: &Cmd<'_>,
    context: Option<&Word>,
    context_env: &[&str],
    namespace: Field,
) -> Vec<String> {
    let context = match context {
        Some(w) => cmd.field(w),
        None => context_env
            .iter()
            .map(|name| cmd.env(name))
            .find(|f| *f != Field::Unset)
            .unwrap_or(Field::Unset),
    };
    let Field::Known(context) = context else {
        return Vec::new();
    };
    match namespace {
        Field::Known(ns) if !ns.is_empty() => vec![format!("kube:{context}/{ns}")],
        _ => vec![format!("kube:{context}")],
    }
}

const KUBE_CONTEXT_ENV: [&str; 3] = ["KUBECONTEXT", "KUBE_CONTEXT", "KUBECTL_CONTEXT"];

fn kubectl(cmd: &Cmd<'_>) -> Option<Recognized> {
    const KUBECTL: Spec = Spec {
        short: "nlfosvc",
        attached_short: "",
        long: &[
            "context",
            "namespace",
            "kubeconfig",
            "cluster",
            "user",
            "server",
            "token",
            "as",
            "as-group",
            "as-uid",
            "cache-dir",
            "certificate-authority",
            "client-certificate",
            "client-key",
            "request-timeout",
            "tls-server-name",
            "profile",
            "profile-output",
            "v",
            "vmodule",
            "log-file",
            "log-dir",
            "selector",
            "filename",
            "output",
            "field-selector",
            "grace-period",
            "timeout",
            "template",
            "username",
            "password",
        ],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&KUBECTL);
    if opts.operands.first()?.literal()? != "delete" || dry_run(&opts) {
        return None;
    }
    let namespace = opts
        .last(&["n", "namespace"])
        .map_or(Field::Unset, |w| cmd.field(w));
    let targets = kube_target(cmd, opts.last(&["context"]), &KUBE_CONTEXT_ENV, namespace);
    Some(cmd.found("infra.delete", targets, None))
}

/// `--dry-run` (or `--dry-run=client|server`): nothing is changed.
fn dry_run(opts: &Opts) -> bool {
    opts.opts
        .iter()
        .filter(|(n, _)| n == "dry-run")
        .any(|(_, v)| v.as_ref().and_then(Word::literal) != Some("none"))
}

fn helm(cmd: &Cmd<'_>) -> Option<Recognized> {
    const HELM: Spec = Spec {
        short: "n",
        attached_short: "",
        long: &[
            "kube-context",
            "namespace",
            "kubeconfig",
            "burst-limit",
            "kube-apiserver",
            "kube-as-user",
            "kube-as-group",
            "kube-ca-file",
            "kube-token",
            "kube-tls-server-name",
            "registry-config",
            "repository-cache",
            "repository-config",
            "timeout",
            "cascade",
            "description",
        ],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&HELM);
    let sub = opts.operands.first()?.literal()?;
    if !matches!(sub, "uninstall" | "delete" | "del" | "un") || opts.has(&["dry-run"]) {
        return None;
    }
    let namespace = match opts.last(&["n", "namespace"]) {
        Some(w) => cmd.field(w),
        None => cmd.env("HELM_NAMESPACE"),
    };
    let mut context_env = vec!["HELM_KUBECONTEXT"];
    context_env.extend(KUBE_CONTEXT_ENV);
    let targets = kube_target(cmd, opts.last(&["kube-context"]), &context_env, namespace);
    Some(cmd.found("infra.delete", targets, None))
}

fn aws(cmd: &Cmd<'_>) -> Option<Recognized> {
    const AWS: Spec = Spec {
        short: "",
        attached_short: "",
        long: &[
            "profile",
            "region",
            "endpoint-url",
            "output",
            "query",
            "cli-read-timeout",
            "cli-connect-timeout",
            "ca-bundle",
            "color",
            "cli-binary-format",
            "include",
            "exclude",
            "request-payer",
            "expected-bucket-owner",
            "page-size",
            "db-instance-identifier",
            "db-cluster-identifier",
            "final-db-snapshot-identifier",
            "final-snapshot-identifier",
        ],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&AWS);
    let ops: Vec<&Word> = opts.operands.iter().collect();
    let names = literals(&ops);
    let s3_target = || -> Vec<String> {
        ops.iter()
            .skip(2)
            .filter_map(|w| cmd.value(w))
            .find(|v| v.starts_with("s3://"))
            .into_iter()
            .collect()
    };
    match names.as_slice() {
        ["s3", "rm", ..] if opts.has(&["recursive"]) && !opts.has(&["dryrun"]) => {
            Some(cmd.found("storage.delete.recursive", s3_target(), None))
        }
        ["s3", "rb", ..] if opts.has(&["force"]) && !opts.has(&["dryrun"]) => {
            Some(cmd.found("storage.delete.recursive", s3_target(), None))
        }
        ["rds", op @ ("delete-db-instance" | "delete-db-cluster"), ..] => {
            let option = if *op == "delete-db-instance" {
                "db-instance-identifier"
            } else {
                "db-cluster-identifier"
            };
            let targets = opts
                .last(&[option])
                .and_then(|w| cmd.value(w))
                .map(|id| format!("aws-rds:{id}"))
                .into_iter()
                .collect();
            Some(cmd.found("infra.destroy", targets, None))
        }
        _ => None,
    }
}

fn gcloud(cmd: &Cmd<'_>) -> Option<Recognized> {
    const GCLOUD: Spec = Spec {
        short: "",
        attached_short: "",
        long: &[
            "project",
            "account",
            "configuration",
            "format",
            "verbosity",
            "impersonate-service-account",
            "billing-project",
            "flags-file",
            "trace-token",
        ],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&GCLOUD);
    let ops: Vec<&Word> = opts
        .operands
        .iter()
        .skip_while(|w| matches!(w.literal(), Some("alpha" | "beta")))
        .collect();
    if literals(&ops).get(..3) != Some(&["sql", "instances", "delete"][..]) {
        return None;
    }
    let targets = ops
        .iter()
        .skip(3)
        .filter_map(|w| cmd.value(w))
        .map(|id| format!("gcp-sql:{id}"))
        .collect();
    Some(cmd.found("infra.destroy", targets, None))
}
