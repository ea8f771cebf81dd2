//! Staged work: what is staged ([`Queue::staged`]), the release at the slot
//! ([`Queue::release`], and [`Queue::prepare_release`] / [`Queue::release_prepared`] for a
//! slot due while its queue holds a backlog), and the history of released slots
//! ([`Queue::record_released`]).
//!
//! The release script moves a staging list into its queue by RENAME when the queue is empty
//! (O(1)); with a backlog, a Lua script would have to copy one side task by task (about
//! 12,000 instructions each: 34 ms for 9,500). A prepared release reads the slot's tasks
//! before the slot under WATCH and queues, in a MULTI, a plain LPUSH of them (Redis's own
//! code, no Lua strings), the deletion of the lists and the marking of the slot: at the slot
//! only `EXEC` remains. If anything watched moved in between (a newer leader's fence, a task
//! withdrawn or restaged), Redis refuses the whole transaction and the script release does
//! the work. Must not decide when to release (the leader does).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Value};

use super::{
    check_token, Queue, CONNECT_TIMEOUT, PREPARED_MAX_TASKS, RELEASE_TASKS_PER_CALL,
    RESPONSE_TIMEOUT,
};
use crate::calls::{RecordOutcome, ReleaseOutcome, ReleasedSlot, StagedEntry, StagedState};
use crate::error::QueueError;
use crate::script::record::{decode_record, record_call, record_script};
use crate::script::release::{
    decode_release, exec, prepare_reads, prepare_transaction, release_call, release_script,
    StagedList,
};
use crate::script::{instant, parse_staging_member, text, Meta};

/// Staging lists named in one release call.
const RELEASE_LISTS_PER_CALL: usize = 64;
/// Most staging index entries read at once. There are at most three per staged slot (one per
/// priority), and a leader stages a few seconds ahead, so this is never reached in practice.
const STAGED_READ_LIMIT: usize = 10_000;
/// Released slots whose history one [`Queue::record_released`] writes.
const RECORD_SLOTS_PER_CALL: isize = 16;
/// History entries per record script call (a few microseconds of Redis each).
const RECORD_FIRES_PER_CALL: usize = 2_000;

/// A slot's release, read and queued in a transaction ahead of the slot: only `EXEC` is left
/// (see the module docs). Dropping it discards the transaction.
pub struct PreparedRelease {
    /// The connection holding the WATCH and the queued MULTI.
    conn: MultiplexedConnection,
    slot: DateTime<Utc>,
    tasks: u64,
}

impl std::fmt::Debug for PreparedRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedRelease")
            .field("slot", &self.slot)
            .field("tasks", &self.tasks)
            .finish_non_exhaustive()
    }
}

impl PreparedRelease {
    /// The slot it releases.
    pub fn slot(&self) -> DateTime<Utc> {
        self.slot
    }
}

impl Queue {
    /// What is staged and not released: every slot of the staging index, every staged fire's
    /// meta (job, spec version), and whether released slots still wait for their history. A
    /// new leader reads it after raising the fence (nothing older can be staged after that).
    pub async fn staged(&self) -> Result<StagedState, QueueError> {
        let mut conn = self.conn.clone();
        let lists = self.staged_lists(&mut conn, i64::MIN, i64::MAX).await?;
        let mut slots: Vec<i64> = lists.iter().map(|l| l.slot).collect();
        slots.dedup();
        let mut pipe = redis::pipe();
        for s in &slots {
            pipe.cmd("HGETALL").arg(self.keys.staged(*s));
        }
        pipe.cmd("ZCARD").arg(&self.keys.released);
        let mut answers: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(QueueError::from_call)?;
        let unrecorded = matches!(answers.pop(), Some(Value::Int(n)) if n > 0);
        let mut fires = Vec::new();
        for (slot, metas) in slots.iter().zip(answers) {
            let Some(at) = instant(*slot) else { continue };
            let metas: Vec<(String, String)> = redis::from_redis_value(metas)
                .map_err(|e| QueueError::Protocol(format!("staged metas: {e}")))?;
            for (fire_id, meta) in metas {
                let (Ok(fire_id), Some(meta)) = (fire_id.parse(), Meta::parse(&meta)) else {
                    tracing::warn!(slot, %fire_id, "ignoring a staged meta cronnode did not write");
                    continue;
                };
                fires.push(StagedEntry {
                    slot: at,
                    fire_id,
                    job_id: meta.job_id,
                    version: meta.version,
                    priority: meta.priority,
                });
            }
        }
        Ok(StagedState {
            slots: slots.into_iter().filter_map(instant).collect(),
            fires,
            unrecorded,
        })
    }

