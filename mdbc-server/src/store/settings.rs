//! Session settings as SQL sees them: PostgreSQL's defaults (what SHOW reports and RESET
//! restores), and `current_setting` / `__mdbc_settings` (behind the pg_settings view) over
//! a session's map. Every connection has them — a view that calls them is checked by
//! SQLite whenever a table is renamed, on whatever connection renames it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

/// The PostgreSQL version mdbc presents itself as; clients adapt their queries to it.
pub const SERVER_VERSION: &str = concat!("16.6 (mdbc ", env!("CARGO_PKG_VERSION"), ")");

/// A session's settings, shared with the SQL functions that read them.
pub type Settings = Arc<Mutex<BTreeMap<String, String>>>;

/// Defaults reported by SHOW and restored by RESET.
pub fn default_settings() -> BTreeMap<String, String> {
    [
        ("application_name", ""),
        ("client_encoding", "UTF8"),
        ("client_min_messages", "notice"),
        ("datestyle", "ISO, MDY"),
        ("default_transaction_isolation", "serializable"),
        ("default_transaction_read_only", "off"),
        ("default_transaction_deferrable", "off"),
        ("extra_float_digits", "1"),
        ("integer_datetimes", "on"),
        ("intervalstyle", "postgres"),
        ("is_superuser", "on"),
        ("lc_messages", "C"),
        ("lock_timeout", "0"),
        ("max_identifier_length", "63"),
        ("search_path", "\"$user\", public"),
        ("server_encoding", "UTF8"),
        ("server_version", SERVER_VERSION),
        ("server_version_num", "160006"),
        ("standard_conforming_strings", "on"),
        ("statement_timeout", "0"),
        ("timezone", "UTC"),
        ("transaction_isolation", "serializable"),
        ("transaction_read_only", "off"),
        ("transaction_deferrable", "off"),
        ("idle_in_transaction_session_timeout", "0"),
        ("synchronous_commit", "on"),
        ("bytea_output", "hex"),
        ("row_security", "on"),
        ("jit", "off"),
        ("work_mem", "4MB"),
        ("default_table_access_method", "heap"),
        ("max_connections", "500"),
        ("block_size", "8192"),
        // A single site; a cluster member reports its own name.
        ("mdbc.site", "main"),
        // `default`: reads of strong tables are linearizable; `local`: every read sees
        // what this site has applied, without asking the others.
        ("mdbc.read_consistency", "default"),
        // `refuse`: a write to a strong table after the transaction read a table that may
        // be stale here (eventual, causal, bounded) fails; `allow`: the session takes that.
        ("mdbc.strong_after_stale_read", "refuse"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Registers `current_setting(name [, missing_ok])` and `__mdbc_settings()` on `conn`,
/// reading `settings`.
pub fn register_settings(conn: &Connection, settings: Settings) -> rusqlite::Result<()> {
    for n in [1, 2] {
        let map = settings.clone();
        conn.create_scalar_function(
            "current_setting",
            n,
            FunctionFlags::SQLITE_UTF8,
            move |ctx| {
                let name = ctx.get::<String>(0)?.to_ascii_lowercase();
                let missing_ok = n == 2 && ctx.get::<Option<bool>>(1)?.unwrap_or(false);
                let value = map
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&name)
                    .cloned();
                match value {
                    Some(v) => Ok(Some(v)),
                    None if missing_ok => Ok(None),
                    None => Err(rusqlite::Error::UserFunctionError(
                        format!("[42704] unrecognized configuration parameter \"{name}\"").into(),
                    )),
                }
            },
        )?;
    }
    let map = settings.clone();
    conn.create_scalar_function(
        "__mdbc_settings",
        0,
        FunctionFlags::SQLITE_UTF8,
        move |_| {
            let map = map.lock().unwrap_or_else(|e| e.into_inner());
            Ok(serde_json::to_string(&*map).unwrap_or_default())
        },
    )
}
