//! The composition root: opens the store, starts every Raft group, the gRPC transport and
//! admin server, the REST gateway and the leader balancer, bootstraps a new cluster, and
//! shuts all of it down in order on one signal.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

use crate::admin::balance::{self, Balancer};
use crate::admin::service::AdminService;
use crate::auth::AdminToken;
use crate::callback::client::Client;
use crate::callback::guard::Guard;
use crate::callback::{Dispatcher, InFlight};
use crate::command::{Groups, SchedulerLog};
use crate::config::Config;
use crate::drain::{drain, Draining};
use crate::identity;
use crate::ids::{GroupId, NodeId, NodeInfo};
use crate::meta::logic::MetaLogic;
use crate::proto::admin::admin_server::AdminServer;
use crate::proto::raft::raft_transport_server::RaftTransportServer;
use crate::raft::admission::Admissions;
use crate::raft::peers::{Peers, MAX_MESSAGE_BYTES};
use crate::raft::service::{Identity, TransportService};
use crate::raft::GroupLogic;
use crate::router::Router;
use crate::shard::due_signal::DueSignal;
use crate::shard::logic::ShardLogic;
use crate::skew::probe::{self, Probe};
use crate::skew::SkewGuard;
use crate::storage::{self, Storage};
use crate::store::codec::Codec;
use crate::timer::plan::SystemClock;
use crate::timer::recheck::RunRecheck;
use crate::timer::Timer;
use crate::workers::{bulk_jobs, refill, retention, Scope, Workers};
use crate::{gateway, heap, store};

/// Outcomes waiting to be committed (senders wait when it is full).
const OUTCOME_QUEUE: usize = 16_384;

