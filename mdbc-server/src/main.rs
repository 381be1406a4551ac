//! `mdbc-server`: the command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mdbc_server::config::{Config, Synchronous};
use mdbc_server::replication::{snapshot, Replication};
use mdbc_server::store::Store;

mod demo;

/// mdbc: a multi-site SQL database cache speaking the PostgreSQL wire protocol.
#[derive(Parser, Debug)]
#[command(name = "mdbc-server", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a site server in the foreground until SIGINT or SIGTERM.
    ///
    /// Settings come from --config (TOML) and are overridden by the flags given here. With
    /// no [[users]] in the config, loopback clients are trusted and others refused; with
    /// users, clients authenticate with SCRAM-SHA-256. A [tls] section enables TLS.
    Start {
        /// TOML configuration file (keys: listen, data_dir, synchronous, max_connections,
        /// [[users]] name/password, [tls] cert/key).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address for PostgreSQL clients [default: 127.0.0.1:5433].
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// Data directory, created if missing; holds mdbc.db [default: mdbc-data].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Commit durability: full fsyncs every commit (default), normal fsyncs at WAL
        /// checkpoints, off never fsyncs.
        #[arg(long, value_enum)]
        synchronous: Option<Synchronous>,
        /// Most simultaneous client connections [default: 500].
        #[arg(long)]
        max_connections: Option<usize>,
    },
    /// Remove a site that is gone for good from a running cluster: the others stop
    /// replicating to it, count quorums without it and stop keeping logs for it (what
    /// it shipped before is still applied). Stop the site first; its name cannot join
    /// again.
    RemoveSite {
        /// The configuration of any site of the cluster (its address, peers and secret
        /// are used to reach the cluster).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The name of the site to remove.
        #[arg(long)]
        site: String,
    },
    /// Start a local cluster of several sites in one command (each its own process), print
    /// how to connect to each, and stop them all on Ctrl-C.
    Demo {
        /// Number of sites (named a, b, c, …).
        #[arg(long, default_value_t = 3)]
        sites: usize,
        /// PostgreSQL port of the first site; the others follow (P, P+1, …).
        #[arg(long, default_value_t = 5433)]
        base_port: u16,
        /// Cluster port of the first site [default: base port + 100].
        #[arg(long)]
        cluster_port: Option<u16>,
        /// Directory for the sites' data and configuration files.
        #[arg(long, default_value = "mdbc-demo")]
        data_dir: PathBuf,
        /// Level of tables no configuration names.
        #[arg(long, default_value = "eventual")]
        default_level: String,
        /// Tables to make strong (comma-separated names or globs).
        #[arg(long, value_delimiter = ',')]
        strong: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Cmd::Start {
            config,
            listen,
            data_dir,
            synchronous,
            max_connections,
        } => {
            let mut cfg = match &config {
                Some(path) => Config::from_file(path)?,
                None => Config::default(),
            };
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(s) = synchronous {
                cfg.synchronous = s;
            }
            if let Some(m) = max_connections {
                cfg.max_connections = m;
            }
            cfg.validate()?;
            start(cfg)
        }
        Cmd::RemoveSite { config, site } => {
            let cfg = Config::from_file(&config)?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(mdbc_server::replication::membership::remove(&cfg, &site))?;
            println!("site {site} removed from the cluster");
            Ok(())
        }
        Cmd::Demo {
            sites,
            base_port,
            cluster_port,
            data_dir,
            default_level,
            strong,
        } => demo::run(demo::Demo {
            sites,
            base_port,
            cluster_port: cluster_port.unwrap_or(base_port.saturating_add(100)),
            data_dir,
            default_level,
            strong,
        }),
    }
}

fn start(cfg: Config) -> anyhow::Result<()> {
    // This runtime only accepts connections and watches signals; each connection runs on
    // its own thread (server.rs).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let (stop_cluster, cluster_stopped) = tokio::sync::watch::channel(false);
        let node = if cfg.cluster.is_some() {
            // A new site of a cluster joins, then starts its cluster node (so that it
            // votes and stores while it copies), then starts from a copy of another
            // site's data.
            let new = snapshot::join_if_new(&cfg).await?;
            let node = Replication::start_node(&cfg, cluster_stopped.clone()).await?;
            if new {
                snapshot::bootstrap(&cfg).await?;
            }
            Some(node)
        } else {
            None
        };
        let store = Store::open(&cfg.data_dir, cfg.synchronous)
            .with_context(|| format!("opening data directory {}", cfg.data_dir.display()))?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        let repl = match node {
            Some(node) => {
                let r = Replication::start(&cfg, node, store.clone(), cluster_stopped).await?;
                let (stride, slot) = r.sequence_stripe();
                store.set_sequence_stripe(stride, slot);
                Some(r)
            }
            None => None,
        };
        tracing::info!(
            listen = %listener.local_addr()?,
            data = %store.path().display(),
            auth = if cfg.users.is_empty() { "trust (loopback only)" } else { "scram-sha-256" },
            tls = cfg.tls.is_some(),
            "mdbc-server ready"
        );
        let site = cfg.site.clone();
        let served = mdbc_server::server::run(listener, cfg, store, repl, shutdown_signal()).await;
        let _ = stop_cluster.send(true);
        tracing::info!(%site, "stopped");
        served
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

/// Logs to stderr, filtered by `MDBC_LOG` (any `tracing` filter; `info` by default),
/// coloured only on a terminal so log files stay plain text.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MDBC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
