//! A replica on tokio: the [`Replica`] of any [`StateMachine`], its log in a
//! [`FileStorage`], its peers over authenticated TCP ([`crate::net`]), clients on a port of
//! their own, and a [`NodeHandle`] for requests from the same process.
//!
//! - **Group commit**: the loop takes every message already waiting before it drains the
//!   core, so one fsync covers everything that arrived meanwhile.
//! - **Time**: the replica's clock counts ticks of real time, every elapsed tick fed in
//!   before any input; between events the loop sleeps as long as nothing is due.
//! - **Membership**: the replicas a node talks to are those its log names (a membership
//!   entry records each member's peer address) plus its configured peers; when a change
//!   adds a replica the node dials it, and only replicas named there may connect.
//! - **Snapshots** are encoded and written off the loop (see [`crate::storage`]).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::net::{TcpListener, TcpStream};

use crate::acceptor::Acceptor;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::kv::Kv;
use crate::net::{
    bad, dial_peer, handshake_responder, read_frame, CLIENT_MAGIC, HANDSHAKE_TIMEOUT, PEER_MAGIC,
};
use crate::paxos::{MembershipChange, Role};
use crate::replica::{Outcome, Replica, RequestId, StateMachine};
use crate::storage::{FileStorage, Storage};
use crate::types::{Entry, Membership, Message, NodeId, Slot};
use crate::wire::{self, ClientRequest, ClientResponse};
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

enum Input {
    Peer(NodeId, Message),
    Client(ClientRequest, Reply),
    Status(oneshot::Sender<NodeStatus>),
    // A snapshot encoded off the loop, and its file written.
    SnapshotEncoded(Slot, Bytes),
    SnapshotWritten(Result<Slot, crate::StorageError>),
}

/// Where the answer to one request goes: a client connection's writer, with the tag the
/// client gave the request, or a caller in this process.
enum Reply {
    Remote {
        tag: u64,
        tx: mpsc::UnboundedSender<(u64, ClientResponse)>,
    },
    Local(oneshot::Sender<ClientResponse>),
}

impl Reply {
    fn send(self, resp: ClientResponse) {
        // The client may have gone; its answer goes nowhere.
        match self {
            Reply::Remote { tag, tx } => {
                let _ = tx.send((tag, resp));
            }
            Reply::Local(tx) => {
                let _ = tx.send(resp);
            }
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Reply::Remote { tx, .. } => tx.is_closed(),
            Reply::Local(tx) => tx.is_closed(),
        }
    }
}

/// One replica's view, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// This replica.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// The leader it knows, if any.
    pub leader: Option<NodeId>,
    /// Entries decided here.
    pub decided: Slot,
    /// The membership decided here.
    pub members: Membership,
    /// The newest membership in its log.
    pub latest: Membership,
}

/// A command's result as every replica applies it (see [`NodeHandle::subscribe`]).
#[derive(Debug, Clone)]
pub struct Applied {
    /// The request it came from.
    pub id: RequestId,
    /// What the state machine returned.
    pub result: Bytes,
}

