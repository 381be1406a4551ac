//! Checks run as the simulation goes (`docs/DESIGN.md`, "Invariants the tests check"): one
//! valid lease at a time, acknowledged proposals never lost, replicas' logs agree.

use super::*;

impl<W: Workload> Sim<W> {
    pub(super) fn check_leases(&self) -> Result<(), String> {
        let holders: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| n.replica.as_ref().is_some_and(|r| r.core().has_lease()))
            .map(|n| n.id)
            .collect();
        if holders.len() > 1 {
            return Err(format!(
                "at {} µs replicas {holders:?} all hold a valid lease",
                self.now
            ));
        }
        Ok(())
    }

    pub(super) fn check_acked_proposals(&self) -> Result<(), String> {
        let mut decided = std::collections::HashSet::new();
        for e in self.agreement.chosen() {
            if let Entry::Command(b) = e {
                if b.len() >= 16 {
                    let client = u64::from_be_bytes(b[0..8].try_into().unwrap_or([0; 8]));
                    let seq = u64::from_be_bytes(b[8..16].try_into().unwrap_or([0; 8]));
                    decided.insert((client, seq));
                }
            }
        }
        for id in &self.acked_proposals {
            if !decided.contains(id) {
                return Err(format!(
                    "acknowledged request {id:?} is not in the decided log"
                ));
            }
        }
        Ok(())
    }

    /// Replicas that applied the whole decided log hold the same application state
    /// (whether they got there entry by entry or from a snapshot).
    pub(super) fn check_replicas_agree(&self) -> Result<(), String> {
        let target = self.agreement.chosen().len() as u64;
        let mut first: Option<(NodeId, &W::Sm)> = None;
        for n in &self.nodes {
            let Some(r) = n.replica.as_ref() else {
                continue;
            };
            if r.core().decided() < target {
                continue;
            }
            match first {
                None => first = Some((n.id, r.state_machine())),
                Some((id, kv)) if kv != r.state_machine() => {
                    return Err(format!(
                        "replicas {id} and {} applied {target} entries into different states",
                        n.id
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
