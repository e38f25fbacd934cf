//! The gRPC admin service. Group operations that need the leader (leader transfer,
//! membership) run on it: the node asked forwards a one-group request to the leader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use super::membership::{self, MembershipError};
use super::status;
use crate::command::{Group, Groups};
use crate::config::Config;
use crate::ids::{GroupId, NodeId, NodeInfo};
use crate::proto::admin::admin_client::AdminClient;
use crate::proto::admin::admin_server::Admin;
use crate::proto::admin::{
    ActionReply, AddNodeRequest, RemoveNodeRequest, SnapshotRequest, StatusReply, StatusRequest,
    TransferLeaderRequest,
};
use crate::raft::peers::Peers;
use crate::workers::Workers;

/// How long a membership change keeps retrying a group that is between leaders.
const OP_RETRY: Duration = Duration::from_secs(15);
/// How long a leader transfer may take before it is reported as not done.
const TRANSFER_WAIT: Duration = Duration::from_secs(10);

/// A membership change, run on a group's leader.
enum MembershipOp {
    Add(NodeId, NodeInfo),
    Remove(NodeId),
}

pub struct AdminService {
    config: Arc<Config>,
    groups: Arc<Groups>,
    peers: Arc<Peers>,
    workers: Arc<Workers>,
}

impl AdminService {
    pub fn new(
        config: Arc<Config>,
        groups: Arc<Groups>,
        peers: Arc<Peers>,
        workers: Arc<Workers>,
    ) -> Self {
        AdminService {
            config,
            groups,
            peers,
            workers,
        }
    }

    /// An admin client on the shared channel to the leader `id`.
    fn admin_client(
        &self,
        id: NodeId,
        node: &NodeInfo,
    ) -> Result<AdminClient<tonic::transport::Channel>, Status> {
        let channel = self
            .peers
            .channel(id, &node.grpc_addr)
            .map_err(|e| Status::unavailable(format!("node {id} unreachable: {e}")))?;
        Ok(AdminClient::new(channel))
    }

    /// The groups a request names: one by id, or all of them.
    fn select(&self, group_id: u64, all: bool) -> Result<Vec<&Group>, Status> {
        if all {
            return Ok(self.groups.iter().collect());
        }
        self.groups
            .get(GroupId(group_id))
            .map(|g| vec![g])
            .ok_or_else(|| Status::not_found(format!("no group {group_id}")))
    }

