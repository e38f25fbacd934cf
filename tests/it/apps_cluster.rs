//! Apps through every node, with the meta leader killed (-9) mid-stream: nothing
//! acknowledged is lost; the killed node restarts and catches up; a node whose log was
//! purged meanwhile catches up through a snapshot.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::harness::{group_on, Cluster, Options};

/// Registers `app` through `node`; true if acknowledged with success.
async fn register(cluster: &Cluster, node: u64, app: &str) -> bool {
    registered(&try_register(cluster, node, app).await, app)
}

async fn try_register(cluster: &Cluster, node: u64, app: &str) -> (u16, Value) {
    let body = format!(r#"{{"appId":"{app}","partitions":2,"active":true}}"#);
    cluster
        .call(node, Method::POST, "/goscheduler/apps", Some(&body))
        .await
}

fn registered((status, json): &(u16, Value), app: &str) -> bool {
    let ok = *status == 200 && json["status"]["statusCode"] == 201;
    if ok {
        assert_eq!(json["data"]["appId"], app);
    }
    ok
}

/// Registers `app` through `node` as a careful client does: an answer saying the outcome
/// is unknown (503, e.g. the forward's connection was reset by a node just killed) is
/// retried; a retry finding the app registered counts only if the app is listed.
async fn register_retrying(cluster: &Cluster, node: u64, app: &str) -> Result<(), String> {
    let mut unknown = false;
    for _ in 0..20 {
        let answer = try_register(cluster, node, app).await;
        if registered(&answer, app) {
            return Ok(());
        }
        if unknown && answer.0 == 400 && listed_apps(cluster, node).await.contains(app) {
            return Ok(());
        }
        if answer.0 != 503 {
            return Err(format!("{answer:?}"));
        }
        unknown = true;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err("still 503 after 20 tries".into())
}

async fn listed_apps(cluster: &Cluster, node: u64) -> BTreeSet<String> {
    let (status, json) = cluster
        .call(node, Method::GET, "/goscheduler/apps", None)
        .await;
    assert_eq!(status, 200, "list through node {node}: {json}");
    let apps = json["data"]["apps"].as_array().unwrap();
    assert_eq!(json["status"]["totalCount"], apps.len());
    apps.iter()
        .map(|a| a["appId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_apps_survive_leader_kill_restart_and_snapshot_catch_up() {
    // Keep no log behind a snapshot, so a snapshot purges everything it covers; leaders
    // stay where this test puts them.
    let mut cluster = Cluster::start(3, Options::purging_snapshots()).await;
    let mut acked = BTreeSet::new();
    let mut killed = None;
    for i in 0..300u64 {
        let via = i % 3 + 1;
        if i == 150 {
            let leader = cluster.leader_of(via, 0).await.expect("meta leader");
            cluster.kill(leader);
            killed = Some(leader);
        }
        if Some(via) == killed {
            // Requests through the dead node are refused at connect: never acknowledged.
            assert!(!register(&cluster, via, &format!("app-{i}")).await);
            continue;
        }
        let app = format!("app-{i}");
        if register(&cluster, via, &app).await {
            acked.insert(app);
        }
    }
    let killed = killed.unwrap();
    // Through the live nodes, all but a handful (those in flight at the kill) succeed.
    assert!(
        acked.len() >= 190,
        "only {} of 200 acknowledged",
        acked.len()
    );

    cluster.restart(killed).await;
    for node in 1..=3 {
        let listed = listed_apps(&cluster, node).await;
        let missing: Vec<_> = acked.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "node {node} lost acknowledged apps {missing:?}"
        );
    }
    // The restarted node's own meta replica catches up with the leader's.
    cluster
        .eventually(
            "restarted node catches up",
            Duration::from_secs(30),
            async || {
                let s = cluster.status(killed).await;
                let mine = group_on(&s, killed, 0);
                let leader = mine["leader"].as_u64().unwrap();
                leader != 0 && mine["applied_index"] == group_on(&s, leader, 0)["applied_index"]
            },
        )
        .await;

    // Node 3 goes down; more apps are registered; the others snapshot and purge their logs.
    let lagging = 3;
    cluster.kill(lagging);
    for i in 0..50 {
        let app = format!("late-{i}");
        if let Err(answer) = register_retrying(&cluster, 1 + i % 2, &app).await {
            panic!("register {app} with 2 of 3 nodes up: {answer}");
        }
        acked.insert(app);
    }
    let purged = cluster.snapshot_until_purged(&[1, 2], 0).await;

    cluster.restart(lagging).await;
    cluster
        .eventually(
            "lagging node installs a snapshot",
            Duration::from_secs(30),
            async || {
                let s = cluster.status(lagging).await;
                let mine = group_on(&s, lagging, 0);
                mine["snapshot_index"].as_u64().unwrap() >= purged
                    && mine["applied_index"].as_u64().unwrap() >= purged
            },
        )
        .await;
    // Served from the lagging node's own state machine: make it the meta leader.
    let out = cluster
        .ctl(
            lagging,
            &[
                "transfer-leader",
                "--group",
                "0",
                "--to",
                &lagging.to_string(),
            ],
        )
        .await;
    assert!(
        out.contains(&format!("leader is now node {lagging}")),
        "{out}"
    );
    let listed = listed_apps(&cluster, lagging).await;
    let missing: Vec<_> = acked.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "after snapshot catch-up node {lagging} lacks {missing:?}"
    );
}
