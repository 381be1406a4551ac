//! What SQLite needs for dates, times and intervals: the `pg_interval` collation (intervals
//! ordered by their 30-day-month span), `pg_datetime(op, …)` that every date/time operator
//! and function is translated into, and the `pg_interval_sum` / `pg_interval_avg`
//! aggregates. Functions that depend on the session's time zone read it from the
//! [`SessionZone`] they were registered with.

use std::sync::{Arc, RwLock};

use rusqlite::functions::{Context, FunctionFlags, WindowAggregate};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use super::arith::{add_interval, age, subtract_timestamps};
use super::calendar::{
    check_date, check_ts, date2j, days_in_month, Moment, POSTGRES_EPOCH_JDATE, UNIX_TO_PG_SECS,
    USECS_PER_DAY, USECS_PER_HOUR, USECS_PER_MINUTE, USECS_PER_SEC,
};
use super::error::{DtError, DtResult};
use super::fields::{date_trunc, extract};
use super::fields::{date_trunc_interval, ExtractArg, Extracted, Source};
use super::input::parse_timestamp;
use super::input::{parse_date, parse_time};
use super::interval::Interval;
use super::output::{format_date, format_time, format_timestamp, format_timestamptz};
use super::style::DateCtx;
use super::to_char::{read, to_char, ToCharInput};
use super::zone::Zone;

/// The collation interval columns and expressions are declared with.
pub const INTERVAL_COLLATION: &str = sql_capture::INTERVAL_COLLATION;

/// The collation date, timestamp and timestamptz columns and expressions are declared with.
pub const DATETIME_COLLATION: &str = sql_capture::DATETIME_COLLATION;

/// A session's date/time settings (`TimeZone`, `DateStyle`, `IntervalStyle`, the
/// transaction's start), shared with the functions registered on its connection.
#[derive(Clone, Debug)]
pub struct SessionZone(Arc<RwLock<DateCtx>>);

impl Default for SessionZone {
    fn default() -> Self {
        SessionZone(Arc::new(RwLock::new(DateCtx::utc())))
    }
}

