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
    if done {
        return Ok(());
    }
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
