//! Sessions: consul-api.md §1 (agent/session_endpoint.go, agent/consul/session_endpoint.go,
//! agent/consul/state/session.go, agent/consul/session_ttl.go).

use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::json;

use crate::common::{b64, eventually, prefix, Target};

/// §1: create with no body applies the defaults: the agent's node, `["serfHealth"]`, 15 s
/// lock-delay, `release`, no TTL. (`NodeChecks`: Consul ≥ 1.7; before, `Checks`.)
#[tokio::test]
async fn create_defaults() {
    let t = Target::start().await;
    let node = t.node().await;
    let id = t.session("").await;
    let r = t.get(&format!("/v1/session/info/{id}")).await.ok();
    let s = &r.json()[0];
    assert_eq!(s["ID"], json!(id));
    assert_eq!(s["Node"], json!(node));
    assert_eq!(s["NodeChecks"], json!(["serfHealth"]));
    assert_eq!(s["LockDelay"], json!(15_000_000_000u64));
    assert_eq!(s["Behavior"], json!("release"));
    assert_eq!(s["TTL"], json!(""));
    assert!(s["CreateIndex"].as_u64().unwrap() >= 1);
    t.put(&format!("/v1/session/destroy/{id}"), "").await.ok();
}

/// §1: Name, Behavior, TTL, LockDelay as a duration, `NodeChecks: []` are kept as sent.
#[tokio::test]
async fn create_fields() {
    let t = Target::start().await;
    let id = t
        .session(
            r#"{"Name":"n1","Behavior":"delete","TTL":"15s","LockDelay":"2s","NodeChecks":[]}"#,
        )
        .await;
    let s = &t.get(&format!("/v1/session/info/{id}")).await.ok().json()[0];
    assert_eq!(s["Name"], json!("n1"));
    assert_eq!(s["Behavior"], json!("delete"));
    assert_eq!(s["TTL"], json!("15s"));
    assert_eq!(s["LockDelay"], json!(2_000_000_000u64));
    assert!(s["NodeChecks"].as_array().is_none_or(|a| a.is_empty()));
    t.put(&format!("/v1/session/destroy/{id}"), "").await.ok();
}

