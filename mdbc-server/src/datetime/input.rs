//! Date, time and timestamp input in the forms PostgreSQL reads with `DateStyle = ISO, MDY`:
//! ISO 8601 (`1999-01-08 04:05:06.789-08`, `19990108T040506`), month names (`January 8,
//! 1999`, `08-Jan-1999`), `1/8/1999`, two-digit years (`99-01-08` is 1999), AM/PM, time
//! zones after the time (offsets, abbreviations, IANA names), and the special values
//! `epoch`, `infinity`, `-infinity`, `now`, `today`, `tomorrow`, `yesterday`, `allballs`.

use super::calendar::{
    check_ts, date2j, days_in_month, j2date, Moment, POSTGRES_EPOCH_JDATE, UNIX_EPOCH_JDATE,
    USECS_PER_DAY, USECS_PER_HOUR, USECS_PER_MINUTE, USECS_PER_SEC,
};
use super::error::{DtError, DtResult};
use super::style::{DateCtx, DateOrder};
use super::zone::{input_zone, Zone};

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
    // YYYY.DDD
    YearDay(String),
    // Year, month name and day run together: `97FEB10`.
    RunTogether(String, String, String),
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
                if w.as_bytes()[p + 1..]
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
        // A POSIX zone (`GMT+8`, `MST+7:00`, `GMT-4`) is a word, not a date.
        if let Some(p) = w.find(['+', '-']) {
            let (abbr, off) = w.split_at(p);
            if abbr.chars().all(|c| c.is_ascii_alphabetic())
                && off[1..].chars().all(|c| c.is_ascii_digit() || c == ':')
                && off.len() > 1
            {
                out.push(Tok::Word(w.to_string()));
                return;
            }
        }
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
    if first.is_ascii_digit() {
        // `1997.041`: a year and a day of the year.
        if let Some((y, doy)) = w.split_once('.') {
            if y.len() == 4
                && doy.len() == 3
                && y.chars().chain(doy.chars()).all(|c| c.is_ascii_digit())
            {
                out.push(Tok::YearDay(w.to_string()));
                return;
            }
        }
        // `97FEB10`: year, month name, day run together.
        let head = w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len());
        let rest = &w[head..];
        let mid = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        if head > 0
            && mid >= 3
            && month_of(&rest[..mid]).is_some()
            && !rest[mid..].is_empty()
            && rest[mid..].chars().all(|c| c.is_ascii_digit())
        {
            out.push(Tok::RunTogether(
                w[..head].to_string(),
                rest[..mid].to_string(),
                rest[mid..].to_string(),
            ));
            return;
        }
        // `2001-01-01+11`: a date with an offset and no time.
        if let Some(p) = w.find('+') {
            if p >= 8 && w[..p].contains('-') {
                push_token(&w[..p], out);
                out.push(Tok::Offset(w[p..].to_string()));
                return;
            }
        }
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

fn two_digit_year(y: i32) -> i32 {
    if y < 70 {
        y + 2000
    } else if y < 100 {
        y + 1900
    } else {
        y
    }
}

/// The date fields read so far, as PostgreSQL's DecodeDate/DecodeNumber keep them.
#[derive(Default)]
struct Ymd {
    year: Option<i32>,
    // The year was written with one or two digits (`99` is 1999).
    two_digit_year: bool,
    month: Option<i32>,
    day: Option<i32>,
    text_month: bool,
}

impl Ymd {
    /// A number in a date: which field it is depends on those already read and on the
    /// DateStyle order (PostgreSQL's DecodeNumber).
    fn number(&mut self, val: i32, digits: usize, order: DateOrder) -> Option<()> {
        enum F {
            Y,
            M,
            D,
        }
        let f = match (
            self.year.is_some(),
            self.month.is_some(),
            self.day.is_some(),
        ) {
            (false, false, false) => {
                if digits >= 3 || order == DateOrder::Ymd {
                    F::Y
                } else if order == DateOrder::Dmy {
                    F::D
                } else {
                    F::M
                }
            }
            (true, false, false) => F::M,
            (false, true, false) => {
                if self.text_month && (digits >= 3 || order == DateOrder::Ymd) {
                    F::Y
                } else {
                    F::D
                }
            }
            (true, true, false) => {
                if self.text_month && digits >= 3 && self.two_digit_year {
                    // DD-MON-YYYY read in YMD order: the first number was the day.
                    self.day = self.year.take();
                    self.two_digit_year = false;
                    F::Y
                } else {
                    F::D
                }
            }
            (false, false, true) => F::M,
            (false, true, true) => F::Y,
            _ => return None,
        };
        match f {
            F::Y => {
                self.year = Some(val);
                self.two_digit_year = digits <= 2;
            }
            F::M => self.month = Some(val),
            F::D => self.day = Some(val),
        }
        Some(())
    }

