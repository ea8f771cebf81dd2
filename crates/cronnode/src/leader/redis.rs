//! Performs the machine's Redis actions with redis-queue and turns each answer into the
//! machine's [`Outcome`]. One function, one arm per action; no decision is made here beyond
//! what redis-queue needs (a job that cannot become a task is answered `Invalid` before the
//! call, so it does not fail the whole batch).
//!
//! A fire whose job's IronFunctions route is missing (or not resolved yet) is answered
//! `Invalid` too, and more: its slot is recorded in the job's history as not fired, with the
//! reason (one fenced call), and the job is noted in [`Held`], so the loop asks the machine to
//! catch it up by its policy once the route is back.
//!
//! Must not retry: a failed call is answered as such, and the machine decides when to make it
//! again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use cron_core::{Fire, Job};
use leader_term::{
    Action, AmendOutcome, FireOutcome, Outcome, Planned, Refused, ReleasedSlot, StagedFire,
    StagedRead,
};
use redis_queue::{
    Amended, BatchOutcome, HistoryEntry, NotFiredOutcome, PreparedRelease, Queue, QueueError,
    RecordOutcome, ReleaseOutcome, StageFire, TaskError, TaskSettings,
};

use crate::metrics::{FireOutcomeLabel, Metrics};

/// Jobs whose fires were not made because their route is missing: job id → (app, path).
pub(super) type Held = BTreeMap<Arc<str>, (String, String)>;

/// What a send leaves for the loop besides its outcome.
#[derive(Default)]
pub(super) struct SendNotes {
    /// Jobs held by this send (their route is missing).
    pub held: Held,
    /// Fires not made for that reason (counted as `route_missing`, not `invalid`).
    pub not_fired: u64,
}

