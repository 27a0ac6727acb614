//! The parser: tokens → simple commands, in order of appearance, with what
//! analysis needs of the structure around them: which command's output a
//! pipe feeds in, and where a subshell or substitution (a scope for `cd`
//! and variables) begins and ends.
//!
//! Compound commands are flattened: their keywords are skipped and the
//! commands inside them are listed like any other (a command in an `if`
//! branch or a loop may run, so it counts). Nothing recurses but the
//! substitutions, whose depth the tokenizer has already bounded.

use std::ops::Range;
use std::rc::Rc;

use super::MAX_DEPTH;
use super::lex::{Lexed, Nested, Op, RedirOp, Token, Word};

/// The longest [`Simple::part`], in characters (the cut one ends in `…`).
const MAX_PART_CHARS: usize = 200;

/// What the analyser walks through, in order.
#[derive(Debug)]
pub(super) enum Item {
    Command(Box<Simple>),
    /// A subshell or substitution begins: a new scope.
    Enter,
    /// It ends.
    Leave,
}

/// One simple command: assignments, words and redirections.
#[derive(Debug)]
pub(super) struct Simple {
    /// The text it is in, and where.
    pub(super) text: Rc<str>,
    pub(super) span: Option<Range<usize>>,
    pub(super) assigns: Vec<Assign>,
    pub(super) words: Vec<Word>,
    pub(super) redirs: Vec<Redirect>,
    pub(super) stdin: Stdin,
    /// Substitution (and `sh -c`) levels around it.
    pub(super) depth: usize,
}

/// `NAME=value` before a command's words.
#[derive(Debug)]
pub(super) struct Assign {
    pub(super) name: String,
    pub(super) value: Word,
    /// The whole `NAME=value` word's.
    pub(super) span: Range<usize>,
}

/// A redirection, with a heredoc's body.
#[derive(Debug)]
pub(super) struct Redirect {
    pub(super) fd: Option<u32>,
    pub(super) op: RedirOp,
    pub(super) target: Word,
    pub(super) body: Option<Word>,
}

/// Where a command's standard input comes from, as far as the command line
/// says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stdin {
    /// From whatever the shell had: a terminal, or nothing the line shows.
    Inherited,
    /// A pipe from the [`Item::Command`] at this index, or from a compound
    /// command (`None`).
    Pipe(Option<usize>),
}

/// Parses `lexed` (the tokens of `text`, `depth` levels deep).
/// `interesting` says which (literal) programs the analysis looks at: a
/// command running any other, with no assignment, no redirection that
/// writes and no pipe out of it, is not listed (its substitutions are).
pub(super) fn parse(
    lexed: Lexed,
    text: &Rc<str>,
    depth: usize,
    interesting: fn(&str) -> bool,
) -> (Vec<Item>, Option<String>) {
    let Lexed {
        tokens,
        mut heredocs,
        ..
    } = lexed;
    let mut parser = Parser {
        items: Vec::new(),
        heredocs: &mut heredocs,
        problem: None,
        interesting,
    };
    parser.list(tokens, text, depth);
    (parser.items, parser.problem)
}

/// An open compound command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Subshell,
    Group,
    /// `case … in`: `patterns` while reading an item's patterns.
    Case {
        patterns: bool,
    },
}

/// Words that are not a command: skipped until the command ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Skip {
    #[default]
    No,
    /// `for NAME in …`, `select …`: up to `;` or a newline (parentheses of
    /// `for ((…))` included).
    Line,
    /// The name after `function`.
    Name,
    /// What follows `coproc`: a name when a compound command follows it.
    CoprocName,
    /// `case WORD`, up to `in`.
    CaseWord,
    /// `[[ … ]]`, whose `<`, `>`, `&&` and parentheses are operands.
    Test,
}

#[derive(Debug, Default)]
struct Current {
    assigns: Vec<Assign>,
    words: Vec<Word>,
    redirs: Vec<Redirect>,
    span: Option<Range<usize>>,
    skip: Skip,
    parens: usize,
    /// Substitutions in its words, to list after it.
    nested: Vec<Nested>,
}

