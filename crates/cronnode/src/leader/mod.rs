//! The leader loop: the only place that enqueues.
//!
//! It follows the election (`consul_lock::NodeHandle::leadership()`); while this node leads
//! it turns the job set into fires with cron-core's planner and pushes them through
//! redis-queue's fenced enqueue script, always with this term's token. Read [`LeaderLoop::run`]
//! first, then [`LeaderLoop::lead`]: the whole life of a leadership term is there, in order.
//!
//! A term:
//! 1. raise the fence to our token; if the fence is *above* it (Consul was rebuilt from
//!    scratch, its Raft indexes started again), enqueue nothing, say so (log, metric, API) and
//!    wait for `cronnode fence reset --yes`;
//! 2. learn the slots an earlier leader staged and release the due ones (`staging.rs`); load
//!    the jobs, read every job's cursor, enqueue each job's catch-up by its policy;
//! 3. sleep until the next staged slot to release, the planner's next slot minus
//!    `staging::LOOKAHEAD`, a job change, a command or a leadership change; release due staged
//!    slots first, then stage the fires due within the lookahead (enqueue directly those whose
//!    slot has passed), in batches; on a Redis error keep the same fires and retry with backoff
//!    (their fire ids make a retry harmless) for as long as we still lead.
//!
//! On any sign of lost leadership (the watch leaves `Leader{token}`, or the script answers
//! `Fenced`) the loop stops enqueueing at once and goes back to following.
//!
//! The API never enqueues itself: manual runs and fence resets arrive here as [`Command`]s
//! (through [`LeaderHandle`]), so every enqueue carries a token this node really holds.
//! `handle.rs` is the API's side (status, commands). This module must not speak HTTP or parse
//! job JSON.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use consul_lock::{JobChange, JobSet, Leadership};
use cron_core::{Fire, FireKind, Job, Planner};
use redis_queue::{BatchOutcome, FireOutcome, Queue, QueueError, TaskSettings};
use tokio::sync::{broadcast, mpsc, watch};

use crate::metrics::{FireOutcomeLabel, Metrics};

mod handle;
mod staging;

use handle::reply_not_leader;
pub use handle::{
    channel, Command, CommandError, LeaderHandle, LeaderLink, LeaderStatus, ManualRun,
};

/// Most fires handed to one `Queue::enqueue`. redis-queue splits them into script calls of a
/// few hundred fires (so no call stalls Redis) and pipelines those while it encodes the next;
/// handing it thousands at once keeps that pipeline full (about 20% more fires/s than one
/// 500-fire call at a time). A Redis error retries the whole batch: dedupe makes it safe.
pub const MAX_BATCH: usize = 5_000;
/// Retry backoff after a Redis error starts here…
pub const RETRY_BACKOFF_START: Duration = Duration::from_millis(100);
/// …and doubles up to this ceiling.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Longest single sleep: slots are wall-clock instants and tokio sleeps on the monotonic
/// clock, so after an NTP step the distance is taken again at least this often.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);
/// How a term ended.
enum End {
    /// The process is stopping.
    Shutdown,
    /// The election watch says we no longer lead (or the watch is gone).
    Lost,
    /// The enqueue script refused our token: a newer leader exists.
    Deposed(u64),
}

/// The loop's inputs and outputs.
pub struct LeaderLoop {
    /// This node's name (logs only; the task encoder has its own copy).
    node: String,
    queue: Queue,
    tasks: Arc<TaskSettings>,
    metrics: Metrics,
    /// The election's view: Follower or Leader{token}.
    leadership: watch::Receiver<Leadership>,
    /// The job store's coalesced watch.
    jobs: watch::Receiver<JobSet>,
    commands: mpsc::Receiver<Command>,
    status: watch::Sender<LeaderStatus>,
    shutdown: broadcast::Receiver<()>,
}

/// The state of one term: the planner and the job set it was given.
struct Term {
    token: u64,
    /// Every valid job of `applied`, paused ones included (held, never due).
    planner: Planner,
    /// The last job set applied to the planner: the next one is applied as its changes since
    /// this one (shards that did not change are skipped by pointer).
    applied: JobSet,
    /// Slots with staged tasks not yet released (ours, and those an earlier leader left).
    staged: BTreeSet<DateTime<Utc>>,
}

