//! Kill -9 the leader of the shard taking an app's schedules while creating them through
//! the other nodes: every create acknowledged with success is readable from every node.

use reqwest::Method;

use crate::harness::{now, one_time, Cluster, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_a_shard_leader_kill() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    // One partition: every schedule of the app goes to one shard.
    cluster.register_app(1, "solo", 1).await;
    let time = now() + 3600;
    let body = one_time("solo", time).to_string();

    // Find the shard: create one schedule and read the shard from the admin status.
    let (status, first) = cluster
        .call(1, Method::POST, "/goscheduler/schedules", Some(&body))
        .await;
    assert_eq!(status, 200, "{first}");
    let shard_group = {
        let id = uuid::Uuid::parse_str(first["data"]["schedule"]["scheduleId"].as_str().unwrap())
            .unwrap();
        goscheduler::schedule::id::shard_of_id(&id, crate::harness::SHARDS)
            .unwrap()
            .0
    };
    let leader = cluster
        .leader_of(1, shard_group)
        .await
        .expect("shard leader");
    let others: Vec<u64> = (1..=3).filter(|n| *n != leader).collect();

    let mut acked = vec![first["data"]["schedule"]["scheduleId"]
        .as_str()
        .unwrap()
        .to_string()];
    let mut failed = 0;
    for i in 0..200 {
        if i == 60 {
            cluster.kill(leader);
        }
        let (status, reply) = cluster
            .call(
                others[i % 2],
                Method::POST,
                "/goscheduler/schedules",
                Some(&body),
            )
            .await;
        if status == 200 {
            acked.push(
                reply["data"]["schedule"]["scheduleId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        } else {
            assert_eq!(
                status, 503,
                "only unavailability may fail a create: {reply}"
            );
            failed += 1;
        }
    }
    assert!(
        acked.len() > 190,
        "{} acknowledged, {failed} failed",
        acked.len()
    );

    cluster.restart(leader).await;
    for id in &acked {
        for node in 1..=3 {
            cluster.schedule(node, id).await;
        }
    }
}

/// A client retries a create whose answer it lost (its node died): with the same
/// `Idempotency-Key` the retry, through another node after the failover, answers the
/// schedule the first attempt created, and the run is called once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_retried_with_its_idempotency_key_after_a_failover_creates_nothing_new() {
    use goscheduler::bench::receiver::Receiver;
    use goscheduler::shard::{partition_of_key, shard_of};
    use std::time::Duration;

    let mut cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster.register_app(1, "retrier", 4).await;
    let key = "order-4711";
    let shard = shard_of(
        "retrier",
        partition_of_key("retrier", key, 4),
        crate::harness::SHARDS,
    );
    // The first attempt goes to the shard's leader, which dies right after answering.
    let first_node = cluster.leader_of(1, shard.0).await.expect("shard leader");
    let body = crate::firing::calling("retrier", now() + 8, &rx.url("/ok/once")).to_string();
    let (status, headers, first) = create(&cluster, first_node, &body, key).await;
    assert_eq!(status, 200, "{first}");
    assert!(headers.get("idempotent-replayed").is_none());
    let id = first["data"]["schedule"]["scheduleId"]
        .as_str()
        .unwrap()
        .to_string();
    cluster.kill(first_node);

    let other = first_node % 3 + 1;
    let (status, headers, retry) = create(&cluster, other, &body, key).await;
    assert_eq!(status, 200, "{retry}");
    assert_eq!(
        retry["data"]["schedule"]["scheduleId"],
        id.as_str(),
        "{retry}"
    );
    assert_eq!(headers["idempotent-replayed"], "true");
    // In a batch too (a per-item key), and the same key for another request is refused.
    let mut item: serde_json::Value = serde_json::from_str(&body).unwrap();
    item["idempotencyKey"] = key.into();
    let batch = serde_json::json!({ "schedules": [item] }).to_string();
    let (status, reply) = cluster
        .call(
            other,
            Method::POST,
            "/goscheduler/schedules/batch",
            Some(&batch),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let result = &reply["data"]["results"][0];
    assert_eq!(result["schedule"]["scheduleId"], id.as_str(), "{reply}");
    assert_eq!(result["replayed"], true, "{reply}");
    let changed = body.replace("/ok/once", "/ok/elsewhere");
    let (status, _, refused) = create(&cluster, other, &changed, key).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["status"]["statusMessage"]
            .as_str()
            .unwrap()
            .contains(key),
        "{refused}"
    );

    // A key that is not 1-255 visible ASCII characters is a 400 naming the problem.
    for bad in ["with space", &"k".repeat(256)] {
        let (status, _, reply) = create(&cluster, other, &body, bad).await;
        assert_eq!(status, 400, "{reply}");
        let why = reply["status"]["statusMessage"].as_str().unwrap();
        assert!(why.contains("Idempotency-Key must be"), "{reply}");
    }

    cluster.restart(first_node).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let calls: Vec<_> = rx.deliveries().into_iter().map(|d| d.schedule_id).collect();
    assert_eq!(calls, vec![id], "one run, called once");
}

/// `POST /goscheduler/schedules` with an `Idempotency-Key`.
async fn create(
    cluster: &Cluster,
    via: u64,
    body: &str,
    key: &str,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    cluster
        .call_with(
            via,
            Method::POST,
            "/goscheduler/schedules",
            Some(body),
            &[("Idempotency-Key", key)],
        )
        .await
}
