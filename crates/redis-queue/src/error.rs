//! The errors of the queue, worded for an operator reading a log line.
//!
//! Expected outcomes (a duplicate fire, a fenced batch) are not errors: see
//! [`crate::BatchOutcome`]. Every error here is safe to answer with a retry of the same fires:
//! the dedupe keys make a repeated fire a no-op.

use crate::task::TaskError;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// `REDIS_URL` (or the configured URL) does not parse.
    #[error("invalid Redis URL {url:?}: {reason} (expected redis://[user:password@]host:port/db or rediss://...)")]
    BadUrl {
        /// The URL with any password masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key prefix is not usable (empty, or contains whitespace).
    #[error("invalid key prefix {0:?}: must be non-empty, without whitespace")]
    BadPrefix(String),
    /// The server refused the credentials.
    #[error("Redis at {addr} refused the credentials: {detail}")]
    Auth {
        /// host:port.
        addr: String,
        /// The server's message.
        detail: String,
    },
    /// Something answered, but not in the Redis protocol.
    #[error("{addr} does not speak the Redis protocol: {detail}")]
    NotRedis {
        /// host:port.
        addr: String,
        /// What the client could not parse.
        detail: String,
    },
    /// The server is too old for the enqueue script.
    #[error("Redis at {addr} is version {version}; cronnode needs Redis 5.0 or later")]
    TooOld {
        /// host:port.
        addr: String,
        /// The version it reported.
        version: String,
    },
    /// The server could not be reached (refused, timed out, DNS) before anything was sent.
    #[error("cannot reach Redis at {addr}: {detail}")]
    Unreachable {
        /// host:port.
        addr: String,
        /// The underlying error.
        detail: String,
    },
    /// The connection failed while a batch was in flight: it may or may not have been applied.
    /// Retry the same fires; duplicates are dropped by the dedupe keys.
    #[error("outcome of the enqueue is unknown (connection lost: {0}); retry the same fires")]
    Unknown(String),
    /// Redis answered with an error.
    #[error("Redis error: {0}")]
    Redis(String),
    /// Redis answered something this crate did not expect (a key of the wrong shape?).
    #[error("unexpected answer from Redis: {0}")]
    Protocol(String),
    /// A job in the batch cannot be encoded as a task; nothing of the batch was sent.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// A fire of a job with a delay was given to `stage`: its task would go to the platform's
    /// delayed set at once, where a pause could not withdraw it. Enqueue it at its slot.
    #[error(
        "job {job}: a fire of a job with function.delay cannot be staged; enqueue it at its slot"
    )]
    StagedDelay {
        /// The job id.
        job: String,
    },
    /// The fencing token does not fit the stored form.
    #[error("fencing token {0} is out of range")]
    Token(u64),
}

impl QueueError {
    /// Maps a client error of a call that was (maybe) sent.
    pub(crate) fn from_call(e: redis::RedisError) -> QueueError {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error()
        {
            QueueError::Unknown(e.to_string())
        } else if e.kind() == redis::ErrorKind::Parse {
            QueueError::Protocol(e.to_string())
        } else {
            QueueError::Redis(e.to_string())
        }
    }

    /// Whether retrying later may succeed (connection trouble rather than a refusal).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            QueueError::Unknown(_) | QueueError::Unreachable { .. } | QueueError::Redis(_)
        )
    }
}
