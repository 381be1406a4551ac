//! Closed-loop load: `--clients` tasks each repeat one operation for `--seconds` — puts
//! against a `consensus-node` cluster or etcd (bench/consensus-vs-etcd), or coordination
//! operations against MUSIC, ZooKeeper or etcd's lock API (bench/music-vs-zookeeper-etcd,
//! see `coord.rs`) — and print one JSON line with the count, throughput and latency
//! percentiles (microseconds).

mod coord;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    target: Target,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1, global = true)]
    clients: usize,
    /// Measured seconds (after one second of warm-up).
    #[arg(long, default_value_t = 5.0, global = true)]
    seconds: f64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 64, global = true)]
    value_size: usize,
}

#[derive(Subcommand)]
enum Target {
    /// consensus-node replicas: ID=HOST:PORT of each client port.
    Mdbc {
        #[arg(long, value_delimiter = ',')]
        addrs: Vec<String>,
        #[arg(long, env = "MDBC_CLUSTER_SECRET")]
        secret: String,
    },
    /// etcd endpoints (host:port).
    Etcd {
        #[arg(long, value_delimiter = ',')]
        endpoints: Vec<String>,
    },
    /// MUSIC nodes' REST addresses (host:port).
    Music {
        #[arg(long, value_delimiter = ',')]
        http: Vec<String>,
        #[arg(long, value_enum)]
        op: coord::Op,
    },
    /// A ZooKeeper ensemble (host:port,host:port,...).
    Zk {
        #[arg(long)]
        servers: String,
        #[arg(long, value_enum)]
        op: coord::Op,
    },
    /// etcd's lock API (endpoints host:port).
    EtcdLock {
        #[arg(long, value_delimiter = ',')]
        endpoints: Vec<String>,
        #[arg(long, value_enum)]
        op: coord::Op,
    },
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The same runtime for every target: one thread for one client (a closed loop of one
    // is sequential; a second thread only adds hand-offs between threads), two otherwise.
    let rt = if args.clients <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let warmup = Duration::from_secs(1);
    let measure = Duration::from_secs_f64(args.seconds);
    let value = vec![b'v'; args.value_size];
    let mut tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<u64>>>> = Vec::new();
    match &args.target {
        Target::Mdbc { addrs, secret } => {
            let mut map = HashMap::new();
            for a in addrs {
                let (id, addr) = a.split_once('=').context("ID=HOST:PORT")?;
                map.insert(id.parse::<u64>()?, addr.parse::<SocketAddr>()?);
            }
            // One client, its connections shared by every task (as the etcd client's
            // channel is below); each task is its own session.
            let shared = consensus::client::Client::new(map, secret.as_bytes());
            for c in 0..args.clients {
                let mut client = shared.session();
                let value = value.clone();
                tasks.push(tokio::spawn(async move {
                    // Find the leader first: followers redirect reads to it.
                    client.get(b"warmup").await?;
                    let mut clock = Clock::new(warmup, measure);
                    let mut i = 0u64;
                    while let Some(t0) = clock.next() {
                        client.put(format!("c{c}-{i}").as_bytes(), &value).await?;
                        clock.done(t0);
                        i += 1;
                    }
                    Ok(clock.latencies)
                }));
            }
        }
        Target::Etcd { endpoints } => {
            let client = etcd_client::Client::connect(endpoints.clone(), None).await?;
            for c in 0..args.clients {
                let mut kv = client.kv_client();
                let value = value.clone();
                tasks.push(tokio::spawn(async move {
                    let mut clock = Clock::new(warmup, measure);
                    let mut i = 0u64;
                    while let Some(t0) = clock.next() {
                        kv.put(format!("c{c}-{i}"), value.clone(), None).await?;
                        clock.done(t0);
                        i += 1;
                    }
                    Ok(clock.latencies)
                }));
            }
        }
        Target::Music { http, op } => {
            tasks = coord::music(http, *op, args.clients, args.value_size, (warmup, measure));
        }
        Target::Zk { servers, op } => {
            tasks = coord::zookeeper(
                servers,
                *op,
                args.clients,
                args.value_size,
                (warmup, measure),
            )
            .await?;
        }
        Target::EtcdLock { endpoints, op } => {
            tasks = coord::etcd_lock(
                endpoints,
                *op,
                args.clients,
                args.value_size,
                (warmup, measure),
            )
            .await?;
        }
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    latencies.sort_unstable();
    let ops = latencies.len();
    println!(
        "{}",
        serde_json::json!({
            "ops": ops,
            "tps": ops as f64 / measure.as_secs_f64(),
            "p50_us": percentile(&latencies, 0.50),
            "p99_us": percentile(&latencies, 0.99),
        })
    );
    Ok(())
}

/// Times a closed loop: operations run back to back; those started after the warm-up
/// and before the end are measured (µs).
struct Clock {
    start: Instant,
    warmup: Duration,
    end: Duration,
    latencies: Vec<u64>,
}

impl Clock {
    fn new(warmup: Duration, measure: Duration) -> Clock {
        Clock {
            start: Instant::now(),
            warmup,
            end: warmup + measure,
            latencies: Vec::new(),
        }
    }

    /// The start of the next operation, or `None` when time is up.
    fn next(&self) -> Option<Instant> {
        let now = Instant::now();
        (now - self.start < self.end).then_some(now)
    }

    fn done(&mut self, t0: Instant) {
        if t0 - self.start >= self.warmup {
            self.latencies.push(t0.elapsed().as_micros() as u64);
        }
    }
}
