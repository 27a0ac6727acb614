//! The tokenizer: a command line's text → words, operators and
//! redirections, each with its span, in one pass.
//!
//! Every byte is looked at a bounded number of times: a quote, an escape or
//! an expansion is scanned once, left to right, and nothing backtracks.
//! A command substitution `$(…)` is tokenized in the same pass, by a
//! recursive call whose depth is bounded by [`MAX_DEPTH`]; the text of a
//! backquoted substitution and an unquoted heredoc body are first unescaped
//! and then tokenized once more, one level deeper. Every level counts
//! towards the same limit, so the whole costs at most `MAX_DEPTH + 1` passes
//! over any byte.

use std::ops::Range;
use std::rc::Rc;

use super::MAX_DEPTH;

/// A piece of a word, after quote removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part {
    /// Text the program receives as it is (quoted or not).
    Lit(String),
    /// `$NAME` or `${NAME}`, as written (see [`param_name`]).
    Param(String),
    /// Any other expansion, as written: `${x:-y}`, `$1`, `$@`, `$((…))`,
    /// an array assignment's `(…)`.
    Other(String),
    /// A command or process substitution, as written: `$(…)`, `` `…` ``,
    /// `<(…)`, `>(…)`.
    Subst(String),
}

/// The name of a `Part::Param` (`$NAME` or `${NAME}`).
pub(super) fn param_name(raw: &str) -> &str {
    let name = raw.strip_prefix('$').unwrap_or(raw);
    match name.strip_prefix('{') {
        Some(braced) => braced.strip_suffix('}').unwrap_or(braced),
        None => name,
    }
}

/// A word's pieces: most words are one piece, kept without a `Vec`.
#[derive(Debug, Clone, Default)]
pub(super) enum Parts {
    #[default]
    None,
    One(Part),
    Many(Vec<Part>),
}

impl Parts {
    fn push(&mut self, part: Part) {
        *self = match std::mem::take(self) {
            Parts::None => Parts::One(part),
            Parts::One(first) => Parts::Many(vec![first, part]),
            Parts::Many(mut parts) => {
                parts.push(part);
                Parts::Many(parts)
            }
        };
    }

    fn last_mut(&mut self) -> Option<&mut Part> {
        match self {
            Parts::None => None,
            Parts::One(part) => Some(part),
            Parts::Many(parts) => parts.last_mut(),
        }
    }
}

impl std::ops::Deref for Parts {
    type Target = [Part];

    fn deref(&self) -> &[Part] {
        match self {
            Parts::None => &[],
            Parts::One(part) => std::slice::from_ref(part),
            Parts::Many(parts) => parts,
        }
    }
}

/// One word of a command, quotes removed.
#[derive(Debug, Clone, Default)]
pub(super) struct Word {
    /// Where it is in its text.
    pub(super) span: Range<usize>,
    /// Its pieces, in order; adjacent literal pieces are merged.
    pub(super) parts: Parts,
    /// Whether any of it was quoted or escaped.
    pub(super) quoted: bool,
    /// Whether it holds an unquoted glob (`*`, `?`, `[`) or brace expansion.
    pub(super) glob: bool,
    /// Whether it starts with an unquoted `~` (or has one right after an
    /// assignment's `=`).
    pub(super) tilde: bool,
    /// The length of a leading unquoted `NAME=` or `NAME+=`.
    pub(super) assignment: Option<usize>,
    /// The command substitutions in it, tokenized.
    pub(super) nested: Vec<Nested>,
}

/// The commands of one substitution (or heredoc body), tokenized, with the
/// text its spans refer to.
#[derive(Debug, Clone)]
pub(super) struct Nested {
    pub(super) tokens: Vec<Token>,
    pub(super) text: Rc<str>,
}

/// A control operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// `;`
    Semi,
    /// `&`
    Amp,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `|`
    Pipe,
    /// `|&`
    PipeErr,
    /// A newline outside quotes.
    Newline,
    /// `(`
    Open,
    /// `)`
    Close,
    /// `;;`, `;&` or `;;&` (ends a `case` item).
    CaseEnd,
}

/// A redirection operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RedirOp {
    /// `<`
    In,
    /// `>`
    Out,
    /// `>>`
    Append,
    /// `>|`
    Clobber,
    /// `&>`
    OutErr,
    /// `&>>`
    AppendErr,
    /// `<>`
    ReadWrite,
    /// `<&`
    DupIn,
    /// `>&`
    DupOut,
    /// `<<` or `<<-`
    Heredoc,
    /// `<<<`
    HereString,
}

impl RedirOp {
    /// Whether it opens its target for writing.
    pub(super) fn writes(self) -> bool {
        matches!(
            self,
            RedirOp::Out
                | RedirOp::Append
                | RedirOp::Clobber
                | RedirOp::OutErr
                | RedirOp::AppendErr
                | RedirOp::ReadWrite
        )
    }
}

/// A redirection: its operator and target word (a heredoc's delimiter).
#[derive(Debug, Clone)]
pub(super) struct Redir {
    pub(super) span: Range<usize>,
    /// The file descriptor written before the operator (`2>`), if any.
    pub(super) fd: Option<u32>,
    pub(super) op: RedirOp,
    pub(super) target: Word,
    /// For a heredoc: its index in [`Lexed::heredocs`].
    pub(super) heredoc: Option<usize>,
}

/// A token.
#[derive(Debug, Clone)]
pub(super) enum Token {
    Word(Word),
    Op(Op, Range<usize>),
    /// Boxed: rare, and a token stays small.
    Redir(Box<Redir>),
}

