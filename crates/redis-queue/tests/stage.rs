//! Staged enqueue against a real redis-server: staging does the fenced, deduplicated work
//! (dedupe, cursor, the staged record) ahead of the slot without touching the queues; the
//! release moves every staged task into its queue exactly once, in order, and only at or after
//! its slot; the history then says when each task reached the queue. Crash windows: an index
//! entry naming an empty list, a successor releasing what a dead leader staged, a fenced
//! former leader, a retried stage, Redis killed mid-stage.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use cron_core::{Fire, FireKind, Job};
use redis_queue::test_server::{RedisServer, ServerOptions};
use redis_queue::{
    BatchOutcome, FireOutcome, QueueError, RecordOutcome, ReleaseOutcome, ReleasedSlot, StageFire,
    RELEASE_TASKS_PER_CALL,
};
use serde_json::json;

type Conn = redis::aio::MultiplexedConnection;

fn done(o: BatchOutcome) -> Vec<FireOutcome> {
    match o {
        BatchOutcome::Done(v) => v,
        other => panic!("expected Done, got {other:?}"),
    }
}

fn released(o: ReleaseOutcome) -> Vec<ReleasedSlot> {
    match o {
        ReleaseOutcome::Done(v) => v,
        other => panic!("expected Done, got {other:?}"),
    }
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// Fires of these jobs at `slot`, staged with spec version 1.
fn fires_at(jobs: &[Arc<Job>], slot: DateTime<Utc>) -> Vec<StageFire> {
    jobs.iter()
        .map(|j| StageFire {
            job: j.clone(),
            fire: Fire::scheduled(j.spec.id.as_str().into(), slot, FireKind::Scheduled),
            version: 1,
        })
        .collect()
}

/// The same fires, as `enqueue` takes them.
fn direct(batch: &[StageFire]) -> Vec<(Arc<Job>, Fire)> {
    batch
        .iter()
        .map(|f| (f.job.clone(), f.fire.clone()))
        .collect()
}

fn jobs(n: usize, extra: serde_json::Value) -> Vec<Arc<Job>> {
    (0..n)
        .map(|i| job(&format!("job-{i}"), extra.clone()))
        .collect()
}

async fn keys(conn: &mut Conn, pattern: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(conn)
        .await
        .unwrap()
}

fn ids(batch: &[StageFire]) -> Vec<String> {
    batch.iter().map(|f| f.fire.fire_id.to_string()).collect()
}

#[tokio::test]
async fn staged_tasks_reach_the_queue_at_their_slot_only() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    let js = jobs(3, json!({}));
    let slot = t0() + secs(10);
    let batch = fires_at(&js, slot);
    let now = t0() + secs(8);

    let out = done(q.stage(&batch, 7, &settings(), now).await.unwrap());
    assert_eq!(out, vec![FireOutcome::Enqueued; 3]);
    // Staged: recorded, not queued.
    assert!(queued_ids(&mut conn, "queue0").await.is_empty());
    assert_eq!(q.staged_slots().await.unwrap(), vec![slot]);
    let cursors = q.cursors(&["job-0", "job-2"]).await.unwrap();
    assert_eq!(cursors["job-0"], slot);
    assert_eq!(cursors["job-2"], slot);
    // Not in the queue yet: no history entry says it is.
    assert!(q.history("job-1").await.unwrap().is_empty());
    let staged = q.staged().await.unwrap();
    assert_eq!(staged.slots, vec![slot]);
    assert_eq!(staged.fires.len(), 3);
    assert!(staged
        .fires
        .iter()
        .all(|f| f.version == 1 && f.slot == slot));

    // Before the slot nothing moves.
    let r = released(q.release(7, slot - secs(1)).await.unwrap());
    assert!(r.is_empty(), "{r:?}");
    assert!(queued_ids(&mut conn, "queue0").await.is_empty());

    // At the slot everything moves, in staging order, once.
    let before = Utc::now() - chrono::Duration::milliseconds(1);
    let r = released(q.release(7, slot).await.unwrap());
    let after = Utc::now();
    assert_eq!(r, vec![ReleasedSlot { slot, tasks: 3 }]);
    assert_eq!(queued_ids(&mut conn, "queue0").await, ids(&batch));
    let tasks = reserve_all(&mut conn).await;
    assert_eq!(tasks[0]["created_at"], "2026-11-26T12:00:10.000Z");
    assert_eq!(tasks[0]["cron"]["slot"], "2026-11-26T12:00:10.000Z");
    assert_eq!(tasks[0]["cron"]["token"], 7);

    assert!(released(q.release(7, slot + secs(5)).await.unwrap()).is_empty());
    assert!(q.staged_slots().await.unwrap().is_empty());
    assert!(keys(&mut conn, "*staging*").await.is_empty());
    assert!(keys(&mut conn, "*staged*").await.is_empty());

    // The history is written after the release, and says when the tasks reached the queue.
    assert!(q.staged().await.unwrap().unrecorded);
    assert_eq!(
        q.record_released(7).await.unwrap(),
        RecordOutcome::Done { more: false }
    );
    let h = q.history("job-1").await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].slot, h[0].token, h[0].node.as_str()),
        (slot, 7, "node-a")
    );
    assert_eq!(h[0].kind, FireKind::Scheduled);
    assert!(
        h[0].enqueued_at >= before && h[0].enqueued_at <= after,
        "{} is not the release's instant",
        h[0].enqueued_at
    );
    // Repeated (a lost answer): nothing written twice.
    assert_eq!(
        q.record_released(7).await.unwrap(),
        RecordOutcome::Done { more: false }
    );
    assert_eq!(q.history("job-1").await.unwrap().len(), 1);
    assert!(keys(&mut conn, "*released*").await.is_empty());
}

