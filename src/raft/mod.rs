//! Raft plumbing: one openraft group per shard plus the meta group, all on one RocksDB
//! and one gRPC transport per node.
//!
//! `types` (type config, group ids) → `log_store` + `wal_sync` (durable log, group
//! commit) → `state_machine` + `snapshot` (apply, snapshot files) → `network` + `peers`
//! (outgoing RPCs) → `service` (incoming RPCs) → `group` (the groups a node runs).

pub mod group;
pub mod log_store;
pub mod network;
pub mod peers;
pub mod service;
pub mod snapshot;
pub mod state_machine;
pub mod types;
pub mod wal_sync;
