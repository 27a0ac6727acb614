//! A scanner for records in the layout [`super::encode_record`] writes.
//!
//! The verifier must tell a record that is not strict JSON of the expected
//! shape from one that is, exactly as the strict parser (serde) does. This
//! scanner accepts only a narrow subset of JSON — compact (no whitespace),
//! top-level keys that a writer emits, each once and unescaped, the chain's
//! fields as plain strings and an integer — and checks everything else in
//! the line is well-formed JSON. Every line it accepts the strict parser
//! accepts too, with the same fields; for anything else (whitespace, escaped
//! keys, unknown keys, seals, floats, deep nesting, invalid UTF-8, …) it
//! answers `None` and the strict parser decides. A test compares both on
//! randomly tampered records.

use std::borrow::Cow;

use serde::de::IgnoredAny;

use super::LinkFields;

/// How deep the skipped values may nest before the strict parser takes over.
const MAX_DEPTH: u32 = 32;

/// The top-level keys the scanner knows. Anything else goes to the strict
/// parser (which would ignore an unknown key; the scanner does not guess).
const KEYS: [&[u8]; 17] = [
    b"v",
    b"log_id",
    b"seq",
    b"ts",
    b"host",
    b"pid",
    b"kind",
    b"attempt_id",
    b"actor",
    b"op",
    b"decision",
    b"backup",
    b"confirm",
    b"outcome",
    b"message",
    b"prev",
    b"hash",
];
const LOG_ID: usize = 1;
const SEQ: usize = 2;
const KIND: usize = 6;
/// `attempt_id` … `message`: the event members a seal may not carry.
const FIRST_EVENT: usize = 7;
const PREV: usize = 15;

