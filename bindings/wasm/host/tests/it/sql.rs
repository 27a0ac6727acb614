//! SQL scripts through `prodguard_evaluate` (`"sql"` in the request): the
//! shared corpus (tests/sql, see its README) classified in wasmtime as the
//! corpus says, and answered exactly as the Rust core answers.

use prodguard_wasmtime::{Dialect, EvaluateRequest, Export, Facts, SqlKind};
use serde_json::{Value, json};

use crate::common::{instance, json as parse, workspace_root};

#[test]
fn the_sql_corpus_classifies_in_wasm_as_it_says_and_as_the_core_does() {
    let path = workspace_root().join("tests/sql/corpus.json");
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(cases.len() >= 350, "{}", cases.len());
    let mut instance = instance();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let request = json!({
            "facts": {"explicit": "production"},
            "sql": {"script": case["sql"], "dialect": case["dialect"]},
            "operation": {"target": "shop"},
        });
        let text = request.to_string();
        let (status, answer) = instance.call_json(Export::Evaluate, &text).unwrap();
        let core = prodguard_core::json_api::evaluate_json(&text);
        let name = format!("case {i} ({}) {}", case["dialect"], case["sql"]);
        let ok = parse(&answer)["ok"].take();
        if status != 0 || core.status != 0 || ok != parse(&core.body) {
            failures.push(format!(
                "{name}: wasm {status} {answer}\n      core {} {}",
                core.status, core.body
            ));
            continue;
        }
        let answer = ok;
        let sql = &answer["sql"];
        let field = |name: &str| -> Value {
            sql["statements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s[name].clone())
                .collect()
        };
        let mut compare = |what: &str, got: Value, expected: &Value| {
            if &got != expected {
                failures.push(format!("{name}: {what} {got}, the corpus says {expected}"));
            }
        };
        compare("kinds", field("kind"), &case["kinds"]);
        compare("operation", sql["operation"].clone(), &case["operation"]);
        for optional in ["tables", "cascades"] {
            if let Some(expected) = case.get(optional) {
                compare(optional, field(optional), expected);
            }
        }
        // The decision is the script's operation's.
        compare(
            "decision's reason",
            Value::from(
                answer["decision"]["reasons"][0]
                    .as_str()
                    .unwrap()
                    .starts_with(case["operation"].as_str().unwrap()),
            ),
            &Value::from(true),
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed in wasmtime:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_typed_host_reads_the_script_s_classification_and_decision() {
    let mut instance = instance();
    let facts = Facts {
        explicit: Some("production".into()),
        ..Facts::default()
    };
    let request = EvaluateRequest::sql(
        "BEGIN; DROP TABLE carts CASCADE; COMMIT;",
        Dialect::Postgres,
    )
    .target("shop")
    .facts(facts);
    let evaluation = instance.evaluate(&request).unwrap();
    let sql = evaluation
        .sql
        .expect("the answer carries the classification");
    assert_eq!(
        sql.operation,
        SqlKind::Drop(prodguard_core::sql::DropObject::Table)
    );
    assert!(sql.statements[1].cascades);
    assert_eq!(sql.statements[1].tables, ["carts"]);
    assert_eq!(sql.bounds.len(), 3);
    assert_eq!(evaluation.decision.exit_code, 121);
    // A request that names another operation than the script's is refused.
    let (status, answer) = instance
        .call_json(
            Export::Evaluate,
            json!({"sql": {"script": "DELETE FROM t", "dialect": "sqlite"}, "operation": {"kind": "db.read"}}).to_string(),
        )
        .unwrap();
    assert_eq!(status, 125, "{answer}");
    assert!(
        answer.contains("the script's operation is `db.delete.all`"),
        "{answer}"
    );
}

#[test]
fn a_hosts_dry_run_rows_reach_the_session_through_the_module() {
    let mut instance = instance();
    let policy = "[[rule]]\nname = \"bulk\"\noperations = [\"db.delete.*\"]\n\
                  require = [\"confirm\", \"audit\"]\nmax_rows = 100\nconfirm_above_rows = 10\n";
    let request = |rows: Value| {
        json!({
            "facts": {"explicit": "production"},
            "policy": policy,
            "sql": {"script": "DELETE FROM carts WHERE stale", "dialect": "sqlite"},
            "operation": {"target": "shop"},
            "evidence": {"actor": {"user": "ana", "kind": "human"}, "attempt_id": "a-1",
                         "dry_run_rows": rows},
            "now": "2026-12-07T10:00:00Z",
        })
        .to_string()
    };
    let mut session = |rows: Value| {
        let (status, answer) = instance.call_json(Export::Evaluate, request(rows)).unwrap();
        assert_eq!(status, 0, "{answer}");
        parse(&answer)["ok"]["session"].clone()
    };
    // Over max_rows: refused with the rows; within confirm_above_rows: it proceeds
    // with nobody asked; between: asked, with the rows shown.
    let over = session(json!([101]));
    assert_eq!(
        (over["exit_code"].clone(), over["denial"]["rows"].clone()),
        (json!(120), json!([101]))
    );
    assert_eq!(session(json!([10]))["step"], "proceed");
    let asked = session(json!([50]));
    assert_eq!(asked["exit_code"], 121);
    assert_eq!(
        asked["challenge"]["consequences"],
        json!(["statement 0 (line 1, db.delete.where on carts): 50 rows"])
    );
}

/// How large a script the default limits (64 MiB of memory, 1.5 billion
/// units of fuel) classify, and what a larger one needs: a host raises
/// `Limits::with_max_memory_bytes` (ABI.md says how much).
#[test]
fn a_script_of_256_kib_fits_the_default_limits_and_a_larger_one_more_room() {
    let statement = "UPDATE orders SET total = total + 1 WHERE id = 42 AND note <> 'a;b';\n";
    let count = (256 << 10) / statement.len();
    let mut instance = instance();
    let request = EvaluateRequest::sql(statement.repeat(count), Dialect::Postgres).target("shop");
    let evaluation = instance.evaluate(&request).unwrap();
    let sql = evaluation.sql.unwrap();
    assert_eq!(sql.statements.len(), count);
    assert_eq!(sql.operation, SqlKind::UpdateWhere);
    let (fuel, memory) = (instance.fuel_used(), instance.memory_bytes());
    eprintln!(
        "256 KiB of SQL: {fuel} fuel, {} MiB of memory",
        memory >> 20
    );
    assert!(
        fuel < prodguard_wasmtime::DEFAULT_FUEL_PER_CALL / 2,
        "{fuel}"
    );
    assert!(memory <= 32 << 20, "{memory}");
    // Twice as much, with more room (about twice the fuel and memory).
    let big = EvaluateRequest::sql(statement.repeat(count * 2), Dialect::Postgres).target("shop");
    let mut roomy = crate::common::module()
        .clone()
        .with_limits(
            prodguard_wasmtime::Limits::default()
                .with_max_memory_bytes(128 << 20)
                .with_fuel_per_call(fuel * 4),
        )
        .instantiate()
        .unwrap();
    let evaluation = roomy.evaluate(&big).unwrap();
    assert_eq!(evaluation.sql.unwrap().statements.len(), count * 2);
    assert!(
        roomy.fuel_used() < fuel * 3,
        "grows with the script, not faster"
    );
    eprintln!(
        "512 KiB of SQL: {} fuel, {} MiB of memory",
        roomy.fuel_used(),
        roomy.memory_bytes() >> 20
    );
}
