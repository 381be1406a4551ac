//! `extract` / `date_part` and `date_trunc` over dates, times, timestamps and intervals.

use num_bigint::BigInt;

use super::calendar::{
    check_ts, date2j, iso_year_week, j2date, j2day, Fields, Moment, POSTGRES_EPOCH_JDATE,
    UNIX_EPOCH_JDATE, USECS_PER_DAY, USECS_PER_HOUR, USECS_PER_MINUTE, USECS_PER_SEC,
};
use super::error::{DtError, DtResult};
use super::interval::Interval;
use super::zone::Zone;
use crate::numeric::Numeric;

/// What `extract` gives: a numeric (`date_part` converts it to float8), an infinity, or
/// NULL (a field that has no value at infinity).
#[derive(Debug, Clone, PartialEq)]
pub enum Extracted {
    /// A value.
    Value(Numeric),
    /// `Infinity` (false) or `-Infinity` (true).
    Infinite(bool),
    /// NULL.
    Null,
}

/// Which kind of value a field is extracted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timestamp`.
    Timestamp,
    /// `timestamptz` (fields in the session zone).
    Timestamptz,
    /// `interval`.
    Interval,
}

impl Source {
    fn type_name(self) -> &'static str {
        match self {
            Source::Date => "date",
            Source::Time => "time without time zone",
            Source::Timestamp => "timestamp without time zone",
            Source::Timestamptz => "timestamp with time zone",
            Source::Interval => "interval",
        }
    }
}

/// A unit name as PostgreSQL reads it (case, plurals and abbreviations folded).
pub(crate) fn unit_name(s: &str) -> Option<&'static str> {
    let l = s.trim().to_ascii_lowercase();
    Some(match l.as_str() {
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" | "useconds" | "usecond" => {
            "microseconds"
        }
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" | "mseconds" | "msecond" => {
            "milliseconds"
        }
        "second" | "seconds" | "s" | "sec" | "secs" => "second",
        "minute" | "minutes" | "m" | "min" | "mins" => "minute",
        "hour" | "hours" | "h" | "hr" | "hrs" => "hour",
        "day" | "days" | "d" => "day",
        "week" | "weeks" | "w" => "week",
        "month" | "months" | "mon" | "mons" => "month",
        "quarter" | "qtr" => "quarter",
        "year" | "years" | "y" | "yr" | "yrs" => "year",
        "decade" | "decades" | "dec" | "decs" => "decade",
        "century" | "centuries" | "c" | "cent" => "century",
        "millennium" | "millennia" | "mil" | "mils" => "millennium",
        "dow" => "dow",
        "doy" => "doy",
        "isodow" => "isodow",
        "isoyear" => "isoyear",
        "epoch" => "epoch",
        "julian" | "j" => "julian",
        "timezone" => "timezone",
        "timezone_h" | "timezone_hour" => "timezone_hour",
        "timezone_m" | "timezone_minute" => "timezone_minute",
        _ => return None,
    })
}

fn int(v: i64) -> Extracted {
    Extracted::Value(Numeric::from_i64(v))
}

fn scaled(v: i64, scale: u32) -> Extracted {
    Numeric::finite(BigInt::from(v), scale)
        .map(Extracted::Value)
        .unwrap_or(Extracted::Null)
}

