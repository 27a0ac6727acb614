//! The core stays sans-IO: it builds for wasm32-unknown-unknown and names no
//! I/O API of std.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// A test harness, not the core: it reads files (and runs cargo), which
// the core's clippy.toml forbids in the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn builds_for_wasm32_unknown_unknown() {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join("../../target"))
        .join("wasm-check");
    let output = Command::new(env!("CARGO"))
        .args([
            "build",
            "--lib",
            "-p",
            "prodguard-core",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(crate_dir())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "prodguard-core must build for wasm32-unknown-unknown \
         (if the target is missing: rustup target add wasm32-unknown-unknown):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn names_no_io_api() {
    let forbidden = [
        "std::fs",
        "std::env",
        "std::net",
        "std::process",
        "std::io::stdin",
        "SystemTime",
        "Instant::now",
        "std::thread",
        "println!",
        "eprintln!",
    ];
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src"), &mut files);
    assert!(files.len() >= 5, "found the sources");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for api in forbidden {
            assert!(
                !text.contains(api),
                "{} uses {api}: the core must do no I/O",
                file.display()
            );
        }
    }
}
