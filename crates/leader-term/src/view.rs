//! The term's view of the job set: the newest spec of every job and its version, whichever
//! way it came (the store's watch, or an API node telling the leader at once).
//!
//! Versions are the ModifyIndex of the job's key, so the two ways can arrive in any order:
//! a spec at or below a known version is stale and ignored, and a removed job leaves a
//! tombstone so a late, stale `Upsert` cannot bring it back. Must not plan anything.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cron_core::Job;

use crate::input::JobEvent;

/// One job as the view holds it.
#[derive(Debug, Clone)]
pub(crate) struct Known {
    pub(crate) job: Arc<Job>,
    pub(crate) version: u64,
}

impl Known {
    pub(crate) fn active(&self) -> bool {
        !self.job.spec.paused
    }
}

/// What applying an event changed.
pub(crate) struct Applied {
    /// The job id (shared with the planner's fires).
    pub(crate) id: Arc<str>,
    /// As it has it now.
    pub(crate) new: Option<Known>,
}

#[derive(Debug, Default)]
pub(crate) struct View {
    jobs: HashMap<Arc<str>, Known>,
    /// Removed jobs: the newest version known at removal.
    tombstones: HashMap<Arc<str>, u64>,
    /// The index of the newest job set read from the watch.
    pub(crate) index: u64,
    /// Whether the watch's first set (every job) arrived in this term.
    pub(crate) loaded: bool,
}

impl View {
    pub(crate) fn get(&self, id: &str) -> Option<&Known> {
        self.jobs.get(id)
    }

    /// Applies one event; `None` when it is stale (or changes nothing).
    pub(crate) fn apply(&mut self, event: JobEvent) -> Option<Applied> {
        match event {
            JobEvent::Upsert { job, version } => {
                let id = job.spec.id.as_str();
                let known = self.jobs.get(id).map_or(0, |k| k.version);
                let dead = self.tombstones.get(id).copied().unwrap_or(0);
                if version <= known || version <= dead {
                    return None;
                }
                let id: Arc<str> = match self.jobs.get_key_value(id) {
                    Some((k, _)) => k.clone(),
                    None => Arc::from(id),
                };
                self.tombstones.remove(&id);
                let new = Known { job, version };
                self.jobs.insert(id.clone(), new.clone());
                Some(Applied { id, new: Some(new) })
            }
            JobEvent::Remove { id, version } => {
                let (id, old) = self.jobs.remove_entry(&*id)?;
                let dead = version.max(old.version);
                let t = self.tombstones.entry(id.clone()).or_default();
                *t = (*t).max(dead);
                Some(Applied { id, new: None })
            }
        }
    }

    /// Whether a job the view does not hold may still exist for a fire staged with spec
    /// `version`: the view is older than that stage, and no removal newer than it is known.
    pub(crate) fn unseen(&self, id: &str, version: u64) -> bool {
        !self.jobs.contains_key(id)
            && self.index < version
            && self.tombstones.get(id).is_none_or(|t| *t < version)
    }
}

/// Whether `slot` is one of `job`'s slots (inside its `start_at` and `end_at`).
pub(crate) fn has_slot(job: &Job, slot: DateTime<Utc>) -> bool {
    job.has_slot(slot)
}

/// The instant a fire of `job` at `slot` is enqueued at, for a job whose fires are held in
/// the term (never staged): a delayed job's slot (a staged delayed task could not be
/// withdrawn), a jittered job's jittered instant (jitter spreads a burst, so there is none to
/// stage ahead of). `None` for a job whose fires are staged. Such fires wait in the term's
/// `later`, keyed by this instant, even when it has passed (a catch-up, a failed call): one
/// job's fires then reach the queue in slot order, so its cursor (advanced by each enqueue)
/// never passes a slot still waiting, which a successor's catch-up would skip.
pub(crate) fn held_at(job: &Job, slot: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if delayed(job) {
        Some(slot)
    } else if job.jitter().is_some() {
        Some(job.fire_at(slot))
    } else {
        None
    }
}

/// Whether `job`'s fires are never staged (see [`held_at`]).
pub(crate) fn held(job: &Job) -> bool {
    delayed(job) || job.jitter().is_some()
}

/// Whether `job`'s tasks wait in the platform's delayed set: such fires are never staged
/// (a staged delayed task could not be withdrawn), they are enqueued at their slot.
pub(crate) fn delayed(job: &Job) -> bool {
    job.spec.function.delay.unwrap_or(0) > 0
}
