//! `mdbc-server demo`: a local cluster of several sites, each a child process of this one.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::Context;

pub struct Demo {
    pub sites: usize,
    pub base_port: u16,
    pub cluster_port: u16,
    pub data_dir: PathBuf,
    pub default_level: String,
    pub strong: Vec<String>,
}

fn site_name(i: usize) -> String {
    // a … z, then s26, s27, …
    if i < 26 {
        ((b'a' + i as u8) as char).to_string()
    } else {
        format!("s{i}")
    }
}

fn secret(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join("cluster.secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        if let Some(line) = s.lines().next().filter(|l| l.len() >= 8) {
            return Ok(line.to_string());
        }
    }
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    let s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, format!("{s}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(s)
}

struct Sites(Vec<(String, Child)>);

impl Drop for Sites {
    fn drop(&mut self) {
        // SIGTERM lets each site roll back open transactions and close its files.
        for (_, c) in &self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (name, c) in &mut self.0 {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        eprintln!("site {name} did not stop in time; killing it");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

pub fn run(d: Demo) -> anyhow::Result<()> {
    if d.sites == 0 || d.sites > 64 {
        anyhow::bail!("--sites must be between 1 and 64");
    }
    if usize::from(d.base_port) + d.sites > 65_536 || usize::from(d.cluster_port) + d.sites > 65_536
    {
        anyhow::bail!("ports run past 65535");
    }
    std::fs::create_dir_all(&d.data_dir)
        .with_context(|| format!("creating {}", d.data_dir.display()))?;
    let dir = std::fs::canonicalize(&d.data_dir)?;
    let secret = secret(&dir)?;
    let names: Vec<String> = (0..d.sites).map(site_name).collect();
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut children = Sites(Vec::new());
    for (i, name) in names.iter().enumerate() {
        let site_dir = dir.join(name);
        std::fs::create_dir_all(&site_dir)?;
        let peers: Vec<String> = names
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, n)| {
                format!(
                    "{{ site = \"{n}\", addr = \"127.0.0.1:{}\" }}",
                    usize::from(d.cluster_port) + j
                )
            })
            .collect();
        let config = format!(
            "# Written by `mdbc-server demo`.\n\
             site = \"{name}\"\n\
             listen = \"127.0.0.1:{pg}\"\n\
             data_dir = \"{data}\"\n\n\
             [cluster]\n\
             bind = \"127.0.0.1:{cl}\"\n\
             secret_file = \"{secret_file}\"\n\
             peers = [{peers}]\n\n\
             [tables]\n\
             default = \"{level}\"\n",
            pg = usize::from(d.base_port) + i,
            data = site_dir.join("data").display(),
            cl = usize::from(d.cluster_port) + i,
            secret_file = dir.join("cluster.secret").display(),
            peers = peers.join(", "),
            level = d.default_level,
        );
        let mut config = config;
        if !d.strong.is_empty() {
            config.push_str("[tables.levels]\n");
            for t in &d.strong {
                config.push_str(&format!("{:?} = \"strong\"\n", t));
            }
        }
        let cfg_path = site_dir.join("mdbc.toml");
        std::fs::write(&cfg_path, config)?;
        // Check it as the child will, so a bad option fails here with one message.
        mdbc_server::config::Config::from_file(&cfg_path)?;
        let log = std::fs::File::create(site_dir.join("server.log"))?;
        let child = Command::new(&exe)
            .args(["start", "--config"])
            .arg(&cfg_path)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting site {name}"))?;
        children.0.push((name.clone(), child));
    }
    let _ = secret;
    // Ready when every site accepts PostgreSQL connections.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, name) in names.iter().enumerate() {
        let port = usize::from(d.base_port) + i;
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port as u16)).is_ok() {
                break;
            }
            if let Some((_, c)) = children.0.iter_mut().find(|(n, _)| n == name) {
                if let Ok(Some(status)) = c.try_wait() {
                    anyhow::bail!(
                        "site {name} exited ({status}); see {}",
                        dir.join(name).join("server.log").display()
                    );
                }
            }
            if Instant::now() > deadline {
                anyhow::bail!("site {name} did not start within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "mdbc demo: {} sites running (data in {})",
        d.sites,
        dir.display()
    )?;
    for (i, name) in names.iter().enumerate() {
        writeln!(
            out,
            "  site {name}: psql \"postgresql://127.0.0.1:{}/postgres\"   (log: {})",
            usize::from(d.base_port) + i,
            dir.join(name).join("server.log").display()
        )?;
    }
    writeln!(out, "Press Ctrl-C to stop every site.")?;
    out.flush()?;
    drop(out);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let exited = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok::<_, anyhow::Error>(None),
                _ = term.recv() => return Ok(None),
                _ = tick.tick() => {
                    for (name, c) in &mut children.0 {
                        if let Ok(Some(status)) = c.try_wait() {
                            return Ok(Some(format!("site {name} exited ({status})")));
                        }
                    }
                }
            }
        }
    })?;
    println!("stopping every site…");
    drop(children);
    match exited {
        Some(why) => anyhow::bail!("{why}; the other sites were stopped"),
        None => Ok(()),
    }
}
