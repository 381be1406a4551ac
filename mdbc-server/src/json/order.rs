//! jsonb's btree order, which `ORDER BY`, `DISTINCT`, `GROUP BY`, `min`/`max` and equality
//! of jsonb use (the `pg_jsonb` collation). PostgreSQL orders by kind first — null < string
//! < number < boolean < array < object — then arrays by length and objects by number of
//! pairs before their contents (pairs in jsonb's key order: shorter keys first); numbers
//! by value, so `1.0` and `1` are equal although printed apart. A top-level scalar counts
//! as a one-element array marked raw, which it sorts below; hence the documented oddity
//! that an empty top-level array sorts below `null`.

use std::cmp::Ordering;

use super::value::Jsonb;
use crate::numeric::Numeric;

/// The `pg_jsonb` collation: stored jsonb text compared in jsonb's order. Text that does
/// not parse sorts after every jsonb value, bytewise among itself (the order stays total).
pub fn compare_text(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    match (Jsonb::parse(a), Jsonb::parse(b)) {
        (Ok(x), Ok(y)) => compare(&x, &y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// jsonb's order of two top-level values.
pub fn compare(a: &Jsonb, b: &Jsonb) -> Ordering {
    let container = |v: &Jsonb| matches!(v, Jsonb::Array(_) | Jsonb::Object(_));
    match (container(a), container(b)) {
        (false, false) => nested(a, b),
        // A raw scalar against an array: below it, unless the array is empty.
        (false, true) => match b {
            Jsonb::Array(items) if items.is_empty() => Ordering::Greater,
            _ => Ordering::Less,
        },
        (true, false) => match a {
            Jsonb::Array(items) if items.is_empty() => Ordering::Less,
            _ => Ordering::Greater,
        },
        (true, true) => nested(a, b),
    }
}

fn rank(v: &Jsonb) -> u8 {
    match v {
        Jsonb::Null => 0,
        Jsonb::String(_) => 1,
        Jsonb::Number(_) => 2,
        Jsonb::Bool(_) => 3,
        Jsonb::Array(_) => 4,
        Jsonb::Object(_) => 5,
    }
}

fn nested(a: &Jsonb, b: &Jsonb) -> Ordering {
    match (a, b) {
        (Jsonb::Null, Jsonb::Null) => Ordering::Equal,
        (Jsonb::String(x), Jsonb::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Jsonb::Number(x), Jsonb::Number(y)) => match (Numeric::parse(x), Numeric::parse(y)) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        },
        (Jsonb::Bool(x), Jsonb::Bool(y)) => x.cmp(y),
        (Jsonb::Array(x), Jsonb::Array(y)) => x.len().cmp(&y.len()).then_with(|| {
            x.iter()
                .zip(y)
                .map(|(p, q)| nested(p, q))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        }),
        (Jsonb::Object(x), Jsonb::Object(y)) => x.len().cmp(&y.len()).then_with(|| {
            x.iter()
                .zip(y)
                .map(|((kx, vx), (ky, vy))| {
                    kx.as_bytes()
                        .cmp(ky.as_bytes())
                        .then_with(|| nested(vx, vy))
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        }),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL 15: `SELECT j FROM (VALUES …) v(j) ORDER BY j`.
    #[test]
    fn sorts_as_postgres() {
        let input = [
            r#"{"b": 1}"#,
            "[]",
            "null",
            "10",
            "9",
            "true",
            r#""a""#,
            "[1, 2]",
            "[3]",
            r#"{"aa": 1, "c": 1}"#,
            r#"{"b": 1, "d": 1}"#,
            "{}",
            "[[1]]",
            r#"["x"]"#,
        ];
        let mut sorted: Vec<&str> = input.to_vec();
        sorted.sort_by(|a, b| compare_text(a, b));
        assert_eq!(
            sorted,
            [
                "[]",
                "null",
                r#""a""#,
                "9",
                "10",
                "true",
                r#"["x"]"#,
                "[3]",
                "[[1]]",
                "[1, 2]",
                "{}",
                r#"{"b": 1}"#,
                r#"{"b": 1, "d": 1}"#,
                r#"{"aa": 1, "c": 1}"#,
            ]
        );
        assert_eq!(
            compare_text(r#"{"age": 25.0}"#, r#"{"age": 25}"#),
            Ordering::Equal
        );
    }
}
