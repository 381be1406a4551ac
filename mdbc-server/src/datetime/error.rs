//! Errors of date/time input and arithmetic, with PostgreSQL's SQLSTATEs.

/// A date/time error: the SQLSTATE PostgreSQL gives and its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DtError {
    /// SQLSTATE.
    pub code: &'static str,
    /// Message as PostgreSQL words it.
    pub message: String,
}

pub(crate) type DtResult<T> = Result<T, DtError>;

impl DtError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> DtError {
        DtError {
            code,
            message: message.into(),
        }
    }

    /// 22007: text that is not a value of the type.
    pub(crate) fn syntax(type_name: &str, input: &str) -> DtError {
        DtError::new(
            "22007",
            format!("invalid input syntax for type {type_name}: \"{input}\""),
        )
    }

    /// 22008: a field out of range (`2020-02-30`).
    pub(crate) fn field(input: &str) -> DtError {
        DtError::new(
            "22008",
            format!("date/time field value out of range: \"{input}\""),
        )
    }

    /// 22008: a result outside the type's range.
    pub(crate) fn range(type_name: &str) -> DtError {
        DtError::new("22008", format!("{type_name} out of range"))
    }

    /// 0A000 / 22023 for a unit a function does not take.
    pub(crate) fn unit(unit: &str, type_name: &str) -> DtError {
        DtError::new(
            "22023",
            format!("unit \"{unit}\" not recognized for type {type_name}"),
        )
    }

    pub(crate) fn unit_unsupported(unit: &str, type_name: &str) -> DtError {
        DtError::new(
            "0A000",
            format!("unit \"{unit}\" not supported for type {type_name}"),
        )
    }
}
