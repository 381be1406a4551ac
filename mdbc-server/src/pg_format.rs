//! PostgreSQL's `format(formatstr, args…)`. SQLite has a `format()` of its own (printf's),
//! which answers PostgreSQL's format strings differently — `%1$s`, `%I`, `%L`, widths —
//! so this one replaces it on every connection.
//!
//! Specifiers: `%[position$][-][width]type` with `width` a number, `*` (the next argument)
//! or `*n$`; `type` is `s` (the value as text; NULL as nothing), `I` (an identifier, quoted
//! if needed; NULL is an error) or `L` (a literal, quoted; NULL as `NULL`); `%%` is `%`.
//! Errors are PostgreSQL's: 22023 for a bad specifier or too few arguments, 22004 for a
//! NULL identifier.

use rusqlite::functions::Context;
use rusqlite::types::ValueRef;

fn err(code: &str, msg: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(format!("[{code}] {msg}").into())
}

/// An argument as PostgreSQL's text output shows it (`None` for NULL).
fn arg_text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(crate::values::format_float(f)),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

/// `format(...)` over the function's arguments.
pub fn format(ctx: &Context<'_>) -> rusqlite::Result<Option<String>> {
    if ctx.is_empty() {
        return Err(err("42883", "function format() does not exist"));
    }
    let Some(fmt) = arg_text(ctx.get_raw(0)) else {
        return Ok(None);
    };
    let args: Vec<Option<String>> = (1..ctx.len()).map(|i| arg_text(ctx.get_raw(i))).collect();
    render(&fmt, &args).map(Some)
}

/// Reads a decimal number at `chars[*i..]`, if one is there.
fn number(chars: &[char], i: &mut usize) -> Option<usize> {
    let start = *i;
    while *i < chars.len() && chars[*i].is_ascii_digit() {
        *i += 1;
    }
    if *i == start {
        return None;
    }
    chars[start..*i].iter().collect::<String>().parse().ok()
}

/// Formats `fmt` with `args` (`None` is NULL).
pub fn render(fmt: &str, args: &[Option<String>]) -> rusqlite::Result<String> {
    let chars: Vec<char> = fmt.chars().collect();
    let unterminated = || err("22023", "unterminated format() type specifier");
    let too_few = || err("22023", "too few arguments for format()");
    let mut out = String::with_capacity(fmt.len());
    // The next argument an unnumbered specifier takes (0-based).
    let mut next = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        if i >= chars.len() {
            return Err(unterminated());
        }
        if chars[i] == '%' {
            out.push('%');
            i += 1;
            continue;
        }
        // `n$`: an explicit argument position.
        let save = i;
        let mut position = None;
        if let Some(n) = number(&chars, &mut i) {
            if i < chars.len() && chars[i] == '$' {
                if n == 0 {
                    return Err(err(
                        "22023",
                        "format specifies argument 0, but arguments are numbered from 1",
                    ));
                }
                position = Some(n - 1);
                i += 1;
            } else {
                i = save;
            }
        }
        let mut left = false;
        while i < chars.len() && chars[i] == '-' {
            left = true;
            i += 1;
        }
        // Width: a number, `*` (the next argument) or `*n$`.
        let mut width: Option<i64> = None;
        if i < chars.len() && chars[i] == '*' {
            i += 1;
            let save = i;
            let from = match number(&chars, &mut i) {
                Some(n) if i < chars.len() && chars[i] == '$' => {
                    i += 1;
                    if n == 0 {
                        return Err(err(
                            "22023",
                            "format specifies argument 0, but arguments are numbered from 1",
                        ));
                    }
                    // As PostgreSQL counts: a value without a position comes next.
                    next = n;
                    n - 1
                }
                _ => {
                    i = save;
                    let n = next;
                    next += 1;
                    n
                }
            };
            let w = args.get(from).ok_or_else(too_few)?;
            width = match w {
                None => None,
                Some(t) => Some(t.trim().parse::<i64>().map_err(|_| {
                    err(
                        "22P02",
                        format!("invalid input syntax for type integer: \"{t}\""),
                    )
                })?),
            };
        } else if let Some(n) = number(&chars, &mut i) {
            width = Some(n as i64);
        }
        if i >= chars.len() {
            return Err(unterminated());
        }
        let kind = chars[i];
        i += 1;
        let index = match position {
            Some(p) => p,
            None => {
                let n = next;
                next += 1;
                n
            }
        };
        if !matches!(kind, 's' | 'I' | 'L') {
            return Err(err(
                "22023",
                format!("unrecognized format() type specifier \"{kind}\""),
            ));
        }
        let value = args.get(index).ok_or_else(too_few)?;
        if position.is_some() {
            next = index + 1;
        }
        let text = match (kind, value) {
            ('s', None) => String::new(),
            ('s', Some(v)) => v.clone(),
            ('I', None) => {
                return Err(err(
                    "22004",
                    "null values cannot be formatted as an SQL identifier",
                ))
            }
            ('I', Some(v)) => sql_capture::pg_quote_ident(v),
            (_, None) => "NULL".to_string(),
            (_, Some(v)) => quote_literal(v),
        };
        let width = width.unwrap_or(0);
        let (left, width) = (left || width < 0, width.unsigned_abs() as usize);
        let len = text.chars().count();
        if len >= width {
            out.push_str(&text);
        } else if left {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', width - len));
        } else {
            out.extend(std::iter::repeat_n(' ', width - len));
            out.push_str(&text);
        }
    }
    Ok(out)
}

