//! The TCP driver: runs a [`Replica`] of the [`Kv`] state machine on tokio, with its log in
//! a [`FileStorage`], talking to its peers over authenticated TCP and serving clients.
//!
//! - **Frames** are `[len][crc32][payload]` ([`crate::wire`]); a damaged frame is dropped
//!   (Paxos tolerates loss), an impossible length closes the connection.
//! - **Authentication**: both ends of every connection prove they hold the cluster secret
//!   (HMAC-SHA256 over both sides' fresh nonces and ids); a peer that cannot, or that
//!   claims an id outside the configuration, is refused and logged.
//! - **Connections**: each replica dials each peer and keeps that connection up, retrying
//!   with exponential back-off and jitter; messages for a peer that is down are dropped
//!   (a bounded queue), as the protocol expects of a network.
//! - **Group commit**: the event loop takes every message already waiting before it drains
//!   the core, so one fsync covers everything that arrived meanwhile.
//! - **Membership**: the replicas a node talks to are those its log names (a membership
//!   entry records each member's peer address) plus the peers on its command line; when
//!   a change adds a replica the node dials it, and only replicas named there may connect.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use ring::hmac;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

pub use crate::client::Client;
use crate::kv::Kv;
use crate::paxos::{MembershipChange, Role};
use crate::replica::{Outcome, Replica};
use crate::storage::{FileStorage, Storage};
use crate::types::{Entry, Message, NodeId, Slot};
use crate::wire::{self, ClientRequest, ClientResponse, Frame};
use crate::Config;

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Protocol settings (id, peers, timeouts in ticks).
    pub consensus: Config,
    /// Address for peers.
    pub listen: SocketAddr,
    /// Address for clients.
    pub client_listen: SocketAddr,
    /// Where each peer listens.
    pub peers: HashMap<NodeId, SocketAddr>,
    /// The replica's log directory.
    pub data_dir: PathBuf,
    /// Shared by every member; nobody without it joins or writes.
    pub secret: Vec<u8>,
    /// Length of a tick.
    pub tick: Duration,
    /// Fsync the log (off only for benchmarks that say so).
    pub fsync: bool,
    /// Compact the log into a snapshot every this many entries (0: never).
    pub snapshot_every: u64,
}

const PEER_MAGIC: &[u8; 12] = b"MDBC-PAXOS/1";
/// Clients speak a pipelined protocol: every frame starts with the client's tag.
pub(crate) const CLIENT_MAGIC: &[u8; 12] = b"MDBC-CLIENT2";
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Parses `ID=HOST:PORT` (a replica and one of its addresses), as the command lines take
/// them.
pub fn parse_node_addr(s: &str) -> Result<(NodeId, SocketAddr), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=HOST:PORT, got {s:?}"))?;
    let id: NodeId = id.parse().map_err(|_| format!("bad node id {id:?}"))?;
    if id == 0 {
        return Err("node id 0 is reserved".into());
    }
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?;
    Ok((id, addr))
}

/// The cluster secret, from `file` or else the `MDBC_CLUSTER_SECRET` environment
/// variable, without surrounding whitespace; at least 16 bytes.
pub fn read_secret(file: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    let secret = match file {
        Some(f) => std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        None => std::env::var("MDBC_CLUSTER_SECRET")
            .context("set MDBC_CLUSTER_SECRET or --secret-file: nodes authenticate each other")?
            .into_bytes(),
    };
    let secret = secret.trim_ascii().to_vec();
    if secret.len() < 16 {
        anyhow::bail!("the cluster secret must be at least 16 bytes");
    }
    Ok(secret)
}

// ---- framing over a socket ----

