//! Leader election against consul-dev over real HTTP, in real time (TTL 10 s, lock-delay 1 s).
//! Scenarios that wait for TTLs run concurrently, each on its own agent.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use consul_lock::{leader_info, nodes, Node, NodeHandle, LOCK_FLAG};
use tokio::time::Instant;

/// Longest acceptable failover after a leader stops renewing.
fn failover_bound() -> Duration {
    TTL * 2 + LOCK_DELAY + Duration::from_secs(1)
}

fn start(consul: &consul_lock::Consul, names: &[&str]) -> (Vec<NodeHandle>, LeaderWatch) {
    let handles: Vec<NodeHandle> = names
        .iter()
        .map(|n| Node::start(consul.clone(), settings(n)))
        .collect();
    let watch = LeaderWatch::new(handles.iter().map(|h| h.leadership()).collect());
    (handles, watch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_contenders_one_leader_and_graceful_resign_hands_over_within_a_second() {
    let agent = agent().await;
    let consul = client(&agent);
    let (mut handles, watch) = start(&consul, &["a", "b"]);
    let (first, token, _) = watch
        .wait_leader(None, Duration::from_secs(10))
        .await
        .unwrap();

    // The lock key names the holder, carries the official flag, and its token is the token.
    let info = leader_info(&consul, "cronnode").await.unwrap().unwrap();
    assert_eq!(info.node, ["a", "b"][first]);
    assert_eq!(info.token, token);
    assert_eq!(info.pid, std::process::id());
    let (entry, _) = consul
        .kv_get("cronnode/leader", consul_lock::Query::now())
        .await
        .unwrap();
    assert_eq!(entry.unwrap().flags, LOCK_FLAG);

    // The leader's instance carries the `leader` tag (the tag follows within a check interval).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = nodes(&consul).await.unwrap();
        let tagged: Vec<_> = list
            .iter()
            .filter(|n| n.leader)
            .map(|n| n.node.clone())
            .collect();
        if list.len() == 2 && tagged == vec![info.node.clone()] {
            assert!(list.iter().all(|n| n.status == "passing"), "{list:?}");
            break;
        }
        assert!(Instant::now() < deadline, "leader tag not seen: {list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Graceful resign: the successor leads within a second, with a larger token.
    let leader = handles.remove(first);
    let started = Instant::now();
    let resign = tokio::spawn(leader.shutdown());
    let (next, next_token, seen) = watch
        .wait_leader(Some(first), Duration::from_secs(10))
        .await
        .unwrap();
    resign.await.unwrap();
    assert_ne!(next, first);
    assert!(
        seen - started < Duration::from_secs(1),
        "successor took {:?}",
        seen - started
    );
    assert!(next_token > token);

    // The resigned node deregistered its service.
    let list = nodes(&consul).await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    watch.assert_never_two();
    for h in handles {
        h.shutdown().await;
    }
    assert_eq!(leader_info(&consul, "cronnode").await.unwrap(), None);
}

/// A leader killed (tasks stopped, nothing released): a follower of three leads within
/// 2×TTL + lock-delay + 1 s.
async fn killed_leader_of_three() {
    let agent = agent().await;
    let consul = client(&agent);
    let (mut handles, watch) = start(&consul, &["a", "b", "c"]);
    let (first, token, _) = watch
        .wait_leader(None, Duration::from_secs(10))
        .await
        .unwrap();
    let killed = Instant::now();
    handles.remove(first).abandon();
    let (next, next_token, seen) = watch
        .wait_leader(Some(first), failover_bound() + Duration::from_secs(2))
        .await
        .expect("no follower took over after the leader was killed");
    assert!(
        seen - killed <= failover_bound(),
        "failover took {:?}",
        seen - killed
    );
    assert_ne!(next, first);
    assert!(next_token > token);
    watch.assert_never_two();
    for h in handles {
        h.shutdown().await;
    }
}

/// The leader's session expires (fault injection): it steps down and a follower leads.
async fn expired_session() {
    let agent = agent().await;
    let consul = client(&agent);
    let (handles, watch) = start(&consul, &["a", "b"]);
    let (first, token, _) = watch
        .wait_leader(None, Duration::from_secs(10))
        .await
        .unwrap();
    let info = leader_info(&consul, "cronnode").await.unwrap().unwrap();
    let expired = Instant::now();
    let (status, body) = put(&agent, &format!("/_dev/session/expire/{}", info.session)).await;
    assert_eq!(status, 200, "{body}");
    let (_, next_token, seen) = watch
        .wait_leader(Some(first), failover_bound())
        .await
        .expect("no follower took over after the session expired");
    assert!(seen - expired <= failover_bound());
    assert!(next_token > token);
    watch.assert_never_two();
    for h in handles {
        h.shutdown().await;
    }
}

/// The leader's service check goes critical: its session is invalidated, it loses leadership
/// and the follower takes the lock within lock-delay and a few seconds (2×TTL would be 20 s),
/// on Consul `version` (consul-dev behaving as it: before 1.7 the session is bound through
/// `Checks`); every acquire kept the official lock flag (1.0.8's txn would round it).
async fn critical_check(version: &str) {
    let agent = consul_dev::DevAgent::start(consul_dev::DevConfig {
        consul_version: version.to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let consul = client(&agent);
    let (handles, watch) = start(&consul, &["a", "b"]);
    let (first, token, _) = watch
        .wait_leader(None, Duration::from_secs(10))
        .await
        .unwrap();
    let flags = |consul: consul_lock::Consul| async move {
        let (entry, _) = consul
            .kv_get("cronnode/leader", consul_lock::Query::now())
            .await
            .unwrap();
        entry.unwrap().flags
    };
    assert_eq!(flags(consul.clone()).await, LOCK_FLAG, "{version}");
    let name = ["a", "b"][first];
    let failed = Instant::now();
    let (status, body) = put(
        &agent,
        &format!("/v1/agent/check/fail/service:cronnode-{name}?note=test"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (next, next_token, seen) = watch
        .wait_leader(Some(first), failover_bound())
        .await
        .expect("no follower took over after the leader's check failed");
    assert_ne!(next, first);
    assert!(next_token > token);
    assert!(
        seen - failed <= LOCK_DELAY + Duration::from_secs(3),
        "{version}: took {:?}",
        seen - failed
    );
    assert_eq!(flags(consul.clone()).await, LOCK_FLAG, "{version}");
    watch.assert_never_two();
    for h in handles {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_when_the_leader_is_killed_expires_or_fails_its_check() {
    tokio::join!(
        killed_leader_of_three(),
        expired_session(),
        critical_check(consul_dev::CURRENT_VERSION),
        critical_check("1.0.8")
    );
}

/// Consul fails (500 "No cluster leader", or refuses connections) for longer than a TTL: the
/// leader steps down by its own clock before the TTL since the fault began ran out, and a
/// leader is back once Consul is.
async fn outage(fault: &str) {
    let agent = agent().await;
    let consul = client(&agent);
    let (handles, watch) = start(&consul, &["a", "b"]);
    let (leader, _, _) = watch
        .wait_leader(None, Duration::from_secs(10))
        .await
        .unwrap();
    let fault_len = TTL + Duration::from_secs(5);
    let (status, body) = put(
        &agent,
        &format!("/_dev/fault/{fault}?duration={}s", fault_len.as_secs()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Every request the leader sent after this failed, so its last proof is older.
    let began = Instant::now();
    assert!(
        watch.wait_no_leader(TTL + Duration::from_secs(2)).await,
        "{fault}: the leader did not step down"
    );
    // The watcher task records the instant; give it a moment to run.
    let mut down = watch.stepped_down(leader);
    for _ in 0..100 {
        if down.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        down = watch.stepped_down(leader);
    }
    let down = down.unwrap();
    assert!(
        down - began < TTL,
        "{fault}: stepped down {:?} after the fault began (TTL {TTL:?})",
        down - began
    );
    // Nobody may lead while Consul is out.
    tokio::time::sleep_until(began + fault_len - Duration::from_millis(500)).await;
    assert!(
        watch.leader().is_none(),
        "{fault}: a leader during the outage"
    );
    watch
        .wait_leader(None, failover_bound() + Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("{fault}: no leader after Consul came back"));
    watch.assert_never_two();
    for h in handles {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consul_outage_longer_than_a_ttl_steps_the_leader_down_in_time() {
    tokio::join!(outage("no-leader"), outage("refuse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_strictly_increase_over_twenty_terms_even_after_the_key_is_deleted() {
    let agent = agent().await;
    let consul = client(&agent);
    let mut tokens: Vec<u64> = Vec::new();
    let mut node = Node::start(consul.clone(), settings("n0"));
    for term in 0..20 {
        let mut rx = node.leadership();
        let leadership =
            tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|l| l.is_leader()))
                .await
                .unwrap_or_else(|_| panic!("term {term}: no leader"))
                .unwrap()
                .to_owned();
        let token = leadership.token().unwrap();
        if let Some(last) = tokens.last() {
            assert!(token > *last, "term {term}: token {token} after {last}");
        }
        tokens.push(token);
        if term % 4 == 3 {
            // Someone deletes the lock key by hand: the holder loses it and takes it again,
            // and the LockIndex restarts, but the token does not go back.
            assert!(consul.kv_delete("cronnode/leader").await.unwrap());
            tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| !l.is_leader()))
                .await
                .expect("the holder did not notice the deleted key")
                .unwrap();
        } else {
            node.shutdown().await;
            node = Node::start(consul.clone(), settings(&format!("n{}", term + 1)));
        }
    }
    node.shutdown().await;
    assert_eq!(tokens.len(), 20);
}
