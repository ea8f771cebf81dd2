//! The order of a term's work: [`Term::poll`] gives the most urgent Redis call at `now`.
//!
//! Running, most urgent first:
//! 1. withdraw or restage staged fires of changed jobs whose slot is due (before they are
//!    released with the old spec);
//! 2. release the due staged slots (the time-critical step: release before stage);
//! 3. enqueue the fires of delayed jobs whose slot came, and of jittered jobs whose jittered
//!    instant came;
//! 4. withdraw or restage the other staged fires of changed jobs (an API node waits), or, when
//!    none is staged, a fenced call that proves the term still the newest before it answers;
//! 5. reset the fence (an operator waits); a manual run (a user waits); a batch of a
//!    backfill (an operator waits);
//! 6. the outbox: fires whose slot passed are enqueued, the others (due within the lookahead)
//!    staged, the slots of a stage remembered before the call;
//! 7. read the cursors of jobs to catch up;
//! 8. prepare the next release; 9. write the history of released slots.

use chrono::{DateTime, Utc};
use cron_core::Fire;

use super::{Call, Phase, Term};
use crate::output::{Action, Event, Op, Planned};
use crate::view::{has_slot, held, held_at};
use crate::{Config, Out};

/// What to do with a staged fire, given the view.
enum Decision {
    /// Nothing: its task carries the newest spec (or the view is older than the stage).
    Keep,
    /// Its job is unknown to a view older than the stage: look again on the next update.
    Unverified,
    /// It must not reach the queue. `later`: its job now has a delay, so it is enqueued at
    /// its slot instead.
    Withdraw { later: bool },
    /// Its task must carry this spec.
    Restage(Planned),
}

impl Term {
    /// The next Redis call at `now`, with what its answer needs; replies go to `out`.
    pub(crate) fn poll(
        &mut self,
        now: DateTime<Utc>,
        cfg: &Config,
        out: &mut Out,
    ) -> Option<(Action, Call)> {
        let token = self.token;
        match self.phase {
            Phase::RaiseFence => return Some((Action::RaiseFence { token }, Call::RaiseFence)),
            Phase::ReadStaged => return Some((Action::ReadStaged, Call::ReadStaged)),
            Phase::ReadJobIndex => return Some((Action::ReadJobIndex, Call::JobIndex)),
            Phase::Blocked { .. } => return self.reset(),
            Phase::Running => {}
        }
        if !self.view_ready() {
            return None;
        }
        self.flush_waiters(out);
        self.plan(now);
        if let Some(call) = self.amend(now, cfg, true, out) {
            return Some(call);
        }
        if self.staged.first().is_some_and(|s| s <= now) {
            return Some((Action::Release { token, until: now }, Call::Release(now)));
        }
        if let Some(call) = self.send_later(now, cfg, out) {
            return Some(call);
        }
        if let Some(call) = self.amend(now, cfg, false, out) {
            return Some(call);
        }
        if self.needs_proof() {
            return Some((Action::RaiseFence { token }, Call::Prove));
        }
        if let Some(call) = self.reset() {
            return Some(call);
        }
        if let Some((id, job, fire)) = self.manual.pop_front() {
            let fire = Planned {
                job,
                fire,
                version: 0,
            };
            let call = Call::Send {
                op: Op::Enqueue,
                fires: vec![(fire.fire.clone(), 0)],
                manual: Some(id),
            };
            let fires = vec![fire];
            return Some((
                Action::Enqueue {
                    token,
                    at: now,
                    fires,
                },
                call,
            ));
        }
        if let Some(call) = self.send_backfill(now, cfg, out) {
            return Some(call);
        }
        if let Some(call) = self.send_outbox(now, cfg, out) {
            return Some(call);
        }
        if !self.awaiting.is_empty() {
            let jobs: Vec<_> = self.awaiting.iter().cloned().collect();
            let call = Call::Cursors(jobs.clone());
            return Some((Action::ReadCursors { jobs }, call));
        }
        if let Some(slot) = self.to_prepare(now, cfg) {
            self.prepared = Some(slot);
            return Some((Action::PrepareRelease { token, slot }, Call::Prepare));
        }
        if self.unrecorded {
            return Some((Action::RecordHistory { token }, Call::Record));
        }
        self.flush_waiters(out);
        None
    }

    fn reset(&mut self) -> Option<(Action, Call)> {
        if self.resets.is_empty() {
            return None;
        }
        let replies = std::mem::take(&mut self.resets);
        let token = self.token;
        Some((Action::ResetFence { token }, Call::ResetFence { replies }))
    }

    /// Takes the planner's fires due within the lookahead into the outbox (or `later`).
    pub(super) fn plan(&mut self, now: DateTime<Utc>) {
        let horizon = now + self.lookahead;
        if self.planner.next_wakeup().is_some_and(|t| t <= horizon) {
            for fire in self.planner.due(horizon) {
                self.route(fire);
            }
        }
    }