pub(crate) async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    s: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<Option<Bytes>> {
    loop {
        match wire::take_frame(buf) {
            Ok(Frame::Good(b)) => return Ok(Some(b)),
            Ok(Frame::Damaged) => {
                tracing::warn!("dropped a frame with a bad checksum");
                continue;
            }
            Ok(Frame::Incomplete) => {}
            Err(e) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
        }
        if s.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

async fn write_frame(s: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(payload.len() + 8);
    wire::put_frame(&mut out, payload);
    s.write_all(&out).await
}

// ---- authentication ----

/// What each side signs: its role, both nonces and both ids, so a proof cannot be replayed
/// on another connection or reflected back with the roles swapped.
fn mac_input(role: &[u8], a: &[u8], b: &[u8], x: u64, y: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(4 + a.len() + b.len() + 16);
    m.extend_from_slice(role);
    m.extend_from_slice(a);
    m.extend_from_slice(b);
    m.extend_from_slice(&x.to_be_bytes());
    m.extend_from_slice(&y.to_be_bytes());
    m
}

fn nonce() -> std::io::Result<[u8; 16]> {
    let mut n = [0u8; 16];
    // From the OS generator; without one there is no handshake.
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n)
        .map_err(|_| std::io::Error::other("no randomness for a handshake nonce"))?;
    Ok(n)
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, msg.into())
}

/// Proves the secret to the other end and checks its proof; returns the other end's id.
pub async fn handshake_initiator(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    secret: &[u8],
    magic: &[u8; 12],
    my_id: u64,
) -> std::io::Result<u64> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let ni = nonce()?;
    let mut hello = Vec::with_capacity(36);
    hello.extend_from_slice(magic);
    hello.extend_from_slice(&my_id.to_be_bytes());
    hello.extend_from_slice(&ni);
    write_frame(s, &hello).await?;
    let ch = read_frame(s, buf)
        .await?
        .ok_or_else(|| bad("closed during handshake"))?;
    if ch.len() != 8 + 16 + 32 {
        return Err(bad("malformed challenge"));
    }
    let their_id = u64::from_be_bytes(ch[0..8].try_into().map_err(|_| bad("id"))?);
    let nr = &ch[8..24];
    let expected = mac_input(b"resp", &ni, nr, their_id, my_id);
    hmac::verify(&key, &expected, &ch[24..56])
        .map_err(|_| bad("the other end does not hold the cluster secret"))?;
    let proof = hmac::sign(&key, &mac_input(b"init", &ni, nr, my_id, their_id));
    write_frame(s, proof.as_ref()).await?;
    Ok(their_id)
}

/// Checks the other end's proof of the secret (and proves it back); returns its id.
pub async fn handshake_responder(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    secret: &[u8],
    magic: &[u8; 12],
    my_id: u64,
) -> std::io::Result<u64> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let hello = read_frame(s, buf)
        .await?
        .ok_or_else(|| bad("closed during handshake"))?;
    if hello.len() != 12 + 8 + 16 || &hello[..12] != magic {
        return Err(bad("not a handshake of this protocol"));
    }
    let their_id = u64::from_be_bytes(hello[12..20].try_into().map_err(|_| bad("id"))?);
    let ni = &hello[20..36];
    let nr = nonce()?;
    let tag = hmac::sign(&key, &mac_input(b"resp", ni, &nr, my_id, their_id));
    let mut ch = Vec::with_capacity(56);
    ch.extend_from_slice(&my_id.to_be_bytes());
    ch.extend_from_slice(&nr);
    ch.extend_from_slice(tag.as_ref());
    write_frame(s, &ch).await?;
    let proof = read_frame(s, buf)
        .await?
        .ok_or_else(|| bad("closed during handshake"))?;
    let expected = mac_input(b"init", ni, &nr, their_id, my_id);
    hmac::verify(&key, &expected, &proof).map_err(|_| bad("wrong cluster secret"))?;
    Ok(their_id)
}

// ---- the node ----

enum Input {
    Peer(NodeId, Message),
    Client(ClientRequest, Reply),
    // A snapshot encoded off the loop, and its file written.
    SnapshotEncoded(Slot, Bytes),
    SnapshotWritten(Result<Slot, crate::StorageError>),
}

/// Where the answer to one client request goes: its connection's writer, with the tag
/// the client gave the request.
struct Reply {
    tag: u64,
    tx: mpsc::UnboundedSender<(u64, ClientResponse)>,
}

