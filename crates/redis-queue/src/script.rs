//! The Lua scripts and their calling convention.
//!
//! Owns the key names, the argument layout of `enqueue.lua` (documented at the top of that
//! file: change both together) and the decoding of its answer. Everything a fire needs is
//! computed here, in Rust (task JSON, the history entry around the fire id, TTLs), so the
//! script only does Redis commands. Lua hashes every byte of every string it is given, so a
//! call sends what consecutive fires share once per run (see [`EnqueueCall`] and
//! BENCHMARKS.md).
//!
//! Must not talk to Redis: [`crate::queue`] sends what this builds.

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use cron_core::{Fire, FireKind, Job};
use redis::{Cmd, Script, Value};

use uuid::Uuid;

use crate::encode::{json_str, rfc3339, write_task};
use crate::error::QueueError;
use crate::queue::{dedupe_ttl, FireOutcome};
use crate::task::{kind_name, TaskSettings};

/// The enqueue script.
pub const ENQUEUE_LUA: &str = concat!(include_str!("fence.lua"), include_str!("enqueue.lua"));
/// The SHA1 of [`ENQUEUE_LUA`], for EVALSHA.
static ENQUEUE_SHA: LazyLock<String> =
    LazyLock::new(|| Script::new(ENQUEUE_LUA).get_hash().to_string());
/// Width of a dedupe bucket: fires whose slots fall in the same minute share one hash.
pub const DEDUPE_BUCKET_SECS: i64 = 60;
/// Fixed keys ahead of the targets, the dedupe buckets and the history lists in `KEYS`.
const FIXED_KEYS: usize = 6;
/// The release script (staged tasks into the platform's queues).
pub const RELEASE_LUA: &str = concat!(include_str!("fence.lua"), include_str!("release.lua"));

/// Bytes of arguments a typical fire takes (a task of about 500 bytes, its ids).
const TYPICAL_FIRE_BYTES: usize = 600;

/// Raise the fence to ARGV[1] if higher (exact comparison of canonical decimals); answer it.
const RAISE_FENCE_LUA: &str = r"
local t = ARGV[1]
local f = redis.call('GET', KEYS[1])
if (not f) or #f < #t or (#f == #t and f < t) then
  redis.call('SET', KEYS[1], t)
  return t
end
return f
";

/// The release script (see release.lua).
pub fn release() -> Script {
    Script::new(RELEASE_LUA)
}

/// The fence-raising script.
pub fn raise_fence() -> Script {
    Script::new(RAISE_FENCE_LUA)
}

/// Every key name cronnode uses, computed once per queue.
#[derive(Debug)]
pub struct Keys {
    /// `<key-prefix>fence`.
    pub fence: String,
    /// `<key-prefix>cursors`: hash job id → last enqueued slot (unix seconds).
    pub cursors: String,
    /// `<key-prefix>dedupe:`, followed by the slot's unix minute (a hash, field fire id).
    pub dedupe_prefix: String,
    /// `<key-prefix>history:`, followed by the job id.
    pub history_prefix: String,
    /// `<queue-prefix>queue0..2`.
    pub queues: [String; 3],
    /// `<queue-prefix>delays`.
    pub delays: String,
    /// `<queue-prefix>delayed_jobs`.
    pub delayed_jobs: String,
    /// `<queue-prefix>delays_counter`.
    pub delays_counter: String,
    /// `<key-prefix>staging`: sorted set, score slot, member `<slot>:<priority>`.
    pub staging: String,
    /// `<key-prefix>staging:`, followed by `<slot>:<priority>` (a list laid out as a queue).
    pub staging_prefix: String,
}

impl Keys {
    /// The key names under these prefixes.
    pub fn new(queue_prefix: &str, key_prefix: &str) -> Keys {
        Keys {
            fence: format!("{key_prefix}fence"),
            cursors: format!("{key_prefix}cursors"),
            dedupe_prefix: format!("{key_prefix}dedupe:"),
            history_prefix: format!("{key_prefix}history:"),
            queues: [0, 1, 2].map(|p| format!("{queue_prefix}queue{p}")),
            delays: format!("{queue_prefix}delays"),
            delayed_jobs: format!("{queue_prefix}delayed_jobs"),
            delays_counter: format!("{queue_prefix}delays_counter"),
            staging: format!("{key_prefix}staging"),
            staging_prefix: format!("{key_prefix}staging:"),
        }
    }

    /// The history list of a job.
    pub fn history(&self, job_id: &str) -> String {
        format!("{}{job_id}", self.history_prefix)
    }

    /// The staging list of one slot and priority, from its index member `<slot>:<priority>`.
    pub fn staging_list(&self, member: &str) -> String {
        format!("{}{member}", self.staging_prefix)
    }
}

