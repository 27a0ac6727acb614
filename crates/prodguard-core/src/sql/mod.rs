//! SQL classification: what a script would do, statement by statement.
//!
//! [`classify`] splits a script into statements with `sqlparser`'s tokenizer
//! and parser (quotes, dollar quotes, comments and `BEGIN … END` bodies are
//! theirs to understand; nothing here splits on `;` by hand), gives each
//! statement a [`SqlKind`] such as `db.delete.all`, and the script the most
//! dangerous of them as its operation. It never fails and never panics:
//! what it cannot understand is `db.unknown`, which is destructive.
//!
//! ```
//! use prodguard_core::sql::{classify, Dialect, SqlKind};
//!
//! let script = classify(
//!     "UPDATE orders SET paid = true WHERE id = 7; -- fine\n\
//!      DELETE FROM orders WHERE 1 = 1;",
//!     Dialect::Postgres,
//! );
//! let kinds: Vec<&str> = script.statements.iter().map(|s| s.kind.as_str()).collect();
//! assert_eq!(kinds, ["db.update.where", "db.delete.all"]);
//! assert_eq!(script.operation, SqlKind::DeleteAll);
//! assert!(script.destructive);
//! assert_eq!(script.statements[1].tables, ["orders"]);
//! assert_eq!(script.fingerprint.len(), 64);
//! ```
//!
//! # How a script is split
//!
//! The whole script is tokenized once and parsed statement after statement.
//! A statement the parser rejects (or one followed by anything but `;`) is
//! `db.unknown` from its first token to the next `;`, and its neighbours
//! are classified as usual — with two exceptions, where the end of the bad
//! statement cannot be known, so **the rest of the script** is one
//! `db.unknown` statement:
//! - the bad statement contains the word `BEGIN` (a trigger or procedure
//!   body whose inner `;` would otherwise cut it into harmless-looking
//!   pieces), or the parser had already read past the next `;`;
//! - the tokenizer fails (an unterminated quote or comment): every
//!   statement that ended with `;` before it is classified, the rest is
//!   unknown.
//!
//! An empty script (only whitespace, comments and `;`) has no statements,
//! and its operation is `db.unknown`: a guard asked about nothing has most
//! likely been handed the wrong file or an empty variable.
//!
//! # Fingerprint
//!
//! [`Script::fingerprint`] is the lowercase hex SHA-256 over every
//! statement's [`normalized`](Statement::normalized) text, each preceded by
//! its length in bytes (8 bytes, little endian). The normalised text is the
//! statement's tokens without whitespace or comments, one space apart,
//! keywords in upper case, and quoted strings and identifiers rendered with
//! their quotes doubled inside (so no two token sequences read the same).
//! Layout, comments and keyword case do not change the fingerprint; any
//! other change does — a literal, a name (names keep their case: MySQL's
//! table names are case-sensitive), even redundant parentheses. An
//! untokenizable tail contributes its text with runs of whitespace made one
//! space. The dialect is not part of it.
//!
//! It is built from tokens, not from the parser's rendering of the tree:
//! what the database receives is the tokens, a rendering could drop a
//! detail (and change between sqlparser releases), and rendering a long
//! `a OR b OR …` chain recurses once per operator.
//!
//! # Limits
//!
//! - A function call is not looked into: `SELECT purge_everything()` is
//!   `db.read`. (Guarded execution should run a `db.read` script in a
//!   read-only transaction.)
//! - `SET` is `db.session` whatever it sets (`session_replication_role`
//!   too).
//! - A `WHERE` is always true only when the rules below prove it; a `LIMIT` without `WHERE` still counts as all rows, and so
//!   does MySQL's `UPDATE a JOIN b ON … SET …` without `WHERE`.
//! - `tables` lists the tables a statement names in its targets, `FROM` and
//!   joins (CTEs and derived tables too), not those in subqueries inside
//!   expressions.
//!
//! # Constant-true WHERE
//!
//! `TRUE`, a non-zero number, `1 = 1`, `'a' = 'a'`, `1 <> 2`, `2 > 1`,
//! `1 IN (1)`, `2 BETWEEN 1 AND 3`, `NOT FALSE`, `x OR <true>`,
//! `<true> AND <true>`, `x = x`, `x IS NULL OR x IS NOT NULL`, in any
//! parentheses: such a `WHERE` makes an `UPDATE` or `DELETE` `….all`.
//! Arithmetic, functions, casts, type coercion and subqueries are not
//! evaluated: they leave the statement `….where`.

