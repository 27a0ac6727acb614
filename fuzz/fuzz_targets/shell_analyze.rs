//! The hook's shell analyser on arbitrary command lines: an analysis,
//! never a panic (libFuzzer's -timeout catches one that takes too long).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use prodguard_core::shell::{Context, analyze};

fuzz_target!(|data: &[u8]| {
    let Ok(command) = std::str::from_utf8(data) else {
        return;
    };
    let env = BTreeMap::from([("PGHOST".to_owned(), "prod-db".to_owned())]);
    let _ = analyze(command, &Context::new(Some("/home/dev/app"), &env));
});
