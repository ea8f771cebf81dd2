//! What a run leaves for the checker: the Redis model's queues (every task in push order, when
//! it reached its queue, the spec generation it was built from), fence samples taken whenever
//! the fence moved, and what the API answered.
//!
//! Must not judge anything: the checker (tests/checker) does, exactly as it judges a real
//! cluster's run in the chaos suite.

use std::collections::BTreeMap;

use checker::{Arrival, Evidence, FenceSample, Task};

use crate::api::generation;
use crate::world::{instant, Micros, World};

/// The fence moved: a sample of it and of every queue's length (the chaos suite samples every
/// 200 ms; here every move is seen).
pub fn fence_moved(w: &mut World) {
    let Some(fence) = w.redis.fence else { return };
    let lens: BTreeMap<String, usize> = (0..3)
        .map(|p| (format!("queue{p}"), w.redis.queues[p].len()))
        .collect();
    w.fences.push(FenceSample {
        fence,
        at: instant(w.now),
        lens,
    });
}

/// The evidence of the run, its window ending at `end`.
pub fn collect(w: &mut World, end: Micros) -> Evidence {
    let mut tasks = Vec::new();
    let mut arrivals = Vec::new();
    for (p, q) in w.redis.queues.iter().enumerate() {
        let list = format!("queue{p}");
        for (seq, queued) in q.iter().enumerate() {
            let t = &queued.task;
            tasks.push(Task {
                list: list.clone(),
                seq,
                id: t.fire.fire_id.to_string(),
                job: t.job.spec.id.clone(),
                slot: t.fire.slot,
                token: t.token,
                enqueued: Some(t.created_at),
                node: Some(t.settings.node.clone()),
            });
            arrivals.push(Arrival {
                reached: queued.reached,
                version: generation(&t.job),
            });
        }
    }
    Evidence {
        jobs: w.api.jobs.clone(),
        changes: std::mem::take(&mut w.api.changes),
        tasks,
        arrivals,
        manual_runs: std::mem::take(&mut w.api.manual_runs),
        fences: std::mem::take(&mut w.fences),
        end: instant(end),
        clock_skew: w.max_skew,
        ..Evidence::default()
    }
}

/// A digest of what reached the queues (FNV-1a over every task's job, slot, token, queue and
/// instant): two runs of one seed print the same digest, bit for bit.
pub fn digest(w: &World) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (p, q) in w.redis.queues.iter().enumerate() {
        for x in q {
            eat(&[p as u8]);
            eat(x.task.job.spec.id.as_bytes());
            eat(&x.task.fire.slot.timestamp_micros().to_le_bytes());
            eat(&x.task.token.to_le_bytes());
            eat(&x.reached.timestamp_micros().to_le_bytes());
            eat(x.task.fire.fire_id.as_bytes());
        }
    }
    eat(&w.stats.events.to_le_bytes());
    h
}
