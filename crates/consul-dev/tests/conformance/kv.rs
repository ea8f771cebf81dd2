//! KV: consul-api.md §2 (and agent/kvs_endpoint.go, agent/consul/state/kvs.go).

use hyper::StatusCode;
use serde_json::json;

use crate::common::{b64, prefix, Target};

/// §2: PUT answers `true`; GET answers the entry with base64 Value and both indexes; a value
/// that is empty reads back as null; writes carry no index header.
#[tokio::test]
async fn put_then_get_round_trips() {
    let t = Target::start().await;
    let p = prefix();
    let r = t.put(&format!("/v1/kv/{p}/a"), "hello").await.ok();
    assert_eq!(r.json(), json!(true));
    assert!(
        r.headers.get("x-consul-index").is_none(),
        "writes carry no index"
    );
    let g = t.get(&format!("/v1/kv/{p}/a")).await.ok();
    let e = &g.json()[0];
    assert_eq!(e["Key"], json!(format!("{p}/a")));
    assert_eq!(b64(&e["Value"]), b"hello");
    assert_eq!(e["Flags"], json!(0));
    assert_eq!(e["LockIndex"], json!(0));
    assert_eq!(e["CreateIndex"], e["ModifyIndex"]);
    assert!(e.get("Session").is_none(), "Session omitted when unheld");
    assert_eq!(g.index(), e["ModifyIndex"].as_u64().unwrap());
    t.put(&format!("/v1/kv/{p}/empty"), "").await.ok();
    assert!(t.entry(&format!("{p}/empty")).await["Value"].is_null());
}

/// §2: a missing key is 404 with an empty body and the X-Consul-* headers still set.
#[tokio::test]
async fn missing_key_is_404_with_headers() {
    let t = Target::start().await;
    let r = t.get(&format!("/v1/kv/{}/nope", prefix())).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.is_empty());
    assert!(r.index() >= 1);
    assert!(r.headers.get("x-consul-knownleader").is_some());
    assert!(r.headers.get("x-consul-lastcontact").is_some());
}

/// §2: `?raw` answers the bytes as text/plain.
#[tokio::test]
async fn raw_returns_bytes() {
    let t = Target::start().await;
    let p = prefix();
    t.put(&format!("/v1/kv/{p}/r"), "raw-bytes").await.ok();
    let r = t.get(&format!("/v1/kv/{p}/r?raw")).await.ok();
    assert_eq!(r.text(), "raw-bytes");
    let ct = r.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(ct.starts_with("text/plain"), "{ct}");
}

/// kvsSetTxn (Consul 1.7 and later): a write that changes nothing (same value, flags and
/// session, never locked) leaves ModifyIndex where it was, so a blocking query on the key does
/// not wake; a different value moves it. Writers that use a key's ModifyIndex as a change
/// signal must therefore write a value that differs (the job store's shard stamps do).
#[tokio::test]
async fn unchanged_write_keeps_modify_index() {
    let t = Target::start().await;
    let p = prefix();
    let key = format!("{p}/same");
    t.put(&format!("/v1/kv/{key}"), "v").await.ok();
    let first = t.entry(&key).await["ModifyIndex"].as_u64().unwrap();
    t.put(&format!("/v1/kv/{p}/other"), "x").await.ok();
    t.put(&format!("/v1/kv/{key}"), "v").await.ok();
    assert_eq!(t.entry(&key).await["ModifyIndex"].as_u64().unwrap(), first);
    t.put(&format!("/v1/kv/{key}"), "w").await.ok();
    assert!(t.entry(&key).await["ModifyIndex"].as_u64().unwrap() > first);
}

/// §2: `?flags=N` is stored; a later write without flags resets them to 0.
#[tokio::test]
async fn flags_are_overwritten_by_every_write() {
    let t = Target::start().await;
    let k = format!("{}/f", prefix());
    t.put(&format!("/v1/kv/{k}?flags=42"), "x").await.ok();
    assert_eq!(t.entry(&k).await["Flags"], json!(42));
    t.put(&format!("/v1/kv/{k}"), "y").await.ok();
    assert_eq!(t.entry(&k).await["Flags"], json!(0));
}

