//! Rewrites of INSERT, UPDATE and DELETE: values written into typed columns are
//! normalised, serial columns left out draw from their sequences, and RETURNING lists
//! follow the rules of a select list.

use sqlparser::ast::{
    Delete, Expr, Ident, Insert, ObjectName, OnConflictAction, OnInsert, SelectItem, SetExpr,
    TableFactor, Update, Value, VisitorMut,
};

use super::{visit, Rewriter};
use crate::ast::{call, coerce, function_name, ident_value, object_name_to_table, sequence_name};
use crate::catalog::{Catalog, ColumnInfo, TableDef};
use crate::error::{Error, Result};
use crate::infer;
use crate::naming::{apply_names, pg_item_name};
use crate::types::PgType;

/// Whether a value written into a column of type `col` must pass through `pg_coerce`.
/// Parameters are decoded to the column's type before binding, and literals that already
/// have the right shape need nothing; anything else is normalised so that SQLite stores
/// what PostgreSQL would have stored (or refuses it as PostgreSQL would).
fn needs_coercion(e: &Expr, col: &ColumnInfo) -> bool {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Null => false,
            // Parameters arrive decoded to the column's type, but a length or precision
            // (varchar(n), char(n), numeric(p,s)) still has to be checked and applied.
            Value::Placeholder(_) => col.typmod >= 0,
            Value::Number(n, _) => {
                let fits = match (col.ty, n.parse::<i64>()) {
                    (PgType::Int2, Ok(v)) => i16::try_from(v).is_ok(),
                    (PgType::Int4, Ok(v)) => i32::try_from(v).is_ok(),
                    (PgType::Int8, Ok(_)) => true,
                    (PgType::Oid, Ok(v)) => u32::try_from(v).is_ok(),
                    (PgType::Float4 | PgType::Float8, _) => true,
                    _ => false,
                };
                !fits
            }
            Value::Boolean(_) => col.ty != PgType::Bool,
            Value::SingleQuotedString(_) => {
                !(matches!(col.ty, PgType::Text | PgType::Json) && col.typmod < 0)
            }
            _ => true,
        },
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => false,
        // Checked integer arithmetic (typed.rs) yields a value in its own type's range: a
        // column at least as wide takes it as is.
        Expr::Function(f) => {
            let width = |t: PgType| match t {
                PgType::Int2 => 2,
                PgType::Int4 => 4,
                PgType::Int8 => 8,
                _ => 0,
            };
            let made = match function_name(f).as_str() {
                "pg_int2" => 2,
                "pg_int4" => 4,
                "pg_int8" => 8,
                _ => return true,
            };
            width(col.ty) < made
        }
        // Integer arithmetic can leave a narrower column's range (`-40000` into int2):
        // only int8 takes any result as is.
        _ => !(col.ty == PgType::Int8 && infer::is_integer_arith(e)),
    }
}

fn wrap_for_column(e: &mut Expr, col: &ColumnInfo) {
    if col.ty.is_integer() && numeric_valued(e) {
        // A numeric stored into an integer column is rounded half away from zero, as
        // PostgreSQL's assignment cast does (its text would not read as an integer).
        let inner = std::mem::replace(e, Expr::value(Value::Null));
        let rounded = call(
            "pg_numeric",
            vec![Expr::value(Value::SingleQuotedString("int8".into())), inner],
        );
        *e = coerce(rounded, col.ty, col.typmod);
        return;
    }
    if needs_coercion(e, col) {
        let inner = std::mem::replace(e, Expr::value(Value::Null));
        *e = coerce(inner, col.ty, col.typmod);
    }
}

/// A numeric value as the expression is written: a decimal literal (signed or in
/// parentheses) or an expression the typed rewrites marked numeric.
fn numeric_valued(e: &Expr) -> bool {
    match e {
        Expr::Value(v) => matches!(&v.value, Value::Number(n, _) if super::is_numeric_literal(n)),
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) => numeric_valued(expr),
        other => crate::numeric::is_marked(other),
    }
}