    /// The slots with staged tasks not yet released, oldest first ([`Queue::staged`]'s
    /// `slots`, without the metas).
    pub async fn staged_slots(&self) -> Result<Vec<DateTime<Utc>>, QueueError> {
        let mut conn = self.conn.clone();
        let lists = self.staged_lists(&mut conn, i64::MIN, i64::MAX).await?;
        let mut slots: Vec<i64> = lists.iter().map(|l| l.slot).collect();
        slots.dedup();
        Ok(slots.into_iter().filter_map(instant).collect())
    }

    /// Moves every staged task whose slot is at or before `now` into its queue, under the
    /// leader's fencing `token`: the staging lists oldest slot first, each task exactly once
    /// (a list is moved and removed, with its index entry, by one atomic call), and in staging
    /// order behind what the queue already holds (RPOP consumers take the older tasks first).
    /// A staging list whose queue is empty becomes the queue in O(1); otherwise the shorter
    /// side is moved (the queue's backlog behind the staged tasks, or the staged tasks onto
    /// the queue), at most [`RELEASE_TASKS_PER_CALL`] tasks per call, so no call holds Redis
    /// long. When a slot's last list is moved, its staged fires wait for their history
    /// ([`Queue::record_released`]), stamped with the instant of that call.
    ///
    /// Safe to repeat: on [`QueueError::Unknown`] call it again (what was moved is gone from
    /// the staging lists). A token above the fence raises it.
    pub async fn release(
        &self,
        token: u64,
        now: DateTime<Utc>,
    ) -> Result<ReleaseOutcome, QueueError> {
        check_token(token)?;
        let mut conn = self.conn.clone();
        let mut moved: BTreeMap<i64, u64> = BTreeMap::new();
        let script = release_script();
        // Released lists leave the index, so a full read is followed by another.
        let mut full = true;
        while full {
            let lists = self
                .staged_lists(&mut conn, i64::MIN, now.timestamp())
                .await?;
            full = lists.len() >= STAGED_READ_LIMIT;
            let mut i = 0;
            while i < lists.len() {
                let group = &lists[i..lists.len().min(i + RELEASE_LISTS_PER_CALL)];
                let inv = release_call(&script, &self.keys, token, RELEASE_TASKS_PER_CALL, group);
                let answer: Value = inv
                    .invoke_async(&mut conn)
                    .await
                    .map_err(QueueError::from_call)?;
                let answers = match decode_release(&answer)? {
                    Err(fence) => return Ok(ReleaseOutcome::Fenced { fence }),
                    Ok(answers) => answers,
                };
                let mut progress = false;
                for (l, a) in group.iter().zip(&answers) {
                    *moved.entry(l.slot).or_default() += a.moved;
                    progress |= a.moved > 0 || a.done;
                }
                if !progress {
                    return Err(QueueError::Protocol(
                        "the release script moved nothing and finished no list".into(),
                    ));
                }
                // A list the budget cut short is named again first in the next call.
                i += answers.iter().take_while(|a| a.done).count();
            }
        }
        Ok(ReleaseOutcome::Done(released(moved)))
    }

