//! What the machine asks of the driver ([`Action`]), and what it tells it ([`Event`],
//! [`Status`], [`Reply`]).
//!
//! Plain values, no behaviour. Must not: name a Redis key or a script (the driver's
//! redis-queue owns those).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cron_core::{Fire, Job};

use crate::input::CommandId;

/// A fire with the spec to build its task from.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The job's spec at the moment the action was made.
    pub job: Arc<Job>,
    /// The slot (and its fire id).
    pub fire: Fire,
    /// The spec's version (its key's ModifyIndex; 0 for a manual run): a staged task records
    /// it, so a later leader can tell a task staged with an older spec.
    pub version: u64,
}

/// One thing for the driver to do. Every variant but [`Action::Reply`] is one call (to Redis:
/// one redis-queue method; `ReadJobIndex`: one read of the job store); its answer goes back
/// through [`crate::Leader::handle_outcome`].
#[derive(Debug, Clone)]
pub enum Action {
    /// Read the job store's index now, consistently ([`crate::Outcome::JobIndex`]): the term
    /// plans nothing until it holds a job set read at that index or later, so every job write
    /// answered before the term began is in its view.
    ReadJobIndex,
    /// Raise the fence to `token` if it is higher; answer the fence now
    /// ([`crate::Outcome::FenceRaised`]).
    RaiseFence {
        /// This term's token.
        token: u64,
    },
    /// Set the fence to exactly `token` (an operator's reset; [`crate::Outcome::FenceReset`]).
    ResetFence {
        /// This term's token.
        token: u64,
    },
    /// Read what earlier leaders staged and nobody released yet: the staged slots and, per
    /// staged fire, its job and the version of the spec it was staged with; and whether
    /// released slots still wait for their history ([`crate::Outcome::StagedRead`]).
    ReadStaged,
    /// Read the cursors (last enqueued slot) of these jobs ([`crate::Outcome::Cursors`]).
    ReadCursors {
        /// The job ids.
        jobs: Vec<Arc<str>>,
    },
    /// Push these fires onto the queue now, fenced and deduplicated (`Queue::enqueue`;
    /// [`crate::Outcome::Sent`]). `at` is the call's instant (the tasks' `created_at`).
    Enqueue {
        /// This term's token.
        token: u64,
        /// The instant of the step that made the action.
        at: DateTime<Utc>,
        /// The fires, in order.
        fires: Vec<Planned>,
    },
    /// Stage these fires ahead of their slots (`Queue::stage`; [`crate::Outcome::Sent`]).
    /// Every slot is after `at`.
    Stage {
        /// This term's token.
        token: u64,
        /// The instant of the step that made the action (the base of the dedupe TTLs).
        at: DateTime<Utc>,
        /// The fires, in order.
        fires: Vec<Planned>,
    },
    /// Withdraw staged fires and replace the task of others with a newer spec, in one fenced
    /// call (`Queue::amend`; [`crate::Outcome::Amended`], one outcome per `withdraw` fire,
    /// then one per `restage` fire).
    Amend {
        /// This term's token.
        token: u64,
        /// Fires whose staged task must not reach the queue.
        withdraw: Vec<Fire>,
        /// Fires whose staged task must carry this spec instead.
        restage: Vec<Planned>,
    },
    /// Get ready to release `slot` quickly (`Queue::prepare_release`): an optimisation the
    /// driver may ignore; [`crate::Outcome::Prepared`].
    PrepareRelease {
        /// This term's token.
        token: u64,
        /// The staged slot to be released next.
        slot: DateTime<Utc>,
    },
    /// Move every staged task whose slot is at or before `until` into its queue
    /// (`Queue::release`; [`crate::Outcome::Released`]).
    Release {
        /// This term's token.
        token: u64,
        /// The instant of the step that made the action.
        until: DateTime<Utc>,
    },
    /// Write the history entries of released slots (`Queue::record_released`;
    /// [`crate::Outcome::Recorded`]). Not time-critical.
    RecordHistory {
        /// This term's token.
        token: u64,
    },
    /// Answer a command (no Redis call, no outcome).
    Reply {
        /// The command being answered.
        id: CommandId,
        /// The answer.
        reply: Reply,
    },
}

/// The answer to a [`crate::Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// To `ManualRun`.
    ManualRun(Result<ManualRunDone, CommandError>),
    /// To `ResetFence`: the fence now.
    FenceReset(Result<u64, CommandError>),
    /// To `JobChanged`.
    JobChanged(Result<ChangeApplied, CommandError>),
    /// To `Backfill`.
    Backfill(Result<BackfillDone, CommandError>),
}

/// What a backfill did with each slot it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillDone {
    /// The token the fires were enqueued with.
    pub token: u64,
    /// Slots enqueued now (never enqueued before).
    pub enqueued: Vec<DateTime<Utc>>,
    /// Slots Redis already had (enqueued before, by the schedule, a catch-up or a backfill).
    pub already: Vec<DateTime<Utc>>,
    /// Slots the term itself still holds (about to be enqueued, staged, or waiting for their
    /// jittered instant): they fire on their own.
    pub held: Vec<DateTime<Utc>>,
    /// Slots not sent: the job is paused or gone, or the slot is no longer one of its slots
    /// (the spec changed), or the task could not be built.
    pub dropped: Vec<DateTime<Utc>>,
}

/// A manual fire that Redis answered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualRunDone {
    /// The fire.
    pub fire: Fire,
    /// The token it was enqueued with.
    pub token: u64,
    /// `false` when Redis said it was a duplicate (cannot happen with a fresh id, but reported).
    pub enqueued: bool,
}

