//! `to_char` for dates, timestamps and intervals, and its inverse `to_timestamp` /
//! `to_date`, with PostgreSQL's template patterns (`YYYY-MM-DD HH24:MI:SS`, `Month`, `Dy`,
//! `FM` and `TH` modifiers, quoted text).

use super::calendar::{
    date2j, days_in_month, format_offset, iso_year_day, iso_year_week, j2date, j2day, Fields,
    POSTGRES_EPOCH_JDATE, USECS_PER_DAY, USECS_PER_HOUR, USECS_PER_MINUTE, USECS_PER_SEC,
};
use super::error::{DtError, DtResult};
use super::interval::Interval;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const ROMAN: [&str; 12] = [
    "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII",
];

/// Template patterns, longest first so `MONTH` wins over `MON` and `HH24` over `HH`.
const PATTERNS: &[&str] = &[
    "Y,YYY", "HH24", "HH12", "SSSSS", "SSSS", "IYYY", "IDDD", "MONTH", "Month", "month", "A.M.",
    "a.m.", "P.M.", "p.m.", "B.C.", "b.c.", "A.D.", "a.d.", "YYYY", "yyyy", "TZH", "TZM", "FF1",
    "FF2", "FF3", "FF4", "FF5", "FF6", "YYY", "yyy", "IYY", "DDD", "ddd", "MON", "Mon", "mon",
    "DAY", "Day", "day", "HH", "hh", "MI", "mi", "SS", "ss", "MS", "ms", "US", "us", "AM", "am",
    "PM", "pm", "BC", "bc", "AD", "ad", "YY", "yy", "IY", "MM", "mm", "DD", "dd", "DY", "Dy", "dy",
    "ID", "IW", "iw", "WW", "ww", "CC", "cc", "RM", "rm", "TZ", "tz", "OF", "Y", "y", "I", "D",
    "d", "W", "w", "J", "j", "Q", "q",
];

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Field {
        pat: &'static str,
        fill: bool,
        th: Option<bool>,
    },
}

fn parse_template(fmt: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = fmt;
    let mut lit = String::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            // Quoted text, with `\"` for a quote.
            let mut chars = r.char_indices();
            let mut end = r.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            lit.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => lit.push(c),
                }
            }
            rest = &r[end.min(r.len())..];
            continue;
        }
        if let Some(r) = rest.strip_prefix('\\') {
            if let Some(c) = r.chars().next() {
                lit.push(c);
                rest = &r[c.len_utf8()..];
            } else {
                rest = r;
            }
            continue;
        }
        let mut fill = false;
        let mut body = rest;
        loop {
            if let Some(b) = body.strip_prefix("FM").or_else(|| body.strip_prefix("fm")) {
                fill = true;
                body = b;
            } else if let Some(b) = body
                .strip_prefix("FX")
                .or_else(|| body.strip_prefix("fx"))
                .or_else(|| body.strip_prefix("TM"))
                .or_else(|| body.strip_prefix("tm"))
            {
                body = b;
            } else {
                break;
            }
        }
        // The longest pattern that matches, exactly or (upper-case patterns whose case
        // carries no meaning: `hh24`, `tzh`) in any case.
        let matched = PATTERNS
            .iter()
            .filter(|p| {
                body.starts_with(**p)
                    || (p.len() <= body.len()
                        && body.is_char_boundary(p.len())
                        && body[..p.len()].eq_ignore_ascii_case(p)
                        && !p.chars().any(|c| c.is_ascii_lowercase())
                        && !matches!(
                            **p,
                            "MONTH"
                                | "MON"
                                | "DAY"
                                | "DY"
                                | "AM"
                                | "PM"
                                | "A.M."
                                | "P.M."
                                | "BC"
                                | "AD"
                                | "B.C."
                                | "A.D."
                                | "RM"
                                | "TZ"
                        ))
            })
            .max_by_key(|p| p.len())
            .copied();
        match matched {
            Some(pat) => {
                if !lit.is_empty() {
                    out.push(Piece::Literal(std::mem::take(&mut lit)));
                }
                body = &body[pat.len()..];
                let th = if body.starts_with("TH") {
                    body = &body[2..];
                    Some(true)
                } else if body.starts_with("th") {
                    body = &body[2..];
                    Some(false)
                } else {
                    None
                };
                out.push(Piece::Field { pat, fill, th });
                rest = body;
            }
            None => {
                let c = rest.chars().next().unwrap_or(' ');
                lit.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Literal(lit));
    }
    out
}

