//! The timer of each shard this node leads. Once per second (claim-ahead before it) and
//! whenever applying writes a run due now, it reads the runs falling due from the shard's
//! time index, commits a claim on them (one entry for many runs) and hands them to the
//! [`Dispatcher`], which calls each at its second. Nothing is fired without a committed
//! claim, so a leader that lost its quorum fires nothing. Runs of a deactivated app, or
//! found later than the app's misfire window, become MISS instead. Claims whose deadline
//! passed without an outcome (their claimer died) are claimed again and re-sent.
//!
//! Only the claimed runs waiting for their second are held in memory, bounded by
//! `firing.max_outstanding`; the rest stay in RocksDB.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use uuid::Uuid;

pub mod plan;
pub mod recheck;

use plan::{
    claim_deadline_ms, claim_until, config_of, next_look_ms, signers_of, why_not_fire, Clock,
};

use crate::callback::Dispatcher;
use crate::command::{Command, CommandResult, Group, ShardCommand};
use crate::config::FiringSettings;
use crate::drain::Draining;
use crate::ids::{GroupId, NodeId};
use crate::meta::app::App;
use crate::metrics::METRICS;
use crate::router::calls::{done_of, schedules_of};
use crate::router::Router;
use crate::schedule::run::{Fence, Outcome};
use crate::schedule::Schedule;
use crate::shard::due_signal::DueSignal;
use crate::shard::{claims, keys};
use crate::skew::SkewGuard;
use crate::store::txn::SmReader;
use crate::workers::Worker;

/// Most runs one claim entry takes.
const CLAIM_BATCH: usize = 2000;
/// How often a leader looks at the whole claim index again (not just recent deadlines).
const FULL_CLAIM_SCAN: Duration = Duration::from_secs(30);

pub struct Timer {
    pub node_id: NodeId,
    pub router: Router,
    pub dispatcher: Arc<Dispatcher>,
    pub settings: FiringSettings,
    /// Read once per look; every decision takes that reading.
    pub clock: Arc<dyn Clock>,
    /// While this node drains (a graceful stop), it claims nothing new.
    pub draining: Draining,
    /// While this node's clock is not trusted (off its peers', or it jumped), it claims and
    /// misses nothing: its idea of "due" cannot be relied on.
    pub skew: Arc<SkewGuard>,
}

/// What a leader remembers between its looks at a shard.
struct Lead {
    group: GroupId,
    term: u64,
    /// Every pending run due before this second has been seen.
    due_floor: i64,
    /// Every claim with a deadline before this has been seen.
    claim_floor: u64,
    full_claim_scan_at: tokio::time::Instant,
}

