//! The node's gRPC transport server: Raft RPCs of every group, snapshot streams and
//! forwarded client requests. Each message is checked for cluster, group and target.
//! What a forwarded request means is not this layer's business: it hands the payload to
//! a [`ForwardHandler`] (the router's leader side).

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use rustls_pki_types::CertificateDer;
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::admission::Admissions;
use super::fault::{self, StreamFault};
use super::group::{Group, Groups};
use super::snapshot::{self, SnapshotFile};
use super::types::{GroupId, LogTypes, NodeId, Raft, TypeConfig, Vote};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};

use crate::proto::raft::raft_transport_server::RaftTransport;
use crate::proto::raft::{ClockProbe, ClockReading, Envelope, Reply, SnapshotChunk};
use crate::store::codec::Codec;
use crate::store::decode;

/// Serves a request another node forwarded to a group this node (it believes) leads.
pub trait ForwardHandler<L: LogTypes>: Send + Sync + 'static {
    /// Runs the encoded request `payload` on `group` and answers the encoded reply.
    fn serve<'a>(&'a self, group: &'a Group<L>, payload: &'a [u8]) -> BoxFuture<'a, Vec<u8>>;
}

/// Who this node is, as the transport checks incoming messages against it.
pub struct Identity {
    pub node_id: NodeId,
    pub cluster_id: String,
    pub shards: u32,
    /// False while the node checks it may take part (an empty data dir must not answer
    /// votes before peers confirm it is new): Raft and forwarded messages are refused.
    pub taking_part: Arc<std::sync::atomic::AtomicBool>,
    /// Which incarnation of each peer may take part, and this node's own.
    pub admissions: Arc<Admissions>,
    /// Peer messages must come over mutual TLS, from the node the certificate names.
    pub tls: bool,
}

pub struct TransportService<L: LogTypes> {
    me: Identity,
    groups: Arc<Groups<L>>,
    forwards: Arc<dyn ForwardHandler<L>>,
    /// Where incoming snapshot streams are written before they are installed.
    incoming_dir: PathBuf,
}

impl<L: LogTypes> TransportService<L> {
    pub fn new(
        me: Identity,
        groups: Arc<Groups<L>>,
        forwards: Arc<dyn ForwardHandler<L>>,
        incoming_dir: PathBuf,
    ) -> Self {
        // Streams cut short by a crash left their files here: none is of use now.
        let _ = std::fs::remove_dir_all(&incoming_dir);
        TransportService {
            me,
            groups,
            forwards,
            incoming_dir,
        }
    }

    /// Decodes a Raft RPC, checks the term it carries (`term_of`), hands it to its group's
    /// Raft and encodes the answer.
    async fn serve<Req, Resp, E, Fut>(
        &self,
        req: Request<Envelope>,
        term_of: impl FnOnce(&Req) -> u64,
        call: impl FnOnce(Raft<L>, Req) -> Fut,
    ) -> Result<Response<Reply>, Status>
    where
        Req: serde::de::DeserializeOwned,
        Resp: serde::Serialize,
        E: std::fmt::Display,
        Fut: std::future::Future<Output = Result<Resp, E>>,
    {
        let certs = req.peer_certs();
        let e = req.into_inner();
        let raft = self.group(&e, certs.as_deref())?.raft.clone();
        let rpc = decode(&e.payload).map_err(bad_payload)?;
        plausible_term(&raft, term_of(&rpc))?;
        let codec = Codec::of(&e.payload);
        self.reply(codec, &call(raft, rpc).await.map_err(fatal)?)
    }

    /// A reply carrying `value`, encoded as the request was (a sender of an older build
    /// reads only JSON) and signed with this node's incarnation.
    fn reply<T: serde::Serialize>(
        &self,
        codec: Codec,
        value: &T,
    ) -> Result<Response<Reply>, Status> {
        let payload = codec
            .encode(value)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(self.answer(payload))
    }

    fn answer(&self, payload: Vec<u8>) -> Response<Reply> {
        Response::new(Reply {
            payload,
            incarnation: self.me.admissions.mine(),
        })
    }

    /// With TLS on, refuses a message whose connection's client certificate (`certs`) does
    /// not name `sender`, the node the message says it comes from.
    fn check_sender(
        &self,
        certs: Option<&Vec<CertificateDer<'static>>>,
        sender: NodeId,
    ) -> Result<(), Status> {
        if !self.me.tls {
            return Ok(());
        }
        crate::tls::check_peer(certs.map(Vec::as_slice), sender).map_err(Status::permission_denied)
    }

