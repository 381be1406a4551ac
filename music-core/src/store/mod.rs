//! Where the key space's values live: the [`DataStore`] trait and its backends.
//!
//! - [`embedded`]: every MUSIC node keeps a replica ([`local::LocalStore`], SQLite) and
//!   replicates to its peers over the node RPC: plain puts shipped asynchronously with
//!   hinted hand-off, quorum reads and writes with read repair, and anti-entropy.
//! - `scylla` (feature `scylla`, on by default): ScyllaDB/Cassandra through the `scylla`
//!   crate. Both pass the same contract suite (`tests/contract.rs`).
//!
//! The lock table is not here: it is replicated by consensus (see [`crate::locks`]). A
//! store only has to keep values and fences, and answer at the consistency asked.

use std::future::Future;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::version::Version;

pub mod embedded;
pub mod local;
#[cfg(feature = "scylla")]
pub mod scylla;

/// A value with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The value.
    pub value: Bytes,
    /// Its place in last-writer-wins order.
    pub version: Version,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A critical operation under `lock_ref`, refused: a replica has seen the newer lock
    /// ref `seen` for the key (the lock passed on; this holder's writes are stale).
    #[error("lock ref {lock_ref} is fenced off: a newer lock ref {seen} holds this key")]
    Fenced {
        /// The ref the operation ran under.
        lock_ref: u64,
        /// The newer ref a replica has seen.
        seen: u64,
    },
    /// Too few replicas answered for a quorum.
    #[error("only {got} of the {need} replicas a quorum needs answered")]
    NoQuorum {
        /// Replicas that answered.
        got: usize,
        /// A quorum.
        need: usize,
    },
    /// The local storage failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// The request itself is wrong (a key too long, say).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Longest key accepted.
pub const MAX_KEY: usize = 1024;
/// Largest value accepted.
pub const MAX_VALUE: usize = 1 << 20;

/// Checks a key and value against the limits every backend enforces.
pub fn check(key: &str, value: Option<&[u8]>) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(StoreError::Invalid(format!(
            "a key is 1 to {MAX_KEY} bytes, not {}",
            key.len()
        )));
    }
    if let Some(v) = value {
        if v.len() > MAX_VALUE {
            return Err(StoreError::Invalid(format!(
                "a value is at most {MAX_VALUE} bytes, not {}",
                v.len()
            )));
        }
    }
    Ok(())
}

/// The key space's values, at the consistency each operation asks for.
pub trait DataStore: Send + Sync + 'static {
    /// Writes `value` at one replica and replicates it asynchronously (AP); the replicas
    /// converge by last-writer-wins.
    fn put(
        &self,
        key: &str,
        value: Bytes,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// Reads one replica (AP): maybe stale, always available.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Writes `value` under lock ref `lock_ref` to a quorum; replicas refuse it once they
    /// have seen a newer ref for the key.
    fn critical_put(
        &self,
        key: &str,
        value: Bytes,
        lock_ref: u64,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// Reads a quorum under lock ref `lock_ref` and returns the newest value (repairing
    /// replicas that lag); refused like a critical put.
    fn critical_get(
        &self,
        key: &str,
        lock_ref: u64,
    ) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Run when `lock_ref` acquires its lock: the newest value of `key` is read from a
    /// quorum and written back to a quorum under `lock_ref`, which also fences older refs
    /// off those replicas. The holder then sees the latest update, even one that reached
    /// only a minority.
    fn sync(&self, key: &str, lock_ref: u64)
        -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Critical puts of several keys under one lock ref, in one round where the backend
    /// can (each replica stores all of them or none). The default writes them in order.
    fn critical_put_many(
        &self,
        items: Vec<(String, Bytes)>,
        lock_ref: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            for (k, v) in items {
                self.critical_put(&k, v, lock_ref).await?;
            }
            Ok(())
        }
    }
}
