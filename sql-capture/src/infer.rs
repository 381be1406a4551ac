//! Type inference for `$n` parameters and result columns.
//!
//! Strict drivers decode by the OIDs the server reports at Describe time, before any row
//! exists, so the types must come from the statement and the schema. Column references take
//! their declared type; expressions follow PostgreSQL's rules for the operators and functions
//! mdbc supports. Where nothing tells, the answer is `None` and the executor falls back to
//! SQLite's column origin, then to `text`.

use std::borrow::Cow;
use std::ops::ControlFlow;

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Expr, FromTable, FunctionArg, FunctionArgExpr,
    OnConflictAction, OnInsert, OrderBy, OrderByExpr, OrderByKind, OrderBySort, Query, SelectItem,
    SetExpr, Statement, TableFactor, TableWithJoins, UnaryOperator, Value, Visit, Visitor,
};

use crate::catalog::{Catalog, ColumnInfo, TableDef};
use crate::rewrite::{function_args, function_name, ident_value, object_name_to_table};
use crate::types::PgType;

/// The inferred type of one result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultColumn {
    /// Type, if known.
    pub ty: Option<PgType>,
    /// Type modifier (-1 when none).
    pub typmod: i32,
}

impl ResultColumn {
    fn unknown() -> Self {
        ResultColumn {
            ty: None,
            typmod: -1,
        }
    }
    fn of(ty: PgType, typmod: i32) -> Self {
        ResultColumn {
            ty: Some(ty),
            typmod,
        }
    }
}

fn is_reg_type(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.trim_start_matches("pg_catalog."),
        "regclass" | "regtype" | "regnamespace"
    )
}

/// PostgreSQL sorts NULLs last when ascending and first when descending; SQLite does the
/// opposite. Every ORDER BY without its own NULLS clause gets PostgreSQL's, except on a
/// top-level key that cannot be NULL (a NOT NULL or primary-key column): there the clause
/// changes nothing and would keep SQLite from reading an index in order.
pub fn order_nulls_like_postgres(q: &mut Query, catalog: &Catalog) {
    let mut top = q.order_by.take();
    order_nulls_in(q);
    if let Some(OrderBy {
        kind: OrderByKind::Expressions(exprs),
        ..
    }) = &mut top
    {
        // The SELECT and its tables, unless an outer join is among them: a column of an
        // outer join's nullable side can be NULL whatever it was declared.
        let select = match q.body.as_ref() {
            SetExpr::Select(s)
                if !s.from.iter().any(|t| {
                    t.joins.iter().any(|j| {
                        !matches!(
                            j.join_operator,
                            sqlparser::ast::JoinOperator::Join(_)
                                | sqlparser::ast::JoinOperator::Inner(_)
                                | sqlparser::ast::JoinOperator::CrossJoin(_)
                        )
                    })
                }) =>
            {
                Some((s, Scope::from_tables(&s.from, catalog)))
            }
            _ => None,
        };
        for e in exprs.iter_mut() {
            let never_null = select.as_ref().is_some_and(|(sel, scope)| {
                let target = match &e.expr {
                    Expr::Value(v) => match &v.value {
                        Value::Number(n, _) => n
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| sel.projection.get(i.wrapping_sub(1)))
                            .and_then(|item| match item {
                                SelectItem::UnnamedExpr(x)
                                | SelectItem::ExprWithAlias { expr: x, .. } => Some(x),
                                _ => None,
                            }),
                        _ => None,
                    },
                    // An output column's name means that column, not a table's.
                    Expr::Identifier(id) => sel
                        .projection
                        .iter()
                        .find_map(|item| match item {
                            SelectItem::ExprWithAlias { expr, alias }
                                if ident_value(alias) == ident_value(id) =>
                            {
                                Some(expr)
                            }
                            _ => None,
                        })
                        .or(Some(&e.expr)),
                    other => Some(other),
                };
                target.is_some_and(|t| scope.never_null(t))
            });
            if !never_null {
                set_postgres_nulls(e);
            }
        }
    }
    q.order_by = top;
}

/// `date ± integer` and `date - date`, which need the operands' types: SQLite would add
/// the number to the year. Rewritten to SQLite's date functions before translation, with
/// each SELECT's own tables in scope.
pub fn date_arithmetic(q: &mut Query, catalog: &Catalog) {
    date_query(q, catalog)
}

