//! Commands run on another machine: `ssh HOST COMMAND` (a command line
//! the remote shell reads), `docker exec CONTAINER ARGS…`, `docker
//! compose exec SERVICE ARGS…` and `kubectl exec POD -- ARGS…` (a program
//! and its arguments). What runs there is analysed like any command, in an
//! environment the line does not show (its variables are unknown, not
//! unset; its directory is unknown), and each command recognised in it
//! gets the machine as one more target: `ssh:HOST`, `docker:CONTAINER`,
//! `compose:SERVICE`, `kube:CONTEXT[/NAMESPACE]`.

use super::NestedText;
use super::Val;
use super::args::head;
use super::db;
use super::lex::Word;
use super::recognize::Cmd;

/// `ssh [OPTIONS] HOST [COMMAND…]`: the command line it runs there (its
/// words joined by spaces, as ssh sends them, or a script on its standard
/// input) and the host, when it can be told.
pub(super) fn ssh(cmd: &Cmd<'_>) -> Option<(NestedText, Option<String>)> {
    // Options that take a value (OpenSSH's getopt string).
    const VALUE: &str = "BbcDEeFIiJLlmOoPpQRSWw";
    let args = cmd.args();
    let mut i = 0;
    let mut runs = true;
    while let Some(w) = args.get(i) {
        let t = head(w);
        if t == "--" && w.parts.len() <= 1 {
            i += 1;
            break;
        }
        let Some(cluster) = t.strip_prefix('-').filter(|c| !c.is_empty()) else {
            break;
        };
        i += 1;
        for (k, c) in cluster.char_indices() {
            if matches!(c, 'N' | 'V' | 'G' | 'O' | 'Q') {
                // No command, a version, the configuration, a control
                // command, a query: nothing runs there.
                runs = false;
            }
            if VALUE.contains(c) {
                if k + c.len_utf8() == cluster.len() {
                    i += 1;
                }
                break;
            }
        }
    }
    let host_word = args.get(i)?;
    if !runs {
        return None;
    }
    let host = cmd.value(host_word).map(|h| host_of(&h));
    let rest = args.get(i + 1..).unwrap_or_default();
    let text = if rest.is_empty() {
        match db::stdin(cmd, true) {
            db::Input::Text(text) => text,
            _ => return None,
        }
    } else {
        rest.iter()
            .map(|w| cmd.shell_text(w))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Some((NestedText { text, child: true }, host))
}

/// The host of `[ssh://][USER@]HOST[:PORT]`.
fn host_of(destination: &str) -> String {
    let rest = destination
        .strip_prefix("ssh://")
        .map_or(destination, |r| r.split('/').next().unwrap_or_default());
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = if destination.starts_with("ssh://") && !host.starts_with('[') {
        host.split(':').next().unwrap_or_default()
    } else {
        host
    };
    host.to_ascii_lowercase()
}

/// Where a program runs on another machine: its index among the words,
/// the machine's target when it can be told, and its directory there.
pub(super) struct Exec {
    pub(super) program: usize,
    pub(super) target: Option<String>,
    pub(super) chdir: Option<String>,
}

/// The literal start of `words[at]` (empty past the end).
fn arg(words: &[Word], at: usize) -> &str {
    words.get(at).map(head).unwrap_or_default()
}

/// Skips options from `words[i]` on: `value_short` and `value_long` take
/// a value (attached with `=` or the next word). Returns the first
/// operand's index, and the value of `-w`/`--workdir` when seen.
fn skip_options(
    words: &[Word],
    mut i: usize,
    value_short: &str,
    value_long: &[&str],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> (usize, Option<Option<String>>) {
    let mut workdir = None;
    while let Some(w) = words.get(i) {
        let t = head(w);
        if t == "--" {
            return (i + 1, workdir);
        }
        if let Some(long) = t.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((name, _)) => (name, true),
                None => (long, false),
            };
            let value_at = if attached { i } else { i + 1 };
            if name == "workdir" {
                workdir = Some(if attached {
                    w.suffix(t.len() - long.len() + name.len() + 1)
                        .and_then(|v| v.expand(lookup))
                } else {
                    words.get(value_at).and_then(|v| v.expand(lookup))
                });
            }
            i += if value_long.contains(&name) && !attached {
                2
            } else {
                1
            };
            continue;
        }
        let Some(cluster) = t.strip_prefix('-').filter(|c| !c.is_empty()) else {
            break;
        };
        i += 1;
        for (k, c) in cluster.char_indices() {
            if value_short.contains(c) {
                let last = k + c.len_utf8() == cluster.len();
                if c == 'w' {
                    workdir = Some(if last {
                        words.get(i).and_then(|v| v.expand(lookup))
                    } else {
                        w.suffix(1 + k + 1).and_then(|v| v.expand(lookup))
                    });
                }
                if last {
                    i += 1;
                }
                break;
            }
        }
    }
    (i, workdir)
}

/// The directory given to `-w`: only an absolute one can be told.
fn workdir(dir: Option<Option<String>>) -> Option<String> {
    dir.flatten().filter(|d| d.starts_with('/'))
}

