//! Job changes and commands: what a term does when the job set moves or the API asks.
//!
//! A change is applied at once to the view and the planner; the fires it touches are dealt
//! with lazily: a fire not yet sent picks up the new spec (or is dropped) when it is sent, and
//! a staged fire is put in `amends`, to be withdrawn or restaged by the next `Amend`. A change
//! of schedule also stages the new schedule's slots between now and the last slot the
//! planner already gave out (the planner never gives a slot twice).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cron_core::{Fire, FireKind};

use super::{Phase, Proof, Term, Waiter};
use crate::input::{Command, CommandId, JobEvent, JobUpdate};
use crate::output::{ChangeApplied, CommandError, Reply};
use crate::view::Applied;
use crate::Out;

impl Term {
    /// A batch of changes from the store's watch.
    pub(crate) fn jobs(&mut self, now: DateTime<Utc>, update: JobUpdate, _out: &mut Out) {
        self.view.index = self.view.index.max(update.index);
        self.view.loaded = true;
        for event in update.events {
            self.change(now, event);
        }
        // Fires kept because the view was older than their stage: look again.
        for key in std::mem::take(&mut self.unverified) {
            if let Some(e) = self.staged.get(key) {
                self.amends.insert(key, e.fire.clone());
            }
        }
    }

    /// A command from the API.
    pub(crate) fn command(
        &mut self,
        now: DateTime<Utc>,
        id: CommandId,
        command: Command,
        out: &mut Out,
    ) {
        let blocked = match self.phase {
            Phase::Blocked { fence } => Some(CommandError::FenceBlocked {
                fence,
                token: self.token,
            }),
            _ => None,
        };
        match command {
            Command::ResetFence => self.resets.push(id),
            Command::ManualRun { job, fire } => match blocked {
                Some(e) => out.reply(id, Reply::ManualRun(Err(e))),
                None => self.manual.push_back((id, job, fire)),
            },
            Command::Backfill { job, slots } => match blocked {
                Some(e) => out.reply(id, Reply::Backfill(Err(e))),
                None => self.backfill(id, job, slots),
            },
            Command::JobChanged(event) => {
                let job: Arc<str> = Arc::from(event.id());
                self.change(now, event);
                match blocked {
                    Some(e) => out.reply(id, Reply::JobChanged(Err(e))),
                    None => self.waiters.push(Waiter {
                        id,
                        job,
                        applied: ChangeApplied::default(),
                        proof: Proof::Needed,
                    }),
                }
            }
        }
    }

    /// Applies one job event to the view, the planner and the fires it touches.
    fn change(&mut self, now: DateTime<Utc>, event: JobEvent) {
        let Some(Applied { id, new }) = self.view.apply(event) else {
            return;
        };
        let planned = self.planner.job(&id).is_some();
        match &new {
            // Past its last slot and its catch-up window (ended, or a one-shot gone by): it
            // costs the term nothing, not even a cursor read.
            Some(k) if k.active() && !k.job.finished(now) => {
                if planned {
                    // Slots already due under the old spec go out first (with the new spec
                    // if it still has them: checked when they are sent); the upsert plans
                    // from now on.
                    self.plan(now);
                    self.fill_gap(now, &id);
                    self.planner.upsert(k.job.clone(), now);
                } else {
                    // New to the term, resumed, or still waiting for its cursor.
                    self.awaiting.insert(id.clone());
                }
            }
            _ => {
                self.planner.remove(&id);
                self.awaiting.remove(&id);
            }
        }
        // Staged fires of the job (ours, or an earlier leader's) are checked against the
        // new spec by the next `Amend`.
        for key in self.staged.of_job(&id) {
            if let Some(e) = self.staged.get(key) {
                self.amends.insert(key, e.fire.clone());
            }
        }
    }

    /// After a change of `id`'s spec (and once the planner gave out everything due within the
    /// lookahead): its new schedule's slots after `now` within the lookahead go to the outbox
    /// unless held, since the planner gives only slots after the last one it gave out, which may
    /// have been withdrawn or dropped since (a slot withdrawn by one change and wanted again by
    /// the next). A slot the planner gives again later is found held, or staged again as a
    /// duplicate.
    fn fill_gap(&mut self, now: DateTime<Utc>, id: &Arc<str>) {
        let Some(known) = self.view.get(id) else {
            return;
        };
        let job = known.job.clone();
        let horizon = now + self.lookahead;
        let mut t = now;
        while let Some(slot) = job.next_after(t) {
            if slot > horizon {
                break;
            }
            let fire = Fire::scheduled(id.clone(), slot, FireKind::Scheduled);
            let key = (slot, fire.fire_id);
            let held = self.staged.get(key).is_some()
                || self.outbox.contains_key(&key)
                || self.later.contains_key(&key);
            if !held {
                self.route(fire);
            }
            t = slot;
        }
    }

    /// Answers the API nodes whose change is applied: no staged fire of their job is left to
    /// check, and a fenced call made since succeeded (no newer term exists, which could still
    /// plan on the old spec). Called only while no Redis call is in flight, so a call made with
    /// the old spec before the change cannot land after the answer.
    pub(crate) fn flush_waiters(&mut self, out: &mut Out) {
        if self.phase != Phase::Running || !self.view_ready() {
            return;
        }
        let amends = &self.amends;
        self.waiters.retain(|w| {
            let pending = amends.values().any(|f| f.job_id == w.job) || w.proof != Proof::Done;
            if !pending {
                out.reply(w.id, Reply::JobChanged(Ok(w.applied)));
            }
            pending
        });
    }

    /// Whether a waiting API node needs a fenced call that no amend will make.
    pub(crate) fn needs_proof(&self) -> bool {
        self.waiters
            .iter()
            .any(|w| w.proof == Proof::Needed && !self.amends.values().any(|f| f.job_id == w.job))
    }

    /// Counts an amend's result for the API nodes waiting on the job.
    pub(crate) fn count_applied(&mut self, job: &str, withdrawn: bool) {
        for w in self.waiters.iter_mut().filter(|w| &*w.job == job) {
            if withdrawn {
                w.applied.withdrawn += 1;
            } else {
                w.applied.restaged += 1;
            }
        }
    }
}
