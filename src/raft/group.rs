//! The Raft groups a node runs (one handle per group, fixed at start), and the two ways
//! to use a group this node leads: propose a command, or read linearizably.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::raft::ReadPolicy;
use rocksdb::DB;
use serde::{Deserialize, Serialize};

use super::log_store::LogStore;
use super::logic::GroupLogic;
use super::network::NetworkFactory;
use super::peers::Peers;
use super::state_machine::GroupStateMachine;
use super::types::{GroupId, LogTypes, NodeId, NodeInfo, Raft, TypeConfig};
use super::wal_sync::WalSync;
use crate::store::txn::SmReader;

/// Longest a request may run on a leader: a leader cut off from its quorum can neither
/// commit a write nor confirm a read, and must answer rather than hang.
const LEADER_TIMEOUT: Duration = Duration::from_secs(4);

/// Why a group could not serve a write or read.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum GroupError {
    /// This node does not lead the group; the leader is named when known.
    #[error("not the leader of the group (leader: {leader:?})")]
    NotLeader { leader: Option<(NodeId, NodeInfo)> },
    /// No leader could serve it in time (election, lost quorum, unreachable nodes).
    #[error("{0}")]
    Unavailable(String),
    /// The write may or may not have committed (its leader changed under it).
    #[error("{0}")]
    Indeterminate(String),
    /// The group refused the operation on its state (e.g. removing its last voter).
    #[error("{0}")]
    Refused(String),
    /// A bug or a storage failure.
    #[error("{0}")]
    Internal(String),
}

impl From<io::Error> for GroupError {
    fn from(e: io::Error) -> Self {
        GroupError::Internal(e.to_string())
    }
}

/// One group on this node: its Raft handle and its state machine.
pub struct Group<L: LogTypes> {
    pub id: GroupId,
    pub raft: Raft<L>,
    pub sm: GroupStateMachine<L>,
}

impl<L: LogTypes> Group<L> {
    /// Whether `node` leads this group, as this node currently sees it.
    pub fn is_led_by(&self, node: NodeId) -> bool {
        use openraft::async_runtime::WatchReceiver;
        self.raft.metrics().borrow_watched().current_leader == Some(node)
    }

    /// A copy of the group's current Raft metrics (never hold the watch borrow across an await).
    pub fn metrics(&self) -> openraft::RaftMetrics<TypeConfig<L>> {
        use openraft::async_runtime::WatchReceiver;
        self.raft.metrics().borrow_watched().clone()
    }

