//! Every error a client can see, mapped once to a PostgreSQL SQLSTATE and message.

use pgwire::error::{ErrorInfo, PgWireError};
use rusqlite::ffi;

use crate::store::RebuildError;
use crate::values::ValueError;

/// An error answering one statement.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// Parsing or translation refused the statement.
    #[error(transparent)]
    Capture(#[from] sql_capture::Error),
    /// SQLite refused.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A value could not be converted.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// A table rebuild failed.
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
    /// Statement inside a transaction that already failed.
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    InFailedTransaction,
    /// Savepoint commands outside a transaction block.
    #[error("{0} can only be used in transaction blocks")]
    NoTransaction(&'static str),
    /// A malformed request at the protocol level.
    #[error("{0}")]
    Protocol(String),
    /// Anything else, with its SQLSTATE.
    #[error("{message}")]
    Coded {
        /// SQLSTATE.
        code: &'static str,
        /// Message.
        message: String,
    },
}

impl SqlError {
    /// A coded error.
    pub fn coded(code: &'static str, message: impl Into<String>) -> Self {
        SqlError::Coded {
            code,
            message: message.into(),
        }
    }

    /// SQLSTATE and message.
    pub fn code_and_message(&self) -> (String, String) {
        match self {
            SqlError::Capture(e) => (e.sqlstate().into(), e.to_string()),
            SqlError::Sqlite(e) => sqlite_code(e),
            SqlError::Value(e) => (e.code.into(), e.message.clone()),
            SqlError::Rebuild(RebuildError::Sqlite(e)) => sqlite_code(e),
            SqlError::Rebuild(RebuildError::Definition(e)) => (e.sqlstate().into(), e.to_string()),
            SqlError::Rebuild(e @ RebuildError::NullValues { .. }) => {
                ("23502".into(), e.to_string())
            }
            SqlError::Rebuild(e @ RebuildError::ForeignKey(_)) => ("23503".into(), e.to_string()),
            SqlError::InFailedTransaction => ("25P02".into(), self.to_string()),
            SqlError::NoTransaction(_) => ("25P01".into(), self.to_string()),
            SqlError::Protocol(m) => ("08P01".into(), m.clone()),
            SqlError::Coded { code, message } => ((*code).into(), message.clone()),
        }
    }

    /// The ErrorResponse fields.
    pub fn to_error_info(&self) -> ErrorInfo {
        let (code, message) = self.code_and_message();
        ErrorInfo::new("ERROR".into(), code, message)
    }

    /// As a pgwire error.
    pub fn into_pgwire(self) -> PgWireError {
        PgWireError::UserError(Box::new(self.to_error_info()))
    }
}

/// Maps SQLite's error to PostgreSQL's SQLSTATE and wording.
fn sqlite_code(e: &rusqlite::Error) -> (String, String) {
    let (err, msg) = match e {
        rusqlite::Error::SqliteFailure(err, msg) => (Some(*err), msg.clone().unwrap_or_default()),
        rusqlite::Error::SqlInputError { error, msg, .. } => (Some(*error), msg.clone()),
        rusqlite::Error::UserFunctionError(inner) => (None, inner.to_string()),
        other => (None, other.to_string()),
    };
    // Errors raised by mdbc's SQL functions carry their SQLSTATE as a "[XXXXX] " prefix.
    if let Some(rest) = msg.strip_prefix('[') {
        if let Some((code, text)) = rest.split_once("] ") {
            if code.len() == 5 {
                return (code.into(), text.into());
            }
        }
    }
    let Some(err) = err else {
        return ("XX000".into(), msg);
    };
    let pg = |code: &str, m: String| (code.to_string(), m);
    match err.extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => pg(
            "23505",
            format!(
                "duplicate key value violates unique constraint ({})",
                msg.trim_start_matches("UNIQUE constraint failed: ")
            ),
        ),
        ffi::SQLITE_CONSTRAINT_NOTNULL => {
            let what = msg.trim_start_matches("NOT NULL constraint failed: ");
            let (table, column) = what.split_once('.').unwrap_or(("?", what));
            pg(
                "23502",
                format!("null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"),
            )
        }
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => pg(
            "23503",
            "insert or update on table violates foreign key constraint".into(),
        ),
        ffi::SQLITE_CONSTRAINT_CHECK
            if msg
                .trim_start_matches("CHECK constraint failed: ")
                .starts_with(sql_capture::NOT_NULL_CHECK) =>
        {
            let column = msg
                .trim_start_matches("CHECK constraint failed: ")
                .trim_start_matches(sql_capture::NOT_NULL_CHECK);
            pg(
                "23502",
                format!("null value in column \"{column}\" violates not-null constraint"),
            )
        }
        ffi::SQLITE_CONSTRAINT_CHECK => pg(
            "23514",
            format!(
                "new row violates check constraint ({})",
                msg.trim_start_matches("CHECK constraint failed: ")
            ),
        ),
        ffi::SQLITE_BUSY_SNAPSHOT => pg(
            "40001",
            "could not serialize access due to concurrent update; retry the transaction".into(),
        ),
        _ => match err.code {
            ffi::ErrorCode::OperationInterrupted => {
                pg("57014", "canceling statement due to user request".into())
            }
            ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked => pg(
                "40001",
                "could not serialize access: database is busy; retry the transaction".into(),
            ),
            ffi::ErrorCode::DiskFull => pg("53100", format!("could not extend file: {msg}")),
            ffi::ErrorCode::DatabaseCorrupt | ffi::ErrorCode::NotADatabase => {
                pg("XX001", format!("data corrupted: {msg}"))
            }
            ffi::ErrorCode::SystemIoFailure => pg("58030", format!("I/O error: {msg}")),
            ffi::ErrorCode::ReadOnly => pg("25006", msg),
            ffi::ErrorCode::TooBig => pg("54000", msg),
            ffi::ErrorCode::TypeMismatch => pg("42804", format!("datatype mismatch: {msg}")),
            ffi::ErrorCode::ConstraintViolation => pg("23000", msg),
            _ => classify_message(&msg),
        },
    }
}

