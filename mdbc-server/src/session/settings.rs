//! A session's settings: PostgreSQL's defaults as clients expect to SHOW them, the
//! values SET may take, and mdbc's own (`mdbc.site`, `mdbc.read_consistency`,
//! `mdbc.strong_after_stale_read`). Shared with the SQL functions that read them
//! (`current_setting`, and `__mdbc_settings` behind the pg_settings view).

use std::collections::BTreeMap;
use std::sync::Arc;

use sql_capture::{PgType, SetValue};

use super::outcome::Column;
use crate::datetime::sql::SessionZone;
use crate::datetime::{DateCtx, DateOrder, IntervalStyle, Zone};
use crate::errors::SqlError;
use crate::store::{self, default_settings};

type Result<T> = std::result::Result<T, SqlError>;

/// The session's settings, shared with the SQL functions that read them
/// (`current_setting`, and `__mdbc_settings` behind the pg_settings view); the time zone
/// also parsed, for the date/time functions and the output of timestamptz.
#[derive(Clone)]
pub struct Settings(Arc<std::sync::Mutex<BTreeMap<String, String>>>, SessionZone);

impl Default for Settings {
    fn default() -> Self {
        Settings::new()
    }
}

impl Settings {
    /// A new session's settings: the defaults.
    pub fn new() -> Settings {
        Settings(
            Arc::new(std::sync::Mutex::new(default_settings())),
            SessionZone::default(),
        )
    }

    /// The session's time zone, shared with the functions that read it.
    pub fn zone(&self) -> &SessionZone {
        &self.1
    }

    /// `SET mdbc.read_consistency = 'local'`: reads take what this site has.
    pub fn read_local(&self) -> bool {
        self.is("mdbc.read_consistency", "local")
    }

    /// `SET mdbc.strong_after_stale_read = 'allow'`.
    pub fn allow_stale_strong(&self) -> bool {
        self.is("mdbc.strong_after_stale_read", "allow")
    }

    /// Whether the current transaction is read-only (`SET TRANSACTION READ ONLY`, or the
    /// session's default outside a block).
    pub fn read_only(&self, in_block: bool) -> bool {
        let key = if in_block {
            "transaction_read_only"
        } else {
            "default_transaction_read_only"
        };
        self.is(key, "on")
    }

    /// A transaction starts or ends: its modes become the session's defaults again.
    pub fn reset_transaction_modes(&self) {
        let mut m = self.lock();
        for (current, default) in [
            ("transaction_isolation", "default_transaction_isolation"),
            ("transaction_read_only", "default_transaction_read_only"),
            ("transaction_deferrable", "default_transaction_deferrable"),
        ] {
            if let Some(v) = m.get(default).cloned() {
                m.insert(current.to_string(), v);
            }
        }
    }

