//! The enqueue script's calling convention (`lua/enqueue.lua`, whose top says the layout):
//! [`EnqueueCall`] fills one EVALSHA with fires, direct or staged.
//!
//! Lua hashes every byte of every string it is given, so a call sends what consecutive fires
//! share once per run (see [`EnqueueCall`] and BENCHMARKS.md). Must not talk to Redis.

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use cron_core::{Fire, FireKind, Job};
use redis::{Cmd, Script, Value};
use uuid::Uuid;

use super::{
    bucket_of, dedupe_ttl, fenced, staging_member, Fenced, Keys, Meta, DEDUPE_BUCKET_SECS,
    ENQUEUE_LUA,
};
use crate::calls::FireOutcome;
use crate::encode::{json_str, write_task};
use crate::error::QueueError;
use crate::model::{kind_name, rfc3339, TaskSettings};

/// The SHA1 of the enqueue script, for EVALSHA.
static ENQUEUE_SHA: LazyLock<String> =
    LazyLock::new(|| Script::new(ENQUEUE_LUA).get_hash().to_string());

/// Fixed keys ahead of the targets, the dedupe buckets, the staged slots and the history lists
/// in `KEYS`.
const FIXED_KEYS: usize = 6;

/// Bytes of arguments a typical fire takes (a task of about 500 bytes, its ids).
const TYPICAL_FIRE_BYTES: usize = 600;

/// Where a call puts the immediate tasks, and which instant its tasks carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Into `queue<priority>` now: `created_at` and a delayed task's base are the call's
    /// `now`; the history entry is written by the same call.
    Direct,
    /// Into the staging list of (slot, priority), registered in the staging index, each fire
    /// recorded in its slot's staged meta and task copies: `created_at` is the fire's slot.
    /// No delayed task is ever staged (the caller refuses them).
    Staged,
}

/// Consecutive fires that share everything the script takes once per run.
#[derive(Clone, Copy, PartialEq, Eq)]
struct RunKey {
    /// Index into the call's buckets.
    bucket: usize,
    /// 1-based index into the call's targets; 0 for delayed tasks (they go to the delayed set).
    target: usize,
    /// When a delayed task becomes ready (unix seconds); 0 for an immediate one.
    ready: i64,
    slot: i64,
    kind: FireKind,
    /// 1-based index into the call's staged slots; 0 in a direct call.
    staged: usize,
}

/// One EVALSHA of the enqueue script, being filled with fires.
pub struct EnqueueCall<'k> {
    keys: &'k Keys,
    settings: &'k TaskSettings,
    /// The node's name as a JSON string.
    node: Vec<u8>,
    token: u64,
    now: DateTime<Utc>,
    mode: Mode,
    /// `now` as the tasks write it, formatted once per call.
    created_at: String,
    /// The lists the immediate tasks go to: `(slot, priority)`; the slot is `None` for a
    /// platform queue.
    targets: Vec<(Option<i64>, u8)>,
    history_len: usize,
    /// The dedupe buckets (slot minute) and the TTL (ms) each must have at least.
    buckets: Vec<(i64, u64)>,
    /// The slots of a staged call (their meta and copies hashes are declared keys).
    staged: Vec<i64>,
    runs: Vec<(RunKey, usize)>,
    /// The jobs of a direct call as they first appear (their history lists are declared keys).
    jobs: Vec<String>,
    seen_jobs: HashSet<String>,
    /// The per-fire arguments (fire id, job id, task JSON, and a staged fire's meta) back to
    /// back, and where each ends.
    data: Vec<u8>,
    ends: Vec<usize>,
    /// The last slot seen and its RFC3339 form (fires of a call mostly share a slot).
    slot: Option<(DateTime<Utc>, String)>,
}