/// Serial columns an INSERT's column list leaves out. SQLite ignores a DEFAULT on an
/// `INTEGER PRIMARY KEY` (it allocates the largest key + 1), so they are filled from their
/// sequence explicitly, as PostgreSQL would: keys are then never reused after a delete,
/// and the sites of a cluster draw from disjoint stripes.
fn missing_serials<'a>(columns: &[ObjectName], def: &'a TableDef) -> Vec<&'a ColumnInfo> {
    missing(columns, def, |c| c.serial)
}

/// The columns of `def` matching `pick` that `columns` does not name.
fn missing<'a>(
    columns: &[ObjectName],
    def: &'a TableDef,
    pick: impl Fn(&ColumnInfo) -> bool,
) -> Vec<&'a ColumnInfo> {
    def.columns
        .iter()
        .filter(|c| pick(c))
        .filter(|c| {
            !columns.iter().any(|n| {
                n.0.last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|i| ident_value(i) == c.name)
            })
        })
        .collect()
}

/// An integer NOT NULL column that is not serial: if it is the table's integer primary
/// key, SQLite would replace a NULL by the next key (its rowid rule), where PostgreSQL
/// raises 23502 — so a NULL is refused before SQLite sees it.
fn keyed_integer(c: &ColumnInfo) -> bool {
    c.ty.is_integer() && c.not_null && !c.serial && c.default.is_none()
}

fn not_null_guard(def: &TableDef, c: &ColumnInfo, e: Expr) -> Expr {
    call(
        "pg_not_null",
        vec![
            e,
            Expr::value(Value::SingleQuotedString(def.name.clone())),
            Expr::value(Value::SingleQuotedString(c.name.clone())),
        ],
    )
}

/// Integer NOT NULL columns an INSERT's column list leaves out (see [`keyed_integer`]).
fn missing_keys<'a>(columns: &[ObjectName], def: &'a TableDef) -> Vec<&'a ColumnInfo> {
    missing(columns, def, keyed_integer)
}

fn nextval(def: &TableDef, c: &ColumnInfo) -> Expr {
    call(
        "pg_nextval",
        vec![Expr::value(Value::SingleQuotedString(sequence_name(
            &def.name, &c.name,
        )))],
    )
}

