//! Errors PostgreSQL raises while planning, by folding constant expressions before any row
//! is read: `CASE WHEN x > 100 THEN 1/0 ELSE 0 END` fails with 22012 even when no row takes
//! that branch (PostgreSQL's documentation warns of exactly this). SQLite evaluates only the
//! branches it takes, so the same statement would succeed here; the constant divisions by
//! zero are found before it runs instead.

use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, Statement, UnaryOperator, Value, Visit, Visitor};

use crate::error::{Error, Result};

/// Fails as PostgreSQL's planner does on a division (or modulo) of a numeric constant by a
/// zero constant anywhere in a statement it plans (not in DDL, which stores expressions
/// such as a column's DEFAULT to be evaluated later).
pub(crate) fn check(stmt: &Statement) -> Result<()> {
    if !matches!(
        stmt,
        Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Explain { .. }
    ) {
        return Ok(());
    }
    struct Find;
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::BinaryOp {
                left,
                op: BinaryOperator::Divide | BinaryOperator::Modulo,
                right,
            } = e
            {
                if number(left).is_some() && number(right) == Some(0.0) {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    match stmt.visit(&mut Find) {
        ControlFlow::Break(()) => Err(Error::Coded("22012", "division by zero".into())),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// A numeric literal's value (through parentheses and signs).
fn number(e: &Expr) -> Option<f64> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::Nested(inner) => number(inner),
        Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr,
        } => number(expr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folds(sql: &str) -> bool {
        let stmt =
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0);
        check(&stmt).is_err()
    }

    #[test]
    fn constant_divisions_by_zero_fail_before_any_row() {
        assert!(folds("SELECT CASE WHEN i > 100 THEN 1/0 ELSE 0 END FROM t"));
        assert!(folds("SELECT 1.5 % (0.0)"));
        assert!(folds("UPDATE t SET a = -1 / 0 WHERE false"));
        assert!(!folds("SELECT a / 0 FROM t"));
        assert!(!folds("SELECT 1 / 2, 0 / 1"));
        assert!(!folds("CREATE TABLE t (a int DEFAULT 1 / 0)"));
    }
}
