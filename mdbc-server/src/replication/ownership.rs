//! Strong domains' state: which domain locks this site owns, and which other sites wait for.
//!
//! A site that took a domain's lock keeps it while it keeps writing (the guard renews its
//! lease), so a burst of strong transactions at one site pays one consensus round, not
//! one per transaction. Every node sees every lock-table decision; when a ref is created
//! behind one this site holds, the lock is marked wanted and released at the next
//! transaction boundary (at once if no transaction is using it).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use music_core::locks::LockRef;

use super::keys::DomainLock;

/// A held domain lock (one lock ref, over one or more domains).
pub struct Owned {
    pub(crate) guard: DomainLock,
    pub(crate) domains: Vec<String>,
    // Head of each domain's log as this owner knows it (it is the only writer).
    heads: std::sync::Mutex<HashMap<String, u64>>,
    // Applied here, by domain: the owner catches up to the head once per acquisition.
    caught_up: std::sync::Mutex<HashSet<String>>,
    // By domain: an entry whose head record reached some replicas but not a quorum. A
    // replica holding it may apply it, so its position is never given to another entry:
    // it is written again, whole, before the next commit to the domain.
    unsettled: std::sync::Mutex<HashMap<String, (u64, bytes::Bytes)>>,
}

impl Owned {
    pub(crate) fn new(
        guard: DomainLock,
        domains: Vec<String>,
        heads: HashMap<String, u64>,
    ) -> Owned {
        Owned {
            guard,
            domains,
            heads: std::sync::Mutex::new(heads),
            caught_up: std::sync::Mutex::new(HashSet::new()),
            unsettled: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// After appending entry `seq` of `domain` fell short of a quorum with its head sent.
    pub(crate) fn set_unsettled(&self, domain: &str, seq: u64, entry: bytes::Bytes) {
        self.unsettled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(domain.to_string(), (seq, entry));
    }

    /// The entry of `domain` whose outcome is not known yet, if any.
    pub(crate) fn unsettled(&self, domain: &str) -> Option<(u64, bytes::Bytes)> {
        self.unsettled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(domain)
            .cloned()
    }

    /// The unsettled entry `seq` of `domain` now stands on a quorum: it is the head, and
    /// this site (whose transaction rolled back) applies it from the log like another
    /// site's.
    pub(crate) fn settled(&self, domain: &str, seq: u64) {
        self.unsettled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(domain);
        self.set_head(domain, seq);
        self.caught_up
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(domain);
    }

    /// The lock ref.
    pub fn lock_ref(&self) -> LockRef {
        self.guard.lock_ref()
    }

    /// The head of `domain`'s log.
    pub fn head(&self, domain: &str) -> u64 {
        self.heads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(domain)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn set_head(&self, domain: &str, head: u64) {
        self.heads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(domain.to_string(), head);
    }

    /// Whether this site applied `domain`'s log up to the head since it took the lock.
    pub fn is_caught_up(&self, domain: &str) -> bool {
        self.caught_up
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(domain)
    }

    /// After catching up on `domain`.
    pub fn mark_caught_up(&self, domain: &str) {
        self.caught_up
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(domain.to_string());
    }
}

/// The domains this site owns.
#[derive(Default)]
pub struct Ownership {
    pub(crate) owned: tokio::sync::Mutex<HashMap<String, Arc<Owned>>>,
    // Held by a session taking domains, across its wait for the cluster lock, so that a
    // second session here waits for the first and then uses what it took. `owned` itself
    // is not held across that wait: a transaction here that still uses a lock being
    // given up must be able to hand it over meanwhile (it takes `owned` when it ends),
    // or the wait would be for a lock only its own site can release — until timeout.
    pub(crate) acquiring: tokio::sync::Mutex<()>,
    // Refs another site waits behind: released at the next transaction boundary.
    pub(crate) wanted: std::sync::Mutex<HashSet<LockRef>>,
}

impl Ownership {
    pub(crate) fn is_wanted(&self, r: LockRef) -> bool {
        self.wanted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&r)
    }

    pub(crate) fn want(&self, r: LockRef) {
        self.wanted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(r);
    }

    pub(crate) fn forget(&self, r: LockRef) {
        self.wanted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&r);
    }
}

/// Whether no transaction uses `o`: the only references are the ownership map's (one per
/// domain it covers) and the caller's.
pub(crate) fn unused(o: &Arc<Owned>) -> bool {
    Arc::strong_count(o) <= o.domains.len() + 1
}
