//! The leader loop: the only place that enqueues, and a thin one.
//!
//! Every rule of a leadership term (raise the fence, take over what was staged, catch up,
//! stage, release, withdraw or restage on a job change, retry, stop when deposed) lives in the
//! `leader-term` crate's state machine, [`leader_term::Leader`], unit-tested with explicit
//! instants. This loop only drives it: each step reads the clock once, feeds the machine what
//! happened (the election's view, the job set's changes, API commands, the answer of the last
//! Redis call), performs the action it asks for with redis-queue (`redis.rs`), and logs and
//! counts what it reports (`report.rs`). It then waits for an input or until the machine's
//! next wake-up; the machine holds the one backoff.
//!
//! The API never enqueues itself: manual runs, fence resets and job changes arrive here as
//! [`Command`]s (through [`LeaderHandle`]), so every enqueue carries a token this node really
//! holds. `handle.rs` is the API's side (status, commands). This module must not speak HTTP,
//! parse job JSON, or decide anything about fires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use consul_lock::{Consul, ConsulError, JobChange, JobSet, JobStore, Leadership, Query};
use cron_core::Fire;
use leader_term::{
    Action, CommandId, Config, JobEvent, JobUpdate, Leader, Outcome, Refused, Reply,
};
use redis_queue::{PreparedRelease, Queue, RouteState, Routes, TaskSettings};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::metrics::Metrics;

mod handle;
mod redis;
mod report;

pub use handle::{
    channel, Command, CommandError, LeaderHandle, LeaderLink, LeaderStatus, ManualRun,
    JOB_CHANGE_TIMEOUT,
};

/// Longest single wait: slots are wall-clock instants and tokio sleeps on the monotonic
/// clock, so after an NTP step the distance is taken again at least this often.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Where the loop learns the jobs: the store's coalesced watch, and the store's index now (a
/// `?consistent` read of the shard stamps, the keys the watch blocks on: a set from the watch
/// whose index is at least that holds every job write answered before the read).
pub struct JobSource {
    watch: watch::Receiver<JobSet>,
    consul: Consul,
    /// `<prefix>/job-shards/`, from the store's own key layout.
    stamps: String,
}

impl JobSource {
    /// The watch of `store`, read through `consul`.
    pub fn new(store: &JobStore, consul: Consul, watch: watch::Receiver<JobSet>) -> JobSource {
        // Any id's stamp key, cut after its folder.
        let key = store.stamp_key("x").unwrap_or_default();
        let stamps = key[..key.rfind('/').map_or(0, |i| i + 1)].to_string();
        JobSource {
            watch,
            consul,
            stamps,
        }
    }

    async fn index_now(&self) -> Result<u64, ConsulError> {
        let (_, index) = self
            .consul
            .kv_list(&self.stamps, Query::consistent())
            .await?;
        Ok(index)
    }
}

/// The loop's inputs and outputs.
pub struct LeaderLoop {
    /// This node's name (logs only; the task encoder has its own copy).
    node: String,
    queue: Queue,
    /// How fires become tasks; its routes are the last snapshot of `routes`.
    tasks: Arc<TaskSettings>,
    /// The route cache's snapshots (`crate::functions`), when tasks are built from routes.
    routes: Option<watch::Receiver<Arc<Routes>>>,
    metrics: Metrics,
    /// The election's view: Follower or Leader{token}.
    leadership: watch::Receiver<Leadership>,
    /// The job store's coalesced watch.
    jobs: watch::Receiver<JobSet>,
    /// The store's index now.
    source: JobSource,
    commands: mpsc::Receiver<Command>,
    status: watch::Sender<LeaderStatus>,
    shutdown: broadcast::Receiver<()>,
}

/// Where a command's answer goes.
enum Waiting {
    ManualRun(oneshot::Sender<Result<ManualRun, CommandError>>),
    FenceReset(oneshot::Sender<Result<u64, CommandError>>),
    JobChanged(oneshot::Sender<Result<leader_term::ChangeApplied, CommandError>>),
    Backfill(oneshot::Sender<Result<leader_term::BackfillDone, CommandError>>),
}

