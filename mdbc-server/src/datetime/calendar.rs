//! The calendar underneath: PostgreSQL's representation of dates and timestamps (days and
//! microseconds from 2000-01-01), its Julian-day conversions, calendar fields, and the
//! range mdbc keeps.

use super::error::{DtError, DtResult};

pub(crate) const USECS_PER_SEC: i64 = 1_000_000;
pub(crate) const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
pub(crate) const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
/// Microseconds in a day of 24 hours.
pub const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;
/// The Julian day of 2000-01-01, PostgreSQL's epoch.
pub(crate) const POSTGRES_EPOCH_JDATE: i32 = 2_451_545;
/// The Julian day of 1970-01-01.
pub(crate) const UNIX_EPOCH_JDATE: i32 = 2_440_588;
/// Seconds from 1970-01-01 to 2000-01-01.
pub(crate) const UNIX_TO_PG_SECS: i64 = (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) as i64 * 86_400;

/// A date or timestamp, or one of the infinities PostgreSQL has for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Moment<T> {
    /// `-infinity`.
    NegInf,
    /// A finite value.
    At(T),
    /// `infinity`.
    PosInf,
}

/// A date: days from 2000-01-01.
pub type Date = Moment<i32>;
/// A timestamp: microseconds from 2000-01-01 00:00 (in UTC for timestamptz).
pub type Timestamp = Moment<i64>;

/// The Julian day of a proleptic Gregorian date (PostgreSQL's `date2j`).
pub(crate) fn date2j(year: i32, month: i32, day: i32) -> i32 {
    let (mut y, mut m) = (year, month);
    if m > 2 {
        m += 1;
        y += 4800;
    } else {
        m += 13;
        y += 4799;
    }
    let century = y / 100;
    let mut julian = y * 365 - 32167;
    julian += y / 4 - century + century / 4;
    julian + 7834 * m / 256 + day
}

/// The date of a Julian day (PostgreSQL's `j2date`): year, month, day.
pub(crate) fn j2date(jd: i32) -> (i32, i32, i32) {
    let mut julian = (jd as u32).wrapping_add(32044);
    let mut quad = julian / 146_097;
    let extra = (julian - quad * 146_097) * 4 + 3;
    julian += 60 + quad * 3 + extra / 146_097;
    quad = julian / 1461;
    julian -= quad * 1461;
    let mut y = julian * 4 / 1461;
    julian = if y != 0 {
        (julian + 305) % 365
    } else {
        (julian + 306) % 366
    } + 123;
    y += quad * 4;
    let year = y as i32 - 4800;
    quad = julian * 2141 / 65536;
    let day = (julian - 7834 * quad / 256) as i32;
    let month = ((quad + 10) % 12 + 1) as i32;
    (year, month, day)
}

/// Day of the week of a Julian day, 0 = Sunday.
pub(crate) fn j2day(jd: i32) -> i32 {
    (jd + 1).rem_euclid(7)
}

/// The ISO 8601 year and week of a (proleptic Gregorian, astronomical) date, as
/// PostgreSQL's date2isoyear/date2isoweek compute them over the whole range it stores
/// (a week belongs to the year holding its Thursday; week 1 holds January 4th).
pub(crate) fn iso_year_week(year: i32, month: i32, day: i32) -> (i32, i32) {
    let dayn = date2j(year, month, day);
    // The Monday of ISO week 1 of `y`.
    let week1 = |y: i32| {
        let day4 = date2j(y, 1, 4);
        day4 - j2day(day4 - 1)
    };
    let mut iso_year = year;
    let mut start = week1(year);
    if dayn < start {
        iso_year = year - 1;
        start = week1(iso_year);
    }
    let mut week = (dayn - start) / 7 + 1;
    if week >= 52 {
        let next = week1(year + 1);
        if dayn >= next {
            iso_year = year + 1;
            week = (dayn - next) / 7 + 1;
        }
    }
    (iso_year, week)
}

/// The day of the ISO year (1 on its week 1's Monday).
pub(crate) fn iso_year_day(year: i32, month: i32, day: i32) -> i32 {
    let (iso_year, _) = iso_year_week(year, month, day);
    let day4 = date2j(iso_year, 1, 4);
    date2j(year, month, day) - (day4 - j2day(day4 - 1)) + 1
}

