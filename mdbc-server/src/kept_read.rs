//! A session's kept read transaction: after an autocommit read with no write since, the
//! session leaves its SQLite read transaction open and serves the next autocommit read
//! from the same snapshot, which is still the newest one (see store.rs, "write epoch").
//! Whoever needs the session to see newer data — a write, a read that must sync with
//! the cluster first — ends it.

use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::Notify;

/// The kept read transaction of one connection, if any, with the write epoch it began
/// at; `taken` tells the session's janitor to watch for a write that makes it stale.
#[derive(Debug, Default)]
pub struct KeptRead {
    epoch: Option<u64>,
    taken: Arc<Notify>,
}

impl KeptRead {
    /// Whether a read transaction is kept, and the epoch it began at.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Opens a read transaction on `conn` to keep, as of write epoch `epoch` (read before
    /// the transaction starts, so the snapshot is at least as new as the epoch says).
    pub fn begin(&mut self, conn: &Connection, epoch: u64) -> rusqlite::Result<()> {
        conn.execute_batch("BEGIN")?;
        self.epoch = Some(epoch);
        self.taken.notify_one();
        Ok(())
    }

    /// Ends the kept read transaction, if any.
    pub fn end(&mut self, conn: &Connection) {
        if self.epoch.take().is_some()
            && !conn.is_autocommit()
            && conn.execute_batch("COMMIT").is_err()
        {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }

    /// Signalled each time a read transaction is kept.
    pub fn signal(&self) -> Arc<Notify> {
        self.taken.clone()
    }
}
