//! `prodguard sql check`, run for real with a clean environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;

use serde_json::Value;

mod common;

use common::{Sandbox, answer, code, stderr, stdout};

const CORPUS: &str = include_str!("../../../tests/sql/corpus.json");

/// `sql check --json`'s answer: the envelope's `ok`, or its error's data.
fn json(output: &Output) -> Value {
    answer(output)
}

const DEV: &[(&str, &str)] = &[("PRODGUARD_ENV", "development")];
const PROD: &[(&str, &str)] = &[("PRODGUARD_ENV", "production")];

/// Every case of the shared corpus, through
/// `--json` and standard input: the kinds, tables, cascades and operation
/// the corpus expects.
#[test]
fn corpus_cases_classify_as_the_corpus_says() {
    let sb = Sandbox::new("corpus");
    let cases: Vec<Value> = serde_json::from_str(CORPUS).unwrap();
    let mut checked = 0;
    for (i, case) in cases.iter().enumerate() {
        let dialect = case["dialect"].as_str().unwrap();
        let sql = case["sql"].as_str().unwrap();
        let out = sb.run_with(
            DEV,
            &["sql", "check", "--dialect", dialect, "--json", "-"],
            sql.as_bytes(),
        );
        assert_eq!(
            code(&out),
            0,
            "case {i} ({dialect}) {sql:?}: {}",
            stderr(&out)
        );
        let answer = json(&out);
        let statements = answer["statements"].as_array().unwrap();
        let field = |name: &str| -> Value { statements.iter().map(|s| s[name].clone()).collect() };
        let why = format!("case {i} ({dialect}) {sql:?}: {answer}");
        assert_eq!(field("kind"), case["kinds"], "{why}");
        assert_eq!(answer["operation"], case["operation"], "{why}");
        assert_eq!(answer["dialect"], dialect, "{why}");
        for optional in ["tables", "cascades"] {
            if let Some(expected) = case.get(optional) {
                assert_eq!(&field(optional), expected, "{why}");
            }
        }
        let indexes: Vec<Value> = (0..statements.len()).map(Value::from).collect();
        assert_eq!(field("index"), Value::from(indexes), "{why}");
        assert_eq!(answer["decision"]["result"], "allow", "{why}");
        checked += 1;
    }
    assert!(checked >= 350, "{checked}");
}

const POLICY: &str = r#"
[[rule]]
name = "bulk"
operations = ["db.delete.*", "db.update.*"]
tiers = ["production"]
require = ["confirm", "audit"]
max_rows = 500
confirm_above_rows = 10

[[rule]]
name = "no truncate"
operations = ["db.truncate"]
tiers = ["production"]
deny = "truncate is done by the DBA"
"#;

