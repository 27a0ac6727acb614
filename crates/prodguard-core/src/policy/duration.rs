//! Durations in policies: `"90s"`, `"15m"`, `"1h"`, `"2d"`, `"1h30m"`.

/// The accepted form, for error messages.
pub const DURATION_FORM: &str = "a duration such as \"90s\", \"15m\", \"1h\", \"2d\" or \"1h30m\" \
     (whole numbers each followed by a unit: d, h, m or s, largest unit first, no spaces)";

/// Parses a policy duration into seconds.
///
/// The form is one or more `<number><unit>` parts with units `d`, `h`, `m`,
/// `s`, each unit at most once and largest first (`1h30m`, not `30m1h`), no
/// whitespace. Zero and values that overflow are rejected. The error says
/// what is wrong and what form is accepted.
///
/// ```
/// use prodguard_core::policy::parse_duration;
/// assert_eq!(parse_duration("1h30m"), Ok(5400));
/// assert!(parse_duration("15").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = |why: &str| Err(format!("{why}; expected {DURATION_FORM}, found {text:?}"));
    if text.is_empty() {
        return bad("the duration is empty");
    }
    if text.chars().any(char::is_whitespace) {
        return bad("a duration must not contain whitespace");
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    // Rank of the last unit seen (d = 4 … s = 1); each next must be smaller.
    let mut last_rank = u8::MAX;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            let next = number
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(digit)));
            match next {
                Some(n) => number = Some(n),
                None => return bad("the duration is too long"),
            }
            continue;
        }
        let (seconds, rank) = match c {
            'd' => (86_400u64, 4u8),
            'h' => (3_600, 3),
            'm' => (60, 2),
            's' => (1, 1),
            _ if c.is_ascii_alphabetic() => {
                return bad(&format!("unknown unit `{c}`"));
            }
            _ => return bad(&format!("unexpected character {c:?}")),
        };
        let Some(n) = number.take() else {
            return bad(&format!("the unit `{c}` has no number before it"));
        };
        if rank >= last_rank {
            return bad(&format!(
                "the unit `{c}` is repeated or out of order (write the largest unit first)"
            ));
        }
        last_rank = rank;
        match n.checked_mul(seconds).and_then(|s| total.checked_add(s)) {
            Some(t) => total = t,
            None => return bad("the duration is too long"),
        }
    }
    if let Some(n) = number {
        return bad(&format!("the number {n} has no unit"));
    }
    if total == 0 {
        return bad("the duration must be longer than zero");
    }
    Ok(total)
}

/// Renders seconds in the form [`parse_duration`] reads: `900` → `"15m"`,
/// `5400` → `"1h30m"`, `0` → `"0s"` (which the parser rejects).
pub fn format_duration(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = seconds;
    for (unit, size) in [('d', 86_400u64), ('h', 3_600), ('m', 60), ('s', 1)] {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push(unit);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("1d2h3m4s"), Ok(93_784));
        assert_eq!(parse_duration("0h5m"), Ok(300));
        assert_eq!(parse_duration("120m"), Ok(7200));
    }

    #[test]
    fn rejected_forms_say_why_and_what_is_expected() {
        let cases = [
            ("15", "the number 15 has no unit"),
            ("15x", "unknown unit `x`"),
            ("m", "the unit `m` has no number before it"),
            ("0s", "must be longer than zero"),
            ("0h0m", "must be longer than zero"),
            ("", "the duration is empty"),
            ("1h 30m", "must not contain whitespace"),
            (" 1h", "must not contain whitespace"),
            ("30m1h", "repeated or out of order"),
            ("1m1m", "repeated or out of order"),
            ("-5m", "unexpected character '-'"),
            ("1.5h", "unexpected character '.'"),
            ("99999999999999999999s", "too long"),
            ("999999999999999d", "too long"),
            ("15M", "unknown unit `M`"),
        ];
        for (text, why) in cases {
            let err = parse_duration(text).err().unwrap_or_default();
            assert!(err.contains(why), "{text:?}: {err}");
            assert!(err.contains("such as \"90s\""), "{text:?}: {err}");
        }
    }

    #[test]
    fn format_round_trips() {
        for s in [
            1,
            59,
            60,
            61,
            900,
            3600,
            5400,
            86_399,
            86_400,
            93_784,
            u64::MAX,
        ] {
            assert_eq!(parse_duration(&format_duration(s)), Ok(s), "{s}");
        }
        assert_eq!(format_duration(900), "15m");
        assert_eq!(format_duration(5400), "1h30m");
        assert_eq!(format_duration(0), "0s");
    }
}
