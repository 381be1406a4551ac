//! DDL: CREATE TABLE/INDEX, DROP, ALTER TABLE, translated for SQLite, with the catalog rows
//! that keep each column's PostgreSQL type.
//!
//! SQLite gets affinity types (`INTEGER`, `REAL`, `NUMERIC`, `TEXT`, `BLOB`) chosen so that a
//! single integer primary key becomes the rowid; the declared PostgreSQL type goes to the
//! catalog. Serial columns draw from `pg_nextval`.

use sqlparser::ast::{
    AlterTable, AlterTableOperation, ColumnDef, ColumnOption, CreateIndex, CreateTable, Expr,
    GeneratedAs, ObjectName, ObjectType, TableConstraint, VisitMut,
};

use crate::ast::{ident_value, object_name_to_table, quote_ident, sequence_name, table_names};
use crate::catalog::{Catalog, ColumnInfo, TableDef};
use crate::defaults::pg_default_text;
use crate::error::{Error, Result};
use crate::plan::{CatalogChange, Command, TableRebuild, TempEffect};
use crate::rebuild::NOT_NULL_CHECK;
use crate::types::PgType;

fn index_column_names(cols: &[sqlparser::ast::IndexColumn]) -> Vec<String> {
    cols.iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(id) => ident_value(id),
            other => other.to_string().to_ascii_lowercase(),
        })
        .collect()
}

/// Folds the unquoted names of a foreign key as PostgreSQL would (SQLite keeps them as
/// written, and the catalogs compare them with the stored names).
fn fold_foreign_key(fk: &mut sqlparser::ast::ForeignKeyConstraint) {
    let fold = |id: &mut sqlparser::ast::Ident| {
        if id.quote_style.is_none() {
            id.value = id.value.to_ascii_lowercase();
        }
    };
    fk.columns.iter_mut().for_each(fold);
    fk.referred_columns.iter_mut().for_each(fold);
    for part in &mut fk.foreign_table.0 {
        if let sqlparser::ast::ObjectNamePart::Identifier(id) = part {
            fold(id);
        }
    }
}

/// The name a table constraint was given, to record (see [`CatalogChange::NameConstraint`]).
fn constraint_name(table: &str, c: &TableConstraint) -> Option<CatalogChange> {
    let (name, kind, columns) = match c {
        TableConstraint::PrimaryKey(pk) => {
            (pk.name.as_ref()?, 'p', index_column_names(&pk.columns))
        }
        TableConstraint::Unique(u) => (u.name.as_ref()?, 'u', index_column_names(&u.columns)),
        TableConstraint::ForeignKey(fk) => (
            fk.name.as_ref()?,
            'f',
            fk.columns.iter().map(ident_value).collect(),
        ),
        _ => return None,
    };
    Some(CatalogChange::NameConstraint {
        table: table.to_string(),
        name: ident_value(name),
        kind,
        columns,
    })
}

fn rewrite_expr_in_place(e: &mut sqlparser::ast::Expr) -> Result<()> {
    crate::rewrite::visit(e)
}

struct ColumnOut {
    sql: String,
    info: ColumnInfo,
    /// Constraints named on the column (`CONSTRAINT x UNIQUE`): kind and name.
    named: Vec<(char, String)>,
    /// Statements that fail when the column's default does not fit its type.
    checks: Vec<String>,
    /// The default is computed (a function call), which SQLite's ADD COLUMN refuses:
    /// `Some(true)` when it is a constant's conversion (the same at every site).
    computed_default: Option<bool>,
}

