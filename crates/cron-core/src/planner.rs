//! The planner: every job's next slot, in a priority queue, with time as an argument.
//!
//! Inputs: [`Planner::upsert`] (adds, replaces, pauses and resumes: a job whose
//! `spec.paused` is set is held but never due), [`Planner::remove`]; outputs: [`Planner::due`],
//! [`Planner::next_wakeup`]; after a leader change or a resume: [`Planner::catch_up`].
//!
//! Call order for a leader: `upsert` every job with `now`, then `catch_up(id, cursor, now)` for
//! each with the cursor read from Redis, then loop: sleep until `next_wakeup()`, `due(now)`.
//!
//! Memory and cache misses are what 1,000,000 jobs cost: one 80-byte slab entry per job (its
//! `Arc<Job>`, its id as the `Arc<str>` every fire shares, a copy of its 32-byte compiled
//! schedule, its next slot, the last slot it gave out), an id index of 4-byte slab indices (a
//! hash table whose keys are read from the slab, so the index holds no copy of the id), and a
//! priority structure of 8-byte
//! `(index, generation)` items bucketed by slot second (an ordered map of slot to bucket). Jobs
//! firing at the same second share a bucket, so producing a second's fires walks one vector
//! instead of sifting a million-item heap. A changed entry pushes a new item and bumps its
//! generation; stale items are skipped when their bucket comes due (lazy invalidation), and the
//! buckets are rebuilt when stale items outnumber live ones. The first bucket always holds a
//! live item between calls, so [`Planner::next_wakeup`] needs no `&mut`.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use hashbrown::HashTable;

use crate::schedule::Slots;
use crate::{CatchUpPolicy, Fire, FireKind, Job};

/// The most missed slots one catch-up enqueues for one job (policy `all`). Older missed slots
/// beyond it are counted in [`CatchUpPlan::skipped`]: a job firing every second after a 7-day
/// outage would otherwise flood the queue with 604,800 calls.
pub const MAX_CATCHUP_PER_JOB: usize = 1000;

/// Items of a due bucket whose memory is fetched together before they are processed (see
/// `Planner::warm`): enough to overlap many cache misses, few enough to stay in L1/L2.
const WARM_CHUNK: usize = 64;

/// Stale items tolerated beyond the live ones before the buckets are rebuilt.
const STALE_SLACK: usize = 1024;

/// What a catch-up enqueues, and how many missed slots its policy or cap left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatchUpPlan {
    /// The missed slots to enqueue, oldest first.
    pub fires: Vec<Fire>,
    /// Missed slots inside the window not enqueued (policy `skip` or `latest`, or beyond the
    /// per-job cap). Slots older than the window are outside the catch-up and not counted.
    pub skipped: u64,
}

/// A slot as Unix seconds; slots are whole seconds.
type Secs = i64;

/// `Entry::next` of a job with no next slot (paused, or no slot ever again). No slot is this
/// late: slots are `DateTime`s, whose range ends hundreds of thousands of years earlier.
const NO_SLOT: Secs = Secs::MAX;

/// `Entry::floor` of a job that never gave out a slot: every slot is after it.
const NO_FLOOR: Secs = Secs::MIN;

/// One job in the slab. Sentinels instead of `Option`s keep it at 80 bytes.
#[derive(Debug)]
struct Entry {
    /// The job's id, shared by every fire (cloning it costs no allocation in `due`).
    id: Arc<str>,
    job: Arc<Job>,
    /// The job's compiled schedule, kept here so `due` does not chase the job's pointer: reading
    /// it through `job` saves 32 bytes a job but measured 20-30% more CPU time in `due`.
    slots: Slots,
    /// The next slot to give out, or [`NO_SLOT`].
    next: Secs,
    /// No slot at or before this is ever given out again: the last slot `due` returned, or the
    /// cursor of the last catch-up; [`NO_FLOOR`] before either.
    floor: Secs,
    /// Bumped whenever `next` changes, to recognise stale heap items.
    generation: u32,
}

impl Entry {
    fn next(&self) -> Option<Secs> {
        (self.next != NO_SLOT).then_some(self.next)
    }
}

