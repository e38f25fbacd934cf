//! The Raft groups a node runs: one handle per group, fixed at start.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rocksdb::DB;

use super::log_store::LogStore;
use super::network::NetworkFactory;
use super::peers::Peers;
use super::state_machine::GroupStateMachine;
use super::types::{GroupId, NodeId, Raft};
use super::wal_sync::WalSync;

/// One group on this node: its Raft handle and a read handle on its state machine.
pub struct Group {
    pub id: GroupId,
    pub raft: Raft,
    pub sm: GroupStateMachine,
}

impl Group {
    /// Whether `node` leads this group, as this node currently sees it.
    pub fn is_led_by(&self, node: NodeId) -> bool {
        self.metrics().current_leader == Some(node)
    }

    /// A copy of the group's current Raft metrics (never hold the watch borrow across an await).
    pub fn metrics(&self) -> openraft::RaftMetrics<super::types::TypeConfig> {
        use openraft::async_runtime::WatchReceiver;
        self.raft.metrics().borrow_watched().clone()
    }
}

/// All groups on this node, meta first.
pub struct Groups {
    map: BTreeMap<GroupId, Group>,
}

impl Groups {
    /// Opens every group of a cluster with `shards` shards on `db`.
    pub async fn open(
        node_id: NodeId,
        shards: u32,
        config: Arc<openraft::Config>,
        db: Arc<DB>,
        snapshot_root: &Path,
        peers: Arc<Peers>,
    ) -> anyhow::Result<Groups> {
        let wal = WalSync::start(&db);
        let mut map = BTreeMap::new();
        for id in GroupId::all(shards) {
            let log = LogStore::new(db.clone(), id, wal.clone());
            let sm = GroupStateMachine::open(db.clone(), id, snapshot_root, wal.clone())?;
            let network = NetworkFactory::new(id, peers.clone());
            let raft = Raft::new(node_id, config.clone(), network, log, sm.clone()).await?;
            map.insert(id, Group { id, raft, sm });
        }
        Ok(Groups { map })
    }

    pub fn get(&self, id: GroupId) -> Option<&Group> {
        self.map.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Group> {
        self.map.values()
    }

    pub fn meta(&self) -> &Group {
        &self.map[&GroupId::META]
    }

    /// Stops every group's Raft.
    pub async fn shutdown(&self) {
        for g in self.map.values() {
            if let Err(e) = g.raft.shutdown().await {
                tracing::warn!(group = %g.id, "raft shutdown: {e}");
            }
        }
    }
}