/// Fields that depend only on the date.
fn date_fields(unit: &str, f: &Fields, days: i32) -> Option<Extracted> {
    let year = f.year as i64;
    Some(match unit {
        "day" => int(f.day as i64),
        "month" => int(f.month as i64),
        "quarter" => int((f.month as i64 - 1) / 3 + 1),
        // Calendar year 0 is 1 BC: PostgreSQL's fields count BC years negatively from -1.
        "year" => int(if year > 0 { year } else { year - 1 }),
        "decade" => int(if year >= 0 {
            year / 10
        } else {
            -((8 - (year - 1)) / 10)
        }),
        "century" => int(if year > 0 {
            (year + 99) / 100
        } else {
            -((99 - (year - 1)) / 100)
        }),
        "millennium" => int(if year > 0 {
            (year + 999) / 1000
        } else {
            -((999 - (year - 1)) / 1000)
        }),
        "week" => int(iso_year_week(f.year, f.month, f.day).1 as i64),
        "isoyear" => {
            let y = iso_year_week(f.year, f.month, f.day).0 as i64;
            int(if y > 0 { y } else { y - 1 })
        }
        "dow" => int(j2day(days + POSTGRES_EPOCH_JDATE) as i64),
        "isodow" => {
            let d = j2day(days + POSTGRES_EPOCH_JDATE) as i64;
            int(if d == 0 { 7 } else { d })
        }
        "doy" => int((days + POSTGRES_EPOCH_JDATE - date2j(f.year, 1, 1) + 1) as i64),
        _ => return None,
    })
}

/// Fields of the time of day.
fn time_fields(unit: &str, time: i64) -> Option<Extracted> {
    let in_minute = time % USECS_PER_MINUTE;
    Some(match unit {
        "microseconds" => int(in_minute),
        "milliseconds" => scaled(in_minute, 3),
        "second" => scaled(in_minute, 6),
        "minute" => int(time / USECS_PER_MINUTE % 60),
        "hour" => int(time / USECS_PER_HOUR),
        _ => return None,
    })
}

/// Whether a unit's value grows with time (its value at infinity is an infinity, not NULL).
fn monotonic(unit: &str) -> bool {
    matches!(
        unit,
        "year" | "decade" | "century" | "millennium" | "julian" | "isoyear" | "epoch"
    )
}

/// `extract(unit FROM value)`: `value` is days (date), microseconds (time, timestamp, or a
/// timestamptz's instant), or an interval, as `source` says.
pub fn extract(
    unit_text: &str,
    source: Source,
    value: ExtractArg,
    zone: &Zone,
) -> DtResult<Extracted> {
    let type_name = source.type_name();
    let unit = unit_name(unit_text).ok_or_else(|| DtError::unit(unit_text, type_name))?;
    let unsupported = || DtError::unit_unsupported(unit_text, type_name);
    match (source, value) {
        (Source::Interval, ExtractArg::Interval(iv)) => {
            interval_field(unit, iv).ok_or_else(unsupported)
        }
        (Source::Time, ExtractArg::Micros(t)) => match unit {
            "epoch" => Ok(scaled(t, 6)),
            _ => time_fields(unit, t).ok_or_else(unsupported),
        },
        (Source::Date, ExtractArg::Date(d)) => {
            let days = match d {
                Moment::At(d) => d,
                inf => {
                    return if time_fields(unit, 0).is_some()
                        || matches!(unit, "timezone" | "timezone_hour" | "timezone_minute")
                    {
                        Err(unsupported())
                    } else if monotonic(unit) {
                        Ok(Extracted::Infinite(inf == Moment::NegInf))
                    } else {
                        Ok(Extracted::Null)
                    };
                }
            };
            let f = Fields::of(days as i64 * USECS_PER_DAY);
            match unit {
                "epoch" => Ok(int((days as i64
                    + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) as i64)
                    * 86_400)),
                "julian" => Ok(int((days + POSTGRES_EPOCH_JDATE) as i64)),
                _ => date_fields(unit, &f, days).ok_or_else(unsupported),
            }
        }
        (Source::Timestamp | Source::Timestamptz, ExtractArg::Timestamp(t)) => {
            let with_zone = source == Source::Timestamptz;
            let utc = match t {
                Moment::At(t) => t,
                inf => {
                    let known = unit_known_for_timestamp(unit, with_zone);
                    return if !known {
                        Err(unsupported())
                    } else if monotonic(unit) {
                        Ok(Extracted::Infinite(inf == Moment::NegInf))
                    } else {
                        Ok(Extracted::Null)
                    };
                }
            };
            let east = if with_zone { zone.offset_at(utc) } else { 0 };
            let local = utc + east as i64 * USECS_PER_SEC;
            let days = local.div_euclid(USECS_PER_DAY) as i32;
            let time = local.rem_euclid(USECS_PER_DAY);
            let f = Fields::of(local);
            match unit {
                "epoch" => {
                    let unix =
                        (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) as i128 * USECS_PER_DAY as i128;
                    // A timestamp's epoch counts its fields as if they were UTC (wide: near
                    // the end of the range it passes i64's microseconds).
                    Ok(Numeric::finite(BigInt::from(utc as i128 + unix), 6)
                        .map(Extracted::Value)
                        .unwrap_or(Extracted::Null))
                }
                "julian" => {
                    let jd = Numeric::from_i64((days + POSTGRES_EPOCH_JDATE) as i64);
                    let frac = Numeric::from_i64(time)
                        .div(&Numeric::from_i64(USECS_PER_DAY))
                        .and_then(|q| jd.add(&q))
                        .map_err(|e| DtError::new(e.code(), e.to_string()))?;
                    Ok(Extracted::Value(frac))
                }
                "timezone" if with_zone => Ok(int(east as i64)),
                "timezone_hour" if with_zone => Ok(int(east as i64 / 3600)),
                "timezone_minute" if with_zone => Ok(int(east as i64 / 60 % 60)),
                _ => time_fields(unit, time)
                    .or_else(|| date_fields(unit, &f, days))
                    .ok_or_else(unsupported),
            }
        }
        _ => Err(unsupported()),
    }
}

