//! Date, time and timestamp input in the forms PostgreSQL reads with `DateStyle = ISO, MDY`:
//! ISO 8601 (`1999-01-08 04:05:06.789-08`, `19990108T040506`), month names (`January 8,
//! 1999`, `08-Jan-1999`), `1/8/1999`, two-digit years (`99-01-08` is 1999), AM/PM, time
//! zones after the time (offsets, abbreviations, IANA names), and the special values
//! `epoch`, `infinity`, `-infinity`, `now`, `today`, `tomorrow`, `yesterday`, `allballs`.

use super::error::{DtError, DtResult};
use super::zone::{input_zone, Zone};
use super::{
    check_ts, date2j, days_in_month, Moment, POSTGRES_EPOCH_JDATE, USECS_PER_DAY, USECS_PER_HOUR,
    USECS_PER_MINUTE, USECS_PER_SEC,
};

/// What a datetime input said.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The date, days from 2000-01-01 (absent: a time alone, or `now`).
    pub days: Option<i32>,
    /// The time of day, microseconds from midnight.
    pub time: Option<i64>,
    /// The zone written after the time.
    pub zone: Option<Zone>,
    /// `infinity` (+1) or `-infinity` (-1).
    pub infinite: i8,
    /// `now`: the current instant (the caller's clock).
    pub now: bool,
    /// `today` (0), `tomorrow` (+1), `yesterday` (-1): the current date plus that.
    pub relative_day: Option<i32>,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn month_of(word: &str) -> Option<i32> {
    let l = word.to_ascii_lowercase();
    let full = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    if let Some(i) = full.iter().position(|m| *m == l) {
        return Some(i as i32 + 1);
    }
    if l == "sept" {
        return Some(9);
    }
    MONTHS.iter().position(|m| *m == l).map(|i| i as i32 + 1)
}

fn is_weekday(word: &str) -> bool {
    let l = word.to_ascii_lowercase();
    let full = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    full.contains(&l.as_str())
        || WEEKDAYS.contains(&l.as_str())
        || matches!(l.as_str(), "tues" | "wednes" | "thur" | "thurs")
}

#[derive(Debug)]
enum Tok {
    Number(String),
    Date(String),
    Time(String),
    Word(String),
    Offset(String),
}

fn tokenize(t: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    for word in t.split(|c: char| c.is_whitespace() || c == ',') {
        if word.is_empty() {
            continue;
        }
        let mut w = word;
        // ISO 8601 `date T time`.
        if w.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            if let Some(p) = w.find(['T', 't']) {
                if w[p + 1..]
                    .as_bytes()
                    .first()
                    .is_some_and(u8::is_ascii_digit)
                {
                    push_token(&w[..p], &mut out);
                    w = &w[p + 1..];
                    if !w.contains(':')
                        && w.len() >= 4
                        && w.chars().all(|c| c.is_ascii_digit() || c == '.')
                    {
                        // `T040506`: hhmmss.
                        let (hms, frac) = w.split_once('.').unwrap_or((w, ""));
                        let mut s = String::new();
                        for (i, c) in hms.chars().enumerate() {
                            if i > 0 && i % 2 == 0 {
                                s.push(':');
                            }
                            s.push(c);
                        }
                        if !frac.is_empty() {
                            s.push('.');
                            s.push_str(frac);
                        }
                        out.push(Tok::Time(s));
                        continue;
                    }
                }
            }
        }
        push_token(w, &mut out);
    }
    out
}

