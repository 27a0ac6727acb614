//! prodguard's benchmark suite: every number beside the baseline a user
//! would otherwise use, measured in the same run.
//!
//! Each measurement is one function taking a [`Budget`] and returning a
//! [`Measurement`]; [`run`] runs one by name and [`run_all`] runs them all.
//! The operation each one times is a small named function (`ours_*`, and
//! `baseline_*` for what it is compared with), so a faster API can be
//! swapped in at one place.
//!
//! | name | ours | baseline | ratio |
//! |---|---|---|---|
//! | [`IS_PRODUCTION_VS_ENV_VAR`] | cached `prodguard::is_production()` | `std::env::var("APP_ENV") == "production"` | baseline time / ours |
//! | [`ALLOW_DECISION_NS`] | `decide` in development, default policy | the env-var check | ours / baseline (time) |
//! | [`PROTECTED_DECISION_100_RULES_NS`] | `decide` in production, a 100-rule policy | the same with the 1-rule default policy | ours / baseline (time) |
//! | [`DURABLE_APPEND_VS_FDATASYNC`] | `FileSink::append` (fdatasync) | `write_all` + `sync_data` of the same bytes | our rate / raw rate |
//! | [`CONCURRENT_APPEND_8_VS_1`] | 8 threads appending to one shared sink | 1 thread | 8-writer rate / 1-writer rate |
//! | [`VERIFY_VS_SHA256`] | `verify_file` over a 32 MiB log | read + SHA-256 of the file | our MB/s / baseline MB/s |
//! | [`C_CALL_VS_RUST`] | `prodguard_run` from C | `guard.operation(..).target(..).run(..)` | C time / Rust time |
//! | [`WASM_DECISION_US`] | `prodguard_evaluate` in wasmtime | `json_api::evaluate_json` natively | wasm time / native time |
//! | [`EXEC_OVERHEAD_MS`] | `prodguard exec --op app.noop -- true` | `true` | ours / baseline (time) |
//! | [`SQL_CLASSIFY_VS_PARSE`] | `sql::classify` of a 5 MB migration | sqlparser's `parse_sql` of it | baseline time / ours |
//! | [`HOOK_DECISION_MS`] | `prodguard hook claude-code` on a typical agent call | `true` | ours / baseline (time); goal on the hook's own ms |
//! | [`PG_APPEND_VS_RAW_INSERT`] | `PgAuditSink::append`, 1 writer | a prepared `INSERT` of the same row in autocommit, same server | our rate / raw rate |
//! | [`PG_APPEND_64_VS_1`] | 64 threads, each its own `PgAuditSink` | 1 thread | 64-writer rate / 1-writer rate |
//! | [`PG_LOCK_HANDOVER_MS`] | `FleetGuard::release()` returning → a waiting `FleetLock::acquire` returning | a plain advisory lock handed between two connections | ours (from `release()` called) / baseline; goal on ours in ms |
//! | [`PG_VERIFY_VS_RAW_READ`] | `prodguard::pg::verify` over a large trail | `SELECT record … ORDER BY id` of the same rows | our rows/s / baseline rows/s |
//!
//! The `pg_*` rows need a PostgreSQL server: `PRODGUARD_TEST_PG`, else a
//! throwaway cluster that [`prereq::postgres`] starts with
//! `scripts/pg-cluster` and deletes when the rows are done.
//! | [`SQL_GUARDED_DELETE_VS_RAW`] | `guard.sql(DELETE …).run(&mut conn)`, 10,000 rows of a SQLite file | the same delete in a rusqlite transaction + two `fdatasync`s | ours / baseline (time) |
//!
//! Nothing here asserts a timing: [`Measurement::holds`] says whether the
//! goal was met in this run.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod alloc;
pub mod audit;
pub mod decisions;
pub mod faces;
pub mod fleet;
pub mod prereq;
pub mod sql;
pub mod timing;

pub use audit::{concurrent_append_8_vs_1, durable_append_vs_fdatasync, verify_vs_sha256};
pub use decisions::{allow_decision_ns, is_production_vs_env_var, protected_decision_100_rules_ns};
pub use faces::{c_call_vs_rust, exec_overhead_ms, hook_decision_ms, wasm_decision_us};
pub use fleet::{
    pg_append_64_vs_1, pg_append_vs_raw_insert, pg_lock_handover_ms, pg_verify_vs_raw_read,
};
pub use sql::{sql_classify_vs_parse, sql_guarded_delete_vs_raw};

