//! Queries over catalogs mdbc keeps empty: when an inner join with one proves a query has
//! no rows, it is answered without running.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, JoinOperator, Query, Select, SetExpr, SetOperator, TableFactor, Visit, Visitor,
};

use crate::ast::{function_name, object_name_to_table, quote_ident};
use crate::catalog::Catalog;
use crate::naming::result_names;

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
        .map(|n| format!("NULL AS {}", quote_ident(n)))
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

pub(super) trait GroupByEmpty {
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

/// The aggregate functions PostgreSQL has (a call to one makes a SELECT aggregate).
pub(crate) const AGGREGATES: &[&str] = &[
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

pub(crate) fn has_aggregate(s: &Select) -> bool {
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
                        && (AGGREGATES.contains(&function_name(f).as_str())
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
