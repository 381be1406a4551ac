//! A new site starts from a snapshot of another site's database, then catches up from the
//! logs.
//!
//! The snapshot is a consistent copy of the donor's SQLite file (`VACUUM INTO`, one read
//! transaction). It carries the rows *and* `__mdbc_applied`, how far the donor had applied
//! each log — both written in the same transactions, so the copy's rows are exactly the
//! logs up to those positions. The donor's own log position becomes the new site's
//! position in the donor's log; the donor's own log entries (`__mdbc_site_log`) and the
//! rows of its `local` tables are the donor's alone and are dropped from the copy. From
//! there the new site's replicator goes on with each log's next entry, as after a
//! restart. The copy travels in [`CHUNK`]-sized site calls over the cluster port.
//!
//! Without any site to copy from (a brand-new cluster, or none reachable) a site starts
//! empty and replays every log from the beginning instead.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::Connection;

use super::calls::{self, Answer, Call, CHUNK};
use super::cluster::{Replication, SnapshotsMade};
use super::keys::{applied_pos, site_id, SCHEMA_LOG};
use super::policy::Policy;
use crate::config::{Config, Level};

/// A snapshot nobody finished reading is deleted after this long.
const KEEP: Duration = Duration::from_secs(15 * 60);

/// Snapshots a donor keeps at once (each is a full copy of the database on its disk).
const AT_ONCE: usize = 2;

impl Replication {
    fn snapshot_dir(&self) -> PathBuf {
        self.data_dir.join("snapshots")
    }

    fn lock_made(&self) -> std::sync::MutexGuard<'_, SnapshotsMade> {
        self.snapshots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Donor side of the snapshot calls.
    pub(super) async fn answer_snapshot(&self, call: Call) -> Result<Answer, String> {
        match call {
            Call::SnapshotStart => {
                let dir = self.snapshot_dir();
                // Leftovers of joiners that went away.
                let expired: Vec<PathBuf> = {
                    let mut m = self.lock_made();
                    let old: Vec<u64> = m
                        .files
                        .iter()
                        .filter(|(_, (_, at))| at.elapsed() > KEEP)
                        .map(|(id, _)| *id)
                        .collect();
                    old.iter()
                        .filter_map(|id| m.files.remove(id))
                        .map(|(p, _)| p)
                        .collect()
                };
                for p in expired {
                    let _ = std::fs::remove_file(p);
                }
                if self.lock_made().files.len() >= AT_ONCE {
                    return Err(format!(
                        "{AT_ONCE} snapshots are being read from this site already; try again later"
                    ));
                }
                let id = self.hlc.now();
                let path = dir.join(format!("{id}.db"));
                let src = self.store.path().to_path_buf();
                let target = path.clone();
                let policy = self.policy.clone();
                let made = tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, u64)> {
                    std::fs::create_dir_all(target.parent().context("snapshot directory")?)?;
                    let conn = Connection::open(&src)?;
                    let name = target.to_str().context("snapshot path is not UTF-8")?;
                    conn.execute("VACUUM INTO ?1", [name])?;
                    let schema_pos = applied_pos(&conn, SCHEMA_LOG)?;
                    // What is this site's alone never leaves it.
                    make_own(&target, &policy)?;
                    Ok((std::fs::metadata(&target)?.len(), schema_pos))
                })
                .await
                .map_err(|e| e.to_string())?;
                let (size, schema_pos) = match made {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        return Err(format!("making a snapshot: {e:#}"));
                    }
                };
                tracing::info!(id, size, "made a snapshot for a new site");
                self.lock_made().files.insert(id, (path, Instant::now()));
                Ok(Answer::Snapshot {
                    id,
                    size,
                    schema_pos,
                })
            }
            Call::SnapshotChunk { id, offset } => {
                let path = self
                    .lock_made()
                    .files
                    .get(&id)
                    .map(|(p, _)| p.clone())
                    .ok_or_else(|| format!("no snapshot {id} here (expired?)"))?;
                tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                    let mut f = std::fs::File::open(path)?;
                    f.seek(SeekFrom::Start(offset))?;
                    let mut buf = Vec::with_capacity(CHUNK);
                    f.take(CHUNK as u64).read_to_end(&mut buf)?;
                    Ok(buf)
                })
                .await
                .map_err(|e| e.to_string())?
                .map(Answer::Chunk)
                .map_err(|e| format!("reading snapshot {id}: {e}"))
            }
            Call::SnapshotDone { id } => {
                if let Some((p, _)) = self.lock_made().files.remove(&id) {
                    let _ = std::fs::remove_file(p);
                }
                Ok(Answer::Done)
            }
            Call::Head | Call::Applied | Call::Join { .. } | Call::Remove { .. } => {
                Err("not a snapshot call".into())
            }
        }
    }
}

