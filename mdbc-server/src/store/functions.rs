//! The SQL functions every connection of the store has: those translation emits
//! (`pg_coerce`, `pg_nextval`, …, see `sql_capture::REQUIRED_FUNCTIONS`), those the
//! pg_catalog views call, and a single site's answers behind `mdbc_sites`/`mdbc_tables`.

use crate::datetime::sql::SessionZone;
use std::sync::{Arc, Mutex};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use sql_capture::PgType;

use super::ident::SessionIdent;
use super::sequences::Sequences;
use crate::values;

/// What `version()` returns.
pub fn version_string() -> String {
    format!(
        "PostgreSQL 16.6 (mdbc {}) on {}-linux, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// `__mdbc_sites()` and `__mdbc_table_policy(name)`, behind the `mdbc_sites` and
/// `mdbc_tables` views, as a single site answers them; a cluster's sessions replace them
/// with the cluster's (replication/admin.rs).
pub(crate) fn register_single_site(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8;
    conn.create_scalar_function("__mdbc_sites", 0, flags, |_| {
        Ok(serde_json::json!([{
            "site": "main", "address": null, "is_self": true, "reachable": true,
            "applied": null, "lag_ms": null
        }])
        .to_string())
    })?;
    conn.create_scalar_function("__mdbc_table_policy", 1, flags, |_| {
        Ok(serde_json::json!([{ "level": "local" }]).to_string())
    })?;
    Ok(())
}

/// A float operand: a real, an integer, or numeric/float text (`NaN`, `Infinity`).
fn float_arg(v: ValueRef<'_>) -> rusqlite::Result<Option<f64>> {
    Ok(match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) => Some(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let s = String::from_utf8_lossy(t);
            let f = crate::numeric::Numeric::parse(&s)
                .map(|n| n.to_f64())
                .map_err(|_| {
                    rusqlite::Error::UserFunctionError(
                        format!("[22P02] invalid input syntax for type double precision: \"{s}\"")
                            .into(),
                    )
                })?;
            Some(f)
        }
    })
}

/// `a op b` in double (or, `single`, single) precision with PostgreSQL's checks. NaN is
/// returned as the text `NaN` (SQLite stores a NaN real as NULL).
fn float_op(op: &[u8], a: f64, b: f64, single: bool) -> Result<Value, (&'static str, String)> {
    let r = match op {
        b"+" => a + b,
        b"-" => a - b,
        b"*" => a * b,
        b"/" => {
            if b == 0.0 && !a.is_nan() {
                return Err(("22012", "division by zero".into()));
            }
            a / b
        }
        _ => return Err(("42883", "operator does not exist".into())),
    };
    let r = if single { f64::from(r as f32) } else { r };
    let inf_ok = a.is_infinite() || b.is_infinite();
    if r.is_infinite() && !inf_ok {
        return Err(("22003", "value out of range: overflow".into()));
    }
    let zero_ok = match op {
        b"*" => a == 0.0 || b == 0.0,
        b"/" => a == 0.0 || b.is_infinite(),
        _ => true,
    };
    if r == 0.0 && !zero_ok {
        return Err(("22003", "value out of range: underflow".into()));
    }
    Ok(if r.is_nan() {
        Value::Text("NaN".into())
    } else {
        Value::Real(r)
    })
}

/// Compact JSON with its top level laid out as PostgreSQL's json builders write it:
/// `", "` between elements and `colon` (`" : "` for objects) between key and value.
fn json_layout(json: &str, colon: &str) -> String {
    let mut out = String::with_capacity(json.len() + 16);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                depth += 1;
                out.push(c);
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                out.push(c);
            }
            ',' if depth == 1 => out.push_str(", "),
            ':' if depth == 1 && !colon.is_empty() => out.push_str(colon),
            _ => out.push(c),
        }
    }
    out
}

/// PostgreSQL's substring by character positions: the characters from `start` (1-based)
/// for `len`, where positions before the first character count but yield nothing.
fn pg_substr(text: &str, start: i64, len: Option<i64>) -> String {
    let end = len.map(|l| start.saturating_add(l));
    let from = start.max(1);
    let take = match end {
        Some(e) if e <= from => return String::new(),
        Some(e) => (e - from) as usize,
        None => usize::MAX,
    };
    text.chars().skip((from - 1) as usize).take(take).collect()
}

