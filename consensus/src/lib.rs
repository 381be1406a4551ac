//! # consensus
//!
//! Room in the design (see `DESIGN.md`, "Consensus"): the sans-IO Multi-Paxos core, its
//! durable log and its transports (`tcp`, `shm`, `rdma`). MUSIC's lock service stands on it.
//!
//! Nothing is built here yet: the crate exists so the workspace has its final shape. The
//! capability is tracked by issue 3, which is open; no other crate depends on this one yet.
#![deny(missing_docs)]