/// The same for an INSERT, UPDATE or DELETE (`node` is the statement's clone being
/// translated; `stmt` the original, whose tables are in scope).
pub fn date_arithmetic_in<T: sqlparser::ast::VisitMut>(
    node: &mut T,
    stmt: &Statement,
    catalog: &Catalog,
) {
    let scope = statement_scope(stmt, catalog);
    let _ = node.visit(&mut FixDates {
        scope: &scope,
        catalog,
        depth: 0,
    });
}

struct FixDates<'a, 'b> {
    scope: &'a Scope<'b>,
    catalog: &'a Catalog,
    // Inside a subquery: date_query has fixed it with its own tables in scope.
    depth: usize,
}

impl sqlparser::ast::VisitorMut for FixDates<'_, '_> {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if self.depth == 0 {
            date_query(q, self.catalog);
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if self.depth == 0 {
            fix_typed_expr(e, self.scope);
        }
        ControlFlow::Continue(())
    }
}

fn date_query(q: &mut Query, catalog: &Catalog) {
    if let Some(with) = &mut q.with {
        for cte in &mut with.cte_tables {
            date_query(&mut cte.query, catalog);
        }
    }
    fn set_expr(body: &mut SetExpr, catalog: &Catalog) -> Option<Vec<(String, Option<TableDef>)>> {
        match body {
            SetExpr::Select(sel) => {
                let scope = Scope::from_tables(&sel.from, catalog);
                let mut fix = FixDates {
                    scope: &scope,
                    catalog,
                    depth: 0,
                };
                // The whole SELECT: select list, FROM (derived tables are queries of their
                // own), join conditions, WHERE, GROUP BY, HAVING.
                let _ = sqlparser::ast::VisitMut::visit(sel.as_mut(), &mut fix);
                Some(
                    scope
                        .tables
                        .into_iter()
                        .map(|(a, d)| (a, d.map(|d| d.into_owned())))
                        .collect(),
                )
            }
            SetExpr::SetOperation { left, right, .. } => {
                set_expr(left, catalog);
                set_expr(right, catalog);
                None
            }
            SetExpr::Query(q) => {
                date_query(q, catalog);
                None
            }
            _ => None,
        }
    }
    let tables = set_expr(q.body.as_mut(), catalog);
    // ORDER BY belongs to the query but sees the SELECT's tables.
    if let (Some(tables), Some(order)) = (tables, &mut q.order_by) {
        let scope = Scope {
            tables: tables
                .into_iter()
                .map(|(a, d)| (a, d.map(Cow::Owned)))
                .collect(),
        };
        let _ = sqlparser::ast::VisitMut::visit(
            order,
            &mut FixDates {
                scope: &scope,
                catalog,
                depth: 0,
            },
        );
    }
}

