//! Replica configuration, validated once by [`Config::validate`].

use crate::types::{Membership, NodeId};

/// How one replica runs. Times are in ticks of the replica's own clock; the driver decides
/// how long a tick is (the simulator: virtual time; TCP: a timer).
#[derive(Debug, Clone)]
pub struct Config {
    /// This replica.
    pub id: NodeId,
    /// The other members the cluster starts with (a replica that joins later lists the
    /// members it knows; see `join`).
    pub peers: Vec<NodeId>,
    /// This replica is not one of the members the cluster started with: it waits, without
    /// standing for election, until a leader adds it (see
    /// [`crate::Paxos::propose_membership`]) and its log says so.
    pub join: bool,
    /// A leader sends a heartbeat after this many ticks without one.
    pub heartbeat_ticks: u64,
    /// A follower that hears nothing from a leader for a random time between this and
    /// twice this starts an election.
    pub election_ticks: u64,
    /// How long a follower, on hearing from the leader, refuses any other candidate; the
    /// leader's lease is derived from it (see [`Config::leader_lease_ticks`]).
    pub lease_ticks: u64,
    /// The largest rate difference between any replica's clock and real time, in parts
    /// per million. Leases are safe while clocks stay within it.
    pub max_drift_ppm: u64,
    /// Most commands a leader puts into one append.
    pub max_batch: usize,
    /// Thrifty replication: the leader sends new entries at once only to as many
    /// responsive followers as a majority needs, and to the others with the next
    /// heartbeat. Fewer replicas wake per commit (what limits latency when replicas share
    /// cores); a slow or failed eager follower costs at most a heartbeat or two before
    /// the others step in. Safety does not depend on it.
    pub thrifty: bool,
    /// Seed for the randomised election timeouts (time and randomness are inputs).
    pub seed: u64,
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid consensus configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// A configuration with the defaults used across mdbc: 1 tick = 1 ms gives 5 ms
    /// heartbeats, 40–80 ms election timeouts and 30 ms follower leases.
    pub fn new(id: NodeId, peers: Vec<NodeId>) -> Config {
        Config {
            id,
            peers,
            join: false,
            heartbeat_ticks: 5,
            election_ticks: 40,
            lease_ticks: 30,
            max_drift_ppm: 50_000,
            max_batch: 4096,
            thrifty: true,
            seed: id,
        }
    }

    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if self.peers.contains(&self.id) {
            return bad(format!("node {} lists itself among its peers", self.id));
        }
        let mut p = self.peers.clone();
        p.sort_unstable();
        p.dedup();
        if p.len() != self.peers.len() {
            return bad("a peer is listed twice".into());
        }
        if self.heartbeat_ticks == 0 {
            return bad("heartbeat_ticks must be at least 1".into());
        }
        if self.max_drift_ppm >= 500_000 {
            return bad("max_drift_ppm must be below 500000 (50%)".into());
        }
        if self.leader_lease_ticks() <= self.heartbeat_ticks {
            return bad(format!(
                "lease_ticks {} leaves the leader a lease of {} ticks, not more than one \
                 heartbeat ({}); leases would lapse between heartbeats",
                self.lease_ticks,
                self.leader_lease_ticks(),
                self.heartbeat_ticks
            ));
        }
        if self.election_ticks <= self.lease_ticks {
            return bad(format!(
                "election_ticks {} must exceed lease_ticks {}: a follower bound by a lease \
                 cannot vote, so elections would fail until it lapses",
                self.election_ticks, self.lease_ticks
            ));
        }
        if self.max_batch == 0 {
            return bad("max_batch must be at least 1".into());
        }
        Ok(())
    }

    /// The membership the cluster starts with: this replica and its peers, or nobody known
    /// for a replica that joins later.
    pub fn initial_members(&self) -> Membership {
        if self.join {
            Membership::default()
        } else {
            Membership::of(std::iter::once(self.id).chain(self.peers.iter().copied()))
        }
    }

    /// How long, in the leader's ticks, a heartbeat acknowledged by a majority keeps the
    /// lease, counted from its sending. A follower promises `lease_ticks` of its own clock
    /// from receipt, which lasts at least `(lease_ticks - 1) / (1 + ρ)` of real time (its
    /// last tick may already be up to one tick old); the leader's `L` ticks last at most
    /// `L / (1 - ρ)`. So `L = (lease_ticks - 2)(1 - ρ)/(1 + ρ)`, one more tick spare for the
    /// leader's own tick granularity.
    pub fn leader_lease_ticks(&self) -> u64 {
        let f = self.lease_ticks.saturating_sub(2) as u128;
        let num = f * (1_000_000 - self.max_drift_ppm as u128);
        (num / (1_000_000 + self.max_drift_ppm as u128)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_lease_is_shorter_than_the_promise() {
        let c = Config::new(1, vec![2, 3]);
        c.validate().unwrap();
        assert_eq!(c.initial_members().quorum(), 2);
        assert!(c.leader_lease_ticks() < c.lease_ticks);
        // (30 - 2) * 0.95 / 1.05 = 25.3
        assert_eq!(c.leader_lease_ticks(), 25);
    }

    #[test]
    fn contradictions_are_refused() {
        let mut c = Config::new(1, vec![1, 2]);
        assert!(c.validate().is_err());
        c.peers = vec![2, 2];
        assert!(c.validate().is_err());
        c.peers = vec![2, 3];
        c.election_ticks = c.lease_ticks;
        assert!(c.validate().is_err());
        c.election_ticks = 100;
        c.lease_ticks = 6;
        assert!(
            c.validate().is_err(),
            "lease of 3 ticks is within one heartbeat of 5"
        );
    }
}
