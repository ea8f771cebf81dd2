//! A model of redis-queue's scripts: what `Queue`'s calls do to cronnode's keys and the
//! platform's queues, in memory, as plain Rust.
//!
//! Owns the rules the Lua scripts carry (crates/redis-queue/src/*.lua): the fence check in
//! front of every write (`fence.lua`), the batched enqueue and stage (`enqueue.lua`: dedupe
//! marks in per-minute buckets, push or stage, the cursor that only advances, the capped
//! history), the release of staged lists at their slot (`release.lua`), and the read-backs the
//! leader uses. Each call is one method taking what the `Queue` method takes and answering
//! what it answers, applied atomically per script call (batches are cut into calls of
//! `fires_per_call`, as `Queue` does).
//!
//! Issue 13's scripts are modelled as i13a wrote them: a staged fire is recorded (its meta:
//! spec version, priority, token, job, node; and a copy of its task) so `amend` can withdraw
//! or restage it; a staged fire's history entry is written by `record_released` after its
//! release, saying when it reached the queue; a direct fire's history says when the script
//! ran (the server's clock).
//!
//! It is kept honest by redis-queue's differential test (crates/redis-queue/tests/
//! differential.rs), which runs random call sequences against the real scripts on a real
//! redis-server and against this model and compares the whole state after every call; that test
//! includes this file as is (`#[path]`), so it may use only what redis-queue's own tests can:
//! redis-queue, cron-core, chrono, uuid and std.
//!
//! Must not model what the simulation does not need to be right about: connections, Lua
//! errors, memory. The one clock here is `RedisModel::clock`, the server's, set by the caller
//! before each call (it stamps when a task reached a queue, and ages the dedupe buckets).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use cron_core::{Fire, FireKind, Job};
use redis_queue::queue::{DEFAULT_FIRES_PER_CALL, DEFAULT_HISTORY_LEN};
use redis_queue::{
    dedupe_ttl, AmendOutcome, Amended, BatchOutcome, FireOutcome, HistoryEntry, RecordOutcome,
    ReleaseOutcome, ReleasedSlot, StageFire, StagedEntry, StagedState, TaskSettings,
};
use uuid::Uuid;

/// Width of a dedupe bucket (`script::DEDUPE_BUCKET_SECS`): the fires of one slot minute share a
/// hash.
pub const DEDUPE_BUCKET_SECS: i64 = 60;
/// Staging lists named in one release call (`queue::release::RELEASE_LISTS_PER_CALL`).
pub const RELEASE_LISTS_PER_CALL: usize = 64;
/// Released slots one `record_released` writes (`queue::release::RECORD_SLOTS_PER_CALL`).
pub const RECORD_SLOTS_PER_CALL: usize = 16;

/// A task as a script wrote it: everything its JSON is made of.
#[derive(Debug, Clone)]
pub struct ModelTask {
    /// The job it was built from (its spec as the leader had it).
    pub job: Arc<Job>,
    /// That spec's version (its key's ModifyIndex; 0 when the caller gave none).
    pub version: u64,
    /// The fire.
    pub fire: Fire,
    /// The token of the call that wrote it.
    pub token: u64,
    /// Its `created_at`: the call's `now` (direct) or the slot (staged).
    pub created_at: DateTime<Utc>,
    /// The settings of the node that wrote it (its name, the functions URL).
    pub settings: Arc<TaskSettings>,
}

/// A task on a platform queue, and when (by the server's clock) it got there.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The task.
    pub task: ModelTask,
    /// When the push or release put it there.
    pub reached: DateTime<Utc>,
}

/// One dedupe hash (`<prefix>dedupe:<minute>`).
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    /// Fire id → the token that marked it.
    pub fires: HashMap<Uuid, u64>,
    /// When the key expires (server clock, unix ms); `None` without a TTL.
    pub expires_ms: Option<i64>,
}

/// What a stage records of each staged fire (`staged:<slot>`, the meta enqueue.lua writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedMeta {
    /// The job's cursor before the call that staged it (`None`: it had none); a withdrawal
    /// gives the cursor back to it.
    pub cursor_before: Option<i64>,
    /// The spec version its task was built from.
    pub version: u64,
    /// The staging list it is on.
    pub priority: u8,
    /// The token of the stage (or restage).
    pub token: u64,
    /// The job id.
    pub job_id: String,
    /// The node that staged it.
    pub node: String,
}

