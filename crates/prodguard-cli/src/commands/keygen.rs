//! `prodguard keygen --approver NAME --out FILE`: make an approver's key pair.

use std::path::Path;

use prodguard::GuardError;
use prodguard_core::ExitCode as Refusal;

/// Writes the private key to `out`; prints the public key on stdout and,
/// on stderr, the line that lists the approver in the system policy.
pub(crate) fn run(approver: &str, out: &Path) -> Result<i32, GuardError> {
    match prodguard::approval::generate_key(approver, out) {
        Ok(key) => {
            let public = key.public_key_text();
            say!("{public}");
            tell!(
                "prodguard: wrote {approver}'s private key to {} (keep it to yourself); \
                 root lists the approver in the system policy's [approval] with:\n  \
                 approvers = {{ {approver} = {{ key = \"{public}\", user = \"OS_ACCOUNT\" }} }}\n\
                 (OS_ACCOUNT: the approver's login, which four eyes compares with the requester's)",
                out.display()
            );
            Ok(0)
        }
        Err(e) => {
            tell!("prodguard: {e}");
            Ok(Refusal::PolicyError.code())
        }
    }
}
