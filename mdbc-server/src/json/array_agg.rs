//! `pg_array_agg_arrays(a)`: `array_agg` of arrays and `ARRAY(SELECT <array> …)`, one
//! dimension more. mdbc keeps arrays as JSON arrays, so the result is the JSON array of
//! the inputs; what PostgreSQL refuses is refused here with its SQLSTATE: a NULL input
//! (22004), an empty one, or inputs whose dimensions differ (2202E). A window function as
//! well (`array_agg(a) OVER (…)` needs rows to leave the frame).

use std::collections::VecDeque;

use rusqlite::functions::{Aggregate, Context, FunctionFlags, WindowAggregate};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use serde_json::Value as Json;

/// Registers the aggregate on a connection.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_window_function("pg_array_agg_arrays", 1, det, ArrayAgg)
}

struct ArrayAgg;

fn error(code: &str, message: &str) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(format!("[{code}] {message}").into())
}

/// The dimensions of a stored array (sizes, outermost first).
fn dims(v: &Json) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = v;
    while let Json::Array(items) = at {
        out.push(items.len());
        match items.first() {
            Some(first) => at = first,
            None => break,
        }
    }
    out
}

fn input(ctx: &Context<'_>) -> rusqlite::Result<Json> {
    let text = match ctx.get_raw(0) {
        ValueRef::Null => return Err(error("22004", "cannot accumulate null arrays")),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        _ => {
            return Err(error(
                "22P02",
                "array_agg of arrays got a value that is not one",
            ))
        }
    };
    let v: Json = serde_json::from_str(&text)
        .map_err(|_| error("22P02", "array_agg of arrays got a value that is not one"))?;
    match &v {
        Json::Array(items) if items.is_empty() => {
            Err(error("2202E", "cannot accumulate empty arrays"))
        }
        Json::Array(_) => Ok(v),
        _ => Err(error(
            "22P02",
            "array_agg of arrays got a value that is not one",
        )),
    }
}

impl ArrayAgg {
    fn push(ctx: &Context<'_>, acc: &mut VecDeque<Json>) -> rusqlite::Result<()> {
        let v = input(ctx)?;
        if let Some(first) = acc.front() {
            if dims(first) != dims(&v) {
                return Err(error(
                    "2202E",
                    "cannot accumulate arrays of different dimensionality",
                ));
            }
        }
        acc.push_back(v);
        Ok(())
    }

    fn result(acc: Option<&VecDeque<Json>>) -> Value {
        match acc {
            Some(items) if !items.is_empty() => {
                Value::Text(Json::Array(items.iter().cloned().collect()).to_string())
            }
            _ => Value::Null,
        }
    }
}

impl Aggregate<VecDeque<Json>, Value> for ArrayAgg {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<VecDeque<Json>> {
        Ok(VecDeque::new())
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut VecDeque<Json>) -> rusqlite::Result<()> {
        Self::push(ctx, acc)
    }

    fn finalize(
        &self,
        _: &mut Context<'_>,
        acc: Option<VecDeque<Json>>,
    ) -> rusqlite::Result<Value> {
        Ok(Self::result(acc.as_ref()))
    }
}

impl WindowAggregate<VecDeque<Json>, Value> for ArrayAgg {
    fn value(&self, acc: Option<&mut VecDeque<Json>>) -> rusqlite::Result<Value> {
        Ok(Self::result(acc.map(|a| &*a)))
    }

    // Rows leave a frame in the order they entered it.
    fn inverse(&self, _: &mut Context<'_>, acc: &mut VecDeque<Json>) -> rusqlite::Result<()> {
        acc.pop_front();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str) -> rusqlite::Result<Option<String>> {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn.query_row(sql, [], |r| r.get(0))
    }

    #[test]
    fn gathers_arrays_one_dimension_up() {
        let got = run(
            "SELECT pg_array_agg_arrays(a) FROM (SELECT '[1,2]' AS a UNION ALL SELECT '[3,4]')",
        );
        assert_eq!(got.unwrap().as_deref(), Some("[[1,2],[3,4]]"));
        let none = run("SELECT pg_array_agg_arrays(a) FROM (SELECT '[1]' AS a) WHERE 0");
        assert_eq!(none.unwrap(), None);
    }

    #[test]
    fn refuses_what_postgres_refuses() {
        for (sql, code) in [
            ("SELECT pg_array_agg_arrays(NULL)", "22004"),
            ("SELECT pg_array_agg_arrays('[]')", "2202E"),
            (
                "SELECT pg_array_agg_arrays(a) FROM (SELECT '[1,2]' AS a UNION ALL SELECT '[3]')",
                "2202E",
            ),
            (
                "SELECT pg_array_agg_arrays(a) FROM (SELECT '[[1]]' AS a UNION ALL SELECT '[3]')",
                "2202E",
            ),
        ] {
            let err = run(sql).unwrap_err().to_string();
            assert!(err.contains(code), "{sql}: {err}");
        }
    }
}
