//! Group commit for single creates. The creates a node's gateway takes for one shard while
//! that shard's earlier proposals from this node are still in flight wait, then go
//! together as one `CreateSchedules` entry (one forwarded call if the leader is elsewhere).
//! A shard with nothing in flight proposes a create at once, so an idle cluster adds no
//! wait; under load every Raft round trip carries the creates that arrived during the last
//! one, and the per-entry costs (log append, replication, apply, the forward) are shared.
//! Under load the next proposal also lingers a moment (`raft.create_linger_us`) for the
//! callers the last one answered, so it carries them too instead of half of them.
//! Each create still gets its own answer: stored, replayed or refused. Keyed creates wait
//! apart from unkeyed ones: a proposal of keyed creates only may be repeated when its fate
//! is unknown (see `Command::repeatable`), so mixing them would lose that.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use super::calls::CallError;
use super::Router;
use crate::command::{CreateKey, Created};
use crate::ids::GroupId;
use crate::metrics::METRICS;
use crate::raft::GroupError;
use crate::schedule::Schedule;

/// Proposals of creates one node has in flight per shard.
const MAX_IN_FLIGHT: usize = 1;
/// Most creates one proposal carries.
const MAX_ITEMS: usize = 256;
/// Room per create for the command's framing and an idempotency key.
const PER_ITEM: usize = 512;
/// Fewest creates in a proposal after which the next may linger.
const LINGER_AFTER: usize = 4;

/// One create waiting for its shard's next proposal.
pub struct Waiting {
    pub schedule: Schedule,
    pub key: Option<CreateKey>,
    /// The most pending schedules its app's partition may hold.
    pub pending_cap: u64,
    answer: oneshot::Sender<Result<Created, CallError>>,
}

/// The creates waiting per shard, and how many proposals each has in flight.
#[derive(Default)]
pub struct CreateQueues {
    shards: Mutex<HashMap<Line, Queue>>,
    /// Most time a proposal waits for the callers just answered (zero: never).
    linger: Duration,
}

/// A shard, and whether its creates carry idempotency keys.
type Line = (GroupId, bool);

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    in_flight: usize,
    /// A proposer lingering until this many creates wait (see [`CreateQueues::until_back`]).
    until: Option<(usize, oneshot::Sender<()>)>,
}

impl CreateQueues {
    pub fn new(linger: Duration) -> Self {
        CreateQueues {
            shards: Mutex::default(),
            linger,
        }
    }

    /// Queues `w` for `shard`; answers the creates to propose now if `shard` may have
    /// another proposal in flight (the caller then proposes them).
    fn enqueue(&self, line: Line, w: Waiting, max_bytes: usize) -> Option<Vec<Waiting>> {
        let mut shards = self.shards.lock().expect("create queues");
        let q = shards.entry(line).or_default();
        q.waiting.push_back(w);
        if q.until.as_ref().is_some_and(|(n, _)| q.waiting.len() >= *n) {
            if let Some((_, wake)) = q.until.take() {
                let _ = wake.send(());
            }
        }
        (q.in_flight < MAX_IN_FLIGHT).then(|| {
            q.in_flight += 1;
            take(q, max_bytes)
        })
    }

    /// After a proposal of `answered` creates ended (their callers answered): waits, at
    /// most the linger, until as many creates wait as were in it and beside it — under
    /// load those callers send their next within a moment, and one proposal carrying them
    /// all shares Raft's per-entry work (append, replication, fsync, apply) among twice as
    /// many. After a small proposal it does not wait: an idle cluster adds no delay.
    async fn linger_after(&self, line: Line, answered: usize) {
        if self.linger.is_zero() || answered < LINGER_AFTER {
            return;
        }
        if let Some(enough) = self.until_back(line, answered) {
            let _ = tokio::time::timeout(self.linger, enough).await;
        }
    }

    /// A receiver told when as many creates wait for `line` as `answered` plus those
    /// waiting now; `None` if they do already.
    fn until_back(&self, line: Line, answered: usize) -> Option<oneshot::Receiver<()>> {
        let mut shards = self.shards.lock().expect("create queues");
        let q = shards.entry(line).or_default();
        let want = (answered + q.waiting.len()).min(MAX_ITEMS);
        if q.waiting.len() >= want {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        q.until = Some((want, tx));
        Some(rx)
    }

    /// After a proposal of `shard` ended: the creates to propose next, or `None` (and one
    /// fewer in flight) when none wait.
    fn next(&self, line: Line, max_bytes: usize) -> Option<Vec<Waiting>> {
        let mut shards = self.shards.lock().expect("create queues");
        let q = shards.entry(line).or_default();
        q.until = None;
        if q.waiting.is_empty() {
            q.in_flight -= 1;
            return None;
        }
        Some(take(q, max_bytes))
    }
}

/// The oldest waiting creates that fit one entry of `max_bytes` (at least one).
fn take(q: &mut Queue, max_bytes: usize) -> Vec<Waiting> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(w) = q.waiting.front() {
        let size = w.schedule.encoded_len() + PER_ITEM;
        if !batch.is_empty() && (batch.len() >= MAX_ITEMS || bytes + size > max_bytes) {
            break;
        }
        bytes += size;
        batch.extend(q.waiting.pop_front());
    }
    batch
}

