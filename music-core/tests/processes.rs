//! Issue 4, as separate processes: three `music-node`s on loopback, driven through the
//! REST API with an HTTP client — the operations end to end, bad input, failover of the
//! lock service when its consensus leader is killed, forced release of a dead holder —
//! and the node RPC refusing whoever lacks the cluster secret.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SECRET: &str = "music-process-test-secret-0123";

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

struct Node {
    id: u64,
    consensus: SocketAddr,
    rpc: SocketAddr,
    http: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

struct Cluster {
    nodes: Vec<Node>,
    lease_ms: u64,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes. Ports are picked free and bound a moment later by the node,
    /// so another process may take one in between: then start over on new ones.
    fn start(n: u64, lease_ms: u64) -> Cluster {
        for _ in 0..5 {
            if let Some(c) = Cluster::try_start(n, lease_ms) {
                return c;
            }
        }
        panic!("no free ports after five tries");
    }

    fn try_start(n: u64, lease_ms: u64) -> Option<Cluster> {
        let tmp = tempfile::tempdir().unwrap();
        let nodes = (1..=n)
            .map(|id| Node {
                id,
                consensus: free_addr(),
                rpc: free_addr(),
                http: free_addr(),
                dir: tmp.path().join(format!("n{id}")),
                log: tmp.path().join(format!("n{id}.log")),
                child: None,
            })
            .collect();
        let mut c = Cluster {
            nodes,
            lease_ms,
            _tmp: tmp,
        };
        for i in 0..c.nodes.len() {
            c.spawn(i);
        }
        for i in 0..c.nodes.len() {
            if !c.wait_http(i) {
                return None;
            }
        }
        Some(c)
    }

    fn spawn(&mut self, i: usize) {
        let peers: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.id != self.nodes[i].id)
            .map(|n| format!("{}={},{}", n.id, n.consensus, n.rpc))
            .collect();
        let n = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_music-node"));
        cmd.args(["--id", &n.id.to_string()])
            .args(["--consensus-listen", &n.consensus.to_string()])
            .args(["--rpc-listen", &n.rpc.to_string()])
            .args(["--http-listen", &n.http.to_string()])
            .args(["--lease-ms", &self.lease_ms.to_string()])
            .arg("--data-dir")
            .arg(&n.dir)
            .env("MDBC_CLUSTER_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(log);
        for p in &peers {
            cmd.arg("--peer").arg(p);
        }
        n.child = Some(cmd.spawn().expect("music-node starts"));
    }

    /// Waits for node `i`'s REST port; false if the node could not bind its ports.
    fn wait_http(&mut self, i: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.nodes[i].http).is_ok() {
                return true;
            }
            if let Some(status) = self.nodes[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                if self.log_text(i).contains("in use") {
                    return false;
                }
                panic!("node {} exited with {status}:\n{}", i + 1, self.log_text(i));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node {} did not listen:\n{}", i + 1, self.log_text(i));
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}{path}", self.nodes[i].http)
    }