/// The staging index member of a slot (unix seconds) and priority.
pub fn staging_member(slot: i64, priority: u8) -> String {
    format!("{slot}:{priority}")
}

/// The slot and priority of a staging index member; `None` for anything this crate did not
/// write.
pub fn parse_staging_member(member: &str) -> Option<(i64, u8)> {
    let (slot, priority) = member.split_once(':')?;
    let priority: u8 = priority.parse().ok()?;
    (priority <= 2).then_some(())?;
    Some((slot.parse().ok()?, priority))
}

/// Where a call puts the immediate tasks, and which instant its tasks and history carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Into `queue<priority>` now: `created_at`, `enqueued_at` and a delayed task's base are
    /// the call's `now`.
    Direct,
    /// Into the staging list of (slot, priority), registered in the staging index: the
    /// labels and a delayed task's base are the fire's slot.
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
    /// The instant the run's history entries carry (unix ms).
    enqueued_ms: i64,
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
    runs: Vec<(RunKey, usize)>,
    /// The jobs of the call as they first appear (their history lists are declared keys).
    jobs: Vec<String>,
    seen_jobs: HashSet<String>,
    /// The per-fire arguments (fire id, job id, task JSON) back to back, and where each ends.
    data: Vec<u8>,
    ends: Vec<usize>,
    /// The last slot seen and its RFC3339 form (fires of a call mostly share a slot).
    slot: Option<(i64, String)>,
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
            runs: Vec::new(),
            jobs: Vec::new(),
            seen_jobs: HashSet::new(),
            data: Vec::with_capacity(fires * TYPICAL_FIRE_BYTES),
            ends: Vec::with_capacity(fires * 3),
            slot: None,
        }
    }

    /// Adds one fire (its task is encoded here; a job that cannot be encoded fails the batch
    /// before anything is sent).
    pub fn push(&mut self, job: &Job, fire: &Fire) -> Result<(), QueueError> {
        let secs = fire.slot.timestamp();
        let slot = match &self.slot {
            Some((s, text)) if *s == secs => text,
            _ => &self.slot.insert((secs, rfc3339(fire.slot))).1,
        };
        let mut id = Uuid::encode_buffer();
        self.data
            .extend_from_slice(fire.fire_id.hyphenated().encode_lower(&mut id).as_bytes());
        self.ends.push(self.data.len());
        let job_id = &job.spec.id;
        self.data.extend_from_slice(job_id.as_bytes());
        self.ends.push(self.data.len());
        if !self.seen_jobs.contains(job_id) {
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

        // The bucket must outlive the last slot it holds by the dedupe TTL.
        let minute = secs.div_euclid(DEDUPE_BUCKET_SECS);
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

        let f = &job.spec.function;
        let base = match self.mode {
            Mode::Direct => self.now,
            Mode::Staged => fire.slot,
        };
        let delay = f.delay.unwrap_or(0);
        let (target, ready) = if delay > 0 {
            (0, base.timestamp() + i64::from(delay))
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
        let key = RunKey {
            bucket,
            target,
            ready,
            slot: secs,
            kind: fire.kind,
            enqueued_ms: base.timestamp_millis(),
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
        cmd.arg(ENQUEUE_SHA.as_str())
            .arg(FIXED_KEYS + self.targets.len() + self.buckets.len() + self.jobs.len())
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
            cmd.arg(format!("{}{minute}", k.dedupe_prefix));
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
            .arg(self.buckets.len());
        for ((slot, _), member) in self.targets.iter().zip(&members) {
            match (slot, member) {
                (Some(s), Some(m)) => cmd.arg(*s).arg(m),
                _ => cmd.arg("").arg(""),
            };
        }
        for (_, ttl) in &self.buckets {
            cmd.arg(*ttl);
        }
        let mut arg = 0;
        let mut start = 0;
        for (key, count) in &self.runs {
            // Manual runs do not move the cursor: it says how far the schedule was enqueued,
            // and a manual run at 10:05 must not hide a missed 10:00 slot from the catch-up.
            let cursor = match key.kind {
                FireKind::Manual => String::new(),
                FireKind::Scheduled | FireKind::CatchUp => key.slot.to_string(),
            };
            let (head, tail) = history_parts(key, self.token, &self.node);
            cmd.arg(*count)
                .arg(key.bucket + 1)
                .arg(key.target)
                .arg(key.ready)
                .arg(cursor)
                .arg(head)
                .arg(tail);
            for _ in 0..count * 3 {
                let end = self.ends[arg];
                cmd.arg(&self.data[start..end]);
                start = end;
                arg += 1;
            }
        }
        cmd
    }
}

/// A fire's history entry is `{` + head + fire id + tail: the JSON of
/// [`HistoryEntry`](crate::HistoryEntry), of
/// which only the fire id differs within a run.
fn history_parts(key: &RunKey, token: u64, node: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let head = format!(
        "\"slot\":{},\"enqueued_at\":{},\"fire_id\":\"",
        key.slot, key.enqueued_ms
    )
    .into_bytes();
    let mut tail = format!("\",\"token\":{token},\"node\":").into_bytes();
    tail.extend_from_slice(node);
    tail.extend_from_slice(format!(",\"kind\":\"{}\"}}", kind_name(key.kind)).as_bytes());
    (head, tail)
}

/// The script's answer for one call.
pub enum Answer {
    /// Token below the fence.
    Fenced(u64),
    /// One outcome per fire.
    Done(Vec<FireOutcome>),
}

/// Decodes `{0, fence}` or `{1, "EDE..."}`.
pub fn decode(v: Value) -> Result<Answer, QueueError> {
    let bad = |what: &str| QueueError::Protocol(format!("enqueue script answered {what}"));
    let Value::Array(items) = v else {
        return Err(bad("a non-array"));
    };
    let [status, body] = items.as_slice() else {
        return Err(bad("an array of the wrong length"));
    };
    let body = match body {
        Value::BulkString(b) => b.as_slice(),
        Value::SimpleString(s) => s.as_bytes(),
        _ => return Err(bad("a non-string body")),
    };
    match status {
        Value::Int(0) => {
            let s = std::str::from_utf8(body).map_err(|_| bad("a non-UTF-8 fence"))?;
            let fence = s.parse().map_err(|_| bad("a fence that is not a number"))?;
            Ok(Answer::Fenced(fence))
        }
        Value::Int(1) => body
            .iter()
            .map(|c| match c {
                b'E' => Ok(FireOutcome::Enqueued),
                b'D' => Ok(FireOutcome::Duplicate),
                _ => Err(bad("an unknown outcome")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Answer::Done),
        _ => Err(bad("an unknown status")),
    }
}

/// What one release call did with one staging list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListReleased {
    /// Tasks moved into the queue.
    pub moved: u64,
    /// The list is empty and out of the index.
    pub done: bool,
}

/// The release script's answer for one call.
pub enum ReleaseAnswer {
    /// Token below the fence.
    Fenced(u64),
    /// One entry per list the call got to, in the order sent.
    Done(Vec<ListReleased>),
}

/// Decodes `{0, fence}` or `{1, moved_1, done_1, ...}`.
pub fn decode_release(v: Value) -> Result<ReleaseAnswer, QueueError> {
    let bad = |what: &str| QueueError::Protocol(format!("release script answered {what}"));
    let Value::Array(items) = v else {
        return Err(bad("a non-array"));
    };
    match items.first() {
        Some(Value::Int(0)) => {
            let fence = match items.get(1) {
                Some(Value::BulkString(b)) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("a fence that is not a number"))?,
                _ => return Err(bad("no fence")),
            };
            Ok(ReleaseAnswer::Fenced(fence))
        }
        Some(Value::Int(1)) => {
            let rest = &items[1..];
            if rest.len() % 2 != 0 {
                return Err(bad("an odd number of fields"));
            }
            rest.chunks(2)
                .map(|pair| match pair {
                    [Value::Int(moved), Value::Int(done)] => Ok(ListReleased {
                        moved: u64::try_from(*moved).map_err(|_| bad("a negative count"))?,
                        done: *done == 1,
                    }),
                    _ => Err(bad("a non-integer field")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(ReleaseAnswer::Done)
        }
        _ => Err(bad("an unknown status")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HistoryEntry;
    use chrono::TimeZone;

    #[test]
    fn staging_members_round_trip() {
        assert_eq!(staging_member(1_700_000_000, 2), "1700000000:2");
        assert_eq!(
            parse_staging_member("1700000000:2"),
            Some((1_700_000_000, 2))
        );
        assert_eq!(parse_staging_member("1700000000:3"), None);
        assert_eq!(parse_staging_member("junk"), None);
        assert_eq!(parse_staging_member("x:1"), None);
    }

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
                enqueued_ms: now.timestamp_millis(),
            };
            let mut node = Vec::new();
            json_str(&mut node, "node \"a\"");
            let (head, tail) = history_parts(&key, 12, &node);
            let entry = format!(
                "{{{}{}{}",
                String::from_utf8(head).unwrap(),
                fire.fire_id,
                String::from_utf8(tail).unwrap()
            );
            let want = HistoryEntry::new(&fire, 12, "node \"a\"", now);
            assert_eq!(entry, want.to_json());
        }
    }
}
