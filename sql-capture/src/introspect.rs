//! What introspection queries (psql's `\d`, ORMs' reflection, drivers' type lookups) need
//! beyond plain SQL: the `reg*` casts, the `pg_get_*def` deparsers, a few catalog functions,
//! and the rule that a query over a catalog mdbc keeps empty has no rows.
//!
//! The catalogs themselves are views the server creates (mdbc-server's `pg_catalog.rs`);
//! what they cannot express — looking an object up by name inside an expression, or
//! PostgreSQL syntax SQLite lacks in a query that cannot return anything — is translated
//! here, on the syntax tree.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, Expr, Function, FunctionArguments, Ident, JoinConstraint, JoinOperator,
    Query, Select, SelectItem, SetExpr, SetOperator, TableFactor, Value, Visit, Visitor,
    VisitorMut,
};

use crate::catalog::Catalog;
use crate::error::Result;
use crate::rewrite::{function_args, ident_value, object_name_to_table, parse_query};
use crate::types::PgType;

/// If `q` provably returns no rows because it inner-joins a catalog mdbc keeps empty
/// (policies, triggers, publications, …), SQLite text returning no rows under the same
/// column names. Such queries are where clients use syntax SQLite has no counterpart for
/// (`WITH ORDINALITY`, array subscripts, `= ANY(column)`), so they are not run at all.
pub(crate) fn empty_result(q: &Query, catalog: &Catalog) -> Option<String> {
    if q.with.is_some() || !query_empty(q, catalog) {
        return None;
    }
    let names = result_names(&q.body)?;
    let cols: Vec<String> = names
        .iter()
        .map(|n| format!("NULL AS \"{}\"", n.replace('"', "\"\"")))
        .collect();
    Some(format!("SELECT {} WHERE 0", cols.join(", ")))
}

fn query_empty(q: &Query, catalog: &Catalog) -> bool {
    set_expr_empty(&q.body, catalog)
}

fn set_expr_empty(body: &SetExpr, catalog: &Catalog) -> bool {
    match body {
        SetExpr::Select(s) => select_empty(s, catalog),
        SetExpr::Query(q) => query_empty(q, catalog),
        SetExpr::SetOperation {
            op, left, right, ..
        } => match op {
            SetOperator::Union => set_expr_empty(left, catalog) && set_expr_empty(right, catalog),
            SetOperator::Intersect => {
                set_expr_empty(left, catalog) || set_expr_empty(right, catalog)
            }
            SetOperator::Except | SetOperator::Minus => set_expr_empty(left, catalog),
        },
        _ => false,
    }
}

fn select_empty(s: &Select, catalog: &Catalog) -> bool {
    // `SELECT count(*) FROM empty` has a row.
    if s.group_by_is_empty() && has_aggregate(s) {
        return false;
    }
    s.from.iter().any(|twj| {
        let outer_after = twj.joins.iter().any(|j| {
            matches!(
                j.join_operator,
                JoinOperator::Right(_)
                    | JoinOperator::RightOuter(_)
                    | JoinOperator::FullOuter(_)
                    | JoinOperator::RightSemi(_)
                    | JoinOperator::RightAnti(_)
            )
        });
        // A RIGHT or FULL join anywhere keeps rows from its other side.
        !outer_after
            && (factor_empty(&twj.relation, catalog)
                || twj.joins.iter().any(|j| {
                    matches!(
                        j.join_operator,
                        JoinOperator::Join(_)
                            | JoinOperator::Inner(_)
                            | JoinOperator::CrossJoin(_)
                            | JoinOperator::CrossApply
                    ) && factor_empty(&j.relation, catalog)
                }))
    })
}

fn factor_empty(tf: &TableFactor, catalog: &Catalog) -> bool {
    match tf {
        TableFactor::Table {
            name, args: None, ..
        } => catalog.always_empty(&object_name_to_table(name)),
        TableFactor::Derived { subquery, .. } => query_empty(subquery, catalog),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => factor_empty(&table_with_joins.relation, catalog) && table_with_joins.joins.is_empty(),
        _ => false,
    }
}

trait GroupByEmpty {
    fn group_by_is_empty(&self) -> bool;
}

