//! COPY's text and CSV formats: splitting lines into fields and writing rows out.

use bytes::{BufMut, BytesMut};
use rusqlite::types::ValueRef;
use sql_capture::{ColumnInfo, CopyFormat, CopyPlan};

use crate::errors::SqlError;
use crate::values;

/// Position of the newline ending the first complete line of `buf`, if there is one.
/// In CSV a newline inside quotes belongs to the field.
pub fn find_line_end(buf: &[u8], plan: &CopyPlan) -> Option<usize> {
    match plan.format {
        CopyFormat::Text => buf.iter().position(|&b| b == b'\n'),
        CopyFormat::Csv => {
            let quote = plan.quote as u8;
            let mut in_quotes = false;
            for (i, &b) in buf.iter().enumerate() {
                if b == quote {
                    in_quotes = !in_quotes;
                } else if b == b'\n' && !in_quotes {
                    return Some(i);
                }
            }
            None
        }
    }
}

/// Splits one line into fields; `None` is SQL NULL.
pub fn split_fields(line: &[u8], plan: &CopyPlan) -> Result<Vec<Option<String>>, SqlError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| SqlError::coded("22021", "invalid byte sequence for encoding \"UTF8\""))?;
    match plan.format {
        CopyFormat::Text => Ok(text
            .split(plan.delimiter)
            .map(|f| {
                if f == plan.null {
                    Ok(None)
                } else {
                    unescape_text(f).map(Some)
                }
            })
            .collect::<Result<_, _>>()?),
        CopyFormat::Csv => split_csv(text, plan),
    }
}

fn unescape_text(f: &str) -> Result<String, SqlError> {
    if !f.contains('\\') {
        return Ok(f.to_string());
    }
    let mut out = String::with_capacity(f.len());
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(d @ '0'..='7') => {
                let mut v = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(n) => {
                            v = v * 8 + n;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            Some(other) => out.push(other),
            None => {
                return Err(SqlError::coded(
                    "22P04",
                    "end-of-copy marker corrupt: line ends with a backslash",
                ))
            }
        }
    }
    Ok(out)
}

fn split_csv(text: &str, plan: &CopyPlan) -> Result<Vec<Option<String>>, SqlError> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == plan.quote {
                if chars.peek() == Some(&plan.quote) {
                    cur.push(plan.quote);
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == plan.quote {
            quoted = true;
            was_quoted = true;
        } else if c == plan.delimiter {
            fields.push(csv_field(std::mem::take(&mut cur), was_quoted, plan));
            was_quoted = false;
        } else {
            cur.push(c);
        }
    }
    if quoted {
        return Err(SqlError::coded("22P04", "unterminated CSV quoted field"));
    }
    fields.push(csv_field(cur, was_quoted, plan));
    Ok(fields)
}

fn csv_field(s: String, quoted: bool, plan: &CopyPlan) -> Option<String> {
    // An unquoted field equal to the NULL string is NULL; a quoted one is a value.
    if !quoted && s == plan.null {
        None
    } else {
        Some(s)
    }
}

/// Writes one field of a COPY TO row.
pub fn encode_field(v: ValueRef<'_>, col: &ColumnInfo, plan: &CopyPlan, out: &mut BytesMut) {
    if v == ValueRef::Null {
        out.put_slice(plan.null.as_bytes());
        return;
    }
    let mut raw = BytesMut::new();
    values::encode_text(v, col.ty, col.typmod, &mut raw);
    let s = String::from_utf8_lossy(&raw);
    match plan.format {
        CopyFormat::Text => {
            for c in s.chars() {
                match c {
                    '\\' => out.put_slice(b"\\\\"),
                    '\n' => out.put_slice(b"\\n"),
                    '\r' => out.put_slice(b"\\r"),
                    '\t' => out.put_slice(b"\\t"),
                    c if c == plan.delimiter => {
                        out.put_u8(b'\\');
                        let mut b = [0u8; 4];
                        out.put_slice(c.encode_utf8(&mut b).as_bytes());
                    }
                    c => {
                        let mut b = [0u8; 4];
                        out.put_slice(c.encode_utf8(&mut b).as_bytes());
                    }
                }
            }
        }
        CopyFormat::Csv => {
            let needs_quotes = s.is_empty()
                || s.contains(plan.delimiter)
                || s.contains(plan.quote)
                || s.contains('\n')
                || s.contains('\r')
                || s == plan.null;
            if needs_quotes {
                let q = plan.quote.to_string();
                out.put_slice(q.as_bytes());
                out.put_slice(s.replace(&q, &format!("{q}{q}")).as_bytes());
                out.put_slice(q.as_bytes());
            } else {
                out.put_slice(s.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(format: CopyFormat) -> CopyPlan {
        CopyPlan {
            table: "t".into(),
            columns: vec![],
            from_stdin: true,
            format,
            delimiter: if format == CopyFormat::Csv { ',' } else { '\t' },
            null: if format == CopyFormat::Csv {
                String::new()
            } else {
                "\\N".into()
            },
            header: false,
            quote: '"',
        }
    }

    #[test]
    fn text_fields() {
        let p = plan(CopyFormat::Text);
        let f = split_fields(b"1\ta\\tb\t\\N", &p).unwrap();
        assert_eq!(f, vec![Some("1".into()), Some("a\tb".into()), None]);
    }

    #[test]
    fn csv_fields_and_lines() {
        let p = plan(CopyFormat::Csv);
        let f = split_fields(b"1,\"a,\"\"b\"\"\",,\"\"", &p).unwrap();
        assert_eq!(
            f,
            vec![
                Some("1".into()),
                Some("a,\"b\"".into()),
                None,
                Some("".into())
            ]
        );
        assert_eq!(find_line_end(b"1,\"x\ny\"\n2", &p), Some(7));
        assert!(split_fields(b"\"open", &p).is_err());
    }
}
