//! Group commit: one fsync of the WAL makes every commit written before it durable.
//!
//! With `synchronous = full`, SQLite would fsync inside every COMMIT while the committer
//! still holds the write lock, so concurrent writers pay one fsync each, in series. Instead
//! connections run with `synchronous = NORMAL` (the WAL is written, not synced, at COMMIT)
//! and this module provides the durability barrier:
//!
//! - a writer takes a ticket ([`GroupCommit::begin_commit`]) *before* its COMMIT, runs
//!   COMMIT, marks the ticket written ([`GroupCommit::written`]) while still holding the
//!   write lock, releases the lock, and acknowledges only once the ticket is durable;
//! - the first waiter whose ticket is not durable yet fsyncs the `-wal` file for all
//!   written tickets at once, on its own connection thread, while later ones wait for it
//!   (no hand-off to a syncer thread: at one client that hand-off cost about a quarter of
//!   the time COMMIT took);
//! - a reader, before it returns rows, waits until every ticket issued so far is durable, so
//!   no client ever sees data a crash could still take away (PostgreSQL also makes a commit
//!   visible only after its WAL flush). The exception is a reader inside a transaction
//!   that already holds the write lock: it does not wait, since waiting would put an fsync
//!   inside the write lock and serialise writers behind it (TPC-B at 16 clients doubled
//!   without the wait). Such a transaction's own ticket comes after every commit it could
//!   read, so it is never acknowledged before they are durable.
//!
//! Tickets are issued before COMMIT so that a reader that can see a commit's rows has also
//! seen its ticket; the syncer only declares durable what was fully written before its fsync.

//! The mechanism itself is the `group-commit` crate, shared with MUSIC's embedded store.

pub use group_commit::{GroupCommit, Syncer};
