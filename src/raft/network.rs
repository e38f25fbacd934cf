//! The Raft network of one group: openraft's RPCs sent over the node's shared gRPC
//! channels, with the group id and target node on every message.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use tokio::io::AsyncReadExt;
use tonic::transport::Channel;

use super::peers::Peers;
use super::snapshot::SnapshotFile;
use super::types::{GroupId, LogTypes, NodeId, NodeInfo, TypeConfig, Vote};
use crate::proto::raft::raft_transport_client::RaftTransportClient;
use crate::proto::raft::{Envelope, Reply, SnapshotChunk};
use crate::store::decode;

/// Bytes per snapshot chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Hard ceiling of one AppendEntries message: half the transport's cap, leaving room for
/// the envelope. No message comes near it: writes are split at `limits.max_entry_bytes`
/// and replication reads stop after 4 MiB of entries (`LogStore::limited_get_log_entries`),
/// so large catch-ups go as a train of small messages, each answered within its budget.
const APPEND_MAX_BYTES: usize = super::peers::MAX_MESSAGE_BYTES / 2;
/// Time a message may take beyond its base budget, per byte: the peer must decode, write
/// and fsync it. One second per 4 MiB.
const BYTES_PER_EXTRA_SEC: usize = 4 << 20;
/// An AppendEntries' base budget, in heartbeat intervals (openraft gives it one). A follower
/// busy under a write load can take longer than one to answer; giving up on it then only
/// makes the leader send the same entries again, more load on a node already behind (the
/// cluster fell from 22,000 to 11,000 creates/s that way, 5,800 timeouts, under sustained
/// batch creates). A dead follower is not waited for: the other one makes the quorum.
const APPEND_BASE_HEARTBEATS: u32 = 4;

/// The time budget of an AppendEntries carrying `bytes`.
fn budget_for(option: &RPCOption, bytes: usize) -> Duration {
    option.hard_ttl() * APPEND_BASE_HEARTBEATS
        + Duration::from_secs_f64(bytes as f64 / BYTES_PER_EXTRA_SEC as f64)
}

/// Builds the clients of one group.
pub struct NetworkFactory {
    group: GroupId,
    peers: Arc<Peers>,
}

impl NetworkFactory {
    pub fn new(group: GroupId, peers: Arc<Peers>) -> Self {
        NetworkFactory { group, peers }
    }
}

impl<L: LogTypes> RaftNetworkFactory<TypeConfig<L>> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            group: self.group,
            target,
            addr: node.grpc_addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

/// One group's connection to one peer.
pub struct PeerClient {
    group: GroupId,
    target: NodeId,
    addr: String,
    peers: Arc<Peers>,
}

type RpcResult<T, L> = Result<T, RPCError<TypeConfig<L>>>;

fn unreachable<L: LogTypes>(e: impl std::fmt::Display) -> Unreachable<TypeConfig<L>> {
    Unreachable::from_string(e.to_string())
}

impl PeerClient {
    fn client<L: LogTypes>(
        &self,
    ) -> Result<RaftTransportClient<Channel>, Unreachable<TypeConfig<L>>> {
        self.peers
            .client(self.target, &self.addr)
            .map_err(unreachable)
    }

    fn envelope<L: LogTypes, T: serde::Serialize>(&self, msg: &T) -> RpcResult<Envelope, L> {
        let payload = self
            .peers
            .encode(msg)
            .map_err(|e| RPCError::Network(NetworkError::from_string(e.to_string())))?;
        Ok(self.peers.envelope(self.group, self.target, payload))
    }

    /// Sends one unary RPC and decodes its reply, within the RPC's time budget.
    async fn call<L: LogTypes, Req, Resp, F, Fut>(
        &self,
        req: &Req,
        option: &RPCOption,
        rpc: F,
    ) -> RpcResult<Resp, L>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        F: FnOnce(RaftTransportClient<Channel>, Envelope) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Reply>, tonic::Status>>,
    {
        let envelope = self.envelope(req)?;
        self.send(envelope, option.hard_ttl(), rpc).await
    }

    /// Sends one built envelope and decodes its reply, within the RPC's time budget.
    async fn send<L: LogTypes, Resp, F, Fut>(
        &self,
        envelope: Envelope,
        ttl: Duration,
        rpc: F,
    ) -> RpcResult<Resp, L>
    where
        Resp: serde::de::DeserializeOwned,
        F: FnOnce(RaftTransportClient<Channel>, Envelope) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Reply>, tonic::Status>>,
    {
        let client = self.client()?;
        let reply = tokio::time::timeout(ttl, rpc(client, envelope))
            .await
            .map_err(|_| {
                unreachable(format!(
                    "{} rpc to node {} timed out",
                    self.group, self.target
                ))
            })?
            .map_err(|s| status_error(&s))?;
        let payload = self
            .peers
            .payload_of(self.target, reply.into_inner())
            .map_err(|e| RPCError::Unreachable(unreachable(e)))?;
        decode(&payload).map_err(|e| RPCError::Network(NetworkError::from_string(e.to_string())))
    }
}