    /// Whether setting `key` is `value` (asked per statement: no copy).
    fn is(&self, key: &str, value: &str) -> bool {
        self.lock().get(key).is_some_and(|v| v == value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(super) fn get(&self, key: &str) -> Option<String> {
        self.lock().get(key).cloned()
    }
    pub(super) fn insert(&self, key: String, value: String) {
        self.lock().insert(key, value);
    }
    /// Every setting, by name.
    pub(super) fn all(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    pub(super) fn reset(&self) {
        *self.lock() = default_settings();
        let now = self.1.get().now;
        self.1.update(|c| {
            *c = DateCtx::utc();
            c.now = now;
        });
    }

    pub(super) fn register(&self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        store::register_settings(conn, self.0.clone())?;
        // set_config(name, value, is_local): SET from SQL, checked as SET checks it.
        let me = self.clone();
        conn.create_scalar_function(
            "set_config",
            3,
            rusqlite::functions::FunctionFlags::SQLITE_UTF8,
            move |ctx| {
                let fail = |code: &str, message: String| {
                    rusqlite::Error::UserFunctionError(format!("[{code}] {message}").into())
                };
                let Some(name) = ctx.get::<Option<String>>(0)? else {
                    return Err(fail("22004", "SET requires parameter name".into()));
                };
                let value = ctx.get::<Option<String>>(1)?.unwrap_or_default();
                if ctx.get::<Option<bool>>(2)?.unwrap_or(false) {
                    return Err(fail(
                        "0A000",
                        "set_config(…, is_local => true) is not supported by mdbc (settings last for the session)".into(),
                    ));
                }
                let key = name.to_ascii_lowercase();
                me.set(&key, &SetValue::Value(value)).map_err(|e| {
                    let (code, message) = e.code_and_message();
                    fail(&code, message)
                })?;
                Ok(me.show(&key).map(|(_, v)| v).unwrap_or_default())
            },
        )
    }
}

/// A `TimeZone` as SET takes it: `LOCAL`/`DEFAULT` (the server's zone, UTC), a number of
/// hours east of UTC, `INTERVAL '+02:00' HOUR TO MINUTE`, an IANA name, or a POSIX zone
/// (`UTC+3`, hours west).
fn parse_time_zone(v: &str) -> Option<Zone> {
    let t = v.trim();
    if t.eq_ignore_ascii_case("local") || t.eq_ignore_ascii_case("default") {
        return Some(Zone::utc());
    }
    let hours_east =
        |secs: f64| (secs.abs() < 15.0 * 3600.0 + 1.0).then(|| Zone::offset(secs.round() as i32));
    if let Ok(h) = t.parse::<f64>() {
        return hours_east(h * 3600.0);
    }
    let upper = t.to_ascii_uppercase();
    if let Some(rest) = upper.strip_prefix("INTERVAL") {
        let body = rest.trim().trim_start_matches('\'');
        let text = body.split('\'').next().unwrap_or("");
        let iv = crate::datetime::Interval::parse(text).ok()?;
        if iv.months != 0 || iv.days != 0 {
            return None;
        }
        return hours_east(iv.micros as f64 / 1e6);
    }
    Zone::parse_setting(t)
}

/// A value of a known setting that mdbc does not implement: 0A000 naming both.
fn unsupported(key: &str, value: &str, why: &str) -> SqlError {
    SqlError::coded(
        "0A000",
        format!("{key} = '{value}' is not supported by mdbc ({why})"),
    )
}

pub(super) fn show_name(name: &str) -> String {
    match name {
        "transaction isolation level" => "transaction_isolation".into(),
        "time zone" => "TimeZone".into(),
        "timezone" => "TimeZone".into(),
        "datestyle" => "DateStyle".into(),
        "intervalstyle" => "IntervalStyle".into(),
        n => n.to_string(),
    }
}

impl Settings {
    /// SET (or RESET) `name`: checks the value and keeps it.
    pub fn set(&self, name: &str, value: &SetValue) -> Result<()> {
        let key = name.to_ascii_lowercase();
        let key = match key.as_str() {
            "time zone" | "time_zone" => "timezone".to_string(),
            "session characteristics as transaction isolation level" => return Ok(()),
            k => k.strip_prefix("session ").unwrap_or(k).to_string(),
        };
        let defaults = default_settings();
        let v = match value {
            SetValue::Default => defaults.get(&key).cloned().unwrap_or_default(),
            SetValue::Value(v) => v.clone(),
        };
        let bad = |hint: &str| {
            SqlError::coded(
                "22023",
                format!("invalid value for parameter \"{key}\": \"{v}\" ({hint})"),
            )
        };
        match key.as_str() {
            "timezone" => {
                let zone = parse_time_zone(&v).ok_or_else(|| {
                    SqlError::coded(
                        "22023",
                        format!("invalid value for parameter \"TimeZone\": \"{v}\""),
                    )
                })?;
                self.insert(key, zone.name());
                self.1.set(zone);
            }
            "client_encoding" | "names" => {
                let u = v.to_ascii_uppercase().replace(['-', '_'], "");
                if !matches!(u.as_str(), "UTF8" | "UNICODE") {
                    return Err(bad("only UTF8 is supported"));
                }
                self.insert("client_encoding".into(), "UTF8".into());
            }
            "datestyle" => {
                // Output is ISO; the input order (MDY, DMY, YMD) is kept. Other output
                // styles are refused rather than ignored.
                let u = v.to_ascii_uppercase();
                let mut order = self.1.get().order;
                for p in u.split(',').map(str::trim) {
                    match p {
                        "ISO" => {}
                        "MDY" | "US" | "NONEURO" | "NONEUROPEAN" | "DEFAULT" => {
                            order = DateOrder::Mdy
                        }
                        "DMY" | "EURO" | "EUROPEAN" => order = DateOrder::Dmy,
                        "YMD" => order = DateOrder::Ymd,
                        _ => {
                            return Err(unsupported(
                                &key,
                                &v,
                                "dates are printed in the ISO style",
                            ))
                        }
                    }
                }
                let shown = match order {
                    DateOrder::Mdy => "ISO, MDY",
                    DateOrder::Dmy => "ISO, DMY",
                    DateOrder::Ymd => "ISO, YMD",
                };
                self.insert(key, shown.into());
                self.1.update(|c| c.order = order);
            }
            "standard_conforming_strings" => {
                if !matches!(v.to_ascii_lowercase().as_str(), "on" | "true" | "1") {
                    return Err(bad("only on is supported"));
                }
            }
            // mdbc runs every transaction serializably (SQLite has one writer); the level a
            // client asks for is kept and shown as PostgreSQL shows it (a stronger level
            // than asked is what the SQL standard allows).
            "transaction_isolation"
            | "transaction isolation level"
            | "default_transaction_isolation" => {
                let level = v.to_ascii_lowercase().replace('_', " ");
                if !matches!(
                    level.as_str(),
                    "serializable" | "repeatable read" | "read committed" | "read uncommitted"
                ) {
                    return Err(bad(
                        "serializable, repeatable read, read committed or read uncommitted",
                    ));
                }
                let key = if key == "default_transaction_isolation" {
                    key
                } else {
                    "transaction_isolation".to_string()
                };
                self.insert(key, level);
            }
            "transaction_read_only"
            | "default_transaction_read_only"
            | "transaction_deferrable"
            | "default_transaction_deferrable" => {
                let on = match v.to_ascii_lowercase().as_str() {
                    "on" | "true" | "yes" | "1" => "on",
                    "off" | "false" | "no" | "0" => "off",
                    _ => return Err(bad("a Boolean value")),
                };
                self.insert(key, on.into());
            }
            "bytea_output" => {
                let escape = match v.to_ascii_lowercase().as_str() {
                    "hex" => false,
                    "escape" => true,
                    _ => return Err(bad("hex or escape")),
                };
                self.insert(key, if escape { "escape" } else { "hex" }.into());
                self.1.update(|c| c.bytea_escape = escape);
            }
            "intervalstyle" => {
                let style = IntervalStyle::parse(&v).ok_or_else(|| {
                    bad("postgres, postgres_verbose, sql_standard or iso_8601")
                })?;
                self.insert(key, style.name().into());
                self.1.update(|c| c.interval_style = style);
            }
            "extra_float_digits" => match v.trim().parse::<i32>() {
                Ok(n) if (-15..=3).contains(&n) => {
                    self.insert(key, n.to_string());
                    self.1.update(|c| c.float_digits = (n <= 0).then_some(n));
                }
                _ => return Err(bad("an integer from -15 to 3")),
            },
            "server_version" | "server_version_num" | "server_encoding" | "integer_datetimes"
            | "block_size" | "max_identifier_length" | "is_superuser" | "lc_collate"
            | "lc_ctype" => {
                return Err(SqlError::coded(
                    "55P02",
                    format!("parameter \"{key}\" cannot be changed"),
                ))
            }
            "max_connections" => {
                return Err(SqlError::coded(
                    "55P02",
                    format!("parameter \"{key}\" cannot be changed without restarting the server"),
                ))
            }
            "mdbc.site" => {
                return Err(SqlError::coded(
                    "55P02",
                    "parameter \"mdbc.site\" cannot be changed (it is the site's name in its configuration)",
                ))
            }
            "mdbc.read_consistency" => {
                let l = v.to_ascii_lowercase();
                if !matches!(l.as_str(), "default" | "local") {
                    return Err(bad("default: strong tables read linearizably, bounded ones within their bound; local: what this site has applied"));
                }
                self.insert(key, l);
            }
            "mdbc.strong_after_stale_read" => {
                let l = v.to_ascii_lowercase();
                if !matches!(l.as_str(), "refuse" | "allow") {
                    return Err(bad("refuse: a strong write after a read of an eventual, causal or bounded table fails; allow: it goes ahead"));
                }
                self.insert(key, l);
            }
            k if defaults.contains_key(k) || k.contains('.') => {
                self.insert(key, v);
            }
            _ => {
                return Err(SqlError::coded(
                    "42704",
                    format!("unrecognized configuration parameter \"{name}\""),
                ))
            }
        }
        Ok(())
    }

    /// SHOW `name`: the column it is shown under, and its value.
    pub fn show(&self, name: &str) -> Result<(Column, String)> {
        let key = match name {
            "transaction isolation level" => "transaction_isolation",
            "time zone" => "timezone",
            n => n,
        };
        let value = self.get(key).ok_or_else(|| {
            SqlError::coded(
                "42704",
                format!("unrecognized configuration parameter \"{name}\""),
            )
        })?;
        let col = Column {
            name: show_name(name),
            ty: PgType::Text,
            typmod: -1,
        };
        Ok((col, value))
    }
}