pub(crate) mod decide;
mod kind;
mod statement;
mod transaction;
mod truth;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlparser::dialect::{GenericDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

pub use decide::{OverBound, RowBounds, SqlDecision, decide};
pub use kind::{DropObject, SqlKind, UnknownSqlKind};
pub use transaction::{NotRunnable, Plan, Transaction, run_plan, transaction_plan};

/// The SQL dialect a script is written in.
///
/// Names: `postgres` (or `postgresql`), `sqlite`, `mysql`, `generic`, in any
/// case; [`Display`](fmt::Display) and serde use the first spelling.
///
/// ```
/// use prodguard_core::sql::Dialect;
///
/// assert_eq!("PostgreSQL".parse::<Dialect>().unwrap(), Dialect::Postgres);
/// assert_eq!(Dialect::MySql.to_string(), "mysql");
/// assert!("oracle".parse::<Dialect>().is_err());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// PostgreSQL.
    #[serde(alias = "postgresql")]
    Postgres,
    /// SQLite.
    Sqlite,
    /// MySQL and MariaDB.
    MySql,
    /// sqlparser's generic dialect: accepts the common syntax of many.
    Generic,
}

impl Dialect {
    /// Every dialect.
    pub const ALL: [Dialect; 4] = [
        Dialect::Postgres,
        Dialect::Sqlite,
        Dialect::MySql,
        Dialect::Generic,
    ];

    /// Its name: `postgres`, `sqlite`, `mysql` or `generic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
            Dialect::MySql => "mysql",
            Dialect::Generic => "generic",
        }
    }

    /// The dialect a target names, when it says: a `postgres://` or
    /// `postgresql://` URL is PostgreSQL, `mysql://` or `mariadb://` MySQL,
    /// `sqlite:` or a file named `*.db`, `*.sqlite`, `*.sqlite3` SQLite.
    /// Anything else names none (`None`): the caller asks for the dialect
    /// rather than guess, since a script read in the wrong dialect can hide
    /// a statement in what looks like a string.
    ///
    /// ```
    /// use prodguard_core::sql::Dialect;
    ///
    /// assert_eq!(Dialect::from_target("postgresql://app@db/orders"), Some(Dialect::Postgres));
    /// assert_eq!(Dialect::from_target("data/app.DB"), Some(Dialect::Sqlite));
    /// assert_eq!(Dialect::from_target("sqlite:///srv/app.sqlite3"), Some(Dialect::Sqlite));
    /// assert_eq!(Dialect::from_target("mysql://db/shop"), Some(Dialect::MySql));
    /// assert_eq!(Dialect::from_target("https://host/x.db"), None);
    /// assert_eq!(Dialect::from_target("orders"), None);
    /// ```
    pub fn from_target(target: &str) -> Option<Dialect> {
        let lower = target.to_ascii_lowercase();
        let scheme = |names: &[&str]| names.iter().any(|n| lower.starts_with(n));
        if scheme(&["postgres://", "postgresql://"]) {
            Some(Dialect::Postgres)
        } else if scheme(&["mysql://", "mariadb://"]) {
            Some(Dialect::MySql)
        } else if scheme(&["sqlite:"]) {
            Some(Dialect::Sqlite)
        } else if lower.contains("://") {
            None
        } else if [".db", ".sqlite", ".sqlite3"]
            .iter()
            .any(|ext| lower.ends_with(ext))
        {
            Some(Dialect::Sqlite)
        } else {
            None
        }
    }

    fn parser_dialect(self) -> &'static dyn sqlparser::dialect::Dialect {
        match self {
            Dialect::Postgres => &PostgreSqlDialect {},
            Dialect::Sqlite => &SQLiteDialect {},
            Dialect::MySql => &MySqlDialect {},
            Dialect::Generic => &GenericDialect {},
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dialect name that is not one of [`Dialect`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an SQL dialect prodguard knows: use postgres, sqlite, mysql or generic")]
pub struct UnknownDialect(pub String);

impl FromStr for Dialect {
    type Err = UnknownDialect;

    fn from_str(s: &str) -> Result<Dialect, UnknownDialect> {
        match s.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            "sqlite" => Ok(Dialect::Sqlite),
            "mysql" => Ok(Dialect::MySql),
            "generic" => Ok(Dialect::Generic),
            _ => Err(UnknownDialect(s.to_owned())),
        }
    }
}

/// One statement of a script, as [`classify`] understood it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Its position in the script, from 0.
    pub index: usize,
    /// What it does.
    pub kind: SqlKind,
    /// `kind.is_destructive()`, spelled out for JSON readers.
    pub destructive: bool,
    /// The tables (and other objects) it names, qualified and quoted as
    /// written, each once, in order of appearance.
    pub tables: Vec<String>,
    /// Whether it says `CASCADE` (`DROP … CASCADE`, `TRUNCATE … CASCADE`,
    /// `ALTER TABLE … DROP COLUMN … CASCADE`).
    pub cascades: bool,
    /// Byte offset in the script of its first character.
    pub start: usize,
    /// Byte offset just past its last character (its `;` excluded):
    /// `&script[start..end]` is the statement as written.
    pub end: usize,
    /// The line it starts on, from 1.
    pub line: u64,
    /// The text the fingerprint covers (see [the module](self#fingerprint)).
    pub normalized: String,
    /// For `db.unknown`: what was not understood, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// What it means to the transaction a guarded run wraps the script in.
    #[serde(default)]
    pub transaction: Transaction,
}

