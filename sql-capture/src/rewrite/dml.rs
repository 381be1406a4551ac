//! Rewrites of INSERT, UPDATE and DELETE: values written into typed columns are
//! normalised, serial columns left out draw from their sequences, and RETURNING lists
//! follow the rules of a select list.

use sqlparser::ast::{
    Delete, Expr, Ident, Insert, ObjectName, OnConflictAction, OnInsert, SelectItem, SetExpr,
    TableFactor, Update, Value, VisitorMut,
};

use super::assignment::{assignment, Assignment};
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
                    (PgType::Float8, _) => true,
                    // A real keeps single precision: 7.8 is stored as 7.80000019…
                    (PgType::Float4, _) => n.parse::<f64>().is_ok_and(|v| f64::from(v as f32) == v),
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
        // Another column's value (INSERT … SELECT, UPDATE … SET a = b) of unknown type:
        // a narrower type's range, single precision, a length or a scale still apply.
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
            col.typmod >= 0 || matches!(col.ty, PgType::Float4 | PgType::Int2 | PgType::Int4)
        }
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

/// The type of a value being written, when PostgreSQL would know it: a quoted literal,
/// NULL or a parameter is of unknown type and takes the column's.
fn source_type(e: &Expr, scope: &infer::Scope) -> Option<PgType> {
    match e {
        Expr::Value(v)
            if matches!(
                v.value,
                Value::SingleQuotedString(_) | Value::Null | Value::Placeholder(_)
            ) =>
        {
            None
        }
        Expr::Nested(inner) => source_type(inner, scope),
        _ => infer::infer_expr(e, scope).and_then(|c| c.ty),
    }
}

/// An integer literal out of an integer column's range is refused while the statement is
/// planned, as PostgreSQL folds the constant (so nothing else in the statement, such as a
/// serial column's next value, is drawn first).
fn literal_in_range(e: &Expr, col: &ColumnInfo) -> Result<()> {
    let text = match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.clone(),
            _ => return Ok(()),
        },
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => format!("-{n}"),
                _ => return Ok(()),
            },
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    if !col.ty.is_integer() || text.contains(['.', 'e', 'E']) {
        return Ok(());
    }
    let fits = match col.ty {
        PgType::Int2 => text.parse::<i16>().is_ok(),
        PgType::Int4 => text.parse::<i32>().is_ok(),
        _ => text.parse::<i64>().is_ok(),
    };
    if fits {
        return Ok(());
    }
    Err(Error::Coded(
        "22003",
        format!("{} out of range", col.ty.name()),
    ))
}

/// [`literal_in_range`] over an INSERT's VALUES, before any rewrite turns a literal too
/// big for `bigint` into a numeric computation.
pub fn literals_in_range(ins: &Insert, def: Option<&TableDef>) -> Result<()> {
    let Some(def) = def else {
        return Ok(());
    };
    let Some(SetExpr::Values(values)) = ins.source.as_ref().map(|s| s.body.as_ref()) else {
        return Ok(());
    };
    // An unknown column is reported by the rewrite itself.
    let Ok(target) = target_columns(&ins.columns, def) else {
        return Ok(());
    };
    for row in &values.rows {
        for (e, col) in row.content.iter().zip(&target) {
            literal_in_range(e, col)?;
        }
    }
    Ok(())
}

/// A column default as SQLite gets it, translated: the value converted to the column's
/// type as an INSERT converts it (PostgreSQL converts a default when it is declared, and
/// refuses one of the wrong type), and, for a constant, a statement that evaluates it so
/// that a bad one fails the DDL (22P02) as in PostgreSQL rather than a later INSERT.
pub(crate) fn column_default(e: &Expr, col: &ColumnInfo) -> Result<(Expr, Option<String>)> {
    let typed = |col: &ColumnInfo| -> Result<Expr> {
        let mut e = e.clone();
        let src = source_type(&e, &infer::Scope::empty());
        // A value already of the column's type (`now()` for a timestamptz) is kept.
        if src != Some(col.ty) || col.typmod >= 0 {
            wrap_for_column(&mut e, col, src)?;
        }
        visit(&mut e)?;
        Ok(e)
    };
    let stored = typed(col)?;
    // The conversion is checked now, a length or precision only when a row takes it (as
    // PostgreSQL does). No rows either way: a batch of DDL takes no results, and SQLite
    // still evaluates the value.
    let check = if is_constant(e) {
        let base = typed(&ColumnInfo {
            typmod: -1,
            ..col.clone()
        })?;
        Some(format!(
            "SELECT 1 WHERE ({base}) IS NULL AND ({base}) IS NOT NULL"
        ))
    } else {
        None
    };
    Ok((stored, check))
}

