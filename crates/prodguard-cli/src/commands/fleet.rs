//! `prodguard fleet …`: prepare the PostgreSQL database that hosts share.

use prodguard::GuardError;
use prodguard_core::ExitCode as Refusal;

use crate::cli::FleetCommand;

pub(crate) fn run(command: FleetCommand) -> Result<i32, GuardError> {
    match command {
        FleetCommand::Init { url } => {
            let server = prodguard::pg::PgServer::parse(&url)
                .map_err(|e| GuardError::Policy(e.to_string()))?;
            match server.init_schema() {
                Ok(version) => {
                    say!(
                        "{}: prodguard tables ready (schema version {version})",
                        server.name()
                    );
                    Ok(0)
                }
                Err(e) => {
                    tell!("prodguard: {e}");
                    Ok(Refusal::AuditUnavailable.code())
                }
            }
        }
    }
}
