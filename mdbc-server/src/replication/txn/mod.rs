//! The replication side of one client transaction: everything a transaction needs from
//! the cluster, and the order it needs it in. A session calls three doors and nothing
//! else of replication:
//!
//! 1. **Before a statement** ([`ReplTxn::before_statement`], outside SQLite's write
//!    transaction; then [`ReplTxn::catch_up`] inside it): a read of strong tables syncs to
//!    the head a quorum holds, a bounded read waits for its bound, DDL takes the schema
//!    lock, a strong write takes its domains, and a strong write after a read that may be
//!    stale here is refused. Inside the transaction, what this site lacks of the schema log
//!    (before DDL) and of the domains it now owns is applied first, so the statement runs
//!    on the newest state.
//! 2. **Commit** ([`ReplTxn::commit`], inside the transaction, under the store's write
//!    lock): the schema change and the strong changes are appended to their logs (a
//!    quorum holds them before SQLite commits), the rest is sealed into this site's log in
//!    the same SQLite transaction, then SQLite commits and the site log's next position
//!    moves — while the write lock still keeps other writers out.
//! 3. **After commit** ([`ReplTxn::acknowledge`], the write lock released): the commit is
//!    made durable and its entry shipped; only then may the client hear of it.
//!
//! [`ReplTxn::end`] closes the transaction (committed or not): the capture stops, the
//! schema lock goes, and the domains are handed over if another site waits for them.

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sql_capture::capture::{Capture, CaptureError, Shapes};
use sql_capture::changes::TableChanges;
use sql_capture::{Catalog, SqlPlan, StmtKind};

use super::cluster::Replication;
use super::domains;
use super::error::ReplError;
use super::keys::{applied_pos, domain_log, set_applied, DomainLock, SCHEMA_LOG};
use super::locked_log::read_entry;
use super::ownership::Owned;
use super::site_log::Sealed;
use crate::applier::{self, Paused};
use crate::config::Level;
use crate::errors::SqlError;
use crate::kept_read::KeptRead;
use crate::store::Store;

/// How the session stands when a statement arrives.
#[derive(Debug, Clone, Copy)]
pub struct Situation {
    /// No transaction block is open: the statement is a transaction of its own.
    pub autocommit: bool,
    /// A transaction block is open and has not failed.
    pub in_block: bool,
    /// The statement starts the transaction's read snapshot: it runs on its own, or it
    /// is the first of its block to touch the database.
    pub snapshot_starts: bool,
    /// `SET mdbc.read_consistency = 'local'`: read what this site has.
    pub read_local: bool,
    /// `SET mdbc.strong_after_stale_read = 'allow'`.
    pub allow_stale_strong: bool,
}

/// A commit that succeeded here, and what remains before it may be acknowledged.
#[must_use]
#[derive(Debug, Default)]
pub struct Committed {
    // Group-commit ticket to wait for.
    ticket: Option<u64>,
    // The transaction's site-log entry, to ship.
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

/// What a transaction block read that a later strong write must answer for.
#[derive(Debug, Default)]
struct TxReads {
    // For bounded reads: the instant this site knew it had everything of every site at
    // the start of the block's snapshot.
    fresh: Option<Instant>,
    // The first table read that may be stale at this site (eventual, causal, bounded).
    stale: Option<String>,
    // Strong domains read before the block owned them, with the position of their log
    // the read saw.
    strong: Vec<(String, u64)>,
}

/// The replication side of a session's transactions (one per session, reset at each
/// transaction's end).
///
/// It holds a capture of the session's connection while a transaction writes: a session
/// MUST declare its `ReplTxn` before its connection, so that it is dropped first.
pub struct ReplTxn {
    capture: Option<Capture>,
    repl: Arc<Replication>,
    store: Arc<Store>,
    shapes: Shapes,
    schema: Option<SchemaChange>,
    // Strong domains this transaction holds (their locks are this site's).
    owned: Vec<Arc<Owned>>,
    // The transaction's changes to non-strong tables, collected before COMMIT when
    // strong ones were published.
    collected: Option<Vec<TableChanges>>,
    reads: TxReads,
}

impl ReplTxn {
    /// The settings of `table` (its level, domain, staleness bound).
    pub fn table_policy(&self, table: &str) -> Arc<super::policy::TablePolicy> {
        self.repl.policy().table(table)
    }

