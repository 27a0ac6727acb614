//! Database clients: where they connect, where their SQL comes from, and
//! what it does.

use super::args::{Spec, head};
use super::parse::{Item, Simple, Stdin};
use super::recognize::Cmd;
use super::target::{self, Dsn, Field, Url};
use super::{Recognized, SqlSource};
use crate::shell::lex::RedirOp;
use crate::sql::{Dialect, classify};

/// What a command reads on its standard input, as far as the line shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Input {
    /// Nothing the line says: a terminal, or the caller's input.
    None,
    /// Text the line holds (a heredoc, a here-string, `echo … |`).
    Text(String),
    /// A file (`< FILE`, `cat FILE |`), absolute when the directory is known.
    File(String),
    /// Something the line does not show (another program's output).
    Unknown,
}

/// How many `cat |` links are followed back to the text they pass on.
const MAX_PIPE_HOPS: usize = 8;

/// What `cmd` reads on its standard input. `for_shell`: the text goes to a
/// shell (substitutions become unresolvable, not their source text).
pub(super) fn stdin(cmd: &Cmd<'_>, for_shell: bool) -> Input {
    input_of(cmd, cmd.simple, for_shell, 0)
}

fn input_of(cmd: &Cmd<'_>, simple: &Simple, for_shell: bool, hops: usize) -> Input {
    let text = |w: &super::lex::Word| {
        if for_shell {
            cmd.shell_text(w)
        } else {
            cmd.render(w)
        }
    };
    // The last redirection of descriptor 0 wins.
    for r in simple.redirs.iter().rev() {
        let reads = matches!(
            r.op,
            RedirOp::In
                | RedirOp::Heredoc
                | RedirOp::HereString
                | RedirOp::ReadWrite
                | RedirOp::DupIn
        );
        if !reads || r.fd.unwrap_or(0) != 0 {
            continue;
        }
        return match r.op {
            RedirOp::In => match cmd.value(&r.target) {
                Some(path) => Input::File(cmd.resolve(&path)),
                None => Input::Unknown,
            },
            RedirOp::Heredoc => match &r.body {
                Some(body) => Input::Text(text(body)),
                None => Input::Unknown,
            },
            RedirOp::HereString => Input::Text(format!("{}\n", text(&r.target))),
            _ => Input::Unknown,
        };
    }
    match simple.stdin {
        Stdin::Inherited => Input::None,
        Stdin::Pipe(None) => Input::Unknown,
        Stdin::Pipe(Some(index)) => match cmd.items.get(index) {
            Some(Item::Command(left)) if hops < MAX_PIPE_HOPS => {
                piped(cmd, left, for_shell, hops + 1)
            }
            _ => Input::Unknown,
        },
    }
}

/// What `left` writes into a pipe: the text of `echo` and `printf`, the
/// file or text `cat` passes on; anything else is unknown.
fn piped(cmd: &Cmd<'_>, left: &Simple, for_shell: bool, hops: usize) -> Input {
    let Some((program, args)) = left.words.split_first() else {
        return Input::Unknown;
    };
    let text = |w: &super::lex::Word| {
        if for_shell {
            cmd.shell_text(w)
        } else {
            cmd.render(w)
        }
    };
    let args: Vec<String> = args.iter().map(text).collect();
    match program.literal().map(|p| p.rsplit('/').next().unwrap_or(p)) {
        Some("echo") => Input::Text(echo(&args)),
        Some("printf") => Input::Text(printf(&args)),
        Some("cat") => {
            let files: Vec<&String> = args
                .iter()
                .filter(|a| !(a.starts_with('-') && a.len() > 1))
                .collect();
            match files.as_slice() {
                [] => input_of(cmd, left, for_shell, hops),
                [file] if file.as_str() == "-" => input_of(cmd, left, for_shell, hops),
                [file] if !file.contains('$') && !file.contains('`') => {
                    Input::File(cmd.resolve(file))
                }
                _ => Input::Unknown,
            }
        }
        _ => Input::Unknown,
    }
}