/// Rewrites that depend on an operand's type: date arithmetic, `boolean::text` (PostgreSQL
/// prints `true`, SQLite's 1 would print `1`) and `numeric::integer` (PostgreSQL rounds
/// half away from zero, the coercion of a real rounds half to even).
fn fix_typed_expr(e: &mut Expr, scope: &Scope) {
    if let Expr::Cast {
        expr: inner,
        data_type,
        ..
    } = e
    {
        let Some(target) = PgType::parse_sql_name(&data_type.to_string()) else {
            return;
        };
        let source = infer_expr(inner, scope).and_then(|c| c.ty);
        match (source, target.ty) {
            (Some(PgType::Bool), t) if t.is_string() => {
                let b = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
                **inner = Expr::Case {
                    case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                    end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                    operand: None,
                    conditions: vec![
                        sqlparser::ast::CaseWhen {
                            condition: b.clone(),
                            result: Expr::value(Value::SingleQuotedString("true".into())),
                        },
                        sqlparser::ast::CaseWhen {
                            condition: Expr::UnaryOp {
                                op: UnaryOperator::Not,
                                expr: Box::new(b),
                            },
                            result: Expr::value(Value::SingleQuotedString("false".into())),
                        },
                    ],
                    else_result: None,
                };
            }
            (Some(PgType::Numeric), t) if t.is_integer() => {
                let x = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
                **inner = crate::rewrite::call("round", vec![x]);
            }
            _ => {}
        }
        return;
    }
    let Expr::BinaryOp { left, op, right } = e else {
        return;
    };
    if !matches!(op, BinaryOperator::Plus | BinaryOperator::Minus) {
        return;
    }
    let l = infer_expr(left, scope).and_then(|c| c.ty);
    let r = infer_expr(right, scope).and_then(|c| c.ty);
    // date(d, N || ' days') with N signed: SQLite reads '-3 days' and '3 days' but not
    // '+-3 days', so a subtraction negates the number rather than writing a sign.
    let days = |date: Expr, sign: &str, n: Expr| {
        let n = Expr::Nested(Box::new(n));
        let n = if sign == "-" {
            Expr::Nested(Box::new(Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: Box::new(n),
            }))
        } else {
            n
        };
        let modifier = Expr::BinaryOp {
            left: Box::new(n),
            op: BinaryOperator::StringConcat,
            right: Box::new(Expr::value(Value::SingleQuotedString(" days".into()))),
        };
        crate::rewrite::call("date", vec![date, modifier])
    };
    let take = |b: &mut Box<Expr>| std::mem::replace(b.as_mut(), Expr::value(Value::Null));
    *e = match (l, &*op, r) {
        (Some(PgType::Date), BinaryOperator::Minus, Some(PgType::Date)) => {
            let diff = Expr::BinaryOp {
                left: Box::new(crate::rewrite::call("julianday", vec![take(left)])),
                op: BinaryOperator::Minus,
                right: Box::new(crate::rewrite::call("julianday", vec![take(right)])),
            };
            Expr::Cast {
                kind: sqlparser::ast::CastKind::Cast,
                expr: Box::new(diff),
                data_type: sqlparser::ast::DataType::Integer(None),
                format: None,
            }
        }
        (Some(PgType::Date), BinaryOperator::Plus, Some(t)) if t.is_integer() => {
            days(take(left), "+", take(right))
        }
        (Some(PgType::Date), BinaryOperator::Minus, Some(t)) if t.is_integer() => {
            days(take(left), "-", take(right))
        }
        (Some(t), BinaryOperator::Plus, Some(PgType::Date)) if t.is_integer() => {
            days(take(right), "+", take(left))
        }
        _ => return,
    };
}

/// [`order_nulls_like_postgres`] for the queries inside an INSERT, UPDATE or DELETE (every
/// ORDER BY gets PostgreSQL's NULLS clause).
pub fn order_nulls_in<T: sqlparser::ast::VisitMut>(node: &mut T) {
    struct Every;
    impl sqlparser::ast::VisitorMut for Every {
        type Break = ();
        fn pre_visit_order_by_expr(&mut self, e: &mut OrderByExpr) -> ControlFlow<()> {
            set_postgres_nulls(e);
            ControlFlow::Continue(())
        }
    }
    let _ = node.visit(&mut Every);
}

fn set_postgres_nulls(e: &mut OrderByExpr) {
    if e.options.nulls_first.is_none() {
        let desc = matches!(e.options.sort, Some(OrderBySort::Desc));
        e.options.nulls_first = Some(desc);
    }
}

/// Tables in scope: (name or alias, definition).
struct Scope<'a> {
    tables: Vec<(String, Option<Cow<'a, TableDef>>)>,
}

impl<'a> Scope<'a> {
    fn from_tables(from: &[TableWithJoins], catalog: &'a Catalog) -> Self {
        let mut tables = Vec::new();
        for twj in from {
            push_factor(&twj.relation, catalog, &mut tables);
            for j in &twj.joins {
                push_factor(&j.relation, catalog, &mut tables);
            }
        }
        Scope { tables }
    }

