//! Why a value could not be converted, with its SQLSTATE.

use sql_capture::PgType;

/// A value PostgreSQL would refuse, with its SQLSTATE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    /// SQLSTATE (22P02, 22003, 22001, 22008, 22023).
    pub code: &'static str,
    /// PostgreSQL-style message.
    pub message: String,
}

impl From<crate::numeric::NumericError> for ValueError {
    fn from(e: crate::numeric::NumericError) -> Self {
        ValueError {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

pub(super) fn invalid(ty: PgType, input: &str) -> ValueError {
    ValueError {
        code: "22P02",
        message: format!("invalid input syntax for type {}: \"{}\"", ty.name(), input),
    }
}

pub(super) fn out_of_range(ty: PgType, input: &str) -> ValueError {
    ValueError {
        code: "22003",
        message: format!("value \"{input}\" is out of range for type {}", ty.name()),
    }
}

pub(super) type VResult<T> = std::result::Result<T, ValueError>;
