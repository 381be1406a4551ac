//! Date and time output as PostgreSQL prints it with `DateStyle = ISO`.

use super::calendar::{format_offset, j2date, Fields, Moment, POSTGRES_EPOCH_JDATE, USECS_PER_SEC};
use super::interval::push_fraction;
use super::zone::Zone;

/// A date: `YYYY-MM-DD`, or `infinity` / `-infinity`.
pub fn format_date(d: Moment<i32>) -> String {
    match d {
        Moment::NegInf => "-infinity".into(),
        Moment::PosInf => "infinity".into(),
        Moment::At(days) => {
            let (y, m, d) = j2date(days + POSTGRES_EPOCH_JDATE);
            format!("{:04}-{m:02}-{d:02}{}", shown_year(y), bc(y))
        }
    }
}

/// A time of day: `HH:MM:SS[.ffffff]` without trailing zeros.
pub fn format_time(micros: i64) -> String {
    let secs = micros / USECS_PER_SEC;
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    push_fraction(&mut s, (micros % USECS_PER_SEC) as u64);
    s
}

/// The year as printed: years before 1 AD count back from 1 BC (calendar year 0).
fn shown_year(y: i32) -> i32 {
    if y <= 0 {
        1 - y
    } else {
        y
    }
}

/// The suffix PostgreSQL puts at the very end of a BC value.
fn bc(y: i32) -> &'static str {
    if y <= 0 {
        " BC"
    } else {
        ""
    }
}

fn format_fields(f: &Fields) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        shown_year(f.year),
        f.month,
        f.day,
        f.hour,
        f.minute,
        f.second
    );
    push_fraction(&mut s, f.micro as u64);
    s
}

/// A timestamp without time zone.
pub fn format_timestamp(t: Moment<i64>) -> String {
    match t {
        Moment::NegInf => "-infinity".into(),
        Moment::PosInf => "infinity".into(),
        Moment::At(t) => {
            let f = Fields::of(t);
            format!("{}{}", format_fields(&f), bc(f.year))
        }
    }
}

/// A timestamptz (an instant in UTC) as seen in `zone`, with the zone's offset then.
pub fn format_timestamptz(t: Moment<i64>, zone: &Zone) -> String {
    match t {
        Moment::At(utc) => {
            let east = zone.offset_at(utc);
            let local = utc + east as i64 * USECS_PER_SEC;
            let f = Fields::of(local);
            format!("{}{}{}", format_fields(&f), format_offset(east), bc(f.year))
        }
        other => format_timestamp(other),
    }
}