/// §2: `?recurse` lists every key under the prefix, sorted; 404 when none.
#[tokio::test]
async fn recurse_lists_sorted_or_404() {
    let t = Target::start().await;
    let p = prefix();
    for k in ["b", "a", "c/d"] {
        t.put(&format!("/v1/kv/{p}/{k}"), k).await.ok();
    }
    let r = t.get(&format!("/v1/kv/{p}/?recurse")).await.ok();
    let keys: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        vec![format!("{p}/a"), format!("{p}/b"), format!("{p}/c/d")]
    );
    let none = t.get(&format!("/v1/kv/{p}/zzz/?recurse")).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
}

/// §2: `?keys&separator=/` cuts after the first separator past the prefix, without
/// duplicates; a prefix with nothing under it is 404.
#[tokio::test]
async fn keys_with_separator() {
    let t = Target::start().await;
    let p = prefix();
    for k in ["a/1", "a/2", "b", "c/x/y"] {
        t.put(&format!("/v1/kv/{p}/{k}"), "").await.ok();
    }
    let r = t.get(&format!("/v1/kv/{p}/?keys&separator=/")).await.ok();
    assert_eq!(
        r.json(),
        json!([format!("{p}/a/"), format!("{p}/b"), format!("{p}/c/")])
    );
    let all = t.get(&format!("/v1/kv/{p}/?keys")).await.ok();
    assert_eq!(all.json().as_array().unwrap().len(), 4);
    let none = t.get(&format!("/v1/kv/{p}/none/?keys")).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
}

/// §2: `?keys` at the root answers an array (`[]` on an empty store), never 404.
#[tokio::test]
async fn root_keys_is_an_array() {
    let t = Target::start().await;
    let r = t.get("/v1/kv/?keys&separator=/").await.ok();
    assert!(r.json().is_array());
}

/// §2: `?cas=0` creates only; `?cas=N` writes only when ModifyIndex == N.
#[tokio::test]
async fn cas_put() {
    let t = Target::start().await;
    let k = format!("{}/cas", prefix());
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?cas=0"), "1").await.ok().json(),
        json!(true)
    );
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?cas=0"), "2").await.ok().json(),
        json!(false)
    );
    let idx = t.entry(&k).await["ModifyIndex"].as_u64().unwrap();
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?cas={}", idx + 1000), "3")
            .await
            .ok()
            .json(),
        json!(false)
    );
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?cas={idx}"), "4")
            .await
            .ok()
            .json(),
        json!(true)
    );
    assert_eq!(b64(&t.entry(&k).await["Value"]), b"4");
    let missing = format!("{}/cas-missing", prefix());
    assert_eq!(
        t.put(&format!("/v1/kv/{missing}?cas=5"), "x")
            .await
            .ok()
            .json(),
        json!(false)
    );
}

/// §2: `cas`, `acquire`, `release` are mutually exclusive: 400 `Conflicting flags`.
#[tokio::test]
async fn conflicting_flags() {
    let t = Target::start().await;
    let k = format!("{}/c", prefix());
    let r = t.put(&format!("/v1/kv/{k}?cas=0&acquire=x"), "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("Conflicting flags"), "{}", r.text());
    let d = t.delete(&format!("/v1/kv/{k}?recurse&cas=1")).await;
    assert_eq!(d.status, StatusCode::BAD_REQUEST);
}

/// §2: a value over 524288 bytes is refused with 413; exactly 524288 is accepted.
#[tokio::test]
async fn value_size_limit() {
    let t = Target::start().await;
    let k = format!("{}/big", prefix());
    let ok = t.put(&format!("/v1/kv/{k}"), vec![b'x'; 512 * 1024]).await;
    assert_eq!(ok.status, StatusCode::OK);
    let big = t
        .put(&format!("/v1/kv/{k}"), vec![b'x'; 512 * 1024 + 1])
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.text());
    assert_eq!(
        t.entry(&k).await["Value"].as_str().map(str::len),
        Some(699052)
    );
}

