//! `goschedctl add-node` / `remove-node`: a fourth node joins every group as learner,
//! catches up, becomes voter and serves; then it is removed again. Plus gRPC reflection.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::harness::{Cluster, Options, SHARDS};

/// The voters of every group as node `via` sees them.
async fn voter_sets(cluster: &Cluster, via: u64) -> Vec<Vec<u64>> {
    let s = cluster.status(via).await;
    let node = s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == via)
        .unwrap()
        .clone();
    node["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            g["voters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_every_group_catches_up_and_leaves() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    for i in 0..20 {
        let body = format!(r#"{{"appId":"before-{i}","partitions":1}}"#);
        let (status, _) = cluster
            .call(1 + i % 3, Method::POST, "/goscheduler/apps", Some(&body))
            .await;
        assert_eq!(status, 200);
    }

    let new = cluster.spawn_joiner();
    let (grpc, http) = (
        cluster.node(new).grpc.clone(),
        cluster.node(new).http.clone(),
    );
    let add = async |via: u64| {
        let id = new.to_string();
        let args = [
            "add-node",
            "--id",
            &id,
            "--grpc-addr",
            &grpc,
            "--http-addr",
            &http,
        ];
        cluster.ctl(via, &args).await
    };
    let out = add(2).await;
    assert_eq!(out.lines().count(), 1 + SHARDS as usize, "{out}");
    assert!(
        out.lines()
            .all(|l| l.contains(&format!("node {new} added as voter"))),
        "{out}"
    );
    assert!(voter_sets(&cluster, 1)
        .await
        .iter()
        .all(|v| v == &vec![1, 2, 3, new]));
    // Adding it again changes nothing.
    let again = add(3).await;
    assert!(
        again.lines().all(|l| l.contains("already a voter")),
        "{again}"
    );

    // The new node serves, and its own replica holds what was written before it joined.
    cluster.wait_healthy(new, Duration::from_secs(30)).await;
    let (status, body) = cluster
        .call(new, Method::GET, "/goscheduler/apps", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"]["totalCount"], 20, "{body}");
    let out = cluster
        .ctl(
            new,
            &["transfer-leader", "--group", "0", "--to", &new.to_string()],
        )
        .await;
    assert!(out.contains(&format!("leader is now node {new}")), "{out}");

    // Removal: from every group; the rest keep serving without it.
    let out = cluster
        .ctl(1, &["remove-node", "--id", &new.to_string()])
        .await;
    assert!(out.contains(&format!("node {new} forgotten")), "{out}");
    assert!(
        out.lines()
            .filter(|l| !l.contains("forgotten"))
            .all(|l| l.contains(&format!("node {new} removed"))),
        "{out}"
    );
    cluster
        .eventually(
            "node removed from every group",
            Duration::from_secs(20),
            async || {
                voter_sets(&cluster, 1)
                    .await
                    .iter()
                    .all(|v| v == &vec![1, 2, 3])
            },
        )
        .await;
    cluster.kill(new);
    let (status, body) = cluster
        .call(
            2,
            Method::POST,
            "/goscheduler/apps",
            Some(r#"{"appId":"after","partitions":1}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let status: Value = cluster.status(3).await;
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_service_supports_grpc_reflection() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let cluster = Cluster::start(1, Options::default()).await;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.node(1).grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"goscheduler.admin.Admin".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"goscheduler.raft.RaftTransport".to_string()),
        "{names:?}"
    );
}
