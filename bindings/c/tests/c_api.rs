//! The C test programs, compiled by the system compiler against the
//! committed header and run plain, under AddressSanitizer + UBSan, and under
//! valgrind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding libprodguard.so: the test binary's profile directory.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_owned();
    assert!(
        dir.join("libprodguard.so").exists(),
        "build the cdylib first: {}",
        dir.display()
    );
    dir
}

fn compile(source: &str, out: &Path, extra: &[&str]) {
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .args(extra)
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join("tests/c").join(source))
        .arg("-L")
        .arg(lib_dir())
        .arg(format!("-Wl,-rpath,{}", lib_dir().display()))
        .arg("-lprodguard")
        .arg("-o")
        .arg(out)
        .status()
        .expect("a C compiler (cc)");
    assert!(
        status.success(),
        "{source} does not compile with -Wall -Wextra -Werror"
    );
}

/// Runs `program ARGS` (under `wrapper`, e.g. valgrind, when given) in
/// development with a clean environment and the audit log at `log`.
fn run_with(program: &Path, args: &[&str], wrapper: &[&str], log: &Path) -> std::process::Output {
    run_as(program, args, wrapper, log, &[])
}

/// [`run_with`], with `vars` set too.
fn run_as(
    program: &Path,
    args: &[&str],
    wrapper: &[&str],
    log: &Path,
    vars: &[(&str, &str)],
) -> std::process::Output {
    let mut argv: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
    argv.push(program.display().to_string());
    argv.extend(args.iter().map(|s| s.to_string()));
    Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("PRODGUARD_ENV", "development")
        .env("PRODGUARD_AUDIT_LOG", log)
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

fn run(program: &Path, wrapper: &[&str], log: &Path) -> std::process::Output {
    run_with(program, &[], wrapper, log)
}

fn assert_succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh directory under the system temp dir, removed with everything in
/// it when the returned guard drops (keep it alive until the test ends).
fn workdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("prodguard-c-{name}-"))
        .tempdir()
        .unwrap()
}

#[test]
fn the_c_test_passes_plain() {
    let dir = workdir("plain");
    let program = dir.path().join("basic");
    compile("basic.c", &program, &[]);
    let out = run(&program, &[], &dir.path().join("audit.jsonl"));
    assert_succeeded(&out);
    // Three runs reached the audit log: intent + outcome each.
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 6);
}

#[test]
fn the_c_test_passes_under_asan_and_ubsan() {
    let dir = workdir("asan");
    let program = dir.path().join("basic-asan");
    compile(
        "basic.c",
        &program,
        &[
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
        ],
    );
    let out = run(&program, &[], &dir.path().join("audit.jsonl"));
    assert_succeeded(&out);
}

#[test]
fn the_c_test_passes_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("valgrind is missing: .ci/run installs it (apt-get install valgrind)");
    }
    let dir = workdir("valgrind");
    let program = dir.path().join("basic");
    compile("basic.c", &program, &[]);
    let out = run(
        &program,
        &[
            "valgrind",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ],
        &dir.path().join("audit.jsonl"),
    );
    assert_succeeded(&out);
}

#[test]
fn the_header_compiles_as_cpp_and_twice() {
    let dir = workdir("cpp");
    let source = dir.path().join("twice.cpp");
    std::fs::write(&source, "#include \"prodguard.h\"\n#include \"prodguard.h\"\nint main() { return prodguard_version() == nullptr; }\n").unwrap();
    let status = Command::new("c++")
        .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(crate_dir().join("include"))
        .arg(&source)
        .arg("-L")
        .arg(lib_dir())
        .arg(format!("-Wl,-rpath,{}", lib_dir().display()))
        .arg("-lprodguard")
        .arg("-o")
        .arg(dir.path().join("twice"))
        .status()
        .expect("a C++ compiler (c++)");
    assert!(status.success());
}

fn shipped_at(db: &Path) -> bool {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("SELECT name FROM pragma_table_info('orders');")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "shipped_at")
}

