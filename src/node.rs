//! The composition root: opens the store, starts every Raft group, the gRPC transport and
//! admin server, the REST gateway and the leader balancer, bootstraps a new cluster, and
//! shuts all of it down in order on one signal.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

use crate::admin::service::AdminService;
use crate::callback::Dispatcher;
use crate::config::Config;
use crate::proto::admin::admin_client::AdminClient;
use crate::proto::admin::admin_server::AdminServer;
use crate::proto::admin::StatusRequest;
use crate::proto::raft::raft_transport_server::RaftTransportServer;
use crate::raft::group::Groups;
use crate::raft::peers::{Peers, MAX_MESSAGE_BYTES};
use crate::raft::service::TransportService;
use crate::raft::types::GroupKind;
use crate::raft::types::{NodeId, NodeInfo};
use crate::router::Router;
use crate::timer::Timer;
use crate::{admin, gateway, store};

/// Outcomes waiting to be committed (senders wait when it is full).
const OUTCOME_QUEUE: usize = 16_384;

/// Runs a node until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.data_dir)?;
    let db = store::open(&config.data_dir.join("db"))?;
    let peers = Arc::new(Peers::new(
        config.cluster_id.clone(),
        config.shards,
        config.dial_map(),
    ));
    let raft_config = Arc::new(config.openraft_config()?);
    let groups = Arc::new(
        Groups::open(
            config.node_id,
            config.shards,
            raft_config,
            db.clone(),
            &config.data_dir.join("snapshots"),
            peers.clone(),
        )
        .await?,
    );
    let (stop_tx, stop_rx) = watch::channel(false);

    let grpc_listener = TcpListener::bind(&config.grpc_addr).await?;
    let http_listener = TcpListener::bind(&config.http_addr).await?;
    tracing::info!(
        node = config.node_id,
        grpc = %config.grpc_addr,
        http = %config.http_addr,
        shards = config.shards,
        "node started"
    );

    let grpc = tokio::spawn(serve_grpc(
        config.clone(),
        groups.clone(),
        peers.clone(),
        grpc_listener,
        stop_rx.clone(),
    ));
    let router = Router::new(config.node_id, groups.clone(), peers.clone());
    let bulk = tokio::spawn(crate::scheduler::bulk::run(
        config.node_id,
        router.clone(),
        config.shards,
        stop_rx.clone(),
    ));
    let app = gateway::routes(gateway::Gateway {
        router: router.clone(),
        config: config.clone(),
    });
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(async move {
        axum::serve(http_listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.changed().await;
            })
            .await
    });

    if config.bootstrap {
        bootstrap(&config, &groups).await?;
    }
    let balancer = config.balance_leaders.then(|| {
        tokio::spawn(admin::balance::run(
            config.node_id,
            groups.clone(),
            config.heartbeat() * 4,
            stop_rx.clone(),
        ))
    });

    let refill = tokio::spawn(crate::scheduler::refill::run(
        config.node_id,
        groups.clone(),
        stop_rx.clone(),
    ));

    let retention = tokio::spawn(crate::scheduler::retention::run(
        config.node_id,
        groups.clone(),
        stop_rx.clone(),
    ));

    let firing = start_firing(&config, &groups, &router, &stop_rx);

    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    if let Some(b) = balancer {
        let _ = b.await;
    }
    let _ = refill.await;
    let _ = bulk.await;
    let _ = retention.await;
    for task in firing {
        let _ = task.await;
    }
    let _ = http.await;
    groups.shutdown().await;
    let _ = grpc.await;
    db.flush_wal(true)?;
    Ok(())
}

/// Starts the firing engine: a timer per shard (active while this node leads it), the
/// dispatcher its claimed runs go to, and the task committing their outcomes.
fn start_firing(
    config: &Config,
    groups: &Arc<Groups>,
    router: &Router,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (outcomes_tx, outcomes_rx) = tokio::sync::mpsc::channel(OUTCOME_QUEUE);
    let dispatcher = Dispatcher::new(&config.firing, outcomes_tx);
    let mut tasks = vec![tokio::spawn(crate::callback::outcomes::run(
        router.clone(),
        dispatcher.in_flight.clone(),
        outcomes_rx,
        stop.clone(),
    ))];
    let timer = Arc::new(Timer {
        node_id: config.node_id,
        groups: groups.clone(),
        dispatcher,
        settings: config.firing.clone(),
    });
    for g in groups
        .iter()
        .filter(|g| matches!(g.id.kind(), GroupKind::Shard(_)))
    {
        tasks.push(tokio::spawn(timer.clone().run(g.id, stop.clone())));
    }
    tasks
}

async fn serve_grpc(
    config: Arc<Config>,
    groups: Arc<Groups>,
    peers: Arc<Peers>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let transport = TransportService::new(&config, groups.clone());
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    tonic::transport::Server::builder()
        .add_service(
            RaftTransportServer::new(transport)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(AdminServer::new(AdminService::new(config, groups, peers)))
        .add_service(reflection)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = stop.changed().await;
        })
        .await?;
    Ok(())
}

/// Initialises every group with the configured members, unless this node's groups are
/// initialised already (a restart) or a peer reports an existing cluster (this node lost
/// its data: it must be re-added, not start a second cluster under the same ids).
async fn bootstrap(config: &Config, groups: &Groups) -> anyhow::Result<()> {
    if groups.meta().raft.is_initialized().await? {
        tracing::info!("cluster already initialised: rejoining");
        return Ok(());
    }
    for peer in config
        .initial_members()
        .iter()
        .filter(|p| p.id != config.node_id)
    {
        if peer_has_cluster(&peer.grpc_addr).await {
            tracing::warn!(
                peer = peer.id,
                "a peer already belongs to an initialised cluster: not bootstrapping; add this node with goschedctl add-node"
            );
            return Ok(());
        }
    }
    let members: BTreeMap<NodeId, NodeInfo> = config
        .initial_members()
        .iter()
        .map(|p| (p.id, p.info()))
        .collect();
    for g in groups.iter() {
        if !g.raft.is_initialized().await? {
            g.raft.initialize(members.clone()).await?;
        }
    }
    tracing::info!(members = ?members.keys().collect::<Vec<_>>(), "cluster initialised");
    Ok(())
}

/// Whether the node at `addr` answers with an initialised meta group.
async fn peer_has_cluster(addr: &str) -> bool {
    let attempt = async {
        let mut client = AdminClient::connect(format!("http://{addr}")).await.ok()?;
        let status = client.status(StatusRequest {}).await.ok()?.into_inner();
        Some(status.groups.first().is_some_and(|g| !g.voters.is_empty()))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
