//! One leadership term: its state, and the order of its work.
//!
//! A term goes through phases: raise the fence ([`Phase::RaiseFence`]); wait for an
//! operator's reset if the fence is above the token ([`Phase::Blocked`]); read what earlier
//! leaders staged ([`Phase::ReadStaged`]); read the job store's index
//! ([`Phase::ReadJobIndex`]); then run ([`Phase::Running`]), but only once it holds a job set
//! read at that index or later: every job write answered before the term began is then in its
//! view (the watch may lag a change that no leader was there to be told of). Running, each step does the most urgent thing first (`poll.rs`):
//! withdraw or restage staged tasks of a changed job whose slot is due, release due slots,
//! enqueue fires due now, apply other changes, reset the fence, manual runs, enqueue or
//! stage what the planner gives within the lookahead, read the cursors of jobs to catch up,
//! prepare the next release, write the history of released slots.
//!
//! The term keeps every fire it has not yet seen reach the queue: the outbox (to be sent),
//! `later` (fires of delayed jobs, enqueued at their slot), and [`Staged`]. A fire carries
//! no spec: the newest one in the [`View`] is looked up when a call is made, so a fire held
//! across a job change goes out with the new spec, or not at all.
//!
//! `changes.rs` applies job changes; `outcomes.rs` applies the answers of Redis calls.

mod backfill;
mod changes;
mod outcomes;
mod poll;
mod recover;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cron_core::{Fire, FireKind, Job, Planner};

use crate::input::CommandId;
use crate::output::{ChangeApplied, CommandError, Op, Planned, Reply};
use crate::staged::{Key, Staged};
use crate::view::{has_slot, held_at, View};
use crate::Out;

/// Where a term is in its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The fence must be raised to the token first.
    RaiseFence,
    /// The fence is above the token: only an operator's reset lets the term go on.
    Blocked { fence: u64 },
    /// What earlier leaders staged must be read before anything is released or staged.
    ReadStaged,
    /// The job store's index at the term's start must be known.
    ReadJobIndex,
    /// The steady state.
    Running,
}

/// A Redis call in flight, with what its answer needs.
#[derive(Debug, Clone)]
pub(crate) enum Call {
    RaiseFence,
    ResetFence {
        replies: Vec<CommandId>,
    },
    ReadStaged,
    JobIndex,
    Cursors(Vec<Arc<str>>),
    Send {
        op: Op,
        /// The fires and the spec version each was sent with.
        fires: Vec<(Fire, u64)>,
        /// A manual run's command.
        manual: Option<CommandId>,
    },
    Amend {
        withdraw: Vec<Fire>,
        restage: Vec<(Fire, u64)>,
    },
    /// A batch of the first backfill's fires.
    Backfill(Vec<(Fire, u64)>),
    Prepare,
    Release(DateTime<Utc>),
    Record,
    /// A fenced call that only proves the term is still the newest (`Action::RaiseFence`).
    Prove,
}

impl Call {
    pub(crate) fn op(&self) -> Op {
        match self {
            Call::RaiseFence => Op::RaiseFence,
            Call::ResetFence { .. } => Op::ResetFence,
            Call::ReadStaged => Op::ReadStaged,
            Call::JobIndex => Op::JobIndex,
            Call::Cursors(_) => Op::Cursors,
            Call::Send { op, .. } => *op,
            Call::Backfill(_) => Op::Enqueue,
            Call::Amend { .. } => Op::Amend,
            Call::Prepare | Call::Release(_) => Op::Release,
            Call::Record => Op::Record,
            Call::Prove => Op::RaiseFence,
        }
    }

    /// Whether the call runs the fence check (a success proves the term the newest then).
    pub(crate) fn fenced(&self) -> bool {
        matches!(
            self,
            Call::Send { .. }
                | Call::Backfill(_)
                | Call::Amend { .. }
                | Call::Release(_)
                | Call::Record
                | Call::Prove
        )
    }
}

/// An API node waiting for a job change to be applied.
#[derive(Debug)]
struct Waiter {
    id: CommandId,
    job: Arc<str>,
    applied: ChangeApplied,
    proof: Proof,
}

/// Whether a fenced call made after a change was applied has succeeded: only then is the term
/// known to be the newest when it answers (an older leader that does not know it was deposed
/// would otherwise answer for a newer one still planning on the old spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proof {
    Needed,
    /// The call in flight proves it if it succeeds.
    InFlight,
    Done,
}

/// The state of one term.
pub(crate) struct Term {
    pub(crate) token: u64,
    pub(crate) since: DateTime<Utc>,
    pub(crate) phase: Phase,
    /// How far ahead of a slot its fire is staged.
    lookahead: chrono::Duration,
    /// The job store's index when the term began: no work before the view reaches it.
    job_index: u64,
    view: View,
    /// Jobs whose cursor was read, and that are active: their next slots.
    planner: Planner,
    /// Active jobs new to the term (or resumed) whose cursor is to be read; not in the
    /// planner until then, so nothing of theirs is planned before their catch-up.
    awaiting: BTreeSet<Arc<str>>,
    /// Whether the term's first catch-up was done.
    caught_up: bool,
    /// Fires to send, by slot: enqueued when their slot has passed, staged otherwise.
    outbox: BTreeMap<Key, Fire>,
    /// Fires of delayed and of jittered jobs, enqueued at their slot or jittered instant
    /// (the key's instant).
    later: BTreeMap<Key, Fire>,
    manual: VecDeque<(CommandId, Arc<Job>, Fire)>,
    /// Backfill requests, oldest first; the first is being sent (`backfill.rs`).
    backfills: VecDeque<backfill::Backfill>,
    resets: Vec<CommandId>,
    staged: Staged,
    /// Staged fires to check against the view (withdraw, restage, or keep), by slot.
    amends: BTreeMap<Key, Fire>,
    /// Staged fires of jobs the view does not hold yet, though it is older than their stage.
    unverified: BTreeSet<Key>,
    waiters: Vec<Waiter>,
    /// Released slots whose history is still to be written.
    unrecorded: bool,
    /// The slot the last `PrepareRelease` was for.
    prepared: Option<DateTime<Utc>>,
}

