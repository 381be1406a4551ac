//! PostgreSQL's `numeric`, exactly.
//!
//! A value is an arbitrary-precision integer and a display scale (`m / 10^scale`), or one of
//! PostgreSQL 15's special values NaN, Infinity and -Infinity. Arithmetic is exact and each
//! operation gives the display scale PostgreSQL gives (`arith.rs`); the limits are
//! PostgreSQL's own (131072 digits before the point, 16383 after), beyond which an
//! operation fails with 22003 instead of rounding.
//!
//! In SQLite a numeric is stored as its text (`1.50`, `NaN`), in a column declared
//! `TEXT COLLATE pg_numeric`: the text is what PostgreSQL prints, ships exactly between
//! sites, and the collation (`compare_text`) orders it numerically in indexes, ORDER BY,
//! GROUP BY, DISTINCT, min and max. `sql.rs` registers the collation and the functions the
//! translation emits.

mod arith;
mod error;
pub mod sql;
mod transcendental;

use std::cmp::Ordering;

use num_bigint::{BigInt, Sign};
use num_traits::Zero;

pub use error::NumericError;

/// Digits allowed before the decimal point (PostgreSQL: NUMERIC_WEIGHT_MAX).
pub const MAX_INT_DIGITS: usize = 131_072;
/// Digits allowed after it (PostgreSQL: NUMERIC_DSCALE_MAX).
pub const MAX_SCALE: u32 = 16_383;

/// A `numeric` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Numeric {
    /// Not a number (equal to itself, above every other value).
    NaN,
    /// Infinity (`false`) or -Infinity (`true`).
    Inf(bool),
    /// `m / 10^scale`; the scale is the display scale (trailing zeros count).
    Finite {
        /// The digits as an integer.
        m: BigInt,
        /// How many of them are after the point.
        scale: u32,
    },
}

impl Numeric {
    /// 0 (scale 0).
    pub fn zero() -> Numeric {
        Numeric::Finite {
            m: BigInt::zero(),
            scale: 0,
        }
    }

    /// An integer (scale 0).
    pub fn from_i64(i: i64) -> Numeric {
        Numeric::Finite {
            m: BigInt::from(i),
            scale: 0,
        }
    }

    /// A finite value, checked against PostgreSQL's limits.
    pub(crate) fn finite(m: BigInt, scale: u32) -> Result<Numeric, NumericError> {
        if scale > MAX_SCALE {
            return Err(NumericError::Overflow);
        }
        let n = Numeric::Finite { m, scale };
        if n.int_digits() > MAX_INT_DIGITS {
            return Err(NumericError::Overflow);
        }
        Ok(n)
    }

