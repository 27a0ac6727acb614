//! A plugin host that asks prodguard.wasm whether an operation may run here.
//!
//! ```sh
//! scripts/build-wasm
//! cargo run -p prodguard-wasmtime --example plugin_host -- target/prodguard.wasm \
//!     --op db.migrate --target orders
//! APP_ENV=production cargo run -p prodguard-wasmtime --example plugin_host -- --typed orders
//! ```
//!
//! The module path comes from the first argument, else `PRODGUARD_WASM`,
//! else `target/prodguard.wasm`. The facts are this process's (environment
//! variables, `/etc/prodguard/environment`, the host name); the policy is
//! the file named by `PRODGUARD_POLICY`, else the built-in default.
//!
//! Options: `--op KIND` (default `db.migrate`), `--target NAME` (default
//! `orders`), `--typed TEXT` (the confirmation, instead of asking at the
//! terminal), `--repeat N` (also time N evaluations).
//!
//! It exits as the CLI would: 0 when the operation may run, 120–125 when not.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, IsTerminal, Write};
use std::time::Instant;

use prodguard_wasmtime::{
    AuditRecordRequest, EvaluateRequest, GENESIS_PREV, ProdguardModule, Step,
    evidence_from_process, gather_default_facts, now_rfc3339,
};

struct Args {
    wasm: String,
    op: String,
    target: String,
    typed: Option<String>,
    repeat: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        wasm: std::env::var("PRODGUARD_WASM").unwrap_or_else(|_| "target/prodguard.wasm".into()),
        op: "db.migrate".into(),
        target: "orders".into(),
        typed: None,
        repeat: 0,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--op" => args.op = value()?,
            "--target" => args.target = value()?,
            "--typed" => args.typed = Some(value()?),
            "--repeat" => {
                args.repeat = value()?
                    .parse()
                    .map_err(|e| format!("--repeat takes a number: {e}"))?
            }
            path if !path.starts_with("--") => args.wasm = path.to_owned(),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

fn main() {
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("plugin_host: {e}");
            std::process::exit(125);
        }
    }
}

fn run() -> Result<i32, Box<dyn std::error::Error>> {
    let args = parse_args()?;

    let started = Instant::now();
    let module = ProdguardModule::from_file(&args.wasm)?;
    println!(
        "loaded {} (ABI {}) in {:?}",
        args.wasm,
        module.abi_version(),
        started.elapsed()
    );
    let mut instance = module.instantiate()?;

    let mut request = EvaluateRequest::new(&args.op)
        .target(&args.target)
        .facts(gather_default_facts());
    if let Some(path) = std::env::var_os("PRODGUARD_POLICY") {
        request = request.policy(
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the policy {}: {e}", path.to_string_lossy()))?,
        );
    }

    // 1. A dry run: where are we, and what does the policy ask for?
    let evaluation = instance.evaluate(&request)?;
    let detection = &evaluation.detection;
    println!(
        "environment: {} (tier {}, {}), decided by {}",
        detection.environment,
        detection.tier,
        if detection.protected {
            "protected"
        } else {
            "not protected"
        },
        detection.decided_by
    );
    let decision = &evaluation.decision;
    let kinds: Vec<String> = decision
        .requirements
        .iter()
        .map(|r| format!("{:?}", r.kind).to_lowercase())
        .collect();
    println!(
        "{} {}: {:?}{}",
        args.op,
        args.target,
        decision.result,
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(" + "))
        }
    );
    for reason in &decision.reasons {
        println!("  - {reason}");
    }

    if args.repeat > 0 {
        let started = Instant::now();
        for _ in 0..args.repeat {
            instance.evaluate(&request)?;
        }
        println!(
            "{} evaluations: {:?} per call",
            args.repeat,
            started.elapsed() / args.repeat
        );
    }

    // 2. The guard session: ask for what it needs, then ask it again.
    let evidence = evidence_from_process();
    let attempt = evidence.attempt_id.clone();
    let mut session = instance
        .evaluate(&request.clone().evidence(evidence.clone(), now_rfc3339()))?
        .session
        .ok_or("the module gave no session for a request with evidence")?;
    if let (Step::Deny, Some(challenge)) = (session.step, &session.challenge) {
        let typed = match &args.typed {
            Some(typed) => Some(typed.clone()),
            None if std::io::stdin().is_terminal() => {
                print!(
                    "{}\ntype `{}` to confirm: ",
                    challenge.why, challenge.expected
                );
                std::io::stdout().flush()?;
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                Some(line)
            }
            None => None,
        };
        if let Some(typed) = typed {
            let mut answered = evidence;
            answered.typed = Some(typed);
            session = instance
                .evaluate(&request.clone().evidence(answered, now_rfc3339()))?
                .session
                .ok_or("the module gave no session for a request with evidence")?;
        }
    }

    // 3. Record before acting (a real host appends durably and stops if it cannot).
    if let Some(event) = &session.record {
        let record = instance.audit_record(&AuditRecordRequest {
            log_id: attempt.clone(),
            seq: 1,
            ts: now_rfc3339(),
            host: prodguard::facts::hostname().unwrap_or_else(|| "unknown".into()),
            pid: std::process::id(),
            prev: GENESIS_PREV.into(),
            event: event.clone(),
        })?;
        print!("audit record to append first:\n  {}", record.line);
    }
    match (&session.step, &session.denial) {
        (Step::Proceed, _) => println!("verdict: proceed: run {} on {}", args.op, args.target),
        (Step::Deny, Some(denial)) => {
            println!(
                "verdict: refused (exit {}): {}",
                denial.exit_code, denial.missing
            );
            println!("  next step: {}", denial.next_step);
        }
        // A refusal without its details, or a step this host does not know: not a proceed.
        _ => println!("verdict: refused (exit {})", session.exit_code),
    }
    Ok(session.exit_code)
}
