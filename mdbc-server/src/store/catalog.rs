//! mdbc's catalog of declared types (`__mdbc_columns`, `__mdbc_constraints`): what
//! PostgreSQL type each column was declared with, read into a [`Catalog`] for planning,
//! and the changes DDL makes to it, in the DDL's transaction.

use std::sync::Mutex;

use rusqlite::{params, Connection};
use sql_capture::{Catalog, CatalogChange, ColumnInfo, PgType, SequenceDef, TableDef, ViewDef};

use super::sequences::Sequences;

fn insert_column(
    conn: &Connection,
    table: &str,
    ordinal: i64,
    c: &ColumnInfo,
) -> rusqlite::Result<()> {
    insert_column_into(conn, "__mdbc_columns", table, ordinal, c)
}

/// Records column `c` of `table` in `catalog` (`__mdbc_columns`, or a session's
/// `temp.__mdbc_temp_columns` of the same shape).
pub(crate) fn insert_column_into(
    conn: &Connection,
    catalog: &str,
    table: &str,
    ordinal: i64,
    c: &ColumnInfo,
) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO {catalog} \
             (tbl, col, ordinal, pg_type, typmod, serial, not_null, pg_default) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ),
        params![
            table,
            c.name,
            ordinal,
            c.ty.oid() as i64,
            c.typmod as i64,
            c.serial as i64,
            c.not_null as i64,
            c.default
        ],
    )?;
    Ok(())
}

/// Reads the catalog as `conn` sees it (including its own uncommitted DDL).
pub fn load(conn: &Connection, version: u64) -> rusqlite::Result<Catalog> {
    let mut cat = Catalog::new(version);
    cat.set_system(crate::pg_catalog::relations());
    let mut stmt = conn.prepare_cached(
        "SELECT tbl, col, pg_type, typmod, serial, not_null, pg_default FROM __mdbc_columns \
         ORDER BY tbl, ordinal",
    )?;
    let mut rows = stmt.query([])?;
    let mut current: Option<TableDef> = None;
    while let Some(r) = rows.next()? {
        let tbl: String = r.get(0)?;
        let oid: i64 = r.get(2)?;
        let col = ColumnInfo {
            name: r.get(1)?,
            ty: PgType::from_oid(oid as u32).unwrap_or(PgType::Text),
            typmod: r.get::<_, i64>(3)? as i32,
            serial: r.get::<_, i64>(4)? != 0,
            not_null: r.get::<_, i64>(5)? != 0,
            default: r.get(6)?,
        };
        match current.as_mut() {
            Some(t) if t.name == tbl => t.columns.push(col),
            _ => {
                if let Some(t) = current.take() {
                    cat.insert(t);
                }
                current = Some(TableDef {
                    name: tbl,
                    columns: vec![col],
                });
            }
        }
    }
    if let Some(t) = current {
        cat.insert(t);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT name, typid, start, increment, minvalue, maxvalue, cache, cycle, owned_tbl, \
         owned_col FROM __mdbc_sequences",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let owned: (Option<String>, Option<String>) = (r.get(8)?, r.get(9)?);
        cat.insert_sequence(SequenceDef {
            name: r.get(0)?,
            ty: PgType::from_oid(r.get::<_, i64>(1)? as u32).unwrap_or(PgType::Int8),
            start: r.get(2)?,
            increment: r.get(3)?,
            min: r.get(4)?,
            max: r.get(5)?,
            cache: r.get(6)?,
            cycle: r.get::<_, i64>(7)? != 0,
            owned_by: match owned {
                (Some(t), Some(c)) => Some((t, c)),
                _ => None,
            },
        });
    }
    // Views: their columns were read as tables' above; move them over.
    let mut stmt = conn.prepare_cached("SELECT name, query, depends FROM __mdbc_views")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        let depends: String = r.get(2)?;
        let Some(def) = cat.remove_table(&name) else {
            continue;
        };
        cat.insert_view(ViewDef {
            def,
            query: r.get(1)?,
            depends: serde_json::from_str(&depends).unwrap_or_default(),
        });
    }
    // Index names as pg_class shows them (t_pkey for a key's index); SQLite's own while
    // the catalog views are not there yet (first start of a data dir).
    let names = conn
        .prepare_cached("SELECT relname FROM __mdbc_v_index")
        .or_else(|_| {
            conn.prepare_cached(
                "SELECT name FROM sqlite_schema WHERE type = 'index' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            )
        })?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    cat.set_indexes(names);
    Ok(cat)
}