/// PostgreSQL's `quote_literal`: in single quotes, quotes doubled; with a backslash, the
/// `E''` form with backslashes doubled.
pub fn quote_literal(v: &str) -> String {
    let body = v.replace('\'', "''");
    if v.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    fn f(fmt: &str, args: &[Option<&str>]) -> Result<String, String> {
        let args: Vec<Option<String>> = args.iter().map(|a| a.map(str::to_string)).collect();
        render(fmt, &args).map_err(|e| e.to_string())
    }

    /// Expected values as PostgreSQL 15 answers them (its regression test `text.sql`).
    #[test]
    fn formats_as_postgres_does() {
        assert_eq!(f("Hello %s", &[Some("World")]).unwrap(), "Hello World");
        assert_eq!(
            f(
                "INSERT INTO %I VALUES(%L,%L)",
                &[Some("mytab"), Some("10"), None]
            )
            .unwrap(),
            "INSERT INTO mytab VALUES('10',NULL)"
        );
        assert_eq!(
            f("%1$s %3$s", &[Some("1"), Some("2"), Some("3")]).unwrap(),
            "1 3"
        );
        assert_eq!(
            f("Hello %s %1$s %s", &[Some("World"), Some("Hello again")]).unwrap(),
            "Hello World World Hello again"
        );
        assert_eq!(f(">>%10s<<", &[Some("Hello")]).unwrap(), ">>     Hello<<");
        assert_eq!(f(">>%-10s<<", &[Some("Hello")]).unwrap(), ">>Hello     <<");
        assert_eq!(
            f(">>%1$-10I<<", &[Some("Hello")]).unwrap(),
            ">>\"Hello\"   <<"
        );
        assert_eq!(
            f(">>%2$*1$L<<", &[Some("10"), Some("Hello")]).unwrap(),
            ">>   'Hello'<<"
        );
        assert_eq!(
            f(">>%2$*1$L<<", &[Some("-10"), None]).unwrap(),
            ">>NULL      <<"
        );
        assert_eq!(
            f(">>%*1$s<<", &[Some("10"), Some("Hello")]).unwrap(),
            ">>     Hello<<"
        );
        assert_eq!(
            f(">>%2$*1$L<<", &[None, Some("Hello")]).unwrap(),
            ">>'Hello'<<"
        );
        assert_eq!(f("%%s %s", &[Some("x")]).unwrap(), "%s x");
        assert_eq!(f("%L", &[Some("a\\b")]).unwrap(), "E'a\\\\b'");
        assert!(f("Hello %s %s", &[Some("World")])
            .unwrap_err()
            .contains("22023"));
        assert!(f("Hello %x", &[Some("20")]).unwrap_err().contains("22023"));
        assert!(f("%I", &[None]).unwrap_err().contains("22004"));
        assert!(f("%", &[]).unwrap_err().contains("22023"));
    }
}
