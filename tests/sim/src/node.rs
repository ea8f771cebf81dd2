//! A cronnode node: its election (`election.rs`), its job watch, and i13a's leader-term state
//! machine behind a driver that performs the machine's actions against the Redis model, over
//! the simulated network, with the node's own wall clock.
//!
//! The driver does what cronnode's `leader/` driver does: it tells the machine every change of
//! the election, hands it the whole job set right after `Leader{..}` and then the watch's
//! changes, passes API commands in, performs each Redis action as one call and feeds the
//! answer back (a lost or failed call as `Refused::Redis`), and wakes the machine at its
//! `poll_timeout`. It never decides anything itself. Must not read the true clock for the
//! machine: a node sees its own clock (`offset`), which a fault may step.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta};
use cron_core::Job;
use leader_term::{
    Action, AmendOutcome, Command, CommandId, Config as TermConfig, Event, FireOutcome, JobEvent,
    JobUpdate, Leader, Leadership, Outcome, Refused, ReleasedSlot, StagedFire, StagedRead,
};
use redis_queue::{
    AmendOutcome as RqAmend, Amended, BatchOutcome, RecordOutcome, ReleaseOutcome, StageFire,
    TaskSettings,
};

use crate::election::{Election, Out, Purpose, Rep, Settings};
use crate::world::{epoch, instant, Ev, Micros, World, MS};
use crate::Config;

/// One node.
pub struct Node {
    /// Its index (its name is `n<index>`).
    pub id: usize,
    /// The process runs (false: crashed or stopped).
    pub up: bool,
    /// SIGSTOPped: its events wait in `deferred`.
    pub paused: bool,
    /// Bumped at every start: events of an earlier life are dropped.
    pub inc: u64,
    /// Its wall clock's offset from the true one.
    pub offset: TimeDelta,
    /// It cannot reach Consul (a partition).
    pub consul_cut: bool,
    /// Its election.
    pub election: Election,
    /// i13a's machine.
    pub leader: Leader,
    /// The token the machine was told, while leading.
    pub leading: Option<u64>,
    /// The job set as its watch last read it, and the index it was read at.
    pub jobs: BTreeMap<String, (Arc<Job>, u64)>,
    /// See `jobs`.
    pub seen: u64,
    /// A watch delivery is queued.
    pub watch_pending: bool,
    /// The instant of its earliest queued wake-up.
    pub wake_at: Micros,
    /// Events that arrived while it was paused.
    pub deferred: Vec<Ev>,
    /// Its task settings (its name).
    pub settings: Arc<TaskSettings>,
    election_settings: Settings,
}

impl Node {
    /// A node that has not started.
    pub fn new(id: usize, cfg: &Config) -> Node {
        let s = Settings {
            ttl: cfg.ttl,
            lock_delay: cfg.lock_delay,
        };
        Node {
            id,
            up: false,
            paused: false,
            inc: 0,
            offset: TimeDelta::zero(),
            consul_cut: false,
            election: Election::new(s, 0),
            leader: Leader::new(TermConfig::default()),
            leading: None,
            jobs: BTreeMap::new(),
            seen: 0,
            watch_pending: false,
            wake_at: Micros::MAX,
            deferred: Vec::new(),
            settings: Arc::new(TaskSettings {
                functions_url: "http://functions.sim:8080".into(),
                default_image: None,
                node: format!("n{id}"),
                routes: None,
            }),
            election_settings: s,
        }
    }
}

/// Node `n`'s wall clock now.
pub fn wall(w: &World, n: usize) -> DateTime<chrono::Utc> {
    instant(w.now) + w.nodes[n].offset
}

/// Starts node `n` (a first start or a restart): a fresh process.
pub fn start(w: &mut World, n: usize) {
    let now = w.now;
    let node = &mut w.nodes[n];
    node.up = true;
    node.paused = false;
    node.inc += 1;
    node.election = Election::new(node.election_settings, now);
    node.leader = Leader::new(TermConfig::default());
    node.leading = None;
    node.jobs.clear();
    node.seen = 0;
    node.deferred.clear();
    node.wake_at = Micros::MAX;
    node.watch_pending = true;
    let inc = node.inc;
    w.at(now, Ev::Watch { node: n, inc });
    wake_at(w, n, now);
}

/// Wakes node `n` at `t` (or earlier, if it is to be woken earlier already).
pub fn wake_at(w: &mut World, n: usize, t: Micros) {
    let node = &mut w.nodes[n];
    if t < node.wake_at || node.wake_at < w.now {
        node.wake_at = t;
        let inc = node.inc;
        w.at(
            t,
            Ev::Wake {
                node: n,
                inc,
                at: t,
            },
        );
    }
}

