//! The cron refill worker: on every shard this node leads, when some cron's materialised
//! runs end soon, propose a `RefillCrons` stamped with this leader's clock. Apply does the
//! work deterministically; a new leader simply carries on, so failover skips no run.

use std::sync::Arc;
use std::time::Duration;

use super::Round;
use crate::command::{Command, Group, Groups, ShardCommand};
use crate::ids::NodeId;
use crate::shard::cron_runs;

/// How often the worker looks.
pub const PERIOD: Duration = Duration::from_secs(1);
/// Most crons one proposal refills.
const CRONS_PER_PROPOSAL: usize = 100;

pub struct Refill {
    pub node_id: NodeId,
    pub groups: Arc<Groups>,
}

impl Round for Refill {
    async fn round(&mut self) -> anyhow::Result<bool> {
        let (mut led, mut failed) = (false, None);
        for g in self.groups.shards().filter(|g| g.is_led_by(self.node_id)) {
            led = true;
            if let Err(e) = refill_if_due(g).await {
                failed = Some(e.context(g.id.to_string()));
            }
        }
        failed.map_or(Ok(led), Err)
    }
}

async fn refill_if_due(g: &Group) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp();
    let due = g
        .read_applied(move |r| cron_runs::refill_due(r, now))
        .await?;
    if due {
        let cmd = ShardCommand::RefillCrons {
            now,
            limit: CRONS_PER_PROPOSAL,
        };
        g.write(Command::Shard(cmd)).await?;
    }
    Ok(())
}