/// Holds the jobs and each job's next slot.
#[derive(Debug, Default)]
pub struct Planner {
    /// Slab indices, hashed by their entry's id.
    index: HashTable<u32>,
    hasher: RandomState,
    slab: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Slot second → the `(index, generation)` of the jobs due then.
    buckets: BTreeMap<Secs, Vec<(u32, u32)>>,
    /// Items in `buckets`, live and stale.
    queued: usize,
    /// `end_at` second → the slab indices of the jobs that end then. `due` computes a next
    /// slot from the compiled schedule alone (reading each job's spec there costs a cache miss
    /// a fire); before it gives out a bucket, the jobs that ended before it are stopped here.
    /// Stale items (a job changed or removed since) are recognised by the job's own end.
    ends: BTreeMap<Secs, Vec<u32>>,
    /// The storage of the last bucket `due` emptied, for the next new bucket: buckets of
    /// jobs firing every minute are about the same size, so reusing one spares the growth by
    /// doubling (and the holes it leaves in the heap).
    spare: Vec<(u32, u32)>,
}

fn secs(t: DateTime<Utc>) -> Secs {
    t.timestamp()
}

fn instant(s: Secs) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The job's first slot after `after`, inside its life (`start_at`, `end_at`).
fn next_slot(job: &Job, after: Secs) -> Option<Secs> {
    job.next_after(DateTime::from_timestamp(after, 0)?)
        .map(secs)
}

/// The slab index of `id`, if held.
fn find(index: &HashTable<u32>, slab: &[Option<Entry>], hash: u64, id: &str) -> Option<u32> {
    index
        .find(hash, |&i| {
            slab.get(i as usize)
                .and_then(Option::as_ref)
                .is_some_and(|e| &*e.id == id)
        })
        .copied()
}

impl Planner {
    /// An empty planner.
    pub fn new() -> Planner {
        Planner::default()
    }

    /// How many jobs the planner holds (paused ones included).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the planner holds no job.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The job `job_id`, if held.
    pub fn job(&self, job_id: &str) -> Option<&Arc<Job>> {
        let i = self.find(job_id)?;
        self.entry(i).map(|e| &e.job)
    }

    /// The next slot the planner will give out for `job_id` (`None` when paused or unknown).
    pub fn next_slot(&self, job_id: &str) -> Option<DateTime<Utc>> {
        let i = self.find(job_id)?;
        self.entry(i)?.next().map(instant)
    }

    fn find(&self, job_id: &str) -> Option<u32> {
        find(
            &self.index,
            &self.slab,
            self.hasher.hash_one(job_id),
            job_id,
        )
    }

    fn entry(&self, i: u32) -> Option<&Entry> {
        self.slab.get(i as usize)?.as_ref()
    }

    fn entry_mut(&mut self, i: u32) -> Option<&mut Entry> {
        self.slab.get_mut(i as usize)?.as_mut()
    }

    /// Adds or replaces a job. A new job's first slot is the first one strictly after `now`. A
    /// replaced job keeps its place: with the same schedule its pending slot stays; with a new
    /// schedule its next slot is the new schedule's first after both `now` and the last slot
    /// given out, so none is repeated. Setting `spec.paused` pauses the job (it keeps its entry,
    /// never becomes due); clearing it resumes the job from its first slot after `now` (missed
    /// slots are the caller's to recover with [`Planner::catch_up`]).
    pub fn upsert(&mut self, job: Arc<Job>, now: DateTime<Utc>) {
        let now = secs(now);
        let Some(i) = self.find(&job.spec.id) else {
            self.insert(job, now);
            return;
        };
        let Some(e) = self.entry_mut(i) else {
            return;
        };
        let was_paused = e.job.spec.paused;
        let same = e.job.schedule == job.schedule;
        let old_life = e.job.life.clone();
        let pending = e.next();
        e.slots = job.schedule.slots();
        e.job = job;
        let same_life = same && old_life == e.job.life;
        let new_next = if e.job.spec.paused {
            None
        } else if same_life && !was_paused && pending.is_some() {
            pending
        } else {
            next_slot(&e.job, now.max(e.floor))
        };
        let end = e.job.end_at();
        self.set_next(i, new_next);
        self.watch_end(i, end);
        self.prune();
    }

    fn watch_end(&mut self, i: u32, end: Option<DateTime<Utc>>) {
        if let Some(end) = end {
            self.ends.entry(secs(end)).or_default().push(i);
        }
    }

    /// Stops the jobs whose `end_at` is before `slot` (see [`Planner::ends`]).
    fn stop_ended(&mut self, slot: Secs) {
        while let Some(first) = self.ends.first_entry() {
            if *first.key() >= slot {
                break;
            }
            let (end, items) = first.remove_entry();
            for i in items {
                let ended = self
                    .entry(i)
                    .is_some_and(|e| e.job.end_at().map(secs) == Some(end) && e.next > end);
                if ended {
                    self.set_next(i, None);
                }
            }
        }
    }