fn unit_known_for_timestamp(unit: &str, with_zone: bool) -> bool {
    !matches!(unit, "timezone" | "timezone_hour" | "timezone_minute") || with_zone
}

/// A value `extract` reads.
#[derive(Debug, Clone, Copy)]
pub enum ExtractArg {
    /// A date.
    Date(Moment<i32>),
    /// A time of day in microseconds.
    Micros(i64),
    /// A timestamp (a timestamptz's UTC instant).
    Timestamp(Moment<i64>),
    /// An interval.
    Interval(Interval),
}

fn interval_field(unit: &str, iv: Interval) -> Option<Extracted> {
    let year = iv.months as i64 / 12;
    let t = iv.micros;
    Some(match unit {
        "microseconds" => int(t % USECS_PER_MINUTE),
        "milliseconds" => scaled(t % USECS_PER_MINUTE, 3),
        "second" => scaled(t % USECS_PER_MINUTE, 6),
        "minute" => int(t / USECS_PER_MINUTE % 60),
        "hour" => int(t / USECS_PER_HOUR),
        "day" => int(iv.days as i64),
        "month" => int(iv.months as i64 % 12),
        "quarter" => int(iv.months as i64 % 12 / 3 + 1),
        "year" => int(year),
        "decade" => int(year / 10),
        "century" => int(year / 100),
        "millennium" => int(year / 1000),
        "epoch" => {
            // A year counts 365.25 days, a month 30.
            let secs = year as i128 * 31_557_600
                + (iv.months as i128 % 12) * 2_592_000
                + iv.days as i128 * 86_400;
            let micros = secs * 1_000_000 + t as i128;
            Extracted::Value(Numeric::finite(BigInt::from(micros), 6).ok()?)
        }
        _ => return None,
    })
}

