//! `interval`: months, days and microseconds kept apart, as PostgreSQL keeps them; input in
//! the postgres, SQL-standard and ISO 8601 forms, output in the `postgres` IntervalStyle,
//! and the arithmetic and ordering PostgreSQL defines (a month counts 30 days and a day 24
//! hours only when intervals are compared).

use std::cmp::Ordering;

use super::calendar::{USECS_PER_DAY, USECS_PER_HOUR, USECS_PER_MINUTE, USECS_PER_SEC};
use super::error::{DtError, DtResult};
use super::style::IntervalStyle;

/// An interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Interval {
    /// Months (years are twelve of them).
    pub months: i32,
    /// Days.
    pub days: i32,
    /// Microseconds.
    pub micros: i64,
}

const DAYS_PER_MONTH: i64 = 30;

fn overflow() -> DtError {
    DtError::range("interval")
}

impl Interval {
    /// An interval of `months`, `days` and `micros`.
    pub fn new(months: i32, days: i32, micros: i64) -> Interval {
        Interval {
            months,
            days,
            micros,
        }
    }

    /// The value intervals are compared by: months of 30 days, days of 24 hours.
    pub fn span(&self) -> i128 {
        (self.months as i128 * DAYS_PER_MONTH as i128 + self.days as i128) * USECS_PER_DAY as i128
            + self.micros as i128
    }

    /// Parses any input form PostgreSQL accepts for `interval`.
    pub fn parse(input: &str) -> DtResult<Interval> {
        let t = input.trim();
        let bad = || DtError::syntax("interval", input);
        if t.is_empty() {
            return Err(bad());
        }
        if let Some(rest) = t.strip_prefix(['P', 'p']) {
            return parse_iso(rest).ok_or_else(bad);
        }
        parse_postgres(t, input)
    }

    /// `a + b`.
    pub fn plus(self, o: Interval) -> DtResult<Interval> {
        Ok(Interval {
            months: self.months.checked_add(o.months).ok_or_else(overflow)?,
            days: self.days.checked_add(o.days).ok_or_else(overflow)?,
            micros: self.micros.checked_add(o.micros).ok_or_else(overflow)?,
        })
    }

    /// `-a`.
    pub fn negate(self) -> DtResult<Interval> {
        Ok(Interval {
            months: self.months.checked_neg().ok_or_else(overflow)?,
            days: self.days.checked_neg().ok_or_else(overflow)?,
            micros: self.micros.checked_neg().ok_or_else(overflow)?,
        })
    }

    /// `a - b`.
    pub fn minus(self, o: Interval) -> DtResult<Interval> {
        self.plus(o.negate()?)
    }

    /// `a * factor` (PostgreSQL's `interval_mul`: fractions of months spill into days,
    /// fractions of days into microseconds).
    pub fn times(self, factor: f64) -> DtResult<Interval> {
        if factor.is_nan() {
            return Err(overflow());
        }
        Interval::spill(
            self.months as f64 * factor,
            self.days as f64 * factor,
            self.micros as f64 * factor,
        )
    }

    /// `a / factor` (PostgreSQL's `interval_div`).
    pub fn divided(self, factor: f64) -> DtResult<Interval> {
        if factor == 0.0 {
            return Err(DtError::new("22012", "division by zero"));
        }
        if factor.is_nan() {
            return Err(overflow());
        }
        Interval::spill(
            self.months as f64 / factor,
            self.days as f64 / factor,
            self.micros as f64 / factor,
        )
    }