pub(crate) fn is_leap(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub(crate) fn days_in_month(year: i32, month: i32) -> i32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

/// A timestamp's calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fields {
    /// Year (1 = 1 AD).
    pub year: i32,
    /// Month, 1–12.
    pub month: i32,
    /// Day of month.
    pub day: i32,
    /// Hour, 0–23.
    pub hour: i32,
    /// Minute.
    pub minute: i32,
    /// Second.
    pub second: i32,
    /// Microseconds of the second.
    pub micro: i32,
}

impl Fields {
    /// The fields of microseconds from 2000-01-01.
    pub fn of(t: i64) -> Fields {
        let days = t.div_euclid(USECS_PER_DAY);
        let time = t.rem_euclid(USECS_PER_DAY);
        let (year, month, day) = j2date(days as i32 + POSTGRES_EPOCH_JDATE);
        let secs = time / USECS_PER_SEC;
        Fields {
            year,
            month,
            day,
            hour: (secs / 3600) as i32,
            minute: (secs / 60 % 60) as i32,
            second: (secs % 60) as i32,
            micro: (time % USECS_PER_SEC) as i32,
        }
    }

    /// Days from 2000-01-01 of the date part.
    pub fn days(&self) -> i32 {
        date2j(self.year, self.month, self.day) - POSTGRES_EPOCH_JDATE
    }

    /// Microseconds from midnight of the time part.
    pub fn time(&self) -> i64 {
        self.hour as i64 * USECS_PER_HOUR
            + self.minute as i64 * USECS_PER_MINUTE
            + self.second as i64 * USECS_PER_SEC
            + self.micro as i64
    }

    /// Microseconds from 2000-01-01, checked against the years mdbc keeps.
    pub fn timestamp(&self) -> DtResult<i64> {
        let t = self.days() as i64 * USECS_PER_DAY + self.time();
        check_ts(t)
    }
}

/// PostgreSQL's timestamp range: from 4714-11-24 BC (Julian day 0) up to, not including,
/// 294277-01-01.
pub(crate) fn ts_bounds() -> (i64, i64) {
    let lo = -(POSTGRES_EPOCH_JDATE as i64) * USECS_PER_DAY;
    let hi = (date2j(294_277, 1, 1) - POSTGRES_EPOCH_JDATE) as i64 * USECS_PER_DAY - 1;
    (lo, hi)
}

/// `t` if it lies in PostgreSQL's timestamp range, else 22008.
pub fn check_ts(t: i64) -> DtResult<i64> {
    let (lo, hi) = ts_bounds();
    if (lo..=hi).contains(&t) {
        Ok(t)
    } else {
        Err(DtError::range("timestamp"))
    }
}

/// `d` (days from 2000-01-01) if it lies in PostgreSQL's date range (Julian day 0 to
/// 5874897-12-31), else 22008.
pub fn check_date(d: i32) -> DtResult<i32> {
    let jd = d as i64 + POSTGRES_EPOCH_JDATE as i64;
    if (0..=2_147_483_493).contains(&jd) {
        Ok(d)
    } else {
        Err(DtError::range("date"))
    }
}

/// Microseconds rounded to `precision` fractional digits of a second (half away from
/// zero), as a `timestamp(p)`, `time(p)` or `interval(p)` keeps them.
pub fn round_to_precision(micros: i64, precision: i32) -> i64 {
    if !(0..6).contains(&precision) {
        return micros;
    }
    let scale = 10i64.pow(6 - precision as u32);
    let half = scale / 2;
    if micros >= 0 {
        (micros + half) / scale * scale
    } else {
        -((-micros + half) / scale * scale)
    }
}

/// The current instant, microseconds from 2000-01-01 UTC.
pub fn now() -> i64 {
    let n = chrono::Utc::now();
    (n.timestamp() - UNIX_TO_PG_SECS) * USECS_PER_SEC + n.timestamp_subsec_micros() as i64
}

/// An offset as PostgreSQL appends it: `+02`, `-03:30`, `+00:09:21`.
pub(crate) fn format_offset(east: i32) -> String {
    let a = east.abs();
    let mut s = format!("{}{:02}", if east < 0 { '-' } else { '+' }, a / 3600);
    if a % 3600 != 0 {
        s.push_str(&format!(":{:02}", a / 60 % 60));
        if a % 60 != 0 {
            s.push_str(&format!(":{:02}", a % 60));
        }
    }
    s
}
