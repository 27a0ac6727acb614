//! The trust model, attacked as the application's own account would: with
//! a system layer in `/etc/prodguard` (root's, made in a private mount
//! namespace over an overlay of `/etc`, so the real `/etc` is untouched),
//! every variable, file in the working directory and argument the caller
//! controls points somewhere else — and the system's rules, marker and
//! audit log still hold.
//!
//! These tests need root (CI runs as root) and `unshare`; elsewhere they
//! pass without running, except under `CI=true`, where that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_prodguard");

/// Mounts an overlay over `/etc` whose upper layer holds `prodguard/`, then
/// runs the command in a new session (no controlling terminal).
const IN_NAMESPACE: &str = r#"mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc || exit 99
shift 2
exec setsid -w "$@""#;

fn system_policy(dir: &Path) -> String {
    format!(
        r#"[audit]
log = "{}/system-audit.jsonl"

[[rule]]
name = "system: production needs a person"
operations = ["*"]
tiers = ["production", "unknown"]
require = ["confirm", "audit"]

[[rule]]
name = "system: staging notes are audited"
operations = ["app.note"]
tiers = ["staging"]
require = ["audit"]
"#,
        dir.display()
    )
}

/// A policy of the attacker's own: one rule that matches nothing.
const MINE: &str = "[[rule]]\nname = \"mine\"\noperations = [\"nothing.at.all\"]\ntiers = [\"local\"]\nrequire = [\"audit\"]\n";

/// A policy of one's own that asks for a confirmation in production.
const CONFIRM_IN_PRODUCTION: &str =
    "[[rule]]\noperations = [\"*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\"]\n";

struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    /// A host whose system layer holds `policy` and the marker `marker`;
    /// `None` where namespaces cannot be made (not root).
    fn new(marker: &str) -> Option<Host> {
        let root = nix::unistd::geteuid().is_root();
        let unshare = Command::new("unshare")
            .args(["--mount", "true"])
            .status()
            .is_ok_and(|s| s.success());
        if !(root && unshare) {
            assert!(
                std::env::var_os("CI").is_none(),
                "the trust model's tests need root and unshare(1); CI runs as root"
            );
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("prodguard-trust-")
            .tempdir()
            .unwrap();
        let host = Host { dir };
        for sub in ["upper/prodguard", "work", "home"] {
            std::fs::create_dir_all(host.path(sub)).unwrap();
        }
        std::fs::set_permissions(
            host.path("upper/prodguard"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        host.write_system("policy.toml", &system_policy(host.dir.path()));
        host.write_system("environment", marker);
        Some(host)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_system(&self, name: &str, text: &str) {
        let path = self.system_file(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn system_file(&self, name: &str) -> PathBuf {
        self.path("upper/prodguard").join(name)
    }

    fn home(&self, name: &str) -> PathBuf {
        self.path("home").join(name)
    }

    /// `prodguard ARGS` as the account `nobody`, with no variables set.
    fn run_as_nobody(&self, args: &[&str]) -> Output {
        let mut all = vec![BIN];
        all.extend(args);
        self.run_command(
            &[],
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ],
            &all,
        )
    }

    /// `prodguard ARGS` with only `vars` set, in the home directory.
    fn run(&self, vars: &[(&str, &str)], args: &[&str]) -> Output {
        let mut all = vec![BIN];
        all.extend(args);
        self.run_command(vars, &[], &all)
    }

    fn run_command(&self, vars: &[(&str, &str)], prefix: &[&str], args: &[&str]) -> Output {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(IN_NAMESPACE)
            .arg("sh")
            .arg(self.path("upper"))
            .arg(self.path("work"))
            .args(prefix)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", self.path("home"))
            .env("PRODGUARD_ACTOR", "carol")
            .current_dir(self.path("home"))
            .stdin(Stdio::null());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_ne!(
            out.status.code(),
            Some(99),
            "overlay mount: {}",
            stderr(&out)
        );
        out
    }

    fn records(&self, path: &Path) -> Vec<serde_json::Value> {
        match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn system_records(&self) -> Vec<serde_json::Value> {
        self.records(&self.path("system-audit.jsonl"))
    }
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited normally")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    stdout(&out).split_whitespace().next().unwrap().to_owned()
}

#[test]
fn a_policy_of_ones_own_cannot_switch_the_guards_off() {
    let Some(host) = Host::new("production\n") else {
        return;
    };
    std::fs::write(host.home("mine.toml"), MINE).unwrap();
    let ran = host.home("ran");
    let mine = host.home("mine.toml").display().to_string();
    let attempt = |way: &str, vars: &[(&str, &str)], policy_arg: &[&str]| {
        let ran_path = ran.display().to_string();
        let mut args = policy_arg.to_vec();
        args.extend([
            "exec",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--",
            "touch",
        ]);
        args.push(&ran_path);
        let out = host.run(vars, &args);
        assert_eq!(code(&out), 121, "{way}: {}", stderr(&out));
        assert!(!ran.exists(), "{way}: the command must not run");
    };
    attempt("PRODGUARD_POLICY", &[("PRODGUARD_POLICY", &mine)], &[]);
    attempt("--policy", &[], &["--policy", &mine]);
    // ./prodguard.toml in the working directory.
    std::fs::write(host.home("prodguard.toml"), MINE).unwrap();
    attempt("./prodguard.toml", &[], &[]);

    // Every refusal is in the system's log, naming the policy in force:
    // the system policy (with the SHA-256 of its bytes) first.
    let records = host.system_records();
    assert_eq!(records.len(), 3, "{records:#?}");
    let system_sha = sha256_of(&host.system_file("policy.toml"));
    for record in &records {
        assert_eq!(record["kind"], "refusal");
        let sources = record["decision"]["policy"].as_array().unwrap();
        assert_eq!(sources[0]["path"], "/etc/prodguard/policy.toml");
        assert_eq!(sources[0]["sha256"], system_sha.as_str());
        assert_eq!(sources[0]["system"], true);
        assert_eq!(sources.len(), 2, "and the caller's own file: {sources:?}");
        assert_eq!(
            sources[1]["sha256"],
            sha256_of(&host.home("mine.toml")).as_str()
        );
    }
}

#[test]
fn without_a_system_layer_the_same_attack_works_and_prodguard_says_so() {
    // The control for the test above: no namespace, no /etc/prodguard.
    if Path::new("/etc/prodguard").exists() {
        return; // A machine with a real system layer: nothing to show.
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.toml"), MINE).unwrap();
    let run = |args: &[&str]| {
        Command::new("setsid")
            .arg("-w")
            .arg(BIN)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", dir.path())
            .env("APP_ENV", "production")
            .env("PRODGUARD_POLICY", dir.path().join("mine.toml"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let exec = [
        "exec",
        "--op",
        "db.migrate",
        "--target",
        "orders",
        "--",
        "true",
    ];
    let out = run(&exec);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // A refusal under a policy nobody protects says so.
    std::fs::write(dir.path().join("mine.toml"), CONFIRM_IN_PRODUCTION).unwrap();
    let out = run(&exec);
    assert_eq!(code(&out), 121, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("note: the policy is unprotected"), "{err}");
    let out = run(&["detect"]);
    assert!(
        stdout(&out).contains("warning:     the policy is unprotected"),
        "{}",
        stdout(&out)
    );
    let out = run(&["check", "--op", "db.migrate", "--json"]);
    let check = common::answer(&out);
    assert_eq!(check["policy"]["anchored"], false);
    assert!(
        check["policy"]["unprotected"]
            .as_str()
            .unwrap()
            .contains("install /etc/prodguard/policy.toml")
    );
}

/// Makes a FIFO at `path`: what reading blocks on until someone writes.
fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[test]
fn a_marker_that_is_a_fifo_cannot_hang_detection() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ENV");
    mkfifo(&fifo);
    std::fs::write(
        dir.path().join("mine.toml"),
        format!(
            "[environment]\nmarker_file = \"{}\"\n\n{MINE}",
            fifo.display()
        ),
    )
    .unwrap();
    let out = Command::new("timeout")
        .args(["20", BIN, "detect", "--json"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("PRODGUARD_POLICY", dir.path().join("mine.toml"))
        .env("APP_ENV", "development")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let detection = common::answer(&out);
    // What it names is no tier: the answer fails closed.
    assert_eq!(detection["tier"], "unknown", "{detection:#}");
}

#[test]
fn moving_the_marker_file_does_not_hide_the_system_marker() {
    let Some(host) = Host::new("production\n") else {
        return;
    };
    std::fs::write(host.home("ENV"), "development\n").unwrap();
    std::fs::write(
        host.home("mine.toml"),
        format!(
            "[environment]\nmarker_file = \"{}\"\n\n{MINE}",
            host.home("ENV").display()
        ),
    )
    .unwrap();
    let mine = host.home("mine.toml").display().to_string();
    let out = host.run(
        &[
            ("PRODGUARD_POLICY", mine.as_str()),
            ("PRODGUARD_ENV", "development"),
            ("APP_ENV", "development"),
        ],
        &["detect", "--json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let detection = common::answer(&out);
    assert_eq!(detection["tier"], "production", "{detection:#}");
    assert_eq!(detection["decided_by"], "file:/etc/prodguard/environment");
    assert_eq!(detection["policy"]["anchored"], true);
    assert!(detection["policy"]["unprotected"].is_null());
}

#[test]
fn a_policy_that_would_loosen_the_system_policy_is_refused_with_125() {
    let Some(host) = Host::new("production\n") else {
        return;
    };
    for (text, says) in [
        (
            "[environment]\nunknown = \"development\"\n",
            "[environment] unknown",
        ),
        (
            "[environment]\naliases = { \"shadow\" = \"development\" }\n",
            "aliases",
        ),
        ("[audit]\ndurability = \"none\"\n", "durability"),
    ] {
        std::fs::write(host.home("mine.toml"), format!("{text}\n{MINE}")).unwrap();
        let mine = host.home("mine.toml").display().to_string();
        let out = host.run(
            &[("PRODGUARD_POLICY", mine.as_str())],
            &["check", "--op", "db.migrate", "--target", "orders"],
        );
        assert_eq!(code(&out), 125, "{text}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{err}");
        assert!(
            err.contains("only the system policy (/etc/prodguard/policy.toml)"),
            "{err}"
        );
        // `policy check` says so before anyone relies on the file.
        let out = host.run(&[], &["policy", "check", &mine]);
        assert_eq!(code(&out), 125, "{text}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    std::fs::write(host.home("mine.toml"), MINE).unwrap();
    let mine = host.home("mine.toml").display().to_string();
    let out = host.run(&[], &["policy", "check", &mine]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("layered over /etc/prodguard/policy.toml"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_audit_log_can_be_copied_but_not_moved() {
    let Some(host) = Host::new("staging\n") else {
        return;
    };
    let mine = host.home("mine.jsonl");
    let out = host.run(
        &[("PRODGUARD_AUDIT_LOG", mine.to_str().unwrap())],
        &[
            "exec", "--op", "app.note", "--target", "notes", "--", "true",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let kinds = |records: &[serde_json::Value]| -> Vec<String> {
        records
            .iter()
            .map(|r| r["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let system = host.system_records();
    assert_eq!(kinds(&system), ["intent", "outcome"], "the system's log");
    assert_eq!(
        kinds(&host.records(&mine)),
        ["intent", "outcome"],
        "the copy"
    );
    assert_eq!(system[0]["actor"]["user"], "carol", "a label");
    assert_eq!(system[0]["actor"]["account"], "root", "the identity");
    // `audit verify` checks the system's log, not the caller's.
    let out = host.run(
        &[("PRODGUARD_AUDIT_LOG", mine.to_str().unwrap())],
        &["audit", "verify"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("system-audit.jsonl") || stderr(&out).contains("system-audit.jsonl"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // A "copy" that is the system's log under another spelling is not a
    // second copy: every record is written once.
    let respelled = host.path("home/../system-audit.jsonl");
    let out = host.run(
        &[("PRODGUARD_AUDIT_LOG", respelled.to_str().unwrap())],
        &[
            "exec", "--op", "app.note", "--target", "notes", "--", "true",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let system = host.system_records();
    assert_eq!(
        kinds(&system),
        ["intent", "outcome", "intent", "outcome"],
        "{system:#?}"
    );
}

#[test]
fn a_local_rule_cannot_lower_the_system_rules_confirmation_either_way() {
    let Some(host) = Host::new("production\n") else {
        return;
    };
    // A typed rule cannot spare a system rule's token, nor a token rule a
    // system rule's person at a terminal (a token an unattended job could
    // hold): the two add up to both.
    for (system, local) in [("approval", "typed"), ("typed", "approval")] {
        host.write_system(
            "policy.toml",
            &system_policy(host.dir.path()).replace(
                "require = [\"confirm\", \"audit\"]\n",
                &format!(
                    "require = [\"confirm\", \"audit\"]\nconfirm = {{ mode = \"{system}\" }}\n"
                ),
            ),
        );
        std::fs::write(
            host.home("prodguard.toml"),
            format!(
                "[[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\"]\nconfirm = {{ mode = \"{local}\" }}\n"
            ),
        )
        .unwrap();
        let args = [
            "check",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--json",
        ];
        let out = host.run(&[], &args);
        let check = common::answer(&out);
        let how = check["decision"]["requirements"][0]["how"]
            .as_str()
            .unwrap();
        assert!(
            how.starts_with("an approval token"),
            "{system}/{local}: {check:#}"
        );
        assert!(how.contains("and typing"), "{system}/{local}: {check:#}");
    }
}

#[test]
fn an_unreadable_system_policy_is_blamed_on_itself() {
    let Some(host) = Host::new("production\n") else {
        return;
    };
    let path = host.system_file("policy.toml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = host.run_as_nobody(&["check", "--op", "db.migrate"]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("chmod 644 /etc/prodguard/policy.toml"),
        "{err}"
    );
    assert!(!err.contains("PRODGUARD_POLICY"), "{err}");
}

#[test]
fn a_system_layer_anyone_else_can_change_is_refused_with_125() {
    for (name, mode, owner, says) in [
        ("policy.toml", 0o664, None, "writable by its group"),
        ("environment", 0o666, None, "writable by others"),
        (
            "policy.toml",
            0o644,
            Some(65534),
            "owned by uid 65534, not root",
        ),
    ] {
        let Some(host) = Host::new("production\n") else {
            return;
        };
        let path = host.system_file(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&path, Some(uid), None).unwrap();
        }
        for args in [&["detect"][..], &["check", "--op", "db.migrate"][..]] {
            let out = host.run(&[], args);
            assert_eq!(
                code(&out),
                125,
                "{name} {mode:o} {args:?}: {}",
                stderr(&out)
            );
            let err = stderr(&out);
            assert!(err.contains(says), "{err}");
            assert!(err.contains(&format!("/etc/prodguard/{name}")), "{err}");
        }
    }
}

/// An approver's key pair made with `keygen` in the home directory; its
/// public key.
fn keygen(host: &Host, name: &str) -> String {
    let file = host.home(&format!("{name}.key")).display().to_string();
    let out = host.run(&[], &["keygen", "--approver", name, "--out", &file]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

/// A token from `approve` with `name`'s key for db.migrate on orders in
/// production.
fn approve(host: &Host, name: &str) -> String {
    let file = host.home(&format!("{name}.key")).display().to_string();
    let out = host.run(
        &[],
        &[
            "approve",
            "--key",
            &file,
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--env",
            "production",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

#[test]
fn only_the_system_policys_approvers_count_and_a_token_is_spent_once_wherever_the_log_points() {
    let Some(host) = Host::new("production\n") else {
        return;
    };
    let alice = keygen(&host, "alice");
    let bob = keygen(&host, "bob");
    // alice is someone else; bob's OS account is the one the tests run as.
    let approval = format!(
        "[approval]\nfour_eyes = true\napprovers = {{ alice = {{ key = \"{alice}\", user = \"nobody\" }}, \
         bob = {{ key = \"{bob}\", user = \"root\" }} }}\n\n"
    );
    host.write_system(
        "policy.toml",
        &format!("{approval}{}", system_policy(host.dir.path())),
    );
    let ran = host.home("ran");
    let exec = |vars: &[(&str, &str)], token: &str| {
        let _ = std::fs::remove_file(&ran);
        let ran_path = ran.display().to_string();
        let args = [
            "exec",
            "--op",
            "db.migrate",
            "--target",
            "orders",
            "--approval",
            token,
            "--",
            "touch",
            &ran_path,
        ];
        let out = host.run(vars, &args);
        (code(&out), stderr(&out), ran.exists())
    };

    // Someone else's token runs once.
    let token = approve(&host, "alice");
    let mine1 = host.home("mine1.jsonl").display().to_string();
    let (code1, err, did_run) = exec(&[("PRODGUARD_AUDIT_LOG", &mine1)], &token);
    assert_eq!((code1, did_run), (0, true), "{err}");
    // A replay through a fresh log, or a policy of one's own, is refused:
    // the nonce was spent in the system's log.
    std::fs::write(host.home("mine.toml"), MINE).unwrap();
    let mine_policy = host.home("mine.toml").display().to_string();
    let mine2 = host.home("mine2.jsonl").display().to_string();
    for vars in [
        vec![("PRODGUARD_AUDIT_LOG", mine2.as_str())],
        vec![("PRODGUARD_POLICY", mine_policy.as_str())],
        vec![("XDG_STATE_HOME", mine2.as_str())],
    ] {
        let (code2, err, did_run) = exec(&vars, &token);
        assert_eq!((code2, did_run), (121, false), "{vars:?}: {err}");
    }

    // bob's account is the requester's: self-approval, whatever label the
    // run gives itself.
    let token = approve(&host, "bob");
    let (code3, err, did_run) = exec(&[("PRODGUARD_ACTOR", "carol")], &token);
    assert_eq!((code3, did_run), (121, false), "{err}");
    assert!(
        err.contains("four_eyes") || err.contains("four eyes"),
        "{err}"
    );

    // An approver listed only in a policy of one's own does not count: the
    // policy is refused.
    let mallory = keygen(&host, "mallory");
    std::fs::write(
        host.home("mine.toml"),
        format!(
            "[approval]\napprovers = {{ mallory = {{ key = \"{mallory}\", user = \"nobody\" }} }}\n\n{MINE}"
        ),
    )
    .unwrap();
    let (code4, err, did_run) = exec(
        &[("PRODGUARD_POLICY", &mine_policy)],
        &approve(&host, "mallory"),
    );
    assert_eq!((code4, did_run), (125, false), "{err}");
    assert!(err.contains("approvers"), "{err}");
}

#[test]
fn a_policy_path_that_is_not_a_small_regular_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("policy.fifo");
    mkfifo(&fifo);
    let huge = dir.path().join("huge.toml");
    // Valid TOML all the way: only its size is wrong.
    std::fs::write(&huge, "#".repeat(5 << 20)).unwrap();
    for (policy, says) in [
        (Path::new("/dev/zero"), "not a regular file"),
        (fifo.as_path(), "not a regular file"),
        (dir.path(), "not a regular file"),
        (huge.as_path(), "larger than 4194304 bytes"),
    ] {
        let out = Command::new("timeout")
            .args(["20", BIN, "check", "--op", "db.migrate"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("PRODGUARD_POLICY", policy)
            .env("APP_ENV", "development")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(code(&out), 125, "{}: {}", policy.display(), stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
}

#[test]
fn promotion_evidence_is_believed_only_from_a_trail_the_guarded_account_cannot_write() {
    let Some(host) = Host::new("production\n") else {
        return;
    };
    let staging_dir = host.path("staging");
    std::fs::create_dir(&staging_dir).unwrap();
    std::fs::set_permissions(&staging_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let staging_log = staging_dir.join("audit.jsonl");
    host.write_system(
        "policy.toml",
        &format!(
            "[audit]\nlog = \"{}/system-audit.jsonl\"\n\
             [promotion]\nfrom = \"staging\"\nstaging_log = \"{}\"\n\
             [[rule]]\nname = \"system: staged first\"\noperations = [\"db.migrate\"]\n\
             tiers = [\"production\"]\nrequire = [\"audit\", \"staged\"]\n",
            host.dir.path().display(),
            staging_log.display()
        ),
    );
    let migrate = [
        "exec",
        "--op",
        "db.migrate",
        "--target",
        "orders",
        "--fingerprint",
        "fp1",
        "--",
        "true",
    ];
    // Staging writes it, under a policy of its own, outside the namespace.
    let staging_policy = host.home("staging.toml");
    std::fs::write(
        &staging_policy,
        "[[rule]]\noperations = [\"*\"]\ntiers = [\"staging\"]\nrequire = [\"audit\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["exec", "--op", "db.migrate", "--target", "orders"])
        .args(["--fingerprint", "fp1", "--", "true"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("APP_ENV", "staging")
        .env("PRODGUARD_AUDIT_LOG", &staging_log)
        .env("PRODGUARD_POLICY", &staging_policy)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    std::fs::set_permissions(&staging_log, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Root's trail, staged: production runs it.
    let out = host.run(&[], &migrate);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let intent = host
        .system_records()
        .into_iter()
        .rev()
        .find(|r| r["kind"] == "intent")
        .unwrap();
    assert_eq!(intent["promotion"]["runs"][0]["fingerprint"], "fp1");

    // A trail others could have written to is no evidence (123), whatever
    // it says; so is one another account owns.
    for (mode, owner, says) in [
        (0o666, None, "writable by others"),
        (0o644, Some(65534), "owned by uid 65534, not root"),
    ] {
        std::fs::set_permissions(&staging_log, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&staging_log, owner.or(Some(0)), None).unwrap();
        let out = host.run(&[], &migrate);
        assert_eq!(code(&out), 123, "{mode:o}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{err}");
        assert!(err.contains("[promotion] staging_log"), "{err}");
    }

    // The application's own policy cannot name another trail.
    let forged = host.home("forged.toml");
    std::fs::write(
        &forged,
        format!(
            "[promotion]\nstaging_log = \"{}\"\n[[rule]]\noperations = [\"x\"]\nrequire = [\"audit\"]\n",
            host.home("forged.jsonl").display()
        ),
    )
    .unwrap();
    let out = host.run(
        &[("PRODGUARD_POLICY", &forged.display().to_string())],
        &migrate,
    );
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(stderr(&out).contains("staging_log"), "{}", stderr(&out));
}
