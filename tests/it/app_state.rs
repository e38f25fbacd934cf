//! The timer trusts only app state that is current on the meta group: a shard leader cut
//! off from the meta leader alone (its own meta replica lagging) must neither fire the runs
//! of an app deactivated meanwhile nor MISS the runs of an app registered meanwhile.

use std::time::Duration;

use goscheduler::bench::receiver::Receiver;
use reqwest::Method;
use serde_json::json;

use crate::firing::{assert_missed, calling, finished};
use crate::harness::{now, Cluster, Options, SHARDS};

async fn register_via(cluster: &Cluster, via: u64, app: &str) {
    let body = json!({"appId": app, "partitions": 1, "active": true,
        "configuration": {"httpRetries": 0, "httpTimeout": 1000}});
    let (status, reply) = cluster
        .call(
            via,
            Method::POST,
            "/goscheduler/apps",
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_leader_cut_off_from_the_meta_leader_honours_app_changes() {
    let opts = Options {
        proxied: true,
        top: "balance_leaders = false",
        ..Options::default()
    };
    let cluster = Cluster::start(3, opts).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    // Two one-partition apps whose runs live in the same shard, led by node A; the meta
    // group is led by another node, B.
    let (gone, fresh) = ("gone", "fresh-x");
    let shard = goscheduler::shard::shard_of(gone, 0, SHARDS);
    let fresh = (0..1000)
        .map(|i| format!("{fresh}{i}"))
        .find(|f| goscheduler::shard::shard_of(f, 0, SHARDS) == shard)
        .expect("an app id in the same shard");
    let a = cluster.leader_of(1, shard.0).await.expect("shard leader");
    let b = a % 3 + 1;
    let c = b % 3 + 1;
    let out = cluster
        .ctl(
            c,
            &["transfer-leader", "--group", "0", "--to", &b.to_string()],
        )
        .await;
    assert!(out.contains(&format!("leader is now node {b}")), "{out}");
    register_via(&cluster, c, gone).await;
    let due = now() + 6;
    let gone_run = cluster
        .create(c, &calling(gone, due, &rx.url("/ok/gone")))
        .await;

    // A and B lose each other; each still reaches C, so both groups keep their quorum.
    cluster.cut(a, b);
    let (status, reply) = cluster
        .call(
            b,
            Method::POST,
            &format!("/goscheduler/apps/{gone}/deactivate"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    register_via(&cluster, c, &fresh).await;
    let fresh_run = cluster
        .create(c, &calling(&fresh, due, &rx.url("/ok/fresh")))
        .await;
    assert_eq!(
        cluster.leader_of(c, shard.0).await,
        Some(a),
        "shard leader moved"
    );

    // Past the due second and then some, still cut: the deactivated app's run is not fired.
    tokio::time::sleep(Duration::from_secs((due - now() + 3).max(0) as u64)).await;
    assert_eq!(
        rx.deliveries()
            .iter()
            .filter(|d| d.path == "/ok/gone")
            .count(),
        0,
        "a run of an app deactivated before its second fired"
    );
    cluster.heal_all();

    assert_missed(&cluster, c, &gone_run, "deactivated").await;
    let done = finished(&cluster, c, &fresh_run, Duration::from_secs(30)).await;
    assert_eq!(
        done["status"], "SUCCESS",
        "a just-registered app's run: {done}"
    );
    let deliveries = rx.deliveries();
    assert_eq!(
        deliveries.iter().filter(|d| d.path == "/ok/gone").count(),
        0
    );
    assert_eq!(
        deliveries.iter().filter(|d| d.path == "/ok/fresh").count(),
        1
    );
}
