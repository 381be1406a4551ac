//! Date, time and interval expressions, rewritten so that SQLite computes them as
//! PostgreSQL does.
//!
//! Dates, times, timestamps and intervals are PostgreSQL's text in SQLite. SQLite's `+`
//! would add the texts' leading numbers, so every operator whose operands infer as
//! date/time types becomes `pg_datetime('<left type> <op> <right type>', a, b)`, and the
//! date/time functions (`extract`, `date_trunc`, `age`, `to_char`, `AT TIME ZONE`…) become
//! `pg_datetime(name, …)` calls naming their argument types; mdbc-server's datetime module
//! computes them, in the session's time zone where PostgreSQL would. Interval-valued
//! expressions are *marked* `COLLATE pg_interval`, so comparisons, ORDER BY and `min`/`max`
//! order them by span (a month counts 30 days), as PostgreSQL does.

use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, DateTimeField, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArguments, Ident, ObjectName, UnaryOperator, Value,
};

use crate::ast::{call, function_args, function_name, take, text};
use crate::types::PgType;
use crate::INTERVAL_COLLATION;

/// `e COLLATE pg_interval`: an interval-valued expression.
pub(crate) fn mark(e: Expr) -> Expr {
    Expr::Collate {
        expr: Box::new(e),
        collation: ObjectName::from(vec![Ident::new(INTERVAL_COLLATION)]),
    }
}

/// `e COLLATE pg_datetime`: a date/timestamp-valued expression, ordered by its instant.
fn mark_instant(e: Expr) -> Expr {
    if matches!(&e, Expr::Collate { collation, .. }
        if collation.to_string().eq_ignore_ascii_case(crate::DATETIME_COLLATION))
    {
        return e;
    }
    Expr::Collate {
        expr: Box::new(e),
        collation: ObjectName::from(vec![Ident::new(crate::DATETIME_COLLATION)]),
    }
}

/// An expression of type `t` marked for the ordering of its type.
fn marked(e: Expr, t: Option<PgType>) -> Expr {
    match t {
        Some(PgType::Interval) => mark(e),
        Some(PgType::Date | PgType::Timestamp | PgType::Timestamptz) => mark_instant(e),
        _ => e,
    }
}

/// Whether an expression carries the interval mark.
pub(crate) fn is_marked(e: &Expr) -> bool {
    matches!(e, Expr::Collate { collation, .. }
        if collation.to_string().eq_ignore_ascii_case(INTERVAL_COLLATION))
}

fn is_datetime(t: PgType) -> bool {
    matches!(
        t,
        PgType::Date | PgType::Time | PgType::Timestamp | PgType::Timestamptz | PgType::Interval
    )
}

/// The name `pg_datetime` knows a type by.
fn kind(t: PgType) -> Option<&'static str> {
    Some(match t {
        PgType::Date => "date",
        PgType::Time => "time",
        PgType::Timestamp => "timestamp",
        PgType::Timestamptz => "timestamptz",
        PgType::Interval => "interval",
        _ => return None,
    })
}

fn is_number(t: PgType) -> bool {
    t.is_integer() || matches!(t, PgType::Numeric | PgType::Float4 | PgType::Float8)
}

/// The result type of `l op r` on date/time operands, as PostgreSQL's operators define it
/// (None: not a date/time operator mdbc computes).
pub(crate) fn result_type(l: PgType, op: &str, r: PgType) -> Option<PgType> {
    use PgType::*;
    let ts_like = |t: PgType| matches!(t, Timestamp | Timestamptz | Date);
    Some(match (l, op, r) {
        (Date, "+" | "-", n) | (n, "+", Date) if n.is_integer() => Date,
        (Date, "-", Date) => Int4,
        (Interval, "+" | "-", Interval) => Interval,
        (Interval, "*", n) | (n, "*", Interval) if is_number(n) => Interval,
        (Interval, "/", n) if is_number(n) => Interval,
        (Timestamptz, "+" | "-", Interval) | (Interval, "+", Timestamptz) => Timestamptz,
        (Timestamp | Date, "+" | "-", Interval) | (Interval, "+", Timestamp | Date) => Timestamp,
        (Time, "+" | "-", Interval) | (Interval, "+", Time) => Time,
        (Time, "-", Time) => Interval,
        (Date, "+", Time) | (Time, "+", Date) => Timestamp,
        (a, "-", b) if ts_like(a) && ts_like(b) && !(a == Date && b == Date) => Interval,
        _ => return None,
    })
}