/// What `echo ARGS` prints (`-n`, `-e`, `-E` understood).
fn echo(args: &[String]) -> String {
    let mut escapes = false;
    let mut newline = true;
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        let Some(flags) = first.strip_prefix('-') else {
            break;
        };
        if flags.is_empty() || !flags.chars().all(|c| matches!(c, 'n' | 'e' | 'E')) {
            break;
        }
        for c in flags.chars() {
            match c {
                'n' => newline = false,
                'e' => escapes = true,
                _ => escapes = false,
            }
        }
        rest = tail;
    }
    let mut out = rest.join(" ");
    if escapes {
        out = unescape(&out);
    }
    if newline {
        out.push('\n');
    }
    out
}

/// `\n`, `\t`, `\\` and friends decoded.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// What `printf FORMAT ARGS` prints: `%s`-like conversions take the next
/// argument, the format repeats while arguments remain.
fn printf(args: &[String]) -> String {
    let Some((format, mut rest)) = args.split_first() else {
        return String::new();
    };
    let format = unescape(format);
    let mut out = String::new();
    loop {
        let mut used = false;
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                out.push('%');
                continue;
            }
            // Flags, width and precision, then the conversion letter.
            while chars.peek().is_some_and(|c| !c.is_ascii_alphabetic()) {
                chars.next();
            }
            let conversion = chars.next();
            if let Some((arg, tail)) = rest.split_first() {
                out.push_str(&if conversion == Some('b') {
                    unescape(arg)
                } else {
                    arg.clone()
                });
                rest = tail;
                used = true;
            }
        }
        if rest.is_empty() || !used {
            return out;
        }
    }
}

/// Whether a client's special commands (psql's `\d`, sqlite3's `.tables`)
/// were seen, and whether all of them only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meta {
    None,
    Reads,
    /// One may do anything (`\i FILE`, `\!`, `.read`, `.shell`, …).
    Unknown,
}

impl Meta {
    fn and(self, other: Meta) -> Meta {
        match (self, other) {
            (Meta::Unknown, _) | (_, Meta::Unknown) => Meta::Unknown,
            (Meta::Reads, _) | (_, Meta::Reads) => Meta::Reads,
            _ => Meta::None,
        }
    }
}

/// A psql backslash command (the line starting with `\`).
fn psql_meta(line: &str) -> Meta {
    let rest = line.trim().get(1..).unwrap_or_default();
    if rest.contains('\\') {
        return Meta::Unknown;
    }
    let name = rest.split_whitespace().next().unwrap_or_default();
    let args = rest.get(name.len()..).unwrap_or_default().trim();
    let base = name.trim_end_matches(['+', 'S']);
    let reads = base.starts_with('d')
        || matches!(
            base,
            "l" | "list"
                | "conninfo"
                | "timing"
                | "x"
                | "?"
                | "h"
                | "help"
                | "encoding"
                | "pset"
                | "a"
                | "t"
                | "H"
                | "f"
                | "C"
                | "T"
                | "echo"
                | "qecho"
                | "warn"
                | "q"
                | "quit"
                | "set"
                | "unset"
                | "errverbose"
                | "sf"
                | "sv"
                | "z"
                | "copyright"
        )
        || (matches!(base, "g" | "gx") && args.is_empty());
    if reads { Meta::Reads } else { Meta::Unknown }
}

/// An sqlite3 dot command.
fn sqlite_meta(line: &str) -> Meta {
    let name = line
        .trim()
        .get(1..)
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or_default();
    let reads = matches!(
        name,
        "tables"
            | "schema"
            | "indexes"
            | "indices"
            | "databases"
            | "dbinfo"
            | "mode"
            | "headers"
            | "header"
            | "help"
            | "show"
            | "timer"
            | "width"
            | "print"
            | "echo"
            | "quit"
            | "exit"
            | "nullvalue"
            | "separator"
            | "stats"
            | "fullschema"
            | "eqp"
            | "explain"
            | "changes"
            | "bail"
            | "dump"
            | "version"
    );
    if reads { Meta::Reads } else { Meta::Unknown }
}

