//! jsonb values as PostgreSQL keeps them: numbers exact (numeric), object keys sorted by
//! length then bytes with the last of duplicate keys kept, and printed with `": "` and
//! `", "`. mdbc stores a jsonb value as this text, so equal values are equal strings.

use std::cmp::Ordering;

use super::error::JsonError;
use super::parse::{self, Kind, Node};
use crate::numeric::Numeric;

/// A jsonb value.
#[derive(Debug, Clone, PartialEq)]
pub enum Jsonb {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number in numeric's canonical text.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Jsonb>),
    /// An object, keys in jsonb order, no duplicates.
    Object(Vec<(String, Jsonb)>),
}

/// jsonb's key order: shorter keys first, then bytewise.
pub fn key_order(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

impl Jsonb {
    /// Reads jsonb text input.
    pub fn parse(text: &str) -> Result<Jsonb, JsonError> {
        Jsonb::from_node(parse::parse(text)?)
    }

    /// The jsonb value of a parsed JSON value.
    pub fn from_node(n: Node) -> Result<Jsonb, JsonError> {
        Ok(match n.kind {
            Kind::Null => Jsonb::Null,
            Kind::Bool(b) => Jsonb::Bool(b),
            Kind::Number(t) => Jsonb::Number(canonical_number(&t)?),
            Kind::String(s) => Jsonb::String(checked_string(s)?),
            Kind::Array(items) => Jsonb::Array(
                items
                    .into_iter()
                    .map(Jsonb::from_node)
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Object(members) => {
                let mut out = Vec::with_capacity(members.len());
                for (k, v) in members {
                    out.push((checked_string(k)?, Jsonb::from_node(v)?));
                }
                Jsonb::object(out)
            }
        })
    }

    /// An object from members in any order; of duplicate keys the last wins.
    pub fn object(mut members: Vec<(String, Jsonb)>) -> Jsonb {
        // A stable sort keeps duplicates in input order; the last of each run is kept.
        members.sort_by(|a, b| key_order(&a.0, &b.0));
        let mut out: Vec<(String, Jsonb)> = Vec::with_capacity(members.len());
        for (k, v) in members {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        Jsonb::Object(out)
    }

    /// PostgreSQL's text form of jsonb.
    pub fn text(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    fn write(&self, s: &mut String) {
        match self {
            Jsonb::Null => s.push_str("null"),
            Jsonb::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            Jsonb::Number(n) => s.push_str(n),
            Jsonb::String(t) => quote_into(t, s),
            Jsonb::Array(items) => {
                s.push('[');
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    x.write(s);
                }
                s.push(']');
            }
            Jsonb::Object(members) => {
                s.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    quote_into(k, s);
                    s.push_str(": ");
                    v.write(s);
                }
                s.push('}');
            }
        }
    }

    /// `jsonb_pretty`: four-space indentation, one member or element per line.
    pub fn pretty(&self) -> String {
        let mut s = String::new();
        self.write_pretty(&mut s, 0);
        s
    }

    fn write_pretty(&self, s: &mut String, level: usize) {
        let pad = |s: &mut String, l: usize| s.push_str(&"    ".repeat(l));
        match self {
            Jsonb::Array(items) => {
                s.push_str("[\n");
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        s.push_str(",\n");
                    }
                    pad(s, level + 1);
                    x.write_pretty(s, level + 1);
                }
                if !items.is_empty() {
                    s.push('\n');
                }
                pad(s, level);
                s.push(']');
            }
            Jsonb::Object(members) => {
                s.push_str("{\n");
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        s.push_str(",\n");
                    }
                    pad(s, level + 1);
                    quote_into(k, s);
                    s.push_str(": ");
                    v.write_pretty(s, level + 1);
                }
                if !members.is_empty() {
                    s.push('\n');
                }
                pad(s, level);
                s.push('}');
            }
            other => other.write(s),
        }
    }

    /// `jsonb_typeof`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Jsonb::Null => "null",
            Jsonb::Bool(_) => "boolean",
            Jsonb::Number(_) => "number",
            Jsonb::String(_) => "string",
            Jsonb::Array(_) => "array",
            Jsonb::Object(_) => "object",
        }
    }

    /// The value `->>` gives: a string's contents, NULL for null, else the text form.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Jsonb::Null => None,
            Jsonb::String(s) => Some(s.clone()),
            other => Some(other.text()),
        }
    }

    /// An object member by key.
    pub fn member(&self, key: &str) -> Option<&Jsonb> {
        match self {
            Jsonb::Object(m) => m
                .binary_search_by(|(k, _)| key_order(k, key))
                .ok()
                .map(|i| &m[i].1),
            _ => None,
        }
    }

    /// An array element by index, negative from the end.
    pub fn element(&self, index: i64) -> Option<&Jsonb> {
        match self {
            Jsonb::Array(a) => resolve_index(index, a.len()).and_then(|i| a.get(i)),
            _ => None,
        }
    }

    /// `@>`: PostgreSQL's containment (arrays contain elements regardless of order and
    /// repetition; a top-level array also contains a bare scalar it holds).
    pub fn contains(&self, other: &Jsonb) -> bool {
        match (self, other) {
            (Jsonb::Array(a), scalar) if !matches!(scalar, Jsonb::Array(_) | Jsonb::Object(_)) => {
                a.iter().any(|av| scalar_equal(av, scalar))
            }
            _ => contains_nested(self, other),
        }
    }

    /// `?`: a top-level key, array string element, or the string itself.
    pub fn has_key(&self, key: &str) -> bool {
        match self {
            Jsonb::Object(_) => self.member(key).is_some(),
            Jsonb::Array(a) => a.iter().any(|x| matches!(x, Jsonb::String(s) if s == key)),
            Jsonb::String(s) => s == key,
            _ => false,
        }
    }
}

