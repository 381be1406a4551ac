//! `consensus-ctl`: talks to a `consensus-node` cluster as a client — membership changes,
//! status, and single puts and gets.
//!
//! ```text
//! consensus-ctl --node 1=127.0.0.1:8001 --node 2=127.0.0.1:8002 status
//! consensus-ctl --node 1=127.0.0.1:8001 add-member 4 127.0.0.1:7004
//! consensus-ctl --node 1=127.0.0.1:8001 remove-member 2
//! ```
//! The cluster secret comes from `MDBC_CLUSTER_SECRET` or `--secret-file`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use consensus::client::Client;
use consensus::net::{parse_node_addr, read_secret};

/// A client of a consensus-node cluster.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// A replica's client address as ID=HOST:PORT (repeat; requests follow redirects
    /// among these).
    #[arg(long = "node", value_parser = parse_node_addr, required = true)]
    nodes: Vec<(u64, std::net::SocketAddr)>,
    /// File holding the cluster secret (else MDBC_CLUSTER_SECRET).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the view of the first replica that answers: role, leader, membership.
    Status,
    /// Add replica ID, reached by its peers at PEER_ADDR (start it with --join first).
    AddMember {
        /// The new replica's id.
        id: u64,
        /// Its peer address, HOST:PORT.
        peer_addr: String,
    },
    /// Remove replica ID (the leader included: it hands over first).
    RemoveMember {
        /// The replica's id.
        id: u64,
    },
    /// Write VALUE at KEY.
    Put {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// Read KEY linearizably.
    Get {
        /// Key.
        key: String,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let secret = read_secret(args.secret_file.as_deref())?;
    let nodes: HashMap<u64, std::net::SocketAddr> = args.nodes.iter().copied().collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut c = Client::new(nodes, &secret);
        c.deadline = Duration::from_secs(args.timeout_s.max(1));
        match args.command {
            Command::Status => println!("{}", c.status().await?),
            Command::AddMember { id, peer_addr } => {
                c.add_member(id, &peer_addr).await?;
                println!("added {id}");
            }
            Command::RemoveMember { id } => {
                c.remove_member(id).await?;
                println!("removed {id}");
            }
            Command::Put { key, value } => c.put(key.as_bytes(), value.as_bytes()).await?,
            Command::Get { key } => {
                let v = c.get(key.as_bytes()).await?;
                println!("{}", String::from_utf8_lossy(&v));
            }
        }
        Ok(())
    })
}