/// Kills node `n` (its process state is gone; its Consul session lives on until it expires).
pub fn kill(w: &mut World, n: usize) {
    let node = &mut w.nodes[n];
    node.up = false;
    node.paused = false;
    node.inc += 1;
    node.deferred.clear();
    node.leading = None;
}

/// A graceful stop: the machine stops (told it follows), the lock is released, the session
/// destroyed, then the process ends.
pub fn stop(w: &mut World, n: usize) {
    let now = wall(w, n);
    w.nodes[n]
        .leader
        .handle_leadership(now, Leadership::Follower);
    let outs = w.nodes[n].election.resign();
    election_outs(w, n, outs);
    kill(w, n);
}

/// The node's timers.
pub fn wake(w: &mut World, n: usize) {
    w.nodes[n].wake_at = Micros::MAX;
    let outs = w.nodes[n].election.wake(w.now);
    election_outs(w, n, outs);
    drive(w, n);
}

/// A Consul answer for node `n`.
pub fn consul_answer(
    w: &mut World,
    n: usize,
    purpose: Purpose,
    epoch: u64,
    rep: Rep,
    sent: Micros,
) {
    let now = w.now;
    let outs = w.nodes[n].election.answer(purpose, epoch, rep, sent, now);
    election_outs(w, n, outs);
    drive(w, n);
}

/// A Redis answer for node `n`'s machine.
pub fn redis_answer(w: &mut World, n: usize, outcome: Outcome) {
    let now = wall(w, n);
    w.nodes[n].leader.handle_outcome(now, outcome);
    drive(w, n);
}

/// An API command reaches node `n`'s machine.
pub fn command(w: &mut World, n: usize, api: u64, cmd: Command) {
    let now = wall(w, n);
    w.nodes[n].leader.handle_command(now, CommandId(api), cmd);
    drive(w, n);
}

/// Node `n`'s job watch reads what changed since its last read.
pub fn watch(w: &mut World, n: usize) {
    w.nodes[n].watch_pending = false;
    if !w.reaches_consul(n) {
        w.nodes[n].watch_pending = true;
        let inc = w.nodes[n].inc;
        w.at(w.now + crate::world::SEC, Ev::Watch { node: n, inc });
        return;
    }
    let index = w.job_index;
    let node = &w.nodes[n];
    let mut events = Vec::new();
    for (id, (job, version)) in &w.jobs {
        if node.jobs.get(id).is_none_or(|(_, v)| v != version) {
            events.push(JobEvent::Upsert {
                job: job.clone(),
                version: *version,
            });
        }
    }
    for id in node.jobs.keys() {
        if !w.jobs.contains_key(id) {
            events.push(JobEvent::Remove {
                id: Arc::from(id.as_str()),
                version: index,
            });
        }
    }
    let jobs = w.jobs.clone();
    let now = wall(w, n);
    let node = &mut w.nodes[n];
    node.jobs = jobs;
    node.seen = index;
    if node.leading.is_some() && !events.is_empty() {
        node.leader.handle_jobs(now, JobUpdate { index, events });
        drive(w, n);
    }
}

/// Every node's watch reads the store soon (a job was written).
pub fn store_moved(w: &mut World) {
    for n in 0..w.nodes.len() {
        if !w.nodes[n].up || w.nodes[n].watch_pending {
            continue;
        }
        w.nodes[n].watch_pending = true;
        // The watch reads the stamps at most once a second, then the moved shard.
        let delay = w.rng.range(20 * MS, 1_000 * MS);
        let inc = w.nodes[n].inc;
        w.at(w.now + delay, Ev::Watch { node: n, inc });
    }
}

fn election_outs(w: &mut World, n: usize, outs: Vec<Out>) {
    for out in outs {
        match out {
            Out::Call(purpose, epoch, req) => w.send_consul(n, purpose, epoch, req),
            Out::Lead(Some(token)) => {
                let now = wall(w, n);
                w.stats.terms += 1;
                if w.trace.is_some() {
                    w.say(format_args!("n{n} LEADS with token {token}"));
                }
                let node = &mut w.nodes[n];
                node.leading = Some(token);
                node.leader
                    .handle_leadership(now, Leadership::Leader { token, since: now });
                // Right after Leader{..}: the whole job set the watch holds.
                let events = node
                    .jobs
                    .values()
                    .map(|(job, version)| JobEvent::Upsert {
                        job: job.clone(),
                        version: *version,
                    })
                    .collect();
                let index = node.seen;
                node.leader.handle_jobs(now, JobUpdate { index, events });
            }
            Out::Lead(None) => {
                let now = wall(w, n);
                if w.trace.is_some() {
                    w.say(format_args!("n{n} follows"));
                }
                let node = &mut w.nodes[n];
                node.leading = None;
                node.leader.handle_leadership(now, Leadership::Follower);
            }
        }
    }
}

