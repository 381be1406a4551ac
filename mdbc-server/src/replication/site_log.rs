//! This site's log of eventual and causal changes (`site/<site>/<seq>`): a committing
//! transaction's entry is sealed into SQLite inside that transaction (`__mdbc_site_log`),
//! so a commit is never lost between SQLite and MUSIC; it is shipped (an AP put) after
//! COMMIT, and whatever could not be shipped is put again by a background task.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension};
use sql_capture::changes::{Entry, RowClock, TableChanges};
use tokio::sync::watch;

use super::chunks;
use super::cluster::Replication;
use super::error::ReplError;
use super::keys::{log_key, set_applied};
use crate::config::Level;
use crate::store::Store;

/// A sealed local transaction: its position in this site's log and its entry.
#[derive(Debug)]
pub struct Sealed {
    seq: u64,
    bytes: Bytes,
    // How many other sites must hold it before the commit is acknowledged
    // (`sync_replicas`).
    sync: u32,
}

/// Retries entries that could not be put, reading them back from the site log.
pub(super) async fn reshipper(
    repl: Arc<Replication>,
    store: Arc<Store>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let pending: Vec<u64> = repl.lock_unshipped().iter().copied().collect();
        if !pending.is_empty() {
            let read = (|| -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
                let conn = Connection::open(store.path())?;
                let mut out = Vec::new();
                for seq in &pending {
                    let b: Option<Vec<u8>> = conn
                        .query_row(
                            "SELECT entry FROM __mdbc_site_log WHERE seq = ?1",
                            [*seq as i64],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(b) = b {
                        out.push((*seq, b));
                    }
                }
                Ok(out)
            })();
            match read {
                Ok(entries) => {
                    for (seq, b) in entries {
                        match repl.put_entry(&log_key(&repl.site, seq), &b).await {
                            Ok(_) => {
                                repl.lock_unshipped().remove(&seq);
                            }
                            Err(e) => {
                                tracing::warn!(seq, "shipping log entry failed again: {e}");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!("reading the site log: {e}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

impl Replication {
    /// Inside the committing transaction, before its COMMIT: stamps the rows' clocks and
    /// appends the entry with `tables` (its changes to non-strong replicated tables) to
    /// this site's log. `None` when there is nothing to ship. `schema` is the schema-log
    /// position the transaction ends at, when it changed the schema itself.
    pub fn seal(
        &self,
        conn: &Connection,
        tables: Vec<TableChanges>,
        schema: Option<u64>,
    ) -> Result<Option<Sealed>, ReplError> {
        if tables.iter().all(|t| t.rows.is_empty()) {
            return Ok(None);
        }
        let seq = self.next_seq.load(Ordering::SeqCst);
        // Causal (and bounded) changes carry what this site had applied when they were
        // written: no site shows them before it has applied as much (COPS-style).
        let causal = tables
            .iter()
            .any(|t| matches!(self.policy.level(&t.table), Level::Causal | Level::Bounded));
        let deps = if causal {
            let mut d: Vec<(u64, u64)> = self
                .applied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(_, pos)| **pos > 0)
                .map(|(s, p)| (*s, *p))
                .collect();
            d.sort_unstable();
            d
        } else {
            Vec::new()
        };
        let sync = tables
            .iter()
            .filter(|t| !t.rows.is_empty())
            .map(|t| self.policy.table(&t.table).sync_replicas)
            .max()
            .unwrap_or(0);
        let entry = self.stamped_entry(conn, seq, tables, schema, deps)?;
        let bytes = Bytes::from(entry.encode());
        conn.prepare_cached("INSERT INTO __mdbc_site_log (seq, entry) VALUES (?1, ?2)")?
            .execute(rusqlite::params![seq as i64, &bytes[..]])?;
        set_applied(conn, &self.own_log, seq)?;
        Ok(Some(Sealed { seq, bytes, sync }))
    }

    /// Stamps the rows of `tables` with a fresh clock (inside the committing transaction)
    /// and wraps them in an entry at position `seq` of a log.
    pub(super) fn stamped_entry(
        &self,
        conn: &Connection,
        seq: u64,
        tables: Vec<TableChanges>,
        schema: Option<u64>,
        deps: Vec<(u64, u64)>,
    ) -> Result<Entry, ReplError> {
        let hlc = self.hlc.now();
        sql_capture::apply::stamp(conn, &tables, RowClock { hlc, site: self.id })?;
        Ok(Entry {
            origin: self.id,
            seq,
            hlc,
            schema: schema.unwrap_or_else(|| self.schema_pos()),
            deps,
            ddl: Vec::new(),
            tables,
        })
    }

    /// After the sealed transaction's COMMIT succeeded (still under the write lock).
    pub fn committed(&self, s: &Sealed) {
        self.next_seq.store(s.seq + 1, Ordering::SeqCst);
    }

    /// Puts a committed entry into MUSIC; a failed put is retried in the background.
    /// When its tables ask for `sync_replicas`, waits (up to the quorum timeout) until
    /// that many other sites hold it; returns a warning for the client when fewer did
    /// (the transaction is committed here either way, and still reaches them later —
    /// PostgreSQL warns the same way when a wait for synchronous replication ends early).
    pub async fn ship(&self, s: Sealed) -> Option<String> {
        let key = log_key(&self.site, s.seq);
        if let Err(e) = self.put_entry(&key, &s.bytes).await {
            tracing::warn!(seq = s.seq, "shipping log entry failed, will retry: {e}");
            self.lock_unshipped().insert(s.seq);
            return (s.sync > 0).then(|| {
                format!("the transaction committed at site {} but could not be shipped yet ({e}); no other site confirmed holding it (sync_replicas = {}); it will be delivered later", self.site, s.sync)
            });
        }
        if s.sync == 0 {
            return None;
        }
        let mut keys = chunks::part_keys(&key, &s.bytes);
        keys.push(key);
        let held = match self
            .music
            .store()
            .replicate_now(&keys, s.sync as usize)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(seq = s.seq, "confirming replicas: {e}");
                0
            }
        };
        (held < s.sync as usize).then(|| {
            format!(
                "the transaction committed at site {} but only {held} of the {} other sites required (sync_replicas) confirmed holding it in time; it will be delivered when they answer",
                self.site, s.sync
            )
        })
    }

    /// AP put of a site-log entry, in parts when it is large (parts first).
    pub(super) async fn put_entry(
        &self,
        key: &str,
        entry: &[u8],
    ) -> Result<(), music_core::service::MusicError> {
        let (parts, head) = chunks::split(entry);
        for (i, p) in parts.into_iter().enumerate() {
            self.music.put(&chunks::part_key(key, i as u32), p).await?;
        }
        self.music.put(key, head).await?;
        Ok(())
    }
}
