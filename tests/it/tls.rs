//! Mutual TLS between nodes: a cluster whose nodes hold certificates of one CA works as
//! before (elections, forwards, callbacks, goschedctl over TLS), while nobody else can take
//! part — not a process speaking plaintext, not a node with a certificate of another CA,
//! not a TLS client without a certificate, and not a real node speaking for another node.
//! Each sends a forged vote with term u64::MAX, a forged `ClaimRuns` with an endless
//! deadline and a forged snapshot; all are refused and the groups do not notice.

use std::path::Path;
use std::time::Duration;

use goscheduler::command::{Command, ShardCommand};
use goscheduler::proto::raft::raft_transport_client::RaftTransportClient;
use goscheduler::proto::raft::{Envelope, SnapshotChunk};
use goscheduler::router::Request;
use serde_json::json;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::firing::{calling, finished};
use crate::harness::{now, Cluster, Options, CTL, SHARDS};
use goscheduler::bench::receiver::Receiver;

/// Every group's term on node `node`, as node 1's `goschedctl status` reports it.
async fn terms(cluster: &Cluster, node: u64) -> Vec<u64> {
    let me = cluster.status_of(1, node).await;
    me["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["term"].as_u64().unwrap())
        .collect()
}

fn ctl(args: &[&str]) {
    let out = std::process::Command::new(CTL).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pem(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A TLS channel to `addr` trusting `ca`, presenting `identity` (cert, key) if given, and
/// expecting the server to be node 2.
async fn tls_channel(addr: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> Option<Channel> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem(ca)))
        .domain_name("node-2.goscheduler");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(pem(cert), pem(key)));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .ok()
}

fn envelope(group: u64, sender: u64, payload: Vec<u8>) -> Envelope {
    Envelope {
        cluster_id: "it".into(),
        group_id: group,
        target_node: 2,
        payload,
        shards: SHARDS,
        sender_node: sender,
        sender_incarnation: String::new(),
    }
}

/// Sends node 2 a forged vote (term u64::MAX), a forged `ClaimRuns` of a made-up run with
/// an endless deadline, and a forged snapshot, all claiming to come from node 1; asserts
/// each is refused with `code`.
async fn forge_all(channel: Channel, code: tonic::Code, who: &str) {
    let mut client = RaftTransportClient::new(channel);
    let vote = json!({
        "vote": {"leader_id": {"term": u64::MAX, "node_id": 1}, "committed": false},
        "last_log_id": null
    });
    let vote = envelope(0, 1, serde_json::to_vec(&vote).unwrap());
    let refused = client.vote(vote.clone()).await.expect_err(who);
    assert_eq!(refused.code(), code, "{who}: vote {refused:?}");
    let refused = client.pre_vote(vote).await.expect_err(who);
    assert_eq!(refused.code(), code, "{who}: pre-vote {refused:?}");

    let claim = Request::Write(std::sync::Arc::new(Command::Shard(
        ShardCommand::ClaimRuns {
            ids: vec![uuid::Uuid::now_v7()],
            node: 1,
            deadline_ms: u64::MAX,
            at_ms: 0,
            attempts: vec![1],
        },
    )));
    let claim = envelope(1, 1, goscheduler::store::encode(&claim).unwrap());
    let refused = client.forward(claim).await.expect_err(who);
    assert_eq!(refused.code(), code, "{who}: forward {refused:?}");

    let vote = json!({"leader_id": {"term": u64::MAX, "node_id": 1}, "committed": true});
    let chunk = SnapshotChunk {
        header: Some(envelope(1, 1, serde_json::to_vec(&vote).unwrap())),
        data: vec![0; 1024],
        total_bytes: 1024,
    };
    let refused = client
        .install_snapshot(tokio_stream::iter([chunk]))
        .await
        .expect_err(who);
    assert_eq!(refused.code(), code, "{who}: snapshot {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_nodes_with_their_own_certificate_of_the_cluster_ca_take_part() {
    let opts = Options {
        tls: true,
        ..Options::default()
    };
    let cluster = Cluster::start(3, opts).await;
    let certs = cluster.certs_dir();
    let ca = certs.join("ca.pem");
    let grpc = cluster.node(2).grpc.clone();

    // Works as before: routed writes, a callback fired by a shard leader, goschedctl.
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster.register_app(3, "tls", 4).await;
    let id = cluster
        .create(2, &calling("tls", now() + 2, &rx.url("/ok/tls")))
        .await;
    let run = finished(&cluster, 1, &id, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let before = terms(&cluster, 2).await;

    // A process speaking plaintext does not even reach the RPC layer.
    let plain = Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut client = RaftTransportClient::new(channel);
        let vote = envelope(0, 1, b"{}".to_vec());
        assert!(client.vote(vote).await.is_err(), "plaintext was served");
    }
    // goschedctl without the CA (plaintext) cannot reach the node either.
    assert!(cluster.try_ctl_plain(2, &["status"]).await.is_err());

    // A node certificate of another CA: the TLS handshake refuses it.
    let other = tempfile::tempdir().unwrap();
    let dir = other.path().to_str().unwrap();
    ctl(&["certs", "init", "--dir", dir]);
    ctl(&["certs", "issue", "--dir", dir, "--node", "1"]);
    let (cert, key) = (
        other.path().join("node1.pem"),
        other.path().join("node1.key"),
    );
    if let Some(channel) = tls_channel(&grpc, &ca, Some((&cert, &key))).await {
        let mut client = RaftTransportClient::new(channel);
        let vote = envelope(0, 1, b"{}".to_vec());
        assert!(client.vote(vote).await.is_err(), "a foreign CA was served");
    }

    // TLS without a client certificate (what goschedctl does): no peer RPCs.
    let anonymous = tls_channel(&grpc, &ca, None)
        .await
        .expect("TLS without a cert");
    forge_all(anonymous, tonic::Code::PermissionDenied, "no certificate").await;

    // A real node's certificate speaking for another node.
    let (cert3, key3) = (certs.join("node3.pem"), certs.join("node3.key"));
    let node3 = tls_channel(&grpc, &ca, Some((&cert3, &key3)))
        .await
        .expect("node 3's certificate is accepted");
    forge_all(node3, tonic::Code::PermissionDenied, "node 3 as node 1").await;

    // The groups did not notice; the cluster goes on.
    assert_eq!(
        terms(&cluster, 2).await,
        before,
        "a forged message moved a term"
    );
    let id = cluster
        .create(1, &calling("tls", now() + 2, &rx.url("/ok/after")))
        .await;
    let run = finished(&cluster, 3, &id, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
}