/// A classified script: see [`classify`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// The dialect it was read in.
    pub dialect: Dialect,
    /// Its statements, in order.
    pub statements: Vec<Statement>,
    /// Its most dangerous statement's kind (`db.unknown` when it has none).
    pub operation: SqlKind,
    /// `operation.is_destructive()`.
    pub destructive: bool,
    /// Lowercase hex SHA-256 of the statements' normalised text.
    pub fingerprint: String,
}

impl Script {
    /// The first statement the classifier did not understand: a dry run
    /// never runs a script that has one (it could commit, or do what a
    /// rollback cannot undo), so its rows go uncounted.
    pub fn first_unknown(&self) -> Option<&Statement> {
        self.statements.iter().find(|s| s.kind == SqlKind::Unknown)
    }

    /// Each statement's kind, in order, as dotted names: what the policy's
    /// rules are matched against (with [`operation`](Self::operation)).
    pub fn kinds(&self) -> Vec<&'static str> {
        self.statements.iter().map(|s| s.kind.as_str()).collect()
    }
}

/// Classifies every statement of `script`, read as `dialect`.
///
/// Never fails and never panics; see [the module](self) for how a script is
/// split, what each kind means, and the fingerprint.
///
/// ```
/// use prodguard_core::sql::{classify, Dialect, SqlKind};
///
/// let script = classify("SELECT 'a;b' /* ; */; DO $$ BEGIN DELETE FROM t; END $$;", Dialect::Postgres);
/// assert_eq!(script.statements.len(), 2);
/// assert_eq!(script.statements[0].kind, SqlKind::Read);
/// assert_eq!(script.statements[1].kind, SqlKind::Unknown);
/// assert_eq!(script.operation, SqlKind::Unknown);
/// ```
pub fn classify(script: &str, dialect: Dialect) -> Script {
    let parser_dialect = dialect.parser_dialect();
    let mut positions = Positions::new(script);
    let mut tokens = Vec::new();
    let tokenized =
        Tokenizer::new(parser_dialect, script).tokenize_with_location_into_buf(&mut tokens);
    // An untokenizable script: keep what ended with `;` before the error.
    let mut tail = None;
    if let Err(error) = tokenized {
        let cut = tokens
            .iter()
            .rposition(|t| t.token == Token::SemiColon)
            .map_or(0, |i| i + 1);
        // Where the unknown tail begins: just past that `;`.
        let resume = cut.checked_sub(1).map(|i| tokens[i].span.end);
        tokens.truncate(cut);
        tail = Some((resume, error.to_string()));
    }

    let overlong = first_overlong(&tokens);
    let mut statements = Vec::new();
    let mut parser = Parser::new(parser_dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens);
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token_ref().token == Token::EOF {
            break;
        }
        let first = parser.index();
        let next_semicolon = next_semicolon(&parser, first);
        let too_long = overlong.is_some_and(|at| {
            at >= first && (at < next_semicolon || mentions_begin(&parser, first, next_semicolon))
        });
        let problem = if too_long {
            format!("an expression or UNION chain longer than {MAX_RUN} tokens is not classified")
        } else {
            match parser.parse_statement() {
                Ok(ast)
                    if matches!(parser.peek_token_ref().token, Token::SemiColon | Token::EOF) =>
                {
                    let described = statement::describe(&ast);
                    let mut statement = from_tokens(
                        &parser,
                        &mut positions,
                        statements.len(),
                        first,
                        parser.index(),
                    );
                    statement.kind = described.kind;
                    statement.destructive = described.kind.is_destructive();
                    statement.tables = described.tables;
                    statement.cascades = described.cascades;
                    statement.transaction = statement::transaction_role(&ast);
                    statement.problem = described
                        .problem
                        .map(|why| format!("`{}`: {why}", leading_words(&statement.normalized)));
                    statements.push(statement);
                    continue;
                }
                Ok(_) => format!(
                    "the statement goes on where it should end, at `{}`",
                    parser.peek_token_ref().token
                ),
                Err(error) => error.to_string(),
            }
        };
        // Not understood: unknown up to the next `;`, or to the end.
        let to_the_end =
            parser.index() > next_semicolon || mentions_begin(&parser, first, next_semicolon);
        let end = if to_the_end {
            end_of_tokens(&parser, first)
        } else {
            next_semicolon
        };
        let mut statement = from_tokens(&parser, &mut positions, statements.len(), first, end);
        statement.problem = Some(problem);
        statements.push(statement);
        if to_the_end {
            break;
        }
        while parser.index() < end {
            parser.next_token_no_skip();
        }
    }
    if let Some((resume, error)) = tail {
        // Asked last, so the offsets stay in increasing order.
        let from = resume.map_or(0, |end| positions.offset(end));
        statements.push(unknown_tail(
            script,
            &mut positions,
            statements.len(),
            from,
            error,
        ));
    }

    let operation = statements
        .iter()
        .map(|s| s.kind)
        .reduce(SqlKind::max)
        .unwrap_or(SqlKind::Unknown);
    Script {
        dialect,
        fingerprint: fingerprint(&statements),
        statements,
        operation,
        destructive: operation.is_destructive(),
    }
}

