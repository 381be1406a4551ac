//! Values: PostgreSQL input syntax to SQLite storage, and SQLite storage to PostgreSQL's text
//! and binary wire formats.
//!
//! Storage rules (one per type, so comparisons and sorting in SQLite stay correct):
//! booleans as 0/1; integers and floats natively; numeric as integer or real (printed with
//! the declared scale); date/time/timestamp as canonical ISO text (timestamptz in UTC with
//! `+00`), which sorts chronologically; uuid lower-case; json as given, jsonb normalised;
//! bytea as a blob.

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use rusqlite::types::{Value, ValueRef};
use sql_capture::PgType;
use std::fmt::Write as _;

/// A value PostgreSQL would refuse, with its SQLSTATE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    /// SQLSTATE (22P02, 22003, 22001, 22008, 22023).
    pub code: &'static str,
    /// PostgreSQL-style message.
    pub message: String,
}

fn invalid(ty: PgType, input: &str) -> ValueError {
    ValueError {
        code: "22P02",
        message: format!("invalid input syntax for type {}: \"{}\"", ty.name(), input),
    }
}

fn out_of_range(ty: PgType, input: &str) -> ValueError {
    ValueError {
        code: "22003",
        message: format!("value \"{input}\" is out of range for type {}", ty.name()),
    }
}

/// Every array and vector type (arrays.rs handles them before the scalar matches below).
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
            | PgType::Int2Vector
            | PgType::OidVector
    };
}

type VResult<T> = std::result::Result<T, ValueError>;

const PG_EPOCH_DAYS_FROM_CE: i32 = 730_120; // 2000-01-01 as days from 0001-01-01 (CE day 1)

fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

/// Parses PostgreSQL input text for a column of type `ty` into what SQLite stores.
pub fn from_text(input: &str, ty: PgType, typmod: i32) -> VResult<Value> {
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
        PgType::Float4 | PgType::Float8 => {
            Value::Real(parse_float(t).ok_or_else(|| invalid(ty, input))?)
        }
        PgType::Numeric => numeric_from_text(t, typmod).map_err(|e| {
            if e.code == "22P02" {
                invalid(ty, input)
            } else {
                e
            }
        })?,
        PgType::Text | PgType::Name | PgType::Char => Value::Text(input.to_string()),
        array_types!() => {
            // Already an array as mdbc keeps them (the result of array_agg, ARRAY[…]).
            if t.starts_with('[') {
                if let Ok(j @ serde_json::Value::Array(_)) = serde_json::from_str(t) {
                    return Ok(Value::Text(j.to_string()));
                }
            }
            Value::Text(crate::arrays::from_pg_text(input, ty)?.to_string())
        }
        PgType::Varchar | PgType::Bpchar => Value::Text(fit_length(input, ty, typmod)?),
        PgType::Bytea => Value::Blob(bytea_from_text(input).ok_or_else(|| invalid(ty, input))?),
        PgType::Date => Value::Text(format_date(
            parse_date(t).ok_or_else(|| invalid(ty, input))?,
        )),
        PgType::Time => Value::Text(format_time(
            parse_time(t).ok_or_else(|| invalid(ty, input))?,
        )),
        PgType::Timestamp => {
            let (dt, _) = parse_timestamp(t).ok_or_else(|| invalid(ty, input))?;
            Value::Text(format_timestamp(dt))
        }
        PgType::Timestamptz => {
            let (dt, offset) = parse_timestamp(t).ok_or_else(|| invalid(ty, input))?;
            let utc = dt - chrono::Duration::seconds(offset.unwrap_or(0) as i64);
            Value::Text(format_timestamptz(utc))
        }
        PgType::Interval => {
            let iv = parse_interval(t).ok_or_else(|| invalid(ty, input))?;
            Value::Text(format_interval(iv))
        }
        PgType::Uuid => Value::Text(
            uuid::Uuid::parse_str(t)
                .map_err(|_| invalid(ty, input))?
                .hyphenated()
                .to_string(),
        ),
        PgType::Json => {
            serde_json::from_str::<serde_json::Value>(input).map_err(|_| invalid(ty, input))?;
            Value::Text(input.to_string())
        }
        PgType::Jsonb => {
            let v: serde_json::Value =
                serde_json::from_str(input).map_err(|_| invalid(ty, input))?;
            Value::Text(jsonb_text(&v))
        }
    })
}