#[test]
fn the_python_example_runs_in_development_and_is_refused_in_production() {
    let dir = workdir("python");
    let script = crate_dir().join("../../examples/python/guarded_migration.py");
    let run = |env: &str, db: &str| {
        Command::new("setsid")
            .arg("-w")
            .arg("python3")
            .arg(&script)
            .arg(dir.path().join(db))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("PRODGUARD_ENV", env)
            .env("PRODGUARD_AUDIT_LOG", dir.path().join("audit.jsonl"))
            .env("PRODGUARD_LIB", lib_dir().join("libprodguard.so"))
            .output()
            .unwrap()
    };
    let out = run("development", "dev.db");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shipped_at(&dir.path().join("dev.db")));
    let out = run("production", "prod.db");
    assert_eq!(
        out.status.code(),
        Some(121),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no controlling terminal"));
    assert!(
        !dir.path().join("prod.db").exists(),
        "the migration never ran"
    );
}

#[test]
fn the_c_example_migrates_in_development_and_is_refused_in_production() {
    let dir = workdir("example");
    let program = dir.path().join("guarded_migration");
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(crate_dir().join("../../examples/c/guarded_migration.c"))
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg("-L")
        .arg(lib_dir())
        .arg(format!("-Wl,-rpath,{}", lib_dir().display()))
        .args(["-lprodguard", "-lsqlite3", "-o"])
        .arg(&program)
        .status()
        .expect("a C compiler (cc) and libsqlite3-dev");
    assert!(status.success());
    let run = |env: &str, db: &str| {
        Command::new("setsid")
            .arg("-w")
            .arg(&program)
            .arg(dir.path().join(db))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("PRODGUARD_ENV", env)
            .env("PRODGUARD_AUDIT_LOG", dir.path().join("audit.jsonl"))
            .output()
            .unwrap()
    };
    let out = run("development", "dev.db");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shipped_at(&dir.path().join("dev.db")));
    // Applied once: running it again fails inside the migration (exit 1).
    assert_eq!(run("development", "dev.db").status.code(), Some(1));
    let out = run("production", "prod.db");
    assert_eq!(
        out.status.code(),
        Some(121),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("prod.db").exists());
}

fn run_callbacks(wrapper: &[&str], name: &str, flags: &[&str]) {
    let dir = workdir(name);
    let program = dir.path().join("callbacks");
    compile("callbacks.c", &program, flags);
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[rule]]\noperations = [\"db.*\"]\ntiers = [\"development\"]\nrequire = [\"confirm\", \"backup\", \"audit\"]\nbackup = { provider = \"program\" }\n",
    )
    .unwrap();
    let log = dir.path().join("audit.jsonl");
    let out = run_with(&program, &[policy.to_str().unwrap()], wrapper, &log);
    assert_succeeded(&out);
    let intent = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert!(intent.contains("\"method\":\"callback\""), "{intent}");
    assert!(intent.contains("s3://backups/orders.dump"), "{intent}");
}

#[test]
fn callbacks_from_c_confirm_and_back_up() {
    run_callbacks(&[], "callbacks", &[]);
}

#[test]
fn an_agents_run_never_reaches_the_c_confirmation_callback() {
    let dir = workdir("callbacks-agent");
    let program = dir.path().join("callbacks");
    compile("callbacks.c", &program, &[]);
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[rule]]\noperations = [\"db.*\"]\ntiers = [\"development\"]\nrequire = [\"confirm\", \"audit\"]\n",
    )
    .unwrap();
    let log = dir.path().join("audit.jsonl");
    let out = run_as(
        &program,
        &[policy.to_str().unwrap(), "agent"],
        &[],
        &log,
        &[("CLAUDECODE", "1")],
    );
    assert_succeeded(&out);
    let refusal = std::fs::read_to_string(&log).unwrap();
    assert!(refusal.contains("\"kind\":\"refusal\""), "{refusal}");
    assert!(
        !refusal.contains("\"method\""),
        "nothing confirmed: {refusal}"
    );
}

