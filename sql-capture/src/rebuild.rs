//! The new definition of a table being rebuilt. SQLite cannot add a constraint to a table
//! or change a column, so the executor creates a copy under [`REBUILD_TABLE`] from the
//! definition SQLite keeps (`sqlite_schema.sql`), changed here, moves the rows and swaps.
//! Working from SQLite's own text keeps everything the catalogs do not hold: CHECK and
//! FOREIGN KEY clauses, collations, the sequence defaults of serial columns.

use sqlparser::ast::{ColumnOption, ColumnOptionDef, CreateTable, Statement, TableConstraint};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use crate::ast::ident_value;
use crate::error::{Error, Result};
use crate::plan::{ColumnRedefinition, TableRebuild};

/// The name prefix of the CHECK that stands for a NOT NULL added by a rebuild: the server
/// reports its failure as PostgreSQL's not-null violation (23502).
pub const NOT_NULL_CHECK: &str = "__mdbc_not_null_";

/// The name the copy is built under before it takes the table's name.
pub const REBUILD_TABLE: &str = "__mdbc_rebuild";

/// `CREATE TABLE __mdbc_rebuild (…)`: `create_sql` (the table's definition as SQLite keeps
/// it) with `rb`'s columns redefined, its constraint added or dropped (`recorded`: the
/// constraint names mdbc's catalog holds for the table).
pub fn redefine(
    create_sql: &str,
    rb: &TableRebuild,
    recorded: &[NamedConstraint],
) -> Result<String> {
    let mut ct = parse_create(create_sql)?;
    if let Some(name) = &rb.drop_constraint {
        if !drop_constraint(&mut ct, &rb.table, name, recorded) && !rb.drop_if_exists {
            return Err(Error::Coded(
                "42704",
                format!(
                    "constraint \"{name}\" of relation \"{}\" does not exist",
                    rb.table
                ),
            ));
        }
    }
    ct.name = sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::with_quote(
        '"',
        REBUILD_TABLE,
    )]);
    for change in &rb.columns {
        redefine_column(&mut ct, change)?;
    }
    for c in &rb.added {
        let holder = parse_create(&format!("CREATE TABLE x ({c})"))?;
        ct.columns.extend(holder.columns);
    }
    if let Some(c) = &rb.constraint {
        // Parsed as a constraint of a throw-away table, so that it renders like the rest.
        let holder = parse_create(&format!("CREATE TABLE x (x INTEGER, {c})"))?;
        ct.constraints.extend(holder.constraints);
    }
    Ok(Statement::CreateTable(ct).to_string())
}

/// A constraint recorded by name in mdbc's catalog (`__mdbc_constraints`): SQLite keeps
/// primary keys, unique and foreign keys without their names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedConstraint {
    /// Name.
    pub name: String,
    /// `p`, `u` or `f`.
    pub kind: char,
    /// Columns, in order.
    pub columns: Vec<String>,
}

/// Removes the constraint called `name` from `ct`, looked up as the catalogs name it: a
/// recorded name, else PostgreSQL's default (`t_pkey`, `t_a_key`, `t_a_fkey`), else a
/// `CONSTRAINT name` clause in SQLite's text. Whether one was found.
fn drop_constraint(
    ct: &mut CreateTable,
    table: &str,
    name: &str,
    recorded: &[NamedConstraint],
) -> bool {
    let cols_of = |cols: &[sqlparser::ast::IndexColumn]| -> Vec<String> {
        cols.iter()
            .map(|c| c.column.expr.to_string().trim_matches('"').to_string())
            .collect()
    };
    let plain =
        |ids: &[sqlparser::ast::Ident]| -> Vec<String> { ids.iter().map(ident_value).collect() };
    // Named in SQLite's text (CHECK, or any constraint declared with a name).
    let before = ct.constraints.len();
    ct.constraints
        .retain(|c| constraint_name(c).map(ident_value).as_deref() != Some(name));
    if ct.constraints.len() != before {
        return true;
    }
    for col in ct.columns.iter_mut() {
        let before = col.options.len();
        col.options
            .retain(|o| o.name.as_ref().map(ident_value).as_deref() != Some(name));
        if col.options.len() != before {
            return true;
        }
    }
    // Recorded, or PostgreSQL's default name for a key or a reference.
    let target = recorded
        .iter()
        .find(|r| r.name == name)
        .map(|r| (r.kind, r.columns.clone()));
    let keyed = |kind: char, cols: &[String]| -> bool {
        let default = match kind {
            'p' => format!("{table}_pkey"),
            'u' => format!("{table}_{}_key", cols.join("_")),
            _ => format!("{table}_{}_fkey", cols.join("_")),
        };
        match &target {
            Some((k, c)) => *k == kind && c.as_slice() == cols,
            None => default == name,
        }
    };
    let before = ct.constraints.len();
    ct.constraints.retain(|c| match c {
        TableConstraint::PrimaryKey(pk) => !keyed('p', &cols_of(&pk.columns)),
        TableConstraint::Unique(u) => !keyed('u', &cols_of(&u.columns)),
        TableConstraint::ForeignKey(fk) => !keyed('f', &plain(&fk.columns)),
        _ => true,
    });
    if ct.constraints.len() != before {
        return true;
    }
    for col in ct.columns.iter_mut() {
        let me = vec![ident_value(&col.name)];
        let before = col.options.len();
        col.options.retain(|o| match &o.option {
            ColumnOption::PrimaryKey(_) => !keyed('p', &me),
            ColumnOption::Unique(_) => !keyed('u', &me),
            ColumnOption::ForeignKey(_) => !keyed('f', &me),
            _ => true,
        });
        if col.options.len() != before {
            return true;
        }
    }
    false
}

