//! The planner: every job's next slot, in a priority queue, with time as an argument.
//!
//! SKELETON: the cron-core issue implements this module. The public surface below is the
//! contract the daemon builds on.
//!
//! Inputs: [`Planner::upsert`], [`Planner::remove`]; outputs: [`Planner::due`],
//! [`Planner::next_wakeup`]; after a leader change or a resume: [`Planner::catch_up`].

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::{Fire, Job};

/// What a catch-up enqueues, and how many missed slots its policy or cap left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatchUpPlan {
    /// The missed slots to enqueue, oldest first.
    pub fires: Vec<Fire>,
    /// Missed slots not enqueued (policy `skip` or `latest`, or beyond the per-job cap).
    pub skipped: u64,
}

/// Holds the jobs and each job's next slot.
#[derive(Debug, Default)]
pub struct Planner {
    jobs: std::collections::HashMap<Arc<str>, Arc<Job>>,
}

impl Planner {
    /// An empty planner.
    pub fn new() -> Planner {
        Planner::default()
    }

    /// Adds or replaces a job. A new job's first slot is the first one strictly after `now`; a
    /// replaced job keeps its place (no slot repeated, none skipped).
    pub fn upsert(&mut self, job: Arc<Job>, now: DateTime<Utc>) {
        let _ = now;
        self.jobs.insert(Arc::from(job.spec.id.as_str()), job);
    }

    /// Forgets a job.
    pub fn remove(&mut self, job_id: &str) {
        self.jobs.remove(job_id);
    }

    /// The slots due at or before `now`, in slot order; each job advances past them.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<Fire> {
        let _ = now;
        Vec::new()
    }

    /// The earliest pending slot, when the caller should call [`Planner::due`] next.
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        None
    }

    /// The missed slots of `job_id` after `cursor` (its last enqueued slot) up to `now`, by
    /// the job's policy and window; the job's next slot becomes the first after `now`.
    pub fn catch_up(
        &mut self,
        job_id: &str,
        cursor: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> CatchUpPlan {
        let _ = (job_id, cursor, now);
        CatchUpPlan::default()
    }
}
