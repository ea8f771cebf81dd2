//! Backfill requests: past slots of one job that an operator asked for (after an outage longer
//! than the catch-up window), enqueued by the term in batches with its token.
//!
//! Each slot goes out as a fire of kind `Backfill` with its slot's own fire id, so the enqueue
//! script's dedupe mark answers `Duplicate` for a slot that was ever enqueued (by the schedule,
//! a catch-up, or an earlier backfill): repeating a request fires nothing twice. The caller
//! checked the range (past, not older than the dedupe marks live, bounded). A slot the term
//! still holds (in the outbox, staged, or waiting for its instant) is left to it. A failed
//! call puts its slots back for the next attempt after the backoff; the answer comes when
//! every slot has an outcome. Must not: move the job's cursor (the script leaves it alone for
//! this kind), or send a slot with a spec that no longer has it.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cron_core::{Fire, FireKind};

use super::{Call, Term};
use crate::input::CommandId;
use crate::outcome::{FireOutcome, Refused};
use crate::output::{Action, BackfillDone, Reply};
use crate::{Config, Out};

/// One request, as the term works through it.
#[derive(Debug)]
pub(crate) struct Backfill {
    pub(crate) id: CommandId,
    job: Arc<str>,
    /// Slots not sent yet, oldest first.
    todo: VecDeque<DateTime<Utc>>,
    done: BackfillDone,
}

impl Term {
    /// A backfill request: queued behind the earlier ones.
    pub(crate) fn backfill(&mut self, id: CommandId, job: Arc<str>, slots: Vec<DateTime<Utc>>) {
        self.backfills.push_back(Backfill {
            id,
            job,
            todo: slots.into(),
            done: BackfillDone::default(),
        });
    }

    /// The next batch of the first request, or its answer once every slot has an outcome.
    pub(super) fn send_backfill(
        &mut self,
        now: DateTime<Utc>,
        cfg: &Config,
        out: &mut Out,
    ) -> Option<(Action, Call)> {
        loop {
            let mut b = self.backfills.pop_front()?;
            let mut fires = Vec::new();
            while fires.len() < cfg.max_batch {
                let Some(slot) = b.todo.pop_front() else {
                    break;
                };
                let fire = Fire::scheduled(b.job.clone(), slot, FireKind::Backfill);
                if self.holds(&fire) {
                    b.done.held.push(slot);
                    continue;
                }
                match self.planned(&fire) {
                    Some(p) => fires.push(p),
                    None => b.done.dropped.push(slot),
                }
            }
            if fires.is_empty() {
                if b.todo.is_empty() {
                    b.done.token = self.token;
                    out.reply(b.id, Reply::Backfill(Ok(b.done)));
                } else {
                    self.backfills.push_front(b);
                }
                continue;
            }
            self.backfills.push_front(b);
            let call = Call::Backfill(fires.iter().map(|p| (p.fire.clone(), p.version)).collect());
            let token = self.token;
            return Some((
                Action::Enqueue {
                    token,
                    at: now,
                    fires,
                },
                call,
            ));
        }
    }

    /// Whether the term itself still holds the slot of `fire`: it goes out on its own.
    fn holds(&self, fire: &Fire) -> bool {
        let key = (fire.slot, fire.fire_id);
        let jittered = self.view.get(&fire.job_id).is_some_and(|k| {
            self.later
                .contains_key(&(k.job.fire_at(fire.slot), fire.fire_id))
        });
        jittered
            || self.staged.get(key).is_some()
            || self.outbox.contains_key(&key)
            || self.later.contains_key(&key)
    }

    /// The answer of a batch: each slot's outcome (the request answered after its last), or
    /// (the call failed) the slots back at the head of the request, for the next attempt after
    /// the backoff.
    pub(super) fn backfill_sent(
        &mut self,
        fires: &[(Fire, u64)],
        result: &Result<Vec<FireOutcome>, Refused>,
        out: &mut Out,
    ) {
        let Some(b) = self.backfills.front_mut() else {
            return;
        };
        match result {
            Ok(outcomes) => {
                for ((fire, _), outcome) in fires.iter().zip(outcomes) {
                    let to = match outcome {
                        FireOutcome::Enqueued => &mut b.done.enqueued,
                        FireOutcome::Duplicate => &mut b.done.already,
                        FireOutcome::Invalid => &mut b.done.dropped,
                    };
                    to.push(fire.slot);
                }
                if b.todo.is_empty() {
                    if let Some(mut b) = self.backfills.pop_front() {
                        b.done.token = self.token;
                        out.reply(b.id, Reply::Backfill(Ok(b.done)));
                    }
                }
            }
            Err(Refused::Failed(_)) => {
                for (fire, _) in fires.iter().rev() {
                    b.todo.push_front(fire.slot);
                }
            }
            // The term ends: its end answers the request.
            Err(Refused::Fenced { .. }) => {}
        }
    }
}