    /// Parses PostgreSQL's input syntax: surrounding spaces, a sign, digits with an
    /// optional point, an optional exponent; `NaN`, `Infinity`, `inf` in any case.
    pub fn parse(text: &str) -> Result<Numeric, NumericError> {
        let bad = || NumericError::Syntax(text.to_string());
        let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
        let (neg, body) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        if body.eq_ignore_ascii_case("infinity") || body.eq_ignore_ascii_case("inf") {
            return Ok(Numeric::Inf(neg));
        }
        if t.eq_ignore_ascii_case("nan") {
            return Ok(Numeric::NaN);
        }
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(i) => {
                let e = &body[i + 1..];
                let negative = e.starts_with('-');
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                // Any exponent this long is out of range whatever its digits say.
                let e: i64 = if digits.len() > 9 {
                    i64::from(u32::MAX)
                } else {
                    digits.parse().map_err(|_| bad())?
                };
                (&body[..i], if negative { -e } else { e })
            }
            None => (body, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int_part.is_empty() && frac_part.is_empty()
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let mut digits = String::with_capacity(int_part.len() + frac_part.len());
        digits.push_str(int_part);
        digits.push_str(frac_part);
        let mut m: BigInt = digits.parse().map_err(|_| bad())?;
        if neg {
            m = -m;
        }
        // value = m * 10^(exponent - frac digits); the display scale is what remains after
        // the point (never negative).
        let scale = frac_part.len() as i64 - exponent;
        if scale >= 0 {
            if scale > i64::from(MAX_SCALE) {
                return Err(NumericError::Overflow);
            }
            Numeric::finite(m, scale as u32)
        } else {
            if -scale as usize > MAX_INT_DIGITS {
                return Err(NumericError::Overflow);
            }
            Numeric::finite(m * pow10(-scale as u32), 0)
        }
    }

    /// How many digits before the point (0 for |x| < 1).
    fn int_digits(&self) -> usize {
        match self {
            Numeric::Finite { m, scale } => {
                let n = m.magnitude().to_string().len();
                if m.is_zero() {
                    0
                } else {
                    n.saturating_sub(*scale as usize)
                }
            }
            _ => 0,
        }
    }

    /// The display scale (`scale(x)`); None for NaN and the infinities.
    pub fn scale(&self) -> Option<u32> {
        match self {
            Numeric::Finite { scale, .. } => Some(*scale),
            _ => None,
        }
    }

    /// Whether the value is a finite zero.
    pub fn is_zero(&self) -> bool {
        matches!(self, Numeric::Finite { m, .. } if m.is_zero())
    }

    /// -1, 0 or 1 (NaN has none).
    fn signum(&self) -> i32 {
        match self {
            Numeric::NaN => 0,
            Numeric::Inf(neg) => {
                if *neg {
                    -1
                } else {
                    1
                }
            }
            Numeric::Finite { m, .. } => match m.sign() {
                Sign::Minus => -1,
                Sign::NoSign => 0,
                Sign::Plus => 1,
            },
        }
    }

    /// The same value with `scale` digits after the point, rounded half away from zero
    /// as PostgreSQL rounds (a larger scale pads with zeros).
    pub fn rescale(&self, scale: u32) -> Numeric {
        match self {
            Numeric::Finite { m, scale: s } => Numeric::Finite {
                m: rescale_m(m, *s, scale, Rounding::HalfAway),
                scale,
            },
            other => other.clone(),
        }
    }

    /// The value as PostgreSQL's `float8` reads it (correctly rounded).
    pub fn to_f64(&self) -> f64 {
        match self {
            Numeric::NaN => f64::NAN,
            Numeric::Inf(neg) => {
                if *neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
            }
            f => f.to_string().parse().unwrap_or(f64::NAN),
        }
    }

    /// A `float8` as PostgreSQL 15 converts it to numeric: through its 15-significant-digit
    /// text (`(0.1 + 0.2)::numeric` is 0.3).
    pub fn from_f64(f: f64) -> Numeric {
        Numeric::from_float_digits(f, 15)
    }

    /// A `float4` the same way, with 6 significant digits.
    pub fn from_f32(f: f32) -> Numeric {
        Numeric::from_float_digits(f64::from(f), 6)
    }

    fn from_float_digits(f: f64, digits: usize) -> Numeric {
        if f.is_nan() {
            return Numeric::NaN;
        }
        if f.is_infinite() {
            return Numeric::Inf(f < 0.0);
        }
        // `%.{digits}g`: the digits in scientific form, trailing zeros dropped.
        let s = format!("{:.*e}", digits - 1, f);
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mant = if mant.contains('.') {
            mant.trim_end_matches('0').trim_end_matches('.')
        } else {
            mant
        };
        Numeric::parse(&format!("{mant}e{exp}")).unwrap_or(Numeric::NaN)
    }
}

/// How a rescale drops digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Half away from zero (PostgreSQL's numeric rounding).
    HalfAway,
    /// Towards zero.
    Truncate,
}

pub(crate) fn pow10(n: u32) -> BigInt {
    BigInt::from(10u8).pow(n)
}

/// `m / 10^from` expressed with `to` digits after the point.
pub(crate) fn rescale_m(m: &BigInt, from: u32, to: u32, rounding: Rounding) -> BigInt {
    match to.cmp(&from) {
        Ordering::Equal => m.clone(),
        Ordering::Greater => m * pow10(to - from),
        Ordering::Less => div_round(m, &pow10(from - to), rounding),
    }
}

