//! Applies the other sites' logs to this site's SQLite file.
//!
//! One thread with its own connection (SQLite work blocks, so it stays off the async
//! workers). For each log — the schema log, the strong domains' logs, each other site's
//! log — it reads entry `applied + 1` from this site's MUSIC replica and applies it
//! atomically with the new applied position; domain logs only up to their head record.
//! Entries already here are applied back to back in one SQLite transaction (a savepoint
//! each), up to `BATCH` of them: under a steady stream of writes elsewhere, one commit and
//! one fsync per entry would fall behind the writers, and the lag would only grow. When no log has a next entry it sleeps until the replica changes, and
//! now and then asks the other sites for what it lacks. An entry written against a
//! schema this site has not reached waits for it.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use sql_capture::apply::ApplyError;
use sql_capture::capture::Shapes;
use sql_capture::changes::Entry;
use tokio::sync::watch;

use super::cluster::{Replication, Site};
use super::keys::{
    applied_pos, decode_head, domain_head, domain_key, domain_log, domain_prefix, log_key,
    log_prefix, set_applied, site_log, SCHEMA_DOMAIN,
};
use crate::store::{SessionIdent, Store};

/// What one attempt to apply an entry came to.
enum Step {
    Applied,
    // Not applicable yet (schema behind); try again after the next change.
    Wait,
}

pub(super) fn spawn(
    repl: Arc<Replication>,
    store: Arc<Store>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let conn = store.connect(&SessionIdent {
        pid: -3,
        user: "mdbc".into(),
        database: "mdbc".into(),
    })?;
    // Entries from different sites arrive in no global order; each was checked where it
    // was written (see sql_capture::apply).
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    // Schema entries run on a connection of their own, with foreign keys checked as any
    // session's DDL is.
    let schema_conn = store.connect(&SessionIdent {
        pid: -4,
        user: "mdbc".into(),
        database: "mdbc".into(),
    })?;
    std::thread::Builder::new()
        .name("mdbc-replicator".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("replicator cannot start: {e}");
                    return;
                }
            };
            rt.block_on(run(repl, store, conn, schema_conn, shutdown));
        })?;
    Ok(())
}

/// One log this site applies.
enum Log {
    /// The schema log (`__schema` domain), applied on its own connection.
    Schema,
    /// A strong domain's log.
    Domain(String),
    /// Another site's log of eventual and causal changes.
    Site(Site),
}

impl Log {
    fn key(&self, seq: u64) -> String {
        match self {
            Log::Schema => domain_key(SCHEMA_DOMAIN, seq),
            Log::Domain(d) => domain_key(d, seq),
            Log::Site(s) => log_key(&s.name, seq),
        }
    }

    /// Domain logs are read only up to their head, which is written after the entry: an
    /// entry whose head never got written (its writer failed) is not committed, and the
    /// next owner writes that position again.
    fn head_key(&self) -> Option<String> {
        match self {
            Log::Schema => Some(domain_head(SCHEMA_DOMAIN)),
            Log::Domain(d) => Some(domain_head(d)),
            Log::Site(_) => None,
        }
    }

    /// The log's key-space prefix (what it is truncated by).
    fn prefix(&self) -> String {
        match self {
            Log::Schema => domain_prefix(SCHEMA_DOMAIN),
            Log::Domain(d) => domain_prefix(d),
            Log::Site(s) => log_prefix(&s.name),
        }
    }

    fn next(&self, repl: &Replication, conn: &Connection) -> rusqlite::Result<u64> {
        Ok(match self {
            Log::Schema => repl.schema_pos(),
            Log::Domain(d) => applied_pos(conn, &domain_log(d))?,
            // From SQLite, not the in-memory position: it counts the entries applied in
            // the replicator's open transaction.
            Log::Site(s) => applied_pos(conn, &site_log(&s.name))?,
        } + 1)
    }
}

/// The logs to apply: the schema first (data entries wait for the schema they were
/// written against), then the strong domains of the tables this site has, then the
/// other sites' logs (removed sites' included).
fn logs(repl: &Replication, store: &Store) -> Vec<Log> {
    let cat = store.catalog();
    let names: Vec<String> = cat.tables().map(|t| t.name.clone()).collect();
    let mut out = vec![Log::Schema];
    out.extend(repl.strong_domains(&names).into_iter().map(Log::Domain));
    out.extend(repl.peers().iter().cloned().map(Log::Site));
    // What a removed site shipped before it left is applied like any other entry.
    out.extend(repl.retired().into_iter().map(Log::Site));
    out
}

fn local_value(repl: &Replication, key: &str) -> Option<bytes::Bytes> {
    match repl.music.store().local().get(key) {
        Ok(v) => v.map(|v| v.value),
        Err(e) => {
            tracing::warn!(%key, "reading the key space: {e}");
            None
        }
    }
}

