//! Policy parsing, validation, evaluation and rendering.

use super::*;

/// The example policy of the design document ("Policy file (TOML)"),
/// verbatim but for the approver's key, which the document elides.
const DESIGN_EXAMPLE: &str = r#"[environment]
unknown = "protected"                # or a tier name; default: protected (fail closed)
marker_file = "/etc/prodguard/environment"
aliases = { "prod-eu" = "production" }

[audit]
log = "/var/log/prodguard/audit.jsonl"
durability = "fdatasync"             # "none" only for tests
seal_every = 1000
seal_key_file = "/etc/prodguard/seal.key"

[approval]                           # system policy only
approvers = { alice = { key = "ed25519:iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=", user = "alice" } }
max_ttl = "15m"
four_eyes = true

[[rule]]
operations = ["db.migrate", "db.delete.*"]   # globs over dotted names
tiers = ["production", "unknown"]
require = ["confirm", "backup", "audit"]
confirm = { mode = "either" }                # typed | approval | either
backup = { command = "cp {target} {path}", verify = "sqlite3 {path} 'PRAGMA integrity_check'", max_age = "1h" }

[[rule]]
operations = ["db.drop"]
tiers = ["production"]
deny = "dropping a production database is never done by an application"
"#;

fn toml_err(text: &str) -> PolicyError {
    match Policy::parse_toml(text, "p.toml") {
        Ok(p) => panic!("expected an error for:\n{text}\ngot {p:#?}"),
        Err(e) => e,
    }
}

fn json_err(text: &str) -> PolicyError {
    match Policy::parse_json(text, "p.json") {
        Ok(p) => panic!("expected an error for:\n{text}\ngot {p:#?}"),
        Err(e) => e,
    }
}

/// Asserts the error's position and that its message contains every fragment.
#[track_caller]
fn assert_err(err: &PolicyError, line: u32, column: u32, fragments: &[&str]) {
    assert_eq!(
        (err.line, err.column),
        (line, column),
        "wrong position for: {err}"
    );
    for fragment in fragments {
        assert!(
            err.message.contains(fragment),
            "message lacks {fragment:?}: {err}"
        );
    }
}

// ---------------------------------------------------------------- malformed (TOML)

#[test]
fn toml_unknown_top_level_key_suggests_the_nearest() {
    let err = toml_err("[enviroment]\nunknown = \"protected\"\n");
    assert_err(
        &err,
        1,
        2,
        &["unknown key `enviroment` at the top level; did you mean `environment`?"],
    );
    assert_eq!(err.file, "p.toml");
    assert!(
        err.to_string().starts_with("p.toml:1:2: unknown key"),
        "{err}"
    );
}

#[test]
fn toml_top_level_key_of_a_section_says_where_it_belongs() {
    let err = toml_err("operations = [\"db.migrate\"]\n");
    assert_err(
        &err,
        1,
        1,
        &["unknown key `operations` at the top level; `operations` belongs in [[rule]]"],
    );
}

#[test]
fn toml_unknown_key_in_section_suggests_the_nearest() {
    let err = toml_err("[audit]\nlog = \"a.jsonl\"\ndurabilty = \"none\"\n");
    assert_err(
        &err,
        3,
        1,
        &["unknown key `durabilty` in [audit]; did you mean `durability`?"],
    );
}

#[test]
fn toml_unknown_key_without_a_near_one_lists_the_valid_keys() {
    let err = toml_err("[approval]\n  zzz = 1\n");
    assert_err(
        &err,
        2,
        3,
        &["unknown key `zzz` in [approval]; valid keys are `approvers`, `max_ttl`, `four_eyes`"],
    );
}

#[test]
fn toml_unknown_key_in_rule_suggests_the_nearest() {
    let err = toml_err("[[rule]]\noperations = [\"db.*\"]\nrequre = [\"audit\"]\n");
    assert_err(
        &err,
        3,
        1,
        &["unknown key `requre` in [[rule]]; did you mean `require`?"],
    );
}

#[test]
fn toml_unknown_key_in_nested_tables() {
    let err = toml_err(
        "[[rule]]\noperations = [\"db.*\"]\nrequire = [\"confirm\"]\nconfirm = { mood = \"typed\" }\n",
    );
    assert_err(
        &err,
        4,
        13,
        &["unknown key `mood` in `confirm` of [[rule]]; did you mean `mode`?"],
    );
    let err = toml_err(
        "[[rule]]\noperations = [\"db.*\"]\nrequire = [\"backup\"]\n[rule.backup]\ncommand = \"x\"\nmaxage = \"1h\"\n",
    );
    assert_err(
        &err,
        6,
        1,
        &["unknown key `maxage` in `backup` of [[rule]]; did you mean `max_age`?"],
    );
}

#[test]
fn toml_wrong_type_names_expected_and_found() {
    let err = toml_err("[approval]\nfour_eyes = \"yes\"\n");
    assert_err(
        &err,
        2,
        13,
        &["`four_eyes` must be a boolean (true or false), found a string"],
    );
    let err = toml_err("[audit]\nseal_every = \"1000\"\n");
    assert_err(
        &err,
        2,
        14,
        &["`seal_every` must be a positive integer, found a string"],
    );
    let err = toml_err("[audit]\nseal_every = 0\n");
    assert_err(&err, 2, 14, &["positive integer (1 or more), found 0"]);
    let err = toml_err("environment = 5\n");
    assert_err(
        &err,
        1,
        15,
        &["`environment` must be a table, found an integer"],
    );
    let err = toml_err("[[rule]]\noperations = \"db.*\"\nrequire = [\"audit\"]\n");
    assert_err(
        &err,
        2,
        14,
        &["`operations` must be an array of operation globs, found a string"],
    );
}

#[test]
fn toml_single_rule_table_must_be_an_array_of_tables() {
    let err = toml_err("[rule]\noperations = [\"db.*\"]\nrequire = [\"audit\"]\n");
    assert_err(
        &err,
        1,
        1,
        &[
            "`rule` must be an array of rules (write each rule under its own [[rule]] header), found a table",
        ],
    );
}

#[test]
fn toml_bad_tier_in_rule_suggests_a_tier() {
    let err = toml_err(
        "[[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\", \"prodution\"]\nrequire = [\"audit\"]\n",
    );
    assert_err(
        &err,
        3,
        24,
        &[
            "unknown tier \"prodution\" in `tiers`; expected production, staging",
            "did you mean `production`?",
        ],
    );
}

#[test]
fn toml_environment_name_in_rule_tiers_says_to_use_the_tier() {
    let err = toml_err(
        "[[rule]]\noperations = [\"*\"]\ntiers = [\"prod-eu\"]\nrequire = [\"audit\"]\n\n[environment]\naliases = { \"prod-eu\" = \"production\" }\n",
    );
    assert_err(
        &err,
        3,
        10,
        &[
            "\"prod-eu\" in `tiers` is an environment name ([environment] aliases maps it to production); rules name tiers: write \"production\"",
        ],
    );
}

#[test]
fn toml_bad_tier_in_aliases_counts_columns_in_characters() {
    // `ø` is two bytes: a byte count would say column 23.
    let err = toml_err("[environment]\naliases = { \"prød\" = \"prodution\" }\n");
    assert_err(
        &err,
        2,
        22,
        &[
            "unknown tier \"prodution\" in `aliases.prød`",
            "did you mean `production`?",
        ],
    );
}

#[test]
fn toml_alias_cannot_remap_a_builtin_name() {
    let err = toml_err("[environment]\naliases = { prod = \"staging\" }\n");
    assert_err(
        &err,
        2,
        20,
        &["alias `prod` is a built-in name for production; it cannot be mapped to staging"],
    );
    let err = toml_err(
        "[environment]\naliases = { \"Prod-EU\" = \"production\", \"prod-eu \" = \"staging\" }\n",
    );
    assert_err(&err, 2, 39, &["is the same name as `Prod-EU`"]);
}

#[test]
fn toml_unknown_environment_setting() {
    let err = toml_err("[environment]\nunknown = \"prodd\"\n");
    assert_err(
        &err,
        2,
        11,
        &["`unknown` must be \"protected\"", "found \"prodd\""],
    );
}

