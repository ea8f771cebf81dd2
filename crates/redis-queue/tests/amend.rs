//! Withdrawing and restaging staged fires against a real redis-server: what a withdrawn slot
//! means for the queue, the dedupe mark, the cursor and the history; a restaged task carrying
//! the new spec to the queue; and a leader dying between a change and the slot (its
//! successor releases what is staged: never a withdrawn task, always the restaged one).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::*;
use cron_core::{Fire, FireKind, Job};
use redis_queue::test_server::RedisServer;
use redis_queue::{
    AmendOutcome, Amended, BatchOutcome, FireOutcome, RecordOutcome, ReleaseOutcome, ReleasedSlot,
    StageFire,
};
use serde_json::json;

type Conn = redis::aio::MultiplexedConnection;

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn staged(j: &Arc<Job>, slot: DateTime<Utc>, version: u64) -> StageFire {
    StageFire {
        job: j.clone(),
        fire: Fire::scheduled(j.spec.id.as_str().into(), slot, FireKind::Scheduled),
        version,
    }
}

fn done(o: AmendOutcome) -> Vec<Amended> {
    match o {
        AmendOutcome::Done(v) => v,
        other => panic!("expected Done, got {other:?}"),
    }
}

/// Every task in the queues, as (job, body), in the order runners take them.
async fn queued(conn: &mut Conn) -> Vec<(String, String)> {
    reserve_all(conn)
        .await
        .iter()
        .map(|t| {
            (
                t["cron"]["job_id"].as_str().unwrap().to_string(),
                t["payload"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Stages `a` and `b` at `slot` (version 1), as a leader with token 7 at t0.
async fn two_staged(q: &redis_queue::Queue, slot: DateTime<Utc>) -> (Arc<Job>, Arc<Job>) {
    let a = job("a", json!({"body": "a-v1"}));
    let b = job("b", json!({"body": "b-v1"}));
    let batch = [staged(&a, slot, 1), staged(&b, slot, 1)];
    let out = q.stage(&batch, 7, &settings(), t0()).await.unwrap();
    assert_eq!(out, BatchOutcome::Done(vec![FireOutcome::Enqueued; 2]));
    (a, b)
}

#[tokio::test]
async fn a_withdrawn_fire_never_reaches_the_queue_and_leaves_no_mark_no_cursor_no_history() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    let slot = t0() + secs(10);
    // An earlier slot of `a` was enqueued before: the cursor falls back to it.
    let a0 = job("a", json!({"body": "a-v1"}));
    let earlier = staged(&a0, t0() + secs(4), 1);
    q.enqueue(
        &[(a0.clone(), earlier.fire.clone())],
        7,
        &settings(),
        t0() + secs(4),
    )
    .await
    .unwrap();
    let (a, _b) = two_staged(&q, slot).await;
    assert_eq!(q.cursors(&["a"]).await.unwrap()["a"], slot);
    let withdraw = [staged(&a, slot, 1).fire];
    let out = done(q.amend(7, &withdraw, &[], &settings()).await.unwrap());
    assert_eq!(out, vec![Amended::Withdrawn]);
    assert_eq!(q.cursors(&["a"]).await.unwrap()["a"], t0() + secs(4));
    // `b` had no cursor before its staged slot; had it been withdrawn, it would have none.
    let st = q.staged().await.unwrap();
    assert_eq!(st.fires.len(), 1);
    assert_eq!(st.fires[0].job_id, "b");

    // Withdrawing again: not staged, and not enqueued either.
    let again = done(q.amend(7, &withdraw, &[], &settings()).await.unwrap());
    assert_eq!(again, vec![Amended::NotStaged { queued: false }]);

    // The slot is released: only `b` (behind `a`'s earlier slot); the history has nothing of
    // the withdrawn slot.
    q.release(7, slot).await.unwrap();
    assert_eq!(
        queued(&mut conn).await,
        vec![("a".into(), "a-v1".into()), ("b".into(), "b-v1".into())]
    );
    q.record_released(7).await.unwrap();
    let h = q.history("a").await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].slot, t0() + secs(4));
    assert_eq!(q.history("b").await.unwrap().len(), 1);

    // No dedupe mark is left: the slot may be enqueued again (a resume's catch-up).
    let again = q
        .enqueue(
            &[(a.clone(), withdraw[0].clone())],
            7,
            &settings(),
            slot + secs(5),
        )
        .await
        .unwrap();
    assert_eq!(again, BatchOutcome::Done(vec![FireOutcome::Enqueued]));
    assert_eq!(q.cursors(&["a"]).await.unwrap()["a"], slot);
}

#[tokio::test]
async fn a_withdrawal_gives_the_cursor_back_to_what_it_was_before_the_fire_was_staged() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let j = job("every", json!({}));
    let s: Vec<_> = (10..14).map(|n| t0() + secs(n)).collect();
    let f: Vec<_> = s.iter().map(|slot| staged(&j, *slot, 1)).collect();
    // Never enqueued before: 10 and 11 staged in one call, 12 and 13 in another.
    q.stage(&f[..2], 7, &settings(), t0()).await.unwrap();
    q.stage(&f[2..], 7, &settings(), t0()).await.unwrap();
    assert_eq!(q.cursors(&["every"]).await.unwrap()["every"], s[3]);
    let cursor = |q: &redis_queue::Queue| {
        let q = q.clone();
        async move { q.cursors(&["every"]).await.unwrap().get("every").copied() }
    };
    // 13: back to 11, the cursor when it was staged.
    let w = |i: usize| f[i].fire.clone();
    done(q.amend(7, &[w(3)], &[], &settings()).await.unwrap());
    assert_eq!(cursor(&q).await, Some(s[1]));
    // 12 too: it was staged with 13 at the same cursor.
    done(q.amend(7, &[w(2)], &[], &settings()).await.unwrap());
    assert_eq!(cursor(&q).await, Some(s[1]));
    // 10: before it, no cursor at all (its catch-up starts at the job's creation); 11, still
    // staged, is found a duplicate by that catch-up.
    done(q.amend(7, &[w(0)], &[], &settings()).await.unwrap());
    assert_eq!(cursor(&q).await, None);
    // 11 then: no cursor stays none.
    assert_eq!(
        done(q.amend(7, &[w(1)], &[], &settings()).await.unwrap()),
        vec![Amended::Withdrawn]
    );
    assert_eq!(cursor(&q).await, None);
}

#[tokio::test]
async fn a_restaged_fire_reaches_the_queue_with_the_new_spec_in_its_new_priority() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    let slot = t0() + secs(10);
    let (a, _b) = two_staged(&q, slot).await;
    let fixed = job("a", json!({"body": "a-v2", "priority": 2}));
    let out = done(
        q.amend(8, &[], &[staged(&fixed, slot, 2)], &settings())
            .await
            .unwrap(),
    );
    assert_eq!(out, vec![Amended::Replaced]);
    let st = q.staged().await.unwrap();
    let meta = st.fires.iter().find(|f| f.job_id == "a").unwrap();
    assert_eq!((meta.version, meta.priority), (2, 2));
    // The cursor and dedupe mark stay: the slot is still staged.
    assert_eq!(q.cursors(&["a"]).await.unwrap()["a"], slot);
    let dup = q
        .enqueue(
            &[(a.clone(), staged(&a, slot, 1).fire)],
            8,
            &settings(),
            slot,
        )
        .await
        .unwrap();
    assert_eq!(dup, BatchOutcome::Done(vec![FireOutcome::Duplicate]));

    q.release(8, slot).await.unwrap();
    // Priority 2 is taken first; the old task is nowhere.
    assert_eq!(
        queued(&mut conn).await,
        vec![("a".into(), "a-v2".into()), ("b".into(), "b-v1".into())]
    );
    q.record_released(8).await.unwrap();
    let h = q.history("a").await.unwrap();
    assert_eq!((h.len(), h[0].token), (1, 8));
}

