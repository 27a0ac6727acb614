//! Files and devices: `rm -r`, `shred`, `dd of=/dev/…`, `mkfs`, and
//! writes redirected to a device.

use super::Recognized;
use super::args::{Spec, head};
use super::lex::{Part, Word};
use super::recognize::Cmd;
use super::target;

/// `file:/dev/…` for a path that writes to a device, `None` for any other
/// path and for devices that store nothing (`/dev/null`, terminals, …).
pub(super) fn device(path: &str) -> Option<String> {
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
pub(super) fn dedup(mut targets: Vec<String>) -> Vec<String> {
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
    let only_globs =
        word.glob && !word.tilde && word.parts.iter().all(|p| matches!(p, Part::Lit(_)));
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
pub(super) fn rm(cmd: &Cmd<'_>) -> Option<Recognized> {
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

/// `find ROOTS… EXPRESSION`: `-delete`, or `-exec rm …` (also `-execdir`,
/// `-ok`, `-okdir`), removes what it finds below its roots, as `rm -r`
/// would (the same build and temporary directories are left out). Any
/// other command it runs is returned as a command line to analyse, `{}`
/// standing for the one root when there is one (what it names is below
/// it), for an unknown value otherwise.
pub(super) fn find(cmd: &Cmd<'_>) -> (Option<Recognized>, Option<String>) {
    let args = cmd.args();
    let mut i = 0;
    // Options before the roots.
    while let Some(w) = args.get(i) {
        match head(w) {
            "-H" | "-L" | "-P" => i += 1,
            "-D" => i += 2,
            t if t.starts_with("-O") && w.parts.len() <= 1 => i += 1,
            _ => break,
        }
    }
    let expression = |w: &Word| {
        let t = head(w);
        w.parts.len() <= 1 && (t.len() > 1 && t.starts_with('-') || matches!(t, "(" | "!" | ","))
    };
    let mut roots: Vec<&Word> = Vec::new();
    while let Some(w) = args.get(i).filter(|w| !expression(w)) {
        roots.push(w);
        i += 1;
    }
    let mut removes = false;
    let mut nested: Vec<String> = Vec::new();
    let placeholder = match roots.as_slice() {
        [root] => cmd.quoted_text(root),
        [] => "'.'".to_owned(),
        _ => "\"${PRODGUARD_SUBSTITUTION}\"".to_owned(),
    };
    let mut words = args.get(i..).unwrap_or_default().iter();
    while let Some(w) = words.next() {
        match w.literal() {
            Some("-delete") => removes = true,
            Some("-exec" | "-execdir" | "-ok" | "-okdir") => {
                let mut command: Vec<&Word> = Vec::new();
                for w in words.by_ref() {
                    if matches!(w.literal(), Some(";" | "+")) {
                        break;
                    }
                    command.push(w);
                }
                let program = command.first().and_then(|w| w.literal());
                if program.is_some_and(|p| super::wrappers::program_name(p) == "rm") {
                    removes = true;
                    continue;
                }
                let text: Vec<String> = command
                    .iter()
                    .map(|w| {
                        // `{}` is a brace expansion to the lexer: not literal.
                        if head(w) == "{}" && w.parts.len() == 1 {
                            placeholder.clone()
                        } else {
                            cmd.quoted_text(w)
                        }
                    })
                    .collect();
                if !text.is_empty() {
                    nested.push(text.join(" "));
                }
            }
            _ => {}
        }
    }
    let nested = (!nested.is_empty()).then(|| nested.join("\n"));
    if !removes {
        return (None, nested);
    }
    let dot = Word {
        parts: super::lex::Parts::One(Part::Lit(".".to_owned())),
        ..Word::default()
    };
    let targets: Vec<String> = if roots.is_empty() {
        removal_target(cmd, &dot).into_iter().collect()
    } else {
        roots
            .iter()
            .filter_map(|w| removal_target(cmd, w))
            .collect()
    };
    if targets.is_empty() {
        return (None, nested);
    }
    (
        Some(cmd.found("fs.remove.recursive", dedup(targets), None)),
        nested,
    )
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

pub(super) fn shred(cmd: &Cmd<'_>) -> Option<Recognized> {
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

pub(super) fn dd(cmd: &Cmd<'_>) -> Option<Recognized> {
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

pub(super) fn mkfs(cmd: &Cmd<'_>, name: &str) -> Option<Recognized> {
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
