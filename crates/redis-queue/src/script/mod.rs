//! The Lua scripts and their calling convention: key names, argument layouts, answers.
//!
//! Each script's layout is written at the top of its Lua file (`src/lua/`) and built by one
//! module here: change the two together. `enqueue.rs` (enqueue and stage), `release.rs`
//! (release, the prepared release, the fence), `amend.rs` (withdraw and restage),
//! `record.rs` (history of released slots). Everything a fire needs is computed in Rust (task
//! JSON, history entries, metas, TTLs), so the scripts only do Redis commands. Shared by all:
//! `lua/fence.lua` (the fence check, in front of every fenced write), `lua/clock.lua` (the
//! script's instant), `lua/mark.lua` (a slot released).
//!
//! Must not talk to Redis: [`crate::queue`] sends what this builds.

pub(crate) mod amend;
pub(crate) mod enqueue;
pub(crate) mod record;
pub(crate) mod release;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use cron_core::Job;
use redis::Value;

use crate::error::QueueError;

/// The enqueue (and stage) script.
pub(crate) const ENQUEUE_LUA: &str = concat!(
    include_str!("../lua/clock.lua"),
    include_str!("../lua/fence.lua"),
    include_str!("../lua/enqueue.lua")
);
/// The release script.
pub(crate) const RELEASE_LUA: &str = concat!(
    include_str!("../lua/clock.lua"),
    include_str!("../lua/fence.lua"),
    include_str!("../lua/mark.lua"),
    include_str!("../lua/release.lua")
);
/// The last command of a prepared release (run inside its transaction; no fence check: the
/// transaction watches the fence).
pub(crate) const PREPARED_LUA: &str = concat!(
    include_str!("../lua/clock.lua"),
    include_str!("../lua/mark.lua"),
    include_str!("../lua/prepared.lua")
);
/// The amend script.
pub(crate) const AMEND_LUA: &str = concat!(
    include_str!("../lua/fence.lua"),
    include_str!("../lua/amend.lua")
);
/// The history script.
pub(crate) const RECORD_LUA: &str = concat!(
    include_str!("../lua/fence.lua"),
    include_str!("../lua/record.lua")
);
/// Raising the fence is the fence check alone.
pub(crate) const RAISE_FENCE_LUA: &str = concat!(
    include_str!("../lua/fence.lua"),
    include_str!("../lua/raise_fence.lua")
);

/// Width of a dedupe bucket: fires whose slots fall in the same minute share one hash.
pub const DEDUPE_BUCKET_SECS: i64 = 60;
/// Margin added to a job's catch-up window for the dedupe TTL (see [`dedupe_ttl`]).
pub const DEDUPE_MARGIN: Duration = Duration::from_secs(24 * 3600);
/// Ceiling of [`dedupe_ttl`] (cron-core caps windows at 7 days; this keeps a bad window from
/// reaching Redis as an expire time it refuses halfway through a script).
pub const MAX_DEDUPE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long a fire's dedupe key lives: the job's catch-up window plus [`DEDUPE_MARGIN`].
///
/// A slot is only ever (re-)enqueued while it is inside its job's window, so the key outlives
/// every attempt by at least the margin (which also absorbs clock skew between nodes).
pub fn dedupe_ttl(job: &Job) -> Duration {
    job.catchup_window
        .saturating_add(DEDUPE_MARGIN)
        .min(MAX_DEDUPE_TTL)
}

/// The dedupe bucket (unix minute) of a slot.
pub(crate) fn bucket_of(slot: i64) -> i64 {
    slot.div_euclid(DEDUPE_BUCKET_SECS)
}