async fn run(
    repl: Arc<Replication>,
    store: Arc<Store>,
    conn: Connection,
    schema_conn: Connection,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = repl.music.store().changes();
    let mut shapes = Shapes::default();
    let mut complained: Option<String> = None;
    let mut last_pull = tokio::time::Instant::now();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let mut progressed = false;
        let mut waiting = false;
        let logs = logs(&repl, &store);
        let mut batch = Batch::new();
        for log in &logs {
            loop {
                if batch.applied >= BATCH {
                    if let Err(e) = batch.flush(&repl, &store, &conn).await {
                        tracing::error!("committing applied entries: {e}");
                        break;
                    }
                }
                let next = match log.next(&repl, &conn) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!("reading applied positions: {e}");
                        break;
                    }
                };
                if let Some(head) = log.head_key() {
                    match local_value(&repl, &head).map(|v| decode_head(Some(v))) {
                        Some(Ok(h)) if h >= next => {}
                        _ => break,
                    }
                }
                let key = log.key(next);
                let value = match repl.local_entry(&key).await {
                    Ok(Some(v)) => v,
                    Ok(None) => {
                        let floor = repl.music.store().floor(&log.prefix());
                        if next <= floor {
                            // Every site had applied it when it was dropped, this one
                            // included — unless its data was restored from an old copy.
                            let msg = format!(
                                "{key} was dropped from the key space (entries up to {floor} \
                                 were applied everywhere) but is not applied here: this \
                                 site's data is older than the cluster keeps; stop it, move \
                                 its data directory away and start it again to copy the \
                                 database from another site"
                            );
                            if complained.as_deref() != Some(msg.as_str()) {
                                tracing::error!("{msg}");
                                complained = Some(msg);
                            }
                        }
                        break;
                    }
                    Err(e) => {
                        let msg = format!("reading {key}: {e}");
                        if complained.as_deref() != Some(msg.as_str()) {
                            tracing::error!("{msg}; will retry");
                            complained = Some(msg);
                        }
                        break;
                    }
                };
                let step = match log {
                    Log::Schema => apply_schema(&repl, &store, &schema_conn, next, &value).await,
                    Log::Domain(d) => {
                        apply_domain(
                            &mut batch,
                            &repl,
                            &store,
                            &conn,
                            &mut shapes,
                            (d, next),
                            &value,
                        )
                        .await
                    }
                    Log::Site(peer) => {
                        apply_site(
                            &mut batch,
                            &repl,
                            &store,
                            &conn,
                            &mut shapes,
                            (peer, next),
                            &value,
                        )
                        .await
                    }
                };
                match step {
                    Ok(Step::Applied) => {
                        progressed = true;
                        complained = None;
                    }
                    Ok(Step::Wait) => {
                        waiting = true;
                        break;
                    }
                    Err(e) => {
                        let msg = format!("applying {key}: {e}");
                        if complained.as_deref() != Some(msg.as_str()) {
                            tracing::error!("{msg}; will retry");
                            complained = Some(msg);
                        }
                        break;
                    }
                }
            }
            // Before the next log (the schema log applies through another connection).
            if let Err(e) = batch.flush(&repl, &store, &conn).await {
                tracing::error!("committing applied entries: {e}");
            }
        }
        if progressed {
            continue;
        }
        // Nothing new arrived on its own: ask the other sites for the next entries this
        // site lacks (what it missed while down or cut off), without waiting for hinted
        // hand-off or anti-entropy. Also when an entry waits for a schema change.
        if waiting && last_pull.elapsed() >= PULL_EVERY {
            pull(&repl, &conn, &logs).await;
            last_pull = tokio::time::Instant::now();
            continue;
        }
        let idle = tokio::select! {
            _ = changes.changed() => false,
            _ = tokio::time::sleep(PULL_EVERY) => true,
            _ = shutdown.changed() => false,
        };
        if idle {
            pull(&repl, &conn, &logs).await;
            last_pull = tokio::time::Instant::now();
        }
    }
}

/// How often an idle (or waiting) replicator asks the other sites for what it lacks.
const PULL_EVERY: Duration = Duration::from_millis(500);

async fn pull(repl: &Replication, conn: &Connection, logs: &[Log]) {
    let mut keys = Vec::new();
    for log in logs {
        if let Ok(next) = log.next(repl, conn) {
            keys.push(log.key(next));
        }
        keys.extend(log.head_key());
    }
    for key in keys {
        if let Err(e) = repl.music.store().read_newest(&key).await {
            tracing::debug!(%key, "pulling from the other sites: {e}");
        }
    }
}

async fn apply_schema(
    repl: &Replication,
    store: &Arc<Store>,
    conn: &Connection,
    seq: u64,
    bytes: &[u8],
) -> anyhow::Result<Step> {
    let entry = Entry::decode(bytes)?;
    if repl
        .apply_schema_entry(store, conn, seq, &entry.ddl)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        tracing::info!(seq, "applied a schema change");
    }
    Ok(Step::Applied)
}

/// Most entries applied in one transaction.
const BATCH: usize = 64;

