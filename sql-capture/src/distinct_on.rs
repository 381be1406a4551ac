//! `SELECT DISTINCT ON (keys) … ORDER BY …`: PostgreSQL keeps the first row of each group
//! of equal keys in the ORDER BY order. SQLite has no such clause; the same result is the
//! rows numbered 1 by `row_number() OVER (PARTITION BY keys ORDER BY …)`:
//!
//! ```text
//! SELECT __c1 AS a, … FROM (SELECT a AS __c1, …, o AS __o1, …,
//!     row_number() OVER (PARTITION BY keys ORDER BY o, …) AS __rn FROM … WHERE …) AS __d
//! WHERE __rn = 1 ORDER BY __o1, … LIMIT …
//! ```

use sqlparser::ast::{
    Distinct, Expr, Ident, OrderBy, OrderByExpr, OrderByKind, Query, SelectItem, SetExpr,
    TableFactor, Value, WindowSpec, WindowType,
};

use crate::ast::{ident_value, parse_expr, parse_query};
use crate::error::{Error, Result};
use crate::naming::expr_name;

/// Rewrites `q` in place when its SELECT has DISTINCT ON.
pub(crate) fn rewrite(q: &mut Query) -> Result<()> {
    let SetExpr::Select(sel) = q.body.as_mut() else {
        return Ok(());
    };
    let Some(Distinct::On(keys)) = &sel.distinct else {
        return Ok(());
    };
    let items: Vec<(Expr, String)> = sel
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Ok((e.clone(), expr_name(e))),
            SelectItem::ExprWithAlias { expr, alias } => Ok((expr.clone(), ident_value(alias))),
            _ => Err(Error::Unsupported("DISTINCT ON with a wildcard".into())),
        })
        .collect::<Result<_>>()?;
    // ORDER BY and DISTINCT ON may name an output column by position or by name.
    let resolve = |e: &Expr| -> Expr {
        match e {
            Expr::Value(v) => {
                if let Value::Number(n, _) = &v.value {
                    if let Some((x, _)) = n
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| items.get(i.wrapping_sub(1)))
                    {
                        return x.clone();
                    }
                }
                e.clone()
            }
            Expr::Identifier(id) => {
                let name = ident_value(id);
                items
                    .iter()
                    .find(|(_, n)| *n == name)
                    .map(|(x, _)| x.clone())
                    .unwrap_or_else(|| e.clone())
            }
            other => other.clone(),
        }
    };
    let partition: Vec<Expr> = keys.iter().map(&resolve).collect();
    let order: Vec<OrderByExpr> = match q.order_by.take() {
        Some(OrderBy {
            kind: OrderByKind::Expressions(exprs),
            ..
        }) => exprs,
        Some(_) => return Err(Error::Unsupported("ORDER BY ALL".into())),
        None => Vec::new(),
    };

    let mut inner = sel.as_ref().clone();
    inner.distinct = None;
    inner.projection = items
        .iter()
        .enumerate()
        .map(|(i, (e, _))| SelectItem::ExprWithAlias {
            expr: e.clone(),
            alias: Ident::new(format!("__c{}", i + 1)),
        })
        .chain(
            order
                .iter()
                .enumerate()
                .map(|(j, o)| SelectItem::ExprWithAlias {
                    expr: resolve(&o.expr),
                    alias: Ident::new(format!("__o{}", j + 1)),
                }),
        )
        .collect();
    let mut row_number = parse_expr("row_number() OVER ()")?;
    if let Expr::Function(f) = &mut row_number {
        f.over = Some(WindowType::WindowSpec(WindowSpec {
            window_name: None,
            partition_by: partition,
            order_by: order
                .iter()
                .map(|o| OrderByExpr {
                    expr: resolve(&o.expr),
                    ..o.clone()
                })
                .collect(),
            window_frame: None,
        }));
    }
    inner.projection.push(SelectItem::ExprWithAlias {
        expr: row_number,
        alias: Ident::new("__rn"),
    });

    let mut outer = parse_query("SELECT 1 FROM (SELECT 1) AS __d WHERE __d.__rn = 1")?;
    if let SetExpr::Select(o) = outer.body.as_mut() {
        o.projection = items
            .iter()
            .enumerate()
            .map(|(i, (_, name))| SelectItem::ExprWithAlias {
                expr: Expr::Identifier(Ident::new(format!("__c{}", i + 1))),
                alias: Ident::with_quote('"', name.clone()),
            })
            .collect();
        if let Some(TableFactor::Derived { subquery, .. }) =
            o.from.first_mut().map(|f| &mut f.relation)
        {
            *subquery.body = SetExpr::Select(Box::new(inner));
        }
    }
    q.body = outer.body;
    if !order.is_empty() {
        q.order_by = Some(OrderBy {
            kind: OrderByKind::Expressions(
                order
                    .into_iter()
                    .enumerate()
                    .map(|(j, o)| OrderByExpr {
                        expr: Expr::Identifier(Ident::new(format!("__o{}", j + 1))),
                        ..o
                    })
                    .collect(),
            ),
            interpolate: None,
        });
    }
    Ok(())
}