#[tokio::test]
async fn release_keeps_fifo_behind_queued_tasks_and_orders_slots_and_priorities() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    let low = jobs(4, json!({}));
    let high = vec![job("high", json!({"priority": 2}))];
    // Something already in queue0 (enqueued directly): it must stay ahead of staged tasks.
    let early = fires_at(&low[..1], t0());
    done(
        q.enqueue(&direct(&early), 7, &settings(), t0())
            .await
            .unwrap(),
    );

    let s1 = t0() + secs(10);
    let s2 = t0() + secs(11);
    let mut b1 = fires_at(&low, s1);
    b1.extend(fires_at(&high, s1));
    let b2 = fires_at(&low, s2);
    // Staged in two calls per slot, second slot first: the order inside a slot is the staging
    // order, slots are released oldest first.
    done(q.stage(&b2, 7, &settings(), t0()).await.unwrap());
    done(q.stage(&b1[..2], 7, &settings(), t0()).await.unwrap());
    done(q.stage(&b1[2..], 7, &settings(), t0()).await.unwrap());
    assert_eq!(q.staged_slots().await.unwrap(), vec![s1, s2]);

    let r = released(q.release(7, s2 + secs(1)).await.unwrap());
    assert_eq!(
        r,
        vec![
            ReleasedSlot { slot: s1, tasks: 5 },
            ReleasedSlot { slot: s2, tasks: 4 }
        ]
    );
    let mut want = ids(&early);
    want.extend(
        b1.iter()
            .filter(|f| f.job.spec.id != "high")
            .map(|f| f.fire.fire_id.to_string()),
    );
    want.extend(ids(&b2));
    assert_eq!(queued_ids(&mut conn, "queue0").await, want);
    assert_eq!(queued_ids(&mut conn, "queue2").await, ids(&b1[4..]));
}

