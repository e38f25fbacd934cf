//! Membership changes of one group, run on its leader.

use std::collections::BTreeSet;

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;

use crate::command::{Group, SchedulerLog};
use crate::ids::{NodeId, NodeInfo};
use crate::raft::types::TypeConfig;

/// Why a membership change did not happen.
#[derive(Debug)]
pub enum MembershipError {
    /// This node stopped leading the group meanwhile: retry on the new leader.
    LeaderMoved(String),
    /// The change itself is refused (e.g. removing the last voter).
    Refused(String),
}

type WriteError = RaftError<TypeConfig<SchedulerLog>, ClientWriteError<TypeConfig<SchedulerLog>>>;

fn failed(group: &Group, what: &str, e: WriteError) -> MembershipError {
    let message = format!("{}: {what}: {e}", group.id);
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_))
        | RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => {
            MembershipError::LeaderMoved(message)
        }
        _ => MembershipError::Refused(message),
    }
}

/// Adds `id` to `group`: first as a learner (waiting until it has caught up), then as a voter.
pub async fn add_node(
    group: &Group,
    id: NodeId,
    info: NodeInfo,
) -> Result<String, MembershipError> {
    let m = group.metrics();
    if m.membership_config
        .membership()
        .voter_ids()
        .any(|v| v == id)
    {
        return Ok(format!("{}: node {id} is already a voter", group.id));
    }
    group
        .raft
        .add_learner(id, info, true)
        .await
        .map_err(|e| failed(group, &format!("adding node {id} as learner"), e))?;
    group
        .raft
        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
        .await
        .map_err(|e| failed(group, &format!("promoting node {id} to voter"), e))?;
    Ok(format!("{}: node {id} added as voter", group.id))
}

/// Removes `id` from `group`'s voters and nodes.
pub async fn remove_node(group: &Group, id: NodeId) -> Result<String, MembershipError> {
    let m = group.metrics();
    let membership = m.membership_config.membership();
    let is_voter = membership.voter_ids().any(|v| v == id);
    let is_learner = membership.learner_ids().any(|v| v == id);
    if !is_voter && !is_learner {
        return Ok(format!("{}: node {id} is not a member", group.id));
    }
    let change = if is_voter {
        if membership.voter_ids().count() <= 1 {
            return Err(MembershipError::Refused(format!(
                "{}: node {id} is the last voter",
                group.id
            )));
        }
        ChangeMembers::RemoveVoters(BTreeSet::from([id]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
    };
    group
        .raft
        .change_membership(change, false)
        .await
        .map_err(|e| failed(group, &format!("removing node {id}"), e))?;
    Ok(format!("{}: node {id} removed", group.id))
}