/// Rewrites an INSERT: target name, values normalised per column type, serial columns it
/// leaves out, the source query, ON CONFLICT and RETURNING.
pub fn rewrite_insert(ins: &mut Insert, def: Option<&TableDef>, catalog: &Catalog) -> Result<()> {
    let Some(def) = def else {
        let name = match &ins.table {
            sqlparser::ast::TableObject::TableName(n) => object_name_to_table(n),
            other => other.to_string(),
        };
        return Err(Error::UndefinedTable(name));
    };
    let target = target_columns(&ins.columns, def)?;
    if let Some(src) = ins.source.as_mut() {
        if let SetExpr::Values(values) = src.body.as_mut() {
            // PostgreSQL fills columns missing from a short VALUES row with their defaults;
            // SQLite wants the count to match, so name the columns being written.
            let width = values
                .rows
                .iter()
                .map(|r| r.content.len())
                .max()
                .unwrap_or(0);
            if ins.columns.is_empty() && width < def.columns.len() {
                ins.columns = def.columns[..width]
                    .iter()
                    .map(|c| ObjectName::from(vec![Ident::with_quote('"', c.name.clone())]))
                    .collect();
            }
            drop_default_columns(&mut ins.columns, values, &target, def)?;
            if !ins.columns.is_empty() {
                for c in missing_serials(&ins.columns, def) {
                    for row in values.rows.iter_mut() {
                        row.content.push(nextval(def, c));
                    }
                    ins.columns.push(ObjectName::from(vec![Ident::with_quote(
                        '"',
                        c.name.clone(),
                    )]));
                }
                for c in missing_keys(&ins.columns, def) {
                    for row in values.rows.iter_mut() {
                        row.content.push(Expr::value(Value::Null));
                    }
                    ins.columns.push(ObjectName::from(vec![Ident::with_quote(
                        '"',
                        c.name.clone(),
                    )]));
                }
            }
            let target = target_columns(&ins.columns, def)?;
            for row in values.rows.iter_mut() {
                let row = &mut row.content;
                if row.len() > target.len() {
                    return Err(Error::Syntax(
                        "INSERT has more expressions than target columns".into(),
                    ));
                }
                for (e, col) in row.iter_mut().zip(&target) {
                    wrap_for_column(e, col);
                    if keyed_integer(col) {
                        let v = std::mem::replace(e, Expr::value(Value::Null));
                        *e = not_null_guard(def, col, v);
                    }
                }
            }
        }
        if let SetExpr::Select(sel) = src.body.as_mut() {
            if !ins.columns.is_empty() {
                for c in missing_serials(&ins.columns, def) {
                    sel.projection
                        .push(SelectItem::UnnamedExpr(nextval(def, c)));
                    ins.columns.push(ObjectName::from(vec![Ident::with_quote(
                        '"',
                        c.name.clone(),
                    )]));
                }
                for c in missing_keys(&ins.columns, def) {
                    sel.projection
                        .push(SelectItem::UnnamedExpr(Expr::value(Value::Null)));
                    ins.columns.push(ObjectName::from(vec![Ident::with_quote(
                        '"',
                        c.name.clone(),
                    )]));
                }
            }
            // INSERT … SELECT: the selected values are written into typed columns too.
            let target = target_columns(&ins.columns, def)?;
            for (item, col) in sel.projection.iter_mut().zip(&target) {
                match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                        wrap_for_column(e, col);
                        if keyed_integer(col) {
                            let v = std::mem::replace(e, Expr::value(Value::Null));
                            *e = not_null_guard(def, col, v);
                        }
                    }
                    _ => break,
                }
            }
        }
        visit(src.as_mut())?;
        // SQLite's parser needs a WHERE before ON CONFLICT in INSERT … SELECT.
        if ins.on.is_some() {
            if let SetExpr::Select(sel) = src.body.as_mut() {
                if sel.selection.is_none() {
                    sel.selection = Some(Expr::value(Value::Boolean(true)));
                }
            }
        }
    }
    if let Some(OnInsert::OnConflict(oc)) = ins.on.as_mut() {
        if let OnConflictAction::DoUpdate(du) = &mut oc.action {
            for a in du.assignments.iter_mut() {
                if let sqlparser::ast::AssignmentTarget::ColumnName(c) = &a.target {
                    if let Some(col) = def.column(&object_name_to_table(c)) {
                        wrap_for_column(&mut a.value, col);
                    }
                }
                visit(&mut a.value)?;
            }
            if let Some(sel) = du.selection.as_mut() {
                visit(sel)?;
            }
        }
    }
    if let sqlparser::ast::TableObject::TableName(n) = &mut ins.table {
        let mut n2 = n.clone();
        let _ = Rewriter.pre_visit_relation(&mut n2);
        *n = n2;
    }
    if let Some(r) = ins.returning.as_mut() {
        rewrite_returning(r)?;
    }
    let _ = catalog;
    Ok(())
}

/// The columns an INSERT writes, in order: those named, or all of the table's.
fn target_columns(columns: &[ObjectName], def: &TableDef) -> Result<Vec<ColumnInfo>> {
    if columns.is_empty() {
        return Ok(def.columns.clone());
    }
    columns
        .iter()
        .map(|c| {
            let name = object_name_to_table(c);
            def.column(&name)
                .cloned()
                .ok_or(Error::UndefinedColumn(name))
        })
        .collect()
}

