//! `pg_json(op, …)`: one SQL function for every json/jsonb operation translation emits
//! (sql-capture's json.rs), so adding an operation needs no new registration. Arguments
//! arrive as SQLite values: json/jsonb as text, text[] as mdbc's array storage (a JSON
//! array) or PostgreSQL's array literal when the client wrote `'{a,b}'`.

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use super::error::JsonError;
use super::ops;
use super::parse::{self, Kind, Node};
use super::value::{quote_into, Jsonb};

type Out = Result<Value, JsonError>;

/// Registers `pg_json` on a connection.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    super::array_agg::register(conn)?;
    conn.create_collation(sql_capture::JSONB_COLLATION, super::order::compare_text)?;
    conn.create_scalar_function("pg_json", -1, det, |ctx| {
        let op: String = ctx.get(0)?;
        dispatch(&op, ctx).map_err(|e| {
            rusqlite::Error::UserFunctionError(format!("[{}] {}", e.code, e.message).into())
        })
    })
}

fn text_arg(ctx: &Context<'_>, i: usize) -> Result<Option<String>, JsonError> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(f) => Some(crate::values::format_float(f)),
    })
}

fn int_arg(ctx: &Context<'_>, i: usize) -> Result<Option<i64>, JsonError> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n),
        ValueRef::Real(f) => Some(f as i64),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(
            std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| JsonError::syntax("invalid input syntax for type integer"))?,
        ),
    })
}

fn bool_arg(ctx: &Context<'_>, i: usize, default: bool) -> bool {
    if i >= ctx.len() {
        return default;
    }
    match ctx.get_raw(i) {
        ValueRef::Integer(n) => n != 0,
        ValueRef::Text(t) => matches!(t, b"t" | b"true" | b"1" | b"on" | b"yes"),
        _ => default,
    }
}

/// A text[] argument: mdbc's JSON-array storage or PostgreSQL's `{a,b}` literal.
fn text_array(s: &str) -> Result<Vec<Option<String>>, JsonError> {
    let bad = || JsonError::syntax(&format!("malformed array literal: \"{s}\""));
    let t = s.trim();
    if t.starts_with('[') {
        let n = parse::parse(t).map_err(|_| bad())?;
        let Kind::Array(items) = n.kind else {
            return Err(bad());
        };
        return items
            .into_iter()
            .map(|x| match x.kind {
                Kind::Null => Ok(None),
                Kind::String(s) => Ok(Some(s)),
                Kind::Number(n) => Ok(Some(n)),
                Kind::Bool(b) => Ok(Some(if b { "true" } else { "false" }.into())),
                _ => Err(bad()),
            })
            .collect();
    }
    let json = crate::values::array_literal_as_json(t).map_err(|_| bad())?;
    text_array(&json)
}

fn path_arg(ctx: &Context<'_>, i: usize) -> Result<Option<Vec<String>>, JsonError> {
    let Some(s) = text_arg(ctx, i)? else {
        return Ok(None);
    };
    // A NULL step finds nothing (PostgreSQL returns NULL for the whole path).
    Ok(text_array(&s)?.into_iter().collect::<Option<Vec<_>>>())
}

