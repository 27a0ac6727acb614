//! Passwords from where libpq looks for them (`PGPASSWORD`, the password
//! file), so they stay out of policies and target URLs: the PostgreSQL
//! client prodguard uses reads neither by itself.

use std::path::{Path, PathBuf};

use postgres::Config;
use postgres::config::Host;

/// The password for `config` when it names none: `PGPASSWORD`, else the
/// first matching line of the password file (`PGPASSFILE`, default
/// `~/.pgpass`), which, as libpq does, is ignored when others can read it.
pub(super) fn from_environment(config: &Config) -> Option<String> {
    if let Some(password) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
        return Some(password);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")))?;
    let text = read_private(&file)?;
    let user = config
        .get_user()
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())?;
    let host = match (config.get_hosts().first(), config.get_hostaddrs().first()) {
        (Some(Host::Tcp(name)), _) => name.clone(),
        // libpq matches a socket connection as "localhost".
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

/// The file's text, when only its owner may read it.
fn read_private(file: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;

    let meta = std::fs::metadata(file).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            file = %file.display(),
            "the PostgreSQL password file is readable by others and is ignored; chmod 600 it"
        );
        return None;
    }
    std::fs::read_to_string(file).ok()
}

/// The password of the first line of a password file matching
/// `host:port:database:user` (`*` matches anything; `\:` and `\\` escape).
fn lookup(text: &str, wanted: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(fields)
        .find(|fields| {
            fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want)
        })
        .map(|mut fields| fields.swap_remove(4))
}

/// A line's five fields, unescaped; `None` when it has fewer.
fn fields(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
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
                    localhost:5433:*:app:p:with:colons\n";
        let get = |wanted| lookup(file, wanted);
        assert_eq!(
            get(["db.internal", "5432", "fleet", "prodguard"]).as_deref(),
            Some("first")
        );
        assert_eq!(
            get(["anything", "1", "db", "ops"]).as_deref(),
            Some("wild:card\\")
        );
        assert_eq!(
            get(["localhost", "5433", "x", "app"]).as_deref(),
            Some("p:with:colons")
        );
        assert_eq!(get(["db.internal", "5433", "fleet", "prodguard"]), None);
        assert_eq!(get(["short", "line", "x", "y"]), None);
    }
}
