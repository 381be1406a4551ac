//! Names: the keys a log's entries live under in the key space, and the rows of
//! `__mdbc_applied` that say how far this site applied each log.

use music_core::store::embedded::EmbeddedStore;
use rusqlite::{Connection, OptionalExtension};

use super::error::ReplError;

/// The numeric id of a site (consensus and row clocks use numbers): a stable hash of its
/// name, so every site derives the same ids from the same names.
pub fn site_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Positive as an SQLite integer, and never 0 (consensus reserves it).
    (h & (i64::MAX as u64)).max(1)
}

/// The schema log: one strong domain every DDL statement goes through.
pub const SCHEMA_DOMAIN: &str = "__schema";

/// `__mdbc_applied` row of the schema log.
pub const SCHEMA_LOG: &str = "domain:__schema";

/// The key whose lock guards domain `domain` (and so every key of its log, below it).
pub fn domain_lock_key(domain: &str) -> String {
    format!("domain/{}", key_part(domain))
}

/// Key of entry `seq` of domain `domain`'s log.
pub fn domain_key(domain: &str, seq: u64) -> String {
    format!("domain/{}/{seq}", key_part(domain))
}

/// Key of the head record of domain `domain`'s log (its last position, written last).
pub fn domain_head(domain: &str) -> String {
    format!("domain/{}/head", key_part(domain))
}

/// A held domain lock.
pub type DomainLock = music_core::recipes::MutexGuard<EmbeddedStore>;

/// Decodes a head record.
pub(crate) fn decode_head(v: Option<bytes::Bytes>) -> Result<u64, ReplError> {
    match v {
        None => Ok(0),
        Some(v) => {
            let b: [u8; 8] = v[..]
                .try_into()
                .map_err(|_| ReplError::Corrupt("a domain log head record is malformed".into()))?;
            Ok(u64::from_be_bytes(b))
        }
    }
}

/// A name as one component of a key: a `/` in it (a quoted table name may hold one, and
/// a strong table's domain is its name by default) would make one log's keys look like
/// another's — `domain/x/1/5` is entry 1, part 5 of domain `x`, not entry 5 of `x/1` —
/// and truncating `x` would then drop `x/1`'s entries.
fn key_part(name: &str) -> std::borrow::Cow<'_, str> {
    if name.contains(['/', '%']) {
        name.replace('%', "%25").replace('/', "%2F").into()
    } else {
        name.into()
    }
}

/// Key of entry `seq` of site `site`'s log.
pub(crate) fn log_key(site: &str, seq: u64) -> String {
    format!("site/{}/{seq}", key_part(site))
}

/// The key-space prefix of site `site`'s log (see [`log_key`]).
pub(crate) fn log_prefix(site: &str) -> String {
    format!("site/{}/", key_part(site))
}

/// The key-space prefix of domain `domain`'s log (see [`domain_key`]).
pub(crate) fn domain_prefix(domain: &str) -> String {
    format!("domain/{}/", key_part(domain))
}

/// How far log `log` (a row of `__mdbc_applied`, see [`domain_log`] and [`site_log`]) is
/// applied as `conn` sees it; 0 when not at all.
pub(crate) fn applied_pos(conn: &Connection, log: &str) -> rusqlite::Result<u64> {
    Ok(conn
        .query_row(
            "SELECT pos FROM __mdbc_applied WHERE log = ?1",
            [log],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .unwrap_or(0) as u64)
}

/// Records log `log` applied up to `pos`, in the caller's transaction (the one that
/// applied it, so that replay after a crash is idempotent).
pub(crate) fn set_applied(conn: &Connection, log: &str, pos: u64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO __mdbc_applied (log, pos) VALUES (?1, ?2) \
         ON CONFLICT (log) DO UPDATE SET pos = excluded.pos",
    )?
    .execute(rusqlite::params![log, pos as i64])?;
    Ok(())
}

/// `__mdbc_applied` row of domain `domain`'s log.
pub fn domain_log(domain: &str) -> String {
    format!("domain:{domain}")
}

/// `__mdbc_applied` row of site `site`'s log.
pub fn site_log(site: &str) -> String {
    format!("site:{site}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_of_names_with_slashes_stay_apart() {
        let x = domain_prefix("x");
        for key in [
            domain_key("x/1", 5),
            domain_head("x/1"),
            domain_lock_key("x/1"),
        ] {
            assert!(!key.starts_with(&x), "{key} is under {x}");
        }
        assert_ne!(domain_key("x%2F1", 5), domain_key("x/1", 5));
        assert!(!log_key("a/1", 2).starts_with(&log_prefix("a")));
        assert_eq!(domain_key("accounts", 3), "domain/accounts/3");
    }
}