impl Token {
    pub(super) fn span(&self) -> Range<usize> {
        match self {
            Token::Word(w) => w.span.clone(),
            Token::Op(_, span) => span.clone(),
            Token::Redir(r) => r.span.clone(),
        }
    }
}

/// A text's tokens, its heredoc bodies, and why lexing stopped early.
#[derive(Debug)]
pub(super) struct Lexed {
    pub(super) tokens: Vec<Token>,
    /// Each heredoc's body (as a word: an unquoted delimiter lets it expand),
    /// `None` when it was never read.
    pub(super) heredocs: Vec<Option<Word>>,
    /// Set when the text could not be tokenized to its end: the tokens are
    /// those before the trouble.
    pub(super) error: Option<String>,
}

/// Tokenizes `text`, which sits `depth` levels deep (0 for the command
/// line itself).
pub(super) fn lex(text: &Rc<str>, depth: usize) -> Lexed {
    let mut heredocs = Vec::new();
    let mut tokens = Vec::new();
    let mut lexer = Lexer {
        rc: text,
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth,
        heredocs: &mut heredocs,
        pending: Vec::new(),
    };
    let result = lexer
        .commands(&mut tokens, false)
        .and_then(|()| lexer.no_pending());
    if result.is_err() {
        // The command being read when the text broke off is not a command
        // that can be told: keep only those before it.
        let keep = tokens
            .iter()
            .rposition(|t| {
                matches!(
                    t,
                    Token::Op(
                        Op::Semi
                            | Op::Newline
                            | Op::Amp
                            | Op::And
                            | Op::Or
                            | Op::Pipe
                            | Op::PipeErr,
                        _
                    )
                )
            })
            .map_or(0, |i| i + 1);
        tokens.truncate(keep);
    }
    Lexed {
        tokens,
        heredocs,
        error: result.err(),
    }
}

type Lexing<T> = Result<T, String>;

/// Where the tokenizer is in `case … esac` commands, so that the `)` ending
/// a pattern is not taken for the end of a `$(…)` (the parser reads the
/// structure again; this only has to tell the `)`s apart).
#[derive(Debug, Default)]
struct Cases {
    /// The open `case`s, innermost last.
    open: Vec<CaseAt>,
    /// Whether the next word is in a command's first position.
    command_start: bool,
    /// Whether a token has been seen (the text's start is a command's).
    started: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaseAt {
    /// After `case`: its word.
    Word,
    /// Before `in`.
    In,
    /// Reading an item's patterns, up to `)`.
    Patterns,
    /// In an item's commands, up to `;;` or `esac`.
    Body,
}

impl Cases {
    fn in_patterns(&self) -> bool {
        self.open.last() == Some(&CaseAt::Patterns)
    }

    fn patterns_end(&mut self) {
        if let Some(top) = self.open.last_mut() {
            *top = CaseAt::Body;
        }
    }

    fn at_command_start(&self) -> bool {
        self.command_start || !self.started
    }

    /// Follows one token (a `(` or `)` in patterns is handled before).
    fn see(&mut self, token: &Token) {
        let start = self.at_command_start();
        self.started = true;
        match token {
            Token::Word(word) => {
                let plain = word.plain();
                self.command_start = false;
                match self.open.last().copied() {
                    Some(CaseAt::Word) => {
                        if let Some(top) = self.open.last_mut() {
                            *top = CaseAt::In;
                        }
                    }
                    Some(CaseAt::In) => {
                        if plain == Some("in")
                            && let Some(top) = self.open.last_mut()
                        {
                            *top = CaseAt::Patterns;
                        }
                    }
                    Some(CaseAt::Patterns) => {
                        if plain == Some("esac") {
                            self.open.pop();
                        }
                    }
                    _ if !start => {}
                    top => match plain {
                        Some("case") => self.open.push(CaseAt::Word),
                        Some("esac") if top == Some(CaseAt::Body) => {
                            self.open.pop();
                        }
                        Some(
                            "then" | "do" | "else" | "elif" | "if" | "while" | "until" | "!" | "{"
                            | "time",
                        ) => self.command_start = true,
                        _ => {}
                    },
                }
            }
            Token::Op(op, _) => {
                self.command_start = true;
                if *op == Op::CaseEnd
                    && let Some(top) = self.open.last_mut()
                    && *top == CaseAt::Body
                {
                    *top = CaseAt::Patterns;
                }
            }
            Token::Redir(_) => {}
        }
    }
}

/// A heredoc whose body starts after the next newline.
struct Pending {
    index: usize,
    delimiter: String,
    strip_tabs: bool,
    expands: bool,
}

struct Lexer<'t, 'h> {
    /// The text, shared with the token lists nested in it.
    rc: &'t Rc<str>,
    text: &'t str,
    /// The input: `text`'s bytes up to where this lexer stops (a
    /// backquoted substitution or a heredoc body is read in place).
    bytes: &'t [u8],
    pos: usize,
    /// Substitution levels around the current position, the text's own
    /// level included.
    depth: usize,
    heredocs: &'h mut Vec<Option<Word>>,
    pending: Vec<Pending>,
}

/// Bytes that end an unquoted word.
fn ends_word(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')'
    )
}

/// Bytes that a run of ordinary word characters stops at.
fn special_in_word(b: u8) -> bool {
    ends_word(b)
        || matches!(
            b,
            b'\\' | b'\'' | b'"' | b'$' | b'`' | b'*' | b'?' | b'[' | b'{' | b'}' | b'~'
        )
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `text` is a shell variable name.
pub(super) fn is_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.first().is_some_and(|&b| is_name_start(b)) && bytes.iter().all(|&b| is_name_byte(b))
}

