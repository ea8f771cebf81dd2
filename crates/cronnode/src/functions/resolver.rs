//! The route cache: what IronFunctions says of every (app, path) that a job names, refreshed in
//! the background and published as one [`Routes`] snapshot that the task encoder reads.
//!
//! A fire never waits on IronFunctions: the leader builds each task from the last snapshot.
//! The resolver reads the routes of every job in the node's watch of the store (paused ones
//! too, so a resume finds its route) with a full pass every `interval` (`--functions-refresh`),
//! and the routes of jobs it has not seen yet as soon as the watch shows them; the leader sees
//! a job set only once its new routes were read (or [`PUBLISH_WAIT`] passed). Every node runs
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
use tokio::sync::{broadcast, mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::client::{FunctionsClient, FunctionsError};

/// Requests to IronFunctions at the same time during a read: enough to read 10,000 routes in
/// about a second, few enough not to load it.
pub const CONCURRENT_REQUESTS: usize = 8;
/// How long a job set with routes never read waits for them before it is passed on to the
/// leader anyway (its fires are then not made, and caught up by policy, until they are read).
pub const PUBLISH_WAIT: Duration = Duration::from_secs(2);

/// One (app, path) a job names.
type Pair = (String, String);

/// What a read learnt of each pair it was asked: `None` when IronFunctions gave no answer
/// (the pair's last known state stays).
type Learnt = Vec<(Pair, Option<RouteState>)>;

/// The background reader of routes.
pub struct Resolver {
    client: FunctionsClient,
    /// Time between full passes.
    interval: Duration,
    /// The node's watch of the job store: which routes are wanted.
    jobs: watch::Receiver<JobSet>,
    /// Where each new snapshot goes.
    out: watch::Sender<Arc<Routes>>,
    /// The job sets of `jobs`, passed on once their routes were read (or waited for
    /// [`PUBLISH_WAIT`]): the leader plans a job only after its route was looked up, so a new
    /// job's first slot does not find its route "not resolved yet".
    jobs_out: watch::Sender<JobSet>,
    /// The pairs the last job set names.
    wanted: BTreeSet<Pair>,
    /// What is known, by pair (the snapshot's source).
    known: BTreeMap<Pair, RouteState>,
    /// Pairs being read.
    pending: BTreeSet<Pair>,
}

impl Resolver {
    /// A resolver of the routes of `jobs`, publishing into `out`; the second value is `jobs`
    /// as passed on (see `jobs_out`): the leader's watch.
    pub fn new(
        client: FunctionsClient,
        interval: Duration,
        jobs: watch::Receiver<JobSet>,
        out: watch::Sender<Arc<Routes>>,
    ) -> (Resolver, watch::Receiver<JobSet>) {
        let (jobs_out, leader_jobs) = watch::channel(JobSet::default());
        let r = Resolver {
            client,
            interval,
            jobs,
            out,
            jobs_out,
            wanted: BTreeSet::new(),
            known: BTreeMap::new(),
            pending: BTreeSet::new(),
        };
        (r, leader_jobs)
    }

    /// Runs until `shutdown`. Reads run in their own tasks and report here, so a slow
    /// IronFunctions delays neither the job sets (beyond [`PUBLISH_WAIT`]) nor shutdown.
    pub async fn run(mut self, mut shutdown: broadcast::Receiver<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Learnt>();
        let mut next_full = tokio::time::Instant::now() + self.interval;
        self.jobs.mark_changed();
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                Some(found) = rx.recv() => self.learn(found),
                _ = tokio::time::sleep_until(next_full) => {
                    next_full = tokio::time::Instant::now() + self.interval;
                    let all = self.wanted.clone();
                    self.read(all, &tx);
                }
                changed = self.jobs.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let set = self.jobs.borrow_and_update().clone();
                    self.wanted = wanted(&set);
                    let wanted = &self.wanted;
                    self.known.retain(|p, _| wanted.contains(p));
                    let new: BTreeSet<Pair> = self
                        .wanted
                        .iter()
                        .filter(|p| !self.known.contains_key(*p) && !self.pending.contains(*p))
                        .cloned()
                        .collect();
                    self.read(new, &tx);
                    // Until every wanted route is known, or PUBLISH_WAIT.
                    let deadline = tokio::time::Instant::now() + PUBLISH_WAIT;
                    while self.wanted.iter().any(|p| self.pending.contains(p)) {
                        tokio::select! {
                            _ = shutdown.recv() => return,
                            Some(found) = rx.recv() => self.learn(found),
                            _ = tokio::time::sleep_until(deadline) => break,
                        }
                    }
                    self.publish();
                    self.jobs_out.send_replace(set);
                }
            }
        }
    }

    /// Starts reading `pairs` in a task that reports on `tx`.
    fn read(&mut self, pairs: BTreeSet<Pair>, tx: &mpsc::UnboundedSender<Learnt>) {
        if pairs.is_empty() {
            return;
        }
        self.pending.extend(pairs.iter().cloned());
        let (client, tx) = (self.client.clone(), tx.clone());
        tokio::spawn(async move {
            let mut found: BTreeMap<Pair, RouteState> =
                resolve(&client, pairs.clone()).await.into_iter().collect();
            // Every pair asked comes back, answered or not: none stays pending.
            let learnt = pairs
                .into_iter()
                .map(|p| {
                    let state = found.remove(&p);
                    (p, state)
                })
                .collect();
            let _ = tx.send(learnt);
        });
    }

    /// Takes a read's answers; a pair without one keeps its last known state.
    fn learn(&mut self, learnt: Learnt) {
        for (pair, state) in learnt {
            self.pending.remove(&pair);
            if let Some(state) = state.filter(|_| self.wanted.contains(&pair)) {
                self.known.insert(pair, state);
            }
        }
        self.publish();
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

/// Reads `pairs` from IronFunctions: each app's config once, then every route, at most
/// [`CONCURRENT_REQUESTS`] requests at a time. Pairs without an answer are left out (their last
/// known state stays), and so are the routes of an app whose config could not be read.
async fn resolve(client: &FunctionsClient, pairs: BTreeSet<Pair>) -> Vec<(Pair, RouteState)> {
    let permits = Arc::new(Semaphore::new(CONCURRENT_REQUESTS));
    let apps: BTreeSet<String> = pairs.iter().map(|(a, _)| a.clone()).collect();
    let mut tasks = JoinSet::new();
    for app in apps {
        let (client, permits) = (client.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let config = client.app_config(&app).await;
            (app, config)
        });
    }
    let mut configs = BTreeMap::new();
    let mut out = Vec::new();
    let mut unreachable = None;
    while let Some(done) = tasks.join_next().await {
        let Ok((app, config)) = done else { continue };
        match config {
            Ok(c) => {
                configs.insert(app, Arc::new(c));
            }
            // No app: none of its routes exists.
            Err(e @ FunctionsError::Missing { .. }) => {
                let why = e.to_string();
                out.extend(
                    pairs
                        .iter()
                        .filter(|(a, _)| *a == app)
                        .map(|p| (p.clone(), RouteState::Missing(why.clone()))),
                );
            }
            Err(e) => unreachable = Some(e),
        }
    }
    let mut tasks = JoinSet::new();
    for (app, path) in pairs {
        let Some(config) = configs.get(&app).cloned() else {
            continue;
        };
        let (client, permits) = (client.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let route = client.route(&app, &path, &config).await;
            ((app, path), route)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let Ok((pair, route)) = done else { continue };
        match route {
            Ok(r) => out.push((pair, RouteState::Found(Arc::new(r)))),
            Err(e @ FunctionsError::Missing { .. }) => {
                out.push((pair, RouteState::Missing(e.to_string())))
            }
            Err(e) => unreachable = Some(e),
        }
    }
    if let Some(e) = unreachable {
        tracing::warn!(error = %e, "could not read every route from IronFunctions; the last known ones are kept");
    }
    out
}
