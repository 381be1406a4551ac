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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection, InterruptHandle, OpenFlags};
use sql_capture::{Catalog, CatalogChange, ColumnInfo, PgType, TableDef, TableRebuild};

use crate::config::Synchronous;
use crate::durability::GroupCommit;
use crate::values;

/// Migrations of mdbc's own tables, applied in order, counted in `PRAGMA user_version`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_catalog.sql"),
    include_str!("../../migrations/sqlite/0002_pg_catalog.sql"),
    include_str!("../../migrations/sqlite/0003_column_defaults.sql"),
    include_str!("../../migrations/sqlite/0004_constraint_names.sql"),
    include_str!("../../migrations/sqlite/0005_replication.sql"),
];

/// The PostgreSQL version mdbc presents itself as; clients adapt their queries to it.
pub const SERVER_VERSION: &str = concat!("16.6 (mdbc ", env!("CARGO_PKG_VERSION"), ")");

/// What `version()` returns.
pub fn version_string() -> String {
    format!(
        "PostgreSQL 16.6 (mdbc {}) on {}-linux, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// Errors opening or maintaining the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Filesystem problem.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file was written by a newer mdbc.
    #[error(
        "database schema version {found} is newer than this mdbc-server understands ({known})"
    )]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest this binary knows.
        known: i64,
    },
}

