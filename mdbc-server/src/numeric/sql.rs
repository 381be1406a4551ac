//! What SQLite needs for numerics: the `pg_numeric` collation, the `pg_numeric(op, …)`
//! function every numeric operation and function is translated into, and the exact
//! `pg_numeric_sum` / `pg_numeric_avg` aggregates (also window functions).

use rusqlite::functions::{Aggregate, Context, FunctionFlags, WindowAggregate};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use std::collections::BTreeMap;

use num_bigint::BigInt;

use super::{compare_text, rescale_m, Numeric, NumericError, Rounding};

/// The collation numeric columns are declared with (sql_capture names it too).
pub const COLLATION: &str = sql_capture::NUMERIC_COLLATION;

/// Registers the collation, `pg_numeric` and the aggregates on a connection.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_collation(COLLATION, compare_text)?;
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("pg_numeric", -1, det, |ctx| {
        call(ctx)
            .map_err(|e| rusqlite::Error::UserFunctionError(format!("[{}] {e}", e.code()).into()))
    })?;
    conn.create_window_function("pg_numeric_sum", 1, det, Sum { avg: false })?;
    conn.create_window_function("pg_numeric_avg", 1, det, Sum { avg: true })?;
    Ok(())
}

/// An argument as a numeric: integers exactly, reals by their shortest text (values
/// stored before numerics were text, or computed by SQLite), text parsed.
pub fn numeric_arg(v: ValueRef<'_>) -> Result<Option<Numeric>, NumericError> {
    Ok(Some(match v {
        ValueRef::Null => return Ok(None),
        ValueRef::Integer(i) => Numeric::from_i64(i),
        ValueRef::Real(f) if f.is_nan() => Numeric::NaN,
        ValueRef::Real(f) if f.is_infinite() => Numeric::Inf(f < 0.0),
        ValueRef::Real(f) => Numeric::parse(&format!("{f}"))?,
        ValueRef::Text(b) | ValueRef::Blob(b) => Numeric::parse(&String::from_utf8_lossy(b))?,
    }))
}

/// `pg_numeric(op, a [, b])`. NULL in, NULL out (except where noted).
fn call(ctx: &Context<'_>) -> Result<Value, NumericError> {
    let op = match ctx.get_raw(0) {
        ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or(""),
        _ => "",
    };
    let arg = |i: usize| -> Result<Option<Numeric>, NumericError> {
        if i < ctx.len() {
            numeric_arg(ctx.get_raw(i))
        } else {
            Ok(None)
        }
    };
    if op == "greatest" || op == "least" {
        // NULLs are skipped; the result is NULL only when every argument is.
        let mut best: Option<Numeric> = None;
        for i in 1..ctx.len() {
            if let Some(x) = arg(i)? {
                let better =
                    best.as_ref()
                        .is_none_or(|b| if op == "greatest" { x > *b } else { x < *b });
                if better {
                    best = Some(x);
                }
            }
        }
        return Ok(best.map_or(Value::Null, |b| Value::Text(b.to_string())));
    }
    let Some(a) = arg(1)? else {
        return Ok(Value::Null);
    };
    let int_arg = |i: usize| -> Option<i64> {
        match ctx.get_raw(i) {
            ValueRef::Integer(v) => Some(v),
            ValueRef::Real(f) => Some(f as i64),
            ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
            _ => None,
        }
    };
    let binary = |f: fn(&Numeric, &Numeric) -> Result<Numeric, NumericError>| {
        Ok(match arg(2)? {
            Some(b) => Value::Text(f(&a, &b)?.to_string()),
            None => Value::Null,
        })
    };
    let unary = |n: Numeric| Ok(Value::Text(n.to_string()));
    match op {
        "+" => binary(Numeric::add),
        "-" => binary(Numeric::sub),
        "*" => binary(Numeric::mul),
        "/" => binary(Numeric::div),
        "%" | "mod" => binary(Numeric::rem),
        "div" => binary(Numeric::div_trunc),
        "gcd" => binary(Numeric::gcd),
        "lcm" => binary(Numeric::lcm),
        "power" => binary(Numeric::power),
        "exp" => unary(a.exp()?),
        "ln" => unary(a.ln()?),
        // log(x) is log(10, x); log(b, x) takes the base first.
        "log" | "log10" => match arg(2)? {
            Some(x) if op == "log" => Ok(Value::Text(x.log(&a)?.to_string())),
            Some(_) => Ok(Value::Null),
            None if ctx.len() > 2 => Ok(Value::Null),
            None => unary(a.log(&Numeric::from_i64(10))?),
        },
        "neg" => unary(a.neg()),
        "abs" => unary(a.abs()),
        "sign" => unary(a.sign()),
        "sqrt" => unary(a.sqrt()?),
        "ceil" | "ceiling" => unary(a.ceil_floor(true)?),
        "floor" => unary(a.ceil_floor(false)?),
        "round" | "trunc" => {
            let rounding = if op == "round" {
                Rounding::HalfAway
            } else {
                Rounding::Truncate
            };
            let scale = if ctx.len() > 2 {
                match int_arg(2) {
                    Some(s) => s,
                    None => return Ok(Value::Null),
                }
            } else {
                0
            };
            unary(a.round_to(scale, rounding)?)
        }
        "scale" => Ok(a
            .scale()
            .map_or(Value::Null, |s| Value::Integer(i64::from(s)))),
        "int2" => Ok(Value::Integer(a.to_int(16)?)),
        "int4" => Ok(Value::Integer(a.to_int(32)?)),
        "int8" => Ok(Value::Integer(a.to_int(64)?)),
        // The value as numeric, unchanged (a literal or a column read as numeric text).
        "value" => unary(a),
        other => Err(NumericError::Unsupported(other.to_string())),
    }
}

