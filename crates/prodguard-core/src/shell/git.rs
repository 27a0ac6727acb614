//! git: `push --force`, `reset --hard`, `clean -fd`.

use super::Recognized;
use super::args::{self, Spec, head};
use super::files::dedup;
use super::lex::Word;
use super::recognize::Cmd;
use super::target;

/// `git push --force`, `git reset --hard`, `git clean -fd`.
pub(super) fn git(cmd: &Cmd<'_>) -> Option<Recognized> {
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