/// Cached `is_production()` vs reading `APP_ENV` each time.
pub const IS_PRODUCTION_VS_ENV_VAR: &str = "is_production_vs_env_var";
/// A full decision for an operation in a non-protected tier.
pub const ALLOW_DECISION_NS: &str = "allow_decision_ns";
/// A decision in production under a 100-rule policy.
pub const PROTECTED_DECISION_100_RULES_NS: &str = "protected_decision_100_rules_ns";
/// Durable audit appends vs raw `write` + `fdatasync`, one writer.
pub const DURABLE_APPEND_VS_FDATASYNC: &str = "durable_append_vs_fdatasync";
/// Durable appends per second with 8 writers vs 1.
pub const CONCURRENT_APPEND_8_VS_1: &str = "concurrent_append_8_vs_1";
/// Verify throughput vs raw SHA-256 over the same file.
pub const VERIFY_VS_SHA256: &str = "verify_vs_sha256";
/// A guarded call through the C ABI vs the same in Rust.
pub const C_CALL_VS_RUST: &str = "c_call_vs_rust";
/// One `prodguard_evaluate` call in wasmtime.
pub const WASM_DECISION_US: &str = "wasm_decision_us";
/// `prodguard exec -- true` minus `true`.
pub const EXEC_OVERHEAD_MS: &str = "exec_overhead_ms";
/// SQL classification of a migration vs sqlparser's bare parse of it.
pub const SQL_CLASSIFY_VS_PARSE: &str = "sql_classify_vs_parse";
/// A guarded 10,000-row SQLite delete vs the same delete by hand between two fdatasyncs.
pub const SQL_GUARDED_DELETE_VS_RAW: &str = "sql_guarded_delete_vs_raw";
/// One `prodguard hook claude-code` process, as an agent waits for it.
pub const HOOK_DECISION_MS: &str = "hook_decision_ms";
/// Durable appends to the PostgreSQL trail vs a raw INSERT, one writer.
pub const PG_APPEND_VS_RAW_INSERT: &str = "pg_append_vs_raw_insert";
/// Appends per second to the PostgreSQL trail with 64 writers vs 1.
pub const PG_APPEND_64_VS_1: &str = "pg_append_64_vs_1";
/// The fleet lock passing from its holder to a waiter.
pub const PG_LOCK_HANDOVER_MS: &str = "pg_lock_handover_ms";
/// Verify of the PostgreSQL trail vs reading its records.
pub const PG_VERIFY_VS_RAW_READ: &str = "pg_verify_vs_raw_read";

/// The measurements that need a PostgreSQL server.
pub const PG_NAMES: [&str; 4] = [
    PG_APPEND_VS_RAW_INSERT,
    PG_APPEND_64_VS_1,
    PG_LOCK_HANDOVER_MS,
    PG_VERIFY_VS_RAW_READ,
];

/// Every measurement's name, in the order [`run_all`] runs them.
pub const NAMES: [&str; 16] = [
    IS_PRODUCTION_VS_ENV_VAR,
    ALLOW_DECISION_NS,
    PROTECTED_DECISION_100_RULES_NS,
    DURABLE_APPEND_VS_FDATASYNC,
    CONCURRENT_APPEND_8_VS_1,
    VERIFY_VS_SHA256,
    C_CALL_VS_RUST,
    WASM_DECISION_US,
    EXEC_OVERHEAD_MS,
    SQL_CLASSIFY_VS_PARSE,
    SQL_GUARDED_DELETE_VS_RAW,
    HOOK_DECISION_MS,
    PG_APPEND_VS_RAW_INSERT,
    PG_APPEND_64_VS_1,
    PG_LOCK_HANDOVER_MS,
    PG_VERIFY_VS_RAW_READ,
];

/// One number beside its baseline, as written to `bench-summary.json`.
///
/// `value` and `baseline` share `unit`; `ratio` is defined per measurement
/// (see the crate's table) so that the goal reads naturally; `goal` is a
/// condition such as `ratio >= 20` or `value <= 100 and
/// allocations_per_call <= 0` over `value`, `ratio` and the keys of `extra`;
/// `holds` says whether this run met it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// One of [`NAMES`].
    pub name: String,
    /// Our number, in `unit`.
    pub value: f64,
    /// What `value` and `baseline` are measured in (`ns`, `appends/s`, …).
    pub unit: String,
    /// The baseline's number, in `unit`, measured in the same run.
    pub baseline: f64,
    /// Ours against the baseline, as the goal states it.
    pub ratio: f64,
    /// The goal, e.g. `ratio >= 20`.
    pub goal: String,
    /// Whether this run met the goal.
    pub holds: bool,
    /// Further numbers the goal or a reader needs (e.g. `allocations_per_call`).
    pub extra: BTreeMap<String, f64>,
    /// What exactly was compared, for people.
    pub detail: String,
}

