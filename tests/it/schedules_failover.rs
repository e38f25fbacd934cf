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