fn ordinal(n: i64, upper: bool) -> &'static str {
    let s = match (n % 100, n % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    };
    match (upper, s) {
        (false, s) => s,
        (true, "st") => "ST",
        (true, "nd") => "ND",
        (true, "rd") => "RD",
        (true, _) => "TH",
    }
}

fn cased(word: &str, pat: &str) -> String {
    let first_upper = pat.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    let second_upper = pat.chars().nth(1).is_some_and(|c| c.is_ascii_uppercase());
    if first_upper && second_upper {
        word.to_uppercase()
    } else if first_upper {
        word.to_string()
    } else {
        word.to_lowercase()
    }
}

/// What a template is filled from.
pub struct ToCharInput {
    /// Calendar fields (for an interval: its years, months, days and time).
    pub f: Fields,
    /// Days from 2000-01-01 (dates and timestamps).
    pub days: Option<i32>,
    /// Hours of an interval (may exceed 24).
    pub interval_hours: Option<i64>,
    /// Offset east of UTC and the zone's abbreviation (timestamptz only).
    pub zone: Option<(i32, String)>,
}

impl ToCharInput {
    /// A timestamp's fields (a timestamptz's in its session zone, with the zone).
    pub fn timestamp(local: i64, zone: Option<(i32, String)>) -> ToCharInput {
        ToCharInput {
            f: Fields::of(local),
            days: Some(local.div_euclid(USECS_PER_DAY) as i32),
            interval_hours: None,
            zone,
        }
    }

    /// An interval's fields.
    pub fn interval(iv: Interval) -> ToCharInput {
        let t = iv.micros;
        let hours = t / USECS_PER_HOUR;
        ToCharInput {
            f: Fields {
                year: iv.months / 12,
                month: iv.months % 12,
                day: iv.days,
                hour: hours as i32,
                minute: (t / USECS_PER_MINUTE % 60) as i32,
                second: (t / USECS_PER_SEC % 60) as i32,
                micro: (t % USECS_PER_SEC) as i32,
            },
            days: None,
            interval_hours: Some(hours),
            zone: None,
        }
    }
}

