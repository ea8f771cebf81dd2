//! The connection to Redis and every command cronnode sends it.
//!
//! Owns [`Queue`]: connecting (with a probe that turns a bad URL, bad credentials or a server
//! that is not Redis into a clear error), the batched enqueue through the script in
//! the `script` module, the fence, and the read-back (cursors, history, depths).
//!
//! Must not retry an enqueue on its own: a lost answer is reported as
//! [`QueueError::Unknown`], and the caller (the leader loop) retries the same fires with its own
//! backoff, which keeps one place deciding how long fires may wait. Reconnection itself is the
//! ConnectionManager's (exponential backoff with a ceiling, see the constants).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use cron_core::{Fire, Job};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client, Value};

use crate::error::QueueError;
use crate::script::{self, EnqueueCall, Mode};
use crate::task::{HistoryEntry, TaskSettings};

/// Where the platform's queue keys start (IronFunctions' `MQ_URL` path); default empty.
pub const DEFAULT_QUEUE_PREFIX: &str = "";
/// Where cronnode's own keys start. The braces are a Redis Cluster hash tag: all of cronnode's
/// keys hash to one slot, so the script may touch them together.
pub const DEFAULT_KEY_PREFIX: &str = "{cronnode}:";
/// History entries kept per job.
pub const DEFAULT_HISTORY_LEN: usize = 100;
/// The URL used when none is configured.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/";
/// Fires per script call. A call holds Redis for its whole run (about 2-5 µs per fire), so
/// this bounds the pause other clients see to a few milliseconds; larger batches are split
/// into several calls sent in one pipeline.
pub const DEFAULT_FIRES_PER_CALL: usize = 500;
/// Script calls per pipeline.
pub const CALLS_PER_PIPELINE: usize = 2;
/// Pipelines sent and not yet answered while the next is encoded (latency hiding).
pub const PIPELINES_IN_FLIGHT: usize = 4;
/// Cap for [`Queue::with_fires_per_call`]: keeps one call's argument list and pause sane.
pub const MAX_FIRES_PER_CALL: usize = 5_000;
/// Largest fencing token: the script compares tokens as decimal strings, any u64 fits; the
/// cap only keeps the value printable as an exact integer in Lua and in JSON readers.
pub const MAX_TOKEN: u64 = (1 << 53) - 1;
/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one command (a whole pipelined batch) may wait for its answer.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Reconnection backoff: first delay, factor 2, ceiling, attempts per outage.
pub const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
/// The ceiling of the reconnection backoff.
pub const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);
/// Reconnection attempts before pending commands fail (the next command starts a new round).
pub const RECONNECT_ATTEMPTS: usize = 6;
/// Margin added to a job's catch-up window for the dedupe TTL (see [`dedupe_ttl`]).
pub const DEDUPE_MARGIN: Duration = Duration::from_secs(24 * 3600);
/// The oldest Redis the script is written for (variadic HSET, scripts replicated by effects).
pub const MIN_REDIS: (u32, u32) = (5, 0);
/// Ceiling of [`dedupe_ttl`] (cron-core caps windows at 7 days; this keeps a bad window from
/// reaching Redis as an expire time it refuses halfway through a script).
pub const MAX_DEDUPE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Job ids per HMGET call when reading cursors.
const CURSOR_READ_CHUNK: usize = 1_000;
/// Most staged tasks one release call moves task by task (a staging list whose queue is empty
/// becomes the queue at once, whatever its length). A task costs Redis about a microsecond to
/// move, so one call holds Redis for a few milliseconds at most; larger releases take several
/// calls, each atomic.
pub const RELEASE_TASKS_PER_CALL: usize = 5_000;
/// Staging lists named in one release call.
const RELEASE_LISTS_PER_CALL: usize = 64;
/// Most staging index entries read at once. There are at most three per staged slot (one per
/// priority), and a leader stages a few seconds ahead, so this is never reached in practice.
const STAGED_READ_LIMIT: usize = 10_000;

