//! The Multi-Paxos core: a deterministic state machine, fed with ticks, messages,
//! proposals, reads and storage completions, drained with [`Paxos::take_ready`].
//!
//! The protocol is Multi-Paxos over a replicated *sequence* (log), with one stable leader:
//!
//! - **Phase 1 only on leader change.** A candidate takes a ballot above every round it has
//!   seen and sends `Prepare` with the shape of its log; each acceptor promises and returns
//!   the part of its log the candidate may lack. With promises from a majority the
//!   candidate adopts the log accepted in the highest round (longest on a tie): it holds
//!   every entry that can have been chosen. It appends a `Noop`, so that something is
//!   decided in its own ballot, and syncs each promiser's log from that promiser's decided
//!   point (`AcceptSync`).
//! - **Phase 2 in steady state**: proposals are batched into one `Accept` per follower,
//!   pipelined without waiting for earlier acknowledgements; an entry is decided once a
//!   majority (the leader included, after its own fsync) has accepted it in the leader's
//!   ballot. Acceptors answer only after their write is durable ([`Ready::after_persist`]).
//! - **Leases.** A follower that hears from the leader promises not to help any other
//!   candidate for `lease_ticks` of its own clock; the leader, once a majority has
//!   answered a heartbeat, holds a lease for [`Config::leader_lease_ticks`] from the
//!   heartbeat's sending, short enough to end first under the drift bound. A replica that
//!   restarts has forgotten its promises and so refuses candidates for `lease_ticks` after
//!   boot. Under the lease, with its `Noop` decided, the leader grants reads at once;
//!   otherwise a read waits for a heartbeat round acknowledged by a majority (read index).
//! - **Elections** start after a randomised timeout without a leader, never while the
//!   replica is bound by a lease; a leader that has not heard from a majority for an
//!   election timeout steps down, so a partitioned leader stops taking proposals.
//!
//! Safety never depends on time: ballots and majorities alone keep one value per slot.
//! Time only decides liveness and leases, and leases only under the drift bound.
//!
//! The seam for one-sided transports (the RDMA path of a later issue) is [`Message`]:
//! `Accept`/`Accepted` are the only messages of the steady state, so a transport that
//! writes entries into a follower's memory and reads its acknowledged length back can
//! stand in for them without changing the rest of the core.

mod election;
mod follower;
mod leader;
mod membership;
mod reads;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::config::Config;
use crate::log::Log;
use crate::rng::Rng;
use crate::types::{
    Ballot, Entry, Membership, Message, NodeId, Persist, ReadGrant, Ready, Slot, Snapshot,
};

/// Why a proposal was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// No leader is known (or leadership is being handed over); try again later. The
    /// command is given back.
    #[error("no leader is known")]
    NoLeader(Bytes),
}

/// A change of the voting membership, one replica at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add replica `id`, which peers reach at `addr` (opaque to the core; see
    /// [`Membership`]).
    Add {
        /// The new replica.
        id: NodeId,
        /// Where its peers reach it.
        addr: String,
    },
    /// Remove replica `id` (the leader itself included: it hands over once the change is
    /// decided).
    Remove(NodeId),
}

/// Why a membership change was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// Only the leader changes the membership (and not while it hands over leadership).
    #[error("this replica is not the leader")]
    NotLeader,
    /// The previous change is not decided yet; one change at a time.
    #[error("a membership change is still being decided")]
    InProgress,
    /// Adding a replica that is already a member.
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    /// Removing a replica that is not a member.
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// The cluster cannot be left without members.
    #[error("the last member cannot be removed")]
    LastMember,
}

/// Why a leader transfer was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Only the leader can hand over leadership.
    #[error("this replica is not the leader")]
    NotLeader,
    /// The target is not a member (or is this replica).
    #[error("node {0} is not a peer")]
    UnknownNode(NodeId),
}

/// The durable state a replica restarts from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HardState {
    /// Highest ballot promised.
    pub promised: Ballot,
    /// Ballot in which the log was last accepted.
    pub accepted_round: Ballot,
    /// Decided length known when last written.
    pub decided: Slot,
    /// The snapshot the log starts after.
    pub snapshot: Option<Snapshot>,
    /// The log.
    pub log: Log,
}

impl HardState {
    /// Applies a persisted batch (what a storage does, in memory).
    pub fn apply(&mut self, p: &Persist) {
        for s in p.snapshot.iter().chain(&p.compact) {
            if s.upto > self.log.offset() || self.snapshot.is_none() {
                self.log.compact(s.upto);
                self.decided = self.decided.max(s.upto);
                self.snapshot = Some(s.clone());
            }
        }
        if let Some(b) = p.promised {
            self.promised = b;
        }
        if let Some(b) = p.accepted_round {
            self.accepted_round = b;
        }
        if let Some(t) = p.truncate {
            self.log.truncate(t);
        }
        if let Some((from, entries)) = &p.append {
            self.log.write_at(*from, entries);
        }
        if let Some(d) = p.decided {
            self.decided = self.decided.max(d);
        }
    }
}

