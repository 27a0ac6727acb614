//! One parsed statement → its kind, the tables it names, whether it cascades.
//!
//! Every statement the parser knows but this file does not name is
//! `db.unknown`: a new sqlparser variant fails closed until someone looks.

use sqlparser::ast::{
    AlterColumnOperation, AlterSchemaOperation, AlterTableOperation, AlterTypeOperation,
    CascadeOption, CopySource, CopyTarget, Delete, DropBehavior, FromTable, Insert, Merge,
    MergeAction, ObjectName, ObjectType, OnConflictAction, OnInsert, Query, ReferentialAction,
    SetExpr, SqliteOnConflict, Statement as Ast, TableFactor, TableObject, TableWithJoins, Update,
    UpdateTableFromKind,
};

use super::kind::{DropObject, SqlKind};
use super::transaction::Transaction;
use super::truth::always_true;

/// What [`describe`] found out about one statement.
#[derive(Debug)]
pub(crate) struct Described {
    pub(crate) kind: SqlKind,
    pub(crate) tables: Vec<String>,
    pub(crate) cascades: bool,
    /// Why it is `db.unknown`, for people.
    pub(crate) problem: Option<String>,
}

/// Nested statements (a CTE in an `INSERT`'s query in an `EXPLAIN ANALYZE`
/// …) deeper than this are not looked into: the statement is unknown.
const MAX_DEPTH: usize = 32;

struct Walk {
    kind: SqlKind,
    tables: Vec<String>,
    cascades: bool,
    problem: Option<String>,
}

impl Walk {
    fn kind(&mut self, kind: SqlKind) {
        self.kind = self.kind.max(kind);
    }

    fn table(&mut self, name: &ObjectName) {
        let name = name.to_string();
        if !self.tables.contains(&name) {
            self.tables.push(name);
        }
    }

    fn unknown(&mut self, why: impl Into<String>) {
        self.kind(SqlKind::Unknown);
        if self.problem.is_none() {
            self.problem = Some(why.into());
        }
    }
}

/// What `statement` means to the transaction a guarded run wraps a script in.
pub(crate) fn transaction_role(statement: &Ast) -> Transaction {
    match statement {
        Ast::StartTransaction { .. } => Transaction::Begins,
        Ast::Commit { chain: false, .. } => Transaction::Commits,
        Ast::Commit { .. }
        | Ast::Rollback { .. }
        | Ast::Savepoint { .. }
        | Ast::ReleaseSavepoint { .. } => Transaction::Controls,
        Ast::CreateIndex(index) if index.concurrently => Transaction::Outside,
        Ast::Vacuum(_) | Ast::CreateDatabase { .. } => Transaction::Outside,
        Ast::Drop { object_type, .. } if *object_type == ObjectType::Database => {
            Transaction::Outside
        }
        _ => Transaction::Inside,
    }
}

/// The kind, tables and cascade of one parsed statement.
pub(crate) fn describe(statement: &Ast) -> Described {
    let mut walk = Walk {
        kind: SqlKind::Read,
        tables: Vec::new(),
        cascades: false,
        problem: None,
    };
    statement_kind(&mut walk, statement, MAX_DEPTH);
    Described {
        kind: walk.kind,
        tables: walk.tables,
        cascades: walk.cascades,
        problem: walk.problem,
    }
}