/// A literal, possibly signed, parenthesised or cast: the same value wherever it runs.
pub(crate) fn is_constant(e: &Expr) -> bool {
    match e {
        Expr::Value(_) | Expr::TypedString(_) => true,
        Expr::Nested(inner)
        | Expr::UnaryOp { expr: inner, .. }
        | Expr::Cast { expr: inner, .. } => is_constant(inner),
        _ => false,
    }
}

/// Prepares `e`, a value of type `src` (when known), to be written into `col`: PostgreSQL's
/// assignment cast where the types differ (42804 where it has none), then the column's
/// own normalisation.
fn wrap_for_column(e: &mut Expr, col: &ColumnInfo, src: Option<PgType>) -> Result<()> {
    literal_in_range(e, col)?;
    // A number written as a literal into a numeric column: its value decides the check
    // (wrap_typed), a literal that fits needs none.
    let number_literal = |e: &Expr| match e {
        Expr::Value(v) => matches!(v.value, Value::Number(..)),
        Expr::UnaryOp { expr, .. } => {
            matches!(expr.as_ref(), Expr::Value(v) if matches!(v.value, Value::Number(..)))
        }
        _ => false,
    };
    let numeric_column =
        col.ty.is_integer() || matches!(col.ty, PgType::Float4 | PgType::Float8 | PgType::Numeric);
    let src = src.filter(|s| {
        *s != col.ty
            && !(col.ty.is_integer() && numeric_valued(e))
            && !(numeric_column && number_literal(e))
    });
    if let Some(src) = src {
        match assignment(src, col.ty) {
            Assignment::AsIs => {}
            Assignment::Refused => {
                return Err(Error::DatatypeMismatch(format!(
                    "column \"{}\" is of type {} but expression is of type {}",
                    col.name,
                    col.ty.name(),
                    src.name()
                )))
            }
            Assignment::Cast => {
                if let Some(data_type) = crate::set_operations::data_type_of(col.ty) {
                    let inner = std::mem::replace(e, Expr::value(Value::Null));
                    *e = Expr::Cast {
                        kind: sqlparser::ast::CastKind::Cast,
                        expr: Box::new(inner),
                        data_type,
                        format: None,
                    };
                    crate::typed::typed_cast(e, Some(src));
                    // The cast made the column's type; only a length or scale is left.
                    if col.typmod < 0 {
                        return Ok(());
                    }
                }
            }
        }
    }
    wrap_typed(e, col);
    Ok(())
}

