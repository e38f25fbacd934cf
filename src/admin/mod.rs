//! Operating the cluster: the gRPC admin service (`proto/admin.proto`, used by
//! `goschedctl`) and the leader balancer that spreads shard leaders over the nodes.

pub mod balance;
pub mod membership;
pub mod service;
pub mod status;