#[test]
fn toml_bad_durations_say_the_accepted_form() {
    let cases = [
        ("\"15\"", "the number 15 has no unit"),
        ("\"15x\"", "unknown unit `x`"),
        ("\"m\"", "the unit `m` has no number before it"),
        ("\"0s\"", "the duration must be longer than zero"),
        ("\"1h 30m\"", "must not contain whitespace"),
        ("\"99999999999999999999d\"", "too long"),
    ];
    for (value, fragment) in cases {
        let err = toml_err(&format!("[approval]\nmax_ttl = {value}\n"));
        assert_err(
            &err,
            2,
            11,
            &[
                "`max_ttl`: ",
                fragment,
                "expected a duration such as \"90s\", \"15m\", \"1h\", \"2d\" or \"1h30m\"",
            ],
        );
    }
    let err = toml_err("[approval]\nmax_ttl = 900\n");
    assert_err(
        &err,
        2,
        11,
        &["`max_ttl` must be a duration string such as \"15m\" (in quotes), found an integer"],
    );
    let err = toml_err(
        "[[rule]]\noperations = [\"db.*\"]\nrequire = [\"backup\"]\nbackup = { path = \"/b\", max_age = \"1y\" }\n",
    );
    assert_err(&err, 4, 35, &["`backup.max_age`: unknown unit `y`"]);
}

#[test]
fn toml_bad_operation_globs() {
    let cases = [
        (
            "\"DB.Drop\"",
            "uppercase letter `D` in an operation glob `DB.Drop`",
        ),
        (
            "\"db migrate\"",
            "whitespace in an operation glob `db migrate`",
        ),
        (
            "\"db..drop\"",
            "empty segment in an operation glob `db..drop`",
        ),
        ("\"\"", "an operation glob must not be empty"),
        ("\"db/drop\"", "character `/` is not allowed"),
    ];
    for (value, fragment) in cases {
        let err = toml_err(&format!(
            "[[rule]]\noperations = [\"db.migrate\", {value}]\nrequire = [\"audit\"]\n"
        ));
        assert_err(&err, 2, 29, &["invalid entry in `operations`: ", fragment]);
    }
    let err = toml_err("[[rule]]\noperations = []\nrequire = [\"audit\"]\n");
    assert_err(
        &err,
        2,
        14,
        &["`operations` must list at least one operation glob"],
    );
    let err = toml_err("[[rule]]\nrequire = [\"audit\"]\n");
    assert_err(
        &err,
        1,
        1,
        &["rule #1 (line 1) has no `operations`; add operations = ["],
    );
}

#[test]
fn toml_unknown_requirement_and_duplicates() {
    let err = toml_err("[[rule]]\noperations = [\"db.*\"]\nrequire = [\"confirm\", \"backups\"]\n");
    assert_err(
        &err,
        3,
        23,
        &[
            "unknown requirement \"backups\" in `require`; expected \"confirm\", \"backup\", \"audit\", \"staged\" or \"rollback\"",
            "did you mean `backup`?",
        ],
    );
    let err = toml_err("[[rule]]\noperations = [\"db.*\"]\nrequire = [\"audit\", \"audit\"]\n");
    assert_err(&err, 3, 21, &["\"audit\" is listed twice in `require`"]);
    let err = toml_err("[[rule]]\noperations = [\"db.*\"]\nrequire = []\n");
    assert_err(&err, 3, 11, &["`require` must list at least one of"]);
    let err = toml_err("[[rule]]\noperations = [\"db.*\"]\nrequire = [\"deny\"]\n");
    assert_err(
        &err,
        3,
        12,
        &["to refuse the operation write deny = \"why\""],
    );
}

#[test]
fn toml_rule_with_neither_require_nor_deny_names_its_line() {
    let err = toml_err(
        "[environment]\nunknown = \"protected\"\n\n[[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\n",
    );
    assert_err(
        &err,
        4,
        1,
        &["rule #1 (line 4) has neither `require` nor `deny`; add require = ["],
    );
    let err = toml_err(
        "[[rule]]\nname = \"first\"\noperations = [\"a\"]\nrequire = [\"audit\"]\n\n[[rule]]\nname = \"second\"\noperations = [\"b\"]\n",
    );
    assert_err(
        &err,
        6,
        1,
        &["rule \"second\" has neither `require` nor `deny`"],
    );
}

#[test]
fn toml_rule_with_both_deny_and_require() {
    let err =
        toml_err("[[rule]]\noperations = [\"db.drop\"]\nrequire = [\"audit\"]\ndeny = \"never\"\n");
    assert_err(
        &err,
        4,
        1,
        &[
            "rule #1 (line 1) has both `require` and `deny`",
            "split it into two rules",
        ],
    );
}

#[test]
fn toml_backup_required_without_a_way_to_get_one() {
    let err =
        toml_err("[[rule]]\noperations = [\"db.migrate\"]\nrequire = [\"confirm\", \"backup\"]\n");
    assert_err(
        &err,
        3,
        23,
        &[
            "`require` lists \"backup\" but rule #1 (line 1) does not say how to get one",
            "add backup = { command = ",
            "backup = { path = \"/backups/db.dump\", max_age = \"1h\" }",
        ],
    );
    // A path alone is not enough: without max_age any old file would count.
    let err = toml_err(
        "[[rule]]\noperations = [\"db.migrate\"]\nrequire = [\"backup\"]\nbackup = { path = \"/b/x\" }\n",
    );
    assert_err(&err, 3, 12, &["does not say how to get one"]);
    // A path with a max age, or a command, is.
    for backup in [
        "{ path = \"/b/x\", max_age = \"1h\" }",
        "{ command = \"cp {target} {path}\", verify = \"test -s {path}\" }",
    ] {
        let text = format!(
            "[[rule]]\noperations = [\"db.migrate\"]\nrequire = [\"backup\"]\nbackup = {backup}\n"
        );
        assert!(Policy::parse_toml(&text, "p.toml").is_ok(), "{text}");
    }
}

#[test]
fn toml_settings_without_their_requirement_are_refused() {
    let err = toml_err(
        "[[rule]]\noperations = [\"db.*\"]\nrequire = [\"audit\"]\nconfirm = { mode = \"typed\" }\n",
    );
    assert_err(
        &err,
        4,
        1,
        &[
            "`confirm` has no effect in rule #1 (line 1) because its `require` does not list \"confirm\"",
        ],
    );
    let err = toml_err(
        "[[rule]]\noperations = [\"db.*\"]\nrequire = [\"audit\"]\nbackup = { command = \"x\" }\n",
    );
    assert_err(&err, 4, 1, &["`backup` has no effect"]);
    let err = toml_err("[[rule]]\noperations = [\"db.*\"]\ndeny = \"no\"\nactors = [\"agent\"]\n");
    assert_err(
        &err,
        4,
        1,
        &["`actors` has no effect in rule #1 (line 1) because it denies"],
    );
}

#[test]
fn toml_actors_and_confirm_modes_are_checked() {
    let err = toml_err(
        "[[rule]]\noperations = [\"db.*\"]\nrequire = [\"audit\"]\nactors = [\"humans\"]\n",
    );
    assert_err(
        &err,
        4,
        11,
        &[
            "unknown actor kind \"humans\" in `actors`",
            "did you mean `human`?",
        ],
    );
    let err = toml_err("[[rule]]\noperations = [\"db.*\"]\nrequire = [\"audit\"]\nactors = []\n");
    assert_err(&err, 4, 10, &["remove `actors` to let anyone act"]);
    let err = toml_err(
        "[[rule]]\noperations = [\"db.*\"]\nrequire = [\"confirm\"]\nconfirm = { mode = \"yes\" }\n",
    );
    assert_err(
        &err,
        4,
        20,
        &[
            "`confirm.mode` must be \"typed\" (at a terminal), \"approval\" (a pre-issued token), \"either\" or \"both\" (a token and typing), found \"yes\"",
        ],
    );
}

#[test]
fn toml_duplicate_rule_names_are_refused() {
    let err = toml_err(
        "[[rule]]\nname = \"db\"\noperations = [\"a\"]\nrequire = [\"audit\"]\n[[rule]]\nname = \"db\"\noperations = [\"b\"]\nrequire = [\"audit\"]\n",
    );
    assert_err(
        &err,
        6,
        8,
        &["rule name \"db\" is already used by the rule at line 1"],
    );
}

#[test]
fn toml_syntax_errors_have_positions() {
    let err = toml_err("[audit]\nlog = \"a\"\n[rule\n");
    assert_err(&err, 3, 6, &["invalid TOML: unclosed table, expected `]`"]);
    let err = toml_err("[audit]\nlog = \n");
    assert_err(&err, 2, 7, &["invalid TOML: "]);
    let err = toml_err("[audit]\nlog = \"a\"\nlog = \"b\"\n");
    assert_err(&err, 3, 1, &["invalid TOML: duplicate key `log`"]);
}

// ---------------------------------------------------------------- malformed (JSON)