    /// Runs `op` on each selected group's leader: here, or forwarded as a one-group request.
    async fn on_leaders(
        &self,
        group_id: u64,
        all: bool,
        op: &MembershipOp,
    ) -> Result<Vec<String>, Status> {
        let mut lines = Vec::new();
        for g in self.select(group_id, all)? {
            // A group may be between leaders (an election, a leader transfer): retry a
            // while. Both operations are idempotent, so a retry after a lost reply is safe.
            let deadline = Instant::now() + OP_RETRY;
            let line = loop {
                match self.on_leader(g, op).await {
                    Ok(line) => break line,
                    Err(e) if Instant::now() < deadline && e.code() == tonic::Code::Unavailable => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            lines.push(line);
        }
        Ok(lines)
    }

    /// Runs `op` on `g`'s leader: here, or forwarded as a one-group request.
    async fn on_leader(&self, g: &Group, op: &MembershipOp) -> Result<String, Status> {
        let Some((leader, node)) = self.remote_leader(g)? else {
            let local = match op {
                MembershipOp::Add(id, info) => membership::add_node(g, *id, info.clone()).await,
                MembershipOp::Remove(id) => membership::remove_node(g, *id).await,
            };
            // Refused because leadership moved meanwhile: worth a retry.
            return local.map_err(|e| match e {
                MembershipError::LeaderMoved(m) => Status::unavailable(m),
                MembershipError::Refused(m) => Status::failed_precondition(m),
            });
        };
        let mut client = self.admin_client(leader, &node)?;
        let reply = match op {
            MembershipOp::Add(id, info) => {
                let one = AddNodeRequest {
                    node_id: *id,
                    grpc_addr: info.grpc_addr.clone(),
                    http_addr: info.http_addr.clone(),
                    group_id: g.id.0,
                    all_groups: false,
                };
                client.add_node(one).await?
            }
            MembershipOp::Remove(id) => {
                let one = RemoveNodeRequest {
                    node_id: *id,
                    group_id: g.id.0,
                    all_groups: false,
                };
                client.remove_node(one).await?
            }
        };
        Ok(reply.into_inner().message)
    }

    /// The leader of `group` if it is another node, or `None` if it is this one.
    fn remote_leader(&self, group: &Group) -> Result<Option<(NodeId, NodeInfo)>, Status> {
        match group.known_leader() {
            Some((id, _)) if id == self.config.node_id => Ok(None),
            Some(leader) => Ok(Some(leader)),
            None => Err(Status::unavailable(format!("{} has no leader", group.id))),
        }
    }
}

fn action(lines: Vec<String>) -> Response<ActionReply> {
    Response::new(ActionReply {
        message: lines.join("\n"),
    })
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, _req: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        Ok(Response::new(StatusReply {
            node_id: self.config.node_id,
            cluster_id: self.config.cluster_id.clone(),
            http_addr: self.config.http_addr.clone(),
            grpc_addr: self.config.grpc_addr.clone(),
            groups: self.groups.iter().map(status::group_status).collect(),
            members: status::members(self.groups.meta()),
            workers: self.workers.statuses(),
        }))
    }

    async fn transfer_leader(
        &self,
        req: Request<TransferLeaderRequest>,
    ) -> Result<Response<ActionReply>, Status> {
        let req = req.into_inner();
        let mut lines = Vec::new();
        for g in self.select(req.group_id, req.all_groups)? {
            if let Some((leader, node)) = self.remote_leader(g)? {
                if req.all_groups {
                    // "All groups" means all groups this node leads.
                    continue;
                }
                let one = TransferLeaderRequest {
                    group_id: g.id.0,
                    all_groups: false,
                    to_node: req.to_node,
                };
                let reply = self
                    .admin_client(leader, &node)?
                    .transfer_leader(one)
                    .await?;
                lines.push(format!(
                    "(via leader {leader}) {}",
                    reply.into_inner().message
                ));
                continue;
            }
            if req.to_node == self.config.node_id {
                lines.push(format!("{}: node {} already leads", g.id, req.to_node));
                continue;
            }
            g.raft
                .trigger()
                .transfer_leader(req.to_node)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            let deadline = Instant::now() + TRANSFER_WAIT;
            let done = loop {
                if g.known_leader().is_some_and(|(id, _)| id == req.to_node) {
                    break true;
                }
                if Instant::now() > deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            lines.push(if done {
                format!("{}: leader is now node {}", g.id, req.to_node)
            } else {
                format!(
                    "{}: transfer to node {} did not complete in time",
                    g.id, req.to_node
                )
            });
        }
        Ok(action(lines))
    }

    async fn add_node(
        &self,
        req: Request<AddNodeRequest>,
    ) -> Result<Response<ActionReply>, Status> {
        let req = req.into_inner();
        if req.node_id == 0 || req.grpc_addr.is_empty() || req.http_addr.is_empty() {
            return Err(Status::invalid_argument(
                "node_id, grpc_addr and http_addr are required",
            ));
        }
        let info = NodeInfo {
            grpc_addr: req.grpc_addr,
            http_addr: req.http_addr,
        };
        let op = MembershipOp::Add(req.node_id, info);
        Ok(action(
            self.on_leaders(req.group_id, req.all_groups, &op).await?,
        ))
    }

    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<ActionReply>, Status> {
        let req = req.into_inner();
        let op = MembershipOp::Remove(req.node_id);
        Ok(action(
            self.on_leaders(req.group_id, req.all_groups, &op).await?,
        ))
    }

    async fn snapshot(
        &self,
        req: Request<SnapshotRequest>,
    ) -> Result<Response<ActionReply>, Status> {
        let req = req.into_inner();
        let mut lines = Vec::new();
        for g in self.select(req.group_id, req.all_groups)? {
            let m = g.metrics();
            let before = m.snapshot;
            let applied = m.last_applied.as_ref().map(|l| l.index);
            if before.as_ref().map(|l| l.index) != applied {
                g.raft
                    .trigger()
                    .snapshot()
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
            }
            // Wait for the snapshot to be built (bounded), so the caller sees its effect.
            let deadline = Instant::now() + Duration::from_secs(30);
            let built = loop {
                let now = g.metrics().snapshot;
                if now.as_ref().map(|l| l.index) >= applied || Instant::now() > deadline {
                    break now;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let index = built.map(|l| l.index).unwrap_or(0);
            // Compact now rather than when a purge batch fills up: that is what was asked.
            let purge_upto = index.saturating_sub(self.config.raft.keep_after_snapshot);
            if purge_upto > 0 {
                g.raft
                    .trigger()
                    .purge_log(purge_upto)
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
            }
            lines.push(format!(
                "{}: snapshot at index {index}, log purged up to {purge_upto}",
                g.id
            ));
        }
        Ok(action(lines))
    }
}
