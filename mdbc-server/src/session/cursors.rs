//! The session's SQL-level cursors. A cursor's rows are computed when it is declared and
//! kept, encoded as text, until it is closed: a cursor then reads the snapshot of its
//! DECLARE (as PostgreSQL's do) without holding SQLite's read transaction open across the
//! client's round trips, and FETCH in any direction (`sql_capture::Motion`) is a walk over
//! a vector. The cost is memory: a cursor over a large result holds all of it. A FETCH
//! asking for binary columns reads those back from the kept text into their types.
//!
//! A cursor over a simple scan of one table also keeps each row's rowid, for `UPDATE/DELETE
//! … WHERE CURRENT OF` (sql_capture::current_of). A FOR UPDATE/SHARE cursor moves forward
//! only, as PostgreSQL's, and refuses to go on once another statement changed rows (see
//! [`Cursors::written`]).

use std::collections::HashMap;
use std::sync::Arc;

use pgwire::messages::data::DataRow;
use sql_capture::Motion;

use super::encode::RowEncoder;
use super::outcome::{Column, Outcome};
use crate::datetime::DateCtx;
use crate::errors::SqlError;

type Result<T> = std::result::Result<T, SqlError>;

struct Cursor {
    columns: Arc<Vec<Column>>,
    rows: Vec<DataRow>,
    // A simple scan of one table: the table and each row's rowid (`WHERE CURRENT OF`).
    scan: Option<(String, Vec<Option<i64>>)>,
    pos: u64,
    // NO SCROLL: only forward motions.
    forward_only: bool,
    // FOR UPDATE/SHARE, and whether a statement has changed rows since DECLARE (see
    // `written`).
    locking: bool,
    stale: bool,
    hold: bool,
    // Declared in the transaction still open (a rollback removes it, held or not).
    fresh: bool,
}

/// What DECLARE computed for a new cursor.
pub struct Declared {
    /// Result columns (with the rowid column last when `scan` is set).
    pub columns: Arc<Vec<Column>>,
    /// Its rows, in text.
    pub rows: Vec<DataRow>,
    /// `SCROLL` (true), `NO SCROLL` (false) or neither.
    pub scroll: Option<bool>,
    /// `WITH HOLD`.
    pub hold: bool,
    /// The table of a simple scan, whose rows carry their rowids as a last column (taken
    /// off here).
    pub scan: Option<String>,
    /// FOR UPDATE/SHARE.
    pub locking: bool,
}

/// Open cursors by name.
#[derive(Default)]
pub struct Cursors {
    open: HashMap<String, Cursor>,
}