    /// Whether `e` is a column reference to a NOT NULL column.
    fn never_null(&self, e: &Expr) -> bool {
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
            let empty = Scope { tables: Vec::new() };
            let start = match args.args.first() {
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => infer_expr(e, &empty),
                _ => None,
            };
            let ty = match start.and_then(|c| c.ty) {
                Some(t @ (PgType::Int8 | PgType::Numeric)) => t,
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
            let types = query_columns(subquery, catalog);
            let names: Option<Vec<String>> = if a.columns.is_empty() {
                crate::introspect::result_names(&subquery.body)
            } else {
                Some(a.columns.iter().map(|c| ident_value(&c.name)).collect())
            };
            let def = names.filter(|n| n.len() == types.len()).map(|names| {
                Cow::Owned(TableDef {
                    name: name.clone(),
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
            });
            out.push((name, def));
        }
        _ => {}
    }
}

/// Result column types of a query, one per output column, or empty when the projection
/// cannot be aligned with output columns (a wildcard over something not in the catalog).
pub fn query_columns(q: &Query, catalog: &Catalog) -> Vec<ResultColumn> {
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
    };
    projection_columns(items, &scope).unwrap_or_default()
}

fn infer_expr(e: &Expr, scope: &Scope) -> Option<ResultColumn> {
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
                let l = infer_expr(left, scope).and_then(|c| c.ty);
                let r = infer_expr(right, scope).and_then(|c| c.ty);
                match (l, op, r) {
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
            BinaryOperator::StringConcat => of(Text),
            BinaryOperator::PGExp => match (
                infer_expr(left, scope).and_then(|c| c.ty),
                infer_expr(right, scope).and_then(|c| c.ty),
            ) {
                (Some(Numeric), _) | (_, Some(Numeric)) => of(Numeric),
                _ => of(Float8),
            },
            _ => of(Bool),
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
        Expr::Subquery(q) => match q.body.as_ref() {
            // Resolved against the outer scope: enough for `(SELECT max(x) FROM t)` when
            // `t` is also in the outer FROM, and `None` otherwise.
            SetExpr::Select(s) => match s.projection.first() {
                Some(SelectItem::UnnamedExpr(e))
                | Some(SelectItem::ExprWithAlias { expr: e, .. }) => infer_expr(e, scope),
                _ => None,
            },
            _ => None,
        },
        Expr::Position { .. } => of(Int4),
        Expr::Substring { .. } | Expr::Trim { .. } => of(Text),
        Expr::Function(f) => {
            let name = function_name(f);
            let args = function_args(f);
            let arg0 = || args.first().and_then(|a| infer_expr(a, scope));
            match name.as_str() {
                "count" => of(Int8),
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
                "round" | "trunc" | "ceil" | "ceiling" | "floor" => match arg0().and_then(|c| c.ty)
                {
                    Some(Float4 | Float8) => of(Float8),
                    _ => of(Numeric),
                },
                "length" | "char_length" | "character_length" | "octet_length" | "strpos"
                | "position" | "pg_backend_pid" | "instr" => of(Int4),
                "lower" | "upper" | "trim" | "btrim" | "ltrim" | "rtrim" | "substr"
                | "substring" | "replace" | "concat" | "concat_ws" | "string_agg" | "left"
                | "right" | "lpad" | "rpad" | "md5" | "repeat" | "reverse" | "initcap"
                | "to_char" | "format" | "quote_ident" | "quote_literal" | "chr" | "version"
                | "group_concat" | "split_part" => of(Text),
                "now"
                | "current_timestamp"
                | "localtimestamp"
                | "transaction_timestamp"
                | "statement_timestamp"
                | "clock_timestamp" => of(Timestamptz),
                "current_date" => of(Date),
                "current_database" | "current_schema" | "current_user" | "session_user" => of(Name),
                "random" => of(Float8),
                "gen_random_uuid" => of(Uuid),
                "nextval" | "currval" | "setval" => of(Int8),
                "bool_and" | "bool_or" | "every" => of(Bool),
                // Arrays (JSON in SQLite) and the catalog functions.
                "array_agg" => arg0()
                    .and_then(|c| c.ty)
                    .and_then(PgType::array)
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
                "jsonb_build_object" | "jsonb_build_array" | "jsonb_agg" | "jsonb_object_agg" => {
                    of(Jsonb)
                }
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
        Expr::Array(a) => a
            .elem
            .iter()
            .find_map(|e| infer_expr(e, scope))
            .and_then(|c| c.ty)
            .and_then(PgType::array)
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

fn placeholder_index(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1),
            _ => None,
        },
        Expr::Nested(inner) => placeholder_index(inner),
        _ => None,
    }
}

struct ParamTypes<'a> {
    scope: Scope<'a>,
    types: Vec<Option<PgType>>,
}

impl ParamTypes<'_> {
    fn set(&mut self, idx: usize, ty: Option<PgType>) {
        let Some(ty) = ty else { return };
        if self.types.len() <= idx {
            self.types.resize(idx + 1, None);
        }
        if self.types[idx].is_none() {
            self.types[idx] = Some(ty);
        }
    }
    fn ty_of(&self, e: &Expr) -> Option<PgType> {
        infer_expr(e, &self.scope).and_then(|c| c.ty)
    }
    fn note(&mut self, idx: usize) {
        if self.types.len() <= idx {
            self.types.resize(idx + 1, None);
        }
    }
}