fn user_err(e: values::ValueError) -> rusqlite::Error {
    // The SQLSTATE travels in the message; errors.rs takes it back out.
    rusqlite::Error::UserFunctionError(format!("[{}] {}", e.code, e.message).into())
}

/// `pg_coerce(value, type oid, typmod)`: casts and writes, converting as PostgreSQL's
/// input functions do; text without an offset cast to timestamptz is read in the session's
/// zone (UTC on connections without a session).
fn register_coerce(conn: &Connection, zone: Option<SessionZone>) -> rusqlite::Result<()> {
    // Not deterministic under a session: the zone may change between statements.
    let flags = if zone.is_some() {
        FunctionFlags::SQLITE_UTF8
    } else {
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC
    };
    if zone.is_none() {
        // The same casts, for index expressions: CREATE INDEX uses it only where neither
        // the value nor the target type depends on the time zone (SQLite refuses a
        // function not marked deterministic in an index).
        conn.create_scalar_function("pg_coerce_immutable", 3, flags, |ctx| {
            let (ty, typmod) = coerce_target(ctx)?;
            values::coerce(ctx.get_raw(0), ty, typmod).map_err(user_err)
        })?;
    }
    conn.create_scalar_function("pg_coerce", 3, flags, move |ctx| {
        let (ty, typmod) = coerce_target(ctx)?;
        match &zone {
            Some(z) => values::coerce_in(ctx.get_raw(0), ty, typmod, &z.get()),
            None => values::coerce(ctx.get_raw(0), ty, typmod),
        }
        .map_err(user_err)
    })
}

/// A cast's target type and type modifier (its second and third arguments).
fn coerce_target(ctx: &rusqlite::functions::Context<'_>) -> rusqlite::Result<(PgType, i32)> {
    let oid: i64 = ctx.get(1)?;
    let typmod: i64 = ctx.get(2)?;
    let ty = PgType::from_oid(oid as u32).ok_or_else(|| {
        rusqlite::Error::UserFunctionError(
            format!("[42704] type with OID {oid} does not exist").into(),
        )
    })?;
    Ok((ty, typmod as i32))
}

/// Replaces `pg_coerce` on a session's connection with one that reads its time zone.
pub fn register_session_coerce(conn: &Connection, zone: SessionZone) -> rusqlite::Result<()> {
    register_coerce(conn, Some(zone))
}

