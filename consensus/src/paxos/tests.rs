//! Unit tests of the Multi-Paxos core, one replica or a few driven by hand.

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
