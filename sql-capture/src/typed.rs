//! Rewrites that need the types of expressions (from [`crate::infer`]): ORDER BY puts
//! NULLs where PostgreSQL does unless the key cannot be NULL, and date arithmetic follows
//! PostgreSQL's rules where SQLite's text dates would not.

use std::borrow::Cow;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, OrderBy, OrderByExpr, OrderByKind, OrderBySort, Query, SelectItem,
    SetExpr, Statement, Value,
};

use crate::ast::{call, ident_value};
use crate::catalog::{Catalog, TableDef};
use crate::infer::{infer_expr, params::statement_scope, Scope};
use crate::types::PgType;
use crate::{datetime, numeric};

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
        // A computed jsonb (`ORDER BY j -> 'k'`) sorts in jsonb's order, as a jsonb
        // column does by its collation (numbers by value, kinds apart).
        if let SetExpr::Select(s) = q.body.as_ref() {
            let scope = Scope::from_tables(&s.from, catalog);
            // An output column's alias stands for its expression.
            let aliased = |id: &sqlparser::ast::Ident| {
                s.projection.iter().find_map(|item| match item {
                    SelectItem::ExprWithAlias { expr, alias }
                        if ident_value(alias) == ident_value(id) =>
                    {
                        Some(expr)
                    }
                    _ => None,
                })
            };
            for e in exprs.iter_mut() {
                let target = match &e.expr {
                    Expr::Identifier(id) => aliased(id),
                    Expr::CompoundIdentifier(_) | Expr::Value(_) => None,
                    other => Some(other),
                };
                let computed = target.is_some_and(|t| {
                    !matches!(t, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                });
                if computed
                    && target
                        .and_then(|t| infer_expr(t, &scope))
                        .and_then(|c| c.ty)
                        == Some(PgType::Jsonb)
                {
                    let x = std::mem::replace(&mut e.expr, Expr::value(Value::Null));
                    e.expr =
                        crate::ast::collated(crate::ast::text_affinity(x), crate::JSONB_COLLATION);
                }
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
        // An INSERT's VALUES take the target columns' types (rewrite/dml.rs), not a
        // type of their own.
        source_values: matches!(stmt, Statement::Insert(_)),
    });
}

struct FixDates<'a, 'b> {
    scope: &'a Scope<'b>,
    catalog: &'a Catalog,
    // Inside a subquery: date_query has fixed it with its own tables in scope.
    depth: usize,
    // The next top-level query is an INSERT's source: its VALUES are left untyped.
    source_values: bool,
}

impl sqlparser::ast::VisitorMut for FixDates<'_, '_> {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if self.depth == 0 {
            let source = std::mem::take(&mut self.source_values);
            if let SetExpr::Values(v) = q.body.as_mut() {
                values_rows(v, self.catalog, !source);
                self.depth += 1;
                return ControlFlow::Continue(());
            }
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
                    source_values: false,
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
            SetExpr::Values(v) => {
                values_rows(v, catalog, true);
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
            catalog: Some(catalog),
        };
        let _ = sqlparser::ast::VisitMut::visit(
            order,
            &mut FixDates {
                scope: &scope,
                catalog,
                depth: 0,
                source_values: false,
            },
        );
    }
}

