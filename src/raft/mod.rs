//! Raft plumbing: one openraft group per shard plus the meta group, all on one RocksDB
//! and one gRPC transport per node. Domain-free: what a log carries ([`LogTypes`]) and
//! what a group does with it ([`GroupLogic`]) are the application's, chosen in `node`.
//!
//! `types` (type config) → `log_store` + `recent` + `wal_sync` (durable log, its newest
//! entries in memory, group commit) →
//! `logic` + `state_machine` + `snapshot` (apply, snapshot files) → `network` + `peers`
//! (outgoing RPCs) → `service` (incoming RPCs) → `group` (the groups a node runs; write
//! and read on a leader). `admission`: which incarnation of each peer may take part.

pub mod admission;
pub mod fault;
pub mod group;
pub mod log_store;
pub mod logic;
pub mod network;
pub mod peers;
pub mod recent;
pub mod service;
pub mod snapshot;
pub mod state_machine;
pub mod types;
pub mod wal_sync;

pub use group::{Group, GroupError, Groups};
pub use logic::GroupLogic;
pub use types::LogTypes;