fn column_sql(table: &str, col: &ColumnDef, table_pk: &[String]) -> Result<ColumnOut> {
    let type_name = col.data_type.to_string();
    let spec = PgType::parse_sql_name(&type_name)
        .filter(|s| s.ty.element().is_none())
        .ok_or_else(|| {
            if type_name.ends_with("[]") || type_name.ends_with("vector") {
                Error::Unsupported(format!("array type {type_name} in a table"))
            } else {
                Error::UndefinedType(type_name.to_ascii_lowercase())
            }
        })?;
    let name = ident_value(&col.name);
    let mut serial = spec.serial;
    let mut not_null = false;
    let mut parts: Vec<String> = Vec::new();
    let mut has_default = false;
    let mut default = None;
    let mut named = Vec::new();
    let mut checks = Vec::new();
    let mut computed_default = None;
    for opt in &col.options {
        if let Some(n) = &opt.name {
            let kind = match &opt.option {
                ColumnOption::PrimaryKey(_) => Some('p'),
                ColumnOption::Unique(_) => Some('u'),
                ColumnOption::ForeignKey(_) => Some('f'),
                _ => None,
            };
            if let Some(k) = kind {
                named.push((k, ident_value(n)));
            }
        }
        let prefix = opt
            .name
            .as_ref()
            .map(|n| format!("CONSTRAINT {} ", quote_ident(&ident_value(n))))
            .unwrap_or_default();
        match &opt.option {
            ColumnOption::Null => {}
            ColumnOption::NotNull => {
                not_null = true;
                parts.push("NOT NULL".into());
            }
            ColumnOption::Default(e) => {
                let e_original = e;
                default = Some(pg_default_text(e, spec.ty));
                let typed = ColumnInfo {
                    typmod: spec.typmod,
                    ..ColumnInfo::plain(&name, spec.ty)
                };
                let (e, check) = crate::rewrite::dml::column_default(e, &typed)?;
                checks.extend(check);
                computed_default =
                    calls_function(&e).then(|| crate::rewrite::dml::is_constant(e_original));
                has_default = true;
                parts.push(format!("DEFAULT ({e})"));
            }
            ColumnOption::PrimaryKey(_) => {
                not_null = true;
                parts.push(format!("{prefix}PRIMARY KEY"));
            }
            ColumnOption::Unique(_) => parts.push(format!("{prefix}UNIQUE")),
            ColumnOption::ForeignKey(_) => {
                let mut o = opt.option.clone();
                if let ColumnOption::ForeignKey(fk) = &mut o {
                    fold_foreign_key(fk);
                }
                let _ = o.visit(&mut StripPublic);
                parts.push(format!("{prefix}{o}"));
            }
            ColumnOption::Check(_) => {
                let mut o = opt.option.clone();
                if let ColumnOption::Check(c) = &mut o {
                    rewrite_expr_in_place(&mut c.expr)?;
                }
                parts.push(format!("{prefix}{o}"));
            }
            ColumnOption::Generated {
                generated_as: GeneratedAs::Always | GeneratedAs::ByDefault,
                generation_expr: None,
                ..
            } => serial = true,
            ColumnOption::Generated { .. } => {
                return Err(Error::Unsupported("generated columns".into()))
            }
            ColumnOption::Collation(_) => {}
            other => return Err(Error::Unsupported(format!("column option {other}"))),
        }
    }
    if table_pk.contains(&name) {
        not_null = true;
    }
    if serial && !has_default {
        // Draw from the table's sequence, named as PostgreSQL names it — also for the
        // rowid, whose own allocation (largest + 1) would reuse a deleted last key and
        // could not give the sites of a cluster disjoint keys.
        parts.push(format!(
            "DEFAULT (pg_nextval('{}'))",
            sequence_name(table, &name).replace('\'', "''")
        ));
    }
    if serial {
        not_null = true;
    }
    // SQLite lets a PRIMARY KEY column (other than an INTEGER PRIMARY KEY) hold NULL, and a
    // serial's explicit NULL would otherwise be silently replaced: PostgreSQL refuses both.
    if not_null && !parts.iter().any(|p| p == "NOT NULL") {
        parts.push("NOT NULL".into());
    }
    let sql = format!(
        "{} {}{}{}",
        quote_ident(&name),
        spec.ty.sqlite_decl(),
        if parts.is_empty() { "" } else { " " },
        parts.join(" ")
    );
    Ok(ColumnOut {
        sql,
        info: ColumnInfo {
            name,
            ty: spec.ty,
            typmod: spec.typmod,
            serial,
            not_null,
            default,
        },
        named,
        checks,
        computed_default: if serial && !has_default {
            Some(false)
        } else {
            computed_default
        },
    })
}

