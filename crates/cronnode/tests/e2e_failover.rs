//! End to end: three nodes, one leader, the `leader` tag in Consul's health endpoint on it
//! alone; SIGTERM to the leader hands over without waiting out its session, with no slot
//! missed or doubled.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{job, slot_of, tasks_of, wait_for, Consul, Node};
use dev_harness::{Location, RedisServer, ServerOptions};
use serde_json::Value;

/// The instances of service `cronnode` that carry the `leader` tag.
fn tagged_leaders(consul: &Consul) -> Vec<String> {
    let v = consul.get_json("/v1/health/service/cronnode");
    v.as_array()
        .map(|a| {
            a.iter()
                .filter(|e| {
                    e.pointer("/Service/Tags")
                        .and_then(Value::as_array)
                        .is_some_and(|t| t.iter().any(|x| x == "leader"))
                })
                .filter_map(|e| {
                    e.pointer("/Service/ID")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn three_nodes_one_leader_and_a_clean_handover_on_sigterm() {
    let _serial = common::serial();
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let mut nodes: Vec<Node> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| Node::start(n, &consul, &url, &[]))
        .collect();

    let leader = nodes[0].wait_leader();
    // Every node names the same leader, and only that one says it leads.
    for n in &nodes {
        assert_eq!(n.leader().as_deref(), Some(leader.as_str()));
        let me = n.get("/v1/leader").json();
        let role = me
            .pointer("/this_node/role")
            .and_then(Value::as_str)
            .unwrap();
        assert_eq!(role == "leader", n.name == leader, "{me}");
    }
    // The Consul health endpoint: the tag on the leader's instance alone.
    wait_for(
        "the leader tag on the leader alone",
        Duration::from_secs(15),
        || (tagged_leaders(&consul) == vec![format!("cronnode-{leader}")]).then_some(()),
    );
    let nodes_answer = nodes[1].get("/v1/nodes").json();
    assert_eq!(
        nodes_answer["nodes"].as_array().unwrap().len(),
        3,
        "{nodes_answer}"
    );

    let r = nodes[0].post_json("/v1/cronjobs", &job("hb", "@every 1s"));
    assert_eq!(r.status, 201, "{}", r.text());
    wait_for("fires before the handover", Duration::from_secs(30), || {
        (tasks_of(&url, "hb").len() >= 3).then_some(())
    });

    // SIGTERM the leader; time until another node holds the lock.
    let idx = nodes.iter().position(|n| n.name == leader).unwrap();
    let mut old = nodes.remove(idx);
    let sent = Instant::now();
    old.sigterm();
    let new_leader = wait_for("a new leader", Duration::from_secs(30), || {
        nodes[0].leader().filter(|l| *l != leader)
    });
    let handover = sent.elapsed();
    let code = old.wait_exit(Duration::from_secs(15));
    eprintln!("handover after SIGTERM: {handover:?} ({leader} → {new_leader}); old leader exit status {code:?}");
    assert_eq!(code, Some(0), "graceful exit; log:\n{}", old.log());
    // A graceful stop destroys the session, so the successor takes the lock at once; without
    // that it would wait for the session's TTL to run out (Consul waits up to twice the TTL).
    // The bound tells the two apart; it is not a speed figure (BENCHMARKS.md has those).
    assert!(
        handover < consul_lock::DEFAULT_SESSION_TTL,
        "handover took {handover:?}: the session was not destroyed on SIGTERM"
    );
    wait_for("the leader tag moved", Duration::from_secs(15), || {
        (tagged_leaders(&consul) == vec![format!("cronnode-{new_leader}")]).then_some(())
    });

    // Let the new leader run, then check every slot from the first to the last: once each.
    let end = slot_of(tasks_of(&url, "hb").last().unwrap()) + 4;
    let tasks = wait_for("fires after the handover", Duration::from_secs(30), || {
        let t = tasks_of(&url, "hb");
        (t.iter().map(slot_of).max().unwrap_or(0) >= end).then_some(t)
    });
    let mut per_slot: BTreeMap<i64, usize> = BTreeMap::new();
    for t in &tasks {
        *per_slot.entry(slot_of(t)).or_default() += 1;
    }
    let first = *per_slot.keys().next().unwrap();
    let last = *per_slot.keys().last().unwrap();
    for s in first..=last {
        assert_eq!(
            per_slot.get(&s),
            Some(&1),
            "slot {s} enqueued {:?} times; all: {per_slot:?}",
            per_slot.get(&s)
        );
    }
    let by_node: BTreeMap<String, usize> = tasks.iter().fold(BTreeMap::new(), |mut m, t| {
        *m.entry(
            t.pointer("/cron/node")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
        )
        .or_default() += 1;
        m
    });
    assert!(
        by_node.contains_key(&leader) && by_node.contains_key(&new_leader),
        "{by_node:?}"
    );
    // The new term's token is above the old one's.
    let tokens: Vec<u64> = tasks
        .iter()
        .map(|t| t.pointer("/cron/token").and_then(Value::as_u64).unwrap())
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] <= w[1]),
        "tokens never go backwards: {tokens:?}"
    );
}

#[test]
fn a_redis_outage_delays_fires_but_loses_and_doubles_none() {
    let _serial = common::serial();
    let consul = Consul::start();
    let mut redis = RedisServer::start_appendonly().unwrap();
    let url = redis.url();
    let node = Node::start("solo", &consul, &url, &[]);
    let r = node.post_json("/v1/cronjobs", &job("steady", "@every 1s"));
    assert_eq!(r.status, 201, "{}", r.text());
    wait_for("fires before the outage", Duration::from_secs(30), || {
        (tasks_of(&url, "steady").len() >= 2).then_some(())
    });

    // Redis down for ~3 s: the leader keeps the due fires and retries them with backoff.
    redis.kill();
    std::thread::sleep(Duration::from_secs(3));
    redis.restart().unwrap();

    let before = slot_of(tasks_of(&url, "steady").last().unwrap());
    let tasks = wait_for("fires after the outage", Duration::from_secs(30), || {
        let t = tasks_of(&url, "steady");
        (t.iter().map(slot_of).max().unwrap_or(0) >= before + 6).then_some(t)
    });
    let mut per_slot: BTreeMap<i64, usize> = BTreeMap::new();
    for t in &tasks {
        *per_slot.entry(slot_of(t)).or_default() += 1;
    }
    let first = *per_slot.keys().next().unwrap();
    let last = *per_slot.keys().last().unwrap();
    for s in first..=last {
        assert_eq!(
            per_slot.get(&s),
            Some(&1),
            "slot {s}: {per_slot:?}\n{}",
            node.log()
        );
    }
    let metrics = node.get("/metrics").text();
    // Which call met the outage depends on the moment: a release of staged tasks, its
    // preparation half a second ahead, a stage ahead of a slot, or an enqueue of a slot that
    // passed. (The calls after the first one wait for the reconnection instead of failing.)
    assert!(
        ["enqueue", "stage", "release", "prepare_release"]
            .iter()
            .any(|op| metrics.contains(&format!("cronnode_redis_errors_total{{op=\"{op}\"}}"))),
        "{metrics}"
    );
    for t in &tasks {
        common::check_task(t);
    }
    // A fire staged before the outage keeps its slot as `created_at`; the leader's lateness
    // histogram measures when it reached the queue: some fires were a second or more late.
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in\n{metrics}"))
    };
    let count = sample("cronnode_fire_lateness_seconds_count");
    let within_1s = sample("cronnode_fire_lateness_seconds_bucket{le=\"1.024\"}");
    eprintln!(
        "fires over 1 s late across a 3 s Redis outage: {}",
        count - within_1s
    );
    assert!(count > within_1s, "the outage shows as lateness\n{metrics}");
}

