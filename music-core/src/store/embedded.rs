//! The embedded store: every MUSIC node keeps a replica of the key space on local disk
//! ([`LocalStore`]) and replicates to its peers over the node RPC ([`crate::rpc`]).
//!
//! - **Plain puts** are stored locally, acknowledged, and shipped to each peer by that
//!   peer's replicator task, batched. What a peer could not take (it was down or cut off)
//!   is remembered as a *hint* on disk and replayed until it is acknowledged.
//! - **Quorum operations** go to every replica at once and finish when a majority has
//!   answered: critical writes (refused by a replica that has seen a newer lock ref),
//!   critical reads (the newest version wins, and replicas that lag are repaired), and
//!   the sync of a key when a lock is acquired.
//! - **Anti-entropy**: now and then each node compares a digest of its replica (one hash
//!   per bucket of keys) with each peer's and exchanges what differs, so a replica that
//!   missed writes without a hint — a node restored from an old disk, say — converges.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinSet;

use consensus::rpc::Channel;

use super::local::{floor_key, CriticalWrite, LocalStore, BUCKETS};
use super::{check, DataStore, StoreError, Versioned};
use crate::codec;
use crate::rpc::{Item, Request, Response, MAGIC};
use crate::version::{Hlc, Version};

/// How an embedded store runs.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// This node.
    pub me: u64,
    /// The other replicas: id and node-RPC address.
    pub peers: Vec<(u64, String)>,
    /// The cluster secret (node RPC authenticates with it).
    pub secret: Arc<[u8]>,
    /// How long a quorum operation waits for answers.
    pub quorum_timeout: Duration,
    /// How often anti-entropy runs with each peer.
    pub anti_entropy_every: Duration,
    /// How often hints are replayed to a peer that did not take them.
    pub hint_retry_every: Duration,
}

impl EmbeddedConfig {
    /// Defaults: 2 s quorum timeout, anti-entropy every 30 s, hints retried every second.
    pub fn new(me: u64, peers: Vec<(u64, String)>, secret: Arc<[u8]>) -> EmbeddedConfig {
        EmbeddedConfig {
            me,
            peers,
            secret,
            quorum_timeout: Duration::from_secs(2),
            anti_entropy_every: Duration::from_secs(30),
            hint_retry_every: Duration::from_secs(1),
        }
    }
}

struct Peer {
    id: u64,
    addr: String,
    conn: Mutex<Option<Channel>>,
    outbox: mpsc::UnboundedSender<String>,
}

type PeerList = Arc<Vec<Arc<Peer>>>;

struct Inner {
    cfg: EmbeddedConfig,
    local: LocalStore,
    hlc: Hlc,
    // Replaced whole when a node joins (see `EmbeddedStore::add_peer`).
    peers: std::sync::RwLock<PeerList>,
    shutdown: watch::Receiver<bool>,
    // Fault injection: peers this node cannot reach (see `EmbeddedStore::cut_off`).
    cut: std::sync::RwLock<std::collections::HashSet<u64>>,
    // Counts writes from other nodes, for whoever waits for new keys.
    changed: watch::Sender<u64>,
}

/// The embedded store (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

fn io_err(e: std::io::Error) -> String {
    e.to_string()
}

impl Inner {
    fn quorum(&self) -> usize {
        let replicas = self.peer_list().len() + 1;
        replicas / 2 + 1
    }

    fn peer_list(&self) -> PeerList {
        self.peers.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn call(&self, p: &Peer, req: &Request) -> Result<Response, String> {
        if self.cut.read().is_ok_and(|c| c.contains(&p.id)) {
            return Err(format!("node {} is cut off (fault injection)", p.id));
        }
        let ch = {
            let mut conn = p.conn.lock().await;
            match conn.as_ref().filter(|c| !c.is_closed()) {
                Some(c) => c.clone(),
                None => {
                    let (c, them) = Channel::connect(&p.addr, &self.cfg.secret, MAGIC, self.cfg.me)
                        .await
                        .map_err(io_err)?;
                    if them != p.id {
                        return Err(format!("{} is node {them}, expected {}", p.addr, p.id));
                    }
                    *conn = Some(c.clone());
                    c
                }
            }
        };
        let answer = ch.call(codec::encode(req)).await.map_err(io_err)?;
        codec::decode::<Response>(&answer).map_err(|e| format!("malformed answer: {e}"))
    }

    fn items(&self, keys: &[String]) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(v) = self.local.get(k)? {
                out.push(Item {
                    key: k.clone(),
                    value: v.value,
                    version: v.version,
                });
            }
        }
        Ok(out)
    }

    fn apply_items(&self, items: &[Item]) -> Result<(), StoreError> {
        for it in items {
            self.hlc.observe(it.version.hlc);
        }
        self.local.apply_many(
            items
                .iter()
                .map(|it| (it.key.as_str(), &it.value[..], it.version)),
        )?;
        if !items.is_empty() {
            self.changed.send_modify(|n| *n += 1);
        }
        Ok(())
    }
}

