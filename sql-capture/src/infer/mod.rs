//! Type inference for `$n` parameters and result columns.
//!
//! Strict drivers decode by the OIDs the server reports at Describe time, before any row
//! exists, so the types must come from the statement and the schema. Column references take
//! their declared type; expressions follow PostgreSQL's rules for the operators and functions
//! mdbc supports. Where nothing tells, the answer is `None` and the executor falls back to
//! SQLite's column origin, then to `text`.

pub(crate) mod params;

use std::borrow::Cow;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, Query, SelectItem, SetExpr, TableFactor,
    TableWithJoins, UnaryOperator, Value,
};

use crate::ast::{function_args, function_name, ident_value, object_name_to_table};
use crate::catalog::{Catalog, ColumnInfo, TableDef};
use crate::naming::result_names;
use crate::plan::ResultColumn;
use crate::types::PgType;

pub(crate) fn is_reg_type(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.trim_start_matches("pg_catalog."),
        "regclass" | "regtype" | "regnamespace"
    )
}

/// Tables in scope: (name or alias, definition).
pub(crate) struct Scope<'a> {
    pub(crate) tables: Vec<(String, Option<Cow<'a, TableDef>>)>,
    /// Where a subquery's own tables are looked up (its columns' types); without one a
    /// subquery sees only the tables around it.
    pub(crate) catalog: Option<&'a Catalog>,
}

impl<'a> Scope<'a> {
    pub(crate) fn from_tables(from: &[TableWithJoins], catalog: &'a Catalog) -> Self {
        let mut tables = Vec::new();
        for twj in from {
            push_factor(&twj.relation, catalog, &mut tables);
            for j in &twj.joins {
                push_factor(&j.relation, catalog, &mut tables);
            }
        }
        Scope {
            tables,
            catalog: Some(catalog),
        }
    }

    /// No table in scope.
    pub(crate) fn empty() -> Self {
        Scope {
            tables: Vec::new(),
            catalog: None,
        }
    }