impl Timer {
    /// Runs the timer of `shard` (told of new due runs by `due`) until the node stops.
    pub async fn run(self: Arc<Self>, shard: GroupId, due: Arc<DueSignal>, mut worker: Worker) {
        let groups = self.router.groups().clone();
        let g = groups.get(shard).expect("shard group");
        loop {
            if worker.stopping() {
                return;
            }
            if !g.is_led_by(self.node_id) {
                worker.set_active(false);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = worker.stop.changed() => return,
                }
                continue;
            }
            let led = self
                .lead(g, &due, &mut worker)
                .await
                .with_context(|| format!("timer of {shard}"));
            if led.is_err() {
                worker.report(true, &led);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Fires the shard's runs while this node leads it in the current term.
    async fn lead(&self, g: &Group, due: &DueSignal, worker: &mut Worker) -> anyhow::Result<()> {
        let term = g.metrics().current_term;
        // Everything committed by earlier leaders is applied before looking.
        g.catch_up().await.context("catching up as new leader")?;
        due.take();
        let mut lead = Lead {
            group: g.id,
            term,
            due_floor: i64::MIN,
            claim_floor: 0,
            full_claim_scan_at: tokio::time::Instant::now() + FULL_CLAIM_SCAN,
        };
        tracing::info!(group = %g.id, term, "timer: leading");
        let ahead = self.settings.claim_ahead_ms;
        loop {
            let m = g.metrics();
            if worker.stopping() || m.current_leader != Some(self.node_id) || m.current_term != term
            {
                tracing::info!(group = %g.id, term, "timer: no longer leading");
                return Ok(());
            }
            if let Some(earliest) = due.take() {
                lead.due_floor = lead.due_floor.min(earliest);
            }
            let room = if self.draining.is_on() || !self.skew.trusted() {
                0
            } else {
                (self.settings.max_outstanding).saturating_sub(self.dispatcher.in_flight.len())
            };
            let now = self.clock.now_ms();
            let mut busy = room == 0;
            if room > 0 {
                let until = claim_until(now, ahead);
                busy |= self.claim_due(g, &mut lead, until, now, room).await?;
                busy |= self.reclaim_expired(g, &mut lead, now, room).await?;
            }
            let wait = if busy {
                Duration::from_millis(if room == 0 { 20 } else { 0 })
            } else {
                let next = next_look_ms(now, ahead);
                Duration::from_millis(next.saturating_sub(self.clock.now_ms()))
            };
            worker.report(true, &Ok(()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = due.woken() => {}
                _ = worker.stop.changed() => {}
            }
        }
    }

    /// Claims (or misses) pending runs due by `until`. Returns whether more are waiting.
    async fn claim_due(
        &self,
        g: &Group,
        lead: &mut Lead,
        until: i64,
        now: u64,
        room: usize,
    ) -> anyhow::Result<bool> {
        let limit = room.min(CLAIM_BATCH);
        let from = lead.due_floor;
        let runs = read_runs(g, move |r| {
            Ok(claims::due_runs(r, from, until, limit)?
                .into_iter()
                .map(|(_, id)| id)
                .collect())
        })
        .await?;
        let full = runs.len() == limit;
        lead.due_floor = match runs.last() {
            Some(last) if full => last.due_time(),
            _ => until + 1,
        };
        if runs.is_empty() {
            return Ok(false);
        }
        self.fire_or_miss(g, lead, runs, now, |apps, run| {
            why_not_fire(apps.get(&run.app_id).and_then(Option::as_ref), run, now)
        })
        .await?;
        Ok(full)
    }

    /// Claims again the runs whose claim deadline passed without an outcome (their claimer
    /// died or was cut off too long) and re-sends them. Returns whether more are waiting.
    async fn reclaim_expired(
        &self,
        g: &Group,
        lead: &mut Lead,
        now: u64,
        room: usize,
    ) -> anyhow::Result<bool> {
        if tokio::time::Instant::now() >= lead.full_claim_scan_at {
            lead.claim_floor = 0;
            lead.full_claim_scan_at = tokio::time::Instant::now() + FULL_CLAIM_SCAN;
        }
        let limit = room.min(CLAIM_BATCH);
        let from = lead.claim_floor;
        let in_flight = self.dispatcher.in_flight.clone();
        let runs = read_runs(g, move |r| {
            Ok(claims::expired_claims(r, from, now, limit)?
                .into_iter()
                .filter(|id| !in_flight.contains(id))
                .collect())
        })
        .await?;
        let full = runs.len() == limit;
        if !full {
            // Claims made from now on have deadlines later than this.
            lead.claim_floor = now.saturating_sub(1000);
        }
        if runs.is_empty() {
            return Ok(full);
        }
        tracing::info!(group = %g.id, runs = runs.len(), "re-sending runs whose claim expired");
        self.fire_or_miss(g, lead, runs, now, |apps, run| {
            match apps.get(&run.app_id).and_then(Option::as_ref) {
                Some(app) if app.active => None,
                _ => Some(format!(
                    "its claim expired without an outcome and app {} is no longer active",
                    run.app_id
                )),
            }
        })
        .await?;
        Ok(full)
    }

    /// Commits a MISS for each run `why_not` gives a reason for, then claims and fires the rest.
    async fn fire_or_miss(
        &self,
        g: &Group,
        lead: &Lead,
        runs: Vec<Schedule>,
        now: u64,
        why_not: impl Fn(&HashMap<String, Option<App>>, &Schedule) -> Option<String>,
    ) -> anyhow::Result<()> {
        let apps = self.apps_of(&runs).await?;
        let (mut to_fire, mut misses) = (Vec::new(), Vec::new());
        for run in runs {
            match why_not(&apps, &run) {
                Some(reason) => {
                    misses.push(Outcome::miss(run.id, reason).fenced(Fence::of(run.claim)))
                }
                None => to_fire.push(run),
            }
        }
        record_misses(g, lead, misses).await?;
        self.claim_and_fire(g, lead, &apps, to_fire, now).await
    }

    /// Commits one claim on `runs`, then hands each claimed run to the dispatcher.
    async fn claim_and_fire(
        &self,
        g: &Group,
        lead: &Lead,
        apps: &HashMap<String, Option<App>>,
        runs: Vec<Schedule>,
        now: u64,
    ) -> anyhow::Result<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let deadline_ms = claim_deadline_ms(&runs, apps, now, self.settings.claim_margin_ms);
        let attempts = runs
            .iter()
            .map(|r| config_of(apps, r).http_retries + 1)
            .collect();
        let cmd = ShardCommand::ClaimRuns {
            ids: runs.iter().map(|r| r.id).collect(),
            node: self.node_id,
            deadline_ms,
            at_ms: now,
            attempts,
        };
        let earliest_ms = runs.iter().map(|r| r.due_time().max(0) as u64 * 1000).min();
        let claimed = schedules_of("ClaimRuns", propose(g, lead, cmd).await?)?;
        let committed = self.clock.now_ms();
        if let Some(due) = earliest_ms.filter(|due| committed > due + 20 && *due > now) {
            tracing::warn!(group = %g.id, runs = claimed.len(), late_ms = committed - due, took_ms = committed - now, "claim committed after its runs fell due");
        }
        METRICS.claim_batches.inc();
        METRICS.claims.inc_by(claimed.len() as u64);
        let signers = signers_of(apps);
        for run in claimed {
            let cfg = config_of(apps, &run);
            let signer = signers.get(run.app_id.as_str()).cloned();
            self.dispatcher.fire(g.id, run, cfg, signer, deadline_ms);
        }
        Ok(())
    }

    /// The apps of `runs`, read linearizably from the meta group's leader: an activation,
    /// deactivation or registration acknowledged before the claim is honoured even when this
    /// node's own meta replica lags (cut off from the meta leader alone). When the meta
    /// group cannot answer, nothing is claimed or missed: the runs wait for it.
    async fn apps_of(&self, runs: &[Schedule]) -> anyhow::Result<HashMap<String, Option<App>>> {
        let mut apps = HashMap::new();
        for run in runs {
            if !apps.contains_key(&run.app_id) {
                let app =
                    self.router.app(&run.app_id).await.with_context(|| {
                        format!("reading app {} before its runs fire", run.app_id)
                    })?;
                apps.insert(run.app_id.clone(), app);
            }
        }
        Ok(apps)
    }
}

/// Reads the runs named by `ids_of` from the shard's applied state (off the async threads).
async fn read_runs(
    g: &Group,
    ids_of: impl FnOnce(&SmReader) -> std::io::Result<Vec<Uuid>> + Send + 'static,
) -> anyhow::Result<Vec<Schedule>> {
    let runs = g
        .read_applied(move |reader| {
            let mut runs = Vec::new();
            for id in ids_of(reader)? {
                if let Some(run) = reader.get::<Schedule>(&keys::schedule(&id))? {
                    runs.push(run);
                }
            }
            Ok(runs)
        })
        .await?;
    Ok(runs)
}

/// Commits MISS outcomes (no claim needed: the runs were never called).
async fn record_misses(g: &Group, lead: &Lead, misses: Vec<Outcome>) -> anyhow::Result<()> {
    if misses.is_empty() {
        return Ok(());
    }
    let n = misses.len() as u64;
    let cmd = ShardCommand::RecordOutcomes { outcomes: misses };
    done_of("RecordOutcomes", propose(g, lead, cmd).await?)?;
    METRICS
        .outcomes
        .with_label_values(&[crate::schedule::Status::Miss.name()])
        .inc_by(n);
    Ok(())
}

/// Proposes `cmd` to the shard as its leader in `lead.term` (never forwarded: only a
/// leader fires).
async fn propose(g: &Group, lead: &Lead, cmd: ShardCommand) -> anyhow::Result<CommandResult> {
    g.write(Command::Shard(cmd))
        .await
        .map_err(|e| anyhow::anyhow!("{} (term {}): {e}", lead.group, lead.term))
}