impl EmbeddedStore {
    /// Opens the local replica at `path` and starts the replicator and anti-entropy
    /// tasks, which run until `shutdown` turns true.
    pub fn open(
        path: &std::path::Path,
        cfg: EmbeddedConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Result<EmbeddedStore, StoreError> {
        let local = LocalStore::open(path)?;
        let first = cfg.peers.clone();
        let inner = Arc::new(Inner {
            cfg,
            local,
            hlc: Hlc::new(),
            peers: std::sync::RwLock::new(Arc::new(Vec::new())),
            shutdown: shutdown.clone(),
            cut: std::sync::RwLock::new(std::collections::HashSet::new()),
            changed: watch::channel(0).0,
        });
        let store = EmbeddedStore { inner };
        for (id, addr) in first {
            store.add_peer(id, addr);
        }
        tokio::spawn(anti_entropy(store.inner.clone(), shutdown));
        Ok(store)
    }

    /// Adds peer `id` at `addr` (a node that joined the cluster): from now on puts are
    /// pushed to it and quorums count it. Adding a known peer does nothing.
    pub fn add_peer(&self, id: u64, addr: String) {
        let mut list = self.inner.peers.write().unwrap_or_else(|e| e.into_inner());
        if list.iter().any(|p| p.id == id) || id == self.inner.cfg.me {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let peer = Arc::new(Peer {
            id,
            addr,
            conn: Mutex::new(None),
            outbox: tx,
        });
        let mut next: Vec<Arc<Peer>> = list.iter().cloned().collect();
        next.push(peer.clone());
        *list = Arc::new(next);
        drop(list);
        tokio::spawn(replicator(
            self.inner.clone(),
            peer,
            rx,
            self.inner.shutdown.clone(),
        ));
    }

    /// Stops replicating to peer `id` (removed from the cluster): it no longer counts in
    /// quorums, its shipping task ends, and its hints are dropped.
    pub fn remove_peer(&self, id: u64) {
        let mut list = self.inner.peers.write().unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|p| p.id == id) {
            return;
        }
        // Dropping its outbox's sender ends its replicator task.
        let next: Vec<Arc<Peer>> = list.iter().filter(|p| p.id != id).cloned().collect();
        *list = Arc::new(next);
        drop(list);
        if let Err(e) = self.inner.local.drop_hints(id) {
            tracing::warn!(peer = id, "dropping a removed peer's hints: {e}");
        }
    }

    /// The ids of this node's peers.
    pub fn peer_ids(&self) -> Vec<u64> {
        self.inner.peer_list().iter().map(|p| p.id).collect()
    }

    /// Fault injection for tests: from now on this node's calls to `peers` fail, as if
    /// the network between them were cut (cut both ends for a symmetric partition);
    /// an empty list heals.
    pub fn cut_off(&self, peers: &[u64]) {
        if let Ok(mut c) = self.inner.cut.write() {
            *c = peers.iter().copied().collect();
        }
    }

    /// Changes each time writes from other nodes (replicated puts, critical writes,
    /// repairs, anti-entropy) land in this replica: a reader waiting for a key can wait
    /// on it instead of polling.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// Reads `key` at every reachable replica, keeps the newest version in this one (if
    /// newer than its own) and returns it: how a replica that knows it lacks a key — the
    /// next entry of a log, say — gets it without waiting for hinted hand-off or
    /// anti-entropy. An AP read: no lock, no quorum needed.
    pub async fn read_newest(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.newest(key, None).await
    }

    /// Like [`EmbeddedStore::read_newest`], but fails unless a quorum of replicas (this
    /// one included) answered: a value that a critical put wrote before the read began
    /// is then seen, which is what a linearizable read of a log head needs.
    pub async fn read_newest_quorum(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.newest(key, Some(self.inner.quorum())).await
    }

    async fn newest(
        &self,
        key: &str,
        need: Option<usize>,
    ) -> Result<Option<Versioned>, StoreError> {
        check(key, None)?;
        let mut answered = 0;
        let answers = self
            .ask_replicas(
                Request::Read {
                    key: key.to_string(),
                    fence: None,
                    sync: false,
                },
                |r| {
                    answered += usize::from(matches!(r, Response::Value(_)));
                    need.is_some_and(|n| answered >= n)
                },
            )
            .await;
        if let Some(need) = need {
            let got = answers
                .iter()
                .filter(|(_, r)| matches!(r, Response::Value(_)))
                .count();
            if got < need {
                return Err(StoreError::NoQuorum { got, need });
            }
        }
        let newest = answers
            .into_iter()
            .filter_map(|(_, r)| match r {
                Response::Value(Some(v)) => Some(v),
                _ => None,
            })
            .max_by_key(|v| v.version);
        if let Some(v) = &newest {
            self.inner.hlc.observe(v.version.hlc);
            if self.inner.local.apply(key, &v.value, v.version)? {
                self.inner.changed.send_modify(|n| *n += 1);
            }
        }
        Ok(newest)
    }

    /// Which peers answer an authenticated call within `timeout` (a read of a key nobody
    /// writes), by id.
    pub async fn reachable(&self, timeout: Duration) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        for p in self.inner.peer_list().iter() {
            let req = Request::Read {
                key: "__ping".into(),
                fence: None,
                sync: false,
            };
            let ok = matches!(
                tokio::time::timeout(timeout, self.inner.call(p, &req)).await,
                Ok(Ok(Response::Value(_)))
            );
            out.push((p.id, ok));
        }
        out
    }