#[test]
fn a_script_is_decided_as_its_most_dangerous_statement_with_every_rule() {
    let sb = Sandbox::new("decide");
    let policy = sb.write("p.toml", POLICY.as_bytes());
    let script = sb.write(
        "m.sql",
        b"BEGIN;\nUPDATE orders SET paid = true WHERE id = 7;\n-- cleanup\nDELETE FROM carts;\nCOMMIT;\n",
    );
    let args = ["--policy", &policy, "sql", "check", "--target", "shop.db"];
    let out = sb.run(PROD, &[&args[..], &[&script]].concat());
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "(sqlite): 4 statements",
        "  [1] line 2: db.update.where (destructive) orders\n",
        "  [2] line 4: db.delete.all (destructive) carts\n",
        "  [3] line 5: db.session\n",
        "at most 500 rows, else refused and rolled back (rule `bulk`)",
        "a confirmation above 10 rows",
        "operation:   db.delete.all (destructive)\n",
        "db.delete.all on shop.db in production (tier production): requires confirm + audit",
        "--fingerprint ",
    ] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }
    let answer = json(&sb.run(PROD, &[&args[..], &["--json", &script]].concat()));
    assert_eq!(answer["exit_code"], 121);
    assert_eq!(answer["operation"], "db.delete.all");
    assert_eq!(answer["dialect"], "sqlite");
    assert_eq!(answer["target"], "shop.db");
    assert_eq!(answer["statements"][2]["line"], 4);
    assert_eq!(
        answer["statements"][2]["tables"],
        serde_json::json!(["carts"])
    );
    assert_eq!(answer["bounds"][2]["max_rows"], 500);
    assert_eq!(answer["bounds"][0].get("max_rows"), None);
    assert_eq!(answer["fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(answer["decision"]["rule"], "bulk");
    assert!(answer["policy"]["sources"].is_array());
    // Layout and comments do not change the fingerprint; a literal does.
    let relaid = sb.write(
        "relaid.sql",
        b"begin; update orders set paid = true where id = 7; delete from carts; commit",
    );
    let again = json(&sb.run(PROD, &[&args[..], &["--json", &relaid]].concat()));
    assert_eq!(again["fingerprint"], answer["fingerprint"]);
    // A denied statement refuses the script, even when another one (the
    // DROP, which no rule names) is the script's operation.
    let truncate = sb.write("t.sql", b"SELECT 1; TRUNCATE carts; DROP TABLE old_carts;");
    let out = sb.run(PROD, &[&args[..], &[&truncate]].concat());
    assert_eq!(code(&out), 120, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("db.drop.table on shop.db in production (tier production): DENIED"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("db.truncate is denied here by rule `no truncate`"),
        "{}",
        stdout(&out)
    );
    // Development asks nothing; nothing is ever recorded.
    assert_eq!(code(&sb.run(DEV, &[&args[..], &[&script]].concat())), 0);
    let log = std::fs::read(sb.path("audit.jsonl")).unwrap_or_default();
    assert!(log.is_empty(), "{}", String::from_utf8_lossy(&log));
}

#[test]
fn the_audit_log_is_checked_before_anyone_would_be_asked() {
    let sb = Sandbox::new("audit");
    sb.write("not-a-dir", b"x");
    let script = sb.write("m.sql", b"DELETE FROM carts");
    let log = sb.path("not-a-dir/audit.jsonl");
    let vars = [
        ("PRODGUARD_ENV", "production"),
        ("PRODGUARD_AUDIT_LOG", log.to_str().unwrap()),
    ];
    let out = sb.run(
        &vars,
        &["sql", "check", "--dialect", "postgres", "--json", &script],
    );
    assert_eq!(code(&out), 123, "{}", stderr(&out));
    assert_eq!(json(&out)["refusal"]["exit_code"], 123);
}

#[test]
fn the_dialect_is_said_or_named_by_the_target_never_guessed() {
    let sb = Sandbox::new("dialect");
    let script = sb.write("m.sql", b"SELECT 1");
    let out = sb.run(DEV, &["sql", "check", &script]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("--dialect postgres"),
        "{}",
        stderr(&out)
    );
    let out = sb.run(DEV, &["sql", "check", "--target", "orders", &script]);
    assert_eq!(code(&out), 125, "a bare name names no dialect");
    let out = sb.run(DEV, &["sql", "check", "--dialect", "oracle", &script]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("`oracle` is not an SQL dialect"),
        "{}",
        stderr(&out)
    );
    for (target, dialect) in [
        ("postgresql://app@db/orders", "postgres"),
        ("mysql://db/shop", "mysql"),
        ("app.sqlite3", "sqlite"),
    ] {
        // (The stamp of a server nobody runs cannot be read: 124.)
        let out = sb.run(
            DEV,
            &["sql", "check", "--json", "--target", target, &script],
        );
        assert_eq!(json(&out)["dialect"], dialect, "{target}");
    }
    // --dialect wins over the target's.
    let out = sb.run(
        DEV,
        &[
            "sql",
            "check",
            "--json",
            "--dialect",
            "generic",
            "--target",
            "a.db",
            &script,
        ],
    );
    assert_eq!(json(&out)["dialect"], "generic");
}

#[test]
fn scripts_that_cannot_be_read_are_125_with_what_to_do() {
    let sb = Sandbox::new("read");
    let pg = ["sql", "check", "--dialect", "postgres"];
    let latin1 = sb.write("latin1.sql", b"SELECT '\xe9t\xe9'");
    let out = sb.run(DEV, &[&pg[..], &[&latin1]].concat());
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("not UTF-8"), "{}", stderr(&out));
    let missing = sb.path("missing.sql");
    let out = sb.run(DEV, &[&pg[..], &[missing.to_str().unwrap()]].concat());
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("cannot read the script"),
        "{}",
        stderr(&out)
    );
    // Over 64 MiB (a sparse file: nothing is written).
    let huge = sb.path("huge.sql");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len((64 << 20) + 1)
        .unwrap();
    let out = sb.run(DEV, &[&pg[..], &[huge.to_str().unwrap()]].concat());
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("larger than 64 MiB"),
        "{}",
        stderr(&out)
    );
    // A directory is not a script.
    let out = sb.run(DEV, &[&pg[..], &[sb.path("").to_str().unwrap()]].concat());
    assert_eq!(code(&out), 125);
}

#[test]
fn names_from_the_script_are_shown_escaped() {
    let sb = Sandbox::new("escape");
    let script = sb.write(
        "m.sql",
        "DELETE FROM \"or\u{1b}[31mders\u{202e}\" WHERE id = 1;\nFROB \u{1b}]0;owned\u{7};"
            .as_bytes(),
    );
    let out = sb.run(PROD, &["sql", "check", "--dialect", "postgres", &script]);
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("\"or\\u{1b}[31mders\\u{202e}\""), "{text}");
    for line in text.lines() {
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{line:?}"
        );
    }
}

