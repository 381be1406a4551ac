//! Log pruning: every so often each site asks the others how far they durably applied
//! each log, and drops what every site has — its own copy of its log, and the key space's
//! copies of its log and (at one site) of the strong domains' logs.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::watch;

use super::calls;
use super::cluster::Replication;
use super::keys::{domain_log, domain_prefix, log_prefix};
use crate::store::Store;

/// How often a site asks the others how far they applied its log, to prune its copies.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// Drops the log entries every site has durably applied, so that nothing grows forever:
/// this site's own copy of its log (`__mdbc_site_log`, kept so that a commit is never
/// lost between SQLite and MUSIC; the start-up check for unshipped entries reads it) and
/// the key space's copies of this site's log, and — at the member with the lowest id, so
/// that one site does it — of the strong domains' logs. A site that does not answer, or
/// has not applied a log at all, holds it back. The schema log is kept whole (it is
/// small, and a site starting with no one to copy from replays it).
pub(super) async fn prune_logs(
    repl: Arc<Replication>,
    store: Arc<Store>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pruned = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        let Some(everywhere) = repl.applied_everywhere().await else {
            continue;
        };
        let own = everywhere(&repl.own_log);
        let upto = own.min(repl.next_seq.load(Ordering::SeqCst).saturating_sub(1));
        // Entries still waiting to be shipped are not applied anywhere; never drop one.
        let upto = match repl.lock_unshipped().first() {
            Some(first) => upto.min(first.saturating_sub(1)),
            None => upto,
        };
        if upto > pruned {
            match prune_site_log(&store, upto).await {
                Ok(n) => {
                    tracing::debug!(upto, rows = n, "pruned the site log");
                    pruned = upto;
                }
                Err(e) => tracing::warn!("pruning the site log: {e}"),
            }
        }
        let mut logs = vec![(log_prefix(&repl.site), pruned)];
        if repl.peers().iter().all(|p| p.id > repl.id) {
            let cat = store.catalog();
            let names: Vec<String> = cat.tables().map(|t| t.name.clone()).collect();
            for d in repl.strong_domains(&names) {
                logs.push((domain_prefix(&d), everywhere(&domain_log(&d))));
            }
        }
        let keys = repl.music.store();
        for (prefix, upto) in logs {
            if upto > keys.floor(&prefix) {
                match keys.truncate(&prefix, upto).await {
                    Ok(()) => tracing::debug!(%prefix, upto, "truncated a log in the key space"),
                    Err(e) => tracing::warn!(%prefix, "truncating a log in the key space: {e}"),
                }
            }
        }
    }
}

/// Deletes this site's own log copy up to `upto`, in batches, each under the write lock
/// briefly and off the async workers; how many rows went.
async fn prune_site_log(store: &Arc<Store>, upto: u64) -> Result<usize, String> {
    let mut removed = 0;
    loop {
        let guard = store.lock_writer().await;
        let path = store.path().to_path_buf();
        let batch = tokio::task::spawn_blocking(move || -> rusqlite::Result<usize> {
            Connection::open(path)?.execute(
                "DELETE FROM __mdbc_site_log WHERE seq IN \
                 (SELECT seq FROM __mdbc_site_log WHERE seq <= ?1 ORDER BY seq LIMIT 1000)",
                [upto as i64],
            )
        })
        .await;
        drop(guard);
        match batch {
            Ok(Ok(0)) => return Ok(removed),
            Ok(Ok(n)) => removed += n,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

impl Replication {
    /// How far every site has durably applied each log, if every other site answers:
    /// a function from a log's name (`site:<name>`, `domain:<name>`) to the lowest
    /// position, this site's own counted (its own log's row is the last it wrote).
    async fn applied_everywhere(&self) -> Option<impl Fn(&str) -> u64> {
        let ids: Vec<u64> = self.peers().iter().map(|p| p.id).collect();
        // A member this site has not taken in yet (a site that just joined may already
        // be copying a snapshot) would not be asked: no answer for everyone, no pruning.
        let members = self.music.membership().await.ok()?;
        if members
            .members
            .iter()
            .any(|m| *m != self.id && !ids.contains(m))
        {
            return None;
        }
        let mut all = vec![self.durable_positions().await.ok()?];
        for (_, answer) in self
            .ask_each(&ids, &calls::Call::Applied, Duration::from_secs(2))
            .await
        {
            match answer {
                Ok(calls::Answer::Applied(v)) => all.push(v),
                _ => return None,
            }
        }
        Some(move |log: &str| {
            all.iter()
                .map(|v| v.iter().find(|(l, _)| l == log).map_or(0, |(_, p)| *p))
                .min()
                .unwrap_or(0)
        })
    }

    /// Every log's applied position here, counting only what is on disk: read, then a
    /// sync of everything committed so far (positions move in the transactions that
    /// apply, so what was read is then durable).
    pub(super) async fn durable_positions(&self) -> Result<Vec<(String, u64)>, String> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<(String, u64)>, String> {
            let conn = Connection::open_with_flags(
                store.path(),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(|e| e.to_string())?;
            let mut st = conn
                .prepare("SELECT log, pos FROM __mdbc_applied")
                .map_err(|e| e.to_string())?;
            let rows = st
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })
                .map_err(|e| e.to_string())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            // Issued after the read, so it covers every commit the read saw; waiting may
            // lead the fsync, which is why this runs on a blocking thread.
            if let Some(g) = store.group() {
                tokio::runtime::Handle::current().block_on(g.wait(g.latest()));
            } else {
                // Without group commit (`synchronous = normal` or `off`) nothing has
                // synced these commits yet: the WAL, then the database file (a checkpoint
                // may have moved them there meanwhile). One round every PRUNE_EVERY.
                let mut wal = store.path().as_os_str().to_owned();
                wal.push("-wal");
                for f in [std::path::PathBuf::from(wal), store.path().to_path_buf()] {
                    match std::fs::File::open(&f) {
                        Ok(file) => file
                            .sync_all()
                            .map_err(|e| format!("{}: {e}", f.display()))?,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(format!("{}: {e}", f.display())),
                    }
                }
            }
            Ok(rows)
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
