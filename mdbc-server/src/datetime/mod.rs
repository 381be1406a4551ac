//! Dates, times, timestamps and intervals as PostgreSQL 15 computes them.
//!
//! Values keep PostgreSQL's own representation while they are computed: a date is days
//! from 2000-01-01, a timestamp microseconds from 2000-01-01 00:00 (UTC for timestamptz),
//! a time microseconds from midnight, an interval months, days and microseconds kept apart
//! (a month is not a fixed number of days, a day not always 24 hours). Calendar arithmetic
//! uses PostgreSQL's Julian-day algorithms, so month-end clamping, `age` and the field
//! rules come out as PostgreSQL's. In SQLite they are stored as the text PostgreSQL prints
//! (timestamptz in UTC with `+00`, BC dates with ` BC`), ordered by the `pg_datetime` and
//! `pg_interval` collations; the range is PostgreSQL's (4714 BC to 294276 AD).
//! Time zones come from the IANA database compiled into `chrono-tz`, so daylight-saving
//! rules do not depend on the host's files.

mod arith;
mod calendar;
mod error;
mod fields;
mod input;
mod interval;
mod output;
pub mod sql;
mod style;
mod to_char;
mod zone;

#[cfg(test)]
mod tests;

pub use arith::{add_interval, age, date_add_days, subtract_timestamps};
pub use error::DtError;
pub use fields::{date_trunc, extract, Extracted};
pub use input::{parse_date, parse_time, parse_timestamp, Parsed};
pub use interval::Interval;
pub use output::{format_date, format_time, format_timestamp, format_timestamptz};
pub use style::{DateCtx, DateOrder, IntervalStyle};
pub use zone::Zone;

pub use calendar::{
    check_date, check_ts, round_to_precision, Date, Fields, Moment, Timestamp, USECS_PER_DAY,
};

/// The current instant, microseconds from 2000-01-01 UTC.
pub fn now() -> i64 {
    calendar::now()
}

/// A UTC instant as mdbc stores a timestamptz (`… +00`).
pub fn stored_timestamptz(utc: i64) -> String {
    stored_timestamptz_of(Moment::At(utc))
}

/// A timestamptz (or an infinity) as mdbc stores it.
pub fn stored_timestamptz_of(t: Moment<i64>) -> String {
    format_timestamptz(t, &Zone::utc())
}
