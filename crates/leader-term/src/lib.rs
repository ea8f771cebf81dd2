//! # leader-term: a node's leadership, as a sans-IO state machine
//!
//! Everything cronnode's leader decides over time lives here: raise the fence, take over what
//! an earlier leader staged, wait for a job set as new as the store at the term's start, catch
//! up every job from its cursor by its policy, stage fires
//! ahead of their slot, release them at the slot, withdraw or restage staged tasks when a job
//! is paused, deleted or changed, retry a failed call with the same fire ids after a backoff,
//! stop at the first sign of a newer leader. It is *fully deterministic*: no I/O, no clock, no
//! randomness, no async. Time is an argument of every call; Redis is something the driver
//! talks to on the machine's behalf.
//!
//! ## How to drive it (the order to call things)
//!
//! ```text
//! let mut leader = Leader::new(Config::default());
//! loop {
//!     let now = clock();                          // once per step
//!     feed what happened:  leader.handle_leadership(now, ..)   the election moved
//!                          leader.handle_jobs(now, ..)         the job set changed (while
//!                                                              leading: all jobs right after
//!                                                              Leader{..}, then the changes)
//!                          leader.handle_command(now, id, ..)  an API request
//!                          leader.handle_outcome(now, ..)      the answer of the last call
//!     while let Some(action) = leader.poll_action(now) {
//!         Reply → answer the command;
//!         a Redis call → make it; its answer is the next step's `handle_outcome`
//!     }
//!     while let Some(event) = leader.poll_event() { log it, count it }
//!     publish leader.status();
//!     wait for an input, or until leader.poll_timeout()
//! }
//! ```
//!
//! At most one Redis call is outstanding: after a Redis [`Action`], `poll_action` yields only
//! [`Action::Reply`]s until that call's [`Outcome`] is handled (even across terms: the answer
//! of a call made in an ended term is discarded). Inputs may arrive at any time.
//!
//! ## Layout
//!
//! - [`input`]: leadership, job changes, commands; [`outcome`]: the answers of Redis calls;
//! - [`output`]: actions, replies, events, status;
//! - `leader.rs`: [`Leader`], the node (follower, leading, deposed) and the one in-flight call;
//! - `term/`: one term (`mod.rs` the state, `poll.rs` the order of work, `changes.rs` job
//!   changes, `outcomes.rs` answers); `staged.rs` what the term believes is staged; `view.rs`
//!   the job set as the term knows it; `backoff.rs` the one backoff.
//!
//! **Architecture Invariant:** this crate knows nothing of Redis keys, Consul, tokio or the
//! HTTP API; it depends on cron-core only. If a rule needs the time, take `now`.
#![deny(missing_docs)]

mod backoff;
pub mod input;
mod leader;
pub mod outcome;
pub mod output;
mod staged;
mod term;
mod view;

use std::collections::VecDeque;
use std::time::Duration;

pub use input::{Command, CommandId, JobEvent, JobUpdate, Leadership};
pub use leader::Leader;
pub use outcome::{
    AmendOutcome, Answer, FireOutcome, Outcome, Refused, ReleasedSlot, StagedFire, StagedRead,
};
pub use output::{
    Action, BackfillDone, ChangeApplied, CommandError, Event, ManualRunDone, Op, Planned, Reply,
    Status, TermEnd,
};

/// How long before its slot a fire is staged. Long enough that staging a burst of 100,000
/// fires (about 6-10 µs of Redis each) finishes before the slot; a change made later than
/// this before a slot is applied to the staged task (withdrawn or restaged).
pub const LOOKAHEAD: Duration = Duration::from_secs(2);
/// How long before a staged slot the driver is asked to prepare its release: after the
/// staging (which starts `LOOKAHEAD` ahead and takes a few hundred ms for 10,000 fires), with
/// time for the preparation itself (reading the slot's tasks back and queueing them: about as
/// long again under load) before the slot.
pub const PREPARE_AHEAD: Duration = Duration::from_secs(1);
/// Most fires in one `Enqueue`, `Stage` or `Amend`: the driver splits them into script calls
/// of a few hundred and pipelines those; thousands at once keep that pipeline full.
pub const MAX_BATCH: usize = 5_000;
/// The backoff after a failed Redis call starts here…
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// …and doubles up to this ceiling.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The machine's settings (the defaults are the constants above; tests and the simulation
/// may change them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// See [`LOOKAHEAD`].
    pub lookahead: Duration,
    /// See [`PREPARE_AHEAD`].
    pub prepare_ahead: Duration,
    /// See [`MAX_BATCH`].
    pub max_batch: usize,
    /// See [`BACKOFF_START`].
    pub backoff_start: Duration,
    /// See [`BACKOFF_MAX`].
    pub backoff_max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lookahead: LOOKAHEAD,
            prepare_ahead: PREPARE_AHEAD,
            max_batch: MAX_BATCH,
            backoff_start: BACKOFF_START,
            backoff_max: BACKOFF_MAX,
        }
    }
}

/// What the machine has to say that is not a Redis call.
#[derive(Debug, Default)]
pub(crate) struct Out {
    replies: VecDeque<(CommandId, Reply)>,
    events: VecDeque<Event>,
}

impl Out {
    pub(crate) fn reply(&mut self, id: CommandId, reply: Reply) {
        self.replies.push_back((id, reply));
    }

    pub(crate) fn event(&mut self, event: Event) {
        self.events.push_back(event);
    }
}
