//! `ALTER TABLE … ALTER COLUMN`: `TYPE … [USING …]`, `SET/DROP DEFAULT`, `SET/DROP NOT
//! NULL`. SQLite cannot change a column, so each becomes part of a table rebuild
//! ([`crate::rebuild`]); a type change copies the rows through PostgreSQL's conversion —
//! the `USING` expression, or the column itself — written into the new column type by the
//! same assignment rules as an INSERT (so a value the new type refuses fails the ALTER,
//! and a pair with no assignment cast is 42804, as in PostgreSQL).

use sqlparser::ast::{AlterColumnOperation, Expr, Ident};

use crate::ast::{ident_value, quote_ident};
use crate::catalog::{Catalog, ColumnInfo, TableDef};
use crate::defaults::pg_default_text;
use crate::error::{Error, Result};
use crate::plan::{CatalogChange, ColumnRedefinition, Command, TableRebuild};
use crate::rebuild::REBUILD_TABLE;
use crate::rewrite::assignment::{assignment, Assignment};
use crate::types::PgType;

/// How a statement is planned (the translator's entry point, handed in so that this
/// module, which the translator reaches through DDL, does not reach back).
pub(crate) type Planner = fn(&crate::split::Parsed, &Catalog) -> Result<Command>;

/// The ALTER COLUMN actions of one ALTER TABLE, gathered before they become one rebuild.
pub(crate) struct AlterColumns {
    table: String,
    before: Vec<ColumnInfo>,
    after: Vec<ColumnInfo>,
    redefined: Vec<ColumnRedefinition>,
    /// Columns whose type changes, with the PostgreSQL expression giving the new value.
    converted: Vec<(String, Expr)>,
    /// Statements that fail when a new default does not fit its column.
    checks: Vec<String>,
}

