//! The amend script's calling convention (`lua/amend.lua`, whose top says the layout): one
//! call withdraws some staged fires and restages others with a new task.
//!
//! Must not talk to Redis: `queue/send.rs` sends what this builds.

use cron_core::Fire;
use redis::{Script, ScriptInvocation, Value};

use super::{bucket_of, fenced, staging_member, Fenced, Keys, Meta, AMEND_LUA};
use crate::calls::{Amended, StageFire};
use crate::encode::write_task;
use crate::error::QueueError;
use crate::model::{rfc3339, TaskSettings};

/// The amend script.
pub(crate) fn amend_script() -> Script {
    Script::new(AMEND_LUA)
}

/// The slots and dedupe buckets a call names (each once), and where each fire's are.
#[derive(Default)]
struct Index {
    slots: Vec<i64>,
    buckets: Vec<i64>,
}

impl Index {
    /// 1-based positions of `slot`'s keys and of its bucket.
    fn of(&mut self, slot: i64) -> (usize, usize) {
        let s = position(&mut self.slots, slot);
        let b = position(&mut self.buckets, bucket_of(slot));
        (s, b)
    }
}

fn position(v: &mut Vec<i64>, x: i64) -> usize {
    match v.iter().position(|y| *y == x) {
        Some(i) => i + 1,
        None => {
            v.push(x);
            v.len()
        }
    }
}

/// One amend call under `token`: `withdraw` first, then `restage` (each restaged task built
/// as a staged one is: `created_at` its slot, this token and node).
pub(crate) fn amend_call<'s>(
    script: &'s Script,
    keys: &Keys,
    settings: &TaskSettings,
    token: u64,
    withdraw: &[Fire],
    restage: &[StageFire],
) -> Result<ScriptInvocation<'s>, QueueError> {
    let mut index = Index::default();
    let mut args: Vec<Vec<u8>> = Vec::new();
    args.push(withdraw.len().to_string().into_bytes());
    for f in withdraw {
        let (s, b) = index.of(f.slot.timestamp());
        args.push(s.to_string().into_bytes());
        args.push(b.to_string().into_bytes());
        args.push(f.fire_id.to_string().into_bytes());
        args.push(f.job_id.as_bytes().to_vec());
    }
    args.push(restage.len().to_string().into_bytes());
    for r in restage {
        let slot = rfc3339(r.fire.slot);
        let (s, b) = index.of(r.fire.slot.timestamp());
        let mut task = Vec::with_capacity(512);
        write_task(&mut task, &r.job, &r.fire, token, settings, &slot, &slot)?;
        let p = r.job.spec.function.priority;
        let meta = Meta::format(r.version, p, token, &r.job.spec.id, &settings.node);
        args.push(s.to_string().into_bytes());
        args.push(b.to_string().into_bytes());
        args.push(r.fire.fire_id.to_string().into_bytes());
        args.push(r.job.spec.id.as_bytes().to_vec());
        args.push(p.to_string().into_bytes());
        args.push(task);
        args.push(meta.into_bytes());
    }
    let mut inv = script.prepare_invoke();
    inv.key(&keys.fence).key(&keys.cursors).key(&keys.staging);
    for slot in &index.slots {
        inv.key(keys.staged(*slot)).key(keys.copies(*slot));
        for p in 0..=2u8 {
            inv.key(keys.staging_list(&staging_member(*slot, p)));
        }
    }
    for minute in &index.buckets {
        inv.key(keys.dedupe(*minute));
    }
    inv.arg(token.to_string())
        .arg(index.slots.len())
        .arg(index.buckets.len());
    for slot in &index.slots {
        inv.arg(*slot);
    }
    for a in args {
        inv.arg(a);
    }
    Ok(inv)
}

/// Decodes `{0, fence}` (`Err(fence)` inside `Ok`) or `{1, "WRQN..."}`.
pub(crate) fn decode_amend(v: &Value) -> Result<Result<Vec<Amended>, u64>, QueueError> {
    let bad = |what: &str| QueueError::Protocol(format!("amend script answered {what}"));
    match fenced(v, "amend")? {
        Fenced::Refused(fence) => Ok(Err(fence)),
        Fenced::Done([body]) => {
            let body = super::text(body).ok_or_else(|| bad("a non-string body"))?;
            body.bytes()
                .map(|c| match c {
                    b'W' => Ok(Amended::Withdrawn),
                    b'R' => Ok(Amended::Replaced),
                    b'Q' => Ok(Amended::NotStaged { queued: true }),
                    b'N' => Ok(Amended::NotStaged { queued: false }),
                    _ => Err(bad("an unknown outcome")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Ok)
        }
        Fenced::Done(_) => Err(bad("an array of the wrong length")),
    }
}
