//! One MUSIC node: its consensus replica of the lock table, its replica of the key space
//! (the embedded store), the node RPC server, and the [`Music`] service on top.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use consensus::acceptor::{demux, Acceptor};
use consensus::net::PEER_MAGIC;
use consensus::node::{start_node_with, NodeConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::codec::{decode, encode};
use crate::locks::LockTable;
use crate::rpc::{Request, Response, MAGIC};
use crate::service::{Music, MusicConfig};
use crate::store::embedded::{EmbeddedConfig, EmbeddedStore};

/// Another node, as this one reaches it.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// Its id.
    pub id: u64,
    /// Its consensus peer address.
    pub consensus: SocketAddr,
    /// Its node-RPC address.
    pub rpc: SocketAddr,
}

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// This node's id (a positive integer, unique in the cluster).
    pub id: u64,
    /// Where its lock-table log and its replica of the key space live.
    pub data_dir: PathBuf,
    /// Address for consensus peers.
    pub consensus_listen: SocketAddr,
    /// Address for node RPC.
    pub rpc_listen: SocketAddr,
    /// Serve consensus and node RPC on one port, `consensus_listen` (`rpc_listen` is then
    /// unused, and each peer's two addresses are the same).
    pub one_port: bool,
    /// Address for the REST API, if served.
    pub http_listen: Option<SocketAddr>,
    /// With it, REST requests must carry `Authorization: Bearer TOKEN`.
    pub http_token: Option<String>,
    /// The other nodes.
    pub peers: Vec<PeerSettings>,
    /// Shared by every node; nobody without it joins or writes.
    pub secret: Vec<u8>,
    /// Lease of a lock ref that holds, unless renewed.
    pub lease: Duration,
    /// Consensus tick, and heartbeat and election timeouts in ticks.
    pub tick: Duration,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: u64,
    /// Election timeout in ticks (randomised up to twice that).
    pub election_ticks: u64,
    /// Follower lease in ticks (below the election timeout).
    pub lease_ticks: u64,
    /// How long a quorum operation on the store waits.
    pub quorum_timeout: Duration,
    /// How often the store runs anti-entropy with each peer.
    pub anti_entropy_every: Duration,
}

impl NodeSettings {
    /// Settings with defaults for a LAN: 1 ms ticks, 10 ms heartbeats, 300-600 ms
    /// elections, 10 s lock leases.
    pub fn new(id: u64, data_dir: PathBuf, secret: Vec<u8>) -> NodeSettings {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        NodeSettings {
            id,
            data_dir,
            consensus_listen: any,
            rpc_listen: any,
            one_port: false,
            http_listen: None,
            http_token: None,
            peers: Vec::new(),
            secret,
            lease: Duration::from_secs(10),
            tick: Duration::from_millis(1),
            heartbeat_ticks: 10,
            election_ticks: 300,
            lease_ticks: 250,
            quorum_timeout: Duration::from_secs(2),
            anti_entropy_every: Duration::from_secs(30),
        }
    }
}

/// Answers the application's requests ([`Request::App`]) from peer nodes: the peer's id
/// and the payload in, the answer (or an error message) out.
pub type AppHandler = Arc<
    dyn Fn(u64, Bytes) -> futures::future::BoxFuture<'static, Result<Bytes, String>> + Send + Sync,
>;

/// A connection for application requests ([`Request::App`]) to one node, usable before
/// this process runs a node of its own (a new site fetching its first snapshot, say).
/// `me` must be a member the other node knows, proving the cluster secret.
pub struct AppChannel {
    ch: consensus::rpc::Channel,
}

impl AppChannel {
    /// Connects to node `expect` at `addr`.
    pub async fn connect(
        addr: &str,
        secret: &[u8],
        me: u64,
        expect: u64,
    ) -> Result<AppChannel, String> {
        let (ch, them) = consensus::rpc::Channel::connect(addr, secret, MAGIC, me)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        if them != expect {
            return Err(format!("{addr} is node {them}, expected {expect}"));
        }
        Ok(AppChannel { ch })
    }

