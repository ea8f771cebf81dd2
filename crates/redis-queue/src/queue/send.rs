//! Sending fires: [`Queue::enqueue`], [`Queue::stage`] (batches split into pipelined script
//! calls) and [`Queue::amend`] (withdraw and restage staged fires).
//!
//! Must not resend: a call whose answer is lost is [`QueueError::Unknown`] to the caller.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cron_core::{Fire, Job};
use redis::aio::ConnectionManager;
use redis::Value;

use super::{check_token, Queue, CALLS_PER_PIPELINE, PIPELINES_IN_FLIGHT};
use crate::calls::{AmendOutcome, BatchOutcome, FireOutcome, StageFire};
use crate::error::QueueError;
use crate::model::TaskSettings;
use crate::script::amend::{amend_call, amend_script, decode_amend};
use crate::script::enqueue::{decode, EnqueueCall, Mode};
use crate::script::ENQUEUE_LUA;

/// A fire as a call takes it: its job, the fire, and the spec's version.
trait Item {
    fn job(&self) -> &Job;
    fn fire(&self) -> &Fire;
    fn version(&self) -> u64;
}

impl Item for (Arc<Job>, Fire) {
    fn job(&self) -> &Job {
        &self.0
    }
    fn fire(&self) -> &Fire {
        &self.1
    }
    fn version(&self) -> u64 {
        0
    }
}

impl Item for StageFire {
    fn job(&self) -> &Job {
        &self.job
    }
    fn fire(&self) -> &Fire {
        &self.fire
    }
    fn version(&self) -> u64 {
        self.version
    }
}

impl Queue {
    /// Enqueues a batch of fires under the leader's fencing `token`, atomically per call.
    ///
    /// For each fire: its slot's dedupe key is set (TTL [`crate::dedupe_ttl`]); only if that
    /// succeeds the task is pushed (`queue<priority>`, or the delayed set for a job with a
    /// delay), the job's cursor advances to the slot (never backwards; manual fires do not move
    /// it) and an entry goes into the job's history, its `enqueued_at` the instant the script
    /// ran (Redis's clock). The batch is split into calls of
    /// [`super::DEFAULT_FIRES_PER_CALL`], sent in order in pipelines of
    /// [`CALLS_PER_PIPELINE`] calls. A token above the fence raises the fence. `now` is the
    /// caller's instant: the task's `created_at`, and the base of a delayed task's ready time.
    ///
    /// On [`QueueError::Unknown`] retry the same fires: those already applied come back
    /// [`FireOutcome::Duplicate`].
    pub async fn enqueue(
        &self,
        batch: &[(Arc<Job>, Fire)],
        token: u64,
        settings: &TaskSettings,
        now: DateTime<Utc>,
    ) -> Result<BatchOutcome, QueueError> {
        self.send(batch, token, settings, now, Mode::Direct).await
    }

    /// Stages a batch of fires ahead of their slots, under the leader's fencing `token`: the
    /// fence, the dedupe mark and the cursor as [`Queue::enqueue`] sets them, atomically per
    /// call, but the task goes to the staging list of its (slot, priority)
    /// (`<key-prefix>staging:<slot>:<priority>`, registered in the index `<key-prefix>staging`
    /// by the same call) instead of its queue, and the fire is recorded in its slot's staged
    /// meta (`staged:<slot>`: its job, the spec `version`, the token and node) with a copy of
    /// its task (`staged-tasks:<slot>`), so it can be withdrawn or restaged until it is
    /// released. [`Queue::release`] moves it to its queue at the slot; its history entry is
    /// written then ([`Queue::record_released`]), saying when it reached the queue.
    ///
    /// The tasks' `created_at` is the fire's slot; `now` (the caller's clock) only sets how
    /// long the dedupe keys live. A fire of a job with a delay cannot be staged (its task
    /// would go to the platform's delayed set at once, beyond a withdrawal's reach): the whole
    /// batch is refused with [`QueueError::StagedDelay`] before anything is sent.
    ///
    /// On [`QueueError::Unknown`] retry the same fires (with `stage`, or `enqueue` once their
    /// slot has passed): those already staged come back [`FireOutcome::Duplicate`], and stay
    /// staged until a release.
    pub async fn stage(
        &self,
        batch: &[StageFire],
        token: u64,
        settings: &TaskSettings,
        now: DateTime<Utc>,
    ) -> Result<BatchOutcome, QueueError> {
        if let Some(f) = batch
            .iter()
            .find(|f| f.job.spec.function.delay.unwrap_or(0) > 0)
        {
            return Err(QueueError::StagedDelay {
                job: f.job.spec.id.clone(),
            });
        }
        self.send(batch, token, settings, now, Mode::Staged).await
    }

