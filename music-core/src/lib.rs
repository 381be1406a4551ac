//! # music-core
//!
//! Room in the design (see `docs/DESIGN.md`, "Crates, bottom up", and `music-core/README.md`): MUSIC, a replicated key space
//! whose access can be guarded by locks, for the strong tables and failovers of mdbc.
//!
//! - [`locks`]: the lock table — queues per key, lock refs that are also fencing tokens,
//!   multi-key refs enqueued in one decision, leases, forced release — a state machine
//!   replicated by the `consensus` crate.
//! - [`store`]: where values live ([`store::DataStore`]): the `embedded` store replicated
//!   among MUSIC nodes (hinted hand-off, quorum reads with repair, anti-entropy) and, for
//!   ScyllaDB/Cassandra, the `scylla` backend.
//! - [`service`]: the operations ([`service::Music`]): AP `put`/`get`,
//!   `create_lock_ref`, `acquire_lock` (with sync of the keys), `critical_put`/`get`,
//!   `release_lock`, lease renewal and expiry.
//! - [`rpc`]: the calls between MUSIC nodes; [`version`]: last-writer-wins versions and
//!   the hybrid logical clock.
#![deny(missing_docs)]

pub mod codec;
pub mod locks;
pub mod node;
pub mod recipes;
pub mod rest;
pub mod rpc;
pub mod service;
pub mod store;
pub mod version;
