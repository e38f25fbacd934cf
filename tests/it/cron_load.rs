//! The cron poison pill, defused: 60 every-second crons with the largest allowed payload
//! (64 KiB) fire for `CRON_SECS` (40 s in the suite; 300 s for the figure) — each
//! run stores no copy of the payload, node memory stays far under 1 GiB, disk grows by what
//! runs cost without payloads, every callback still carries the payload, the per-app cron
//! cap answers 429, and a restart of every node comes back firing.

use std::time::{Duration, Instant};

use goscheduler::bench::receiver::Receiver;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{bytes_in, env_or, Cluster, Options};

const CRONS: usize = 60;
const PAYLOAD: usize = 65_536;

fn every_second(url: &str, n: usize) -> Value {
    json!({
        "appId": "tick", "payload": format!("{n:05}{}", "p".repeat(PAYLOAD - 5)),
        "cronExpression": "* * * * * *",
        "callback": {"type": "http", "details": {"url": url, "method": "POST"}}
    })
}

/// Checks and drops what the receiver got: every body is a whole cron payload. Returns
/// how many calls there were.
fn drain(rx: &Receiver) -> usize {
    let got = rx.deliveries();
    rx.clear();
    for d in &got {
        assert_eq!(
            d.body.len(),
            PAYLOAD,
            "a run fired without its cron's payload"
        );
        assert!(d.parent_schedule_id.is_some());
    }
    got.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_every_second_crons_with_64_kib_payloads_cost_runs_not_payloads() {
    let secs: u64 = env_or("CRON_SECS", 40);
    let mut cluster = Cluster::start(
        3,
        Options {
            raft: "\n[limits]\nmax_crons_per_app = 60",
            ..Options::default()
        },
    )
    .await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    let limits = json!({"payloadSize": 65536});
    cluster.register_app_with(1, "tick", 8, Some(limits)).await;
    let url = rx.url("/ok/tick");
    let crons: Vec<Value> = (0..CRONS).map(|n| every_second(&url, n)).collect();
    cluster.create_batch(2, &crons).await;
    // Disk is measured from here: what firing costs, not what storing the crons did.
    let disk_before: u64 = (1..=3).map(|n| bytes_in(&cluster.data_dir(n))).sum();

    // The cap: a 61st cron is refused, alone or in a batch, naming the limit.
    let (status, body) = cluster
        .call(
            3,
            Method::POST,
            "/goscheduler/schedules",
            Some(&every_second(&url, 61).to_string()),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    let said = body["status"]["statusMessage"].as_str().unwrap();
    assert!(said.contains("limits.max_crons_per_app"), "{said}");
    let batch = json!({"schedules": [every_second(&url, 62)]}).to_string();
    let (status, body) = cluster
        .call(
            1,
            Method::POST,
            "/goscheduler/schedules/batch",
            Some(&batch),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["results"][0]["statusCode"], 429, "{body}");

    // Fire for a while, watching every node's memory.
    let started = Instant::now();
    let (mut calls, mut max_rss) = (0, 0);
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        calls += drain(&rx);
        for n in 1..=3 {
            max_rss = max_rss.max(cluster.rss(n).unwrap_or(0));
        }
    }
    calls += drain(&rx);
    let disk_after: u64 = (1..=3).map(|n| bytes_in(&cluster.data_dir(n))).sum();
    let per_call = (disk_after.saturating_sub(disk_before)) / 3 / calls.max(1) as u64;
    println!(
        "{CRONS} crons x {secs} s: {calls} calls, max node RSS {} MiB, data dirs grew {} MiB \
         per node ({per_call} B per call per node)",
        max_rss >> 20,
        (disk_after.saturating_sub(disk_before) / 3) >> 20,
    );
    let expected = CRONS * secs as usize;
    assert!(calls * 10 >= expected * 8, "{calls} calls of ~{expected}");
    assert!(max_rss < 1 << 30, "a node reached {max_rss} bytes");
    assert!(
        per_call < (PAYLOAD / 4) as u64,
        "each call cost {per_call} bytes of disk per node: payloads are being copied"
    );

    // Every node restarted comes back and the crons fire on.
    for n in 1..=3 {
        cluster.kill(n);
    }
    for n in 1..=3 {
        cluster.restart_with_clock(n, None);
    }
    for n in 1..=3 {
        cluster.wait_healthy(n, Duration::from_secs(60)).await;
    }
    drain(&rx);
    cluster
        .eventually(
            "the crons fire after the restart",
            Duration::from_secs(30),
            async || drain(&rx) >= CRONS,
        )
        .await;
}
