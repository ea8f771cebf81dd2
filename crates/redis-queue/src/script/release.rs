//! The release's calling convention: the release script's arguments (`lua/release.lua`, whose
//! top says the layout), the prepared release's transaction (`lua/prepared.lua` last), and the
//! fence-raising script.
//!
//! Must not talk to Redis: `queue/release.rs` sends what this builds.

use redis::{Cmd, Pipeline, Script, ScriptInvocation, Value};

use super::{fenced, Fenced, Keys, PREPARED_LUA, RAISE_FENCE_LUA, RELEASE_LUA};
use crate::error::QueueError;

/// One staging list due: its index member, slot and priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StagedList {
    pub(crate) member: String,
    pub(crate) slot: i64,
    pub(crate) priority: u8,
}

/// The release script.
pub(crate) fn release_script() -> Script {
    Script::new(RELEASE_LUA)
}

/// The fence-raising script.
pub(crate) fn raise_fence_script() -> Script {
    Script::new(RAISE_FENCE_LUA)
}

/// The arguments of one release call over `lists` (in order), moving at most `budget` tasks
/// element by element.
pub(crate) fn release_call<'s>(
    script: &'s Script,
    keys: &Keys,
    token: u64,
    budget: usize,
    lists: &[StagedList],
) -> ScriptInvocation<'s> {
    let mut inv = script.prepare_invoke();
    inv.key(&keys.fence)
        .key(&keys.staging)
        .key(&keys.queues[..])
        .key(&keys.released);
    for l in lists {
        inv.key(keys.staging_list(&l.member))
            .key(keys.staged(l.slot))
            .key(keys.copies(l.slot))
            .key(keys.released_of(l.slot));
    }
    inv.arg(token.to_string()).arg(budget);
    for l in lists {
        inv.arg(l.priority).arg(&l.member).arg(l.slot);
    }
    inv
}

/// What one release call did with one staging list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListReleased {
    /// Tasks moved into the queue.
    pub(crate) moved: u64,
    /// The list is empty and out of the index.
    pub(crate) done: bool,
}

/// Decodes `{0, fence}` (`Err(fence)` inside `Ok`) or `{1, moved_1, done_1, ...}`.
pub(crate) fn decode_release(v: &Value) -> Result<Result<Vec<ListReleased>, u64>, QueueError> {
    let bad = |what: &str| QueueError::Protocol(format!("release script answered {what}"));
    let rest = match fenced(v, "release")? {
        Fenced::Refused(fence) => return Ok(Err(fence)),
        Fenced::Done(rest) => rest,
    };
    if rest.len() % 2 != 0 {
        return Err(bad("an odd number of fields"));
    }
    rest.chunks(2)
        .map(|pair| match pair {
            [Value::Int(moved), Value::Int(done)] => Ok(ListReleased {
                moved: u64::try_from(*moved).map_err(|_| bad("a negative count"))?,
                done: *done == 1,
            }),
            _ => Err(bad("a non-integer field")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Ok)
}

/// Decodes the fence-raising script's answer: the fence now.
pub(crate) fn decode_raise_fence(v: &Value) -> Result<u64, QueueError> {
    let bad = || QueueError::Protocol("the fence script answered something else".into());
    match fenced(v, "fence")? {
        Fenced::Refused(fence) => Ok(fence),
        Fenced::Done([token]) => super::text(token)
            .and_then(|t| t.parse().ok())
            .ok_or_else(bad),
        Fenced::Done(_) => Err(bad()),
    }
}

/// The first half of a prepared release of `slot`: watch what the release depends on (the
/// fence, the slot's lists and metas), then read the fence and every list. The answers are
/// `OK`, the fence, then one list of tasks per staging list.
pub(crate) fn prepare_reads(keys: &Keys, slot: i64, lists: &[StagedList]) -> Pipeline {
    let mut pipe = redis::pipe();
    let mut watch = redis::cmd("WATCH");
    watch.arg(&keys.fence).arg(keys.staged(slot));
    for l in lists {
        watch.arg(keys.staging_list(&l.member));
    }
    pipe.add_command(watch);
    pipe.cmd("GET").arg(&keys.fence);
    for l in lists {
        pipe.cmd("LRANGE")
            .arg(keys.staging_list(&l.member))
            .arg(0)
            .arg(-1);
    }
    pipe
}

/// The second half: the transaction, queued (answers `OK` then `QUEUED`s) and run by a later
/// `EXEC`. Each list's tasks, read newest first, are pushed oldest first onto the head of
/// their queue (so RPOP takes the queue's older tasks first, then these in staging order);
/// the lists are deleted; `prepared.lua` takes them out of the index and marks the slot.
pub(crate) fn prepare_transaction(
    keys: &Keys,
    slot: i64,
    lists: &[StagedList],
    tasks: &[Vec<Vec<u8>>],
) -> Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("MULTI");
    for (l, items) in lists.iter().zip(tasks) {
        if items.is_empty() {
            continue;
        }
        let mut push = redis::cmd("LPUSH");
        push.arg(&keys.queues[usize::from(l.priority)]);
        for t in items.iter().rev() {
            push.arg(t.as_slice());
        }
        pipe.add_command(push);
    }
    let mut unlink = redis::cmd("UNLINK");
    for l in lists {
        unlink.arg(keys.staging_list(&l.member));
    }
    pipe.add_command(unlink);
    let mut mark = redis::cmd("EVAL");
    mark.arg(PREPARED_LUA)
        .arg(5)
        .arg(&keys.staging)
        .arg(keys.staged(slot))
        .arg(keys.copies(slot))
        .arg(keys.released_of(slot))
        .arg(&keys.released)
        .arg(slot);
    for l in lists {
        mark.arg(&l.member);
    }
    pipe.add_command(mark);
    pipe
}

/// `EXEC`.
pub(crate) fn exec() -> Cmd {
    redis::cmd("EXEC")
}
