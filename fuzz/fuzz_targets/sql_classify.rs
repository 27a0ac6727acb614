//! The SQL classifier on arbitrary text in every dialect: a script, never
//! a panic; a statement it cannot read is `db.unknown`, which is
//! destructive (fail closed), so the script is at least as dangerous.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prodguard_core::sql::{Dialect, SqlKind, classify};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for dialect in Dialect::ALL {
        let script = classify(text, dialect);
        if script.statements.iter().any(|s| s.kind == SqlKind::Unknown) {
            assert!(script.operation.is_destructive(), "{text:?}");
        }
    }
});