    /// The group an envelope is for, after checking it is meant for this node and comes
    /// from the node it names (`certs`: the connection's client certificates).
    fn group(
        &self,
        e: &Envelope,
        certs: Option<&Vec<CertificateDer<'static>>>,
    ) -> Result<&Group<L>, Status> {
        if !self
            .me
            .taking_part
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(Status::failed_precondition(format!(
                "node {} is not taking part yet (checking its data dir)",
                self.me.node_id
            )));
        }
        if e.cluster_id != self.me.cluster_id {
            return Err(Status::failed_precondition(format!(
                "message for cluster {:?} reached cluster {:?}",
                e.cluster_id, self.me.cluster_id
            )));
        }
        self.check_sender(certs, e.sender_node)?;
        if e.shards != self.me.shards {
            return Err(Status::failed_precondition(format!(
                "sender has {} shards, node {} has {}: fix the `shards` setting",
                e.shards, self.me.node_id, self.me.shards
            )));
        }
        self.me
            .admissions
            .check(e.sender_node, &e.sender_incarnation)
            .map_err(Status::failed_precondition)?;
        if e.target_node != self.me.node_id {
            return Err(Status::failed_precondition(format!(
                "message for node {} reached node {}",
                e.target_node, self.me.node_id
            )));
        }
        self.groups.get(GroupId(e.group_id)).ok_or_else(|| {
            Status::not_found(format!(
                "no group {} on node {}",
                e.group_id, self.me.node_id
            ))
        })
    }
}

fn bad_payload(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("undecodable payload: {e}"))
}

/// The most a message may move a group's term forward at once. Elections add one each
/// (pre-vote keeps a cut-off node from inflating it), so a bigger step is a forged or
/// corrupt message — a term of u64::MAX would leave the group unable to elect again.
const MAX_TERM_STEP: u64 = 1 << 20;

fn plausible_term<L: LogTypes>(raft: &Raft<L>, term: u64) -> Result<(), Status> {
    use openraft::async_runtime::WatchReceiver;
    let current = raft.metrics().borrow_watched().current_term;
    if term > current.saturating_add(MAX_TERM_STEP) {
        return Err(Status::invalid_argument(format!(
            "term {term} is implausibly far ahead of this group's term {current}: refused"
        )));
    }
    Ok(())
}

fn fatal(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft stopped: {e}"))
}

#[tonic::async_trait]
impl<L: LogTypes> RaftTransport for TransportService<L> {
    async fn append_entries(&self, req: Request<Envelope>) -> Result<Response<Reply>, Status> {
        self.serve(
            req,
            |rpc: &AppendEntriesRequest<TypeConfig<L>>| rpc.vote.leader_id.term,
            |raft, rpc| async move { raft.append_entries(rpc).await },
        )
        .await
    }

    async fn vote(&self, req: Request<Envelope>) -> Result<Response<Reply>, Status> {
        self.serve(
            req,
            |rpc: &VoteRequest<TypeConfig<L>>| rpc.vote.leader_id.term,
            |raft, rpc| async move { raft.vote(rpc).await },
        )
        .await
    }

    async fn pre_vote(&self, req: Request<Envelope>) -> Result<Response<Reply>, Status> {
        self.serve(
            req,
            |rpc: &VoteRequest<TypeConfig<L>>| rpc.vote.leader_id.term,
            |raft, rpc| async move { raft.pre_vote(rpc).await },
        )
        .await
    }

