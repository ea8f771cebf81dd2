//! The enqueue script against a real redis-server: the task format a runner reserves, dedupe,
//! fencing, delayed tasks, cursors and history.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use chrono::Duration;
use common::*;
use cron_core::{Fire, FireKind};
use redis_queue::test_server::RedisServer;
use redis_queue::{BatchOutcome, FireOutcome, QueueError};
use serde_json::json;

fn done(o: BatchOutcome) -> Vec<FireOutcome> {
    match o {
        BatchOutcome::Done(v) => v,
        other => panic!("expected Done, got {other:?}"),
    }
}

#[tokio::test]
async fn reserve_gets_complete_tasks_in_priority_order() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let low = job("low", json!({}));
    let high = job("high", json!({"priority": 2, "timeout": 120}));
    let mid = job("mid", json!({"priority": 1}));
    let batch = vec![fire(&low, 0), fire(&high, 0), fire(&mid, 0), fire(&low, 1)];
    let now = t0() + Duration::seconds(1);
    let out = done(q.enqueue(&batch, 7, &settings(), now).await.unwrap());
    assert_eq!(out, vec![FireOutcome::Enqueued; 4]);

    let mut conn = raw(&server).await;
    let tasks = reserve_all(&mut conn).await;
    let ids: Vec<&str> = tasks
        .iter()
        .map(|t| t["cron"]["job_id"].as_str().unwrap())
        .collect();
    // queue2 first, then queue1, then queue0 in FIFO order.
    assert_eq!(ids, ["high", "mid", "low", "low"]);

    let t = &tasks[0];
    assert_eq!(t["id"], batch[1].1.fire_id.to_string());
    assert_eq!(t["image"], "iron/hello");
    assert_eq!(t["priority"], 2);
    assert_eq!(t["app_name"], "myapp");
    assert_eq!(t["path"], "/hello");
    assert_eq!(t["payload"], "{\"name\":\"Johnny\"}");
    assert_eq!(t["timeout"], 120);
    assert_eq!(t["created_at"], "2026-11-26T12:00:01.000Z");
    let env = &t["env_vars"];
    assert_eq!(env["METHOD"], "POST");
    assert_eq!(env["ROUTE"], "/hello");
    assert_eq!(
        env["REQUEST_URL"],
        "http://functions.test:8080/r/myapp/hello"
    );
    assert_eq!(env["HEADER_CONTENT_TYPE"], "application/json");
    assert_eq!(env["HEADER_X_TRACE_ID"], "abc");
    let ua = env["HEADER_USER_AGENT"].as_str().unwrap();
    assert!(ua.starts_with("cronnode/") && ua.contains("high"), "{ua}");
    assert_eq!(t["cron"]["token"], 7);
    assert_eq!(t["cron"]["slot"], "2026-11-26T12:00:00.000Z");
    assert_eq!(t["cron"]["node"], "node-a");
    assert_eq!(
        tasks[2]["timeout"], 30,
        "runner default when the job names none"
    );
    assert!(tasks.iter().all(|t| t.get("delay").is_none()));
}

#[tokio::test]
async fn the_same_fire_twice_is_one_task() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let j = job("report", json!({}));
    let now = t0();

    // Twice in one batch.
    let batch = vec![fire(&j, 0), fire(&j, 0), fire(&j, 1)];
    let out = done(q.enqueue(&batch, 1, &settings(), now).await.unwrap());
    assert_eq!(
        out,
        [
            FireOutcome::Enqueued,
            FireOutcome::Duplicate,
            FireOutcome::Enqueued
        ]
    );
    // Again across batches, with a newer token and a later clock: still duplicates.
    let out = done(
        q.enqueue(&batch[..2], 2, &settings(), now + Duration::minutes(5))
            .await
            .unwrap(),
    );
    assert_eq!(out, [FireOutcome::Duplicate, FireOutcome::Duplicate]);
    // Across calls of one batch (one fire per script call).
    let q1 = q.clone().with_fires_per_call(1);
    let again = vec![fire(&j, 2), fire(&j, 2), fire(&j, 1)];
    let out = done(q1.enqueue(&again, 2, &settings(), now).await.unwrap());
    assert_eq!(
        out,
        [
            FireOutcome::Enqueued,
            FireOutcome::Duplicate,
            FireOutcome::Duplicate
        ]
    );

    let mut conn = raw(&server).await;
    let tasks = reserve_all(&mut conn).await;
    let ids: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(unique.len(), 3);
    // The slot minute's dedupe bucket outlives its last slot by the catch-up window (1h
    // default) and a day.
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{{cronnode}}:dedupe:{}", t0().timestamp() / 60))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl > 25 * 3600 * 1000 && ttl <= (25 * 3600 + 60) * 1000,
        "{ttl}"
    );
}