    /// Withdraws staged fires and restages others with a new spec, under `token`, in one
    /// atomic call (`lua/amend.lua` says exactly what each does to the staging list, the
    /// staged meta, the dedupe mark and the cursor). Answers one [`crate::Amended`] per
    /// withdrawn fire, then one per restaged fire.
    ///
    /// Safe to repeat after [`QueueError::Unknown`]: a fire withdrawn or restaged by the lost
    /// call is found not staged, or restaged again with the same task.
    pub async fn amend(
        &self,
        token: u64,
        withdraw: &[Fire],
        restage: &[StageFire],
        settings: &TaskSettings,
    ) -> Result<AmendOutcome, QueueError> {
        check_token(token)?;
        if withdraw.is_empty() && restage.is_empty() {
            return Ok(AmendOutcome::Done(Vec::new()));
        }
        for r in restage {
            settings.check_job(&r.job)?;
        }
        let script = amend_script();
        let inv = amend_call(&script, &self.keys, settings, token, withdraw, restage)?;
        let mut conn = self.conn.clone();
        let answer: Value = inv
            .invoke_async(&mut conn)
            .await
            .map_err(QueueError::from_call)?;
        Ok(match decode_amend(&answer)? {
            Err(fence) => AmendOutcome::Fenced { fence },
            Ok(outcomes) if outcomes.len() == withdraw.len() + restage.len() => {
                AmendOutcome::Done(outcomes)
            }
            Ok(outcomes) => {
                return Err(QueueError::Protocol(format!(
                    "{} outcomes for {} fires",
                    outcomes.len(),
                    withdraw.len() + restage.len()
                )))
            }
        })
    }

    async fn send<I: Item>(
        &self,
        batch: &[I],
        token: u64,
        settings: &TaskSettings,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> Result<BatchOutcome, QueueError> {
        check_token(token)?;
        if batch.is_empty() {
            return Ok(BatchOutcome::Done(Vec::new()));
        }
        // Every job is checked before anything is sent, so a job that cannot be encoded
        // never leaves half a batch behind.
        for item in batch {
            settings.check_job(item.job())?;
        }
        // Pipelines of a few calls, several in flight while the next is encoded: Redis runs
        // the scripts while this task builds arguments. Each pipeline is polled once as soon
        // as it is made, which hands it to the connection, so the calls reach Redis in input
        // order; after a Fenced answer nothing more is sent.
        let group_len = self.fires_per_call * CALLS_PER_PIPELINE;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut pending: VecDeque<PipelineFuture> = VecDeque::new();
        for group in batch.chunks(group_len) {
            let pipe = self.pipeline(group, token, settings, now, mode)?;
            let mut fut: PipelineFuture = Box::pin(run_pipeline(self.conn.clone(), pipe));
            let early = tokio::select! {
                biased;
                r = &mut fut => Some(r),
                () = std::future::ready(()) => None,
            };
            if let Some(r) = early {
                fut = Box::pin(std::future::ready(r));
            }
            pending.push_back(fut);
            while pending.len() >= PIPELINES_IN_FLIGHT {
                if let Some(oldest) = pending.pop_front() {
                    if let Some(fence) = collect(oldest.await?, &mut outcomes)? {
                        return Ok(BatchOutcome::Fenced { fence });
                    }
                }
            }
        }
        while let Some(oldest) = pending.pop_front() {
            if let Some(fence) = collect(oldest.await?, &mut outcomes)? {
                return Ok(BatchOutcome::Fenced { fence });
            }
        }
        if outcomes.len() != batch.len() {
            return Err(QueueError::Protocol(format!(
                "{} outcomes for {} fires",
                outcomes.len(),
                batch.len()
            )));
        }
        Ok(BatchOutcome::Done(outcomes))
    }

    /// One pipeline: SCRIPT LOAD (so EVALSHA cannot miss the script on a restarted Redis),
    /// then one EVALSHA per `fires_per_call` fires.
    fn pipeline<I: Item>(
        &self,
        group: &[I],
        token: u64,
        settings: &TaskSettings,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> Result<redis::Pipeline, QueueError> {
        let mut pipe = redis::pipe();
        pipe.cmd("SCRIPT").arg("LOAD").arg(ENQUEUE_LUA).ignore();
        for chunk in group.chunks(self.fires_per_call) {
            let mut call = EnqueueCall::new(
                &self.keys,
                settings,
                token,
                now,
                mode,
                self.history_len,
                chunk.len(),
            );
            for item in chunk {
                call.push(item.job(), item.fire(), item.version())?;
            }
            pipe.add_command(call.command());
        }
        Ok(pipe)
    }
}

/// Sends a pipeline, once. (A NOSCRIPT answer, possible only if the scripts were flushed
/// between the SCRIPT LOAD in front and a call, is an error like any other: the caller
/// retries the same fires.)
async fn run_pipeline(
    mut conn: ConnectionManager,
    pipe: redis::Pipeline,
) -> Result<Vec<Value>, QueueError> {
    pipe.query_async::<Vec<Value>>(&mut conn)
        .await
        .map_err(QueueError::from_call)
}

/// A pipeline on its way: its answers, one per script call.
type PipelineFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Value>, QueueError>> + Send>>;

/// Appends a pipeline's outcomes; answers the fence if a call was fenced.
fn collect(
    answers: Vec<Value>,
    outcomes: &mut Vec<FireOutcome>,
) -> Result<Option<u64>, QueueError> {
    for answer in answers {
        match decode(&answer)? {
            Err(fence) => return Ok(Some(fence)),
            Ok(mut o) => outcomes.append(&mut o),
        }
    }
    Ok(None)
}
