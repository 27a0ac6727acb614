//! `prodguard keygen --approver NAME --out FILE`: make an approver's key pair.

use std::path::Path;

use prodguard::GuardError;
use prodguard_core::ExitCode as Refusal;

use crate::envelope::{self, Envelope};

/// Writes the private key to `out`; prints the public key on stdout and,
/// on stderr, the line that lists the approver in the system policy.
pub(crate) fn run(approver: &str, out: &Path, json: bool) -> Result<Envelope, GuardError> {
    match prodguard::approval::generate_key(approver, out) {
        Ok(key) => {
            let public = key.public_key_text();
            let listing = format!(
                "approvers = {{ {approver} = {{ key = \"{public}\", user = \"OS_ACCOUNT\" }} }}"
            );
            if !json {
                say!("{public}");
            }
            tell!(
                "prodguard: wrote {approver}'s private key to {} (keep it to yourself); \
                 root lists the approver in the system policy's [approval] with:\n  {listing}\n\
                 (OS_ACCOUNT: the approver's login, which four eyes compares with the requester's)",
                out.display()
            );
            Ok(envelope::ok(serde_json::json!({
                "approver": approver,
                "public_key": public,
                "key_file": out,
                "policy_line": listing,
            })))
        }
        Err(e) => Ok(envelope::error(Refusal::PolicyError.code(), e.to_string()).told()),
    }
}