impl Reply {
    fn send(self, resp: ClientResponse) {
        // The client may have gone; its answer goes nowhere.
        let _ = self.tx.send((self.tag, resp));
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Runs a node until `shutdown` turns true. Binds its listeners first and returns their
/// addresses through `bound` (useful with port 0).
pub async fn run_node(
    cfg: NodeConfig,
    mut shutdown: watch::Receiver<bool>,
    bound: Option<oneshot::Sender<(SocketAddr, SocketAddr)>>,
) -> anyhow::Result<()> {
    cfg.consensus.validate()?;
    let storage = FileStorage::open(&cfg.data_dir, 64 << 20)?;
    let hard = storage.state().clone();
    tracing::info!(
        node = cfg.consensus.id,
        log = hard.log.len(),
        decided = hard.decided,
        "recovered"
    );
    let replica = Replica::restore(cfg.consensus.clone(), hard, Kv::default())?
        .with_snapshot_every(cfg.snapshot_every);
    let peer_listener = TcpListener::bind(cfg.listen).await?;
    let client_listener = TcpListener::bind(cfg.client_listen).await?;
    if let Some(b) = bound {
        let _ = b.send((peer_listener.local_addr()?, client_listener.local_addr()?));
    }
    let (in_tx, mut in_rx) = mpsc::channel::<Input>(65_536);
    let secret: Arc<[u8]> = cfg.secret.clone().into();
    let id = cfg.consensus.id;
    // Replicas allowed to connect; kept in step with the membership by the node loop.
    let allowed: Arc<RwLock<HashSet<NodeId>>> =
        Arc::new(RwLock::new(cfg.peers.keys().copied().collect()));
    // Inbound peers.
    {
        let secret = secret.clone();
        let tx = in_tx.clone();
        let allowed = allowed.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, addr)) = peer_listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                tokio::spawn(serve_peer(
                    sock,
                    addr,
                    id,
                    allowed.clone(),
                    secret.clone(),
                    tx.clone(),
                ));
            }
        });
    }
    // Clients.
    {
        let secret = secret.clone();
        let tx = in_tx.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, addr)) = client_listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                tokio::spawn(serve_client(sock, addr, id, secret.clone(), tx.clone()));
            }
        });
    }

    let mut node = NodeLoop {
        replica,
        storage,
        fsync: cfg.fsync,
        outboxes: HashMap::new(),
        puts: HashMap::new(),
        reads: HashMap::new(),
        next_read: 1,
        changes: Vec::new(),
        me: id,
        secret,
        configured: cfg.peers.iter().map(|(p, a)| (*p, a.to_string())).collect(),
        allowed,
        seen: None,
        member: false,
        inputs: in_tx.clone(),
        failed: None,
    };
    node.refresh_peers();
    // The replica's clock counts ticks of real time: every tick that elapsed is fed in
    // before any input is handled, so its clock never falls behind (a leader whose clock
    // lagged would believe in its lease for too long). Between events the loop sleeps
    // as long as the replica says nothing is due, rather than waking every tick.
    let tick = cfg.tick;
    let mut next_tick = tokio::time::Instant::now() + tick;
    let mut ticks = 0u64;
    loop {
        let idle = node.replica.core().idle_ticks().max(1);
        let wake = next_tick + tick * u32::try_from(idle - 1).unwrap_or(u32::MAX);
        let mut inputs = Vec::new();
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            input = in_rx.recv() => {
                let Some(input) = input else { break };
                inputs.push(input);
                // Group commit: take what else is already waiting before draining.
                while inputs.len() < 4096 {
                    match in_rx.try_recv() {
                        Ok(i) => inputs.push(i),
                        Err(_) => break,
                    }
                }
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
        let now = tokio::time::Instant::now();
        while now >= next_tick {
            node.replica.tick();
            next_tick += tick;
            ticks += 1;
            if ticks.is_multiple_of(1024) {
                // Requests whose client gave up (it retries with the same id).
                node.puts.retain(|_, w| {
                    w.retain(|r| !r.is_closed());
                    !w.is_empty()
                });
                node.reads.retain(|_, r| !r.is_closed());
            }
        }
        for i in inputs {
            node.input(i);
        }
        node.drain()?;
    }
    tracing::info!(node = id, "stopped");
    Ok(())
}