/// `trim([both|leading|trailing] chars FROM b)` and `btrim/ltrim/rtrim(b, chars)` of a
/// bytea: `pg_bytea_trim(side, b, chars)` (SQLite's trim works on characters).
fn bytea_trim(e: &mut Expr, scope: &Scope) -> Option<Expr> {
    let is_bytea = |x: &Expr| infer_expr(x, scope).and_then(|c| c.ty) == Some(PgType::Bytea);
    let side = |s: &str| Expr::value(Value::SingleQuotedString(s.into()));
    match e {
        Expr::Trim {
            expr,
            trim_where,
            trim_what: Some(what),
            trim_characters: None,
        } if is_bytea(expr) => {
            let s = match trim_where {
                Some(sqlparser::ast::TrimWhereField::Leading) => "leading",
                Some(sqlparser::ast::TrimWhereField::Trailing) => "trailing",
                _ => "both",
            };
            Some(call(
                "pg_bytea_trim",
                vec![side(s), (**expr).clone(), (**what).clone()],
            ))
        }
        Expr::Function(f) => {
            let s = match crate::ast::function_name(f).as_str() {
                "btrim" => "both",
                "ltrim" => "leading",
                "rtrim" => "trailing",
                _ => return None,
            };
            let args = crate::ast::function_args(f);
            match args.as_slice() {
                [b, set] if is_bytea(b) => Some(call(
                    "pg_bytea_trim",
                    vec![side(s), (*b).clone(), (*set).clone()],
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Rewrites that depend on an operand's type: date arithmetic, `boolean::text` (PostgreSQL
/// prints `true`, SQLite's 1 would print `1`) and `numeric::integer` (PostgreSQL rounds
/// half away from zero, the coercion of a real rounds half to even).
fn fix_typed_expr(e: &mut Expr, scope: &Scope) {
    if let Some(trim) = bytea_trim(e, scope) {
        *e = trim;
        return;
    }
    if numeric_equality(e, scope) {
        return;
    }
    if let Expr::Cast { expr: inner, .. } = e {
        let source = infer_expr(inner, scope).and_then(|c| c.ty);
        typed_cast(e, source);
        return;
    }
    if let Expr::Interval(iv) = e {
        if let Some(lit) = datetime::interval_literal(iv) {
            *e = lit;
        }
        return;
    }
    fix_typed_rest(e, scope);
}

/// A cast `e` (`x::t`) whose operand is of type `source`, rewritten where SQLite's value
/// of that type would not convert as PostgreSQL's does.
pub(crate) fn typed_cast(e: &mut Expr, source: Option<PgType>) {
    if let Expr::Cast {
        expr: inner,
        data_type,
        ..
    } = e
    {
        let Some(target) = PgType::parse_sql_name(&data_type.to_string()) else {
            return;
        };
        match (source, target.ty) {
            (Some(PgType::Bool), t) if t.is_string() => {
                let b = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
                **inner = crate::ast::bool_case(
                    b,
                    Expr::value(Value::SingleQuotedString("true".into())),
                    Expr::value(Value::SingleQuotedString("false".into())),
                );
            }
            (Some(PgType::Numeric), t) if t.is_integer() => {
                **inner = numeric::to_integer(inner, t);
            }
            (Some(source), t) => {
                if let Some(c) = datetime::cast_from(inner, source, t) {
                    *e = c;
                }
            }
            _ => {}
        }
    }
}

fn fix_typed_rest(e: &mut Expr, scope: &Scope) {
    if let Expr::Extract {
        field, expr: inner, ..
    } = e
    {
        let t = infer_expr(inner, scope).and_then(|c| c.ty);
        if let Some(x) = datetime::extract(field, inner, t) {
            *e = x;
        }
        return;
    }
    if let Expr::CompoundFieldAccess { root, .. } = e {
        let t = infer_expr(root, scope).and_then(|c| c.ty);
        if let Some(x) = crate::json::subscript(e, t) {
            *e = x;
        }
        return;
    }
    if let Expr::AtTimeZone {
        timestamp,
        time_zone,
    } = e
    {
        let t = infer_expr(timestamp, scope).and_then(|c| c.ty);
        let z = infer_expr(time_zone, scope).and_then(|c| c.ty);
        if let Some(x) = datetime::at_time_zone(timestamp, time_zone, t, z) {
            *e = x;
        }
        return;
    }
    // `x IN (…)`, `x BETWEEN …` on a numeric expression: compared by the numeric
    // collation (a column has it already).
    if let Expr::InList { .. } | Expr::InSubquery { .. } | Expr::Between { .. } = e {
        // An integer among numerics: both sides meet as numerics.
        let others_numeric = match e {
            Expr::InList { list, .. } => list
                .iter()
                .any(|x| infer_expr(x, scope).and_then(|c| c.ty) == Some(PgType::Numeric)),
            Expr::InSubquery { subquery, .. } => {
                scope.subquery_column(subquery).and_then(|c| c.ty) == Some(PgType::Numeric)
            }
            _ => false,
        };
        let (Expr::InList { expr: inner, .. }
        | Expr::InSubquery { expr: inner, .. }
        | Expr::Between { expr: inner, .. }) = e
        else {
            return;
        };
        if others_numeric
            && infer_expr(inner, scope)
                .and_then(|c| c.ty)
                .is_some_and(PgType::is_integer)
        {
            let x = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
            **inner = numeric::as_compared_numeric(x);
            return;
        }
        if !matches!(
            inner.as_ref(),
            Expr::Identifier(_) | Expr::CompoundIdentifier(_)
        ) && !numeric::is_marked(inner)
            && infer_expr(inner, scope).and_then(|c| c.ty) == Some(PgType::Numeric)
        {
            let x = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
            **inner = numeric::mark(x);
        }
        return;
    }
    if let Expr::UnaryOp { op, expr: inner } = e {
        let t = infer_expr(inner, scope).and_then(|c| c.ty);
        if let Some(n) = numeric::unary(op, inner, t).or_else(|| datetime::unary(op, inner, t)) {
            *e = n;
            return;
        }
        // `-x` of an integer expression overflows at the type's minimum (22003), where
        // SQLite would widen. A literal keeps its own sign (`-2147483648` is an int4).
        let literal = matches!(inner.as_ref(), Expr::Value(_));
        if let (sqlparser::ast::UnaryOperator::Minus, Some(ty), false) = (op, t, literal) {
            let name = match ty {
                PgType::Int2 => Some("pg_int2"),
                PgType::Int4 => Some("pg_int4"),
                PgType::Int8 => Some("pg_int8"),
                _ => None,
            };
            if let Some(name) = name {
                let mut zero = Expr::value(Value::Number("0".into(), false));
                *e = crate::ast::op_call(name, "-", &mut zero, inner);
            }
        }
        return;
    }
    if let Expr::Ceil { expr: inner, .. } | Expr::Floor { expr: inner, .. } = e {
        if infer_expr(inner, scope).and_then(|c| c.ty) == Some(PgType::Numeric) {
            let name = if matches!(e, Expr::Ceil { .. }) {
                "ceil"
            } else {
                "floor"
            };
            if let Some(n) = numeric::ceil_floor(name, e) {
                *e = n;
            }
        }
        return;
    }
    if let Expr::Function(f) = e {
        // pg_typeof(x): the type translation infers, as PostgreSQL names it (a quoted
        // literal alone is `unknown`). Where nothing is inferred, the call stays and the
        // server refuses it.
        if crate::ast::function_name(f) == "pg_typeof" {
            if let [arg] = crate::ast::function_args(f).as_slice() {
                let name = match arg {
                    Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)) => {
                        Some("unknown")
                    }
                    _ => infer_expr(arg, scope).and_then(|c| c.ty).map(PgType::name),
                };
                if let Some(n) = name {
                    let n = Expr::value(Value::SingleQuotedString(n.into()));
                    // An aggregate or window call inside must stay: it makes the query
                    // return one row (or a row per window), whatever its type.
                    *e = if aggregates_or_windows(arg) {
                        Expr::Case {
                            case_token:
                                sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                            end_token:
                                sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                            operand: None,
                            conditions: vec![sqlparser::ast::CaseWhen {
                                condition: Expr::IsNull(Box::new((*arg).clone())),
                                result: n.clone(),
                            }],
                            else_result: Some(Box::new(n)),
                        }
                    } else {
                        n
                    };
                }
            }
            return;
        }
        if let (sqlparser::ast::FunctionArguments::Subquery(q), "array") =
            (&f.args, crate::ast::function_name(f).as_str())
        {
            // What the rewrite needs to build the array: whether each row is an array to
            // embed (one dimension more) or a scalar; a type not inferred stays `array`
            // and is refused there.
            let name = match scope.subquery_column(q).and_then(|c| c.ty) {
                Some(t) if t.element().is_some() => Some("__mdbc_array_nested"),
                Some(t) if t.array().is_some() => Some("__mdbc_array_scalar"),
                _ => None,
            };
            if let Some(name) = name {
                f.name = sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(name)]);
            }
            return;
        }
        let types: Vec<Option<PgType>> = crate::ast::function_args(f)
            .into_iter()
            .map(|a| infer_expr(a, scope).and_then(|c| c.ty))
            .collect();
        if let Expr::Function(f) = e {
            if let Some(j) = crate::json::function(f, &types) {
                *e = j;
                return;
            }
            crate::json::builder_args(f, &types);
        }
        if let Some(n) = datetime::function(e, &types)
            .or_else(|| numeric::function(e, &types))
            .or_else(|| float_aggregate(e, &types))
        {
            *e = n;
        }
        return;
    }
    let Expr::BinaryOp { left, op, right } = e else {
        return;
    };
    let mut l = infer_expr(left, scope).and_then(|c| c.ty);
    let mut r = infer_expr(right, scope).and_then(|c| c.ty);
    if crate::ast::is_comparison(op) {
        resolve_literal(left, &mut l, r);
        resolve_literal(right, &mut r, l);
    }
    if let Some(d) = datetime::binary(left, op, right, l, r) {
        *e = d;
        return;
    }
    if let Some(checked) = checked_integer_op(left, op, right, l, r) {
        *e = checked;
        return;
    }
    if let Some(checked) = checked_float_op(left, op, right, l, r) {
        *e = checked;
        return;
    }
    if let Some(j) = crate::json::binary(left, op, right, l, r) {
        *e = j;
        return;
    }
    if let Some(n) = numeric::binary(left, op, right, l, r) {
        *e = n;
        return;
    }
    if !matches!(op, BinaryOperator::Plus | BinaryOperator::Minus) {
        return;
    }
    // What datetime.rs could not type (an operand of unknown type, a parameter): refused
    // rather than left to SQLite, which would add the texts' leading numbers.
    let datetime = |t: Option<PgType>| {
        matches!(
            t,
            Some(
                PgType::Date
                    | PgType::Timestamp
                    | PgType::Timestamptz
                    | PgType::Time
                    | PgType::Interval
            )
        )
    };
    if datetime(l) || datetime(r) {
        let name = |t: Option<PgType>| t.map(PgType::name).unwrap_or("unknown");
        *e = call(
            "pg_unsupported",
            vec![Expr::value(Value::SingleQuotedString(format!(
                "{} {op} {} (date/time arithmetic with an operand of unknown type)",
                name(l),
                name(r)
            )))],
        );
    }
}

/// A VALUES list's columns have one type, resolved over all rows (`('0'::numeric), ('1'),
/// ('inf')` is numeric throughout): the quoted literals of other rows are cast to it, as
/// PostgreSQL reads them, rather than left as text.
fn values_rows(v: &mut sqlparser::ast::Values, catalog: &Catalog, typed: bool) {
    // The rows' expressions, with no table in scope.
    let scope = Scope::empty();
    for row in &mut v.rows {
        let _ = sqlparser::ast::VisitMut::visit(
            &mut row.content,
            &mut FixDates {
                scope: &scope,
                catalog,
                depth: 0,
                source_values: false,
            },
        );
    }
    if typed {
        type_values_rows(v);
    }
}

fn type_values_rows(v: &mut sqlparser::ast::Values) {
    let types = {
        let rows: Vec<&[Expr]> = v.rows.iter().map(|r| r.content.as_slice()).collect();
        crate::infer::values_columns(&rows)
    };
    for row in &mut v.rows {
        for (cell, t) in row.content.iter_mut().zip(&types) {
            let mut ty = None;
            resolve_literal(cell, &mut ty, t.ty);
            // A numeric column's values compare as numerics (DISTINCT, GROUP BY, set
            // operations over the VALUES): `1.0` and `1.00` are one value.
            let null = matches!(cell, Expr::Value(v) if v.value == Value::Null);
            if t.ty == Some(PgType::Numeric) && !null {
                let x = std::mem::replace(cell, Expr::value(Value::Null));
                *cell = numeric::as_compared_numeric(x);
            }
        }
    }
}

/// A quoted literal compared with a typed operand is a value of that type, as PostgreSQL
/// resolves an unknown-type literal: `position('4' in s) = '4'` compares integers, `b =
/// 't'` booleans, `d < '1999-1-8'` dates. SQLite would compare the literal as text
/// wherever the other side has no column affinity (an expression, a function), so the
/// literal gets an explicit cast (and a bad literal 22P02, as in PostgreSQL).
fn resolve_literal(lit: &mut Expr, lit_ty: &mut Option<PgType>, other: Option<PgType>) {
    let Expr::Value(v) = lit else {
        return;
    };
    if !matches!(v.value, Value::SingleQuotedString(_)) {
        return;
    }
    let Some(t) = other else {
        return;
    };
    let resolvable = t.is_integer()
        || matches!(
            t,
            PgType::Float4
                | PgType::Float8
                | PgType::Numeric
                | PgType::Bool
                | PgType::Date
                | PgType::Time
                | PgType::Timestamp
                | PgType::Timestamptz
                | PgType::Interval
                | PgType::Uuid
                | PgType::Jsonb
        )
        || t.element().is_some() && !matches!(t, PgType::Int2Vector | PgType::OidVector);
    if !resolvable {
        return;
    }
    let value = std::mem::replace(lit, Expr::value(Value::Null));
    *lit = Expr::Cast {
        kind: sqlparser::ast::CastKind::DoubleColon,
        expr: Box::new(value),
        data_type: sqlparser::ast::DataType::Custom(
            sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(t.name())]),
            vec![],
        ),
        format: None,
    };
    *lit_ty = Some(t);
}

