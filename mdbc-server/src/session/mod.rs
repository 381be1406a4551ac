//! One client session: its SQLite connection, transaction state, settings and prepared
//! statements. Protocol-independent: the pgwire frontend (`wire.rs`) feeds it statements
//! and sends what it returns.
//!
//! Transaction rules (PostgreSQL's): outside a block every statement commits on its own;
//! inside BEGIN … COMMIT an error fails the block and later statements get 25P02 until
//! ROLLBACK (or ROLLBACK TO a savepoint). Writes take the store's write lock at the first
//! write of a transaction and keep it to the end, so SQLite never reports BUSY to a client.
//!
//! This module runs statements and ends transactions; the rest of a session has rooms of
//! its own ([`prepared`], [`settings`], [`encode`], [`copy`], [`outcome`]). In a cluster
//! the session asks replication through the three doors of its
//! [`ReplTxn`](crate::replication::ReplTxn) and nothing else.

mod clock;
pub mod copy;
mod cursors;
pub mod encode;
mod explain;
pub mod outcome;
pub mod prepared;
pub mod settings;
mod temporary;

use std::sync::Arc;

use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use sql_capture::{
    quote_ident, Catalog, Command, CommandTag, CopyPlan, CursorStatement, Parsed, PgType, SetValue,
    SqlPlan, StmtKind,
};
use tokio::sync::Notify;

use crate::applier;
use crate::datetime::DateCtx;
use crate::errors::SqlError;
use crate::kept_read::KeptRead;
use crate::replication::txn::{self, Situation};
use crate::replication::{ReplTxn, Replication};
use crate::store::{SessionIdent, Store, WriteGuard};
use clock::Clock;
use copy::CopyIn;
use cursors::Cursors;
use encode::{decode_param, result_columns, tag_text, RowEncoder};
pub use outcome::{Column, Outcome, TxStatus};
use prepared::QueryCache;
pub use prepared::{Params, Prepared, SimpleQuery};
use settings::{show_name, Settings};
use temporary::TempObjects;

type Result<T> = std::result::Result<T, SqlError>;

/// A COMMIT that succeeded, and what remains before it may be acknowledged.
#[must_use]
#[derive(Debug)]
enum Committed {
    // A single site: the group-commit ticket to wait for.
    Local(Option<u64>),
    // In a cluster: see [`txn::Committed`].
    Replicated(txn::Committed),
}

impl Default for Committed {
    fn default() -> Self {
        Committed::Local(None)
    }
}

/// One client's session.
pub struct Session {
    // Declared before `conn`, so that its capture is dropped before the connection closes.
    repl: Option<ReplTxn>,
    // Published catalog version this session's SQLite statements were prepared under.
    seen_catalog: u64,
    store: Arc<Store>,
    ident: SessionIdent,
    conn: Connection,
    status: TxStatus,
    write_guard: Option<WriteGuard>,
    // An SQLite read transaction kept open between autocommit reads (see kept_read.rs).
    kept: KeptRead,
    local_catalog: Option<Arc<Catalog>>,
    temp: TempObjects,
    clock: Clock,
    settings: Settings,
    queries: QueryCache,
    copy: Option<CopyIn>,
    cursors: Cursors,
    // The transaction modes in force at each open SAVEPOINT, innermost last.
    savepoint_modes: Vec<(String, Vec<(String, String)>)>,
    // A warning for the client about the statement that just ran (see `take_warning`).
    warning: Option<(&'static str, String)>,
    // When set, the rows the next statement returns are also kept here as SQLite stores
    // them (a data-modifying WITH step's RETURNING rows, see `modifying_with`).
    raw_rows: Option<Vec<Vec<rusqlite::types::Value>>>,
    // The open block is the implicit one of a multi-statement query string (see
    // `begin_implicit`), not one a BEGIN opened.
    implicit: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        // A dropped connection rolls back its transaction (closing SQLite would too; doing
        // it explicitly releases the write lock only after the rollback).
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.write_guard = None;
        if let Some(t) = self.repl.as_mut() {
            t.end();
        }
        self.store.forget_session(self.ident.pid);
    }
}

