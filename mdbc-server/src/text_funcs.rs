//! PostgreSQL's text functions that SQLite lacks or has with other semantics:
//! `regexp_replace`, `regexp_match`, `SIMILAR TO`, `string_to_array`, `encode`, `decode`. Arrays are
//! JSON arrays in SQLite (values/arrays.rs prints them as PostgreSQL's `{…}`); bytea values
//! are blobs.

use base64::Engine as _;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

fn fail(code: &str, message: impl std::fmt::Display) -> rusqlite::Error {
    // The SQLSTATE travels in the message; errors.rs takes it back out.
    rusqlite::Error::UserFunctionError(format!("[{code}] {message}").into())
}

/// Argument `i` as text, None for NULL.
fn text_arg(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Integer(v) => Some(v.to_string()),
        ValueRef::Real(f) => Some(crate::values::format_float(f)),
    })
}

/// A pattern with PostgreSQL's flags (`i` case-insensitive, `g` every match; others
/// refused), compiled once per statement.
fn pattern(pat: &str, flags: &str) -> rusqlite::Result<(regex::Regex, bool)> {
    let mut global = false;
    let mut builder = regex::RegexBuilder::new(pat);
    for f in flags.chars() {
        match f {
            'g' => global = true,
            'i' => {
                builder.case_insensitive(true);
            }
            'c' => {
                builder.case_insensitive(false);
            }
            other => {
                return Err(fail(
                    "22023",
                    format!("invalid regular expression option: \"{other}\""),
                ))
            }
        }
    }
    let re = builder
        .build()
        .map_err(|e| fail("2201B", format!("invalid regular expression: {e}")))?;
    Ok((re, global))
}

/// A SIMILAR TO pattern as a regular expression, as PostgreSQL's `similar_escape` builds
/// it: `%` any text, `_` any character, `.`, `^`, `$` literal, the escape character
/// (None: none) makes the next character literal, the rest (`|`, `*`, `+`, `?`, `{}`,
/// `()`, `[]`) as in regular expressions; the whole text must match.
pub(crate) fn similar_to_regex(pattern: &str, escape: Option<char>) -> rusqlite::Result<String> {
    let mut out = String::from("^(?:");
    let mut chars = pattern.chars();
    let mut in_bracket = false;
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            let Some(n) = chars.next() else {
                return Err(fail(
                    "2201B",
                    "invalid escape string: a pattern cannot end with its escape character",
                ));
            };
            out.push_str(&regex::escape(&n.to_string()));
            continue;
        }
        if in_bracket {
            if c == ']' {
                in_bracket = false;
            }
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
            continue;
        }
        match c {
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            '[' => {
                in_bracket = true;
                out.push('[');
            }
            '.' | '^' | '$' | '\\' => out.push_str(&regex::escape(&c.to_string())),
            c => out.push(c),
        }
    }
    out.push_str(")$");
    Ok(out)
}

