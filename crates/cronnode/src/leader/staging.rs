//! Staged enqueue: the leader's steady state, and its release of staged work at a term start.
//!
//! The leader knows its fires ahead, so it does the expensive, fenced, deduplicating part of an
//! enqueue (dedupe mark, cursor, history: several microseconds of Redis per fire) up to
//! [`LOOKAHEAD`] before the slot, into redis-queue's staging lists (`Queue::stage`), and at
//! the slot only moves the staged tasks into the platform's queues with one cheap fenced
//! script (`Queue::release`). A tick: release what is due (the time-critical step, always
//! first), take `planner.due(now + LOOKAHEAD)`, enqueue directly the fires whose slot has
//! passed and stage the others (see `LeaderLoop::enqueue_all`), each slot staged being
//! remembered in `Term::staged` until it is released.
//!
//! A term starts by learning the slots its predecessor staged (after raising the fence: nothing
//! can be staged under an older token after that) and releasing the due ones, before the
//! catch-up; the others are released at their slot like its own. A staged fire is, for the
//! cursor, the history and the dedupe key, already enqueued: a job paused, changed or deleted
//! less than [`LOOKAHEAD`] before a slot still fires that slot as it was staged.
//!
//! Must not decide what is due (the planner does) or touch the job set (the job-change arm).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use redis_queue::ReleaseOutcome;

use super::{End, LeaderLoop, Term, RETRY_BACKOFF_MAX, RETRY_BACKOFF_START};

/// How long before its slot a fire is staged. Long enough that staging a burst of 100,000
/// fires (about 6-10 µs of Redis each, 0.6-1 s) finishes before the slot; short enough that
/// a job change made a moment before a slot mostly still reaches it (a change already takes
/// up to about a second to reach the leader through the store's coalesced watch).
pub const LOOKAHEAD: Duration = Duration::from_secs(2);

/// When the loop must wake next: a staged slot to release, or the planner's next slot minus
/// the lookahead to stage it; `None` when there is neither.
pub(super) fn next_wake(term: &Term) -> Option<DateTime<Utc>> {
    let stage = term.planner.next_wakeup().map(|t| t - lookahead());
    let release = term.staged.first().copied();
    match (stage, release) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn lookahead() -> chrono::Duration {
    chrono::Duration::from_std(LOOKAHEAD).unwrap_or(chrono::Duration::zero())
}

impl LeaderLoop {
    /// A wake-up of the steady state: release what is due, then stage (or, if late, enqueue)
    /// everything due within the lookahead.
    pub(super) async fn tick(&mut self, term: &mut Term) -> Result<(), End> {
        self.release_due(term).await?;
        let fires = term.planner.due(Utc::now() + lookahead());
        self.enqueue_all(term, fires).await
    }

    /// Term start, after the fence is ours: the slots the previous leader staged and nobody
    /// released become ours to release; the due ones are released at once.
    pub(super) async fn take_over_staged(&mut self, term: &mut Term) -> Result<(), End> {
        let slots = self
            .until_redis_answers(term.token, "staged_slots", |q| async move {
                q.staged_slots().await
            })
            .await?;
        if let (Some(first), Some(last)) = (slots.first(), slots.last()) {
            tracing::info!(
                token = term.token,
                slots = slots.len(),
                %first,
                %last,
                "releasing the slots staged by an earlier leader"
            );
        }
        term.staged.extend(slots);
        self.release_due(term).await
    }

    /// Releases every staged slot at or before now, if any; retries with backoff while we
    /// lead (a release is safe to repeat). `Fenced` ends the term.
    pub(super) async fn release_due(&mut self, term: &mut Term) -> Result<(), End> {
        let mut backoff = RETRY_BACKOFF_START;
        loop {
            let now = Utc::now();
            if term.staged.first().is_none_or(|first| *first > now) {
                return Ok(());
            }
            if !self.still_leader(term.token) {
                return Err(End::Lost);
            }
            let started = Instant::now();
            match self.queue.release(term.token, now).await {
                Ok(ReleaseOutcome::Done(slots)) => {
                    let at = Utc::now();
                    term.staged.retain(|s| *s > now);
                    let mut tasks = 0;
                    for s in &slots {
                        let late = (at - s.slot).num_microseconds().unwrap_or(i64::MAX);
                        for _ in 0..s.tasks {
                            self.metrics.lateness(late as f64 / 1e6);
                        }
                        tasks += s.tasks;
                    }
                    tracing::debug!(
                        token = term.token,
                        slots = slots.len(),
                        tasks,
                        took = ?started.elapsed(),
                        "released staged tasks"
                    );
                    return Ok(());
                }
                Ok(ReleaseOutcome::Fenced { fence }) => return Err(End::Deposed(fence)),
                Err(e) => {
                    self.metrics.redis_error("release");
                    tracing::warn!(
                        token = term.token,
                        error = %e,
                        "releasing the staged tasks failed; retrying in {backoff:?}"
                    );
                    if let Some(end) = self.pause(backoff, term.token).await {
                        return Err(end);
                    }
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
            }
        }
    }
}