impl Measurement {
    /// A measurement with `holds` computed from `goal`.
    ///
    /// A non-finite number (a timer that read zero, say) becomes 0 for
    /// `value`/`baseline` and the goal then does not hold, so the summary
    /// is always valid JSON.
    #[allow(clippy::too_many_arguments, reason = "one argument per summary field")]
    pub fn new(
        name: &str,
        value: f64,
        unit: &str,
        baseline: f64,
        ratio: f64,
        goal: &Goal,
        extra: BTreeMap<String, f64>,
        detail: String,
    ) -> Measurement {
        let all_finite = value.is_finite()
            && baseline.is_finite()
            && ratio.is_finite()
            && extra.values().all(|v| v.is_finite());
        let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
        let mut measurement = Measurement {
            name: name.to_owned(),
            value: finite(value),
            unit: unit.to_owned(),
            baseline: finite(baseline),
            ratio: finite(ratio),
            goal: goal.to_string(),
            holds: false,
            extra: extra.into_iter().map(|(k, v)| (k, finite(v))).collect(),
            detail,
        };
        measurement.holds = all_finite && goal.holds(&measurement);
        measurement
    }

    /// The number a goal term names: `value`, `ratio`, or a key of `extra`.
    pub fn metric(&self, metric: &str) -> Option<f64> {
        match metric {
            "value" => Some(self.value),
            "ratio" => Some(self.ratio),
            other => self.extra.get(other).copied(),
        }
    }
}

/// How a goal term compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `>=`
    AtLeast,
    /// `<=`
    AtMost,
}

/// One condition of a goal: `metric cmp bound`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Term {
    /// `value`, `ratio`, or a key of [`Measurement::extra`].
    pub metric: &'static str,
    /// How it compares.
    pub cmp: Cmp,
    /// The bound.
    pub bound: f64,
}

/// A goal: every term must hold. Written as `ratio >= 20`,
/// `value <= 100 and allocations_per_call <= 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal(pub Vec<Term>);

impl Goal {
    /// `metric >= bound`.
    pub fn at_least(metric: &'static str, bound: f64) -> Goal {
        Goal(vec![Term {
            metric,
            cmp: Cmp::AtLeast,
            bound,
        }])
    }

    /// `metric <= bound`.
    pub fn at_most(metric: &'static str, bound: f64) -> Goal {
        Goal(vec![Term {
            metric,
            cmp: Cmp::AtMost,
            bound,
        }])
    }

    /// This goal and `metric <= bound`.
    pub fn and_at_most(mut self, metric: &'static str, bound: f64) -> Goal {
        self.0.push(Term {
            metric,
            cmp: Cmp::AtMost,
            bound,
        });
        self
    }

    /// Whether `m` meets every term (a missing metric does not).
    pub fn holds(&self, m: &Measurement) -> bool {
        self.0.iter().all(|t| match m.metric(t.metric) {
            Some(x) => match t.cmp {
                Cmp::AtLeast => x >= t.bound,
                Cmp::AtMost => x <= t.bound,
            },
            None => false,
        })
    }
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            let op = match t.cmp {
                Cmp::AtLeast => ">=",
                Cmp::AtMost => "<=",
            };
            write!(f, "{} {op} {}", t.metric, t.bound)?;
        }
        Ok(())
    }
}

/// How much time a run spends: CI smoke, under a minute, or the full suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Tiny iterations: checks that every measurement runs (debug builds, CI).
    Smoke,
    /// Under a minute in total on 2 cores (release).
    Quick,
    /// The full suite: more samples, longer runs.
    Full,
}

