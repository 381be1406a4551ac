//! `consensus-node`: one replica of a replicated key-value store over TCP — the consensus
//! crate run on its own, for multi-process tests and the etcd comparison.
//!
//! ```text
//! consensus-node --id 1 --listen 127.0.0.1:7001 --client-listen 127.0.0.1:8001 \
//!     --peer 2=127.0.0.1:7002 --peer 3=127.0.0.1:7003 --data-dir /var/lib/n1
//! ```
//! The cluster secret comes from `MDBC_CLUSTER_SECRET` or `--secret-file`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use consensus::net::{run_node, NodeConfig};
use consensus::Config;

/// One replica of a Multi-Paxos replicated key-value store.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// This replica's id (a positive integer, unique in the cluster).
    #[arg(long)]
    id: u64,
    /// Address peers connect to.
    #[arg(long)]
    listen: SocketAddr,
    /// Address clients connect to.
    #[arg(long)]
    client_listen: SocketAddr,
    /// A peer as ID=HOST:PORT (repeat for each).
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<(u64, SocketAddr)>,
    /// Directory of this replica's log (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// File holding the cluster secret (else MDBC_CLUSTER_SECRET).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Tick length in milliseconds (heartbeats every 5 ticks, elections after 40-80).
    #[arg(long, default_value_t = 1)]
    tick_ms: u64,
    /// Do not fsync the log (benchmarks comparing without fsync only).
    #[arg(long)]
    no_fsync: bool,
    /// Compact the log into a snapshot every this many entries (0: never).
    #[arg(long, default_value_t = 10_000)]
    snapshot_every: u64,
}

fn parse_peer(s: &str) -> Result<(u64, SocketAddr), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=HOST:PORT, got {s:?}"))?;
    let id: u64 = id.parse().map_err(|_| format!("bad peer id {id:?}"))?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?;
    Ok((id, addr))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MDBC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let secret = match &args.secret_file {
        Some(f) => std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        None => std::env::var("MDBC_CLUSTER_SECRET")
            .context("set MDBC_CLUSTER_SECRET or --secret-file: nodes authenticate each other")?
            .into_bytes(),
    };
    let secret: Vec<u8> = secret.trim_ascii().to_vec();
    if secret.len() < 16 {
        bail!("the cluster secret must be at least 16 bytes");
    }
    let peers: HashMap<u64, SocketAddr> = args.peers.iter().copied().collect();
    if peers.len() != args.peers.len() {
        bail!("a peer id is given twice");
    }
    let mut consensus = Config::new(args.id, peers.keys().copied().collect());
    consensus.seed = args.id ^ std::process::id() as u64;
    consensus.validate()?;
    let cfg = NodeConfig {
        consensus,
        listen: args.listen,
        client_listen: args.client_listen,
        peers,
        data_dir: args.data_dir,
        secret,
        tick: Duration::from_millis(args.tick_ms.max(1)),
        fsync: !args.no_fsync,
        snapshot_every: args.snapshot_every,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
            let _ = tx.send(true);
        });
        tracing::info!(id = args.id, listen = %args.listen, clients = %args.client_listen, "consensus-node starting");
        run_node(cfg, rx, None).await
    })
}
