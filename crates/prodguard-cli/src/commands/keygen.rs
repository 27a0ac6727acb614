//! `prodguard keygen`: create an approval key file.

use std::path::Path;

use prodguard::GuardError;
use prodguard_core::ExitCode as Refusal;

pub(crate) fn run(out: &Path) -> Result<i32, GuardError> {
    match prodguard::approval::generate_key(out) {
        Ok(()) => {
            eprintln!("prodguard: wrote a new key to {}", out.display());
            Ok(0)
        }
        Err(e) => {
            eprintln!("prodguard: {e}");
            Ok(Refusal::PolicyError.code())
        }
    }
}