/// Integer `+ - * / %` on integer operands, as PostgreSQL computes it: in the operands'
/// type (the wider of the two; `int2 + int2` is `int2`), an overflow an error (22003)
/// rather than SQLite's silent switch to floating point, and division by zero an error
/// (22012) rather than NULL. A `$n` parameter takes the other operand's type, as
/// PostgreSQL infers it. Becomes `pg_int2/4/8(op, a, b)`, registered by the server.
fn checked_integer_op(
    left: &mut Box<Expr>,
    op: &BinaryOperator,
    right: &mut Box<Expr>,
    l: Option<PgType>,
    r: Option<PgType>,
) -> Option<Expr> {
    let symbol = crate::ast::arith_symbol(op)?;
    let is_param =
        |e: &Expr| matches!(e, Expr::Value(v) if matches!(v.value, Value::Placeholder(_)));
    let (l, r) = match (l, r) {
        (Some(l), Some(r)) => (l, r),
        (Some(l), None) if is_param(right) => (l, l),
        (None, Some(r)) if is_param(left) => (r, r),
        _ => return None,
    };
    let rank = |t: PgType| match t {
        PgType::Int2 => Some(2),
        PgType::Int4 => Some(4),
        PgType::Int8 => Some(8),
        _ => None,
    };
    let name = match rank(l)?.max(rank(r)?) {
        2 => "pg_int2",
        4 => "pg_int4",
        _ => "pg_int8",
    };
    Some(crate::ast::op_call(name, symbol, left, right))
}

