//! The lock table: MUSIC's lock queues as a state machine replicated by `consensus`.
//!
//! Every change is a decided log entry, and every answer about who holds what comes from
//! applying the log (a proposal's result, or a linearizable read), never from one
//! replica's copy — the original MUSIC read its queues at consistency ONE and could let
//! two clients hold a lock at once.
//!
//! - A **lock ref** is a number from one global counter, so refs increase in log order and
//!   double as fencing tokens. [`LockCommand::Create`] appends the new ref to the queue of
//!   *every* key it names in one decision; each queue is then sorted by ref, and the
//!   smallest ref in the table heads all its queues, so multi-key locking cannot deadlock.
//! - A ref **holds** its lock when it heads every queue it is in. From that moment it has
//!   a lease of its own length; [`LockCommand::Acquire`] and [`LockCommand::Renew`]
//!   extend it, [`LockCommand::Release`] ends it, and [`LockCommand::Expire`] (proposed
//!   by the leader's node as time passes) force-releases every holder whose lease ran
//!   out. A waiter that died therefore holds, briefly, and expires like any holder.
//! - Time comes in the commands (the proposer's clock, milliseconds); the table never
//!   lets it run backwards, so replicas applying the same log agree on every expiry.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};

/// A lock reference: a ticket in the queues of its keys, and a fencing token.
pub type LockRef = u64;

/// A change to the lock table (a consensus command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockCommand {
    /// Enqueue a new ref on every key in `keys` (one decision).
    Create {
        /// The keys, at least one.
        keys: Vec<String>,
        /// Who asks (for the operator: shown by holder and queue queries).
        owner: String,
        /// Lease length once the ref holds the lock.
        lease_ms: u64,
        /// The proposer's clock.
        now_ms: u64,
    },
    /// Does `lock_ref` hold its lock? If so its lease is renewed.
    Acquire {
        /// The ref.
        lock_ref: LockRef,
        /// The proposer's clock.
        now_ms: u64,
    },
    /// Renew the lease of a holding ref.
    Renew {
        /// The ref.
        lock_ref: LockRef,
        /// The proposer's clock.
        now_ms: u64,
    },
    /// Leave the queues (holding or waiting).
    Release {
        /// The ref.
        lock_ref: LockRef,
        /// The proposer's clock.
        now_ms: u64,
    },
    /// Force-release every holder whose lease ended before `now_ms`.
    Expire {
        /// The proposer's clock.
        now_ms: u64,
    },
}

/// What applying a [`LockCommand`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockOutcome {
    /// The new ref; `held` when it holds its lock at once (its queues were empty).
    Created {
        /// The ref.
        lock_ref: LockRef,
        /// It holds already.
        held: bool,
        /// When it does not: the refs ahead of it in its queues, so that a holder that
        /// keeps its lock between uses learns that someone waits (every node sees every
        /// outcome) and can hand it over.
        #[serde(default)]
        behind: Vec<LockRef>,
    },
    /// Whether the ref holds its lock, and until when (table clock) if it does.
    Acquired {
        /// Heads every queue it is in.
        held: bool,
        /// Lease end, when held.
        expires_ms: Option<u64>,
        /// The ref's keys.
        keys: Vec<String>,
    },
    /// The lease now ends at this time.
    Renewed(u64),
    /// The ref left the queues (`removed` false: it was not in them); the refs in
    /// `promoted` now hold their locks.
    Released {
        /// The ref was in the queues.
        removed: bool,
        /// Refs that came to hold.
        promoted: Vec<LockRef>,
    },
    /// These holders were force-released; the refs in `promoted` now hold.
    Expired {
        /// Holders whose lease ran out.
        expired: Vec<LockRef>,
        /// Refs that came to hold.
        promoted: Vec<LockRef>,
    },
    /// The command was refused.
    Error(LockError),
}

/// Why a lock command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LockError {
    /// The ref is not (or no longer) in the table: released, or force-released after its
    /// lease.
    #[error("lock ref {0} is unknown, released or expired")]
    UnknownRef(LockRef),
    /// Renewing a ref that does not hold its lock yet.
    #[error("lock ref {0} does not hold its lock")]
    NotHolder(LockRef),
    /// A lock over no keys.
    #[error("a lock needs at least one key")]
    NoKeys,
    /// A command that does not decode.
    #[error("malformed lock command: {0}")]
    Malformed(String),
}

/// A read of the lock table (answered from the replicated state, linearizably).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockQuery {
    /// The ref heading `key`'s queue, if any.
    Holder(String),
    /// `key`'s queue, head first.
    Queue(String),
    /// One ref's details.
    Info(LockRef),
    /// The earliest lease end among holders.
    NextExpiry,
}