    /// The replication side of a new session at this site.
    pub fn new(repl: Arc<Replication>, store: Arc<Store>) -> ReplTxn {
        ReplTxn {
            capture: None,
            repl,
            store,
            shapes: Shapes::default(),
            schema: None,
            owned: Vec::new(),
            collected: None,
            reads: TxReads::default(),
        }
    }

    /// This site's name.
    pub fn site(&self) -> &str {
        self.repl.site()
    }

    /// A transaction block begins.
    pub fn begin(&mut self) {
        self.reads = TxReads::default();
    }

    /// Door 1, outside SQLite's write transaction: what must happen before `plan` runs —
    /// syncs and waits for its reads, the schema lock for DDL, the domains of the strong
    /// tables it writes — or why it must not run. `kept` is the session's kept read
    /// snapshot on `conn`, ended where the statement must see newer data.
    pub async fn before_statement(
        &mut self,
        conn: &mut Connection,
        kept: &mut KeptRead,
        plan: &SqlPlan,
        at: Situation,
    ) -> Result<(), SqlError> {
        if !plan.reads.is_empty() {
            self.before_reads(conn, kept, plan, at).await?;
        } else if at.in_block && at.snapshot_starts && self.repl.policy().any_bounded() {
            // A block whose first statement reads nothing starts its snapshot here.
            self.reads.fresh = self.repl.fresh_as_of_all();
        }
        if plan.kind == StmtKind::Ddl {
            self.begin_schema_change().await?;
        }
        if plan.kind == StmtKind::Write {
            if let Some(t) = self.first_strong(&plan.writes) {
                self.check_stale_reads(plan, &t, at)?;
            }
            self.use_domains(&plan.writes).await?;
        }
        Ok(())
    }

    /// Door 1 for `COPY table FROM STDIN`: takes the table's domain if it is strong.
    pub async fn before_copy_in(&mut self, table: &str) -> Result<(), SqlError> {
        self.use_domains(std::slice::from_ref(&table.to_string()))
            .await
    }

    /// Once the session holds the store's write lock: starts capturing what the
    /// transaction writes (once per transaction).
    ///
    /// # Safety
    /// The capture lives on `conn`: this `ReplTxn` MUST be dropped, or [`ReplTxn::end`]
    /// called, before `conn` is closed.
    pub unsafe fn start_writes(&mut self, conn: &Connection) -> Result<(), SqlError> {
        if self.capture.is_none() {
            // SAFETY: the caller keeps `conn` open for as long as the capture lives.
            self.capture = Some(unsafe { Capture::start(conn) }?);
        }
        Ok(())
    }

    /// The transaction's capture, if it writes: paused while a table rebuild copies rows
    /// (see [`applier::after_ddl`]).
    pub fn capture(&self) -> Option<&Capture> {
        self.capture.as_ref()
    }

    /// Door 1, inside the transaction (write lock held, SQLite transaction open), before
    /// the statement runs: applies what this site lacks of the schema log (before DDL,
    /// so the new change is written against the newest schema) and of the domains the
    /// transaction owns. Returns the catalog when schema entries changed it; `catalog` is
    /// the session's.
    pub async fn catch_up(
        &mut self,
        conn: &mut Connection,
        catalog: &Arc<Catalog>,
        ddl: bool,
    ) -> Result<Option<Arc<Catalog>>, SqlError> {
        let caught = if ddl {
            self.catch_up_schema(conn, catalog).await?
        } else {
            None
        };
        if !self.owned.is_empty() {
            let version = caught.as_ref().unwrap_or(catalog).version;
            self.catch_up_domains(conn, version).await?;
        }
        Ok(caught)
    }

    /// After a DDL statement of the transaction ran: its text, for the schema log.
    pub fn note_ddl(&mut self, statement: String) {
        if let Some(sc) = self.schema.as_mut() {
            sc.ddl.push(statement);
        }
    }