/// `date_trunc(unit, timestamp)`; for a timestamptz pass the zone the fields are cut in.
pub fn date_trunc(unit_text: &str, t: Moment<i64>, zone: Option<&Zone>) -> DtResult<Moment<i64>> {
    let type_name = if zone.is_some() {
        "timestamp with time zone"
    } else {
        "timestamp without time zone"
    };
    let unit = unit_name(unit_text).ok_or_else(|| DtError::unit(unit_text, type_name))?;
    let Moment::At(utc) = t else {
        return Ok(t);
    };
    let east = zone.map(|z| z.offset_at(utc)).unwrap_or(0);
    let local = utc + east as i64 * USECS_PER_SEC;
    let mut f = Fields::of(local);
    let mut by_date = true;
    match unit {
        "millennium" => {
            f.year = if f.year > 0 {
                (f.year + 999) / 1000 * 1000 - 999
            } else {
                -((999 - (f.year - 1)) / 1000) * 1000 + 1
            };
            f.month = 1;
            f.day = 1;
        }
        "century" => {
            f.year = if f.year > 0 {
                (f.year + 99) / 100 * 100 - 99
            } else {
                -((99 - (f.year - 1)) / 100) * 100 + 1
            };
            f.month = 1;
            f.day = 1;
        }
        "decade" => {
            f.year = if f.year > 0 {
                f.year / 10 * 10
            } else {
                -((8 - (f.year - 1)) / 10) * 10
            };
            f.month = 1;
            f.day = 1;
        }
        "year" => {
            f.month = 1;
            f.day = 1;
        }
        "quarter" => {
            f.month = (f.month - 1) / 3 * 3 + 1;
            f.day = 1;
        }
        "month" => f.day = 1,
        "week" => {
            let days = f.days();
            let dow = j2day(days + POSTGRES_EPOCH_JDATE);
            let monday = days - (dow + 6) % 7;
            let (y, m, d) = j2date(monday + POSTGRES_EPOCH_JDATE);
            f.year = y;
            f.month = m;
            f.day = d;
        }
        "day" => {}
        "hour" | "minute" | "second" | "milliseconds" | "microseconds" => by_date = false,
        _ => return Err(DtError::unit_unsupported(unit_text, type_name)),
    }
    if by_date {
        f.hour = 0;
    }
    if by_date || unit == "hour" {
        f.minute = 0;
    }
    if by_date || matches!(unit, "hour" | "minute") {
        f.second = 0;
    }
    match unit {
        "milliseconds" => f.micro = f.micro / 1000 * 1000,
        "microseconds" => {}
        _ => f.micro = 0,
    }
    let local = f.timestamp()?;
    Ok(Moment::At(match zone {
        Some(z) if by_date => z.to_utc(local),
        Some(_) => local - east as i64 * USECS_PER_SEC,
        None => local,
    }))
    .and_then(|m| match m {
        Moment::At(t) => check_ts(t).map(Moment::At),
        other => Ok(other),
    })
}

/// `date_trunc(unit, interval)`.
pub fn date_trunc_interval(unit_text: &str, iv: Interval) -> DtResult<Interval> {
    let unit = unit_name(unit_text).ok_or_else(|| DtError::unit(unit_text, "interval"))?;
    let mut r = iv;
    let year = iv.months / 12;
    let t = iv.micros;
    match unit {
        "millennium" => r = Interval::new(year / 1000 * 1000 * 12, 0, 0),
        "century" => r = Interval::new(year / 100 * 100 * 12, 0, 0),
        "decade" => r = Interval::new(year / 10 * 10 * 12, 0, 0),
        "year" => r = Interval::new(year * 12, 0, 0),
        "quarter" => r = Interval::new(year * 12 + iv.months % 12 / 3 * 3, 0, 0),
        "month" => r = Interval::new(iv.months, 0, 0),
        "day" => r.micros = 0,
        "hour" => r.micros = t / USECS_PER_HOUR * USECS_PER_HOUR,
        "minute" => r.micros = t / USECS_PER_MINUTE * USECS_PER_MINUTE,
        "second" => r.micros = t / USECS_PER_SEC * USECS_PER_SEC,
        "milliseconds" => r.micros = t / 1000 * 1000,
        "microseconds" => {}
        "week" => return Err(DtError::new(
            "0A000",
            "interval units \"week\" not supported because months usually have fractional weeks",
        )),
        _ => return Err(DtError::unit_unsupported(unit_text, "interval")),
    }
    Ok(r)
}
