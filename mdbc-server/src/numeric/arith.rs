//! Numeric operations with PostgreSQL 15's result scales and special-value rules
//! (src/backend/utils/adt/numeric.c is the reference; the scale rules are restated here).

use num_bigint::{BigInt, Sign};
use num_traits::{Signed, ToPrimitive, Zero};

use super::{div_round, pow10, rescale_m, Numeric, NumericError, Rounding, MAX_INT_DIGITS};

type NResult = Result<Numeric, NumericError>;

/// At least this many significant digits in a quotient or a square root
/// (NUMERIC_MIN_SIG_DIGITS).
const MIN_SIG_DIGITS: i64 = 16;
/// The largest display scale division and square root choose (NUMERIC_MAX_DISPLAY_SCALE).
const MAX_DISPLAY_SCALE: i64 = 1000;

impl Numeric {
    /// `+`: the scale is the larger of the operands'.
    pub fn add(&self, other: &Numeric) -> NResult {
        use Numeric::*;
        Ok(match (self, other) {
            (NaN, _) | (_, NaN) => NaN,
            (Inf(a), Inf(b)) if a != b => NaN,
            (Inf(a), _) | (_, Inf(a)) => Inf(*a),
            (Finite { m: a, scale: sa }, Finite { m: b, scale: sb }) => {
                let s = (*sa).max(*sb);
                Numeric::finite(
                    rescale_m(a, *sa, s, Rounding::Truncate)
                        + rescale_m(b, *sb, s, Rounding::Truncate),
                    s,
                )?
            }
        })
    }

    /// Unary minus.
    pub fn neg(&self) -> Numeric {
        match self {
            Numeric::NaN => Numeric::NaN,
            Numeric::Inf(n) => Numeric::Inf(!n),
            Numeric::Finite { m, scale } => Numeric::Finite {
                m: -m,
                scale: *scale,
            },
        }
    }

    /// `-`: the scale is the larger of the operands'.
    pub fn sub(&self, other: &Numeric) -> NResult {
        self.add(&other.neg())
    }

    /// `abs(x)`.
    pub fn abs(&self) -> Numeric {
        match self {
            Numeric::Inf(_) => Numeric::Inf(false),
            Numeric::Finite { m, scale } => Numeric::Finite {
                m: m.abs(),
                scale: *scale,
            },
            Numeric::NaN => Numeric::NaN,
        }
    }

    /// The scale is the sum of the operands' scales.
    pub fn mul(&self, other: &Numeric) -> NResult {
        use Numeric::*;
        Ok(match (self, other) {
            (NaN, _) | (_, NaN) => NaN,
            (Inf(_), x) | (x, Inf(_)) if x.is_zero() => NaN,
            (Inf(_), _) | (_, Inf(_)) => Inf(self.signum() * other.signum() < 0),
            (Finite { m: a, scale: sa }, Finite { m: b, scale: sb }) => {
                Numeric::finite(a * b, sa + sb)?
            }
        })
    }

    /// Division, rounded half away from zero to the scale PostgreSQL chooses: at least 16
    /// significant digits and at least either operand's scale.
    pub fn div(&self, other: &Numeric) -> NResult {
        self.divide(other, |a, sa, b, sb| {
            let rscale = div_scale(a, sa, b, sb);
            // a/b = (a·10^sb) / (b·10^sa); with rscale digits after the point.
            let n = a * pow10(sb + rscale);
            let d = b * pow10(sa);
            Numeric::finite(div_round(&n, &d, Rounding::HalfAway), rscale)
        })
    }

    /// `%`: the remainder of the quotient truncated to an integer (the sign of the
    /// dividend); the scale is the larger of the operands'.
    pub fn rem(&self, other: &Numeric) -> NResult {
        use Numeric::*;
        match (self, other) {
            (NaN, _) | (_, NaN) => Ok(NaN),
            // PostgreSQL 15: an infinite dividend by zero is still a division by zero.
            (Inf(_), Finite { m, .. }) if m.is_zero() => Err(NumericError::DivisionByZero),
            (Inf(_), _) => Ok(NaN),
            (Finite { .. }, Inf(_)) => Ok(self.clone()),
            (Finite { m: a, scale: sa }, Finite { m: b, scale: sb }) => {
                if b.is_zero() {
                    return Err(NumericError::DivisionByZero);
                }
                let s = (*sa).max(*sb);
                let a = rescale_m(a, *sa, s, Rounding::Truncate);
                let b = rescale_m(b, *sb, s, Rounding::Truncate);
                Numeric::finite(a % b, s)
            }
        }
    }