impl SessionZone {
    /// The settings now.
    pub fn get(&self) -> DateCtx {
        self.0
            .read()
            .map(|z| z.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Changes them.
    pub fn update(&self, f: impl FnOnce(&mut DateCtx)) {
        match self.0.write() {
            Ok(mut g) => f(&mut g),
            Err(e) => f(&mut e.into_inner()),
        }
    }

    /// Changes the zone.
    pub fn set(&self, z: Zone) {
        self.update(|c| c.zone = z)
    }
}

fn user_error(e: DtError) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(format!("[{}] {}", e.code, e.message).into())
}

/// Registers the collation, `pg_datetime` and the aggregates, reading `zone`.
pub fn register(conn: &Connection, zone: SessionZone) -> rusqlite::Result<()> {
    conn.create_collation(INTERVAL_COLLATION, compare_interval_text)?;
    conn.create_collation(DATETIME_COLLATION, compare_datetime_text)?;
    // Deterministic within a statement; the zone may change between statements, and SQLite
    // does not keep function results across them.
    let flags = FunctionFlags::SQLITE_UTF8;
    conn.create_scalar_function("pg_datetime", -1, flags, move |ctx| {
        call(ctx, &zone.get()).map_err(user_error)
    })?;
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_window_function("pg_interval_sum", 1, det, IntervalSum { avg: false })?;
    conn.create_window_function("pg_interval_avg", 1, det, IntervalSum { avg: true })?;
    Ok(())
}

/// Orders stored interval texts by their span (`1 mon` equals `30 days`).
pub fn compare_interval_text(a: &str, b: &str) -> std::cmp::Ordering {
    if a == b {
        return std::cmp::Ordering::Equal;
    }
    match (Interval::parse(a), Interval::parse(b)) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        // Unparseable text (never written by mdbc) sorts after intervals, by its bytes.
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Orders stored date, timestamp and timestamptz texts by their instant. Texts of years
/// 1000 to 9999 AD (nearly all) compare as bytes; BC dates, other years and the
/// infinities are parsed.
pub fn compare_datetime_text(a: &str, b: &str) -> std::cmp::Ordering {
    let plain = |t: &str| {
        let b = t.as_bytes();
        b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && !t.ends_with("BC")
    };
    if plain(a) && plain(b) {
        return a.cmp(b);
    }
    let utc = DateCtx::utc();
    let value = |t: &str| super::input::parse_timestamp(t, true, &utc).ok();
    match (value(a), value(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn text_of(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
    }
}

fn float_of(v: ValueRef<'_>) -> DtResult<Option<f64>> {
    Ok(match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) => Some(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let s = String::from_utf8_lossy(t);
            Some(s.trim().parse::<f64>().map_err(|_| {
                DtError::new(
                    "22P02",
                    format!("invalid input syntax for type double precision: \"{s}\""),
                )
            })?)
        }
    })
}

/// A typed argument read from its stored text.
#[derive(Debug, Clone, Copy)]
enum Arg {
    Date(Moment<i32>),
    Time(i64),
    Ts(Moment<i64>),
    Tz(Moment<i64>),
    Iv(Interval),
}

fn arg(kind: &str, text: &str, zone: &DateCtx) -> DtResult<Arg> {
    Ok(match kind {
        "date" => Arg::Date(parse_date(text, zone)?),
        "time" => Arg::Time(parse_time(text, zone)?),
        "timestamp" => Arg::Ts(parse_timestamp(text, false, zone)?),
        "timestamptz" => Arg::Tz(parse_timestamp(text, true, zone)?),
        "interval" => Arg::Iv(Interval::parse(text)?),
        _ => {
            return Err(DtError::new(
                "XX000",
                format!("pg_datetime: unknown type {kind}"),
            ))
        }
    })
}

fn ts_text(t: Moment<i64>) -> Value {
    Value::Text(format_timestamp(t))
}

fn tz_text(t: Moment<i64>) -> Value {
    Value::Text(format_timestamptz(t, &Zone::utc()))
}

fn iv_text(iv: Interval) -> Value {
    Value::Text(iv.format())
}

fn date_as_ts(d: Moment<i32>) -> Moment<i64> {
    match d {
        Moment::At(d) => Moment::At(d as i64 * USECS_PER_DAY),
        Moment::NegInf => Moment::NegInf,
        Moment::PosInf => Moment::PosInf,
    }
}

fn numeric_value(e: Extracted) -> Value {
    match e {
        Extracted::Value(n) => Value::Text(n.to_string()),
        Extracted::Infinite(neg) => Value::Text(if neg { "-Infinity" } else { "Infinity" }.into()),
        Extracted::Null => Value::Null,
    }
}

fn float_value(e: Extracted) -> Value {
    match e {
        Extracted::Value(n) => Value::Real(n.to_f64()),
        Extracted::Infinite(neg) => Value::Real(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
        Extracted::Null => Value::Null,
    }
}

fn local_of(a: Arg, zone: &DateCtx) -> Option<Moment<i64>> {
    match a {
        Arg::Ts(t) => Some(t),
        Arg::Tz(Moment::At(t)) => Some(Moment::At(zone.to_local(t))),
        Arg::Tz(inf) => Some(inf),
        Arg::Date(d) => Some(date_as_ts(d)),
        _ => None,
    }
}

/// `pg_datetime(op, …)`. The translation chose `op` from the operands' types; NULL in,
/// NULL out.
fn call(ctx: &Context<'_>, zone: &DateCtx) -> DtResult<Value> {
    let op = match ctx.get_raw(0) {
        ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or("").to_string(),
        _ => String::new(),
    };
    let n = ctx.len();
    let raw = |i: usize| {
        if i < n {
            ctx.get_raw(i)
        } else {
            ValueRef::Null
        }
    };
    let text = |i: usize| text_of(raw(i));
    // Operators: `pg_datetime('timestamp + interval', a, b)` and the like.
    if let Some((l, rest)) = op.split_once(' ') {
        let (sym, r) = rest.split_once(' ').unwrap_or((rest, ""));
        return binary(l, sym, r, raw(1), raw(2), zone);
    }
    let all_null = (1..n).any(|i| matches!(raw(i), ValueRef::Null));
    match op.as_str() {
        "neg" => {
            let Some(a) = text(1) else {
                return Ok(Value::Null);
            };
            Ok(iv_text(Interval::parse(&a)?.negate()?))
        }
        "extract" | "date_part" => {
            // (op, unit, type, value)
            let (Some(unit), Some(kind), Some(v)) = (text(1), text(2), text(3)) else {
                return Ok(Value::Null);
            };
            let (source, x) = match arg(&kind, &v, zone)? {
                Arg::Date(d) => (Source::Date, ExtractArg::Date(d)),
                Arg::Time(t) => (Source::Time, ExtractArg::Micros(t)),
                Arg::Ts(t) => (Source::Timestamp, ExtractArg::Timestamp(t)),
                Arg::Tz(t) => (Source::Timestamptz, ExtractArg::Timestamp(t)),
                Arg::Iv(iv) => (Source::Interval, ExtractArg::Interval(iv)),
            };
            // date_part of a date reads it as a timestamp (as PostgreSQL casts it).
            let (source, x) = match (op.as_str(), source, x) {
                ("date_part", Source::Date, ExtractArg::Date(d)) => {
                    (Source::Timestamp, ExtractArg::Timestamp(date_as_ts(d)))
                }
                other => (other.1, other.2),
            };
            let e = extract(&unit, source, x, zone)?;
            Ok(if op == "extract" {
                numeric_value(e)
            } else {
                float_value(e)
            })
        }
        "date_trunc" => {
            // (op, unit, type, value [, zone])
            let (Some(unit), Some(kind), Some(v)) = (text(1), text(2), text(3)) else {
                return Ok(Value::Null);
            };
            let z = match text(4) {
                Some(name) => Some(zone_named(&name)?),
                None if n > 4 => return Ok(Value::Null),
                None => None,
            };
            match arg(&kind, &v, zone)? {
                Arg::Ts(t) => Ok(ts_text(date_trunc(&unit, t, None)?)),
                Arg::Date(d) => Ok(tz_text(date_trunc(
                    &unit,
                    Moment::At(match date_as_ts(d) {
                        Moment::At(t) => zone.to_utc(t),
                        _ => return Ok(Value::Text(format_date(d))),
                    }),
                    Some(zone),
                )?)),
                Arg::Tz(t) => Ok(tz_text(date_trunc(
                    &unit,
                    t,
                    Some(z.as_ref().unwrap_or(zone)),
                )?)),
                Arg::Iv(iv) => Ok(iv_text(date_trunc_interval(&unit, iv)?)),
                Arg::Time(_) => Err(DtError::new(
                    "42883",
                    "function date_trunc(unknown, time without time zone) does not exist",
                )),
            }
        }
        "age" => {
            // (op, type, a [, b]); one argument: from midnight today.
            let Some(kind) = text(1) else {
                return Ok(Value::Null);
            };
            if all_null {
                return Ok(Value::Null);
            }
            let a = local_of(arg(&kind, &text(2).unwrap_or_default(), zone)?, zone);
            let b = match text(3) {
                Some(b) => local_of(arg(&kind, &b, zone)?, zone),
                None => {
                    let today = zone
                        .to_local(super::calendar::now())
                        .div_euclid(USECS_PER_DAY);
                    let b = a;
                    return Ok(iv_text(age(
                        Moment::At(today * USECS_PER_DAY),
                        b.unwrap_or(Moment::At(0)),
                    )?));
                }
            };
            match (a, b) {
                (Some(a), Some(b)) => Ok(iv_text(age(a, b)?)),
                _ => Err(DtError::new(
                    "42883",
                    "function age does not exist for these types",
                )),
            }
        }
        "justify_hours" | "justify_days" | "justify_interval" => {
            let Some(a) = text(1) else {
                return Ok(Value::Null);
            };
            let iv = Interval::parse(&a)?;
            Ok(iv_text(match op.as_str() {
                "justify_hours" => iv.justify_hours()?,
                "justify_days" => iv.justify_days()?,
                _ => iv.justify_interval()?,
            }))
        }
        "make_interval" => {
            // years, months, weeks, days, hours, mins, secs
            if all_null {
                return Ok(Value::Null);
            }
            let i = |k: usize| -> DtResult<i64> { Ok(float_of(raw(k))?.unwrap_or(0.0) as i64) };
            let secs = float_of(raw(7))?.unwrap_or(0.0);
            let range = || DtError::range("interval");
            let months = i32::try_from(i(1)? * 12 + i(2)?).map_err(|_| range())?;
            let days = i32::try_from(i(3)? * 7 + i(4)?).map_err(|_| range())?;
            let (hours, mins) = (i(5)?, i(6)?);
            let micros = hours
                .checked_mul(USECS_PER_HOUR)
                .and_then(|h| h.checked_add(mins.checked_mul(USECS_PER_MINUTE)?))
                .and_then(|m| m.checked_add((secs * 1e6).round_ties_even() as i64))
                .ok_or_else(range)?;
            Ok(iv_text(Interval::new(months, days, micros)))
        }
        "make_date" | "make_timestamp" | "make_timestamptz" | "make_time" => {
            if all_null {
                return Ok(Value::Null);
            }
            let i = |k: usize| -> DtResult<i64> { Ok(float_of(raw(k))?.unwrap_or(0.0) as i64) };
            let (date_args, time_from) = match op.as_str() {
                "make_time" => (false, 1),
                "make_date" => (true, 4),
                _ => (true, 4),
            };
            let (y, m, d) = if date_args {
                (i(1)?, i(2)?, i(3)?)
            } else {
                (2000, 1, 1)
            };
            let out_of_range = || {
                DtError::new(
                    "22008",
                    format!("date field value out of range: {y}-{m:02}-{d:02}"),
                )
            };
            // A negative year is BC (year 0 is 1 BC in the calendar arithmetic).
            let astro = if y < 0 { y + 1 } else { y };
            if y == 0
                || !(1..=12).contains(&m)
                || d < 1
                || d > days_in_month(astro as i32, m as i32) as i64
            {
                return Err(out_of_range());
            }
            let y = astro;
            let days = date2j(y as i32, m as i32, d as i32) - POSTGRES_EPOCH_JDATE;
            if op == "make_date" {
                return Ok(Value::Text(format_date(Moment::At(check_date(days)?))));
            }
            let (h, mi) = (i(time_from)?, i(time_from + 1)?);
            let sec = float_of(raw(time_from + 2))?.unwrap_or(0.0);
            if !(0..=24).contains(&h)
                || !(0..=59).contains(&mi)
                || !(0.0..60.0).contains(&sec)
                || (h == 24 && (mi > 0 || sec > 0.0))
            {
                return Err(DtError::new(
                    "22008",
                    format!("time field value out of range: {h}:{mi:02}:{sec:02}"),
                ));
            }
            let time =
                h * USECS_PER_HOUR + mi * USECS_PER_MINUTE + (sec * 1e6).round_ties_even() as i64;
            if op == "make_time" {
                return Ok(Value::Text(format_time(time)));
            }
            let local = check_ts(days as i64 * USECS_PER_DAY + time)?;
            if op == "make_timestamp" {
                return Ok(ts_text(Moment::At(local)));
            }
            // A zone written as a number is an ISO offset here (east positive), as
            // PostgreSQL reads it in make_timestamptz.
            let z = match text(time_from + 3) {
                Some(name) if name.trim().starts_with(['+', '-']) => {
                    super::zone::input_zone(name.trim()).ok_or_else(|| {
                        DtError::new("22023", format!("time zone \"{name}\" not recognized"))
                    })?
                }
                Some(name) if name.trim().starts_with(|c: char| c.is_ascii_digit()) => {
                    return Err(DtError::new(
                        "22023",
                        format!(
                            "invalid input syntax for type numeric time zone: \"{name}\" \
                             (numeric time zones must have \"-\" or \"+\" as first character)"
                        ),
                    ))
                }
                Some(name) => zone_named(&name)?,
                None => zone.zone.clone(),
            };
            Ok(tz_text(Moment::At(check_ts(z.to_utc(local))?)))
        }
        "to_char" => {
            // (op, type, value, template)
            let (Some(kind), Some(v), Some(fmt)) = (text(1), text(2), text(3)) else {
                return Ok(Value::Null);
            };
            let input = match arg(&kind, &v, zone)? {
                Arg::Iv(iv) => ToCharInput::interval(iv),
                Arg::Tz(Moment::At(t)) => ToCharInput::timestamp(
                    zone.to_local(t),
                    Some((zone.offset_at(t), zone.abbreviation_at(t))),
                ),
                Arg::Ts(Moment::At(t)) => ToCharInput::timestamp(t, None),
                Arg::Date(Moment::At(d)) => ToCharInput::timestamp(d as i64 * USECS_PER_DAY, None),
                Arg::Time(t) => ToCharInput::timestamp(t, None),
                // to_char of an infinity is NULL.
                _ => return Ok(Value::Null),
            };
            Ok(Value::Text(to_char(&input, &fmt)))
        }
        "to_timestamp" | "to_date" => {
            let (Some(s), Some(fmt)) = (text(1), text(2)) else {
                return Ok(Value::Null);
            };
            let r = read(&s, &fmt)?;
            if op == "to_date" {
                let days = r.f.days();
                return Ok(Value::Text(format_date(Moment::At(check_date(days)?))));
            }
            let local = r.f.timestamp()?;
            let utc = match r.offset {
                Some(east) => local - east as i64 * USECS_PER_SEC,
                None => zone.to_utc(local),
            };
            Ok(tz_text(Moment::At(check_ts(utc)?)))
        }
        "to_timestamp_epoch" => {
            let Some(secs) = float_of(raw(1))? else {
                return Ok(Value::Null);
            };
            if secs.is_infinite() {
                return Ok(tz_text(if secs > 0.0 {
                    Moment::PosInf
                } else {
                    Moment::NegInf
                }));
            }
            if secs.is_nan() {
                return Err(DtError::new("22008", "timestamp cannot be NaN"));
            }
            let micros = (secs * 1e6).round_ties_even() - (UNIX_TO_PG_SECS as f64 * 1e6);
            if !(i64::MIN as f64..i64::MAX as f64).contains(&micros) {
                return Err(DtError::range("timestamp"));
            }
            Ok(tz_text(Moment::At(check_ts(micros as i64)?)))
        }
        "at_time_zone" | "at_time_zone_interval" => {
            // (op, type, value, zone): timestamp → timestamptz (the local time there),
            // timestamptz → timestamp (the wall clock there). The zone is a name, or an
            // interval (a fixed offset east).
            let (Some(kind), Some(v), Some(zname)) = (text(1), text(2), text(3)) else {
                return Ok(Value::Null);
            };
            let z = if op == "at_time_zone" {
                zone_named(&zname)?
            } else {
                let iv = Interval::parse(&zname)?;
                if iv.months != 0 || iv.days != 0 {
                    return Err(DtError::new(
                        "22023",
                        format!(
                            "interval time zone \"{}\" must not include months or days",
                            iv.format()
                        ),
                    ));
                }
                Zone::offset((iv.micros / USECS_PER_SEC) as i32)
            };
            match arg(&kind, &v, zone)? {
                Arg::Ts(Moment::At(t)) => Ok(tz_text(Moment::At(check_ts(z.to_utc(t))?))),
                Arg::Tz(Moment::At(t)) => Ok(ts_text(Moment::At(check_ts(z.to_local(t))?))),
                Arg::Ts(inf) => Ok(tz_text(inf)),
                Arg::Tz(inf) => Ok(ts_text(inf)),
                _ => Err(DtError::new(
                    "0A000",
                    "AT TIME ZONE on this type is not supported by mdbc",
                )),
            }
        }
        "local" => {
            // (op, target, timestamptz text): a timestamptz cast to timestamp, date or time
            // is its wall clock in the session zone.
            let (Some(target), Some(v)) = (text(1), text(2)) else {
                return Ok(Value::Null);
            };
            let t = parse_timestamp(&v, true, zone)?;
            let local = match t {
                Moment::At(t) => Moment::At(check_ts(zone.to_local(t))?),
                inf => inf,
            };
            Ok(match (target.as_str(), local) {
                ("timestamp", l) => ts_text(l),
                ("date", Moment::At(l)) => {
                    Value::Text(format_date(Moment::At(l.div_euclid(USECS_PER_DAY) as i32)))
                }
                ("date", Moment::PosInf) => Value::Text("infinity".into()),
                ("date", Moment::NegInf) => Value::Text("-infinity".into()),
                ("time", Moment::At(l)) => Value::Text(format_time(l.rem_euclid(USECS_PER_DAY))),
                _ => return Err(DtError::new("22008", "timestamp out of range")),
            })
        }
        "isfinite" => {
            let (Some(kind), Some(v)) = (text(1), text(2)) else {
                return Ok(Value::Null);
            };
            Ok(Value::Integer(match arg(&kind, &v, zone)? {
                Arg::Date(d) => matches!(d, Moment::At(_)),
                Arg::Ts(t) | Arg::Tz(t) => matches!(t, Moment::At(_)),
                _ => true,
            } as i64))
        }
        "series_start" | "series_next" => {
            // (op, kind, value, stop, step): the value (start) or the next one (value +
            // step), NULL once past stop; generate_series over timestamps.
            let (Some(kind), Some(v), Some(stop), Some(step)) =
                (text(1), text(2), text(3), text(4))
            else {
                return Ok(Value::Null);
            };
            let with_zone = kind == "timestamptz";
            let step = Interval::parse(&step)?;
            if step.span() == 0 {
                return Err(DtError::new("22023", "step size cannot equal zero"));
            }
            let value = parse_timestamp(&v, with_zone, zone)?;
            let stop = parse_timestamp(&stop, with_zone, zone)?;
            let value = if op == "series_next" {
                add_interval(value, step, with_zone.then_some(zone))?
            } else {
                value
            };
            let past = if step.span() > 0 {
                value > stop
            } else {
                value < stop
            };
            if past {
                return Ok(Value::Null);
            }
            Ok(if with_zone {
                tz_text(value)
            } else {
                ts_text(value)
            })
        }
        "date_bin" => {
            // (op, kind, stride, source, origin): the start of the stride-wide bin, counted
            // from origin, that holds source.
            let (Some(kind), Some(stride), Some(source), Some(origin)) =
                (text(1), text(2), text(3), text(4))
            else {
                return Ok(Value::Null);
            };
            let with_zone = kind == "timestamptz";
            let stride = Interval::parse(&stride)?;
            if stride.months != 0 {
                return Err(DtError::new(
                    "0A000",
                    "timestamps cannot be binned into intervals containing months or years",
                ));
            }
            let width = (stride.days as i64)
                .checked_mul(USECS_PER_DAY)
                .and_then(|d| d.checked_add(stride.micros))
                .ok_or_else(|| DtError::range("interval"))?;
            if width <= 0 {
                return Err(DtError::new("22023", "stride must be greater than zero"));
            }
            let Moment::At(origin) = parse_timestamp(&origin, with_zone, zone)? else {
                return Err(DtError::range("origin"));
            };
            let source = match parse_timestamp(&source, with_zone, zone)? {
                Moment::At(t) => t,
                inf => {
                    return Ok(if with_zone {
                        tz_text(inf)
                    } else {
                        ts_text(inf)
                    })
                }
            };
            let diff = source as i128 - origin as i128;
            let binned = origin as i128 + diff.div_euclid(width as i128) * width as i128;
            let t = i64::try_from(binned).map_err(|_| DtError::range("timestamp"))?;
            let t = Moment::At(check_ts(t)?);
            Ok(if with_zone { tz_text(t) } else { ts_text(t) })
        }
        "timezone_name" => Ok(Value::Text(zone.name())),
        "text" => {
            // (op, type, value): a timestamptz as text, in the session's zone.
            let (Some(_), Some(v)) = (text(1), text(2)) else {
                return Ok(Value::Null);
            };
            Ok(Value::Text(format_timestamptz(
                parse_timestamp(&v, true, zone)?,
                zone,
            )))
        }
        other => Err(DtError::new(
            "0A000",
            format!("date/time operation {other} is not supported by mdbc"),
        )),
    }
}

fn zone_named(name: &str) -> DtResult<Zone> {
    Zone::parse_at(name)
        .ok_or_else(|| DtError::new("22023", format!("time zone \"{name}\" not recognized")))
}

/// `a sym b` with `l` and `r` the operand types.
fn binary(
    l: &str,
    sym: &str,
    r: &str,
    a: ValueRef<'_>,
    b: ValueRef<'_>,
    zone: &DateCtx,
) -> DtResult<Value> {
    if matches!(a, ValueRef::Null) || matches!(b, ValueRef::Null) {
        return Ok(Value::Null);
    }
    let num = |v: ValueRef<'_>| -> DtResult<f64> { Ok(float_of(v)?.unwrap_or(0.0)) };
    let at = |kind: &str, v: ValueRef<'_>| -> DtResult<Arg> {
        arg(kind, &text_of(v).unwrap_or_default(), zone)
    };
    let undefined = || DtError::new("42883", format!("operator does not exist: {l} {sym} {r}"));
    let neg_if = |iv: Interval, minus: bool| -> DtResult<Interval> {
        if minus {
            iv.negate()
        } else {
            Ok(iv)
        }
    };
    Ok(match (l, sym, r) {
        ("date", "+" | "-", "number") | ("number", "+", "date") => {
            let (d, n) = if l == "date" { (a, b) } else { (b, a) };
            let Arg::Date(d) = at("date", d)? else {
                return Err(undefined());
            };
            let n = match n {
                ValueRef::Integer(i) => i,
                other => {
                    let f = float_of(other)?.unwrap_or(0.0);
                    if f.fract() != 0.0 {
                        return Err(undefined());
                    }
                    f as i64
                }
            };
            let n = if sym == "-" { -n } else { n };
            Value::Text(format_date(super::arith::date_add_days(d, n)?))
        }
        ("date", "-", "date") => {
            let (Arg::Date(x), Arg::Date(y)) = (at(l, a)?, at(r, b)?) else {
                return Err(undefined());
            };
            match (x, y) {
                (Moment::At(x), Moment::At(y)) => Value::Integer(x as i64 - y as i64),
                _ => return Err(DtError::new("22008", "cannot subtract infinite dates")),
            }
        }
        ("interval", "+" | "-", "interval") => {
            let (Arg::Iv(x), Arg::Iv(y)) = (at(l, a)?, at(r, b)?) else {
                return Err(undefined());
            };
            iv_text(if sym == "+" { x.plus(y)? } else { x.minus(y)? })
        }
        ("interval", "*", _) | (_, "*", "interval") => {
            let (iv, f) = if l == "interval" { (a, b) } else { (b, a) };
            let Arg::Iv(iv) = at("interval", iv)? else {
                return Err(undefined());
            };
            iv_text(iv.times(num(f)?)?)
        }
        ("interval", "/", _) => {
            let Arg::Iv(iv) = at("interval", a)? else {
                return Err(undefined());
            };
            iv_text(iv.divided(num(b)?)?)
        }
        ("timestamp" | "timestamptz" | "date", "+" | "-", "interval")
        | ("interval", "+", "timestamp" | "timestamptz" | "date") => {
            let (t_kind, t, iv) = if r == "interval" {
                (l, a, b)
            } else {
                (r, b, a)
            };
            let Arg::Iv(iv) = at("interval", iv)? else {
                return Err(undefined());
            };
            let iv = neg_if(iv, sym == "-")?;
            match at(t_kind, t)? {
                Arg::Ts(t) => ts_text(add_interval(t, iv, None)?),
                Arg::Date(d) => ts_text(add_interval(date_as_ts(d), iv, None)?),
                Arg::Tz(t) => tz_text(add_interval(t, iv, Some(zone))?),
                _ => return Err(undefined()),
            }
        }
        ("time", "+" | "-", "interval") | ("interval", "+", "time") => {
            let (t, iv) = if r == "interval" { (a, b) } else { (b, a) };
            let (Arg::Time(t), Arg::Iv(iv)) = (at("time", t)?, at("interval", iv)?) else {
                return Err(undefined());
            };
            let d = if sym == "-" { -iv.micros } else { iv.micros };
            Value::Text(format_time((t + d).rem_euclid(USECS_PER_DAY)))
        }
        ("time", "-", "time") => {
            let (Arg::Time(x), Arg::Time(y)) = (at(l, a)?, at(r, b)?) else {
                return Err(undefined());
            };
            iv_text(Interval::new(0, 0, x - y))
        }
        ("date", "+", "time") | ("time", "+", "date") => {
            let (d, t) = if l == "date" { (a, b) } else { (b, a) };
            let (Arg::Date(d), Arg::Time(t)) = (at("date", d)?, at("time", t)?) else {
                return Err(undefined());
            };
            match d {
                Moment::At(d) => ts_text(Moment::At(check_ts(d as i64 * USECS_PER_DAY + t)?)),
                inf => ts_text(date_as_ts(inf)),
            }
        }
        ("timestamp" | "timestamptz" | "date", "-", "timestamp" | "timestamptz" | "date") => {
            let x = match at(l, a)? {
                Arg::Ts(t) | Arg::Tz(t) => t,
                Arg::Date(d) => date_as_ts(d),
                _ => return Err(undefined()),
            };
            let y = match at(r, b)? {
                Arg::Ts(t) | Arg::Tz(t) => t,
                Arg::Date(d) => date_as_ts(d),
                _ => return Err(undefined()),
            };
            iv_text(subtract_timestamps(x, y)?)
        }
        _ => return Err(undefined()),
    })
}

/// `sum(interval)` and `avg(interval)`.
struct IntervalSum {
    avg: bool,
}

#[derive(Default)]
struct SumState {
    sum: Interval,
    count: i64,
}

impl rusqlite::functions::Aggregate<SumState, Value> for IntervalSum {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<SumState> {
        Ok(SumState::default())
    }
    fn step(&self, ctx: &mut Context<'_>, s: &mut SumState) -> rusqlite::Result<()> {
        if let Some(t) = text_of(ctx.get_raw(0)) {
            let iv = Interval::parse(&t).map_err(user_error)?;
            s.sum = s.sum.plus(iv).map_err(user_error)?;
            s.count += 1;
        }
        Ok(())
    }
    fn finalize(&self, _: &mut Context<'_>, s: Option<SumState>) -> rusqlite::Result<Value> {
        finish(self.avg, s.as_ref())
    }
}

fn finish(avg: bool, s: Option<&SumState>) -> rusqlite::Result<Value> {
    match s {
        Some(s) if s.count > 0 => {
            let v = if avg {
                s.sum.divided(s.count as f64).map_err(user_error)?
            } else {
                s.sum
            };
            Ok(iv_text(v))
        }
        _ => Ok(Value::Null),
    }
}

impl WindowAggregate<SumState, Value> for IntervalSum {
    fn value(&self, s: Option<&mut SumState>) -> rusqlite::Result<Value> {
        finish(self.avg, s.map(|s| &*s))
    }
    fn inverse(&self, ctx: &mut Context<'_>, s: &mut SumState) -> rusqlite::Result<()> {
        if let Some(t) = text_of(ctx.get_raw(0)) {
            let iv = Interval::parse(&t).map_err(user_error)?;
            s.sum = s.sum.minus(iv).map_err(user_error)?;
            s.count -= 1;
        }
        Ok(())
    }
}