/// Performs what node `n`'s machine asks now, and sets its next wake-up.
fn drive(w: &mut World, n: usize) {
    let now = wall(w, n);
    while let Some(action) = w.nodes[n].leader.poll_action(now) {
        match action {
            Action::Reply { id, reply } => {
                let at = w.now + w.latency();
                w.at(at, Ev::CommandAnswer { api: id.0, reply });
            }
            // An optimisation the driver may decline.
            Action::PrepareRelease { .. } => {
                w.nodes[n]
                    .leader
                    .handle_outcome(now, Outcome::Prepared { ready: false });
            }
            action => w.send_redis(n, action),
        }
    }
    while let Some(event) = w.nodes[n].leader.poll_event() {
        if let Event::Fenced { .. } = event {
            w.stats.fenced += 1;
        }
    }
    let mut t = w.nodes[n].election.next_wake();
    if let Some(at) = w.nodes[n].leader.poll_timeout() {
        let true_at = (at - w.nodes[n].offset - epoch())
            .num_microseconds()
            .map_or(0, |us| us.max(0) as Micros);
        if true_at <= w.now {
            // The machine says "now" but gave nothing to do now: look again in a moment.
            w.stats.spins += 1;
            t = t.min(w.now + MS);
        } else {
            t = t.min(true_at);
        }
    }
    if t != Micros::MAX {
        wake_at(w, n, t);
    }
}

/// The failed outcome of `action` (the client's error, or a lost answer).
pub fn failed(action: &Action, why: &str) -> Outcome {
    fn e<T>(why: &str) -> Result<T, Refused> {
        Err(Refused::Failed(why.to_string()))
    }
    match action {
        Action::ReadJobIndex => Outcome::JobIndex(e(why)),
        Action::RaiseFence { .. } => Outcome::FenceRaised(e(why)),
        Action::ResetFence { .. } => Outcome::FenceReset(e(why)),
        Action::ReadStaged => Outcome::StagedRead(e(why)),
        Action::ReadCursors { .. } => Outcome::Cursors(e(why)),
        Action::Enqueue { .. } | Action::Stage { .. } => Outcome::Sent(e(why)),
        Action::Amend { .. } => Outcome::Amended(e(why)),
        Action::Release { .. } => Outcome::Released(e(why)),
        Action::RecordHistory { .. } => Outcome::Recorded(e(why)),
        Action::PrepareRelease { .. } | Action::Reply { .. } => Outcome::Prepared { ready: false },
    }
}

fn staged(fires: &[leader_term::Planned]) -> Vec<StageFire> {
    fires
        .iter()
        .map(|p| StageFire {
            job: p.job.clone(),
            fire: p.fire.clone(),
            version: p.version,
        })
        .collect()
}

fn direct(fires: &[leader_term::Planned]) -> Vec<(Arc<Job>, cron_core::Fire)> {
    fires
        .iter()
        .map(|p| (p.job.clone(), p.fire.clone()))
        .collect()
}

fn sent(w: &mut World, o: BatchOutcome) -> Outcome {
    Outcome::Sent(match o {
        BatchOutcome::Done(v) => Ok(v
            .into_iter()
            .map(|o| match o {
                redis_queue::FireOutcome::Enqueued => FireOutcome::Enqueued,
                redis_queue::FireOutcome::Duplicate => FireOutcome::Duplicate,
            })
            .collect()),
        BatchOutcome::Fenced { fence } => {
            w.stats.fenced += 1;
            Err(Refused::Fenced { fence })
        }
    })
}

