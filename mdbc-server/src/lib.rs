//! # mdbc-server
//!
//! Room in the design (see `docs/DESIGN.md`, "Crates, bottom up"): the site server. It
//! speaks PostgreSQL's wire protocol ([`wire`], on `pgwire`), keeps sessions and
//! transactions ([`session`]), stores data in the site's SQLite file ([`store`]), converts
//! values between PostgreSQL's formats and SQLite's storage ([`values`]), answers
//! introspection from PostgreSQL's system catalogs rebuilt as views over SQLite's schema
//! ([`pg_catalog`]), provides the PostgreSQL functions SQLite lacks ([`sqlfuncs`]), and
//! starts and stops the whole ([`server`]). Translation of SQL text lives in the
//! `sql-capture` crate.
//!
//! With a `[cluster]` section the site joins MUSIC ([`replication`]): a session reaches it
//! through its replication transaction (`replication::txn`), whose commit appends the
//! transaction's changes to the logs; a replicator applies the other sites' logs. Schema
//! changes and row changes are applied by one stateless piece ([`applier`]), whoever
//! applies them.
#![deny(missing_docs)]

pub mod applier;
pub mod config;
pub mod datetime;
pub mod durability;
pub mod errors;
pub mod json;
pub mod kept_read;
pub mod numeric;
pub mod pg_catalog;
pub mod pg_format;
pub mod replication;
pub mod server;
pub mod session;
pub mod sqlfuncs;
pub mod store;
pub mod text_funcs;
pub mod values;
pub mod wire;