    fn insert(&mut self, job: Arc<Job>, now: Secs) {
        let id: Arc<str> = Arc::from(job.spec.id.as_str());
        let end = job.end_at();
        let next = if job.spec.paused {
            None
        } else {
            next_slot(&job, now)
        };
        let hash = self.hasher.hash_one(&*id);
        let entry = Entry {
            id,
            slots: job.schedule.slots(),
            job,
            next: next.unwrap_or(NO_SLOT),
            floor: NO_FLOOR,
            generation: 0,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(entry);
                i
            }
            None => {
                self.slab.push(Some(entry));
                u32::try_from(self.slab.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.index.insert_unique(hash, i, |&j| {
            slab.get(j as usize)
                .and_then(Option::as_ref)
                .map_or(0, |e| hasher.hash_one(&*e.id))
        });
        if let Some(s) = next {
            self.enqueue(s, i, 0);
        }
        self.watch_end(i, end);
    }

    fn enqueue(&mut self, slot: Secs, i: u32, generation: u32) {
        self.buckets.entry(slot).or_default().push((i, generation));
        self.queued += 1;
    }

    fn set_next(&mut self, i: u32, next: Option<Secs>) {
        let Some(e) = self.entry_mut(i) else {
            return;
        };
        let next_s = next.unwrap_or(NO_SLOT);
        if e.next == next_s {
            return;
        }
        e.next = next_s;
        e.generation = e.generation.wrapping_add(1);
        let g = e.generation;
        if let Some(s) = next {
            self.enqueue(s, i, g);
        }
    }

    /// Forgets a job.
    pub fn remove(&mut self, job_id: &str) {
        let hash = self.hasher.hash_one(job_id);
        let slab = &self.slab;
        let Ok(found) = self.index.find_entry(hash, |&i| {
            slab.get(i as usize)
                .and_then(Option::as_ref)
                .is_some_and(|e| &*e.id == job_id)
        }) else {
            return;
        };
        let (i, _) = found.remove();
        if let Some(slot) = self.slab.get_mut(i as usize) {
            *slot = None;
            self.free.push(i);
        }
        self.prune();
    }

    fn is_live(&self, slot: Secs, (i, g): (u32, u32)) -> bool {
        self.entry(i)
            .is_some_and(|e| e.generation == g && e.next == slot)
    }

    /// Drops leading buckets with no live item, and rebuilds when stale items pile up.
    fn prune(&mut self) {
        while let Some(mut first) = self.buckets.first_entry() {
            let slot = *first.key();
            let bucket = first.get_mut();
            let live = bucket.iter().position(|&it| {
                self.slab
                    .get(it.0 as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| e.generation == it.1 && e.next == slot)
            });
            match live {
                Some(0) => break,
                Some(k) => {
                    bucket.drain(..k);
                    self.queued -= k;
                    break;
                }
                None => {
                    self.queued -= bucket.len();
                    first.remove();
                }
            }
        }
        if self.queued > 2 * self.index.len() + STALE_SLACK {
            let buckets = std::mem::take(&mut self.buckets);
            self.queued = 0;
            for (slot, items) in buckets {
                let live: Vec<_> = items
                    .into_iter()
                    .filter(|&it| self.is_live(slot, it))
                    .collect();
                if !live.is_empty() {
                    self.queued += live.len();
                    self.buckets.insert(slot, live);
                }
            }
        }
    }

    /// The slots due at or before `now`, in slot order; each job advances past them.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<Fire> {
        let now = secs(now);
        let mut fires = Vec::new();
        while let Some(first) = self.buckets.first_entry() {
            let slot = *first.key();
            if slot > now {
                break;
            }
            if self.ends.first_key_value().is_some_and(|(e, _)| *e < slot) {
                self.stop_ended(slot);
                // The bucket may hold nothing live any more: look again.
                self.prune();
                continue;
            }
            let mut items = first.remove();
            self.queued -= items.len();
            fires.reserve(items.len());
            for chunk in items.chunks(WARM_CHUNK) {
                std::hint::black_box(self.warm(chunk));
                for &(i, g) in chunk {
                    let Some(e) = self.slab.get_mut(i as usize).and_then(Option::as_mut) else {
                        continue;
                    };
                    if e.generation != g || e.next != slot {
                        continue;
                    }
                    fires.push(Fire::scheduled(
                        e.id.clone(),
                        instant(slot),
                        FireKind::Scheduled,
                    ));
                    e.floor = slot;
                    e.next = e.slots.next_after(slot).unwrap_or(NO_SLOT);
                    // The generation stays: the new item is this entry's only live one.
                    if let Some(s) = e.next() {
                        self.buckets
                            .entry(s)
                            .or_insert_with(|| std::mem::take(&mut self.spare))
                            .push((i, g));
                        self.queued += 1;
                    }
                }
            }
            items.clear();
            self.spare = items;
        }
        self.prune();
        fires
    }

    /// Reads each entry of `chunk` and its id's reference count, independent loads the CPU
    /// overlaps, so the loop that follows finds them in cache. With a million jobs these cache
    /// misses are most of the cost of a fire; taken one by one they wait for each other.
    fn warm(&self, chunk: &[(u32, u32)]) -> usize {
        chunk
            .iter()
            .filter_map(|&(i, _)| self.entry(i))
            .map(|e| Arc::strong_count(&e.id))
            .sum()
    }

    /// The earliest pending slot, when the caller should call [`Planner::due`] next.
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        self.buckets.first_key_value().map(|(s, _)| instant(*s))
    }

