//! The vocabulary of the protocol: node ids, ballots, log entries, messages, and what the
//! core asks its driver to do ([`Ready`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A replica's identity, unique in the cluster.
pub type NodeId = u64;

/// A log position (0-based).
pub type Slot = u64;

/// A Paxos ballot: totally ordered by round, then node. Each leader leads in its own ballot.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Ballot {
    /// Round number; a candidate takes one above every round it has seen.
    pub round: u64,
    /// The candidate that owns the ballot.
    pub node: NodeId,
}

impl Ballot {
    /// The ballot `round` of `node`.
    pub fn new(round: u64, node: NodeId) -> Ballot {
        Ballot { round, node }
    }
}

impl std::fmt::Display for Ballot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.round, self.node)
    }
}

/// The voting members of the cluster, each with the address its peers reach it at.
///
/// The address is the driver's business (the TCP driver dials it; the core never reads
/// it); an empty address means the driver knows the member from its own configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    members: BTreeMap<NodeId, String>,
}

impl Membership {
    /// The members `ids`, with no addresses.
    pub fn of(ids: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            members: ids.into_iter().map(|id| (id, String::new())).collect(),
        }
    }

    /// Whether `id` votes.
    pub fn contains(&self, id: NodeId) -> bool {
        self.members.contains_key(&id)
    }

    /// The members, in id order.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.keys().copied()
    }

    /// Members with their addresses, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &str)> + '_ {
        self.members.iter().map(|(id, a)| (*id, a.as_str()))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there is no member (a replica that waits to be added knows none).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members that make a majority.
    pub fn quorum(&self) -> usize {
        self.members.len() / 2 + 1
    }

    /// The address recorded for `id`.
    pub fn addr(&self, id: NodeId) -> Option<&str> {
        self.members.get(&id).map(String::as_str)
    }

    /// Adds `id`; false if it was there already.
    pub(crate) fn insert(&mut self, id: NodeId, addr: String) -> bool {
        self.members.insert(id, addr).is_none()
    }

    /// This membership with `id` added (or its address replaced).
    pub fn with(&self, id: NodeId, addr: impl Into<String>) -> Membership {
        let mut m = self.clone();
        m.members.insert(id, addr.into());
        m
    }

    /// This membership without `id`.
    pub fn without(&self, id: NodeId) -> Membership {
        let mut m = self.clone();
        m.members.remove(&id);
        m
    }
}

impl std::fmt::Display for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.ids().map(|i| i.to_string()).collect();
        write!(f, "{{{}}}", ids.join(", "))
    }
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// Written by a new leader so that something is decided in its ballot (reads and leases
    /// wait for it).
    Noop,
    /// An application command, opaque to the core.
    Command(Bytes),
    /// A new membership. It governs every slot *after* its own (the entry itself is decided
    /// by the membership before it), and the leader appends nothing after it until it is
    /// decided, so at most one membership change is ever in flight.
    Config(Membership),
}

/// The application state after the first `upto` entries, replacing them in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Entries covered (slots `0..upto`).
    pub upto: Slot,
    /// The state, as the replicated application encodes it.
    pub data: Bytes,
    /// The membership governing slot `upto` (entries before it are gone).
    pub members: Membership,
}

/// A protocol message between replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1a: a candidate asks for promises, telling what its log holds so acceptors
    /// send only what it may lack.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// Candidate's decided length.
        decided: Slot,
        /// Ballot in which the candidate's log was last accepted.
        accepted_round: Ballot,
        /// Candidate's log length.
        log_len: Slot,
    },
    /// Phase 1b: the acceptor promised `ballot`, and sends the part of its log the candidate
    /// may lack.
    Promise {
        /// The promised ballot.
        ballot: Ballot,
        /// Ballot in which the acceptor's log was last accepted.
        accepted_round: Ballot,
        /// Acceptor's decided length.
        decided: Slot,
        /// Acceptor's log length.
        log_len: Slot,
        /// Where `suffix` starts in the acceptor's log.
        suffix_from: Slot,
        /// Entries from `suffix_from` to the end of the acceptor's log.
        suffix: Vec<Entry>,
        /// The acceptor's snapshot, when what the candidate lacks starts before the
        /// acceptor's log does (`suffix_from` is then the snapshot's end).
        snapshot: Option<Snapshot>,
    },
    /// Phase 2a after a leader change: replace the acceptor's log from `from` with `entries`
    /// (after installing `snapshot`, when the acceptor lags behind the leader's log start).
    AcceptSync {
        /// Leader's ballot.
        ballot: Ballot,
        /// The leader's snapshot, ending at `from`.
        snapshot: Option<Snapshot>,
        /// Where the acceptor's log is cut.
        from: Slot,
        /// The leader's log from `from`.
        entries: Vec<Entry>,
        /// Leader's decided length.
        decided: Slot,
        /// Heartbeat sequence this message vouches for (leases, read index).
        seq: u64,
    },
    /// Phase 2a in steady state: append `entries` at `from` (none: a heartbeat).
    Accept {
        /// Leader's ballot.
        ballot: Ballot,
        /// Where the entries go.
        from: Slot,
        /// New entries.
        entries: Vec<Entry>,
        /// Leader's decided length.
        decided: Slot,
        /// Heartbeat sequence this message vouches for.
        seq: u64,
    },
    /// Phase 2b: the acceptor's log, accepted in `ballot`, has `log_len` entries.
    Accepted {
        /// The ballot accepted in.
        ballot: Ballot,
        /// Acceptor's log length (durable).
        log_len: Slot,
        /// The leader's sequence this answers.
        seq: u64,
        /// The acceptor saw a gap: resend from `log_len`.
        gap: bool,
    },
    /// A refusal: the acceptor has promised a higher ballot (or is bound by a lease).
    Nack {
        /// The ballot refused.
        ballot: Ballot,
        /// What the acceptor has promised.
        promised: Ballot,
    },
    /// An acceptor that missed the leader's Prepare asks to be brought into its ballot.
    NeedSync {
        /// The leader's ballot.
        ballot: Ballot,
    },
    /// Leader transfer: the leader has stepped down in `ballot` and asks the receiver to
    /// stand for election at once.
    TimeoutNow {
        /// The ballot the sender led.
        ballot: Ballot,
    },
    /// The leader of `ballot` has stepped down and no longer holds its lease: replicas
    /// following it may help another candidate at once.
    Relinquish {
        /// The ballot the sender led.
        ballot: Ballot,
    },
    /// Proposals a follower forwards to the leader it knows.
    Forward {
        /// Commands, in order.
        commands: Vec<Bytes>,
    },
}

