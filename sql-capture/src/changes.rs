//! What one site ships to the others: a transaction's row changes as full row images,
//! stamped with a row clock, in a compact byte encoding.
//!
//! Full images rather than SQLite's column diffs make application order-independent: a
//! row's state at every site is the image with the greatest clock (hybrid logical time,
//! then site id), whatever order and however many times the images arrive. A delete is
//! an image without values, kept as a tombstone clock so a late update cannot revive it.

use rusqlite::types::{Value, ValueRef};
use serde::{Deserialize, Serialize};

/// One SQLite value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Val {
    /// NULL
    Null,
    /// INTEGER
    Int(i64),
    /// REAL
    Real(f64),
    /// TEXT
    Text(String),
    /// BLOB
    Blob(Vec<u8>),
}

impl Val {
    /// From a value SQLite handed out.
    pub fn from_ref(v: ValueRef<'_>) -> Val {
        match v {
            ValueRef::Null => Val::Null,
            ValueRef::Integer(i) => Val::Int(i),
            ValueRef::Real(r) => Val::Real(r),
            ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Val::Blob(b.to_vec()),
        }
    }

    /// As a value to bind.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Val::Null => ValueRef::Null,
            Val::Int(i) => ValueRef::Integer(*i),
            Val::Real(r) => ValueRef::Real(*r),
            Val::Text(t) => ValueRef::Text(t.as_bytes()),
            Val::Blob(b) => ValueRef::Blob(b),
        }
    }
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(self.as_ref()))
    }
}

impl From<Val> for Value {
    fn from(v: Val) -> Value {
        match v {
            Val::Null => Value::Null,
            Val::Int(i) => Value::Integer(i),
            Val::Real(r) => Value::Real(r),
            Val::Text(t) => Value::Text(t),
            Val::Blob(b) => Value::Blob(b),
        }
    }
}

/// The state of one row after a transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowImage {
    /// Primary-key values, in the order of [`TableChanges::pk`].
    pub key: Vec<Val>,
    /// Every column's value in the order of [`TableChanges::columns`]; `None`: deleted.
    pub values: Option<Vec<Val>>,
}

/// One table's rows changed by a transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableChanges {
    /// Table name.
    pub table: String,
    /// Its columns, as the writer's schema had them.
    pub columns: Vec<String>,
    /// Its primary-key columns.
    pub pk: Vec<String>,
    /// The rows.
    pub rows: Vec<RowImage>,
}

/// A row clock: hybrid logical time, then the writing site; greater wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RowClock {
    /// Hybrid logical time of the writing transaction.
    pub hlc: u64,
    /// Numeric id of the writing site (ties between equal times).
    pub site: u64,
}

/// One entry of a site log or a domain log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The writing site's id.
    pub origin: u64,
    /// Position in its log (1, 2, …).
    pub seq: u64,
    /// The transaction's clock (every row it wrote carries it).
    pub hlc: u64,
    /// Position of the schema log the writer had applied: a site applies the entry only
    /// once it has applied as much.
    pub schema: u64,
    /// For causal tables: the position of each site's log the writer had applied.
    pub deps: Vec<(u64, u64)>,
    /// Schema changes, as PostgreSQL statements, run in order before the rows.
    pub ddl: Vec<String>,
    /// Row changes.
    pub tables: Vec<TableChanges>,
}

/// Why bytes are not an entry.
#[derive(Debug, thiserror::Error)]
#[error("malformed log entry: {0}")]
pub struct DecodeError(String);

impl Entry {
    /// The entry's bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data: serialising into a Vec cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Reads what [`Entry::encode`] wrote; garbage is an error, never a panic.
    pub fn decode(b: &[u8]) -> Result<Entry, DecodeError> {
        postcard::from_bytes(b).map_err(|e| DecodeError(e.to_string()))
    }

    /// The clock every row of this entry carries.
    pub fn clock(&self) -> RowClock {
        RowClock {
            hlc: self.hlc,
            site: self.origin,
        }
    }

    /// Whether it carries nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.ddl.is_empty() && self.tables.iter().all(|t| t.rows.is_empty())
    }
}

/// The key under which a row's clock is kept: its primary-key values, encoded.
pub fn key_bytes(key: &[Val]) -> Vec<u8> {
    postcard::to_stdvec(key).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_garbage_is_an_error() {
        let e = Entry {
            origin: 7,
            seq: 3,
            hlc: 99,
            schema: 2,
            deps: vec![(1, 4)],
            ddl: vec!["CREATE TABLE t (id int primary key)".into()],
            tables: vec![TableChanges {
                table: "t".into(),
                columns: vec!["id".into(), "v".into()],
                pk: vec!["id".into()],
                rows: vec![
                    RowImage {
                        key: vec![Val::Int(1)],
                        values: Some(vec![Val::Int(1), Val::Text("é".into())]),
                    },
                    RowImage {
                        key: vec![Val::Int(2)],
                        values: None,
                    },
                ],
            }],
        };
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        assert!(Entry::decode(b"\xff\xff\xff garbage").is_err());
        assert!(Entry::decode(&e.encode()[..10]).is_err());
    }

    #[test]
    fn clocks_order_by_time_then_site() {
        let a = RowClock { hlc: 5, site: 9 };
        let b = RowClock { hlc: 6, site: 1 };
        let c = RowClock { hlc: 6, site: 2 };
        assert!(a < b && b < c);
    }
}