/// The driver's own state between steps.
struct Driver {
    machine: Leader,
    /// The job set last fed to the machine (the next is fed as its changes since this one).
    applied: JobSet,
    /// The term whose job set was fed in full.
    fed: Option<u64>,
    waiting: HashMap<CommandId, Waiting>,
    next_id: u64,
    /// The answer of the call made in the last step.
    outcome: Option<Outcome>,
    /// A release prepared ahead of its slot (redis-queue's, see `redis.rs`).
    prepared: Option<PreparedRelease>,
    /// Jobs whose fires were not made because their route is missing; caught up by their
    /// policy when the route cache finds it again.
    held: redis::Held,
    /// Fires not made for that reason, not yet counted (the machine reports them as invalid).
    not_fired: u64,
}

impl LeaderLoop {
    /// The loop, joined to the far end of the handle made by [`channel`].
    #[allow(clippy::too_many_arguments)] // one of each input and output; a struct would only rename them
    pub fn new(
        link: LeaderLink,
        node: String,
        queue: Queue,
        tasks: Arc<TaskSettings>,
        routes: Option<watch::Receiver<Arc<Routes>>>,
        metrics: Metrics,
        leadership: watch::Receiver<Leadership>,
        jobs: JobSource,
        shutdown: broadcast::Receiver<()>,
    ) -> LeaderLoop {
        LeaderLoop {
            node,
            queue,
            tasks,
            routes,
            metrics,
            leadership,
            jobs: jobs.watch.clone(),
            source: jobs,
            commands: link.commands,
            status: link.status,
            shutdown,
        }
    }

    /// Drives the machine until shutdown.
    pub async fn run(mut self) {
        let mut d = Driver {
            machine: Leader::new(Config::default()),
            applied: JobSet::default(),
            fed: None,
            waiting: HashMap::new(),
            next_id: 0,
            outcome: None,
            prepared: None,
            held: redis::Held::new(),
            not_fired: 0,
        };
        let mut commands = Vec::new();
        // Everything is fed on the first step.
        self.leadership.mark_changed();
        self.jobs.mark_changed();
        if let Some(r) = &mut self.routes {
            r.mark_changed();
        }
        loop {
            // One step: the clock once, what happened, then what the machine asks.
            let now = Utc::now();
            self.feed(&mut d, now, commands.drain(..));
            let mut call = None;
            while let Some(action) = d.machine.poll_action(now) {
                match action {
                    Action::Reply { id, reply } => answer(&mut d.waiting, id, reply),
                    action => {
                        call = Some(action);
                        break;
                    }
                }
            }
            report::events(&mut d.machine, &self.node, &self.metrics, &mut d.not_fired);
            self.status
                .send_if_modified(|s| replace(s, d.machine.status()));
            if let Some(action) = call {
                let mut notes = redis::SendNotes::default();
                let perform = async {
                    match action {
                        Action::ReadJobIndex => Outcome::JobIndex(
                            self.source
                                .index_now()
                                .await
                                .map_err(|e| Refused::Failed(e.to_string())),
                        ),
                        action => {
                            redis::perform(
                                &self.queue,
                                &self.tasks,
                                &self.metrics,
                                &mut d.prepared,
                                &mut notes,
                                action,
                            )
                            .await
                        }
                    }
                };
                tokio::select! {
                    biased;
                    _ = self.shutdown.recv() => return self.stop(&mut d),
                    outcome = perform => d.outcome = Some(outcome),
                }
                d.held.extend(notes.held);
                d.not_fired += notes.not_fired;
                continue;
            }
            // Nothing to do before an input or the machine's next wake-up.
            let sleep = sleep_until_utc(d.machine.poll_timeout(), now);
            tokio::select! {
                biased;
                _ = self.shutdown.recv() => return self.stop(&mut d),
                // `changed()` marks the value seen; marked again, the next step reads it.
                r = self.leadership.changed() => match r {
                    Ok(()) => self.leadership.mark_changed(),
                    Err(_) => return self.stop(&mut d),
                },
                r = self.jobs.changed() => match r {
                    Ok(()) => self.jobs.mark_changed(),
                    Err(_) => return self.stop(&mut d),
                },
                Some(cmd) = self.commands.recv() => commands.push(cmd),
                Some(()) = routes_changed(&mut self.routes) => {
                    if let Some(r) = &mut self.routes {
                        r.mark_changed();
                    }
                }
                () = sleep => {}
            }
        }
    }

