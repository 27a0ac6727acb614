//! The `staged` requirement through the real CLI on file logs: production
//! runs an operation only after the same operation, with the same
//! fingerprint, succeeded in staging — as the staging trail, verified,
//! shows. (A shared PostgreSQL trail is in fleet.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Sandbox, code, stderr};

/// Production needs the run staged first (and audited); staging and
/// development only record.
fn policy(staging_log: &str, within: &str) -> String {
    format!(
        "[promotion]\nfrom = \"staging\"\nwithin = \"{within}\"\nstaging_log = \"{staging_log}\"\n\
         [[rule]]\nname = \"staged first\"\noperations = [\"db.migrate\"]\n\
         tiers = [\"production\"]\nrequire = [\"audit\", \"staged\"]\n\
         [[rule]]\noperations = [\"*\"]\ntiers = [\"staging\"]\nrequire = [\"audit\"]\n"
    )
}

struct Hosts {
    sandbox: Sandbox,
    policy: String,
}

impl Hosts {
    fn new(name: &str, within: &str) -> Self {
        let sandbox = Sandbox::new(name);
        let staging_log = sandbox.path("staging.jsonl").to_string_lossy().into_owned();
        let policy = sandbox.write("prodguard.toml", policy(&staging_log, within).as_bytes());
        Hosts { sandbox, policy }
    }

    fn log(&self, env: &str) -> String {
        self.sandbox
            .path(&format!("{env}.jsonl"))
            .to_string_lossy()
            .into_owned()
    }

    /// `prodguard exec --op db.migrate --target orders.db [--fingerprint FP]
    /// -- CMD` on a host of `env`, recording in that environment's log.
    fn exec(&self, env: &str, fingerprint: Option<&str>, command: &str) -> std::process::Output {
        let log = self.log(env);
        let mut args = vec!["exec", "--op", "db.migrate", "--target", "orders.db"];
        if let Some(fingerprint) = fingerprint {
            args.extend(["--fingerprint", fingerprint]);
        }
        args.extend(["--", command]);
        self.sandbox.run(
            &[
                ("APP_ENV", env),
                ("PRODGUARD_POLICY", &self.policy),
                ("PRODGUARD_AUDIT_LOG", &log),
            ],
            &args,
        )
    }

    fn records(&self, env: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.log(env))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn verify(&self, env: &str) {
        let out = self
            .sandbox
            .run(&[], &["audit", "verify", "--log", &self.log(env)]);
        assert_eq!(code(&out), 0, "{env}: {}", stderr(&out));
    }
}

#[test]
fn production_refuses_until_staging_succeeded_and_the_intent_cites_the_staging_record() {
    let hosts = Hosts::new("promoted", "14d");
    // Nothing ran in staging yet (there is no staging log at all).
    std::fs::write(hosts.log("staging"), b"").unwrap();
    let out = hosts.exec("production", Some("3f2a9c"), "true");
    assert_eq!(code(&out), 120, "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains(
            "run it in staging first: no successful `db.migrate` with fingerprint 3f2a9c in \
             staging within 14 days"
        ),
        "{text}"
    );
    // The refusal is recorded in production's own trail; nothing ran.
    let refused = hosts.records("production");
    assert_eq!(refused.last().unwrap()["kind"], "refusal", "{refused:?}");

    assert_eq!(code(&hosts.exec("staging", Some("3f2a9c"), "true")), 0);
    let out = hosts.exec("production", Some("3f2a9c"), "true");
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // The intent cites the staging outcome by log id, seq and hash.
    let staging = hosts.records("staging");
    let staged_outcome = staging
        .iter()
        .find(|r| r["kind"] == "outcome")
        .expect("staging outcome");
    let production = hosts.records("production");
    let intent = production
        .iter()
        .rev()
        .find(|r| r["kind"] == "intent")
        .expect("production intent");
    let promotion = &intent["promotion"];
    assert_eq!(promotion["from"], "staging", "{intent}");
    assert_eq!(promotion["within_seconds"], 14 * 86_400, "{intent}");
    assert_eq!(
        promotion["trail"],
        hosts.log("staging").as_str(),
        "{intent}"
    );
    let run = &promotion["runs"][0];
    assert_eq!(run["fingerprint"], "3f2a9c", "{intent}");
    assert_eq!(run["env"], "staging", "{intent}");
    assert_eq!(run["attempt_id"], staged_outcome["attempt_id"], "{intent}");
    assert_eq!(
        run["outcome"]["log_id"], staged_outcome["log_id"],
        "{intent}"
    );
    assert_eq!(run["outcome"]["seq"], staged_outcome["seq"], "{intent}");
    assert_eq!(run["outcome"]["hash"], staged_outcome["hash"], "{intent}");
    hosts.verify("staging");
    hosts.verify("production");
}

#[test]
fn another_fingerprint_a_failed_run_or_none_at_all_is_no_evidence() {
    let hosts = Hosts::new("not-staged", "14d");
    assert_eq!(code(&hosts.exec("staging", Some("aaa111"), "true")), 0);
    assert_eq!(code(&hosts.exec("staging", Some("bbb222"), "false")), 1);

    // Staging ran another fingerprint: production's is not it.
    let out = hosts.exec("production", Some("ccc333"), "true");
    assert_eq!(code(&out), 120, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("staging ran other fingerprints of it (bbb222, aaa111)"),
        "{}",
        stderr(&out)
    );

    // The staging run with this fingerprint failed.
    let out = hosts.exec("production", Some("bbb222"), "true");
    assert_eq!(code(&out), 120, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the last attempt there failed (exit 1)"),
        "{}",
        stderr(&out)
    );

    // Without a fingerprint there is nothing to look up: say to add one.
    let out = hosts.exec("production", None, "true");
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(stderr(&out).contains("--fingerprint"), "{}", stderr(&out));

    // Only the staged fingerprint runs.
    let out = hosts.exec("production", Some("aaa111"), "true");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_staging_success_older_than_within_is_no_evidence() {
    let hosts = Hosts::new("expired", "1s");
    assert_eq!(code(&hosts.exec("staging", Some("3f2a9c"), "true")), 0);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = hosts.exec("production", Some("3f2a9c"), "true");
    assert_eq!(code(&out), 120, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("within 1 second; the last success there is 2 seconds old"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_tampered_staging_trail_is_no_evidence_and_names_itself() {
    let hosts = Hosts::new("tampered", "14d");
    // Staging failed; someone edits its outcome into a success.
    assert_eq!(code(&hosts.exec("staging", Some("3f2a9c"), "false")), 1);
    let path = hosts.log("staging");
    let text = std::fs::read_to_string(&path).unwrap();
    let forged = text.replace("\"status\":\"failed\"", "\"status\":\"ok\"");
    assert_ne!(forged, text);
    std::fs::write(&path, forged).unwrap();

    let out = hosts.exec("production", Some("3f2a9c"), "true");
    assert_eq!(code(&out), 123, "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("staging.jsonl does not verify"), "{text}");
    assert!(text.contains("prodguard audit verify --log"), "{text}");

    // A staging log that is not there at all is no evidence either.
    std::fs::remove_file(&path).unwrap();
    let out = hosts.exec("production", Some("3f2a9c"), "true");
    assert_eq!(code(&out), 123, "{}", stderr(&out));
}
