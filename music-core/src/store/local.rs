//! One node's replica of the key space, in SQLite: values by last-writer-wins, the fence
//! (highest lock ref seen) per key, and the hints of what each peer still lacks.
//!
//! Every operation is one short statement or transaction, so callers run them inline.
//!
//! Durability follows consistency: what a critical write or a fence raise commits is
//! synced to disk before it is acknowledged (a quorum of replicas then holds it through
//! any minority's crash) — by group commit, so concurrent ones share an fsync — while
//! plain puts, acknowledged by one replica and shipped asynchronously anyway, are synced
//! at checkpoints, as Cassandra's periodic commit log does.

use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};

use consensus::group_commit::GroupCommit;

use super::{StoreError, Versioned};
use crate::version::Version;

const MIGRATIONS: &[&str] = &[include_str!(
    "../../../migrations/music-sqlite/0001_store.sql"
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
        Ok(LocalStore {
            conn: Mutex::new(conn),
            group,
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

    fn apply_in(c: &Connection, key: &str, value: &[u8], v: Version) -> Result<bool, StoreError> {
        // Last writer wins: the row changes only for a newer version.
        let n = c
            .prepare_cached(
                "INSERT INTO music_values (key, value, epoch, hlc, node, bucket)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (key) DO UPDATE SET
                    value = excluded.value, epoch = excluded.epoch,
                    hlc = excluded.hlc, node = excluded.node
                 WHERE (excluded.epoch, excluded.hlc, excluded.node)
                     > (music_values.epoch, music_values.hlc, music_values.node)",
            )
            .map_err(db)?
            .execute(params![
                key,
                value,
                v.epoch as i64,
                v.hlc as i64,
                v.node as i64,
                bucket_of(key)
            ])
            .map_err(db)?;
        Ok(n > 0)
    }

    /// Stores `value` at `key` if `version` is newer than what is there; true if it was.
    pub fn apply(&self, key: &str, value: &[u8], version: Version) -> Result<bool, StoreError> {
        let c = self.conn()?;
        Self::apply_in(&c, key, value, version)
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
            for (key, value, version) in items {
                Self::raise_fence_in(&tx, key, version.epoch)?;
                Self::apply_in(&tx, key, value, *version)?;
            }
            tx.commit().map_err(db)?;
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
        let c = self.conn()?;
        let mut out = vec![0u64; BUCKETS as usize];
        let mut st = c
            .prepare_cached("SELECT bucket, key, epoch, hlc, node FROM music_values")
            .map_err(db)?;
        let mut rows = st.query([]).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let b: u32 = r.get(0).map_err(db)?;
            let k: String = r.get(1).map_err(db)?;
            let v = (
                r.get::<_, i64>(2).map_err(db)?,
                r.get::<_, i64>(3).map_err(db)?,
                r.get::<_, i64>(4).map_err(db)?,
            );
            // Order-independent: a sum of per-row hashes.
            let h = row_hash(&k, v.0 as u64, v.1 as u64, v.2 as u64);
            if let Some(slot) = out.get_mut(b as usize) {
                *slot = slot.wrapping_add(h);
            }
        }
        Ok(out)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn v(epoch: u64, hlc: u64, node: u64) -> Version {
        Version { epoch, hlc, node }
    }

    fn store() -> LocalStore {
        LocalStore::open(Path::new(":memory:")).unwrap()
    }

    #[test]
    fn last_writer_wins_in_any_order() {
        let (a, b) = (store(), store());
        let writes = [
            ("k", &b"one"[..], v(0, 10, 1)),
            ("k", b"two", v(0, 20, 2)),
            ("k", b"old lock", v(0, 5, 3)),
        ];
        for (k, val, ver) in writes {
            a.apply(k, val, ver).unwrap();
        }
        for (k, val, ver) in writes.iter().rev() {
            b.apply(k, val, *ver).unwrap();
        }
        assert_eq!(a.get("k").unwrap(), b.get("k").unwrap());
        assert_eq!(
            a.get("k").unwrap().unwrap().value,
            Bytes::from_static(b"two")
        );
        assert_eq!(a.digest().unwrap(), b.digest().unwrap());
        b.apply("other", b"x", v(0, 1, 1)).unwrap();
        assert_ne!(a.digest().unwrap(), b.digest().unwrap());
    }

    #[tokio::test]
    async fn critical_writes_are_fenced_by_the_newest_lock_ref() {
        let s = store();
        assert_eq!(
            s.critical_apply("k", b"by 5", v(5, 1, 1)).await.unwrap(),
            CriticalWrite::Done
        );
        assert_eq!(s.raise_fence("k", 7).await.unwrap(), 7);
        assert_eq!(
            s.raise_fence("k", 6).await.unwrap(),
            7,
            "fences never go down"
        );
        assert_eq!(
            s.critical_apply("k", b"late by 5", v(5, 99, 1))
                .await
                .unwrap(),
            CriticalWrite::Fenced(7)
        );
        assert_eq!(
            s.get("k").unwrap().unwrap().value,
            Bytes::from_static(b"by 5")
        );
        assert_eq!(
            s.put_epoch("k").unwrap(),
            7,
            "plain puts join the newest epoch"
        );
    }

    #[tokio::test]
    async fn a_batch_of_critical_writes_is_stored_whole_or_not_at_all() {
        let s = store();
        s.raise_fence("head", 7).await.unwrap();
        // Fenced on one key: neither is stored.
        assert_eq!(
            s.critical_apply_many(&[("entry", b"e", v(5, 1, 1)), ("head", b"h", v(5, 1, 1))])
                .await
                .unwrap(),
            CriticalWrite::Fenced(7)
        );
        assert_eq!(s.get("entry").unwrap(), None);
        assert_eq!(
            s.critical_apply_many(&[("entry", b"e", v(7, 2, 1)), ("head", b"h", v(7, 2, 1))])
                .await
                .unwrap(),
            CriticalWrite::Done
        );
        assert_eq!(
            s.get("entry").unwrap().unwrap().value,
            Bytes::from_static(b"e")
        );
        assert_eq!(
            s.get("head").unwrap().unwrap().value,
            Bytes::from_static(b"h")
        );
        assert_eq!(s.fence("entry").unwrap(), 7);
    }

    #[test]
    fn hints_are_kept_until_cleared() {
        let s = store();
        s.add_hints(2, &["a".into(), "b".into()]).unwrap();
        s.add_hints(2, &["a".into()]).unwrap();
        assert_eq!(s.hints(2, 10).unwrap(), vec!["a".to_string(), "b".into()]);
        s.clear_hints(2, &["a".into()]).unwrap();
        assert_eq!(s.hints(2, 10).unwrap(), vec!["b".to_string()]);
        assert!(s.hints(3, 10).unwrap().is_empty());
    }
}
