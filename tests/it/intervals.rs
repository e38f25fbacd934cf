//! Interval rules and windows on a 3-node cluster: `@every 2s` inside a 20 s window fires
//! 10 times, 2 s apart; `jitterSeconds` spreads crons due at the same second over the
//! jitter (their planned runs, as `runs?when=future` shows them).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::firing::cron_calling;
use crate::harness::{now, Cluster, Options};
use goscheduler::bench::receiver::Receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_two_seconds_in_a_twenty_second_window_fires_ten_times() {
    let cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster.register_app(1, "ticking", 2).await;
    let start = now() + 3;
    let body = json!({"appId": "ticking", "payload": "{}", "cronExpression": "@every 2s",
        "startTime": start, "endTime": start + 19,
        "callback": {"type": "http", "details": {"url": rx.url("/ok/tick"), "method": "POST"}}});
    let id = cluster.create(2, &body).await;
    let (_, got) = cluster
        .call(
            3,
            Method::GET,
            &format!("/goscheduler/schedules/{id}"),
            None,
        )
        .await;
    assert_eq!(got["data"]["schedule"]["cronExpression"], "@every 2s");
    assert_eq!(got["data"]["schedule"]["startTime"], start);
    assert_eq!(got["data"]["schedule"]["endTime"], start + 19);

    let wait = (start + 22) * 1000 - chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    let mut d = rx.deliveries();
    d.sort_by_key(|d| d.schedule_time);
    let times: Vec<i64> = d.iter().map(|d| d.schedule_time).collect();
    assert_eq!(times, (0..10).map(|n| start + 2 * n).collect::<Vec<_>>());
    let gaps: Vec<i64> = d
        .windows(2)
        .map(|w| w[1].received_ms as i64 - w[0].received_ms as i64)
        .collect();
    assert!(
        gaps.iter().all(|g| (1950..=2050).contains(g)),
        "gaps {gaps:?} ms"
    );
    println!("@every 2s: 10 deliveries, gaps {gaps:?} ms");

    // Bad windows and intervals are named.
    for (change, message) in [
        (json!({"endTime": now() - 5}), "endTime"),
        (
            json!({"startTime": start + 50, "endTime": start + 40}),
            "not after startTime",
        ),
        (json!({"cronExpression": "@every 500ms"}), "whole seconds"),
        (json!({"jitterSeconds": 4000}), "jitterSeconds 4000 exceeds"),
    ] {
        let mut bad = body.clone();
        for (k, v) in change.as_object().unwrap() {
            bad[k] = v.clone();
        }
        let (status, reply) = cluster
            .call(
                1,
                Method::POST,
                "/goscheduler/schedules",
                Some(&bad.to_string()),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {reply}");
        let said = reply["status"]["statusMessage"].as_str().unwrap();
        assert!(said.contains(message), "{bad}: {said}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_spreads_a_thousand_crons_due_at_the_same_second() {
    let cluster = Cluster::start(3, Options::default()).await;
    cluster.register_app(1, "herd", 8).await;
    let item = json!({"appId": "herd", "payload": "{}", "cronExpression": "0 * * * * *",
        "jitterSeconds": 10,
        "callback": {"type": "http", "details": {"url": "http://127.0.0.1:9/cb", "method": "POST"}}});
    let mut ids = vec![];
    for _ in 0..2 {
        ids.extend(cluster.create_batch(1, &vec![item.clone(); 500]).await);
    }
    // Where each cron's next run falls in its minute.
    let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        let path = format!("/goscheduler/schedules/{id}/runs?when=future&size=1");
        let (status, reply) = cluster
            .call(1 + i as u64 % 3, Method::GET, &path, None)
            .await;
        assert_eq!(status, 200, "{reply}");
        let t = reply["data"]["schedules"][0]["scheduleTime"]
            .as_i64()
            .unwrap();
        *per_second.entry(t.rem_euclid(60)).or_default() += 1;
    }
    println!(
        "jitterSeconds 10, 1,000 crons due at :00 — runs per second of the minute: {per_second:?}"
    );
    assert_eq!(
        per_second.keys().copied().collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(
        per_second.values().all(|n| (50..=150).contains(n)),
        "{per_second:?}"
    );
}

/// `overlapPolicy: SKIP` on an every-second cron whose receiver takes 3 s: no call starts
/// while the previous one is unanswered, and the seconds in between end MISS with the
/// reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_leaves_no_run_overlapping_the_previous_one() {
    let cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster.register_app(1, "overlap", 2).await;
    let mut body = cron_calling("overlap", "* * * * * *", &rx.url("/slow/3000/x"));
    body["overlapPolicy"] = json!("SKIP");
    let id = cluster.create(1, &body).await;
    assert_eq!(cluster.schedule(2, &id).await["overlapPolicy"], "SKIP");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (status, _) = cluster
        .call(
            2,
            Method::DELETE,
            &format!("/goscheduler/schedules/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(4)).await;

    let mut d = rx.deliveries();
    d.sort_by_key(|d| d.received_ms);
    let gaps: Vec<u64> = d
        .windows(2)
        .map(|w| w[1].received_ms - w[0].received_ms)
        .collect();
    assert!(d.len() >= 2, "{} deliveries", d.len());
    assert!(
        gaps.iter().all(|g| *g >= 3000),
        "a call started before the previous was answered: gaps {gaps:?} ms"
    );
    let path = format!("/goscheduler/schedules/{id}/runs?when=past&size=100");
    let (_, runs) = cluster.call(3, Method::GET, &path, None).await;
    let runs = runs["data"]["schedules"].as_array().unwrap().clone();
    let skipped: Vec<&serde_json::Value> = runs.iter().filter(|r| r["status"] == "MISS").collect();
    assert!(
        skipped.len() >= 2 * (d.len() - 1),
        "{} MISS for {} deliveries",
        skipped.len(),
        d.len()
    );
    assert!(skipped.iter().all(|r| r["errorMessage"]
        .as_str()
        .is_some_and(|m| m.contains("previous run still in flight"))));
    println!(
        "overlapPolicy SKIP, every second, 3 s receiver: {} deliveries, gaps {gaps:?} ms, {} runs MISS",
        d.len(),
        skipped.len()
    );
}