fn fingerprint(statements: &[Statement]) -> String {
    let mut hash = Sha256::new();
    for statement in statements {
        let text = statement.normalized.as_bytes();
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text);
    }
    crate::audit::hex(&hash.finalize())
}

/// The index of the first `;` at or after `from` (the token count if none).
fn next_semicolon(parser: &Parser<'_>, from: usize) -> usize {
    let mut i = from;
    loop {
        match parser.token_at(i).token {
            Token::SemiColon | Token::EOF => return i,
            _ => i += 1,
        }
    }
}

/// The end of the last statement-like token: the token count (`token_at`
/// answers EOF past the end) less trailing `;` and whitespace.
fn end_of_tokens(parser: &Parser<'_>, from: usize) -> usize {
    let mut i = from;
    while parser.token_at(i).token != Token::EOF {
        i += 1;
    }
    while i > from
        && matches!(
            parser.token_at(i - 1).token,
            Token::SemiColon | Token::Whitespace(_)
        )
    {
        i -= 1;
    }
    i
}

fn mentions_begin(parser: &Parser<'_>, from: usize, to: usize) -> bool {
    (from..to)
        .any(|i| matches!(&parser.token_at(i).token, Token::Word(w) if w.keyword == Keyword::BEGIN))
}

/// The non-whitespace tokens in `from..to`.
fn real_tokens<'p>(
    parser: &'p Parser<'_>,
    from: usize,
    to: usize,
) -> impl DoubleEndedIterator<Item = &'p TokenWithSpan> {
    (from..to)
        .map(move |i| parser.token_at(i))
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
}

/// Byte range and first line of the tokens in `from..to`.
fn span(
    parser: &Parser<'_>,
    positions: &mut Positions<'_>,
    from: usize,
    to: usize,
) -> (usize, usize, u64) {
    let first = real_tokens(parser, from, to).next();
    let last = real_tokens(parser, from, to).next_back();
    match (first, last) {
        (Some(first), Some(last)) => {
            let start = positions.offset(first.span.start);
            let end = positions.offset(last.span.end).max(start);
            (start, end, first.span.start.line)
        }
        _ => (0, 0, 0),
    }
}

/// A statement made of the tokens in `from..to`: `db.unknown` until the
/// caller says otherwise, with its byte range, line and normalised text.
fn from_tokens(
    parser: &Parser<'_>,
    positions: &mut Positions<'_>,
    index: usize,
    from: usize,
    to: usize,
) -> Statement {
    let (start, end, line) = span(parser, positions, from, to);
    let mut normalized = String::new();
    for token in real_tokens(parser, from, to) {
        if !normalized.is_empty() {
            normalized.push(' ');
        }
        push_normalized(&mut normalized, &token.token);
    }
    unknown(index, start, end, line, normalized, String::new())
}

