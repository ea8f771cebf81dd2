//! The route cache: what IronFunctions says of every (app, path) that a job names, refreshed in
//! the background and published as one [`Routes`] snapshot that the task encoder reads.
//!
//! A fire never waits on IronFunctions: the leader builds each task from the last snapshot.
//! The resolver reads the routes of every job in the node's watch of the store (paused ones
//! too, so a resume finds its route) with a full pass every `interval` (`--functions-refresh`),
//! and the routes of jobs it has not seen yet as soon as the watch shows them. Every node runs
//! one, so a node that becomes leader has its cache warm already.
//!
//! What an answer does: found → the route's task part; 404 → missing (the job's fires are not
//! enqueued until it comes back); no answer → the last known state is kept (a route read once
//! stays usable while IronFunctions is down; a route never read stays unresolved).
//!
//! Must not decide anything about fires; it only publishes what IronFunctions said.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use consul_lock::JobSet;
use redis_queue::{RouteState, Routes};
use tokio::sync::{broadcast, watch, Semaphore};
use tokio::task::JoinSet;

use super::client::{FunctionsClient, FunctionsError};

/// Apps read at the same time during a pass (each app's routes one after another): enough to
/// read 10,000 routes in a few seconds, few enough not to load IronFunctions.
pub const CONCURRENT_APPS: usize = 8;

/// One (app, path) a job names.
type Pair = (String, String);

/// The background reader of routes.
pub struct Resolver {
    client: FunctionsClient,
    /// Time between full passes.
    interval: Duration,
    /// The node's watch of the job store: which routes are wanted.
    jobs: watch::Receiver<JobSet>,
    /// Where each new snapshot goes.
    out: watch::Sender<Arc<Routes>>,
    /// What is known, by pair (the snapshot's source).
    known: BTreeMap<Pair, RouteState>,
}

impl Resolver {
    /// A resolver of the routes of `jobs`, publishing into `out`.
    pub fn new(
        client: FunctionsClient,
        interval: Duration,
        jobs: watch::Receiver<JobSet>,
        out: watch::Sender<Arc<Routes>>,
    ) -> Resolver {
        Resolver {
            client,
            interval,
            jobs,
            out,
            known: BTreeMap::new(),
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, mut shutdown: broadcast::Receiver<()>) {
        let mut next_full = tokio::time::Instant::now();
        loop {
            let wanted = wanted(&self.jobs.borrow_and_update());
            let full = tokio::time::Instant::now() >= next_full;
            let fetch: BTreeSet<Pair> = if full {
                next_full = tokio::time::Instant::now() + self.interval;
                wanted.clone()
            } else {
                wanted
                    .iter()
                    .filter(|p| !self.known.contains_key(*p))
                    .cloned()
                    .collect()
            };
            self.known.retain(|p, _| wanted.contains(p));
            if !fetch.is_empty() {
                let found = tokio::select! {
                    f = resolve(&self.client, fetch) => f,
                    _ = shutdown.recv() => return,
                };
                self.known.extend(found);
            }
            self.publish();
            tokio::select! {
                _ = shutdown.recv() => return,
                _ = tokio::time::sleep_until(next_full) => {}
                changed = self.jobs.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn publish(&self) {
        let mut routes = Routes::default();
        for ((app, path), state) in &self.known {
            routes.insert(app, path, state.clone());
        }
        self.out.send_if_modified(|current| {
            if **current == routes {
                return false;
            }
            *current = Arc::new(routes);
            true
        });
    }
}

/// Every (app, path) a job of the set names.
fn wanted(jobs: &JobSet) -> BTreeSet<Pair> {
    jobs.jobs()
        .map(|s| {
            let f = &s.job.spec.function;
            (f.app.clone(), f.path.clone())
        })
        .collect()
}

/// Reads `pairs` from IronFunctions, an app's config once per app. Pairs without an answer are
/// left out (their last known state stays).
async fn resolve(client: &FunctionsClient, pairs: BTreeSet<Pair>) -> Vec<(Pair, RouteState)> {
    let mut by_app: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (app, path) in pairs {
        by_app.entry(app).or_default().push(path);
    }
    let permits = Arc::new(Semaphore::new(CONCURRENT_APPS));
    let mut tasks = JoinSet::new();
    for (app, paths) in by_app {
        let (client, permits) = (client.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            resolve_app(&client, app, paths).await
        });
    }
    let mut out = Vec::new();
    let mut unreachable = None;
    while let Some(done) = tasks.join_next().await {
        if let Ok((found, err)) = done {
            out.extend(found);
            unreachable = unreachable.or(err);
        }
    }
    if let Some(e) = unreachable {
        tracing::warn!(error = %e, "could not read every route from IronFunctions; the last known ones are kept");
    }
    out
}

async fn resolve_app(
    client: &FunctionsClient,
    app: String,
    paths: Vec<String>,
) -> (Vec<(Pair, RouteState)>, Option<FunctionsError>) {
    let config = match client.app_config(&app).await {
        Ok(c) => c,
        Err(e @ FunctionsError::Missing { .. }) => {
            let why = e.to_string();
            let all = paths
                .into_iter()
                .map(|p| ((app.clone(), p), RouteState::Missing(why.clone())))
                .collect();
            return (all, None);
        }
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out = Vec::with_capacity(paths.len());
    let mut failed = None;
    for path in paths {
        match client.route(&app, &path, &config).await {
            Ok(r) => out.push(((app.clone(), path), RouteState::Found(Arc::new(r)))),
            Err(e @ FunctionsError::Missing { .. }) => {
                out.push(((app.clone(), path), RouteState::Missing(e.to_string())))
            }
            Err(e) => failed = Some(e),
        }
    }
    (out, failed)
}
