//! A deterministic simulator: a whole cluster in one thread, virtual time, every random
//! choice drawn from one seed (FoundationDB-style). Faults: message loss, duplication,
//! reordering and delay; symmetric and one-way partitions; leader isolation; crashes with
//! restart from durable state, losing unsynced writes or keeping a torn tail of them;
//! clock drift within the configured bound; membership changes (spare replicas added,
//! members removed, the leader included) in the middle of all that.
//!
//! Clients drive a [`Workload`] through the replicas, retrying with the same request id
//! on timeouts. Every run is checked for one value per slot, one valid lease at a time,
//! no acknowledged proposal lost, replicas that applied the same log holding the same
//! state, and liveness (after the faults heal, every client finishes within a bound);
//! the workload judges its own history on top ([`KvWorkload`]: linearizable registers).
//!
//! A failing run returns an error that names its seed; `SEED=n` replays it (see the
//! `simulation` test).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};

use crate::check::Agreement;
use crate::paxos::HardState;
use crate::paxos::MembershipChange;
use crate::replica::{Outcome, Replica};
use crate::rng::Rng;
use crate::types::{Entry, Message, NodeId, Persist};
use crate::Config;

mod checks;
mod clients;
mod faults;
mod workload;
pub use workload::{KvWorkload, Request, Workload};

/// Operations each client must complete after the faults heal.
const AFTER_HEAL_OPS: usize = 3;

/// What one simulated run does.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Members the cluster starts with.
    pub nodes: usize,
    /// Replicas that start outside the cluster and may be added (and removed again).
    pub spares: usize,
    /// Change the membership (add a spare, remove a member) as one of the faults.
    pub membership: bool,
    /// Seed for every random choice.
    pub seed: u64,
    /// Virtual microseconds of faults, after which the network heals and crashed replicas
    /// restart.
    pub fault_time: u64,
    /// Virtual microseconds allowed after healing for every client to finish.
    pub heal_time: u64,
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Message delay range, microseconds (random within: messages reorder).
    pub delay: (u64, u64),
    /// Write-to-durable delay range, microseconds.
    pub fsync: (u64, u64),
    /// Nominal tick length, microseconds.
    pub tick: u64,
    /// Clocks run up to this far from real time, parts per million (must not exceed the
    /// replicas' `max_drift_ppm`).
    pub drift_ppm: u64,
    /// Crash and restart replicas.
    pub crashes: bool,
    /// Partition the network.
    pub partitions: bool,
    /// Concurrent clients.
    pub clients: usize,
    /// Replicas compact their log every this many entries (0: never).
    pub snapshot_every: u64,
}

impl SimConfig {
    /// A run with every fault switched on.
    pub fn with_faults(nodes: usize, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            spares: 1,
            membership: true,
            seed,
            fault_time: 1_500_000,
            heal_time: 3_000_000,
            drop: 0.05,
            duplicate: 0.02,
            delay: (50, 2_000),
            fsync: (50, 3_000),
            tick: 1_000,
            drift_ppm: 40_000,
            crashes: true,
            partitions: true,
            clients: 4,
            // Small, so that lagging and restarted replicas catch up by snapshot.
            snapshot_every: 10 + seed % 40,
        }
    }

    /// The replica configuration used for node `id`.
    pub fn replica_config(&self, id: NodeId) -> Config {
        let peers = (1..=self.nodes as u64).filter(|p| *p != id).collect();
        let mut c = Config::new(id, peers);
        c.join = id > self.nodes as u64;
        c.heartbeat_ticks = 5;
        // Barely above the lease, so elections follow lease expiry closely and the lease
        // checker sees the tightest case.
        c.election_ticks = 32;
        c.lease_ticks = 30;
        c.max_drift_ppm = 50_000;
        c.max_batch = 64;
        // Half the runs replicate thriftily (to a bare majority at once), half to all.
        c.thrifty = self.seed.is_multiple_of(2);
        c.seed = self.seed.wrapping_mul(31).wrapping_add(id);
        c
    }
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct SimReport {
    /// Client operations completed.
    pub completed: usize,
    /// Entries decided.
    pub decided: usize,
    /// Events processed.
    pub events: u64,
    /// Leader changes seen.
    pub elections: usize,
    /// Reads served under a lease.
    pub lease_reads: usize,
    /// Leader transfers started.
    pub transfers: usize,
    /// Snapshots installed from a peer.
    pub snapshot_installs: usize,
    /// Membership changes proposed.
    pub membership_changes: usize,
}

