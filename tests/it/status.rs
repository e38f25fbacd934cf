//! `goschedctl status --json` on a fresh 3-node cluster: 1 + shards groups, 3 voters and one
//! agreed leader each, shard leaders spread over all 3 nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Cluster, Options, SHARDS};

/// One group as all nodes report it.
#[derive(Default)]
struct GroupView {
    /// The leader each node names.
    reported: BTreeSet<u64>,
    /// The nodes whose role is Leader.
    self_leaders: BTreeSet<u64>,
    /// The voters each node lists.
    voters: Vec<Vec<u64>>,
}

fn summarize(status: &Value) -> BTreeMap<u64, GroupView> {
    let mut out: BTreeMap<u64, GroupView> = BTreeMap::new();
    for node in status["nodes"].as_array().unwrap() {
        let id = node["node_id"].as_u64().unwrap();
        for g in node["groups"].as_array().unwrap() {
            let e = out.entry(g["group_id"].as_u64().unwrap()).or_default();
            e.reported.insert(g["leader"].as_u64().unwrap());
            if g["role"] == "Leader" {
                e.self_leaders.insert(id);
            }
            let voters = g["voters"].as_array().unwrap();
            e.voters
                .push(voters.iter().map(|v| v.as_u64().unwrap()).collect());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_every_group_replicated_with_leaders_spread() {
    let cluster = Cluster::start(3, Options::default()).await;
    let mut last = Value::Null;
    let spread = |status: &Value| {
        let groups = summarize(status);
        let leaders: BTreeSet<u64> = groups
            .iter()
            .filter(|(g, _)| **g != 0)
            .flat_map(|(_, v)| v.self_leaders.iter().copied())
            .collect();
        groups.len() == 1 + SHARDS as usize
            && groups.values().all(|v| {
                v.reported.len() == 1
                    && !v.reported.contains(&0)
                    && v.self_leaders.len() == 1
                    && v.voters.len() == 3
                    && v.voters.iter().all(|v| v == &vec![1, 2, 3])
            })
            && leaders == BTreeSet::from([1, 2, 3])
    };
    cluster
        .eventually(
            "leaders agreed and spread over 3 nodes",
            Duration::from_secs(40),
            async || {
                last = cluster.status(2).await;
                spread(&last)
            },
        )
        .await;
    assert_eq!(last["nodes"].as_array().unwrap().len(), 3);
    assert!(last["unreachable"].as_array().unwrap().is_empty());

    // The table form names every group on every node, then every worker on every node.
    let table = cluster.ctl(1, &["status"]).await;
    let tables: Vec<&str> = table.split("\n\n").collect();
    let [groups, workers, clocks] = tables[..] else {
        panic!("a groups, a workers and a clocks table:\n{table}");
    };
    assert!(
        groups.contains("meta") && groups.contains("shard-7"),
        "{table}"
    );
    assert_eq!(
        groups.lines().count(),
        1 + 3 * (1 + SHARDS as usize),
        "{table}"
    );
    // Per node: a timer per shard, outcomes, refill, retention, bulk jobs, the balancer,
    // the clock probe, the storage watch, the heap trim, the node registry.
    assert_eq!(
        workers.lines().count(),
        1 + 3 * (SHARDS as usize + 9),
        "{table}"
    );
    // Every node trusts its clock and shows both peers' offsets.
    assert_eq!(clocks.trim_end().lines().count(), 1 + 3, "{table}");
    for name in [
        "timer shard-0",
        "outcomes",
        "cron-refill",
        "retention",
        "bulk-jobs",
        "leader-balancer",
        "clock-probe",
        "storage-watch",
        "heap-trim",
        "node-registry",
    ] {
        assert!(workers.contains(name), "worker {name} not listed:\n{table}");
    }
    // Each node's timers are active exactly on the shards it leads.
    let timers_follow_leaders = |status: &Value| {
        status["nodes"].as_array().unwrap().iter().all(|node| {
            let led: BTreeSet<String> = node["groups"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|g| g["group_id"] != 0 && g["leader"] == node["node_id"])
                .map(|g| format!("timer {}", g["name"].as_str().unwrap()))
                .collect();
            let active: BTreeSet<String> = node["workers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|w| w["active"] == true && w["name"].as_str().unwrap().starts_with("timer"))
                .map(|w| w["name"].as_str().unwrap().to_string())
                .collect();
            !led.is_empty() && active == led
        })
    };
    cluster
        .eventually(
            "timers active where their shard is led",
            Duration::from_secs(10),
            async || {
                last = cluster.status(1).await;
                timers_follow_leaders(&last)
            },
        )
        .await;
    for node in last["nodes"].as_array().unwrap() {
        assert_eq!(node["clock_trusted"], true, "{node}");
        let peers = node["clocks"].as_array().unwrap();
        assert_eq!(peers.len(), 2, "{node}");
        assert!(peers.iter().all(|p| p["within_bound"] == true), "{node}");
    }
}
