//! Routes a client's write or read to the leader of the group that owns the data.
//!
//! The gateway of any node calls [`Router::write`] / [`Router::read`] (or the typed calls
//! of [`calls`]). If this node leads the group, the request runs here
//! ([`Group::write`] / [`Group::read`]); otherwise it is forwarded over gRPC to the node
//! this node believes is leader, whose router runs it there ([`ForwardHandler`]) or
//! answers "not leader, try X". Retries stop at a deadline; the client never sees a
//! redirect.

pub mod app_cache;
pub mod calls;
pub mod coalesce;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use calls::CallError;

use crate::command::{Command, CommandResult, Group, Groups, Query, QueryResult, SchedulerLog};
use crate::ids::{GroupId, NodeId, NodeInfo};
use crate::raft::peers::Peers;
use crate::raft::service::ForwardHandler;
pub use crate::raft::GroupError;
use crate::store::codec::Codec;
use crate::store::decode;

/// How long a request may spend finding its leader (elections take a few seconds).
const ROUTE_DEADLINE: Duration = Duration::from_secs(10);
/// Pause before retrying while a group has no known leader.
const NO_LEADER_PAUSE: Duration = Duration::from_millis(100);
/// Most time one forwarded call may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// A request routed to a group's leader (run there, or forwarded to it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Shared: a retry or the proposal itself takes it without a copy (the wire form is the
    /// command's own).
    Write(Arc<Command>),
    Read(Query),
}

/// What a routed request answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Answer {
    Write(CommandResult),
    Read(QueryResult),
}

/// Sends requests to group leaders.
#[derive(Clone)]
pub struct Router {
    node_id: NodeId,
    groups: Arc<Groups>,
    peers: Arc<Peers>,
    creates: Arc<coalesce::CreateQueues>,
    apps: Arc<app_cache::AppCache>,
}

impl Router {
    /// `create_linger`: see `raft.create_linger_us` ([`coalesce`]).
    pub fn new(
        node_id: NodeId,
        groups: Arc<Groups>,
        peers: Arc<Peers>,
        create_linger: Duration,
    ) -> Self {
        Router {
            node_id,
            groups,
            peers,
            creates: Arc::new(coalesce::CreateQueues::new(create_linger)),
            apps: Arc::default(),
        }
    }

    pub fn groups(&self) -> &Arc<Groups> {
        &self.groups
    }

    /// This node's connections to its peers.
    pub fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    /// Proposes `cmd` to `group` and returns what applying it answered.
    pub async fn write(&self, group: GroupId, cmd: Command) -> Result<CommandResult, GroupError> {
        match self.route(group, Request::Write(Arc::new(cmd))).await? {
            Answer::Write(r) => Ok(r),
            Answer::Read(_) => Err(GroupError::Internal("read reply to a write".into())),
        }
    }

    /// Answers `query` from `group`'s leader, linearizably.
    pub async fn read(&self, group: GroupId, query: Query) -> Result<QueryResult, GroupError> {
        match self.route(group, Request::Read(query)).await? {
            Answer::Read(r) => Ok(r),
            Answer::Write(_) => Err(GroupError::Internal("write reply to a read".into())),
        }
    }

    async fn route(&self, group_id: GroupId, req: Request) -> Result<Answer, GroupError> {
        // A write whose repeat is harmless is retried when its fate is unknown, like a
        // read: the client gets its answer instead of "may or may not have been applied".
        let repeatable = match &req {
            Request::Write(cmd) => cmd.repeatable(),
            Request::Read(_) => true,
        };
        let retry_unknown = |r: Result<Answer, GroupError>| match r {
            Err(GroupError::Indeterminate(m)) if repeatable => Err(GroupError::Unavailable(m)),
            other => other,
        };
        self.on_leader(
            group_id,
            ROUTE_DEADLINE,
            |g| {
                let req = req.clone();
                async move { retry_unknown(run_here(g, req).await) }
            },
            |id, node| {
                let req = &req;
                async move { retry_unknown(self.forward(group_id, id, &node, req).await) }
            },
        )
        .await
    }

