//! `Queue::record_not_fired`: slots not fired go into their job's history with the reason,
//! fenced, and nothing else moves (no task, no dedupe mark, no cursor).
#![allow(clippy::unwrap_used)]

mod common;

use common::{fire, job, queue, raw, t0};
use redis_queue::test_server::RedisServer;
use redis_queue::{HistoryEntry, NotFiredOutcome};

#[tokio::test]
async fn slots_not_fired_are_recorded_fenced_and_nothing_else_moves() {
    let server = RedisServer::start().unwrap();
    let q = queue(&server).await;
    let j = job("report", serde_json::json!({}));
    let (_, f1) = fire(&j, 1);
    let (_, f2) = fire(&j, 2);
    let why = "not fired: app \"myapp\" route \"/hello\": Route not found";
    let entries = [
        ("report", HistoryEntry::not_fired(&f1, "node-a", t0(), why)),
        ("report", HistoryEntry::not_fired(&f2, "node-a", t0(), why)),
    ];
    assert_eq!(q.raise_fence(5).await.unwrap(), 5);
    assert_eq!(
        q.record_not_fired(5, &entries).await.unwrap(),
        NotFiredOutcome::Recorded
    );
    let history = q.history("report").await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].slot, f2.slot, "newest first");
    assert!(history.iter().all(|h| h.not_fired.as_deref() == Some(why)));
    assert!(
        q.cursors(&["report"]).await.unwrap().is_empty(),
        "no cursor"
    );
    let mut conn = raw(&server).await;
    let queued: i64 = redis::cmd("LLEN")
        .arg("queue0")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(queued, 0);

    // A deposed leader records nothing.
    assert_eq!(
        q.record_not_fired(4, &entries).await.unwrap(),
        NotFiredOutcome::Fenced { fence: 5 }
    );
    assert_eq!(q.history("report").await.unwrap().len(), 2);
}
