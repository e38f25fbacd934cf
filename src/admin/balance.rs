//! Keeps group leaders spread over the voters, since a shard's leader does its firing.
//!
//! Each group has a preferred leader: its voters in id order, picked round-robin by group
//! id. Every node periodically looks at the groups it leads and hands each one whose
//! preferred leader is another node that is alive (acked a recent heartbeat) and caught
//! up. So leaders spread on start and move back when a node returns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::Instant as _;

use crate::command::{Group, Groups};
use crate::ids::{GroupId, NodeId};
use crate::skew::SkewGuard;
use crate::workers::Round;

/// How often the balancer looks.
pub const PERIOD: Duration = Duration::from_secs(1);
/// Least time between two transfers of one group.
const COOLDOWN: Duration = Duration::from_secs(10);
/// Most entries the preferred leader may be behind to be handed the group.
const MAX_LAG: u64 = 64;

/// The preferred leader of `group` among `voters`.
pub fn preferred_leader(group: GroupId, voters: &[NodeId]) -> Option<NodeId> {
    let mut sorted = voters.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[(group.0 % sorted.len() as u64) as usize])
}

/// The balancer of one node: hands the groups it leads to their preferred leaders.
pub struct Balancer {
    pub node_id: NodeId,
    pub groups: Arc<Groups>,
    /// A peer that acked a heartbeat this recently is alive.
    pub alive_within: Duration,
    /// Leadership goes only to peers whose clock agrees with ours.
    pub skew: Arc<SkewGuard>,
    last_transfer: HashMap<GroupId, Instant>,
}

impl Balancer {
    pub fn new(
        node_id: NodeId,
        groups: Arc<Groups>,
        alive_within: Duration,
        skew: Arc<SkewGuard>,
    ) -> Self {
        Balancer {
            node_id,
            groups,
            alive_within,
            skew,
            last_transfer: HashMap::new(),
        }
    }
}

impl Round for Balancer {
    async fn round(&mut self) -> anyhow::Result<bool> {
        let mut moved = false;
        let skew = self.skew.clone();
        let may_succeed = move |p| skew.may_succeed(p);
        for g in self.groups.iter() {
            if self
                .last_transfer
                .get(&g.id)
                .is_some_and(|t| t.elapsed() < COOLDOWN)
            {
                continue;
            }
            if let Some(to) = transfer_target(self.node_id, g, self.alive_within, &may_succeed) {
                tracing::info!(group = %g.id, to, "moving leadership to the preferred leader");
                if let Err(e) = g.raft.trigger().transfer_leader(to).await {
                    tracing::warn!(group = %g.id, "leader transfer: {e}");
                }
                self.last_transfer.insert(g.id, Instant::now());
                moved = true;
            }
        }
        Ok(moved)
    }
}

/// The node `g` should move to, if this node leads it and the preferred one is ready.
fn transfer_target(
    node_id: NodeId,
    g: &Group,
    alive_within: Duration,
    may_succeed: &(dyn Fn(NodeId) -> bool + Sync),
) -> Option<NodeId> {
    let m = g.metrics();
    let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
    let to = preferred_leader(g.id, &voters)?;
    (may_succeed(to) && ready_successors(node_id, g, alive_within).contains(&to)).then_some(to)
}

/// Hands every group this node leads to a ready successor, asking again for a group
/// still led after [`ASK_AGAIN`] (used by a graceful stop and by a node that stops
/// trusting its clock).
#[derive(Default)]
pub struct HandOver {
    asked: HashMap<GroupId, Instant>,
}

/// How long a hand-over may take before it is asked again.
const ASK_AGAIN: Duration = Duration::from_secs(1);

impl HandOver {
    /// One round: asks for each group led here; returns how many this node still leads.
    pub async fn round(
        &mut self,
        node_id: NodeId,
        groups: &Groups,
        alive_within: Duration,
        may_succeed: &(dyn Fn(NodeId) -> bool + Sync),
    ) -> usize {
        let mut leading = 0;
        for g in groups.iter().filter(|g| g.is_led_by(node_id)) {
            leading += 1;
            if self
                .asked
                .get(&g.id)
                .is_some_and(|t| t.elapsed() < ASK_AGAIN)
            {
                continue;
            }
            let successors = ready_successors(node_id, g, alive_within);
            if let Some(to) = successors.into_iter().find(|p| may_succeed(*p)) {
                match g.raft.trigger().transfer_leader(to).await {
                    Ok(()) => {
                        self.asked.insert(g.id, Instant::now());
                    }
                    Err(e) => tracing::warn!(group = %g.id, to, "hand-over: {e}"),
                }
            }
        }
        leading
    }

    /// Groups asked for at least once.
    pub fn asked(&self) -> usize {
        self.asked.len()
    }
}

/// The voters that could lead `g` after this node, its leader, most caught up first:
/// alive (acked a heartbeat within `alive_within`) and at most [`MAX_LAG`] entries behind.
/// Empty when this node does not lead `g`.
pub fn ready_successors(node_id: NodeId, g: &Group, alive_within: Duration) -> Vec<NodeId> {
    let m = g.metrics();
    if m.current_leader != Some(node_id) || m.state != openraft::ServerState::Leader {
        return vec![];
    }
    let last = m.last_log_index.unwrap_or(0);
    let mut ready: Vec<(u64, NodeId)> = m
        .membership_config
        .membership()
        .voter_ids()
        .filter(|v| *v != node_id)
        .filter(|v| {
            m.heartbeat
                .as_ref()
                .and_then(|h| h.get(v).cloned().flatten())
                .is_some_and(|acked| acked.elapsed() < alive_within)
        })
        .map(|v| {
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&v).cloned().flatten())
                .map(|l| l.index)
                .unwrap_or(0);
            (last.saturating_sub(matched), v)
        })
        .filter(|(behind, _)| *behind <= MAX_LAG)
        .collect();
    ready.sort_unstable();
    ready.into_iter().map(|(_, v)| v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_leaders_spread_evenly() {
        let voters = [3, 1, 2];
        let mut per_node = HashMap::new();
        for g in GroupId::all(8) {
            *per_node
                .entry(preferred_leader(g, &voters).unwrap())
                .or_insert(0) += 1;
        }
        assert_eq!(per_node, HashMap::from([(1, 3), (2, 3), (3, 3)]));
        assert_eq!(preferred_leader(GroupId::META, &voters), Some(1));
        assert_eq!(preferred_leader(GroupId::META, &[]), None);
    }
}
