//! Table rebuilds: SQLite has no `ALTER TABLE … ADD CONSTRAINT` or `ALTER COLUMN`, so
//! such a change means a copy of the table with the new definition
//! (`sql_capture::rebuild::redefine`), the rows moved, and a swap.

use rusqlite::Connection;
use sql_capture::rebuild::{redefine, NamedConstraint, REBUILD_TABLE};
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
    let t = quote_ident(&rb.table);
    // A unique constraint added by ALTER TABLE is an index of that name: dropped as one.
    let mut rb = std::borrow::Cow::Borrowed(rb);
    if let Some(name) = rb.drop_constraint.clone() {
        let index: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' \
                 AND name = ?1 AND tbl_name = ?2 AND sql IS NOT NULL)",
                [&name, &rb.table],
                |r| r.get(0),
            )
            .map_err(RebuildError::Sqlite)?;
        if index {
            conn.execute_batch(&format!("DROP INDEX {}", quote_ident(&name)))
                .map_err(RebuildError::Sqlite)?;
            forget_constraint(conn, &rb.table, &name)?;
            let rest = TableRebuild {
                drop_constraint: None,
                ..rb.as_ref().clone()
            };
            if rest.columns.is_empty() && rest.added.is_empty() && rest.constraint.is_none() {
                return Ok(());
            }
            rb = std::borrow::Cow::Owned(rest);
        }
    }
    let rb = rb.as_ref();
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
    let new_sql = redefine(&create, rb, &recorded_constraints(conn, &rb.table)?)?;
    if let Some(name) = &rb.drop_constraint {
        forget_constraint(conn, &rb.table, name)?;
    }
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
    // Legacy renaming for the swap: the modern one re-checks every view and would find
    // the views over this table broken in the instant between the DROP and the RENAME
    // (after which they read the new table, by name, as PostgreSQL's read the old one).
    let swapped = conn.execute_batch(&format!(
        "PRAGMA legacy_alter_table = ON;
         DROP TABLE {t};
         ALTER TABLE {tmp} RENAME TO {t};"
    ));
    let restored = conn.execute_batch("PRAGMA legacy_alter_table = OFF");
    swapped.and(restored).map_err(RebuildError::Sqlite)?;
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

/// The constraint names recorded for `table` (`__mdbc_constraints`).
fn recorded_constraints(
    conn: &Connection,
    table: &str,
) -> Result<Vec<NamedConstraint>, RebuildError> {
    let mut s = conn
        .prepare("SELECT name, kind, cols FROM __mdbc_constraints WHERE tbl = ?1")
        .map_err(RebuildError::Sqlite)?;
    let rows = s
        .query_map([table], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(RebuildError::Sqlite)?;
    let mut out = Vec::new();
    for row in rows {
        let (name, kind, cols) = row.map_err(RebuildError::Sqlite)?;
        out.push(NamedConstraint {
            name,
            kind: kind.chars().next().unwrap_or('?'),
            columns: serde_json::from_str(&cols).unwrap_or_default(),
        });
    }
    Ok(out)
}

fn forget_constraint(conn: &Connection, table: &str, name: &str) -> Result<(), RebuildError> {
    conn.execute(
        "DELETE FROM __mdbc_constraints WHERE tbl = ?1 AND name = ?2",
        [table, name],
    )
    .map_err(RebuildError::Sqlite)?;
    conn.execute(
        "DELETE FROM __mdbc_indexes WHERE tbl = ?1 AND name = ?2",
        [table, name],
    )
    .map_err(RebuildError::Sqlite)?;
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
