//! The answers of the Redis calls, as the driver hands them back
//! ([`crate::Leader::handle_outcome`]).
//!
//! One variant per [`crate::Action`] that calls Redis. Every call can fail
//! ([`Refused::Failed`]: refused, unreachable, or an answer lost on the way, which the machine
//! treats alike: the same call is made again after a backoff), and every fenced write can be
//! refused by the fence ([`Refused::Fenced`]: the term ends). Plain values, no behaviour.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Why a call did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The script refused the token: a newer leader raised the fence to this. Nothing of the
    /// refused call was written.
    Fenced {
        /// The fence now in Redis.
        fence: u64,
    },
    /// The call failed, or its answer was lost (it may or may not have been applied). The
    /// message is for logs only: the machine never looks inside it.
    Failed(String),
}

/// The answer of one call.
pub type Answer<T> = Result<T, Refused>;

/// The answer to the last [`crate::Action`] (other than `Reply`).
#[derive(Debug, Clone)]
pub enum Outcome {
    /// To `ReadJobIndex`: the job store's index now.
    JobIndex(Answer<u64>),
    /// To `RaiseFence`: the fence now (ours, or a higher one).
    FenceRaised(Answer<u64>),
    /// To `ResetFence`.
    FenceReset(Answer<()>),
    /// To `ReadStaged`.
    StagedRead(Answer<StagedRead>),
    /// To `ReadCursors`: the last enqueued slot of each job that has one.
    Cursors(Answer<HashMap<String, DateTime<Utc>>>),
    /// To `Enqueue` or `Stage`: one outcome per fire, in order.
    Sent(Answer<Vec<FireOutcome>>),
    /// To `Amend`: one outcome per withdrawn fire, then one per restaged fire, in order.
    Amended(Answer<Vec<AmendOutcome>>),
    /// To `PrepareRelease`: whether a fast release is ready (a failure is just `false`).
    Prepared {
        /// Whether the driver holds a prepared release of the slot.
        ready: bool,
    },
    /// To `Release`: what was moved, per slot, oldest first.
    Released(Answer<Vec<ReleasedSlot>>),
    /// To `RecordHistory`: whether released slots still wait for their history.
    Recorded(Answer<bool>),
}

/// What became of one fire of an `Enqueue` or a `Stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireOutcome {
    /// Pushed (or staged) by this call.
    Enqueued,
    /// Redis already had its slot (an earlier call, another leader, or earlier in the batch).
    Duplicate,
    /// Its job cannot become a task (no image, a bad header...): not sent; the machine drops
    /// the fire. The driver checks this before the call.
    Invalid,
}

/// What became of one fire of an `Amend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmendOutcome {
    /// Its staged task was removed: it will not reach the queue.
    Withdrawn,
    /// Its staged task now carries the new spec.
    Replaced,
    /// It is not staged. `queued` is `true` when its slot was enqueued all the same (its
    /// task is in the queue already: released, or enqueued directly), `false` when Redis has
    /// no trace of it (never staged, or withdrawn).
    NotStaged {
        /// See above.
        queued: bool,
    },
}

/// What a release moved for one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleasedSlot {
    /// The slot.
    pub slot: DateTime<Utc>,
    /// Tasks that reached the queues.
    pub tasks: u64,
}

/// What earlier leaders left staged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StagedRead {
    /// Every slot with staged tasks, oldest first.
    pub slots: Vec<DateTime<Utc>>,
    /// Every staged fire whose stager recorded it (job and spec version).
    pub fires: Vec<StagedFire>,
    /// Released slots whose history entries are still to be written.
    pub unrecorded: bool,
}

/// One staged fire, as recorded by the leader that staged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFire {
    /// Its slot.
    pub slot: DateTime<Utc>,
    /// Its fire id.
    pub fire_id: Uuid,
    /// Its job.
    pub job_id: String,
    /// The version of the spec its task was built from.
    pub version: u64,
}
