//! `prodguard stamp`: write the environment into a SQLite or PostgreSQL database.

use std::path::Path;

use prodguard::stamp::{is_sqlite, read_sqlite_stamp, write_sqlite_stamp};
use prodguard::{Guard, GuardError, Operation, Policy, RunError, facts};
use prodguard_core::detect::canonical_environment;
use prodguard_core::session::{STAMP_OPERATION, Stamp};
use prodguard_core::text::escape;

use super::token_hint;
use crate::envelope::{self, Envelope};

/// Where a stamp lives: a SQLite file, or a PostgreSQL database (named
/// without its password wherever the name is shown or recorded).
enum Target<'a> {
    Sqlite(&'a Path),
    Postgres { url: &'a str, name: String },
}

impl Target<'_> {
    fn read(&self) -> Result<Option<Stamp>, String> {
        match self {
            Target::Sqlite(path) => read_sqlite_stamp(path).map_err(|e| e.to_string()),
            Target::Postgres { url, .. } => prodguard::pg::read_stamp(url),
        }
    }

    fn write(&self, stamp: &Stamp) -> Result<(), String> {
        match self {
            Target::Sqlite(path) => write_sqlite_stamp(path, stamp).map_err(|e| e.to_string()),
            Target::Postgres { url, .. } => prodguard::pg::write_stamp(url, stamp),
        }
    }
}

pub(crate) fn run(
    policy: Policy,
    target: &str,
    env: &str,
    json: bool,
) -> Result<Envelope, GuardError> {
    let place = if prodguard::pg::is_postgres_url(target) {
        let server = prodguard::pg::PgServer::parse(target)
            .map_err(|e| GuardError::Policy(e.to_string()))?;
        Target::Postgres {
            url: target,
            name: server.name().to_owned(),
        }
    } else if is_sqlite(Path::new(target)) {
        Target::Sqlite(Path::new(target))
    } else {
        return Err(GuardError::Policy(format!(
            "{} is neither a SQLite database nor a postgresql:// URL; stamps are written \
             into those",
            escape(target)
        )));
    };
    let target = match &place {
        Target::Sqlite(_) => target.to_owned(),
        Target::Postgres { name, .. } => name.clone(),
    };
    let target = target.as_str();
    let (name, tier) = canonical_environment(env, policy.environment())
        .map_err(|e| GuardError::Policy(e.to_string()))?;
    let existing = place.read().map_err(|e| {
        GuardError::Policy(format!(
            "cannot read the current stamp of {}: {e}",
            escape(target)
        ))
    })?;
    // The database's own word counts as a declaration: re-stamping a
    // production database from a laptop is guarded like production.
    let guard = Guard::builder()
        .policy(policy)
        .restamping(existing.as_ref())
        .build()?;
    let stamp = Stamp {
        environment: name.clone(),
        tier,
        stamped_at: Some(facts::now().to_rfc3339()),
        stamped_by: Some(guard.actor().user.clone()),
    };
    let written = guard
        .operation(STAMP_OPERATION)
        .target(target)
        .run(|| place.write(&stamp));
    match written {
        Ok(()) => {
            if !json {
                let was = existing
                    .as_ref()
                    .map(|s| format!(" (was {})", escape(&s.environment)))
                    .unwrap_or_default();
                say!("{}: stamped {name} (tier {tier}){was}", escape(target));
            }
            Ok(envelope::ok(serde_json::json!({
                "target": target,
                "environment": name,
                "tier": tier,
                "was": existing.map(|s| s.environment),
            })))
        }
        Err(RunError::Failed(e)) => Ok(envelope::error(
            1,
            format!("cannot write the stamp into {}: {e}", escape(target)),
        )
        .told()),
        Err(RunError::Refused(e)) => {
            let refused = envelope::error(e.exit_code().code(), e.to_string()).told();
            let operation = Operation::new(STAMP_OPERATION).with_target(target);
            // `stamp` has no --approval option: it reads the variable.
            if let Some(hint) = token_hint(&guard, &operation, &e, "in PRODGUARD_APPROVAL") {
                tell!("  {hint}");
            }
            Ok(refused)
        }
    }
}