/// §2: acquire creates with LockIndex 1; the holder re-acquires without a LockIndex change;
/// another session gets `false`; release keeps LockIndex and clears Session; acquiring again
/// increments LockIndex.
#[tokio::test]
async fn acquire_and_release() {
    let t = Target::start().await;
    let k = format!("{}/lock", prefix());
    let s1 = t.session(r#"{"LockDelay":"0s"}"#).await;
    let s2 = t.session(r#"{"LockDelay":"0s"}"#).await;
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?acquire={s1}"), "one")
            .await
            .ok()
            .json(),
        json!(true)
    );
    let e = t.entry(&k).await;
    assert_eq!(e["LockIndex"], json!(1));
    assert_eq!(e["Session"], json!(s1));
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?acquire={s1}"), "one-b")
            .await
            .ok()
            .json(),
        json!(true)
    );
    let e = t.entry(&k).await;
    assert_eq!(e["LockIndex"], json!(1));
    assert_eq!(b64(&e["Value"]), b"one-b");
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?acquire={s2}"), "two")
            .await
            .ok()
            .json(),
        json!(false)
    );
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?release={s2}"), "two")
            .await
            .ok()
            .json(),
        json!(false)
    );
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?release={s1}"), "one-c")
            .await
            .ok()
            .json(),
        json!(true)
    );
    let e = t.entry(&k).await;
    assert!(e.get("Session").is_none());
    assert_eq!(e["LockIndex"], json!(1));
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?acquire={s2}"), "two")
            .await
            .ok()
            .json(),
        json!(true)
    );
    assert_eq!(t.entry(&k).await["LockIndex"], json!(2));
}