    /// The node whose consensus replica leads the lock table.
    fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            for (i, n) in self.nodes.iter().enumerate() {
                if n.child.is_none() {
                    continue;
                }
                let (s, v) = http("GET", &self.url(i, "/v1/status"), None);
                if s == 200 && v["role"] == "leader" {
                    return i;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no lock-service leader emerged");
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

/// One request; the status and the JSON body (Null if none).
fn http(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    http_with(method, url, body, None)
}

fn create_lock(c: &Cluster, i: usize, keys: &[&str]) -> u64 {
    let (s, v) = http(
        "POST",
        &c.url(i, "/v1/locks"),
        Some(&json!({"keys": keys, "owner": "test"}).to_string()),
    );
    assert_eq!(s, 201, "{v}");
    v["lock_ref"].as_u64().unwrap()
}

fn acquire(c: &Cluster, i: usize, r: u64, wait_ms: u64) -> bool {
    let (s, v) = http(
        "POST",
        &c.url(i, &format!("/v1/locks/{r}/acquire")),
        Some(&json!({"wait_ms": wait_ms}).to_string()),
    );
    assert_eq!(s, 200, "{v}");
    v["held"].as_bool().unwrap()
}

#[test]
fn rest_api_end_to_end_and_bad_input() {
    let c = Cluster::start(3, 10_000);
    // AP put on one node, seen on another.
    let (s, v) = http(
        "PUT",
        &c.url(0, "/v1/keys/greeting"),
        Some(r#"{"value": {"hello": "world"}}"#),
    );
    assert_eq!(s, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = http("GET", &c.url(2, "/v1/keys/greeting"), None);
        if s == 200 {
            assert_eq!(v["value"], json!({"hello": "world"}));
            break;
        }
        assert_eq!(s, 404, "{v}");
        assert!(Instant::now() < deadline, "the put never reached node 3");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Locks and critical keys.
    let r = create_lock(&c, 1, &["account"]);
    let w = create_lock(&c, 2, &["account"]);
    assert!(acquire(&c, 0, r, 0));
    assert!(!acquire(&c, 2, w, 0));
    let (s, v) = http("GET", &c.url(2, "/v1/locks/holder/account"), None);
    assert_eq!((s, v["holder"]["lock_ref"].as_u64()), (200, Some(r)), "{v}");
    let (s, v) = http("GET", &c.url(0, "/v1/locks/queue/account"), None);
    let queue: Vec<u64> = v["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["lock_ref"].as_u64().unwrap())
        .collect();
    assert_eq!((s, queue), (200, vec![r, w]));
    let critical = format!("/v1/keys/account/critical?lock_ref={r}");
    let (s, v) = http("PUT", &c.url(1, &critical), Some(r#"{"value": 100}"#));
    assert_eq!(s, 200, "{v}");
    let (s, v) = http("GET", &c.url(2, &critical), None);
    assert_eq!((s, &v["value"]), (200, &json!(100)), "{v}");
    // The waiter may not write.
    let (s, v) = http(
        "PUT",
        &c.url(1, &format!("/v1/keys/account/critical?lock_ref={w}")),
        Some(r#"{"value": -1}"#),
    );
    assert_eq!((s, v["code"].as_str()), (409, Some("not_holder")), "{v}");
    let (s, v) = http("DELETE", &c.url(1, &format!("/v1/locks/{r}")), None);
    assert_eq!((s, &v["released"]), (200, &json!(true)), "{v}");
    assert!(acquire(&c, 2, w, 5_000));
    let (s, v) = http(
        "GET",
        &c.url(0, &format!("/v1/keys/account/critical?lock_ref={w}")),
        None,
    );
    assert_eq!((s, &v["value"]), (200, &json!(100)), "{v}");

    // Bad input: each a JSON error with the right status, and the node serves on.
    let bad: Vec<(&str, String, Option<String>, u16)> = vec![
        ("PUT", c.url(0, "/v1/keys/k"), Some("{not json".into()), 400),
        (
            "PUT",
            c.url(0, "/v1/keys/k"),
            Some(r#"{"wrong": 1}"#.into()),
            422,
        ),
        (
            "POST",
            c.url(0, "/v1/locks"),
            Some(r#"{"keys": []}"#.into()),
            400,
        ),
        ("POST", c.url(0, "/v1/locks/999999/acquire"), None, 404),
        ("GET", c.url(0, "/v1/locks/999999"), None, 404),
        ("DELETE", c.url(0, "/v1/locks/999999"), None, 404),
        (
            "GET",
            c.url(0, "/v1/keys/account/critical?lock_ref=nope"),
            None,
            400,
        ),
        ("GET", c.url(0, "/v1/keys/never-written"), None, 404),
        ("GET", c.url(0, "/v1/nothing/here"), None, 404),
        (
            "PUT",
            c.url(0, "/v1/keys/big"),
            Some(format!(r#"{{"value": "{}"}}"#, "x".repeat(3 << 20))),
            413,
        ),
        (
            "PUT",
            c.url(0, "/v1/keys/big"),
            Some(format!(r#"{{"value": "{}"}}"#, "x".repeat((1 << 20) + 10))),
            400,
        ),
    ];
    for (method, url, body, want) in bad {
        let (s, v) = http(method, &url, body.as_deref());
        assert_eq!(s, want, "{method} {url}: {v}");
        if s != 413 && s != 422 {
            assert!(
                v["error"].is_string() && v["code"].is_string(),
                "{method} {url}: {v}"
            );
        }
    }
    let (s, _) = http(
        "PUT",
        &c.url(0, "/v1/keys/after"),
        Some(r#"{"value": "still serving"}"#),
    );
    assert_eq!(s, 200);
}

#[test]
fn the_lock_service_fails_over_when_its_leader_dies() {
    let mut c = Cluster::start(3, 10_000);
    let leader = c.leader();
    let other = (leader + 1) % 3;
    let r = create_lock(&c, other, &["config"]);
    assert!(acquire(&c, other, r, 0));
    let critical = format!("/v1/keys/config/critical?lock_ref={r}");
    let (s, v) = http("PUT", &c.url(other, &critical), Some(r#"{"value": "v1"}"#));
    assert_eq!(s, 200, "{v}");
    c.kill(leader);
    // The survivors elect a leader; the lock and the acknowledged write survive.
    let (s, v) = http("GET", &c.url(other, &critical), None);
    assert_eq!((s, &v["value"]), (200, &json!("v1")), "{v}");
    let (s, v) = http("PUT", &c.url(other, &critical), Some(r#"{"value": "v2"}"#));
    assert_eq!(s, 200, "{v}");
    let (s, v) = http("DELETE", &c.url(other, &format!("/v1/locks/{r}")), None);
    assert_eq!(s, 200, "{v}");
    let third = (0..3).find(|&i| i != leader && i != other).unwrap();
    let next = create_lock(&c, third, &["config"]);
    assert!(acquire(&c, third, next, 5_000));
    let (s, v) = http(
        "GET",
        &c.url(third, &format!("/v1/keys/config/critical?lock_ref={next}")),
        None,
    );
    assert_eq!((s, &v["value"]), (200, &json!("v2")), "{v}");
    assert_ne!(c.leader(), leader);
}

#[test]
fn a_dead_holder_is_force_released_and_its_late_write_refused() {
    let c = Cluster::start(3, 1_000);
    let dead = create_lock(&c, 0, &["job"]);
    assert!(acquire(&c, 0, dead, 0));
    let (s, _) = http(
        "PUT",
        &c.url(0, &format!("/v1/keys/job/critical?lock_ref={dead}")),
        Some(r#"{"value": "by the first"}"#),
    );
    assert_eq!(s, 200);
    // The holder goes quiet (no renewals); the next one comes to hold by itself.
    let next = create_lock(&c, 1, &["job"]);
    let start = Instant::now();
    assert!(acquire(&c, 1, next, 10_000));
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "held before the lease ran out"
    );
    let (s, v) = http(
        "PUT",
        &c.url(2, &format!("/v1/keys/job/critical?lock_ref={dead}")),
        Some(r#"{"value": "zombie"}"#),
    );
    assert!(
        s == 404 || s == 409,
        "the late write must be refused: {s} {v}"
    );
    let (s, v) = http(
        "GET",
        &c.url(2, &format!("/v1/keys/job/critical?lock_ref={next}")),
        None,
    );
    assert_eq!((s, &v["value"]), (200, &json!("by the first")), "{v}");
    let leader = c.leader();
    assert!(
        c.log_text(leader).contains("force-released"),
        "log:\n{}",
        c.log_text(leader)
    );
}

#[test]
fn node_rpc_refuses_whoever_lacks_the_secret() {
    let c = Cluster::start(3, 10_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rpc = c.nodes[0].rpc.to_string();
    rt.block_on(async {
        use music_core::rpc::{Request, Response, MAGIC};
        let wrong =
            consensus::rpc::Channel::connect(&rpc, b"not-the-secret-at-all!", MAGIC, 2).await;
        assert!(wrong.is_err(), "a wrong secret must fail the handshake");
        // The right secret under an id that is not a member: only application requests
        // (how a new node asks to join) are served; reads and writes are refused.
        let (stranger, _) = consensus::rpc::Channel::connect(&rpc, SECRET.as_bytes(), MAGIC, 42)
            .await
            .unwrap();
        for req in [
            Request::Read {
                key: "nothing".into(),
                fence: None,
                sync: false,
            },
            Request::Digest,
        ] {
            let answer = tokio::time::timeout(
                Duration::from_secs(5),
                stranger.call(music_core::codec::encode(&req)),
            )
            .await
            .expect("an answer")
            .expect("the connection stays");
            let resp: Response = music_core::codec::decode(&answer).unwrap();
            assert!(
                matches!(&resp, Response::Error(e) if e.contains("not a member")),
                "a non-member was served: {resp:?}"
            );
        }
        // A member sending garbage gets an error answer; the connection and node go on.
        let (member, _) = consensus::rpc::Channel::connect(&rpc, SECRET.as_bytes(), MAGIC, 2)
            .await
            .unwrap();
        let answer = member
            .call(bytes::Bytes::from_static(b"\xff\xfe garbage"))
            .await
            .unwrap();
        let resp: Response = music_core::codec::decode(&answer).unwrap();
        assert!(matches!(resp, Response::Error(_)), "{resp:?}");
        let answer = member
            .call(music_core::codec::encode(&Request::Read {
                key: "nothing".into(),
                fence: None,
                sync: false,
            }))
            .await
            .unwrap();
        let resp: Response = music_core::codec::decode(&answer).unwrap();
        assert_eq!(resp, Response::Value(None));
    });
    // Raw garbage on the port: the node logs it and carries on.
    use std::io::Write;
    let mut g = std::net::TcpStream::connect(c.nodes[0].rpc).unwrap();
    let _ = g.write_all(b"\x00\x00\x00\x05\x00\x00\x00\x00hello garbage");
    drop(g);
    let (s, _) = http("PUT", &c.url(0, "/v1/keys/fine"), Some(r#"{"value": 1}"#));
    assert_eq!(s, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !c
        .log_text(0)
        .contains("refused an unauthenticated connection")
    {
        assert!(Instant::now() < deadline, "log:\n{}", c.log_text(0));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_config_file_sets_a_rest_token_and_bad_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let http = free_addr();
    let cfg = tmp.path().join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "id = 1\ndata_dir = {:?}\nconsensus_listen = \"{}\"\nrpc_listen = \"{}\"\n\
             http_listen = \"{http}\"\nhttp_token = \"let-me-in\"\n",
            tmp.path().join("data"),
            free_addr(),
            free_addr()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_music-node"))
        .arg("--config")
        .arg(&cfg)
        .env("MDBC_CLUSTER_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(http).is_err() {
        assert!(Instant::now() < deadline, "the node did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("http://{http}/v1/status");
    let (s, v) = http_with("GET", &url, None, None);
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")), "{v}");
    let (s, _) = http_with("GET", &url, None, Some("Bearer wrong-token"));
    assert_eq!(s, 401);
    // A single node is its own quorum.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = http_with("GET", &url, None, Some("Bearer let-me-in"));
        assert_eq!(s, 200, "{v}");
        if v["role"] == "leader" {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();

    // Unknown keys and bad values are refused at start, naming the place.
    for (text, want) in [
        ("id = 1\nlisten_everywhere = true\n", "listen_everywhere"),
        ("id = \"one\"\n", "id"),
        (
            "id = 1\ndata_dir = \"/tmp/x\"\nconsensus_listen = \"nowhere\"\n",
            "consensus_listen",
        ),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_music-node"))
            .arg("--config")
            .arg(&cfg)
            .env("MDBC_CLUSTER_SECRET", SECRET)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(err.contains(want), "{text}: {err}");
    }
}

/// One request with an optional Authorization header.
fn http_with(method: &str, url: &str, body: Option<&str>, auth: Option<&str>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let header = auth.unwrap_or("");
    let sent = match (method, body) {
        ("GET", _) => agent.get(url).header("Authorization", header).call(),
        ("DELETE", _) => agent.delete(url).header("Authorization", header).call(),
        ("PUT", Some(b)) => agent
            .put(url)
            .header("Authorization", header)
            .content_type("application/json")
            .send(b),
        ("POST", Some(b)) => agent
            .post(url)
            .header("Authorization", header)
            .content_type("application/json")
            .send(b),
        ("POST", None) => agent.post(url).header("Authorization", header).send_empty(),
        _ => panic!("unsupported {method}"),
    };
    let mut resp = sent.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