/// `to_char(value, template)`.
pub fn to_char(v: &ToCharInput, fmt: &str) -> String {
    let f = &v.f;
    let mut out = String::new();
    // An interval has no calendar date: its ISO fields stay 0.
    let iso = v.days.map(|_| iso_year_week(f.year, f.month, f.day));
    for piece in parse_template(fmt) {
        let (pat, fill, th) = match piece {
            Piece::Literal(s) => {
                out.push_str(&s);
                continue;
            }
            Piece::Field { pat, fill, th } => (pat, fill, th),
        };
        let num = |n: i64, width: usize| -> String {
            if fill {
                n.to_string()
            } else if n < 0 {
                format!("-{:0width$}", -n, width = width)
            } else {
                format!("{n:0width$}")
            }
        };
        let upper = pat.to_ascii_uppercase();
        let hour12 = {
            let h = f.hour % 12;
            if h == 0 {
                12
            } else {
                h
            }
        };
        // Years are shown counting back from 1 BC (calendar year 0), with BC/AD patterns
        // saying which side.
        let year = if f.year <= 0 && v.interval_hours.is_none() {
            1 - f.year
        } else {
            f.year
        };
        let (text, n): (String, Option<i64>) = match upper.as_str() {
            "YYYY" => (num(year as i64, 4), Some(year as i64)),
            "Y,YYY" => (
                format!("{},{:03}", year / 1000, year % 1000),
                Some(year as i64),
            ),
            "YYY" => (num((year % 1000) as i64, 3), Some((year % 1000) as i64)),
            "YY" => (num((year % 100) as i64, 2), Some((year % 100) as i64)),
            "Y" => (num((year % 10) as i64, 1), Some((year % 10) as i64)),
            "IYYY" | "IYY" | "IY" | "I" => {
                // Counted back from 1 BC like the calendar year; IYYY in full.
                let iy = iso.map_or(f.year, |(y, _)| y) as i64;
                let iy = if iy <= 0 { 1 - iy } else { iy };
                let (m, w) = match upper.as_str() {
                    "IYYY" => (i64::MAX, 4),
                    "IYY" => (1000, 3),
                    "IY" => (100, 2),
                    _ => (10, 1),
                };
                (num(iy % m, w), Some(iy % m))
            }
            "MM" => (num(f.month as i64, 2), Some(f.month as i64)),
            "MONTH" | "MON" => {
                let name = MONTHS
                    .get((f.month - 1).clamp(0, 11) as usize)
                    .copied()
                    .unwrap_or("");
                let name = if upper == "MON" { &name[..3] } else { name };
                let s = cased(name, pat);
                let s = if upper == "MONTH" && !fill {
                    format!("{s:<9}")
                } else {
                    s
                };
                (s, None)
            }
            "DAY" | "DY" => {
                let dow = v.days.map(|d| j2day(d + POSTGRES_EPOCH_JDATE)).unwrap_or(0);
                let name = DAYS[dow as usize];
                let name = if upper == "DY" { &name[..3] } else { name };
                let s = cased(name, pat);
                let s = if upper == "DAY" && !fill {
                    format!("{s:<9}")
                } else {
                    s
                };
                (s, None)
            }
            "DD" => (num(f.day as i64, 2), Some(f.day as i64)),
            "DDD" => {
                let doy = v
                    .days
                    .map(|d| d + POSTGRES_EPOCH_JDATE - date2j(f.year, 1, 1) + 1)
                    .unwrap_or(f.day) as i64;
                (num(doy, 3), Some(doy))
            }
            "IDDD" => {
                let d = v.days.map_or(0, |_| iso_year_day(f.year, f.month, f.day)) as i64;
                (num(d, 3), Some(d))
            }
            "D" => {
                let d = v.days.map(|d| j2day(d + POSTGRES_EPOCH_JDATE)).unwrap_or(0) as i64 + 1;
                (d.to_string(), Some(d))
            }
            "ID" => {
                let d = v.days.map(|d| j2day(d + POSTGRES_EPOCH_JDATE)).unwrap_or(0) as i64;
                let d = if d == 0 { 7 } else { d };
                (d.to_string(), Some(d))
            }
            "W" => {
                let w = (f.day as i64 - 1) / 7 + 1;
                (w.to_string(), Some(w))
            }
            "WW" => {
                let doy = v
                    .days
                    .map(|d| d + POSTGRES_EPOCH_JDATE - date2j(f.year, 1, 1))
                    .unwrap_or(0) as i64;
                (num(doy / 7 + 1, 2), Some(doy / 7 + 1))
            }
            "IW" => {
                let w = iso.map_or(0, |(_, w)| w) as i64;
                (num(w, 2), Some(w))
            }
            "CC" => {
                let y = f.year as i64;
                let c = if y > 0 {
                    (y + 99) / 100
                } else {
                    -((99 - (y - 1)) / 100)
                };
                (num(c, 2), Some(c))
            }
            "J" => {
                let j = v.days.map(|d| d + POSTGRES_EPOCH_JDATE).unwrap_or(0) as i64;
                (j.to_string(), Some(j))
            }
            "Q" => {
                let q = (f.month as i64 - 1) / 3 + 1;
                (q.to_string(), Some(q))
            }
            "RM" => {
                // Roman months; an interval's months may be negative (-1 is December) or
                // zero with whole years (December before, January after).
                let idx = if v.interval_hours.is_some() {
                    match (f.month, f.year) {
                        (0, 0) => None,
                        (0, y) => Some(if y >= 0 { 11 } else { 0 }),
                        (m, _) if m < 0 => Some((12 + m) as usize),
                        (m, _) => Some((m - 1) as usize),
                    }
                } else {
                    Some((f.month - 1).clamp(0, 11) as usize)
                };
                match idx.and_then(|i| ROMAN.get(i)) {
                    None => (String::new(), None),
                    Some(r) => {
                        let r = if pat == "rm" {
                            r.to_lowercase()
                        } else {
                            r.to_string()
                        };
                        (if fill { r } else { format!("{r:<4}") }, None)
                    }
                }
            }
            "HH" | "HH12" => (num(hour12 as i64, 2), Some(hour12 as i64)),
            "HH24" => {
                let h = v.interval_hours.unwrap_or(f.hour as i64);
                (num(h, 2), Some(h))
            }
            "MI" => (num(f.minute as i64, 2), Some(f.minute as i64)),
            "SS" => (num(f.second as i64, 2), Some(f.second as i64)),
            "SSSS" | "SSSSS" => {
                let s = f.hour as i64 * 3600 + f.minute as i64 * 60 + f.second as i64;
                (s.to_string(), Some(s))
            }
            "MS" => (
                format!("{:03}", f.micro / 1000),
                Some((f.micro / 1000) as i64),
            ),
            "US" => (format!("{:06}", f.micro), Some(f.micro as i64)),
            "FF1" | "FF2" | "FF3" | "FF4" | "FF5" | "FF6" => {
                let digits: usize = upper[2..].parse().unwrap_or(6);
                let s = format!("{:06}", f.micro);
                (s[..digits].to_string(), None)
            }
            "AM" | "PM" => (cased(if f.hour >= 12 { "PM" } else { "AM" }, pat), None),
            "A.M." | "P.M." => (cased(if f.hour >= 12 { "P.M." } else { "A.M." }, pat), None),
            "BC" | "AD" => (cased(if f.year > 0 { "AD" } else { "BC" }, pat), None),
            "B.C." | "A.D." => (cased(if f.year > 0 { "A.D." } else { "B.C." }, pat), None),
            "TZ" => {
                let a = v.zone.as_ref().map(|z| z.1.clone()).unwrap_or_default();
                (if pat == "tz" { a.to_lowercase() } else { a }, None)
            }
            "TZH" => {
                let e = v.zone.as_ref().map(|z| z.0).unwrap_or(0);
                (
                    format!("{}{:02}", if e < 0 { '-' } else { '+' }, e.abs() / 3600),
                    None,
                )
            }
            "TZM" => {
                let e = v.zone.as_ref().map(|z| z.0).unwrap_or(0);
                (format!("{:02}", e.abs() / 60 % 60), None)
            }
            "OF" => {
                let e = v.zone.as_ref().map(|z| z.0).unwrap_or(0);
                (format_offset(e), None)
            }
            _ => (pat.to_string(), None),
        };
        out.push_str(&text);
        if let (Some(upper), Some(n)) = (th, n) {
            out.push_str(ordinal(n, upper));
        }
    }
    out
}

