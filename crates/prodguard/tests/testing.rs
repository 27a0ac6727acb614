//! `prodguard::testing`: a hermetic guard reads nothing of the process that
//! runs the tests. The hostile process is real: this test binary runs its
//! own child test with production declared every way it can be, an AI
//! agent's variables, an approval token and a `./prodguard.toml` that
//! denies everything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prodguard::testing::{self, no, yes};
use prodguard::{ActorKind, Guard};

#[test]
fn a_hermetic_guard_ignores_the_environment_it_runs_in() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prodguard.toml"),
        "[[rule]]\nname = \"nothing\"\noperations = [\"*\"]\ndeny = \"everything is denied\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "hostile_process", "--nocapture"])
        .current_dir(dir.path())
        .env("PRODGUARD_ENV", "production")
        .env("APP_ENV", "production")
        .env("RAILS_ENV", "production")
        .env("CLAUDECODE", "1")
        .env("PRODGUARD_APPROVAL", "not-a-token")
        .env("PRODGUARD_ACTOR", "mallory")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
#[ignore = "run by a_hermetic_guard_ignores_the_environment_it_runs_in, in a hostile process"]
fn hostile_process() {
    // The process really is hostile: a guard from the environment sees it.
    let real = Guard::from_env().unwrap();
    assert_eq!(real.detection().environment, "production");
    assert_eq!(real.actor().kind, ActorKind::Agent);
    // The hermetic guard does not.
    let guard = testing::guard().environment("development").build().unwrap();
    assert_eq!(guard.detection().environment, "development");
    assert!(!guard.detection().protected);
    assert_eq!(guard.actor().user, "test");
    assert_eq!(guard.actor().kind, ActorKind::Human);
    assert_eq!(guard.policy().source(), "<default>");
    let value = guard
        .operation("db.drop.table")
        .target("carts")
        .run_infallible(|| 7)
        .unwrap();
    assert_eq!(value, 7);
    assert!(guard.challenges().is_empty());
    // Said nothing: an unknown environment, protected, and no terminal.
    let unknown = testing::guard().build().unwrap();
    assert!(unknown.detection().protected);
    let refused = unknown
        .operation("db.drop.table")
        .target("carts")
        .run_infallible(|| panic!("must not run"));
    let refused = refused.unwrap_err();
    assert_eq!(refused.exit_code().code(), 121);
    // PRODGUARD_APPROVAL was not read: nobody was asked, no token tried.
    let said = refused.to_string();
    assert!(!said.contains("token rejected"), "{said}");
}

#[test]
fn scripted_answers_are_used_in_order_and_every_run_is_recorded() {
    let policy = prodguard::Policy::parse_toml(
        "[[rule]]\nname = \"drops\"\noperations = [\"db.drop.*\"]\ntiers = [\"production\"]\n\
         require = [\"confirm\", \"backup\", \"audit\"]\nbackup = { command = \"false\", verify = \"false\" }\n",
        "p.toml",
    )
    .unwrap();
    let guard = testing::guard()
        .policy(policy)
        .environment("production")
        .answer(yes())
        .answer(no())
        .build()
        .unwrap();
    let drop = || guard.operation("db.drop.table").target("carts");
    assert_eq!(drop().run_infallible(|| 1).unwrap(), 1);
    assert_eq!(
        drop().run_infallible(|| 2).unwrap_err().exit_code().code(),
        121
    );
    assert_eq!(
        drop().run_infallible(|| 3).unwrap_err().exit_code().code(),
        121,
        "no answers left: nobody to ask"
    );
    assert_eq!(guard.challenges().len(), 3);
    let statuses: Vec<String> = guard
        .records()
        .iter()
        .map(|r| {
            r.outcome
                .as_ref()
                .map(|o| o.status.clone())
                .or_else(|| r.decision.as_ref().map(|d| d.result.clone()))
                .unwrap_or_else(|| format!("{:?}", r.kind))
        })
        .collect();
    assert_eq!(statuses.len(), 4, "{statuses:?}");
    assert_eq!(statuses[1], "ok", "{statuses:?}");
    // The record says how it was confirmed: by the script, not by a person.
    let confirm = guard.records()[0].confirm.clone().unwrap();
    assert_eq!(confirm.method, "scripted");
    // The rule's backup was made, in memory (its command never ran).
    let backup = guard.records().iter().find_map(|r| r.backup.clone());
    let backup = backup.unwrap_or_else(|| panic!("{:#?}", guard.records()));
    assert_eq!(backup.location, "memory:carts");
}

#[test]
fn a_batch_asks_once_listing_every_step_and_records_each_checksum() {
    use prodguard::BatchItem;
    let guard = testing::guard()
        .environment("production")
        .answer(yes())
        .build()
        .unwrap();
    let pending = vec![
        BatchItem::new("20260101_users", "9f2c01"),
        BatchItem::new("20260102_carts", "41aa02"),
    ];
    let mut applied = Vec::new();
    guard
        .operation("db.migrate")
        .target("app.db")
        .batch(pending.clone())
        .run_infallible(|| applied.extend(pending.iter().map(|m| m.name.clone())))
        .unwrap();
    assert_eq!(applied.len(), 2);
    let asked = guard.challenges();
    assert_eq!(asked.len(), 1, "one confirmation for the batch");
    assert_eq!(
        asked[0].consequences,
        [
            "1 of 2: 20260101_users (checksum 9f2c01)",
            "2 of 2: 20260102_carts (checksum 41aa02)"
        ]
    );
    let op = guard.records()[0].op.clone().unwrap();
    assert_eq!(op.batch, pending);
    assert_eq!(
        op.fingerprint.as_deref(),
        Some(prodguard_core::audit::batch_fingerprint(&pending).as_str())
    );
    // A fingerprint of its own would make the record and the approval tell
    // different stories: refused.
    let mixed = guard
        .operation("db.migrate")
        .target("app.db")
        .batch(pending.clone())
        .fingerprint("sha256:something-else")
        .run_infallible(|| ());
    assert_eq!(mixed.unwrap_err().exit_code().code(), 125);
    // The next batch is another operation: asked again, and nobody answers.
    let refused = guard
        .operation("db.migrate")
        .target("app.db")
        .batch([BatchItem::new("20260103_orders", "77bb03")])
        .run_infallible(|| ());
    assert_eq!(refused.unwrap_err().exit_code().code(), 121);
}