/// What the membership looked like when the peers were last refreshed: the last
/// membership entry's slot, the log's start, and whether that entry is decided.
type MembershipMark = (Option<Slot>, Slot, bool);

struct NodeLoop {
    replica: Replica<Kv>,
    storage: FileStorage,
    fsync: bool,
    outboxes: HashMap<NodeId, mpsc::Sender<Bytes>>,
    puts: HashMap<(u64, u64), Vec<Reply>>,
    reads: HashMap<u64, Reply>,
    next_read: u64,
    // Membership changes proposed here: answered when their slot is decided.
    changes: Vec<(Slot, Entry, Reply)>,
    me: NodeId,
    secret: Arc<[u8]>,
    // Peer addresses from the command line.
    configured: HashMap<NodeId, String>,
    allowed: Arc<RwLock<HashSet<NodeId>>>,
    seen: Option<MembershipMark>,
    member: bool,
    // For snapshot jobs to report back.
    inputs: mpsc::Sender<Input>,
    // A storage failure outside the drain: the node must stop.
    failed: Option<String>,
}

impl NodeLoop {
    /// Dials every replica the log names that has no connection yet, and lets exactly
    /// those (and the configured peers) connect. Cheap when nothing changed.
    fn refresh_peers(&mut self) {
        let core = self.replica.core();
        let last = core.log().last_config_slot();
        let mark = (
            last,
            core.log().offset(),
            last.is_some_and(|c| c < core.decided()),
        );
        if self.seen == Some(mark) {
            return;
        }
        self.seen = Some(mark);
        let member = core.members().contains(self.me);
        if self.member && !member {
            tracing::warn!(
                node = self.me,
                members = %core.members(),
                "this replica was removed from the cluster; it answers clients with redirects"
            );
        } else if !self.member && member {
            tracing::info!(node = self.me, members = %core.members(), "a member of the cluster");
        }
        self.member = member;
        let mut known: HashSet<NodeId> = core.known_replicas().into_iter().collect();
        known.extend(self.configured.keys().copied());
        known.remove(&self.me);
        for &peer in &known {
            if self.outboxes.contains_key(&peer) {
                continue;
            }
            let named = core
                .latest_members()
                .addr(peer)
                .or_else(|| core.members().addr(peer))
                .filter(|a| !a.is_empty())
                .map(str::to_string);
            let Some(addr) = named.or_else(|| self.configured.get(&peer).cloned()) else {
                tracing::warn!(node = self.me, peer, "no address known for member {peer}");
                continue;
            };
            tracing::info!(node = self.me, peer, %addr, "connecting to a new peer");
            let (tx, rx) = mpsc::channel::<Bytes>(16_384);
            self.outboxes.insert(peer, tx);
            tokio::spawn(dial_peer(self.me, peer, addr, self.secret.clone(), rx));
        }
        if let Ok(mut a) = self.allowed.write() {
            *a = known;
        }
    }

    fn status(&self) -> String {
        let core = self.replica.core();
        let role = match core.role() {
            Role::Leader => "leader",
            Role::Candidate => "candidate",
            Role::Follower => "follower",
        };
        let ids =
            |m: &crate::Membership| m.ids().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        format!(
            "id={} role={role} leader={} decided={} members={} latest={}",
            self.me,
            self.leader_hint(),
            core.decided(),
            ids(core.members()),
            ids(core.latest_members())
        )
    }