/// PostgreSQL's replacement text (`\1`…`\9` for groups, `\&` for the match, `\\` for a
/// backslash) in the regex crate's syntax.
fn replacement(r: &str) -> String {
    let mut out = String::with_capacity(r.len());
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(d @ '1'..='9') => {
                    chars.next();
                    out.push_str(&format!("${{{d}}}"));
                }
                Some('&') => {
                    chars.next();
                    out.push_str("${0}");
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// A match as regexp_match gives it: the groups' texts (a group that did not take part is
/// NULL), or the whole match for a pattern without groups, as a JSON array (mdbc's text[]).
fn groups(c: &regex::Captures<'_>) -> serde_json::Value {
    let items: Vec<serde_json::Value> = if c.len() > 1 {
        (1..c.len())
            .map(|i| {
                c.get(i).map_or(serde_json::Value::Null, |m| {
                    serde_json::Value::String(m.as_str().into())
                })
            })
            .collect()
    } else {
        vec![serde_json::Value::String(c[0].to_string())]
    };
    serde_json::Value::Array(items)
}

/// Registers the functions on a connection.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    for n in [3, 4] {
        conn.create_scalar_function("regexp_replace", n, det, move |ctx| {
            let (Some(s), Some(p), Some(r)) =
                (text_arg(ctx, 0)?, text_arg(ctx, 1)?, text_arg(ctx, 2)?)
            else {
                return Ok(None);
            };
            let flags = if n == 4 {
                match text_arg(ctx, 3)? {
                    Some(f) => f,
                    None => return Ok(None),
                }
            } else {
                String::new()
            };
            let (re, global) = pattern(&p, &flags)?;
            let rep = replacement(&r);
            Ok(Some(if global {
                re.replace_all(&s, rep.as_str()).into_owned()
            } else {
                re.replace(&s, rep.as_str()).into_owned()
            }))
        })?;
    }
    for n in [2, 3] {
        conn.create_scalar_function("regexp_match", n, det, move |ctx| {
            let (Some(s), Some(p)) = (text_arg(ctx, 0)?, text_arg(ctx, 1)?) else {
                return Ok(None);
            };
            let flags = if n == 3 {
                text_arg(ctx, 2)?.unwrap_or_default()
            } else {
                String::new()
            };
            if flags.contains('g') {
                return Err(fail(
                    "22023",
                    "regexp_match() does not support the \"global\" option",
                ));
            }
            let (re, _) = pattern(&p, &flags)?;
            Ok(re.captures(&s).map(|c| groups(&c).to_string()))
        })?;
    }
    // regexp_matches' rows (a JSON array of each match's groups, as regexp_match gives
    // one: every match with flag g, else the first) and regexp_split_to_array; the table
    // forms walk these arrays (sql-capture's rewrite).
    for n in [2, 3] {
        conn.create_scalar_function("pg_regexp_matches", n, det, move |ctx| {
            let (Some(s), Some(p)) = (text_arg(ctx, 0)?, text_arg(ctx, 1)?) else {
                return Ok(None);
            };
            let flags = if n == 3 {
                text_arg(ctx, 2)?.unwrap_or_default()
            } else {
                String::new()
            };
            let (re, global) = pattern(&p, &flags)?;
            let rows: Vec<serde_json::Value> = if global {
                re.captures_iter(&s).map(|c| groups(&c)).collect()
            } else {
                re.captures(&s).map(|c| groups(&c)).into_iter().collect()
            };
            Ok(Some(serde_json::Value::Array(rows).to_string()))
        })?;
        conn.create_scalar_function("regexp_split_to_array", n, det, move |ctx| {
            let (Some(s), Some(p)) = (text_arg(ctx, 0)?, text_arg(ctx, 1)?) else {
                return Ok(None);
            };
            let flags = if n == 3 {
                text_arg(ctx, 2)?.unwrap_or_default()
            } else {
                String::new()
            };
            if flags.contains('g') {
                return Err(fail(
                    "22023",
                    "regexp_split_to_array() does not support the \"global\" option",
                ));
            }
            let (re, _) = pattern(&p, &flags)?;
            // PostgreSQL ignores an empty match at the start, at the end, or right after
            // the previous match.
            let mut parts = Vec::new();
            let mut start = 0;
            for m in re.find_iter(&s) {
                if m.start() == m.end()
                    && (m.start() == 0 || m.start() == s.len() || m.start() == start)
                {
                    continue;
                }
                parts.push(serde_json::Value::String(s[start..m.start()].to_string()));
                start = m.end();
            }
            parts.push(serde_json::Value::String(s[start..].to_string()));
            Ok(Some(serde_json::Value::Array(parts).to_string()))
        })?;
    }
    for n in [2, 3] {
        conn.create_scalar_function("string_to_array", n, det, move |ctx| {
            let Some(s) = text_arg(ctx, 0)? else {
                return Ok(None);
            };
            let delim = text_arg(ctx, 1)?;
            let null = if n == 3 { text_arg(ctx, 2)? } else { None };
            let parts: Vec<String> = match delim.as_deref() {
                _ if s.is_empty() => Vec::new(),
                None => s.chars().map(String::from).collect(),
                Some("") => vec![s.clone()],
                Some(d) => s.split(d).map(String::from).collect(),
            };
            let items: Vec<serde_json::Value> = parts
                .into_iter()
                .map(|p| {
                    if null.as_deref() == Some(p.as_str()) {
                        serde_json::Value::Null
                    } else {
                        serde_json::Value::String(p)
                    }
                })
                .collect();
            Ok(Some(serde_json::Value::Array(items).to_string()))
        })?;
    }
    // `s SIMILAR TO pattern ESCAPE e`: NULL in, NULL out; an empty escape means none.
    conn.create_scalar_function("pg_similar", 3, det, |ctx| {
        let (Some(s), Some(p), Some(e)) = (text_arg(ctx, 0)?, text_arg(ctx, 1)?, text_arg(ctx, 2)?)
        else {
            return Ok(None);
        };
        let mut esc = e.chars();
        let escape = esc.next();
        if esc.next().is_some() {
            return Err(fail(
                "22025",
                "invalid escape string: escape string must be empty or one character",
            ));
        }
        let re = regex::Regex::new(&similar_to_regex(&p, escape)?)
            .map_err(|e| fail("2201B", format!("invalid regular expression: {e}")))?;
        Ok(Some(re.is_match(&s)))
    })?;
    // Replaces SQLite's own unistr(), which lets invalid code points through.
    conn.create_scalar_function("unistr", 1, det, |ctx| {
        let Some(s) = text_arg(ctx, 0)? else {
            return Ok(None);
        };
        unistr(&s).map(Some)
    })?;
    conn.create_scalar_function("encode", 2, det, |ctx| {
        let bytes: Vec<u8> = match ctx.get_raw(0) {
            ValueRef::Null => return Ok(None),
            ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
            other => text_of(other).into_bytes(),
        };
        let Some(format) = text_arg(ctx, 1)? else {
            return Ok(None);
        };
        Ok(Some(match format.to_ascii_lowercase().as_str() {
            "hex" => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            // Lines of 76 characters, as PostgreSQL writes them.
            "base64" => {
                let flat = base64::engine::general_purpose::STANDARD.encode(&bytes);
                let lines: Vec<&str> = flat
                    .as_bytes()
                    .chunks(76)
                    .map(|c| std::str::from_utf8(c).unwrap_or_default())
                    .collect();
                lines.join("\n")
            }
            // Zero bytes and bytes with the high bit set as octal escapes, backslashes
            // doubled, everything else as it is.
            "escape" => bytes
                .iter()
                .map(|&b| match b {
                    b'\\' => "\\\\".to_string(),
                    0 | 0x80..=0xff => format!("\\{b:03o}"),
                    _ => (b as char).to_string(),
                })
                .collect(),
            other => return Err(fail("22023", format!("unrecognized encoding: \"{other}\""))),
        }))
    })?;
    conn.create_scalar_function("decode", 2, det, |ctx| {
        let (Some(s), Some(format)) = (text_arg(ctx, 0)?, text_arg(ctx, 1)?) else {
            return Ok(Value::Null);
        };
        let bad = |what: &str| fail("22023", format!("invalid {what} data"));
        let bytes =
            match format.to_ascii_lowercase().as_str() {
                "hex" => {
                    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
                    if !digits.len().is_multiple_of(2) {
                        return Err(fail(
                            "22023",
                            "invalid hexadecimal data: odd number of digits",
                        ));
                    }
                    digits
                        .chunks(2)
                        .map(|p| {
                            std::str::from_utf8(p)
                                .ok()
                                .and_then(|h| u8::from_str_radix(h, 16).ok())
                                .ok_or_else(|| bad("hexadecimal"))
                        })
                        .collect::<rusqlite::Result<Vec<u8>>>()?
                }
                "base64" => {
                    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                    base64::engine::general_purpose::STANDARD
                        .decode(clean)
                        .map_err(|_| bad("base64"))?
                }
                "escape" => {
                    let b = s.as_bytes();
                    let mut out = Vec::with_capacity(b.len());
                    let mut i = 0;
                    while i < b.len() {
                        if b[i] != b'\\' {
                            out.push(b[i]);
                            i += 1;
                        } else if b.get(i + 1) == Some(&b'\\') {
                            out.push(b'\\');
                            i += 2;
                        } else {
                            let oct = b.get(i + 1..i + 4).and_then(|o| {
                                std::str::from_utf8(o)
                                    .ok()
                                    .and_then(|o| u8::from_str_radix(o, 8).ok())
                            });
                            out.push(oct.ok_or_else(|| {
                                fail("22P02", "invalid input syntax for type bytea")
                            })?);
                            i += 4;
                        }
                    }
                    out
                }
                other => return Err(fail("22023", format!("unrecognized encoding: \"{other}\""))),
            };
        Ok(Value::Blob(bytes))
    })
}