impl AlterColumns {
    pub(crate) fn new(def: &TableDef) -> Self {
        AlterColumns {
            table: def.name.clone(),
            before: def.columns.clone(),
            after: def.columns.clone(),
            redefined: Vec::new(),
            converted: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// Whether any action was gathered.
    pub(crate) fn is_empty(&self) -> bool {
        self.redefined.is_empty()
    }

    /// Gathers one `ALTER COLUMN name op`.
    pub(crate) fn add(&mut self, column: &Ident, op: &AlterColumnOperation) -> Result<()> {
        let name = ident_value(column);
        let i = self
            .after
            .iter()
            .position(|c| c.name == name)
            .or_else(|| {
                self.after
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(&name))
            })
            .ok_or_else(|| Error::UndefinedColumn(name.clone()))?;
        let name = self.after[i].name.clone();
        let r = match self.redefined.iter().position(|r| r.name == name) {
            Some(r) => r,
            None => {
                self.redefined.push(ColumnRedefinition {
                    name: name.clone(),
                    ..Default::default()
                });
                self.redefined.len() - 1
            }
        };
        let col = &mut self.after[i];
        let redef = &mut self.redefined[r];
        match op {
            AlterColumnOperation::SetNotNull => {
                col.not_null = true;
                redef.not_null = Some(true);
            }
            AlterColumnOperation::DropNotNull => {
                col.not_null = false;
                redef.not_null = Some(false);
            }
            AlterColumnOperation::SetDefault { value } => {
                // The new default replaces a serial column's sequence too.
                col.default = Some(pg_default_text(value, col.ty));
                col.serial = false;
                let (e, check) = crate::rewrite::dml::column_default(value, col)?;
                self.checks.extend(check);
                redef.default = Some(Some(e.to_string()));
            }
            AlterColumnOperation::DropDefault => {
                col.default = None;
                col.serial = false;
                redef.default = Some(None);
            }
            AlterColumnOperation::SetDataType {
                data_type, using, ..
            } => {
                let type_name = data_type.to_string();
                let spec = PgType::parse_sql_name(&type_name)
                    .filter(|s| s.ty.element().is_none() && !s.serial)
                    .ok_or_else(|| {
                        if type_name.ends_with("[]") {
                            Error::Unsupported(format!("array type {type_name} in a table"))
                        } else {
                            Error::UndefinedType(type_name.to_ascii_lowercase())
                        }
                    })?;
                if using.is_none() && assignment(col.ty, spec.ty) == Assignment::Refused {
                    return Err(Error::DatatypeMismatch(format!(
                        "column \"{name}\" cannot be cast automatically to type {}",
                        spec.ty.name()
                    )));
                }
                col.ty = spec.ty;
                col.typmod = spec.typmod;
                redef.decl = Some(spec.ty.sqlite_decl().to_string());
                let value = using
                    .clone()
                    .unwrap_or_else(|| Expr::Identifier(Ident::with_quote('"', name.clone())));
                match self.converted.iter_mut().find(|(c, _)| *c == name) {
                    Some(slot) => slot.1 = value,
                    None => self.converted.push((name, value)),
                }
            }
            AlterColumnOperation::AddGenerated { .. } => {
                return Err(Error::Unsupported(
                    "ALTER TABLE ALTER COLUMN … ADD GENERATED".into(),
                ))
            }
        }
        Ok(())
    }

    /// The gathered actions as statements to run first, catalog changes and (part of)
    /// `rebuild`.
    pub(crate) fn finish(
        self,
        catalog: &Catalog,
        plan: Planner,
        sql: &mut Vec<String>,
        rebuild: &mut Option<TableRebuild>,
        changes: &mut Vec<CatalogChange>,
    ) -> Result<()> {
        // A view's columns were typed when it was created, from this table's: PostgreSQL
        // refuses to change a type a view reads (0A000); mdbc, which does not track
        // which columns a view reads, refuses it for any view over the table.
        if !self.converted.is_empty() {
            if let Some(v) = catalog.dependent_views(&self.table).first() {
                return Err(Error::Unsupported(format!(
                    "altering the type of a column of \"{}\" while view \"{v}\" reads the table",
                    self.table
                )));
            }
        }
        sql.extend(self.checks.iter().cloned());
        let copy = if self.converted.is_empty() {
            None
        } else {
            Some(self.copy_statement(catalog, plan)?)
        };
        for (old, new) in self.before.iter().zip(&self.after) {
            if old != new {
                changes.push(CatalogChange::AlterColumn {
                    table: self.table.clone(),
                    column: new.clone(),
                });
            }
        }
        let rb = rebuild.get_or_insert_with(|| TableRebuild {
            table: self.table.clone(),
            ..Default::default()
        });
        rb.columns = self.redefined;
        rb.copy = copy;
        Ok(())
    }

    /// The SQLite INSERT that fills the rebuilt table: every column as it is, the converted
    /// ones through their expression, each written with PostgreSQL's assignment rules into
    /// the column's new type. Planned as an INSERT into a table of the new shape.
    fn copy_statement(&self, catalog: &Catalog, plan: Planner) -> Result<String> {
        let mut shaped = catalog.clone();
        shaped.insert(TableDef {
            name: REBUILD_TABLE.to_string(),
            columns: self.after.clone(),
        });
        let names: Vec<String> = self.before.iter().map(|c| quote_ident(&c.name)).collect();
        let values: Vec<String> = self
            .before
            .iter()
            .map(
                |c| match self.converted.iter().find(|(n, _)| *n == c.name) {
                    Some((_, e)) => format!("({e})"),
                    None => quote_ident(&c.name),
                },
            )
            .collect();
        let sql = format!(
            "INSERT INTO {} ({}) SELECT {} FROM {}",
            quote_ident(REBUILD_TABLE),
            names.join(", "),
            values.join(", "),
            quote_ident(&self.table)
        );
        let parsed = crate::split::parse(&sql)?;
        let [one] = parsed.as_slice() else {
            return Err(Error::Syntax("USING must be one expression".into()));
        };
        match plan(one, &shaped)? {
            Command::Sql(p) if p.sql.len() == 1 => Ok(p.sql[0].clone()),
            _ => Err(Error::Unsupported(
                "ALTER COLUMN … TYPE with this USING expression".into(),
            )),
        }
    }
}
