//! The site's SQLite database: opening connections, the SQL functions translation relies
//! on, mdbc's catalog of declared types, the write lock, and table rebuilds.
//!
//! Concurrency model: every client session owns one SQLite connection (WAL mode), so
//! readers never block each other or the writer. SQLite allows one writer at a time; rather
//! than let sessions collide and surface `SQLITE_BUSY`, a session takes [`Store::write_lock`]
//! (a fair async mutex) before its first write and holds it until its transaction ends.
//! Waiting writers queue in arrival order without burning CPU.
//!
//! Every release of the write lock advances the *write epoch* ([`Store::write_epoch`]).
//! A session that ran a read with no write since can keep its SQLite read transaction open
//! and serve the next autocommit read from the same snapshot, which is still the newest
//! one: that skips SQLite's two shared-memory lock operations per read transaction, whose
//! process-wide mutex convoys once there are more client threads than cores.

mod catalog;
mod error;
mod float_agg;
mod functions;
mod ident;
mod migrate;
mod rebuild;
mod sequences;
mod settings;
mod single_row;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{Connection, InterruptHandle, OpenFlags};
use sql_capture::{Catalog, CatalogChange};

use crate::config::Synchronous;
use crate::durability::GroupCommit;
pub(crate) use catalog::insert_column_into;
pub use error::StoreError;
#[cfg(test)]
pub(crate) use functions::register_single_site as register_single_site_functions;
/// The sequence functions over a store of no sequences (catalog tests).
#[cfg(test)]
pub(crate) fn register_sequence_functions(conn: &Connection) -> rusqlite::Result<()> {
    functions::register_sequence_functions(conn, Arc::default())
}
pub use functions::{register_catalog_functions, register_session_coerce, version_string};
pub use ident::SessionIdent;
#[cfg(test)]
pub(crate) use migrate::migrate;
pub use rebuild::{rebuild_table, RebuildError};
pub use sequences::Sequences;
pub use settings::{default_settings, register_settings, SERVER_VERSION};

