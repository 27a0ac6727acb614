//! Wrappers taken off a command before its program is recognised
//! (`sudo`, `env`, `xargs`, `timeout`, `npx`, `bundle exec`, …), and the
//! names of the programs the analysis knows.

use super::args::head;
use super::lex::Word;
use super::{Env, Val};

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
    /// `docker exec CONTAINER`, `kubectl exec POD --`: the program runs
    /// there, named by this target when it can be told.
    pub(super) remote: Option<Option<String>>,
}

/// The name a program is matched by: its last path component, without an
/// `@version` (`npx prisma@5`).
pub(super) fn program_name(word: &str) -> &str {
    // Plain loops over bytes: this runs for every command, and names are
    // short.
    let bytes = word.as_bytes();
    let mut start = bytes.len();
    while start > 0 && bytes.get(start - 1) != Some(&b'/') {
        start -= 1;
    }
    let mut end = start;
    while end < bytes.len() && bytes.get(end) != Some(&b'@') {
        end += 1;
    }
    if end == start {
        // `@scope`: not a version.
        end = bytes.len();
    }
    word.get(start..end).unwrap_or(word)
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
pub(super) const KNOWN_PROGRAMS: [&str; 89] = [
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
    "busybox",
    "cargo",
    "cd",
    "command",
    "dash",
    "dd",
    "declare",
    "diesel",
    "doas",
    "docker",
    "docker-compose",
    "dropdb",
    "env",
    "eval",
    "exec",
    "export",
    "find",
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
    "podman",
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
    "ssh",
    "stdbuf",
    "su",
    "sudo",
    "terraform",
    "time",
    "timeout",
    "tofu",
    "typeset",
    "unset",
    "uv",
    "watch",
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
    let (Some(&first), 2..=14) = (name.as_bytes().first(), name.len()) else {
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
            "busybox" => i += 1,
            "watch" => {
                i += 1;
                let mut exec = false;
                loop {
                    match arg(words, i) {
                        "-n" | "--interval" | "-q" | "--equexit" => i += 2,
                        "-x" | "--exec" => {
                            exec = true;
                            i += 1;
                        }
                        "--" => {
                            i += 1;
                            break;
                        }
                        t if t.starts_with('-') && t.len() > 1 => i += 1,
                        _ => break,
                    }
                }
                if !exec {
                    // watch hands its words, joined, to `sh -c`.
                    inv.split = Some(text_of(words.get(i..).unwrap_or_default()));
                    return inv;
                }
            }
            "docker" | "podman" | "docker-compose" | "kubectl" | "oc" => {
                let exec = if matches!(program_name(name), "kubectl" | "oc") {
                    let get =
                        |name: &str| assigns.get(name).cloned().unwrap_or_else(|| env.get(name));
                    super::remote::kubectl(words, i, &get, &lookup)
                } else {
                    super::remote::docker(words, i, &lookup)
                };
                let Some(exec) = exec else {
                    inv.program = Some(i);
                    return inv;
                };
                // The program runs there, in its environment.
                assigns.clear();
                inv.remote = Some(inv.remote.take().flatten().or(exec.target));
                inv.chdir = Some(exec.chdir);
                i = exec.program;
            }
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