    /// The type of a subquery's single column: its own FROM's tables first, then the
    /// tables around it (a correlated reference).
    pub(crate) fn subquery_column(&self, q: &Query) -> Option<ResultColumn> {
        let SetExpr::Select(s) = q.body.as_ref() else {
            return None;
        };
        let expr = match s.projection.as_slice() {
            [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => e,
            _ => return None,
        };
        let mut inner = match (self.catalog, q.with.as_ref()) {
            (Some(catalog), None) => Scope::from_tables(&s.from, catalog),
            (Some(catalog), Some(with)) => {
                let catalog = with_ctes(catalog, with);
                let scope = Scope::from_tables(&s.from, &catalog);
                return infer_expr(expr, &scope.around(self));
            }
            // As before catalogs reached here: the tables around it.
            (None, _) => return infer_expr(expr, self),
        };
        inner.tables.extend(self.tables.iter().cloned());
        infer_expr(expr, &inner)
    }

    /// This scope's tables with `outer`'s after them, owned (no borrow of this scope's
    /// catalog survives).
    fn around(&self, outer: &Scope<'a>) -> Scope<'a> {
        let mut tables: Vec<(String, Option<Cow<'a, TableDef>>)> = self
            .tables
            .iter()
            .map(|(a, d)| {
                (
                    a.clone(),
                    d.as_ref().map(|d| Cow::Owned(d.as_ref().clone())),
                )
            })
            .collect();
        tables.extend(outer.tables.iter().cloned());
        Scope {
            tables,
            catalog: outer.catalog,
        }
    }

    /// Whether `e` is a column reference to a NOT NULL column.
    pub(crate) fn never_null(&self, e: &Expr) -> bool {
        let (qualifier, name) = match e {
            Expr::Identifier(i) => (None, ident_value(i)),
            Expr::CompoundIdentifier(p) if p.len() == 2 => {
                (Some(ident_value(&p[0])), ident_value(&p[1]))
            }
            _ => return false,
        };
        let mut found = self.tables.iter().filter_map(|(alias, def)| {
            if qualifier
                .as_deref()
                .is_some_and(|q| !alias.eq_ignore_ascii_case(q))
            {
                return None;
            }
            def.as_ref()?.column(&name)
        });
        match (found.next(), found.next()) {
            (Some(c), None) => c.not_null,
            _ => false,
        }
    }

    fn column(&self, qualifier: Option<&str>, name: &str) -> Option<ResultColumn> {
        for (alias, def) in &self.tables {
            if let Some(q) = qualifier {
                if !alias.eq_ignore_ascii_case(q) {
                    continue;
                }
            }
            if let Some(c) = def.as_ref().and_then(|d| d.column(name)) {
                return Some(ResultColumn::of(c.ty, c.typmod));
            }
        }
        None
    }
}

/// A derived table's (or WITH query's) columns as a table definition: names from the alias
/// list or the select list (stars spelled out), types as inferred; `None` when they cannot
/// be matched up.
fn derived_def(
    name: &str,
    alias_columns: &[sqlparser::ast::TableAliasColumnDef],
    subquery: &Query,
    catalog: &Catalog,
) -> Option<TableDef> {
    let types = query_columns(subquery, catalog);
    let names: Vec<String> = if alias_columns.is_empty() {
        output_names(subquery, catalog)?
    } else {
        alias_columns.iter().map(|c| ident_value(&c.name)).collect()
    };
    if names.len() != types.len() {
        return None;
    }
    Some(TableDef {
        name: name.to_string(),
        columns: names
            .into_iter()
            .zip(types)
            .filter_map(|(n, t)| {
                Some(ColumnInfo {
                    name: n,
                    ty: t.ty?,
                    typmod: t.typmod,
                    serial: false,
                    not_null: false,
                    default: None,
                })
            })
            .collect(),
    })
}

/// The names of a query's result columns as PostgreSQL gives them, its stars spelled out
/// (`None` where a star's table is unknown).
pub(crate) fn output_names(q: &Query, catalog: &Catalog) -> Option<Vec<String>> {
    result_names(&q.body).or_else(|| match q.body.as_ref() {
        // `SELECT c.*, true AS x FROM c`: the stars spelled out.
        SetExpr::Select(s) => {
            let scope = Scope::from_tables(&s.from, catalog);
            projection_names(&s.projection, &scope)
        }
        _ => None,
    })
}

/// The catalog a query with WITH is typed against: its WITH queries as tables (each typed
/// with the ones before it), so their columns keep their types where they are read.
pub(crate) fn with_ctes(catalog: &Catalog, with: &sqlparser::ast::With) -> Catalog {
    let mut defs: Vec<std::sync::Arc<TableDef>> = Vec::new();
    let mut view = catalog.clone();
    for cte in &with.cte_tables {
        let name = ident_value(&cte.alias.name);
        if let Some(def) = derived_def(&name, &cte.alias.columns, &cte.query, &view) {
            defs.push(std::sync::Arc::new(def));
            view = catalog.with_temporary(defs.iter(), std::iter::empty(), catalog.version);
        }
    }
    view
}

/// The table and column names of a one-column table function: `AS t(x)`, `AS x` (both
/// x), or the function's name.
fn single_column(alias: Option<&sqlparser::ast::TableAlias>, function: &str) -> (String, String) {
    let table = alias
        .map(|a| ident_value(&a.name))
        .unwrap_or_else(|| function.to_string());
    let column = alias
        .and_then(|a| a.columns.first().map(|c| ident_value(&c.name)))
        .unwrap_or_else(|| table.clone());
    (table, column)
}

fn push_factor<'a>(
    tf: &TableFactor,
    catalog: &'a Catalog,
    out: &mut Vec<(String, Option<Cow<'a, TableDef>>)>,
) {
    match tf {
        TableFactor::Table {
            name,
            alias,
            args: Some(args),
            ..
        } if object_name_to_table(name) == "generate_series" => {
            // One column, named by the alias, typed as PostgreSQL's overloads are: by the
            // start argument (int4 unless it says otherwise).
            let (table, column) = match alias {
                Some(a) => {
                    let t = ident_value(&a.name);
                    let c = a.columns.first().map(|c| ident_value(&c.name));
                    (t.clone(), c.unwrap_or(t))
                }
                None => ("generate_series".to_string(), "generate_series".to_string()),
            };
            let empty = Scope::empty();
            let start = match args.args.first() {
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => infer_expr(e, &empty),
                _ => None,
            };
            let ty = match start.and_then(|c| c.ty) {
                Some(t @ (PgType::Int8 | PgType::Numeric | PgType::Timestamp)) => t,
                Some(PgType::Timestamptz | PgType::Date) => PgType::Timestamptz,
                _ => PgType::Int4,
            };
            let def = TableDef {
                name: table.clone(),
                columns: vec![ColumnInfo {
                    name: column,
                    ty,
                    typmod: -1,
                    serial: false,
                    not_null: true,
                    default: None,
                }],
            };
            out.push((table, Some(Cow::Owned(def))));
        }
        // unnest(array) [AS t(x)]: one column of the array's element type.
        TableFactor::UNNEST {
            alias, array_exprs, ..
        } => {
            let (table, column) = single_column(alias.as_ref(), "unnest");
            let scope = Scope {
                tables: Vec::new(),
                catalog: Some(catalog),
            };
            let element = array_exprs
                .first()
                .and_then(|e| infer_expr(e, &scope))
                .and_then(|c| c.ty)
                .and_then(|t| t.element());
            let def = element.map(|ty| TableDef {
                name: table.clone(),
                columns: vec![ColumnInfo::plain(&column, ty)],
            });
            out.push((table, def.map(Cow::Owned)));
        }
        TableFactor::Table {
            name,
            alias,
            args: Some(_),
            ..
        } if object_name_to_table(name) == "regexp_matches" => {
            let (table, column) = single_column(alias.as_ref(), "regexp_matches");
            let def = TableDef {
                name: table.clone(),
                columns: vec![ColumnInfo::plain(&column, PgType::TextArray)],
            };
            out.push((table, Some(Cow::Owned(def))));
        }
        TableFactor::Table {
            name,
            alias,
            args: Some(_),
            ..
        } if crate::json::table_function(&object_name_to_table(name)).is_some() => {
            let fname = object_name_to_table(name);
            let Some(tf) = crate::json::table_function(&fname) else {
                return;
            };
            let table = alias
                .as_ref()
                .map(|a| ident_value(&a.name))
                .unwrap_or(fname);
            let columns = tf
                .names(alias.as_ref())
                .into_iter()
                .zip(tf.columns.iter())
                .map(|(name, (_, ty))| ColumnInfo {
                    name,
                    ty: *ty,
                    typmod: -1,
                    serial: false,
                    not_null: false,
                    default: None,
                })
                .collect();
            let def = TableDef {
                name: table.clone(),
                columns,
            };
            out.push((table, Some(Cow::Owned(def))));
        }
        TableFactor::Table { name, alias, .. } => {
            let table = object_name_to_table(name);
            let def = catalog.relation(&table).map(|d| Cow::Borrowed(d.as_ref()));
            let alias = alias
                .as_ref()
                .map(|a| ident_value(&a.name))
                .unwrap_or(table);
            out.push((alias, def));
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            push_factor(&table_with_joins.relation, catalog, out);
            for j in &table_with_joins.joins {
                push_factor(&j.relation, catalog, out);
            }
        }
        TableFactor::Derived {
            subquery,
            alias: Some(a),
            ..
        } => {
            // The subquery's own columns, typed as its projection is (catalog queries nest
            // several levels deep and drivers decode the outer columns by these types).
            let name = ident_value(&a.name);
            let def = derived_def(&name, &a.columns, subquery, catalog).map(Cow::Owned);
            out.push((name, def));
        }
        _ => {}
    }
}

/// Result column types of a query, one per output column, or empty when the projection
/// cannot be aligned with output columns (a wildcard over something not in the catalog).
pub fn query_columns(q: &Query, catalog: &Catalog) -> Vec<ResultColumn> {
    if let SetExpr::Values(v) = q.body.as_ref() {
        let rows: Vec<&[Expr]> = v.rows.iter().map(|r| r.content.as_slice()).collect();
        return values_columns(&rows);
    }
    let select = match q.body.as_ref() {
        SetExpr::Select(s) => s,
        SetExpr::SetOperation { left, .. } => match left.as_ref() {
            SetExpr::Select(s) => s,
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    let scope = Scope::from_tables(&select.from, catalog);
    projection_columns(&select.projection, &scope).unwrap_or_default()
}

/// The column types of a VALUES list, resolved over all its rows as PostgreSQL resolves
/// them for the numeric types (`(1), (2.5)` is numeric); otherwise the first known type.
pub(crate) fn values_columns(rows: &[&[Expr]]) -> Vec<ResultColumn> {
    let scope = Scope::empty();
    let width = rows.first().map_or(0, |r| r.len());
    (0..width)
        .map(|i| {
            let mut ty: Option<PgType> = None;
            for row in rows {
                // A quoted literal (or NULL) is of unknown type: the other rows decide.
                let t = match row.get(i) {
                    Some(Expr::Value(v))
                        if matches!(v.value, Value::SingleQuotedString(_) | Value::Null) =>
                    {
                        None
                    }
                    e => e.and_then(|e| infer_expr(e, &scope)).and_then(|c| c.ty),
                };
                ty = match (ty, t) {
                    (None, t) => t,
                    (Some(a), Some(b)) if a != b => arith(Some(a), Some(b)).or(Some(a)),
                    (a, _) => a,
                };
            }
            // Quoted literals and NULLs alone resolve to text, as in PostgreSQL.
            ResultColumn::of(ty.unwrap_or(PgType::Text), -1)
        })
        .collect()
}

/// The names of a select list's columns, its stars spelled out from `scope` (`None` when
/// a star's table is unknown).
fn projection_names(items: &[SelectItem], scope: &Scope) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for item in items {
        match item {
            SelectItem::UnnamedExpr(e) => out.push(crate::naming::expr_name(e)),
            SelectItem::ExprWithAlias { alias, .. } => out.push(ident_value(alias)),
            SelectItem::ExprWithAliases { .. } => return None,
            SelectItem::Wildcard(_) => {
                for (_, def) in &scope.tables {
                    out.extend(def.as_ref()?.columns.iter().map(|c| c.name.clone()));
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                let q = kind.to_string();
                let q = q.trim_end_matches(".*");
                let q = q.rsplit('.').next().unwrap_or(q).trim_matches('"');
                let def = scope
                    .tables
                    .iter()
                    .find(|(a, _)| a.eq_ignore_ascii_case(q))
                    .and_then(|(_, d)| d.as_ref())?;
                out.extend(def.columns.iter().map(|c| c.name.clone()));
            }
        }
    }
    Some(out)
}

fn projection_columns(items: &[SelectItem], scope: &Scope) -> Option<Vec<ResultColumn>> {
    let mut out = Vec::new();
    for item in items {
        match item {
            SelectItem::UnnamedExpr(e)
            | SelectItem::ExprWithAlias { expr: e, .. }
            | SelectItem::ExprWithAliases { expr: e, .. } => {
                out.push(infer_expr(e, scope).unwrap_or_else(ResultColumn::unknown))
            }
            SelectItem::Wildcard(_) => {
                for (_, def) in &scope.tables {
                    let def = def.as_ref()?;
                    out.extend(def.columns.iter().map(|c| ResultColumn::of(c.ty, c.typmod)));
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                let q = kind.to_string();
                let q = q.trim_end_matches(".*");
                let q = q
                    .rsplit('.')
                    .next()
                    .unwrap_or(q)
                    .trim_matches('"')
                    .to_string();
                let def = scope
                    .tables
                    .iter()
                    .find(|(a, _)| a.eq_ignore_ascii_case(&q))
                    .and_then(|(_, d)| d.as_ref())?;
                out.extend(def.columns.iter().map(|c| ResultColumn::of(c.ty, c.typmod)));
            }
        }
    }
    Some(out)
}

/// Result column types of a RETURNING list on `table`.
pub fn returning_columns(
    items: &[SelectItem],
    table: &str,
    catalog: &Catalog,
) -> Vec<ResultColumn> {
    let scope = Scope {
        tables: vec![(
            table.to_string(),
            catalog.table(table).map(|d| Cow::Borrowed(d.as_ref())),
        )],
        catalog: Some(catalog),
    };
    projection_columns(items, &scope).unwrap_or_default()
}

pub(crate) fn infer_expr(e: &Expr, scope: &Scope) -> Option<ResultColumn> {
    use PgType::*;
    let of = |t| Some(ResultColumn::of(t, -1));
    match e {
        Expr::Identifier(id) => scope.column(None, &ident_value(id)),
        Expr::CompoundIdentifier(parts) => {
            let name = ident_value(parts.last()?);
            let q = parts.len().checked_sub(2).map(|i| ident_value(&parts[i]));
            scope.column(q.as_deref(), &name)
        }
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => {
                if n.contains(['.', 'e', 'E']) {
                    of(Numeric)
                } else if n.parse::<i32>().is_ok() {
                    of(Int4)
                } else if n.parse::<i64>().is_ok() {
                    of(Int8)
                } else {
                    of(Numeric)
                }
            }
            Value::Boolean(_) => of(Bool),
            Value::Placeholder(_) => None,
            _ => of(Text),
        },
        Expr::Cast { data_type, .. } => {
            let name = data_type.to_string();
            // A `reg*` value prints as the object's name (introspect.rs turns the oid into
            // it in a select list).
            if is_reg_type(&name) {
                return of(PgType::Text);
            }
            PgType::parse_sql_name(&name).map(|s| ResultColumn::of(s.ty, s.typmod))
        }
        Expr::TypedString(ts) => PgType::parse_sql_name(&ts.data_type.to_string())
            .map(|s| ResultColumn::of(s.ty, s.typmod)),
        Expr::Nested(inner) => infer_expr(inner, scope),
        // CEIL(x) / FLOOR(x) (sqlparser's own nodes): numeric for a numeric, else float8.
        Expr::Ceil { expr, .. } | Expr::Floor { expr, .. } => {
            match infer_expr(expr, scope).and_then(|c| c.ty) {
                Some(Numeric) | None => of(Numeric),
                Some(_) => of(Float8),
            }
        }
        // A numeric-valued expression as typed.rs marks it; other collations keep the type.
        Expr::Collate { expr, .. } => {
            if crate::numeric::is_marked(e) {
                of(Numeric)
            } else if crate::datetime::is_marked(e) {
                of(Interval)
            } else {
                infer_expr(expr, scope)
            }
        }
        Expr::Interval(_) => of(Interval),
        Expr::Extract { .. } => of(Numeric),
        Expr::AtTimeZone { timestamp, .. } => match infer_expr(timestamp, scope).and_then(|c| c.ty)
        {
            Some(Timestamp) => of(Timestamptz),
            Some(Timestamptz) => of(Timestamp),
            _ => None,
        },
        // jsonb subscripts give jsonb; array subscripts an element.
        Expr::CompoundFieldAccess { root, .. } => {
            let t = infer_expr(root, scope).and_then(|c| c.ty)?;
            match t {
                Jsonb => of(Jsonb),
                other => other.element().and_then(of),
            }
        }
        Expr::UnaryOp { op, expr } => match op {
            UnaryOperator::Not => of(Bool),
            _ => infer_expr(expr, scope),
        },
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::Plus
            | BinaryOperator::Minus
            | BinaryOperator::Multiply
            | BinaryOperator::Divide
            | BinaryOperator::Modulo => {
                // A quoted literal takes the other operand's type (PostgreSQL's unknown).
                let quoted = |e: &Expr| matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)));
                let mut l = infer_expr(left, scope).and_then(|c| c.ty);
                let mut r = infer_expr(right, scope).and_then(|c| c.ty);
                if quoted(left) && !quoted(right) {
                    l = r;
                } else if quoted(right) && !quoted(left) {
                    r = l;
                }
                let symbol = match op {
                    BinaryOperator::Plus => "+",
                    BinaryOperator::Minus => "-",
                    BinaryOperator::Multiply => "*",
                    BinaryOperator::Divide => "/",
                    _ => "%",
                };
                // `timestamp + '1 day'` adds an interval.
                if quoted(right)
                    && symbol == "+"
                    && matches!(l, Some(Timestamp | Timestamptz | Time))
                {
                    r = Some(Interval);
                }
                if let (Some(a), Some(b)) = (l, r) {
                    if let Some(t) = crate::datetime::result_type(a, symbol, b) {
                        return of(t);
                    }
                }
                match (l, op, r) {
                    (Some(Jsonb), BinaryOperator::Minus, _) => of(Jsonb),
                    (Some(Date), BinaryOperator::Minus, Some(Date)) => of(Int4),
                    (Some(Date), BinaryOperator::Plus | BinaryOperator::Minus, Some(t))
                    | (Some(t), BinaryOperator::Plus, Some(Date))
                        if t.is_integer() =>
                    {
                        of(Date)
                    }
                    _ => arith(l, r).map(|t| ResultColumn::of(t, -1)),
                }
            }
            // `||` of arrays is an array; of jsonb (or jsonb and an untyped literal) jsonb.
            BinaryOperator::StringConcat => {
                let l = infer_expr(left, scope).and_then(|c| c.ty);
                let r = infer_expr(right, scope).and_then(|c| c.ty);
                let quoted = |e: &Expr| matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)));
                match (l, r) {
                    (Some(a), _) if a.element().is_some() => of(a),
                    (_, Some(a)) if a.element().is_some() => of(a),
                    (Some(Jsonb), Some(Jsonb)) => of(Jsonb),
                    (Some(Bytea), Some(Bytea)) => of(Bytea),
                    (Some(Jsonb), _) if quoted(right) => of(Jsonb),
                    (_, Some(Jsonb)) if quoted(left) => of(Jsonb),
                    _ => of(Text),
                }
            }
            BinaryOperator::PGExp => match (
                infer_expr(left, scope).and_then(|c| c.ty),
                infer_expr(right, scope).and_then(|c| c.ty),
            ) {
                (Some(Numeric), _) | (_, Some(Numeric)) => of(Numeric),
                _ => of(Float8),
            },
            // Bit operations keep the integer type (the shifts their left operand's).
            BinaryOperator::BitwiseAnd
            | BinaryOperator::BitwiseOr
            | BinaryOperator::BitwiseXor
            | BinaryOperator::PGBitwiseXor => {
                match (
                    infer_expr(left, scope).and_then(|c| c.ty),
                    infer_expr(right, scope).and_then(|c| c.ty),
                ) {
                    (Some(l), Some(r)) if l.is_integer() && r.is_integer() => {
                        arith(Some(l), Some(r)).map(|t| ResultColumn::of(t, -1))
                    }
                    (Some(l), None) | (None, Some(l)) if l.is_integer() => of(l),
                    _ => None,
                }
            }
            BinaryOperator::PGBitwiseShiftLeft | BinaryOperator::PGBitwiseShiftRight => {
                infer_expr(left, scope)
                    .and_then(|c| c.ty)
                    .filter(|t| t.is_integer())
                    .and_then(of)
            }
            BinaryOperator::LongArrow | BinaryOperator::HashLongArrow => of(Text),
            BinaryOperator::HashMinus => of(Jsonb),
            // `->` and `#>` give a value of the operand's own type (jsonb is then shown as
            // PostgreSQL shows jsonb).
            BinaryOperator::Arrow | BinaryOperator::HashArrow => infer_expr(left, scope)
                .and_then(|c| c.ty)
                .filter(|t| matches!(t, Json | Jsonb))
                .and_then(of),
            BinaryOperator::Gt
            | BinaryOperator::Lt
            | BinaryOperator::GtEq
            | BinaryOperator::LtEq
            | BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::And
            | BinaryOperator::Or
            | BinaryOperator::Xor
            | BinaryOperator::PGRegexMatch
            | BinaryOperator::PGRegexIMatch
            | BinaryOperator::PGRegexNotMatch
            | BinaryOperator::PGRegexNotIMatch
            | BinaryOperator::PGLikeMatch
            | BinaryOperator::PGILikeMatch
            | BinaryOperator::PGNotLikeMatch
            | BinaryOperator::PGNotILikeMatch
            | BinaryOperator::PGStartsWith
            | BinaryOperator::PGOverlap
            | BinaryOperator::Overlaps
            | BinaryOperator::AtArrow
            | BinaryOperator::ArrowAt
            | BinaryOperator::AtAt
            | BinaryOperator::Question
            | BinaryOperator::QuestionAnd
            | BinaryOperator::QuestionPipe => of(Bool),
            // Nothing known about the others: the executor falls back to the column's
            // origin, then to text — never a guessed boolean.
            _ => None,
        },
        Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNotFalse(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::InList { .. }
        | Expr::InSubquery { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::SimilarTo { .. }
        | Expr::ILike { .. }
        | Expr::Exists { .. }
        | Expr::AnyOp { .. }
        | Expr::AllOp { .. } => of(Bool),
        Expr::Case {
            conditions,
            else_result,
            ..
        } => conditions
            .iter()
            .find_map(|w| infer_expr(&w.result, scope))
            .or_else(|| else_result.as_ref().and_then(|e| infer_expr(e, scope))),
        Expr::Subquery(q) => scope.subquery_column(q),
        Expr::Position { .. } => of(Int4),
        Expr::Trim { expr, .. } | Expr::Overlay { expr, .. }
            if infer_expr(expr, scope).and_then(|c| c.ty) == Some(Bytea) =>
        {
            of(Bytea)
        }
        Expr::Overlay { .. } => of(Text),
        Expr::Substring { .. } | Expr::Trim { .. } => of(Text),
        Expr::Function(f) => {
            let name = function_name(f);
            let args = function_args(f);
            let arg0 = || args.first().and_then(|a| infer_expr(a, scope));
            // ARRAY(SELECT …): an array of the column's type (of arrays, one dimension more).
            if let (sqlparser::ast::FunctionArguments::Subquery(q), true) = (
                &f.args,
                crate::introspect::functions::is_array_subquery(&name),
            ) {
                return scope
                    .subquery_column(q)
                    .and_then(|c| c.ty)
                    .and_then(|t| t.element().map(|_| t).or_else(|| t.array()))
                    .map(|t| ResultColumn::of(t, -1));
            }
            // Date/time functions (and the calls datetime.rs writes for them).
            if crate::datetime::is_function(&name) {
                let types: Vec<Option<PgType>> = args
                    .iter()
                    .map(|a| infer_expr(a, scope).and_then(|c| c.ty))
                    .collect();
                if let Some(t) = crate::datetime::function_type(&name, &types, &args) {
                    return of(t);
                }
            }
            match name.as_str() {
                // Window functions.
                "row_number" | "rank" | "dense_rank" => of(Int8),
                "ntile" => of(Int4),
                "percent_rank" | "cume_dist" => of(Float8),
                "lag" | "lead" | "first_value" | "last_value" | "nth_value" => arg0(),
                "count"
                | "txid_current"
                | "pg_current_xact_id"
                | "txid_current_if_assigned"
                | "pg_current_xact_id_if_assigned" => of(Int8),
                // Checked integer arithmetic (typed.rs): the type is in the name.
                "pg_int2" => of(Int2),
                "pg_int4" => of(Int4),
                "pg_int8" => of(Int8),
                "pg_float4" => of(Float4),
                "pg_typeof" => of(Text),
                "pg_similar" => of(Bool),
                "regexp_replace" | "encode" => of(Text),
                "regexp_match" | "regexp_matches" | "string_to_array" | "regexp_split_to_array" => {
                    of(TextArray)
                }
                "regexp_split_to_table" => of(Text),
                "decode" => of(Bytea),
                "pg_float8" => of(Float8),
                // Exact numeric operations (numeric.rs): the operation names the type.
                "pg_numeric" => match args.first() {
                    Some(Expr::Value(v)) => match &v.value {
                        Value::SingleQuotedString(op) => match op.as_str() {
                            "int2" => of(Int2),
                            "int4" | "scale" => of(Int4),
                            "int8" => of(Int8),
                            _ => of(Numeric),
                        },
                        _ => of(Numeric),
                    },
                    _ => of(Numeric),
                },
                "pg_numeric_sum" | "pg_numeric_avg" | "div" => of(Numeric),
                "pg_float4_sum" => of(Float4),
                "pg_float8_sum" | "pg_float8_avg" => of(Float8),
                "sign" | "sqrt" | "exp" | "ln" | "log" | "log10" | "cbrt" | "power" | "pow" => {
                    match args
                        .iter()
                        .find_map(|a| infer_expr(a, scope).and_then(|c| c.ty))
                    {
                        Some(Numeric) => of(Numeric),
                        _ => of(Float8),
                    }
                }
                "mod" | "gcd" | "lcm" => match args
                    .iter()
                    .map(|a| infer_expr(a, scope).and_then(|c| c.ty))
                    .collect::<Vec<_>>()
                    .as_slice()
                {
                    [Some(a), Some(b)] => {
                        arith(Some(*a), Some(*b)).map(|t| ResultColumn::of(t, -1))
                    }
                    _ => None,
                },
                "sum" => match arg0().and_then(|c| c.ty) {
                    Some(Int2 | Int4) => of(Int8),
                    Some(Float4) => of(Float4),
                    Some(Float8) => of(Float8),
                    _ => of(Numeric),
                },
                "avg" => match arg0().and_then(|c| c.ty) {
                    Some(Float4 | Float8) => of(Float8),
                    _ => of(Numeric),
                },
                "min" | "max" | "abs" | "coalesce" | "nullif" | "greatest" | "least" => {
                    args.iter().find_map(|a| infer_expr(a, scope))
                }
                // The numeric variants take a numeric (or a scale: only numeric has the
                // two-argument forms); an integer goes to the float8 ones.
                "round" | "trunc" | "ceil" | "ceiling" | "floor" => match arg0().and_then(|c| c.ty)
                {
                    Some(Numeric) => of(Numeric),
                    _ if args.len() == 2 => of(Numeric),
                    Some(_) => of(Float8),
                    None => of(Numeric),
                },
                "length" | "char_length" | "character_length" | "octet_length" | "strpos"
                | "position" | "pg_backend_pid" | "instr" => of(Int4),
                "btrim" | "ltrim" | "rtrim" if arg0().and_then(|c| c.ty) == Some(Bytea) => {
                    of(Bytea)
                }
                "lower" | "upper" | "trim" | "btrim" | "ltrim" | "rtrim" | "substr"
                | "substring" | "replace" | "concat" | "concat_ws" | "string_agg" | "left"
                | "right" | "lpad" | "rpad" | "md5" | "repeat" | "reverse" | "initcap"
                | "to_char" | "format" | "quote_ident" | "quote_literal" | "chr" | "version"
                | "group_concat" | "split_part" => of(Text),
                "now"
                | "current_timestamp"
                | "transaction_timestamp"
                | "statement_timestamp"
                | "clock_timestamp" => of(Timestamptz),
                "current_date" => of(Date),
                "current_database" | "current_schema" | "current_user" | "session_user" => of(Name),
                "random" => of(Float8),
                "gen_random_uuid" | "uuid_generate_v4" => of(Uuid),
                "nextval" | "currval" | "setval" | "lastval" => of(Int8),
                "bool_and" | "bool_or" | "every" => of(Bool),
                // Arrays (JSON in SQLite) and the catalog functions.
                // Of arrays, a multi-dimensional array of the same element type.
                "array_agg" | "pg_array_agg_arrays" => arg0()
                    .and_then(|c| c.ty)
                    .and_then(|t| {
                        if t.element().is_some() {
                            Some(t)
                        } else {
                            t.array()
                        }
                    })
                    .map(|t| ResultColumn::of(t, -1)),
                "unnest" => arg0()
                    .and_then(|c| c.ty)
                    .and_then(PgType::element)
                    .map(|t| ResultColumn::of(t, -1)),
                "generate_subscripts"
                | "array_length"
                | "array_upper"
                | "array_lower"
                | "cardinality"
                | "array_position" => of(Int4),
                "array_to_string"
                | "format_type"
                | "pg_get_expr"
                | "pg_get_indexdef"
                | "pg_get_constraintdef"
                | "pg_get_userbyid"
                | "pg_get_serial_sequence"
                | "obj_description"
                | "col_description"
                | "pg_encoding_to_char" => of(Text),
                "json_build_object" | "json_build_array" | "json_agg" | "json_object_agg" => {
                    of(Json)
                }
                "jsonb_build_object" | "jsonb_build_array" | "jsonb_agg" | "jsonb_object_agg"
                | "jsonb_set" | "jsonb_insert" | "jsonb_strip_nulls" | "jsonb_extract_path"
                | "to_jsonb" => of(Jsonb),
                "json_extract_path" | "to_json" => of(Json),
                "jsonb_pretty"
                | "jsonb_typeof"
                | "json_typeof"
                | "jsonb_extract_path_text"
                | "json_extract_path_text" => of(Text),
                "jsonb_array_length" | "json_array_length" => of(Int4),
                "pg_table_is_visible"
                | "pg_type_is_visible"
                | "pg_collation_is_visible"
                | "has_table_privilege"
                | "has_schema_privilege"
                | "has_database_privilege" => of(Bool),
                "to_regclass" | "to_regtype" | "to_regnamespace" => of(Oid),
                "current_schemas" => of(NameArray),
                _ => None,
            }
        }
        // ARRAY[ARRAY[…]] is still an array of the inner arrays' element type.
        Expr::Array(a) => a
            .elem
            .iter()
            .find_map(|e| infer_expr(e, scope))
            .and_then(|c| c.ty)
            .and_then(|t| {
                if t.element().is_some() {
                    Some(t)
                } else {
                    t.array()
                }
            })
            .map(|t| ResultColumn::of(t, -1)),
        _ => None,
    }
}

