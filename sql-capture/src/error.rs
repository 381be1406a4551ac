//! Errors of parsing and translation, each with the SQLSTATE a client should see.

/// Result of this crate's operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Why a statement cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not valid SQL (42601).
    #[error("syntax error: {0}")]
    Syntax(String),
    /// Valid PostgreSQL that mdbc does not support; the message names the construct (0A000).
    #[error("{0} is not supported by mdbc")]
    Unsupported(String),
    /// A table that does not exist (42P01).
    #[error("relation \"{0}\" does not exist")]
    UndefinedTable(String),
    /// A column that does not exist (42703).
    #[error("column \"{0}\" does not exist")]
    UndefinedColumn(String),
    /// A type name mdbc does not know (42704).
    #[error("type \"{0}\" does not exist")]
    UndefinedType(String),
    /// An object that already exists (42P07).
    #[error("relation \"{0}\" already exists")]
    DuplicateTable(String),
    /// A column named twice in one table (42701).
    #[error("column \"{0}\" specified more than once")]
    DuplicateColumn(String),
    /// A malformed value or argument (22023).
    #[error("{0}")]
    InvalidParameter(String),
    /// An operation the operand's type does not have (42804).
    #[error("{0}")]
    DatatypeMismatch(String),
    /// Another error PostgreSQL raises while analysing a statement, with its SQLSTATE.
    #[error("{1}")]
    Coded(&'static str, String),
}

impl Error {
    /// The PostgreSQL SQLSTATE for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Syntax(_) => "42601",
            Error::Unsupported(_) => "0A000",
            Error::UndefinedTable(_) => "42P01",
            Error::UndefinedColumn(_) => "42703",
            Error::UndefinedType(_) => "42704",
            Error::DuplicateTable(_) => "42P07",
            Error::DuplicateColumn(_) => "42701",
            Error::InvalidParameter(_) => "22023",
            Error::DatatypeMismatch(_) => "42804",
            Error::Coded(code, _) => code,
        }
    }
}
