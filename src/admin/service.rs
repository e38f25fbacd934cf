//! The gRPC admin service. Group operations that need the leader (leader transfer,
//! membership) run on it: the node asked forwards a one-group request to the leader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};

use super::membership::{self, MembershipError};
use super::status;
use crate::auth::{admin_client, AdminClient, AdminToken};
use crate::command::{Group, Groups};
use crate::config::Config;
use crate::ids::{GroupId, NodeId, NodeInfo};
use crate::proto::admin::admin_server::Admin;
use crate::proto::admin::{
    ActionReply, AddNodeRequest, RemoveNodeRequest, SnapshotRequest, StatusReply, StatusRequest,
    TransferLeaderRequest,
};
use crate::raft::peers::Peers;
use crate::router::{GroupError, Router};
use crate::skew::SkewGuard;
use crate::workers::Workers;

/// How long a membership change keeps retrying a group that is between leaders.
const OP_RETRY: Duration = Duration::from_secs(15);
/// How long a leader transfer may take before it is reported as not done.
const TRANSFER_WAIT: Duration = Duration::from_secs(10);
/// A transfer not taken by then (and this node still leads) is asked for again.
const TRANSFER_ASK_AGAIN: Duration = Duration::from_secs(2);

/// A membership change, run on a group's leader.
enum MembershipOp {
    Add(NodeId, NodeInfo),
    Remove(NodeId),
}

pub struct AdminService {
    config: Arc<Config>,
    /// Operations that change the cluster need it; `status` is open.
    token: AdminToken,
    router: Router,
    peers: Arc<Peers>,
    workers: Arc<Workers>,
    skew: Arc<SkewGuard>,
}

impl AdminService {
    pub fn new(
        config: Arc<Config>,
        router: Router,
        peers: Arc<Peers>,
        workers: Arc<Workers>,
        skew: Arc<SkewGuard>,
        token: AdminToken,
    ) -> Self {
        AdminService {
            token,
            config,
            router,
            peers,
            workers,
            skew,
        }
    }

    fn groups(&self) -> &Groups {
        self.router.groups()
    }

    /// An admin client on the shared channel to the leader `id`.
    fn admin_client(&self, id: NodeId, node: &NodeInfo) -> Result<AdminClient, GroupError> {
        let channel = self
            .peers
            .channel(id, &node.grpc_addr)
            .map_err(|e| GroupError::Unavailable(format!("node {id} unreachable: {e}")))?;
        Ok(admin_client(channel, &self.token))
    }

    /// The groups a request names: one by id, or all of them.
    fn select(&self, group_id: u64, all: bool) -> Result<Vec<&Group>, Status> {
        if all {
            return Ok(self.groups().iter().collect());
        }
        self.groups()
            .get(GroupId(group_id))
            .map(|g| vec![g])
            .ok_or_else(|| Status::not_found(format!("no group {group_id}")))
    }