/// Node `n`'s Redis action, applied to the model now: its outcome (traced).
pub fn apply(w: &mut World, n: usize, action: &Action) -> Outcome {
    let lens: Vec<usize> = w.redis.queues.iter().map(Vec::len).collect();
    let outcome = perform(w, n, action);
    if w.trace.is_some() {
        for (p, q) in w.redis.queues.iter().enumerate() {
            for x in &q[lens[p]..] {
                if w.traced(&x.task.fire.job_id) {
                    w.say(format_args!(
                        "queue{p} <- {}@{} v{} token {} by n{n}",
                        x.task.fire.job_id,
                        x.task.fire.slot.format("%M:%S%.3f"),
                        crate::api::generation(&x.task.job),
                        x.task.token
                    ));
                }
            }
        }
        let fires: Vec<String> = match action {
            Action::Enqueue { fires, .. } | Action::Stage { fires, .. } => fires
                .iter()
                .filter(|p| w.traced(&p.fire.job_id))
                .map(|p| {
                    format!(
                        "{}@{} v{}",
                        p.fire.job_id,
                        p.fire.slot.format("%M:%S"),
                        p.version
                    )
                })
                .collect(),
            Action::Amend {
                withdraw, restage, ..
            } => withdraw
                .iter()
                .filter(|f| w.traced(&f.job_id))
                .map(|f| format!("withdraw {}@{}", f.job_id, f.slot.format("%M:%S")))
                .chain(
                    restage
                        .iter()
                        .filter(|p| w.traced(&p.fire.job_id))
                        .map(|p| {
                            format!(
                                "restage {}@{} v{}",
                                p.fire.job_id,
                                p.fire.slot.format("%M:%S"),
                                p.version
                            )
                        }),
                )
                .collect(),
            _ => Vec::new(),
        };
        if !fires.is_empty() {
            let name = format!("{action:?}");
            let name = name.split([' ', '{']).next().unwrap_or("");
            w.say(format_args!(
                "n{n} (clock {}) {name} {} -> {}",
                wall(w, n).format("%H:%M:%S%.3f"),
                fires.join(", "),
                format!("{outcome:?}").chars().take(160).collect::<String>()
            ));
        }
    }
    outcome
}

fn perform(w: &mut World, n: usize, action: &Action) -> Outcome {
    let settings = w.nodes[n].settings.clone();
    let r = &mut w.redis;
    match action {
        // A consistent read of the job store (world.rs sends it to Consul, not Redis).
        Action::ReadJobIndex => Outcome::JobIndex(Ok(w.job_index)),
        Action::RaiseFence { token } => Outcome::FenceRaised(Ok(r.raise_fence(*token))),
        Action::ResetFence { token } => {
            r.reset_fence(*token);
            Outcome::FenceReset(Ok(()))
        }
        Action::ReadStaged => {
            let s = r.staged();
            Outcome::StagedRead(Ok(StagedRead {
                slots: s.slots,
                fires: s
                    .fires
                    .into_iter()
                    .map(|e| StagedFire {
                        slot: e.slot,
                        fire_id: e.fire_id,
                        job_id: e.job_id,
                        version: e.version,
                    })
                    .collect(),
                unrecorded: s.unrecorded,
            }))
        }
        Action::ReadCursors { jobs } => {
            let ids: Vec<&str> = jobs.iter().map(|j| &**j).collect();
            Outcome::Cursors(Ok(r.cursors(&ids)))
        }
        Action::Enqueue { token, at, fires } => {
            let o = r.enqueue(&direct(fires), *token, &settings, *at);
            sent(w, o)
        }
        Action::Stage { token, at, fires } => {
            let o = r.stage(&staged(fires), *token, &settings, *at);
            sent(w, o)
        }
        Action::Amend {
            token,
            withdraw,
            restage,
        } => Outcome::Amended(
            match r.amend(*token, withdraw, &staged(restage), &settings) {
                RqAmend::Done(v) => Ok(v
                    .into_iter()
                    .map(|a| match a {
                        Amended::Withdrawn => AmendOutcome::Withdrawn,
                        Amended::Replaced => AmendOutcome::Replaced,
                        Amended::NotStaged { queued } => AmendOutcome::NotStaged { queued },
                    })
                    .collect()),
                RqAmend::Fenced { fence } => {
                    w.stats.fenced += 1;
                    Err(Refused::Fenced { fence })
                }
            },
        ),
        Action::Release { token, until } => Outcome::Released(match r.release(*token, *until) {
            ReleaseOutcome::Done(slots) => Ok(slots
                .into_iter()
                .map(|s| ReleasedSlot {
                    slot: s.slot,
                    tasks: s.tasks,
                })
                .collect()),
            ReleaseOutcome::Fenced { fence } => {
                w.stats.fenced += 1;
                Err(Refused::Fenced { fence })
            }
        }),
        Action::RecordHistory { token } => Outcome::Recorded(match r.record_released(*token) {
            RecordOutcome::Done { more } => Ok(more),
            RecordOutcome::Fenced { fence } => {
                w.stats.fenced += 1;
                Err(Refused::Fenced { fence })
            }
        }),
        Action::PrepareRelease { .. } | Action::Reply { .. } => Outcome::Prepared { ready: false },
    }
}