/// Whether `e` calls a function (SQLite's ADD COLUMN takes no such default).
fn calls_function(e: &Expr) -> bool {
    sqlparser::ast::visit_expressions(e, |x| {
        if matches!(x, Expr::Function(_)) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .is_break()
}

struct StripPublic;

impl sqlparser::ast::VisitorMut for StripPublic {
    type Break = ();
    fn pre_visit_relation(&mut self, r: &mut ObjectName) -> std::ops::ControlFlow<()> {
        if r.0.len() == 2 {
            r.0.remove(0);
        }
        std::ops::ControlFlow::Continue(())
    }
}

fn constraint_sql(c: &TableConstraint) -> Result<String> {
    let mut c = c.clone();
    if let TableConstraint::ForeignKey(fk) = &mut c {
        fold_foreign_key(fk);
    }
    if let TableConstraint::Check(ch) = &mut c {
        rewrite_expr_in_place(&mut ch.expr)?;
    }
    let _ = c.visit(&mut StripPublic);
    Ok(c.to_string())
}

fn pk_columns(c: &TableConstraint) -> Option<Vec<String>> {
    match c {
        TableConstraint::PrimaryKey(pk) => Some(index_column_names(&pk.columns)),
        _ => None,
    }
}

/// A DDL plan on temporary objects (see [`TempEffect`]).
fn temporary_plan(sql: Vec<String>, tag: &'static str, effect: TempEffect) -> Command {
    let mut cmd = Command::ddl(sql, tag, Vec::new());
    if let Command::Sql(p) = &mut cmd {
        p.temporary = Some(effect);
    }
    cmd
}

/// CREATE TABLE.
/// PostgreSQL's storage parameters of a table (`WITH (fillfactor = 70)`): accepted and
/// without effect here (SQLite has no such knobs), but a name PostgreSQL does not know is
/// its 22023, as is a key written in another case (`"Fillfactor"`).
fn storage_parameters(options: &sqlparser::ast::CreateTableOptions) -> Result<()> {
    const KNOWN: &[&str] = &[
        "fillfactor",
        "toast_tuple_target",
        "parallel_workers",
        "autovacuum_enabled",
        "autovacuum_vacuum_threshold",
        "autovacuum_vacuum_insert_threshold",
        "autovacuum_analyze_threshold",
        "autovacuum_vacuum_scale_factor",
        "autovacuum_vacuum_insert_scale_factor",
        "autovacuum_analyze_scale_factor",
        "autovacuum_vacuum_cost_delay",
        "autovacuum_vacuum_cost_limit",
        "autovacuum_freeze_min_age",
        "autovacuum_freeze_max_age",
        "autovacuum_freeze_table_age",
        "autovacuum_multixact_freeze_min_age",
        "autovacuum_multixact_freeze_max_age",
        "autovacuum_multixact_freeze_table_age",
        "log_autovacuum_min_duration",
        "user_catalog_table",
        "vacuum_index_cleanup",
        "vacuum_truncate",
        "oids",
    ];
    let sqlparser::ast::CreateTableOptions::With(list) = options else {
        return Ok(());
    };
    for option in list {
        let key = match option {
            sqlparser::ast::SqlOption::KeyValue { key, .. }
            | sqlparser::ast::SqlOption::Ident(key) => key,
            _ => continue,
        };
        let name = match key.quote_style {
            Some(_) => key.value.clone(),
            None => key.value.to_lowercase(),
        };
        let base = name.strip_prefix("toast.").unwrap_or(&name);
        if !KNOWN.contains(&base) {
            return Err(Error::InvalidParameter(format!(
                "unrecognized parameter \"{name}\""
            )));
        }
    }
    Ok(())
}

pub fn create_table(ct: &CreateTable, catalog: &Catalog) -> Result<Command> {
    let name = object_name_to_table(&ct.name);
    if ct.temporary {
        if let Some(oc) = &ct.on_commit {
            if !matches!(oc, sqlparser::ast::OnCommit::PreserveRows) {
                return Err(Error::Unsupported(format!(
                    "CREATE TEMPORARY TABLE … ON COMMIT {}",
                    match oc {
                        sqlparser::ast::OnCommit::Drop => "DROP",
                        _ => "DELETE ROWS",
                    }
                )));
            }
        }
    }
    if ct.like.is_some() {
        return Err(Error::Unsupported("CREATE TABLE … LIKE".into()));
    }
    storage_parameters(&ct.table_options)?;
    // Clauses that would change what the table is or holds: taken silently, a plain table
    // would answer differently from PostgreSQL's (rows routed to partitions, inherited
    // columns, unlogged persistence in the catalogs).
    if ct.partition_by.is_some() {
        return Err(Error::Unsupported("CREATE TABLE … PARTITION BY".into()));
    }
    if ct.partition_of.is_some() || ct.for_values.is_some() {
        return Err(Error::Unsupported("CREATE TABLE … PARTITION OF".into()));
    }
    if ct.inherits.is_some() {
        return Err(Error::Unsupported("CREATE TABLE … INHERITS".into()));
    }
    if ct.unlogged {
        return Err(Error::Unsupported("CREATE UNLOGGED TABLE".into()));
    }
    if let Some(q) = &ct.query {
        return crate::create_as::from_create(ct, q, catalog);
    }
    if let Some(c) = ct.constraints.iter().find(|c| {
        matches!(c, TableConstraint::Unique(u)
            if u.nulls_distinct == sqlparser::ast::NullsDistinctOption::NotDistinct)
    }) {
        return Err(Error::Unsupported(format!(
            "UNIQUE NULLS NOT DISTINCT ({c})"
        )));
    }
    if name.starts_with("__mdbc") || name.starts_with("sqlite_") {
        return Err(Error::InvalidParameter(format!(
            "table name \"{name}\" is reserved for mdbc's catalog"
        )));
    }
    // A temporary table may shadow a shared one, not another temporary one.
    let exists = if ct.temporary {
        catalog.is_temporary(&name)
    } else {
        catalog.table(&name).is_some() && !catalog.is_temporary(&name)
    };
    if exists {
        if ct.if_not_exists {
            return Ok(Command::Noop("CREATE TABLE"));
        }
        return Err(Error::DuplicateTable(name));
    }
    if ct.columns.is_empty() {
        return Err(Error::Unsupported("a table without columns".into()));
    }
    let table_pk: Vec<String> = ct
        .constraints
        .iter()
        .find_map(pk_columns)
        .unwrap_or_default();
    let mut cols = Vec::new();
    let mut infos = Vec::new();
    let mut names = Vec::new();
    let mut checks = Vec::new();
    for c in &ct.columns {
        let out = column_sql(&name, c, &table_pk)?;
        for (kind, cname) in &out.named {
            names.push(CatalogChange::NameConstraint {
                table: name.clone(),
                name: cname.clone(),
                kind: *kind,
                columns: vec![out.info.name.clone()],
            });
        }
        if infos.iter().any(|i: &ColumnInfo| i.name == out.info.name) {
            return Err(Error::DuplicateColumn(out.info.name.clone()));
        }
        cols.push(out.sql);
        checks.extend(out.checks);
        infos.push(out.info);
    }
    for k in &table_pk {
        if !infos.iter().any(|i| &i.name == k) {
            return Err(Error::UndefinedColumn(k.clone()));
        }
    }
    for c in &ct.constraints {
        cols.push(constraint_sql(c)?);
        names.extend(constraint_name(&name, c));
    }
    if ct.temporary {
        // A temporary table lives on the session's connection only: a sequence or a
        // foreign key would reach into the shared, replicated schema.
        if infos.iter().any(|i| i.serial) {
            return Err(Error::Unsupported(
                "serial or identity columns in a temporary table".into(),
            ));
        }
        if ct.columns.iter().any(|c| {
            c.options
                .iter()
                .any(|o| matches!(o.option, sqlparser::ast::ColumnOption::ForeignKey(_)))
        }) || ct
            .constraints
            .iter()
            .any(|c| matches!(c, TableConstraint::ForeignKey(_)))
        {
            return Err(Error::Unsupported(
                "foreign keys in a temporary table".into(),
            ));
        }
        let sql = format!(
            "CREATE TEMP TABLE {} ({})",
            quote_ident(&name),
            cols.join(", ")
        );
        checks.push(sql);
        return Ok(temporary_plan(
            checks,
            "CREATE TABLE",
            TempEffect::CreateTable(TableDef {
                name,
                columns: infos,
            }),
        ));
    }
    let sql = format!(
        "CREATE TABLE {}{} ({})",
        if ct.if_not_exists {
            "IF NOT EXISTS "
        } else {
            ""
        },
        quote_ident(&name),
        cols.join(", ")
    );
    checks.push(sql);
    Ok(Command::ddl(
        checks,
        "CREATE TABLE",
        std::iter::once(CatalogChange::CreateTable(TableDef {
            name,
            columns: infos,
        }))
        .chain(names)
        .collect(),
    ))
}

/// CREATE [UNIQUE] INDEX.
pub fn create_index(ci: &CreateIndex, catalog: &Catalog) -> Result<Command> {
    let table = object_name_to_table(&ci.table_name);
    // SQLite's unique indexes keep NULLs distinct, and it has no covering columns: refused
    // rather than built as something else.
    if ci.nulls_distinct == Some(false) {
        return Err(Error::Unsupported(
            "CREATE UNIQUE INDEX … NULLS NOT DISTINCT".into(),
        ));
    }
    if !ci.include.is_empty() {
        return Err(Error::Unsupported("CREATE INDEX … INCLUDE".into()));
    }
    let Some(def) = catalog.table(&table) else {
        if catalog.view(&table).is_some() {
            return Err(Error::Coded(
                "42809",
                format!("cannot create index on relation \"{table}\""),
            ));
        }
        return Err(Error::UndefinedTable(table));
    };
    let mut cols = Vec::new();
    let mut col_names = Vec::new();
    for c in &ci.columns {
        let mut e = c.column.expr.clone();
        if let sqlparser::ast::Expr::Identifier(id) = &e {
            let n = ident_value(id);
            if def.column(&n).is_none() {
                return Err(Error::UndefinedColumn(n));
            }
            col_names.push(n);
        } else {
            // PostgreSQL names an expression column after its function, else `expr`.
            col_names.push(match &e {
                sqlparser::ast::Expr::Function(f) => crate::ast::function_name(f).to_lowercase(),
                _ => "expr".into(),
            });
            rewrite_expr_in_place(&mut e)?;
            immutable_casts(&mut e, def);
        }
        let order = match &c.column.options.sort {
            Some(sqlparser::ast::OrderBySort::Desc) => " DESC",
            _ => "",
        };
        cols.push(format!("{e}{order}"));
    }
    let name = match &ci.name {
        Some(n) => object_name_to_table(n),
        // `_key` is for the index of a UNIQUE constraint; CREATE UNIQUE INDEX is `_idx`.
        None => choose_index_name(&table, &col_names, "idx", catalog),
    };
    let mut sql = format!(
        "CREATE {}INDEX {}{} ON {} ({})",
        if ci.unique { "UNIQUE " } else { "" },
        if ci.if_not_exists {
            "IF NOT EXISTS "
        } else {
            ""
        },
        quote_ident(&name),
        quote_ident(&table),
        cols.join(", ")
    );
    if let Some(p) = &ci.predicate {
        let mut p = p.clone();
        rewrite_expr_in_place(&mut p)?;
        immutable_casts(&mut p, def);
        sql.push_str(&format!(" WHERE {p}"));
    }
    if catalog.is_temporary(&table) {
        // SQLite puts an index on a temporary table beside it, in `temp`.
        return Ok(temporary_plan(
            vec![sql],
            "CREATE INDEX",
            TempEffect::CreateIndex(name),
        ));
    }
    let (plain, pretty) = crate::index_def::render(ci, def);
    Ok(Command::ddl(
        vec![sql],
        "CREATE INDEX",
        vec![CatalogChange::DescribeIndex {
            name,
            table,
            plain,
            pretty,
        }],
    ))
}

/// Casts in an index expression that cannot depend on the session's time zone (a column
/// of a type without one, cast to a type without one) call `pg_coerce_immutable`, which
/// SQLite accepts in an index; others stay session casts, which it refuses, as PostgreSQL
/// refuses casts that are not immutable.
fn immutable_casts(e: &mut sqlparser::ast::Expr, def: &TableDef) {
    use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Value};
    let zoned = |ty: PgType| {
        matches!(
            ty,
            PgType::Date
                | PgType::Time
                | PgType::Timestamp
                | PgType::Timestamptz
                | PgType::Interval
        )
    };
    let _ = sqlparser::ast::visit_expressions_mut(e, |x| {
        if let Expr::Function(f) = x {
            if crate::ast::function_name(f) == "pg_coerce" {
                if let FunctionArguments::List(list) = &f.args {
                    let arg = |i: usize| match list.args.get(i) {
                        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => Some(e),
                        _ => None,
                    };
                    // The value is free of the zone when every column it reads is of a
                    // type without one, and no cast inside it makes one.
                    let source_zoned = arg(0).map(|inner| {
                        let mut zoned_inside = false;
                        let _ = sqlparser::ast::visit_expressions(inner, |y| {
                            zoned_inside |= match y {
                                Expr::Identifier(id) => {
                                    def.column(&ident_value(id)).is_none_or(|c| zoned(c.ty))
                                }
                                Expr::CompoundIdentifier(_) => true,
                                Expr::Function(g) => crate::ast::function_name(g) == "pg_coerce",
                                _ => false,
                            };
                            std::ops::ControlFlow::<()>::Continue(())
                        });
                        zoned_inside
                    });
                    let target = match arg(1) {
                        Some(Expr::Value(v)) => match &v.value {
                            Value::Number(n, _) => n.parse::<u32>().ok().and_then(PgType::from_oid),
                            _ => None,
                        },
                        _ => None,
                    };
                    if let (Some(false), Some(t)) = (source_zoned, target) {
                        if !zoned(t) {
                            f.name =
                                sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(
                                    "pg_coerce_immutable",
                                )]);
                        }
                    }
                }
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// PostgreSQL's name for an index created without one: `table_col1_col2_idx` (each part
/// cut so the whole fits in 63 bytes), numbered `…_idx1`, `…_idx2` when taken.
fn choose_index_name(table: &str, columns: &[String], label: &str, catalog: &Catalog) -> String {
    const MAX: usize = 63;
    let cols = columns.join("_");
    let mut n = 0u32;
    loop {
        let suffix = if n == 0 {
            label.to_string()
        } else {
            format!("{label}{n}")
        };
        // PostgreSQL shortens the longer of the two names first, a byte at a time.
        let mut a = table.to_string();
        let mut b = cols.clone();
        while a.len() + b.len() + suffix.len() + 2 > MAX {
            let target = if a.len() > b.len() { &mut a } else { &mut b };
            let mut cut = target.len() - 1;
            while !target.is_char_boundary(cut) {
                cut -= 1;
            }
            target.truncate(cut);
        }
        let name = if b.is_empty() {
            format!("{a}_{suffix}")
        } else {
            format!("{a}_{b}_{suffix}")
        };
        if !catalog.has_relation(&name) {
            return name;
        }
        n += 1;
    }
}

/// DROP TABLE / DROP INDEX.
pub fn drop(
    object_type: ObjectType,
    if_exists: bool,
    names: &[ObjectName],
    cascade: bool,
    catalog: &Catalog,
) -> Result<Command> {
    match object_type {
        ObjectType::Table => {
            let tables = table_names(names);
            let temporary: Vec<&String> =
                tables.iter().filter(|t| catalog.is_temporary(t)).collect();
            if !temporary.is_empty() {
                if temporary.len() != tables.len() {
                    return Err(Error::Unsupported(
                        "DROP TABLE of temporary and shared tables together".into(),
                    ));
                }
                let sql = tables
                    .iter()
                    .map(|t| format!("DROP TABLE temp.{}", quote_ident(t)))
                    .collect();
                return Ok(temporary_plan(
                    sql,
                    "DROP TABLE",
                    TempEffect::DropTables(tables.clone()),
                ));
            }
            let mut sql = Vec::new();
            let mut changes = Vec::new();
            let mut dropped = Vec::new();
            for t in tables {
                if catalog.table(&t).is_none() {
                    if catalog.view(&t).is_some() {
                        return Err(crate::view::not_a("table", &t));
                    }
                    if if_exists {
                        continue;
                    }
                    return Err(Error::UndefinedTable(t));
                }
                sql.push(format!("DROP TABLE IF EXISTS {}", quote_ident(&t)));
                dropped.push(t.clone());
                changes.push(CatalogChange::DropTable(t));
            }
            // Sequences owned by their columns go with them.
            let owned: Vec<String> = dropped
                .iter()
                .flat_map(|t| crate::sequence::owned_by_table(t, catalog))
                .collect();
            if !owned.is_empty() {
                changes.push(CatalogChange::DropSequences(owned));
            }
            // The views reading them go too with CASCADE; without it they stop the drop.
            let readers = crate::view::dependents(&dropped, catalog);
            if !readers.is_empty() {
                if !cascade {
                    return Err(crate::view::still_read(
                        &format!("table {}", dropped[0]),
                        &readers,
                    ));
                }
                let views = readers
                    .iter()
                    .map(|v| format!("DROP VIEW IF EXISTS {}", quote_ident(v)));
                sql.splice(0..0, views);
                changes.insert(0, CatalogChange::DropViews(readers));
            }
            Ok(Command::ddl(sql, "DROP TABLE", changes))
        }
        ObjectType::Index => {
            let indexes = table_names(names);
            let temporary = indexes
                .iter()
                .filter(|i| catalog.is_temporary_index(i))
                .count();
            if temporary > 0 {
                if temporary != indexes.len() {
                    return Err(Error::Unsupported(
                        "DROP INDEX of temporary and shared indexes together".into(),
                    ));
                }
                let sql = indexes
                    .iter()
                    .map(|i| format!("DROP INDEX temp.{}", quote_ident(i)))
                    .collect();
                return Ok(temporary_plan(
                    sql,
                    "DROP INDEX",
                    TempEffect::DropIndexes(indexes),
                ));
            }
            let sql = indexes
                .iter()
                .map(|n| {
                    format!(
                        "DROP INDEX {}{}",
                        if if_exists { "IF EXISTS " } else { "" },
                        quote_ident(n)
                    )
                })
                .collect();
            Ok(Command::ddl(
                sql,
                "DROP INDEX",
                vec![CatalogChange::DropIndexes(indexes)],
            ))
        }
        other => Err(Error::Unsupported(format!("DROP {other}"))),
    }
}

/// ALTER TABLE.
pub fn alter_table(
    at: &AlterTable,
    catalog: &Catalog,
    plan: crate::alter_column::Planner,
) -> Result<Command> {
    let table = object_name_to_table(&at.name);
    let Some(def) = catalog.table(&table) else {
        if catalog.view(&table).is_some() {
            return Err(Error::Unsupported(format!(
                "ALTER TABLE/VIEW on the view \"{table}\" (drop and create it again)"
            )));
        }
        if at.if_exists {
            return Ok(Command::Noop("ALTER TABLE"));
        }
        return Err(Error::UndefinedTable(table));
    };
    if catalog.is_temporary(&table) {
        return Err(Error::Unsupported(
            "ALTER TABLE on a temporary table".into(),
        ));
    }
    let qt = quote_ident(&table);
    let mut sql = Vec::new();
    let mut changes = Vec::new();
    let mut rebuild: Option<TableRebuild> = None;
    let mut altered = crate::alter_column::AlterColumns::new(def);
    // ADD, DROP or RENAME COLUMN run as SQLite statements before a rebuild, which is
    // planned on the columns as they were: the two do not mix in one statement.
    let mut reshaped = false;
    // A column added by the rebuild: the copy names the columns as they were, so DROP and
    // RENAME COLUMN (run before it) do not mix with it.
    let mut rebuilt_columns = false;
    let mut renamed = false;
    for op in &at.operations {
        if matches!(
            op,
            AlterTableOperation::DropColumn { .. }
                | AlterTableOperation::RenameColumn { .. }
                | AlterTableOperation::RenameTable { .. }
        ) {
            renamed = true;
        }
        if matches!(
            op,
            AlterTableOperation::AddColumn { .. }
                | AlterTableOperation::DropColumn { .. }
                | AlterTableOperation::RenameColumn { .. }
                | AlterTableOperation::RenameTable { .. }
        ) {
            reshaped = true;
        }
        match op {
            AlterTableOperation::AlterColumn { column_name, op } => {
                altered.add(column_name, op)?;
            }
            AlterTableOperation::DropConstraint {
                if_exists, name, ..
            } => {
                // Found by name where the constraint's definition is (SQLite's text, the
                // recorded names, an index): the server resolves it while rebuilding.
                let rb = rebuild.get_or_insert_with(|| TableRebuild {
                    table: table.clone(),
                    ..Default::default()
                });
                if rb.drop_constraint.is_some() {
                    return Err(Error::Unsupported(
                        "several DROP CONSTRAINT in one ALTER TABLE".into(),
                    ));
                }
                rb.drop_constraint = Some(ident_value(name));
                rb.drop_if_exists = *if_exists;
            }
            AlterTableOperation::AddColumn {
                column_def,
                if_not_exists,
                ..
            } => {
                let n = ident_value(&column_def.name);
                if def.column(&n).is_some() {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(Error::InvalidParameter(format!(
                        "column \"{n}\" of relation \"{table}\" already exists"
                    )));
                }
                let out = column_sql(&table, column_def, &[])?;
                sql.extend(out.checks.iter().cloned());
                if out.computed_default == Some(false) {
                    // Every site replays the ALTER: a sequence, a clock or a random value
                    // would give the existing rows different values at each site.
                    return Err(Error::Unsupported(
                        "ADD COLUMN with a serial column or a default that calls a function \
                         (existing rows would differ between sites)"
                            .into(),
                    ));
                }
                if out.computed_default == Some(true) {
                    // SQLite's ADD COLUMN takes only a constant default: the table is
                    // rebuilt with the column, each row taking the default as PostgreSQL
                    // fills it (a sequence's next value per row, for one).
                    let rb = rebuild.get_or_insert_with(|| TableRebuild {
                        table: table.clone(),
                        ..Default::default()
                    });
                    rb.added.push(out.sql.clone());
                    let cols: Vec<String> =
                        def.columns.iter().map(|c| quote_ident(&c.name)).collect();
                    rb.copy = Some(format!(
                        "INSERT INTO {} ({}) SELECT {} FROM {qt}",
                        quote_ident(crate::rebuild::REBUILD_TABLE),
                        cols.join(", "),
                        cols.join(", ")
                    ));
                    rebuilt_columns = true;
                } else {
                    sql.push(format!("ALTER TABLE {qt} ADD COLUMN {}", out.sql));
                }
                for (kind, cname) in &out.named {
                    changes.push(CatalogChange::NameConstraint {
                        table: table.clone(),
                        name: cname.clone(),
                        kind: *kind,
                        columns: vec![out.info.name.clone()],
                    });
                }
                changes.push(CatalogChange::AddColumn {
                    table: table.clone(),
                    column: out.info,
                });
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                for c in column_names {
                    let n = ident_value(c);
                    if def.column(&n).is_none() {
                        if *if_exists {
                            continue;
                        }
                        return Err(Error::UndefinedColumn(n));
                    }
                    sql.push(format!("ALTER TABLE {qt} DROP COLUMN {}", quote_ident(&n)));
                    changes.push(CatalogChange::DropColumn {
                        table: table.clone(),
                        column: n,
                    });
                }
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let from = ident_value(old_column_name);
                let to = ident_value(new_column_name);
                if def.column(&from).is_none() {
                    return Err(Error::UndefinedColumn(from));
                }
                sql.push(format!(
                    "ALTER TABLE {qt} RENAME COLUMN {} TO {}",
                    quote_ident(&from),
                    quote_ident(&to)
                ));
                changes.push(CatalogChange::RenameColumn {
                    table: table.clone(),
                    from,
                    to,
                });
            }
            AlterTableOperation::RenameTable { table_name } => {
                let to = match table_name {
                    sqlparser::ast::RenameTableNameKind::To(n)
                    | sqlparser::ast::RenameTableNameKind::As(n) => object_name_to_table(n),
                };
                if catalog.table(&to).is_some() {
                    return Err(Error::DuplicateTable(to));
                }
                sql.push(format!("ALTER TABLE {qt} RENAME TO {}", quote_ident(&to)));
                changes.push(CatalogChange::RenameTable {
                    from: table.clone(),
                    to,
                });
            }
            AlterTableOperation::AddConstraint { constraint, .. } => match constraint {
                TableConstraint::Unique(u) => {
                    if u.nulls_distinct == sqlparser::ast::NullsDistinctOption::NotDistinct {
                        return Err(Error::Unsupported("UNIQUE NULLS NOT DISTINCT".into()));
                    }
                    let cols = index_column_names(&u.columns);
                    for c in &cols {
                        if def.column(c).is_none() {
                            return Err(Error::UndefinedColumn(c.clone()));
                        }
                    }
                    let name = u
                        .name
                        .as_ref()
                        .map(ident_value)
                        .unwrap_or_else(|| format!("{table}_{}_key", cols.join("_")));
                    // A unique index, to SQLite; a constraint, to the catalogs.
                    changes.push(CatalogChange::NameConstraint {
                        table: table.clone(),
                        name: name.clone(),
                        kind: 'u',
                        columns: cols.clone(),
                    });
                    sql.push(format!(
                        "CREATE UNIQUE INDEX {} ON {qt} ({})",
                        quote_ident(&name),
                        cols.iter()
                            .map(|c| quote_ident(c))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                TableConstraint::PrimaryKey(_)
                | TableConstraint::ForeignKey(_)
                | TableConstraint::Check(_) => {
                    if rebuild.as_ref().is_some_and(|r| r.constraint.is_some()) {
                        return Err(Error::Unsupported(
                            "several constraints in one ALTER TABLE".into(),
                        ));
                    }
                    if let Some(cols) = pk_columns(constraint) {
                        for c in &cols {
                            if def.column(c).is_none() {
                                return Err(Error::UndefinedColumn(c.clone()));
                            }
                        }
                        changes.push(CatalogChange::SetNotNull {
                            table: table.clone(),
                            columns: cols,
                        });
                    }
                    changes.extend(constraint_name(&table, constraint));
                    // A primary key makes its columns NOT NULL; a rebuild can only add table
                    // constraints, so these are checks the server reports as 23502.
                    let mut sql = constraint_sql(constraint)?;
                    for c in pk_columns(constraint).unwrap_or_default() {
                        sql.push_str(&format!(
                            ", CONSTRAINT {} CHECK ({} IS NOT NULL)",
                            quote_ident(&format!("{NOT_NULL_CHECK}{c}")),
                            quote_ident(&c)
                        ));
                    }
                    rebuild
                        .get_or_insert_with(|| TableRebuild {
                            table: table.clone(),
                            ..Default::default()
                        })
                        .constraint = Some(sql);
                }
                other => return Err(Error::Unsupported(format!("ALTER TABLE ADD {other}"))),
            },
            other => {
                return Err(Error::Unsupported(format!("ALTER TABLE {other}")));
            }
        }
    }
    if rebuilt_columns && (renamed || !altered.is_empty()) {
        return Err(Error::Unsupported(
            "ADD COLUMN with a computed default together with other column changes in one \
             ALTER TABLE"
                .into(),
        ));
    }
    if !altered.is_empty() {
        if reshaped {
            return Err(Error::Unsupported(
                "ALTER COLUMN together with ADD, DROP or RENAME in one ALTER TABLE".into(),
            ));
        }
        altered.finish(catalog, plan, &mut sql, &mut rebuild, &mut changes)?;
    }
    let mut cmd = Command::ddl(sql, "ALTER TABLE", changes);
    if let Command::Sql(p) = &mut cmd {
        p.rebuild = rebuild;
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::SqlPlan;
    use crate::split::parse;
    use crate::translate::plan;

    fn ddl(sql: &str, cat: &Catalog) -> SqlPlan {
        match plan(&parse(sql).unwrap()[0], cat).unwrap() {
            Command::Sql(p) => *p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_table_keeps_pg_types() {
        let p = ddl(
            "create table t (id serial primary key, n numeric(10,2) not null, \
             ts timestamptz default now(), b boolean) with (fillfactor=100)",
            &Catalog::default(),
        );
        assert_eq!(
            p.sql[0],
            "CREATE TABLE \"t\" (\"id\" INTEGER PRIMARY KEY DEFAULT (pg_nextval('t_id_seq')) NOT NULL, \
             \"n\" TEXT COLLATE pg_numeric NOT NULL, \
             \"ts\" TEXT COLLATE pg_datetime DEFAULT (pg_now()), \"b\" INTEGER)"
        );
        match &p.catalog[0] {
            CatalogChange::CreateTable(def) => {
                assert_eq!(def.columns[0].ty, PgType::Int4);
                assert!(def.columns[0].serial);
                assert_eq!(def.columns[1].scale(), Some(2));
                assert_eq!(def.columns[2].ty, PgType::Timestamptz);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serial_outside_the_key_uses_a_sequence() {
        let p = ddl(
            "create table t (k text primary key, n bigserial)",
            &Catalog::default(),
        );
        assert!(
            p.sql[0].contains("DEFAULT (pg_nextval('t_n_seq'))"),
            "{}",
            p.sql[0]
        );
        // A text key is NOT NULL in SQLite too (its PRIMARY KEY alone would allow NULL).
        assert!(
            p.sql[0].contains("\"k\" TEXT PRIMARY KEY NOT NULL"),
            "{}",
            p.sql[0]
        );
    }

    #[test]
    fn add_primary_key_rebuilds() {
        let mut cat = Catalog::default();
        if let CatalogChange::CreateTable(d) =
            &ddl("create table a (aid int not null, x int)", &cat).catalog[0]
        {
            cat.insert(d.clone());
        }
        let p = ddl("alter table a add primary key (aid)", &cat);
        // SQLite's PRIMARY KEY allows NULL: the key's NOT NULL comes as a named check.
        assert_eq!(
            p.rebuild.unwrap().constraint.as_deref(),
            Some(
                "PRIMARY KEY (aid), CONSTRAINT \"__mdbc_not_null_aid\" CHECK (\"aid\" IS NOT NULL)"
            )
        );
        let e = plan(
            &parse("alter table a add primary key (nope)").unwrap()[0],
            &cat,
        )
        .unwrap_err();
        assert_eq!(e.sqlstate(), "42703");
    }

    #[test]
    fn drop_many_and_if_exists() {
        let p = ddl("drop table if exists a, b", &Catalog::default());
        assert!(p.sql.is_empty());
        let e = plan(&parse("drop table a").unwrap()[0], &Catalog::default()).unwrap_err();
        assert_eq!(e.sqlstate(), "42P01");
    }

    /// Clauses that would make the table or index something else are refused with 0A000
    /// naming them, never taken silently (issue 19: never a different answer).
    #[test]
    fn what_would_change_the_meaning_is_refused() {
        let mut cat = Catalog::default();
        cat.insert(TableDef {
            name: "t".into(),
            columns: vec![ColumnInfo::plain("i", PgType::Int4)],
        });
        for (sql, named) in [
            (
                "create table p (a int) partition by range (a)",
                "PARTITION BY",
            ),
            ("create table c (b int) inherits (t)", "INHERITS"),
            ("create unlogged table u (a int)", "UNLOGGED"),
            (
                "create table n (a int, unique nulls not distinct (a))",
                "NULLS NOT DISTINCT",
            ),
            (
                "create unique index on t (i) nulls not distinct",
                "NULLS NOT DISTINCT",
            ),
            ("create index on t (i) include (i)", "INCLUDE"),
            (
                "alter table t add unique nulls not distinct (i)",
                "NULLS NOT DISTINCT",
            ),
        ] {
            let e = plan(&parse(sql).unwrap()[0], &cat).unwrap_err();
            assert_eq!(e.sqlstate(), "0A000", "{sql}: {e}");
            assert!(e.to_string().contains(named), "{sql}: {e}");
        }
    }
}