    /// Prepares the release of `slot` (see the module docs), when it is worth it: the slot
    /// has staged tasks, at most [`PREPARED_MAX_TASKS`], and one of their queues is not empty
    /// (an empty queue takes its staging list by RENAME, which nothing beats). `None` when not
    /// prepared: the release at the slot is then the script's (as it is after an error: the
    /// script release is always there).
    pub async fn prepare_release(
        &self,
        token: u64,
        slot: DateTime<Utc>,
    ) -> Result<Option<PreparedRelease>, QueueError> {
        check_token(token)?;
        let secs = slot.timestamp();
        let mut shared = self.conn.clone();
        let lists = self.staged_lists(&mut shared, secs, secs).await?;
        if lists.is_empty() {
            return Ok(None);
        }
        let mut depths = redis::pipe();
        for l in &lists {
            depths
                .cmd("LLEN")
                .arg(&self.keys.queues[usize::from(l.priority)]);
        }
        let depths: Vec<u64> = depths
            .query_async(&mut shared)
            .await
            .map_err(QueueError::from_call)?;
        if depths.iter().all(|d| *d == 0) {
            return Ok(None);
        }
        let mut conn = self.release_connection().await?;
        let reads: Vec<Value> = prepare_reads(&self.keys, secs, &lists)
            .query_async(&mut conn)
            .await
            .map_err(QueueError::from_call)?;
        let fence = reads
            .get(1)
            .and_then(text)
            .and_then(|f| f.parse::<u64>().ok());
        let tasks: Vec<Vec<Vec<u8>>> = reads
            .into_iter()
            .skip(2)
            .map(redis::from_redis_value)
            .collect::<Result<_, _>>()
            .map_err(|e| QueueError::Protocol(format!("staged tasks: {e}")))?;
        let count: usize = tasks.iter().map(Vec::len).sum();
        if fence.is_some_and(|f| f > token) || count == 0 || count > PREPARED_MAX_TASKS {
            let _: Result<(), _> = redis::cmd("UNWATCH").query_async(&mut conn).await;
            self.keep_release_connection(conn).await;
            return Ok(None);
        }
        let _: Vec<Value> = prepare_transaction(&self.keys, secs, &lists, &tasks)
            .query_async(&mut conn)
            .await
            .map_err(QueueError::from_call)?;
        Ok(Some(PreparedRelease {
            conn,
            slot,
            tasks: count as u64,
        }))
    }

    /// [`Queue::release`], starting with `prepared` when it is for a slot at or before `now`:
    /// its `EXEC` runs first (the time-critical step), then the script release moves whatever
    /// else is due, including the prepared slot if its transaction was refused. When `EXEC`
    /// itself fails (the connection lost), the answer is that error: whether it ran is
    /// unknown, and the next release (of the script) finds whatever is left.
    pub async fn release_prepared(
        &self,
        prepared: Option<PreparedRelease>,
        token: u64,
        now: DateTime<Utc>,
    ) -> Result<ReleaseOutcome, QueueError> {
        let mut done = None;
        if let Some(p) = prepared.filter(|p| p.slot <= now) {
            let mut conn = p.conn;
            match exec().query_async::<Value>(&mut conn).await {
                Ok(Value::Array(_)) => {
                    done = Some(ReleasedSlot {
                        slot: p.slot,
                        tasks: p.tasks,
                    });
                    self.keep_release_connection(conn).await;
                }
                // A watched key moved: nothing ran; the script release below does it.
                Ok(Value::Nil) => self.keep_release_connection(conn).await,
                Ok(other) => return Err(QueueError::Protocol(format!("EXEC answered {other:?}"))),
                Err(e) => return Err(QueueError::from_call(e)),
            }
        }
        let rest = self.release(token, now).await;
        match (done, rest) {
            (None, rest) => rest,
            (Some(d), Ok(ReleaseOutcome::Done(mut slots))) => {
                match slots.iter_mut().find(|s| s.slot == d.slot) {
                    Some(s) => s.tasks += d.tasks,
                    None => slots.push(d),
                }
                slots.sort_by_key(|s| s.slot);
                Ok(ReleaseOutcome::Done(slots))
            }
            // The prepared slot reached the queue; what failed after it is retried by the
            // caller, whose next release finds only the rest.
            (Some(d), Ok(ReleaseOutcome::Fenced { .. }) | Err(_)) => {
                Ok(ReleaseOutcome::Done(vec![d]))
            }
        }
    }

