//! goschedctl: the operator's CLI over a node's gRPC admin service.

use std::time::Duration;

use clap::{Parser, Subcommand};
use goscheduler::auth::{admin_client, AdminClient, AdminToken};
use goscheduler::proto::admin::{
    AddNodeRequest, RemoveNodeRequest, SnapshotRequest, StatusReply, StatusRequest,
    TransferLeaderRequest,
};
use serde_json::json;

#[derive(Parser)]
#[command(
    version,
    about = "Operate a goscheduler cluster through a node's admin gRPC service"
)]
struct Cli {
    /// gRPC address of the node to talk to.
    #[arg(
        long,
        global = true,
        env = "GOSCHEDCTL_ADDR",
        default_value = "127.0.0.1:9090"
    )]
    addr: String,
    /// The cluster's admin token, for operations that change the cluster.
    #[arg(
        long,
        global = true,
        env = "GOSCHED_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// REST address of the node the schedule, runs and apps commands talk to.
    #[arg(
        long,
        global = true,
        env = "GOSCHEDCTL_REST",
        default_value = "127.0.0.1:8080"
    )]
    rest: String,
    /// Print JSON instead of a table (schedule, runs and apps commands).
    #[arg(long, global = true)]
    json: bool,
    /// The cluster CA's certificate (PEM): talk TLS to nodes that run with mutual TLS.
    #[arg(long, global = true, env = "GOSCHED_CA_FILE")]
    ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Clone)]
enum Cmd {
    /// Role, leader, term, log and applied index, lag of every group on every node.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move a group's leadership to another node.
    TransferLeader {
        /// Group id (0 = meta, N = shard N-1).
        #[arg(long, required_unless_present = "all")]
        group: Option<u64>,
        /// Every group the addressed node leads.
        #[arg(long)]
        all: bool,
        /// The node to lead.
        #[arg(long)]
        to: u64,
    },
    /// Add a node to every group: as learner, then voter once caught up.
    AddNode {
        #[arg(long)]
        id: u64,
        #[arg(long)]
        grpc_addr: String,
        #[arg(long)]
        http_addr: String,
    },
    /// Remove a node from every group.
    RemoveNode {
        #[arg(long)]
        id: u64,
    },
    /// Drive a running cluster through its REST gateways and report creates/s, create
    /// latency, fires/s, lateness, and missing and duplicate deliveries.
    Bench(goscheduler::bench::BenchArgs),
    /// Make a cluster CA and node certificates for mutual TLS (a dev or test cluster).
    #[command(subcommand)]
    Certs(Certs),
    /// A schedule, through REST: get, pause, resume, trigger, delete, update, audit.
    #[command(subcommand)]
    Schedules(goscheduler::ctl::ScheduleCmd),
    /// The runs of a cron, through REST.
    Runs {
        id: String,
        /// past, future or all.
        #[arg(long, default_value = "future")]
        when: String,
        #[arg(long, default_value_t = 15)]
        size: usize,
    },
    /// Apps, through REST: list, register, activate, deactivate.
    #[command(subcommand)]
    Apps(goscheduler::ctl::AppCmd),
    /// Build a snapshot of a group (or all) on the addressed node, compacting its log.
    Snapshot {
        #[arg(long, required_unless_present = "all")]
        group: Option<u64>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Clone)]
enum Certs {
    /// Make a new cluster CA (`ca.pem`, `ca.key`) in a directory.
    Init {
        #[arg(long)]
        dir: std::path::PathBuf,
        /// Named in the CA's subject.
        #[arg(long, default_value = "goscheduler")]
        cluster: String,
    },
    /// Issue node certificates (`nodeN.pem`, `nodeN.key`) signed by the CA in a directory.
    Issue {
        #[arg(long)]
        dir: std::path::PathBuf,
        /// Node ids, e.g. `--node 1 --node 2`.
        #[arg(long = "node", required = true)]
        nodes: Vec<u64>,
        /// Extra names (host names, addresses) to put in the certificates.
        #[arg(long)]
        san: Vec<String>,
    },
}