pub(super) fn register(
    conn: &Connection,
    ident: &SessionIdent,
    sequences: Arc<Mutex<Sequences>>,
) -> rusqlite::Result<()> {
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let volatile = FunctionFlags::SQLITE_UTF8;
    register_coerce(conn, None)?;
    crate::numeric::sql::register(conn)?;
    super::float_agg::register(conn)?;
    super::single_row::register(conn)?;
    crate::json::sql::register(conn)?;
    crate::datetime::sql::register(conn, SessionZone::default())?;
    conn.create_scalar_function("pg_now", 0, volatile, |_| Ok(values::now_text()))?;
    conn.create_scalar_function("pg_current_date", 0, volatile, |_| Ok(values::today_text()))?;
    // A session replaces pg_now and pg_current_date with its transaction's time and these
    // with its statement's (session/clock.rs).
    conn.create_scalar_function("pg_statement_timestamp", 0, volatile, |_| {
        Ok(values::now_text())
    })?;
    conn.create_scalar_function(
        "pg_clock_timestamp",
        0,
        volatile,
        |_| Ok(values::now_text()),
    )?;
    conn.create_scalar_function("pg_random", 0, volatile, |_| Ok(rand::random::<f64>()))?;
    // Integer arithmetic as PostgreSQL does it (sql_capture's typed rewrites emit these).
    for (name, width) in [("pg_int2", 16), ("pg_int4", 32), ("pg_int8", 64)] {
        conn.create_scalar_function(name, 3, det, move |ctx| {
            let (Some(a), Some(b)) = (int_arg(ctx.get_raw(1))?, int_arg(ctx.get_raw(2))?) else {
                return Ok(None);
            };
            let op = match ctx.get_raw(0) {
                ValueRef::Text(op) => op,
                _ => b"",
            };
            integer_op(op, a, b, width).map(Some).map_err(sqlstate_err)
        })?;
    }
    // Float arithmetic as PostgreSQL checks it (typed.rs emits these).
    for (name, single) in [("pg_float4", true), ("pg_float8", false)] {
        conn.create_scalar_function(name, 3, det, move |ctx| {
            let (Some(a), Some(b)) = (float_arg(ctx.get_raw(1))?, float_arg(ctx.get_raw(2))?)
            else {
                return Ok(Value::Null);
            };
            let op = match ctx.get_raw(0) {
                ValueRef::Text(op) => op,
                _ => b"",
            };
            float_op(op, a, b, single).map_err(sqlstate_err)
        })?;
    }
    register_sequence_functions(conn, sequences)?;
    // `text ~ pattern` (PostgreSQL's POSIX regular expressions; the regex crate's syntax
    // covers what applications use). The compiled pattern is cached per statement.
    conn.create_scalar_function("pg_regex", 3, det, |ctx| {
        if ctx.get_raw(0) == ValueRef::Null || ctx.get_raw(1) == ValueRef::Null {
            return Ok(Value::Null);
        }
        let flags: String = ctx.get(2)?;
        let re = ctx.get_or_create_aux(
            1,
            |v| -> Result<regex::Regex, Box<dyn std::error::Error + Send + Sync>> {
                let pat = v.as_str().map_err(|e| format!("[22023] {e}"))?;
                regex::RegexBuilder::new(pat)
                    .case_insensitive(flags.contains('i'))
                    .build()
                    .map_err(|e| format!("[2201B] invalid regular expression: {e}").into())
            },
        )?;
        let text: String = match ctx.get_raw(0) {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            other => values::coerce(other, PgType::Text, -1)
                .ok()
                .and_then(|v| match v {
                    Value::Text(t) => Some(t),
                    _ => None,
                })
                .unwrap_or_default(),
        };
        Ok(Value::Integer(re.is_match(&text) as i64))
    })?;
    // `substring(s FROM start FOR len)` / `substr`: PostgreSQL's character positions.
    for n in [2, 3] {
        conn.create_scalar_function("pg_substr", n, det, move |ctx| {
            let text = match ctx.get_raw(0) {
                ValueRef::Null => return Ok(None),
                ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Integer(i) => i.to_string(),
                ValueRef::Real(f) => values::format_float(f),
            };
            let Some(start) = ctx.get::<Option<i64>>(1)? else {
                return Ok(None);
            };
            let len = if n == 3 {
                match ctx.get::<Option<i64>>(2)? {
                    Some(l) if l < 0 => {
                        return Err(rusqlite::Error::UserFunctionError(
                            "[22011] negative substring length not allowed".into(),
                        ))
                    }
                    Some(l) => Some(l),
                    None => return Ok(None),
                }
            } else {
                None
            };
            Ok(Some(pg_substr(&text, start, len)))
        })?;
    }
    conn.create_scalar_function("pg_substring_regex", 2, det, |ctx| {
        if ctx.get_raw(0) == ValueRef::Null || ctx.get_raw(1) == ValueRef::Null {
            return Ok(None);
        }
        let re = ctx.get_or_create_aux(
            1,
            |v| -> Result<regex::Regex, Box<dyn std::error::Error + Send + Sync>> {
                let pat = v.as_str().map_err(|e| format!("[22023] {e}"))?;
                regex::Regex::new(pat)
                    .map_err(|e| format!("[2201B] invalid regular expression: {e}").into())
            },
        )?;
        let text: String = ctx.get(0)?;
        Ok(re.captures(&text).and_then(|c| {
            // The first parenthesised group if the pattern has one, else the whole match.
            if c.len() > 1 {
                c.get(1).map(|m| m.as_str().to_string())
            } else {
                c.get(0).map(|m| m.as_str().to_string())
            }
        }))
    })?;
    // Version 4 (random) UUIDs: pgcrypto's and uuid-ossp's names for them.
    for name in ["gen_random_uuid", "uuid_generate_v4"] {
        conn.create_scalar_function(name, 0, volatile, |_| {
            let mut b: [u8; 16] = rand::random();
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            Ok(uuid::Uuid::from_bytes(b).to_string())
        })?;
    }
    // pg_sleep(seconds): sleeps in short steps so that a cancel request (which interrupts
    // the connection) ends it, as PostgreSQL's does.
    conn.create_scalar_function("pg_sleep", 1, volatile, |ctx| {
        let secs = match ctx.get_raw(0) {
            ValueRef::Null => return Ok(None::<String>),
            ValueRef::Integer(i) => i as f64,
            ValueRef::Real(f) => f,
            ValueRef::Text(t) => std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .ok_or_else(|| {
                    rusqlite::Error::UserFunctionError(
                        "[22P02] invalid input syntax for type double precision".into(),
                    )
                })?,
            ValueRef::Blob(_) => 0.0,
        };
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_secs_f64(secs.clamp(0.0, 1e7));
        // SAFETY: the connection outlives the call of its own function.
        let db = unsafe { ctx.get_connection() }?;
        loop {
            // SAFETY: a valid handle of the connection running this function.
            if unsafe { rusqlite::ffi::sqlite3_is_interrupted(db.handle()) } != 0 {
                return Err(rusqlite::Error::UserFunctionError(
                    "[57014] canceling statement due to user request".into(),
                ));
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Ok(Some(String::new()));
            }
            std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(10)));
        }
    })?;
    // What translation could not type: refused rather than guessed from SQLite's storage.
    conn.create_scalar_function("pg_typeof", 1, det, |_| -> rusqlite::Result<String> {
        Err(rusqlite::Error::UserFunctionError(
            "[0A000] pg_typeof of an expression whose type mdbc does not infer is not supported"
                .into(),
        ))
    })?;
    conn.create_scalar_function("pg_json_layout", 2, det, |ctx| {
        let Some(json) = ctx.get::<Option<String>>(0)? else {
            return Ok(None);
        };
        let colon: String = ctx.get(1)?;
        Ok(Some(json_layout(&json, &colon)))
    })?;
    // A NULL bound for an integer key column (see sql_capture's INSERT rewrite).
    conn.create_scalar_function("pg_not_null", 3, det, |ctx| {
        let v: rusqlite::types::Value = ctx.get(0)?;
        if v == rusqlite::types::Value::Null {
            let table: String = ctx.get(1)?;
            let column: String = ctx.get(2)?;
            return Err(rusqlite::Error::UserFunctionError(
                format!("[23502] null value in column \"{column}\" of relation \"{table}\" violates not-null constraint").into(),
            ));
        }
        Ok(v)
    })?;
    // generate_series's step, refused when zero as PostgreSQL refuses it.
    conn.create_scalar_function("pg_series_step", 1, det, |ctx| {
        let step = int_arg(ctx.get_raw(0))?;
        if step == Some(0) {
            return Err(rusqlite::Error::UserFunctionError(
                "[22023] step size cannot equal zero".into(),
            ));
        }
        Ok(step)
    })?;
    // An error translation found in a type check (`date + unknown` is not unique, 42725),
    // raised when the statement runs.
    conn.create_scalar_function("pg_error", 2, det, |ctx| -> rusqlite::Result<i64> {
        let code: String = ctx.get(0)?;
        let message: String = ctx.get(1)?;
        Err(rusqlite::Error::UserFunctionError(
            format!("[{code}] {message}").into(),
        ))
    })?;
    register_catalog_functions(conn, &ident.user, &ident.database)?;
    crate::sqlfuncs::register(conn)?;
    crate::text_funcs::register(conn)?;
    let pid = ident.pid;
    conn.create_scalar_function("pg_backend_pid", 0, det, move |_| Ok(pid))?;
    // PostgreSQL's greatest/least skip NULLs; SQLite's max/min of several values do not.
    for (name, pick_max) in [("greatest", true), ("least", false)] {
        conn.create_scalar_function(name, -1, det, move |ctx| {
            let mut best: Option<Value> = None;
            for i in 0..ctx.len() {
                let v: Value = ctx.get(i)?;
                if v == Value::Null {
                    continue;
                }
                best = Some(match best {
                    None => v,
                    Some(b) => {
                        let better = match (&v, &b) {
                            (Value::Integer(a), Value::Integer(c)) => (a > c) == pick_max,
                            (Value::Real(a), Value::Real(c)) => (a > c) == pick_max,
                            (Value::Integer(a), Value::Real(c)) => ((*a as f64) > *c) == pick_max,
                            (Value::Real(a), Value::Integer(c)) => (*a > *c as f64) == pick_max,
                            (Value::Text(a), Value::Text(c)) => (a > c) == pick_max,
                            _ => false,
                        };
                        if better {
                            v
                        } else {
                            b
                        }
                    }
                });
            }
            Ok(best.unwrap_or(Value::Null))
        })?;
    }
    Ok(())
}