/// Runs a node until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.data_dir)?;
    let db = store::open(&config.data_dir.join("db"))?;
    let admissions = Arc::new(Admissions::default());
    let tls = crate::tls::NodeTls::load(&config.tls)?;
    let peers = Arc::new(Peers::new(
        config.cluster_id.clone(),
        config.shards,
        config.node_id,
        admissions.clone(),
        config.dial_map(),
        tls.clone(),
        config.raft.wire_codec,
    ));
    if config.raft.wire_codec == Codec::Json {
        tracing::info!("sending peers JSON (raft.wire_codec = json), as builds before 2026-12-06");
    }
    let raft_config = Arc::new(config.openraft_config()?);
    // What each group does with its log: the meta group's logic, or a shard's (whose
    // due signal wakes that shard's timer).
    let due: BTreeMap<GroupId, Arc<DueSignal>> = GroupId::all(config.shards)
        .filter(|g| g.is_shard())
        .map(|g| (g, Arc::default()))
        .collect();
    let logic_of = |g: GroupId| -> Arc<dyn GroupLogic<SchedulerLog>> {
        match due.get(&g) {
            Some(due) => Arc::new(ShardLogic { due: due.clone() }),
            None => Arc::new(MetaLogic),
        }
    };
    let groups = Arc::new(
        Groups::open(
            config.node_id,
            config.shards,
            raft_config,
            db.clone(),
            &config.data_dir.join("snapshots"),
            peers.clone(),
            logic_of,
        )
        .await?,
    );
    let initialised = groups.meta().raft.is_initialized().await?;
    let known = identity::read(&config, initialised)?;
    if let Some(identity) = &known {
        admissions.set_mine(identity.incarnation);
    }
    let taking_part = Arc::new(AtomicBool::new(known.is_some()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = Arc::new(Workers::new(stop_rx.clone()));

    let grpc_listener = TcpListener::bind(&config.grpc_addr).await?;
    let http_listener = TcpListener::bind(&config.http_addr).await?;
    tracing::info!(
        node = config.node_id,
        grpc = %config.grpc_addr,
        http = %config.http_addr,
        shards = config.shards,
        "node started"
    );

    let linger = Duration::from_micros(config.raft.create_linger_us);
    let router = Router::new(config.node_id, groups.clone(), peers.clone(), linger);
    // Which peer incarnations may take part, known before the first message is served.
    let registry = identity::Registry {
        router: router.clone(),
        admissions: admissions.clone(),
    };
    registry.refresh().await?;
    let draining = Draining::default();
    let skew = Arc::new(SkewGuard::new(config.node_id, config.max_clock_offset_ms));
    let me = Identity {
        node_id: config.node_id,
        cluster_id: config.cluster_id.clone(),
        shards: config.shards,
        taking_part: taking_part.clone(),
        admissions: admissions.clone(),
        tls: tls.is_some(),
    };
    // Read at start (a token file): a node that cannot read it does not start, never open.
    let token = AdminToken::new(config.auth.admin_token()?);
    let admin = AdminService::new(
        config.clone(),
        router.clone(),
        peers.clone(),
        workers.clone(),
        skew.clone(),
        token.clone(),
    );
    let grpc = tokio::spawn(serve_grpc(
        config.clone(),
        (me, tls),
        router.clone(),
        admin,
        grpc_listener,
        stop_rx.clone(),
    ));
    let storage = Storage::new(config.node_id, config.data_dir.clone(), groups.clone());
    // One guard for creates (gateway) and calls (dispatcher).
    let guard = Arc::new(config.callback_guard()?);
    let client = Client::new(guard.clone(), &config.callbacks)?;
    let app = gateway::routes(gateway::Gateway::new(
        router.clone(),
        config.clone(),
        skew.clone(),
        storage.clone(),
        guard.clone(),
        token,
    )?);
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(async move {
        use axum::serve::ListenerExt;
        // Nagle off: an answer goes out at once, not after the client's delayed ACK.
        let http_listener = http_listener.tap_io(|conn| {
            let _ = conn.set_nodelay(true);
        });
        axum::serve(http_listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.changed().await;
            })
            .await
    });

    let identity = match known {
        Some(identity) => identity,
        None => {
            identity::guard_empty_dir(&config, &peers).await?;
            let identity = identity::create(&config)?;
            admissions.set_mine(identity.incarnation);
            identity
        }
    };
    taking_part.store(true, Ordering::Release);
    if config.bootstrap {
        bootstrap(&config, &groups, &peers).await?;
    }
    tokio::spawn(record_incarnation(
        router.clone(),
        identity,
        stop_rx.clone(),
    ));
    let in_flight = start_workers(
        &config,
        &router,
        &workers,
        due,
        &draining,
        &skew,
        (client, guard),
    );
    workers.every(
        "node-registry",
        Scope::Node,
        identity::REGISTRY_PERIOD,
        registry,
    );
    let watch = storage::Watch::new(storage);
    workers.every("storage-watch", Scope::Node, storage::PERIOD, watch);
    workers.every("heap-trim", Scope::Node, heap::PERIOD, heap::Trim);

    shutdown.await;
    tracing::info!("stopping: handing over leadership, finishing callbacks in flight");
    let within = Duration::from_millis(config.firing.drain_ms);
    let alive_within = config.peer_alive_within();
    drain(
        config.node_id,
        &groups,
        &in_flight,
        &draining,
        &skew,
        alive_within,
        within,
    )
    .await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    workers.join().await;
    let _ = http.await;
    groups.shutdown().await;
    let _ = grpc.await;
    db.flush_wal(true)?;
    Ok(())
}