/// The types of `l op r` once a quoted literal on one side is resolved as PostgreSQL
/// resolves it: `timestamp + '1 day'` adds an interval, `timestamp - '2020-01-01'`
/// subtracts a timestamp.
fn resolve_operands(
    l: Option<PgType>,
    op: &str,
    r: Option<PgType>,
    left: &Expr,
    right: &Expr,
) -> Option<(PgType, PgType)> {
    let lq = crate::ast::is_quoted(left);
    let rq = crate::ast::is_quoted(right);
    match (l, r) {
        (Some(a), Some(b)) if !(lq && rq) => Some((
            if lq { resolve_unknown(b, op) } else { a },
            if rq { resolve_unknown(a, op) } else { b },
        )),
        (Some(a), None) if rq => Some((a, resolve_unknown(a, op))),
        (None, Some(b)) if lq => Some((resolve_unknown(b, op), b)),
        _ => None,
    }
}

fn resolve_unknown(other: PgType, op: &str) -> PgType {
    match (other, op) {
        (PgType::Timestamp | PgType::Timestamptz | PgType::Time, "+") => PgType::Interval,
        (t, _) => t,
    }
}

/// `a op b` on date/time operands: the `pg_datetime` call, or None when the operands are
/// not date/time values. Operators PostgreSQL lacks (`timestamp + timestamp`) are refused
/// when they run (42883), as PostgreSQL refuses them when it plans.
pub(crate) fn binary(
    left: &mut Expr,
    op: &BinaryOperator,
    right: &mut Expr,
    l: Option<PgType>,
    r: Option<PgType>,
) -> Option<Expr> {
    if !l.is_some_and(is_datetime) && !r.is_some_and(is_datetime) {
        return None;
    }
    let symbol = match op {
        BinaryOperator::Plus => "+",
        BinaryOperator::Minus => "-",
        BinaryOperator::Multiply => "*",
        BinaryOperator::Divide => "/",
        BinaryOperator::Eq
        | BinaryOperator::NotEq
        | BinaryOperator::Lt
        | BinaryOperator::LtEq
        | BinaryOperator::Gt
        | BinaryOperator::GtEq => {
            comparison(left, right, l, r);
            return None;
        }
        BinaryOperator::StringConcat => {
            // A timestamptz joined to text is shown in the session's zone.
            for (e, t) in [(left, l), (right, r)] {
                if t == Some(PgType::Timestamptz) {
                    *e = as_text(take(e), PgType::Timestamptz);
                }
            }
            return None;
        }
        _ => return None,
    };
    let (lt, rt) = resolve_operands(l, symbol, r, left, right)?;
    if lt == PgType::Date && symbol == "+" && crate::ast::is_quoted(right) {
        return Some(unsupported_call(
            "42725",
            "operator is not unique: date + unknown",
        ));
    }
    let name = |t: PgType| kind(t).unwrap_or(if is_number(t) { "number" } else { t.name() });
    let op_text = format!("{} {symbol} {}", name(lt), name(rt));
    let c = call("pg_datetime", vec![text(&op_text), take(left), take(right)]);
    Some(marked(c, result_type(lt, symbol, rt)))
}

/// A call that fails with `code` when it runs.
fn unsupported_call(code: &str, message: &str) -> Expr {
    call("pg_error", vec![text(code), text(message)])
}

