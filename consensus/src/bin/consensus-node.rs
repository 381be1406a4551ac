//! `consensus-node`: one replica of a replicated key-value store over TCP — the consensus
//! crate run on its own, for multi-process tests and the etcd comparison.
//!
//! ```text
//! consensus-node --id 1 --listen 127.0.0.1:7001 --client-listen 127.0.0.1:8001 \
//!     --peer 2=127.0.0.1:7002 --peer 3=127.0.0.1:7003 --data-dir /var/lib/n1
//! ```
//! A replica added later starts with `--join` and is then added with `consensus-ctl`.
//! The cluster secret comes from `MDBC_CLUSTER_SECRET` or `--secret-file`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use consensus::net::{parse_node_addr, read_secret};
use consensus::node::{run_node, NodeConfig};
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
    #[arg(long = "peer", value_parser = parse_node_addr)]
    peers: Vec<(u64, SocketAddr)>,
    /// Directory of this replica's log (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// File holding the cluster secret (else MDBC_CLUSTER_SECRET).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Tick length in milliseconds: the clock's resolution.
    #[arg(long, default_value_t = 1)]
    tick_ms: u64,
    /// Ticks between the leader's heartbeats.
    #[arg(long, default_value_t = 10)]
    heartbeat_ticks: u64,
    /// A follower that hears no leader for between this many ticks and twice that
    /// stands for election. Keep it well above the round trip between replicas and
    /// above the longest write stall of the disk (a snapshot's checkpoint included).
    #[arg(long, default_value_t = 300)]
    election_ticks: u64,
    /// How long a follower, hearing from the leader, refuses other candidates (the
    /// leader's lease is derived from it); below --election-ticks.
    #[arg(long, default_value_t = 250)]
    lease_ticks: u64,
    /// Do not fsync the log (benchmarks comparing without fsync only).
    #[arg(long)]
    no_fsync: bool,
    /// Compact the log into a snapshot every this many entries (0: never).
    #[arg(long, default_value_t = 100_000)]
    snapshot_every: u64,
    /// Start outside the cluster and wait to be added (`consensus-ctl add-member`); the
    /// `--peer`s are members to reach meanwhile. Without it, the `--peer`s and this
    /// replica are the founding members (only on the first start: afterwards the log
    /// holds the membership).
    #[arg(long)]
    join: bool,
}

fn main() -> anyhow::Result<()> {
    consensus::net::init_logging();
    let args = Args::parse();
    let secret = read_secret(args.secret_file.as_deref())?;
    let peers: HashMap<u64, SocketAddr> = args.peers.iter().copied().collect();
    if peers.len() != args.peers.len() {
        bail!("a peer id is given twice");
    }
    if args.join && peers.is_empty() {
        bail!("--join needs at least one --peer to reach the cluster through");
    }
    let mut consensus = Config::new(args.id, peers.keys().copied().collect());
    consensus.join = args.join;
    consensus.heartbeat_ticks = args.heartbeat_ticks;
    consensus.election_ticks = args.election_ticks;
    consensus.lease_ticks = args.lease_ticks;
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
    // One thread: the replica loop is the bottleneck either way, and hand-offs between
    // tasks on one thread cost no cross-thread wake-up (a futex call and a context
    // switch each) on the commit path.
    let rt = tokio::runtime::Builder::new_current_thread()
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