#[derive(Debug)]
enum Event {
    Tick(usize, u64),
    Deliver(usize, usize, Message),
    Persisted(usize, u64, u64),
    ClientStart(usize),
    ClientTimeout(usize, u64),
    ClientRetry(usize, u64),
    Restart(usize),
    Fault,
    Heal,
}

struct Node<S> {
    id: NodeId,
    replica: Option<Replica<S>>,
    disk: HardState,
    unsynced: VecDeque<Persist>,
    held: Vec<(u64, usize, Message)>,
    incarnation: u64,
    // Tick period in microseconds (drift applied).
    period: u64,
    last_persist_done: u64,
}

struct Client {
    op: Option<Request>,
    // Operations completed since the faults healed (liveness: each must do a few).
    after_heal: usize,
    invoked: u64,
    seq: u64,
    attempt: u64,
    node: usize,
    read_id: u64,
}

/// One simulated cluster run.
pub struct Sim<W: Workload = KvWorkload> {
    cfg: SimConfig,
    workload: W,
    rng: Rng,
    now: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: HashMap<usize, Event>,
    next_event: usize,
    seq: u64,
    nodes: Vec<Node<W::Sm>>,
    blocked: BTreeSet<(usize, usize)>,
    faults_on: bool,
    clients: Vec<Client>,
    agreement: Agreement,
    acked_proposals: Vec<(u64, u64)>,
    report: SimReport,
    last_leader: Option<crate::Ballot>,
}

impl Sim<KvWorkload> {
    /// Builds the cluster, its clients putting and getting three keys.
    pub fn new(cfg: SimConfig) -> Sim<KvWorkload> {
        Sim::with_workload(cfg, KvWorkload::new(3))
    }
}

impl<W: Workload> Sim<W> {
    /// Builds the cluster, its clients driving `workload`.
    pub fn with_workload(cfg: SimConfig, workload: W) -> Sim<W> {
        let mut rng = Rng::new(cfg.seed);
        let mut nodes = Vec::new();
        for i in 0..cfg.nodes + cfg.spares {
            let id = i as u64 + 1;
            let drift = rng.range(0, 2 * cfg.drift_ppm + 1) as i64 - cfg.drift_ppm as i64;
            let period = (cfg.tick as i64 * (1_000_000 + drift) / 1_000_000) as u64;
            let replica = Replica::new(cfg.replica_config(id), workload.state_machine())
                .expect("simulator replica configuration is valid")
                .with_snapshot_every(cfg.snapshot_every);
            nodes.push(Node {
                id,
                replica: Some(replica),
                disk: HardState::default(),
                unsynced: VecDeque::new(),
                held: Vec::new(),
                incarnation: 0,
                period: period.max(1),
                last_persist_done: 0,
            });
        }
        let clients = (0..cfg.clients)
            .map(|c| Client {
                op: None,
                after_heal: 0,
                invoked: 0,
                seq: 0,
                attempt: 0,
                node: c % cfg.nodes,
                read_id: 0,
            })
            .collect();
        let mut sim = Sim {
            rng,
            now: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            next_event: 0,
            seq: 0,
            nodes,
            blocked: BTreeSet::new(),
            faults_on: true,
            clients,
            workload,
            agreement: Agreement::default(),
            acked_proposals: Vec::new(),
            report: SimReport::default(),
            last_leader: None,
            cfg,
        };
        for i in 0..sim.nodes.len() {
            let first = sim.rng.range(1, sim.nodes[i].period);
            sim.schedule(first, Event::Tick(i, 0));
        }
        for c in 0..sim.clients.len() {
            let t = sim.rng.range(1_000, 50_000);
            sim.schedule(t, Event::ClientStart(c));
        }
        if sim.cfg.crashes || sim.cfg.partitions {
            let t = sim.rng.range(50_000, 200_000);
            sim.schedule(t, Event::Fault);
        }
        let heal = sim.cfg.fault_time;
        sim.schedule(heal, Event::Heal);
        sim
    }

