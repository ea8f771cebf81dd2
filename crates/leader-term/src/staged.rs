//! What the term believes is staged in Redis and not yet released: per slot, per fire, the
//! job and the version of the spec its task was built from.
//!
//! A slot enters when a stage call for it is *made* (remembered before the call, so a staged
//! batch whose answer is lost is still released), or when the term reads what its
//! predecessors staged; it leaves when a release moves it. A fire leaves when it is withdrawn,
//! or found not staged. The version is the oldest one a call may have staged it with, so a
//! doubt always errs toward restaging. Must not decide what to do about a change (the term
//! does).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cron_core::Fire;
use uuid::Uuid;

/// A slot and a fire id: orders fires by slot.
pub(crate) type Key = (DateTime<Utc>, Uuid);

/// One staged fire.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) fire: Fire,
    /// The oldest spec version its task may carry (0: unknown).
    pub(crate) version: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Staged {
    /// Unreleased slots. A slot with no fire is one whose stager recorded none (an older
    /// cronnode): it is released all the same.
    slots: BTreeMap<DateTime<Utc>, BTreeMap<Uuid, Entry>>,
    by_job: HashMap<Arc<str>, BTreeSet<Key>>,
}

impl Staged {
    /// The oldest unreleased slot.
    pub(crate) fn first(&self) -> Option<DateTime<Utc>> {
        self.slots.keys().next().copied()
    }

    pub(crate) fn add_slot(&mut self, slot: DateTime<Utc>) {
        self.slots.entry(slot).or_default();
    }

    /// Records `fire` as (maybe) staged with spec `version`; a fire already recorded keeps the
    /// older version.
    pub(crate) fn insert(&mut self, fire: &Fire, version: u64) {
        let fires = self.slots.entry(fire.slot).or_default();
        match fires.get_mut(&fire.fire_id) {
            Some(e) => e.version = e.version.min(version),
            None => {
                fires.insert(
                    fire.fire_id,
                    Entry {
                        fire: fire.clone(),
                        version,
                    },
                );
                self.by_job
                    .entry(fire.job_id.clone())
                    .or_default()
                    .insert((fire.slot, fire.fire_id));
            }
        }
    }

    /// Sets the version a fire's task is now known to carry.
    pub(crate) fn set_version(&mut self, key: Key, version: u64) {
        if let Some(e) = self.slots.get_mut(&key.0).and_then(|f| f.get_mut(&key.1)) {
            e.version = version;
        }
    }

    pub(crate) fn get(&self, key: Key) -> Option<&Entry> {
        self.slots.get(&key.0)?.get(&key.1)
    }

    /// Forgets one fire (its slot stays, to be released).
    pub(crate) fn remove(&mut self, key: Key) {
        let Some(e) = self.slots.get_mut(&key.0).and_then(|f| f.remove(&key.1)) else {
            return;
        };
        self.unindex(&e.fire.job_id, key);
    }

    fn unindex(&mut self, job: &str, key: Key) {
        if let Some(keys) = self.by_job.get_mut(job) {
            keys.remove(&key);
            if keys.is_empty() {
                self.by_job.remove(job);
            }
        }
    }

    /// Forgets every slot at or before `until` (released); answers the fires they held.
    pub(crate) fn release(&mut self, until: DateTime<Utc>) -> Vec<Key> {
        let mut gone = Vec::new();
        while let Some(entry) = self.slots.first_entry() {
            if *entry.key() > until {
                break;
            }
            let (slot, fires) = entry.remove_entry();
            for (id, e) in fires {
                self.unindex(&e.fire.job_id, (slot, id));
                gone.push((slot, id));
            }
        }
        gone
    }

    /// The staged fires of a job, oldest first.
    pub(crate) fn of_job(&self, job: &str) -> Vec<Key> {
        self.by_job
            .get(job)
            .map(|k| k.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The latest staged slot of a job.
    pub(crate) fn last_of_job(&self, job: &str) -> Option<DateTime<Utc>> {
        self.by_job.get(job)?.last().map(|k| k.0)
    }
}