/// Comparisons: intervals by span; a date, timestamp or timestamptz compared with another
/// of those types is first converted as PostgreSQL converts it (date to timestamp,
/// timestamp to timestamptz in the session's zone), since their texts differ.
fn comparison(left: &mut Expr, right: &mut Expr, l: Option<PgType>, r: Option<PgType>) {
    if (l == Some(PgType::Interval) || r == Some(PgType::Interval)) && !is_marked(left) {
        *left = mark(take(left));
        return;
    }
    let rank = |t: Option<PgType>| match t {
        Some(PgType::Date) => 1,
        Some(PgType::Timestamp) => 2,
        Some(PgType::Timestamptz) => 3,
        _ => 0,
    };
    let (a, b) = (rank(l), rank(r));
    if a == 0 || b == 0 {
        return;
    }
    if a != b {
        let (lower, target) = if a < b {
            (&mut *left, r)
        } else {
            (&mut *right, l)
        };
        if let Some(t) = target {
            *lower = cast(take(lower), t);
        }
    }
    // Compared by the instant, whatever the texts (BC dates, years past 9999).
    if !matches!(left, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
        *left = mark_instant(take(left));
    }
}

fn cast(e: Expr, t: PgType) -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(e),
        data_type: DataType::Custom(ObjectName::from(vec![Ident::new(t.name())]), vec![]),
        format: None,
    }
}

/// A date/time value as text, as PostgreSQL's output function writes it.
fn as_text(e: Expr, t: PgType) -> Expr {
    match t {
        PgType::Timestamptz => call("pg_datetime", vec![text("text"), text("timestamptz"), e]),
        _ => e,
    }
}

/// `-interval`.
pub(crate) fn unary(op: &UnaryOperator, inner: &mut Expr, t: Option<PgType>) -> Option<Expr> {
    match (op, t) {
        (UnaryOperator::Minus, Some(PgType::Interval)) => {
            Some(mark(call("pg_datetime", vec![text("neg"), take(inner)])))
        }
        _ => None,
    }
}

/// Casts between date/time types that depend on the session's zone, and a timestamptz
/// shown as text: `source` is the operand's type, `target` the cast's.
pub(crate) fn cast_from(inner: &mut Expr, source: PgType, target: PgType) -> Option<Expr> {
    match (source, target) {
        (PgType::Timestamptz, PgType::Timestamp | PgType::Date | PgType::Time) => Some(call(
            "pg_datetime",
            vec![text("local"), text(kind(target)?), take(inner)],
        )),
        (PgType::Timestamptz, t) if t.is_string() => {
            Some(as_text(take(inner), PgType::Timestamptz))
        }
        _ => None,
    }
}