    /// A month written as a name.
    fn text_month(&mut self, m: i32) -> Option<()> {
        if self.text_month {
            return None;
        }
        // A number already taken as the month was the day (`8 January 1999`).
        if let Some(n) = self.month {
            if self.day.is_some() || !(1..=31).contains(&n) {
                return None;
            }
            self.day = Some(n);
        }
        self.month = Some(m);
        self.text_month = true;
        Some(())
    }

    fn any(&self) -> bool {
        self.year.is_some() || self.month.is_some() || self.day.is_some()
    }
}

fn num(s: &str) -> Option<i32> {
    (!s.is_empty() && s.len() <= 9 && s.chars().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A date field with separators (`1999-01-08`, `1/8/1999`, `08-Jan-1999`): a month name
/// first, then the numbers in order.
fn date_field(s: &str, ymd: &mut Ymd, order: DateOrder) -> Option<()> {
    let parts: Vec<&str> = s.split(['-', '/', '.']).collect();
    if parts.len() != 3 || ymd.any() {
        return None;
    }
    // A field that starts with a number cannot end with a month name (PostgreSQL reads
    // `1999-08-Jan` as bad input, `1999-Jan-08` and `Jan-08-1999` as dates).
    if num(parts[0]).is_some() && month_of(parts[2]).is_some() {
        return None;
    }
    for p in &parts {
        if let Some(m) = month_of(p) {
            ymd.text_month(m)?;
        }
    }
    for p in &parts {
        if month_of(p).is_some() {
            continue;
        }
        ymd.number(num(p)?, p.len(), order)?;
    }
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
pub(crate) fn parse_parts(t: &str, type_name: &str, order: DateOrder) -> DtResult<Parsed> {
    let input = t;
    let bad = || DtError::syntax(type_name, input);
    let field = || DtError::field(input);
    let mut p = Parsed::default();
    let toks = tokenize(t.trim());
    if toks.is_empty() {
        return Err(bad());
    }
    let mut ymd = Ymd::default();
    let mut hms: Option<(i32, i32, i32, i64)> = None;
    let mut ampm: Option<bool> = None;
    let mut bc = false;
    for tok in &toks {
        match tok {
            Tok::Number(n) => {
                if (n.len() == 8 || n.len() > 8 && n.len() <= 12) && !ymd.any() && hms.is_none() {
                    // YYYYMMDD, and a longer year before MMDD (`100000312`).
                    let cut = n.len() - 4;
                    ymd.year = Some(num(&n[..cut]).ok_or_else(bad)?);
                    ymd.month = Some(num(&n[cut..cut + 2]).ok_or_else(bad)?);
                    ymd.day = Some(num(&n[cut + 2..]).ok_or_else(bad)?);
                } else if n.len() == 6 && !ymd.any() && hms.is_none() {
                    // YYMMDD
                    ymd.year = Some(num(&n[..2]).ok_or_else(bad)?);
                    ymd.two_digit_year = true;
                    ymd.month = Some(num(&n[2..4]).ok_or_else(bad)?);
                    ymd.day = Some(num(&n[4..]).ok_or_else(bad)?);
                } else if n.len() == 6
                    && ymd.year.is_some()
                    && ymd.month.is_some()
                    && ymd.day.is_some()
                    && hms.is_none()
                {
                    // HHMMSS after a complete date (`19970210 173201`).
                    hms = Some((
                        num(&n[..2]).ok_or_else(bad)?,
                        num(&n[2..4]).ok_or_else(bad)?,
                        num(&n[4..]).ok_or_else(bad)?,
                        0,
                    ));
                } else {
                    ymd.number(num(n).ok_or_else(bad)?, n.len(), order)
                        .ok_or_else(bad)?;
                }
            }
            Tok::Date(d) => date_field(d, &mut ymd, order).ok_or_else(bad)?,
            Tok::RunTogether(y, m, day) => {
                // Read only in YMD order, as PostgreSQL reads it.
                if ymd.any() || order != DateOrder::Ymd {
                    return Err(bad());
                }
                ymd.year = Some(num(y).ok_or_else(bad)?);
                ymd.two_digit_year = y.len() <= 2;
                ymd.month = month_of(m);
                ymd.text_month = true;
                ymd.day = Some(num(day).ok_or_else(bad)?);
            }
            Tok::YearDay(yd) => {
                let (y, doy) = yd.split_once('.').ok_or_else(bad)?;
                let (y, doy) = (num(y).ok_or_else(bad)?, num(doy).ok_or_else(bad)?);
                if ymd.any() || !(1..=366).contains(&doy) {
                    return Err(bad());
                }
                // Day 366 of a common year is the next January 1st, as in PostgreSQL.
                let (yy, mm, dd) = j2date(date2j(y, 1, 1) + doy - 1);
                ymd.year = Some(yy);
                ymd.month = Some(mm);
                ymd.day = Some(dd);
            }
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
                        p.days = Some(UNIX_EPOCH_JDATE - POSTGRES_EPOCH_JDATE);
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
                        let (y, m, d) = j2date(jd);
                        ymd.year = Some(y);
                        ymd.month = Some(m);
                        ymd.day = Some(d);
                    }
                    _ if month_of(&l).is_some() && !ymd.text_month => {
                        ymd.text_month(month_of(&l).unwrap_or(1)).ok_or_else(bad)?;
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
    match (ymd.year, ymd.month, ymd.day) {
        (Some(y), Some(m), Some(d)) => {
            let y = if ymd.two_digit_year && !bc {
                two_digit_year(y)
            } else {
                y
            };
            // BC years count back from 1 BC, which is year 0 in the calendar arithmetic.
            let y = if bc {
                if y == 0 {
                    return Err(field());
                }
                1 - y
            } else {
                y
            };
            if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
                return Err(field());
            }
            if !(-4713..=5_874_897).contains(&y) {
                return Err(DtError::range("date"));
            }
            // A day of slack below Julian day 0: `4714-11-23 16:00-08 BC` is in range once
            // its offset is applied (the timestamp is checked then; a date just after).
            let days = date2j(y, m, d) - POSTGRES_EPOCH_JDATE;
            if days < -POSTGRES_EPOCH_JDATE - 1 {
                return Err(DtError::range("date"));
            }
            p.days = Some(days);
        }
        (None, None, None) => {}
        _ => return Err(bad()),
    }
    if let Some((mut h, m, s, micro)) = hms {
        if let Some(pm) = ampm {
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

/// A `date`: the date part of any datetime input (`now` and `today` in `zone`).
pub fn parse_date(t: &str, zone: &DateCtx) -> DtResult<Moment<i32>> {
    let p = parse_parts(t, "date", zone.order)?;
    if p.infinite != 0 {
        return Ok(if p.infinite > 0 {
            Moment::PosInf
        } else {
            Moment::NegInf
        });
    }
    let today = || zone.to_local(zone.now()).div_euclid(USECS_PER_DAY) as i32;
    if p.now {
        return Ok(Moment::At(today()));
    }
    if let Some(r) = p.relative_day {
        return Ok(Moment::At(today() + r));
    }
    let days = p.days.ok_or_else(|| DtError::syntax("date", t))?;
    Ok(Moment::At(super::calendar::check_date(days)?))
}

/// A `time`: the time part (a date or zone given with it is ignored, as PostgreSQL ignores
/// them for `time without time zone`).
pub fn parse_time(t: &str, zone: &DateCtx) -> DtResult<i64> {
    let p = parse_parts(t, "time", zone.order)?;
    if p.now {
        return Ok(zone.to_local(zone.now()).rem_euclid(USECS_PER_DAY));
    }
    // A zone whose offset depends on the date cannot be applied to a time alone.
    let dated_zone =
        p.days.is_none() && matches!(p.zone, Some(Zone::Named(_) | Zone::Abbreviation(..)));
    if p.infinite != 0 || p.relative_day.is_some() || dated_zone {
        return Err(DtError::syntax("time", t));
    }
    p.time.ok_or_else(|| DtError::syntax("time", t))
}

/// A `timestamp` (`with_zone` false: a zone written is ignored, as PostgreSQL does) or a
/// `timestamptz` (the instant, in UTC: the zone written, else `zone`).
pub fn parse_timestamp(t: &str, with_zone: bool, zone: &DateCtx) -> DtResult<Moment<i64>> {
    let type_name = if with_zone {
        "timestamp with time zone"
    } else {
        "timestamp"
    };
    let p = parse_parts(t, type_name, zone.order)?;
    if p.infinite != 0 {
        return Ok(if p.infinite > 0 {
            Moment::PosInf
        } else {
            Moment::NegInf
        });
    }
    if p.now {
        let now = zone.now();
        return Ok(Moment::At(if with_zone { now } else { zone.to_local(now) }));
    }
    let local = if let Some(r) = p.relative_day {
        let today = zone.to_local(zone.now()).div_euclid(USECS_PER_DAY);
        (today + r as i64) * USECS_PER_DAY + p.time.unwrap_or(0)
    } else {
        let days = p.days.ok_or_else(|| DtError::syntax(type_name, t))?;
        days as i64 * USECS_PER_DAY + p.time.unwrap_or(0)
    };
    if !with_zone {
        return Ok(Moment::At(check_ts(local)?));
    }
    let z = p.zone.as_ref().unwrap_or(&zone.zone);
    Ok(Moment::At(check_ts(z.to_utc(local))?))
}
