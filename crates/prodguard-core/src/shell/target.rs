//! Targets, normalised so that one database, cluster or path is always
//! written the same way, and never with a password.

use std::fmt::Write as _;

use crate::secret::redact_password;

/// Directories under the working directory that hold only what a build or
/// a test run made again: `rm -r` of them is not recognised.
const BUILD_DIRS: [&str; 11] = [
    "target",
    "node_modules",
    "dist",
    "build",
    ".cache",
    "tmp",
    "__pycache__",
    ".pytest_cache",
    "coverage",
    ".next",
    "out",
];

/// `path` with `.`, `..` and repeated `/` resolved lexically (symbolic
/// links cannot be known without I/O). `..` above `/` stays at `/`; above a
/// relative path's start it is kept.
pub(super) fn normalize_path(path: &str) -> String {
    if is_normal(path) {
        return path.to_owned();
    }
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(".."),
            },
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Whether `path` is already normal: no empty, `.` or `..` component
/// (the root `/` alone excepted), no trailing `/`.
fn is_normal(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    let bytes = path.as_bytes();
    if bytes.is_empty() || bytes.last() == Some(&b'/') {
        return false;
    }
    // Each component starts after a `/` (or at 0 for a relative path).
    let mut start = usize::from(bytes.first() == Some(&b'/'));
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        if b == b'/' {
            if matches!(bytes.get(start..i), Some(b"" | b"." | b"..")) {
                return false;
            }
            start = i + 1;
        }
    }
    !matches!(bytes.get(start..), Some(b"" | b"." | b".."))
}

/// `path` made absolute against `cwd` (when it is relative and `cwd` is
/// known) and normalised.
pub(super) fn resolve(path: &str, cwd: Option<&str>) -> String {
    match cwd {
        Some(cwd) if !path.starts_with('/') => normalize_path(&format!("{cwd}/{path}")),
        _ => normalize_path(path),
    }
}

/// Whether removing `resolved` (normalised, absolute when `cwd` is known)
/// removes only build output or temporary files: a path under `/tmp/`, or
/// one whose first component below the working directory is a build
/// directory. `cwd` is `None` when unknown: a relative path is then judged
/// by its own first component.
pub(super) fn is_disposable(resolved: &str, cwd: Option<&str>) -> bool {
    if resolved
        .strip_prefix("/tmp/")
        .is_some_and(|rest| !rest.is_empty())
    {
        return true;
    }
    let below = match cwd {
        // `cd / && rm -rf tmp` removes /tmp itself: not disposable.
        Some("/") => return false,
        Some(cwd) => match resolved.strip_prefix(cwd) {
            Some(rest) => match rest.strip_prefix('/') {
                Some(below) => below,
                None => return false,
            },
            None if !resolved.starts_with('/') => resolved,
            None => return false,
        },
        None if resolved.starts_with('/') => return false,
        None => resolved,
    };
    let first = below.split('/').next().unwrap_or_default();
    BUILD_DIRS.contains(&first)
}

/// A connection field: not given, given, or given as something unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Field {
    #[default]
    Unset,
    Known(String),
    Unknown,
}

impl Field {
    fn is_unset(&self) -> bool {
        *self == Field::Unset
    }

    /// Sets it unless it is already set (earlier sources win).
    pub(super) fn fill(&mut self, value: Field) {
        if self.is_unset() {
            *self = value;
        }
    }
}

/// Where a database client connects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Dsn {
    pub(super) user: Field,
    pub(super) host: Field,
    pub(super) port: Field,
    pub(super) db: Field,
}

impl Dsn {
    pub(super) fn is_unset(&self) -> bool {
        self.user.is_unset() && self.host.is_unset() && self.port.is_unset() && self.db.is_unset()
    }

    /// Every field not yet set becomes unknown (a service file, a URL in
    /// an unknown variable could set any of them).
    pub(super) fn fill_unknown(&mut self) {
        for field in [&mut self.user, &mut self.host, &mut self.port, &mut self.db] {
            field.fill(Field::Unknown);
        }
    }

    /// Reads a libpq `dbname` argument: a URL, a `key=value` connection
    /// string, or a database name.
    pub(super) fn postgres_dbname(&mut self, value: &str) {
        if scheme_of(value).is_some_and(|s| matches!(s.as_str(), "postgres" | "postgresql")) {
            self.postgres_url(value);
        } else if value.contains('=') {
            self.conninfo(value);
        } else {
            self.db.fill(known(value));
        }
    }

    /// Reads a `postgres://` URL (what libpq takes for the password is
    /// removed first).
    pub(super) fn postgres_url(&mut self, url: &str) {
        let redacted = redact_password(url);
        let url = redacted.as_deref().unwrap_or(url);
        let Some(parsed) = Url::parse(url, true) else {
            self.fill_unknown();
            return;
        };
        for (key, value) in parsed.query_pairs() {
            self.keyword(&key, &value);
        }
        self.url_fields(&parsed);
    }

