//! The session's SQL-level cursors. A cursor's rows are computed when it is declared and
//! kept, encoded as text, until it is closed: a cursor then reads the snapshot of its
//! DECLARE (as PostgreSQL's do) without holding SQLite's read transaction open across the
//! client's round trips, and FETCH in any direction (`sql_capture::Motion`) is a walk over
//! a vector. The cost is memory: a cursor over a large result holds all of it.

use std::collections::HashMap;
use std::sync::Arc;

use pgwire::messages::data::DataRow;
use sql_capture::Motion;

use super::outcome::{Column, Outcome};
use crate::errors::SqlError;

type Result<T> = std::result::Result<T, SqlError>;

struct Cursor {
    columns: Arc<Vec<Column>>,
    rows: Vec<DataRow>,
    pos: u64,
    // NO SCROLL: only forward motions.
    forward_only: bool,
    hold: bool,
    // Declared in the transaction still open (a rollback removes it, held or not).
    fresh: bool,
}

/// Open cursors by name.
#[derive(Default)]
pub struct Cursors {
    open: HashMap<String, Cursor>,
}

impl Cursors {
    /// A new cursor over `rows`.
    pub fn declare(
        &mut self,
        name: &str,
        columns: Arc<Vec<Column>>,
        rows: Vec<DataRow>,
        scroll: Option<bool>,
        hold: bool,
    ) -> Result<()> {
        if self.open.contains_key(name) {
            return Err(SqlError::coded(
                "42P03",
                format!("cursor \"{name}\" already exists"),
            ));
        }
        self.open.insert(
            name.to_string(),
            Cursor {
                columns,
                rows,
                pos: 0,
                forward_only: scroll == Some(false),
                hold,
                fresh: true,
            },
        );
        Ok(())
    }

    /// The columns FETCH from `name` returns.
    pub fn columns(&self, name: &str) -> Result<Arc<Vec<Column>>> {
        Ok(self.get(name)?.columns.clone())
    }

    fn get(&self, name: &str) -> Result<&Cursor> {
        self.open.get(name).ok_or_else(|| missing(name))
    }

    /// FETCH (rows) or MOVE (the count only).
    pub fn fetch(&mut self, name: &str, motion: Motion, move_only: bool) -> Result<Outcome> {
        let c = self.open.get_mut(name).ok_or_else(|| missing(name))?;
        let (picked, pos) = motion.step(c.pos, c.rows.len() as u64);
        if c.forward_only && (motion.is_backward() || pos < c.pos) {
            return Err(SqlError::coded("55000", "cursor can only scan forward"));
        }
        c.pos = pos;
        let n = picked.len();
        if move_only {
            return Ok(Outcome::done(format!("MOVE {n}")));
        }
        let rows = picked
            .iter()
            .filter_map(|&i| c.rows.get(i as usize - 1).cloned())
            .collect();
        Ok(Outcome::Rows {
            columns: c.columns.clone(),
            rows,
            tag: format!("FETCH {n}"),
        })
    }

    /// CLOSE name, or CLOSE ALL.
    pub fn close(&mut self, name: Option<&str>) -> Result<()> {
        match name {
            None => self.open.clear(),
            Some(n) => {
                self.open.remove(n).ok_or_else(|| missing(n))?;
            }
        }
        Ok(())
    }

    /// The transaction ended: cursors without HOLD close, and a rollback also closes the
    /// held ones it declared.
    pub fn transaction_ended(&mut self, committed: bool) {
        self.open.retain(|_, c| c.hold && (committed || !c.fresh));
        for c in self.open.values_mut() {
            c.fresh = false;
        }
    }
}

fn missing(name: &str) -> SqlError {
    SqlError::coded("34000", format!("cursor \"{name}\" does not exist"))
}
