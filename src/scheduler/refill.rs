//! The cron refill worker: on every shard this node leads, when some cron's materialised
//! runs end soon, propose a `RefillCrons` stamped with this leader's clock. Apply does the
//! work deterministically; a new leader simply carries on, so failover skips no run.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::command::Command;
use crate::raft::group::{Group, Groups};
use crate::raft::types::{GroupKind, NodeId};
use crate::router::{local, Forwarded};
use crate::shard::crons;
use crate::store::txn::SmReader;

/// How often the worker looks.
const PERIOD: Duration = Duration::from_secs(1);
/// Most crons one proposal refills.
const CRONS_PER_PROPOSAL: usize = 100;

/// Runs until `stop` turns true.
pub async fn run(node_id: NodeId, groups: Arc<Groups>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PERIOD) => {}
            _ = stop.changed() => return,
        }
        for g in groups
            .iter()
            .filter(|g| matches!(g.id.kind(), GroupKind::Shard(_)))
        {
            if !g.is_led_by(node_id) {
                continue;
            }
            if let Err(e) = refill_if_due(g).await {
                tracing::warn!(group = %g.id, "cron refill: {e}");
            }
        }
    }
}

async fn refill_if_due(g: &Group) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp();
    let sm = g.sm.clone();
    let due = tokio::task::spawn_blocking(move || {
        crons::refill_due(&SmReader::new(sm.db(), sm.group()), now)
    })
    .await??;
    if due {
        let cmd = Command::RefillCrons {
            now,
            limit: CRONS_PER_PROPOSAL,
        };
        local::execute(g, Forwarded::Write(cmd)).await?;
    }
    Ok(())
}