/// Splits a client's input into SQL and special commands. `pieces` are
/// whole units (each `-c`, each SQL operand) or, with `by_line`, texts
/// whose lines are units.
fn script(pieces: &[String], by_line: bool, special: u8, meta: fn(&str) -> Meta) -> (String, Meta) {
    let mut sql = String::new();
    let mut seen = Meta::None;
    let mut unit = |text: &str, sep: &str, sql: &mut String| {
        if text.trim_start().as_bytes().first() == Some(&special) {
            seen = seen.and(meta(text));
        } else {
            sql.push_str(text);
            sql.push_str(sep);
        }
    };
    for piece in pieces {
        if by_line {
            for line in piece.lines() {
                unit(line, "\n", &mut sql);
            }
        } else {
            unit(piece, ";\n", &mut sql);
        }
    }
    (sql, seen)
}

/// Classifies SQL seen on the line: the kind and the source.
fn inline(sql: &str, meta: Meta, dialect: Dialect) -> (String, SqlSource) {
    let script = classify(sql, dialect);
    let kind = match meta {
        Meta::Unknown => "db.unknown",
        Meta::Reads if script.statements.is_empty() => "db.read",
        _ => script.operation.as_str(),
    };
    (
        kind.to_owned(),
        SqlSource::Inline {
            dialect,
            fingerprint: script.fingerprint,
        },
    )
}

/// The SQL a client runs when no option gave it: its standard input.
fn from_stdin(
    cmd: &Cmd<'_>,
    dialect: Dialect,
    special: u8,
    meta: fn(&str) -> Meta,
    fixup: fn(String) -> String,
) -> (String, SqlSource) {
    match stdin(cmd, false) {
        Input::Text(text) => {
            let (sql, seen) = script(&[text], true, special, meta);
            inline(&fixup(sql), seen, dialect)
        }
        Input::File(path) => unknown(SqlSource::File { dialect, path }),
        Input::None | Input::Unknown => unknown(SqlSource::Unseen { dialect }),
    }
}

fn unknown(source: SqlSource) -> (String, SqlSource) {
    ("db.unknown".to_owned(), source)
}

/// A file operand of a client: resolved, or unseen when not literal.
fn file_source(cmd: &Cmd<'_>, word: &super::lex::Word, dialect: Dialect) -> (String, SqlSource) {
    match cmd.value(word) {
        Some(path) => unknown(SqlSource::File {
            dialect,
            path: cmd.resolve(&path),
        }),
        None => unknown(SqlSource::Unseen { dialect }),
    }
}

/// The server of a PostgreSQL client tool (`pg_restore`, `dropdb`): its
/// `-h`, `-p` and `-U`, then what libpq reads from the environment.
fn postgres_server(cmd: &Cmd<'_>, opts: &super::args::Opts, dsn: &mut Dsn) {
    if let Some(w) = opts.last(&["h", "host"]) {
        dsn.host.fill(cmd.field(w));
    }
    if let Some(w) = opts.last(&["p", "port"]) {
        dsn.port.fill(cmd.field(w));
    }
    if let Some(w) = opts.last(&["U", "username"]) {
        dsn.user.fill(cmd.field(w));
    }
    postgres_env(cmd, dsn, false);
}

/// Fills the fields libpq reads from the environment.
fn postgres_env(cmd: &Cmd<'_>, dsn: &mut Dsn, with_database: bool) {
    if cmd.env("PGSERVICE") != Field::Unset {
        dsn.fill_unknown();
    }
    dsn.host.fill(cmd.env("PGHOST"));
    dsn.port.fill(cmd.env("PGPORT"));
    dsn.user.fill(cmd.env("PGUSER"));
    if with_database {
        dsn.db.fill(cmd.env("PGDATABASE"));
    }
}