impl StagedMeta {
    /// As Redis holds it: `<cursor before>\t<version>\t<priority>\t<token>\t<job id>\t<node>`.
    pub fn text(&self) -> String {
        let before = self.cursor_before.map_or(String::new(), |c| c.to_string());
        format!(
            "{before}\t{}\t{}\t{}\t{}\t{}",
            self.version, self.priority, self.token, self.job_id, self.node
        )
    }
}

/// Fire id → meta, in the order Redis's (small) hash keeps its fields: insertion order.
pub type Metas = Vec<(Uuid, StagedMeta)>;

/// Where a call puts its immediate tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Direct,
    Staged,
}

/// cronnode's keys and the platform's queues.
#[derive(Debug, Clone)]
pub struct RedisModel {
    /// The server's clock; the caller sets it before each call.
    pub clock: DateTime<Utc>,
    /// `fence`.
    pub fence: Option<u64>,
    /// `cursors`: job id → last enqueued slot (unix seconds).
    pub cursors: BTreeMap<String, i64>,
    /// `dedupe:<minute>`.
    pub dedupe: BTreeMap<i64, Bucket>,
    /// `history:<job>`: entries oldest first.
    pub history: BTreeMap<String, Vec<HistoryEntry>>,
    /// `staging`: the index, (slot, priority).
    pub staging_index: BTreeSet<(i64, u8)>,
    /// `staging:<slot>:<priority>`: staged tasks in push order (no entry for an empty list).
    pub staging: BTreeMap<(i64, u8), Vec<ModelTask>>,
    /// `queue0..2`: tasks in push order (the first pushed is the first a runner takes).
    pub queues: [Vec<Queued>; 3],
    /// `delayed_jobs` with `delays`: delayed id → (ready, unix seconds; task).
    pub delayed: BTreeMap<u64, (i64, ModelTask)>,
    /// `delays_counter`.
    pub delays_counter: u64,
    /// `staged:<slot>`: what each staged fire's stage recorded. (Its task's copy,
    /// `staged-tasks:<slot>`, is the task on its staging list.)
    pub staged: BTreeMap<i64, Metas>,
    /// `released:<slot>`: the metas of released fires awaiting their history entry.
    pub released: BTreeMap<i64, Metas>,
    /// `released`: slot → its release instant (unix ms, the server's clock).
    pub released_index: BTreeMap<i64, i64>,
    /// History entries kept per job (`QueueConfig::history_len`).
    pub history_len: usize,
    /// Fires per script call (`Queue::with_fires_per_call`).
    pub fires_per_call: usize,
}

impl Default for RedisModel {
    fn default() -> Self {
        RedisModel::new(DEFAULT_HISTORY_LEN, DEFAULT_FIRES_PER_CALL)
    }
}

impl RedisModel {
    /// An empty server, for a queue with these settings.
    pub fn new(history_len: usize, fires_per_call: usize) -> RedisModel {
        RedisModel {
            clock: DateTime::<Utc>::UNIX_EPOCH,
            fence: None,
            cursors: BTreeMap::new(),
            dedupe: BTreeMap::new(),
            history: BTreeMap::new(),
            staging_index: BTreeSet::new(),
            staging: BTreeMap::new(),
            queues: [Vec::new(), Vec::new(), Vec::new()],
            delayed: BTreeMap::new(),
            delays_counter: 0,
            staged: BTreeMap::new(),
            released: BTreeMap::new(),
            released_index: BTreeMap::new(),
            history_len: history_len.max(1),
            fires_per_call: fires_per_call.max(1),
        }
    }

    /// `fence.lua`: `Some(fence)` when `token` is below it (the call writes nothing); else the
    /// fence rises to `token`.
    fn fenced(&mut self, token: u64) -> Option<u64> {
        match self.fence {
            Some(f) if token < f => Some(f),
            _ => {
                self.fence = Some(token);
                None
            }
        }
    }

    /// `Queue::raise_fence`.
    pub fn raise_fence(&mut self, token: u64) -> u64 {
        let f = self.fence.map_or(token, |f| f.max(token));
        self.fence = Some(f);
        f
    }

    /// `Queue::reset_fence`.
    pub fn reset_fence(&mut self, token: u64) {
        self.fence = Some(token);
    }