impl Message {
    /// The ballot the message is about, if any.
    pub fn ballot(&self) -> Option<Ballot> {
        match self {
            Message::Prepare { ballot, .. }
            | Message::Promise { ballot, .. }
            | Message::AcceptSync { ballot, .. }
            | Message::Accept { ballot, .. }
            | Message::Accepted { ballot, .. }
            | Message::Nack { ballot, .. }
            | Message::NeedSync { ballot }
            | Message::TimeoutNow { ballot }
            | Message::Relinquish { ballot } => Some(*ballot),
            Message::Forward { .. } => None,
        }
    }
}

/// A change to a replica's durable state, to be written atomically.
///
/// The driver MUST write it (and fsync) before sending [`Ready::after_persist`] and before
/// calling [`crate::Paxos::on_persisted`]. The batch MUST be atomic: after a crash it is on
/// disk whole or not at all (a storage recovering a torn tail drops the incomplete batch).
/// Keeping part of it is unsafe: its truncation and new round without all of its entries
/// could erase entries this replica accepted earlier and that helped decide a slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persist {
    /// Identifies the batch in `on_persisted`.
    pub id: u64,
    /// A peer's snapshot replacing the log before its end (applied first). It holds state
    /// this replica's log may lack, so it is as durable as the rest of the batch.
    pub snapshot: Option<Snapshot>,
    /// A snapshot of this replica's own applied entries (applied first): the log before
    /// its end is no longer needed. Keeping it is optional — the entries it covers are in
    /// the log — so a storage may write it in the background and acknowledge the batch
    /// before it is durable.
    pub compact: Option<Snapshot>,
    /// New promised ballot.
    pub promised: Option<Ballot>,
    /// New accepted round.
    pub accepted_round: Option<Ballot>,
    /// New decided length.
    pub decided: Option<Slot>,
    /// Cut the log to this length first.
    pub truncate: Option<Slot>,
    /// Then append these entries, the first at this slot.
    pub append: Option<(Slot, Vec<Entry>)>,
}

impl Persist {
    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.promised.is_none()
            && self.snapshot.is_none()
            && self.compact.is_none()
            && self.accepted_round.is_none()
            && self.decided.is_none()
            && self.truncate.is_none()
            && self.append.is_none()
    }
}

/// A linearizable read may proceed once the local state machine has applied `index`
/// entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadGrant {
    /// The caller's read id.
    pub id: u64,
    /// Apply this many entries first.
    pub index: Slot,
    /// Granted under the leader lease (no message round).
    pub by_lease: bool,
}

/// What the core asks its driver to do, drained with [`crate::Paxos::take_ready`].
#[derive(Debug, Default)]
pub struct Ready {
    /// Messages to send now.
    pub send: Vec<(NodeId, Message)>,
    /// State to write durably.
    pub persist: Option<Persist>,
    /// Messages to send only once `persist` is durable.
    pub after_persist: Vec<(NodeId, Message)>,
    /// A snapshot to install in the application before applying `decided` (this replica
    /// lagged behind the log a peer still holds).
    pub snapshot: Option<Snapshot>,
    /// Newly decided entries, in order, starting at `decided_from`.
    pub decided: Vec<Entry>,
    /// Slot of the first entry in `decided`.
    pub decided_from: Slot,
    /// Reads that may now proceed.
    pub reads: Vec<ReadGrant>,
    /// Reads refused (this replica is not the leader, or stepped down).
    pub reads_refused: Vec<u64>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.send.is_empty()
            && self.persist.is_none()
            && self.after_persist.is_empty()
            && self.snapshot.is_none()
            && self.decided.is_empty()
            && self.reads.is_empty()
            && self.reads_refused.is_empty()
    }
}
