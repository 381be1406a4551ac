//! Numeric expressions, rewritten so that SQLite computes them exactly.
//!
//! A numeric is its exact text in SQLite (mdbc-server's numeric module). SQLite's own `+`,
//! `sum()` or `round()` would read that text as a double, so every numeric operation
//! becomes a call of `pg_numeric(op, …)` (or the `pg_numeric_sum`/`pg_numeric_avg`
//! aggregates) chosen from the operands' inferred types, and its result is *marked*:
//! `… COLLATE pg_numeric`, which the final rewrite turns into text affinity plus the
//! numeric collation, so comparisons, ORDER BY and DISTINCT see numbers, not strings.

use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArguments, Ident, ObjectName, UnaryOperator, Value,
};

use crate::ast::{call, function_args, function_name, take, text};
use crate::types::PgType;
use crate::NUMERIC_COLLATION;

/// `e COLLATE pg_numeric`: a numeric-valued expression (inference reads the mark back).
pub(crate) fn mark(e: Expr) -> Expr {
    Expr::Collate {
        expr: Box::new(e),
        collation: ObjectName::from(vec![Ident::new(NUMERIC_COLLATION)]),
    }
}

/// Whether an expression carries the numeric mark.
pub(crate) fn is_marked(e: &Expr) -> bool {
    matches!(e, Expr::Collate { collation, .. }
        if collation.to_string().eq_ignore_ascii_case(NUMERIC_COLLATION))
}

fn is_param(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::Placeholder(_)))
}

/// Operands an exact numeric operation takes: one numeric, the other numeric, an integer,
/// or a parameter (which then takes numeric, as PostgreSQL infers it).
fn numeric_operands(l: Option<PgType>, r: Option<PgType>, left: &Expr, right: &Expr) -> bool {
    // A quoted literal is of unknown type in PostgreSQL: it takes the numeric's.
    let fits = |t: Option<PgType>, e: &Expr| match (t, e) {
        (_, e) if crate::ast::is_quoted(e) => true,
        (Some(t), _) => t == PgType::Numeric || t.is_integer(),
        (None, _) => is_param(e),
    };
    (l == Some(PgType::Numeric) || r == Some(PgType::Numeric)) && fits(l, left) && fits(r, right)
}

/// `a op b` on numerics: arithmetic becomes `pg_numeric(op, a, b)`; a comparison gets the
/// numeric collation (and an integer operand text affinity, so the two compare exactly as
/// numbers rather than through a double). Returns the replacement, if any.
pub(crate) fn binary(
    left: &mut Expr,
    op: &BinaryOperator,
    right: &mut Expr,
    l: Option<PgType>,
    r: Option<PgType>,
) -> Option<Expr> {
    let symbol = match op {
        BinaryOperator::PGExp => "power",
        op if crate::ast::arith_symbol(op).is_some() => crate::ast::arith_symbol(op)?,
        BinaryOperator::Eq
        | BinaryOperator::NotEq
        | BinaryOperator::Lt
        | BinaryOperator::LtEq
        | BinaryOperator::Gt
        | BinaryOperator::GtEq => {
            compare_as_numeric(left, right, l, r);
            return None;
        }
        _ => return None,
    };
    if !numeric_operands(l, r, left, right) {
        return None;
    }
    Some(mark(crate::ast::op_call("pg_numeric", symbol, left, right)))
}

/// Makes `left` and `right` compare as numerics when one is a numeric and the other a
/// numeric or an integer (in `=`, `IS DISTINCT FROM`, …): the numeric collation on the
/// left, and text affinity for an integer expression so that it meets the numeric's text
/// as a number. Returns whether it did.
pub(crate) fn compare_as_numeric(
    left: &mut Expr,
    right: &mut Expr,
    l: Option<PgType>,
    r: Option<PgType>,
) -> bool {
    if !numeric_operands(l, r, left, right) {
        return false;
    }
    let as_text = |e: &mut Expr, t: Option<PgType>| {
        if t.is_some_and(PgType::is_integer) && !matches!(e, Expr::Value(_)) {
            *e = crate::ast::text_affinity(take(e));
        }
    };
    as_text(left, l);
    as_text(right, r);
    if !is_marked(left) {
        // A literal has no affinity of its own: text affinity makes SQLite read an
        // integer on the other side as text too.
        let x = take(left);
        *left = mark(if matches!(x, Expr::Value(_)) {
            crate::ast::text_affinity(x)
        } else {
            x
        });
    }
    true
}