#[test]
fn json_syntax_errors_have_positions() {
    let err = json_err("{\n  \"audit\": {\"log\": \"x\",}\n}\n");
    assert_err(
        &err,
        2,
        24,
        &["invalid JSON: a trailing comma is not allowed before `}`"],
    );
    let err = json_err("{\n  \"audit\": {\"log\" \"x\"}\n}");
    assert_err(
        &err,
        2,
        19,
        &["invalid JSON: expected `:` after the key `log`, found `\"`"],
    );
    let err = json_err("{\"rule\": [\n  {\"operations\": [\"a\"]}\n  {}\n]}");
    assert_err(
        &err,
        3,
        3,
        &["invalid JSON: expected `,` or `]` after an array element, found `{`"],
    );
    let err = json_err("{\"audit\": {\"log\": \"x}}\n");
    assert_err(&err, 1, 19, &["invalid JSON: unterminated string"]);
    let err = json_err("{\"audit\": {\"log\": \"x}}");
    assert_err(
        &err,
        1,
        19,
        &["invalid JSON: unterminated string; expected a closing"],
    );
    let err = json_err("{\"audit\": {\"log\": \"x\ty\"}}");
    assert_err(&err, 1, 21, &["control characters must be escaped"]);
    let err = json_err("");
    assert_err(&err, 1, 1, &["invalid JSON: the document is empty"]);
    let err = json_err("{} {}");
    assert_err(&err, 1, 4, &["after the end of the document"]);
    let err = json_err("{\n  // note\n}");
    assert_err(&err, 2, 3, &["comments are not allowed in JSON"]);
    let err = json_err("{\"audit\": {\"log\": 'x'}}");
    assert_err(&err, 1, 19, &["expected a value"]);
    let err = json_err("{\"audit\": {\"seal_every\": 01}}");
    assert_err(&err, 1, 26, &["leading zeros"]);
    let err = json_err("{\"audit\": {\"log\": \"a\\qb\"}}");
    assert_err(&err, 1, 21, &["invalid escape"]);
    let err = json_err(&format!("{}{}", "[".repeat(100), "]".repeat(100)));
    assert!(err.message.contains("nested more than 64 levels"), "{err}");
}

#[test]
fn json_unknown_key_in_rule_has_its_position() {
    let err = json_err(
        "{\n  \"rule\": [\n    {\"operations\": [\"db.*\"], \"requre\": [\"audit\"]}\n  ]\n}\n",
    );
    assert_err(
        &err,
        3,
        30,
        &["unknown key `requre` in [[rule]]; did you mean `require`?"],
    );
    let err = json_err("{\"rules\": []}");
    assert_err(
        &err,
        1,
        2,
        &["unknown key `rules` at the top level; did you mean `rule`?"],
    );
}

#[test]
fn json_wrong_types_use_json_words() {
    let err = json_err("{\"approval\": {\"four_eyes\": \"yes\"}}");
    assert_err(
        &err,
        1,
        28,
        &["`four_eyes` must be a boolean (true or false), found a string"],
    );
    let err = json_err("{\"rule\": {\"operations\": [\"x\"]}}");
    assert_err(
        &err,
        1,
        10,
        &["`rule` must be an array of rules (write \"rule\": [ { … }, { … } ]), found an object"],
    );
    let err = json_err("{\"audit\": {\"log\": null}}");
    assert_err(
        &err,
        1,
        19,
        &["`log` must be a string, found null; remove the key to use the default"],
    );
    let err = json_err("[1]");
    assert_err(
        &err,
        1,
        1,
        &["the policy must be a JSON object", "found an array"],
    );
    let err = json_err("{\"audit\": {\"seal_every\": 1.5}}");
    assert_err(&err, 1, 26, &["found a floating-point number"]);
}

#[test]
fn json_duplicate_keys_and_semantic_errors_have_positions() {
    let err = json_err("{\"audit\": {\"log\": \"a\",\n \"log\": \"b\"}}");
    assert_err(&err, 2, 2, &["invalid JSON: duplicate key `log`"]);
    let err = json_err(
        "{\"rule\": [{\"operations\": [\"db.migrate\"],\n            \"require\": [\"backup\"]}]}",
    );
    assert_err(
        &err,
        2,
        25,
        &["`require` lists \"backup\" but rule #1 (line 1)"],
    );
    let err = json_err("{\"approval\": {\"max_ttl\": \"15\"}}");
    assert_err(&err, 1, 26, &["the number 15 has no unit"]);
    let err = json_err("{\"rule\": [\n\n  {\"operations\": [\"a\"]}]}");
    assert_err(
        &err,
        3,
        3,
        &["rule #1 (line 3) has neither `require` nor `deny`"],
    );
}

// ---------------------------------------------------------------- well-formed

#[test]
fn design_document_example_parses() {
    let policy =
        Policy::parse_toml(DESIGN_EXAMPLE, "prodguard.toml").expect("the example is valid");
    assert_eq!(policy.source, "prodguard.toml");
    assert_eq!(policy.environment.unknown, UnknownEnvironment::Protected);
    assert_eq!(policy.environment.marker_file, "/etc/prodguard/environment");
    assert_eq!(
        policy.environment.aliases.get("prod-eu"),
        Some(&Tier::Production)
    );
    assert_eq!(
        policy.audit,
        AuditConfig {
            log: Some("/var/log/prodguard/audit.jsonl".into()),
            durability: Durability::Fdatasync,
            seal_every: Some(1000),
            seal_key_file: Some("/etc/prodguard/seal.key".into()),
            rotate_bytes: None,
            sink: None,
            copies: Vec::new(),
        }
    );
    assert_eq!(
        policy.approval,
        ApprovalConfig {
            approvers: BTreeMap::from([(
                "alice".to_owned(),
                Approver {
                    key: crate::approval::ApproverKey::from_secret("alice", [1u8; 32])
                        .unwrap()
                        .public_key(),
                    user: "alice".into(),
                }
            )]),
            max_ttl_seconds: 900,
            four_eyes: true,
            ledger: None,
            break_glass_users: Vec::new(),
        }
    );
    assert_eq!(policy.rules.len(), 2);
    let first = &policy.rules[0];
    assert_eq!(first.name, "rule #1 (line 17)");
    assert_eq!(first.operations, ["db.migrate", "db.delete.*"]);
    assert_eq!(first.tiers, [Tier::Production, Tier::Unknown]);
    assert_eq!(
        first.require,
        [
            Requirement::Confirm,
            Requirement::Backup,
            Requirement::Audit
        ]
    );
    assert_eq!(first.confirm_mode, ConfirmMode::Either);
    assert_eq!(
        first.backup,
        Some(BackupSpec::Command {
            command: "cp {target} {path}".into(),
            verify: "sqlite3 {path} 'PRAGMA integrity_check'".into(),
            path: None,
            max_age_seconds: Some(3600),
        })
    );
    let second = &policy.rules[1];
    assert_eq!(second.name, "rule #2 (line 24)");
    assert_eq!(
        second.deny.as_deref(),
        Some("dropping a production database is never done by an application")
    );
    assert!(second.require.is_empty());
}

const EQUIVALENT_TOML: &str = r#"
[environment]
unknown = "development"
marker_file = "/srv/env"
aliases = { "Prod-EU" = "prod", " qa " = "staging" }
hostnames = { "*-prod-*" = "production", "db?.stage.*" = "staging" }

[audit]
log = "/var/log/pg.jsonl"
durability = "none"
seal_every = 50

[approval]
max_ttl = "1h30m"
four_eyes = true

[[rule]]
name = "migrations"
operations = ["db.migrate", "db.delete.*"]
tiers = ["PROD", "staging"]
require = ["audit", "backup", "confirm"]
confirm = { mode = "typed" }
backup = { command = "pg_dump -Fc -f {path}", verify = "pg_restore --list {path}", path = "/b/{target}-{ts}.dump", max_age = "2d" }
actors = ["human", "ci"]

[[rule]]
name = "no drops"
operations = ["db.drop"]
deny = "never \"drop\" here\nask the DBA"
"#;

const EQUIVALENT_JSON: &str = r#"{
  "environment": {
    "unknown": "development",
    "marker_file": "/srv/env",
    "aliases": {"Prod-EU": "prod", " qa ": "staging"},
    "hostnames": {"*-prod-*": "production", "db?.stage.*": "staging"}
  },
  "audit": {"log": "/var/log/pg.jsonl", "durability": "none", "seal_every": 50},
  "approval": {"max_ttl": "1h30m", "four_eyes": true},
  "rule": [
    {
      "name": "migrations",
      "operations": ["db.migrate", "db.delete.*"],
      "tiers": ["PROD", "staging"],
      "require": ["audit", "backup", "confirm"],
      "confirm": {"mode": "typed"},
      "backup": {"command": "pg_dump -Fc -f {path}", "verify": "pg_restore --list {path}",
                 "path": "/b/{target}-{ts}.dump", "max_age": "2d"},
      "actors": ["human", "ci"]
    },
    {"name": "no drops", "operations": ["db.drop"], "deny": "never \"drop\" here\nask the DBA"}
  ]
}"#;

