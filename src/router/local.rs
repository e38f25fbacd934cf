//! Running a routed request on this node, which must lead the group.

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ReadPolicy;

use super::{Forwarded, ForwardedReply, RouteError};
use crate::raft::group::Group;
use crate::raft::types::{NodeId, NodeInfo};

/// The leader of `group` as this node currently sees it, with its address.
pub fn known_leader(group: &Group) -> Option<(NodeId, NodeInfo)> {
    let m = group.metrics();
    let leader = m.current_leader?;
    let node = m.membership_config.membership().get_node(&leader)?.clone();
    Some((leader, node))
}

fn not_leader(leader: Option<NodeId>, node: Option<NodeInfo>) -> RouteError {
    RouteError::NotLeader {
        leader: leader.zip(node),
    }
}

/// Longest a request may run here: a leader cut off from its quorum can neither commit a
/// write nor confirm a read, and must answer rather than hang.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(4);

/// Runs `req` against the local Raft of `group`: a write is proposed and applied; a read
/// waits until this leader has applied everything committed when it was asked.
pub async fn execute(group: &Group, req: Forwarded) -> Result<ForwardedReply, RouteError> {
    let is_write = matches!(req, Forwarded::Write(_));
    match tokio::time::timeout(LOCAL_TIMEOUT, run(group, req)).await {
        Ok(result) => result,
        Err(_) if is_write => Err(RouteError::Indeterminate(format!(
            "{} did not commit the write within {LOCAL_TIMEOUT:?}; it may or may not be applied",
            group.id
        ))),
        Err(_) => Err(RouteError::Unavailable(format!(
            "{} could not confirm its leadership within {LOCAL_TIMEOUT:?}",
            group.id
        ))),
    }
}

async fn run(group: &Group, req: Forwarded) -> Result<ForwardedReply, RouteError> {
    match req {
        Forwarded::Write(cmd) => match group.raft.client_write(cmd).await {
            Ok(resp) => Ok(ForwardedReply::Write(resp.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(not_leader(f.leader_id, f.leader_node))
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
                Err(RouteError::Indeterminate(format!(
                    "the leader of {} changed while writing; the request may or may not have \
                     been applied (leader now: {:?})",
                    group.id, f.leader_id
                )))
            }
            Err(RaftError::APIError(e)) => Err(RouteError::Internal(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(RouteError::Unavailable(format!(
                "{} stopped: {e}",
                group.id
            ))),
        },
        Forwarded::Read(query) => {
            match group.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                Ok(_) => {}
                Err(RaftError::APIError(e)) => {
                    return Err(match e {
                        openraft::error::LinearizableReadError::ForwardToLeader(f) => {
                            not_leader(f.leader_id, f.leader_node)
                        }
                        other => RouteError::Unavailable(other.to_string()),
                    })
                }
                Err(RaftError::Fatal(e)) => {
                    return Err(RouteError::Unavailable(format!(
                        "{} stopped: {e}",
                        group.id
                    )))
                }
            }
            let sm = group.sm.clone();
            let result = tokio::task::spawn_blocking(move || sm.query(&query))
                .await
                .map_err(|e| RouteError::Internal(e.to_string()))?
                .map_err(|e| RouteError::Internal(e.to_string()))?;
            Ok(ForwardedReply::Read(result))
        }
    }
}
