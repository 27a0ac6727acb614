#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// A test reads its corpus from disk; the library stays sans-IO.
#![allow(clippy::disallowed_methods)]
//! Runs every case of `tests/sql/corpus.json` (see `tests/sql/README.md`)
//! through `prodguard_core::sql::classify` and reports each failing case by
//! its position, dialect and SQL.

use prodguard_core::sql::{Dialect, classify};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    dialect: Dialect,
    sql: String,
    kinds: Vec<String>,
    operation: String,
    #[serde(default)]
    tables: Option<Vec<Vec<String>>>,
    #[serde(default)]
    cascades: Option<Vec<bool>>,
    #[serde(default)]
    #[allow(dead_code, reason = "for people reading the corpus")]
    note: Option<String>,
}

fn corpus() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sql/corpus.json");
    let text = std::fs::read_to_string(path).expect("tests/sql/corpus.json");
    serde_json::from_str(&text).expect("the corpus is a JSON array of cases")
}

/// What went wrong with one case, or nothing.
fn check(case: &Case) -> Vec<String> {
    let script = classify(&case.sql, case.dialect);
    let mut problems = Vec::new();
    let kinds: Vec<&str> = script.statements.iter().map(|s| s.kind.as_str()).collect();
    if kinds != case.kinds {
        let why: Vec<String> = script
            .statements
            .iter()
            .filter_map(|s| s.problem.clone())
            .collect();
        problems.push(format!(
            "kinds {kinds:?}, expected {:?} {why:?}",
            case.kinds
        ));
    }
    if script.operation.as_str() != case.operation {
        problems.push(format!(
            "operation {}, expected {}",
            script.operation, case.operation
        ));
    }
    if script.destructive != script.operation.is_destructive() {
        problems.push("destructive disagrees with the operation".into());
    }
    if let Some(tables) = &case.tables {
        let got: Vec<&Vec<String>> = script.statements.iter().map(|s| &s.tables).collect();
        let want: Vec<&Vec<String>> = tables.iter().collect();
        if got != want {
            problems.push(format!("tables {got:?}, expected {want:?}"));
        }
    }
    if let Some(cascades) = &case.cascades {
        let got: Vec<bool> = script.statements.iter().map(|s| s.cascades).collect();
        if &got != cascades {
            problems.push(format!("cascades {got:?}, expected {cascades:?}"));
        }
    }
    for (i, s) in script.statements.iter().enumerate() {
        if s.index != i || s.destructive != s.kind.is_destructive() {
            problems.push(format!(
                "statement {i} has index {} / destructive {}",
                s.index, s.destructive
            ));
        }
        if case.sql.get(s.start..s.end).is_none() || s.start > s.end {
            problems.push(format!(
                "statement {i} has a bad byte range {}..{}",
                s.start, s.end
            ));
        }
    }
    problems
}

#[test]
fn every_corpus_case_is_classified_as_expected() {
    let cases = corpus();
    assert!(cases.len() >= 200, "the corpus has {} cases", cases.len());
    for dialect in Dialect::ALL {
        assert!(
            cases.iter().filter(|c| c.dialect == dialect).count() >= 20,
            "too few {dialect} cases"
        );
    }
    let failures: Vec<String> = cases
        .iter()
        .enumerate()
        .filter_map(|(i, case)| {
            let problems = check(case);
            (!problems.is_empty()).then(|| {
                format!(
                    "case {i} ({}, {:?}):\n    {}",
                    case.dialect,
                    case.sql.chars().take(120).collect::<String>(),
                    problems.join("\n    ")
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_case_serialises_and_reads_back() {
    for case in corpus() {
        let script = classify(&case.sql, case.dialect);
        let json = serde_json::to_string(&script).unwrap();
        let back: prodguard_core::sql::Script = serde_json::from_str(&json).unwrap();
        assert_eq!(back, script, "{json}");
    }
}
