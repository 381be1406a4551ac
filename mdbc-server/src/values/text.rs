//! PostgreSQL's text formats: input syntax to SQLite storage, storage to output text, for
//! every scalar type (arrays are in [`super::arrays`], built on these).

use super::error::{invalid, out_of_range, VResult, ValueError};
use crate::datetime::{self as dt, DateCtx};
use crate::numeric::Numeric;
use bytes::{BufMut, BytesMut};
use rusqlite::types::{Value, ValueRef};
use sql_capture::PgType;
use std::fmt::Write as _;

/// A date/time error as a value error (same SQLSTATE and message).
pub(super) fn dt_error(e: dt::DtError) -> ValueError {
    ValueError {
        code: e.code,
        message: e.message,
    }
}

/// Parses PostgreSQL input text for a column of type `ty` into what SQLite stores; a
/// timestamptz without an offset is read in `zone`.
pub fn from_text(input: &str, ty: PgType, typmod: i32, zone: &DateCtx) -> VResult<Value> {
    let t = input.trim();
    Ok(match ty {
        PgType::Bool => Value::Integer(parse_bool(t).ok_or_else(|| invalid(ty, input))? as i64),
        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Oid => {
            let v: i64 = t.parse().map_err(|_| {
                if !t.is_empty()
                    && t.trim_start_matches(['-', '+'])
                        .chars()
                        .all(|c| c.is_ascii_digit())
                {
                    out_of_range(ty, input)
                } else {
                    invalid(ty, input)
                }
            })?;
            Value::Integer(check_int_range(v, ty, input)?)
        }
        PgType::Float4 | PgType::Float8 => Value::Real(float_in_range(
            parse_float(t).ok_or_else(|| invalid(ty, input))?,
            t,
            ty,
            input,
        )?),
        PgType::Numeric => numeric_from_text(t, typmod).map_err(|e| {
            if e.code == "22P02" {
                invalid(ty, input)
            } else {
                e
            }
        })?,
        PgType::Text | PgType::Name => Value::Text(input.to_string()),
        PgType::Char => Value::Text(char_from_text(input)),
        // Arrays are converted by `super::from_text`; never here.
        array_types!() => return Err(invalid(ty, input)),
        PgType::Varchar | PgType::Bpchar => Value::Text(fit_length(input, ty, typmod)?),
        PgType::Bytea => Value::Blob(bytea_from_text(input).ok_or_else(|| invalid(ty, input))?),
        PgType::Date => Value::Text(dt::format_date(dt::parse_date(t, zone).map_err(dt_error)?)),
        PgType::Time => {
            let t = dt::round_to_precision(dt::parse_time(t, zone).map_err(dt_error)?, typmod);
            // 23:59:59.9 in time(0) is 24:00:00, as in PostgreSQL.
            Value::Text(dt::format_time(t.min(dt::USECS_PER_DAY)))
        }
        PgType::Timestamp | PgType::Timestamptz => {
            let with_zone = ty == PgType::Timestamptz;
            let v = match dt::parse_timestamp(t, with_zone, zone).map_err(dt_error)? {
                dt::Moment::At(t) => dt::Moment::At(
                    dt::check_ts(dt::round_to_precision(t, typmod)).map_err(dt_error)?,
                ),
                inf => inf,
            };
            Value::Text(if with_zone {
                dt::format_timestamptz(v, &DateCtx::utc())
            } else {
                dt::format_timestamp(v)
            })
        }
        PgType::Interval => {
            let mut iv = dt::Interval::parse_in(t, zone.interval_style).map_err(dt_error)?;
            if typmod >= 0 {
                iv.micros = dt::round_to_precision(iv.micros, typmod & 0xffff);
            }
            Value::Text(iv.format())
        }
        PgType::Uuid => Value::Text(
            uuid::Uuid::parse_str(t)
                .map_err(|_| invalid(ty, input))?
                .hyphenated()
                .to_string(),
        ),
        PgType::Json => {
            crate::json::check_json(input).map_err(|e| json_error(e, ty, input))?;
            Value::Text(input.to_string())
        }
        PgType::Jsonb => {
            Value::Text(crate::json::jsonb_text(input).map_err(|e| json_error(e, ty, input))?)
        }
    })
}

