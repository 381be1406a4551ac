//! json/jsonb errors, each with the SQLSTATE PostgreSQL gives.

/// An error with PostgreSQL's SQLSTATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// SQLSTATE.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

impl JsonError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        JsonError {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn syntax(message: &str) -> Self {
        JsonError::new("22P02", message)
    }

    pub(crate) fn unicode(detail: &str) -> Self {
        JsonError::new(
            "22P05",
            format!("unsupported Unicode escape sequence ({detail})"),
        )
    }
}