    /// Builds tasks from the route cache's latest snapshot (one copy of the settings per
    /// snapshot, none per fire, and never a wait), and has the machine catch up the held jobs
    /// whose route is back.
    fn take_routes(&mut self, d: &mut Driver, now: DateTime<Utc>) {
        let Some(rx) = &mut self.routes else {
            return;
        };
        if !rx.has_changed().unwrap_or(false) {
            return;
        }
        let routes = rx.borrow_and_update().clone();
        d.held.retain(|job, (app, path)| {
            let back = matches!(routes.get(app, path), Some(RouteState::Found(_)));
            if back {
                tracing::info!(%job, %app, %path, "the job's route is back: catching it up by its policy");
                d.machine.handle_catch_up(now, job);
            }
            !back
        });
        self.tasks = Arc::new(TaskSettings {
            routes: Some(routes),
            ..(*self.tasks).clone()
        });
    }

    /// Feeds the machine what happened since the last step, in order: the answer of the last
    /// call, the election, the job set (in full at a term's start), the commands.
    fn feed(
        &mut self,
        d: &mut Driver,
        now: DateTime<Utc>,
        commands: impl Iterator<Item = Command>,
    ) {
        if let Some(outcome) = d.outcome.take() {
            d.machine.handle_outcome(now, outcome);
        }
        if self.leadership.has_changed().unwrap_or(false) {
            let l = match &*self.leadership.borrow_and_update() {
                Leadership::Leader { token, since } => leader_term::Leadership::Leader {
                    token: *token,
                    since: *since,
                },
                Leadership::Follower => leader_term::Leadership::Follower,
            };
            d.machine.handle_leadership(now, l);
        }
        let term = match d.machine.status() {
            LeaderStatus::Leading { token, .. } | LeaderStatus::FenceBlocked { token, .. } => {
                Some(token)
            }
            LeaderStatus::Follower => None,
        };
        if term != d.fed {
            // A new term holds no job yet: its first update is the whole set (and it catches
            // every job up from its cursor: nothing is held).
            d.applied = JobSet::default();
            d.fed = term;
            d.held.clear();
            self.jobs.mark_changed();
        }
        if self.jobs.has_changed().unwrap_or(false) {
            let set = self.jobs.borrow_and_update().clone();
            self.metrics.jobs(set.len(), set.invalid_count());
            if term.is_some() {
                let events = set
                    .changes_since(&d.applied)
                    .map(|c| event(c, set.index()))
                    .collect();
                d.machine.handle_jobs(
                    now,
                    JobUpdate {
                        index: set.index(),
                        events,
                    },
                );
                d.applied = set;
            }
        }
        self.take_routes(d, now);
        while let Ok(cmd) = self.commands.try_recv() {
            self.command(d, now, cmd);
        }
        for cmd in commands {
            self.command(d, now, cmd);
        }
    }

    fn command(&self, d: &mut Driver, now: DateTime<Utc>, cmd: Command) {
        d.next_id += 1;
        let id = CommandId(d.next_id);
        let (command, waiting) = match cmd {
            Command::ManualRun { job, reply } => {
                let fire = Fire::manual(Arc::from(job.spec.id.as_str()), now);
                (
                    leader_term::Command::ManualRun { job, fire },
                    Waiting::ManualRun(reply),
                )
            }
            Command::ResetFence { reply } => {
                (leader_term::Command::ResetFence, Waiting::FenceReset(reply))
            }
            Command::JobChanged { change, reply } => (
                leader_term::Command::JobChanged(change),
                Waiting::JobChanged(reply),
            ),
            Command::Backfill { job, slots, reply } => (
                leader_term::Command::Backfill { job, slots },
                Waiting::Backfill(reply),
            ),
        };
        d.waiting.insert(id, waiting);
        d.machine.handle_command(now, id, command);
    }