/// Removes snapshots a previous run left behind (they are only good while it runs).
pub(super) fn clear_leftovers(data_dir: &Path) {
    let _ = std::fs::remove_dir_all(data_dir.join("snapshots"));
}

/// Before a site's first start (no database in its data directory yet): joins the
/// cluster if the others were not configured with it (see membership.rs). Returns whether
/// the site should then fetch a snapshot ([`bootstrap`]) — not when the cluster has no
/// site up yet (it starts empty, as configured).
pub async fn join_if_new(cfg: &Config) -> anyhow::Result<bool> {
    if cfg.cluster.is_none() {
        return Ok(false);
    }
    if cfg.data_dir.join("mdbc.db").exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    // A site the others were not configured with becomes a member first.
    super::membership::join(cfg).await
}

/// Fault injection for tests: while the file this variable names exists, a new site
/// holds its bootstrap (its cluster node already running), so a test can act on the
/// cluster meanwhile.
const HOLD_VAR: &str = "MDBC_TEST_HOLD_BOOTSTRAP";

/// A new site's bootstrap, once its cluster node runs: fetches a snapshot from the first
/// other site that has data, showing progress, and installs it as this site's database.
/// Returns without one when the cluster has no data yet or no site answers (the site
/// then replays the logs from their start).
pub async fn bootstrap(cfg: &Config) -> anyhow::Result<()> {
    let Some(cluster) = cfg.cluster.as_ref() else {
        return Ok(());
    };
    if let Some(hold) = std::env::var_os(HOLD_VAR).map(PathBuf::from) {
        if hold.exists() {
            tracing::warn!(file = %hold.display(), "bootstrap held by {HOLD_VAR}");
            while hold.exists() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let secret = cluster.secret_bytes()?;
    let me = site_id(&cfg.site);
    for p in &cluster.peers {
        match fetch(cfg, &secret, me, &p.site, &p.addr).await {
            Ok(true) => return Ok(()),
            Ok(false) => {
                tracing::info!(donor = %p.site, "the cluster has no data yet; starting empty");
                return Ok(());
            }
            Err(e) => tracing::warn!(donor = %p.site, "no snapshot from this site: {e:#}"),
        }
    }
    tracing::info!(
        "no other site answered with a snapshot; starting empty (what the others have arrives from the logs)"
    );
    Ok(())
}

/// Fetches and installs a snapshot from `donor`; `Ok(false)` when it has no data.
async fn fetch(
    cfg: &Config,
    secret: &[u8],
    me: u64,
    donor: &str,
    addr: &str,
) -> anyhow::Result<bool> {
    let ch = calls::connect(addr, secret, me, donor)
        .await
        .map_err(anyhow::Error::msg)?;
    let ask = |call: Call, wait: Duration| {
        let ch = &ch;
        async move {
            let b = ch
                .call(calls::encode(&call), wait)
                .await
                .map_err(anyhow::Error::msg)?;
            calls::decode::<Answer>(&b).map_err(anyhow::Error::msg)
        }
    };
    let (id, size, schema_pos) = match ask(Call::SnapshotStart, Duration::from_secs(600)).await? {
        Answer::Snapshot {
            id,
            size,
            schema_pos,
        } => (id, size, schema_pos),
        other => anyhow::bail!("unexpected answer {other:?}"),
    };
    if schema_pos == 0 {
        let _ = ask(Call::SnapshotDone { id }, Duration::from_secs(10)).await;
        return Ok(false);
    }
    tracing::info!(%donor, bytes = size, "bootstrapping from a snapshot");
    let part = cfg.data_dir.join("mdbc.db.part");
    let fetched: anyhow::Result<()> = async {
        let mut file =
            std::fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?;
        let mut progress = Progress::new(donor, size);
        let mut offset = 0u64;
        while offset < size {
            let call = Call::SnapshotChunk { id, offset };
            let bytes = match ask(call, Duration::from_secs(60)).await? {
                Answer::Chunk(b) => b,
                other => anyhow::bail!("unexpected answer {other:?}"),
            };
            if bytes.is_empty() {
                anyhow::bail!("the snapshot ended at {offset} of {size} bytes");
            }
            file.write_all(&bytes)?;
            offset += bytes.len() as u64;
            progress.show(offset);
        }
        file.sync_all()?;
        progress.done();
        Ok(())
    }
    .await;
    let _ = ask(Call::SnapshotDone { id }, Duration::from_secs(10)).await;
    if let Err(e) = fetched {
        // A partial copy is of no use, and holds rows of the donor.
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    let policy = Policy::new(cfg);
    let cleaned = tokio::task::spawn_blocking({
        let part = part.clone();
        move || make_own(&part, &policy)
    })
    .await?;
    if let Err(e) = cleaned {
        let _ = std::fs::remove_file(&part);
        return Err(e.context("checking the snapshot"));
    }
    std::fs::rename(&part, cfg.data_dir.join("mdbc.db"))?;
    tracing::info!(%donor, bytes = size, "snapshot installed; catching up from the logs");
    Ok(true)
}

/// Checks a fetched copy and drops what was the donor's alone: its log entries (this
/// site must not ship them as its own) and the rows of `local` tables.
fn make_own(path: &Path, policy: &Policy) -> anyhow::Result<()> {
    let conn = Connection::open(path)?;
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        anyhow::bail!("the copy is damaged: {check}");
    }
    let tables: Vec<String> = conn
        .prepare(
            "SELECT DISTINCT tbl FROM __mdbc_columns \
             WHERE tbl IN (SELECT name FROM sqlite_schema WHERE type = 'table')",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut sql = String::from("BEGIN; DELETE FROM __mdbc_site_log;");
    for t in tables.iter().filter(|t| policy.level(t) == Level::Local) {
        sql.push_str(&format!(" DELETE FROM {};", sql_capture::quote_ident(t)));
    }
    sql.push_str(" COMMIT;");
    conn.execute_batch(&sql)?;
    Ok(())
}

/// Progress of a download: a line rewritten in place on a terminal, a log line every two
/// seconds otherwise.
struct Progress {
    donor: String,
    size: u64,
    started: Instant,
    last: Instant,
    tty: bool,
}

impl Progress {
    fn new(donor: &str, size: u64) -> Progress {
        let now = Instant::now();
        Progress {
            donor: donor.to_string(),
            size,
            started: now,
            last: now,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn line(&self, got: u64) -> String {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "bootstrap from site {}: {:>3}% ({:.1} of {:.1} MiB, {:.1} MiB/s)",
            self.donor,
            (got * 100).checked_div(self.size).unwrap_or(100),
            mib(got),
            mib(self.size),
            mib(got) / secs
        )
    }

    fn show(&mut self, got: u64) {
        if self.tty {
            eprint!("\r{}", self.line(got));
        } else if self.last.elapsed() >= Duration::from_secs(2) {
            self.last = Instant::now();
            tracing::info!("{}", self.line(got));
        }
    }

    fn done(&self) {
        if self.tty {
            eprintln!("\r{}", self.line(self.size));
        } else {
            tracing::info!("{}", self.line(self.size));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::store::Store;

    fn policy() -> Policy {
        let cfg = Config::from_toml("[tables.levels]\nscratch = \"local\"\n").unwrap();
        Policy::new(&cfg)
    }

    #[test]
    fn a_copy_keeps_replicated_rows_and_drops_what_was_the_donors_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Synchronous::Normal).unwrap();
        let path = store.path().to_path_buf();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE scratch (id INTEGER PRIMARY KEY); CREATE TABLE keep (id INTEGER PRIMARY KEY);
             INSERT INTO __mdbc_columns (tbl, col, ordinal, pg_type, typmod, serial, not_null)
               VALUES ('scratch', 'id', 1, 23, -1, 0, 1), ('keep', 'id', 1, 23, -1, 0, 1);
             INSERT INTO scratch VALUES (1); INSERT INTO keep VALUES (1), (2);
             INSERT INTO __mdbc_site_log VALUES (1, x'00'), (2, x'00');
             INSERT INTO __mdbc_applied VALUES ('site:a', 2), ('domain:__schema', 3);",
        )
        .unwrap();
        drop(conn);
        make_own(&path, &policy()).unwrap();
        let conn = Connection::open(&path).unwrap();
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT count(*) FROM __mdbc_site_log"), 0);
        assert_eq!(count("SELECT count(*) FROM scratch"), 0);
        assert_eq!(count("SELECT count(*) FROM keep"), 2);
        // The donor's positions are the new site's starting points.
        assert_eq!(
            count("SELECT pos FROM __mdbc_applied WHERE log = 'site:a'"),
            2
        );
    }

    #[test]
    fn a_damaged_copy_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mdbc.db.part");
        std::fs::write(&path, b"SQLite format 3\0 but then nothing a database has").unwrap();
        assert!(make_own(&path, &policy()).is_err());
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        assert!(make_own(&path, &policy()).is_err());
    }
}