    /// Runs an operation on `group_id`'s leader until `within` passes: `here` when this
    /// node leads, `there` (a forward) when another does. "Not the leader" follows the
    /// leader named, or waits for one; "unavailable" waits and asks again; anything else
    /// ends it. The one way to reach a leader, for client requests and admin operations.
    pub async fn on_leader<'a, T, Here, There>(
        &'a self,
        group_id: GroupId,
        within: Duration,
        here: impl Fn(&'a Group) -> Here,
        there: impl Fn(NodeId, NodeInfo) -> There,
    ) -> Result<T, GroupError>
    where
        Here: Future<Output = Result<T, GroupError>>,
        There: Future<Output = Result<T, GroupError>>,
    {
        let group = self
            .groups
            .get(group_id)
            .ok_or_else(|| GroupError::Internal(format!("no group {group_id} on this node")))?;
        let deadline = Instant::now() + within;
        // Whom to ask next: start with whoever this node believes leads.
        let mut target = group.known_leader();
        let mut last_err = GroupError::Unavailable(format!("{group_id} has no leader"));
        while Instant::now() < deadline {
            let attempt = match &target {
                Some((id, _)) if *id == self.node_id => here(group).await,
                Some((id, node)) => there(*id, node.clone()).await,
                None => Err(GroupError::NotLeader { leader: None }),
            };
            match attempt {
                Ok(reply) => return Ok(reply),
                Err(GroupError::NotLeader { leader }) => {
                    if leader.is_none() || leader == target {
                        tokio::time::sleep(NO_LEADER_PAUSE).await;
                        target = group.known_leader();
                    } else {
                        target = leader;
                    }
                    last_err =
                        GroupError::Unavailable(format!("{group_id} has no reachable leader"));
                }
                Err(GroupError::Unavailable(msg)) => {
                    tokio::time::sleep(NO_LEADER_PAUSE).await;
                    target = group.known_leader();
                    last_err = GroupError::Unavailable(msg);
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
        req: &Request,
    ) -> Result<Answer, GroupError> {
        let payload = self.peers.encode(req)?;
        let mut client = self
            .peers
            .client(target, &node.grpc_addr)
            .map_err(|e| GroupError::Unavailable(e.to_string()))?;
        let envelope = self.peers.envelope(group, target, payload);
        // A write that may have reached the leader must not be retried blindly: it could
        // apply twice. Only failures that prove it was never delivered are retryable.
        let maybe_delivered = |what: String| match req {
            Request::Write(_) => GroupError::Indeterminate(format!(
                "{what}; the write may or may not have been applied"
            )),
            Request::Read(_) => GroupError::Unavailable(what),
        };
        let reply = tokio::time::timeout(FORWARD_TIMEOUT, client.forward(envelope))
            .await
            .map_err(|_| maybe_delivered(format!("forward to node {target} timed out")))?
            .map_err(|s| {
                let what = format!("forward to node {target}: {}", s.message());
                if never_delivered(&s) {
                    GroupError::Unavailable(what)
                } else {
                    maybe_delivered(what)
                }
            })?;
        // An answer from a node that lost its data is not trusted (it never applied this).
        let payload = self
            .peers
            .payload_of(target, reply.into_inner())
            .map_err(GroupError::Unavailable)?;
        let result: Result<Answer, GroupError> = decode(&payload)?;
        result
    }
}

/// Runs `req` on `group`, which this node must lead: a write is proposed and applied; a
/// read waits until this leader has applied everything committed when it was asked.
async fn run_here(group: &Group, req: Request) -> Result<Answer, GroupError> {
    match req {
        Request::Write(cmd) => group.write(cmd).await.map(Answer::Write),
        Request::Read(query) => {
            let kind = group.id;
            let answer = group
                .read(move |r| match query {
                    Query::Meta(q) if !kind.is_shard() => crate::meta::logic::query(r, &q),
                    Query::Shard(q) if kind.is_shard() => crate::shard::query::query(r, &q),
                    other => Err(std::io::Error::other(format!(
                        "query {other:?} is not for {kind}"
                    ))),
                })
                .await?;
            Ok(Answer::Read(answer))
        }
    }
}

/// The leader side of a forward: another node's router sent `payload` to a group here.
impl ForwardHandler<SchedulerLog> for Router {
    fn serve<'a>(&'a self, group: &'a Group, payload: &'a [u8]) -> BoxFuture<'a, Vec<u8>> {
        Box::pin(async move {
            let answer = match decode::<Request>(payload) {
                Ok(req) => run_here(group, req).await,
                Err(e) => Err(GroupError::Internal(format!("undecodable request: {e}"))),
            };
            // In the request's encoding: a sender of an older build reads only JSON.
            Codec::of(payload).encode(&answer).unwrap_or_default()
        })
    }
}

/// Whether a failed forward certainly never ran on the target, judged by where it failed,
/// never by the message: the target's transport refused the envelope before reading the
/// request, or this node could not connect at all. Anything else (a reset, a timeout, a
/// stream error after the request left) may have run.
fn never_delivered(s: &tonic::Status) -> bool {
    use tonic::Code;
    match s.code() {
        Code::FailedPrecondition
        | Code::NotFound
        | Code::InvalidArgument
        | Code::PermissionDenied => true,
        _ => failed_to_connect(s),
    }
}

/// Whether `e` or an error under it is a failure to connect (tonic's `ConnectError`).
fn failed_to_connect(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if err.is::<tonic::ConnectError>() {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::raft::raft_transport_client::RaftTransportClient;
    use crate::proto::raft::Envelope;

    #[tokio::test]
    async fn only_a_failure_to_connect_proves_a_forward_was_never_delivered() {
        // A port nobody listens on: the call fails while connecting.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect_lazy();
        let refused = RaftTransportClient::new(channel)
            .forward(Envelope::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(never_delivered(&refused), "{refused:?}");

        // The same code and even the word "connect" without a connect failure under it
        // (a reset after the request left) may have been delivered.
        let reset = tonic::Status::unavailable("connection reset by peer while connected");
        assert!(!never_delivered(&reset));
        assert!(!never_delivered(&tonic::Status::unknown(
            "h2 protocol error"
        )));
        assert!(!never_delivered(&tonic::Status::cancelled(
            "timeout expired"
        )));
        // Refusals by the target's transport, before it reads the request.
        assert!(never_delivered(&tonic::Status::failed_precondition(
            "wrong cluster"
        )));
        assert!(never_delivered(&tonic::Status::not_found("no group 9")));
    }
}