/// Functions the pg_catalog views and catalog queries call (see `pg_catalog.rs`); they
/// What a session's `currval` and `lastval` read: the value its own last `nextval` (or
/// `setval`) of each sequence gave.
#[derive(Default)]
struct SessionSequences {
    current: std::collections::HashMap<String, i64>,
    /// The sequence the last nextval drew from: lastval reads its current value (which a
    /// later setval of it changes, as in PostgreSQL).
    last: Option<String>,
}

/// A sequence name as `nextval('…')` reads it: quotes and a `public.` qualifier dropped,
/// unquoted names folded.
fn sequence_name(v: ValueRef<'_>, function: &str) -> rusqlite::Result<String> {
    let ValueRef::Text(t) = v else {
        return Err(rusqlite::Error::UserFunctionError(
            format!("[22023] {function} needs a sequence name").into(),
        ));
    };
    let name = String::from_utf8_lossy(t);
    let name = name.strip_prefix("public.").unwrap_or(&name);
    Ok(
        match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => name.to_ascii_lowercase(),
        },
    )
}

/// `nextval`, `currval`, `setval`, `lastval` over the store's sequences, with this
/// connection's session state for the last two.
pub(crate) fn register_sequence_functions(
    conn: &Connection,
    sequences: Arc<Mutex<Sequences>>,
) -> rusqlite::Result<()> {
    let volatile = FunctionFlags::SQLITE_UTF8;
    let session = Arc::new(Mutex::new(SessionSequences::default()));
    let undefined = |name: &str| {
        rusqlite::Error::UserFunctionError(
            format!("[42P01] relation \"{name}\" does not exist").into(),
        )
    };
    let (seqs, mine) = (sequences.clone(), session.clone());
    conn.create_scalar_function("pg_nextval", 1, volatile, move |ctx| {
        let name = sequence_name(ctx.get_raw(0), "nextval")?;
        let next = seqs.lock().unwrap_or_else(|e| e.into_inner()).next(&name);
        let v = next
            .ok_or_else(|| undefined(&name))?
            .map_err(|(code, message)| {
                rusqlite::Error::UserFunctionError(format!("[{code}] {message}").into())
            })?;
        let mut mine = mine.lock().unwrap_or_else(|e| e.into_inner());
        mine.current.insert(name.clone(), v);
        mine.last = Some(name);
        Ok(v)
    })?;
    let (seqs, mine) = (sequences.clone(), session.clone());
    conn.create_scalar_function("pg_currval", 1, volatile, move |ctx| {
        let name = sequence_name(ctx.get_raw(0), "currval")?;
        if !seqs.lock().unwrap_or_else(|e| e.into_inner()).exists(&name) {
            return Err(undefined(&name));
        }
        let mine = mine.lock().unwrap_or_else(|e| e.into_inner());
        mine.current.get(&name).copied().ok_or_else(|| {
            rusqlite::Error::UserFunctionError(
                format!(
                    "[55000] currval of sequence \"{name}\" is not yet defined in this session"
                )
                .into(),
            )
        })
    })?;
    let seqs = sequences.clone();
    conn.create_scalar_function("pg_sequence_last_value", 1, volatile, move |ctx| {
        let name: String = ctx.get(0)?;
        Ok(seqs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_value(&name))
    })?;
    let mine = session.clone();
    conn.create_scalar_function("pg_lastval", 0, volatile, move |_| {
        let mine = mine.lock().unwrap_or_else(|e| e.into_inner());
        mine.last
            .as_ref()
            .and_then(|name| mine.current.get(name).copied())
            .ok_or_else(|| {
                rusqlite::Error::UserFunctionError(
                    "[55000] lastval is not yet defined in this session".into(),
                )
            })
    })?;
    conn.create_scalar_function("pg_setval", 3, volatile, move |ctx| {
        // Strict, as PostgreSQL's: a NULL argument gives NULL.
        if (0..3).any(|i| ctx.get_raw(i) == ValueRef::Null) {
            return Ok(None);
        }
        let name = sequence_name(ctx.get_raw(0), "setval")?;
        let value = int_arg(ctx.get_raw(1))?.unwrap_or_default();
        let is_called = int_arg(ctx.get_raw(2))?.unwrap_or(1) != 0;
        let set = sequences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set(&name, value, is_called);
        match set {
            None => Err(undefined(&name)),
            Some(Err(message)) => Err(rusqlite::Error::UserFunctionError(
                format!("[22003] {message}").into(),
            )),
            Some(Ok(())) => {
                // currval follows setval (lastval does not), as in PostgreSQL.
                if is_called {
                    let mut mine = session.lock().unwrap_or_else(|e| e.into_inner());
                    mine.current.insert(name, value);
                }
                Ok(Some(value))
            }
        }
    })?;
    Ok(())
}

