//! The prepared release against a real redis-server: read and queued under WATCH ahead of the
//! slot, run by EXEC at it. Order behind a backlog is kept; a withdrawal, a restage or a newer
//! leader's fence between the preparation and the slot makes Redis refuse the transaction, and
//! the script release then does the right thing; an empty queue is left to the RENAME.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::*;
use cron_core::{Fire, FireKind, Job};
use redis_queue::test_server::RedisServer;
use redis_queue::{AmendOutcome, Amended, Queue, ReleaseOutcome, ReleasedSlot, StageFire};
use serde_json::json;

type Conn = redis::aio::MultiplexedConnection;

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn staged(j: &Arc<Job>, slot: DateTime<Utc>) -> StageFire {
    StageFire {
        job: j.clone(),
        fire: Fire::scheduled(j.spec.id.as_str().into(), slot, FireKind::Scheduled),
        version: 1,
    }
}

/// `n` jobs staged at `slot`, and a backlog of `backlog` older tasks in queue0.
async fn setup(
    q: &Queue,
    conn: &mut Conn,
    n: usize,
    backlog: usize,
    slot: DateTime<Utc>,
) -> Vec<StageFire> {
    let batch: Vec<_> = (0..n)
        .map(|i| staged(&job(&format!("job-{i}"), json!({})), slot))
        .collect();
    q.stage(&batch, 7, &settings(), t0()).await.unwrap();
    for i in 0..backlog {
        let _: () = redis::cmd("LPUSH")
            .arg("queue0")
            .arg(json!({"id": format!("old-{i}")}).to_string())
            .query_async(conn)
            .await
            .unwrap();
    }
    batch
}

fn want(backlog: usize, batch: &[StageFire]) -> Vec<String> {
    let mut v: Vec<String> = (0..backlog).map(|i| format!("old-{i}")).collect();
    v.extend(batch.iter().map(|f| f.fire.fire_id.to_string()));
    v
}

#[tokio::test]
async fn a_prepared_release_keeps_the_backlog_first_and_marks_the_slot_released() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    let slot = t0() + secs(10);
    let batch = setup(&q, &mut conn, 300, 200, slot).await;
    let p = q.prepare_release(7, slot).await.unwrap().expect("prepared");
    assert_eq!(p.slot(), slot);
    // Nothing moved before the slot.
    assert_eq!(queued_ids(&mut conn, "queue0").await.len(), 200);
    let r = q.release_prepared(Some(p), 7, slot).await.unwrap();
    assert_eq!(
        r,
        ReleaseOutcome::Done(vec![ReleasedSlot { slot, tasks: 300 }])
    );
    assert_eq!(queued_ids(&mut conn, "queue0").await, want(200, &batch));
    assert!(q.staged().await.unwrap().slots.is_empty());
    assert!(q.staged().await.unwrap().unrecorded);
    q.record_released(7).await.unwrap();
    assert_eq!(q.history("job-0").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_withdrawal_after_the_preparation_is_honoured() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    let slot = t0() + secs(10);
    let batch = setup(&q, &mut conn, 10, 5, slot).await;
    let p = q.prepare_release(7, slot).await.unwrap().expect("prepared");
    let out = q
        .amend(7, &[batch[3].fire.clone()], &[], &settings())
        .await
        .unwrap();
    assert_eq!(out, AmendOutcome::Done(vec![Amended::Withdrawn]));
    let r = q.release_prepared(Some(p), 7, slot).await.unwrap();
    assert_eq!(
        r,
        ReleaseOutcome::Done(vec![ReleasedSlot { slot, tasks: 9 }])
    );
    let mut rest = batch.clone();
    rest.remove(3);
    assert_eq!(queued_ids(&mut conn, "queue0").await, want(5, &rest));
}

#[tokio::test]
async fn a_newer_leader_after_the_preparation_refuses_it() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    let slot = t0() + secs(10);
    setup(&q, &mut conn, 10, 5, slot).await;
    let p = q.prepare_release(7, slot).await.unwrap().expect("prepared");
    assert_eq!(q.raise_fence(9).await.unwrap(), 9);
    let r = q.release_prepared(Some(p), 7, slot).await.unwrap();
    assert_eq!(r, ReleaseOutcome::Fenced { fence: 9 });
    assert_eq!(
        queued_ids(&mut conn, "queue0").await.len(),
        5,
        "nothing released by the old leader"
    );
    // The new leader releases it.
    let r = q.release(9, slot).await.unwrap();
    assert_eq!(
        r,
        ReleaseOutcome::Done(vec![ReleasedSlot { slot, tasks: 10 }])
    );
}

#[tokio::test]
async fn an_empty_queue_or_a_fenced_token_is_not_prepared() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let mut conn = raw(&server).await;
    let slot = t0() + secs(10);
    setup(&q, &mut conn, 10, 0, slot).await;
    assert!(
        q.prepare_release(7, slot).await.unwrap().is_none(),
        "RENAME is cheaper"
    );
    let _: () = redis::cmd("LPUSH")
        .arg("queue0")
        .arg("{\"id\":\"x\"}")
        .query_async(&mut conn)
        .await
        .unwrap();
    q.raise_fence(9).await.unwrap();
    assert!(q.prepare_release(7, slot).await.unwrap().is_none());
    assert!(
        q.prepare_release(9, slot + secs(1))
            .await
            .unwrap()
            .is_none(),
        "nothing staged there"
    );
    assert!(q.prepare_release(9, slot).await.unwrap().is_some());
}
