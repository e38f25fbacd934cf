//! Mutual TLS between nodes.
//!
//! A cluster CA signs every node's certificate; the certificate names its node in a
//! subject alternative name, `node-<id>.goscheduler` (see [`node_name`]). A node dials a
//! peer expecting that peer's name, and serves only peer messages whose sender is the node
//! its client certificate names ([`check_peer`]). Operators' clients (goschedctl) connect
//! without a certificate, verify the node against the CA under the name every node also
//! carries ([`ANY_NODE`]), and authenticate with the admin token instead.

pub mod certs;

use std::path::{Path, PathBuf};

use rustls_pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use crate::ids::NodeId;

/// The name in every node certificate besides its own, for clients that dial "a node".
pub const ANY_NODE: &str = "goscheduler";

/// The name node `id`'s certificate must carry.
pub fn node_name(id: NodeId) -> String {
    format!("node-{id}.{ANY_NODE}")
}

/// The `[tls]` config table: the cluster CA and this node's certificate and
/// key, PEM files (`goschedctl certs init|issue` makes them for a dev cluster).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsSettings {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Let a cluster of several nodes talk plaintext (anyone who can reach a node's gRPC
    /// port can then speak for any node). A single node needs no TLS.
    pub insecure: bool,
}

impl TlsSettings {
    pub fn validate(&self, several_nodes: bool) -> anyhow::Result<()> {
        let files = [&self.ca_file, &self.cert_file, &self.key_file];
        let given = files.iter().filter(|f| f.is_some()).count();
        anyhow::ensure!(
            given == 0 || given == 3,
            "tls needs all of ca_file, cert_file and key_file, or none"
        );
        anyhow::ensure!(
            given == 3 || self.insecure || !several_nodes,
            "nodes of this cluster would talk plaintext: set [tls] ca_file, cert_file and key_file \
             (`goschedctl certs init` and `certs issue` make them) or, knowingly, insecure = true"
        );
        anyhow::ensure!(
            given == 0 || !self.insecure,
            "tls: insecure = true contradicts the certificate files given"
        );
        NodeTls::load(self)?;
        Ok(())
    }
}

/// A node's TLS material: the cluster CA and its own certificate and key (PEM).
#[derive(Clone)]
pub struct NodeTls {
    ca: Certificate,
    identity: Identity,
}

impl NodeTls {
    /// The node's TLS material as configured; `None` when the cluster runs plaintext.
    pub fn load(settings: &TlsSettings) -> anyhow::Result<Option<NodeTls>> {
        let (Some(ca), Some(cert), Some(key)) =
            (&settings.ca_file, &settings.cert_file, &settings.key_file)
        else {
            return Ok(None);
        };
        Ok(Some(NodeTls {
            ca: Certificate::from_pem(read(ca)?),
            identity: Identity::from_pem(read(cert)?, read(key)?),
        }))
    }

    /// What the node's gRPC server presents and accepts: its certificate; client
    /// certificates of the cluster CA (optional: operators' clients bring a token instead,
    /// and peer RPCs check for one, [`check_peer`]).
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
            .client_auth_optional(true)
    }

    /// How this node dials node `target`: presenting its own certificate, accepting only
    /// `target`'s.
    pub fn client_for(&self, target: NodeId) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(node_name(target))
    }
}

/// An endpoint at `addr`: `https` with `tls`, plain `http` without.
pub fn endpoint(
    addr: &str,
    tls: Option<ClientTlsConfig>,
) -> Result<Endpoint, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?;
    match tls {
        Some(tls) => endpoint.tls_config(tls),
        None => Ok(endpoint),
    }
}

/// How an operator's client dials any node of the cluster whose CA is in `ca_file`.
pub fn operator_client(ca_file: &Path) -> anyhow::Result<ClientTlsConfig> {
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(ca_file)?))
        .domain_name(ANY_NODE))
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Whether a peer message claiming to come from node `sender` may be served, given the
/// client certificates of its connection (`None`: a plaintext connection, or TLS without a
/// certificate). The TLS layer already checked the chain against the cluster CA; here the
/// certificate must name `sender`.
pub fn check_peer(certs: Option<&[CertificateDer<'static>]>, sender: NodeId) -> Result<(), String> {
    let Some(leaf) = certs.and_then(<[_]>::first) else {
        return Err(format!(
            "peer messages need a node certificate of this cluster's CA (message claims node {sender})"
        ));
    };
    let name = ServerName::try_from(node_name(sender)).map_err(|e| e.to_string())?;
    webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("unreadable peer certificate: {e}"))?
        .verify_is_valid_for_subject_name(&name)
        .map_err(|_| {
            format!("the peer's certificate does not name node {sender}, whose message it carries")
        })
}
