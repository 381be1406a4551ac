//! `music-node`: one MUSIC node — the lock service (on consensus), its replica of the
//! key space (the embedded store) and the REST API.
//!
//! ```text
//! music-node --config node1.toml
//! music-node --id 1 --data-dir /var/lib/music1 --consensus-listen 127.0.0.1:7001 \
//!     --rpc-listen 127.0.0.1:7101 --http-listen 127.0.0.1:8001 \
//!     --peer 2=127.0.0.1:7002,127.0.0.1:7102 --peer 3=127.0.0.1:7003,127.0.0.1:7103
//! ```
//! The cluster secret comes from `MDBC_CLUSTER_SECRET` or `--secret-file` (at least 16
//! bytes); nodes without it cannot join or write. See the crate README for the file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use music_core::node::{MusicNode, NodeSettings, PeerSettings};
use serde::Deserialize;

/// One MUSIC node: lock service, key-space replica, REST API.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Read the settings from this TOML file (flags given as well win).
    #[arg(long)]
    config: Option<PathBuf>,
    /// This node's id (a positive integer, unique in the cluster).
    #[arg(long)]
    id: Option<u64>,
    /// Directory of its lock-table log and key-space replica (created if missing).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address for consensus peers.
    #[arg(long)]
    consensus_listen: Option<SocketAddr>,
    /// Address for node RPC.
    #[arg(long)]
    rpc_listen: Option<SocketAddr>,
    /// Address for the REST API (not served without it).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Another node as ID=CONSENSUS_ADDR,RPC_ADDR (repeat for each).
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<PeerFile>,
    /// File holding the cluster secret (else MDBC_CLUSTER_SECRET).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Lease of a lock ref that holds, in milliseconds, unless renewed.
    #[arg(long)]
    lease_ms: Option<u64>,
}

/// The TOML file's shape (unknown keys are refused).
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    data_dir: Option<PathBuf>,
    consensus_listen: Option<SocketAddr>,
    rpc_listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    /// REST requests must carry `Authorization: Bearer` this.
    http_token: Option<String>,
    secret_file: Option<PathBuf>,
    lease_ms: Option<u64>,
    #[serde(default)]
    peers: Vec<PeerFile>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct PeerFile {
    id: u64,
    consensus: SocketAddr,
    rpc: SocketAddr,
}

fn parse_peer(s: &str) -> Result<PeerFile, String> {
    let (id, addrs) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=CONSENSUS_ADDR,RPC_ADDR, got {s:?}"))?;
    let (c, r) = addrs
        .split_once(',')
        .ok_or_else(|| format!("expected two addresses after {id}=, got {addrs:?}"))?;
    Ok(PeerFile {
        id: id.parse().map_err(|_| format!("bad node id {id:?}"))?,
        consensus: c.parse().map_err(|e| format!("bad address {c:?}: {e}"))?,
        rpc: r.parse().map_err(|e| format!("bad address {r:?}: {e}"))?,
    })
}

fn main() -> anyhow::Result<()> {
    consensus::net::init_logging();
    let args = Args::parse();
    let file: FileConfig = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("{}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let id = args
        .id
        .or(file.id)
        .context("--id (or id in the file) is required")?;
    if id == 0 {
        bail!("node id 0 is reserved");
    }
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .context("--data-dir (or data_dir in the file) is required")?;
    let secret_file = args.secret_file.or(file.secret_file);
    let secret = consensus::net::read_secret(secret_file.as_deref())?;
    let mut s = NodeSettings::new(id, data_dir, secret);
    s.consensus_listen = args
        .consensus_listen
        .or(file.consensus_listen)
        .context("--consensus-listen is required")?;
    s.rpc_listen = args
        .rpc_listen
        .or(file.rpc_listen)
        .context("--rpc-listen is required")?;
    s.http_listen = args.http_listen.or(file.http_listen);
    s.http_token = file.http_token;
    if let Some(ms) = args.lease_ms.or(file.lease_ms) {
        if ms < 100 {
            bail!("a lease under 100 ms cannot be renewed in time");
        }
        s.lease = Duration::from_millis(ms);
    }
    let peers = if args.peers.is_empty() {
        file.peers
    } else {
        args.peers
    };
    let mut seen = std::collections::HashSet::new();
    for p in &peers {
        if p.id == id || p.id == 0 || !seen.insert(p.id) {
            bail!("peer {} is this node, reserved, or listed twice", p.id);
        }
    }
    s.peers = peers
        .into_iter()
        .map(|p| PeerSettings {
            id: p.id,
            consensus: p.consensus,
            rpc: p.rpc,
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let node = MusicNode::start(s, rx).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            r = node.consensus_task => {
                // The lock-table replica stopped on its own: a storage failure.
                r??;
                return Ok(());
            }
        }
        tracing::info!("stopping");
        let _ = tx.send(true);
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    })
}
