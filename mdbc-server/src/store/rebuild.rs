//! Table rebuilds: SQLite has no `ALTER TABLE … ADD CONSTRAINT`, so a new constraint
//! means a copy of the table with it, the rows moved, and a swap.

use rusqlite::Connection;
use sql_capture::{quote_ident, TableRebuild};

/// Rebuilds `table` with an extra constraint, inside the caller's transaction (SQLite has
/// no `ALTER TABLE … ADD CONSTRAINT`). Foreign keys are checked afterwards, as PostgreSQL
/// validates a new constraint against existing rows.
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
    let open = create.find('(').ok_or(RebuildError::Shape)?;
    let close = create.rfind(')').ok_or(RebuildError::Shape)?;
    let tmp = "__mdbc_rebuild";
    let new_sql = format!(
        "CREATE TABLE {} {}, {})",
        quote_ident(tmp),
        &create[open..close],
        rb.constraint
    );
    let t = quote_ident(&rb.table);
    // Long on big tables: say what is happening, as PostgreSQL's ALTER would hold its lock.
    let started = std::time::Instant::now();
    tracing::info!(table = %rb.table, constraint = %rb.constraint, "rebuilding table to add a constraint");
    conn.execute_batch(&format!(
        "PRAGMA defer_foreign_keys = ON;
         DROP TABLE IF EXISTS {tmp};
         {new_sql};
         INSERT INTO {tmp} SELECT * FROM {t};
         DROP TABLE {t};
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

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Why a table rebuild failed.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// SQLite refused (e.g. duplicate keys for a new primary key).
    #[error(transparent)]
    Sqlite(rusqlite::Error),
    /// The stored table definition was not in the expected shape.
    #[error("cannot rebuild table: unexpected definition")]
    Shape,
    /// Existing rows break the new foreign key.
    #[error("insert or update violates foreign key constraint ({0} rows)")]
    ForeignKey(i64),
}