impl Cursors {
    /// A new cursor (see [`Declared`]).
    pub fn declare(&mut self, name: &str, d: Declared) -> Result<()> {
        let Declared {
            columns,
            mut rows,
            scroll,
            hold,
            scan,
            locking,
        } = d;
        let (columns, scan) = match scan {
            Some(table) => {
                let mut cols = columns.as_ref().clone();
                cols.pop();
                let ids = rows.iter_mut().map(take_last_field).collect();
                (Arc::new(cols), Some((table, ids)))
            }
            None => (columns, None),
        };
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
                scan,
                pos: 0,
                forward_only: scroll == Some(false),
                locking,
                stale: false,
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

    /// FETCH (rows, each column in text or, where `binary` says, in binary) or MOVE (the
    /// count only).
    pub fn fetch(
        &mut self,
        name: &str,
        motion: Motion,
        move_only: bool,
        binary: &(dyn Fn(usize) -> bool + Sync),
        zone: &DateCtx,
    ) -> Result<Outcome> {
        let c = self.open.get_mut(name).ok_or_else(|| missing(name))?;
        if c.stale {
            return Err(SqlError::coded(
                "0A000",
                format!(
                    "FETCH or MOVE in FOR UPDATE/SHARE cursor \"{name}\" after another \
                     statement of its transaction changed rows is not supported by mdbc \
                     (its rows were read when it was declared)"
                ),
            ));
        }
        let (picked, pos) = motion.step(c.pos, c.rows.len() as u64);
        // A NO SCROLL cursor never returns a row at or before where it stands (RELATIVE 0
        // and ABSOLUTE of the current row re-read it, which PostgreSQL refuses too).
        let rereads = picked.iter().any(|&i| i <= c.pos);
        if c.forward_only && (motion.is_backward() || pos < c.pos || rereads) {
            return Err(SqlError::coded("55000", "cursor can only scan forward"));
        }
        c.pos = pos;
        let n = picked.len();
        if move_only {
            return Ok(Outcome::done(format!("MOVE {n}")));
        }
        let picked = picked
            .iter()
            .filter_map(|&i| c.rows.get(i as usize - 1).cloned());
        let rows = if (0..c.columns.len()).any(binary) {
            picked
                .map(|r| to_binary(&r, &c.columns, binary, zone))
                .collect::<Result<_>>()?
        } else {
            picked.collect()
        };
        Ok(Outcome::Rows {
            columns: c.columns.clone(),
            rows,
            tag: format!("FETCH {n}"),
        })
    }

    /// A statement changed rows. A locking cursor's rows were read and locked at DECLARE;
    /// PostgreSQL's reads and locks each row when it is fetched, and skips a row its own
    /// transaction changed in between. Rather than return such a row, a locking cursor
    /// refuses further FETCH and MOVE once any statement but a `WHERE CURRENT OF` through
    /// it has changed rows.
    pub fn written(&mut self) {
        for c in self.open.values_mut().filter(|c| c.locking) {
            c.stale = true;
        }
    }

    /// Whether `name` refuses FETCH after a change (see [`Cursors::written`]).
    pub fn is_stale(&self, name: &str) -> bool {
        self.open.get(name).is_some_and(|c| c.stale)
    }

    /// `name` changed only the row it stands on: it stays usable.
    pub fn keep_fresh(&mut self, name: &str) {
        if let Some(c) = self.open.get_mut(name) {
            c.stale = false;
        }
    }

    /// The rowid of the row `name` stands on, for `UPDATE/DELETE … WHERE CURRENT OF` on
    /// `table`.
    pub fn current_row(&self, name: &str, table: &str) -> Result<i64> {
        let c = self.get(name)?;
        let not_simple = || {
            SqlError::coded(
                "24000",
                format!("cursor \"{name}\" is not a simply updatable scan of table \"{table}\""),
            )
        };
        let Some((scanned, ids)) = &c.scan else {
            return Err(not_simple());
        };
        if scanned != table {
            return Err(not_simple());
        }
        if c.pos == 0 || c.pos > c.rows.len() as u64 {
            return Err(SqlError::coded(
                "24000",
                format!("cursor \"{name}\" is not positioned on a row"),
            ));
        }
        ids.get(c.pos as usize - 1)
            .copied()
            .flatten()
            .ok_or_else(not_simple)
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

/// Takes a row's last field off (the rowid column of a simple scan) and reads it. A row
/// is fields of a 4-byte length (-1: NULL) and that many bytes, here in text format.
fn take_last_field(row: &mut DataRow) -> Option<i64> {
    let mut at = 0usize;
    let mut last = None;
    for _ in 0..row.field_count {
        let len = i32::from_be_bytes(row.data.get(at..at + 4)?.try_into().ok()?);
        last = Some((at, len));
        at += 4 + usize::try_from(len).unwrap_or(0);
    }
    let (start, len) = last?;
    let value = usize::try_from(len)
        .ok()
        .and_then(|len| row.data.get(start + 4..start + 4 + len))
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|t| t.parse().ok());
    row.data.truncate(start);
    row.field_count -= 1;
    value
}

/// A kept row (text) in the formats a FETCH asks for: each binary column read back from
/// its text into the stored form, then encoded as binary.
fn to_binary(
    row: &DataRow,
    columns: &[Column],
    binary: &(dyn Fn(usize) -> bool + Sync),
    zone: &DateCtx,
) -> Result<DataRow> {
    let mut out = RowEncoder::new(columns.len());
    let mut at = 0usize;
    let corrupt = || SqlError::coded("XX000", "a cursor row could not be read back");
    for (i, col) in columns.iter().enumerate() {
        let len_bytes = row.data.get(at..at + 4).ok_or_else(corrupt)?;
        let len = i32::from_be_bytes(len_bytes.try_into().map_err(|_| corrupt())?);
        at += 4;
        let Ok(len) = usize::try_from(len) else {
            out.push(rusqlite::types::ValueRef::Null, col, false, zone)?;
            continue;
        };
        let field = row.data.get(at..at + len).ok_or_else(corrupt)?;
        at += len;
        if binary(i) {
            let text = std::str::from_utf8(field).map_err(|_| corrupt())?;
            let stored = crate::values::from_text_in(text, col.ty, col.typmod, zone)?;
            out.push(rusqlite::types::ValueRef::from(&stored), col, true, zone)?;
        } else {
            out.push_raw(field);
        }
    }
    Ok(out.finish())
}
