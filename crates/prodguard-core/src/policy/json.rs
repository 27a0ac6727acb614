//! A small JSON parser (RFC 8259) that keeps the byte span of every key and
//! value, so that policy errors in JSON files point at a line and column just
//! as they do in TOML. `serde_json` reports positions for syntax errors only.

use super::PolicyError;
use super::tree::{Entry, Kind, Locator, Node};

/// How deeply arrays and objects may nest (a policy needs four levels).
const MAX_DEPTH: usize = 64;

/// Parses JSON text into a tree; errors carry their position.
pub(crate) fn parse(text: &str, locator: &Locator<'_>) -> Result<Node, PolicyError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        locator,
    };
    if text.starts_with('\u{feff}') {
        parser.pos = '\u{feff}'.len_utf8();
    }
    parser.skip_ws()?;
    if parser.pos >= parser.bytes.len() {
        return Err(parser.err("invalid JSON: the document is empty; expected an object `{ … }`"));
    }
    let value = parser.value(0)?;
    parser.skip_ws()?;
    if parser.pos < parser.bytes.len() {
        return Err(parser.err(format!(
            "invalid JSON: unexpected {} after the end of the document; expected nothing more",
            parser.found()
        )));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    locator: &'a Locator<'a>,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> PolicyError {
        self.locator.error(self.pos, message)
    }

    fn err_at(&self, offset: usize, message: impl Into<String>) -> PolicyError {
        self.locator.error(offset, message)
    }

    /// What is at the current position, for "found …".
    fn found(&self) -> String {
        match self
            .text
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
        {
            None => "end of input".to_string(),
            Some(c) if c.is_control() => format!("character {}", c.escape_debug()),
            Some(c) => format!("`{c}`"),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) -> Result<(), PolicyError> {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b'/' if matches!(self.bytes.get(self.pos + 1), Some(b'/' | b'*')) => {
                    return Err(self.err(
                        "invalid JSON: comments are not allowed in JSON; remove them (or write the policy in TOML, which allows `#` comments)",
                    ));
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Node, PolicyError> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!(
                "invalid JSON: nested more than {MAX_DEPTH} levels deep"
            )));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let start = self.pos;
                let s = self.string()?;
                Ok(Node {
                    span: start..self.pos,
                    kind: Kind::String(s),
                })
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true", Kind::Bool(true)),
            Some(b'f') => self.literal("false", Kind::Bool(false)),
            Some(b'n') => self.literal("null", Kind::Null),
            _ => Err(self.err(format!(
                "invalid JSON: expected a value (an object, array, string, number, true, false or null), found {}",
                self.found()
            ))),
        }
    }

    fn literal(&mut self, word: &str, kind: Kind) -> Result<Node, PolicyError> {
        let start = self.pos;
        if self.bytes[start..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(Node {
                span: start..self.pos,
                kind,
            })
        } else {
            Err(self.err(format!(
                "invalid JSON: expected a value (an object, array, string, number, true, false or null), found {}; strings must be in double quotes",
                self.found()
            )))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node, PolicyError> {
        let start = self.pos;
        self.pos += 1; // `{`
        let mut entries: Vec<Entry> = Vec::new();
        self.skip_ws()?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Node {
                span: start..self.pos,
                kind: Kind::Table(entries),
            });
        }
        loop {
            self.skip_ws()?;
            if self.peek() != Some(b'"') {
                let message = if self.peek() == Some(b'}') && !entries.is_empty() {
                    "invalid JSON: a trailing comma is not allowed before `}`; remove it"
                        .to_string()
                } else {
                    format!(
                        "invalid JSON: expected a key in double quotes, found {}",
                        self.found()
                    )
                };
                return Err(self.err(message));
            }
            let key_start = self.pos;
            let key = self.string()?;
            let key_span = key_start..self.pos;
            if entries.iter().any(|e| e.key == key) {
                return Err(self.err_at(
                    key_start,
                    format!("invalid JSON: duplicate key `{key}`; a key may appear only once in an object"),
                ));
            }
            self.skip_ws()?;
            if self.peek() != Some(b':') {
                return Err(self.err(format!(
                    "invalid JSON: expected `:` after the key `{key}`, found {}",
                    self.found()
                )));
            }
            self.pos += 1;
            self.skip_ws()?;
            let value = self.value(depth + 1)?;
            entries.push(Entry {
                key,
                key_span,
                value,
            });
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Node {
                        span: start..self.pos,
                        kind: Kind::Table(entries),
                    });
                }
                _ => {
                    return Err(self.err(format!(
                        "invalid JSON: expected `,` or `}}` after an object member, found {}",
                        self.found()
                    )));
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node, PolicyError> {
        let start = self.pos;
        self.pos += 1; // `[`
        let mut items = Vec::new();
        self.skip_ws()?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Node {
                span: start..self.pos,
                kind: Kind::Array(items),
            });
        }
        loop {
            self.skip_ws()?;
            if self.peek() == Some(b']') {
                return Err(
                    self.err("invalid JSON: a trailing comma is not allowed before `]`; remove it")
                );
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Node {
                        span: start..self.pos,
                        kind: Kind::Array(items),
                    });
                }
                _ => {
                    return Err(self.err(format!(
                        "invalid JSON: expected `,` or `]` after an array element, found {}",
                        self.found()
                    )));
                }
            }
        }
    }

    /// A string starting at the current `"`; leaves `pos` after the closing quote.
    fn string(&mut self) -> Result<String, PolicyError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(rest) = self.text.get(self.pos..) else {
                return Err(self.err("invalid JSON: malformed string"));
            };
            let Some(c) = rest.chars().next() else {
                return Err(self.err_at(
                    open,
                    "invalid JSON: unterminated string; expected a closing `\"`",
                ));
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\\' => {
                    self.pos += 1;
                    let esc = self.peek();
                    let simple = match esc {
                        Some(b'"') => Some('"'),
                        Some(b'\\') => Some('\\'),
                        Some(b'/') => Some('/'),
                        Some(b'b') => Some('\u{8}'),
                        Some(b'f') => Some('\u{c}'),
                        Some(b'n') => Some('\n'),
                        Some(b'r') => Some('\r'),
                        Some(b't') => Some('\t'),
                        _ => None,
                    };
                    if let Some(ch) = simple {
                        out.push(ch);
                        self.pos += 1;
                    } else if esc == Some(b'u') {
                        let escape_start = self.pos - 1;
                        self.pos += 1;
                        let ch = self.unicode_escape(escape_start)?;
                        out.push(ch);
                    } else {
                        return Err(self.err_at(
                            self.pos - 1,
                            "invalid JSON: invalid escape; expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX",
                        ));
                    }
                }
                '\n' | '\r' => {
                    return Err(self.err_at(
                        open,
                        "invalid JSON: unterminated string: a line break comes before the closing `\"` (inside a string, write a line break as \\n)",
                    ));
                }
                c if (c as u32) < 0x20 => {
                    return Err(self.err(
                        "invalid JSON: control characters must be escaped inside strings, e.g. \\t or \\u0001",
                    ));
                }
                c => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    fn hex4(&mut self, escape_start: usize) -> Result<u32, PolicyError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        match digits.and_then(|d| u32::from_str_radix(d, 16).ok()) {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => Err(self.err_at(
                escape_start,
                "invalid JSON: invalid \\u escape; expected four hexadecimal digits",
            )),
        }
    }

    fn unicode_escape(&mut self, escape_start: usize) -> Result<char, PolicyError> {
        let first = self.hex4(escape_start)?;
        let code = if (0xD800..0xDC00).contains(&first) {
            // A high surrogate must be followed by `\u` and a low surrogate.
            if !self.bytes[self.pos..].starts_with(b"\\u") {
                return Err(self.err_at(
                    escape_start,
                    "invalid JSON: unpaired surrogate in \\u escape; expected a low surrogate \\uDC00–\\uDFFF next",
                ));
            }
            let second_start = self.pos;
            self.pos += 2;
            let second = self.hex4(second_start)?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.err_at(
                    second_start,
                    "invalid JSON: expected a low surrogate \\uDC00–\\uDFFF after a high surrogate",
                ));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| {
            self.err_at(
                escape_start,
                "invalid JSON: unpaired surrogate in \\u escape",
            )
        })
    }

    fn number(&mut self) -> Result<Node, PolicyError> {
        let start = self.pos;
        let mut is_integer = true;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(
                        self.err_at(start, "invalid JSON: numbers must not have leading zeros")
                    );
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => {
                return Err(self.err(format!(
                    "invalid JSON: expected a digit, found {}",
                    self.found()
                )));
            }
        }
        if self.peek() == Some(b'.') {
            is_integer = false;
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err(format!(
                    "invalid JSON: expected a digit after the decimal point, found {}",
                    self.found()
                )));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            is_integer = false;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err(format!(
                    "invalid JSON: expected a digit in the exponent, found {}",
                    self.found()
                )));
            }
            self.digits();
        }
        let span = start..self.pos;
        let kind = if is_integer {
            Kind::Integer(self.text.get(span.clone()).and_then(|t| t.parse().ok()))
        } else {
            Kind::Float
        };
        Ok(Node { span, kind })
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }
}
