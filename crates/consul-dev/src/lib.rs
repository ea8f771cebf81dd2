//! # consul-dev: a Consul-compatible dev agent
//!
//! Speaks the parts of Consul's HTTP API that cronnode uses (KV, sessions, agent services and
//! TTL checks, catalog, health, txn, status), over real HTTP and as today's Consul does, so that
//! tests and `cronnode dev` exercise a Consul client exactly as a real agent would. One node,
//! one process, no raft: a single state behind a mutex with a global index that only grows.
//!
//! Not for production, not a Consul replacement: no DNS, no gossip, no multi-node, no ACL
//! policies (one token or none), no Connect. Anything else answers 404/405.
//!
//! ## Layout
//! - [`DevAgent::start`] (this file): binds, loads the snapshot, spawns the server and the timer
//!   task. Start reading here.
//! - `state/`: the rules of every write (`kv.rs`, `session.rs`, `catalog.rs`, `txn.rs`).
//! - `http/`: the server, ACLs, blocking queries, one file per endpoint family, `/_dev/` faults.
//! - `timers.rs`: the one task behind every TTL.
//! - `persist.rs`: the `--data-dir` snapshot.
//! - `version.rs`: which Consul release it behaves as (today's, or an older one cronnode
//!   supports).
#![deny(missing_docs)]

mod duration;
mod http;
mod persist;
mod state;
mod timers;
mod version;

pub use version::CURRENT_VERSION;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How to start an agent.
#[derive(Debug, Clone)]
pub struct DevConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Node name.
    pub node: String,
    /// Datacenter name.
    pub datacenter: String,
    /// With a token, ACLs are on and every request must present it.
    pub acl_token: Option<String>,
    /// With a directory, state survives restarts (and the index never goes backwards).
    pub data_dir: Option<PathBuf>,
    /// The Consul release to behave as (`major.minor.patch`, default [`CURRENT_VERSION`]);
    /// below 1.7 the differences cronnode must handle are emulated (see `version.rs`).
    pub consul_version: String,
}

impl Default for DevConfig {
    fn default() -> Self {
        DevConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            node: "consul-dev".to_string(),
            datacenter: "dc1".to_string(),
            acl_token: None,
            data_dir: None,
            consul_version: CURRENT_VERSION.to_string(),
        }
    }
}

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// Reading or writing a file of the data dir failed.
    #[error("data dir file {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    /// The snapshot in the data dir is unreadable.
    #[error("snapshot {0} is unreadable: {1}")]
    Snapshot(PathBuf, String),
    /// The version to behave as is not `major.minor.patch`.
    #[error("consul version {0:?} is not major.minor.patch (e.g. {CURRENT_VERSION} or 1.0.8)")]
    Version(String),
    /// The snapshot belongs to another node or datacenter.
    #[error("snapshot is for node {found:?}, not {wanted:?}")]
    WrongNode {
        /// Node of the snapshot.
        found: String,
        /// Node asked for.
        wanted: String,
    },
}

/// A running agent. Stops on [`DevAgent::shutdown`] or when dropped.
pub struct DevAgent {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl DevAgent {
    /// Starts an agent on the current tokio runtime.
    pub async fn start(config: DevConfig) -> Result<DevAgent, DevError> {
        let api = version::ApiVersion::of(&config.consul_version)
            .ok_or_else(|| DevError::Version(config.consul_version.clone()))?;
        let store = match &config.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| DevError::Io(dir.clone(), e))?;
                match persist::load(dir)? {
                    Some(mut s) => {
                        if s.node.name != config.node || s.node.datacenter != config.datacenter {
                            return Err(DevError::WrongNode {
                                found: format!("{}/{}", s.node.name, s.node.datacenter),
                                wanted: format!("{}/{}", config.node, config.datacenter),
                            });
                        }
                        s.restart_timers(Instant::now());
                        s
                    }
                    None => state::Store::new(&config.node, &config.datacenter),
                }
            }
            None => state::Store::new(&config.node, &config.datacenter),
        };
        if let Some(dir) = &config.data_dir {
            persist::save(dir, &store)?;
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| DevError::Bind(config.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| DevError::Bind(config.listen, e))?;
        let shared = Arc::new(http::Shared::new(
            store,
            config.acl_token,
            config.data_dir,
            api,
        ));
        let (shutdown, rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(http::serve(listener, shared.clone(), rx.clone())),
            tokio::spawn(timers::run(shared, rx)),
        ];
        tracing::info!(%addr, node = %config.node, version = %config.consul_version, "consul-dev agent listening");
        Ok(DevAgent {
            addr,
            shutdown,
            tasks,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for `CONSUL_HTTP_ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, closes every connection, stops the timers.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// Resolves when the agent has stopped (it only stops through `shutdown` or drop).
    pub async fn wait(&mut self) {
        for t in self.tasks.iter_mut() {
            let _ = t.await;
        }
    }
}

impl Drop for DevAgent {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}