/// `n / d` (d > 0 or < 0), rounded half away from zero or truncated.
pub(crate) fn div_round(n: &BigInt, d: &BigInt, rounding: Rounding) -> BigInt {
    let (q, r) = (n / d, n % d);
    if rounding == Rounding::Truncate || r.is_zero() {
        return q;
    }
    // |r| * 2 >= |d| rounds away from zero.
    if r.magnitude() * 2u8 >= *d.magnitude() {
        let negative = (n.sign() == Sign::Minus) != (d.sign() == Sign::Minus);
        if negative {
            q - 1
        } else {
            q + 1
        }
    } else {
        q
    }
}

impl std::fmt::Display for Numeric {
    /// PostgreSQL's output: plain digits with the display scale, never an exponent.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Numeric::NaN => f.write_str("NaN"),
            Numeric::Inf(false) => f.write_str("Infinity"),
            Numeric::Inf(true) => f.write_str("-Infinity"),
            Numeric::Finite { m, scale } => {
                let digits = m.magnitude().to_string();
                let scale = *scale as usize;
                if m.sign() == Sign::Minus {
                    f.write_str("-")?;
                }
                if digits.len() > scale {
                    let (int, frac) = digits.split_at(digits.len() - scale);
                    f.write_str(int)?;
                    if scale > 0 {
                        f.write_str(".")?;
                        f.write_str(frac)?;
                    }
                } else {
                    f.write_str("0")?;
                    if scale > 0 {
                        f.write_str(".")?;
                        for _ in 0..scale - digits.len() {
                            f.write_str("0")?;
                        }
                        f.write_str(&digits)?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Ord for Numeric {
    /// PostgreSQL's order: -Infinity, the finite values, Infinity, NaN (NaN equals NaN).
    fn cmp(&self, other: &Numeric) -> Ordering {
        fn rank(n: &Numeric) -> u8 {
            match n {
                Numeric::Inf(true) => 0,
                Numeric::Finite { .. } => 1,
                Numeric::Inf(false) => 2,
                Numeric::NaN => 3,
            }
        }
        match (self, other) {
            (Numeric::Finite { m: a, scale: sa }, Numeric::Finite { m: b, scale: sb }) => {
                let s = (*sa).max(*sb);
                rescale_m(a, *sa, s, Rounding::Truncate).cmp(&rescale_m(
                    b,
                    *sb,
                    s,
                    Rounding::Truncate,
                ))
            }
            _ => rank(self).cmp(&rank(other)),
        }
    }
}

impl PartialOrd for Numeric {
    fn partial_cmp(&self, other: &Numeric) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `pg_numeric` collation: numeric text compared as numbers, in PostgreSQL's order.
/// Plain decimals (what mdbc stores) are compared digit by digit without allocating; any
/// other form SQLite may hand over (`1.0e+20` from a real) is parsed. Text that is no
/// number at all sorts after every number, bytewise among itself, so the order stays total.
pub fn compare_text(a: &str, b: &str) -> Ordering {
    match (plain(a), plain(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => match (Numeric::parse(a), Numeric::parse(b)) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        },
    }
}

/// A plain decimal split for comparison: sign, integer digits without leading zeros,
/// fraction digits without trailing zeros.
#[derive(PartialEq, Eq)]
struct Plain<'a> {
    neg: bool,
    int: &'a [u8],
    frac: &'a [u8],
}

fn plain(s: &str) -> Option<Plain<'_>> {
    let b = s.as_bytes();
    let (neg, b) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &b[..0]),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.iter().all(u8::is_ascii_digit)
        || !frac.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let int = &int[int.iter().position(|&c| c != b'0').unwrap_or(int.len())..];
    let frac = &frac[..frac.iter().rposition(|&c| c != b'0').map_or(0, |i| i + 1)];
    // Zero has no sign.
    let neg = neg && !(int.is_empty() && frac.is_empty());
    Some(Plain { neg, int, frac })
}

impl Ord for Plain<'_> {
    fn cmp(&self, other: &Plain<'_>) -> Ordering {
        let magnitude = self
            .int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(other.int))
            .then_with(|| self.frac.cmp(other.frac));
        match (self.neg, other.neg) {
            (false, false) => magnitude,
            (true, true) => magnitude.reverse(),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
        }
    }
}

impl PartialOrd for Plain<'_> {
    fn partial_cmp(&self, other: &Plain<'_>) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests;
