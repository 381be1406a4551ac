//! A client of a `consensus-node` cluster.
//!
//! Connections are shared: a [`Client`] and every [`Client::session`] made from it send
//! their requests, tagged, over one pipelined connection per replica, and a task per
//! connection matches the answers to the waiting requests. Many concurrent sessions then
//! cost the replicas a few large reads and writes rather than a round of system calls
//! each (as with gRPC's multiplexed channels). Each session is its own logical client
//! for exactly-once puts: it numbers its requests and retries a request with the same
//! number, across replicas, until one answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::net::{handshake_initiator, read_frame, CLIENT_MAGIC};
use crate::types::NodeId;
use crate::wire::{self, ClientRequest, ClientResponse};

struct Outgoing {
    tag: u64,
    request: Bytes,
    reply: oneshot::Sender<ClientResponse>,
}

struct Shared {
    addrs: Mutex<HashMap<NodeId, SocketAddr>>,
    secret: Vec<u8>,
    conns: Mutex<HashMap<NodeId, mpsc::UnboundedSender<Outgoing>>>,
    next_tag: AtomicU64,
}

fn random_u64() -> u64 {
    let mut n = [0u8; 8];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n).is_ok() {
        return u64::from_be_bytes(n);
    }
    // No OS generator: the clock still keeps concurrent clients apart in practice.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

fn lost() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "connection lost")
}

/// Owns one connection: writes queued requests (all that are waiting, in one write) and
/// hands each answer to the request with its tag. Ends, failing whatever waits, when the
/// connection breaks or every sender is gone.
async fn run_connection(s: TcpStream, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    let (mut rd, mut wr) = s.into_split();
    let mut rbuf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut payload = BytesMut::new();
    let mut pending: HashMap<u64, oneshot::Sender<ClientResponse>> = HashMap::new();
    loop {
        tokio::select! {
            next = rx.recv() => {
                let Some(first) = next else { return };
                out.clear();
                let mut next = Some(first);
                while let Some(o) = next {
                    payload.clear();
                    payload.put_u64(o.tag);
                    payload.put_slice(&o.request);
                    wire::put_frame(&mut out, &payload);
                    pending.insert(o.tag, o.reply);
                    next = if out.len() < 1 << 20 { rx.try_recv().ok() } else { None };
                }
                if pending.len() > 4096 {
                    // Requests whose caller gave up waiting.
                    pending.retain(|_, r| !r.is_closed());
                }
                if wr.write_all(&out).await.is_err() {
                    return;
                }
            }
            frame = read_frame(&mut rd, &mut rbuf) => {
                let Ok(Some(mut p)) = frame else { return };
                if p.len() < 8 {
                    return;
                }
                let tag = p.get_u64();
                let resp = wire::decode_response(p)
                    .unwrap_or_else(|e| ClientResponse::Error(format!("malformed answer: {e}")));
                if let Some(r) = pending.remove(&tag) {
                    let _ = r.send(resp);
                }
            }
        }
    }
}

/// A client session of a `consensus-node` cluster (see the module docs).
pub struct Client {
    shared: Arc<Shared>,
    id: u64,
    seq: u64,
    current: NodeId,
    /// How long one attempt may take.
    pub attempt_timeout: Duration,
    /// How long a request may take in all.
    pub deadline: Duration,
}

impl Client {
    /// A client knowing each replica's client address, with a fresh random id.
    pub fn new(addrs: HashMap<NodeId, SocketAddr>, secret: &[u8]) -> Client {
        let current = addrs.keys().copied().min().unwrap_or(1);
        let shared = Arc::new(Shared {
            addrs: Mutex::new(addrs),
            secret: secret.to_vec(),
            conns: Mutex::new(HashMap::new()),
            next_tag: AtomicU64::new(1),
        });
        Client {
            shared,
            // Id 0 is reserved (it opts out of exactly-once).
            id: random_u64() | 1,
            seq: 0,
            current,
            attempt_timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(30),
        }
    }

    /// Another logical client (its own id and request numbers) sharing this one's
    /// connections.
    pub fn session(&self) -> Client {
        Client {
            shared: self.shared.clone(),
            id: random_u64() | 1,
            seq: 0,
            current: self.current,
            attempt_timeout: self.attempt_timeout,
            deadline: self.deadline,
        }
    }