fn statement_kind(w: &mut Walk, statement: &Ast, depth: usize) {
    let Some(depth) = depth.checked_sub(1) else {
        return w.unknown("nested too deeply to classify");
    };
    match statement {
        Ast::Query(query) => query_kind(w, query, depth),
        Ast::Insert(insert) => insert_kind(w, insert, depth),
        Ast::Update(update) => update_kind(w, update, depth),
        Ast::Delete(delete) => delete_kind(w, delete, depth),
        Ast::Merge(merge) => merge_kind(w, merge, depth),
        Ast::Truncate(truncate) => {
            w.kind(SqlKind::Truncate);
            for target in &truncate.table_names {
                w.table(&target.name);
            }
            w.cascades |= matches!(truncate.cascade, Some(CascadeOption::Cascade));
        }
        Ast::Drop {
            object_type,
            names,
            cascade,
            table,
            ..
        } => {
            w.kind(SqlKind::Drop(drop_object(object_type)));
            names.iter().for_each(|n| w.table(n));
            if let Some(table) = table {
                w.table(table);
            }
            w.cascades |= *cascade;
        }
        Ast::DropFunction(d) => {
            w.kind(SqlKind::Drop(DropObject::Function));
            d.func_desc.iter().for_each(|f| w.table(&f.name));
            w.cascades |= matches!(d.drop_behavior, Some(DropBehavior::Cascade));
        }
        Ast::DropProcedure {
            proc_desc,
            drop_behavior,
            ..
        } => {
            w.kind(SqlKind::Drop(DropObject::Procedure));
            proc_desc.iter().for_each(|f| w.table(&f.name));
            w.cascades |= matches!(drop_behavior, Some(DropBehavior::Cascade));
        }
        Ast::DropTrigger(d) => {
            w.kind(SqlKind::Drop(DropObject::Trigger));
            w.table(&d.trigger_name);
            if let Some(table) = &d.table_name {
                w.table(table);
            }
            w.cascades |= matches!(d.option, Some(ReferentialAction::Cascade));
        }
        Ast::DropDomain(d) => {
            w.kind(SqlKind::Drop(DropObject::Domain));
            w.table(&d.name);
            w.cascades |= matches!(d.drop_behavior, Some(DropBehavior::Cascade));
        }
        Ast::DropExtension(d) => {
            w.kind(SqlKind::Drop(DropObject::Extension));
            w.cascades |= matches!(d.cascade_or_restrict, Some(ReferentialAction::Cascade));
        }
        Ast::DropPolicy(d) => {
            w.kind(SqlKind::Drop(DropObject::Policy));
            w.table(&d.table_name);
            w.cascades |= matches!(d.drop_behavior, Some(DropBehavior::Cascade));
        }
        Ast::DropRule(_)
        | Ast::DropOperator(_)
        | Ast::DropOperatorFamily(_)
        | Ast::DropOperatorClass(_)
        | Ast::DropSecret { .. }
        | Ast::DropConnector { .. } => w.kind(SqlKind::Drop(DropObject::Other)),
        Ast::AlterTable(alter) => {
            w.table(&alter.name);
            for operation in &alter.operations {
                let (kind, cascades) = alter_table_operation(operation);
                w.kind(kind);
                w.cascades |= cascades;
            }
            if alter.operations.is_empty() {
                w.kind(SqlKind::Alter);
            }
        }
        Ast::AlterIndex { name, .. } => {
            // The only operation sqlparser knows is RENAME.
            w.table(name);
            w.kind(SqlKind::AlterDestructive);
        }
        Ast::AlterView(view) => {
            // A new definition changes what every reader of the view gets.
            w.table(&view.name);
            w.kind(SqlKind::AlterDestructive);
        }
        Ast::AlterSchema(schema) => {
            w.table(&schema.name);
            for operation in &schema.operations {
                w.kind(match operation {
                    AlterSchemaOperation::Rename { .. }
                    | AlterSchemaOperation::DropReplica { .. } => SqlKind::AlterDestructive,
                    _ => SqlKind::Alter,
                });
            }
            w.kind(SqlKind::Alter);
        }
        Ast::AlterType(alter) => {
            w.table(&alter.name);
            w.kind(match alter.operation {
                AlterTypeOperation::Rename(_) | AlterTypeOperation::RenameValue(_) => {
                    SqlKind::AlterDestructive
                }
                AlterTypeOperation::AddValue(_) => SqlKind::Alter,
            });
        }
        Ast::AlterFunction(_) | Ast::AlterTrigger(_) => w.kind(SqlKind::Alter),
        Ast::AlterRole { .. }
        | Ast::AlterUser(_)
        | Ast::AlterPolicy(_)
        | Ast::AlterDefaultPrivileges(_)
        | Ast::CreateRole(_)
        | Ast::CreateUser(_)
        | Ast::CreatePolicy(_)
        | Ast::Grant(_)
        | Ast::GrantRole(_)
        | Ast::Revoke(_)
        | Ast::RevokeRole(_)
        | Ast::Deny(_) => w.kind(SqlKind::Grant),
        Ast::CreateTable(create) => {
            w.table(&create.name);
            // MySQL/MariaDB `CREATE OR REPLACE TABLE` drops the old table and its rows.
            w.kind(if create.or_replace {
                SqlKind::Drop(DropObject::Table)
            } else {
                SqlKind::Create
            });
            if let Some(query) = &create.query {
                query_kind(w, query, depth);
            }
        }
        Ast::CreateView(view) => {
            w.table(&view.name);
            w.kind(if view.or_replace || view.or_alter {
                SqlKind::Alter
            } else {
                SqlKind::Create
            });
        }
        Ast::CreateIndex(index) => {
            if let Some(name) = &index.name {
                w.table(name);
            }
            w.table(&index.table_name);
            w.kind(SqlKind::Create);
        }
        Ast::CreateFunction(f) => {
            w.table(&f.name);
            w.kind(if f.or_replace || f.or_alter {
                SqlKind::Alter
            } else {
                SqlKind::Create
            });
        }
        Ast::CreateTrigger(t) => {
            // The body runs later, on the trigger's events; creating it
            // changes no rows now.
            w.table(&t.name);
            w.table(&t.table_name);
            w.kind(if t.or_replace || t.or_alter {
                SqlKind::Alter
            } else {
                SqlKind::Create
            });
        }
        Ast::CreateProcedure { or_alter, name, .. } => {
            w.table(name);
            w.kind(if *or_alter {
                SqlKind::Alter
            } else {
                SqlKind::Create
            });
        }
        Ast::CreateSchema { or_replace, .. } | Ast::CreateDatabase { or_replace, .. } => {
            if let Ast::CreateDatabase { db_name, .. } = statement {
                w.table(db_name);
            }
            if *or_replace {
                w.unknown("CREATE OR REPLACE of a schema or database may drop what it replaces");
            } else {
                w.kind(SqlKind::Create);
            }
        }
        Ast::CreateVirtualTable { name, .. } | Ast::CreateSequence { name, .. } => {
            w.table(name);
            w.kind(SqlKind::Create);
        }
        Ast::CreateType { name, .. } => {
            w.table(name);
            w.kind(SqlKind::Create);
        }
        Ast::CreateDomain(_) | Ast::CreateExtension(_) | Ast::CreateCollation(_) => {
            w.kind(SqlKind::Create)
        }
        Ast::Comment { object_name, .. } => {
            w.table(object_name);
            w.kind(SqlKind::Alter);
        }
        Ast::Explain {
            analyze,
            options,
            statement,
            ..
        } => {
            // EXPLAIN ANALYZE runs the statement (PostgreSQL, MySQL); with
            // options it may too (`EXPLAIN (ANALYZE) …`): then it is what
            // it runs. A plain EXPLAIN only plans.
            let mut inner = Walk {
                kind: SqlKind::Read,
                tables: Vec::new(),
                cascades: false,
                problem: None,
            };
            statement_kind(&mut inner, statement, depth);
            w.tables.extend(inner.tables);
            if *analyze || options.is_some() {
                w.kind(inner.kind);
                w.cascades |= inner.cascades;
                w.problem = w.problem.take().or(inner.problem);
            }
        }
        Ast::ExplainTable { table_name, .. } => w.table(table_name),
        Ast::ShowFunctions { .. }
        | Ast::ShowVariable { .. }
        | Ast::ShowStatus { .. }
        | Ast::ShowVariables { .. }
        | Ast::ShowCreate { .. }
        | Ast::ShowColumns { .. }
        | Ast::ShowCatalogs { .. }
        | Ast::ShowDatabases { .. }
        | Ast::ShowProcessList { .. }
        | Ast::ShowSchemas { .. }
        | Ast::ShowCharset(_)
        | Ast::ShowObjects(_)
        | Ast::ShowTables { .. }
        | Ast::ShowViews { .. }
        | Ast::ShowCollation { .. } => w.kind(SqlKind::Read),
        Ast::StartTransaction { .. }
        | Ast::Commit { .. }
        | Ast::Rollback { .. }
        | Ast::Savepoint { .. }
        | Ast::ReleaseSavepoint { .. }
        | Ast::Set(_)
        | Ast::Reset(_)
        | Ast::Discard { .. }
        | Ast::Use(_)
        | Ast::LISTEN { .. }
        | Ast::UNLISTEN { .. }
        | Ast::Deallocate { .. }
        | Ast::AttachDatabase { .. }
        | Ast::LockTables { .. }
        | Ast::UnlockTables => w.kind(SqlKind::Session),
        Ast::Lock(lock) => {
            for target in &lock.tables {
                w.table(&target.name);
            }
            w.kind(SqlKind::Session);
        }
        Ast::Pragma { value, .. } => {
            // `PRAGMA x` and `PRAGMA table_info(t)` read; a value sets it,
            // and some settings (writable_schema, journal_mode = OFF) can
            // damage the database: fail closed.
            if value.is_some() {
                w.unknown("a PRAGMA that sets a value is not understood");
            } else {
                w.kind(SqlKind::Read);
            }
        }
        Ast::Vacuum(_) | Ast::Analyze(_) | Ast::OptimizeTable { .. } => {
            w.kind(SqlKind::Maintenance)
        }
        Ast::RefreshMaterializedView(r) => {
            w.table(&r.name);
            w.kind(SqlKind::Maintenance);
        }
        Ast::Copy {
            source, to, target, ..
        } => {
            if let CopySource::Table { table_name, .. } = source {
                w.table(table_name);
            }
            match (to, target) {
                (_, CopyTarget::Program { .. }) => {
                    w.unknown("COPY … PROGRAM runs a command on the database server")
                }
                (true, CopyTarget::Stdout) => w.kind(SqlKind::Read),
                (true, _) => w.unknown("COPY … TO a file writes on the database server"),
                (false, _) => w.kind(SqlKind::Insert),
            }
            if let CopySource::Query(query) = source {
                query_kind(w, query, depth);
            }
        }
        Ast::Call(_) => w.unknown("CALL runs a procedure whose effects cannot be seen here"),
        Ast::Execute { .. } => {
            w.unknown("EXECUTE runs a prepared or dynamic statement that cannot be seen here")
        }
        Ast::Prepare { .. } => {
            w.unknown("PREPARE: the statement it prepares runs later, through EXECUTE")
        }
        Ast::NOTIFY { .. } => w.unknown("NOTIFY: whatever listens acts on it, out of sight"),
        _ => w.unknown("this statement is not understood"),
    }
}

