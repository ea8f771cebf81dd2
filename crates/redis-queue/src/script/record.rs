//! The history script's calling convention (`lua/record.lua`, whose top says the layout): the
//! history entries of one released slot, built here from its metas.
//!
//! Must not talk to Redis: `queue/release.rs` sends what this builds.

use chrono::{DateTime, Utc};
use cron_core::{Fire, FireKind};
use redis::{Script, ScriptInvocation, Value};
use uuid::Uuid;

use super::{fenced, instant, Fenced, Keys, Meta, RECORD_LUA};
use crate::error::QueueError;
use crate::task::HistoryEntry;

/// The history script.
pub(crate) fn record_script() -> Script {
    Script::new(RECORD_LUA)
}

/// One call writing the entries of `fires` (fire id → meta, as read from the slot's released
/// meta) released at `released_at`. A meta that does not parse is dropped without an entry.
pub(crate) fn record_call<'s>(
    script: &'s Script,
    keys: &Keys,
    token: u64,
    history_len: usize,
    slot: i64,
    released_at: DateTime<Utc>,
    fires: &[(String, String)],
) -> ScriptInvocation<'s> {
    let mut jobs: Vec<String> = Vec::new();
    let mut args: Vec<(String, usize, String)> = Vec::with_capacity(fires.len());
    for (fire_id, meta) in fires {
        let (Some(meta), Ok(id), Some(at)) =
            (Meta::parse(meta), fire_id.parse::<Uuid>(), instant(slot))
        else {
            args.push((fire_id.clone(), 0, String::new()));
            continue;
        };
        let j = match jobs.iter().position(|j| *j == meta.job_id) {
            Some(j) => j + 1,
            None => {
                jobs.push(meta.job_id.clone());
                jobs.len()
            }
        };
        let fire = Fire {
            job_id: meta.job_id.as_str().into(),
            slot: at,
            fire_id: id,
            kind: FireKind::Scheduled,
        };
        let entry = HistoryEntry::new(&fire, meta.token, &meta.node, released_at);
        args.push((fire_id.clone(), j, entry.to_json()));
    }
    let mut inv = script.prepare_invoke();
    inv.key(&keys.fence)
        .key(&keys.released)
        .key(keys.released_of(slot));
    for job in &jobs {
        inv.key(keys.history(job));
    }
    inv.arg(token.to_string())
        .arg(history_len)
        .arg(history_len * 2)
        .arg(slot);
    for (fire_id, j, entry) in args {
        inv.arg(fire_id).arg(j).arg(entry);
    }
    inv
}

/// Decodes `{0, fence}` (`Err(fence)` inside `Ok`) or `{1, entries}`.
pub(crate) fn decode_record(v: &Value) -> Result<Result<u64, u64>, QueueError> {
    match fenced(v, "record")? {
        Fenced::Refused(fence) => Ok(Err(fence)),
        Fenced::Done([Value::Int(n)]) => Ok(Ok(u64::try_from(*n).unwrap_or(0))),
        Fenced::Done(_) => Err(QueueError::Protocol(
            "record script answered something else".into(),
        )),
    }
}