    /// Sends an application request ([`Request::App`]) to peer `id` and returns its
    /// answer, or why there is none within `timeout`.
    pub async fn call_app(
        &self,
        id: u64,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, String> {
        let list = self.inner.peer_list();
        let p = list
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| format!("node {id} is not a peer"))?;
        let req = Request::App(payload);
        let call = self.inner.call(p, &req);
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(format!("node {id} did not answer within {timeout:?}")),
            Ok(Err(e)) => Err(e),
            Ok(Ok(Response::App(b))) => Ok(b),
            Ok(Ok(Response::Error(e))) => Err(e),
            Ok(Ok(other)) => Err(format!("unexpected answer from node {id}: {other:?}")),
        }
    }

    /// Sends this replica's values of `keys` straight to every peer and returns how many
    /// stored them within the quorum timeout (counting stops once `need` have). The
    /// usual background shipping still runs; this is for a writer that must know the
    /// values are held elsewhere before it goes on.
    pub async fn replicate_now(&self, keys: &[String], need: usize) -> Result<usize, StoreError> {
        let items = self.inner.items(keys)?;
        if items.is_empty() || need == 0 {
            return Ok(0);
        }
        let req = Arc::new(Request::Replicate(items));
        let mut set = JoinSet::new();
        for p in self.inner.peer_list().iter() {
            let (inner, req, p) = (self.inner.clone(), req.clone(), p.clone());
            set.spawn(async move { inner.call(&p, &req).await });
        }
        let deadline = tokio::time::Instant::now() + self.inner.cfg.quorum_timeout;
        let mut acked = 0;
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, set.join_next()).await {
            if matches!(joined, Ok(Ok(Response::Done))) {
                acked += 1;
                if acked >= need {
                    break;
                }
            }
        }
        set.detach_all();
        Ok(acked)
    }

    /// Drops the log at `prefix` (keys `<prefix><n>` and their parts `<prefix><n>/<i>`)
    /// up to position `upto`, at every replica: a plain put of the log's floor, which
    /// replicates like any other (see [`super::local`]). For entries every reader has
    /// durably applied; a reader still behind the floor finds them gone.
    pub async fn truncate(&self, prefix: &str, upto: u64) -> Result<(), StoreError> {
        let value = Bytes::copy_from_slice(&upto.to_be_bytes());
        self.put(&floor_key(prefix), value).await.map(|_| ())
    }

    /// The position the log at `prefix` is truncated to here (0: never).
    pub fn floor(&self, prefix: &str) -> u64 {
        self.inner.local.floor(prefix)
    }

    /// This node's replica.
    pub fn local(&self) -> &LocalStore {
        &self.inner.local
    }

    /// Answers a peer's store request (the node's RPC server calls this).
    pub async fn handle(&self, req: Request) -> Response {
        let local = &self.inner.local;
        let r = match req {
            Request::Replicate(items) => self.inner.apply_items(&items).map(|_| Response::Done),
            Request::CriticalWrite(it) => {
                self.inner.hlc.observe(it.version.hlc);
                let r = local
                    .critical_apply(&it.key, &it.value, it.version)
                    .await
                    .map(|w| match w {
                        CriticalWrite::Done => Response::Done,
                        CriticalWrite::Fenced(f) => Response::Fenced(f),
                    });
                self.inner.changed.send_modify(|n| *n += 1);
                r
            }
            Request::CriticalWriteMany(items) => {
                for it in &items {
                    self.inner.hlc.observe(it.version.hlc);
                }
                let list: Vec<(&str, &[u8], Version)> = items
                    .iter()
                    .map(|it| (it.key.as_str(), &it.value[..], it.version))
                    .collect();
                let r = local.critical_apply_many(&list).await.map(|w| match w {
                    CriticalWrite::Done => Response::Done,
                    CriticalWrite::Fenced(f) => Response::Fenced(f),
                });
                self.inner.changed.send_modify(|n| *n += 1);
                r
            }
            Request::Read { key, fence, sync } => {
                async {
                    if let Some(f) = fence {
                        let seen = local.fence(&key)?;
                        if f < seen {
                            return Ok(Response::Fenced(seen));
                        }
                        let v = local.get(&key)?;
                        if sync && v.is_none() {
                            let now = local.raise_fence(&key, f).await?;
                            if now > f {
                                return Ok(Response::Fenced(now));
                            }
                        }
                        return Ok(Response::Value(v));
                    }
                    Ok(Response::Value(local.get(&key)?))
                }
                .await
            }
            Request::Digest => local.digest().map(Response::Digest),
            Request::Bucket(b) => local.bucket(b).map(Response::Versions),
            Request::Fetch(keys) => self.inner.items(&keys).map(Response::Items),
            Request::LockRead(_) | Request::App(_) => {
                Ok(Response::Error("not a store request".into()))
            }
        };
        r.unwrap_or_else(|e| Response::Error(e.to_string()))
    }

    /// Sends `req` to every replica at once, this node's own included (`None`; it answers
    /// through [`EmbeddedStore::handle`] like any peer); `done` looks at each answer as it
    /// arrives and says when enough have come. Returns the answers gathered.
    async fn ask_replicas(
        &self,
        req: Request,
        mut done: impl FnMut(&Response) -> bool,
    ) -> Vec<(Option<Arc<Peer>>, Response)> {
        let inner = &self.inner;
        let req = Arc::new(req);
        let mut set = JoinSet::new();
        for p in inner.peer_list().iter() {
            let (inner, req, p) = (inner.clone(), req.clone(), p.clone());
            set.spawn(async move {
                let r = inner.call(&p, &req).await;
                (Some(p), r)
            });
        }
        {
            let (me, req) = (self.clone(), req.clone());
            set.spawn(async move { (None, Ok(me.handle((*req).clone()).await)) });
        }
        let deadline = tokio::time::Instant::now() + inner.cfg.quorum_timeout;
        let mut got = Vec::new();
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, set.join_next()).await {
            let Ok((who, answer)) = joined else { continue };
            match answer {
                Ok(r) => {
                    let enough = done(&r);
                    got.push((who, r));
                    if enough {
                        break;
                    }
                }
                Err(e) => {
                    let peer = who.map(|p| p.id);
                    tracing::debug!(?peer, "call failed: {e}");
                }
            }
        }
        // The rest finish (or fail) in the background; their answers are not needed.
        set.detach_all();
        got
    }

    /// Reads `key` from a quorum under `fence`: the newest answer, after repairing the
    /// replicas that answered with something older. With `sync`, replicas without a value
    /// for the key raise its fence to `fence` as they answer (see [`Request::Read`]).
    async fn quorum_read(
        &self,
        key: &str,
        fence: u64,
        sync: bool,
    ) -> Result<Option<Versioned>, StoreError> {
        let inner = &self.inner;
        let need = inner.quorum();
        let read = Request::Read {
            key: key.to_string(),
            fence: Some(fence),
            sync,
        };
        let mut good = 0;
        let answers = self
            .ask_replicas(read, |r| {
                good += usize::from(matches!(r, Response::Value(_)));
                good >= need
            })
            .await;
        let mut newest: Option<Versioned> = None;
        let mut seen = None;
        let mut values = Vec::new();
        for (who, r) in answers {
            match r {
                Response::Value(v) => {
                    if v.as_ref().map(|x| x.version) > newest.as_ref().map(|x| x.version) {
                        newest = v.clone();
                    }
                    values.push((who, v));
                }
                Response::Fenced(f) => seen = seen.max(Some(f)),
                _ => {}
            }
        }
        if values.len() < need {
            return Err(match seen {
                Some(seen) => StoreError::Fenced {
                    lock_ref: fence,
                    seen,
                },
                None => StoreError::NoQuorum {
                    got: values.len(),
                    need,
                },
            });
        }
        if let Some(n) = &newest {
            let item = Item {
                key: key.to_string(),
                value: n.value.clone(),
                version: n.version,
            };
            for (who, v) in values {
                if v.as_ref().map(|x| x.version) < Some(n.version) {
                    match who {
                        None => inner.apply_items(std::slice::from_ref(&item))?,
                        // Read repair, in the background.
                        Some(p) => {
                            let (inner, item) = (inner.clone(), item.clone());
                            tokio::spawn(async move {
                                let _ = inner.call(&p, &Request::Replicate(vec![item])).await;
                            });
                        }
                    }
                }
            }
        }
        Ok(newest)
    }

    /// Writes `item` (its epoch the lock ref) to a quorum.
    async fn quorum_write(&self, item: Item) -> Result<(), StoreError> {
        let lock_ref = item.version.epoch;
        self.quorum_request(Request::CriticalWrite(item), lock_ref)
            .await
    }

    async fn quorum_request(&self, req: Request, lock_ref: u64) -> Result<(), StoreError> {
        let need = self.inner.quorum();
        let mut done = 0;
        let answers = self
            .ask_replicas(req, |r| {
                done += usize::from(matches!(r, Response::Done));
                done >= need
            })
            .await;
        if done >= need {
            return Ok(());
        }
        let seen = answers
            .iter()
            .filter_map(|(_, r)| match r {
                Response::Fenced(f) => Some(*f),
                _ => None,
            })
            .max();
        Err(match seen {
            Some(seen) => StoreError::Fenced { lock_ref, seen },
            None => StoreError::NoQuorum { got: done, need },
        })
    }
}