/// One token as the fingerprint sees it: keywords in upper case, every
/// quoted string and identifier with its quotes doubled inside, so that no
/// two different token sequences read the same.
fn push_normalized(out: &mut String, token: &Token) {
    let (prefix, quote, text) = match token {
        Token::Word(w) if w.quote_style.is_none() && w.keyword != Keyword::NoKeyword => {
            out.push_str(&w.value.to_ascii_uppercase());
            return;
        }
        Token::SingleQuotedString(s) => ("", '\'', s),
        Token::DoubleQuotedString(s) => ("", '"', s),
        Token::NationalStringLiteral(s) => ("N", '\'', s),
        Token::EscapedStringLiteral(s) => ("E", '\'', s),
        Token::UnicodeStringLiteral(s) => ("U&", '\'', s),
        Token::HexStringLiteral(s) => ("X", '\'', s),
        Token::SingleQuotedByteStringLiteral(s) => ("B", '\'', s),
        Token::DoubleQuotedByteStringLiteral(s) => ("B", '"', s),
        Token::SingleQuotedRawStringLiteral(s) => ("R", '\'', s),
        Token::DoubleQuotedRawStringLiteral(s) => ("R", '"', s),
        Token::TripleSingleQuotedString(s) => ("3", '\'', s),
        Token::TripleDoubleQuotedString(s) => ("3", '"', s),
        Token::TripleSingleQuotedByteStringLiteral(s) => ("3B", '\'', s),
        Token::TripleDoubleQuotedByteStringLiteral(s) => ("3B", '"', s),
        Token::TripleSingleQuotedRawStringLiteral(s) => ("3R", '\'', s),
        Token::TripleDoubleQuotedRawStringLiteral(s) => ("3R", '"', s),
        // Words (quoted ones escape their quotes), numbers, operators,
        // dollar-quoted strings (their tag cannot occur inside).
        other => {
            out.push_str(&other.to_string());
            return;
        }
    };
    out.push_str(prefix);
    out.push(quote);
    for c in text.chars() {
        out.push(c);
        if c == quote {
            out.push(quote);
        }
    }
    out.push(quote);
}

/// The first two words of a normalised statement, for messages.
fn leading_words(normalized: &str) -> String {
    normalized.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

/// The parser's nesting limit (parentheses, subqueries, `NOT`, `CASE` …).
/// Deeper is `db.unknown`. sqlparser's default is 50, but without its
/// `recursive-protection` feature (which does not build for wasm32) a
/// debug build needs ~70 KB of stack per level: 20 levels fit in the 2 MiB
/// of a spawned thread, and a release build needs under 256 KiB.
const RECURSION_LIMIT: usize = 20;

/// Longest run of tokens at one parenthesis level without a comma, and
/// most set operations (`UNION`, `INTERSECT`, `EXCEPT`) in one statement.
/// The parser builds `a OR b OR c …` and `… UNION …` chains in a loop
/// but the tree it returns is as deep as the chain, and dropping it
/// recurses: longer is `db.unknown` (never parsed), so no input can
/// overflow the stack.
const MAX_RUN: usize = 10_000;
const MAX_SET_OPERATIONS: usize = 1_000;

/// The index of the first token past [`MAX_RUN`] or [`MAX_SET_OPERATIONS`].
fn first_overlong(tokens: &[TokenWithSpan]) -> Option<usize> {
    let mut runs: Vec<usize> = vec![0];
    let mut set_operations = 0;
    for (i, token) in tokens.iter().enumerate() {
        match &token.token {
            Token::Whitespace(_) => continue,
            Token::SemiColon => {
                runs.clear();
                runs.push(0);
                set_operations = 0;
                continue;
            }
            Token::LParen | Token::LBracket => {
                runs.push(0);
                continue;
            }
            Token::RParen | Token::RBracket if runs.len() > 1 => {
                runs.pop();
            }
            Token::Comma => {
                if let Some(run) = runs.last_mut() {
                    *run = 0;
                }
                continue;
            }
            Token::Word(w)
                if matches!(
                    w.keyword,
                    Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::MINUS
                ) =>
            {
                set_operations += 1;
                if set_operations > MAX_SET_OPERATIONS {
                    return Some(i);
                }
            }
            _ => {}
        }
        if let Some(run) = runs.last_mut() {
            *run += 1;
            if *run > MAX_RUN {
                return Some(i);
            }
        }
    }
    None
}

fn unknown_tail(
    script: &str,
    positions: &mut Positions<'_>,
    index: usize,
    from: usize,
    error: String,
) -> Statement {
    let text = script.get(from..).unwrap_or_default();
    let start = from + (text.len() - text.trim_start().len());
    let end = from + text.trim_end().len();
    let line = positions.line_of(start);
    let normalized = text.split_whitespace().collect::<Vec<_>>().join(" ");
    unknown(index, start, end.max(start), line, normalized, error)
}

fn unknown(
    index: usize,
    start: usize,
    end: usize,
    line: u64,
    normalized: String,
    problem: String,
) -> Statement {
    Statement {
        index,
        kind: SqlKind::Unknown,
        destructive: true,
        tables: Vec::new(),
        cascades: false,
        start,
        end,
        line,
        transaction: transaction::of_unknown(&normalized),
        normalized,
        problem: Some(problem),
    }
}

/// Turns the tokenizer's (line, column) locations — columns count
/// characters — into byte offsets. Asked in increasing order, as the
/// statements come, it walks the script once.
struct Positions<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
    /// The last answer: (line, column, byte offset).
    cursor: (u64, u64, usize),
}