    fn schedule(&mut self, after: u64, e: Event) {
        let id = self.next_event;
        self.next_event += 1;
        self.seq += 1;
        self.events.insert(id, e);
        self.queue.push(Reverse((self.now + after, self.seq, id)));
    }

    /// Runs to the end; `Err` describes the first broken property, with the seed.
    pub fn run(self) -> Result<SimReport, String> {
        self.run_workload().map(|(report, _)| report)
    }

    /// As [`Sim::run`], handing back the workload (for what it counted).
    pub fn run_workload(mut self) -> Result<(SimReport, W), String> {
        let end = self.cfg.fault_time + self.cfg.heal_time;
        let seed = self.cfg.seed;
        let nodes = self.cfg.nodes;
        let fail = |m: String| format!("seed {seed} ({nodes} replicas): {m}");
        while let Some(Reverse((t, _, id))) = self.queue.pop() {
            if t > end {
                break;
            }
            self.now = t;
            let Some(e) = self.events.remove(&id) else {
                continue;
            };
            self.report.events += 1;
            self.handle(e).map_err(fail)?;
            self.check_leases().map_err(fail)?;
            if self.now > self.cfg.fault_time && self.all_clients_done() && self.converged() {
                break;
            }
        }
        if !self.all_clients_done() {
            return Err(fail(format!(
                "liveness: clients still waiting {} µs after the faults healed\n{}",
                self.cfg.heal_time,
                self.describe()
            )));
        }
        self.check_acked_proposals().map_err(fail)?;
        self.check_replicas_agree().map_err(fail)?;
        self.workload.check().map_err(fail)?;
        self.report.decided = self.agreement.chosen().len();
        Ok((self.report, self.workload))
    }

