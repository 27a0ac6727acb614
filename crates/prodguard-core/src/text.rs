//! Text that came from outside (environment values, targets, operation
//! names, actor names, paths, record fields), made safe to show.
//!
//! Every message, prompt or hint that embeds such text passes it through
//! [`escape`], so that a value cannot move the cursor, recolour the terminal,
//! forge a line of a prompt or reorder what a person reads. Suggested
//! commands quote it with [`shell_word`].
//!
//! ```
//! use prodguard_core::text::{escape, shell_word};
//!
//! assert_eq!(escape("prod\u{1b}[31m\r\n"), "prod\\u{1b}[31m\\r\\n");
//! assert_eq!(escape("orders"), "orders");
//! assert_eq!(shell_word("orders.db"), "orders.db");
//! assert_eq!(shell_word("my orders"), "'my orders'");
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` changes how the text around it is displayed without being
/// seen itself: every Unicode default-ignorable code point (among them the
/// bidirectional controls U+202A–U+202E and U+2066–U+2069, the zero-width
/// characters U+200B–U+200D, U+2060 and U+FEFF, the soft hyphen, the
/// Hangul fillers, variation selectors and tag characters), the Arabic
/// letter mark, and the line and paragraph separators.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        // Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties).
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
            // They break the line a person reads.
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// Whether [`escape`] writes `c` as an escape rather than as itself:
/// controls (C0, DEL, C1), [`is_invisible`] characters, and the backslash
/// (so that an escape in the output always means an escape).
fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || is_invisible(c)
}

/// `text` as it may be shown on a terminal or in a message: controls,
/// bidirectional and zero-width characters written as `\n`, `\r`, `\t` or
/// `\u{…}`, the backslash doubled; everything else as it is. Borrowed
/// when nothing needed escaping.
pub fn escape(text: &str) -> Cow<'_, str> {
    // Printable ASCII other than the backslash needs nothing: most text.
    let printable = |b: &u8| (b' '..=b'~').contains(b) && *b != b'\\';
    if text.as_bytes().iter().all(printable) || !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `text` as one word of a POSIX shell command line a person may copy:
/// as it is when it holds only characters no shell treats specially,
/// in single quotes otherwise, and in `$'…'` with escapes when it holds
/// characters [`escape`] would escape (so what is shown is still typable
/// and means the same bytes).
pub fn shell_word(text: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-/:@%+=,".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        return Cow::Borrowed(text);
    }
    if text.chars().all(|c| c == '\\' || !needs_escape(c)) {
        return Cow::Owned(format!("'{}'", text.replace('\'', r"'\''")));
    }
    let mut out = String::from("$'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && u32::from(c) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_shows_every_control_and_invisible_character() {
        let table: &[(&str, &str)] = &[
            ("production", "production"),
            ("prod-eu", "prod-eu"),
            ("déploiement", "déploiement"),
            ("a b 'c' \"d\"", "a b 'c' \"d\""),
            ("\u{1b}[31mprod\r\nX", "\\u{1b}[31mprod\\r\\nX"),
            ("a\tb\u{0}c\u{7f}", "a\\tb\\u{0}c\\u{7f}"),
            ("\u{9b}31m", "\\u{9b}31m"),
            ("abc\u{202e}fed", "abc\\u{202e}fed"),
            ("\u{2066}x\u{2069}", "\\u{2066}x\\u{2069}"),
            ("or\u{200b}ders\u{feff}", "or\\u{200b}ders\\u{feff}"),
            ("a\u{2060}b\u{200d}", "a\\u{2060}b\\u{200d}"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
            ("soft\u{ad}hyphen", "soft\\u{ad}hyphen"),
            ("orders\u{fe0f}\u{e0041}", "orders\\u{fe0f}\\u{e0041}"),
            (
                "\u{3164}\u{115f}\u{180e}\u{34f}",
                "\\u{3164}\\u{115f}\\u{180e}\\u{34f}",
            ),
            ("C:\\path", "C:\\\\path"),
            ("\\u{1b}", "\\\\u{1b}"),
        ];
        for &(raw, shown) in table {
            assert_eq!(escape(raw), shown, "{raw:?}");
            assert!(
                !escape(raw)
                    .chars()
                    .any(|c| c.is_control() || is_invisible(c)),
                "{raw:?}"
            );
        }
        assert!(matches!(escape("orders"), Cow::Borrowed(_)));
    }

    #[test]
    fn shell_words_are_typable_and_mean_the_same_text() {
        let table: &[(&str, &str)] = &[
            ("db.migrate", "db.migrate"),
            ("/var/lib/app.db", "/var/lib/app.db"),
            ("postgresql://app@db/orders", "postgresql://app@db/orders"),
            ("", "''"),
            ("my orders", "'my orders'"),
            ("it's", r"'it'\''s'"),
            ("$(rm -rf /)", "'$(rm -rf /)'"),
            ("a\\b", r"'a\b'"),
            ("\u{1b}[31m'x'", r"$'\x1b[31m\'x\''"),
            ("a\u{202e}b\n", r"$'a\u202eb\n'"),
        ];
        for &(raw, word) in table {
            assert_eq!(shell_word(raw), word, "{raw:?}");
            assert!(
                !shell_word(raw)
                    .chars()
                    .any(|c| c.is_control() || is_invisible(c))
            );
        }
    }
}