    /// An interval of fractional months, days and microseconds: the fraction of a month
    /// becomes days (30 to a month), the fraction of a day seconds, each rounded to the
    /// microsecond as PostgreSQL's `TSROUND` does.
    fn spill(month_f: f64, day_f: f64, micros_f: f64) -> DtResult<Interval> {
        let int_range = i32::MIN as f64..=i32::MAX as f64;
        if !int_range.contains(&month_f) || !int_range.contains(&day_f) {
            return Err(overflow());
        }
        let months = month_f as i32;
        let mut days = day_f as i32;
        let month_remainder_days = ts_round((month_f - months as f64) * DAYS_PER_MONTH as f64);
        let mut sec_remainder = ts_round(
            (day_f - days as f64 + month_remainder_days - month_remainder_days.trunc()) * 86400.0,
        );
        if sec_remainder.abs() >= 86400.0 {
            let whole = (sec_remainder / 86400.0).trunc();
            days += whole as i32;
            sec_remainder -= whole * 86400.0;
        }
        days = days
            .checked_add(month_remainder_days as i32)
            .ok_or_else(overflow)?;
        let micros = (micros_f + sec_remainder * 1e6).round_ties_even();
        if !(i64::MIN as f64..i64::MAX as f64).contains(&micros) {
            return Err(overflow());
        }
        Ok(Interval {
            months,
            days,
            micros: micros as i64,
        })
    }

    /// `justify_hours`: whole days out of the microseconds.
    pub fn justify_hours(self) -> DtResult<Interval> {
        let mut days = self.days as i64 + self.micros / USECS_PER_DAY;
        let mut micros = self.micros % USECS_PER_DAY;
        if days > 0 && micros < 0 {
            micros += USECS_PER_DAY;
            days -= 1;
        } else if days < 0 && micros > 0 {
            micros -= USECS_PER_DAY;
            days += 1;
        }
        Ok(Interval {
            months: self.months,
            days: i32::try_from(days).map_err(|_| overflow())?,
            micros,
        })
    }

    /// `justify_days`: whole 30-day months out of the days.
    pub fn justify_days(self) -> DtResult<Interval> {
        let dpm = DAYS_PER_MONTH;
        let mut months = self.months as i64 + self.days as i64 / dpm;
        let mut days = self.days as i64 % dpm;
        if months > 0 && days < 0 {
            days += dpm;
            months -= 1;
        } else if months < 0 && days > 0 {
            days -= dpm;
            months += 1;
        }
        Ok(Interval {
            months: i32::try_from(months).map_err(|_| overflow())?,
            days: days as i32,
            micros: self.micros,
        })
    }

    /// `justify_interval`: both, with one sign throughout.
    pub fn justify_interval(self) -> DtResult<Interval> {
        let dpm = DAYS_PER_MONTH;
        let (mut months, mut days, mut micros) =
            (self.months as i64, self.days as i64, self.micros);
        if (days > 0 && micros > 0) || (days < 0 && micros < 0) {
            months += days / dpm;
            days %= dpm;
        }
        days += micros / USECS_PER_DAY;
        micros %= USECS_PER_DAY;
        months += days / dpm;
        days %= dpm;
        if months > 0 && (days < 0 || (days == 0 && micros < 0)) {
            days += dpm;
            months -= 1;
        } else if months < 0 && (days > 0 || (days == 0 && micros > 0)) {
            days -= dpm;
            months += 1;
        }
        if days > 0 && micros < 0 {
            micros += USECS_PER_DAY;
            days -= 1;
        } else if days < 0 && micros > 0 {
            micros -= USECS_PER_DAY;
            days += 1;
        }
        Ok(Interval {
            months: i32::try_from(months).map_err(|_| overflow())?,
            days: i32::try_from(days).map_err(|_| overflow())?,
            micros,
        })
    }

    /// Parses interval input in a session whose IntervalStyle is `style`: in
    /// `sql_standard`, a leading minus applies to every field when no other field has a
    /// sign (`-1 2:03:04` is minus one day two hours…).
    pub fn parse_in(input: &str, style: IntervalStyle) -> DtResult<Interval> {
        if style == IntervalStyle::SqlStandard {
            let t = input.trim();
            let fields: Vec<&str> = t.split_whitespace().collect();
            if let Some(first) = fields.first() {
                if first.starts_with('-') && fields[1..].iter().all(|f| !f.starts_with(['-', '+']))
                {
                    let rest = t.strip_prefix('-').unwrap_or(t);
                    return Interval::parse(rest)
                        .map_err(|_| DtError::syntax("interval", input))?
                        .negate();
                }
            }
        }
        // PostgreSQL reads an h:m:s field as a magnitude, so the text of the most
        // negative interval (one more than i64's maximum) is not valid input.
        if tokens(input.trim())
            .iter()
            .any(|t| t.contains(':') && time_field(t) == Some(i64::MIN as i128))
        {
            return Err(DtError::syntax("interval", input));
        }
        Interval::parse(input)
    }

