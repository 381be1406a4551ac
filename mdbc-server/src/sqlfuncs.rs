//! PostgreSQL's scalar functions that SQLite lacks or spells differently (math, strings),
//! registered on every connection. Each follows PostgreSQL's definition: NULL in, NULL out;
//! Unicode-aware case mapping; errors carry PostgreSQL's SQLSTATE.

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

/// The longest string a function builds (PostgreSQL's limit is 1 GB): beyond it, 54000
/// rather than an allocation that would abort the process.
const MAX_STRING_CHARS: usize = 1 << 28;

fn err(code: &str, msg: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(format!("[{code}] {msg}").into())
}

/// A numeric argument (integer or real); `None` for NULL.
fn num(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Option<f64>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(v as f64),
        ValueRef::Real(v) => Some(v),
        ValueRef::Text(t) => Some(
            std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| err("22P02", "invalid input syntax for type numeric"))?,
        ),
        ValueRef::Blob(_) => return Err(err("42883", "function does not accept bytea")),
    })
}

fn text(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Integer(v) => Some(v.to_string()),
        ValueRef::Real(v) => Some(v.to_string()),
    })
}

fn int(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Option<i64>> {
    Ok(num(ctx, i)?.map(|f| f as i64))
}

/// An integer result where the input was an integer, else a real.
fn same_kind(ctx: &Context<'_>, v: f64) -> Value {
    match ctx.get_raw(0) {
        ValueRef::Integer(_) => Value::Integer(v as i64),
        _ => Value::Real(v),
    }
}

/// Registers the functions on `conn`.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    // Replaces SQLite's printf-style format() (see pg_format.rs).
    conn.create_scalar_function("format", -1, det, crate::pg_format::format)?;
    type Unary = fn(f64) -> f64;
    let unary: [(&str, Unary); 10] = [
        ("ceil", f64::ceil),
        ("ceiling", f64::ceil),
        ("floor", f64::floor),
        ("sqrt", f64::sqrt),
        ("exp", f64::exp),
        ("ln", f64::ln),
        ("sign", f64::signum),
        ("degrees", f64::to_degrees),
        ("radians", f64::to_radians),
        ("cbrt", f64::cbrt),
    ];
    for (name, f) in unary {
        conn.create_scalar_function(name, 1, det, move |ctx| {
            let Some(x) = num(ctx, 0)? else {
                return Ok(Value::Null);
            };
            if name == "sqrt" && x < 0.0 {
                return Err(err("2201F", "cannot take square root of a negative number"));
            }
            if name == "ln" && x <= 0.0 {
                return Err(err(
                    "2201E",
                    "cannot take logarithm of zero or a negative number",
                ));
            }
            // `+ 0.0` turns -0 (ceil(-0.5)) into the 0 PostgreSQL prints.
            let r = if name == "sign" && x == 0.0 {
                0.0
            } else {
                f(x)
            } + 0.0;
            if name == "exp" && x.is_finite() {
                if r.is_infinite() {
                    return Err(err("22003", "value out of range: overflow"));
                }
                if r == 0.0 {
                    return Err(err("22003", "value out of range: underflow"));
                }
            }
            Ok(if matches!(name, "ceil" | "ceiling" | "floor" | "sign") {
                same_kind(ctx, r)
            } else {
                Value::Real(r)
            })
        })?;
    }
    conn.create_scalar_function("pi", 0, det, |_| Ok(std::f64::consts::PI))?;
    for name in ["power", "pow"] {
        conn.create_scalar_function(name, 2, det, |ctx| {
            Ok(match (num(ctx, 0)?, num(ctx, 1)?) {
                (Some(a), Some(b)) => {
                    if a == 0.0 && b < 0.0 {
                        return Err(err("2201F", "zero raised to a negative power is undefined"));
                    }
                    if a < 0.0 && b.floor() != b && !b.is_nan() {
                        return Err(err(
                            "2201F",
                            "a negative number raised to a non-integer power yields a complex \
                             result",
                        ));
                    }
                    let r = a.powf(b);
                    if a.is_finite() && b.is_finite() {
                        if r.is_infinite() {
                            return Err(err("22003", "value out of range: overflow"));
                        }
                        if r == 0.0 && a != 0.0 {
                            return Err(err("22003", "value out of range: underflow"));
                        }
                    }
                    Some(r)
                }
                _ => None,
            })
        })?;
    }
    conn.create_scalar_function("log", 1, det, |ctx| {
        num(ctx, 0)?
            .map(|x| {
                if x <= 0.0 {
                    Err(err(
                        "2201E",
                        "cannot take logarithm of zero or a negative number",
                    ))
                } else {
                    Ok(x.log10())
                }
            })
            .transpose()
    })?;
    conn.create_scalar_function("mod", 2, det, |ctx| {
        Ok(match (ctx.get_raw(0), ctx.get_raw(1)) {
            (ValueRef::Null, _) | (_, ValueRef::Null) => Value::Null,
            (ValueRef::Integer(a), ValueRef::Integer(b)) => {
                if b == 0 {
                    return Err(err("22012", "division by zero"));
                }
                Value::Integer(a.wrapping_rem(b))
            }
            _ => {
                let (a, b) = (num(ctx, 0)?.unwrap_or(0.0), num(ctx, 1)?.unwrap_or(0.0));
                if b == 0.0 {
                    return Err(err("22012", "division by zero"));
                }
                Value::Real(a % b)
            }
        })
    })?;
    for n in [1, 2] {
        conn.create_scalar_function("trunc", n, det, move |ctx| {
            let Some(x) = num(ctx, 0)? else {
                return Ok(Value::Null);
            };
            let places = if n == 2 { int(ctx, 1)?.unwrap_or(0) } else { 0 };
            let m = 10f64.powi(places as i32);
            Ok(same_kind(ctx, (x * m).trunc() / m))
        })?;
    }

    // Strings. SQLite's lower/upper map ASCII only.
    conn.create_scalar_function("lower", 1, det, |ctx| {
        Ok(text(ctx, 0)?.map(|s| map_case(&s, false)))
    })?;
    conn.create_scalar_function("upper", 1, det, |ctx| {
        Ok(text(ctx, 0)?.map(|s| map_case(&s, true)))
    })?;
    for name in ["char_length", "character_length"] {
        conn.create_scalar_function(name, 1, det, |ctx| {
            Ok(text(ctx, 0)?.map(|s| s.chars().count() as i64))
        })?;
    }
    conn.create_scalar_function("initcap", 1, det, |ctx| {
        Ok(text(ctx, 0)?.map(|s| {
            let mut out = String::with_capacity(s.len());
            let mut start = true;
            for c in s.chars() {
                if c.is_alphanumeric() {
                    if start {
                        out.extend(c.to_uppercase());
                    } else {
                        out.extend(c.to_lowercase());
                    }
                    start = false;
                } else {
                    out.push(c);
                    start = true;
                }
            }
            out
        }))
    })?;
    conn.create_scalar_function("strpos", 2, det, |ctx| {
        Ok(match (text(ctx, 0)?, text(ctx, 1)?) {
            (Some(h), Some(n)) => Some(
                h.find(&n)
                    .map(|b| h[..b].chars().count() as i64 + 1)
                    .unwrap_or(0),
            ),
            _ => None,
        })
    })?;
    for n in [1, 2] {
        conn.create_scalar_function("btrim", n, det, move |ctx| {
            let set = if n == 2 {
                text(ctx, 1)?
            } else {
                Some(" ".to_string())
            };
            Ok(match (text(ctx, 0)?, set) {
                (Some(s), Some(set)) => Some(s.trim_matches(|c| set.contains(c)).to_string()),
                _ => None,
            })
        })?;
    }
    // trim/btrim/ltrim/rtrim of a bytea (translation sends them here by type): the bytes in
    // the set removed from the chosen ends, a bytea back.
    conn.create_scalar_function("pg_bytea_trim", 3, det, |ctx| {
        let side: String = ctx.get(0)?;
        let bytes = |i: usize| -> Option<Vec<u8>> {
            match ctx.get_raw(i) {
                ValueRef::Null => None,
                ValueRef::Blob(b) | ValueRef::Text(b) => Some(b.to_vec()),
                ValueRef::Integer(n) => Some(n.to_string().into_bytes()),
                ValueRef::Real(f) => Some(f.to_string().into_bytes()),
            }
        };
        let (Some(s), Some(set)) = (bytes(1), bytes(2)) else {
            return Ok(None);
        };
        let keep = |b: &u8| !set.contains(b);
        let start = if side == "trailing" {
            0
        } else {
            s.iter().position(keep).unwrap_or(s.len())
        };
        let end = if side == "leading" {
            s.len()
        } else {
            s.iter().rposition(keep).map_or(start, |i| i + 1)
        };
        Ok(Some(s[start..end.max(start)].to_vec()))
    })?;
    for (name, from_left) in [("left", true), ("right", false)] {
        conn.create_scalar_function(name, 2, det, move |ctx| {
            let (Some(s), Some(n)) = (text(ctx, 0)?, int(ctx, 1)?) else {
                return Ok(None);
            };
            let chars: Vec<char> = s.chars().collect();
            let len = chars.len() as i64;
            // A negative count means "all but the last (first) |n|".
            let take = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
            Ok(Some(if from_left {
                chars[..take].iter().collect::<String>()
            } else {
                chars[chars.len() - take..].iter().collect::<String>()
            }))
        })?;
    }
    for (name, left) in [("lpad", true), ("rpad", false)] {
        for n in [2, 3] {
            conn.create_scalar_function(name, n, det, move |ctx| {
                let fill = if n == 3 {
                    text(ctx, 2)?
                } else {
                    Some(" ".to_string())
                };
                let (Some(s), Some(len), Some(fill)) = (text(ctx, 0)?, int(ctx, 1)?, fill) else {
                    return Ok(None);
                };
                let len = len.max(0) as usize;
                if len > MAX_STRING_CHARS {
                    return Err(err("54000", "requested length too large"));
                }
                let chars: Vec<char> = s.chars().collect();
                if chars.len() >= len {
                    return Ok(Some(chars[..len].iter().collect::<String>()));
                }
                let fill: Vec<char> = fill.chars().collect();
                if fill.is_empty() {
                    return Ok(Some(s));
                }
                let pad: String = fill.iter().cycle().take(len - chars.len()).collect();
                Ok(Some(if left { pad + &s } else { s + &pad }))
            })?;
        }
    }
    conn.create_scalar_function("repeat", 2, det, |ctx| {
        Ok(match (text(ctx, 0)?, int(ctx, 1)?) {
            (Some(s), Some(n)) => {
                let n = n.max(0) as usize;
                if s.len().saturating_mul(n) > MAX_STRING_CHARS {
                    return Err(err("54000", "requested length too large"));
                }
                Some(s.repeat(n))
            }
            _ => None,
        })
    })?;
    conn.create_scalar_function("reverse", 1, det, |ctx| {
        Ok(text(ctx, 0)?.map(|s| s.chars().rev().collect::<String>()))
    })?;
    conn.create_scalar_function("split_part", 3, det, |ctx| {
        let (Some(s), Some(d), Some(n)) = (text(ctx, 0)?, text(ctx, 1)?, int(ctx, 2)?) else {
            return Ok(None);
        };
        if n == 0 {
            return Err(err("22023", "field position must not be zero"));
        }
        let parts: Vec<&str> = if d.is_empty() {
            vec![s.as_str()]
        } else {
            s.split(d.as_str()).collect()
        };
        let idx = if n > 0 { n - 1 } else { parts.len() as i64 + n };
        Ok(Some(
            usize::try_from(idx)
                .ok()
                .and_then(|i| parts.get(i))
                .copied()
                .unwrap_or("")
                .to_string(),
        ))
    })?;
    conn.create_scalar_function("md5", 1, det, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Null => None,
            ValueRef::Text(b) | ValueRef::Blob(b) => Some(format!("{:x}", md5::compute(b))),
            other => Some(format!("{:x}", md5::compute(text_of(other).as_bytes()))),
        })
    })?;
    conn.create_scalar_function("chr", 1, det, |ctx| {
        int(ctx, 0)?
            .map(|c| {
                u32::try_from(c)
                    .ok()
                    .filter(|c| *c != 0)
                    .and_then(char::from_u32)
                    .map(|c| c.to_string())
                    .ok_or_else(|| err("54000", format!("requested character too large: {c}")))
            })
            .transpose()
    })?;
    conn.create_scalar_function("ascii", 1, det, |ctx| {
        Ok(text(ctx, 0)?.map(|s| s.chars().next().map(|c| c as i64).unwrap_or(0)))
    })?;
    conn.create_scalar_function("to_hex", 1, det, |ctx| {
        Ok(int(ctx, 0)?.map(|v| format!("{v:x}")))
    })?;
    Ok(())
}

