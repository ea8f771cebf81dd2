//! Redis killed (SIGKILL) in the middle of a 10,000-fire batch, restarted from its append-only
//! file: after the caller's retry every fire is on the queue exactly once.
//!
//! The server runs with `appendfsync always`: Redis then writes each event loop's commands to
//! disk before it sends their replies, so a kill can lose only writes whose answer nobody saw
//! (those come back as `Unknown` and are retried). With the default `everysec`, a kill may
//! also lose up to a second of writes that were acknowledged as Enqueued, and a caller that
//! trusted them would lose calls: that is a persistence setting, not something a script can
//! fix, and the crate's README says so.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use redis_queue::test_server::{RedisServer, ServerOptions};
use redis_queue::{BatchOutcome, FireOutcome, QueueError};
use serde_json::json;

const JOBS: i64 = 100;
const SLOTS: i64 = 100;
/// A few attempts, in case the kill lands before the first or after the last call.
const ATTEMPTS: usize = 5;
const RETRY_DEADLINE: Duration = Duration::from_secs(120);

async fn stored(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let (q, d): (u64, u64) = redis::pipe()
        .cmd("LLEN")
        .arg("queue0")
        .cmd("ZCARD")
        .arg("delays")
        .query_async(conn)
        .await
        .unwrap_or((0, 0));
    q + d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_batch_then_retried_every_fire_exactly_once() {
    let mut mid_batch_seen = false;
    for attempt in 0..ATTEMPTS {
        let mut server = RedisServer::start_with(ServerOptions {
            appendonly: true,
            fsync_always: true,
            password: None,
        })
        .unwrap();
        let q = queue(&server).await.with_fires_per_call(100);
        // One job in ten goes through the delayed set, to check HSET/ZADD survive together.
        let jobs: Vec<_> = (0..JOBS)
            .map(|i| {
                let extra = if i % 10 == 0 {
                    json!({"delay": 60})
                } else {
                    json!({})
                };
                job(&format!("job-{i}"), extra)
            })
            .collect();
        let batch: Arc<Vec<_>> = Arc::new(
            (0..SLOTS)
                .flat_map(|n| jobs.iter().map(move |j| fire(j, n)))
                .collect(),
        );
        assert_eq!(batch.len(), 10_000);

        let first = {
            let (q, batch) = (q.clone(), batch.clone());
            tokio::spawn(async move { q.enqueue(&batch, 5, &settings(), t0()).await })
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
        let killed_mid =
            matches!(first, Err(QueueError::Unknown(_))) && before > 0 && before < 10_000;
        mid_batch_seen |= killed_mid;
        eprintln!("attempt {attempt}: {before} fires survived the kill; first call: {first:?}");

        // The caller's retry: the same fires, with backoff, until Redis answers.
        let started = Instant::now();
        let deadline = Instant::now() + RETRY_DEADLINE;
        let outcomes = loop {
            match q.enqueue(&batch, 5, &settings(), t0()).await {
                Ok(BatchOutcome::Done(o)) => break o,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => {
                    assert!(e.is_transient(), "{e}");
                    assert!(Instant::now() < deadline, "Redis did not come back: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        eprintln!("retry done after {:?}", started.elapsed());
        let enqueued = outcomes
            .iter()
            .filter(|o| **o == FireOutcome::Enqueued)
            .count() as u64;
        assert_eq!(
            before + enqueued,
            10_000,
            "attempt {attempt}: retry filled exactly the gap"
        );

        // Every fire exactly once across the queue and the delayed set.
        let mut seen = HashSet::new();
        // LRANGE rather than the runner's RPOP loop: the same content, in one round trip.
        let queued: Vec<String> = redis::cmd("LRANGE")
            .arg("queue0")
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        for task in queued {
            let task: serde_json::Value = serde_json::from_str(&task).unwrap();
            assert!(
                seen.insert(task["id"].as_str().unwrap().to_string()),
                "duplicate {task}"
            );
        }
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg("delays")
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        let hlen: usize = redis::cmd("HLEN")
            .arg("delayed_jobs")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(hlen, ids.len(), "hash and set agree");
        let hash: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg("delayed_jobs")
            .query_async(&mut conn)
            .await
            .unwrap();
        for id in ids {
            let task: serde_json::Value =
                serde_json::from_str(hash.get(&id).expect("task of a delayed id")).unwrap();
            assert!(
                seen.insert(task["id"].as_str().unwrap().to_string()),
                "duplicate {task}"
            );
        }
        let want: HashSet<String> = batch.iter().map(|(_, f)| f.fire_id.to_string()).collect();
        assert_eq!(seen, want);
        // The cursors survived with the pushes.
        let cursors = q.cursors(&["job-0", "job-99"]).await.unwrap();
        assert_eq!(
            cursors["job-0"],
            t0() + chrono::Duration::minutes(SLOTS - 1)
        );
        assert_eq!(
            cursors["job-99"],
            t0() + chrono::Duration::minutes(SLOTS - 1)
        );
        if mid_batch_seen {
            return;
        }
    }
    panic!("in {ATTEMPTS} attempts the kill never landed in the middle of the batch");
}
