//! The retention worker: every minute, on each shard this node leads, propose a bounded
//! `PurgeFinished` with every app's cutoff (now − its `firedScheduleRetentionPeriod`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::command::{Command, Query, QueryResult};
use crate::raft::group::Groups;
use crate::raft::types::{GroupKind, NodeId};
use crate::router::{local, Forwarded};

const PERIOD: Duration = Duration::from_secs(60);
/// Most index entries one purge looks at.
const PURGE_LIMIT: usize = 2000;

/// Runs until `stop` turns true.
pub async fn run(node_id: NodeId, groups: Arc<Groups>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PERIOD) => {}
            _ = stop.changed() => return,
        }
        let apps = match groups.meta().sm.query(&Query::ListApps) {
            Ok(QueryResult::Apps(apps)) => apps,
            _ => continue,
        };
        let now = chrono::Utc::now().timestamp();
        let cutoffs: Vec<(String, i64)> = apps
            .into_iter()
            .map(|a| {
                let days = a.configuration.fired_schedule_retention_period as i64;
                (a.app_id, now - days * 86_400)
            })
            .collect();
        if cutoffs.is_empty() {
            continue;
        }
        for g in groups
            .iter()
            .filter(|g| matches!(g.id.kind(), GroupKind::Shard(_)))
        {
            if !g.is_led_by(node_id) {
                continue;
            }
            let cmd = Command::PurgeFinished {
                cutoffs: cutoffs.clone(),
                limit: PURGE_LIMIT,
            };
            if let Err(e) = local::execute(g, Forwarded::Write(cmd)).await {
                tracing::warn!(group = %g.id, "retention purge: {e}");
            }
        }
    }
}