fn drop_object(object_type: &ObjectType) -> DropObject {
    match object_type {
        ObjectType::Table | ObjectType::ForeignTable => DropObject::Table,
        ObjectType::View => DropObject::View,
        ObjectType::MaterializedView => DropObject::MaterializedView,
        ObjectType::Index => DropObject::Index,
        ObjectType::Schema => DropObject::Schema,
        ObjectType::Database => DropObject::Database,
        ObjectType::Role | ObjectType::User | ObjectType::Group => DropObject::Role,
        ObjectType::Sequence => DropObject::Sequence,
        ObjectType::Type => DropObject::Type,
        _ => DropObject::Other,
    }
}

/// One `ALTER TABLE` operation: destructive when it drops, renames,
/// changes a column's type, detaches or swaps; any operation not named
/// here counts as destructive (fail closed). Also whether it cascades.
fn alter_table_operation(operation: &AlterTableOperation) -> (SqlKind, bool) {
    use AlterTableOperation as Op;
    let cascade = |b: &Option<DropBehavior>| matches!(b, Some(DropBehavior::Cascade));
    let kind = match operation {
        Op::DropColumn { drop_behavior, .. } | Op::DropConstraint { drop_behavior, .. } => {
            return (SqlKind::AlterDestructive, cascade(drop_behavior));
        }
        Op::AlterColumn { op, .. } => match op {
            AlterColumnOperation::SetDataType { .. } => SqlKind::AlterDestructive,
            AlterColumnOperation::SetNotNull
            | AlterColumnOperation::DropNotNull
            | AlterColumnOperation::SetDefault { .. }
            | AlterColumnOperation::DropDefault
            | AlterColumnOperation::AddGenerated { .. } => SqlKind::Alter,
            _ => SqlKind::AlterDestructive,
        },
        Op::AddConstraint { .. }
        | Op::AddColumn { .. }
        | Op::AddPartitions { .. }
        | Op::AttachPartition { .. }
        | Op::AttachPartitionOf { .. }
        | Op::DisableRowLevelSecurity
        | Op::DisableRule { .. }
        | Op::DisableTrigger { .. }
        | Op::EnableAlwaysRule { .. }
        | Op::EnableAlwaysTrigger { .. }
        | Op::EnableReplicaRule { .. }
        | Op::EnableReplicaTrigger { .. }
        | Op::EnableRowLevelSecurity
        | Op::ForceRowLevelSecurity
        | Op::NoForceRowLevelSecurity
        | Op::EnableRule { .. }
        | Op::EnableTrigger { .. }
        | Op::ReplicaIdentity { .. }
        | Op::SetLogged
        | Op::SetUnlogged
        | Op::OwnerTo { .. }
        | Op::ValidateConstraint { .. }
        | Op::Algorithm { .. }
        | Op::Lock { .. }
        | Op::AutoIncrement { .. }
        | Op::Inherit { .. }
        | Op::NoInherit { .. }
        | Op::SetOptionsParens { .. }
        | Op::ResetOptions { .. } => SqlKind::Alter,
        _ => SqlKind::AlterDestructive,
    };
    (kind, false)
}

