//! [`Queue::record_not_fired`]: slots a leader chose not to fire (their job's IronFunctions
//! route is gone), written into their job's history with the reason, so that the history
//! tells every slot's fate. Fenced like every write of a fire.
//!
//! Must not touch the queues, the dedupe marks or the cursors: a slot not fired stays
//! unfired, and the job's catch-up policy decides about it when it can fire again.

use redis::{Script, Value};

use super::{check_token, Queue};
use crate::error::QueueError;
use crate::script::release::decode_raise_fence;
use crate::task::HistoryEntry;

/// The script: the fence check, then the appends.
const NOT_FIRED_LUA: &str = concat!(
    include_str!("../lua/fence.lua"),
    include_str!("../lua/not_fired.lua")
);

/// What [`Queue::record_not_fired`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFiredOutcome {
    /// Recorded.
    Recorded,
    /// Refused: a newer leader's token is in the fence.
    Fenced {
        /// The fence in Redis.
        fence: u64,
    },
}

impl Queue {
    /// Appends each entry (its `not_fired` says why) to its job's history, under `token`.
    pub async fn record_not_fired(
        &self,
        token: u64,
        entries: &[(&str, HistoryEntry)],
    ) -> Result<NotFiredOutcome, QueueError> {
        check_token(token)?;
        if entries.is_empty() {
            return Ok(NotFiredOutcome::Recorded);
        }
        let script = Script::new(NOT_FIRED_LUA);
        let mut call = script.key(&self.keys.fence);
        call.arg(token.to_string()).arg(self.history_len);
        for (job, entry) in entries {
            call.key(self.keys.history(job)).arg(entry.to_json());
        }
        let mut conn = self.conn.clone();
        let answer: Value = call
            .invoke_async(&mut conn)
            .await
            .map_err(QueueError::from_call)?;
        let fence = decode_raise_fence(&answer)?;
        Ok(if fence > token {
            NotFiredOutcome::Fenced { fence }
        } else {
            NotFiredOutcome::Recorded
        })
    }
}
