//! A replicated state machine on top of the core: applies decided commands in order,
//! answers each client request once however often it was retried, and serves linearizable
//! reads. Still sans-IO: the driver moves messages and storage, the replica tells it what
//! each request produced.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::paxos::{HardState, Paxos, ProposeError, Role};
use crate::types::{Entry, Message, NodeId, Persist, Slot, Snapshot};
use crate::Config;

/// The application replicated by consensus. Commands and queries are bytes; the
/// application decodes them (and must treat garbage as a result, not a panic).
pub trait StateMachine {
    /// Applies a decided command and returns its result.
    fn apply(&mut self, command: &[u8]) -> Bytes;
    /// Answers a read-only query against the current state.
    fn query(&self, query: &[u8]) -> Bytes;
    /// The whole state, encoded (for a snapshot).
    fn snapshot(&self) -> Bytes;
    /// Replaces the state with a decoded snapshot; `Err` if `data` is not one.
    fn restore(&mut self, data: &[u8]) -> Result<(), String>;
    /// The state as of now, to be encoded (as [`StateMachine::snapshot`] would) by a job
    /// that may run on another thread while this one goes on applying. The default
    /// encodes at once; a state machine with a cheap point-in-time copy (a persistent
    /// map, say) returns a job that encodes the copy.
    fn snapshot_job(&self) -> Box<dyn FnOnce() -> Bytes + Send> {
        let data = self.snapshot();
        Box::new(move || data)
    }
}

/// Encoding a snapshot, possibly on another thread: run it, then hand the result to
/// [`Replica::snapshot_done`].
pub struct SnapshotJob {
    upto: Slot,
    sessions: Bytes,
    app: Box<dyn FnOnce() -> Bytes + Send>,
}

impl SnapshotJob {
    /// Encodes the snapshot: the entries it covers and its bytes.
    pub fn run(self) -> (Slot, Bytes) {
        let app = (self.app)();
        let mut b = BytesMut::with_capacity(self.sessions.len() + app.len());
        b.put_slice(&self.sessions);
        b.put_slice(&app);
        (self.upto, b.freeze())
    }
}

impl std::fmt::Debug for SnapshotJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapshotJob {{ upto: {} }}", self.upto)
    }
}

/// A client request id: `(client, seq)`. A client numbers its requests 1, 2, 3, … and
/// retries a request with the same id; it is applied once. Client 0 opts out.
pub type RequestId = (u64, u64);

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A proposal was applied (here or, for a retry, earlier) with this result.
    Applied(RequestId, Bytes),
    /// A read was answered.
    Read(u64, Bytes),
    /// A read could not be served here (not the leader); retry at the leader.
    ReadRefused(u64),
}

/// What the driver must do after feeding the replica.
#[derive(Debug, Default)]
pub struct ReplicaReady {
    /// Messages to send now.
    pub send: Vec<(NodeId, Message)>,
    /// State to write durably (see [`Persist`]).
    pub persist: Option<Persist>,
    /// Messages to send once every batch handed out so far is durable.
    pub after_persist: Vec<(NodeId, Message)>,
    /// Results for clients.
    pub outcomes: Vec<Outcome>,
    /// Entries decided since the last call, starting at slot `decided_from`.
    pub decided: Vec<Entry>,
    /// Slot of the first entry of `decided`.
    pub decided_from: Slot,
    /// How many entries have been applied.
    pub applied: Slot,
    /// A peer's snapshot replaced this replica's state (it lagged behind the peer's log).
    pub installed_snapshot: bool,
    /// The replica cannot go on (a peer sent state it cannot decode); the driver MUST
    /// stop it.
    pub fatal: Option<String>,
    /// Time for a snapshot: run the job (on any thread) and hand its result to
    /// [`Replica::snapshot_done`]; none is started while one is out.
    pub snapshot_job: Option<SnapshotJob>,
}

fn envelope(id: RequestId, command: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(16 + command.len());
    b.put_u64(id.0);
    b.put_u64(id.1);
    b.put_slice(command);
    b.freeze()
}

