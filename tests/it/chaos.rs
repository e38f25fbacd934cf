//! The randomized fault checker: black box over REST with its own callback receiver.
//! Runs fall due all through the test (a batch created up front, and a writer that keeps
//! creating single runs due seconds ahead, each with an `Idempotency-Key` and retried with
//! it on failure), while a nemesis injects one fault at a time at random: kill -9 and
//! restart, SIGSTOP/SIGCONT pauses, SIGTERM and restart, one- and two-way partitions of a
//! node's transport (refused or silently dropped), and a node restarted with its wall clock
//! off. Then it counts what a user would: acknowledged, delivered, lost, duplicates (with
//! the same key, each named with the fault that allows it, or with different keys), early,
//! MISS, runs without an outcome, lateness, create availability.
//!
//! `CHAOS_SECS` (default 60) sets the length of the fault phase and `CHAOS_SEED` replays a
//! run: `CHAOS_SECS=600 CHAOS_SEED=7 ./scripts/test.sh --test it chaos -- --nocapture`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goscheduler::bench::receiver::Receiver;
use reqwest::Method;
use serde_json::{json, Value};

use crate::firing::calling;
use crate::harness::{env_or, Cluster, Options};

/// The app's callback policy: retries 2, 2 s per call; the claim margin is the default.
const HTTP_RETRIES: u32 = 2;
const CLAIM_MARGIN_MS: u64 = 10_000;
/// Runs created up front, per second of the fault phase.
const BATCH_PER_SEC: usize = 30;

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis() as u64
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Kill,
    Pause,
    Terminate,
    Partition,
    Clock,
}

/// One injected fault: what, where, and when (epoch ms).
#[derive(Debug, Clone)]
struct Fault {
    kind: Kind,
    node: u64,
    what: String,
    from_ms: u64,
    to_ms: u64,
}

/// What the single-create writer saw, per idempotency key.
#[derive(Default)]
struct Writes {
    /// Every scheduleId an attempt with the key answered.
    ids: BTreeMap<String, HashSet<String>>,
    attempts: u64,
    succeeded: u64,
    gave_up: u64,
}

/// Injects one random fault on a random node and undoes it; returns what it did.
async fn inject(cluster: &mut Cluster, rng: &mut fastrand::Rng) -> Fault {
    let node = rng.u64(1..=3);
    let kind = [
        Kind::Kill,
        Kind::Pause,
        Kind::Terminate,
        Kind::Partition,
        Kind::Clock,
    ][rng.usize(0..5)];
    let from_ms = now_ms();
    let what = match kind {
        Kind::Kill => {
            cluster.kill(node);
            tokio::time::sleep(Duration::from_millis(rng.u64(500..3000))).await;
            cluster.restart(node).await;
            "kill -9, restart".to_string()
        }
        Kind::Pause => {
            let secs = rng.u64(2..=15);
            cluster.signal(node, "STOP");
            tokio::time::sleep(Duration::from_secs(secs)).await;
            cluster.signal(node, "CONT");
            format!("SIGSTOP for {secs} s")
        }
        Kind::Terminate => {
            let clean = cluster.terminate(node, Duration::from_secs(20)).await;
            cluster.restart(node).await;
            format!("SIGTERM (clean exit: {clean}), restart")
        }
        Kind::Partition => {
            let (inbound, outbound) = [(true, true), (true, false), (false, true)][rng.usize(0..3)];
            let blackhole = rng.bool();
            let secs = rng.u64(2..=8);
            cluster.partition(node, inbound, outbound, blackhole);
            tokio::time::sleep(Duration::from_secs(secs)).await;
            cluster.heal_all();
            let way = match (inbound, outbound) {
                (true, true) => "two-way",
                (true, false) => "one-way (inbound)",
                _ => "one-way (outbound)",
            };
            let how = if blackhole { "dropped" } else { "refused" };
            format!("{way} partition, {how}, {secs} s")
        }
        Kind::Clock => {
            let offset = format!("{}{}s", if rng.bool() { "+" } else { "-" }, rng.u64(2..=40));
            cluster.terminate(node, Duration::from_secs(20)).await;
            cluster.start_with_clock(node, Some(&offset));
            tokio::time::sleep(Duration::from_secs(rng.u64(5..=10))).await;
            cluster.terminate(node, Duration::from_secs(20)).await;
            cluster.start_with_clock(node, None);
            cluster.wait_healthy(node, Duration::from_secs(60)).await;
            format!("clock {offset} (SIGTERM, restart skewed, then SIGTERM, restart right)")
        }
    };
    Fault {
        kind,
        node,
        what,
        from_ms,
        to_ms: now_ms(),
    }
}