    /// `Queue::enqueue`.
    pub fn enqueue(
        &mut self,
        batch: &[(Arc<Job>, Fire)],
        token: u64,
        settings: &Arc<TaskSettings>,
        now: DateTime<Utc>,
    ) -> BatchOutcome {
        let items: Vec<(&Arc<Job>, &Fire, u64)> = batch.iter().map(|(j, f)| (j, f, 0)).collect();
        self.send(&items, token, settings, now, Mode::Direct)
    }

    /// `Queue::stage` (the caller stages no fire of a delayed job: `Queue::stage` refuses it).
    pub fn stage(
        &mut self,
        batch: &[StageFire],
        token: u64,
        settings: &Arc<TaskSettings>,
        now: DateTime<Utc>,
    ) -> BatchOutcome {
        let items: Vec<(&Arc<Job>, &Fire, u64)> =
            batch.iter().map(|f| (&f.job, &f.fire, f.version)).collect();
        self.send(&items, token, settings, now, Mode::Staged)
    }

    fn send(
        &mut self,
        batch: &[(&Arc<Job>, &Fire, u64)],
        token: u64,
        settings: &Arc<TaskSettings>,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> BatchOutcome {
        let mut outcomes = Vec::with_capacity(batch.len());
        for call in batch.chunks(self.fires_per_call) {
            if let Some(fence) = self.fenced(token) {
                return BatchOutcome::Fenced { fence };
            }
            self.enqueue_call(call, token, settings, now, mode, &mut outcomes);
        }
        BatchOutcome::Done(outcomes)
    }

    /// One `enqueue.lua` call, after the fence check.
    fn enqueue_call(
        &mut self,
        call: &[(&Arc<Job>, &Fire, u64)],
        token: u64,
        settings: &Arc<TaskSettings>,
        now: DateTime<Utc>,
        mode: Mode,
        outcomes: &mut Vec<FireOutcome>,
    ) {
        // 0. Staging lists enter the index first, even those whose fires all turn out to be
        //    duplicates.
        if mode == Mode::Staged {
            for (job, fire, _) in call {
                self.staging_index
                    .insert((fire.slot.timestamp(), job.spec.function.priority));
            }
        }
        // The TTL each bucket must have at least: over every fire of the call in it.
        let mut ttls: BTreeMap<i64, u64> = BTreeMap::new();
        for (job, fire, _) in call {
            let minute = fire.slot.timestamp().div_euclid(DEDUPE_BUCKET_SECS);
            let bucket_end = (minute + 1) * DEDUPE_BUCKET_SECS;
            let pending_ms = (bucket_end - now.timestamp()).max(0) as u128 * 1000;
            let ttl = u64::try_from(dedupe_ttl(job).as_millis() + pending_ms).unwrap_or(u64::MAX);
            let t = ttls.entry(minute).or_default();
            *t = (*t).max(ttl);
        }
        // 1. Dedupe: a fire is new when its bucket does not hold its id (nor an earlier fire
        //    of this call).
        let mut fresh_buckets: BTreeSet<i64> = BTreeSet::new();
        let mut fresh = Vec::with_capacity(call.len());
        for (_, fire, _) in call {
            let minute = fire.slot.timestamp().div_euclid(DEDUPE_BUCKET_SECS);
            let bucket = self.bucket(minute);
            let new = !bucket.fires.contains_key(&fire.fire_id);
            if new {
                bucket.fires.insert(fire.fire_id, token);
                fresh_buckets.insert(minute);
            }
            fresh.push(new);
        }
        let clock_ms = self.clock.timestamp_millis();
        for minute in fresh_buckets {
            let ttl = ttls.get(&minute).copied().unwrap_or(0);
            let bucket = self.bucket(minute);
            let pttl = bucket.expires_ms.map_or(-1, |e| e - clock_ms);
            if pttl < i64::try_from(ttl).unwrap_or(i64::MAX) {
                bucket.expires_ms = Some(clock_ms.saturating_add_unsigned(ttl));
            }
        }
        // 2. The new fires: push (or stage and record), history (direct), cursor candidates.
        let mut cursor: BTreeMap<&str, i64> = BTreeMap::new();
        for ((job, fire, version), new) in call.iter().zip(fresh) {
            if !new {
                outcomes.push(FireOutcome::Duplicate);
                continue;
            }
            outcomes.push(FireOutcome::Enqueued);
            let base = match mode {
                Mode::Direct => now,
                Mode::Staged => fire.slot,
            };
            let task = ModelTask {
                job: (*job).clone(),
                version: *version,
                fire: (*fire).clone(),
                token,
                created_at: base,
                settings: settings.clone(),
            };
            let f = &job.spec.function;
            let delay = f.delay.unwrap_or(0);
            if delay > 0 {
                self.delays_counter += 1;
                let ready = base.timestamp() + i64::from(delay);
                self.delayed.insert(self.delays_counter, (ready, task));
            } else {
                match mode {
                    Mode::Direct => self.queues[usize::from(f.priority)].push(Queued {
                        task,
                        reached: self.clock,
                    }),
                    Mode::Staged => self
                        .staging
                        .entry((fire.slot.timestamp(), f.priority))
                        .or_default()
                        .push(task),
                }
            }
            if !matches!(fire.kind, FireKind::Manual | FireKind::Backfill) {
                let c = cursor.entry(job.spec.id.as_str()).or_insert(i64::MIN);
                *c = (*c).max(fire.slot.timestamp());
            }
            match mode {
                Mode::Staged => {
                    let meta = StagedMeta {
                        // The cursors move at the end of the call: this is the one before it.
                        cursor_before: self.cursors.get(&job.spec.id).copied(),
                        version: *version,
                        priority: f.priority,
                        token,
                        job_id: job.spec.id.clone(),
                        node: settings.node.clone(),
                    };
                    set_meta(
                        self.staged.entry(fire.slot.timestamp()).or_default(),
                        fire.fire_id,
                        meta,
                    );
                }
                Mode::Direct => {
                    let entry = history_entry(fire, token, &settings.node, self.clock);
                    self.push_history(&job.spec.id, entry);
                }
            }
        }
        // 3. Cursors only advance here (only a withdrawal moves one back).
        for (job, slot) in cursor {
            let c = self.cursors.entry(job.to_string()).or_insert(slot);
            *c = (*c).max(slot);
        }
    }

    fn push_history(&mut self, job: &str, entry: HistoryEntry) {
        let list = self.history.entry(job.to_string()).or_default();
        list.push(entry);
        if list.len() > self.history_len * 2 {
            list.drain(..list.len() - self.history_len);
        }
    }

    /// The dedupe bucket of `minute`, made empty first if its key has expired.
    fn bucket(&mut self, minute: i64) -> &mut Bucket {
        let now = self.clock.timestamp_millis();
        let b = self.dedupe.entry(minute).or_default();
        if b.expires_ms.is_some_and(|e| e <= now) {
            *b = Bucket::default();
        }
        b
    }

    /// `Queue::release`: every staging list whose slot is at or before `now` moves into its
    /// queue behind what the queue holds, oldest slot first; a slot whose last list is moved
    /// has its records wait for their history (`released:<slot>`), stamped with the instant.
    pub fn release(&mut self, token: u64, now: DateTime<Utc>) -> ReleaseOutcome {
        let until = now.timestamp();
        let due: Vec<(i64, u8)> = self
            .staging_index
            .iter()
            .take_while(|(slot, _)| *slot <= until)
            .copied()
            .collect();
        let mut moved: BTreeMap<i64, u64> = BTreeMap::new();
        for call in due.chunks(RELEASE_LISTS_PER_CALL) {
            if let Some(fence) = self.fenced(token) {
                return ReleaseOutcome::Fenced { fence };
            }
            for &(slot, priority) in call {
                let tasks = self.staging.remove(&(slot, priority)).unwrap_or_default();
                *moved.entry(slot).or_default() += tasks.len() as u64;
                let reached = self.clock;
                self.queues[usize::from(priority)]
                    .extend(tasks.into_iter().map(|task| Queued { task, reached }));
                self.staging_index.remove(&(slot, priority));
                self.mark_released(slot);
            }
        }
        ReleaseOutcome::Done(
            moved
                .into_iter()
                .filter_map(|(slot, tasks)| {
                    let slot = Utc.timestamp_opt(slot, 0).single()?;
                    Some(ReleasedSlot { slot, tasks })
                })
                .collect(),
        )
    }

    /// `mark.lua`: once a slot has no staging list left, its metas wait for their history.
    fn mark_released(&mut self, slot: i64) {
        if self
            .staging_index
            .range((slot, 0)..=(slot, u8::MAX))
            .next()
            .is_some()
        {
            return;
        }
        let Some(metas) = self.staged.remove(&slot) else {
            return;
        };
        let released = self.released.entry(slot).or_default();
        for (id, meta) in metas {
            set_meta(released, id, meta);
        }
        let ms = self.clock.timestamp_millis();
        self.released_index.entry(slot).or_insert(ms);
    }

    /// `Queue::amend`: withdraw staged fires, then restage others with a newer spec, fenced,
    /// in one call. A withdrawn fire loses its task, its record and its dedupe mark, and its
    /// job's cursor goes back to what it was before the fire was staged (if it is past that;
    /// none then, none now); a restaged one gets the new task (at the head of its priority's
    /// list) and record (keeping the cursor of before), and its job's cursor is at least its
    /// slot.
    pub fn amend(
        &mut self,
        token: u64,
        withdraw: &[Fire],
        restage: &[StageFire],
        settings: &Arc<TaskSettings>,
    ) -> AmendOutcome {
        if withdraw.is_empty() && restage.is_empty() {
            return AmendOutcome::Done(Vec::new());
        }
        if let Some(fence) = self.fenced(token) {
            return AmendOutcome::Fenced { fence };
        }
        let mut out = Vec::with_capacity(withdraw.len() + restage.len());
        for fire in withdraw {
            let slot = fire.slot.timestamp();
            match self.take(fire) {
                Some(meta) => {
                    let minute = slot.div_euclid(DEDUPE_BUCKET_SECS);
                    let bucket = self.bucket(minute);
                    bucket.fires.remove(&fire.fire_id);
                    if bucket.fires.is_empty() {
                        // Redis deletes an emptied hash, and its TTL with it.
                        self.dedupe.remove(&minute);
                    }
                    // The cursor goes back to what it was before the stage, if past it.
                    match (self.cursors.get(&meta.job_id).copied(), meta.cursor_before) {
                        (Some(_), None) => {
                            self.cursors.remove(&meta.job_id);
                        }
                        (Some(c), Some(before)) if c > before => {
                            self.cursors.insert(meta.job_id.clone(), before);
                        }
                        _ => {}
                    }
                    out.push(Amended::Withdrawn);
                }
                None => out.push(Amended::NotStaged {
                    queued: self.marked(fire),
                }),
            }
        }
        for r in restage {
            let slot = r.fire.slot.timestamp();
            let Some(old) = self.take(&r.fire) else {
                out.push(Amended::NotStaged {
                    queued: self.marked(&r.fire),
                });
                continue;
            };
            let priority = r.job.spec.function.priority;
            self.staging_index.insert((slot, priority));
            self.staging
                .entry((slot, priority))
                .or_default()
                .push(ModelTask {
                    job: r.job.clone(),
                    version: r.version,
                    fire: r.fire.clone(),
                    token,
                    created_at: r.fire.slot,
                    settings: settings.clone(),
                });
            let meta = StagedMeta {
                cursor_before: old.cursor_before,
                version: r.version,
                priority,
                token,
                job_id: r.job.spec.id.clone(),
                node: settings.node.clone(),
            };
            set_meta(self.staged.entry(slot).or_default(), r.fire.fire_id, meta);
            let c = self.cursors.entry(r.job.spec.id.clone()).or_insert(slot);
            *c = (*c).max(slot);
            out.push(Amended::Replaced);
        }
        AmendOutcome::Done(out)
    }

    /// `amend.lua`'s take: removes a staged fire's task and record; its record, if staged.
    fn take(&mut self, fire: &Fire) -> Option<StagedMeta> {
        let slot = fire.slot.timestamp();
        let metas = self.staged.get_mut(&slot)?;
        let i = metas.iter().position(|(id, _)| *id == fire.fire_id)?;
        let (_, meta) = metas.remove(i);
        if metas.is_empty() {
            self.staged.remove(&slot);
        }
        let key = (slot, meta.priority);
        if let Some(list) = self.staging.get_mut(&key) {
            // LREM from the head (the newest) of the one task with this fire id.
            if let Some(j) = list.iter().rposition(|t| t.fire.fire_id == fire.fire_id) {
                list.remove(j);
            }
            if list.is_empty() {
                self.staging.remove(&key);
            }
        }
        Some(meta)
    }

    /// Whether the fire's dedupe mark is set.
    fn marked(&mut self, fire: &Fire) -> bool {
        let minute = fire.slot.timestamp().div_euclid(DEDUPE_BUCKET_SECS);
        self.bucket(minute).fires.contains_key(&fire.fire_id)
    }

    /// `Queue::staged`: the staged slots, every staged fire's record, and whether released
    /// fires wait for their history.
    pub fn staged(&self) -> StagedState {
        let slots = self.staged_slots();
        let fires = slots
            .iter()
            .flat_map(|at| {
                let metas = self.staged.get(&at.timestamp());
                metas.into_iter().flatten().map(move |(id, m)| StagedEntry {
                    slot: *at,
                    fire_id: *id,
                    job_id: m.job_id.clone(),
                    version: m.version,
                    priority: m.priority,
                })
            })
            .collect();
        StagedState {
            slots,
            fires,
            unrecorded: !self.released_index.is_empty(),
        }
    }

    /// `Queue::record_released`, fenced: the history entries of released staged fires, the
    /// oldest released slots first (a few per call), each `enqueued_at` its slot's release.
    pub fn record_released(&mut self, token: u64) -> RecordOutcome {
        let mut order: Vec<(i64, String, i64)> = self
            .released_index
            .iter()
            .map(|(slot, ms)| (*ms, slot.to_string(), *slot))
            .collect();
        order.sort();
        order.truncate(RECORD_SLOTS_PER_CALL);
        for (ms, _, slot) in order {
            if let Some(fence) = self.fenced(token) {
                return RecordOutcome::Fenced { fence };
            }
            let at = DateTime::from_timestamp_millis(ms).unwrap_or(self.clock);
            for (id, meta) in self.released.remove(&slot).unwrap_or_default() {
                let Some(slot_at) = Utc.timestamp_opt(slot, 0).single() else {
                    continue;
                };
                let fire = Fire {
                    job_id: meta.job_id.as_str().into(),
                    slot: slot_at,
                    fire_id: id,
                    kind: FireKind::Scheduled,
                };
                let entry = history_entry(&fire, meta.token, &meta.node, at);
                self.push_history(&meta.job_id, entry);
            }
            self.released_index.remove(&slot);
        }
        RecordOutcome::Done {
            more: !self.released_index.is_empty(),
        }
    }

    /// `Queue::staged_slots`.
    pub fn staged_slots(&self) -> Vec<DateTime<Utc>> {
        let mut slots: Vec<DateTime<Utc>> = self
            .staging_index
            .iter()
            .filter_map(|(s, _)| Utc.timestamp_opt(*s, 0).single())
            .collect();
        slots.dedup();
        slots
    }

    /// `Queue::cursors`.
    pub fn cursors(&self, job_ids: &[&str]) -> HashMap<String, DateTime<Utc>> {
        job_ids
            .iter()
            .filter_map(|id| {
                let t = Utc.timestamp_opt(*self.cursors.get(*id)?, 0).single()?;
                Some((id.to_string(), t))
            })
            .collect()
    }

    /// `Queue::history`: newest first, at most `history_len`.
    pub fn history(&self, job_id: &str) -> Vec<HistoryEntry> {
        self.history.get(job_id).map_or_else(Vec::new, |l| {
            l.iter().rev().take(self.history_len).cloned().collect()
        })
    }

    /// `Queue::fence`.
    pub fn fence(&self) -> Option<u64> {
        self.fence
    }
}

/// HSET of one field: in place when it is there, appended when new.
fn set_meta(metas: &mut Metas, id: Uuid, meta: StagedMeta) {
    match metas.iter_mut().find(|(f, _)| *f == id) {
        Some((_, m)) => *m = meta,
        None => metas.push((id, meta)),
    }
}

/// A history entry as the scripts write it: the slot in whole seconds, the instant in ms.
fn history_entry(fire: &Fire, token: u64, node: &str, at: DateTime<Utc>) -> HistoryEntry {
    let secs = |t: DateTime<Utc>| Utc.timestamp_opt(t.timestamp(), 0).single().unwrap_or(t);
    let ms = Utc
        .timestamp_millis_opt(at.timestamp_millis())
        .single()
        .unwrap_or(at);
    let mut e = HistoryEntry::new(fire, token, node, ms);
    e.slot = secs(fire.slot);
    e
}