/// Every key name cronnode uses, computed once per queue.
#[derive(Debug)]
pub(crate) struct Keys {
    /// `<key-prefix>fence`.
    pub(crate) fence: String,
    /// `<key-prefix>cursors`: hash job id → last enqueued slot (unix seconds).
    pub(crate) cursors: String,
    /// `<key-prefix>dedupe:`, followed by the slot's unix minute (a hash, field fire id).
    dedupe_prefix: String,
    /// `<key-prefix>history:`, followed by the job id.
    history_prefix: String,
    /// `<queue-prefix>queue0..2`.
    pub(crate) queues: [String; 3],
    /// `<queue-prefix>delays`.
    pub(crate) delays: String,
    /// `<queue-prefix>delayed_jobs`.
    pub(crate) delayed_jobs: String,
    /// `<queue-prefix>delays_counter`.
    pub(crate) delays_counter: String,
    /// `<key-prefix>staging`: sorted set, score slot, member `<slot>:<priority>`.
    pub(crate) staging: String,
    /// `<key-prefix>staging:`, followed by `<slot>:<priority>` (a list laid out as a queue).
    staging_prefix: String,
    /// `<key-prefix>staged:`, followed by the slot: hash fire id → meta.
    staged_prefix: String,
    /// `<key-prefix>staged-tasks:`, followed by the slot: hash fire id → task (copies).
    copies_prefix: String,
    /// `<key-prefix>released`: sorted set, score release instant (unix ms), member slot.
    pub(crate) released: String,
    /// `<key-prefix>released:`, followed by the slot: hash fire id → meta, awaiting history.
    released_prefix: String,
}

impl Keys {
    /// The key names under these prefixes.
    pub(crate) fn new(queue_prefix: &str, key_prefix: &str) -> Keys {
        Keys {
            fence: format!("{key_prefix}fence"),
            cursors: format!("{key_prefix}cursors"),
            dedupe_prefix: format!("{key_prefix}dedupe:"),
            history_prefix: format!("{key_prefix}history:"),
            queues: [0, 1, 2].map(|p| format!("{queue_prefix}queue{p}")),
            delays: format!("{queue_prefix}delays"),
            delayed_jobs: format!("{queue_prefix}delayed_jobs"),
            delays_counter: format!("{queue_prefix}delays_counter"),
            staging: format!("{key_prefix}staging"),
            staging_prefix: format!("{key_prefix}staging:"),
            staged_prefix: format!("{key_prefix}staged:"),
            copies_prefix: format!("{key_prefix}staged-tasks:"),
            released: format!("{key_prefix}released"),
            released_prefix: format!("{key_prefix}released:"),
        }
    }

    /// The history list of a job.
    pub(crate) fn history(&self, job_id: &str) -> String {
        format!("{}{job_id}", self.history_prefix)
    }

    /// The dedupe bucket of a unix minute.
    pub(crate) fn dedupe(&self, minute: i64) -> String {
        format!("{}{minute}", self.dedupe_prefix)
    }

    /// The staging list of one slot and priority, from its index member `<slot>:<priority>`.
    pub(crate) fn staging_list(&self, member: &str) -> String {
        format!("{}{member}", self.staging_prefix)
    }

    /// The staged metas of a slot (unix seconds).
    pub(crate) fn staged(&self, slot: i64) -> String {
        format!("{}{slot}", self.staged_prefix)
    }

    /// The staged task copies of a slot.
    pub(crate) fn copies(&self, slot: i64) -> String {
        format!("{}{slot}", self.copies_prefix)
    }

    /// The released metas of a slot, awaiting their history.
    pub(crate) fn released_of(&self, slot: i64) -> String {
        format!("{}{slot}", self.released_prefix)
    }
}

/// The staging index member of a slot (unix seconds) and priority.
pub(crate) fn staging_member(slot: i64, priority: u8) -> String {
    format!("{slot}:{priority}")
}

/// The slot and priority of a staging index member; `None` for anything this crate did not
/// write.
pub(crate) fn parse_staging_member(member: &str) -> Option<(i64, u8)> {
    let (slot, priority) = member.split_once(':')?;
    let priority: u8 = priority.parse().ok()?;
    (priority <= 2).then_some(())?;
    Some((slot.parse().ok()?, priority))
}

