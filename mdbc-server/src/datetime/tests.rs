//! Values PostgreSQL 15 gave for the same inputs.

use super::calendar::*;
use super::*;

fn iv(s: &str) -> String {
    Interval::parse(s)
        .map(|i| i.format())
        .unwrap_or_else(|e| format!("ERROR {}", e.code))
}

#[test]
fn interval_input_forms() {
    for (input, pg) in [
        ("1.5 years", "1 year 6 mons"),
        ("1.5 months", "1 mon 15 days"),
        ("-1 day +2 hours", "-1 days +02:00:00"),
        ("P1Y2M3DT4H5M6.5S", "1 year 2 mons 3 days 04:05:06.5"),
        ("1-2", "1 year 2 mons"),
        ("@ 1 hour ago", "-01:00:00"),
        ("1 day 2:03:04.5", "1 day 02:03:04.5"),
        ("3 4:05:06", "3 days 04:05:06"),
        ("1.7 years", "1 year 8 mons"),
        ("-1.7 years", "-1 years -8 mons"),
        ("1.3 weeks", "9 days 02:24:00"),
        ("0.5 days 1 hour", "13:00:00"),
        ("5", "00:00:05"),
        ("1:2", "01:02:00"),
        ("-1 +2:03", "-1 days +02:03:00"),
        ("1.5", "00:00:01.5"),
        ("2 3:04", "2 days 03:04:00"),
        ("1 day -1 hour", "1 day -01:00:00"),
        ("-1 day -1 hour ago", "1 day 01:00:00"),
        ("1.75 months", "1 mon 22 days 12:00:00"),
        ("P1.5Y", "1 year 6 mons"),
        ("P0001-02-03T04:05:06", "1 year 2 mons 3 days 04:05:06"),
        ("PT1.5M", "00:01:30"),
        (
            "1 year 2 months 3 days 4 hours 5 minutes 6 seconds 7 milliseconds 8 microseconds",
            "1 year 2 mons 3 days 04:05:06.007008",
        ),
        ("1 millennium 2 centuries 3 decades", "1230 years"),
        (
            "-1 years -2 mons +3 days -04:05:06",
            "-1 years -2 mons +3 days -04:05:06",
        ),
        ("1 years -2 mons", "10 mons"),
        ("14 mons", "1 year 2 mons"),
        ("-14 mons", "-1 years -2 mons"),
        ("1 2", "ERROR 22007"),
        ("garbage", "ERROR 22007"),
        ("", "ERROR 22007"),
    ] {
        assert_eq!(iv(input), pg, "{input}");
    }
}

#[test]
fn interval_arithmetic() {
    let p = |s: &str| Interval::parse(s).unwrap();
    assert_eq!(p("1 mon").times(0.3).unwrap().format(), "9 days");
    assert_eq!(p("1 day").divided(7.0).unwrap().format(), "03:25:42.857143");
    assert_eq!(
        p("1 year").divided(7.0).unwrap().format(),
        "1 mon 21 days 10:17:08.5344"
    );
    assert_eq!(p("25 hours").times(1.5).unwrap().format(), "37:30:00");
    assert!(p("1 mon") == p("1 mon"));
    assert_eq!(p("1 mon").cmp(&p("30 days")), std::cmp::Ordering::Equal);
    assert!(p("1 day") > p("23 hours"));
    assert_eq!(p("1 day").divided(0.0).unwrap_err().code, "22012");
}

#[test]
fn calendar_round_trip() {
    for (y, m, d) in [
        (2000, 1, 1),
        (1, 1, 1),
        (9999, 12, 31),
        (2020, 2, 29),
        (1970, 1, 1),
    ] {
        assert_eq!(j2date(date2j(y, m, d)), (y, m, d));
    }
    assert_eq!(date2j(2000, 1, 1), POSTGRES_EPOCH_JDATE);
    assert_eq!(date2j(1970, 1, 1), UNIX_EPOCH_JDATE);
}

fn ts(s: &str) -> Moment<i64> {
    parse_timestamp(s, false, &DateCtx::utc()).unwrap()
}

