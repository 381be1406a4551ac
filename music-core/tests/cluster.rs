//! Issue 4, in one process: three MUSIC nodes (consensus over TCP, node RPC, embedded
//! store on disk) and the lock and key-space operations across them.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use bytes::Bytes;
use music_core::node::{MusicNode, NodeSettings, PeerSettings};
use music_core::service::{Music, MusicError};
use music_core::store::embedded::EmbeddedStore;
use music_core::store::{DataStore, StoreError};
use music_core::version::Version;
use tokio::sync::watch;

const SECRET: &[u8] = b"music-test-secret-0123456789";

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

struct Cluster {
    nodes: Vec<Option<MusicNode>>,
    settings: Vec<NodeSettings>,
    stops: Vec<watch::Sender<bool>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes. Ports are picked free and bound a moment later, so another
    /// process (or an outgoing connection) may take one in between: then start over.
    async fn start(n: u64, lease: Duration) -> Cluster {
        for _ in 0..5 {
            match Cluster::try_start(n, lease).await {
                Ok(c) => return c,
                Err(e) if e.to_string().contains("in use") => continue,
                Err(e) => panic!("starting the cluster: {e}"),
            }
        }
        panic!("no free ports after five tries");
    }

    async fn try_start(n: u64, lease: Duration) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir().unwrap();
        let addrs: Vec<(SocketAddr, SocketAddr)> =
            (0..n).map(|_| (free_addr(), free_addr())).collect();
        let mut settings = Vec::new();
        for id in 1..=n {
            let mut s = NodeSettings::new(id, dir.path().join(format!("n{id}")), SECRET.to_vec());
            s.consensus_listen = addrs[(id - 1) as usize].0;
            s.rpc_listen = addrs[(id - 1) as usize].1;
            s.peers = (1..=n)
                .filter(|p| *p != id)
                .map(|p| PeerSettings {
                    id: p,
                    consensus: addrs[(p - 1) as usize].0,
                    rpc: addrs[(p - 1) as usize].1,
                })
                .collect();
            s.lease = lease;
            s.election_ticks = 100;
            s.lease_ticks = 80;
            s.quorum_timeout = Duration::from_millis(500);
            s.anti_entropy_every = Duration::from_millis(300);
            settings.push(s);
        }
        let mut c = Cluster {
            nodes: Vec::new(),
            settings,
            stops: Vec::new(),
            _dir: dir,
        };
        for i in 0..n as usize {
            let (tx, rx) = watch::channel(false);
            c.stops.push(tx);
            // On failure, dropping `c` stops the nodes started so far.
            let node = MusicNode::start(c.settings[i].clone(), rx).await?;
            c.nodes.push(Some(node));
        }
        Ok(c)
    }

    fn music(&self, i: usize) -> &Music<EmbeddedStore> {
        &self.nodes[i].as_ref().expect("node running").music
    }

    async fn stop(&mut self, i: usize) {
        let _ = self.stops[i].send(true);
        if let Some(n) = self.nodes[i].take() {
            let _ = n.consensus_task.await;
        }
        // Give the node's listeners and connections a moment to close.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    async fn restart(&mut self, i: usize) {
        let (tx, rx) = watch::channel(false);
        self.stops[i] = tx;
        self.nodes[i] = Some(
            MusicNode::start(self.settings[i].clone(), rx)
                .await
                .unwrap(),
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &self.stops {
            let _ = s.send(true);
        }
    }
}

/// Waits until `check` holds, or fails after `secs` with `what`.
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within {secs}s");
}