impl GroupByEmpty for Select {
    fn group_by_is_empty(&self) -> bool {
        match &self.group_by {
            sqlparser::ast::GroupByExpr::Expressions(e, _) => e.is_empty(),
            sqlparser::ast::GroupByExpr::All(_) => false,
        }
    }
}

fn has_aggregate(s: &Select) -> bool {
    const AGGREGATES: &[&str] = &[
        "count",
        "sum",
        "min",
        "max",
        "avg",
        "array_agg",
        "string_agg",
        "json_agg",
        "jsonb_agg",
        "json_object_agg",
        "bool_and",
        "bool_or",
        "every",
        "group_concat",
        "stddev",
        "stddev_pop",
        "stddev_samp",
        "variance",
        "var_pop",
        "var_samp",
        "bit_and",
        "bit_or",
        "bit_xor",
        "xmlagg",
        "mode",
        "percentile_cont",
        "percentile_disc",
        "corr",
        "covar_pop",
        "covar_samp",
        "regr_count",
        "any_value",
    ];
    // Aggregates inside a subquery of the select list do not make this SELECT one.
    struct Find {
        depth: usize,
    }
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Function(f)
                    if self.depth == 0
                        && (AGGREGATES.contains(&function_base_name(f).as_str())
                            || f.filter.is_some()
                            || !f.within_group.is_empty()) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    let found = s.projection.visit(&mut Find { depth: 0 });
    found.is_break() || s.having.is_some()
}

fn function_base_name(f: &Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default()
}

/// PostgreSQL's names for a query's result columns; `None` when a wildcard hides them.
pub(crate) fn result_names(body: &SetExpr) -> Option<Vec<String>> {
    match body {
        SetExpr::Select(s) => s
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::ExprWithAlias { alias, .. } => Some(ident_value(alias)),
                SelectItem::UnnamedExpr(e) => Some(expr_name(e)),
                _ => None,
            })
            .collect(),
        SetExpr::SetOperation { left, .. } => result_names(left),
        SetExpr::Query(q) => result_names(&q.body),
        _ => None,
    }
}

pub(crate) fn expr_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => ident_value(i),
        Expr::CompoundIdentifier(p) => p.last().map(ident_value).unwrap_or_default(),
        Expr::Nested(inner) => expr_name(inner),
        Expr::Function(f) => function_base_name(f),
        Expr::Cast { expr, .. } => match expr.as_ref() {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Function(_) => {
                expr_name(expr)
            }
            _ => "?column?".into(),
        },
        Expr::Case { .. } => "case".into(),
        _ => "?column?".into(),
    }
}