/// `INTERVAL '1' DAY`, `INTERVAL '1:30' MINUTE TO SECOND`: the literal as interval text
/// PostgreSQL would read it as, then a cast to interval. None: a qualifier mdbc does not
/// apply (refused by the caller).
pub(crate) fn interval_literal(iv: &sqlparser::ast::Interval) -> Option<Expr> {
    let value = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            _ => return None,
        },
        _ => return None,
    };
    let unit = |f: &DateTimeField| -> Option<&'static str> {
        Some(match f {
            DateTimeField::Year | DateTimeField::Years => "year",
            DateTimeField::Month | DateTimeField::Months => "month",
            DateTimeField::Day | DateTimeField::Days => "day",
            DateTimeField::Hour | DateTimeField::Hours => "hour",
            DateTimeField::Minute | DateTimeField::Minutes => "minute",
            DateTimeField::Second | DateTimeField::Seconds => "second",
            _ => return None,
        })
    };
    if iv.fractional_seconds_precision.is_some() || iv.leading_precision.is_some() {
        return None;
    }
    let plain_number = |s: &str| {
        let t = s.trim().trim_start_matches(['+', '-']);
        !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.')
    };
    let text_value = match (&iv.leading_field, &iv.last_field) {
        (None, None) => value,
        (Some(f), None) if plain_number(&value) => format!("{value} {}", unit(f)?),
        (Some(f), None)
            if unit(f) == Some("second") || unit(f) == Some("day") && value.contains(':') =>
        {
            value
        }
        (Some(_), None) => return None,
        // `MINUTE TO SECOND` reads `m:s`.
        (Some(DateTimeField::Minute), Some(DateTimeField::Second))
            if value.matches(':').count() == 1 =>
        {
            let neg = value.trim().starts_with('-');
            let body = value.trim().trim_start_matches(['+', '-']);
            format!("{}00:{body}", if neg { "-" } else { "" })
        }
        (Some(_), Some(DateTimeField::Second)) => value,
        // `HOUR TO MINUTE`, `DAY TO HOUR`…: fields below the last are dropped; taken only
        // when there are none to drop (no seconds written).
        (Some(_), Some(last)) => {
            let colons = value.matches(':').count();
            let keeps = match unit(last)? {
                "minute" => colons <= 1,
                "hour" => colons == 0,
                "day" => colons == 0,
                "year" | "month" => !value.contains(' ') && colons == 0,
                _ => false,
            };
            if !keeps {
                return None;
            }
            if plain_number(&value) {
                format!("{value} {}", unit(last)?)
            } else {
                value
            }
        }
        (None, Some(_)) => return None,
    };
    Some(mark(crate::ast::coerce(
        text(&text_value),
        PgType::Interval,
        -1,
    )))
}

/// `EXTRACT(field FROM x)`: numeric, as in PostgreSQL 14 and later.
pub(crate) fn extract(field: &DateTimeField, inner: &mut Expr, t: Option<PgType>) -> Option<Expr> {
    let k = kind(t?)?;
    let unit = match field {
        DateTimeField::Custom(id) => id.value.clone(),
        other => other.to_string(),
    };
    Some(crate::numeric::mark(call(
        "pg_datetime",
        vec![
            text("extract"),
            text(&unit.to_ascii_lowercase()),
            text(k),
            take(inner),
        ],
    )))
}

/// `x AT TIME ZONE z`.
pub(crate) fn at_time_zone(
    ts: &mut Expr,
    zone: &mut Expr,
    t: Option<PgType>,
    zone_t: Option<PgType>,
) -> Option<Expr> {
    let k = match t? {
        PgType::Timestamp => "timestamp",
        PgType::Timestamptz => "timestamptz",
        _ => return None,
    };
    let op = if zone_t == Some(PgType::Interval) && !crate::ast::is_quoted(zone) {
        "at_time_zone_interval"
    } else {
        "at_time_zone"
    };
    Some(call(
        "pg_datetime",
        vec![text(op), text(k), take(ts), take(zone)],
    ))
}