fn push_token(w: &str, out: &mut Vec<Tok>) {
    if w.is_empty() {
        return;
    }
    let first = w.chars().next().unwrap_or(' ');
    if first == '+' || (first == '-' && !w[1..].starts_with(|c: char| c.is_ascii_alphabetic())) {
        if w.eq_ignore_ascii_case("-infinity") {
            out.push(Tok::Word(w.to_string()));
        } else {
            out.push(Tok::Offset(w.to_string()));
        }
        return;
    }
    if w.contains(':') && first.is_ascii_digit() {
        // A time, maybe with a zone stuck to it: `04:05:06-08`, `04:05Z`, `4:05pm`.
        let body_end = w
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == '+' || c == '-' || c.is_ascii_alphabetic())
            .map(|(i, _)| i)
            .unwrap_or(w.len());
        out.push(Tok::Time(w[..body_end].to_string()));
        let rest = &w[body_end..];
        if !rest.is_empty() {
            if rest.starts_with(['+', '-']) {
                out.push(Tok::Offset(rest.to_string()));
            } else {
                out.push(Tok::Word(rest.to_string()));
            }
        }
        return;
    }
    if first.is_ascii_alphabetic() {
        // `Jan-08-1999`, a zone name with `/`, or a plain word.
        if w.contains(['-', '.']) && !w.contains('/') && w.chars().any(|c| c.is_ascii_digit()) {
            out.push(Tok::Date(w.to_string()));
        } else {
            out.push(Tok::Word(w.to_string()));
        }
        return;
    }
    if w.chars().all(|c| c.is_ascii_digit()) {
        out.push(Tok::Number(w.to_string()));
        return;
    }
    if first.is_ascii_digit() && w.contains(['-', '/', '.']) {
        // `1999-01-08`, `1/8/1999`, `08-Jan-1999`; a decimal (`8.5`) is not a date.
        let parts = w.split(['-', '/', '.']).count();
        if parts >= 2 && !(parts == 2 && w.contains('.') && !w.contains(['-', '/'])) {
            out.push(Tok::Date(w.to_string()));
            return;
        }
    }
    out.push(Tok::Word(w.to_string()));
}

fn two_digit_year(s: &str, y: i32) -> i32 {
    if s.len() <= 2 {
        if y < 70 {
            y + 2000
        } else {
            y + 1900
        }
    } else {
        y
    }
}

struct Ymd {
    year: Option<(i32, String)>,
    month: Option<i32>,
    day: Option<i32>,
}

