//! Coordination-service loads for bench/music-vs-zookeeper-etcd: the same four
//! operations against MUSIC (REST), ZooKeeper (its own protocol) and etcd (gRPC).
//!
//! - `ap-put` / `ap-get`: a plain write / read of one of 100 keys per client (MUSIC put
//!   and get; ZooKeeper setData and getData of existing znodes).
//! - `cp-put`: take a lock, write under it, release it (MUSIC: create-and-acquire,
//!   critical put, release; ZooKeeper: the Curator lock recipe, a setData checked
//!   against the lock node, delete of the lock node; etcd: Lock with the client's lease,
//!   Put, Unlock).
//! - `lock`: take a lock and release it.
//!
//! Every client uses its own lock name, so the figures measure each service's cost per
//! operation rather than queueing behind one lock.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::ValueEnum;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::Clock;

/// The operation each client repeats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Op {
    /// Plain (AP) write.
    ApPut,
    /// Plain (AP) read.
    ApGet,
    /// Lock, write under it, unlock.
    CpPut,
    /// Lock and unlock.
    Lock,
}

const KEYS: u64 = 100;

type Tasks = Vec<JoinHandle<anyhow::Result<Vec<u64>>>>;

fn value_text(size: usize) -> String {
    "v".repeat(size)
}

async fn music_call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut req = http.request(method.clone(), &url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{method} {url}: {status} {v}");
    }
    Ok(v)
}

/// MUSIC through its REST API; client `c` talks to node `c mod n`.
pub fn music(
    nodes: &[String],
    op: Op,
    clients: usize,
    size: usize,
    clock: (Duration, Duration),
) -> Tasks {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients.max(1))
        .tcp_nodelay(true)
        .build()
        .expect("an HTTP client without TLS builds");
    let value = value_text(size);
    (0..clients)
        .map(|c| {
            let (http, value) = (http.clone(), value.clone());
            let base = format!("http://{}", nodes[c % nodes.len()]);
            tokio::spawn(async move {
                use reqwest::Method;
                if matches!(op, Op::ApGet) {
                    for j in 0..KEYS {
                        let url = format!("{base}/v1/keys/b-c{c}-{j}");
                        music_call(&http, Method::PUT, url, Some(json!({"value": value}))).await?;
                    }
                    // Reads go to one replica: let the puts reach every one first.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                let mut clock = Clock::new(clock.0, clock.1);
                let mut i = 0u64;
                while let Some(t0) = clock.next() {
                    let key = format!("b-c{c}-{}", i % KEYS);
                    match op {
                        Op::ApPut => {
                            let url = format!("{base}/v1/keys/{key}");
                            music_call(&http, Method::PUT, url, Some(json!({"value": value})))
                                .await?;
                        }
                        Op::ApGet => {
                            music_call(&http, Method::GET, format!("{base}/v1/keys/{key}"), None)
                                .await?;
                        }
                        Op::CpPut | Op::Lock => {
                            let lock = format!("lock-c{c}");
                            let body = json!({"keys": [lock], "acquire": true, "wait_ms": 10_000});
                            let v = music_call(
                                &http,
                                Method::POST,
                                format!("{base}/v1/locks"),
                                Some(body),
                            )
                            .await?;
                            let r = v["lock_ref"].as_u64().context("no lock ref")?;
                            if v["held"] != json!(true) {
                                bail!("lock {r} not acquired: {v}");
                            }
                            if matches!(op, Op::CpPut) {
                                let url = format!("{base}/v1/keys/{lock}/critical?lock_ref={r}");
                                music_call(&http, Method::PUT, url, Some(json!({"value": value})))
                                    .await?;
                            }
                            music_call(&http, Method::DELETE, format!("{base}/v1/locks/{r}"), None)
                                .await?;
                        }
                    }
                    clock.done(t0);
                    i += 1;
                }
                Ok(clock.latencies)
            })
        })
        .collect()
}

/// ZooKeeper: one session shared by the clients (the client pipelines requests).
pub async fn zookeeper(
    servers: &str,
    op: Op,
    clients: usize,
    size: usize,
    clock: (Duration, Duration),
) -> anyhow::Result<Tasks> {
    use zookeeper_client as zk;
    let client = Arc::new(
        zk::Client::connect(servers)
            .await
            .context("connecting to ZooKeeper")?,
    );
    let dir = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for path in ["/bench", "/locks"] {
        match client.create(path, b"", &dir).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => bail!("create {path}: {e}"),
        }
    }
    let value = value_text(size).into_bytes();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, value) = (client.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let dir = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            for j in 0..KEYS {
                match client
                    .create(&format!("/bench/c{c}-{j}"), &value, &dir)
                    .await
                {
                    Ok(_) | Err(zk::Error::NodeExists) => {}
                    Err(e) => bail!("create: {e}"),
                }
            }
            let lock_dir = format!("/locks/c{c}");
            let mut clock = Clock::new(clock.0, clock.1);
            let mut i = 0u64;
            while let Some(t0) = clock.next() {
                let path = format!("/bench/c{c}-{}", i % KEYS);
                match op {
                    Op::ApPut => {
                        client.set_data(&path, &value, None).await?;
                    }
                    Op::ApGet => {
                        client.get_data(&path).await?;
                    }
                    Op::CpPut | Op::Lock => {
                        let options = zk::LockOptions::new(zk::Acls::anyone_all())
                            .with_ancestor_options(dir.clone())?;
                        let prefix = zk::LockPrefix::new_curator(&lock_dir, "lock-")?;
                        let lock = client.lock(prefix, b"", options).await?;
                        if matches!(op, Op::CpPut) {
                            // Applied only while the lock node exists (a multi-op).
                            lock.set_data(&path, &value, None).await?;
                        }
                        // Release and wait for it, as the others do; the guard would
                        // otherwise delete its node again in the background.
                        let node = lock.lock_path().to_string();
                        client.delete(&node, None).await?;
                        std::mem::forget(lock);
                    }
                }
                clock.done(t0);
                i += 1;
            }
            Ok(clock.latencies)
        }));
    }
    Ok(tasks)
}

/// etcd's lock API: each client keeps a lease alive (as an etcd session does) and locks
/// with it.
pub async fn etcd_lock(
    endpoints: &[String],
    op: Op,
    clients: usize,
    size: usize,
    clock: (Duration, Duration),
) -> anyhow::Result<Tasks> {
    if matches!(op, Op::ApPut | Op::ApGet) {
        bail!("etcd is compared on cp-put and lock only");
    }
    let client = etcd_client::Client::connect(endpoints, None).await?;
    let value = value_text(size);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, value) = (client.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let mut leases = client.lease_client();
            let lease = leases.grant(30, None).await?.id();
            let (mut keeper, _stream) = leases.keep_alive(lease).await?;
            let keepalive = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    if keeper.keep_alive().await.is_err() {
                        return;
                    }
                }
            });
            let mut locks = client.lock_client();
            let mut kv = client.kv_client();
            let mut clock = Clock::new(clock.0, clock.1);
            while let Some(t0) = clock.next() {
                let opts = etcd_client::LockOptions::new().with_lease(lease);
                let held = locks.lock(format!("lock-c{c}"), Some(opts)).await?;
                let key = held.key().to_vec();
                if matches!(op, Op::CpPut) {
                    kv.put(format!("cp-c{c}"), value.clone(), None).await?;
                }
                locks.unlock(key).await?;
                clock.done(t0);
            }
            keepalive.abort();
            Ok(clock.latencies)
        }));
    }
    Ok(tasks)
}