/// The arguments of `make_interval`, positional or named (`days => 10`), in its order.
fn make_interval_args(f: &Function) -> Option<Vec<Expr>> {
    const NAMES: [&str; 7] = ["years", "months", "weeks", "days", "hours", "mins", "secs"];
    let mut out: Vec<Expr> = vec![crate::ast::number(0); 7];
    let FunctionArguments::List(l) = &f.args else {
        return Some(out);
    };
    for (i, a) in l.args.iter().enumerate() {
        match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) if i < 7 => out[i] = e.clone(),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            }
            | FunctionArg::ExprNamed {
                name: Expr::Identifier(name),
                arg: FunctionArgExpr::Expr(e),
                ..
            } => {
                let n = name.value.to_ascii_lowercase();
                let pos = NAMES.iter().position(|x| *x == n)?;
                out[pos] = e.clone();
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A call of a date/time function: `pg_datetime(name, …)` with the argument types it needs.
pub(crate) fn function(e: &mut Expr, types: &[Option<PgType>]) -> Option<Expr> {
    let Expr::Function(f) = e else {
        return None;
    };
    let name = function_name(f);
    // Aggregates of intervals, plain or as window functions.
    let first = types.first().copied().flatten();
    if first == Some(PgType::Interval) && function_args(f).len() == 1 {
        match name.as_str() {
            "sum" | "avg" => {
                let mut g = f.clone();
                g.name = ObjectName::from(vec![Ident::new(if name == "sum" {
                    "pg_interval_sum"
                } else {
                    "pg_interval_avg"
                })]);
                return Some(mark(Expr::Function(g)));
            }
            "min" | "max" => {
                let mut g = f.clone();
                if let FunctionArguments::List(l) = &mut g.args {
                    if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(a))) = l.args.first_mut()
                    {
                        if !is_marked(a) {
                            *a = mark(take(a));
                        }
                    }
                }
                return Some(mark(Expr::Function(g)));
            }
            _ => {}
        }
    }
    if f.over.is_some() || f.filter.is_some() {
        return None;
    }
    let args: Vec<Expr> = function_args(f).into_iter().cloned().collect();
    let t = |i: usize| types.get(i).copied().flatten();
    let pg = |mut a: Vec<Expr>, op: &str| {
        a.insert(0, text(op));
        call("pg_datetime", a)
    };
    // The argument's type, with a quoted literal read as `default` (PostgreSQL resolves
    // an unknown literal to the function's preferred variant).
    let k = |i: usize, default: PgType| -> Option<&'static str> {
        match (t(i), args.get(i)) {
            (_, Some(a)) if crate::ast::is_quoted(a) => kind(default),
            (Some(ty), _) => kind(ty),
            _ => None,
        }
    };
    let named_args = matches!(&f.args, FunctionArguments::List(l)
        if l.args.iter().any(|a| !matches!(a, FunctionArg::Unnamed(_))));
    if named_args && name != "make_interval" {
        return None;
    }
    Some(match (name.as_str(), args.len()) {
        ("date_part", 2) => {
            let k = k(1, PgType::Timestamptz)?;
            let mut a = vec![args[0].clone(), text(k), args[1].clone()];
            a.insert(0, text("date_part"));
            call("pg_datetime", a)
        }
        ("date_trunc", 2 | 3) => {
            let k = k(1, PgType::Timestamptz)?;
            let mut a = vec![args[0].clone(), text(k), args[1].clone()];
            if let Some(z) = args.get(2) {
                a.push(z.clone());
            }
            let c = pg(a, "date_trunc");
            if k == "interval" {
                mark(c)
            } else {
                c
            }
        }
        ("age", 1 | 2) => {
            let k = k(0, PgType::Timestamptz)?;
            let mut a = vec![text(k)];
            a.extend(args.iter().cloned());
            mark(pg(a, "age"))
        }
        ("justify_hours" | "justify_days" | "justify_interval", 1) => mark(pg(args.clone(), &name)),
        ("make_interval", _) => mark(pg(make_interval_args(f)?, "make_interval")),
        ("make_date", 3)
        | ("make_time", 3)
        | ("make_timestamp", 6)
        | ("make_timestamptz", 6 | 7) => pg(args.clone(), &name),
        ("to_char", 2) => {
            let k = kind(t(0)?)?;
            pg(vec![text(k), args[0].clone(), args[1].clone()], "to_char")
        }
        ("to_timestamp", 2) | ("to_date", 2) => pg(args.clone(), &name),
        ("date_bin", 3) => {
            let k = match t(1) {
                Some(PgType::Timestamp) => "timestamp",
                Some(PgType::Timestamptz) => "timestamptz",
                _ => return None,
            };
            let mut a = vec![text(k)];
            a.extend(args.iter().cloned());
            mark_instant(pg(a, "date_bin"))
        }
        ("to_timestamp", 1) => pg(args.clone(), "to_timestamp_epoch"),
        ("isfinite", 1) => {
            let k = k(0, PgType::Timestamptz)?;
            pg(vec![text(k), args[0].clone()], "isfinite")
        }
        ("timezone", 2) => {
            let k = match t(1)? {
                PgType::Timestamp => "timestamp",
                PgType::Timestamptz => "timestamptz",
                _ => return None,
            };
            let op = if t(0) == Some(PgType::Interval) && !crate::ast::is_quoted(&args[0]) {
                "at_time_zone_interval"
            } else {
                "at_time_zone"
            };
            pg(vec![text(k), args[1].clone(), args[0].clone()], op)
        }
        _ => return None,
    })
}

