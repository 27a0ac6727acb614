//! Environment stamps: a target that says which environment it belongs to
//! (as Rails stamps `ar_internal_metadata`), so a production dump restored
//! on a laptop is recognised before anything runs on it.

use std::path::Path;

use prodguard_core::session::Stamp;
pub use prodguard_core::session::StampError;

/// Reads a target's stamp. `Ok(None)`: the target carries none (or is not
/// something that can); `Err`: it should be readable but is not (the guard
/// refuses with 124).
pub trait StampReader: Send + Sync {
    /// The stamp of `target`.
    fn read(&self, target: &str) -> Result<Option<Stamp>, StampError>;
}

/// Reads no stamps.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStamps;

impl StampReader for NoStamps {
    fn read(&self, _: &str) -> Result<Option<Stamp>, StampError> {
        Ok(None)
    }
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Whether `path` is a SQLite database file: a regular file that starts
/// with SQLite's magic. Opened without blocking and without becoming a
/// controlling terminal: a target may name a FIFO or a device, which
/// carries no stamp and must not hold the run up.
pub fn is_sqlite(path: &Path) -> bool {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut magic = [0u8; 16];
    std::fs::File::options()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .and_then(|mut f| {
            if !f.metadata()?.is_file() {
                return Err(std::io::ErrorKind::InvalidInput.into());
            }
            f.read_exact(&mut magic)
        })
        .is_ok_and(|()| &magic == SQLITE_MAGIC)
}

/// Stamps in SQLite databases: the `prodguard_stamp` table of the file the
/// target names. Targets that are not SQLite files carry no stamp.
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteStamps;

#[cfg(feature = "sqlite")]
impl StampReader for SqliteStamps {
    fn read(&self, target: &str) -> Result<Option<Stamp>, StampError> {
        let path = Path::new(target);
        if !is_sqlite(path) {
            return Ok(None);
        }
        read_sqlite_stamp(path).map_err(StampError::from)
    }
}

#[cfg(feature = "sqlite")]
const CREATE: &str =
    "CREATE TABLE IF NOT EXISTS prodguard_stamp (key TEXT PRIMARY KEY, value TEXT NOT NULL)";

/// The stamp in the SQLite database at `path`, read-only.
#[cfg(feature = "sqlite")]
pub fn read_sqlite_stamp(path: &Path) -> Result<Option<Stamp>, String> {
    use rusqlite::{Connection, OpenFlags};
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| e.to_string())?;
    read_sqlite_stamp_on(&db)
}

/// The stamp in the SQLite database `db` is open on: its `main` database,
/// which a temporary table of the same name cannot shadow.
#[cfg(feature = "sqlite")]
pub fn read_sqlite_stamp_on(db: &rusqlite::Connection) -> Result<Option<Stamp>, String> {
    let has_table: bool = db
        .query_row(
            "SELECT count(*) > 0 FROM main.sqlite_master WHERE type = 'table' AND name = 'prodguard_stamp'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if !has_table {
        return Ok(None);
    }
    let get = |key: &str| -> Result<Option<String>, String> {
        match db.query_row(
            "SELECT value FROM main.prodguard_stamp WHERE key = ?1",
            [key],
            |r| r.get(0),
        ) {
            Ok(value) => Ok(Some(value)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    };
    let Some(environment) = get("environment")? else {
        return Ok(None);
    };
    let tier = get("tier")?
        .and_then(|t| prodguard_core::Tier::from_name(&t))
        .ok_or_else(|| "the stamp has no valid tier; re-stamp the target".to_string())?;
    Ok(Some(Stamp {
        environment,
        tier,
        stamped_at: get("stamped_at")?,
        stamped_by: get("stamped_by")?,
    }))
}

/// Writes `stamp` into the SQLite database at `path` (in one transaction).
#[cfg(feature = "sqlite")]
pub fn write_sqlite_stamp(path: &Path, stamp: &Stamp) -> Result<(), String> {
    use rusqlite::Connection;
    let mut db = Connection::open(path).map_err(|e| e.to_string())?;
    let tx = db.transaction().map_err(|e| e.to_string())?;
    tx.execute(CREATE, []).map_err(|e| e.to_string())?;
    let rows = [
        ("environment", Some(stamp.environment.as_str())),
        ("tier", Some(stamp.tier.as_str())),
        ("stamped_at", stamp.stamped_at.as_deref()),
        ("stamped_by", stamp.stamped_by.as_deref()),
    ];
    for (key, value) in rows {
        if let Some(value) = value {
            tx.execute(
                "INSERT INTO prodguard_stamp (key, value) VALUES (?1, ?2) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map_err(|e| e.to_string())?;
        }
    }
    tx.commit().map_err(|e| e.to_string())
}