#[test]
fn callbacks_from_c_pass_under_asan_and_ubsan() {
    run_callbacks(
        &[],
        "callbacks-asan",
        &["-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
    );
}

#[test]
fn callbacks_from_c_pass_under_valgrind() {
    run_callbacks(
        &[
            "valgrind",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ],
        "callbacks-vg",
        &[],
    );
}

#[test]
fn pkg_config_finds_an_installed_libprodguard() {
    let dir = workdir("pkgconfig");
    let prefix = dir.path().join("prefix");
    for sub in ["lib", "include", "lib/pkgconfig"] {
        std::fs::create_dir_all(prefix.join(sub)).unwrap();
    }
    std::fs::copy(
        lib_dir().join("libprodguard.so"),
        prefix.join("lib/libprodguard.so"),
    )
    .unwrap();
    std::fs::copy(
        crate_dir().join("include/prodguard.h"),
        prefix.join("include/prodguard.h"),
    )
    .unwrap();
    let pc = std::fs::read_to_string(crate_dir().join("prodguard.pc.in"))
        .unwrap()
        .replace("@PREFIX@", prefix.to_str().unwrap())
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    std::fs::write(prefix.join("lib/pkgconfig/prodguard.pc"), pc).unwrap();
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "prodguard"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("pkg-config");
    assert!(
        flags.status.success(),
        "{}",
        String::from_utf8_lossy(&flags.stderr)
    );
    let flags = String::from_utf8(flags.stdout).unwrap();
    let program = dir.path().join("basic");
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(crate_dir().join("tests/c/basic.c"))
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()))
        .arg("-o")
        .arg(&program)
        .status()
        .unwrap();
    assert!(status.success(), "compiles with pkg-config's flags");
}

