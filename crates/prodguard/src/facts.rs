//! Reading the real process: environment, marker file, host name, clock, actor.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prodguard_core::audit::Actor;
use prodguard_core::detect::{AGENT_VARIABLES, ci_variables};
use prodguard_core::policy::{ActorKind, EnvironmentConfig};
use prodguard_core::{Facts, Timestamp};

use crate::small_file;

/// The marker file is a name, not a document: one larger than this names
/// no environment.
const MARKER_MAX_BYTES: u64 = 4096;

/// The current time from the system clock.
pub fn now() -> Timestamp {
    let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    };
    Timestamp::from_unix_micros(micros)
}

/// A snapshot of this process's facts, reading every marker file `config`
/// names (the system marker always).
///
/// Variables whose names or values are not UTF-8 are kept lossily: a
/// mangled value maps to no tier, so it can only make the answer more
/// cautious.
pub fn gather_facts(config: &EnvironmentConfig) -> Facts {
    let env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    Facts {
        explicit: None,
        env,
        files: read_markers(config),
        hostname: hostname(),
    }
}

/// The content of every marker file `config` names that exists (the system
/// marker always), by path.
pub fn read_markers(config: &EnvironmentConfig) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for marker in config.marker_paths() {
        if let Some(content) = read_marker(&marker) {
            files.insert(marker, content);
        }
    }
    files
}

fn read_marker(path: &str) -> Option<String> {
    match small_file::read(Path::new(path), MARKER_MAX_BYTES) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            // A marker we cannot read (or a FIFO, a device, a huge file) is
            // not the same as no marker: give detection a value that maps
            // to no tier, so it fails closed.
            tracing::warn!(path, error = %e, "marker file exists but cannot be read");
            Some(format!("<unreadable: {e}>"))
        }
    }
}

/// The host's name, if the system gives one.
pub fn hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().into_owned())
        .filter(|h| !h.is_empty())
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Who is acting: the OS account of the real uid (the identity), labelled
/// `PRODGUARD_ACTOR`, else `SUDO_USER`, else `USER`/`LOGNAME`, else that
/// account's name; and as what kind of actor.
pub fn current_actor() -> Actor {
    let user = non_empty_var("PRODGUARD_ACTOR")
        .or_else(|| non_empty_var("SUDO_USER"))
        .or_else(|| non_empty_var("USER"))
        .or_else(|| non_empty_var("LOGNAME"))
        .unwrap_or_else(uid_name);
    Actor {
        user,
        kind: actor_kind(),
        account: Some(uid_name()),
    }
}

/// The real uid's account name, or `uid:N` when the password database has
/// no entry for it (a container's arbitrary uid): the identity four eyes
/// compares.
pub fn real_account() -> String {
    uid_name()
}

fn uid_name() -> String {
    os_user().unwrap_or_else(|| format!("uid:{}", nix::unistd::getuid()))
}

/// The name of the process's uid, as the system's user database has it.
pub fn os_user() -> Option<String> {
    match nix::unistd::User::from_uid(nix::unistd::getuid()) {
        Ok(Some(user)) => Some(user.name),
        _ => None,
    }
}

/// The core decides the kind (`prodguard_core::detect::actor_kind`) from
/// the variables that can say it and whether there is a terminal.
fn actor_kind() -> ActorKind {
    let env: BTreeMap<String, String> = AGENT_VARIABLES
        .iter()
        .copied()
        .chain(ci_variables())
        .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)))
        .collect();
    let terminal = std::io::stdin().is_terminal() || std::fs::File::open("/dev/tty").is_ok();
    prodguard_core::detect::actor_kind(&env, terminal)
}

/// Fills `bytes` from the kernel's CSPRNG (/dev/urandom).
pub fn random_bytes(bytes: &mut [u8]) -> std::io::Result<()> {
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(bytes))
}

/// A fresh random identifier (128 bits, hex) for attempts and logs.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if random_bytes(&mut bytes).is_err() {
        // No /dev/urandom (a sandbox): unique, not secret, is all an id needs.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed = format!(
            "{}:{}:{}",
            now().unix_micros(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let digest = <sha2::Sha256 as sha2::Digest>::digest(seed.as_bytes());
        bytes.copy_from_slice(&digest[..16]);
    }
    prodguard_core::audit::hex(&bytes)
}
