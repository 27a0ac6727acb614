//! Fleet mode through the CLI against a real PostgreSQL server
//! (`eval "$(scripts/pg-cluster start)"` sets PRODGUARD_TEST_PG).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

mod common;

use prodguard::audit::AuditSink;
use prodguard_core::audit::AuditEvent;

const BIN: &str = env!("CARGO_BIN_EXE_prodguard");

/// A fresh database on the test server, dropped when the test ends.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn new(tag: &str) -> Database {
        let admin = std::env::var("PRODGUARD_TEST_PG").expect(
            "PRODGUARD_TEST_PG is not set: run `eval \"$(scripts/pg-cluster start)\"` first",
        );
        let name = format!("cli_{tag}_{}", std::process::id());
        let base = admin.rsplit_once('/').expect("a URL with a database").0;
        let db = Database {
            url: format!("{base}/{name}"),
            admin,
            name,
        };
        db.admin_sql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name));
        db.admin_sql(&format!("CREATE DATABASE {}", db.name));
        db
    }

    fn admin_sql(&self, sql: &str) -> String {
        psql(&self.admin, sql)
    }

    fn sql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin,
                "-qAtc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn prodguard(dir: &Path, env: &str, args: &[&str]) -> Output {
    Command::new("setsid")
        .arg("-w")
        .arg(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("PRODGUARD_ENV", env)
        .env("PRODGUARD_ACTOR", "ana")
        .env("PRODGUARD_AUDIT_LOG", dir.join("audit.jsonl"))
        .current_dir(dir)
        .output()
        .unwrap()
}

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn sandbox(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-fleet-{tag}-"))
        .tempdir()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn fleet_init_creates_the_tables_once() {
    let db = Database::new("init");
    let dir = sandbox("init");
    for _ in 0..2 {
        let out = prodguard(dir.path(), "development", &["fleet", "init", &db.url]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(text(&out).contains("schema version 2"), "{}", text(&out));
    }
    assert_eq!(db.sql("SELECT max(version) FROM prodguard_schema"), "2");
    assert_eq!(db.sql("SELECT count(*) FROM prodguard_audit"), "0");
}

/// Version 1 (its fleet lock was a session advisory lock, with holders in
/// `prodguard_lock_holders`) becomes version 2 (leases); the trail stays.
#[test]
fn fleet_init_upgrades_a_version_1_schema() {
    let db = Database::new("upgrade");
    let dir = sandbox("upgrade");
    let out = prodguard(dir.path(), "development", &["fleet", "init", &db.url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    db.sql(
        "DROP TABLE prodguard_lease; UPDATE prodguard_schema SET version = 1; \
         CREATE TABLE prodguard_lock_holders (key bigint PRIMARY KEY); \
         INSERT INTO prodguard_audit (log_id, seq, hash, record) VALUES ('l', 1, 'h', 'r')",
    );
    let out = prodguard(dir.path(), "development", &["fleet", "init", &db.url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("schema version 2"), "{}", text(&out));
    assert_eq!(
        db.sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM prodguard_schema"),
        "1,2"
    );
    assert_eq!(
        db.sql("SELECT to_regclass('prodguard_lock_holders') IS NULL AND to_regclass('prodguard_lease') IS NOT NULL"),
        "t"
    );
    assert_eq!(db.sql("SELECT count(*) FROM prodguard_audit"), "1");
}

#[test]
fn fleet_init_and_verify_answer_in_the_json_envelope() {
    let db = Database::new("envelope");
    let dir = sandbox("envelope");
    for _ in 0..2 {
        let out = prodguard(
            dir.path(),
            "development",
            &["fleet", "init", &db.url, "--json"],
        );
        let ok = common::envelope(&out)["ok"].clone();
        assert_eq!(ok["schema_version"], 2, "{}", text(&out));
    }
    let out = prodguard(
        dir.path(),
        "development",
        &["audit", "verify", "--postgres", &db.url, "--json"],
    );
    assert_eq!(
        common::envelope(&out)["ok"]["intact"],
        true,
        "{}",
        text(&out)
    );
    // A server that cannot be reached: 123, in the envelope too.
    let nowhere = "postgresql://postgres@127.0.0.1:1/nowhere";
    let out = prodguard(
        dir.path(),
        "development",
        &["fleet", "init", nowhere, "--json"],
    );
    assert_eq!(
        common::envelope(&out)["error"]["code"],
        123,
        "{}",
        text(&out)
    );
}

#[test]
fn audit_verify_postgres_accepts_the_trail_and_catches_an_edit() {
    let db = Database::new("verify");
    let dir = sandbox("verify");
    let sink = prodguard::pg::PgAuditSink::new(&db.url).unwrap();
    for message in ["one", "two", "three"] {
        sink.append(&AuditEvent::note(message)).unwrap();
    }
    let verify = |dir: &Path| {
        prodguard(
            dir,
            "development",
            &["audit", "verify", "--postgres", &db.url],
        )
    };
    let out = verify(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    db.sql(
        "UPDATE prodguard_audit SET record = replace(record, '\"two\"', '\"2wo\"') WHERE seq = 2",
    );
    let out = verify(dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn an_unreachable_server_is_123_and_the_password_is_never_shown() {
    let dir = sandbox("down");
    let url = "postgresql://postgres:hunter2@127.0.0.1:1/nowhere";
    for args in [
        vec!["audit", "verify", "--postgres", url],
        vec!["fleet", "init", url],
    ] {
        let out = prodguard(dir.path(), "production", &args);
        assert_eq!(out.status.code(), Some(123), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("127.0.0.1:1"), "{}", text(&out));
        assert!(!text(&out).contains("hunter2"), "{}", text(&out));
    }
}

#[test]
fn stamping_a_postgres_database_records_its_environment() {
    let db = Database::new("stamp");
    let dir = sandbox("stamp");
    let out = prodguard(
        dir.path(),
        "staging",
        &["stamp", "--target", &db.url, "--env", "staging"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        db.sql("SELECT environment || ' ' || tier FROM prodguard_stamp"),
        "staging staging"
    );
    let stamp = prodguard::pg::read_stamp(&db.url).unwrap().unwrap();
    assert_eq!(stamp.environment, "staging");
    assert_eq!(stamp.stamped_by.as_deref(), Some("ana"));
}

/// A policy file in `dir` with `fleet` (TOML) and one rule: every operation
/// in production requires the audit log (no confirmation, so no terminal).
fn fleet_policy(dir: &std::path::Path, fleet: &str) -> String {
    let path = dir.join("prodguard.toml");
    std::fs::write(
        &path,
        format!(
            "{fleet}\n[[rule]]\noperations = [\"*\"]\ntiers = [\"production\"]\nrequire = [\"audit\"]\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn with_a_policy_sink_exec_record_and_verify_use_the_postgresql_trail() {
    let db = Database::new("policy_sink");
    let dir = sandbox("policy-sink");
    let policy = fleet_policy(dir.path(), &format!("[audit]\nsink = {:?}\n", db.url));
    let run = |args: &[&str]| {
        let mut all = vec!["--policy", policy.as_str()];
        all.extend_from_slice(args);
        prodguard(dir.path(), "production", &all)
    };
    let out = run(&[
        "exec", "--op", "app.noop", "--target", "orders", "--", "true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["audit", "record", "--message", "window opened"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
    assert_eq!(
        db.sql("SELECT string_agg(record::json->>'kind', ',' ORDER BY id) FROM prodguard_audit"),
        "intent,outcome,note"
    );
    // PRODGUARD_AUDIT_LOG names a file: it keeps a copy.
    let copy = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(copy.lines().count(), 3, "{copy}");
    // `audit verify` checks the policy's trail; an edit is caught.
    let out = run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("postgresql://"), "{}", text(&out));
    db.sql("UPDATE prodguard_audit SET record = replace(record, 'window', 'door') WHERE seq = 3");
    let out = run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // The file copy is still intact, and --log verifies it.
    let log = dir.path().join("audit.jsonl").display().to_string();
    let out = run(&["audit", "verify", "--log", &log]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn with_a_policy_lock_exec_refuses_while_another_host_holds_it() {
    let db = Database::new("policy_lock");
    let dir = sandbox("policy-lock");
    let policy = fleet_policy(dir.path(), &format!("[fleet]\nlock = {:?}\n", db.url));
    let exec = || {
        prodguard(
            dir.path(),
            "production",
            &[
                "--policy",
                &policy,
                "exec",
                "--op",
                "db.migrate",
                "--target",
                "orders",
                "--",
                "touch",
                "ran",
            ],
        )
    };
    let held = prodguard::pg::FleetLock::new(&db.url)
        .unwrap()
        .holder("deploy 42 on web-3")
        .acquire("db.migrate", "orders", None)
        .unwrap();
    let out = exec();
    // Its own code (EX_TEMPFAIL): not a policy's deny, and worth a retry.
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert!(text(&out).contains("deploy 42 on web-3"), "{}", text(&out));
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let refusal: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(refusal["decision"]["exit_code"], 75, "{refusal}");
    assert!(!dir.path().join("ran").exists(), "the command did not run");
    held.release().unwrap();
    let out = exec();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(dir.path().join("ran").exists());
}

#[test]
fn exec_whose_lease_is_lost_mid_run_keeps_its_code_and_says_so() {
    let db = Database::new("lease_lost");
    let dir = sandbox("lease-lost");
    let policy = fleet_policy(dir.path(), &format!("[fleet]\nlock = {:?}\n", db.url));
    // The command itself ends the lease (as if this host had been paused
    // past it), then fails with its own code.
    let command = format!(
        "psql '{}' -qAtc 'UPDATE prodguard_lease SET until = now()' && exit 3",
        db.url
    );
    let out = prodguard(
        dir.path(),
        "production",
        &[
            "--policy",
            &policy,
            "exec",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--",
            "sh",
            "-c",
            &command,
        ],
    );
    // The command ran: its code stands; stderr says the lock did not hold.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("was lost during the run"), "{stderr}");
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let outcome: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(outcome["outcome"]["exit_code"], 3, "{outcome}");
    let lost = outcome["outcome"]["lock_lost"].as_str().unwrap_or_default();
    assert!(lost.contains("`db.migrate` on `orders`"), "{outcome}");
}

#[test]
fn a_target_url_password_is_never_printed_or_recorded() {
    let db = Database::new("target_password");
    let dir = sandbox("target-password");
    prodguard::pg::write_stamp(
        &db.url,
        &prodguard_core::session::Stamp {
            environment: "production".into(),
            tier: prodguard_core::Tier::Production,
            stamped_at: None,
            stamped_by: None,
        },
    )
    .unwrap();
    let at = db.url.find('@').unwrap();
    let secret = format!("{}:hunter2{}", &db.url[..at], &db.url[at..]);
    let policy = fleet_policy(dir.path(), "");
    // check reads the stamp with the password; staging disagrees: 124.
    let out = prodguard(
        dir.path(),
        "staging",
        &[
            "--policy",
            &policy,
            "check",
            "--json",
            "--op",
            "db.migrate",
            "--target",
            &secret,
        ],
    );
    assert_eq!(out.status.code(), Some(124), "{}", text(&out));
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));
    assert!(text(&out).contains(&db.url), "{}", text(&out));
    let out = prodguard(
        dir.path(),
        "production",
        &[
            "--policy",
            &policy,
            "exec",
            "--op",
            "db.migrate",
            "--target",
            &secret,
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(!log.contains("hunter2"), "{log}");
    assert!(log.contains(&db.url), "{log}");
}

#[test]
fn a_password_comes_from_pgpassword_or_the_password_file() {
    let db = Database::new("pgpass");
    let dir = sandbox("pgpass");
    // scripts/pg-cluster makes this role authenticate with a password.
    db.admin_sql("DROP ROLE IF EXISTS prodguard_pw");
    db.admin_sql("CREATE ROLE prodguard_pw LOGIN SUPERUSER PASSWORD 's3cret-pw'");
    let (_, rest) = db.url.split_once('@').unwrap();
    let url = format!("postgresql://prodguard_pw@{rest}");
    let init = |envs: &[(&str, String)]| {
        let mut command = Command::new(BIN);
        command
            .args(["fleet", "init", &url])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", dir.path())
            .current_dir(dir.path());
        for (k, v) in envs {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let out = init(&[]);
    assert_eq!(out.status.code(), Some(123), "{}", text(&out));
    let out = init(&[("PGPASSWORD", "s3cret-pw".into())]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // ~/.pgpass, used only when no one else can read it.
    let pgpass = dir.path().join(".pgpass");
    let host_port = rest.split('/').next().unwrap();
    let (host, port) = host_port.rsplit_once(':').unwrap();
    std::fs::write(&pgpass, format!("{host}:{port}:*:prodguard_pw:s3cret-pw\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = init(&[]);
    assert_eq!(
        out.status.code(),
        Some(123),
        "a world-readable file is ignored: {}",
        text(&out)
    );
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = init(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("s3cret"), "{}", text(&out));
    db.admin_sql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name));
    db.admin_sql("DROP ROLE IF EXISTS prodguard_pw");
}

/// `prodguard parity … --json`'s fingerprints of one side.
fn parity_fingerprints(value: &serde_json::Value, side: &str) -> Vec<String> {
    value["ok"][side]
        .as_array()
        .unwrap_or_else(|| panic!("{value:#}"))
        .iter()
        .map(|e| e["fingerprint"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn parity_reads_the_shared_postgresql_trail_of_staging_and_production_hosts() {
    let db = Database::new("parity");
    let dir = sandbox("parity");
    let policy = fleet_policy(dir.path(), &format!("[audit]\nsink = {:?}\n", db.url));
    for (env, fingerprint) in [
        ("staging", "aaa111"),
        ("staging", "bbb222"),
        ("production", "aaa111"),
        ("production", "ddd444"),
    ] {
        let out = prodguard(
            dir.path(),
            env,
            &[
                "--policy",
                &policy,
                "exec",
                "--op",
                "db.migrate",
                "--target",
                "orders",
                "--fingerprint",
                fingerprint,
                "--",
                "true",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let parity = |from: &str, to: &str| {
        prodguard(
            dir.path(),
            "development",
            &[
                "parity",
                "--from",
                from,
                "--from-env",
                "staging",
                "--to",
                to,
                "--to-env",
                "production",
                "--json",
            ],
        )
    };
    // The PostgreSQL trail on both sides, each side one environment of it.
    let out = parity(&db.url, &db.url);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parity_fingerprints(&value, "only_in_to"), ["ddd444"]);
    assert_eq!(parity_fingerprints(&value, "only_in_from"), ["bbb222"]);
    assert_eq!(value["ok"]["in_both"], 1);
    assert_eq!(value["ok"]["to"]["records"], 8);
    assert!(
        value["ok"]["to"]["trail"]
            .as_str()
            .unwrap()
            .starts_with("postgresql://"),
        "{value:#}"
    );
    let cited = &value["ok"]["only_in_to"][0]["last"]["outcome"]["record"];
    assert_eq!(
        db.sql(&format!(
            "SELECT hash FROM prodguard_audit WHERE seq = {}",
            cited["seq"]
        )),
        cited["hash"].as_str().unwrap()
    );
    // A file on one side: the local copy PRODGUARD_AUDIT_LOG kept.
    let copy = dir.path().join("audit.jsonl").display().to_string();
    let out = parity(&copy, &db.url);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mixed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parity_fingerprints(&mixed, "only_in_to"), ["ddd444"]);
    assert_eq!(parity_fingerprints(&mixed, "only_in_from"), ["bbb222"]);
    // The text report names the server, never a password.
    let out = prodguard(
        dir.path(),
        "development",
        &["parity", "--from", &copy, "--to", &db.url],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("to:   postgresql://"), "{}", text(&out));

    // A staging run's failure rewritten as a success in the table: the
    // trail does not verify, so it is no evidence.
    let out = prodguard(
        dir.path(),
        "staging",
        &[
            "--policy",
            &policy,
            "exec",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--fingerprint",
            "eee555",
            "--",
            "false",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    db.sql(
        "UPDATE prodguard_audit SET record = replace(record, '\"status\":\"failed\"', '\"status\":\"ok\"') \
         WHERE record LIKE '%\"status\":\"failed\"%'",
    );
    let out = parity(&db.url, &copy);
    assert_eq!(out.status.code(), Some(123), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains("does not verify (tampered"), "{message}");
    assert!(
        message.contains("run `prodguard audit verify --postgres postgresql://"),
        "{message}"
    );
}

#[test]
fn staged_production_runs_find_the_staging_success_in_the_shared_postgresql_trail() {
    let db = Database::new("staged");
    let dir = sandbox("staged");
    let policy = dir.path().join("prodguard.toml");
    std::fs::write(
        &policy,
        format!(
            "[audit]\nsink = {:?}\n[promotion]\nfrom = \"staging\"\n\
             [[rule]]\nname = \"staged first\"\noperations = [\"db.migrate\"]\n\
             tiers = [\"production\"]\nrequire = [\"audit\", \"staged\"]\n\
             [[rule]]\noperations = [\"*\"]\ntiers = [\"staging\"]\nrequire = [\"audit\"]\n",
            db.url
        ),
    )
    .unwrap();
    let policy = policy.display().to_string();
    let migrate = |env: &str| {
        prodguard(
            dir.path(),
            env,
            &[
                "--policy",
                &policy,
                "exec",
                "--op",
                "db.migrate",
                "--target",
                "orders",
                "--fingerprint",
                "ccc333",
                "--",
                "true",
            ],
        )
    };
    let out = migrate("production");
    assert_eq!(out.status.code(), Some(120), "{}", text(&out));
    assert!(
        text(&out).contains("run it in staging first"),
        "{}",
        text(&out)
    );
    let out = migrate("staging");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = migrate("production");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The production intent cites the staging outcome of the same trail.
    let cited = db.sql(
        "SELECT (record::json->'promotion'->'runs'->0->'outcome'->>'seq') || ' ' || \
         (record::json->'promotion'->'runs'->0->>'env') FROM prodguard_audit \
         WHERE record::json->>'kind' = 'intent' AND record::json->'op'->>'env' = 'production'",
    );
    let staged = db.sql(
        "SELECT seq FROM prodguard_audit WHERE record::json->>'kind' = 'outcome' \
         AND record::json->'op'->>'env' = 'staging'",
    );
    assert_eq!(cited, format!("{staged} staging"));
    let out = prodguard(
        dir.path(),
        "production",
        &["--policy", &policy, "audit", "verify"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // An edited trail is no evidence.
    db.sql("UPDATE prodguard_audit SET record = replace(record, 'ccc333', 'ccc334') WHERE seq = 1");
    let out = migrate("production");
    assert_eq!(out.status.code(), Some(123), "{}", text(&out));
    assert!(text(&out).contains("does not verify"), "{}", text(&out));
}
