//! `CREATE TABLE … AS query` and `SELECT … INTO table`. The new table's columns are the
//! query's result columns, and only preparing the query tells them exactly (the way a
//! client's Describe learns them), so translation cannot finish the job alone: it hands
//! the session a recipe, and the session prepares the query, creates the table from what
//! it learned and fills it with an ordinary `INSERT … query`. The table's creation then
//! travels to other sites through the schema log as a plain `CREATE TABLE`, and its rows
//! as the rows the query produced here — never as the query, which another site would
//! answer from its own (possibly different, possibly later) data.

use sqlparser::ast::{CreateTable, Query, SelectInto, SetExpr};

use crate::ast::{object_name_to_table, quote_ident};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::plan::{Command, CreateTableAs};
use crate::types::PgType;

impl CreateTableAs {
    /// The `CREATE TABLE` for result columns `(name, type, typmod)`: given names replace
    /// the query's in order; more names than columns is PostgreSQL's 42601.
    pub fn create_sql(&self, columns: &[(String, PgType, i32)]) -> Result<String> {
        if self.column_names.len() > columns.len() {
            return Err(Error::Syntax("too many column names were specified".into()));
        }
        let mut defs = Vec::with_capacity(columns.len());
        for (i, (name, ty, typmod)) in columns.iter().enumerate() {
            let name = self.column_names.get(i).unwrap_or(name);
            if defs.iter().any(|(n, _): &(&String, String)| *n == name) {
                return Err(Error::DuplicateColumn(name.clone()));
            }
            defs.push((name, ty.format_with_typmod(*typmod)));
        }
        let cols: Vec<String> = defs
            .iter()
            .map(|(n, t)| format!("{} {t}", quote_ident(n)))
            .collect();
        Ok(format!(
            "CREATE {}TABLE {} ({})",
            if self.temporary { "TEMPORARY " } else { "" },
            quote_ident(&self.table),
            cols.join(", ")
        ))
    }

    /// The `INSERT` that fills the table with the query's rows.
    pub fn insert_sql(&self) -> String {
        format!("INSERT INTO {} {}", quote_ident(&self.table), self.query)
    }
}

/// `CREATE TABLE … AS query` (other clauses already checked by the caller).
pub(crate) fn from_create(ct: &CreateTable, query: &Query, catalog: &Catalog) -> Result<Command> {
    let table = object_name_to_table(&ct.name);
    if let Some(done) = existing(&table, ct.temporary, ct.if_not_exists, catalog)? {
        return Ok(done);
    }
    if ct.columns.iter().any(|c| !is_untyped(c)) {
        return Err(Error::Syntax(
            "column types cannot be given in CREATE TABLE … AS".into(),
        ));
    }
    Ok(Command::CreateTableAs(Box::new(CreateTableAs {
        table,
        temporary: ct.temporary,
        column_names: ct.columns.iter().map(|c| c.name.value.clone()).collect(),
        query: query.to_string(),
        with_data: ct.with_data.as_ref().is_none_or(|w| w.data),
    })))
}

/// `SELECT … INTO [TEMP] table FROM …`: the query without its INTO clause.
pub(crate) fn from_select_into(q: &Query, catalog: &Catalog) -> Result<Option<Command>> {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Ok(None);
    };
    let Some(SelectInto {
        temporary,
        unlogged,
        targets,
        ..
    }) = s.into.clone()
    else {
        return Ok(None);
    };
    if unlogged {
        return Err(Error::Unsupported("SELECT … INTO UNLOGGED".into()));
    }
    let table = match targets.as_slice() {
        [sqlparser::ast::Expr::Identifier(i)] => crate::ast::ident_value(i),
        [sqlparser::ast::Expr::CompoundIdentifier(parts)] => {
            object_name_to_table(&sqlparser::ast::ObjectName::from(parts.clone()))
        }
        _ => return Err(Error::Syntax("SELECT … INTO needs one table name".into())),
    };
    if let Some(done) = existing(&table, temporary, false, catalog)? {
        return Ok(Some(done));
    }
    let mut query = q.clone();
    if let SetExpr::Select(s) = query.body.as_mut() {
        s.into = None;
    }
    Ok(Some(Command::CreateTableAs(Box::new(CreateTableAs {
        table,
        temporary,
        column_names: Vec::new(),
        query: query.to_string(),
        with_data: true,
    }))))
}

/// A column of `CREATE TABLE t (a, b) AS`: a name only (see `split::UNTYPED_COLUMN`).
fn is_untyped(c: &sqlparser::ast::ColumnDef) -> bool {
    matches!(&c.data_type, sqlparser::ast::DataType::Custom(n, m)
        if m.is_empty() && n.to_string() == crate::split::UNTYPED_COLUMN)
        && c.options.is_empty()
}

/// The table already exists: IF NOT EXISTS skips (PostgreSQL's tag), otherwise 42P07.
fn existing(
    table: &str,
    temporary: bool,
    if_not_exists: bool,
    catalog: &Catalog,
) -> Result<Option<Command>> {
    if table.starts_with("__mdbc") || table.starts_with("sqlite_") {
        return Err(Error::InvalidParameter(format!(
            "table name \"{table}\" is reserved for mdbc's catalog"
        )));
    }
    let exists = if temporary {
        catalog.is_temporary(table)
    } else {
        catalog.table(table).is_some() && !catalog.is_temporary(table)
    };
    match (exists, if_not_exists) {
        (false, _) => Ok(None),
        (true, true) => Ok(Some(Command::Noop("CREATE TABLE AS"))),
        (true, false) => Err(Error::DuplicateTable(table.to_string())),
    }
}