/// Converts any stored SQLite value to type `ty`, as `pg_coerce` (casts and writes) does.
pub fn coerce(v: ValueRef<'_>, ty: PgType, typmod: i32) -> VResult<Value> {
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
            PgType::Float4 | PgType::Float8 => Ok(Value::Real(i as f64)),
            PgType::Numeric => numeric_from_text(&i.to_string(), typmod),
            PgType::Bytea => Ok(Value::Blob(i.to_string().into_bytes())),
            _ => from_text(&i.to_string(), ty, typmod),
        },
        ValueRef::Real(f) => match ty {
            PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Oid => {
                let r = f.round_ties_even();
                if !r.is_finite() || r < i64::MIN as f64 || r > i64::MAX as f64 {
                    return Err(out_of_range(ty, &f.to_string()));
                }
                Ok(Value::Integer(check_int_range(
                    r as i64,
                    ty,
                    &f.to_string(),
                )?))
            }
            PgType::Float4 | PgType::Float8 => Ok(Value::Real(f)),
            PgType::Numeric => numeric_from_text(&format_float(f), typmod),
            PgType::Bool => Err(ValueError {
                code: "42846",
                message: "cannot cast type double precision to boolean".into(),
            }),
            _ => from_text(&format_float(f), ty, typmod),
        },
        ValueRef::Blob(b) => match ty {
            PgType::Bytea => Ok(Value::Blob(b.to_vec())),
            _ => match std::str::from_utf8(b) {
                Ok(s) => from_text(s, ty, typmod),
                Err(_) => Err(invalid(ty, "<binary>")),
            },
        },
    }
}

fn check_int_range(v: i64, ty: PgType, input: &str) -> VResult<i64> {
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

fn parse_bool(t: &str) -> Option<bool> {
    let l = t.to_ascii_lowercase();
    match l.as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_float(t: &str) -> Option<f64> {
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" | "+infinity" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => t.parse::<f64>().ok().filter(|_| !t.is_empty()),
    }
}

/// Parses a decimal and applies a `numeric(p,s)` typmod: rounds to the scale and refuses
/// values with more integer digits than `p - s` allows.
fn numeric_from_text(t: &str, typmod: i32) -> VResult<Value> {
    let ok_shape = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && t.chars().any(|c| c.is_ascii_digit());
    if !ok_shape {
        if t.eq_ignore_ascii_case("nan") {
            // SQLite stores a NaN real as NULL: refuse it rather than lose it.
            return Err(ValueError {
                code: "0A000",
                message: "NaN is not supported in numeric values by mdbc".into(),
            });
        }
        return Err(ValueError {
            code: "22P02",
            message: String::new(),
        });
    }
    let (precision, scale) = if typmod >= 4 {
        let m = typmod - 4;
        (Some((m >> 16) as u32), Some((m & 0xffff) as u32))
    } else {
        (None, None)
    };
    if let Ok(i) = t.parse::<i64>() {
        if let (Some(p), Some(s)) = (precision, scale) {
            let digits = i
                .unsigned_abs()
                .checked_ilog10()
                .map(|d| d + 1)
                .unwrap_or(0);
            if digits > p.saturating_sub(s) {
                return Err(numeric_overflow(p, s));
            }
        }
        return Ok(Value::Integer(i));
    }
    let f: f64 = t.parse().map_err(|_| ValueError {
        code: "22P02",
        message: String::new(),
    })?;
    let f = match scale {
        Some(s) => {
            let m = 10f64.powi(s as i32);
            (f * m).round() / m
        }
        None => f,
    };
    if let (Some(p), Some(s)) = (precision, scale) {
        let int_digits = f.abs().trunc();
        let limit = 10f64.powi(p.saturating_sub(s) as i32);
        if int_digits >= limit {
            return Err(numeric_overflow(p, s));
        }
    }
    if scale == Some(0) && f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Ok(Value::Integer(f as i64));
    }
    Ok(Value::Real(f))
}

fn numeric_overflow(p: u32, s: u32) -> ValueError {
    ValueError {
        code: "22003",
        message: format!(
            "numeric field overflow: a field with precision {p}, scale {s} must round to an absolute value less than 10^{}",
            p.saturating_sub(s)
        ),
    }
}

