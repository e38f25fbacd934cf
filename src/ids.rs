//! Who is who in the cluster: node ids, node addresses and Raft group ids.
//!
//! A leaf module: every layer names nodes and groups, so these live below all of them
//! (storage keys carry the group, shards are groups, Raft runs groups).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A node's identity in every group's membership. Never reused.
pub type NodeId = u64;

/// Where a node can be reached; stored in every group's membership so any member can
/// route to any other (`grpc_addr` for Raft and forwarding, `http_addr` for clients).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub grpc_addr: String,
    pub http_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grpc={} http={}", self.grpc_addr, self.http_addr)
    }
}

/// A Raft group: 0 is the meta group (apps, cluster settings), 1..=shards are shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupId(pub u64);

/// What a group holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Meta,
    Shard(u32),
}

impl GroupId {
    pub const META: GroupId = GroupId(0);

    /// The group of shard `shard` (0-based).
    pub fn shard(shard: u32) -> GroupId {
        GroupId(shard as u64 + 1)
    }

    pub fn kind(self) -> GroupKind {
        match self.0 {
            0 => GroupKind::Meta,
            n => GroupKind::Shard((n - 1) as u32),
        }
    }

    pub fn is_shard(self) -> bool {
        self.0 != 0
    }

    /// All groups of a cluster with `shards` shards: meta first.
    pub fn all(shards: u32) -> impl Iterator<Item = GroupId> {
        std::iter::once(GroupId::META).chain((0..shards).map(GroupId::shard))
    }

    /// The group's id as the 8-byte big-endian prefix of its keys.
    pub fn prefix(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            GroupKind::Meta => write!(f, "meta"),
            GroupKind::Shard(n) => write!(f, "shard-{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_put_meta_first_then_shards() {
        let all: Vec<_> = GroupId::all(3).collect();
        assert_eq!(all, vec![GroupId(0), GroupId(1), GroupId(2), GroupId(3)]);
        assert_eq!(GroupId(2).kind(), GroupKind::Shard(1));
        assert!(GroupId(2).is_shard() && !GroupId::META.is_shard());
        assert_eq!(GroupId::META.to_string(), "meta");
        assert_eq!(GroupId::shard(7).to_string(), "shard-7");
    }
}