fn open_envelope(mut b: Bytes) -> Option<(RequestId, Bytes)> {
    if b.len() < 16 {
        return None;
    }
    let client = b.get_u64();
    let seq = b.get_u64();
    Some(((client, seq), b))
}

/// A replica: the Paxos core plus the application it replicates.
pub struct Replica<S> {
    core: Paxos,
    sm: S,
    applied: Slot,
    // Last request applied per client, with its result.
    sessions: HashMap<u64, (u64, Bytes)>,
    // Reads waiting for their grant.
    reads: HashMap<u64, Bytes>,
    // Compact the log every this many applied entries (0: never).
    snapshot_every: u64,
    last_snapshot: Slot,
    // A snapshot job is out.
    snapshotting: bool,
}

impl<S: StateMachine> Replica<S> {
    /// A fresh replica.
    pub fn new(cfg: Config, sm: S) -> Result<Self, crate::ConfigError> {
        Self::restore(cfg, HardState::default(), sm)
    }

    /// A replica restarting from its durable state; `sm` must be the empty application:
    /// decided entries are applied again as they are learned.
    pub fn restore(cfg: Config, hard: HardState, sm: S) -> Result<Self, crate::ConfigError> {
        let snapshot = hard.snapshot.clone();
        let mut r = Replica {
            core: Paxos::restore(cfg, hard)?,
            sm,
            applied: 0,
            sessions: HashMap::new(),
            reads: HashMap::new(),
            snapshot_every: 0,
            last_snapshot: 0,
            snapshotting: false,
        };
        if let Some(s) = snapshot {
            r.install(&s).map_err(|e| {
                crate::ConfigError(format!("the stored snapshot does not decode: {e}"))
            })?;
        }
        Ok(r)
    }

    /// Compacts the log into a snapshot every `n` applied entries (0: never).
    pub fn with_snapshot_every(mut self, n: u64) -> Self {
        self.snapshot_every = n;
        self
    }

    /// Snapshot format: the session table, then the application's own bytes. The
    /// session table is encoded now (it is small); the application's bytes by the job.
    fn snapshot_job(&self) -> SnapshotJob {
        let mut b = BytesMut::with_capacity(8 + self.sessions.len() * 32);
        b.put_u32(self.sessions.len() as u32);
        let mut clients: Vec<_> = self.sessions.iter().collect();
        clients.sort_unstable_by_key(|(c, _)| **c);
        for (client, (seq, result)) in clients {
            b.put_u64(*client);
            b.put_u64(*seq);
            b.put_u32(result.len() as u32);
            b.put_slice(result);
        }
        SnapshotJob {
            upto: self.applied,
            sessions: b.freeze(),
            app: self.sm.snapshot_job(),
        }
    }

    /// A snapshot job finished: the log before `upto` is compacted into `data`.
    pub fn snapshot_done(&mut self, upto: Slot, data: Bytes) {
        self.snapshotting = false;
        self.core.compact(upto, data);
    }

