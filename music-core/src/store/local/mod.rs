//! One node's replica of the key space, in SQLite: values by last-writer-wins, the fence
//! (highest lock ref seen) per key, and the hints of what each peer still lacks.
//!
//! Logs kept in the key space (`<prefix><n>`, with parts `<prefix><n>/<i>`) are truncated
//! by a *floor*: the key [`floor_key`]`(prefix)` holds the highest position dropped. A
//! floor only rises (its value merges by maximum, whatever the order puts arrive in);
//! storing it deletes the log's keys at or below it, and such keys are refused from then
//! on — so neither a late push nor anti-entropy from a replica that has not heard of the
//! floor yet brings them back, and no tombstone per key is needed.
//!
//! Every operation is one short statement or transaction, so callers run them inline.
//!
//! Durability follows consistency: what a critical write or a fence raise commits is
//! synced to disk before it is acknowledged (a quorum of replicas then holds it through
//! any minority's crash) — by group commit, so concurrent ones share an fsync — while
//! plain puts, acknowledged by one replica and shipped asynchronously anyway, are synced
//! at checkpoints, as Cassandra's periodic commit log does.

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};

use group_commit::GroupCommit;

use super::{StoreError, Versioned};
use crate::version::Version;

const MIGRATIONS: &[&str] = &[include_str!(
    "../../../../migrations/music-sqlite/0001_store.sql"
)];

/// Buckets of the anti-entropy digest.
pub const BUCKETS: u32 = 256;

/// The digest bucket of `key` (stable across nodes and versions: FNV-1a).
pub fn bucket_of(key: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % BUCKETS
}

/// What a critical write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriticalWrite {
    /// Applied (or already superseded by a newer version of the same epoch or later).
    Done,
    /// Refused: the replica has seen this newer lock ref for the key.
    Fenced(u64),
}

/// A node's replica (see the module docs).
pub struct LocalStore {
    conn: Mutex<Connection>,
    // Durable commits share fsyncs of the WAL (none for an in-memory store).
    group: Option<GroupCommit>,
    // The anti-entropy digest, kept up to date by every write (taken under `conn`, after
    // it): computing it by scanning every key held the replica for tens of milliseconds
    // per peer and round once the key space had grown, stalling every put meanwhile.
    digest: Mutex<Vec<u64>>,
    // Each truncated log's prefix and floor (taken under `conn`, after it).
    floors: Mutex<Vec<(String, u64)>>,
}

/// The key holding the floor of the log whose keys start with `prefix` (see the module
/// docs).
pub fn floor_key(prefix: &str) -> String {
    format!("{FLOOR}{prefix}")
}

const FLOOR: &str = "__floor/";

