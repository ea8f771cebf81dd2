//! What every handler is given: the node's configuration and its handles on Consul, the job
//! store, Redis, the metrics, the recent activity and the leader loop.
//!
//! Built once by `crate::daemon`; handlers only read it.

use std::sync::{Arc, OnceLock};

use super::errors::ApiError;
use crate::activity::Activity;
use crate::config::Config;
use crate::leader::LeaderHandle;
use crate::metrics::Metrics;

/// What the handlers share.
pub struct AppState {
    /// The node's configuration.
    pub config: Arc<Config>,
    /// Consul client.
    pub consul: consul_lock::Consul,
    /// The job store in Consul KV.
    pub store: consul_lock::JobStore,
    /// The node's watch of the job store (shared with the leader loop): `/v1/status` counts
    /// from it instead of reading every job from Consul.
    pub jobs: tokio::sync::watch::Receiver<consul_lock::JobSet>,
    /// The Redis queue, once connected (the API serves before that: `/health` must not wait
    /// for Redis, and `/ready` says what is missing).
    pub queue: Arc<OnceLock<redis_queue::Queue>>,
    /// How fires become tasks (default image, functions URL, node).
    pub task_settings: Arc<redis_queue::TaskSettings>,
    /// IronFunctions' API, asked when a job is created or replaced (`None`: routes are not
    /// resolved, `--resolve-routes false`).
    pub functions: Option<crate::functions::FunctionsClient>,
    /// The node's route cache (`None` without route resolution): shown per job and in
    /// `/v1/status` (jobs whose route is missing do not fire).
    pub routes: Option<tokio::sync::watch::Receiver<Arc<redis_queue::Routes>>>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// This node's leader loop: its state, and where to send manual runs and fence resets.
    pub leader: LeaderHandle,
    /// This node's recent fires per second and lateness (`/v1/leader/activity` on the leader).
    pub activity: Activity,
}

impl AppState {
    /// The Redis queue, or 503 while the node still waits for Redis at start-up.
    pub fn queue(&self) -> Result<&redis_queue::Queue, ApiError> {
        self.queue
            .get()
            .ok_or_else(|| ApiError::unavailable("redis: not connected yet (the node is starting)"))
    }

    /// The API token of this node, to send to another node (forwarding).
    pub fn api_token(&self) -> Option<String> {
        self.config
            .api_token
            .as_ref()
            .map(|t| t.expose().to_string())
    }
}
