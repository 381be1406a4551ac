//! `exp`, `ln`, `log` and `power` on numeric, with PostgreSQL 15's result scales.
//!
//! Each is computed in fixed point (an integer scaled by 10^p) with guard digits well
//! beyond the result's scale, then rounded half away from zero to the scale PostgreSQL
//! chooses (numeric.c's exp_var, estimate_ln_dweight, log_var, power_var and
//! power_var_int give the rules restated here). Infinite arguments to `power` are refused
//! (0A000) rather than guessed.

use num_bigint::{BigInt, Sign};
use num_traits::{Signed, ToPrimitive, Zero};

use super::{div_round, pow10, rescale_m, Numeric, NumericError, Rounding, MAX_INT_DIGITS};

type NResult = Result<Numeric, NumericError>;

const MIN_SIG_DIGITS: i64 = 16;
const MAX_DISPLAY_SCALE: i64 = 1000;
/// Digits carried beyond the result's scale.
const GUARD: i64 = 24;

fn clamp_scale(s: i64) -> u32 {
    s.clamp(0, MAX_DISPLAY_SCALE) as u32
}

/// The value's base-10000 digits, most significant first, and the weight of the first
/// (PostgreSQL's storage form; its scale rules read it).
fn nbase(m: &BigInt, scale: u32) -> (i64, Vec<u32>) {
    if m.is_zero() {
        return (0, Vec::new());
    }
    let digits = m.magnitude().to_string();
    let int_len = digits.len() as i64 - i64::from(scale);
    // Pad so that the point falls on a group boundary.
    let lead = (4 - int_len.rem_euclid(4)) % 4;
    let mut s = "0".repeat(lead as usize) + &digits;
    while !s.len().is_multiple_of(4) {
        s.push('0');
    }
    let weight = (int_len + lead) / 4 - 1;
    let groups: Vec<u32> = s
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0')))
        .collect();
    // Leading zero groups move the weight down.
    let skip = groups.iter().take_while(|g| **g == 0).count();
    let mut groups = groups[skip..].to_vec();
    while groups.last() == Some(&0) {
        groups.pop();
    }
    (weight - skip as i64, groups)
}

/// PostgreSQL's estimate of the decimal weight of ln(x) (estimate_ln_dweight).
fn ln_dweight(m: &BigInt, scale: u32) -> i64 {
    if m.sign() != Sign::Plus {
        return 0;
    }
    let x = Numeric::Finite {
        m: m.clone(),
        scale,
    };
    let lo = Numeric::Finite {
        m: BigInt::from(9),
        scale: 1,
    };
    let hi = Numeric::Finite {
        m: BigInt::from(11),
        scale: 1,
    };
    if x >= lo && x <= hi {
        let one = pow10(scale);
        let d = m - one;
        if d.is_zero() {
            return 0;
        }
        let (w, g) = nbase(&d, scale);
        return w * 4 + (f64::from(g[0])).log10() as i64;
    }
    let (w, g) = nbase(m, scale);
    if g.is_empty() {
        return 0;
    }
    let mut digits = f64::from(g[0]);
    let mut dweight = w * 4;
    if g.len() > 1 {
        digits = digits * 10000.0 + f64::from(g[1]);
        dweight -= 4;
    }
    let ln = digits.ln() + dweight as f64 * std::f64::consts::LN_10;
    ln.abs().log10() as i64
}

/// `m / 10^scale` as a fixed-point integer with `p` digits after the point (truncated).
fn fixed(m: &BigInt, scale: u32, p: u32) -> BigInt {
    rescale_m(m, scale, p, Rounding::Truncate)
}

/// ln of a positive fixed-point value `x` (scale `p`), as a fixed-point value of scale `p`.
fn ln_fixed(x: &BigInt, p: u32) -> BigInt {
    let one = pow10(p);
    // x = y · 10^k with y in [1, 10).
    let digits = x.magnitude().to_string().len() as i64;
    let k = digits - 1 - i64::from(p);
    let y = if k >= 0 {
        x / pow10(k as u32)
    } else {
        x * pow10((-k) as u32)
    };
    let ln10 = if k != 0 {
        ln_near_one(&(&one * 10u8), p)
    } else {
        BigInt::zero()
    };
    ln_near_one(&y, p) + ln10 * k
}

/// ln(y) for y ≥ 1 given in fixed point: square roots until y is within 1% of 1, then
/// 2·atanh((y-1)/(y+1)), times 2 per square root taken.
fn ln_near_one(y: &BigInt, p: u32) -> BigInt {
    let one = pow10(p);
    let near = &one / 100u8;
    let mut y = y.clone();
    let mut halvings = 0u32;
    while (&y - &one).abs() > near {
        y = (&y * &one).sqrt();
        halvings += 1;
    }
    let t = div_round(&((&y - &one) * &one), &(&y + &one), Rounding::HalfAway);
    let t2 = &t * &t / &one;
    let mut sum = BigInt::zero();
    let mut power = t.clone();
    let mut n = 1u32;
    while !power.is_zero() {
        sum += &power / n;
        power = &power * &t2 / &one;
        n += 2;
    }
    (sum * 2u8) << halvings
}

