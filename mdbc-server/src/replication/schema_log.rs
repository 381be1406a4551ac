//! The schema log: every DDL statement of the cluster goes through one strong domain,
//! `__schema`, so schema changes are serialised across sites and every site applies them
//! in the same order. A site applies a data entry only once it has applied the schema
//! that entry was written against (see the replicator).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::Connection;
use sql_capture::changes::Entry;

use super::cluster::Replication;
use super::error::ReplError;
use super::keys::{
    applied_pos, domain_lock_key, set_applied, DomainLock, SCHEMA_DOMAIN, SCHEMA_LOG,
};
use super::locked_log::{append_locked, read_entry, settle_tail};
use crate::applier;
use crate::errors::SqlError;
use crate::store::Store;

/// What schema changes are about in error messages.
const WHAT: &str = "cannot change the schema";

impl Replication {
    /// Position of the schema log applied here.
    pub fn schema_pos(&self) -> u64 {
        self.schema_pos.load(Ordering::SeqCst)
    }

    /// After a transaction that applied the schema log up to `pos` committed.
    pub fn set_schema_pos(&self, pos: u64) {
        self.schema_pos.fetch_max(pos, Ordering::SeqCst);
    }

    /// Takes the schema lock (waiting up to the configured lock timeout) and reads the
    /// schema log's head under it.
    pub async fn lock_schema(&self) -> Result<(DomainLock, u64), ReplError> {
        let guard = self
            .lock(vec![domain_lock_key(SCHEMA_DOMAIN)])
            .await
            .map_err(|e| ReplError::music(WHAT, e))?;
        let head = settle_tail(&guard, SCHEMA_DOMAIN, WHAT).await?;
        Ok((guard, head))
    }

    /// Reads entry `seq` of the schema log under `guard`.
    pub async fn read_schema_entry(
        &self,
        guard: &DomainLock,
        seq: u64,
    ) -> Result<Entry, ReplError> {
        read_entry(guard, SCHEMA_DOMAIN, seq).await
    }

    /// Appends `ddl` to the schema log at `seq` (entry and head in one round) under
    /// `guard`: a quorum holds it when this returns.
    pub async fn publish_schema(
        &self,
        guard: &DomainLock,
        seq: u64,
        ddl: Vec<String>,
    ) -> Result<(), ReplError> {
        if guard.is_lost() {
            return Err(ReplError::SchemaLeaseLost);
        }
        let entry = Entry {
            origin: self.id,
            seq,
            hlc: self.hlc.now(),
            schema: seq - 1,
            deps: Vec::new(),
            ddl,
            tables: Vec::new(),
        };
        append_locked(guard, SCHEMA_DOMAIN, seq, &entry.encode())
            .await
            .map_err(|e| e.into_repl(WHAT))
    }

    /// The replicator: applies schema-log entry `seq` (its DDL, `ddl`) on `conn` in a
    /// transaction of its own, under the store's write lock, recording the position in
    /// the same transaction; publishes the new catalog once committed. Returns whether
    /// the entry was new here.
    pub(super) async fn apply_schema_entry(
        &self,
        store: &Arc<Store>,
        conn: &Connection,
        seq: u64,
        ddl: &[String],
    ) -> Result<bool, SqlError> {
        let guard = store.lock_writer().await;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = (|| -> Result<Option<Arc<sql_capture::Catalog>>, SqlError> {
            if applied_pos(conn, SCHEMA_LOG)? >= seq {
                return Ok(None);
            }
            let cat = applier::run_ddl(store, conn, store.catalog(), ddl, None)?;
            set_applied(conn, SCHEMA_LOG, seq)?;
            Ok(Some(cat))
        })();
        let outcome = match applied {
            Ok(Some(cat)) => {
                let (r, ticket) = store.commit(conn);
                r.map(|()| {
                    store.publish_catalog(cat);
                    (true, ticket)
                })
                .map_err(SqlError::from)
            }
            Ok(None) => Ok((false, None)),
            Err(e) => Err(e),
        };
        // Under the write lock: a session taking it next for DDL must not apply `seq` again.
        if outcome.is_ok() {
            self.set_schema_pos(seq);
        }
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        drop(guard);
        let (new, ticket) = outcome?;
        store.wait_durable(ticket).await;
        Ok(new)
    }
}
