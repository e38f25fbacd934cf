//! The bulk worker: on the meta leader, runs every recorded bulk job page by page. Each
//! page is read from the app's shards in (time, id) order after the job's cursor, acted
//! on with one command per shard, and recorded (cursor, count) in the meta group before
//! the next, so a new meta leader resumes where the old one stopped. Deleting or
//! re-arming a schedule twice is harmless, so a page redone after a failover is too.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::watch;
use uuid::Uuid;

use super::Round;
use crate::command::{Actor, AppPage, MetaCommand, ShardCommand};
use crate::ids::{GroupId, NodeId};
use crate::meta::bulk::{BulkAction, BulkJob};
use crate::router::calls::schedules_of;
use crate::router::Router;
use crate::schedule::page::Cursor;
use crate::schedule::{id, Schedule};

pub const PERIOD: Duration = Duration::from_secs(1);
/// Schedules acted on per page.
pub const PAGE: usize = 500;

pub struct BulkJobs {
    pub node_id: NodeId,
    pub router: Router,
    pub shards: u32,
    pub stop: watch::Receiver<bool>,
}

impl Round for BulkJobs {
    async fn round(&mut self) -> anyhow::Result<bool> {
        if !self.router.groups().meta().is_led_by(self.node_id) {
            return Ok(false);
        }
        let mut failed = None;
        for job in self.router.running_bulk_jobs_replica().await? {
            let job_id = job.job_id;
            let (node_id, shards) = (self.node_id, self.shards);
            if let Err(e) = run_job(node_id, &self.router, shards, job, &self.stop).await {
                failed = Some(e.context(format!("bulk job {job_id}")));
            }
        }
        failed.map_or(Ok(true), Err)
    }
}

async fn run_job(
    node_id: NodeId,
    router: &Router,
    shards: u32,
    mut job: BulkJob,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let app = router.app_replica(&job.app_id)?;
    let partitions = app.map(|a| a.partitions).unwrap_or(0);
    loop {
        // Stop when told to, or when another node leads meta (it resumes the job).
        let leading = router.groups().meta().is_led_by(node_id);
        if *stop.borrow() || !leading {
            return Ok(());
        }
        let (page, examined_to) = next_page(router, shards, partitions, &job).await?;
        let done = page.len() < PAGE && examined_to.is_none();
        let last = page.last().map(Cursor::of);
        // A full page goes on after its last item; a page cut by a shard's work budget
        // after where the shards stopped looking.
        let cursor = if page.len() == PAGE {
            last
        } else {
            examined_to.or(last)
        }
        .or(job.cursor);
        let processed = act(node_id, router, shards, &job, &page).await?;
        let now_ms = chrono::Utc::now().timestamp_millis() as u64;
        let advance = MetaCommand::AdvanceBulkJob {
            job_id: job.job_id,
            cursor,
            processed,
            done,
            at_ms: now_ms,
        };
        router.advance_bulk_job(advance).await?;
        if done {
            tracing::info!(job = %job.job_id, app = %job.app_id, processed = job.processed + processed, "bulk job done");
            return Ok(());
        }
        job.cursor = cursor;
        job.processed += processed;
    }
}

/// The next [`PAGE`] matching schedules after the job's cursor, over all the app's shards.
async fn next_page(
    router: &Router,
    shards: u32,
    partitions: u32,
    job: &BulkJob,
) -> anyhow::Result<(Vec<Schedule>, Option<Cursor>)> {
    let shards = crate::shard::app_shards(&job.app_id, partitions, shards);
    let page = AppPage {
        app_id: job.app_id.clone(),
        start: job.start_time,
        end: job.end_time,
        after: job.cursor,
        status: job.status,
        limit: PAGE,
    };
    Ok(router.app_schedules(&shards, &page).await?)
}

/// Deletes or re-arms `page`, one command per shard; returns how many it acted on.
async fn act(
    node_id: NodeId,
    router: &Router,
    shards: u32,
    job: &BulkJob,
    page: &[Schedule],
) -> anyhow::Result<u64> {
    let mut per_shard: BTreeMap<GroupId, Vec<Uuid>> = BTreeMap::new();
    for s in page {
        if let Some(g) = id::shard_of_id(&s.id, shards) {
            per_shard.entry(g).or_default().push(s.id);
        }
    }
    let now = chrono::Utc::now();
    let writes = per_shard.into_iter().map(|(g, ids)| {
        let cmd = match job.action {
            BulkAction::Delete => ShardCommand::DeleteSchedules {
                ids,
                at_ms: now.timestamp_millis() as u64,
            },
            BulkAction::Reconcile => ShardCommand::ReconcileSchedules {
                ids,
                at: now.timestamp(),
            },
        };
        let by = Actor {
            node: node_id,
            caller: Some(format!("bulk-job:{}", job.job_id)),
            at_ms: now.timestamp_millis() as u64,
        };
        let cmd = ShardCommand::Audited {
            by,
            cmd: Box::new(cmd),
        };
        router.shard(g, cmd)
    });
    let mut acted = 0;
    for r in join_all(writes).await {
        acted += schedules_of("bulk action", r?)?.len() as u64;
    }
    Ok(acted)
}