/// Who a session is, for the SQL functions that report it.
#[derive(Debug, Clone)]
pub struct SessionIdent {
    /// Backend pid (from BackendKeyData).
    pub pid: i32,
    /// Login user.
    pub user: String,
    /// Database name the client asked for.
    pub database: String,
}

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
    replication: Arc<std::sync::OnceLock<Arc<crate::replication::Replication>>>,
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
        disable_memory_statistics();
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        migrate(&conn)?;
        // Every function an expression index may call, for the REINDEX of upgrade_values.
        let anchor_ident = SessionIdent {
            pid: 0,
            user: "mdbc".into(),
            database: "mdbc".into(),
        };
        register_functions(&conn, &anchor_ident, Arc::default())?;
        upgrade_values(&conn)?;
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
            replication: Arc::default(),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            published_version: AtomicU64::new(0),
            catalog_version: AtomicU64::new(1),
            sequences: Arc::default(),
            interrupts: Mutex::new(HashMap::new()),
            _anchor: Mutex::new(conn),
        });
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

    /// Joins the store to the cluster (once, at start-up).
    pub fn set_replication(&self, r: Arc<crate::replication::Replication>) {
        {
            let mut seqs = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
            let (stride, slot) = r.sequence_stripe();
            seqs.stride = stride;
            seqs.slot = slot;
        }
        let _ = self.replication.set(r);
    }

    /// The cluster this site belongs to, if any.
    pub fn replication(&self) -> Option<&Arc<crate::replication::Replication>> {
        self.replication.get()
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

    /// Reads the catalog as `conn` sees it (including its own uncommitted DDL).
    pub fn load_catalog(&self, conn: &Connection) -> rusqlite::Result<Catalog> {
        let version = self.catalog_version.fetch_add(1, Ordering::Relaxed) + 1;
        let mut cat = Catalog::new(version);
        cat.set_system(crate::pg_catalog::relations());
        let mut stmt = conn.prepare_cached(
            "SELECT tbl, col, pg_type, typmod, serial, not_null, pg_default FROM __mdbc_columns \
             ORDER BY tbl, ordinal",
        )?;
        let mut rows = stmt.query([])?;
        let mut current: Option<TableDef> = None;
        while let Some(r) = rows.next()? {
            let tbl: String = r.get(0)?;
            let oid: i64 = r.get(2)?;
            let col = ColumnInfo {
                name: r.get(1)?,
                ty: PgType::from_oid(oid as u32).unwrap_or(PgType::Text),
                typmod: r.get::<_, i64>(3)? as i32,
                serial: r.get::<_, i64>(4)? != 0,
                not_null: r.get::<_, i64>(5)? != 0,
                default: r.get(6)?,
            };
            match current.as_mut() {
                Some(t) if t.name == tbl => t.columns.push(col),
                _ => {
                    if let Some(t) = current.take() {
                        cat.insert(t);
                    }
                    current = Some(TableDef {
                        name: tbl,
                        columns: vec![col],
                    });
                }
            }
        }
        if let Some(t) = current {
            cat.insert(t);
        }
        Ok(cat)
    }

    /// Starts every serial column's sequence after the largest value present.
    pub fn init_sequences(&self, conn: &Connection, cat: &Catalog) -> rusqlite::Result<()> {
        let mut guard = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
        let seqs = &mut guard.last;
        for t in cat.tables() {
            for c in t.columns.iter().filter(|c| c.serial) {
                let name = format!("{}_{}_seq", t.name, c.name);
                if seqs.contains_key(&name) {
                    continue;
                }
                let max: i64 = conn.query_row(
                    &format!(
                        "SELECT coalesce(max({}), 0) FROM {}",
                        quote(&c.name),
                        quote(&t.name)
                    ),
                    [],
                    |r| r.get(0),
                )?;
                seqs.insert(name, max);
            }
        }
        Ok(())
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
        register_functions(&conn, ident, self.sequences.clone())?;
        register_cluster_functions(&conn, self.replication.clone())?;
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

    /// Records catalog changes in the current transaction of `conn`.
    pub fn apply_catalog_changes(
        &self,
        conn: &Connection,
        changes: &[CatalogChange],
    ) -> rusqlite::Result<()> {
        for ch in changes {
            match ch {
                CatalogChange::CreateTable(def) => {
                    conn.execute("DELETE FROM __mdbc_columns WHERE tbl = ?1", [&def.name])?;
                    for (i, c) in def.columns.iter().enumerate() {
                        insert_column(conn, &def.name, i as i64, c)?;
                    }
                    if def.columns.iter().any(|c| c.serial) {
                        let mut seqs = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
                        for c in def.columns.iter().filter(|c| c.serial) {
                            seqs.last.insert(format!("{}_{}_seq", def.name, c.name), 0);
                        }
                    }
                }
                CatalogChange::DropTable(t) => {
                    conn.execute("DELETE FROM __mdbc_columns WHERE tbl = ?1", [t])?;
                    conn.execute("DELETE FROM __mdbc_constraints WHERE tbl = ?1", [t])?;
                }
                CatalogChange::NameConstraint {
                    table,
                    name,
                    kind,
                    columns,
                } => {
                    let cols = serde_json::Value::from(columns.clone()).to_string();
                    conn.execute(
                        "INSERT OR REPLACE INTO __mdbc_constraints (tbl, name, kind, cols) \
                         VALUES (?1, ?2, ?3, ?4)",
                        params![table, name, kind.to_string(), cols],
                    )?;
                }
                CatalogChange::AddColumn { table, column } => {
                    let next: i64 = conn.query_row(
                        "SELECT coalesce(max(ordinal), -1) + 1 FROM __mdbc_columns WHERE tbl = ?1",
                        [table],
                        |r| r.get(0),
                    )?;
                    insert_column(conn, table, next, column)?;
                }
                CatalogChange::DropColumn { table, column } => {
                    conn.execute(
                        "DELETE FROM __mdbc_columns WHERE tbl = ?1 AND col = ?2",
                        [table, column],
                    )?;
                }
                CatalogChange::RenameColumn { table, from, to } => {
                    conn.execute(
                        "UPDATE __mdbc_columns SET col = ?3 WHERE tbl = ?1 AND col = ?2",
                        [table, from, to],
                    )?;
                    conn.execute(
                        "UPDATE __mdbc_constraints SET cols = (SELECT json_group_array( \
                             CASE WHEN value = ?2 THEN ?3 ELSE value END) FROM json_each(cols)) \
                         WHERE tbl = ?1",
                        [table, from, to],
                    )?;
                }
                CatalogChange::RenameTable { from, to } => {
                    conn.execute(
                        "UPDATE __mdbc_columns SET tbl = ?2 WHERE tbl = ?1",
                        [from, to],
                    )?;
                    conn.execute(
                        "UPDATE __mdbc_constraints SET tbl = ?2 WHERE tbl = ?1",
                        [from, to],
                    )?;
                }
                CatalogChange::SetNotNull { table, columns } => {
                    for c in columns {
                        conn.execute(
                            "UPDATE __mdbc_columns SET not_null = 1 WHERE tbl = ?1 AND col = ?2",
                            [table, c],
                        )?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn insert_column(
    conn: &Connection,
    table: &str,
    ordinal: i64,
    c: &ColumnInfo,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO __mdbc_columns \
         (tbl, col, ordinal, pg_type, typmod, serial, not_null, pg_default) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            table,
            c.name,
            ordinal,
            c.ty.oid() as i64,
            c.typmod as i64,
            c.serial as i64,
            c.not_null as i64,
            c.default
        ],
    )?;
    Ok(())
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

/// SQLite keeps allocation statistics behind one process-wide mutex taken on every
/// allocation; with a connection per client thread that mutex is contended on every query
/// (futex calls in a select-only profile). mdbc never reads the statistics.
fn disable_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config only sets a global option; called before SQLite is
        // initialised (this runs before the process opens its first connection). If it
        // comes too late, SQLite returns SQLITE_MISUSE and changes nothing.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!("SQLite memory statistics stay on (sqlite3_config returned {rc})");
        }
    });
}

/// Quotes an SQLite identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}

/// Brings values written by older versions to today's storage, once per data dir:
/// `char(n)` is kept without its padding, and indexes are rebuilt because `lower`/`upper`
/// now map Unicode (an expression index over them could otherwise disagree with its
/// table). `conn` has mdbc's SQL functions registered: an expression index may call them.
fn upgrade_values(conn: &Connection) -> Result<(), StoreError> {
    let done: bool = conn
        .query_row(
            "SELECT count(*) FROM __mdbc_meta WHERE key = 'values_v2'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    if done {
        return Ok(());
    }
    let columns: Vec<(String, String)> = {
        let mut stmt = conn.prepare("SELECT tbl, col FROM __mdbc_columns WHERE pg_type = 1042")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut sql = String::from("BEGIN IMMEDIATE;");
    for (tbl, col) in &columns {
        sql.push_str(&format!(
            "UPDATE {t} SET {c} = rtrim({c}, ' ') WHERE {c} LIKE '% ';",
            t = quote(tbl),
            c = quote(col)
        ));
    }
    sql.push_str(
        "REINDEX; INSERT INTO __mdbc_meta (key, value) VALUES ('values_v2', '1'); COMMIT;",
    );
    if let Err(e) = conn.execute_batch(&sql) {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(e.into());
    }
    Ok(())
}

/// Rebuilds `table` with an extra constraint, inside the caller's transaction (SQLite has
/// no `ALTER TABLE … ADD CONSTRAINT`). Foreign keys are checked afterwards, as PostgreSQL
/// validates a new constraint against existing rows.
pub fn rebuild_table(conn: &Connection, rb: &TableRebuild) -> Result<(), RebuildError> {
    let create: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [&rb.table],
            |r| r.get(0),
        )
        .map_err(RebuildError::Sqlite)?;
    let indexes: Vec<String> = {
        let mut s = conn
            .prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")
            .map_err(RebuildError::Sqlite)?;
        let rows = s
            .query_map([&rb.table], |r| r.get(0))
            .map_err(RebuildError::Sqlite)?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(RebuildError::Sqlite)?
    };
    let open = create.find('(').ok_or(RebuildError::Shape)?;
    let close = create.rfind(')').ok_or(RebuildError::Shape)?;
    let tmp = "__mdbc_rebuild";
    let new_sql = format!(
        "CREATE TABLE {} {}, {})",
        quote(tmp),
        &create[open..close],
        rb.constraint
    );
    let t = quote(&rb.table);
    // Long on big tables: say what is happening, as PostgreSQL's ALTER would hold its lock.
    let started = std::time::Instant::now();
    tracing::info!(table = %rb.table, constraint = %rb.constraint, "rebuilding table to add a constraint");
    conn.execute_batch(&format!(
        "PRAGMA defer_foreign_keys = ON;
         DROP TABLE IF EXISTS {tmp};
         {new_sql};
         INSERT INTO {tmp} SELECT * FROM {t};
         DROP TABLE {t};
         ALTER TABLE {tmp} RENAME TO {t};"
    ))
    .map_err(RebuildError::Sqlite)?;
    for idx in indexes {
        conn.execute_batch(&idx).map_err(RebuildError::Sqlite)?;
    }
    let violations: i64 = conn
        .query_row(
            &format!(
                "SELECT count(*) FROM pragma_foreign_key_check({})",
                sql_str(&rb.table)
            ),
            [],
            |r| r.get(0),
        )
        .map_err(RebuildError::Sqlite)?;
    if violations > 0 {
        return Err(RebuildError::ForeignKey(violations));
    }
    tracing::info!(table = %rb.table, elapsed_ms = started.elapsed().as_millis() as u64, "table rebuilt");
    Ok(())
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Why a table rebuild failed.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// SQLite refused (e.g. duplicate keys for a new primary key).
    #[error(transparent)]
    Sqlite(rusqlite::Error),
    /// The stored table definition was not in the expected shape.
    #[error("cannot rebuild table: unexpected definition")]
    Shape,
    /// Existing rows break the new foreign key.
    #[error("insert or update violates foreign key constraint ({0} rows)")]
    ForeignKey(i64),
}

/// `__mdbc_sites()` and `__mdbc_table_policy(name)`, behind the `mdbc_sites` and
/// `mdbc_tables` views: JSON from the cluster state (one row for this site when single).
pub(crate) fn register_cluster_functions(
    conn: &Connection,
    repl: Arc<std::sync::OnceLock<Arc<crate::replication::Replication>>>,
) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8;
    let r = repl.clone();
    conn.create_scalar_function("__mdbc_sites", 0, flags, move |_| {
        Ok(match r.get() {
            Some(r) => r.sites_json(),
            None => serde_json::json!([{
                "site": "main", "address": null, "is_self": true, "reachable": true,
                "applied": null, "lag_ms": null
            }])
            .to_string(),
        })
    })?;
    conn.create_scalar_function("__mdbc_table_policy", 1, flags, move |ctx| {
        let name: String = ctx.get(0)?;
        Ok(match repl.get() {
            Some(r) => r.table_json(&name),
            None => serde_json::json!([{ "level": "local" }]).to_string(),
        })
    })?;
    Ok(())
}

/// Serial sequences: the last value each gave (or the column's maximum at start-up).
///
/// Sites of a cluster draw from disjoint stripes, so two sites inserting at once never
/// pick the same key: with stride `s` and slot `k` a site gives only values `≡ k + 1
/// (mod s)`. A single site uses stride 1.
#[derive(Debug, Default)]
pub struct Sequences {
    last: HashMap<String, i64>,
    stride: i64,
    slot: i64,
}

/// The next value after `last` in the stripe `slot` of `stride`.
fn next_in_stripe(last: i64, stride: i64, slot: i64) -> i64 {
    let want = (slot + 1).rem_euclid(stride);
    let v = last.saturating_add(1);
    v.saturating_add((want - v.rem_euclid(stride)).rem_euclid(stride))
}

fn user_err(e: values::ValueError) -> rusqlite::Error {
    // The SQLSTATE travels in the message; errors.rs takes it back out.
    rusqlite::Error::UserFunctionError(format!("[{}] {}", e.code, e.message).into())
}

fn register_functions(
    conn: &Connection,
    ident: &SessionIdent,
    sequences: Arc<Mutex<Sequences>>,
) -> rusqlite::Result<()> {
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let volatile = FunctionFlags::SQLITE_UTF8;
    conn.create_scalar_function("pg_coerce", 3, det, |ctx| {
        let oid: i64 = ctx.get(1)?;
        let typmod: i64 = ctx.get(2)?;
        let ty = PgType::from_oid(oid as u32).ok_or_else(|| {
            rusqlite::Error::UserFunctionError(
                format!("[42704] type with OID {oid} does not exist").into(),
            )
        })?;
        values::coerce(ctx.get_raw(0), ty, typmod as i32).map_err(user_err)
    })?;
    conn.create_scalar_function("pg_now", 0, volatile, |_| Ok(values::now_text()))?;
    conn.create_scalar_function("pg_current_date", 0, volatile, |_| Ok(values::today_text()))?;
    conn.create_scalar_function("pg_random", 0, volatile, |_| Ok(rand::random::<f64>()))?;
    conn.create_scalar_function("pg_nextval", 1, volatile, move |ctx| {
        let name = match ctx.get_raw(0) {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            _ => {
                return Err(rusqlite::Error::UserFunctionError(
                    "[22023] nextval needs a sequence name".into(),
                ))
            }
        };
        let name = name.trim_matches('"').to_ascii_lowercase();
        let name = name.strip_prefix("public.").unwrap_or(&name).to_string();
        let mut seqs = sequences.lock().unwrap_or_else(|e| e.into_inner());
        let (stride, slot) = (seqs.stride.max(1), seqs.slot);
        match seqs.last.get_mut(&name) {
            Some(v) => {
                *v = next_in_stripe(*v, stride, slot);
                Ok(Value::Integer(*v))
            }
            None => Err(rusqlite::Error::UserFunctionError(
                format!("[42P01] relation \"{name}\" does not exist").into(),
            )),
        }
    })?;
    // `text ~ pattern` (PostgreSQL's POSIX regular expressions; the regex crate's syntax
    // covers what applications use). The compiled pattern is cached per statement.
    conn.create_scalar_function("pg_regex", 3, det, |ctx| {
        if ctx.get_raw(0) == ValueRef::Null || ctx.get_raw(1) == ValueRef::Null {
            return Ok(Value::Null);
        }
        let flags: String = ctx.get(2)?;
        let re = ctx.get_or_create_aux(
            1,
            |v| -> Result<regex::Regex, Box<dyn std::error::Error + Send + Sync>> {
                let pat = v.as_str().map_err(|e| format!("[22023] {e}"))?;
                regex::RegexBuilder::new(pat)
                    .case_insensitive(flags.contains('i'))
                    .build()
                    .map_err(|e| format!("[2201B] invalid regular expression: {e}").into())
            },
        )?;
        let text: String = match ctx.get_raw(0) {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            other => values::coerce(other, PgType::Text, -1)
                .ok()
                .and_then(|v| match v {
                    Value::Text(t) => Some(t),
                    _ => None,
                })
                .unwrap_or_default(),
        };
        Ok(Value::Integer(re.is_match(&text) as i64))
    })?;
    register_catalog_functions(conn, &ident.user, &ident.database)?;
    crate::sqlfuncs::register(conn)?;
    let pid = ident.pid;
    conn.create_scalar_function("pg_backend_pid", 0, det, move |_| Ok(pid))?;
    // PostgreSQL's greatest/least skip NULLs; SQLite's max/min of several values do not.
    for (name, pick_max) in [("greatest", true), ("least", false)] {
        conn.create_scalar_function(name, -1, det, move |ctx| {
            let mut best: Option<Value> = None;
            for i in 0..ctx.len() {
                let v: Value = ctx.get(i)?;
                if v == Value::Null {
                    continue;
                }
                best = Some(match best {
                    None => v,
                    Some(b) => {
                        let better = match (&v, &b) {
                            (Value::Integer(a), Value::Integer(c)) => (a > c) == pick_max,
                            (Value::Real(a), Value::Real(c)) => (a > c) == pick_max,
                            (Value::Integer(a), Value::Real(c)) => ((*a as f64) > *c) == pick_max,
                            (Value::Real(a), Value::Integer(c)) => (*a > *c as f64) == pick_max,
                            (Value::Text(a), Value::Text(c)) => (a > c) == pick_max,
                            _ => false,
                        };
                        if better {
                            v
                        } else {
                            b
                        }
                    }
                });
            }
            Ok(best.unwrap_or(Value::Null))
        })?;
    }
    Ok(())
}

/// Functions the pg_catalog views and catalog queries call (see `pg_catalog.rs`); they
/// need only the session's user and database.
pub fn register_catalog_functions(conn: &Connection, user: &str, db: &str) -> rusqlite::Result<()> {
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let version = version_string();
    conn.create_scalar_function("version", 0, det, move |_| Ok(version.clone()))?;
    let db = db.to_string();
    conn.create_scalar_function("current_database", 0, det, move |_| Ok(db.clone()))?;
    conn.create_scalar_function("current_schema", 0, det, |_| Ok("public"))?;
    let current = user.to_string();
    conn.create_scalar_function("current_user", 0, det, move |_| Ok(current.clone()))?;
    // Every object belongs to the session's user (pg_catalog.rs), except what PostgreSQL 15
    // gives pg_database_owner.
    let owner = user.to_string();
    conn.create_scalar_function("pg_get_userbyid", 1, det, move |ctx| {
        Ok(match ctx.get::<Option<i64>>(0)? {
            None => None,
            Some(6171) => Some("pg_database_owner".to_string()),
            Some(10) => Some(owner.clone()),
            Some(oid) => Some(format!("unknown (OID={oid})")),
        })
    })?;
    // One schema, every relation in it visible.
    conn.create_scalar_function("pg_table_is_visible", 1, det, |ctx| {
        Ok(ctx.get::<Option<i64>>(0)?.map(|_| 1i64))
    })?;
    conn.create_scalar_function("quote_ident", 1, det, |ctx| {
        Ok(ctx
            .get::<Option<String>>(0)?
            .map(|s| crate::pg_catalog::quote_ident(&s)))
    })?;
    conn.create_scalar_function("quote_literal", 1, det, |ctx| {
        Ok(ctx
            .get::<Option<String>>(0)?
            .map(|s| format!("'{}'", s.replace('\'', "''"))))
    })?;
    conn.create_scalar_function("format_type", 2, det, |ctx| {
        let Some(oid) = ctx.get::<Option<i64>>(0)? else {
            return Ok(None);
        };
        let typmod = ctx.get::<Option<i64>>(1)?.unwrap_or(-1) as i32;
        Ok(Some(match PgType::from_oid(oid as u32) {
            Some(t) => t.format_with_typmod(typmod),
            None => crate::pg_catalog::catalog_type_name(oid as u32)
                .unwrap_or("???")
                .to_string(),
        }))
    })?;
    conn.create_scalar_function("pg_encoding_to_char", 1, det, |ctx| {
        Ok(match ctx.get::<Option<i64>>(0)? {
            Some(6) => "UTF8",
            Some(0) => "SQL_ASCII",
            _ => "",
        })
    })?;
    // The catalogs keep expressions as PostgreSQL prints them, so deparsing is the identity.
    for n in [2, 3] {
        conn.create_scalar_function("pg_get_expr", n, det, |ctx| ctx.get::<Option<String>>(0))?;
    }
    // No comments are stored (COMMENT ON is not supported).
    conn.create_scalar_function("obj_description", -1, det, |_| Ok(None::<String>))?;
    conn.create_scalar_function("col_description", 2, det, |_| Ok(None::<String>))?;
    conn.create_scalar_function("shobj_description", 2, det, |_| Ok(None::<String>))?;
    // Every session may do everything to every table.
    for (name, n) in [
        ("has_table_privilege", 2),
        ("has_table_privilege", 3),
        ("has_schema_privilege", 2),
        ("has_schema_privilege", 3),
        ("has_database_privilege", 2),
        ("has_database_privilege", 3),
        ("has_sequence_privilege", 2),
        ("has_sequence_privilege", 3),
        ("has_column_privilege", 3),
        ("has_column_privilege", 4),
    ] {
        conn.create_scalar_function(name, n, det, |_| Ok(1i64))?;
    }
    // No partitions and no publications: a relation is its own only ancestor.
    conn.create_scalar_function("pg_partition_ancestors", 1, det, |ctx| ctx.get::<Value>(0))?;
    conn.create_scalar_function("pg_relation_is_publishable", 1, det, |_| Ok(0i64))?;
    conn.create_scalar_function("pg_get_statisticsobjdef_columns", 1, det, |_| {
        Ok(None::<String>)
    })?;
    conn.create_scalar_function("pg_get_triggerdef", -1, det, |_| Ok(None::<String>))?;
    for name in [
        "pg_type_is_visible",
        "pg_collation_is_visible",
        "pg_function_is_visible",
    ] {
        conn.create_scalar_function(name, 1, det, |ctx| {
            Ok(ctx.get::<Option<i64>>(0)?.map(|_| 1i64))
        })?;
    }
    // Arrays are JSON arrays (arrays.rs); NULL elements are skipped, as PostgreSQL does
    // without a third argument.
    conn.create_scalar_function("array_to_string", -1, det, |ctx| {
        let Some(a) = ctx.get::<Option<String>>(0)? else {
            return Ok(None);
        };
        let sep = ctx.get::<Option<String>>(1)?.unwrap_or_default();
        let items = match serde_json::from_str::<serde_json::Value>(&a) {
            Ok(serde_json::Value::Array(items)) => items,
            _ => {
                return Err(rusqlite::Error::UserFunctionError(
                    "[22P02] array_to_string needs an array".into(),
                ))
            }
        };
        let parts: Vec<String> = items
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        Ok(Some(parts.join(&sep)))
    })?;
    Ok(())
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
            register_functions(&conn, &ident, Arc::default()).unwrap();
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

#[cfg(test)]
mod stripe_tests {
    use super::next_in_stripe;

    #[test]
    fn sites_draw_disjoint_increasing_stripes() {
        assert_eq!(next_in_stripe(0, 1, 0), 1);
        assert_eq!(next_in_stripe(41, 1, 0), 42);
        let mut seen = std::collections::HashSet::new();
        for slot in 0..3 {
            let mut v = 0;
            for _ in 0..100 {
                let n = next_in_stripe(v, 64, slot);
                assert!(n > v && n % 64 == slot + 1, "{v} -> {n} in slot {slot}");
                assert!(seen.insert(n));
                v = n;
            }
        }
        // After another site's larger value was seen (start-up takes the column maximum).
        assert_eq!(next_in_stripe(130, 64, 0), 193);
        assert_eq!(next_in_stripe(i64::MAX - 1, 64, 5), i64::MAX);
    }
}