/// What `to_timestamp(text, template)` read.
#[derive(Debug, Default)]
pub struct Read {
    /// Local calendar fields.
    pub f: Fields,
    /// An offset given with TZH/TZM, seconds east.
    pub offset: Option<i32>,
}

/// Reads `input` by `fmt` (`to_timestamp`, `to_date`). Fields not in the template are
/// January 1st of year 1, midnight, as PostgreSQL leaves them... except the year, which
/// PostgreSQL leaves at 1 too.
pub fn read(input: &str, fmt: &str) -> DtResult<Read> {
    let bad = |what: &str| {
        DtError::new(
            "22007",
            format!("invalid value \"{what}\" for template \"{fmt}\""),
        )
    };
    let mut r = Read {
        f: Fields {
            year: 1,
            month: 1,
            day: 1,
            ..Fields::default()
        },
        offset: None,
    };
    let mut s = input;
    let mut pm: Option<bool> = None;
    let mut hour12 = false;
    let mut doy: Option<i64> = None;
    let mut tzh: Option<i32> = None;
    for piece in parse_template(fmt) {
        match piece {
            Piece::Literal(l) => {
                // Each template character skips one input character (separators match
                // any separator, as PostgreSQL reads them).
                for _ in l.chars() {
                    if let Some(c) = s.chars().next() {
                        if c.is_ascii_alphanumeric() && !l.contains(c) {
                            break;
                        }
                        s = &s[c.len_utf8()..];
                    }
                }
            }
            Piece::Field { pat, .. } => {
                s = s.trim_start();
                let upper = pat.to_ascii_uppercase();
                let take_digits = |s: &mut &str, max: usize| -> Option<i64> {
                    let neg = s.starts_with('-');
                    let body: &str = if neg || s.starts_with('+') {
                        &s[1..]
                    } else {
                        s
                    };
                    let n = body
                        .chars()
                        .take(max)
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                    if n == 0 {
                        return None;
                    }
                    let v: i64 = body[..n].parse().ok()?;
                    *s = &body[n..];
                    Some(if neg { -v } else { v })
                };
                let word = |s: &mut &str, names: &[&str], abbrev: bool| -> Option<i32> {
                    for (i, n) in names.iter().enumerate() {
                        let cand = if abbrev { &n[..3] } else { n };
                        if s.len() >= cand.len()
                            && s.is_char_boundary(cand.len())
                            && s[..cand.len()].eq_ignore_ascii_case(cand)
                        {
                            *s = &s[cand.len()..];
                            return Some(i as i32);
                        }
                    }
                    None
                };
                match upper.as_str() {
                    "YYYY" | "Y,YYY" => {
                        let mut v = take_digits(&mut s, 9).ok_or_else(|| bad(s))?;
                        if upper == "Y,YYY" {
                            if let Some(rest) = s.strip_prefix(',') {
                                s = rest;
                                v = v * 1000 + take_digits(&mut s, 3).ok_or_else(|| bad(s))?;
                            }
                        }
                        r.f.year = v as i32;
                    }
                    "YYY" | "YY" | "Y" => {
                        let w = upper.len();
                        let v = take_digits(&mut s, w).ok_or_else(|| bad(s))?;
                        r.f.year = match w {
                            2 => (if v < 70 { 2000 } else { 1900 } + v) as i32,
                            3 => (if v < 100 { 2000 + v } else { 1000 + v }) as i32,
                            _ => (2000 + v) as i32,
                        };
                    }
                    "MM" => r.f.month = take_digits(&mut s, 2).ok_or_else(|| bad(s))? as i32,
                    "MONTH" => {
                        r.f.month = word(&mut s, &MONTHS, false).ok_or_else(|| bad(s))? + 1
                    }
                    "MON" => r.f.month = word(&mut s, &MONTHS, true).ok_or_else(|| bad(s))? + 1,
                    "DAY" => {
                        word(&mut s, &DAYS, false).ok_or_else(|| bad(s))?;
                    }
                    "DY" => {
                        word(&mut s, &DAYS, true).ok_or_else(|| bad(s))?;
                    }
                    "DD" => r.f.day = take_digits(&mut s, 2).ok_or_else(|| bad(s))? as i32,
                    "DDD" => doy = Some(take_digits(&mut s, 3).ok_or_else(|| bad(s))?),
                    "HH" | "HH12" => {
                        r.f.hour = take_digits(&mut s, 2).ok_or_else(|| bad(s))? as i32;
                        hour12 = true;
                    }
                    "HH24" => r.f.hour = take_digits(&mut s, 2).ok_or_else(|| bad(s))? as i32,
                    "MI" => r.f.minute = take_digits(&mut s, 2).ok_or_else(|| bad(s))? as i32,
                    "SS" => r.f.second = take_digits(&mut s, 2).ok_or_else(|| bad(s))? as i32,
                    "MS" | "US" | "FF1" | "FF2" | "FF3" | "FF4" | "FF5" | "FF6" => {
                        let max = match upper.as_str() {
                            "MS" => 3,
                            "US" => 6,
                            f => f[2..].parse().unwrap_or(6),
                        };
                        let start = s;
                        let v = take_digits(&mut s, max).ok_or_else(|| bad(s))?;
                        let n = start.len() - s.len();
                        let micro = match upper.as_str() {
                            "MS" => v * 1000,
                            "US" => v,
                            _ => v * 10i64.pow(6 - n as u32),
                        };
                        r.f.micro = micro as i32;
                    }
                    "AM" | "PM" | "A.M." | "P.M." => {
                        let l = s.to_ascii_uppercase();
                        let (is_pm, len) = if l.starts_with("PM") {
                            (true, 2)
                        } else if l.starts_with("AM") {
                            (false, 2)
                        } else if l.starts_with("P.M.") {
                            (true, 4)
                        } else if l.starts_with("A.M.") {
                            (false, 4)
                        } else {
                            return Err(bad(s));
                        };
                        pm = Some(is_pm);
                        s = &s[len..];
                    }
                    "TZH" => tzh = Some(take_digits(&mut s, 2).ok_or_else(|| bad(s))? as i32),
                    "TZM" => {
                        let m = take_digits(&mut s, 2).ok_or_else(|| bad(s))? as i32;
                        let h = tzh.unwrap_or(0);
                        let sign = if h < 0 { -1 } else { 1 };
                        r.offset = Some(sign * (h.abs() * 3600 + m * 60));
                    }
                    "J" => {
                        let j = take_digits(&mut s, 9).ok_or_else(|| bad(s))?;
                        let (y, m, d) = j2date(j as i32);
                        r.f.year = y;
                        r.f.month = m;
                        r.f.day = d;
                    }
                    "Q" | "W" | "WW" | "IW" | "D" | "ID" | "CC" => {
                        take_digits(&mut s, 2).ok_or_else(|| bad(s))?;
                    }
                    _ => {
                        return Err(DtError::new(
                            "0A000",
                            format!("template pattern \"{pat}\" is not supported by mdbc in to_timestamp/to_date"),
                        ))
                    }
                }
            }
        }
    }
    if let (Some(h), None) = (tzh, r.offset) {
        r.offset = Some(h * 3600);
    }
    if let Some(is_pm) = pm {
        if !(1..=12).contains(&r.f.hour) {
            return Err(DtError::new(
                "22008",
                format!("hour \"{}\" is invalid for the 12-hour clock", r.f.hour),
            ));
        }
        r.f.hour %= 12;
        if is_pm {
            r.f.hour += 12;
        }
    } else if hour12 && !(1..=12).contains(&r.f.hour) {
        return Err(DtError::new(
            "22008",
            format!("hour \"{}\" is invalid for the 12-hour clock", r.f.hour),
        ));
    }
    if let Some(d) = doy {
        let j = date2j(r.f.year, 1, 1) + d as i32 - 1;
        let (y, m, dd) = j2date(j);
        r.f.year = y;
        r.f.month = m;
        r.f.day = dd;
    }
    if !(1..=12).contains(&r.f.month) || r.f.day < 1 || r.f.day > days_in_month(r.f.year, r.f.month)
    {
        return Err(DtError::new(
            "22008",
            format!("date/time field value out of range: \"{input}\""),
        ));
    }
    if r.f.hour > 24 || r.f.minute > 59 || r.f.second > 59 {
        return Err(DtError::new(
            "22008",
            format!("date/time field value out of range: \"{input}\""),
        ));
    }
    Ok(r)
}