impl<'a> Positions<'a> {
    fn new(text: &'a str) -> Positions<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Positions {
            text,
            line_starts,
            cursor: (1, 1, 0),
        }
    }

    fn offset(&mut self, location: Location) -> usize {
        let Some(&line_start) = usize::try_from(location.line)
            .ok()
            .and_then(|line| line.checked_sub(1))
            .and_then(|i| self.line_starts.get(i))
        else {
            return self.text.len();
        };
        let (line, column, offset) = self.cursor;
        let (mut column, mut offset) = if line == location.line && column <= location.column {
            (column, offset)
        } else {
            (1, line_start)
        };
        let mut chars = self.text.get(offset..).unwrap_or_default().chars();
        while column < location.column {
            match chars.next() {
                Some('\n') | None => break,
                Some(c) => {
                    offset += c.len_utf8();
                    column += 1;
                }
            }
        }
        self.cursor = (location.line, column, offset);
        offset
    }

    fn line_of(&self, offset: usize) -> u64 {
        let line = self.line_starts.partition_point(|&start| start <= offset);
        u64::try_from(line).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn kinds(script: &str, dialect: Dialect) -> Vec<&'static str> {
        classify(script, dialect)
            .statements
            .iter()
            .map(|s| s.kind.as_str())
            .collect()
    }

    #[test]
    fn byte_ranges_and_lines_point_at_each_statement_as_written() {
        let text = "-- header ☃\nSELECT 'ä;ö' ;\n  DELETE FROM t\n  WHERE id = 1;\nbad stuff here;\nSELECT 'oops";
        let script = classify(text, Dialect::Postgres);
        let pieces: Vec<(&str, u64)> = script
            .statements
            .iter()
            .map(|s| (&text[s.start..s.end], s.line))
            .collect();
        assert_eq!(
            pieces,
            [
                ("SELECT 'ä;ö'", 2),
                ("DELETE FROM t\n  WHERE id = 1", 3),
                ("bad stuff here", 5),
                ("SELECT 'oops", 6),
            ]
        );
        assert_eq!(
            kinds(text, Dialect::Postgres),
            ["db.read", "db.delete.where", "db.unknown", "db.unknown"]
        );
        assert!(script.statements[3].problem.is_some());
    }

    #[test]
    fn a_statement_on_one_long_line_is_found_without_rescanning() {
        let text = "SELECT 1; ".repeat(2_000);
        let script = classify(&text, Dialect::Generic);
        assert_eq!(script.statements.len(), 2_000);
        let last = &script.statements[1_999];
        assert_eq!(&text[last.start..last.end], "SELECT 1");
        assert_eq!(last.start, 1_999 * 10);
    }

    #[test]
    fn a_body_the_parser_rejects_makes_the_rest_unknown_not_harmless_pieces() {
        // Without the BEGIN rule this would split into `… BEGIN nonsense`,
        // `DELETE FROM items` and `END`, the last looking like a COMMIT.
        let text = "SELECT 1; CREATE TRIGGER t AFTER INSERT ON o BEGIN nonsense; DELETE FROM items; END; SELECT 2;";
        for dialect in Dialect::ALL {
            let script = classify(text, dialect);
            assert_eq!(kinds(text, dialect), ["db.read", "db.unknown"], "{dialect}");
            let rest = &script.statements[1];
            assert!(text[rest.start..].starts_with("CREATE TRIGGER"));
            assert_eq!(rest.end, text.len() - 1, "{dialect}");
        }
        // Parsed, the body stays inside its trigger.
        let good =
            "CREATE TRIGGER t AFTER INSERT ON o BEGIN SELECT 1; DELETE FROM items; END; SELECT 2";
        assert_eq!(kinds(good, Dialect::Sqlite), ["db.create", "db.read"]);
    }

    #[test]
    fn a_tokenizer_error_keeps_what_came_before_and_fails_the_rest() {
        let text = "UPDATE t SET a = 1 WHERE b = 2; SELECT \"unterminated; DELETE FROM t";
        let script = classify(text, Dialect::Postgres);
        assert_eq!(
            kinds(text, Dialect::Postgres),
            ["db.update.where", "db.unknown"]
        );
        let tail = &script.statements[1];
        assert_eq!(
            &text[tail.start..tail.end],
            "SELECT \"unterminated; DELETE FROM t"
        );
        assert_eq!(tail.normalized, "SELECT \"unterminated; DELETE FROM t");
        assert_eq!(script.operation, SqlKind::Unknown);
    }

    #[test]
    fn an_empty_script_has_no_statements_and_fails_closed() {
        for text in ["", " \n\t", ";", ";;", "-- nothing\n/* at all */"] {
            let script = classify(text, Dialect::Postgres);
            assert!(script.statements.is_empty(), "{text:?}");
            assert_eq!(script.operation, SqlKind::Unknown);
            assert!(script.destructive);
        }
    }

    #[test]
    fn the_fingerprint_ignores_layout_and_changes_with_meaning() {
        let base = classify(
            "UPDATE orders SET paid = true WHERE id = 7; DELETE FROM items WHERE order_id = 7;",
            Dialect::Postgres,
        )
        .fingerprint;
        for same in [
            "update orders set paid = TRUE where id = 7;\n\n-- then\ndelete from items where order_id = 7",
            "UPDATE   orders\n SET paid=true /* ok */ WHERE id=7 ;;\tDELETE FROM items WHERE order_id = 7",
        ] {
            assert_eq!(
                classify(same, Dialect::Postgres).fingerprint,
                base,
                "{same}"
            );
        }
        for different in [
            "UPDATE orders SET paid = true WHERE id = 8; DELETE FROM items WHERE order_id = 7;",
            "UPDATE orders SET paid = false WHERE id = 7; DELETE FROM items WHERE order_id = 7;",
            "UPDATE orders2 SET paid = true WHERE id = 7; DELETE FROM items WHERE order_id = 7;",
            "UPDATE orders SET paid = true WHERE id = 7; DELETE FROM items;",
            "UPDATE orders SET paid = true WHERE id = 7;",
            "DELETE FROM items WHERE order_id = 7; UPDATE orders SET paid = true WHERE id = 7;",
            "UPDATE orders SET paid = true WHERE id = 7; DELETE FROM \"Items\" WHERE order_id = 7;",
            "UPDATE orders SET paid = true WHERE id = '7'; DELETE FROM items WHERE order_id = 7;",
            // Tokens, not meaning: redundant parentheses count as a change.
            "UPDATE orders SET paid = true WHERE (id = 7); DELETE FROM items WHERE order_id = 7;",
        ] {
            assert_ne!(
                classify(different, Dialect::Postgres).fingerprint,
                base,
                "{different}"
            );
        }
        // Unknown statements: tokens, not layout, and still sensitive to a change.
        let a = classify("CALL   purge( 1 ) -- x", Dialect::Postgres).fingerprint;
        assert_eq!(a, classify("call purge(1)", Dialect::Postgres).fingerprint);
        assert_ne!(a, classify("call purge(2)", Dialect::Postgres).fingerprint);
        let garbage = classify("frobnicate   the  Orders where 'it''s' ", Dialect::Postgres);
        assert_eq!(
            garbage.statements[0].normalized,
            "frobnicate the Orders WHERE 'it''s'"
        );
        // Quotes inside a string or identifier cannot fake a token boundary.
        let one = classify("SELECT 'a'' ''b'", Dialect::Postgres);
        let two = classify("SELECT 'a' 'b'", Dialect::Postgres);
        assert_ne!(one.statements[0].normalized, two.statements[0].normalized);
        let one = classify("DELETE FROM \"a\"\" \"\"b\"", Dialect::Postgres);
        let two = classify("DELETE FROM \"a\" \"b\"", Dialect::Postgres);
        assert_ne!(one.fingerprint, two.fingerprint);
        // Statement boundaries count: one statement is not two.
        assert_ne!(
            classify("SELECT 1; SELECT 2", Dialect::Postgres).fingerprint,
            classify("SELECT 1 SELECT 2", Dialect::Postgres).fingerprint
        );
        // The empty script's fingerprint is SHA-256 of nothing.
        assert_eq!(
            classify("", Dialect::Sqlite).fingerprint,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn dialect_names_round_trip() {
        for dialect in Dialect::ALL {
            assert_eq!(dialect.to_string().parse::<Dialect>(), Ok(dialect));
            let json = serde_json::to_string(&dialect).unwrap();
            assert_eq!(json, format!("\"{dialect}\""));
            assert_eq!(serde_json::from_str::<Dialect>(&json).unwrap(), dialect);
        }
        assert_eq!(
            serde_json::from_str::<Dialect>("\"postgresql\"").unwrap(),
            Dialect::Postgres
        );
        let e = "oracle".parse::<Dialect>().unwrap_err();
        assert!(
            e.to_string().contains("postgres, sqlite, mysql or generic"),
            "{e}"
        );
    }

    const SOUP: &[&str] = &[
        "SELECT",
        "DELETE",
        "FROM",
        "t",
        "WHERE",
        "1",
        "=",
        "(",
        ")",
        ";",
        "'",
        "\"",
        "`",
        "$$",
        "$a$",
        "--",
        "/*",
        "*/",
        "\n",
        " ",
        "BEGIN",
        "END",
        "CASE",
        "WITH",
        "AS",
        "RETURNING",
        "INSERT",
        "INTO",
        "VALUES",
        "UPDATE",
        "SET",
        "DROP",
        "TABLE",
        "CREATE",
        "TRIGGER",
        "ON",
        "OR",
        "AND",
        "NOT",
        "NULL",
        "E'",
        "\\",
        "[",
        "]",
        "é",
        "☃",
        "\0",
        "x",
        ",",
        "*",
        "IF",
        "DO",
        "CALL",
        "EXPLAIN",
        "ANALYZE",
        "TRUE",
        "IN",
        "IS",
    ];

    #[test]
    fn random_bytes_and_token_soup_never_panic_and_classify_the_same_twice() {
        let mut rng = Rng(0x5eed_5a1d_0017_0001);
        for round in 0..3_000 {
            let text = if round % 3 == 0 {
                let bytes: Vec<u8> = (0..rng.below(80)).map(|_| rng.next() as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                let mut s = String::new();
                for _ in 0..rng.below(40) {
                    let piece: &&str = rng.pick(SOUP);
                    s.push_str(piece);
                    if rng.below(3) > 0 {
                        s.push(' ');
                    }
                }
                s
            };
            let dialect = *rng.pick(&Dialect::ALL);
            let first = classify(&text, dialect);
            assert_eq!(first, classify(&text, dialect), "{text:?}");
            for s in &first.statements {
                assert!(text.get(s.start..s.end).is_some(), "{text:?}: {s:?}");
                assert!(
                    s.kind != SqlKind::Unknown || s.problem.is_some(),
                    "{text:?}"
                );
            }
            let most = first.statements.iter().map(|s| s.kind.rank()).max();
            assert_eq!(
                most.unwrap_or(SqlKind::Unknown.rank()),
                first.operation.rank()
            );
        }
    }

    #[test]
    fn deep_nesting_and_long_chains_are_unknown_not_a_stack_overflow() {
        for open in [
            "(",
            "NOT ",
            "- ",
            "ARRAY[",
            "(SELECT ",
            "CASE WHEN ",
            "EXISTS (SELECT ",
        ] {
            for dialect in Dialect::ALL {
                let text = format!("SELECT {}1", open.repeat(5_000));
                let script = classify(&text, dialect);
                assert_eq!(script.operation, SqlKind::Unknown, "{open}");
            }
        }
        // Nesting within the limit is classified.
        let text = format!(
            "DELETE FROM t WHERE {}1 = 1{}",
            "(".repeat(15),
            ")".repeat(15)
        );
        assert_eq!(
            classify(&text, Dialect::Postgres).operation,
            SqlKind::DeleteAll
        );
        // Long chains the parser builds in a loop: fine up to the limit, unknown past it.
        for (link, dialect) in [
            (" OR x = 1", Dialect::Postgres),
            (" || 'a'", Dialect::Postgres),
            ("::text", Dialect::Postgres),
            (" + 1", Dialect::MySql),
        ] {
            let fine = format!("DELETE FROM t WHERE x = 1{}", link.repeat(1_000));
            assert_eq!(classify(&fine, dialect).statements.len(), 1);
            let long = format!(
                "SELECT 1; DELETE FROM t WHERE x = 1{}; SELECT 2",
                link.repeat(40_000)
            );
            let script = classify(&long, dialect);
            let kinds: Vec<_> = script.statements.iter().map(|s| s.kind.as_str()).collect();
            assert_eq!(kinds, ["db.read", "db.unknown", "db.read"], "{link}");
        }
        let unions = format!("SELECT 1, 2{}", " UNION SELECT 1, 2".repeat(5_000));
        assert_eq!(
            classify(&unions, Dialect::Generic).operation,
            SqlKind::Unknown
        );
    }
}
