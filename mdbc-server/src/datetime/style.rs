//! How a session reads and shows dates, times and intervals: its `TimeZone`, the field
//! order of `DateStyle` (`1/8/1999` is January 8 in MDY, August 1 in DMY), its
//! `IntervalStyle`, and the start of its transaction (what `'now'` reads as).

use super::zone::Zone;

/// The order of day, month and year in numeric date input (`DateStyle`'s second part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateOrder {
    /// Month, day, year (PostgreSQL's default).
    #[default]
    Mdy,
    /// Day, month, year.
    Dmy,
    /// Year, month, day.
    Ymd,
}

/// `IntervalStyle`: how intervals are printed (and, for `sql_standard`, how a leading
/// sign is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntervalStyle {
    /// `1 year 2 mons 3 days 04:05:06` (the default).
    #[default]
    Postgres,
    /// `@ 1 year 2 mons 3 days 4 hours 5 mins 6 secs`.
    PostgresVerbose,
    /// `+1-2 +3 +4:05:06`.
    SqlStandard,
    /// `P1Y2M3DT4H5M6S`.
    Iso8601,
}

impl IntervalStyle {
    /// The name SHOW gives it.
    pub fn name(self) -> &'static str {
        match self {
            IntervalStyle::Postgres => "postgres",
            IntervalStyle::PostgresVerbose => "postgres_verbose",
            IntervalStyle::SqlStandard => "sql_standard",
            IntervalStyle::Iso8601 => "iso_8601",
        }
    }

    /// The style a setting names.
    pub fn parse(s: &str) -> Option<IntervalStyle> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "postgres" => IntervalStyle::Postgres,
            "postgres_verbose" => IntervalStyle::PostgresVerbose,
            "sql_standard" => IntervalStyle::SqlStandard,
            "iso_8601" => IntervalStyle::Iso8601,
            _ => return None,
        })
    }
}

/// A session's date/time settings. It dereferences to its zone, which most computations
/// need alone.
#[derive(Debug, Clone, Default)]
pub struct DateCtx {
    /// `TimeZone`.
    pub zone: Zone,
    /// `DateStyle`'s field order.
    pub order: DateOrder,
    /// `IntervalStyle`.
    pub interval_style: IntervalStyle,
    /// `bytea_output = escape` (else hex). Not a date setting, but a value's text is
    /// written with this context, so every output style of the session lives here.
    pub bytea_escape: bool,
    /// `extra_float_digits` when 0 or below: floats are written with that many fewer
    /// significant digits than 15 (float8) or 6 (float4), as C's `%g`. `None` (1 to 3,
    /// the default 1) writes the shortest text that reads back exactly.
    pub float_digits: Option<i32>,
    /// The transaction's start, microseconds from 2000-01-01 UTC (`'now'`); the wall
    /// clock when unset.
    pub now: Option<i64>,
}

impl DateCtx {
    /// UTC, MDY, the postgres IntervalStyle, the wall clock: a connection without a
    /// session.
    pub fn utc() -> DateCtx {
        DateCtx::default()
    }

    /// `'now'`.
    pub fn now(&self) -> i64 {
        self.now.unwrap_or_else(super::calendar::now)
    }
}

impl std::ops::Deref for DateCtx {
    type Target = Zone;
    fn deref(&self) -> &Zone {
        &self.zone
    }
}