/// Iterations and time for each measurement, chosen by [`Mode`].
#[derive(Debug, Clone)]
pub struct Budget {
    /// Which preset this is.
    pub mode: Mode,
    /// One timing sample of a nanosecond-scale loop.
    pub sample: Duration,
    /// Samples per side (ours, baseline) of a nanosecond-scale loop; the sides alternate.
    pub samples: usize,
    /// Durable appends per side (one writer) are `durable_appends ×
    /// durable_rounds`; ours and the raw loop alternate append by append.
    pub durable_appends: usize,
    /// See [`durable_appends`](Self::durable_appends).
    pub durable_rounds: usize,
    /// Appends per writer in the 8-writer run; the 1-writer run does twice as
    /// many (group commit makes 8 writers take about as long for 4× the records).
    pub concurrent_appends: usize,
    /// Rounds of (1 writer, 8 writers).
    pub concurrent_rounds: usize,
    /// Size of the log that verify reads.
    pub verify_bytes: u64,
    /// Rounds of (verify, SHA-256).
    pub verify_rounds: usize,
    /// Guarded calls per side per round, C vs Rust.
    pub ffi_calls: usize,
    /// Rounds of (C, Rust).
    pub ffi_rounds: usize,
    /// Runs of each command, `prodguard exec` vs `true`.
    pub exec_runs: usize,
    /// Size of the generated SQL migration that is classified and parsed.
    pub sql_bytes: usize,
    /// Rounds of (classify, parse).
    pub sql_rounds: usize,
    /// Rows each delete removes, guarded and raw (the table holds twice as many).
    pub sql_delete_rows: usize,
    /// Deletes per side; guarded and raw alternate run by run.
    pub sql_delete_runs: usize,
    /// Durable appends per side to the PostgreSQL trail, one writer; ours
    /// and the raw INSERT alternate append by append.
    pub pg_appends: usize,
    /// Appends per writer in the 64-writer run; the 1-writer run appends
    /// as many in total (64 times this).
    pub pg_concurrent_appends: usize,
    /// Rounds of (1 writer, 64 writers).
    pub pg_concurrent_rounds: usize,
    /// Fleet lock handovers timed (and as many raw advisory-lock ones).
    pub pg_handovers: usize,
    /// How long the waiter waits before the holder releases (time to
    /// connect and queue: the handover is timed from the release).
    pub pg_handover_settle: Duration,
    /// Rows of the trail that verify reads (the size is 1,000,000).
    pub pg_verify_rows: u64,
    /// Rounds of (verify, plain read).
    pub pg_verify_rounds: usize,
    /// Build missing or stale prerequisites (`cargo build -p prodguard-ffi`,
    /// `-p prodguard-cli`, `scripts/build-wasm`) before using them.
    pub build_prerequisites: bool,
    /// The cargo target directory: artifacts are found there and the
    /// scratch files (same filesystem as the baseline's) live under it.
    pub target_dir: PathBuf,
    /// The profile whose artifacts (libprodguard.so, prodguard) are used:
    /// `release` or `debug`, the same as this build's.
    pub profile: String,
}

impl Budget {
    /// The preset for `mode`, with the default target directory and this build's profile.
    pub fn new(mode: Mode) -> Budget {
        let base = Budget {
            mode,
            sample: Duration::from_millis(10),
            samples: 60,
            durable_appends: 100,
            durable_rounds: 3,
            concurrent_appends: 50,
            concurrent_rounds: 3,
            verify_bytes: 32 << 20,
            verify_rounds: 5,
            ffi_calls: 40,
            ffi_rounds: 5,
            exec_runs: 100,
            sql_bytes: 5_000_000,
            sql_rounds: 5,
            sql_delete_rows: 10_000,
            sql_delete_runs: 30,
            pg_appends: 300,
            pg_concurrent_appends: 4,
            pg_concurrent_rounds: 3,
            pg_handovers: 15,
            pg_handover_settle: Duration::from_millis(100),
            pg_verify_rows: 100_000,
            pg_verify_rounds: 2,
            build_prerequisites: true,
            target_dir: prereq::default_target_dir(),
            profile: prereq::this_profile().to_owned(),
        };
        match mode {
            Mode::Quick => base,
            Mode::Smoke => Budget {
                sample: Duration::from_micros(500),
                samples: 3,
                durable_appends: 3,
                durable_rounds: 1,
                concurrent_appends: 2,
                concurrent_rounds: 1,
                verify_bytes: 256 << 10,
                verify_rounds: 1,
                ffi_calls: 2,
                ffi_rounds: 1,
                exec_runs: 2,
                sql_bytes: 64 << 10,
                sql_rounds: 1,
                sql_delete_rows: 500,
                sql_delete_runs: 1,
                pg_appends: 3,
                pg_concurrent_appends: 1,
                pg_concurrent_rounds: 1,
                pg_handovers: 2,
                pg_handover_settle: Duration::from_millis(100),
                pg_verify_rows: 2_000,
                pg_verify_rounds: 1,
                ..base
            },
            Mode::Full => Budget {
                sample: Duration::from_millis(20),
                samples: 150,
                durable_appends: 500,
                durable_rounds: 4,
                concurrent_appends: 200,
                concurrent_rounds: 5,
                verify_rounds: 10,
                ffi_calls: 200,
                ffi_rounds: 5,
                exec_runs: 300,
                sql_rounds: 10,
                sql_delete_runs: 60,
                pg_appends: 1_000,
                pg_concurrent_appends: 30,
                pg_concurrent_rounds: 3,
                pg_handovers: 40,
                pg_verify_rows: 1_000_000,
                pg_verify_rounds: 3,
                ..base
            },
        }
    }

