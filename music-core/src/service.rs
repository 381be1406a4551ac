//! The MUSIC operations, joining the lock table (replicated by consensus) to a
//! [`DataStore`].
//!
//! - Lock changes are consensus proposals; lock questions are linearizable reads at the
//!   consensus leader (forwarded over the node RPC when this node does not lead). No
//!   answer about who holds a lock comes from one replica's copy.
//! - `acquire_lock` is true only for a ref heading all its queues; before it returns
//!   true the ref's keys are synchronised (newest value read from a quorum, written back
//!   to a quorum under the ref, fencing older refs off those replicas).
//! - A waiter is woken by the decision that makes it holder (every node sees each lock
//!   command's outcome as it applies the log), not by polling; a small random back-off
//!   spreads the retries of many waiters woken together.
//! - Critical operations check that the ref holds its lock and its lease has not run
//!   out, and the replicas' fences refuse whatever a superseded holder still sends.
//! - The leader's node force-releases holders whose lease ended (an `Expire` proposal
//!   timed by the table's next expiry).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use consensus::node::{NodeError, NodeHandle};
use consensus::paxos::MembershipChange;
use consensus::rpc::Channel;
use consensus::Role;
use tokio::sync::{watch, Mutex};

use crate::codec::{decode, encode};
use crate::locks::{LockAnswer, LockCommand, LockError, LockInfo, LockOutcome, LockQuery, LockRef};
use crate::rpc::{Request, Response, MAGIC};
use crate::store::{DataStore, StoreError, Versioned};
use crate::version::Version;

/// Why a MUSIC operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MusicError {
    /// The lock table refused.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The data store refused or could not reach a quorum.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A critical operation by a ref that does not hold the key's lock.
    #[error("lock ref {lock_ref} does not hold the lock on {key:?}")]
    NotHolder {
        /// The ref.
        lock_ref: LockRef,
        /// The key.
        key: String,
    },
    /// A critical operation after the ref's lease ran out.
    #[error("the lease of lock ref {0} has run out; acquire the lock again")]
    LeaseExpired(LockRef),
    /// The lock service cannot decide now (no consensus quorum reachable, say).
    #[error("the lock service is unavailable: {0}")]
    Unavailable(String),
    /// Waited for a lock longer than asked.
    #[error("lock ref {0} did not come to hold its lock in time")]
    Timeout(LockRef),
    /// A request that makes no sense (no keys, say).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Who belongs to the lock service, as its consensus log last decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The node leading consensus, if one is known.
    pub leader: Option<u64>,
    /// Every member, the leader included.
    pub members: Vec<u64>,
}

impl Membership {
    /// Whether node `id` is a member.
    pub fn contains(&self, id: u64) -> bool {
        self.members.contains(&id)
    }
}

/// How the service runs.
#[derive(Debug, Clone)]
pub struct MusicConfig {
    /// Lease of a lock ref that holds, unless renewed.
    pub lease: Duration,
    /// How long a lock operation may wait for consensus.
    pub consensus_timeout: Duration,
}

impl Default for MusicConfig {
    fn default() -> Self {
        MusicConfig {
            lease: Duration::from_secs(10),
            consensus_timeout: Duration::from_secs(5),
        }
    }
}

/// What `acquire_lock` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    /// The ref holds its lock (and its keys are synchronised).
    pub held: bool,
    /// When its lease ends (lock-table clock, ms since the epoch), if it holds.
    pub expires_ms: Option<u64>,
    /// When the request that renewed the lease left this process: the lease runs from
    /// no earlier than this (by this process's clock, within the clock skew between
    /// nodes).
    pub requested_at: tokio::time::Instant,
}

struct Inner<D> {
    me: u64,
    locks: NodeHandle,
    store: D,
    cfg: MusicConfig,
    secret: Arc<[u8]>,
    // Node-RPC addresses of the other nodes, for lock reads at the leader.
    rpc_peers: std::sync::RwLock<HashMap<u64, String>>,
    conns: Mutex<HashMap<u64, Channel>>,
    // Refs acquired (or renewed) through this node, with their keys and how long this
    // node may take them to hold without asking the lock table.
    held: std::sync::Mutex<HashMap<LockRef, (Vec<String>, tokio::time::Instant)>>,
}

/// The MUSIC service of one node (see the module docs). Cheap to clone.
pub struct Music<D> {
    inner: Arc<Inner<D>>,
}

