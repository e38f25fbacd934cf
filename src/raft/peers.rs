//! One HTTP/2 channel per peer address, shared by every group and by request forwarding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::Channel;

use crate::proto::raft::raft_transport_client::RaftTransportClient;
use crate::proto::raft::{Envelope, Reply};

use super::admission::Admissions;
use crate::ids::{GroupId, NodeId};
use crate::store::codec::Codec;
use crate::tls::NodeTls;

/// Connect timeout: a node that is down fails fast instead of stalling its callers.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest gRPC message (snapshots are streamed in smaller chunks).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The node's connections to its peers, keyed by gRPC address.
pub struct Peers {
    cluster_id: String,
    shards: u32,
    node_id: NodeId,
    admissions: Arc<Admissions>,
    /// Addresses to dial instead of what a peer advertises (port maps, proxies).
    dial: HashMap<NodeId, String>,
    /// Mutual TLS with every peer, unless the cluster runs plaintext.
    tls: Option<NodeTls>,
    /// How messages to peers are encoded (replies come back the same way).
    wire: Codec,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
    pub fn new(
        cluster_id: String,
        shards: u32,
        node_id: NodeId,
        admissions: Arc<Admissions>,
        dial: HashMap<NodeId, String>,
        tls: Option<NodeTls>,
        wire: Codec,
    ) -> Self {
        Peers {
            cluster_id,
            shards,
            node_id,
            admissions,
            dial,
            tls,
            wire,
            channels: Mutex::new(HashMap::new()),
        }
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Encodes a message to a peer.
    pub fn encode<T: serde::Serialize>(&self, msg: &T) -> std::io::Result<Vec<u8>> {
        self.wire.encode(msg)
    }

    /// A transport client on the shared channel to node `target`, advertised at `addr`.
    pub fn client(
        &self,
        target: NodeId,
        addr: &str,
    ) -> Result<RaftTransportClient<Channel>, tonic::transport::Error> {
        Ok(RaftTransportClient::new(self.channel(target, addr)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// The shared channel to node `target`, advertised at `addr` (connected lazily,
    /// reconnected on demand).
    pub fn channel(&self, target: NodeId, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let addr = self.dial.get(&target).map(String::as_str).unwrap_or(addr);
        let mut channels = self.channels.lock().expect("peers lock");
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let tls = self.tls.as_ref().map(|t| t.client_for(target));
                let c = crate::tls::endpoint(addr, tls)?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(5))
                    .keep_alive_timeout(Duration::from_secs(5))
                    .connect_lazy();
                channels.insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(channel)
    }

    /// An envelope addressed to `target` in `group`.
    pub fn envelope(&self, group: GroupId, target: NodeId, payload: Vec<u8>) -> Envelope {
        Envelope {
            cluster_id: self.cluster_id.clone(),
            shards: self.shards,
            group_id: group.0,
            target_node: target,
            payload,
            sender_node: self.node_id,
            sender_incarnation: self.admissions.mine(),
        }
    }

    /// The payload of `target`'s reply, if the incarnation that answered is admitted.
    pub fn payload_of(&self, target: NodeId, reply: Reply) -> Result<Vec<u8>, String> {
        self.admissions.check(target, &reply.incarnation)?;
        Ok(reply.payload)
    }
}