/// A replica started by [`start_node`].
pub struct RunningNode {
    /// Requests from this process.
    pub handle: NodeHandle,
    /// Where peers connect.
    pub peer_addr: SocketAddr,
    /// Where clients connect.
    pub client_addr: SocketAddr,
    /// The replica's loop; ends with the shutdown signal or a storage failure.
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Runs the replicated key-value store ([`Kv`]) until `shutdown` turns true, as
/// `consensus-node` does. Binds its listeners first and returns their addresses through
/// `bound` (useful with port 0).
pub async fn run_node(
    cfg: NodeConfig,
    shutdown: watch::Receiver<bool>,
    bound: Option<oneshot::Sender<(SocketAddr, SocketAddr)>>,
) -> anyhow::Result<()> {
    let node = start_node(cfg, Kv::default(), shutdown).await?;
    if let Some(b) = bound {
        let _ = b.send((node.peer_addr, node.client_addr));
    }
    node.task.await?
}

/// Starts a replica of `sm` (empty: the log and snapshot on disk rebuild it): binds its
/// listeners, recovers its log, and spawns its loop, which runs until `shutdown` turns
/// true. The handle serves requests from this process; the client port serves
/// [`crate::client::Client`]s.
pub async fn start_node<S: StateMachine + Send + 'static>(
    cfg: NodeConfig,
    sm: S,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<RunningNode> {
    start_node_with(cfg, sm, shutdown, None).await
}

/// [`start_node`], taking peer connections from `peers` (a port shared with other
/// protocols, see [`crate::acceptor::demux`]) instead of binding `cfg.listen`, which is
/// then only reported as the peer address.
pub async fn start_node_with<S: StateMachine + Send + 'static>(
    cfg: NodeConfig,
    sm: S,
    shutdown: watch::Receiver<bool>,
    peers: Option<Acceptor>,
) -> anyhow::Result<RunningNode> {
    cfg.consensus.validate()?;
    let storage = FileStorage::open(&cfg.data_dir, 64 << 20)?;
    let hard = storage.state().clone();
    tracing::info!(
        node = cfg.consensus.id,
        log = hard.log.len(),
        decided = hard.decided,
        "recovered"
    );
    let replica =
        Replica::restore(cfg.consensus.clone(), hard, sm)?.with_snapshot_every(cfg.snapshot_every);
    let (mut peer_listener, peer_addr) = match peers {
        Some(a) => (a, cfg.listen),
        None => {
            let l = TcpListener::bind(cfg.listen).await?;
            let addr = l.local_addr()?;
            (Acceptor::Listener(l), addr)
        }
    };
    let client_listener = TcpListener::bind(cfg.client_listen).await?;
    let client_addr = client_listener.local_addr()?;
    let (in_tx, in_rx) = mpsc::channel::<Input>(65_536);
    let (applied, _) = broadcast::channel(4096);
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
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = peer_listener.accept() => a,
                    _ = stop.changed() => return,
                };
                let Some(accepted) = accepted else { return };
                let Ok((sock, addr)) = accepted else {
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
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = client_listener.accept() => a,
                    _ = stop.changed() => return,
                };
                let Ok((sock, addr)) = accepted else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                tokio::spawn(serve_client(sock, addr, id, secret.clone(), tx.clone()));
            }
        });
    }

    let tick = cfg.tick;
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
        unsynced: None,
        held: Vec::new(),
        applied: applied.clone(),
    };
    node.refresh_peers();
    let handle = NodeHandle {
        inputs: in_tx.clone(),
        applied,
        sessions: Arc::new(std::sync::Mutex::new(Vec::new())),
    };
    let task = tokio::spawn(async move { node.run(in_rx, shutdown, tick).await });
    Ok(RunningNode {
        handle,
        peer_addr,
        client_addr,
        task,
    })
}
/// What the membership looked like when the peers were last refreshed: the last
/// membership entry's slot, the log's start, and whether that entry is decided.
type MembershipMark = (Option<Slot>, Slot, bool);

struct NodeLoop<S> {
    replica: Replica<S>,
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
    // Written but not yet fsynced: the newest such write, and the messages that must wait
    // for it to be durable.
    unsynced: Option<u64>,
    held: Vec<(NodeId, Message)>,
    applied: broadcast::Sender<Applied>,
}

