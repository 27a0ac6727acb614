//! The policy parser and validator (TOML and JSON) on arbitrary text: an
//! answer, never a panic; what parses, evaluates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prodguard_core::{Policy, Tier};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for parsed in [
        Policy::parse_toml(text, "fuzz.toml"),
        Policy::parse_json(text, "fuzz.json"),
    ] {
        if let Ok(policy) = parsed {
            for tier in [
                Tier::Production,
                Tier::Staging,
                Tier::Development,
                Tier::Unknown,
            ] {
                let _ = policy.evaluate(tier, "db.migrate");
            }
        }
    }
});