/// Makes the Redis call `action` asks for (`ReadJobIndex` and `Reply` are not: answered as a
/// failure).
pub(super) async fn perform(
    queue: &Queue,
    tasks: &TaskSettings,
    metrics: &Metrics,
    prepared: &mut Option<PreparedRelease>,
    notes: &mut SendNotes,
    action: Action,
) -> Outcome {
    match action {
        Action::RaiseFence { token } => {
            Outcome::FenceRaised(queue.raise_fence(token).await.map_err(failed))
        }
        Action::ResetFence { token } => {
            Outcome::FenceReset(queue.reset_fence(token).await.map_err(failed))
        }
        Action::ReadStaged => {
            Outcome::StagedRead(queue.staged().await.map(staged_read).map_err(failed))
        }
        Action::ReadCursors { jobs } => {
            let ids: Vec<&str> = jobs.iter().map(|j| &**j).collect();
            Outcome::Cursors(queue.cursors(&ids).await.map_err(failed))
        }
        Action::Enqueue { token, at, fires } => {
            let (valid, outcomes, not_fired) = valid(tasks, &fires, at, notes);
            if let Err(refused) = record_not_fired(queue, token, &not_fired).await {
                return Outcome::Sent(Err(refused));
            }
            let batch: Vec<(Arc<Job>, Fire)> = valid
                .iter()
                .map(|p| (p.job.clone(), p.fire.clone()))
                .collect();
            let started = Instant::now();
            let r = queue.enqueue(&batch, token, tasks, at).await;
            metrics.batch(batch.len(), started.elapsed().as_secs_f64());
            Outcome::Sent(sent(r, outcomes, metrics, batch.len()))
        }
        Action::Stage { token, at, fires } => {
            let (valid, outcomes, not_fired) = valid(tasks, &fires, at, notes);
            if let Err(refused) = record_not_fired(queue, token, &not_fired).await {
                return Outcome::Sent(Err(refused));
            }
            let batch: Vec<StageFire> = valid.iter().map(|p| stage_fire(p)).collect();
            let started = Instant::now();
            let r = queue.stage(&batch, token, tasks, at).await;
            metrics.batch(batch.len(), started.elapsed().as_secs_f64());
            Outcome::Sent(sent(r, outcomes, metrics, batch.len()))
        }
        Action::Amend {
            token,
            mut withdraw,
            restage,
        } => {
            // A new spec that cannot become a task must not run, nor may the old one:
            // withdrawn instead of restaged.
            let bad: Vec<bool> = restage
                .iter()
                .map(|p| tasks.check_job(&p.job).is_err())
                .collect();
            let asked = withdraw.len();
            let good: Vec<StageFire> = restage
                .iter()
                .zip(&bad)
                .filter(|(_, b)| !**b)
                .map(|(p, _)| stage_fire(p))
                .collect();
            withdraw.extend(
                restage
                    .iter()
                    .zip(&bad)
                    .filter(|(_, b)| **b)
                    .map(|(p, _)| p.fire.clone()),
            );
            let r = queue.amend(token, &withdraw, &good, tasks).await;
            Outcome::Amended(match r {
                Ok(redis_queue::AmendOutcome::Fenced { fence }) => Err(Refused::Fenced { fence }),
                Ok(redis_queue::AmendOutcome::Done(o)) => Ok(amended(&o, asked, &bad)),
                Err(e) => Err(failed(e)),
            })
        }
        Action::PrepareRelease { token, slot } => {
            // Only an optimisation: a failure is counted and logged, and the release at the
            // slot is the script's.
            let started = Instant::now();
            *prepared = queue.prepare_release(token, slot).await.unwrap_or_else(|e| {
                metrics.redis_error("prepare_release");
                tracing::warn!(%slot, error = %e, "could not prepare the release; the slot is released by the script");
                None
            });
            tracing::debug!(%slot, prepared = prepared.is_some(), took = ?started.elapsed(), "release prepared");
            Outcome::Prepared {
                ready: prepared.is_some(),
            }
        }
        Action::Release { token, until } => {
            let r = queue.release_prepared(prepared.take(), token, until).await;
            Outcome::Released(match r {
                Ok(ReleaseOutcome::Done(slots)) => Ok(slots
                    .into_iter()
                    .map(|s| ReleasedSlot {
                        slot: s.slot,
                        tasks: s.tasks,
                    })
                    .collect()),
                Ok(ReleaseOutcome::Fenced { fence }) => Err(Refused::Fenced { fence }),
                Err(e) => Err(failed(e)),
            })
        }
        Action::RecordHistory { token } => {
            Outcome::Recorded(match queue.record_released(token).await {
                Ok(RecordOutcome::Done { more }) => Ok(more),
                Ok(RecordOutcome::Fenced { fence }) => Err(Refused::Fenced { fence }),
                Err(e) => Err(failed(e)),
            })
        }
        // Not Redis calls: the loop answers these itself.
        Action::ReadJobIndex | Action::Reply { .. } => {
            Outcome::Recorded(Err(Refused::Failed("not a Redis call".into())))
        }
    }
}

/// What [`valid`] answers: the fires to send, the outcome vector (filled from Redis's answer
/// at the `None`s), and the history entries of the slots not fired, by job.
type Checked<'a> = (
    Vec<&'a Planned>,
    Vec<Option<FireOutcome>>,
    Vec<(&'a str, HistoryEntry)>,
);

/// Records the slots not fired in their jobs' histories (fenced).
async fn record_not_fired(
    queue: &Queue,
    token: u64,
    entries: &[(&str, HistoryEntry)],
) -> Result<(), Refused> {
    match queue.record_not_fired(token, entries).await {
        Ok(NotFiredOutcome::Recorded) => Ok(()),
        Ok(NotFiredOutcome::Fenced { fence }) => Err(Refused::Fenced { fence }),
        Err(e) => Err(failed(e)),
    }
}