    /// Writes the history entries of released slots, oldest first, a few slots per call:
    /// each entry's `enqueued_at` is its slot's release instant. Safe to repeat.
    pub async fn record_released(&self, token: u64) -> Result<RecordOutcome, QueueError> {
        check_token(token)?;
        let mut conn = self.conn.clone();
        let slots: Vec<(i64, f64)> = redis::cmd("ZRANGE")
            .arg(&self.keys.released)
            .arg(0)
            .arg(RECORD_SLOTS_PER_CALL - 1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(QueueError::from_call)?;
        let script = record_script();
        for (slot, ms) in &slots {
            let Some(at) = DateTime::from_timestamp_millis(*ms as i64) else {
                continue;
            };
            let fires: Vec<(String, String)> = redis::cmd("HGETALL")
                .arg(self.keys.released_of(*slot))
                .query_async(&mut conn)
                .await
                .map_err(QueueError::from_call)?;
            // One call even for none: it takes the slot out of the index.
            let chunks: Vec<&[(String, String)]> = if fires.is_empty() {
                vec![&[]]
            } else {
                fires.chunks(RECORD_FIRES_PER_CALL).collect()
            };
            for chunk in chunks {
                let inv = record_call(
                    &script,
                    &self.keys,
                    token,
                    self.history_len,
                    *slot,
                    at,
                    chunk,
                );
                let answer: Value = inv
                    .invoke_async(&mut conn)
                    .await
                    .map_err(QueueError::from_call)?;
                if let Err(fence) = decode_record(&answer)? {
                    return Ok(RecordOutcome::Fenced { fence });
                }
            }
        }
        let left: u64 = redis::cmd("ZCARD")
            .arg(&self.keys.released)
            .query_async(&mut conn)
            .await
            .map_err(QueueError::from_call)?;
        Ok(RecordOutcome::Done { more: left > 0 })
    }

    /// The staging index entries with a slot in `[from, until]`: by slot, then priority,
    /// from a read of at most [`STAGED_READ_LIMIT`] entries. Entries this crate did not write
    /// are skipped (and logged).
    async fn staged_lists(
        &self,
        conn: &mut ConnectionManager,
        from: i64,
        until: i64,
    ) -> Result<Vec<StagedList>, QueueError> {
        let bound = |s: i64, inf: &str| match s {
            i64::MIN | i64::MAX => inf.to_string(),
            s => s.to_string(),
        };
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&self.keys.staging)
            .arg(bound(from, "-inf"))
            .arg(bound(until, "+inf"))
            .arg("LIMIT")
            .arg(0)
            .arg(STAGED_READ_LIMIT)
            .query_async(conn)
            .await
            .map_err(QueueError::from_call)?;
        let mut lists: Vec<StagedList> = members
            .into_iter()
            .filter_map(|member| match parse_staging_member(&member) {
                Some((slot, priority)) => Some(StagedList {
                    member,
                    slot,
                    priority,
                }),
                None => {
                    tracing::warn!(%member, key = %self.keys.staging, "ignoring a staging index entry cronnode did not write");
                    None
                }
            })
            .collect();
        lists.sort_by_key(|l| (l.slot, l.priority));
        Ok(lists)
    }

    /// The connection prepared releases use (their WATCH and MULTI belong to it).
    async fn release_connection(&self) -> Result<MultiplexedConnection, QueueError> {
        if let Some(conn) = self.spare.lock().await.take() {
            return Ok(conn);
        }
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(QueueError::from_call)
    }

    async fn keep_release_connection(&self, conn: MultiplexedConnection) {
        *self.spare.lock().await = Some(conn);
    }
}

/// Tasks moved per slot, as answered.
fn released(moved: BTreeMap<i64, u64>) -> Vec<ReleasedSlot> {
    moved
        .into_iter()
        .filter_map(|(slot, tasks)| {
            Some(ReleasedSlot {
                slot: instant(slot)?,
                tasks,
            })
        })
        .collect()
}
