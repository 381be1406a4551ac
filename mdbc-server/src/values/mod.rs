//! Values: PostgreSQL input syntax to SQLite storage, and SQLite storage to PostgreSQL's text
//! and binary wire formats.
//!
//! Storage rules (one per type, so comparisons and sorting in SQLite stay correct):
//! booleans as 0/1; integers and floats natively; numeric as integer or real (printed with
//! the declared scale); date/time/timestamp as canonical ISO text (timestamptz in UTC with
//! `+00`), which sorts chronologically; uuid lower-case; json as given, jsonb normalised;
//! bytea as a blob.

//!
//! This module decides by type: arrays go to [`arrays`], every other type to [`text`] and
//! [`binary`]; [`coerce`] converts a stored value of any class.

/// Every array and vector type (dispatched to `arrays` before the scalar matches).
macro_rules! array_types {
    () => {
        PgType::BoolArray
            | PgType::CharArray
            | PgType::NameArray
            | PgType::Int2Array
            | PgType::Int4Array
            | PgType::TextArray
            | PgType::OidArray
            | PgType::Int8Array
            | PgType::Float8Array
            | PgType::NumericArray
            | PgType::VarcharArray
            | PgType::Int2Vector
            | PgType::OidVector
    };
}

mod arrays;
mod binary;
mod error;
mod text;

use bytes::BytesMut;
use rusqlite::types::{Value, ValueRef};
use sql_capture::PgType;

use crate::datetime::DateCtx;
use crate::numeric::Numeric;
pub use error::ValueError;
use error::{invalid, out_of_range, VResult};
use text::{check_int_range, numeric_from_text, numeric_value};
pub use text::{format_float, now_text, today_text};

/// Parses PostgreSQL input text for a column of type `ty` into what SQLite stores (a
/// timestamptz without an offset read as UTC).
pub fn from_text(input: &str, ty: PgType, typmod: i32) -> VResult<Value> {
    from_text_in(input, ty, typmod, &DateCtx::utc())
}

/// [`from_text`] in a session whose `TimeZone` is `zone`.
pub fn from_text_in(input: &str, ty: PgType, typmod: i32, zone: &DateCtx) -> VResult<Value> {
    if ty.element().is_none() {
        return text::from_text(input, ty, typmod, zone);
    }
    // Already an array as mdbc keeps them (the result of array_agg, ARRAY[…]).
    let t = input.trim();
    if t.starts_with('[') {
        if let Ok(j @ serde_json::Value::Array(_)) = serde_json::from_str(t) {
            return Ok(Value::Text(j.to_string()));
        }
    }
    Ok(Value::Text(arrays::from_pg_text(input, ty)?.to_string()))
}

/// Appends a value in PostgreSQL's text format (a timestamptz in UTC).
pub fn encode_text(v: ValueRef<'_>, ty: PgType, typmod: i32, out: &mut BytesMut) {
    encode_text_in(v, ty, typmod, &DateCtx::utc(), out)
}

/// [`encode_text`] in a session whose `TimeZone` is `zone`.
pub fn encode_text_in(
    v: ValueRef<'_>,
    ty: PgType,
    typmod: i32,
    zone: &DateCtx,
    out: &mut BytesMut,
) {
    match v {
        ValueRef::Text(b) if ty.element().is_some() => {
            arrays::encode_text(&String::from_utf8_lossy(b), ty, out)
        }
        _ => text::encode_text(v, ty, typmod, zone, out),
    }
}

/// Appends a value in PostgreSQL's binary format. Values that cannot be shown in the binary
/// form of `ty` (a stored value of another class) yield an error naming the column type.
pub fn encode_binary(v: ValueRef<'_>, ty: PgType, typmod: i32, out: &mut BytesMut) -> VResult<()> {
    if ty.element().is_some() {
        return arrays::encode_binary(&text::as_text(v), ty, out);
    }
    binary::encode_binary(v, ty, typmod, out)
}

