//! Why the store could not open or maintain the database.

use std::path::PathBuf;

/// Errors opening or maintaining the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Filesystem problem.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file was written by a newer mdbc.
    #[error(
        "database schema version {found} is newer than this mdbc-server understands ({known})"
    )]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest this binary knows.
        known: i64,
    },
}
