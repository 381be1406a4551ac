//! Several `mdbc-server` processes forming one cluster on loopback, each with its own
//! temporary data directory and configuration, stopped by PID on drop.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use std::net::SocketAddr;

use crate::proxy::Proxy;
use crate::{free_port, Server};

/// A cluster secret the tests share.
pub const SECRET: &str = "test-cluster-secret";

/// A running cluster.
pub struct Cluster {
    /// The sites, in the order of their names (`a`, `b`, …).
    pub sites: Vec<Server>,
    /// With [`Cluster::start_with_proxies`]: `proxies[x][y]` carries site x's calls to
    /// site y (`None` on the diagonal).
    pub proxies: Vec<Vec<Option<Proxy>>>,
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
        Cluster::start_declared(n, n, extra)
    }

    /// A cluster of `n` declared sites of which only the first `started` run; the others
    /// join later with [`Cluster::start_late`] (empty data directories).
    pub fn start_declared(n: usize, started: usize, extra: &str) -> Result<Cluster> {
        let names: Vec<String> = (0..n)
            .map(|i| ((b'a' + i as u8) as char).to_string())
            .collect();
        // The cluster ports are written into every site's configuration before any site
        // binds them, so another process (a parallel test) may take one in between: then
        // the sites started so far stop and the cluster starts again on fresh ports.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ports = (0..n).map(|_| free_port()).collect::<Result<Vec<_>>>()?;
            let mut sites = Vec::new();
            let mut failed = None;
            for i in 0..started {
                match Server::start_with_config(&site_config(&names, &ports, i, SECRET, extra)) {
                    Ok(s) => sites.push(s),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => {
                    return Ok(Cluster {
                        sites,
                        proxies: Vec::new(),
                        names,
                        cluster_ports: ports,
                    })
                }
                Some(e) if attempt < 5 && format!("{e:#}").contains("Address already in use") => {
                    drop(sites);
                }
                Some(e) => return Err(e),
            }
        }
    }

    /// Starts the next declared site that is not running yet, with `extra` TOML.
    pub fn start_late(&mut self, extra: &str) -> Result<&Server> {
        let i = self.sites.len();
        if i >= self.names.len() {
            bail!("every declared site runs already");
        }
        let cfg = site_config(&self.names, &self.cluster_ports, i, SECRET, extra);
        self.sites.push(Server::start_with_config(&cfg)?);
        Ok(&self.sites[i])
    }

    /// Like [`Cluster::start_late`], with extra environment variables, and returns the
    /// site's index before it listens ([`Server::wait_ready`]).
    pub fn launch_late(&mut self, extra: &str, env: &[(&str, &std::path::Path)]) -> Result<usize> {
        let i = self.sites.len();
        if i >= self.names.len() {
            bail!("every declared site runs already");
        }
        let cfg = site_config(&self.names, &self.cluster_ports, i, SECRET, extra);
        self.sites.push(Server::launch_with_config(&cfg, env)?);
        Ok(i)
    }

    /// Starts `n` sites that reach each other only through fault-injecting proxies, one
    /// per direction of each link, so that a test can cut any link ([`Cluster::cut`]).
    pub fn start_with_proxies(n: usize, extra: &str) -> Result<Cluster> {
        let names: Vec<String> = (0..n)
            .map(|i| ((b'a' + i as u8) as char).to_string())
            .collect();
        // Held while the proxies bind their own ports, so that none of them is handed a
        // site's cluster port in between; released just before the sites start.
        let held = (0..n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()?;
        let ports = held
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<_>>>()?;
        let mut proxies: Vec<Vec<Option<Proxy>>> = Vec::new();
        for x in 0..n {
            let mut row = Vec::new();
            for (y, port) in ports.iter().enumerate() {
                row.push(if x == y {
                    None
                } else {
                    Some(Proxy::start(SocketAddr::from(([127, 0, 0, 1], *port)))?)
                });
            }
            proxies.push(row);
        }
        drop(held);
        let mut sites = Vec::new();
        for i in 0..n {
            // Site i's view of the others: each through its own proxy.
            let via: Vec<u16> = (0..n)
                .map(|y| proxies[i][y].as_ref().map_or(ports[i], |p| p.addr.port()))
                .collect();
            let mut cfg = site_config(&names, &via, i, SECRET, extra);
            // Its own bind stays its real port.
            cfg = cfg.replacen(
                &format!("bind = \"127.0.0.1:{}\"", via[i]),
                &format!("bind = \"127.0.0.1:{}\"", ports[i]),
                1,
            );
            sites.push(Server::start_with_config(&cfg)?);
        }
        Ok(Cluster {
            sites,
            proxies,
            names,
            cluster_ports: ports,
        })
    }

    /// Cuts the link between sites `x` and `y`, both ways.
    pub fn cut(&self, x: usize, y: usize) {
        for (a, b) in [(x, y), (y, x)] {
            if let Some(p) = self
                .proxies
                .get(a)
                .and_then(|r| r.get(b))
                .and_then(|p| p.as_ref())
            {
                p.cut();
            }
        }
    }

    /// Cuts every link of site `x`.
    pub fn isolate(&self, x: usize) {
        for y in 0..self.sites.len() {
            if y != x {
                self.cut(x, y);
            }
        }
    }

    /// Heals every link.
    pub fn heal(&self) {
        for p in self.proxies.iter().flatten().flatten() {
            p.heal();
        }
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
