//! Helpers for replication's unit tests: MUSIC nodes and whole sites in this process.

use std::time::Duration;

use music_core::node::{MusicNode, NodeSettings, PeerSettings};
use tokio::sync::watch;

/// Three MUSIC nodes in this process, on loopback.
pub(super) async fn music_nodes(dir: &std::path::Path) -> (Vec<MusicNode>, watch::Sender<bool>) {
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

/// A whole site in this process: its store and its part in the cluster (replicator and
/// background jobs running), stopped when `_stop` drops.
pub(super) struct TestSite {
    pub(super) repl: std::sync::Arc<super::cluster::Replication>,
    pub(super) store: std::sync::Arc<crate::store::Store>,
    _stop: watch::Sender<bool>,
}

/// Sites named `names` on loopback, data under `dir`, tables configured by `tables` (a
/// `[tables]` TOML section). They start together, as a new cluster does.
pub(super) async fn sites(dir: &std::path::Path, names: &[&str], tables: &str) -> Vec<TestSite> {
    use crate::config::{Config, Synchronous};
    let addrs: Vec<std::net::SocketAddr> = names
        .iter()
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        })
        .collect();
    let configs: Vec<Config> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let peers: Vec<String> = names
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, p)| format!("{{ site = \"{p}\", addr = \"{}\" }}", addrs[j]))
                .collect();
            let text = format!(
                "site = \"{name}\"\ndata_dir = \"{}\"\nsynchronous = \"off\"\n\
                 [cluster]\nbind = \"{}\"\nsecret = \"test secret\"\npeers = [{}]\n\
                 lease_ms = 2000\nlock_timeout_ms = 10000\n{tables}",
                dir.join(name).display(),
                addrs[i],
                peers.join(", ")
            );
            let cfg = Config::from_toml(&text).unwrap();
            assert_eq!(cfg.synchronous, Synchronous::Off);
            cfg
        })
        .collect();
    let mut nodes = Vec::new();
    let mut stops = Vec::new();
    for cfg in &configs {
        let (stop, stopped) = watch::channel(false);
        nodes.push(
            super::cluster::Replication::start_node(cfg, stopped.clone())
                .await
                .unwrap(),
        );
        stops.push((stop, stopped));
    }
    let mut out = Vec::new();
    for ((cfg, node), (stop, stopped)) in configs.iter().zip(nodes).zip(stops) {
        let store = crate::store::Store::open(&cfg.data_dir, cfg.synchronous).unwrap();
        let repl = super::cluster::Replication::start(cfg, node, store.clone(), stopped)
            .await
            .unwrap();
        let (stride, slot) = repl.sequence_stripe();
        store.set_sequence_stripe(stride, slot);
        out.push(TestSite {
            repl,
            store,
            _stop: stop,
        });
    }
    out
}
