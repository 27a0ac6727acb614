#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The throwaway PostgreSQL cluster the `pg_*` rows start when
//! `PRODGUARD_TEST_PG` is unset is deleted however the bench ends: here it
//! is killed with SIGKILL while a row runs.
//!
//! Needs PostgreSQL's server binaries (Debian: `apt-get install
//! postgresql`), as the fleet-mode tests do.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_throwaway_cluster_is_deleted_even_when_the_bench_is_killed() {
    let out = tempfile::Builder::new()
        .prefix("prodguard-bench-pg-")
        .tempdir()
        .unwrap();
    let mut bench = Command::new(env!("CARGO_BIN_EXE_prodguard-bench"))
        .args([
            "--smoke",
            "--no-build",
            "--only",
            "pg_lock_handover_ms",
            "--out",
        ])
        .arg(out.path().join("summary.json"))
        .env_remove("PRODGUARD_TEST_PG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(bench.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the bench ended before starting a cluster"
        );
        if line.starts_with("PostgreSQL: ") {
            break;
        }
    }
    assert!(
        line.starts_with("PostgreSQL: a throwaway cluster at postgresql://"),
        "{line}"
    );
    // The cluster's state file names its directory.
    let state = prodguard_bench::prereq::default_target_dir()
        .join("prodguard-bench")
        .join(format!("pg-cluster-{}.env", bench.id()));
    let text = std::fs::read_to_string(&state).unwrap();
    let dir = PathBuf::from(
        text.lines()
            .find_map(|l| l.strip_prefix("DIR="))
            .unwrap_or_else(|| panic!("no DIR= in {text}")),
    );
    assert!(dir.join("data").is_dir(), "{}", dir.display());

    bench.kill().unwrap();
    bench.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = state.with_extension("log");
    while dir.exists() || state.exists() || log.exists() {
        assert!(
            Instant::now() < deadline,
            "{} (or its state file or log) is still there 30 s after the bench died",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