    /// The text PostgreSQL prints in IntervalStyle `style`.
    pub fn format_in(&self, style: IntervalStyle) -> String {
        use IntervalStyle as S;
        let year = (self.months / 12) as i64;
        let mon = (self.months % 12) as i64;
        let mday = self.days as i64;
        let t = self.micros;
        let hour = t / USECS_PER_HOUR;
        let min = t / USECS_PER_MINUTE % 60;
        let sec = t / USECS_PER_SEC % 60;
        let fsec = t % USECS_PER_SEC;
        let seconds = |sec: i64, fsec: i64, fill: bool| {
            let mut s = if fill {
                format!("{:02}", sec.abs())
            } else {
                sec.abs().to_string()
            };
            push_fraction(&mut s, fsec.unsigned_abs());
            s
        };
        match style {
            S::Postgres => self.format(),
            S::SqlStandard => {
                let neg =
                    year < 0 || mon < 0 || mday < 0 || hour < 0 || min < 0 || sec < 0 || fsec < 0;
                let pos =
                    year > 0 || mon > 0 || mday > 0 || hour > 0 || min > 0 || sec > 0 || fsec > 0;
                let has_ym = year != 0 || mon != 0;
                let has_dt = mday != 0 || hour != 0 || min != 0 || sec != 0 || fsec != 0;
                if !((neg && pos) || (has_ym && has_dt)) {
                    let sign = if neg { "-" } else { "" };
                    if !neg && !pos {
                        "0".into()
                    } else if !has_dt {
                        format!("{sign}{}-{}", year.abs(), mon.abs())
                    } else if mday != 0 {
                        format!(
                            "{sign}{} {}:{:02}:{}",
                            mday.abs(),
                            hour.abs(),
                            min.abs(),
                            seconds(sec, fsec, true)
                        )
                    } else {
                        format!(
                            "{sign}{}:{:02}:{}",
                            hour.abs(),
                            min.abs(),
                            seconds(sec, fsec, true)
                        )
                    }
                } else {
                    let ys = if year < 0 || mon < 0 { '-' } else { '+' };
                    let ds = if mday < 0 { '-' } else { '+' };
                    let ss = if hour < 0 || min < 0 || sec < 0 || fsec < 0 {
                        '-'
                    } else {
                        '+'
                    };
                    format!(
                        "{ys}{}-{} {ds}{} {ss}{}:{:02}:{}",
                        year.abs(),
                        mon.abs(),
                        mday.abs(),
                        hour.abs(),
                        min.abs(),
                        seconds(sec, fsec, true)
                    )
                }
            }
            S::Iso8601 => {
                if year == 0 && mon == 0 && mday == 0 && t == 0 {
                    return "PT0S".into();
                }
                let mut out = String::from("P");
                for (v, c) in [(year, 'Y'), (mon, 'M'), (mday, 'D')] {
                    if v != 0 {
                        out.push_str(&format!("{v}{c}"));
                    }
                }
                if t != 0 {
                    out.push('T');
                }
                for (v, c) in [(hour, 'H'), (min, 'M')] {
                    if v != 0 {
                        out.push_str(&format!("{v}{c}"));
                    }
                }
                if sec != 0 || fsec != 0 {
                    if sec < 0 || fsec < 0 {
                        out.push('-');
                    }
                    out.push_str(&seconds(sec, fsec, false));
                    out.push('S');
                }
                out
            }
            S::PostgresVerbose => {
                let mut out = String::from("@");
                let mut is_zero = true;
                let mut is_before = false;
                for (v, unit) in [
                    (year, "year"),
                    (mon, "mon"),
                    (mday, "day"),
                    (hour, "hour"),
                    (min, "min"),
                ] {
                    if v == 0 {
                        continue;
                    }
                    let mut v = v;
                    if is_zero {
                        is_before = v < 0;
                        v = v.abs();
                    } else if is_before {
                        v = -v;
                    }
                    out.push_str(&format!(" {v} {unit}{}", if v == 1 { "" } else { "s" }));
                    is_zero = false;
                }
                if sec != 0 || fsec != 0 {
                    out.push(' ');
                    if sec < 0 || (sec == 0 && fsec < 0) {
                        if is_zero {
                            is_before = true;
                        } else if !is_before {
                            out.push('-');
                        }
                    } else if is_before {
                        out.push('-');
                    }
                    out.push_str(&seconds(sec, fsec, false));
                    out.push_str(if sec.abs() != 1 || fsec != 0 {
                        " secs"
                    } else {
                        " sec"
                    });
                    is_zero = false;
                }
                if is_zero {
                    out.push_str(" 0");
                }
                if is_before {
                    out.push_str(" ago");
                }
                out
            }
        }
    }

