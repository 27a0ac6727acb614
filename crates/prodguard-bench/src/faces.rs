//! The other faces: the C ABI, the Wasm module in wasmtime, the CLI.
//!
//! Every child process runs with a cleared environment, a scratch `HOME`
//! and `XDG_STATE_HOME`, and its audit log in the scratch directory, so
//! nothing touches the user's files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use prodguard::{Guard, GuardError};
use prodguard_core::audit::Actor;
use prodguard_core::policy::ActorKind;
use prodguard_core::{Facts, Policy};
use wasmtime::{Config, Engine, Instance, Memory, Module, OptLevel, Store, TypedFunc};

use crate::timing::{compare_ns, keep};
use crate::{
    BenchError, Budget, C_CALL_VS_RUST, EXEC_OVERHEAD_MS, Goal, HOOK_DECISION_MS, Measurement,
    Mode, WASM_DECISION_US, extra, prereq,
};

// ------------------------------------------------------------------ C ABI

/// The C side of `c_call_vs_rust`: `prodguard_run` N times, timed with
/// `clock_gettime`; prints ns/call.
pub const C_PROGRAM: &str = r#"/* prodguard-bench: N guarded calls through the C ABI. */
#define _POSIX_C_SOURCE 199309L
#include <prodguard.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int32_t noop(void *user_data) {
    (void)user_data;
    return 0;
}