impl<'k> EnqueueCall<'k> {
    /// An empty call under `token`, for about `fires` fires. `now` is the instant of the call
    /// (the base of the dedupe TTLs; in [`Mode::Direct`] also the tasks' `created_at`).
    pub fn new(
        keys: &'k Keys,
        settings: &'k TaskSettings,
        token: u64,
        now: DateTime<Utc>,
        mode: Mode,
        history_len: usize,
        fires: usize,
    ) -> EnqueueCall<'k> {
        let mut node = Vec::new();
        json_str(&mut node, &settings.node);
        EnqueueCall {
            keys,
            settings,
            node,
            token,
            now,
            mode,
            created_at: rfc3339(now),
            targets: Vec::new(),
            history_len,
            buckets: Vec::new(),
            staged: Vec::new(),
            runs: Vec::new(),
            jobs: Vec::new(),
            seen_jobs: HashSet::new(),
            data: Vec::with_capacity(fires * TYPICAL_FIRE_BYTES),
            ends: Vec::with_capacity(fires * 4),
            slot: None,
        }
    }

    /// Adds one fire (its task is encoded here; a job that cannot be encoded fails the batch
    /// before anything is sent). `version` is the spec's version, recorded for a staged fire.
    pub fn push(&mut self, job: &Job, fire: &Fire, version: u64) -> Result<(), QueueError> {
        let secs = fire.slot.timestamp();
        // Keyed by the instant itself: a manual fire's slot has milliseconds.
        let slot = match &self.slot {
            Some((s, text)) if *s == fire.slot => text,
            _ => &self.slot.insert((fire.slot, rfc3339(fire.slot))).1,
        };
        let mut id = Uuid::encode_buffer();
        self.data
            .extend_from_slice(fire.fire_id.hyphenated().encode_lower(&mut id).as_bytes());
        self.ends.push(self.data.len());
        let job_id = &job.spec.id;
        self.data.extend_from_slice(job_id.as_bytes());
        self.ends.push(self.data.len());
        if self.mode == Mode::Direct && !self.seen_jobs.contains(job_id) {
            self.seen_jobs.insert(job_id.clone());
            self.jobs.push(job_id.clone());
        }
        let created_at = match self.mode {
            Mode::Direct => &self.created_at,
            Mode::Staged => slot,
        };
        write_task(
            &mut self.data,
            job,
            fire,
            self.token,
            self.settings,
            created_at,
            slot,
        )?;
        self.ends.push(self.data.len());
        let f = &job.spec.function;
        if self.mode == Mode::Staged {
            let meta = Meta::format(version, f.priority, self.token, job_id, &self.settings.node);
            self.data.extend_from_slice(meta.as_bytes());
            self.ends.push(self.data.len());
        }

        // The bucket must outlive the last slot it holds by the dedupe TTL.
        let minute = bucket_of(secs);
        let bucket_end = (minute + 1) * DEDUPE_BUCKET_SECS;
        let pending_ms = (bucket_end - self.now.timestamp()).max(0) as u128 * 1000;
        let ttl_ms = u64::try_from(dedupe_ttl(job).as_millis() + pending_ms).unwrap_or(u64::MAX);
        let bucket = match self.buckets.iter().rposition(|(m, _)| *m == minute) {
            Some(b) => b,
            None => {
                self.buckets.push((minute, 0));
                self.buckets.len() - 1
            }
        };
        let ttl = &mut self.buckets[bucket].1;
        *ttl = (*ttl).max(ttl_ms);

        let delay = f.delay.unwrap_or(0);
        let (target, ready) = if delay > 0 {
            (0, self.now.timestamp() + i64::from(delay))
        } else {
            let list = match self.mode {
                Mode::Direct => (None, f.priority),
                Mode::Staged => (Some(secs), f.priority),
            };
            let t = match self.targets.iter().rposition(|t| *t == list) {
                Some(t) => t,
                None => {
                    self.targets.push(list);
                    self.targets.len() - 1
                }
            };
            (t + 1, 0)
        };
        let staged = match self.mode {
            Mode::Direct => 0,
            Mode::Staged => match self.staged.iter().rposition(|s| *s == secs) {
                Some(h) => h + 1,
                None => {
                    self.staged.push(secs);
                    self.staged.len()
                }
            },
        };
        let key = RunKey {
            bucket,
            target,
            ready,
            slot: secs,
            kind: fire.kind,
            staged,
        };
        match self.runs.last_mut() {
            Some((k, n)) if *k == key => *n += 1,
            _ => self.runs.push((key, 1)),
        }
        Ok(())
    }

    /// The EVALSHA command of this call.
    pub fn command(&self) -> Cmd {
        let k = self.keys;
        let mut cmd = redis::cmd("EVALSHA");
        let members: Vec<Option<String>> = self
            .targets
            .iter()
            .map(|(slot, p)| slot.map(|s| staging_member(s, *p)))
            .collect();
        let nkeys = FIXED_KEYS
            + self.targets.len()
            + self.buckets.len()
            + 2 * self.staged.len()
            + self.jobs.len();
        cmd.arg(ENQUEUE_SHA.as_str())
            .arg(nkeys)
            .arg(&k.fence)
            .arg(&k.cursors)
            .arg(&k.delays)
            .arg(&k.delayed_jobs)
            .arg(&k.delays_counter)
            .arg(&k.staging);
        for ((_, p), member) in self.targets.iter().zip(&members) {
            match member {
                Some(m) => cmd.arg(k.staging_list(m)),
                None => cmd.arg(&k.queues[usize::from(*p)]),
            };
        }
        for (minute, _) in &self.buckets {
            cmd.arg(k.dedupe(*minute));
        }
        for slot in &self.staged {
            cmd.arg(k.staged(*slot)).arg(k.copies(*slot));
        }
        for job in &self.jobs {
            cmd.arg(k.history(job));
        }
        // Trim only when the list has grown to twice its length: one LTRIM per `history_len`
        // pushes instead of one per push; readers only ever look at the last `history_len`.
        cmd.arg(self.token)
            .arg(self.history_len)
            .arg(self.history_len * 2)
            .arg(self.targets.len())
            .arg(self.buckets.len())
            .arg(self.staged.len());
        for ((slot, _), member) in self.targets.iter().zip(&members) {
            match (slot, member) {
                (Some(s), Some(m)) => cmd.arg(*s).arg(m),
                _ => cmd.arg("").arg(""),
            };
        }
        for (_, ttl) in &self.buckets {
            cmd.arg(*ttl);
        }
        let per_fire = match self.mode {
            Mode::Direct => 3,
            Mode::Staged => 4,
        };
        let mut arg = 0;
        let mut start = 0;
        for (key, count) in &self.runs {
            // Manual runs do not move the cursor: it says how far the schedule was enqueued,
            // and a manual run at 10:05 must not hide a missed 10:00 slot from the catch-up.
            // Nor do backfills: a range backfilled before the job's catch-up read its cursor
            // would hide the missed slots before the range.
            let cursor = match key.kind {
                FireKind::Manual | FireKind::Backfill => String::new(),
                FireKind::Scheduled | FireKind::CatchUp => key.slot.to_string(),
            };
            let (head, tail) = match self.mode {
                Mode::Direct => history_parts(key, self.token, &self.node),
                Mode::Staged => (Vec::new(), Vec::new()),
            };
            cmd.arg(*count)
                .arg(key.bucket + 1)
                .arg(key.target)
                .arg(key.ready)
                .arg(cursor)
                .arg(head)
                .arg(tail)
                .arg(key.staged);
            for _ in 0..count * per_fire {
                let end = self.ends[arg];
                cmd.arg(&self.data[start..end]);
                start = end;
                arg += 1;
            }
        }
        cmd
    }
}