    /// An `Amend` of the staged fires to check (`due`: only those whose slot has come).
    fn amend(
        &mut self,
        now: DateTime<Utc>,
        cfg: &Config,
        due: bool,
        out: &mut Out,
    ) -> Option<(Action, Call)> {
        let (mut withdraw, mut restage) = (Vec::new(), Vec::new());
        while withdraw.len() + restage.len() < cfg.max_batch {
            let Some(first) = self.amends.first_entry() else {
                break;
            };
            if due && first.key().0 > now {
                break;
            }
            let (key, _) = first.remove_entry();
            let Some((fire, version)) = self.staged.get(key).map(|e| (e.fire.clone(), e.version))
            else {
                continue;
            };
            match self.decide(&fire, version) {
                Decision::Keep => {}
                Decision::Unverified => {
                    self.unverified.insert(key);
                }
                Decision::Withdraw { later } => {
                    if later {
                        self.hold(fire.clone());
                    }
                    withdraw.push(fire);
                }
                Decision::Restage(p) => restage.push(p),
            }
        }
        if withdraw.is_empty() && restage.is_empty() {
            self.flush_waiters(out);
            return None;
        }
        // A prepared release of a slot being changed would be refused: prepare it again.
        if withdraw
            .iter()
            .chain(restage.iter().map(|p| &p.fire))
            .any(|f| Some(f.slot) == self.prepared)
        {
            self.prepared = None;
        }
        let call = Call::Amend {
            withdraw: withdraw.clone(),
            restage: restage
                .iter()
                .map(|p| (p.fire.clone(), p.version))
                .collect(),
        };
        let token = self.token;
        Some((
            Action::Amend {
                token,
                withdraw,
                restage,
            },
            call,
        ))
    }

    fn decide(&self, fire: &Fire, version: u64) -> Decision {
        let Some(known) = self.view.get(&fire.job_id) else {
            return if self.view.unseen(&fire.job_id, version) {
                Decision::Unverified
            } else {
                Decision::Withdraw { later: false }
            };
        };
        let wanted = known.active() && has_slot(&known.job, fire.slot);
        if !wanted {
            Decision::Withdraw { later: false }
        } else if held(&known.job) {
            Decision::Withdraw { later: true }
        } else if version < known.version {
            Decision::Restage(Planned {
                job: known.job.clone(),
                fire: fire.clone(),
                version: known.version,
            })
        } else {
            Decision::Keep
        }
    }

    /// An `Enqueue` of the fires of delayed and jittered jobs whose instant has come.
    fn send_later(
        &mut self,
        now: DateTime<Utc>,
        cfg: &Config,
        out: &mut Out,
    ) -> Option<(Action, Call)> {
        let mut fires = Vec::new();
        let mut dropped = 0;
        while fires.len() < cfg.max_batch {
            let Some(first) = self.later.first_entry() else {
                break;
            };
            if first.key().0 > now {
                break;
            }
            let fire = first.remove();
            match self.planned(&fire) {
                Some(p) => fires.push(p),
                None => dropped += 1,
            }
        }
        self.count_dropped(dropped, out);
        self.send(Op::Enqueue, now, fires)
    }

    /// An `Enqueue` (slots passed) or a `Stage` (slots to come) from the head of the outbox.
    fn send_outbox(
        &mut self,
        now: DateTime<Utc>,
        cfg: &Config,
        out: &mut Out,
    ) -> Option<(Action, Call)> {
        let mut fires = Vec::new();
        let mut dropped = 0;
        let mut direct = None;
        while fires.len() < cfg.max_batch {
            let Some(first) = self.outbox.first_entry() else {
                break;
            };
            let passed = first.key().0 <= now;
            if direct.is_some_and(|d| d != passed) {
                break;
            }
            let (key, fire) = first.remove_entry();
            let Some(p) = self.planned(&fire) else {
                dropped += 1;
                continue;
            };
            if let Some(at) = held_at(&p.job, fire.slot) {
                self.later.insert((at, key.1), fire);
                continue;
            }
            direct = Some(passed);
            fires.push(p);
        }
        self.count_dropped(dropped, out);
        if direct == Some(false) {
            // Remembered before the call: a stage whose answer is lost is still released.
            for p in &fires {
                self.staged.insert(&p.fire, p.version);
                if Some(p.fire.slot) == self.prepared {
                    self.prepared = None;
                }
            }
            self.send(Op::Stage, now, fires)
        } else {
            self.send(Op::Enqueue, now, fires)
        }
    }

    fn send(&self, op: Op, now: DateTime<Utc>, fires: Vec<Planned>) -> Option<(Action, Call)> {
        if fires.is_empty() {
            return None;
        }
        let call = Call::Send {
            op,
            fires: fires.iter().map(|p| (p.fire.clone(), p.version)).collect(),
            manual: None,
        };
        let token = self.token;
        let action = match op {
            Op::Stage => Action::Stage {
                token,
                at: now,
                fires,
            },
            _ => Action::Enqueue {
                token,
                at: now,
                fires,
            },
        };
        Some((action, call))
    }

    fn count_dropped(&self, dropped: u64, out: &mut Out) {
        if dropped > 0 {
            out.event(Event::Dropped { fires: dropped });
        }
    }

    /// The next staged slot, once it is within `prepare_ahead` and nothing is left to stage
    /// or change in it.
    fn to_prepare(&self, now: DateTime<Utc>, cfg: &Config) -> Option<DateTime<Utc>> {
        let slot = self.staged.first()?;
        let ahead = chrono::Duration::from_std(cfg.prepare_ahead).unwrap_or_default();
        let busy =
            self.outbox.keys().any(|k| k.0 == slot) || self.amends.keys().any(|k| k.0 == slot);
        (self.prepared != Some(slot) && slot > now && slot - ahead <= now && !busy).then_some(slot)
    }
}
