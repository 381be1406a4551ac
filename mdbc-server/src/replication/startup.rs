//! Starting this site's part in the cluster: its MUSIC node first (a new site takes its
//! part in the quorums while it copies a snapshot), then, once the database is open, the
//! replication state and the background jobs — re-shipping, membership, pruning,
//! hand-over, the probe and the replicator.

use std::collections::{BTreeSet, HashMap};
use std::net::ToSocketAddrs;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use music_core::node::{MusicNode, NodeSettings, PeerSettings};
use music_core::version::Hlc;
use tokio::sync::watch;

use super::cluster::{Replication, Site, SnapshotsMade};
use super::freshness::Freshness;
use super::keys::{applied_pos, log_key, log_prefix, site_id, site_log, SCHEMA_LOG};
use super::ownership::Ownership;
use super::policy::Policy;
use super::{admin, domains, membership, pruning, replicator, site_log, snapshot};
use crate::config::Config;
use crate::store::Store;

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
        let last_seq = applied_pos(&conn, &site_log(&cfg.site))?;
        let schema_pos = applied_pos(&conn, SCHEMA_LOG)?;
        let mut applied = HashMap::new();
        for p in &peers {
            applied.insert(p.id, applied_pos(&conn, &site_log(&p.name))?);
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
            ownership: Ownership::default(),
            bind: cluster.bind.to_string(),
            own_log: site_log(&cfg.site),
            health: Mutex::new(HashMap::new()),
            freshness: Mutex::new(Freshness::default()),
            applied_tick: watch::channel(0).0,
            data_dir: cfg.data_dir.clone(),
            store: store.clone(),
            snapshots: Mutex::new(SnapshotsMade::default()),
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
        tokio::spawn(site_log::reshipper(
            repl.clone(),
            store.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(membership::watch(repl.clone(), shutdown.clone()));
        tokio::spawn(pruning::prune_logs(
            repl.clone(),
            store.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(domains::handover(repl.clone(), shutdown.clone()));
        tokio::spawn(admin::probe(repl.clone(), shutdown.clone()));
        replicator::spawn(repl.clone(), store, shutdown)?;
        Ok(repl)
    }
}
