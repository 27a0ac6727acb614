//! What a statement does: [`SqlKind`], its dotted name and its danger.

use std::fmt;
use std::str::FromStr;

/// The object a `DROP` removes: the last part of `db.drop.<object>`.
///
/// ```
/// use prodguard_core::sql::{DropObject, SqlKind};
///
/// assert_eq!(SqlKind::Drop(DropObject::Index).as_str(), "db.drop.index");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropObject {
    /// `DROP DATABASE`
    Database,
    /// `DROP SCHEMA`
    Schema,
    /// `DROP TABLE`, `DROP FOREIGN TABLE`, and `CREATE OR REPLACE TABLE`
    /// (which drops the table it replaces, with its rows)
    Table,
    /// `DROP MATERIALIZED VIEW`
    MaterializedView,
    /// `DROP VIEW`
    View,
    /// `DROP FUNCTION`
    Function,
    /// `DROP PROCEDURE`
    Procedure,
    /// `DROP TRIGGER`
    Trigger,
    /// `DROP TYPE`
    Type,
    /// `DROP DOMAIN`
    Domain,
    /// `DROP SEQUENCE`
    Sequence,
    /// `DROP EXTENSION`
    Extension,
    /// `DROP POLICY` (row-level security)
    Policy,
    /// `DROP ROLE`, `DROP USER`, `DROP GROUP`
    Role,
    /// `DROP INDEX`
    Index,
    /// Any other object (`DROP RULE`, `DROP COLLATION`, `DROP OPERATOR`, …).
    Other,
}

impl DropObject {
    const ALL: [DropObject; 16] = [
        DropObject::Database,
        DropObject::Schema,
        DropObject::Table,
        DropObject::MaterializedView,
        DropObject::View,
        DropObject::Function,
        DropObject::Procedure,
        DropObject::Trigger,
        DropObject::Type,
        DropObject::Domain,
        DropObject::Sequence,
        DropObject::Extension,
        DropObject::Policy,
        DropObject::Role,
        DropObject::Index,
        DropObject::Other,
    ];

    fn name(self) -> &'static str {
        match self {
            DropObject::Database => "db.drop.database",
            DropObject::Schema => "db.drop.schema",
            DropObject::Table => "db.drop.table",
            DropObject::MaterializedView => "db.drop.materialized_view",
            DropObject::View => "db.drop.view",
            DropObject::Function => "db.drop.function",
            DropObject::Procedure => "db.drop.procedure",
            DropObject::Trigger => "db.drop.trigger",
            DropObject::Type => "db.drop.type",
            DropObject::Domain => "db.drop.domain",
            DropObject::Sequence => "db.drop.sequence",
            DropObject::Extension => "db.drop.extension",
            DropObject::Policy => "db.drop.policy",
            DropObject::Role => "db.drop.role",
            DropObject::Index => "db.drop.index",
            DropObject::Other => "db.drop.other",
        }
    }

    /// Among drops, more is lost first: a database holds schemas, a schema
    /// tables; an object not named here ranks just under a table.
    fn rank(self) -> u16 {
        match self {
            DropObject::Database => 15,
            DropObject::Schema => 14,
            DropObject::Table => 13,
            DropObject::Other => 12,
            DropObject::MaterializedView => 11,
            DropObject::View => 10,
            DropObject::Function => 9,
            DropObject::Procedure => 8,
            DropObject::Trigger => 7,
            DropObject::Policy => 6,
            DropObject::Type => 5,
            DropObject::Domain => 4,
            DropObject::Sequence => 3,
            DropObject::Extension => 2,
            DropObject::Role => 1,
            DropObject::Index => 0,
        }
    }
}