/// §1: LockDelay as a number is nanoseconds, except below 1000 where it is seconds.
#[tokio::test]
async fn lock_delay_numbers() {
    let t = Target::start().await;
    for (sent, want) in [
        ("5", 5_000_000_000u64),
        ("0", 0),
        ("3000000000", 3_000_000_000),
    ] {
        let id = t.session(&format!(r#"{{"LockDelay":{sent}}}"#)).await;
        let s = &t.get(&format!("/v1/session/info/{id}")).await.ok().json()[0];
        assert_eq!(s["LockDelay"], json!(want), "LockDelay {sent}");
        t.put(&format!("/v1/session/destroy/{id}"), "").await.ok();
    }
}

/// §1: TTL outside 10 s..24 h is 500; a malformed body or duration is 400.
#[tokio::test]
async fn create_rejects_bad_input() {
    let t = Target::start().await;
    for ttl in ["5s", "25h"] {
        let r = t
            .put("/v1/session/create", format!(r#"{{"TTL":"{ttl}"}}"#))
            .await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{ttl}");
        assert!(r.text().contains("Invalid Session TTL"), "{}", r.text());
    }
    let r = t.put("/v1/session/create", r#"{"TTL":"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = t.put("/v1/session/create", r#"{"LockDelay":"soon"}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = t
        .put("/v1/session/create", r#"{"Behavior":"explode"}"#)
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
}

/// §1: a bound check must exist (500 `Missing check`); an unknown node is 500
/// `Missing node registration`. (`NodeChecks`/`ServiceChecks`: Consul ≥ 1.7.)
#[tokio::test]
async fn create_requires_checks_and_node() {
    let t = Target::start().await;
    let r = t
        .put("/v1/session/create", r#"{"NodeChecks":["no-such-check"]}"#)
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.text()
            .contains("Missing check 'no-such-check' registration"),
        "{}",
        r.text()
    );
    let r = t
        .put(
            "/v1/session/create",
            r#"{"ServiceChecks":[{"ID":"service:nope"}]}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let r = t
        .put(
            "/v1/session/create",
            r#"{"Node":"no-such-node-conformance"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.text().contains("Missing node registration"),
        "{}",
        r.text()
    );
}

/// §1: renew answers `[entry]`; an unknown ID is 404 `Session id '<id>' not found`.
#[tokio::test]
async fn renew() {
    let t = Target::start().await;
    let id = t.session(r#"{"TTL":"30s"}"#).await;
    let r = t.put(&format!("/v1/session/renew/{id}"), "").await.ok();
    assert_eq!(r.json()[0]["ID"], json!(id));
    assert!(r.json()[0]["TTL"].as_str().is_some());
    t.put(&format!("/v1/session/destroy/{id}"), "").await.ok();
    let r = t.put(&format!("/v1/session/renew/{id}"), "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.text().trim(), format!("Session id '{id}' not found"));
}

/// §1: destroy answers true and is idempotent; info of an unknown session is `[]`.
#[tokio::test]
async fn destroy_and_info() {
    let t = Target::start().await;
    let id = t.session("").await;
    assert_eq!(
        t.put(&format!("/v1/session/destroy/{id}"), "")
            .await
            .ok()
            .json(),
        json!(true)
    );
    assert_eq!(
        t.put(&format!("/v1/session/destroy/{id}"), "")
            .await
            .ok()
            .json(),
        json!(true)
    );
    let r = t.get(&format!("/v1/session/info/{id}")).await.ok();
    assert!(
        r.json().as_array().is_none_or(|a| a.is_empty()),
        "{}",
        r.text()
    );
    assert!(r.index() >= 1);
}

/// §1: list and node list include the session; endpoints are GET-only (405 otherwise), and
/// create is PUT-only.
#[tokio::test]
async fn list_and_node() {
    let t = Target::start().await;
    let node = t.node().await;
    let id = t.session(r#"{"Name":"listed"}"#).await;
    let all = t.get("/v1/session/list").await.ok();
    assert!(all
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["ID"] == json!(id)));
    let mine = t.get(&format!("/v1/session/node/{node}")).await.ok();
    assert!(mine
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["ID"] == json!(id)));
    assert!(mine.index() >= 1);
    assert_eq!(
        t.get("/v1/session/create").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    t.put(&format!("/v1/session/destroy/{id}"), "").await.ok();
}

/// §1: destroying a `release` session clears Session on its keys and keeps Value, Flags and
/// LockIndex, at one new index shared by every key.
#[tokio::test]
async fn invalidation_releases_keys_in_one_index() {
    let t = Target::start().await;
    let p = prefix();
    let s = t.session(r#"{"LockDelay":"0s"}"#).await;
    for k in ["a", "b"] {
        t.put(&format!("/v1/kv/{p}/{k}?acquire={s}&flags=3"), k)
            .await
            .ok();
    }
    t.put(&format!("/v1/session/destroy/{s}"), "").await.ok();
    let a = t.entry(&format!("{p}/a")).await;
    let b = t.entry(&format!("{p}/b")).await;
    assert!(a.get("Session").is_none() && b.get("Session").is_none());
    assert_eq!(b64(&a["Value"]), b"a");
    assert_eq!(a["Flags"], json!(3));
    assert_eq!(a["LockIndex"], json!(1));
    assert_eq!(a["ModifyIndex"], b["ModifyIndex"], "one index step");
}

/// §1: destroying a `delete` session deletes the keys it holds.
#[tokio::test]
async fn invalidation_deletes_keys() {
    let t = Target::start().await;
    let p = prefix();
    let s = t.session(r#"{"LockDelay":"0s","Behavior":"delete"}"#).await;
    t.put(&format!("/v1/kv/{p}/a?acquire={s}"), "x").await.ok();
    t.put(&format!("/v1/kv/{p}/keep"), "y").await.ok();
    t.put(&format!("/v1/session/destroy/{s}"), "").await.ok();
    assert_eq!(
        t.get(&format!("/v1/kv/{p}/a")).await.status,
        StatusCode::NOT_FOUND
    );
    t.get(&format!("/v1/kv/{p}/keep")).await.ok();
}

/// §1: after an invalidation the key is under lock-delay: every acquire (the old holder's
/// too) is `false` until it runs out, while plain PUTs go through; an explicit release starts
/// no lock-delay.
#[tokio::test]
async fn lock_delay_refuses_acquires() {
    let t = Target::start().await;
    let p = prefix();
    let k = format!("{p}/ld");
    let old = t.session(r#"{"LockDelay":"3s"}"#).await;
    t.put(&format!("/v1/kv/{k}?acquire={old}"), "").await.ok();
    // Taken before the destroy is sent, so the server's destroy is never earlier than this.
    let destroyed_at = Instant::now();
    t.put(&format!("/v1/session/destroy/{old}"), "").await.ok();
    let new = t.session(r#"{"LockDelay":"3s"}"#).await;
    let first = t
        .put(&format!("/v1/kv/{k}?acquire={new}"), "")
        .await
        .ok()
        .json();
    if destroyed_at.elapsed() < Duration::from_secs(2) {
        assert_eq!(first, json!(false), "acquire during lock-delay");
    }
    t.put(&format!("/v1/kv/{p}/plain"), "").await.ok();
    t.put(&format!("/v1/kv/{k}"), "plain put ignores lock-delay")
        .await
        .ok();
    eventually(Duration::from_secs(30), "lock-delay to run out", || async {
        let r = t
            .put(&format!("/v1/kv/{k}?acquire={new}"), "")
            .await
            .ok()
            .json();
        (r == json!(true)).then_some(())
    })
    .await;
    assert!(
        destroyed_at.elapsed() >= Duration::from_millis(2900),
        "lock-delay honoured"
    );
    // An explicit release starts none: another session acquires at once.
    t.put(&format!("/v1/kv/{k}?release={new}"), "").await.ok();
    let third = t.session(r#"{"LockDelay":"3s"}"#).await;
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?acquire={third}"), "")
            .await
            .ok()
            .json(),
        json!(true)
    );
    for s in [new, third] {
        t.put(&format!("/v1/session/destroy/{s}"), "").await.ok();
    }
}

/// §1: a TTL session that is not renewed expires between TTL and 2×TTL after its last renew,
/// releasing its keys (10 s is the smallest TTL, so this test takes 10–20 s).
#[tokio::test]
async fn ttl_expiry_between_ttl_and_twice_ttl() {
    let t = Target::start().await;
    let k = format!("{}/ttl", prefix());
    let s = t.session(r#"{"TTL":"10s","LockDelay":"0s"}"#).await;
    t.put(&format!("/v1/kv/{k}?acquire={s}"), "").await.ok();
    let renewed = Instant::now();
    t.put(&format!("/v1/session/renew/{s}"), "").await.ok();
    eventually(Duration::from_secs(40), "session expiry", || async {
        let r = t.get(&format!("/v1/session/info/{s}")).await.ok().json();
        r.as_array().is_none_or(|a| a.is_empty()).then_some(())
    })
    .await;
    let took = renewed.elapsed();
    assert!(
        took >= Duration::from_secs(10),
        "expired after {took:?}, before TTL"
    );
    assert!(t.entry(&k).await.get("Session").is_none(), "key released");
}

/// agent/consul/state/session.go (sessions are indexed by UUID): an ID that is not shaped like
/// a UUID fails the lookup with 500 `failed session lookup: …`, for info, renew, destroy and
/// acquire alike, rather than being treated as an unknown session.
#[tokio::test]
async fn non_uuid_session_ids() {
    let t = Target::start().await;
    let k = format!("{}/nu", prefix());
    for r in [
        t.get("/v1/session/info/not-a-uuid").await,
        t.put("/v1/session/renew/not-a-uuid", "").await,
        t.put("/v1/session/destroy/not-a-uuid", "").await,
        t.put(&format!("/v1/kv/{k}?acquire=not-a-uuid"), "").await,
    ] {
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
        assert!(r.text().contains("failed session lookup"), "{}", r.text());
    }
}
