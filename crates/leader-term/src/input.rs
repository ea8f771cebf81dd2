//! What the driver tells the machine: the election's view, the job set's changes, commands
//! from the API, and (in `outcome`) the answer of each Redis call.
//!
//! Plain values, no behaviour. Must not: carry anything the machine would have to await.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cron_core::{Fire, Job};

/// What the election says about this node (consul-lock's `Leadership`, as plain values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// Not holding the lock.
    Follower,
    /// Holding the lock with this fencing token since `since`.
    Leader {
        /// The term's fencing token (the lock key's ModifyIndex after the acquiring write).
        token: u64,
        /// When the term started (the election's clock).
        since: DateTime<Utc>,
    },
}

/// One change of one job, as the store's watch (or an API node) reports it.
#[derive(Debug, Clone)]
pub enum JobEvent {
    /// The job exists with this spec. `version` is the ModifyIndex of its key: a spec with a
    /// version at or below one already known is stale and ignored.
    Upsert {
        /// The validated job.
        job: Arc<Job>,
        /// Its key's ModifyIndex.
        version: u64,
    },
    /// The job is gone (deleted, or no longer valid). `version` is the newest version the
    /// reporter knew of (the watch passes the index of the set that no longer has the job):
    /// a later `Upsert` at or below it is stale and ignored.
    Remove {
        /// The job id.
        id: Arc<str>,
        /// See above.
        version: u64,
    },
}

impl JobEvent {
    /// The job id the event is about.
    pub fn id(&self) -> &str {
        match self {
            JobEvent::Upsert { job, .. } => &job.spec.id,
            JobEvent::Remove { id, .. } => id,
        }
    }
}

/// A batch of job changes read from the store's watch at one Consul index.
#[derive(Debug, Clone, Default)]
pub struct JobUpdate {
    /// The Consul index the set was read at (`JobSet::index`). A job absent from a set read at
    /// or after the version of a staged fire was deleted after that fire was staged.
    pub index: u64,
    /// The changes since the previous update; at a term start, every job as an `Upsert`.
    pub events: Vec<JobEvent>,
}

/// Names a command so its [`crate::Reply`] finds its way back (the driver keeps the reply
/// channel under this id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandId(pub u64);

/// A request only a leader may carry out, from the API.
#[derive(Debug, Clone)]
pub enum Command {
    /// Enqueue one manual fire of `job` now. The fire (with its random id) is made by the
    /// caller, so the machine stays deterministic.
    ManualRun {
        /// The job, as the API just read it from the store.
        job: Arc<Job>,
        /// `Fire::manual(job id, request instant)`.
        fire: Fire,
    },
    /// Set the Redis fence to this term's token (`cronnode fence reset --yes`).
    ResetFence,
    /// The API has just written this change to the store: apply it now rather than when the
    /// watch brings it, and answer once no staged task carries the old spec.
    JobChanged(JobEvent),
    /// Enqueue these past slots of a job (`POST /v1/cronjobs/{id}/backfill`), in batches,
    /// each with its slot's fire id (so a slot enqueued before is answered `Duplicate` and
    /// not enqueued again), and answer with what each became. Slots the term still holds
    /// (to be sent, staged, or waiting for their instant) are left to it.
    Backfill {
        /// The job id.
        job: Arc<str>,
        /// The slots, oldest first (the caller checked the range: past, bounded).
        slots: Vec<DateTime<Utc>>,
    },
}
