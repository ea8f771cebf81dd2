//! The answers of Redis calls: what each one changes in the term.
//!
//! A failed call changes nothing but the backoff: its fires go back where they were, so the
//! next attempt carries the same fire ids (a call whose answer was lost and that was applied
//! is then answered `Duplicate`, or found staged). A call refused by the fence ends the term.

use chrono::{DateTime, Utc};
use cron_core::FireKind;

use super::{Call, Phase, Term};
use crate::backoff::Backoff;
use crate::outcome::{AmendOutcome, FireOutcome, Outcome, Refused, ReleasedSlot, StagedRead};
use crate::output::{CommandError, Event, ManualRunDone, Op, Reply, TermEnd};
use crate::Out;

impl Term {
    /// Applies the answer of `call`; `Some` when it ends the term.
    pub(crate) fn outcome(
        &mut self,
        now: DateTime<Utc>,
        call: Call,
        outcome: Outcome,
        backoff: &mut Backoff,
        out: &mut Out,
    ) -> Option<TermEnd> {
        let op = call.op();
        let fenced = call.fenced();
        let result = match (call, outcome) {
            (Call::Prove, Outcome::FenceRaised(r)) => r.and_then(|fence| {
                if fence > self.token {
                    Err(Refused::Fenced { fence })
                } else {
                    Ok(())
                }
            }),
            (Call::RaiseFence, Outcome::FenceRaised(r)) => {
                r.map(|fence| self.fence_raised(fence, out))
            }
            (Call::ResetFence { replies }, Outcome::FenceReset(r)) => {
                let answer = match &r {
                    Ok(()) => Ok(self.token),
                    Err(Refused::Failed(e)) => Err(CommandError::Redis(e.clone())),
                    Err(Refused::Fenced { fence }) => Err(CommandError::Fenced(*fence)),
                };
                for id in replies {
                    out.reply(id, Reply::FenceReset(answer.clone()));
                }
                r.map(|()| self.fence_reset(out))
            }
            (Call::ReadStaged, Outcome::StagedRead(r)) => r.map(|read| self.staged_read(read, out)),
            (Call::JobIndex, Outcome::JobIndex(r)) => r.map(|index| {
                self.job_index = index;
                self.phase = Phase::Running;
            }),
            (Call::Cursors(ids), Outcome::Cursors(r)) => r.map(|cursors| {
                self.caught_up(now, &ids, &cursors, out);
            }),
            (Call::Send { op, fires, manual }, Outcome::Sent(r)) => {
                match (&r, manual) {
                    (Ok(outcomes), Some(id)) => {
                        let fire = fires.first().map(|(f, _)| f.clone());
                        if let Some(fire) = fire {
                            let enqueued = outcomes.first() == Some(&FireOutcome::Enqueued);
                            let done = ManualRunDone {
                                fire,
                                token: self.token,
                                enqueued,
                            };
                            out.reply(id, Reply::ManualRun(Ok(done)));
                        }
                    }
                    (Err(Refused::Failed(e)), Some(id)) => {
                        // Not retried: the user asked once and is told it failed.
                        out.reply(id, Reply::ManualRun(Err(CommandError::Redis(e.clone()))));
                    }
                    (Err(Refused::Failed(_)), None) => {
                        // The same fires again after the backoff, from where they were (a held
                        // fire back in `later`, ahead of its job's next ones); staged ones stay
                        // remembered.
                        for (fire, _) in &fires {
                            if op == Op::Stage {
                                self.outbox.insert((fire.slot, fire.fire_id), fire.clone());
                            } else {
                                self.hold(fire.clone());
                            }
                        }
                    }
                    (Err(Refused::Fenced { fence }), Some(id)) => {
                        out.reply(id, Reply::ManualRun(Err(CommandError::Fenced(*fence))));
                    }
                    _ => {}
                }
                if let Err(Refused::Fenced { .. }) = &r {
                    out.event(Event::Fenced {
                        fires: fires.len() as u64,
                    });
                }
                r.map(|outcomes| self.sent(now, op, &fires, &outcomes, out))
            }
            (Call::Backfill(fires), Outcome::Sent(r)) => {
                self.backfill_sent(&fires, &r, out);
                r.map(|outcomes| self.sent(now, Op::Enqueue, &fires, &outcomes, out))
            }
            (Call::Amend { withdraw, restage }, Outcome::Amended(r)) => {
                if r.is_err() {
                    for f in withdraw.iter().chain(restage.iter().map(|(f, _)| f)) {
                        self.amends.insert((f.slot, f.fire_id), f.clone());
                    }
                }
                r.map(|outcomes| self.amended(&withdraw, &restage, &outcomes, out))
            }
            (Call::Prepare, Outcome::Prepared { .. }) => Ok(()),
            (Call::Release(until), Outcome::Released(r)) => {
                r.map(|slots| self.released(now, until, &slots, out))
            }
            (Call::Record, Outcome::Recorded(r)) => r.map(|more| self.unrecorded = more),
            (call, outcome) => Err(Refused::Failed(format!(
                "the driver answered {:?} with {outcome:?}",
                call.op()
            ))),
        };
        if fenced {
            self.proof_answered(result.is_ok());
        }
        match result {
            Ok(()) => {
                backoff.succeeded();
                None
            }
            Err(Refused::Fenced { fence }) => Some(TermEnd::Deposed { fence }),
            Err(Refused::Failed(error)) => {
                let retry_in = backoff.failed(now);
                out.event(Event::CallFailed {
                    op,
                    error,
                    retry_in,
                });
                None
            }
        }
    }

