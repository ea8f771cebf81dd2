//! # cron-core: what to run, and when
//!
//! The pure heart of cronnode. It owns:
//!
//! - [`schedule`]: the schedule language (crontab with 5 or 6 fields, macros, `@every`, per-job
//!   time zones with a documented daylight-saving rule) and the next-slot computation;
//! - [`job`]: the job spec as users write it (the IronFunctions proposal plus extensions), and its
//!   validation into a [`Job`];
//! - [`life`]: a job's life and spread: `start_at`, `end_at`, a one-shot's state, and the
//!   jittered instant of a slot;
//! - [`fire`]: a fire is one slot of one job; its id is a pure function of the two;
//! - [`planner`]: the sans-IO planner that holds every job's next slot and answers `due(now)`,
//!   `next_wakeup()` and the catch-up of a job after a leader change.
//!
//! **Architecture Invariant:** cron-core does no I/O and reads no clock. Every call that depends
//! on time takes `now` as an argument (clippy's `disallowed-methods` enforces it), so the planner
//! is tested with plain values and every node computes the same slots.
//!
//! Start reading at [`planner::Planner`].
#![deny(missing_docs)]

pub mod fire;
pub mod job;
pub mod life;
pub mod planner;
pub mod schedule;

pub use fire::{Fire, FireKind};
pub use job::{CatchUp, CatchUpPolicy, FunctionCall, Job, JobError, JobSpec};
pub use life::{
    JobState, RangeError, BACKFILL_REACH_BEYOND_WINDOW, MAX_BACKFILL_SLOTS, MAX_JITTER,
};
pub use planner::{CatchUpPlan, Planner};
pub use schedule::{Schedule, ScheduleError};
