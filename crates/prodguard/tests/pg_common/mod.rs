//! Helpers for the PostgreSQL tests: a fresh database per test on the
//! throwaway cluster of `scripts/pg-cluster`, and child processes (this test
//! binary run again in a role) for the races between hosts.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The environment variable naming a child's role.
pub const ROLE: &str = "PRODGUARD_PGTEST_ROLE";
/// The database URL a child uses.
pub const URL: &str = "PRODGUARD_PGTEST_URL";
/// When children start racing (unix µs), so they start together.
pub const START_AT: &str = "PRODGUARD_PGTEST_START_AT";

/// The cluster's URL from `PRODGUARD_TEST_PG`; the tests fail without it.
pub fn base_url() -> String {
    match std::env::var("PRODGUARD_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "PRODGUARD_TEST_PG is not set: the `postgres` feature's tests need a real server; \
             run `eval $(scripts/pg-cluster start)` first (and `scripts/pg-cluster stop` after)"
        ),
    }
}

/// `base` with its database replaced by `db`.
pub fn url_with_db(base: &str, db: &str) -> String {
    if let Some(scheme_end) = base.find("://") {
        let rest = &base[scheme_end + 3..];
        let (before_query, query) = match rest.find('?') {
            Some(q) => (&rest[..q], &rest[q..]),
            None => (rest, ""),
        };
        let authority = before_query.split('/').next().unwrap_or("");
        format!("{}{authority}/{db}{query}", &base[..scheme_end + 3])
    } else {
        format!("{base} dbname={db}")
    }
}

/// A connection to the cluster's own database (to create test databases).
pub fn admin() -> postgres::Client {
    postgres::Client::connect(&base_url(), postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "cannot connect to PRODGUARD_TEST_PG ({e}); is the cluster running? \
             `eval $(scripts/pg-cluster start)`"
        )
    })
}

/// A new, empty database for one test (dropped first if a previous run left
/// it), and its URL. Tests run in parallel, each in its own database.
pub fn fresh_db(name: &str) -> String {
    let db = format!("pgtest_{name}_{}", std::process::id());
    let mut admin = admin();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .unwrap();
    // template0: CREATE DATABASE from template1 fails while anyone is connected to it.
    admin
        .batch_execute(&format!("CREATE DATABASE {db} TEMPLATE template0"))
        .unwrap();
    url_with_db(&base_url(), &db)
}

/// The URL of the same database as `url`, through the PgBouncer of
/// `scripts/pg-bouncer` (transaction pooling, one server connection per
/// database); the tests fail without it.
pub fn through_pgbouncer(url: &str) -> String {
    let bouncer = match std::env::var("PRODGUARD_TEST_PGBOUNCER") {
        Ok(bouncer) if !bouncer.trim().is_empty() => bouncer,
        _ => panic!(
            "PRODGUARD_TEST_PGBOUNCER is not set: the pooler tests need a real PgBouncer; \
             run `eval $(scripts/pg-bouncer start)` after `eval $(scripts/pg-cluster start)` \
             (Debian: apt-get install pgbouncer)"
        ),
    };
    let db = url
        .rsplit_once('/')
        .map(|(_, db)| db.split('?').next().unwrap_or(db))
        .unwrap();
    url_with_db(&bouncer, db)
}

/// A plain connection to `url`.
pub fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

/// Microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// The role this process plays, when it is a child.
pub fn child_role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// Waits until the common start time of the race.
pub fn wait_for_start() {
    if let Ok(at) = std::env::var(START_AT) {
        let at: i64 = at.parse().unwrap();
        let now = now_micros();
        if at > now {
            std::thread::sleep(Duration::from_micros((at - now) as u64));
        }
    }
}

/// Starts this test binary as a child in `role` (running only the test
/// named `child`), with `url` and extra `envs`.
pub fn spawn_child(role: &str, url: &str, envs: &[(&str, String)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(URL, url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        command.env(k, v);
    }
    command.spawn().unwrap()
}

/// The `RESULT …` lines a child printed (without the prefix), once it exited.
pub fn results(child: Child) -> Vec<String> {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "child failed: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(result_of)
        .map(str::to_owned)
        .collect()
}

/// What follows `RESULT ` in a line (the harness may print `test child ... `
/// before it on the same line).
fn result_of(line: &str) -> Option<&str> {
    line.find("RESULT ").map(|at| line[at + 7..].trim_end())
}

/// Reads a running child's stdout until a `RESULT` line starting with `what`.
pub fn wait_for_line(child: &mut Child, what: &str) -> String {
    let stdout = child.stdout.as_mut().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the child ended before printing `RESULT {what}`");
        if let Some(rest) = result_of(&line)
            && rest.starts_with(what)
        {
            return rest.to_owned();
        }
    }
}

/// A guard in production (`APP_ENV=production`, the default policy) whose
/// confirmations are given, acting as the human `ana`; add the sink and
/// stamp reader under test.
pub fn confirmed_production_guard() -> prodguard::GuardBuilder {
    confirmed_guard(prodguard::Policy::builtin_default(), "production", "ana")
}

/// A guard under `policy` in `env` (`APP_ENV`), acting as the human `user`,
/// whose typed confirmations are given.
pub fn confirmed_guard(
    policy: prodguard::Policy,
    env: &str,
    user: &str,
) -> prodguard::GuardBuilder {
    use prodguard_core::audit::{Actor, ConfirmEvidence};
    use prodguard_core::policy::ActorKind;
    use prodguard_core::session::{Challenge, ConfirmationAnswer};

    let mut facts = prodguard_core::Facts::default();
    facts.env.insert("APP_ENV".into(), env.into());
    prodguard::Guard::builder()
        .policy(policy)
        .facts(facts)
        .actor(Actor {
            user: user.into(),
            kind: ActorKind::Human,
            account: None,
        })
        .confirmer(|_: &Challenge| {
            ConfirmationAnswer::Confirmed(ConfirmEvidence {
                method: "typed".into(),
                approver: None,
                token_id: None,
                exp: None,
                max_rows: None,
            })
        })
}

/// Makes approver bob's key file in `dir`: the `approvers = …` line that
/// lists him (OS account `bob-approver`) and the key file.
pub fn approver_bob(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let key_file = dir.join("bob.key");
    let key = prodguard::approval::generate_key("bob", &key_file).unwrap();
    (
        format!(
            "approvers = {{ bob = {{ key = \"{}\", user = \"bob-approver\" }} }}\n",
            key.public_key_text()
        ),
        key_file,
    )
}

/// An approval token from the key at `key_file` for `op` on `target` in
/// production, spent in `ledger`, approved by `bob`, valid for 10 minutes.
pub fn issue_token(key_file: &std::path::Path, op: &str, target: &str, ledger: &str) -> String {
    use prodguard_core::Tier;
    use prodguard_core::policy::ActorKind;

    let key = prodguard::approval::read_key(key_file).unwrap();
    let now = prodguard::facts::now();
    prodguard_core::approval::issue(
        &key,
        &prodguard_core::approval::Claims {
            v: 2,
            op: op.into(),
            target: target.into(),
            env: "production".into(),
            tier: Tier::Production,
            fingerprint: None,
            approver: "bob".into(),
            approver_kind: Some(ActorKind::Human),
            iat: now,
            exp: now.plus_seconds(600),
            nonce: prodguard::facts::random_id(),
            ledger: ledger.into(),
            max_rows: None,
        },
    )
}