/// A direct fire's history entry is `{` + head + (the script's instant) + `,"fire_id":"` +
/// fire id + tail: the JSON of [`HistoryEntry`](crate::HistoryEntry), of which only the fire
/// id differs within a run, and the instant is Redis's.
fn history_parts(key: &RunKey, token: u64, node: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let head = format!("\"slot\":{},\"enqueued_at\":", key.slot).into_bytes();
    let mut tail = format!("\",\"token\":{token},\"node\":").into_bytes();
    tail.extend_from_slice(node);
    tail.extend_from_slice(format!(",\"kind\":\"{}\"}}", kind_name(key.kind)).as_bytes());
    (head, tail)
}

/// Decodes `{0, fence}` (refused: `Err(fence)` inside `Ok`) or `{1, "EDE..."}`.
pub fn decode(v: &Value) -> Result<Result<Vec<FireOutcome>, u64>, QueueError> {
    let bad = |what: &str| QueueError::Protocol(format!("enqueue script answered {what}"));
    match fenced(v, "enqueue")? {
        Fenced::Refused(fence) => Ok(Err(fence)),
        Fenced::Done([body]) => {
            let body = super::text(body).ok_or_else(|| bad("a non-string body"))?;
            body.bytes()
                .map(|c| match c {
                    b'E' => Ok(FireOutcome::Enqueued),
                    b'D' => Ok(FireOutcome::Duplicate),
                    _ => Err(bad("an unknown outcome")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Ok)
        }
        Fenced::Done(_) => Err(bad("an array of the wrong length")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HistoryEntry;
    use chrono::TimeZone;

    #[test]
    fn history_parts_make_the_entry_json() {
        let now = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 7).unwrap();
        let slot = now - chrono::Duration::seconds(7);
        for fire in [
            Fire::scheduled("job".into(), slot, FireKind::CatchUp),
            Fire::manual("job".into(), now),
        ] {
            let key = RunKey {
                bucket: 0,
                target: 1,
                ready: 0,
                slot: fire.slot.timestamp(),
                kind: fire.kind,
                staged: 0,
            };
            let mut node = Vec::new();
            json_str(&mut node, "node \"a\"");
            let (head, tail) = history_parts(&key, 12, &node);
            // What the script makes of them, with its instant.
            let entry = format!(
                "{{{}{},\"fire_id\":\"{}{}",
                String::from_utf8(head).unwrap(),
                now.timestamp_millis(),
                fire.fire_id,
                String::from_utf8(tail).unwrap()
            );
            let want = HistoryEntry::new(&fire, 12, "node \"a\"", now);
            assert_eq!(entry, want.to_json());
        }
    }
}