    /// Sends `payload` and returns the answer.
    pub async fn call(&self, payload: Bytes, timeout: Duration) -> Result<Bytes, String> {
        let req = encode(&Request::App(payload));
        match tokio::time::timeout(timeout, self.ch.call(req)).await {
            Err(_) => Err(format!("no answer within {timeout:?}")),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(b)) => match decode::<Response>(&b) {
                Ok(Response::App(b)) => Ok(b),
                Ok(Response::Error(e)) => Err(e),
                Ok(other) => Err(format!("unexpected answer: {other:?}")),
                Err(e) => Err(format!("malformed answer: {e}")),
            },
        }
    }
}

/// A running node.
pub struct MusicNode {
    /// The service.
    pub music: Music<EmbeddedStore>,
    /// Where consensus peers connect.
    pub consensus_addr: SocketAddr,
    /// Where node RPC connects.
    pub rpc_addr: SocketAddr,
    /// Where the REST API listens, if it does.
    pub http_addr: Option<SocketAddr>,
    /// The consensus replica's loop.
    pub consensus_task: tokio::task::JoinHandle<anyhow::Result<()>>,
    app: Arc<std::sync::OnceLock<AppHandler>>,
    members: Arc<std::sync::RwLock<std::collections::HashSet<u64>>>,
    store: EmbeddedStore,
}

