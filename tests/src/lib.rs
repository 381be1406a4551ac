//! Helpers for end-to-end tests: start real `mdbc-server` processes on free ports in
//! temporary directories, run real clients against them, and stop exactly the processes
//! they started (by PID, on drop, also when a test fails).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub mod cluster;
pub mod proxy;
pub mod slt;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Path of the `mdbc-server` binary, building it once per test process if needed.
pub fn server_binary() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("MDBC_SERVER_BIN") {
            return Ok(PathBuf::from(p));
        }
        let release = !cfg!(debug_assertions);
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace()).args([
            "build",
            "-q",
            "-p",
            "mdbc-server",
            "--bin",
            "mdbc-server",
        ]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().map_err(|e| format!("running cargo: {e}"))?;
        if !status.success() {
            return Err("cargo build of mdbc-server failed".into());
        }
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace().join("target"));
        Ok(target
            .join(if release { "release" } else { "debug" })
            .join("mdbc-server"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A running `mdbc-server` process.
pub struct Server {
    child: Option<Child>,
    /// Client address.
    pub addr: SocketAddr,
    /// Data directory (kept across restarts).
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    config: Option<PathBuf>,
    log: PathBuf,
    // Extra environment for the process (fault injection).
    env: Vec<(String, std::ffi::OsString)>,
}

impl Server {
    /// Starts a server with a fresh data directory and no users (trust on loopback).
    pub fn start() -> Result<Server> {
        let tmp = tempfile::tempdir()?;
        let data = tmp.path().join("data");
        let mut s = Server {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data,
            log: tmp.path().join("server.log"),
            _tmp: Some(tmp),
            config: None,
            env: Vec::new(),
        };
        s.spawn()?;
        Ok(s)
    }

    /// Starts a server with a TOML config; `listen` and `data_dir` are added by the harness.
    pub fn start_with_config(extra_toml: &str) -> Result<Server> {
        let mut s = Server::configured(extra_toml, &[])?;
        s.spawn()?;
        Ok(s)
    }

    /// Starts a server with a TOML config and extra environment variables, and returns
    /// before it listens (a new cluster site may hold its start, see
    /// `MDBC_TEST_HOLD_BOOTSTRAP`); [`Server::wait_ready`] waits for it.
    pub fn launch_with_config(extra_toml: &str, env: &[(&str, &Path)]) -> Result<Server> {
        let mut s = Server::configured(extra_toml, env)?;
        let port = free_port()?;
        s.addr = SocketAddr::from(([127, 0, 0, 1], port));
        s.child = Some(s.command()?.spawn().context("spawning mdbc-server")?);
        Ok(s)
    }

    /// Waits until a server from [`Server::launch_with_config`] listens.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let addr = self.addr;
        let child = self.child.as_mut().context("server not running")?;
        wait_listening(addr, child, timeout).with_context(|| self.log_text())
    }

    fn configured(extra_toml: &str, env: &[(&str, &Path)]) -> Result<Server> {
        let tmp = tempfile::tempdir()?;
        let cfg = tmp.path().join("mdbc.toml");
        std::fs::write(&cfg, extra_toml)?;
        Ok(Server {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: tmp.path().join("data"),
            log: tmp.path().join("server.log"),
            _tmp: Some(tmp),
            config: Some(cfg),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
                .collect(),
        })
    }

    /// The configuration file it was started with, if any.
    pub fn config_path(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    /// Temporary directory owned by this server (for certificates and scripts).
    pub fn tmp_dir(&self) -> &Path {
        self._tmp
            .as_ref()
            .map(|t| t.path())
            .unwrap_or(Path::new("/tmp"))
    }

    fn command(&self) -> Result<Command> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(server_binary()?);
        cmd.arg("start");
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(cmd)
    }

    fn spawn(&mut self) -> Result<()> {
        let mut last_err = None;
        // Another process may grab the free port between probing and binding: retry.
        for _ in 0..5 {
            let port = free_port()?;
            self.addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut child = self.command()?.spawn().context("spawning mdbc-server")?;
            match wait_listening(self.addr, &mut child, Duration::from_secs(30)) {
                Ok(()) => {
                    self.child = Some(child);
                    return Ok(());
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = Some(e);
                }
            }
        }
        bail!(
            "mdbc-server did not start: {:?}\n{}",
            last_err,
            self.log_text()
        )
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Port for clients.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A libpq connection string.
    pub fn conninfo(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=mdbc sslmode=disable",
            self.port()
        )
    }

    /// PID of the server process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("server not running")?;
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("server ignored SIGTERM for 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills with SIGKILL (a crash) and waits.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Starts the process again on the same data directory (a new port).
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.spawn()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Runs `psql` with a script on stdin; returns stdout and stderr interleaved as psql
    /// wrote them, and the exit status.
    pub fn psql(&self, script: &str, extra: &[&str]) -> Result<(String, bool)> {
        let (mut reader, writer) = std::io::pipe()?;
        let mut child = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port().to_string(),
                "-U",
                "tester",
                "-d",
                "mdbc",
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .env("PGCONNECT_TIMEOUT", "10")
            .spawn()
            .context("running psql (is postgresql-client installed?)")?;
        let mut stdin = child.stdin.take().context("psql stdin")?;
        let script = script.to_string();
        let feeder = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
        let mut out = String::new();
        std::io::Read::read_to_string(&mut reader, &mut out)?;
        let status = child.wait()?;
        let _ = feeder.join();
        Ok((out, status.success()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn combined(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

fn wait_listening(addr: SocketAddr, child: &mut Child, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("exited early with {status}");
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not listening on {addr} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command and returns (combined output, success).
pub fn run(cmd: &mut Command) -> Result<(String, bool)> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    Ok((combined(&out), out.status.success()))
}

/// A tokio-postgres client on `server` as user `tester`, its connection driven by a task.
///
/// # Panics
/// If the connection fails (the tests using it are about a running server).
pub async fn connect(server: &Server) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&server.conninfo("tester"), tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}
