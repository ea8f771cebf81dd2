//! Transactions: consul-api.md §4 (agent/txn_endpoint.go, agent/consul/txn_endpoint.go,
//! agent/consul/state/txn.go).

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::common::{b64, enc, prefix, Target};

fn kv(verb: &str, key: &str) -> Value {
    json!({"KV": {"Verb": verb, "Key": key}})
}

/// §4: write verbs apply at one index; results carry the entries without Value; reads carry
/// the Value. (`get-or-empty`: not in Consul 1.0.8; see README.)
#[tokio::test]
async fn writes_at_one_index_and_reads() {
    let t = Target::start().await;
    let p = prefix();
    let ops = json!([
        {"KV": {"Verb": "set", "Key": format!("{p}/a"), "Value": enc(b"A"), "Flags": 3}},
        {"KV": {"Verb": "cas", "Key": format!("{p}/b"), "Value": enc(b"B"), "Index": 0}},
    ]);
    let r = t.put("/v1/txn", ops.to_string()).await.ok().json();
    assert!(r["Errors"].is_null());
    let res = r["Results"].as_array().unwrap();
    assert_eq!(res.len(), 2);
    assert!(res[0]["KV"]["Value"].is_null());
    assert_eq!(res[0]["KV"]["Flags"], json!(3));
    assert_eq!(
        res[0]["KV"]["ModifyIndex"], res[1]["KV"]["ModifyIndex"],
        "one index"
    );
    let reads = json!([
        kv("get", &format!("{p}/a")),
        kv("get-tree", &format!("{p}/")),
        kv("get-or-empty", &format!("{p}/none"))
    ]);
    let r = t.put("/v1/txn", reads.to_string()).await.ok();
    // A read-only transaction answers like Txn.Read: leader headers, no index header.
    assert!(r.headers.get("x-consul-knownleader").is_some());
    assert!(r.headers.get("x-consul-index").is_none());
    let r = r.json();
    let res = r["Results"].as_array().unwrap();
    assert_eq!(b64(&res[0]["KV"]["Value"]), b"A");
    assert_eq!(res.len(), 4, "get + two from get-tree + get-or-empty");
    assert_eq!(res[3]["KV"]["Key"], json!(format!("{p}/none")));
}

