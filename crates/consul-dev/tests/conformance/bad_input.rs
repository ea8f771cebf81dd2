//! Bad input (issue "Bad input"): Consul's status and message, never a panic, a hang or a
//! corrupted state. Cases covered elsewhere: malformed session/register/txn bodies, bad
//! durations, bad index/wait, oversized values and transactions, conflicting flags, unknown
//! sessions and checks, key traversal.

use hyper::StatusCode;
use serde_json::json;

use crate::common::{b64, prefix, Target};

/// agent/kvs_endpoint.go: a non-numeric `flags` or `cas` is an error (Consul: 500 from
/// strconv) and writes nothing.
#[tokio::test]
async fn non_numeric_flags_and_cas() {
    let t = Target::start().await;
    let k = format!("{}/n", prefix());
    t.put(&format!("/v1/kv/{k}"), "kept").await.ok();
    for q in ["flags=abc", "cas=-1", "flags=1e3"] {
        let r = t.put(&format!("/v1/kv/{k}?{q}"), "lost").await;
        assert!(
            r.status.is_client_error() || r.status.is_server_error(),
            "{q}: {}",
            r.status
        );
    }
    let r = t.delete(&format!("/v1/kv/{k}?cas=x")).await;
    assert!(!r.status.is_success());
    assert_eq!(b64(&t.entry(&k).await["Value"]), b"kept");
}

/// Bodies that are not JSON objects where one is expected are 400, not 500 or a hang.
/// (`NodeChecks` as a string: Consul ≥ 1.7 only; older versions ignore the field.)
#[tokio::test]
async fn wrong_json_shapes() {
    let t = Target::start().await;
    for (path, body) in [
        ("/v1/session/create", "[1,2]"),
        ("/v1/session/create", r#"{"NodeChecks":"serfHealth"}"#),
        ("/v1/agent/service/register", "\"name\""),
        (
            "/v1/agent/service/register",
            r#"{"Name":"x","Port":"eighty"}"#,
        ),
        ("/v1/txn", r#"{"KV":{}}"#),
        ("/v1/txn", "\u{0}\u{1}"),
    ] {
        let r = t.put(path, body).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{path} {body}: {}",
            r.text()
        );
    }
}

/// A huge blocking `wait` is capped (10 m) rather than refused, and `index` beyond the
/// current index still answers at the wait's end.
#[tokio::test]
async fn wait_capped_and_future_index() {
    let t = Target::start().await;
    let k = format!("{}/w", prefix());
    t.put(&format!("/v1/kv/{k}"), "").await.ok();
    let idx = t.get(&format!("/v1/kv/{k}")).await.ok().index();
    let r = t
        .get(&format!("/v1/kv/{k}?index={}&wait=300ms", idx + 1_000_000))
        .await
        .ok();
    assert_eq!(r.index(), idx);
    let r = t.get(&format!("/v1/kv/{k}?index=0&wait=87600h")).await.ok();
    assert_eq!(r.json()[0]["Key"], json!(k));
}

/// A session renew or destroy without an ID, and an unknown session endpoint, are refused.
#[tokio::test]
async fn session_paths() {
    let t = Target::start().await;
    assert!(!t.put("/v1/session/renew/", "").await.status.is_success());
    assert!(!t.put("/v1/session/destroy/", "").await.status.is_success());
    let r = t.get("/v1/session/nope").await;
    assert!(matches!(
        r.status,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ));
}
