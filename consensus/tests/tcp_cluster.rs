//! Issue 3, multi-process: three `consensus-node` processes over TCP on loopback. The
//! leader and then a follower are killed with SIGKILL and restarted from their logs while a
//! client keeps writing (with snapshots every 16 entries, so restarts recover from a
//! snapshot and laggards catch up by snapshot transfer); every write the cluster
//! acknowledged must still be there, and a peer without the cluster secret must be refused.
//! A fourth process joins a running cluster, the leader removes itself, and the cluster
//! keeps every acknowledged write with the newcomer as part of its majority.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use consensus::client::Client;

const SECRET: &str = "test-cluster-secret-0123456789";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Node {
    id: u64,
    // Started outside the cluster, to be added.
    join: bool,
    peer: SocketAddr,
    client: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

struct Cluster {
    nodes: Vec<Node>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    fn start(n: u64) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let nodes = (1..=n)
            .map(|id| Node {
                id,
                join: false,
                peer: SocketAddr::from(([127, 0, 0, 1], free_port())),
                client: SocketAddr::from(([127, 0, 0, 1], free_port())),
                dir: tmp.path().join(format!("n{id}")),
                log: tmp.path().join(format!("n{id}.log")),
                child: None,
            })
            .collect();
        let mut c = Cluster { nodes, _tmp: tmp };
        for i in 0..c.nodes.len() {
            c.spawn(i);
        }
        c
    }

    /// A replica started with `--join`, knowing the founding members.
    fn spawn_joiner(&mut self) -> usize {
        let id = self.nodes.len() as u64 + 1;
        let dir = self._tmp.path().to_path_buf();
        self.nodes.push(Node {
            id,
            join: true,
            peer: SocketAddr::from(([127, 0, 0, 1], free_port())),
            client: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir: dir.join(format!("n{id}")),
            log: dir.join(format!("n{id}.log")),
            child: None,
        });
        let i = self.nodes.len() - 1;
        self.spawn(i);
        i
    }

    fn spawn(&mut self, i: usize) {
        // Founding members list each other; a joiner lists the founders to reach.
        let peers: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.id != self.nodes[i].id && !n.join)
            .map(|n| format!("{}={}", n.id, n.peer))
            .collect();
        let n = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_consensus-node"));
        cmd.arg("--id")
            .arg(n.id.to_string())
            .arg("--listen")
            .arg(n.peer.to_string())
            .arg("--client-listen")
            .arg(n.client.to_string())
            .arg("--data-dir")
            .arg(&n.dir)
            // Small, so that restarted replicas catch up from a snapshot and old log
            // segments are deleted during the test.
            .arg("--snapshot-every")
            .arg("16")
            .env("MDBC_CLUSTER_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(log);
        for p in &peers {
            cmd.arg("--peer").arg(p);
        }
        if n.join {
            cmd.arg("--join");
        }
        n.child = Some(cmd.spawn().expect("consensus-node starts"));
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn client_addrs(&self) -> HashMap<u64, SocketAddr> {
        self.nodes.iter().map(|n| (n.id, n.client)).collect()
    }

    /// The replica that serves linearizable reads right now (the leader).
    async fn leader(&self) -> usize {
        for _ in 0..200 {
            for (i, n) in self.nodes.iter().enumerate() {
                if n.child.is_none() {
                    continue;
                }
                let mut c = Client::new(HashMap::from([(n.id, n.client)]), SECRET.as_bytes());
                c.attempt_timeout = Duration::from_millis(300);
                c.deadline = Duration::from_millis(300);
                if c.get(b"probe").await.is_ok() {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader emerged");
    }

    /// `consensus-node`'s own view (`consensus-ctl status`) of replica `i`.
    async fn status(&self, i: usize) -> String {
        let n = &self.nodes[i];
        let mut c = Client::new(HashMap::from([(n.id, n.client)]), SECRET.as_bytes());
        c.deadline = Duration::from_secs(5);
        c.status().await.unwrap_or_default()
    }

    fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

async fn write_batch(
    client: &mut Client,
    acked: &mut Vec<(String, String)>,
    from: usize,
    n: usize,
) {
    for k in from..from + n {
        let key = format!("key{k}");
        let value = format!("value{k}");
        client
            .put(key.as_bytes(), value.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
        acked.push((key, value));
    }
}

fn segment_numbers(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".seg").and_then(|n| n.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_the_leader_then_a_follower_and_lose_nothing_acknowledged() {
    let mut cluster = Cluster::start(3);
    let mut client = Client::new(cluster.client_addrs(), SECRET.as_bytes());
    let mut acked = Vec::new();
    write_batch(&mut client, &mut acked, 0, 50).await;

    let leader = cluster.leader().await;
    cluster.kill(leader);
    write_batch(&mut client, &mut acked, 50, 50).await;
    cluster.spawn(leader);
    write_batch(&mut client, &mut acked, 100, 30).await;

    let new_leader = cluster.leader().await;
    let follower = (0..3).find(|&i| i != new_leader).unwrap();
    cluster.kill(follower);
    write_batch(&mut client, &mut acked, 130, 50).await;
    cluster.spawn(follower);
    write_batch(&mut client, &mut acked, 180, 20).await;

    // Every acknowledged write, read back linearizably.
    for (k, v) in &acked {
        let got = client.get(k.as_bytes()).await.unwrap();
        assert_eq!(got, v.as_bytes(), "{k}");
    }
    // Kill the current leader as well: the other two elect a leader and still hold
    // everything.
    let last = cluster.leader().await;
    cluster.kill(last);
    for (k, v) in acked.iter().step_by(7) {
        let got = client.get(k.as_bytes()).await.unwrap();
        assert_eq!(got, v.as_bytes(), "{k} after killing the leader again");
    }
    for n in &cluster.nodes {
        // Snapshots compacted the log: old segments were replaced by a checkpoint.
        let segs = segment_numbers(&n.dir);
        assert!(!segs.is_empty(), "node {} wrote its log", n.id);
        assert!(
            segs.len() <= 2 && segs[0] > 1,
            "node {}: segments {segs:?}",
            n.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_secret_is_refused_and_logged() {
    let cluster = Cluster::start(3);
    let _ = cluster.leader().await;
    let target = &cluster.nodes[0];
    let mut s = tokio::net::TcpStream::connect(target.peer).await.unwrap();
    let mut buf = BytesMut::new();
    let r = consensus::net::handshake_initiator(
        &mut s,
        &mut buf,
        b"not-the-cluster-secret-at-all",
        b"MDBC-PAXOS/1",
        2,
    )
    .await;
    assert!(r.is_err(), "the handshake must fail without the secret");
    // Garbage instead of a handshake is refused too, and the node keeps serving.
    let mut g = tokio::net::TcpStream::connect(target.peer).await.unwrap();
    use tokio::io::AsyncWriteExt;
    let _ = g
        .write_all(b"\x00\x00\x00\x05\x00\x00\x00\x00hello garbage")
        .await;
    drop(g);
    let mut client = Client::new(cluster.client_addrs(), SECRET.as_bytes());
    client.put(b"still", b"serving").await.unwrap();
    let mut logged = false;
    for _ in 0..50 {
        if cluster.log_text(0).contains("refused unauthenticated peer") {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged, "log:\n{}", cluster.log_text(0));
    // A client without the secret cannot write.
    let mut intruder = Client::new(cluster.client_addrs(), b"wrong-secret-wrong-secret");
    intruder.deadline = Duration::from_secs(2);
    assert!(intruder.put(b"evil", b"write").await.is_err());
    assert!(client.get(b"evil").await.unwrap().is_empty());
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_joins_and_the_leader_removes_itself_without_losing_writes() {
    let mut cluster = Cluster::start(3);
    let mut client = Client::new(cluster.client_addrs(), SECRET.as_bytes());
    let mut acked = Vec::new();
    write_batch(&mut client, &mut acked, 0, 40).await;

    // A fourth replica joins: it waits outside until added, then catches up (by snapshot:
    // the others compacted long ago).
    let four = cluster.spawn_joiner();
    let (id4, peer4, client4) = {
        let n = &cluster.nodes[four];
        (n.id, n.peer, n.client)
    };
    let before = cluster.status(four).await;
    assert_eq!(field(&before, "members"), "", "not a member yet: {before}");
    assert_ne!(field(&before, "role"), "leader");
    client.add_node(id4, client4);
    client.add_member(id4, &peer4.to_string()).await.unwrap();
    // A retry of the same change is answered, not refused.
    client.add_member(id4, &peer4.to_string()).await.unwrap();
    write_batch(&mut client, &mut acked, 40, 40).await;
    let mut joined = String::new();
    for _ in 0..100 {
        joined = cluster.status(four).await;
        if field(&joined, "members") == "1,2,3,4" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(field(&joined, "members"), "1,2,3,4", "{joined}");
    assert!(
        cluster
            .log_text(four)
            .contains("caught up from a peer's snapshot"),
        "log:\n{}",
        cluster.log_text(four)
    );

    // The leader removes itself: it hands over, and the others go on without it.
    let old = cluster.leader().await;
    let old_id = cluster.nodes[old].id;
    client.remove_member(old_id).await.unwrap();
    write_batch(&mut client, &mut acked, 80, 40).await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, old, "the removed leader no longer serves reads");
    let removed = cluster.status(old).await;
    assert!(
        !field(&removed, "members")
            .split(',')
            .any(|m| m == old_id.to_string()),
        "{removed}"
    );
    assert!(
        cluster
            .log_text(old)
            .contains("was removed from the cluster"),
        "log:\n{}",
        cluster.log_text(old)
    );

    // Three members remain, the newcomer among them. Kill another founder: the majority
    // left needs the newcomer, which must hold everything acknowledged.
    let founder = (0..3).find(|&i| i != old && i != four).unwrap();
    cluster.kill(founder);
    cluster.kill(old);
    write_batch(&mut client, &mut acked, 120, 30).await;
    for (k, v) in &acked {
        let got = client.get(k.as_bytes()).await.unwrap();
        assert_eq!(got, v.as_bytes(), "{k}");
    }
}
