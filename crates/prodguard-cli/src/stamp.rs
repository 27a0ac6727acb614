//! `prodguard stamp`: write the environment into a SQLite database.

use std::path::Path;

use prodguard::stamp::{is_sqlite, read_sqlite_stamp, write_sqlite_stamp};
use prodguard::{Guard, GuardError, Policy, facts};
use prodguard_core::session::{STAMP_OPERATION, Stamp};

pub(crate) fn run(policy: Policy, target: &str, env: &str) -> Result<i32, GuardError> {
    let path = Path::new(target);
    if !is_sqlite(path) {
        return Err(GuardError::Policy(format!(
            "{target} is not a SQLite database; stamps are written into SQLite files"
        )));
    }
    let (name, tier) = crate::approve::resolve_environment(env, &policy)?;
    let existing = read_sqlite_stamp(path).map_err(|e| {
        GuardError::Policy(format!("cannot read the current stamp of {target}: {e}"))
    })?;
    // The database's own word counts as a declaration: re-stamping a
    // production database from a laptop is guarded like production.
    let mut builder = Guard::builder().policy(policy);
    if let Some(current) = &existing {
        builder = builder.environment(current.environment.clone());
    }
    let guard = builder.build()?;
    let stamp = Stamp {
        environment: name.clone(),
        tier,
        stamped_at: Some(facts::now().to_rfc3339()),
        stamped_by: Some(guard.actor().user.clone()),
    };
    let written = guard
        .operation(STAMP_OPERATION)
        .target(target)
        .try_run(|| write_sqlite_stamp(path, &stamp));
    match written {
        Ok(Ok(())) => {
            let was = existing
                .map(|s| format!(" (was {})", s.environment))
                .unwrap_or_default();
            say!("{target}: stamped {name} (tier {tier}){was}");
            Ok(0)
        }
        Ok(Err(e)) => {
            eprintln!("prodguard: cannot write the stamp into {target}: {e}");
            Ok(1)
        }
        Err(e) => {
            eprintln!("prodguard: {e}");
            Ok(e.exit_code())
        }
    }
}
