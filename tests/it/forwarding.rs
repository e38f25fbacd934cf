//! A write forwarded to its group's leader whose answer is lost (the leader received and
//! applied it, then the connection was reset) is reported as "unknown outcome" (503), and
//! is never sent again: the schedule exists once.

use std::time::Duration;

use reqwest::Method;

use crate::harness::{now, one_time, Cluster, Options, SHARDS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_whose_answer_is_lost_is_unknown_and_applied_once() {
    let cluster = Cluster::start(
        3,
        Options {
            proxied: true,
            ..Options::default()
        },
    )
    .await;
    cluster.register_app(1, "fwd", 1).await;
    let shard = goscheduler::shard::shard_of("fwd", 0, SHARDS);
    let leader = cluster.leader_of(1, shard.0).await.expect("shard leader");
    let via = leader % 3 + 1;

    // Requests from `via` reach the leader; its answers are thrown away, then the
    // connection is reset.
    cluster.link(via, leader).swallow();
    let body = one_time("fwd", now() + 3600).to_string();
    let create = cluster.call(via, Method::POST, "/goscheduler/schedules", Some(&body));
    let reset = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.link(via, leader).cut();
    };
    let ((status, reply), ()) = tokio::join!(create, reset);
    assert_eq!(status, 503, "{reply}");
    let why = reply["status"]["statusMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("may or may not have been applied"), "{reply}");

    cluster.heal_all();
    let count = || async {
        let (status, reply) = cluster
            .call(leader, Method::GET, "/goscheduler/apps/fwd/schedules", None)
            .await;
        (status == 200).then(|| reply["status"]["totalCount"].as_u64().unwrap_or(0))
    };
    cluster
        .eventually(
            "the schedule readable",
            Duration::from_secs(20),
            async || count().await == Some(1),
        )
        .await;
    // And it stays one: nothing re-sends the write later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count().await, Some(1));
}
