//! Approval tokens and backups through the real CLI, on a real SQLite database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_prodguard");

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(name: &str, four_eyes: bool, backup: &str) -> Env {
        // Removed with everything in it when the Env drops.
        let dir = tempfile::Builder::new()
            .prefix(&format!("prodguard-approval-{name}-"))
            .tempdir()
            .unwrap();
        let env = Env { dir };
        // bob has an OS account of his own; ana's is the one the tests run
        // as, so her tokens approve her own runs.
        let bob = env.keygen("bob");
        let ana = env.keygen("ana");
        let me = whoami();
        std::fs::write(
            env.dir.path().join("prodguard.toml"),
            format!(
                "[approval]\napprovers = {{ bob = {{ key = \"{bob}\", user = \"bob-{me}\" }}, \
                 ana = {{ key = \"{ana}\", user = \"{me}\" }} }}\n\
                 max_ttl = \"15m\"\nfour_eyes = {four_eyes}\n\n\
                 [[rule]]\nname = \"migrations\"\noperations = [\"db.*\"]\ntiers = [\"production\"]\n\
                 require = [\"confirm\", \"backup\", \"audit\"]\nconfirm = {{ mode = \"approval\" }}\nbackup = {backup}\n\n\
                 [[rule]]\nname = \"humans only\"\noperations = [\"db.drop\"]\ntiers = [\"production\"]\n\
                 require = [\"confirm\"]\nactors = [\"human\"]\n"
            ),
        )
        .unwrap();
        let db = env.db();
        let status = Command::new("sqlite3")
            .arg(&db)
            .arg("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT); INSERT INTO orders (item) VALUES ('widget');")
            .status()
            .expect("sqlite3 is installed (.ci/run installs it)");
        assert!(status.success());
        env
    }

    /// `keygen --approver NAME --out NAME.key`: the public key it prints.
    fn keygen(&self, name: &str) -> String {
        let file = format!("{name}.key");
        let out = self.run(name, &[], &["keygen", "--approver", name, "--out", &file]);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("orders.db")
    }

    /// Runs the CLI as `actor` (a label: the OS account is the test's) with
    /// `vars` set (an empty value unsets the variable).
    fn run(&self, actor: &str, vars: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = Command::new("setsid");
        cmd.arg("-w")
            .arg(BIN)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("PRODGUARD_ACTOR", actor)
            .env("PRODGUARD_AUDIT_LOG", self.dir.path().join("audit.jsonl"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        for (k, v) in vars {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        cmd.output().unwrap()
    }

    /// `approve --key APPROVER.key --op db.migrate --target orders.db --env
    /// production`, with `args` replacing or adding to those; the run as it ended.
    fn try_approve(&self, approver: &str, vars: &[(&str, &str)], args: &[&str]) -> Output {
        let key = format!("{approver}.key");
        let mut all = vec!["approve", "--key", &key, "--op", "db.migrate"];
        if !args.contains(&"--target") {
            all.extend_from_slice(&["--target", "orders.db"]);
        }
        if !args.contains(&"--env") {
            all.extend_from_slice(&["--env", "production"]);
        }
        all.extend_from_slice(args);
        self.run(approver, vars, &all)
    }

    /// A token from a successful `approve` (see [`Env::try_approve`]).
    fn approve(&self, approver: &str, args: &[&str]) -> String {
        let out = self.try_approve(approver, &[], args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `exec` in production: inserts a row into the real database.
    fn migrate(&self, actor: &str, token: &str, target: &str) -> Output {
        self.run(
            actor,
            &[("APP_ENV", "production")],
            &[
                "exec",
                "--op",
                "db.migrate",
                "--target",
                target,
                "--approval",
                token,
                "--",
                "sqlite3",
                "orders.db",
                "INSERT INTO orders (item) VALUES ('migrated');",
            ],
        )
    }

    fn rows(&self) -> usize {
        let out = Command::new("sqlite3")
            .arg(self.db())
            .arg("SELECT count(*) FROM orders;")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn verify(&self) {
        let out = self.run("ana", &[], &["audit", "verify"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The OS account the tests run as (root in CI).
fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn sha256(path: &Path) -> String {
    prodguard::backup::sha256_file(path).unwrap().0
}

const COPY_BACKUP: &str = "{ command = \"cp {target} {path}\", verify = \"test \\\"$(sqlite3 {path} 'PRAGMA integrity_check')\\\" = ok\", path = \"backups/orders.{ts}.db\" }";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_approved_operation_runs_once_with_its_backup_recorded() {
    let env = Env::new("approved", true, COPY_BACKUP);
    let token = env.approve("bob", &[]);
    let out = env.migrate("ana", &token, "orders.db");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(env.rows(), 2);
    let intent = &env.records()[0];
    assert_eq!(intent["kind"], "intent");
    assert_eq!(intent["confirm"]["method"], "approval");
    assert_eq!(intent["confirm"]["approver"], "bob");
    let backup = env
        .dir
        .path()
        .join(intent["backup"]["location"].as_str().unwrap());
    assert_eq!(
        intent["backup"]["sha256"],
        sha256(&backup).as_str(),
        "the real backup's SHA-256"
    );
    assert_eq!(intent["backup"]["verified"], true);

    // Spent: the same token again refuses and changes nothing.
    let again = env.migrate("ana", &token, "orders.db");
    assert_eq!(again.status.code(), Some(121));
    assert!(stderr(&again).contains("spent"), "{}", stderr(&again));
    assert_eq!(env.rows(), 2);
    env.verify();
}

#[test]
fn every_broken_binding_refuses_with_121_and_names_it() {
    let env = Env::new("bindings", true, COPY_BACKUP);
    let good = env.approve("bob", &[]);
    let mut forged = good.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let short = env.approve("bob", &["--ttl", "1s"]);
    let mine = env.approve("ana", &[]);
    let staging = env.approve("bob", &["--env", "staging"]);
    let fingerprinted = env.approve("bob", &["--fingerprint", "sha256:abc"]);
    // eve has a key of her own, but the policy does not list her.
    env.keygen("eve");
    let unlisted = env.approve("eve", &[]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for (token, target, needle) in [
        (forged.as_str(), "orders.db", "forged"),
        (
            unlisted.as_str(),
            "orders.db",
            "`eve`, who is not in the policy's [approval] approvers",
        ),
        (
            "pga1.eyJ2IjoxfQ.00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            "orders.db",
            "replaced those with approver keys",
        ),
        (
            good.as_str(),
            "users.db",
            "target `orders.db`, not `users.db`",
        ),
        (short.as_str(), "orders.db", "expired"),
        // ana's key, and ana's OS account: the label the run gives itself
        // (PRODGUARD_ACTOR=ana, see migrate) is not what four eyes compares.
        (
            mine.as_str(),
            "orders.db",
            "four_eyes requires an approver with another account",
        ),
        (staging.as_str(), "orders.db", "environment `staging`"),
        (fingerprinted.as_str(), "orders.db", "fingerprint"),
        ("not-a-token", "orders.db", "malformed"),
    ] {
        let out = env.migrate("ana", token, target);
        assert_eq!(out.status.code(), Some(121), "{needle}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
    }
    assert_eq!(env.rows(), 1, "the database is unchanged");
    // Every refusal was recorded, and the log verifies.
    assert_eq!(
        env.records()
            .iter()
            .filter(|r| r["kind"] == "refusal")
            .count(),
        9
    );
    env.verify();
}

#[test]
fn a_failing_backup_refuses_with_122_and_leaves_the_token_unspent() {
    let env = Env::new(
        "badbackup",
        false,
        "{ command = \"exit 7\", verify = \"true\" }",
    );
    let token = env.approve("bob", &[]);
    let out = env.migrate("ana", &token, "orders.db");
    assert_eq!(out.status.code(), Some(122), "{}", stderr(&out));
    assert_eq!(env.rows(), 1);
    // The operation never ran, so the approval is still good once the backup works.
    std::fs::write(
        env.dir.path().join("prodguard.toml"),
        std::fs::read_to_string(env.dir.path().join("prodguard.toml"))
            .unwrap()
            .replace("{ command = \"exit 7\", verify = \"true\" }", COPY_BACKUP),
    )
    .unwrap();
    let out = env.migrate("ana", &token, "orders.db");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(env.rows(), 2);
}

#[test]
fn an_agent_is_refused_where_a_human_is_required() {
    let env = Env::new("agent", false, COPY_BACKUP);
    let out = env.run(
        "claude",
        &[("APP_ENV", "production"), ("CLAUDECODE", "1")],
        &[
            "exec",
            "--op",
            "db.drop",
            "--target",
            "orders.db",
            "--",
            "rm",
            "orders.db",
        ],
    );
    assert_eq!(out.status.code(), Some(121), "{}", stderr(&out));
    assert!(stderr(&out).contains("agent"), "{}", stderr(&out));
    assert!(env.db().exists());
    assert_eq!(env.records()[0]["actor"]["kind"], "agent");
}

#[test]
fn a_replayed_token_runs_exactly_once_across_processes() {
    let env = Env::new("race", false, COPY_BACKUP);
    let token = env.approve("bob", &[]);
    let children: Vec<_> = (0..8)
        .map(|_| {
            let mut cmd = Command::new(BIN);
            cmd.args([
                "exec",
                "--op",
                "db.migrate",
                "--target",
                "orders.db",
                "--approval",
                &token,
                "--",
                "sqlite3",
                "-cmd",
                ".timeout 5000",
                "orders.db",
                "INSERT INTO orders (item) VALUES ('raced');",
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("APP_ENV", "production")
            .env("PRODGUARD_ACTOR", "ana")
            .env("PRODGUARD_AUDIT_LOG", env.dir.path().join("audit.jsonl"))
            .current_dir(env.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            cmd.spawn().unwrap()
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap())
        .collect();
    assert_eq!(codes.iter().filter(|&&c| c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 121).count(), 7, "{codes:?}");
    assert_eq!(env.rows(), 2);
    env.verify();
}

#[test]
fn the_sqlite_provider_backs_up_online_and_checks_the_copy() {
    let env = Env::new(
        "sqliteprovider",
        false,
        "{ provider = \"sqlite\", path = \"backups/{target}.{ts}.db\" }",
    );
    let token = env.approve("bob", &[]);
    let out = env.migrate("ana", &token, "orders.db");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let intent = &env.records()[0];
    let backup = env
        .dir
        .path()
        .join(intent["backup"]["location"].as_str().unwrap());
    assert_eq!(intent["backup"]["sha256"], sha256(&backup).as_str());
    assert_eq!(
        intent["backup"]["verification"],
        "PRAGMA integrity_check = ok"
    );
    // The copy is the database as it was before the operation.
    let rows = Command::new("sqlite3")
        .arg(&backup)
        .arg("SELECT count(*) FROM orders;")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), "1");
    assert_eq!(env.rows(), 2);
}

#[test]
fn break_glass_runs_only_where_allowed_with_its_reason_recorded() {
    let env = Env::new(
        "breakglass",
        false,
        "{ command = \"exit 3\", verify = \"true\" }",
    );
    let policy = env.dir.path().join("prodguard.toml");
    // Break-glass is for the accounts the policy lists: this one.
    let me = account();
    let text = std::fs::read_to_string(&policy).unwrap().replacen(
        "four_eyes = false\n",
        &format!("four_eyes = false\nbreak_glass_users = [\"{me}\"]\n"),
        1,
    );
    std::fs::write(&policy, &text).unwrap();
    let reason = "INC-1234: orders table locked, restoring service";
    let exec = |env: &Env, reason: &str| break_glass(env, "ana", &[], reason);
    // Not allowed by the policy: refused, even with a reason.
    let out = exec(&env, reason);
    assert_eq!(out.status.code(), Some(121), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("break_glass = true"),
        "{}",
        stderr(&out)
    );
    // Allowed: no approval, no (failing) backup, the reason in the intent.
    std::fs::write(
        &policy,
        text.replacen(
            "name = \"migrations\"",
            "name = \"migrations\"\nbreak_glass = true",
            1,
        ),
    )
    .unwrap();
    let out = exec(&env, "because");
    assert_eq!(
        out.status.code(),
        Some(125),
        "a real reason is mandatory: {}",
        stderr(&out)
    );
    let out = exec(&env, reason);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(env.rows(), 2);
    let intent = env
        .records()
        .into_iter()
        .find(|r| r["kind"] == "intent")
        .unwrap();
    assert_eq!(intent["decision"]["result"], "break-glass");
    assert_eq!(intent["confirm"]["method"], "break-glass");
    // Who broke glass is the OS account, beside the label it gave itself.
    assert_eq!(intent["confirm"]["approver"], me.as_str());
    assert_eq!(intent["actor"]["account"], me.as_str());
    assert_eq!(intent["actor"]["user"], "ana");
    let message = intent["message"].as_str().unwrap();
    assert!(
        message.contains(reason) && message.contains(&format!("account {me}")),
        "{message}"
    );
    env.verify();
}

/// The OS account of this uid (`root` in CI), as the password database names it.
fn account() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `exec --break-glass REASON` of a migration in production, as `actor`.
fn break_glass(env: &Env, actor: &str, vars: &[(&str, &str)], reason: &str) -> Output {
    let mut vars = vars.to_vec();
    vars.push(("APP_ENV", "production"));
    env.run(
        actor,
        &vars,
        &[
            "exec",
            "--op",
            "db.migrate",
            "--target",
            "orders.db",
            "--break-glass",
            reason,
            "--",
            "sqlite3",
            "orders.db",
            "INSERT INTO orders (item) VALUES ('hotfix');",
        ],
    )
}

#[test]
fn break_glass_is_refused_to_an_agent_and_to_accounts_not_listed() {
    let env = Env::new(
        "breakglass-who",
        false,
        "{ command = \"exit 3\", verify = \"true\" }",
    );
    let policy = env.dir.path().join("prodguard.toml");
    let text = std::fs::read_to_string(&policy).unwrap().replacen(
        "name = \"migrations\"",
        "name = \"migrations\"\nbreak_glass = true",
        1,
    );
    let me = account();
    let listing = |users: &str| {
        let listed = text.replacen(
            "four_eyes = false\n",
            &format!("four_eyes = false\nbreak_glass_users = {users}\n"),
            1,
        );
        std::fs::write(&policy, listed).unwrap();
    };
    let reason = "INC-1234: orders table locked, restoring service";
    // (who lists, label, agent variables) → what the refusal says.
    for (users, label, vars, why) in [
        (
            format!("[\"{me}\"]"),
            "ana",
            &[("CLAUDECODE", "1")][..],
            "an AI agent cannot break glass",
        ),
        (
            "[\"alice\"]".to_owned(),
            "alice",
            &[],
            &*format!("the account `{me}` is not listed"),
        ),
        ("[]".to_owned(), "ana", &[], "nobody may break glass here"),
    ] {
        listing(&users);
        let out = break_glass(&env, label, vars, reason);
        assert_eq!(out.status.code(), Some(121), "{users}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{users}: {}", stderr(&out));
        let refusal = env.records().pop().unwrap();
        assert_eq!(refusal["kind"], "refusal", "{refusal}");
        assert!(refusal["confirm"].is_null(), "{refusal}");
    }
    assert_eq!(env.rows(), 1, "nothing ran");
    env.verify();
}

#[test]
fn approvals_resist_the_obvious_workarounds() {
    let env = Env::new("workarounds", true, COPY_BACKUP);
    // An agent cannot issue an approval, even with an approver's key.
    let out = env.try_approve("bob", &[("CLAUDECODE", "1")], &[]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("AI agent"), "{}", stderr(&out));
    // A misspelled environment is refused, an alias is canonical.
    let out = env.try_approve("bob", &[], &["--env", "prodution"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let token = env.approve("bob", &["--env", "prod"]);
    // Spending happens in the policy's log: pointing the run elsewhere is refused.
    let policy = env.dir.path().join("prodguard.toml");
    let log = env.dir.path().join("audit.jsonl");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        format!("[audit]\nlog = \"{}\"\n{text}", log.display()),
    )
    .unwrap();
    let other = env.dir.path().join("elsewhere.jsonl");
    let out = env.run(
        "ana",
        &[
            ("APP_ENV", "production"),
            ("PRODGUARD_AUDIT_LOG", other.to_str().unwrap()),
        ],
        &[
            "exec",
            "--op",
            "db.migrate",
            "--target",
            "orders.db",
            "--approval",
            &token,
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(121), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("this run spends approvals in `file://"),
        "{}",
        stderr(&out)
    );
    // The token (env `prod`, canonical `production`) works in production, once.
    assert_eq!(
        env.migrate("ana", &token, "orders.db").status.code(),
        Some(0)
    );
    assert_eq!(
        env.migrate("ana", &token, "orders.db").status.code(),
        Some(121)
    );
}

#[test]
fn four_eyes_does_not_accept_the_requesters_own_typing() {
    let env = Env::new("foureyes-typed", true, COPY_BACKUP);
    let policy = env.dir.path().join("prodguard.toml");
    let text = std::fs::read_to_string(&policy)
        .unwrap()
        .replace("mode = \"approval\"", "mode = \"either\"");
    std::fs::write(&policy, text).unwrap();
    let line = format!(
        "{BIN} exec --op db.migrate --target orders.db -- sqlite3 orders.db \"INSERT INTO orders (item) VALUES ('typed');\""
    );
    let mut child = Command::new("setsid")
        .args(["-w", "script", "-qec", &line, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("APP_ENV", "production")
        .env("PRODGUARD_ACTOR", "ana")
        .env("PRODGUARD_AUDIT_LOG", env.dir.path().join("audit.jsonl"))
        .current_dir(env.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"orders.db\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(121),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("four_eyes"));
    assert_eq!(env.rows(), 1);
}

#[test]
fn tokens_follow_the_policy_at_issuance_and_when_used() {
    let env = Env::new("issuance", true, COPY_BACKUP);
    // A target no guarded operation would accept is not approved either.
    let long = "a".repeat(257);
    let out = env.try_approve("bob", &[], &["--target", &long]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("256 bytes"), "{}", stderr(&out));
    // Longer than max_ttl is refused at issuance…
    let out = env.try_approve("bob", &[], &["--ttl", "16m"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--ttl 16m is longer than the policy allows"),
        "{}",
        stderr(&out)
    );
    // …and when used: a 15m token under a policy lowered to 5m.
    let token = env.approve("bob", &[]);
    let policy = env.dir.path().join("prodguard.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        text.replace("max_ttl = \"15m\"", "max_ttl = \"5m\""),
    )
    .unwrap();
    let out = env.migrate("ana", &token, "orders.db");
    assert_eq!(out.status.code(), Some(121), "{}", stderr(&out));
    assert!(stderr(&out).contains("max_ttl = 5m"), "{}", stderr(&out));
    assert_eq!(env.rows(), 1, "nothing ran");
}

/// `exec --op db.migrate --target orders.db --approval TOKEN -- true` in
/// production with `vars`.
fn exec_with(env: &Env, token: &str, vars: &[(&str, &str)]) -> Output {
    let mut all = vec![("APP_ENV", "production")];
    all.extend_from_slice(vars);
    env.run(
        "ana",
        &all,
        &[
            "exec",
            "--op",
            "db.migrate",
            "--target",
            "orders.db",
            "--approval",
            token,
            "--",
            "true",
        ],
    )
}

#[test]
fn a_token_is_spent_only_in_the_ledger_it_was_approved_for() {
    let env = Env::new("ledger", true, COPY_BACKUP);
    let dir = env.dir.path();
    let token = env.approve("bob", &[]);
    // A fresh log would not know the token was spent: replaying it through
    // PRODGUARD_AUDIT_LOG (or XDG_STATE_HOME) elsewhere is refused.
    let fresh = dir.join("fresh.jsonl");
    let out = exec_with(
        &env,
        &token,
        &[("PRODGUARD_AUDIT_LOG", fresh.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(121), "{}", stderr(&out));
    assert!(stderr(&out).contains("ledger"), "{}", stderr(&out));

    // So is a second policy file that names another log, with the same approvers.
    let policy = std::fs::read_to_string(dir.join("prodguard.toml")).unwrap();
    let with_log = |log: &str| format!("[audit]\nlog = \"{}\"\n{policy}", dir.join(log).display());
    std::fs::write(dir.join("a.toml"), with_log("a.jsonl")).unwrap();
    std::fs::write(dir.join("b.toml"), with_log("b.jsonl")).unwrap();
    let under_a = [("PRODGUARD_POLICY", "a.toml"), ("PRODGUARD_AUDIT_LOG", "")];
    let under_b = [("PRODGUARD_POLICY", "b.toml"), ("PRODGUARD_AUDIT_LOG", "")];
    let for_a = env.try_approve("bob", &under_a, &[]);
    assert!(for_a.status.success(), "{}", stderr(&for_a));
    let for_a = String::from_utf8(for_a.stdout).unwrap().trim().to_owned();
    let out = exec_with(&env, &for_a, &under_b);
    assert_eq!(out.status.code(), Some(121), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("b.jsonl`"),
        "names this run's ledger: {}",
        stderr(&out)
    );
    assert_eq!(exec_with(&env, &for_a, &under_a).status.code(), Some(0));

    // Approving for another ledger names it: `check --json` there shows it.
    let check = env.run(
        "ana",
        &[
            ("APP_ENV", "production"),
            ("PRODGUARD_AUDIT_LOG", fresh.to_str().unwrap()),
        ],
        &[
            "check",
            "--op",
            "db.migrate",
            "--target",
            "orders.db",
            "--json",
        ],
    );
    let check = common::answer(&check);
    let ledger = check["ledger"].as_str().unwrap();
    assert!(
        ledger.starts_with("file://") && ledger.ends_with("/fresh.jsonl"),
        "{ledger}"
    );
    let there = env.approve("bob", &["--ledger", ledger]);
    let out = exec_with(
        &env,
        &there,
        &[("PRODGUARD_AUDIT_LOG", fresh.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The first token is still good where it was meant to be spent.
    assert_eq!(exec_with(&env, &token, &[]).status.code(), Some(0));
}

#[test]
fn approver_keys_are_private_files_and_the_shared_key_is_gone() {
    let env = Env::new("keys", true, COPY_BACKUP);
    let key = env.dir.path().join("bob.key");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(
        text.starts_with("prodguard approver key v1\napprover = bob\n"),
        "{text}"
    );
    // Never overwritten.
    let again = env.run(
        "bob",
        &[],
        &["keygen", "--approver", "bob", "--out", "bob.key"],
    );
    assert_eq!(again.status.code(), Some(125), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
    // keygen prints the policy line to add.
    let out = env.run(
        "carol",
        &[],
        &["keygen", "--approver", "carol", "--out", "carol.key"],
    );
    assert!(
        stderr(&out).contains("approvers = { carol = { key = \"ed25519:"),
        "{}",
        stderr(&out)
    );
    // A key others can read is refused, as ssh does.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.try_approve("bob", &[], &[]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(env.try_approve("bob", &[], &[]).status.success());
    // The shared HMAC key of 0.1: no keygen for it, and a policy naming it is an error.
    let out = env.run("ana", &[], &["keygen", "--out", "approval.key"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--approver <NAME>"),
        "{}",
        stderr(&out)
    );
    assert!(!env.dir.path().join("approval.key").exists());
    let policy = env.dir.path().join("prodguard.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        text.replace("[approval]\n", "[approval]\nkey_file = \"approval.key\"\n"),
    )
    .unwrap();
    let out = env.try_approve("bob", &[], &[]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("prodguard.toml:2:1"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("HMAC shared key"), "{}", stderr(&out));
}
