//! A cluster upgraded node by node from a build that reads only JSON: every node reads
//! both encodings, answers a peer in the encoding it asked in, and a node told to send
//! JSON (`raft.wire_codec = "json"`, for the upgrade) works with nodes that send binary.

use std::collections::BTreeSet;
use std::time::Duration;

use goscheduler::bench::receiver::Receiver;
use goscheduler::command::{MetaQuery, Query, QueryResult};
use goscheduler::proto::raft::raft_transport_client::RaftTransportClient;
use goscheduler::proto::raft::Envelope;
use goscheduler::raft::GroupError;
use goscheduler::router::{Answer, Request};
use goscheduler::store::codec::Codec;
use goscheduler::store::decode;
use serde_json::{json, Value};

use crate::firing::calling;
use crate::harness::{meta_term, now, Cluster, Options, SHARDS};

/// A message from node `from` to `group` on node `to`, as a peer sends it.
fn envelope(from: u64, to: u64, group: u64, payload: Vec<u8>) -> Envelope {
    Envelope {
        cluster_id: "it".into(),
        group_id: group,
        target_node: to,
        payload,
        shards: SHARDS,
        sender_node: from,
        sender_incarnation: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_asking_in_json_is_answered_in_json() {
    let cluster = Cluster::start(3, Options::default()).await;
    cluster.register_app(1, "older", 1).await;
    let leader = cluster.leader_of(1, 0).await.expect("meta leader");
    let from = leader % 3 + 1;
    let addr = format!("http://{}", cluster.node(leader).grpc);
    let mut client = RaftTransportClient::connect(addr).await.unwrap();

    // A forwarded read, as another node's gateway sends it.
    let ask = Request::Read(Query::Meta(MetaQuery::GetApp {
        app_id: "older".into(),
    }));
    for codec in [Codec::Json, Codec::Binary] {
        let payload = codec.encode(&ask).unwrap();
        let reply = client.forward(envelope(from, leader, 0, payload)).await;
        let payload = reply.unwrap().into_inner().payload;
        assert_eq!(
            Codec::of(&payload),
            codec,
            "forward answered in another encoding"
        );
        let answer: Result<Answer, GroupError> = decode(&payload).unwrap();
        match answer {
            Ok(Answer::Read(QueryResult::Apps(apps))) => assert_eq!(apps[0].app_id, "older"),
            other => panic!("{other:?}"),
        }
    }

    // A Raft message: a pre-vote at the current term from a candidate with no log (refused,
    // and a pre-vote changes nothing either way).
    let term = meta_term(&cluster, leader).await;
    let pre_vote = json!({
        "vote": {"leader_id": {"term": term, "node_id": from}, "committed": false},
        "last_log_id": null
    });
    let payload = serde_json::to_vec(&pre_vote).unwrap();
    let reply = client.pre_vote(envelope(from, leader, 0, payload)).await;
    let payload = reply.unwrap().into_inner().payload;
    let answer: Value = serde_json::from_slice(&payload).expect("a JSON answer");
    assert!(answer.get("vote").is_some(), "{answer}");
    assert_eq!(meta_term(&cluster, leader).await, term);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sending_json_works_with_nodes_sending_binary() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster.kill(3);
    cluster.start_with_env(3, &[("GOSCHED_RAFT__WIRE_CODEC", "json")]);
    cluster.wait_healthy(3, Duration::from_secs(60)).await;
    assert!(
        cluster.logs().contains("sending peers JSON"),
        "the setting was not taken"
    );

    // App `led3`'s shard is led by the JSON node (its appends go out as JSON, forwards to
    // it come in binary); the other app's by node 1 (node 3's forwards to it are JSON).
    let shard = |app: &str| goscheduler::shard::shard_of(app, 0, SHARDS).0;
    let elsewhere = (0..100)
        .map(|i| format!("elsewhere{i}"))
        .find(|a| shard(a) != shard("led3"))
        .expect("an app id in another shard");
    let apps = ["led3", elsewhere.as_str()];
    for (app, to) in apps.into_iter().zip([3, 1]) {
        cluster.register_app(3, app, 1).await;
        let (group, to) = (shard(app).to_string(), to.to_string());
        let args = ["transfer-leader", "--group", &group, "--to", &to];
        let out = cluster.ctl(2, &args).await;
        assert!(out.contains(&format!("leader is now node {to}")), "{out}");
    }

    let due = now() + 6;
    let mut paths = BTreeSet::new();
    for via in 1..=3 {
        for app in apps {
            let items: Vec<Value> = (0..5)
                .map(|i| {
                    let path = format!("/ok/{app}-{via}-{i}");
                    paths.insert(path.clone());
                    calling(app, due, &rx.url(&path))
                })
                .collect();
            cluster.create_batch(via, &items).await;
        }
    }
    cluster
        .eventually("every run fired", Duration::from_secs(30), async || {
            rx.count() >= paths.len()
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fired: Vec<String> = rx.deliveries().into_iter().map(|d| d.path).collect();
    assert_eq!(fired.len(), paths.len(), "a run fired twice: {fired:?}");
    assert_eq!(fired.into_iter().collect::<BTreeSet<_>>(), paths);
}
