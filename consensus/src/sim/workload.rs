//! What the simulated clients do and how a run's history is judged.
//!
//! The simulator owns the faults, the network, the disks and the client plumbing
//! (request ids, retries with the same id on timeouts, redirects after refused reads). A
//! [`Workload`] owns the rest: the state machine the replicas run, each client's next
//! request and what it makes of the answer, and the final verdict. [`KvWorkload`] is the
//! consensus crate's own (registers checked for linearizability); the lock service brings
//! its own (lock safety) without the simulator knowing what a lock is.

use bytes::Bytes;

use crate::check::{self, Op};
use crate::kv::Kv;
use crate::replica::StateMachine;
use crate::rng::Rng;

/// A client request.
#[derive(Debug, Clone)]
pub enum Request {
    /// A command to decide and apply (answered with the apply result).
    Propose(Bytes),
    /// A linearizable query (answered with the state machine's answer).
    Read(Bytes),
}

/// The application side of a simulated run.
pub trait Workload {
    /// The replicated state machine.
    type Sm: StateMachine + PartialEq;

    /// A fresh state machine (a new replica, or one restarting from its disk).
    fn state_machine(&self) -> Self::Sm;

    /// Client `c` is idle at virtual time `now` (µs): its next request.
    fn next(&mut self, c: usize, now: u64, rng: &mut Rng) -> Request;

    /// Client `c`'s pending request was answered at `now` with `result`. `Err` stops the
    /// run with that message (a property broken on the spot).
    fn returned(&mut self, c: usize, now: u64, result: Bytes) -> Result<(), String>;

    /// How long client `c` waits before its next request, in µs (its pending one was
    /// just answered).
    fn think(&mut self, c: usize, rng: &mut Rng) -> u64 {
        let _ = c;
        rng.range(1_000, 20_000)
    }

    /// After the run: the verdict on the whole history.
    fn check(&self) -> Result<(), String>;
}

/// Clients put and get a few keys of a [`Kv`]; the history must be linearizable.
pub struct KvWorkload {
    keys: u64,
    history: Vec<Op>,
    pending: Vec<Option<usize>>,
}

impl KvWorkload {
    /// Clients share `keys` distinct keys.
    pub fn new(keys: usize) -> KvWorkload {
        KvWorkload {
            keys: keys.max(1) as u64,
            history: Vec::new(),
            pending: Vec::new(),
        }
    }
}

impl Workload for KvWorkload {
    type Sm = Kv;

    fn state_machine(&self) -> Kv {
        Kv::default()
    }

    fn next(&mut self, c: usize, now: u64, rng: &mut Rng) -> Request {
        let key = Bytes::from(format!("k{}", rng.range(0, self.keys)));
        let write = rng
            .chance(0.5)
            .then(|| Bytes::from(format!("c{c}-{}", self.history.len())));
        let request = match &write {
            Some(v) => Request::Propose(Kv::put(&key, v)),
            None => Request::Read(Kv::get(&key)),
        };
        self.history.push(Op {
            client: c as u64,
            key,
            write,
            invoked: now,
            returned: None,
        });
        if self.pending.len() <= c {
            self.pending.resize(c + 1, None);
        }
        self.pending[c] = Some(self.history.len() - 1);
        request
    }

    fn returned(&mut self, c: usize, now: u64, result: Bytes) -> Result<(), String> {
        if let Some(i) = self.pending.get_mut(c).and_then(Option::take) {
            let op = &mut self.history[i];
            // A put's answer is not part of the register's history.
            let value = if op.write.is_some() {
                Bytes::new()
            } else {
                result
            };
            op.returned = Some((now, value));
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        check::linearizable(&self.history)
    }
}
