//! `prodguard-bench`: runs the suite, prints a table and writes
//! `bench-summary.json` into the target directory.
//!
//! ```text
//! cargo run -p prodguard-bench --release -- --quick     # under a minute on 2 cores
//! cargo run -p prodguard-bench --release                # the full suite
//! cargo run -p prodguard-bench -- --smoke               # tiny iterations (CI, debug)
//! cargo run -p prodguard-bench --release -- --only wasm_decision_us --out /tmp/s.json
//! ```
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool: the table and errors are its output"
)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use prodguard_bench::{Budget, Measurement, Mode, NAMES, alloc::CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const USAGE: &str =
    "usage: prodguard-bench [--quick | --smoke | --full] [--only NAME]... [--out PATH] [--no-build]

  --quick      under a minute in total on 2 cores (release build)
  --smoke      tiny iterations: checks that everything runs (debug builds, CI)
  --full       the full suite (the default)
  --only NAME  run only this measurement (repeatable, or comma-separated)
  --out PATH   write the summary here (default: <target dir>/bench-summary.json)
  --no-build   do not run cargo build / scripts/build-wasm for the C library,
               the CLI and the Wasm module; use what is in the target directory";

struct Args {
    mode: Mode,
    only: Vec<String>,
    out: Option<PathBuf>,
    build: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        mode: Mode::Full,
        only: Vec::new(),
        out: None,
        build: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.mode = Mode::Quick,
            "--smoke" => args.mode = Mode::Smoke,
            "--full" => args.mode = Mode::Full,
            "--no-build" => args.build = false,
            "--only" => {
                let names = it.next().ok_or("--only needs a measurement name")?;
                args.only
                    .extend(names.split(',').map(|s| s.trim().to_owned()));
            }
            "--out" => args.out = Some(it.next().ok_or("--out needs a path")?.into()),
            "-h" | "--help" => return Err(String::new()),
            // `cargo bench` passes --bench to every target.
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    for name in &args.only {
        if !NAMES.contains(&name.as_str()) {
            return Err(format!(
                "no measurement is called `{name}`; the names are: {}",
                NAMES.join(", ")
            ));
        }
    }
    Ok(args)
}

fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100_000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn print_table(measurements: &[Measurement]) {
    println!(
        "{:<32} {:>14} {:<10} {:>14} {:>10}  {:<44} holds",
        "name", "value", "unit", "baseline", "ratio", "goal"
    );
    for m in measurements {
        println!(
            "{:<32} {:>14} {:<10} {:>14} {:>10}  {:<44} {}",
            m.name,
            fmt_num(m.value),
            m.unit,
            fmt_num(m.baseline),
            fmt_num(m.ratio),
            m.goal,
            if m.holds { "yes" } else { "NO" }
        );
        if !m.extra.is_empty() {
            let extra: Vec<String> = m
                .extra
                .iter()
                .map(|(k, v)| format!("{k}={}", fmt_num(*v)))
                .collect();
            println!("    {}", extra.join("  "));
        }
        println!("    {}", m.detail);
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("prodguard-bench: {problem}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut budget = Budget::new(args.mode);
    budget.build_prerequisites = args.build;
    if args.mode != Mode::Smoke && cfg!(debug_assertions) {
        eprintln!(
            "prodguard-bench: warning: this is a debug build; run with --release for real numbers"
        );
    }
    let names: Vec<&str> = if args.only.is_empty() {
        NAMES.to_vec()
    } else {
        NAMES
            .iter()
            .copied()
            .filter(|n| args.only.iter().any(|o| o == n))
            .collect()
    };
    let started = Instant::now();
    if budget.build_prerequisites {
        eprint!("building prerequisites (C library, CLI, Wasm module) … ");
        match prodguard_bench::prereq::prepare(&budget, &names) {
            Ok(()) => eprintln!("{:.1} s", started.elapsed().as_secs_f64()),
            // Each measurement that needs it reports the problem itself.
            Err(e) => eprintln!("failed: {e}"),
        }
    }
    // The `pg_*` rows share one PostgreSQL server; a throwaway cluster is
    // started here and deleted when `_cluster` drops at the end of main.
    let _cluster = match prodguard_bench::prereq::hold_postgres(&budget, &names) {
        Some(Ok(cluster)) if cluster.is_throwaway() => {
            eprintln!("PostgreSQL: a throwaway cluster at {}", cluster.url());
            Some(cluster)
        }
        Some(Ok(cluster)) => {
            eprintln!("PostgreSQL: {} (PRODGUARD_TEST_PG)", cluster.url());
            Some(cluster)
        }
        // Each pg_* row reports the problem itself.
        Some(Err(e)) => {
            eprintln!("PostgreSQL: {e}");
            None
        }
        None => None,
    };
    let building = started.elapsed();
    let mut measurements = Vec::new();
    let mut failed = 0;
    for name in names {
        let start = Instant::now();
        eprint!("{name} … ");
        match prodguard_bench::run(name, &budget) {
            Ok(m) => {
                eprintln!("{:.1} s", start.elapsed().as_secs_f64());
                measurements.push(m);
            }
            Err(e) => {
                eprintln!("FAILED after {:.1} s", start.elapsed().as_secs_f64());
                eprintln!("prodguard-bench: {name}: {e}");
                failed += 1;
            }
        }
    }
    let total = started.elapsed();
    println!();
    print_table(&measurements);
    let held = measurements.iter().filter(|m| m.holds).count();
    println!(
        "\n{held} of {} goals hold; {failed} failed to run; {:?} mode, {:.1} s ({:.1} s of it building prerequisites)",
        measurements.len(),
        args.mode,
        total.as_secs_f64(),
        building.as_secs_f64()
    );
    let out = args
        .out
        .unwrap_or_else(|| budget.target_dir.join("bench-summary.json"));
    let written = prodguard_bench::summary_json(&measurements)
        .map_err(|e| e.to_string())
        .and_then(|json| {
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            std::fs::write(&out, json).map_err(|e| e.to_string())
        });
    match written {
        Ok(()) => println!("summary: {}", out.display()),
        Err(e) => {
            eprintln!("prodguard-bench: cannot write {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
