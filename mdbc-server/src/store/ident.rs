//! Who a session is.

/// Who a session is, for the SQL functions that report it.
#[derive(Debug, Clone)]
pub struct SessionIdent {
    /// Backend pid (from BackendKeyData).
    pub pid: i32,
    /// Login user.
    pub user: String,
    /// Database name the client asked for.
    pub database: String,
}