    /// Proposes a membership change. A change the log already holds is not made twice:
    /// a client retrying is answered when that one is decided (at once, if it is).
    fn change_membership(&mut self, change: MembershipChange, reply: Reply) {
        use crate::paxos::MembershipError;
        let core = self.replica.core();
        if core.role() == Role::Leader {
            let (latest, decided) = (core.latest_members(), core.members());
            let done_in = |m: &crate::Membership| match &change {
                MembershipChange::Add { id, addr } => m.addr(*id) == Some(addr.as_str()),
                MembershipChange::Remove(id) => !m.contains(*id),
            };
            if done_in(decided) && done_in(latest) {
                reply.send(ClientResponse::Ok(Bytes::new()));
                return;
            }
            if done_in(latest) {
                let pending = core.log().last_config_slot().and_then(|slot| {
                    let e = core.log().get(slot)?.clone();
                    Some((slot, e))
                });
                if let Some((slot, e)) = pending {
                    self.changes.push((slot, e, reply));
                    return;
                }
            }
        }
        match self.replica.propose_membership(change) {
            Ok(slot) => {
                if let Some(e) = self.replica.core().log().get(slot).cloned() {
                    self.changes.push((slot, e, reply));
                }
            }
            Err(MembershipError::NotLeader) => {
                reply.send(ClientResponse::Redirect {
                    leader: self.leader_hint(),
                });
            }
            Err(e) => {
                reply.send(ClientResponse::Error(e.to_string()));
            }
        }
    }

    /// Answers membership changes whose slot is now decided: done if the slot holds the
    /// change, refused if leadership changed and another entry took the slot.
    fn answer_changes(&mut self, from: Slot, decided: &[Entry]) {
        let end = from + decided.len() as Slot;
        let mut i = 0;
        while i < self.changes.len() {
            let slot = self.changes[i].0;
            if slot >= end {
                i += 1;
                continue;
            }
            let (slot, entry, reply) = self.changes.swap_remove(i);
            let got = slot.checked_sub(from).and_then(|k| decided.get(k as usize));
            let resp = if got == Some(&entry) {
                ClientResponse::Ok(Bytes::new())
            } else {
                ClientResponse::Error(
                    "leadership changed before the membership change was decided; retry".into(),
                )
            };
            reply.send(resp);
        }
    }

