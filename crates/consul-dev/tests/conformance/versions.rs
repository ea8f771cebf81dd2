//! The behaviours that differ between the Consul versions cronnode supports (1.0.8 and later),
//! each checked against the version the target reports (`/v1/agent/self`): against an
//! in-process agent every test runs twice, as today's Consul and as 1.0.8 (consul-dev's
//! `consul_version`); against an external agent, once, as whatever it is. The README's
//! "Versions" table lists them.

use std::time::Duration;

use consul_dev::DevConfig;
use serde_json::{json, Value};

use crate::common::{enc, eventually, external, prefix, Target};

/// The lock flag of Consul's `api/lock.go` (a 62-bit number: a float keeps 53 of its bits).
const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;

/// The targets of a version test: today's and 1.0.8's consul-dev, or the external agent.
async fn targets() -> Vec<Target> {
    if external().is_some() {
        return vec![Target::start().await];
    }
    let mut out = Vec::new();
    for v in [consul_dev::CURRENT_VERSION, "1.0.8"] {
        out.push(
            Target::start_with(DevConfig {
                consul_version: v.to_string(),
                ..DevConfig::default()
            })
            .await,
        );
    }
    out
}

/// Whether the target is Consul 1.7 or later.
async fn since_1_7(t: &Target) -> bool {
    let v = t.get("/v1/agent/self").await.ok().json()["Config"]["Version"]
        .as_str()
        .expect("Config.Version")
        .to_string();
    let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 7)
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().or_else(|| c["ID"].as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// agent/session_endpoint.go, structs.Session: `NodeChecks`/`ServiceChecks` bind a session
/// since 1.7; before, they are unknown fields, ignored without a word (the session keeps the
/// default `serfHealth` only), and `Checks` binds any check, a service check included.
#[tokio::test]
async fn session_check_fields() {
    for t in targets().await {
        let new = since_1_7(&t).await;
        let svc = format!("versions-{}", uuid::Uuid::new_v4().simple());
        let check = format!("service:{svc}");
        t.put(
            "/v1/agent/service/register",
            json!({"Name": svc, "Check": {"TTL": "30s", "Status": "passing"}}).to_string(),
        )
        .await
        .ok();
        let split = t
            .session(
                &json!({"NodeChecks": ["serfHealth"], "ServiceChecks": [{"ID": check}]})
                    .to_string(),
            )
            .await;
        let legacy = t
            .session(&json!({"Checks": ["serfHealth", check]}).to_string())
            .await;
        let info = |id: String| {
            let t = &t;
            async move {
                let s = t.get(&format!("/v1/session/info/{id}")).await.ok().json()[0].clone();
                let mut all = ids(&s["Checks"]);
                all.extend(ids(&s["NodeChecks"]));
                all.extend(ids(&s["ServiceChecks"]));
                all
            }
        };
        let split_bound = info(split.clone()).await;
        assert_eq!(split_bound.contains(&check), new, "{split_bound:?}");
        assert!(split_bound.contains(&"serfHealth".to_string()));
        assert!(info(legacy.clone()).await.contains(&check));
        // The binding is real: the check turning critical ends the bound sessions only.
        t.put(&format!("/v1/agent/check/fail/{check}"), "")
            .await
            .ok();
        eventually(Duration::from_secs(20), "invalidation", || async {
            let gone = t
                .get(&format!("/v1/session/info/{legacy}"))
                .await
                .ok()
                .json();
            gone.as_array().is_none_or(|a| a.is_empty()).then_some(())
        })
        .await;
        let split_alive = t
            .get(&format!("/v1/session/info/{split}"))
            .await
            .ok()
            .json()
            .as_array()
            .is_some_and(|a| !a.is_empty());
        assert_eq!(split_alive, !new);
        t.put(&format!("/v1/session/destroy/{split}"), "")
            .await
            .ok();
        t.put(&format!("/v1/agent/service/deregister/{svc}"), "")
            .await
            .ok();
    }
}

/// agent/txn_endpoint.go (hashicorp/consul#6655): before 1.7 a txn's numbers are decoded as
/// floats, so the 64-bit lock flag loses its low bits; since, it is kept. A KV write's
/// `?flags=` is parsed as an integer in every version, and `?acquire` with it is exact.
#[tokio::test]
async fn txn_flags_precision() {
    for t in targets().await {
        let new = since_1_7(&t).await;
        let p = prefix();
        let body = json!([{"KV": {"Verb": "set", "Key": format!("{p}/txn"), "Flags": LOCK_FLAG,
            "Value": enc(b"x")}}]);
        t.put("/v1/txn", body.to_string()).await.ok();
        let stored = t.entry(&format!("{p}/txn")).await["Flags"]
            .as_u64()
            .unwrap();
        let rounded = LOCK_FLAG as f64 as u64;
        assert_ne!(rounded, LOCK_FLAG);
        assert_eq!(stored, if new { LOCK_FLAG } else { rounded });
        let s = t.session("").await;
        let acquired = t
            .put(&format!("/v1/kv/{p}/kv?acquire={s}&flags={LOCK_FLAG}"), "x")
            .await
            .ok();
        assert_eq!(acquired.json(), json!(true));
        assert_eq!(t.entry(&format!("{p}/kv")).await["Flags"], json!(LOCK_FLAG));
        t.put(&format!("/v1/session/destroy/{s}"), "").await.ok();
    }
}

/// agent/agent_endpoint.go: `/v1/agent/self` reports the version as `Config.Version`, which is
/// how cronnode tells versions apart (and refuses those below 1.0.8).
#[tokio::test]
async fn agent_self_reports_the_version() {
    for t in targets().await {
        let v = t.get("/v1/agent/self").await.ok().json();
        let version = v["Config"]["Version"].as_str().expect("Config.Version");
        assert!(
            version.split('.').count() >= 3 && version.starts_with("1."),
            "{version}"
        );
    }
}