    /// Door 2: commits the transaction. Appends its schema change and its strong
    /// changes to their logs (a quorum holds them when this goes on), seals the rest into
    /// this site's log inside the transaction, runs SQLite's COMMIT, and moves the site
    /// log's position. The caller MUST hold the store's write lock and have the
    /// transaction open; on an error it rolls back (nothing was committed here — an
    /// unknown outcome elsewhere is reported as 08007).
    pub async fn commit(
        &mut self,
        conn: &mut Connection,
        version: u64,
    ) -> Result<Committed, SqlError> {
        self.publish_schema(conn).await?;
        self.publish_strong(conn, version).await?;
        let schema = self.schema.as_ref().and_then(|s| s.published);
        let sealed = match self.capture.take() {
            Some(capture) => {
                let tables = match self.collected.take() {
                    Some(t) => t,
                    None => {
                        let t = collect(&self.repl, &mut self.shapes, conn, &capture, version)?;
                        // Strong rows reach other sites only through their domain log
                        // (publish_strong); never let them slip into the site log.
                        if let Some(x) = t
                            .iter()
                            .find(|x| self.repl.policy().table(&x.table).domain.is_some())
                        {
                            return Err(ReplError::WithoutDomainLock {
                                table: x.table.clone(),
                            }
                            .into());
                        }
                        t
                    }
                };
                self.repl.seal(conn, tables, schema)?
            }
            None => None,
        };
        let (r, ticket) = self.store.commit(conn);
        r?;
        if let Some(s) = &sealed {
            self.repl.committed(s);
        }
        if let Some(sc) = &self.schema {
            if sc.caught_up {
                self.repl.set_schema_pos(sc.published.unwrap_or(sc.head));
            }
        }
        Ok(Committed { ticket, sealed })
    }

    /// Door 3, after the write lock is released: waits until the commit is on disk and
    /// its entry is in this site's log in MUSIC (and held by `sync_replicas` other sites
    /// where its tables ask); a warning for the client when they did not confirm in time.
    pub async fn acknowledge(&mut self, c: Committed) -> Option<String> {
        self.store.wait_durable(c.ticket).await;
        match c.sealed {
            Some(s) => self.repl.ship(s).await,
            None => None,
        }
    }

    /// The transaction ended (committed or rolled back): stops the capture, releases the
    /// schema lock (in the background) and hands over, on the server's runtime, the
    /// domains another site waits for.
    pub fn end(&mut self) {
        self.capture = None;
        self.collected = None;
        if !self.owned.is_empty() {
            self.repl.end_use_later(std::mem::take(&mut self.owned));
        }
        self.schema = None;
    }

    /// The first of `tables` that is strong, if any.
    fn first_strong(&self, tables: &[String]) -> Option<String> {
        let policy = self.repl.policy();
        if !policy.any_strong() {
            return None;
        }
        tables
            .iter()
            .find(|t| policy.table(t).domain.is_some())
            .cloned()
    }

    /// Before a write to strong tables: makes this site the owner of their domains (see
    /// [`super::domains`]) for the rest of the transaction.
    async fn use_domains(&mut self, tables: &[String]) -> Result<(), SqlError> {
        let needed: Vec<String> = self
            .repl
            .strong_domains(tables)
            .into_iter()
            .filter(|d| !self.owned.iter().any(|o| o.domains.contains(d)))
            .collect();
        if needed.is_empty() {
            return Ok(());
        }
        let table = self.first_strong(tables).unwrap_or_default();
        let got = self.repl.acquire_domains(&needed, &table).await?;
        self.owned.extend(got);
        Ok(())
    }

