//! PostgreSQL's binary formats, for every scalar type (arrays are in [`super::arrays`]).

use crate::datetime::{self as dt, DateCtx, Moment};
use bytes::{BufMut, BytesMut};
use rusqlite::types::{Value, ValueRef};
use sql_capture::PgType;

use super::error::{VResult, ValueError};
use super::text::{
    as_f64, as_i64, as_text, bpchar_padded, format_numeric, from_text, jsonb_out,
    numeric_from_text, numeric_in_scale,
};

/// Appends a value in PostgreSQL's binary format. Values that cannot be shown in the binary
/// form of `ty` (a stored value of another class) yield an error naming the column type.
pub fn encode_binary(v: ValueRef<'_>, ty: PgType, typmod: i32, out: &mut BytesMut) -> VResult<()> {
    let bad = || ValueError {
        code: "22P03",
        message: format!("stored value cannot be sent as binary {}", ty.name()),
    };
    match ty {
        PgType::Bool => out.put_u8((as_i64(v).ok_or_else(bad)? != 0) as u8),
        PgType::Int2 => out.put_i16(as_i64(v).ok_or_else(bad)? as i16),
        PgType::Int4 => out.put_i32(as_i64(v).ok_or_else(bad)? as i32),
        PgType::Oid => out.put_u32(as_i64(v).ok_or_else(bad)? as u32),
        PgType::Int8 => out.put_i64(as_i64(v).ok_or_else(bad)?),
        PgType::Float4 => out.put_f32(as_f64(v).ok_or_else(bad)? as f32),
        PgType::Float8 => out.put_f64(as_f64(v).ok_or_else(bad)?),
        PgType::Numeric => {
            let text = match v {
                ValueRef::Integer(_) | ValueRef::Real(_) => {
                    format_numeric(v, typmod).ok_or_else(bad)?
                }
                ValueRef::Text(b) if typmod >= 4 => numeric_in_scale(b, typmod).into_owned(),
                other => as_text(other),
            };
            numeric_binary(&text, out).ok_or_else(bad)?;
        }
        PgType::Bytea => match v {
            ValueRef::Blob(b) | ValueRef::Text(b) => out.put_slice(b),
            other => out.put_slice(as_text(other).as_bytes()),
        },
        PgType::Jsonb => {
            out.put_u8(1);
            out.put_slice(jsonb_out(as_text(v).as_bytes()).as_bytes());
        }
        PgType::Date => {
            let utc = DateCtx::utc();
            out.put_i32(
                match dt::parse_date(&as_text(v), &utc).map_err(|_| bad())? {
                    Moment::At(d) => d,
                    Moment::PosInf => i32::MAX,
                    Moment::NegInf => i32::MIN,
                },
            );
        }
        PgType::Time => {
            out.put_i64(dt::parse_time(&as_text(v), &DateCtx::utc()).map_err(|_| bad())?);
        }
        PgType::Timestamp | PgType::Timestamptz => {
            let with_zone = ty == PgType::Timestamptz;
            let t =
                dt::parse_timestamp(&as_text(v), with_zone, &DateCtx::utc()).map_err(|_| bad())?;
            out.put_i64(match t {
                Moment::At(t) => t,
                Moment::PosInf => i64::MAX,
                Moment::NegInf => i64::MIN,
            });
        }
        PgType::Interval => {
            let iv = dt::Interval::parse(&as_text(v)).map_err(|_| bad())?;
            out.put_i64(iv.micros);
            out.put_i32(iv.days);
            out.put_i32(iv.months);
        }
        PgType::Uuid => {
            let u = uuid::Uuid::parse_str(&as_text(v)).map_err(|_| bad())?;
            out.put_slice(u.as_bytes());
        }
        PgType::Bpchar => bpchar_padded(as_text(v).as_bytes(), typmod, out),
        PgType::Text | PgType::Varchar | PgType::Name | PgType::Char | PgType::Json => match v {
            ValueRef::Text(b) | ValueRef::Blob(b) => out.put_slice(b),
            other => out.put_slice(as_text(other).as_bytes()),
        },
        array_types!() => return Err(bad()),
    }
    Ok(())
}

/// Writes PostgreSQL's binary NUMERIC (base-10000 digits) for a decimal string.
pub(super) fn numeric_binary(text: &str, out: &mut BytesMut) -> Option<()> {
    // PostgreSQL 15's special values: no digits, the kind in the sign word.
    let special = match text {
        "NaN" => Some(0xC000),
        "Infinity" => Some(0xD000),
        "-Infinity" => Some(0xF000),
        _ => None,
    };
    if let Some(sign) = special {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(sign);
        out.put_u16(0);
        return Some(());
    }
    let (neg, t) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (int_part, frac_part) = t.split_once('.').unwrap_or((t, ""));
    if !int_part
        .chars()
        .chain(frac_part.chars())
        .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let dscale = frac_part.len() as u16;
    let int_part = int_part.trim_start_matches('0');
    // Left-pad the integer part and right-pad the fraction to groups of four.
    let pad_left = (4 - int_part.len() % 4) % 4;
    let int_digits = format!("{}{}", "0".repeat(pad_left), int_part);
    let pad_right = (4 - frac_part.len() % 4) % 4;
    let frac_digits = format!("{}{}", frac_part, "0".repeat(pad_right));
    let mut groups: Vec<i16> = Vec::new();
    for c in int_digits
        .as_bytes()
        .chunks(4)
        .chain(frac_digits.as_bytes().chunks(4))
    {
        groups.push(std::str::from_utf8(c).ok()?.parse().ok()?);
    }
    let mut weight = (int_digits.len() / 4) as i16 - 1;
    // Trim leading and trailing zero groups.
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight);
    out.put_u16(if neg && !groups.is_empty() { 0x4000 } else { 0 });
    out.put_u16(dscale);
    for g in groups {
        out.put_i16(g);
    }
    Some(())
}