#[tokio::test]
async fn a_large_release_into_a_busy_queue_keeps_order() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    let n = RELEASE_TASKS_PER_CALL * 2 + 500;
    let js = jobs(n, json!({}));
    let slot = t0() + secs(30);
    let batch = fires_at(&js, slot);
    done(q.stage(&batch, 7, &settings(), t0()).await.unwrap());
    // A backlog longer than the staged list: the staged tasks are moved, budget by budget.
    let backlog: Vec<String> = (0..=n).map(|i| format!("pre-{i}")).collect();
    for chunk in backlog.chunks(1000) {
        let tasks: Vec<String> = chunk
            .iter()
            .map(|id| json!({"id": id}).to_string())
            .collect();
        let _: () = redis::cmd("LPUSH")
            .arg("queue0")
            .arg(tasks)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let all = |slot| {
        vec![ReleasedSlot {
            slot,
            tasks: n as u64,
        }]
    };

    assert_eq!(released(q.release(7, slot).await.unwrap()), all(slot));
    let mut want = backlog;
    want.extend(ids(&batch));
    assert_eq!(queued_ids(&mut conn, "queue0").await, want);
    assert!(keys(&mut conn, "*staging*").await.is_empty());

    // A backlog shorter than the staged list moves behind it instead; the order is the same.
    let slot = slot + secs(60);
    let batch = fires_at(&js, slot);
    done(q.stage(&batch, 7, &settings(), t0()).await.unwrap());
    let _: () = redis::cmd("LTRIM")
        .arg("queue0")
        .arg(0)
        .arg(2)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut want = queued_ids(&mut conn, "queue0").await;
    assert_eq!(want.len(), 3);
    assert_eq!(released(q.release(7, slot).await.unwrap()), all(slot));
    want.extend(ids(&batch));
    assert_eq!(queued_ids(&mut conn, "queue0").await, want);
    assert!(keys(&mut conn, "*staging*").await.is_empty());
}

#[tokio::test]
async fn a_staged_fire_is_never_enqueued_twice() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    let js = jobs(2, json!({}));
    let slot = t0() + secs(10);
    let batch = fires_at(&js, slot);
    done(q.stage(&batch, 7, &settings(), t0()).await.unwrap());
    // A retried stage (lost answer), then the slot passes and the caller enqueues directly.
    let again = done(q.stage(&batch, 7, &settings(), t0()).await.unwrap());
    assert_eq!(again, vec![FireOutcome::Duplicate; 2]);
    let again = done(
        q.enqueue(&direct(&batch), 7, &settings(), slot)
            .await
            .unwrap(),
    );
    assert_eq!(again, vec![FireOutcome::Duplicate; 2]);
    assert!(queued_ids(&mut conn, "queue0").await.is_empty());
    released(q.release(7, slot).await.unwrap());
    assert_eq!(queued_ids(&mut conn, "queue0").await, ids(&batch));

    // And the other way round: enqueued first, staged later is a duplicate.
    let s2 = slot + secs(60);
    let b2 = fires_at(&js, s2);
    done(q.enqueue(&direct(&b2), 7, &settings(), s2).await.unwrap());
    assert_eq!(
        done(q.stage(&b2, 7, &settings(), s2).await.unwrap()),
        vec![FireOutcome::Duplicate; 2]
    );
    // An index entry for a list that stayed empty is harmless.
    let r = released(q.release(7, s2).await.unwrap());
    assert_eq!(r, vec![ReleasedSlot { slot: s2, tasks: 0 }]);
    assert_eq!(queued_ids(&mut conn, "queue0").await.len(), 4);
    assert!(q.staged_slots().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_index_entry_without_its_list_is_harmless() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    // As if an index entry were written and the staging itself never happened.
    let slot = t0() + secs(10);
    let member = format!("{}:1", slot.timestamp());
    let _: () = redis::cmd("ZADD")
        .arg("{cronnode}:staging")
        .arg(slot.timestamp())
        .arg(&member)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(q.staged_slots().await.unwrap(), vec![slot]);
    let r = released(q.release(7, slot).await.unwrap());
    assert_eq!(r, vec![ReleasedSlot { slot, tasks: 0 }]);
    assert!(q.staged_slots().await.unwrap().is_empty());
    assert_eq!(q.queue_depths().await.unwrap().queues, [0, 0, 0]);
}

#[tokio::test]
async fn a_former_leader_can_neither_stage_nor_release() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    let js = jobs(2, json!({}));
    let slot = t0() + secs(10);
    let batch = fires_at(&js, slot);
    // The old leader (token 5) staged, then paused; a successor (token 9) raised the fence.
    done(q.stage(&batch, 5, &settings(), t0()).await.unwrap());
    assert_eq!(q.raise_fence(9).await.unwrap(), 9);

    let later = fires_at(&js, slot + secs(60));
    assert_eq!(
        q.stage(&later, 5, &settings(), t0()).await.unwrap(),
        BatchOutcome::Fenced { fence: 9 }
    );
    assert_eq!(
        q.release(5, slot).await.unwrap(),
        ReleaseOutcome::Fenced { fence: 9 }
    );
    assert!(queued_ids(&mut conn, "queue0").await.is_empty());
    assert_eq!(q.cursors(&["job-0"]).await.unwrap()["job-0"], slot);

    // The successor learns the pending slot and releases it.
    assert_eq!(q.staged_slots().await.unwrap(), vec![slot]);
    let r = released(q.release(9, slot).await.unwrap());
    assert_eq!(r, vec![ReleasedSlot { slot, tasks: 2 }]);
    assert_eq!(queued_ids(&mut conn, "queue0").await, ids(&batch));
}

