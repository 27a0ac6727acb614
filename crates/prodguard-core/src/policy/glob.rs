//! Operation names, operation globs and glob matching.

/// The longest operation name or glob accepted, in bytes.
pub const MAX_OPERATION_LEN: usize = 200;

/// Whether a name matches a glob: `*` matches any run of characters, dots
/// included (so `db.*` matches `db.delete.users`: over-matching is the
/// fail-safe choice for a guard), `?` matches exactly one character, every
/// other character matches itself. Case-sensitive.
///
/// Runs in O(pattern × name) time at worst, never exponential.
///
/// ```
/// use prodguard_core::policy::glob_matches;
/// assert!(glob_matches("db.*", "db.delete.users"));
/// assert!(glob_matches("db.delete.?", "db.delete.x"));
/// assert!(!glob_matches("db.*", "cache.flush"));
/// ```
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    // Most rules do not match: walk the literal text before the first
    // wildcard and reject at the first byte that differs (usually the
    // first), without the general walk. (Wildcards are ASCII, so the text
    // before one is whole characters in both strings.)
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let mut literal = 0;
    loop {
        match p.get(literal) {
            None => return n.len() == literal,
            Some(b'*' | b'?') => break,
            Some(&c) if n.get(literal) == Some(&c) => literal += 1,
            Some(_) => return false,
        }
    }
    match (pattern.get(literal..), name.get(literal..)) {
        (Some(pattern), Some(name)) => wildcards_match(pattern, name),
        _ => false,
    }
}

/// [`glob_matches`] past the literal text: `pattern` starts with a wildcard.
fn wildcards_match(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    // Validated names and globs are ASCII: match their bytes without
    // allocating (this runs for every rule of every decision).
    if pattern.is_ascii() && name.is_ascii() {
        wildcard_match(pattern.as_bytes(), name.as_bytes(), b'*', b'?')
    } else {
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        wildcard_match(&p, &n, '*', '?')
    }
}

fn wildcard_match<T: Copy + PartialEq>(p: &[T], n: &[T], star_sym: T, any: T) -> bool {
    let (mut pi, mut ni) = (0usize, 0usize);
    // Where the last `*` was, and the name position it currently absorbs up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(&c) if c == star_sym => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == any || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                // Let the last star absorb one more character and retry.
                Some((star_pi, star_ni)) => {
                    star = Some((star_pi, star_ni + 1));
                    pi = star_pi + 1;
                    ni = star_ni + 1;
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == star_sym))
}

/// Checks an operation name such as `db.migrate` or `cache.flush-all`:
/// dot-separated segments of lowercase ASCII letters, digits, `_` and `-`.
///
/// Callers validate names before evaluating a policy against them; the
/// error says what is wrong and what is expected.
///
/// ```
/// use prodguard_core::policy::validate_operation_name;
/// assert!(validate_operation_name("db.delete.users").is_ok());
/// assert!(validate_operation_name("DB.Migrate").is_err());
/// assert!(validate_operation_name("db.*").is_err());
/// ```
pub fn validate_operation_name(name: &str) -> Result<(), String> {
    check(name, false)
}

/// Whether `validate_operation_name(name)` is `Ok`, in one pass over the
/// bytes and without building a message (the allow path asks this on
/// every call).
pub(crate) fn is_valid_operation_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_OPERATION_LEN {
        return false;
    }
    // A dot before the first byte: a leading dot is an empty segment.
    let mut previous = b'.';
    for &byte in bytes {
        let allowed = byte.is_ascii_lowercase()
            || byte.is_ascii_digit()
            || byte == b'_'
            || byte == b'-'
            || (byte == b'.' && previous != b'.');
        if !allowed {
            return false;
        }
        previous = byte;
    }
    previous != b'.'
}

/// Checks an operation glob: like an operation name, plus `*` and `?`.
pub(crate) fn validate_operation_glob(glob: &str) -> Result<(), String> {
    check(glob, true)
}