/// A path that may not hold NULL steps (jsonb_set, jsonb_insert, `#-`): PostgreSQL's
/// 22004 naming the step.
fn strict_path_arg(ctx: &Context<'_>, i: usize) -> Result<Option<Vec<String>>, JsonError> {
    let Some(s) = text_arg(ctx, i)? else {
        return Ok(None);
    };
    text_array(&s)?
        .into_iter()
        .enumerate()
        .map(|(n, step)| {
            step.ok_or_else(|| {
                JsonError::new(
                    "22004",
                    format!("path element at position {} is null", n + 1),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn jsonb_arg(ctx: &Context<'_>, i: usize) -> Result<Option<Jsonb>, JsonError> {
    text_arg(ctx, i)?.map(|t| Jsonb::parse(&t)).transpose()
}

fn text(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::Text)
}

fn boolean(b: bool) -> Value {
    Value::Integer(i64::from(b))
}

/// A json (not jsonb) value found inside another: its own text from the input.
fn raw<'a>(input: &'a str, n: &Node) -> &'a str {
    &input[n.span.0..n.span.1]
}

/// json's `->`/`#>` step: a key in an object (the last of duplicates, as PostgreSQL), an
/// index in an array.
fn json_step<'n>(n: &'n Node, step: &str, index: Option<i64>) -> Option<&'n Node> {
    match &n.kind {
        Kind::Object(m) if index.is_none() => {
            m.iter().rev().find(|(k, _)| k == step).map(|(_, v)| v)
        }
        Kind::Array(a) => {
            let i = index.or_else(|| step.trim().parse().ok())?;
            super::value::resolve_index(i, a.len()).and_then(|i| a.get(i))
        }
        _ => None,
    }
}

/// The text `->>` gives for a json value: a string's contents, NULL for null, else the
/// value's own text.
fn json_text(input: &str, n: &Node) -> Option<String> {
    match &n.kind {
        Kind::Null => None,
        Kind::String(s) => Some(s.clone()),
        _ => Some(raw(input, n).to_string()),
    }
}

fn dispatch(op: &str, ctx: &Context<'_>) -> Out {
    match op {
        // (json, key or index, 'k'|'i', is_jsonb, as_text)
        "get" => {
            let (Some(j), Some(step)) = (text_arg(ctx, 1)?, text_arg(ctx, 2)?) else {
                return Ok(Value::Null);
            };
            let index = if text_arg(ctx, 3)?.as_deref() == Some("i") {
                int_arg(ctx, 2)?
            } else {
                None
            };
            let (jsonb, as_text) = (bool_arg(ctx, 4, true), bool_arg(ctx, 5, false));
            if jsonb {
                let v = Jsonb::parse(&j)?;
                let found = match index {
                    Some(i) => v.element(i),
                    None => v.member(&step),
                };
                return Ok(text(found.and_then(|f| {
                    if as_text {
                        f.as_text()
                    } else {
                        Some(f.text())
                    }
                })));
            }
            let n = parse::parse(&j)?;
            let found = match index {
                Some(i) => json_step(&n, "", Some(i)).filter(|_| matches!(n.kind, Kind::Array(_))),
                None => match &n.kind {
                    Kind::Object(_) => json_step(&n, &step, None),
                    _ => None,
                },
            };
            Ok(text(found.and_then(|f| {
                if as_text {
                    json_text(&j, f)
                } else {
                    Some(raw(&j, f).to_string())
                }
            })))
        }
        // (json, path, is_jsonb, as_text)
        "path" => {
            let (Some(j), Some(path)) = (text_arg(ctx, 1)?, path_arg(ctx, 2)?) else {
                return Ok(Value::Null);
            };
            let (jsonb, as_text) = (bool_arg(ctx, 3, true), bool_arg(ctx, 4, false));
            if jsonb {
                let v = Jsonb::parse(&j)?;
                let found = ops::get_path(&v, &path);
                return Ok(text(found.and_then(|f| {
                    if as_text {
                        f.as_text()
                    } else {
                        Some(f.text())
                    }
                })));
            }
            let mut n = &parse::parse(&j)?;
            for step in &path {
                match json_step(n, step, None) {
                    Some(next) => n = next,
                    None => return Ok(Value::Null),
                }
            }
            Ok(text(if as_text {
                json_text(&j, n)
            } else {
                Some(raw(&j, n).to_string())
            }))
        }
        "contains" | "contained" => {
            let (Some(a), Some(b)) = (jsonb_arg(ctx, 1)?, jsonb_arg(ctx, 2)?) else {
                return Ok(Value::Null);
            };
            Ok(boolean(if op == "contains" {
                a.contains(&b)
            } else {
                b.contains(&a)
            }))
        }
        "exists" => {
            let (Some(a), Some(k)) = (jsonb_arg(ctx, 1)?, text_arg(ctx, 2)?) else {
                return Ok(Value::Null);
            };
            Ok(boolean(a.has_key(&k)))
        }
        "exists_any" | "exists_all" => {
            let (Some(a), Some(keys)) = (jsonb_arg(ctx, 1)?, text_arg(ctx, 2)?) else {
                return Ok(Value::Null);
            };
            let keys: Vec<String> = text_array(&keys)?.into_iter().flatten().collect();
            Ok(boolean(if op == "exists_any" {
                keys.iter().any(|k| a.has_key(k))
            } else {
                keys.iter().all(|k| a.has_key(k))
            }))
        }
        // (jsonb, key | index | keys, 'k' | 'i' | 'a')
        "delete" => {
            let (Some(a), Some(what)) = (jsonb_arg(ctx, 1)?, text_arg(ctx, 2)?) else {
                return Ok(Value::Null);
            };
            let out = match text_arg(ctx, 3)?.as_deref() {
                Some("i") => ops::delete_index(&a, int_arg(ctx, 2)?.unwrap_or_default())?,
                Some("a") => {
                    let keys: Vec<String> = text_array(&what)?.into_iter().flatten().collect();
                    ops::delete_keys(&a, &keys)?
                }
                _ => ops::delete_key(&a, &what)?,
            };
            Ok(Value::Text(out.text()))
        }
        "delete_path" => {
            let (Some(a), Some(path)) = (jsonb_arg(ctx, 1)?, strict_path_arg(ctx, 2)?) else {
                return Ok(Value::Null);
            };
            Ok(Value::Text(ops::delete_path(&a, &path)?.text()))
        }
        "set" | "insert" => {
            let (Some(a), Some(path), Some(new)) = (
                jsonb_arg(ctx, 1)?,
                strict_path_arg(ctx, 2)?,
                jsonb_arg(ctx, 3)?,
            ) else {
                return Ok(Value::Null);
            };
            let flag = bool_arg(ctx, 4, op == "set");
            let out = if op == "set" {
                ops::set_path(&a, &path, new, flag, None)?
            } else {
                ops::set_path(&a, &path, new, false, Some(flag))?
            };
            Ok(Value::Text(out.text()))
        }
        // (target, new value, 'i'|'t' per subscript, subscripts…): subscript assignment.
        "assign" => {
            let target = jsonb_arg(ctx, 1)?;
            let new = jsonb_arg(ctx, 2)?.unwrap_or(Jsonb::Null);
            let kinds = text_arg(ctx, 3)?.unwrap_or_default();
            let mut path = Vec::new();
            for (n, kind) in kinds.chars().enumerate() {
                let Some(step) = text_arg(ctx, 4 + n)? else {
                    return Err(JsonError::new(
                        "22004",
                        "jsonb subscript in assignment must not be null",
                    ));
                };
                path.push((step, kind == 'i'));
            }
            Ok(Value::Text(ops::assign_path(target, &path, new)?.text()))
        }
        "concat" => {
            let (Some(a), Some(b)) = (jsonb_arg(ctx, 1)?, jsonb_arg(ctx, 2)?) else {
                return Ok(Value::Null);
            };
            Ok(Value::Text(ops::concat(a, b).text()))
        }
        // json_object_agg's layout: `{ "k" : v, … }` (values as SQLite built them).
        "object_agg_layout" => {
            let Some(j) = text_arg(ctx, 1)? else {
                return Ok(Value::Null);
            };
            let n = parse::parse(&j)?;
            let Kind::Object(m) = &n.kind else {
                return Ok(Value::Text(j));
            };
            let mut out = String::from("{ ");
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                quote_into(k, &mut out);
                out.push_str(" : ");
                out.push_str(raw(&j, v));
            }
            out.push_str(" }");
            Ok(Value::Text(out))
        }
        // Arrays are JSON arrays in SQLite (values/arrays.rs): `||` between arrays (or an
        // array and a one-element array holding the element), by PostgreSQL's rules for
        // dimensions.
        "array_cat" => {
            let (Some(a), Some(b)) = (text_arg(ctx, 1)?, text_arg(ctx, 2)?) else {
                return Ok(match (text_arg(ctx, 1)?, text_arg(ctx, 2)?) {
                    (Some(x), None) | (None, Some(x)) => Value::Text(x),
                    _ => Value::Null,
                });
            };
            let (na, nb) = (parse::parse(&a)?, parse::parse(&b)?);
            let (Kind::Array(ia), Kind::Array(ib)) = (&na.kind, &nb.kind) else {
                return Err(JsonError::new("22P02", "malformed array"));
            };
            let items: Vec<&str> = if ia.is_empty() {
                ib.iter().map(|x| raw(&b, x)).collect()
            } else if ib.is_empty() {
                ia.iter().map(|x| raw(&a, x)).collect()
            } else {
                let (da, db) = (depth(&na), depth(&nb));
                if da == db {
                    ia.iter()
                        .map(|x| raw(&a, x))
                        .chain(ib.iter().map(|x| raw(&b, x)))
                        .collect()
                } else if da == db + 1 {
                    ia.iter()
                        .map(|x| raw(&a, x))
                        .chain(std::iter::once(b.trim()))
                        .collect()
                } else if db == da + 1 {
                    std::iter::once(a.trim())
                        .chain(ib.iter().map(|x| raw(&b, x)))
                        .collect()
                } else {
                    return Err(JsonError::new(
                        "2202E",
                        "cannot concatenate incompatible arrays",
                    ));
                }
            };
            Ok(Value::Text(format!("[{}]", items.join(","))))
        }
        // array_length / array_upper (a, dimension): NULL for a dimension the array lacks.
        "array_dim_length" => {
            let (Some(a), Some(dim)) = (text_arg(ctx, 1)?, int_arg(ctx, 2)?) else {
                return Ok(Value::Null);
            };
            let mut n = parse::parse(&a)?;
            for _ in 1..dim.max(1) {
                match n.kind {
                    Kind::Array(mut items) if !items.is_empty() => n = items.swap_remove(0),
                    _ => return Ok(Value::Null),
                }
            }
            Ok(match n.kind {
                Kind::Array(items) if dim >= 1 && !items.is_empty() => {
                    Value::Integer(items.len() as i64)
                }
                _ => Value::Null,
            })
        }
        "strip_nulls" => Ok(text(
            jsonb_arg(ctx, 1)?.map(|v| ops::strip_nulls(&v).text()),
        )),
        "pretty" => Ok(text(jsonb_arg(ctx, 1)?.map(|v| v.pretty()))),
        "jsonb" => Ok(text(jsonb_arg(ctx, 1)?.map(|v| v.text()))),
        // (json, is_jsonb)
        "typeof" => {
            let Some(j) = text_arg(ctx, 1)? else {
                return Ok(Value::Null);
            };
            Ok(Value::Text(
                Jsonb::from_node(parse::parse(&j)?)
                    .map(|v| v.type_name())
                    .or_else(|_| kind_name(&parse::parse(&j)?.kind))?
                    .to_string(),
            ))
        }
        "array_length" => {
            let Some(j) = text_arg(ctx, 1)? else {
                return Ok(Value::Null);
            };
            match parse::parse(&j)?.kind {
                Kind::Array(a) => Ok(Value::Integer(a.len() as i64)),
                Kind::Object(_) => Err(JsonError::new(
                    "22023",
                    "cannot get array length of a non-array",
                )),
                _ => Err(JsonError::new(
                    "22023",
                    "cannot get array length of a scalar",
                )),
            }
        }
        // Table functions' rows as a JSON array SQLite's json_each walks: (json, is_jsonb,
        // as_text) → [[key, value], …] for "each", [value, …] for "elements", [key, …]
        // for "keys". Values are strings holding json/jsonb text (or the text value).
        "each" | "elements" | "keys" => rows(op, ctx),
        _ => Err(JsonError::new(
            "0A000",
            format!("json operation {op} is not supported by mdbc"),
        )),
    }
}

