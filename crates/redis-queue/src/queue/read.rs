//! The fence and the read-back: [`Queue::raise_fence`], [`Queue::reset_fence`],
//! [`Queue::fence`], the cursors, a job's history, the queues' depths, a ping.
//!
//! Must not write anything but the fence.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use redis::Value;

use super::{check_token, Queue, QueueDepths};
use crate::error::QueueError;
use crate::script::release::{decode_raise_fence, raise_fence_script};
use crate::task::HistoryEntry;

/// Job ids per HMGET call when reading cursors.
const CURSOR_READ_CHUNK: usize = 1_000;

impl Queue {
    /// Raises the fence to `token` if it is higher; answers the fence now in Redis.
    pub async fn raise_fence(&self, token: u64) -> Result<u64, QueueError> {
        check_token(token)?;
        let mut conn = self.conn.clone();
        let answer: Value = raise_fence_script()
            .key(&self.keys.fence)
            .arg(token.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(QueueError::from_call)?;
        decode_raise_fence(&answer)
    }

    /// Sets the fence to exactly `token` (operator command, after Consul was rebuilt and its
    /// indexes started again below the fence).
    pub async fn reset_fence(&self, token: u64) -> Result<(), QueueError> {
        check_token(token)?;
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

fn parse_token(s: &str) -> Result<u64, QueueError> {
    s.parse()
        .map_err(|_| QueueError::Protocol(format!("the fence holds {s:?}, not a token")))
}
