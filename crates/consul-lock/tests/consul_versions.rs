//! The election on every Consul version cronnode supports, against consul-dev behaving as each
//! (`DevConfig::consul_version`), over real HTTP: an agent older than the minimum is refused by
//! name; on 1.0.8 the session is bound to the service check (a failed check fails over within
//! lock-delay, not 2×TTL) and the lock flag survives the acquire.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use consul_dev::{DevAgent, DevConfig};
use consul_lock::{leader_info, Consul, ConsulConfig, Node, Query, LOCK_FLAG, MIN_CONSUL_VERSION};
use tokio::time::Instant;

async fn agent_of(version: &str) -> (DevAgent, Consul) {
    let agent = DevAgent::start(DevConfig {
        consul_version: version.to_string(),
        ..DevConfig::default()
    })
    .await
    .unwrap();
    let consul = Consul::new(ConsulConfig::new(agent.url())).unwrap();
    (agent, consul)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_older_than_the_minimum_is_refused_by_name() {
    let (agent, consul) = agent_of("0.9.3").await;
    let node = Node::start(consul.clone(), settings("a"));
    let refusal = tokio::time::timeout(Duration::from_secs(20), node.refused())
        .await
        .expect("no refusal");
    assert_eq!(refusal.found, "0.9.3");
    let text = refusal.to_string();
    assert!(
        text.contains("0.9.3") && text.contains(&MIN_CONSUL_VERSION.to_string()),
        "{text}"
    );
    assert!(text.contains(&agent.url()), "{text}");
    // Nothing was registered, nobody leads.
    assert!(consul_lock::nodes(&consul).await.unwrap().is_empty());
    assert_eq!(leader_info(&consul, "cronnode").await.unwrap(), None);
    node.shutdown().await;
}

/// One scenario per version: two nodes, the leader's check fails, the follower leads within
/// lock-delay plus a few seconds (2×TTL would be 20 s), and every acquire kept the lock flag.
async fn check_failover_on(version: &str) {
    let (agent, consul) = agent_of(version).await;
    let handles: Vec<_> = ["a", "b"]
        .iter()
        .map(|n| Node::start(consul.clone(), settings(n)))
        .collect();
    let watch = LeaderWatch::new(handles.iter().map(|h| h.leadership()).collect());
    let (first, token, _) = watch
        .wait_leader(None, Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("{version}: no leader"));
    let (entry, _) = consul
        .kv_get("cronnode/leader", Query::now())
        .await
        .unwrap();
    assert_eq!(entry.unwrap().flags, LOCK_FLAG, "{version}: flag rounded");
    let name = ["a", "b"][first];
    let failed = Instant::now();
    let (status, body) = put(
        &agent,
        &format!("/v1/agent/check/fail/service:cronnode-{name}?note=test"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (next, next_token, seen) = watch
        .wait_leader(Some(first), TTL * 2 + LOCK_DELAY + Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("{version}: no successor"));
    assert_ne!(next, first);
    assert!(next_token > token);
    // Bound to the check: well before the session TTL (10 s) could have run out.
    assert!(
        seen - failed < TTL,
        "{version}: failover took {:?}: the session was not bound to the check",
        seen - failed
    );
    let (entry, _) = consul
        .kv_get("cronnode/leader", Query::now())
        .await
        .unwrap();
    assert_eq!(entry.unwrap().flags, LOCK_FLAG, "{version}: flag rounded");
    watch.assert_never_two();
    for h in handles {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_1_0_8_and_today_the_session_follows_the_check_and_the_flag_survives() {
    tokio::join!(
        check_failover_on("1.0.8"),
        check_failover_on(consul_dev::CURRENT_VERSION)
    );
}
