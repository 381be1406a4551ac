//! Applies the other sites' logs to this site's SQLite file.
//!
//! One thread with its own connection (SQLite work blocks, so it stays off the async
//! workers). For each other site it reads `site/<site>/<applied + 1>` from this site's
//! MUSIC replica and applies it in one transaction that also records the new applied
//! position; when no site has a next entry it sleeps until the replica changes. An entry
//! written against a schema this site has not reached waits for it.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use sql_capture::apply::ApplyError;
use sql_capture::capture::Shapes;
use sql_capture::changes::Entry;
use tokio::sync::watch;

use super::{applied_pos, domain_key, log_key, set_applied, Replication, Site, SCHEMA_DOMAIN};
use crate::config::Level;
use crate::session::Session;
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
            let applier = match Session::new(
                store.clone(),
                SessionIdent {
                    pid: -4,
                    user: "mdbc".into(),
                    database: "mdbc".into(),
                },
            ) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("replicator cannot open its session: {e}");
                    return;
                }
            };
            rt.block_on(run(repl, store, conn, applier, shutdown));
        })?;
    Ok(())
}

async fn run(
    repl: Arc<Replication>,
    store: Arc<Store>,
    conn: Connection,
    mut applier: Session,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = repl.music.store().changes();
    let mut shapes = Shapes::default();
    let peers: Vec<Site> = repl.peers.clone();
    let mut complained: Option<String> = None;
    let mut last_pull = tokio::time::Instant::now();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let mut progressed = false;
        let mut waiting = false;
        // The schema first: data entries wait for the schema they were written against.
        loop {
            let next = repl.schema_pos() + 1;
            let key = domain_key(SCHEMA_DOMAIN, next);
            let value = match repl.music.store().local().get(&key) {
                Ok(Some(v)) => v.value,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%key, "reading the key space: {e}");
                    break;
                }
            };
            let applied = match Entry::decode(&value) {
                Ok(e) => applier
                    .apply_schema_entry(next, &e.ddl)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match applied {
                Ok(new) => {
                    if new {
                        tracing::info!(seq = next, "applied a schema change");
                    }
                    progressed = true;
                    complained = None;
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
        // Strong domains' logs, for the sites that do not own them.
        for domain in strong_domains(&repl, &store) {
            let log = format!("domain:{domain}");
            loop {
                let next = match applied_pos(&conn, &log) {
                    Ok(p) => p + 1,
                    Err(e) => {
                        tracing::warn!("reading applied positions: {e}");
                        break;
                    }
                };
                let key = domain_key(&domain, next);
                let value = match repl.music.store().local().get(&key) {
                    Ok(Some(v)) => v.value,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(%key, "reading the key space: {e}");
                        break;
                    }
                };
                match apply_domain(&repl, &store, &conn, &mut shapes, &domain, next, &value).await {
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
        }
        for peer in &peers {
            loop {
                let next = repl.applied_of(peer.id) + 1;
                let key = log_key(&peer.name, next);
                let value = match repl.music.store().local().get(&key) {
                    Ok(Some(v)) => v.value,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(%key, "reading the key space: {e}");
                        break;
                    }
                };
                match apply_entry(&repl, &store, &conn, &mut shapes, peer, next, &value).await {
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
        }
        if progressed {
            continue;
        }
        // Nothing new arrived on its own: ask the other sites for the next entries this
        // site lacks (what it missed while down or cut off), without waiting for hinted
        // hand-off or anti-entropy. Also when an entry waits for a schema change.
        if waiting && last_pull.elapsed() >= PULL_EVERY {
            pull_next(&repl, &peers).await;
            pull_domains(&repl, &store, &conn).await;
            last_pull = tokio::time::Instant::now();
            continue;
        }
        let idle = tokio::select! {
            _ = changes.changed() => false,
            _ = tokio::time::sleep(PULL_EVERY) => true,
            _ = shutdown.changed() => false,
        };
        if idle {
            pull_next(&repl, &peers).await;
            pull_domains(&repl, &store, &conn).await;
            last_pull = tokio::time::Instant::now();
        }
    }
}

/// How often an idle (or waiting) replicator asks the other sites for what it lacks.
const PULL_EVERY: Duration = Duration::from_millis(500);

async fn pull_next(repl: &Replication, peers: &[Site]) {
    let mut keys = vec![domain_key(SCHEMA_DOMAIN, repl.schema_pos() + 1)];
    keys.extend(
        peers
            .iter()
            .map(|p| log_key(&p.name, repl.applied_of(p.id) + 1)),
    );
    for key in keys {
        if let Err(e) = repl.music.store().read_newest(&key).await {
            tracing::debug!(%key, "pulling from the other sites: {e}");
        }
    }
}

/// The strong domains of the tables this site has.
fn strong_domains(repl: &Replication, store: &Store) -> Vec<String> {
    let cat = store.catalog();
    let names: Vec<String> = cat.tables().map(|t| t.name.clone()).collect();
    repl.strong_domains(&names)
}

async fn pull_domains(repl: &Replication, store: &Store, conn: &Connection) {
    let mut keys = Vec::new();
    for d in strong_domains(repl, store) {
        if let Ok(p) = applied_pos(conn, &format!("domain:{d}")) {
            keys.push(domain_key(&d, p + 1));
        }
    }
    for key in keys {
        if let Err(e) = repl.music.store().read_newest(&key).await {
            tracing::debug!(%key, "pulling from the other sites: {e}");
        }
    }
}

/// Applies entry `seq` of a strong domain's log written by another site.
#[allow(clippy::too_many_arguments)]
async fn apply_domain(
    repl: &Replication,
    store: &Arc<Store>,
    conn: &Connection,
    shapes: &mut Shapes,
    domain: &str,
    seq: u64,
    bytes: &[u8],
) -> anyhow::Result<Step> {
    let entry = Entry::decode(bytes)?;
    if entry.seq != seq {
        anyhow::bail!("entry names position {}, expected {seq}", entry.seq);
    }
    if entry.schema > repl.schema_pos() {
        return Ok(Step::Wait);
    }
    let guard = store.lock_writer().await;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> Result<bool, crate::errors::SqlError> {
        if applied_pos(conn, &format!("domain:{domain}"))? >= seq {
            return Ok(false);
        }
        let version = store.catalog().version;
        repl.apply_domain_entry(conn, shapes, version, domain, seq, &entry)?;
        Ok(true)
    })();
    match result {
        Ok(_) => {
            let (r, ticket) = store.commit(conn);
            if let Err(e) = r {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
            drop(guard);
            store.wait_durable(ticket).await;
            Ok(Step::Applied)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(anyhow::anyhow!("{e}"))
        }
    }
}

async fn apply_entry(
    repl: &Replication,
    store: &Arc<Store>,
    conn: &Connection,
    shapes: &mut Shapes,
    peer: &Site,
    seq: u64,
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
    let guard = store.lock_writer().await;
    let log = format!("site:{}", peer.name);
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> Result<bool, ApplyError> {
        if applied_pos(conn, &log)? >= seq {
            return Ok(false);
        }
        let version = store.catalog().version;
        for t in &entry.tables {
            if repl.policy.level(&t.table) == Level::Local {
                continue;
            }
            sql_capture::apply::apply(conn, shapes, version, t, entry.clock())?;
        }
        set_applied(conn, &log, seq)?;
        Ok(true)
    })();
    let step = match result {
        Ok(_) => {
            let (r, ticket) = store.commit(conn);
            if let Err(e) = r {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
            drop(guard);
            store.wait_durable(ticket).await;
            repl.hlc.observe(entry.hlc);
            repl.set_applied_of(peer.id, seq);
            repl.record_lag(peer.id, entry.hlc);
            Step::Applied
        }
        Err(ApplyError::SchemaBehind { table, why }) => {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::debug!(site = %peer.name, seq, %table, %why, "waiting for the schema");
            Step::Wait
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    };
    Ok(step)
}

impl Replication {
    pub(super) fn applied_of(&self, site: u64) -> u64 {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&site)
            .copied()
            .unwrap_or(0)
    }

    fn set_applied_of(&self, site: u64, pos: u64) {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(site, pos);
    }
}
