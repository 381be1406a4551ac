//! Result types of UNION, INTERSECT and EXCEPT. PostgreSQL resolves each result column to
//! one type across the branches (`SELECT 1.1 UNION SELECT 2` is numeric throughout);
//! SQLite keeps every branch's values as they are and sorts an integer before any text,
//! where a numeric is text (see `numeric`), so `… ORDER BY 1` would put 2 before 1.1. The
//! branches whose column is of another numeric type get PostgreSQL's cast to the resolved
//! one — integer to numeric, numeric to double precision beside a float — before
//! translation, which then computes the cast as for any other.

use std::ops::ControlFlow;

use sqlparser::ast::{CastKind, DataType, Expr, Query, SelectItem, SetExpr, VisitMut, VisitorMut};

use crate::catalog::Catalog;
use crate::infer;
use crate::types::PgType;

/// Casts set-operation branches to their columns' resolved types, in `q` and every query
/// inside it.
pub(crate) fn unify(q: &mut Query, catalog: &Catalog) {
    struct Unify<'a>(&'a Catalog);
    impl VisitorMut for Unify<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            unify_one(q, self.0);
            ControlFlow::Continue(())
        }
    }
    let _ = q.visit(&mut Unify(catalog));
}

fn unify_one(q: &mut Query, catalog: &Catalog) {
    if !matches!(q.body.as_ref(), SetExpr::SetOperation { .. }) {
        return;
    }
    unify_types(q, catalog);
    if let SetExpr::SetOperation { left, right, .. } = q.body.as_mut() {
        subquery_branches(left);
        subquery_branches(right);
    }
}

/// A parenthesised branch (`A UNION (B UNION C)`, `(SELECT … LIMIT 1) UNION …`) as a
/// `SELECT` from it: SQLite's compound SELECT takes no parentheses, and the rows are the
/// same.
fn subquery_branches(branch: &mut SetExpr) {
    match branch {
        SetExpr::SetOperation { left, right, .. } => {
            subquery_branches(left);
            subquery_branches(right);
        }
        SetExpr::Query(inner) => {
            if let Ok(q) =
                crate::ast::parse_query(&format!("SELECT * FROM ({inner}) AS _mdbc_branch"))
            {
                *branch = *q.body;
            }
        }
        _ => {}
    }
}

fn unify_types(q: &mut Query, catalog: &Catalog) {
    let mut probe = Query {
        body: crate::ast::no_rows(),
        order_by: None,
        limit_clause: None,
        fetch: None,
        ..q.clone()
    };
    let mut leaves = Vec::new();
    collect(q.body.as_ref(), &mut leaves);
    let types: Vec<Vec<Option<PgType>>> = leaves
        .iter()
        .map(|leaf| {
            *probe.body = (*leaf).clone();
            infer::query_columns(&probe, catalog)
                .into_iter()
                .map(|c| c.ty)
                .collect()
        })
        .collect();
    // Untyped literals (`'foo'`, NULL): they take the type the others resolve to.
    let literal: Vec<Vec<bool>> = leaves
        .iter()
        .zip(&types)
        .map(|(leaf, t)| (0..t.len()).map(|i| untyped_literal(leaf, i)).collect())
        .collect();
    let Some(width) = types.first().map(Vec::len) else {
        return;
    };
    if types.iter().any(|t| t.len() != width) {
        return;
    }
    let targets: Vec<Option<PgType>> = (0..width)
        .map(|i| {
            resolved(
                types
                    .iter()
                    .zip(&literal)
                    .map(|(t, l)| (t[i], l.get(i).copied().unwrap_or(false))),
            )
        })
        .collect();
    let mut leaves = Vec::new();
    collect_mut(q.body.as_mut(), &mut leaves);
    for ((leaf, leaf_types), leaf_literal) in leaves.into_iter().zip(&types).zip(&literal) {
        for (i, target) in targets.iter().enumerate() {
            let Some(target) = target else { continue };
            let untyped = leaf_literal.get(i).copied().unwrap_or(false);
            // A numeric branch is cast too: the cast gives it the numeric collation, so
            // that UNION, INTERSECT and EXCEPT see `1.0` and `1` as one value.
            if !untyped
                && (leaf_types[i].is_none()
                    || leaf_types[i] == Some(*target) && *target != PgType::Numeric)
            {
                continue;
            }
            let Some(data_type) = data_type_of(*target) else {
                continue;
            };
            for e in column_exprs(leaf, i) {
                let inner = std::mem::replace(e, Expr::value(sqlparser::ast::Value::Null));
                *e = Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(inner),
                    data_type: data_type.clone(),
                    format: None,
                };
            }
        }
    }
}

