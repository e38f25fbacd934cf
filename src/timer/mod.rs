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
use openraft::raft::ReadPolicy;
use tokio::sync::watch;
use uuid::Uuid;

use crate::callback::{policy, Dispatcher};
use crate::command::{Command, CommandResult, Query, QueryResult};
use crate::config::FiringSettings;
use crate::meta::app::App;
use crate::metrics::METRICS;
use crate::raft::group::{Group, Groups};
use crate::raft::types::{GroupId, NodeId};
use crate::router::{local, Forwarded, ForwardedReply};
use crate::schedule::run::Outcome;
use crate::schedule::time::now_ms;
use crate::schedule::Schedule;
use crate::shard::{claims, keys};
use crate::store::txn::SmReader;

/// Most runs one claim entry takes.
const CLAIM_BATCH: usize = 2000;
/// How often a leader looks at the whole claim index again (not just recent deadlines).
const FULL_CLAIM_SCAN: Duration = Duration::from_secs(30);

pub struct Timer {
    pub node_id: NodeId,
    pub groups: Arc<Groups>,
    pub dispatcher: Arc<Dispatcher>,
    pub settings: FiringSettings,
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
    /// Runs the timer of `shard` until `stop` turns true.
    pub async fn run(self: Arc<Self>, shard: GroupId, mut stop: watch::Receiver<bool>) {
        let g = self.groups.get(shard).expect("shard group");
        loop {
            if *stop.borrow() {
                return;
            }
            if !g.is_led_by(self.node_id) {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
            if let Err(e) = self.lead(g, &mut stop).await {
                tracing::warn!(group = %shard, "timer: {e:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Fires the shard's runs while this node leads it in the current term.
    async fn lead(&self, g: &Group, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let term = g.metrics().current_term;
        // Everything committed by earlier leaders is applied before looking.
        g.raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .context("catching up as new leader")?;
        g.sm.due_signal().take();
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
            if *stop.borrow() || m.current_leader != Some(self.node_id) || m.current_term != term {
                tracing::info!(group = %g.id, term, "timer: no longer leading");
                return Ok(());
            }
            if let Some(earliest) = g.sm.due_signal().take() {
                lead.due_floor = lead.due_floor.min(earliest);
            }
            let room = self
                .settings
                .max_outstanding
                .saturating_sub(self.dispatcher.in_flight.len());
            let now = now_ms();
            let mut busy = room == 0;
            if room > 0 {
                let until = ((now + ahead) / 1000) as i64;
                busy |= self.claim_due(g, &mut lead, until, now, room).await?;
                busy |= self.reclaim_expired(g, &mut lead, now, room).await?;
            }
            let next_second = ((now + ahead) / 1000 + 1) * 1000 - ahead;
            let wait = if busy {
                Duration::from_millis(if room == 0 { 20 } else { 0 })
            } else {
                Duration::from_millis(next_second.saturating_sub(now_ms()))
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = g.sm.due_signal().woken() => {}
                _ = stop.changed() => {}
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
        self.fire_or_miss(g, lead, runs, now, |apps, run| self.refuse(apps, run, now))
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
        let apps = self.apps_of(&runs);
        let (mut to_fire, mut misses) = (Vec::new(), Vec::new());
        for run in runs {
            match why_not(&apps, &run) {
                Some(reason) => misses.push(Outcome::miss(run.id, reason)),
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
        let config = |run: &Schedule| {
            apps.get(&run.app_id)
                .and_then(|a| a.as_ref())
                .map(|a| a.configuration)
                .unwrap_or_default()
        };
        let deadline_ms = runs
            .iter()
            .map(|r| {
                let due_ms = r.due_time().max(0) as u64 * 1000;
                due_ms.max(now) + policy::attempts_budget_ms(&config(r))
            })
            .max()
            .unwrap_or(now)
            + self.settings.claim_margin_ms;
        let cmd = Command::ClaimRuns {
            ids: runs.iter().map(|r| r.id).collect(),
            node: self.node_id,
            deadline_ms,
            at_ms: now,
        };
        let earliest_ms = runs.iter().map(|r| r.due_time().max(0) as u64 * 1000).min();
        let CommandResult::Schedules(claimed) = propose(g, lead, cmd).await? else {
            anyhow::bail!("claim answered something else than runs");
        };
        let committed = now_ms();
        if let Some(due) = earliest_ms.filter(|due| committed > due + 20 && *due > now) {
            tracing::warn!(group = %g.id, runs = claimed.len(), late_ms = committed - due, took_ms = committed - now, "claim committed after its runs fell due");
        }
        METRICS.claim_batches.inc();
        METRICS.claims.inc_by(claimed.len() as u64);
        for run in claimed {
            let cfg = config(&run);
            self.dispatcher.fire(g.id, run, cfg, deadline_ms);
        }
        Ok(())
    }

    /// Why `run` must not fire now, if it must not.
    fn refuse(
        &self,
        apps: &HashMap<String, Option<App>>,
        run: &Schedule,
        now: u64,
    ) -> Option<String> {
        let Some(app) = apps.get(&run.app_id).and_then(Option::as_ref) else {
            return Some(format!("app {} is not registered", run.app_id));
        };
        if !app.active {
            return Some(format!(
                "app {} was deactivated when the run fell due",
                app.app_id
            ));
        }
        let window = app.configuration.misfire_window as u64;
        let due = run.due_time().max(0) as u64;
        (now / 1000 > due + window).then(|| {
            format!(
                "not fired within the app's misfireWindow of {window}s: due at {due}, found at {}",
                now / 1000
            )
        })
    }

    /// The apps of `runs`, from this node's replica of the meta group.
    fn apps_of(&self, runs: &[Schedule]) -> HashMap<String, Option<App>> {
        let mut apps = HashMap::new();
        for run in runs {
            if apps.contains_key(&run.app_id) {
                continue;
            }
            let query = Query::GetApp {
                app_id: run.app_id.clone(),
            };
            let app = match self.groups.meta().sm.query(&query) {
                Ok(QueryResult::Apps(mut a)) => a.pop(),
                _ => None,
            };
            apps.insert(run.app_id.clone(), app);
        }
        apps
    }
}

/// Reads the runs named by `ids_of` from the shard's applied state (off the async threads).
async fn read_runs(
    g: &Group,
    ids_of: impl FnOnce(&SmReader) -> std::io::Result<Vec<Uuid>> + Send + 'static,
) -> anyhow::Result<Vec<Schedule>> {
    let sm = g.sm.clone();
    let runs = tokio::task::spawn_blocking(move || {
        let reader = SmReader::new(sm.db(), sm.group());
        let mut runs = Vec::new();
        for id in ids_of(&reader)? {
            if let Some(run) = reader.get::<Schedule>(&keys::schedule(&id))? {
                runs.push(run);
            }
        }
        Ok::<_, std::io::Error>(runs)
    })
    .await??;
    Ok(runs)
}

/// Commits MISS outcomes (no claim needed: the runs were never called).
async fn record_misses(g: &Group, lead: &Lead, misses: Vec<Outcome>) -> anyhow::Result<()> {
    if misses.is_empty() {
        return Ok(());
    }
    let n = misses.len() as u64;
    propose(g, lead, Command::RecordOutcomes { outcomes: misses }).await?;
    METRICS
        .outcomes
        .with_label_values(&[crate::schedule::Status::Miss.name()])
        .inc_by(n);
    Ok(())
}

/// Proposes `cmd` to the shard as its leader in `lead.term`.
async fn propose(g: &Group, lead: &Lead, cmd: Command) -> anyhow::Result<CommandResult> {
    match local::execute(g, Forwarded::Write(cmd)).await {
        Ok(ForwardedReply::Write(r)) => Ok(r),
        Ok(ForwardedReply::Read(_)) => anyhow::bail!("a write answered as a read"),
        Err(e) => Err(anyhow::anyhow!("{} (term {}): {e}", lead.group, lead.term)),
    }
}