    fn leader_hint(&self) -> u64 {
        self.replica.core().leader().map(|b| b.node).unwrap_or(0)
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Peer(from, msg) => self.replica.step(from, msg),
            Input::SnapshotEncoded(upto, data) => self.replica.snapshot_done(upto, data),
            Input::SnapshotWritten(Ok(upto)) => {
                if let Err(e) = self.storage.snapshot_written(upto) {
                    // The checkpoint failed part-way: the log is as it was before it,
                    // but the error rule of storage.rs applies.
                    tracing::error!(node = self.me, "checkpoint failed: {e}");
                    self.failed = Some(e.to_string());
                }
            }
            Input::SnapshotWritten(Err(e)) => {
                // Only the compaction is lost; the log still holds every entry.
                tracing::warn!(node = self.me, "writing a snapshot failed: {e}");
            }
            Input::Client(req, reply) => match req {
                ClientRequest::Put {
                    client,
                    seq,
                    key,
                    value,
                } => {
                    if client == 0 {
                        reply.send(ClientResponse::Error("client id 0 is reserved".into()));
                        return;
                    }
                    if key.len() > u16::MAX as usize {
                        reply.send(ClientResponse::Error("key too long".into()));
                        return;
                    }
                    match self.replica.propose((client, seq), &Kv::put(&key, &value)) {
                        Ok(()) => self.puts.entry((client, seq)).or_default().push(reply),
                        Err(_) => {
                            reply.send(ClientResponse::Redirect {
                                leader: self.leader_hint(),
                            });
                        }
                    }
                }
                ClientRequest::Get { key } => {
                    let id = self.next_read;
                    self.next_read += 1;
                    self.reads.insert(id, reply);
                    self.replica.read(id, &Kv::get(&key));
                }
                ClientRequest::AddMember { id, addr } => {
                    if id == 0 {
                        reply.send(ClientResponse::Error("node id 0 is reserved".into()));
                        return;
                    }
                    self.change_membership(MembershipChange::Add { id, addr }, reply);
                }
                ClientRequest::RemoveMember { id } => {
                    self.change_membership(MembershipChange::Remove(id), reply);
                }
                ClientRequest::Status => {
                    reply.send(ClientResponse::Ok(Bytes::from(self.status())));
                }
            },
        }
    }

    fn send(&self, to: NodeId, msg: &Message) {
        if let Some(tx) = self.outboxes.get(&to) {
            let mut out = BytesMut::new();
            wire::encode_message(msg, &mut out);
            // A full queue means the peer is away: drop, as a network would.
            let _ = tx.try_send(out.freeze());
        }
    }

    fn drain(&mut self) -> anyhow::Result<()> {
        if let Some(e) = self.failed.take() {
            anyhow::bail!("storage failed: {e}");
        }
        loop {
            let mut ready = self.replica.take_ready();
            if let Some(e) = ready.fatal {
                anyhow::bail!("replica stopped: {e}");
            }
            if let Some(job) = ready.snapshot_job.take() {
                // Encoding the state may take a while: off the loop.
                let tx = self.inputs.clone();
                tokio::task::spawn_blocking(move || {
                    let (upto, data) = job.run();
                    let _ = tx.blocking_send(Input::SnapshotEncoded(upto, data));
                });
            }
            if ready.installed_snapshot {
                tracing::info!(
                    node = self.me,
                    applied = ready.applied,
                    "caught up from a peer's snapshot"
                );
            }
            let idle = ready.send.is_empty()
                && ready.persist.is_none()
                && ready.after_persist.is_empty()
                && ready.outcomes.is_empty();
            for (to, m) in &ready.send {
                self.send(*to, m);
            }
            if let Some(p) = &ready.persist {
                // The error rule of storage.rs: a failed write stops the replica.
                self.storage.append(std::slice::from_ref(p))?;
                if let Some(w) = self.storage.take_snapshot_write() {
                    let tx = self.inputs.clone();
                    tokio::task::spawn_blocking(move || {
                        let (upto, started) = (w.upto(), std::time::Instant::now());
                        let r = w.run();
                        tracing::debug!(
                            upto,
                            ms = started.elapsed().as_millis() as u64,
                            "snapshot file written"
                        );
                        let _ = tx.blocking_send(Input::SnapshotWritten(r));
                    });
                }
                if self.fsync {
                    self.storage.sync()?;
                }
                self.replica.on_persisted(p.id);
            }
            for (to, m) in &ready.after_persist {
                self.send(*to, m);
            }
            if !self.changes.is_empty() {
                self.answer_changes(ready.decided_from, &ready.decided);
            }
            self.refresh_peers();
            for o in ready.outcomes {
                match o {
                    Outcome::Applied(id, _) => {
                        for reply in self.puts.remove(&id).unwrap_or_default() {
                            reply.send(ClientResponse::Ok(Bytes::new()));
                        }
                    }
                    Outcome::Read(id, v) => {
                        if let Some(reply) = self.reads.remove(&id) {
                            reply.send(ClientResponse::Ok(v));
                        }
                    }
                    Outcome::ReadRefused(id) => {
                        if let Some(reply) = self.reads.remove(&id) {
                            reply.send(ClientResponse::Redirect {
                                leader: self.leader_hint(),
                            });
                        }
                    }
                }
            }
            if idle {
                return Ok(());
            }
        }
    }
}