pub(super) fn check_int_range(v: i64, ty: PgType, input: &str) -> VResult<i64> {
    let ok = match ty {
        PgType::Int2 => i16::try_from(v).is_ok(),
        PgType::Int4 => i32::try_from(v).is_ok(),
        PgType::Oid => u32::try_from(v).is_ok(),
        _ => true,
    };
    if ok {
        Ok(v)
    } else {
        Err(out_of_range(ty, input))
    }
}

pub(super) fn parse_bool(t: &str) -> Option<bool> {
    let l = t.to_ascii_lowercase();
    match l.as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

pub(super) fn parse_float(t: &str) -> Option<f64> {
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" | "+infinity" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => t.parse::<f64>().ok().filter(|_| !t.is_empty()),
    }
}

/// A parsed float as PostgreSQL takes it: NaN is refused (SQLite stores it as NULL, which
/// would answer differently), and a value too large or too small for the type (`10e400`,
/// `10e-400`, or past `real`'s range) is out of range (22003) unless it was written as
/// infinity.
fn float_in_range(v: f64, t: &str, ty: PgType, input: &str) -> VResult<f64> {
    if v.is_nan() {
        return Err(ValueError {
            code: "0A000",
            message: "NaN is not supported: SQLite cannot store it".into(),
        });
    }
    if v.is_infinite() {
        let written = t.trim_start_matches(['+', '-']).to_ascii_lowercase();
        return if written == "infinity" || written == "inf" {
            Ok(v)
        } else {
            Err(out_of_range(ty, input))
        };
    }
    let mantissa = t.split(['e', 'E']).next().unwrap_or("");
    let nonzero = mantissa.chars().any(|c| c.is_ascii_digit() && c != '0');
    if v == 0.0 && nonzero {
        return Err(out_of_range(ty, input));
    }
    if ty == PgType::Float4 {
        // Read as single precision directly (no double rounding through f64).
        let narrow = t.trim().parse::<f32>().unwrap_or(v as f32);
        if narrow.is_infinite() || (narrow == 0.0 && v != 0.0) {
            return Err(out_of_range(ty, input));
        }
        return Ok(f64::from(narrow));
    }
    Ok(v)
}

/// Parses a numeric (PostgreSQL's input syntax) and applies a `numeric(p,s)` typmod:
/// stored as its exact text (numeric/mod.rs).
pub(super) fn numeric_from_text(t: &str, typmod: i32) -> VResult<Value> {
    numeric_value(Numeric::parse(t)?, typmod)
}

/// A numeric under a typmod, as the text SQLite stores.
pub(super) fn numeric_value(n: Numeric, typmod: i32) -> VResult<Value> {
    let n = match sql_capture::types::numeric_typmod(typmod) {
        Some((precision, scale)) => n.apply_typmod(precision, scale)?,
        None => n,
    };
    Ok(Value::Text(n.to_string()))
}

pub(super) fn fit_length(input: &str, ty: PgType, typmod: i32) -> VResult<String> {
    if typmod < 4 {
        return Ok(input.to_string());
    }
    let n = (typmod - 4) as usize;
    let len = input.chars().count();
    if len > n {
        // PostgreSQL silently drops trailing spaces beyond the limit.
        let trimmed = input.trim_end_matches(' ');
        if trimmed.chars().count() <= n {
            let s: String = input.chars().take(n).collect();
            return Ok(if ty == PgType::Bpchar {
                s.trim_end_matches(' ').to_string()
            } else {
                s
            });
        }
        return Err(ValueError {
            code: "22001",
            message: format!("value too long for type {}", ty.format_with_typmod(typmod)),
        });
    }
    if ty == PgType::Bpchar {
        // Stored without its padding, so that it compares, concatenates and measures as
        // PostgreSQL's character(n) does (trailing spaces insignificant); the padding is
        // put back on output (bpchar_padded).
        return Ok(input.trim_end_matches(' ').to_string());
    }
    Ok(input.to_string())
}