/// The length of a leading `NAME=` or `NAME+=` in `bytes`.
fn assignment_len(bytes: &[u8]) -> Option<usize> {
    if !bytes.first().is_some_and(|&b| is_name_start(b)) {
        return None;
    }
    let name = bytes.iter().take_while(|&&b| is_name_byte(b)).count();
    match (bytes.get(name), bytes.get(name + 1)) {
        (Some(b'='), _) => Some(name + 1),
        (Some(b'+'), Some(b'=')) => Some(name + 2),
        _ => None,
    }
}

/// A word being built.
struct Builder {
    start: usize,
    parts: Parts,
    quoted: bool,
    glob: bool,
    tilde: bool,
    brace: bool,
    assignment: Option<usize>,
    nested: Vec<Nested>,
}

impl Builder {
    fn new(start: usize) -> Builder {
        Builder {
            start,
            parts: Parts::None,
            quoted: false,
            glob: false,
            tilde: false,
            brace: false,
            assignment: None,
            nested: Vec::new(),
        }
    }

    fn lit(&mut self, text: &str) {
        if let Some(Part::Lit(last)) = self.parts.last_mut() {
            last.push_str(text);
        } else if !text.is_empty() {
            self.parts.push(Part::Lit(text.to_owned()));
        }
    }

    fn finish(self, end: usize) -> Word {
        Word {
            span: self.start..end,
            parts: self.parts,
            quoted: self.quoted,
            glob: self.glob,
            tilde: self.tilde,
            assignment: self.assignment,
            nested: self.nested,
        }
    }
}