/// The replicator's open transaction: entries applied but not yet committed, and what
/// to record in memory once they are.
struct Batch {
    guard: Option<crate::store::WriteGuard>,
    applied: usize,
    site_positions: Vec<(u64, u64, u64)>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            guard: None,
            applied: 0,
            site_positions: Vec::new(),
        }
    }

    /// Commits what is applied and publishes the other sites' positions in memory
    /// (causal dependencies, bounded reads and `mdbc_sites` read them).
    ///
    /// It does not wait for the commit to reach the disk: one slow fsync would hold up
    /// every entry arriving meanwhile (seen: 40–50 ms stalls under load). What readers
    /// here see needs no more — the write-ahead log is synced in order, so a crash that
    /// loses a batch loses every later one too, rows and positions together, and they
    /// are applied again from the key space. Positions told to other sites (who then
    /// drop those entries) are read back after a sync (`Replication::durable_positions`).
    async fn flush(
        &mut self,
        repl: &Replication,
        store: &Arc<Store>,
        conn: &Connection,
    ) -> anyhow::Result<()> {
        let Some(guard) = self.guard.take() else {
            return Ok(());
        };
        // Not waited for: made durable by the next local commit, reader or position
        // report that waits (see above).
        let (r, _ticket) = store.commit(conn);
        if let Err(e) = r {
            let _ = conn.execute_batch("ROLLBACK");
            self.applied = 0;
            self.site_positions.clear();
            return Err(e.into());
        }
        drop(guard);
        for (site, seq, hlc) in self.site_positions.drain(..) {
            repl.set_applied_of(site, seq);
            repl.record_lag(site, hlc);
        }
        self.applied = 0;
        Ok(())
    }
}

/// Runs `apply` and records `seq` as applied in `log` atomically, inside the batch's
/// transaction (opened here, under the store's write lock, if none is); skips what is
/// already applied, and waits when the entry's schema is not here yet.
async fn in_transaction(
    batch: &mut Batch,
    store: &Arc<Store>,
    conn: &Connection,
    log: &str,
    seq: u64,
    apply: impl FnOnce() -> Result<(), ApplyError>,
) -> anyhow::Result<Step> {
    if batch.guard.is_none() {
        let guard = store.lock_writer().await;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        batch.guard = Some(guard);
    }
    conn.execute_batch("SAVEPOINT mdbc_entry")?;
    let result = (|| -> Result<bool, ApplyError> {
        if applied_pos(conn, log)? >= seq {
            return Ok(false);
        }
        apply()?;
        set_applied(conn, log, seq)?;
        Ok(true)
    })();
    let undo = |conn: &Connection| {
        let _ = conn.execute_batch("ROLLBACK TO mdbc_entry; RELEASE mdbc_entry");
    };
    match result {
        Ok(fresh) => {
            conn.execute_batch("RELEASE mdbc_entry")?;
            batch.applied += usize::from(fresh);
            Ok(Step::Applied)
        }
        Err(ApplyError::SchemaBehind { table, why }) => {
            undo(conn);
            tracing::debug!(%log, seq, %table, %why, "waiting for the schema");
            Ok(Step::Wait)
        }
        Err(e) => {
            undo(conn);
            Err(e.into())
        }
    }
}

/// Applies entry `seq` of a strong domain's log written by another site.
async fn apply_domain(
    batch: &mut Batch,
    repl: &Replication,
    store: &Arc<Store>,
    conn: &Connection,
    shapes: &mut Shapes,
    (domain, seq): (&str, u64),
    bytes: &[u8],
) -> anyhow::Result<Step> {
    let entry = Entry::decode(bytes)?;
    if entry.seq != seq {
        anyhow::bail!("entry names position {}, expected {seq}", entry.seq);
    }
    if entry.schema > repl.schema_pos() {
        return Ok(Step::Wait);
    }
    let version = store.catalog().version;
    let log = domain_log(domain);
    in_transaction(batch, store, conn, &log, seq, || {
        repl.apply_tables(conn, shapes, version, &entry)
    })
    .await
}

/// Applies entry `seq` of another site's log.
async fn apply_site(
    batch: &mut Batch,
    repl: &Replication,
    store: &Arc<Store>,
    conn: &Connection,
    shapes: &mut Shapes,
    (peer, seq): (&Site, u64),
    bytes: &[u8],
) -> anyhow::Result<Step> {
    let entry = Entry::decode(bytes)?;
    if entry.origin != peer.id || entry.seq != seq {
        anyhow::bail!(
            "entry names site {} position {}, expected {} position {seq}",
            entry.origin,
            entry.seq,
            peer.id
        );
    }
    if entry.schema > repl.schema_pos() {
        return Ok(Step::Wait);
    }
    // Causal: not before everything its writer had applied.
    if let Some((site, pos)) = entry
        .deps
        .iter()
        .find(|(s, pos)| *s != repl.id && repl.applied_of(*s) < *pos)
    {
        tracing::debug!(from = %peer.name, seq, dep_site = site, dep_pos = pos, "waiting for a dependency");
        return Ok(Step::Wait);
    }
    let version = store.catalog().version;
    let log = site_log(&peer.name);
    let step = in_transaction(batch, store, conn, &log, seq, || {
        repl.apply_tables(conn, shapes, version, &entry)
    })
    .await?;
    if matches!(step, Step::Applied) {
        batch.site_positions.push((peer.id, seq, entry.hlc));
    }
    Ok(step)
}