#[test]
fn a_node_started_before_redis_waits_for_it_and_then_leads() {
    let consul = Consul::start();
    let port = dev_harness::free_port().unwrap();
    let url = format!("redis://127.0.0.1:{port}/");
    let api_port = dev_harness::free_port().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut node = std::process::Command::new(env!("CARGO_BIN_EXE_cronnode"))
        .args([
            "run",
            "--node",
            "early",
            "--consul",
            &consul.url(),
            "--redis",
            &url,
        ])
        .args(["--listen", &format!("127.0.0.1:{api_port}")])
        .env("NO_COLOR", "1")
        .env("CRONNODE_RESOLVE_ROUTES", "false")
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(log.path()).unwrap_or_default();
    wait_for("a logged Redis retry", Duration::from_secs(30), || {
        read_log()
            .contains("connecting to Redis failed")
            .then_some(())
    });
    assert!(
        node.try_wait().unwrap().is_none(),
        "still running: {}",
        read_log()
    );

    // Redis comes up on that port: the node goes on without a restart.
    let at = Location {
        port: Some(port),
        ..Location::default()
    };
    let redis = RedisServer::start_at(at, ServerOptions::default()).unwrap();
    let leader = wait_for("the node to lead", Duration::from_secs(60), || {
        let r = common::http::get(api_port, "/v1/leader", None).ok()?;
        (r.status == 200)
            .then(|| r.json())?
            .pointer("/leader/node")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    assert_eq!(leader, "early");
    let _ = node.kill();
    let _ = node.wait();
    drop(redis);
}

/// kill -9 of a leader always lands between a stage and its release: the leader stages each
/// slot ahead of time (LOOKAHEAD), so when it dies the next slots are staged and not yet in the
/// queue. The successor releases them: every slot exactly once, and slots after the kill carry
/// the dead leader's name and token.
#[test]
fn a_leader_killed_between_stage_and_release_loses_and_doubles_nothing() {
    let _serial = common::serial();
    let consul = Consul::start();
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let mut nodes: Vec<Node> = ["k1", "k2"]
        .iter()
        .map(|n| Node::start(n, &consul, &url, &[]))
        .collect();
    let leader = nodes[0].wait_leader();
    let r = nodes[0].post_json("/v1/cronjobs", &job("beat", "@every 1s"));
    assert_eq!(r.status, 201, "{}", r.text());
    wait_for("fires before the kill", Duration::from_secs(30), || {
        (tasks_of(&url, "beat").len() >= 3).then_some(())
    });

    let idx = nodes.iter().position(|n| n.name == leader).unwrap();
    let old = nodes.remove(idx);
    let old_log = old.log();
    drop(old); // SIGKILL
    let killed_at = chrono::Utc::now().timestamp();
    let in_queue_at_kill = tasks_of(&url, "beat").iter().map(slot_of).max().unwrap();
    let new_leader = wait_for("a successor", Duration::from_secs(60), || {
        nodes[0].leader().filter(|l| *l != leader)
    });
    let tasks = wait_for("fires after the takeover", Duration::from_secs(30), || {
        let t = tasks_of(&url, "beat");
        let by_successor = t
            .iter()
            .filter(|t| t.pointer("/cron/node").and_then(Value::as_str) == Some(&new_leader))
            .count();
        (by_successor >= 3).then_some(t)
    });
    let mut per_slot: BTreeMap<i64, usize> = BTreeMap::new();
    for t in &tasks {
        common::check_task(t);
        *per_slot.entry(slot_of(t)).or_default() += 1;
    }
    let first = *per_slot.keys().next().unwrap();
    let last = *per_slot.keys().last().unwrap();
    for s in first..=last {
        assert_eq!(
            per_slot.get(&s),
            Some(&1),
            "slot {s}: {per_slot:?}\nold leader's log:\n{old_log}\nsuccessor's log:\n{}",
            nodes[0].log()
        );
    }
    // What the dead leader had staged reached the queue through its successor's release.
    let released: Vec<i64> = tasks
        .iter()
        .filter(|t| t.pointer("/cron/node").and_then(Value::as_str) == Some(&leader))
        .map(slot_of)
        .filter(|s| *s > in_queue_at_kill.max(killed_at - 1))
        .collect();
    eprintln!(
        "killed at {killed_at}; last slot in the queue then {in_queue_at_kill}; staged by the dead leader and released by {new_leader}: {released:?}"
    );
    assert!(
        !released.is_empty(),
        "no staged slot of the dead leader was released\nsuccessor's log:\n{}",
        nodes[0].log()
    );
}