impl<'t> Lexer<'t, '_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn end(&self) -> usize {
        self.bytes.len()
    }

    fn slice(&self, range: Range<usize>) -> &'t str {
        self.text.get(range).unwrap_or_default()
    }

    /// The character at the current position (a whole UTF-8 sequence).
    fn char_here(&self) -> &str {
        let len = self
            .text
            .get(self.pos..self.end())
            .and_then(|rest| rest.chars().next())
            .map_or(1, char::len_utf8);
        self.slice(self.pos..self.pos + len)
    }

    /// Moves past a run of bytes for which `stop` is false; returns it.
    fn run(&mut self, stop: impl Fn(u8) -> bool) -> Range<usize> {
        let start = self.pos;
        let len = self
            .bytes
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&b| !stop(b))
            .count();
        self.pos += len;
        start..self.pos
    }

    /// One more level of nesting, refused past [`MAX_DEPTH`].
    fn enter(&mut self) -> Lexing<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("commands nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn no_pending(&self) -> Lexing<()> {
        match self.pending.first() {
            Some(p) => Err(format!(
                "unterminated heredoc: no line `{}` ends it",
                p.delimiter
            )),
            None => Ok(()),
        }
    }

    /// Tokens up to the end of the text or, with `close`, up to the `)`
    /// that closes a `$(` (consumed).
    fn commands(&mut self, out: &mut Vec<Token>, close: bool) -> Lexing<()> {
        let mut parens = 0usize;
        let mut cases = Cases::default();
        loop {
            let emitted = out.len();
            let Some(b) = self.peek() else {
                return if close {
                    Err("unterminated `$(`".into())
                } else {
                    Ok(())
                };
            };
            let start = self.pos;
            match b {
                b' ' | b'\t' => self.pos += 1,
                b'\\' if self.peek_at(1) == Some(b'\n') => self.pos += 2,
                b'#' => {
                    self.run(|b| b == b'\n');
                }
                b'\n' => {
                    self.op(out, Op::Newline, 1);
                    self.heredoc_bodies()?;
                }
                b';' => match (self.peek_at(1), self.peek_at(2)) {
                    (Some(b';'), Some(b'&')) => self.op(out, Op::CaseEnd, 3),
                    (Some(b';' | b'&'), _) => self.op(out, Op::CaseEnd, 2),
                    _ => self.op(out, Op::Semi, 1),
                },
                b'&' => {
                    match (self.peek_at(1), self.peek_at(2)) {
                        (Some(b'&'), _) => self.op(out, Op::And, 2),
                        (Some(b'>'), Some(b'>')) => out.push(Token::Redir(Box::new(
                            self.redirect(None, RedirOp::AppendErr, 3)?,
                        ))),
                        (Some(b'>'), _) => out.push(Token::Redir(Box::new(self.redirect(
                            None,
                            RedirOp::OutErr,
                            2,
                        )?))),
                        _ => self.op(out, Op::Amp, 1),
                    }
                }
                b'|' => match self.peek_at(1) {
                    Some(b'|') => self.op(out, Op::Or, 2),
                    Some(b'&') => self.op(out, Op::PipeErr, 2),
                    _ => self.op(out, Op::Pipe, 1),
                },
                b'(' if cases.in_patterns() => self.op(out, Op::Open, 1),
                b')' if cases.in_patterns() => {
                    // A `case` pattern's `)`, not the end of a `$(`.
                    cases.patterns_end();
                    self.op(out, Op::Close, 1);
                }
                b'(' => {
                    parens += 1;
                    // Subshells count towards the nesting limit too (the
                    // parser would refuse them; no need to read on).
                    if self.depth + parens > MAX_DEPTH {
                        return Err(format!("commands nested deeper than {MAX_DEPTH} levels"));
                    }
                    self.op(out, Op::Open, 1);
                }
                b')' => {
                    if close && parens == 0 {
                        self.pos += 1;
                        return Ok(());
                    }
                    parens = parens.saturating_sub(1);
                    self.op(out, Op::Close, 1);
                }
                b'<' | b'>' if self.peek_at(1) == Some(b'(') => {
                    out.push(Token::Word(self.word()?));
                }
                b'<' | b'>' => out.push(Token::Redir(Box::new(self.redirection(None)?))),
                b'0'..=b'9' => {
                    let digits = self
                        .bytes
                        .get(start..)
                        .unwrap_or_default()
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                    match self.peek_at(digits) {
                        Some(b'<' | b'>') if self.peek_at(digits + 1) != Some(b'(') => {
                            let fd = self.slice(start..start + digits).parse().ok();
                            self.pos += digits;
                            let mut redir = self.redirection(fd)?;
                            redir.span.start = start;
                            out.push(Token::Redir(Box::new(redir)));
                        }
                        _ => out.push(Token::Word(self.word()?)),
                    }
                }
                _ => out.push(Token::Word(self.word()?)),
            }
            for token in out.get(emitted..).unwrap_or_default() {
                cases.see(token);
            }
        }
    }

    fn op(&mut self, out: &mut Vec<Token>, op: Op, len: usize) {
        let start = self.pos;
        self.pos += len;
        out.push(Token::Op(op, start..self.pos));
    }

    /// A redirection starting at `<` or `>`.
    fn redirection(&mut self, fd: Option<u32>) -> Lexing<Redir> {
        let next = (self.peek_at(1), self.peek_at(2));
        let (op, len) = if self.peek() == Some(b'<') {
            match next {
                (Some(b'<'), Some(b'<')) => (RedirOp::HereString, 3),
                (Some(b'<'), _) => (RedirOp::Heredoc, 2),
                (Some(b'&'), _) => (RedirOp::DupIn, 2),
                (Some(b'>'), _) => (RedirOp::ReadWrite, 2),
                _ => (RedirOp::In, 1),
            }
        } else {
            match next {
                (Some(b'>'), _) => (RedirOp::Append, 2),
                (Some(b'|'), _) => (RedirOp::Clobber, 2),
                (Some(b'&'), _) => (RedirOp::DupOut, 2),
                _ => (RedirOp::Out, 1),
            }
        };
        self.redirect(fd, op, len)
    }

    /// The operator (`len` bytes at the current position) and its target.
    fn redirect(&mut self, fd: Option<u32>, op: RedirOp, len: usize) -> Lexing<Redir> {
        let start = self.pos;
        self.pos += len;
        let strip_tabs = op == RedirOp::Heredoc && self.peek() == Some(b'-');
        if strip_tabs {
            self.pos += 1;
        }
        loop {
            match (self.peek(), self.peek_at(1)) {
                (Some(b' ' | b'\t'), _) => self.pos += 1,
                (Some(b'\\'), Some(b'\n')) => self.pos += 2,
                _ => break,
            }
        }
        let starts_word = match (self.peek(), self.peek_at(1)) {
            (None, _) => false,
            (Some(b'<' | b'>'), Some(b'(')) => true,
            (Some(b), _) => !ends_word(b),
        };
        if !starts_word {
            return Err(format!(
                "a redirection `{}` without a target",
                self.slice(start..self.pos).trim()
            ));
        }
        let target = self.word()?;
        let heredoc = (op == RedirOp::Heredoc).then(|| {
            let index = self.heredocs.len();
            self.heredocs.push(None);
            self.pending.push(Pending {
                index,
                delimiter: target.value(),
                strip_tabs,
                expands: !target.quoted,
            });
            index
        });
        Ok(Redir {
            span: start..self.pos,
            fd,
            op,
            target,
            heredoc,
        })
    }

    /// Reads the bodies of the heredocs opened on the line just ended.
    fn heredoc_bodies(&mut self) -> Lexing<()> {
        for pending in std::mem::take(&mut self.pending) {
            let mut raw = String::new();
            let body_start = self.pos;
            let mut body_end = self.pos;
            loop {
                if self.pos >= self.end() {
                    return Err(format!(
                        "unterminated heredoc: no line `{}` ends it",
                        pending.delimiter
                    ));
                }
                let line = self.run(|b| b == b'\n');
                if self.peek() == Some(b'\n') {
                    self.pos += 1;
                }
                let line = self.slice(line);
                let line = if pending.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                if line == pending.delimiter {
                    break;
                }
                if pending.strip_tabs {
                    raw.push_str(line);
                    raw.push('\n');
                }
                body_end = self.pos;
            }
            // Without `<<-` the body is the text's own lines, read in place.
            let owned: Option<Rc<str>> = pending.strip_tabs.then(|| Rc::from(raw));
            let (rc, start, end) = match &owned {
                Some(rc) => (rc, 0, rc.len()),
                None => (self.rc, body_start, body_end),
            };
            let body = if pending.expands {
                let mut sub = Lexer {
                    rc,
                    text: rc,
                    bytes: rc.as_bytes().get(..end).unwrap_or_default(),
                    pos: start,
                    depth: self.depth,
                    heredocs: &mut *self.heredocs,
                    pending: Vec::new(),
                };
                let mut body = Builder::new(0);
                sub.double(&mut body, true)?;
                body.finish(sub.pos)
            } else {
                let mut body = Builder::new(start);
                body.lit(rc.get(start..end).unwrap_or_default());
                body.quoted = true;
                body.finish(end)
            };
            if let Some(slot) = self.heredocs.get_mut(pending.index) {
                *slot = Some(body);
            }
        }
        Ok(())
    }

    /// One word, starting at the current position.
    fn word(&mut self) -> Lexing<Word> {
        let start = self.pos;
        let mut w = Builder::new(start);
        w.assignment = assignment_len(self.bytes.get(start..).unwrap_or_default());
        while let Some(b) = self.peek() {
            match b {
                b'<' | b'>' if self.peek_at(1) == Some(b'(') && self.pos == start => {
                    self.substitution(&mut w, 2)?;
                }
                b'(' if w.assignment.is_some_and(|n| start + n == self.pos) => {
                    self.array(&mut w)?;
                }
                b if ends_word(b) => break,
                b'\\' => {
                    w.quoted = true;
                    match self.peek_at(1) {
                        Some(b'\n') => self.pos += 2,
                        None => {
                            w.lit("\\");
                            self.pos += 1;
                        }
                        Some(_) => {
                            self.pos += 1;
                            let c = self.char_here().to_owned();
                            self.pos += c.len().max(1);
                            w.lit(&c);
                        }
                    }
                }
                b'\'' => self.single(&mut w)?,
                b'"' => {
                    self.pos += 1;
                    w.quoted = true;
                    self.double(&mut w, false)?;
                }
                b'$' => self.dollar(&mut w, false)?,
                b'`' => self.backquote(&mut w, false)?,
                b'*' | b'?' | b'[' | b'{' | b'}' | b'~' => {
                    match b {
                        b'{' => w.brace = true,
                        b'}' if w.brace => w.glob = true,
                        b'~' if self.pos == start
                            || w.assignment.is_some_and(|n| start + n == self.pos) =>
                        {
                            w.tilde = true;
                        }
                        b'*' | b'?' | b'[' => w.glob = true,
                        _ => {}
                    }
                    self.pos += 1;
                    w.lit(self.slice(self.pos - 1..self.pos));
                }
                _ => {
                    let run = self.run(special_in_word);
                    w.lit(self.slice(run));
                }
            }
        }
        Ok(w.finish(self.pos))
    }

    /// `'…'`
    fn single(&mut self, w: &mut Builder) -> Lexing<()> {
        self.pos += 1;
        let body = self.run(|b| b == b'\'');
        if self.peek() != Some(b'\'') {
            return Err("unterminated single quote".into());
        }
        self.pos += 1;
        w.quoted = true;
        w.lit(self.slice(body));
        Ok(())
    }

    /// The inside of `"…"` (the opening quote already passed), or with
    /// `heredoc` a whole unquoted heredoc body: `\` escapes only `$`, `` ` ``,
    /// `\`, a newline (and `"` in quotes); `$` and `` ` `` expand.
    fn double(&mut self, w: &mut Builder, heredoc: bool) -> Lexing<()> {
        loop {
            match self.peek() {
                None if heredoc => return Ok(()),
                None => return Err("unterminated double quote".into()),
                Some(b'"') if !heredoc => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => match self.peek_at(1) {
                    Some(b'\n') => self.pos += 2,
                    Some(c @ (b'$' | b'`' | b'\\')) => {
                        w.lit(if c == b'$' {
                            "$"
                        } else if c == b'`' {
                            "`"
                        } else {
                            "\\"
                        });
                        self.pos += 2;
                    }
                    Some(b'"') if !heredoc => {
                        w.lit("\"");
                        self.pos += 2;
                    }
                    _ => {
                        w.lit("\\");
                        self.pos += 1;
                    }
                },
                Some(b'$') => self.dollar(w, true)?,
                Some(b'`') => self.backquote(w, !heredoc)?,
                Some(_) => {
                    let run = self.run(|b| matches!(b, b'"' | b'\\' | b'$' | b'`'));
                    w.lit(self.slice(run));
                    if heredoc && self.peek() == Some(b'"') {
                        w.lit("\"");
                        self.pos += 1;
                    }
                }
            }
        }
    }

    /// Whatever starts with `$`.
    fn dollar(&mut self, w: &mut Builder, in_quotes: bool) -> Lexing<()> {
        let start = self.pos;
        match self.peek_at(1) {
            Some(b'\'') if !in_quotes => self.ansi_c(w),
            Some(b'"') if !in_quotes => {
                // `$"…"`: a translated string, quoted like `"…"`.
                self.pos += 2;
                w.quoted = true;
                self.double(w, false)
            }
            Some(b'(') if self.peek_at(2) == Some(b'(') => self.arithmetic(w),
            Some(b'(') => self.substitution(w, 2),
            Some(b'{') => self.braced(w, in_quotes),
            Some(b) if is_name_start(b) => {
                self.pos += 1;
                self.run(|b| !is_name_byte(b));
                let raw = self.slice(start..self.pos).to_owned();
                w.parts.push(Part::Param(raw));
                Ok(())
            }
            Some(b'0'..=b'9' | b'@' | b'*' | b'#' | b'?' | b'$' | b'!' | b'-') => {
                self.pos += 2;
                w.parts
                    .push(Part::Other(self.slice(start..self.pos).to_owned()));
                Ok(())
            }
            _ => {
                self.pos += 1;
                w.lit("$");
                Ok(())
            }
        }
    }

    /// `$'…'`: ANSI-C quoting, escapes decoded.
    fn ansi_c(&mut self, w: &mut Builder) -> Lexing<()> {
        self.pos += 2;
        w.quoted = true;
        let mut bytes = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err("unterminated `$'` quote".into());
            };
            self.pos += 1;
            match b {
                b'\'' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err("unterminated `$'` quote".into());
                    };
                    self.pos += 1;
                    match e {
                        b'n' => bytes.push(b'\n'),
                        b't' => bytes.push(b'\t'),
                        b'r' => bytes.push(b'\r'),
                        b'a' => bytes.push(7),
                        b'b' => bytes.push(8),
                        b'e' | b'E' => bytes.push(0x1b),
                        b'f' => bytes.push(12),
                        b'v' => bytes.push(11),
                        b'\\' | b'\'' | b'"' | b'?' => bytes.push(e),
                        b'x' => {
                            let v = self.digits(16, 2);
                            bytes.push(u8::try_from(v.unwrap_or(u32::from(b'x'))).unwrap_or(b'?'));
                        }
                        b'u' | b'U' => {
                            let max = if e == b'u' { 4 } else { 8 };
                            let c = self.digits(16, max).and_then(char::from_u32);
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(
                                c.unwrap_or('\u{fffd}').encode_utf8(&mut buf).as_bytes(),
                            );
                        }
                        b'0'..=b'7' => {
                            self.pos -= 1;
                            let v = self.digits(8, 3).unwrap_or(0);
                            bytes.push(u8::try_from(v & 0xff).unwrap_or(b'?'));
                        }
                        b'c' => {
                            if let Some(c) = self.peek() {
                                self.pos += 1;
                                bytes.push(c & 0x1f);
                            }
                        }
                        other => bytes.extend_from_slice(&[b'\\', other]),
                    }
                }
                other => bytes.push(other),
            }
        }
        w.lit(&String::from_utf8_lossy(&bytes));
        Ok(())
    }

    /// Up to `max` digits in `radix` at the current position, consumed.
    fn digits(&mut self, radix: u32, max: usize) -> Option<u32> {
        let mut value: Option<u32> = None;
        for _ in 0..max {
            let Some(d) = self.peek().and_then(|b| char::from(b).to_digit(radix)) else {
                break;
            };
            value = Some(value.unwrap_or(0).wrapping_mul(radix).wrapping_add(d));
            self.pos += 1;
        }
        value
    }

    /// `$(…)`, `<(…)` or `>(…)` (`open` bytes before the commands).
    fn substitution(&mut self, w: &mut Builder, open: usize) -> Lexing<()> {
        let start = self.pos;
        self.pos += open;
        self.enter()?;
        // Most substitutions are one short command: start small.
        let mut tokens = Vec::with_capacity(1);
        self.commands(&mut tokens, true)?;
        self.depth -= 1;
        w.parts
            .push(Part::Subst(self.slice(start..self.pos).to_owned()));
        w.nested.push(Nested {
            tokens,
            text: Rc::clone(self.rc),
        });
        Ok(())
    }

    /// `` `…` ``: unescaped, then tokenized as a text of its own (in
    /// place when there was nothing to unescape).
    fn backquote(&mut self, w: &mut Builder, in_quotes: bool) -> Lexing<()> {
        let start = self.pos;
        self.pos += 1;
        // Where it ends, and whether a backslash escapes anything in it.
        let mut escapes = false;
        loop {
            match self.peek() {
                None => return Err("unterminated backquote".into()),
                Some(b'`') => break,
                Some(b'\\') => {
                    escapes |= matches!(self.peek_at(1), Some(b'$' | b'`' | b'\\'))
                        || (in_quotes && self.peek_at(1) == Some(b'"'));
                    self.pos = (self.pos + 2).min(self.end());
                }
                Some(_) => {
                    self.run(|b| b == b'`' || b == b'\\');
                }
            }
        }
        let close = self.pos;
        self.pos += 1;
        let text: Option<Rc<str>> = if escapes {
            let mut inner = String::with_capacity(close - start);
            let mut chars = self.slice(start + 1..close).chars().peekable();
            while let Some(c) = chars.next() {
                match (c, chars.peek()) {
                    ('\\', Some(&e))
                        if matches!(e, '$' | '`' | '\\') || (in_quotes && e == '"') =>
                    {
                        inner.push(e);
                        chars.next();
                    }
                    (c, _) => inner.push(c),
                }
            }
            Some(Rc::from(inner))
        } else {
            None
        };
        let (rc, from, to) = match &text {
            Some(rc) => (rc, 0, rc.len()),
            None => (self.rc, start + 1, close),
        };
        self.enter()?;
        let mut tokens = Vec::with_capacity(1);
        let mut sub = Lexer {
            rc,
            text: rc,
            bytes: rc.as_bytes().get(..to).unwrap_or_default(),
            pos: from,
            depth: self.depth,
            heredocs: &mut *self.heredocs,
            pending: Vec::new(),
        };
        sub.commands(&mut tokens, false)?;
        sub.no_pending()?;
        self.depth -= 1;
        w.parts
            .push(Part::Subst(self.slice(start..self.pos).to_owned()));
        w.nested.push(Nested {
            tokens,
            text: Rc::clone(rc),
        });
        Ok(())
    }

    /// `$((…))`: arithmetic; only the substitutions inside matter.
    fn arithmetic(&mut self, w: &mut Builder) -> Lexing<()> {
        let start = self.pos;
        self.pos += 3;
        self.enter()?;
        let mut scratch = Builder::new(self.pos);
        let mut parens = 0usize;
        loop {
            match self.peek() {
                None => return Err("unterminated `$((`".into()),
                Some(b'(') => {
                    parens += 1;
                    self.pos += 1;
                }
                Some(b')') if parens > 0 => {
                    parens -= 1;
                    self.pos += 1;
                }
                Some(b')') if self.peek_at(1) == Some(b')') => {
                    self.pos += 2;
                    break;
                }
                Some(b')') => {
                    return Err("`$((` closed by a single `)`: not analysed".into());
                }
                Some(b'\\') => self.pos = (self.pos + 2).min(self.end()),
                Some(b'\'') => self.single(&mut scratch)?,
                Some(b'"') => {
                    self.pos += 1;
                    self.double(&mut scratch, false)?;
                }
                Some(b'$') => self.dollar(&mut scratch, true)?,
                Some(b'`') => self.backquote(&mut scratch, false)?,
                Some(_) => {
                    self.run(|b| matches!(b, b'(' | b')' | b'\\' | b'\'' | b'"' | b'$' | b'`'));
                }
            }
        }
        self.depth -= 1;
        w.parts
            .push(Part::Other(self.slice(start..self.pos).to_owned()));
        w.nested.append(&mut scratch.nested);
        Ok(())
    }

    /// `${…}`: a plain `${NAME}` is a parameter; anything else is kept as
    /// written (its substitutions still analysed).
    fn braced(&mut self, w: &mut Builder, in_quotes: bool) -> Lexing<()> {
        let start = self.pos;
        self.pos += 2;
        self.enter()?;
        let mut scratch = Builder::new(self.pos);
        let mut braces = 0usize;
        loop {
            match self.peek() {
                None => return Err("unterminated `${`".into()),
                Some(b'}') if braces == 0 => {
                    self.pos += 1;
                    break;
                }
                Some(b'}') => {
                    braces -= 1;
                    self.pos += 1;
                }
                Some(b'{') => {
                    braces += 1;
                    self.pos += 1;
                }
                Some(b'\\') => self.pos = (self.pos + 2).min(self.end()),
                Some(b'\'') if !in_quotes => self.single(&mut scratch)?,
                // In double quotes a `'` inside `${…}` is an ordinary character.
                Some(b'\'') => self.pos += 1,
                Some(b'"') => {
                    self.pos += 1;
                    self.double(&mut scratch, false)?;
                }
                Some(b'$') => self.dollar(&mut scratch, in_quotes)?,
                Some(b'`') => self.backquote(&mut scratch, in_quotes)?,
                Some(_) => {
                    self.run(|b| matches!(b, b'{' | b'}' | b'\\' | b'\'' | b'"' | b'$' | b'`'));
                }
            }
        }
        self.depth -= 1;
        let raw = self.slice(start..self.pos).to_owned();
        let inside = raw.get(2..raw.len() - 1).unwrap_or_default();
        if is_name(inside) {
            w.parts.push(Part::Param(raw));
        } else {
            w.parts.push(Part::Other(raw));
        }
        w.nested.append(&mut scratch.nested);
        Ok(())
    }

    /// `NAME=(…)`: an array assignment's list, kept as written.
    fn array(&mut self, w: &mut Builder) -> Lexing<()> {
        let start = self.pos;
        self.pos += 1;
        let mut scratch = Builder::new(self.pos);
        let mut parens = 0usize;
        loop {
            match self.peek() {
                None => return Err("unterminated array assignment `(`".into()),
                Some(b')') if parens == 0 => {
                    self.pos += 1;
                    break;
                }
                Some(b')') => {
                    parens -= 1;
                    self.pos += 1;
                }
                Some(b'(') => {
                    parens += 1;
                    self.pos += 1;
                }
                Some(b'\\') => self.pos = (self.pos + 2).min(self.end()),
                Some(b'\'') => self.single(&mut scratch)?,
                Some(b'"') => {
                    self.pos += 1;
                    self.double(&mut scratch, false)?;
                }
                Some(b'$') => self.dollar(&mut scratch, false)?,
                Some(b'`') => self.backquote(&mut scratch, false)?,
                Some(_) => {
                    self.run(|b| matches!(b, b'(' | b')' | b'\\' | b'\'' | b'"' | b'$' | b'`'));
                }
            }
        }
        w.parts
            .push(Part::Other(self.slice(start..self.pos).to_owned()));
        w.nested.append(&mut scratch.nested);
        Ok(())
    }
}

