//! # mdbc-server
//!
//! Room in the design (see `DESIGN.md`, "Crates"): the site server. It speaks PostgreSQL's
//! wire protocol ([`wire`], on `pgwire`), keeps sessions and transactions ([`session`]),
//! stores data in the site's SQLite file ([`store`]), converts values between PostgreSQL's
//! formats and SQLite's storage ([`values`], arrays in [`arrays`]), answers introspection
//! from PostgreSQL's system catalogs rebuilt as views over SQLite's schema
//! ([`pg_catalog`]), provides the PostgreSQL functions SQLite lacks ([`sqlfuncs`]), and
//! starts and stops the whole ([`server`]). Translation of SQL text lives in the
//! `sql-capture` crate.
//!
//! With a `[cluster]` section the site joins MUSIC ([`replication`]): sessions capture
//! what their transactions change, the commit appends it to the site's log, and a
//! replicator applies the other sites' logs.
#![deny(missing_docs)]

pub mod arrays;
pub mod config;
pub mod copy;
pub mod durability;
pub mod errors;
pub mod pg_catalog;
pub mod replication;
pub mod server;
pub mod session;
pub mod sqlfuncs;
pub mod store;
pub mod values;
pub mod wire;
