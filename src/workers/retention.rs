//! The retention worker: every minute, on each shard this node leads, propose a bounded
//! `PurgeFinished` with every app's cutoff (now − its `firedScheduleRetentionPeriod`), which
//! also forgets idempotency keys older than their window.

use std::time::Duration;

use super::Round;
use crate::command::{Command, ShardCommand};
use crate::ids::NodeId;
use crate::router::Router;
use crate::schedule::time::now_ms;
use crate::shard::idempotency;

pub const PERIOD: Duration = Duration::from_secs(60);
/// Most index entries one purge looks at.
const PURGE_LIMIT: usize = 2000;

/// Apps whose finished runs one round purges: every app is reached, a page a round.
const APPS_PER_ROUND: usize = 500;

pub struct Retention {
    pub node_id: NodeId,
    pub router: Router,
    /// Where the next round's page of apps starts (None: from the first app).
    pub next_app: Option<String>,
}

impl Round for Retention {
    async fn round(&mut self) -> anyhow::Result<bool> {
        let groups = self.router.groups();
        if !groups.shards().any(|g| g.is_led_by(self.node_id)) {
            return Ok(false);
        }
        let now_ms = now_ms();
        let now = (now_ms / 1000) as i64;
        let apps = self
            .router
            .apps_after_replica(self.next_app.take(), APPS_PER_ROUND)
            .await?;
        if apps.len() == APPS_PER_ROUND {
            self.next_app = apps.last().map(|a| a.app_id.clone());
        }
        let cutoffs: Vec<(String, i64)> = apps
            .into_iter()
            .map(|a| {
                let days = a.configuration.fired_schedule_retention_period as i64;
                (a.app_id, now - days * 86_400)
            })
            .collect();
        if cutoffs.is_empty() {
            return Ok(true);
        }
        let mut failed = None;
        for g in groups.shards().filter(|g| g.is_led_by(self.node_id)) {
            let cmd = ShardCommand::PurgeFinished {
                cutoffs: cutoffs.clone(),
                limit: PURGE_LIMIT,
                keys_before_ms: now_ms.saturating_sub(idempotency::WINDOW_MS),
            };
            if let Err(e) = g.write(Command::Shard(cmd)).await {
                failed = Some(anyhow::anyhow!("{}: {e}", g.id));
            }
        }
        failed.map_or(Ok(true), Err)
    }
}