/// An index into `len` elements, negative counting from the end.
pub fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if index < 0 { len + index } else { index };
    (0..len).contains(&i).then_some(i as usize)
}

fn contains_nested(a: &Jsonb, b: &Jsonb) -> bool {
    match (a, b) {
        (Jsonb::Object(_), Jsonb::Object(bm)) => bm
            .iter()
            .all(|(k, bv)| a.member(k).is_some_and(|av| contains_nested(av, bv))),
        (Jsonb::Array(am), Jsonb::Array(bm)) => bm
            .iter()
            .all(|bv| am.iter().any(|av| contains_nested(av, bv))),
        _ => scalar_equal(a, b),
    }
}

fn scalar_equal(a: &Jsonb, b: &Jsonb) -> bool {
    a == b || numbers_equal(a, b)
}

fn numbers_equal(a: &Jsonb, b: &Jsonb) -> bool {
    match (a, b) {
        (Jsonb::Number(x), Jsonb::Number(y)) => match (Numeric::parse(x), Numeric::parse(y)) {
            (Ok(x), Ok(y)) => x.cmp(&y) == Ordering::Equal,
            _ => false,
        },
        _ => false,
    }
}

/// A JSON number as jsonb keeps it: numeric's text (`1e2` is `100`, `1.0` stays `1.0`).
pub fn canonical_number(text: &str) -> Result<String, JsonError> {
    Numeric::parse(text)
        .map(|n| n.to_string())
        .map_err(|_| JsonError::syntax("invalid input syntax for type json"))
}

fn checked_string(s: String) -> Result<String, JsonError> {
    if s.contains('\0') {
        return Err(JsonError::unicode("\\u0000 cannot be converted to text."));
    }
    Ok(s)
}

/// A string in JSON quotes, escaped as PostgreSQL escapes it.
pub fn quote_into(t: &str, s: &mut String) {
    s.push('"');
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\u{8}' => s.push_str("\\b"),
            '\u{c}' => s.push_str("\\f"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
}