/// A query: a read, unless a CTE or the body modifies data (PostgreSQL's
/// `WITH d AS (DELETE … RETURNING *) SELECT …`): then the most dangerous
/// kind inside. `SELECT … INTO new_table` creates a table.
fn query_kind(w: &mut Walk, query: &Query, depth: usize) {
    let Some(depth) = depth.checked_sub(1) else {
        return w.unknown("nested too deeply to classify");
    };
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            query_kind(w, &cte.query, depth);
        }
    }
    set_expr_kind(w, &query.body, depth);
}

fn set_expr_kind(w: &mut Walk, body: &SetExpr, depth: usize) {
    let Some(depth) = depth.checked_sub(1) else {
        return w.unknown("nested too deeply to classify");
    };
    match body {
        SetExpr::Select(select) => {
            w.kind(SqlKind::Read);
            if select.into.is_some() {
                w.kind(SqlKind::Create);
            }
            for from in &select.from {
                from_tables(w, from, depth);
            }
        }
        SetExpr::Query(query) => query_kind(w, query, depth),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr_kind(w, left, depth);
            set_expr_kind(w, right, depth);
        }
        SetExpr::Values(_) => w.kind(SqlKind::Read),
        SetExpr::Table(table) => {
            if let Some(name) = &table.table_name {
                let name = match &table.schema_name {
                    Some(schema) => format!("{schema}.{name}"),
                    None => name.to_string(),
                };
                if !w.tables.contains(&name) {
                    w.tables.push(name);
                }
            }
            w.kind(SqlKind::Read);
        }
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
            statement_kind(w, s, depth)
        }
    }
}

