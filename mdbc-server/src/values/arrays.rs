//! Arrays on the wire. mdbc keeps an array as a JSON array in SQLite — so that SQL can
//! unnest it with `json_each` and build it with `json_group_array` — and converts at the
//! edge: PostgreSQL's text form `{a,"b c",NULL}` (space-separated for `int2vector` and
//! `oidvector`), and its binary form (one dimension, lower bound 1).
//!
//! Only the catalogs and expressions (`array_agg`, `ARRAY[…]`) produce arrays; tables
//! cannot store them.

use crate::datetime::DateCtx;
use bytes::{BufMut, BytesMut};
use rusqlite::types::{Value, ValueRef};
use serde_json::Value as Json;
use sql_capture::PgType;

use super::error::ValueError;
use super::{binary, text};

type VResult<T> = std::result::Result<T, ValueError>;

fn invalid(ty: PgType, input: &str) -> ValueError {
    ValueError {
        code: "22P02",
        message: format!("malformed array literal: \"{input}\" ({})", ty.name()),
    }
}

fn is_vector(ty: PgType) -> bool {
    matches!(ty, PgType::Int2Vector | PgType::OidVector)
}

/// The stored JSON's elements; a value that is not a JSON array (written by hand) is
/// read as PostgreSQL's text form.
fn elements(stored: &str, ty: PgType) -> VResult<Vec<Json>> {
    match serde_json::from_str::<Json>(stored) {
        Ok(Json::Array(items)) => Ok(items),
        _ => match from_pg_text(stored, ty)? {
            Json::Array(items) => Ok(items),
            _ => Err(invalid(ty, stored)),
        },
    }
}

fn element_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Integer(*b as i64),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

fn value_ref(v: &Value) -> ValueRef<'_> {
    match v {
        Value::Null => ValueRef::Null,
        Value::Integer(i) => ValueRef::Integer(*i),
        Value::Real(f) => ValueRef::Real(*f),
        Value::Text(t) => ValueRef::Text(t.as_bytes()),
        Value::Blob(b) => ValueRef::Blob(b),
    }
}

/// Writes the stored array `stored` in PostgreSQL's text form.
pub fn encode_text(stored: &str, ty: PgType, out: &mut BytesMut) {
    let Some(elem) = ty.element() else { return };
    let items = match elements(stored, ty) {
        Ok(items) => items,
        Err(_) => {
            out.put_slice(stored.as_bytes());
            return;
        }
    };
    let vector = is_vector(ty);
    if vector {
        encode_items(&items, elem, true, out);
    } else {
        encode_items(&items, elem, false, out);
    }
}

/// One dimension's elements; a JSON array inside is the next dimension
/// (`{{1,2},{3,4}}`), as PostgreSQL writes a multi-dimensional array.
fn encode_items(items: &[Json], elem: PgType, vector: bool, out: &mut BytesMut) {
    if !vector {
        out.put_u8(b'{');
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.put_u8(if vector { b' ' } else { b',' });
        }
        if let (Json::Array(inner), false) = (item, vector) {
            encode_items(inner, elem, false, out);
            continue;
        }
        let v = element_value(item);
        if v == Value::Null {
            out.put_slice(b"NULL");
            continue;
        }
        let mut text = BytesMut::new();
        text::encode_text(value_ref(&v), elem, -1, &DateCtx::utc(), &mut text);
        let s = String::from_utf8_lossy(&text);
        let needs_quotes = s.is_empty()
            || s.eq_ignore_ascii_case("null")
            || s.chars()
                .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
        if needs_quotes && !vector {
            out.put_u8(b'"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.put_u8(b'\\');
                }
                let mut b = [0u8; 4];
                out.put_slice(c.encode_utf8(&mut b).as_bytes());
            }
            out.put_u8(b'"');
        } else {
            out.put_slice(s.as_bytes());
        }
    }
    if !vector {
        out.put_u8(b'}');
    }
}