/// Starts the node's background workers: the leader balancer, the shard leaders' cron
/// refill and retention, the meta leader's bulk jobs, and the firing engine (a timer per
/// shard, active while this node leads it; the dispatcher its claimed runs go to; the
/// worker committing their outcomes).
fn start_workers(
    config: &Config,
    router: &Router,
    workers: &Workers,
    due: BTreeMap<GroupId, Arc<DueSignal>>,
    draining: &Draining,
    skew: &Arc<SkewGuard>,
    (client, guard): (Client, Arc<Guard>),
) -> Arc<InFlight> {
    let (node_id, groups) = (config.node_id, router.groups().clone());
    let alive_within = config.peer_alive_within();
    let probe = Probe::new(
        node_id,
        skew.clone(),
        router.peers().clone(),
        groups.clone(),
        alive_within,
    );
    workers.every("clock-probe", Scope::Node, probe::PERIOD, probe);
    if config.balance_leaders {
        let balancer = Balancer::new(node_id, groups.clone(), alive_within, skew.clone());
        workers.every("leader-balancer", Scope::Node, balance::PERIOD, balancer);
    }
    let refill = refill::Refill {
        node_id,
        groups: groups.clone(),
    };
    workers.every("cron-refill", Scope::ShardLeader, refill::PERIOD, refill);
    let retention = retention::Retention {
        node_id,
        router: router.clone(),
        next_app: None,
    };
    workers.every(
        "retention",
        Scope::ShardLeader,
        retention::PERIOD,
        retention,
    );
    let bulk = bulk_jobs::BulkJobs {
        node_id,
        router: router.clone(),
        shards: config.shards,
        stop: workers.stop_signal(),
    };
    workers.every("bulk-jobs", Scope::MetaLeader, bulk_jobs::PERIOD, bulk);

    let (outcomes_tx, outcomes_rx) = tokio::sync::mpsc::channel(OUTCOME_QUEUE);
    let recheck = Arc::new(RunRecheck {
        router: router.clone(),
    });
    let dispatcher = Dispatcher::new(&config.firing, client, guard, outcomes_tx, recheck);
    let (r, in_flight) = (router.clone(), dispatcher.in_flight.clone());
    let calling = dispatcher.calling.clone();
    workers.spawn("outcomes", Scope::Node, "runs finishing", move |w| {
        crate::callback::outcomes::run(r, in_flight, calling, outcomes_rx, w)
    });
    let timer = Arc::new(Timer {
        node_id,
        router: router.clone(),
        dispatcher,
        settings: config.firing.clone(),
        clock: Arc::new(SystemClock),
        draining: draining.clone(),
        skew: skew.clone(),
    });
    let in_flight = timer.dispatcher.in_flight.clone();
    for (shard, due) in due {
        let timer = timer.clone();
        let trigger = "each second, and runs written due now";
        workers.spawn(
            format!("timer {shard}"),
            Scope::ShardLeader,
            trigger,
            move |w| timer.run(shard, due, w),
        );
    }
    in_flight
}

async fn serve_grpc(
    config: Arc<Config>,
    (me, tls): (Identity, Option<crate::tls::NodeTls>),
    router: Router,
    admin: AdminService,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let groups = router.groups().clone();
    let incoming = config.data_dir.join("snapshots").join("incoming");
    let forwards = Arc::new(router.clone());
    let transport = TransportService::new(me, groups.clone(), forwards, incoming);
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // Peers share one connection per node pair: bound what one may have in work, and notice
    // a peer that went away without closing its connection.
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls.server())?;
    }
    server
        .concurrency_limit_per_connection(config.limits.max_concurrent_peer_requests)
        .load_shed(true)
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .add_service(
            RaftTransportServer::new(transport)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(AdminServer::new(admin))
        .add_service(reflection)
        .serve_with_incoming_shutdown(no_delay(listener), async move {
            let _ = stop.changed().await;
        })
        .await?;
    Ok(())
}

/// Records this node's incarnation in the meta group (retrying until it is a member and
/// the write commits), so that the node is known should it ever start on an empty dir.
async fn record_incarnation(
    router: Router,
    identity: identity::NodeIdentity,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match router
            .record_node(identity.node_id, identity.incarnation)
            .await
        {
            Ok(()) => {
                return tracing::info!(incarnation = %identity.incarnation, "incarnation recorded")
            }
            Err(e) => tracing::debug!("recording incarnation: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Initialises every group with the configured members, unless this node's groups are
/// initialised already (a restart) or a peer reports an existing cluster (this node lost
/// its data: it must be re-added, not start a second cluster under the same ids).
async fn bootstrap(config: &Config, groups: &Groups, peers: &Peers) -> anyhow::Result<()> {
    if groups.meta().raft.is_initialized().await? {
        tracing::info!("cluster already initialised: rejoining");
        return Ok(());
    }
    for peer in config
        .initial_members()
        .iter()
        .filter(|p| p.id != config.node_id)
    {
        if peer_has_cluster(peers, peer).await {
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

/// Whether `peer` answers with an initialised meta group.
async fn peer_has_cluster(peers: &Peers, peer: &crate::config::Peer) -> bool {
    crate::admin::status::of_peer(peers, peer.id, &peer.grpc_addr)
        .await
        .is_some_and(|s| s.groups.first().is_some_and(|g| !g.voters.is_empty()))
}

/// The peer port's connections with Nagle's algorithm off (tonic sets it only on sockets
/// it accepts itself): a small answer (a forwarded write's, an AppendEntries reply) goes
/// out at once instead of waiting up to 40 ms for the peer's delayed ACK.
fn no_delay(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    })
}
