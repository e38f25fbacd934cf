//! A peer message whose term is implausibly far ahead (a forged vote with term u64::MAX
//! would leave the group unable to ever elect again) is refused before it reaches
//! openraft: the group's term does not move and the cluster goes on.

use goscheduler::proto::raft::raft_transport_client::RaftTransportClient;
use goscheduler::proto::raft::Envelope;
use serde_json::json;

use crate::harness::{meta_term, Cluster, Options, SHARDS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_with_an_implausible_term_is_refused_and_the_group_goes_on() {
    let cluster = Cluster::start(3, Options::default()).await;
    let before = meta_term(&cluster, 2).await;
    let addr = format!("http://{}", cluster.node(2).grpc);
    let mut client = RaftTransportClient::connect(addr).await.unwrap();
    for term in [u64::MAX, before + (1 << 21)] {
        let vote = json!({
            "vote": {"leader_id": {"term": term, "node_id": 1}, "committed": false},
            "last_log_id": null
        });
        let forged = Envelope {
            cluster_id: "it".into(),
            group_id: 0,
            target_node: 2,
            payload: serde_json::to_vec(&vote).unwrap(),
            shards: SHARDS,
            sender_node: 1,
            sender_incarnation: String::new(),
        };
        for pre_vote in [false, true] {
            let answer = if pre_vote {
                client.pre_vote(forged.clone()).await
            } else {
                client.vote(forged.clone()).await
            };
            let refused = answer.expect_err("a forged vote was taken");
            assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
            assert!(refused.message().contains("implausibly"), "{refused:?}");
        }
    }
    assert_eq!(
        meta_term(&cluster, 2).await,
        before,
        "the forged vote moved the term"
    );
    cluster.register_app(2, "unharmed", 1).await;
}