impl Visitor for ParamTypes<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Some(i) = placeholder_index(e) {
            self.note(i);
        }
        match e {
            Expr::BinaryOp { left, op, right } => {
                let other_for = |this: &Self, other: &Expr| match op {
                    BinaryOperator::StringConcat => Some(PgType::Text),
                    _ => this.ty_of(other),
                };
                if let Some(i) = placeholder_index(left) {
                    let t = other_for(self, right);
                    self.set(i, t);
                }
                if let Some(i) = placeholder_index(right) {
                    let t = other_for(self, left);
                    self.set(i, t);
                }
            }
            Expr::InList { expr, list, .. } => {
                let t = self.ty_of(expr);
                for item in list {
                    if let Some(i) = placeholder_index(item) {
                        self.set(i, t);
                    }
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                let t = self.ty_of(expr);
                for b in [low, high] {
                    if let Some(i) = placeholder_index(b) {
                        self.set(i, t);
                    }
                }
            }
            Expr::Like { pattern, .. } | Expr::ILike { pattern, .. } => {
                if let Some(i) = placeholder_index(pattern) {
                    self.set(i, Some(PgType::Text));
                }
            }
            Expr::Cast {
                expr, data_type, ..
            } => {
                if let Some(i) = placeholder_index(expr) {
                    let name = data_type.to_string();
                    // `$1::regclass` takes a relation's name.
                    let t = if is_reg_type(&name) {
                        Some(PgType::Text)
                    } else {
                        PgType::parse_sql_name(&name).map(|s| s.ty)
                    };
                    self.set(i, t);
                }
            }
            Expr::Function(f) => {
                let name = function_name(f);
                let args = function_args(f);
                let text_fn = matches!(
                    name.as_str(),
                    "lower" | "upper" | "trim" | "length" | "concat" | "replace" | "md5"
                );
                let same_fn = matches!(name.as_str(), "coalesce" | "nullif" | "greatest" | "least");
                let known = if same_fn {
                    args.iter().find_map(|a| self.ty_of(a))
                } else {
                    None
                };
                for a in args {
                    if let Some(i) = placeholder_index(a) {
                        if text_fn {
                            self.set(i, Some(PgType::Text));
                        } else if same_fn {
                            self.set(i, known);
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(limit) = &q.limit_clause {
            match limit {
                sqlparser::ast::LimitClause::LimitOffset { limit, offset, .. } => {
                    if let Some(i) = limit.as_ref().and_then(placeholder_index) {
                        self.set(i, Some(PgType::Int8));
                    }
                    if let Some(i) = offset.as_ref().and_then(|o| placeholder_index(&o.value)) {
                        self.set(i, Some(PgType::Int8));
                    }
                }
                sqlparser::ast::LimitClause::OffsetCommaLimit { offset, limit } => {
                    for e in [offset, limit] {
                        if let Some(i) = placeholder_index(e) {
                            self.set(i, Some(PgType::Int8));
                        }
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Every table a statement mentions, for resolving unqualified columns.
fn statement_scope<'a>(stmt: &Statement, catalog: &'a Catalog) -> Scope<'a> {
    struct Rels(Vec<String>);
    impl Visitor for Rels {
        type Break = ();
        fn pre_visit_relation(&mut self, r: &sqlparser::ast::ObjectName) -> ControlFlow<()> {
            self.0.push(object_name_to_table(r));
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name,
                alias: Some(a),
                ..
            } = tf
            {
                // Aliases resolve to their table too.
                self.0.push(format!(
                    "{}\u{0}{}",
                    ident_value(&a.name),
                    object_name_to_table(name)
                ));
            }
            ControlFlow::Continue(())
        }
    }
    let mut rels = Rels(Vec::new());
    let _ = stmt.visit(&mut rels);
    let mut tables = Vec::new();
    for r in rels.0 {
        let (alias, table) = match r.split_once('\u{0}') {
            Some((a, t)) => (a.to_string(), t.to_string()),
            None => (r.clone(), r),
        };
        tables.push((
            alias,
            catalog.relation(&table).map(|d| Cow::Borrowed(d.as_ref())),
        ));
    }
    Scope { tables }
}

/// Inferred types of a statement's `$n` parameters (index n-1).
pub fn params_of_statement(stmt: &Statement, catalog: &Catalog) -> Vec<Option<PgType>> {
    let mut v = ParamTypes {
        scope: statement_scope(stmt, catalog),
        types: Vec::new(),
    };
    // Positional context first: INSERT values and SET targets give exact column types.
    match stmt {
        Statement::Insert(ins) => {
            let table = match &ins.table {
                sqlparser::ast::TableObject::TableName(n) => object_name_to_table(n),
                _ => String::new(),
            };
            if let Some(def) = catalog.table(&table) {
                let cols: Vec<Option<PgType>> = if ins.columns.is_empty() {
                    def.columns.iter().map(|c| Some(c.ty)).collect()
                } else {
                    ins.columns
                        .iter()
                        .map(|c| def.column(&object_name_to_table(c)).map(|c| c.ty))
                        .collect()
                };
                if let Some(src) = &ins.source {
                    let rows: Vec<&Vec<Expr>> = match src.body.as_ref() {
                        SetExpr::Values(v) => v.rows.iter().map(|r| &r.content).collect(),
                        _ => Vec::new(),
                    };
                    for row in rows {
                        for (e, t) in row.iter().zip(&cols) {
                            if let Some(i) = placeholder_index(e) {
                                v.set(i, *t);
                            }
                        }
                    }
                    if let SetExpr::Select(s) = src.body.as_ref() {
                        for (item, t) in s.projection.iter().zip(&cols) {
                            if let SelectItem::UnnamedExpr(e) = item {
                                if let Some(i) = placeholder_index(e) {
                                    v.set(i, *t);
                                }
                            }
                        }
                    }
                }
                if let Some(OnInsert::OnConflict(oc)) = &ins.on {
                    if let OnConflictAction::DoUpdate(du) = &oc.action {
                        for a in &du.assignments {
                            if let AssignmentTarget::ColumnName(c) = &a.target {
                                if let Some(i) = placeholder_index(&a.value) {
                                    v.set(i, def.column(&object_name_to_table(c)).map(|c| c.ty));
                                }
                            }
                        }
                    }
                }
            }
        }
        Statement::Update(up) => {
            if let TableFactor::Table { name, .. } = &up.table.relation {
                if let Some(def) = catalog.table(&object_name_to_table(name)) {
                    for a in &up.assignments {
                        if let AssignmentTarget::ColumnName(c) = &a.target {
                            if let Some(i) = placeholder_index(&a.value) {
                                v.set(i, def.column(&object_name_to_table(c)).map(|c| c.ty));
                            }
                        }
                    }
                }
            }
        }
        Statement::Delete(d) => {
            let _ = match &d.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
        }
        _ => {}
    }
    let _ = stmt.visit(&mut v);
    v.types
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnInfo;
    use crate::split::{parse, Parsed};

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
            crate::translate::Command::Sql(p) => p.sql.join("; "),
            other => panic!("{other:?}"),
        }
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
    fn date_arithmetic_uses_date_functions() {
        let mut c = cat();
        c.insert(TableDef {
            name: "ev".into(),
            columns: vec![ColumnInfo::plain("d", PgType::Date)],
        });
        let s = translated(
            "select d + 1, d - 2, 3 + d, d - d from ev where d - 7 > d",
            &c,
        );
        assert!(s.contains("date(d, (1) || ' days')"), "{s}");
        assert!(s.contains("date(d, (-(2)) || ' days')"), "{s}");
        assert!(s.contains("date(d, (3) || ' days')"), "{s}");
        assert!(
            s.contains("pg_coerce(julianday(d) - julianday(d), 23, -1)"),
            "{s}"
        );
        assert!(s.contains("WHERE date(d, (-(7)) || ' days') > d"), "{s}");
        // Numbers stay numbers.
        assert!(translated("select aid + 1 from acc", &c).contains("aid + 1"));
        // Writes too.
        let s = translated("update ev set d = d + 7 where d - 1 < '2020-01-01'", &c);
        assert!(
            s.contains("pg_coerce(date(d, (7) || ' days'), 1082, -1)"),
            "{s}"
        );
        assert!(s.contains("WHERE date(d, (-(1)) || ' days') <"), "{s}");
        let s = translated("insert into ev select d + 1 from ev", &c);
        assert!(s.contains("date(d, (1) || ' days')"), "{s}");
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
            s.contains("WITH c AS (SELECT date(d, (1) || ' days') AS n FROM ev)"),
            "{s}"
        );
        assert!(
            s.contains("FROM (SELECT date(d, (1) || ' days') AS n FROM ev) w"),
            "{s}"
        );
        assert!(s.contains("max(d + 1)"), "{s}");
        assert!(s.contains("e.d = date(w.n, (-(1)) || ' days')"), "{s}");
        assert!(s.contains("ORDER BY date(w.n, (2) || ' days')"), "{s}");
    }
}