/// Character-by-character case mapping, as PostgreSQL's (libc's towupper) does: a
/// character whose mapping is several characters (ß → SS) stays as it is.
fn map_case(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            let mut m: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            if m.len() == 1 {
                m.pop().unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

fn text_of(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Null => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(sql: &str) -> Value {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn.query_row(&format!("SELECT {sql}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn behave_like_postgres() {
        assert_eq!(eval("lower('ÀÉÎ')"), Value::Text("àéî".into()));
        assert_eq!(
            eval("initcap('hello wORLD-x')"),
            Value::Text("Hello World-X".into())
        );
        assert_eq!(eval("strpos('héllo', 'l')"), Value::Integer(3));
        assert_eq!(eval("left('abcdef', -2)"), Value::Text("abcd".into()));
        assert_eq!(eval("right('abcdef', 2)"), Value::Text("ef".into()));
        assert_eq!(eval("lpad('7', 3, '0')"), Value::Text("007".into()));
        assert_eq!(eval("lpad('12345', 3)"), Value::Text("123".into()));
        assert_eq!(eval("rpad('ab', 5, 'xy')"), Value::Text("abxyx".into()));
        assert_eq!(
            eval("split_part('a,b,c', ',', -1)"),
            Value::Text("c".into())
        );
        assert_eq!(
            eval("split_part('a,b,c', ',', 9)"),
            Value::Text(String::new())
        );
        assert_eq!(
            eval("md5('abc')"),
            Value::Text("900150983cd24fb0d6963f7d28e17f72".into())
        );
        assert_eq!(eval("floor(-1.5)"), Value::Real(-2.0));
        assert_eq!(eval("ceil(7)"), Value::Integer(7));
        assert_eq!(eval("mod(-7, 3)"), Value::Integer(-1));
        assert_eq!(eval("trunc(3.789, 2)"), Value::Real(3.78));
        assert_eq!(eval("power(2, 10)"), Value::Real(1024.0));
        assert_eq!(eval("upper(NULL)"), Value::Null);
        assert_eq!(eval("upper('straße')"), Value::Text("STRAßE".into()));
        assert_eq!(eval("ceil(-0.5)"), Value::Real(0.0));
    }

    #[test]
    fn errors_carry_sqlstates() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        for (sql, code) in [
            ("sqrt(-1)", "2201F"),
            ("mod(1, 0)", "22012"),
            ("split_part('a', ',', 0)", "22023"),
            ("chr(0)", "54000"),
            ("lpad('x', 9000000000000000000)", "54000"),
            ("rpad('x', 2000000000, 'y')", "54000"),
        ] {
            let e = conn
                .query_row(&format!("SELECT {sql}"), [], |r| r.get::<_, Value>(0))
                .unwrap_err();
            assert!(e.to_string().contains(code), "{sql}: {e}");
        }
    }
}