impl DataStore for EmbeddedStore {
    async fn put(&self, key: &str, value: Bytes) -> Result<Version, StoreError> {
        check(key, Some(&value))?;
        let inner = &self.inner;
        let version = Version {
            epoch: inner.local.put_epoch(key)?,
            hlc: inner.hlc.now(),
            node: inner.cfg.me,
        };
        inner.local.apply(key, &value, version)?;
        for p in inner.peer_list().iter() {
            // The replicator ships the newest value of the key when it gets to it.
            let _ = p.outbox.send(key.to_string());
        }
        Ok(version)
    }

    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        check(key, None)?;
        self.inner.local.get(key)
    }

    async fn critical_put(
        &self,
        key: &str,
        value: Bytes,
        lock_ref: u64,
    ) -> Result<Version, StoreError> {
        check(key, Some(&value))?;
        let version = Version {
            epoch: lock_ref,
            hlc: self.inner.hlc.now(),
            node: self.inner.cfg.me,
        };
        self.quorum_write(Item {
            key: key.to_string(),
            value,
            version,
        })
        .await?;
        Ok(version)
    }

    async fn critical_get(
        &self,
        key: &str,
        lock_ref: u64,
    ) -> Result<Option<Versioned>, StoreError> {
        check(key, None)?;
        self.quorum_read(key, lock_ref, false).await
    }

    async fn critical_put_many(
        &self,
        items: Vec<(String, Bytes)>,
        lock_ref: u64,
    ) -> Result<(), StoreError> {
        let mut list = Vec::with_capacity(items.len());
        for (key, value) in items {
            check(&key, Some(&value))?;
            list.push(Item {
                key,
                value,
                version: Version {
                    epoch: lock_ref,
                    hlc: self.inner.hlc.now(),
                    node: self.inner.cfg.me,
                },
            });
        }
        self.quorum_request(Request::CriticalWriteMany(list), lock_ref)
            .await
    }

    async fn sync(&self, key: &str, lock_ref: u64) -> Result<(), StoreError> {
        check(key, None)?;
        let newest = self.quorum_read(key, lock_ref, true).await?;
        match newest {
            // Written back under the new ref: a quorum now holds it, fenced.
            Some(v) => {
                let version = Version {
                    epoch: lock_ref.max(v.version.epoch),
                    hlc: self.inner.hlc.now(),
                    node: self.inner.cfg.me,
                };
                self.quorum_write(Item {
                    key: key.to_string(),
                    value: v.value,
                    version,
                })
                .await
            }
            // No value at a quorum: the sync read has raised those replicas' fences.
            None => Ok(()),
        }
    }
}

