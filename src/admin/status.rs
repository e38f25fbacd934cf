//! A group's Raft state as the admin service reports it.

use openraft::ServerState;

use crate::command::Group;
use crate::ids::NodeId;
use crate::proto::admin::admin_client::AdminClient;
use crate::proto::admin::{GroupStatus, Member, PeerLag, StatusReply, StatusRequest};
use crate::raft::peers::Peers;

pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "Leader",
        ServerState::Follower => "Follower",
        ServerState::Candidate => "Candidate",
        ServerState::Learner => "Learner",
        ServerState::Shutdown => "Shutdown",
    }
}

/// What this node knows of `group` right now.
pub fn group_status(group: &Group) -> GroupStatus {
    let m = group.metrics();
    let last_log = m.last_log_index.unwrap_or(0);
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let learners: Vec<u64> = membership.learner_ids().collect();
    let lag = m
        .replication
        .as_ref()
        .map(|r| {
            r.iter()
                .map(|(id, matched)| {
                    let matched_index = matched.as_ref().map(|l| l.index).unwrap_or(0);
                    PeerLag {
                        node_id: *id,
                        matched_index,
                        behind: last_log.saturating_sub(matched_index),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    GroupStatus {
        group_id: group.id.0,
        name: group.id.to_string(),
        role: role_name(m.state).to_string(),
        leader: m.current_leader.unwrap_or(0),
        term: m.current_term,
        last_log_index: last_log,
        applied_index: m.last_applied.as_ref().map(|l| l.index).unwrap_or(0),
        snapshot_index: m.snapshot.as_ref().map(|l| l.index).unwrap_or(0),
        purged_index: m.purged.as_ref().map(|l| l.index).unwrap_or(0),
        voters,
        learners,
        lag,
    }
}

/// Every node in `group`'s membership with its addresses.
pub fn members(group: &Group) -> Vec<Member> {
    let m = group.metrics();
    m.membership_config
        .membership()
        .nodes()
        .map(|(id, info)| Member {
            node_id: *id,
            grpc_addr: info.grpc_addr.clone(),
            http_addr: info.http_addr.clone(),
        })
        .collect()
}

/// The status of the node whose admin service listens at `addr`, if it answers within a
/// second (a node starting up asks its peers before it takes part).
pub async fn of_peer(peers: &Peers, id: NodeId, addr: &str) -> Option<StatusReply> {
    let ask = async {
        let mut client = AdminClient::new(peers.channel(id, addr).ok()?);
        Some(client.status(StatusRequest {}).await.ok()?.into_inner())
    };
    tokio::time::timeout(std::time::Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
}