/// The log position a key of the log at `prefix` stands for (`<prefix><n>` or a part,
/// `<prefix><n>/<i>`); `None` for its other keys (a head record, say).
fn position_under(prefix: &str, key: &str) -> Option<u64> {
    let rest = key.strip_prefix(prefix)?;
    let digits = rest.split('/').next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn decode_floor(value: &[u8]) -> u64 {
    value.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// What the writes of one transaction did, to fold in once it commits.
#[derive(Default)]
struct Changes {
    deltas: Vec<DigestDelta>,
    floors: Vec<(String, u64)>,
    stored: usize,
}

/// How one stored write changes the digest: its bucket loses the hash of the version
/// it replaced and gains the new one's.
#[derive(Debug, Clone, Copy)]
struct DigestDelta {
    bucket: u32,
    gone: Option<u64>,
    added: u64,
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Storage(e.to_string())
}

impl LocalStore {
    /// Opens (creating and migrating) the replica at `path`; `:memory:` for tests.
    pub fn open(path: &Path) -> Result<LocalStore, StoreError> {
        let conn = Connection::open(path).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "wal")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "normal")
            .map_err(db)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db)?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::Storage(format!(
                "{}: schema version {version} is newer than this binary knows ({known})",
                path.display()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction().map_err(db)?;
            tx.execute_batch(sql).map_err(db)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(db)?;
            tx.commit().map_err(db)?;
        }
        // Refuse a damaged file at start-up rather than at the first unlucky request; the
        // read also opens the -wal file that group commit syncs.
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(db)?;
        if check != "ok" {
            return Err(StoreError::Storage(format!(
                "{}: integrity check failed: {check}",
                path.display()
            )));
        }
        let group = if path == Path::new(":memory:") {
            None
        } else {
            Some(
                GroupCommit::for_wal(path)
                    .map_err(|e| StoreError::Storage(format!("{}-wal: {e}", path.display())))?,
            )
        };
        let digest = scan_digest(&conn)?;
        let floors = scan_floors(&conn)?;
        Ok(LocalStore {
            conn: Mutex::new(conn),
            group,
            digest: Mutex::new(digest),
            floors: Mutex::new(floors),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Storage("the store's lock is poisoned".into()))
    }

    /// The value of `key` and its version.
    pub fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let c = self.conn()?;
        let mut st = c
            .prepare_cached("SELECT value, epoch, hlc, node FROM music_values WHERE key = ?1")
            .map_err(db)?;
        st.query_row(params![key], |r| {
            Ok(Versioned {
                value: Bytes::from(r.get::<_, Vec<u8>>(0)?),
                version: Version {
                    epoch: r.get::<_, i64>(1)? as u64,
                    hlc: r.get::<_, i64>(2)? as u64,
                    node: r.get::<_, i64>(3)? as u64,
                },
            })
        })
        .optional()
        .map_err(db)
    }

    /// Stores `value` at `key` if `v` is newer than what is there (last writer wins; a
    /// floor merges, see the module docs), noting in `out` what that does to the digest
    /// and the floors once the transaction commits.
    fn apply_in(
        &self,
        c: &Connection,
        key: &str,
        value: &[u8],
        v: Version,
        out: &mut Changes,
    ) -> Result<(), StoreError> {
        if self.below_floor(key, &out.floors) {
            return Ok(());
        }
        let old: Option<(i64, i64, i64)> = c
            .prepare_cached("SELECT epoch, hlc, node FROM music_values WHERE key = ?1")
            .map_err(db)?
            .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(db)?;
        let old = old.map(|(epoch, hlc, node)| Version {
            epoch: epoch as u64,
            hlc: hlc as u64,
            node: node as u64,
        });
        let floor = key.strip_prefix(FLOOR);
        let merged;
        let (value, v) = match (floor, old) {
            // A floor merges by maximum: the higher position and the newer version, so
            // replicas agree whatever order the puts came in.
            (Some(_), Some(old)) => {
                let have: Option<Vec<u8>> = c
                    .prepare_cached("SELECT value FROM music_values WHERE key = ?1")
                    .map_err(db)?
                    .query_row(params![key], |r| r.get(0))
                    .optional()
                    .map_err(db)?;
                let have = have.as_deref().map(decode_floor).unwrap_or(0);
                let want = decode_floor(value);
                if want <= have && v <= old {
                    return Ok(());
                }
                merged = have.max(want).to_be_bytes();
                (&merged[..], v.max(old))
            }
            _ if old.is_some_and(|old| old >= v) => return Ok(()),
            _ => (value, v),
        };
        let bucket = bucket_of(key);
        c.prepare_cached(
            "INSERT INTO music_values (key, value, epoch, hlc, node, bucket)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (key) DO UPDATE SET
                value = excluded.value, epoch = excluded.epoch,
                hlc = excluded.hlc, node = excluded.node",
        )
        .map_err(db)?
        .execute(params![
            key,
            value,
            v.epoch as i64,
            v.hlc as i64,
            v.node as i64,
            bucket
        ])
        .map_err(db)?;
        out.stored += 1;
        out.deltas.push(DigestDelta {
            bucket,
            gone: old.map(|o| row_hash(key, o.epoch, o.hlc, o.node)),
            added: row_hash(key, v.epoch, v.hlc, v.node),
        });
        if let Some(prefix) = floor {
            let at = decode_floor(value);
            out.deltas.extend(Self::truncate_in(c, prefix, at)?);
            out.floors.push((prefix.to_string(), at));
        }
        Ok(())
    }

    /// The floor of the log at `prefix` (0: never truncated).
    pub fn floor(&self, prefix: &str) -> u64 {
        self.floors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(p, _)| p == prefix)
            .map_or(0, |(_, f)| *f)
    }

    /// Whether `key` belongs to a truncated log, at or below its floor (`pending`:
    /// floors raised in the open transaction).
    fn below_floor(&self, key: &str, pending: &[(String, u64)]) -> bool {
        let floors = self.floors.lock().unwrap_or_else(|e| e.into_inner());
        floors
            .iter()
            .chain(pending)
            .any(|(prefix, floor)| position_under(prefix, key).is_some_and(|n| n <= *floor))
    }

    /// Deletes the keys of the log at `prefix` at or below `floor` (and the hints to
    /// ship them); what that does to the digest.
    fn truncate_in(
        c: &Connection,
        prefix: &str,
        floor: u64,
    ) -> Result<Vec<DigestDelta>, StoreError> {
        // Every key of the log sorts between `prefix` and `prefix` with its last byte
        // raised by one ('/' + 1 = '0'): an index range, not a scan of the key space.
        let mut end = prefix.as_bytes().to_vec();
        match end.last_mut() {
            Some(b) if *b < u8::MAX => *b += 1,
            _ => return Ok(Vec::new()),
        }
        let end = String::from_utf8_lossy(&end).into_owned();
        let mut doomed = Vec::new();
        {
            let mut st = c
                .prepare_cached(
                    "SELECT key, epoch, hlc, node FROM music_values WHERE key >= ?1 AND key < ?2",
                )
                .map_err(db)?;
            let mut rows = st.query(params![prefix, end]).map_err(db)?;
            while let Some(r) = rows.next().map_err(db)? {
                let key: String = r.get(0).map_err(db)?;
                if position_under(prefix, &key).is_some_and(|n| n <= floor) {
                    let gone = row_hash(
                        &key,
                        r.get::<_, i64>(1).map_err(db)? as u64,
                        r.get::<_, i64>(2).map_err(db)? as u64,
                        r.get::<_, i64>(3).map_err(db)? as u64,
                    );
                    doomed.push((key, gone));
                }
            }
        }
        let mut del = c
            .prepare_cached("DELETE FROM music_values WHERE key = ?1")
            .map_err(db)?;
        let mut unhint = c
            .prepare_cached("DELETE FROM music_hints WHERE key = ?1")
            .map_err(db)?;
        let mut deltas = Vec::with_capacity(doomed.len());
        for (key, gone) in doomed {
            del.execute(params![key]).map_err(db)?;
            unhint.execute(params![key]).map_err(db)?;
            deltas.push(DigestDelta {
                bucket: bucket_of(&key),
                gone: Some(gone),
                added: 0,
            });
        }
        Ok(deltas)
    }

    /// Folds a committed transaction's changes into the digest and the floors (called
    /// with `conn` still held, so neither ever shows half of a transaction).
    fn account(&self, changes: Changes) -> usize {
        if !changes.floors.is_empty() {
            let mut floors = self.floors.lock().unwrap_or_else(|e| e.into_inner());
            for (prefix, at) in changes.floors {
                match floors.iter_mut().find(|(p, _)| *p == prefix) {
                    Some((_, f)) => *f = (*f).max(at),
                    None => floors.push((prefix, at)),
                }
            }
        }
        let mut d = self.digest.lock().unwrap_or_else(|e| e.into_inner());
        for delta in changes.deltas {
            if let Some(slot) = d.get_mut(delta.bucket as usize) {
                *slot = slot
                    .wrapping_sub(delta.gone.unwrap_or(0))
                    .wrapping_add(delta.added);
            }
        }
        changes.stored
    }

    /// Stores `value` at `key` if `version` is newer than what is there; true if it was.
    pub fn apply(&self, key: &str, value: &[u8], version: Version) -> Result<bool, StoreError> {
        let c = self.conn()?;
        let mut changes = Changes::default();
        // One transaction: storing a floor deletes the keys below it.
        let tx = c.unchecked_transaction().map_err(db)?;
        self.apply_in(&tx, key, value, version, &mut changes)?;
        tx.commit().map_err(db)?;
        Ok(self.account(changes) > 0)
    }

    /// [`LocalStore::apply`] for several keys in one transaction (a batch a peer pushed:
    /// one commit rather than one per key); how many were newer and stored.
    pub fn apply_many<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a str, &'a [u8], Version)>,
    ) -> Result<usize, StoreError> {
        let c = self.conn()?;
        let tx = c.unchecked_transaction().map_err(db)?;
        let mut changes = Changes::default();
        for (key, value, version) in items {
            self.apply_in(&tx, key, value, version, &mut changes)?;
        }
        tx.commit().map_err(db)?;
        Ok(self.account(changes))
    }

    fn fence_in(c: &Connection, key: &str) -> Result<u64, StoreError> {
        let f: Option<i64> = c
            .prepare_cached("SELECT epoch FROM music_fences WHERE key = ?1")
            .map_err(db)?
            .query_row(params![key], |r| r.get(0))
            .optional()
            .map_err(db)?;
        Ok(f.unwrap_or(0) as u64)
    }

    fn raise_fence_in(c: &Connection, key: &str, epoch: u64) -> Result<(), StoreError> {
        c.prepare_cached(
            "INSERT INTO music_fences (key, epoch) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET epoch = excluded.epoch
             WHERE excluded.epoch > music_fences.epoch",
        )
        .map_err(db)?
        .execute(params![key, epoch as i64])
        .map_err(db)?;
        Ok(())
    }

    /// The highest lock ref seen for `key` (0: none).
    pub fn fence(&self, key: &str) -> Result<u64, StoreError> {
        let c = self.conn()?;
        Self::fence_in(&c, key)
    }

    /// Raises `key`'s fence to `epoch` (never lowers it); returns the fence after, once
    /// the raise is durable.
    pub async fn raise_fence(&self, key: &str, epoch: u64) -> Result<u64, StoreError> {
        let (fence, ticket) = {
            let c = self.conn()?;
            let ticket = self.group.as_ref().map(|g| g.begin_commit());
            Self::raise_fence_in(&c, key, epoch)?;
            self.written(ticket);
            (Self::fence_in(&c, key)?, ticket)
        };
        self.durable(ticket).await;
        Ok(fence)
    }

    fn written(&self, ticket: Option<u64>) {
        if let (Some(g), Some(t)) = (&self.group, ticket) {
            g.written(t);
        }
    }

    async fn durable(&self, ticket: Option<u64>) {
        if let (Some(g), Some(t)) = (&self.group, ticket) {
            g.wait(t).await;
        }
    }

    /// A critical write under lock ref `version.epoch`: refused if the replica has seen
    /// a newer ref for the key; otherwise the fence rises to it and the value is stored
    /// by last-writer-wins — one transaction, so no other write slips in between the
    /// check and the store.
    pub async fn critical_apply(
        &self,
        key: &str,
        value: &[u8],
        version: Version,
    ) -> Result<CriticalWrite, StoreError> {
        self.critical_apply_many(&[(key, value, version)]).await
    }

    /// Critical writes of several keys in one transaction (one fsync): all stored, or
    /// none when any key has seen a newer ref.
    pub async fn critical_apply_many(
        &self,
        items: &[(&str, &[u8], Version)],
    ) -> Result<CriticalWrite, StoreError> {
        let ticket = {
            let c = self.conn()?;
            let tx = c.unchecked_transaction().map_err(db)?;
            for (key, _, version) in items {
                let fence = Self::fence_in(&tx, key)?;
                if version.epoch < fence {
                    return Ok(CriticalWrite::Fenced(fence));
                }
            }
            let ticket = self.group.as_ref().map(|g| g.begin_commit());
            let mut changes = Changes::default();
            for (key, value, version) in items {
                Self::raise_fence_in(&tx, key, version.epoch)?;
                self.apply_in(&tx, key, value, *version, &mut changes)?;
            }
            tx.commit().map_err(db)?;
            self.account(changes);
            self.written(ticket);
            ticket
        };
        self.durable(ticket).await;
        Ok(CriticalWrite::Done)
    }

    /// The epoch a plain put of `key` takes here: the newest lock ref seen for it.
    pub fn put_epoch(&self, key: &str) -> Result<u64, StoreError> {
        let c = self.conn()?;
        let fence = Self::fence_in(&c, key)?;
        let current: Option<i64> = c
            .prepare_cached("SELECT epoch FROM music_values WHERE key = ?1")
            .map_err(db)?
            .query_row(params![key], |r| r.get(0))
            .optional()
            .map_err(db)?;
        Ok(fence.max(current.unwrap_or(0) as u64))
    }

    /// Notes that `peer` lacks the newest value of each of `keys`.
    pub fn add_hints(&self, peer: u64, keys: &[String]) -> Result<(), StoreError> {
        let c = self.conn()?;
        let tx = c.unchecked_transaction().map_err(db)?;
        {
            let mut st = tx
                .prepare_cached("INSERT OR IGNORE INTO music_hints (peer, key) VALUES (?1, ?2)")
                .map_err(db)?;
            for k in keys {
                st.execute(params![peer as i64, k]).map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Up to `limit` keys `peer` lacks.
    pub fn hints(&self, peer: u64, limit: usize) -> Result<Vec<String>, StoreError> {
        let c = self.conn()?;
        let mut st = c
            .prepare_cached("SELECT key FROM music_hints WHERE peer = ?1 ORDER BY key LIMIT ?2")
            .map_err(db)?;
        let rows = st
            .query_map(params![peer as i64, limit as i64], |r| r.get(0))
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// `peer` has acknowledged `keys`.
    pub fn clear_hints(&self, peer: u64, keys: &[String]) -> Result<(), StoreError> {
        let c = self.conn()?;
        let tx = c.unchecked_transaction().map_err(db)?;
        {
            let mut st = tx
                .prepare_cached("DELETE FROM music_hints WHERE peer = ?1 AND key = ?2")
                .map_err(db)?;
            for k in keys {
                st.execute(params![peer as i64, k]).map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Forgets everything `peer` lacked (it left the cluster).
    pub fn drop_hints(&self, peer: u64) -> Result<(), StoreError> {
        let c = self.conn()?;
        c.prepare_cached("DELETE FROM music_hints WHERE peer = ?1")
            .map_err(db)?
            .execute(params![peer as i64])
            .map_err(db)?;
        Ok(())
    }

    /// Keys and versions in `bucket`, in key order.
    pub fn bucket(&self, bucket: u32) -> Result<Vec<(String, Version)>, StoreError> {
        let c = self.conn()?;
        let mut st = c
            .prepare_cached(
                "SELECT key, epoch, hlc, node FROM music_values WHERE bucket = ?1 ORDER BY key",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![bucket], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Version {
                        epoch: r.get::<_, i64>(1)? as u64,
                        hlc: r.get::<_, i64>(2)? as u64,
                        node: r.get::<_, i64>(3)? as u64,
                    },
                ))
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// One hash per bucket over its keys and versions: replicas holding the same data
    /// have the same digest, and a differing bucket says where to look.
    pub fn digest(&self) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .digest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }

    /// The digest computed from scratch (what the kept one must always equal).
    #[cfg(test)]
    fn scanned_digest(&self) -> Result<Vec<u64>, StoreError> {
        scan_digest(&*self.conn()?)
    }
}

/// Every log floor stored, read once at open.
fn scan_floors(c: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let mut st = c
        .prepare("SELECT key, value FROM music_values WHERE key >= ?1 AND key < ?2")
        .map_err(db)?;
    let rows = st
        .query_map(params![FLOOR, "__floor0"], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .map_err(db)?;
    let mut out = Vec::new();
    for row in rows {
        let (key, value) = row.map_err(db)?;
        if let Some(prefix) = key.strip_prefix(FLOOR) {
            out.push((prefix.to_string(), decode_floor(&value)));
        }
    }
    Ok(out)
}

/// The digest of every stored key, read once at open.
fn scan_digest(c: &Connection) -> Result<Vec<u64>, StoreError> {
    let mut out = vec![0u64; BUCKETS as usize];
    let mut st = c
        .prepare("SELECT bucket, key, epoch, hlc, node FROM music_values")
        .map_err(db)?;
    let mut rows = st.query([]).map_err(db)?;
    while let Some(r) = rows.next().map_err(db)? {
        let b: u32 = r.get(0).map_err(db)?;
        let k: String = r.get(1).map_err(db)?;
        // Order-independent: a sum of per-row hashes, so one write adjusts it.
        let h = row_hash(
            &k,
            r.get::<_, i64>(2).map_err(db)? as u64,
            r.get::<_, i64>(3).map_err(db)? as u64,
            r.get::<_, i64>(4).map_err(db)? as u64,
        );
        if let Some(slot) = out.get_mut(b as usize) {
            *slot = slot.wrapping_add(h);
        }
    }
    Ok(out)
}

fn row_hash(key: &str, epoch: u64, hlc: u64, node: u64) -> u64 {
    // FNV-1a over the row, then a final mix so sums of hashes stay well spread.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key
        .bytes()
        .chain(epoch.to_be_bytes())
        .chain(hlc.to_be_bytes())
        .chain(node.to_be_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}