/// A libpq `dbname` operand or option value.
fn postgres_dbname(cmd: &Cmd<'_>, dsn: &mut Dsn, word: &super::lex::Word) {
    match cmd.value(word) {
        Some(value) => dsn.postgres_dbname(&value),
        // A variable could hold a whole URL.
        None => dsn.fill_unknown(),
    }
}

const PSQL: Spec = Spec {
    short: "cdfhLopPRTUvF",
    attached_short: "",
    long: &[
        "command",
        "dbname",
        "file",
        "host",
        "log-file",
        "output",
        "port",
        "pset",
        "record-separator",
        "table-attr",
        "username",
        "set",
        "variable",
        "field-separator",
    ],
    stop_at_operand: false,
};

pub(super) fn psql(cmd: &Cmd<'_>) -> Option<Recognized> {
    let opts = cmd.opts(&PSQL);
    if opts.has(&["l", "list", "V", "version", "?", "help"]) {
        return None;
    }
    let mut dsn = Dsn::default();
    if let Some(w) = opts.last(&["d", "dbname"]).or(opts.operands.first()) {
        postgres_dbname(cmd, &mut dsn, w);
    }
    if let Some(w) = opts.last(&["h", "host"]) {
        dsn.host.fill(cmd.field(w));
    }
    if let Some(w) = opts.last(&["p", "port"]) {
        dsn.port.fill(cmd.field(w));
    }
    let dbname_operand = opts.last(&["d", "dbname"]).is_none();
    let user = opts
        .last(&["U", "username"])
        .or_else(|| opts.operands.get(if dbname_operand { 1 } else { 0 }));
    if let Some(w) = user {
        dsn.user.fill(cmd.field(w));
    }
    postgres_env(cmd, &mut dsn, true);
    if dsn.is_unset()
        && let Field::Known(url) = cmd.env("DATABASE_URL")
        && target::scheme_of(&url).is_some_and(|s| matches!(s.as_str(), "postgres" | "postgresql"))
    {
        dsn.postgres_url(&url);
    }
    let targets = dsn.render("postgresql", true).into_iter().collect();

    let dialect = Dialect::Postgres;
    let commands = opts.all(&["c", "command"]);
    let files = opts.all(&["f", "file"]);
    let (kind, sql) = match (commands.as_slice(), files.as_slice()) {
        ([], []) => from_stdin(cmd, dialect, b'\\', psql_meta, |s| s),
        ([], [file]) if cmd.value(file).as_deref() == Some("-") => {
            from_stdin(cmd, dialect, b'\\', psql_meta, |s| s)
        }
        ([], [file]) => file_source(cmd, file, dialect),
        (commands, []) => {
            let pieces: Vec<String> = commands.iter().map(|w| cmd.render(w)).collect();
            let (sql, meta) = script(&pieces, false, b'\\', psql_meta);
            inline(&sql, meta, dialect)
        }
        _ => unknown(SqlSource::Unseen { dialect }),
    };
    Some(cmd.found(&kind, targets, Some(sql)))
}

const MYSQL: Spec = Spec {
    short: "DehPuS",
    attached_short: "p",
    long: &[
        "database",
        "execute",
        "host",
        "port",
        "user",
        "socket",
        "protocol",
        "default-character-set",
        "init-command",
        "login-path",
        "defaults-file",
        "defaults-extra-file",
        "character-sets-dir",
        "connect-timeout",
        "max-allowed-packet",
        "ssl-ca",
        "ssl-cert",
        "ssl-key",
        "ssl-mode",
        "tee",
        "plugin-dir",
        "default-auth",
    ],
    stop_at_operand: false,
};

/// mysql's `\G` and `\g` statement ends, as `;`.
fn mysql_fixup(sql: String) -> String {
    if sql.contains("\\G") || sql.contains("\\g") {
        sql.replace("\\G", ";").replace("\\g", ";")
    } else {
        sql
    }
}