impl Current {
    fn cover(&mut self, span: Range<usize>) {
        self.span = Some(match self.span.take() {
            Some(s) => s.start.min(span.start)..s.end.max(span.end),
            None => span,
        });
    }

    fn is_empty(&self) -> bool {
        self.words.is_empty() && self.assigns.is_empty()
    }
}

struct Parser<'h> {
    items: Vec<Item>,
    heredocs: &'h mut Vec<Option<Word>>,
    problem: Option<String>,
    interesting: fn(&str) -> bool,
}

impl Parser<'_> {
    fn fail(&mut self, why: impl Into<String>) {
        if self.problem.is_none() {
            self.problem = Some(why.into());
        }
    }

    fn list(&mut self, tokens: Vec<Token>, text: &Rc<str>, depth: usize) {
        let mut frames: Vec<Frame> = Vec::new();
        let mut cur = Current::default();
        let mut stdin = Stdin::Inherited;
        // A compound command has just ended (its output may be piped).
        let mut closed = false;
        let mut tokens = tokens.into_iter().peekable();
        let mut failed = None;
        while let Some(token) = tokens.next() {
            let at = token.span().start;
            let in_patterns = frames.last() == Some(&Frame::Case { patterns: true });
            match token {
                Token::Word(mut word) => {
                    cur.nested.append(&mut word.nested);
                    if in_patterns {
                        if word.plain() == Some("esac") {
                            frames.pop();
                            closed = true;
                        }
                        continue;
                    }
                    match cur.skip {
                        Skip::No => {}
                        Skip::Test => {
                            if word.plain() == Some("]]") {
                                cur.skip = Skip::Line;
                            }
                            continue;
                        }
                        Skip::Line => continue,
                        Skip::Name => {
                            cur.skip = Skip::No;
                            continue;
                        }
                        Skip::CoprocName => {
                            cur.skip = Skip::No;
                            // A name only when a compound command follows.
                            let compound = match tokens.peek() {
                                Some(Token::Word(next)) => next.plain() == Some("{"),
                                Some(Token::Op(Op::Open, _)) => true,
                                _ => false,
                            };
                            if compound {
                                continue;
                            }
                        }
                        Skip::CaseWord => {
                            if word.plain() == Some("in") {
                                self.finish(&mut cur, text, depth, stdin);
                                frames.push(Frame::Case { patterns: true });
                            }
                            continue;
                        }
                    }
                    closed = false;
                    if cur.words.is_empty() {
                        if let Some(keyword) = word.plain().filter(|k| {
                            // A cheap test first: most words are no keyword.
                            cur.assigns.is_empty()
                                && k.len() <= 8
                                && matches!(
                                    k.as_bytes().first(),
                                    Some(b'{' | b'}' | b'!' | b'[' | b'c' | b'd' | b'e' | b'f')
                                        | Some(b'i' | b's' | b't' | b'u' | b'w')
                                )
                        }) {
                            match keyword {
                                "{" => {
                                    frames.push(Frame::Group);
                                    continue;
                                }
                                "}" if frames.last() == Some(&Frame::Group) => {
                                    frames.pop();
                                    closed = true;
                                    continue;
                                }
                                "}" => {
                                    failed = Some(format!("unbalanced `}}` at byte {at}"));
                                    break;
                                }
                                "!" | "if" | "then" | "else" | "elif" | "do" | "while"
                                | "until" => continue,
                                "coproc" => {
                                    // `coproc NAME { …; }`: the name is no command.
                                    if let Some(Token::Word(name)) = tokens.peek()
                                        && name.plain().is_some_and(|n| n != "{")
                                    {
                                        cur.skip = Skip::CoprocName;
                                    }
                                    continue;
                                }
                                "fi" | "done" => {
                                    closed = true;
                                    continue;
                                }
                                "esac" if matches!(frames.last(), Some(Frame::Case { .. })) => {
                                    frames.pop();
                                    closed = true;
                                    continue;
                                }
                                "for" | "select" => {
                                    cur.skip = Skip::Line;
                                    continue;
                                }
                                "function" => {
                                    cur.skip = Skip::Name;
                                    continue;
                                }
                                "case" => {
                                    cur.skip = Skip::CaseWord;
                                    continue;
                                }
                                "[[" => {
                                    cur.skip = Skip::Test;
                                    continue;
                                }
                                _ => {}
                            }
                        }
                        if let Some(len) = word.assignment
                            && let Some(value) = word.suffix(len)
                        {
                            let name = word.value();
                            let name = name
                                .get(..len)
                                .unwrap_or_default()
                                .trim_end_matches('=')
                                .trim_end_matches('+')
                                .to_owned();
                            cur.cover(word.span.clone());
                            cur.assigns.push(Assign {
                                name,
                                value,
                                span: word.span.clone(),
                            });
                            continue;
                        }
                    }
                    cur.cover(word.span.clone());
                    if cur.words.capacity() == 0 {
                        // Many commands are one word; a `Vec` would start at four.
                        cur.words.reserve_exact(1);
                    }
                    cur.words.push(word);
                }
                Token::Redir(mut redir) => {
                    cur.nested.append(&mut redir.target.nested);
                    let body = redir
                        .heredoc
                        .and_then(|i| self.heredocs.get_mut(i))
                        .and_then(Option::take)
                        .map(|mut body| {
                            cur.nested.append(&mut body.nested);
                            body
                        });
                    if in_patterns || cur.skip == Skip::Test {
                        continue;
                    }
                    cur.cover(redir.span.clone());
                    cur.redirs.push(Redirect {
                        fd: redir.fd,
                        op: redir.op,
                        target: redir.target,
                        body,
                    });
                }
                Token::Op(op, _) => {
                    if in_patterns {
                        match op {
                            Op::Close => {
                                if let Some(Frame::Case { patterns }) = frames.last_mut() {
                                    *patterns = false;
                                }
                            }
                            Op::Pipe | Op::Open | Op::Newline => {}
                            _ => {
                                failed = Some(format!(
                                    "a syntax error in a `case` pattern at byte {at}"
                                ));
                                break;
                            }
                        }
                        continue;
                    }
                    match (cur.skip, op) {
                        (Skip::Test, _) => continue,
                        (Skip::Line, Op::Open) => {
                            cur.parens += 1;
                            continue;
                        }
                        (Skip::Line, Op::Close) if cur.parens > 0 => {
                            cur.parens -= 1;
                            continue;
                        }
                        (Skip::Line, _) if cur.parens > 0 => continue,
                        (Skip::CaseWord, Op::Newline) => continue,
                        _ => {}
                    }
                    match op {
                        Op::Semi | Op::Newline | Op::Amp | Op::And | Op::Or => {
                            self.finish(&mut cur, text, depth, stdin);
                            stdin = Stdin::Inherited;
                            closed = false;
                        }
                        Op::Pipe | Op::PipeErr => {
                            let index = self.finish_piped(&mut cur, text, depth, stdin);
                            if index.is_none() && !closed {
                                failed =
                                    Some(format!("a `|` with no command before it at byte {at}"));
                                break;
                            }
                            stdin = Stdin::Pipe(index);
                            closed = false;
                        }
                        Op::Open if !cur.is_empty() => {
                            // `name ( )`: a function definition; its body
                            // is listed like any commands.
                            let definition = cur.words.len() == 1
                                && cur.assigns.is_empty()
                                && matches!(tokens.peek(), Some(Token::Op(Op::Close, _)));
                            if !definition {
                                failed =
                                    Some(format!("a `(` after a command's words at byte {at}"));
                                break;
                            }
                            tokens.next();
                            cur.words.clear();
                            cur.span = None;
                        }
                        Op::Open => {
                            frames.push(Frame::Subshell);
                            if depth + frames.len() > MAX_DEPTH {
                                failed =
                                    Some(format!("commands nested deeper than {MAX_DEPTH} levels"));
                                break;
                            }
                            self.items.push(Item::Enter);
                        }
                        Op::Close => {
                            self.finish(&mut cur, text, depth, stdin);
                            stdin = Stdin::Inherited;
                            if frames.last() != Some(&Frame::Subshell) {
                                failed = Some(format!("unbalanced `)` at byte {at}"));
                                break;
                            }
                            frames.pop();
                            self.items.push(Item::Leave);
                            closed = true;
                        }
                        Op::CaseEnd => {
                            self.finish(&mut cur, text, depth, stdin);
                            stdin = Stdin::Inherited;
                            let Some(Frame::Case { patterns }) = frames.last_mut() else {
                                failed = Some(format!("a `;;` outside a `case` at byte {at}"));
                                break;
                            };
                            *patterns = true;
                        }
                    }
                    if frames.len() + depth > MAX_DEPTH {
                        failed = Some(format!("commands nested deeper than {MAX_DEPTH} levels"));
                        break;
                    }
                }
            }
        }
        self.finish(&mut cur, text, depth, stdin);
        // Close the scopes left open, so the analyser's stay balanced.
        for frame in frames.iter().rev() {
            if *frame == Frame::Subshell {
                self.items.push(Item::Leave);
            }
        }
        if let Some(why) = failed {
            self.fail(why);
        } else if let Some(frame) = frames.last() {
            self.fail(match frame {
                Frame::Subshell => "unbalanced `(`",
                Frame::Group => "unterminated `{`",
                Frame::Case { .. } => "unterminated `case`",
            });
        }
    }

    /// Ends the current command: lists it (unless it is not a command) and
    /// then the substitutions in it. Returns its index.
    fn finish(&mut self, cur: &mut Current, text: &Rc<str>, depth: usize, stdin: Stdin) {
        self.end_command(cur, text, depth, stdin, false);
    }

    /// [`finish`](Self::finish) for a command whose output is piped on.
    fn finish_piped(
        &mut self,
        cur: &mut Current,
        text: &Rc<str>,
        depth: usize,
        stdin: Stdin,
    ) -> Option<usize> {
        self.end_command(cur, text, depth, stdin, true)
    }

    fn end_command(
        &mut self,
        cur: &mut Current,
        text: &Rc<str>,
        depth: usize,
        stdin: Stdin,
        piped: bool,
    ) -> Option<usize> {
        let cur = std::mem::take(cur);
        let mut index = None;
        let command = !cur.words.is_empty() || !cur.assigns.is_empty() || !cur.redirs.is_empty();
        let inert = !piped
            && cur.assigns.is_empty()
            && !cur.redirs.iter().any(|r| r.op.writes())
            && cur
                .words
                .first()
                .and_then(Word::literal)
                .is_some_and(|program| !(self.interesting)(program));
        if cur.skip == Skip::No && command && !inert {
            self.items.push(Item::Command(Box::new(Simple {
                text: Rc::clone(text),
                span: cur.span,
                assigns: cur.assigns,
                words: cur.words,
                redirs: cur.redirs,
                stdin,
                depth,
            })));
            index = Some(self.items.len() - 1);
        }
        for nested in cur.nested {
            self.items.push(Item::Enter);
            self.list(nested.tokens, &nested.text, depth + 1);
            // A scope with nothing in it need not be entered.
            if let Some(Item::Enter) = self.items.last() {
                self.items.pop();
            } else {
                self.items.push(Item::Leave);
            }
        }
        index
    }
}

impl Simple {
    /// Its text as written, with each of `masked` (sorted, not
    /// overlapping spans of its words) replaced, trimmed and cut to
    /// [`MAX_PART_CHARS`] characters.
    pub(super) fn part(&self, masked: &[(Range<usize>, String)]) -> String {
        let Some(span) = self.span.clone() else {
            return String::new();
        };
        let mut text = String::new();
        let mut at = span.start;
        for (range, replacement) in masked {
            if range.start < at || range.end > span.end {
                continue;
            }
            text.push_str(self.text.get(at..range.start).unwrap_or_default());
            text.push_str(replacement);
            at = range.end;
        }
        text.push_str(self.text.get(at..span.end).unwrap_or_default());
        excerpt(&text)
    }
}

/// `text`, trimmed, cut to [`MAX_PART_CHARS`] characters.
fn excerpt(text: &str) -> String {
    let part = text.trim();
    if part.len() <= MAX_PART_CHARS || part.char_indices().nth(MAX_PART_CHARS).is_none() {
        return part.to_owned();
    }
    let cut = part
        .char_indices()
        .nth(MAX_PART_CHARS - 1)
        .map_or(part.len(), |(i, _)| i);
    format!("{}…", part.get(..cut).unwrap_or_default().trim_end())
}
