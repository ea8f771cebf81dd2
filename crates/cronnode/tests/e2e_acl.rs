//! End to end: Consul with ACLs on. A node with the token leads; a node without it stays
//! alive, is not ready, and says that Consul refused it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{http, wait_for, Consul, Node};
use dev_harness::RedisServer;
use serde_json::Value;

const CONSUL_TOKEN: &str = "e2e-consul-token";

#[test]
fn consul_acl_token_is_sent_and_a_missing_one_is_reported() {
    let consul = Consul::start_with(&["--acl-token", CONSUL_TOKEN]);
    let redis = RedisServer::start().unwrap();
    let good = Node::start(
        "good",
        &consul,
        &redis.url(),
        &["--consul-token", CONSUL_TOKEN],
    );
    let leader = wait_for(
        "the node with the token to lead",
        Duration::from_secs(30),
        || good.leader(),
    );
    assert_eq!(leader, "good");

    // The service is registered (read with the token).
    let r = http::request(
        consul.port,
        "GET",
        "/v1/health/service/cronnode",
        &[("X-Consul-Token", CONSUL_TOKEN)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let ids: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            e.pointer("/Service/ID")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    assert_eq!(ids, ["cronnode-good"]);

    let bad = Node::start("bad", &consul, &redis.url(), &[]);
    let ready = bad.get("/ready");
    assert_eq!(ready.status, 503, "{}", ready.text());
    let (code, message) = ready.error();
    assert_eq!(code, "unavailable");
    assert!(message.contains("consul"), "{message}");
    assert!(
        message.contains("403")
            || message.to_lowercase().contains("acl")
            || message.to_lowercase().contains("permission"),
        "{message}"
    );
    assert_eq!(
        bad.leader(),
        None,
        "without a token the node cannot even read the lock"
    );
}
