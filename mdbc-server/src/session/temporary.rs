//! The session's temporary tables (`CREATE TEMP TABLE`) and their indexes.
//!
//! They live in SQLite's `temp` schema of the session's own connection, so they vanish
//! with the session, are never captured (the capture watches `main`), never replicated and
//! never written to mdbc's shared catalog. Translation sees them through an overlay of the
//! shared catalog ([`TempObjects::view`]), where they shadow shared tables of the same
//! name as in PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rusqlite::Connection;
use sql_capture::{Catalog, SqlPlan, TableDef, TempEffect};

use super::encode::tag_text;
use super::outcome::Outcome;
use crate::errors::SqlError;

/// The session's temporary objects.
#[derive(Default)]
pub(super) struct TempObjects {
    // Every temporary table this session created (its latest definition), and those that
    // exist now: a ROLLBACK may bring back a dropped one or take away a created one.
    known: HashMap<String, Arc<TableDef>>,
    tables: HashMap<String, Arc<TableDef>>,
    indexes: HashSet<String>,
    // Bumped on every change, so that plans made against an older view are not reused.
    generation: u64,
}

impl TempObjects {
    /// The shared catalog as this session sees it.
    pub(super) fn view(&self, shared: Arc<Catalog>) -> Arc<Catalog> {
        if self.tables.is_empty() && self.indexes.is_empty() {
            return shared;
        }
        // A version of its own: the shared version in the low bits, this session's
        // changes above them (caches compare versions for equality only).
        let version = shared.version ^ (self.generation << 44) ^ (1 << 63);
        Arc::new(shared.with_temporary(self.tables.values(), self.indexes.iter(), version))
    }

    /// Runs a statement on temporary objects and records what it changed.
    pub(super) fn run(
        &mut self,
        conn: &Connection,
        plan: &SqlPlan,
        effect: &TempEffect,
    ) -> Result<Outcome, SqlError> {
        for sql in &plan.sql {
            conn.execute_batch(sql)?;
        }
        // Statements SQLite compiled against the old schema still report its columns
        // until they run again: the next description must come from a fresh compile.
        conn.flush_prepared_statement_cache();
        self.generation += 1;
        match effect {
            TempEffect::CreateTable(def) => {
                record_columns(conn, def)?;
                let def = Arc::new(def.clone());
                self.known
                    .insert(def.name.to_ascii_lowercase(), def.clone());
                self.tables.insert(def.name.to_ascii_lowercase(), def);
            }
            TempEffect::DropTables(names) => {
                let recorded = overlay_present(conn)?;
                for n in names {
                    self.tables.remove(&n.to_ascii_lowercase());
                    if recorded {
                        conn.execute("DELETE FROM temp.__mdbc_temp_columns WHERE tbl = ?1", [n])?;
                    }
                }
            }
            TempEffect::CreateIndex(name) => {
                self.indexes.insert(name.to_ascii_lowercase());
            }
            TempEffect::DropIndexes(names) => {
                for n in names {
                    self.indexes.remove(&n.to_ascii_lowercase());
                }
            }
        }
        Ok(Outcome::done(tag_text(&plan.tag, 0)))
    }

    /// After a rollback (of a block or to a savepoint): the temporary tables and indexes
    /// are what SQLite's `temp` schema holds now.
    pub(super) fn reconcile(&mut self, conn: &Connection) -> Result<(), SqlError> {
        if self.known.is_empty() {
            return Ok(());
        }
        let mut stmt = conn.prepare("SELECT type, lower(name) FROM sqlite_temp_schema")?;
        let present: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        self.tables = self
            .known
            .iter()
            .filter(|(name, _)| present.iter().any(|(t, n)| t == "table" && n == *name))
            .map(|(n, d)| (n.clone(), d.clone()))
            .collect();
        self.indexes = present
            .into_iter()
            .filter(|(t, _)| t == "index")
            .map(|(_, n)| n)
            .collect();
        conn.flush_prepared_statement_cache();
        self.generation += 1;
        Ok(())
    }
}

/// Records a temporary table's columns where the session's catalog views read them
/// (`temp.__mdbc_temp_columns`, see `pg_catalog::temporary_overlay`), creating those
/// views with the session's first temporary table. Inside the statement's transaction:
/// a rollback takes the rows away with the table.
fn record_columns(conn: &Connection, def: &TableDef) -> Result<(), SqlError> {
    if !overlay_present(conn)? {
        conn.execute_batch(&crate::pg_catalog::temporary_overlay())?;
    }
    conn.execute(
        "DELETE FROM temp.__mdbc_temp_columns WHERE tbl = ?1",
        [&def.name],
    )?;
    for (i, c) in def.columns.iter().enumerate() {
        crate::store::insert_column_into(conn, "temp.__mdbc_temp_columns", &def.name, i as i64, c)?;
    }
    Ok(())
}

/// Whether the session's catalog views (and `temp.__mdbc_temp_columns`) exist; they are
/// created in a statement's transaction, so a rollback may have taken them away.
fn overlay_present(conn: &Connection) -> Result<bool, SqlError> {
    Ok(conn.query_row(
        "SELECT count(*) = 2 FROM temp.sqlite_temp_schema \
         WHERE name IN ('__mdbc_v_schema', '__mdbc_temp_columns')",
        [],
        |r| r.get(0),
    )?)
}
