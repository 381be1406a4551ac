//! Log entries as this site reads them: from its own key-space replica (whole, or
//! joined from the parts of a large entry), pulled from the other sites when missing,
//! and applied to SQLite with this site's clock and schema position.

use rusqlite::Connection;
use sql_capture::capture::Shapes;
use sql_capture::changes::Entry;

use super::chunks::{self, ChunkError};
use super::cluster::Replication;
use crate::applier;

impl Replication {
    /// Fetches the entries at `keys` that this site's replica lacks from the others.
    pub(super) async fn pull_keys(&self, keys: impl Iterator<Item = String>) {
        for key in keys {
            if matches!(self.local_entry(&key).await, Ok(Some(_))) {
                continue;
            }
            if let Err(e) = self.music.store().read_newest(&key).await {
                tracing::debug!(%key, "pulling an entry for a read: {e}");
            }
        }
    }

    /// The entry at `key` if this node's replica holds all of it; a missing part is
    /// asked of the other sites (and the caller tries again later).
    pub(crate) async fn local_entry(&self, key: &str) -> Result<Option<Vec<u8>>, ChunkError> {
        let local = |k: &str| match self.music.store().local().get(k) {
            Ok(v) => v.map(|v| v.value),
            Err(e) => {
                tracing::warn!(key = %k, "reading the key space: {e}");
                None
            }
        };
        let Some(v) = local(key) else {
            return Ok(None);
        };
        match chunks::parse(&v)? {
            chunks::Stored::Whole(b) => Ok(Some(b.to_vec())),
            chunks::Stored::Split(m) => {
                let mut parts = Vec::with_capacity(m.parts as usize);
                for i in 0..m.parts {
                    let k = chunks::part_key(key, i);
                    match local(&k) {
                        Some(p) => parts.push(p),
                        None => {
                            if let Err(e) = self.music.store().read_newest(&k).await {
                                tracing::debug!(key = %k, "pulling a part: {e}");
                            }
                            return Ok(None);
                        }
                    }
                }
                chunks::join(&m, &parts).map(Some)
            }
        }
    }

    /// Applies another site's entry to the replicated tables, inside the caller's
    /// transaction (a table this site keeps local is left alone).
    pub(crate) fn apply_tables(
        &self,
        conn: &Connection,
        shapes: &mut Shapes,
        version: u64,
        entry: &Entry,
    ) -> Result<(), sql_capture::apply::ApplyError> {
        self.hlc.observe(entry.hlc);
        let older = entry.schema < self.schema_pos();
        applier::apply_rows(conn, shapes, version, entry, older, &|t| self.replicated(t))
    }
}