    /// Tells the client (and its sessions) where replica `id` serves clients.
    pub fn add_node(&mut self, id: NodeId, client_addr: SocketAddr) {
        if let Ok(mut a) = self.shared.addrs.lock() {
            a.insert(id, client_addr);
        }
    }

    fn nodes(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .shared
            .addrs
            .lock()
            .map(|a| a.keys().copied().collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// The connection to `node`, opened (and authenticated) if there is none.
    async fn connection(&self, node: NodeId) -> std::io::Result<mpsc::UnboundedSender<Outgoing>> {
        if let Some(c) = self.shared.conns.lock().map_err(|_| lost())?.get(&node) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let addr = self
            .shared
            .addrs
            .lock()
            .map_err(|_| lost())?
            .get(&node)
            .copied()
            .ok_or_else(|| std::io::Error::other(format!("no address for node {node}")))?;
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let mut buf = BytesMut::new();
        handshake_initiator(
            &mut s,
            &mut buf,
            &self.shared.secret,
            CLIENT_MAGIC,
            random_u64() | 1,
        )
        .await?;
        let mut conns = self.shared.conns.lock().map_err(|_| lost())?;
        if let Some(c) = conns.get(&node).filter(|c| !c.is_closed()) {
            // Another session connected meanwhile: use that one.
            return Ok(c.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_connection(s, rx));
        conns.insert(node, tx.clone());
        Ok(tx)
    }

    async fn attempt(&self, request: &Bytes) -> std::io::Result<ClientResponse> {
        let conn = self.connection(self.current).await?;
        let (tx, rx) = oneshot::channel();
        let tag = self.shared.next_tag.fetch_add(1, Ordering::Relaxed);
        conn.send(Outgoing {
            tag,
            request: request.clone(),
            reply: tx,
        })
        .map_err(|_| lost())?;
        rx.await.map_err(|_| lost())
    }

    async fn request(&mut self, req: ClientRequest) -> anyhow::Result<Bytes> {
        let mut encoded = BytesMut::new();
        wire::encode_request(&req, &mut encoded);
        let encoded = encoded.freeze();
        let start = tokio::time::Instant::now();
        let nodes = self.nodes();
        anyhow::ensure!(!nodes.is_empty(), "no replica addresses");
        let mut turn = 0usize;
        while start.elapsed() < self.deadline {
            let r = tokio::time::timeout(self.attempt_timeout, self.attempt(&encoded)).await;
            match r {
                Ok(Ok(ClientResponse::Ok(v))) => return Ok(v),
                Ok(Ok(ClientResponse::Error(e))) => anyhow::bail!("refused: {e}"),
                Ok(Ok(ClientResponse::Redirect { leader }))
                    if leader != 0 && leader != self.current && nodes.contains(&leader) =>
                {
                    self.current = leader;
                    continue;
                }
                _ => {
                    // Timeout, lost connection or no leader known: try the next replica.
                    turn += 1;
                    self.current = nodes[turn % nodes.len()];
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        anyhow::bail!("no replica answered within {:?}", self.deadline)
    }

    /// Puts `value` at `key`; applied exactly once however often it is retried.
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        self.seq += 1;
        let req = ClientRequest::Put {
            client: self.id,
            seq: self.seq,
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
        };
        self.request(req).await.map(|_| ())
    }

    /// Reads `key` linearizably (empty if absent).
    pub async fn get(&mut self, key: &[u8]) -> anyhow::Result<Bytes> {
        self.request(ClientRequest::Get {
            key: Bytes::copy_from_slice(key),
        })
        .await
    }

    /// Adds replica `id`, which its peers reach at `peer_addr`; returns once the change
    /// is decided. Start the replica first (with `--join`) so that it can catch up.
    pub async fn add_member(&mut self, id: NodeId, peer_addr: &str) -> anyhow::Result<()> {
        self.request(ClientRequest::AddMember {
            id,
            addr: peer_addr.to_string(),
        })
        .await
        .map(|_| ())
    }

    /// Removes replica `id`; returns once the change is decided.
    pub async fn remove_member(&mut self, id: NodeId) -> anyhow::Result<()> {
        self.request(ClientRequest::RemoveMember { id })
            .await
            .map(|_| ())
    }

    /// The view of the replica this client talks to (see [`ClientRequest::Status`]).
    pub async fn status(&mut self) -> anyhow::Result<String> {
        let b = self.request(ClientRequest::Status).await?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }
}