/// A stored character(n) value with its padding, as PostgreSQL shows it.
pub(super) fn bpchar_padded(b: &[u8], typmod: i32, out: &mut BytesMut) {
    out.put_slice(b);
    if typmod >= 5 {
        let have = String::from_utf8_lossy(b).chars().count();
        let want = (typmod - 4) as usize;
        for _ in have..want {
            out.put_u8(b' ');
        }
    }
}

pub(super) fn bytea_from_text(s: &str) -> Option<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x") {
        let hex: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !hex.len().is_multiple_of(2) {
            return None;
        }
        return hex
            .chunks(2)
            .map(|c| {
                let hi = (c[0] as char).to_digit(16)?;
                let lo = (c[1] as char).to_digit(16)?;
                Some((hi * 16 + lo) as u8)
            })
            .collect();
    }
    // Escape format: backslash-octal and doubled backslashes.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
            } else if i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (b[i + 1] - b'0') as u32 * 64
                    + (b[i + 2] - b'0') as u32 * 8
                    + (b[i + 3] - b'0') as u32;
                out.push(u8::try_from(v).ok()?);
                i += 4;
            } else {
                return None;
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// PostgreSQL's float output: shortest round-trip digits.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if f != 0.0 && (f.abs() >= 1e15 || f.abs() < 1e-4) {
        exponent_form(format!("{f:e}"))
    } else {
        format!("{f}")
    }
}

/// A double's text under the session's `extra_float_digits`.
pub(super) fn format_float_in(f: f64, ctx: &DateCtx) -> String {
    match ctx.float_digits {
        Some(extra) => format_g(f, 15 + extra),
        None => format_float(f),
    }
}

/// C's `%.{precision}g`, which PostgreSQL uses when `extra_float_digits` is 0 or less:
/// `precision` significant digits, trailing zeros dropped, exponent form when the
/// exponent is below -4 or not below the precision.
fn format_g(f: f64, precision: i32) -> String {
    if !f.is_finite() {
        return format_float(f);
    }
    let p = precision.max(1) as usize;
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{:.*e}", p - 1, f);
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= p as i32 {
        exponent_form(format!("{}e{exp}", trim(mantissa)))
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim(&format!("{:.*}", decimals, f))
    }
}

/// `real` output: the shortest digits that read back as the same single-precision value
/// (`4.56789e+15`), exponent form from 10^6 on as PostgreSQL writes float4.
pub fn format_float4(f: f64) -> String {
    let g = f as f32;
    if g.is_nan() || g.is_infinite() {
        format_float(f)
    } else if g != 0.0 && (g.abs() >= 1e6 || g.abs() < 1e-4) {
        exponent_form(format!("{g:e}"))
    } else {
        format!("{g}")
    }
}