/// The replica's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Collecting promises for its ballot.
    Candidate,
    /// Leads in its ballot.
    Leader,
}

#[derive(Debug)]
struct PromiseInfo {
    accepted_round: Ballot,
    decided: Slot,
    log_len: Slot,
    suffix_from: Slot,
    suffix: Vec<Entry>,
    snapshot: Option<Snapshot>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    synced: bool,
    acked: Slot,
    next: Slot,
    acked_seq: u64,
    heard: u64,
}

#[derive(Debug)]
struct LeaderState {
    followers: BTreeMap<NodeId, Progress>,
    self_acked: Slot,
    seq: u64,
    // (seq, tick sent) of recent heartbeats, for the lease.
    sent: VecDeque<(u64, u64)>,
    noop_slot: Slot,
    lease_until: u64,
    last_heartbeat: u64,
    reads: Vec<(u64, u64)>,
    // A leader transfer in progress: the target and the tick it is abandoned at.
    transfer: Option<(NodeId, u64)>,
    // Thrifty replication: new entries go at once only to these followers (just enough
    // for a majority); the rest get them with the next heartbeat. Empty: everyone.
    eager: Vec<NodeId>,
    // Followers that forwarded commands, and the log length that holds them: told the
    // moment that is decided, since their clients wait for them to apply it.
    notify: BTreeMap<NodeId, Slot>,
}

/// Which followers [`Paxos::send_appends`] sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Appends {
    /// New entries, to the eager followers only.
    Eager,
    /// New entries, to every follower that lacks some (an entry waited a tick).
    Lagging,
    /// A heartbeat: to every follower, an empty append if nothing is new.
    Heartbeat,
}

#[derive(Debug)]
enum Action {
    SelfPromised(Ballot),
    SelfAccepted(Ballot, Slot),
}

/// One replica's Multi-Paxos state machine.
#[derive(Debug)]
pub struct Paxos {
    cfg: Config,
    rng: Rng,
    now: u64,
    // Durable.
    promised: Ballot,
    accepted_round: Ballot,
    decided: Slot,
    snapshot: Option<Snapshot>,
    log: Log,
    // Volatile.
    role: Role,
    leader: Option<Ballot>,
    max_round: u64,
    election_deadline: u64,
    lease_promise_until: u64,
    candidate: BTreeMap<NodeId, PromiseInfo>,
    // Replicas this candidate has sent its Prepare to.
    asked: BTreeSet<NodeId>,
    self_promised: bool,
    // The membership before any entry (a cluster's first leader writes it as slot 0).
    initial: Membership,
    leading: Option<LeaderState>,
    pending: Vec<Bytes>,
    // Who forwarded the commands in `pending` (the leader tells them when decided).
    forwarders: Vec<NodeId>,
    reported: Slot,
    // Output being built.
    ready: Ready,
    persist: Persist,
    persist_id: u64,
    actions: VecDeque<(u64, Action)>,
}

impl Paxos {
    /// A replica with empty state. Validates `cfg`.
    pub fn new(cfg: Config) -> Result<Paxos, crate::ConfigError> {
        Paxos::restore(cfg, HardState::default())
    }

    /// A replica restarting from what it had persisted. It refuses to promise any candidate
    /// for `lease_ticks` (it may have promised a lease before the restart).
    pub fn restore(cfg: Config, hard: HardState) -> Result<Paxos, crate::ConfigError> {
        cfg.validate()?;
        let decided = hard.decided.min(hard.log.len()).max(hard.log.offset());
        let reported = hard.log.offset();
        let mut p = Paxos {
            rng: Rng::new(cfg.seed),
            now: 0,
            promised: hard.promised,
            accepted_round: hard.accepted_round,
            decided,
            snapshot: hard.snapshot,
            log: hard.log,
            role: Role::Follower,
            leader: None,
            max_round: hard.promised.round,
            election_deadline: 0,
            lease_promise_until: cfg.lease_ticks,
            candidate: BTreeMap::new(),
            asked: BTreeSet::new(),
            self_promised: false,
            initial: cfg.initial_members(),
            leading: None,
            pending: Vec::new(),
            forwarders: Vec::new(),
            reported,
            ready: Ready::default(),
            persist: Persist::default(),
            persist_id: 0,
            actions: VecDeque::new(),
            cfg,
        };
        p.reset_election_timer();
        Ok(p)
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The ballot this replica believes leads, if any.
    pub fn leader(&self) -> Option<Ballot> {
        self.leader
    }

    /// Highest ballot promised.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// Number of decided entries known here.
    pub fn decided(&self) -> Slot {
        self.decided
    }

    /// The log (decided prefix and the rest).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The membership this replica knows to be decided (the one governing its first
    /// undecided slot).
    pub fn members(&self) -> &Membership {
        self.config_at(self.decided)
    }

    /// The newest membership in this replica's log, decided or not.
    pub fn latest_members(&self) -> &Membership {
        self.config_at(self.log.len())
    }

    /// Every replica named by a membership this replica may still need: the decided one
    /// and any newer one in its log. A driver keeps connections to these.
    pub fn known_replicas(&self) -> BTreeSet<NodeId> {
        self.configs_from(self.decided)
            .flat_map(|m| m.ids())
            .collect()
    }

    fn base_members(&self) -> &Membership {
        self.snapshot
            .as_ref()
            .map(|s| &s.members)
            .unwrap_or(&self.initial)
    }

    /// The membership governing `slot`.
    fn config_at(&self, slot: Slot) -> &Membership {
        members_at(&self.log, self.base_members(), slot)
    }

    /// The membership governing `from` and every newer one in the log.
    fn configs_from(&self, from: Slot) -> impl Iterator<Item = &Membership> + '_ {
        std::iter::once(self.config_at(from)).chain(self.log.configs_from(from).map(|(_, m)| m))
    }