    fn fence_raised(&mut self, fence: u64, out: &mut Out) {
        if fence > self.token {
            // Consul was rebuilt: its indexes started again below the fence. Enqueueing is
            // impossible (every script would refuse) and lowering the fence on our own would
            // re-open the door to a deposed leader of the old cluster: an operator decides.
            self.phase = Phase::Blocked { fence };
            out.event(Event::FenceBlocked {
                token: self.token,
                fence,
            });
        } else {
            self.phase = Phase::ReadStaged;
        }
    }

    fn fence_reset(&mut self, out: &mut Out) {
        if let Phase::Blocked { .. } = self.phase {
            self.phase = Phase::ReadStaged;
            out.event(Event::FenceReset { token: self.token });
        }
    }

    /// What earlier leaders staged is ours to release; every fire of it is checked against
    /// the view (a change the earlier leader did not apply is applied now).
    fn staged_read(&mut self, read: StagedRead, out: &mut Out) {
        for slot in &read.slots {
            self.staged.add_slot(*slot);
        }
        for f in &read.fires {
            let fire = cron_core::Fire {
                job_id: f.job_id.as_str().into(),
                slot: f.slot,
                fire_id: f.fire_id,
                kind: FireKind::Scheduled,
            };
            self.staged.insert(&fire, f.version);
            self.amends.insert((f.slot, f.fire_id), fire);
        }
        if let (Some(first), Some(last)) = (read.slots.first(), read.slots.last()) {
            out.event(Event::TakenOver {
                slots: read.slots.len(),
                fires: read.fires.len(),
                first: *first,
                last: *last,
            });
        }
        self.unrecorded |= read.unrecorded;
        self.phase = Phase::ReadJobIndex;
    }

    /// Cursors read: the jobs join the planner, and their missed slots by policy go out.
    fn caught_up(
        &mut self,
        now: DateTime<Utc>,
        ids: &[std::sync::Arc<str>],
        cursors: &std::collections::HashMap<String, DateTime<Utc>>,
        out: &mut Out,
    ) {
        let (mut planned, mut skipped, mut behind, mut jobs) = (0u64, 0u64, 0usize, 0usize);
        for id in ids {
            // Paused or removed while the cursors were read: nothing to plan.
            if !self.awaiting.remove(id) {
                continue;
            }
            let Some(known) = self.view.get(id).filter(|k| k.active()) else {
                continue;
            };
            jobs += 1;
            self.planner.upsert(known.job.clone(), now);
            // No cursor: never enqueued; the planner catches it up from its creation.
            let plan = self.planner.catch_up(id, cursors.get(&**id).copied(), now);
            if !plan.fires.is_empty() || plan.skipped > 0 {
                behind += 1;
            }
            planned += plan.fires.len() as u64;
            skipped += plan.skipped;
            for fire in plan.fires {
                self.route(fire);
            }
        }
        out.event(Event::CatchUp {
            term_start: !self.caught_up,
            jobs,
            jobs_behind: behind,
            planned,
            skipped,
        });
        self.caught_up = true;
    }

