//! `prodguard policy …`: check a policy file, show the policy in force.

use std::path::PathBuf;

use prodguard::{GuardError, config};

use super::load_policy;
use crate::cli::PolicyCommand;

pub(crate) fn run(command: PolicyCommand, policy: Option<&PathBuf>) -> Result<i32, GuardError> {
    match command {
        PolicyCommand::Check { file } => {
            let policy = config::load_policy_file(&file)?;
            say!(
                "{}: ok ({} rule{})",
                file.display(),
                policy.rules().len(),
                if policy.rules().len() == 1 { "" } else { "s" }
            );
            Ok(0)
        }
        PolicyCommand::Show { default } => {
            if default {
                say_raw!("{}", prodguard_core::policy::DEFAULT_POLICY_TOML);
            } else {
                let policy = load_policy(policy)?;
                say!("# effective policy, from {}", policy.source());
                say_raw!("{}", policy.to_toml_string());
            }
            Ok(0)
        }
    }
}
