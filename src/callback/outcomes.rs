//! Committing outcomes: reported outcomes are batched per shard into one `RecordOutcomes`
//! entry, sent through the router to the shard's current leader (which may no longer be
//! this node). Failed batches are retried until their claims' deadlines; after that
//! another leader may already have fired the run again, and the outcome is dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Calling, InFlight, PendingOutcome};
use crate::ids::GroupId;
use crate::metrics::METRICS;
use crate::router::Router;
use crate::schedule::time::now_ms;
use crate::workers::Worker;

/// Most outcomes in one entry.
const BATCH: usize = 2000;
/// How long outcomes gather before being proposed: fewer, larger entries, and less Raft
/// work competing with a burst of callbacks falling due in the same second.
const LINGER: Duration = Duration::from_millis(50);
/// While more calls than this are due and unanswered on this node (a burst draining),
/// outcomes wait for it to end ...
const BUSY_CALLS: usize = 32;
/// ... for at most this long after the first of them came (far inside any claim's margin).
const MAX_WAIT: Duration = Duration::from_millis(1000);
/// Pause before retrying a batch that failed.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Runs until the node stops; reports each committed batch on `worker`.
pub async fn run(
    router: Router,
    in_flight: Arc<InFlight>,
    calling: Arc<Calling>,
    mut rx: mpsc::Receiver<PendingOutcome>,
    worker: Worker,
) {
    let mut stop = worker.stop.clone();
    let mut retry: Vec<PendingOutcome> = Vec::new();
    loop {
        let first = if retry.is_empty() {
            tokio::select! {
                r = rx.recv() => r,
                _ = stop.changed() => return flush(&router, &in_flight, rx, retry).await,
            }
        } else {
            tokio::select! {
                r = rx.recv() => r,
                _ = tokio::time::sleep(RETRY_PAUSE) => None,
                _ = stop.changed() => return flush(&router, &in_flight, rx, retry).await,
            }
        };
        let mut batch = std::mem::take(&mut retry);
        batch.extend(first);
        let came = tokio::time::Instant::now();
        tokio::time::sleep(LINGER).await;
        wait_for_the_burst(&calling, came).await;
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        retry = commit(&router, &in_flight, batch).await;
        let result = match retry.len() {
            0 => Ok(()),
            n => Err(anyhow::anyhow!("{n} outcomes wait for a retry")),
        };
        worker.report(true, &result);
    }
}

/// The callbacks of a burst go first: its outcomes' Raft work (applied on all three
/// replicas) would otherwise compete with them for the cores. Waits while this node has
/// more than [`BUSY_CALLS`] calls due and unanswered, then half as long again (counted
/// from the first outcome): the other nodes call the same second's runs of the shards they
/// lead, and their share may be half again ours (8 shards led 3/3/2 by 3 nodes). A profile
/// of a 10,000-run burst showed the first node's outcomes applied on the other two while
/// they were still calling (40 % of the last 200 ms of the burst). Never past
/// [`MAX_WAIT`] after the first outcome came.
async fn wait_for_the_burst(calling: &Calling, came: tokio::time::Instant) {
    let mut burst = false;
    while calling.now() > BUSY_CALLS && came.elapsed() < MAX_WAIT {
        burst = true;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if burst {
        let elapsed = came.elapsed();
        tokio::time::sleep((elapsed / 2).min(MAX_WAIT.saturating_sub(elapsed))).await;
    }
}

/// On stop: one last attempt to commit what is queued (a graceful stop has let the
/// callbacks finish first), so their runs are not re-sent by the next leader.
async fn flush(
    router: &Router,
    in_flight: &InFlight,
    mut rx: mpsc::Receiver<PendingOutcome>,
    mut batch: Vec<PendingOutcome>,
) {
    rx.close();
    while let Ok(r) = rx.try_recv() {
        batch.push(r);
    }
    if !batch.is_empty() {
        let left = commit(router, in_flight, batch).await;
        if !left.is_empty() {
            tracing::warn!(
                runs = left.len(),
                "stopping with outcomes not committed: their runs will be re-sent"
            );
        }
    }
}

/// Commits `batch`, one entry per shard in parallel; returns what must be retried.
async fn commit(
    router: &Router,
    in_flight: &InFlight,
    batch: Vec<PendingOutcome>,
) -> Vec<PendingOutcome> {
    let mut by_group: BTreeMap<GroupId, Vec<PendingOutcome>> = BTreeMap::new();
    for r in batch {
        by_group.entry(r.group).or_default().push(r);
    }
    let writes = by_group.into_iter().map(|(group, reports)| async move {
        let outcomes = reports.iter().map(|r| r.outcome.clone()).collect();
        let result = router.record_outcomes(group, outcomes).await;
        (group, reports, result)
    });
    let mut retry = Vec::new();
    for (group, reports, result) in futures::future::join_all(writes).await {
        match result {
            Ok(_) => {
                for r in &reports {
                    METRICS
                        .outcomes
                        .with_label_values(&[r.outcome.status.name()])
                        .inc();
                    in_flight.finish(&r.outcome.id);
                }
            }
            Err(e) => {
                let now = now_ms();
                let (keep, expired): (Vec<_>, Vec<_>) =
                    reports.into_iter().partition(|r| r.deadline_ms > now);
                tracing::warn!(%group, retrying = keep.len(), dropped = expired.len(), "recording outcomes: {e}");
                for r in expired {
                    in_flight.finish(&r.outcome.id);
                }
                retry.extend(keep);
            }
        }
    }
    retry
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn outcomes_wait_out_a_burst_and_half_as_long_again() {
        let calling = Arc::new(Calling::default());
        let came = Instant::now();
        wait_for_the_burst(&calling, came).await;
        assert_eq!(came.elapsed(), Duration::ZERO, "no burst: no wait");

        let burst: Vec<_> = (0..=BUSY_CALLS).map(|_| calling.start()).collect();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            drop(burst);
        });
        let came = Instant::now();
        wait_for_the_burst(&calling, came).await;
        let waited = came.elapsed().as_millis();
        assert!((600..=630).contains(&waited), "waited {waited} ms");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_that_does_not_end_holds_outcomes_only_until_the_limit() {
        let calling = Arc::new(Calling::default());
        let _burst: Vec<_> = (0..=BUSY_CALLS).map(|_| calling.start()).collect();
        let came = Instant::now();
        wait_for_the_burst(&calling, came).await;
        let waited = came.elapsed();
        assert!(waited >= MAX_WAIT && waited <= MAX_WAIT + Duration::from_millis(20));
    }
}