fn exponent_form(s: String) -> String {
    {
        // Rust writes 1e21 / 1.5e-5; PostgreSQL writes 1e+21 / 1.5e-05.
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

pub(super) fn format_numeric(v: ValueRef<'_>, typmod: i32) -> Option<String> {
    let scale = if typmod >= 4 {
        Some(((typmod - 4) & 0xffff) as usize)
    } else {
        None
    };
    Some(match v {
        ValueRef::Integer(i) => match scale {
            Some(s) if s > 0 => format!("{i}.{}", "0".repeat(s)),
            _ => i.to_string(),
        },
        ValueRef::Real(f) => {
            if f.is_nan() {
                return Some("NaN".into());
            }
            match scale {
                Some(s) => format!("{f:.s$}"),
                None => {
                    let s = format!("{f}");
                    if s.contains('e') {
                        format!("{f:.}")
                    } else {
                        s
                    }
                }
            }
        }
        _ => return None,
    })
}

/// `"char"` keeps one byte: `\\ooo` is that octal byte, anything else its first byte. It
/// is kept as PostgreSQL prints it: a byte with the high bit set as `\\ooo`, the zero
/// byte as the empty string.
fn char_from_text(input: &str) -> String {
    let b = input.as_bytes();
    let byte = match b {
        [b'\\', d @ ..] if d.len() == 3 && d.iter().all(|c| (b'0'..=b'7').contains(c)) => {
            d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0')) as u8
        }
        [first, ..] => *first,
        [] => 0,
    };
    match byte {
        0 => String::new(),
        0x80..=0xff => format!("\\{byte:03o}"),
        _ => (byte as char).to_string(),
    }
}

/// A bytea's text: `\\x` and hex digits, or with `bytea_output = escape` the printable
/// ASCII bytes as they are, a backslash doubled and every other byte as `\\ooo`.
pub fn bytea_text(b: &[u8], escape: bool) -> String {
    let mut s = String::with_capacity(2 + 2 * b.len());
    if !escape {
        s.push_str("\\x");
        for byte in b {
            let _ = write!(s, "{byte:02x}");
        }
        return s;
    }
    for &byte in b {
        match byte {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(byte as char),
            _ => {
                let _ = write!(s, "\\{byte:03o}");
            }
        }
    }
    s
}

/// Appends a value in PostgreSQL's text format (a timestamptz as seen in `zone`).
pub fn encode_text(v: ValueRef<'_>, ty: PgType, typmod: i32, zone: &DateCtx, out: &mut BytesMut) {
    match (ty, v) {
        (_, ValueRef::Null) => {}
        (PgType::Interval, ValueRef::Text(b))
            if zone.interval_style != dt::IntervalStyle::Postgres =>
        {
            let text = String::from_utf8_lossy(b);
            match dt::Interval::parse(&text) {
                Ok(iv) => out.put_slice(iv.format_in(zone.interval_style).as_bytes()),
                Err(_) => out.put_slice(b),
            }
        }
        (PgType::Timestamptz, ValueRef::Text(b)) if !zone.is_utc() => {
            let text = String::from_utf8_lossy(b);
            match dt::parse_timestamp(&text, true, zone) {
                Ok(t) => out.put_slice(dt::format_timestamptz(t, zone).as_bytes()),
                Err(_) => out.put_slice(b),
            }
        }
        (PgType::Bpchar, ValueRef::Text(b)) => bpchar_padded(b, typmod, out),
        (PgType::Bool, ValueRef::Integer(i)) => out.put_slice(if i != 0 { b"t" } else { b"f" }),
        (PgType::Bool, ValueRef::Real(f)) => out.put_slice(if f != 0.0 { b"t" } else { b"f" }),
        (PgType::Numeric, v @ (ValueRef::Integer(_) | ValueRef::Real(_))) => {
            if let Some(s) = format_numeric(v, typmod) {
                out.put_slice(s.as_bytes());
            }
        }
        (PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Oid, ValueRef::Real(f)) => {
            let _ = write!(BytesWriter(out), "{}", f.round_ties_even() as i64);
        }
        (_, ValueRef::Integer(i)) => {
            let mut buf = itoa::Buffer::new();
            out.put_slice(buf.format(i).as_bytes());
        }
        (PgType::Float4, ValueRef::Real(f)) => match zone.float_digits {
            Some(extra) => out.put_slice(format_g(f64::from(f as f32), 6 + extra).as_bytes()),
            None => out.put_slice(format_float4(f).as_bytes()),
        },
        (_, ValueRef::Real(f)) => out.put_slice(format_float_in(f, zone).as_bytes()),
        (PgType::Bytea, ValueRef::Blob(b) | ValueRef::Text(b)) => {
            out.put_slice(bytea_text(b, zone.bytea_escape).as_bytes())
        }
        // jsonb computed by an expression (`->`, SQLite's json functions) comes out in
        // SQLite's compact form; PostgreSQL prints every jsonb one way.
        (PgType::Jsonb, ValueRef::Text(b)) => out.put_slice(jsonb_out(b).as_bytes()),
        (PgType::Numeric, ValueRef::Text(b)) if typmod >= 4 => {
            out.put_slice(numeric_in_scale(b, typmod).as_bytes())
        }
        (_, ValueRef::Text(b) | ValueRef::Blob(b)) => out.put_slice(b),
    }
}

/// A numeric's text shown with its column's scale: a value that reached the column
/// without a coercion (an SQLite DEFAULT clause) may have another (`0.5` in numeric(5,2)
/// is shown `0.50`).
pub(super) fn numeric_in_scale(b: &[u8], typmod: i32) -> std::borrow::Cow<'_, str> {
    let text = String::from_utf8_lossy(b);
    let scale = sql_capture::types::numeric_scale(PgType::Numeric, typmod).unwrap_or(0);
    match Numeric::parse(&text) {
        Ok(n) if n.scale().is_some_and(|s| s != scale) => n.rescale(scale).to_string().into(),
        _ => text,
    }
}

/// A jsonb value as PostgreSQL prints it (what is not JSON is shown as it is).
pub(super) fn jsonb_out(b: &[u8]) -> std::borrow::Cow<'_, str> {
    let text = String::from_utf8_lossy(b);
    match crate::json::jsonb_text(&text) {
        Ok(v) => v.into(),
        Err(_) => text,
    }
}

