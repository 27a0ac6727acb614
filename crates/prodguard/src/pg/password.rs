//! Passwords from where libpq looks for them (`PGPASSWORD`, the password
//! file), so they stay out of policies and target URLs: the PostgreSQL
//! client prodguard uses reads neither by itself.

use std::path::{Path, PathBuf};

use postgres::Config;
use postgres::config::Host;

/// The socket directories libpq matches as `localhost` in the password file.
const DEFAULT_SOCKET_DIRS: [&str; 3] = ["/var/run/postgresql", "/run/postgresql", "/tmp"];

/// The password for `config` when it names none: `PGPASSWORD`, else the
/// first matching line of the password file (`PGPASSFILE`, default
/// `~/.pgpass`), which, as libpq does, is ignored unless it is a regular
/// file that only its owner can read.
pub(super) fn from_environment(config: &Config) -> Option<String> {
    if let Some(password) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
        return Some(password);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")))?;
    let text = read_private(&file)?;
    // The client connects as the OS user when the URL names none.
    let user = match config.get_user() {
        Some(user) => user.to_owned(),
        None => crate::facts::os_user()?,
    };
    let host = match (config.get_hosts().first(), config.get_hostaddrs().first()) {
        (Some(Host::Tcp(name)), _) => name.clone(),
        (Some(Host::Unix(dir)), _) if !DEFAULT_SOCKET_DIRS.iter().any(|d| dir == Path::new(d)) => {
            dir.display().to_string()
        }
        (Some(Host::Unix(_)), _) | (None, None) => "localhost".to_owned(),
        (None, Some(addr)) => addr.to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let dbname = config.get_dbname().unwrap_or(&user);
    lookup(&text, [&host, &port, dbname, &user])
}

/// The file's text, when it is a regular file only its owner may read.
fn read_private(file: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;

    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() {
        tracing::warn!(file = %file.display(), "the PostgreSQL password file is not a regular file and is ignored");
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            file = %file.display(),
            "the PostgreSQL password file is readable by others and is ignored; chmod 600 it"
        );
        return None;
    }
    crate::small_file::read_to_string(file, crate::small_file::KEY_MAX_BYTES).ok()
}

/// The password of the first line of a password file matching
/// `host:port:database:user`, read as libpq reads it: a field that is
/// exactly `*` matches anything (`\*` is a literal star), `\` escapes the
/// next character, the password ends at the next unescaped `:`, and lines
/// starting with `#` are comments.
fn lookup(text: &str, wanted: [&str; 4]) -> Option<String> {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let mut rest = line;
            for want in wanted {
                rest = matches_field(rest, want)?;
            }
            Some(unescape_until_colon(rest))
        })
}

/// If the field at the start of `line` matches `want`, the text after its `:`.
fn matches_field<'a>(line: &'a str, want: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let mut want = want.chars();
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        let c = match c {
            '\\' => chars.next().map(|(_, escaped)| escaped)?,
            ':' => return want.next().is_none().then(|| &line[i + 1..]),
            c => c,
        };
        if want.next() != Some(c) {
            return None;
        }
    }
    None
}

/// The password: up to the first unescaped `:`, escapes removed.
fn unescape_until_colon(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => out.push(escaped),
                None => out.push('\\'),
            },
            ':' => break,
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let file = "# comment\n\
                    db.internal:5432:fleet:prodguard:first\n\
                    db.internal:5432:fleet:prodguard:second\n\
                    *:*:*:ops:wild\\:card\\\\\n\
                    short:line\n\
                    localhost:5433:*:app:p:ignored\n\
                    \\*:1:db:star:literal\n\
                    h\\:x:1:db:esc:escaped\n";
        let get = |wanted| lookup(file, wanted);
        assert_eq!(
            get(["db.internal", "5432", "fleet", "prodguard"]).as_deref(),
            Some("first")
        );
        assert_eq!(
            get(["anything", "1", "db", "ops"]).as_deref(),
            Some("wild:card\\")
        );
        // The password ends at the next unescaped colon, as in libpq.
        assert_eq!(get(["localhost", "5433", "x", "app"]).as_deref(), Some("p"));
        // `\*` is a literal star, `\:` a literal colon.
        assert_eq!(get(["*", "1", "db", "star"]).as_deref(), Some("literal"));
        assert_eq!(get(["anyhost", "1", "db", "star"]), None);
        assert_eq!(get(["h:x", "1", "db", "esc"]).as_deref(), Some("escaped"));
        assert_eq!(get(["db.internal", "5433", "fleet", "prodguard"]), None);
        assert_eq!(get(["short", "line", "x", "y"]), None);
    }
}