fn constraint_name(c: &TableConstraint) -> Option<&sqlparser::ast::Ident> {
    match c {
        TableConstraint::Unique(u) => u.name.as_ref(),
        TableConstraint::PrimaryKey(p) => p.name.as_ref(),
        TableConstraint::ForeignKey(f) => f.name.as_ref(),
        TableConstraint::Check(c) => c.name.as_ref(),
        _ => None,
    }
}

fn parse_create(sql: &str) -> Result<CreateTable> {
    let mut stmts = Parser::parse_sql(&SQLiteDialect {}, sql)
        .map_err(|e| Error::Coded("XX000", format!("cannot rebuild table: {e}")))?;
    match stmts.pop() {
        Some(Statement::CreateTable(ct)) if stmts.is_empty() => Ok(ct),
        _ => Err(Error::Coded(
            "XX000",
            "cannot rebuild table: its definition is not a CREATE TABLE".into(),
        )),
    }
}

/// Options of a throw-away column declared as `decl` (type, collation, default…).
fn column_parts(decl: &str) -> Result<sqlparser::ast::ColumnDef> {
    let mut ct = parse_create(&format!("CREATE TABLE x (x {decl})"))?;
    ct.columns
        .pop()
        .ok_or_else(|| Error::Coded("XX000", "cannot rebuild table: empty column".into()))
}

fn redefine_column(ct: &mut CreateTable, change: &ColumnRedefinition) -> Result<()> {
    let in_table_key = ct.constraints.iter().any(|c| match c {
        TableConstraint::PrimaryKey(pk) => pk
            .columns
            .iter()
            .any(|ic| ic.column.expr.to_string().trim_matches('"') == change.name),
        _ => false,
    });
    let col = ct
        .columns
        .iter_mut()
        .find(|c| ident_value(&c.name) == change.name)
        .ok_or_else(|| Error::UndefinedColumn(change.name.clone()))?;
    if let Some(decl) = &change.decl {
        let parts = column_parts(decl)?;
        col.data_type = parts.data_type;
        col.options
            .retain(|o| !matches!(o.option, ColumnOption::Collation(_)));
        col.options.extend(
            parts
                .options
                .into_iter()
                .filter(|o| matches!(o.option, ColumnOption::Collation(_))),
        );
    }
    if let Some(default) = &change.default {
        col.options
            .retain(|o| !matches!(o.option, ColumnOption::Default(_)));
        if let Some(expr) = default {
            let parts = column_parts(&format!("INTEGER DEFAULT ({expr})"))?;
            col.options.extend(parts.options);
        }
    }
    if let Some(not_null) = change.not_null {
        let keyed = in_table_key
            || col
                .options
                .iter()
                .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)));
        if !not_null && keyed {
            return Err(Error::Coded(
                "42P16",
                format!("column \"{}\" is in a primary key", change.name),
            ));
        }
        col.options
            .retain(|o| !matches!(o.option, ColumnOption::NotNull | ColumnOption::Null));
        if !not_null {
            // A NOT NULL a primary key added by rebuild left as a named check.
            let check = format!("{}{}", NOT_NULL_CHECK, change.name);
            ct.constraints
                .retain(|c| constraint_name(c).map(ident_value).as_deref() != Some(&check));
        }
        if not_null {
            col.options.push(ColumnOptionDef {
                name: None,
                option: ColumnOption::NotNull,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rb(columns: Vec<ColumnRedefinition>, constraint: Option<&str>) -> TableRebuild {
        TableRebuild {
            table: "t".into(),
            constraint: constraint.map(str::to_string),
            columns,
            added: Vec::new(),
            copy: None,
            drop_constraint: None,
            drop_if_exists: false,
        }
    }

    #[test]
    fn columns_change_in_place() {
        let create = "CREATE TABLE \"t\" (\"id\" INTEGER PRIMARY KEY DEFAULT (pg_nextval('t_id_seq')) NOT NULL, \
             \"n\" TEXT COLLATE pg_numeric NOT NULL, \"x\" INTEGER DEFAULT (5), CHECK (\"x\" > 0))";
        let out = redefine(
            create,
            &rb(
                vec![
                    ColumnRedefinition {
                        name: "n".into(),
                        decl: Some("INTEGER".into()),
                        not_null: Some(false),
                        ..Default::default()
                    },
                    ColumnRedefinition {
                        name: "x".into(),
                        default: Some(None),
                        not_null: Some(true),
                        ..Default::default()
                    },
                ],
                Some("UNIQUE (\"x\")"),
            ),
            &[],
        )
        .unwrap();
        assert_eq!(
            out,
            "CREATE TABLE \"__mdbc_rebuild\" (\"id\" INTEGER PRIMARY KEY DEFAULT (pg_nextval('t_id_seq')) NOT NULL, \
             \"n\" INTEGER, \"x\" INTEGER NOT NULL, CHECK (\"x\" > 0), UNIQUE (\"x\"))"
        );
    }

    #[test]
    fn a_key_column_stays_not_null() {
        let create = "CREATE TABLE t (a INTEGER, b TEXT, PRIMARY KEY (a))";
        let err = redefine(
            create,
            &rb(
                vec![ColumnRedefinition {
                    name: "a".into(),
                    not_null: Some(false),
                    ..Default::default()
                }],
                None,
            ),
            &[],
        )
        .unwrap_err();
        assert_eq!(err.sqlstate(), "42P16");
    }
}