fn status_error<L: LogTypes>(s: &tonic::Status) -> RPCError<TypeConfig<L>> {
    match s.code() {
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
            RPCError::Network(NetworkError::from_string(s.message().to_string()))
        }
        _ => RPCError::Unreachable(unreachable(format!("{}: {}", s.code(), s.message()))),
    }
}

impl<L: LogTypes> RaftNetworkV2<TypeConfig<L>> for PeerClient {
    type SnapshotData = SnapshotFile;

    /// Sends the entries in one message, given more time the larger it is. A message the
    /// transport cannot carry is never sent.
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig<L>>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<TypeConfig<L>>, L> {
        let envelope = self.envelope(&rpc)?;
        if envelope.payload.len() > APPEND_MAX_BYTES {
            // Writes are split below `limits.max_entry_bytes`, so this is a bug, not a peer down.
            let why = format!(
                "{}: one log entry of {} bytes exceeds the transport's {APPEND_MAX_BYTES}: not sent",
                self.group,
                envelope.payload.len()
            );
            tracing::error!("{why}");
            return Err(RPCError::Unreachable(unreachable(why)));
        }
        let ttl = budget_for(&option, envelope.payload.len());
        self.send(envelope, ttl, |mut c, e| async move {
            c.append_entries(e).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig<L>>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<TypeConfig<L>>, L> {
        self.call(&rpc, &option, |mut c, e| async move { c.vote(e).await })
            .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig<L>>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<TypeConfig<L>>, L> {
        self.call(&rpc, &option, |mut c, e| async move { c.pre_vote(e).await })
            .await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig<L>>,
        option: RPCOption,
    ) -> RpcResult<TransferLeaderResponse<TypeConfig<L>>, L> {
        self.call(&req, &option, |mut c, e| async move {
            c.transfer_leader(e).await
        })
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<L>,
        snapshot: openraft::alias::SnapshotOf<TypeConfig<L>, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig<L>>, StreamingError<TypeConfig<L>>> {
        let header = self
            .envelope::<L, _>(&vote)
            .map_err(|e| StreamingError::Network(NetworkError::from_string(e.to_string())))?;
        let mut client = self.client()?;
        let mut file = tokio::fs::File::open(&snapshot.snapshot.path)
            .await
            .map_err(|e| StreamingError::Unreachable(unreachable(format!("open snapshot: {e}"))))?;
        let total_bytes = file
            .metadata()
            .await
            .map_err(|e| StreamingError::Unreachable(unreachable(format!("open snapshot: {e}"))))?
            .len();
        let (tx, rx) = tokio::sync::mpsc::channel::<SnapshotChunk>(4);
        // Feed the stream from the file while the call runs; the first chunk carries the header.
        let feeder = tokio::spawn(async move {
            let mut header = Some(header);
            loop {
                let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
                let n = match file.read(&mut buf).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!("reading snapshot to send: {e}");
                        return;
                    }
                };
                if n == 0 && header.is_none() {
                    return;
                }
                buf.truncate(n);
                let chunk = SnapshotChunk {
                    header: header.take(),
                    data: buf,
                    total_bytes,
                };
                if tx.send(chunk).await.is_err() || n == 0 {
                    return;
                }
            }
        });
        let call = client.install_snapshot(tokio_stream::wrappers::ReceiverStream::new(rx));
        let reply = tokio::select! {
            r = call => r,
            closed = cancel => {
                feeder.abort();
                return Err(StreamingError::Closed(closed));
            }
        };
        feeder.abort();
        let reply = reply.map_err(|s| StreamingError::Unreachable(unreachable(s)))?;
        let payload = self
            .peers
            .payload_of(self.target, reply.into_inner())
            .map_err(|e| StreamingError::Unreachable(unreachable(e)))?;
        decode(&payload)
            .map_err(|e| StreamingError::Network(NetworkError::from_string(e.to_string())))
    }

    fn backoff(&self) -> Option<openraft::network::Backoff> {
        Some(openraft::network::Backoff::new(std::iter::repeat(
            Duration::from_millis(200),
        )))
    }
}