    /// `gcd(a, b)`: the largest positive number dividing both with no remainder, at the
    /// larger of their scales (`gcd(0.5, 0.75)` is `0.25`); 0 when both are 0; NaN when
    /// either is NaN or infinite, as PostgreSQL 15.
    pub fn gcd(&self, other: &Numeric) -> NResult {
        self.integral_pair(other, |a, b, s| Numeric::finite(euclid(a, b), s))
    }

    /// `lcm(a, b)`: the smallest positive number both divide, at the larger of their
    /// scales; 0 when either is 0; NaN as for `gcd`; 22003 past numeric's range.
    pub fn lcm(&self, other: &Numeric) -> NResult {
        self.integral_pair(other, |a, b, s| {
            if a.is_zero() || b.is_zero() {
                return Numeric::finite(BigInt::zero(), s);
            }
            let g = euclid(a.clone(), b.clone());
            Numeric::finite((a / g * b).abs(), s)
        })
    }

    /// Both values as integers at their common scale, for `gcd`/`lcm`.
    fn integral_pair(
        &self,
        other: &Numeric,
        f: impl FnOnce(BigInt, BigInt, u32) -> NResult,
    ) -> NResult {
        match (self, other) {
            (Numeric::Finite { m: a, scale: sa }, Numeric::Finite { m: b, scale: sb }) => {
                let s = (*sa).max(*sb);
                let a = rescale_m(a, *sa, s, Rounding::Truncate);
                let b = rescale_m(b, *sb, s, Rounding::Truncate);
                f(a, b, s)
            }
            _ => Ok(Numeric::NaN),
        }
    }

    /// `div(a, b)`: the quotient truncated towards zero, scale 0.
    pub fn div_trunc(&self, other: &Numeric) -> NResult {
        self.divide(other, |a, sa, b, sb| {
            Numeric::finite(&(a * pow10(sb)) / &(b * pow10(sa)), 0)
        })
    }

    /// A division's special values (NaN, the infinities, a zero divisor) as PostgreSQL 15
    /// has them; `finite` divides two finite values with a non-zero divisor.
    fn divide(
        &self,
        other: &Numeric,
        finite: impl FnOnce(&BigInt, u32, &BigInt, u32) -> NResult,
    ) -> NResult {
        use Numeric::*;
        match (self, other) {
            (NaN, _) | (_, NaN) => Ok(NaN),
            (Inf(_), Inf(_)) => Ok(NaN),
            (Inf(a), d) => match d.signum() {
                0 => Err(NumericError::DivisionByZero),
                s => Ok(Inf(*a != (s < 0))),
            },
            (Finite { .. }, Inf(_)) => Ok(Numeric::zero()),
            (Finite { m: a, scale: sa }, Finite { m: b, scale: sb }) => {
                if b.is_zero() {
                    return Err(NumericError::DivisionByZero);
                }
                finite(a, *sa, b, *sb)
            }
        }
    }

    /// `round(x, s)` (half away from zero) and `trunc(x, s)`; a negative `s` rounds to
    /// tens, hundreds… The display scale becomes `max(s, 0)`.
    pub fn round_to(&self, s: i64, rounding: Rounding) -> NResult {
        let Numeric::Finite { m, scale } = self else {
            return Ok(self.clone());
        };
        let s = s.clamp(-(MAX_INT_DIGITS as i64), i64::from(super::MAX_SCALE));
        if s >= 0 {
            return Numeric::finite(rescale_m(m, *scale, s as u32, rounding), s as u32);
        }
        let drop = *scale + (-s) as u32;
        let q = div_round(m, &pow10(drop), rounding);
        Numeric::finite(q * pow10((-s) as u32), 0)
    }

    /// `ceil` (`up`) and `floor`: scale 0.
    pub fn ceil_floor(&self, up: bool) -> NResult {
        let Numeric::Finite { m, scale } = self else {
            return Ok(self.clone());
        };
        let d = pow10(*scale);
        let mut q = m / &d;
        let r = m % &d;
        if !r.is_zero() && (r.sign() == Sign::Plus) == up {
            q += if up { 1 } else { -1 };
        }
        Numeric::finite(q, 0)
    }

    /// `sign(x)`: -1, 0 or 1 with scale 0 (NaN stays NaN).
    pub fn sign(&self) -> Numeric {
        match self {
            Numeric::NaN => Numeric::NaN,
            other => Numeric::from_i64(i64::from(other.signum())),
        }
    }