/// Where Redis is and how cronnode's keys are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// `redis://[user:password@]host:port/db` or `rediss://...` (TLS).
    pub url: String,
    /// Prefix of the platform's keys (`queue0..2`, `delays`, ...); default empty.
    pub queue_prefix: String,
    /// Prefix of cronnode's keys (fence, dedupe, cursors, history); default `{cronnode}:`.
    pub key_prefix: String,
    /// History entries kept per job.
    pub history_len: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            url: DEFAULT_URL.to_string(),
            queue_prefix: DEFAULT_QUEUE_PREFIX.to_string(),
            key_prefix: DEFAULT_KEY_PREFIX.to_string(),
            history_len: DEFAULT_HISTORY_LEN,
        }
    }
}

impl QueueConfig {
    /// The defaults, with this URL.
    pub fn new(url: impl Into<String>) -> QueueConfig {
        QueueConfig {
            url: url.into(),
            ..QueueConfig::default()
        }
    }
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
    /// Pushed onto the queue (or the delayed set) by this call.
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

/// Lengths of the platform's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepths {
    /// `queue0`, `queue1`, `queue2`.
    pub queues: [u64; 3],
    /// Tasks waiting in the delayed set.
    pub delayed: u64,
}

/// How long a fire's dedupe key lives: the job's catch-up window plus [`DEDUPE_MARGIN`].
///
/// A slot is only ever (re-)enqueued while it is inside its job's window, so the key outlives
/// every attempt by at least the margin (which also absorbs clock skew between nodes).
pub fn dedupe_ttl(job: &Job) -> Duration {
    job.catchup_window
        .saturating_add(DEDUPE_MARGIN)
        .min(MAX_DEDUPE_TTL)
}