    /// Runs `op` on each selected group's leader (here, or forwarded there as a one-group
    /// request) through the router, which retries a group between leaders. Both
    /// operations are idempotent, so a retry after a lost reply is safe.
    async fn on_leaders(
        &self,
        group_id: u64,
        all: bool,
        op: &MembershipOp,
    ) -> Result<Vec<String>, Status> {
        let mut lines = Vec::new();
        for g in self.select(group_id, all)? {
            let there = |leader: NodeId, node: NodeInfo| async move {
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
                        client.add_node(one).await
                    }
                    MembershipOp::Remove(id) => {
                        let one = RemoveNodeRequest {
                            node_id: *id,
                            group_id: g.id.0,
                            all_groups: false,
                        };
                        client.remove_node(one).await
                    }
                };
                reply.map(|r| r.into_inner().message).map_err(from_status)
            };
            let line = self
                .router
                .on_leader(g.id, OP_RETRY, |g| membership_here(g, op), there)
                .await
                .map_err(to_status)?;
            lines.push(line);
        }
        Ok(lines)
    }

    /// Moves `g`'s leadership to `to` from this node, its leader, and waits (bounded).
    /// openraft's transfer is one message: if `to` cannot take it in time (its log not
    /// flushed within an election timeout on a loaded box), the group elects again and this
    /// node may lead on — then it asks again; if a third node won, the router retries there.
    async fn transfer_here(&self, g: &Group, to: NodeId) -> Result<String, GroupError> {
        let me = self.config.node_id;
        if to == me {
            return Ok(format!("{}: node {to} already leads", g.id));
        }
        let deadline = Instant::now() + TRANSFER_WAIT;
        let mut asked: Option<Instant> = None;
        loop {
            match g.known_leader().map(|(id, _)| id) {
                Some(id) if id == to => return Ok(format!("{}: leader is now node {to}", g.id)),
                Some(id)
                    if id == me && asked.is_none_or(|at| at.elapsed() >= TRANSFER_ASK_AGAIN) =>
                {
                    g.raft
                        .trigger()
                        .transfer_leader(to)
                        .await
                        .map_err(|e| GroupError::Unavailable(e.to_string()))?;
                    asked = Some(Instant::now());
                }
                Some(id) if id == me => {}
                Some(other) => {
                    return Err(GroupError::Unavailable(format!(
                        "node {other} was elected instead of node {to}"
                    )))
                }
                None => {}
            }
            if Instant::now() > deadline {
                return Ok(format!(
                    "{}: transfer to node {to} did not complete in time",
                    g.id
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs `op` on `g`, which this node leads.
async fn membership_here(g: &Group, op: &MembershipOp) -> Result<String, GroupError> {
    let local = match op {
        MembershipOp::Add(id, info) => membership::add_node(g, *id, info.clone()).await,
        MembershipOp::Remove(id) => membership::remove_node(g, *id).await,
    };
    local.map_err(|e| match e {
        // Leadership moved meanwhile: worth a retry on the new leader.
        MembershipError::LeaderMoved(m) => GroupError::Unavailable(m),
        MembershipError::Refused(m) => GroupError::Refused(m),
    })
}

/// A forwarded admin call's failure, as the router's retry loop understands it.
fn from_status(s: Status) -> GroupError {
    match s.code() {
        tonic::Code::Unavailable => GroupError::Unavailable(s.message().to_string()),
        tonic::Code::FailedPrecondition => GroupError::Refused(s.message().to_string()),
        _ => GroupError::Internal(format!("{}: {}", s.code(), s.message())),
    }
}

/// What the operator sees of a failed admin operation.
fn to_status(e: GroupError) -> Status {
    match e {
        GroupError::Refused(m) => Status::failed_precondition(m),
        GroupError::Internal(m) => Status::internal(m),
        other => Status::unavailable(other.to_string()),
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
            groups: self.groups().iter().map(status::group_status).collect(),
            members: status::members(self.groups().meta()),
            workers: self.workers.statuses(),
            clock_trusted: self.skew.trusted(),
            clock_verdict: self.skew.why(),
            clocks: self.skew.peers(),
            admitted: match self.router.nodes_replica().await {
                Ok(nodes) => nodes.into_iter().map(|(id, _)| id).collect(),
                Err(_) => vec![],
            },
        }))
    }

    async fn transfer_leader(
        &self,
        req: Request<TransferLeaderRequest>,
    ) -> Result<Response<ActionReply>, Status> {
        self.token.check(&req)?;
        let req = req.into_inner();
        let to = req.to_node;
        let mut lines = Vec::new();
        if req.all_groups {
            // "All groups" means all groups this node leads.
            for g in self.groups().iter() {
                if g.is_led_by(self.config.node_id) {
                    lines.push(self.transfer_here(g, to).await.map_err(to_status)?);
                }
            }
            return Ok(action(lines));
        }
        let g = self.select(req.group_id, false)?[0];
        let there = |leader: NodeId, node: NodeInfo| async move {
            let one = TransferLeaderRequest {
                group_id: g.id.0,
                all_groups: false,
                to_node: to,
            };
            let reply = self
                .admin_client(leader, &node)?
                .transfer_leader(one)
                .await
                .map_err(from_status)?;
            Ok(format!(
                "(via leader {leader}) {}",
                reply.into_inner().message
            ))
        };
        let line = self
            .router
            .on_leader(g.id, OP_RETRY, |g| self.transfer_here(g, to), there)
            .await
            .map_err(to_status)?;
        lines.push(line);
        Ok(action(lines))
    }

    async fn add_node(
        &self,
        req: Request<AddNodeRequest>,
    ) -> Result<Response<ActionReply>, Status> {
        self.token.check(&req)?;
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
        self.token.check(&req)?;
        let req = req.into_inner();
        let op = MembershipOp::Remove(req.node_id);
        let mut reply = action(self.on_leaders(req.group_id, req.all_groups, &op).await?);
        let message = &mut reply.get_mut().message;
        if req.all_groups {
            // Gone from every group: it may come back with an empty data dir.
            self.router
                .forget_node(req.node_id)
                .await
                .map_err(|e| Status::unavailable(format!("forgetting node: {e}")))?;
            *message += &format!(
                "\nnode {} forgotten: it may rejoin with an empty data dir",
                req.node_id
            );
        }
        Ok(reply)
    }

    async fn snapshot(
        &self,
        req: Request<SnapshotRequest>,
    ) -> Result<Response<ActionReply>, Status> {
        self.token.check(&req)?;
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