    /// Fills fields from a URL's user, host, port and first path segment.
    pub(super) fn url_fields(&mut self, url: &Url<'_>) {
        if let Some(user) = url.user.filter(|u| !u.is_empty()) {
            self.user.fill(known(&percent_decode(user)));
        }
        let (host, port) = url.host_port();
        if !host.is_empty() {
            self.host.fill(known(&percent_decode(host)));
        }
        if let Some(port) = port.filter(|p| !p.is_empty()) {
            self.port.fill(known(port));
        }
        let db = url.path.split('/').next().unwrap_or_default();
        if !db.is_empty() {
            self.db.fill(known(&percent_decode(db)));
        }
    }

    /// Reads `host=… dbname=… user=… port=…` (quoted values allowed).
    pub(super) fn conninfo(&mut self, text: &str) {
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let Some((key, after)) = rest.split_once('=') else {
                break;
            };
            let key = key.trim();
            let after = after.trim_start();
            let (value, next) = conninfo_value(after);
            self.keyword(key, &value);
            rest = next.trim_start();
        }
    }

    /// One libpq connection keyword.
    fn keyword(&mut self, key: &str, value: &str) {
        match key {
            "host" | "hostaddr" => self.host.fill(known(value)),
            "port" => self.port.fill(known(value)),
            "user" => self.user.fill(known(value)),
            // libpq expands only the first `dbname`: one inside a
            // connection string is a plain name.
            "dbname" => self.db.fill(known(value)),
            // A service file (unreadable here) could name anything.
            "service" => self.fill_unknown(),
            _ => {}
        }
    }

    /// `scheme://[user@]host[:port][/db]`, or `None` when any part is
    /// unknown. A missing host is `localhost`; with libpq (`default_db`)
    /// a missing database defaults to the user's name.
    pub(super) fn render(&self, scheme: &str, default_db: bool) -> Option<String> {
        let value = |field: &Field| match field {
            Field::Unset => Some(None),
            Field::Known(v) => Some(Some(v.clone())),
            Field::Unknown => None,
        };
        let (user, host, port, db) = (
            value(&self.user)?,
            value(&self.host)?,
            value(&self.port)?,
            value(&self.db)?,
        );
        let db = match db {
            Some(db) => Some(db),
            None if default_db => user.clone(),
            None => None,
        };
        let mut out = format!("{scheme}://");
        if let Some(user) = user.filter(|u| !u.is_empty()) {
            out.push_str(&percent_encode(&user));
            out.push('@');
        }
        let host = host
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        out.push_str(&encode_host(&host));
        if let Some(port) = port.filter(|p| !p.is_empty()) {
            out.push(':');
            out.push_str(&percent_encode(&port));
        }
        if let Some(db) = db.filter(|d| !d.is_empty()) {
            out.push('/');
            out.push_str(&percent_encode(&db));
        }
        Some(out)
    }
}

fn known(value: &str) -> Field {
    Field::Known(value.to_owned())
}

/// A conninfo value (bare, or single-quoted with `\'` and `\\`), and the
/// text after it.
fn conninfo_value(text: &str) -> (String, &str) {
    let Some(quoted) = text.strip_prefix('\'') else {
        let end = text.find(char::is_whitespace).unwrap_or(text.len());
        return (
            text.get(..end).unwrap_or_default().to_owned(),
            text.get(end..).unwrap_or_default(),
        );
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, next)) = chars.next() {
                    value.push(next);
                }
            }
            '\'' => return (value, quoted.get(i + 1..).unwrap_or_default()),
            c => value.push(c),
        }
    }
    (value, "")
}

/// A URL's parts (`scheme://[user[:password]@]hostport[/path][?query]`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Url<'a> {
    pub(super) scheme: &'a str,
    /// Without the password.
    pub(super) user: Option<&'a str>,
    pub(super) hostport: &'a str,
    /// After the `/` that ends the host (which is not included).
    pub(super) path: &'a str,
    pub(super) query: &'a str,
}

impl<'a> Url<'a> {
    /// Splits `url`. The user information ends at the first `@` with
    /// `first_at` (libpq's reading), else at the last one before the
    /// query (so a password holding `@` is never taken for the host).
    pub(super) fn parse(url: &'a str, first_at: bool) -> Option<Url<'a>> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return None;
        }
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let before_query = before_query.split('#').next().unwrap_or_default();
        let at = if first_at {
            before_query.find('@')
        } else {
            before_query.rfind('@')
        };
        let (user, after) = match at {
            Some(at) => (
                before_query
                    .get(..at)
                    .map(|u| u.split(':').next().unwrap_or_default()),
                before_query.get(at + 1..).unwrap_or_default(),
            ),
            None => (None, before_query),
        };
        let (hostport, path) = after.split_once('/').unwrap_or((after, ""));
        Some(Url {
            scheme,
            user,
            hostport,
            path,
            query,
        })
    }

    /// The host and the port (`[::1]:5432` kept bracketed; a host list
    /// `a:1,b:2` kept whole).
    pub(super) fn host_port(&self) -> (&'a str, Option<&'a str>) {
        let hp = self.hostport;
        if hp.contains(',') {
            return (hp, None);
        }
        if hp.starts_with('[') {
            return match hp.find(']') {
                Some(end) => (
                    hp.get(1..end).unwrap_or_default(),
                    hp.get(end + 1..).and_then(|p| p.strip_prefix(':')),
                ),
                None => (hp, None),
            };
        }
        match hp.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hp, None),
        }
    }

    /// The query's `key=value` pairs, percent-decoded.
    pub(super) fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + 'a {
        self.query.split('&').filter(|p| !p.is_empty()).map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
    }
}