/// The tables of a `FROM` item and its joins (not those of subqueries in
/// expressions).
fn from_tables(w: &mut Walk, from: &TableWithJoins, depth: usize) {
    table_factor(w, &from.relation, depth);
    for join in &from.joins {
        table_factor(w, &join.relation, depth);
    }
}

fn table_factor(w: &mut Walk, factor: &TableFactor, depth: usize) {
    let Some(depth) = depth.checked_sub(1) else {
        return w.unknown("nested too deeply to classify");
    };
    match factor {
        TableFactor::Table { name, .. } => w.table(name),
        TableFactor::Derived { subquery, .. } => query_kind(w, subquery, depth),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => from_tables(w, table_with_joins, depth),
        _ => {}
    }
}

fn insert_kind(w: &mut Walk, insert: &Insert, depth: usize) {
    match &insert.table {
        TableObject::TableName(name) => w.table(name),
        TableObject::TableFunction(f) => w.table(&f.name),
        TableObject::TableQuery(q) => query_kind(w, q, depth),
    }
    let upsert = insert.replace_into
        || matches!(insert.or, Some(SqliteOnConflict::Replace))
        || matches!(insert.on, Some(OnInsert::DuplicateKeyUpdate(_)))
        || matches!(
            &insert.on,
            Some(OnInsert::OnConflict(c)) if matches!(c.action, OnConflictAction::DoUpdate(_))
        );
    if insert.overwrite {
        // Hive-style INSERT OVERWRITE replaces the table's rows.
        w.unknown("INSERT OVERWRITE replaces every row of the table");
    } else if upsert {
        w.kind(SqlKind::UpdateUpsert);
    } else if insert.on.is_some() && !matches!(&insert.on, Some(OnInsert::OnConflict(_))) {
        w.unknown("an INSERT … ON clause that is not understood");
    } else {
        w.kind(SqlKind::Insert);
    }
    if let Some(source) = &insert.source {
        query_kind(w, source, depth);
    }
}

