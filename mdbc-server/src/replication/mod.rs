//! Multi-site replication: how a site joins MUSIC, ships its writes and applies the
//! others' (see `DESIGN.md`, "Tables, consistency and logs").
//!
//! - **Capture** ([`Replication::seal`]): at COMMIT of a transaction that wrote, the
//!   session's session-extension capture yields full images of the rows it changed in
//!   replicated tables; they are stamped with the transaction's hybrid-logical clock, and
//!   the entry is appended to this site's log *inside the same SQLite transaction*
//!   (`__mdbc_site_log`), so a commit can never be lost between SQLite and MUSIC.
//! - **Shipping** ([`Replication::ship`]): after COMMIT the entry is put (AP) under
//!   `site/<site>/<seq>` in this site's MUSIC replica, which pushes it to the other sites;
//!   the commit is acknowledged after that put. Puts that failed are retried, and any
//!   entry missing from MUSIC at start-up is put again.
//! - **Applying** ([`replicator`]): a task per site reads the other sites' logs from its
//!   MUSIC replica in order and applies each entry in one SQLite transaction together with
//!   the new applied position, so replay is idempotent; rows resolve by last writer wins
//!   on their clocks, so sites converge whatever the delivery order.
//! - **Strong domains** ([`domains`]): lock ownership, catch-up and the domain logs.
//! - **Site calls** ([`calls`]): what one site asks another directly over the cluster
//!   port — its log head, for bounded reads ([`freshness`]), and snapshots for a new
//!   site ([`snapshot`]).

pub mod calls;
mod chunks;
pub(crate) use chunks::ChunkError;
pub mod domains;
pub mod freshness;
pub mod membership;
pub mod policy;
mod replicator;
pub mod snapshot;

use std::collections::{BTreeSet, HashMap};
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use music_core::node::{MusicNode, NodeSettings, PeerSettings};
use music_core::service::Music;
use music_core::store::embedded::EmbeddedStore;
use music_core::version::Hlc;
use rusqlite::{Connection, OptionalExtension};
use sql_capture::capture::{Capture, CaptureError, Shapes};
use sql_capture::changes::{Entry, RowClock, TableChanges};
use tokio::sync::watch;

use crate::config::{Config, Level};
use crate::errors::SqlError;
use crate::store::Store;
pub use policy::{Policy, TablePolicy};

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

/// Another site.
#[derive(Debug, Clone)]
pub struct Site {
    /// Its name.
    pub name: String,
    /// Its numeric id.
    pub id: u64,
    /// Its cluster address.
    pub addr: String,
}

/// A strong transaction's entry for one domain, ready to ship.
pub struct StrongEntry {
    owned: Arc<domains::Owned>,
    domain: String,
    table: String,
    seq: u64,
    bytes: Bytes,
}

/// A sealed local transaction: its position in this site's log and its entry.
#[derive(Debug)]
pub struct Sealed {
    seq: u64,
    bytes: Bytes,
    // How many other sites must hold it before the commit is acknowledged
    // (`sync_replicas`).
    sync: u32,
}

/// This site's part in the cluster. Shared by every session through the [`Store`].
pub struct Replication {
    site: String,
    id: u64,
    policy: Policy,
    hlc: Hlc,
    music: Music<EmbeddedStore>,
    node: MusicNode,
    // The other sites: those configured, then those that joined (see membership.rs).
    peers: std::sync::RwLock<Arc<Vec<Site>>>,
    // Sites removed from the cluster: what they shipped before is still applied here.
    retired: std::sync::RwLock<Vec<Site>>,
    // This site's slot in serial stripes (see `sequence_stripe`).
    stripe_slot: i64,
    // The next position of this site's log; moves only under the store's write lock.
    next_seq: AtomicU64,
    // Position of the schema log applied here.
    schema_pos: AtomicU64,
    // Applied position of each other site's log, by site id: what readers here see.
    applied: Mutex<HashMap<u64, u64>>,
    unshipped: Mutex<BTreeSet<u64>>,
    lock_timeout: Duration,
    // The server's long-lived runtime, where lock renewers run.
    runtime: tokio::runtime::Handle,
    ownership: domains::Ownership,
    bind: String,
    // This site's own row in `__mdbc_applied` ("site:<site>").
    own_log: String,
    // Per other site: whether its cluster port answered lately, and the delay (ms) between
    // writing and applying here of the last entry applied from it.
    health: Mutex<HashMap<u64, (bool, Option<u64>)>>,
    // Bounded reads: how recently this site knew it had everything of each other site.
    freshness: Mutex<freshness::Freshness>,
    // Ticks each time an applied position of another site's log moves.
    applied_tick: watch::Sender<u64>,
    data_dir: std::path::PathBuf,
    store_path: std::path::PathBuf,
    // The site's database (which holds this, hence weak).
    store: std::sync::Weak<Store>,
    // Snapshots made for new sites (see snapshot.rs).
    snapshots: Mutex<snapshot::Made>,
    join_lock: tokio::sync::Mutex<()>,
}

/// Serial values are striped over this many slots, one per site.
pub const SEQUENCE_STRIDE: i64 = 64;

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

fn lock_error(what: &str, e: music_core::service::MusicError) -> SqlError {
    use music_core::service::MusicError as M;
    match e {
        M::Timeout(_) => SqlError::coded(
            "40001",
            format!("{what}: timed out waiting for the cluster lock held by another site; retry the transaction"),
        ),
        other => SqlError::coded(
            "57P03",
            format!("{what}: the cluster cannot be reached ({other}); nothing was committed"),
        ),
    }
}

/// Decodes a head record.
pub(crate) fn decode_head(v: Option<bytes::Bytes>) -> Result<u64, SqlError> {
    match v {
        None => Ok(0),
        Some(v) => {
            let b: [u8; 8] = v[..]
                .try_into()
                .map_err(|_| SqlError::coded("XX001", "a domain log head record is malformed"))?;
            Ok(u64::from_be_bytes(b))
        }
    }
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("site", &self.site)
            .finish()
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

fn log_key(site: &str, seq: u64) -> String {
    format!("site/{}/{seq}", key_part(site))
}

/// The key-space prefix of site `site`'s log (see [`log_key`]).
pub(super) fn log_prefix(site: &str) -> String {
    format!("site/{}/", key_part(site))
}

/// The key-space prefix of domain `domain`'s log (see [`domain_key`]).
pub(super) fn domain_prefix(domain: &str) -> String {
    format!("domain/{}/", key_part(domain))
}

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

pub(crate) fn set_applied(conn: &Connection, log: &str, pos: u64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO __mdbc_applied (log, pos) VALUES (?1, ?2) \
         ON CONFLICT (log) DO UPDATE SET pos = excluded.pos",
    )?
    .execute(rusqlite::params![log, pos as i64])?;
    Ok(())
}

