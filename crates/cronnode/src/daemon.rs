//! A node: wiring of the parts, and the one shutdown path.
//!
//! [`run`] binds the API and serves it at once (`/health` must not wait for anything), then
//! connects to Redis (retrying with backoff while it is unreachable; until then `/ready` says
//! so and the node stays out of the election, since a node that cannot enqueue must not take
//! the lock), registers the service and joins the election (consul-lock's `Node`, which retries
//! Consul on its own), and starts the leader loop on the job store's watch. Then it waits for
//! `shutdown`. Shutdown: a broadcast stops the leader loop (no new enqueue) and the API; the
//! node resigns (release the lock, destroy the session) and deregisters, each step bounded so
//! the process exits within a few seconds.
//!
//! This module owns no policy: scheduling is in `crate::leader`, HTTP in `crate::api`.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use consul_lock::{Consul, JobStore, Node};
use redis_queue::{Queue, Routes};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use crate::activity::Activity;
use crate::api::{self, AppState};
use crate::config::{Config, LogFormat};
use crate::functions::{FunctionsClient, Resolver};
use crate::leader::{self, JobSource, LeaderLoop};
use crate::metrics::Metrics;

/// Start-up retries back off from this delay…
pub const STARTUP_BACKOFF_START: Duration = Duration::from_millis(200);
/// …doubling up to this ceiling.
pub const STARTUP_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Bound on each shutdown step (leader loop, resign and deregister, API drain).
pub const SHUTDOWN_STEP: Duration = Duration::from_secs(5);

/// Logs to stderr, pretty or JSON, levels from `RUST_LOG` (default `info`).
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}

/// Retries `attempt` with exponential backoff until it succeeds or `shutdown` resolves
/// (`None`). Each failure is logged with its cause.
async fn with_backoff<T, E, F, Fut>(
    what: &str,
    shutdown: &mut broadcast::Receiver<()>,
    mut attempt: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = STARTUP_BACKOFF_START;
    loop {
        match attempt().await {
            Ok(v) => return Some(v),
            Err(e) => {
                tracing::warn!("{what} failed: {e}; retrying in {backoff:?}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.recv() => return None,
        }
        backoff = (backoff * 2).min(STARTUP_BACKOFF_MAX);
    }
}

/// Runs a node until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", config.listen))?;
    run_on(config, listener, shutdown).await
}

/// [`run`] on a listener already bound (the dev mode binds first to report the address).
pub async fn run_on(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    tracing::info!(
        node = %config.node,
        api = %config.advertise(),
        consul = %config.consul_addr,
        redis = %config.redis_url,
        version = env!("CARGO_PKG_VERSION"),
        "starting"
    );
    let (stop_tx, _) = broadcast::channel::<()>(1);
    // A watcher that turns the shutdown future into the broadcast, also during start-up.
    let signal_tx = stop_tx.clone();
    let mut startup_stop = stop_tx.subscribe();
    let signal = tokio::spawn(async move {
        shutdown.await;
        let _ = signal_tx.send(());
    });

    let metrics = Metrics::new();
    // Every node keeps its recent activity, so one that becomes leader has it going already.
    let activity = Activity::new();
    tokio::spawn(activity.clone().run(metrics.clone(), stop_tx.subscribe()));

    let consul = Consul::new(config.consul_config())
        .context("Consul client (--consul, --consul-token, --consul-cacert)")?;

    let task_settings = Arc::new(config.task_settings());
    let store = JobStore::new(consul.clone(), &config.prefix);
    // One watch of the store per node, shared by the API (status counts) and the leader loop.
    let jobs = store.watch();

    // The route cache, on every node (a new leader finds it warm), fed by the same watch.
    // The leader sees a job set once its routes were read (`leader_jobs`).
    let (functions, routes, leader_jobs) = if config.resolve_routes {
        let client = FunctionsClient::new(&config.functions_url)
            .map_err(anyhow::Error::msg)
            .context("--functions-url")?;
        let (tx, rx) = watch::channel(Arc::new(Routes::default()));
        let (resolver, leader_jobs) =
            Resolver::new(client.clone(), config.functions_refresh, jobs.clone(), tx);
        tokio::spawn(resolver.run(stop_tx.subscribe()));
        (Some(client), Some(rx), leader_jobs)
    } else {
        (None, None, jobs.clone())
    };

    // The API first: /health answers while the node waits for Redis, /ready says why not.
    let queue_slot = Arc::new(OnceLock::new());
    let (leader, link) = leader::channel();
    let state = Arc::new(AppState {
        config: config.clone(),
        consul: consul.clone(),
        store: store.clone(),
        jobs: jobs.clone(),
        queue: queue_slot.clone(),
        task_settings: task_settings.clone(),
        functions,
        routes: routes.clone(),
        metrics: metrics.clone(),
        leader,
        activity: activity.clone(),
    });
    let api_task = tokio::spawn(api::serve(listener, state, stop_tx.subscribe()));

    // Redis before the election: a node that cannot enqueue must not take the lock.
    let queue_cfg = config.queue_config();
    let Some(queue) = with_backoff("connecting to Redis", &mut startup_stop, || {
        Queue::connect(queue_cfg.clone())
    })
    .await
    else {
        let _ = tokio::time::timeout(SHUTDOWN_STEP + api::SHUTDOWN_GRACE, api_task).await;
        return Ok(());
    };
    let _ = queue_slot.set(queue.clone());

    // Registration and election retry on their own while Consul is unreachable.
    // The lock settings passed consul-lock's checks when the configuration was validated.
    let node = Node::start(consul.clone(), config.lock_settings());
    let leader_loop = LeaderLoop::new(
        link,
        config.node.clone(),
        queue,
        task_settings,
        routes,
        metrics,
        node.leadership(),
        JobSource::new(&store, consul.clone(), leader_jobs),
        stop_tx.subscribe(),
    );
    let leader_task = tokio::spawn(leader_loop.run());
    tracing::info!(api = %config.advertise(), "ready: serving the API and following the election");

    // Wait for the signal, or for the node to refuse its Consul agent (too old).
    let refused = tokio::select! {
        _ = startup_stop.recv() => None,
        r = node.refused() => Some(r),
    };
    if refused.is_some() {
        let _ = stop_tx.send(());
    } else {
        let _ = signal.await;
    }

    // 1. Stop scheduling: the loop returns at its next await point (an in-flight batch is
    //    safe: a successor retries the same fire ids).
    if tokio::time::timeout(SHUTDOWN_STEP, leader_task)
        .await
        .is_err()
    {
        tracing::warn!("the leader loop did not stop within {SHUTDOWN_STEP:?}");
    }
    // 2. Resign (release the lock, then destroy the session, so a successor takes over at
    //    once) and deregister.
    if tokio::time::timeout(SHUTDOWN_STEP, node.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("resign/deregister did not finish within {SHUTDOWN_STEP:?}; the session TTL will free the lock");
    }
    // 3. Let in-flight API requests finish (the server bounds its own grace).
    let _ = tokio::time::timeout(SHUTDOWN_STEP + api::SHUTDOWN_GRACE, api_task).await;
    tracing::info!("stopped");
    match refused {
        Some(r) => Err(r.into()),
        None => Ok(()),
    }
}