/// `sum(numeric|int8)` and `avg(numeric|integer)`: exact, NaN and the infinities as
/// PostgreSQL adds them; avg divides with numeric division's scale rule.
struct Sum {
    avg: bool,
}

/// The running state: the finite values' exact sum, how many values of each display
/// scale are in it (a moving window's result has the largest scale still present, as in
/// PostgreSQL), and the special values counted apart so that any row can leave the window.
#[derive(Default)]
struct SumState {
    finite: Option<BigInt>,
    scale: u32,
    scales: BTreeMap<u32, u64>,
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
    count: i64,
}

impl SumState {
    fn add(&mut self, x: Numeric, sign: i64) -> Result<(), NumericError> {
        let step = |n: &mut u64| {
            if sign > 0 {
                *n += 1
            } else {
                *n = n.saturating_sub(1)
            }
        };
        match x {
            Numeric::NaN => step(&mut self.nan),
            Numeric::Inf(false) => step(&mut self.pos_inf),
            Numeric::Inf(true) => step(&mut self.neg_inf),
            Numeric::Finite { m, scale } => {
                let s = self.scale.max(scale);
                let acc = self.finite.take().unwrap_or_default();
                let acc = rescale_m(&acc, self.scale, s, Rounding::Truncate);
                let m = rescale_m(&m, scale, s, Rounding::Truncate);
                self.finite = Some(if sign > 0 { acc + m } else { acc - m });
                self.scale = s;
                let n = self.scales.entry(scale).or_default();
                step(n);
                if *n == 0 {
                    self.scales.remove(&scale);
                }
            }
        }
        self.count += sign;
        Ok(())
    }

    fn total(&self) -> Result<Option<Numeric>, NumericError> {
        if self.count <= 0 {
            return Ok(None);
        }
        if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) {
            return Ok(Some(Numeric::NaN));
        }
        if self.pos_inf > 0 || self.neg_inf > 0 {
            return Ok(Some(Numeric::Inf(self.neg_inf > 0)));
        }
        let shown = self.scales.keys().next_back().copied().unwrap_or(0);
        let m = self.finite.clone().unwrap_or_default();
        Numeric::finite(rescale_m(&m, self.scale, shown, Rounding::Truncate), shown).map(Some)
    }
}

impl Sum {
    fn result(&self, acc: Option<&SumState>) -> rusqlite::Result<Value> {
        let Some(state) = acc else {
            return Ok(Value::Null);
        };
        let Some(sum) = state.total().map_err(user_error)? else {
            return Ok(Value::Null);
        };
        let out = if self.avg {
            sum.div(&Numeric::from_i64(state.count))
                .map_err(user_error)?
        } else {
            sum
        };
        Ok(Value::Text(out.to_string()))
    }
}

fn user_error(e: NumericError) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(format!("[{}] {e}", e.code()).into())
}

impl Aggregate<SumState, Value> for Sum {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<SumState> {
        Ok(SumState::default())
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut SumState) -> rusqlite::Result<()> {
        if let Some(x) = numeric_arg(ctx.get_raw(0)).map_err(user_error)? {
            acc.add(x, 1).map_err(user_error)?;
        }
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<SumState>) -> rusqlite::Result<Value> {
        self.result(acc.as_ref())
    }
}

impl WindowAggregate<SumState, Value> for Sum {
    fn value(&self, acc: Option<&mut SumState>) -> rusqlite::Result<Value> {
        self.result(acc.map(|a| &*a))
    }

    fn inverse(&self, ctx: &mut Context<'_>, acc: &mut SumState) -> rusqlite::Result<()> {
        if let Some(x) = numeric_arg(ctx.get_raw(0)).map_err(user_error)? {
            acc.add(x, -1).map_err(user_error)?;
        }
        Ok(())
    }
}