/// exp of a fixed-point value `x` (scale `p`), as a fixed-point value of scale `p`.
fn exp_fixed(x: &BigInt, p: u32) -> BigInt {
    let one = pow10(p);
    // Halve until |r| < 0.01, sum the series, square back.
    let mut halvings = 0u32;
    let limit = &one / 100u8;
    let mut r = x.clone();
    while r.abs() > limit {
        r = div_round(&r, &BigInt::from(2), Rounding::HalfAway);
        halvings += 1;
    }
    let mut sum = one.clone();
    let mut term = one.clone();
    let mut n = 1u32;
    loop {
        term = &term * &r / &one / n;
        if term.is_zero() {
            break;
        }
        sum += &term;
        n += 1;
    }
    for _ in 0..halvings {
        sum = &sum * &sum / &one;
    }
    sum
}

/// Rounds a fixed-point value of scale `p` to `rscale` digits.
fn finish(v: BigInt, p: u32, rscale: u32) -> NResult {
    Numeric::finite(rescale_m(&v, p, rscale, Rounding::HalfAway), rscale)
}

impl Numeric {
    /// `exp(x)`.
    pub fn exp(&self) -> NResult {
        let (m, scale) = match self {
            Numeric::NaN => return Ok(Numeric::NaN),
            Numeric::Inf(false) => return Ok(self.clone()),
            Numeric::Inf(true) => return Ok(Numeric::zero()),
            Numeric::Finite { m, scale } => (m, *scale),
        };
        let val = self.to_f64();
        // Decimal weight of the result: x·log10(e).
        let dweight = (val * std::f64::consts::LOG10_E).clamp(-2000.0, 2000.0);
        if val * std::f64::consts::LOG10_E > MAX_INT_DIGITS as f64 {
            return Err(NumericError::Overflow);
        }
        let rscale = clamp_scale((MIN_SIG_DIGITS - dweight as i64).max(i64::from(scale)));
        let extra = dweight.max(0.0) as i64 + 12; // squarings magnify the error
        let p = (i64::from(rscale) + extra + GUARD) as u32;
        finish(exp_fixed(&fixed(m, scale, p), p), p, rscale)
    }

    /// `ln(x)`.
    pub fn ln(&self) -> NResult {
        let (m, scale) = match self {
            Numeric::NaN => return Ok(Numeric::NaN),
            Numeric::Inf(false) => return Ok(self.clone()),
            Numeric::Inf(true) => return Err(NumericError::LogNegative),
            Numeric::Finite { m, scale } => (m, *scale),
        };
        match m.sign() {
            Sign::NoSign => return Err(NumericError::LogZero),
            Sign::Minus => return Err(NumericError::LogNegative),
            Sign::Plus => {}
        }
        let rscale = clamp_scale((MIN_SIG_DIGITS - ln_dweight(m, scale)).max(i64::from(scale)));
        let p = (i64::from(rscale) + GUARD + 8) as u32;
        finish(ln_fixed(&fixed(m, scale, p), p), p, rscale)
    }

    /// `log(base, x)` (and `log(x)`, which is `log(10, x)`).
    pub fn log(&self, base: &Numeric) -> NResult {
        let (Numeric::Finite { m: bm, scale: bs }, Numeric::Finite { m, scale }) = (base, self)
        else {
            if matches!(base, Numeric::NaN) || matches!(self, Numeric::NaN) {
                return Ok(Numeric::NaN);
            }
            return Err(NumericError::Unsupported(
                "log with an infinite argument".into(),
            ));
        };
        for v in [bm, m] {
            match v.sign() {
                Sign::NoSign => return Err(NumericError::LogZero),
                Sign::Minus => return Err(NumericError::LogNegative),
                Sign::Plus => {}
            }
        }
        let dweight = ln_dweight(m, *scale) - ln_dweight(bm, *bs);
        let rscale = clamp_scale(
            (MIN_SIG_DIGITS - dweight)
                .max(i64::from(*bs))
                .max(i64::from(*scale)),
        );
        let p = (i64::from(rscale) + GUARD + 8) as u32;
        let ln_b = ln_fixed(&fixed(bm, *bs, p), p);
        if ln_b.is_zero() {
            return Err(NumericError::DivisionByZero);
        }
        let ln_x = ln_fixed(&fixed(m, *scale, p), p);
        let q = div_round(&(ln_x * pow10(rscale)), &ln_b, Rounding::HalfAway);
        Numeric::finite(q, rscale)
    }