fn classify_message(msg: &str) -> (String, String) {
    // Newer SQLite appends " in <statement> at offset N"; PostgreSQL names only the object.
    let quoted = |prefix: &str| {
        msg.strip_prefix(prefix).map(|s| {
            let s = match s.find(" in ") {
                Some(i) => &s[..i],
                None => s,
            };
            s.trim().to_string()
        })
    };
    // ALTER TABLE … DROP/RENAME COLUMN that a view reads: SQLite re-checks the view and
    // fails, where PostgreSQL's dependency check refuses first.
    if let Some(rest) = msg.strip_prefix("error in view ") {
        let view = rest.split([' ', ':']).next().unwrap_or("?");
        return (
            "2BP01".into(),
            format!("cannot change the table because view {view} depends on it ({msg})"),
        );
    }
    if let Some(t) = quoted("no such table: ") {
        let t = t.rsplit('.').next().unwrap_or(&t).to_string();
        return ("42P01".into(), format!("relation \"{t}\" does not exist"));
    }
    if let Some(c) = quoted("no such column: ") {
        return ("42703".into(), format!("column \"{c}\" does not exist"));
    }
    if let Some(f) = quoted("no such function: ") {
        return (
            "42883".into(),
            format!("function {} does not exist", f.to_ascii_lowercase()),
        );
    }
    if msg.starts_with("non-deterministic functions prohibited in ") {
        // SQLite's refusal of a function that may answer differently per session (a
        // LIKE, a cast reading the time zone) in an index: PostgreSQL's for a function
        // that is not immutable.
        let place = if msg.contains("WHERE") {
            "index predicate"
        } else {
            "index expression"
        };
        return (
            "42P17".into(),
            format!("functions in {place} must be marked IMMUTABLE"),
        );
    }
    if let Some(s) = quoted("no such savepoint: ") {
        return ("3B001".into(), format!("savepoint \"{s}\" does not exist"));
    }
    if let Some(i) = quoted("no such index: ") {
        return ("42704".into(), format!("index \"{i}\" does not exist"));
    }
    if let Some(c) = quoted("ambiguous column name: ") {
        return (
            "42702".into(),
            format!("column reference \"{c}\" is ambiguous"),
        );
    }
    if msg.contains("already exists") {
        return ("42P07".into(), msg.to_string());
    }
    if msg.contains("syntax error") || msg.starts_with("near ") {
        return ("42601".into(), msg.to_string());
    }
    if msg.contains("misuse of aggregate") {
        return ("42803".into(), msg.to_string());
    }
    if msg.contains("wrong number of arguments") {
        return ("42883".into(), msg.to_string());
    }
    if msg.contains("values for") && msg.contains("columns") {
        return ("42601".into(), msg.to_string());
    }
    ("XX000".into(), msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(sql: &str) -> String {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT NOT NULL UNIQUE)")
            .unwrap();
        c.execute_batch("INSERT INTO t VALUES (1, 'x')").unwrap();
        let e = c.execute_batch(sql).unwrap_err();
        SqlError::from(e).code_and_message().0
    }

    #[test]
    fn sqlite_errors_map_to_sqlstate() {
        assert_eq!(code("INSERT INTO t VALUES (1, 'y')"), "23505");
        assert_eq!(code("INSERT INTO t VALUES (2, 'x')"), "23505");
        assert_eq!(code("INSERT INTO t VALUES (3, NULL)"), "23502");
        assert_eq!(code("SELECT * FROM nope"), "42P01");
        assert_eq!(code("SELECT nope FROM t"), "42703");
        assert_eq!(code("SELECT nope()"), "42883");
    }
}