#[test]
fn toml_and_json_give_the_same_policy() {
    let from_toml = Policy::parse_toml(EQUIVALENT_TOML, "p").expect("valid TOML policy");
    let from_json = Policy::parse_json(EQUIVALENT_JSON, "p").expect("valid JSON policy");
    assert_eq!(from_toml, from_json);

    let p = from_toml;
    assert_eq!(
        p.environment.unknown,
        UnknownEnvironment::Tier(Tier::Development)
    );
    assert_eq!(
        p.environment.aliases.iter().collect::<Vec<_>>(),
        [
            (&"prod-eu".to_string(), &Tier::Production),
            (&"qa".to_string(), &Tier::Staging)
        ]
    );
    assert_eq!(
        p.environment.hostnames,
        [
            HostnameHint {
                pattern: "*-prod-*".into(),
                tier: Tier::Production
            },
            HostnameHint {
                pattern: "db?.stage.*".into(),
                tier: Tier::Staging
            },
        ]
    );
    assert_eq!(p.audit.durability, Durability::None);
    assert_eq!(p.approval.max_ttl_seconds, 5400);
    assert!(p.approval.four_eyes);
    let rule = &p.rules[0];
    assert_eq!(rule.tiers, [Tier::Production, Tier::Staging]);
    // Requirements are kept in canonical order whatever the file's order.
    assert_eq!(
        rule.require,
        [
            Requirement::Confirm,
            Requirement::Backup,
            Requirement::Audit
        ]
    );
    assert_eq!(rule.confirm_mode, ConfirmMode::Typed);
    assert_eq!(rule.actors, [ActorKind::Human, ActorKind::Ci]);
    assert_eq!(
        rule.backup.as_ref().and_then(BackupSpec::max_age_seconds),
        Some(172_800)
    );
    assert_eq!(
        p.rules[1].deny.as_deref(),
        Some("never \"drop\" here\nask the DBA")
    );
}

#[test]
fn a_policy_without_rules_is_refused() {
    for (text, name) in [
        ("", "empty.toml"),
        ("{}", "empty.json"),
        ("[audit]\nlog = \"/x\"\n", "p.toml"),
    ] {
        let err = Policy::parse(text, name).unwrap_err();
        assert_eq!((err.line, err.column), (1, 1), "{err}");
        assert!(err.message.contains("nothing would be guarded"), "{err}");
    }
}

#[test]
fn missing_sections_take_the_documented_defaults() {
    let p = Policy::parse_toml(MINIMAL_RULE, "minimal.toml").expect("one rule is enough");
    assert_eq!(p.environment.unknown, UnknownEnvironment::Protected);
    // The system marker is always read; `marker_file` only adds one.
    assert_eq!(p.environment.marker_file, "");
    assert_eq!(p.environment.marker_paths(), [DEFAULT_MARKER_FILE]);
    assert_eq!(p.audit.durability, Durability::Fdatasync);
    assert_eq!(p.audit.log, None);
    assert_eq!(p.approval.max_ttl_seconds, 900);
    assert!(!p.approval.four_eyes);
    assert_eq!(p.rules.len(), 1);
    let json = r#"{"rule": [{"name": "r", "operations": ["*"], "require": ["audit"]}]}"#;
    assert_eq!(Policy::parse_json(json, "minimal.toml"), Ok(p));
}

const MINIMAL_RULE: &str = "[[rule]]\nname = \"r\"\noperations = [\"*\"]\nrequire = [\"audit\"]\n";

#[test]
fn parse_chooses_the_format() {
    let json = r#"{"approval": {"four_eyes": true}, "rule": [{"operations": ["*"], "require": ["audit"]}]}"#;
    assert!(Policy::parse(json, "policy.json").is_ok_and(|p| p.approval.four_eyes));
    assert!(Policy::parse(json, "policy.JSON").is_ok_and(|p| p.approval.four_eyes));
    // No .json name, but it starts with `{` and is not TOML.
    assert!(Policy::parse(json, "prodguard.toml").is_ok_and(|p| p.approval.four_eyes));
    assert!(Policy::parse(&format!("\u{feff}  \n{json}"), "x").is_ok());
    // JSON errors are reported as JSON errors for such text.
    let err = Policy::parse("{\"approval\": {\"four_eyes\": 1}}", "p").unwrap_err();
    assert_err(&err, 1, 28, &["`four_eyes` must be a boolean"]);
    // TOML otherwise, even in a file named .toml with JSON-looking values.
    let toml = format!("[approval]\nfour_eyes = true\n{MINIMAL_RULE}");
    let toml = toml.as_str();
    assert!(Policy::parse(toml, "p.toml").is_ok_and(|p| p.approval.four_eyes));
    let err = Policy::parse(toml, "p.json").unwrap_err();
    assert_err(&err, 1, 2, &["invalid JSON"]);
}

#[test]
fn byte_order_mark_takes_no_column() {
    let err = toml_err("\u{feff}[audit]\nfoo = 1\n");
    assert_err(&err, 2, 1, &["unknown key `foo`"]);
    let err = toml_err("\u{feff}foo = 1\n");
    assert_err(&err, 1, 1, &["unknown key `foo`"]);
    let err = json_err("\u{feff}{\"foo\": 1}");
    assert_err(&err, 1, 2, &["unknown key `foo`"]);
}

