//! The recogniser: one simple command → what it does. Wrappers are taken
//! off first ([`super::wrappers`]), then the program is matched by name;
//! each tool's options are read the way that tool reads it (database
//! clients in [`super::db`], files in [`super::files`], git in
//! [`super::git`], migration tools in [`super::migrate`], infrastructure
//! in [`super::infra`]).

use std::borrow::Cow;

use super::args::{self, Opts, Spec, head};
use super::lex::Word;
use super::parse::{Item, Simple};
use super::target::{self, Field};
use super::wrappers::{Invocation, program_name};
use super::{NestedText, Recognized, SqlSource, Val, View, db, files, git, infra, migrate, remote};

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
    /// It runs on another machine (`ssh`, `docker exec`, `kubectl exec`),
    /// named by this target when it can be told (`ssh:HOST`): added to the
    /// targets of every command recognised in it.
    pub(super) remote: Option<Option<String>>,
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

    /// The word as one argument of a command line a nested shell reads.
    pub(super) fn quoted_text(&self, word: &Word) -> String {
        word.quoted_text(&self.view.word_lookup())
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
            // Most words hold no secret: one needs `=` (`password=`), `@`
            // (a URL's user) or a quote (SQL's `PASSWORD '…'`), unless an
            // option before it takes one.
            let marked = [b'=', b'@', b'\'', b'"']
                .iter()
                .any(|b| r.as_bytes().contains(b));
            if !secret_next && !t.starts_with('-') && !marked {
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
            } else if marked {
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

/// `raw` with passwords shown as `***`: a URL's (`scheme://user:PW@host`),
/// and the value after `password=`, `password '…'` (SQL's `WITH PASSWORD`)
/// or `identified by '…'` (MySQL), in any case. `None` when it holds none.
///
/// Linear: the URLs are looked for once per whitespace- or quote-separated
/// segment, each other form from where the previous one ended.
pub(super) fn scrub(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    let mut masks: Vec<std::ops::Range<usize>> = Vec::new();
    // A URL's user information: from the `:` after `scheme://` to the
    // segment's last `@` (a password may hold `/`, `@`, `?`).
    let mut segment = 0;
    let ends = raw
        .char_indices()
        .filter(|&(_, c)| c.is_whitespace() || c == '\'' || c == '"')
        .map(|(i, c)| (i, i + c.len_utf8()))
        .chain(std::iter::once((raw.len(), raw.len())));
    for (end, next) in ends {
        let text = raw.get(segment..end).unwrap_or_default();
        if let Some(scheme) = text.find("://") {
            let authority = scheme + 3;
            if let Some(at) = text.rfind('@').filter(|&at| at > authority)
                && let Some(colon) = text.get(authority..at).and_then(|a| a.find(':'))
            {
                masks.push(segment + authority + colon + 1..segment + at);
            }
        }
        segment = next;
    }
    // `password=…`, `password '…'`, `identified by '…'`.
    let find = |needle: &str, from: usize| {
        lower
            .get(from..)
            .and_then(|r| r.find(needle))
            .map(|i| i + from)
    };
    let mut from = 0;
    let (mut password, mut identified) = (find("password", 0), find("identified by", 0));
    loop {
        if password.is_some_and(|p| p < from) {
            password = find("password", from);
        }
        if identified.is_some_and(|p| p < from) {
            identified = find("identified by", from);
        }
        let after = match (password, identified) {
            (Some(p), Some(i)) if i < p => i + "identified by".len(),
            (Some(p), _) => p + "password".len(),
            (None, Some(i)) => i + "identified by".len(),
            (None, None) => break,
        };
        let bytes = raw.as_bytes();
        let value = if bytes.get(after) == Some(&b'=') {
            let start = after + 1;
            let len = raw
                .get(start..)
                .unwrap_or_default()
                .find(|c: char| c.is_whitespace() || "'\"&;".contains(c))
                .unwrap_or(raw.len() - start);
            start..start + len
        } else {
            let spaces = raw
                .get(after..)
                .unwrap_or_default()
                .bytes()
                .take_while(|&b| b == b' ' || b == b'\t')
                .count();
            let open = after + spaces;
            match bytes.get(open) {
                Some(&quote @ (b'\'' | b'"')) if spaces > 0 => {
                    let start = open + 1;
                    let len = raw
                        .get(start..)
                        .unwrap_or_default()
                        .find(char::from(quote))
                        .unwrap_or(raw.len() - start);
                    start..start + len
                }
                _ => after..after,
            }
        };
        from = value.end.max(after);
        if !value.is_empty() {
            masks.push(value);
        }
    }
    if masks.is_empty() {
        return None;
    }
    masks.sort_by_key(|m| m.start);
    let mut out = String::with_capacity(raw.len());
    let mut at = 0;
    for mask in masks {
        if mask.start < at {
            // Overlaps the one before: already hidden.
            at = at.max(mask.end);
            continue;
        }
        out.push_str(raw.get(at..mask.start).unwrap_or_default());
        out.push_str("***");
        at = mask.end;
    }
    out.push_str(raw.get(at..).unwrap_or_default());
    Some(out)
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
        remote: inv.remote.clone(),
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
        // `$CMD args`, `rm${IFS}-rf${IFS}/srv`, `$(which psql)`.
        match dynamic(&cmd) {
            Ok(text) => {
                effects.nested = Some(NestedText { text, child: false });
                effects.found = devices;
            }
            Err(unknown) => {
                effects.found = vec![unknown];
                effects.found.extend(devices);
            }
        }
        return effects;
    };
    let split = view.split_lookup();
    if words.iter().any(|w| w.splits(&split)) {
        // `X='-rf /srv'; rm $X`: the program sees the fields.
        let text: Vec<String> = words.iter().map(|w| w.fields_text(&split)).collect();
        effects.nested = Some(NestedText {
            text: text.join(" "),
            child: false,
        });
        effects.found = devices;
        return effects;
    }
    let name = program_name(literal);
    let found = match name {
        "sh" | "bash" | "zsh" | "dash" | "ksh" | "ash" | "mksh" => {
            effects.nested = shell(&cmd);
            None
        }
        "ssh" => {
            if let Some((nested, host)) = remote::ssh(&cmd) {
                effects.nested = Some(nested);
                effects.remote = Some(host.map(|h| format!("ssh:{h}")));
                effects.chdir = Some(None);
            }
            None
        }
        "su" => {
            effects.nested = su(&cmd);
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
        "rails" | "rake" => migrate::rails(&cmd),
        "php" | "artisan" | "sail" => migrate::artisan(&cmd, name),
        "prisma" => migrate::prisma(&cmd),
        "alembic" => migrate::alembic(&cmd),
        "flyway" => migrate::flyway(&cmd),
        "sqlx" | "diesel" => migrate::sqlx_diesel(&cmd, name),
        "terraform" | "tofu" => infra::terraform(&cmd),
        "kubectl" | "oc" => infra::kubectl(&cmd),
        "helm" => infra::helm(&cmd),
        "aws" => infra::aws(&cmd),
        "gcloud" => infra::gcloud(&cmd),
        "rm" => files::rm(&cmd),
        "find" => {
            let (found, nested) = files::find(&cmd);
            effects.nested = nested.map(|text| NestedText { text, child: true });
            found
        }
        "shred" => files::shred(&cmd),
        "dd" => files::dd(&cmd),
        "git" => git::git(&cmd),
        name if name.starts_with("mkfs")
            || matches!(name, "mke2fs" | "mkswap" | "wipefs" | "blkdiscard") =>
        {
            files::mkfs(&cmd, name)
        }
        _ => None,
    };
    effects.found.extend(found);
    effects.found.extend(devices);
    effects
}

/// A command whose program word is not literal: the command line its
/// fields make when every expansion in the program word is known (or is
/// `$(which NAME)`, `$(command -v NAME)`), for a nested analysis; otherwise
/// a `shell.unknown` command (the line does not show which program runs:
/// the policy decides).
fn dynamic(cmd: &Cmd<'_>) -> Result<String, Recognized> {
    let lookup = cmd.view.split_lookup();
    let Some(program) = cmd.words.first() else {
        return Err(cmd.found("shell.unknown", Vec::new(), None));
    };
    let which = match &*program.parts {
        [super::lex::Part::Subst(raw)] => looked_up(raw),
        _ => None,
    };
    let first = match which {
        Some(name) => format!("'{name}'"),
        None if program.expand(&lookup).is_some() && !program.glob => program.fields_text(&lookup),
        None => return Err(cmd.found("shell.unknown", Vec::new(), None)),
    };
    let mut text = vec![first];
    text.extend(cmd.args().iter().map(|w| w.fields_text(&lookup)));
    Ok(text.join(" "))
}

/// `NAME` of `$(which NAME)`, `$(command -v NAME)`, `` `which NAME` ``
/// (a plain name only).
fn looked_up(raw: &str) -> Option<&str> {
    let inner = raw
        .strip_prefix("$(")
        .and_then(|r| r.strip_suffix(')'))
        .or_else(|| raw.strip_prefix('`').and_then(|r| r.strip_suffix('`')))?;
    let words: Vec<&str> = inner.split_whitespace().collect();
    let name = match words.as_slice() {
        ["which", name] | ["command", "-v", name] | ["type", "-P", name] => *name,
        _ => return None,
    };
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        .then_some(name)
}

/// `su [OPTIONS] [USER] -c COMMAND`: the command, run by a shell.
fn su(cmd: &Cmd<'_>) -> Option<NestedText> {
    let mut words = cmd.args().iter();
    while let Some(w) = words.next() {
        let t = head(w);
        let text = match t {
            "-c" | "--command" | "--session-command" => words.next().map(|w| cmd.shell_text(w)),
            t if t.starts_with("--command=") || t.starts_with("--session-command=") => {
                let skip = t.find('=').map_or(t.len(), |i| i + 1);
                w.suffix(skip).map(|w| cmd.shell_text(&w))
            }
            "-s"
            | "--shell"
            | "-g"
            | "--group"
            | "-G"
            | "--supp-group"
            | "-w"
            | "--whitelist-environment" => {
                words.next();
                continue;
            }
            _ => continue,
        };
        return text.map(|text| NestedText { text, child: true });
    }
    None
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
            && let Some(device) = files::device(&path)
        {
            found.push(cmd.found("fs.overwrite.device", vec![device], None));
        }
    }
    found
}