static int run(prodguard_guard *guard) {
    prodguard_status status = prodguard_run(guard, "db.migrate", "orders", noop, NULL);
    if (status != PRODGUARD_OK) {
        fprintf(stderr, "prodguard_run: status %d: %s\n", (int)status, prodguard_last_error());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    long calls = argc > 1 ? atol(argv[1]) : 1000;
    long warmup = argc > 2 ? atol(argv[2]) : 3;
    prodguard_guard *guard = NULL;
    if (prodguard_guard_new(NULL, &guard) != PRODGUARD_OK) {
        fprintf(stderr, "prodguard_guard_new: %s\n", prodguard_last_error());
        return 2;
    }
    for (long i = 0; i < warmup; i++) {
        if (run(guard)) return 3;
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < calls; i++) {
        if (run(guard)) return 3;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double ns = (double)(end.tv_sec - start.tv_sec) * 1e9 + (double)(end.tv_nsec - start.tv_nsec);
    printf("%.1f\n", ns / (double)(calls > 0 ? calls : 1));
    prodguard_guard_free(guard);
    return 0;
}
"#;

/// Compiles [`C_PROGRAM`] with the system `cc` against `prodguard.h` and
/// the library in `lib_dir`; returns the executable's path.
pub fn compile_c_program(dir: &Path, lib_dir: &Path) -> Result<PathBuf, BenchError> {
    let source = dir.join("bench_run.c");
    let exe = dir.join("bench_run");
    std::fs::write(&source, C_PROGRAM)
        .map_err(|e| BenchError::io(format!("write {}", source.display()), e))?;
    let output = Command::new("cc")
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(prereq::c_include_dir())
        .arg(&source)
        .arg("-L")
        .arg(lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lprodguard")
        .arg("-o")
        .arg(&exe)
        .output()
        .map_err(|e| BenchError::io("run the C compiler `cc` (install gcc or clang)", e))?;
    if !output.status.success() {
        return Err(BenchError::new(format!(
            "cc could not compile the C benchmark against prodguard.h:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(exe)
}

/// Where a child process keeps its files: a scratch home and state directory.
#[derive(Debug, Clone)]
pub struct ChildEnv {
    /// The working directory (no `prodguard.toml` there unless put there).
    pub cwd: PathBuf,
    /// The variables the child gets (nothing else).
    pub vars: BTreeMap<String, String>,
}

impl ChildEnv {
    /// A development environment rooted at `dir`: `PATH`, `HOME`,
    /// `XDG_STATE_HOME`, `PRODGUARD_ENV=development`, `PRODGUARD_ACTOR=bench`.
    pub fn development(dir: &Path) -> Result<ChildEnv, BenchError> {
        let home = dir.join("home");
        let state = dir.join("state");
        for d in [&home, &state] {
            std::fs::create_dir_all(d)
                .map_err(|e| BenchError::io(format!("create {}", d.display()), e))?;
        }
        let mut vars = BTreeMap::new();
        vars.insert(
            "PATH".to_owned(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        );
        vars.insert("HOME".to_owned(), home.display().to_string());
        vars.insert("XDG_STATE_HOME".to_owned(), state.display().to_string());
        vars.insert("PRODGUARD_ENV".to_owned(), "development".to_owned());
        vars.insert("PRODGUARD_ACTOR".to_owned(), "bench".to_owned());
        Ok(ChildEnv {
            cwd: dir.to_path_buf(),
            vars,
        })
    }

    /// The same with `name=value` added.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> ChildEnv {
        self.vars.insert(name.to_owned(), value.into());
        self
    }

    /// A command for `program` in this environment, stdin closed.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .envs(&self.vars)
            .current_dir(&self.cwd)
            .stdin(Stdio::null());
        command
    }
}

/// Runs the C program for `calls` timed calls (after 3 untimed); its ns/call.
#[inline(never)]
pub fn ours_c_calls(exe: &Path, env: &ChildEnv, calls: usize) -> Result<f64, BenchError> {
    let output = env
        .command(exe)
        .args([calls.to_string(), "3".to_owned()])
        .output()
        .map_err(|e| BenchError::io(format!("run {}", exe.display()), e))?;
    if !output.status.success() {
        return Err(BenchError::new(format!(
            "the C benchmark failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse::<f64>()
        .map_err(|e| BenchError::new(format!("the C benchmark printed no number: {e}")))
}

/// A Rust guard built as `prodguard_guard_new(NULL, …)` builds one in the C
/// program's environment: `policy`, `PRODGUARD_ENV=development`, actor
/// `bench`, the audit log at `audit_log`.
pub fn rust_guard(policy: Policy, audit_log: &Path) -> Result<Guard, BenchError> {
    let mut facts = Facts::default();
    facts
        .env
        .insert("PRODGUARD_ENV".into(), "development".into());
    Guard::builder()
        .policy(policy)
        .facts(facts)
        .actor(Actor {
            user: "bench".into(),
            kind: ActorKind::Service,
            account: None,
        })
        .audit_log(audit_log)
        .build()
        .map_err(|e| BenchError::new(format!("cannot build the Rust guard: {e}")))
}

/// Ours in Rust: the guarded call the C program makes.
#[inline(never)]
pub fn ours_rust_run(guard: &Guard) -> Result<(), GuardError> {
    guard
        .operation("db.migrate")
        .target("orders")
        .run_infallible(|| ())
}

/// Nanoseconds per [`ours_rust_run`] over `calls` calls (after 3 untimed).
pub fn rust_calls(guard: &Guard, calls: usize) -> Result<f64, BenchError> {
    let fail = |e: GuardError| BenchError::new(format!("the Rust guarded call failed: {e}"));
    for _ in 0..3 {
        ours_rust_run(guard).map_err(fail)?;
    }
    let start = Instant::now();
    for _ in 0..calls {
        ours_rust_run(guard).map_err(fail)?;
    }
    Ok(start.elapsed().as_nanos() as f64 / calls.max(1) as f64)
}

fn count_lines(path: &Path) -> f64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as f64)
        .unwrap_or(0.0)
}

/// C and Rust ns/call (means over rounds), alternating, `calls` per side per round.
fn c_vs_rust_rounds(
    exe: &Path,
    env: &ChildEnv,
    guard: &Guard,
    calls: usize,
    rounds: usize,
) -> Result<(f64, f64), BenchError> {
    let (mut c_ns, mut rust_ns) = (0.0, 0.0);
    for round in 0..rounds {
        if round % 2 == 0 {
            c_ns += ours_c_calls(exe, env, calls)?;
            rust_ns += rust_calls(guard, calls)?;
        } else {
            rust_ns += rust_calls(guard, calls)?;
            c_ns += ours_c_calls(exe, env, calls)?;
        }
    }
    Ok((c_ns / rounds as f64, rust_ns / rounds as f64))
}

/// `prodguard_run(guard, "db.migrate", "orders", noop, NULL)` from a C
/// program (the system `cc`, `prodguard.h`, `libprodguard.so` of this
/// profile) vs `guard.operation("db.migrate").target("orders").run_infallible(|| ())`
/// in Rust, both in development under the built-in default policy with
/// their audit logs in a scratch directory. Ratio = C time / Rust time.
/// Goal: ≤ 1.5.
///
/// In development the default policy requires nothing, yet a guarded run
/// still appends its intent and outcome to the audit log (fdatasync each),
/// so both sides are dominated by two fdatasyncs; `extra` reports the
/// records per call, and the same comparison under the default policy with
/// `durability = "none"` (the ABI's own cost).
pub fn c_call_vs_rust(budget: &Budget) -> Result<Measurement, BenchError> {
    let lib = prereq::libprodguard(budget)?;
    let lib_dir = lib
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let scratch = budget.scratch("c-call")?;
    let dir = scratch.path();
    let exe = compile_c_program(dir, &lib_dir)?;
    let rounds = budget.ffi_rounds.max(1);
    let calls = budget.ffi_calls.max(1);

    // As specified: the default policy (fdatasync).
    let c_log = dir.join("c-audit.jsonl");
    let rust_log = dir.join("rust-audit.jsonl");
    let env = ChildEnv::development(dir)?.with("PRODGUARD_AUDIT_LOG", c_log.display().to_string());
    let guard = rust_guard(Policy::builtin_default(), &rust_log)?;
    let (c_ns, rust_ns) = c_vs_rust_rounds(&exe, &env, &guard, calls, rounds)?;
    let c_runs = (rounds * (calls + 3)) as f64;
    let records_per_call = count_lines(&c_log) / c_runs;
    let rust_records_per_call = count_lines(&rust_log) / c_runs;

    // The same without fdatasync: what the boundary itself costs.
    let nosync_text = prodguard_core::policy::DEFAULT_POLICY_TOML
        .replace("durability = \"fdatasync\"", "durability = \"none\"");
    let nosync_path = dir.join("nosync.toml");
    std::fs::write(&nosync_path, &nosync_text)
        .map_err(|e| BenchError::io(format!("write {}", nosync_path.display()), e))?;
    let nosync_policy = Policy::parse_toml(&nosync_text, &nosync_path.display().to_string())
        .map_err(|e| BenchError::new(format!("the no-sync policy is invalid: {e}")))?;
    let nosync_env = ChildEnv::development(dir)?
        .with(
            "PRODGUARD_AUDIT_LOG",
            dir.join("c-nosync.jsonl").display().to_string(),
        )
        .with("PRODGUARD_POLICY", nosync_path.display().to_string());
    let nosync_guard = rust_guard(nosync_policy, &dir.join("rust-nosync.jsonl"))?;
    let nosync_calls = if budget.mode == Mode::Smoke {
        calls
    } else {
        calls * 40
    };
    let (c_nosync, rust_nosync) =
        c_vs_rust_rounds(&exe, &nosync_env, &nosync_guard, nosync_calls, rounds)?;

    Ok(Measurement::new(
        C_CALL_VS_RUST,
        c_ns,
        "ns",
        rust_ns,
        c_ns / rust_ns,
        &Goal::at_most("ratio", 1.5),
        extra([
            ("audit_records_per_call_c", records_per_call),
            ("audit_records_per_call_rust", rust_records_per_call),
            ("c_ns_durability_none", c_nosync),
            ("rust_ns_durability_none", rust_nosync),
            ("ratio_durability_none", c_nosync / rust_nosync),
        ]),
        format!(
            "prodguard_run from C (cc -O2, {}) vs Guard::operation(..).target(..).run_infallible(|| ()) in \
             Rust; development, default policy; {rounds} alternating rounds of {calls} calls; \
             each call appends {records_per_call:.0} audit records (fdatasync)",
            lib.display()
        ),
    ))
}

// ------------------------------------------------------------------ Wasm

/// One instance of `prodguard.wasm` in wasmtime, with its typed exports.
pub struct WasmEvaluator {
    store: Store<()>,
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    dealloc: TypedFunc<(u32, u32), ()>,
    evaluate: TypedFunc<(u32, u32, u32), u32>,
    /// The last answer's bytes.
    pub answer: Vec<u8>,
}

impl std::fmt::Debug for WasmEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEvaluator").finish_non_exhaustive()
    }
}

fn wasm_err(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::new(format!("wasm: {what}: {e:#}"))
}

impl WasmEvaluator {
    /// Compiles (cranelift) and instantiates the module at `path`; returns
    /// it with the compile time. `optimize = false` compiles without
    /// cranelift's optimisations (`OptLevel::None`): the smoke budget does,
    /// because a debug build of cranelift takes most of a minute otherwise.
    pub fn load(path: &Path, optimize: bool) -> Result<(WasmEvaluator, Duration), BenchError> {
        let mut config = Config::new();
        if !optimize {
            config.cranelift_opt_level(OptLevel::None);
        }
        let engine = Engine::new(&config).map_err(|e| wasm_err("configure the engine", e))?;
        let start = Instant::now();
        let module =
            Module::from_file(&engine, path).map_err(|e| wasm_err("compile the module", e))?;
        let compiled = start.elapsed();
        let mut store = Store::new(&engine, ());
        let instance =
            Instance::new(&mut store, &module, &[]).map_err(|e| wasm_err("instantiate", e))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| BenchError::new("wasm: the module exports no `memory`"))?;
        let alloc = instance
            .get_typed_func(&mut store, "prodguard_alloc")
            .map_err(|e| wasm_err("prodguard_alloc", e))?;
        let dealloc = instance
            .get_typed_func(&mut store, "prodguard_dealloc")
            .map_err(|e| wasm_err("prodguard_dealloc", e))?;
        let evaluate = instance
            .get_typed_func(&mut store, "prodguard_evaluate")
            .map_err(|e| wasm_err("prodguard_evaluate", e))?;
        Ok((
            WasmEvaluator {
                store,
                memory,
                alloc,
                dealloc,
                evaluate,
                answer: Vec::new(),
            },
            compiled,
        ))
    }

    /// One full call as ABI.md describes it: allocate the request and
    /// `out`, write the JSON, evaluate, read the answer into
    /// [`answer`](Self::answer), free all three. Returns the status.
    pub fn call(&mut self, request: &[u8]) -> Result<u32, BenchError> {
        let len = u32::try_from(request.len()).map_err(|e| wasm_err("request length", e))?;
        let req = self
            .alloc
            .call(&mut self.store, len)
            .map_err(|e| wasm_err("alloc", e))?;
        let out = self
            .alloc
            .call(&mut self.store, 8)
            .map_err(|e| wasm_err("alloc", e))?;
        if req == 0 || out == 0 {
            return Err(BenchError::new("wasm: prodguard_alloc returned 0"));
        }
        self.memory
            .write(&mut self.store, req as usize, request)
            .map_err(|e| wasm_err("write the request", e))?;
        let status = self
            .evaluate
            .call(&mut self.store, (req, len, out))
            .map_err(|e| wasm_err("prodguard_evaluate", e))?;
        let mut pair = [0u8; 8];
        self.memory
            .read(&self.store, out as usize, &mut pair)
            .map_err(|e| wasm_err("read out", e))?;
        let [a, b, c, d, e, f, g, h] = pair;
        let (ptr, answer_len) = (
            u32::from_le_bytes([a, b, c, d]),
            u32::from_le_bytes([e, f, g, h]),
        );
        self.answer.resize(answer_len as usize, 0);
        self.memory
            .read(&self.store, ptr as usize, &mut self.answer)
            .map_err(|e| wasm_err("read the answer", e))?;
        for (p, l) in [(ptr, answer_len), (req, len), (out, 8)] {
            self.dealloc
                .call(&mut self.store, (p, l))
                .map_err(|e| wasm_err("dealloc", e))?;
        }
        Ok(status)
    }
}

/// The request both sides evaluate: `db.migrate` on `orders` with
/// `APP_ENV=production`, the built-in default policy.
pub const WASM_REQUEST: &str = r#"{"facts":{"env":{"APP_ENV":"production"}},"operation":{"kind":"db.migrate","target":"orders"}}"#;

/// Ours: one `prodguard_evaluate` in wasmtime, JSON in and out.
#[inline(never)]
pub fn ours_wasm_evaluate(wasm: &mut WasmEvaluator, request: &[u8]) -> Result<u32, BenchError> {
    wasm.call(request)
}

/// The baseline: the same request evaluated natively.
#[inline(never)]
pub fn baseline_native_evaluate(request: &str) -> prodguard_core::json_api::Response {
    prodguard_core::json_api::evaluate_json(request)
}

/// One `prodguard_evaluate` call in wasmtime (the module from
/// `scripts/build-wasm`, compiled by cranelift; alloc, write, evaluate,
/// read, dealloc) for an operation in production under the default policy,
/// vs `prodguard_core::json_api::evaluate_json` natively. Ratio = wasm time /
/// native time. Goal: ≤ 10 µs. (The smoke budget compiles the module
/// without optimisations; its number is not the module's speed.)
pub fn wasm_decision_us(budget: &Budget) -> Result<Measurement, BenchError> {
    let path = prereq::prodguard_wasm(budget)?;
    let (mut wasm, compiled) = WasmEvaluator::load(&path, budget.mode != Mode::Smoke)?;
    let request = WASM_REQUEST.as_bytes();
    let status = ours_wasm_evaluate(&mut wasm, request)?;
    let native = baseline_native_evaluate(WASM_REQUEST);
    let answer: serde_json::Value = serde_json::from_slice(&wasm.answer)
        .map_err(|e| BenchError::new(format!("wasm: the answer is not JSON: {e}")))?;
    let ours_exit = &answer["ok"]["decision"]["exit_code"];
    if status != 0 || native.status != 0 || ours_exit != 121 {
        return Err(BenchError::new(format!(
            "wasm: unexpected answer (status {status}, native {}): {}",
            native.status,
            String::from_utf8_lossy(&wasm.answer)
        )));
    }
    let answer_bytes = wasm.answer.len() as f64;
    let mut failed = None;
    let (ours_ns, base_ns) = compare_ns(
        budget,
        || {
            if let Err(e) = ours_wasm_evaluate(&mut wasm, request) {
                failed = Some(e);
            }
        },
        || keep(baseline_native_evaluate(WASM_REQUEST)),
    );
    if let Some(e) = failed {
        return Err(e);
    }
    let (ours, base) = (ours_ns / 1e3, base_ns / 1e3);
    Ok(Measurement::new(
        WASM_DECISION_US,
        ours,
        "us",
        base,
        ours / base,
        &Goal::at_most("value", 10.0),
        extra([
            ("request_bytes", request.len() as f64),
            ("answer_bytes", answer_bytes),
            ("compile_ms", compiled.as_secs_f64() * 1e3),
        ]),
        format!(
            "prodguard_evaluate in wasmtime 48 ({}): alloc, write JSON, evaluate, read answer, \
             dealloc; production, default policy; vs json_api::evaluate_json natively",
            path.display()
        ),
    ))
}

// ------------------------------------------------------------------ CLI

/// Ours: `prodguard exec --op app.noop -- true`, waited for.
#[inline(never)]
pub fn ours_exec(cli: &Path, env: &ChildEnv) -> std::io::Result<ExitStatus> {
    env.command(cli)
        .args(["exec", "--op", "app.noop", "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

/// One `prodguard hook claude-code` process answering a typical agent
/// call (`cargo test` chained with `git status` and a `psql` read: parsed,
/// classified, decided, silent), waited for.
#[inline(never)]
pub fn ours_hook(cli: &Path, env: &ChildEnv) -> std::io::Result<ExitStatus> {
    use std::io::Write;
    const CALL: &[u8] = br#"{"session_id": "bench", "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "cargo test -p app 2>&1 | tail -20 && git status --short && psql -d app -c 'SELECT count(*) FROM orders'"}, "cwd": "/home/dev/app"}"#;
    let mut child = env
        .command(cli)
        .args(["hook", "claude-code"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(CALL)?;
    }
    child.wait()
}

/// The baseline: `true`, waited for.
#[inline(never)]
pub fn baseline_true(env: &ChildEnv) -> std::io::Result<ExitStatus> {
    env.command("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

fn timed(run: impl FnOnce() -> std::io::Result<ExitStatus>, what: &str) -> Result<f64, BenchError> {
    let start = Instant::now();
    let status = run().map_err(|e| BenchError::io(format!("run {what}"), e))?;
    let took = start.elapsed().as_secs_f64() * 1e3;
    if status.success() {
        Ok(took)
    } else {
        Err(BenchError::new(format!("{what} exited with {status}")))
    }
}

/// `prodguard hook claude-code` (this profile's CLI) on a typical agent
/// call in development vs `true` run directly, alternating; value = the
/// hook's mean time in ms (what the agent waits); baseline = `true`'s;
/// ratio = ours / baseline. Goal: ≤ 5 ms.
pub fn hook_decision_ms(budget: &Budget) -> Result<Measurement, BenchError> {
    let cli = prereq::prodguard_cli(budget)?;
    let scratch = budget.scratch("hook")?;
    let env = ChildEnv::development(scratch.path())?;
    let what = format!("{} hook claude-code", cli.display());
    timed(|| ours_hook(&cli, &env), &what)?;
    timed(|| baseline_true(&env), "true")?;
    let runs = budget.exec_runs.max(1);
    let (mut ours, mut base) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        if i % 2 == 0 {
            ours.push(timed(|| ours_hook(&cli, &env), &what)?);
            base.push(timed(|| baseline_true(&env), "true")?);
        } else {
            base.push(timed(|| baseline_true(&env), "true")?);
            ours.push(timed(|| ours_hook(&cli, &env), &what)?);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (ours_ms, base_ms) = (mean(&ours), mean(&base));
    let mut sorted = ours.clone();
    let ours_median = crate::timing::median(&mut sorted);
    Ok(Measurement::new(
        HOOK_DECISION_MS,
        ours_ms,
        "ms",
        base_ms,
        ours_ms / base_ms,
        &Goal::at_most("value", 5.0),
        extra([
            ("hook_median_ms", ours_median),
            ("true_mean_ms", base_ms),
            ("runs", runs as f64),
        ]),
        format!(
            "{what} on `cargo test … | tail && git status && psql -d app -c 'SELECT …'` \
             (PRODGUARD_ENV=development: parsed, classified, decided, silent) vs true, {runs} \
             alternating runs each"
        ),
    ))
}

/// `prodguard exec --op app.noop -- true` (this profile's CLI) with
/// `PRODGUARD_ENV=development` and a scratch `HOME`, vs `true` run
/// directly, alternating; value = mean difference in ms; baseline = the
/// mean time of `true`; ratio = ours / baseline (time). Goal: ≤ 3 ms.
pub fn exec_overhead_ms(budget: &Budget) -> Result<Measurement, BenchError> {
    let cli = prereq::prodguard_cli(budget)?;
    let scratch = budget.scratch("exec")?;
    let env = ChildEnv::development(scratch.path())?;
    let what = format!("{} exec --op app.noop -- true", cli.display());
    // Warm-up: the first run creates the audit log and its directories.
    timed(|| ours_exec(&cli, &env), &what)?;
    timed(|| baseline_true(&env), "true")?;
    let runs = budget.exec_runs.max(1);
    let (mut ours, mut base) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        if i % 2 == 0 {
            ours.push(timed(|| ours_exec(&cli, &env), &what)?);
            base.push(timed(|| baseline_true(&env), "true")?);
        } else {
            base.push(timed(|| baseline_true(&env), "true")?);
            ours.push(timed(|| ours_exec(&cli, &env), &what)?);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (ours_ms, base_ms) = (mean(&ours), mean(&base));
    let log = scratch
        .path()
        .join("state")
        .join("prodguard")
        .join("audit.jsonl");
    let records_per_run = count_lines(&log) / (runs + 1) as f64;
    let mut sorted = ours.clone();
    let ours_median = crate::timing::median(&mut sorted);
    Ok(Measurement::new(
        EXEC_OVERHEAD_MS,
        ours_ms - base_ms,
        "ms",
        base_ms,
        ours_ms / base_ms,
        &Goal::at_most("value", 3.0),
        extra([
            ("exec_mean_ms", ours_ms),
            ("exec_median_ms", ours_median),
            ("true_mean_ms", base_ms),
            ("runs", runs as f64),
            ("audit_records_per_run", records_per_run),
        ]),
        format!(
            "{what} (PRODGUARD_ENV=development, scratch HOME) vs true, {runs} alternating runs \
             each; each exec appends {records_per_run:.0} audit records (fdatasync)"
        ),
    ))
}
