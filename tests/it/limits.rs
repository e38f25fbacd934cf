//! Every request limit answers its documented status and message and leaves the store as
//! it was; large creates are split into entries a follower can take, so a follower paused
//! through 60 MB of them catches up and the shard keeps taking writes.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{fmt, group_on, now, one_time, Cluster, Options, SHARDS};

/// How many schedules app `app` has in the next `days` days, read through node 1.
async fn stored(cluster: &Cluster, app: &str) -> usize {
    let range = format!(
        "startTime={}&endTime={}",
        fmt(now() - 60),
        fmt(now() + 29 * 86_400)
    );
    let path = format!("/goscheduler/apps/{app}/schedules?size=1000&{range}");
    let (status, body) = cluster.call(1, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["schedules"].as_array().unwrap().len()
}

/// Posts `body` to node 1 on a connection of its own: a node answering 413 closes the
/// connection without reading the rest of the body, and a pooled client could send the next
/// request on that closing connection (seen under load: the request failed, status 0).
async fn post(cluster: &Cluster, path: &str, body: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let sent = client
        .post(cluster.url(1, path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    match sent {
        Ok(r) => {
            let status = r.status().as_u16();
            let reply: Value = r.json().await.unwrap_or_default();
            (status, reply["status"]["statusMessage"].to_string())
        }
        Err(e) => (0, e.to_string()),
    }
}

fn with_payload(app: &str, bytes: usize) -> Value {
    let mut item = one_time(app, now() + 3600);
    item["payload"] = json!("p".repeat(bytes));
    item
}

/// Opens a request whose body never comes: it holds one of the node's request slots until
/// the request times out. Returns the connection, to read the answer from.
async fn stalled_request(cluster: &Cluster) -> tokio::net::TcpStream {
    let url = reqwest::Url::parse(&cluster.url(1, "/")).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = "POST /goscheduler/schedules HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    conn.write_all(head.as_bytes()).await.unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_answers_its_status_and_leaves_the_store_unchanged() {
    let opts = Options {
        raft: "\n[limits]\nmax_concurrent_requests = 3\nrequest_timeout_ms = 2000\nmax_pending_per_app = 6",
        ..Options::default()
    };
    let cluster = Cluster::start(1, opts).await;
    let app =
        r#"{"appId":"lim","partitions":2,"active":true,"configuration":{"payloadSize":65536}}"#;
    assert_eq!(post(&cluster, "/goscheduler/apps", app).await.0, 200);
    cluster.create(1, &with_payload("lim", 65_536)).await;
    assert_eq!(stored(&cluster, "lim").await, 1);

    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "/goscheduler/apps",
            app.replace("lim", "greedy").replace("65536", "65537"),
            400,
            "payloadSize 65537 is outside 1..=65536",
        ),
        (
            "/goscheduler/schedules",
            with_payload("lim", 65_537).to_string(),
            400,
            "payload of 65537 bytes exceeds",
        ),
        (
            "/goscheduler/schedules",
            json!({"padding": "x".repeat(1 << 20)}).to_string(),
            413,
            "request body exceeds the limit of 1048576 bytes",
        ),
        (
            "/goscheduler/schedules/batch",
            json!({"schedules": (0..300).map(|_| with_payload("lim", 60_000)).collect::<Vec<_>>()})
                .to_string(),
            413,
            "request body exceeds the limit of 16777216 bytes",
        ),
        (
            "/goscheduler/schedules",
            one_time("lim", now() + 36_501 * 86_400).to_string(),
            400,
            "more than 36500 days ahead",
        ),
        (
            "/goscheduler/schedules",
            one_time("lim", 99_999_999_999).to_string(),
            400,
            "more than 36500 days ahead",
        ),
        (
            "/goscheduler/schedules",
            {
                let mut s = one_time("lim", now() + 60);
                s["callback"]["details"]["headers"] =
                    (0..33).map(|i| (format!("X-H{i}"), json!("v"))).collect();
                s.to_string()
            },
            400,
            "33 callback headers",
        ),
        (
            "/goscheduler/schedules",
            {
                let mut s = one_time("lim", now() + 60);
                s["callback"]["details"]["url"] = json!(format!("http://h/{}", "a".repeat(3000)));
                s.to_string()
            },
            400,
            "exceeds the limit of 2048 bytes",
        ),
        (
            "/goscheduler/schedules/batch",
            json!({"schedules": (0..1001).map(|_| one_time("lim", now() + 60)).collect::<Vec<_>>()})
                .to_string(),
            400,
            "a batch holds 1 to 1000 schedules",
        ),
    ];
    for (path, body, status, message) in cases {
        let (got, said) = post(&cluster, path, &body).await;
        assert_eq!(got, status, "{path} ({} bytes): {said}", body.len());
        assert!(said.contains(message), "{path}: {said:?} lacks {message:?}");
    }
    let (status, body) = cluster
        .call(
            1,
            Method::GET,
            "/goscheduler/apps/lim/schedules?size=1001",
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        stored(&cluster, "lim").await,
        1,
        "a refused request stored something"
    );

    // Pending schedules per app: 6 (one partition holds the whole share), then 429 —
    // single and batch — until one is deleted.
    cluster.register_app(1, "few", 1).await;
    let mut ids = vec![];
    for _ in 0..6 {
        ids.push(cluster.create(1, &one_time("few", now() + 3600)).await);
    }
    let (status, said) = post(
        &cluster,
        "/goscheduler/schedules",
        &one_time("few", now() + 60).to_string(),
    )
    .await;
    assert_eq!(status, 429, "{said}");
    assert!(said.contains("limits.max_pending_per_app"), "{said}");
    let batch = json!({"schedules": [one_time("few", now() + 60), one_time("few", now() + 61)]});
    let (status, reply) = cluster
        .call(
            1,
            Method::POST,
            "/goscheduler/schedules/batch",
            Some(&batch.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    for item in reply["data"]["results"].as_array().unwrap() {
        assert_eq!(item["statusCode"], 429, "{reply}");
    }
    assert_eq!(stored(&cluster, "few").await, 6);
    let (status, said) = cluster
        .call(
            1,
            Method::DELETE,
            &format!("/goscheduler/schedules/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(status, 200, "{said}");
    cluster.create(1, &one_time("few", now() + 3600)).await;

    // Three requests whose bodies never arrive hold every slot: the next is shed at once.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(stalled_request(&cluster).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shed_at = Instant::now();
    let (status, headers, body) = cluster
        .call_with(1, Method::GET, "/goscheduler/apps", None, &[])
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        shed_at.elapsed() < Duration::from_secs(1),
        "shedding waited"
    );
    assert_eq!(headers["retry-after"], "1");
    let said = body["status"]["statusMessage"].as_str().unwrap();
    assert!(said.contains("3 requests in flight"), "{said}");
    // Each stalled request is answered 503 at the timeout, saying the write may have applied.
    for mut conn in stalled {
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut answer))
            .await
            .expect("a stalled request is answered")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("timed out after 2s"), "{answer}");
        assert!(answer.contains("may or may not"), "{answer}");
    }
    // The slots are free again.
    let (status, _) = cluster
        .call(1, Method::GET, "/goscheduler/apps", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(stored(&cluster, "lim").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_paused_through_60_mb_of_creates_catches_up_and_writes_go_on() {
    let mut cluster = Cluster::start(
        3,
        Options {
            top: "balance_leaders = false",
            ..Options::default()
        },
    )
    .await;
    let limits = json!({"payloadSize": 65536});
    cluster.register_app_with(1, "heavy", 1, Some(limits)).await;
    let shard = goscheduler::shard::shard_of("heavy", 0, SHARDS).0;
    let leader = cluster.leader_of(1, shard).await.expect("shard leader");
    let paused = leader % 3 + 1;
    cluster.signal(paused, "STOP");
    // Four batches of 250 × 60 KB: 60 MB, in entries of at most 8 MiB — together far more
    // than one transport message may carry.
    let mut ids = Vec::new();
    for _ in 0..4 {
        let items: Vec<Value> = (0..250).map(|_| with_payload("heavy", 60_000)).collect();
        ids.extend(cluster.create_batch(leader, &items).await);
    }
    cluster.signal(paused, "CONT");
    // Small creates into the same shard keep succeeding, each within a second, while the
    // follower catches up (the old build wedged here; the first fix stalled 5-8 s while the
    // leader re-sent 32 MB messages that could not beat openraft's heartbeat-sized budget).
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        cluster
            .create(leader, &one_time("heavy", now() + 3600))
            .await;
        slowest = slowest.max(started.elapsed());
    }
    println!("slowest small create while the follower caught up: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "a small create took {slowest:?}"
    );
    cluster
        .eventually(
            "the paused follower catches up",
            Duration::from_secs(60),
            async || {
                let s = cluster.status(leader).await;
                let applied = |node: u64| group_on(&s, node, shard)["applied_index"].as_u64();
                applied(paused).is_some() && applied(paused) == applied(leader)
            },
        )
        .await;
    // Every node restarted comes back healthy and serves what was written.
    for node in 1..=3 {
        cluster.kill(node);
    }
    for node in 1..=3 {
        cluster.restart_with_clock(node, None);
    }
    for node in 1..=3 {
        cluster.wait_healthy(node, Duration::from_secs(60)).await;
        let s = cluster.schedule(node, ids.last().unwrap()).await;
        assert_eq!(s["payload"].as_str().unwrap().len(), 60_000);
    }
    cluster
        .create(paused, &one_time("heavy", now() + 3600))
        .await;
}