/// This site's MUSIC node, running before its database opens: a new site takes its part
/// in the lock service's and the key space's quorums while it copies a snapshot, so a
/// cluster that counts it already does not stall on its bootstrap (see snapshot.rs).
pub struct ClusterNode {
    node: MusicNode,
    peers: Vec<Site>,
}

impl Replication {
    /// Starts this site's MUSIC node on `[cluster] bind` with the configured peers (the
    /// others that joined are learnt from the lock service's log). Runs until `shutdown`
    /// turns true.
    pub async fn start_node(
        cfg: &Config,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<ClusterNode> {
        let cluster = cfg
            .cluster
            .as_ref()
            .context("no [cluster] section in the configuration")?;
        let secret = cluster.secret_bytes()?;
        let id = site_id(&cfg.site);
        let mut peers = Vec::new();
        let mut settings_peers = Vec::new();
        for p in &cluster.peers {
            let pid = site_id(&p.site);
            if pid == id || peers.iter().any(|s: &Site| s.id == pid) {
                anyhow::bail!("site names {} and another hash alike; rename one", p.site);
            }
            let addr = p
                .addr
                .to_socket_addrs()
                .with_context(|| format!("resolving the address of site {}: {}", p.site, p.addr))?
                .next()
                .with_context(|| format!("site {} has no address", p.site))?;
            settings_peers.push(PeerSettings {
                id: pid,
                consensus: addr,
                rpc: addr,
            });
            peers.push(Site {
                name: p.site.clone(),
                id: pid,
                addr: p.addr.clone(),
            });
        }
        let want = Policy::new(cfg).max_sync_replicas();
        if want as usize > peers.len() {
            anyhow::bail!(
                "a table asks for sync_replicas = {want}, but the cluster has only {} other site(s)",
                peers.len()
            );
        }
        let mut settings = NodeSettings::new(id, cfg.data_dir.join("music"), secret);
        settings.consensus_listen = cluster.bind;
        settings.one_port = true;
        settings.peers = settings_peers;
        settings.lease = Duration::from_millis(cluster.lease_ms);
        // Loopback and LAN sites hear from each other within a few ms; hinted hand-off
        // covers what a down site missed, anti-entropy the rest.
        settings.anti_entropy_every = Duration::from_secs(10);
        let node = MusicNode::start(settings, shutdown.clone())
            .await
            .with_context(|| format!("starting the cluster node on {}", cluster.bind))?;
        tracing::info!(site = %cfg.site, id, bind = %node.consensus_addr, peers = peers.len(), "cluster node running");
        Ok(ClusterNode { node, peers })
    }

    /// Joins the cluster through `node` (from [`Replication::start_node`]): loads the
    /// replication state from the store, puts again whatever of this site's log MUSIC
    /// lacks, and starts the replicator. Runs until `shutdown` turns true.
    pub async fn start(
        cfg: &Config,
        node: ClusterNode,
        store: Arc<Store>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<Replication>> {
        let cluster = cfg
            .cluster
            .as_ref()
            .context("no [cluster] section in the configuration")?;
        let ClusterNode { node, peers } = node;
        let id = site_id(&cfg.site);
        let conn = store.connect(&crate::store::SessionIdent {
            pid: -2,
            user: "mdbc".into(),
            database: "mdbc".into(),
        })?;
        let last_seq = applied_pos(&conn, &format!("site:{}", cfg.site))?;
        let schema_pos = applied_pos(&conn, "domain:__schema")?;
        let mut applied = HashMap::new();
        for p in &peers {
            applied.insert(p.id, applied_pos(&conn, &format!("site:{}", p.name))?);
        }
        let max_clock: i64 = conn.query_row(
            "SELECT coalesce(max(hlc), 0) FROM __mdbc_row_clock",
            [],
            |r| r.get(0),
        )?;
        // Kept from the first start on, so that configurations changed later (a site
        // that joined added to them, say) never move a site to another stripe.
        let stripe_slot = match membership::stripe_slot(&cfg.data_dir)? {
            Some(slot) => slot,
            None => {
                let mut names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
                names.push(&cfg.site);
                names.sort();
                let slot = names.iter().position(|n| *n == cfg.site).unwrap_or(0) as i64;
                membership::save_stripe_slot(&cfg.data_dir, slot)?;
                slot
            }
        };
        let repl = Arc::new(Replication {
            site: cfg.site.clone(),
            id,
            policy: Policy::new(cfg),
            hlc: Hlc::new(),
            music: node.music.clone(),
            node,
            peers: std::sync::RwLock::new(Arc::new(peers)),
            retired: std::sync::RwLock::new(Vec::new()),
            stripe_slot,
            next_seq: AtomicU64::new(last_seq + 1),
            schema_pos: AtomicU64::new(schema_pos),
            applied: Mutex::new(applied),
            unshipped: Mutex::new(BTreeSet::new()),
            lock_timeout: Duration::from_millis(cluster.lock_timeout_ms),
            runtime: tokio::runtime::Handle::current(),
            ownership: domains::Ownership::default(),
            bind: cluster.bind.to_string(),
            own_log: format!("site:{}", cfg.site),
            health: Mutex::new(HashMap::new()),
            freshness: Mutex::new(freshness::Freshness::default()),
            applied_tick: watch::channel(0).0,
            data_dir: cfg.data_dir.clone(),
            store_path: store.path().to_path_buf(),
            store: Arc::downgrade(&store),
            snapshots: Mutex::new(snapshot::Made::default()),
            join_lock: tokio::sync::Mutex::new(()),
        });
        snapshot::clear_leftovers(&cfg.data_dir);
        {
            let weak = Arc::downgrade(&repl);
            repl.node.set_app_handler(Arc::new(move |peer, payload| {
                let weak = weak.clone();
                Box::pin(async move {
                    let repl = weak.upgrade().ok_or("the site is stopping")?;
                    repl.answer(peer, &payload).await
                })
            }));
        }
        repl.hlc.observe(max_clock as u64);
        // Whatever this site committed but MUSIC does not hold (a crash between the two)
        // goes out again.
        let mut stmt = conn.prepare("SELECT seq FROM __mdbc_site_log ORDER BY seq")?;
        let seqs: Vec<u64> = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .filter_map(|r| r.ok())
            .map(|s| s as u64)
            .collect();
        drop(stmt);
        // At or below the floor, the key space dropped it because every site had it.
        let floor = repl.music.store().floor(&log_prefix(&repl.site));
        for seq in seqs.into_iter().filter(|s| *s > floor) {
            let key = log_key(&repl.site, seq);
            if repl.music.store().local().get(&key)?.is_none() {
                repl.lock_unshipped().insert(seq);
            }
        }
        drop(conn);
        tokio::spawn(reshipper(repl.clone(), store.clone(), shutdown.clone()));
        tokio::spawn(membership::watch(repl.clone(), shutdown.clone()));
        tokio::spawn(prune_logs(repl.clone(), store.clone(), shutdown.clone()));
        tokio::spawn(handover(repl.clone(), shutdown.clone()));
        tokio::spawn(probe(repl.clone(), shutdown.clone()));
        replicator::spawn(repl.clone(), store, shutdown)?;
        Ok(repl)
    }

    fn lock_unshipped(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.unshipped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serial sequences' stripe at this site: (stride, slot). The slot is the site's place
    /// among the configured site names, sorted — or, for a site that joined a running
    /// cluster, the one it was given then; the stride leaves room for 64 sites.
    pub fn sequence_stripe(&self) -> (i64, i64) {
        (SEQUENCE_STRIDE, self.stripe_slot % SEQUENCE_STRIDE)
    }

    /// This site's name.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// The other sites.
    pub fn peers(&self) -> Arc<Vec<Site>> {
        self.peers.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sites removed from the cluster (their logs are still applied, to the end).
    pub fn retired(&self) -> Vec<Site> {
        self.retired
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The table policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether writes to `table` are captured and shipped.
    pub fn replicated(&self, table: &str) -> bool {
        self.policy.level(table) != Level::Local
    }

    /// Takes a MUSIC lock on `keys` from the server's own runtime: the guard's lease
    /// renewer must outlive the client connection that asked (a domain stays this site's
    /// after that connection closes), and each connection has a runtime of its own.
    async fn lock(&self, keys: Vec<String>) -> Result<DomainLock, music_core::service::MusicError> {
        let (music, site, timeout) = (self.music.clone(), self.site.clone(), self.lock_timeout);
        self.runtime
            .spawn(async move { music.lock(&keys, &site, timeout).await })
            .await
            .unwrap_or_else(|e| {
                Err(music_core::service::MusicError::Unavailable(format!(
                    "the lock task stopped: {e}"
                )))
            })
    }

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
    pub async fn lock_schema(&self) -> Result<(DomainLock, u64), SqlError> {
        let what = "cannot change the schema";
        let guard = self
            .lock(vec![domain_lock_key(SCHEMA_DOMAIN)])
            .await
            .map_err(|e| lock_error(what, e))?;
        let head = settle_tail(&guard, SCHEMA_DOMAIN, what).await?;
        Ok((guard, head))
    }

    /// Reads entry `seq` of the schema log under `guard`.
    pub async fn read_schema_entry(&self, guard: &DomainLock, seq: u64) -> Result<Entry, SqlError> {
        let v = get_locked(guard, &domain_key(SCHEMA_DOMAIN, seq))
            .await?
            .ok_or_else(|| {
                SqlError::coded(
                    "XX001",
                    format!("schema log entry {seq} is missing although the head is past it"),
                )
            })?;
        Entry::decode(&v).map_err(|e| SqlError::coded("XX001", e.to_string()))
    }

    /// Appends `ddl` to the schema log at `seq` (entry and head in one round) under
    /// `guard`: a quorum holds it when this returns.
    pub async fn publish_schema(
        &self,
        guard: &DomainLock,
        seq: u64,
        ddl: Vec<String>,
    ) -> Result<(), SqlError> {
        if guard.is_lost() {
            return Err(SqlError::coded(
                "40001",
                "cannot change the schema: the schema lock's lease ran out; nothing was committed",
            ));
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
        let what = "cannot change the schema";
        append_locked(guard, SCHEMA_DOMAIN, seq, &entry.encode())
            .await
            .map_err(|e| append_error(what, e))?;
        Ok(())
    }

    /// What the transaction changed in replicated tables (before its COMMIT).
    pub fn collect(
        &self,
        conn: &Connection,
        capture: &Capture,
        shapes: &mut Shapes,
        version: u64,
    ) -> Result<Vec<TableChanges>, SqlError> {
        capture
            .collect(conn, shapes, version, &mut |t| self.replicated(t))
            .map_err(|e| match e {
                // PostgreSQL's logical replication refuses the same with 55000.
                CaptureError::Keyless { .. } => SqlError::coded(
                    "55000",
                    format!("{e}; add a primary key, or configure the table local"),
                ),
                CaptureError::Sqlite(e) => e.into(),
            })
    }

    /// Inside the committing transaction, before its COMMIT: stamps the rows' clocks and
    /// appends the entry with `tables` (its changes to non-strong replicated tables) to
    /// this site's log. `None` when there is nothing to ship. `schema` is the schema-log
    /// position the transaction ends at, when it changed the schema itself.
    pub fn seal(
        &self,
        conn: &Connection,
        tables: Vec<TableChanges>,
        schema: Option<u64>,
    ) -> Result<Option<Sealed>, SqlError> {
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
    fn stamped_entry(
        &self,
        conn: &Connection,
        seq: u64,
        tables: Vec<TableChanges>,
        schema: Option<u64>,
        deps: Vec<(u64, u64)>,
    ) -> Result<Entry, SqlError> {
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

    /// Answers another site's call (see [`calls`]).
    async fn answer(&self, peer: u64, payload: &[u8]) -> Result<Bytes, String> {
        let call: calls::Call = calls::decode(payload)?;
        tracing::trace!(peer, ?call, "site call");
        // Anyone proving the cluster secret may ask to join or remove a site (the secret
        // is what admits a site); everything else (a snapshot is the whole database) is
        // for members only.
        if !matches!(call, calls::Call::Join { .. } | calls::Call::Remove { .. })
            && !self.is_member(peer).await
        {
            return Err(format!("node {peer} is not a member of the cluster"));
        }
        let answer = match call {
            calls::Call::Head => {
                calls::Answer::Head(self.next_seq.load(Ordering::SeqCst).saturating_sub(1))
            }
            calls::Call::Applied => calls::Answer::Applied(self.durable_positions().await?),
            calls::Call::Join { site, addr } => self.answer_join(peer, site, addr).await?,
            calls::Call::Remove { site } => self.answer_remove(site).await?,
            other => self.answer_snapshot(other).await?,
        };
        Ok(calls::encode(&answer))
    }

    /// Whether `id` is another site of the cluster: one this site knows, or one the
    /// consensus membership has taken in and this site not yet.
    async fn is_member(&self, id: u64) -> bool {
        self.peers().iter().any(|p| p.id == id)
            || self
                .music
                .locks()
                .status()
                .await
                .is_ok_and(|s| s.latest.contains(id))
    }

    /// Asks `sites` for their log heads at once and notes the answers (see freshness.rs);
    /// returns the sites whose log has entries this site has not applied, with their head.
    async fn ask_heads(&self, sites: &[u64], timeout: Duration) -> Vec<(u64, u64)> {
        let asked = std::time::Instant::now();
        let mut behind = Vec::new();
        for (id, r) in self.ask_each(sites, &calls::Call::Head, timeout).await {
            match r {
                Ok(calls::Answer::Head(head)) => {
                    let applied = self.applied_of(id);
                    self.lock_freshness().answered(id, asked, head, applied);
                    if head > applied {
                        behind.push((id, head));
                    }
                }
                Ok(other) => tracing::debug!(site = id, "asked for the log head, got {other:?}"),
                Err(e) => tracing::debug!(site = id, "asking for the log head: {e}"),
            }
        }
        behind
    }

    /// Makes `call` of each of `sites` at once; their answers (or why not), by site.
    async fn ask_each(
        &self,
        sites: &[u64],
        call: &calls::Call,
        timeout: Duration,
    ) -> Vec<(u64, Result<calls::Answer, String>)> {
        let payload = calls::encode(call);
        let asks = sites.iter().map(|&id| {
            let payload = payload.clone();
            async move {
                let r = self
                    .music
                    .store()
                    .call_app(id, payload, timeout)
                    .await
                    .and_then(|b| calls::decode::<calls::Answer>(&b));
                (id, r)
            }
        });
        futures::future::join_all(asks).await
    }

    fn lock_freshness(&self) -> std::sync::MutexGuard<'_, freshness::Freshness> {
        self.freshness.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The instant as of which this site had everything every other site had committed
    /// (the oldest of what it knows per site), if it knows one for each.
    pub fn fresh_as_of_all(&self) -> Option<std::time::Instant> {
        let f = self.lock_freshness();
        self.peers()
            .iter()
            .map(|p| f.fresh_as_of(p.id))
            .try_fold(std::time::Instant::now(), |m, t| t.map(|t| m.min(t)))
    }

    /// The bounded table among `tables` with the tightest staleness bound, and that
    /// bound, if any.
    pub fn bound_of<'a>(&self, tables: &'a [String]) -> Option<(&'a str, Duration)> {
        if !self.policy.any_bounded() {
            return None;
        }
        tables
            .iter()
            .filter_map(|t| {
                let p = self.policy.table(t);
                let ms = (p.level == Level::Bounded).then_some(p.max_staleness_ms)??;
                Some((t.as_str(), Duration::from_millis(ms)))
            })
            .min_by_key(|(_, b)| *b)
    }

    /// Before a read of bounded tables (`table` among them) with staleness bound `bound`:
    /// returns once this site has applied everything every other site had committed
    /// `bound` ago, asking them for their log heads when what it knows is too old;
    /// 57P03 if some site does not answer or is not caught up within the lock timeout.
    pub async fn ensure_fresh(&self, table: &str, bound: Duration) -> Result<(), SqlError> {
        let start = std::time::Instant::now();
        let deadline = start + self.lock_timeout;
        let mut tick = self.applied_tick.subscribe();
        let mut last_ask: Option<std::time::Instant> = None;
        loop {
            let now = std::time::Instant::now();
            let peers = self.peers();
            let stale: Vec<&Site> = {
                let f = self.lock_freshness();
                peers
                    .iter()
                    .filter(|p| {
                        f.fresh_as_of(p.id)
                            .is_none_or(|t| now.saturating_duration_since(t) > bound)
                    })
                    .collect()
            };
            let Some(first) = stale.first() else {
                return Ok(());
            };
            if now >= deadline {
                let age = self
                    .lock_freshness()
                    .fresh_as_of(first.id)
                    .map(|t| format!("{} ms ago", now.saturating_duration_since(t).as_millis()))
                    .unwrap_or_else(|| "never since this site started".into());
                return Err(SqlError::coded(
                    "57P03",
                    format!(
                        "cannot read bounded table \"{table}\" within its staleness bound of {} ms: this site last knew it had everything of site {} {age} (unreachable or behind); SET mdbc.read_consistency = 'local' reads what this site has",
                        bound.as_millis(),
                        first.name
                    ),
                ));
            }
            // Ask again when the last answers did not do (a site did not answer), but
            // not in a tight loop.
            if last_ask
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_millis(100))
            {
                last_ask = Some(now);
                let ids: Vec<u64> = stale.iter().map(|p| p.id).collect();
                let wait = deadline
                    .saturating_duration_since(now)
                    .min(Duration::from_secs(1));
                // What a site has but this one lacks is fetched from any replica that
                // holds it (the writer may be unreachable from here while others are not).
                for (id, head) in self.ask_heads(&ids, wait).await {
                    let Some(site) = peers.iter().find(|p| p.id == id) else {
                        continue;
                    };
                    let from = self.applied_of(id) + 1;
                    let keys = (from..=head.min(from + 63)).map(|seq| log_key(&site.name, seq));
                    self.pull_keys(keys).await;
                }
                continue;
            }
            tokio::select! {
                _ = tick.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }
}

/// Appends a log entry at position `seq` of `domain`'s log under a lock: a quorum holds
/// it and the log's head record when this returns. The entry and the head go in one
/// round, stored together by each replica (a replica with the head has the entry); the
/// parts of a large entry (see chunks.rs) are written before them.
async fn append_locked(
    guard: &DomainLock,
    domain: &str,
    seq: u64,
    entry: &[u8],
) -> Result<(), AppendError> {
    let key = domain_key(domain, seq);
    let (parts, value) = chunks::split(entry);
    for (i, p) in parts.into_iter().enumerate() {
        guard
            .put(&chunks::part_key(&key, i as u32), p)
            .await
            .map_err(|err| AppendError {
                err,
                head_sent: false,
            })?;
    }
    guard
        .put_many(vec![
            (key, value),
            (
                domain_head(domain),
                Bytes::copy_from_slice(&seq.to_be_bytes()),
            ),
        ])
        .await
        .map_err(|err| AppendError {
            err,
            head_sent: true,
        })
}

/// Why appending to a domain log failed, and whether the head record (the commit
/// point) had been sent.
struct AppendError {
    err: music_core::service::MusicError,
    head_sent: bool,
}

/// The error a client gets when appending failed. The head record reaching fewer than a
/// quorum does not mean it reached none: a site that takes the domain over reads the
/// newest head a quorum holds, and may find it — so the outcome is unknown (08007, as
/// PostgreSQL says when a connection is lost during COMMIT), not "nothing committed".
fn append_error(what: &str, e: AppendError) -> SqlError {
    use music_core::service::MusicError as M;
    match e.err {
        M::Store(music_core::store::StoreError::NoQuorum { got, need }) if e.head_sent => {
            SqlError::coded(
                "08007",
                format!(
                    "{what}: only {got} of the {need} replicas a quorum needs confirmed the commit; \
                     its outcome is unknown (this site writes it again before its next commit to \
                     the domain, and a site taking the domain over may find it), so check before \
                     retrying"
                ),
            )
        }
        other => lock_error(what, other),
    }
}

async fn put_strong(entries: &[StrongEntry]) -> Result<(), SqlError> {
    for e in entries {
        let what = format!("cannot write strong table \"{}\"", e.table);
        if e.owned.guard.is_lost() {
            return Err(SqlError::coded(
                "40001",
                format!("{what}: this site's lock on domain {} ran out; nothing was committed, retry the transaction", e.domain),
            ));
        }
        if let Err(err) = append_locked(&e.owned.guard, &e.domain, e.seq, &e.bytes).await {
            if err.head_sent {
                e.owned.set_unsettled(&e.domain, e.seq, e.bytes.clone());
            }
            return Err(append_error(&what, err));
        }
        e.owned.set_head(&e.domain, e.seq);
    }
    Ok(())
}

async fn settle(o: &domains::Owned, domain: &str) -> Result<(), SqlError> {
    let Some((seq, entry)) = o.unsettled(domain) else {
        return Ok(());
    };
    match append_locked(&o.guard, domain, seq, &entry).await {
        Ok(()) => {
            tracing::info!(domain, seq, "an entry whose commit was in doubt now stands on a quorum");
            o.settled(domain, seq);
            Ok(())
        }
        Err(e) => Err(SqlError::coded(
            "57P03",
            format!(
                "cannot write domain {domain}: entry {seq} of its log, from a commit whose outcome is still unknown, \
                 cannot be written to a quorum yet ({}); nothing was committed, retry later",
                e.err
            ),
        )),
    }
}

/// On taking a domain: the head a quorum read finds, with its entry, written back to a
/// quorum before this owner builds on it. An owner that died while its last commit reached
/// only some replicas left a head that one quorum read sees and the next may not; once
/// later entries follow it, it must not be lost (nor its position given to other rows).
/// One more quorum round per acquisition, none per commit.
async fn settle_tail(guard: &DomainLock, domain: &str, what: &str) -> Result<u64, SqlError> {
    let head = decode_head(
        guard
            .get(&domain_head(domain))
            .await
            .map_err(|e| lock_error(what, e))?
            .map(|v| v.value),
    )?;
    if head == 0 {
        return Ok(0);
    }
    // Gone when every site had applied it (the log was truncated): nothing to keep.
    if let Some(entry) = get_locked(guard, &domain_key(domain, head)).await? {
        append_locked(guard, domain, head, &entry)
            .await
            .map_err(|e| lock_error(what, e.err))?;
    }
    Ok(head)
}

/// Reads the log entry at `key` under a lock (quorum reads); `None` when there is none.
async fn get_locked(guard: &DomainLock, key: &str) -> Result<Option<Vec<u8>>, SqlError> {
    let what = |e| lock_error("cannot read a log", e);
    let Some(v) = guard.get(key).await.map_err(what)? else {
        return Ok(None);
    };
    match chunks::parse(&v.value).map_err(|e| SqlError::coded("XX001", format!("{key}: {e}")))? {
        chunks::Stored::Whole(b) => Ok(Some(b.to_vec())),
        chunks::Stored::Split(m) => {
            let mut parts = Vec::with_capacity(m.parts as usize);
            for i in 0..m.parts {
                let k = chunks::part_key(key, i);
                let p = guard.get(&k).await.map_err(what)?.ok_or_else(|| {
                    SqlError::coded(
                        "XX001",
                        format!("{k} is missing although its entry is written"),
                    )
                })?;
                parts.push(p.value);
            }
            chunks::join(&m, &parts)
                .map(Some)
                .map_err(|e| SqlError::coded("XX001", format!("{key}: {e}")))
        }
    }
}

impl Replication {
    /// For a linearizable read of `tables`: the head of each strong domain among them
    /// that this site does not own, read from a quorum (a commit acknowledged anywhere
    /// before now has its head there). A domain this site owns needs nothing: no other
    /// site can commit to it while the lease holds.
    pub async fn heads_to_read(&self, tables: &[String]) -> Result<Vec<(String, u64)>, SqlError> {
        if !self.policy.any_strong() {
            return Ok(Vec::new());
        }
        let domains = self.strong_domains(tables);
        if domains.is_empty() {
            return Ok(Vec::new());
        }
        let owned: Vec<String> = {
            let map = self.ownership.owned.lock().await;
            domains
                .iter()
                .filter(|d| map.get(*d).is_some_and(|o| !o.guard.is_lost()))
                .cloned()
                .collect()
        };
        let mut out = Vec::new();
        for d in domains.into_iter().filter(|d| !owned.contains(d)) {
            let head = self
                .music
                .store()
                .read_newest_quorum(&domain_head(&d))
                .await
                .map_err(|e| {
                    let table = tables
                        .iter()
                        .find(|t| self.policy.table(t).domain.as_deref() == Some(d.as_str()))
                        .map(String::as_str)
                        .unwrap_or(d.as_str());
                    SqlError::coded(
                        "57P03",
                        format!("cannot read strong table \"{table}\": no quorum of sites answered ({e}); SET mdbc.read_consistency = 'local' reads what this site has"),
                    )
                })?;
            out.push((d, decode_head(head.map(|v| v.value))?));
        }
        Ok(out)
    }

    /// Asks the other sites for entries `from..=to` of `domain`'s log that this site
    /// lacks; the replicator applies them when they arrive.
    pub async fn pull_domain(&self, domain: &str, from: u64, to: u64) {
        self.pull_keys((from..=to).map(|seq| domain_key(domain, seq)))
            .await;
    }

    /// Fetches the entries at `keys` that this site's replica lacks from the others.
    async fn pull_keys(&self, keys: impl Iterator<Item = String>) {
        for key in keys {
            if matches!(self.local_entry(&key).await, Ok(Some(_))) {
                continue;
            }
            if let Err(e) = self.music.store().read_newest(&key).await {
                tracing::debug!(%key, "pulling an entry for a read: {e}");
            }
        }
    }

    /// How long a statement may wait for the cluster.
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// AP put of a site-log entry, in parts when it is large (parts first).
    async fn put_entry(
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
}

impl Replication {
    /// The strong domains `tables` belong to, sorted.
    pub fn strong_domains<'a>(&self, tables: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let mut d: Vec<String> = tables
            .into_iter()
            .filter_map(|t| self.policy.table(t).domain.clone())
            .collect();
        d.sort();
        d.dedup();
        d
    }

    /// Makes this site the owner of `domains` (unless it is already, and nobody waits for
    /// them): one multi-key lock ref over all of them, waiting up to the lock timeout. The
    /// returned guards are used for one transaction and handed back with
    /// [`Replication::end_use`]. `table` names the table in errors.
    pub async fn acquire_domains(
        &self,
        domains: &[String],
        table: &str,
    ) -> Result<Vec<Arc<domains::Owned>>, SqlError> {
        // Domains this site holds already: no wait behind a session taking others.
        if let Some(out) = self.owned_now(domains).await {
            return Ok(out);
        }
        let what = format!("cannot write strong table \"{table}\"");
        let _one = self.ownership.acquiring.lock().await;
        // Another session here may have taken them while this one waited.
        if let Some(out) = self.owned_now(domains).await {
            return Ok(out);
        }
        let mut map = self.ownership.owned.lock().await;
        // Give up what we hold of these domains (released once no transaction uses it),
        // then take them all with one ref: queueing for several refs one by one could
        // deadlock with another site doing the same in another order.
        let mut give_up: Vec<Arc<domains::Owned>> = Vec::new();
        for d in domains {
            if let Some(o) = map.get(d).cloned() {
                for other in &o.domains {
                    map.remove(other);
                }
                if !give_up.iter().any(|x| Arc::ptr_eq(x, &o)) {
                    give_up.push(o);
                }
            }
        }
        for o in give_up {
            self.ownership.want(o.lock_ref());
            release_if_unused(&self.ownership, o).await;
        }
        // Not held across the wait (see `Ownership::acquiring`).
        drop(map);
        let keys: Vec<String> = domains.iter().map(|d| domain_lock_key(d)).collect();
        let guard = self
            .lock(keys.clone())
            .await
            .map_err(|e| lock_error(&what, e))?;
        let mut heads = HashMap::new();
        for d in domains {
            heads.insert(d.clone(), settle_tail(&guard, d, &what).await?);
        }
        tracing::debug!(?domains, lock_ref = guard.lock_ref(), "now owns");
        let owned = Arc::new(domains::Owned::new(guard, domains.to_vec(), heads));
        let mut map = self.ownership.owned.lock().await;
        for d in domains {
            map.insert(d.clone(), owned.clone());
        }
        drop(map);
        // A site that queued behind this ref before it was in the map was missed by the
        // hand-over task: asked now, it gets the domain when this transaction ends.
        for key in &keys {
            match self.music.queue(key).await {
                Ok(q) if q.iter().any(|i| i.lock_ref != owned.lock_ref()) => {
                    self.ownership.want(owned.lock_ref());
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    // Unknown: hand over after this transaction rather than risk keeping
                    // someone waiting.
                    tracing::debug!(%key, "reading the lock queue: {e}");
                    self.ownership.want(owned.lock_ref());
                    break;
                }
            }
        }
        Ok(vec![owned])
    }

    /// The held locks covering every one of `domains`, if this site holds them all and
    /// no other site waits for one.
    async fn owned_now(&self, domains: &[String]) -> Option<Vec<Arc<domains::Owned>>> {
        let mut map = self.ownership.owned.lock().await;
        map.retain(|_, o| !o.guard.is_lost());
        let mut out: Vec<Arc<domains::Owned>> = Vec::new();
        for d in domains {
            let o = map
                .get(d)
                .filter(|o| !self.ownership.is_wanted(o.lock_ref()))?;
            if !out.iter().any(|x| Arc::ptr_eq(x, o)) {
                out.push(o.clone());
            }
        }
        Some(out)
    }

    /// Entry `seq` of `domain`'s log, read under the lock (quorum).
    pub async fn read_domain_entry(
        &self,
        owned: &domains::Owned,
        domain: &str,
        seq: u64,
    ) -> Result<Entry, SqlError> {
        let v = get_locked(&owned.guard, &domain_key(domain, seq))
            .await?
            .ok_or_else(|| {
                SqlError::coded(
                    "XX001",
                    format!(
                        "entry {seq} of domain {domain} is missing although its head is past it"
                    ),
                )
            })?;
        Entry::decode(&v).map_err(|e| SqlError::coded("XX001", e.to_string()))
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
        for t in &entry.tables {
            if self.replicated(&t.table) {
                sql_capture::apply::apply(conn, shapes, version, t, entry.clock(), older)?;
            }
        }
        Ok(())
    }

    /// Applies entry `seq` of `domain`'s log inside the caller's transaction.
    pub fn apply_domain_entry(
        &self,
        conn: &Connection,
        shapes: &mut Shapes,
        version: u64,
        domain: &str,
        seq: u64,
        entry: &Entry,
    ) -> Result<(), SqlError> {
        self.apply_tables(conn, shapes, version, entry)
            .map_err(|e| SqlError::coded("XX000", e.to_string()))?;
        set_applied(conn, &format!("domain:{domain}"), seq)?;
        Ok(())
    }

    /// Before COMMIT, inside the transaction: stamps the transaction's changes to strong
    /// tables and builds one entry per domain (not yet shipped: [`Replication::put_strong`]).
    /// Returns those, and the other changes, for the site log.
    pub fn prepare_strong(
        &self,
        conn: &Connection,
        owned: &[Arc<domains::Owned>],
        changes: Vec<TableChanges>,
        schema: Option<u64>,
    ) -> Result<(Vec<StrongEntry>, Vec<TableChanges>), SqlError> {
        let mut rest = Vec::new();
        let mut by_domain: std::collections::BTreeMap<String, Vec<TableChanges>> =
            Default::default();
        for t in changes {
            match self.policy.table(&t.table).domain.clone() {
                Some(d) if !t.rows.is_empty() => by_domain.entry(d).or_default().push(t),
                Some(_) => {}
                None => rest.push(t),
            }
        }
        let mut out = Vec::new();
        for (domain, tables) in by_domain {
            let table = tables.first().map(|t| t.table.clone()).unwrap_or_default();
            let what = format!("cannot write strong table \"{table}\"");
            let Some(o) = owned.iter().find(|o| o.domains.contains(&domain)) else {
                return Err(SqlError::coded(
                    "40001",
                    format!("{what}: it was changed (by a trigger or cascade?) without its domain lock; write it directly"),
                ));
            };
            let seq = o.head(&domain) + 1;
            let entry = self.stamped_entry(conn, seq, tables, schema, Vec::new())?;
            set_applied(conn, &format!("domain:{domain}"), seq)?;
            out.push(StrongEntry {
                owned: o.clone(),
                domain,
                table,
                seq,
                bytes: Bytes::from(entry.encode()),
            });
        }
        Ok((out, rest))
    }

    /// Appends prepared strong entries to their domains' logs (entry and head in one round): a quorum
    /// holds them when this returns; then the transaction may commit.
    pub async fn put_strong(&self, entries: &[StrongEntry]) -> Result<(), SqlError> {
        put_strong(entries).await
    }

    /// Before the next commit to `domain` at its owner: writes again the entry whose
    /// outcome an earlier commit left unknown (see [`domains::Owned::set_unsettled`]).
    /// Until that succeeds the domain takes no new entry here (57P03).
    pub async fn settle(&self, o: &domains::Owned, domain: &str) -> Result<(), SqlError> {
        settle(o, domain).await
    }

    /// A transaction that used `owned` ended: hands over, on the server's runtime (the
    /// client's connection may be closing), the locks another site waits for.
    pub fn end_use_later(self: &Arc<Self>, owned: Vec<Arc<domains::Owned>>) {
        let me = self.clone();
        self.runtime.spawn(async move { me.end_use(owned).await });
    }

    async fn end_use(&self, owned: Vec<Arc<domains::Owned>>) {
        let wanted: Vec<Arc<domains::Owned>> = owned
            .into_iter()
            .filter(|o| self.ownership.is_wanted(o.lock_ref()))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let mut map = self.ownership.owned.lock().await;
        for o in wanted {
            for d in &o.domains {
                if map.get(d).is_some_and(|x| Arc::ptr_eq(x, &o)) {
                    map.remove(d);
                }
            }
            release_if_unused(&self.ownership, o).await;
        }
    }
}

/// Releases a lock nobody else references any more (else its last user will).
async fn release_if_unused(ownership: &domains::Ownership, o: Arc<domains::Owned>) {
    if let Ok(o) = Arc::try_unwrap(o) {
        let r = o.guard.lock_ref();
        // An entry in doubt goes to a quorum before the lock does, if it can: the next
        // owner then finds it rather than giving its position to another entry.
        for d in &o.domains {
            if let Err(e) = settle(&o, d).await {
                tracing::warn!(
                    lock_ref = r,
                    "handing domain {d} over with an entry in doubt: {e:?}"
                );
            }
        }
        match o.guard.release().await {
            Ok(_) => tracing::debug!(lock_ref = r, "handed a domain over"),
            Err(e) => tracing::warn!(lock_ref = r, "releasing a domain lock: {e}"),
        }
        ownership.forget(r);
    }
}

/// Watches the lock table for refs queued behind a lock this site keeps, and hands those
/// over at once when no transaction uses them (else at the end of the one that does).
async fn handover(repl: Arc<Replication>, mut shutdown: watch::Receiver<bool>) {
    let mut waiters = repl.music.waiters();
    loop {
        let (waiter, behind) = tokio::select! {
            w = waiters.recv() => match w { Some(w) => w, None => return },
            _ = shutdown.changed() => return,
        };
        let mut map = repl.ownership.owned.lock().await;
        let mut give: Vec<Arc<domains::Owned>> = Vec::new();
        for o in map.values() {
            if behind.contains(&o.lock_ref()) && !give.iter().any(|x| Arc::ptr_eq(x, o)) {
                give.push(o.clone());
            }
        }
        for o in give {
            tracing::debug!(
                waiter,
                lock_ref = o.lock_ref(),
                "another site waits for a domain"
            );
            repl.ownership.want(o.lock_ref());
            if domains::unused(&o) {
                for d in &o.domains {
                    map.remove(d);
                }
                release_if_unused(&repl.ownership, o).await;
            }
        }
    }
}

impl Replication {
    fn health(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (bool, Option<u64>)>> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After applying an entry from `site` written at `hlc`: how late it came.
    pub(crate) fn record_lag(&self, site: u64, hlc: u64) {
        let written_ms = hlc >> 16;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.health().entry(site).or_insert((true, None)).1 =
            Some(now_ms.saturating_sub(written_ms));
    }

    /// `mdbc_sites`: this site and each other one, as JSON rows.
    pub fn sites_json(&self) -> String {
        let health = self.health().clone();
        let mut rows = vec![serde_json::json!({
            "site": self.site, "address": self.bind, "is_self": true, "reachable": true,
            "applied": self.next_seq.load(Ordering::SeqCst).saturating_sub(1), "lag_ms": 0,
        })];
        for p in self.peers().iter() {
            let (reachable, lag) = health.get(&p.id).copied().unwrap_or((false, None));
            rows.push(serde_json::json!({
                "site": p.name, "address": p.addr, "is_self": false, "reachable": reachable,
                "applied": self.applied_of(p.id), "lag_ms": lag,
            }));
        }
        serde_json::Value::Array(rows).to_string()
    }

    /// `mdbc_tables`: one table's level, domain, owner (this site when it owns the
    /// domain; unknown here otherwise) and domain-log position known here.
    pub fn table_json(&self, table: &str) -> String {
        let p = self.policy.table(table);
        let owned = p.domain.as_ref().and_then(|d| {
            self.ownership
                .owned
                .try_lock()
                .ok()
                .and_then(|m| m.get(d).map(|o| o.head(d)))
        });
        serde_json::json!([{
            "level": p.level.name(),
            "domain": p.domain,
            "owner": owned.map(|_| self.site.clone()),
            "position": owned,
        }])
        .to_string()
    }
}

/// Notes which other sites answer an authenticated call (for `mdbc_sites`), every second,
/// and, when some table is bounded, their log heads (more often under a tight bound).
async fn probe(repl: Arc<Replication>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let answers = repl
            .music
            .store()
            .reachable(Duration::from_millis(500))
            .await;
        for (id, up) in answers {
            repl.health().entry(id).or_insert((false, None)).0 = up;
        }
        // Bounded reads rarely wait when what this site knows of the others is renewed
        // well within the tightest bound.
        let every = match repl.policy.min_bound_ms() {
            Some(b) => {
                let ids: Vec<u64> = repl.peers().iter().map(|p| p.id).collect();
                repl.ask_heads(&ids, Duration::from_millis(500)).await;
                Duration::from_millis((b / 2).clamp(20, 1000))
            }
            None => Duration::from_secs(1),
        };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// How often a site asks the others how far they applied its log, to prune its copies.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// Drops the log entries every site has durably applied, so that nothing grows forever:
/// this site's own copy of its log (`__mdbc_site_log`, kept so that a commit is never
/// lost between SQLite and MUSIC; the start-up check for unshipped entries reads it) and
/// the key space's copies of this site's log, and — at the member with the lowest id, so
/// that one site does it — of the strong domains' logs. A site that does not answer, or
/// has not applied a log at all, holds it back. The schema log is kept whole (it is
/// small, and a site starting with no one to copy from replays it).
async fn prune_logs(
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
                logs.push((domain_prefix(&d), everywhere(&format!("domain:{d}"))));
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
        let members = self.music.locks().status().await.ok()?;
        if members
            .latest
            .ids()
            .any(|m| m != self.id && !ids.contains(&m))
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
    async fn durable_positions(&self) -> Result<Vec<(String, u64)>, String> {
        let store = self.store.upgrade().ok_or("the site is stopping")?;
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

/// Retries entries that could not be put, reading them back from the site log.
async fn reshipper(repl: Arc<Replication>, store: Arc<Store>, mut shutdown: watch::Receiver<bool>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use music_core::service::MusicError;
    use music_core::store::StoreError;

    /// Three MUSIC nodes in this process, on loopback.
    async fn music_nodes(dir: &std::path::Path) -> (Vec<MusicNode>, watch::Sender<bool>) {
        let (stop, stopped) = watch::channel(false);
        let addrs: Vec<std::net::SocketAddr> = (0..3)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            })
            .collect();
        let mut nodes = Vec::new();
        for id in 1..=3u64 {
            let mut s = NodeSettings::new(id, dir.join(format!("n{id}")), b"secret".to_vec());
            s.consensus_listen = addrs[id as usize - 1];
            s.one_port = true;
            s.quorum_timeout = Duration::from_millis(300);
            s.peers = (1..=3u64)
                .filter(|p| *p != id)
                .map(|p| PeerSettings {
                    id: p,
                    consensus: addrs[p as usize - 1],
                    rpc: addrs[p as usize - 1],
                })
                .collect();
            nodes.push(MusicNode::start(s, stopped.clone()).await.unwrap());
        }
        (nodes, stop)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_entry_in_doubt_keeps_its_position_and_is_written_again_first() {
        let dir = tempfile::tempdir().unwrap();
        let (nodes, _stop) = music_nodes(dir.path()).await;
        let music = nodes[0].music.clone();
        let guard = music
            .lock(&[domain_lock_key("d")], "a", Duration::from_secs(20))
            .await
            .unwrap();
        let owned = Arc::new(domains::Owned::new(
            guard,
            vec!["d".into()],
            HashMap::from([("d".to_string(), 0)]),
        ));
        let entry = |v: &'static [u8]| StrongEntry {
            owned: owned.clone(),
            domain: "d".into(),
            table: "t".into(),
            seq: owned.head("d") + 1,
            bytes: Bytes::from_static(v),
        };
        put_strong(&[entry(b"first")]).await.unwrap();
        assert_eq!(owned.head("d"), 1);
        owned.mark_caught_up("d");
        // The key space of this node cannot reach the others: the head goes out and
        // falls short of a quorum, holding only here.
        music.store().cut_off(&[2, 3]);
        let e = put_strong(&[entry(b"in doubt")]).await.unwrap_err();
        assert_eq!(e.code_and_message().0, "08007");
        // The next commit may not take position 2 while the cut lasts...
        let e = settle(&owned, "d").await.unwrap_err();
        assert_eq!(e.code_and_message().0, "57P03");
        assert_eq!(owned.head("d"), 1);
        // ...and once healed, the entry in doubt is written again first, whole, and
        // this site applies it from the log.
        music.store().cut_off(&[]);
        settle(&owned, "d").await.unwrap();
        assert_eq!(owned.head("d"), 2);
        assert!(!owned.is_caught_up("d"));
        let next = entry(b"after");
        assert_eq!(next.seq, 3);
        put_strong(&[next]).await.unwrap();
        // Every replica ends with the same entries (a quorum confirmed each write; the
        // third replica's copy may arrive a moment later).
        for node in &nodes[1..] {
            let local = node.music.store().local();
            let at = |seq| {
                let v = local.get(&domain_key("d", seq)).unwrap()?.value;
                match chunks::parse(&v).unwrap() {
                    chunks::Stored::Whole(b) => Some(b.to_vec()),
                    chunks::Stored::Split(_) => panic!("a small entry was split"),
                }
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while at(3).is_none() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(at(2).as_deref(), Some(&b"in doubt"[..]));
            assert_eq!(at(3).as_deref(), Some(&b"after"[..]));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_next_owner_puts_a_head_it_found_on_a_quorum() {
        let dir = tempfile::tempdir().unwrap();
        let (nodes, _stop) = music_nodes(dir.path()).await;
        let lock = |i: usize| {
            let music = nodes[i].music.clone();
            async move {
                music
                    .lock(&[domain_lock_key("d")], "x", Duration::from_secs(20))
                    .await
                    .unwrap()
            }
        };
        let first = lock(0).await;
        append_locked(&first, "d", 1, b"one").await.ok().unwrap();
        // The owner's last commit reaches only its own replica, and it goes away.
        nodes[0].music.store().cut_off(&[2, 3]);
        let e = append_locked(&first, "d", 2, b"two").await.err().unwrap();
        assert!(e.head_sent);
        first.release().await.unwrap();
        nodes[0].music.store().cut_off(&[]);
        // The next owner's quorum read reaches the first replica (not the third).
        nodes[1].music.store().cut_off(&[3]);
        let next = lock(1).await;
        assert_eq!(settle_tail(&next, "d", "test").await.unwrap(), 2);
        // Entry 2 now stands on a quorum: the first replica alone no longer holds it.
        let local = nodes[1].music.store().local();
        let held = local.get(&domain_key("d", 2)).unwrap().map(|v| v.value);
        assert!(held.is_some(), "the head found was not written back");
        assert_eq!(
            local
                .get(&domain_head("d"))
                .unwrap()
                .map(|v| decode_head(Some(v.value)).unwrap()),
            Some(2)
        );
    }

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

    #[test]
    fn a_commit_point_short_of_a_quorum_has_an_unknown_outcome() {
        let no_quorum = || MusicError::Store(StoreError::NoQuorum { got: 1, need: 2 });
        let sent = append_error(
            "cannot write",
            AppendError {
                err: no_quorum(),
                head_sent: true,
            },
        );
        let (code, msg) = sent.code_and_message();
        assert_eq!(code, "08007", "{msg}");
        assert!(msg.contains("outcome is unknown"), "{msg}");
        // Before the head record was sent nothing can take effect.
        let (code, msg) = append_error(
            "cannot write",
            AppendError {
                err: no_quorum(),
                head_sent: false,
            },
        )
        .code_and_message();
        assert_eq!(code, "57P03", "{msg}");
        assert!(msg.contains("nothing was committed"), "{msg}");
    }
}
