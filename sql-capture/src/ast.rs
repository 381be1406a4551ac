//! Small helpers over sqlparser's syntax tree shared by every rewrite: names as PostgreSQL
//! folds them, building calls, parsing generated SQL, and quoting for SQLite.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, Query, Value, ValueWithSpan, VisitMut,
    VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Span;

use crate::error::{Error, Result};
use crate::types::PgType;

/// Quotes an identifier for SQLite (and PostgreSQL): always in double quotes, a quote
/// inside doubled. The one quoting function of the workspace.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Names of the tables in a DROP/TRUNCATE list.
pub(crate) fn table_names(names: &[ObjectName]) -> Vec<String> {
    names.iter().map(object_name_to_table).collect()
}

/// PostgreSQL's name for a serial column's sequence.
pub fn sequence_name(table: &str, column: &str) -> String {
    format!("{table}_{column}_seq")
}

/// The table a (possibly schema-qualified) name refers to. `public.t` is `t`; unquoted
/// names fold to lower case as in PostgreSQL.
pub fn object_name_to_table(name: &ObjectName) -> String {
    let parts: Vec<&ObjectNamePart> = name.0.iter().collect();
    // information_schema's views live beside the tables, prefixed (mdbc-server's
    // pg_catalog.rs).
    if let [ObjectNamePart::Identifier(schema), ObjectNamePart::Identifier(view)] = parts.as_slice()
    {
        if schema.value.eq_ignore_ascii_case("information_schema") {
            return format!("information_schema_{}", ident_value(view));
        }
    }
    match parts.last() {
        Some(ObjectNamePart::Identifier(id)) => ident_value(id),
        _ => name.to_string(),
    }
}

/// An identifier's value as PostgreSQL stores it: unquoted names fold to lower case.
pub fn ident_value(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_ascii_lowercase()
    }
}

/// A call `name(args…)`.
pub(crate) fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        within_group: vec![],
        filter: None,
        null_treatment: None,
        over: None,
    })
}

/// Takes an expression out of the tree, leaving NULL in its place (rewrites then put the
/// new expression back).
pub(crate) fn take(e: &mut Expr) -> Expr {
    std::mem::replace(e, Expr::value(Value::Null))
}

/// A string literal.
pub(crate) fn text(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.into()))
}

pub(crate) fn number(n: i64) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

/// `pg_coerce(expr, oid, typmod)`: converts a value to a column's type the way PostgreSQL's
/// input functions do, raising 22P02 on garbage.
pub(crate) fn coerce(expr: Expr, ty: PgType, typmod: i32) -> Expr {
    call(
        "pg_coerce",
        vec![expr, number(ty.oid() as i64), number(typmod as i64)],
    )
}

/// The (lower-case, schema-less) name of a function.
pub(crate) fn function_name(f: &Function) -> String {
    match f.name.0.last() {
        Some(ObjectNamePart::Identifier(id)) => id.value.to_ascii_lowercase(),
        _ => f.name.to_string().to_ascii_lowercase(),
    }
}

pub(crate) fn function_args(f: &Function) -> Vec<&Expr> {
    match &f.args {
        FunctionArguments::List(l) => l
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Parses SQL text the rewriter generated. Its values lose their source positions: they
/// point into the generated text, and a literal is only ever matched to the client's text
/// by position (see literals.rs).
pub(crate) fn parse_query(sql: &str) -> Result<Query> {
    struct ForgetSpans;
    impl VisitorMut for ForgetSpans {
        type Break = ();
        fn pre_visit_value(&mut self, v: &mut ValueWithSpan) -> ControlFlow<()> {
            v.span = Span::empty();
            ControlFlow::Continue(())
        }
    }
    let dialect = PostgreSqlDialect {};
    let mut q = Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_query())
        .map(|q| *q)
        .map_err(|e| Error::Syntax(e.to_string()))?;
    let _ = q.visit(&mut ForgetSpans);
    Ok(q)
}

/// Parses an expression the rewriter generated.
pub(crate) fn parse_expr(sql: &str) -> Result<Expr> {
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| Error::Syntax(e.to_string()))
}

/// The symbol of an arithmetic operator (`+ - * / %`), as the typed rewrites pass it to
/// the server's checked functions.
pub(crate) fn arith_symbol(op: &BinaryOperator) -> Option<&'static str> {
    Some(match op {
        BinaryOperator::Plus => "+",
        BinaryOperator::Minus => "-",
        BinaryOperator::Multiply => "*",
        BinaryOperator::Divide => "/",
        BinaryOperator::Modulo => "%",
        _ => return None,
    })
}

/// `name('symbol', left, right)`, taking both operands out of the tree.
pub(crate) fn op_call(name: &str, symbol: &str, left: &mut Expr, right: &mut Expr) -> Expr {
    let take = |e: &mut Expr| std::mem::replace(e, Expr::value(Value::Null));
    call(
        name,
        vec![
            Expr::value(Value::SingleQuotedString(symbol.into())),
            take(left),
            take(right),
        ],
    )
}

/// Whether `e` is a quoted literal (of unknown type in PostgreSQL until it meets another).
pub(crate) fn is_quoted(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)))
}

/// `CASE WHEN b THEN yes WHEN NOT b THEN no END`: a boolean as two values, NULL staying
/// NULL (SQLite's booleans are 0 and 1).
pub(crate) fn bool_case(b: Expr, yes: Expr, no: Expr) -> Expr {
    Expr::Case {
        case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: vec![
            sqlparser::ast::CaseWhen {
                condition: b.clone(),
                result: yes,
            },
            sqlparser::ast::CaseWhen {
                condition: Expr::UnaryOp {
                    op: sqlparser::ast::UnaryOperator::Not,
                    expr: Box::new(b),
                },
                result: no,
            },
        ],
        else_result: None,
    }
}

/// `CAST(e AS TEXT)`, SQLite's way to give an expression text affinity (a value compared
/// with it is then read as text too).
pub(crate) fn text_affinity(e: Expr) -> Expr {
    Expr::Cast {
        kind: sqlparser::ast::CastKind::Cast,
        expr: Box::new(e),
        data_type: sqlparser::ast::DataType::Text,
        format: None,
    }
}

/// `e COLLATE name`.
pub(crate) fn collated(e: Expr, name: &str) -> Expr {
    Expr::Collate {
        expr: Box::new(e),
        collation: ObjectName::from(vec![Ident::new(name)]),
    }
}

/// `= <> < <= > >=`.
pub(crate) fn is_comparison(op: &sqlparser::ast::BinaryOperator) -> bool {
    use sqlparser::ast::BinaryOperator::*;
    matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq)
}

/// A query body of no rows (a placeholder while a query is moved out and back).
pub(crate) fn no_rows() -> Box<sqlparser::ast::SetExpr> {
    Box::new(sqlparser::ast::SetExpr::Values(sqlparser::ast::Values {
        explicit_row: false,
        value_keyword: false,
        rows: Vec::new(),
    }))
}
