//! Arithmetic between dates, timestamps and intervals, as PostgreSQL 15 defines it.

use super::calendar::{check_date, check_ts, days_in_month, Fields, Moment, USECS_PER_DAY};
use super::error::{DtError, DtResult};
use super::interval::Interval;
use super::zone::Zone;

/// `timestamp + interval`; for a timestamptz pass its zone: months and days are added to
/// the local date there (so `+ interval '1 day'` keeps the wall-clock time across a
/// daylight-saving change), microseconds to the instant. Month arithmetic clamps to the
/// month's last day (`2020-01-31 + 1 month` is `2020-02-29`).
pub fn add_interval(t: Moment<i64>, iv: Interval, zone: Option<&Zone>) -> DtResult<Moment<i64>> {
    let Moment::At(mut t) = t else {
        return Ok(t);
    };
    if iv.months != 0 || iv.days != 0 {
        let local = match zone {
            Some(z) => z.to_local(t),
            None => t,
        };
        let mut f = Fields::of(local);
        if iv.months != 0 {
            let total = f.year as i64 * 12 + (f.month as i64 - 1) + iv.months as i64;
            let year = total.div_euclid(12);
            if !(-4713..=294_277).contains(&year) {
                return Err(DtError::range("timestamp"));
            }
            f.year = year as i32;
            f.month = (total.rem_euclid(12) + 1) as i32;
            f.day = f.day.min(days_in_month(f.year, f.month));
        }
        let days = f.days() as i64 + iv.days as i64;
        let local = days * USECS_PER_DAY + f.time();
        let local = check_ts(local)?;
        t = match zone {
            Some(z) => z.to_utc(local),
            None => local,
        };
    }
    let t = t
        .checked_add(iv.micros)
        .ok_or_else(|| DtError::range("timestamp"))?;
    Ok(Moment::At(check_ts(t)?))
}

/// `a - b` of two timestamps (or two timestamptz): the microseconds between them, whole
/// days split out (`justify_hours`).
pub fn subtract_timestamps(a: Moment<i64>, b: Moment<i64>) -> DtResult<Interval> {
    match (a, b) {
        (Moment::At(a), Moment::At(b)) => Interval::new(0, 0, a - b).justify_hours(),
        _ => Err(DtError::new("22008", "cannot subtract infinite timestamps")),
    }
}

/// `date + n` days.
pub fn date_add_days(d: Moment<i32>, n: i64) -> DtResult<Moment<i32>> {
    match d {
        Moment::At(d) => {
            let v = d as i64 + n;
            let v = i32::try_from(v).map_err(|_| DtError::range("date"))?;
            Ok(Moment::At(check_date(v)?))
        }
        other => Ok(other),
    }
}

/// `age(a, b)`: the difference in years, months and days, field by field, borrowing from
/// the month before as PostgreSQL does. For timestamptz the caller passes local times.
pub fn age(a: Moment<i64>, b: Moment<i64>) -> DtResult<Interval> {
    let (Moment::At(a), Moment::At(b)) = (a, b) else {
        return Err(DtError::range("interval"));
    };
    let (f1, f2) = (Fields::of(a), Fields::of(b));
    // Field by field, smallest first: microsecond, second, minute, hour, day, month, year.
    let fields = |f: &Fields| [f.micro, f.second, f.minute, f.hour, f.day, f.month, f.year];
    let (x, y) = (fields(&f1), fields(&f2));
    let flip = a < b;
    let sign = if flip { -1 } else { 1 };
    let mut d: [i32; 7] = std::array::from_fn(|i| (x[i] - y[i]) * sign);
    // Borrow from the next larger field; a day borrows the length of the earlier month.
    let from = if flip { f1 } else { f2 };
    let carry = [1_000_000, 60, 60, 24, 0, 12];
    for i in 0..6 {
        while d[i] < 0 {
            d[i] += if i == 4 {
                days_in_month(from.year, from.month)
            } else {
                carry[i]
            };
            d[i + 1] -= 1;
        }
    }
    let [micro, sec, min, hour, day, mon, year] = d.map(|v| v * sign);
    let micros = ((hour as i64 * 60 + min as i64) * 60 + sec as i64) * 1_000_000 + micro as i64;
    Ok(Interval::new(year * 12 + mon, day, micros))
}