impl Term {
    pub(crate) fn new(token: u64, since: DateTime<Utc>, lookahead: chrono::Duration) -> Term {
        Term {
            token,
            since,
            phase: Phase::RaiseFence,
            lookahead,
            job_index: u64::MAX,
            view: View::default(),
            planner: Planner::new(),
            awaiting: BTreeSet::new(),
            caught_up: false,
            outbox: BTreeMap::new(),
            later: BTreeMap::new(),
            manual: VecDeque::new(),
            backfills: VecDeque::new(),
            resets: Vec::new(),
            staged: Staged::default(),
            amends: BTreeMap::new(),
            unverified: BTreeSet::new(),
            waiters: Vec::new(),
            unrecorded: false,
            prepared: None,
        }
    }

    /// The spec to send `fire` with now, or `None` when it must not be sent: its job is gone
    /// or paused, or (for a scheduled fire) no longer has its slot.
    fn planned(&self, fire: &Fire) -> Option<Planned> {
        let known = self.view.get(&fire.job_id)?;
        if !known.active() || (fire.kind != FireKind::Manual && !has_slot(&known.job, fire.slot)) {
            return None;
        }
        Some(Planned {
            job: known.job.clone(),
            fire: fire.clone(),
            version: known.version,
        })
    }

    /// Puts a fire where it waits to be sent (a fire already staged is left there).
    fn route(&mut self, fire: Fire) {
        let key = (fire.slot, fire.fire_id);
        if self.staged.get(key).is_some() {
            return;
        }
        self.hold(fire);
    }

    /// Puts a fire in `later` at its instant if its job's fires are held there (see
    /// [`held_at`]), else in the outbox.
    pub(crate) fn hold(&mut self, fire: Fire) {
        let at = self
            .view
            .get(&fire.job_id)
            .and_then(|k| held_at(&k.job, fire.slot));
        match at {
            Some(at) => self.later.insert((at, fire.fire_id), fire),
            None => self.outbox.insert((fire.slot, fire.fire_id), fire),
        };
    }

    /// A fenced call is being made: it proves the waiting API nodes' changes if it succeeds.
    pub(crate) fn proof_sent(&mut self) {
        for w in self.waiters.iter_mut().filter(|w| w.proof == Proof::Needed) {
            w.proof = Proof::InFlight;
        }
    }

    /// The fenced call in flight answered: `ok` when it succeeded.
    fn proof_answered(&mut self, ok: bool) {
        let to = if ok { Proof::Done } else { Proof::Needed };
        for w in self
            .waiters
            .iter_mut()
            .filter(|w| w.proof == Proof::InFlight)
        {
            w.proof = to;
        }
    }

    /// Answers every command still waiting: the term is over.
    pub(crate) fn end(&mut self, error: &CommandError, out: &mut Out) {
        for (id, _, _) in self.manual.drain(..) {
            out.reply(id, Reply::ManualRun(Err(error.clone())));
        }
        for id in self.resets.drain(..) {
            out.reply(id, Reply::FenceReset(Err(error.clone())));
        }
        for b in self.backfills.drain(..) {
            out.reply(b.id, Reply::Backfill(Err(error.clone())));
        }
        for w in self.waiters.drain(..) {
            out.reply(w.id, Reply::JobChanged(Err(error.clone())));
        }
    }

    /// Whether the view holds every job write answered before the term began.
    fn view_ready(&self) -> bool {
        self.view.loaded && self.view.index >= self.job_index
    }

    /// The earliest instant the term has something to do, ignoring the backoff; `None` when
    /// it waits for an input.
    pub(crate) fn next_work(&self, prepare: chrono::Duration) -> Option<DateTime<Utc>> {
        let now_work = Some(DateTime::<Utc>::MIN_UTC);
        match self.phase {
            Phase::RaiseFence | Phase::ReadStaged | Phase::ReadJobIndex => return now_work,
            Phase::Blocked { .. } => {
                return (!self.resets.is_empty()).then_some(DateTime::<Utc>::MIN_UTC)
            }
            Phase::Running => {}
        }
        if !self.view_ready() {
            return None;
        }
        let immediate = !self.amends.is_empty()
            || !self.resets.is_empty()
            || !self.manual.is_empty()
            || !self.backfills.is_empty()
            || !self.outbox.is_empty()
            || !self.awaiting.is_empty()
            || self.unrecorded
            || !self.waiters.is_empty();
        if immediate {
            return now_work;
        }
        let release = self.staged.first();
        let prepare = self
            .staged
            .first()
            .filter(|s| self.prepared != Some(*s))
            .map(|s| s - prepare);
        let stage = self.planner.next_wakeup().map(|t| t - self.lookahead);
        let later = self.later.keys().next().map(|k| k.0);
        [release, prepare, stage, later].into_iter().flatten().min()
    }
}
