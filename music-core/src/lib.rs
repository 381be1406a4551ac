//! # music-core
//!
//! Room in the design (see `DESIGN.md`, "The key space"): the replicated key space with
//! AP `put`/`get`, lock references, critical puts fenced by lock refs, and the `DataStore`
//! backends (`embedded`, `scylla`).
//!
//! Nothing is built here yet: the capability is tracked by issue 4, which is open; no other
//! crate depends on this one yet.
#![deny(missing_docs)]