impl MusicNode {
    /// Starts every part; they run until `shutdown` turns true.
    pub async fn start(
        s: NodeSettings,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<MusicNode> {
        std::fs::create_dir_all(&s.data_dir)?;
        let secret: Arc<[u8]> = s.secret.clone().into();
        let mut consensus = consensus::Config::new(s.id, s.peers.iter().map(|p| p.id).collect());
        consensus.heartbeat_ticks = s.heartbeat_ticks;
        consensus.election_ticks = s.election_ticks;
        consensus.lease_ticks = s.lease_ticks;
        consensus.seed = s.id ^ u64::from(std::process::id());
        let mut cfg = NodeConfig {
            consensus,
            listen: s.consensus_listen,
            // Lock-table clients come through the service, not a port of their own.
            client_listen: ([127, 0, 0, 1], 0).into(),
            peers: s.peers.iter().map(|p| (p.id, p.consensus)).collect(),
            data_dir: s.data_dir.join("locks"),
            secret: s.secret.clone(),
            tick: s.tick,
            fsync: true,
            snapshot_every: 10_000,
        };
        // With one port, a demultiplexer routes each connection by its handshake.
        let (consensus_in, rpc_in) = if s.one_port {
            let listener = TcpListener::bind(s.consensus_listen).await?;
            let addr = listener.local_addr()?;
            let (ctx, crx) = tokio::sync::mpsc::channel(64);
            let (rtx, rrx) = tokio::sync::mpsc::channel(64);
            tokio::spawn(demux(
                listener,
                vec![(*PEER_MAGIC, ctx), (*MAGIC, rtx)],
                shutdown.clone(),
            ));
            cfg.listen = addr;
            (
                Some(Acceptor::Routed(crx)),
                Some((Acceptor::Routed(rrx), addr)),
            )
        } else {
            (None, None)
        };
        let replica =
            start_node_with(cfg, LockTable::default(), shutdown.clone(), consensus_in).await?;
        let mut store_cfg = EmbeddedConfig::new(
            s.id,
            s.peers.iter().map(|p| (p.id, p.rpc.to_string())).collect(),
            secret.clone(),
        );
        store_cfg.quorum_timeout = s.quorum_timeout;
        store_cfg.anti_entropy_every = s.anti_entropy_every;
        let store = EmbeddedStore::open(&s.data_dir.join("store.db"), store_cfg, shutdown.clone())?;
        let rpc_peers: HashMap<u64, String> =
            s.peers.iter().map(|p| (p.id, p.rpc.to_string())).collect();
        let music = Music::new(
            s.id,
            replica.handle.clone(),
            store.clone(),
            rpc_peers,
            secret.clone(),
            MusicConfig {
                lease: s.lease,
                ..MusicConfig::default()
            },
            shutdown.clone(),
        );
        let (listener, rpc_addr) = match rpc_in {
            Some(routed) => routed,
            None => {
                let l = TcpListener::bind(s.rpc_listen).await?;
                let addr = l.local_addr()?;
                (Acceptor::Listener(l), addr)
            }
        };
        let members: Arc<std::sync::RwLock<std::collections::HashSet<u64>>> = Arc::new(
            std::sync::RwLock::new(s.peers.iter().map(|p| p.id).collect()),
        );
        let app: Arc<std::sync::OnceLock<AppHandler>> = Arc::default();
        let handler = {
            let (music, store, app, members) =
                (music.clone(), store.clone(), app.clone(), members.clone());
            move |peer: u64, payload: Bytes| {
                let (music, store, app) = (music.clone(), store.clone(), app.clone());
                let member = members
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&peer);
                async move {
                    // A node this one has not taken in yet may already be in the decided
                    // membership (this node learns of joins a moment later).
                    let member = member
                        || music
                            .locks()
                            .status()
                            .await
                            .is_ok_and(|s| s.latest.contains(peer));
                    let resp = match decode::<Request>(&payload) {
                        // A node proving the secret that is not (yet) a member may only
                        // make application requests: how a new site asks to join.
                        Ok(req) if !member && !matches!(req, Request::App(_)) => {
                            Response::Error(format!("node {peer} is not a member"))
                        }
                        Ok(Request::LockRead(q)) => music.answer_lock_read(q).await,
                        Ok(Request::App(b)) => match app.get() {
                            Some(h) => match h(peer, b).await {
                                Ok(answer) => Response::App(answer),
                                Err(e) => Response::Error(e),
                            },
                            None => Response::Error("no application on this node yet".into()),
                        },
                        Ok(req) => store.handle(req).await,
                        Err(e) => Response::Error(format!("malformed request: {e}")),
                    };
                    encode(&resp)
                }
            }
        };
        tokio::spawn(consensus::rpc::serve(
            listener,
            s.id,
            secret,
            MAGIC,
            // Anyone with the secret may connect; the handler limits non-members.
            |_| true,
            handler,
            shutdown.clone(),
        ));
        let http_addr = match s.http_listen {
            Some(addr) => {
                let l = TcpListener::bind(addr).await?;
                let bound = l.local_addr()?;
                let app = crate::rest::router(music.clone(), s.http_token.clone());
                let mut stop = shutdown.clone();
                tokio::spawn(async move {
                    let served = axum::serve(l, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop.changed().await;
                        })
                        .await;
                    if let Err(e) = served {
                        tracing::error!("REST server stopped: {e}");
                    }
                });
                Some(bound)
            }
            None => None,
        };
        tracing::info!(node = s.id, consensus = %replica.peer_addr, rpc = %rpc_addr, http = ?http_addr, "MUSIC node started");
        Ok(MusicNode {
            music,
            consensus_addr: replica.peer_addr,
            rpc_addr,
            http_addr,
            consensus_task: replica.task,
            app,
            members,
            store,
        })
    }

    /// Takes in node `id` (which joined the consensus membership) at `addr`, its one
    /// port for consensus and node RPC: its calls are served, puts are pushed to it, and
    /// store quorums count it.
    pub fn add_peer(&self, id: u64, addr: String) {
        self.members
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        self.music.add_rpc_peer(id, addr.clone());
        self.store.add_peer(id, addr);
    }

    /// Lets go of node `id`, removed from the cluster: its calls other than application
    /// requests are refused (once the consensus membership no longer has it either), the
    /// store stops shipping to it and counting it in quorums.
    pub fn remove_peer(&self, id: u64) {
        self.members
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.music.remove_rpc_peer(id);
        self.store.remove_peer(id);
    }

    /// Installs the handler of application requests (once; later calls are ignored).
    /// Until then peers' application requests get an error answer.
    pub fn set_app_handler(&self, h: AppHandler) {
        let _ = self.app.set(h);
    }
}