#[tokio::test]
async fn a_fire_of_a_delayed_job_is_refused_by_stage_and_nothing_is_sent() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    let mut js = jobs(2, json!({}));
    js.push(job("later", json!({"delay": 90})));
    let batch = fires_at(&js, t0() + secs(10));
    match q.stage(&batch, 7, &settings(), t0()).await {
        Err(QueueError::StagedDelay { job }) => assert_eq!(job, "later"),
        other => panic!("{other:?}"),
    }
    assert!(keys(&mut conn, "*").await.is_empty(), "nothing written");
}

async fn stored(conn: &mut Conn) -> u64 {
    let (staged, queued): (Vec<String>, u64) = redis::pipe()
        .cmd("KEYS")
        .arg("{cronnode}:staging:*")
        .cmd("LLEN")
        .arg("queue0")
        .query_async(conn)
        .await
        .unwrap_or_default();
    let mut n = queued;
    for k in staged {
        let l: u64 = redis::cmd("LLEN")
            .arg(&k)
            .query_async(conn)
            .await
            .unwrap_or(0);
        n += l;
    }
    n
}

/// Redis killed (SIGKILL) in the middle of staging 10,000 fires, restarted from its
/// append-only file; the caller retries the same fires (by then their slot has passed, so it
/// enqueues them directly), then releases: every fire in the queue exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_stage_then_retried_and_released_every_fire_exactly_once() {
    const ATTEMPTS: usize = 5;
    let mut mid_seen = false;
    for attempt in 0..ATTEMPTS {
        let mut server = RedisServer::start_with(ServerOptions {
            appendonly: true,
            fsync_always: true,
            password: None,
        })
        .unwrap();
        let q = queue(&server).await.with_fires_per_call(100);
        let js = jobs(10_000, json!({}));
        let slot = t0() + secs(10);
        let batch = Arc::new(fires_at(&js, slot));
        let first = {
            let (q, batch) = (q.clone(), batch.clone());
            tokio::spawn(async move { q.stage(&batch, 5, &settings(), t0()).await })
        };
        let mut conn = raw(&server).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while stored(&mut conn).await == 0 && Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        server.kill();
        let first = first.await.unwrap().map(|_| ());
        server.restart().unwrap();
        let mut conn = raw(&server).await;
        let before = stored(&mut conn).await;
        mid_seen |= matches!(first, Err(QueueError::Unknown(_))) && before > 0 && before < 10_000;
        eprintln!("attempt {attempt}: {before} staged fires survived; first call: {first:?}");

        let deadline = Instant::now() + Duration::from_secs(120);
        let outcomes = loop {
            match q
                .enqueue(&direct(&batch), 5, &settings(), slot + secs(1))
                .await
            {
                Ok(BatchOutcome::Done(o)) => break o,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => {
                    assert!(e.is_transient(), "{e}");
                    assert!(Instant::now() < deadline, "Redis did not come back: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let direct = outcomes
            .iter()
            .filter(|o| **o == FireOutcome::Enqueued)
            .count() as u64;
        let r = released(q.release(5, slot + secs(1)).await.unwrap());
        let moved: u64 = r.iter().map(|s| s.tasks).sum();
        assert_eq!(
            moved, before,
            "attempt {attempt}: every surviving staged task moved"
        );
        assert_eq!(moved + direct, 10_000);
        let got = queued_ids(&mut conn, "queue0").await;
        assert_eq!(got.len(), 10_000);
        let unique: HashSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), 10_000, "no fire twice");
        assert_eq!(unique, ids(&batch).iter().collect::<HashSet<_>>());
        if mid_seen {
            return;
        }
    }
    panic!("in {ATTEMPTS} attempts the kill never landed in the middle of the stage");
}
