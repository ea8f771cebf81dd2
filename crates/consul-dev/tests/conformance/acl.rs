//! ACLs: consul-api.md §6. In-process the agent starts with `acl_token`; against an external
//! agent these run only when `CONSUL_CONFORMANCE_TOKEN` names a token with full rights on an
//! agent whose default policy is deny.

use consul_dev::DevConfig;
use hyper::{Method, StatusCode};

use crate::common::{external, prefix, Target};

const TOKEN: &str = "conformance-secret";

async fn acl_target() -> Option<(Target, String)> {
    if external().is_some() {
        match std::env::var("CONSUL_CONFORMANCE_TOKEN") {
            Ok(t) if !t.is_empty() => return Some((Target::start().await, t)),
            _ => {
                eprintln!("skipped against an external agent: set CONSUL_CONFORMANCE_TOKEN (and enable ACLs, default deny) to run ACL tests");
                return None;
            }
        }
    }
    let t = Target::start_with(DevConfig {
        acl_token: Some(TOKEN.to_string()),
        ..DevConfig::default()
    })
    .await;
    Some((t, TOKEN.to_string()))
}

/// §6: the token is accepted from `?token=`, `X-Consul-Token` and `Authorization: Bearer`.
#[tokio::test]
async fn token_sources() {
    let Some((t, token)) = acl_target().await else {
        return;
    };
    let anon = t.with_token(None);
    let k = format!("{}/acl", prefix());
    anon.put(&format!("/v1/kv/{k}?token={token}"), "v")
        .await
        .ok();
    anon.req_headers(
        Method::GET,
        &format!("/v1/kv/{k}"),
        "",
        &[("X-Consul-Token", &token)],
    )
    .await
    .ok();
    let bearer = format!("Bearer {token}");
    anon.req_headers(
        Method::GET,
        &format!("/v1/kv/{k}"),
        "",
        &[("Authorization", &bearer)],
    )
    .await
    .ok();
}

/// §6: without a token, writes and single reads are 403 `Permission denied`; a wrong token is
/// 403 `ACL not found`.
#[tokio::test]
async fn denials() {
    let Some((t, token)) = acl_target().await else {
        return;
    };
    let anon = t.with_token(None);
    let k = format!("{}/acl", prefix());
    let r = anon.put(&format!("/v1/kv/{k}"), "v").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("Permission denied"), "{}", r.text());
    let r = anon.put("/v1/session/create", "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = anon
        .put("/v1/agent/service/register", r#"{"Name":"x"}"#)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let wrong = t.with_token(Some("not-the-token-0000"));
    let r = wrong.get(&format!("/v1/kv/{k}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("ACL not found"), "{}", r.text());
    let ok = t.with_token(Some(&token));
    ok.put(&format!("/v1/kv/{k}"), "v").await.ok();
}
