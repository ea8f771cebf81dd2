//! Consul versions, against consul-dev behaving as each (`DevConfig::consul_version`), over real
//! HTTP: an agent older than the minimum is refused by name. (That the election works on 1.0.8
//! as on today's Consul, check binding and lock flag included, is `election.rs`'s
//! `critical_check`, run on both.)
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use consul_dev::{DevAgent, DevConfig};
use consul_lock::{leader_info, Consul, ConsulConfig, Node, MIN_CONSUL_VERSION};

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
