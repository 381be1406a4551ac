//! The node-to-node calls between MUSIC nodes: what the embedded store's replicas ask of
//! each other, and lock-table reads forwarded to the consensus leader.
//!
//! They travel over [`consensus::rpc`] — one pipelined, authenticated connection per
//! peer (protocol [`MAGIC`]) — encoded with postcard. A request that does not decode is
//! answered with [`Response::Error`]; the connection and the node carry on.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::store::Versioned;
use crate::version::Version;

/// Names the protocol in the handshake.
pub const MAGIC: &[u8; 12] = b"MUSIC-RPC/01";

/// One key's value and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Bytes,
    /// Its version.
    pub version: Version,
}

/// A call from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Store these by last-writer-wins (plain puts shipped, hints replayed, repairs).
    Replicate(Vec<Item>),
    /// A critical write: refused if the replica has seen a newer lock ref for the key.
    CriticalWrite(Item),
    /// The replica's value of `key`; with `fence`, refused if it has seen a newer ref.
    Read {
        /// The key.
        key: String,
        /// The reader's lock ref.
        fence: Option<u64>,
        /// The read syncs a new holder: a replica with no value for the key raises its
        /// fence to `fence` (durably) before it answers, so an empty key is fenced in
        /// one round.
        sync: bool,
    },
    /// The anti-entropy digest: one hash per bucket.
    Digest,
    /// Keys and versions in one bucket.
    Bucket(u32),
    /// Values of these keys.
    Fetch(Vec<String>),
    /// A lock-table query for the consensus leader to answer linearizably.
    LockRead(Bytes),
    /// Critical writes of several keys under one ref, stored together: refused, all of
    /// them, if the replica has seen a newer ref for any.
    CriticalWriteMany(Vec<Item>),
    /// A call of the application running on the nodes (mdbc's site-to-site requests),
    /// carried over the same authenticated channel; see [`crate::node::AppHandler`].
    App(Bytes),
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done.
    Done,
    /// Refused: the replica has seen this newer lock ref for the key.
    Fenced(u64),
    /// A value, if the key has one.
    Value(Option<Versioned>),
    /// One hash per bucket.
    Digest(Vec<u64>),
    /// Keys and versions.
    Versions(Vec<(String, Version)>),
    /// Values.
    Items(Vec<Item>),
    /// A lock-table answer (encoded [`crate::locks::LockAnswer`]).
    LockAnswer(Bytes),
    /// The call failed.
    Error(String),
    /// The application's answer to [`Request::App`].
    App(Bytes),
}
