//! A graceful stop (SIGTERM / ctrl-c): before the node stops, it stops claiming runs, hands
//! the leadership of every group it leads to a caught-up peer, and lets the callbacks it
//! has in flight finish and their outcomes commit (bounded by `firing.drain_ms`). So a
//! rolling restart re-sends nothing and delays nothing: the runs this node claimed fire on
//! their second from here, the rest are claimed by the new leaders.
//!
//! A peer's leader balancer may hand a group back meanwhile (this node is its preferred
//! leader, alive and caught up). Refusing that transfer would leave the group without a
//! leader until an election (openraft's leader steps down as it asks), so the node accepts
//! it and hands the group over again, until it leads nothing and has nothing in flight.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::admin::balance::HandOver;
use crate::callback::InFlight;
use crate::command::Groups;
use crate::ids::NodeId;
use crate::skew::SkewGuard;

const POLL: Duration = Duration::from_millis(50);

/// Whether this node is draining: its timers claim nothing new meanwhile.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Drains this node; returns when it holds nothing that another node would have to redo
/// (it leads no group and has no call in flight), or after `within`.
pub async fn drain(
    node_id: NodeId,
    groups: &Groups,
    in_flight: &InFlight,
    draining: &Draining,
    skew: &SkewGuard,
    alive_within: Duration,
    within: Duration,
) {
    draining.start();
    let deadline = Instant::now() + within;
    let mut hand_over = HandOver::default();
    let may_succeed = |p| skew.may_succeed(p);
    loop {
        let leading = hand_over
            .round(node_id, groups, alive_within, &may_succeed)
            .await;
        if (leading == 0 && in_flight.is_empty()) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let still_leading = groups.iter().filter(|g| g.is_led_by(node_id)).count();
    tracing::info!(
        groups_handed_over = hand_over.asked(),
        still_leading,
        runs_unfinished = in_flight.len(),
        "drained"
    );
}
