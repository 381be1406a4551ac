//! Reads: granted at once under the leader lease, otherwise after a heartbeat round a
//! majority acknowledged (read index).

use super::*;

impl Paxos {
    /// Whether this replica is the leader and may serve reads under its lease right now.
    pub fn has_lease(&self) -> bool {
        match (&self.leading, self.role) {
            (Some(l), Role::Leader) => self.now < l.lease_until && self.decided > l.noop_slot,
            _ => false,
        }
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

    /// The newest heartbeat a majority has answered: it extends the lease and releases
    /// reads waiting for it.
    pub(super) fn advance_reads_and_lease(&mut self) {
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

    pub(super) fn majority_heard(&self, l: &LeaderState) -> u64 {
        // Unsynced followers count too: hearing from a replica is what matters here.
        self.active_quorum_value(self.now, |id| l.followers.get(&id).map(|p| p.heard))
            .unwrap_or(0)
    }

    pub(super) fn fail_reads(&mut self) {
        if let Some(l) = self.leading.as_mut() {
            for (id, _) in l.reads.drain(..) {
                self.ready.reads_refused.push(id);
            }
        }
    }
}