/// Whether [`function_type`] may know `name`'s type (its arguments' types are inferred
/// only then).
pub(crate) fn is_function(name: &str) -> bool {
    matches!(
        name,
        "date_part"
            | "date_trunc"
            | "age"
            | "justify_hours"
            | "justify_days"
            | "justify_interval"
            | "make_interval"
            | "make_date"
            | "to_date"
            | "make_time"
            | "make_timestamp"
            | "make_timestamptz"
            | "to_timestamp"
            | "isfinite"
            | "date_bin"
            | "localtimestamp"
            | "localtime"
            | "timezone"
            | "pg_datetime"
            | "pg_interval_sum"
            | "pg_interval_avg"
            | "sum"
            | "avg"
            | "min"
            | "max"
    )
}

/// The result type of a date/time function (for inference), given its argument types.
pub(crate) fn function_type(
    name: &str,
    types: &[Option<PgType>],
    args: &[&Expr],
) -> Option<PgType> {
    let t0 = types.first().copied().flatten();
    let t1 = types.get(1).copied().flatten();
    Some(match name {
        "date_part" => PgType::Float8,
        "date_trunc" => match t1 {
            Some(PgType::Timestamp) => PgType::Timestamp,
            Some(PgType::Interval) => PgType::Interval,
            _ => PgType::Timestamptz,
        },
        "age" | "justify_hours" | "justify_days" | "justify_interval" | "make_interval" => {
            PgType::Interval
        }
        "make_date" | "to_date" => PgType::Date,
        "make_time" => PgType::Time,
        "make_timestamp" => PgType::Timestamp,
        "make_timestamptz" | "to_timestamp" => PgType::Timestamptz,
        "isfinite" => PgType::Bool,
        "date_bin" => match t1 {
            Some(t @ (PgType::Timestamp | PgType::Timestamptz)) => t,
            _ => return None,
        },
        "localtimestamp" => PgType::Timestamp,
        "localtime" => PgType::Time,
        "timezone" => match t1 {
            Some(PgType::Timestamp) => PgType::Timestamptz,
            Some(PgType::Timestamptz) => PgType::Timestamp,
            _ => return None,
        },
        "pg_datetime" => return pg_datetime_type(args),
        "pg_interval_sum" | "pg_interval_avg" => PgType::Interval,
        "sum" | "avg" | "min" | "max" if t0 == Some(PgType::Interval) => PgType::Interval,
        _ => return None,
    })
}

