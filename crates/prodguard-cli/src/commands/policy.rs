//! `prodguard policy …`: check a policy file, show the policy in force.

use std::path::PathBuf;

use prodguard::{GuardError, Policy, config};
use serde_json::json;

use super::{load_policy, to_json};
use crate::cli::PolicyCommand;
use crate::envelope::{self, Envelope};

pub(crate) fn run(
    command: PolicyCommand,
    policy: Option<&PathBuf>,
) -> Result<Envelope, GuardError> {
    match command {
        PolicyCommand::Check { file, json } => {
            let policy = config::load_policy_file(&file)?;
            let rules = policy.rules().len();
            // Under a system policy the file is only ever used layered over
            // it: one that would loosen it is not ok.
            let layered = config::with_system_layer(Some(policy))?;
            let system = layered
                .provenance()
                .first()
                .filter(|source| source.system)
                .map(|source| source.path.clone());
            if !json {
                let over = system
                    .as_deref()
                    .map(|path| format!(", layered over {path}"))
                    .unwrap_or_default();
                say!(
                    "{}: ok ({rules} rule{}{over})",
                    file.display(),
                    if rules == 1 { "" } else { "s" }
                );
            }
            Ok(envelope::ok(json!({
                "file": file,
                "rules": rules,
                "layered_over": system,
            })))
        }
        PolicyCommand::Show { default, json } => {
            let loaded = if default {
                None
            } else {
                Some(load_policy(policy)?)
            };
            let toml = loaded.as_ref().map_or_else(
                || prodguard_core::policy::DEFAULT_POLICY_TOML.to_owned(),
                Policy::to_toml_string,
            );
            if json {
                // The same policy as an object, for jq; the TOML is the text.
                let object: serde_json::Value = toml::from_str(&toml).map_err(|e| {
                    GuardError::Policy(format!("cannot render the policy as JSON: {e}"))
                })?;
                let (source, sources) = match &loaded {
                    Some(policy) => (policy.source().to_string(), to_json(&policy.provenance())?),
                    None => ("built-in default".to_owned(), json!([])),
                };
                return Ok(envelope::ok(json!({
                    "source": source,
                    "sources": sources,
                    "policy": object,
                    "toml": toml,
                })));
            }
            if let Some(policy) = &loaded {
                say!("# effective policy, from {}", policy.source());
                for source in policy.provenance() {
                    say!(
                        "#   {} sha256 {}{}",
                        prodguard_core::text::escape(&source.path),
                        source.sha256,
                        if source.system { " (system)" } else { "" }
                    );
                }
            }
            say_raw!("{toml}");
            Ok(envelope::ok(json!({})))
        }
    }
}