impl Session {
    /// Opens a session on the store; `repl` is this site's cluster, if it is in one.
    pub fn new(
        store: Arc<Store>,
        repl: Option<Arc<Replication>>,
        ident: SessionIdent,
    ) -> Result<Session> {
        let conn = store.connect(&ident)?;
        let settings = Settings::new();
        if let Some(r) = &repl {
            settings.insert("mdbc.site".into(), r.site().to_string());
            r.register_functions(&conn)?;
        }
        settings.register(&conn)?;
        crate::datetime::sql::register(&conn, settings.zone().clone())?;
        crate::store::register_session_coerce(&conn, settings.zone().clone())?;
        let clock = Clock::new(settings.zone().clone());
        clock.register(&conn, settings.zone().clone())?;
        Ok(Session {
            repl: repl.map(|r| ReplTxn::new(r, store.clone())),
            seen_catalog: 0,
            store,
            ident,
            conn,
            status: TxStatus::Idle,
            write_guard: None,
            kept: KeptRead::default(),
            local_catalog: None,
            temp: TempObjects::default(),
            clock,
            settings,
            queries: QueryCache::default(),
            copy: None,
            cursors: Cursors::default(),
            savepoint_modes: Vec::new(),
            warning: None,
            raw_rows: None,
            implicit: false,
        })
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
        } else if n == "timezone" {
            // An unknown zone keeps UTC, as the ParameterStatus sent at startup says.
            if let Err(e) = self.settings.set(&n, &SetValue::Value(value.to_string())) {
                tracing::debug!(error = %e, "startup TimeZone ignored");
            }
        }
    }

    /// Parses a simple-protocol query string. A statement with inlined values is planned
    /// once per shape and run with its values bound (sql_capture::literals); anything else
    /// reuses earlier parses of the same text.
    pub fn parse_simple(&mut self, sql: &str) -> Result<SimpleQuery> {
        let catalog = self.catalog();
        self.queries.parse_simple(sql, &catalog)
    }

    /// The schema this session's statements are planned against: the shared one with the
    /// session's temporary tables.
    fn catalog(&self) -> Arc<Catalog> {
        self.temp.view(self.shared_catalog())
    }

    /// The shared schema alone (what replication applies to and publishes).
    fn shared_catalog(&self) -> Arc<Catalog> {
        match &self.local_catalog {
            Some(c) => c.clone(),
            None => self.store.catalog(),
        }
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
            Some(Command::ModifyingWith(w)) => self.with_param_types(w),
            Some(Command::CurrentOf(c)) => {
                let parsed = Parsed::Statement(Box::new(c.at_row(0)));
                match sql_capture::plan(&parsed, &self.catalog())? {
                    Command::Sql(plan) => plan.param_types.clone(),
                    _ => Vec::new(),
                }
            }
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

    /// A data-modifying WITH's parameter types, from the steps that can be planned before
    /// any has run (those that read no other step's table).
    fn with_param_types(&self, w: &sql_capture::ModifyingWith) -> Vec<Option<PgType>> {
        let catalog = self.catalog();
        let mut types: Vec<Option<PgType>> = Vec::new();
        let sqls = w
            .steps
            .iter()
            .map(|s| &s.sql)
            .chain(std::iter::once(&w.main));
        for sql in sqls {
            let Ok(Some(parsed)) = sql_capture::parse(sql).map(|mut v| v.pop()) else {
                continue;
            };
            if let Ok(Command::Sql(plan)) = sql_capture::plan(&parsed, &catalog) {
                for (i, t) in plan.param_types.iter().enumerate() {
                    if types.len() <= i {
                        types.resize(i + 1, None);
                    }
                    if types[i].is_none() {
                        types[i] = *t;
                    }
                }
            }
        }
        types
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
            // Its result columns exist only once its steps have run.
            Command::ModifyingWith(w) if w.returns_rows => {
                Err(SqlError::Capture(sql_capture::Error::Unsupported(
                    "Describe of a statement with a data-modifying WITH that returns rows \
                     (send it with the simple query protocol)"
                        .into(),
                )))
            }
            Command::Show(name) if name == "all" => Ok(Some(Arc::new(show_all_columns()))),
            Command::Explain(e) => Ok(Some(Arc::new(vec![explain_column(e.json)]))),
            // Its RETURNING columns: those of the statement at any row.
            Command::CurrentOf(c) => {
                let parsed = Parsed::Statement(Box::new(c.at_row(0)));
                let catalog = self.catalog();
                match sql_capture::plan(&parsed, &catalog)? {
                    Command::Sql(plan) if plan.returns_rows => match plan.sql.last() {
                        Some(sql) => {
                            let stmt = self.conn.prepare_cached(sql)?;
                            Ok(Some(Arc::new(result_columns(&stmt, &plan, &catalog))))
                        }
                        None => Ok(None),
                    },
                    _ => Ok(None),
                }
            }
            Command::Cursor(CursorStatement::Fetch {
                name,
                move_only: false,
                ..
            }) => Ok(Some(self.cursors.columns(name)?)),
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
        self.clock.statement_starts(self.status == TxStatus::Idle);
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

    /// Opens the implicit transaction block PostgreSQL runs a multi-statement query string
    /// in (when no block is open): its statements commit together at the end of the string
    /// or not at all, unless the string itself commits, begins or rolls back. The wire
    /// calls this before each statement of such a string, and [`Session::end_implicit`]
    /// after the last (or the first that fails).
    pub async fn begin_implicit(&mut self) -> Result<()> {
        if self.status != TxStatus::Idle {
            return Ok(());
        }
        // A snapshot kept open for reads between statements ends first, as a BEGIN ends it.
        if self.kept.epoch().is_some() {
            self.kept.end(&self.conn);
        }
        self.conn.execute_batch("BEGIN")?;
        self.status = TxStatus::InBlock;
        self.settings.reset_transaction_modes();
        if let Some(t) = self.repl.as_mut() {
            t.begin();
        }
        self.implicit = true;
        Ok(())
    }

    /// Ends the implicit block of a query string: commits it, or rolls it back after an
    /// error. A block the string opened with BEGIN stays open.
    pub async fn end_implicit(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.implicit) {
            return Ok(());
        }
        match self.status {
            TxStatus::InBlock => {
                let committed = self.end_transaction(true).await?;
                self.acknowledge(committed).await;
            }
            TxStatus::Failed => {
                let _ = self.end_transaction(false).await?;
            }
            TxStatus::Idle => {}
        }
        Ok(())
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
        let outcome = self.run_command(cmd, p, params, result_binary).await?;
        // A locking cursor's rows were read at DECLARE; after another statement changed
        // rows, PostgreSQL's would skip the rows changed since (cursors::Cursors::written).
        let changes_rows = match cmd {
            Command::Sql(plan) => plan.kind != StmtKind::Read && plan.tag != CommandTag::Select,
            Command::Copy(_) | Command::ModifyingWith(_) | Command::CreateTableAs(_) => true,
            _ => false,
        };
        if changes_rows {
            self.cursors.written();
        }
        Ok(outcome)
    }

    async fn run_command(
        &mut self,
        cmd: &Command,
        p: &Prepared,
        params: &Params<'_>,
        result_binary: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Outcome> {
        if self.status == TxStatus::Failed
            && !matches!(
                cmd,
                Command::Rollback
                    | Command::Commit
                    | Command::RollbackTo(_)
                    | Command::Chain { .. }
            )
        {
            return Err(SqlError::InFailedTransaction);
        }
        if self.implicit {
            // Inside a query string's implicit block: BEGIN makes it a real block, COMMIT
            // and ROLLBACK end it, and what needs a real block is refused as PostgreSQL
            // refuses it outside one.
            match cmd {
                Command::Begin => {
                    self.implicit = false;
                    return Ok(Outcome::done("BEGIN"));
                }
                Command::Commit | Command::Rollback => {
                    // Ends the implicit block, with PostgreSQL's warning that no block
                    // (of the user's) was open.
                    self.implicit = false;
                    let outcome = if matches!(cmd, Command::Commit) {
                        self.commit().await?
                    } else {
                        let _ = self.end_transaction(false).await?;
                        Outcome::done("ROLLBACK")
                    };
                    return Ok(match outcome {
                        Outcome::Done { tag, .. } => Outcome::Done {
                            tag,
                            notice: Some(("25P01", "there is no transaction in progress".into())),
                        },
                        other => other,
                    });
                }
                Command::Chain { commit } => {
                    return Err(SqlError::NoTransaction(if *commit {
                        "COMMIT AND CHAIN"
                    } else {
                        "ROLLBACK AND CHAIN"
                    }))
                }
                Command::Savepoint(_) => return Err(SqlError::NoTransaction("SAVEPOINT")),
                Command::Release(_) => return Err(SqlError::NoTransaction("RELEASE SAVEPOINT")),
                Command::RollbackTo(_) => {
                    return Err(SqlError::NoTransaction("ROLLBACK TO SAVEPOINT"))
                }
                _ => {}
            }
        }
        if let Some(epoch) = self.kept.epoch() {
            let read = matches!(cmd, Command::Sql(p) if p.kind == StmtKind::Read);
            if !read || epoch != self.store.write_epoch() {
                self.kept.end(&self.conn);
            }
        }
        // START TRANSACTION answers with its own tag.
        if matches!(
            cmd,
            Command::Begin | Command::TransactionModes { begin: true, .. }
        ) && starts_transaction(p)
        {
            let outcome = Box::pin(self.dispatch(cmd, p, params, result_binary)).await?;
            return Ok(match outcome {
                Outcome::Done { tag, notice } if tag == "BEGIN" => Outcome::Done {
                    tag: "START TRANSACTION".into(),
                    notice,
                },
                other => other,
            });
        }
        self.dispatch(cmd, p, params, result_binary).await
    }

    /// Runs a command once the transaction state allows it.
    async fn dispatch(
        &mut self,
        cmd: &Command,
        p: &Prepared,
        params: &Params<'_>,
        result_binary: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Outcome> {
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
                self.settings.reset_transaction_modes();
                if let Some(t) = self.repl.as_mut() {
                    t.begin();
                }
                Ok(Outcome::done("BEGIN"))
            }
            Command::TransactionModes {
                begin,
                session,
                settings,
            } => self.transaction_modes(*begin, *session, settings).await,
            Command::Chain { commit } => {
                if self.status == TxStatus::Idle {
                    return Err(SqlError::NoTransaction(if *commit {
                        "COMMIT AND CHAIN"
                    } else {
                        "ROLLBACK AND CHAIN"
                    }));
                }
                // The new block keeps the ended one's modes.
                let modes = self.current_modes();
                let ended = if *commit && self.status == TxStatus::InBlock {
                    self.commit().await
                } else {
                    let _ = self.end_transaction(false).await?;
                    Ok(Outcome::done("ROLLBACK"))
                };
                let begun = Box::pin(self.transaction_modes(true, false, &modes)).await;
                let outcome = ended?;
                begun?;
                Ok(outcome)
            }
            Command::Commit => self.commit().await,
            Command::Rollback => {
                if self.status == TxStatus::Idle {
                    return Ok(Outcome::Done {
                        tag: "ROLLBACK".into(),
                        notice: Some(("25P01", "there is no transaction in progress".into())),
                    });
                }
                let _ = self.end_transaction(false).await?;
                Ok(Outcome::done("ROLLBACK"))
            }
            Command::Savepoint(name) => {
                let outcome = self.savepoint_command("SAVEPOINT", name, "SAVEPOINT")?;
                let modes = self.current_modes();
                self.savepoint_modes
                    .push((name.to_ascii_lowercase(), modes));
                Ok(outcome)
            }
            Command::Release(name) => {
                let outcome = self.savepoint_command("RELEASE SAVEPOINT", name, "RELEASE")?;
                self.restore_modes(name, true);
                Ok(outcome)
            }
            Command::RollbackTo(name) => {
                self.restore_modes(name, false);
                let outcome = self.savepoint_command("ROLLBACK TO SAVEPOINT", name, "ROLLBACK")?;
                self.status = TxStatus::InBlock;
                self.temp.reconcile(&self.conn)?;
                if self.local_catalog.is_some() {
                    let cat = self.store.load_catalog(&self.conn)?;
                    self.local_catalog = Some(Arc::new(cat));
                }
                Ok(outcome)
            }
            Command::Reset(name) => {
                self.settings.set(name, &SetValue::Default)?;
                Ok(Outcome::done("RESET"))
            }
            Command::Set { name, value } => {
                self.settings.set(name, value)?;
                Ok(Outcome::done("SET"))
            }
            Command::ResetAll => {
                let app = self.settings.get("application_name");
                self.settings.reset();
                if let Some(a) = app {
                    self.settings.insert("application_name".into(), a);
                }
                Ok(Outcome::done("RESET"))
            }
            Command::Show(name) => self.show(name, result_binary),
            Command::Noop(tag @ ("VACUUM" | "DISCARD ALL")) if self.status != TxStatus::Idle => {
                Err(SqlError::coded(
                    "25001",
                    format!("{tag} cannot run inside a transaction block"),
                ))
            }
            Command::Noop(tag) => {
                if *tag == "CHECKPOINT" && self.status == TxStatus::Idle {
                    let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
                }
                Ok(Outcome::done(*tag))
            }
            Command::Copy(plan) => self.start_copy(plan).await,
            Command::CreateTableAs(c) => self.create_table_as(c).await,
            Command::ModifyingWith(w) => self.modifying_with(w, p, params, result_binary).await,
            Command::Cursor(c) => self.cursor_command(c, result_binary).await,
            Command::CurrentOf(c) => {
                let rowid = self.cursors.current_row(&c.cursor, &c.table)?;
                let parsed = Parsed::Statement(Box::new(c.at_row(rowid)));
                let cmd = sql_capture::plan(&parsed, &self.catalog())?;
                // Changing the row the cursor stands on leaves the rows ahead of it as
                // they were: the cursor itself stays usable.
                let stale = self.cursors.is_stale(&c.cursor);
                let outcome = Box::pin(self.run(&cmd, p, params, result_binary)).await;
                if !stale {
                    self.cursors.keep_fresh(&c.cursor);
                }
                outcome
            }
            Command::Explain(e) => self.explain(e, result_binary),
            Command::Sql(plan) => self.run_sql(plan, p, params, result_binary).await,
        }
    }

    /// EXPLAIN: the plan in PostgreSQL's shape, one row per line (one JSON document for
    /// FORMAT JSON), with what each replicated table's read waits for.
    fn explain(
        &mut self,
        e: &sql_capture::ExplainPlan,
        result_binary: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Outcome> {
        let reads: Vec<explain::ReadNote> = match &self.repl {
            Some(r) => e
                .plan
                .reads
                .iter()
                .map(|t| {
                    let p = r.table_policy(t);
                    let wait = match p.level {
                        crate::config::Level::Strong => {
                            "the read first syncs with the domain's lock holder (linearizable)"
                                .to_string()
                        }
                        crate::config::Level::Bounded => format!(
                            "the read waits until this site lags no site by more than {} ms",
                            p.max_staleness_ms.unwrap_or(0)
                        ),
                        crate::config::Level::Local => "this site's own rows, never shipped".into(),
                        _ => "read from this site's copy, no wait".into(),
                    };
                    explain::ReadNote {
                        table: t.clone(),
                        level: p.level.name().to_string(),
                        wait,
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let conn = &self.conn;
        let key_column = |t: &str| -> Option<String> {
            let mut stmt = conn
                .prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0")
                .ok()?;
            let keys: Vec<String> = stmt
                .query_map([t], |r| r.get(0))
                .ok()?
                .filter_map(|r| r.ok())
                .collect();
            match keys.as_slice() {
                [k] => Some(k.clone()),
                _ => None,
            }
        };
        let lines = explain::explain(&self.conn, e, &reads, &key_column)?;
        let col = explain_column(e.json);
        let mut rows = Vec::new();
        for l in lines {
            let v = Value::Text(l);
            let mut row = RowEncoder::new(1);
            row.push(ValueRef::from(&v), &col, result_binary(0), &DateCtx::utc())?;
            rows.push(row.finish());
        }
        Ok(Outcome::Rows {
            columns: Arc::new(vec![col]),
            rows,
            tag: "EXPLAIN".into(),
        })
    }

    /// SAVEPOINT, RELEASE and ROLLBACK TO: only inside a block, as in PostgreSQL (SQLite
    /// would open a transaction for a savepoint outside one).
    fn savepoint_command(&mut self, verb: &'static str, name: &str, tag: &str) -> Result<Outcome> {
        if self.status == TxStatus::Idle {
            return Err(SqlError::NoTransaction(verb));
        }
        self.conn
            .execute_batch(&format!("{verb} {}", quote_ident(name)))?;
        Ok(Outcome::done(tag))
    }

    /// SHOW: one row with the setting's value.
    fn show(&self, name: &str, result_binary: &(dyn Fn(usize) -> bool + Sync)) -> Result<Outcome> {
        if name == "all" {
            // SHOW ALL: every setting as pg_settings lists it (name, setting, description).
            let columns = show_all_columns();
            let mut rows = Vec::new();
            for (key, value) in self.settings.all() {
                let mut row = RowEncoder::new(3);
                for (i, v) in [
                    Value::Text(key),
                    Value::Text(value),
                    Value::Text(String::new()),
                ]
                .iter()
                .enumerate()
                {
                    row.push(
                        ValueRef::from(v),
                        &columns[i],
                        result_binary(i),
                        &DateCtx::utc(),
                    )?;
                }
                rows.push(row.finish());
            }
            return Ok(Outcome::Rows {
                columns: Arc::new(columns),
                rows,
                tag: "SHOW".into(),
            });
        }
        let (col, value) = self.settings.show(name)?;
        let v = Value::Text(value);
        let mut row = RowEncoder::new(1);
        row.push(ValueRef::from(&v), &col, result_binary(0), &DateCtx::utc())?;
        Ok(Outcome::Rows {
            columns: Arc::new(vec![col]),
            rows: vec![row.finish()],
            tag: "SHOW".into(),
        })
    }

    /// Takes the store's write lock for the rest of the transaction (and, in a cluster,
    /// starts capturing what it writes).
    async fn ensure_write_lock(&mut self) -> Result<()> {
        if self.write_guard.is_none() {
            self.write_guard = Some(self.store.lock_writer().await);
        }
        if let Some(t) = self.repl.as_mut() {
            // SAFETY: `repl` is declared before `conn` in Session and ends its capture at
            // every transaction end, so the capture never outlives the connection.
            unsafe { t.start_writes(&self.conn) }?;
        }
        Ok(())
    }

    /// Drops the write lock at the end of a transaction, and what replication held for it.
    fn release_writer(&mut self) {
        self.write_guard = None;
        if let Some(t) = self.repl.as_mut() {
            t.end();
        }
    }

    /// Ends a kept read transaction that a write has made stale; returns whether the
    /// session now holds no snapshot to watch.
    pub fn end_stale_snapshot(&mut self) -> bool {
        match self.kept.epoch() {
            Some(e) if e == self.store.write_epoch() => false,
            Some(_) => {
                self.kept.end(&self.conn);
                true
            }
            None => true,
        }
    }

    /// Signalled each time the session keeps a read transaction open.
    pub fn snapshot_signal(&self) -> Arc<Notify> {
        self.kept.signal()
    }

    /// Commits the open SQLite transaction — in a cluster through replication's commit
    /// door (logs first, then SQLite; see replication/txn.rs); under group commit the
    /// COMMIT is bracketed by a ticket to wait on once the write lock is released (see
    /// durability.rs). The caller holds the write lock, and rolls back on an error.
    async fn commit_writes(&mut self) -> Result<Committed> {
        let version = self.shared_catalog().version;
        match self.repl.as_mut() {
            Some(t) => Ok(Committed::Replicated(
                t.commit(&mut self.conn, version).await?,
            )),
            None => {
                let (r, ticket) = self.store.commit(&self.conn);
                r?;
                Ok(Committed::Local(ticket))
            }
        }
    }

    /// Acknowledges nothing before the commit is on disk and, in a cluster, its entry is
    /// in this site's log in MUSIC (held by `sync_replicas` other sites when its tables
    /// ask; if they do not confirm in time the client gets a warning with it).
    async fn acknowledge(&mut self, c: Committed) {
        match c {
            Committed::Local(ticket) => self.store.wait_durable(ticket).await,
            Committed::Replicated(c) => {
                if let Some(t) = self.repl.as_mut() {
                    if let Some(w) = t.acknowledge(c).await {
                        self.warning = Some(("01000", w));
                    }
                }
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
                let _ = self.end_transaction(false).await?;
                Ok(Outcome::done("ROLLBACK"))
            }
            TxStatus::InBlock => {
                let committed = self.end_transaction(true).await?;
                self.acknowledge(committed).await;
                Ok(Outcome::done("COMMIT"))
            }
        }
    }

    /// The current transaction's modes (kept at each SAVEPOINT).
    fn current_modes(&self) -> Vec<(String, String)> {
        [
            "transaction_isolation",
            "transaction_read_only",
            "transaction_deferrable",
        ]
        .iter()
        .filter_map(|k| self.settings.get(k).map(|v| (k.to_string(), v)))
        .collect()
    }

    /// A subtransaction ends (RELEASE, or ROLLBACK TO, which keeps the savepoint): the
    /// modes set inside it end with it, as PostgreSQL's do.
    fn restore_modes(&mut self, name: &str, release: bool) {
        let name = name.to_ascii_lowercase();
        let Some(at) = self.savepoint_modes.iter().rposition(|(n, _)| *n == name) else {
            return;
        };
        for (k, v) in self.savepoint_modes[at].1.clone() {
            self.settings.insert(k, v);
        }
        self.savepoint_modes
            .truncate(if release { at } else { at + 1 });
    }

    /// Starts a transaction block as a client's BEGIN does (for statements that need one).
    async fn begin_block(&mut self) -> Result<Outcome> {
        let p = Prepared::parse("BEGIN", Vec::new())?;
        Box::pin(self.run(&Command::Begin, &p, &Params::none(), &|_| false)).await
    }

    /// `BEGIN ISOLATION LEVEL …`, `SET TRANSACTION …`, `SET SESSION CHARACTERISTICS AS
    /// TRANSACTION …`: the modes are kept as settings (shown by SHOW; READ ONLY enforced
    /// in `run_sql`).
    async fn transaction_modes(
        &mut self,
        begin: bool,
        session: bool,
        settings: &[(String, String)],
    ) -> Result<Outcome> {
        if begin {
            self.begin_block().await?;
        } else if !session && self.status == TxStatus::Idle {
            return Ok(Outcome::Done {
                tag: "SET".into(),
                notice: Some((
                    "25P01",
                    "SET TRANSACTION can only be used in transaction blocks".into(),
                )),
            });
        }
        for (key, value) in settings {
            let key = if session {
                format!("default_{key}")
            } else {
                key.clone()
            };
            self.settings.set(&key, &SetValue::Value(value.clone()))?;
        }
        if session && self.status == TxStatus::Idle {
            self.settings.reset_transaction_modes();
        }
        Ok(Outcome::done(if begin { "BEGIN" } else { "SET" }))
    }

    /// DECLARE (the query's rows computed now and kept), FETCH/MOVE, CLOSE.
    async fn cursor_command(
        &mut self,
        c: &CursorStatement,
        result_binary: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Outcome> {
        match c {
            CursorStatement::Declare {
                name,
                query,
                scroll,
                hold,
            } => {
                if !hold && self.status == TxStatus::Idle {
                    return Err(SqlError::NoTransaction("DECLARE CURSOR"));
                }
                // A simple scan of one table keeps each row's rowid too, for WHERE
                // CURRENT OF (sql_capture::current_of).
                let mut q = Prepared::parse(query, Vec::new())?;
                let scan = match &q.parsed {
                    Some(Parsed::Statement(s)) => match s.as_ref() {
                        sqlparser::ast::Statement::Query(query) => {
                            sql_capture::current_of::with_row_ids(query)
                        }
                        _ => None,
                    },
                    _ => None,
                }
                .filter(|(table, _)| self.catalog().table(table).is_some());
                if let Some((_, with_ids)) = &scan {
                    q = Prepared::new(
                        Some(Parsed::Statement(Box::new(
                            sqlparser::ast::Statement::Query(Box::new(with_ids.clone())),
                        ))),
                        Vec::new(),
                    );
                }
                let cmd = match self.plan(&q)? {
                    Some(cmd) => cmd,
                    None => return Err(SqlError::coded("42601", "syntax error at end of input")),
                };
                // A SELECT … FOR UPDATE plans as a write (it takes the write lock).
                let Command::Sql(plan) = cmd.as_ref() else {
                    return Err(SqlError::coded(
                        "42601",
                        "DECLARE CURSOR needs a SELECT or VALUES query",
                    ));
                };
                if !plan.returns_rows
                    || plan.tag != sql_capture::CommandTag::Select
                    || plan.kind == StmtKind::Ddl
                {
                    return Err(SqlError::coded(
                        "42601",
                        "DECLARE CURSOR needs a SELECT or VALUES query",
                    ));
                }
                let locking = plan.kind == StmtKind::Write;
                if locking && *scroll == Some(true) {
                    return Err(SqlError::coded(
                        "0A000",
                        "DECLARE SCROLL CURSOR ... FOR UPDATE/SHARE is not supported",
                    ));
                }
                // A locking cursor only moves forward, as in PostgreSQL.
                let scroll = if locking { Some(false) } else { *scroll };
                match Box::pin(self.run(&cmd, &q, &Params::none(), &|_| false)).await? {
                    Outcome::Rows { columns, rows, .. } => {
                        self.cursors.declare(
                            name,
                            cursors::Declared {
                                columns,
                                rows,
                                scroll,
                                hold: *hold,
                                scan: scan.map(|s| s.0),
                                locking,
                            },
                        )?;
                        Ok(Outcome::done("DECLARE CURSOR"))
                    }
                    _ => Err(SqlError::coded(
                        "42601",
                        "DECLARE CURSOR needs a query that returns rows",
                    )),
                }
            }
            CursorStatement::Fetch {
                name,
                motion,
                move_only,
            } => {
                let zone = self.settings.zone().get();
                self.cursors
                    .fetch(name, *motion, *move_only, result_binary, &zone)
            }
            CursorStatement::Close(name) => {
                self.cursors.close(name.as_deref())?;
                Ok(Outcome::done(if name.is_some() {
                    "CLOSE CURSOR"
                } else {
                    "CLOSE CURSOR ALL"
                }))
            }
        }
    }

    /// CREATE TABLE … AS / SELECT … INTO: prepare the query to learn its result columns,
    /// create the table from them, fill it with `INSERT … query`, all in one transaction
    /// (a block of its own when the client has none). Completes as PostgreSQL does,
    /// `SELECT n`.
    async fn create_table_as(&mut self, c: &sql_capture::CreateTableAs) -> Result<Outcome> {
        let columns = {
            let q = Prepared::parse(&c.query, Vec::new())?;
            let Some(cmd) = self.plan(&q)? else {
                return Err(SqlError::Capture(sql_capture::Error::Syntax(
                    "CREATE TABLE … AS needs a query".into(),
                )));
            };
            let Command::Sql(plan) = cmd.as_ref() else {
                return Err(SqlError::Capture(sql_capture::Error::Unsupported(
                    "CREATE TABLE … AS with this query".into(),
                )));
            };
            let (Some(last), true) = (plan.sql.last(), plan.returns_rows) else {
                return Err(SqlError::Capture(sql_capture::Error::Unsupported(
                    "CREATE TABLE … AS with a query that returns no rows".into(),
                )));
            };
            let catalog = self.catalog();
            let stmt = self.conn.prepare(last)?;
            result_columns(&stmt, plan, &catalog)
                .into_iter()
                .map(|col| (col.name, col.ty, col.typmod))
                .collect::<Vec<_>>()
        };
        let create = c.create_sql(&columns)?;
        let own_block = self.status == TxStatus::Idle;
        if own_block {
            self.begin_block().await?;
        }
        let filled = self.create_and_fill(&create, c).await;
        self.end_own_block(own_block, filled).await
    }

    /// Ends the block a statement of several steps opened for itself (`own_block`):
    /// COMMIT after it succeeded, ROLLBACK after it failed. Inside the client's block the
    /// outcome is left as it is.
    async fn end_own_block(
        &mut self,
        own_block: bool,
        outcome: Result<Outcome>,
    ) -> Result<Outcome> {
        if !own_block {
            return outcome;
        }
        match outcome {
            Ok(outcome) => {
                Box::pin(self.commit()).await?;
                Ok(outcome)
            }
            Err(e) => {
                let _ = Box::pin(self.end_transaction(false)).await;
                Err(e)
            }
        }
    }

    /// The two statements of [`Self::create_table_as`], run as if the client sent them.
    async fn create_and_fill(
        &mut self,
        create: &str,
        c: &sql_capture::CreateTableAs,
    ) -> Result<Outcome> {
        let mut rows = 0;
        let steps = if c.with_data {
            vec![create.to_string(), c.insert_sql()]
        } else {
            vec![create.to_string()]
        };
        for (i, sql) in steps.iter().enumerate() {
            let p = Prepared::parse(sql, Vec::new())?;
            let Some(cmd) = self.plan(&p)? else { continue };
            let outcome = Box::pin(self.run(&cmd, &p, &Params::none(), &|_| false)).await?;
            if let (1, Outcome::Done { tag, .. }) = (i, &outcome) {
                rows = tag
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        Ok(Outcome::done(if c.with_data {
            format!("SELECT {rows}")
        } else {
            "CREATE TABLE AS".to_string()
        }))
    }

    /// A statement with a data-modifying WITH, as steps in one transaction (a block of its
    /// own when the client has none): each CTE into a temporary table, then the main
    /// statement reading them; the tables are dropped at the end (see
    /// sql_capture's `modifying_with` for what is refused and why).
    async fn modifying_with(
        &mut self,
        w: &sql_capture::ModifyingWith,
        p: &Prepared,
        params: &Params<'_>,
        result_binary: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Outcome> {
        let own_block = self.status == TxStatus::Idle;
        if own_block {
            self.begin_block().await?;
        }
        let mut created = Vec::new();
        let mut ran = self
            .with_steps(w, p, params, result_binary, &mut created)
            .await;
        self.raw_rows = None;
        if ran.is_ok() {
            for temp in &created {
                let drop = format!("DROP TABLE {}", quote_ident(temp));
                if let Err(e) = self.run_internal(&drop, &[], &Params::none()).await {
                    ran = Err(e);
                    break;
                }
            }
        }
        self.end_own_block(own_block, ran).await
    }

    async fn with_steps(
        &mut self,
        w: &sql_capture::ModifyingWith,
        p: &Prepared,
        params: &Params<'_>,
        result_binary: &(dyn Fn(usize) -> bool + Sync),
        created: &mut Vec<String>,
    ) -> Result<Outcome> {
        // The client's parameter values, for whichever steps use them.
        let values = Params {
            values: params.values,
            binary: params.binary,
            literals: &[],
            pinned: None,
        };
        for step in &w.steps {
            if !step.modifies {
                let c = sql_capture::CreateTableAs {
                    table: step.temp.clone(),
                    temporary: true,
                    column_names: Vec::new(),
                    query: step.sql.clone(),
                    with_data: true,
                };
                Box::pin(self.create_table_as(&c)).await?;
                created.push(step.temp.clone());
                continue;
            }
            if !step.returning {
                self.run_internal(&step.sql, &p.client_types, &values)
                    .await?;
                continue;
            }
            self.raw_rows = Some(Vec::new());
            let outcome = self.run_internal(&step.sql, &p.client_types, &values).await;
            let rows = self.raw_rows.take().unwrap_or_default();
            let Outcome::Rows { columns, .. } = outcome? else {
                return Err(SqlError::Capture(sql_capture::Error::Unsupported(
                    "a data-modifying WITH query of this kind".into(),
                )));
            };
            let table = sql_capture::CreateTableAs {
                table: step.temp.clone(),
                temporary: true,
                column_names: step.column_names.clone(),
                query: String::new(),
                with_data: false,
            };
            let columns: Vec<_> = columns
                .iter()
                .map(|c| (c.name.clone(), c.ty, c.typmod))
                .collect();
            let create = table.create_sql(&columns)?;
            self.run_internal(&create, &[], &Params::none()).await?;
            created.push(step.temp.clone());
            if !columns.is_empty() {
                let marks = vec!["?"; columns.len()].join(", ");
                let mut insert = self.conn.prepare(&format!(
                    "INSERT INTO temp.{} VALUES ({marks})",
                    quote_ident(&step.temp)
                ))?;
                for row in &rows {
                    insert.execute(rusqlite::params_from_iter(row.iter()))?;
                }
            }
        }
        let main = Prepared::parse(&w.main, p.client_types.clone())?;
        let Some(cmd) = self.plan(&main)? else {
            return Ok(Outcome::done(""));
        };
        Box::pin(self.run(&cmd, &main, &values, result_binary)).await
    }

    /// Plans and runs one statement of the session's own making, as if the client sent it.
    async fn run_internal(
        &mut self,
        sql: &str,
        client_types: &[u32],
        params: &Params<'_>,
    ) -> Result<Outcome> {
        let p = Prepared::parse(sql, client_types.to_vec())?;
        let Some(cmd) = self.plan(&p)? else {
            return Ok(Outcome::done(""));
        };
        Box::pin(self.run(&cmd, &p, params, &|_| false)).await
    }

    /// Ends the current block: COMMIT (publishing its DDL) or ROLLBACK. A failed COMMIT
    /// rolls back and reports why. Returns what to wait for before acknowledging.
    async fn end_transaction(&mut self, commit: bool) -> Result<Committed> {
        let result = if commit && self.write_guard.is_some() {
            match self.commit_writes().await {
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
        let rolled_back = !self.conn.is_autocommit();
        if rolled_back {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        if rolled_back || result.is_err() || !commit {
            self.temp.reconcile(&self.conn)?;
        }
        self.local_catalog = None;
        self.status = TxStatus::Idle;
        self.settings.reset_transaction_modes();
        self.savepoint_modes.clear();
        self.release_writer();
        self.cursors
            .transaction_ended(commit && result.is_ok() && !rolled_back);
        result
    }

    /// How the session stands for replication's first door.
    fn situation(&self) -> Situation {
        Situation {
            autocommit: self.status == TxStatus::Idle,
            in_block: self.status == TxStatus::InBlock,
            snapshot_starts: match self.status {
                TxStatus::Idle => true,
                TxStatus::InBlock => self.block_snapshot_unstarted(),
                TxStatus::Failed => false,
            },
            read_local: self.settings.read_local(),
            allow_stale_strong: self.settings.allow_stale_strong(),
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

    async fn run_sql(
        &mut self,
        plan: &SqlPlan,
        p: &Prepared,
        params: &Params<'_>,
        result_binary: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Outcome> {
        if plan.kind != StmtKind::Read && self.settings.read_only(self.status != TxStatus::Idle) {
            // PostgreSQL lets a read-only transaction write only its temporary tables (a
            // write's `writes` leaves them out), and change no schema, temporary or not.
            if plan.kind == StmtKind::Ddl || plan.temporary.is_some() || !plan.writes.is_empty() {
                let what = match &plan.tag {
                    sql_capture::CommandTag::Insert => "INSERT",
                    sql_capture::CommandTag::Update => "UPDATE",
                    sql_capture::CommandTag::Delete => "DELETE",
                    sql_capture::CommandTag::Select => "SELECT",
                    sql_capture::CommandTag::Fixed(t) => t,
                };
                return Err(SqlError::coded(
                    "25006",
                    format!("cannot execute {what} in a read-only transaction"),
                ));
            }
        }
        if let Some(effect) = &plan.temporary {
            // Not inside the kept read transaction of autocommit reads: its end would
            // roll the new table back.
            if self.status == TxStatus::Idle {
                self.kept.end(&self.conn);
            }
            return self.temp.run(&self.conn, plan, effect);
        }
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
        if self.status != TxStatus::Failed && self.repl.is_some() {
            let at = self.situation();
            if let Some(t) = self.repl.as_mut() {
                t.before_statement(&mut self.conn, &mut self.kept, plan, at)
                    .await?;
            }
        }
        let writes = plan.kind != StmtKind::Read;
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
                || self.repl.is_some()
                || plan.sql.len() > 1
                || !plan.catalog.is_empty()
                || plan.rebuild.is_some());
        let keep_snapshot = autocommit && !writes;
        if keep_snapshot && self.kept.epoch().is_none() {
            // The epoch is read before the snapshot exists, so the snapshot is at least
            // as new as the epoch says (see store.rs).
            let epoch = self.store.write_epoch();
            self.kept.begin(&self.conn, epoch)?;
        }
        let fk_toggle = autocommit && plan.rebuild.is_some();
        if fk_toggle {
            self.conn.execute_batch("PRAGMA foreign_keys = OFF")?;
        }
        if own_txn {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        let mut result = Ok(Outcome::done(""));
        if self.repl.is_some() {
            let catalog = self.shared_catalog();
            if let Some(t) = self.repl.as_mut() {
                match t
                    .catch_up(&mut self.conn, &catalog, plan.kind == StmtKind::Ddl)
                    .await
                {
                    Ok(Some(cat)) => self.local_catalog = Some(cat),
                    Ok(None) => {}
                    Err(e) => result = Err(e),
                }
            }
        }
        // SQLite runs inline: each connection has its own thread (see server.rs), so a long
        // statement blocks only its own client.
        if result.is_ok() {
            result = self.run_statements(plan, p, params, result_binary);
        }
        if keep_snapshot && result.is_err() {
            self.kept.end(&self.conn);
        }
        if result.is_ok() && plan.kind == StmtKind::Ddl {
            let capture = self.repl.as_ref().and_then(|t| t.capture());
            match applier::after_ddl(&self.store, &self.conn, plan, capture) {
                Ok(cat) => {
                    self.local_catalog = Some(Arc::new(cat));
                    if let (Some(t), Some(text)) = (
                        self.repl.as_mut(),
                        p.parsed.as_ref().and_then(Parsed::statement_text),
                    ) {
                        t.note_ddl(text);
                    }
                }
                Err(e) => result = Err(e),
            }
        }
        let mut committed = None;
        if own_txn {
            let end = if result.is_ok() {
                self.commit_writes().await.map(|c| committed = Some(c))
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
        let zone = self.settings.zone().get();
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
                let v = decode_param(params, i, param_types.get(i).copied().flatten(), &zone)?;
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
                    enc.push(row.get_ref(i)?, col, binary[i], &zone)?;
                }
                rows_out.push(enc.finish());
                if let Some(raw) = self.raw_rows.as_mut() {
                    let values = (0..columns.len())
                        .map(|i| row.get::<_, rusqlite::types::Value>(i))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    raw.push(values);
                }
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

    /// COPY: out at once; in, once the table's domain (if strong) and the write lock are
    /// this session's.
    async fn start_copy(&mut self, plan: &CopyPlan) -> Result<Outcome> {
        let catalog = self.catalog();
        if !plan.from_stdin {
            let out = copy::copy_out(&self.conn, plan, &catalog, &self.settings.zone().get());
            if out.is_ok() {
                Self::wait_visible_durable(self.store.clone()).await;
            }
            return out;
        }
        let own_transaction = self.status == TxStatus::Idle;
        let copy_in = CopyIn::start(plan, &catalog, own_transaction, self.settings.zone().get())?;
        if let Some(t) = self.repl.as_mut() {
            t.before_copy_in(&plan.table).await?;
        }
        self.ensure_write_lock().await?;
        if own_transaction {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        if let Some(t) = self.repl.as_mut() {
            // A strong table's rows go on top of what its domain's log holds.
            let shared = match &self.local_catalog {
                Some(c) => c.clone(),
                None => self.store.catalog(),
            };
            if let Err(e) = t.catch_up(&mut self.conn, &shared, false).await {
                return match self.finish_copy(own_transaction, Err(e)).await {
                    (Err(e), _) => Err(e),
                    (Ok(_), _) => Ok(Outcome::done("")),
                };
            }
        }
        let (columns, csv) = copy_in.response();
        self.copy = Some(copy_in);
        Ok(Outcome::CopyIn { columns, csv })
    }

    /// Feeds COPY data. Errors are kept until CopyDone, as the client is still sending.
    pub fn copy_data(&mut self, data: &[u8]) {
        if let Some(c) = self.copy.as_mut() {
            c.feed(&self.conn, data);
        }
    }

    /// Finishes COPY FROM STDIN: commits (outside a block) and reports the row count.
    pub async fn copy_done(&mut self) -> Result<String> {
        let Some(mut c) = self.copy.take() else {
            return Err(SqlError::Protocol(
                "CopyDone without COPY in progress".into(),
            ));
        };
        let result = c.finish(&self.conn);
        let (result, committed) = self.finish_copy(c.own_transaction, result).await;
        if result.is_ok() {
            self.acknowledge(committed).await;
        }
        result
    }

    /// The client aborted COPY.
    pub async fn copy_fail(&mut self, message: &str) -> SqlError {
        let own = self.copy.take().map(|c| c.own_transaction).unwrap_or(false);
        let err = SqlError::coded("57014", format!("COPY from stdin failed: {message}"));
        match self.finish_copy(own, Err(err)).await {
            (Err(e), _c) => e,
            (Ok(_), _) => SqlError::coded("57014", "COPY from stdin failed"),
        }
    }

    /// Ends a COPY FROM STDIN that was a transaction of its own (committing it when it
    /// went well); inside a block, an error fails the block.
    async fn finish_copy(
        &mut self,
        own_transaction: bool,
        result: Result<String>,
    ) -> (Result<String>, Committed) {
        let mut committed = Committed::default();
        let result = if own_transaction {
            let r = match result {
                Ok(tag) => self.commit_writes().await.map(|c| {
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

/// The columns of SHOW ALL.
fn show_all_columns() -> Vec<Column> {
    ["name", "setting", "description"]
        .into_iter()
        .map(|n| Column {
            name: n.into(),
            ty: PgType::Text,
            typmod: -1,
        })
        .collect()
}

/// EXPLAIN's one column.
fn explain_column(json: bool) -> Column {
    Column {
        name: "QUERY PLAN".into(),
        ty: if json { PgType::Json } else { PgType::Text },
        typmod: -1,
    }
}

/// Whether the statement is spelled `START TRANSACTION` (rather than `BEGIN`).
fn starts_transaction(p: &Prepared) -> bool {
    let start = |s: &sqlparser::ast::Statement| {
        matches!(
            s,
            sqlparser::ast::Statement::StartTransaction { begin: false, .. }
        )
    };
    match &p.parsed {
        Some(sql_capture::Parsed::Statement(s)) | Some(sql_capture::Parsed::Deferrable(s, _)) => {
            start(s)
        }
        _ => false,
    }
}
