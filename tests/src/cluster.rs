//! Several `mdbc-server` processes forming one cluster on loopback, each with its own
//! temporary data directory and configuration, stopped by PID on drop.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::{free_port, Server};

/// A cluster secret the tests share.
pub const SECRET: &str = "test-cluster-secret";

/// A running cluster.
pub struct Cluster {
    /// The sites, in the order of their names (`a`, `b`, …).
    pub sites: Vec<Server>,
    /// Site names.
    pub names: Vec<String>,
    /// Each site's cluster port.
    pub cluster_ports: Vec<u16>,
}

/// The configuration of site `i` of a cluster whose sites listen on `ports`; `extra` is
/// appended (`[tables]`, `[domains]` …), `secret` overrides the cluster secret.
pub fn site_config(names: &[String], ports: &[u16], i: usize, secret: &str, extra: &str) -> String {
    let peers: Vec<String> = names
        .iter()
        .zip(ports)
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, (n, p))| format!("{{ site = \"{n}\", addr = \"127.0.0.1:{p}\" }}"))
        .collect();
    format!(
        "site = \"{}\"\n\n[cluster]\nbind = \"127.0.0.1:{}\"\nsecret = \"{secret}\"\npeers = [{}]\nlease_ms = 2000\nlock_timeout_ms = 5000\n{extra}\n",
        names[i],
        ports[i],
        peers.join(", "),
    )
}

impl Cluster {
    /// Starts `n` sites named a, b, c, … with `extra` TOML in every config.
    pub fn start(n: usize, extra: &str) -> Result<Cluster> {
        let names: Vec<String> = (0..n)
            .map(|i| ((b'a' + i as u8) as char).to_string())
            .collect();
        let ports = (0..n).map(|_| free_port()).collect::<Result<Vec<_>>>()?;
        let mut sites = Vec::new();
        for i in 0..n {
            sites.push(Server::start_with_config(&site_config(
                &names, &ports, i, SECRET, extra,
            ))?);
        }
        Ok(Cluster {
            sites,
            names,
            cluster_ports: ports,
        })
    }

    /// Site `i`.
    pub fn site(&self, i: usize) -> &Server {
        &self.sites[i]
    }

    /// Every site's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (n, s) in self.names.iter().zip(&self.sites) {
            out.push_str(&format!("---- site {n} ----\n{}\n", s.log_text()));
        }
        out
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or fails after `timeout` with the
/// last state `describe` gives. Replication is asynchronous: the tests wait for a state,
/// never for a fixed time.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what} (last error: {last_err:?})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