    fn sent(
        &mut self,
        now: DateTime<Utc>,
        op: Op,
        fires: &[(cron_core::Fire, u64)],
        outcomes: &[FireOutcome],
        out: &mut Out,
    ) {
        let (mut enqueued, mut duplicate, mut invalid) = (0, 0, 0);
        for ((fire, version), outcome) in fires.iter().zip(outcomes) {
            let key = (fire.slot, fire.fire_id);
            match outcome {
                FireOutcome::Enqueued => {
                    enqueued += 1;
                    if op == Op::Stage {
                        self.staged.set_version(key, *version);
                    } else if fire.kind == FireKind::Scheduled {
                        // Against the instant the fire was due: the jittered one, if any.
                        let due = self
                            .view
                            .get(&fire.job_id)
                            .map_or(fire.slot, |k| k.job.fire_at(fire.slot));
                        let late = (now - due).num_microseconds().unwrap_or(i64::MAX);
                        out.event(Event::Lateness {
                            seconds: late as f64 / 1e6,
                            tasks: 1,
                        });
                    }
                }
                FireOutcome::Duplicate => duplicate += 1,
                FireOutcome::Invalid => {
                    invalid += 1;
                    if op == Op::Stage {
                        self.staged.remove(key);
                    }
                    out.event(Event::Invalid {
                        job: fire.job_id.clone(),
                    });
                }
            }
        }
        out.event(Event::Sent {
            op,
            enqueued,
            duplicate,
            invalid,
        });
    }

    fn amended(
        &mut self,
        withdraw: &[cron_core::Fire],
        restage: &[(cron_core::Fire, u64)],
        outcomes: &[AmendOutcome],
        out: &mut Out,
    ) {
        let (mut withdrawn, mut restaged, mut not_staged) = (0, 0, 0);
        let asked = withdraw
            .iter()
            .map(|f| (f, None))
            .chain(restage.iter().map(|(f, v)| (f, Some(*v))));
        for ((fire, restage_version), outcome) in asked.zip(outcomes) {
            let key = (fire.slot, fire.fire_id);
            match outcome {
                AmendOutcome::Withdrawn => {
                    withdrawn += 1;
                    self.staged.remove(key);
                    self.count_applied(&fire.job_id, true);
                }
                AmendOutcome::Replaced => {
                    restaged += 1;
                    if let Some(v) = restage_version {
                        self.staged.set_version(key, v);
                    }
                    self.count_applied(&fire.job_id, false);
                }
                AmendOutcome::NotStaged { queued } => {
                    not_staged += 1;
                    self.staged.remove(key);
                    // Wanted, and Redis has no trace of it (a stage whose answer was lost and
                    // that was not applied): stage it now.
                    if restage_version.is_some() && !queued {
                        self.outbox.insert(key, fire.clone());
                    }
                }
            }
        }
        out.event(Event::Amended {
            withdrawn,
            restaged,
            not_staged,
        });
    }

    fn released(
        &mut self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        slots: &[ReleasedSlot],
        out: &mut Out,
    ) {
        for key in self.staged.release(until) {
            self.amends.remove(&key);
            self.unverified.remove(&key);
        }
        if self.prepared.is_some_and(|p| p <= until) {
            self.prepared = None;
        }
        let mut tasks = 0;
        for s in slots {
            tasks += s.tasks;
            if s.tasks > 0 {
                let late = (now - s.slot).num_microseconds().unwrap_or(i64::MAX);
                out.event(Event::Lateness {
                    seconds: late as f64 / 1e6,
                    tasks: s.tasks,
                });
            }
        }
        out.event(Event::Released {
            slots: slots.len(),
            tasks,
        });
        self.unrecorded = true;
    }
}