/// Records catalog changes in the current transaction of `conn`.
pub fn apply_changes(
    conn: &Connection,
    changes: &[CatalogChange],
    sequences: &Mutex<Sequences>,
) -> rusqlite::Result<()> {
    for ch in changes {
        match ch {
            CatalogChange::CreateTable(def) => {
                conn.execute("DELETE FROM __mdbc_columns WHERE tbl = ?1", [&def.name])?;
                for (i, c) in def.columns.iter().enumerate() {
                    insert_column(conn, &def.name, i as i64, c)?;
                }
                if def.columns.iter().any(|c| c.serial) {
                    let mut seqs = sequences.lock().unwrap_or_else(|e| e.into_inner());
                    for c in def.columns.iter().filter(|c| c.serial) {
                        seqs.start(format!("{}_{}_seq", def.name, c.name), c.ty);
                    }
                }
            }
            CatalogChange::DropTable(t) => {
                conn.execute("DELETE FROM __mdbc_columns WHERE tbl = ?1", [t])?;
                conn.execute("DELETE FROM __mdbc_constraints WHERE tbl = ?1", [t])?;
                conn.execute("DELETE FROM __mdbc_indexes WHERE tbl = ?1", [t])?;
                // The table's comments, and its indexes' (gone with it).
                conn.execute(
                    "DELETE FROM __mdbc_comments WHERE rel = ?1 OR rel NOT IN \
                     (SELECT name FROM sqlite_schema WHERE type IN ('table', 'index', 'view'))",
                    [t],
                )?;
            }
            CatalogChange::DescribeIndex {
                name,
                table,
                plain,
                pretty,
            } => {
                let json = |v: &Vec<String>| serde_json::Value::from(v.clone()).to_string();
                conn.execute(
                    "INSERT OR REPLACE INTO __mdbc_indexes \
                     (name, tbl, cols, opts, pred, pretty_cols, pretty_pred) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        name,
                        table,
                        json(&plain.columns),
                        json(&plain.options),
                        plain.predicate,
                        json(&pretty.columns),
                        pretty.predicate
                    ],
                )?;
            }
            CatalogChange::DropIndexes(names) => {
                for n in names {
                    conn.execute("DELETE FROM __mdbc_indexes WHERE name = ?1", [n])?;
                    conn.execute("DELETE FROM __mdbc_comments WHERE rel = ?1", [n])?;
                }
            }
            CatalogChange::NameConstraint {
                table,
                name,
                kind,
                columns,
            } => {
                let cols = serde_json::Value::from(columns.clone()).to_string();
                conn.execute(
                    "INSERT OR REPLACE INTO __mdbc_constraints (tbl, name, kind, cols) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![table, name, kind.to_string(), cols],
                )?;
            }
            CatalogChange::AddColumn { table, column } => {
                let next: i64 = conn.query_row(
                    "SELECT coalesce(max(ordinal), -1) + 1 FROM __mdbc_columns WHERE tbl = ?1",
                    [table],
                    |r| r.get(0),
                )?;
                insert_column(conn, table, next, column)?;
            }
            CatalogChange::DropColumn { table, column } => {
                conn.execute(
                    "DELETE FROM __mdbc_columns WHERE tbl = ?1 AND col = ?2",
                    [table, column],
                )?;
                conn.execute(
                    "DELETE FROM __mdbc_comments WHERE rel = ?1 AND col = ?2",
                    [table, column],
                )?;
            }
            CatalogChange::RenameColumn { table, from, to } => {
                conn.execute(
                    "UPDATE __mdbc_columns SET col = ?3 WHERE tbl = ?1 AND col = ?2",
                    [table, from, to],
                )?;
                conn.execute(
                    "UPDATE __mdbc_comments SET col = ?3 WHERE rel = ?1 AND col = ?2",
                    [table, from, to],
                )?;
                // The recorded definitions spell the old name: the catalog falls back to
                // what SQLite's schema gives until the index is created again.
                conn.execute("DELETE FROM __mdbc_indexes WHERE tbl = ?1", [table])?;
                conn.execute(
                    "UPDATE __mdbc_constraints SET cols = (SELECT json_group_array( \
                         CASE WHEN value = ?2 THEN ?3 ELSE value END) FROM json_each(cols)) \
                     WHERE tbl = ?1",
                    [table, from, to],
                )?;
            }
            CatalogChange::RenameTable { from, to } => {
                conn.execute(
                    "UPDATE __mdbc_columns SET tbl = ?2 WHERE tbl = ?1",
                    [from, to],
                )?;
                conn.execute(
                    "UPDATE __mdbc_constraints SET tbl = ?2 WHERE tbl = ?1",
                    [from, to],
                )?;
                conn.execute(
                    "UPDATE __mdbc_indexes SET tbl = ?2 WHERE tbl = ?1",
                    [from, to],
                )?;
                conn.execute(
                    "UPDATE __mdbc_comments SET rel = ?2 WHERE rel = ?1",
                    [from, to],
                )?;
                conn.execute(
                    "UPDATE __mdbc_sequences SET owned_tbl = ?2 WHERE owned_tbl = ?1",
                    [from, to],
                )?;
                // Views keep reading the table under its new name (SQLite rewrote them).
                conn.execute(
                    "UPDATE __mdbc_views SET depends = (SELECT json_group_array( \
                         CASE WHEN value = ?1 THEN ?2 ELSE value END) FROM json_each(depends)) \
                     WHERE EXISTS (SELECT 1 FROM json_each(depends) WHERE value = ?1)",
                    [from, to],
                )?;
            }
            CatalogChange::Comment {
                relation,
                column,
                text,
            } => {
                let col = column.as_deref().unwrap_or("");
                match text {
                    Some(t) => conn.execute(
                        "INSERT OR REPLACE INTO __mdbc_comments (rel, col, description) \
                         VALUES (?1, ?2, ?3)",
                        params![relation, col, t],
                    )?,
                    None => conn.execute(
                        "DELETE FROM __mdbc_comments WHERE rel = ?1 AND col = ?2",
                        params![relation, col],
                    )?,
                };
            }
            CatalogChange::AlterColumn { table, column: c } => {
                // Replaced in place: same ordinal, the new type, default and NOT NULL.
                let ordinal: i64 = conn.query_row(
                    "SELECT ordinal FROM __mdbc_columns WHERE tbl = ?1 AND col = ?2",
                    [table, &c.name],
                    |r| r.get(0),
                )?;
                conn.execute(
                    "DELETE FROM __mdbc_columns WHERE tbl = ?1 AND col = ?2",
                    [table, &c.name],
                )?;
                insert_column(conn, table, ordinal, c)?;
            }
            CatalogChange::CreateView(v) => {
                let name = &v.def.name;
                conn.execute("DELETE FROM __mdbc_columns WHERE tbl = ?1", [name])?;
                for (i, c) in v.def.columns.iter().enumerate() {
                    insert_column(conn, name, i as i64, c)?;
                }
                conn.execute(
                    "INSERT OR REPLACE INTO __mdbc_views (name, query, depends) \
                     VALUES (?1, ?2, ?3)",
                    params![
                        name,
                        v.query,
                        serde_json::Value::from(v.depends.clone()).to_string()
                    ],
                )?;
            }
            CatalogChange::DropViews(names) => {
                for n in names {
                    conn.execute("DELETE FROM __mdbc_columns WHERE tbl = ?1", [n])?;
                    conn.execute("DELETE FROM __mdbc_views WHERE name = ?1", [n])?;
                    conn.execute("DELETE FROM __mdbc_comments WHERE rel = ?1", [n])?;
                }
            }
            CatalogChange::CreateSequence(q) => {
                let (owned_tbl, owned_col) = match &q.owned_by {
                    Some((t, c)) => (Some(t.as_str()), Some(c.as_str())),
                    None => (None, None),
                };
                conn.execute(
                    "INSERT OR REPLACE INTO __mdbc_sequences \
                     (name, typid, start, increment, minvalue, maxvalue, cache, cycle, \
                      owned_tbl, owned_col) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        q.name,
                        q.ty.oid() as i64,
                        q.start,
                        q.increment,
                        q.min,
                        q.max,
                        q.cache,
                        q.cycle,
                        owned_tbl,
                        owned_col
                    ],
                )?;
            }
            CatalogChange::RestartSequence { name, value } => {
                // Not transactional, as in PostgreSQL: a restart stays even if the
                // statement's transaction rolls back.
                let mut seqs = sequences.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = seqs.restart(name, *value) {
                    tracing::warn!(sequence = %name, "could not keep the restart: {e}");
                }
            }
            CatalogChange::DropSequences(names) => {
                for n in names {
                    conn.execute("DELETE FROM __mdbc_sequences WHERE name = ?1", [n])?;
                    conn.execute("DELETE FROM __mdbc_comments WHERE rel = ?1", [n])?;
                }
            }
            CatalogChange::SetNotNull { table, columns } => {
                for c in columns {
                    conn.execute(
                        "UPDATE __mdbc_columns SET not_null = 1 WHERE tbl = ?1 AND col = ?2",
                        [table, c],
                    )?;
                }
            }
        }
    }
    Ok(())
}
