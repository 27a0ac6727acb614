//! Finding (and building) what the faces' measurements run: the C
//! library, the CLI and the Wasm module; and the PostgreSQL server of the
//! fleet-mode rows.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};

use crate::{BenchError, Budget};

/// The workspace's root directory (where `Cargo.toml` lists the members).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// `CARGO_TARGET_DIR` (relative to the workspace root when relative), else
/// the workspace's `target/`.
pub fn default_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// `debug` or `release`: the profile directory of this build's artifacts.
pub fn this_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// `target/<profile>/`.
pub fn profile_dir(budget: &Budget) -> PathBuf {
    budget.target_dir.join(&budget.profile)
}

/// The directory holding `prodguard.h`.
pub fn c_include_dir() -> PathBuf {
    workspace_root().join("bindings/c/include")
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The last lines of a command's stderr, for an error message.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Runs `command`; `Ok(false)` when the program itself could not be
/// started (no cargo here), an error when it ran and failed.
fn run_build(mut command: Command, what: &str) -> Result<bool, BenchError> {
    let output = match command
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(BenchError::io(format!("run `{what}`"), e)),
    };
    if output.status.success() {
        Ok(true)
    } else {
        Err(BenchError::new(format!(
            "`{what}` failed ({}):\n{}",
            output.status,
            tail(&output.stderr)
        )))
    }
}

/// The packages the faces' measurements need, built in one command (as
/// the test setup builds them: the same feature unification, so nothing is
/// rebuilt).
pub const FACE_PACKAGES: [&str; 2] = ["prodguard-ffi", "prodguard-cli"];

/// What has been built in this process, by (target dir, profile or
/// "wasm"), with how it went.
type Built = Vec<((PathBuf, String), Result<(), BenchError>)>;
static BUILT: Mutex<Built> = Mutex::new(Vec::new());

/// Runs `build` once per process for `key` when the budget builds
/// prerequisites; later calls get the first call's result.
fn once(
    budget: &Budget,
    key: &str,
    build: impl FnOnce() -> Result<bool, BenchError>,
) -> Result<(), BenchError> {
    if !budget.build_prerequisites {
        return Ok(());
    }
    let entry = (budget.target_dir.clone(), key.to_owned());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, result)) = built.iter().find(|(k, _)| *k == entry) {
        return result.clone();
    }
    let result = build().map(|_| ());
    built.push((entry, result.clone()));
    result
}

fn face_build_command(budget: &Budget) -> String {
    let mut what = String::from("cargo build");
    for package in FACE_PACKAGES {
        what.push_str(" -p ");
        what.push_str(package);
    }
    if budget.profile == "release" {
        what.push_str(" --release");
    }
    what
}

/// Builds the C library and the CLI for this profile (`cargo build -p
/// prodguard-ffi -p prodguard-cli [--release]`), once per process, when
/// the budget builds prerequisites: a no-op when they are fresh.
pub fn build_faces(budget: &Budget) -> Result<(), BenchError> {
    once(budget, &budget.profile, || {
        let mut command = Command::new(cargo());
        command.args(["build", "-q"]);
        for package in FACE_PACKAGES {
            command.args(["-p", package]);
        }
        command.arg("--target-dir").arg(&budget.target_dir);
        if budget.profile == "release" {
            command.arg("--release");
        }
        run_build(command, &face_build_command(budget))
    })
}

fn face_artifact(budget: &Budget, artifact: PathBuf) -> Result<PathBuf, BenchError> {
    build_faces(budget)?;
    if artifact.exists() {
        Ok(artifact)
    } else {
        Err(BenchError::new(format!(
            "{} is missing: build it with `{}` (from the workspace root)",
            artifact.display(),
            face_build_command(budget)
        )))
    }
}

/// `target/<profile>/libprodguard.so`, the C library (`prodguard-ffi`).
pub fn libprodguard(budget: &Budget) -> Result<PathBuf, BenchError> {
    face_artifact(budget, profile_dir(budget).join("libprodguard.so"))
}

/// `target/<profile>/prodguard`, the CLI (`prodguard-cli`).
pub fn prodguard_cli(budget: &Budget) -> Result<PathBuf, BenchError> {
    face_artifact(budget, profile_dir(budget).join("prodguard"))
}

/// `target/prodguard.wasm`, after `scripts/build-wasm` (once per process)
/// when the budget builds prerequisites.
pub fn prodguard_wasm(budget: &Budget) -> Result<PathBuf, BenchError> {
    let artifact = budget.target_dir.join("prodguard.wasm");
    once(budget, "wasm", || {
        let mut command = Command::new("bash");
        command
            .arg(workspace_root().join("scripts/build-wasm"))
            .env("CARGO_TARGET_DIR", &budget.target_dir);
        run_build(command, "scripts/build-wasm")
    })?;
    if artifact.exists() {
        Ok(artifact)
    } else {
        Err(BenchError::new(format!(
            "{} is missing: build it with `scripts/build-wasm` (from the workspace root)",
            artifact.display()
        )))
    }
}

/// Builds (or checks) every prerequisite the measurements in `names` need,
/// so that their own timers do not include a build.
pub fn prepare(budget: &Budget, names: &[&str]) -> Result<(), BenchError> {
    use crate::{C_CALL_VS_RUST, EXEC_OVERHEAD_MS, HOOK_DECISION_MS, WASM_DECISION_US};
    if names
        .iter()
        .any(|n| [C_CALL_VS_RUST, EXEC_OVERHEAD_MS, HOOK_DECISION_MS].contains(n))
    {
        build_faces(budget)?;
    }
    if names.contains(&WASM_DECISION_US) {
        prodguard_wasm(budget)?;
    }
    Ok(())
}