#[test]
fn the_shared_vectors_pass_through_the_c_abi() {
    let out = Command::new("python3")
        .arg(crate_dir().join("tests/vectors.py"))
        .arg(lib_dir().join("libprodguard.so"))
        .arg(crate_dir().join("../../tests/vectors"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passed: usize = report
        .lines()
        .find_map(|l| l.strip_suffix(" passed, 0 failed"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 400, "every vector and corpus case ran: {report}");
}

/// A token for db.migrate on orders in production, signed by `key` in its
/// approver's name, spent in `ledger`.
fn approval_token(key: &prodguard_core::approval::ApproverKey, ledger: &str) -> String {
    use prodguard_core::approval::Claims;
    let now = runtime::facts::now();
    prodguard_core::approval::issue(
        key,
        &Claims {
            v: 2,
            op: "db.migrate".into(),
            target: "orders".into(),
            env: "production".into(),
            tier: prodguard_core::Tier::Production,
            fingerprint: None,
            approver: key.name().into(),
            approver_kind: None,
            iat: now,
            exp: now.plus_seconds(600),
            nonce: runtime::facts::random_id(),
            ledger: ledger.into(),
            max_rows: None,
        },
    )
}

#[test]
fn a_c_program_runs_only_on_a_listed_approvers_token_for_its_ledger() {
    use prodguard_core::approval::ApproverKey;
    let dir = workdir("approval");
    let program = dir.path().join("approval");
    compile("approval.c", &program, &[]);
    // bob approves with an OS account of his own; ana's is the one the
    // tests run as, so her token is a self-approval.
    let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let bob = ApproverKey::from_secret("bob", [3; 32]).unwrap();
    let ana = ApproverKey::from_secret("ana", [4; 32]).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[approval]\nfour_eyes = true\napprovers = {{ bob = {{ key = \"{}\", user = \"bob-{}\" }}, \
             ana = {{ key = \"{}\", user = \"{}\" }} }}\n\n[[rule]]\noperations = [\"db.*\"]\n\
             tiers = [\"production\"]\nrequire = [\"confirm\", \"audit\"]\nconfirm = {{ mode = \"approval\" }}\n",
            bob.public_key_text(),
            me.trim(),
            ana.public_key_text(),
            me.trim()
        ),
    )
    .unwrap();
    let log = dir.path().join("audit.jsonl");
    // The ledger a run of this program spends in, as the runtime computes it.
    let ledger = runtime::Guard::builder()
        .policy(
            prodguard_core::Policy::parse_toml(
                &std::fs::read_to_string(&policy).unwrap(),
                "policy.toml",
            )
            .unwrap(),
        )
        .audit_log(&log)
        .build()
        .unwrap()
        .ledger_id();
    let attempt = |token: &str| {
        Command::new(&program)
            .arg(token)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("PRODGUARD_ENV", "production")
            .env("PRODGUARD_POLICY", &policy)
            .env("PRODGUARD_AUDIT_LOG", &log)
            .env("PRODGUARD_ACTOR", "someone-else")
            .output()
            .unwrap()
    };
    let outcome = |out: &std::process::Output| {
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let good = approval_token(&bob, &ledger);
    let (code, runs, why) = outcome(&attempt(&good));
    assert_eq!((code, runs.as_str()), (Some(0), "runs=1"), "{why}");
    for (token, needle) in [
        (good.clone(), "spent"),
        // Signed in bob's name with a key the policy does not list for him.
        (
            approval_token(&ApproverKey::from_secret("bob", [5; 32]).unwrap(), &ledger),
            "forged",
        ),
        (
            approval_token(&bob, "file://elsewhere/tmp/fresh.jsonl"),
            "ledger",
        ),
        (approval_token(&ana, &ledger), "four_eyes"),
        ("pga1.e30.00".to_owned(), "pga1"),
    ] {
        let (code, runs, why) = outcome(&attempt(&token));
        assert_eq!(
            (code, runs.as_str()),
            (Some(121), "runs=0"),
            "{needle}: {why}"
        );
        assert!(why.contains(needle), "{needle}: {why}");
    }
}

/// What one run of tests/c/sql.c printed: `key=value` lines.
struct SqlRun {
    status: i32,
    rows: String,
    asked: usize,
    consequences: Vec<String>,
    /// The callback's `question=` lines: operation, target, expected name.
    questions: Vec<String>,
    /// What prodguard_confirm_consequences answered after the run returned.
    after: String,
    error: String,
}

/// A shop in SQLite with 500 carts, half of them stale, and no orders.
fn sqlite_shop(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "CREATE TABLE carts (id INTEGER PRIMARY KEY, stale INTEGER);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, cart INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
         INSERT INTO carts SELECT i, i % 2 FROM n;",
    )
    .unwrap();
}

fn carts(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM carts", [], |r| r.get(0))
        .unwrap()
}

/// Deletes in development: confirmed (after a dry run), never more than
/// 300 rows per statement; audited.
const SQL_CONFIRM_POLICY: &str = "[[rule]]\nname = \"bulk-delete\"\noperations = [\"db.delete.*\"]\n\
    tiers = [\"development\"]\nrequire = [\"confirm\", \"audit\"]\nmax_rows = 300\n";

/// Any SQL in development, audited, never more than 100 rows a statement:
/// no confirmation, so no dry run; the bound holds at commit.
const SQL_AUDIT_POLICY: &str = "[[rule]]\nname = \"small\"\noperations = [\"db.*\"]\n\
    tiers = [\"development\"]\nrequire = [\"audit\"]\nmax_rows = 100\n";

/// Compiles tests/c/sql.c (with `flags`) into a fresh directory holding a
/// shop database and both policies: (dir, program, db, confirm policy,
/// audit policy).
fn sql_program(
    name: &str,
    flags: &[&str],
) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf, PathBuf) {
    let dir = workdir(name);
    let program = dir.path().join("sql");
    compile("sql.c", &program, flags);
    let db = dir.path().join("shop.db");
    sqlite_shop(&db);
    let confirm = dir.path().join("confirm.toml");
    std::fs::write(&confirm, SQL_CONFIRM_POLICY).unwrap();
    let audit = dir.path().join("audit.toml");
    std::fs::write(&audit, SQL_AUDIT_POLICY).unwrap();
    (dir, program, db, confirm, audit)
}

/// Runs tests/c/sql.c (under `wrapper`) with `policy`, `db` and `args`.
fn run_sql(
    program: &Path,
    policy: &Path,
    db: &Path,
    args: &[&str],
    wrapper: &[&str],
    log: &Path,
) -> SqlRun {
    let mut argv = vec![policy.to_str().unwrap(), db.to_str().unwrap()];
    argv.extend_from_slice(args);
    let out = run_with(program, &argv, wrapper, log);
    assert_succeeded(&out);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .to_owned()
    };
    let all = |key: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(key).map(str::to_owned))
            .collect()
    };
    SqlRun {
        status: value("status=").parse().unwrap(),
        rows: value("rows="),
        asked: value("asked=").parse().unwrap(),
        consequences: all("consequence="),
        questions: all("question="),
        after: value("after="),
        error: stdout
            .lines()
            .find_map(|l| l.strip_prefix("error="))
            .unwrap_or("")
            .to_owned(),
    }
}

fn audit_records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every guarded-SQL case through the C ABI on one SQLite file, the C
/// program built with `flags` and run under `wrapper`.
fn sql_scenarios(name: &str, wrapper: &[&str], flags: &[&str]) {
    let (dir, program, db, confirm, audit) = sql_program(name, flags);
    let log = dir.path().join("audit.jsonl");
    let run = |policy: &Path, args: &[&str]| run_sql(&program, policy, &db, args, wrapper, &log);

    // (a) 500 rows: over max_rows (300) in the dry run, refused before
    // anyone is asked; nothing deleted, the counted rows given back.
    let over = run(&confirm, &["DELETE FROM carts WHERE id > 0"]);
    assert_eq!(over.status, 120, "{}", over.error);
    assert_eq!(over.rows, "[500]");
    assert_eq!(over.asked, 0, "nobody is asked");
    assert!(over.error.contains("500 rows"), "{}", over.error);
    assert_eq!(carts(&db), 500);

    // Declined after the dry run: 121, nothing deleted, the dry run's rows.
    let declined = run(&confirm, &["DELETE FROM carts WHERE stale = 1", "decline"]);
    assert_eq!(declined.status, 121, "{}", declined.error);
    assert_eq!(declined.rows, "[250]");
    assert_eq!(declined.asked, 1);
    assert_eq!(carts(&db), 500);

    // (b) Within bounds, confirmed through the callback, which saw the
    // consequences (and the db path as the target); committed.
    let script =
        "BEGIN;\nDELETE FROM carts WHERE stale = 1;\nINSERT INTO orders VALUES (1, 2);\nCOMMIT;";
    let ok = run(&confirm, &[script]);
    assert_eq!(ok.status, 0, "{}", ok.error);
    assert_eq!(ok.rows, "[0,250,1,0]");
    assert_eq!(ok.asked, 1);
    assert_eq!(
        ok.questions,
        [format!(
            "db.delete.where on {}, expecting {}",
            db.display(),
            db.display()
        )]
    );
    assert_eq!(
        ok.consequences,
        [
            "statement 1 (line 2, db.delete.where on carts): 250 rows",
            "statement 2 (line 3, db.insert on orders): 1 row",
        ]
    );
    assert_eq!(ok.after, "NULL", "only during the callback");
    assert_eq!(carts(&db), 250);

    // A target named: what the callback is asked to type.
    let named = run(&confirm, &["DELETE FROM carts WHERE id = 2", "target=shop"]);
    assert_eq!(named.status, 0, "{}", named.error);
    assert_eq!(named.questions, ["db.delete.where on shop, expecting shop"]);
    assert_eq!(carts(&db), 249);

    // (c) A dry run of a delete over every bound: OK, nothing deleted,
    // nobody asked, the rows counted.
    let dry = run(&confirm, &["DELETE FROM carts", "dry"]);
    assert_eq!(dry.status, 0, "{}", dry.error);
    assert_eq!(dry.rows, "[249]");
    assert_eq!(dry.asked, 0);
    assert_eq!(carts(&db), 249);

    // (d) The second statement fails: the first's delete is rolled back
    // (here in the dry run, before anyone is asked).
    let failing = "DELETE FROM carts WHERE id <= 10;\nINSERT INTO nowhere VALUES (1)";
    let failed = run(&confirm, &[failing]);
    assert_eq!(
        failed.status, 1,
        "PRODGUARD_OPERATION_FAILED: {}",
        failed.error
    );
    assert_eq!(failed.rows, "NULL");
    assert!(failed.error.contains("nowhere"), "{}", failed.error);
    assert!(
        failed.error.contains("nothing was changed"),
        "{}",
        failed.error
    );
    assert_eq!(failed.asked, 0);
    assert_eq!(carts(&db), 249);
    // Without a dry run, in the real run: the same, and recorded.
    let failed = run(&audit, &[failing]);
    assert_eq!(failed.status, 1, "{}", failed.error);
    assert_eq!(failed.rows, "NULL");
    assert_eq!(carts(&db), 249);

    // Over max_rows at commit (no dry run here): rolled back, refused
    // with 120, the rows of the rolled-back run given back.
    let bound = run(&audit, &["DELETE FROM carts WHERE id <= 300"]);
    assert_eq!(bound.status, 120, "{}", bound.error);
    assert_eq!(bound.rows, "[149]");
    assert!(bound.error.contains("rolled back"), "{}", bound.error);
    assert_eq!(carts(&db), 249);

    // (e) NULLs, bad UTF-8, a missing database: checked in C.
    let out = run_with(
        &program,
        &[confirm.to_str().unwrap(), db.to_str().unwrap(), "invalid"],
        wrapper,
        &log,
    );
    assert_succeeded(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("all expectations held"));
    assert_eq!(carts(&db), 249, "the invalid runs changed nothing");

    // (f) The audit log: each run's intent and outcome, with the rows.
    let records = audit_records(&log);
    let outcome = |status: &str| {
        records
            .iter()
            .filter(|r| r["outcome"]["status"] == status)
            .collect::<Vec<_>>()
    };
    let committed = outcome("ok");
    assert_eq!(
        committed[0]["outcome"]["rows"],
        serde_json::json!([0, 250, 1, 0])
    );
    let intent = records
        .iter()
        .find(|r| {
            r["kind"] == "intent" && r["sql"]["dry_run_rows"] == serde_json::json!([0, 250, 1, 0])
        })
        .unwrap_or_else(|| panic!("no intent of the committed run: {records:?}"));
    assert_eq!(intent["confirm"]["method"], "callback");
    assert_eq!(intent["op"]["kind"], "db.delete.where");
    assert_eq!(intent["op"]["target"], db.to_str().unwrap());
    assert_eq!(intent["sql"]["dialect"], "sqlite");
    assert_eq!(
        outcome("dry_run")[0]["outcome"]["rows"],
        serde_json::json!([249])
    );
    let rolled_back = outcome("rolled_back");
    assert_eq!(rolled_back[0]["outcome"]["rows"], serde_json::json!([149]));
    assert_eq!(rolled_back[0]["outcome"]["exit_code"], 120);
    let failed = outcome("failed");
    assert_eq!(failed.len(), 1, "the dry run's failure is a refusal record");
    assert!(
        failed[0]["outcome"]["error"]
            .as_str()
            .unwrap()
            .contains("nowhere"),
        "{}",
        failed[0]
    );
    let refusals: Vec<_> = records.iter().filter(|r| r["kind"] == "refusal").collect();
    assert_eq!(
        refusals.len(),
        3,
        "over max_rows, declined, and the failed dry run: {refusals:?}"
    );
    assert_eq!(refusals[0]["decision"]["exit_code"], 120);
    assert_eq!(refusals[0]["sql"]["dry_run_rows"], serde_json::json!([500]));
    assert_eq!(refusals[2]["decision"]["result"], "failed");
    // Nothing else: every intent has its outcome.
    let intents = records.iter().filter(|r| r["kind"] == "intent").count();
    let outcomes = records.iter().filter(|r| r["kind"] == "outcome").count();
    assert_eq!((intents, outcomes), (6, 6), "{records:?}");
}

#[test]
fn guarded_sql_from_c_refuses_confirms_dry_runs_and_rolls_back() {
    sql_scenarios("sql", &[], &[]);
}

#[test]
fn guarded_sql_from_c_passes_under_asan_and_ubsan() {
    sql_scenarios(
        "sql-asan",
        &[],
        &["-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
    );
}

#[test]
fn guarded_sql_from_c_passes_under_valgrind() {
    sql_scenarios(
        "sql-vg",
        &[
            "valgrind",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ],
        &[],
    );
}
