//! `prodguard parity` on file logs written by real guarded runs of the CLI
//! in staging and in production. (A PostgreSQL trail is in fleet.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Sandbox, code, envelope, stderr, stdout};

/// A policy under which production needs only the audit log (no terminal
/// to confirm on in these tests).
const POLICY: &str =
    "[[rule]]\noperations = [\"*\"]\ntiers = [\"production\"]\nrequire = [\"audit\"]\n";

struct Trails {
    sandbox: Sandbox,
    policy: String,
}

impl Trails {
    fn new(name: &str) -> Self {
        let sandbox = Sandbox::new(name);
        let policy = sandbox.write("prodguard.toml", POLICY.as_bytes());
        Trails { sandbox, policy }
    }

    fn log(&self, env: &str) -> String {
        self.sandbox
            .path(&format!("{env}.jsonl"))
            .to_string_lossy()
            .into_owned()
    }

    /// `prodguard exec --op OP [--fingerprint FP] -- CMD` as a host of
    /// `env` does, recording in that environment's log.
    fn exec(&self, env: &str, op: &str, fingerprint: Option<&str>, command: &str) -> i32 {
        let log = self.log(env);
        let mut args = vec!["exec", "--op", op, "--target", "orders.db"];
        if let Some(fingerprint) = fingerprint {
            args.extend(["--fingerprint", fingerprint]);
        }
        args.extend(["--", command]);
        let out = self.sandbox.run(
            &[
                ("APP_ENV", env),
                ("PRODGUARD_POLICY", &self.policy),
                ("PRODGUARD_AUDIT_LOG", &log),
            ],
            &args,
        );
        let status = code(&out);
        assert!(status == 0 || status == 1, "{}", stderr(&out));
        status
    }

    fn parity(&self, extra: &[&str]) -> std::process::Output {
        let (from, to) = (self.log("staging"), self.log("production"));
        let mut args = vec!["parity", "--from", &from, "--to", &to];
        args.extend_from_slice(extra);
        self.sandbox.run(&[], &args)
    }
}

/// Staging ran A and B and failed C; production ran A, C, D, and a run
/// without a fingerprint.
fn staged_and_promoted(name: &str) -> Trails {
    let trails = Trails::new(name);
    assert_eq!(
        trails.exec("staging", "db.migrate", Some("aaa111"), "true"),
        0
    );
    assert_eq!(
        trails.exec("staging", "db.migrate", Some("bbb222"), "true"),
        0
    );
    assert_eq!(
        trails.exec("staging", "db.migrate", Some("ccc333"), "false"),
        1
    );
    assert_eq!(
        trails.exec("production", "db.migrate", Some("aaa111"), "true"),
        0
    );
    assert_eq!(
        trails.exec("production", "db.migrate", Some("ccc333"), "true"),
        0
    );
    assert_eq!(
        trails.exec("production", "db.migrate", Some("ddd444"), "true"),
        0
    );
    assert_eq!(trails.exec("production", "app.restart", None, "true"), 0);
    trails
}