/// A handle on Redis. Cheap to clone; clones share one multiplexed connection that reconnects.
#[derive(Clone)]
pub struct Queue {
    conn: ConnectionManager,
    keys: Arc<script::Keys>,
    history_len: usize,
    fires_per_call: usize,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("keys", &self.keys)
            .field("history_len", &self.history_len)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// Connects, checks that the server is Redis 6.2 or later and accepts the credentials.
    pub async fn connect(cfg: QueueConfig) -> Result<Queue, QueueError> {
        if cfg.key_prefix.is_empty() || cfg.key_prefix.chars().any(char::is_whitespace) {
            return Err(QueueError::BadPrefix(cfg.key_prefix));
        }
        if !(cfg.url.starts_with("redis://") || cfg.url.starts_with("rediss://")) {
            return Err(QueueError::BadUrl {
                url: mask_password(&cfg.url),
                reason: "the scheme must be redis:// or rediss://".into(),
            });
        }
        let client = Client::open(cfg.url.as_str()).map_err(|e| QueueError::BadUrl {
            url: mask_password(&cfg.url),
            reason: e.to_string(),
        })?;
        let addr = client.get_connection_info().addr().to_string();
        probe(&client, &addr).await?;
        let manager_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY)
            .set_exponent_base(2.0)
            .set_number_of_retries(RECONNECT_ATTEMPTS);
        let conn = ConnectionManager::new_with_config(client, manager_cfg)
            .await
            .map_err(|e| classify_connect(e, &addr))?;
        Ok(Queue {
            conn,
            keys: Arc::new(script::Keys::new(&cfg.queue_prefix, &cfg.key_prefix)),
            history_len: cfg.history_len.max(1),
            fires_per_call: DEFAULT_FIRES_PER_CALL,
        })
    }

    /// Sets how many fires go into one script call (clamped to 1..=[`MAX_FIRES_PER_CALL`]).
    pub fn with_fires_per_call(mut self, n: usize) -> Queue {
        self.fires_per_call = n.clamp(1, MAX_FIRES_PER_CALL);
        self
    }

    /// Enqueues a batch of fires under the leader's fencing `token`, atomically per call.
    ///
    /// For each fire: its slot's dedupe key is set (TTL [`dedupe_ttl`]); only if that succeeds
    /// the task is pushed (`queue<priority>`, or the delayed set for a job with a delay), the
    /// job's cursor advances to the slot (never backwards; manual fires do not move it) and an
    /// entry goes into the job's history. The batch is split into calls of
    /// [`DEFAULT_FIRES_PER_CALL`], sent in order in pipelines of [`CALLS_PER_PIPELINE`] calls. A token above the fence
    /// raises the fence. `now` is the enqueue instant: the task's `created_at`, the history's
    /// `enqueued_at`, and the base of a delayed task's ready time.
    ///
    /// On [`QueueError::Unknown`] retry the same fires: those already applied come back
    /// [`FireOutcome::Duplicate`].
    pub async fn enqueue(
        &self,
        batch: &[(Arc<Job>, Fire)],
        token: u64,
        settings: &TaskSettings,
        now: DateTime<Utc>,
    ) -> Result<BatchOutcome, QueueError> {
        self.send(batch, token, settings, now, Mode::Direct).await
    }

    /// Stages a batch of fires ahead of their slots, under the leader's fencing `token`:
    /// everything [`Queue::enqueue`] does (fence, dedupe, cursor := slot, history), atomically
    /// per call, except that an immediate task goes to the staging list of its (slot,
    /// priority) (`<key-prefix>staging:<slot>:<priority>`, registered in the index
    /// `<key-prefix>staging` by the same call) instead of its queue. [`Queue::release`] moves
    /// it there at the slot. A delayed task (`function.delay > 0`) goes straight into the
    /// platform's delayed set, ready at slot + delay (the platform's mover releases it).
    ///
    /// The tasks' `created_at`, the history's `enqueued_at` and a delayed task's base are the
    /// fire's slot, not `now`; `now` (the caller's clock) only sets how long the dedupe keys
    /// live. From this call on, the cursor and the history say the fire was enqueued.
    ///
    /// On [`QueueError::Unknown`] retry the same fires (with `stage`, or `enqueue` once their
    /// slot has passed): those already staged come back [`FireOutcome::Duplicate`], and stay
    /// staged until a release.
    pub async fn stage(
        &self,
        batch: &[(Arc<Job>, Fire)],
        token: u64,
        settings: &TaskSettings,
        now: DateTime<Utc>,
    ) -> Result<BatchOutcome, QueueError> {
        self.send(batch, token, settings, now, Mode::Staged).await
    }

    async fn send(
        &self,
        batch: &[(Arc<Job>, Fire)],
        token: u64,
        settings: &TaskSettings,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> Result<BatchOutcome, QueueError> {
        if token > MAX_TOKEN {
            return Err(QueueError::Token(token));
        }
        if batch.is_empty() {
            return Ok(BatchOutcome::Done(Vec::new()));
        }
        // Every job is checked before anything is sent, so a job that cannot be encoded
        // never leaves half a batch behind.
        for (job, _) in batch {
            settings.check_job(job)?;
        }
        // Pipelines of a few calls, several in flight while the next is encoded: Redis runs
        // the scripts while this task builds arguments. Each pipeline is polled once as soon
        // as it is made, which hands it to the connection, so the calls reach Redis in input
        // order; after a Fenced answer nothing more is sent.
        let group_len = self.fires_per_call * CALLS_PER_PIPELINE;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut pending: VecDeque<PipelineFuture> = VecDeque::new();
        for group in batch.chunks(group_len) {
            let pipe = self.pipeline(group, token, settings, now, mode)?;
            let mut fut: PipelineFuture = Box::pin(run_pipeline(self.conn.clone(), pipe));
            let early = tokio::select! {
                biased;
                r = &mut fut => Some(r),
                () = std::future::ready(()) => None,
            };
            if let Some(r) = early {
                fut = Box::pin(std::future::ready(r));
            }
            pending.push_back(fut);
            while pending.len() >= PIPELINES_IN_FLIGHT {
                if let Some(oldest) = pending.pop_front() {
                    if let Some(fence) = collect(oldest.await?, &mut outcomes)? {
                        return Ok(BatchOutcome::Fenced { fence });
                    }
                }
            }
        }
        while let Some(oldest) = pending.pop_front() {
            if let Some(fence) = collect(oldest.await?, &mut outcomes)? {
                return Ok(BatchOutcome::Fenced { fence });
            }
        }
        if outcomes.len() != batch.len() {
            return Err(QueueError::Protocol(format!(
                "{} outcomes for {} fires",
                outcomes.len(),
                batch.len()
            )));
        }
        Ok(BatchOutcome::Done(outcomes))
    }

    /// One pipeline: SCRIPT LOAD (so EVALSHA cannot miss the script on a restarted Redis),
    /// then one EVALSHA per `fires_per_call` fires.
    fn pipeline(
        &self,
        group: &[(Arc<Job>, Fire)],
        token: u64,
        settings: &TaskSettings,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> Result<redis::Pipeline, QueueError> {
        let mut pipe = redis::pipe();
        pipe.cmd("SCRIPT")
            .arg("LOAD")
            .arg(script::ENQUEUE_LUA)
            .ignore();
        for chunk in group.chunks(self.fires_per_call) {
            let mut call = EnqueueCall::new(
                &self.keys,
                settings,
                token,
                now,
                mode,
                self.history_len,
                chunk.len(),
            );
            for (job, fire) in chunk {
                call.push(job, fire)?;
            }
            pipe.add_command(call.command());
        }
        Ok(pipe)
    }

    /// Moves every staged task whose slot is at or before `now` into its queue, under the
    /// leader's fencing `token`: the staging lists oldest slot first, each task exactly once
    /// (a list is moved and removed, with its index entry, by one atomic call), and in staging
    /// order behind what the queue already holds (RPOP consumers take the older tasks first).
    /// A staging list whose queue is empty becomes the queue in O(1); otherwise the shorter
    /// side is moved (the queue's backlog behind the staged tasks, or the staged tasks onto
    /// the queue), at most [`RELEASE_TASKS_PER_CALL`] tasks per call, so no call holds Redis
    /// long.
    ///
    /// Safe to repeat: on [`QueueError::Unknown`] call it again (what was moved is gone from
    /// the staging lists). A token above the fence raises it.
    pub async fn release(
        &self,
        token: u64,
        now: DateTime<Utc>,
    ) -> Result<ReleaseOutcome, QueueError> {
        if token > MAX_TOKEN {
            return Err(QueueError::Token(token));
        }
        let mut conn = self.conn.clone();
        let mut moved: BTreeMap<i64, u64> = BTreeMap::new();
        let script = script::release();
        // Released lists leave the index, so a full read is followed by another.
        let mut full = true;
        while full {
            let lists = self.staged_lists(&mut conn, now.timestamp()).await?;
            full = lists.len() >= STAGED_READ_LIMIT;
            let mut i = 0;
            while i < lists.len() {
                let group = &lists[i..lists.len().min(i + RELEASE_LISTS_PER_CALL)];
                let mut inv = script.prepare_invoke();
                inv.key(&self.keys.fence)
                    .key(&self.keys.staging)
                    .key(&self.keys.queues[..]);
                for (member, _, _) in group {
                    inv.key(self.keys.staging_list(member));
                }
                inv.arg(token.to_string()).arg(RELEASE_TASKS_PER_CALL);
                for (member, _, priority) in group {
                    inv.arg(*priority).arg(member);
                }
                let answer: Value = inv
                    .invoke_async(&mut conn)
                    .await
                    .map_err(QueueError::from_call)?;
                let lists_done = match script::decode_release(answer)? {
                    script::ReleaseAnswer::Fenced(fence) => {
                        return Ok(ReleaseOutcome::Fenced { fence })
                    }
                    script::ReleaseAnswer::Done(answers) => {
                        let mut progress = false;
                        for ((_, slot, _), a) in group.iter().zip(&answers) {
                            *moved.entry(*slot).or_default() += a.moved;
                            progress |= a.moved > 0 || a.done;
                        }
                        if !progress {
                            return Err(QueueError::Protocol(
                                "the release script moved nothing and finished no list".into(),
                            ));
                        }
                        answers.iter().take_while(|a| a.done).count()
                    }
                };
                // A list the budget cut short is named again first in the next call.
                i += lists_done;
            }
        }
        Ok(ReleaseOutcome::Done(
            moved
                .into_iter()
                .filter_map(|(slot, tasks)| {
                    let slot = Utc.timestamp_opt(slot, 0).single()?;
                    Some(ReleasedSlot { slot, tasks })
                })
                .collect(),
        ))
    }

    /// The slots with staged tasks not yet released (the staging index), oldest first. A new
    /// leader reads them after raising the fence (nothing older can be staged after that) and
    /// releases each at its slot.
    pub async fn staged_slots(&self) -> Result<Vec<DateTime<Utc>>, QueueError> {
        let mut conn = self.conn.clone();
        let lists = self.staged_lists(&mut conn, i64::MAX).await?;
        let mut slots: Vec<DateTime<Utc>> = lists
            .iter()
            .filter_map(|(_, s, _)| Utc.timestamp_opt(*s, 0).single())
            .collect();
        slots.dedup();
        Ok(slots)
    }

    /// The staging index entries with a slot at or before `until`: (member, slot, priority),
    /// by slot, from a read of at most [`STAGED_READ_LIMIT`] entries. Entries this crate did
    /// not write are skipped (and logged).
    async fn staged_lists(
        &self,
        conn: &mut ConnectionManager,
        until: i64,
    ) -> Result<Vec<(String, i64, u8)>, QueueError> {
        let max = if until == i64::MAX {
            "+inf".to_string()
        } else {
            until.to_string()
        };
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&self.keys.staging)
            .arg("-inf")
            .arg(max)
            .arg("LIMIT")
            .arg(0)
            .arg(STAGED_READ_LIMIT)
            .query_async(conn)
            .await
            .map_err(QueueError::from_call)?;
        let mut lists: Vec<(String, i64, u8)> = members
            .into_iter()
            .filter_map(|m| match script::parse_staging_member(&m) {
                Some((slot, p)) => Some((m, slot, p)),
                None => {
                    tracing::warn!(member = %m, key = %self.keys.staging, "ignoring a staging index entry cronnode did not write");
                    None
                }
            })
            .collect();
        lists.sort_by_key(|(_, slot, p)| (*slot, *p));
        Ok(lists)
    }

    /// Raises the fence to `token` if it is higher; answers the fence now in Redis.
    pub async fn raise_fence(&self, token: u64) -> Result<u64, QueueError> {
        if token > MAX_TOKEN {
            return Err(QueueError::Token(token));
        }
        let mut conn = self.conn.clone();
        let fence: String = script::raise_fence()
            .key(&self.keys.fence)
            .arg(token.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(QueueError::from_call)?;
        parse_token(&fence)
    }

    /// Sets the fence to exactly `token` (operator command, after Consul was rebuilt and its
    /// indexes started again below the fence).
    pub async fn reset_fence(&self, token: u64) -> Result<(), QueueError> {
        if token > MAX_TOKEN {
            return Err(QueueError::Token(token));
        }
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(&self.keys.fence)
            .arg(token.to_string())
            .query_async::<()>(&mut conn)
            .await
            .map_err(QueueError::from_call)
    }

    /// The fence, or `None` when no leader has set one yet.
    pub async fn fence(&self) -> Result<Option<u64>, QueueError> {
        let mut conn = self.conn.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(&self.keys.fence)
            .query_async(&mut conn)
            .await
            .map_err(QueueError::from_call)?;
        v.as_deref().map(parse_token).transpose()
    }

    /// The last enqueued slot of each of these jobs (jobs never enqueued are absent).
    pub async fn cursors(
        &self,
        job_ids: &[&str],
    ) -> Result<HashMap<String, DateTime<Utc>>, QueueError> {
        let mut out = HashMap::with_capacity(job_ids.len());
        let mut conn = self.conn.clone();
        for chunk in job_ids.chunks(CURSOR_READ_CHUNK) {
            let slots: Vec<Option<i64>> = redis::cmd("HMGET")
                .arg(&self.keys.cursors)
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(QueueError::from_call)?;
            for (id, slot) in chunk.iter().zip(slots) {
                let Some(secs) = slot else { continue };
                if let Some(t) = Utc.timestamp_opt(secs, 0).single() {
                    out.insert((*id).to_string(), t);
                }
            }
        }
        Ok(out)
    }

    /// The job's history, newest first (at most the configured length). Entries that do not
    /// parse (written by something else) are skipped.
    pub async fn history(&self, job_id: &str) -> Result<Vec<HistoryEntry>, QueueError> {
        let mut conn = self.conn.clone();
        // Stored oldest first (appending is cheaper for Redis); answered newest first.
        let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.keys.history(job_id))
            .arg(-(self.history_len as i64))
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(QueueError::from_call)?;
        Ok(raw
            .iter()
            .rev()
            .filter_map(|b| HistoryEntry::from_json(b))
            .collect())
    }

    /// Lengths of `queue0..2` and of the delayed set.
    pub async fn queue_depths(&self) -> Result<QueueDepths, QueueError> {
        let mut conn = self.conn.clone();
        let (q0, q1, q2, delayed): (u64, u64, u64, u64) = redis::pipe()
            .cmd("LLEN")
            .arg(&self.keys.queues[0])
            .cmd("LLEN")
            .arg(&self.keys.queues[1])
            .cmd("LLEN")
            .arg(&self.keys.queues[2])
            .cmd("ZCARD")
            .arg(&self.keys.delays)
            .query_async(&mut conn)
            .await
            .map_err(QueueError::from_call)?;
        Ok(QueueDepths {
            queues: [q0, q1, q2],
            delayed,
        })
    }

    /// Checks that Redis answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(QueueError::from_call)
    }
}