/// Ships plain puts to one peer, batched; what it cannot deliver becomes hints on disk,
/// replayed every `hint_retry_every` until the peer takes them.
async fn replicator(
    inner: Arc<Inner>,
    peer: Arc<Peer>,
    mut rx: mpsc::UnboundedReceiver<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let id = peer.id;
    let mut retry = tokio::time::interval(inner.cfg.hint_retry_every);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut keys: Vec<String> = tokio::select! {
            k = rx.recv() => match k {
                Some(k) => vec![k],
                None => return,
            },
            _ = retry.tick() => match inner.local.hints(id, 512) {
                Ok(h) if !h.is_empty() => h,
                _ => continue,
            },
            _ = shutdown.changed() => return,
        };
        while keys.len() < 512 {
            match rx.try_recv() {
                Ok(k) => keys.push(k),
                Err(_) => break,
            }
        }
        keys.sort();
        keys.dedup();
        let shipped = match inner.items(&keys) {
            Ok(items) => match inner.call(&peer, &Request::Replicate(items)).await {
                Ok(Response::Done) => Ok(()),
                other => Err(format!("peer did not take them: {other:?}")),
            },
            Err(e) => Err(format!("reading their values failed: {e}")),
        };
        match shipped {
            Ok(()) => {
                let _ = inner.local.clear_hints(id, &keys);
            }
            Err(e) => {
                // Kept as hints, shipped again later (and anti-entropy backs that up).
                tracing::debug!(peer = id, "{} keys not shipped: {e}", keys.len());
                if let Err(e) = inner.local.add_hints(id, &keys) {
                    tracing::warn!(peer = id, "keeping hints failed: {e}");
                }
            }
        }
    }
}

