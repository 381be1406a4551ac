//! Faults the simulator injects: drops, partitions, crashes and restarts from durable
//! state, torn tails, clock drift, membership changes.

use super::*;

impl<W: Workload> Sim<W> {
    pub(super) fn inject_fault(&mut self) {
        let n = self.nodes.len();
        let choice = match self.rng.range(0, 12) {
            7 | 8 => 5,
            c => c,
        };
        match choice {
            10 | 11 if self.cfg.membership => self.change_membership(),
            0 if self.cfg.crashes => {
                let i = self.rng.range(0, n as u64) as usize;
                if self.nodes[i].replica.is_some() {
                    self.crash(i);
                    let back = self.rng.range(20_000, 400_000);
                    self.schedule(back, Event::Restart(i));
                } else {
                    self.restart(i);
                }
            }
            1 if self.cfg.crashes => {
                // Crash the leader, if there is one.
                if let Some(i) = self.leader_index() {
                    self.crash(i);
                }
            }
            2 if self.cfg.partitions => {
                // Isolate the leader.
                if let Some(i) = self.leader_index() {
                    for j in 0..n {
                        if j != i {
                            self.blocked.insert((i, j));
                            self.blocked.insert((j, i));
                        }
                    }
                }
            }
            3 if self.cfg.partitions => {
                // A random split into two sides.
                self.blocked.clear();
                let side: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                for a in 0..n {
                    for b in 0..n {
                        if side[a] != side[b] {
                            self.blocked.insert((a, b));
                        }
                    }
                }
            }
            5 if self.cfg.crashes => {
                // A power loss: a majority goes down at once, losing unsynced writes.
                let mut order: Vec<usize> = (0..n).collect();
                for k in (1..n).rev() {
                    let j = self.rng.range(0, k as u64 + 1) as usize;
                    order.swap(k, j);
                }
                for &i in order.iter().take(n / 2 + 1) {
                    if self.nodes[i].replica.is_some() {
                        self.crash(i);
                        let back = self.rng.range(5_000, 100_000);
                        self.schedule(back, Event::Restart(i));
                    }
                }
            }
            9 => {
                // Hand leadership to a random follower.
                if let Some(i) = self.leader_index() {
                    let to = self.rng.range(1, n as u64 + 1);
                    if to != self.nodes[i].id {
                        if let Some(r) = self.nodes[i].replica.as_mut() {
                            if r.transfer_leadership(to).is_ok() {
                                self.report.transfers += 1;
                            }
                        }
                        // Its output goes out with the next event at that node.
                    }
                }
            }
            4 if self.cfg.partitions => {
                // A one-way link failure.
                let a = self.rng.range(0, n as u64) as usize;
                let b = self.rng.range(0, n as u64) as usize;
                if a != b {
                    self.blocked.insert((a, b));
                }
            }
            _ => {
                self.blocked.clear();
                for i in 0..n {
                    if self.nodes[i].replica.is_none() {
                        self.restart(i);
                    }
                }
            }
        }
    }

    /// The leader adds a spare that is not a member, or removes a member (itself
    /// included), keeping the size between one below the founding size (at least two)
    /// and every replica.
    pub(super) fn change_membership(&mut self) {
        let Some(i) = self.leader_index() else {
            return;
        };
        let Some(members) = self.nodes[i]
            .replica
            .as_ref()
            .map(|r| r.core().latest_members().clone())
        else {
            return;
        };
        let outside: Vec<NodeId> = self
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|id| !members.contains(*id))
            .collect();
        let min = self.cfg.nodes.saturating_sub(1).max(2);
        let add = !outside.is_empty() && (members.len() <= min || self.rng.chance(0.5));
        let change = if add {
            let id = outside[self.rng.range(0, outside.len() as u64) as usize];
            MembershipChange::Add {
                id,
                addr: format!("sim-{id}"),
            }
        } else if members.len() > min {
            let ids: Vec<NodeId> = members.ids().collect();
            MembershipChange::Remove(ids[self.rng.range(0, ids.len() as u64) as usize])
        } else {
            return;
        };
        let proposed = self.nodes[i]
            .replica
            .as_mut()
            .is_some_and(|r| r.propose_membership(change).is_ok());
        if proposed {
            self.report.membership_changes += 1;
        }
        // Its output goes out with the next event at that node.
    }

    pub(super) fn leader_index(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.replica.as_ref().is_some_and(|r| r.is_leader()))
    }

    pub(super) fn crash(&mut self, i: usize) {
        let keep = self.rng.range(0, self.nodes[i].unsynced.len() as u64 + 1) as usize;
        let node = &mut self.nodes[i];
        node.replica = None;
        node.incarnation += 1;
        node.held.clear();
        // Writes reach the disk in order: a prefix of the unsynced batches survives. The
        // next one may be on disk torn; storage recovery discards a batch without its
        // commit record (see `Persist`), so a torn batch counts as lost.
        let unsynced: Vec<Persist> = node.unsynced.drain(..).collect();
        for p in unsynced.iter().take(keep) {
            node.disk.apply(p);
        }
        node.last_persist_done = 0;
    }

    pub(super) fn restart(&mut self, i: usize) {
        let cfg = self.cfg.replica_config(self.nodes[i].id);
        let hard = self.nodes[i].disk.clone();
        match Replica::restore(cfg, hard, self.workload.state_machine()) {
            Ok(r) => {
                let r = r.with_snapshot_every(self.cfg.snapshot_every);
                let node = &mut self.nodes[i];
                node.replica = Some(r);
                node.incarnation += 1;
                let inc = node.incarnation;
                let p = node.period;
                self.schedule(p, Event::Tick(i, inc));
            }
            Err(e) => tracing::error!("restart of node {} failed: {e}", i + 1),
        }
    }
}