const FORM: &str = "dot-separated segments of lowercase letters, digits, `_` and `-`";

fn check(text: &str, wildcards: bool) -> Result<(), String> {
    let what = if wildcards {
        "an operation glob"
    } else {
        "an operation name"
    };
    let example = if wildcards {
        "e.g. \"db.migrate\" or \"db.delete.*\""
    } else {
        "e.g. \"db.migrate\" or \"db.delete.users\""
    };
    if text.is_empty() {
        return Err(format!(
            "{what} must not be empty; expected {FORM}, {example}"
        ));
    }
    // Quoted back escaped and at most 80 characters long: the text came from outside.
    let shown = crate::text::escape(&crate::session::shorten(text)).into_owned();
    if text.len() > MAX_OPERATION_LEN {
        return Err(format!(
            "{what} must be at most {MAX_OPERATION_LEN} bytes long, found `{shown}`"
        ));
    }
    for c in text.chars() {
        let ok = c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(c, '_' | '-' | '.')
            || (wildcards && matches!(c, '*' | '?'));
        if ok {
            continue;
        }
        let problem = if c.is_ascii_uppercase() {
            format!(
                "uppercase letter `{c}` in {what} `{shown}`; names are lowercase (use `{}`)",
                shown.to_ascii_lowercase()
            )
        } else if c.is_whitespace() {
            format!("whitespace in {what} `{shown}`; expected {FORM}, {example}")
        } else if !wildcards && matches!(c, '*' | '?') {
            format!(
                "wildcard `{c}` in {what} `{shown}`; wildcards are only for policy rules, name the exact operation, {example}"
            )
        } else {
            format!(
                "character `{}` is not allowed in {what} `{shown}`; expected {FORM}, {example}",
                crate::text::escape(c.encode_utf8(&mut [0; 4]))
            )
        };
        return Err(problem);
    }
    if text.split('.').any(str::is_empty) {
        return Err(format!(
            "empty segment in {what} `{shown}` (a leading, trailing or doubled dot); expected {FORM}, {example}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_name_check_agrees_with_the_one_that_explains() {
        const ALPHABET: &[char] = &[
            'a', 'z', '0', '9', '_', '-', '.', 'A', ' ', '*', '?', '/', 'é', '\u{0}',
        ];
        let mut rng = crate::test_rng::Rng(0x2545_f491_4f6c_dd1d);
        let mut names: Vec<String> = vec![
            String::new(),
            ".".into(),
            "a".into(),
            "a.".into(),
            ".a".into(),
            "a..b".into(),
            "a".repeat(MAX_OPERATION_LEN),
            "a".repeat(MAX_OPERATION_LEN + 1),
        ];
        for _ in 0..20_000 {
            let len = rng.below(9);
            names.push((0..len).map(|_| *rng.pick(ALPHABET)).collect());
        }
        for name in names {
            assert_eq!(
                is_valid_operation_name(&name),
                validate_operation_name(&name).is_ok(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn star_matches_any_run_including_dots() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*", "db.migrate"));
        assert!(glob_matches("db.*", "db.delete.users"));
        assert!(glob_matches("db.*", "db.x"));
        assert!(!glob_matches("db.*", "db"));
        assert!(!glob_matches("db.*", "dbx.delete"));
        assert!(glob_matches("*.flush", "cache.redis.flush"));
        assert!(!glob_matches("*.flush", "cache.flushall"));
        assert!(glob_matches("db.*.users", "db.delete.users"));
        assert!(glob_matches("db.*.users", "db.a.b.users"));
        assert!(!glob_matches("db.*.users", "db.delete.user"));
        assert!(glob_matches("a*b*c", "abc"));
        assert!(glob_matches("a*b*c", "aXbYbZc"));
        assert!(!glob_matches("a*b*c", "aXbYbZ"));
        assert!(glob_matches("**", "x"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(glob_matches("db.v?", "db.v1"));
        assert!(!glob_matches("db.v?", "db.v"));
        assert!(!glob_matches("db.v?", "db.v12"));
        assert!(glob_matches("db?migrate", "db.migrate"));
        assert!(glob_matches("?", "é"));
    }

    #[test]
    fn literals_are_exact_and_case_sensitive() {
        assert!(glob_matches("db.migrate", "db.migrate"));
        assert!(!glob_matches("db.migrate", "db.migrate2"));
        assert!(!glob_matches("db.migrate", "db.migrat"));
        assert!(!glob_matches("db.migrate", "DB.migrate"));
        assert!(!glob_matches("", "x"));
        assert!(glob_matches("", ""));
    }

    #[test]
    fn pathological_patterns_finish_quickly() {
        // Exponential backtracking would never finish on this input.
        let pattern = "a*".repeat(50) + "b";
        let name = "a".repeat(5000);
        assert!(!glob_matches(&pattern, &name));
        assert!(glob_matches(&("a*".repeat(50) + "a"), &name));
    }

    #[test]
    fn operation_names_are_checked() {
        assert_eq!(validate_operation_name("db.migrate"), Ok(()));
        assert_eq!(validate_operation_name("cache.flush-all_2"), Ok(()));
        let err = |s: &str| validate_operation_name(s).err().unwrap_or_default();
        assert!(err("").contains("must not be empty"), "{}", err(""));
        assert!(err("DB.migrate").contains("uppercase letter `D`"));
        assert!(err("db migrate").contains("whitespace"));
        assert!(err("db.*").contains("wildcard `*`"));
        assert!(err("db..migrate").contains("empty segment"));
        assert!(err(".db").contains("empty segment"));
        assert!(err("db.").contains("empty segment"));
        assert!(err("db/migrate").contains("character `/` is not allowed"));
        // Quoted back escaped: the name came from outside.
        assert_eq!(
            err("db.\u{1b}[31m\r\n"),
            "character `\\u{1b}` is not allowed in an operation name `db.\\u{1b}[31m\\r\\n`; \
             expected dot-separated segments of lowercase letters, digits, `_` and `-`, \
             e.g. \"db.migrate\" or \"db.delete.users\""
        );
        assert!(err("db.a\u{202e}b").contains("character `\\u{202e}`"));
        assert!(err(&"a".repeat(201)).contains("at most 200 bytes"));
        assert_eq!(validate_operation_glob("db.*"), Ok(()));
        assert_eq!(validate_operation_glob("*"), Ok(()));
        assert_eq!(validate_operation_glob("db.v?.*"), Ok(()));
        assert!(validate_operation_glob("db.*.").is_err());
        assert!(validate_operation_glob("Db.*").is_err());
    }
}

#[cfg(test)]
mod exhaustive {
    use super::glob_matches;

    /// The definition, recursively: what every fast path must agree with.
    fn reference(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| reference(rest, &n[i..])),
            Some((&c, rest)) => n
                .split_first()
                .is_some_and(|(&m, tail)| (c == '?' || c == m) && reference(rest, tail)),
        }
    }

    fn all_strings(alphabet: &[char], max: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut layer = vec![String::new()];
        for _ in 0..max {
            layer = layer
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            out.extend(layer.iter().cloned());
        }
        out
    }

    #[test]
    fn every_short_pattern_agrees_with_the_definition() {
        let patterns = all_strings(&['a', 'b', '.', '*', '?', 'é'], 4);
        let names = all_strings(&['a', 'b', '.', 'é'], 4);
        for p in &patterns {
            let pc: Vec<char> = p.chars().collect();
            for n in &names {
                let nc: Vec<char> = n.chars().collect();
                assert_eq!(glob_matches(p, n), reference(&pc, &nc), "{p:?} vs {n:?}");
            }
        }
    }
}
