//! Table rebuilds: SQLite has no `ALTER TABLE … ADD CONSTRAINT` or `ALTER COLUMN`, so
//! such a change means a copy of the table with the new definition
//! (`sql_capture::rebuild::redefine`), the rows moved, and a swap.

use rusqlite::Connection;
use sql_capture::rebuild::{redefine, REBUILD_TABLE};
use sql_capture::{quote_ident, TableRebuild};

/// Rebuilds `table` with its new definition, inside the caller's transaction. Existing
/// rows are checked as PostgreSQL checks them: a NULL left in a column made NOT NULL is
/// 23502, a value the new type refuses fails the copy, foreign keys are checked afterwards.
pub fn rebuild_table(conn: &Connection, rb: &TableRebuild) -> Result<(), RebuildError> {
    let create: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [&rb.table],
            |r| r.get(0),
        )
        .map_err(RebuildError::Sqlite)?;
    let indexes: Vec<String> = {
        let mut s = conn
            .prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")
            .map_err(RebuildError::Sqlite)?;
        let rows = s
            .query_map([&rb.table], |r| r.get(0))
            .map_err(RebuildError::Sqlite)?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(RebuildError::Sqlite)?
    };
    let t = quote_ident(&rb.table);
    let new_sql = redefine(&create, rb)?;
    let tmp = quote_ident(REBUILD_TABLE);
    let copy = rb
        .copy
        .clone()
        .unwrap_or_else(|| format!("INSERT INTO {tmp} SELECT * FROM {t}"));
    // Long on big tables: say what is happening, as PostgreSQL's ALTER would hold its lock.
    let started = std::time::Instant::now();
    tracing::info!(table = %rb.table, constraint = ?rb.constraint, columns = rb.columns.len(), "rebuilding table");
    conn.execute_batch(&format!(
        "PRAGMA defer_foreign_keys = ON;
         DROP TABLE IF EXISTS {tmp};
         {new_sql};"
    ))
    .map_err(RebuildError::Sqlite)?;
    // The rows are checked as they arrive in their new form (after a USING conversion),
    // as PostgreSQL checks them.
    conn.execute_batch(&copy)
        .map_err(|e| null_values(e, &rb.table))?;
    conn.execute_batch(&format!(
        "DROP TABLE {t};
         ALTER TABLE {tmp} RENAME TO {t};"
    ))
    .map_err(RebuildError::Sqlite)?;
    for idx in indexes {
        conn.execute_batch(&idx).map_err(RebuildError::Sqlite)?;
    }
    let violations: i64 = conn
        .query_row(
            &format!(
                "SELECT count(*) FROM pragma_foreign_key_check({})",
                sql_str(&rb.table)
            ),
            [],
            |r| r.get(0),
        )
        .map_err(RebuildError::Sqlite)?;
    if violations > 0 {
        return Err(RebuildError::ForeignKey(violations));
    }
    tracing::info!(table = %rb.table, elapsed_ms = started.elapsed().as_millis() as u64, "table rebuilt");
    Ok(())
}

/// A copy refused by a NOT NULL column of the new definition, as PostgreSQL reports it.
fn null_values(e: rusqlite::Error, table: &str) -> RebuildError {
    if let rusqlite::Error::SqliteFailure(f, Some(msg)) = &e {
        let prefix = format!("NOT NULL constraint failed: {REBUILD_TABLE}.");
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL {
            if let Some(column) = msg.strip_prefix(&prefix) {
                return RebuildError::NullValues {
                    table: table.to_string(),
                    column: column.to_string(),
                };
            }
        }
    }
    RebuildError::Sqlite(e)
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Why a table rebuild failed.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// SQLite refused (e.g. duplicate keys for a new primary key).
    #[error(transparent)]
    Sqlite(rusqlite::Error),
    /// The stored table definition could not be changed (or a change is refused, such
    /// as dropping NOT NULL from a key column).
    #[error(transparent)]
    Definition(#[from] sql_capture::Error),
    /// A column made NOT NULL holds NULLs.
    #[error("column \"{column}\" of relation \"{table}\" contains null values")]
    NullValues {
        /// Table.
        table: String,
        /// Column.
        column: String,
    },
    /// Existing rows break the new foreign key.
    #[error("insert or update violates foreign key constraint ({0} rows)")]
    ForeignKey(i64),
}
