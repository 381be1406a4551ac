//! The leader: batching and pipelining proposals, keeping followers' logs in step, and
//! deciding entries once a majority has accepted them.

use super::*;

impl Paxos {
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

    /// Keeps the leader's followers in step with the memberships that matter: the decided
    /// one and any newer one in the log. A replica that leaves is sent what was decided
    /// (so it learns it left and stays quiet) and then forgotten.
    pub(super) fn update_followers(&mut self) {
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

    pub(super) fn sync_follower(&mut self, id: NodeId, decided: Slot) {
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

    pub(super) fn on_accepted(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        log_len: Slot,
        seq: u64,
        gap: bool,
    ) {
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

    pub(super) fn on_nack(&mut self, ballot: Ballot, promised: Ballot) {
        let mine = matches!(self.role, Role::Candidate | Role::Leader) && self.promised == ballot;
        if mine && promised > ballot {
            tracing::debug!(node = self.cfg.id, %ballot, %promised, "outvoted; stepping down");
            self.step_down(None);
        }
    }

    pub(super) fn on_need_sync(&mut self, from: NodeId, ballot: Ballot) {
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

    pub(super) fn flush_proposals(&mut self) {
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
    pub(super) fn notify_forwarders(&mut self) {
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
    pub(super) fn send_append_to(&mut self, id: NodeId) {
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
    pub(super) fn choose_eager(&mut self) {
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
    pub(super) fn send_appends(&mut self, mode: Appends) {
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

    pub(super) fn heartbeat(&mut self) {
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
    pub(super) fn advance_decided(&mut self) {
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
    pub(super) fn active_quorum_value(
        &self,
        own: u64,
        other: impl Fn(NodeId) -> Option<u64>,
    ) -> Option<u64> {
        let mut out: Option<u64> = None;
        for m in self.configs_from(self.decided) {
            let v = quorum_value(m, self.cfg.id, own, &other)?;
            out = Some(out.map_or(v, |o| o.min(v)));
        }
        out
    }
}

/// The append that brings a follower from what it was last sent to the end of `log` (an
/// empty one is a heartbeat); it is then counted as sent everything.
pub(super) fn append_for(
    log: &Log,
    p: &mut Progress,
    ballot: Ballot,
    decided: Slot,
    seq: u64,
) -> Message {
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