    /// The missed slots of `job_id` after `cursor` (its last enqueued slot) up to `now`, by
    /// the job's policy, inside its window `[now - window, now]`: `skip` plans none, `latest`
    /// the most recent, `all` every one up to [`MAX_CATCHUP_PER_JOB`] (the newest; older ones
    /// are counted as skipped).
    ///
    /// Slots at or before the job's `created_at` are never planned: they were never the job's
    /// (its cursor may be left over from an earlier job of the same id). A job without a cursor
    /// was never enqueued, so its missed slots start at its creation: a job created while no
    /// node leads, or just before the leader saw it, loses nothing. A job with neither (written
    /// by hand without `created_at`) plans nothing.
    ///
    /// Afterwards the job's next slot is its first strictly after `now`, and no slot at or
    /// before the cursor is given out again. Unknown or paused jobs plan nothing. Calling it
    /// again with the same cursor plans the same fires (same ids, so the enqueue dedupes them):
    /// a failed enqueue can simply be planned again.
    pub fn catch_up(
        &mut self,
        job_id: &str,
        cursor: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> CatchUpPlan {
        let mut plan = CatchUpPlan::default();
        let Some(i) = self.find(job_id) else {
            return plan;
        };
        let now_s = secs(now);
        let Some(e) = self.entry_mut(i) else {
            return plan;
        };
        let cursor_s = cursor.map(secs);
        if let Some(c) = cursor_s {
            e.floor = e.floor.max(c);
        }
        if e.job.spec.paused {
            return plan;
        }
        let job = e.job.clone();
        let id = e.id.clone();
        let next = next_slot(&job, now_s.max(e.floor));
        self.set_next(i, next);
        self.prune();
        // Missed slots start after the later of the cursor and the creation (`Option::max`:
        // any instant beats `None`), and after what `due` already gave out (the floor).
        let Some(after) = cursor_s.max(job.spec.created_at.map(secs)) else {
            return plan;
        };
        let c = after.max(self.entry(i).map_or(NO_FLOOR, |e| e.floor));
        let window = i64::try_from(job.catchup_window.as_secs()).unwrap_or(i64::MAX);
        // Slots in (cursor, now] and >= now - window: start strictly after this.
        let start = c.max(now_s.saturating_sub(window).saturating_sub(1));
        let mut kept: std::collections::VecDeque<Secs> = std::collections::VecDeque::new();
        let cap = match job.spec.catchup.policy {
            CatchUpPolicy::Skip => 0,
            CatchUpPolicy::Latest => 1,
            CatchUpPolicy::All => MAX_CATCHUP_PER_JOB,
        };
        let mut t = start;
        while let Some(s) = next_slot(&job, t) {
            if s > now_s {
                break;
            }
            if cap == 0 {
                plan.skipped += 1;
            } else {
                if kept.len() == cap {
                    kept.pop_front();
                    plan.skipped += 1;
                }
                kept.push_back(s);
            }
            t = s;
        }
        plan.fires = kept
            .into_iter()
            .map(|s| Fire::scheduled(id.clone(), instant(s), FireKind::CatchUp))
            .collect();
        plan
    }
}

#[cfg(test)]
mod tests;