/// need only the session's user and database.
pub fn register_catalog_functions(conn: &Connection, user: &str, db: &str) -> rusqlite::Result<()> {
    // A view's definition as PostgreSQL prints it is PostgreSQL's own deparsing of the
    // query (qualified columns, explicit casts, its layout), which mdbc does not
    // reproduce: refused rather than answered in another form.
    for arity in [1, 2] {
        conn.create_scalar_function(
            "pg_get_viewdef",
            arity,
            FunctionFlags::SQLITE_UTF8,
            |_| -> rusqlite::Result<String> {
                Err(rusqlite::Error::UserFunctionError(
                    "[0A000] pg_get_viewdef (a view's definition as PostgreSQL prints it) is not supported by mdbc".into(),
                ))
            },
        )?;
    }
    // A construct translation (or a catalog view's column) can only refuse when it runs
    // (its name in the argument).
    conn.create_scalar_function(
        "pg_unsupported",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| -> rusqlite::Result<i64> {
            let what: String = ctx.get(0)?;
            Err(rusqlite::Error::UserFunctionError(
                format!("[0A000] {what} is not supported by mdbc").into(),
            ))
        },
    )?;
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let version = version_string();
    conn.create_scalar_function("version", 0, det, move |_| Ok(version.clone()))?;
    let db = db.to_string();
    conn.create_scalar_function("current_database", 0, det, move |_| Ok(db.clone()))?;
    conn.create_scalar_function("current_schema", 0, det, |_| Ok("public"))?;
    let current = user.to_string();
    conn.create_scalar_function("current_user", 0, det, move |_| Ok(current.clone()))?;
    // Every object belongs to the session's user (pg_catalog.rs), except what PostgreSQL 15
    // gives pg_database_owner.
    let owner = user.to_string();
    conn.create_scalar_function("pg_get_userbyid", 1, det, move |ctx| {
        Ok(match ctx.get::<Option<i64>>(0)? {
            None => None,
            Some(6171) => Some("pg_database_owner".to_string()),
            Some(10) => Some(owner.clone()),
            Some(oid) => Some(format!("unknown (OID={oid})")),
        })
    })?;
    // One schema, every relation in it visible.
    conn.create_scalar_function("pg_table_is_visible", 1, det, |ctx| {
        Ok(ctx.get::<Option<i64>>(0)?.map(|_| 1i64))
    })?;
    conn.create_scalar_function("quote_ident", 1, det, |ctx| {
        Ok(ctx
            .get::<Option<String>>(0)?
            .map(|s| sql_capture::pg_quote_ident(&s)))
    })?;
    conn.create_scalar_function("quote_literal", 1, det, |ctx| {
        Ok(ctx
            .get::<Option<String>>(0)?
            .map(|s| crate::pg_format::quote_literal(&s)))
    })?;
    conn.create_scalar_function("format_type", 2, det, |ctx| {
        let Some(oid) = ctx.get::<Option<i64>>(0)? else {
            return Ok(None);
        };
        let typmod = ctx.get::<Option<i64>>(1)?.unwrap_or(-1) as i32;
        Ok(Some(match PgType::from_oid(oid as u32) {
            Some(t) => t.format_with_typmod(typmod),
            None => crate::pg_catalog::catalog_type_name(oid as u32)
                .unwrap_or("???")
                .to_string(),
        }))
    })?;
    conn.create_scalar_function("pg_encoding_to_char", 1, det, |ctx| {
        Ok(match ctx.get::<Option<i64>>(0)? {
            Some(6) => "UTF8",
            Some(0) => "SQL_ASCII",
            _ => "",
        })
    })?;
    // The catalogs keep expressions as PostgreSQL prints them, so deparsing is the identity.
    for n in [2, 3] {
        conn.create_scalar_function("pg_get_expr", n, det, |ctx| ctx.get::<Option<String>>(0))?;
    }
    // Databases and roles take no comments here (obj_description and col_description
    // read pg_description: sql-capture's introspect rewrites them).
    conn.create_scalar_function("shobj_description", 2, det, |_| Ok(None::<String>))?;
    // Every session may do everything to every table.
    for (name, n) in [
        ("has_table_privilege", 2),
        ("has_table_privilege", 3),
        ("has_schema_privilege", 2),
        ("has_schema_privilege", 3),
        ("has_database_privilege", 2),
        ("has_database_privilege", 3),
        ("has_sequence_privilege", 2),
        ("has_sequence_privilege", 3),
        ("has_column_privilege", 3),
        ("has_column_privilege", 4),
    ] {
        conn.create_scalar_function(name, n, det, |_| Ok(1i64))?;
    }
    // No partitions and no publications: a relation is its own only ancestor.
    conn.create_scalar_function("pg_partition_ancestors", 1, det, |ctx| ctx.get::<Value>(0))?;
    conn.create_scalar_function("pg_relation_is_publishable", 1, det, |_| Ok(0i64))?;
    conn.create_scalar_function("pg_get_statisticsobjdef_columns", 1, det, |_| {
        Ok(None::<String>)
    })?;
    conn.create_scalar_function("pg_get_triggerdef", -1, det, |_| Ok(None::<String>))?;
    for name in [
        "pg_type_is_visible",
        "pg_collation_is_visible",
        "pg_function_is_visible",
    ] {
        conn.create_scalar_function(name, 1, det, |ctx| {
            Ok(ctx.get::<Option<i64>>(0)?.map(|_| 1i64))
        })?;
    }
    // Arrays are JSON arrays (arrays.rs), flattened over every dimension; NULL elements
    // are skipped, or shown as the third argument when it is given (PostgreSQL's rules; a
    // NULL separator gives NULL).
    conn.create_scalar_function("array_to_string", -1, det, |ctx| {
        let Some(a) = ctx.get::<Option<String>>(0)? else {
            return Ok(None);
        };
        let Some(sep) = ctx.get::<Option<String>>(1)? else {
            return Ok(None);
        };
        let null_as = if ctx.len() > 2 {
            ctx.get::<Option<String>>(2)?
        } else {
            None
        };
        let items = match serde_json::from_str::<serde_json::Value>(&a) {
            Ok(serde_json::Value::Array(items)) => items,
            _ => {
                return Err(rusqlite::Error::UserFunctionError(
                    "[22P02] array_to_string needs an array".into(),
                ))
            }
        };
        fn flatten(v: &serde_json::Value, out: &mut Vec<Option<String>>) {
            match v {
                serde_json::Value::Array(items) => items.iter().for_each(|x| flatten(x, out)),
                serde_json::Value::Null => out.push(None),
                serde_json::Value::String(s) => out.push(Some(s.clone())),
                other => out.push(Some(other.to_string())),
            }
        }
        let mut flat = Vec::new();
        items.iter().for_each(|x| flatten(x, &mut flat));
        let parts: Vec<String> = flat
            .into_iter()
            .filter_map(|v| v.or_else(|| null_as.clone()))
            .collect();
        Ok(Some(parts.join(&sep)))
    })?;
    Ok(())
}