fn wrap_typed(e: &mut Expr, col: &ColumnInfo) {
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
                    let src = source_type(e, &infer::Scope::empty());
                    wrap_for_column(e, col, src)?;
                    if keyed_integer(col) {
                        let v = std::mem::replace(e, Expr::value(Value::Null));
                        *e = not_null_guard(def, col, v);
                    }
                }
            }
        }
        if let SetExpr::Select(sel) = src.body.as_mut() {
            // A short select list fills the first columns, the others take their defaults
            // (as a short VALUES row does).
            let starred = sel.projection.iter().any(|i| {
                matches!(
                    i,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            });
            if ins.columns.is_empty() && !starred && sel.projection.len() < def.columns.len() {
                ins.columns = def.columns[..sel.projection.len()]
                    .iter()
                    .map(|c| ObjectName::from(vec![Ident::with_quote('"', c.name.clone())]))
                    .collect();
            }
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
            let scope = infer::Scope::from_tables(&sel.from, catalog);
            for (item, col) in sel.projection.iter_mut().zip(&target) {
                match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                        let src = source_type(e, &scope);
                        wrap_for_column(e, col, src)?;
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
                        let scope = infer::Scope {
                            tables: vec![
                                (def.name.clone(), Some(std::borrow::Cow::Borrowed(def))),
                                ("excluded".into(), Some(std::borrow::Cow::Borrowed(def))),
                            ],
                            catalog: Some(catalog),
                        };
                        let src = source_type(&a.value, &scope);
                        wrap_for_column(&mut a.value, col, src)?;
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
    // A column DEFAULT in some rows only: those rows get the default's expression.
    for row in values.rows.iter_mut() {
        for (i, e) in row.content.iter_mut().enumerate().take(width) {
            if is_default(e) && !drop[i] {
                *e = default_value(&def.name, &target[i])?;
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

/// `RETURNING x.col` where `x` is the changed table's alias (`UPDATE t AS x …`) as
/// `RETURNING col`: SQLite's RETURNING knows the table only by its name.
pub fn returning_without_alias(returning: &mut Option<Vec<SelectItem>>, alias: Option<&Ident>) {
    let (Some(items), Some(alias)) = (returning.as_mut(), alias) else {
        return;
    };
    let same = |i: &Ident| ident_value(i) == ident_value(alias);
    for item in items.iter_mut() {
        if let SelectItem::QualifiedWildcard(
            sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(n),
            options,
        ) = item
        {
            if n.0.len() == 1 && n.0[0].as_ident().is_some_and(same) {
                *item = SelectItem::Wildcard(options.clone());
            }
            continue;
        }
        let _ = sqlparser::ast::visit_expressions_mut(item, |e| {
            if let Expr::CompoundIdentifier(parts) = e {
                if parts.len() == 2 && same(&parts[0]) {
                    *e = Expr::Identifier(parts[1].clone());
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
}

/// `RETURNING t.*` as `RETURNING *`: the changed table is the only one RETURNING may name
/// here (see refuse_returning_other_tables), and SQLite takes only a bare `*`.
fn bare_wildcards(items: &mut [SelectItem]) {
    for item in items.iter_mut() {
        if let SelectItem::QualifiedWildcard(_, options) = item {
            *item = SelectItem::Wildcard(options.clone());
        }
    }
}

fn rewrite_returning(items: &mut [SelectItem]) -> Result<()> {
    let names: Vec<Option<String>> = items.iter().map(pg_item_name).collect();
    bare_wildcards(items);
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

/// `SET col[s1][s2] = v` (which parsing turned into a call of
/// [`crate::split::SUBSCRIPT_ASSIGN`]): for jsonb, PostgreSQL's subscript assignment
/// (`pg_json('assign', …)`, each subscript marked integer or text by its type). Returns
/// the translated value, or `None` when the assignment has no subscript.
fn subscript_assignment(
    value: &mut Expr,
    col: &ColumnInfo,
    def: &TableDef,
) -> Result<Option<Expr>> {
    let Expr::Function(f) = value else {
        return Ok(None);
    };
    if function_name(f) != crate::split::SUBSCRIPT_ASSIGN {
        return Ok(None);
    }
    match col.ty {
        PgType::Jsonb => {}
        t if t.element().is_some() => {
            return Err(Error::Unsupported(
                "assignment to an array element or slice".into(),
            ))
        }
        t => {
            return Err(Error::DatatypeMismatch(format!(
                "cannot subscript type {} because it does not support subscripting",
                t.name()
            )))
        }
    }
    let mut args = crate::ast::function_args(f).into_iter().cloned();
    let (Some(mut target), Some(mut new)) = (args.next(), args.next()) else {
        return Err(Error::Syntax("subscript assignment without a value".into()));
    };
    // The column, or an earlier assignment to another subscript of it (see
    // merge_subscript_assignments).
    let target = match subscript_assignment(&mut target, col, def)? {
        Some(inner) => inner,
        None => {
            visit(&mut target)?;
            target
        }
    };
    let scope = infer::Scope {
        tables: vec![(def.name.clone(), Some(std::borrow::Cow::Borrowed(def)))],
        catalog: None,
    };
    let mut kinds = String::new();
    let mut subs = Vec::new();
    for mut s in args {
        let integer = infer::infer_expr(&s, &scope)
            .and_then(|c| c.ty)
            .is_some_and(PgType::is_integer);
        kinds.push(if integer { 'i' } else { 't' });
        visit(&mut s)?;
        subs.push(s);
    }
    wrap_for_column(&mut new, col, None)?;
    visit(&mut new)?;
    let mut call_args = vec![
        Expr::value(Value::SingleQuotedString("assign".into())),
        target,
        new,
        Expr::value(Value::SingleQuotedString(kinds)),
    ];
    call_args.extend(subs);
    Ok(Some(call("pg_json", call_args)))
}

/// `SET j['a'] = x, j['b'] = y`: PostgreSQL applies both, in order, to one value; so the
/// second becomes an assignment on the result of the first.
fn merge_subscript_assignments(up: &mut Update) {
    let is_marker = |e: &Expr| matches!(e, Expr::Function(f) if function_name(f) == crate::split::SUBSCRIPT_ASSIGN);
    let mut out: Vec<sqlparser::ast::Assignment> = Vec::with_capacity(up.assignments.len());
    for mut a in up.assignments.drain(..) {
        if let (sqlparser::ast::AssignmentTarget::ColumnName(c), true) =
            (&a.target, is_marker(&a.value))
        {
            let earlier = out.iter().position(|p| {
                matches!(&p.target, sqlparser::ast::AssignmentTarget::ColumnName(pc)
                    if object_name_to_table(pc) == object_name_to_table(c))
                    && is_marker(&p.value)
            });
            if let (Some(i), Expr::Function(f)) = (earlier, &mut a.value) {
                let previous = out.remove(i).value;
                if let sqlparser::ast::FunctionArguments::List(list) = &mut f.args {
                    if let Some(sqlparser::ast::FunctionArg::Unnamed(
                        sqlparser::ast::FunctionArgExpr::Expr(first),
                    )) = list.args.first_mut()
                    {
                        *first = previous;
                    }
                }
            }
        }
        out.push(a);
    }
    up.assignments = out;
}

/// `SET (a, b) = ROW(x, v.*)` as `SET (a, b) = (x, v.i, v.j)`: `v.*` in a row constructor
/// stands for the columns of `v` (a table, or a FROM item whose alias lists its columns).
/// SQLite has no `ROW` keyword, and its parser rejects `v.*` inside a value.
fn expand_row_constructors(up: &mut Update, def: &TableDef, catalog: &Catalog) -> Result<()> {
    let mut items: Vec<(String, Vec<String>)> = vec![];
    let mut note = |factor: &TableFactor| match factor {
        TableFactor::Table { name, alias, .. } => {
            let table = object_name_to_table(name);
            let key = alias
                .as_ref()
                .map(|a| a.name.value.to_lowercase())
                .unwrap_or_else(|| table.clone());
            let cols = match alias.as_ref().filter(|a| !a.columns.is_empty()) {
                Some(a) => a.columns.iter().map(|c| c.name.value.clone()).collect(),
                None if table == def.name => def.columns.iter().map(|c| c.name.clone()).collect(),
                None => catalog
                    .table(&table)
                    .map(|t| t.columns.iter().map(|c| c.name.clone()).collect())
                    .unwrap_or_default(),
            };
            items.push((key, cols));
        }
        TableFactor::Derived { alias: Some(a), .. }
        | TableFactor::Function { alias: Some(a), .. } => {
            items.push((
                a.name.value.to_lowercase(),
                a.columns.iter().map(|c| c.name.value.clone()).collect(),
            ));
        }
        _ => {}
    };
    note(&up.table.relation);
    if let Some(
        sqlparser::ast::UpdateTableFromKind::BeforeSet(tables)
        | sqlparser::ast::UpdateTableFromKind::AfterSet(tables),
    ) = &up.from
    {
        for t in tables {
            note(&t.relation);
            for j in &t.joins {
                note(&j.relation);
            }
        }
    }
    for a in up.assignments.iter_mut() {
        let Expr::Function(f) = &a.value else {
            continue;
        };
        if !function_name(f).eq_ignore_ascii_case("row")
            || !matches!(a.target, sqlparser::ast::AssignmentTarget::Tuple(_))
        {
            continue;
        }
        let sqlparser::ast::FunctionArguments::List(list) = &f.args else {
            continue;
        };
        let mut values = vec![];
        for arg in &list.args {
            match arg {
                sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(e)) => {
                    values.push(e.clone())
                }
                sqlparser::ast::FunctionArg::Unnamed(
                    sqlparser::ast::FunctionArgExpr::QualifiedWildcard(name),
                ) => {
                    let key = object_name_to_table(name);
                    let cols = items
                        .iter()
                        .find(|(k, cols)| *k == key && !cols.is_empty())
                        .map(|(_, cols)| cols)
                        .ok_or_else(|| {
                            Error::Unsupported(format!(
                                "\"{key}.*\" in ROW() where the columns of \"{key}\" are not listed"
                            ))
                        })?;
                    for c in cols {
                        values.push(Expr::CompoundIdentifier(vec![
                            sqlparser::ast::Ident::with_quote('"', key.clone()),
                            sqlparser::ast::Ident::with_quote('"', c.clone()),
                        ]));
                    }
                }
                other => {
                    return Err(Error::Unsupported(format!(
                        "{other} in a ROW() of UPDATE … SET"
                    )))
                }
            }
        }
        a.value = Expr::Tuple(values);
    }
    Ok(())
}

/// `SET (a, b) = (x, DEFAULT)` as `SET a = x, b = DEFAULT`: the same (every right-hand
/// side sees the row as it was), and each value then gets its column's type and default.
/// A row from a subquery (`SET (a, b) = (SELECT …)`) stays as it is.
fn split_row_assignments(up: &mut Update) -> Result<()> {
    let mut out = Vec::with_capacity(up.assignments.len());
    for a in up.assignments.drain(..) {
        match (&a.target, &a.value) {
            (sqlparser::ast::AssignmentTarget::Tuple(cols), Expr::Tuple(values))
                if cols.len() != values.len() =>
            {
                return Err(Error::Coded(
                    "42601",
                    "number of columns does not match number of values".into(),
                ));
            }
            (sqlparser::ast::AssignmentTarget::Tuple(cols), Expr::Tuple(values)) => {
                for (c, v) in cols.iter().zip(values) {
                    out.push(sqlparser::ast::Assignment {
                        target: sqlparser::ast::AssignmentTarget::ColumnName(c.clone()),
                        value: v.clone(),
                    });
                }
            }
            _ => out.push(a),
        }
    }
    up.assignments = out;
    Ok(())
}

/// SQLite's RETURNING sees only the changed table, where PostgreSQL's also sees the
/// other tables of `UPDATE … FROM` and `DELETE … USING` (and `RETURNING *` lists their
/// columns too).
fn refuse_returning_other_tables(
    returning: Option<&Vec<SelectItem>>,
    tables: &[sqlparser::ast::TableWithJoins],
    what: &str,
) -> Result<()> {
    let Some(returning) = returning else {
        return Ok(());
    };
    let mut names = Vec::new();
    for t in tables {
        for f in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
            match f {
                TableFactor::Table { alias: Some(a), .. }
                | TableFactor::Derived { alias: Some(a), .. }
                | TableFactor::Function { alias: Some(a), .. } => {
                    names.push(a.name.value.to_lowercase())
                }
                TableFactor::Table { name, .. } => names.push(object_name_to_table(name)),
                _ => {}
            }
        }
    }
    let other_table = returning.iter().any(|item| match item {
        SelectItem::Wildcard(_) => true,
        SelectItem::QualifiedWildcard(k, _) => names.contains(&k.to_string().to_lowercase()),
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            let mut found = false;
            let _ = sqlparser::ast::visit_expressions(e, |x| {
                if let Expr::CompoundIdentifier(parts) = x {
                    if parts.len() == 2 && names.contains(&parts[0].value.to_lowercase()) {
                        found = true;
                    }
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            found
        }
        _ => true,
    });
    if other_table {
        return Err(Error::Unsupported(format!(
            "RETURNING columns of {what}'s other tables (or RETURNING * there)"
        )));
    }
    Ok(())
}

/// `DELETE FROM t USING a, b WHERE c` as `DELETE FROM t WHERE rowid IN (SELECT t.rowid
/// FROM t, a, b WHERE c)`: SQLite's DELETE has no USING, and the rows it deletes are the
/// same (a row matching several times is deleted once, as in PostgreSQL).
fn using_as_subquery(del: &mut Delete) -> Result<()> {
    let Some(using) = del.using.take() else {
        return Ok(());
    };
    refuse_returning_other_tables(del.returning.as_ref(), &using, "DELETE … USING")?;
    let tables = match &del.from {
        sqlparser::ast::FromTable::WithFromKeyword(t)
        | sqlparser::ast::FromTable::WithoutKeyword(t) => t,
    };
    let Some(target) = tables.first().map(|t| &t.relation) else {
        return Err(Error::Unsupported("DELETE without a table".into()));
    };
    let reference = match target {
        TableFactor::Table { alias: Some(a), .. } => a.name.to_string(),
        TableFactor::Table { name, .. } => match name.0.last() {
            Some(part) => part.to_string(),
            None => return Err(Error::Unsupported("DELETE without a table".into())),
        },
        other => return Err(Error::Unsupported(format!("DELETE FROM {other}"))),
    };
    let using: Vec<String> = using.iter().map(|t| t.to_string()).collect();
    let condition = match del.selection.take() {
        Some(c) => format!(" WHERE {c}"),
        None => String::new(),
    };
    let q = crate::ast::parse_query(&format!(
        "SELECT 1 WHERE rowid IN (SELECT {reference}.rowid FROM {target}, {}{condition})",
        using.join(", ")
    ))?;
    let SetExpr::Select(sel) = *q.body else {
        return Err(Error::Unsupported("DELETE … USING of this form".into()));
    };
    del.selection = sel.selection;
    Ok(())
}

/// Rewrites an UPDATE: values normalised per column type, expressions, RETURNING.
pub fn rewrite_update(up: &mut Update, def: Option<&TableDef>, catalog: &Catalog) -> Result<()> {
    let Some(def) = def else {
        return Err(Error::UndefinedTable(match &up.table.relation {
            TableFactor::Table { name, .. } => object_name_to_table(name),
            other => other.to_string(),
        }));
    };
    expand_row_constructors(up, def, catalog)?;
    split_row_assignments(up)?;
    merge_subscript_assignments(up);
    let mut assigned = std::collections::HashSet::new();
    for a in &up.assignments {
        let names = match &a.target {
            sqlparser::ast::AssignmentTarget::ColumnName(c) => vec![c],
            sqlparser::ast::AssignmentTarget::Tuple(cs) => cs.iter().collect(),
        };
        for c in names {
            let name = object_name_to_table(c);
            if !assigned.insert(name.clone()) {
                return Err(Error::Syntax(format!(
                    "multiple assignments to same column \"{name}\""
                )));
            }
        }
    }
    // The values' types are read over the target and the FROM tables.
    let mut tables = vec![up.table.clone()];
    if let Some(
        sqlparser::ast::UpdateTableFromKind::BeforeSet(t)
        | sqlparser::ast::UpdateTableFromKind::AfterSet(t),
    ) = &up.from
    {
        tables.extend(t.iter().cloned());
    }
    let scope = infer::Scope::from_tables(&tables, catalog);
    for a in up.assignments.iter_mut() {
        if let sqlparser::ast::AssignmentTarget::ColumnName(c) = &a.target {
            let name = object_name_to_table(c);
            let col = def.column(&name).ok_or(Error::UndefinedColumn(name))?;
            if let Some(assigned) = subscript_assignment(&mut a.value, col, def)? {
                a.value = assigned;
                continue;
            }
            if is_default_keyword(&a.value) {
                a.value = default_value(&def.name, col)?;
            }
            let src = source_type(&a.value, &scope);
            wrap_for_column(&mut a.value, col, src)?;
        }
        visit(&mut a.value)?;
    }
    visit(&mut up.table)?;
    if let Some(
        sqlparser::ast::UpdateTableFromKind::BeforeSet(tables)
        | sqlparser::ast::UpdateTableFromKind::AfterSet(tables),
    ) = &up.from
    {
        refuse_returning_other_tables(up.returning.as_ref(), tables, "UPDATE … FROM")?;
    }
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
    using_as_subquery(del)?;
    if let Some(r) = del.returning.as_mut() {
        bare_wildcards(r);
    }
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