/// `VALUES (DEFAULT, …)`: SQLite has no DEFAULT inside VALUES, so a column that is DEFAULT
/// in every row is dropped from the list (SQLite then applies the default itself).
fn drop_default_columns(
    columns: &mut Vec<ObjectName>,
    values: &mut sqlparser::ast::Values,
    target: &[ColumnInfo],
    def: &TableDef,
) -> Result<()> {
    let is_default = |e: &Expr| matches!(e, Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"));
    let width = target.len();
    let mut drop = vec![true; width];
    let mut any = false;
    for row in &values.rows {
        for (i, e) in row.content.iter().enumerate().take(width) {
            let d = is_default(e);
            any |= d;
            drop[i] &= d;
        }
    }
    if !any {
        return Ok(());
    }
    for row in &values.rows {
        for (i, e) in row.content.iter().enumerate().take(width) {
            if is_default(e) && !drop[i] {
                return Err(Error::Unsupported(
                    "DEFAULT in some rows of a multi-row VALUES but not others".into(),
                ));
            }
        }
    }
    if columns.is_empty() {
        *columns = def
            .columns
            .iter()
            .map(|c| ObjectName::from(vec![Ident::with_quote('"', c.name.clone())]))
            .collect();
    }
    let mut keep_cols = Vec::new();
    for (i, c) in columns.drain(..).enumerate() {
        if !drop.get(i).copied().unwrap_or(false) {
            keep_cols.push(c);
        }
    }
    *columns = keep_cols;
    for row in values.rows.iter_mut() {
        let mut i = 0;
        row.content.retain(|_| {
            let keep = !drop.get(i).copied().unwrap_or(false);
            i += 1;
            keep
        });
    }
    if columns.is_empty() {
        return Err(Error::Unsupported(
            "INSERT with every column DEFAULT (use DEFAULT VALUES)".into(),
        ));
    }
    Ok(())
}

fn rewrite_returning(items: &mut [SelectItem]) -> Result<()> {
    let names: Vec<Option<String>> = items.iter().map(pg_item_name).collect();
    for item in items.iter_mut() {
        visit(item)?;
    }
    apply_names(items, names);
    Ok(())
}

fn is_default_keyword(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(id)
        if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
}

/// What `SET c = DEFAULT` stores: the column's default expression (its sequence for a
/// serial column), NULL without one. SQLite has no DEFAULT in an UPDATE.
fn default_value(table: &str, col: &ColumnInfo) -> Result<Expr> {
    if col.serial {
        return Ok(call(
            "pg_nextval",
            vec![Expr::value(Value::SingleQuotedString(sequence_name(
                table, &col.name,
            )))],
        ));
    }
    let Some(text) = &col.default else {
        return Ok(Expr::value(Value::Null));
    };
    // Parsed as a query so that its literals carry no positions of the client's text.
    let q = crate::ast::parse_query(&format!("SELECT {text}"))?;
    match *q.body {
        SetExpr::Select(sel) => match sel.projection.into_iter().next() {
            Some(sqlparser::ast::SelectItem::UnnamedExpr(e)) => Ok(e),
            _ => Err(Error::Unsupported(format!("the default {text}"))),
        },
        _ => Err(Error::Unsupported(format!("the default {text}"))),
    }
}

/// Rewrites an UPDATE: values normalised per column type, expressions, RETURNING.
pub fn rewrite_update(up: &mut Update, def: Option<&TableDef>, _catalog: &Catalog) -> Result<()> {
    let Some(def) = def else {
        return Err(Error::UndefinedTable(match &up.table.relation {
            TableFactor::Table { name, .. } => object_name_to_table(name),
            other => other.to_string(),
        }));
    };
    for a in up.assignments.iter_mut() {
        if let sqlparser::ast::AssignmentTarget::ColumnName(c) = &a.target {
            let name = object_name_to_table(c);
            let col = def.column(&name).ok_or(Error::UndefinedColumn(name))?;
            if is_default_keyword(&a.value) {
                a.value = default_value(&def.name, col)?;
            }
            wrap_for_column(&mut a.value, col);
        }
        visit(&mut a.value)?;
    }
    visit(&mut up.table)?;
    if let Some(from) = up.from.as_mut() {
        match from {
            sqlparser::ast::UpdateTableFromKind::BeforeSet(t)
            | sqlparser::ast::UpdateTableFromKind::AfterSet(t) => {
                for t in t.iter_mut() {
                    visit(t)?;
                }
            }
        }
    }
    if let Some(sel) = up.selection.as_mut() {
        visit(sel)?;
    }
    if let Some(r) = up.returning.as_mut() {
        rewrite_returning(r)?;
    }
    Ok(())
}

/// Rewrites a DELETE.
pub fn rewrite_delete(del: &mut Delete, _catalog: &Catalog) -> Result<()> {
    let names = del
        .returning
        .as_ref()
        .map(|r| r.iter().map(pg_item_name).collect());
    visit(del)?;
    if let (Some(r), Some(names)) = (del.returning.as_mut(), names) {
        apply_names(r, names);
    }
    Ok(())
}