/// The type a column resolves to: numeric beside integers, double precision beside a
/// float, or the one type of all typed branches when untyped literals are beside it;
/// `None` when no cast is needed or the types are not all known.
fn resolved(columns: impl Iterator<Item = (Option<PgType>, bool)>) -> Option<PgType> {
    let (mut numeric, mut float, mut other, mut untyped) = (false, false, false, false);
    let mut single: Option<Option<PgType>> = None;
    for (t, literal) in columns {
        if literal {
            untyped = true;
            continue;
        }
        single = match single {
            None => Some(t),
            Some(s) if s == t => Some(s),
            Some(_) => Some(None),
        };
        match t {
            Some(PgType::Numeric) => numeric = true,
            Some(PgType::Float4 | PgType::Float8) => float = true,
            Some(t) if t.is_integer() => {}
            // An unknown branch may hold anything: leave the column alone.
            _ => other = true,
        }
    }
    match (numeric, float, other) {
        (true, true, false) => Some(PgType::Float8),
        (true, false, false) => Some(PgType::Numeric),
        // Text stays as it is: an untyped literal is text already.
        _ if untyped => single.flatten().filter(|t| !t.is_string()),
        _ => None,
    }
}

/// Whether a branch's `i`-th column is an untyped literal (a quoted string or NULL) in
/// every row.
fn untyped_literal(leaf: &SetExpr, i: usize) -> bool {
    let untyped = |e: &Expr| {
        crate::ast::is_quoted(e)
            || matches!(e, Expr::Value(v) if v.value == sqlparser::ast::Value::Null)
    };
    match leaf {
        SetExpr::Select(s) => match s.projection.get(i) {
            Some(SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) => {
                untyped(e)
            }
            _ => false,
        },
        SetExpr::Values(v) => v
            .rows
            .iter()
            .all(|r| r.content.get(i).is_some_and(&untyped)),
        _ => false,
    }
}

/// PostgreSQL's name of a type as a cast's target.
pub(crate) fn data_type_of(t: PgType) -> Option<DataType> {
    let q = crate::ast::parse_query(&format!("SELECT CAST(NULL AS {})", t.name())).ok()?;
    let SetExpr::Select(s) = *q.body else {
        return None;
    };
    match s.projection.into_iter().next()? {
        SelectItem::UnnamedExpr(Expr::Cast { data_type, .. }) => Some(data_type),
        _ => None,
    }
}

/// The branches of a tree of set operations, parenthesised ones included.
fn collect<'a>(body: &'a SetExpr, out: &mut Vec<&'a SetExpr>) {
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            collect(left, out);
            collect(right, out);
        }
        SetExpr::Query(q) if plain(q) => collect(&q.body, out),
        other => out.push(other),
    }
}

fn collect_mut<'a>(body: &'a mut SetExpr, out: &mut Vec<&'a mut SetExpr>) {
    let descend = match &*body {
        SetExpr::SetOperation { .. } => true,
        SetExpr::Query(q) => plain(q),
        _ => false,
    };
    if !descend {
        out.push(body);
        return;
    }
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            collect_mut(left, out);
            collect_mut(right, out);
        }
        SetExpr::Query(q) => collect_mut(&mut q.body, out),
        _ => {}
    }
}

/// A parenthesised branch that is only a set of rows (no WITH, ORDER BY or LIMIT of its
/// own): its branches are the outer operation's.
fn plain(q: &Query) -> bool {
    q.with.is_none() && q.order_by.is_none() && q.limit_clause.is_none() && q.fetch.is_none()
}

/// The expressions of a branch's `i`-th column: a SELECT item (none when a `*` makes the
/// positions unclear) or every row's of a VALUES list.
fn column_exprs(leaf: &mut SetExpr, i: usize) -> Vec<&mut Expr> {
    match leaf {
        SetExpr::Select(s) => {
            if s.projection.iter().any(|p| {
                matches!(
                    p,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            }) {
                return Vec::new();
            }
            match s.projection.get_mut(i) {
                Some(SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) => {
                    vec![e]
                }
                _ => Vec::new(),
            }
        }
        SetExpr::Values(v) => v
            .rows
            .iter_mut()
            .filter_map(|r| r.content.get_mut(i))
            .collect(),
        _ => Vec::new(),
    }
}