/// One ref's entry in the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The ref.
    pub lock_ref: LockRef,
    /// Its keys.
    pub keys: Vec<String>,
    /// Who created it.
    pub owner: String,
    /// Lease length.
    pub lease_ms: u64,
    /// When it started to hold (table clock), if it does.
    pub held_since_ms: Option<u64>,
    /// When its lease ends, if it holds.
    pub expires_ms: Option<u64>,
}

/// The answer to a [`LockQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockAnswer {
    /// The holder of a key.
    Holder(Option<LockInfo>),
    /// A queue, head first.
    Queue(Vec<LockInfo>),
    /// One ref.
    Info(Option<LockInfo>),
    /// The earliest lease end, if anyone holds.
    NextExpiry(Option<u64>),
    /// The query did not decode.
    Malformed(String),
}

/// The replicated lock table.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockTable {
    next_ref: LockRef,
    clock_ms: u64,
    queues: HashMap<String, VecDeque<LockRef>>,
    refs: BTreeMap<LockRef, LockInfo>,
}

impl LockTable {
    /// The table's clock: the latest time any applied command carried.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// The earliest lease end among holders, if any (when an [`LockCommand::Expire`] may
    /// next have work).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.refs.values().filter_map(|i| i.expires_ms).min()
    }

    /// A ref's entry.
    pub fn info(&self, r: LockRef) -> Option<&LockInfo> {
        self.refs.get(&r)
    }

    /// The ref heading `key`'s queue.
    pub fn holder(&self, key: &str) -> Option<&LockInfo> {
        let r = self.queues.get(key)?.front()?;
        self.refs.get(r).filter(|i| i.held_since_ms.is_some())
    }

    /// The lowest ref that may still write `key` under its lock: the holder, else the
    /// first waiter, else the next ref to be created. A data replica can refuse critical
    /// writes fenced by anything older.
    pub fn fence(&self, key: &str) -> LockRef {
        self.queues
            .get(key)
            .and_then(|q| q.front().copied())
            .unwrap_or(self.next_ref + 1)
    }

    fn heads_all(&self, r: LockRef) -> bool {
        self.refs.get(&r).is_some_and(|i| {
            i.keys
                .iter()
                .all(|k| self.queues.get(k).and_then(|q| q.front()) == Some(&r))
        })
    }

    /// Starts the lease of every ref that now heads all its queues (after `changed`
    /// keys' queues moved); returns those refs.
    fn promote(&mut self, changed: &[String]) -> Vec<LockRef> {
        let now = self.clock_ms;
        let mut heads: Vec<LockRef> = changed
            .iter()
            .filter_map(|k| self.queues.get(k).and_then(|q| q.front().copied()))
            .collect();
        heads.sort_unstable();
        heads.dedup();
        let mut promoted = Vec::new();
        for r in heads {
            if self.heads_all(r) {
                if let Some(i) = self.refs.get_mut(&r) {
                    if i.held_since_ms.is_none() {
                        i.held_since_ms = Some(now);
                        i.expires_ms = Some(now.saturating_add(i.lease_ms));
                        promoted.push(r);
                    }
                }
            }
        }
        promoted
    }

    /// Takes `r` out of its queues; returns the refs that came to hold.
    fn remove(&mut self, r: LockRef) -> Option<Vec<LockRef>> {
        let info = self.refs.remove(&r)?;
        for k in &info.keys {
            if let Some(q) = self.queues.get_mut(k) {
                q.retain(|x| *x != r);
                if q.is_empty() {
                    self.queues.remove(k);
                }
            }
        }
        Some(self.promote(&info.keys))
    }

    /// Applies one command.
    pub fn apply_command(&mut self, c: LockCommand) -> LockOutcome {
        let now = match &c {
            LockCommand::Create { now_ms, .. }
            | LockCommand::Acquire { now_ms, .. }
            | LockCommand::Renew { now_ms, .. }
            | LockCommand::Release { now_ms, .. }
            | LockCommand::Expire { now_ms } => *now_ms,
        };
        self.clock_ms = self.clock_ms.max(now);
        match c {
            LockCommand::Create {
                keys,
                owner,
                lease_ms,
                ..
            } => {
                let mut keys = keys;
                keys.sort();
                keys.dedup();
                if keys.is_empty() {
                    return LockOutcome::Error(LockError::NoKeys);
                }
                self.next_ref += 1;
                let r = self.next_ref;
                for k in &keys {
                    self.queues.entry(k.clone()).or_default().push_back(r);
                }
                self.refs.insert(
                    r,
                    LockInfo {
                        lock_ref: r,
                        keys: keys.clone(),
                        owner,
                        lease_ms,
                        held_since_ms: None,
                        expires_ms: None,
                    },
                );
                let held = self.promote(&keys).contains(&r);
                let mut behind: Vec<LockRef> = if held {
                    Vec::new()
                } else {
                    keys.iter()
                        .filter_map(|k| self.queues.get(k))
                        .flat_map(|q| q.iter().copied().filter(|x| *x != r))
                        .collect()
                };
                behind.sort_unstable();
                behind.dedup();
                LockOutcome::Created {
                    lock_ref: r,
                    held,
                    behind,
                }
            }
            LockCommand::Acquire { lock_ref, .. } => {
                if !self.refs.contains_key(&lock_ref) {
                    return LockOutcome::Error(LockError::UnknownRef(lock_ref));
                }
                let keys = self
                    .refs
                    .get(&lock_ref)
                    .map(|i| i.keys.clone())
                    .unwrap_or_default();
                if !self.heads_all(lock_ref) {
                    return LockOutcome::Acquired {
                        held: false,
                        expires_ms: None,
                        keys,
                    };
                }
                let now = self.clock_ms;
                let expires = self.refs.get_mut(&lock_ref).map(|i| {
                    i.held_since_ms.get_or_insert(now);
                    let e = now.saturating_add(i.lease_ms);
                    i.expires_ms = Some(e);
                    e
                });
                LockOutcome::Acquired {
                    held: true,
                    expires_ms: expires,
                    keys,
                }
            }
            LockCommand::Renew { lock_ref, .. } => {
                let now = self.clock_ms;
                match self.refs.get_mut(&lock_ref) {
                    None => LockOutcome::Error(LockError::UnknownRef(lock_ref)),
                    Some(i) if i.held_since_ms.is_none() => {
                        LockOutcome::Error(LockError::NotHolder(lock_ref))
                    }
                    Some(i) => {
                        let e = now.saturating_add(i.lease_ms);
                        i.expires_ms = Some(e);
                        LockOutcome::Renewed(e)
                    }
                }
            }
            LockCommand::Release { lock_ref, .. } => match self.remove(lock_ref) {
                Some(promoted) => LockOutcome::Released {
                    removed: true,
                    promoted,
                },
                None => LockOutcome::Released {
                    removed: false,
                    promoted: Vec::new(),
                },
            },
            LockCommand::Expire { .. } => {
                let now = self.clock_ms;
                let expired: Vec<LockRef> = self
                    .refs
                    .values()
                    .filter(|i| i.expires_ms.is_some_and(|e| e <= now))
                    .map(|i| i.lock_ref)
                    .collect();
                let mut promoted = Vec::new();
                for r in &expired {
                    promoted.extend(self.remove(*r).unwrap_or_default());
                }
                // A ref promoted by one expiry may itself have expired by a later one.
                promoted.retain(|r| self.refs.contains_key(r));
                LockOutcome::Expired { expired, promoted }
            }
        }
    }

    /// Answers a query.
    pub fn answer(&self, q: &LockQuery) -> LockAnswer {
        match q {
            LockQuery::Holder(k) => LockAnswer::Holder(self.holder(k).cloned()),
            LockQuery::Queue(k) => LockAnswer::Queue(
                self.queues
                    .get(k)
                    .map(|q| q.iter().filter_map(|r| self.refs.get(r).cloned()).collect())
                    .unwrap_or_default(),
            ),
            LockQuery::Info(r) => LockAnswer::Info(self.refs.get(r).cloned()),
            LockQuery::NextExpiry => LockAnswer::NextExpiry(self.next_expiry_ms()),
        }
    }
}