/// The fires whose job can become a task, the outcome vector with `Invalid` at the others
/// (the valid ones' places are filled from Redis's answer), and the history entries of those
/// not made because their route is missing (their jobs noted in `notes`).
fn valid<'a>(
    tasks: &TaskSettings,
    fires: &'a [Planned],
    now: DateTime<Utc>,
    notes: &mut SendNotes,
) -> Checked<'a> {
    let mut valid = Vec::with_capacity(fires.len());
    let mut outcomes = Vec::with_capacity(fires.len());
    let mut not_fired = Vec::new();
    let mut refused: HashSet<&str> = HashSet::new();
    for p in fires {
        match tasks.check_job(&p.job) {
            Ok(()) => {
                valid.push(p);
                outcomes.push(None);
            }
            Err(TaskError::NoRoute {
                app, path, reason, ..
            }) => {
                let reason = format!("not fired: app {app:?} route {path:?}: {reason}");
                if refused.insert(&p.job.spec.id) {
                    tracing::warn!(job = %p.job.spec.id, %reason, "the job's route is missing: its fires are not enqueued until it is back");
                }
                not_fired.push((
                    p.job.spec.id.as_str(),
                    HistoryEntry::not_fired(&p.fire, &tasks.node, now, &reason),
                ));
                notes.held.insert(p.fire.job_id.clone(), (app, path));
                notes.not_fired += 1;
                outcomes.push(Some(FireOutcome::Invalid));
            }
            Err(e) => {
                if refused.insert(&p.job.spec.id) {
                    tracing::warn!(job = %p.job.spec.id, error = %e, "the job cannot become a task: its fires are dropped");
                }
                outcomes.push(Some(FireOutcome::Invalid));
            }
        }
    }
    (valid, outcomes, not_fired)
}

/// Redis's answer for the valid fires, merged into `outcomes`.
fn sent(
    r: Result<BatchOutcome, QueueError>,
    outcomes: Vec<Option<FireOutcome>>,
    metrics: &Metrics,
    sent: usize,
) -> Result<Vec<FireOutcome>, Refused> {
    let answers = match r {
        Ok(BatchOutcome::Done(a)) => a,
        Ok(BatchOutcome::Fenced { fence }) => return Err(Refused::Fenced { fence }),
        Err(e) => {
            metrics.fires(FireOutcomeLabel::Error, sent as u64);
            return Err(failed(e));
        }
    };
    let mut answers = answers.into_iter();
    outcomes
        .into_iter()
        .map(|o| match o {
            Some(invalid) => Ok(invalid),
            None => match answers.next() {
                Some(redis_queue::FireOutcome::Enqueued) => Ok(FireOutcome::Enqueued),
                Some(redis_queue::FireOutcome::Duplicate) => Ok(FireOutcome::Duplicate),
                None => Err(Refused::Failed("fewer outcomes than fires".into())),
            },
        })
        .collect()
}

/// Redis's answer to an amend, in the order the machine asked: the first `asked`
/// withdrawals, then its restages in order, some of which (`bad`) were sent as withdrawals
/// after those. Redis answered: the `asked` withdrawals, the bad ones, the good ones.
fn amended(o: &[Amended], asked: usize, bad: &[bool]) -> Vec<AmendOutcome> {
    let map = |a: &Amended| match *a {
        Amended::Withdrawn => AmendOutcome::Withdrawn,
        Amended::Replaced => AmendOutcome::Replaced,
        Amended::NotStaged { queued } => AmendOutcome::NotStaged { queued },
    };
    let nbad = bad.iter().filter(|b| **b).count();
    let mut withdrawn = o.iter().take(asked);
    let mut bads = o.iter().skip(asked).take(nbad);
    let mut goods = o.iter().skip(asked + nbad);
    let mut out: Vec<AmendOutcome> = withdrawn.by_ref().map(map).collect();
    for b in bad {
        let next = if *b { bads.next() } else { goods.next() };
        out.extend(next.map(map));
    }
    out
}

fn stage_fire(p: &Planned) -> StageFire {
    StageFire {
        job: p.job.clone(),
        fire: p.fire.clone(),
        version: p.version,
    }
}

fn staged_read(s: redis_queue::StagedState) -> StagedRead {
    StagedRead {
        slots: s.slots,
        fires: s
            .fires
            .into_iter()
            .map(|f| StagedFire {
                slot: f.slot,
                fire_id: f.fire_id,
                job_id: f.job_id,
                version: f.version,
            })
            .collect(),
        unrecorded: s.unrecorded,
    }
}

/// A failed call, as the machine takes it (the message is for the log only).
fn failed(e: QueueError) -> Refused {
    Refused::Failed(e.to_string())
}
