//! Capture of a transaction's row changes with SQLite's session extension.
//!
//! A [`Capture`] is started on a connection at a transaction's first write and read just
//! before its COMMIT. The session extension records which rows the transaction changed,
//! whatever changed them (statements, triggers, cascades), and compares them with their
//! state before it, so a change undone by ROLLBACK TO leaves nothing behind. What ships is
//! not SQLite's column diff but each changed row's full image, read inside the same
//! transaction ([`crate::changes`] says why).
//!
//! Tables without a primary key are recorded by their rowid (the session's ROWID option).
//! A rowid is only a local name — each site numbers its own rows — so such tables can be
//! replicated as append-only: inserts ship as images without a key, and an update or delete
//! of a replicated keyless table is refused at COMMIT ([`CaptureError::Keyless`]), as
//! PostgreSQL's logical replication refuses them on a table without a replica identity.

use std::collections::HashMap;
use std::ptr::NonNull;

use rusqlite::{ffi, Connection};

use crate::ast::quote_ident;
use crate::changes::{RowImage, TableChanges, Val};
use crate::changeset::{ChangesetReader, Op};

/// Why a transaction's changes cannot be collected.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// An update or delete of a replicated table without a primary key: no other site
    /// could tell which row it meant.
    #[error("cannot {action} table \"{table}\" because it has no primary key and is replicated; rows of such a table can only be inserted")]
    Keyless {
        /// The table.
        table: String,
        /// "update" or "delete".
        action: &'static str,
    },
    /// SQLite refused.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// A table's columns and primary key, as the capture and the applier need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShape {
    /// Columns in table order.
    pub columns: Vec<String>,
    /// Primary-key columns in key order.
    pub pk: Vec<String>,
    /// Index in `columns` of each primary-key column.
    pub pk_index: Vec<usize>,
    // SELECT of every column by primary key, for full images.
    select: String,
}

impl TableShape {
    /// Reads a table's shape; `None` when it has no such table. A table without a
    /// declared primary key has an empty `pk`.
    pub fn load(conn: &Connection, table: &str) -> rusqlite::Result<Option<TableShape>> {
        let mut stmt = conn.prepare("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid")?;
        let mut columns = Vec::new();
        let mut keyed: Vec<(i64, usize)> = Vec::new();
        let mut rows = stmt.query([table])?;
        while let Some(r) = rows.next()? {
            let name: String = r.get(0)?;
            let pk: i64 = r.get(1)?;
            if pk > 0 {
                keyed.push((pk, columns.len()));
            }
            columns.push(name);
        }
        if columns.is_empty() {
            return Ok(None);
        }
        keyed.sort();
        let pk_index: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
        let pk: Vec<String> = pk_index.iter().map(|&i| columns[i].clone()).collect();
        let cols = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let cond = pk
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} IS ?{}", quote_ident(c), i + 1))
            .collect::<Vec<_>>()
            .join(" AND ");
        let select = format!("SELECT {cols} FROM {} WHERE {cond}", quote_ident(table));
        Ok(Some(TableShape {
            columns,
            pk,
            pk_index,
            select,
        }))
    }
}

/// Shapes of the tables a site writes, loaded once per schema version.
#[derive(Debug, Default)]
pub struct Shapes {
    version: u64,
    tables: HashMap<String, Option<TableShape>>,
}

impl Shapes {
    /// The shape of `table` at schema `version` (reloaded after any schema change).
    pub fn get(
        &mut self,
        conn: &Connection,
        version: u64,
        table: &str,
    ) -> rusqlite::Result<Option<&TableShape>> {
        if version != self.version {
            self.tables.clear();
            self.version = version;
        }
        if !self.tables.contains_key(table) {
            let shape = TableShape::load(conn, table)?;
            self.tables.insert(table.to_string(), shape);
        }
        Ok(self.tables.get(table).and_then(|s| s.as_ref()))
    }
}

/// A session-extension session recording one transaction's changes.
pub struct Capture {
    session: NonNull<ffi::sqlite3_session>,
}

// The session is only ever used from the thread that owns its connection, behind `&mut`.
unsafe impl Send for Capture {}

impl Drop for Capture {
    fn drop(&mut self) {
        unsafe { ffi::sqlite3session_delete(self.session.as_ptr()) }
    }
}

fn check(rc: std::os::raw::c_int) -> rusqlite::Result<()> {
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None))
    }
}

