//! A small spanned document tree that both the TOML and the JSON front ends
//! produce, so that one validator gives the same messages, with positions,
//! for both formats.

use std::ops::Range;

use super::PolicyError;

/// A value with the byte range it occupies in the source text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// Bytes of the value in the source.
    pub(crate) span: Range<usize>,
    /// What it is.
    pub(crate) kind: Kind,
}

/// The kinds of value a policy document can hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A table (TOML) or object (JSON), entries in source order.
    Table(Vec<Entry>),
    /// An array.
    Array(Vec<Node>),
    /// A string.
    String(String),
    /// An integer; `None` when it does not fit in an `i128`.
    Integer(Option<i128>),
    /// A floating-point number.
    Float,
    /// A boolean.
    Bool(bool),
    /// A TOML date or time.
    Datetime,
    /// JSON `null`.
    Null,
}

/// One key of a table, with its own span.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The key, unquoted.
    pub(crate) key: String,
    /// Bytes of the key in the source (quotes included when quoted).
    pub(crate) key_span: Range<usize>,
    /// The value.
    pub(crate) value: Node,
}

/// The source format, for wording messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Toml,
    Json,
}

impl Node {
    /// "a string", "an integer", …: what this value is, for "found …".
    pub(crate) fn describe(&self, format: Format) -> &'static str {
        match (&self.kind, format) {
            (Kind::Table(_), Format::Toml) => "a table",
            (Kind::Table(_), Format::Json) => "an object",
            (Kind::Array(_), _) => "an array",
            (Kind::String(_), _) => "a string",
            (Kind::Integer(_), _) => "an integer",
            (Kind::Float, _) => "a floating-point number",
            (Kind::Bool(_), _) => "a boolean",
            (Kind::Datetime, _) => "a date-time",
            (Kind::Null, _) => "null",
        }
    }
}

/// Turns byte offsets into 1-based lines and character columns.
pub(crate) struct Locator<'a> {
    text: &'a str,
    file: &'a str,
    /// Where each line starts: found once, so locating every rule of a
    /// long policy stays linear.
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(text: &'a str, file: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Locator {
            text,
            file,
            line_starts,
        }
    }

    /// The 1-based line and column (in characters) of byte `offset`.
    ///
    /// Offsets past the end point just after the last character; offsets
    /// inside a character point at that character. A leading byte-order mark
    /// takes no column.
    pub(crate) fn position(&self, offset: usize) -> (u32, u32) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        // The number of line starts at or before `offset` is the line.
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let mut line_text = self.text.get(line_start..offset).unwrap_or("");
        if line_start == 0 {
            line_text = line_text.strip_prefix('\u{feff}').unwrap_or(line_text);
        }
        let column = line_text.chars().count() + 1;
        (saturate(line), saturate(column))
    }

    /// An error at byte `offset`.
    pub(crate) fn error(&self, offset: usize, message: impl Into<String>) -> PolicyError {
        let (line, column) = self.position(offset);
        PolicyError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// The source text of `span` (empty when out of range).
    pub(crate) fn slice(&self, span: &Range<usize>) -> &'a str {
        self.text.get(span.clone()).unwrap_or("")
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
