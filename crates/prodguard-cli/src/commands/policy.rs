//! `prodguard policy …`: check a policy file, show the policy in force.

use std::path::PathBuf;

use prodguard::{GuardError, config};

use super::load_policy;
use crate::cli::PolicyCommand;

pub(crate) fn run(command: PolicyCommand, policy: Option<&PathBuf>) -> Result<i32, GuardError> {
    match command {
        PolicyCommand::Check { file } => {
            let policy = config::load_policy_file(&file)?;
            let rules = policy.rules().len();
            // Under a system policy the file is only ever used layered over
            // it: one that would loosen it is not ok.
            let layered = config::with_system_layer(Some(policy))?;
            let over = match layered.provenance().first() {
                Some(system) if system.system => format!(", layered over {}", system.path),
                _ => String::new(),
            };
            say!(
                "{}: ok ({rules} rule{}{over})",
                file.display(),
                if rules == 1 { "" } else { "s" }
            );
            Ok(0)
        }
        PolicyCommand::Show { default } => {
            if default {
                say_raw!("{}", prodguard_core::policy::DEFAULT_POLICY_TOML);
            } else {
                let policy = load_policy(policy)?;
                say!("# effective policy, from {}", policy.source());
                for source in policy.provenance() {
                    say!(
                        "#   {} sha256 {}{}",
                        prodguard_core::text::escape(&source.path),
                        source.sha256,
                        if source.system { " (system)" } else { "" }
                    );
                }
                say_raw!("{}", policy.to_toml_string());
            }
            Ok(0)
        }
    }
}
