//! Phase 1: elections. A candidate takes a ballot above every round it has seen, asks
//! for promises, and with a majority adopts the log accepted in the highest round.

use super::*;

impl Paxos {
    pub(super) fn start_election(&mut self) {
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

    pub(super) fn ask_for_promises(&mut self, voters: BTreeSet<NodeId>) {
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
    pub(super) fn refuses_candidate(&self, candidate: NodeId) -> bool {
        let decided = self.members();
        !decided.is_empty()
            && !decided.contains(candidate)
            && !self.latest_members().contains(candidate)
    }

    pub(super) fn bound_by_lease(&self, ballot: Ballot) -> bool {
        self.now < self.lease_promise_until && self.leader != Some(ballot)
    }

    pub(super) fn on_prepare(
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

    pub(super) fn on_promise(&mut self, from: NodeId, ballot: Ballot, info: PromiseInfo) {
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
    pub(super) fn adopted_log(&self, p: &PromiseInfo) -> (Log, Option<Snapshot>, Slot) {
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
    pub(super) fn check_promises(&mut self) {
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

    pub(super) fn reset_election_timer(&mut self) {
        let e = self.cfg.election_ticks;
        self.election_deadline = self.now + self.rng.range(e, 2 * e);
    }
}