fn key_list(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_critical_writes_across_nodes() {
    let c = Cluster::start(3, Duration::from_secs(10)).await;
    let a = c
        .music(0)
        .create_lock_ref(&key_list(&["acct"]), "first")
        .await
        .unwrap();
    let b = c
        .music(1)
        .create_lock_ref(&key_list(&["acct"]), "second")
        .await
        .unwrap();
    assert!(b > a, "lock refs increase");
    assert!(c.music(2).acquire_lock(a).await.unwrap().held);
    assert!(!c.music(1).acquire_lock(b).await.unwrap().held);
    assert_eq!(
        c.music(2).holder("acct").await.unwrap().map(|h| h.lock_ref),
        Some(a)
    );
    assert_eq!(
        c.music(0)
            .queue("acct")
            .await
            .unwrap()
            .iter()
            .map(|i| i.lock_ref)
            .collect::<Vec<_>>(),
        vec![a, b]
    );
    c.music(1)
        .critical_put("acct", Bytes::from_static(b"100"), a)
        .await
        .unwrap();
    let got = c.music(2).critical_get("acct", a).await.unwrap().unwrap();
    assert_eq!(got.value, Bytes::from_static(b"100"));
    // The waiter is not the holder: its critical writes are refused.
    let e = c
        .music(0)
        .critical_put("acct", Bytes::from_static(b"-1"), b)
        .await
        .unwrap_err();
    assert!(matches!(e, MusicError::NotHolder { .. }), "{e}");

    // The waiter is woken by the release (no polling), then holds and sees the value.
    let waiter = {
        let m = c.music(1).clone();
        tokio::spawn(async move { m.acquire_lock_wait(b, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    assert!(c.music(0).release_lock(a).await.unwrap());
    assert!(waiter.await.unwrap().unwrap().held);
    let got = c.music(1).critical_get("acct", b).await.unwrap().unwrap();
    assert_eq!(got.value, Bytes::from_static(b"100"));
    // The old holder is gone, and its late writes are refused: by the lock table, or —
    // through node 3, which acquired it and has not seen the release made elsewhere —
    // by the replicas' fences.
    let e = c
        .music(2)
        .critical_put("acct", Bytes::from_static(b"late"), a)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            MusicError::Lock(_) | MusicError::Store(StoreError::Fenced { .. })
        ),
        "{e}"
    );
    let e = c
        .music(0)
        .critical_put("acct", Bytes::from_static(b"late"), a)
        .await
        .unwrap_err();
    assert!(matches!(e, MusicError::Lock(_)), "{e}");
    // Below the service, the replicas themselves fence the old ref off.
    let e = c
        .music(2)
        .store()
        .critical_put("acct", Bytes::from_static(b"late"), a)
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Fenced { lock_ref, seen } if lock_ref == a && seen == b),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_locks_in_opposite_orders_do_not_deadlock() {
    let c = Cluster::start(3, Duration::from_secs(10)).await;
    let x = c
        .music(0)
        .create_lock_ref(&key_list(&["x", "y"]), "one")
        .await
        .unwrap();
    let y = c
        .music(1)
        .create_lock_ref(&key_list(&["y", "x"]), "two")
        .await
        .unwrap();
    let first = c
        .music(0)
        .acquire_lock_wait(x, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(first.held);
    let second = {
        let m = c.music(1).clone();
        tokio::spawn(async move { m.acquire_lock_wait(y, Duration::from_secs(10)).await })
    };
    c.music(0)
        .critical_put("x", Bytes::from_static(b"1"), x)
        .await
        .unwrap();
    c.music(0)
        .critical_put("y", Bytes::from_static(b"1"), x)
        .await
        .unwrap();
    c.music(0).release_lock(x).await.unwrap();
    assert!(second.await.unwrap().unwrap().held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stops_renewing_is_released_and_fenced() {
    let c = Cluster::start(3, Duration::from_millis(600)).await;
    let dead = c
        .music(0)
        .create_lock_ref(&key_list(&["job"]), "dies")
        .await
        .unwrap();
    assert!(c.music(0).acquire_lock(dead).await.unwrap().held);
    c.music(0)
        .critical_put("job", Bytes::from_static(b"v1"), dead)
        .await
        .unwrap();
    // Renewing keeps it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.music(0).renew(dead).await.unwrap();
    let next = c
        .music(1)
        .create_lock_ref(&key_list(&["job"]), "next")
        .await
        .unwrap();
    // Then the holder stops renewing; the waiter comes to hold without anyone releasing.
    let got = c
        .music(1)
        .acquire_lock_wait(next, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(got.held);
    assert!(
        c.music(2).lock_info(dead).await.unwrap().is_none(),
        "force-released"
    );
    assert_eq!(
        c.music(1)
            .critical_get("job", next)
            .await
            .unwrap()
            .unwrap()
            .value,
        Bytes::from_static(b"v1")
    );
    let e = c
        .music(0)
        .critical_put("job", Bytes::from_static(b"zombie"), dead)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            MusicError::Lock(_) | MusicError::Store(StoreError::Fenced { .. })
        ),
        "{e}"
    );
    let e = c
        .music(0)
        .store()
        .critical_put("job", Bytes::from_static(b"zombie"), dead)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Fenced { .. }), "{e}");
    assert_eq!(
        c.music(2)
            .critical_get("job", next)
            .await
            .unwrap()
            .unwrap()
            .value,
        Bytes::from_static(b"v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquiring_syncs_a_write_that_reached_only_a_minority() {
    let c = Cluster::start(3, Duration::from_millis(500)).await;
    let old = c
        .music(0)
        .create_lock_ref(&key_list(&["k"]), "old")
        .await
        .unwrap();
    assert!(c.music(0).acquire_lock(old).await.unwrap().held);
    c.music(0)
        .critical_put("k", Bytes::from_static(b"committed"), old)
        .await
        .unwrap();
    // The old holder's next write reaches node 3 only, then it dies.
    let v = c
        .music(2)
        .store()
        .local()
        .get("k")
        .unwrap()
        .unwrap()
        .version;
    let minority = Version {
        hlc: v.hlc + 1,
        ..v
    };
    c.music(2)
        .store()
        .local()
        .critical_apply("k", b"minority", minority)
        .await
        .unwrap();
    let new = c
        .music(1)
        .create_lock_ref(&key_list(&["k"]), "new")
        .await
        .unwrap();
    assert!(
        c.music(1)
            .acquire_lock_wait(new, Duration::from_secs(10))
            .await
            .unwrap()
            .held
    );
    // Whatever the sync picked, every quorum read now agrees, from every node.
    let mut seen = BTreeMap::new();
    for round in 0..5 {
        for i in 0..3 {
            let v = c.music(i).critical_get("k", new).await.unwrap().unwrap();
            seen.insert(v.value.clone(), (round, i));
        }
    }
    assert_eq!(seen.len(), 1, "quorum reads disagree: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_puts_converge_after_a_node_returns() {
    let mut c = Cluster::start(3, Duration::from_secs(10)).await;
    c.music(0).put("a", Bytes::from_static(b"1")).await.unwrap();
    eventually(5, "node 3 sees the put", || async {
        c.music(2).get("a").await.unwrap().map(|v| v.value) == Some(Bytes::from_static(b"1"))
    })
    .await;
    // Node 3 goes down; puts go on at the others (hinted for node 3).
    c.stop(2).await;
    for i in 0..20 {
        let at = i % 2;
        c.music(at)
            .put(&format!("k{i}"), Bytes::from(format!("v{i}")))
            .await
            .unwrap();
    }
    c.music(1).put("a", Bytes::from_static(b"2")).await.unwrap();
    c.restart(2).await;
    eventually(10, "every replica holds the same data", || async {
        let d: Vec<Vec<u64>> = (0..3)
            .map(|i| c.music(i).store().local().digest().unwrap())
            .collect();
        d[0] == d[1] && d[1] == d[2]
    })
    .await;
    assert_eq!(
        c.music(2).get("a").await.unwrap().unwrap().value,
        Bytes::from_static(b"2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutex_guard_outlives_its_lease_by_renewing() {
    let c = Cluster::start(3, Duration::from_millis(600)).await;
    let keys = key_list(&["res"]);
    let g = c
        .music(0)
        .lock(&keys, "one", Duration::from_secs(5))
        .await
        .unwrap();
    g.put("res", Bytes::from_static(b"a")).await.unwrap();
    let other = {
        let m = c.music(1).clone();
        let keys = keys.clone();
        tokio::spawn(async move { m.lock(&keys, "two", Duration::from_secs(10)).await })
    };
    // Three leases long, still held and still writing.
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    assert!(!g.is_lost());
    assert!(
        !other.is_finished(),
        "the other got the lock while it was held"
    );
    g.put("res", Bytes::from_static(b"b")).await.unwrap();
    g.release().await.unwrap();
    let g2 = other.await.unwrap().unwrap();
    assert_eq!(
        g2.get("res").await.unwrap().unwrap().value,
        Bytes::from_static(b"b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_passive_candidate_takes_over_when_the_active_one_dies() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut c = Cluster::start(3, Duration::from_millis(600)).await;
    let active = Arc::new(AtomicUsize::new(0));
    let max_active = Arc::new(AtomicUsize::new(0));
    let (became_tx, mut became) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut stops = Vec::new();
    for i in 0..3 {
        let (stop_tx, stop_rx) = watch::channel(false);
        stops.push(stop_tx);
        let m = c.music(i).clone();
        let (active, max_active, became_tx) =
            (active.clone(), max_active.clone(), became_tx.clone());
        tokio::spawn(music_core::recipes::run_for_leader(
            m,
            "service".to_string(),
            format!("candidate-{i}"),
            move |mut guard| {
                let (active, max_active, became_tx) =
                    (active.clone(), max_active.clone(), became_tx.clone());
                async move {
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    max_active.fetch_max(now, Ordering::SeqCst);
                    let _ = became_tx.send(i);
                    guard.lost().await;
                    active.fetch_sub(1, Ordering::SeqCst);
                }
            },
            stop_rx,
        ));
    }
    let first = tokio::time::timeout(Duration::from_secs(10), became.recv())
        .await
        .unwrap()
        .unwrap();
    // The active candidate's node dies: its renewals fail, its lease runs out, and the
    // failover callback runs on another candidate.
    c.stop(first).await;
    let second = tokio::time::timeout(Duration::from_secs(15), became.recv())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(second, first);
    assert_eq!(
        max_active.load(Ordering::SeqCst),
        1,
        "two candidates were active at once"
    );
    for s in stops {
        let _ = s.send(true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_opens_when_the_last_party_arrives() {
    let c = Cluster::start(3, Duration::from_secs(5)).await;
    let mut early = Vec::new();
    for i in 0..2 {
        let m = c.music(i).clone();
        early.push(tokio::spawn(async move {
            music_core::recipes::barrier(&m, "start", 3, Duration::from_secs(20)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        early.iter().all(|t| !t.is_finished()),
        "the barrier opened early"
    );
    music_core::recipes::barrier(c.music(2), "start", 3, Duration::from_secs(20))
        .await
        .unwrap();
    for t in early {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// Lock safety under faults: workers increment a counter under the lock (critical read,
/// critical write) through random nodes while nodes are stopped and restarted one at a
/// time, and some workers stall past their lease before writing. Mutual exclusion and
/// fencing hold exactly when the counter equals the increments acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lost_or_doubled_increment_under_faults() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let c = Arc::new(tokio::sync::RwLock::new(
        Cluster::start(3, Duration::from_millis(700)).await,
    ));
    let acked = Arc::new(AtomicU64::new(0));
    let refused_late = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let keys = key_list(&["counter"]);
    let mut workers = Vec::new();
    for w in 0..3u64 {
        let (c, acked, refused_late, done, keys) = (
            c.clone(),
            acked.clone(),
            refused_late.clone(),
            done.clone(),
            keys.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut seq = w;
            while done.load(Ordering::SeqCst) == 0 {
                seq += 1;
                let node = (seq % 3) as usize;
                let m = {
                    let c = c.read().await;
                    match c.nodes[node].as_ref() {
                        Some(n) => n.music.clone(),
                        None => continue,
                    }
                };
                let Ok(r) = m.create_lock_ref(&keys, "worker").await else {
                    continue;
                };
                match m.acquire_lock_wait(r, Duration::from_secs(5)).await {
                    Ok(a) if a.held => {}
                    _ => {
                        let _ = m.release_lock(r).await;
                        continue;
                    }
                }
                let Ok(v) = m.critical_get("counter", r).await else {
                    let _ = m.release_lock(r).await;
                    continue;
                };
                let n: u64 = v
                    .map(|v| String::from_utf8_lossy(&v.value).parse().unwrap_or(0))
                    .unwrap_or(0);
                let stall = seq % 7 == 0;
                if stall {
                    // A holder that pauses past its lease: someone else may take over.
                    tokio::time::sleep(Duration::from_millis(1_000)).await;
                }
                match m
                    .critical_put("counter", Bytes::from((n + 1).to_string()), r)
                    .await
                {
                    Ok(_) => {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) if stall => {
                        refused_late.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => {}
                }
                let _ = m.release_lock(r).await;
            }
        }));
    }
    // Faults: stop and restart each node in turn while the workers run.
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let victim = round % 3;
        c.write().await.stop(victim).await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        c.write().await.restart(victim).await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    done.store(1, Ordering::SeqCst);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    // Read the counter under a lock of its own.
    let c = c.read().await;
    let m = c.music(0);
    let g = m
        .lock(&keys, "checker", Duration::from_secs(20))
        .await
        .unwrap();
    let total: u64 = g
        .get("counter")
        .await
        .unwrap()
        .map(|v| String::from_utf8_lossy(&v.value).parse().unwrap_or(0))
        .unwrap_or(0);
    let acked = acked.load(Ordering::SeqCst);
    assert!(acked >= 10, "too little progress to mean anything: {acked}");
    assert_eq!(total, acked, "lost or doubled increments");
    eprintln!(
        "{acked} increments acknowledged, {} late writes refused",
        refused_late.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_puts_on_both_sides_of_a_partition_converge_when_it_heals() {
    let c = Cluster::start(3, Duration::from_secs(10)).await;
    // Node 1 on one side, nodes 2 and 3 on the other (the store's calls only).
    c.music(0).store().cut_off(&[2, 3]);
    c.music(1).store().cut_off(&[1]);
    c.music(2).store().cut_off(&[1]);
    for i in 0..20 {
        let side = if i % 2 == 0 { 0 } else { 1 };
        c.music(side)
            .put(
                &format!("p{}", i % 7),
                Bytes::from(format!("side{side}-{i}")),
            )
            .await
            .unwrap();
    }
    // Plain puts stay available on the minority side; quorum operations do not.
    c.music(0)
        .put("minority", Bytes::from_static(b"ok"))
        .await
        .unwrap();
    let e = c
        .music(0)
        .store()
        .critical_get("minority", 1_000_000)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NoQuorum { .. }), "{e}");
    let before: Vec<Vec<u64>> = (0..3)
        .map(|i| c.music(i).store().local().digest().unwrap())
        .collect();
    assert_ne!(before[0], before[1], "the sides diverged");
    for i in 0..3 {
        c.music(i).store().cut_off(&[]);
    }
    eventually(
        15,
        "every replica holds the same data after healing",
        || async {
            let d: Vec<Vec<u64>> = (0..3)
                .map(|i| c.music(i).store().local().digest().unwrap())
                .collect();
            d[0] == d[1] && d[1] == d[2]
        },
    )
    .await;
    // And the same value per key: the last writer's.
    for k in 0..7 {
        let key = format!("p{k}");
        let vals: Vec<_> = (0..3)
            .map(|i| c.music(i).store().local().get(&key).unwrap())
            .collect();
        assert!(vals.iter().all(|v| v == &vals[0]), "{key}: {vals:?}");
    }
}
