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

mod handle;
mod input;
mod serve;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::TcpListener;

use crate::acceptor::Acceptor;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::kv::Kv;
use crate::net::dial_peer;
use crate::paxos::{MembershipChange, Role};
use crate::replica::{Outcome, Replica, StateMachine};
use crate::storage::{FileStorage, Storage};
use crate::types::{Entry, Message, NodeId, Slot};
use crate::wire::{self, ClientRequest, ClientResponse};
use crate::Config;
pub use handle::{NodeError, NodeHandle};
pub use input::{Applied, NodeStatus};
use input::{Input, Reply};
use serve::{serve_client, serve_peer};

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