impl LeaderLoop {
    /// The loop, joined to the far end of the handle made by [`channel`].
    #[allow(clippy::too_many_arguments)] // one of each input and output; a struct would only rename them
    pub fn new(
        link: LeaderLink,
        node: String,
        queue: Queue,
        tasks: Arc<TaskSettings>,
        metrics: Metrics,
        leadership: watch::Receiver<Leadership>,
        jobs: watch::Receiver<JobSet>,
        shutdown: broadcast::Receiver<()>,
    ) -> LeaderLoop {
        LeaderLoop {
            node,
            queue,
            tasks,
            metrics,
            leadership,
            jobs,
            commands: link.commands,
            status: link.status,
            shutdown,
        }
    }

    /// Follows the election until shutdown, leading whenever the lock is ours.
    pub async fn run(mut self) {
        loop {
            // Follower: wait for the lock, answering commands with NotLeader.
            let Some((token, since)) = self.wait_for_leadership().await else {
                return;
            };
            tracing::info!(node = %self.node, token, %since, "became leader");
            self.metrics.leadership(true);
            self.status
                .send_replace(LeaderStatus::Leading { token, since });

            let end = self.lead(token, since).await;

            self.status.send_replace(LeaderStatus::Follower);
            self.metrics.leadership(false);
            self.metrics.fence_blocked(false);
            match end {
                End::Shutdown => {
                    tracing::info!(token, "stopped scheduling: shutting down");
                    return;
                }
                End::Lost => tracing::warn!(token, "lost leadership: stopped enqueueing"),
                End::Deposed(fence) => {
                    tracing::error!(
                        token,
                        fence,
                        "deposed: the Redis fence ({fence}) is above this term's token; a newer leader exists. Stopped enqueueing; waiting for the election to notice"
                    );
                    // Do not lead again with the same token: wait for the watch to move on.
                    if !self.wait_until_not(token).await {
                        return;
                    }
                }
            }
        }
    }