    /// A fresh, empty scratch directory `target/prodguard-bench/<name>-<pid>`,
    /// removed when the returned guard drops.
    pub fn scratch(&self, name: &str) -> Result<Scratch, BenchError> {
        let dir = self
            .target_dir
            .join("prodguard-bench")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| BenchError::io(format!("create {}", dir.display()), e))?;
        Ok(Scratch { dir })
    }
}

/// A scratch directory, removed on drop.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why a measurement could not be taken (never "too slow": that is `holds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchError(pub String);

impl BenchError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> BenchError {
        BenchError(message.into())
    }

    /// An I/O error while doing `what`.
    pub fn io(what: impl fmt::Display, e: std::io::Error) -> BenchError {
        BenchError(format!("{what}: {e}"))
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

/// Runs the measurement called `name` (one of [`NAMES`]).
pub fn run(name: &str, budget: &Budget) -> Result<Measurement, BenchError> {
    match name {
        IS_PRODUCTION_VS_ENV_VAR => is_production_vs_env_var(budget),
        ALLOW_DECISION_NS => allow_decision_ns(budget),
        PROTECTED_DECISION_100_RULES_NS => protected_decision_100_rules_ns(budget),
        DURABLE_APPEND_VS_FDATASYNC => durable_append_vs_fdatasync(budget),
        CONCURRENT_APPEND_8_VS_1 => concurrent_append_8_vs_1(budget),
        VERIFY_VS_SHA256 => verify_vs_sha256(budget),
        C_CALL_VS_RUST => c_call_vs_rust(budget),
        WASM_DECISION_US => wasm_decision_us(budget),
        EXEC_OVERHEAD_MS => exec_overhead_ms(budget),
        SQL_CLASSIFY_VS_PARSE => sql_classify_vs_parse(budget),
        SQL_GUARDED_DELETE_VS_RAW => sql_guarded_delete_vs_raw(budget),
        HOOK_DECISION_MS => hook_decision_ms(budget),
        PG_APPEND_VS_RAW_INSERT => pg_append_vs_raw_insert(budget),
        PG_APPEND_64_VS_1 => pg_append_64_vs_1(budget),
        PG_LOCK_HANDOVER_MS => pg_lock_handover_ms(budget),
        PG_VERIFY_VS_RAW_READ => pg_verify_vs_raw_read(budget),
        other => Err(BenchError::new(format!(
            "no measurement is called `{other}`; the names are: {}",
            NAMES.join(", ")
        ))),
    }
}

/// Runs every measurement in [`NAMES`] order; each result stands alone
/// (a missing prerequisite fails only its own measurement).
pub fn run_all(budget: &Budget) -> Vec<(&'static str, Result<Measurement, BenchError>)> {
    // One PostgreSQL cluster for all the `pg_*` rows (when it cannot start,
    // each of them says so).
    let _cluster = prereq::hold_postgres(budget, &NAMES);
    NAMES
        .iter()
        .map(|&name| (name, run(name, budget)))
        .collect()
}

/// The summary as written to `bench-summary.json`: a JSON list.
pub fn summary_json(measurements: &[Measurement]) -> Result<String, BenchError> {
    serde_json::to_string_pretty(measurements)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| BenchError::new(format!("cannot render the summary: {e}")))
}

/// A map of extra numbers, from pairs.
pub(crate) fn extra<const N: usize>(pairs: [(&str, f64); N]) -> BTreeMap<String, f64> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
