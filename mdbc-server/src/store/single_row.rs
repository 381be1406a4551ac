//! `pg_scalar(v)`: the value of a scalar subquery, which PostgreSQL requires to return at
//! most one row. SQLite takes the first row of a scalar subquery and ignores the rest, so
//! translation runs a subquery that may return several through this aggregate: no row
//! gives NULL, one row its value, a second row the error PostgreSQL raises (21000).

use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::Value;
use rusqlite::Connection;

/// Registers `pg_scalar` on a connection.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_aggregate_function("pg_scalar", 1, flags, Scalar)
}

struct Scalar;

impl Aggregate<Option<Value>, Value> for Scalar {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Option<Value>> {
        Ok(None)
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut Option<Value>) -> rusqlite::Result<()> {
        if acc.is_some() {
            return Err(rusqlite::Error::UserFunctionError(
                "[21000] more than one row returned by a subquery used as an expression".into(),
            ));
        }
        *acc = Some(ctx.get::<Value>(0)?);
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<Option<Value>>) -> rusqlite::Result<Value> {
        Ok(acc.flatten().unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_or_none_or_an_error() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let one: Option<String> = conn
            .query_row("SELECT pg_scalar(x) FROM (SELECT 'a' AS x)", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(one.as_deref(), Some("a"));
        let none: Option<i64> = conn
            .query_row(
                "SELECT pg_scalar(x) FROM (SELECT 1 AS x) WHERE 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(none, None);
        let err = conn
            .query_row(
                "SELECT pg_scalar(x) FROM (SELECT 1 AS x UNION ALL SELECT 2)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("21000"), "{err}");
    }
}