impl<D> Clone for Music<D> {
    fn clone(&self) -> Self {
        Music {
            inner: self.inner.clone(),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether a lock on `lock_key` guards `key`: the key itself and every key below it
/// (`lock_key/…`), so one lock can guard a log of many entries. Replicas fence each key
/// by the refs that wrote it.
pub fn guards(lock_key: &str, key: &str) -> bool {
    key.strip_prefix(lock_key)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn unavailable(e: NodeError) -> MusicError {
    MusicError::Unavailable(e.to_string())
}

impl<D: DataStore> Music<D> {
    /// The service of node `me`: `locks` is its replica of the lock table, `store` its
    /// data store, `rpc_peers` the other nodes' RPC addresses. Starts the expiry task,
    /// which runs until `shutdown` turns true.
    pub fn new(
        me: u64,
        locks: NodeHandle,
        store: D,
        rpc_peers: HashMap<u64, String>,
        secret: Arc<[u8]>,
        cfg: MusicConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Music<D> {
        let m = Music {
            inner: Arc::new(Inner {
                me,
                locks,
                store,
                cfg,
                secret,
                rpc_peers: std::sync::RwLock::new(rpc_peers),
                conns: Mutex::new(HashMap::new()),
                held: std::sync::Mutex::new(HashMap::new()),
            }),
        };
        tokio::spawn(expirer(m.clone(), shutdown));
        m
    }

    /// The lease of a lock ref that holds.
    pub fn lease(&self) -> Duration {
        self.inner.cfg.lease
    }

    /// The data store.
    pub fn store(&self) -> &D {
        &self.inner.store
    }

    /// Learns the node-RPC address of a node that joined.
    pub fn add_rpc_peer(&self, id: u64, addr: String) {
        self.inner
            .rpc_peers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, addr);
    }

    /// Forgets node `id`'s RPC address (it was removed from the cluster).
    pub fn remove_rpc_peer(&self, id: u64) {
        self.inner
            .rpc_peers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// This node's consensus replica of the lock table.
    pub fn locks(&self) -> &NodeHandle {
        &self.inner.locks
    }

    /// The lock service's members as consensus last decided them, and its leader.
    pub async fn membership(&self) -> Result<Membership, MusicError> {
        let status = self.inner.locks.status().await.map_err(unavailable)?;
        Ok(Membership {
            leader: status.leader,
            members: status.latest.ids().collect(),
        })
    }

    /// Adds node `id`, reachable at `addr`, to the lock service (one consensus decision;
    /// only the leader can make it).
    pub async fn add_member(&self, id: u64, addr: String) -> Result<(), MusicError> {
        self.inner
            .locks
            .change_membership(MembershipChange::Add { id, addr })
            .await
            .map_err(unavailable)
    }

    /// Removes node `id` from the lock service (one consensus decision; only the leader
    /// can make it).
    pub async fn remove_member(&self, id: u64) -> Result<(), MusicError> {
        self.inner
            .locks
            .change_membership(MembershipChange::Remove(id))
            .await
            .map_err(unavailable)
    }

    /// Refs created from now on that wait behind another ref, with the refs ahead of them,
    /// as this node applies the lock table's log: a holder keeping its lock between uses
    /// watches this to hand the lock over when someone queues.
    pub fn waiters(&self) -> tokio::sync::mpsc::UnboundedReceiver<(LockRef, Vec<LockRef>)> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut events = self.inner.locks.subscribe();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(applied) => {
                        if let Ok(LockOutcome::Created {
                            lock_ref,
                            held: false,
                            behind,
                        }) = decode::<LockOutcome>(&applied.result)
                        {
                            if tx.send((lock_ref, behind)).is_err() {
                                return;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        rx
    }

    async fn propose(&self, c: LockCommand) -> Result<LockOutcome, MusicError> {
        let out = self
            .inner
            .locks
            .propose(encode(&c), self.inner.cfg.consensus_timeout)
            .await
            .map_err(unavailable)?;
        match decode::<LockOutcome>(&out) {
            Ok(LockOutcome::Error(e)) => Err(MusicError::Lock(e)),
            Ok(o) => Ok(o),
            Err(e) => Err(MusicError::Unavailable(format!(
                "malformed lock outcome: {e}"
            ))),
        }
    }

    /// Answers a lock-table query linearizably: at this node if it leads, else at the
    /// leader over the node RPC.
    pub async fn lock_read(&self, q: &LockQuery) -> Result<LockAnswer, MusicError> {
        let query = encode(q);
        let start = tokio::time::Instant::now();
        loop {
            let leader = match self.inner.locks.read(query.clone()).await {
                Ok(b) => {
                    return decode(&b)
                        .map_err(|e| MusicError::Unavailable(format!("malformed answer: {e}")))
                }
                Err(NodeError::NotLeader(l)) => l,
                Err(e) => return Err(unavailable(e)),
            };
            if let Some(l) = leader.filter(|l| *l != self.inner.me) {
                match self.call(l, &Request::LockRead(query.clone())).await {
                    Ok(Response::LockAnswer(b)) => {
                        return decode(&b)
                            .map_err(|e| MusicError::Unavailable(format!("malformed answer: {e}")))
                    }
                    Ok(other) => tracing::debug!(leader = l, "lock read refused: {other:?}"),
                    Err(e) => tracing::debug!(leader = l, "lock read failed: {e}"),
                }
            }
            if start.elapsed() > self.inner.cfg.consensus_timeout {
                return Err(MusicError::Unavailable(
                    "no consensus leader answered the lock query".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn call(&self, node: u64, req: &Request) -> Result<Response, String> {
        let ch = {
            let mut conns = self.inner.conns.lock().await;
            match conns.get(&node).filter(|c| !c.is_closed()) {
                Some(c) => c.clone(),
                None => {
                    let addr = self
                        .inner
                        .rpc_peers
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&node)
                        .cloned()
                        .ok_or_else(|| format!("no RPC address for node {node}"))?;
                    let (c, _) = Channel::connect(&addr, &self.inner.secret, MAGIC, self.inner.me)
                        .await
                        .map_err(|e| e.to_string())?;
                    conns.insert(node, c.clone());
                    c
                }
            }
        };
        let answer = ch.call(encode(req)).await.map_err(|e| e.to_string())?;
        decode(&answer)
    }

    /// Answers a node-RPC lock read (this node must lead).
    pub async fn answer_lock_read(&self, query: Bytes) -> Response {
        match self.inner.locks.read(query).await {
            Ok(b) => Response::LockAnswer(b),
            Err(e) => Response::Error(e.to_string()),
        }
    }

    // ---- the key space ----

    /// AP put: one replica, replicated asynchronously.
    pub async fn put(&self, key: &str, value: Bytes) -> Result<Version, MusicError> {
        Ok(self.inner.store.put(key, value).await?)
    }

    /// AP get: one replica, maybe stale.
    pub async fn get(&self, key: &str) -> Result<Option<Versioned>, MusicError> {
        Ok(self.inner.store.get(key).await?)
    }

    /// How long after a request that renewed a lease this node counts the ref as
    /// holding: a tenth short of the lease, for the clock skew between nodes.
    fn valid_for(&self) -> Duration {
        self.inner.cfg.lease - self.inner.cfg.lease / 10
    }

    fn remember(&self, r: LockRef, keys: Option<Vec<String>>, requested_at: tokio::time::Instant) {
        let Ok(mut held) = self.inner.held.lock() else {
            return;
        };
        let until = requested_at + self.valid_for();
        match (held.get_mut(&r), keys) {
            (Some(e), _) => e.1 = e.1.max(until),
            (None, Some(keys)) => {
                if held.len() > 10_000 {
                    let now = tokio::time::Instant::now();
                    held.retain(|_, (_, u)| *u > now);
                }
                held.insert(r, (keys, until));
            }
            (None, None) => {}
        }
    }

    fn forget(&self, r: LockRef) {
        if let Ok(mut held) = self.inner.held.lock() {
            held.remove(&r);
        }
    }

    /// Whether this node acquired `r` for a lock guarding `key` (see [`guards`]) and its
    /// lease has time left by this
    /// node's clock (then the lock table need not be asked).
    fn known_holder(&self, key: &str, r: LockRef) -> bool {
        self.inner.held.lock().is_ok_and(|held| {
            held.get(&r).is_some_and(|(keys, until)| {
                *until > tokio::time::Instant::now() && keys.iter().any(|k| guards(k, key))
            })
        })
    }

    /// Checks that `r` holds the lock on `key` with time left on its lease: known here if
    /// this node acquired or renewed it, else asked of the lock table.
    async fn check_holder(&self, key: &str, r: LockRef) -> Result<(), MusicError> {
        if self.known_holder(key, r) {
            return Ok(());
        }
        let info = match self.lock_read(&LockQuery::Info(r)).await? {
            LockAnswer::Info(Some(i)) => i,
            LockAnswer::Info(None) => return Err(MusicError::Lock(LockError::UnknownRef(r))),
            other => {
                return Err(MusicError::Unavailable(format!(
                    "unexpected answer {other:?}"
                )))
            }
        };
        if info.held_since_ms.is_none() || !info.keys.iter().any(|k| guards(k, key)) {
            return Err(MusicError::NotHolder {
                lock_ref: r,
                key: key.to_string(),
            });
        }
        if info.expires_ms.is_some_and(|e| e <= now_ms()) {
            return Err(MusicError::LeaseExpired(r));
        }
        Ok(())
    }

    /// Quorum write by the holder of `r`.
    pub async fn critical_put(
        &self,
        key: &str,
        value: Bytes,
        r: LockRef,
    ) -> Result<Version, MusicError> {
        self.check_holder(key, r).await?;
        Ok(self.inner.store.critical_put(key, value, r).await?)
    }

    /// Quorum writes of several keys by the holder of `r`, in one round where the store
    /// can: a replica stores all of them or none.
    pub async fn critical_put_many(
        &self,
        items: Vec<(String, Bytes)>,
        r: LockRef,
    ) -> Result<(), MusicError> {
        for (k, _) in &items {
            self.check_holder(k, r).await?;
        }
        Ok(self.inner.store.critical_put_many(items, r).await?)
    }

    /// Quorum read by the holder of `r`.
    pub async fn critical_get(
        &self,
        key: &str,
        r: LockRef,
    ) -> Result<Option<Versioned>, MusicError> {
        self.check_holder(key, r).await?;
        Ok(self.inner.store.critical_get(key, r).await?)
    }

    // ---- locks ----

    /// Enqueues a new ref on every key in `keys` (one consensus decision).
    pub async fn create_lock_ref(
        &self,
        keys: &[String],
        owner: &str,
    ) -> Result<LockRef, MusicError> {
        Ok(self.create(keys, owner).await?.0)
    }

    async fn create(&self, keys: &[String], owner: &str) -> Result<(LockRef, bool), MusicError> {
        if keys.is_empty() {
            return Err(MusicError::Invalid("a lock needs at least one key".into()));
        }
        for k in keys {
            crate::store::check(k, None)?;
        }
        let c = LockCommand::Create {
            keys: keys.to_vec(),
            owner: owner.to_string(),
            lease_ms: self.inner.cfg.lease.as_millis() as u64,
            now_ms: now_ms(),
        };
        match self.propose(c).await? {
            LockOutcome::Created { lock_ref, held, .. } => Ok((lock_ref, held)),
            other => Err(MusicError::Unavailable(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// Creates a ref and, if its queues were empty, acquires it in the same decision
    /// (keys synchronised as by [`Music::acquire_lock`]); otherwise it waits in the
    /// queues (`held` false) for [`Music::acquire_lock_wait`].
    pub async fn create_and_acquire(
        &self,
        keys: &[String],
        owner: &str,
    ) -> Result<(LockRef, Acquired), MusicError> {
        let requested_at = tokio::time::Instant::now();
        let (r, held) = self.create(keys, owner).await?;
        if held {
            self.sync_keys(keys, r).await?;
            self.remember(r, Some(keys.to_vec()), requested_at);
        }
        let expires_ms = held.then(|| now_ms() + self.inner.cfg.lease.as_millis() as u64);
        Ok((
            r,
            Acquired {
                held,
                expires_ms,
                requested_at,
            },
        ))
    }

    async fn sync_keys(&self, keys: &[String], r: LockRef) -> Result<(), MusicError> {
        // All keys at once: a lock over several keys costs one store round, not one each.
        futures::future::try_join_all(keys.iter().map(|k| self.inner.store.sync(k, r))).await?;
        Ok(())
    }

    /// One attempt: true only if `r` heads all its queues; then its keys are synchronised
    /// before this returns, and its lease renewed.
    pub async fn acquire_lock(&self, r: LockRef) -> Result<Acquired, MusicError> {
        let requested_at = tokio::time::Instant::now();
        let out = self
            .propose(LockCommand::Acquire {
                lock_ref: r,
                now_ms: now_ms(),
            })
            .await?;
        let LockOutcome::Acquired {
            held,
            expires_ms,
            keys,
        } = out
        else {
            return Err(MusicError::Unavailable(format!(
                "unexpected outcome {out:?}"
            )));
        };
        if held {
            self.sync_keys(&keys, r).await?;
            self.remember(r, Some(keys), requested_at);
        }
        Ok(Acquired {
            held,
            expires_ms,
            requested_at,
        })
    }

    /// Waits until `r` holds its lock (woken by the decision that makes it holder), up to
    /// `timeout`.
    pub async fn acquire_lock_wait(
        &self,
        r: LockRef,
        timeout: Duration,
    ) -> Result<Acquired, MusicError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = self.inner.locks.subscribe();
        loop {
            let a = self.acquire_lock(r).await?;
            if a.held {
                return Ok(a);
            }
            // Until a release or expiry promotes `r` (or the wait times out).
            loop {
                let ev = tokio::time::timeout_at(deadline, events.recv()).await;
                match ev {
                    Err(_) => return Err(MusicError::Timeout(r)),
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => break,
                    Ok(Err(_)) => {
                        return Err(MusicError::Unavailable("the replica stopped".into()))
                    }
                    Ok(Ok(applied)) => match decode::<LockOutcome>(&applied.result) {
                        Ok(LockOutcome::Released { promoted, .. })
                        | Ok(LockOutcome::Expired { promoted, .. })
                            if promoted.contains(&r) =>
                        {
                            break
                        }
                        Ok(LockOutcome::Expired { expired, .. }) if expired.contains(&r) => {
                            return Err(MusicError::Lock(LockError::UnknownRef(r)))
                        }
                        _ => {}
                    },
                }
            }
            // Many waiters may wake at once (a multi-key release): spread the retries.
            let jitter = rand_ms(5);
            tokio::time::sleep(Duration::from_millis(jitter)).await;
        }
    }

    /// Renews `r`'s lease; returns its new end.
    pub async fn renew(&self, r: LockRef) -> Result<u64, MusicError> {
        let requested_at = tokio::time::Instant::now();
        let renewed = match self
            .propose(LockCommand::Renew {
                lock_ref: r,
                now_ms: now_ms(),
            })
            .await
        {
            Ok(LockOutcome::Renewed(e)) => Ok(e),
            Ok(other) => Err(MusicError::Unavailable(format!(
                "unexpected outcome {other:?}"
            ))),
            Err(e) => Err(e),
        };
        match &renewed {
            Ok(_) => self.remember(r, None, requested_at),
            Err(_) => self.forget(r),
        }
        renewed
    }

    /// Leaves the queues (holding or waiting); false if `r` was not in them.
    pub async fn release_lock(&self, r: LockRef) -> Result<bool, MusicError> {
        self.forget(r);
        match self
            .propose(LockCommand::Release {
                lock_ref: r,
                now_ms: now_ms(),
            })
            .await?
        {
            LockOutcome::Released { removed, .. } => Ok(removed),
            other => Err(MusicError::Unavailable(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// The ref holding `key`'s lock, if any.
    pub async fn holder(&self, key: &str) -> Result<Option<LockInfo>, MusicError> {
        match self.lock_read(&LockQuery::Holder(key.to_string())).await? {
            LockAnswer::Holder(h) => Ok(h),
            other => Err(MusicError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// `key`'s queue, holder first.
    pub async fn queue(&self, key: &str) -> Result<Vec<LockInfo>, MusicError> {
        match self.lock_read(&LockQuery::Queue(key.to_string())).await? {
            LockAnswer::Queue(q) => Ok(q),
            other => Err(MusicError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// One ref's entry.
    pub async fn lock_info(&self, r: LockRef) -> Result<Option<LockInfo>, MusicError> {
        match self.lock_read(&LockQuery::Info(r)).await? {
            LockAnswer::Info(i) => Ok(i),
            other => Err(MusicError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }
}

/// A random number of milliseconds below `max` (jitter, not security).
fn rand_ms(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    nanos % max.max(1)
}

/// At the leader's node: proposes `Expire` when the earliest lease has ended.
async fn expirer<D: DataStore>(m: Music<D>, mut shutdown: watch::Receiver<bool>) {
    let idle = Duration::from_millis(200);
    loop {
        let mut wait = idle;
        let leads = matches!(m.inner.locks.status().await, Ok(s) if s.role == Role::Leader);
        if leads {
            match m.inner.locks.read(encode(&LockQuery::NextExpiry)).await {
                Ok(b) => {
                    if let Ok(LockAnswer::NextExpiry(Some(e))) = decode::<LockAnswer>(&b) {
                        let now = now_ms();
                        if e <= now {
                            match m.propose(LockCommand::Expire { now_ms: now }).await {
                                Ok(LockOutcome::Expired { expired, .. }) if !expired.is_empty() => {
                                    tracing::info!(
                                        ?expired,
                                        "force-released holders whose lease ran out"
                                    );
                                }
                                Ok(_) => {}
                                Err(e) => tracing::debug!("expiry failed: {e}"),
                            }
                            wait = Duration::from_millis(10);
                        } else {
                            wait = wait.min(Duration::from_millis(e - now));
                        }
                    }
                }
                Err(e) => tracing::debug!("expiry check: {e}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}
