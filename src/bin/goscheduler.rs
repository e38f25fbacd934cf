//! The goscheduler node.

use std::path::PathBuf;

use clap::Parser;
use goscheduler::config::Config;

/// A node of a goscheduler cluster. With no config it runs a single-node cluster with its
/// data in ./data/node1, REST on 127.0.0.1:8080 and gRPC on 127.0.0.1:9090.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML config file (see cluster-config/ for examples). `GOSCHED_*` variables override it.
    #[arg(short, long, env = "GOSCHED_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .init();
    let args = Args::parse();
    let config = Config::load(args.config.as_deref())?;
    goscheduler::node::run(config, shutdown_signal()).await
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
