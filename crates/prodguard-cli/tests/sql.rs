//! `prodguard sql check`, run for real with a clean environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;

use serde_json::Value;

mod common;

use common::{Sandbox, code, stderr, stdout};

const CORPUS: &str = include_str!("../../../tests/sql/corpus.json");

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(output), stderr(output)))
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