fn text_of(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => crate::values::format_float(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Null => String::new(),
    }
}

/// PostgreSQL's unistr: `\XXXX`, `\+XXXXXX`, `\uXXXX`, `\UXXXXXXXX` and `\\`, a
/// UTF-16 surrogate pair combined, anything else an error.
fn unistr(s: &str) -> rusqlite::Result<String> {
    let bad_escape = || {
        fail(
            "22025",
            "invalid Unicode escape (Unicode escapes must be \\XXXX, \\+XXXXXX, \\uXXXX, or \\UXXXXXXXX)",
        )
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut high: Option<u32> = None;
    while let Some(at) = rest.find('\\') {
        if high.is_some() && at > 0 {
            return Err(fail("22023", "invalid Unicode surrogate pair"));
        }
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(r) = rest.strip_prefix('\\') {
            if high.is_some() {
                return Err(fail("22023", "invalid Unicode surrogate pair"));
            }
            out.push('\\');
            rest = r;
            continue;
        }
        let (digits, skip) = match rest.as_bytes().first() {
            Some(b'+') => (6, 1),
            Some(b'u') => (4, 1),
            Some(b'U') => (8, 1),
            _ => (4, 0),
        };
        let hex = rest.get(skip..skip + digits).ok_or_else(bad_escape)?;
        if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad_escape());
        }
        let code = u32::from_str_radix(hex, 16).map_err(|_| bad_escape())?;
        rest = &rest[skip + digits..];
        let invalid = || fail("22023", format!("invalid Unicode code point: {code:04X}"));
        match (high.take(), code) {
            (Some(h), 0xDC00..=0xDFFF) => {
                let c = 0x10000 + ((h - 0xD800) << 10) + (code - 0xDC00);
                out.push(char::from_u32(c).ok_or_else(invalid)?);
            }
            (Some(_), _) => return Err(fail("22023", "invalid Unicode surrogate pair")),
            (None, 0xD800..=0xDBFF) => high = Some(code),
            (None, 0xDC00..=0xDFFF) => return Err(fail("22023", "invalid Unicode surrogate pair")),
            (None, _) if code > 0x10FFFF || code == 0 => return Err(invalid()),
            (None, _) => out.push(char::from_u32(code).ok_or_else(invalid)?),
        }
    }
    if high.is_some() {
        return Err(fail("22023", "invalid Unicode surrogate pair"));
    }
    out.push_str(rest);
    Ok(out)
}