#[tokio::test]
async fn a_raised_fence_refuses_smaller_tokens() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    assert_eq!(q.fence().await.unwrap(), None);
    assert_eq!(q.raise_fence(100).await.unwrap(), 100);
    assert_eq!(q.raise_fence(50).await.unwrap(), 100, "never lowered");
    // 99 vs 100: different lengths must compare as numbers, not as strings.
    assert_eq!(q.raise_fence(99).await.unwrap(), 100);

    let j = job("report", json!({}));
    let batch: Vec<_> = (0..10).map(|n| fire(&j, n)).collect();
    let out = q.enqueue(&batch, 99, &settings(), t0()).await.unwrap();
    assert_eq!(out, BatchOutcome::Fenced { fence: 100 });
    assert_eq!(q.queue_depths().await.unwrap().queues, [0, 0, 0]);
    assert!(q.cursors(&["report"]).await.unwrap().is_empty());
    assert!(q.history("report").await.unwrap().is_empty());

    // The current term enqueues; a larger token raises the fence on its own.
    let out = done(q.enqueue(&batch, 100, &settings(), t0()).await.unwrap());
    assert!(out.iter().all(|o| *o == FireOutcome::Enqueued));
    done(
        q.enqueue(&[fire(&j, 20)], 1000, &settings(), t0())
            .await
            .unwrap(),
    );
    assert_eq!(q.fence().await.unwrap(), Some(1000));
    let out = q
        .enqueue(&[fire(&j, 21)], 100, &settings(), t0())
        .await
        .unwrap();
    assert_eq!(out, BatchOutcome::Fenced { fence: 1000 });

    // The operator's reset sets it exactly, even lower.
    q.reset_fence(5).await.unwrap();
    assert_eq!(q.fence().await.unwrap(), Some(5));
    assert!(matches!(
        q.enqueue(&[fire(&j, 21)], u64::MAX, &settings(), t0())
            .await,
        Err(QueueError::Token(_))
    ));
}

#[tokio::test]
async fn delayed_tasks_are_in_the_hash_and_the_set() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let j = job("later", json!({"delay": 90}));
    let now_job = job("now", json!({}));
    let mut batch: Vec<_> = (0..50).map(|n| fire(&j, n)).collect();
    batch.push(fire(&now_job, 0));
    batch.push(fire(&j, 0)); // duplicate of the first
    let now = t0() + Duration::seconds(3);
    let out = done(q.enqueue(&batch, 1, &settings(), now).await.unwrap());
    assert_eq!(
        out.iter().filter(|o| **o == FireOutcome::Enqueued).count(),
        51
    );

    let mut conn = raw(&server).await;
    let counter: u64 = redis::cmd("GET")
        .arg("delays_counter")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(counter, 50);
    let members: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg("delays")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(members.len(), 50);
    let mut fire_ids = HashSet::new();
    for (id, score) in &members {
        assert_eq!(*score as i64, now.timestamp() + 90);
        let task: Option<String> = redis::cmd("HGET")
            .arg("delayed_jobs")
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
        let task: serde_json::Value =
            serde_json::from_str(&task.expect("every delayed id has its task")).unwrap();
        assert_eq!(task["delay"], 90);
        fire_ids.insert(task["id"].as_str().unwrap().to_string());
    }
    assert_eq!(fire_ids.len(), 50);
    let hlen: u64 = redis::cmd("HLEN")
        .arg("delayed_jobs")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(hlen, 50, "no task in the hash without its id in the set");
    let depths = q.queue_depths().await.unwrap();
    assert_eq!(depths.queues, [1, 0, 0]);
    assert_eq!(depths.delayed, 50);
}