fn certs(cmd: Certs) -> anyhow::Result<()> {
    use goscheduler::tls::certs;
    match cmd {
        Certs::Init { dir, cluster } => {
            println!("CA written: {}", certs::init(&dir, &cluster)?.display());
        }
        Certs::Issue { dir, nodes, san } => {
            for node in nodes {
                let (cert, key) = certs::issue(&dir, node, &san)?;
                println!("node {node}: {} {}", cert.display(), key.display());
            }
        }
    }
    Ok(())
}

/// How goschedctl reaches nodes: the admin token it sends, TLS when the cluster uses it.
struct Dialer {
    token: AdminToken,
    tls: Option<tonic::transport::ClientTlsConfig>,
}

impl Dialer {
    async fn connect(&self, addr: &str) -> anyhow::Result<AdminClient> {
        let channel = goscheduler::tls::endpoint(addr, self.tls.clone())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(120))
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {addr}: {:#}", anyhow::Error::from(e)))?;
        Ok(admin_client(channel, &self.token))
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let rest_only = matches!(
        cli.command,
        Cmd::Certs(_) | Cmd::Bench(_) | Cmd::Schedules(_) | Cmd::Runs { .. } | Cmd::Apps(_)
    );
    let plaintext = cli.ca.is_none() && !rest_only;
    if let Err(e) = run(cli).await {
        let e = if plaintext && format!("{e:#}").contains("connection closed") {
            e.context("the node closed the connection: if the cluster runs mutual TLS, pass its CA with --ca (or GOSCHED_CA_FILE)")
        } else {
            e
        };
        // The message chain, not a backtrace: this is a user's tool.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Cmd::Bench(args) = cli.command {
        let token = cli.token.as_deref().filter(|t| !t.is_empty());
        let reports = goscheduler::bench::run(args, token).await?;
        for (n, report) in reports.iter().enumerate() {
            println!("round {}:\n{report}", n + 1);
        }
        return Ok(());
    }
    if let Cmd::Certs(cmd) = cli.command {
        return certs(cmd);
    }
    let rest =
        || goscheduler::ctl::Rest::new(&cli.rest, cli.token.clone().filter(|t| !t.is_empty()));
    let printed = match cli.command.clone() {
        Cmd::Schedules(cmd) => Some(goscheduler::ctl::schedule(&rest()?, cmd, cli.json).await?),
        Cmd::Runs { id, when, size } => {
            Some(goscheduler::ctl::runs(&rest()?, &id, &when, size, cli.json).await?)
        }
        Cmd::Apps(cmd) => Some(goscheduler::ctl::app(&rest()?, cmd, cli.json).await?),
        _ => None,
    };
    if let Some(out) = printed {
        println!("{out}");
        return Ok(());
    }
    let dialer = Dialer {
        token: AdminToken::new(cli.token.filter(|t| !t.is_empty())),
        tls: cli
            .ca
            .as_deref()
            .map(goscheduler::tls::operator_client)
            .transpose()?,
    };
    let mut client = dialer.connect(&cli.addr).await?;
    let message = match cli.command {
        Cmd::Status { json } => return status(client, &dialer, json).await,
        Cmd::TransferLeader { group, all, to } => {
            let req = TransferLeaderRequest {
                group_id: group.unwrap_or(0),
                all_groups: all,
                to_node: to,
            };
            client.transfer_leader(req).await?.into_inner().message
        }
        Cmd::AddNode {
            id,
            grpc_addr,
            http_addr,
        } => {
            let req = AddNodeRequest {
                node_id: id,
                grpc_addr,
                http_addr,
                group_id: 0,
                all_groups: true,
            };
            client.add_node(req).await?.into_inner().message
        }
        Cmd::RemoveNode { id } => {
            let req = RemoveNodeRequest {
                node_id: id,
                group_id: 0,
                all_groups: true,
            };
            client.remove_node(req).await?.into_inner().message
        }
        Cmd::Snapshot { group, all } => {
            let req = SnapshotRequest {
                group_id: group.unwrap_or(0),
                all_groups: all,
            };
            client.snapshot(req).await?.into_inner().message
        }
        Cmd::Bench(_) | Cmd::Certs(_) | Cmd::Schedules(_) | Cmd::Runs { .. } | Cmd::Apps(_) => {
            unreachable!("handled above")
        }
    };
    println!("{message}");
    Ok(())
}

/// Asks the addressed node, then every member it knows of, for their status.
async fn status(mut first: AdminClient, dialer: &Dialer, as_json: bool) -> anyhow::Result<()> {
    let head = first.status(StatusRequest {}).await?.into_inner();
    let mut nodes = vec![];
    let mut unreachable = vec![];
    for m in &head.members {
        if m.node_id == head.node_id {
            continue;
        }
        let reply = async {
            dialer
                .connect(&m.grpc_addr)
                .await?
                .status(StatusRequest {})
                .await
                .map_err(anyhow::Error::from)
        };
        match tokio::time::timeout(Duration::from_secs(3), reply).await {
            Ok(Ok(r)) => nodes.push(r.into_inner()),
            Ok(Err(e)) => unreachable.push(
                json!({"nodeId": m.node_id, "grpcAddr": m.grpc_addr, "error": e.to_string()}),
            ),
            Err(_) => unreachable
                .push(json!({"nodeId": m.node_id, "grpcAddr": m.grpc_addr, "error": "timed out"})),
        }
    }
    nodes.insert(0, head);
    nodes.sort_by_key(|n| n.node_id);
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"nodes": nodes, "unreachable": unreachable}))?
        );
    } else {
        print_table(&nodes);
        for u in unreachable {
            println!("unreachable: {u}");
        }
    }
    Ok(())
}