/// The PostgreSQL server the `pg_*` rows run on: the one `PRODGUARD_TEST_PG`
/// names, or a throwaway cluster of `scripts/pg-cluster` that this process
/// started and stops when the last handle drops.
#[derive(Debug)]
pub struct PgCluster {
    url: String,
    /// The shell that owns a cluster we started (none for `PRODGUARD_TEST_PG`).
    watchdog: Option<Watchdog>,
}

/// `scripts/pg-cluster start` in a shell that stops the cluster once its
/// standard input closes. Dropping this handle closes it; so does this
/// process dying in any way (even `kill -9`), so no cluster is left behind.
#[derive(Debug)]
struct Watchdog {
    child: std::process::Child,
    log: PathBuf,
}

/// The watchdog: `$1` is scripts/pg-cluster, `$2` the log its stderr
/// goes to. A signal (Ctrl-C reaches the whole process group) ends it
/// through the EXIT trap too. The log is removed once the cluster it
/// started is deleted (this process may be gone by then); a failed start
/// leaves it for the error message.
const WATCHDOG: &str = r#"set -u
pg_cluster=$1 log=$2 started=
trap 'exit 130' INT TERM HUP
trap '"$pg_cluster" stop && [ -n "$started" ] && rm -f "$log"' EXIT
exports=$("$pg_cluster" start) || exit 1
started=yes
eval "$exports"
printf 'URL %s\n' "$PRODGUARD_TEST_PG"
read -r _ || true
"#;

impl PgCluster {
    /// The server's URL (its `postgres` database).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this process started the cluster (and will delete it).
    pub fn is_throwaway(&self) -> bool {
        self.watchdog.is_some()
    }

    fn start(budget: &Budget) -> Result<PgCluster, BenchError> {
        if let Ok(url) = std::env::var("PRODGUARD_TEST_PG")
            && !url.trim().is_empty()
        {
            return Ok(PgCluster {
                url,
                watchdog: None,
            });
        }
        let dir = budget.target_dir.join("prodguard-bench");
        std::fs::create_dir_all(&dir)
            .map_err(|e| BenchError::io(format!("create {}", dir.display()), e))?;
        let pid = std::process::id();
        let log = dir.join(format!("pg-cluster-{pid}.log"));
        let log_file = std::fs::File::create(&log)
            .map_err(|e| BenchError::io(format!("create {}", log.display()), e))?;
        let script = workspace_root().join("scripts/pg-cluster");
        let mut command = Command::new("bash");
        command
            .args(["-c", WATCHDOG, "prodguard-bench-pg"])
            .arg(&script)
            .arg(&log)
            .current_dir(workspace_root())
            // A state file of our own: `start` must not hand back (and our
            // `stop` must not delete) a cluster someone else started.
            .env(
                "PRODGUARD_PG_STATE",
                dir.join(format!("pg-cluster-{pid}.env")),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        // The cluster's files on the target directory's filesystem, which
        // the audit rows already require to be a real disk (on a tmpfs the
        // WAL flush is free). A deep target directory would make the
        // server's Unix socket path too long (107 bytes): /tmp then.
        if dir.as_os_str().len() <= 64 {
            command.env("TMPDIR", &dir);
        }
        let mut child = command
            .spawn()
            .map_err(|e| BenchError::io(format!("run {}", script.display()), e))?;
        let url = child.stdout.take().and_then(|stdout| {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).ok()?;
            line.trim_end().strip_prefix("URL ").map(str::to_owned)
        });
        let watchdog = Watchdog { child, log };
        match url {
            Some(url) => Ok(PgCluster {
                url,
                watchdog: Some(watchdog),
            }),
            None => {
                let log = watchdog.log.clone();
                // Stops whatever was started before the failure.
                drop(watchdog);
                let said = std::fs::read(&log).map(|b| tail(&b)).unwrap_or_default();
                let _ = std::fs::remove_file(&log);
                Err(BenchError::new(format!(
                    "scripts/pg-cluster start failed (the pg_* rows need PostgreSQL's server: \
                     Debian `apt-get install postgresql`, or set PRODGUARD_TEST_PG):\n{said}"
                )))
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // End of input: the shell's `read` returns and its EXIT trap runs
        // `scripts/pg-cluster stop`, which deletes the cluster.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The cluster every `pg_*` row shares while any holds it.
static CLUSTER: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());

/// The PostgreSQL server for the `pg_*` rows: `PRODGUARD_TEST_PG` when set,
/// else a throwaway cluster (`scripts/pg-cluster`, about 2 s to start),
/// shared by everyone holding a handle and deleted when the last drops.
/// Hold one across several rows (as the binary and [`crate::run_all`] do)
/// to start it once.
pub fn postgres(budget: &Budget) -> Result<Arc<PgCluster>, BenchError> {
    let mut shared = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(cluster) = shared.upgrade() {
        return Ok(cluster);
    }
    let cluster = Arc::new(PgCluster::start(budget)?);
    *shared = Arc::downgrade(&cluster);
    Ok(cluster)
}

/// A handle on the PostgreSQL server when any of `names` needs one, so the
/// rows share one cluster; `None` when none does. An error is the rows'
/// own to report, so it is returned for the caller to show.
pub fn hold_postgres(
    budget: &Budget,
    names: &[&str],
) -> Option<Result<Arc<PgCluster>, BenchError>> {
    names
        .iter()
        .any(|n| crate::PG_NAMES.contains(n))
        .then(|| postgres(budget))
}