/// A mysql client command line (`source FILE`, `\. FILE`, `system …`):
/// anything may happen.
fn mysql_meta(line: &str) -> Meta {
    let _ = line;
    Meta::Unknown
}

pub(super) fn mysql(cmd: &Cmd<'_>) -> Option<Recognized> {
    let opts = cmd.opts(&MYSQL);
    if opts.has(&["?", "help", "V", "version"]) {
        return None;
    }
    let mut dsn = Dsn::default();
    if let Some(w) = opts.last(&["h", "host"]) {
        dsn.host.fill(cmd.field(w));
    }
    if let Some(w) = opts.last(&["P", "port"]) {
        dsn.port.fill(cmd.field(w));
    }
    if let Some(w) = opts.last(&["u", "user"]) {
        dsn.user.fill(cmd.field(w));
    }
    if let Some(w) = opts.last(&["D", "database"]).or(opts.operands.first()) {
        dsn.db.fill(cmd.field(w));
    }
    if opts.has(&["login-path", "defaults-file", "defaults-extra-file"]) {
        dsn.fill_unknown();
    }
    dsn.host.fill(cmd.env("MYSQL_HOST"));
    dsn.port.fill(cmd.env("MYSQL_TCP_PORT"));
    if dsn.is_unset()
        && let Field::Known(url) = cmd.env("DATABASE_URL")
        && target::scheme_of(&url).is_some_and(|s| matches!(s.as_str(), "mysql" | "mariadb"))
        && let Some(parsed) = Url::parse(&url, false)
    {
        dsn.url_fields(&parsed);
    }
    let targets = dsn.render("mysql", false).into_iter().collect();
    let dialect = Dialect::MySql;
    let executes = opts.all(&["e", "execute"]);
    let (kind, sql) = if executes.is_empty() {
        from_stdin(cmd, dialect, b'\\', mysql_meta, mysql_fixup)
    } else {
        let pieces: Vec<String> = executes.iter().map(|w| cmd.render(w)).collect();
        let (sql, meta) = script(&pieces, false, b'\\', mysql_meta);
        inline(&mysql_fixup(sql), meta, dialect)
    };
    Some(cmd.found(&kind, targets, Some(sql)))
}

pub(super) fn sqlite(cmd: &Cmd<'_>) -> Option<Recognized> {
    // sqlite3 options take one dash or two; these take values.
    const ONE: [&str; 12] = [
        "cmd",
        "init",
        "separator",
        "newline",
        "nullvalue",
        "vfs",
        "mmap",
        "heap",
        "maxsize",
        "escape",
        "pagecache-size",
        "zipfile-name",
    ];
    const TWO: [&str; 2] = ["lookaside", "pagecache"];
    let mut commands = Vec::new();
    let mut operands = Vec::new();
    let mut init = false;
    let mut words = cmd.args().iter();
    while let Some(w) = words.next() {
        let t = head(w);
        let Some(name) = t
            .strip_prefix("--")
            .or_else(|| t.strip_prefix('-'))
            .filter(|n| !n.is_empty() && w.parts.len() <= 1)
        else {
            operands.push(w);
            continue;
        };
        if matches!(name, "version" | "help") {
            return None;
        }
        if ONE.contains(&name) {
            let value = words.next();
            if name == "cmd"
                && let Some(value) = value
            {
                commands.push(cmd.render(value));
            }
            init |= name == "init";
        } else if TWO.contains(&name) {
            words.next();
            words.next();
        }
    }
    let (file, sql_operands) = operands.split_first()?;
    let file = cmd.value(file);
    if file
        .as_deref()
        .is_some_and(|f| f.is_empty() || f == ":memory:")
    {
        return None;
    }
    let targets = file
        .and_then(|f| target::sqlite_target(&f, cmd.cwd()))
        .into_iter()
        .collect();
    let dialect = Dialect::Sqlite;
    commands.extend(sql_operands.iter().map(|w| cmd.render(w)));
    let (kind, sql) = if init {
        unknown(SqlSource::Unseen { dialect })
    } else if commands.is_empty() {
        from_stdin(cmd, dialect, b'.', sqlite_meta, |s| s)
    } else {
        let (sql, meta) = script(&commands, false, b'.', sqlite_meta);
        inline(&sql, meta, dialect)
    };
    Some(cmd.found(&kind, targets, Some(sql)))
}

