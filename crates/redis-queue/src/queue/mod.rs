//! The connection to Redis and every command cronnode sends it.
//!
//! Owns [`Queue`]: connecting (with a probe that turns a bad URL, bad credentials or a server
//! that is not Redis into a clear error, and the version check) here; the batched enqueue,
//! stage and amend in `send.rs`; what is staged, the release and the history of released
//! slots in `release.rs`; the fence and the read-back (cursors, history, depths) in
//! `read.rs`. The scripts' arguments are built by `crate::script`.
//!
//! Must not resend a call that may have been applied: a lost answer is reported as
//! [`QueueError::Unknown`], and the caller (the leader) retries the same fires with its own
//! backoff, which keeps one place deciding how long fires may wait. (A script call answered
//! NOSCRIPT did not run; redis-rs's `ScriptInvocation` then loads the script and sends the call
//! once more. The enqueue pipeline loads its script in front instead, and never resends.)
//! Reconnection itself is the ConnectionManager's (exponential backoff with a ceiling, see the
//! constants).

mod not_fired;
mod read;
mod release;
mod send;

pub use not_fired::NotFiredOutcome;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client};
use tokio::sync::Mutex;

use crate::error::QueueError;
use crate::script::Keys;

pub use release::PreparedRelease;

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
/// The oldest Redis the scripts are written for (variadic HSET, scripts replicated by their
/// effects, so they may read TIME).
pub const MIN_REDIS: (u32, u32) = (5, 0);
/// Most staged tasks one release call moves task by task (a staging list whose queue is empty
/// becomes the queue at once, whatever its length). A task costs Redis a few microseconds to
/// move that way, so one call holds Redis for a few tens of milliseconds at most; larger
/// releases take several calls, each atomic.
pub const RELEASE_TASKS_PER_CALL: usize = 5_000;
/// Most tasks a prepared release holds (read ahead of the slot, sent back in a transaction):
/// bounds the memory it takes on both sides.
pub const PREPARED_MAX_TASKS: usize = 50_000;

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

/// Lengths of the platform's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepths {
    /// `queue0`, `queue1`, `queue2`.
    pub queues: [u64; 3],
    /// Tasks waiting in the delayed set.
    pub delayed: u64,
}

/// A handle on Redis. Cheap to clone; clones share one multiplexed connection that reconnects.
#[derive(Clone)]
pub struct Queue {
    conn: ConnectionManager,
    /// For the connection a prepared release holds (its WATCH and MULTI are per connection).
    client: Client,
    /// That connection between two prepared releases.
    spare: Arc<Mutex<Option<MultiplexedConnection>>>,
    keys: Arc<Keys>,
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
    /// Connects, checks that the server is Redis 5.0 or later and accepts the credentials.
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
        let conn = ConnectionManager::new_with_config(client.clone(), manager_cfg)
            .await
            .map_err(|e| classify_connect(e, &addr))?;
        Ok(Queue {
            conn,
            client,
            spare: Arc::new(Mutex::new(None)),
            keys: Arc::new(Keys::new(&cfg.queue_prefix, &cfg.key_prefix)),
            history_len: cfg.history_len.max(1),
            fires_per_call: DEFAULT_FIRES_PER_CALL,
        })
    }

    /// Sets how many fires go into one script call (clamped to 1..=[`MAX_FIRES_PER_CALL`]).
    pub fn with_fires_per_call(mut self, n: usize) -> Queue {
        self.fires_per_call = n.clamp(1, MAX_FIRES_PER_CALL);
        self
    }
}

/// Checks a token before it is sent (see [`MAX_TOKEN`]).
fn check_token(token: u64) -> Result<(), QueueError> {
    if token > MAX_TOKEN {
        return Err(QueueError::Token(token));
    }
    Ok(())
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
    // The server's error code (the first word of its error reply), never the message text.
    let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"));
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