/// Shared state of the site's database.
pub struct Store {
    path: PathBuf,
    sync: Synchronous,
    group: Option<GroupCommit>,
    // Kept open for the store's lifetime so SQLite never deletes the -wal file whose
    // descriptor the group-commit thread fsyncs.
    _anchor: Mutex<Connection>,
    write_lock: Arc<tokio::sync::Mutex<()>>,
    write_epoch: AtomicU64,
    epoch_changed: tokio::sync::watch::Sender<u64>,
    catalog: RwLock<Arc<Catalog>>,
    catalog_version: AtomicU64,
    published_version: AtomicU64,
    sequences: Arc<Mutex<Sequences>>,
    interrupts: Mutex<HashMap<i32, (Vec<u8>, InterruptHandle)>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir`, applies migrations and loads
    /// the catalog.
    pub fn open(data_dir: &Path, sync: Synchronous) -> Result<Arc<Store>, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join("mdbc.db");
        migrate::disable_memory_statistics();
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        migrate::migrate(&conn)?;
        // Every function an expression index may call, for the REINDEX of upgrade_values.
        let anchor_ident = SessionIdent {
            pid: 0,
            user: "mdbc".into(),
            database: "mdbc".into(),
        };
        functions::register(&conn, &anchor_ident, Arc::default())?;
        migrate::upgrade_values(&conn)?;
        crate::pg_catalog::refresh(&conn)?;
        // Refuse a damaged file at start-up rather than at the first unlucky query.
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(format!("integrity check failed: {check}")),
            )));
        }
        // `full` durability is provided by group commit over a WAL written with NORMAL.
        let group =
            match sync {
                Synchronous::Full => Some(GroupCommit::for_wal_inline(&path).map_err(
                    |source| StoreError::Io {
                        path: path.clone(),
                        source,
                    },
                )?),
                _ => None,
            };
        let store = Arc::new(Store {
            path,
            sync,
            group,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            write_epoch: AtomicU64::new(0),
            epoch_changed: tokio::sync::watch::channel(0).0,
            catalog: RwLock::new(Arc::new(Catalog::default())),
            published_version: AtomicU64::new(0),
            catalog_version: AtomicU64::new(1),
            sequences: Arc::default(),
            interrupts: Mutex::new(HashMap::new()),
            _anchor: Mutex::new(conn),
        });
        // The values of CREATE SEQUENCE's sequences resume after what was reserved.
        store
            .sequences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .persist_to(store.path.with_file_name("sequences.json"));
        let cat = {
            let anchor = store._anchor.lock().unwrap_or_else(|e| e.into_inner());
            let cat = store.load_catalog(&anchor)?;
            store.init_sequences(&anchor, &cat)?;
            cat
        };
        *store.catalog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cat);
        Ok(store)
    }

    /// The durability barrier, when commits are fsynced (`synchronous = full`).
    pub fn group(&self) -> Option<&GroupCommit> {
        self.group.as_ref()
    }

    /// Path of the SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// In a cluster: serial values at this site come from stripe `slot` of `stride` (see
    /// [`Sequences`]), so two sites never give the same value. Set once, at start-up.
    pub fn set_sequence_stripe(&self, stride: i64, slot: i64) {
        self.sequences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_stripe(stride, slot);
    }

    /// Reads the catalog as `conn` sees it (including its own uncommitted DDL), under a
    /// new version.
    pub fn load_catalog(&self, conn: &Connection) -> rusqlite::Result<Catalog> {
        let version = self.catalog_version.fetch_add(1, Ordering::Relaxed) + 1;
        catalog::load(conn, version)
    }

    /// Records catalog changes in the current transaction of `conn`.
    pub fn apply_catalog_changes(
        &self,
        conn: &Connection,
        changes: &[CatalogChange],
    ) -> rusqlite::Result<()> {
        catalog::apply_changes(conn, changes, &self.sequences)
    }

    /// Starts every serial column's sequence after the largest value present.
    pub fn init_sequences(&self, conn: &Connection, cat: &Catalog) -> rusqlite::Result<()> {
        self.sequences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .init(conn, cat)
    }

    /// COMMIT on `conn`; under group commit it is bracketed by a ticket to wait on with
    /// [`Store::wait_durable`] once the write lock is released (see durability.rs).
    pub fn commit(&self, conn: &Connection) -> (rusqlite::Result<()>, Option<u64>) {
        match &self.group {
            Some(g) => {
                let ticket = g.begin_commit();
                let r = conn.execute_batch("COMMIT");
                g.written(ticket);
                (r, Some(ticket))
            }
            None => (conn.execute_batch("COMMIT"), None),
        }
    }

    /// Waits until the commit behind `ticket` is on disk.
    pub async fn wait_durable(&self, ticket: Option<u64>) {
        if let (Some(t), Some(g)) = (ticket, &self.group) {
            g.wait(t).await;
        }
    }

    /// Takes the lock every writer holds from its first write to the end of its
    /// transaction (committed or rolled back) — queueing fairly behind other writers.
    pub async fn lock_writer(self: &Arc<Self>) -> WriteGuard {
        WriteGuard {
            _guard: self.write_lock.clone().lock_owned().await,
            store: self.clone(),
        }
    }

    /// Advances with every release of the write lock, that is after every transaction
    /// that could have changed the database.
    pub fn write_epoch(&self) -> u64 {
        self.write_epoch.load(Ordering::SeqCst)
    }

    /// Notified when the write epoch advances.
    pub fn watch_write_epoch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.epoch_changed.subscribe()
    }

    /// The committed catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publishes a catalog after the DDL that produced it committed.
    pub fn publish_catalog(&self, cat: Arc<Catalog>) {
        let v = cat.version;
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = cat;
        self.published_version.store(v, Ordering::SeqCst);
    }

    /// Version of the published catalog: changes after every committed schema change, by
    /// any session or by the replicator.
    pub fn published_version(&self) -> u64 {
        self.published_version.load(Ordering::SeqCst)
    }

    /// Opens a connection for one client session.
    pub fn connect(&self, ident: &SessionIdent) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        let sync = if self.group.is_some() {
            "NORMAL"
        } else {
            self.sync.pragma()
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "case_sensitive_like", "ON")?;
        // Safety net only: the write lock keeps writers apart, checkpoints are passive.
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "mmap_size", 268_435_456i64)?;
        conn.pragma_update(None, "cache_size", -8192i64)?;
        conn.set_prepared_statement_cache_capacity(128);
        rusqlite::vtab::series::load_module(&conn)?;
        functions::register(&conn, ident, self.sequences.clone())?;
        functions::register_single_site(&conn)?;
        // A session replaces these with its own settings (see session/settings.rs).
        settings::register_settings(&conn, Arc::new(Mutex::new(default_settings())))?;
        self.interrupts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ident.pid, (Vec::new(), conn.get_interrupt_handle()));
        Ok(conn)
    }

    /// Interrupts every running statement (shutdown).
    pub fn interrupt_all(&self) {
        for (_, h) in self
            .interrupts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            h.interrupt();
        }
    }

    /// Remembers the cancel key of a session so a CancelRequest can find it.
    pub fn set_cancel_key(&self, pid: i32, key: Vec<u8>) {
        if let Some(e) = self
            .interrupts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&pid)
        {
            e.0 = key;
        }
    }

    /// Forgets a closed session.
    pub fn forget_session(&self, pid: i32) {
        self.interrupts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pid);
    }

    /// Interrupts the statement running in session `pid` if `key` matches its secret.
    pub fn cancel(&self, pid: i32, key: &[u8]) -> bool {
        let map = self.interrupts.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&pid) {
            Some((k, h)) if k.as_slice() == key => {
                h.interrupt();
                true
            }
            _ => false,
        }
    }
}

/// Held by the session that writes; see [`Store::lock_writer`].
pub struct WriteGuard {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    store: Arc<Store>,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        // The transaction has ended (the lock is dropped only after COMMIT or ROLLBACK),
        // and the epoch moves before the next writer can start: a reader that still sees
        // the old epoch afterwards cannot have missed a commit acknowledged to anyone.
        let e = self.store.write_epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.store.epoch_changed.send_replace(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data dir written when char(n) was stored padded is trimmed once at open, and its
    /// indexes rebuilt — an expression index calling mdbc's functions included.
    #[test]
    fn padded_char_values_from_older_versions_are_trimmed_once() {
        let dir = tempfile_dir("upgrade");
        drop(Store::open(&dir, Synchronous::Off).unwrap());
        {
            let conn = Connection::open(dir.join("mdbc.db")).unwrap();
            let ident = SessionIdent {
                pid: 0,
                user: "u".into(),
                database: "d".into(),
            };
            functions::register(&conn, &ident, Arc::default()).unwrap();
            conn.execute_batch(
                "CREATE TABLE c (k TEXT PRIMARY KEY);
                 INSERT INTO __mdbc_columns VALUES ('c', 'k', 0, 1042, 8, 0, 1, NULL);
                 INSERT INTO c VALUES ('ab  '), ('x');
                 CREATE INDEX c_lower ON c (lower(pg_coerce(k, 25, -1)));
                 DELETE FROM __mdbc_meta WHERE key = 'values_v2';",
            )
            .unwrap();
        }
        drop(Store::open(&dir, Synchronous::Off).unwrap());
        let conn = Connection::open(dir.join("mdbc.db")).unwrap();
        let keys: Vec<String> = conn
            .prepare("SELECT k FROM c ORDER BY k")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(keys, ["ab", "x"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A data dir written when numerics were SQLite doubles: the column becomes exact
    /// text with the numeric collation, its values their decimal text, its index rebuilt
    /// in numeric order.
    #[test]
    fn numeric_columns_from_older_versions_become_exact_once() {
        let dir = tempfile_dir("numeric");
        drop(Store::open(&dir, Synchronous::Off).unwrap());
        {
            let conn = Connection::open(dir.join("mdbc.db")).unwrap();
            conn.execute_batch(
                "CREATE TABLE m (\"id\" INTEGER PRIMARY KEY, \"n\" NUMERIC);
                 INSERT INTO __mdbc_columns VALUES ('m', 'n', 1, 1700, -1, 0, 0, NULL);
                 INSERT INTO m VALUES (1, 10), (2, 9.5), (3, 0.1), (4, -2);
                 CREATE INDEX m_n ON m (n);
                 DELETE FROM __mdbc_meta WHERE key = 'values_v3';",
            )
            .unwrap();
        }
        drop(Store::open(&dir, Synchronous::Off).unwrap());
        let store = Store::open(&dir, Synchronous::Off).unwrap();
        let conn = store
            .connect(&SessionIdent {
                pid: 1,
                user: "u".into(),
                database: "d".into(),
            })
            .unwrap();
        let rows: Vec<(String, String)> = conn
            .prepare("SELECT n, typeof(n) FROM m INDEXED BY m_n WHERE n > '-1' ORDER BY n")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let text = |v: &str| (v.to_string(), "text".to_string());
        assert_eq!(rows, [text("0.1"), text("9.5"), text("10")]);
        let decl: String = conn
            .query_row("SELECT sql FROM sqlite_schema WHERE name = 'm'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(decl.contains("\"n\" TEXT COLLATE pg_numeric"), "{decl}");
        drop(conn);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mdbc-store-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Every SQL function translation emits is registered on a session connection.
    #[test]
    fn registers_every_function_translation_needs() {
        let dir = std::env::temp_dir().join(format!("mdbc-store-test-{}", std::process::id()));
        let store = Store::open(&dir, Synchronous::Off).unwrap();
        let conn = store
            .connect(&SessionIdent {
                pid: 1,
                user: "u".into(),
                database: "d".into(),
            })
            .unwrap();
        for (name, nargs) in sql_capture::REQUIRED_FUNCTIONS {
            let found: i64 = conn
                .query_row(
                    "SELECT count(*) FROM pragma_function_list WHERE name = ?1 AND (narg = ?2 OR narg = -1)",
                    rusqlite::params![name, nargs],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(found > 0, "{name}/{nargs} is not registered");
        }
        drop(conn);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
