//! One client session: its SQLite connection, transaction state, settings and prepared
//! statements. Protocol-independent: the pgwire frontend (`wire.rs`) feeds it statements
//! and sends what it returns.
//!
//! Transaction rules (PostgreSQL's): outside a block every statement commits on its own;
//! inside BEGIN … COMMIT an error fails the block and later statements get 25P02 until
//! ROLLBACK (or ROLLBACK TO a savepoint). Writes take the store's write lock at the first
//! write of a transaction and keep it to the end, so SQLite never reports BUSY to a client.
//!
//! This is also where a commit hook for replication will sit: [`Session::commit`] is the
//! one place a transaction's writes become durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::messages::data::DataRow;
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use sql_capture::{
    Catalog, ColumnInfo, Command, CommandTag, CopyFormat, CopyPlan, Parsed, PgType, SetValue,
    SqlPlan, StmtKind,
};
use tokio::sync::Notify;

use crate::config::Level;
use crate::copy;
use crate::errors::SqlError;
use crate::replication::domains::Owned;
use crate::replication::{DomainLock, Sealed};
use crate::store::{self, SessionIdent, Store, WriteGuard};
use crate::values;
use sql_capture::capture::{Capture, Shapes};

type Result<T> = std::result::Result<T, SqlError>;

/// Transaction state as ReadyForQuery reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// 'I'
    Idle,
    /// 'T'
    InBlock,
    /// 'E'
    Failed,
}

/// A result column: name, PostgreSQL type, typmod.
#[derive(Debug, Clone)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: PgType,
    /// Type modifier.
    pub typmod: i32,
}

impl Column {
    /// pgwire's field description in `format`.
    pub fn field(&self, format: FieldFormat) -> FieldInfo {
        let ty = Type::from_oid(self.ty.oid()).unwrap_or(Type::TEXT);
        FieldInfo::new(self.name.clone(), None, None, ty, format).with_type_modifier(self.typmod)
    }
}

/// What one statement produced.
#[derive(Debug)]
pub enum Outcome {
    /// Rows, already encoded, with their description and completion tag.
    Rows {
        /// Columns.
        columns: Arc<Vec<Column>>,
        /// Encoded rows.
        rows: Vec<DataRow>,
        /// Completion tag ("SELECT 3", "INSERT 0 1", …).
        tag: String,
    },
    /// A statement without rows.
    Done {
        /// Completion tag.
        tag: String,
        /// A notice to send before the tag (e.g. "there is already a transaction in
        /// progress").
        notice: Option<(&'static str, String)>,
    },
    /// COPY FROM STDIN started: the client sends data next.
    CopyIn {
        /// Number of columns.
        columns: usize,
        /// Text (0) format.
        csv: bool,
    },
    /// COPY TO STDOUT: the data rows.
    CopyOut {
        /// Number of columns.
        columns: usize,
        /// One message per row.
        data: Vec<Bytes>,
    },
}

impl Outcome {
    fn done(tag: impl Into<String>) -> Self {
        Outcome::Done {
            tag: tag.into(),
            notice: None,
        }
    }
}

/// A statement prepared with the extended protocol (or cached for the simple one).
#[derive(Debug)]
pub struct Prepared {
    /// Parsed statement (`None`: empty query).
    pub parsed: Option<Parsed>,
    /// Parameter types the client declared in Parse (OIDs; 0 = unspecified).
    pub client_types: Vec<u32>,
    // A simple query cached by shape: where its literals were (see sql_capture::literals).
    literals: Option<sql_capture::Literals>,
    plan: std::sync::Mutex<Option<(u64, Arc<Command>)>>,
    // Result columns for the catalog version they were computed at: Describe and every
    // Execute of the statement would otherwise recompute them from SQLite's metadata.
    columns: std::sync::Mutex<Option<(u64, Arc<Vec<Column>>)>>,
}

impl Prepared {
    /// Parses one statement; several in one string are refused as PostgreSQL does.
    pub fn parse(sql: &str, client_types: Vec<u32>) -> Result<Prepared> {
        let mut stmts = sql_capture::parse(sql)?;
        if stmts.len() > 1 {
            return Err(SqlError::coded(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        Ok(Prepared::new(stmts.pop(), client_types))
    }

    fn new(parsed: Option<Parsed>, client_types: Vec<u32>) -> Prepared {
        Prepared {
            parsed,
            client_types,
            literals: None,
            plan: std::sync::Mutex::new(None),
            columns: std::sync::Mutex::new(None),
        }
    }

    fn try_columns(
        &self,
        version: u64,
        compute: impl FnOnce() -> Result<Vec<Column>>,
    ) -> Result<Arc<Vec<Column>>> {
        let mut slot = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some((v, cols)) if *v == version => Ok(cols.clone()),
            _ => {
                let cols = Arc::new(compute()?);
                *slot = Some((version, cols.clone()));
                Ok(cols)
            }
        }
    }

    fn plan(&self, catalog: &Catalog) -> Result<Option<Arc<Command>>> {
        let Some(parsed) = &self.parsed else {
            return Ok(None);
        };
        let mut slot = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, cmd)) = slot.as_ref() {
            if *v == catalog.version {
                return Ok(Some(cmd.clone()));
            }
        }
        let cmd = Arc::new(match &self.literals {
            Some(l) => sql_capture::plan_shape(parsed, catalog, l)?,
            None => sql_capture::plan(parsed, catalog)?,
        });
        *slot = Some((catalog.version, cmd.clone()));
        Ok(Some(cmd))
    }
}

/// Parameter values as the client bound them.
pub struct Params<'a> {
    /// Raw values (None = NULL).
    pub values: &'a [Option<Bytes>],
    /// Per-parameter binary flag lookup.
    pub binary: &'a (dyn Fn(usize) -> bool + Sync),
    /// A simple query run by shape: its literals, bound as they are.
    pub literals: &'a [Value],
    /// The plan the literals were checked against (a concurrent schema change must not
    /// swap in one that inlines another execution's values).
    pub pinned: Option<Arc<Command>>,
}

impl<'a> Params<'a> {
    /// No parameters.
    pub fn none() -> Params<'static> {
        fn text(_: usize) -> bool {
            false
        }
        Params {
            values: &[],
            binary: &text,
            literals: &[],
            pinned: None,
        }
    }
}

/// A simple-protocol query ready to run.
pub struct SimpleQuery {
    /// Its statements.
    pub stmts: Arc<Vec<Arc<Prepared>>>,
    /// Run by shape: the literals to bind and the plan they fit.
    pub literals: Vec<Value>,
    /// The plan `literals` fit.
    pub pinned: Option<Arc<Command>>,
}

impl SimpleQuery {
    /// The parameters to run statement `p` with.
    pub fn params(&self) -> Params<'_> {
        Params {
            literals: &self.literals,
            pinned: self.pinned.clone(),
            ..Params::none()
        }
    }
}

struct CopyIn {
    plan: CopyPlan,
    columns: Vec<ColumnInfo>,
    insert_sql: String,
    buf: Vec<u8>,
    rows: u64,
    error: Option<SqlError>,
    own_transaction: bool,
    header_pending: bool,
    ended: bool,
}

/// The session's settings, shared with the SQL functions that read them
/// (`current_setting`, and `__mdbc_settings` behind the pg_settings view).
struct Settings(Arc<std::sync::Mutex<BTreeMap<String, String>>>);

impl Settings {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn get(&self, key: &str) -> Option<String> {
        self.lock().get(key).cloned()
    }
    fn insert(&self, key: String, value: String) {
        self.lock().insert(key, value);
    }
    fn reset(&self) {
        *self.lock() = default_settings();
    }

    fn register(&self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        use rusqlite::functions::FunctionFlags;
        for n in [1, 2] {
            let map = self.0.clone();
            conn.create_scalar_function(
                "current_setting",
                n,
                FunctionFlags::SQLITE_UTF8,
                move |ctx| {
                    let name = ctx.get::<String>(0)?.to_ascii_lowercase();
                    let missing_ok = n == 2 && ctx.get::<Option<bool>>(1)?.unwrap_or(false);
                    let value = map
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&name)
                        .cloned();
                    match value {
                        Some(v) => Ok(Some(v)),
                        None if missing_ok => Ok(None),
                        None => Err(rusqlite::Error::UserFunctionError(
                            format!("[42704] unrecognized configuration parameter \"{name}\"")
                                .into(),
                        )),
                    }
                },
            )?;
        }
        let map = self.0.clone();
        conn.create_scalar_function(
            "__mdbc_settings",
            0,
            FunctionFlags::SQLITE_UTF8,
            move |_| {
                let map = map.lock().unwrap_or_else(|e| e.into_inner());
                Ok(serde_json::to_string(&*map).unwrap_or_default())
            },
        )
    }
}

