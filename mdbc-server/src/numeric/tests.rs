//! Every expected value here is what PostgreSQL 15 printed for the same expression.

use super::*;

fn n(s: &str) -> Numeric {
    Numeric::parse(s).unwrap()
}

fn show(r: Result<Numeric, NumericError>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => format!("ERROR {}", e.code()),
    }
}

#[test]
fn input_and_output() {
    for (input, pg) in [
        (" 12.5 ", "12.5"),
        (".5", "0.5"),
        ("5.", "5"),
        ("-0.00", "0.00"),
        ("+inf", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("nan", "NaN"),
        ("1.5e3", "1500"),
        ("1.5E-3", "0.0015"),
        ("1e5", "100000"),
        ("007.10", "7.10"),
    ] {
        assert_eq!(n(input).to_string(), pg, "{input}");
    }
    for bad in ["abc", "1e", "", "-", ".", "1.2.3", "1e+", "--1", "1 2"] {
        assert_eq!(Numeric::parse(bad).unwrap_err().code(), "22P02", "{bad:?}");
    }
    // PostgreSQL's limits: beyond them 22003, never a rounded value.
    assert_eq!(Numeric::parse("1e200000").unwrap_err().code(), "22003");
    assert_eq!(Numeric::parse("1e-20000").unwrap_err().code(), "22003");
    assert_eq!(n("1e100000").to_string().len(), 100_001);
    assert_eq!(n("1e-1001").to_string().len(), 1003);
}

#[test]
fn arithmetic_and_result_scales() {
    type Op = fn(&Numeric, &Numeric) -> Result<Numeric, NumericError>;
    let cases: [(&str, Op, &str, &str); 20] = [
        ("1", Numeric::div, "3", "0.33333333333333333333"),
        ("2.0", Numeric::div, "3", "0.66666666666666666667"),
        ("1", Numeric::div, "3.000", "0.33333333333333333333"),
        ("1e20", Numeric::div, "3", "33333333333333333333"),
        ("2", Numeric::div, "3.00000", "0.66666666666666666667"),
        ("100", Numeric::div, "7", "14.2857142857142857"),
        ("0.000001", Numeric::div, "3", "0.000000333333333333333333"),
        (
            "123456789012345678901234567890",
            Numeric::div,
            "7",
            "17636684144620811271604938270",
        ),
        ("0.1", Numeric::add, "0.2", "0.3"),
        ("1.5", Numeric::mul, "2.25", "3.375"),
        ("7.5", Numeric::rem, "2", "1.5"),
        ("-7.5", Numeric::rem, "2", "-1.5"),
        ("10", Numeric::rem, "3.0", "1.0"),
        ("7.5", Numeric::div_trunc, "2", "3"),
        ("-7.5", Numeric::div_trunc, "2", "-3"),
        ("NaN", Numeric::add, "1", "NaN"),
        ("Infinity", Numeric::sub, "Infinity", "NaN"),
        ("Infinity", Numeric::div, "0.5", "Infinity"),
        ("1", Numeric::div, "Infinity", "0"),
        ("1", Numeric::div, "0.0", "ERROR 22012"),
    ];
    for (a, f, b, pg) in cases {
        assert_eq!(show(f(&n(a), &n(b))), pg, "{a} op {b}");
    }
}

#[test]
fn rounding_functions() {
    let r = |x: &str, s: i64| show(n(x).round_to(s, Rounding::HalfAway));
    let t = |x: &str, s: i64| show(n(x).round_to(s, Rounding::Truncate));
    assert_eq!(r("0.5", 0), "1");
    assert_eq!(r("-0.5", 0), "-1");
    assert_eq!(r("2.5", 0), "3");
    assert_eq!(r("-2.5", 0), "-3");
    assert_eq!(r("1.25", 1), "1.3");
    assert_eq!(r("-1.25", 1), "-1.3");
    assert_eq!(r("1234.5678", -2), "1200");
    assert_eq!(r("15", -1), "20");
    assert_eq!(r("-15", -1), "-20");
    assert_eq!(r("1.5", 5), "1.50000");
    assert_eq!(t("1.999", 2), "1.99");
    assert_eq!(t("-1.99", 1), "-1.9");
    assert_eq!(show(n("-1.5").ceil_floor(true)), "-1");
    assert_eq!(show(n("-1.5").ceil_floor(false)), "-2");
    assert_eq!(show(n("1.0001").ceil_floor(true)), "2");
    assert_eq!(n("-2.5").sign().to_string(), "-1");
}

#[test]
fn square_roots() {
    for (x, pg) in [
        ("2", "1.414213562373095"),
        ("100", "10.000000000000000"),
        ("0.0001", "0.01000000000000000"),
        ("1e-10", "0.000010000000000000000"),
        ("123456789.123", "11111.11106609056"),
    ] {
        assert_eq!(show(n(x).sqrt()), pg, "sqrt({x})");
    }
    assert_eq!(n("-1").sqrt().unwrap_err().code(), "2201F");
}

#[test]
fn casts() {
    assert_eq!(n("2.5").to_int(32), Ok(3));
    assert_eq!(n("-2.5").to_int(32), Ok(-3));
    assert_eq!(n("3.7").to_int(16), Ok(4));
    assert_eq!(n("99999").to_int(16).unwrap_err().code(), "22003");
    assert_eq!(
        n("NaN").to_int(32).unwrap_err().to_string(),
        "cannot convert NaN to integer"
    );
    assert_eq!(n("inf").to_int(64).unwrap_err().code(), "0A000");
    assert_eq!(Numeric::from_f64(0.1 + 0.2).to_string(), "0.3");
    assert_eq!(Numeric::from_f64(1e20).to_string(), "100000000000000000000");
    assert_eq!(Numeric::from_f64(1e-5).to_string(), "0.00001");
    assert_eq!(
        Numeric::from_f64(123456789012345678.0).to_string(),
        "123456789012346000"
    );
    assert_eq!(Numeric::from_f32(1.1).to_string(), "1.1");
    assert_eq!(n("0.1").to_f64(), 0.1);
}

#[test]
fn typmods() {
    assert_eq!(show(n("12.345").apply_typmod(5, 2)), "12.35");
    assert_eq!(show(n("999.995").apply_typmod(5, 2)), "ERROR 22003");
    assert_eq!(show(n("0.001").apply_typmod(5, 2)), "0.00");
    assert_eq!(show(n("1.5").apply_typmod(3, 0)), "2");
    assert_eq!(show(n("-0.5").apply_typmod(3, 0)), "-1");
    assert_eq!(show(n("inf").apply_typmod(5, 2)), "ERROR 22003");
    assert_eq!(show(n("NaN").apply_typmod(5, 2)), "NaN");
}

#[test]
fn collation_orders_as_numbers() {
    let mut v = vec![
        "10",
        "9",
        "-1.5",
        "NaN",
        "-Infinity",
        "Infinity",
        "0.0",
        "-0.25",
        "9.50",
        "1.0e+20",
        "-10",
        "0.001",
    ];
    v.sort_by(|a, b| compare_text(a, b));
    assert_eq!(
        v,
        [
            "-Infinity",
            "-10",
            "-1.5",
            "-0.25",
            "0.0",
            "0.001",
            "9",
            "9.50",
            "10",
            "1.0e+20",
            "Infinity",
            "NaN"
        ]
    );
    assert_eq!(compare_text("1.50", "1.5"), Ordering::Equal);
    assert_eq!(compare_text("-0", "0.000"), Ordering::Equal);
    assert_eq!(compare_text("NaN", "nan"), Ordering::Equal);
    // Not a number at all: after every number, and still a total order.
    assert_eq!(compare_text("abc", "NaN"), Ordering::Greater);
    assert_eq!(compare_text("abc", "abd"), Ordering::Less);
}

#[test]
fn exp_ln_log_power_as_postgres_15() {
    let cases = [
        ("exp", "1.0", "2.7182818284590452"),
        ("exp", "0.5", "1.6487212707001281"),
        ("exp", "-2.5", "0.08208499862389880"),
        ("exp", "10.123", "24909.387015879674"),
        ("exp", "100", "26881171418161354484126255515800135873611119"),
        (
            "exp",
            "-100",
            "0.00000000000000000000000000000000000000000003720075976020836",
        ),
        ("exp", "0", "1.0000000000000000"),
        ("exp", "1e-10", "1.0000000001000000"),
        ("exp", "3.14159265358979323846", "23.14069263277926900567"),
        ("ln", "2.0", "0.6931471805599453"),
        ("ln", "10", "2.3025850929940457"),
        ("ln", "0.5", "-0.6931471805599453"),
        ("ln", "1.0001", "0.00009999500033330834"),
        ("ln", "123456789.123", "18.631401767164318"),
        (
            "ln",
            "1e-50",
            "-115.12925464970228420089957273421821038005507443143865",
        ),
        ("ln", "0.999", "-0.0010005003335835335"),
        ("ln", "1", "0.0000000000000000"),
        ("ln", "7", "1.9459101490553133"),
        ("ln", "1e100", "230.25850929940457"),
        ("log", "100", "2.0000000000000000"),
        ("log", "2.0", "0.3010299956639812"),
        ("log", "0.001", "-3.0000000000000000"),
        ("log", "12345.678", "4.0915149455092013"),
        ("pow", "2.0,0.5", "1.4142135623730950"),
        ("pow", "2,10", "1024.0000000000000000"),
        ("pow", "2.5,3", "15.6250000000000000"),
        ("pow", "1.5,-2", "0.4444444444444444"),
        ("pow", "10,-3", "0.0010000000000000"),
        ("pow", "0.5,100", "0.0000000000000000"),
        ("pow", "3.7,2.5", "26.333240780428071"),
        ("pow", "1,0.5", "1.0000000000000000"),
        ("pow", "2.5,0", "1.0000000000000000"),
        ("pow", "9,0.5", "3.0000000000000000"),
        ("pow", "1.0000001,1000000", "1.1051709125497934"),
        ("log2", "2,8.0", "3.0000000000000000"),
        ("log2", "10,1000", "3.0000000000000000"),
        ("log2", "3.0,81", "4.0000000000000000"),
    ];
    for (f, args, pg) in cases {
        let a: Vec<Numeric> = args.split(',').map(n).collect();
        let got = match f {
            "exp" => show(a[0].exp()),
            "ln" => show(a[0].ln()),
            "log" => show(a[0].log(&Numeric::from_i64(10))),
            "log2" => show(a[1].log(&a[0])),
            _ => show(a[0].power(&a[1])),
        };
        assert_eq!(got, pg, "{f}({args})");
    }
    assert_eq!(n("0").ln().unwrap_err().code(), "2201E");
    assert_eq!(n("-1").ln().unwrap_err().code(), "2201E");
    assert_eq!(n("0").power(&n("-1")).unwrap_err().code(), "2201F");
    assert_eq!(n("-2").power(&n("0.5")).unwrap_err().code(), "2201F");
    assert_eq!(n("NaN").power(&n("0")).unwrap().to_string(), "1");
    assert_eq!(n("1").power(&n("NaN")).unwrap().to_string(), "1");
}
