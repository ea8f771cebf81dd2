//! The `consul-dev` binary: parse flags, start the agent, run until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use consul_dev::{DevAgent, DevConfig, CURRENT_VERSION};

/// Same port as a Consul dev agent.
const DEFAULT_LISTEN: &str = "127.0.0.1:8500";
/// Exit code for a configuration that prevents start-up (EX_USAGE... EX_CONFIG family).
const EXIT_CONFIG: u8 = 64;

/// A Consul-compatible dev agent (KV, sessions, agent, catalog, health, txn, status).
#[derive(Debug, Parser)]
#[command(name = "consul-dev", version)]
struct Args {
    /// Address to serve the HTTP API on.
    #[arg(long, default_value = DEFAULT_LISTEN, env = "CONSUL_DEV_LISTEN")]
    listen: SocketAddr,
    /// Node name (default: the host name).
    #[arg(long, env = "CONSUL_DEV_NODE")]
    node: Option<String>,
    /// Datacenter name.
    #[arg(long, default_value = "dc1", env = "CONSUL_DEV_DATACENTER")]
    datacenter: String,
    /// Keep state here across restarts (default: in memory).
    #[arg(long, env = "CONSUL_DEV_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Turn ACLs on: every request must present this token.
    #[arg(long, env = "CONSUL_DEV_ACL_TOKEN")]
    acl_token: Option<String>,
    /// Behave as this Consul release (below 1.7: the differences cronnode handles; see the
    /// README).
    #[arg(long, default_value = CURRENT_VERSION, env = "CONSUL_DEV_CONSUL_VERSION")]
    consul_version: String,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "consul-dev".to_string())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = DevConfig {
        listen: args.listen,
        node: args.node.unwrap_or_else(host_name),
        datacenter: args.datacenter,
        acl_token: args.acl_token.filter(|t| !t.is_empty()),
        data_dir: args.data_dir,
        consul_version: args.consul_version,
    };
    let agent = match DevAgent::start(config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    println!("consul-dev listening on {}", agent.url());
    shutdown_signal().await;
    agent.shutdown().await;
    ExitCode::SUCCESS
}