/// What a job change did to the fires staged for the job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeApplied {
    /// Staged tasks that will not reach the queue (job paused, deleted, or slot no longer in
    /// its schedule).
    pub withdrawn: usize,
    /// Staged tasks whose task now carries the new spec.
    pub restaged: usize,
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// This node does not lead (any more).
    NotLeader,
    /// The fence is above this leader's token; nothing is enqueued before a reset.
    FenceBlocked {
        /// The fence in Redis.
        fence: u64,
        /// This term's token.
        token: u64,
    },
    /// A newer leader raised the fence: this node was deposed.
    Fenced(u64),
    /// Redis failed; the message is Redis's or the client's.
    Redis(String),
}

/// What the machine is doing, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not holding the lock, or deposed and waiting for the election to notice.
    Follower,
    /// Holding the lock and enqueueing.
    Leading {
        /// This term's token.
        token: u64,
        /// When the term started.
        since: DateTime<Utc>,
    },
    /// Holding the lock, but the Redis fence is above our token.
    FenceBlocked {
        /// This term's token.
        token: u64,
        /// When the term started.
        since: DateTime<Utc>,
        /// The fence found in Redis.
        fence: u64,
    },
}

/// Which call an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// [`Action::ReadJobIndex`].
    JobIndex,
    /// [`Action::RaiseFence`].
    RaiseFence,
    /// [`Action::ResetFence`].
    ResetFence,
    /// [`Action::ReadStaged`].
    ReadStaged,
    /// [`Action::ReadCursors`].
    Cursors,
    /// [`Action::Enqueue`].
    Enqueue,
    /// [`Action::Stage`].
    Stage,
    /// [`Action::Amend`].
    Amend,
    /// [`Action::Release`].
    Release,
    /// [`Action::RecordHistory`].
    Record,
}

impl Op {
    /// A stable lower-case name (metrics labels, logs).
    pub fn name(self) -> &'static str {
        match self {
            Op::JobIndex => "job_index",
            Op::RaiseFence => "raise_fence",
            Op::ResetFence => "reset_fence",
            Op::ReadStaged => "staged_slots",
            Op::Cursors => "cursors",
            Op::Enqueue => "enqueue",
            Op::Stage => "stage",
            Op::Amend => "amend",
            Op::Release => "release",
            Op::Record => "record",
        }
    }
}

/// How a term ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermEnd {
    /// The election says we no longer lead (or lead with another token).
    Lost,
    /// A Redis script refused our token: a newer leader raised the fence.
    Deposed {
        /// The fence now in Redis.
        fence: u64,
    },
}

/// Something worth a log line or a metric. The machine never logs; the driver does.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A term started.
    TermStarted {
        /// Its token.
        token: u64,
        /// When.
        since: DateTime<Utc>,
    },
    /// A term ended.
    TermEnded {
        /// Its token.
        token: u64,
        /// Why.
        end: TermEnd,
    },
    /// The fence is above the term's token (Consul rebuilt?): nothing is enqueued until an
    /// operator resets it.
    FenceBlocked {
        /// This term's token.
        token: u64,
        /// The fence in Redis.
        fence: u64,
    },
    /// The fence was set to the term's token by an operator.
    FenceReset {
        /// This term's token.
        token: u64,
    },
    /// Slots staged by an earlier leader, now this term's to release.
    TakenOver {
        /// Staged slots.
        slots: usize,
        /// Staged fires among them (fires staged by a cronnode that recorded none are not
        /// counted).
        fires: usize,
        /// The oldest slot.
        first: DateTime<Utc>,
        /// The newest slot.
        last: DateTime<Utc>,
    },
    /// Missed slots found for jobs that were added, resumed, or new to this term.
    CatchUp {
        /// `true` for the term's first catch-up (every job).
        term_start: bool,
        /// Jobs whose cursor was read.
        jobs: usize,
        /// Jobs that had missed slots.
        jobs_behind: usize,
        /// Missed slots to enqueue.
        planned: u64,
        /// Missed slots the policy or the cap left out.
        skipped: u64,
    },
    /// What became of an `Enqueue` or `Stage`.
    Sent {
        /// Which.
        op: Op,
        /// New tasks enqueued or staged.
        enqueued: u64,
        /// Fires Redis already had.
        duplicate: u64,
        /// Fires whose job cannot become a task (dropped; see `Invalid`).
        invalid: u64,
    },
    /// Fires refused by the fence (the term ends).
    Fenced {
        /// How many fires the refused call carried.
        fires: u64,
    },
    /// Tasks reached the queue `seconds` after their slot (a scheduled fire enqueued late, or
    /// a staged slot released).
    Lateness {
        /// How late.
        seconds: f64,
        /// How many tasks.
        tasks: u64,
    },
    /// Staged tasks moved into the queues.
    Released {
        /// Slots released.
        slots: usize,
        /// Tasks moved.
        tasks: u64,
    },
    /// Staged tasks withdrawn or restaged after a job change.
    Amended {
        /// Withdrawn.
        withdrawn: u64,
        /// Restaged with the new spec.
        restaged: u64,
        /// Asked for, but no longer staged (released already, or never staged).
        not_staged: u64,
    },
    /// Fires dropped before being sent: their job was paused, deleted, or no longer has their
    /// slot.
    Dropped {
        /// How many.
        fires: u64,
    },
    /// A job whose fires Redis could not be given (the driver found it cannot become a task).
    Invalid {
        /// The job id.
        job: Arc<str>,
    },
    /// A call failed; the same call (the same fire ids) is made again after `retry_in`.
    CallFailed {
        /// Which call.
        op: Op,
        /// The error, as the client said it.
        error: String,
        /// How long until the next Redis call.
        retry_in: Duration,
    },
}