/// An integer operand of `pg_int2/4/8`: NULL is `None`; an untyped parameter bound as text
/// is read as PostgreSQL reads an integer literal.
fn int_arg(v: ValueRef<'_>) -> rusqlite::Result<Option<i64>> {
    match v {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(i) => Ok(Some(i)),
        ValueRef::Real(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => {
            Ok(Some(f as i64))
        }
        other => {
            let text = match other {
                ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Real(f) => f.to_string(),
                _ => String::new(),
            };
            text.trim().parse::<i64>().map(Some).map_err(|_| {
                sqlstate_err((
                    "22P02",
                    format!("invalid input syntax for type bigint: \"{text}\""),
                ))
            })
        }
    }
}

/// `a op b` in a `width`-bit integer type, or PostgreSQL's error: 22003 when the result
/// does not fit, 22012 on division by zero.
fn integer_op(op: &[u8], a: i64, b: i64, width: u32) -> Result<i64, (&'static str, String)> {
    let name = match width {
        16 => "smallint",
        32 => "integer",
        _ => "bigint",
    };
    let out_of_range = || ("22003", format!("{name} out of range"));
    let result = match op {
        b"+" => a.checked_add(b),
        b"-" => a.checked_sub(b),
        b"*" => a.checked_mul(b),
        b"/" | b"%" if b == 0 => return Err(("22012", "division by zero".into())),
        b"/" => a.checked_div(b),
        // PostgreSQL answers 0 where the quotient would overflow (MIN % -1).
        b"%" => Some(a.checked_rem(b).unwrap_or(0)),
        other => {
            return Err((
                "XX000",
                format!(
                    "unknown integer operator {}",
                    String::from_utf8_lossy(other)
                ),
            ))
        }
    }
    .ok_or_else(out_of_range)?;
    let fits = match width {
        16 => i16::try_from(result).is_ok(),
        32 => i32::try_from(result).is_ok(),
        _ => true,
    };
    if fits {
        Ok(result)
    } else {
        Err(out_of_range())
    }
}

fn sqlstate_err((code, message): (&'static str, String)) -> rusqlite::Error {
    // The SQLSTATE travels in the message; errors.rs takes it back out.
    rusqlite::Error::UserFunctionError(format!("[{code}] {message}").into())
}

#[cfg(test)]
mod tests {
    use super::integer_op;

    #[test]
    fn integer_arithmetic_is_postgres_s() {
        assert_eq!(integer_op(b"+", 2, 3, 32), Ok(5));
        assert_eq!(integer_op(b"/", -7, 2, 32), Ok(-3));
        assert_eq!(integer_op(b"%", -7, 2, 32), Ok(-1));
        assert_eq!(integer_op(b"%", i64::MIN, -1, 64), Ok(0));
        let code = |r: Result<i64, (&'static str, String)>| r.unwrap_err().0;
        assert_eq!(code(integer_op(b"+", i32::MAX as i64, 1, 32)), "22003");
        assert_eq!(code(integer_op(b"*", 200, 200, 16)), "22003");
        assert_eq!(code(integer_op(b"+", i64::MAX, 1, 64)), "22003");
        assert_eq!(code(integer_op(b"/", i64::MIN, -1, 64)), "22003");
        assert_eq!(code(integer_op(b"/", 1, 0, 32)), "22012");
        assert_eq!(code(integer_op(b"%", 1, 0, 16)), "22012");
    }
}
