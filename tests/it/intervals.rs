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
        (
            json!({"cronExpression": null, "startTime": null, "endTime": null,
                "scheduleTime": now() + 60, "overlapPolicy": "SKIP"}),
            "apply to recurring schedules only",
        ),
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

/// An every-second cron with `policy` whose receiver takes 3 s, for 12 s: the gaps between
/// the calls' starts (ms), and the error messages of its runs that ended MISS.
async fn overlapping(policy: &str) -> (Vec<u64>, Vec<String>) {
    let cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster.register_app(1, "overlap", 2).await;
    let mut body = cron_calling("overlap", "* * * * * *", &rx.url("/slow/3000/x"));
    body["overlapPolicy"] = json!(policy);
    let id = cluster.create(1, &body).await;
    assert_eq!(cluster.schedule(2, &id).await["overlapPolicy"], policy);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let cron = format!("/goscheduler/schedules/{id}");
    let (status, _) = cluster.call(2, Method::DELETE, &cron, None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(4)).await;

    let mut d = rx.deliveries();
    d.sort_by_key(|d| d.received_ms);
    assert!(d.len() >= 3, "{} deliveries", d.len());
    assert!(
        d.iter()
            .all(|d| d.received_ms as i64 >= d.schedule_time * 1000),
        "early"
    );
    let gaps = d
        .windows(2)
        .map(|w| w[1].received_ms - w[0].received_ms)
        .collect();
    let path = format!("{cron}/runs?when=past&size=100");
    let (_, runs) = cluster.call(3, Method::GET, &path, None).await;
    let missed = runs["data"]["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "MISS")
        .map(|r| r["errorMessage"].as_str().unwrap_or_default().to_string())
        .collect();
    (gaps, missed)
}

/// `overlapPolicy: SKIP`: no call starts while the previous one is unanswered, and the
/// seconds in between end MISS with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_leaves_no_run_overlapping_the_previous_one() {
    let (gaps, missed) = overlapping("SKIP").await;
    assert!(
        gaps.iter().all(|g| *g >= 3000),
        "calls overlapped: gaps {gaps:?} ms"
    );
    assert!(
        missed.len() >= 2 * gaps.len(),
        "{} MISS for {} gaps",
        missed.len(),
        gaps.len()
    );
    assert!(
        missed
            .iter()
            .all(|m| m.contains("previous run still in flight")),
        "{missed:?}"
    );
    println!(
        "overlapPolicy SKIP, every second, 3 s receiver: gaps {gaps:?} ms, {} runs MISS",
        missed.len()
    );
}

/// `overlapPolicy: BUFFER_ONE`: the run due while a call is open waits and starts as soon
/// as that call is answered (no overlap, no idle second), one at most: the others are MISS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_one_fires_the_waiting_run_as_the_previous_ends() {
    let (gaps, missed) = overlapping("BUFFER_ONE").await;
    assert!(
        gaps.iter().all(|g| (3000..3800).contains(g)),
        "gaps {gaps:?} ms"
    );
    assert!(!missed.is_empty());
    assert!(
        missed.iter().all(|m| m.contains("already waiting")),
        "{missed:?}"
    );
    println!(
        "overlapPolicy BUFFER_ONE, every second, 3 s receiver: gaps {gaps:?} ms, {} runs MISS",
        missed.len()
    );
}