    /// One leadership term, from raising the fence to the end.
    async fn lead(&mut self, token: u64, since: DateTime<Utc>) -> End {
        // 1. The fence. Our token is a Raft index, so it is above every earlier term's: raising
        //    the fence to it cuts off any older leader that is still running.
        let fence = match self
            .until_redis_answers(token, "raise_fence", |q| async move {
                q.raise_fence(token).await
            })
            .await
        {
            Ok(f) => f,
            Err(end) => return end,
        };
        if fence > token {
            // Consul was rebuilt (new cluster, or a dev agent without a data dir): its indexes
            // started again below the fence. Enqueueing is impossible (the script would refuse
            // every batch) and lowering the fence on our own would also re-open the door to a
            // deposed leader of the old cluster. Only an operator may decide that.
            tracing::error!(
                token,
                fence,
                "FENCE BLOCKED: the Redis fence ({fence}) is above this leader's token ({token}). \
                 Consul's indexes went backwards: it was probably rebuilt from scratch. Nothing \
                 will be enqueued until an operator, having stopped every node of the old \
                 cluster, runs `cronnode fence reset --yes`"
            );
            self.metrics.fence_blocked(true);
            self.status.send_replace(LeaderStatus::FenceBlocked {
                token,
                since,
                fence,
            });
            if let Some(end) = self.wait_for_fence_reset(token, fence).await {
                return end;
            }
            self.metrics.fence_blocked(false);
            self.status
                .send_replace(LeaderStatus::Leading { token, since });
        }

        // 2. Catch-up: every job from its cursor, by its policy.
        let mut term = Term {
            token,
            planner: Planner::new(),
            applied: JobSet::default(),
            staged: BTreeSet::new(),
        };
        if let Err(end) = self.take_over_staged(&mut term).await {
            return end;
        }
        let jobs = self.jobs.borrow_and_update().clone();
        let now = Utc::now();
        let to_catch_up = self.apply_job_set(&mut term, &jobs, now);
        if let Err(end) = self
            .catch_up(&mut term, to_catch_up, now, "leadership")
            .await
        {
            return end;
        }

        // 3. Steady state.
        loop {
            let sleep = sleep_until_utc(staging::next_wake(&term));
            tokio::select! {
                // Leadership first: a lost lock must win over a due slot.
                biased;
                _ = self.shutdown.recv() => return End::Shutdown,
                r = self.leadership.changed() => {
                    if r.is_err() || !self.still_leader(token) {
                        return End::Lost;
                    }
                }
                r = self.jobs.changed() => {
                    if r.is_err() {
                        // The store's watch ended: only happens on shutdown.
                        return End::Shutdown;
                    }
                    let jobs = self.jobs.borrow_and_update().clone();
                    let now = Utc::now();
                    let resumed = self.apply_job_set(&mut term, &jobs, now);
                    if let Err(end) = self.catch_up(&mut term, resumed, now, "job change").await {
                        return end;
                    }
                }
                Some(cmd) = self.commands.recv() => {
                    if let Err(end) = self.command(&term, cmd).await {
                        return end;
                    }
                }
                _ = sleep => {
                    if let Err(end) = self.tick(&mut term).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Brings the planner in line with `set` by applying its changes since the last set
    /// applied; returns the jobs to catch up from their cursor (added active jobs, and
    /// resumed ones). Work is proportional to the changed shards, not to all jobs.
    fn apply_job_set(&self, term: &mut Term, set: &JobSet, now: DateTime<Utc>) -> Vec<String> {
        self.metrics.jobs(set.len(), set.invalid_count());
        let mut catch_up = Vec::new();
        for change in set.changes_since(&term.applied) {
            match change {
                JobChange::Added(new) => {
                    // Paused jobs are held too (the planner never makes them due), so a
                    // resume is a change like any other.
                    term.planner.upsert(new.job.clone(), now);
                    if !new.job.spec.paused {
                        catch_up.push(new.id().to_string());
                    }
                }
                JobChange::Changed { old, new } => {
                    // A changed spec keeps its place (the planner does not repeat a slot).
                    term.planner.upsert(new.job.clone(), now);
                    if old.job.spec.paused && !new.job.spec.paused {
                        catch_up.push(new.id().to_string());
                    }
                }
                JobChange::Removed(old) => term.planner.remove(old.id()),
            }
        }
        term.applied = set.clone();
        catch_up
    }

    /// Reads the cursors of `ids` and enqueues their missed slots by each job's policy. A job
    /// without a cursor was never enqueued: its missed slots start at its creation (a job
    /// created while nobody led, or just before this leader saw it). `now` is the instant
    /// the jobs were (re)planned at: slots after it are the planner's to fire on time, so a
    /// slot that passes while the cursors are read is never taken for a missed one.
    async fn catch_up(
        &mut self,
        term: &mut Term,
        ids: Vec<String>,
        now: DateTime<Utc>,
        why: &str,
    ) -> Result<(), End> {
        if ids.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let cursors = self
            .until_redis_answers(term.token, "cursors", |q| {
                let refs = &refs;
                async move { q.cursors(refs).await }
            })
            .await?;
        let (mut fires, mut skipped, mut jobs_behind) = (Vec::new(), 0u64, 0usize);
        for id in &ids {
            // No cursor: never enqueued; the planner catches it up from its creation.
            let plan = term.planner.catch_up(id, cursors.get(id).copied(), now);
            if !plan.fires.is_empty() || plan.skipped > 0 {
                jobs_behind += 1;
            }
            skipped += plan.skipped;
            fires.extend(plan.fires);
        }
        let planned = fires.len() as u64;
        self.metrics.catchup(planned, skipped);
        self.enqueue_all(term, fires).await?;
        // One line per term start, and per job change only when something was missed.
        if why == "leadership" || jobs_behind > 0 {
            tracing::info!(
                token = term.token,
                reason = why,
                jobs = ids.len(),
                jobs_behind,
                planned = planned,
                skipped,
                "catch-up done"
            );
        }
        Ok(())
    }

    /// Sends `fires` to Redis in batches with this term's token: those whose slot has passed
    /// are enqueued, the others staged (and their slots remembered for release). Before each
    /// batch, due staged slots are released first. A Redis error keeps the batch and retries it
    /// with backoff while we still lead (by then a staged batch's slot may have passed: it is
    /// then enqueued, and what the lost call staged comes back `Duplicate` and is released);
    /// `Fenced` ends the term.
    async fn enqueue_all(&mut self, term: &mut Term, fires: Vec<Fire>) -> Result<(), End> {
        let batch: Vec<(Arc<Job>, Fire)> = fires
            .into_iter()
            .filter_map(|f| term.planner.job(&f.job_id).map(|j| (j.clone(), f)))
            .collect();
        let mut rest = &batch[..];
        let mut backoff = RETRY_BACKOFF_START;
        while let Some((_, head)) = rest.first() {
            // Never enqueue on a term the election already ended.
            if !self.still_leader(term.token) {
                return Err(End::Lost);
            }
            self.release_due(term).await?;
            let now = Utc::now();
            let direct = head.slot <= now;
            let n = rest
                .iter()
                .take(MAX_BATCH)
                .take_while(|(_, f)| (f.slot <= now) == direct)
                .count();
            let chunk = &rest[..n];
            if !direct {
                // Remembered before the call: a staged batch whose answer is lost is still
                // released.
                term.staged.extend(chunk.iter().map(|(_, f)| f.slot));
            }
            let started = Instant::now();
            let result = if direct {
                self.queue
                    .enqueue(chunk, term.token, &self.tasks, now)
                    .await
            } else {
                self.queue.stage(chunk, term.token, &self.tasks, now).await
            };
            self.metrics.batch(n, started.elapsed().as_secs_f64());
            match result {
                Ok(BatchOutcome::Done(outcomes)) => {
                    self.record(chunk, &outcomes, now, !direct);
                    rest = &rest[n..];
                    backoff = RETRY_BACKOFF_START;
                }
                Ok(BatchOutcome::Fenced { fence }) => {
                    self.metrics.fires(FireOutcomeLabel::Fenced, n as u64);
                    return Err(End::Deposed(fence));
                }
                Err(e) => {
                    self.metrics.fires(FireOutcomeLabel::Error, n as u64);
                    self.metrics
                        .redis_error(if direct { "enqueue" } else { "stage" });
                    tracing::warn!(
                        token = term.token,
                        fires = n,
                        staged = !direct,
                        error = %e,
                        "enqueue failed; retrying the same fires in {backoff:?}"
                    );
                    if let Some(end) = self.pause(backoff, term.token).await {
                        return Err(end);
                    }
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
            }
        }
        Ok(())
    }

    /// Counts the outcomes; the lateness of a staged fire is measured at its release instead.
    fn record(
        &self,
        chunk: &[(Arc<Job>, Fire)],
        outcomes: &[FireOutcome],
        now: DateTime<Utc>,
        staged: bool,
    ) {
        let mut dup = 0;
        let mut enq = 0;
        for ((_, fire), outcome) in chunk.iter().zip(outcomes) {
            match outcome {
                FireOutcome::Enqueued => {
                    enq += 1;
                    if fire.kind == FireKind::Scheduled && !staged {
                        let late = (now - fire.slot).num_microseconds().unwrap_or(i64::MAX);
                        self.metrics.lateness(late as f64 / 1e6);
                    }
                    tracing::debug!(job = %fire.job_id, slot = %fire.slot, fire_id = %fire.fire_id, staged, "enqueued");
                }
                FireOutcome::Duplicate => {
                    dup += 1;
                    tracing::debug!(job = %fire.job_id, slot = %fire.slot, "duplicate (already enqueued)");
                }
            }
        }
        self.metrics.fires(FireOutcomeLabel::Enqueued, enq);
        self.metrics.fires(FireOutcomeLabel::Duplicate, dup);
    }

    /// Carries out an API command while leading (and not fence-blocked).
    async fn command(&mut self, term: &Term, cmd: Command) -> Result<(), End> {
        match cmd {
            Command::ManualRun { job, reply } => {
                let fire = Fire::manual(Arc::from(job.spec.id.as_str()), Utc::now());
                let batch = [(job, fire.clone())];
                let result = self
                    .queue
                    .enqueue(&batch, term.token, &self.tasks, Utc::now())
                    .await;
                let (answer, end) = match result {
                    Ok(BatchOutcome::Done(o)) => {
                        let enqueued = matches!(o.first(), Some(FireOutcome::Enqueued));
                        self.record(&batch, &o, Utc::now(), false);
                        tracing::info!(job = %fire.job_id, fire_id = %fire.fire_id, "manual run enqueued");
                        (
                            Ok(ManualRun {
                                fire,
                                token: term.token,
                                enqueued,
                            }),
                            None,
                        )
                    }
                    Ok(BatchOutcome::Fenced { fence }) => {
                        self.metrics.fires(FireOutcomeLabel::Fenced, 1);
                        (Err(CommandError::Fenced(fence)), Some(End::Deposed(fence)))
                    }
                    Err(e) => {
                        self.metrics.fires(FireOutcomeLabel::Error, 1);
                        self.metrics.redis_error("enqueue");
                        (Err(CommandError::Redis(e.to_string())), None)
                    }
                };
                let _ = reply.send(answer);
                end.map_or(Ok(()), Err)
            }
            Command::ResetFence { reply } => {
                // Not blocked: the fence already equals our token (we raised it). Setting it
                // again is harmless and gives the operator a definite answer.
                let answer = match self.queue.reset_fence(term.token).await {
                    Ok(_) => {
                        tracing::warn!(
                            token = term.token,
                            "fence reset to this leader's token by an operator"
                        );
                        Ok(term.token)
                    }
                    Err(e) => {
                        self.metrics.redis_error("reset_fence");
                        Err(CommandError::Redis(e.to_string()))
                    }
                };
                let _ = reply.send(answer);
                Ok(())
            }
        }
    }

    /// Fence-blocked: waits for an operator's reset (or the end of the term). `None` when the
    /// fence was reset and the term may go on.
    async fn wait_for_fence_reset(&mut self, token: u64, fence: u64) -> Option<End> {
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.recv() => return Some(End::Shutdown),
                r = self.leadership.changed() => {
                    if r.is_err() || !self.still_leader(token) {
                        return Some(End::Lost);
                    }
                }
                Some(cmd) = self.commands.recv() => match cmd {
                    Command::ManualRun { reply, .. } => {
                        let _ = reply.send(Err(CommandError::FenceBlocked { fence, token }));
                    }
                    Command::ResetFence { reply } => match self.queue.reset_fence(token).await {
                        Ok(_) => {
                            tracing::warn!(token, old_fence = fence, "fence reset to this leader's token by an operator; scheduling starts");
                            let _ = reply.send(Ok(token));
                            return None;
                        }
                        Err(e) => {
                            self.metrics.redis_error("reset_fence");
                            let _ = reply.send(Err(CommandError::Redis(e.to_string())));
                        }
                    },
                },
            }
        }
    }

    /// Waits until the election says we lead; `None` on shutdown.
    async fn wait_for_leadership(&mut self) -> Option<(u64, DateTime<Utc>)> {
        loop {
            if let Leadership::Leader { token, since } = &*self.leadership.borrow_and_update() {
                return Some((*token, *since));
            }
            tokio::select! {
                _ = self.shutdown.recv() => return None,
                r = self.leadership.changed() => if r.is_err() { return None },
                r = self.jobs.changed() => {
                    if r.is_ok() {
                        let set = self.jobs.borrow_and_update();
                        self.metrics.jobs(set.len(), set.invalid_count());
                    }
                }
                Some(cmd) = self.commands.recv() => reply_not_leader(cmd),
            }
        }
    }

    /// After being deposed: waits until the watch leaves `Leader{token}`; `false` on shutdown.
    async fn wait_until_not(&mut self, token: u64) -> bool {
        while self.still_leader(token) {
            tokio::select! {
                _ = self.shutdown.recv() => return false,
                r = self.leadership.changed() => if r.is_err() { return false },
                Some(cmd) = self.commands.recv() => reply_not_leader(cmd),
            }
        }
        true
    }

    /// Runs `op` on the queue until Redis answers, with backoff, while the term lasts: the
    /// reads a term cannot go on without (the fence, the cursors, the staged slots). `what`
    /// names the call in the error metric and the log.
    async fn until_redis_answers<T, Fut>(
        &mut self,
        token: u64,
        what: &'static str,
        op: impl Fn(Queue) -> Fut,
    ) -> Result<T, End>
    where
        Fut: Future<Output = Result<T, QueueError>>,
    {
        let mut backoff = RETRY_BACKOFF_START;
        loop {
            match op(self.queue.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.metrics.redis_error(what);
                    tracing::warn!(token, error = %e, "Redis call {what} failed; retrying in {backoff:?}");
                    if let Some(end) = self.pause(backoff, token).await {
                        return Err(end);
                    }
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
            }
        }
    }

    /// Sleeps `d` unless the term ends first.
    async fn pause(&mut self, d: Duration, token: u64) -> Option<End> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return None,
                _ = self.shutdown.recv() => return Some(End::Shutdown),
                r = self.leadership.changed() => {
                    if r.is_err() || !self.still_leader(token) {
                        return Some(End::Lost);
                    }
                }
            }
        }
    }

    fn still_leader(&self, token: u64) -> bool {
        matches!(*self.leadership.borrow(), Leadership::Leader { token: t, .. } if t == token)
    }
}

/// Sleeps until the wall-clock instant `at`, or [`MAX_SLEEP`] (the caller then asks the
/// planner again, which is harmless: `due` returns nothing early).
async fn sleep_until_utc(at: Option<DateTime<Utc>>) {
    let d = match at {
        None => MAX_SLEEP,
        Some(at) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
    };
    tokio::time::sleep(d.min(MAX_SLEEP)).await
}
