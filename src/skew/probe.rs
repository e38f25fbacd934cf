//! The clock-probe worker: twice a second it asks every voter for its wall clock, judges
//! this node's own clock from the answers, and acts on the verdict. A node that does not
//! trust its clock stops standing for election in every group and hands over the groups it
//! leads (its timers claim nothing meanwhile); trust regained, it stands again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::SkewGuard;
use crate::admin::balance::HandOver;
use crate::command::Groups;
use crate::ids::{NodeId, NodeInfo};
use crate::metrics::METRICS;
use crate::proto::raft::ClockProbe;
use crate::raft::peers::Peers;
use crate::schedule::time::now_ms;
use crate::workers::Round;

/// How often the clocks are probed.
pub const PERIOD: Duration = Duration::from_millis(500);
/// A probe not answered within this is no measurement. A slow answer still tells a large
/// offset (the verdict allows for half its round trip).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Probe {
    pub node_id: NodeId,
    pub guard: Arc<SkewGuard>,
    pub peers: Arc<Peers>,
    pub groups: Arc<Groups>,
    pub alive_within: Duration,
    /// Whether the groups currently stand for election (None: not set yet).
    electing: Option<bool>,
    hand_over: HandOver,
}

impl Probe {
    pub fn new(
        node_id: NodeId,
        guard: Arc<SkewGuard>,
        peers: Arc<Peers>,
        groups: Arc<Groups>,
        alive_within: Duration,
    ) -> Self {
        Probe {
            node_id,
            guard,
            peers,
            groups,
            alive_within,
            electing: None,
            hand_over: HandOver::default(),
        }
    }

    /// The voters of the cluster (the meta group's), with their addresses.
    fn voters(&self) -> Vec<(NodeId, NodeInfo)> {
        let m = self.groups.meta().metrics();
        let membership = m.membership_config.membership();
        membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone())))
            .collect()
    }

    /// Measures one peer's clock (nothing recorded when it does not answer in time).
    async fn measure(&self, peer: NodeId, info: &NodeInfo) {
        let Ok(mut client) = self.peers.client(peer, &info.grpc_addr) else {
            return;
        };
        let probe = ClockProbe {
            cluster_id: self.peers.cluster_id().to_string(),
            from_node: self.node_id,
        };
        let (sent_wall, sent) = (now_ms() as i64, Instant::now());
        match tokio::time::timeout(PROBE_TIMEOUT, client.clock(probe)).await {
            Ok(Ok(reading)) => {
                let reading = reading.into_inner();
                if reading.node_id == peer {
                    self.guard
                        .record(peer, sent_wall, sent, reading.wall_us / 1000);
                }
            }
            Ok(Err(e)) => tracing::debug!(peer, "clock probe: {e}"),
            Err(_) => tracing::debug!(peer, "clock probe timed out"),
        }
    }
}

impl Round for Probe {
    async fn round(&mut self) -> anyhow::Result<bool> {
        let voters = self.voters();
        join_all(
            voters
                .iter()
                .filter(|(id, _)| *id != self.node_id)
                .map(|(id, info)| self.measure(*id, info)),
        )
        .await;
        let ids: Vec<NodeId> = voters.iter().map(|(id, _)| *id).collect();
        let (trusted, why, changed) = self.guard.judge(&ids);
        for p in self.guard.peers() {
            METRICS
                .clock_offset
                .with_label_values(&[&p.node_id.to_string()])
                .set(p.offset_ms);
        }
        METRICS.clock_trusted.set(i64::from(trusted));
        if changed {
            if trusted {
                tracing::info!("clock trusted again: {why}");
            } else {
                tracing::warn!("clock not trusted: {why}; leading nothing, claiming nothing");
            }
        }
        if self.electing != Some(trusted) {
            for g in self.groups.iter() {
                g.raft.runtime_config().elect(trusted);
            }
            self.electing = Some(trusted);
        }
        if trusted {
            return Ok(false);
        }
        let any = |_| true;
        let leading = self
            .hand_over
            .round(self.node_id, &self.groups, self.alive_within, &any)
            .await;
        Ok(leading > 0)
    }
}