    /// The text PostgreSQL prints in the `postgres` IntervalStyle.
    pub fn format(&self) -> String {
        let mut out = String::new();
        let mut is_zero = true;
        let mut is_before = false;
        let year = self.months / 12;
        let mon = self.months % 12;
        for (value, unit) in [(year, "year"), (mon, "mon"), (self.days, "day")] {
            if value == 0 {
                continue;
            }
            if !is_zero {
                out.push(' ');
            }
            if is_before && value > 0 {
                out.push('+');
            }
            out.push_str(&format!(
                "{value} {unit}{}",
                if value != 1 { "s" } else { "" }
            ));
            is_before = value < 0;
            is_zero = false;
        }
        if is_zero || self.micros != 0 {
            let neg = self.micros < 0;
            let m = self.micros.unsigned_abs();
            let hours = m / USECS_PER_HOUR as u64;
            let minutes = m / USECS_PER_MINUTE as u64 % 60;
            let seconds = m / USECS_PER_SEC as u64 % 60;
            let frac = m % USECS_PER_SEC as u64;
            if !is_zero {
                out.push(' ');
            }
            out.push_str(if neg {
                "-"
            } else if is_before {
                "+"
            } else {
                ""
            });
            out.push_str(&format!("{hours:02}:{minutes:02}:{seconds:02}"));
            push_fraction(&mut out, frac);
        }
        out
    }
}

