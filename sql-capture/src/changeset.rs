//! Reading a changeset produced by SQLite's session extension.
//!
//! rusqlite wraps the session extension only behind its `session` feature, which makes
//! `libsqlite3-sys` generate its bindings with bindgen at build time — and bindgen needs
//! libclang, which a fresh machine lacks. The bindings bundled with `libsqlite3-sys`
//! already declare every session function, so mdbc builds SQLite with the session
//! extension compiled in (`LIBSQLITE3_FLAGS`, set in `.cargo/config.toml`) and reads
//! changesets through these few calls instead.

use rusqlite::ffi;
use rusqlite::types::ValueRef;

use crate::changes::Val;

/// What a change did to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A new row.
    Insert,
    /// A changed row.
    Update,
    /// A removed row.
    Delete,
}

fn check(rc: std::os::raw::c_int) -> rusqlite::Result<()> {
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None))
    }
}

/// A cursor over the changes of one changeset, in the order SQLite wrote them (each
/// table's changes together).
pub struct ChangesetReader<'a> {
    iter: *mut ffi::sqlite3_changeset_iter,
    // The iterator reads from this buffer for as long as it lives.
    _bytes: std::marker::PhantomData<&'a [u8]>,
}

impl Drop for ChangesetReader<'_> {
    fn drop(&mut self) {
        // SAFETY: `iter` came from sqlite3changeset_start and is finalized only here.
        unsafe {
            ffi::sqlite3changeset_finalize(self.iter);
        }
    }
}

/// The change the cursor is on.
pub struct Change<'r> {
    reader: &'r ChangesetReader<'r>,
    /// Its table.
    pub table: String,
    /// How many columns the change carries.
    pub columns: usize,
    /// What it did.
    pub op: Op,
}

impl<'a> ChangesetReader<'a> {
    /// Starts reading `bytes`, a changeset from `sqlite3session_changeset`.
    pub fn new(bytes: &'a [u8]) -> rusqlite::Result<ChangesetReader<'a>> {
        let len = std::os::raw::c_int::try_from(bytes.len()).map_err(|_| {
            rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_TOOBIG), None)
        })?;
        let mut iter = std::ptr::null_mut();
        // SAFETY: SQLite only reads the buffer (the pointer is `*mut` in its signature
        // alone); the PhantomData keeps it borrowed for the iterator's lifetime.
        check(unsafe { ffi::sqlite3changeset_start(&mut iter, len, bytes.as_ptr() as *mut _) })?;
        Ok(ChangesetReader {
            iter,
            _bytes: std::marker::PhantomData,
        })
    }

    /// Moves to the next change; `None` at the end.
    pub fn next_change(&mut self) -> rusqlite::Result<Option<Change<'_>>> {
        // SAFETY: `iter` is valid until drop.
        let rc = unsafe { ffi::sqlite3changeset_next(self.iter) };
        match rc {
            ffi::SQLITE_ROW => {}
            ffi::SQLITE_DONE => return Ok(None),
            rc => return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None)),
        }
        let mut table: *const std::os::raw::c_char = std::ptr::null();
        let (mut columns, mut op, mut indirect) = (0, 0, 0);
        // SAFETY: the out-pointers are valid; the table name lives as long as the
        // current change, and is copied out before the next call.
        check(unsafe {
            ffi::sqlite3changeset_op(self.iter, &mut table, &mut columns, &mut op, &mut indirect)
        })?;
        let table = if table.is_null() {
            String::new()
        } else {
            unsafe { std::ffi::CStr::from_ptr(table) }
                .to_string_lossy()
                .into_owned()
        };
        let op = match op {
            ffi::SQLITE_INSERT => Op::Insert,
            ffi::SQLITE_DELETE => Op::Delete,
            _ => Op::Update,
        };
        Ok(Some(Change {
            reader: self,
            table,
            columns: usize::try_from(columns).unwrap_or(0),
            op,
        }))
    }
}