/// The lowercase scheme of a URL, without a `+driver` suffix
/// (`postgresql+psycopg2` → `postgresql`).
pub(super) fn scheme_of(text: &str) -> Option<String> {
    let (scheme, _) = text.split_once(':')?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let base = scheme.split('+').next().unwrap_or_default();
    Some(base.to_ascii_lowercase())
}

/// The target a database URL names (as in `DATABASE_URL`): PostgreSQL and
/// MySQL URLs normalised, SQLite ones as `sqlite:/abs/path`, others with
/// their password and query removed. `None` when it names nothing.
pub(super) fn database_url(url: &str, cwd: Option<&str>) -> Option<String> {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix("jdbc:") {
        return database_url(rest, cwd);
    }
    let Some(scheme) = scheme_of(url) else {
        // A bare file path names an SQLite database.
        let lower = url.to_ascii_lowercase();
        return [".db", ".sqlite", ".sqlite3"]
            .iter()
            .any(|ext| lower.ends_with(ext))
            .then(|| format!("sqlite:{}", resolve(url, cwd)));
    };
    match scheme.as_str() {
        "postgres" | "postgresql" | "postgis" | "pgsql" => {
            let mut dsn = Dsn::default();
            let rest = url.split_once("://").map_or("", |(_, r)| r);
            dsn.postgres_url(&format!("postgresql://{rest}"));
            dsn.render("postgresql", true)
        }
        "mysql" | "mysql2" | "mariadb" => {
            let parsed = Url::parse(url, false)?;
            let mut dsn = Dsn::default();
            dsn.url_fields(&parsed);
            dsn.render("mysql", false)
        }
        "sqlite" | "sqlite3" | "file" => sqlite_target(url, cwd),
        _ => {
            let parsed = Url::parse(url, false)?;
            Some(generic_url(&parsed))
        }
    }
}

/// The target an SQLAlchemy URL names (Alembic's): as [`database_url`],
/// but `sqlite:///rel.db` is relative to the working directory and
/// `sqlite:////abs.db` absolute (SQLAlchemy takes what follows `///` as
/// the path), also with a driver (`sqlite+pysqlite:///…`).
pub(super) fn sqlalchemy_url(url: &str, cwd: Option<&str>) -> Option<String> {
    let url = url.trim();
    if scheme_of(url).as_deref() != Some("sqlite") {
        return database_url(url, cwd);
    }
    let rest = url.split_once(':').map_or("", |(_, rest)| rest);
    let path = rest.strip_prefix("///").unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(format!("sqlite:{}", resolve(path, cwd)))
}

/// `sqlite:/abs/path` for an SQLite URL (`sqlite:///abs`, `sqlite://rel`,
/// `sqlite3:rel`, `file:rel?mode=ro`) or a plain path.
pub(super) fn sqlite_target(url: &str, cwd: Option<&str>) -> Option<String> {
    let path = match url.split_once(':') {
        Some((scheme, rest)) if scheme_of(url).is_some() && !scheme.contains('/') => rest,
        _ => url,
    };
    let path = path.strip_prefix("//").unwrap_or(path);
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(format!("sqlite:{}", resolve(path, cwd)))
}

/// `scheme://[user@]hostport[/path]`: no password, no query.
pub(super) fn generic_url(url: &Url<'_>) -> String {
    let mut out = format!("{}://", url.scheme.to_ascii_lowercase());
    if let Some(user) = url.user.filter(|u| !u.is_empty()) {
        out.push_str(user);
        out.push('@');
    }
    out.push_str(url.hostport);
    if !url.path.is_empty() {
        out.push('/');
        out.push_str(url.path);
    }
    out
}

/// `%XX` escapes decoded (invalid ones kept).
pub(super) fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|&b| char::from(b).to_digit(16));
        if b == b'%'
            && let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2))
        {
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with the characters that would change a URL's structure
/// escaped.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=".contains(c) || !c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A host for a URL: an IPv6 address in brackets, a socket directory
/// escaped, a host list as it is.
fn encode_host(host: &str) -> String {
    if host.contains(',') {
        return host.to_owned();
    }
    if host.contains(':') && !host.starts_with('[') {
        return format!("[{host}]");
    }
    percent_encode(host)
}