    /// The leader of this group as this node currently sees it, with its address.
    pub fn known_leader(&self) -> Option<(NodeId, NodeInfo)> {
        let m = self.metrics();
        let leader = m.current_leader?;
        let node = m.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, node))
    }

    /// Why this group stopped (openraft went Fatal, e.g. on a storage error), if it did.
    pub fn stopped_reason(&self) -> Option<String> {
        use openraft::async_runtime::WatchReceiver;
        self.raft
            .metrics()
            .borrow_watched()
            .running_state
            .as_ref()
            .err()
            .map(|e| format!("{} stopped: {e}", self.id))
    }

    /// Proposes `cmd` as this group's leader and answers what applying it returned.
    /// Errors that prove `cmd` was not appended (not the leader, the group stopped before)
    /// are `NotLeader` / `Unavailable`, which the router retries; any other failure after
    /// proposing is `Indeterminate`.
    pub async fn write(&self, cmd: impl Into<Arc<L::Command>>) -> Result<L::Reply, GroupError> {
        if let Some(why) = self.stopped_reason() {
            return Err(GroupError::Unavailable(why));
        }
        let proposed =
            tokio::time::timeout(LEADER_TIMEOUT, self.raft.client_write(cmd.into())).await;
        let Ok(result) = proposed else {
            return Err(GroupError::Indeterminate(format!(
                "{} did not commit the write within {LEADER_TIMEOUT:?}; it may or may not be applied",
                self.id
            )));
        };
        match result {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(not_leader(f.leader_id, f.leader_node))
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
                Err(GroupError::Indeterminate(format!(
                    "the leader of {} changed while writing; the request may or may not have \
                     been applied (leader now: {:?})",
                    self.id, f.leader_id
                )))
            }
            Err(RaftError::APIError(e)) => Err(GroupError::Internal(e.to_string())),
            // It may have been appended and replicated before the group stopped.
            Err(RaftError::Fatal(e)) => Err(GroupError::Indeterminate(format!(
                "{} stopped while writing: {e}; the write may or may not have been applied",
                self.id
            ))),
        }
    }

    /// Answers `f` from this group's state once this leader has applied everything
    /// committed when it was asked (a linearizable read), off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, GroupError>
    where
        T: Send + 'static,
        F: FnOnce(&SmReader) -> io::Result<T> + Send + 'static,
    {
        self.catch_up().await?;
        self.read_applied(f).await
    }

    /// Answers `f` from this replica's applied state as it is (no read index: possibly
    /// behind the leader), off the async threads.
    pub async fn read_applied<T, F>(&self, f: F) -> Result<T, GroupError>
    where
        T: Send + 'static,
        F: FnOnce(&SmReader) -> io::Result<T> + Send + 'static,
    {
        let sm = self.sm.clone();
        tokio::task::spawn_blocking(move || sm.read(f))
            .await
            .map_err(|e| GroupError::Internal(e.to_string()))?
            .map_err(GroupError::from)
    }

    /// Waits until this leader has applied everything committed now (a read index).
    pub async fn catch_up(&self) -> Result<(), GroupError> {
        let confirmed = tokio::time::timeout(
            LEADER_TIMEOUT,
            self.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await;
        let Ok(result) = confirmed else {
            return Err(GroupError::Unavailable(format!(
                "{} could not confirm its leadership within {LEADER_TIMEOUT:?}",
                self.id
            )));
        };
        match result {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(not_leader(f.leader_id, f.leader_node))
            }
            Err(RaftError::APIError(e)) => Err(GroupError::Unavailable(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(self.stopped(e)),
        }
    }

    fn stopped(&self, e: impl std::fmt::Display) -> GroupError {
        GroupError::Unavailable(format!("{} stopped: {e}", self.id))
    }
}

fn not_leader(leader: Option<NodeId>, node: Option<NodeInfo>) -> GroupError {
    GroupError::NotLeader {
        leader: leader.zip(node),
    }
}

/// All groups on this node, meta first.
pub struct Groups<L: LogTypes> {
    map: BTreeMap<GroupId, Group<L>>,
    db: Arc<DB>,
}

impl<L: LogTypes> Groups<L> {
    /// Opens every group of a cluster with `shards` shards on `db`; `logic_of` says what
    /// each group does with its commands.
    pub async fn open(
        node_id: NodeId,
        shards: u32,
        config: Arc<openraft::Config>,
        db: Arc<DB>,
        snapshot_root: &Path,
        peers: Arc<Peers>,
        logic_of: impl Fn(GroupId) -> Arc<dyn GroupLogic<L>>,
    ) -> anyhow::Result<Groups<L>> {
        let wal = WalSync::start(&db);
        let mut map = BTreeMap::new();
        for id in GroupId::all(shards) {
            let log = LogStore::new(db.clone(), id, wal.clone());
            let sm =
                GroupStateMachine::open(db.clone(), id, snapshot_root, wal.clone(), logic_of(id))?;
            let network = NetworkFactory::new(id, peers.clone());
            let raft = Raft::new(node_id, config.clone(), network, log, sm.clone()).await?;
            map.insert(id, Group { id, raft, sm });
        }
        Ok(Groups { map, db })
    }

    /// The node's database, which every group shares.
    pub fn db(&self) -> &DB {
        &self.db
    }

    pub fn get(&self, id: GroupId) -> Option<&Group<L>> {
        self.map.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Group<L>> {
        self.map.values()
    }

    /// The shard groups, in order.
    pub fn shards(&self) -> impl Iterator<Item = &Group<L>> {
        self.map.values().filter(|g| g.id.is_shard())
    }

    pub fn meta(&self) -> &Group<L> {
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