    /// Shutdown: the loop returns at once (a call in flight is dropped; its fire ids make a
    /// successor's retry harmless) and the API's waiting commands are told.
    fn stop(&mut self, d: &mut Driver) {
        for (_, w) in d.waiting.drain() {
            let e = CommandError::Unavailable("shutting down");
            match w {
                Waiting::ManualRun(r) => drop(r.send(Err(e))),
                Waiting::FenceReset(r) => drop(r.send(Err(e))),
                Waiting::JobChanged(r) => drop(r.send(Err(e))),
                Waiting::Backfill(r) => drop(r.send(Err(e))),
            }
        }
        if !matches!(*self.status.borrow(), LeaderStatus::Follower) {
            self.metrics.leadership(false);
            tracing::info!(node = %self.node, "stopped scheduling: shutting down");
        }
        self.status.send_replace(LeaderStatus::Follower);
    }
}

/// A job set change as the machine takes it. A removal carries the set's index: the job was
/// deleted at or before it.
fn event(change: JobChange<'_>, index: u64) -> JobEvent {
    match change {
        JobChange::Added(new) | JobChange::Changed { new, .. } => JobEvent::Upsert {
            job: new.job.clone(),
            version: new.version,
        },
        JobChange::Removed(old) => JobEvent::Remove {
            id: Arc::from(old.id()),
            version: index,
        },
    }
}

/// Sends a reply to whoever waits for it (an API request that gave up is just gone).
fn answer(waiting: &mut HashMap<CommandId, Waiting>, id: CommandId, reply: Reply) {
    let Some(w) = waiting.remove(&id) else {
        return;
    };
    let _ = match (w, reply) {
        (Waiting::ManualRun(r), Reply::ManualRun(a)) => r
            .send(
                a.map(|m| ManualRun {
                    fire: m.fire,
                    token: m.token,
                    enqueued: m.enqueued,
                })
                .map_err(CommandError::from),
            )
            .map_err(drop),
        (Waiting::FenceReset(r), Reply::FenceReset(a)) => {
            r.send(a.map_err(CommandError::from)).map_err(drop)
        }
        (Waiting::JobChanged(r), Reply::JobChanged(a)) => {
            r.send(a.map_err(CommandError::from)).map_err(drop)
        }
        (Waiting::Backfill(r), Reply::Backfill(a)) => {
            r.send(a.map_err(CommandError::from)).map_err(drop)
        }
        _ => {
            tracing::error!(
                ?id,
                "the leader answered a command with a reply of another kind"
            );
            Ok(())
        }
    };
}

fn replace(s: &mut LeaderStatus, new: LeaderStatus) -> bool {
    if *s == new {
        return false;
    }
    *s = new;
    true
}

/// Resolves when the route cache publishes a new snapshot (`None`: closed; never without a
/// cache).
async fn routes_changed(routes: &mut Option<watch::Receiver<Arc<Routes>>>) -> Option<()> {
    match routes {
        Some(r) => r.changed().await.ok(),
        None => std::future::pending().await,
    }
}

/// Sleeps until the wall-clock instant `at` (read against the step's `now`), or
/// [`MAX_SLEEP`] (the machine is then asked again, which is harmless).
async fn sleep_until_utc(at: Option<DateTime<Utc>>, now: DateTime<Utc>) {
    let d = match at {
        None => MAX_SLEEP,
        Some(at) => (at - now).to_std().unwrap_or(Duration::ZERO),
    };
    tokio::time::sleep(d.min(MAX_SLEEP)).await
}
