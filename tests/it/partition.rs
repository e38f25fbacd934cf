//! Cut the meta leader off from the others (test-owned TCP proxies on every link): it can
//! neither acknowledge a write nor serve a read; the majority elects a new leader and
//! keeps serving; after healing, every node agrees and nothing acknowledged is lost.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;

use crate::harness::{Cluster, Options};

async fn register(cluster: &Cluster, node: u64, app: &str) -> u16 {
    let body = format!(r#"{{"appId":"{app}","partitions":1,"active":true}}"#);
    cluster
        .call(node, Method::POST, "/goscheduler/apps", Some(&body))
        .await
        .0
}

async fn listed(cluster: &Cluster, node: u64) -> BTreeSet<String> {
    let (status, json) = cluster
        .call(node, Method::GET, "/goscheduler/apps", None)
        .await;
    assert_eq!(status, 200, "list through node {node}: {json}");
    json["data"]["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["appId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_acknowledges_nothing_and_the_majority_goes_on() {
    let cluster = Cluster::start(
        3,
        Options {
            proxied: true,
            ..Options::default()
        },
    )
    .await;
    let mut acked = BTreeSet::new();
    for i in 0..30 {
        let app = format!("before-{i}");
        assert_eq!(register(&cluster, 1 + i % 3, &app).await, 200);
        acked.insert(app);
    }

    let old = cluster.leader_of(1, 0).await.expect("meta leader");
    let others: Vec<u64> = (1..=3).filter(|n| *n != old).collect();
    cluster.isolate(old);
    // The proxies' relays see the cut asynchronously: a write sent at once could still
    // reach a follower through a relay not yet cut — then it is committed by that majority
    // (legitimately: its 503 says it may have been applied) and surfaces after healing.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The isolated leader cannot commit: the write is refused, not acknowledged.
    let status = register(&cluster, old, "through-isolated").await;
    assert_eq!(
        status, 503,
        "a write through the isolated leader must not succeed"
    );
    // Nor may it answer a read it cannot prove current.
    let (status, body) = cluster
        .call(old, Method::GET, "/goscheduler/apps", None)
        .await;
    assert_eq!(status, 503, "a read through the isolated leader: {body}");

    // The majority elects a leader among themselves and goes on.
    for i in 0..20 {
        let app = format!("during-{i}");
        assert_eq!(register(&cluster, others[i % 2], &app).await, 200, "{app}");
        acked.insert(app);
    }
    let new = cluster.leader_of(others[0], 0).await.unwrap();
    assert_ne!(new, old);

    cluster.heal_all();
    cluster.wait_healthy(old, Duration::from_secs(30)).await;
    let mut views = vec![];
    for node in 1..=3 {
        let apps = listed(&cluster, node).await;
        let missing: Vec<_> = acked.difference(&apps).collect();
        assert!(missing.is_empty(), "node {node} lost {missing:?}");
        assert!(
            !apps.contains("through-isolated"),
            "an uncommitted write surfaced on node {node}"
        );
        views.push(apps);
    }
    assert!(
        views.windows(2).all(|w| w[0] == w[1]),
        "nodes disagree after healing"
    );
    // The old leader's own replica catches up: it applies what the majority committed.
    cluster
        .eventually(
            "old leader catches up",
            Duration::from_secs(20),
            async || {
                let s = cluster.status(old).await;
                let applied = |n: u64| {
                    let node = s["nodes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|x| x["node_id"] == n)
                        .cloned();
                    node.map(|x| x["groups"][0]["applied_index"].clone())
                };
                let leader = s["nodes"][0]["groups"][0]["leader"].as_u64().unwrap_or(0);
                leader != 0 && applied(old).is_some() && applied(old) == applied(leader)
            },
        )
        .await;
}
