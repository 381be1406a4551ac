//! Values PostgreSQL 15 gave for the same inputs.

use super::ops;
use super::*;

fn j(s: &str) -> Jsonb {
    Jsonb::parse(s).expect("valid jsonb")
}

#[test]
fn jsonb_text_form() {
    for (input, pg) in [
        ("1e100", "10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"),
        ("1.0", "1.0"),
        ("-0", "0"),
        ("0.00001e5", "1"),
        ("100e-2", "1.00"),
        ("-0.0", "0.0"),
        (r#"{"aa":1,"b":2,"a":3}"#, r#"{"a": 3, "b": 2, "aa": 1}"#),
        (r#"{"a":1,"a":2}"#, r#"{"a": 2}"#),
        (r#"["\u00e9\n", {}]"#, r#"["é\n", {}]"#),
        ("12345.0000000000000000000000000000000000000000000005", "12345.0000000000000000000000000000000000000000000005"),
    ] {
        assert_eq!(j(input).text(), pg, "{input}");
    }
    assert_eq!(
        Jsonb::parse(r#""\u0000""#).map_err(|e| e.code),
        Err("22P05")
    );
    assert_eq!(Jsonb::parse("{1:2}").map_err(|e| e.code), Err("22P02"));
    assert_eq!(Jsonb::parse("[1,]").map_err(|e| e.code), Err("22P02"));
}

#[test]
fn containment_and_keys() {
    assert!(j(r#"{"a":1,"b":[1,2]}"#).contains(&j(r#"{"a":1}"#)));
    assert!(!j(r#"{"a":[1,2]}"#).contains(&j(r#"{"a":1}"#)));
    assert!(!j("[[1,2]]").contains(&j("[1]")));
    assert!(j("[1,2,[3]]").contains(&j("[[3],1,1]")));
    assert!(j(r#"["a", 1]"#).contains(&j(r#""a""#)));
    assert!(j(r#"{"n": 1.0}"#).contains(&j(r#"{"n": 1}"#)));
    assert!(j(r#"{"a":1}"#).has_key("a"));
    assert!(j(r#"["a"]"#).has_key("a"));
    assert!(!j("[1]").has_key("1"));
}

#[test]
fn edits() {
    let t = |v: Result<Jsonb, JsonError>| v.map(|v| v.text()).unwrap_or_else(|e| e.code.into());
    let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let abc = j(r#"["a","b","c"]"#);
    assert_eq!(t(ops::delete_index(&abc, -1)), r#"["a", "b"]"#);
    assert_eq!(t(ops::delete_index(&abc, 3)), r#"["a", "b", "c"]"#);
    assert_eq!(t(ops::delete_index(&abc, -4)), r#"["a", "b", "c"]"#);
    assert_eq!(
        t(ops::delete_key(&j(r#"{"a":1,"b":2}"#), "a")),
        r#"{"b": 2}"#
    );
    assert_eq!(t(ops::delete_key(&j("1"), "a")), "22023");
    assert_eq!(t(ops::delete_index(&j(r#"{"a":1}"#), 0)), "22023");
    let nested = j(r#"{"a":{"b":[1,2,3]}}"#);
    assert_eq!(
        t(ops::delete_path(&nested, &path(&["a", "b", "-1"]))),
        r#"{"a": {"b": [1, 2]}}"#
    );
    assert_eq!(
        t(ops::delete_path(&nested, &path(&["a", "b", "x"]))),
        "22P02"
    );
    assert_eq!(
        t(ops::set_path(
            &j(r#"{"a":1}"#),
            &path(&["b"]),
            j("2"),
            true,
            None
        )),
        r#"{"a": 1, "b": 2}"#
    );
    assert_eq!(
        t(ops::set_path(
            &j(r#"{"a":1}"#),
            &path(&["b"]),
            j("2"),
            false,
            None
        )),
        r#"{"a": 1}"#
    );
    assert_eq!(
        t(ops::set_path(
            &j("[1,2]"),
            &path(&["-5"]),
            j("0"),
            true,
            None
        )),
        "[0, 1, 2]"
    );
    assert_eq!(
        t(ops::set_path(
            &j("[1,2]"),
            &path(&["1"]),
            j("9"),
            false,
            Some(false)
        )),
        "[1, 9, 2]"
    );
    assert_eq!(
        t(ops::set_path(
            &j("[1,2]"),
            &path(&["1"]),
            j("9"),
            false,
            Some(true)
        )),
        "[1, 2, 9]"
    );
    assert_eq!(
        t(ops::set_path(
            &j(r#"{"a":1}"#),
            &path(&["a"]),
            j("9"),
            false,
            Some(false)
        )),
        "22023"
    );
    assert_eq!(
        ops::strip_nulls(&j(r#"{"a":null,"b":[null,{"c":null}]}"#)).text(),
        r#"{"b": [null, {}]}"#
    );
    assert_eq!(
        j(r#"{"a":[1,{"b":2}],"c":{},"d":[]}"#).pretty(),
        "{\n    \"a\": [\n        1,\n        {\n            \"b\": 2\n        }\n    ],\n    \"c\": {\n    },\n    \"d\": [\n    ]\n}"
    );
}