/// Compares digests with every peer now and then and exchanges what differs.
async fn anti_entropy(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(inner.cfg.anti_entropy_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        for peer in inner.peer_list().iter() {
            if let Err(e) = reconcile(&inner, peer).await {
                tracing::debug!(peer = peer.id, "anti-entropy: {e}");
            }
        }
    }
}

/// One anti-entropy round with one peer; returns how many keys changed hands.
async fn reconcile(inner: &Arc<Inner>, peer: &Peer) -> Result<usize, String> {
    let theirs = match inner.call(peer, &Request::Digest).await? {
        Response::Digest(d) if d.len() == BUCKETS as usize => d,
        other => return Err(format!("unexpected digest answer {other:?}")),
    };
    let mine = inner.local.digest().map_err(|e| e.to_string())?;
    let mut moved = 0;
    for b in 0..BUCKETS {
        if mine[b as usize] == theirs[b as usize] {
            continue;
        }
        let their_keys = match inner.call(peer, &Request::Bucket(b)).await? {
            Response::Versions(v) => v,
            other => return Err(format!("unexpected bucket answer {other:?}")),
        };
        let my_keys = inner.local.bucket(b).map_err(|e| e.to_string())?;
        let theirs: std::collections::HashMap<&str, Version> =
            their_keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let mine: std::collections::HashMap<&str, Version> =
            my_keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let pull: Vec<String> = theirs
            .iter()
            .filter(|(k, v)| mine.get(*k).is_none_or(|m| m < *v))
            .map(|(k, _)| k.to_string())
            .collect();
        let push: Vec<String> = mine
            .iter()
            .filter(|(k, v)| theirs.get(*k).is_none_or(|t| t < *v))
            .map(|(k, _)| k.to_string())
            .collect();
        if !pull.is_empty() {
            match inner.call(peer, &Request::Fetch(pull.clone())).await? {
                Response::Items(items) => {
                    inner.apply_items(&items).map_err(|e| e.to_string())?;
                    moved += items.len();
                }
                other => return Err(format!("unexpected fetch answer {other:?}")),
            }
        }
        if !push.is_empty() {
            let items = inner.items(&push).map_err(|e| e.to_string())?;
            moved += items.len();
            inner.call(peer, &Request::Replicate(items)).await?;
        }
    }
    if moved > 0 {
        tracing::info!(peer = peer.id, keys = moved, "anti-entropy repaired");
    }
    Ok(moved)
}