/// The text that replaces a command substitution when a word is handed to
/// a nested shell (`sh -c`, `eval`): the substitution was analysed where
/// it was written, and its output is unknown, so the nested shell sees a
/// parameter it cannot resolve.
const SUBSTITUTION_PLACEHOLDER: &str = "${PRODGUARD_SUBSTITUTION}";

impl Word {
    /// Its value with expansions as written.
    pub(super) fn value(&self) -> String {
        let mut out = String::new();
        for part in self.parts.iter() {
            out.push_str(match part {
                Part::Lit(s) | Part::Other(s) | Part::Subst(s) | Part::Param(s) => s,
            });
        }
        out
    }

    /// Its text when it was written without quotes or expansions (keywords
    /// such as `{`, `if`, `esac` count only then).
    pub(super) fn plain(&self) -> Option<&str> {
        if self.quoted {
            return None;
        }
        match &*self.parts {
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Its text when the program receives exactly that: no expansion, no
    /// glob, no tilde (quotes allowed).
    pub(super) fn literal(&self) -> Option<&str> {
        if self.glob || self.tilde {
            return None;
        }
        match &*self.parts {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Its value with every `$NAME` replaced from `lookup`, when every
    /// expansion in it is such a parameter and `lookup` knows each (a
    /// leading `~` needs `HOME`). Globs are left as written.
    pub(super) fn expand(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        let mut out = String::new();
        for part in self.parts.iter() {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Param(raw) => out.push_str(&lookup(param_name(raw))?),
                Part::Other(_) | Part::Subst(_) => return None,
            }
        }
        if self.tilde {
            let rest = out.strip_prefix('~')?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            out = format!("{}{rest}", lookup("HOME")?);
        }
        Some(out)
    }

    /// Its value with the parameters `lookup` knows replaced, every other
    /// expansion as written (for SQL and scripts shown or classified).
    pub(super) fn render(&self, lookup: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for part in self.parts.iter() {
            match part {
                Part::Lit(s) | Part::Other(s) | Part::Subst(s) => out.push_str(s),
                Part::Param(raw) => match lookup(param_name(raw)) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(raw),
                },
            }
        }
        out
    }

    /// What a nested shell (`sh -c`, `eval`) receives: known parameters
    /// replaced, command substitutions replaced by a parameter the nested
    /// analysis cannot resolve (they were analysed here already).
    pub(super) fn shell_text(&self, lookup: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for part in self.parts.iter() {
            match part {
                Part::Lit(s) | Part::Other(s) => out.push_str(s),
                Part::Subst(_) => out.push_str(SUBSTITUTION_PLACEHOLDER),
                Part::Param(raw) => match lookup(param_name(raw)) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(raw),
                },
            }
        }
        out
    }

    /// The word as one argument of a command line a nested shell reads
    /// again (`find -exec`, `ssh HOST ARGS`): its literal text and the
    /// values `lookup` knows single-quoted, other parameters double-quoted
    /// as written, any other expansion a parameter the nested analysis
    /// cannot resolve.
    pub(super) fn quoted_text(&self, lookup: &dyn Fn(&str) -> Option<String>) -> String {
        fn single(out: &mut String, text: &str) {
            out.push('\'');
            out.push_str(&text.replace('\'', "'\\''"));
            out.push('\'');
        }
        let mut out = String::new();
        for part in self.parts.iter() {
            match part {
                Part::Lit(s) => single(&mut out, s),
                Part::Param(raw) => match lookup(param_name(raw)) {
                    Some(value) => single(&mut out, &value),
                    None => {
                        out.push('"');
                        out.push_str(raw);
                        out.push('"');
                    }
                },
                Part::Other(_) | Part::Subst(_) => {
                    out.push('"');
                    out.push_str(SUBSTITUTION_PLACEHOLDER);
                    out.push('"');
                }
            }
        }
        if out.is_empty() {
            out.push_str("''");
        }
        out
    }

    /// Whether the shell splits it into fields: it is unquoted and holds a
    /// parameter whose value (from `lookup`) has a space, tab or newline.
    pub(super) fn splits(&self, lookup: &dyn Fn(&str) -> Option<String>) -> bool {
        !self.quoted
            && self.assignment.is_none()
            && self.parts.iter().any(|p| {
                matches!(p, Part::Param(raw)
                    if lookup(param_name(raw)).is_some_and(|v| v.contains([' ', '\t', '\n'])))
            })
    }

    /// The fields the shell makes of it, as a command line a nested
    /// analysis reads (each field single-quoted): an unquoted word's known
    /// parameters are split at spaces, tabs and newlines (the default
    /// `IFS`), an unknown one stays one unknown field. A quoted word is
    /// one field, as [`quoted_text`](Self::quoted_text).
    pub(super) fn fields_text(&self, lookup: &dyn Fn(&str) -> Option<String>) -> String {
        if self.quoted {
            return self.quoted_text(lookup);
        }
        let mut out = String::new();
        // Whether the field being written has anything in it yet.
        let mut open = false;
        for part in self.parts.iter() {
            let text = match part {
                Part::Lit(s) => s.clone(),
                Part::Param(raw) => match lookup(param_name(raw)) {
                    Some(value) => {
                        for (k, field) in value.split([' ', '\t', '\n']).enumerate() {
                            if k > 0 && open {
                                out.push(' ');
                                open = false;
                            }
                            if !field.is_empty() {
                                out.push('\'');
                                out.push_str(&field.replace('\'', "'\\''"));
                                out.push('\'');
                                open = true;
                            }
                        }
                        continue;
                    }
                    None => format!("\"{raw}\""),
                },
                Part::Other(_) | Part::Subst(_) => format!("\"{SUBSTITUTION_PLACEHOLDER}\""),
            };
            if matches!(part, Part::Lit(_)) {
                out.push('\'');
                out.push_str(&text.replace('\'', "'\\''"));
                out.push('\'');
            } else {
                out.push_str(&text);
            }
            open = true;
        }
        out
    }

    /// The word without its first `len` bytes, which must be literal text
    /// (an option's name before its attached value: `--dbname=app`).
    pub(super) fn suffix(&self, len: usize) -> Option<Word> {
        let Some(Part::Lit(first)) = self.parts.first() else {
            return None;
        };
        let rest = first.get(len..)?;
        let mut parts = Parts::None;
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_owned()));
        }
        for part in self.parts.iter().skip(1) {
            parts.push(part.clone());
        }
        Some(Word {
            span: (self.span.start + len).min(self.span.end)..self.span.end,
            parts,
            quoted: self.quoted,
            glob: self.glob,
            tilde: false,
            assignment: None,
            nested: Vec::new(),
        })
    }
}