fn fit_length(input: &str, ty: PgType, typmod: i32) -> VResult<String> {
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
fn bpchar_padded(b: &[u8], typmod: i32, out: &mut BytesMut) {
    out.put_slice(b);
    if typmod >= 5 {
        let have = String::from_utf8_lossy(b).chars().count();
        let want = (typmod - 4) as usize;
        for _ in have..want {
            out.put_u8(b' ');
        }
    }
}

fn bytea_from_text(s: &str) -> Option<Vec<u8>> {
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

fn parse_date(t: &str) -> Option<NaiveDate> {
    let head = t.split([' ', 'T']).next()?;
    NaiveDate::parse_from_str(head, "%Y-%m-%d").ok()
}

fn parse_time(t: &str) -> Option<NaiveTime> {
    let t = t.trim_end_matches(['Z', 'z']);
    NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
        .ok()
}

/// Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.f]]][Z|±HH[:MM]]`; returns the local time and the
/// offset in seconds east of UTC when one was given.
fn parse_timestamp(t: &str) -> Option<(NaiveDateTime, Option<i32>)> {
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "epoch" => return Some((DateTime::UNIX_EPOCH.naive_utc(), Some(0))),
        "now" => return Some((chrono::Utc::now().naive_utc(), Some(0))),
        _ => {}
    }
    if t.len() < 10 {
        return None;
    }
    let date = NaiveDate::parse_from_str(&t[..10], "%Y-%m-%d").ok()?;
    let rest = t[10..].trim_start_matches([' ', 'T', 't']);
    if rest.is_empty() {
        return Some((date.and_hms_opt(0, 0, 0)?, None));
    }
    // Split off a zone suffix.
    let (time_part, offset) = split_zone(rest)?;
    let time = parse_time(time_part.trim())?;
    Some((date.and_time(time), offset))
}

fn split_zone(s: &str) -> Option<(&str, Option<i32>)> {
    let s = s.trim();
    if let Some(stripped) = s.strip_suffix(['Z', 'z']) {
        return Some((stripped, Some(0)));
    }
    for suffix in [" UTC", " utc", " GMT", " gmt"] {
        if let Some(stripped) = s.strip_suffix(suffix) {
            return Some((stripped, Some(0)));
        }
    }
    // An offset starts at the last '+' or '-' after the time's digits.
    if let Some(pos) = s.rfind(['+', '-']) {
        if pos >= 5 {
            let (time, zone) = s.split_at(pos);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let z = &zone[1..];
            let (h, m) = match z.split_once(':') {
                Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
                None if z.len() == 4 => (z[..2].parse().ok()?, z[2..].parse().ok()?),
                None => (z.parse().ok()?, 0),
            };
            if h > 15 || m > 59 {
                return None;
            }
            return Some((time, Some(sign * (h * 3600 + m * 60))));
        }
    }
    Some((s, None))
}

fn format_date(d: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

fn push_fraction(s: &mut String, nanos: u32) {
    let micros = nanos / 1000;
    if micros > 0 {
        let mut f = format!("{micros:06}");
        while f.ends_with('0') {
            f.pop();
        }
        s.push('.');
        s.push_str(&f);
    }
}

fn format_time(t: NaiveTime) -> String {
    let mut s = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    push_fraction(&mut s, t.nanosecond());
    s
}

fn format_timestamp(dt: NaiveDateTime) -> String {
    format!("{} {}", format_date(dt.date()), format_time(dt.time()))
}

/// A UTC instant as mdbc stores `timestamptz`.
pub fn format_timestamptz(utc: NaiveDateTime) -> String {
    format!("{}+00", format_timestamp(utc))
}

/// An interval as PostgreSQL keeps it: months, days and microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interval {
    months: i32,
    days: i32,
    micros: i64,
}

fn parse_interval(t: &str) -> Option<Interval> {
    let mut iv = Interval::default();
    let tokens: Vec<&str> = t.split_whitespace().collect();
    let mut i = 0;
    let mut any = false;
    while i < tokens.len() {
        let tok = tokens[i];
        if tok.contains(':') {
            let neg = tok.starts_with('-');
            let parts: Vec<&str> = tok.trim_start_matches(['-', '+']).split(':').collect();
            let h: i64 = parts.first()?.parse().ok()?;
            let m: i64 = parts.get(1).map(|p| p.parse().ok()).unwrap_or(Some(0))?;
            let sec: f64 = parts.get(2).map(|p| p.parse().ok()).unwrap_or(Some(0.0))?;
            let micros = h * 3_600_000_000 + m * 60_000_000 + (sec * 1e6).round() as i64;
            iv.micros += if neg { -micros } else { micros };
            i += 1;
            any = true;
            continue;
        }
        let n: f64 = tok.parse().ok()?;
        let unit = tokens.get(i + 1)?.to_ascii_lowercase();
        let unit = unit.trim_end_matches(',');
        match unit.trim_end_matches('s') {
            "year" | "yr" | "y" => iv.months += (n * 12.0) as i32,
            "mon" | "month" => iv.months += n as i32,
            "week" | "w" => iv.days += (n * 7.0) as i32,
            "day" | "d" => iv.days += n as i32,
            "hour" | "hr" | "h" => iv.micros += (n * 3.6e9) as i64,
            "minute" | "min" | "m" => iv.micros += (n * 6e7) as i64,
            "second" | "sec" => iv.micros += (n * 1e6) as i64,
            "millisecond" | "ms" | "msec" => iv.micros += (n * 1e3) as i64,
            "microsecond" => iv.micros += n as i64,
            _ => return None,
        }
        any = true;
        i += 2;
    }
    any.then_some(iv)
}

fn format_interval(iv: Interval) -> String {
    let mut parts = Vec::new();
    let years = iv.months / 12;
    let mons = iv.months % 12;
    let plural =
        |n: i64, one: &str, many: &str| format!("{n} {}", if n.abs() == 1 { one } else { many });
    if years != 0 {
        parts.push(plural(years as i64, "year", "years"));
    }
    if mons != 0 {
        parts.push(plural(mons as i64, "mon", "mons"));
    }
    if iv.days != 0 {
        parts.push(plural(iv.days as i64, "day", "days"));
    }
    if iv.micros != 0 || parts.is_empty() {
        let neg = iv.micros < 0;
        let m = iv.micros.unsigned_abs();
        let secs = m / 1_000_000;
        let mut s = format!(
            "{}{:02}:{:02}:{:02}",
            if neg { "-" } else { "" },
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        );
        push_fraction(&mut s, ((m % 1_000_000) * 1000) as u32);
        parts.push(s);
    }
    parts.join(" ")
}

/// jsonb's text form: keys sorted (serde_json's map is ordered), `": "` and `", "`.
fn jsonb_text(v: &serde_json::Value) -> String {
    let mut s = String::new();
    write_jsonb(v, &mut s);
    s
}

fn write_jsonb(v: &serde_json::Value, s: &mut String) {
    match v {
        serde_json::Value::Array(a) => {
            s.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                write_jsonb(x, s);
            }
            s.push(']');
        }
        serde_json::Value::Object(o) => {
            s.push('{');
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str(&serde_json::Value::String(k.clone()).to_string());
                s.push_str(": ");
                write_jsonb(&o[k], s);
            }
            s.push('}');
        }
        other => s.push_str(&other.to_string()),
    }
}

