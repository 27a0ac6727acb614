//! Command-line options, read the way getopt and most tools read them:
//! `-abc` clusters, `-dVALUE` / `-d VALUE`, `--name=VALUE` / `--name VALUE`,
//! `--` ending the options, options anywhere among the operands.

use super::lex::{Part, Word};

/// Which options of a program take a value.
pub(super) struct Spec {
    /// Short options that take a value (attached or the next word).
    pub(super) short: &'static str,
    /// Short options whose value can only be attached (`mysql -pSECRET`).
    pub(super) attached_short: &'static str,
    /// Long options that take a value (`=VALUE` or the next word).
    pub(super) long: &'static [&'static str],
    /// Whether the first operand ends the options (`redis-cli`, `xargs`).
    pub(super) stop_at_operand: bool,
}

/// A command's options and operands.
#[derive(Debug, Default)]
pub(super) struct Opts {
    /// Each option's name (without dashes) and value, in order.
    pub(super) opts: Vec<(String, Option<Word>)>,
    /// The operands, in order.
    pub(super) operands: Vec<Word>,
}

impl Opts {
    /// The last value given to any of `names`.
    pub(super) fn last(&self, names: &[&str]) -> Option<&Word> {
        self.opts
            .iter()
            .rev()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .find_map(|(_, v)| v.as_ref())
    }

    /// Every value given to any of `names`, in order.
    pub(super) fn all(&self, names: &[&str]) -> Vec<&Word> {
        self.opts
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .filter_map(|(_, v)| v.as_ref())
            .collect()
    }

    /// Whether any of `names` is given.
    pub(super) fn has(&self, names: &[&str]) -> bool {
        self.opts.iter().any(|(n, _)| names.contains(&n.as_str()))
    }
}

/// The literal text a word starts with (before any expansion).
pub(super) fn head(word: &Word) -> &str {
    match word.parts.first() {
        Some(Part::Lit(s)) => s,
        _ => "",
    }
}

/// Reads `args` as options and operands.
pub(super) fn parse(args: &[Word], spec: &Spec) -> Opts {
    let mut out = Opts::default();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let text = head(word);
        let whole = word.parts.len() <= 1;
        if text == "--" && whole {
            out.operands.extend(words.by_ref().cloned());
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, _)) => {
                    let value = word.suffix(2 + name.len() + 1);
                    out.opts.push((name.to_owned(), value));
                }
                None if spec.long.contains(&long) && whole => {
                    out.opts.push((long.to_owned(), words.next().cloned()));
                }
                None => out.opts.push((long.to_owned(), None)),
            }
            continue;
        }
        let Some(cluster) = text.strip_prefix('-').filter(|c| !c.is_empty()) else {
            out.operands.push(word.clone());
            if spec.stop_at_operand {
                out.operands.extend(words.by_ref().cloned());
                break;
            }
            continue;
        };
        for (i, c) in cluster.char_indices() {
            let rest_at = 1 + i + c.len_utf8();
            let rest = word.suffix(rest_at).filter(|w| !w.parts.is_empty());
            if spec.short.contains(c) {
                let value = match rest {
                    Some(rest) => Some(rest),
                    None => words.next().cloned(),
                };
                out.opts.push((c.to_string(), value));
                break;
            }
            if spec.attached_short.contains(c) {
                out.opts.push((c.to_string(), rest));
                break;
            }
            out.opts.push((c.to_string(), None));
        }
    }
    out
}

/// The operands of a command whose options are only partly known: words
/// not starting with `-`, skipping the values of `value_options`.
pub(super) fn operands<'w>(words: &'w [Word], value_options: &[&str]) -> Vec<&'w Word> {
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
pub(super) fn literals<'w>(words: &[&'w Word]) -> Vec<&'w str> {
    words.iter().map(|w| w.literal().unwrap_or("")).collect()
}