/// Defaults reported by SHOW and restored by RESET.
fn default_settings() -> BTreeMap<String, String> {
    [
        ("application_name", ""),
        ("client_encoding", "UTF8"),
        ("client_min_messages", "notice"),
        ("datestyle", "ISO, MDY"),
        ("default_transaction_isolation", "serializable"),
        ("extra_float_digits", "1"),
        ("integer_datetimes", "on"),
        ("intervalstyle", "postgres"),
        ("is_superuser", "on"),
        ("lc_messages", "C"),
        ("lock_timeout", "0"),
        ("max_identifier_length", "63"),
        ("search_path", "\"$user\", public"),
        ("server_encoding", "UTF8"),
        ("server_version", store::SERVER_VERSION),
        ("server_version_num", "160006"),
        ("standard_conforming_strings", "on"),
        ("statement_timeout", "0"),
        ("timezone", "UTC"),
        ("transaction_isolation", "serializable"),
        ("transaction_read_only", "off"),
        ("idle_in_transaction_session_timeout", "0"),
        ("synchronous_commit", "on"),
        ("bytea_output", "hex"),
        ("row_security", "on"),
        ("jit", "off"),
        ("work_mem", "4MB"),
        ("default_table_access_method", "heap"),
        ("max_connections", "500"),
        ("block_size", "8192"),
        // A single site; a cluster member reports its own name.
        ("mdbc.site", "main"),
        // `default`: reads of strong tables are linearizable; `local`: every read sees
        // what this site has applied, without asking the others.
        ("mdbc.read_consistency", "default"),
        // `refuse`: a write to a strong table after the transaction read a table that may
        // be stale here (eventual, causal, bounded) fails; `allow`: the session takes that.
        ("mdbc.strong_after_stale_read", "refuse"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A COMMIT that succeeded, and what remains before it may be acknowledged.
#[must_use]
#[derive(Debug, Default)]
struct Committed {
    // Group-commit ticket to wait for.
    ticket: Option<u64>,
    // The transaction's replication entry, to ship.
    sealed: Option<Sealed>,
}

/// A schema change in progress: the schema lock, the head of the schema log when it was
/// taken, and the DDL statements run so far (shipped at COMMIT).
struct SchemaChange {
    guard: DomainLock,
    head: u64,
    caught_up: bool,
    ddl: Vec<String>,
    published: Option<u64>,
}

/// One client's session.
pub struct Session {
    schema: Option<SchemaChange>,
    // Strong domains this transaction holds (their locks are this site's).
    owned: Vec<Arc<Owned>>,
    // The transaction's changes, collected before COMMIT when strong tables were published.
    collected: Option<Vec<sql_capture::changes::TableChanges>>,
    // Published catalog version this session's SQLite statements were prepared under.
    seen_catalog: u64,
    // The replicator's own session: applies other sites' changes, captures nothing.
    applier: bool,
    // Declared before `conn`, so it is dropped before the connection closes.
    capture: Option<Capture>,
    table_shapes: Shapes,
    store: Arc<Store>,
    ident: SessionIdent,
    conn: Connection,
    status: TxStatus,
    write_guard: Option<WriteGuard>,
    // An SQLite read transaction kept open between autocommit reads, with the write epoch
    // it began at (see store.rs); `snapshot_taken` tells the session's janitor to watch
    // for a write that makes it stale.
    snapshot: Option<u64>,
    snapshot_taken: Arc<Notify>,
    local_catalog: Option<Arc<Catalog>>,
    settings: Settings,
    cache: HashMap<String, Arc<Vec<Arc<Prepared>>>>,
    // Simple queries by shape; `None`: this shape cannot be reused (see parse_simple).
    shapes: HashMap<String, Option<Arc<Prepared>>>,
    copy: Option<CopyIn>,
    // A warning for the client about the statement that just ran (see `take_warning`).
    warning: Option<(&'static str, String)>,
    // What the open transaction block has read (see `note_reads`).
    tx_reads: TxReads,
}

/// What a transaction block read that a later strong write must answer for.
#[derive(Debug, Default)]
struct TxReads {
    // For bounded reads: the instant this site knew it had everything of every site at
    // the start of the block's snapshot.
    fresh: Option<std::time::Instant>,
    // The first table read that may be stale at this site (eventual, causal, bounded).
    stale: Option<String>,
    // Strong domains read before the block owned them, with the position of their log
    // the read saw.
    strong: Vec<(String, u64)>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // A dropped connection rolls back its transaction (closing SQLite would too; doing
        // it explicitly releases the write lock only after the rollback).
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.write_guard = None;
        self.store.forget_session(self.ident.pid);
    }
}

impl Session {
    /// Opens a session on the store.
    pub fn new(store: Arc<Store>, ident: SessionIdent) -> Result<Session> {
        let conn = store.connect(&ident)?;
        let settings = Settings(Arc::new(std::sync::Mutex::new(default_settings())));
        if let Some(r) = store.replication() {
            settings.insert("mdbc.site".into(), r.site().to_string());
        }
        settings.register(&conn)?;
        Ok(Session {
            schema: None,
            owned: Vec::new(),
            collected: None,
            seen_catalog: 0,
            applier: false,
            capture: None,
            table_shapes: Shapes::default(),
            store,
            ident,
            conn,
            status: TxStatus::Idle,
            write_guard: None,
            snapshot: None,
            snapshot_taken: Arc::new(Notify::new()),
            local_catalog: None,
            settings,
            cache: HashMap::new(),
            shapes: HashMap::new(),
            copy: None,
            warning: None,
            tx_reads: TxReads::default(),
        })
    }

    /// The replicator's session: it applies other sites' changes, so it captures nothing
    /// and takes no cluster lock.
    pub fn applier(store: Arc<Store>, ident: SessionIdent) -> Result<Session> {
        let mut s = Session::new(store, ident)?;
        s.applier = true;
        Ok(s)
    }

    /// Backend pid.
    pub fn pid(&self) -> i32 {
        self.ident.pid
    }

    /// Transaction status for ReadyForQuery.
    pub fn status(&self) -> TxStatus {
        self.status
    }

    /// Sets a setting from the startup packet (application_name, …).
    pub fn set_startup_setting(&mut self, name: &str, value: &str) {
        let n = name.to_ascii_lowercase();
        if matches!(n.as_str(), "application_name" | "search_path") {
            self.settings.insert(n, value.to_string());
        }
    }

    fn catalog(&self) -> Arc<Catalog> {
        match &self.local_catalog {
            Some(c) => c.clone(),
            None => self.store.catalog(),
        }
    }

    /// Parses a simple-protocol query string. A statement with inlined values is planned
    /// once per shape and run with its values bound (sql_capture::literals); anything else
    /// reuses earlier parses of the same text.
    pub fn parse_simple(&mut self, sql: &str) -> Result<SimpleQuery> {
        let Some(shape) = sql_capture::literals::scan(sql) else {
            return self.parse_text(sql, None);
        };
        let literals = || shape.values.iter().map(literal_value).collect::<Vec<_>>();
        match self.shapes.get(&shape.key) {
            Some(None) => return self.parse_text(sql, None),
            Some(Some(p)) => {
                let p = p.clone();
                if let Some(pinned) = self.shape_plan(&p, shape.values.len()) {
                    return Ok(SimpleQuery {
                        stmts: Arc::new(vec![p]),
                        literals: literals(),
                        pinned: Some(pinned),
                    });
                }
                // The schema changed under the shape; plan it afresh below.
                self.shapes.remove(&shape.key);
            }
            None => {}
        }
        let mut stmts = sql_capture::parse(sql)?;
        let located = sql_capture::Literals::find(sql, &shape);
        let (1, Some(located)) = (stmts.len(), located) else {
            self.remember_shape(shape.key, None);
            return self.parse_text(sql, Some(stmts));
        };
        let mut p = Prepared::new(stmts.pop(), Vec::new());
        p.literals = Some(located);
        let p = Arc::new(p);
        match self.shape_plan(&p, shape.values.len()) {
            Some(pinned) => {
                self.remember_shape(shape.key, Some(p.clone()));
                Ok(SimpleQuery {
                    stmts: Arc::new(vec![p]),
                    literals: literals(),
                    pinned: Some(pinned),
                })
            }
            None => {
                self.remember_shape(shape.key, None);
                // Some literal must stay inline. A statement without literal positions
                // keeps it so even if replanned after a schema change.
                let plain = Arc::new(vec![Arc::new(Prepared::new(p.parsed.clone(), Vec::new()))]);
                self.cache_text(sql, plain.clone());
                Ok(SimpleQuery {
                    stmts: plain,
                    literals: Vec::new(),
                    pinned: None,
                })
            }
        }
    }

    /// The plan of a shape-cached statement if every literal is a parameter in it.
    fn shape_plan(&self, p: &Prepared, literals: usize) -> Option<Arc<Command>> {
        let cmd = self.plan(p).ok()??;
        match cmd.as_ref() {
            Command::Sql(plan) if plan.literals == literals && plan.sql.len() == 1 => Some(cmd),
            _ => None,
        }
    }

    fn remember_shape(&mut self, key: String, p: Option<Arc<Prepared>>) {
        // Shapes repeat far more than texts, but clients can still make many; bound it.
        if self.shapes.len() >= 1024 {
            self.shapes.clear();
        }
        self.shapes.insert(key, p);
    }

    /// The ordinary path: cached by exact text (`parsed`: already parsed by the caller).
    fn parse_text(&mut self, sql: &str, parsed: Option<Vec<Parsed>>) -> Result<SimpleQuery> {
        let plain = |stmts| SimpleQuery {
            stmts,
            literals: Vec::new(),
            pinned: None,
        };
        if let Some(p) = self.cache.get(sql) {
            return Ok(plain(p.clone()));
        }
        let stmts = match parsed {
            Some(s) => s,
            None => sql_capture::parse(sql)?,
        };
        let prepared: Vec<Arc<Prepared>> = stmts
            .into_iter()
            .map(|p| Arc::new(Prepared::new(Some(p), Vec::new())))
            .collect();
        let prepared = Arc::new(prepared);
        self.cache_text(sql, prepared.clone());
        Ok(plain(prepared))
    }

    fn cache_text(&mut self, sql: &str, stmts: Arc<Vec<Arc<Prepared>>>) {
        // Texts with inlined values rarely repeat; keep the cache bounded.
        if self.cache.len() >= 256 {
            self.cache.clear();
        }
        self.cache.insert(sql.to_string(), stmts);
    }

    /// Plans a prepared statement against the session's view of the schema.
    pub fn plan(&self, p: &Prepared) -> Result<Option<Arc<Command>>> {
        p.plan(&self.catalog())
    }

    /// Parameter types for Describe: the client's where given, else inferred, else text.
    pub fn param_types(&self, p: &Prepared) -> Result<Vec<PgType>> {
        let cmd = self.plan(p)?;
        let inferred: Vec<Option<PgType>> = match cmd.as_deref() {
            Some(Command::Sql(plan)) => plan.param_types.clone(),
            _ => Vec::new(),
        };
        let n = inferred.len().max(p.client_types.len());
        Ok((0..n)
            .map(|i| {
                p.client_types
                    .get(i)
                    .and_then(|oid| PgType::from_oid(*oid))
                    .or_else(|| inferred.get(i).copied().flatten())
                    .unwrap_or(PgType::Text)
            })
            .collect())
    }

    /// Result columns for Describe (`None`: the statement returns no rows).
    pub fn describe(&self, p: &Prepared) -> Result<Option<Arc<Vec<Column>>>> {
        let Some(cmd) = self.plan(p)? else {
            return Ok(None);
        };
        match cmd.as_ref() {
            Command::Sql(plan) if plan.returns_rows => {
                let Some(sql) = plan.sql.last() else {
                    return Ok(None);
                };
                let catalog = self.catalog();
                // Prepared only when the columns are not known yet: a Describe before every
                // Execute (libpq's prepared mode) would otherwise pay a statement-cache
                // lookup by SQL text and a reset each time.
                let cols = p.try_columns(catalog.version, || {
                    let stmt = self.conn.prepare_cached(sql)?;
                    Ok(result_columns(&stmt, plan, &catalog))
                })?;
                Ok(Some(cols))
            }
            Command::Show(name) => Ok(Some(Arc::new(vec![Column {
                name: show_name(name),
                ty: PgType::Text,
                typmod: -1,
            }]))),
            _ => Ok(None),
        }
    }

    /// Runs one planned statement.
    pub async fn execute(
        &mut self,
        p: &Prepared,
        params: &Params<'_>,
        result_binary: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Outcome> {
        let planned = match params.pinned.clone() {
            Some(c) => Ok(Some(c)),
            None => self.plan(p),
        };
        let cmd = match planned {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(Outcome::done("")),
            Err(e) => {
                self.mark_failed();
                return Err(e);
            }
        };
        let result = self.run(&cmd, p, params, result_binary).await;
        if result.is_err() {
            self.mark_failed();
        }
        result
    }

    /// Marks an open transaction block failed (after an error outside `execute`).
    pub fn mark_failed(&mut self) {
        if self.status == TxStatus::InBlock {
            self.status = TxStatus::Failed;
        }
    }

    async fn run(
        &mut self,
        cmd: &Command,
        p: &Prepared,
        params: &Params<'_>,
        result_binary: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Outcome> {
        if self.status == TxStatus::Failed
            && !matches!(
                cmd,
                Command::Rollback | Command::Commit | Command::RollbackTo(_)
            )
        {
            return Err(SqlError::InFailedTransaction);
        }
        if let Some(epoch) = self.snapshot {
            let read = matches!(cmd, Command::Sql(p) if p.kind == StmtKind::Read);
            if !read || epoch != self.store.write_epoch() {
                self.end_snapshot();
            }
        }
        match cmd {
            Command::Begin => {
                if self.status != TxStatus::Idle {
                    return Ok(Outcome::Done {
                        tag: "BEGIN".into(),
                        notice: Some((
                            "25001",
                            "there is already a transaction in progress".into(),
                        )),
                    });
                }
                self.conn.execute_batch("BEGIN")?;
                self.status = TxStatus::InBlock;
                self.tx_reads = TxReads::default();
                Ok(Outcome::done("BEGIN"))
            }
            Command::Commit => self.commit().await,
            Command::Rollback => {
                if self.status == TxStatus::Idle {
                    return Ok(Outcome::Done {
                        tag: "ROLLBACK".into(),
                        notice: Some(("25P01", "there is no transaction in progress".into())),
                    });
                }
                let _ = self.end_transaction(false)?;
                Ok(Outcome::done("ROLLBACK"))
            }
            Command::Savepoint(name) => self.savepoint_command("SAVEPOINT", name, "SAVEPOINT"),
            Command::Release(name) => self.savepoint_command("RELEASE SAVEPOINT", name, "RELEASE"),
            Command::RollbackTo(name) => {
                let outcome = self.savepoint_command("ROLLBACK TO SAVEPOINT", name, "ROLLBACK")?;
                self.status = TxStatus::InBlock;
                if self.local_catalog.is_some() {
                    let cat = self.store.load_catalog(&self.conn)?;
                    self.local_catalog = Some(Arc::new(cat));
                }
                Ok(outcome)
            }
            Command::Set { name, value } => self.set(name, value),
            Command::ResetAll => {
                let app = self.settings.get("application_name");
                self.settings.reset();
                if let Some(a) = app {
                    self.settings.insert("application_name".into(), a);
                }
                Ok(Outcome::done("RESET"))
            }
            Command::Show(name) => self.show(name, result_binary),
            Command::Noop(tag) => {
                if *tag == "CHECKPOINT" && self.status == TxStatus::Idle {
                    let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
                }
                Ok(Outcome::done(*tag))
            }
            Command::Copy(plan) => self.start_copy(plan).await,
            Command::Sql(plan) => self.run_sql(plan, p, params, result_binary).await,
        }
    }

    /// SAVEPOINT, RELEASE and ROLLBACK TO: only inside a block, as in PostgreSQL (SQLite
    /// would open a transaction for a savepoint outside one).
    fn savepoint_command(&mut self, verb: &'static str, name: &str, tag: &str) -> Result<Outcome> {
        if self.status == TxStatus::Idle {
            return Err(SqlError::NoTransaction(verb));
        }
        self.conn
            .execute_batch(&format!("{verb} {}", store::quote(name)))?;
        Ok(Outcome::done(tag))
    }

    async fn ensure_write_lock(&mut self) -> Result<()> {
        if self.write_guard.is_none() {
            self.write_guard = Some(self.store.lock_writer().await);
        }
        if self.capture.is_none() && !self.applier && self.store.replication().is_some() {
            // Safety: `capture` is declared before `conn` in Session and is cleared at
            // every transaction end, so it never outlives the connection.
            self.capture = Some(unsafe { Capture::start(&self.conn) }?);
        }
        Ok(())
    }

    /// Drops the write lock, the capture and any schema lock at the end of a transaction.
    fn release_writer(&mut self) {
        self.capture = None;
        self.collected = None;
        self.write_guard = None;
        if !self.owned.is_empty() {
            let owned = std::mem::take(&mut self.owned);
            if let Some(r) = self.store.replication() {
                r.end_use_later(owned);
            }
        }
        // Dropping the guard releases the schema lock in the background.
        self.schema = None;
    }

    /// The first of `tables` that is strong, if any.
    fn first_strong(&self, tables: &[String]) -> Option<String> {
        let r = self.store.replication()?;
        if self.applier || !r.policy().any_strong() {
            return None;
        }
        tables
            .iter()
            .find(|t| r.policy().table(t).domain.is_some())
            .cloned()
    }

    /// Before a write to strong tables: makes this site the owner of their domains (see
    /// replication::domains) for the rest of the transaction.
    async fn use_domains(&mut self, tables: &[String]) -> Result<()> {
        let Some(r) = self.store.replication().cloned() else {
            return Ok(());
        };
        if self.applier {
            return Ok(());
        }
        let needed: Vec<String> = r
            .strong_domains(tables)
            .into_iter()
            .filter(|d| !self.owned.iter().any(|o| o.domains.contains(d)))
            .collect();
        if needed.is_empty() {
            return Ok(());
        }
        let table = tables
            .iter()
            .find(|t| r.policy().table(t).domain.is_some())
            .cloned()
            .unwrap_or_default();
        let got = r.acquire_domains(&needed, &table).await?;
        self.owned.extend(got);
        Ok(())
    }

    /// Before a statement that reads tables: at the start of a read snapshot (autocommit,
    /// or a block's first reading statement), makes strong reads linearizable and bounded
    /// ones fresh enough; then notes, for a later strong write in the same block, what
    /// was read that may be stale (see `check_stale_reads`).
    async fn before_reads(&mut self, plan: &SqlPlan) -> Result<()> {
        let Some(r) = self.store.replication().cloned() else {
            return Ok(());
        };
        if self.applier {
            return Ok(());
        }
        let snapshot_starts = match self.status {
            TxStatus::Idle => true,
            TxStatus::InBlock => self.block_snapshot_unstarted(),
            TxStatus::Failed => false,
        };
        let local = self
            .settings
            .get("mdbc.read_consistency")
            .is_some_and(|v| v == "local");
        if snapshot_starts && !local {
            if plan.kind == StmtKind::Read {
                self.sync_strong_reads(&plan.reads).await?;
            }
            if let Some((table, bound)) = r.bound_of(&plan.reads) {
                r.ensure_fresh(table, bound).await?;
                // A kept read snapshot may predate what was just applied.
                if self.status == TxStatus::Idle {
                    self.end_snapshot();
                }
            }
        }
        // A statement on its own is checked by its plan (see `check_stale_reads`).
        if self.status != TxStatus::InBlock {
            return Ok(());
        }
        if r.policy().any_bounded() {
            if snapshot_starts {
                self.tx_reads.fresh = r.fresh_as_of_all();
            } else if !local {
                self.check_block_bound(&r, &plan.reads)?;
            }
        }
        if !r.policy().any_strong() {
            // Nothing a stale read could feed, and no strong reads to track.
            return Ok(());
        }
        for t in &plan.reads {
            let p = r.policy().table(t);
            match (p.level, p.domain.clone()) {
                (Level::Eventual | Level::Causal | Level::Bounded, _) => {
                    self.tx_reads.stale.get_or_insert_with(|| t.clone());
                }
                // A strong table read in the block before its domain is owned: the
                // position read is checked when the block takes the domain.
                (Level::Strong, Some(d)) if plan.kind == StmtKind::Read => {
                    let held = self.owned.iter().any(|o| o.domains.contains(&d));
                    if !held && !self.tx_reads.strong.iter().any(|(x, _)| *x == d) {
                        let pos =
                            crate::replication::applied_pos(&self.conn, &format!("domain:{d}"))?;
                        self.tx_reads.strong.push((d, pos));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A block whose first statement reads nothing (a write) starts its snapshot here.
    fn note_block_start(&mut self) {
        let Some(r) = self.store.replication() else {
            return;
        };
        if !r.policy().any_bounded() {
            return;
        }
        if self.block_snapshot_unstarted() {
            self.tx_reads.fresh = r.fresh_as_of_all();
        }
    }

    /// Whether the open block has not touched the database yet: its SQLite snapshot
    /// starts with its next statement.
    fn block_snapshot_unstarted(&self) -> bool {
        matches!(
            self.conn.transaction_state(Some(rusqlite::MAIN_DB)),
            Ok(rusqlite::TransactionState::None)
        )
    }

    /// A bounded read later in a block sees the block's snapshot: refused (40001) when
    /// what the site had at the snapshot's start is older than the table's bound now.
    fn check_block_bound(
        &self,
        r: &crate::replication::Replication,
        reads: &[String],
    ) -> Result<()> {
        let Some((table, bound)) = r.bound_of(reads) else {
            return Ok(());
        };
        if self.tx_reads.fresh.is_some_and(|t| t.elapsed() <= bound) {
            return Ok(());
        }
        Err(SqlError::coded(
            "40001",
            format!(
                "could not serialize access: this transaction's snapshot is older than the {} ms staleness bound of table \"{table}\"; retry the transaction (or read it in a transaction of its own)",
                bound.as_millis()
            ),
        ))
    }

    /// Before a write to strong tables: refuses it when the transaction (or the statement
    /// itself) read a table that may be stale here, unless the session allows that.
    fn check_stale_reads(&self, plan: &SqlPlan, strong_table: &str) -> Result<()> {
        if self
            .settings
            .get("mdbc.strong_after_stale_read")
            .is_some_and(|v| v == "allow")
        {
            return Ok(());
        }
        let Some(r) = self.store.replication() else {
            return Ok(());
        };
        let in_statement = plan.reads.iter().find(|t| {
            matches!(
                r.policy().level(t),
                Level::Eventual | Level::Causal | Level::Bounded
            )
        });
        let Some(stale) = self.tx_reads.stale.as_ref().or(in_statement) else {
            return Ok(());
        };
        Err(SqlError::coded(
            "55000",
            format!(
                "cannot write strong table \"{strong_table}\" after reading \"{stale}\" in the same transaction: \"{stale}\" is {} and may be stale at this site, so the write could rest on an old value; read it in another transaction, make it strong, or SET mdbc.strong_after_stale_read = 'allow'",
                r.policy().level(stale).name()
            ),
        ))
    }

    /// Before an autocommit read of strong tables at a site that does not own their
    /// domain: waits until this site has applied each domain's log up to the head a
    /// quorum holds, so the read sees every strong commit acknowledged before it began
    /// (linearizable). Bounded by the lock timeout; `SET mdbc.read_consistency = local`
    /// skips it.
    async fn sync_strong_reads(&mut self, tables: &[String]) -> Result<()> {
        let Some(r) = self.store.replication().cloned() else {
            return Ok(());
        };
        if self.applier
            || self
                .settings
                .get("mdbc.read_consistency")
                .is_some_and(|v| v == "local")
        {
            return Ok(());
        }
        let heads = r.heads_to_read(tables).await?;
        if heads.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + r.lock_timeout();
        let mut epochs = self.store.watch_write_epoch();
        let mut pulled = false;
        // In a block, reading the positions on the session's connection would start the
        // block's snapshot before the site caught up; they are read beside it instead.
        let side = if self.status == TxStatus::Idle {
            None
        } else {
            Some(Connection::open_with_flags(
                self.store.path(),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?)
        };
        loop {
            // A kept read snapshot would hide what the replicator applies meanwhile.
            if side.is_none() {
                self.end_snapshot();
            }
            let conn = side.as_ref().unwrap_or(&self.conn);
            let mut behind = None;
            for (d, head) in &heads {
                let applied = crate::replication::applied_pos(conn, &format!("domain:{d}"))?;
                if applied < *head {
                    behind = Some((d.clone(), applied, *head));
                    break;
                }
            }
            let Some((d, applied, head)) = behind else {
                return Ok(());
            };
            if !pulled {
                r.pull_domain(&d, applied + 1, head).await;
                pulled = true;
            }
            tokio::select! {
                _ = epochs.changed() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => pulled = false,
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(SqlError::coded(
                        "57P03",
                        format!("cannot read the strong tables of domain {d}: this site applied its log up to {applied}, the cluster is at {head}, and it did not catch up in time; SET mdbc.read_consistency = 'local' reads what this site has"),
                    ));
                }
            }
        }
    }

    /// Runs `f` with the transaction's capture paused: for row changes that are not the
    /// transaction's own writes.
    fn unrecorded<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        if let Some(c) = &self.capture {
            c.set_enabled(false);
        }
        let out = f(self);
        if let Some(c) = &self.capture {
            c.set_enabled(true);
        }
        out
    }

    /// Inside the transaction: applies what this site lacks of the domains it now owns.
    async fn catch_up_domains(&mut self) -> Result<()> {
        let Some(r) = self.store.replication().cloned() else {
            return Ok(());
        };
        let version = self.catalog().version;
        for o in self.owned.clone() {
            for d in &o.domains {
                r.settle(&o, d).await?;
                if let Some((_, read)) = self.tx_reads.strong.iter().find(|(x, _)| x == d) {
                    // The block read this domain's tables at an older position than the
                    // one it now writes on: the read may be stale, and a write computed
                    // from it would lose an update. Retrying the block reads afresh.
                    if o.head(d) > *read {
                        return Err(SqlError::coded(
                            "40001",
                            format!(
                                "could not serialize access: the strong tables of domain {d} changed (log position {read} -> {}) after this transaction read them; retry the transaction",
                                o.head(d)
                            ),
                        ));
                    }
                }
                if o.is_caught_up(d) {
                    continue;
                }
                let from = crate::replication::applied_pos(&self.conn, &format!("domain:{d}"))? + 1;
                for seq in from..=o.head(d) {
                    let entry = r.read_domain_entry(&o, d, seq).await?;
                    // Other sites' rows are not this transaction's writes: recorded, they
                    // would ship again as if written here (duplicating appended rows).
                    self.unrecorded(|s| {
                        r.apply_domain_entry(&s.conn, &mut s.table_shapes, version, d, seq, &entry)
                    })?;
                }
                o.mark_caught_up(d);
            }
        }
        Ok(())
    }

    /// Before COMMIT: ships the transaction's strong changes to their domain logs.
    async fn publish_strong(&mut self) -> Result<()> {
        let Some(r) = self.store.replication().cloned() else {
            return Ok(());
        };
        if self.owned.is_empty() {
            return Ok(());
        }
        let Some(capture) = self.capture.as_ref() else {
            return Ok(());
        };
        let version = self.catalog().version;
        let changes = r.collect(&self.conn, capture, &mut self.table_shapes, version)?;
        let schema = self.schema.as_ref().and_then(|s| s.published);
        let (entries, rest) = r.prepare_strong(&self.conn, &self.owned, changes, schema)?;
        r.put_strong(&entries).await?;
        self.collected = Some(rest);
        Ok(())
    }

    /// Before a DDL statement at a site of a cluster: takes the schema lock (once per
    /// transaction) so that schema changes are serialised across sites.
    async fn begin_schema_change(&mut self) -> Result<()> {
        if self.schema.is_some() || self.applier {
            return Ok(());
        }
        let Some(r) = self.store.replication().cloned() else {
            return Ok(());
        };
        let (guard, head) = r.lock_schema().await?;
        self.schema = Some(SchemaChange {
            guard,
            head,
            caught_up: false,
            ddl: Vec::new(),
            published: None,
        });
        Ok(())
    }

    /// Inside the transaction, before its first DDL: applies whatever schema entries this
    /// site has not applied yet, so the new one is written against the newest schema.
    async fn catch_up_schema(&mut self) -> Result<()> {
        let Some(r) = self.store.replication().cloned() else {
            return Ok(());
        };
        let Some(sc) = self.schema.as_ref().filter(|s| !s.caught_up) else {
            return Ok(());
        };
        let (from, head) = (r.schema_pos() + 1, sc.head);
        for seq in from..=head {
            let entry = match &self.schema {
                Some(sc) => r.read_schema_entry(&sc.guard, seq).await?,
                None => break,
            };
            self.run_ddl_texts(&entry.ddl)?;
            crate::replication::set_applied(&self.conn, crate::replication::SCHEMA_LOG, seq)?;
        }
        if let Some(sc) = self.schema.as_mut() {
            sc.caught_up = true;
        }
        Ok(())
    }

    /// Before COMMIT of a transaction that changed the schema: appends its DDL to the
    /// schema log (a quorum holds it before this returns).
    async fn publish_schema(&mut self) -> Result<()> {
        let Some(r) = self.store.replication().cloned() else {
            return Ok(());
        };
        let Some(sc) = self.schema.as_mut() else {
            return Ok(());
        };
        if sc.ddl.is_empty() || sc.published.is_some() {
            return Ok(());
        }
        let seq = sc.head + 1;
        r.publish_schema(&sc.guard, seq, std::mem::take(&mut sc.ddl))
            .await?;
        sc.published = Some(seq);
        crate::replication::set_applied(&self.conn, crate::replication::SCHEMA_LOG, seq)?;
        Ok(())
    }

    /// Runs DDL statements (from the schema log) inside the current transaction.
    fn run_ddl_texts(&mut self, ddl: &[String]) -> Result<()> {
        for sql in ddl {
            for parsed in sql_capture::parse(sql)? {
                let p = Prepared::new(Some(parsed), Vec::new());
                let Some(cmd) = self.plan(&p)? else { continue };
                match &*cmd {
                    Command::Sql(plan) if plan.kind == StmtKind::Ddl => {
                        self.run_statements(plan, &p, &Params::none(), &|_| false)?;
                        self.after_ddl(plan)?;
                    }
                    _ => {
                        return Err(SqlError::coded(
                            "XX000",
                            format!("the schema log holds a statement that is not DDL: {sql}"),
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// The replicator's session: applies schema-log entry `seq` in its own transaction,
    /// recording the position with it. Returns whether it was new here.
    pub async fn apply_schema_entry(&mut self, seq: u64, ddl: &[String]) -> Result<bool> {
        self.ensure_write_lock().await?;
        let r = self.store.replication().cloned();
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            self.release_writer();
            return Err(e.into());
        }
        let applied = (|| -> Result<bool> {
            if crate::replication::applied_pos(&self.conn, crate::replication::SCHEMA_LOG)? >= seq {
                return Ok(false);
            }
            self.run_ddl_texts(ddl)?;
            crate::replication::set_applied(&self.conn, crate::replication::SCHEMA_LOG, seq)?;
            Ok(true)
        })();
        let outcome = match applied {
            Ok(true) => match self.commit_writes() {
                Ok(c) => {
                    if let Some(cat) = self.local_catalog.take() {
                        self.store.publish_catalog(cat);
                    }
                    if let Some(r) = &r {
                        r.set_schema_pos(seq);
                    }
                    Ok((true, c))
                }
                Err(e) => Err(e),
            },
            Ok(false) => {
                if let Some(r) = &r {
                    r.set_schema_pos(seq);
                }
                Ok((false, Committed::default()))
            }
            Err(e) => Err(e),
        };
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.local_catalog = None;
        self.release_writer();
        let (new, committed) = outcome?;
        self.acknowledge(committed).await;
        Ok(new)
    }

    /// Ends a kept read transaction.
    fn end_snapshot(&mut self) {
        if self.snapshot.take().is_some()
            && !self.conn.is_autocommit()
            && self.conn.execute_batch("COMMIT").is_err()
        {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Ends a kept read transaction that a write has made stale; returns whether the
    /// session now holds no snapshot to watch.
    pub fn end_stale_snapshot(&mut self) -> bool {
        match self.snapshot {
            Some(e) if e == self.store.write_epoch() => false,
            Some(_) => {
                self.end_snapshot();
                true
            }
            None => true,
        }
    }

    /// Signalled each time the session keeps a read transaction open.
    pub fn snapshot_signal(&self) -> Arc<Notify> {
        self.snapshot_taken.clone()
    }

    /// Seals the transaction's replication entry into it, then runs SQLite's COMMIT;
    /// under group commit it is bracketed by a ticket to wait on once the write lock is
    /// released (see durability.rs). The caller rolls back on an error.
    fn commit_writes(&mut self) -> Result<Committed> {
        let schema = self.schema.as_ref().and_then(|s| s.published);
        let sealed = match (self.store.replication().cloned(), self.capture.take()) {
            (Some(r), Some(capture)) => {
                let version = self.catalog().version;
                let tables = match self.collected.take() {
                    Some(t) => t,
                    None => {
                        let t = r.collect(&self.conn, &capture, &mut self.table_shapes, version)?;
                        // Strong rows reach other sites only through their domain log
                        // (publish_strong); never let them slip into the site log.
                        if let Some(x) = t
                            .iter()
                            .find(|x| r.policy().table(&x.table).domain.is_some())
                        {
                            return Err(SqlError::coded(
                                "40001",
                                format!(
                                    "cannot write strong table \"{}\": it was changed (by a trigger or cascade?) without its domain lock; write it directly",
                                    x.table
                                ),
                            ));
                        }
                        t
                    }
                };
                r.seal(&self.conn, tables, schema)?
            }
            _ => None,
        };
        let (r, ticket) = self.store.commit(&self.conn);
        r?;
        if let Some(r) = self.store.replication() {
            if let Some(s) = &sealed {
                r.committed(s);
            }
            if let Some(sc) = &self.schema {
                if sc.caught_up {
                    r.set_schema_pos(sc.published.unwrap_or(sc.head));
                }
            }
        }
        Ok(Committed { ticket, sealed })
    }

    /// Acknowledges nothing before the commit is on disk and its entry is in the site's
    /// log in MUSIC (and held by `sync_replicas` other sites, when its tables ask; if
    /// they do not confirm in time the client gets a warning with its acknowledgement).
    async fn acknowledge(&mut self, c: Committed) {
        self.store.wait_durable(c.ticket).await;
        if let (Some(s), Some(r)) = (c.sealed, self.store.replication()) {
            if let Some(w) = r.ship(s).await {
                self.warning = Some(("01000", w));
            }
        }
    }

    /// A warning to send the client with the current statement's result.
    pub fn take_warning(&mut self) -> Option<(&'static str, String)> {
        self.warning.take()
    }

    /// Before rows go out: everything this reader could have seen must be on disk.
    async fn wait_visible_durable(store: Arc<Store>) {
        if let Some(g) = store.group() {
            g.wait(g.latest()).await;
        }
    }

    async fn commit(&mut self) -> Result<Outcome> {
        match self.status {
            TxStatus::Idle => Ok(Outcome::Done {
                tag: "COMMIT".into(),
                notice: Some(("25P01", "there is no transaction in progress".into())),
            }),
            TxStatus::Failed => {
                let _ = self.end_transaction(false)?;
                Ok(Outcome::done("ROLLBACK"))
            }
            TxStatus::InBlock => {
                let published = match self.publish_schema().await {
                    Ok(()) => self.publish_strong().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = published {
                    let _ = self.end_transaction(false);
                    return Err(e);
                }
                let committed = self.end_transaction(true)?;
                self.acknowledge(committed).await;
                Ok(Outcome::done("COMMIT"))
            }
        }
    }

    /// Ends the current block: COMMIT (publishing its DDL) or ROLLBACK. A failed COMMIT
    /// rolls back and reports why.
    /// Returns what to wait for before acknowledging.
    fn end_transaction(&mut self, commit: bool) -> Result<Committed> {
        let result = if commit && self.write_guard.is_some() {
            match self.commit_writes() {
                Ok(c) => {
                    if let Some(cat) = self.local_catalog.take() {
                        self.store.publish_catalog(cat);
                    }
                    Ok(c)
                }
                Err(e) => Err(e),
            }
        } else if commit {
            // A block that never wrote has nothing to make durable.
            self.conn
                .execute_batch("COMMIT")
                .map(|()| Committed::default())
                .map_err(SqlError::from)
        } else {
            Ok(Committed::default())
        };
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.local_catalog = None;
        self.status = TxStatus::Idle;
        self.release_writer();
        result
    }

    fn set(&mut self, name: &str, value: &SetValue) -> Result<Outcome> {
        let key = name.to_ascii_lowercase();
        let key = match key.as_str() {
            "time zone" | "time_zone" => "timezone".to_string(),
            "session characteristics as transaction isolation level" => {
                return Ok(Outcome::done("SET"))
            }
            k => k.strip_prefix("session ").unwrap_or(k).to_string(),
        };
        let defaults = default_settings();
        let v = match value {
            SetValue::Default => defaults.get(&key).cloned().unwrap_or_default(),
            SetValue::Value(v) => v.clone(),
        };
        let bad = |hint: &str| {
            SqlError::coded(
                "22023",
                format!("invalid value for parameter \"{key}\": \"{v}\" ({hint})"),
            )
        };
        match key.as_str() {
            "timezone" => {
                let u = v.to_ascii_uppercase();
                if !matches!(
                    u.as_str(),
                    "UTC"
                        | "GMT"
                        | "ETC/UTC"
                        | "Z"
                        | "UCT"
                        | "+00"
                        | "00:00"
                        | "0"
                        | "+00:00"
                        | "ZULU"
                        | "UNIVERSAL"
                ) {
                    return Err(bad("mdbc stores and shows timestamptz in UTC"));
                }
                self.settings.insert(key, "UTC".into());
            }
            "client_encoding" | "names" => {
                let u = v.to_ascii_uppercase().replace(['-', '_'], "");
                if !matches!(u.as_str(), "UTF8" | "UNICODE") {
                    return Err(bad("only UTF8 is supported"));
                }
                self.settings
                    .insert("client_encoding".into(), "UTF8".into());
            }
            "datestyle" => {
                if !v.to_ascii_uppercase().contains("ISO") {
                    return Err(bad("only ISO output is supported"));
                }
                self.settings.insert(key, "ISO, MDY".into());
            }
            "standard_conforming_strings" => {
                if !matches!(v.to_ascii_lowercase().as_str(), "on" | "true" | "1") {
                    return Err(bad("only on is supported"));
                }
            }
            "transaction_isolation"
            | "transaction isolation level"
            | "default_transaction_isolation" => {}
            "mdbc.site" => {
                return Err(SqlError::coded(
                    "55P02",
                    "parameter \"mdbc.site\" cannot be changed (it is the site's name in its configuration)",
                ))
            }
            "mdbc.read_consistency" => {
                let l = v.to_ascii_lowercase();
                if !matches!(l.as_str(), "default" | "local") {
                    return Err(bad("default: strong tables read linearizably, bounded ones within their bound; local: what this site has applied"));
                }
                self.settings.insert(key, l);
            }
            "mdbc.strong_after_stale_read" => {
                let l = v.to_ascii_lowercase();
                if !matches!(l.as_str(), "refuse" | "allow") {
                    return Err(bad("refuse: a strong write after a read of an eventual, causal or bounded table fails; allow: it goes ahead"));
                }
                self.settings.insert(key, l);
            }
            k if defaults.contains_key(k) || k.contains('.') => {
                self.settings.insert(key, v);
            }
            _ => {
                return Err(SqlError::coded(
                    "42704",
                    format!("unrecognized configuration parameter \"{name}\""),
                ))
            }
        }
        Ok(Outcome::done("SET"))
    }

    fn show(&self, name: &str, result_binary: &(dyn Fn(usize) -> bool + Sync)) -> Result<Outcome> {
        let key = match name {
            "transaction isolation level" => "transaction_isolation",
            "time zone" => "timezone",
            n => n,
        };
        let value = self.settings.get(key).ok_or_else(|| {
            SqlError::coded(
                "42704",
                format!("unrecognized configuration parameter \"{name}\""),
            )
        })?;
        let col = Column {
            name: show_name(name),
            ty: PgType::Text,
            typmod: -1,
        };
        let v = Value::Text(value);
        let mut row = RowEncoder::new(1);
        row.push(ValueRef::from(&v), &col, result_binary(0))?;
        Ok(Outcome::Rows {
            columns: Arc::new(vec![col]),
            rows: vec![row.finish()],
            tag: "SHOW".into(),
        })
    }

    async fn run_sql(
        &mut self,
        plan: &SqlPlan,
        p: &Prepared,
        params: &Params<'_>,
        result_binary: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Outcome> {
        let published = self.store.published_version();
        // Not at a write inside a block that has not read yet: starting a read snapshot
        // there, before queueing for the writer, would make its write fail as stale.
        if published != self.seen_catalog
            && (self.conn.is_autocommit() || plan.kind == StmtKind::Read)
        {
            // Another session or the replicator changed the schema. SQLite notices only
            // when a statement runs (and then re-prepares it), so a statement prepared now
            // would still report the old result columns: run one statement against the
            // schema first, which reloads it, and drop statements prepared against the old.
            self.conn.flush_prepared_statement_cache();
            let _ = self
                .conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                    r.get::<_, i64>(0)
                });
            self.seen_catalog = published;
        }
        if !plan.reads.is_empty() {
            self.before_reads(plan).await?;
        } else if self.status == TxStatus::InBlock {
            self.note_block_start();
        }
        let writes = plan.kind != StmtKind::Read;
        if plan.kind == StmtKind::Ddl {
            self.begin_schema_change().await?;
        }
        if plan.kind == StmtKind::Write {
            if let Some(t) = self.first_strong(&plan.writes) {
                self.check_stale_reads(plan, &t)?;
            }
            self.use_domains(&plan.writes).await?;
        }
        if writes && self.write_guard.is_none() {
            // Compile the statement before queueing for the writer, so SQLite's parse and
            // code generation do not lengthen the time other writers wait. An error here is
            // reported by the real run below.
            if let Some(last) = plan.sql.last() {
                let _ = self.conn.prepare_cached(last);
            }
            self.ensure_write_lock().await?;
        }
        let autocommit = self.status == TxStatus::Idle;
        // Under group commit every autocommit write gets an explicit COMMIT to bracket, and
        // under replication one to seal its entry into.
        let own_txn = autocommit
            && writes
            && (self.store.group().is_some()
                || self.store.replication().is_some()
                || plan.sql.len() > 1
                || !plan.catalog.is_empty()
                || plan.rebuild.is_some());
        let keep_snapshot = autocommit && !writes;
        if keep_snapshot && self.snapshot.is_none() {
            // The epoch is read before the snapshot exists, so the snapshot is at least
            // as new as the epoch says (see store.rs).
            let epoch = self.store.write_epoch();
            self.conn.execute_batch("BEGIN")?;
            self.snapshot = Some(epoch);
            self.snapshot_taken.notify_one();
        }
        let fk_toggle = autocommit && plan.rebuild.is_some();
        if fk_toggle {
            self.conn.execute_batch("PRAGMA foreign_keys = OFF")?;
        }
        if own_txn {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        let mut result = Ok(Outcome::done(""));
        if plan.kind == StmtKind::Ddl {
            result = self.catch_up_schema().await.map(|()| Outcome::done(""));
        }
        if result.is_ok() && !self.owned.is_empty() {
            result = self.catch_up_domains().await.map(|()| Outcome::done(""));
        }
        // SQLite runs inline: each connection has its own thread (see server.rs), so a long
        // statement blocks only its own client.
        if result.is_ok() {
            result = self.run_statements(plan, p, params, result_binary);
        }
        if keep_snapshot && result.is_err() {
            self.end_snapshot();
        }
        if result.is_ok() && plan.kind == StmtKind::Ddl {
            if let Err(e) = self.after_ddl(plan) {
                result = Err(e);
            } else if let (Some(sc), Some(Parsed::Statement(stmt))) =
                (self.schema.as_mut(), &p.parsed)
            {
                sc.ddl.push(stmt.to_string());
            }
        }
        if own_txn && result.is_ok() {
            if let Err(e) = self.publish_schema().await {
                result = Err(e);
            } else if let Err(e) = self.publish_strong().await {
                result = Err(e);
            }
        }
        let mut committed = None;
        if own_txn {
            let end = if result.is_ok() {
                self.commit_writes().map(|c| committed = Some(c))
            } else {
                Ok(())
            };
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            if let Err(e) = end {
                result = Err(e);
            }
        }
        if fk_toggle {
            let _ = self.conn.execute_batch("PRAGMA foreign_keys = ON");
        }
        if autocommit {
            if plan.kind == StmtKind::Ddl && result.is_ok() {
                if let Some(cat) = self.local_catalog.take() {
                    self.store.publish_catalog(cat);
                }
            }
            self.local_catalog = None;
            self.release_writer();
        }
        if result.is_ok() {
            if let Some(c) = committed {
                self.acknowledge(c).await;
            } else if plan.kind == StmtKind::Read && self.write_guard.is_none() {
                // (A writer reads without waiting: see durability.rs.)
                Self::wait_visible_durable(self.store.clone()).await;
            }
        }
        result
    }

    fn after_ddl(&mut self, plan: &SqlPlan) -> Result<()> {
        self.store
            .apply_catalog_changes(&self.conn, &plan.catalog)?;
        if let Some(rb) = &plan.rebuild {
            // Every site replays the DDL and rebuilds its own rows (see Capture::set_enabled).
            self.unrecorded(|s| store::rebuild_table(&s.conn, rb))?;
        }
        let cat = self.store.load_catalog(&self.conn)?;
        self.store.init_sequences(&self.conn, &cat)?;
        self.local_catalog = Some(Arc::new(cat));
        Ok(())
    }

    fn run_statements(
        &mut self,
        plan: &SqlPlan,
        p: &Prepared,
        params: &Params<'_>,
        result_binary: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Outcome> {
        let Some((last, before)) = plan.sql.split_last() else {
            return Ok(Outcome::done(tag_text(&plan.tag, 0)));
        };
        for sql in before {
            self.conn.execute_batch(sql)?;
        }
        let catalog = self.catalog();
        let param_types = self.param_types_for(plan, p);
        let mut stmt = self.conn.prepare_cached(last)?;
        let expected = stmt.parameter_count();
        if !params.literals.is_empty() {
            // parse_simple checked that the plan's parameters are exactly these.
            for (i, v) in params.literals.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, v)?;
            }
        } else if params.values.len() < expected {
            return Err(SqlError::Protocol(format!(
                "bind message supplies {} parameters, but prepared statement requires {expected}",
                params.values.len()
            )));
        } else {
            for i in 0..expected {
                let v = decode_param(params, i, param_types.get(i).copied().flatten())?;
                stmt.raw_bind_parameter(i + 1, v)?;
            }
        }
        if plan.returns_rows {
            let columns = p.try_columns(catalog.version, || {
                Ok(result_columns(&stmt, plan, &catalog))
            })?;
            let binary: Vec<bool> = (0..columns.len()).map(result_binary).collect();
            let mut rows_out = Vec::new();
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next()? {
                let mut enc = RowEncoder::new(columns.len());
                for (i, col) in columns.iter().enumerate() {
                    enc.push(row.get_ref(i)?, col, binary[i])?;
                }
                rows_out.push(enc.finish());
            }
            let n = rows_out.len();
            Ok(Outcome::Rows {
                columns,
                rows: rows_out,
                tag: tag_text(&plan.tag, n),
            })
        } else {
            let n = stmt.raw_execute()?;
            Ok(Outcome::done(tag_text(&plan.tag, n)))
        }
    }

    fn param_types_for(&self, plan: &SqlPlan, p: &Prepared) -> Vec<Option<PgType>> {
        let n = plan.param_types.len().max(p.client_types.len());
        (0..n)
            .map(|i| {
                p.client_types
                    .get(i)
                    .and_then(|o| PgType::from_oid(*o))
                    .or_else(|| plan.param_types.get(i).copied().flatten())
            })
            .collect()
    }

    async fn start_copy(&mut self, plan: &CopyPlan) -> Result<Outcome> {
        let catalog = self.catalog();
        let def = catalog.table(&plan.table).ok_or_else(|| {
            SqlError::from(sql_capture::Error::UndefinedTable(plan.table.clone()))
        })?;
        let columns: Vec<ColumnInfo> = if plan.columns.is_empty() {
            def.columns.clone()
        } else {
            plan.columns
                .iter()
                .filter_map(|c| def.column(c).cloned())
                .collect()
        };
        let col_list = columns
            .iter()
            .map(|c| store::quote(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        if !plan.from_stdin {
            let out = self.copy_out(plan, &columns, &col_list);
            if out.is_ok() {
                Self::wait_visible_durable(self.store.clone()).await;
            }
            return out;
        }
        self.use_domains(std::slice::from_ref(&plan.table)).await?;
        self.ensure_write_lock().await?;
        let own_transaction = self.status == TxStatus::Idle;
        if own_transaction {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        let mut placeholders = (1..=columns.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Serial columns COPY leaves out come from their sequences (SQLite would allocate
        // an INTEGER PRIMARY KEY itself; see sql_capture's INSERT rewrite).
        let mut col_list = col_list;
        for c in def.columns.iter().filter(|c| c.serial) {
            if !columns.iter().any(|k| k.name == c.name) {
                col_list.push_str(&format!(", {}", store::quote(&c.name)));
                placeholders.push_str(&format!(
                    ", pg_nextval('{}')",
                    format!("{}_{}_seq", def.name, c.name).replace('\'', "''")
                ));
            }
        }
        let insert_sql = format!(
            "INSERT INTO {} ({col_list}) VALUES ({placeholders})",
            store::quote(&plan.table)
        );
        let n = columns.len();
        self.copy = Some(CopyIn {
            plan: plan.clone(),
            columns,
            insert_sql,
            buf: Vec::new(),
            rows: 0,
            error: None,
            own_transaction,
            header_pending: plan.header,
            ended: false,
        });
        Ok(Outcome::CopyIn {
            columns: n,
            csv: plan.format == CopyFormat::Csv,
        })
    }

    fn copy_out(&self, plan: &CopyPlan, columns: &[ColumnInfo], col_list: &str) -> Result<Outcome> {
        let sql = format!("SELECT {col_list} FROM {}", store::quote(&plan.table));
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.raw_query();
        let mut data = Vec::new();
        if plan.header && plan.format == CopyFormat::Csv {
            let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
            data.push(Bytes::from(format!(
                "{}\n",
                names.join(&plan.delimiter.to_string())
            )));
        }
        while let Some(row) = rows.next()? {
            let mut line = BytesMut::new();
            for (i, c) in columns.iter().enumerate() {
                if i > 0 {
                    line.put_slice(plan.delimiter.to_string().as_bytes());
                }
                let v = row.get_ref(i)?;
                copy::encode_field(v, c, plan, &mut line);
            }
            line.put_u8(b'\n');
            data.push(line.freeze());
        }
        Ok(Outcome::CopyOut {
            columns: columns.len(),
            data,
        })
    }

    /// Feeds COPY data. Errors are kept until CopyDone, as the client is still sending.
    pub fn copy_data(&mut self, data: &[u8]) {
        let Some(mut c) = self.copy.take() else {
            return;
        };
        if c.error.is_none() && !c.ended {
            c.buf.extend_from_slice(data);
            if let Err(e) = self.copy_lines(&mut c, false) {
                c.error = Some(e);
            }
        }
        self.copy = Some(c);
    }

    fn copy_lines(&mut self, c: &mut CopyIn, at_end: bool) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(&c.insert_sql)?;
        let mut start = 0;
        let buf = std::mem::take(&mut c.buf);
        let mut result = Ok(());
        while let Some(end) = copy::find_line_end(&buf[start..], &c.plan) {
            let line = &buf[start..start + end];
            start += end + 1;
            match copy_row(&mut stmt, c, line) {
                Ok(true) => {
                    c.ended = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        c.buf = buf;
        c.buf.drain(..start);
        result?;
        if at_end && !c.ended && !c.buf.is_empty() {
            let line = std::mem::take(&mut c.buf);
            copy_row(&mut stmt, c, &line)?;
        }
        Ok(())
    }

    /// Finishes COPY FROM STDIN: commits (outside a block) and reports the row count.
    pub async fn copy_done(&mut self) -> Result<String> {
        let Some(mut c) = self.copy.take() else {
            return Err(SqlError::Protocol(
                "CopyDone without COPY in progress".into(),
            ));
        };
        if c.error.is_none() {
            if let Err(e) = self.copy_lines(&mut c, true) {
                c.error = Some(e);
            }
        }
        let mut result = match c.error.take() {
            Some(e) => Err(e),
            None => Ok(format!("COPY {}", c.rows)),
        };
        if c.own_transaction && result.is_ok() {
            // COPY into a strong table commits through its domain log, as a write does.
            if let Err(e) = self.publish_strong().await {
                result = Err(e);
            }
        }
        let (result, committed) = self.finish_copy(c.own_transaction, result);
        if result.is_ok() {
            self.acknowledge(committed).await;
        }
        result
    }

    /// The client aborted COPY.
    pub fn copy_fail(&mut self, message: &str) -> SqlError {
        let own = self.copy.take().map(|c| c.own_transaction).unwrap_or(false);
        let err = SqlError::coded("57014", format!("COPY from stdin failed: {message}"));
        match self.finish_copy(own, Err(err)) {
            (Err(e), _c) => e,
            (Ok(_), _) => SqlError::coded("57014", "COPY from stdin failed"),
        }
    }

    fn finish_copy(
        &mut self,
        own_transaction: bool,
        result: Result<String>,
    ) -> (Result<String>, Committed) {
        let mut committed = Committed::default();
        let result = if own_transaction {
            let r = match result {
                Ok(tag) => self.commit_writes().map(|c| {
                    committed = c;
                    tag
                }),
                Err(e) => Err(e),
            };
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            self.release_writer();
            r
        } else {
            result
        };
        if result.is_err() {
            self.mark_failed();
        }
        (result, committed)
    }
}

/// Inserts one COPY line; returns true at the end-of-data marker.
fn copy_row(stmt: &mut rusqlite::CachedStatement<'_>, c: &mut CopyIn, line: &[u8]) -> Result<bool> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if c.plan.format == CopyFormat::Text && line == b"\\." {
        return Ok(true);
    }
    if c.header_pending {
        c.header_pending = false;
        return Ok(false);
    }
    let fields = copy::split_fields(line, &c.plan)?;
    if fields.len() < c.columns.len() {
        return Err(SqlError::coded(
            "22P04",
            format!(
                "missing data for column \"{}\" (line {})",
                c.columns[fields.len()].name,
                c.rows + 1
            ),
        ));
    }
    if fields.len() > c.columns.len() {
        return Err(SqlError::coded(
            "22P04",
            format!(
                "extra data after last expected column (line {})",
                c.rows + 1
            ),
        ));
    }
    for (i, (f, col)) in fields.iter().zip(&c.columns).enumerate() {
        let v = match f {
            None => Value::Null,
            Some(text) => values::from_text(text, col.ty, col.typmod).map_err(|mut e| {
                e.message = format!(
                    "{} (COPY {}, line {}, column {})",
                    e.message,
                    c.plan.table,
                    c.rows + 1,
                    col.name
                );
                e
            })?,
        };
        stmt.raw_bind_parameter(i + 1, v)?;
    }
    stmt.raw_execute()?;
    c.rows += 1;
    Ok(false)
}

fn show_name(name: &str) -> String {
    match name {
        "transaction isolation level" => "transaction_isolation".into(),
        "time zone" => "TimeZone".into(),
        "timezone" => "TimeZone".into(),
        "datestyle" => "DateStyle".into(),
        "intervalstyle" => "IntervalStyle".into(),
        n => n.to_string(),
    }
}

fn tag_text(tag: &CommandTag, n: usize) -> String {
    match tag {
        CommandTag::Select => format!("SELECT {n}"),
        CommandTag::Insert => format!("INSERT 0 {n}"),
        CommandTag::Update => format!("UPDATE {n}"),
        CommandTag::Delete => format!("DELETE {n}"),
        CommandTag::Fixed(t) => (*t).to_string(),
    }
}

fn decode_param(params: &Params<'_>, i: usize, ty: Option<PgType>) -> Result<Value> {
    let Some(raw) = params.values.get(i).and_then(|v| v.as_ref()) else {
        return Ok(Value::Null);
    };
    if (params.binary)(i) {
        let ty = ty.ok_or_else(|| {
            SqlError::coded(
                "42P18",
                format!("could not determine data type of parameter ${}", i + 1),
            )
        })?;
        return Ok(values::from_binary(raw, ty)?);
    }
    let text = std::str::from_utf8(raw)
        .map_err(|_| SqlError::coded("22021", "invalid byte sequence for encoding \"UTF8\""))?;
    Ok(match ty {
        Some(t) => values::from_text(text, t, -1)?,
        None => Value::Text(text.to_string()),
    })
}

/// Types of a statement's result columns: the declared type of the column each comes from
/// (SQLite knows the origin), else the inferred type of the expression, else text.
fn result_columns(
    stmt: &rusqlite::Statement<'_>,
    plan: &SqlPlan,
    catalog: &Catalog,
) -> Vec<Column> {
    stmt.columns_with_metadata()
        .enumerate()
        .map(|(i, m)| {
            let from_origin = match (m.table_name(), m.origin_name()) {
                (Some(t), Some(c)) => catalog
                    .table(t)
                    .and_then(|d| d.column(c))
                    .map(|c| (c.ty, c.typmod)),
                _ => None,
            };
            let (ty, typmod) = from_origin
                .or_else(|| {
                    plan.columns
                        .get(i)
                        .and_then(|c| c.ty.map(|t| (t, c.typmod)))
                })
                .unwrap_or((PgType::Text, -1));
            Column {
                name: m.name().to_string(),
                ty,
                typmod,
            }
        })
        .collect()
}

fn literal_value(v: &sql_capture::LiteralValue) -> Value {
    match v {
        sql_capture::LiteralValue::Int(i) => Value::Integer(*i),
        sql_capture::LiteralValue::Real(f) => Value::Real(*f),
        sql_capture::LiteralValue::Text(t) => Value::Text(t.clone()),
    }
}

/// Builds one DataRow.
struct RowEncoder {
    buf: BytesMut,
    count: i16,
}

impl RowEncoder {
    fn new(columns: usize) -> Self {
        RowEncoder {
            buf: BytesMut::with_capacity(columns * 16),
            count: 0,
        }
    }

    fn push(&mut self, v: ValueRef<'_>, col: &Column, binary: bool) -> Result<()> {
        self.count += 1;
        if v == ValueRef::Null {
            self.buf.put_i32(-1);
            return Ok(());
        }
        let len_at = self.buf.len();
        self.buf.put_i32(0);
        if binary {
            values::encode_binary(v, col.ty, col.typmod, &mut self.buf)?;
        } else {
            values::encode_text(v, col.ty, col.typmod, &mut self.buf);
        }
        let len = (self.buf.len() - len_at - 4) as i32;
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    fn finish(self) -> DataRow {
        DataRow::new(self.buf, self.count)
    }
}