impl Change<'_> {
    /// Column `i` after the change (inserts and updates; an update's unchanged columns
    /// are absent, read as NULL).
    pub fn new_value(&self, i: usize) -> rusqlite::Result<Val> {
        self.value(i, ffi::sqlite3changeset_new)
    }

    /// Column `i` before the change (deletes and updates; an update carries its key).
    pub fn old_value(&self, i: usize) -> rusqlite::Result<Val> {
        self.value(i, ffi::sqlite3changeset_old)
    }

    fn value(
        &self,
        i: usize,
        get: unsafe extern "C" fn(
            *mut ffi::sqlite3_changeset_iter,
            std::os::raw::c_int,
            *mut *mut ffi::sqlite3_value,
        ) -> std::os::raw::c_int,
    ) -> rusqlite::Result<Val> {
        if i >= self.columns {
            return Err(rusqlite::Error::InvalidColumnIndex(i));
        }
        let mut v: *mut ffi::sqlite3_value = std::ptr::null_mut();
        // SAFETY: the iterator is on this change and `i` is within its columns.
        check(unsafe { get(self.reader.iter, i as std::os::raw::c_int, &mut v) })?;
        // SAFETY: the value is valid until the iterator moves, and is copied here.
        Ok(unsafe { value_of(v) })
    }
}

/// Copies an SQLite value out (a null pointer is an absent value: NULL).
unsafe fn value_of(v: *mut ffi::sqlite3_value) -> Val {
    if v.is_null() {
        return Val::Null;
    }
    match ffi::sqlite3_value_type(v) {
        ffi::SQLITE_INTEGER => Val::Int(ffi::sqlite3_value_int64(v)),
        ffi::SQLITE_FLOAT => Val::Real(ffi::sqlite3_value_double(v)),
        ffi::SQLITE_TEXT => {
            let p = ffi::sqlite3_value_text(v);
            let n = ffi::sqlite3_value_bytes(v);
            let bytes = if p.is_null() || n <= 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(p, n as usize)
            };
            Val::from_ref(ValueRef::Text(bytes))
        }
        ffi::SQLITE_BLOB => {
            let p = ffi::sqlite3_value_blob(v) as *const u8;
            let n = ffi::sqlite3_value_bytes(v);
            let bytes = if p.is_null() || n <= 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(p, n as usize)
            };
            Val::Blob(bytes.to_vec())
        }
        _ => Val::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Capture;
    use rusqlite::Connection;

    /// Every kind of change and value survives the reader, as the session wrote it.
    #[test]
    fn reads_back_what_the_session_recorded() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (k INTEGER PRIMARY KEY, s TEXT, r REAL, b BLOB);
             INSERT INTO t VALUES (1, 'one', 1.5, x'00ff'), (2, 'two', NULL, NULL);",
        )
        .unwrap();
        // SAFETY: dropped before `conn`.
        let capture = unsafe { Capture::start(&conn) }.unwrap();
        conn.execute_batch(
            "INSERT INTO t VALUES (3, 'drei', -2.25, x'01');
             UPDATE t SET s = 'uno' WHERE k = 1;
             DELETE FROM t WHERE k = 2;",
        )
        .unwrap();
        let bytes = capture.changeset().unwrap();
        drop(capture);
        let mut reader = ChangesetReader::new(&bytes).unwrap();
        let mut seen = Vec::new();
        while let Some(c) = reader.next_change().unwrap() {
            assert_eq!(c.table, "t");
            assert_eq!(c.columns, 4);
            let vals = |old: bool| -> Vec<Val> {
                (0..4)
                    .map(|i| {
                        if old {
                            c.old_value(i).unwrap()
                        } else {
                            c.new_value(i).unwrap()
                        }
                    })
                    .collect()
            };
            seen.push(match c.op {
                Op::Insert => (c.op, vals(false)),
                Op::Update => (c.op, vec![c.old_value(0).unwrap(), c.new_value(1).unwrap()]),
                Op::Delete => (c.op, vals(true)),
            });
            assert!(
                c.new_value(4).is_err(),
                "a column past the change is refused"
            );
        }
        seen.sort_by_key(|(op, _)| *op as u8);
        assert_eq!(
            seen,
            vec![
                (
                    Op::Insert,
                    vec![
                        Val::Int(3),
                        Val::Text("drei".into()),
                        Val::Real(-2.25),
                        Val::Blob(vec![1])
                    ]
                ),
                (Op::Update, vec![Val::Int(1), Val::Text("uno".into())]),
                (
                    Op::Delete,
                    vec![Val::Int(2), Val::Text("two".into()), Val::Null, Val::Null]
                ),
            ]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let bytes = b"\x54\x05\x01\x01\x00t\x00\x12\xff\xff";
        let result = ChangesetReader::new(bytes).and_then(|mut r| {
            while r.next_change()?.is_some() {}
            Ok(())
        });
        assert!(result.is_err());
    }
}