/// Sends a pipeline. If NOSCRIPT comes back despite the SCRIPT LOAD in front (a SCRIPT FLUSH
/// in between), it is sent once more: safe, since applied fires come back as duplicates.
async fn run_pipeline(
    mut conn: ConnectionManager,
    pipe: redis::Pipeline,
) -> Result<Vec<Value>, QueueError> {
    match pipe.query_async::<Vec<Value>>(&mut conn).await {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => pipe
            .query_async::<Vec<Value>>(&mut conn)
            .await
            .map_err(QueueError::from_call),
        Err(e) => Err(QueueError::from_call(e)),
    }
}

/// A pipeline on its way: its answers, one per script call.
type PipelineFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Value>, QueueError>> + Send>>;

/// Appends a pipeline's outcomes; answers the fence if a call was fenced.
fn collect(
    answers: Vec<Value>,
    outcomes: &mut Vec<FireOutcome>,
) -> Result<Option<u64>, QueueError> {
    for answer in answers {
        match script::decode(answer)? {
            script::Answer::Fenced(fence) => return Ok(Some(fence)),
            script::Answer::Done(mut o) => outcomes.append(&mut o),
        }
    }
    Ok(None)
}

fn parse_token(s: &str) -> Result<u64, QueueError> {
    s.parse()
        .map_err(|_| QueueError::Protocol(format!("the fence holds {s:?}, not a token")))
}

