//! mdbc's own tables in each site's SQLite file: migrations applied in order at start-up,
//! and values written by older versions brought to today's storage once.

use rusqlite::Connection;

use super::error::StoreError;
use sql_capture::quote_ident;

/// Migrations of mdbc's own tables, applied in order, counted in `PRAGMA user_version`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_catalog.sql"),
    include_str!("../../../migrations/sqlite/0002_pg_catalog.sql"),
    include_str!("../../../migrations/sqlite/0003_column_defaults.sql"),
    include_str!("../../../migrations/sqlite/0004_constraint_names.sql"),
    include_str!("../../../migrations/sqlite/0005_replication.sql"),
    include_str!("../../../migrations/sqlite/0006_index_definitions.sql"),
    include_str!("../../../migrations/sqlite/0007_comments.sql"),
    include_str!("../../../migrations/sqlite/0008_views.sql"),
    include_str!("../../../migrations/sqlite/0009_sequences.sql"),
];

/// SQLite keeps allocation statistics behind one process-wide mutex taken on every
/// allocation; with a connection per client thread that mutex is contended on every query
/// (futex calls in a select-only profile). mdbc never reads the statistics.
pub(super) fn disable_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config only sets a global option; called before SQLite is
        // initialised (this runs before the process opens its first connection). If it
        // comes too late, SQLite returns SQLITE_MISUSE and changes nothing.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!("SQLite memory statistics stay on (sqlite3_config returned {rc})");
        }
    });
}

pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}

/// Brings values written by older versions to today's storage, once per data dir:
/// `char(n)` is kept without its padding, and indexes are rebuilt because `lower`/`upper`
/// now map Unicode (an expression index over them could otherwise disagree with its
/// table). `conn` has mdbc's SQL functions registered: an expression index may call them.
pub(super) fn upgrade_values(conn: &Connection) -> Result<(), StoreError> {
    let done: bool = conn
        .query_row(
            "SELECT count(*) FROM __mdbc_meta WHERE key = 'values_v2'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    if !done {
        trim_char_padding(conn)?;
    }
    exact_numerics(conn)?;
    ordered_intervals(conn)?;
    ordered_datetimes(conn)?;
    ordered_jsonb(conn)
}

