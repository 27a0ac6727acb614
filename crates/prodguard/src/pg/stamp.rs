//! Environment stamps in PostgreSQL databases (as Rails stamps
//! `ar_internal_metadata`): a production database restored elsewhere still
//! says it is production.

use postgres::types::Type;
use postgres::{Client, IsolationLevel};
use prodguard_core::Tier;
use prodguard_core::session::Stamp;

use super::schema::SCHEMA_LOCK_KEY;
use super::{PgServer, describe, is_postgres_url};
use crate::stamp::StampReader;

/// The `target` key of the row that stamps the database itself.
pub const DATABASE_STAMP: &str = "database";

const CREATE_STAMP_TABLE: &str = "CREATE TABLE IF NOT EXISTS prodguard_stamp (
    target text PRIMARY KEY,
    environment text NOT NULL,
    tier text NOT NULL,
    stamped_at text,
    stamped_by text
)";

/// Stamps in PostgreSQL databases: a target that is a PostgreSQL URL carries
/// the stamp in its own `prodguard_stamp` table (the row
/// [`DATABASE_STAMP`]); other targets carry none here.
///
/// A server that cannot be reached is an error (the guard refuses), never
/// "no stamp".
#[derive(Debug, Clone, Copy, Default)]
pub struct PgStamps;

impl StampReader for PgStamps {
    fn read(&self, target: &str) -> Result<Option<Stamp>, crate::stamp::StampError> {
        if !is_postgres_url(target) {
            return Ok(None);
        }
        read_stamp(target).map_err(crate::stamp::StampError::from)
    }
}

/// The stamp of the database at `url`; `Ok(None)` when it carries none.
/// Errors name the server without its password.
pub fn read_stamp(url: &str) -> Result<Option<Stamp>, String> {
    let server = PgServer::parse(url).map_err(|e| e.to_string())?;
    let mut client = server.connect().map_err(|e| e.to_string())?;
    read_stamp_on(&mut client).map_err(|e| {
        format!(
            "cannot read the environment stamp of {}: {e}",
            server.name()
        )
    })
}

/// The database's stamp, read on `client`.
pub fn read_stamp_on(client: &mut Client) -> Result<Option<Stamp>, String> {
    let has_table: bool = client
        .query_typed_one("SELECT to_regclass('prodguard_stamp') IS NOT NULL", &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| describe(&e))?;
    if !has_table {
        return Ok(None);
    }
    let row = client
        .query_typed_opt(
            "SELECT environment, tier, stamped_at, stamped_by FROM prodguard_stamp WHERE target = $1",
            &[(&DATABASE_STAMP, Type::TEXT)],
        )
        .map_err(|e| describe(&e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let environment: String = row.try_get(0).map_err(|e| describe(&e))?;
    let tier: String = row.try_get(1).map_err(|e| describe(&e))?;
    let tier = Tier::from_name(&tier)
        .ok_or_else(|| format!("the stamp has no valid tier (`{tier}`); re-stamp the database"))?;
    Ok(Some(Stamp {
        environment,
        tier,
        stamped_at: row.try_get(2).map_err(|e| describe(&e))?,
        stamped_by: row.try_get(3).map_err(|e| describe(&e))?,
    }))
}

/// Writes `stamp` into the database at `url` (creating `prodguard_stamp` if
/// needed), in one transaction.
pub fn write_stamp(url: &str, stamp: &Stamp) -> Result<(), String> {
    let server = PgServer::parse(url).map_err(|e| e.to_string())?;
    let mut client = server.connect().map_err(|e| e.to_string())?;
    write_stamp_on(&mut client, stamp)
        .map_err(|e| format!("cannot stamp {}: {}", server.name(), describe(&e)))
}

fn write_stamp_on(client: &mut Client, stamp: &Stamp) -> Result<(), postgres::Error> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()?;
    // Concurrent first stamps must not race on CREATE TABLE.
    tx.execute_typed(
        "SELECT pg_advisory_xact_lock($1)",
        &[(&SCHEMA_LOCK_KEY, Type::INT8)],
    )?;
    tx.batch_execute(CREATE_STAMP_TABLE)?;
    tx.execute_typed(
        "INSERT INTO prodguard_stamp (target, environment, tier, stamped_at, stamped_by) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (target) DO UPDATE SET environment = excluded.environment, \
         tier = excluded.tier, stamped_at = excluded.stamped_at, stamped_by = excluded.stamped_by",
        &[
            (&DATABASE_STAMP, Type::TEXT),
            (&stamp.environment, Type::TEXT),
            (&stamp.tier.as_str(), Type::TEXT),
            (&stamp.stamped_at, Type::TEXT),
            (&stamp.stamped_by, Type::TEXT),
        ],
    )?;
    tx.commit()
}