/// Why a run delivered again after a 2xx may be: its call was in flight when a node was
/// killed, or paused longer than the claim margin (the claimer could not learn or commit
/// the outcome before its claim expired). `None`: no fault explains it.
fn allowed(faults: &[Fault], first_ms: u64) -> Option<&Fault> {
    faults.iter().find(|f| {
        let long_pause = f.kind == Kind::Pause && f.to_ms - f.from_ms > CLAIM_MARGIN_MS;
        (f.kind == Kind::Kill || long_pause)
            && first_ms + 3000 >= f.from_ms
            && first_ms <= f.to_ms + 1000
    })
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_nothing_acknowledged_is_lost_sent_early_or_twice() {
    let secs = env_or("CHAOS_SECS", 60u64);
    let seed = env_or("CHAOS_SEED", fastrand::u64(..));
    println!("chaos seed {seed} ({secs} s of faults): replay with CHAOS_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let opts = Options {
        proxied: true,
        ..Options::default()
    };
    let mut cluster = Cluster::start(3, opts).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    let policy = json!({"httpRetries": HTTP_RETRIES, "httpTimeout": 2000});
    cluster.register_app_with(1, "chaos", 8, Some(policy)).await;
    let url = rx.url("/slow/100/c");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let writes = Arc::new(Mutex::new(Writes::default()));

    // Runs due all through the fault phase, created up front in batches (keys per item).
    let start_s = (now_ms() / 1000) as i64 + 5;
    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    let total = BATCH_PER_SEC * secs as usize;
    for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let mut item = calling("chaos", start_s + (*i as i64 % secs as i64), &url);
                item["idempotencyKey"] = json!(format!("b-{seed}-{i}"));
                item
            })
            .collect();
        let ids = cluster.create_batch(1, &items).await;
        for (id, item) in ids.into_iter().zip(&items) {
            acked.insert(id, item["scheduleTime"].as_i64().unwrap());
        }
    }

    // The writer: single creates due 2-5 s ahead, until the fault phase ends.
    let end_ms = now_ms() + secs * 1000;
    let writer = {
        let (writes, http, url) = (writes.clone(), http.clone(), url.clone());
        let cluster_urls: Vec<String> = (1..=3).map(|id| cluster.url(id, "")).collect();
        let mut wrng = fastrand::Rng::with_seed(seed ^ 0x5eed);
        tokio::spawn(async move {
            let mut made: Vec<(String, i64)> = vec![];
            let mut n = 0u64;
            let nodes = NodeUrls(cluster_urls);
            while now_ms() < end_ms {
                n += 1;
                let due = (now_ms() / 1000) as i64 + wrng.i64(2..=5);
                let body = calling("chaos", due, &url);
                let key = format!("w-{seed}-{n}");
                if let Some(id) = nodes
                    .create(&http, &mut wrng, &body, &key, 10, &writes)
                    .await
                {
                    made.push((id, due));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            made
        })
    };

    // The nemesis: one fault at a time, a calm 1-3 s between them.
    let mut faults = vec![];
    tokio::time::sleep(Duration::from_secs(3)).await;
    while now_ms() + 2000 < end_ms {
        let f = inject(&mut cluster, &mut rng).await;
        println!(
            "fault {:>2}: node {} {} ({:.1} s)",
            faults.len() + 1,
            f.node,
            f.what,
            (f.to_ms - f.from_ms) as f64 / 1000.0
        );
        faults.push(f);
        tokio::time::sleep(Duration::from_millis(rng.u64(1000..3000))).await;
    }
    for (id, due) in writer.await.unwrap() {
        acked.insert(id, due);
    }

    // Past every run's retries and any re-send after an expired claim.
    let last_due = acked.values().copied().max().unwrap_or(0) as u64 * 1000;
    let settle = last_due + 3 * 2000 + 1000 + CLAIM_MARGIN_MS + 10_000;
    tokio::time::sleep(Duration::from_millis(settle.saturating_sub(now_ms()))).await;

    // What every acknowledged run became.
    let mut statuses: HashMap<String, String> = HashMap::new();
    for (i, id) in acked.keys().enumerate() {
        let via = 1 + i as u64 % 3;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, reply) = cluster
                .call(
                    via,
                    Method::GET,
                    &format!("/goscheduler/schedules/{id}"),
                    None,
                )
                .await;
            if code == 200 || Instant::now() > deadline {
                let status = reply["data"]["schedule"]["status"].as_str().unwrap_or("?");
                statuses.insert(id.clone(), status.to_string());
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Count.
    let deliveries = rx.deliveries();
    let mut per_run: HashMap<&str, Vec<&goscheduler::bench::receiver::Delivery>> = HashMap::new();
    for d in &deliveries {
        per_run.entry(d.schedule_id.as_str()).or_default().push(d);
    }
    let lost: Vec<&String> = acked
        .keys()
        .filter(|id| !per_run.contains_key(id.as_str()))
        .filter(|id| !matches!(statuses[*id].as_str(), "MISS" | "FAILURE"))
        .collect();
    let missed: Vec<&String> = acked.keys().filter(|id| statuses[*id] == "MISS").collect();
    let no_outcome: Vec<&String> = acked
        .keys()
        .filter(|id| !matches!(statuses[*id].as_str(), "SUCCESS" | "FAILURE" | "MISS"))
        .collect();
    let early: Vec<_> = deliveries
        .iter()
        .filter(|d| (d.received_ms as i64) < d.schedule_time * 1000)
        .collect();
    let w = writes.lock().unwrap();
    let different_keys: Vec<_> = w.ids.iter().filter(|(_, ids)| ids.len() > 1).collect();
    let mut same_key_allowed = vec![];
    let mut same_key_unexplained = vec![];
    for (id, ds) in &per_run {
        let mut ds = ds.clone();
        ds.sort_by_key(|d| d.received_ms);
        // A repeat after an answered 2xx is a duplicate (a retry after a failure is not).
        if let Some(first_ok) = ds.iter().position(|d| (200..300).contains(&d.answered)) {
            if first_ok + 1 < ds.len() {
                let first = ds[first_ok].received_ms;
                let attempts: Vec<u32> = ds.iter().map(|d| d.attempt).collect();
                match allowed(&faults, first) {
                    Some(f) => {
                        same_key_allowed.push((id.to_string(), f.what.clone(), f.node, attempts))
                    }
                    None => same_key_unexplained.push((id.to_string(), first, attempts)),
                }
            }
        }
    }
    let mut lateness: Vec<i64> = per_run
        .values()
        .map(|ds| {
            let first = ds.iter().map(|d| d.received_ms).min().unwrap() as i64;
            first - ds[0].schedule_time * 1000
        })
        .collect();
    lateness.sort_unstable();
    let unacked_delivered = per_run
        .keys()
        .filter(|id| !acked.contains_key(**id))
        .count();
    println!(
        "chaos seed {seed}: {} faults; {} runs acknowledged, {} delivered, {} lost, {} without an outcome, \
         {} MISS, {} early, duplicates: {} with the same key ({} allowed, {} unexplained), {} with different keys; \
         {} delivered without an acknowledgement (the writer gave up on {} keys); \
         lateness p50 {} ms, p99 {} ms, max {} ms; creates: {} of {} attempts acknowledged ({:.1} %)",
        faults.len(),
        acked.len(),
        acked.keys().filter(|id| per_run.contains_key(id.as_str())).count(),
        lost.len(),
        no_outcome.len(),
        missed.len(),
        early.len(),
        same_key_allowed.len() + same_key_unexplained.len(),
        same_key_allowed.len(),
        same_key_unexplained.len(),
        different_keys.len(),
        unacked_delivered,
        w.gave_up,
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        lateness.last().copied().unwrap_or(0),
        w.succeeded,
        w.attempts,
        100.0 * w.succeeded as f64 / w.attempts.max(1) as f64,
    );
    for (id, what, node, attempts) in &same_key_allowed {
        println!("  sent twice (allowed): {id} (attempts {attempts:?}): in flight at node {node}: {what}");
    }
    let sample = |v: &[&String]| v.iter().take(5).map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(lost.is_empty(), "lost {:?} (seed {seed})", sample(&lost));
    assert!(
        no_outcome.is_empty(),
        "no outcome {:?} (seed {seed})",
        sample(&no_outcome)
    );
    assert!(
        missed.is_empty(),
        "MISS {:?} (seed {seed})",
        sample(&missed)
    );
    assert!(early.is_empty(), "early {:?} (seed {seed})", early.first());
    assert!(
        different_keys.is_empty(),
        "different keys {:?} (seed {seed})",
        different_keys.first()
    );
    assert!(
        same_key_unexplained.is_empty(),
        "sent twice with no fault to explain it {:?} (seed {seed})\n{}",
        same_key_unexplained,
        faults
            .iter()
            .map(|f| format!("{f:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The node urls the writer posts to (it runs beside the nemesis, which owns the cluster).
struct NodeUrls(Vec<String>);

impl NodeUrls {
    /// Creates `body` with `key` through a random node per attempt until one acknowledges
    /// it or `tries` run out. Returns the scheduleId acknowledged, if any.
    async fn create(
        &self,
        http: &reqwest::Client,
        rng: &mut fastrand::Rng,
        body: &Value,
        key: &str,
        tries: u32,
        writes: &Mutex<Writes>,
    ) -> Option<String> {
        for _ in 0..tries {
            let base = &self.0[rng.usize(0..self.0.len())];
            writes.lock().unwrap().attempts += 1;
            let reply = http
                .post(format!("{base}/goscheduler/schedules"))
                .header("Idempotency-Key", key)
                .json(body)
                .send()
                .await;
            if let Ok(r) = reply {
                if r.status() == 200 {
                    let v: Value = r.json().await.unwrap_or_default();
                    if let Some(id) = v["data"]["schedule"]["scheduleId"].as_str() {
                        let mut w = writes.lock().unwrap();
                        w.succeeded += 1;
                        w.ids
                            .entry(key.to_string())
                            .or_default()
                            .insert(id.to_string());
                        return Some(id.to_string());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        writes.lock().unwrap().gave_up += 1;
        None
    }
}
