//! Fault injection under `/_dev/` (crate README): dev-agent only, skipped against a real
//! Consul, which has no such endpoints.

use std::time::Duration;

use hyper::StatusCode;
use serde_json::json;

use crate::common::{eventually, prefix, skip_external, Target};

const WHY: &str = "/_dev/ fault injection exists only in consul-dev";

/// README: `no-leader` answers every API call with 500 `No cluster leader` until cleared.
#[tokio::test]
async fn no_leader() {
    if skip_external(WHY) {
        return;
    }
    let t = Target::start().await;
    t.dev("fault/no-leader?duration=60s").await;
    let r = t.get("/v1/kv/x").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.text(), "No cluster leader");
    let r = t.put("/v1/session/create", "").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    t.dev("fault/clear").await;
    t.put("/v1/session/create", "").await.ok();
}

/// README: `no-leader` ends by itself after its duration.
#[tokio::test]
async fn no_leader_expires() {
    if skip_external(WHY) {
        return;
    }
    let t = Target::start().await;
    t.dev("fault/no-leader?duration=300ms").await;
    eventually(Duration::from_secs(10), "the fault to end", || async {
        (t.get("/v1/status/peers").await.status == StatusCode::OK).then_some(())
    })
    .await;
}

/// README: `refuse` drops API connections without an answer; `/_dev/` still answers.
#[tokio::test]
async fn refuse() {
    if skip_external(WHY) {
        return;
    }
    let t = Target::start().await;
    t.dev("fault/refuse?duration=60s").await;
    // A fresh client, so no pooled connection from before the fault is reused.
    let req = hyper::Request::get(format!("{}/v1/status/leader", t.base))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        crate::common::client().request(req),
    )
    .await
    .expect("no hang");
    assert!(r.is_err(), "connection dropped");
    t.dev("fault/clear").await;
    t.get("/v1/status/leader").await.ok();
}

/// README: `session/expire/:id` invalidates a session as its TTL would (keys released,
/// lock-delay started); an unknown ID is 404.
#[tokio::test]
async fn session_expire() {
    if skip_external(WHY) {
        return;
    }
    let t = Target::start().await;
    let k = format!("{}/e", prefix());
    let s = t.session(r#"{"TTL":"60s","LockDelay":"30s"}"#).await;
    t.put(&format!("/v1/kv/{k}?acquire={s}"), "").await.ok();
    t.dev(&format!("session/expire/{s}")).await;
    assert!(t.entry(&k).await.get("Session").is_none());
    let s2 = t.session(r#"{"LockDelay":"0s"}"#).await;
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?acquire={s2}"), "")
            .await
            .ok()
            .json(),
        json!(false)
    );
    let r = t.put(&format!("/_dev/session/expire/{s}"), "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// README: `ttl/freeze` stops TTL clocks (a 1 s check stays passing), `ttl/resume` restarts
/// them (it then expires).
#[tokio::test]
async fn ttl_freeze_and_resume() {
    if skip_external(WHY) {
        return;
    }
    let t = Target::start().await;
    t.dev("ttl/freeze").await;
    t.put(
        "/v1/agent/service/register",
        json!({"Name": "frozen", "Check": {"TTL": "1s", "Status": "passing"}}).to_string(),
    )
    .await
    .ok();
    // Long enough for a running 1 s clock (and the 100 ms tick) to have fired several times.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let checks = t.get("/v1/agent/checks").await.ok().json();
    assert_eq!(checks["service:frozen"]["Status"], json!("passing"));
    t.dev("ttl/resume").await;
    eventually(Duration::from_secs(20), "the check to expire", || async {
        let c = t.get("/v1/agent/checks").await.ok().json();
        (c["service:frozen"]["Status"] == json!("critical")).then_some(())
    })
    .await;
}

/// README: `frozen-leader` holds what needs the Raft leader and started before the election
/// (a blocking query already waiting, a write sent meanwhile, answered 500 when the old leader
/// wakes); a request sent after the election is served at once; the agent's own endpoints and
/// `?stale` reads never wait.
#[tokio::test]
async fn frozen_leader() {
    if skip_external(WHY) {
        return;
    }
    let t = Target::start().await;
    let k = format!("{}/k", prefix());
    t.put(&format!("/v1/kv/{k}"), "v1").await.ok();
    let index = t.get(&format!("/v1/kv/{k}")).await.ok().index();
    // A follower's blocking read, waiting when the leader freezes.
    let waiting = {
        let t = t.with_token(None);
        let path = format!("/v1/kv/{k}?index={index}&wait=1s");
        tokio::spawn(async move {
            let r = t.get(&path).await;
            (r.status, tokio::time::Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let froze = tokio::time::Instant::now();
    t.dev("fault/frozen-leader?duration=4s&election=2s").await;
    // Before the election: a write hangs until the old leader wakes, then fails unapplied.
    let write = t.put(&format!("/v1/kv/{k}"), "v2").await;
    let woke = tokio::time::Instant::now();
    assert!(woke - froze >= Duration::from_secs(4), "{:?}", woke - froze);
    assert_eq!(write.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(write.text(), "leadership lost while committing log");
    // The read that was waiting answered only then too, though its wait (1 s) ran out long
    // before.
    let (status, answered) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(answered - froze >= Duration::from_secs(4));
    assert_eq!(crate::common::b64(&t.entry(&k).await["Value"]), b"v1");
}

/// README: after the election of `frozen-leader`, requests are served by the new leader while
/// the old one is still frozen; `?stale` reads and `/v1/agent/` never wait.
#[tokio::test]
async fn frozen_leader_after_the_election() {
    if skip_external(WHY) {
        return;
    }
    let t = Target::start().await;
    let k = format!("{}/k", prefix());
    t.dev("fault/frozen-leader?duration=60s&election=1s").await;
    // Served where they arrive, at once, even before the election.
    t.get("/v1/agent/self").await.ok();
    assert_eq!(
        t.get(&format!("/v1/kv/{k}?stale")).await.status,
        StatusCode::NOT_FOUND
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // After the election, well before the old leader wakes (60 s): served.
    let started = tokio::time::Instant::now();
    t.put(&format!("/v1/kv/{k}"), "v").await.ok();
    t.get(&format!("/v1/kv/{k}?consistent")).await.ok();
    assert!(started.elapsed() < Duration::from_secs(30));
    t.dev("fault/clear").await;
}
