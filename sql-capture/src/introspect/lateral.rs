//! Constructs SQLite lacks in queries clients send about the catalogs: `CROSS JOIN LATERAL`
//! over a FROM-less subquery, and set-returning functions in a select list.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, Expr, Ident, JoinConstraint, JoinOperator, Query, SelectItem, SetExpr,
    TableFactor, VisitorMut,
};

use super::empty::{has_aggregate, GroupByEmpty};
use super::fill;
use crate::ast::{function_args, function_name, ident_value, parse_expr, parse_query};
use crate::error::Result;
use crate::naming::expr_name;

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
    series_in_select_list(sel)?;
    let mut arrays: Vec<Expr> = Vec::new();
    for item in &mut sel.projection {
        let (e, unnamed) = match item {
            SelectItem::UnnamedExpr(e) => (e, true),
            SelectItem::ExprWithAlias { expr, .. } => (expr, false),
            _ => continue,
        };
        let Expr::Function(f) = &*e else { continue };
        let name = function_name(f);
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
        let replacement = parse_expr(&read)?;
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

/// `generate_series(…)` as a select-list item: PostgreSQL returns each row of the rest of
/// the query once per value of the series, which is a join with the series as a table
/// (the FROM form, which the rewriter then plans). Only where that equivalence holds: one
/// series item, no aggregation or grouping (PostgreSQL would expand after aggregating),
/// no other set-returning item beside it. Elsewhere the call stays and is refused.
fn series_in_select_list(sel: &mut sqlparser::ast::Select) -> Result<()> {
    let is_call = |e: &Expr| {
        matches!(e, Expr::Function(f) if matches!(
            function_name(f).as_str(),
            "generate_series" | "regexp_matches" | "regexp_split_to_table"
        ) && f.over.is_none())
    };
    let calls_in = |item: &SelectItem| {
        let mut n = 0;
        let _ = sqlparser::ast::visit_expressions(item, |e| {
            if is_call(e) {
                n += 1;
            }
            ControlFlow::<()>::Continue(())
        });
        n
    };
    let counts: Vec<usize> = sel.projection.iter().map(calls_in).collect();
    if counts.iter().sum::<usize>() != 1 {
        return Ok(());
    }
    let Some(at) = counts.iter().position(|&n| n == 1) else {
        return Ok(());
    };
    let other_srf = sel.projection.iter().any(|item| {
        let text = item.to_string().to_ascii_lowercase();
        text.contains("unnest(") || text.contains("generate_subscripts(")
    });
    let nested_query = sel.projection[at]
        .to_string()
        .to_ascii_lowercase()
        .contains("select");
    let grouped =
        !matches!(&sel.group_by, sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty());
    if other_srf || nested_query || grouped || sel.having.is_some() || has_aggregate(sel) {
        return Ok(());
    }
    let mut call = None;
    let column = parse_expr("__gs.__gs")?;
    let item = &mut sel.projection[at];
    if let SelectItem::UnnamedExpr(e) = item {
        *item = SelectItem::ExprWithAlias {
            alias: Ident::with_quote('"', crate::naming::expr_name(e)),
            expr: e.clone(),
        };
    }
    let _ = sqlparser::ast::visit_expressions_mut(item, |e| {
        if is_call(e) {
            call = Some(std::mem::replace(e, column.clone()));
        }
        ControlFlow::<()>::Continue(())
    });
    let Some(Expr::Function(f)) = call else {
        return Ok(());
    };
    let mut template = parse_query(&format!(
        "SELECT 1 FROM {}(0, 0) AS __gs(__gs)",
        function_name(&f)
    ))?;
    if let SetExpr::Select(t) = template.body.as_mut() {
        if let Some(sqlparser::ast::TableFactor::Table { args, .. }) =
            t.from.first_mut().map(|twj| &mut twj.relation)
        {
            if let sqlparser::ast::FunctionArguments::List(list) = f.args {
                *args = Some(sqlparser::ast::TableFunctionArgs {
                    args: list.args,
                    settings: None,
                });
            }
        }
        sel.from.extend(std::mem::take(&mut t.from));
    }
    Ok(())
}