/// What a mongosh `--eval` script does, as far as its text says.
fn javascript_kind(js: &str) -> &'static str {
    let compact: String = js.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains("dropDatabase") {
        "db.drop.database"
    } else if compact.contains(".drop(") {
        "db.drop.table"
    } else if compact.contains("deleteMany({})") || compact.contains("remove({})") {
        "db.delete.all"
    } else {
        "db.unknown"
    }
}

pub(super) fn mongo(cmd: &Cmd<'_>) -> Option<Recognized> {
    const MONGO: Spec = Spec {
        short: "upf",
        attached_short: "",
        long: &[
            "eval",
            "file",
            "host",
            "port",
            "username",
            "password",
            "authenticationDatabase",
            "authenticationMechanism",
            "tlsCAFile",
            "tlsCertificateKeyFile",
            "tlsCertificateKeyFilePassword",
            "apiVersion",
            "awsAccessKeyId",
            "awsSecretAccessKey",
            "awsSessionToken",
            "gssapiServiceName",
            "keyVaultNamespace",
            "kmsURL",
        ],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&MONGO);
    if opts.has(&["help", "version"]) {
        return None;
    }
    let mut url = None;
    let mut scripts = !opts.all(&["f", "file"]).is_empty();
    for w in &opts.operands {
        match cmd.value(w) {
            Some(v) if v.starts_with("mongodb://") || v.starts_with("mongodb+srv://") => {
                url.get_or_insert(v);
            }
            Some(v) if v.ends_with(".js") || v.ends_with(".mongodb") => scripts = true,
            _ => {}
        }
    }
    let targets = match (&url, opts.last(&["host"])) {
        (Some(url), _) => Url::parse(url, false)
            .map(|u| target::generic_url(&u))
            .into_iter()
            .collect(),
        (None, Some(host)) => match (cmd.value(host), opts.last(&["port"])) {
            (Some(host), Some(port)) => cmd
                .value(port)
                .map(|port| format!("mongodb://{host}:{port}"))
                .into_iter()
                .collect(),
            (Some(host), None) => vec![format!("mongodb://{host}")],
            (None, _) => Vec::new(),
        },
        (None, None) => Vec::new(),
    };
    let evals: Vec<String> = opts.all(&["eval"]).iter().map(|w| cmd.render(w)).collect();
    let kind = if scripts {
        "db.unknown"
    } else if !evals.is_empty() {
        javascript_kind(&evals.join("\n"))
    } else if stdin(cmd, false) == Input::None {
        // An interactive shell: what is typed is not on this line.
        return None;
    } else {
        "db.unknown"
    };
    Some(cmd.found(kind, targets, None))
}

/// What a redis command does, by its name.
fn redis_kind(command: &str) -> Option<(u8, &'static str)> {
    match command.to_ascii_uppercase().as_str() {
        "FLUSHALL" | "FLUSHDB" => Some((2, "db.truncate")),
        "DEL" | "UNLINK" => Some((1, "db.delete.where")),
        _ => None,
    }
}