fn num(s: &str) -> Option<i32> {
    (!s.is_empty() && s.len() <= 9 && s.chars().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A date field (`1999-01-08`, `1/8/1999`, `08-Jan-1999`, `Jan-08-1999`, `1999-Jan-08`).
fn date_field(s: &str, ymd: &mut Ymd) -> Option<()> {
    let parts: Vec<&str> = s.split(['-', '/', '.']).collect();
    if parts.len() != 3 || ymd.month.is_some() || ymd.day.is_some() {
        return None;
    }
    let named = parts.iter().position(|p| month_of(p).is_some());
    let (y, m, d) = match named {
        Some(1) if parts[0].len() >= 3 => (parts[0], parts[1], parts[2]),
        Some(1) => (parts[2], parts[1], parts[0]),
        Some(0) => (parts[2], parts[0], parts[1]),
        Some(_) => return None,
        None if parts[0].len() >= 3 => (parts[0], parts[1], parts[2]),
        // MDY, PostgreSQL's default DateStyle order.
        None => (parts[2], parts[0], parts[1]),
    };
    let month = month_of(m).or_else(|| num(m))?;
    ymd.year = Some((num(y)?, y.to_string()));
    ymd.month = Some(month);
    ymd.day = Some(num(d)?);
    Some(())
}

fn time_field(s: &str) -> Option<(i32, i32, i32, i64)> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let h = num(parts[0])?;
    let m = num(parts[1])?;
    let (sec, micro) = match parts.get(2) {
        Some(p) => {
            let (w, f) = p.split_once('.').unwrap_or((p, ""));
            let sec = num(w)?;
            if !f.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let micro = if f.is_empty() {
                0
            } else {
                let v: f64 = format!("0.{f}").parse().ok()?;
                (v * 1e6).round_ties_even() as i64
            };
            (sec, micro)
        }
        None => (0, 0),
    };
    Some((h, m, sec, micro))
}

/// Parses datetime input into its parts (which of them a type uses is the caller's).
pub(crate) fn parse_parts(t: &str, type_name: &str) -> DtResult<Parsed> {
    let input = t;
    let bad = || DtError::syntax(type_name, input);
    let field = || DtError::field(input);
    let mut p = Parsed::default();
    let toks = tokenize(t.trim());
    if toks.is_empty() {
        return Err(bad());
    }
    let mut ymd = Ymd {
        year: None,
        month: None,
        day: None,
    };
    let mut numbers: Vec<String> = Vec::new();
    let mut hms: Option<(i32, i32, i32, i64)> = None;
    let mut ampm: Option<bool> = None;
    let mut bc = false;
    for tok in &toks {
        match tok {
            Tok::Number(n) => {
                if n.len() == 8 && ymd.year.is_none() && ymd.month.is_none() && hms.is_none() {
                    ymd.year = Some((num(&n[..4]).ok_or_else(bad)?, n[..4].to_string()));
                    ymd.month = Some(num(&n[4..6]).ok_or_else(bad)?);
                    ymd.day = Some(num(&n[6..]).ok_or_else(bad)?);
                } else if n.len() == 6
                    && ymd.year.is_none()
                    && ymd.month.is_none()
                    && hms.is_none()
                    && numbers.is_empty()
                {
                    ymd.year = Some((num(&n[..2]).ok_or_else(bad)?, n[..2].to_string()));
                    ymd.month = Some(num(&n[2..4]).ok_or_else(bad)?);
                    ymd.day = Some(num(&n[4..]).ok_or_else(bad)?);
                } else {
                    numbers.push(n.clone());
                }
            }
            Tok::Date(d) => date_field(d, &mut ymd).ok_or_else(bad)?,
            Tok::Time(s) => {
                if hms.is_some() {
                    return Err(bad());
                }
                hms = Some(time_field(s).ok_or_else(bad)?);
            }
            Tok::Offset(o) => {
                if p.zone.is_some() {
                    return Err(bad());
                }
                p.zone = Some(input_zone(o).ok_or_else(bad)?);
            }
            Tok::Word(w) => {
                let l = w.to_ascii_lowercase();
                match l.as_str() {
                    "epoch" => {
                        p.days = Some(super::UNIX_EPOCH_JDATE - POSTGRES_EPOCH_JDATE);
                        p.time = Some(0);
                        p.zone = Some(Zone::utc());
                    }
                    "infinity" | "+infinity" => p.infinite = 1,
                    "-infinity" => p.infinite = -1,
                    "now" => p.now = true,
                    "today" => p.relative_day = Some(0),
                    "tomorrow" => p.relative_day = Some(1),
                    "yesterday" => p.relative_day = Some(-1),
                    "allballs" => hms = Some((0, 0, 0, 0)),
                    "am" | "a.m." => ampm = Some(false),
                    "pm" | "p.m." => ampm = Some(true),
                    "ad" => {}
                    "bc" => bc = true,
                    "at" | "on" => {}
                    _ if l.starts_with('j') && l.len() > 1 && num(&l[1..]).is_some() => {
                        let jd = num(&l[1..]).ok_or_else(bad)?;
                        let (y, m, d) = super::j2date(jd);
                        ymd.year = Some((y, format!("{y:04}")));
                        ymd.month = Some(m);
                        ymd.day = Some(d);
                    }
                    _ if month_of(&l).is_some() && ymd.month.is_none() => {
                        ymd.month = month_of(&l);
                    }
                    _ if is_weekday(&l) => {}
                    _ => {
                        if p.zone.is_some() {
                            return Err(bad());
                        }
                        p.zone = Some(input_zone(w).ok_or_else(bad)?);
                    }
                }
            }
        }
    }
    // Numbers left: with a month name, the day and the year (a number over 31 or of three
    // or more digits is the year); alone, a time's neighbours are not dates.
    for n in numbers {
        let v = num(&n).ok_or_else(bad)?;
        if ymd.year.is_none() && (n.len() >= 3 || v > 31) {
            ymd.year = Some((v, n));
        } else if ymd.day.is_none() && ymd.month.is_some() {
            ymd.day = Some(v);
        } else if ymd.year.is_none() && ymd.month.is_some() {
            ymd.year = Some((v, n));
        } else {
            return Err(bad());
        }
    }
    if bc {
        return Err(DtError::years());
    }
    match (ymd.year, ymd.month, ymd.day) {
        (Some((y, ys)), Some(m), Some(d)) => {
            let y = two_digit_year(&ys, y);
            if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
                return Err(field());
            }
            if !(1..=9999).contains(&y) {
                return Err(DtError::years());
            }
            p.days = Some(date2j(y, m, d) - POSTGRES_EPOCH_JDATE);
        }
        (None, None, None) => {}
        _ => return Err(bad()),
    }
    if let Some((mut h, m, s, micro)) = hms {
        match ampm {
            Some(pm) => {
                if !(1..=12).contains(&h) {
                    return Err(field());
                }
                if h == 12 {
                    h = 0;
                }
                if pm {
                    h += 12;
                }
            }
            None => {}
        }
        if h > 24 || m > 59 || s > 59 || (h == 24 && (m > 0 || s > 0 || micro > 0)) {
            return Err(field());
        }
        p.time = Some(
            h as i64 * USECS_PER_HOUR
                + m as i64 * USECS_PER_MINUTE
                + s as i64 * USECS_PER_SEC
                + micro,
        );
    } else if ampm.is_some() {
        return Err(bad());
    }
    let specials = (p.infinite != 0) as u8 + p.now as u8 + p.relative_day.is_some() as u8;
    if specials > 1 || (specials == 1 && (p.days.is_some() || p.infinite != 0 && p.time.is_some()))
    {
        return Err(bad());
    }
    Ok(p)
}