    /// Whether the leader may append: nothing goes after a membership entry until it is
    /// decided, so that every undecided slot has one membership.
    fn may_append(&self) -> bool {
        self.log.last_config_slot().is_none_or(|c| c < self.decided)
    }

    /// This replica's clock, in ticks since it started.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// How many ticks can pass before [`Paxos::tick`] has anything to do (at least one):
    /// a driver with no input may sleep that long, then feed every elapsed tick.
    pub fn idle_ticks(&self) -> u64 {
        let due = match (self.role, &self.leading) {
            // Undecided entries are pushed to slow followers every tick.
            (Role::Leader, Some(_)) if self.decided < self.log.len() => self.now + 1,
            (Role::Leader, Some(l)) => l.last_heartbeat + self.cfg.heartbeat_ticks,
            (Role::Leader, None) => self.now + 1,
            _ if self.members().contains(self.cfg.id) => {
                self.election_deadline.max(self.lease_promise_until)
            }
            // Never stands: nothing to do on a tick.
            _ => self.now + self.cfg.election_ticks,
        };
        due.saturating_sub(self.now).max(1)
    }

    // ---- inputs ----

    /// Advances this replica's clock by one tick.
    pub fn tick(&mut self) {
        self.now += 1;
        match self.role {
            Role::Leader => {
                let (due, lost) = match &self.leading {
                    Some(l) => {
                        let heard = self.majority_heard(l);
                        (
                            self.now >= l.last_heartbeat + self.cfg.heartbeat_ticks,
                            self.now > heard + self.cfg.election_ticks,
                        )
                    }
                    None => (false, false),
                };
                if lost {
                    tracing::debug!(node = self.cfg.id, "no majority heard; stepping down");
                    self.step_down(None);
                } else {
                    if due {
                        self.heartbeat();
                    } else if self.decided < self.log.len() {
                        // Something waited a whole tick: an eager follower is slow, so
                        // the others get the entries now rather than at the heartbeat.
                        self.send_appends(Appends::Lagging);
                    }
                    self.check_removed();
                    self.check_transfer();
                }
            }
            Role::Candidate | Role::Follower => {
                // Only a member stands: a replica that was removed, or that waits to be
                // added, would only disturb the others.
                if self.now >= self.election_deadline
                    && self.now >= self.lease_promise_until
                    && self.members().contains(self.cfg.id)
                {
                    self.start_election();
                }
            }
        }
    }

    /// Compacts the log: `data` is the application's state after the first `upto`
    /// entries, which it has applied. Ignored unless `upto` is decided, applied (reported)
    /// and beyond the current snapshot.
    pub fn compact(&mut self, upto: Slot, data: Bytes) {
        if upto <= self.log.offset() || upto > self.reported || upto > self.decided {
            return;
        }
        let snap = Snapshot {
            upto,
            data,
            members: self.config_at(upto).clone(),
        };
        self.log.compact(upto);
        self.persist.compact = Some(snap.clone());
        self.snapshot = Some(snap);
    }

    /// The driver has made every batch up to `id` durable.
    pub fn on_persisted(&mut self, id: u64) {
        while let Some((aid, _)) = self.actions.front() {
            if *aid > id {
                break;
            }
            let Some((_, action)) = self.actions.pop_front() else {
                break;
            };
            match action {
                Action::SelfPromised(b) => {
                    if self.role == Role::Candidate && self.promised == b {
                        self.self_promised = true;
                        self.check_promises();
                    }
                }
                Action::SelfAccepted(b, len) => {
                    if self.role == Role::Leader && self.accepted_round == b {
                        if let Some(l) = self.leading.as_mut() {
                            l.self_acked = l.self_acked.max(len);
                        }
                        self.advance_decided();
                        self.check_transfer();
                    }
                }
            }
        }
    }