/// A value compared with numerics (an IN list's left side, a set member): the numeric
/// collation and text affinity, so integers and numerics meet as numbers.
pub(crate) fn as_compared_numeric(e: Expr) -> Expr {
    if is_marked(&e) {
        e
    } else {
        mark(crate::ast::text_affinity(e))
    }
}

/// `-x` on a numeric.
pub(crate) fn unary(op: &UnaryOperator, inner: &mut Expr, t: Option<PgType>) -> Option<Expr> {
    match (op, t) {
        (UnaryOperator::Minus, Some(PgType::Numeric)) => {
            Some(mark(call("pg_numeric", vec![text("neg"), take(inner)])))
        }
        _ => None,
    }
}

/// `x::int2/int4/int8` of a numeric: rounded half away from zero, range-checked, NaN and
/// the infinities refused as PostgreSQL refuses them.
pub(crate) fn to_integer(inner: &mut Expr, target: PgType) -> Expr {
    let name = match target {
        PgType::Int2 => "int2",
        PgType::Int4 => "int4",
        _ => "int8",
    };
    call("pg_numeric", vec![text(name), take(inner)])
}

/// A function call on numerics: PostgreSQL's numeric variant (chosen from the argument
/// types as PostgreSQL chooses it) becomes `pg_numeric(name, …)` or an exact aggregate.
/// `types` are the inferred types of the arguments. Functions mdbc does not compute
/// exactly (`exp`, `ln`, `power`…) become calls that refuse with 0A000 when they run.
pub(crate) fn function(e: &mut Expr, types: &[Option<PgType>]) -> Option<Expr> {
    let Expr::Function(f) = e else {
        return None;
    };
    let name = function_name(f);
    let first = types.first().copied().flatten();
    let any_numeric = types.contains(&Some(PgType::Numeric));
    let plain = f.over.is_none() && f.filter.is_none() && plain_args(f);
    match name.as_str() {
        "sum" if matches!(first, Some(PgType::Numeric | PgType::Int8)) => {
            Some(mark(renamed(f, "pg_numeric_sum")))
        }
        "avg" if first.is_some_and(|t| t == PgType::Numeric || t.is_integer()) => {
            Some(mark(renamed(f, "pg_numeric_avg")))
        }
        _ if !plain => None,
        "abs" | "sign" | "sqrt" | "ceil" | "ceiling" | "floor" | "round" | "trunc" | "scale"
        | "exp" | "ln" | "log10" | "cbrt" | "factorial" | "trim_scale" | "min_scale"
        | "width_bucket"
            if first == Some(PgType::Numeric)
                || (matches!(name.as_str(), "round" | "trunc") && types.len() == 2) =>
        {
            Some(numeric_call(&name, f))
        }
        "mod" | "power" | "pow" | "log" | "gcd" | "lcm" | "greatest" | "least" if any_numeric => {
            Some(numeric_call(&name, f))
        }
        "div" => Some(numeric_call(&name, f)),
        _ => None,
    }
}

/// sqlparser's `CEIL(x)` / `FLOOR(x)` nodes on a numeric (not the `TO field` forms).
pub(crate) fn ceil_floor(name: &str, e: &mut Expr) -> Option<Expr> {
    let (Expr::Ceil { expr, field } | Expr::Floor { expr, field }) = e else {
        return None;
    };
    match field {
        sqlparser::ast::CeilFloorKind::DateTimeField(sqlparser::ast::DateTimeField::NoDateTime) => {
            Some(mark(call("pg_numeric", vec![text(name), take(expr)])))
        }
        sqlparser::ast::CeilFloorKind::Scale(_)
        | sqlparser::ast::CeilFloorKind::DateTimeField(_) => None,
    }
}

fn plain_args(f: &Function) -> bool {
    match &f.args {
        FunctionArguments::List(l) => l.duplicate_treatment.is_none() && l.clauses.is_empty(),
        _ => true,
    }
}

fn renamed(f: &Function, name: &str) -> Expr {
    let mut f = f.clone();
    f.name = ObjectName::from(vec![Ident::new(name)]);
    Expr::Function(f)
}

fn numeric_call(name: &str, f: &Function) -> Expr {
    let op = match name {
        "ceiling" => "ceil",
        "pow" => "power",
        other => other,
    };
    let mut args = vec![text(op)];
    args.extend(function_args(f).into_iter().cloned());
    let c = call("pg_numeric", args);
    if op == "scale" {
        c
    } else {
        mark(c)
    }
}