/// The current instant, microseconds from 2000-01-01 UTC.
pub(crate) fn now_utc() -> i64 {
    let n = chrono::Utc::now();
    (n.timestamp() - super::UNIX_TO_PG_SECS) * USECS_PER_SEC + n.timestamp_subsec_micros() as i64
}

/// A `date`: the date part of any datetime input (`now` and `today` in `zone`).
pub fn parse_date(t: &str, zone: &Zone) -> DtResult<Moment<i32>> {
    let p = parse_parts(t, "date")?;
    if p.infinite != 0 {
        return Ok(if p.infinite > 0 {
            Moment::PosInf
        } else {
            Moment::NegInf
        });
    }
    let today = || zone.to_local(now_utc()).div_euclid(USECS_PER_DAY) as i32;
    if p.now {
        return Ok(Moment::At(today()));
    }
    if let Some(r) = p.relative_day {
        return Ok(Moment::At(today() + r));
    }
    p.days
        .map(Moment::At)
        .ok_or_else(|| DtError::syntax("date", t))
}

/// A `time`: the time part (a date or zone given with it is ignored, as PostgreSQL ignores
/// them for `time without time zone`).
pub fn parse_time(t: &str, zone: &Zone) -> DtResult<i64> {
    let p = parse_parts(t, "time without time zone")?;
    if p.now {
        return Ok(zone.to_local(now_utc()).rem_euclid(USECS_PER_DAY));
    }
    if p.infinite != 0 || p.relative_day.is_some() {
        return Err(DtError::syntax("time without time zone", t));
    }
    p.time
        .ok_or_else(|| DtError::syntax("time without time zone", t))
}

/// A `timestamp` (`with_zone` false: a zone written is ignored, as PostgreSQL does) or a
/// `timestamptz` (the instant, in UTC: the zone written, else `zone`).
pub fn parse_timestamp(t: &str, with_zone: bool, zone: &Zone) -> DtResult<Moment<i64>> {
    let type_name = if with_zone {
        "timestamp with time zone"
    } else {
        "timestamp without time zone"
    };
    let p = parse_parts(t, type_name)?;
    if p.infinite != 0 {
        return Ok(if p.infinite > 0 {
            Moment::PosInf
        } else {
            Moment::NegInf
        });
    }
    if p.now {
        let now = now_utc();
        return Ok(Moment::At(if with_zone { now } else { zone.to_local(now) }));
    }
    let local = if let Some(r) = p.relative_day {
        let today = zone.to_local(now_utc()).div_euclid(USECS_PER_DAY);
        (today + r as i64) * USECS_PER_DAY + p.time.unwrap_or(0)
    } else {
        let days = p.days.ok_or_else(|| DtError::syntax(type_name, t))?;
        days as i64 * USECS_PER_DAY + p.time.unwrap_or(0)
    };
    if !with_zone {
        return Ok(Moment::At(check_ts(local)?));
    }
    let z = p.zone.as_ref().unwrap_or(zone);
    Ok(Moment::At(check_ts(z.to_utc(local))?))
}