impl Router {
    /// Stores one new schedule in `shard`, in a proposal shared with the creates for
    /// `shard` that wait beside it (entries of at most `max_bytes`).
    pub async fn create_schedule(
        &self,
        shard: GroupId,
        schedule: Schedule,
        key: Option<CreateKey>,
        pending_cap: u64,
        max_bytes: usize,
    ) -> Result<Created, CallError> {
        let (tx, rx) = oneshot::channel();
        let line = (shard, key.is_some());
        let w = Waiting {
            schedule,
            key,
            pending_cap,
            answer: tx,
        };
        if let Some(batch) = self.creates.enqueue(line, w, max_bytes) {
            // Its own task: the caller may be dropped (client gone) while others wait on it.
            let router = self.clone();
            tokio::spawn(async move { router.propose_creates(line, batch, max_bytes).await });
        }
        rx.await.unwrap_or_else(|_| {
            Err(GroupError::Internal("the create's proposal was dropped".into()).into())
        })
    }

    /// Proposes `batch`, answers each create, then the next waiting batch until none wait.
    async fn propose_creates(&self, line: Line, mut batch: Vec<Waiting>, max_bytes: usize) {
        let shard = line.0;
        loop {
            let mut answers = Vec::with_capacity(batch.len());
            let (mut schedules, mut keys) = (Vec::new(), Vec::new());
            let mut caps = BTreeMap::new();
            let answered = batch.len();
            for w in batch {
                caps.insert(w.schedule.app_id.clone(), w.pending_cap);
                answers.push(w.answer);
                schedules.push(w.schedule);
                keys.push(w.key);
            }
            METRICS.create_proposals.inc();
            METRICS.coalesced_creates.inc_by(schedules.len() as u64);
            match self.create_schedules(shard, schedules, keys, caps).await {
                Ok(created) => answers.into_iter().zip(created).for_each(|(a, c)| {
                    let _ = a.send(Ok(c));
                }),
                Err(e) => answers.into_iter().for_each(|a| {
                    let _ = a.send(Err(e.clone()));
                }),
            }
            self.creates.linger_after(line, answered).await;
            match self.creates.next(line, max_bytes) {
                Some(next) => batch = next,
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(payload_len: usize) -> Waiting {
        let mut schedule = crate::schedule::one_time_for_test(uuid::Uuid::nil(), 0);
        schedule.payload = "x".repeat(payload_len);
        Waiting {
            schedule,
            key: None,
            pending_cap: 10,
            answer: oneshot::channel().0,
        }
    }

    #[test]
    fn creates_wait_while_their_shard_has_a_proposal_in_flight() {
        let q = CreateQueues::default();
        let line = (GroupId::shard(0), false);
        let first = q
            .enqueue(line, waiting(10), 1 << 20)
            .expect("idle: at once");
        assert_eq!(first.len(), 1);
        for _ in 0..300 {
            assert!(q.enqueue(line, waiting(10), 1 << 20).is_none(), "waits");
        }
        // Another shard, or keyed creates of the same shard, do not wait for it.
        assert!(q
            .enqueue((GroupId::shard(1), false), waiting(10), 1 << 20)
            .is_some());
        assert!(q
            .enqueue((GroupId::shard(0), true), waiting(10), 1 << 20)
            .is_some());
        // Then the waiting ones go together, at most MAX_ITEMS at a time.
        assert_eq!(q.next(line, 1 << 20).unwrap().len(), MAX_ITEMS);
        assert_eq!(q.next(line, 1 << 20).unwrap().len(), 300 - MAX_ITEMS);
        assert!(q.next(line, 1 << 20).is_none());
        assert!(
            q.enqueue(line, waiting(10), 1 << 20).is_some(),
            "idle again"
        );
    }

    #[test]
    fn a_lingering_proposer_is_woken_when_the_answered_callers_are_back() {
        let q = CreateQueues::default();
        let line = (GroupId::shard(0), false);
        q.enqueue(line, waiting(10), 1 << 20).unwrap();
        for _ in 0..3 {
            q.enqueue(line, waiting(10), 1 << 20);
        }
        // 10 answered, 3 wait beside: linger until 13 wait.
        let mut woken = q.until_back(line, 10).expect("fewer than 13 wait");
        for _ in 0..9 {
            q.enqueue(line, waiting(10), 1 << 20);
            assert!(woken.try_recv().is_err(), "12 or fewer wait");
        }
        q.enqueue(line, waiting(10), 1 << 20);
        assert!(woken.try_recv().is_ok(), "13 wait");
        assert_eq!(q.next(line, 1 << 20).unwrap().len(), 13);
        // A full proposal's worth waits already: no lingering.
        for _ in 0..MAX_ITEMS {
            q.enqueue(line, waiting(10), 1 << 20);
        }
        assert!(q.until_back(line, 10).is_none());
    }

    #[test]
    fn a_proposal_stays_within_the_entry_size() {
        let q = CreateQueues::default();
        let line = (GroupId::shard(0), false);
        q.enqueue(line, waiting(10), 1 << 20).unwrap();
        for _ in 0..10 {
            q.enqueue(line, waiting(100_000), 1 << 20);
        }
        let sizes: Vec<usize> =
            std::iter::from_fn(|| q.next(line, 350_000).map(|b| b.len())).collect();
        assert_eq!(sizes, [3, 3, 3, 1]);
    }
}