    /// `power(x, y)` and `x ^ y`.
    pub fn power(&self, exponent: &Numeric) -> NResult {
        use Numeric::*;
        match (self, exponent) {
            // POSIX pow: NaN ^ 0 and 1 ^ NaN are 1; any other NaN gives NaN.
            (NaN, e) if e.is_zero() => return Ok(Numeric::from_i64(1)),
            (Finite { m, scale }, NaN) if *m == pow10(*scale) => return Ok(Numeric::from_i64(1)),
            (NaN, _) | (_, NaN) => return Ok(NaN),
            (Inf(_), _) | (_, Inf(_)) => {
                return Err(NumericError::Unsupported(
                    "power with an infinite argument".into(),
                ))
            }
            _ => {}
        }
        let (Finite { m, scale }, Finite { m: em, scale: es }) = (self, exponent) else {
            return Ok(NaN);
        };
        // An integral exponent that fits in int4: exact power, then rounded.
        let integral = if *es == 0 {
            Some(em.clone())
        } else {
            let d = pow10(*es);
            (em % &d).is_zero().then(|| em / d)
        };
        if let Some(n) = integral.and_then(|n| n.to_i32()) {
            return power_int(m, *scale, n);
        }
        if m.is_zero() {
            if em.sign() == Sign::Minus {
                return Err(NumericError::ZeroNegativePower);
            }
            return Numeric::finite(BigInt::zero(), MIN_SIG_DIGITS as u32);
        }
        if m.sign() == Sign::Minus {
            return Err(NumericError::ComplexPower);
        }
        // exp(y · ln x), the scale from the result's estimated weight.
        let ln_est = ln_fixed(&fixed(m, *scale, 30), 30);
        let val = ln_est.to_f64().unwrap_or(0.0) / 1e30 * exponent.to_f64();
        if val.abs() > MAX_INT_DIGITS as f64 * std::f64::consts::LN_10 {
            if val > 0.0 {
                return Err(NumericError::Overflow);
            }
            return Numeric::finite(BigInt::zero(), MAX_DISPLAY_SCALE as u32);
        }
        let dweight = val * std::f64::consts::LOG10_E;
        let rscale = clamp_scale(
            (MIN_SIG_DIGITS - dweight as i64)
                .max(i64::from(*scale))
                .max(i64::from(*es)),
        );
        let p = (i64::from(rscale) + dweight.abs() as i64 + GUARD + 12) as u32;
        let ln_x = ln_fixed(&fixed(m, *scale, p), p);
        let y = fixed(em, *es, p);
        let product = ln_x * y / pow10(p);
        finish(exp_fixed(&product, p), p, rscale)
    }
}

/// log10(|m / 10^scale|) in double precision, for values beyond a double's range too.
fn log10_abs(m: &BigInt, scale: u32) -> f64 {
    let digits = m.magnitude().to_string();
    let lead: f64 = format!("0.{}", &digits[..digits.len().min(17)])
        .parse()
        .unwrap_or(0.1);
    lead.log10() + digits.len() as f64 - f64::from(scale)
}

/// `x ^ n` for an integral `n` that fits in int4 (PostgreSQL 15's power_var with
/// power_var_int): the scale is at least 16 and the base's, the value exact before
/// rounding.
fn power_int(m: &BigInt, scale: u32, n: i32) -> NResult {
    let rscale = clamp_scale(MIN_SIG_DIGITS.max(i64::from(scale)));
    if n == 0 {
        return Numeric::finite(pow10(rscale), rscale);
    }
    if m.is_zero() {
        if n < 0 {
            return Err(NumericError::ZeroNegativePower);
        }
        return Numeric::finite(BigInt::zero(), rscale);
    }
    // The result's decimal weight, to refuse an overflow before computing it.
    let weight = f64::from(n) * log10_abs(m, scale);
    if weight > MAX_INT_DIGITS as f64 + 1.0 {
        return Err(NumericError::Overflow);
    }
    let k = n.unsigned_abs();
    if weight < -(2.0 * MAX_DISPLAY_SCALE as f64) {
        // Far below the scale: rounds to zero.
        return Numeric::finite(BigInt::zero(), rscale);
    }
    let mdigits = m.magnitude().to_string().len() as u64;
    if u64::from(k) * mdigits > 20_000 {
        // An exact power would have more digits than the result can use: exp(n · ln x)
        // with enough guard digits for its scale instead.
        let p = (i64::from(rscale) + weight.abs() as i64 + GUARD + 12) as u32;
        let ln_x = ln_fixed(&fixed(&m.abs(), scale, p), p);
        let mut v = exp_fixed(&(ln_x * n), p);
        if m.sign() == Sign::Minus && k % 2 == 1 {
            v = -v;
        }
        return finish(v, p, rscale);
    }
    let num = m.pow(k);
    let den_scale = scale * k;
    if n > 0 {
        return Numeric::finite(
            rescale_m(&num, den_scale, rscale, Rounding::HalfAway),
            rscale,
        );
    }
    let q = div_round(&pow10(den_scale + rscale), &num, Rounding::HalfAway);
    Numeric::finite(q, rscale)
}