/// PostgreSQL's float output: shortest round-trip digits.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if f != 0.0 && (f.abs() >= 1e15 || f.abs() < 1e-4) {
        let s = format!("{f:e}");
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
    } else {
        format!("{f}")
    }
}

fn format_numeric(v: ValueRef<'_>, typmod: i32) -> Option<String> {
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

/// Appends a value in PostgreSQL's text format.
pub fn encode_text(v: ValueRef<'_>, ty: PgType, typmod: i32, out: &mut BytesMut) {
    match (ty, v) {
        (_, ValueRef::Null) => {}
        (PgType::Bpchar, ValueRef::Text(b)) => bpchar_padded(b, typmod, out),
        (t, ValueRef::Text(b)) if t.element().is_some() => {
            crate::arrays::encode_text(&String::from_utf8_lossy(b), t, out)
        }
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
        (_, ValueRef::Real(f)) => out.put_slice(format_float(f).as_bytes()),
        (PgType::Bytea, ValueRef::Blob(b) | ValueRef::Text(b)) => {
            out.put_slice(b"\\x");
            for byte in b {
                let _ = write!(BytesWriter(out), "{byte:02x}");
            }
        }
        (_, ValueRef::Text(b) | ValueRef::Blob(b)) => out.put_slice(b),
    }
}

struct BytesWriter<'a>(&'a mut BytesMut);

impl std::fmt::Write for BytesWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}

fn as_text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format_float(f),
        ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn as_i64(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(f) => Some(f.round_ties_even() as i64),
        ValueRef::Text(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn as_f64(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) => Some(f),
        ValueRef::Text(b) => parse_float(std::str::from_utf8(b).ok()?.trim()),
        _ => None,
    }
}

