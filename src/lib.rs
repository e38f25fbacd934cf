//! goscheduler: a Raft-replicated distributed scheduler with the API of Myntra's GoScheduler.
//!
//! The data path, top to bottom:
//! `gateway` (axum REST API on every node) → `router` (find the owning group's leader,
//! run locally or forward over gRPC) → `raft` (one openraft group per shard plus the meta
//! group, RocksDB log, gRPC transport) → state machine apply (`meta::logic`, `shard::logic`: pure and
//! deterministic) → `store` (one RocksDB per node). `admin` operates the cluster;
//! `node` wires it all together; `config` says how.

/// mimalloc instead of the system allocator: the profile of a callback burst spent 18 % of
/// the nodes' CPU in glibc's malloc/free (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod admin;
pub mod auth;
pub mod bench;
pub mod callback;
pub mod command;
pub mod config;
pub mod cron;
pub mod ctl;
pub mod drain;
pub mod gateway;
pub mod heap;
pub mod identity;
pub mod ids;
pub mod json_shape;
pub mod meta;
pub mod metrics;
pub mod node;
pub mod proto;
pub mod raft;
pub mod router;
pub mod schedule;
pub mod shard;
pub mod skew;
pub mod storage;
pub mod store;
pub mod timer;
pub mod tls;
pub mod workers;
