//! Why a numeric operation failed, with PostgreSQL's SQLSTATE and message.

/// A numeric error as PostgreSQL 15 reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumericError {
    /// Text that is no numeric.
    #[error("invalid input syntax for type numeric: \"{0}\"")]
    Syntax(String),
    /// Beyond 131072 digits before the point or 16383 after.
    #[error("value overflows numeric format")]
    Overflow,
    /// A division or remainder by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// A value too wide for `numeric(p,s)`.
    #[error("numeric field overflow: a field with precision {0}, scale {1} must round to an absolute value less than {limit}", limit = power_of_ten(*.2))]
    Field(u32, i32, i64),
    /// An infinity stored into `numeric(p,s)`.
    #[error("numeric field overflow: a field with precision {0}, scale {1} cannot hold an infinite value")]
    FieldInfinite(u32, i32),
    /// NaN or an infinity cast to an integer type (the type's name).
    #[error("cannot convert {0} to {1}")]
    NotInteger(&'static str, &'static str),
    /// A cast to an integer type beyond its range (the type's name).
    #[error("{0} out of range")]
    IntegerRange(&'static str),
    /// `sqrt` of a negative number.
    #[error("cannot take square root of a negative number")]
    NegativeSqrt,
    /// `ln` or `log` of zero.
    #[error("cannot take logarithm of zero")]
    LogZero,
    /// `ln` or `log` of a negative number.
    #[error("cannot take logarithm of a negative number")]
    LogNegative,
    /// `0 ^ negative`.
    #[error("zero raised to a negative power is undefined")]
    ZeroNegativePower,
    /// `negative ^ non-integer`.
    #[error("a negative number raised to a non-integer power yields a complex result")]
    ComplexPower,
    /// A numeric function mdbc does not compute exactly (its name).
    #[error("{0}(numeric) is not supported by mdbc")]
    Unsupported(String),
}

impl NumericError {
    /// PostgreSQL's SQLSTATE for the error.
    pub fn code(&self) -> &'static str {
        match self {
            NumericError::Syntax(_) => "22P02",
            NumericError::Overflow
            | NumericError::Field(..)
            | NumericError::FieldInfinite(..)
            | NumericError::IntegerRange(_) => "22003",
            NumericError::DivisionByZero => "22012",
            NumericError::NotInteger(..) | NumericError::Unsupported(_) => "0A000",
            NumericError::NegativeSqrt
            | NumericError::ZeroNegativePower
            | NumericError::ComplexPower => "2201F",
            NumericError::LogZero | NumericError::LogNegative => "2201E",
        }
    }
}

/// `10^n` as PostgreSQL's message writes it (`1` for n = 0).
fn power_of_ten(n: i64) -> String {
    if n == 0 {
        "1".into()
    } else {
        format!("10^{n}")
    }
}