/// The type of a `pg_datetime(op, …)` call this module wrote.
fn pg_datetime_type(args: &[&Expr]) -> Option<PgType> {
    let op = match args.first()? {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            _ => return None,
        },
        _ => return None,
    };
    let lit = |i: usize| -> Option<String> {
        match args.get(i)? {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        }
    };
    let of_kind = |k: &str| -> Option<PgType> {
        Some(match k {
            "date" => PgType::Date,
            "time" => PgType::Time,
            "timestamp" => PgType::Timestamp,
            "timestamptz" => PgType::Timestamptz,
            "interval" => PgType::Interval,
            _ => return None,
        })
    };
    if let Some((l, rest)) = op.split_once(' ') {
        let (sym, r) = rest.split_once(' ')?;
        let num = |k: &str| of_kind(k).unwrap_or(PgType::Float8);
        return result_type(num(l), sym, num(r));
    }
    Some(match op.as_str() {
        "neg" | "age" | "justify_hours" | "justify_days" | "justify_interval" | "make_interval" => {
            PgType::Interval
        }
        "extract" => PgType::Numeric,
        "date_part" => PgType::Float8,
        "date_trunc" => match lit(2).as_deref() {
            Some("timestamp") => PgType::Timestamp,
            Some("interval") => PgType::Interval,
            _ => PgType::Timestamptz,
        },
        "make_date" | "to_date" => PgType::Date,
        "make_time" => PgType::Time,
        "make_timestamp" => PgType::Timestamp,
        "make_timestamptz" | "to_timestamp" | "to_timestamp_epoch" => PgType::Timestamptz,
        "date_bin" => of_kind(&lit(1)?)?,
        "to_char" | "text" | "timezone_name" => PgType::Text,
        "isfinite" => PgType::Bool,
        "at_time_zone" | "at_time_zone_interval" => match lit(1).as_deref() {
            Some("timestamp") => PgType::Timestamptz,
            _ => PgType::Timestamp,
        },
        "local" => of_kind(&lit(1)?)?,
        _ => return None,
    })
}

/// Whether a `generate_series` start (as the rewrite sees it, its expressions already
/// translated) is a timestamp, a timestamptz or a date: the kind the series is computed
/// in (a date series is a timestamptz one, as PostgreSQL resolves it).
pub(crate) fn series_kind(start: &Expr) -> Option<&'static str> {
    let e = match start {
        Expr::Nested(inner) => inner.as_ref(),
        e => e,
    };
    let Expr::Function(f) = e else {
        return None;
    };
    let args = function_args(f);
    match function_name(f).as_str() {
        "pg_now" | "pg_statement_timestamp" | "pg_clock_timestamp" | "pg_current_date" => {
            Some("timestamptz")
        }
        "pg_coerce" => match args.get(1) {
            Some(Expr::Value(v)) => match &v.value {
                Value::Number(oid, _) => match oid.as_str() {
                    "1114" => Some("timestamp"),
                    "1184" | "1082" => Some("timestamptz"),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        },
        "pg_datetime" => match pg_datetime_type(&args)? {
            PgType::Timestamp => Some("timestamp"),
            PgType::Timestamptz | PgType::Date => Some("timestamptz"),
            _ => None,
        },
        _ => None,
    }
}

/// `generate_series(start, stop, step)` over timestamps, as a subquery SQLite can run: a
/// recursive CTE that adds the step to the previous value (so month steps clamp as
/// PostgreSQL's do, `Jan 31, Feb 29, Mar 29`) while the value has not passed `stop`.
/// `pg_datetime('series_start' | 'series_next', …)` give NULL past the end.
pub(crate) fn series_subquery(
    args: Vec<Expr>,
    kind: &str,
    column: &str,
) -> crate::error::Result<sqlparser::ast::Query> {
    let sql = format!(
        "SELECT v AS {col} FROM (WITH RECURSIVE s(v) AS (\
         SELECT pg_datetime('series_start', '{kind}', __mdbc_a, __mdbc_b, __mdbc_c) \
         UNION ALL SELECT pg_datetime('series_next', '{kind}', v, __mdbc_b, __mdbc_c) \
         FROM s WHERE v IS NOT NULL) SELECT v FROM s WHERE v IS NOT NULL)",
        col = crate::ast::quote_ident(column)
    );
    let mut q = crate::ast::parse_query(&sql)?;
    struct Fill(Vec<Expr>);
    impl sqlparser::ast::VisitorMut for Fill {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
            if let Expr::Identifier(id) = e {
                let i = match id.value.as_str() {
                    "__mdbc_a" => 0,
                    "__mdbc_b" => 1,
                    "__mdbc_c" => 2,
                    _ => return std::ops::ControlFlow::Continue(()),
                };
                if let Some(x) = self.0.get(i) {
                    *e = x.clone();
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = sqlparser::ast::VisitMut::visit(&mut q, &mut Fill(args));
    Ok(q)
}