/// A shop database in the sandbox with 300 carts, a third of them stale;
/// returns its path.
fn shop(sb: &Sandbox) -> String {
    let db = sb.path("shop.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE carts (id INTEGER PRIMARY KEY, stale INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
         INSERT INTO carts SELECT i, i % 3 = 0 FROM n;",
    )
    .unwrap();
    db.to_string_lossy().into_owned()
}

fn carts(db: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM carts", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn sql_exec_commits_within_the_bounds_and_refuses_past_them_changing_nothing() {
    let sb = Sandbox::new("exec");
    let db = shop(&sb);
    let policy = sb.write("p.toml", POLICY.as_bytes());
    let target = format!("sqlite:{db}");
    let exec = |script: &[u8], extra: &[&str]| {
        let file = sb.write("run.sql", script);
        let args = [
            &["--policy", &policy, "sql", "exec", "--target", &target][..],
            extra,
            &[&file],
        ];
        sb.run(PROD, &args.concat())
    };

    // 10 rows: within confirm_above_rows, so nobody need be asked.
    let out = exec(b"BEGIN;\nDELETE FROM carts WHERE id <= 10;\nCOMMIT;\n", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "[0] line 1: db.session: 0 rows\n[1] line 2: db.delete.where carts: 10 rows\n\
         [2] line 3: db.session: 0 rows\ncommitted\n"
    );
    assert_eq!(carts(&db), 290);
    let records = sb.records();
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[0]["op"]["target"],
        db.as_str(),
        "the path, not sqlite:PATH"
    );
    assert_eq!(
        records[0]["sql"]["dry_run_rows"],
        serde_json::json!([0, 10, 0])
    );
    assert_eq!(records[1]["outcome"]["rows"], serde_json::json!([0, 10, 0]));

    // 100 stale carts need a confirmation, and there is no terminal: 121,
    // after a dry run that changed nothing.
    let out = exec(b"DELETE FROM carts WHERE stale", &[]);
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    assert_eq!(carts(&db), 290);

    // Every cart: over max_rows (500 allowed, so make it 290 > a tighter bound).
    let tight = sb.write(
        "tight.toml",
        POLICY.replace("max_rows = 500", "max_rows = 50").as_bytes(),
    );
    let file = sb.write("all.sql", b"DELETE FROM carts");
    let out = sb.run(
        PROD,
        &[
            "--policy", &tight, "sql", "exec", "--target", &target, &file,
        ],
    );
    assert_eq!(code(&out), 120, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("statement 0 (line 1, db.delete.all on carts) affected 290 rows; rule `bulk` allows at most 50"),
        "{}",
        stderr(&out)
    );
    assert_eq!(carts(&db), 290);
    assert_eq!(sb.records().last().unwrap()["kind"], "refusal");

    // A dry run: rows printed, nothing changed, recorded, nobody asked.
    let out = exec(b"DELETE FROM carts WHERE stale", &["--dry-run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "[0] line 1: db.delete.where carts: 97 rows\ndry run: rolled back, nothing was changed\n"
    );
    assert_eq!(carts(&db), 290);
    let records = sb.records();
    let outcome = records.last().unwrap();
    assert_eq!(outcome["outcome"]["status"], "dry_run");
    assert_eq!(outcome["outcome"]["rows"], serde_json::json!([97]));

    // A failing second statement rolls back the first: exit 1.
    let out = exec(
        b"UPDATE carts SET stale = 0 WHERE id = 12;\nINSERT INTO nowhere VALUES (1);",
        &[],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("statement 1 (line 2) failed"),
        "{}",
        stderr(&out)
    );
    let rolled = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT stale FROM carts WHERE id = 12", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    assert_eq!(rolled, 1);
}

#[test]
fn sql_exec_refuses_what_it_cannot_run_safely_before_touching_anything() {
    let sb = Sandbox::new("exec-usage");
    let db = shop(&sb);
    let script = sb.write("m.sql", b"DELETE FROM carts WHERE id = 1");
    let missing = sb.path("missing.db");
    let missing = missing.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--target", missing], "not a SQLite database"),
        (&["--target", "orders"], "sqlite:PATH"),
        (
            &["--target", &db, "--dialect", "postgres"],
            "the database speaks sqlite",
        ),
        (
            &["--target", &db, "--dialect", "oracle"],
            "not an SQL dialect",
        ),
        (
            &[
                "--target",
                &format!("sqlite:{}", sb.path("m.sql").display()),
            ],
            "not a SQLite database",
        ),
    ];
    for (flags, needle) in cases {
        let out = sb.run(PROD, &[&["sql", "exec"][..], flags, &[&script]].concat());
        assert_eq!(code(&out), 125, "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{flags:?}: {}", stderr(&out));
    }
    assert!(
        !std::path::Path::new(missing).exists(),
        "no database is created"
    );
    let control = sb.write(
        "c.sql",
        b"DELETE FROM carts WHERE id = 1; COMMIT; DELETE FROM carts",
    );
    let out = sb.run(PROD, &["sql", "exec", "--target", &db, &control]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("controls the transaction"),
        "{}",
        stderr(&out)
    );
    assert_eq!(carts(&db), 300);
    assert!(sb.records().is_empty());
}