impl<S: StateMachine> NodeLoop<S> {
    async fn run(
        mut self,
        mut in_rx: mpsc::Receiver<Input>,
        mut shutdown: watch::Receiver<bool>,
        tick: Duration,
    ) -> anyhow::Result<()> {
        // The replica's clock counts ticks of real time: every tick that elapsed is fed in
        // before any input is handled, so its clock never falls behind (a leader whose clock
        // lagged would believe in its lease for too long). Between events the loop sleeps
        // as long as the replica says nothing is due, rather than waking every tick.
        let mut next_tick = tokio::time::Instant::now() + tick;
        let mut ticks = 0u64;
        loop {
            let idle = self.replica.core().idle_ticks().max(1);
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
                self.replica.tick();
                next_tick += tick;
                ticks += 1;
                if ticks.is_multiple_of(1024) {
                    // Requests whose client gave up (it retries with the same id).
                    self.puts.retain(|_, w| {
                        w.retain(|r| !r.is_closed());
                        !w.is_empty()
                    });
                    self.reads.retain(|_, r| !r.is_closed());
                }
            }
            for i in inputs {
                self.input(i);
            }
            self.drain()?;
            while let Some(id) = self.unsynced.take() {
                // The fsync waits until this round's messages are on the wire (the peer
                // writers are tasks on this runtime): a leader's followers then write
                // their copy while it writes its own, rather than after.
                tokio::task::yield_now().await;
                self.storage.sync()?;
                self.replica.on_persisted(id);
                for (to, m) in std::mem::take(&mut self.held) {
                    self.send(to, &m);
                }
                self.drain()?;
            }
        }
        tracing::info!(node = self.me, "stopped");
        Ok(())
    }

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

    fn node_status(&self) -> NodeStatus {
        let core = self.replica.core();
        NodeStatus {
            id: self.me,
            role: core.role(),
            leader: core.leader().map(|b| b.node),
            decided: core.decided(),
            members: core.members().clone(),
            latest: core.latest_members().clone(),
        }
    }

    fn status(&self) -> String {
        let st = self.node_status();
        let role = match st.role {
            Role::Leader => "leader",
            Role::Candidate => "candidate",
            Role::Follower => "follower",
        };
        let ids =
            |m: &crate::Membership| m.ids().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        format!(
            "id={} role={role} leader={} decided={} members={} latest={}",
            st.id,
            st.leader.unwrap_or(0),
            st.decided,
            ids(&st.members),
            ids(&st.latest)
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
            Input::Status(reply) => {
                let _ = reply.send(self.node_status());
            }
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
                ClientRequest::Propose {
                    client,
                    seq,
                    command,
                } => {
                    if client == 0 {
                        reply.send(ClientResponse::Error("client id 0 is reserved".into()));
                        return;
                    }
                    match self.replica.propose((client, seq), &command) {
                        Ok(()) => self.puts.entry((client, seq)).or_default().push(reply),
                        Err(_) => {
                            reply.send(ClientResponse::Redirect {
                                leader: self.leader_hint(),
                            });
                        }
                    }
                }
                ClientRequest::Read { query } => {
                    let id = self.next_read;
                    self.next_read += 1;
                    self.reads.insert(id, reply);
                    self.replica.read(id, &query);
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
                    // Synced by the run loop once this round's messages are out.
                    self.unsynced = Some(p.id);
                } else {
                    self.replica.on_persisted(p.id);
                }
            }
            if self.unsynced.is_some() {
                self.held.extend(ready.after_persist);
            } else {
                for (to, m) in &ready.after_persist {
                    self.send(*to, m);
                }
            }
            if !self.changes.is_empty() {
                self.answer_changes(ready.decided_from, &ready.decided);
            }
            self.refresh_peers();
            for o in ready.outcomes {
                match o {
                    Outcome::Applied(id, result) => {
                        for reply in self.puts.remove(&id).unwrap_or_default() {
                            reply.send(ClientResponse::Ok(result.clone()));
                        }
                        if self.applied.receiver_count() > 0 {
                            let _ = self.applied.send(Applied { id, result });
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

/// Requests to a replica from the process that runs it. Clones share the replica.
///
/// A proposal is applied exactly once however often it is retried: each call takes a
/// client identity that has no other request outstanding (identities are reused, so the
/// replicas' table of answered requests stays as small as the concurrency).
#[derive(Clone)]
pub struct NodeHandle {
    inputs: mpsc::Sender<Input>,
    applied: broadcast::Sender<Applied>,
    sessions: Arc<std::sync::Mutex<Vec<(u64, u64)>>>,
}

/// Why a request from [`NodeHandle`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// No leader took the request before the deadline (no quorum reachable, say).
    #[error("no leader decided the request within {0:?}")]
    Unavailable(Duration),
    /// A linearizable read must go to the leader; this replica is not it.
    #[error("this replica is not the leader (leader: {0:?})")]
    NotLeader(Option<NodeId>),
    /// The replica refused the request.
    #[error("refused: {0}")]
    Refused(String),
    /// The replica has stopped.
    #[error("the replica has stopped")]
    Stopped,
}

/// How long one attempt waits before it is retried (with the same request id).
const ATTEMPT: Duration = Duration::from_secs(1);

impl NodeHandle {
    async fn ask(&self, req: ClientRequest) -> Result<ClientResponse, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inputs
            .send(Input::Client(req, Reply::Local(tx)))
            .await
            .map_err(|_| NodeError::Stopped)?;
        match tokio::time::timeout(ATTEMPT, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(NodeError::Stopped),
            // Forwarded to a leader that went away, say: the caller retries.
            Err(_) => Ok(ClientResponse::Redirect { leader: 0 }),
        }
    }

    /// Proposes `command` and returns what the state machine made of it, once this
    /// replica has applied it; retried (applied once) until `deadline`.
    pub async fn propose(&self, command: Bytes, deadline: Duration) -> Result<Bytes, NodeError> {
        let (client, seq) = {
            let mut free = self.sessions.lock().map_err(|_| NodeError::Stopped)?;
            match free.pop() {
                Some((c, s)) => (c, s + 1),
                None => (crate::client::random_u64() | 1, 1),
            }
        };
        let start = tokio::time::Instant::now();
        let result = loop {
            let req = ClientRequest::Propose {
                client,
                seq,
                command: command.clone(),
            };
            match self.ask(req).await {
                Ok(ClientResponse::Ok(v)) => break Ok(v),
                Ok(ClientResponse::Error(e)) => break Err(NodeError::Refused(e)),
                Ok(ClientResponse::Redirect { .. }) => {
                    if start.elapsed() >= deadline {
                        break Err(NodeError::Unavailable(deadline));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => break Err(e),
            }
        };
        // The identity is free again only once its request is answered for good (an
        // abandoned one might still be applied later, and a reuse would look like a retry).
        if result.is_ok() {
            if let Ok(mut free) = self.sessions.lock() {
                free.push((client, seq));
            }
        }
        result
    }

    /// Reads linearizably; only the leader answers ([`NodeError::NotLeader`] elsewhere).
    pub async fn read(&self, query: Bytes) -> Result<Bytes, NodeError> {
        match self.ask(ClientRequest::Read { query }).await? {
            ClientResponse::Ok(v) => Ok(v),
            ClientResponse::Error(e) => Err(NodeError::Refused(e)),
            ClientResponse::Redirect { leader } => {
                Err(NodeError::NotLeader((leader != 0).then_some(leader)))
            }
        }
    }

    /// Every command's result as this replica applies it, from now on. A receiver that
    /// falls behind loses the oldest (and learns so from `recv`).
    pub fn subscribe(&self) -> broadcast::Receiver<Applied> {
        self.applied.subscribe()
    }

    /// The replica's view.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.inputs
            .send(Input::Status(tx))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Asks this replica, if it leads, to change the membership; answered once decided.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), NodeError> {
        let req = match change {
            MembershipChange::Add { id, addr } => ClientRequest::AddMember { id, addr },
            MembershipChange::Remove(id) => ClientRequest::RemoveMember { id },
        };
        match self.ask(req).await? {
            ClientResponse::Ok(_) => Ok(()),
            ClientResponse::Error(e) => Err(NodeError::Refused(e)),
            ClientResponse::Redirect { leader } => {
                Err(NodeError::NotLeader((leader != 0).then_some(leader)))
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
    let (mut rd, wr) = s.into_split();
    let (out_tx, out_rx) = mpsc::unbounded_channel::<(u64, ClientResponse)>();
    let writer = tokio::spawn(crate::rpc::write_tagged(wr, out_rx, wire::encode_response));
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
        let reply = Reply::Remote {
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
