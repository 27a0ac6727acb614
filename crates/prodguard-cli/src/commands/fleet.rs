//! `prodguard fleet …`: prepare the PostgreSQL database that hosts share.

use prodguard::GuardError;
use prodguard_core::ExitCode as Refusal;

use crate::cli::FleetCommand;
use crate::envelope::{self, Envelope};

pub(crate) fn run(command: FleetCommand) -> Result<Envelope, GuardError> {
    match command {
        FleetCommand::Init { url, json } => {
            let server = prodguard::pg::PgServer::parse(&url)
                .map_err(|e| GuardError::Policy(e.to_string()))?;
            match server.init_schema() {
                Ok(version) => {
                    if !json {
                        say!(
                            "{}: prodguard tables ready (schema version {version})",
                            server.name()
                        );
                    }
                    Ok(envelope::ok(serde_json::json!({
                        "server": server.name(),
                        "schema_version": version,
                    })))
                }
                Err(e) => {
                    Ok(envelope::error(Refusal::AuditUnavailable.code(), e.to_string()).told())
                }
            }
        }
    }
}
