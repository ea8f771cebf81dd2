//! # redis-queue: fenced, deduplicated, batched enqueue
//!
//! Turns fires into IronFunctions tasks and pushes them onto the platform's Redis queue in one
//! atomic script call per batch, carrying the leader's fencing token. It carries three of
//! cronnode's guarantees (docs/design.md):
//!
//! 1. **Exactly once per slot**: a task is pushed only when its slot's dedupe key
//!    (field `<fire id>` of the hash `<key-prefix>dedupe:<slot's unix minute>`) is new; the
//!    bucket lives at least until its last slot + the job's catch-up window + 1 day.
//! 2. **Fencing**: the script refuses a whole batch whose token is below the stored fence.
//! 3. **Record and enqueue are one step**: the job's cursor and history are written by the
//!    same script that pushes the task.
//!
//! The same script can *stage* fires ahead of their slot ([`Queue::stage`]: everything but the
//! push into the queue, which goes to a staging list registered in an index by the same call);
//! [`Queue::release`] moves staged tasks into the queues at their slot with one cheap fenced
//! script, and [`Queue::staged_slots`] tells a new leader what its predecessor left staged.
//!
//! ## Layout
//!
//! - [`task`]: the IronFunctions task JSON and the history entry (pure, no I/O);
//! - `encode` (private): the task JSON written straight into a buffer (the hot path);
//! - `script` (private): the Lua scripts (src/fence.lua in front of src/enqueue.lua and src/release.lua), key names,
//!   argument layout;
//! - [`queue`]: [`Queue`], the connection, the enqueue, the fence and the read-back;
//! - [`error`]: the error type, [`QueueError`];
//! - `test_server` (feature `test-server`): a private redis-server for tests.
//!
//! ## Redis layout
//!
//! Under the key prefix (default `{cronnode}:`, a Cluster hash tag): `fence` (string),
//! `dedupe:<unix minute>` (hash: fire id → token, one per slot minute, with a TTL),
//! `cursors` (hash: job id → last enqueued slot in unix seconds, only ever advanced),
//! `history:<job id>` (list of JSON entries, oldest first, capped), `staging` (sorted set:
//! `<slot>:<priority>` → slot) and `staging:<slot>:<priority>` (lists of staged tasks, laid out
//! as the queue). Under the queue prefix (default empty): the
//! platform's `queue0..2`, `delays`, `delayed_jobs`, `delays_counter`. One Redis primary is
//! assumed: under Redis Cluster the queue keys would live in other slots than cronnode's, and
//! the script touches both. Redis 5.0 or later.
//!
//! **Architecture Invariant:** no enqueue without a fencing token; every write of a fire
//! (dedupe, push, cursor, history) happens inside the one script call.
//!
//! Start reading at [`Queue::enqueue`].
#![deny(missing_docs)]

mod encode;
pub mod error;
pub mod queue;
mod script;
pub mod task;
#[cfg(feature = "test-server")]
pub mod test_server;

pub use error::QueueError;
pub use queue::{
    dedupe_ttl, BatchOutcome, FireOutcome, Queue, QueueConfig, QueueDepths, ReleaseOutcome,
    ReleasedSlot, DEDUPE_MARGIN, RELEASE_TASKS_PER_CALL,
};
pub use task::{encode_task, HistoryEntry, Task, TaskError, TaskSettings};