/// How deeply arrays nest at the start of `n` (a 1-D array is 1).
fn depth(n: &Node) -> usize {
    match &n.kind {
        Kind::Array(items) => 1 + items.first().map_or(0, depth),
        _ => 0,
    }
}

fn kind_name(k: &Kind) -> Result<&'static str, JsonError> {
    Ok(match k {
        Kind::Null => "null",
        Kind::Bool(_) => "boolean",
        Kind::Number(_) => "number",
        Kind::String(_) => "string",
        Kind::Array(_) => "array",
        Kind::Object(_) => "object",
    })
}

fn rows(op: &str, ctx: &Context<'_>) -> Out {
    let Some(j) = text_arg(ctx, 1)? else {
        return Ok(Value::Text("[]".into()));
    };
    let (jsonb, as_text) = (bool_arg(ctx, 2, true), bool_arg(ctx, 3, false));
    let mut out = String::from("[");
    let push_value = |out: &mut String, v: Option<String>| match v {
        Some(s) => quote_into(&s, out),
        None => out.push_str("null"),
    };
    let n = parse::parse(&j)?;
    // jsonb rows come from the normalized value (sorted keys, duplicates merged).
    let normalized = if jsonb {
        Some(Jsonb::from_node(n.clone())?)
    } else {
        None
    };
    let shown = |node: &Node, v: Option<&Jsonb>| -> Option<String> {
        match (v, as_text) {
            (Some(v), true) => v.as_text(),
            (Some(v), false) => Some(v.text()),
            (None, true) => json_text(&j, node),
            (None, false) => Some(raw(&j, node).to_string()),
        }
    };
    let not_object = || {
        JsonError::new(
            "22023",
            format!(
                "cannot call {} on a non-object",
                match (op, jsonb, as_text) {
                    ("keys", true, _) => "jsonb_object_keys",
                    ("keys", false, _) => "json_object_keys",
                    (_, true, false) => "jsonb_each",
                    (_, true, true) => "jsonb_each_text",
                    (_, false, false) => "json_each",
                    _ => "json_each_text",
                }
            ),
        )
    };
    match (op, &n.kind, &normalized) {
        ("each", _, Some(Jsonb::Object(m))) => {
            for (i, (k, v)) in m.iter().enumerate() {
                out.push_str(if i > 0 { ",[" } else { "[" });
                quote_into(k, &mut out);
                out.push(',');
                push_value(&mut out, shown(&n, Some(v)));
                out.push(']');
            }
        }
        ("each", Kind::Object(m), None) => {
            for (i, (k, v)) in m.iter().enumerate() {
                out.push_str(if i > 0 { ",[" } else { "[" });
                quote_into(k, &mut out);
                out.push(',');
                push_value(&mut out, shown(v, None));
                out.push(']');
            }
        }
        ("keys", _, Some(Jsonb::Object(m))) => {
            for (i, (k, _)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quote_into(k, &mut out);
            }
        }
        ("keys", Kind::Object(m), None) => {
            for (i, (k, _)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quote_into(k, &mut out);
            }
        }
        ("elements", _, Some(Jsonb::Array(a))) => {
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_value(&mut out, shown(&n, Some(v)));
            }
        }
        ("elements", Kind::Array(a), None) => {
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_value(&mut out, shown(v, None));
            }
        }
        ("elements", _, _) => {
            return Err(JsonError::new(
                "22023",
                match &n.kind {
                    Kind::Object(_) => "cannot extract elements from an object",
                    _ => "cannot extract elements from a scalar",
                },
            ))
        }
        _ => return Err(not_object()),
    }
    out.push(']');
    Ok(Value::Text(out))
}