pub(super) fn numeric_from_binary(b: &[u8]) -> Option<String> {
    let rd16 =
        |i: usize| -> Option<i16> { Some(i16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?)) };
    let ndigits = rd16(0)? as usize;
    let weight = rd16(2)? as i32;
    let sign = rd16(4)? as u16;
    let dscale = rd16(6)? as usize;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0 | 0x4000 => {}
        _ => return None,
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|i| rd16(8 + 2 * i))
        .collect::<Option<_>>()?;
    let mut int_part = String::new();
    for w in 0..=weight.max(-1) {
        let d = digits.get(w as usize).copied().unwrap_or(0);
        if int_part.is_empty() {
            if d != 0 {
                int_part = d.to_string();
            }
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut frac = String::new();
    let mut pos = weight + 1;
    while frac.len() < dscale {
        let d = if pos < 0 {
            0
        } else {
            digits.get(pos as usize).copied().unwrap_or(0)
        };
        frac.push_str(&format!("{d:04}"));
        pos += 1;
    }
    frac.truncate(dscale);
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    s.push_str(&int_part);
    if dscale > 0 {
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}

/// Decodes a parameter in PostgreSQL's binary format for type `ty`.
pub fn from_binary(b: &[u8], ty: PgType) -> VResult<Value> {
    let bad = || ValueError {
        code: "22P03",
        message: format!("incorrect binary data format for type {}", ty.name()),
    };
    let arr = |n: usize| -> VResult<&[u8]> {
        if b.len() == n {
            Ok(b)
        } else {
            Err(bad())
        }
    };
    Ok(match ty {
        PgType::Bool => Value::Integer((arr(1)?[0] != 0) as i64),
        PgType::Int2 => {
            Value::Integer(i16::from_be_bytes(arr(2)?.try_into().map_err(|_| bad())?) as i64)
        }
        PgType::Int4 => {
            Value::Integer(i32::from_be_bytes(arr(4)?.try_into().map_err(|_| bad())?) as i64)
        }
        PgType::Oid => {
            Value::Integer(u32::from_be_bytes(arr(4)?.try_into().map_err(|_| bad())?) as i64)
        }
        PgType::Int8 => Value::Integer(i64::from_be_bytes(arr(8)?.try_into().map_err(|_| bad())?)),
        PgType::Float4 => {
            Value::Real(f32::from_be_bytes(arr(4)?.try_into().map_err(|_| bad())?) as f64)
        }
        PgType::Float8 => Value::Real(f64::from_be_bytes(arr(8)?.try_into().map_err(|_| bad())?)),
        PgType::Numeric => numeric_from_text(&numeric_from_binary(b).ok_or_else(bad)?, -1)?,
        PgType::Bytea => Value::Blob(b.to_vec()),
        PgType::Jsonb => {
            let rest = b.strip_prefix(&[1u8]).ok_or_else(bad)?;
            from_text(
                std::str::from_utf8(rest).map_err(|_| bad())?,
                ty,
                -1,
                &DateCtx::utc(),
            )?
        }
        PgType::Date => {
            let days = i32::from_be_bytes(arr(4)?.try_into().map_err(|_| bad())?);
            let d = match days {
                i32::MAX => Moment::PosInf,
                i32::MIN => Moment::NegInf,
                d => Moment::At(dt::check_date(d).map_err(super::text::dt_error)?),
            };
            Value::Text(dt::format_date(d))
        }
        PgType::Time => {
            let us = i64::from_be_bytes(arr(8)?.try_into().map_err(|_| bad())?);
            if !(0..=dt::USECS_PER_DAY).contains(&us) {
                return Err(bad());
            }
            Value::Text(dt::format_time(us))
        }
        PgType::Timestamp | PgType::Timestamptz => {
            let us = i64::from_be_bytes(arr(8)?.try_into().map_err(|_| bad())?);
            let t = match us {
                i64::MAX => Moment::PosInf,
                i64::MIN => Moment::NegInf,
                t => Moment::At(dt::check_ts(t).map_err(super::text::dt_error)?),
            };
            Value::Text(if ty == PgType::Timestamp {
                dt::format_timestamp(t)
            } else {
                dt::stored_timestamptz_of(t)
            })
        }
        PgType::Interval => {
            let b = arr(16)?;
            let iv = dt::Interval::new(
                i32::from_be_bytes(b[12..16].try_into().map_err(|_| bad())?),
                i32::from_be_bytes(b[8..12].try_into().map_err(|_| bad())?),
                i64::from_be_bytes(b[0..8].try_into().map_err(|_| bad())?),
            );
            Value::Text(iv.format())
        }
        PgType::Uuid => Value::Text(
            uuid::Uuid::from_slice(arr(16)?)
                .map_err(|_| bad())?
                .hyphenated()
                .to_string(),
        ),
        PgType::Bpchar => Value::Text(
            std::str::from_utf8(b)
                .map_err(|_| bad())?
                .trim_end_matches(' ')
                .to_string(),
        ),
        PgType::Text | PgType::Varchar | PgType::Name | PgType::Char | PgType::Json => {
            Value::Text(std::str::from_utf8(b).map_err(|_| bad())?.to_string())
        }
        array_types!() => return Err(bad()),
    })
}
