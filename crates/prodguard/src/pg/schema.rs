//! The prodguard tables, created on first use, with a version row for later
//! migrations.

use postgres::types::Type;
use postgres::{Client, IsolationLevel};

use super::describe;

/// The schema version this prodguard creates and understands. An older
/// prodguard refuses a schema of a newer version, so hosts of a fleet
/// that upgrades never coordinate two ways at once (version 1's fleet lock
/// was a session advisory lock, version 2's a lease row).
pub const SCHEMA_VERSION: i32 = 2;

/// The advisory lock (transaction-scoped) that serialises schema creation,
/// so hosts starting at once do not race on `CREATE TABLE IF NOT EXISTS`.
/// The keys of prodguard's own locks start with the bytes `pgd`.
pub(crate) const SCHEMA_LOCK_KEY: i64 = 0x7067_6400_0000_0001;

/// The tables: the audit trail, spent approvals, the fleet lock's leases
/// and the target stamp. Version 1 had `prodguard_lock_holders` in place of
/// `prodguard_lease`; version 2 drops it.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS prodguard_schema (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS prodguard_audit (
    id bigserial PRIMARY KEY,
    log_id text NOT NULL,
    seq bigint NOT NULL UNIQUE,
    hash text NOT NULL,
    record text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE prodguard_audit IS
    'prodguard audit trail: `record` holds each record''s exact bytes, hash-chained; verify with `prodguard audit verify --postgres URL`. Never edit or delete rows.';
CREATE TABLE IF NOT EXISTS prodguard_spent (
    token_id text PRIMARY KEY,
    log_id text,
    seq bigint,
    host text,
    issued timestamptz,
    spent_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE prodguard_spent IS
    'prodguard approval tokens already used: a token whose nonce is here is refused on every host.';
CREATE TABLE IF NOT EXISTS prodguard_stamp (
    target text PRIMARY KEY,
    environment text NOT NULL,
    tier text NOT NULL,
    stamped_at text,
    stamped_by text
);
COMMENT ON TABLE prodguard_stamp IS
    'prodguard environment stamp: the row `database` names the environment this database belongs to.';
CREATE TABLE IF NOT EXISTS prodguard_lease (
    key bigint PRIMARY KEY,
    operation text NOT NULL,
    target text NOT NULL,
    holder text NOT NULL,
    fence bigint NOT NULL,
    since timestamptz NOT NULL,
    until timestamptz NOT NULL
);
COMMENT ON TABLE prodguard_lease IS
    'prodguard fleet locks: the lease of an (operation, target), held until `until` and renewed by its holder; `fence` grows with each grant. Never delete rows: fences would start again at 1.';
DROP TABLE IF EXISTS prodguard_lock_holders;
";

/// Why the prodguard tables could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// A statement failed.
    #[error(
        "creating or reading the prodguard tables failed: {}; the role needs CREATE on the schema the first time (or run `prodguard fleet init` once as a role that has it)",
        describe(.0)
    )]
    Sql(#[from] postgres::Error),
    /// The tables were made by a newer prodguard.
    #[error(
        "the prodguard tables are at schema version {found}, newer than this prodguard understands ({SCHEMA_VERSION}); upgrade prodguard on this host"
    )]
    TooNew {
        /// The version found.
        found: i32,
    },
}

/// The schema version in place, `None` when the tables do not exist yet.
pub fn schema_version(client: &mut Client) -> Result<Option<i32>, SchemaError> {
    let exists: bool = client
        .query_typed_one("SELECT to_regclass('prodguard_schema') IS NOT NULL", &[])?
        .try_get(0)?;
    if !exists {
        return Ok(None);
    }
    Ok(client
        .query_typed_one("SELECT max(version) FROM prodguard_schema", &[])?
        .try_get::<_, Option<i32>>(0)?)
}

/// Creates the prodguard tables if they are missing, in one transaction
/// under an advisory lock (concurrent first uses do not race), and records
/// version [`SCHEMA_VERSION`]. Idempotent; where the schema is already in
/// place nothing is created, so a role without CREATE can use it.
pub fn init(client: &mut Client) -> Result<(), SchemaError> {
    match schema_version(client)? {
        Some(SCHEMA_VERSION) => return Ok(()),
        Some(found) if found > SCHEMA_VERSION => return Err(SchemaError::TooNew { found }),
        _ => {}
    }
    // Read committed whatever the server's default, so what the hosts that
    // went first committed is seen once the lock is granted.
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()?;
    tx.execute_typed(
        "SELECT pg_advisory_xact_lock($1)",
        &[(&SCHEMA_LOCK_KEY, Type::INT8)],
    )?;
    tx.batch_execute(SCHEMA)?;
    let found: Option<i32> = tx
        .query_typed_one("SELECT max(version) FROM prodguard_schema", &[])?
        .try_get(0)?;
    if let Some(found) = found.filter(|&v| v > SCHEMA_VERSION) {
        return Err(SchemaError::TooNew { found });
    }
    tx.execute_typed(
        "INSERT INTO prodguard_schema (version) VALUES ($1) ON CONFLICT (version) DO NOTHING",
        &[(&SCHEMA_VERSION, Type::INT4)],
    )?;
    tx.commit()?;
    Ok(())
}
