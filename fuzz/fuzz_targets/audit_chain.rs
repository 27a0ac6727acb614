//! The audit chain verifier on arbitrary bytes as a log, line by line: a
//! verdict for every line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prodguard_core::audit::{ChainVerifier, is_whole_record};

fuzz_target!(|data: &[u8]| {
    let mut verifier = ChainVerifier::new();
    for line in data.split_inclusive(|&b| b == b'\n') {
        let _ = is_whole_record(line);
        if verifier.push(line).is_err() {
            break;
        }
    }
});
