//! Unit tests of the tokenizer, the parser and the recogniser's pieces.
//! (Whole command lines are in `tests/hook/commands.json`.)

use std::collections::BTreeMap;
use std::rc::Rc;

use super::lex::{Lexed, Op, RedirOp, Token, Word, lex};
use super::parse::{Item, Stdin, parse};
use super::recognize::scrub;
use super::target::{Dsn, database_url, is_disposable, normalize_path, resolve};
use super::wrappers::{KNOWN_PROGRAMS, is_recognised, program_name};
use super::{Context, Env, MAX_DEPTH, Val, analyze};

fn lexed(text: &str) -> Lexed {
    lex(&Rc::from(text), 0)
}

/// Each token as a short string: words by value (`w:…`), operators and
/// redirections by name.
fn tokens(text: &str) -> Vec<String> {
    let lexed = lexed(text);
    assert_eq!(lexed.error, None, "{text:?}");
    lexed.tokens.iter().map(describe).collect()
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(w) => format!("w:{}", w.value()),
        Token::Op(op, _) => format!("{op:?}"),
        Token::Redir(r) => format!(
            "{:?}{}:{}",
            r.op,
            r.fd.map_or(String::new(), |fd| fd.to_string()),
            r.target.value()
        ),
    }
}

fn words(text: &str) -> Vec<Word> {
    let lexed = lexed(text);
    assert_eq!(lexed.error, None, "{text:?}");
    lexed
        .tokens
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w),
            _ => None,
        })
        .collect()
}

fn error(text: &str) -> String {
    lexed(text)
        .error
        .unwrap_or_else(|| panic!("{text:?} lexed"))
}