#[tokio::test]
async fn cursors_advance_only_and_history_is_capped() {
    let server = RedisServer::start().unwrap();
    let cfg = redis_queue::QueueConfig {
        history_len: 5,
        ..redis_queue::QueueConfig::new(server.url())
    };
    let q = redis_queue::Queue::connect(cfg).await.unwrap();
    let j = job("report", json!({}));
    let other = job("other", json!({}));
    let before = chrono::Utc::now() - Duration::milliseconds(1);
    done(
        q.enqueue(&[fire(&j, 10), fire(&other, 3)], 1, &settings(), t0())
            .await
            .unwrap(),
    );
    // An older slot enqueued late does not move the cursor back; a manual run does not move it.
    let manual = Fire::manual("report".into(), t0() + Duration::minutes(30));
    done(
        q.enqueue(
            &[fire(&j, 4), (j.clone(), manual.clone())],
            1,
            &settings(),
            t0(),
        )
        .await
        .unwrap(),
    );
    let cursors = q.cursors(&["report", "other", "never"]).await.unwrap();
    assert_eq!(cursors.len(), 2);
    assert_eq!(cursors["report"], t0() + Duration::minutes(10));
    assert_eq!(cursors["other"], t0() + Duration::minutes(3));

    let h = q.history("report").await.unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].fire_id, manual.fire_id);
    assert_eq!(h[0].kind, FireKind::Manual);
    assert_eq!(h[1].slot, t0() + Duration::minutes(4));
    assert_eq!(h[2].node, "node-a");
    assert_eq!(h[2].token, 1);
    // When the task reached the queue, by Redis's clock (the caller's `now` is the task's
    // `created_at`, not this).
    assert!(
        h[2].enqueued_at >= before && h[2].enqueued_at <= chrono::Utc::now(),
        "{} not within the call",
        h[2].enqueued_at
    );

    let batch: Vec<_> = (100..130).map(|n| fire(&j, n)).collect();
    done(q.enqueue(&batch, 1, &settings(), t0()).await.unwrap());
    let h = q.history("report").await.unwrap();
    assert_eq!(h.len(), 5, "capped");
    assert_eq!(h[0].slot, t0() + Duration::minutes(129), "newest first");
    let mut conn = raw(&server).await;
    let len: u64 = redis::cmd("LLEN")
        .arg("{cronnode}:history:report")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(len <= 10, "trimmed to at most twice the length, got {len}");
}

#[tokio::test]
async fn large_batches_keep_input_order_across_calls() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await.with_fires_per_call(7);
    let jobs: Vec<_> = (0..40)
        .map(|i| job(&format!("job-{i}"), json!({})))
        .collect();
    let batch: Vec<_> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| fire(j, i as i64))
        .collect();
    let out = done(q.enqueue(&batch, 1, &settings(), t0()).await.unwrap());
    assert_eq!(out.len(), 40);
    let mut conn = raw(&server).await;
    // Redis restarted in between loses the script: EVALSHA must still work (SCRIPT FLUSH
    // stands in for the restart).
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    done(
        q.enqueue(&[fire(&jobs[0], 1000)], 1, &settings(), t0())
            .await
            .unwrap(),
    );
    let tasks = reserve_all(&mut conn).await;
    let got: Vec<String> = tasks
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = batch.iter().map(|(_, f)| f.fire_id.to_string()).collect();
    want.push(fire(&jobs[0], 1000).1.fire_id.to_string());
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_job_without_an_image_is_refused_and_nothing_is_sent() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let good = job("good", json!({}));
    let bad = job("bad", json!({"image": null}));
    let s = settings();
    let err = s.check_job(&bad).unwrap_err();
    assert!(
        err.to_string().contains("function.image is required"),
        "{err}"
    );
    let res = q
        .enqueue(&[fire(&good, 0), fire(&bad, 0)], 1, &s, t0())
        .await;
    assert!(matches!(res, Err(QueueError::Task(_))), "{res:?}");
    assert_eq!(q.queue_depths().await.unwrap().queues, [0, 0, 0]);
    // With a default image the same job goes through.
    let s = redis_queue::TaskSettings {
        default_image: Some("iron/default".into()),
        ..settings()
    };
    s.check_job(&bad).unwrap();
    done(q.enqueue(&[fire(&bad, 0)], 1, &s, t0()).await.unwrap());
    let mut conn = raw(&server).await;
    assert_eq!(reserve_all(&mut conn).await[0]["image"], "iron/default");
}

#[test]
fn enqueue_can_run_in_a_spawned_task() {
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start().unwrap();
    rt.block_on(async {
        let q = queue(&server).await;
        let j = job("report", json!({}));
        let batch = vec![fire(&j, 0)];
        let s = settings();
        let fut = q.enqueue(&batch, 1, &s, t0());
        assert_send(&fut);
        assert_eq!(done(fut.await.unwrap()), [FireOutcome::Enqueued]);
    });
}