/// §2: the holder re-acquiring with the same value and flags does not change ModifyIndex.
/// Today's Consul; 1.0.8 writes (ModifyIndex moves); see README.
#[tokio::test]
async fn identical_reacquire_keeps_modify_index() {
    let t = Target::start().await;
    let k = format!("{}/same", prefix());
    let s = t.session(r#"{"LockDelay":"0s"}"#).await;
    t.put(&format!("/v1/kv/{k}?acquire={s}&flags=7"), "v")
        .await
        .ok();
    let before = t.entry(&k).await["ModifyIndex"].clone();
    assert_eq!(
        t.put(&format!("/v1/kv/{k}?acquire={s}&flags=7"), "v")
            .await
            .ok()
            .json(),
        json!(true)
    );
    assert_eq!(t.entry(&k).await["ModifyIndex"], before);
}

/// §2 (code-only detail): a plain PUT to a locked key keeps its Session but resets LockIndex.
#[tokio::test]
async fn plain_put_keeps_session_resets_lock_index() {
    let t = Target::start().await;
    let k = format!("{}/pp", prefix());
    let s = t.session(r#"{"LockDelay":"0s"}"#).await;
    t.put(&format!("/v1/kv/{k}?acquire={s}"), "a").await.ok();
    t.put(&format!("/v1/kv/{k}"), "b").await.ok();
    let e = t.entry(&k).await;
    assert_eq!(e["Session"], json!(s));
    assert_eq!(e["LockIndex"], json!(0));
}

/// §2 (code-only detail): `?release` overwrites Value and Flags with the request's.
#[tokio::test]
async fn release_overwrites_value_and_flags() {
    let t = Target::start().await;
    let k = format!("{}/rel", prefix());
    let s = t.session(r#"{"LockDelay":"0s"}"#).await;
    t.put(&format!("/v1/kv/{k}?acquire={s}&flags=9"), "held")
        .await
        .ok();
    t.put(&format!("/v1/kv/{k}?release={s}"), "").await.ok();
    let e = t.entry(&k).await;
    assert!(e["Value"].is_null());
    assert_eq!(e["Flags"], json!(0));
}

/// §2: acquire with an unknown session is 500 `invalid session "S"`.
#[tokio::test]
async fn acquire_unknown_session() {
    let t = Target::start().await;
    let k = format!("{}/u", prefix());
    let bogus = "00000000-0000-0000-0000-00000000dead";
    let r = t.put(&format!("/v1/kv/{k}?acquire={bogus}"), "").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.text().contains(&format!("invalid session \"{bogus}\"")),
        "{}",
        r.text()
    );
}

/// §2: DELETE answers true, also for a missing key; `?recurse` deletes the prefix;
/// `?cas=N` is true when the key matches N or is missing, else false.
#[tokio::test]
async fn deletes() {
    let t = Target::start().await;
    let p = prefix();
    t.put(&format!("/v1/kv/{p}/a"), "").await.ok();
    t.put(&format!("/v1/kv/{p}/b/c"), "").await.ok();
    assert_eq!(
        t.delete(&format!("/v1/kv/{p}/a")).await.ok().json(),
        json!(true)
    );
    assert_eq!(
        t.delete(&format!("/v1/kv/{p}/a")).await.ok().json(),
        json!(true)
    );
    t.put(&format!("/v1/kv/{p}/d"), "").await.ok();
    let idx = t.entry(&format!("{p}/d")).await["ModifyIndex"]
        .as_u64()
        .unwrap();
    assert_eq!(
        t.delete(&format!("/v1/kv/{p}/d?cas={}", idx + 1))
            .await
            .ok()
            .json(),
        json!(false)
    );
    assert_eq!(
        t.delete(&format!("/v1/kv/{p}/d?cas={idx}"))
            .await
            .ok()
            .json(),
        json!(true)
    );
    assert_eq!(
        t.delete(&format!("/v1/kv/{p}/d?cas={idx}"))
            .await
            .ok()
            .json(),
        json!(true)
    );
    assert_eq!(
        t.delete(&format!("/v1/kv/{p}/?recurse")).await.ok().json(),
        json!(true)
    );
    assert_eq!(
        t.get(&format!("/v1/kv/{p}/?recurse")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// §2: deletes leave tombstones: the index of a prefix never goes backwards after a delete.
#[tokio::test]
async fn prefix_index_never_goes_backwards_after_delete() {
    let t = Target::start().await;
    let p = prefix();
    t.put(&format!("/v1/kv/{p}/a"), "").await.ok();
    t.put(&format!("/v1/kv/{p}/b"), "").await.ok();
    let before = t.get(&format!("/v1/kv/{p}/?recurse")).await.ok().index();
    t.delete(&format!("/v1/kv/{p}/b")).await.ok();
    let after = t.get(&format!("/v1/kv/{p}/?recurse")).await.ok().index();
    assert!(after > before, "{after} > {before}");
}

/// §2 (today's key validation, agent/kvs_endpoint.go): traversal, encoded traversal, spaces,
/// a leading `/` and characters outside the safe alphabet are 400; the safe alphabet passes.
/// Holds for Consul ≥ 1.21.5; see README.
#[tokio::test]
async fn key_validation() {
    let t = Target::start().await;
    let p = prefix();
    for bad in [
        format!("/v1/kv/{p}/../x"),
        format!("/v1/kv/{p}/%2e%2e%2fx"),
        format!("/v1/kv/{p}/%20x"),
        format!("/v1/kv/{p}/x%20"),
        format!("/v1/kv//{p}/x"),
        format!("/v1/kv/{p}/a%3Cb"),
    ] {
        let r = t.put(&bad, "v").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
    }
    let r = t.put(&format!("/v1/kv/{p}/Az09_,.-/ok"), "v").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// agent/kvs_endpoint.go: GET or PUT without a key is 400 `Missing key name`.
#[tokio::test]
async fn missing_key_name() {
    let t = Target::start().await;
    for r in [
        t.get("/v1/kv/").await,
        t.put("/v1/kv/", "x").await,
        t.delete("/v1/kv/").await,
    ] {
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.text().contains("Missing key name"), "{}", r.text());
    }
}

/// Unknown methods on /v1/kv are 405.
#[tokio::test]
async fn kv_method_not_allowed() {
    let t = Target::start().await;
    let r = t
        .req(hyper::Method::POST, &format!("/v1/kv/{}/x", prefix()), "")
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}