    /// `sqrt(x)`, correctly rounded to the scale PostgreSQL chooses.
    pub fn sqrt(&self) -> NResult {
        let (m, scale) = match self {
            Numeric::NaN => return Ok(Numeric::NaN),
            Numeric::Inf(true) => return Err(NumericError::NegativeSqrt),
            Numeric::Inf(false) => return Ok(self.clone()),
            Numeric::Finite { m, scale } => (m, *scale),
        };
        if m.sign() == Sign::Minus {
            return Err(NumericError::NegativeSqrt);
        }
        let (weight, _) = weight_first(m, scale);
        let sweight = (i64::from(weight) + 1) * 4 / 2 - 1;
        let rscale = (MIN_SIG_DIGITS - sweight)
            .max(i64::from(scale))
            .clamp(0, MAX_DISPLAY_SCALE) as u32;
        // The root's floor with one guard digit, rounded half up on that digit: the
        // discarded fraction below the guard digit can never carry it over a boundary,
        // so this is the correctly rounded root.
        let shift = 2 * (rscale + 1) - scale;
        let root = (m * pow10(shift)).sqrt();
        Numeric::finite((root + 5u8) / 10u8, rscale)
    }

    /// The value rounded to an integer for a cast to int2/int4/int8 (`bits`), range checked.
    pub fn to_int(&self, bits: u32) -> Result<i64, NumericError> {
        let name = match bits {
            16 => "smallint",
            32 => "integer",
            _ => "bigint",
        };
        match self {
            Numeric::NaN => Err(NumericError::NotInteger("NaN", name)),
            Numeric::Inf(_) => Err(NumericError::NotInteger("infinity", name)),
            Numeric::Finite { m, scale } => {
                let r = rescale_m(m, *scale, 0, Rounding::HalfAway);
                let (min, max) = match bits {
                    16 => (i64::from(i16::MIN), i64::from(i16::MAX)),
                    32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
                    _ => (i64::MIN, i64::MAX),
                };
                r.to_i64()
                    .filter(|v| (min..=max).contains(v))
                    .ok_or(NumericError::IntegerRange(name))
            }
        }
    }

    /// Applies `numeric(p,s)`: rounds to `s` digits and refuses a value with more than
    /// `p - s` digits before the point (22003). NaN fits; an infinity does not.
    pub fn apply_typmod(&self, precision: u32, scale: i32) -> NResult {
        match self {
            Numeric::NaN => Ok(Numeric::NaN),
            Numeric::Inf(_) => Err(NumericError::FieldInfinite(precision, scale)),
            Numeric::Finite { .. } => {
                // A negative scale rounds left of the point and shows no fraction.
                let r = if scale >= 0 {
                    self.rescale(scale as u32)
                } else {
                    self.round_to(i64::from(scale), Rounding::HalfAway)?
                };
                // The value must stay below 10^(precision - scale), which is below 1 when
                // the scale exceeds the precision.
                let max = i64::from(precision) - i64::from(scale);
                if let Numeric::Finite { m, scale: s } = &r {
                    if !m.is_zero() {
                        let lead = m.magnitude().to_string().len() as i64 - i64::from(*s);
                        if lead > max {
                            return Err(NumericError::Field(precision, scale, max));
                        }
                    }
                }
                Ok(r)
            }
        }
    }
}

/// The scale of a quotient (PostgreSQL's select_div_scale): enough for 16 significant
/// digits given the estimated weight of the quotient in base-10000 digits, never less
/// than either operand's scale, at most 1000.
fn div_scale(a: &BigInt, sa: u32, b: &BigInt, sb: u32) -> u32 {
    let (w1, f1) = weight_first(a, sa);
    let (w2, f2) = weight_first(b, sb);
    let mut qweight = i64::from(w1) - i64::from(w2);
    if f1 <= f2 {
        qweight -= 1;
    }
    (MIN_SIG_DIGITS - qweight * 4)
        .max(i64::from(sa))
        .max(i64::from(sb))
        .clamp(0, MAX_DISPLAY_SCALE) as u32
}

/// PostgreSQL stores numerics in base-10000 digits aligned on the decimal point; its scale
/// rules look at the weight of the first non-zero one (10000^weight) and its value.
/// Zero has weight 0 and first digit 0.
pub(super) fn weight_first(m: &BigInt, scale: u32) -> (i32, u32) {
    if m.is_zero() {
        return (0, 0);
    }
    let digits = m.magnitude().to_string();
    // The decimal exponent of the leading digit.
    let e = digits.len() as i64 - 1 - i64::from(scale);
    let weight = e.div_euclid(4);
    let take = (e - 4 * weight + 1) as usize;
    let mut first = 0u32;
    for i in 0..take {
        let d = digits.as_bytes().get(i).map_or(0, |c| u32::from(c - b'0'));
        first = first * 10 + d;
    }
    (weight as i32, first)
}

/// The greatest common divisor by Euclid's remainders, as PostgreSQL computes it: one
/// step when one side is small, where the binary algorithm would take one step per bit of
/// the larger (hundreds of thousands for numeric's largest values).
fn euclid(a: BigInt, b: BigInt) -> BigInt {
    let (mut a, mut b) = (a.abs(), b.abs());
    while !b.is_zero() {
        let r = &a % &b;
        a = b;
        b = r;
    }
    a
}