/// What one SQL statement does, as a dotted operation name the policy
/// matches like any other (`db.delete.*`, `db.drop.table`).
///
/// | kind | statements | destructive |
/// |---|---|---|
/// | `db.read` | `SELECT`, `EXPLAIN`, `SHOW`, `WITH … SELECT`, `COPY … TO STDOUT`, `PRAGMA` without a value | no |
/// | `db.session` | `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`, `SET`, `RESET`, `DISCARD`, `USE`, `LISTEN`, `LOCK TABLE`, `ATTACH`/`DETACH` | no |
/// | `db.insert` | plain `INSERT` (also `… SELECT`, `OR IGNORE`, `ON CONFLICT DO NOTHING`), `COPY … FROM` | no |
/// | `db.maintenance` | `VACUUM`, `ANALYZE`, `REFRESH MATERIALIZED VIEW` (and `OPTIMIZE TABLE` where sqlparser parses it) | no |
/// | `db.create` | `CREATE …` (`… AS SELECT` too), `SELECT … INTO new_table` | no |
/// | `db.alter` | `ALTER` that adds or sets; `CREATE OR REPLACE` of a view, function, trigger; `COMMENT ON` | no |
/// | `db.grant` | `GRANT`, `REVOKE`, `CREATE`/`ALTER ROLE`/`USER`, `ALTER DEFAULT PRIVILEGES`, row-level policies | no |
/// | `db.update.where` | `UPDATE` whose `WHERE` can be false | yes |
/// | `db.update.upsert` | `INSERT … ON CONFLICT DO UPDATE`, `ON DUPLICATE KEY UPDATE`, `REPLACE`, `INSERT OR REPLACE`, `MERGE` | yes |
/// | `db.delete.where` | `DELETE` whose `WHERE` can be false; `MERGE … THEN DELETE` | yes |
/// | `db.alter.destructive` | `ALTER` that drops, renames, changes a column's type, detaches a partition; `ALTER VIEW` | yes |
/// | `db.update.all` | `UPDATE` without `WHERE`, or with one that is always true | yes |
/// | `db.delete.all` | `DELETE` without `WHERE`, or with one that is always true | yes |
/// | `db.truncate` | `TRUNCATE` | yes |
/// | `db.drop.<object>` | `DROP TABLE`, `DROP INDEX`, … (see [`DropObject`]) | yes |
/// | `db.unknown` | anything not parsed or not understood | yes |
///
/// The table is in rising order of danger ([`SqlKind::rank`]); a script's
/// operation is its most dangerous statement's kind.
///
/// ```
/// use prodguard_core::sql::SqlKind;
///
/// let kind: SqlKind = "db.delete.all".parse().unwrap();
/// assert_eq!(kind, SqlKind::DeleteAll);
/// assert!(kind.is_destructive());
/// assert!(SqlKind::Unknown.rank() > kind.rank());
/// assert_eq!(serde_json::to_string(&kind).unwrap(), "\"db.delete.all\"");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum SqlKind {
    /// `db.read`
    Read,
    /// `db.session`
    Session,
    /// `db.insert`
    Insert,
    /// `db.maintenance`
    Maintenance,
    /// `db.create`
    Create,
    /// `db.alter`
    Alter,
    /// `db.grant`
    Grant,
    /// `db.update.where`
    UpdateWhere,
    /// `db.update.upsert`
    UpdateUpsert,
    /// `db.delete.where`
    DeleteWhere,
    /// `db.alter.destructive`
    AlterDestructive,
    /// `db.update.all`
    UpdateAll,
    /// `db.delete.all`
    DeleteAll,
    /// `db.truncate`
    Truncate,
    /// `db.drop.<object>`
    Drop(DropObject),
    /// `db.unknown`: not parsed or not understood; destructive (fail closed).
    Unknown,
}

impl SqlKind {
    const SIMPLE: [SqlKind; 15] = [
        SqlKind::Read,
        SqlKind::Session,
        SqlKind::Insert,
        SqlKind::Maintenance,
        SqlKind::Create,
        SqlKind::Alter,
        SqlKind::Grant,
        SqlKind::UpdateWhere,
        SqlKind::UpdateUpsert,
        SqlKind::DeleteWhere,
        SqlKind::AlterDestructive,
        SqlKind::UpdateAll,
        SqlKind::DeleteAll,
        SqlKind::Truncate,
        SqlKind::Unknown,
    ];

    /// Every kind, `db.drop.<object>` for each object included.
    ///
    /// ```
    /// use prodguard_core::sql::SqlKind;
    ///
    /// assert_eq!(SqlKind::all().count(), 31);
    /// assert!(SqlKind::all().all(|k| k.as_str().parse() == Ok(k)));
    /// ```
    pub fn all() -> impl Iterator<Item = SqlKind> {
        SqlKind::SIMPLE
            .into_iter()
            .chain(DropObject::ALL.into_iter().map(SqlKind::Drop))
    }