/// `docker|podman [GLOBAL] exec|container exec [OPTIONS] CONTAINER ARGS…`,
/// `docker compose [GLOBAL] exec [OPTIONS] SERVICE ARGS…` and
/// `docker-compose …`, the command's words starting at `i`. `None` when it
/// is another subcommand.
pub(super) fn docker(
    words: &[Word],
    i: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<Exec> {
    const GLOBAL_SHORT: &str = "Hcl";
    const GLOBAL_LONG: [&str; 8] = [
        "host",
        "context",
        "config",
        "log-level",
        "tlscacert",
        "tlscert",
        "tlskey",
        "url",
    ];
    const COMPOSE_LONG: [&str; 9] = [
        "file",
        "project-name",
        "profile",
        "env-file",
        "project-directory",
        "ansi",
        "parallel",
        "progress",
        "workdir",
    ];
    const EXEC_SHORT: &str = "euw";
    const EXEC_LONG: [&str; 6] = ["env", "env-file", "user", "workdir", "detach-keys", "index"];
    let name = super::wrappers::program_name(words.get(i)?.literal()?);
    let (mut at, compose) = if name == "docker-compose" {
        (i + 1, true)
    } else {
        let (at, _) = skip_options(words, i + 1, GLOBAL_SHORT, &GLOBAL_LONG, lookup);
        match arg(words, at) {
            "compose" => (at + 1, true),
            "container" if arg(words, at + 1) == "exec" => (at + 1, false),
            _ => (at, false),
        }
    };
    if compose {
        at = skip_options(words, at, "fp", &COMPOSE_LONG, lookup).0;
    }
    if arg(words, at) != "exec" || words.get(at)?.parts.len() > 1 {
        return None;
    }
    let (at, dir) = skip_options(words, at + 1, EXEC_SHORT, &EXEC_LONG, lookup);
    let container = words.get(at)?;
    let target = container.expand(lookup).map(|c| {
        if compose {
            format!("compose:{c}")
        } else {
            format!("docker:{c}")
        }
    });
    Some(Exec {
        program: at + 1,
        target,
        chdir: workdir(dir),
    })
}

/// `kubectl|oc [OPTIONS] exec [OPTIONS] POD [--] ARGS…`, the command's
/// words starting at `i`. `None` when it is another subcommand.
pub(super) fn kubectl(
    words: &[Word],
    i: usize,
    env: &dyn Fn(&str) -> Val,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<Exec> {
    use super::infra::{KUBECTL_LONG as LONG, KUBECTL_SHORT as SHORT};
    let mut context = None;
    let mut namespace = None;
    let mut at = i + 1;
    let mut seen_exec = false;
    let mut pod = None;
    // Options may come anywhere before `--`; the value of `--context`
    // and `-n` is wanted.
    while let Some(w) = words.get(at) {
        let t = head(w);
        if t == "--" && w.parts.len() <= 1 {
            at += 1;
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((name, _)) => (name, true),
                None => (long, false),
            };
            let value = if attached {
                w.suffix(2 + name.len() + 1).and_then(|v| v.expand(lookup))
            } else {
                words.get(at + 1).and_then(|v| v.expand(lookup))
            };
            match name {
                "context" => context = Some(value),
                "namespace" => namespace = Some(value),
                _ => {}
            }
            at += if LONG.contains(&name) && !attached {
                2
            } else {
                1
            };
            continue;
        }
        if let Some(cluster) = t.strip_prefix('-').filter(|c| !c.is_empty()) {
            at += 1;
            for (k, c) in cluster.char_indices() {
                if SHORT.contains(c) {
                    let last = k + c.len_utf8() == cluster.len();
                    let value = if last {
                        words.get(at).and_then(|v| v.expand(lookup))
                    } else {
                        w.suffix(1 + k + 1).and_then(|v| v.expand(lookup))
                    };
                    if c == 'n' {
                        namespace = Some(value);
                    }
                    if last {
                        at += 1;
                    }
                    break;
                }
            }
            continue;
        }
        if !seen_exec {
            if t != "exec" || w.parts.len() > 1 {
                return None;
            }
            seen_exec = true;
        } else if pod.is_none() {
            pod = Some(at);
        } else {
            // `kubectl exec POD COMMAND` (without `--`, deprecated).
            break;
        }
        at += 1;
    }
    if !seen_exec {
        return None;
    }
    pod?;
    let context = match context {
        Some(value) => value,
        None => ["KUBECONTEXT", "KUBE_CONTEXT", "KUBECTL_CONTEXT"]
            .iter()
            .map(|name| env(name))
            .find(|v| *v != Val::Unset)
            .and_then(|v| match v {
                Val::Known(v) => Some(v),
                _ => None,
            }),
    };
    let target = context.map(|context| match namespace.flatten() {
        Some(ns) if !ns.is_empty() => format!("kube:{context}/{ns}"),
        _ => format!("kube:{context}"),
    });
    Some(Exec {
        program: at,
        target,
        chdir: None,
    })
}
