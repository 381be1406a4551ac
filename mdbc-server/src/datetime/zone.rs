//! Time zones: the session's `TimeZone` and the zones named in values and `AT TIME ZONE`.
//! Named zones and their daylight-saving rules come from the IANA database in `chrono-tz`;
//! offsets and the common abbreviations are fixed.

use chrono::{LocalResult, NaiveDateTime, Offset, TimeZone};
use chrono_tz::{OffsetName, Tz};

use super::calendar::{format_offset, UNIX_TO_PG_SECS, USECS_PER_DAY, USECS_PER_SEC};

/// A time zone.
#[derive(Debug, Clone, PartialEq)]
pub enum Zone {
    /// A fixed offset, seconds east of UTC, with the name SHOW gives it.
    Fixed {
        /// Seconds east of UTC.
        east: i32,
        /// As shown by `SHOW TimeZone` and `to_char(…, 'TZ')`.
        name: String,
    },
    /// A zone of the IANA database.
    Named(Tz),
    /// An abbreviation whose offset changed over the years (PostgreSQL's dynamic
    /// abbreviations, `MSK`) and the zone that uses it: a local time takes the offset the
    /// abbreviation meant at that time (its most recent use at or before the instant the
    /// zone's own rules give, else its next use), as PostgreSQL's
    /// DetermineTimeZoneAbbrevOffset does; instants are shown as the zone shows them.
    Abbreviation(Tz, &'static str),
}

/// The abbreviations PostgreSQL's `Default` set knows and input commonly uses, with their
/// offsets in seconds east of UTC.
const ABBREVIATIONS: &[(&str, i32)] = &[
    ("utc", 0),
    ("gmt", 0),
    ("z", 0),
    ("zulu", 0),
    ("ut", 0),
    ("est", -5 * 3600),
    ("edt", -4 * 3600),
    ("cst", -6 * 3600),
    ("cdt", -5 * 3600),
    ("mst", -7 * 3600),
    ("mdt", -6 * 3600),
    ("pst", -8 * 3600),
    ("pdt", -7 * 3600),
    ("akst", -9 * 3600),
    ("akdt", -8 * 3600),
    ("hst", -10 * 3600),
    ("ast", -4 * 3600),
    ("adt", -3 * 3600),
    ("nst", -(3 * 3600 + 1800)),
    ("ndt", -(2 * 3600 + 1800)),
    ("wet", 0),
    ("west", 3600),
    ("bst", 3600),
    ("cet", 3600),
    ("cest", 2 * 3600),
    ("met", 3600),
    ("mest", 2 * 3600),
    ("eet", 2 * 3600),
    ("eest", 3 * 3600),
    ("ist", 2 * 3600),
    ("jst", 9 * 3600),
    ("kst", 9 * 3600),
    ("hkt", 8 * 3600),
    ("awst", 8 * 3600),
    ("acst", 9 * 3600 + 1800),
    ("acdt", 10 * 3600 + 1800),
    ("aest", 10 * 3600),
    ("aedt", 11 * 3600),
    ("nzst", 12 * 3600),
    ("nzdt", 13 * 3600),
];

/// The offset of an abbreviation (`PST`), seconds east of UTC.
pub(crate) fn abbreviation(name: &str) -> Option<i32> {
    let l = name.to_ascii_lowercase();
    ABBREVIATIONS
        .iter()
        .find(|(a, _)| *a == l)
        .map(|(_, off)| *off)
}

/// The zone tables compiled into `chrono-tz` end late in this century; PostgreSQL keeps
/// applying a zone's current rules for ever. A later instant is looked up in a year of the
/// 2060s–2080s with the same calendar (leap or not, same weekday on January 1st), where
/// the rules fall on the same dates: this returns the whole days to subtract (zero before
/// 2088).
fn future_shift(micros: i64) -> i64 {
    use super::calendar::{date2j, is_leap, j2day, Fields};
    let year = Fields::of(micros).year;
    if year < 2088 {
        return 0;
    }
    let jan1 = date2j(year, 1, 1);
    let kind = (is_leap(year), j2day(jan1));
    (2060..2088)
        .find(|y| (is_leap(*y), j2day(date2j(*y, 1, 1))) == kind)
        .map(|y| (jan1 - date2j(y, 1, 1)) as i64 * USECS_PER_DAY)
        .unwrap_or(0)
}

fn naive(micros: i64) -> NaiveDateTime {
    let secs = micros.div_euclid(USECS_PER_SEC) + UNIX_TO_PG_SECS;
    let nanos = (micros.rem_euclid(USECS_PER_SEC) * 1000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|d| d.naive_utc())
        .unwrap_or_default()
}

/// `±hh[:mm[:ss]]` or `±hhmm` as seconds, as written (east positive).
fn offset_text(s: &str) -> Option<i32> {
    let neg = s.starts_with('-');
    let body = s.strip_prefix(['+', '-'])?;
    let parts: Vec<&str> = body.split(':').collect();
    let num = |p: &str| -> Option<i32> {
        (!p.is_empty() && p.len() <= 2 && p.chars().all(|c| c.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let (h, m, sec) = match parts.as_slice() {
        [hm] if hm.len() == 4 && hm.chars().all(|c| c.is_ascii_digit()) => {
            (num(&hm[..2])?, num(&hm[2..])?, 0)
        }
        [h] => (num(h)?, 0, 0),
        [h, m] => (num(h)?, num(m)?, 0),
        [h, m, s] => (num(h)?, num(m)?, num(s)?),
        _ => return None,
    };
    if h > 15 || m > 59 || sec > 59 {
        return None;
    }
    let v = h * 3600 + m * 60 + sec;
    Some(if neg { -v } else { v })
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::utc()
    }
}

impl Zone {
    /// UTC.
    pub fn utc() -> Zone {
        Zone::Fixed {
            east: 0,
            name: "UTC".into(),
        }
    }

    /// Whether the zone is UTC at every instant.
    pub fn is_utc(&self) -> bool {
        matches!(self, Zone::Fixed { east: 0, .. })
            || matches!(self, Zone::Named(tz) if matches!(tz.name(), "UTC" | "Etc/UTC" | "Etc/UCT" | "UCT" | "Universal" | "Zulu" | "Etc/Universal" | "Etc/Zulu"))
    }

    fn named(name: &str) -> Option<Zone> {
        Tz::from_str_insensitive(name).ok().map(Zone::Named)
    }

    /// A zone as `SET TIME ZONE` and the TimeZone setting take it: an IANA name, or a
    /// POSIX-style offset (`UTC+3`, `<+03>-03`: hours *west* of Greenwich, as POSIX
    /// counts them).
    pub fn parse_setting(s: &str) -> Option<Zone> {
        let t = s.trim();
        if let Some(z) = Zone::named(t) {
            return Some(z);
        }
        Zone::posix(t)
    }

    /// A zone as `AT TIME ZONE` takes it: a name, an abbreviation, or a POSIX offset.
    pub fn parse_at(s: &str) -> Option<Zone> {
        let t = s.trim();
        if let Some(z) = Zone::named(t) {
            return Some(z);
        }
        if let Some(z) = dynamic_abbreviation(t) {
            return Some(z);
        }
        if let Some(east) = abbreviation(t) {
            return Some(Zone::Fixed {
                east,
                name: t.to_ascii_uppercase(),
            });
        }
        Zone::posix(t)
    }

    /// POSIX `STD offset` without daylight-saving rules: `UTC+3`, `+3`, `<-05>+05`.
    fn posix(t: &str) -> Option<Zone> {
        let (_abbr, rest) = if let Some(r) = t.strip_prefix('<') {
            let (a, rest) = r.split_once('>')?;
            (a.to_string(), rest)
        } else {
            let end = t
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(t.len());
            (t[..end].to_string(), &t[end..])
        };
        if rest.is_empty() {
            return None;
        }
        let west = if rest.starts_with(['+', '-']) {
            offset_text(rest)?
        } else {
            offset_text(&format!("+{rest}"))?
        };
        Some(Zone::Fixed {
            east: -west,
            name: t.to_string(),
        })
    }

    /// A zone `east` seconds east of UTC, named as PostgreSQL names an offset given as a
    /// number or an interval (`<+02>-02`).
    pub fn offset(east: i32) -> Zone {
        // PostgreSQL writes the POSIX side of a zero offset as `-00`.
        let posix = if east == 0 {
            "-00".to_string()
        } else {
            format_offset(-east)
        };
        Zone::Fixed {
            east,
            name: format!("<{}>{posix}", format_offset(east)),
        }
    }

    /// What `SHOW TimeZone` prints.
    pub fn name(&self) -> String {
        match self {
            Zone::Fixed { name, .. } => name.clone(),
            Zone::Named(tz) | Zone::Abbreviation(tz, _) => tz.name().to_string(),
        }
    }

    /// Seconds east of UTC at the instant `utc` (microseconds from 2000-01-01 UTC).
    pub fn offset_at(&self, utc: i64) -> i32 {
        match self {
            Zone::Fixed { east, .. } => *east,
            Zone::Abbreviation(tz, abbrev) => abbreviation_offset(*tz, abbrev, utc),
            Zone::Named(tz) => {
                let shift = future_shift(utc);
                tz.offset_from_utc_datetime(&naive(utc - shift))
                    .fix()
                    .local_minus_utc()
            }
        }
    }

    /// The zone's abbreviation at an instant (`CET`, `+05`), as `to_char(…, 'TZ')` shows it.
    pub fn abbreviation_at(&self, utc: i64) -> String {
        match self {
            Zone::Fixed { name, east } => {
                if abbreviation(name).is_some() || name.chars().all(|c| c.is_ascii_alphabetic()) {
                    name.clone()
                } else {
                    format_offset(*east)
                }
            }
            Zone::Named(tz) | Zone::Abbreviation(tz, _) => {
                let off = tz.offset_from_utc_datetime(&naive(utc - future_shift(utc)));
                off.abbreviation()
                    .map(str::to_string)
                    .unwrap_or_else(|| format_offset(off.fix().local_minus_utc()))
            }
        }
    }

    /// The UTC instant of a local time in this zone. A local time skipped by a
    /// daylight-saving jump is read with the offset before the jump; one that occurs twice
    /// with the offset after it (PostgreSQL's rule).
    pub fn to_utc(&self, local: i64) -> i64 {
        match self {
            Zone::Fixed { east, .. } => local - *east as i64 * USECS_PER_SEC,
            Zone::Abbreviation(tz, abbrev) => {
                let t = Zone::Named(*tz).to_utc(local);
                local - abbreviation_offset(*tz, abbrev, t) as i64 * USECS_PER_SEC
            }
            Zone::Named(tz) => {
                let shift = future_shift(local);
                let local = local - shift;
                let off = match tz.offset_from_local_datetime(&naive(local)) {
                    LocalResult::Single(o) => o.fix().local_minus_utc(),
                    LocalResult::Ambiguous(_, later) => later.fix().local_minus_utc(),
                    LocalResult::None => tz
                        .offset_from_utc_datetime(&naive(local - USECS_PER_DAY))
                        .fix()
                        .local_minus_utc(),
                };
                local - off as i64 * USECS_PER_SEC + shift
            }
        }
    }

    /// The local time of a UTC instant.
    pub fn to_local(&self, utc: i64) -> i64 {
        utc + self.offset_at(utc) as i64 * USECS_PER_SEC
    }
}

/// A zone written after a time in datetime input: an ISO offset (`+05:30`, `-08`, east
/// positive), `Z`, an abbreviation or an IANA name. Returns a zone to read the local time in.
pub(crate) fn input_zone(s: &str) -> Option<Zone> {
    if s.starts_with(['+', '-']) {
        return offset_text(s).map(|east| Zone::Fixed {
            east,
            name: s.to_string(),
        });
    }
    if let Some(z) = dynamic_abbreviation(s) {
        return Some(z);
    }
    if let Some(east) = abbreviation(s) {
        return Some(Zone::Fixed {
            east,
            name: s.to_ascii_uppercase(),
        });
    }
    if let Some(z) = Zone::named(s) {
        return Some(z);
    }
    // `GMT+8`, `PST+8`, `MST+7:00`: a POSIX zone, the offset counted west of Greenwich
    // whatever the abbreviation.
    let split = s.find(['+', '-'])?;
    let (abbr, offset) = s.split_at(split);
    if abbr.is_empty() || !abbr.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let west = offset_text(offset)?;
    Some(Zone::Fixed {
        east: -west,
        name: s.to_string(),
    })
}

/// Abbreviations whose offset changed over the years (PostgreSQL's dynamic
/// abbreviations): read with their zone's rules at the date given.
fn dynamic_abbreviation(s: &str) -> Option<Zone> {
    let (zone, abbrev) = match s.to_ascii_lowercase().as_str() {
        "msk" => ("Europe/Moscow", "MSK"),
        "vet" => ("America/Caracas", "VET"),
        _ => return None,
    };
    Tz::from_str_insensitive(zone)
        .ok()
        .map(|tz| Zone::Abbreviation(tz, abbrev))
}

/// The offset `abbrev` meant in `tz` around the instant `utc`: at `utc` if the zone used
/// it then, else at its latest use before (or, failing that, its first use after),
/// probed a day at a time over two years each way.
fn abbreviation_offset(tz: Tz, abbrev: &str, utc: i64) -> i32 {
    let at = |t: i64| {
        let off = tz.offset_from_utc_datetime(&naive(t - future_shift(t)));
        (off.abbreviation() == Some(abbrev)).then(|| off.fix().local_minus_utc())
    };
    let steps = (0..=730).map(|d| d as i64 * USECS_PER_DAY);
    steps
        .clone()
        .find_map(|back| at(utc - back))
        .or_else(|| steps.clone().find_map(|ahead| at(utc + ahead)))
        .unwrap_or_else(|| {
            tz.offset_from_utc_datetime(&naive(utc - future_shift(utc)))
                .fix()
                .local_minus_utc()
        })
}