impl consensus::StateMachine for LockTable {
    fn apply(&mut self, command: &[u8]) -> Bytes {
        let out = match decode::<LockCommand>(command) {
            Ok(c) => self.apply_command(c),
            Err(e) => LockOutcome::Error(LockError::Malformed(e)),
        };
        encode(&out)
    }

    fn query(&self, query: &[u8]) -> Bytes {
        let out = match decode::<LockQuery>(query) {
            Ok(q) => self.answer(&q),
            Err(e) => LockAnswer::Malformed(e),
        };
        encode(&out)
    }

    fn snapshot(&self) -> Bytes {
        encode(self)
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        *self = decode(data)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(t: &mut LockTable, keys: &[&str], lease: u64, now: u64) -> LockRef {
        match t.apply_command(LockCommand::Create {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            owner: "test".into(),
            lease_ms: lease,
            now_ms: now,
        }) {
            LockOutcome::Created { lock_ref, .. } => lock_ref,
            o => panic!("{o:?}"),
        }
    }

    fn acquire(t: &mut LockTable, r: LockRef, now: u64) -> bool {
        match t.apply_command(LockCommand::Acquire {
            lock_ref: r,
            now_ms: now,
        }) {
            LockOutcome::Acquired { held, .. } => held,
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn refs_increase_and_queue_in_order() {
        let mut t = LockTable::default();
        let a = create(&mut t, &["x"], 1000, 1);
        let b = create(&mut t, &["x"], 1000, 2);
        assert!(b > a);
        assert!(acquire(&mut t, a, 3));
        assert!(!acquire(&mut t, b, 3));
        assert_eq!(t.holder("x").map(|i| i.lock_ref), Some(a));
        assert_eq!(t.fence("x"), a);
        assert_eq!(
            t.apply_command(LockCommand::Release {
                lock_ref: a,
                now_ms: 4
            }),
            LockOutcome::Released {
                removed: true,
                promoted: vec![b]
            }
        );
        assert!(acquire(&mut t, b, 5));
        assert_eq!(t.fence("x"), b);
        assert_eq!(
            t.apply_command(LockCommand::Acquire {
                lock_ref: a,
                now_ms: 6
            }),
            LockOutcome::Error(LockError::UnknownRef(a))
        );
    }

    #[test]
    fn multi_key_locks_never_deadlock() {
        let mut t = LockTable::default();
        // Opposite key orders, the classic deadlock, are one decision each here.
        let a = create(&mut t, &["x", "y"], 1000, 1);
        let b = create(&mut t, &["y", "x"], 1000, 1);
        let c = create(&mut t, &["y"], 1000, 1);
        assert!(acquire(&mut t, a, 2));
        assert!(!acquire(&mut t, b, 2) && !acquire(&mut t, c, 2));
        t.apply_command(LockCommand::Release {
            lock_ref: a,
            now_ms: 3,
        });
        assert!(acquire(&mut t, b, 4));
        assert!(!acquire(&mut t, c, 4));
    }

    #[test]
    fn a_holder_that_stops_renewing_is_released_and_a_waiter_takes_over() {
        let mut t = LockTable::default();
        let a = create(&mut t, &["x"], 100, 1_000);
        let b = create(&mut t, &["x"], 100, 1_000);
        assert!(acquire(&mut t, a, 1_010));
        assert_eq!(
            t.apply_command(LockCommand::Renew {
                lock_ref: a,
                now_ms: 1_050
            }),
            LockOutcome::Renewed(1_150)
        );
        assert_eq!(
            t.apply_command(LockCommand::Renew {
                lock_ref: b,
                now_ms: 1_050
            }),
            LockOutcome::Error(LockError::NotHolder(b))
        );
        assert_eq!(
            t.apply_command(LockCommand::Expire { now_ms: 1_149 }),
            LockOutcome::Expired {
                expired: vec![],
                promoted: vec![]
            }
        );
        assert_eq!(
            t.apply_command(LockCommand::Expire { now_ms: 1_150 }),
            LockOutcome::Expired {
                expired: vec![a],
                promoted: vec![b]
            }
        );
        assert_eq!(
            t.answer(&LockQuery::NextExpiry),
            LockAnswer::NextExpiry(Some(1_250))
        );
        // The waiter's lease starts when it comes to hold, at the table's clock.
        assert_eq!(t.info(b).and_then(|i| i.expires_ms), Some(1_250));
        // A clock going backwards in a later command does not move the table's.
        assert!(acquire(&mut t, b, 900));
        assert_eq!(t.clock_ms(), 1_150);
    }

    #[test]
    fn the_table_round_trips_and_garbage_is_refused() {
        use consensus::StateMachine;
        let mut t = LockTable::default();
        create(&mut t, &["x", "y"], 100, 1);
        create(&mut t, &["y"], 100, 2);
        let mut copy = LockTable::default();
        copy.restore(&t.snapshot()).unwrap();
        assert_eq!(copy, t);
        let out: LockOutcome = decode(&t.apply(b"\xff\xff garbage")).unwrap();
        assert!(matches!(out, LockOutcome::Error(LockError::Malformed(_))));
        let ans: LockAnswer = decode(&t.query(b"")).unwrap();
        assert!(matches!(ans, LockAnswer::Malformed(_)));
        assert!(copy.restore(b"\x01").is_err());
    }
}