fn arith(l: Option<PgType>, r: Option<PgType>) -> Option<PgType> {
    use PgType::*;
    let rank = |t: PgType| match t {
        Int2 => 1,
        Int4 => 2,
        Int8 => 3,
        Numeric => 4,
        Float4 => 5,
        Float8 => 6,
        _ => 0,
    };
    match (l, r) {
        // real only with real: real with an integer or numeric is double precision.
        (Some(Float4), Some(b)) | (Some(b), Some(Float4)) if b != Float4 && rank(b) > 0 => {
            Some(Float8)
        }
        (Some(a), Some(b)) if rank(a) > 0 && rank(b) > 0 => {
            Some(if rank(a) >= rank(b) { a } else { b })
        }
        (Some(Date), Some(Int4 | Int2 | Int8)) => Some(Date),
        (Some(a), None) if rank(a) > 0 => Some(a),
        (None, Some(b)) if rank(b) > 0 => Some(b),
        _ => None,
    }
}

/// True for integer arithmetic on integer literals and columns, whose result SQLite already
/// stores as PostgreSQL would (no coercion needed).
pub(crate) fn is_integer_arith(e: &Expr) -> bool {
    match e {
        Expr::BinaryOp { left, op, right } => {
            matches!(
                op,
                BinaryOperator::Plus | BinaryOperator::Minus | BinaryOperator::Multiply
            ) && is_integer_arith(left)
                && is_integer_arith(right)
        }
        Expr::Nested(inner) => is_integer_arith(inner),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => is_integer_arith(expr),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => !n.contains(['.', 'e', 'E']),
            Value::Placeholder(_) => true,
            _ => false,
        },
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::params::params_of_statement;
    use super::*;
    use crate::catalog::ColumnInfo;
    use crate::plan::Command;
    use crate::split::{parse, Parsed};
    use sqlparser::ast::Statement;

    fn cat() -> Catalog {
        let mut c = Catalog::default();
        let col = ColumnInfo::plain;
        c.insert(TableDef {
            name: "acc".into(),
            columns: vec![
                col("aid", PgType::Int4),
                col("abalance", PgType::Int8),
                col("name", PgType::Text),
            ],
        });
        c
    }

    fn stmt(sql: &str) -> Statement {
        match parse(sql).unwrap().remove(0) {
            Parsed::Statement(s) => *s,
            _ => panic!(),
        }
    }

    #[test]
    fn params_from_columns() {
        let c = cat();
        let t = params_of_statement(
            &stmt("update acc set abalance = abalance + $1 where aid = $2"),
            &c,
        );
        assert_eq!(t, vec![Some(PgType::Int8), Some(PgType::Int4)]);
        let t = params_of_statement(&stmt("insert into acc (name, aid) values ($1, $2)"), &c);
        assert_eq!(t, vec![Some(PgType::Text), Some(PgType::Int4)]);
        let t = params_of_statement(
            &stmt("select * from acc a where a.aid in ($1, $2) limit $3"),
            &c,
        );
        assert_eq!(
            t,
            vec![Some(PgType::Int4), Some(PgType::Int4), Some(PgType::Int8)]
        );
        let t = params_of_statement(&stmt("select $1::int8, $2"), &c);
        assert_eq!(t, vec![Some(PgType::Int8), None]);
    }

    #[test]
    fn result_columns() {
        let c = cat();
        let q = match stmt("select aid, count(*), sum(aid), abalance + 1, 1.5, a.* from acc a") {
            Statement::Query(q) => q,
            _ => panic!(),
        };
        let cols: Vec<Option<PgType>> = query_columns(&q, &c).iter().map(|c| c.ty).collect();
        use PgType::*;
        assert_eq!(
            cols,
            vec![
                Some(Int4),
                Some(Int8),
                Some(Int8),
                Some(Int8),
                Some(Numeric),
                Some(Int4),
                Some(Int8),
                Some(Text)
            ]
        );
    }

    fn translated(sql: &str, c: &Catalog) -> String {
        match crate::translate::plan(&parse(sql).unwrap()[0], c).unwrap() {
            Command::Sql(p) => p.sql.join("; "),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn jsonb_arrow_keeps_jsonb() {
        let p = match crate::translate::plan(
            &parse("select '{\"a\":1}'::jsonb -> 'a', '{\"a\":1}'::jsonb ->> 'a'").unwrap()[0],
            &Catalog::default(),
        )
        .unwrap()
        {
            Command::Sql(p) => p,
            other => panic!("{other:?}"),
        };
        let types: Vec<_> = p.columns.iter().map(|c| c.ty).collect();
        assert_eq!(
            types,
            vec![Some(PgType::Jsonb), Some(PgType::Text)],
            "{:?}",
            p.sql
        );
    }

    #[test]
    fn nulls_sort_as_in_postgres_except_on_never_null_keys() {
        let mut c = cat();
        c.insert(TableDef {
            name: "k".into(),
            columns: vec![ColumnInfo {
                not_null: true,
                ..ColumnInfo::plain("id", PgType::Int4)
            }],
        });
        let s = translated("select name from acc order by name, aid desc", &c);
        assert!(
            s.ends_with("ORDER BY name NULLS LAST, aid DESC NULLS FIRST"),
            "{s}"
        );
        // A NOT NULL key keeps SQLite's index order; by position too.
        assert!(translated("select id from k order by id", &c).ends_with("ORDER BY id"));
        assert!(translated("select id from k order by 1 desc", &c).ends_with("ORDER BY 1 DESC"));
        // Explicit NULLS clauses are kept; subqueries and window orderings get PostgreSQL's.
        assert!(
            translated("select name from acc order by name nulls first", &c)
                .ends_with("ORDER BY name NULLS FIRST")
        );
        let s = translated(
            "select row_number() over (order by name) from (select name from acc order by aid) x",
            &c,
        );
        assert!(s.contains("OVER (ORDER BY name NULLS LAST)"), "{s}");
        assert!(s.contains("ORDER BY aid NULLS LAST)"), "{s}");
    }

    #[test]
    fn date_arithmetic_is_computed_by_pg_datetime() {
        let mut c = cat();
        c.insert(TableDef {
            name: "ev".into(),
            columns: vec![ColumnInfo::plain("d", PgType::Date)],
        });
        let s = translated(
            "select d + 1, d - 2, 3 + d, d - d from ev where d - 7 > d",
            &c,
        );
        assert!(s.contains("pg_datetime('date + number', d, 1)"), "{s}");
        assert!(s.contains("pg_datetime('date - number', d, 2)"), "{s}");
        assert!(s.contains("pg_datetime('number + date', 3, d)"), "{s}");
        assert!(s.contains("pg_datetime('date - date', d, d)"), "{s}");
        // Dates compare by their instant (BC dates too).
        assert!(
            s.contains("WHERE pg_datetime('date - number', d, 7) COLLATE pg_datetime > d"),
            "{s}"
        );
        // Integer arithmetic is checked in its type (22003 on overflow).
        let s = translated("select aid + 1 from acc", &c);
        assert!(s.contains("pg_int4('+', aid, 1)"), "{s}");
        // Writes too.
        let s = translated("update ev set d = d + 7 where d - 1 < '2020-01-01'", &c);
        assert!(s.contains("pg_datetime('date + number', d, 7)"), "{s}");
        assert!(
            s.contains("WHERE pg_datetime('date - number', d, 1)"),
            "{s}"
        );
        let s = translated("insert into ev select d + 1 from ev", &c);
        assert!(s.contains("pg_datetime('date + number', d, 1)"), "{s}");
        // CTEs, derived tables, joins and ORDER BY; a subquery with its own tables.
        c.insert(TableDef {
            name: "nums".into(),
            columns: vec![ColumnInfo::plain("d", PgType::Int4)],
        });
        let s = translated(
            "with c as (select d + 1 as n from ev) select n, (select max(d + 1) from nums) \
             from (select d + 1 as n from ev) w join ev e on e.d = w.n - 1 order by w.n + 2",
            &c,
        );
        assert!(
            s.contains("WITH c AS (SELECT pg_datetime('date + number', d, 1)"),
            "{s}"
        );
        assert!(
            s.contains("FROM (SELECT pg_datetime('date + number', d, 1)"),
            "{s}"
        );
        assert!(s.contains("max(pg_int4('+', d, 1))"), "{s}");
        assert!(s.contains("pg_datetime('date - number', w.n, 1)"), "{s}");
        assert!(
            s.contains("ORDER BY pg_datetime('date + number', w.n, 2)"),
            "{s}"
        );
    }
}
