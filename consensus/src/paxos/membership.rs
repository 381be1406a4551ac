//! Membership changes, one replica at a time, and handing leadership over.

use super::*;

impl Paxos {
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

    pub(super) fn check_transfer(&mut self) {
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
    pub(super) fn check_removed(&mut self) {
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
}