/// One direct connection (no retries) to turn setup failures into precise errors, and the
/// version check (see [`MIN_REDIS`]).
async fn probe(client: &Client, addr: &str) -> Result<(), QueueError> {
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(CONNECT_TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| classify_connect(e, addr))?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .map_err(|e| classify_connect(e, addr))?;
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(str::trim)
        .unwrap_or("unknown");
    if !version_at_least(version, MIN_REDIS) {
        return Err(QueueError::TooOld {
            addr: addr.to_string(),
            version: version.to_string(),
        });
    }
    Ok(())
}

fn version_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= min
}

fn classify_connect(e: redis::RedisError, addr: &str) -> QueueError {
    let addr = addr.to_string();
    let text = e.to_string();
    let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH");
    if auth {
        return QueueError::Auth { addr, detail: text };
    }
    match e.kind() {
        redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => {
            QueueError::NotRedis { addr, detail: text }
        }
        redis::ErrorKind::InvalidClientConfig => QueueError::BadUrl {
            url: addr,
            reason: text,
        },
        _ if e.is_io_error() || e.is_timeout() => QueueError::Unreachable { addr, detail: text },
        _ => QueueError::Redis(text),
    }
}

/// The URL with its password replaced by `***`, for error messages and logs.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(mask_password("redis://u:pw@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(mask_password("redis://h:1/"), "redis://h:1/");
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(version_at_least("7.0.15", MIN_REDIS));
        assert!(version_at_least("10.0.0", MIN_REDIS));
        assert!(!version_at_least("4.0.14", MIN_REDIS));
        assert!(!version_at_least("unknown", MIN_REDIS));
    }
}