/// Writes the stored array in PostgreSQL's binary form.
pub fn encode_binary(stored: &str, ty: PgType, out: &mut BytesMut) -> VResult<()> {
    let elem = ty.element().ok_or_else(|| invalid(ty, stored))?;
    let items = elements(stored, ty)?;
    let has_null = items.iter().any(Json::is_null);
    if items.is_empty() {
        out.put_i32(0);
        out.put_i32(0);
        out.put_u32(elem.oid());
        return Ok(());
    }
    out.put_i32(1);
    out.put_i32(has_null as i32);
    out.put_u32(elem.oid());
    out.put_i32(items.len() as i32);
    out.put_i32(if is_vector(ty) { 0 } else { 1 });
    for item in &items {
        let v = element_value(item);
        if v == Value::Null {
            out.put_i32(-1);
            continue;
        }
        let at = out.len();
        out.put_i32(0);
        binary::encode_binary(value_ref(&v), elem, -1, out)?;
        let len = (out.len() - at - 4) as i32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

fn json_element(v: Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Integer(i) => Json::from(i),
        Value::Real(f) => Json::from(f),
        Value::Text(t) => Json::String(t),
        Value::Blob(b) => Json::String(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// Parses PostgreSQL's text form of a one-dimensional array (or a space-separated
/// vector) into the stored JSON array.
pub fn from_pg_text(input: &str, ty: PgType) -> VResult<Json> {
    let elem = ty.element().ok_or_else(|| invalid(ty, input))?;
    let t = input.trim();
    let mut items = Vec::new();
    if is_vector(ty) {
        for part in t.split_whitespace() {
            items.push(json_element(text::from_text(
                part,
                elem,
                -1,
                &DateCtx::utc(),
            )?));
        }
        return Ok(Json::Array(items));
    }
    let inner = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| invalid(ty, input))?;
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let (text, quoted) = if first == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('\\') => s.push(chars.next().ok_or_else(|| invalid(ty, input))?),
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => return Err(invalid(ty, input)),
                }
            }
            (s, true)
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '}' || c == '"' {
                    return Err(invalid(ty, input));
                }
                s.push(c);
                chars.next();
            }
            (s.trim_end().to_string(), false)
        };
        if !quoted && text.eq_ignore_ascii_case("null") {
            items.push(Json::Null);
        } else {
            items.push(json_element(text::from_text(
                &text,
                elem,
                -1,
                &DateCtx::utc(),
            )?));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(_) => return Err(invalid(ty, input)),
        }
    }
    Ok(Json::Array(items))
}

/// Parses PostgreSQL's binary form of a one-dimensional array into the stored JSON.
pub fn from_binary(b: &[u8], ty: PgType) -> VResult<Json> {
    let bad = || ValueError {
        code: "22P03",
        message: format!("incorrect binary data format for type {}", ty.name()),
    };
    let elem = ty.element().ok_or_else(bad)?;
    let mut pos = 0usize;
    let mut take = |n: usize| -> VResult<&[u8]> {
        let s = b.get(pos..pos + n).ok_or_else(bad)?;
        pos += n;
        Ok(s)
    };
    let int = |s: &[u8]| i32::from_be_bytes([s[0], s[1], s[2], s[3]]);
    let ndim = int(take(4)?);
    let _has_null = take(4)?;
    let _elem_oid = take(4)?;
    if ndim == 0 {
        return Ok(Json::Array(Vec::new()));
    }
    if ndim != 1 {
        return Err(ValueError {
            code: "0A000",
            message: "multidimensional arrays are not supported by mdbc".into(),
        });
    }
    let n = int(take(4)?);
    let _lower = take(4)?;
    let mut items = Vec::new();
    for _ in 0..n.max(0) {
        let len = int(take(4)?);
        if len < 0 {
            items.push(Json::Null);
            continue;
        }
        let raw = take(len as usize)?;
        items.push(json_element(binary::from_binary(raw, elem)?));
    }
    Ok(Json::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(stored: &str, ty: PgType) -> String {
        let mut out = BytesMut::new();
        encode_text(stored, ty, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn text_form_quotes_what_postgres_quotes() {
        assert_eq!(text("[1,2,null]", PgType::Int4Array), "{1,2,NULL}");
        assert_eq!(
            text(r#"["a","b c","","null","x\"y"]"#, PgType::TextArray),
            r#"{a,"b c","","null","x\"y"}"#
        );
        assert_eq!(text("[true,false]", PgType::BoolArray), "{t,f}");
        assert_eq!(text("[1,2]", PgType::Int2Vector), "1 2");
        assert_eq!(text("[]", PgType::TextArray), "{}");
    }

    #[test]
    fn text_input_round_trips() {
        for (input, ty) in [
            (r#"{a,"b c",NULL,"x\"y"}"#, PgType::TextArray),
            ("{1,2,3}", PgType::Int8Array),
            ("{}", PgType::Int4Array),
            ("1 2 3", PgType::Int2Vector),
        ] {
            let json = from_pg_text(input, ty).unwrap().to_string();
            assert_eq!(text(&json, ty), input);
        }
        assert!(from_pg_text("{1,{2}}", PgType::Int4Array).is_err());
        assert!(from_pg_text("{1,x}", PgType::Int4Array).is_err());
        assert!(from_pg_text("1,2", PgType::Int4Array).is_err());
    }

    #[test]
    fn binary_round_trips() {
        for (stored, ty) in [
            ("[1,null,3]", PgType::Int4Array),
            (r#"["a","b"]"#, PgType::TextArray),
            ("[]", PgType::Int8Array),
        ] {
            let mut out = BytesMut::new();
            encode_binary(stored, ty, &mut out).unwrap();
            assert_eq!(from_binary(&out, ty).unwrap().to_string(), stored);
        }
        assert!(from_binary(&[0, 0], PgType::Int4Array).is_err());
    }
}