    /// The dotted operation name, e.g. `db.update.where`.
    pub fn as_str(self) -> &'static str {
        match self {
            SqlKind::Read => "db.read",
            SqlKind::Session => "db.session",
            SqlKind::Insert => "db.insert",
            SqlKind::Maintenance => "db.maintenance",
            SqlKind::Create => "db.create",
            SqlKind::Alter => "db.alter",
            SqlKind::Grant => "db.grant",
            SqlKind::UpdateWhere => "db.update.where",
            SqlKind::UpdateUpsert => "db.update.upsert",
            SqlKind::DeleteWhere => "db.delete.where",
            SqlKind::AlterDestructive => "db.alter.destructive",
            SqlKind::UpdateAll => "db.update.all",
            SqlKind::DeleteAll => "db.delete.all",
            SqlKind::Truncate => "db.truncate",
            SqlKind::Drop(object) => object.name(),
            SqlKind::Unknown => "db.unknown",
        }
    }

    /// Whether it changes or removes existing rows or objects (or may:
    /// `db.unknown`).
    pub fn is_destructive(self) -> bool {
        self.rank() >= SqlKind::UpdateWhere.rank()
    }

    /// How dangerous it is: higher is worse. Every kind has its own rank,
    /// so the most dangerous of several kinds is always one kind.
    pub fn rank(self) -> u16 {
        match self {
            SqlKind::Read => 0,
            SqlKind::Session => 1,
            SqlKind::Insert => 2,
            SqlKind::Maintenance => 3,
            SqlKind::Create => 4,
            SqlKind::Alter => 5,
            SqlKind::Grant => 6,
            SqlKind::UpdateWhere => 10,
            SqlKind::UpdateUpsert => 11,
            SqlKind::DeleteWhere => 12,
            SqlKind::AlterDestructive => 13,
            SqlKind::UpdateAll => 14,
            SqlKind::DeleteAll => 15,
            SqlKind::Truncate => 16,
            SqlKind::Drop(object) => 20 + object.rank(),
            SqlKind::Unknown => 100,
        }
    }

    /// Whether the rows it affects measure what it does: inserts, updates,
    /// upserts and deletes. A `DROP` or `TRUNCATE` removes rows that no
    /// database counts, so rows never waive a confirmation for them.
    pub fn counts_rows(self) -> bool {
        matches!(
            self,
            SqlKind::Insert
                | SqlKind::UpdateWhere
                | SqlKind::UpdateUpsert
                | SqlKind::UpdateAll
                | SqlKind::DeleteWhere
                | SqlKind::DeleteAll
        )
    }

    /// The more dangerous of the two.
    pub fn max(self, other: SqlKind) -> SqlKind {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for SqlKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`SqlKind`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an SQL kind: use one of db.read, db.insert, db.update.where, db.update.all, db.update.upsert, db.delete.where, db.delete.all, db.truncate, db.drop.<object>, db.alter, db.alter.destructive, db.create, db.grant, db.session, db.maintenance, db.unknown"
)]
pub struct UnknownSqlKind(pub String);

impl FromStr for SqlKind {
    type Err = UnknownSqlKind;

    fn from_str(s: &str) -> Result<SqlKind, UnknownSqlKind> {
        SqlKind::all()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownSqlKind(s.to_owned()))
    }
}

impl From<SqlKind> for &'static str {
    fn from(kind: SqlKind) -> &'static str {
        kind.as_str()
    }
}

impl TryFrom<String> for SqlKind {
    type Error = UnknownSqlKind;

    fn try_from(s: String) -> Result<SqlKind, UnknownSqlKind> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_name_and_rank_and_parses_back() {
        let all: Vec<SqlKind> = SqlKind::SIMPLE
            .into_iter()
            .chain(DropObject::ALL.into_iter().map(SqlKind::Drop))
            .collect();
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.as_str().parse::<SqlKind>(), Ok(*a));
            for b in &all[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
                assert_ne!(a.rank(), b.rank(), "{a} and {b}");
            }
        }
        assert!("db.drop".parse::<SqlKind>().is_err());
        assert!("DB.READ".parse::<SqlKind>().is_err());
    }

    #[test]
    fn the_issue_order_of_danger_holds() {
        let order = [
            "db.update.where",
            "db.update.upsert",
            "db.delete.where",
            "db.alter.destructive",
            "db.update.all",
            "db.delete.all",
            "db.truncate",
            "db.drop.index",
            "db.drop.table",
            "db.drop.database",
            "db.unknown",
        ];
        for pair in order.windows(2) {
            let a: SqlKind = pair[0].parse().unwrap();
            let b: SqlKind = pair[1].parse().unwrap();
            assert!(a.rank() < b.rank(), "{a} < {b}");
            assert!(a.is_destructive() && b.is_destructive());
        }
        for harmless in [
            "db.read",
            "db.insert",
            "db.create",
            "db.alter",
            "db.grant",
            "db.session",
        ] {
            assert!(!harmless.parse::<SqlKind>().unwrap().is_destructive());
        }
    }
}
