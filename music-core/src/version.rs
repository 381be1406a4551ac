//! Versions of values in the key space, and the hybrid logical clock that stamps them.
//!
//! A [`Version`] orders writes to one key across replicas: last writer wins. It compares
//! the *epoch* first — the lock ref of the critical section the write belongs to (a plain
//! put takes the highest epoch its replica has seen for the key) — then the hybrid
//! logical time, then the writing node. So a write under a newer lock beats anything
//! written under an older one whatever the clocks say, and within an epoch the later
//! write wins; two replicas that saw the same writes in any order hold the same value.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A write's place in last-writer-wins order (see the module docs).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Version {
    /// The lock ref whose critical section wrote it, or the highest seen (plain puts).
    pub epoch: u64,
    /// Hybrid logical time: physical milliseconds in the high bits, a 16-bit counter
    /// below (so it fits a signed 64-bit column for thousands of years).
    pub hlc: u64,
    /// The node that wrote it (breaks ties).
    pub node: u64,
}

/// Bits of the hybrid time given to the logical counter.
const LOGICAL_BITS: u32 = 16;

/// A hybrid logical clock (Kulkarni et al.): never runs backwards, stays close to the
/// physical clock, and moves past every time it hears of, so a write stamped after
/// another was seen always carries a later time.
#[derive(Debug, Default)]
pub struct Hlc {
    last: AtomicU64,
}

impl Hlc {
    /// A clock that has seen nothing yet.
    pub fn new() -> Hlc {
        Hlc::default()
    }

    fn physical() -> u64 {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        ms << LOGICAL_BITS
    }

    /// A fresh time, later than every time this clock gave or heard of.
    pub fn now(&self) -> u64 {
        let phys = Self::physical();
        let mut cur = self.last.load(Ordering::Relaxed);
        loop {
            let next = phys.max(cur + 1);
            match self
                .last
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Hears of `t` (from another node): later times given here will exceed it.
    pub fn observe(&self, t: u64) {
        self.last.fetch_max(t, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_outranks_the_clock() {
        let old_lock_late = Version {
            epoch: 3,
            hlc: 1_000_000,
            node: 9,
        };
        let new_lock_early = Version {
            epoch: 4,
            hlc: 1,
            node: 1,
        };
        assert!(new_lock_early > old_lock_late);
        let a = Version {
            epoch: 4,
            hlc: 5,
            node: 1,
        };
        let b = Version { node: 2, ..a };
        assert!(b > a, "the node breaks ties");
    }

    #[test]
    fn the_clock_never_repeats_and_passes_what_it_hears() {
        let c = Hlc::new();
        let a = c.now();
        let b = c.now();
        assert!(b > a);
        let far = b + (1_000_000 << LOGICAL_BITS);
        c.observe(far);
        assert!(c.now() > far);
    }
}