    async fn transfer_leader(&self, req: Request<Envelope>) -> Result<Response<Reply>, Status> {
        self.serve(
            req,
            |rpc: &TransferLeaderRequest<TypeConfig<L>>| rpc.from_leader().leader_id.term,
            |raft, rpc| async move { raft.handle_transfer_leader(rpc).await },
        )
        .await
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<Reply>, Status> {
        let certs = req.peer_certs();
        let mut stream = req.into_inner();
        let first = stream
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let header = first
            .header
            .ok_or_else(|| Status::invalid_argument("snapshot stream without header"))?;
        let g = self.group(&header, certs.as_deref())?;
        let vote: Vote<L> = decode(&header.payload).map_err(bad_payload)?;
        let codec = Codec::of(&header.payload);
        plausible_term(&g.raft, vote.leader_id.term)?;
        tokio::fs::create_dir_all(&self.incoming_dir).await?;
        let free = crate::store::free_bytes(&self.incoming_dir).unwrap_or(u64::MAX);
        if first.total_bytes.saturating_add(crate::store::DISK_ROOM) > free {
            return Err(Status::resource_exhausted(format!(
                "a snapshot of {} bytes does not fit on node {}: {free} bytes free",
                first.total_bytes, self.me.node_id
            )));
        }

        let path = self
            .incoming_dir
            .join(format!("{}-{}", g.id.0, uuid::Uuid::new_v4().simple()));
        // Removed however receiving and checking end: a sender that gives up (its install
        // timeout) drops this call mid-way; each retry then left a whole snapshot behind
        // (7.9 GB of them on a node catching up on 10 million schedules).
        let file = RemoveOnDrop(path.clone());
        let fault = fault::next_stream();
        let result = receive(&path, first.data, first.total_bytes, &mut stream, fault).await;
        let installed = match result {
            Ok(()) if fault == Some(StreamFault::Twice) => {
                // A retransmission that arrives once the group has the snapshot.
                let again = self.incoming_dir.join(format!("{}-again", g.id.0));
                tokio::fs::copy(&path, &again).await?;
                let again = RemoveOnDrop(again);
                let installed = install(g, vote, file).await;
                install(g, vote, again).await.and(installed)
            }
            Ok(()) => install(g, vote, file).await,
            Err(e) => {
                tracing::warn!(group = %g.id, "refused a received snapshot: {}", e.message());
                Err(e)
            }
        };
        self.reply(codec, &installed?)
    }

    async fn forward(&self, req: Request<Envelope>) -> Result<Response<Reply>, Status> {
        let certs = req.peer_certs();
        let e = req.into_inner();
        let g = self.group(&e, certs.as_deref())?;
        let payload = self.forwards.serve(g, &e.payload).await;
        Ok(self.answer(payload))
    }

    async fn clock(&self, req: Request<ClockProbe>) -> Result<Response<ClockReading>, Status> {
        self.check_sender(req.peer_certs().as_deref(), req.get_ref().from_node)?;
        if req.get_ref().cluster_id != self.me.cluster_id {
            return Err(Status::failed_precondition(
                "clock probe from another cluster",
            ));
        }
        let wall_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        Ok(Response::new(ClockReading {
            node_id: self.me.node_id,
            wall_us,
        }))
    }
}

/// A file removed when this is dropped (if it is still there).
struct RemoveOnDrop(std::path::PathBuf);

impl RemoveOnDrop {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Longest wait for the next chunk of a snapshot stream (a sender that went silent
/// would otherwise hold the stream, and its file, for good).
const CHUNK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Writes the stream's data into `path` and makes it durable: exactly `total` bytes, or
/// the stream is refused (a sender that failed mid-file, a cut or padded stream).
async fn receive(
    path: &std::path::Path,
    first: Vec<u8>,
    total: u64,
    stream: &mut Streaming<SnapshotChunk>,
    fault: Option<StreamFault>,
) -> Result<(), Status> {
    let mut file = tokio::fs::File::create(path).await?;
    let mut written = 0u64;
    let mut next = Some(first);
    while let Some(mut data) = next.take() {
        let at = written;
        written += data.len() as u64;
        if written > total {
            return Err(Status::invalid_argument(format!(
                "snapshot stream longer than the {total} bytes announced"
            )));
        }
        let middle = total / 2;
        if (at..written).contains(&middle) {
            match fault {
                Some(StreamFault::Cut) => {
                    written = at;
                    break;
                }
                Some(StreamFault::Flip) => data[(middle - at) as usize] ^= 0xff,
                Some(StreamFault::Twice) | None => {}
            }
        }
        file.write_all(&data).await?;
        let chunk = tokio::time::timeout(CHUNK_PATIENCE, stream.next())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "snapshot stream silent for {CHUNK_PATIENCE:?} after {written} of {total} bytes"
                ))
            })?;
        next = chunk.transpose()?.map(|c| c.data);
    }
    if written != total {
        return Err(Status::invalid_argument(format!(
            "snapshot stream ended after {written} of {total} bytes"
        )));
    }
    file.sync_all().await?;
    Ok(())
}

async fn install<L: LogTypes>(
    g: &Group<L>,
    vote: Vote<L>,
    file: RemoveOnDrop,
) -> Result<openraft::raft::SnapshotResponse<TypeConfig<L>>, Status> {
    // Checked whole before openraft sees it: a damaged file is refused (the sender
    // retries) instead of failing the install inside the state machine.
    let meta = snapshot::verify::<L>(file.path()).map_err(|e| {
        tracing::warn!(group = %g.id, "refused a received snapshot: {e}");
        Status::invalid_argument(format!("bad snapshot: {e}"))
    })?;
    let snapshot = openraft::alias::SnapshotOf::<TypeConfig<L>, SnapshotFile> {
        meta,
        snapshot: SnapshotFile {
            path: file.path().to_path_buf(),
        },
    };
    // The file goes with the install onto its own task: a call dropped meanwhile must not
    // remove what openraft's state machine is moving into the group's snapshot dir (that
    // failed the install and restarted the node). Once the install ends, a file still here
    // was not used — the install failed, or openraft skipped a snapshot no newer than the
    // group's (a sender's retry of one already installed: 21 files of 400–630 MB were left
    // so on a node catching up on 10 million schedules) — and goes with `file`.
    let raft = g.raft.clone();
    let installing = tokio::spawn(async move {
        let installed = raft.install_full_snapshot(vote, snapshot).await;
        drop(file);
        installed
    });
    installing
        .await
        .map_err(|e| Status::internal(format!("snapshot install: {e}")))?
        .map_err(fatal)
}
