//! A client of a `consensus-node` cluster.
//!
//! Connections are shared: a [`Client`] and every [`Client::session`] made from it send
//! their requests over one pipelined connection per replica ([`crate::rpc::Channel`]). Many concurrent sessions then
//! cost the replicas a few large reads and writes rather than a round of system calls
//! each (as with gRPC's multiplexed channels). Each session is its own logical client
//! for exactly-once puts: it numbers its requests and retries a request with the same
//! number, across replicas, until one answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::kv::Kv;
use crate::net::CLIENT_MAGIC;
use crate::rpc::Channel;
use crate::types::NodeId;
use crate::wire::{self, ClientRequest, ClientResponse};

struct Shared {
    addrs: Mutex<HashMap<NodeId, SocketAddr>>,
    secret: Vec<u8>,
    conns: Mutex<HashMap<NodeId, Channel>>,
}

fn lost() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "connection lost")
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
        });
        Client {
            shared,
            // Id 0 is reserved (it opts out of exactly-once).
            id: crate::net::random_u64() | 1,
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
            id: crate::net::random_u64() | 1,
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
    async fn connection(&self, node: NodeId) -> std::io::Result<Channel> {
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
        let (ch, _) = Channel::connect(
            &addr.to_string(),
            &self.shared.secret,
            CLIENT_MAGIC,
            crate::net::random_u64() | 1,
        )
        .await?;
        let mut conns = self.shared.conns.lock().map_err(|_| lost())?;
        if let Some(c) = conns.get(&node).filter(|c| !c.is_closed()) {
            // Another session connected meanwhile: use that one.
            return Ok(c.clone());
        }
        conns.insert(node, ch.clone());
        Ok(ch)
    }

    async fn attempt(&self, request: &Bytes) -> std::io::Result<ClientResponse> {
        let answer = self
            .connection(self.current)
            .await?
            .call(request.clone())
            .await?;
        wire::decode_response(answer)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
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

    /// Proposes a command to the cluster's state machine and returns its result; applied
    /// exactly once however often it is retried.
    pub async fn propose(&mut self, command: &[u8]) -> anyhow::Result<Bytes> {
        self.seq += 1;
        self.request(ClientRequest::Propose {
            client: self.id,
            seq: self.seq,
            command: Bytes::copy_from_slice(command),
        })
        .await
    }

    /// Reads from the cluster's state machine, linearizably.
    pub async fn read(&mut self, query: &[u8]) -> anyhow::Result<Bytes> {
        self.request(ClientRequest::Read {
            query: Bytes::copy_from_slice(query),
        })
        .await
    }

    /// Puts `value` at `key` in a [`Kv`] cluster (`consensus-node`); applied exactly once.
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        anyhow::ensure!(key.len() <= u16::MAX as usize, "key too long");
        self.propose(&Kv::put(key, value)).await.map(|_| ())
    }

    /// Reads `key` linearizably from a [`Kv`] cluster (empty if absent).
    pub async fn get(&mut self, key: &[u8]) -> anyhow::Result<Bytes> {
        self.read(&Kv::get(key)).await
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
