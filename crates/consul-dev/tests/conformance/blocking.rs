//! Blocking queries: consul-api.md §3 (agent/http.go parseWait/parseConsistency,
//! agent/consul/rpc.go blockingQuery).

use std::time::{Duration, Instant};

use hyper::StatusCode;

use crate::common::{prefix, Target};

/// §3: a GET with `index` returns as soon as the key's index passes it, with the new index.
#[tokio::test]
async fn wakes_on_write() {
    let t = Target::start().await;
    let k = format!("{}/w", prefix());
    t.put(&format!("/v1/kv/{k}"), "1").await.ok();
    let idx = t.get(&format!("/v1/kv/{k}")).await.ok().index();
    let path = format!("/v1/kv/{k}?index={idx}&wait=60s");
    let waiter = {
        let t2 = t.with_token(None);
        tokio::spawn(async move { t2.get(&path).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "blocked until a write");
    let started = Instant::now();
    t.put(&format!("/v1/kv/{k}"), "2").await.ok();
    let r = waiter.await.unwrap().ok();
    assert!(r.index() > idx);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// §3: on timeout the answer is 200 with the same data and index (`wait` in Go duration
/// syntax, e.g. `500ms`; jitter adds at most wait/16).
#[tokio::test]
async fn times_out_with_same_index() {
    let t = Target::start().await;
    let k = format!("{}/t", prefix());
    t.put(&format!("/v1/kv/{k}"), "1").await.ok();
    let idx = t.get(&format!("/v1/kv/{k}")).await.ok().index();
    let started = Instant::now();
    let r = t
        .get(&format!("/v1/kv/{k}?index={idx}&wait=500ms"))
        .await
        .ok();
    assert_eq!(r.index(), idx);
    assert!(started.elapsed() >= Duration::from_millis(450));
}

/// §3: writes under another key do not end a blocking query on a single key.
#[tokio::test]
async fn unrelated_write_does_not_answer() {
    let t = Target::start().await;
    let p = prefix();
    t.put(&format!("/v1/kv/{p}/mine"), "1").await.ok();
    let idx = t.get(&format!("/v1/kv/{p}/mine")).await.ok().index();
    let path = format!("/v1/kv/{p}/mine?index={idx}&wait=2s");
    let t2 = t.with_token(None);
    let waiter = tokio::spawn(async move { t2.get(&path).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.put(&format!("/v1/kv/{p}/other"), "x").await.ok();
    let r = waiter.await.unwrap().ok();
    assert_eq!(r.index(), idx, "answered at timeout with the same index");
}

/// §3: a prefix (`recurse`) blocks until something under it changes.
#[tokio::test]
async fn recurse_wakes_on_child_write() {
    let t = Target::start().await;
    let p = prefix();
    t.put(&format!("/v1/kv/{p}/a"), "1").await.ok();
    let idx = t.get(&format!("/v1/kv/{p}/?recurse")).await.ok().index();
    let path = format!("/v1/kv/{p}/?recurse&index={idx}&wait=60s");
    let t2 = t.with_token(None);
    let waiter = tokio::spawn(async move { t2.get(&path).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.delete(&format!("/v1/kv/{p}/a")).await.ok();
    let r = waiter.await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.index() > idx);
}

/// §3: bad `index` or `wait` is 400 `Invalid index` / `Invalid wait time`; `stale` with
/// `consistent` is 400.
#[tokio::test]
async fn bad_query_options() {
    let t = Target::start().await;
    let k = format!("{}/b", prefix());
    let r = t.get(&format!("/v1/kv/{k}?index=abc")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("Invalid index"), "{}", r.text());
    let r = t.get(&format!("/v1/kv/{k}?index=1&wait=forever")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("Invalid wait time"), "{}", r.text());
    let r = t.get(&format!("/v1/kv/{k}?stale&consistent")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// §3: `?consistent` and `?stale` reads answer like default reads, with the index headers.
#[tokio::test]
async fn consistency_modes() {
    let t = Target::start().await;
    let k = format!("{}/c", prefix());
    t.put(&format!("/v1/kv/{k}"), "1").await.ok();
    for q in ["consistent", "stale"] {
        let r = t.get(&format!("/v1/kv/{k}?{q}")).await.ok();
        assert!(r.index() >= 1);
        assert!(r.headers.get("x-consul-knownleader").is_some());
    }
}

/// §3: session reads block too: session info wakes when the session is destroyed.
#[tokio::test]
async fn session_info_blocks() {
    let t = Target::start().await;
    let s = t.session("").await;
    let idx = t.get(&format!("/v1/session/info/{s}")).await.ok().index();
    let path = format!("/v1/session/info/{s}?index={idx}&wait=60s");
    let t2 = t.with_token(None);
    let waiter = tokio::spawn(async move { t2.get(&path).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.put(&format!("/v1/session/destroy/{s}"), "").await.ok();
    let r = waiter.await.unwrap().ok();
    assert!(r.index() > idx);
    assert!(r.json().as_array().is_none_or(|a| a.is_empty()));
}

/// Issue "Bad input": 2,000 concurrent blocking queries are held open and all woken by one
/// write, without exhausting the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_blocking_queries() {
    const WAITERS: usize = 2000;
    let t = Target::start().await;
    let k = format!("{}/many", prefix());
    t.put(&format!("/v1/kv/{k}"), "0").await.ok();
    let idx = t.get(&format!("/v1/kv/{k}")).await.ok().index();
    let mut tasks = Vec::with_capacity(WAITERS);
    for _ in 0..WAITERS {
        let t2 = t.with_token(None);
        let path = format!("/v1/kv/{k}?index={idx}&wait=120s");
        tasks.push(tokio::spawn(async move { t2.get(&path).await }));
    }
    // Let every request reach the agent; the agent must still answer other requests.
    tokio::time::sleep(Duration::from_secs(3)).await;
    t.get(&format!("/v1/kv/{k}")).await.ok();
    assert!(tasks.iter().all(|h| !h.is_finished()), "all still blocked");
    t.put(&format!("/v1/kv/{k}"), "1").await.ok();
    for h in tasks {
        let r = h.await.unwrap().ok();
        assert!(r.index() > idx);
    }
}
