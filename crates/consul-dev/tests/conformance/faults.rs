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