    /// Handles a message from `from`.
    ///
    /// Any replica may send (the driver authenticates peers): ballots and memberships, not
    /// the sender's name, decide what a message can do. A candidate that the membership
    /// this replica knows does not name is refused.
    pub fn step(&mut self, from: NodeId, msg: Message) {
        if from == self.cfg.id {
            tracing::warn!(node = self.cfg.id, "message from itself dropped");
            return;
        }
        if let Some(b) = msg.ballot() {
            self.max_round = self.max_round.max(b.round);
        }
        match msg {
            Message::Prepare {
                ballot,
                decided,
                accepted_round,
                log_len,
            } => self.on_prepare(from, ballot, decided, accepted_round, log_len),
            Message::Promise {
                ballot,
                accepted_round,
                decided,
                log_len,
                suffix_from,
                suffix,
                snapshot,
            } => self.on_promise(
                from,
                ballot,
                PromiseInfo {
                    accepted_round,
                    decided,
                    log_len,
                    suffix_from,
                    suffix,
                    snapshot,
                },
            ),
            Message::AcceptSync {
                ballot,
                snapshot,
                from: start,
                entries,
                decided,
                seq,
            } => self.on_accept_sync(from, ballot, snapshot, start, entries, decided, seq),
            Message::Accept {
                ballot,
                from: start,
                entries,
                decided,
                seq,
            } => self.on_accept(from, ballot, start, entries, decided, seq),
            Message::Accepted {
                ballot,
                log_len,
                seq,
                gap,
            } => self.on_accepted(from, ballot, log_len, seq, gap),
            Message::Nack { ballot, promised } => self.on_nack(ballot, promised),
            Message::NeedSync { ballot } => self.on_need_sync(from, ballot),
            Message::Relinquish { ballot } => {
                if self.leader == Some(ballot) && self.role == Role::Follower {
                    self.lease_promise_until = self.now;
                }
            }
            Message::TimeoutNow { ballot } => {
                if self.leader == Some(ballot) && self.role == Role::Follower {
                    self.lease_promise_until = self.now;
                    self.start_election();
                }
            }
            Message::Forward { commands } => {
                for c in commands {
                    // A replica forwards at most to the leader it knows; a command that finds
                    // no leader is dropped and the client's retry (same request id) recovers.
                    if self.role == Role::Leader {
                        self.pending.push(c);
                        self.forwarders.push(from);
                    } else if let Some(b) = self.leader.filter(|b| b.node != from) {
                        self.ready
                            .send
                            .push((b.node, Message::Forward { commands: vec![c] }));
                    }
                }
            }
        }
    }

    /// Drains what the driver must do. Flushes batched proposals first.
    pub fn take_ready(&mut self) -> Ready {
        self.flush_proposals();
        if self.reported < self.log.offset() {
            // Installed a snapshot from a peer: the application takes it first.
            self.ready.snapshot = self.snapshot.clone();
            self.reported = self.log.offset();
        }
        if self.decided > self.reported {
            let from = self.reported;
            self.ready.decided_from = from;
            self.ready.decided = self.log.range(from, self.decided);
            self.reported = self.decided;
            if self.persist.decided.is_none() && !self.persist.is_empty() {
                self.persist.decided = Some(self.decided);
            }
        }
        let mut ready = std::mem::take(&mut self.ready);
        if !self.persist.is_empty() {
            let mut p = std::mem::take(&mut self.persist);
            p.id = self.persist_id;
            ready.persist = Some(p);
            self.persist_id += 1;
        }
        ready
    }

    // ---- phase 1 ----

    // ---- phase 2 ----
}

/// The membership governing `slot` of `log`: the last membership entry before it, else
/// the membership the log starts with (`base`).
fn members_at<'a>(log: &'a Log, base: &'a Membership, slot: Slot) -> &'a Membership {
    log.config_before(slot).map_or(base, |(_, m)| m)
}

/// The largest value that a majority of `m` has reached: `own` for this replica (if a
/// member), `other(id)` for the rest (`None`: no report). `None` when fewer than a
/// majority report.
fn quorum_value(
    m: &Membership,
    me: NodeId,
    own: u64,
    other: impl Fn(NodeId) -> Option<u64>,
) -> Option<u64> {
    let mut v: Vec<u64> = m
        .ids()
        .filter_map(|id| if id == me { Some(own) } else { other(id) })
        .collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v.get(m.quorum().checked_sub(1)?).copied()
}