/// Decodes a parameter in PostgreSQL's binary format for type `ty`.
pub fn from_binary(b: &[u8], ty: PgType) -> VResult<Value> {
    if ty.element().is_some() {
        return Ok(Value::Text(arrays::from_binary(b, ty)?.to_string()));
    }
    binary::from_binary(b, ty)
}

/// Converts any stored SQLite value to type `ty`, as `pg_coerce` (casts and writes) does.
pub fn coerce(v: ValueRef<'_>, ty: PgType, typmod: i32) -> VResult<Value> {
    coerce_in(v, ty, typmod, &DateCtx::utc())
}

/// [`coerce`] in a session whose `TimeZone` is `zone` (text without an offset cast to
/// timestamptz is read there).
pub fn coerce_in(v: ValueRef<'_>, ty: PgType, typmod: i32, zone: &DateCtx) -> VResult<Value> {
    let from_text = |s: &str, ty: PgType, typmod: i32| from_text_in(s, ty, typmod, zone);
    match v {
        ValueRef::Null => Ok(Value::Null),
        ValueRef::Text(b) => {
            let s = std::str::from_utf8(b).map_err(|_| ValueError {
                code: "22021",
                message: "invalid byte sequence for encoding \"UTF8\"".into(),
            })?;
            from_text(s, ty, typmod)
        }
        ValueRef::Integer(i) => match ty {
            PgType::Bool => Ok(Value::Integer((i != 0) as i64)),
            PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Oid => {
                Ok(Value::Integer(check_int_range(i, ty, &i.to_string())?))
            }
            PgType::Float4 => Ok(Value::Real(f64::from(i as f32))),
            PgType::Float8 => Ok(Value::Real(i as f64)),
            PgType::Numeric => numeric_from_text(&i.to_string(), typmod),
            PgType::Bytea => Ok(Value::Blob(i.to_string().into_bytes())),
            _ => from_text(&i.to_string(), ty, typmod),
        },
        ValueRef::Real(f) => match ty {
            PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Oid => {
                let r = f.round_ties_even();
                // i64::MAX is not a double: 2^63 rounds up to it, and is out of range.
                if !r.is_finite() || r < i64::MIN as f64 || r >= -(i64::MIN as f64) {
                    return Err(out_of_range(ty, &f.to_string()));
                }
                Ok(Value::Integer(check_int_range(
                    r as i64,
                    ty,
                    &f.to_string(),
                )?))
            }
            // A real holds single precision: what a cast to it keeps.
            PgType::Float4 => Ok(Value::Real(f64::from(f as f32))),
            PgType::Float8 => Ok(Value::Real(f)),
            PgType::Numeric => numeric_value(Numeric::from_f64(f), typmod),
            PgType::Bool => Err(ValueError {
                code: "42846",
                message: "cannot cast type double precision to boolean".into(),
            }),
            _ => from_text(&text::format_float_in(f, zone), ty, typmod),
        },
        ValueRef::Blob(b) => match ty {
            PgType::Bytea => Ok(Value::Blob(b.to_vec())),
            // A cast to a string type writes bytea's output form, as PostgreSQL's I/O
            // conversion does.
            PgType::Text | PgType::Varchar | PgType::Bpchar | PgType::Name => {
                from_text(&text::bytea_text(b, zone.bytea_escape), ty, typmod)
            }
            _ => match std::str::from_utf8(b) {
                Ok(s) => from_text(s, ty, typmod),
                Err(_) => Err(invalid(ty, "<binary>")),
            },
        },
    }
}

/// A PostgreSQL text[] literal (`{a,"b c",NULL}`) as mdbc stores arrays: a JSON array.
pub fn array_literal_as_json(input: &str) -> VResult<String> {
    arrays::from_pg_text(input, sql_capture::PgType::TextArray).map(|j| j.to_string())
}