fn print_table(nodes: &[StatusReply]) {
    println!(
        "{:<6} {:<9} {:<10} {:>6} {:>6} {:>9} {:>9} {:>9}  {:<10} lag",
        "node", "group", "role", "leader", "term", "last_log", "applied", "snapshot", "voters"
    );
    for n in nodes {
        for g in &n.groups {
            let voters = g
                .voters
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let lag = g
                .lag
                .iter()
                .map(|l| format!("{}:{}", l.node_id, l.behind))
                .collect::<Vec<_>>()
                .join(" ");
            println!(
                "{:<6} {:<9} {:<10} {:>6} {:>6} {:>9} {:>9} {:>9}  {:<10} {}",
                n.node_id,
                g.name,
                g.role,
                g.leader,
                g.term,
                g.last_log_index,
                g.applied_index,
                g.snapshot_index,
                voters,
                lag
            );
        }
    }
    println!();
    println!(
        "{:<6} {:<16} {:<13} {:<7} {:>7} {:>7} {:<24} last error",
        "node", "worker", "scope", "active", "rounds", "errors", "last round"
    );
    for n in nodes {
        for w in &n.workers {
            let last = match w.last_round_ms {
                0 => "never".to_string(),
                ms => chrono::DateTime::from_timestamp_millis(ms as i64)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                    .unwrap_or_default(),
            };
            println!(
                "{:<6} {:<16} {:<13} {:<7} {:>7} {:>7} {:<24} {}",
                n.node_id,
                w.name,
                w.scope,
                if w.active { "yes" } else { "no" },
                w.rounds,
                w.errors,
                last,
                w.last_error
            );
        }
    }
    println!();
    println!(
        "{:<6} {:<8} clocks (peer: offset ms, rtt ms)",
        "node", "trusted"
    );
    for n in nodes {
        let peers = n
            .clocks
            .iter()
            .map(|c| {
                let mark = if c.within_bound { "" } else { " (off)" };
                format!("{}: {:+} rtt {}{mark}", c.node_id, c.offset_ms, c.rtt_ms)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let trusted = if n.clock_trusted { "yes" } else { "no" };
        println!(
            "{:<6} {:<8} {peers}  — {}",
            n.node_id, trusted, n.clock_verdict
        );
    }
}
