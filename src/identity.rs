//! Which node a data dir belongs to, and the amnesia guard.
//!
//! At its first start a node writes `IDENTITY` into its data dir: cluster id, node id and
//! a fresh incarnation. A later start checks the dir is this node's. A node whose dir is
//! empty asks its peers first: if the cluster has recorded this node id (the meta group's
//! node registry, see `MetaCommand::RecordNode`), the node lost its data — with an empty log
//! it could vote a lagging peer into overwriting committed entries — so it refuses to start
//! until an operator removes it (`goschedctl remove-node`, which forgets it) and adds it back.
//! Should such a node take part anyway, its peers refuse it: every message and reply names
//! its sender's incarnation, checked against the registry ([`Registry`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin::status::of_peer;
use crate::config::Config;
use crate::raft::admission::Admissions;
use crate::raft::peers::Peers;
use crate::router::Router;
use crate::workers::Round;

const FILE: &str = "IDENTITY";
/// Fault injection: a node with an empty dir takes part without asking its peers (as a
/// broken or older node would), so tests can see its peers refuse it.
const SKIP_GUARD: &str = "GOSCHED_FAULT_SKIP_AMNESIA_GUARD";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub cluster_id: String,
    pub node_id: u64,
    /// Made at the data dir's first start; a wiped dir gets a new one.
    pub incarnation: Uuid,
}

fn path(config: &Config) -> PathBuf {
    config.data_dir.join(FILE)
}

/// The identity of this node's data dir: `None` for an empty dir (first start, or lost
/// data); an error for a dir of another node or cluster. A dir whose groups are
/// initialised (`initialised`) but has no identity (written before identities existed) is
/// adopted.
pub fn read(config: &Config, initialised: bool) -> anyhow::Result<Option<NodeIdentity>> {
    let file = path(config);
    if !file.exists() {
        return if initialised {
            create(config).map(Some)
        } else {
            Ok(None)
        };
    }
    let found: NodeIdentity = serde_json::from_slice(&std::fs::read(&file)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    anyhow::ensure!(
        found.cluster_id == config.cluster_id && found.node_id == config.node_id,
        "data dir {} belongs to node {} of cluster {:?}, not node {} of cluster {:?}: wrong volume or config",
        config.data_dir.display(),
        found.node_id,
        found.cluster_id,
        config.node_id,
        config.cluster_id
    );
    Ok(Some(found))
}

/// Writes a new identity (new incarnation) into the data dir, durably.
pub fn create(config: &Config) -> anyhow::Result<NodeIdentity> {
    let identity = NodeIdentity {
        cluster_id: config.cluster_id.clone(),
        node_id: config.node_id,
        incarnation: Uuid::new_v4(),
    };
    std::fs::create_dir_all(&config.data_dir)?;
    write_durably(&path(config), &serde_json::to_vec_pretty(&identity)?)?;
    tracing::info!(incarnation = %identity.incarnation, "data dir identity written");
    Ok(identity)
}

fn write_durably(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = file.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)?;
    std::fs::File::open(file.parent().expect("a data dir"))?.sync_all()
}

/// How long the bootstrap node of a new cluster waits for a peer to answer before it
/// goes on alone (its peers are new too, or down).
const BOOTSTRAP_PATIENCE: Duration = Duration::from_secs(10);

/// Before a node with an empty data dir takes part: refuses (an error) if a peer's meta
/// replica has this node id recorded. Waits for at least one peer to answer (the
/// bootstrap node of a new cluster gives up waiting after a while).
pub async fn guard_empty_dir(config: &Config, via: &Peers) -> anyhow::Result<()> {
    if std::env::var_os(SKIP_GUARD).is_some() {
        // Tests of the second line of defence: peers must refuse this node.
        tracing::warn!("{SKIP_GUARD} set: taking part with an empty data dir unchecked");
        return Ok(());
    }
    let peers: Vec<_> = config
        .initial_members()
        .into_iter()
        .filter(|p| p.id != config.node_id)
        .collect();
    if peers.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    for round in 0u64.. {
        let mut answered = false;
        for peer in &peers {
            let Some(admitted) = of_peer(via, peer.id, &peer.grpc_addr)
                .await
                .map(|s| s.admitted)
            else {
                continue;
            };
            anyhow::ensure!(
                !admitted.contains(&config.node_id),
                "node {} has an empty data dir ({}), but node {} knows it as a member: its data \
                 was lost. It must not take part with an empty log. Remove it on a live node \
                 (`goschedctl remove-node --id {}`), then start it again and add it back \
                 (`goschedctl add-node`)",
                config.node_id,
                config.data_dir.display(),
                peer.id,
                config.node_id
            );
            answered = true;
        }
        if answered || (config.bootstrap && started.elapsed() >= BOOTSTRAP_PATIENCE) {
            return Ok(());
        }
        if round % 10 == 9 {
            tracing::warn!("empty data dir: waiting for a peer to confirm this node is new");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    unreachable!("the loop returns")
}

/// How often a node re-reads which incarnations the cluster admitted.
pub const REGISTRY_PERIOD: Duration = Duration::from_secs(1);

/// Keeps the transport's admitted incarnations ([`Admissions`]) equal to the node registry
/// of this node's meta replica, so that peers of a lost incarnation are refused.
pub struct Registry {
    pub router: Router,
    pub admissions: Arc<Admissions>,
}

impl Registry {
    /// Reads the registry once.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        self.admissions
            .admit_only(self.router.nodes_replica().await?);
        self.admissions
            .refuse(self.router.removed_nodes_replica().await?);
        Ok(())
    }
}

impl Round for Registry {
    async fn round(&mut self) -> anyhow::Result<bool> {
        self.refresh().await.map(|()| true)
    }
}
