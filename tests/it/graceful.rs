//! A graceful stop (SIGTERM) hands over leadership and lets the callbacks in flight finish:
//! a rolling restart of every node while runs fall due loses nothing, sends nothing twice
//! and delays nothing by more than 2 s.

use std::collections::HashMap;
use std::time::Duration;

use goscheduler::bench::receiver::Receiver;
use serde_json::json;

use crate::firing::calling;
use crate::harness::{env_or, now, Cluster, Options};

/// Runs due in the rolling restart, over `SPREAD` seconds from 5 s after the start
/// (`ROLLING_RUNS` and `ROLLING_SPREAD` override them). Each callback takes `CALL_MS`, so every node always has calls in flight
/// when it is stopped (50 runs a second: fewer calls in flight than one app's share of one
/// node, 64, even while one node leads every shard).
const RUNS: usize = 800;
const SPREAD: i64 = 16;
const CALL_MS: u64 = 1000;
/// The burst: runs due within `BURST_SPREAD` seconds, fast callbacks.
const BURST_RUNS: usize = 2000;
const BURST_SPREAD: i64 = 2;

async fn sleep_until_ms(t_ms: i64) {
    let wait = (t_ms - chrono::Utc::now().timestamp_millis()).max(0);
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
}

/// The node leading the most shards, as node `via` sees it.
async fn busiest(cluster: &Cluster, via: u64) -> u64 {
    let mut led: HashMap<u64, usize> = HashMap::new();
    for g in 1..=crate::harness::SHARDS as u64 {
        if let Some(l) = cluster.leader_of(via, g).await {
            *led.entry(l).or_default() += 1;
        }
    }
    led.into_iter().max_by_key(|(_, n)| *n).expect("leaders").0
}

/// Creates `runs` runs of `app` calling `url`, due over `spread` seconds from `base`,
/// through nodes 1 and 2 in batches; returns their ids.
async fn create_spread(
    cluster: &Cluster,
    app: &str,
    url: &str,
    runs: usize,
    base: i64,
    spread: i64,
) -> Vec<String> {
    let mut ids = Vec::new();
    let all: Vec<usize> = (0..runs).collect();
    for (n, part) in all.chunks(1000).enumerate() {
        let items: Vec<_> = part
            .iter()
            .map(|i| calling(app, base + (*i as i64 % spread), url))
            .collect();
        ids.extend(cluster.create_batch(1 + n as u64 % 2, &items).await);
    }
    assert_eq!(ids.len(), runs);
    ids
}

/// Checks every run of `ids` was delivered once and less than 2 s late, and its SUCCESS
/// committed (a sample through every node).
async fn assert_once_on_time(cluster: &Cluster, rx: &Receiver, ids: &[String], what: &str) {
    let deliveries = rx.deliveries();
    let mut per_run: HashMap<&str, Vec<u64>> = HashMap::new();
    for d in &deliveries {
        per_run
            .entry(d.schedule_id.as_str())
            .or_default()
            .push(d.received_ms);
    }
    let lost: Vec<&String> = ids
        .iter()
        .filter(|id| !per_run.contains_key(id.as_str()))
        .collect();
    let twice: Vec<(&&str, &Vec<u64>)> = per_run.iter().filter(|(_, r)| r.len() > 1).collect();
    let late_ms = deliveries
        .iter()
        .map(|d| d.received_ms as i64 - d.schedule_time * 1000)
        .max()
        .unwrap_or(0);
    println!(
        "{what}: {} runs, {} deliveries, {} lost, {} twice, max lateness {late_ms} ms",
        ids.len(),
        deliveries.len(),
        lost.len(),
        twice.len()
    );
    assert!(
        lost.is_empty(),
        "{} runs lost, e.g. {:?}\n{}",
        lost.len(),
        lost.first(),
        cluster.logs()
    );
    assert!(
        twice.is_empty(),
        "{} runs sent twice, e.g. {:?}",
        twice.len(),
        twice.first()
    );
    assert!(
        late_ms < 2000,
        "a run was {late_ms} ms late\n{}",
        cluster.logs()
    );
    for (i, id) in ids.iter().step_by(50).enumerate() {
        let s = cluster.schedule(1 + i as u64 % 3, id).await;
        assert_eq!(s["status"], "SUCCESS", "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_by_sigterm_loses_repeats_and_delays_nothing() {
    let (runs, spread) = (
        env_or("ROLLING_RUNS", RUNS),
        env_or("ROLLING_SPREAD", SPREAD),
    );
    let mut cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    // No retries: a re-send of a run (its claimer stopped without reporting) would come
    // ~13 s after its second (call timeout + claim margin), inside the time this test watches.
    cluster
        .register_app_with(
            1,
            "rolling",
            8,
            Some(json!({"httpRetries": 0, "httpTimeout": 3000})),
        )
        .await;
    let url = rx.url(&format!("/slow/{CALL_MS}/r"));
    let base = now() + 5;
    let ids = create_spread(&cluster, "rolling", &url, runs, base, spread).await;

    // SIGTERM the node leading most shards 0.3 s into the burst, then the others in turn,
    // each once the previous one is back.
    let first = busiest(&cluster, 1).await;
    let order: Vec<u64> = [first, first % 3 + 1, (first + 1) % 3 + 1].to_vec();
    sleep_until_ms(base * 1000 + 300).await;
    for node in order {
        let clean = cluster.terminate(node, Duration::from_secs(30)).await;
        assert!(
            clean,
            "node {node} did not stop cleanly on SIGTERM\n{}",
            cluster.logs()
        );
        cluster.restart(node).await;
    }

    // Watch past the time any re-send would come (last second + call timeout + claim margin).
    sleep_until_ms((base + spread + 16) * 1000).await;
    assert_once_on_time(&cluster, &rx, &ids, "rolling restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_during_a_burst_loses_repeats_and_delays_nothing() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster
        .register_app_with(
            1,
            "burst",
            8,
            Some(json!({"httpRetries": 0, "httpTimeout": 3000})),
        )
        .await;
    let url = rx.url("/ok/burst");
    let base = now() + 5;
    let ids = create_spread(&cluster, "burst", &url, BURST_RUNS, base, BURST_SPREAD).await;

    // SIGTERM the node leading most shards 0.3 s into the burst; restart it.
    let first = busiest(&cluster, 1).await;
    sleep_until_ms(base * 1000 + 300).await;
    let clean = cluster.terminate(first, Duration::from_secs(30)).await;
    assert!(
        clean,
        "node {first} did not stop cleanly\n{}",
        cluster.logs()
    );
    cluster.restart(first).await;

    sleep_until_ms((base + BURST_SPREAD + 16) * 1000).await;
    assert_once_on_time(&cluster, &rx, &ids, "SIGTERM during a burst").await;
}
