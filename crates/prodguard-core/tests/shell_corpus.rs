#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// A test reads its corpus from disk; the library stays sans-IO.
#![allow(clippy::disallowed_methods)]
//! Runs every case of `tests/hook/commands.json` (see `tests/hook/README.md`)
//! through `prodguard_core::shell::analyze` and reports each failing case
//! by its name.

use std::collections::{BTreeMap, BTreeSet};

use prodguard_core::shell::{Analysis, Context, Recognized, SqlSource, analyze};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    command: String,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Text repeated in front of `command` (inputs too long to write out).
    #[serde(default)]
    prefix: Option<Repeat>,
    expect: Vec<Expect>,
    #[serde(default)]
    problem: bool,
    #[serde(default)]
    #[allow(dead_code, reason = "for people reading the corpus")]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repeat {
    text: String,
    times: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    kind: String,
    targets: Vec<String>,
    /// `inline`, `file` or `unseen`: where a database client's SQL is.
    #[serde(default)]
    sql: Option<String>,
    /// For `"sql": "file"`: the file.
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    program: Option<String>,
}

fn corpus() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/hook/commands.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/hook/commands.json");
    serde_json::from_str(&text).expect("the corpus is a JSON array of cases")
}

fn command_of(case: &Case) -> String {
    match &case.prefix {
        Some(repeat) => repeat.text.repeat(repeat.times) + &case.command,
        None => case.command.clone(),
    }
}

fn source_name(sql: &SqlSource) -> &'static str {
    match sql {
        SqlSource::Inline { .. } => "inline",
        SqlSource::File { .. } => "file",
        SqlSource::Unseen { .. } => "unseen",
        _ => "other",
    }
}

/// What is wrong with one recognised command.
fn check_one(got: &Recognized, want: &Expect) -> Vec<String> {
    let mut problems = Vec::new();
    if got.kind != want.kind || got.targets != want.targets {
        problems.push(format!(
            "{} {:?}, expected {} {:?}",
            got.kind, got.targets, want.kind, want.targets
        ));
    }
    if let Some(sql) = &want.sql {
        let source = got.sql.as_ref().map_or("none", source_name);
        if source != sql {
            problems.push(format!("sql {source}, expected {sql}"));
        }
    }
    if let Some(path) = &want.path {
        match &got.sql {
            Some(SqlSource::File { path: got, .. }) if got == path => {}
            other => problems.push(format!("sql {other:?}, expected the file {path}")),
        }
    }
    if let Some(program) = &want.program
        && &got.program != program
    {
        problems.push(format!("program {}, expected {program}", got.program));
    }
    // SQL the analysis could not see is unknown until it is read.
    if let Some(SqlSource::File { .. } | SqlSource::Unseen { .. }) = &got.sql
        && got.kind != "db.unknown"
    {
        problems.push(format!("{} with SQL not seen", got.kind));
    }
    if got.part.chars().count() > 200 || got.part != got.part.trim() {
        problems.push(format!("part {:?} is not trimmed and short", got.part));
    }
    problems
}

/// What went wrong with one case, or nothing.
fn check(case: &Case, analysis: &Analysis) -> Vec<String> {
    let mut problems = Vec::new();
    if analysis.problem.is_some() != case.problem {
        problems.push(format!(
            "problem {:?}, expected {}",
            analysis.problem,
            if case.problem { "one" } else { "none" }
        ));
    }
    if analysis.commands.len() != case.expect.len() {
        let got: Vec<(&str, &[String])> = analysis
            .commands
            .iter()
            .map(|c| (c.kind.as_str(), c.targets.as_slice()))
            .collect();
        problems.push(format!(
            "{} commands {got:?}, expected {}",
            analysis.commands.len(),
            case.expect.len()
        ));
        return problems;
    }
    for (i, (got, want)) in analysis.commands.iter().zip(&case.expect).enumerate() {
        for problem in check_one(got, want) {
            problems.push(format!("command {i} (`{}`): {problem}", got.part));
        }
    }
    problems
}

#[test]
fn every_corpus_case_is_analysed_as_expected() {
    let cases = corpus();
    assert!(cases.len() >= 170, "the corpus has {} cases", cases.len());
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        assert!(
            names.insert(&case.name),
            "two cases are named {}",
            case.name
        );
        let context = Context::new(case.cwd.as_deref(), &case.env);
        let analysis = analyze(&command_of(case), &context);
        let problems = check(case, &analysis);
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {:?}\n    {}",
                case.name,
                case.command.chars().take(160).collect::<String>(),
                problems.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// No password from the command reaches a target or a part.
#[test]
fn no_password_is_shown() {
    for case in corpus() {
        let context = Context::new(case.cwd.as_deref(), &case.env);
        let analysis = analyze(&command_of(&case), &context);
        for command in &analysis.commands {
            for shown in command.targets.iter().chain([&command.part]) {
                for secret in ["s3cret", "hunter2", "pw@", ":pw", "secret@"] {
                    assert!(
                        !shown.contains(secret),
                        "{}: {shown:?} shows a password",
                        case.name
                    );
                }
            }
        }
    }
}
