//! Membership changes of one group, run on its leader.

use std::collections::BTreeSet;

use openraft::ChangeMembers;

use crate::raft::group::Group;
use crate::raft::types::{NodeId, NodeInfo};

/// Adds `id` to `group`: first as a learner (waiting until it has caught up), then as a voter.
pub async fn add_node(group: &Group, id: NodeId, info: NodeInfo) -> Result<String, String> {
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
        .map_err(|e| format!("{}: adding node {id} as learner: {e}", group.id))?;
    group
        .raft
        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
        .await
        .map_err(|e| format!("{}: promoting node {id} to voter: {e}", group.id))?;
    Ok(format!("{}: node {id} added as voter", group.id))
}

/// Removes `id` from `group`'s voters and nodes.
pub async fn remove_node(group: &Group, id: NodeId) -> Result<String, String> {
    let m = group.metrics();
    let membership = m.membership_config.membership();
    let is_voter = membership.voter_ids().any(|v| v == id);
    let is_learner = membership.learner_ids().any(|v| v == id);
    if !is_voter && !is_learner {
        return Ok(format!("{}: node {id} is not a member", group.id));
    }
    if is_voter {
        let voters = membership.voter_ids().count();
        if voters <= 1 {
            return Err(format!("{}: node {id} is the last voter", group.id));
        }
        group
            .raft
            .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
            .await
            .map_err(|e| format!("{}: removing voter {id}: {e}", group.id))?;
    } else {
        group
            .raft
            .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
            .await
            .map_err(|e| format!("{}: removing learner {id}: {e}", group.id))?;
    }
    Ok(format!("{}: node {id} removed", group.id))
}