/// `+ - * /` with a `real` or `double precision` operand, as PostgreSQL computes them: an
/// infinite result from finite operands is an overflow (22003), a zero from non-zero
/// factors an underflow (22003), division by zero 22012, and NaN a value (SQLite would turn
/// it into NULL). Becomes `pg_float4/8(op, a, b)`, registered by the server.
fn checked_float_op(
    left: &mut Box<Expr>,
    op: &BinaryOperator,
    right: &mut Box<Expr>,
    l: Option<PgType>,
    r: Option<PgType>,
) -> Option<Expr> {
    // PostgreSQL has no `%` on floats.
    let symbol = crate::ast::arith_symbol(op).filter(|s| *s != "%")?;
    let numeric = |t: PgType| {
        t.is_integer() || matches!(t, PgType::Numeric | PgType::Float4 | PgType::Float8)
    };
    // A quoted literal beside a float is read as that float type (PostgreSQL's unknown).
    let float = |t: Option<PgType>| matches!(t, Some(PgType::Float4 | PgType::Float8));
    let (l, r) = match (l, r) {
        (Some(l), _) if float(Some(l)) && crate::ast::is_quoted(right) => (l, l),
        (_, Some(r)) if float(Some(r)) && crate::ast::is_quoted(left) => (r, r),
        (l, r) => (l?, r?),
    };
    if !numeric(l)
        || !numeric(r)
        || !matches!(l, PgType::Float4 | PgType::Float8)
            && !matches!(r, PgType::Float4 | PgType::Float8)
    {
        return None;
    }
    let name = if l == PgType::Float4 && r == PgType::Float4 {
        "pg_float4"
    } else {
        "pg_float8"
    };
    Some(crate::ast::op_call(name, symbol, left, right))
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

/// Whether `e` calls an aggregate or a window function (outside any subquery).
fn aggregates_or_windows(e: &Expr) -> bool {
    struct Find(usize);
    impl sqlparser::ast::Visitor for Find {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.0 += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.0 -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Function(f)
                    if self.0 == 0
                        && (f.over.is_some() || {
                            let name = crate::ast::function_name(f);
                            // Also the aggregates translation already put in their place.
                            crate::introspect::empty::AGGREGATES.contains(&name.as_str())
                                || matches!(
                                    name.as_str(),
                                    "pg_numeric_sum"
                                        | "pg_numeric_avg"
                                        | "pg_interval_sum"
                                        | "pg_interval_avg"
                                        | "pg_array_agg_arrays"
                                        | "pg_float4_sum"
                                        | "pg_float8_sum"
                                        | "pg_float8_avg"
                                )
                        }) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    sqlparser::ast::Visit::visit(e, &mut Find(0)).is_break()
}

/// `sum`/`avg` of float4 and float8: PostgreSQL's plain running sum (in single precision
/// for `sum(float4)`), not SQLite's compensated one (mdbc-server's store/float_agg.rs);
/// `max`/`min` of json or jsonb, which PostgreSQL does not have.
fn float_aggregate(e: &mut Expr, types: &[Option<PgType>]) -> Option<Expr> {
    let Expr::Function(f) = e else {
        return None;
    };
    let called = crate::ast::function_name(f);
    let name = match (called.as_str(), types.first().copied().flatten()) {
        // jsonb has an order but PostgreSQL defines no max/min for it (nor for json).
        ("max" | "min", Some(t @ (PgType::Jsonb | PgType::Json))) => {
            return Some(call(
                "pg_error",
                vec![
                    Expr::value(Value::SingleQuotedString("42883".into())),
                    Expr::value(Value::SingleQuotedString(format!(
                        "function {called}({}) does not exist",
                        t.name()
                    ))),
                ],
            ))
        }
        ("sum", Some(PgType::Float4)) => "pg_float4_sum",
        ("sum", Some(PgType::Float8)) => "pg_float8_sum",
        ("avg", Some(PgType::Float4 | PgType::Float8)) => "pg_float8_avg",
        _ => return None,
    };
    let mut f = f.clone();
    f.name = sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(name)]);
    Some(Expr::Function(f))
}