/// §4: lock/unlock/check-session/check-index/check-not-exists/delete verbs.
#[tokio::test]
async fn lock_unlock_and_checks() {
    let t = Target::start().await;
    let p = prefix();
    let k = format!("{p}/l");
    let s = t.session(r#"{"LockDelay":"0s"}"#).await;
    let lock = json!([{"KV": {"Verb": "lock", "Key": k, "Value": enc(b"me"), "Session": s}}]);
    let r = t.put("/v1/txn", lock.to_string()).await.ok().json();
    assert_eq!(r["Results"][0]["KV"]["LockIndex"], json!(1));
    assert_eq!(r["Results"][0]["KV"]["Session"], json!(s));
    let idx = r["Results"][0]["KV"]["ModifyIndex"].as_u64().unwrap();
    let checks = json!([
        {"KV": {"Verb": "check-session", "Key": k, "Session": s}},
        {"KV": {"Verb": "check-index", "Key": k, "Index": idx}},
        {"KV": {"Verb": "check-not-exists", "Key": format!("{p}/free")}},
    ]);
    t.put("/v1/txn", checks.to_string()).await.ok();
    let unlock = json!([{"KV": {"Verb": "unlock", "Key": k, "Session": s}}]);
    let r = t.put("/v1/txn", unlock.to_string()).await.ok().json();
    assert!(r["Results"][0]["KV"]
        .get("Session")
        .is_none_or(Value::is_null));
    let del = json!([
        {"KV": {"Verb": "delete-cas", "Key": k, "Index": r["Results"][0]["KV"]["ModifyIndex"]}},
        {"KV": {"Verb": "set", "Key": format!("{p}/t/1")}},
    ]);
    t.put("/v1/txn", del.to_string()).await.ok();
    t.put(
        "/v1/txn",
        json!([
            kv("delete-tree", &format!("{p}/t/")),
            kv("delete", &format!("{p}/x"))
        ])
        .to_string(),
    )
    .await
    .ok();
    assert_eq!(
        t.get(&format!("/v1/kv/{p}/?recurse")).await.status,
        StatusCode::NOT_FOUND
    );
    t.put(&format!("/v1/session/destroy/{s}"), "").await.ok();
}

/// §4: any failing operation rolls back the whole transaction and answers 409 with
/// `{"Results":null,"Errors":[{"OpIndex","What"}]}`.
#[tokio::test]
async fn rollback_and_409() {
    let t = Target::start().await;
    let p = prefix();
    let s1 = t.session(r#"{"LockDelay":"0s"}"#).await;
    let s2 = t.session(r#"{"LockDelay":"0s"}"#).await;
    t.put(&format!("/v1/kv/{p}/held?acquire={s1}"), "")
        .await
        .ok();
    let ops = json!([
        {"KV": {"Verb": "set", "Key": format!("{p}/new"), "Value": enc(b"x")}},
        {"KV": {"Verb": "lock", "Key": format!("{p}/held"), "Session": s2}},
    ]);
    let r = t.put("/v1/txn", ops.to_string()).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let v = r.json();
    assert!(v["Results"].is_null());
    assert_eq!(v["Errors"][0]["OpIndex"], json!(1));
    let what = v["Errors"][0]["What"].as_str().unwrap();
    assert!(what.contains("lock is already held"), "{what}");
    assert_eq!(
        t.get(&format!("/v1/kv/{p}/new")).await.status,
        StatusCode::NOT_FOUND,
        "rolled back"
    );

    let stale = json!([{"KV": {"Verb": "cas", "Key": format!("{p}/held"), "Index": 1}}]);
    let r = t.put("/v1/txn", stale.to_string()).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text().contains("index is stale"), "{}", r.text());

    let wrong =
        json!([{"KV": {"Verb": "check-session", "Key": format!("{p}/held"), "Session": s2}}]);
    let r = t.put("/v1/txn", wrong.to_string()).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text().contains("failed session check"), "{}", r.text());

    let bogus = "00000000-0000-0000-0000-00000000beef";
    let inv = json!([{"KV": {"Verb": "lock", "Key": format!("{p}/z"), "Session": bogus}}]);
    let r = t.put("/v1/txn", inv.to_string()).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text().contains("invalid session"), "{}", r.text());
    for s in [s1, s2] {
        t.put(&format!("/v1/session/destroy/{s}"), "").await.ok();
    }
}

/// §4: a lock under lock-delay is 409 `failed to lock key "k" due to lock delay`.
#[tokio::test]
async fn lock_delay_in_txn() {
    let t = Target::start().await;
    let k = format!("{}/d", prefix());
    let s1 = t.session(r#"{"LockDelay":"30s"}"#).await;
    t.put(&format!("/v1/kv/{k}?acquire={s1}"), "").await.ok();
    t.put(&format!("/v1/session/destroy/{s1}"), "").await.ok();
    let s2 = t.session(r#"{"LockDelay":"0s"}"#).await;
    let ops = json!([{"KV": {"Verb": "lock", "Key": k, "Session": s2}}]);
    let r = t.put("/v1/txn", ops.to_string()).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text().contains("due to lock delay"), "{}", r.text());
    t.put(&format!("/v1/session/destroy/{s2}"), "").await.ok();
}

/// §4: 128 operations are accepted, 129 are 413 (Consul ≥ 1.14; 64 before); malformed
/// bodies are 400.
#[tokio::test]
async fn limits_and_bad_bodies() {
    let t = Target::start().await;
    let p = prefix();
    let ops: Vec<Value> = (0..128).map(|i| kv("set", &format!("{p}/{i}"))).collect();
    t.put("/v1/txn", Value::Array(ops).to_string()).await.ok();
    let ops: Vec<Value> = (0..129).map(|i| kv("set", &format!("{p}/{i}"))).collect();
    let r = t.put("/v1/txn", Value::Array(ops).to_string()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    let r = t.put("/v1/txn", "[{").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = t
        .put(
            "/v1/txn",
            json!([{"KV": {"Verb": "set", "Key": "k", "Value": "!!"}}]).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let big = json!([{"KV": {"Verb": "set", "Key": format!("{p}/big"), "Value": enc(&vec![0u8; 600 * 1024])}}]);
    let r = t.put("/v1/txn", big.to_string()).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    t.delete(&format!("/v1/kv/{p}/?recurse")).await.ok();
}