    /// Before a statement that reads tables: at the start of a read snapshot, makes
    /// strong reads linearizable and bounded ones fresh enough; then notes, for a later
    /// strong write in the same block, what was read that may be stale.
    async fn before_reads(
        &mut self,
        conn: &mut Connection,
        kept: &mut KeptRead,
        plan: &SqlPlan,
        at: Situation,
    ) -> Result<(), SqlError> {
        let repl = self.repl.clone();
        if at.snapshot_starts && !at.read_local {
            if plan.kind == StmtKind::Read {
                self.sync_strong_reads(conn, kept, &plan.reads, at).await?;
            }
            if let Some((table, bound)) = repl.bound_of(&plan.reads) {
                repl.ensure_fresh(table, bound).await?;
                // A kept read snapshot may predate what was just applied.
                if at.autocommit {
                    kept.end(conn);
                }
            }
        }
        // A statement on its own is checked by its plan (see `check_stale_reads`).
        if !at.in_block {
            return Ok(());
        }
        let policy = repl.policy();
        if policy.any_bounded() {
            if at.snapshot_starts {
                self.reads.fresh = repl.fresh_as_of_all();
            } else if !at.read_local {
                self.check_block_bound(&plan.reads)?;
            }
        }
        if !policy.any_strong() {
            // Nothing a stale read could feed, and no strong reads to track.
            return Ok(());
        }
        for t in &plan.reads {
            let p = policy.table(t);
            match (p.level, p.domain.clone()) {
                (Level::Eventual | Level::Causal | Level::Bounded, _) => {
                    self.reads.stale.get_or_insert_with(|| t.clone());
                }
                // A strong table read in the block before its domain is owned: the
                // position read is checked when the block takes the domain.
                (Level::Strong, Some(d)) if plan.kind == StmtKind::Read => {
                    let held = self.owned.iter().any(|o| o.domains.contains(&d));
                    if !held && !self.reads.strong.iter().any(|(x, _)| *x == d) {
                        let pos = applied_pos(conn, &domain_log(&d))?;
                        self.reads.strong.push((d, pos));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A bounded read later in a block sees the block's snapshot: refused (40001) when
    /// what the site had at the snapshot's start is older than the table's bound now.
    fn check_block_bound(&self, reads: &[String]) -> Result<(), ReplError> {
        let Some((table, bound)) = self.repl.bound_of(reads) else {
            return Ok(());
        };
        if self.reads.fresh.is_some_and(|t| t.elapsed() <= bound) {
            return Ok(());
        }
        Err(ReplError::SnapshotTooOld {
            table: table.to_string(),
            bound_ms: bound.as_millis(),
        })
    }

    /// Before a write to strong tables: refuses it when the transaction (or the statement
    /// itself) read a table that may be stale here, unless the session allows that.
    fn check_stale_reads(
        &self,
        plan: &SqlPlan,
        strong_table: &str,
        at: Situation,
    ) -> Result<(), ReplError> {
        if at.allow_stale_strong {
            return Ok(());
        }
        let policy = self.repl.policy();
        let in_statement = plan.reads.iter().find(|t| {
            matches!(
                policy.level(t),
                Level::Eventual | Level::Causal | Level::Bounded
            )
        });
        let Some(stale) = self.reads.stale.as_ref().or(in_statement) else {
            return Ok(());
        };
        Err(ReplError::StaleRead {
            strong: strong_table.to_string(),
            stale: stale.clone(),
            level: policy.level(stale).name(),
        })
    }

    /// Before a read of strong tables at a site that does not own their domain: waits
    /// until this site has applied each domain's log up to the head a quorum holds, so the
    /// read sees every strong commit acknowledged before it began (linearizable). Bounded
    /// by the lock timeout.
    async fn sync_strong_reads(
        &mut self,
        conn: &mut Connection,
        kept: &mut KeptRead,
        tables: &[String],
        at: Situation,
    ) -> Result<(), SqlError> {
        let repl = self.repl.clone();
        let heads = repl.heads_to_read(tables).await?;
        if heads.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + repl.lock_timeout();
        let mut epochs = self.store.watch_write_epoch();
        let mut pulled = false;
        // In a block, reading the positions on the session's connection would start the
        // block's snapshot before the site caught up; they are read beside it instead.
        let side = if at.autocommit {
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
                kept.end(conn);
            }
            let behind = first_behind(side.as_ref().unwrap_or(conn), &heads)?;
            let Some((domain, applied, head)) = behind else {
                return Ok(());
            };
            if !pulled {
                repl.pull_domain(&domain, applied + 1, head).await;
                pulled = true;
            }
            tokio::select! {
                _ = epochs.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => pulled = false,
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ReplError::StrongBehind { domain, applied, head }.into());
                }
            }
        }
    }

    /// Before a DDL statement: takes the schema lock (once per transaction) so that
    /// schema changes are serialised across sites.
    async fn begin_schema_change(&mut self) -> Result<(), ReplError> {
        if self.schema.is_some() {
            return Ok(());
        }
        let (guard, head) = self.repl.lock_schema().await?;
        self.schema = Some(SchemaChange {
            guard,
            head,
            caught_up: false,
            ddl: Vec::new(),
            published: None,
        });
        Ok(())
    }

    /// Inside the transaction, before its first DDL: applies whatever schema entries
    /// this site has not applied yet; the catalog after them, if there were any.
    async fn catch_up_schema(
        &mut self,
        conn: &mut Connection,
        catalog: &Arc<Catalog>,
    ) -> Result<Option<Arc<Catalog>>, SqlError> {
        let Some(sc) = self.schema.as_ref().filter(|s| !s.caught_up) else {
            return Ok(None);
        };
        let (from, head) = (self.repl.schema_pos() + 1, sc.head);
        let mut current: Option<Arc<Catalog>> = None;
        for seq in from..=head {
            let entry = self.repl.read_schema_entry(&sc.guard, seq).await?;
            let base = current.clone().unwrap_or_else(|| catalog.clone());
            current = Some(applier::run_ddl(
                &self.store,
                conn,
                base,
                &entry.ddl,
                self.capture.as_ref(),
            )?);
            set_applied(conn, SCHEMA_LOG, seq)?;
        }
        if let Some(sc) = self.schema.as_mut() {
            sc.caught_up = true;
        }
        Ok(current)
    }

    /// Inside the transaction: applies what this site lacks of the domains it now owns.
    async fn catch_up_domains(
        &mut self,
        conn: &mut Connection,
        version: u64,
    ) -> Result<(), SqlError> {
        for o in self.owned.clone() {
            for d in &o.domains {
                domains::settle(&o, d).await?;
                if let Some((_, read)) = self.reads.strong.iter().find(|(x, _)| x == d) {
                    // The block read this domain's tables at an older position than the
                    // one it now writes on: the read may be stale, and a write computed
                    // from it would lose an update. Retrying the block reads afresh.
                    if o.head(d) > *read {
                        return Err(ReplError::ChangedSinceRead {
                            domain: d.clone(),
                            read: *read,
                            head: o.head(d),
                        }
                        .into());
                    }
                }
                if o.is_caught_up(d) {
                    continue;
                }
                let from = applied_pos(conn, &domain_log(d))? + 1;
                for seq in from..=o.head(d) {
                    let entry = read_entry(&o.guard, d, seq).await?;
                    // Other sites' rows are not this transaction's writes: recorded, they
                    // would ship again as if written here (duplicating appended rows).
                    let _paused = self.capture.as_ref().map(Paused::new);
                    self.repl.apply_domain_entry(
                        conn,
                        &mut self.shapes,
                        version,
                        d,
                        seq,
                        &entry,
                    )?;
                }
                o.mark_caught_up(d);
            }
        }
        Ok(())
    }

    /// Before COMMIT of a transaction that changed the schema: appends its DDL to the
    /// schema log (a quorum holds it before this returns).
    async fn publish_schema(&mut self, conn: &mut Connection) -> Result<(), SqlError> {
        let Some(sc) = self.schema.as_mut() else {
            return Ok(());
        };
        if sc.ddl.is_empty() || sc.published.is_some() {
            return Ok(());
        }
        let seq = sc.head + 1;
        self.repl
            .publish_schema(&sc.guard, seq, std::mem::take(&mut sc.ddl))
            .await?;
        sc.published = Some(seq);
        set_applied(conn, SCHEMA_LOG, seq)?;
        Ok(())
    }

    /// Before COMMIT: ships the transaction's strong changes to their domain logs.
    async fn publish_strong(
        &mut self,
        conn: &mut Connection,
        version: u64,
    ) -> Result<(), SqlError> {
        if self.owned.is_empty() {
            return Ok(());
        }
        let Some(capture) = self.capture.as_ref() else {
            return Ok(());
        };
        let changes = collect(&self.repl, &mut self.shapes, conn, capture, version)?;
        let schema = self.schema.as_ref().and_then(|s| s.published);
        let (entries, rest) = self
            .repl
            .prepare_strong(conn, &self.owned, changes, schema)?;
        domains::put_strong(&entries).await?;
        self.collected = Some(rest);
        Ok(())
    }
}

/// The first of `heads` (domain, head) this site has not applied as far, with how far it
/// has.
fn first_behind(
    conn: &Connection,
    heads: &[(String, u64)],
) -> rusqlite::Result<Option<(String, u64, u64)>> {
    for (d, head) in heads {
        let applied = applied_pos(conn, &domain_log(d))?;
        if applied < *head {
            return Ok(Some((d.clone(), applied, *head)));
        }
    }
    Ok(None)
}

/// What the transaction changed in replicated tables (before its COMMIT).
fn collect(
    repl: &Replication,
    shapes: &mut Shapes,
    conn: &Connection,
    capture: &Capture,
    version: u64,
) -> Result<Vec<TableChanges>, ReplError> {
    capture
        .collect(conn, shapes, version, &mut |t| repl.replicated(t))
        .map_err(|e| match e {
            // PostgreSQL's logical replication refuses the same with 55000.
            e @ CaptureError::Keyless { .. } => ReplError::Keyless(e.to_string()),
            CaptureError::Sqlite(e) => e.into(),
        })
}
