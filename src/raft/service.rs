//! The node's gRPC transport server: Raft RPCs of every group, snapshot streams and
//! forwarded client requests. Each message is checked for cluster, group and target.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::group::{Group, Groups};
use super::snapshot::{self, SnapshotFile};
use super::types::{GroupId, NodeId, Raft, TypeConfig, Vote};
use crate::config::Config;
use crate::proto::raft::raft_transport_server::RaftTransport;
use crate::proto::raft::{Envelope, Reply, SnapshotChunk};
use crate::router::{local, Forwarded, RouteError};
use crate::store::{decode, encode};

pub struct TransportService {
    node_id: NodeId,
    cluster_id: String,
    shards: u32,
    groups: Arc<Groups>,
    /// Where incoming snapshot streams are written before they are installed.
    incoming_dir: PathBuf,
}

impl TransportService {
    pub fn new(config: &Config, groups: Arc<Groups>) -> Self {
        TransportService {
            node_id: config.node_id,
            cluster_id: config.cluster_id.clone(),
            shards: config.shards,
            groups,
            incoming_dir: config.data_dir.join("snapshots").join("incoming"),
        }
    }

    /// Decodes a Raft RPC, hands it to its group's Raft and encodes the answer.
    async fn serve<Req, Resp, E, Fut>(
        &self,
        req: Request<Envelope>,
        call: impl FnOnce(Raft, Req) -> Fut,
    ) -> Result<Response<Reply>, Status>
    where
        Req: serde::de::DeserializeOwned,
        Resp: serde::Serialize,
        E: std::fmt::Display,
        Fut: std::future::Future<Output = Result<Resp, E>>,
    {
        let e = req.into_inner();
        let raft = self.group(&e)?.raft.clone();
        let rpc = decode(&e.payload).map_err(bad_payload)?;
        reply(&call(raft, rpc).await.map_err(fatal)?)
    }

    /// The group an envelope is for, after checking it is meant for this node.
    fn group(&self, e: &Envelope) -> Result<&Group, Status> {
        if e.cluster_id != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "message for cluster {:?} reached cluster {:?}",
                e.cluster_id, self.cluster_id
            )));
        }
        if e.shards != self.shards {
            return Err(Status::failed_precondition(format!(
                "sender has {} shards, node {} has {}: fix the `shards` setting",
                e.shards, self.node_id, self.shards
            )));
        }
        if e.target_node != self.node_id {
            return Err(Status::failed_precondition(format!(
                "message for node {} reached node {}",
                e.target_node, self.node_id
            )));
        }
        self.groups.get(GroupId(e.group_id)).ok_or_else(|| {
            Status::not_found(format!("no group {} on node {}", e.group_id, self.node_id))
        })
    }
}

fn bad_payload(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("undecodable payload: {e}"))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<Reply>, Status> {
    Ok(Response::new(Reply {
        payload: encode(value).map_err(|e| Status::internal(e.to_string()))?,
    }))
}

fn fatal(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft stopped: {e}"))
}

#[tonic::async_trait]
impl RaftTransport for TransportService {
    async fn append_entries(&self, req: Request<Envelope>) -> Result<Response<Reply>, Status> {
        self.serve(
            req,
            |raft, rpc| async move { raft.append_entries(rpc).await },
        )
        .await
    }

    async fn vote(&self, req: Request<Envelope>) -> Result<Response<Reply>, Status> {
        self.serve(req, |raft, rpc| async move { raft.vote(rpc).await })
            .await
    }

    async fn pre_vote(&self, req: Request<Envelope>) -> Result<Response<Reply>, Status> {
        self.serve(req, |raft, rpc| async move { raft.pre_vote(rpc).await })
            .await
    }

    async fn transfer_leader(&self, req: Request<Envelope>) -> Result<Response<Reply>, Status> {
        self.serve(req, |raft, rpc| async move {
            raft.handle_transfer_leader(rpc).await
        })
        .await
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<Reply>, Status> {
        let mut stream = req.into_inner();
        let first = stream
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let header = first
            .header
            .ok_or_else(|| Status::invalid_argument("snapshot stream without header"))?;
        let g = self.group(&header)?;
        let vote: Vote = decode(&header.payload).map_err(bad_payload)?;

        tokio::fs::create_dir_all(&self.incoming_dir).await?;
        let path = self
            .incoming_dir
            .join(format!("{}-{}", g.id.0, uuid::Uuid::new_v4().simple()));
        let result = receive(&path, first.data, &mut stream).await;
        let installed = match result {
            Ok(()) => install(g, vote, &path).await,
            Err(e) => Err(e),
        };
        // On success the file was moved into the group's snapshot dir.
        let _ = tokio::fs::remove_file(&path).await;
        reply(&installed?)
    }

    async fn forward(&self, req: Request<Envelope>) -> Result<Response<Reply>, Status> {
        let e = req.into_inner();
        let g = self.group(&e)?;
        let forwarded: Forwarded = decode(&e.payload).map_err(bad_payload)?;
        let result: Result<_, RouteError> = local::execute(g, forwarded).await;
        reply(&result)
    }
}

/// Writes the stream's data into `path` and makes it durable.
async fn receive(
    path: &std::path::Path,
    first: Vec<u8>,
    stream: &mut Streaming<SnapshotChunk>,
) -> Result<(), Status> {
    let mut file = tokio::fs::File::create(path).await?;
    file.write_all(&first).await?;
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk?.data).await?;
    }
    file.sync_all().await?;
    Ok(())
}

async fn install(
    g: &Group,
    vote: Vote,
    path: &std::path::Path,
) -> Result<openraft::raft::SnapshotResponse<TypeConfig>, Status> {
    let meta = snapshot::read_meta(path)
        .map_err(|e| Status::invalid_argument(format!("bad snapshot: {e}")))?;
    let snapshot = openraft::alias::SnapshotOf::<TypeConfig, SnapshotFile> {
        meta,
        snapshot: SnapshotFile {
            path: path.to_path_buf(),
        },
    };
    g.raft
        .install_full_snapshot(vote, snapshot)
        .await
        .map_err(fatal)
}