/// Appends a value in PostgreSQL's binary format. Values that cannot be shown in the binary
/// form of `ty` (a stored value of another class) yield an error naming the column type.
pub fn encode_binary(v: ValueRef<'_>, ty: PgType, typmod: i32, out: &mut BytesMut) -> VResult<()> {
    let bad = || ValueError {
        code: "22P03",
        message: format!("stored value cannot be sent as binary {}", ty.name()),
    };
    if ty.element().is_some() {
        return crate::arrays::encode_binary(&as_text(v), ty, out);
    }
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
            out.put_slice(as_text(v).as_bytes());
        }
        PgType::Date => {
            let d = parse_date(&as_text(v)).ok_or_else(bad)?;
            out.put_i32(d.num_days_from_ce() - PG_EPOCH_DAYS_FROM_CE);
        }
        PgType::Time => {
            let t = parse_time(&as_text(v)).ok_or_else(bad)?;
            out.put_i64(
                t.num_seconds_from_midnight() as i64 * 1_000_000 + (t.nanosecond() / 1000) as i64,
            );
        }
        PgType::Timestamp | PgType::Timestamptz => {
            let (dt, off) = parse_timestamp(&as_text(v)).ok_or_else(bad)?;
            let utc = dt - chrono::Duration::seconds(off.unwrap_or(0) as i64);
            let micros = (utc - pg_epoch()).num_microseconds().ok_or_else(bad)?;
            out.put_i64(micros);
        }
        PgType::Interval => {
            let iv = parse_interval(&as_text(v)).ok_or_else(bad)?;
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
fn numeric_binary(text: &str, out: &mut BytesMut) -> Option<()> {
    if text == "NaN" {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(0xC000);
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

fn numeric_from_binary(b: &[u8]) -> Option<String> {
    let rd16 =
        |i: usize| -> Option<i16> { Some(i16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?)) };
    let ndigits = rd16(0)? as usize;
    let weight = rd16(2)? as i32;
    let sign = rd16(4)? as u16;
    let dscale = rd16(6)? as usize;
    if sign == 0xC000 {
        return Some("NaN".into());
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
    if ty.element().is_some() {
        return Ok(Value::Text(crate::arrays::from_binary(b, ty)?.to_string()));
    }
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
            from_text(std::str::from_utf8(rest).map_err(|_| bad())?, ty, -1)?
        }
        PgType::Date => {
            let days = i32::from_be_bytes(arr(4)?.try_into().map_err(|_| bad())?);
            let d = NaiveDate::from_num_days_from_ce_opt(days + PG_EPOCH_DAYS_FROM_CE)
                .ok_or_else(bad)?;
            Value::Text(format_date(d))
        }
        PgType::Time => {
            let us = i64::from_be_bytes(arr(8)?.try_into().map_err(|_| bad())?);
            let t = NaiveTime::from_num_seconds_from_midnight_opt(
                (us / 1_000_000) as u32,
                ((us % 1_000_000) * 1000) as u32,
            )
            .ok_or_else(bad)?;
            Value::Text(format_time(t))
        }
        PgType::Timestamp | PgType::Timestamptz => {
            let us = i64::from_be_bytes(arr(8)?.try_into().map_err(|_| bad())?);
            let dt = pg_epoch() + chrono::Duration::microseconds(us);
            Value::Text(if ty == PgType::Timestamp {
                format_timestamp(dt)
            } else {
                format_timestamptz(dt)
            })
        }
        PgType::Interval => {
            let b = arr(16)?;
            let iv = Interval {
                micros: i64::from_be_bytes(b[0..8].try_into().map_err(|_| bad())?),
                days: i32::from_be_bytes(b[8..12].try_into().map_err(|_| bad())?),
                months: i32::from_be_bytes(b[12..16].try_into().map_err(|_| bad())?),
            };
            Value::Text(format_interval(iv))
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

/// The current time as mdbc stores `timestamptz`.
pub fn now_text() -> String {
    format_timestamptz(chrono::Utc::now().naive_utc())
}

/// Today's date (UTC) as stored.
pub fn today_text() -> String {
    format_date(chrono::Utc::now().date_naive())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &Value, ty: PgType, typmod: i32) -> String {
        let mut b = BytesMut::new();
        encode_text(ValueRef::from(v), ty, typmod, &mut b);
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
            "22P02"
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
    }
}
