//! Fleet locks against a real PostgreSQL server, directly and through
//! PgBouncer in transaction pooling: processes taking the lock of one
//! (operation, target) never hold it at the same time; a refusal names the
//! holder; a holder that dies frees the lock once its lease runs out; each
//! grant's fence is larger than the last.
//!
//! Needs `eval $(scripts/pg-cluster start)` (PRODGUARD_TEST_PG) and
//! `eval $(scripts/pg-bouncer start)` (PRODGUARD_TEST_PGBOUNCER) first.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use std::time::{Duration, Instant};

use pg_common::*;
use prodguard::pg::{FleetLock, LockError};

const ROUNDS: &str = "PRODGUARD_PGTEST_ROUNDS";

#[test]
fn child() {
    let Some(role) = child_role() else {
        return;
    };
    let url = std::env::var(URL).unwrap();
    let locks = FleetLock::new(&url)
        .unwrap()
        .holder(format!("child {}", std::process::id()));
    match role.as_str() {
        // Takes the lock `rounds` times, holding it 100 ms each time, and
        // prints the interval it held it (µs since the epoch).
        "hold" => {
            let rounds: usize = std::env::var(ROUNDS).unwrap().parse().unwrap();
            wait_for_start();
            for _ in 0..rounds {
                let held = locks
                    .acquire("db.migrate", "orders", Some(Duration::from_secs(60)))
                    .unwrap();
                let from = now_micros();
                std::thread::sleep(Duration::from_millis(100));
                let to = now_micros();
                held.release().unwrap();
                println!("RESULT {from} {to}");
            }
        }
        // Whole guarded operations under a policy naming the lock and the
        // trail (`[fleet] lock`, `[audit] sink`), each held 100 ms.
        "guard" => {
            let rounds: usize = std::env::var(ROUNDS).unwrap().parse().unwrap();
            let policy = prodguard::Policy::parse_toml(
                &format!(
                    "[audit]\nsink = {url:?}\n\n[fleet]\nlock = {url:?}\nwait = \"1m\"\n\n\
                     [[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\n\
                     require = [\"confirm\", \"audit\"]\n"
                ),
                "prodguard.toml",
            )
            .unwrap();
            let guard = confirmed_production_guard().policy(policy).build().unwrap();
            wait_for_start();
            for _ in 0..rounds {
                let (from, to) = guard
                    .operation("db.migrate")
                    .target("orders")
                    .run_infallible(|| {
                        let from = now_micros();
                        std::thread::sleep(Duration::from_millis(100));
                        (from, now_micros())
                    })
                    .unwrap();
                println!("RESULT {from} {to}");
            }
        }
        // Takes the lock (a 1 s lease) and keeps it until killed.
        "hold-and-die" => {
            let held = locks
                .lease(Duration::from_secs(1))
                .acquire("db.reset", "cache", None)
                .unwrap();
            println!("RESULT held {}", held.fence());
            std::thread::sleep(Duration::from_secs(120));
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn two_processes_on_the_same_operation_and_target_never_overlap() {
    assert_never_overlap("hold", &fresh_db("lock_overlap"));
}

#[test]
fn two_processes_through_pgbouncer_never_overlap() {
    assert_never_overlap("hold", &through_pgbouncer(&fresh_db("lock_bouncer")));
}

/// The rig can see a broken lock: through the pooler, two clients share one
/// server session, so a session advisory lock (fleet mode's lock before
/// leases) is granted to both.
#[test]
fn through_pgbouncer_a_session_advisory_lock_is_not_exclusive() {
    let url = through_pgbouncer(&fresh_db("lock_bouncer_advisory"));
    let (mut a, mut b) = (connect(&url), connect(&url));
    let take = |c: &mut postgres::Client| -> bool {
        c.query_one("SELECT pg_try_advisory_lock(42)", &[])
            .unwrap()
            .get(0)
    };
    assert!(take(&mut a));
    assert!(take(&mut b), "the pooler gave b its own session");
}

#[test]
fn two_guarded_processes_under_a_fleet_policy_never_overlap() {
    assert_guarded_runs_never_overlap(&fresh_db("lock_overlap_guard"));
}

/// The trail and the lock both through the pooler.
#[test]
fn two_guarded_processes_through_pgbouncer_never_overlap() {
    assert_guarded_runs_never_overlap(&through_pgbouncer(&fresh_db("lock_bouncer_guard")));
}

fn assert_guarded_runs_never_overlap(url: &str) {
    assert_never_overlap("guard", url);
    // The shared trail: every intent is followed by its own outcome before
    // the next intent (the lock covers intent to outcome), chain intact.
    let rows = connect(url)
        .query("SELECT record FROM prodguard_audit ORDER BY id", &[])
        .unwrap();
    let records: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
        .collect();
    assert_eq!(records.len(), 16);
    let mut fences = Vec::new();
    for pair in records.chunks(2) {
        assert_eq!(pair[0]["kind"], "intent");
        assert_eq!(pair[1]["kind"], "outcome");
        assert_eq!(pair[0]["attempt_id"], pair[1]["attempt_id"]);
        fences.push(
            pair[0]["fence"]
                .as_u64()
                .expect("an intent names its fence"),
        );
    }
    // Each grant's fence is larger than the one before.
    assert!(fences.windows(2).all(|f| f[0] < f[1]), "{fences:?}");
    let server = prodguard::pg::PgServer::parse(url).unwrap();
    assert!(prodguard::pg::verify(&server, None).unwrap().intact());
}

/// Two children in `role` take the lock 4 times each; the intervals they
/// held it (printed by each) never overlap, and they alternate at least once.
fn assert_never_overlap(role: &str, url: &str) {
    let rounds = 4;
    let start_at = now_micros() + 2_000_000;
    let children: Vec<_> = (0..2)
        .map(|_| {
            spawn_child(
                role,
                url,
                &[
                    (ROUNDS, rounds.to_string()),
                    (START_AT, start_at.to_string()),
                ],
            )
        })
        .collect();
    let mut intervals: Vec<(i64, i64, usize)> = Vec::new();
    for (who, child) in children.into_iter().enumerate() {
        let lines = results(child);
        assert_eq!(lines.len(), rounds, "{lines:?}");
        for line in lines {
            let (from, to) = line.split_once(' ').unwrap();
            intervals.push((from.parse().unwrap(), to.parse().unwrap(), who));
        }
    }
    intervals.sort();
    for pair in intervals.windows(2) {
        let ((_, end, a), (start, _, b)) = (pair[0], pair[1]);
        assert!(
            start >= end,
            "process {a} held the lock until {end} but process {b} got it at {start}: {intervals:?}"
        );
    }
    // Both really competed: the holders alternate at least once.
    assert!(
        intervals.windows(2).any(|p| p[0].2 != p[1].2),
        "{intervals:?}"
    );
}

#[test]
fn a_second_acquire_refuses_naming_the_holder_or_waits_for_it() {
    let url = fresh_db("lock_refuse");
    let first = FleetLock::new(&url).unwrap().holder("deploy 42 on web-3");
    let second = FleetLock::new(&url).unwrap().holder("deploy 43 on web-7");
    let held = first.acquire("db.migrate", "orders", None).unwrap();

    // Not waiting: refused at once, naming who holds it.
    let err = second.acquire("db.migrate", "orders", None).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LockError::Held { .. }), "{text}");
    assert!(text.contains("deploy 42 on web-3 since "), "{text}");
    assert!(text.contains("`db.migrate` on `orders`"), "{text}");

    // Waiting a while: refused once the wait is over.
    let started = Instant::now();
    let err = second
        .acquire("db.migrate", "orders", Some(Duration::from_millis(400)))
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(err.to_string().contains("deploy 42 on web-3"), "{err}");
    assert!(err.to_string().contains("waited"), "{err}");

    // Another target or operation is not blocked; releasing is prompt
    // (it does not wait for the lease's next renewal).
    let started = Instant::now();
    drop(second.acquire("db.migrate", "users", None).unwrap());
    drop(second.acquire("db.seed", "orders", None).unwrap());
    assert!(started.elapsed() < Duration::from_secs(2));

    // Waiting for a holder that finishes meanwhile: acquired.
    let waiter = std::thread::spawn(move || {
        second
            .acquire("db.migrate", "orders", Some(Duration::from_secs(30)))
            .map(|g| g.operation().to_owned())
    });
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    assert_eq!(waiter.join().unwrap().unwrap(), "db.migrate");

    // No lease is current once released.
    let rows: i64 = connect(&url)
        .query_one(
            "SELECT count(*) FROM prodguard_lease WHERE until > now()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[test]
fn a_held_lease_is_renewed_and_a_lost_one_is_told() {
    let url = fresh_db("lock_lease");
    let ana = FleetLock::new(&url)
        .unwrap()
        .holder("ana")
        .lease(Duration::from_millis(600));
    let bob = FleetLock::new(&url).unwrap().holder("bob");
    let mut held = ana.acquire("db.migrate", "orders", None).unwrap();
    // Three leases later it is still ana's: renewed while held.
    std::thread::sleep(Duration::from_millis(1800));
    let err = bob.acquire("db.migrate", "orders", None).unwrap_err();
    assert!(err.to_string().contains("held by ana since "), "{err}");
    assert!(held.still_held().unwrap());
    // Its lease runs out (ana was paused, or cut off from the server) and
    // bob takes it, with the next fence: ana is told it is gone.
    connect(&url)
        .execute(
            "UPDATE prodguard_lease SET until = now() - interval '1 second'",
            &[],
        )
        .unwrap();
    let bobs = bob.acquire("db.migrate", "orders", None).unwrap();
    assert_eq!(bobs.fence(), held.fence() + 1);
    assert!(!held.still_held().unwrap());
    // Ana's release ends nothing of bob's.
    held.release().unwrap();
    let err = ana.acquire("db.migrate", "orders", None).unwrap_err();
    assert!(err.to_string().contains("held by bob"), "{err}");
}

#[test]
fn a_holder_that_dies_frees_the_lock() {
    let url = fresh_db("lock_die");
    let mut child = spawn_child("hold-and-die", &url, &[]);
    let childs_fence: u64 = wait_for_line(&mut child, "held")[5..].parse().unwrap();
    let locks = FleetLock::new(&url).unwrap();
    let err = locks.acquire("db.reset", "cache", None).unwrap_err();
    assert!(
        err.to_string().contains(&format!("child {}", child.id())),
        "{err}"
    );
    child.kill().unwrap();
    let killed = Instant::now();
    child.wait().unwrap();
    // Nobody renews its lease now: it runs out within its second.
    let mut held = locks
        .acquire("db.reset", "cache", Some(Duration::from_secs(20)))
        .unwrap();
    assert!(killed.elapsed() < Duration::from_secs(5));
    assert!(held.still_held().unwrap());
    assert_eq!(held.fence(), childs_fence + 1);
    let holder: String = connect(&url)
        .query_one("SELECT holder FROM prodguard_lease", &[])
        .unwrap()
        .get(0);
    assert!(
        holder.contains(&format!("pid {}", std::process::id())),
        "{holder}"
    );
}