impl Capture {
    /// Starts recording every table of `conn`'s main database.
    ///
    /// # Safety
    /// The capture must be dropped before `conn` is closed.
    pub unsafe fn start(conn: &Connection) -> rusqlite::Result<Capture> {
        let mut s: *mut ffi::sqlite3_session = std::ptr::null_mut();
        check(ffi::sqlite3session_create(
            conn.handle(),
            c"main".as_ptr(),
            &mut s,
        ))?;
        let session = NonNull::new(s).ok_or_else(|| {
            rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_NOMEM), None)
        })?;
        let capture = Capture { session };
        // Keyless tables are recorded by rowid so that their inserts can ship and their
        // updates and deletes can be refused, not silently left behind.
        let mut on: std::os::raw::c_int = 1;
        check(ffi::sqlite3session_object_config(
            capture.session.as_ptr(),
            ffi::SQLITE_SESSION_OBJCONFIG_ROWID,
            (&mut on as *mut std::os::raw::c_int).cast(),
        ))?;
        check(ffi::sqlite3session_attach(
            capture.session.as_ptr(),
            std::ptr::null(),
        ))?;
        Ok(capture)
    }

    /// Stops (`false`) or restarts (`true`) recording. A table rebuild (ALTER TABLE … ADD
    /// CONSTRAINT copies every row into a new table) runs unrecorded: every site replays
    /// the DDL and rebuilds its own rows, and the session could not describe rows of a
    /// table that was dropped and renamed within it.
    pub fn set_enabled(&self, on: bool) {
        unsafe {
            ffi::sqlite3session_enable(self.session.as_ptr(), std::os::raw::c_int::from(on));
        }
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        unsafe { ffi::sqlite3session_isempty(self.session.as_ptr()) != 0 }
    }

    /// What the session recorded, as an SQLite changeset.
    pub fn changeset(&self) -> rusqlite::Result<Vec<u8>> {
        // SAFETY: the session is live; SQLite allocates the buffer, which is copied and
        // freed here.
        unsafe {
            let mut n: std::os::raw::c_int = 0;
            let mut buf: *mut std::os::raw::c_void = std::ptr::null_mut();
            check(ffi::sqlite3session_changeset(
                self.session.as_ptr(),
                &mut n,
                &mut buf,
            ))?;
            let out = if buf.is_null() || n <= 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(buf as *const u8, n as usize).to_vec()
            };
            ffi::sqlite3_free(buf);
            Ok(out)
        }
    }

    /// The transaction's changes to the tables `wanted` accepts, as full row images read
    /// from `conn` (the same connection, before COMMIT). `version` is the schema version
    /// `shapes` are valid for.
    pub fn collect(
        &self,
        conn: &Connection,
        shapes: &mut Shapes,
        version: u64,
        wanted: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Vec<TableChanges>, CaptureError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = self.changeset()?;
        let mut out: Vec<TableChanges> = Vec::new();
        let mut it = ChangesetReader::new(&bytes)?;
        // A changeset lists each table's rows together: decide once per table, not per
        // row. The slot is the table's place in `out` (None: not wanted).
        let mut current: Option<(String, Option<usize>)> = None;
        while let Some(item) = it.next_change()? {
            let table = item.table.as_str();
            let slot = match &current {
                Some((t, slot)) if t == table => *slot,
                _ => {
                    let mut slot = None;
                    if wanted(table) {
                        if let Some(shape) = shapes.get(conn, version, table)? {
                            slot = Some(match out.iter().position(|t| t.table == table) {
                                Some(i) => i,
                                None => {
                                    out.push(TableChanges {
                                        table: table.to_string(),
                                        columns: shape.columns.clone(),
                                        pk: shape.pk.clone(),
                                        rows: Vec::new(),
                                    });
                                    out.len() - 1
                                }
                            });
                        }
                    }
                    current = Some((table.to_string(), slot));
                    slot
                }
            };
            let Some(slot) = slot else { continue };
            let Some(shape) = shapes.get(conn, version, table)? else {
                continue;
            };
            let code = item.op;
            if shape.pk.is_empty() {
                // Recorded by rowid: column 0 of the change is the rowid, then the columns.
                let action = match code {
                    Op::Insert => None,
                    Op::Delete => Some("delete from"),
                    Op::Update => Some("update"),
                };
                if let Some(action) = action {
                    return Err(CaptureError::Keyless {
                        table: table.to_string(),
                        action,
                    });
                }
                let values = (1..=shape.columns.len())
                    .map(|i| item.new_value(i))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out[slot].rows.push(RowImage {
                    key: Vec::new(),
                    values: Some(values),
                });
                continue;
            }
            let key: Vec<Val> = shape
                .pk_index
                .iter()
                .map(|&i| {
                    if code == Op::Insert {
                        item.new_value(i)
                    } else {
                        item.old_value(i)
                    }
                })
                .collect::<rusqlite::Result<_>>()?;
            let values = match code {
                Op::Delete => None,
                Op::Insert if item.columns == shape.columns.len() => Some(
                    (0..shape.columns.len())
                        .map(|i| item.new_value(i))
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                ),
                _ => read_image(conn, shape, &key)?,
            };
            out[slot].rows.push(RowImage { key, values });
        }
        Ok(out)
    }
}

fn read_image(
    conn: &Connection,
    shape: &TableShape,
    key: &[Val],
) -> rusqlite::Result<Option<Vec<Val>>> {
    let mut stmt = conn.prepare_cached(&shape.select)?;
    for (i, k) in key.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, k)?;
    }
    let mut rows = stmt.raw_query();
    match rows.next()? {
        Some(r) => Ok(Some(
            (0..shape.columns.len())
                .map(|i| r.get_ref(i).map(Val::from_ref))
                .collect::<rusqlite::Result<_>>()?,
        )),
        None => Ok(None),
    }
}