/// `CROSS JOIN LATERAL (SELECT expr, …) AS o(a, …)` with no FROM in the subquery (pgbench's
/// partition check computes one value per row this way): SQLite has no LATERAL, so `o.a`
/// becomes `expr` wherever the query names it, and the join goes.
pub(crate) fn inline_lateral(q: &mut Query) {
    let SetExpr::Select(sel) = q.body.as_mut() else {
        return;
    };
    let mut values: Vec<(String, String, Expr)> = Vec::new();
    for twj in &mut sel.from {
        twj.joins.retain(|j| {
            let TableFactor::Derived {
                lateral: true,
                subquery,
                alias: Some(alias),
                ..
            } = &j.relation
            else {
                return true;
            };
            let plain_join = matches!(
                &j.join_operator,
                JoinOperator::CrossJoin(JoinConstraint::None)
                    | JoinOperator::Inner(JoinConstraint::None)
                    | JoinOperator::Join(JoinConstraint::None)
            );
            let SetExpr::Select(inner) = subquery.body.as_ref() else {
                return true;
            };
            if !plain_join
                || !inner.from.is_empty()
                || inner.selection.is_some()
                || inner.having.is_some()
                || inner.distinct.is_some()
                || !inner.group_by_is_empty()
                // An aggregate would make the outer query one; a window needs rows.
                || has_aggregate(inner)
                || inner.projection.iter().any(|item| {
                    let mut window = false;
                    let _ = visit_expressions(item, |e| {
                        if matches!(e, Expr::Function(f) if f.over.is_some()) {
                            window = true;
                        }
                        ControlFlow::<()>::Continue(())
                    });
                    window
                })
                || subquery.limit_clause.is_some()
            {
                return true;
            }
            let table = ident_value(&alias.name);
            let mut found = Vec::new();
            for (i, item) in inner.projection.iter().enumerate() {
                let (expr, own) = match item {
                    SelectItem::UnnamedExpr(e) => (e, expr_name(e)),
                    SelectItem::ExprWithAlias { expr, alias } => (expr, ident_value(alias)),
                    _ => return true,
                };
                let name = alias
                    .columns
                    .get(i)
                    .map(|c| ident_value(&c.name))
                    .unwrap_or(own);
                found.push((table.clone(), name, expr.clone()));
            }
            values.extend(found);
            false
        });
    }
    if values.is_empty() {
        return;
    }
    struct Substitute<'a>(&'a [(String, String, Expr)]);
    impl VisitorMut for Substitute<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = e {
                if let [t, c] = parts.as_slice() {
                    let (t, c) = (ident_value(t), ident_value(c));
                    if let Some((_, _, v)) = self.0.iter().find(|(a, n, _)| *a == t && *n == c) {
                        *e = Expr::Nested(Box::new(v.clone()));
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    // The result column keeps the name it had (`n`, not the expression).
    for item in &mut sel.projection {
        if let SelectItem::UnnamedExpr(e @ Expr::CompoundIdentifier(_)) = item {
            let name = expr_name(e);
            *item = SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', name),
            };
        }
    }
    let _ = sqlparser::ast::VisitMut::visit(sel.as_mut(), &mut Substitute(&values));
    if let Some(order) = &mut q.order_by {
        let _ = sqlparser::ast::VisitMut::visit(order, &mut Substitute(&values));
    }
}

/// `unnest(a)` and `generate_subscripts(a, 1)` as select-list items: PostgreSQL runs
/// set-returning functions in the select list (several in step); SQLite joins a table
/// function instead. Arrays are JSON in SQLite (see mdbc-server's arrays.rs), so the first
/// array becomes `json_each(a) AS __u0` in FROM, any other one is joined to it by position,
/// and the items read `value` (the element) or `key + 1` (its subscript).
pub(crate) fn set_returning_select_list(q: &mut Query) -> Result<()> {
    let SetExpr::Select(sel) = q.body.as_mut() else {
        return Ok(());
    };
    let mut arrays: Vec<Expr> = Vec::new();
    for item in &mut sel.projection {
        let (e, unnamed) = match item {
            SelectItem::UnnamedExpr(e) => (e, true),
            SelectItem::ExprWithAlias { expr, .. } => (expr, false),
            _ => continue,
        };
        let Expr::Function(f) = &*e else { continue };
        let name = function_base_name(f);
        if name != "unnest" && name != "generate_subscripts" {
            continue;
        }
        let args = function_args(f);
        let Some(&array) = args.first() else { continue };
        let key = array.to_string();
        let n = match arrays.iter().position(|a| a.to_string() == key) {
            Some(n) => n,
            None => {
                arrays.push(array.clone());
                arrays.len() - 1
            }
        };
        let read = if name == "unnest" {
            format!("__u{n}.value")
        } else {
            format!("(__u{n}.key + 1)")
        };
        let replacement = crate::rewrite::parse_expr(&read)?;
        let new_item = if unnamed {
            SelectItem::ExprWithAlias {
                expr: replacement,
                alias: Ident::with_quote('"', name),
            }
        } else {
            *e = replacement;
            continue;
        };
        *item = new_item;
    }
    if arrays.is_empty() {
        return Ok(());
    }
    let mut from = String::from("SELECT 1 FROM json_each(__arg1) AS __u0");
    for n in 1..arrays.len() {
        from.push_str(&format!(
            " LEFT JOIN json_each(__arg{}) AS __u{n} ON __u{n}.key = __u0.key",
            n + 1
        ));
    }
    let mut template = parse_query(&from)?;
    fill(&mut template, &arrays);
    if let SetExpr::Select(t) = *template.body {
        sel.from.extend(t.from);
    }
    Ok(())
}

/// `x = ANY(a)` over an array that is not a literal: `x IN (SELECT value FROM
/// json_each(a))`.
pub(crate) fn any_of_array(left: Expr, array: Expr, negated: bool) -> Result<Expr> {
    let mut q = parse_query("SELECT value FROM json_each(__arg1)")?;
    fill(&mut q, &[array]);
    Ok(Expr::InSubquery {
        expr: Box::new(left),
        subquery: Box::new(q),
        negated,
    })
}

/// Replaces the identifiers `__arg1`, `__arg2`, … in `q` by `args`.
fn fill(q: &mut Query, args: &[Expr]) {
    struct Fill<'a>(&'a [Expr]);
    impl VisitorMut for Fill<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Identifier(id) = e {
                if let Some(n) = id.value.strip_prefix("__arg") {
                    if let Some(a) = n.parse::<usize>().ok().and_then(|n| self.0.get(n - 1)) {
                        *e = a.clone();
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = sqlparser::ast::VisitMut::visit(q, &mut Fill(args));
}

/// `template` with `$1`, `$2`, … (written as identifiers `__arg1`, …) replaced by `args`,
/// as a scalar subquery. Templates read their catalog through a derived table whose
/// columns are named `__…`, so that a client's unqualified column in an argument (`oid`)
/// still means the client's table, not the catalog the subquery reads.
fn subquery(template: &str, args: &[Expr]) -> Result<Expr> {
    let mut q = parse_query(template)?;
    fill(&mut q, args);
    Ok(Expr::Subquery(Box::new(q)))
}

fn text(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

fn string_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// A relation name as `regclass` input reads it: optionally schema-qualified (only
/// `public` and `pg_catalog` exist), each part folded to lower case unless quoted.
fn relation_name_input(s: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = s.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '.' if !quoted => {
                parts.push(if was_quoted {
                    cur.clone()
                } else {
                    cur.to_ascii_lowercase()
                });
                cur.clear();
                was_quoted = false;
            }
            c => cur.push(c),
        }
    }
    parts.push(if was_quoted {
        cur
    } else {
        cur.to_ascii_lowercase()
    });
    match parts.as_slice() {
        [name] => name.clone(),
        [schema, name] if schema == "public" || schema == "pg_catalog" => name.clone(),
        // Another schema: nothing there.
        _ => format!("{}\u{0}", s),
    }
}

/// `want` of the `catalog` row whose `key` equals `arg`.
fn lookup(catalog: &str, want: &str, key: &str, arg: Expr) -> Result<Expr> {
    subquery(
        &format!(
            "SELECT __v FROM (SELECT {want} AS __v, {key} AS __k FROM {catalog}) \
             WHERE __k = __arg1"
        ),
        &[arg],
    )
}

/// `expr::regclass`, `::regtype`, `::regnamespace`: a literal or parameter names an object
/// and becomes its oid; any other expression is an oid and becomes the object's name (what
/// a `reg*` value prints as). `None` for other types.
pub(crate) fn reg_cast(inner: &Expr, type_name: &str) -> Option<Result<Expr>> {
    let (catalog, name_col) = reg_kind(type_name)?;
    let arg = inner.clone();
    let oid = match inner {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.trim().parse::<u32>().ok(),
            Value::Number(n, _) => n.parse::<u32>().ok(),
            _ => None,
        },
        _ => {
            // An oid: print the name (a type as format_type spells it).
            return Some(if catalog == "pg_type" {
                subquery("SELECT format_type(__arg1, NULL)", &[arg])
            } else {
                lookup(catalog, name_col, "oid", arg)
            });
        }
    };
    Some(if let Some(oid) = oid {
        // A new literal, not the client's: a plan reused for this statement's shape with
        // a name in that place would take the name for an oid (literals.rs).
        // Nested, so that an enclosing reg* cast takes it for an oid, not a name.
        Ok(Expr::Nested(Box::new(Expr::value(Value::Number(
            oid.to_string(),
            false,
        )))))
    } else if catalog == "pg_type" {
        to_regtype(inner)
    } else if let (Some(s), "pg_class") = (string_literal(inner), catalog) {
        lookup(catalog, "oid", name_col, text(&relation_name_input(s)))
    } else if catalog == "pg_class" {
        // A parameter: a name, or an oid written as text.
        subquery(
            "SELECT __v FROM (SELECT oid AS __v, relname AS __k FROM pg_class) \
             WHERE __k = __arg1 OR CAST(__v AS TEXT) = __arg1",
            &[arg],
        )
    } else {
        // A new literal for a name, as for an oid above.
        let name = string_literal(inner).map(text).unwrap_or(arg);
        lookup(catalog, "oid", name_col, name)
    })
}

/// `'name'::regclass::text` prints the name back: the literal becomes an oid (inner cast)
/// that the outer one turns into a name again. Runs before the children are rewritten.
pub(crate) fn reg_to_text(expr: &mut Expr) {
    let Expr::Cast {
        expr: inner,
        data_type,
        ..
    } = expr
    else {
        return;
    };
    let outer = data_type.to_string().to_ascii_lowercase();
    if !matches!(
        outer.trim_start_matches("pg_catalog."),
        "text" | "varchar" | "name" | "character varying"
    ) {
        return;
    }
    // to_regclass('t')::text: the oid it finds, printed as the name.
    if let Expr::Function(f) = inner.as_ref() {
        let reg = match function_base_name(f).as_str() {
            "to_regclass" => "regclass",
            "to_regtype" => "regtype",
            "to_regnamespace" => "regnamespace",
            _ => "",
        };
        if !reg.is_empty() {
            let call = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
            **inner = Expr::Cast {
                kind: sqlparser::ast::CastKind::DoubleColon,
                expr: Box::new(call),
                data_type: sqlparser::ast::DataType::Custom(
                    sqlparser::ast::ObjectName::from(vec![Ident::new(reg)]),
                    vec![],
                ),
                format: None,
            };
            return;
        }
    }
    if let Expr::Cast {
        expr: literal,
        data_type: reg,
        kind,
        format,
    } = inner.as_mut()
    {
        let is_reg = reg_kind(&reg.to_string()).is_some();
        if is_reg && matches!(literal.as_ref(), Expr::Value(_)) {
            let lit = std::mem::replace(literal.as_mut(), Expr::value(Value::Null));
            **literal = Expr::Cast {
                kind: kind.clone(),
                expr: Box::new(lit),
                data_type: reg.clone(),
                format: format.clone(),
            };
        }
    }
}

/// A `reg*` value in the select list prints as the object's name, as PostgreSQL's output
/// function does; elsewhere (comparisons, joins) it stays an oid.
pub(crate) fn reg_in_select_list(q: &mut Query) {
    let SetExpr::Select(sel) = q.body.as_mut() else {
        return;
    };
    for item in &mut sel.projection {
        let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = item else {
            continue;
        };
        if let Expr::Cast { data_type, .. } = e {
            if reg_kind(&data_type.to_string()).is_some() {
                let inner = std::mem::replace(e, Expr::value(Value::Null));
                *e = Expr::Cast {
                    kind: sqlparser::ast::CastKind::DoubleColon,
                    expr: Box::new(inner),
                    data_type: sqlparser::ast::DataType::Text,
                    format: None,
                };
            }
        }
    }
}

fn reg_kind(type_name: &str) -> Option<(&'static str, &'static str)> {
    let ty = type_name.trim().to_ascii_lowercase();
    Some(match ty.trim_start_matches("pg_catalog.") {
        "regclass" => ("pg_class", "relname"),
        "regtype" => ("pg_type", "typname"),
        "regnamespace" => ("pg_namespace", "nspname"),
        _ => return None,
    })
}

fn to_regtype(arg: &Expr) -> Result<Expr> {
    // A literal type name is resolved here, aliases included (`int`, `varchar(20)`).
    if let Some(s) = string_literal(arg) {
        if let Some(spec) = PgType::parse_sql_name(s) {
            // Nested: an oid now, no longer a name to look up (`'int'::regtype::text`).
            return Ok(Expr::Nested(Box::new(Expr::value(Value::Number(
                spec.ty.oid().to_string(),
                false,
            )))));
        }
    }
    // A literal name becomes a new literal: plans are reused by shape (literals.rs).
    let arg = string_literal(arg).map(text).unwrap_or_else(|| arg.clone());
    subquery(
        "SELECT __v FROM (SELECT oid AS __v, typname AS __k FROM pg_type) \
         WHERE __k = __arg1 OR format_type(__v, NULL) = __arg1",
        &[arg],
    )
}

/// Catalog functions that need the catalog views (so are not SQL functions the server
/// registers): the replacement expression, or `None` when `name` is none of them.
pub(crate) fn catalog_function(name: &str, f: &Function) -> Option<Result<Expr>> {
    let args: Vec<Expr> = function_args(f).into_iter().cloned().collect();
    let first = args.first().cloned().unwrap_or(Expr::value(Value::Null));
    Some(match name {
        // The column-number form (second argument non-zero) names one column; only the
        // whole definition is kept.
        "pg_get_indexdef" => lookup("__mdbc_v_index", "indexdef", "indexrelid", first),
        "pg_get_constraintdef" => lookup("__mdbc_v_constraint", "condef", "oid", first),
        "to_regclass" => {
            let name = match string_literal(&first) {
                Some(s) => text(&relation_name_input(s)),
                None => first,
            };
            lookup("pg_class", "oid", "relname", name)
        }
        "to_regtype" => to_regtype(&first),
        "to_regnamespace" => {
            let name = string_literal(&first).map(text).unwrap_or(first);
            lookup("pg_namespace", "oid", "nspname", name)
        }
        "pg_get_serial_sequence" => {
            let table = match string_literal(&first) {
                Some(s) => text(&relation_name_input(s)),
                None => first,
            };
            let column = args.get(1).cloned().unwrap_or(Expr::value(Value::Null));
            subquery(
                "SELECT __v FROM (SELECT 'public.' || quote_ident(s.name) AS __v, a.tbl AS __t, \
                 a.attname AS __c FROM __mdbc_v_sequence s \
                 JOIN __mdbc_v_column a ON a.attrelid = s.tbloid AND a.attnum = s.attnum) \
                 WHERE __t = __arg1 AND __c = __arg2",
                &[table, column],
            )
        }
        // Only what a schema search path holds: `pg_catalog` (when asked) and `public`.
        "current_schemas" => {
            let implicit = !matches!(
                args.first(),
                Some(Expr::Value(v)) if matches!(v.value, Value::Boolean(false))
            );
            let mut elems = Vec::new();
            if implicit {
                elems.push(text("pg_catalog"));
            }
            elems.push(text("public"));
            Ok(Expr::Array(sqlparser::ast::Array {
                elem: elems,
                named: true,
            }))
        }
        // `array_position(ARRAY[...], x)` over a literal array: its 1-based index.
        "array_position" => {
            let Some(Expr::Array(arr)) = args.first() else {
                return Some(Err(crate::error::Error::Unsupported(
                    "array_position over a non-literal array".into(),
                )));
            };
            let needle = args.get(1).cloned().unwrap_or(Expr::value(Value::Null));
            Ok(Expr::Case {
                case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                operand: Some(Box::new(needle)),
                conditions: arr
                    .elem
                    .iter()
                    .enumerate()
                    .map(|(i, e)| sqlparser::ast::CaseWhen {
                        condition: e.clone(),
                        result: Expr::value(Value::Number((i + 1).to_string(), false)),
                    })
                    .collect(),
                else_result: None,
            })
        }
        _ => return None,
    })
}

/// `ARRAY(SELECT x …)`: the elements in PostgreSQL's text form, `{a,b}`.
pub(crate) fn array_subquery(f: &Function) -> Option<Result<Expr>> {
    if function_base_name(f) != "array" {
        return None;
    }
    let FunctionArguments::Subquery(q) = &f.args else {
        return None;
    };
    let mut q = (**q).clone();
    let SetExpr::Select(sel) = q.body.as_mut() else {
        return Some(Err(crate::error::Error::Unsupported(
            "ARRAY over a set operation".into(),
        )));
    };
    let [item] = sel.projection.as_mut_slice() else {
        return Some(Err(crate::error::Error::Syntax(
            "subquery must return only one column".into(),
        )));
    };
    let expr = match item {
        SelectItem::UnnamedExpr(e) => e.clone(),
        SelectItem::ExprWithAlias { expr, .. } => expr.clone(),
        _ => {
            return Some(Err(crate::error::Error::Unsupported(
                "ARRAY(SELECT *)".into(),
            )))
        }
    };
    *item = SelectItem::ExprWithAlias {
        expr,
        alias: Ident::new("__elem"),
    };
    let outer = parse_query(
        "SELECT '{' || coalesce(group_concat(__elem, ','), '') || '}' FROM (SELECT 1) AS __a",
    );
    Some(outer.map(|mut outer| {
        if let SetExpr::Select(s) = outer.body.as_mut() {
            if let Some(TableFactor::Derived { subquery, .. }) =
                s.from.first_mut().map(|f| &mut f.relation)
            {
                **subquery = q;
            }
        }
        Expr::Subquery(Box::new(outer))
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use crate::catalog::{Catalog, ColumnInfo, SystemRelation, TableDef};
    use crate::split::parse;
    use crate::translate::{plan, Command};
    use crate::types::PgType;

    fn catalog() -> Catalog {
        let rel = |name: &str, empty: bool, cols: &[(&str, PgType)]| {
            (
                name.to_string(),
                SystemRelation {
                    def: Arc::new(TableDef {
                        name: name.into(),
                        columns: cols
                            .iter()
                            .map(|&(n, ty)| ColumnInfo::plain(n, ty))
                            .collect(),
                    }),
                    always_empty: empty,
                },
            )
        };
        let mut sys = HashMap::new();
        sys.extend([
            rel(
                "pg_class",
                false,
                &[("oid", PgType::Oid), ("relname", PgType::Name)],
            ),
            rel(
                "pg_trigger",
                true,
                &[("tgname", PgType::Name), ("tgrelid", PgType::Oid)],
            ),
            rel("pg_inherits", true, &[("inhrelid", PgType::Oid)]),
        ]);
        let mut c = Catalog::default();
        c.set_system(Arc::new(sys));
        c
    }

    fn sqlite(sql: &str) -> String {
        let p = parse(sql).unwrap();
        match plan(&p[0], &catalog()).unwrap() {
            Command::Sql(p) => p.sql.join("; "),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn queries_over_empty_catalogs_are_answered_empty_with_their_names() {
        // Syntax SQLite lacks (WITH ORDINALITY, subscripts) never reaches it.
        let s = sqlite(
            "SELECT t.tgname, x[1] AS first FROM pg_catalog.pg_trigger t, \
             pg_partition_ancestors(t.tgrelid) WITH ORDINALITY AS a(relid, depth) \
             WHERE t.tgrelid = '1' ORDER BY 1",
        );
        assert_eq!(s, "SELECT NULL AS \"tgname\", NULL AS \"first\" WHERE 0");
        // Both sides of a UNION must be empty; a LEFT JOIN to an empty catalog keeps rows;
        // an aggregate has its row.
        assert!(
            sqlite("SELECT tgname FROM pg_trigger UNION SELECT relname FROM pg_class")
                .contains("pg_class")
        );
        assert!(sqlite(
            "SELECT c.relname FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid"
        )
        .contains("LEFT JOIN"));
        assert!(sqlite("SELECT count(*) FROM pg_trigger").contains("count"));
        assert!(sqlite("SELECT stddev(tgrelid) FROM pg_trigger").contains("stddev"));
        assert!(sqlite(
            "SELECT c.relname FROM pg_class a JOIN pg_trigger t ON t.tgrelid = a.oid \
             RIGHT JOIN pg_class c ON c.oid = a.oid"
        )
        .contains("RIGHT JOIN"));
        assert!(sqlite(
            "SELECT c.relname FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid"
        )
        .ends_with("WHERE 0"));
    }

    #[test]
    fn reg_casts_look_objects_up() {
        // A literal oid is an oid; a name is looked up; an oid column prints as a name.
        let s = sqlite("select relname from pg_class where oid = '16385'::pg_catalog.regclass");
        assert!(s.ends_with("WHERE oid = (16385)"), "{s}");
        // In a select list it prints as the name.
        let s = sqlite("select '16385'::regclass");
        assert!(s.contains("WHERE __k = (16385)"), "{s}");
        // Names fold like identifiers; a quoted part keeps its case; other schemas are
        // empty.
        let s = sqlite("select 'Public.Books'::regclass");
        assert!(
            s.contains("relname AS __k") && s.contains("= 'books'"),
            "{s}"
        );
        assert!(sqlite("select '\"public\".\"Mixed\"'::regclass").contains("= 'Mixed'"));
        let s = sqlite("select 'other.books'::regclass");
        assert!(!s.contains("= 'books'"), "{s}");
        assert!(s.contains("relname AS __k"), "{s}");
        let s = sqlite("select oid::regclass from pg_class");
        assert!(
            s.contains("WHERE __k = oid"),
            "the argument must not be captured by the subquery: {s}"
        );
        assert!(sqlite("select to_regtype('int')").contains("23"));
        assert!(sqlite("select to_regtype('hstore')").contains("typname AS __k"));
    }

    #[test]
    fn array_subqueries_and_schema_positions() {
        let s = sqlite("select array(select relname from pg_class order by 1)");
        assert!(s.contains("group_concat(__elem, ',')"), "{s}");
        let s = sqlite("select array_position(current_schemas(true), 'public')");
        assert!(
            s.contains("CASE 'public' WHEN 'pg_catalog' THEN 1 WHEN 'public' THEN 2 END"),
            "{s}"
        );
    }

    #[test]
    fn set_returning_functions_in_the_select_list_become_json_each() {
        let s = sqlite(
            "select c.relname, unnest(i.indkey) as attnum, generate_subscripts(i.indkey, 1) as ord, \
             unnest(i.indclass) as opclass from pg_class c join pg_index i on i.indexrelid = c.oid",
        );
        assert!(s.contains("__u0.value AS attnum"), "{s}");
        assert!(s.contains("(__u0.key + 1) AS ord"), "{s}");
        assert!(s.contains("__u1.value AS opclass"), "{s}");
        assert!(s.contains("json_each(i.indkey) AS __u0"), "{s}");
        assert!(
            s.contains("LEFT JOIN json_each(i.indclass) AS __u1 ON __u1.key = __u0.key"),
            "{s}"
        );
        // An unnamed item keeps PostgreSQL's column name.
        assert!(sqlite("select unnest(array[1, 2])").contains("AS \"unnest\""));
    }

    #[test]
    fn arrays_are_json() {
        assert_eq!(
            sqlite("select array[1, 2], array_agg(relname order by oid) from pg_class"),
            "SELECT json_array(1, 2) AS \"array\", json_group_array(relname ORDER BY oid NULLS LAST) \
             AS \"array_agg\" FROM pg_class"
        );
        let s = sqlite("select 1 from pg_class c where c.oid = any(c.relname)");
        assert!(
            s.contains("c.oid IN (SELECT value FROM json_each(c.relname))"),
            "{s}"
        );
        let s = sqlite("select (array[5, 6])[2]");
        assert_eq!(
            s,
            "SELECT json_extract((json_array(5, 6)), '$[' || (2 - 1) || ']') AS \"array\""
        );
    }

    #[test]
    fn distinct_on_keeps_the_first_row_of_each_group() {
        let s = sqlite(
            "select distinct on (relkind) relkind, relname from pg_class order by relkind, 2 desc",
        );
        assert!(
            s.contains("row_number() OVER (PARTITION BY relkind ORDER BY relkind NULLS LAST, relname DESC NULLS FIRST) AS __rn"),
            "{s}"
        );
        assert!(
            s.contains("WHERE __d.__rn = 1 ORDER BY __o1 NULLS LAST, __o2 DESC NULLS FIRST"),
            "{s}"
        );
        assert!(
            s.starts_with("SELECT __c1 AS \"relkind\", __c2 AS \"relname\""),
            "{s}"
        );
    }
}
