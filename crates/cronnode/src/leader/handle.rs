//! The API's side of the leader loop: what the loop is doing ([`LeaderStatus`]), and the
//! commands only a leader may carry out ([`Command`]: a manual run, a fence reset, a job
//! change to apply at once), sent through a [`LeaderHandle`] and answered by the loop in
//! `super`.
//!
//! The handle exists before the loop (see [`channel`]) so the API can serve, as a follower,
//! while the node still waits for Redis. It must not enqueue anything itself.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cron_core::{Fire, Job};
use leader_term::{BackfillDone, ChangeApplied, JobEvent};
use tokio::sync::{mpsc, oneshot, watch};

/// How long the API waits for the loop to carry out a manual run or a fence reset.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the API waits for the leader to apply a job change to what it has staged. Past
/// it the API answers anyway: the change is in the store, and the leader's watch of the store
/// brings it (up to about a second later; a slot staged within that time may still fire with
/// the old spec, and the answer says the leader did not confirm).
pub const JOB_CHANGE_TIMEOUT: Duration = Duration::from_secs(3);
/// Commands waiting for the loop; more are refused as busy.
const COMMAND_QUEUE: usize = 64;

/// What this node's loop is doing, as the API shows it: the machine's own status.
pub use leader_term::Status as LeaderStatus;

/// A request from the API to the leader loop.
#[derive(Debug)]
pub enum Command {
    /// Enqueue one manual fire of `job` now.
    ManualRun {
        /// The job, as the API just read it from the store.
        job: Arc<Job>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<ManualRun, CommandError>>,
    },
    /// Set the Redis fence to this term's token.
    ResetFence {
        /// Where the answer goes (the fence now).
        reply: oneshot::Sender<Result<u64, CommandError>>,
    },
    /// Enqueue these past slots of a job (a backfill; the API checked the range).
    Backfill {
        /// The job id.
        job: Arc<str>,
        /// The slots, oldest first.
        slots: Vec<DateTime<Utc>>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<BackfillDone, CommandError>>,
    },
    /// A job the API has just written (or deleted): withdraw or restage its staged tasks now.
    JobChanged {
        /// The job as written (with its new version), or its removal.
        change: JobEvent,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<ChangeApplied, CommandError>>,
    },
}

/// A manual fire that was enqueued.
#[derive(Debug, Clone)]
pub struct ManualRun {
    /// The fire (random id, slot = request instant).
    pub fire: Fire,
    /// The token it was enqueued with.
    pub token: u64,
    /// `false` when Redis said it was a duplicate (cannot happen with a fresh id, but reported).
    pub enqueued: bool,
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// This node does not lead (any more).
    #[error("this node is not the leader")]
    NotLeader,
    /// The fence is above this leader's token; nothing is enqueued before a reset.
    #[error("the Redis fence {fence} is above the leader's token {token}: nothing is enqueued until `cronnode fence reset --yes`")]
    FenceBlocked {
        /// The fence in Redis.
        fence: u64,
        /// This term's token.
        token: u64,
    },
    /// A newer leader raised the fence: this node was deposed.
    #[error("fenced: a newer leader raised the fence to {0}")]
    Fenced(u64),
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(String),
    /// The loop is gone (shutting down) or overloaded.
    #[error("the leader loop is not answering ({0})")]
    Unavailable(&'static str),
}

impl From<leader_term::CommandError> for CommandError {
    fn from(e: leader_term::CommandError) -> Self {
        match e {
            leader_term::CommandError::NotLeader => CommandError::NotLeader,
            leader_term::CommandError::FenceBlocked { fence, token } => {
                CommandError::FenceBlocked { fence, token }
            }
            leader_term::CommandError::Fenced(f) => CommandError::Fenced(f),
            leader_term::CommandError::Redis(m) => CommandError::Redis(m),
        }
    }
}

/// The API's side of the loop: its status and its command queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LeaderHandle {
    status: watch::Receiver<LeaderStatus>,
    commands: mpsc::Sender<Command>,
}

impl LeaderHandle {
    /// What the loop is doing now.
    pub fn status(&self) -> LeaderStatus {
        *self.status.borrow()
    }

    /// `true` while this node holds the lock (enqueueing or fence-blocked).
    pub fn is_leader(&self) -> bool {
        !matches!(*self.status.borrow(), LeaderStatus::Follower)
    }

    /// Asks the loop to enqueue one manual fire of `job`.
    pub async fn manual_run(&self, job: Arc<Job>) -> Result<ManualRun, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::ManualRun { job, reply }).await?;
        wait_reply(rx, COMMAND_TIMEOUT).await
    }

    /// Asks the loop to enqueue these past slots of `job` (each with its slot's fire id).
    pub async fn backfill(
        &self,
        job: Arc<str>,
        slots: Vec<DateTime<Utc>>,
    ) -> Result<BackfillDone, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Backfill { job, slots, reply }).await?;
        wait_reply(rx, COMMAND_TIMEOUT).await
    }

    /// Asks the loop to set the fence to its token.
    pub async fn reset_fence(&self) -> Result<u64, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::ResetFence { reply }).await?;
        wait_reply(rx, COMMAND_TIMEOUT).await
    }

    /// Tells the loop a job was just written or deleted, and waits (at most
    /// [`JOB_CHANGE_TIMEOUT`]) until no staged task of it carries the old spec.
    pub async fn job_changed(&self, change: JobEvent) -> Result<ChangeApplied, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::JobChanged { change, reply }).await?;
        wait_reply(rx, JOB_CHANGE_TIMEOUT).await
    }

    async fn send(&self, cmd: Command) -> Result<(), CommandError> {
        self.commands.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CommandError::Unavailable("busy"),
            mpsc::error::TrySendError::Closed(_) => CommandError::Unavailable("stopped"),
        })
    }
}

/// The loop's end of the handle: made before the loop exists, so the API can serve (as a
/// follower) while the node still waits for Redis.
#[derive(Debug)]
pub struct LeaderLink {
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) status: watch::Sender<LeaderStatus>,
}

/// A handle for the API and the link the loop will take over.
pub fn channel() -> (LeaderHandle, LeaderLink) {
    let (status_tx, status_rx) = watch::channel(LeaderStatus::Follower);
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    (
        LeaderHandle {
            status: status_rx,
            commands: cmd_tx,
        },
        LeaderLink {
            commands: cmd_rx,
            status: status_tx,
        },
    )
}

/// A command's answer, or `Unavailable` when the loop drops it or takes longer than
/// `timeout` (it may be retrying Redis).
async fn wait_reply<T>(
    rx: oneshot::Receiver<Result<T, CommandError>>,
    timeout: Duration,
) -> Result<T, CommandError> {
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(CommandError::Unavailable("no reply")),
        Err(_) => Err(CommandError::Unavailable("no reply in time")),
    }
}