    /// Each replica's view, for a failure report.
    fn describe(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let line = match n.replica.as_ref() {
                None => format!("  node {}: down\n", n.id),
                Some(r) => {
                    let c = r.core();
                    format!(
                        "  node {}: {:?} leader {:?} promised {} log {} decided {} members {} latest {}\n",
                        n.id,
                        c.role(),
                        c.leader(),
                        c.promised(),
                        c.log().len(),
                        c.decided(),
                        c.members(),
                        c.latest_members()
                    )
                }
            };
            out.push_str(&line);
        }
        out.push_str(&format!(
            "  chosen: {} entries\n",
            self.agreement.chosen().len()
        ));
        out
    }

    fn all_clients_done(&self) -> bool {
        // After the faults heal, every client must complete a few more operations.
        self.clients
            .iter()
            .all(|c| c.op.is_none() && c.after_heal >= AFTER_HEAL_OPS)
    }

    /// Every member of the last decided membership has learned the whole decided log
    /// (replicas removed along the way are not waited for).
    fn converged(&self) -> bool {
        let target = self.agreement.chosen().len() as u64;
        let Some(members) = self.agreement.chosen().iter().rev().find_map(|e| match e {
            Entry::Config(m) => Some(m),
            _ => None,
        }) else {
            return false;
        };
        self.nodes
            .iter()
            .filter(|n| members.contains(n.id))
            .all(|n| {
                n.replica
                    .as_ref()
                    .is_some_and(|r| r.core().decided() >= target)
            })
    }

    fn handle(&mut self, e: Event) -> Result<(), String> {
        match e {
            Event::Tick(i, inc) => {
                if self.nodes[i].incarnation != inc {
                    return Ok(());
                }
                if let Some(r) = self.nodes[i].replica.as_mut() {
                    r.tick();
                }
                let p = self.nodes[i].period;
                self.schedule(p, Event::Tick(i, inc));
                self.process(i)
            }
            Event::Deliver(from, to, msg) => {
                let from_id = self.nodes[from].id;
                if let Some(r) = self.nodes[to].replica.as_mut() {
                    r.step(from_id, msg);
                    self.process(to)?;
                }
                Ok(())
            }
            Event::Persisted(i, inc, id) => {
                if self.nodes[i].incarnation != inc {
                    return Ok(());
                }
                let node = &mut self.nodes[i];
                while node.unsynced.front().is_some_and(|p| p.id <= id) {
                    if let Some(p) = node.unsynced.pop_front() {
                        node.disk.apply(&p);
                    }
                }
                if let Some(r) = node.replica.as_mut() {
                    r.on_persisted(id);
                }
                let held = std::mem::take(&mut self.nodes[i].held);
                let mut keep = Vec::new();
                for (bound, to, msg) in held {
                    if bound <= id {
                        self.send(i, to, msg);
                    } else {
                        keep.push((bound, to, msg));
                    }
                }
                self.nodes[i].held = keep;
                self.process(i)
            }
            Event::ClientStart(c) => self.client_start(c),
            Event::ClientTimeout(c, attempt) => {
                if self.clients[c].op.is_some() && self.clients[c].attempt == attempt {
                    self.client_retry(c, true)?;
                }
                Ok(())
            }
            Event::ClientRetry(c, attempt) => {
                if self.clients[c].op.is_some() && self.clients[c].attempt == attempt {
                    self.client_retry(c, false)?;
                }
                Ok(())
            }
            Event::Restart(i) => {
                if self.nodes[i].replica.is_none() {
                    self.restart(i);
                }
                Ok(())
            }
            Event::Fault => {
                if self.faults_on {
                    self.inject_fault();
                    let next = self.rng.range(20_000, 150_000);
                    self.schedule(next, Event::Fault);
                }
                Ok(())
            }
            Event::Heal => {
                self.faults_on = false;
                self.blocked.clear();
                self.cfg.drop = 0.0;
                self.cfg.duplicate = 0.0;
                for i in 0..self.nodes.len() {
                    if self.nodes[i].replica.is_none() {
                        self.restart(i);
                    }
                }
                Ok(())
            }
        }
    }

    /// Feeds the replica's output to the network, the disk and the clients.
    fn process(&mut self, i: usize) -> Result<(), String> {
        let id = self.nodes[i].id;
        let Some(r) = self.nodes[i].replica.as_mut() else {
            return Ok(());
        };
        let mut ready = r.take_ready();
        if let Some(job) = ready.snapshot_job.take() {
            // Snapshots are encoded inline here; the compaction goes out with the next
            // output of this replica.
            let (upto, data) = job.run();
            r.snapshot_done(upto, data);
        }
        if ready.installed_snapshot {
            self.report.snapshot_installs += 1;
        }
        if let Some(e) = ready.fatal {
            return Err(format!("node {id}: {e}"));
        }
        let leader = r.is_leader().then(|| r.core().promised());
        if let Some(b) = leader {
            if self.last_leader != Some(b) {
                self.last_leader = Some(b);
                self.report.elections += 1;
            }
        }
        self.agreement
            .observe(id, ready.decided_from, &ready.decided)?;
        for (to, msg) in ready.send {
            self.send(i, (to - 1) as usize, msg);
        }
        if let Some(p) = ready.persist {
            let pid = p.id;
            let node = &mut self.nodes[i];
            node.unsynced.push_back(p);
            // Writes complete in order.
            let done = (self.now + self.rng.range(self.cfg.fsync.0, self.cfg.fsync.1))
                .max(node.last_persist_done + 1);
            node.last_persist_done = done;
            let inc = node.incarnation;
            let after = done - self.now;
            self.schedule(after, Event::Persisted(i, inc, pid));
        }
        let bound = self.nodes[i].unsynced.back().map(|p| p.id);
        for (to, msg) in ready.after_persist {
            match bound {
                Some(b) => self.nodes[i].held.push((b, (to - 1) as usize, msg)),
                None => self.send(i, (to - 1) as usize, msg),
            }
        }
        for o in ready.outcomes {
            self.client_outcome(i, o)?;
        }
        Ok(())
    }

    fn send(&mut self, from: usize, to: usize, msg: Message) {
        if self.blocked.contains(&(from, to)) || self.rng.chance(self.cfg.drop) {
            return;
        }
        let copies = if self.rng.chance(self.cfg.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let d = self.rng.range(self.cfg.delay.0, self.cfg.delay.1);
            self.schedule(d, Event::Deliver(from, to, msg.clone()));
        }
    }

    // ---- faults ----

    // ---- clients ----
}