/// Equality tests that are not a plain `=` but compare numerics all the same: `CASE x WHEN
/// v`, `IS [NOT] DISTINCT FROM`, `nullif(a, b)`, `x = ANY (ARRAY[…])`. SQLite would compare
/// a numeric's text with an integer (or another numeric's text) as they are, so `1.0` and
/// `1` would differ; these become comparisons [`numeric::compare_as_numeric`] makes exact.
/// Returns whether `e` was one (and is done).
fn numeric_equality(e: &mut Expr, scope: &Scope) -> bool {
    let ty = |x: &Expr| infer_expr(x, scope).and_then(|c| c.ty);
    let numeric = |t: Option<PgType>| t == Some(PgType::Numeric);
    match e {
        Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
            let (l, r) = (ty(a), ty(b));
            numeric::compare_as_numeric(a, b, l, r)
        }
        Expr::Case {
            operand: Some(operand),
            conditions,
            ..
        } => {
            let t = ty(operand);
            if !numeric(t) && !conditions.iter().any(|c| numeric(ty(&c.condition))) {
                return false;
            }
            // `CASE x WHEN v …` is `CASE WHEN x = v …` (x is evaluated once per test).
            let operand = std::mem::replace(operand.as_mut(), Expr::value(Value::Null));
            for c in conditions.iter_mut() {
                let mut left = operand.clone();
                let mut right = std::mem::replace(&mut c.condition, Expr::value(Value::Null));
                let r = ty(&right);
                numeric::compare_as_numeric(&mut left, &mut right, t, r);
                c.condition = Expr::BinaryOp {
                    left: Box::new(left),
                    op: BinaryOperator::Eq,
                    right: Box::new(right),
                };
            }
            if let Expr::Case { operand, .. } = e {
                *operand = None;
            }
            true
        }
        Expr::Function(f) if crate::ast::function_name(f) == "nullif" => {
            let args = crate::ast::function_args(f);
            let [a, b] = args.as_slice() else {
                return false;
            };
            let (l, r) = (ty(a), ty(b));
            if !numeric(l) && !numeric(r) {
                return false;
            }
            let (mut left, mut right) = ((*a).clone(), (*b).clone());
            if !numeric::compare_as_numeric(&mut left, &mut right, l, r) {
                return false;
            }
            // nullif(a, b) is CASE WHEN a = b THEN NULL ELSE a END.
            let result = (*a).clone();
            *e = Expr::Case {
                case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                operand: None,
                conditions: vec![sqlparser::ast::CaseWhen {
                    condition: Expr::BinaryOp {
                        left: Box::new(left),
                        op: BinaryOperator::Eq,
                        right: Box::new(right),
                    },
                    result: Expr::value(Value::Null),
                }],
                else_result: Some(Box::new(result)),
            };
            true
        }
        Expr::AnyOp {
            left: _,
            compare_op: BinaryOperator::Eq,
            right,
            ..
        }
        | Expr::AllOp {
            left: _,
            compare_op: BinaryOperator::NotEq,
            right,
        } => {
            // `x = ANY (ARRAY[…])` is `x IN (…)`, `x <> ALL (…)` is `x NOT IN (…)`, whose
            // numeric rules follow.
            let Expr::Array(a) = right.as_ref() else {
                return false;
            };
            let list = a.elem.clone();
            let negated = matches!(e, Expr::AllOp { .. });
            let (Expr::AnyOp { left, .. } | Expr::AllOp { left, .. }) = e else {
                return false;
            };
            let inner = std::mem::replace(left.as_mut(), Expr::value(Value::Null));
            *e = Expr::InList {
                expr: Box::new(inner),
                list,
                negated,
            };
            fix_typed_expr(e, scope);
            true
        }
        _ => false,
    }
}