/// What a staged fire's meta records (`staged:<slot>`, `released:<slot>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Its job's cursor before it was staged (unix seconds; `None`: no cursor then), written
    /// by the script: a withdrawal gives the cursor back to it.
    pub(crate) before: Option<i64>,
    /// The version of the spec its task was built from.
    pub(crate) version: u64,
    /// The priority list its task waits in.
    pub(crate) priority: u8,
    /// The token it was staged under.
    pub(crate) token: u64,
    /// Its job.
    pub(crate) job_id: String,
    /// The node that staged it.
    pub(crate) node: String,
}

impl Meta {
    /// What the caller sends: `<version>\t<priority>\t<token>\t<job id>\t<node>`; the script
    /// puts the cursor before, and a tab, in front. The priority comes right after the
    /// version, where amend.lua reads it. Job ids hold no tab (cron-core's rule); the node
    /// comes last, so nothing in it can shift a field.
    pub(crate) fn format(
        version: u64,
        priority: u8,
        token: u64,
        job_id: &str,
        node: &str,
    ) -> String {
        format!("{version}\t{priority}\t{token}\t{job_id}\t{node}")
    }

    /// A stored meta (the cursor before, then what [`Meta::format`] made).
    pub(crate) fn parse(s: &str) -> Option<Meta> {
        let mut it = s.splitn(6, '\t');
        let before = match it.next()? {
            "" => None,
            c => Some(c.parse().ok()?),
        };
        let version = it.next()?.parse().ok()?;
        let priority = it.next()?.parse().ok()?;
        let token = it.next()?.parse().ok()?;
        let job_id = it.next()?.to_string();
        let node = it.next()?.to_string();
        Some(Meta {
            before,
            version,
            priority,
            token,
            job_id,
            node,
        })
    }
}

/// A unix second as an instant, if it is one.
pub(crate) fn instant(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

/// A fenced script's answer: `{0, fence}` (refused), or `{1, ...}`: the rest.
pub(crate) enum Fenced<'a> {
    Refused(u64),
    Done(&'a [Value]),
}

/// Splits a fenced script's answer; `what` names the script in errors.
pub(crate) fn fenced<'a>(v: &'a Value, what: &str) -> Result<Fenced<'a>, QueueError> {
    let bad = |why: &str| QueueError::Protocol(format!("{what} script answered {why}"));
    let Value::Array(items) = v else {
        return Err(bad("a non-array"));
    };
    match items.first() {
        Some(Value::Int(0)) => {
            let fence = items
                .get(1)
                .and_then(text)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("a fence that is not a number"))?;
            Ok(Fenced::Refused(fence))
        }
        Some(Value::Int(1)) => Ok(Fenced::Done(&items[1..])),
        _ => Err(bad("an unknown status")),
    }
}

/// A string answer's text.
pub(crate) fn text(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_members_round_trip() {
        assert_eq!(staging_member(1_700_000_000, 2), "1700000000:2");
        assert_eq!(
            parse_staging_member("1700000000:2"),
            Some((1_700_000_000, 2))
        );
        assert_eq!(parse_staging_member("1700000000:3"), None);
        assert_eq!(parse_staging_member("junk"), None);
        assert_eq!(parse_staging_member("x:1"), None);
    }

    #[test]
    fn metas_round_trip_whatever_the_node_name() {
        let m = format!(
            "1700000000\t{}",
            Meta::format(42, 2, 7, "job-1", "node\twith\ttabs")
        );
        assert_eq!(
            Meta::parse(&m),
            Some(Meta {
                before: Some(1_700_000_000),
                version: 42,
                priority: 2,
                token: 7,
                job_id: "job-1".into(),
                node: "node\twith\ttabs".into()
            })
        );
        let fresh = format!("\t{}", Meta::format(1, 0, 1, "j", "n"));
        assert_eq!(Meta::parse(&fresh).map(|m| m.before), Some(None));
        assert_eq!(Meta::parse("\t1\t2\t3"), None);
        assert_eq!(Meta::parse("\tx\t0\t1\tj\tn"), None);
    }
}