/// A json/jsonb input error: the syntax error names the type and the input as PostgreSQL
/// does; others (an unsupported Unicode escape) keep their own SQLSTATE.
fn json_error(e: crate::json::JsonError, ty: PgType, input: &str) -> ValueError {
    if e.code == "22P02" {
        invalid(ty, input)
    } else {
        ValueError {
            code: e.code,
            message: e.message,
        }
    }
}

struct BytesWriter<'a>(&'a mut BytesMut);

impl std::fmt::Write for BytesWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}

pub(super) fn as_text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format_float(f),
        ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

pub(super) fn as_i64(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(f) => Some(f.round_ties_even() as i64),
        ValueRef::Text(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn as_f64(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) => Some(f),
        ValueRef::Text(b) => parse_float(std::str::from_utf8(b).ok()?.trim()),
        _ => None,
    }
}

/// The current time as mdbc stores `timestamptz`.
pub fn now_text() -> String {
    dt::stored_timestamptz(dt::now())
}

/// Today's date (UTC) as stored.
pub fn today_text() -> String {
    dt::format_date(dt::Moment::At(
        dt::now().div_euclid(dt::USECS_PER_DAY) as i32
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::binary::{encode_binary, from_binary, numeric_binary, numeric_from_binary};

    fn from_text(input: &str, ty: PgType, typmod: i32) -> VResult<Value> {
        super::from_text(input, ty, typmod, &DateCtx::utc())
    }

    #[test]
    fn bytea_text_in_both_output_styles() {
        // PostgreSQL 15: SET bytea_output = escape; SELECT E'\\xDe00BeEf5c41'::bytea
        assert_eq!(
            bytea_text(b"\xde\x00\xbe\xef\\A", true),
            "\\336\\000\\276\\357\\\\A"
        );
        assert_eq!(bytea_text(b"De\x00dB", true), "De\\000dB");
        assert_eq!(bytea_text(b"\x00\xff", false), "\\x00ff");
        assert_eq!(bytea_text(b"", false), "\\x");
    }

    fn text(v: &Value, ty: PgType, typmod: i32) -> String {
        let mut b = BytesMut::new();
        encode_text(ValueRef::from(v), ty, typmod, &DateCtx::utc(), &mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn text_round_trips() {
        for (input, ty, typmod, expect) in [
            ("yes", PgType::Bool, -1, "t"),
            ("42", PgType::Int4, -1, "42"),
            ("1.5", PgType::Numeric, (10 << 16 | 2) + 4, "1.50"),
            (
                "2024-02-03 04:05:06.5+02",
                PgType::Timestamptz,
                -1,
                "2024-02-03 02:05:06.5+00",
            ),
            (
                "2024-02-03T04:05:06",
                PgType::Timestamp,
                -1,
                "2024-02-03 04:05:06",
            ),
            ("2024-02-03", PgType::Date, -1, "2024-02-03"),
            ("1 day 02:03:04", PgType::Interval, -1, "1 day 02:03:04"),
            (
                "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
                PgType::Uuid,
                -1,
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            ),
            ("\\x00ff", PgType::Bytea, -1, "\\x00ff"),
            (
                "{\"b\":1,\"a\":[1,2]}",
                PgType::Jsonb,
                -1,
                "{\"a\": [1, 2], \"b\": 1}",
            ),
            ("ab", PgType::Bpchar, 4 + 4, "ab  "),
        ] {
            let v = from_text(input, ty, typmod).unwrap();
            assert_eq!(text(&v, ty, typmod), expect, "{input} as {ty}");
        }
    }

    #[test]
    fn bad_input_is_refused_with_sqlstate() {
        assert_eq!(
            from_text("abc", PgType::Int4, -1).unwrap_err().code,
            "22P02"
        );
        assert_eq!(
            from_text("99999999999", PgType::Int4, -1).unwrap_err().code,
            "22003"
        );
        assert_eq!(
            from_text("toolong", PgType::Varchar, 3 + 4)
                .unwrap_err()
                .code,
            "22001"
        );
        assert_eq!(
            from_text("123.4", PgType::Numeric, (3 << 16 | 1) + 4)
                .unwrap_err()
                .code,
            "22003"
        );
        assert_eq!(
            from_text("2024-13-01", PgType::Date, -1).unwrap_err().code,
            "22008"
        );
        assert_eq!(from_text("{", PgType::Json, -1).unwrap_err().code, "22P02");
    }

    #[test]
    fn binary_round_trips() {
        for (input, ty) in [
            ("true", PgType::Bool),
            ("-7", PgType::Int2),
            ("123456", PgType::Int4),
            ("-1234567890123", PgType::Int8),
            ("2.25", PgType::Float8),
            ("2024-02-03", PgType::Date),
            ("2024-02-03 04:05:06.123456", PgType::Timestamp),
            ("12:34:56", PgType::Time),
            ("3 days 04:00:00", PgType::Interval),
            ("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", PgType::Uuid),
            ("{\"a\": 1}", PgType::Jsonb),
        ] {
            let v = from_text(input, ty, -1).unwrap();
            let mut b = BytesMut::new();
            encode_binary(ValueRef::from(&v), ty, -1, &mut b).unwrap();
            let back = from_binary(&b, ty).unwrap();
            assert_eq!(back, v, "{input} as {ty}");
        }
    }

    #[test]
    fn numeric_binary_matches_postgres_layout() {
        let mut b = BytesMut::new();
        numeric_binary("12345.678", &mut b).unwrap();
        // ndigits 3, weight 1, sign 0, dscale 3, digits 1 2345 6780
        assert_eq!(
            &b[..],
            &[0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        assert_eq!(numeric_from_binary(&b).unwrap(), "12345.678");
        let mut b = BytesMut::new();
        numeric_binary("-0.05", &mut b).unwrap();
        assert_eq!(numeric_from_binary(&b).unwrap(), "-0.05");
        for special in ["NaN", "Infinity", "-Infinity"] {
            b.clear();
            numeric_binary(special, &mut b).unwrap();
            assert_eq!(numeric_from_binary(&b).unwrap(), special);
        }
    }
}
