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
//! The same script can *stage* fires ahead of their slot ([`Queue::stage`]: the fence, the
//! dedupe mark and the cursor, but the task goes to a staging list registered in an index by
//! the same call, and the fire is recorded with the version of its spec);
//! [`Queue::amend`] withdraws staged fires or restages them with a new spec when a job is
//! paused, deleted or changed; [`Queue::release`] moves staged tasks into the queues at their
//! slot with one cheap fenced script (or [`Queue::release_prepared`], a transaction prepared
//! ahead, when the queue holds a backlog); [`Queue::record_released`] then writes their
//! history, saying when they reached the queue; [`Queue::staged`] tells a new leader what its
//! predecessor left staged.
//!
//! ## Layout (each layer looks only down)
//!
//! - `model` (private): the node's task settings and the rules that make a task's fields;
//! - `encode` (private): the task JSON written straight into a buffer (the hot path);
//! - [`task`]: the IronFunctions task JSON and the history entry (pure, no I/O);
//! - [`calls`]: the values the calls take and answer;
//! - `script` (private): the Lua scripts (`src/lua/`), key names, argument layouts, answers;
//! - [`queue`]: [`Queue`], the connection, the calls, the fence and the read-back;
//! - [`error`]: the error type, [`QueueError`];
//! - `test_server` (feature `test-server`): a private redis-server for tests.
//!
//! ## Redis layout
//!
//! Under the key prefix (default `{cronnode}:`, a Cluster hash tag): `fence` (string),
//! `dedupe:<unix minute>` (hash: fire id → token, one per slot minute, with a TTL),
//! `cursors` (hash: job id → last enqueued slot in unix seconds), `history:<job id>` (list of
//! JSON entries, oldest first, capped), `staging` (sorted set: `<slot>:<priority>` → slot),
//! `staging:<slot>:<priority>` (lists of staged tasks, laid out as the queue),
//! `staged:<slot>` and `staged-tasks:<slot>` (hashes: fire id → meta, and → a copy of its
//! task), `released` (sorted set: slot → release instant, unix ms) and `released:<slot>`
//! (hash: fire id → meta, awaiting its history entry). Under the queue prefix (default empty):
//! the platform's `queue0..2`, `delays`, `delayed_jobs`, `delays_counter`. One Redis primary
//! is assumed: under Redis Cluster the queue keys would live in other slots than cronnode's,
//! and the scripts touch both. Redis 5.0 or later.
//!
//! **Architecture Invariant:** no write for a fire without a fencing token; every write of a
//! fire (dedupe, push or stage, cursor, history or staged record) happens inside one script
//! call.
//!
//! Start reading at [`Queue::enqueue`].
#![deny(missing_docs)]

pub mod calls;
mod encode;
pub mod error;
mod model;
pub mod queue;
mod script;
pub mod task;
#[cfg(feature = "test-server")]
pub mod test_server;

pub use calls::{
    AmendOutcome, Amended, BatchOutcome, FireOutcome, RecordOutcome, ReleaseOutcome, ReleasedSlot,
    StageFire, StagedEntry, StagedState,
};
pub use error::QueueError;
pub use queue::{
    NotFiredOutcome, PreparedRelease, Queue, QueueConfig, QueueDepths, PREPARED_MAX_TASKS,
    RELEASE_TASKS_PER_CALL,
};
pub use script::{dedupe_ttl, DEDUPE_MARGIN, MAX_DEDUPE_TTL};
pub use task::{
    encode_task, HistoryEntry, RouteState, RouteTask, Routes, Task, TaskError, TaskSettings,
};
