//! Multi-site replication: how a site joins MUSIC, ships its writes and applies the
//! others' (see `DESIGN.md` in this folder for why it is built this way, and the
//! repository's `docs/DESIGN.md`, "Logs").
//!
//! A session sees replication through one door: [`txn::ReplTxn`], the replication side
//! of one client transaction. Everything else is rooms the transaction and the background
//! jobs use, one log or job each:
//!
//! | module | holds |
//! | --- | --- |
//! | [`cluster`] | the state every job shares ([`Replication`]) and its accessors |
//! | [`keys`] | log key names and applied positions |
//! | [`locked_log`] | a log written under a MUSIC lock: append, read, settle the tail (schema and domain logs) |
//! | [`site_log`] | this site's log of eventual and causal changes: seal, ship, re-ship |
//! | [`schema_log`] | the schema log: its lock, entries, and applying them |
//! | [`domains`] | strong domains: acquire, settle, put, hand over ([`ownership`] holds their state) |
//! | [`reads`] | linearizable reads of strong tables and bounded reads |
//! | [`entries`] | reading log entries from this site's replica or the others', applying them |
//! | [`replicator`] | the task that applies the other sites' logs |
//! | [`calls`], [`serve`] | site-to-site calls and answering them |
//! | [`membership`], [`snapshot`] | sites joining and leaving, and the snapshot a new one starts from |
//! | [`pruning`] | dropping log entries every site has applied |
//! | [`admin`] | `mdbc_sites`, `mdbc_tables` and the reachability probe |
//! | [`error`] | [`ReplError`], the one place a replication failure gets its SQLSTATE |
//! | [`startup`] | starting the node and the background jobs |
//!
//! Modules name each other's items where they are defined; this one only declares them
//! and re-exports what the rest of the server uses, so no module here imports another in
//! a circle (`scripts/module-graph` checks).

pub mod admin;
pub mod calls;
mod chunks;
pub mod cluster;
pub mod domains;
pub mod entries;
pub mod error;
pub mod freshness;
pub mod keys;
pub mod locked_log;
pub mod membership;
pub mod ownership;
pub mod policy;
pub mod pruning;
pub mod reads;
mod replicator;
pub mod schema_log;
pub mod serve;
pub mod site_log;
pub mod snapshot;
pub mod startup;
#[cfg(test)]
mod testing;
pub mod txn;

pub use cluster::{Replication, Site};
pub use error::ReplError;
pub use keys::site_id;
pub use policy::{Policy, TablePolicy};
pub use startup::ClusterNode;
pub use txn::ReplTxn;