#[test]
fn json_strings_decode_escapes() {
    let p = Policy::parse_json(
        r#"{"rule": [{"operations": ["a"], "deny": "tab\there \u00e9 \ud83d\ude00 \/ \\ \""}]}"#,
        "p",
    )
    .expect("valid");
    assert_eq!(p.rules[0].deny.as_deref(), Some("tab\there é 😀 / \\ \""));
    let err = json_err(r#"{"rule": [{"operations": ["a"], "deny": "\ud83d"}]}"#);
    assert!(err.message.contains("unpaired surrogate"), "{err}");
}

#[test]
fn truncated_and_garbled_input_never_panics() {
    for text in [DESIGN_EXAMPLE, EQUIVALENT_JSON, EQUIVALENT_TOML] {
        let mut cut = 0;
        while cut <= text.len() {
            if text.is_char_boundary(cut) {
                let prefix = &text[..cut];
                for result in [
                    Policy::parse_toml(prefix, "p"),
                    Policy::parse_json(prefix, "p"),
                    Policy::parse(prefix, "p"),
                ] {
                    if let Err(e) = result {
                        let lines = u32::try_from(prefix.lines().count().max(1)).unwrap_or(0);
                        assert!(e.line >= 1 && e.line <= lines + 1, "{e}");
                        assert!(e.column >= 1, "{e}");
                    }
                }
            }
            cut += 1;
        }
    }
}

// ---------------------------------------------------------------- the default policy

#[test]
fn default_policy_text_parses_to_builtin_default() {
    let parsed = Policy::parse_toml(DEFAULT_POLICY_TOML, "<default>");
    assert_eq!(parsed, Ok(Policy::hand_built_default()));
    assert_eq!(Policy::builtin_default(), Policy::hand_built_default());
    let p = Policy::builtin_default();
    assert_eq!(p.source, "<default>");
    assert_eq!(p.rules.len(), 1);
    assert_eq!(p.rules[0].name, "default: protected tiers");
    assert_eq!(p.rules[0].operations, ["*"]);
    assert_eq!(p.rules[0].tiers, [Tier::Production, Tier::Unknown]);
    assert_eq!(p.approval.max_ttl_seconds, 900);
}

// ---------------------------------------------------------------- evaluate

fn policy(text: &str) -> Policy {
    match Policy::parse_toml(text, "p.toml") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn evaluate_no_match_is_unguarded() {
    let p = Policy::builtin_default();
    for tier in [Tier::Staging, Tier::Development, Tier::Test, Tier::Local] {
        let e = p.evaluate(tier, "db.migrate");
        assert!(e.is_unguarded(), "{tier}: {e:?}");
        assert!(e.requirements.is_empty());
        assert!(!e.is_denied());
    }
    for tier in [Tier::Production, Tier::Unknown] {
        let e = p.evaluate(tier, "cache.flush");
        assert_eq!(e.matched_rules, ["default: protected tiers"]);
        assert_eq!(
            e.requirements,
            [
                (Requirement::Confirm, "default: protected tiers".to_string()),
                (Requirement::Audit, "default: protected tiers".to_string()),
            ]
        );
        assert_eq!(e.confirm_mode, ConfirmMode::Either);
    }
    let p = policy(DESIGN_EXAMPLE);
    assert!(p.evaluate(Tier::Production, "db.seed").is_unguarded());
    assert!(p.evaluate(Tier::Production, "db.deletex").is_unguarded());
}

#[test]
fn evaluate_deny_wins_over_requirements() {
    let p = policy(DESIGN_EXAMPLE);
    let e = p.evaluate(Tier::Production, "db.drop");
    assert_eq!(
        e.denied_by,
        Some((
            "rule #2 (line 24)".to_string(),
            "dropping a production database is never done by an application".to_string()
        ))
    );
    // Unknown is guarded like production: the production-only deny applies.
    let e = p.evaluate(Tier::Unknown, "db.drop");
    assert!(e.is_denied());
    // Staging is not production: it does not.
    let e = p.evaluate(Tier::Staging, "db.drop");
    assert!(e.is_unguarded());

    let p = policy(
        "[[rule]]\nname = \"guard\"\noperations = [\"*\"]\nrequire = [\"confirm\"]\n\n[[rule]]\nname = \"no\"\noperations = [\"db.drop\"]\ndeny = \"never\"\n",
    );
    let e = p.evaluate(Tier::Local, "db.drop");
    assert!(e.is_denied());
    assert_eq!(e.denied_by.as_ref().map(|(n, _)| n.as_str()), Some("no"));
    assert_eq!(e.matched_rules, ["guard", "no"]);
    assert!(e.requires(Requirement::Confirm));
}

#[test]
fn evaluate_unions_requirements_across_rules() {
    let p = policy(
        r#"
[[rule]]
name = "all"
operations = ["*"]
require = ["audit"]

[[rule]]
name = "db"
operations = ["db.*"]
tiers = ["production"]
require = ["confirm", "audit"]
confirm = { mode = "approval" }

[[rule]]
name = "deletes"
operations = ["db.delete.*"]
require = ["backup", "confirm"]
confirm = { mode = "typed" }
backup = { command = "dump {path}", verify = "check {path}" }
actors = ["human", "ci"]

[[rule]]
name = "humans"
operations = ["db.delete.users"]
require = ["confirm"]
actors = ["agent", "human"]
"#,
    );
    let e = p.evaluate(Tier::Production, "db.delete.users");
    assert_eq!(e.matched_rules, ["all", "db", "deletes", "humans"]);
    assert_eq!(
        e.requirements,
        [
            (Requirement::Confirm, "db".to_string()),
            (Requirement::Backup, "deletes".to_string()),
            (Requirement::Audit, "all".to_string()),
        ]
    );
    // Typed and approval add up to both; either asks nothing more.
    assert_eq!(e.confirm_mode, ConfirmMode::Both);
    assert_eq!(
        e.backup.as_ref().and_then(|b| b.command()),
        Some("dump {path}")
    );
    // Intersection of the restricting rules.
    assert_eq!(e.actors, [ActorKind::Human]);
    assert!(e.allows_actor(ActorKind::Human));
    assert!(!e.allows_actor(ActorKind::Agent));
    assert_eq!(e.rule_for(Requirement::Backup), Some("deletes"));

    let e = p.evaluate(Tier::Production, "db.migrate");
    assert_eq!(e.matched_rules, ["all", "db"]);
    assert_eq!(e.confirm_mode, ConfirmMode::Approval);
    assert!(e.actors.is_empty());
    assert!(e.allows_actor(ActorKind::Agent));
    assert_eq!(e.backup, None);
}

#[test]
fn evaluate_filters_by_tier() {
    let p = policy(
        "[[rule]]\nname = \"prod\"\noperations = [\"db.*\"]\ntiers = [\"prod\", \"unknown\"]\nrequire = [\"confirm\"]\n\n[[rule]]\nname = \"everywhere\"\noperations = [\"db.migrate\"]\nrequire = [\"audit\"]\n",
    );
    let e = p.evaluate(Tier::Production, "db.migrate");
    assert_eq!(e.matched_rules, ["prod", "everywhere"]);
    let e = p.evaluate(Tier::Unknown, "db.migrate");
    assert_eq!(e.matched_rules, ["prod", "everywhere"]);
    let e = p.evaluate(Tier::Staging, "db.migrate");
    assert_eq!(e.matched_rules, ["everywhere"]);
    assert!(!e.requires(Requirement::Confirm));
    assert!(e.requires(Requirement::Audit));
    assert!(p.evaluate(Tier::Staging, "db.drop").is_unguarded());
}

#[test]
fn evaluate_refuses_when_actor_lists_do_not_overlap() {
    let p = policy(
        "[[rule]]\nname = \"a\"\noperations = [\"*\"]\nrequire = [\"audit\"]\nactors = [\"human\"]\n[[rule]]\nname = \"b\"\noperations = [\"x\"]\nrequire = [\"audit\"]\nactors = [\"ci\", \"service\"]\n",
    );
    let e = p.evaluate(Tier::Local, "x");
    let (rule, reason) = e.denied_by.clone().unwrap_or_default();
    assert_eq!(rule, "b");
    assert!(
        reason.contains("a allows only human; b allows only ci, service"),
        "{reason}"
    );
    assert!(!p.evaluate(Tier::Local, "y").is_denied());
}

// ---------------------------------------------------------------- fleet mode

const FLEET_TOML: &str = r#"
[audit]
log = "/var/log/prodguard/audit.jsonl"
sink = "postgresql://prodguard@db.internal/fleet"

[approval]
ledger = "postgres://prodguard@db.internal:5433/fleet"

[fleet]
lock = "postgresql://prodguard@db.internal/fleet"
wait = "2m"

[[rule]]
operations = ["*"]
tiers = ["production"]
require = ["audit"]
"#;

#[test]
fn fleet_keys_parse_in_toml_and_json() {
    let p = policy(FLEET_TOML);
    assert_eq!(
        p.audit.sink.as_deref(),
        Some("postgresql://prodguard@db.internal/fleet")
    );
    assert_eq!(
        p.audit.log.as_deref(),
        Some("/var/log/prodguard/audit.jsonl")
    );
    assert_eq!(
        p.approval.ledger.as_deref(),
        Some("postgres://prodguard@db.internal:5433/fleet")
    );
    assert_eq!(
        p.fleet,
        FleetConfig {
            lock: Some("postgresql://prodguard@db.internal/fleet".into()),
            wait_seconds: 120,
        }
    );
    let json = Policy::parse_json(
        r#"{"fleet": {"lock": "postgresql://h/db", "wait": "0"},
            "rule": [{"operations": ["*"], "require": ["audit"]}]}"#,
        "p.json",
    )
    .unwrap();
    assert_eq!(json.fleet.lock.as_deref(), Some("postgresql://h/db"));
    assert_eq!(json.fleet.wait_seconds, 0);
    // Without the keys nothing changes: no sink, no ledger, no lock.
    let plain = Policy::builtin_default();
    assert_eq!((plain.audit.sink, plain.approval.ledger), (None, None));
    assert_eq!(plain.fleet, FleetConfig::default());
}

#[test]
fn fleet_keys_refuse_what_is_not_postgresql() {
    let rule = "\n[[rule]]\noperations = [\"*\"]\nrequire = [\"audit\"]\n";
    for (text, column) in [
        ("[audit]\nsink = \"mysql://db/fleet\"", 8),
        ("[audit]\nsink = \"/var/log/audit.jsonl\"", 8),
        ("[approval]\nledger = \"db.internal\"", 10),
        ("[fleet]\nlock = \"redis://locks\"", 8),
    ] {
        let err = toml_err(&format!("{text}{rule}"));
        assert_err(
            &err,
            2,
            column,
            &["must be a PostgreSQL URL", "postgresql://"],
        );
    }
    let err = toml_err(&format!(
        "[audit]\nsink = \"postgresql://app:hunter2@db/fleet\"{rule}"
    ));
    assert_err(&err, 2, 8, &["`sink` holds a password", "PGPASSWORD"]);
    assert!(!err.message.contains("hunter2"), "{err}");
    let err = toml_err(&format!(
        "[fleet]\nlock = \"postgresql://db/fleet?password=hunter2\"{rule}"
    ));
    assert_err(&err, 2, 8, &["`lock` holds a password"]);
    let err = toml_err(&format!("[fleet]\nlock = \"\"{rule}"));
    assert_err(&err, 2, 8, &["`lock` must not be empty"]);
    let err = toml_err(&format!("[fleet]\nlock = 5{rule}"));
    assert_err(&err, 2, 8, &["`lock` must be a string"]);
}

#[test]
fn fleet_section_checks_its_keys_and_wait() {
    let rule = "\n[[rule]]\noperations = [\"*\"]\nrequire = [\"audit\"]\n";
    let err = toml_err(&format!("[fleet]\nlocks = \"postgresql://h/db\"{rule}"));
    assert_err(
        &err,
        2,
        1,
        &["unknown key `locks` in [fleet]", "did you mean `lock`?"],
    );
    let err = toml_err(&format!(
        "[fleet]\nlock = \"postgresql://h/db\"\nwait = \"soon\"{rule}"
    ));
    assert_err(&err, 3, 8, &["`wait`", "15m"]);
    let err = toml_err(&format!("[fleet]\nwait = \"30s\"{rule}"));
    assert_err(&err, 2, 8, &["names no `lock`"]);
    // A fleet key at the top level says where it belongs.
    let err = toml_err(&format!("lock = \"postgresql://h/db\"{rule}"));
    assert_err(&err, 1, 1, &["`lock` belongs in [fleet]"]);
    let err = toml_err(&format!("ledger = \"postgresql://h/db\"{rule}"));
    assert_err(&err, 1, 1, &["`ledger` belongs in [approval]"]);
}

// ---------------------------------------------------------------- rendering

#[test]
fn to_toml_string_round_trips() {
    let mut policies = vec![
        Policy::builtin_default(),
        policy(DESIGN_EXAMPLE),
        policy(EQUIVALENT_TOML),
    ];
    let mut odd = policy(EQUIVALENT_TOML);
    odd.source = "p.toml".into();
    odd.environment
        .aliases
        .insert("bare key".into(), Tier::Test);
    odd.environment
        .aliases
        .insert("quo\"te\\".into(), Tier::Local);
    odd.audit.seal_key_file = Some("C:\\keys\\seal\u{1}.key".into());
    odd.approval.approvers.insert(
        "ana.b-c_1".into(),
        Approver {
            key: crate::approval::ApproverKey::from_secret("ana.b-c_1", [2u8; 32])
                .unwrap()
                .public_key(),
            user: "é😀 \"q\"".into(),
        },
    );
    odd.approval.break_glass_users = vec!["alice".into(), "uid:1001".into(), "é\"q".into()];
    odd.rules[1].deny = Some("tab\t cr\r del\u{7f} \"q\"".into());
    policies.push(odd);
    let mut fleet = policy(EQUIVALENT_TOML);
    fleet.audit.sink = Some("postgresql://prodguard@db.internal/fleet".into());
    fleet.approval.ledger = Some("postgres://ledger@db.internal:5433/fleet".into());
    fleet.fleet.lock = Some("postgresql://locks@db.internal/fleet?sslmode=disable".into());
    fleet.fleet.wait_seconds = 90;
    policies.push(fleet);
    policies.push(policy(ROW_BOUNDS));
    policies.push(policy(&format!(
        "[sql]\nstatement_timeout = \"90s\"\nlock_timeout = \"2s\"\n{ROW_BOUNDS}"
    )));
    for original in policies {
        let text = original.to_toml_string();
        let reparsed = Policy::parse_toml(&text, &original.source);
        assert_eq!(reparsed, Ok(original), "rendered:\n{text}");
    }
}

#[test]
fn to_toml_string_writes_every_setting() {
    let text = Policy::builtin_default().to_toml_string();
    for line in [
        "[environment]\nunknown = \"protected\"\n\n[audit]",
        "[audit]\ndurability = \"fdatasync\"\n",
        "[approval]\nmax_ttl = \"15m\"\nfour_eyes = false\n",
        "[[rule]]\nname = \"default: protected tiers\"\noperations = [\"*\"]\ntiers = [\"production\", \"unknown\"]\nrequire = [\"confirm\", \"audit\"]\nconfirm = { mode = \"either\" }\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

// ---------------------------------------------------------------- fixtures

#[test]
fn workspace_fixtures_parse() {
    let toml = include_str!("../../../../tests/policies/example.toml");
    let json = include_str!("../../../../tests/policies/example.json");
    let from_toml = Policy::parse(toml, "example").expect("example.toml is valid");
    let from_json = Policy::parse(json, "example").expect("example.json is valid");
    assert_eq!(from_toml, from_json);
    assert_eq!(
        Policy::parse_toml(
            include_str!("../../../../tests/policies/default.toml"),
            "<default>"
        ),
        Ok(Policy::builtin_default())
    );
}

#[test]
fn invalid_fixtures_report_the_documented_error() {
    // Each fixture's first line is `# expect: LINE:COLUMN: FRAGMENT`.
    let fixtures = [
        include_str!("../../../../tests/policies/invalid/unknown-key.toml"),
        include_str!("../../../../tests/policies/invalid/bad-duration.toml"),
        include_str!("../../../../tests/policies/invalid/backup-without-command.toml"),
        include_str!("../../../../tests/policies/invalid/backup-command-without-verify.toml"),
        include_str!("../../../../tests/policies/invalid/backup-key-foreign-to-provider.toml"),
        include_str!("../../../../tests/policies/invalid/neither-require-nor-deny.toml"),
        include_str!("../../../../tests/policies/invalid/bad-tier.toml"),
    ];
    for text in fixtures {
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("fixture starts with # expect:");
        let mut parts = expect.splitn(3, ':');
        let line: u32 = parts.next().and_then(|s| s.parse().ok()).expect("line");
        let column: u32 = parts.next().and_then(|s| s.parse().ok()).expect("column");
        let fragment = parts.next().expect("fragment").trim();
        let err = toml_err(text);
        assert_err(&err, line, column, &[fragment]);
    }
}

#[test]
fn backup_provider_names_where_evidence_comes_from() {
    let program = Policy::parse_toml(
        "[[rule]]\noperations = [\"db.migrate\"]\nrequire = [\"backup\"]\nbackup = { provider = \"program\" }\n",
        "p.toml",
    )
    .unwrap();
    assert_eq!(
        program.rules[0].backup.as_ref().unwrap().source(),
        BackupSource::Program
    );
    let inferred = Policy::parse_toml(
        "[[rule]]\noperations = [\"db.migrate\"]\nrequire = [\"backup\"]\nbackup = { command = \"cp {target} {path}\", verify = \"test -s {path}\" }\n",
        "p.toml",
    )
    .unwrap();
    assert_eq!(
        inferred.rules[0].backup.as_ref().unwrap().source(),
        BackupSource::Command
    );
    let round_trip = Policy::parse_toml(&program.to_toml_string(), "p.toml").unwrap();
    assert_eq!(round_trip.rules, program.rules);

    let err = Policy::parse_toml(
        "[[rule]]\noperations = [\"db.migrate\"]\nrequire = [\"backup\"]\nbackup = { provider = \"tape\" }\n",
        "p.toml",
    )
    .unwrap_err();
    assert_eq!((err.line, err.column), (4, 23), "{err}");
    assert!(
        err.message
            .contains("\"command\", \"recent\", \"sqlite\" or \"program\""),
        "{err}"
    );

    let err = Policy::parse_toml(
        "[[rule]]\noperations = [\"db.migrate\"]\nrequire = [\"backup\"]\nbackup = { provider = \"command\" }\n",
        "p.toml",
    )
    .unwrap_err();
    assert!(err.message.contains("does not say how to get one"), "{err}");
}

#[test]
fn rotate_bytes_is_a_positive_byte_count() {
    let p = Policy::parse_toml(
        "[audit]\nrotate_bytes = 1048576\n[[rule]]\noperations = [\"*\"]\nrequire = [\"audit\"]\n",
        "p.toml",
    )
    .unwrap();
    assert_eq!(p.audit.rotate_bytes, Some(1_048_576));
    assert_eq!(
        Policy::parse_toml(&p.to_toml_string(), "p.toml")
            .unwrap()
            .audit,
        p.audit
    );
    let err = Policy::parse_toml(
        "[audit]\nrotate_bytes = \"64M\"\n[[rule]]\noperations = [\"*\"]\nrequire = [\"audit\"]\n",
        "p.toml",
    )
    .unwrap_err();
    assert_eq!((err.line, err.column), (2, 16), "{err}");
}

const BACKUP_RULE: &str = "[[rule]]\noperations = [\"db.migrate\"]\nrequire = [\"backup\"]\n";

#[test]
fn a_backup_command_without_verify_is_a_policy_error() {
    // A copy nobody checked is not evidence: refused when the policy is
    // read, not when the operation is about to run.
    for backup in [
        "backup = { command = \"pg_dump -Fc -f {path}\" }",
        "backup = { provider = \"command\", command = \"pg_dump -Fc -f {path}\", path = \"/b/x\" }",
    ] {
        let column = backup.find("command =").expect("command key") as u32 + 1;
        let err = toml_err(&format!("{BACKUP_RULE}{backup}\n"));
        assert_err(
            &err,
            4,
            column,
            &[
                "`backup.command` in rule #1 (line 1) has no `verify`",
                "add verify = \"…\"",
                "pg_restore --list {path}",
            ],
        );
    }
    let err = json_err(
        "{\"rule\": [{\"operations\": [\"db.migrate\"], \"require\": [\"backup\"],\n  \"backup\": {\"command\": \"dump {path}\"}}]}",
    );
    assert_err(&err, 2, 14, &["has no `verify`", "add verify = \"…\""]);
    // With a verify step it is a complete provider.
    let p = Policy::parse_toml(
        &format!(
            "{BACKUP_RULE}backup = {{ command = \"dump {{path}}\", verify = \"check {{path}}\" }}\n"
        ),
        "p.toml",
    )
    .unwrap();
    assert_eq!(
        p.rules[0].backup,
        Some(BackupSpec::Command {
            command: "dump {path}".into(),
            verify: "check {path}".into(),
            path: None,
            max_age_seconds: None,
        })
    );
}

#[test]
fn a_backup_key_foreign_to_its_provider_is_a_policy_error() {
    for (backup, key, takes) in [
        (
            "backup = { provider = \"sqlite\", command = \"cp {target} {path}\" }",
            "command",
            "takes only `path`",
        ),
        (
            "backup = { provider = \"sqlite\", path = \"/b/x.db\", verify = \"true\" }",
            "verify",
            "takes only `path`",
        ),
        (
            "backup = { provider = \"sqlite\", max_age = \"1h\" }",
            "max_age",
            "takes only `path`",
        ),
        (
            "backup = { provider = \"program\", path = \"/b/x\" }",
            "path",
            "takes only `max_age`",
        ),
        (
            "backup = { provider = \"program\", verify = \"true\" }",
            "verify",
            "takes only `max_age`",
        ),
        (
            "backup = { provider = \"recent\", path = \"/b/x\", max_age = \"1h\", command = \"true\" }",
            "command",
            "takes only `path`, `max_age`, `verify`",
        ),
    ] {
        let column = backup.find(&format!("{key} =")).expect("key") as u32 + 1;
        let err = toml_err(&format!("{BACKUP_RULE}{backup}\n"));
        let provider = backup.split('"').nth(1).expect("provider");
        assert_err(
            &err,
            4,
            column,
            &[
                &format!("`backup.{key}` does not apply to provider = \"{provider}\""),
                takes,
                &format!("remove `{key}`"),
            ],
        );
    }
    // The keys each provider does take parse, and round-trip through `policy show`.
    for backup in [
        "{ provider = \"sqlite\", path = \"/b/{target}.db\" }",
        "{ provider = \"sqlite\" }",
        "{ provider = \"program\", max_age = \"1h\" }",
        "{ path = \"/b/x\", max_age = \"1h\", verify = \"test -s {path}\" }",
        "{ command = \"dump {path}\", verify = \"check {path}\", path = \"/b/{ts}\", max_age = \"2h\" }",
    ] {
        let p = Policy::parse_toml(&format!("{BACKUP_RULE}backup = {backup}\n"), "p.toml")
            .unwrap_or_else(|e| panic!("{backup}: {e}"));
        let again = Policy::parse_toml(&p.to_toml_string(), "p.toml").unwrap();
        assert_eq!(again.rules, p.rules, "{backup}");
    }
}

#[test]
fn break_glass_users_are_account_names_each_listed_once() {
    let toml = format!("[approval]\nbreak_glass_users = [\"alice\", \"bob\"]\n{MINIMAL_RULE}");
    let p = Policy::parse_toml(&toml, "p.toml").unwrap();
    assert_eq!(p.approval.break_glass_users, ["alice", "bob"]);
    let json = r#"{"approval": {"break_glass_users": ["alice"]}, "rule": [{"operations": ["*"], "require": ["audit"]}]}"#;
    let p = Policy::parse_json(json, "p.json").unwrap();
    assert_eq!(p.approval.break_glass_users, ["alice"]);
    // Absent or empty: nobody may.
    assert!(
        Policy::builtin_default()
            .approval
            .break_glass_users
            .is_empty()
    );
    let toml = format!("[approval]\nbreak_glass_users = []\n{MINIMAL_RULE}");
    assert!(
        Policy::parse_toml(&toml, "p.toml").is_ok_and(|p| p.approval.break_glass_users.is_empty())
    );

    let err = toml_err("[approval]\nbreak_glass_users = \"alice\"\n");
    assert_err(
        &err,
        2,
        21,
        &["`break_glass_users` must be an array of OS account names, found a string"],
    );
    let err = toml_err("[approval]\nbreak_glass_users = [\"alice\", 7]\n");
    assert_err(
        &err,
        2,
        31,
        &["`break_glass_users` must be an array of strings"],
    );
    let err = toml_err("[approval]\nbreak_glass_users = [\"alice\", \"al ice\"]\n");
    assert_err(
        &err,
        2,
        31,
        &["\"al ice\" in `break_glass_users` is not an OS account name"],
    );
    let err = toml_err("[approval]\nbreak_glass_users = [\"\"]\n");
    assert_err(&err, 2, 22, &["is not an OS account name"]);
    let err = toml_err("[approval]\nbreak_glass_users = [\"alice\", \"alice\"]\n");
    assert_err(
        &err,
        2,
        31,
        &["\"alice\" is listed twice in `break_glass_users`"],
    );
    let err = json_err("{\"approval\": {\"break_glass_users\": [1]}}");
    assert_err(
        &err,
        1,
        37,
        &["`break_glass_users` must be an array of strings"],
    );
    let err = toml_err("[approval]\nbreak_glass_user = []\n");
    assert_err(&err, 2, 1, &["did you mean `break_glass_users`?"]);
}

// ---------------------------------------------------------------- approvers

const RULE: &str = "[[rule]]\noperations = [\"*\"]\nrequire = [\"audit\"]\n";

#[test]
fn approvers_are_validated_with_positions_and_fixes() {
    let key = "ed25519:iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=";
    let with = |approvers: &str| format!("[approval]\napprovers = {approvers}\n{RULE}");
    let ok = policy(&with(&format!(
        "{{ alice = {{ key = \"{key}\", user = \"alice\" }} }}"
    )));
    assert_eq!(ok.approval.approvers["alice"].user, "alice");
    for (approvers, column, needle) in [
        // Not a key: the wrong prefix, not base64, the wrong length.
        (
            "{ alice = { key = \"ssh-ed25519 AAAA\", user = \"alice\" } }",
            31,
            "does not start with `ed25519:`",
        ),
        (
            "{ alice = { key = \"ed25519:!!!\", user = \"alice\" } }",
            31,
            "not base64",
        ),
        (
            "{ alice = { key = \"ed25519:AAAA\", user = \"alice\" } }",
            31,
            "3 bytes, not the 32",
        ),
        // No user, an empty one, an unknown field, a bad name.
        (
            &format!("{{ alice = {{ key = \"{key}\" }} }}") as &str,
            23,
            "has no `user`",
        ),
        (
            &format!("{{ alice = {{ key = \"{key}\", user = \"\" }} }}") as &str,
            0,
            "must not be empty",
        ),
        (
            &format!("{{ alice = {{ key = \"{key}\", user = \"a\", uid = 0 }} }}") as &str,
            0,
            "unknown key `uid`",
        ),
        (
            &format!("{{ \"-x\" = {{ key = \"{key}\", user = \"a\" }} }}") as &str,
            15,
            "invalid approver name",
        ),
    ] {
        let err = toml_err(&with(approvers));
        assert_eq!(err.line, 2, "{approvers}: {err}");
        if column > 0 {
            assert_eq!(err.column, column, "{approvers}: {err}");
        }
        assert!(err.message.contains(needle), "{approvers}: {err}");
    }
    let err = toml_err(&with(
        "{ alice = { key = \"ed25519:AAAA\", user = \"alice\" } }",
    ));
    assert!(
        err.message.contains("prodguard keygen --approver alice"),
        "{err}"
    );
}

#[test]
fn a_shared_approval_key_is_a_policy_error_that_says_what_replaced_it() {
    let err = toml_err(&format!(
        "[approval]\nkey_file = \"/etc/prodguard/approval.key\"\n{RULE}"
    ));
    assert_eq!((err.line, err.column), (2, 1), "{err}");
    for needle in [
        "HMAC",
        "approvers",
        "prodguard keygen --approver NAME --out FILE",
    ] {
        assert!(err.message.contains(needle), "{needle}: {err}");
    }
}

// ---------------------------------------------------------------- row bounds

/// Bulk deletes bounded by rows, and confirmed only above a threshold.
const ROW_BOUNDS: &str = r#"
[[rule]]
name = "bulk deletes"
operations = ["db.delete.*", "db.update.*"]
tiers = ["production"]
require = ["confirm", "audit"]
confirm_above_rows = 100
max_rows = 10000

[[rule]]
name = "small deletes"
operations = ["db.delete.where"]
tiers = ["production"]
require = ["confirm"]
confirm_above_rows = 10
max_rows = 5000

[[rule]]
name = "updates need a person"
operations = ["db.update.all"]
tiers = ["production"]
require = ["confirm"]
"#;

#[test]
fn row_bounds_take_the_smallest_and_rows_matter_only_if_every_rule_says_so() {
    let p = policy(ROW_BOUNDS);
    assert_eq!(p.rules()[0].max_rows(), Some(10_000));
    assert_eq!(p.rules()[0].confirm_above_rows(), Some(100));
    let e = p.evaluate(Tier::Production, "db.delete.where");
    assert_eq!(e.max_rows, Some((5000, "small deletes".into())));
    assert_eq!(e.confirm_above_rows, Some(10), "the smallest threshold");
    let e = p.evaluate(Tier::Production, "db.delete.all");
    assert_eq!(e.max_rows, Some((10_000, "bulk deletes".into())));
    assert_eq!(e.confirm_above_rows, Some(100));
    // A rule asking for a confirmation whatever the rows wins.
    let e = p.evaluate(Tier::Production, "db.update.all");
    assert_eq!(e.confirm_above_rows, None);
    assert!(e.requires(Requirement::Confirm));
    let e = p.evaluate(Tier::Development, "db.delete.all");
    assert_eq!((e.max_rows, e.confirm_above_rows), (None, None));
    // The same in JSON.
    let json = Policy::parse_json(
        r#"{"rule": [{"operations": ["db.delete.*"], "require": ["confirm"], "max_rows": 0, "confirm_above_rows": 0}]}"#,
        "p.json",
    )
    .unwrap();
    assert_eq!(json.rules()[0].max_rows(), Some(0));
    assert_eq!(json.rules()[0].confirm_above_rows(), Some(0));
}

#[test]
fn row_bounds_that_cannot_work_are_refused() {
    let err = toml_err(
        "[[rule]]\noperations = [\"db.delete.*\"]\nrequire = [\"audit\"]\nconfirm_above_rows = 5\n",
    );
    assert_err(
        &err,
        4,
        1,
        &["`confirm_above_rows` has no effect", "add \"confirm\""],
    );
    let err = toml_err("[[rule]]\noperations = [\"db.drop.*\"]\ndeny = \"no\"\nmax_rows = 5\n");
    assert_err(
        &err,
        4,
        1,
        &["`max_rows` has no effect", "denies the operation"],
    );
    let err = toml_err(
        "[[rule]]\noperations = [\"db.delete.*\"]\nrequire = [\"audit\"]\nmax_rows = -1\n",
    );
    assert_err(
        &err,
        4,
        12,
        &["`max_rows` must be a number of rows, 0 or more, found -1"],
    );
    let err = toml_err(
        "[[rule]]\noperations = [\"db.delete.*\"]\nrequire = [\"audit\"]\nmax_rows = \"10\"\n",
    );
    assert_err(
        &err,
        4,
        12,
        &["`max_rows` must be a number of rows (0 or more)"],
    );
    let err = json_err(
        r#"{"rule": [{"operations": ["db.delete.*"], "require": ["audit"], "max_rows": 1.5}]}"#,
    );
    assert!(
        err.to_string()
            .contains("`max_rows` must be a number of rows"),
        "{err}"
    );
}

#[test]
fn sql_timeouts_have_defaults_and_take_durations() {
    assert_eq!(
        Policy::builtin_default().sql().statement_timeout_seconds,
        900
    );
    assert_eq!(Policy::builtin_default().sql().lock_timeout_seconds, 10);
    let p = policy(&format!("[sql]\nlock_timeout = \"3s\"\n{ROW_BOUNDS}"));
    assert_eq!(
        (
            p.sql().statement_timeout_seconds,
            p.sql().lock_timeout_seconds
        ),
        (900, 3)
    );
    let err = toml_err(&format!("[sql]\nlock_timout = \"3s\"\n{ROW_BOUNDS}"));
    assert!(err.to_string().contains("lock_timeout"), "{err}");
    let err = toml_err(&format!("[sql]\nlock_timeout = 3\n{ROW_BOUNDS}"));
    assert!(err.to_string().contains("lock_timeout"), "{err}");
    let err =
        toml_err("lock_timeout = \"3s\"\n[[rule]]\noperations = [\"*\"]\nrequire = [\"audit\"]\n");
    assert!(err.to_string().contains("belongs in [sql]"), "{err}");
}

#[test]
fn statements_run_outside_a_transaction_only_where_every_rule_with_requirements_says_so() {
    let p = policy(
        "[[rule]]\nname = \"indexes\"\noperations = [\"db.create\"]\nrequire = [\"audit\"]\n\
         outside_transaction = true\n\
         [[rule]]\nname = \"maintenance\"\noperations = [\"db.maintenance\"]\nrequire = [\"confirm\"]\n\
         [[rule]]\nname = \"lenient\"\noperations = [\"db.maintenance\"]\nrequire = [\"audit\"]\n\
         outside_transaction = true\n",
    );
    assert!(p.rules()[0].outside_transaction());
    assert!(
        p.evaluate(Tier::Production, "db.create")
            .outside_transaction
    );
    // `maintenance` does not say so: another rule (as a layered policy
    // could add) does not lift it.
    assert!(
        !p.evaluate(Tier::Production, "db.maintenance")
            .outside_transaction
    );
    assert!(
        !p.evaluate(Tier::Production, "db.delete.all")
            .outside_transaction
    );
    // Rendered and read back the same.
    let again = policy(&p.to_toml_string());
    assert!(
        again
            .evaluate(Tier::Production, "db.create")
            .outside_transaction
    );
    let err = toml_err(
        "[[rule]]\noperations = [\"db.create\"]\ndeny = \"no\"\noutside_transaction = true\n",
    );
    assert_err(&err, 4, 1, &["`outside_transaction` has no effect"]);
}

#[test]
fn targets_name_the_tier_of_what_they_match_and_the_most_sensitive_wins() {
    let p = policy(
        "[targets]\n\"postgresql://*.prod.internal/*\" = \"production\"\n\"kube:*\" = \"staging\"\n\
         \"kube:prod-*\" = \"production\"\n\"sqlite:/srv/app/*.db\" = \"production\"\n\
         [[rule]]\nname = \"agents\"\noperations = [\"infra.*\"]\nrequire = [\"confirm\"]\nagent = \"deny\"\n",
    );
    assert_eq!(p.targets().len(), 4);
    let tier = |t: &str| p.target_tier(t).map(|t| t.tier);
    assert_eq!(
        tier("postgresql://app@db.prod.internal/shop"),
        Some(Tier::Production)
    );
    assert_eq!(
        tier("kube:prod-eu"),
        Some(Tier::Production),
        "the most sensitive match"
    );
    assert_eq!(tier("kube:dev"), Some(Tier::Staging));
    assert_eq!(tier("sqlite:/srv/app/shop.db"), Some(Tier::Production));
    assert_eq!(tier("sqlite:/home/dev/shop.db"), None);
    assert!(p.rules()[0].agent_deny());
    assert!(p.evaluate(Tier::Production, "infra.destroy").agent_deny);
    assert!(!p.evaluate(Tier::Production, "db.drop.table").agent_deny);
    // Rendered and read back the same.
    assert_eq!(
        policy(&p.to_toml_string()),
        Policy {
            source: p.source.clone(),
            ..p.clone()
        }
    );
    for (text, line, column, needle) in [
        (
            "[targets]\n\"a b\" = \"production\"\n",
            2,
            1,
            "invalid target pattern",
        ),
        (
            "[targets]\n\"kube:*\" = \"prodction\"\n",
            2,
            12,
            "did you mean `production`",
        ),
        (
            "[[rule]]\noperations = [\"*\"]\nrequire = [\"audit\"]\nagent = \"allow\"\n",
            4,
            9,
            "`agent` must be \"ask\"",
        ),
    ] {
        let err = toml_err(&format!(
            "{text}{}",
            if text.contains("[[rule]]") {
                ""
            } else {
                MINIMAL_RULE
            }
        ));
        assert_err(&err, line, column, &[needle]);
    }
}