#[tokio::test]
async fn a_fire_already_released_or_enqueued_is_not_staged_any_more() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let slot = t0() + secs(10);
    let (a, b) = two_staged(&q, slot).await;
    q.release(7, slot).await.unwrap();
    let out = done(
        q.amend(
            7,
            &[staged(&a, slot, 1).fire],
            &[staged(&b, slot, 2)],
            &settings(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(out, vec![Amended::NotStaged { queued: true }; 2]);
    // Never staged at all.
    let other = job("other", json!({}));
    let out = done(
        q.amend(7, &[], &[staged(&other, slot, 1)], &settings())
            .await
            .unwrap(),
    );
    assert_eq!(out, vec![Amended::NotStaged { queued: false }]);
}

#[tokio::test]
async fn a_former_leader_cannot_amend() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let slot = t0() + secs(10);
    let (a, _) = two_staged(&q, slot).await;
    // An earlier slot released, its history not yet written.
    let c = job("c", json!({}));
    let early = t0() + secs(5);
    q.stage(&[staged(&c, early, 1)], 7, &settings(), t0())
        .await
        .unwrap();
    q.release(7, early).await.unwrap();
    q.raise_fence(9).await.unwrap();
    assert_eq!(
        q.amend(7, &[staged(&a, slot, 1).fire], &[], &settings())
            .await
            .unwrap(),
        AmendOutcome::Fenced { fence: 9 }
    );
    assert_eq!(q.staged().await.unwrap().fires.len(), 2);
    assert_eq!(
        q.record_released(7).await.unwrap(),
        RecordOutcome::Fenced { fence: 9 }
    );
    assert!(q.history("c").await.unwrap().is_empty());
    // The successor writes it.
    q.record_released(9).await.unwrap();
    assert_eq!(q.history("c").await.unwrap().len(), 1);
}

/// The leader withdrew `a` and restaged `b` after a change, then died before the slot. Its
/// successor (a new connection, a higher token) reads what is staged, finds the new version
/// on `b` and nothing of `a`, and releases: `a` never runs, `b` runs with its new spec.
#[tokio::test]
async fn a_leader_dying_between_the_change_and_the_slot_loses_nothing_and_brings_nothing_back() {
    let server = RedisServer::start().unwrap();
    let slot = t0() + secs(10);
    {
        let dying = queue(&server).await;
        let (a, _) = two_staged(&dying, slot).await;
        let b2 = job("b", json!({"body": "b-v2"}));
        let out = done(
            dying
                .amend(
                    7,
                    &[staged(&a, slot, 1).fire],
                    &[staged(&b2, slot, 2)],
                    &settings(),
                )
                .await
                .unwrap(),
        );
        assert_eq!(out, vec![Amended::Withdrawn, Amended::Replaced]);
    }
    let successor = queue(&server).await;
    assert_eq!(successor.raise_fence(12).await.unwrap(), 12);
    let st = successor.staged().await.unwrap();
    assert_eq!(st.slots, vec![slot]);
    assert_eq!(st.fires.len(), 1);
    assert_eq!((st.fires[0].job_id.as_str(), st.fires[0].version), ("b", 2));
    assert_eq!(
        successor.release(12, slot).await.unwrap(),
        ReleaseOutcome::Done(vec![ReleasedSlot { slot, tasks: 1 }])
    );
    let mut conn = raw(&server).await;
    assert_eq!(queued(&mut conn).await, vec![("b".into(), "b-v2".into())]);
}