#[test]
fn quotes_and_escapes_are_removed() {
    let table: &[(&str, &str)] = &[
        ("plain", "plain"),
        ("'single quoted'", "single quoted"),
        ("'it''s'", "its"),
        (
            r#""double \"quoted\" \\ \$x \`y\`""#,
            r#"double "quoted" \ $x `y`"#,
        ),
        (r#""keeps \n and \a""#, r"keeps \n and \a"),
        (r"back\ slash\'d", "back slash'd"),
        (r"$'ansi\tc\n\x41\u00e9\101\'\\'", "ansi\tc\nAéA'\\"),
        (r"$'\cA'", "\u{1}"),
        ("a'b'\"c\"d", "abcd"),
        ("line\\\ncontinued", "linecontinued"),
        ("$\"translated\"", "translated"),
        ("données", "données"),
        ("trailing\\", "trailing\\"),
    ];
    for &(text, value) in table {
        let w = words(text);
        assert_eq!(w.len(), 1, "{text:?}");
        assert_eq!(w[0].value(), value, "{text:?}");
    }
}

#[test]
fn expansions_are_kept_as_written_and_make_a_word_non_literal() {
    let w = words(r#"a "$HOME/x" ${A:-b} $(c d) `e` $((1+2)) $1 $@ <(f)"#);
    let values: Vec<String> = w.iter().map(Word::value).collect();
    assert_eq!(
        values,
        [
            "a", "$HOME/x", "${A:-b}", "$(c d)", "`e`", "$((1+2))", "$1", "$@", "<(f)"
        ]
    );
    assert_eq!(w[0].literal(), Some("a"));
    assert!(w[1..].iter().all(|w| w.literal().is_none()));
    let home = |name: &str| (name == "HOME").then(|| "/home/dev".to_owned());
    assert_eq!(w[1].expand(&home).as_deref(), Some("/home/dev/x"));
    assert_eq!(w[2].expand(&home), None);
    assert_eq!(w[1].render(&|_| None), "$HOME/x");
    // What a nested shell receives for a substitution: not its source.
    assert_eq!(w[3].shell_text(&|_| None), "${PRODGUARD_SUBSTITUTION}");
    // Substitutions are tokenized; arithmetic and plain parameters are not.
    let nested: Vec<usize> = w.iter().map(|w| w.nested.len()).collect();
    assert_eq!(nested, [0, 0, 0, 1, 1, 0, 0, 0, 1]);
}

#[test]
fn globs_tildes_and_assignments_are_flagged() {
    let w = words(r#"*.rs '*' ~/x "~/y" a/{b,c} {} x=~/z A=1 B+=2 =no 1A=no"#);
    let glob: Vec<bool> = w.iter().map(|w| w.glob).collect();
    assert_eq!(
        glob,
        [
            true, false, false, false, true, true, false, false, false, false, false
        ]
    );
    let tilde: Vec<bool> = w.iter().map(|w| w.tilde).collect();
    assert_eq!(
        tilde,
        [
            false, false, true, false, false, false, true, false, false, false, false
        ]
    );
    let assignment: Vec<Option<usize>> = w.iter().map(|w| w.assignment).collect();
    assert_eq!(
        assignment,
        [
            None,
            None,
            None,
            None,
            None,
            None,
            Some(2),
            Some(2),
            Some(3),
            None,
            None
        ]
    );
    assert_eq!(w[1].literal(), Some("*"));
    assert_eq!(w[1].plain(), None, "quoted: not a keyword");
}

#[test]
fn operators_and_comments() {
    assert_eq!(
        tokens("a;b&&c||d|e|&f&g\nh ;; i"),
        [
            "w:a", "Semi", "w:b", "And", "w:c", "Or", "w:d", "Pipe", "w:e", "PipeErr", "w:f",
            "Amp", "w:g", "Newline", "w:h", "CaseEnd", "w:i"
        ]
    );
    assert_eq!(
        tokens("(a) { b; }"),
        ["Open", "w:a", "Close", "w:{", "w:b", "Semi", "w:}"]
    );
    assert_eq!(tokens("a # b; rm -rf /\nc"), ["w:a", "Newline", "w:c"]);
    assert_eq!(tokens("a#b 'c # d'"), ["w:a#b", "w:c # d"]);
    assert_eq!(tokens("a \\\n b"), ["w:a", "w:b"]);
}

#[test]
fn redirections() {
    assert_eq!(
        tokens("a >f 2>&1 &>g >>h <i 3<j <>k >|l &>>m <&0"),
        [
            "w:a",
            "Out:f",
            "DupOut2:1",
            "OutErr:g",
            "Append:h",
            "In:i",
            "In3:j",
            "ReadWrite:k",
            "Clobber:l",
            "AppendErr:m",
            "DupIn:0"
        ]
    );
    assert_eq!(tokens("a <<< 'x y' 12"), ["w:a", "HereString:x y", "w:12"]);
    assert!(error("a >").contains("without a target"));
    assert!(error("a 2> ;").contains("without a target"));
}

#[test]
fn heredoc_bodies() {
    let heredoc = |text: &str| {
        let lexed = lexed(text);
        assert_eq!(lexed.error, None, "{text:?}");
        lexed
            .heredocs
            .iter()
            .map(|b| b.as_ref().map(|w| (w.value(), w.nested.len())))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        heredoc("cat <<EOF\nx $y \\$z $(w)\nEOF\n"),
        [Some(("x $y $z $(w)\n".to_owned(), 1))]
    );
    assert_eq!(
        heredoc("cat <<'EOF'\nx $y \\$z $(w)\nEOF"),
        [Some(("x $y \\$z $(w)\n".to_owned(), 0))]
    );
    assert_eq!(
        heredoc("cat <<-\"E\"\n\t\tx\n\tE\n"),
        [Some(("x\n".to_owned(), 0))]
    );
    assert_eq!(
        heredoc("cat <<E\n EOF\nE"),
        [Some((" EOF\n".to_owned(), 0))]
    );
    // Two on one line, read one after the other; the line goes on.
    assert_eq!(
        heredoc("a <<A; b <<B | c\n1\nA\n2\nB\n"),
        [Some(("1\n".to_owned(), 0)), Some(("2\n".to_owned(), 0))]
    );
    assert_eq!(
        tokens("a <<A; b <<B | c\n1\nA\n2\nB\nd"),
        [
            "w:a",
            "Heredoc:A",
            "Semi",
            "w:b",
            "Heredoc:B",
            "Pipe",
            "w:c",
            "Newline",
            "w:d"
        ]
    );
    // In a substitution, on the substitution's own lines.
    assert_eq!(
        heredoc("x $(cat <<A\nbody\nA\n)"),
        [Some(("body\n".to_owned(), 0))]
    );
    assert!(error("cat <<EOF\nno end\n").contains("unterminated heredoc"));
    assert!(error("cat <<EOF").contains("unterminated heredoc"));
}

#[test]
fn substitutions_nest_up_to_the_limit() {
    let nested = |depth: usize| "$(".repeat(depth) + "x" + &")".repeat(depth);
    assert_eq!(lexed(&nested(MAX_DEPTH)).error, None);
    assert!(error(&nested(MAX_DEPTH + 1)).contains("nested deeper"));
    assert!(error("`").contains("backquote"));
    // Backquotes in backquotes, escaped.
    let w = words(r"`a \`b \\\`c\\\`\``");
    assert_eq!(w[0].nested.len(), 1);
    let inner = &w[0].nested[0].tokens;
    let Token::Word(b) = &inner[1] else { panic!() };
    assert_eq!(b.nested.len(), 1);
}

#[test]
fn unterminated_text_is_an_error() {
    for (text, why) in [
        ("'a", "single quote"),
        ("\"a", "double quote"),
        ("$'a", "`$'`"),
        ("$(a", "`$(`"),
        ("${a", "`${`"),
        ("$((a", "`$((`"),
        ("`a", "backquote"),
        ("x=(a", "array"),
        ("$((a)", "`$((`"),
    ] {
        assert!(error(text).contains(why), "{text:?}: {}", error(text));
    }
    // The command being read is dropped; those before it stay.
    let lexed = lexed("a; b 'c");
    assert_eq!(
        lexed.tokens.iter().map(describe).collect::<Vec<_>>(),
        ["w:a", "Semi"]
    );
}

/// Each command's words, `>` for Enter and `<` for Leave.
fn outline(text: &str) -> (Vec<String>, Option<String>) {
    let text: Rc<str> = Rc::from(text);
    let (items, problem) = parse(lex(&text, 0), &text, 0, |_| true);
    let outline = items
        .iter()
        .map(|item| match item {
            Item::Enter => ">".to_owned(),
            Item::Leave => "<".to_owned(),
            Item::Command(s) => {
                let mut parts: Vec<String> = s
                    .assigns
                    .iter()
                    .map(|a| format!("{}={}", a.name, a.value.value()))
                    .collect();
                parts.extend(s.words.iter().map(Word::value));
                if let Stdin::Pipe(from) = s.stdin {
                    parts.push(format!("|{from:?}"));
                }
                parts.join(" ")
            }
        })
        .collect();
    (outline, problem)
}

#[test]
fn commands_are_listed_in_order_with_their_scopes() {
    let (o, problem) = outline("A=1 B=$(x) a b | c && (d; { e; }) || f $(g) `h`");
    assert_eq!(problem, None);
    assert_eq!(
        o,
        [
            "A=1 B=$(x) a b",
            ">",
            "x",
            "<",
            "c |Some(0)",
            ">",
            "d",
            "e",
            "<",
            "f $(g) `h`",
            ">",
            "g",
            "<",
            ">",
            "h",
            "<"
        ]
    );
    // Keywords are skipped, the commands in compound commands listed.
    let (o, problem) = outline(
        "if a; then b; elif c; then d; else e; fi; while f; do g; done; \
         for i in $(j) k; do l; done; case $m in n|o) p;; (q) r;; esac; \
         [[ -f s && t < u ]] && v; f() { w; }; function x { y; }; ! z",
    );
    assert_eq!(problem, None);
    assert_eq!(
        o,
        [
            "a", "b", "c", "d", "e", "f", "g", ">", "j", "<", "l", "p", "r", "v", "w", "y", "z"
        ]
    );
    let (o, _) = outline("(a) | b; { c; } | d");
    assert_eq!(o, [">", "a", "<", "b |None", "c", "d |None"]);
}

#[test]
fn unbalanced_structure_is_a_problem() {
    for (text, why) in [
        ("(a", "unbalanced `(`"),
        ("a)", "unbalanced `)`"),
        ("{ a", "unterminated `{`"),
        ("a; }", "unbalanced `}`"),
        ("| a", "`|` with no command"),
        ("a ;; b", "`;;` outside a `case`"),
        ("a (b)", "`(` after a command's words"),
        ("case a in b) c", "unterminated `case`"),
    ] {
        let (_, problem) = outline(text);
        let problem = problem.unwrap_or_default();
        assert!(problem.contains(why), "{text:?}: {problem}");
    }
    let deep = "(".repeat(MAX_DEPTH + 1) + "a" + &")".repeat(MAX_DEPTH + 1);
    assert!(
        error(&deep).contains("nested deeper"),
        "the tokenizer stops first"
    );
    let deep = "{ ".repeat(MAX_DEPTH) + "(a)" + &"; }".repeat(MAX_DEPTH);
    assert!(
        outline(&deep)
            .1
            .unwrap_or_default()
            .contains("nested deeper")
    );
    let within = "{ ".repeat(MAX_DEPTH - 1) + "(a)" + &"; }".repeat(MAX_DEPTH - 1);
    assert_eq!(outline(&within).1, None);
}

#[test]
fn part_is_trimmed_and_cut() {
    let context = Context::default();
    let long = format!("rm -rf /srv/{}", "x".repeat(300));
    let analysis = analyze(&format!("  {long}  ;"), &context);
    let part = &analysis.commands[0].part;
    assert_eq!(part.chars().count(), 200);
    assert!(part.ends_with('…'));
    assert!(long.starts_with(part.trim_end_matches('…')));
    let analysis = analyze("  rm -rf /srv/x \\\n  /srv/y  ", &context);
    assert_eq!(analysis.commands[0].part, "rm -rf /srv/x \\\n  /srv/y");
}

#[test]
fn paths_are_normalised_lexically() {
    for (path, normal) in [
        ("/a/b", "/a/b"),
        ("/a//b/", "/a/b"),
        ("/a/./b/../c", "/a/c"),
        ("/../..", "/"),
        ("/", "/"),
        ("a/../..", ".."),
        ("./a", "a"),
        (".", "."),
        ("", "."),
        ("a/b/..", "a"),
    ] {
        assert_eq!(normalize_path(path), normal, "{path:?}");
    }
    assert_eq!(resolve("x/../y", Some("/srv/app")), "/srv/app/y");
    assert_eq!(resolve("/etc", Some("/srv/app")), "/etc");
    assert_eq!(resolve("x", None), "x");
}

#[test]
fn build_and_temporary_directories_are_disposable() {
    let cwd = Some("/home/dev/app");
    for (path, disposable) in [
        ("/home/dev/app/target", true),
        ("/home/dev/app/node_modules/.cache/x", true),
        ("/home/dev/app/.next", true),
        ("/home/dev/app/src", false),
        ("/home/dev/app", false),
        ("/home/dev/application/target", false),
        ("/home/dev/target", false),
        ("/tmp/x", true),
        ("/tmp", false),
        ("/tmpfoo/x", false),
    ] {
        assert_eq!(is_disposable(path, cwd), disposable, "{path}");
    }
    assert!(is_disposable("build/x", None));
    assert!(!is_disposable("src", None));
    assert!(!is_disposable("/home/dev/app/build", None));
    assert!(!is_disposable("/tmp", Some("/")), "cd / && rm -rf tmp");
}

#[test]
fn database_urls_are_normalised_without_passwords() {
    let cwd = Some("/app");
    for (url, target) in [
        (
            "postgres://u:pw@db:5432/x?sslmode=require",
            Some("postgresql://u@db:5432/x"),
        ),
        ("postgresql://db", Some("postgresql://db")),
        ("postgresql://u@db", Some("postgresql://u@db/u")),
        (
            "postgresql:///x?host=/var/run/postgresql",
            Some("postgresql://%2Fvar%2Frun%2Fpostgresql/x"),
        ),
        ("postgresql://u:p@ss@db/x", Some("postgresql://u@ss%40db/x")),
        (
            "postgresql://[::1]:5433/x",
            Some("postgresql://[::1]:5433/x"),
        ),
        ("postgresql://a:1,b:2/x", Some("postgresql://a:1,b:2/x")),
        (
            "postgresql+psycopg2://u:pw@db/x",
            Some("postgresql://u@db/x"),
        ),
        (
            "mysql2://root:p@ss@db:3306/shop",
            Some("mysql://root@db:3306/shop"),
        ),
        ("jdbc:postgresql://db/x", Some("postgresql://db/x")),
        ("sqlite:///srv/app.db", Some("sqlite:/srv/app.db")),
        (
            "sqlite://data/app.db?mode=rwc",
            Some("sqlite:/app/data/app.db"),
        ),
        ("sqlite3:db/dev.sqlite3", Some("sqlite:/app/db/dev.sqlite3")),
        ("file:./dev.db", Some("sqlite:/app/dev.db")),
        ("db/dev.sqlite3", Some("sqlite:/app/db/dev.sqlite3")),
        (
            "mongodb+srv://u:pw@cluster/app?retryWrites=true",
            Some("mongodb+srv://u@cluster/app"),
        ),
        ("sqlite::memory:", None),
        ("not a url", None),
    ] {
        assert_eq!(database_url(url, cwd).as_deref(), target, "{url}");
    }
    let mut dsn = Dsn::default();
    dsn.conninfo("host='prod db' user=app password='x y' dbname=shop port=6432");
    assert_eq!(
        dsn.render("postgresql", true).as_deref(),
        Some("postgresql://app@prod%20db:6432/shop")
    );
    let mut dsn = Dsn::default();
    dsn.conninfo("service=prod");
    assert_eq!(
        dsn.render("postgresql", true),
        None,
        "a service file is not read"
    );
}

#[test]
fn secrets_are_masked_in_text_shown() {
    for (raw, shown) in [
        ("postgres://u:pw@h/db", Some("postgres://u:***@h/db")),
        ("x=mysql://root:p@ss@h", Some("x=mysql://root:***@h")),
        (
            "'host=h password=secret user=u'",
            Some("'host=h password=*** user=u'"),
        ),
        ("a://h/x?Password=1&b=2", Some("a://h/x?Password=***&b=2")),
        ("https://example.com/x", None),
        ("--password", None),
        ("--password=x", Some("--password=***")),
        (
            "ALTER ROLE app WITH PASSWORD 'pw' LOGIN",
            Some("ALTER ROLE app WITH PASSWORD '***' LOGIN"),
        ),
        (
            "CREATE USER u IDENTIFIED BY \"pw\";",
            Some("CREATE USER u IDENTIFIED BY \"***\";"),
        ),
        ("a://u:p/w@h b://v:q@k", Some("a://u:***@h b://v:***@k")),
        ("x://ax://ax://a", None),
    ] {
        assert_eq!(scrub(raw).as_deref(), shown, "{raw}");
    }
}

#[test]
fn program_names() {
    assert_eq!(program_name("/usr/bin/psql"), "psql");
    assert_eq!(program_name("./bin/rails"), "rails");
    assert_eq!(program_name("prisma@5.1.0"), "prisma");
    assert_eq!(program_name("@"), "@");
    assert!(
        KNOWN_PROGRAMS.windows(2).all(|w| w[0] < w[1]),
        "sorted, no repeats"
    );
    assert!(KNOWN_PROGRAMS.iter().all(|p| is_recognised(p)));
    assert!(is_recognised("/sbin/mkfs.ext4"));
    assert!(!is_recognised("ls") && !is_recognised("x") && !is_recognised(""));
}

#[test]
fn scopes_undo_what_they_set() {
    let base = BTreeMap::from([("PGHOST".to_owned(), "base".to_owned())]);
    let mut env = Env::new(&base, None);
    assert_eq!(env.get("PGHOST"), Val::Known("base".into()));
    env.enter(false);
    env.set("PGHOST", Val::Known("inner".into()), true);
    env.set("LOCAL", Val::Known("x".into()), false);
    assert_eq!(env.get("PGHOST"), Val::Known("inner".into()));
    assert_eq!(env.get("LOCAL"), Val::Unset, "not exported");
    assert_eq!(env.shell_var("LOCAL"), Val::Known("x".into()));
    env.enter(true);
    assert_eq!(env.get("PGHOST"), Val::Unset, "env -i");
    env.leave();
    env.leave();
    assert_eq!(env.get("PGHOST"), Val::Known("base".into()));
    assert_eq!(env.shell_var("LOCAL"), Val::Unset);
    // The outermost scope stays.
    env.leave();
    env.set_cwd(Some("/srv".into()));
    assert_eq!(env.cwd(), Some("/srv"));
}

#[test]
fn redirections_that_write() {
    let writes: Vec<bool> = [
        RedirOp::In,
        RedirOp::Out,
        RedirOp::Append,
        RedirOp::Clobber,
        RedirOp::OutErr,
        RedirOp::AppendErr,
        RedirOp::ReadWrite,
        RedirOp::DupIn,
        RedirOp::DupOut,
        RedirOp::Heredoc,
        RedirOp::HereString,
    ]
    .iter()
    .map(|op| op.writes())
    .collect();
    assert_eq!(
        writes,
        [
            false, true, true, true, true, true, true, false, false, false, false
        ]
    );
    assert!(matches!(lexed("a|b").tokens[1], Token::Op(Op::Pipe, _)));
}
