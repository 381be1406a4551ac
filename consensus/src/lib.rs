//! # consensus
//!
//! Room in the design (see `consensus/DESIGN.md`, and `docs/DESIGN.md`, "Crates, bottom up"): the Multi-Paxos replicated state
//! machine beneath MUSIC's lock service, and so beneath every strong table and failover.
//!
//! - [`paxos`]: the sans-IO core ([`Paxos`]): ballots, phase 1 only on leader change,
//!   batched and pipelined phase 2, leader leases and read index. No clock, thread, socket
//!   or ambient randomness: ticks, messages, proposals, reads and storage completions go
//!   in; [`Ready`] (messages now, a batch to persist, messages after it, decided entries,
//!   read grants) comes out.
//! - [`replica`]: a replicated [`StateMachine`] on the core, with request ids so a retried
//!   proposal is applied once, and periodic snapshots that compact the log ([`log`]); a
//!   replica behind a peer's compacted log catches up by snapshot transfer.
//! - [`sim`]: a deterministic simulator (seeded, virtual time) with message loss,
//!   duplication, reordering and delay, partitions, crashes and restarts from durable state,
//!   torn log tails and clock drift; [`check`] holds the checkers it runs (one value per
//!   slot, no acknowledged write lost, one lease at a time, linearizable histories).
//!
//! - [`storage`]: the durable log: segmented, one checksummed record per atomic batch,
//!   group-committed fsync, recovery that cuts a torn tail and refuses corruption;
//!   snapshots written aside and then checkpointed, after which older segments go.
//!
//! - [`node`]: a replica of any state machine on tokio, with its peers over [`net`]
//!   (checksummed frames from [`wire`], nodes proving the cluster secret to each other,
//!   reconnection with back-off), group commit, snapshots off the loop, a client port and
//!   an in-process [`node::NodeHandle`]; [`rpc`] pipelined request/response channels,
//!   used by [`client`] and by MUSIC's node calls; the `consensus-node` binary serves a
//!   replicated key-value store ([`kv`]) and `consensus-ctl` talks to it.
//!
//! Leader transfer is [`Paxos::transfer_leadership`]; membership changes, one replica at
//! a time, are [`Paxos::propose_membership`] (see `consensus/DESIGN.md`).
#![deny(missing_docs)]

pub mod acceptor;
pub mod check;
pub mod client;
mod codec;
pub mod config;
pub mod kv;
pub mod log;
pub mod net;
pub mod node;
pub mod paxos;
pub mod replica;
pub mod rng;
pub mod rpc;
pub mod sim;
pub mod storage;
pub mod types;
pub mod wire;

pub use config::{Config, ConfigError};
pub use log::Log;
pub use paxos::{
    HardState, MembershipChange, MembershipError, Paxos, ProposeError, Role, TransferError,
};
pub use replica::{Outcome, Replica, ReplicaReady, RequestId, StateMachine};
pub use storage::{FileStorage, MemStorage, Storage, StorageError};
pub use types::{Ballot, Entry, Membership, Message, NodeId, Persist, ReadGrant, Ready, Slot};