impl PartialOrd for Interval {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Interval {
    fn cmp(&self, other: &Self) -> Ordering {
        self.span().cmp(&other.span())
    }
}

/// Rounds seconds to whole microseconds, as PostgreSQL's `TSROUND`.
fn ts_round(secs: f64) -> f64 {
    (secs * 1e6).round_ties_even() / 1e6
}

/// `.fraction` of microseconds without trailing zeros (nothing for zero).
pub(crate) fn push_fraction(out: &mut String, micros: u64) {
    if micros > 0 {
        let f = format!("{micros:06}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
}

/// Accumulates fields as PostgreSQL's DecodeInterval does, with fractions of a unit spilling
/// into the next smaller ones.
#[derive(Default)]
struct Acc {
    // Wide enough that no input can overflow them before `finish` checks the ranges.
    months: i128,
    days: i128,
    micros: i128,
}

impl Acc {
    fn frac_seconds(&mut self, frac: f64, scale: f64) {
        let f = frac * scale;
        let secs = f.trunc();
        self.micros +=
            secs as i128 * USECS_PER_SEC as i128 + ((f - secs) * 1e6).round_ties_even() as i128;
    }
    fn frac_days(&mut self, frac: f64, scale: f64) {
        let f = frac * scale;
        let days = f.trunc();
        self.days += days as i128;
        self.frac_seconds(f - days, 86400.0);
    }
    fn unit(&mut self, unit: Unit, whole: i64, frac: f64) -> Option<()> {
        let whole = whole as i128;
        match unit {
            Unit::Micro => self.micros += whole + frac.round_ties_even() as i128,
            Unit::Milli => self.micros += whole * 1000 + (frac * 1000.0).round_ties_even() as i128,
            Unit::Second => {
                self.micros +=
                    whole * USECS_PER_SEC as i128 + (frac * 1e6).round_ties_even() as i128
            }
            Unit::Minute => {
                self.micros += whole * USECS_PER_MINUTE as i128;
                self.frac_seconds(frac, 60.0);
            }
            Unit::Hour => {
                self.micros += whole * USECS_PER_HOUR as i128;
                self.frac_seconds(frac, 3600.0);
            }
            Unit::Day => {
                self.days += whole;
                self.frac_seconds(frac, 86400.0);
            }
            Unit::Week => {
                self.days += whole * 7;
                self.frac_days(frac, 7.0);
            }
            Unit::Month => {
                self.months += whole;
                self.frac_days(frac, DAYS_PER_MONTH as f64);
            }
            Unit::Year(n) => {
                self.months += whole * 12 * n as i128;
                self.months += (frac * 12.0 * n as f64).round_ties_even() as i128;
            }
        }
        Some(())
    }
    fn finish(self, negate: bool) -> Option<Interval> {
        // `ago` negates fields that must fit first, as in PostgreSQL (so the most negative
        // interval cannot be written with `ago`).
        let (months, days, micros) = (
            i32::try_from(self.months).ok()?,
            i32::try_from(self.days).ok()?,
            i64::try_from(self.micros).ok()?,
        );
        Some(if negate {
            Interval {
                months: months.checked_neg()?,
                days: days.checked_neg()?,
                micros: micros.checked_neg()?,
            }
        } else {
            Interval {
                months,
                days,
                micros,
            }
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Micro,
    Milli,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    /// Years, decades (10), centuries (100), millennia (1000).
    Year(i64),
}

const MASK_MICRO: u32 = 1;
const MASK_MILLI: u32 = 2;
const MASK_SECOND: u32 = 4;
const MASK_SECONDS: u32 = MASK_MICRO | MASK_MILLI | MASK_SECOND;
const MASK_MINUTE: u32 = 8;
const MASK_HOUR: u32 = 16;
const MASK_MONTH: u32 = 32;
const MASK_YEAR: u32 = 64;

/// The fields a unit fills (PostgreSQL's DTK masks): seconds with a fraction also fill
/// the milli- and microseconds.
fn unit_mask(unit: Unit, fraction: bool) -> u32 {
    match unit {
        Unit::Micro => MASK_MICRO,
        Unit::Milli => MASK_MILLI,
        Unit::Second if fraction => MASK_SECONDS,
        Unit::Second => MASK_SECOND,
        Unit::Minute => MASK_MINUTE,
        Unit::Hour => MASK_HOUR,
        Unit::Day => 128,
        Unit::Week => 256,
        Unit::Month => MASK_MONTH,
        Unit::Year(1) => MASK_YEAR,
        Unit::Year(10) => 512,
        Unit::Year(100) => 1024,
        Unit::Year(_) => 2048,
    }
}

fn unit_of(word: &str) -> Option<Unit> {
    let w = word.to_ascii_lowercase();
    Some(match w.as_str() {
        "us" | "usec" | "usecs" | "usecond" | "useconds" | "microsecond" | "microseconds"
        | "microsecon" => Unit::Micro,
        "ms" | "msec" | "msecs" | "msecond" | "mseconds" | "millisecond" | "milliseconds"
        | "millisecon" => Unit::Milli,
        "s" | "sec" | "secs" | "second" | "seconds" => Unit::Second,
        "m" | "min" | "mins" | "minute" | "minutes" => Unit::Minute,
        "h" | "hr" | "hrs" | "hour" | "hours" => Unit::Hour,
        "d" | "day" | "days" => Unit::Day,
        "w" | "week" | "weeks" => Unit::Week,
        "mon" | "mons" | "month" | "months" => Unit::Month,
        "y" | "yr" | "yrs" | "year" | "years" => Unit::Year(1),
        "dec" | "decs" | "decade" | "decades" => Unit::Year(10),
        "c" | "cent" | "century" | "centuries" => Unit::Year(100),
        "mil" | "mils" | "millennium" | "millennia" => Unit::Year(1000),
        _ => return None,
    })
}

/// A signed decimal as PostgreSQL splits it: the whole part and the signed fraction.
fn split_number(s: &str) -> Option<(i64, f64)> {
    if s.is_empty() || !s.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let neg = s.starts_with('-');
    let body = s.trim_start_matches(['+', '-']);
    if body.contains(['+', '-']) || !body.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let (w, f) = body.split_once('.').unwrap_or((body, ""));
    let whole: i64 = if w.is_empty() { 0 } else { w.parse().ok()? };
    let frac: f64 = if f.is_empty() {
        0.0
    } else {
        format!("0.{f}").parse().ok()?
    };
    Some(if neg { (-whole, -frac) } else { (whole, frac) })
}

/// `[+-]h[:m[:s[.f]]]` as microseconds: at most i64's range, the most negative value
/// included (stored text of the most negative interval reads back; client input of it is
/// refused by `parse_in`, as PostgreSQL refuses it).
fn time_field(tok: &str) -> Option<i128> {
    let neg = tok.starts_with('-');
    let body = tok.trim_start_matches(['+', '-']);
    let parts: Vec<&str> = body.split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let int = |p: &str| -> Option<i64> {
        p.chars()
            .all(|c| c.is_ascii_digit())
            .then(|| p.parse().ok())
            .flatten()
    };
    let h = int(parts[0])?;
    let m = int(parts.get(1).copied().unwrap_or("0"))?;
    let micros = match parts.get(2) {
        Some(s) => {
            let (w, f) = split_number(s)?;
            if s.starts_with(['+', '-']) {
                return None;
            }
            w * USECS_PER_SEC + (f * 1e6).round_ties_even() as i64
        }
        None => 0,
    };
    if m > 59 || micros >= 60 * USECS_PER_SEC {
        return None;
    }
    let v = h as i128 * USECS_PER_HOUR as i128 + (m * USECS_PER_MINUTE) as i128 + micros as i128;
    let v = if neg { -v } else { v };
    (v >= i64::MIN as i128 && v <= i64::MAX as i128).then_some(v)
}

/// Splits interval text into fields: numbers, words, `h:m:s` and `y-m` fields, signs kept.
fn tokens(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in t.split(|c: char| c.is_whitespace() || c == ',') {
        let mut cur = String::new();
        let mut prev_alpha: Option<bool> = None;
        for c in word.chars() {
            let alpha = c.is_ascii_alphabetic();
            if let Some(p) = prev_alpha {
                // `1day` is `1 day`; `day1` likewise.
                if p != alpha && !cur.is_empty() && !(c == '.' || cur.ends_with(['+', '-'])) {
                    out.push(std::mem::take(&mut cur));
                }
            }
            cur.push(c);
            prev_alpha = Some(alpha);
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    out
}

fn parse_postgres(t: &str, input: &str) -> DtResult<Interval> {
    let bad = || DtError::syntax("interval", input);
    let range = || DtError::new("22015", "interval field value out of range");
    let mut toks = tokens(t);
    if toks.first().map(String::as_str) == Some("@") {
        toks.remove(0);
    }
    let mut negate = false;
    if toks.last().is_some_and(|w| w.eq_ignore_ascii_case("ago")) {
        toks.pop();
        negate = true;
    }
    if toks.is_empty() {
        return Err(bad());
    }
    let mut acc = Acc::default();
    // Fields are read from the end, as PostgreSQL does: a bare number takes the unit of the
    // field after it (seconds when last, days before a time).
    // The fields given so far, as PostgreSQL's field masks: each may be given once, and a
    // time (`h:m:s`) or fractional seconds claim the sub-second fields too.
    let mut seen: u32 = 0;
    let mut claim = |mask: u32| -> DtResult<()> {
        if seen & mask != 0 {
            return Err(DtError::syntax("interval", input));
        }
        seen |= mask;
        Ok(())
    };
    let mut next_unit: Option<Unit> = None;
    // The day unit a time field lends the number before it (an explicit unit may replace it).
    let mut implicit_day = false;
    let mut i = toks.len();
    while i > 0 {
        i -= 1;
        let tok = toks[i].as_str();
        if let Some(u) = unit_of(tok) {
            if next_unit.is_some() && !implicit_day {
                return Err(bad());
            }
            next_unit = Some(u);
            implicit_day = false;
            continue;
        }
        if tok.contains(':') {
            if next_unit.is_some() {
                return Err(bad());
            }
            claim(MASK_HOUR | MASK_MINUTE | MASK_SECONDS)?;
            acc.micros += time_field(tok).ok_or_else(bad)?;
            next_unit = Some(Unit::Day);
            implicit_day = true;
            continue;
        }
        // SQL-standard year-month: `1-2`, `-1-2`.
        let body = tok.trim_start_matches(['+', '-']);
        if let Some((y, m)) = body.split_once('-') {
            if next_unit.is_some_and(|u| u != Unit::Day) {
                return Err(bad());
            }
            claim(MASK_YEAR | MASK_MONTH)?;
            let (y, m): (i64, i64) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if m > 11 {
                return Err(range());
            }
            let v = y * 12 + m;
            acc.months += if tok.starts_with('-') { -v } else { v } as i128;
            next_unit = None;
            continue;
        }
        let (whole, frac) = split_number(tok).ok_or_else(bad)?;
        implicit_day = false;
        let unit = next_unit.take().unwrap_or(Unit::Second);
        claim(unit_mask(unit, frac != 0.0))?;
        acc.unit(unit, whole, frac).ok_or_else(range)?;
    }
    if next_unit.is_some() && !implicit_day {
        // A unit with no number before it.
        return Err(bad());
    }
    acc.finish(negate).ok_or_else(range)
}

/// ISO 8601 after the `P`: designators (`1Y2M3DT4H5M6S`, `2W`) or the alternative format
/// (`0001-02-03T04:05:06`).
fn parse_iso(s: &str) -> Option<Interval> {
    let mut acc = Acc::default();
    let (date, time) = match s.find(['T', 't']) {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    };
    if date.contains('-') || time.is_some_and(|t| t.contains(':')) {
        if !date.is_empty() {
            let p: Vec<&str> = date.split('-').collect();
            let n = |i: usize| p.get(i).map(|x| x.parse::<i64>().ok()).unwrap_or(Some(0));
            acc.months += (n(0)? * 12 + n(1)?) as i128;
            acc.days += n(2)? as i128;
        }
        if let Some(t) = time {
            acc.micros += time_field(t)?;
        }
        return acc.finish(false);
    }
    let designators = |part: &str, in_time: bool, acc: &mut Acc| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' {
                num.push(c);
                continue;
            }
            let (w, f) = split_number(&num)?;
            num.clear();
            let unit = match (c.to_ascii_uppercase(), in_time) {
                ('Y', false) => Unit::Year(1),
                ('M', false) => Unit::Month,
                ('W', false) => Unit::Week,
                ('D', false) => Unit::Day,
                ('H', true) => Unit::Hour,
                ('M', true) => Unit::Minute,
                ('S', true) => Unit::Second,
                _ => return None,
            };
            acc.unit(unit, w, f)?;
        }
        num.is_empty().then_some(())
    };
    designators(date, false, &mut acc)?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        designators(t, true, &mut acc)?;
    }
    if date.is_empty() && time.is_none() {
        return None;
    }
    acc.finish(false)
}