async fn dial_peer(
    me: NodeId,
    peer: NodeId,
    addr: String,
    secret: Arc<[u8]>,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let attempt = async {
            let mut s = TcpStream::connect(addr.as_str()).await?;
            s.set_nodelay(true)?;
            let mut buf = BytesMut::new();
            let their = tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                handshake_initiator(&mut s, &mut buf, &secret, PEER_MAGIC, me),
            )
            .await
            .map_err(|_| bad("handshake timed out"))??;
            if their != peer {
                return Err(bad(format!("{addr} is node {their}, expected {peer}")));
            }
            Ok::<TcpStream, std::io::Error>(s)
        };
        match attempt.await {
            Ok(mut s) => {
                tracing::debug!(node = me, peer, "connected");
                backoff = Duration::from_millis(10);
                // Drop what queued while disconnected: it is stale, and Paxos resends.
                while rx.try_recv().is_ok() {}
                let mut out = BytesMut::new();
                loop {
                    let Some(first) = rx.recv().await else { return };
                    out.clear();
                    wire::put_frame(&mut out, &first);
                    while let Ok(more) = rx.try_recv() {
                        wire::put_frame(&mut out, &more);
                        if out.len() > 1 << 20 {
                            break;
                        }
                    }
                    if let Err(e) = s.write_all(&out).await {
                        tracing::debug!(node = me, peer, "connection lost: {e}");
                        break;
                    }
                }
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    tracing::warn!(node = me, peer, %addr, "peer refused: {e}");
                }
                let jitter =
                    Duration::from_micros(u64::from(nonce().map(|n| n[0]).unwrap_or(0)) * 40);
                tokio::time::sleep(backoff + jitter).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn serve_peer(
    mut s: TcpStream,
    addr: SocketAddr,
    me: NodeId,
    allowed: Arc<RwLock<HashSet<NodeId>>>,
    secret: Arc<[u8]>,
    tx: mpsc::Sender<Input>,
) {
    let mut buf = BytesMut::new();
    let who = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake_responder(&mut s, &mut buf, &secret, PEER_MAGIC, me),
    )
    .await
    .map_err(|_| bad("handshake timed out"))
    .and_then(|r| r);
    let known = |p: NodeId| allowed.read().map(|a| a.contains(&p)).unwrap_or(false);
    let peer = match who {
        Ok(p) if known(p) => p,
        Ok(p) => {
            tracing::warn!(node = me, %addr, "refused peer claiming id {p}: not a member");
            return;
        }
        Err(e) => {
            tracing::warn!(node = me, %addr, "refused unauthenticated peer: {e}");
            return;
        }
    };
    loop {
        match read_frame(&mut s, &mut buf).await {
            Ok(Some(payload)) => match wire::decode_message(payload) {
                Ok(m) => {
                    if tx.send(Input::Peer(peer, m)).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(node = me, peer, "dropped a malformed message: {e}"),
            },
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(node = me, peer, "closing connection: {e}");
                return;
            }
        }
    }
}

async fn serve_client(
    mut s: TcpStream,
    addr: SocketAddr,
    me: NodeId,
    secret: Arc<[u8]>,
    tx: mpsc::Sender<Input>,
) {
    let mut buf = BytesMut::new();
    let auth = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake_responder(&mut s, &mut buf, &secret, CLIENT_MAGIC, me),
    )
    .await;
    if !matches!(auth, Ok(Ok(_))) {
        tracing::warn!(node = me, %addr, "refused unauthenticated client");
        return;
    }
    // Requests are pipelined and answered as they complete (each tagged by the client),
    // answers that are ready together leaving in one write.
    let (mut rd, mut wr) = s.into_split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<(u64, ClientResponse)>();
    let writer = tokio::spawn(async move {
        let mut out = BytesMut::new();
        let mut payload = BytesMut::new();
        while let Some(first) = out_rx.recv().await {
            out.clear();
            let mut next = Some(first);
            while let Some((tag, resp)) = next {
                payload.clear();
                payload.put_u64(tag);
                wire::encode_response(&resp, &mut payload);
                wire::put_frame(&mut out, &payload);
                next = if out.len() < 1 << 20 {
                    out_rx.try_recv().ok()
                } else {
                    None
                };
            }
            if wr.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    loop {
        let mut payload = match read_frame(&mut rd, &mut buf).await {
            Ok(Some(p)) if p.len() >= 8 => p,
            Ok(Some(_)) => {
                tracing::warn!(node = me, %addr, "client frame without a tag; closing");
                break;
            }
            _ => break,
        };
        let tag = payload.get_u64();
        let reply = Reply {
            tag,
            tx: out_tx.clone(),
        };
        match wire::decode_request(payload) {
            Ok(req) => {
                if tx.send(Input::Client(req, reply)).await.is_err() {
                    break;
                }
            }
            Err(e) => reply.send(ClientResponse::Error(format!("malformed request: {e}"))),
        }
    }
    writer.abort();
}
