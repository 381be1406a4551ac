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

    /// Whether this replica is the leader and may serve reads under its lease right now.
    pub fn has_lease(&self) -> bool {
        match (&self.leading, self.role) {
            (Some(l), Role::Leader) => self.now < l.lease_until && self.decided > l.noop_slot,
            _ => false,
        }
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

    /// Proposes a command; the leader batches it, a follower forwards it to the leader it
    /// knows. Acceptance here is no promise: the command is decided when it appears in
    /// [`Ready::decided`].
    pub fn propose(&mut self, command: Bytes) -> Result<(), ProposeError> {
        let transferring = self.leading.as_ref().is_some_and(|l| l.transfer.is_some());
        match (self.role, self.leader) {
            (Role::Leader, _) if transferring => Err(ProposeError::NoLeader(command)),
            (Role::Leader, _) => {
                self.pending.push(command);
                Ok(())
            }
            (_, Some(b)) if b.node != self.cfg.id => {
                self.ready.send.push((
                    b.node,
                    Message::Forward {
                        commands: vec![command],
                    },
                ));
                Ok(())
            }
            _ => Err(ProposeError::NoLeader(command)),
        }
    }

    /// Proposes a membership change (leader only). The new membership governs the slots
    /// after its entry; nothing more is appended until that entry is decided, so a
    /// second change must wait for the first. Returns the entry's slot: the change is
    /// made when that slot is decided holding it.
    pub fn propose_membership(
        &mut self,
        change: MembershipChange,
    ) -> Result<Slot, MembershipError> {
        let transferring = self.leading.as_ref().is_some_and(|l| l.transfer.is_some());
        if self.role != Role::Leader || transferring {
            return Err(MembershipError::NotLeader);
        }
        if !self.may_append() {
            return Err(MembershipError::InProgress);
        }
        let current = self.latest_members();
        let next = match change {
            MembershipChange::Add { id, addr } => {
                if current.contains(id) {
                    return Err(MembershipError::AlreadyMember(id));
                }
                current.with(id, addr)
            }
            MembershipChange::Remove(id) => {
                if !current.contains(id) {
                    return Err(MembershipError::NotMember(id));
                }
                if current.len() == 1 {
                    return Err(MembershipError::LastMember);
                }
                current.without(id)
            }
        };
        tracing::info!(node = self.cfg.id, from = %current, to = %next, "membership change proposed");
        // Commands already taken go before the change.
        self.flush_proposals();
        let slot = self.log.len();
        self.log.push(Entry::Config(next.clone()));
        match &mut self.persist.append {
            Some((_, pending)) => pending.push(Entry::Config(next)),
            None => self.persist.append = Some((slot, vec![Entry::Config(next)])),
        }
        self.actions.push_back((
            self.persist_id,
            Action::SelfAccepted(self.accepted_round, self.log.len()),
        ));
        self.update_followers();
        self.send_appends(Appends::Eager);
        Ok(slot)
    }

    /// Asks for a linearizable read; answered by a [`ReadGrant`] in [`Ready::reads`] or
    /// a refusal in [`Ready::reads_refused`] (not the leader).
    pub fn read(&mut self, id: u64) {
        if self.role != Role::Leader {
            self.ready.reads_refused.push(id);
            return;
        }
        if self.has_lease() {
            self.ready.reads.push(ReadGrant {
                id,
                index: self.decided,
                by_lease: true,
            });
            return;
        }
        let Some(l) = self.leading.as_mut() else {
            self.ready.reads_refused.push(id);
            return;
        };
        // Wait for a heartbeat sent after the read arrived to be acknowledged by a majority.
        l.reads.push((id, l.seq + 1));
        self.heartbeat();
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

    /// Hands leadership to `to`: new proposals are refused meanwhile; once `to` holds the
    /// whole log, this replica steps down, gives up its lease and asks `to` to stand for
    /// election at once. Abandoned after an election timeout if `to` does not catch up.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        if to == self.cfg.id || !self.latest_members().contains(to) {
            return Err(TransferError::UnknownNode(to));
        }
        let deadline = self.now + self.cfg.election_ticks;
        match (self.role, self.leading.as_mut()) {
            (Role::Leader, Some(l)) => {
                l.transfer = Some((to, deadline));
                self.check_transfer();
                Ok(())
            }
            _ => Err(TransferError::NotLeader),
        }
    }

    fn check_transfer(&mut self) {
        let len = self.log.len();
        let Some(l) = self.leading.as_mut() else {
            return;
        };
        let Some((to, deadline)) = l.transfer else {
            return;
        };
        if self.now > deadline {
            tracing::debug!(node = self.cfg.id, to, "leader transfer abandoned");
            l.transfer = None;
            return;
        }
        let caught_up = l.self_acked >= len
            && l.followers
                .get(&to)
                .is_some_and(|p| p.synced && p.acked >= len);
        if !caught_up {
            return;
        }
        let ballot = self.accepted_round;
        let followers: Vec<NodeId> = l.followers.keys().copied().collect();
        tracing::debug!(node = self.cfg.id, to, %ballot, "handing leadership over");
        // Stepping down ends the lease (has_lease needs the leader role) before anyone is
        // told they may help another candidate.
        self.step_down(None);
        self.lease_promise_until = self.now;
        for p in followers {
            self.ready.send.push((p, Message::Relinquish { ballot }));
        }
        self.ready.send.push((to, Message::TimeoutNow { ballot }));
    }

    /// A leader that the decided membership no longer names hands leadership to the
    /// member that holds the most of its log.
    fn check_removed(&mut self) {
        if self.role != Role::Leader || self.members().contains(self.cfg.id) {
            return;
        }
        let members = self.members();
        let Some(l) = self.leading.as_ref() else {
            return;
        };
        if l.transfer.is_some() {
            return;
        }
        let best = l
            .followers
            .iter()
            .filter(|(id, p)| p.synced && members.contains(**id))
            .max_by_key(|(_, p)| p.acked)
            .map(|(id, _)| *id);
        if let Some(to) = best {
            tracing::info!(
                node = self.cfg.id,
                to,
                "removed from the membership; handing over"
            );
            let deadline = self.now + self.cfg.election_ticks;
            if let Some(l) = self.leading.as_mut() {
                l.transfer = Some((to, deadline));
            }
            self.check_transfer();
        }
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

    fn start_election(&mut self) {
        let round = self.max_round.max(self.promised.round) + 1;
        let ballot = Ballot::new(round, self.cfg.id);
        tracing::debug!(node = self.cfg.id, %ballot, "starting election");
        self.fail_reads();
        self.role = Role::Candidate;
        self.leading = None;
        self.leader = None;
        self.promised = ballot;
        self.max_round = round;
        self.candidate.clear();
        self.asked.clear();
        self.self_promised = false;
        self.persist.promised = Some(ballot);
        self.actions
            .push_back((self.persist_id, Action::SelfPromised(ballot)));
        let voters = self.known_replicas();
        self.ask_for_promises(voters);
        self.reset_election_timer();
    }

    fn ask_for_promises(&mut self, voters: BTreeSet<NodeId>) {
        let ballot = self.promised;
        for p in voters {
            if p == self.cfg.id || !self.asked.insert(p) {
                continue;
            }
            self.ready.send.push((
                p,
                Message::Prepare {
                    ballot,
                    decided: self.decided,
                    accepted_round: self.accepted_round,
                    log_len: self.log.len(),
                },
            ));
        }
    }

    /// Whether this replica refuses `candidate`: neither the membership it knows to be
    /// decided nor the newest one in its log names it. (A replica that knows no
    /// membership yet, one waiting to be added, refuses nobody.)
    fn refuses_candidate(&self, candidate: NodeId) -> bool {
        let decided = self.members();
        !decided.is_empty()
            && !decided.contains(candidate)
            && !self.latest_members().contains(candidate)
    }

    fn bound_by_lease(&self, ballot: Ballot) -> bool {
        self.now < self.lease_promise_until && self.leader != Some(ballot)
    }

    fn on_prepare(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        decided: Slot,
        accepted_round: Ballot,
        log_len: Slot,
    ) {
        let refused = ballot > self.promised
            && (self.bound_by_lease(ballot) || self.refuses_candidate(ballot.node));
        if ballot < self.promised || refused {
            self.ready.send.push((
                from,
                Message::Nack {
                    ballot,
                    promised: self.promised,
                },
            ));
            return;
        }
        if ballot > self.promised {
            self.promised = ballot;
            self.persist.promised = Some(ballot);
            if self.role != Role::Follower {
                self.step_down(None);
            }
            self.leader = None;
            self.reset_election_timer();
        } else if self.role == Role::Leader && ballot.node == self.cfg.id {
            return;
        }
        let len = self.log.len();
        let suffix_from = if self.accepted_round > accepted_round {
            decided.min(len)
        } else if self.accepted_round == accepted_round && len > log_len {
            log_len
        } else {
            len
        };
        // What the candidate lacks may start before this log does: send the snapshot.
        let (suffix_from, snapshot) = if suffix_from < self.log.offset() {
            (self.log.offset(), self.snapshot.clone())
        } else {
            (suffix_from, None)
        };
        let msg = Message::Promise {
            ballot,
            accepted_round: self.accepted_round,
            decided: self.decided,
            log_len: len,
            suffix_from,
            suffix: self.log.from(suffix_from),
            snapshot,
        };
        self.ready.after_persist.push((from, msg));
    }

    fn on_promise(&mut self, from: NodeId, ballot: Ballot, info: PromiseInfo) {
        match self.role {
            Role::Candidate if self.promised == ballot => {
                self.candidate.insert(from, info);
                self.check_promises();
            }
            Role::Leader if self.accepted_round == ballot => {
                // A late promise: bring that acceptor into the ballot.
                self.sync_follower(from, info.decided);
            }
            _ => {}
        }
    }

    /// The log this candidate would lead with if it adopted promise `p` (whose log was
    /// accepted in a higher round than its own, or is longer): its own log up to where
    /// `p`'s suffix starts, then that suffix, after `p`'s snapshot if it brings one.
    /// Returns the log, the snapshot to install, and where the log changed.
    fn adopted_log(&self, p: &PromiseInfo) -> (Log, Option<Snapshot>, Slot) {
        let mut log = self.log.clone();
        let snapshot = p
            .snapshot
            .as_ref()
            .filter(|s| s.upto > log.offset())
            .cloned();
        if let Some(s) = &snapshot {
            log.compact(s.upto);
        }
        let cut = p.suffix_from.min(log.len()).max(log.offset());
        log.truncate(cut);
        log.extend(p.suffix.iter().cloned());
        (log, snapshot, cut)
    }

    /// Becomes leader once it holds promises from a majority of every membership that
    /// governs a slot it may still have to decide: from the highest decided point any
    /// promiser reported up to the slot after the log it would adopt. A membership
    /// entry at slot `c` governs the slots after `c`, and one replica's old view must
    /// never outvote a newer membership, so the set is recomputed as promises (and
    /// with them newer logs) arrive, and the replicas it newly names are asked too.
    fn check_promises(&mut self) {
        if !self.self_promised {
            return;
        }
        let ballot = self.promised;
        // Adopt the log accepted in the highest round, the longest on a tie.
        let mine = (self.accepted_round, self.log.len());
        let best = self
            .candidate
            .iter()
            .map(|(id, p)| ((p.accepted_round, p.log_len), *id))
            .max()
            .filter(|(key, _)| *key > mine)
            .map(|(_, id)| id);
        let adopted = best
            .and_then(|id| self.candidate.get(&id))
            .map(|p| self.adopted_log(p));
        let known_decided = self
            .candidate
            .values()
            .map(|p| p.decided)
            .fold(self.decided, Slot::max);
        let (log, base) = match &adopted {
            Some((log, snap, _)) => (
                log,
                snap.as_ref().map_or(self.base_members(), |s| &s.members),
            ),
            None => (&self.log, self.base_members()),
        };
        let from = known_decided.min(log.len());
        let needed = std::iter::once(members_at(log, base, from)).chain(
            log.configs_from(from)
                .filter(|(c, _)| *c < log.len())
                .map(|(_, m)| m),
        );
        let mut short = false;
        let mut to_ask = BTreeSet::new();
        for m in needed {
            let votes = m
                .ids()
                .filter(|id| *id == self.cfg.id || self.candidate.contains_key(id))
                .count();
            if votes < m.quorum() {
                short = true;
                to_ask.extend(m.ids());
            }
        }
        if short {
            self.ask_for_promises(to_ask);
            return;
        }
        let mut changed_from = self.log.len();
        if let Some((log, snap, cut)) = adopted {
            if let Some(snap) = snap {
                self.install_snapshot(snap);
            }
            self.log = log;
            changed_from = cut;
        }
        let promisers: Vec<(NodeId, Slot)> = self
            .candidate
            .iter()
            .map(|(id, p)| (*id, p.decided))
            .collect();
        self.candidate.clear();
        tracing::debug!(node = self.cfg.id, %ballot, log = self.log.len(), "elected leader");
        self.role = Role::Leader;
        self.leader = Some(ballot);
        self.accepted_round = ballot;
        // Slots below what a promiser knew decided are in the adopted log (it holds every
        // chosen entry) and decided.
        self.decided = self.decided.max(known_decided.min(self.log.len()));
        let noop_slot = if self.may_append() {
            let slot = self.log.len();
            if slot == 0 {
                // A new cluster: its first entry records the membership it started with,
                // so that every later slot's membership is in the log or a snapshot.
                self.log.push(Entry::Config(self.initial.clone()));
            } else {
                self.log.push(Entry::Noop);
            }
            slot
        } else {
            // The log ends with an undecided membership entry: nothing may follow it until
            // it is decided, in this ballot, which also serves as the new leader's mark.
            self.log.len() - 1
        };
        self.persist.accepted_round = Some(ballot);
        self.persist_log_from(changed_from);
        self.actions.push_back((
            self.persist_id,
            Action::SelfAccepted(ballot, self.log.len()),
        ));
        self.leading = Some(LeaderState {
            followers: BTreeMap::new(),
            self_acked: 0,
            seq: 0,
            sent: VecDeque::new(),
            noop_slot,
            lease_until: 0,
            last_heartbeat: self.now,
            reads: Vec::new(),
            transfer: None,
            eager: Vec::new(),
            notify: BTreeMap::new(),
        });
        self.update_followers();
        for (id, decided) in promisers {
            self.sync_follower(id, decided);
        }
    }

    /// Keeps the leader's followers in step with the memberships that matter: the decided
    /// one and any newer one in the log. A replica that leaves is sent what was decided
    /// (so it learns it left and stays quiet) and then forgotten.
    fn update_followers(&mut self) {
        let want = self.known_replicas();
        let ballot = self.accepted_round;
        let decided = self.decided;
        let now = self.now;
        let me = self.cfg.id;
        let Some(l) = self.leading.as_mut() else {
            return;
        };
        for &id in want.iter().filter(|id| **id != me) {
            l.followers.entry(id).or_insert(Progress {
                heard: now,
                ..Progress::default()
            });
        }
        let gone: Vec<NodeId> = l
            .followers
            .keys()
            .copied()
            .filter(|id| !want.contains(id))
            .collect();
        for id in gone {
            let Some(mut p) = l.followers.remove(&id) else {
                continue;
            };
            if p.synced && p.next >= self.log.offset() {
                let m = append_for(&self.log, &mut p, ballot, decided, l.seq);
                self.ready.send.push((id, m));
            }
        }
    }

    fn sync_follower(&mut self, id: NodeId, decided: Slot) {
        let ballot = self.accepted_round;
        let log_len = self.log.len();
        let mut from = decided.min(log_len);
        // A follower behind the start of this log gets the snapshot first.
        let snapshot = if from < self.log.offset() {
            from = self.log.offset();
            self.snapshot.clone()
        } else {
            None
        };
        let Some(l) = self.leading.as_mut() else {
            return;
        };
        let now = self.now;
        let Some(p) = l.followers.get_mut(&id) else {
            return;
        };
        *p = Progress {
            synced: true,
            acked: 0,
            next: log_len,
            acked_seq: 0,
            heard: now,
        };
        let msg = Message::AcceptSync {
            ballot,
            snapshot,
            from,
            entries: self.log.from(from),
            decided: self.decided,
            seq: l.seq,
        };
        self.ready.send.push((id, msg));
    }

    // ---- phase 2 ----

    fn heard_leader(&mut self, ballot: Ballot) {
        self.leader = Some(ballot);
        self.lease_promise_until = self.now + self.cfg.lease_ticks;
        self.reset_election_timer();
    }

    fn refuse(&mut self, to: NodeId, ballot: Ballot) {
        self.ready.send.push((
            to,
            Message::Nack {
                ballot,
                promised: self.promised,
            },
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn on_accept_sync(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        snapshot: Option<Snapshot>,
        start: Slot,
        entries: Vec<Entry>,
        decided: Slot,
        seq: u64,
    ) {
        if ballot < self.promised || (ballot > self.promised && self.bound_by_lease(ballot)) {
            self.refuse(from, ballot);
            return;
        }
        let installs = snapshot
            .as_ref()
            .is_some_and(|s| s.upto > self.log.offset());
        if start > self.log.len() && !installs {
            // Cannot happen for a sync built from this replica's promise; ask again.
            self.ready.send.push((from, Message::NeedSync { ballot }));
            return;
        }
        if self.role != Role::Follower {
            self.step_down(None);
        }
        if ballot > self.promised {
            self.promised = ballot;
            self.persist.promised = Some(ballot);
        }
        if let Some(snap) = snapshot.filter(|s| s.upto > self.log.offset()) {
            self.install_snapshot(snap);
        }
        if self.accepted_round == ballot {
            // Synced in this ballot already (a duplicate or late promise made the leader
            // sync again): this log is a prefix of the leader's, so only the tail is new.
            // Rewriting the rest would put accepted entries at risk for nothing.
            let len = self.log.len();
            let skip = len.saturating_sub(start) as usize;
            if entries.len() > skip {
                let new: Vec<Entry> = entries.into_iter().skip(skip).collect();
                self.log.extend(new.iter().cloned());
                match &mut self.persist.append {
                    Some((_, pending)) => pending.extend(new),
                    None => self.persist.append = Some((len, new)),
                }
            }
        } else {
            self.accepted_round = ballot;
            self.persist.accepted_round = Some(ballot);
            self.log.write_at(start, &entries);
            self.persist_log_from(start);
        }
        // `start` is at most what this replica had decided when it promised; the leader's
        // log holds those same entries (every chosen entry is in it), so nothing decided
        // here changes.
        let len = self.log.len();
        self.decided = self.decided.max(decided.min(len));
        self.heard_leader(ballot);
        self.ready.after_persist.push((
            from,
            Message::Accepted {
                ballot,
                log_len: self.log.len(),
                seq,
                gap: false,
            },
        ));
    }

    fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        start: Slot,
        entries: Vec<Entry>,
        decided: Slot,
        seq: u64,
    ) {
        if ballot < self.promised {
            self.refuse(from, ballot);
            return;
        }
        if ballot > self.promised || self.accepted_round != ballot {
            if self.bound_by_lease(ballot) {
                self.refuse(from, ballot);
            } else {
                self.ready.send.push((from, Message::NeedSync { ballot }));
            }
            return;
        }
        self.heard_leader(ballot);
        let len = self.log.len();
        if start > len {
            self.ready.send.push((
                from,
                Message::Accepted {
                    ballot,
                    log_len: len,
                    seq,
                    gap: true,
                },
            ));
            return;
        }
        // Within one ballot the leader never rewrites a slot, so an overlap repeats what
        // this log holds: append only what is new.
        let skip = (len - start) as usize;
        if entries.len() > skip {
            let new: Vec<Entry> = entries.into_iter().skip(skip).collect();
            self.log.extend(new.iter().cloned());
            match &mut self.persist.append {
                // The batch already rewrites the log up to `len`: extend it.
                Some((_, pending)) => pending.extend(new),
                None => self.persist.append = Some((len, new)),
            }
        }
        let new_decided = decided.min(self.log.len());
        if new_decided > self.decided {
            self.decided = new_decided;
        }
        self.ready.after_persist.push((
            from,
            Message::Accepted {
                ballot,
                log_len: self.log.len(),
                seq,
                gap: false,
            },
        ));
    }

    fn on_accepted(&mut self, from: NodeId, ballot: Ballot, log_len: Slot, seq: u64, gap: bool) {
        if self.role != Role::Leader || self.accepted_round != ballot {
            return;
        }
        let now = self.now;
        let Some(l) = self.leading.as_mut() else {
            return;
        };
        let Some(p) = l.followers.get_mut(&from) else {
            return;
        };
        if !p.synced {
            return;
        }
        p.heard = now;
        p.acked_seq = p.acked_seq.max(seq);
        if gap {
            p.next = p.next.min(log_len);
        } else {
            p.acked = p.acked.max(log_len);
        }
        self.advance_decided();
        self.advance_reads_and_lease();
        self.check_transfer();
    }

    fn on_nack(&mut self, ballot: Ballot, promised: Ballot) {
        let mine = matches!(self.role, Role::Candidate | Role::Leader) && self.promised == ballot;
        if mine && promised > ballot {
            tracing::debug!(node = self.cfg.id, %ballot, %promised, "outvoted; stepping down");
            self.step_down(None);
        }
    }

    fn on_need_sync(&mut self, from: NodeId, ballot: Ballot) {
        let follows = self
            .leading
            .as_ref()
            .is_some_and(|l| l.followers.contains_key(&from));
        if self.role == Role::Leader && self.accepted_round == ballot && follows {
            self.ready.send.push((
                from,
                Message::Prepare {
                    ballot,
                    decided: self.decided,
                    accepted_round: self.accepted_round,
                    log_len: self.log.len(),
                },
            ));
        }
    }

    fn flush_proposals(&mut self) {
        // Proposals wait while a membership change is undecided.
        if self.role != Role::Leader || self.pending.is_empty() || !self.may_append() {
            return;
        }
        while !self.pending.is_empty() {
            let n = self.pending.len().min(self.cfg.max_batch);
            let start = self.log.len();
            let batch: Vec<Entry> = self.pending.drain(..n).map(Entry::Command).collect();
            self.log.extend(batch.iter().cloned());
            match &mut self.persist.append {
                Some((_, pending)) => pending.extend(batch),
                None => self.persist.append = Some((start, batch)),
            }
        }
        self.actions.push_back((
            self.persist_id,
            Action::SelfAccepted(self.accepted_round, self.log.len()),
        ));
        let len = self.log.len();
        if let Some(l) = self.leading.as_mut() {
            for f in self.forwarders.drain(..) {
                l.notify.insert(f, len);
            }
        }
        self.send_appends(Appends::Eager);
    }

    /// Tells each follower whose forwarded commands are now decided, at once.
    fn notify_forwarders(&mut self) {
        let decided = self.decided;
        let due: Vec<NodeId> = match self.leading.as_mut() {
            Some(l) => {
                let due: Vec<NodeId> = l
                    .notify
                    .iter()
                    .filter(|(_, s)| **s <= decided)
                    .map(|(id, _)| *id)
                    .collect();
                for id in &due {
                    l.notify.remove(id);
                }
                due
            }
            None => return,
        };
        for id in due {
            self.send_append_to(id);
        }
    }

    /// Sends one synced follower what it lacks and the decided point (an empty append
    /// if it lacks nothing).
    fn send_append_to(&mut self, id: NodeId) {
        let (ballot, decided) = (self.accepted_round, self.decided);
        let offset = self.log.offset();
        let Some(l) = self.leading.as_mut() else {
            return;
        };
        let seq = l.seq;
        let Some(p) = l
            .followers
            .get_mut(&id)
            .filter(|p| p.synced && p.next >= offset)
        else {
            return;
        };
        let m = append_for(&self.log, p, ballot, decided, seq);
        self.ready.send.push((id, m));
    }

    /// Picks the followers that get new entries at once (see `Config::thrifty`): just
    /// enough responsive ones, lowest ids first so the choice stays put, to make a
    /// majority with the leader. Everyone while a membership change is undecided, or
    /// when too few followers answer.
    fn choose_eager(&mut self) {
        let members = self.config_at(self.decided);
        let changing = self.log.configs_from(self.decided).next().is_some();
        let need = members
            .quorum()
            .saturating_sub(usize::from(members.contains(self.cfg.id)));
        let fresh = 2 * self.cfg.heartbeat_ticks;
        let now = self.now;
        let Some(l) = self.leading.as_ref() else {
            return;
        };
        let mut eager: Vec<NodeId> = if self.cfg.thrifty && !changing {
            l.followers
                .iter()
                .filter(|(id, p)| p.synced && members.contains(**id) && now <= p.heard + fresh)
                .map(|(id, _)| *id)
                .take(need)
                .collect()
        } else {
            Vec::new()
        };
        if eager.len() < need {
            eager.clear();
        }
        if let Some(l) = self.leading.as_mut() {
            l.eager = eager;
        }
    }

    /// Sends synced followers what they have not been sent (see [`Appends`]).
    fn send_appends(&mut self, mode: Appends) {
        let heartbeat = mode == Appends::Heartbeat;
        let ballot = self.accepted_round;
        let decided = self.decided;
        let len = self.log.len();
        let offset = self.log.offset();
        let mut behind = Vec::new();
        let Some(l) = self.leading.as_mut() else {
            return;
        };
        for (&id, p) in l.followers.iter_mut() {
            if p.synced && p.next < offset {
                // What it needs was compacted away: sync it from the snapshot.
                behind.push((id, p.next));
                continue;
            }
            if !p.synced {
                if heartbeat {
                    // Tells a replica that missed the election who leads; it asks to sync.
                    self.ready.send.push((
                        id,
                        Message::Accept {
                            ballot,
                            from: len,
                            entries: Vec::new(),
                            decided: 0,
                            seq: l.seq,
                        },
                    ));
                }
                continue;
            }
            let lazy = mode == Appends::Eager && !l.eager.is_empty() && !l.eager.contains(&id);
            if (p.next < len && !lazy) || heartbeat {
                let m = append_for(&self.log, p, ballot, decided, l.seq);
                self.ready.send.push((id, m));
            }
        }
        for (id, next) in behind {
            self.sync_follower(id, next);
        }
    }

    fn heartbeat(&mut self) {
        let now = self.now;
        if let Some(l) = self.leading.as_mut() {
            l.seq += 1;
            l.sent.push_back((l.seq, now));
            l.last_heartbeat = now;
            while l.sent.len() > 64 {
                l.sent.pop_front();
            }
        }
        // The leader is bound by its own lease like any follower.
        self.lease_promise_until = now + self.cfg.lease_ticks;
        self.choose_eager();
        self.send_appends(Appends::Heartbeat);
        self.advance_reads_and_lease();
    }

    /// Decides what a majority of the governing membership has accepted, one membership
    /// at a time: slots up to and including a membership entry are decided by the
    /// membership before it, the slots after by the new one.
    fn advance_decided(&mut self) {
        let Some(l) = self.leading.as_ref() else {
            return;
        };
        let len = self.log.len();
        let mut d = self.decided;
        loop {
            let m = self.config_at(d);
            let end = self.log.configs_from(d).next().map_or(len, |(c, _)| c + 1);
            let acked = |id: NodeId| l.followers.get(&id).filter(|p| p.synced).map(|p| p.acked);
            let Some(chosen) = quorum_value(m, self.cfg.id, l.self_acked, acked) else {
                break;
            };
            let chosen = chosen.min(end);
            if chosen <= d {
                break;
            }
            d = chosen;
            if d < end || end >= len {
                break;
            }
        }
        if d > self.decided {
            let had_reads = !l.reads.is_empty();
            let crossed_config = self.log.configs_from(self.decided).any(|(c, _)| c < d);
            self.decided = d;
            self.notify_forwarders();
            if crossed_config {
                tracing::info!(node = self.cfg.id, members = %self.members(), "membership change decided");
                self.update_followers();
                self.check_removed();
            }
            if had_reads {
                self.advance_reads_and_lease();
            }
        }
    }

    /// The largest value that a majority of *every* membership still in play has
    /// reached (the decided one and any newer one): leases and reads must hold whichever
    /// membership the next leader is elected under.
    fn active_quorum_value(&self, own: u64, other: impl Fn(NodeId) -> Option<u64>) -> Option<u64> {
        let mut out: Option<u64> = None;
        for m in self.configs_from(self.decided) {
            let v = quorum_value(m, self.cfg.id, own, &other)?;
            out = Some(out.map_or(v, |o| o.min(v)));
        }
        out
    }

    /// The newest heartbeat a majority has answered: it extends the lease and releases
    /// reads waiting for it.
    fn advance_reads_and_lease(&mut self) {
        let lease = self.cfg.leader_lease_ticks();
        let decided = self.decided;
        let Some(quorum_seq) = self.leading.as_ref().and_then(|l| {
            self.active_quorum_value(l.seq, |id| {
                l.followers
                    .get(&id)
                    .filter(|p| p.synced)
                    .map(|p| p.acked_seq)
            })
        }) else {
            return;
        };
        let Some(l) = self.leading.as_mut() else {
            return;
        };
        if let Some(&(_, sent)) = l.sent.iter().find(|(s, _)| *s == quorum_seq) {
            l.lease_until = l.lease_until.max(sent + lease);
        }
        if decided <= l.noop_slot {
            return;
        }
        let mut i = 0;
        while i < l.reads.len() {
            if l.reads[i].1 <= quorum_seq {
                let (id, _) = l.reads.swap_remove(i);
                self.ready.reads.push(ReadGrant {
                    id,
                    index: decided,
                    by_lease: false,
                });
            } else {
                i += 1;
            }
        }
    }

    fn majority_heard(&self, l: &LeaderState) -> u64 {
        // Unsynced followers count too: hearing from a replica is what matters here.
        self.active_quorum_value(self.now, |id| l.followers.get(&id).map(|p| p.heard))
            .unwrap_or(0)
    }

    fn fail_reads(&mut self) {
        if let Some(l) = self.leading.as_mut() {
            for (id, _) in l.reads.drain(..) {
                self.ready.reads_refused.push(id);
            }
        }
    }

    fn step_down(&mut self, leader: Option<Ballot>) {
        self.fail_reads();
        self.role = Role::Follower;
        self.leading = None;
        self.leader = leader;
        self.candidate.clear();
        self.pending.clear();
        self.forwarders.clear();
        self.reset_election_timer();
    }

    /// Replaces the log before `snap.upto` with the snapshot (a peer's, this replica lagged).
    fn install_snapshot(&mut self, snap: Snapshot) {
        self.log.compact(snap.upto);
        self.decided = self.decided.max(snap.upto);
        self.persist.snapshot = Some(snap.clone());
        self.snapshot = Some(snap);
    }

    /// Records that the log changed from `slot` on: the batch cuts there and rewrites the
    /// rest (merged with whatever the batch already holds).
    fn persist_log_from(&mut self, slot: Slot) {
        let mut from = slot;
        if let Some(t) = self.persist.truncate {
            from = from.min(t);
        }
        if let Some((a, _)) = &self.persist.append {
            from = from.min(*a);
        }
        let from = from.min(self.log.len()).max(self.log.offset());
        self.persist.truncate = Some(from);
        self.persist.append = Some((from, self.log.from(from)));
    }

    fn reset_election_timer(&mut self) {
        let e = self.cfg.election_ticks;
        self.election_deadline = self.now + self.rng.range(e, 2 * e);
    }
}

/// The append that brings a follower from what it was last sent to the end of `log` (an
/// empty one is a heartbeat); it is then counted as sent everything.
fn append_for(log: &Log, p: &mut Progress, ballot: Ballot, decided: Slot, seq: u64) -> Message {
    let len = log.len();
    let from = p.next.min(len);
    p.next = len;
    Message::Accept {
        ballot,
        from,
        entries: log.from(from),
        decided,
        seq,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_value_is_what_a_majority_of_members_reached() {
        let vals: BTreeMap<NodeId, u64> = [(2, 5), (3, 1), (4, 9), (5, 2)].into();
        let other = |id: NodeId| vals.get(&id).copied();
        assert_eq!(
            quorum_value(&Membership::of([1, 2, 3]), 1, 3, other),
            Some(3)
        );
        assert_eq!(quorum_value(&Membership::of(1..=5), 1, 3, other), Some(3));
        assert_eq!(quorum_value(&Membership::of([1]), 1, 7, other), Some(7));
        // Non-members' values and the leader's own, when it is not a member, do not count.
        assert_eq!(
            quorum_value(&Membership::of([2, 3, 4]), 1, 100, other),
            Some(5)
        );
        assert_eq!(quorum_value(&Membership::of([1, 6, 7]), 1, 7, other), None);
    }

    /// A cluster with an instant, lossless network and instant storage.
    struct Cluster {
        nodes: Vec<Paxos>,
        disks: Vec<HardState>,
        decided: Vec<Vec<Entry>>,
        grants: Vec<Vec<ReadGrant>>,
        refused: Vec<Vec<u64>>,
        cut: Vec<u64>,
    }

    impl Cluster {
        fn new(n: u64) -> Cluster {
            Cluster::with_spares(n, 0)
        }

        /// `n` founding members and `spares` replicas waiting to be added.
        fn with_spares(n: u64, spares: u64) -> Cluster {
            let nodes: Vec<Paxos> = (1..=n + spares)
                .map(|id| {
                    let peers = (1..=n).filter(|p| *p != id).collect();
                    let mut cfg = Config::new(id, peers);
                    cfg.join = id > n;
                    Paxos::new(cfg).unwrap()
                })
                .collect();
            let k = nodes.len();
            Cluster {
                nodes,
                disks: vec![HardState::default(); k],
                decided: vec![Vec::new(); k],
                grants: vec![Vec::new(); k],
                refused: vec![Vec::new(); k],
                cut: Vec::new(),
            }
        }

        fn settle(&mut self) {
            loop {
                let mut msgs = Vec::new();
                let mut work = false;
                for (i, n) in self.nodes.iter_mut().enumerate() {
                    let r = n.take_ready();
                    if r.is_empty() {
                        continue;
                    }
                    work = true;
                    if let Some(p) = &r.persist {
                        self.disks[i].apply(p);
                        n.on_persisted(p.id);
                    }
                    self.decided[i].extend(r.decided);
                    self.grants[i].extend(r.reads);
                    self.refused[i].extend(r.reads_refused);
                    for (to, m) in r.send.into_iter().chain(r.after_persist) {
                        msgs.push((n.id(), to, m));
                    }
                }
                if !work {
                    return;
                }
                for (from, to, m) in msgs {
                    if self.cut.contains(&from) || self.cut.contains(&to) {
                        continue;
                    }
                    self.nodes[(to - 1) as usize].step(from, m);
                }
            }
        }

        fn ticks(&mut self, k: u64) {
            for _ in 0..k {
                for n in self.nodes.iter_mut() {
                    n.tick();
                }
                self.settle();
            }
        }

        fn leader(&self) -> Option<usize> {
            self.nodes.iter().position(|n| n.role() == Role::Leader)
        }
    }

    fn cmd(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_single_replica_elects_itself_and_decides() {
        let mut c = Cluster::new(1);
        c.ticks(200);
        assert_eq!(c.leader(), Some(0));
        c.nodes[0].propose(cmd("a")).unwrap();
        c.settle();
        assert_eq!(
            c.decided[0],
            vec![Entry::Config(Membership::of([1])), Entry::Command(cmd("a"))]
        );
    }

    #[test]
    fn three_replicas_decide_the_same_log_and_followers_forward() {
        let mut c = Cluster::new(3);
        c.ticks(200);
        let l = c.leader().expect("a leader");
        let f = (l + 1) % 3;
        c.nodes[l].propose(cmd("from leader")).unwrap();
        c.nodes[f].propose(cmd("from follower")).unwrap();
        c.settle();
        c.ticks(10);
        for i in 0..3 {
            assert_eq!(c.decided[i], c.decided[l], "replica {i}");
            assert_eq!(c.disks[i].log.len(), c.decided[l].len() as Slot);
        }
        assert!(c.decided[l].contains(&Entry::Command(cmd("from follower"))));
    }

    #[test]
    fn a_forwarding_follower_learns_the_decision_without_waiting_for_a_heartbeat() {
        let mut c = Cluster::new(5);
        c.ticks(200);
        let l = c.leader().expect("a leader");
        for f in (0..5).filter(|&f| f != l) {
            let command = cmd(&format!("from {f}"));
            c.nodes[f].propose(command.clone()).unwrap();
            // No ticks: only the messages the proposal itself causes.
            c.settle();
            assert!(
                c.decided[f].contains(&Entry::Command(command)),
                "replica {} (thrifty: maybe not an eager follower)",
                f + 1
            );
        }
    }

    #[test]
    fn reads_at_the_leader_are_granted_and_followers_refuse() {
        let mut c = Cluster::new(3);
        c.ticks(200);
        let l = c.leader().expect("a leader");
        assert!(
            c.nodes[l].has_lease(),
            "heartbeats answered: the leader holds a lease"
        );
        c.nodes[l].read(7);
        c.nodes[(l + 1) % 3].read(8);
        c.settle();
        assert_eq!(c.grants[l].len(), 1);
        assert!(c.grants[l][0].by_lease);
        assert_eq!(c.refused[(l + 1) % 3], vec![8]);
    }

    #[test]
    fn an_isolated_leader_loses_its_lease_before_another_is_elected() {
        let mut c = Cluster::new(3);
        c.ticks(200);
        let old = c.leader().expect("a leader");
        c.cut = vec![old as u64 + 1];
        let mut new_leader_at = None;
        for t in 0..400 {
            c.ticks(1);
            let leaders: Vec<usize> = (0..3).filter(|&i| c.nodes[i].has_lease()).collect();
            assert!(leaders.len() <= 1, "two leases at tick {t}: {leaders:?}");
            if let Some(n) = c.leader().filter(|&n| n != old) {
                if c.nodes[n].role() == Role::Leader && new_leader_at.is_none() {
                    new_leader_at = Some(t);
                    assert!(!c.nodes[old].has_lease());
                }
            }
        }
        assert!(new_leader_at.is_some(), "the majority side elects a leader");
        assert_ne!(
            c.nodes[old].role(),
            Role::Leader,
            "the isolated leader steps down"
        );
    }

    #[test]
    fn a_restarted_replica_keeps_its_log_and_refuses_candidates_for_a_lease() {
        let mut c = Cluster::new(3);
        c.ticks(200);
        let l = c.leader().expect("a leader");
        c.nodes[l].propose(cmd("x")).unwrap();
        c.settle();
        let f = (l + 1) % 3;
        let cfg = Config::new(
            f as u64 + 1,
            vec![1, 2, 3]
                .into_iter()
                .filter(|p| *p != f as u64 + 1)
                .collect(),
        );
        let restarted = Paxos::restore(cfg, c.disks[f].clone()).unwrap();
        assert_eq!(restarted.log(), c.nodes[l].log());
        let mut r = restarted;
        let b = Ballot::new(99, (l as u64) + 1);
        r.step(
            b.node,
            Message::Prepare {
                ballot: b,
                decided: 0,
                accepted_round: Ballot::default(),
                log_len: 0,
            },
        );
        let out = r.take_ready();
        assert!(
            matches!(out.send.as_slice(), [(_, Message::Nack { .. })]),
            "{out:?}"
        );
    }

    #[test]
    fn leadership_is_handed_over_without_two_leases() {
        let mut c = Cluster::new(3);
        c.ticks(200);
        let old = c.leader().expect("a leader");
        let to = ((old + 1) % 3) as u64 + 1;
        assert_eq!(
            c.nodes[old].transfer_leadership(42),
            Err(TransferError::UnknownNode(42))
        );
        c.nodes[old].transfer_leadership(to).unwrap();
        assert!(c.nodes[old].propose(cmd("during")).is_err());
        c.settle();
        for t in 0..20 {
            let leases: Vec<usize> = (0..3).filter(|&i| c.nodes[i].has_lease()).collect();
            assert!(leases.len() <= 1, "tick {t}: {leases:?}");
            c.ticks(1);
        }
        assert_eq!(
            c.leader(),
            Some((to - 1) as usize),
            "well before an election timeout"
        );
        let l = (to - 1) as usize;
        c.nodes[l].propose(cmd("after")).unwrap();
        c.settle();
        c.ticks(10);
        assert!(c.decided[old].contains(&Entry::Command(cmd("after"))));
    }

    fn commands(entries: &[Entry]) -> Vec<Bytes> {
        entries
            .iter()
            .filter_map(|e| match e {
                Entry::Command(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_replica_is_added_then_the_leader_removes_itself() {
        let mut c = Cluster::with_spares(3, 1);
        c.ticks(200);
        let l = c.leader().expect("a leader");
        assert_eq!(c.nodes[l].members(), &Membership::of([1, 2, 3]));
        assert_ne!(c.nodes[3].role(), Role::Leader, "a spare never stands");
        c.nodes[l].propose(cmd("before")).unwrap();
        let slot = c.nodes[l]
            .propose_membership(MembershipChange::Add {
                id: 4,
                addr: "n4".into(),
            })
            .unwrap();
        assert_eq!(
            c.nodes[l].propose_membership(MembershipChange::Remove(2)),
            Err(MembershipError::InProgress),
            "one change at a time"
        );
        c.nodes[l].propose(cmd("after")).unwrap();
        c.settle();
        c.ticks(20);
        let four = Membership::of([1, 2, 3]).with(4, "n4");
        for i in 0..4 {
            assert_eq!(c.nodes[i].members(), &four, "replica {}", i + 1);
            assert_eq!(commands(&c.decided[i]), vec![cmd("before"), cmd("after")]);
        }
        assert_eq!(c.decided[l][slot as usize], Entry::Config(four.clone()));
        // With 4 members a majority is 3: two replicas down stop progress.
        c.cut = vec![if l == 0 { 2 } else { 1 }, 4];
        c.nodes[l].propose(cmd("needs three")).unwrap();
        c.settle();
        assert!(!commands(&c.decided[l]).contains(&cmd("needs three")));
        c.cut.clear();
        c.ticks(20);
        assert!(commands(&c.decided[3]).contains(&cmd("needs three")));

        // The leader removes itself, hands over, and then never stands again.
        let l = c.leader().expect("a leader");
        let me = l as u64 + 1;
        c.nodes[l]
            .propose_membership(MembershipChange::Remove(me))
            .unwrap();
        c.settle();
        c.ticks(30);
        let nl = c.leader().expect("a new leader");
        assert_ne!(nl, l);
        assert!(!c.nodes[l].members().contains(me));
        c.nodes[nl].propose(cmd("without")).unwrap();
        c.settle();
        c.ticks(500);
        assert_ne!(c.nodes[l].role(), Role::Leader);
        assert_ne!(c.nodes[l].role(), Role::Candidate);
        for i in (0..4).filter(|&i| i != l) {
            assert!(commands(&c.decided[i]).contains(&cmd("without")));
            assert_eq!(c.nodes[i].members().len(), 3);
        }
    }

    #[test]
    fn membership_changes_are_checked() {
        let mut c = Cluster::new(1);
        c.ticks(200);
        assert_eq!(
            c.nodes[0].propose_membership(MembershipChange::Remove(1)),
            Err(MembershipError::LastMember)
        );
        assert_eq!(
            c.nodes[0].propose_membership(MembershipChange::Remove(5)),
            Err(MembershipError::NotMember(5))
        );
        assert_eq!(
            c.nodes[0].propose_membership(MembershipChange::Add {
                id: 1,
                addr: String::new()
            }),
            Err(MembershipError::AlreadyMember(1))
        );
        let mut c = Cluster::new(3);
        c.ticks(200);
        let f = (c.leader().expect("a leader") + 1) % 3;
        assert_eq!(
            c.nodes[f].propose_membership(MembershipChange::Remove(1)),
            Err(MembershipError::NotLeader)
        );
    }

    #[test]
    fn a_stranger_cannot_win_promises() {
        let mut c = Cluster::new(3);
        // Past the boot lease, before an election timeout: free to promise.
        for _ in 0..35 {
            c.nodes[0].tick();
        }
        let prepare = |node| Message::Prepare {
            ballot: Ballot::new(1000, node),
            decided: 0,
            accepted_round: Ballot::default(),
            log_len: 0,
        };
        c.nodes[0].step(42, prepare(42));
        let out = c.nodes[0].take_ready();
        assert!(
            matches!(out.send.as_slice(), [(42, Message::Nack { .. })]),
            "{out:?}"
        );
        assert_eq!(c.nodes[0].promised(), Ballot::default());
        c.nodes[0].step(2, prepare(2));
        let out = c.nodes[0].take_ready();
        assert!(
            matches!(out.after_persist.as_slice(), [(2, Message::Promise { .. })]),
            "a member is promised: {out:?}"
        );
    }
}
