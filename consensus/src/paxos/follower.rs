//! Acceptors and followers: accepting the leader's entries (answering only after they are
//! durable), installing snapshots, and stepping down when a higher ballot appears.

use super::*;

impl Paxos {
    pub(super) fn heard_leader(&mut self, ballot: Ballot) {
        self.leader = Some(ballot);
        self.lease_promise_until = self.now + self.cfg.lease_ticks;
        self.reset_election_timer();
    }

    pub(super) fn refuse(&mut self, to: NodeId, ballot: Ballot) {
        self.ready.send.push((
            to,
            Message::Nack {
                ballot,
                promised: self.promised,
            },
        ));
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_accept_sync(
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

    pub(super) fn on_accept(
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

    pub(super) fn step_down(&mut self, leader: Option<Ballot>) {
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
    pub(super) fn install_snapshot(&mut self, snap: Snapshot) {
        self.log.compact(snap.upto);
        self.decided = self.decided.max(snap.upto);
        self.persist.snapshot = Some(snap.clone());
        self.snapshot = Some(snap);
    }

    /// Records that the log changed from `slot` on: the batch cuts there and rewrites the
    /// rest (merged with whatever the batch already holds).
    pub(super) fn persist_log_from(&mut self, slot: Slot) {
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
}
