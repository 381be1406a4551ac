//! Applying a schema change or another site's row changes to SQLite: one piece with no
//! state of its own, used by a session (its own DDL, and the schema entries it catches up
//! on first) and by the replicator (the logs), so a change is applied the same way
//! whoever applies it. Everything here runs inside the caller's transaction; committing,
//! recording positions and publishing the catalog are the caller's.

use std::sync::Arc;

use rusqlite::Connection;
use sql_capture::apply::ApplyError;
use sql_capture::capture::{Capture, Shapes};
use sql_capture::changes::Entry;
use sql_capture::{Catalog, Command, SqlPlan, StmtKind};

use crate::errors::SqlError;
use crate::store::{self, Store};

/// After a DDL statement ran on `conn`: records its catalog changes, rebuilds the table
/// it altered, and returns the catalog as `conn` now sees it (with the sequences of new
/// serial columns started). The rebuild runs with `capture` paused: every site replays the
/// DDL and rebuilds its own rows, so the copied rows are not the transaction's writes.
pub fn after_ddl(
    store: &Store,
    conn: &Connection,
    plan: &SqlPlan,
    capture: Option<&Capture>,
) -> Result<Catalog, SqlError> {
    store.apply_catalog_changes(conn, &plan.catalog)?;
    if let Some(rb) = &plan.rebuild {
        let _paused = capture.map(Paused::new);
        store::rebuild_table(conn, rb)?;
    }
    let cat = store.load_catalog(conn)?;
    store.init_sequences(conn, &cat)?;
    Ok(cat)
}

/// Runs DDL statements (a schema-log entry's) on `conn`, each planned against the catalog
/// the ones before it left, starting from `catalog`; returns the catalog after the last.
/// The schema log holds only DDL: anything else is refused as a corrupt entry.
pub fn run_ddl(
    store: &Store,
    conn: &Connection,
    catalog: Arc<Catalog>,
    ddl: &[String],
    capture: Option<&Capture>,
) -> Result<Arc<Catalog>, SqlError> {
    let mut catalog = catalog;
    for sql in ddl {
        for parsed in sql_capture::parse(sql)? {
            match sql_capture::plan(&parsed, &catalog)? {
                Command::Sql(plan) if plan.kind == StmtKind::Ddl => {
                    for statement in &plan.sql {
                        conn.execute_batch(statement)?;
                    }
                    catalog = Arc::new(after_ddl(store, conn, &plan, capture)?);
                }
                _ => {
                    return Err(SqlError::coded(
                        "XX000",
                        format!("the schema log holds a statement that is not DDL: {sql}"),
                    ))
                }
            }
        }
    }
    Ok(catalog)
}

/// Applies the row changes of another site's `entry` to the tables `replicated` accepts
/// (by last writer wins on the row clocks, see `sql_capture::apply`). `older`: the entry
/// was written against an older schema than this site's (dropped tables and columns are
/// skipped rather than waited for). `version` is the schema version `shapes` hold.
pub fn apply_rows(
    conn: &Connection,
    shapes: &mut Shapes,
    version: u64,
    entry: &Entry,
    older: bool,
    replicated: &dyn Fn(&str) -> bool,
) -> Result<(), ApplyError> {
    for t in &entry.tables {
        if replicated(&t.table) {
            sql_capture::apply::apply(conn, shapes, version, t, entry.clock(), older)?;
        }
    }
    Ok(())
}

/// Row changes made while this lives are not the transaction's own writes: the capture
/// is paused, and resumed on drop (also when the work inside fails).
pub struct Paused<'a>(&'a Capture);

impl<'a> Paused<'a> {
    /// Pauses `capture`.
    pub fn new(capture: &'a Capture) -> Paused<'a> {
        capture.set_enabled(false);
        Paused(capture)
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.set_enabled(true);
    }
}
