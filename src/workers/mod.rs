//! Background workers: the node's loops that act as time passes, each named and visible in
//! `goschedctl status` (scope, trigger, rounds, last error).
//!
//! Most are periodic [`Round`]s started with [`Workers::every`]: `refill` (cron runs, shard
//! leaders), `retention` (purge finished runs, shard leaders), `bulk_jobs` (the meta
//! leader) and the leader balancer (`admin::balance`, every node). The firing timer
//! (`timer`) runs its own loop per shard through [`Workers::spawn`] and reports each round
//! on its [`Worker`] handle.

pub mod bulk_jobs;
pub mod refill;
pub mod retention;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::proto::admin::WorkerStatus;
use crate::schedule::time::now_ms;

/// Where a worker works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On the groups this node leads among the shards.
    ShardLeader,
    /// While this node leads the meta group.
    MetaLeader,
    /// On every node.
    Node,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::ShardLeader => "shard leader",
            Scope::MetaLeader => "meta leader",
            Scope::Node => "node",
        }
    }
}

/// One periodic round of a worker's work.
pub trait Round: Send + 'static {
    /// Does the work due now. Whether this node should (it leads the group) is the
    /// round's to check; answer `Ok(false)` when it did nothing for that reason.
    fn round(&mut self) -> impl Future<Output = anyhow::Result<bool>> + Send;
}

/// A running worker's handle: its stop signal and where it reports its rounds.
#[derive(Clone)]
pub struct Worker {
    pub stop: watch::Receiver<bool>,
    state: Arc<Mutex<WorkerStatus>>,
}

impl Worker {
    /// Records one round: whether it found work to do here, and how it ended.
    pub fn report(&self, active: bool, result: &anyhow::Result<()>) {
        let mut s = self.state.lock().expect("worker state");
        s.active = active;
        s.rounds += 1;
        s.last_round_ms = now_ms();
        match result {
            Ok(()) => s.last_error.clear(),
            Err(e) => {
                tracing::warn!(worker = %s.name, "{e:#}");
                s.errors += 1;
                s.last_error = format!("{e:#}");
            }
        }
    }

    /// Records whether this worker has work here now (e.g. whether it leads its group).
    pub fn set_active(&self, active: bool) {
        self.state.lock().expect("worker state").active = active;
    }

    /// Whether the node is stopping.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// The node's workers.
pub struct Workers {
    stop: watch::Receiver<bool>,
    states: Mutex<Vec<Arc<Mutex<WorkerStatus>>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Workers {
    /// Workers that stop when `stop` turns true.
    pub fn new(stop: watch::Receiver<bool>) -> Self {
        Workers {
            stop,
            states: Mutex::default(),
            tasks: Mutex::default(),
        }
    }

    /// The node's stop signal, for work that must notice it mid-round.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// Starts a worker that runs `body` with its handle until the node stops.
    pub fn spawn<F, Fut>(&self, name: impl Into<String>, scope: Scope, trigger: &str, body: F)
    where
        F: FnOnce(Worker) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let state = Arc::new(Mutex::new(WorkerStatus {
            name: name.into(),
            scope: scope.name().into(),
            trigger: trigger.into(),
            ..Default::default()
        }));
        self.states.lock().expect("workers").push(state.clone());
        let worker = Worker {
            stop: self.stop.clone(),
            state,
        };
        let task = tokio::spawn(body(worker));
        self.tasks.lock().expect("workers").push(task);
    }

    /// Starts a worker that runs `round` every `period` until the node stops.
    pub fn every(
        &self,
        name: impl Into<String>,
        scope: Scope,
        period: Duration,
        mut round: impl Round,
    ) {
        let trigger = format!("every {period:?}");
        self.spawn(name, scope, &trigger, move |mut w: Worker| async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = w.stop.changed() => return,
                }
                if w.stopping() {
                    return;
                }
                match round.round().await {
                    Ok(active) => w.report(active, &Ok(())),
                    Err(e) => w.report(true, &Err(e)),
                }
            }
        });
    }

    /// What every worker reports, in start order.
    pub fn statuses(&self) -> Vec<WorkerStatus> {
        let states = self.states.lock().expect("workers");
        states
            .iter()
            .map(|s| s.lock().expect("worker state").clone())
            .collect()
    }

    /// Waits for every worker to end (after the stop signal).
    pub async fn join(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("workers"));
        for t in tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(Arc<Mutex<u32>>);

    impl Round for Counter {
        async fn round(&mut self) -> anyhow::Result<bool> {
            let mut n = self.0.lock().unwrap();
            *n += 1;
            anyhow::ensure!(*n != 2, "second round fails");
            Ok(true)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_workers_report_rounds_and_errors_and_stop() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let workers = Workers::new(stop_rx);
        let count = Arc::new(Mutex::new(0));
        let period = Duration::from_secs(1);
        workers.every("counter", Scope::Node, period, Counter(count.clone()));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let s = &workers.statuses()[0];
        assert_eq!((s.name.as_str(), s.scope.as_str()), ("counter", "node"));
        assert_eq!((s.rounds, s.errors), (2, 1));
        assert_eq!(s.last_error, "second round fails");
        tokio::time::sleep(period).await;
        let s = &workers.statuses()[0];
        assert_eq!((s.rounds, s.errors, s.last_error.as_str()), (3, 1, ""));
        stop_tx.send(true).unwrap();
        workers.join().await;
        assert_eq!(*count.lock().unwrap(), 3);
    }
}