fn trim_char_padding(conn: &Connection) -> Result<(), StoreError> {
    let columns: Vec<(String, String)> = {
        let mut stmt = conn.prepare("SELECT tbl, col FROM __mdbc_columns WHERE pg_type = 1042")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut sql = String::from("BEGIN IMMEDIATE;");
    for (tbl, col) in &columns {
        sql.push_str(&format!(
            "UPDATE {t} SET {c} = rtrim({c}, ' ') WHERE {c} LIKE '% ';",
            t = quote_ident(tbl),
            c = quote_ident(col)
        ));
    }
    sql.push_str(
        "REINDEX; INSERT INTO __mdbc_meta (key, value) VALUES ('values_v2', '1'); COMMIT;",
    );
    if let Err(e) = conn.execute_batch(&sql) {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(e.into());
    }
    Ok(())
}

/// Numeric columns written before numerics were exact: declared `NUMERIC` (SQLite's
/// numeric affinity, values stored as integers or doubles). Each becomes
/// `TEXT COLLATE pg_numeric` in the table's schema text, and its values become their
/// numeric text (a double by its shortest text, which is the decimal it was parsed from).
/// Once per data dir (`values_v3`).
fn exact_numerics(conn: &Connection) -> Result<(), StoreError> {
    redeclare_columns(
        conn,
        "values_v3",
        1700,
        ("NUMERIC", "TEXT COLLATE pg_numeric"),
        Some(|t: &str, c: &str| {
            format!("UPDATE {t} SET {c} = pg_numeric('value', {c}) WHERE typeof({c}) IN ('integer', 'real');")
        }),
    )
}

/// Interval columns written before intervals had a collation: declared `TEXT`, so ORDER BY,
/// indexes and comparisons ordered their text. Each becomes `TEXT COLLATE pg_interval`; the
/// stored values are already PostgreSQL's text. Once per data dir (`values_v4`).
fn ordered_intervals(conn: &Connection) -> Result<(), StoreError> {
    redeclare_columns(
        conn,
        "values_v4",
        1186,
        ("TEXT", "TEXT COLLATE pg_interval"),
        None::<fn(&str, &str) -> String>,
    )
}

/// Date, timestamp and timestamptz columns written before they had a collation: their
/// text sorts right for years 1 to 9999, and the collation orders BC dates and later years
/// too. Each becomes `TEXT COLLATE pg_datetime` (values unchanged). Once per data dir
/// (`values_v5`).
fn ordered_datetimes(conn: &Connection) -> Result<(), StoreError> {
    for (key, oid) in [
        ("values_v5_date", 1082),
        ("values_v5_timestamp", 1114),
        ("values_v5_timestamptz", 1184),
    ] {
        redeclare_columns(
            conn,
            key,
            oid,
            ("TEXT", "TEXT COLLATE pg_datetime"),
            None::<fn(&str, &str) -> String>,
        )?;
    }
    Ok(())
}

/// jsonb columns written before jsonb had a collation: their text compared bytewise, so
/// `ORDER BY` put `10` before `9` and `DISTINCT` kept `1.0` and `1` apart. Each becomes
/// `TEXT COLLATE pg_jsonb` (values unchanged). Once per data dir (`values_v6`).
fn ordered_jsonb(conn: &Connection) -> Result<(), StoreError> {
    redeclare_columns(
        conn,
        "values_v6",
        3802,
        ("TEXT", "TEXT COLLATE pg_jsonb"),
        None::<fn(&str, &str) -> String>,
    )
}

/// Changes the declaration of every column of PostgreSQL type `pg_type` from `decl.0` to
/// `decl.1` in its table's schema text (a change of declared type and collation only, which
/// SQLite allows through `writable_schema` when the indexes are rebuilt after), then runs
/// `values(table, column)` on each to convert what is stored. Once per data dir: `key` is
/// recorded in `__mdbc_meta`.
fn redeclare_columns(
    conn: &Connection,
    key: &str,
    pg_type: u32,
    decl: (&str, &str),
    values: Option<impl Fn(&str, &str) -> String>,
) -> Result<(), StoreError> {
    let done: i64 = conn.query_row(
        "SELECT count(*) FROM __mdbc_meta WHERE key = ?1",
        [key],
        |r| r.get(0),
    )?;
    if done > 0 {
        return Ok(());
    }
    let columns: Vec<(String, String)> = {
        let mut stmt = conn.prepare("SELECT tbl, col FROM __mdbc_columns WHERE pg_type = ?1")?;
        let rows = stmt.query_map([pg_type], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let run = || -> Result<(), StoreError> {
        conn.execute_batch("BEGIN IMMEDIATE; PRAGMA writable_schema = ON;")?;
        for (tbl, col) in &columns {
            let sql: Option<String> = conn
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                    [tbl],
                    |r| r.get(0),
                )
                .ok();
            let old = format!("{} {}", quote_ident(col), decl.0);
            let new = format!("{} {}", quote_ident(col), decl.1);
            let Some(sql) = sql.filter(|s| s.contains(&old) && !s.contains(&new)) else {
                continue;
            };
            conn.execute(
                "UPDATE sqlite_schema SET sql = ?1 WHERE type = 'table' AND name = ?2",
                [&sql.replacen(&old, &new, 1), tbl],
            )?;
            tracing::info!(table = %tbl, column = %col, to = decl.1, "column redeclared");
        }
        // The schema text changed under this connection: a new schema version makes every
        // connection (this one first) read it again before the values are written.
        let version: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
        conn.execute_batch(&format!(
            "PRAGMA schema_version = {}; PRAGMA writable_schema = OFF; COMMIT;",
            version + 1
        ))?;
        conn.execute_batch("BEGIN IMMEDIATE;")?;
        if let Some(values) = &values {
            for (tbl, col) in &columns {
                conn.execute_batch(&values(&quote_ident(tbl), &quote_ident(col)))?;
            }
        }
        conn.execute(
            "INSERT INTO __mdbc_meta (key, value) VALUES (?1, '1')",
            [key],
        )?;
        conn.execute_batch("REINDEX; COMMIT;")?;
        Ok(())
    };
    if let Err(e) = run() {
        let _ = conn.execute_batch("PRAGMA writable_schema = OFF; ROLLBACK");
        return Err(e);
    }
    Ok(())
}
