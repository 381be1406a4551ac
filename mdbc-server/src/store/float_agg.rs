//! `sum` and `avg` of float4/float8 as PostgreSQL computes them. SQLite's own `sum` and
//! `avg` add in double precision with compensated (Kahan–Babuška–Neumaier) summation,
//! which is more accurate than PostgreSQL's plain running sum and so prints different
//! last digits; `sum(float4)` in PostgreSQL adds in single precision. These add the way
//! PostgreSQL does, in the rows' order, and check overflow as it does (22003).
//!
//! PostgreSQL has no inverse transition for them, so a moving window frame is summed
//! again from its first row; the window form keeps the frame's values to do the same.

use std::collections::VecDeque;

use rusqlite::functions::{Aggregate, Context, FunctionFlags, WindowAggregate};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

/// Registers `pg_float4_sum`, `pg_float8_sum` and `pg_float8_avg`.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    for (name, kind) in [
        ("pg_float4_sum", Kind::Sum4),
        ("pg_float8_sum", Kind::Sum8),
        ("pg_float8_avg", Kind::Avg8),
    ] {
        conn.create_window_function(name, 1, det, FloatAgg(kind))?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    Sum4,
    Sum8,
    Avg8,
}

struct FloatAgg(Kind);

fn overflow(single: bool) -> rusqlite::Error {
    let what = if single { "real" } else { "double precision" };
    rusqlite::Error::UserFunctionError(
        format!("[22003] value out of range: overflow ({what})").into(),
    )
}

impl FloatAgg {
    fn total(&self, values: &VecDeque<f64>) -> rusqlite::Result<Value> {
        if values.is_empty() {
            return Ok(Value::Null);
        }
        match self.0 {
            Kind::Sum4 => {
                let mut acc = 0f32;
                for &v in values {
                    let x = v as f32;
                    let next = acc + x;
                    // PostgreSQL's float4pl: an infinite result from finite inputs errs.
                    if next.is_infinite() && acc.is_finite() && x.is_finite() {
                        return Err(overflow(true));
                    }
                    acc = next;
                }
                Ok(Value::Real(acc as f64))
            }
            Kind::Sum8 | Kind::Avg8 => {
                let mut acc = 0f64;
                for &x in values {
                    let next = acc + x;
                    if next.is_infinite() && acc.is_finite() && x.is_finite() {
                        return Err(overflow(false));
                    }
                    acc = next;
                }
                Ok(Value::Real(match self.0 {
                    Kind::Avg8 => acc / values.len() as f64,
                    _ => acc,
                }))
            }
        }
    }
}

fn push(ctx: &Context<'_>, acc: &mut VecDeque<f64>) -> rusqlite::Result<()> {
    match ctx.get_raw(0) {
        ValueRef::Null => {}
        ValueRef::Real(f) => acc.push_back(f),
        ValueRef::Integer(i) => acc.push_back(i as f64),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let s = String::from_utf8_lossy(t);
            let v = s.trim().parse::<f64>().map_err(|_| {
                rusqlite::Error::UserFunctionError(
                    format!("[22P02] invalid input syntax for type double precision: \"{s}\"")
                        .into(),
                )
            })?;
            acc.push_back(v);
        }
    }
    Ok(())
}

impl Aggregate<VecDeque<f64>, Value> for FloatAgg {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<VecDeque<f64>> {
        Ok(VecDeque::new())
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut VecDeque<f64>) -> rusqlite::Result<()> {
        push(ctx, acc)
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<VecDeque<f64>>) -> rusqlite::Result<Value> {
        match acc {
            Some(values) => self.total(&values),
            None => Ok(Value::Null),
        }
    }
}

impl WindowAggregate<VecDeque<f64>, Value> for FloatAgg {
    fn value(&self, acc: Option<&mut VecDeque<f64>>) -> rusqlite::Result<Value> {
        match acc {
            Some(values) => self.total(values),
            None => Ok(Value::Null),
        }
    }

    // Rows leave a frame in the order they entered it (NULLs never entered).
    fn inverse(&self, ctx: &mut Context<'_>, acc: &mut VecDeque<f64>) -> rusqlite::Result<()> {
        if ctx.get_raw(0) != ValueRef::Null {
            acc.pop_front();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> rusqlite::Result<Option<f64>> {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn.query_row(sql, [], |r| r.get(0))
    }

    #[test]
    fn float4_sums_in_single_precision() {
        // Near 1e8 a real's steps are 8 apart: each +4 is lost in single precision (as in
        // PostgreSQL), where a double sum would keep both.
        let got = one(
            "SELECT pg_float4_sum(x) FROM (SELECT 100000000.0 AS x UNION ALL SELECT 4.0 \
             UNION ALL SELECT 4.0)",
        )
        .unwrap();
        assert_eq!(got, Some(100000000.0));
        assert_eq!(
            one("SELECT pg_float8_avg(x) FROM (SELECT NULL AS x)").unwrap(),
            None
        );
    }

    #[test]
    fn plain_running_sum_like_postgres() {
        // Compensated summation would give exactly 1; the plain running sum does not.
        let got = one(
            "SELECT pg_float8_sum(x) FROM (SELECT 1e100 AS x UNION ALL SELECT 1.0 \
             UNION ALL SELECT -1e100)",
        )
        .unwrap();
        assert_eq!(got, Some(0.0));
        let err = one("SELECT pg_float8_sum(x) FROM (SELECT 1e308 AS x UNION ALL SELECT 1e308)")
            .unwrap_err()
            .to_string();
        assert!(err.contains("22003"), "{err}");
    }
}