pub(super) fn redis(cmd: &Cmd<'_>) -> Option<Recognized> {
    const REDIS: Spec = Spec {
        short: "hpsaunridD",
        attached_short: "",
        long: &[
            "user",
            "pass",
            "sni",
            "cacert",
            "cacertdir",
            "cert",
            "key",
            "tls-ciphers",
            "tls-ciphersuites",
            "pattern",
            "count",
            "quoted-pattern",
            "rdb",
            "functions-rdb",
            "eval",
            "memkeys-samples",
            "intrinsic-latency",
            "lru-test",
            "cluster",
        ],
        stop_at_operand: true,
    };
    let opts = cmd.opts(&REDIS);
    let mut scheme = "redis".to_owned();
    let (mut host, mut port, mut db) = (Field::Unset, Field::Unset, Field::Unset);
    // Options apply in order: a later `-h` overrides a `-u` URL's host.
    for (name, value) in &opts.opts {
        let Some(value) = value else { continue };
        match name.as_str() {
            "h" => host = cmd.field(value),
            "p" => port = cmd.field(value),
            "n" => db = cmd.field(value),
            "u" => match cmd
                .value(value)
                .as_deref()
                .and_then(|u| Url::parse(u, false))
            {
                Some(url) => {
                    scheme = url.scheme.to_ascii_lowercase();
                    let (h, p) = url.host_port();
                    host = Field::Known(h.to_owned());
                    port = p.map_or(Field::Unset, |p| Field::Known(p.to_owned()));
                    let path = url.path.trim_matches('/');
                    db = if path.is_empty() {
                        Field::Unset
                    } else {
                        Field::Known(path.to_owned())
                    };
                }
                None => {
                    host = Field::Unknown;
                }
            },
            _ => {}
        }
    }
    let kind = match opts.operands.first() {
        Some(command) => redis_kind(&cmd.value(command)?)?.1,
        None if opts.has(&["pipe", "eval"]) => "db.unknown",
        None => match stdin(cmd, false) {
            Input::None => return None,
            Input::Text(text) => {
                text.lines()
                    .filter_map(|line| line.split_whitespace().next())
                    .filter_map(redis_kind)
                    .max_by_key(|k| k.0)?
                    .1
            }
            Input::File(_) | Input::Unknown => "db.unknown",
        },
    };
    let targets = match (host, port, db) {
        (Field::Unknown, ..) | (_, Field::Unknown, _) | (.., Field::Unknown) => Vec::new(),
        (host, port, db) => {
            let mut t = format!("{scheme}://");
            match host {
                Field::Known(h) if !h.is_empty() => t.push_str(&h),
                _ => t.push_str("localhost"),
            }
            if let Field::Known(p) = port {
                t.push(':');
                t.push_str(&p);
            }
            if let Field::Known(n) = db {
                t.push('/');
                t.push_str(&n);
            }
            vec![t]
        }
    };
    Some(cmd.found(kind, targets, None))
}

pub(super) fn pg_restore(cmd: &Cmd<'_>) -> Option<Recognized> {
    const PG_RESTORE: Spec = Spec {
        short: "dfFIjLnNPStThpU",
        attached_short: "",
        long: &[
            "dbname",
            "file",
            "format",
            "index",
            "jobs",
            "use-list",
            "schema",
            "exclude-schema",
            "function",
            "superuser",
            "table",
            "trigger",
            "host",
            "port",
            "username",
            "role",
            "section",
        ],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&PG_RESTORE);
    if !opts.has(&["c", "clean"]) {
        return None;
    }
    // Without a database it writes SQL to standard output.
    let database = opts.last(&["d", "dbname"])?;
    let mut dsn = Dsn::default();
    postgres_dbname(cmd, &mut dsn, database);
    postgres_server(cmd, &opts, &mut dsn);
    let targets = dsn.render("postgresql", true).into_iter().collect();
    Some(cmd.found("db.restore.clean", targets, None))
}

pub(super) fn dropdb(cmd: &Cmd<'_>) -> Option<Recognized> {
    const DROPDB: Spec = Spec {
        short: "hpU",
        attached_short: "",
        long: &["host", "port", "username", "maintenance-db"],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&DROPDB);
    if opts.has(&["?", "help", "V", "version"]) {
        return None;
    }
    let database = opts.operands.first()?;
    let mut dsn = Dsn::default();
    dsn.db.fill(cmd.field(database));
    postgres_server(cmd, &opts, &mut dsn);
    let targets = dsn.render("postgresql", false).into_iter().collect();
    Some(cmd.found("db.drop.database", targets, None))
}