fn update_kind(w: &mut Walk, update: &Update, depth: usize) {
    from_tables(w, &update.table, depth);
    if let Some(UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from)) =
        &update.from
    {
        for f in from {
            from_tables(w, f, depth);
        }
    }
    w.kind(match &update.selection {
        Some(condition) if !always_true(condition) => SqlKind::UpdateWhere,
        _ => SqlKind::UpdateAll,
    });
    if matches!(update.or, Some(SqliteOnConflict::Replace)) {
        // `UPDATE OR REPLACE` may delete the rows it collides with.
        w.kind(SqlKind::UpdateUpsert);
    }
}

fn delete_kind(w: &mut Walk, delete: &Delete, depth: usize) {
    // MySQL's `DELETE t1 FROM t1 JOIN t2 …` names what it deletes first.
    delete.tables.iter().for_each(|t| w.table(t));
    let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
    for f in from {
        from_tables(w, f, depth);
    }
    for f in delete.using.iter().flatten() {
        from_tables(w, f, depth);
    }
    w.kind(match &delete.selection {
        Some(condition) if !always_true(condition) => SqlKind::DeleteWhere,
        _ => SqlKind::DeleteAll,
    });
}

fn merge_kind(w: &mut Walk, merge: &Merge, depth: usize) {
    table_factor(w, &merge.table, depth);
    table_factor(w, &merge.source, depth);
    w.kind(SqlKind::UpdateUpsert);
    if merge
        .clauses
        .iter()
        .any(|c| matches!(c.action, MergeAction::Delete { .. }))
    {
        w.kind(SqlKind::DeleteWhere);
    }
}
