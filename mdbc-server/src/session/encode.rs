//! Values between the wire and SQLite: result rows encoded in text or binary, bound
//! parameters decoded, result columns typed, and completion tags.

use bytes::{BufMut, BytesMut};
use pgwire::messages::data::DataRow;
use rusqlite::types::{Value, ValueRef};
use sql_capture::{Catalog, CommandTag, PgType, SqlPlan};

use super::outcome::Column;
use super::prepared::Params;
use crate::datetime::DateCtx;
use crate::errors::SqlError;
use crate::values;

type Result<T> = std::result::Result<T, SqlError>;

/// The completion tag of a statement that affected or returned `n` rows.
pub fn tag_text(tag: &CommandTag, n: usize) -> String {
    match tag {
        CommandTag::Select => format!("SELECT {n}"),
        CommandTag::Insert => format!("INSERT 0 {n}"),
        CommandTag::Update => format!("UPDATE {n}"),
        CommandTag::Delete => format!("DELETE {n}"),
        CommandTag::Fixed(t) => (*t).to_string(),
    }
}

/// Bound parameter `i`, decoded to the type it is inferred or declared to have.
pub fn decode_param(
    params: &Params<'_>,
    i: usize,
    ty: Option<PgType>,
    zone: &DateCtx,
) -> Result<Value> {
    let Some(raw) = params.values.get(i).and_then(|v| v.as_ref()) else {
        return Ok(Value::Null);
    };
    if (params.binary)(i) {
        let ty = ty.ok_or_else(|| {
            SqlError::coded(
                "42P18",
                format!("could not determine data type of parameter ${}", i + 1),
            )
        })?;
        return Ok(values::from_binary(raw, ty)?);
    }
    let text = std::str::from_utf8(raw)
        .map_err(|_| SqlError::coded("22021", "invalid byte sequence for encoding \"UTF8\""))?;
    Ok(match ty {
        Some(t) => values::from_text_in(text, t, -1, zone)?,
        None => Value::Text(text.to_string()),
    })
}

/// Types of a statement's result columns: the declared type of the column each comes from
/// (SQLite knows the origin), else the inferred type of the expression, else text.
pub fn result_columns(
    stmt: &rusqlite::Statement<'_>,
    plan: &SqlPlan,
    catalog: &Catalog,
) -> Vec<Column> {
    stmt.columns_with_metadata()
        .enumerate()
        .map(|(i, m)| {
            let from_origin = match (m.table_name(), m.origin_name()) {
                (Some(t), Some(c)) => catalog
                    .table(t)
                    .and_then(|d| d.column(c))
                    .map(|c| (c.ty, c.typmod)),
                _ => None,
            };
            let (ty, typmod) = from_origin
                .or_else(|| {
                    plan.columns
                        .get(i)
                        .and_then(|c| c.ty.map(|t| (t, c.typmod)))
                })
                .unwrap_or((PgType::Text, -1));
            Column {
                name: m.name().to_string(),
                ty,
                typmod,
            }
        })
        .collect()
}

/// Builds one DataRow.
pub struct RowEncoder {
    buf: BytesMut,
    count: i16,
}

impl RowEncoder {
    /// A row of `columns` values.
    pub fn new(columns: usize) -> Self {
        RowEncoder {
            buf: BytesMut::with_capacity(columns * 16),
            count: 0,
        }
    }

    /// Appends a value of column `col` (a timestamptz in text shown in `zone`).
    pub fn push(
        &mut self,
        v: ValueRef<'_>,
        col: &Column,
        binary: bool,
        zone: &DateCtx,
    ) -> Result<()> {
        self.count += 1;
        if v == ValueRef::Null {
            self.buf.put_i32(-1);
            return Ok(());
        }
        let len_at = self.buf.len();
        self.buf.put_i32(0);
        if binary {
            values::encode_binary(v, col.ty, col.typmod, &mut self.buf)?;
        } else {
            values::encode_text_in(v, col.ty, col.typmod, zone, &mut self.buf);
        }
        let len = (self.buf.len() - len_at - 4) as i32;
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Appends a value already encoded.
    pub fn push_raw(&mut self, bytes: &[u8]) {
        self.count += 1;
        self.buf.put_i32(bytes.len() as i32);
        self.buf.put_slice(bytes);
    }

    /// The finished DataRow.
    pub fn finish(self) -> DataRow {
        DataRow::new(self.buf, self.count)
    }
}
