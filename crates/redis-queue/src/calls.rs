//! The values the queue's calls take and answer: plain types, no behaviour.
//!
//! A leaf of the crate (it imports none of it), so the scripts' calling convention
//! (`script/`) and the connection (`queue/`) both look down at it.
//! Expected outcomes (a duplicate, a fenced call, a fire not staged) are values here, never
//! errors.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cron_core::{Fire, Job};
use uuid::Uuid;

/// A fire to stage (or restage): its job's spec, and that spec's version (the job key's
/// ModifyIndex), recorded with the staged task so a later leader can tell a task staged with
/// an older spec.
#[derive(Debug, Clone)]
pub struct StageFire {
    /// The spec to build the task from.
    pub job: Arc<Job>,
    /// The fire.
    pub fire: Fire,
    /// The spec's version.
    pub version: u64,
}

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// The token is below the fence: a newer leader exists. Nothing of the refused calls was
    /// written. (A batch split into several calls can have earlier calls applied before a
    /// concurrent `raise_fence`; their fires are then on the queue, as they would be had the
    /// batch been sent a moment earlier.)
    Fenced {
        /// The fence now in Redis.
        fence: u64,
    },
    /// Every fire was handled; one outcome per fire, in input order.
    Done(Vec<FireOutcome>),
}

/// What became of one fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireOutcome {
    /// Pushed onto the queue (or the delayed set, or staged) by this call.
    Enqueued,
    /// Its slot was already enqueued (by an earlier call, another leader, or earlier in this
    /// batch); nothing was pushed.
    Duplicate,
}

/// What a release moved, per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleasedSlot {
    /// The slot whose staged tasks were moved.
    pub slot: DateTime<Utc>,
    /// How many tasks reached the queues (all priorities).
    pub tasks: u64,
}

/// What became of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The token is below the fence: a newer leader exists (and releases). The calls before
    /// the refused one were applied (each call is atomic).
    Fenced {
        /// The fence now in Redis.
        fence: u64,
    },
    /// Every staging list due was moved into its queue; one entry per slot, oldest first (a
    /// slot whose lists were all empty is answered with 0 tasks).
    Done(Vec<ReleasedSlot>),
}

/// What became of one fire of an amend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amended {
    /// Its staged task was removed; its dedupe mark too, and its job's cursor went back to
    /// what it was when the fire was staged, if it was past that.
    Withdrawn,
    /// Its staged task was replaced by the new one.
    Replaced,
    /// It is not staged. `queued`: its dedupe mark is set (its task is in the queue, or was
    /// enqueued directly); otherwise Redis has no trace of it.
    NotStaged {
        /// See above.
        queued: bool,
    },
}

/// What became of an amend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmendOutcome {
    /// The token is below the fence: nothing was changed by the refused call.
    Fenced {
        /// The fence now in Redis.
        fence: u64,
    },
    /// One outcome per withdrawn fire, then one per restaged fire, in input order.
    Done(Vec<Amended>),
}

/// What became of a history write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The token is below the fence.
    Fenced {
        /// The fence now in Redis.
        fence: u64,
    },
    /// Entries were written; `more` when released slots still wait for theirs.
    Done {
        /// See above.
        more: bool,
    },
}

/// What is staged and not yet released, as a new leader reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StagedState {
    /// Every slot in the staging index, oldest first.
    pub slots: Vec<DateTime<Utc>>,
    /// Every staged fire recorded with a meta (fires staged by an older cronnode have none).
    pub fires: Vec<StagedEntry>,
    /// Released slots whose history is not yet written.
    pub unrecorded: bool,
}

/// One staged fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedEntry {
    /// Its slot.
    pub slot: DateTime<Utc>,
    /// Its fire id.
    pub fire_id: Uuid,
    /// Its job.
    pub job_id: String,
    /// The version of the spec its task was built from.
    pub version: u64,
    /// The priority list it waits in.
    pub priority: u8,
}
