//! Routes a client's write or read to the leader of the group that owns the data.
//!
//! The gateway of any node calls [`Router::write`] / [`Router::read`]. If this node leads
//! the group, the request runs here ([`local`]); otherwise it is forwarded over gRPC to the
//! node this node believes is leader, which runs it locally or answers "not leader, try X".
//! Retries stop at a deadline; the client never sees a redirect.

pub mod local;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResult, Query, QueryResult};
use crate::raft::group::Groups;
use crate::raft::peers::Peers;
use crate::raft::types::{GroupId, NodeId, NodeInfo};
use crate::store::{decode, encode};

/// How long a request may spend finding its leader (elections take a few seconds).
const ROUTE_DEADLINE: Duration = Duration::from_secs(10);
/// Pause before retrying while a group has no known leader.
const NO_LEADER_PAUSE: Duration = Duration::from_millis(100);
/// Most time one forwarded call may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// A request forwarded to a group's leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Forwarded {
    Write(Command),
    Read(Query),
}

/// What a forwarded request answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardedReply {
    Write(CommandResult),
    Read(QueryResult),
}

/// Why a request could not be served.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum RouteError {
    /// This node does not lead the group; the leader is named when known.
    #[error("not the leader of the group (leader: {leader:?})")]
    NotLeader { leader: Option<(NodeId, NodeInfo)> },
    /// No leader could serve it in time (election, lost quorum, unreachable nodes).
    #[error("{0}")]
    Unavailable(String),
    /// The write may or may not have committed (its leader changed under it).
    #[error("{0}")]
    Indeterminate(String),
    /// A bug or a storage failure.
    #[error("{0}")]
    Internal(String),
}

/// Sends requests to group leaders.
#[derive(Clone)]
pub struct Router {
    node_id: NodeId,
    groups: Arc<Groups>,
    peers: Arc<Peers>,
}

impl Router {
    pub fn new(node_id: NodeId, groups: Arc<Groups>, peers: Arc<Peers>) -> Self {
        Router {
            node_id,
            groups,
            peers,
        }
    }

    pub fn groups(&self) -> &Arc<Groups> {
        &self.groups
    }

    /// Proposes `cmd` to `group` and returns what applying it answered.
    pub async fn write(&self, group: GroupId, cmd: Command) -> Result<CommandResult, RouteError> {
        match self.route(group, Forwarded::Write(cmd)).await? {
            ForwardedReply::Write(r) => Ok(r),
            ForwardedReply::Read(_) => Err(RouteError::Internal("read reply to a write".into())),
        }
    }

    /// Answers `query` from `group`'s leader, linearizably.
    pub async fn read(&self, group: GroupId, query: Query) -> Result<QueryResult, RouteError> {
        match self.route(group, Forwarded::Read(query)).await? {
            ForwardedReply::Read(r) => Ok(r),
            ForwardedReply::Write(_) => Err(RouteError::Internal("write reply to a read".into())),
        }
    }

    async fn route(&self, group_id: GroupId, req: Forwarded) -> Result<ForwardedReply, RouteError> {
        let group = self
            .groups
            .get(group_id)
            .ok_or_else(|| RouteError::Internal(format!("no group {group_id} on this node")))?;
        let deadline = Instant::now() + ROUTE_DEADLINE;
        // Whom to ask next: start with whoever this node believes leads.
        let mut target = local::known_leader(group);
        let mut last_err = RouteError::Unavailable(format!("{group_id} has no leader"));
        while Instant::now() < deadline {
            let attempt = match &target {
                Some((id, _)) if *id == self.node_id => local::execute(group, req.clone()).await,
                Some((id, node)) => self.forward(group_id, *id, node, &req).await,
                None => Err(RouteError::NotLeader { leader: None }),
            };
            match attempt {
                Ok(reply) => return Ok(reply),
                Err(RouteError::NotLeader { leader }) => {
                    if leader.is_none() || leader == target {
                        tokio::time::sleep(NO_LEADER_PAUSE).await;
                        target = local::known_leader(group);
                    } else {
                        target = leader;
                    }
                    last_err =
                        RouteError::Unavailable(format!("{group_id} has no reachable leader"));
                }
                Err(RouteError::Unavailable(msg)) => {
                    tokio::time::sleep(NO_LEADER_PAUSE).await;
                    target = local::known_leader(group);
                    last_err = RouteError::Unavailable(msg);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err)
    }

    async fn forward(
        &self,
        group: GroupId,
        target: NodeId,
        node: &NodeInfo,
        req: &Forwarded,
    ) -> Result<ForwardedReply, RouteError> {
        let payload = encode(req).map_err(|e| RouteError::Internal(e.to_string()))?;
        let mut client = self
            .peers
            .client(target, &node.grpc_addr)
            .map_err(|e| RouteError::Unavailable(e.to_string()))?;
        let envelope = self.peers.envelope(group, target, payload);
        // A write that may have reached the leader must not be retried blindly: it could
        // apply twice. Only failures that prove it was never delivered are retryable.
        let maybe_delivered = |what: String| match req {
            Forwarded::Write(_) => RouteError::Indeterminate(format!(
                "{what}; the write may or may not have been applied"
            )),
            Forwarded::Read(_) => RouteError::Unavailable(what),
        };
        let reply = tokio::time::timeout(FORWARD_TIMEOUT, client.forward(envelope))
            .await
            .map_err(|_| maybe_delivered(format!("forward to node {target} timed out")))?
            .map_err(|s| {
                let what = format!("forward to node {target}: {}", s.message());
                if never_delivered(&s) {
                    RouteError::Unavailable(what)
                } else {
                    maybe_delivered(what)
                }
            })?;
        let result: Result<ForwardedReply, RouteError> =
            decode(&reply.into_inner().payload).map_err(|e| RouteError::Internal(e.to_string()))?;
        result
    }
}

/// Whether a failed forward certainly never ran on the target: it could not connect, or
/// the target refused the envelope before looking at the request.
fn never_delivered(s: &tonic::Status) -> bool {
    use tonic::Code;
    match s.code() {
        Code::FailedPrecondition | Code::NotFound | Code::InvalidArgument => true,
        Code::Unavailable => s.message().contains("connect"),
        _ => false,
    }
}