#[test]
fn the_report_lists_what_each_trail_never_succeeded_with_newest_first() {
    let trails = staged_and_promoted("report");
    let out = trails.parity(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let (to_only, from_only) = text
        .split_once("In FROM, never succeeded in TO: 1")
        .unwrap_or_else(|| panic!("{text}"));
    let (head, to_only) = to_only
        .split_once("In TO, never succeeded in FROM: 2")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(head.contains("staging.jsonl: intact, 6 records"), "{text}");
    assert!(
        head.contains("production.jsonl: intact, 8 records"),
        "{text}"
    );
    // Newest first: D ran after C.
    let d = to_only.find("db.migrate  ddd444 on orders.db in production  (1 success)");
    let c = to_only.find("db.migrate  ccc333 on orders.db in production  (1 success)");
    assert!(d.unwrap() < c.unwrap(), "{text}");
    // C was tried in staging: it failed there.
    let after_c = &to_only[c.unwrap()..];
    assert!(after_c.contains("in FROM: failed (exit 1) at "), "{text}");
    assert!(after_c.contains(" in staging"), "{text}");
    assert!(to_only.contains("proof: log "), "{text}");
    assert!(
        !to_only.contains("aaa111") && !to_only.contains("bbb222"),
        "{text}"
    );
    assert!(
        from_only.contains("db.migrate  bbb222 on orders.db in staging"),
        "{text}"
    );
    assert!(!from_only.contains("aaa111"), "{text}");
    assert!(
        from_only.contains(
            "Succeeded in both: 1 (operation, fingerprint) pair. Not compared, \
             without a fingerprint: 0 successes in FROM, 1 in TO."
        ),
        "{text}"
    );
    // The other way round, the sections swap.
    let (from, to) = (trails.log("production"), trails.log("staging"));
    let swapped = trails
        .sandbox
        .run(&[], &["parity", "--from", &from, "--to", &to]);
    let swapped = stdout(&swapped);
    assert!(
        swapped.contains("In TO, never succeeded in FROM: 1"),
        "{swapped}"
    );
    assert!(
        swapped.contains("In FROM, never succeeded in TO: 2"),
        "{swapped}"
    );
}

#[test]
fn json_answers_in_the_envelope_with_the_records_that_prove_each_entry() {
    let trails = staged_and_promoted("json");
    let out = trails.parity(&["--json"]);
    let value = envelope(&out);
    let ok = &value["ok"];
    assert_eq!(ok["from"]["trail"], trails.log("staging"));
    assert_eq!(ok["to"]["trail"], trails.log("production"));
    assert_eq!(ok["from"]["records"], 6);
    assert_eq!(ok["to"]["head_seq"], 8);
    assert_eq!(ok["in_both"], 1);
    assert_eq!(ok["unfingerprinted_to"], 1);
    let to: Vec<&str> = ok["only_in_to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["ddd444", "ccc333"]);
    let c = &ok["only_in_to"][1];
    assert_eq!(c["operation"], "db.migrate");
    assert_eq!(c["successes"], 1);
    assert_eq!(c["last"]["op"]["env"], "production");
    assert_eq!(c["last"]["outcome"]["status"], "ok");
    assert_eq!(c["other_side"]["outcome"]["status"], "failed");
    assert_eq!(c["other_side"]["op"]["env"], "staging");
    // The citation is the production log's outcome record, as written.
    let seq = c["last"]["outcome"]["record"]["seq"].as_u64().unwrap();
    let records: Vec<serde_json::Value> = std::fs::read_to_string(trails.log("production"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let cited = &records[seq as usize - 1];
    assert_eq!(cited["kind"], "outcome");
    assert_eq!(cited["hash"], c["last"]["outcome"]["record"]["hash"]);
    assert_eq!(cited["log_id"], c["last"]["outcome"]["record"]["log_id"]);
    assert_eq!(cited["op"]["fingerprint"], "ccc333");
    let intent = &records[c["last"]["intent"]["seq"].as_u64().unwrap() as usize - 1];
    assert_eq!(intent["kind"], "intent");
    assert_eq!(intent["attempt_id"], cited["attempt_id"]);
    assert_eq!(intent["hash"], c["last"]["intent"]["hash"]);
    let from: Vec<&str> = ok["only_in_from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(from, ["bbb222"]);
}

#[test]
fn a_tampered_trail_is_no_evidence_and_refuses_with_123() {
    let trails = staged_and_promoted("tampered");
    // A failed staging run rewritten as a success.
    let log = trails.log("staging");
    let text = std::fs::read_to_string(&log).unwrap();
    let forged = text.replacen("\"status\":\"failed\"", "\"status\":\"ok\"", 1);
    assert_ne!(forged, text);
    std::fs::write(&log, forged).unwrap();
    let out = trails.parity(&[]);
    assert_eq!(code(&out), 123, "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "nothing of the report is shown");
    let message = stderr(&out);
    assert!(
        message.contains(&format!(
            "the audit trail {log} does not verify (tampered at {log} line 6"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "run `prodguard audit verify --log {log}` to see why"
        )),
        "{message}"
    );
    let out = trails.parity(&["--json"]);
    let value = envelope(&out);
    assert_eq!(value["error"]["code"], 123);
    // Nor is one whose last record was cut short (verify's exit 2).
    std::fs::write(&log, format!("{text}{{\"v\":1,\"seq\":9,")).unwrap();
    let out = trails.parity(&[]);
    assert_eq!(code(&out), 123, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not verify (an incomplete final record of 15 bytes)"),
        "{}",
        stderr(&out)
    );
    // A trail that is not there is no evidence either.
    let missing = trails.sandbox.path("nowhere.jsonl");
    let out = trails.sandbox.run(
        &[],
        &[
            "parity",
            "--from",
            missing.to_str().unwrap(),
            "--to",
            &trails.log("production"),
        ],
    );
    assert_eq!(code(&out), 123, "{}", stderr(&out));
}

#[test]
fn a_rotated_trail_is_read_whole() {
    let trails = staged_and_promoted("rotated");
    // Staging's log as rotation leaves it: the first four records in
    // staging.jsonl.1, the rest in staging.jsonl.
    let log = trails.log("staging");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    std::fs::write(format!("{log}.1"), lines[..4].concat()).unwrap();
    std::fs::write(&log, lines[4..].concat()).unwrap();
    let verify = trails.sandbox.run(&[], &["audit", "verify", "--log", &log]);
    assert_eq!(code(&verify), 0, "{}", stdout(&verify));
    let value = envelope(&trails.parity(&["--json"]));
    assert_eq!(value["ok"]["from"]["records"], 6);
    assert_eq!(value["ok"]["only_in_from"][0]["fingerprint"], "bbb222");
    assert_eq!(value["ok"]["only_in_to"].as_array().unwrap().len(), 2);
}

#[test]
fn record_text_reaches_the_terminal_escaped() {
    let trails = Trails::new("escape");
    assert_eq!(
        trails.exec("staging", "db.migrate", Some("aaa111"), "true"),
        0
    );
    assert_eq!(
        trails.exec(
            "production",
            "db.migrate",
            Some("x\u{1b}]0;owned\u{7}\u{202e}"),
            "true"
        ),
        0
    );
    let out = trails.parity(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
        "{text:?}"
    );
    assert!(text.contains("x\\u{1b}]0;owned\\u{7}\\u{202e}"), "{text}");
}

#[test]
fn env_filters_keep_one_environment_of_a_shared_trail() {
    // One log that both environments wrote (as a fleet trail is).
    let trails = Trails::new("shared");
    let shared = trails.log("shared");
    for (env, fingerprint) in [
        ("staging", "aaa111"),
        ("staging", "bbb222"),
        ("production", "aaa111"),
        ("production", "ddd444"),
    ] {
        let out = trails.sandbox.run(
            &[
                ("APP_ENV", env),
                ("PRODGUARD_POLICY", &trails.policy),
                ("PRODGUARD_AUDIT_LOG", &shared),
            ],
            &[
                "exec",
                "--op",
                "db.migrate",
                "--fingerprint",
                fingerprint,
                "--",
                "true",
            ],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let run = |extra: &[&str]| {
        let mut args = vec!["parity", "--from", &shared, "--to", &shared, "--json"];
        args.extend_from_slice(extra);
        envelope(&trails.sandbox.run(&[], &args))
    };
    let unfiltered = run(&[]);
    assert_eq!(unfiltered["ok"]["only_in_to"], serde_json::json!([]));
    let value = run(&["--from-env", "staging", "--to-env", "production"]);
    let ok = &value["ok"];
    assert_eq!(ok["from"]["env"], "staging");
    assert_eq!(ok["only_in_to"][0]["fingerprint"], "ddd444");
    assert_eq!(ok["only_in_from"][0]["fingerprint"], "bbb222");
    assert_eq!(ok["in_both"], 1);
    assert_eq!(
        (
            ok["from"]["attempts"].as_u64(),
            ok["to"]["attempts"].as_u64()
        ),
        (Some(2), Some(2))
    );
}
