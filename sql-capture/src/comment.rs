//! `COMMENT ON TABLE | VIEW | COLUMN | INDEX … IS '…' | NULL`: a catalog change only (SQLite
//! keeps no descriptions), read back through `pg_description`, `obj_description` and
//! `col_description`, as psql's `\d+` and ORMs' reflection do.

use sqlparser::ast::{CommentObject, ObjectName};

use crate::ast::{ident_value, object_name_to_table};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::plan::{CatalogChange, Command};

/// Plans a COMMENT statement.
pub(crate) fn comment(
    object_type: &CommentObject,
    name: &ObjectName,
    text: Option<&str>,
    catalog: &Catalog,
) -> Result<Command> {
    let (relation, column) = match object_type {
        CommentObject::Table => {
            let t = object_name_to_table(name);
            if catalog.table(&t).is_none() {
                return Err(Error::UndefinedTable(t));
            }
            (t, None)
        }
        CommentObject::View => {
            let v = object_name_to_table(name);
            if catalog.view(&v).is_none() {
                return Err(Error::UndefinedTable(v));
            }
            (v, None)
        }
        CommentObject::Index => {
            let i = object_name_to_table(name);
            if catalog.table(&i).is_some()
                || catalog.view(&i).is_some()
                || !catalog.has_relation(&i)
            {
                return Err(Error::UndefinedTable(i));
            }
            (i, None)
        }
        CommentObject::Column => {
            // [schema.]table.column
            let parts: Vec<String> = name
                .0
                .iter()
                .filter_map(|p| p.as_ident().map(ident_value))
                .collect();
            let [.., table, column] = parts.as_slice() else {
                return Err(Error::Syntax("column name must be qualified".into()));
            };
            let def = catalog
                .table(table)
                .or_else(|| catalog.view(table).map(|v| &v.def))
                .ok_or_else(|| Error::UndefinedTable(table.clone()))?;
            let col = def
                .column(column)
                .ok_or_else(|| crate::catalog::no_such_column(table, column))?;
            (def.name.clone(), Some(col.name.clone()))
        }
        other => return Err(Error::Unsupported(format!("COMMENT ON {other}"))),
    };
    if catalog.is_temporary(&relation) || catalog.is_temporary_index(&relation) {
        return Err(Error::Unsupported("COMMENT ON a temporary object".into()));
    }
    Ok(Command::ddl(
        Vec::new(),
        "COMMENT",
        vec![CatalogChange::Comment {
            relation,
            column,
            text: text.filter(|t| !t.is_empty()).map(str::to_string),
        }],
    ))
}
