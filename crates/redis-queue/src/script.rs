//! The Lua scripts and their calling convention.
//!
//! Owns the key names, the argument layout of `enqueue.lua` (documented at the top of that
//! file: change both together) and the decoding of its answer. Everything a fire needs is
//! computed here, in Rust (task JSON, history JSON, TTL), so the script only does Redis
//! commands; that is what makes it fast (see BENCHMARKS.md).
//!
//! Must not talk to Redis: [`crate::queue`] sends what this builds.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use cron_core::{Fire, FireKind, Job};
use redis::{Cmd, Script, Value};

use crate::error::QueueError;
use crate::queue::{dedupe_ttl, FireOutcome};
use crate::task::{encode_task, HistoryEntry, TaskSettings};

/// The enqueue script.
pub const ENQUEUE_LUA: &str = include_str!("enqueue.lua");
/// The SHA1 of [`ENQUEUE_LUA`], for EVALSHA.
static ENQUEUE_SHA: LazyLock<String> =
    LazyLock::new(|| Script::new(ENQUEUE_LUA).get_hash().to_string());
/// Width of a dedupe bucket: fires whose slots fall in the same minute share one hash.
pub const DEDUPE_BUCKET_SECS: i64 = 60;
/// Fixed keys ahead of the per-fire keys in `KEYS`.
const FIXED_KEYS: usize = 8;
/// Fixed arguments ahead of the per-fire fields in `ARGV`.
const FIXED_ARGS: usize = 4;

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
        }
    }

    /// The history list of a job.
    pub fn history(&self, job_id: &str) -> String {
        format!("{}{job_id}", self.history_prefix)
    }
}

/// One EVALSHA of the enqueue script, being filled with fires.
pub struct EnqueueCall {
    keys: Vec<String>,
    args: Vec<String>,
    dedupe_prefix: String,
    history_prefix: String,
}

impl EnqueueCall {
    /// An empty call under `token`.
    pub fn new(keys: &Keys, token: u64, now: DateTime<Utc>, history_len: usize) -> EnqueueCall {
        let fixed = vec![
            keys.fence.clone(),
            keys.cursors.clone(),
            keys.queues[0].clone(),
            keys.queues[1].clone(),
            keys.queues[2].clone(),
            keys.delays.clone(),
            keys.delayed_jobs.clone(),
            keys.delays_counter.clone(),
        ];
        debug_assert_eq!(fixed.len(), FIXED_KEYS);
        // Trim only when the list has grown to twice its length: one LTRIM per `history_len`
        // pushes instead of one per push; readers only ever look at the last `history_len`.
        let hist_trim = history_len * 2;
        let args = vec![
            token.to_string(),
            now.timestamp().to_string(),
            history_len.to_string(),
            hist_trim.to_string(),
        ];
        debug_assert_eq!(args.len(), FIXED_ARGS);
        EnqueueCall {
            keys: fixed,
            args,
            dedupe_prefix: keys.dedupe_prefix.clone(),
            history_prefix: keys.history_prefix.clone(),
        }
    }

    /// Adds one fire (its task is encoded here; a job that cannot be encoded fails the batch
    /// before anything is sent).
    pub fn push(
        &mut self,
        job: &Job,
        fire: &Fire,
        token: u64,
        settings: &TaskSettings,
        now: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        let task = encode_task(job, fire, token, settings, now)?;
        let f = &job.spec.function;
        let minute = fire.slot.timestamp().div_euclid(DEDUPE_BUCKET_SECS);
        self.keys.push(format!("{}{minute}", self.dedupe_prefix));
        self.keys
            .push(format!("{}{}", self.history_prefix, job.spec.id));
        // The bucket must outlive the last slot it holds by the dedupe TTL.
        let bucket_end = (minute + 1) * DEDUPE_BUCKET_SECS;
        let pending_ms = (bucket_end - now.timestamp()).max(0) as u128 * 1000;
        let ttl_ms = u64::try_from(dedupe_ttl(job).as_millis() + pending_ms).unwrap_or(u64::MAX);
        // Manual runs do not move the cursor: it says how far the schedule was enqueued, and a
        // manual run at 10:05 must not hide a missed 10:00 slot from the catch-up.
        let cursor = match fire.kind {
            FireKind::Manual => String::new(),
            FireKind::Scheduled | FireKind::CatchUp => fire.slot.timestamp().to_string(),
        };
        let history = HistoryEntry::new(fire, token, &settings.node, now).to_json();
        self.args.extend([
            fire.fire_id.to_string(),
            job.spec.id.clone(),
            cursor,
            ttl_ms.to_string(),
            f.priority.to_string(),
            f.delay.unwrap_or(0).to_string(),
            task,
            history,
        ]);
        Ok(())
    }

    /// The EVALSHA command of this call.
    pub fn command(&self) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(ENQUEUE_SHA.as_str())
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        cmd
    }
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
