//! A node whose wall clock is far off its peers' (NTP broken, faked with libfaketime) must
//! not lead or fire: runs fall due on the healthy nodes' clocks, none early, none missed,
//! none twice, and the skewed node says why.

use std::collections::HashMap;
use std::time::Duration;

use goscheduler::bench::receiver::Receiver;
use reqwest::Method;
use serde_json::{json, Value};

use crate::firing::calling;
use crate::harness::{env_or, now, Cluster, Options, SHARDS};

/// Runs per skew, due over `SPREAD` seconds from `LEAD` seconds after they are created
/// (`SKEW_RUNS`, `SKEW_LEAD`, `SKEW_SPREAD` override them, e.g. 300 runs 20-80 s ahead).
const RUNS: usize = 150;
const LEAD: i64 = 6;
const SPREAD: i64 = 15;

/// How many groups node `id` leads, as it reports itself.
fn led(node: &Value) -> usize {
    node["groups"]
        .as_array()
        .map_or(0, |g| g.iter().filter(|g| g["role"] == "Leader").count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_skewed_clock_leads_nothing_and_fires_nothing() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster
        .register_app_with(1, "skew", SHARDS, Some(json!({"httpRetries": 0})))
        .await;
    let (runs, lead, spread) = (
        env_or("SKEW_RUNS", RUNS),
        env_or("SKEW_LEAD", LEAD),
        env_or("SKEW_SPREAD", SPREAD),
    );

    for offset in ["+40s", "-40s"] {
        cluster.restart_with_clock(3, Some(offset));
        cluster
            .eventually(
                "node 3 distrusts its clock",
                Duration::from_secs(60),
                async || {
                    let n = cluster.own_status(3).await;
                    n["clock_trusted"] == false
                        && n["clocks"].as_array().is_some_and(|c| c.len() == 2)
                        && led(&n) == 0
                },
            )
            .await;
        let n = cluster.own_status(3).await;
        println!("node 3 at {offset}: {}", n["clock_verdict"]);
        for c in n["clocks"].as_array().unwrap() {
            let off = c["offset_ms"].as_i64().unwrap();
            assert!((39_000..41_000).contains(&off.abs()), "{n}");
            assert_eq!(c["within_bound"], false);
        }
        let (status, health) = cluster
            .call(3, Method::GET, "/goscheduler/healthcheck", None)
            .await;
        assert_eq!(status, 503, "{health}");
        assert_eq!(health["clockTrusted"], false, "{health}");
        // The healthy nodes measured it too, and trust their own clocks.
        let n1 = cluster.own_status(1).await;
        assert_eq!(n1["clock_trusted"], true, "{n1}");

        let url = rx.url(&format!("/ok/{}", &offset[..1]));
        let base = now() + lead;
        let items: Vec<_> = (0..runs)
            .map(|i| calling("skew", base + i as i64 % spread, &url))
            .collect();
        let ids = cluster.create_batch(1, &items).await;
        assert_eq!(ids.len(), runs);

        // Meanwhile the skewed node never leads (sampled every second until the last run).
        while now() < base + spread + 2 {
            let n = cluster.own_status(3).await;
            assert_eq!(led(&n), 0, "node 3 leads with its clock {offset}: {n}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;

        let deliveries: Vec<_> = rx
            .deliveries()
            .into_iter()
            .filter(|d| d.path.ends_with(&url[url.rfind('/').unwrap()..]))
            .collect();
        let mut per_run: HashMap<&str, usize> = HashMap::new();
        for d in &deliveries {
            *per_run.entry(d.schedule_id.as_str()).or_default() += 1;
        }
        let lost = ids
            .iter()
            .filter(|id| !per_run.contains_key(id.as_str()))
            .count();
        let twice = per_run.values().filter(|n| **n > 1).count();
        let lateness: Vec<i64> = deliveries
            .iter()
            .map(|d| d.received_ms as i64 - d.schedule_time * 1000)
            .collect();
        let (early, max_late) = (
            lateness.iter().filter(|l| **l < 0).count(),
            lateness.iter().copied().max().unwrap_or(0),
        );
        println!(
            "clock {offset} on node 3: {runs} runs, {} deliveries, {lost} lost, {twice} twice, {early} early, max lateness {max_late} ms",
            deliveries.len()
        );
        assert_eq!(
            (lost, twice, early),
            (0, 0, 0),
            "lateness {lateness:?}\n{}",
            cluster.logs()
        );
        assert!(max_late < 1000, "a run was {max_late} ms late");
        for id in ids.iter().step_by(15) {
            let s = cluster.schedule(1, id).await;
            assert_eq!(s["status"], "SUCCESS", "{s}");
        }
    }

    // Its clock fixed, node 3 is trusted again and takes back its share of leaders.
    cluster.restart_with_clock(3, None);
    cluster
        .eventually("node 3 leads again", Duration::from_secs(60), async || {
            let n = cluster.own_status(3).await;
            n["clock_trusted"] == true && led(&n) > 0
        })
        .await;
}