/// The chain's fields of `line` (without its newline), when the line is in
/// the canonical layout; `None` when the strict parser must decide.
pub(super) fn link_fields(line: &[u8]) -> Option<LinkFields<'_>> {
    // No control character anywhere (they may appear neither in strings nor,
    // in this layout, between tokens), and valid UTF-8 throughout, so every
    // string between quotes is too.
    if !line.chunks(64).all(printable_ascii) && line.iter().any(|b| *b < 0x20) {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let mut c = Cursor { b: line, i: 0 };
    c.eat(b'{')?;
    let mut seen = 0u32;
    let mut seq = None;
    let (mut log_id, mut prev, mut kind) = (None, None, None);
    let mut carries = [false; 8];
    loop {
        c.eat(b'"')?;
        let key = c.plain()?;
        c.eat(b':')?;
        let index = key_index(key)?;
        if seen & (1 << index) != 0 {
            // serde refuses some duplicates and ignores others: let it say.
            return None;
        }
        seen |= 1 << index;
        match index {
            SEQ => seq = Some(c.uint()?),
            LOG_ID | PREV | KIND => {
                c.eat(b'"')?;
                // Between two quotes of a UTF-8 line: whole characters.
                let start = c.i;
                let end = start + c.plain()?.len();
                let value = Some(text.get(start..end)?);
                match index {
                    LOG_ID => log_id = value,
                    PREV => prev = value,
                    _ => kind = value,
                }
            }
            _ => {
                let start = c.i;
                c.skip_value(0)?;
                if (FIRST_EVENT..PREV).contains(&index) {
                    // `Option<IgnoredAny>`: only `null` is none.
                    carries[index - FIRST_EVENT] = &line[start..c.i] != b"null";
                }
            }
        }
        match c.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    if c.i != line.len() {
        return None;
    }
    let some = |present: bool| present.then_some(IgnoredAny);
    Some(LinkFields {
        seq: seq?,
        log_id: Cow::Borrowed(log_id?),
        prev: Cow::Borrowed(prev?),
        kind: Cow::Borrowed(kind?),
        seal: None,
        attempt_id: some(carries[0]),
        actor: some(carries[1]),
        op: some(carries[2]),
        decision: some(carries[3]),
        backup: some(carries[4]),
        confirm: some(carries[5]),
        outcome: some(carries[6]),
        message: some(carries[7]),
    })
}

/// Whether every byte is in `0x20..=0x7f` (written to vectorise).
fn printable_ascii(chunk: &[u8]) -> bool {
    // As signed bytes, both controls and non-ASCII are below 0x20.
    chunk
        .iter()
        .fold(0u8, |bad, &b| bad | u8::from((b as i8) < 0x20))
        == 0
}

/// The position of `key` in [`KEYS`].
fn key_index(key: &[u8]) -> Option<usize> {
    // By length and first byte: no call per key.
    let index = match (key.len(), key.first()?) {
        (1, b'v') => 0,
        (6, b'l') => 1,
        (3, b's') => 2,
        (2, b't') => 3,
        (4, b'h') => {
            if key == b"host" {
                4
            } else {
                16
            }
        }
        (3, b'p') => 5,
        (4, b'k') => 6,
        (10, b'a') => 7,
        (5, b'a') => 8,
        (2, b'o') => 9,
        (8, b'd') => 10,
        (6, b'b') => 11,
        (7, b'c') => 12,
        (7, b'o') => 13,
        (7, b'm') => 14,
        (4, b'p') => 15,
        _ => return None,
    };
    (KEYS.get(index)? == &key).then_some(index)
}

struct Cursor<'a> {
    /// A line known to be UTF-8 without control characters.
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn next(&mut self) -> Option<u8> {
        let byte = *self.b.get(self.i)?;
        self.i += 1;
        Some(byte)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// The rest of a string (its opening quote eaten) that has no escape.
    fn plain(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        self.scan_plain();
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let text = &self.b[start..self.i];
        self.i += 1;
        Some(text)
    }

    /// Moves to the next `"` or `\\` (or the end).
    fn scan_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        const QUOTES: u64 = ONES * b'"' as u64;
        const BACKSLASHES: u64 = ONES * b'\\' as u64;
        let mut i = self.i;
        let rest = self.b.get(i..).unwrap_or_default();
        let mut words = rest.chunks_exact(8);
        for chunk in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let w = u64::from_le_bytes(word);
            let (q, b) = (w ^ QUOTES, w ^ BACKSLASHES);
            // The lowest set bit marks the first zero byte exactly (a borrow
            // only runs towards the higher bytes).
            let found = (q.wrapping_sub(ONES) & !q | b.wrapping_sub(ONES) & !b) & HIGH;
            if found != 0 {
                self.i = i + (found.trailing_zeros() / 8) as usize;
                return;
            }
            i += 8;
        }
        for &byte in words.remainder() {
            if byte == b'"' || byte == b'\\' {
                break;
            }
            i += 1;
        }
        self.i = i;
    }

    /// A non-negative integer without leading zeros that fits a `u64`.
    fn uint(&mut self) -> Option<u64> {
        let first = self.next()?;
        let mut value = u64::from(first.checked_sub(b'0').filter(|d| *d <= 9)?);
        if value == 0 {
            return Some(0);
        }
        while let Some(&byte) = self.b.get(self.i) {
            if !byte.is_ascii_digit() {
                break;
            }
            value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
            self.i += 1;
        }
        Some(value)
    }

    /// Skips one compact JSON value: strings (simple escapes and `\uXXXX`
    /// outside the surrogates), integers, literals, arrays and objects.
    fn skip_value(&mut self, depth: u32) -> Option<()> {
        match self.next()? {
            b'"' => self.skip_str(),
            b'n' => self.literal(b"ull"),
            b't' => self.literal(b"rue"),
            b'f' => self.literal(b"alse"),
            b'-' => self.skip_digits(),
            b'0'..=b'9' => {
                self.i -= 1;
                self.skip_digits()
            }
            b'[' => {
                let depth = (depth < MAX_DEPTH).then_some(depth + 1)?;
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip_value(depth)?;
                    match self.next()? {
                        b',' => {}
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'{' => {
                let depth = (depth < MAX_DEPTH).then_some(depth + 1)?;
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.eat(b'"')?;
                    self.skip_str()?;
                    self.eat(b':')?;
                    self.skip_value(depth)?;
                    match self.next()? {
                        b',' => {}
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }

    /// `0` or `[1-9][0-9]*` (a sign already eaten); what follows is the
    /// caller's to check (a `.` or `e` there is not accepted).
    fn skip_digits(&mut self) -> Option<()> {
        match self.next()? {
            b'0' => Some(()),
            b'1'..=b'9' => {
                while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
                Some(())
            }
            _ => None,
        }
    }

    /// The rest of a string (its opening quote eaten), escapes allowed.
    fn skip_str(&mut self) -> Option<()> {
        loop {
            self.scan_plain();
            match self.next()? {
                b'"' => break,
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let end = self.i.checked_add(4)?;
                        let digits = std::str::from_utf8(self.b.get(self.i..end)?).ok()?;
                        if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
                            return None;
                        }
                        let unit = u16::from_str_radix(digits, 16).ok()?;
                        if (0xd800..0xe000).contains(&unit) {
                            return None;
                        }
                        self.i = end;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
        Some(())
    }
}
