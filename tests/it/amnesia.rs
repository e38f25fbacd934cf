//! A node whose data dir was lost must not take part under its old id: with an empty log
//! it could vote a lagging peer into overwriting committed entries. It refuses to start
//! until an operator removes it, and rejoins as a new member after `add-node`.

use std::time::Duration;

use reqwest::Method;

use crate::harness::{Cluster, Options};

async fn lists(cluster: &Cluster, node: u64, app: &str) -> bool {
    let path = format!("/goscheduler/apps?app_id={app}");
    let (status, body) = cluster.call(node, Method::GET, &path, None).await;
    assert_ne!(status, 404, "node {node} lost app {app}: {body}");
    status == 200
}

/// Every incarnation recorded; node 3 down while app W is registered through node 1
/// (committed on 1 and 2 only); then 1 and 2 down and node 2's data dir lost.
async fn w_committed_on_1_and_2_then_2_wiped() -> Cluster {
    let mut cluster = Cluster::start(3, Options::default()).await;
    cluster
        .eventually(
            "every node's incarnation is recorded",
            Duration::from_secs(30),
            async || {
                let s = cluster.status(1).await;
                s["nodes"].as_array().unwrap().iter().all(|n| {
                    let admitted: Vec<u64> = n["admitted"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
                        .unwrap_or_default();
                    admitted == [1, 2, 3]
                })
            },
        )
        .await;

    cluster.kill(3);
    cluster.register_app(1, "w", 1).await;
    cluster.kill(1);
    cluster.kill(2);
    std::fs::remove_dir_all(cluster.data_dir(2)).unwrap();
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_data_refuses_to_take_part_until_readmitted() {
    let mut cluster = w_committed_on_1_and_2_then_2_wiped().await;
    cluster.start_with_clock(2, None);
    cluster.start_with_clock(3, None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start_with_clock(1, None);

    // Node 2 sees a peer that knows it and stops, saying why.
    cluster
        .eventually(
            "node 2 refuses to start",
            Duration::from_secs(30),
            async || cluster.exited(2).is_some(),
        )
        .await;
    assert!(!cluster.exited(2).unwrap().success());
    assert!(
        cluster.logs().contains("its data was lost"),
        "{}",
        cluster.logs()
    );
    // W survives on every node that answers (503 while there is no quorum is fine).
    w_is_listed_by_1_and_3(&cluster).await;

    // Re-admission: remove it, start it empty, add it back.
    readmit_node_2(&mut cluster, true).await;
    assert!(cluster.exited(2).is_none());
}

/// The second line of defence: node 2 lost its data and takes part anyway (its own check
/// skipped, as a broken or older node would). Its new incarnation is refused by its peers
/// — its vote for lagging node 3 does not count, its messages are not served — so W,
/// committed on nodes 1 and 2 only, survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_refuse_a_node_that_lost_its_data_and_takes_part_anyway() {
    let mut cluster = w_committed_on_1_and_2_then_2_wiped().await;
    cluster.start_with_env(2, &[("GOSCHED_FAULT_SKIP_AMNESIA_GUARD", "1")]);
    cluster.start_with_clock(3, None);
    // Long enough for nodes 2 and 3 to elect 3, had node 2's vote counted.
    tokio::time::sleep(Duration::from_secs(6)).await;
    cluster.start_with_clock(1, None);

    w_is_listed_by_1_and_3(&cluster).await;
    assert!(
        cluster.logs().contains("its data dir was replaced"),
        "{}",
        cluster.logs()
    );
    // Node 2 stays out: it never answers for W, neither listing it nor 404 (`lists`).
    for _ in 0..3 {
        assert!(!lists(&cluster, 2, "w").await, "node 2 was admitted");
    }
    // Once forgotten, its new incarnation joins as a new member.
    readmit_node_2(&mut cluster, false).await;
}

/// Nodes 1 and 3 come back healthy and list W (never 404: `lists`).
async fn w_is_listed_by_1_and_3(cluster: &Cluster) {
    for node in [1, 3] {
        cluster.wait_healthy(node, Duration::from_secs(60)).await;
        cluster
            .eventually("w is listed", Duration::from_secs(30), async || {
                lists(cluster, node, "w").await
            })
            .await;
    }
}

/// `remove-node` 2 (forgetting it), start it again when `restart` (it exited), `add-node`
/// it back: W is then listed through node 2.
async fn readmit_node_2(cluster: &mut Cluster, restart: bool) {
    let out = cluster.ctl(1, &["remove-node", "--id", "2"]).await;
    assert!(out.contains("node 2 forgotten"), "{out}");
    if restart {
        cluster.start_with_clock(2, None);
    }
    let (http, grpc) = (cluster.node(2).http.clone(), cluster.node(2).grpc.clone());
    let add = [
        "add-node",
        "--id",
        "2",
        "--grpc-addr",
        &grpc,
        "--http-addr",
        &http,
    ];
    let out = cluster.ctl(1, &add).await;
    assert!(out.contains("node 2 added as voter"), "{out}");
    cluster.wait_healthy(2, Duration::from_secs(60)).await;
    cluster
        .eventually(
            "w is listed through node 2",
            Duration::from_secs(60),
            async || lists(cluster, 2, "w").await,
        )
        .await;
}
