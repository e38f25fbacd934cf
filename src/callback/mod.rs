//! Calling back: each claimed run is called at its second with its app's timeout and
//! retries, within a node-wide bound on calls in flight and a per-app share of it (one
//! slow endpoint cannot starve the other apps); outcomes go to [`outcomes`] to be committed.

pub mod client;
pub mod endpoint;
pub mod guard;
pub mod http;
pub mod outcomes;
pub mod policy;
pub mod signature;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, Semaphore};
use uuid::Uuid;

use crate::config::FiringSettings;
use crate::ids::GroupId;
use crate::meta::app::AppConfiguration;
use crate::metrics::METRICS;
use crate::schedule::run::{Fence, Outcome};
use crate::schedule::time::now_ms;
use crate::schedule::{Schedule, Status};
use signature::Signer;

/// An outcome on its way to its shard's log; the claim ends at `deadline_ms`, after which
/// committing it is pointless (the run may have been fired again).
#[derive(Debug)]
pub struct PendingOutcome {
    pub group: GroupId,
    pub outcome: Outcome,
    pub deadline_ms: u64,
}

/// The runs this node has claimed and not yet finished (bounded by back-pressure on
/// claiming), so the node never fires a run it is still calling.
#[derive(Default)]
pub struct InFlight(Mutex<HashSet<Uuid>>);

impl InFlight {
    fn start(&self, id: Uuid) -> bool {
        let mut set = self.0.lock().unwrap();
        let added = set.insert(id);
        METRICS.queue_depth.set(set.len() as i64);
        added
    }

    /// The run's outcome was committed, or given up on.
    pub fn finish(&self, id: &Uuid) {
        let mut set = self.0.lock().unwrap();
        set.remove(id);
        METRICS.queue_depth.set(set.len() as i64);
    }

    pub fn contains(&self, id: &Uuid) -> bool {
        self.0.lock().unwrap().contains(id)
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many calls are due and not yet answered on this node (waiting for a slot or on the
/// wire): while a burst of them drains, committing outcomes can wait (see [`outcomes`]).
#[derive(Default)]
pub struct Calling(AtomicUsize);

impl Calling {
    /// Counts one call until the returned guard is dropped.
    fn start(self: &Arc<Self>) -> CallingGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        CallingGuard(self.clone())
    }

    pub fn now(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

struct CallingGuard(Arc<Calling>);

impl Drop for CallingGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Asked before each retry of a claimed run: may it still be called? A run deleted, finished
/// or claimed again meanwhile, or whose app was deactivated, is not (the reason says why).
pub trait Recheck: Send + Sync + 'static {
    fn still_wanted<'a>(
        &'a self,
        group: GroupId,
        run: &'a Schedule,
    ) -> BoxFuture<'a, Result<(), String>>;
}

pub struct Dispatcher {
    client: client::Client,
    /// Where callbacks may go (checked before each call and at every connect).
    guard: Arc<guard::Guard>,
    recheck: Arc<dyn Recheck>,
    calls: Arc<Semaphore>,
    per_app: usize,
    apps: Mutex<HashMap<String, Arc<Semaphore>>>,
    pub in_flight: Arc<InFlight>,
    pub calling: Arc<Calling>,
    outcomes: mpsc::Sender<PendingOutcome>,
}

impl Dispatcher {
    pub fn new(
        settings: &FiringSettings,
        client: client::Client,
        guard: Arc<guard::Guard>,
        outcomes: mpsc::Sender<PendingOutcome>,
        recheck: Arc<dyn Recheck>,
    ) -> Arc<Self> {
        Arc::new(Dispatcher {
            client,
            guard,
            recheck,
            calls: Arc::new(Semaphore::new(settings.concurrency)),
            per_app: settings.per_app_concurrency,
            apps: Mutex::default(),
            in_flight: Arc::default(),
            calling: Arc::default(),
            outcomes,
        })
    }

    fn app_share(&self, app_id: &str) -> Arc<Semaphore> {
        let mut apps = self.apps.lock().unwrap();
        apps.entry(app_id.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_app)))
            .clone()
    }