#[test]
fn a_person_sees_the_rows_at_the_terminal_before_typing_the_target() {
    let sb = Sandbox::new("exec-pty");
    let db = shop(&sb);
    let policy = sb.write("p.toml", POLICY.as_bytes());
    let script = sb.write("stale.sql", b"DELETE FROM carts WHERE stale");
    let line = [
        common::BIN,
        "--policy",
        &policy,
        "sql",
        "exec",
        "--target",
        &db,
        &script,
    ]
    .join(" ");
    let child = std::process::Command::new("setsid")
        .args(["-w", "script", "-qec", &line, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("PRODGUARD_ENV", "production")
        .env("PRODGUARD_ACTOR", "ana")
        .env("PRODGUARD_AUDIT_LOG", sb.audit_log())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = prompt::type_when_asked(child, &db);
    let screen = stdout(&out);
    assert_eq!(code(&out), 0, "{screen}");
    assert!(
        screen.contains("statement 0 (line 1, db.delete.where on carts): 100 rows"),
        "{screen}"
    );
    assert!(screen.contains("committed"), "{screen}");
    assert_eq!(carts(&db), 200);
    assert_eq!(sb.records()[0]["confirm"]["method"], "typed");
}

#[path = "../../../tests/support/prompt.rs"]
mod prompt;

#[test]
fn an_approval_for_a_script_runs_that_script_within_its_rows_once() {
    let sb = Sandbox::new("exec-approve");
    let db = shop(&sb);
    let keygen = sb.run(DEV, &["keygen", "--approver", "bob", "--out", "bob.key"]);
    assert_eq!(code(&keygen), 0, "{}", stderr(&keygen));
    let bob = stdout(&keygen).trim().to_owned();
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let policy = sb.write(
        "p.toml",
        format!(
            "[approval]\napprovers = {{ bob = {{ key = \"{bob}\", user = \"{me}\" }} }}\n\
             [[rule]]\nname = \"deletes\"\noperations = [\"db.delete.*\"]\ntiers = [\"production\"]\n\
             require = [\"confirm\", \"audit\"]\nconfirm = {{ mode = \"approval\" }}\n"
        )
        .as_bytes(),
    );
    let stale = sb.write("stale.sql", b"DELETE FROM carts WHERE stale");
    let fresh = sb.write("fresh.sql", b"DELETE FROM carts WHERE NOT stale");
    let approve = |script: &str, extra: &[&str]| {
        let args = [
            &[
                "--policy", &policy, "approve", "--key", "bob.key", "--sql", script, "--target",
            ][..],
            &[&format!("sqlite:{db}")],
            extra,
        ];
        sb.run(PROD, &args.concat())
    };
    let token = |script: &str, max: &str| {
        let out = approve(script, &["--max-rows", max]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        stdout(&out).trim().to_owned()
    };
    let exec = |script: &str, token: &str| {
        sb.run(
            PROD,
            &[
                "--policy",
                &policy,
                "sql",
                "exec",
                "--target",
                &db,
                "--approval",
                token,
                script,
            ],
        )
    };

    // --op must be the script's if given.
    let out = approve(&stale, &["--op", "db.migrate"]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`db.delete.where`"),
        "{}",
        stderr(&out)
    );

    // A token for one script does not run another.
    let out = exec(&fresh, &token(&stale, "100"));
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    assert!(stderr(&out).contains("fingerprint"), "{}", stderr(&out));
    // More rows than approved: refused after the dry run, nothing changed.
    let out = exec(&stale, &token(&stale, "99"));
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("100 rows; the approval allows at most 99"),
        "{}",
        stderr(&out)
    );
    assert_eq!(carts(&db), 300);
    // Within: committed once; the same token then is spent.
    let enough = token(&stale, "100");
    let out = exec(&stale, &enough);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(carts(&db), 200);
    let intent = &sb.records()[sb.records().len() - 2];
    assert_eq!(intent["confirm"]["max_rows"], 100);
    assert_eq!(code(&exec(&stale, &enough)), 121);
}