#[test]
fn timestamp_input_forms() {
    for (input, pg) in [
        ("1999-01-08 04:05:06", "1999-01-08 04:05:06"),
        ("1999-01-08T04:05:06.789", "1999-01-08 04:05:06.789"),
        ("January 8, 1999 04:05 PM", "1999-01-08 16:05:00"),
        ("08-Jan-1999", "1999-01-08 00:00:00"),
        ("Jan-08-1999", "1999-01-08 00:00:00"),
        ("1/8/1999", "1999-01-08 00:00:00"),
        ("08-Jan-99", "1999-01-08 00:00:00"),
        ("19990108", "1999-01-08 00:00:00"),
        ("19990108T040506", "1999-01-08 04:05:06"),
        ("1999-01-08 04:05:06-08", "1999-01-08 04:05:06"),
        ("epoch", "1970-01-01 00:00:00"),
        ("infinity", "infinity"),
        ("-infinity", "-infinity"),
        ("Wed Jan 08 1999 12:00 AM", "1999-01-08 00:00:00"),
        ("2000-01-01 24:00:00", "2000-01-02 00:00:00"),
    ] {
        assert_eq!(format_timestamp(ts(input)), pg, "{input}");
    }
    // `99-01-08` reads month-day-year (PostgreSQL's default order): month 99.
    for bad in [
        "2020-02-30",
        "1999-13-01",
        "garbage",
        "2020-01-01 25:00",
        "99-01-08",
    ] {
        assert!(
            parse_timestamp(bad, false, &DateCtx::utc()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn time_zones_and_daylight_saving() {
    let ny = Zone::parse_setting("America/New_York").unwrap();
    let paris = Zone::parse_setting("europe/paris").unwrap();
    assert_eq!(paris.name(), "Europe/Paris");
    let tz = |s: &str, z: &Zone| {
        let ctx = DateCtx {
            zone: z.clone(),
            ..DateCtx::utc()
        };
        parse_timestamp(s, true, &ctx).unwrap()
    };
    // A time skipped by spring-forward reads with the offset before the jump, one that
    // occurs twice with the offset after it.
    assert_eq!(
        format_timestamptz(tz("2018-03-11 02:30", &ny), &DateCtx::utc()),
        "2018-03-11 07:30:00+00"
    );
    assert_eq!(
        format_timestamptz(tz("2018-11-04 01:30", &ny), &DateCtx::utc()),
        "2018-11-04 06:30:00+00"
    );
    assert_eq!(
        format_timestamptz(tz("2020-07-01 12:00+00", &DateCtx::utc()), &paris),
        "2020-07-01 14:00:00+02"
    );
    let kolkata = Zone::parse_setting("Asia/Kolkata").unwrap();
    assert_eq!(
        format_timestamptz(tz("2020-07-01 00:00+00", &DateCtx::utc()), &kolkata),
        "2020-07-01 05:30:00+05:30"
    );
    let posix = Zone::parse_setting("UTC+3").unwrap();
    assert_eq!(
        format_timestamptz(tz("2020-01-01 00:00+00", &DateCtx::utc()), &posix),
        "2019-12-31 21:00:00-03"
    );
    assert_eq!(Zone::offset(-5 * 3600).name(), "<-05>+05");
    assert!(Zone::parse_setting("pst").is_none());
    // Adding a day across the spring-forward keeps the wall clock.
    let before = tz("2018-03-10 12:00", &ny);
    let after = add_interval(before, Interval::new(0, 1, 0), Some(&ny)).unwrap();
    assert_eq!(format_timestamptz(after, &ny), "2018-03-11 12:00:00-04");
    let after = add_interval(before, Interval::new(0, 0, 24 * USECS_PER_HOUR), Some(&ny)).unwrap();
    assert_eq!(format_timestamptz(after, &ny), "2018-03-11 13:00:00-04");
}

#[test]
fn month_arithmetic_clamps() {
    let r = add_interval(ts("2020-01-31"), Interval::new(1, 0, 0), None).unwrap();
    assert_eq!(format_timestamp(r), "2020-02-29 00:00:00");
    let r = add_interval(ts("2020-03-31"), Interval::new(-1, 0, 0), None).unwrap();
    assert_eq!(format_timestamp(r), "2020-02-29 00:00:00");
    let d = subtract_timestamps(ts("2020-03-01 10:00"), ts("2020-02-01 12:30")).unwrap();
    assert_eq!(d.format(), "28 days 21:30:00");
    let a = age(ts("2001-04-10"), ts("1957-06-13")).unwrap();
    assert_eq!(a.format(), "43 years 9 mons 27 days");
}

#[test]
fn interval_overflow_and_repeated_fields_are_errors() {
    // PostgreSQL 15: 22015 / 22008 where the value would not fit, 22007 for a field given
    // twice (fractional seconds fill the milli- and microseconds too).
    for (input, code) in [
        ("0.01 months 9223372036854775807 microseconds", "22015"),
        ("0.1 2562047788:0:54.775807", "22015"),
        ("2147483648 days", "22015"),
        ("5.5 seconds 3 milliseconds", "22007"),
        ("1:20:05 5 microseconds", "22007"),
        ("1 day 2 days", "22007"),
    ] {
        assert_eq!(iv(input), format!("ERROR {code}"), "{input}");
    }
    assert_eq!(iv("5 seconds 3 milliseconds"), "00:00:05.003");
    assert_eq!(iv("1 week 2 days"), "9 days");
    let big = Interval::parse("2147483647 days 24 hrs").unwrap();
    assert_eq!(big.justify_hours().unwrap_err().code, "22008");
    let months = Interval::parse("2147483647 months 30 days").unwrap();
    assert_eq!(months.justify_interval().unwrap_err().code, "22008");
}

#[test]
fn daylight_saving_continues_past_the_zone_tables() {
    // PostgreSQL extends a zone's current rules indefinitely.
    let utc = DateCtx::utc();
    for (input, pg) in [
        ("2040-07-01 12:00 Europe/Paris", "2040-07-01 10:00:00+00"),
        (
            "2087-07-01 12:00 America/New_York",
            "2087-07-01 16:00:00+00",
        ),
        (
            "2087-11-02 01:30 America/New_York",
            "2087-11-02 06:30:00+00",
        ),
        (
            "2100-07-01 12:00 America/New_York",
            "2100-07-01 16:00:00+00",
        ),
        ("2500-07-01 12:00 Europe/Paris", "2500-07-01 10:00:00+00"),
        ("2500-01-01 12:00 Europe/Paris", "2500-01-01 11:00:00+00"),
        ("2205-03-31 02:30 Europe/Paris", "2205-03-31 01:30:00+00"),
    ] {
        let t = parse_timestamp(input, true, &utc).unwrap();
        assert_eq!(format_timestamptz(t, &Zone::utc()), pg, "{input}");
    }
}

#[test]
fn rarer_input_forms() {
    let utc = DateCtx::utc();
    let ymd = DateCtx {
        order: DateOrder::Ymd,
        ..DateCtx::utc()
    };
    let tz = |s: &str, ctx: &DateCtx| {
        parse_timestamp(s, true, ctx).map(|t| format_timestamptz(t, &Zone::utc()))
    };
    // PostgreSQL 15's answers.
    assert_eq!(
        tz("1997.041 17:32:01 UTC", &utc).unwrap(),
        "1997-02-10 17:32:01+00"
    );
    assert_eq!(
        tz("97FEB10 5:32:01PM UTC", &ymd).unwrap(),
        "1997-02-10 17:32:01+00"
    );
    assert!(tz("97FEB10 5:32:01PM UTC", &utc).is_err());
    assert_eq!(
        tz("2000-03-15 08:14:01 GMT+8", &utc).unwrap(),
        "2000-03-15 16:14:01+00"
    );
    assert_eq!(
        tz("19970210 173201 -0800", &utc).unwrap(),
        "1997-02-11 01:32:01+00"
    );
    assert_eq!(tz("2001-01-01+11", &utc).unwrap(), "2000-12-31 13:00:00+00");
    assert_eq!(
        tz("4714-11-23 16:00:00-08 BC", &utc).unwrap(),
        "4714-11-24 00:00:00+00 BC"
    );
    assert_eq!(
        format_date(parse_date("1997.366", &utc).unwrap()),
        "1998-01-01"
    );
    assert_eq!(parse_date("4714-11-23 BC", &utc).unwrap_err().code, "22008");
}

#[test]
fn extreme_intervals_never_overflow() {
    // The most negative interval (i64::MIN microseconds) has no positive counterpart: it
    // prints in every style, and its text is refused as PostgreSQL 15 refuses it, never
    // overflowing. Values and errors from PostgreSQL 15.
    let low = Interval::parse("-2562047788.01521550222 hours").expect("in range");
    assert_eq!(
        low.format_in(IntervalStyle::Postgres),
        "-2562047788:00:54.775808"
    );
    assert_eq!(
        low.format_in(IntervalStyle::PostgresVerbose),
        "@ 2562047788 hours 54.775808 secs ago"
    );
    assert_eq!(iv("-2562047788:00:54.775807"), "-2562047788:00:54.775807");
    // As client input it is refused; as mdbc's stored text it reads back.
    assert_eq!(
        Interval::parse_in("-2562047788:00:54.775808", IntervalStyle::Postgres)
            .unwrap_err()
            .code,
        "22007"
    );
    assert_eq!(
        Interval::parse("-2562047788:00:54.775808").expect("stored text"),
        low
    );
    assert!(Interval::parse("@ 2562047788 hours 54.775808 secs ago").is_err());
    assert!(Interval::parse("-2562047788:00:54.775809").is_err());
}