    /// Calls back for the claimed `run` at its due time and reports how it ended. A run
    /// this node is already calling is left alone (returns false).
    pub fn fire(
        self: &Arc<Self>,
        group: GroupId,
        run: Schedule,
        cfg: AppConfiguration,
        signer: Option<Arc<Signer>>,
        deadline_ms: u64,
    ) -> bool {
        if !self.in_flight.start(run.id) {
            return false;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let signer = signer.as_deref();
            let call = this.call_with_retries(group, &run, &cfg, signer, deadline_ms);
            let Some(outcome) = call.await else {
                // No call was made before the claim ran out: nothing to report; the run's
                // leader sends it again once the claim has expired.
                this.in_flight.finish(&run.id);
                return;
            };
            let pending = PendingOutcome {
                group,
                outcome,
                deadline_ms,
            };
            if this.outcomes.send(pending).await.is_err() {
                this.in_flight.finish(&run.id);
            }
        });
        true
    }

    /// Calls `run` at its second, retrying under the app's policy, each attempt only while
    /// it cannot outlast the claim (`deadline_ms`): time spent waiting for a slot counts.
    /// A retry is made only while the run is still wanted ([`Recheck`]).
    /// `None` when not even the first call could be made in time.
    async fn call_with_retries(
        &self,
        group: GroupId,
        run: &Schedule,
        cfg: &AppConfiguration,
        signer: Option<&Signer>,
        deadline_ms: u64,
    ) -> Option<Outcome> {
        let due_ms = run.due_time().max(0) as u64 * 1000;
        tokio::time::sleep(Duration::from_millis(due_ms.saturating_sub(now_ms()))).await;
        let share = self.app_share(&run.app_id);
        let first = run
            .claim
            .map_or(run.attempt_count() + 1, |c| c.first_attempt);
        let mut attempts = Vec::new();
        let mut stopped = None;
        for retry in 0..=cfg.http_retries {
            if retry > 0 {
                tokio::time::sleep(policy::backoff(retry)).await;
                if let Err(why) = self.recheck.still_wanted(group, run).await {
                    tracing::info!(run = %run.id, "retries stopped: {why}");
                    stopped = Some(why);
                    break;
                }
            }
            let attempt = {
                let _calling = self.calling.start();
                let _app = share.acquire().await.expect("semaphore never closed");
                let _node = self.calls.acquire().await.expect("semaphore never closed");
                if !policy::may_attempt(now_ms(), cfg.http_timeout as u64, deadline_ms) {
                    tracing::warn!(run = %run.id, attempt = first + retry, "claim runs out before the next call: stopping");
                    break;
                }
                let to = http::Target {
                    client: &self.client,
                    guard: &self.guard,
                    signer,
                };
                http::call(to, run, first + retry, policy::timeout(cfg)).await
            };
            METRICS.fires.inc();
            METRICS
                .callback_latency
                .observe(attempt.latency_ms as f64 / 1000.0);
            if retry == 0 {
                let late_ms = attempt.fired_at.saturating_sub(due_ms);
                METRICS.lateness.observe(late_ms as f64 / 1000.0);
            }
            let succeeded = attempt.succeeded();
            attempts.push(attempt);
            if succeeded {
                break;
            }
        }
        if attempts.is_empty() {
            return None;
        }
        let mut outcome = Outcome::of_attempts(run.id, attempts);
        if outcome.status != Status::Success && outcome.attempts.len() <= cfg.http_retries as usize
        {
            let why = match stopped {
                Some(why) => format!("retries stopped: {why}"),
                None => "retries cut short: the claim's deadline came first".into(),
            };
            outcome.reason = Some(format!("{}; {why}", outcome.reason.unwrap_or_default()));
        }
        Some(outcome.fenced(Fence::of(run.claim)))
    }
}