    fn install(&mut self, snap: &Snapshot) -> Result<(), String> {
        let mut b = snap.data.clone();
        let short = || "snapshot ends early".to_string();
        if b.len() < 4 {
            return Err(short());
        }
        let n = b.get_u32() as usize;
        let mut sessions = HashMap::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            if b.len() < 20 {
                return Err(short());
            }
            let client = b.get_u64();
            let seq = b.get_u64();
            let len = b.get_u32() as usize;
            if b.len() < len {
                return Err(short());
            }
            sessions.insert(client, (seq, b.split_to(len)));
        }
        self.sm.restore(&b)?;
        self.sessions = sessions;
        self.applied = snap.upto;
        self.last_snapshot = snap.upto;
        Ok(())
    }

    /// The core.
    pub fn core(&self) -> &Paxos {
        &self.core
    }

    /// The application.
    pub fn state_machine(&self) -> &S {
        &self.sm
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        self.core.role() == Role::Leader
    }

    /// Advances the clock by one tick.
    pub fn tick(&mut self) {
        self.core.tick();
    }

    /// Handles a message.
    pub fn step(&mut self, from: NodeId, msg: Message) {
        self.core.step(from, msg);
    }

    /// Proposes `command` for request `id`. `Err` gives the command back: no leader known.
    pub fn propose(&mut self, id: RequestId, command: &[u8]) -> Result<(), Bytes> {
        match self.core.propose(envelope(id, command)) {
            Ok(()) => Ok(()),
            Err(ProposeError::NoLeader(_)) => Err(Bytes::copy_from_slice(command)),
        }
    }

    /// Proposes a membership change (see [`Paxos::propose_membership`]); returns the slot
    /// of its entry.
    pub fn propose_membership(
        &mut self,
        change: crate::paxos::MembershipChange,
    ) -> Result<Slot, crate::paxos::MembershipError> {
        self.core.propose_membership(change)
    }

    /// Hands leadership to `to` (see [`Paxos::transfer_leadership`]).
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), crate::TransferError> {
        self.core.transfer_leadership(to)
    }

    /// Asks for a linearizable read with the caller's id.
    pub fn read(&mut self, id: u64, query: &[u8]) {
        self.reads.insert(id, Bytes::copy_from_slice(query));
        self.core.read(id);
    }

    /// The driver made every batch up to `id` durable.
    pub fn on_persisted(&mut self, id: u64) {
        self.core.on_persisted(id);
    }

    /// Drains the core and applies what it decided.
    pub fn take_ready(&mut self) -> ReplicaReady {
        let ready = self.core.take_ready();
        let mut outcomes = Vec::new();
        if let Some(snap) = &ready.snapshot {
            // A peer's snapshot, sent because this replica lagged behind its log. Its
            // bytes passed a checksum on the way; one that does not decode is a bug in a
            // peer, and applying entries on top of a wrong state would be worse.
            if let Err(e) = self.install(snap) {
                // Fail-stop: the driver must stop this replica.
                return ReplicaReady {
                    fatal: Some(format!("a peer's snapshot does not decode: {e}")),
                    ..ReplicaReady::default()
                };
            }
        }
        debug_assert!(ready.decided.is_empty() || ready.decided_from == self.applied);
        for entry in ready.decided.iter().cloned() {
            self.applied += 1;
            let Entry::Command(data) = entry else {
                continue;
            };
            let Some((id, command)) = open_envelope(data) else {
                continue;
            };
            if id.0 != 0 {
                if let Some((last, result)) = self.sessions.get(&id.0) {
                    if id.1 <= *last {
                        // A retry of an applied request: its result again, applied once.
                        if id.1 == *last {
                            outcomes.push(Outcome::Applied(id, result.clone()));
                        }
                        continue;
                    }
                }
            }
            let result = self.sm.apply(&command);
            if id.0 != 0 {
                self.sessions.insert(id.0, (id.1, result.clone()));
            }
            outcomes.push(Outcome::Applied(id, result));
        }
        for grant in ready.reads {
            // Decided entries up to the grant's index are applied above: the core grants
            // at most what it has decided, and reports decided entries in the same Ready.
            debug_assert!(grant.index <= self.applied);
            if let Some(q) = self.reads.remove(&grant.id) {
                outcomes.push(Outcome::Read(grant.id, self.sm.query(&q)));
            }
        }
        for id in ready.reads_refused {
            self.reads.remove(&id);
            outcomes.push(Outcome::ReadRefused(id));
        }
        let mut snapshot_job = None;
        if self.snapshot_every > 0
            && !self.snapshotting
            && self.applied >= self.last_snapshot + self.snapshot_every
        {
            snapshot_job = Some(self.snapshot_job());
            self.snapshotting = true;
            self.last_snapshot = self.applied;
        }
        ReplicaReady {
            send: ready.send,
            persist: ready.persist,
            after_persist: ready.after_persist,
            outcomes,
            decided: ready.decided,
            decided_from: ready.decided_from,
            applied: self.applied,
            installed_snapshot: ready.snapshot.is_some(),
            fatal: None,
            snapshot_job,
        }
    }
}
